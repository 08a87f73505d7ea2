"""``inspatio-ros build``: fuse frames with their geometry (poses + depth, given or estimated) into a world file.

Fusion keeps the world near one point per visible pixel: each frame is back-projected to
surfels (position, colour, normal from the depth gradient, radius from the pixel footprint), the
world built so far is rendered into that frame, and only pixels the world does not yet explain
are added: uncovered pixels, pixels whose depth disagrees (new surfaces), and pixels where the
world's surfels are much coarser than this frame samples them (the camera came closer). Every
point remembers its source frame (``static.frame``), so later stages can address points by time.

Poses missing from the input (or ``--poses estimate``) come from visual odometry on the frames
(odometry.py): with landmarks from the given depth maps when there are any, else monocular and
scaled by the camera's height above the road (``--camera-height``). Without depth maps the depth
of every fused frame comes from multi-view stereo on the other fused frames (mvs/, plane sweep);
pixels it cannot measure are propagated from the measured ones where the other frames agree.

Before fusing, each frame's points are checked against the fused frames around it: a point that
other frames see through (they measured something clearly farther there) is a wrong depth or
something that moved, and is dropped. Moving regions (found by MVS, or large seen-through regions
of given depth) go into the dynamic layer, each point existing for its frame's share of time.

With depth from multi-view stereo (``--frame-local``), every fused frame's own surfels are also
kept whole, unknown depth interpolated, in a frame-local layer (stored with the dynamic layer):
alive from the previous fused frame's time to the next one's and drawn in front of the static
layer, so a view at a recorded time shows what the frames beside it saw. MVS depths of distant
frames disagree by more than the fusion's tolerances, and in one merged layer their surfels hide
or replace the near frames' ones (docs/QUALITY.md).
"""
from __future__ import annotations

import argparse
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..camera import Intrinsics, load_camera_info, parse_intrinsics
from ..errors import InputError
from ..posefile import read_poses
from ..progress import progress
from ..render import Cameras, PointCloud, RenderSettings, eager_rendering, render_points, resolve_device
from ..video import resize_depth
from ..world import World, encode_normals, sha256_of
from .mvs import MVSSettings
from .sources import DepthMaps, FrameSet, open_input


@dataclass
class FusionSettings:
    sky_distance: float = 1000.0     # metres: where +inf depth (sky) is placed, a far background shell
    max_depth: float = 300.0         # metres: finite depths beyond this are dropped as unreliable
    overlap: float = 1.5             # surfel diameter / pixel footprint (>1 closes gaps between points)
    novelty_tolerance: float = 0.03  # relative depth difference that makes a pixel a new surface
    refine_ratio: float = 1.6        # add a pixel when the world's surfel is this much coarser
    grazing_limit: float = 0.25      # cos of the steepest view angle a surfel is sized for
    edge_jump: float = 0.1           # relative depth step to a nearer neighbour that marks an edge
    check_neighbours: int = 16       # fused frames either side that check each frame's points (0: off)
    check_tolerance: float = 0.05    # relative depth margin of that check
    check_violations: int = 2        # neighbours seeing through a point that remove it (floater or moving)
    moving_min_area: float = 0.001   # given depth: seen-through regions this share of the image are moving
    # Frame-local layer: every fused frame's own surfels, all of them (not only what the merged
    # world lacks), alive from the previous fused frame's time to the next one's and drawn in
    # front of the static layer (render.Renderer). A view at a recorded time then shows what the
    # frames beside it measured instead of surfaces other frames measured from far away. None: on
    # for depth from multi-view stereo (per-frame depths that disagree between distant frames).
    frame_local: bool | None = None
    local_fill: bool = True          # frame-local surfels also where the depth is unknown (interpolated)


def surfels_from_depth(rgb: np.ndarray, depth: np.ndarray, intr: Intrinsics, c2w: np.ndarray,
                       settings: FusionSettings, device: torch.device | str | None = None):
    """Back-project one frame: world xyz, rgb, radius, unit normals (0 where unknown), pixel mask.
    Runs in float32 torch on ``device`` (default: the CPU): per pixel of every fused frame, twice
    with the frame-local layer, it was two thirds of a full-size KITTI fusion in numpy."""
    dev = torch.device(device) if device is not None else torch.device("cpu")
    H, W = depth.shape
    depth_t = torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32)).to(dev)
    sky = torch.isposinf(depth_t)
    d = torch.where(sky, torch.full_like(depth_t, settings.sky_distance), depth_t)
    valid = torch.isfinite(d) & (d > 0) & ((d <= settings.max_depth) | sky)
    # Pixels just behind a depth edge mix the foreground's colour into the background (anti-
    # aliasing, blur): as points they would paint a halo of the foreground onto the background
    # (e.g. facade-coloured streaks in the sky). Drop them; other frames or hole filling cover
    # the background there. Pixels on the near side are kept, so thin poles survive.
    valid &= ~_behind_edge(torch.where(valid, d, torch.full_like(d, float("inf"))), settings.edge_jump)
    v, u = torch.meshgrid(torch.arange(H, device=dev, dtype=torch.float32),
                          torch.arange(W, device=dev, dtype=torch.float32), indexing="ij")
    rays = torch.stack([(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, torch.ones_like(u)], -1)
    pc = rays * torch.where(valid, d, torch.zeros_like(d))[..., None]          # camera frame
    # Normals from central differences of the back-projected depth map (camera frame); only
    # where all four neighbours are valid, on one surface (no depth jump), and not sky.
    nrm = torch.zeros_like(pc)
    ok = torch.zeros((H, W), dtype=torch.bool, device=dev)
    if H >= 3 and W >= 3:
        du = pc[1:-1, 2:] - pc[1:-1, :-2]
        dv = pc[2:, 1:-1] - pc[:-2, 1:-1]
        n = torch.linalg.cross(du, dv)
        # One plane across the 3x3 cross: a plane's inverse depth is affine in pixel
        # coordinates, so its second differences vanish, however steeply it is seen (the road
        # ahead changes depth by tens of per cent per row, yet is one plane). NaN (unknown)
        # compares false.
        inv = 1.0 / d
        ic = inv[1:-1, 1:-1]
        smooth = (((inv[1:-1, 2:] + inv[1:-1, :-2] - 2 * ic).abs() < 0.05 * ic)
                  & ((inv[2:, 1:-1] + inv[:-2, 1:-1] - 2 * ic).abs() < 0.05 * ic))
        inner_ok = (valid[1:-1, 2:] & valid[1:-1, :-2] & valid[2:, 1:-1] & valid[:-2, 1:-1]
                    & valid[1:-1, 1:-1] & smooth & ~sky[1:-1, 1:-1])
        length = torch.linalg.vector_norm(n, dim=-1, keepdim=True)
        n = torch.where(length > 1e-12, n / length.clamp_min(1e-12), torch.zeros_like(n))
        # Orient towards the camera: n . p < 0.
        n = torch.where(((n * pc[1:-1, 1:-1]).sum(-1) > 0)[..., None], -n, n)
        nrm[1:-1, 1:-1] = torch.where(inner_ok[..., None], n, torch.zeros_like(n))
        ok[1:-1, 1:-1] = inner_ok
    # Radius: half the footprint of a pixel on the surface, stretched by the view angle so that
    # steep surfaces (the road ahead) close up along their steep direction too.
    ray_len = torch.linalg.vector_norm(rays, dim=-1)
    cos_view = torch.where(ok, (nrm * rays).sum(-1).abs() / ray_len, torch.ones_like(ray_len))
    footprint = d * ray_len / intr.fx
    radius = 0.5 * settings.overlap * footprint / cos_view.clamp_min(settings.grazing_limit)
    rot = torch.from_numpy(np.asarray(c2w[:3, :3], np.float32)).to(dev)
    centre = torch.from_numpy(np.asarray(c2w[:3, 3], np.float32)).to(dev)
    pick = valid.reshape(-1).nonzero()[:, 0]
    # Only the kept pixels go to world coordinates and back to the host.
    xyz = pc.reshape(-1, 3)[pick] @ rot.T + centre
    nrm_w = nrm.reshape(-1, 3)[pick] @ rot.T
    valid_np = valid.cpu().numpy()
    return (xyz.cpu().numpy(), rgb[valid_np], radius.reshape(-1)[pick].cpu().numpy(),
            nrm_w.cpu().numpy(), valid_np)


def _behind_edge(d: torch.Tensor, jump: float) -> torch.Tensor:
    """Pixels with a 4-neighbour nearer than ``d * (1 - jump)`` (unknown depth = inf)."""
    near = torch.full_like(d, float("inf"))
    near[1:, :] = torch.minimum(near[1:, :], d[:-1, :])
    near[:-1, :] = torch.minimum(near[:-1, :], d[1:, :])
    near[:, 1:] = torch.minimum(near[:, 1:], d[:, :-1])
    near[:, :-1] = torch.minimum(near[:, :-1], d[:, 1:])
    return near < d * (1.0 - jump)


def _project_into(d_i: np.ndarray, c2w_i: np.ndarray, c2w_j: np.ndarray, intr: Intrinsics, sky_distance: float):
    """Frame i's depth map as points seen from camera j: their depth there and the pixel they
    fall on (row, col, inside mask)."""
    H, W = d_i.shape
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    d = np.where(np.isposinf(d_i), sky_distance, d_i)
    known = np.isfinite(d) & (d > 0)
    d = np.where(known, d, 0.0)
    pc = np.stack([(u - intr.cx) / intr.fx * d, (v - intr.cy) / intr.fy * d, d], -1)
    rel = np.linalg.inv(c2w_j) @ c2w_i
    pj = pc @ rel[:3, :3].T + rel[:3, 3]
    z = pj[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        col = np.round(pj[..., 0] / z * intr.fx + intr.cx)
        row = np.round(pj[..., 1] / z * intr.fy + intr.cy)
    inside = known & (z > 1e-6) & (col >= 0) & (col < W) & (row >= 0) & (row < H)
    col = np.where(inside, col, 0).astype(np.int64)
    row = np.where(inside, row, 0).astype(np.int64)
    return z, row, col, inside


def seen_through(depths: dict[int, np.ndarray], c2w: dict[int, np.ndarray], intr: Intrinsics,
                 settings: FusionSettings, device: torch.device | str | None = None) -> dict[int, np.ndarray]:
    """Per frame, how many neighbouring frames see *through* each pixel's point: at the pixel
    where the point projects, that frame measured a surface clearly farther away (or sky). A
    static, correctly measured surface is never seen through; a wrong depth (a floater in front
    of the scene) or a moving object (it left that place) is. Neighbour depths are taken as the
    nearest of a 3x3 window, so a point on the edge of a foreground object is not condemned by
    rounding onto the background beside it.

    Runs on ``device`` (default: the CPU) in float32: 2 x check_neighbours projections of every
    pixel per frame (46 KITTI frames at 1226x370 x 32 neighbours: 60 s in float64 numpy on the
    H100 machine's CPU). The depth maps stay on the device for the whole check."""
    frames = sorted(depths)
    s = settings
    dev = torch.device(device) if device is not None else torch.device("cpu")
    H, W = depths[frames[0]].shape
    inf = torch.tensor(float("inf"), device=dev)
    nearest, has_any, known_depth = {}, {}, {}
    for j in frames:
        d = torch.from_numpy(np.ascontiguousarray(depths[j], dtype=np.float32)).to(dev)
        d = torch.where(torch.isposinf(d), torch.full_like(d, s.sky_distance), d)
        measured = torch.isfinite(d) & (d > 0)
        known_depth[j] = (torch.where(measured, d, torch.zeros_like(d)), measured)
        dj = torch.where(measured, d, inf)                 # unknown: no evidence (inf, then ignored)
        # 3x3 minimum / any; max_pool2d leaves the border out of the window, as a clamped window would.
        nearest[j] = (-torch.nn.functional.max_pool2d(-dj[None, None], 3, 1, 1))[0, 0]
        has_any[j] = torch.nn.functional.max_pool2d(measured[None, None].float(), 3, 1, 1)[0, 0] > 0
    v, u = torch.meshgrid(torch.arange(H, device=dev, dtype=torch.float32),
                          torch.arange(W, device=dev, dtype=torch.float32), indexing="ij")
    rays = torch.stack([(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, torch.ones_like(u)], -1)
    keep = 1.0 - s.check_tolerance
    out = {}
    for k, i in enumerate(frames):
        d, measured = known_depth[i]
        points = (rays * d[..., None]).reshape(-1, 3)      # camera i's frame
        count = torch.zeros(H * W, dtype=torch.int32, device=dev)
        for j in frames[max(0, k - s.check_neighbours):k + s.check_neighbours + 1]:
            if j == i:
                continue
            rel = torch.from_numpy((np.linalg.inv(c2w[j]) @ c2w[i]).astype(np.float32)).to(dev)
            pj = points @ rel[:3, :3].T + rel[:3, 3]
            z = pj[:, 2]
            safe_z = torch.where(z > 1e-6, z, torch.ones_like(z))
            col = torch.round(pj[:, 0] / safe_z * intr.fx + intr.cx)
            row = torch.round(pj[:, 1] / safe_z * intr.fy + intr.cy)
            inside = measured.reshape(-1) & (z > 1e-6) & (col >= 0) & (col < W) & (row >= 0) & (row < H)
            flat = torch.where(inside, row * W + col, torch.zeros_like(col)).long()
            there = nearest[j].reshape(-1)[flat]
            count += (inside & has_any[j].reshape(-1)[flat] & torch.isfinite(there) & (z < there * keep)).int()
        out[i] = count.reshape(H, W).cpu().numpy()
    return out


def _large_regions(mask: np.ndarray, min_area: float) -> np.ndarray:
    """The connected regions of ``mask`` covering at least ``min_area`` of the image."""
    from scipy import ndimage

    if not mask.any():
        return mask
    labels, n = ndimage.label(mask)
    area = np.bincount(labels.ravel(), minlength=n + 1)
    big = area >= max(8.0, min_area * mask.size)
    big[0] = False
    return big[labels]


def spread_moving(moving: dict[int, np.ndarray], depths: dict[int, np.ndarray], c2w: dict[int, np.ndarray],
                  intr: Intrinsics, settings: FusionSettings, colours: dict[int, np.ndarray], reach: int = 3,
                  depth_tolerance: float = 0.35, colour_tolerance: float = 30.0) -> dict[int, np.ndarray]:
    """Moving regions carried to the fused frames ``reach`` either side: a neighbour's moving
    pixels, projected into this frame with their depth, mark the pixels where this frame sees
    something of about that depth and colour (the object has moved little between nearby
    frames). A car driving ahead is seen through only by later frames; the last frames learn it
    this way. ``colours``: the frames' RGB (HxWx3 uint8) or grey (HxW)."""
    from scipy import ndimage

    frames = sorted(depths)
    out = {}
    for k, i in enumerate(frames):
        mask = moving.get(i, np.zeros(depths[i].shape, bool)).copy()
        d_i = depths[i]
        # Only the neighbours' own detections are carried (carrying carried masks on would creep
        # along the road the object stands on, one frame at a time).
        for j in frames[max(0, k - reach):k + reach + 1]:
            mj = moving.get(j)
            if j == i or mj is None or not mj.any():
                continue
            z, row, col, inside = _project_into(np.where(mj, depths[j], np.nan), c2w[j], c2w[i], intr,
                                                settings.sky_distance)
            there = d_i[row, col]
            c_i = colours[i].reshape(d_i.shape + (-1,)).astype(np.float32)
            c_j = colours[j].reshape(d_i.shape + (-1,)).astype(np.float32)
            alike = np.abs(c_i[row, col] - c_j).mean(-1) < colour_tolerance
            near = inside & mj & np.isfinite(there) & (np.abs(there - z) < depth_tolerance * z) & alike
            mask[row[near], col[near]] = True
        if mask.any():
            mask = ndimage.binary_fill_holes(ndimage.binary_closing(mask, iterations=2)) & np.isfinite(d_i)
        out[i] = mask
    return out


def fill_unknown_depth(depth: np.ndarray, sky_distance: float, levels: int = 8,
                       ceiling: np.ndarray | None = None) -> np.ndarray:
    """Unknown (NaN) pixels of a depth map given the inverse depth interpolated from the known ones
    (push-pull over an image pyramid; sky counts as known at ``sky_distance``). For the frame-local
    layer: seen from the frames beside this one, a pixel's own colour at a guessed depth is off by
    little parallax, while hole filling the render there blurs colours from around it.
    ``ceiling`` (HxW, NaN: none): the farthest depth a filled pixel may get (below the horizon a
    static point lies before the road plane: interpolating from sky and far road across a blank
    car side would put the car behind the road)."""
    from ..render import _push_pull

    known = np.isfinite(depth) & (depth > 0) | np.isposinf(depth)
    if known.all() or not known.any():
        return depth
    inv = np.where(np.isposinf(depth), 1.0 / sky_distance, 1.0 / np.where(known & ~np.isposinf(depth), depth, 1.0))
    inv = torch.from_numpy(np.where(known, inv, 0.0).astype(np.float32))[None, None]
    filled, have = _push_pull(inv, torch.from_numpy(known)[None, None], levels)
    filled, have = filled[0, 0].numpy(), have[0, 0].numpy()
    use = ~known & have & (filled > 0)
    out = depth.copy()
    out[use] = 1.0 / filled[use]
    if ceiling is not None:
        with np.errstate(invalid="ignore"):
            over = use & np.isfinite(ceiling) & (out > ceiling)
        out[over] = ceiling[over]
    return out


def _local_spans(times: np.ndarray, fused: list[int]) -> dict[int, tuple[float, float]]:
    """When each fused frame's frame-local surfels exist: from the previous fused frame's time to
    the next one's (both included), so that at any time between two fused frames both are shown and
    at a fused frame's own time also its neighbours; the ends extended by one interval."""
    t = np.asarray([float(times[i]) for i in fused])
    if len(t) == 1:
        return {fused[0]: (t[0] - 0.05, t[0] + 0.05)}
    start = np.concatenate([[2 * t[0] - t[1]], t[:-1]])
    end = np.concatenate([t[1:], [2 * t[-1] - t[-2]]])
    return {i: (float(a), float(b)) for i, a, b in zip(fused, start, end)}


def _time_spans(times: np.ndarray, fused: list[int]) -> dict[int, tuple[float, float]]:
    """When each fused frame's moving objects exist: from half-way to the previous fused frame to
    just before half-way to the next (held-out frames between them are covered, by the later
    frame at the exact middle), the ends extended by half a neighbour interval."""
    t = np.asarray([float(times[i]) for i in fused])
    if len(t) == 1:
        return {fused[0]: (t[0] - 0.05, t[0] + 0.05)}
    mid = (t[1:] + t[:-1]) / 2
    start = np.concatenate([[t[0] - (t[1] - t[0]) / 2], mid])
    end = np.concatenate([mid - 1e-6, [t[-1] + (t[-1] - t[-2]) / 2]])
    return {i: (float(a), float(b)) for i, a, b in zip(fused, start, end)}


class WorldFuser:
    """Accumulates surfels frame by frame, adding only what the world does not yet explain."""

    def __init__(self, intr: Intrinsics, settings: FusionSettings, device: torch.device):
        self.intr = intr
        self.settings = settings
        self.device = device
        self.parts: dict[str, list[np.ndarray]] = {k: [] for k in ("xyz", "rgb", "radius", "normal", "frame")}
        self.dynamic: dict[str, list[np.ndarray]] = {k: [] for k in ("xyz", "rgb", "radius", "normal", "frame",
                                                                     "t_start", "t_end")}
        self.cloud: PointCloud | None = None
        self.render_settings = RenderSettings(hole_fill_levels=0)
        self.local_points = 0
        self.fill_ceiling: np.ndarray | None = None      # HxW farthest filled depth (MVS's road plane)

    def _append_to_cloud(self, xyz, rgb, radius, normal) -> None:
        """Grow the device copy of the world by the new surfels only (no re-upload of the rest)."""
        new = PointCloud.from_arrays(xyz, rgb, radius, normal, device=self.device)
        if self.cloud is None:
            self.cloud = new
            return
        old = self.cloud
        # The packed surfel rows too: derived afresh they would be rebuilt for the whole cloud on
        # every frame (a fifth of the CPU fusion time on a 49-frame street).
        self.cloud = PointCloud(*(torch.cat([getattr(old, f), getattr(new, f)])
                                  for f in ("xyz", "rgb", "radius", "normal", "t_start", "t_end")),
                                surfel=torch.cat([old.surfel, new.surfel]))

    def add_frame(self, frame_id: int, rgb: np.ndarray, depth: np.ndarray, c2w: np.ndarray,
                  exclude: np.ndarray | None = None) -> int:
        """Add one frame's surfels the world does not yet explain; ``exclude`` (HxW bool): pixels
        never to add (points that other frames see through)."""
        if exclude is not None and exclude.any():
            depth = np.where(exclude, np.nan, depth)
        xyz, col, rad, nrm, valid = surfels_from_depth(rgb, depth, self.intr, c2w, self.settings, self.device)
        keep = np.ones(len(xyz), bool)
        cloud = self.cloud
        if cloud is not None and len(xyz):
            cams = Cameras.from_intrinsics(self.intr, c2w[None], self.device)
            with eager_rendering():         # a new cloud size every frame: compiling would cost more
                out = render_points(cloud, cams, None, self.render_settings, return_index=True)
            covered = out.coverage[0].cpu().numpy()[valid]
            shown = out.depth[0].cpu().numpy()[valid]
            shown_radius = cloud.radius[out.point_index[0].clamp_min(0)].cpu().numpy()  # radius of the drawn surfel
            existing_radius = shown_radius[valid]
            own_depth = (xyz - c2w[:3, 3]) @ c2w[:3, 2]
            s = self.settings
            new_surface = np.abs(shown - own_depth) > s.novelty_tolerance * own_depth
            coarser = existing_radius > s.refine_ratio * rad
            keep = ~covered | new_surface | coarser
        if keep.any():
            self.parts["xyz"].append(xyz[keep])
            self.parts["rgb"].append(col[keep])
            self.parts["radius"].append(rad[keep])
            self.parts["normal"].append(nrm[keep])
            self.parts["frame"].append(np.full(int(keep.sum()), frame_id, np.int32))
            self._append_to_cloud(xyz[keep], col[keep], rad[keep], nrm[keep])
        return int(keep.sum())

    def add_dynamic(self, frame_id: int, rgb: np.ndarray, depth: np.ndarray, c2w: np.ndarray,
                    mask: np.ndarray, t_start: float, t_end: float) -> int:
        """Add the pixels ``mask`` of one frame as dynamic points that exist from t_start to
        t_end (a moving object where this frame saw it)."""
        if not mask.any():
            return 0
        xyz, col, rad, nrm, valid = surfels_from_depth(rgb, np.where(mask, depth, np.nan), self.intr, c2w,
                                                       self.settings, self.device)
        if not len(xyz):
            return 0
        n = len(xyz)
        for k, v in (("xyz", xyz), ("rgb", col), ("radius", rad), ("normal", nrm),
                     ("frame", np.full(n, frame_id, np.int32)), ("t_start", np.full(n, t_start)),
                     ("t_end", np.full(n, t_end))):
            self.dynamic[k].append(v)
        return n

    def add_local(self, frame_id: int, rgb: np.ndarray, depth: np.ndarray, c2w: np.ndarray,
                  exclude: np.ndarray | None, t_start: float, t_end: float) -> int:
        """Add every valid pixel of one frame (but ``exclude``) to the frame-local layer, alive from
        t_start to t_end (FusionSettings.frame_local)."""
        keep = np.ones(depth.shape, bool) if exclude is None else ~exclude
        if self.settings.local_fill:
            depth = fill_unknown_depth(depth, self.settings.sky_distance, ceiling=self.fill_ceiling)
        n = self.add_dynamic(frame_id, rgb, depth, c2w, keep, t_start, t_end)
        self.local_points += n
        return n

    def dynamic_arrays(self) -> dict[str, np.ndarray]:
        """The dynamic layer as World fields (dynamic_xyz, ...); empty arrays when none."""
        if not self.dynamic["xyz"]:
            return {}
        out = {f"dynamic_{k}": np.concatenate(v) for k, v in self.dynamic.items()}
        out["dynamic_normal"] = encode_normals(out["dynamic_normal"])
        return out

    def arrays(self):
        if not self.parts["xyz"]:
            raise InputError("no frame gave any valid depth", "check the depth maps (0/NaN mean unknown)")
        return (np.concatenate(self.parts["xyz"]), np.concatenate(self.parts["rgb"]),
                np.concatenate(self.parts["radius"]), encode_normals(np.concatenate(self.parts["normal"])),
                np.concatenate(self.parts["frame"]))


def holdout_mask(count: int, every: int) -> np.ndarray:
    """Held-out frames: every K-th frame (K-1, 2K-1, ...), never the first or the last frame,
    so that each held-out view lies between frames of the world."""
    mask = np.zeros(count, bool)
    if every and every > 1:
        idx = np.arange(every - 1, count - 1, every)
        mask[idx[idx > 0]] = True
    elif every == 1:
        raise InputError("--holdout 1 would hold out every frame", "use 0 (none) or K >= 2")
    return mask


# Focal length assumed for a camera nobody calibrated: 1.2 x the longer image side (COLMAP's
# default prior; about 45 degrees across the longer side). Recorded in the world's metadata.
PRIOR_FOCAL_FACTOR = 1.2


def resolve_intrinsics(args_intrinsics: str | None, fs: FrameSet, width: int, height: int,
                       fov: float | None = None) -> tuple[Intrinsics, str]:
    """Intrinsics for frames of ``width`` x ``height`` and where they came from: --intrinsics
    (camera_info.yaml, KITTI calib.txt or fx,fy,cx,cy), --fov (horizontal degrees), the input's
    camera_info, or else the documented prior."""
    if args_intrinsics and fov is not None:
        raise InputError("both --intrinsics and --fov are given", "give one of them")
    if args_intrinsics:
        intr, source = parse_intrinsics(args_intrinsics, width, height), f"given ({args_intrinsics})"
    elif fov is not None:
        if not (np.isfinite(fov) and 1.0 < fov < 179.0):
            raise InputError(f"--fov {fov} is not a horizontal field of view", "give degrees between 1 and 179")
        intr, source = Intrinsics.from_fov(width, height, fov), f"--fov {fov:g} degrees (horizontal)"
    elif fs.camera_info is not None:
        intr, source = load_camera_info(fs.camera_info), f"given ({fs.camera_info.name})"
    elif fs.intrinsics is not None:
        intr, source = fs.intrinsics, "given (the input's camera_info)"
    else:
        f = PRIOR_FOCAL_FACTOR * max(width, height)
        intr = Intrinsics(f, f, (width - 1) / 2.0, (height - 1) / 2.0, width, height)
        source = (f"prior: focal length {PRIOR_FOCAL_FACTOR} x the longer side ({f:.1f} px), principal point at the "
                  "centre; not calibrated")
        fs.notes.append(f"no intrinsics given: {source} (pass --intrinsics or --fov for a calibrated camera)")
    if (intr.width, intr.height) != (width, height):
        if abs(intr.width / width - intr.height / height) > 0.01:
            raise InputError(f"intrinsics are for {intr.width}x{intr.height}, frames are {width}x{height}",
                             "give intrinsics of the frames' resolution")
        intr = intr.scaled(width, height)
    return intr, source


def build_world(input_path: str | Path, *, intrinsics: str | None = None, poses: str | None = None,
                depth: str | None = None, holdout: int = 0, stride: int = 1,
                settings: FusionSettings | None = None, device: str = "auto", bag_topics=None,
                start: float | None = None, end: float | None = None, max_size: int | None = None,
                fov: float | None = None, preview: str | Path | None = None, camera_height: float = 1.5,
                mvs: MVSSettings | None = None) -> World:
    """Fuse INPUT into a World; ``preview``: a folder for trajectory.png and depth_sample.png.
    Without depth maps the depth comes from multi-view stereo on the frames (``mvs``), with poses
    from monocular odometry scaled by ``camera_height`` (metres above the road) unless given.
    world.info["report"] summarises the build (frames, poses, depth coverage, points, warnings,
    seconds per stage)."""
    settings = settings or FusionSettings()
    if not (np.isfinite(camera_height) and camera_height > 0):
        raise InputError(f"--camera-height {camera_height} is not valid", "give the camera's height above the "
                         "road in metres, e.g. 1.5")
    if mvs is not None and mvs.propagate < 0:
        raise InputError(f"--mvs-propagate {mvs.propagate} is negative", "give 0 (off) or a number of passes")
    if mvs is not None and mvs.max_size is not None and mvs.max_size < 32:
        raise InputError(f"--mvs-size {mvs.max_size} is too small", "give the longer side in pixels, 32 or more")
    stage_s: dict[str, float] = {}
    t_stage = time.time()
    fs = open_input(input_path, bag_topics, start=start, end=end, stride=stride, max_size=max_size)
    if len(fs) < 2:
        raise InputError(f"input {input_path} has {len(fs)} frame(s) to use", "a world needs at least two frames "
                         "(check --start, --end and --stride)")
    first = fs.load(0)
    height, width = first.shape[:2]
    native_w, native_h = fs.native_size or (width, height)
    intr, intr_source = resolve_intrinsics(intrinsics, fs, native_w, native_h, fov)
    if (intr.width, intr.height) != (width, height):
        intr = intr.scaled(width, height)
        fs.notes.append(f"frames downscaled from {native_w}x{native_h} to {width}x{height} (--max-size)")
    whole = len(fs.all_names) if fs.all_names is not None else None

    estimate = poses == "estimate"
    pose_path = None if estimate else (Path(poses) if poses else fs.poses)
    pose_info: dict = {"pose_source": "given", "scale": "metric (given)"}
    if pose_path is None and fs.pose_array is not None and not estimate:
        c2w, pose_times, pose_label = fs.pose_array, None, fs.pose_source
    elif pose_path is None:
        c2w, pose_times, pose_label = None, None, "estimated (visual odometry)"    # after depth is known
    else:
        c2w, pose_times = read_poses(pose_path)
        pose_label = str(pose_path)
        if (whole is not None and len(c2w) != whole) or len(c2w) <= int(fs.index.max()):
            raise InputError(f"pose file {pose_path} has {len(c2w)} poses for {whole or len(fs)} frames",
                             "give one pose per frame of the whole input, in frame order")
        c2w = c2w[fs.index]
        pose_times = None if pose_times is None else pose_times[fs.index]
    times = fs.times if fs.times is not None else pose_times
    if times is None:
        times = fs.index.astype(np.float64) / 10.0
        fs.notes.append("no timestamps: assumed 10 frames/s")

    depth_dir = Path(depth) if depth else fs.depth_dir
    if depth_dir is not None:
        depth_maps = DepthMaps(depth_dir, fs.all_names if fs.all_names is not None else fs.names)
        by_number = fs.all_names is not None

        def load_depth(i: int, shape: tuple[int, int]) -> np.ndarray:
            d = depth_maps.load(int(fs.index[i]) if by_number else i, (native_h, native_w))
            return resize_depth(d, shape[1], shape[0])
        depth_label = str(depth_dir)
    elif fs.depth_load is not None:
        def load_depth(i: int, shape: tuple[int, int]) -> np.ndarray:
            d = fs.depth_load(i)
            if d.shape != (native_h, native_w):
                raise InputError(f"depth of frame {fs.names[i]} is {d.shape[1]}x{d.shape[0]}, its image "
                                 f"{native_w}x{native_h}", "record depth registered to the colour image")
            return resize_depth(d, shape[1], shape[0])
        depth_label = "in the input (" + next((n for n in fs.notes if n.startswith("depth")), "depth") + ")"
    else:
        load_depth, depth_label = None, "multi-view stereo (plane sweep on the frames)"

    stage_s["open input"] = round(time.time() - t_stage, 2)
    landmarks = None
    if c2w is None:
        t_stage = time.time()
        c2w, pose_info, landmarks = _estimate_poses(fs, intr, load_depth, (height, width), camera_height)
        stage_s["poses (visual odometry)"] = round(time.time() - t_stage, 2)

    held = holdout_mask(len(fs), holdout)       # frames of fs (already windowed and strided)
    dev = resolve_device(device)
    mvs_info = None
    moving_of = None
    fill_ceiling = None
    if load_depth is None:
        t_stage = time.time()
        load_depth, mvs_info, moving_of, fill_ceiling = _depth_from_video(fs, c2w, intr, held, landmarks,
                                                                            mvs or MVSSettings(), dev)
        stage_s["dense depth (MVS)"] = round(time.time() - t_stage, 2)
        factor = _road_scale_factor(pose_info, mvs_info, camera_height)
        if factor is not None:
            # The sparse road landmarks set the scale before MVS; the dense road plane measures
            # the camera height again from thousands of matched road pixels. Poses, depths and
            # the fill ceiling scale together: the same world, in metres that fit the road better.
            c2w = c2w.copy()
            c2w[:, :3, 3] *= factor
            load_depth = _scaled_depth(load_depth, factor)
            if fill_ceiling is not None:
                fill_ceiling = fill_ceiling * factor
            pose_info["scale"] += f"; refined x{factor:.4f} by the road plane of the dense depth"
            pose_info["scale_refinement"] = round(factor, 6)
    fuser = WorldFuser(intr, settings, dev)
    fuser.fill_ceiling = fill_ceiling
    started = time.time()
    added = []
    coverage = []
    fused_idx = [int(i) for i in np.nonzero(~held)[0]]
    spans = _time_spans(times, fused_idx)
    frame_local = settings.frame_local if settings.frame_local is not None else mvs_info is not None
    local_spans = _local_spans(times, fused_idx) if frame_local else {}
    rejected = {}
    # The view check needs every fused frame's depth (and, with moving regions, its image) at
    # once; the fusion below takes them from here instead of loading and decoding them again.
    maps: dict[int, np.ndarray] = {}
    colours: dict[int, np.ndarray] = {}
    if settings.check_neighbours > 0:
        t_check = time.time()
        maps = {i: load_depth(i, (height, width)) for i in fused_idx}
        counts = seen_through(maps, {i: c2w[i] for i in fused_idx}, intr, settings, dev)
        rejected = {i: counts[i] >= settings.check_violations for i in fused_idx}
        if moving_of is None:
            # Given depth: large regions that other frames see through moved (a car that was
            # there at this frame's time only); small ones are errors and are only dropped.
            moving_of = {i: _large_regions(rejected[i], settings.moving_min_area) for i in fused_idx}
        if any(m.any() for m in moving_of.values()):
            colours = {i: fs.load(i) for i in fused_idx}
            moving_of = spread_moving(moving_of, maps, {i: c2w[i] for i in fused_idx}, intr, settings, colours)
        stage_s["view consistency"] = round(time.time() - t_check, 2)
    for i in progress(range(len(fs)), desc="fusing frames", unit="frame"):
        if held[i]:
            continue
        rgb = colours.pop(i) if i in colours else first if i == 0 else fs.load(i)
        if rgb.shape[:2] != (height, width):
            raise InputError(f"frame {fs.names[i]} of {input_path} is {rgb.shape[1]}x{rgb.shape[0]}, "
                             f"the first is {width}x{height}", "give frames of one size")
        frame_depth = maps.pop(i) if i in maps else load_depth(i, (height, width))
        coverage.append(float((np.isfinite(frame_depth) | np.isposinf(frame_depth)).mean()))
        moving = None if moving_of is None else moving_of.get(i)
        exclude = rejected.get(i)
        if moving is not None and moving.any():
            exclude = moving if exclude is None else exclude | moving
            t0, t1 = spans[i]
            fuser.add_dynamic(int(fs.index[i]), rgb, frame_depth, c2w[i], moving, t0, t1)
        added.append(fuser.add_frame(int(fs.index[i]), rgb, frame_depth, c2w[i], exclude))
        if frame_local:
            # The frame's own surfels, seen-through ones included (the check compares with frames
            # far away, whose depth is the less reliable one); moving objects stay in their own spans.
            fuser.add_local(int(fs.index[i]), rgb, frame_depth, c2w[i], moving, *local_spans[i])
    xyz, rgb, radius, normal, frame = fuser.arrays()
    dynamic = fuser.dynamic_arrays()
    stage_s["fusion"] = round(time.time() - started, 2)

    world_idx = np.nonzero(~held)[0]
    held_idx = np.nonzero(held)[0]
    source = Path(input_path)
    depth_source = "given" if mvs_info is None else "multi-view stereo"
    world = World(
        intrinsics=intr, static_xyz=xyz, static_rgb=rgb, static_radius=radius, static_normal=normal,
        static_frame=frame, frame_c2w=c2w[world_idx], frame_time=times[world_idx], frame_index=fs.index[world_idx],
        heldout_c2w=c2w[held_idx], heldout_time=times[held_idx], heldout_index=fs.index[held_idx],
        **dynamic,
        provenance={
            "source": str(source.resolve()),
            "source_sha256": sha256_of(source),
            "poses": pose_label, "depth": depth_label,
            "settings": {**asdict(settings), "holdout": holdout, "stride": stride, "start": start, "end": end,
                         "max_size": max_size},
            "builder": f"inspatio_ros {__version__}",
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
        info={
            **pose_info, "depth_source": depth_source,
            **({"frame_local": True, "frame_local_points": int(fuser.local_points)} if frame_local else {}),
            **({} if mvs_info is None else {"mvs": mvs_info}),
            "intrinsics_source": intr_source,
            "frame_names": list(fs.names),
            "points_added_per_frame": added,
            "build_seconds": round(time.time() - started, 2),
            "notes": fs.notes,
        },
    )
    odometry = pose_info.get("odometry")
    world.info["report"] = {
        "frames_used": int(len(world_idx)), "frames_held_out": int(len(held_idx)),
        "image_size": [width, height],
        "poses": pose_info["pose_source"] + ("" if odometry is None else
                                             f": {odometry['located']}/{odometry['frames']} frames located, "
                                             f"{len(odometry['segments'])} segment(s), reprojection "
                                             f"{odometry['reprojection_px']} px"),
        "scale": pose_info["scale"],
        "depth": depth_source,
        "depth_coverage": round(float(np.mean(coverage)), 4) if coverage else 0.0,
        "seen_through": round(float(np.mean([r.mean() for r in rejected.values()])), 4) if rejected else 0.0,
        "points_static": int(world.num_static),
        "points_dynamic": int(len(world.dynamic_xyz) - fuser.local_points), "points_frame_local": int(fuser.local_points),
        "warnings": list(fs.notes),
        "seconds": stage_s,
    }
    world.validate("built world")
    if preview is not None:
        from .preview import write_preview

        middle = int(world_idx[len(world_idx) // 2])
        truth = None
        if world.info["pose_source"].startswith("estimated") and fs.poses is not None:
            truth_all, _ = read_poses(fs.poses)
            if len(truth_all) > int(fs.index.max()):
                truth = truth_all[np.sort(fs.index)]
        write_preview(preview, world, (fs.load(middle), load_depth(middle, (height, width)), int(fs.index[middle])),
                      truth, device=device)
    return world


def format_report(report: dict) -> str:
    """The build report as a few lines for the terminal."""
    lines = [f"  frames      {report['frames_used']} used, {report['frames_held_out']} held out, "
             f"{report['image_size'][0]}x{report['image_size'][1]}",
             f"  poses       {report['poses']}",
             f"  scale       {report['scale']}",
             f"  depth       {report.get('depth', 'given')}: {100 * report['depth_coverage']:.1f} % of pixels known",
             f"  points      {report['points_static']:,} static, {report['points_dynamic']:,} dynamic"
             + (f", {report['points_frame_local']:,} frame-local" if report.get("points_frame_local") else "")
             + (f" ({100 * report['seen_through']:.1f} % of pixels seen through by other frames, dropped)"
                if report.get("seen_through") else ""),
             "  seconds     " + ", ".join(f"{k} {v:g}" for k, v in report["seconds"].items())]
    lines += [f"  warning     {w}" for w in report["warnings"]]
    return "\n".join(lines)


def _estimate_poses(fs: FrameSet, intr: Intrinsics, load_depth, shape, camera_height: float):
    """Poses of the frames by visual odometry. With depth maps it is RGB-D odometry: landmarks
    from the depth, so the poses are metric and agree with the depth that is fused. Without,
    monocular odometry, scaled by the camera's height above the road (a driving camera); when
    that finds no road the world stays in odometry units. Returns (c2w, world.info entries,
    landmarks (M,3) that bound the depth for MVS)."""
    from .odometry import estimate_poses, segment_scales_from_camera_height

    depth_of = None if load_depth is None else (lambda i: load_depth(i, shape))
    result = estimate_poses(fs.load, len(fs), intr, depth_of=depth_of)
    if result.located.sum() < max(2, 0.5 * len(fs)):
        detail = "; ".join(result.warnings[:3])
        raise InputError(f"visual odometry located {int(result.located.sum())} of {len(fs)} frames of "
                         f"{fs.source} ({detail})", "pass --poses FILE, or give frames with more texture and "
                         "resolution (the odometry tracks corners; 320x180 or more)")
    scales = None
    if depth_of is not None:
        how = "metric (RGB-D odometry on the given depth maps)"
    else:
        scales = segment_scales_from_camera_height(result, camera_height, intr)
        if scales is not None and all(np.isfinite(x) and x > 0 for x in scales):
            result = result.scaled_segments(scales, "camera height")
            how = f"metric (camera height {camera_height:g} m above the road"
            how += ")" if len(scales) == 1 else f", each of {len(scales)} segments scaled by its own)"
        else:
            how = "unscaled"
            fs.notes.append("no scale found (no road seen below the camera): the world is in odometry units, "
                            "not metres; give --poses with metric poses for a metric world")
    for w in result.warnings:
        fs.notes.append(f"visual odometry: {w}")
    landmarks = np.array(list(result.landmark_by_id.values())) if result.landmark_by_id else None
    report = result.report()
    if depth_of is None and scales is not None:
        report["segment_scales"] = [round(float(x), 6) for x in scales]
    return result.c2w, {"pose_source": "estimated (visual odometry)", "scale": how,
                        "odometry": report}, landmarks


# The dense road plane may correct the sparse camera-height scale by at most this much (relative):
# a larger disagreement means one of the two fits is not the road, and the sparse one is kept.
MAX_ROAD_SCALE_CHANGE = 0.1


def _road_scale_factor(pose_info: dict, mvs_info: dict | None, camera_height: float) -> float | None:
    """camera_height / the camera's height above MVS's road plane (pose units), when the poses
    were scaled by the camera height as one segment (several segments have scales of their own,
    which one plane over all frames cannot tell apart) and the two agree within
    MAX_ROAD_SCALE_CHANGE; else None."""
    if mvs_info is None or "road_plane" not in mvs_info:
        return None
    if not str(pose_info.get("scale", "")).startswith("metric (camera height"):
        return None
    if len(pose_info.get("odometry", {}).get("segment_scales", [])) != 1:
        return None
    height = float(mvs_info["road_plane"]["distance"])
    if not (np.isfinite(height) and height > 0):
        return None
    factor = camera_height / height
    return factor if abs(factor - 1.0) <= MAX_ROAD_SCALE_CHANGE else None


def _scaled_depth(load_depth, factor: float):
    def load(i: int, shape: tuple[int, int]) -> np.ndarray:
        return load_depth(i, shape) * np.float32(factor)
    return load


# Below this share of measured pixels (sky not counted) MVS has failed: wrong intrinsics or poses,
# no texture or no camera motion. A street at 640x360 measures 10-20 % (half of it is blank).
MIN_MVS_COVERAGE = 0.05


def _depth_from_video(fs: FrameSet, c2w: np.ndarray, intr: Intrinsics, held: np.ndarray, landmarks,
                      settings: MVSSettings, device: torch.device):
    """Dense depth of every fused frame by multi-view stereo against the other fused frames (held-out
    frames are never looked at). Returns load_depth(i, shape), the world.info entry, the moving
    masks per frame and the depth ceiling of hole filling (HxW, NaN: none; None without a road)."""
    from .mvs import dense_depth, depth_coverage

    fused = [int(i) for i in np.nonzero(~held)[0]]
    started = time.time()
    result = dense_depth(fs.load, c2w, intr, fused, settings, device, sources=fused, landmarks=landmarks)
    maps, moving = result.maps, result.moving
    seconds = time.time() - started
    measured = [depth_coverage(maps[i][0]) for i in fused]
    sky = [float(np.isposinf(maps[i][0]).mean()) for i in fused]
    coverage = float(np.mean(measured)) if measured else 0.0
    if coverage < MIN_MVS_COVERAGE:
        raise InputError(f"multi-view stereo measured depth at {100 * coverage:.1f} % of the pixels of {fs.source}",
                         "pass --depth DIR, give a video with more texture and camera motion, or check "
                         "--intrinsics and --poses (wrong geometry matches nothing)")

    def load_depth(i: int, shape: tuple[int, int]) -> np.ndarray:
        if i not in maps:
            raise InputError(f"frame {fs.names[i]} has no MVS depth (held out)", "this is a bug; please report it")
        return resize_depth(maps[i][0], shape[1], shape[0])
    info = {"coverage": round(coverage, 4), "sky": round(float(np.mean(sky)), 4),
            "seconds_per_frame": round(seconds / max(len(fused), 1), 3), "device": str(device),
            "moving_pixels": round(float(np.mean([m.mean() for m in moving.values()])), 5) if moving else 0.0,
            "settings": asdict(settings)}
    if result.road_plane is not None:
        info["road_plane"] = {"normal": [round(float(x), 5) for x in result.road_plane[0]],
                              "distance": round(result.road_plane[1], 4)}
    return load_depth, info, moving, result.ceiling


def register(subparsers) -> None:
    p = subparsers.add_parser("build", help="fuse a video/images with given or estimated poses and depth into a world file",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="video file, image folder, dataset folder (frames/, camera_info.yaml, poses, "
                                 "depth/), or rosbag2 bag (folder or .mcap)")
    p.add_argument("-o", "--output", help="world file to write (.safetensors)")
    p.add_argument("--intrinsics", help="camera_info.yaml or fx,fy,cx,cy (default: the folder's camera_info.yaml)")
    p.add_argument("--poses", help="camera poses: TUM, KITTI or per-frame 4x4 file (default: the folder's; "
                                   "'estimate': visual odometry even where the input has poses)")
    p.add_argument("--depth", help="folder of depth maps: .npy metres or 16-bit .png millimetres (default: DIR/depth)")
    p.add_argument("--holdout", type=int, default=0, help="keep every K-th frame out of the world, for eval")
    p.add_argument("--stride", type=int, default=1, help="use every S-th frame (of the --start/--end window)")
    p.add_argument("--start", type=float, help="seconds since the first frame where the build starts")
    p.add_argument("--end", type=float, help="seconds since the first frame where the build ends")
    p.add_argument("--max-size", type=int, help="downscale frames so that the longer side is at most this (pixels)")
    p.add_argument("--fov", type=float, help="horizontal field of view in degrees, when no intrinsics are known")
    p.add_argument("--preview", metavar="DIR", help="write trajectory.png and depth_sample.png there")
    p.add_argument("--camera-height", type=float, default=1.5,
                   help="metres of the camera above the road: the scale of poses estimated from video alone")
    p.add_argument("--mvs-size", type=int, help="longer side (px) at which multi-view stereo matches frames "
                                                "(default 640 on CPU, 1280 on CUDA)")
    p.add_argument("--mvs-propagate", type=int, default=MVSSettings.propagate, metavar="PASSES",
                   help="passes propagating MVS depth into unmeasured pixels (road plane, neighbours), each "
                        "checked against the other frames (0: only matched pixels)")
    p.add_argument("--sky-distance", type=float, default=FusionSettings.sky_distance,
                   help="metres at which infinite depth (sky) is placed")
    p.add_argument("--frame-local", choices=("auto", "on", "off"), default="auto",
                   help="also keep each fused frame's own surfels, shown around its time in front of the merged "
                        "static layer (auto: on when the depth comes from multi-view stereo)")
    bag = p.add_argument_group("rosbag2 input (topics default to what the bag holds; see --list)")
    bag.add_argument("--list", action="store_true", help="print the bag's topics and the ones a build would read")
    bag.add_argument("--image-topic", help="sensor_msgs/Image or CompressedImage topic")
    bag.add_argument("--camera-info-topic", help="sensor_msgs/CameraInfo topic")
    bag.add_argument("--odom-topic", help="nav_msgs/Odometry topic for the poses")
    bag.add_argument("--depth-topic", help="depth image topic (32FC1 metres / 16UC1 mm, registered)")
    bag.add_argument("--lidar-topic", help="sensor_msgs/PointCloud2 topic projected into the frames for depth")
    p.set_defaults(func=run)


def run(args) -> int:
    from .bag import BagTopics, is_bag, open_bag

    topics = BagTopics(args.image_topic, args.camera_info_topic, args.odom_topic, args.depth_topic, args.lidar_topic)
    given = [f"--{n}-topic" for n, v in (("image", args.image_topic), ("camera-info", args.camera_info_topic),
                                          ("odom", args.odom_topic), ("depth", args.depth_topic),
                                          ("lidar", args.lidar_topic)) if v]
    if (args.list or given) and not is_bag(args.input):
        flag = "--list" if args.list else given[0]
        raise InputError(f"{flag} is for rosbag2 input; {args.input} is not a bag",
                         "give a rosbag2 folder (with metadata.yaml) or an .mcap file")
    if args.list:
        print(open_bag(args.input, topics, list_only=True).describe())
        return 0
    if not args.output:
        raise InputError("no output world file given", "pass -o WORLD.safetensors")
    output = Path(args.output)
    if output.suffix != ".safetensors":
        raise InputError(f"output {output} does not end in .safetensors", "name the world file WORLD.safetensors")
    settings = FusionSettings(sky_distance=args.sky_distance,
                              frame_local={"auto": None, "on": True, "off": False}[args.frame_local])
    world = build_world(args.input, intrinsics=args.intrinsics, poses=args.poses, depth=args.depth,
                        holdout=args.holdout, stride=args.stride, settings=settings, device=args.device,
                        bag_topics=topics, start=args.start, end=args.end, max_size=args.max_size, fov=args.fov,
                        preview=args.preview, camera_height=args.camera_height,
                        mvs=MVSSettings(max_size=args.mvs_size, propagate=args.mvs_propagate))
    world.save(output)
    print(f"wrote {output}: {world.num_static:,} points from {len(world.frame_c2w)} frames, "
          f"{len(world.heldout_c2w)} held out, {output.stat().st_size / 1e6:.1f} MB")
    print(format_report(world.info["report"]))
    if args.preview:
        print(f"pictures in {args.preview}: trajectory.png, depth_sample.png")
    return 0
