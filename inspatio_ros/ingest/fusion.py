"""Fusion: frames with their poses and depth into the surfels of a world.

Fusion keeps the world near one point per visible pixel: each frame is back-projected to
surfels (position, colour, normal from the depth gradient, radius from the pixel footprint), the
world built so far is rendered into that frame, and only pixels the world does not yet explain
are added: uncovered pixels, pixels whose depth disagrees (new surfaces), and pixels where the
world's surfels are much coarser than this frame samples them (the camera came closer). Every
point remembers its source frame (``static.frame``), so later stages can address points by time.

Before fusing, each frame's points are checked against the fused frames around it
(consistency.py): a point that other frames see through is a wrong depth or something that
moved, and is dropped. Moving regions (found by MVS, or large seen-through regions of given
depth) go into the dynamic layer, each point existing for its frame's share of time.

With depth from multi-view stereo (``FusionSettings.frame_local``), every fused frame's own
surfels are also kept whole, unknown depth interpolated, in a frame-local layer (stored with the
dynamic layer): alive from the previous fused frame's time to the next one's and drawn in front of
the static layer, so a view at a recorded time shows what the frames beside it saw.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..camera import Intrinsics
from ..errors import InputError
from ..progress import progress
from ..render import Cameras, PointCloud, RenderSettings, eager_rendering, render_points
from ..runtime import return_free_memory, thread_kernel
from ..world import encode_normals
from .ahead import Ahead, ahead_enabled
from .consistency import SeenThrough, large_regions, nearer_evidence, spread_moving_at, view_check_kernels
from .depth import Depth
from .frames import Frames
from .poses import Poses
from .spill import AppendColumn


@dataclass(frozen=True)
class FusionSettings:
    sky_distance: float = 1000.0     # metres: where +inf depth (sky) is placed, a far background shell
    max_depth: float = 300.0         # metres: finite depths beyond this are dropped as unreliable
    overlap: float = 1.5             # surfel diameter / pixel footprint (>1 closes gaps between points)
    novelty_tolerance: float = 0.03  # relative depth difference that makes a pixel a new surface
    # Relative uncertainty of one depth map (None: the depth source's own: multi-view stereo keeps
    # depths whose 0.5 px match error moves them by up to MVSSettings.max_depth_uncertainty; given
    # depth: 0). Two maps of one surface then differ by up to sqrt(2) times that, and a pixel is a
    # new surface only beyond it (same_surface_tolerance): with 3 % against MVS's 5 %, a third of
    # every frame's pixels were added again as hidden shells behind the nearest earlier
    # measurement (docs/notes/2026-12-05-build-memory.md).
    depth_uncertainty: float | None = None
    refine_ratio: float = 1.6        # add a pixel when the world's surfel is this much coarser
    grazing_limit: float = 0.25      # cos of the steepest view angle a surfel is sized for
    edge_jump: float = 0.1           # relative depth step to a nearer neighbour that marks an edge
    check_neighbours: int = 16       # fused frames either side that check each frame's points (0: off)
    check_tolerance: float = 0.05    # relative depth margin of that check
    check_violations: int = 2        # neighbours seeing through a point that remove it (floater or moving)
    moving_min_area: float = 0.001   # given depth: seen-through regions this share of the image are moving
    # Fused frames either side whose surfaces correct a frame's depth where it is too far or
    # unknown (consistency.nearer_evidence: evidence_votes neighbours saw a static surface at about
    # one depth in front of what the frame shows there, filled as in the frame-local layer; the
    # frame gets their median). Held-out views are drawn from the frame-local layer, so such a
    # frame's error reaches them whole: on street seed 1 at 480x270 a near building top taken for
    # sky in one frame, 0.9 % of a held-out view, tripled that view's AbsRel
    # (docs/notes/2026-12-05-world-depth.md). None: 3 for depth from multi-view stereo, 0 (off)
    # for given depth. Needs the view check (check_neighbours > 0).
    evidence_neighbours: int | None = None
    evidence_votes: int = 2          # neighbours that must agree on the nearer surface
    # Frame-local layer: every fused frame's own surfels, all of them (not only what the merged
    # world lacks), alive from the previous fused frame's time to the next one's and drawn in
    # front of the static layer (render.Renderer). A view at a recorded time then shows what the
    # frames beside it measured instead of surfaces other frames measured from far away. None: on
    # for depth from multi-view stereo (per-frame depths that disagree between distant frames).
    frame_local: bool | None = None
    local_fill: bool = True          # frame-local surfels also where the depth is unknown (interpolated)
    # Fused frames a static surfel stays in the world a new frame is compared with after it was last
    # drawn in one (0: forever). Comparing with the whole world made fusion's time grow with the
    # square of the video's length (every frame rendered every surfel so far).
    active_window: int = 32
    # The static layer's points in all (0: no limit). Each fused frame adds at most its even share
    # (unused shares pass to later frames); a frame over it adds every S-th pixel across and down of
    # what it would add, radius S times larger (static_grid_step), and the report says on how many
    # frames. A drive adds ~23 % of each frame's pixels (street s0 480x270; mostly refinement as
    # surfaces come closer): a 10-minute 640x360 10 Hz video would add ~320 M points (8.4 GB); the
    # clips measured so far stay far below the budget (the dashcam clip at 640 px: 18.3 M).
    static_max_points: int = 100_000_000
    # The frame-local layer holds every pixel of every fused frame: 230 k points (9.7 MB) a frame at
    # 640x360, 58 GB for 10 minutes at 10 frames/s. Beyond this many points in all, each frame's
    # local surfels are thinned to every S-th pixel across and down (S as small as fits; radius S
    # times larger). The clips measured so far (the dashcam clip at 640 px: 51 M) stay whole.
    local_max_points: int = 60_000_000


def same_surface_tolerance(settings: FusionSettings, mvs_info: dict | None) -> float:
    """The relative depth difference within which a pixel and the world's surfel drawn there are
    one surface: settings.novelty_tolerance, or the combined uncertainty of two depth maps
    (sqrt(2) x one map's: FusionSettings.depth_uncertainty, else the MVS settings' own bound) where
    that is larger."""
    uncertainty = settings.depth_uncertainty
    if uncertainty is None:
        uncertainty = 0.0 if mvs_info is None else float(mvs_info["settings"]["max_depth_uncertainty"])
    if not (np.isfinite(uncertainty) and uncertainty >= 0):
        raise InputError(f"depth uncertainty {uncertainty} is not valid", "give a relative uncertainty >= 0, e.g. 0.05")
    return max(settings.novelty_tolerance, float(np.sqrt(2.0)) * uncertainty)


def surfels_from_depth(rgb: np.ndarray, depth: np.ndarray, intr: Intrinsics, c2w: np.ndarray,
                       settings: FusionSettings, device: torch.device | str | None = None):
    """Back-project one frame: world xyz, rgb, radius, unit normals (0 where unknown), pixel mask.
    Runs in float32 torch on ``device`` (default: the CPU): per pixel of every fused frame, twice
    with the frame-local layer, it was two thirds of a full-size KITTI fusion in numpy."""
    dev = torch.device(device) if device is not None else torch.device("cpu")
    H, W = depth.shape
    kernels = view_check_kernels() if dev.type == "cpu" else None
    if kernels is not None:
        # The same steps as one numba kernel (cpu_kernels.surfels_from_depth): three passes over
        # the image instead of ~50 PyTorch operations, half of the CPU fusion time.
        xyz, nrm_w, radius, pixel, valid_np = thread_kernel(kernels.surfels_from_depth)(
            np.ascontiguousarray(depth, dtype=np.float32), float(intr.fx), float(intr.fy), float(intr.cx),
            float(intr.cy), float(settings.sky_distance), float(settings.max_depth), float(settings.edge_jump),
            float(settings.overlap), float(settings.grazing_limit), np.ascontiguousarray(c2w[:3, :3], np.float32),
            np.ascontiguousarray(c2w[:3, 3], np.float32))
        return xyz, rgb.reshape(H * W, -1)[pixel].reshape(len(pixel), *rgb.shape[2:]), radius, nrm_w, valid_np
    depth_t = torch.from_numpy(np.array(depth, dtype=np.float32)).to(dev)     # a copy: store maps are read-only
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


def fill_unknown_depth(depth: np.ndarray, sky_distance: float, levels: int = 8,
                       ceiling: np.ndarray | None = None) -> np.ndarray:
    """Unknown (NaN) pixels of a depth map given the inverse depth interpolated from the known ones
    (push-pull over an image pyramid; sky counts as known at ``sky_distance``). For the frame-local
    layer: seen from the frames beside this one, a pixel's own colour at a guessed depth is off by
    little parallax, while hole filling the render there blurs colours from around it.
    ``ceiling`` (HxW, NaN: none): the farthest depth a filled pixel may get (below the horizon a
    static point lies before the road plane: interpolating from sky and far road across a blank
    car side would put the car behind the road)."""
    from ..render.fill import push_pull

    known = np.isfinite(depth) & (depth > 0) | np.isposinf(depth)
    if known.all() or not known.any():
        return depth
    inv = np.where(np.isposinf(depth), 1.0 / sky_distance, 1.0 / np.where(known & ~np.isposinf(depth), depth, 1.0))
    inv = torch.from_numpy(np.where(known, inv, 0.0).astype(np.float32))[None, None]
    filled, have = push_pull(inv, torch.from_numpy(known)[None, None], levels)
    filled, have = filled[0, 0].numpy(), have[0, 0].numpy()
    use = ~known & have & (filled > 0)
    out = depth.copy()
    out[use] = 1.0 / filled[use]
    if ceiling is not None:
        with np.errstate(invalid="ignore"):
            over = use & np.isfinite(ceiling) & (out > ceiling)
        out[over] = ceiling[over]
    return out


def frame_local_time_spans(times: np.ndarray, fused: list[int]) -> dict[int, tuple[float, float]]:
    """When each fused frame's frame-local surfels exist: from the previous fused frame's time to
    the next one's (both included), so that at any time between two fused frames both are shown and
    at a fused frame's own time also its neighbours; the ends extended by one interval."""
    t = np.asarray([float(times[i]) for i in fused])
    if len(t) == 1:
        return {fused[0]: (t[0] - 0.05, t[0] + 0.05)}
    start = np.concatenate([[2 * t[0] - t[1]], t[:-1]])
    end = np.concatenate([t[1:], [2 * t[-1] - t[-2]]])
    return {i: (float(a), float(b)) for i, a, b in zip(fused, start, end)}


def moving_time_spans(times: np.ndarray, fused: list[int]) -> dict[int, tuple[float, float]]:
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

    def __init__(self, intr: Intrinsics, settings: FusionSettings, device: torch.device,
                 fill_ceiling: np.ndarray | None = None, same_surface: float | None = None):
        self.intr = intr
        self.settings = settings
        # relative depth difference within which a pixel is the surface already drawn there
        self.same_surface = settings.novelty_tolerance if same_surface is None else same_surface
        self.device = device
        # The world's surfels go to disk as they are made (spill.AppendColumn) and are read back
        # once, at the end: in lists of chunks and concatenated they were in memory twice.
        columns = {"xyz": ((3,), np.float32), "rgb": ((3,), np.uint8), "radius": ((), np.float32),
                   "normal": ((3,), np.int8), "frame": ((), np.int32)}
        self.parts = {k: AppendColumn(shape, dtype) for k, (shape, dtype) in columns.items()}
        self.dynamic = {k: AppendColumn(shape, dtype) for k, (shape, dtype) in
                        {**columns, "t_start": ((), np.float64), "t_end": ((), np.float64)}.items()}
        self.cloud: PointCloud | None = None
        self.render_settings = RenderSettings(hole_fill_levels=0)
        self.local_points = 0
        self.fill_ceiling = fill_ceiling      # HxW farthest filled depth (MVS's road plane), NaN: none
        # The frames added so far, and per surfel of ``cloud`` (the ones new frames are compared
        # with) the last of them it was drawn in: surfels not drawn for settings.active_window
        # frames leave ``cloud`` (they stay in the world), so it holds what the recent frames see.
        self.frames_added = 0
        self.thinned_frames = 0      # frames whose added surfels were thinned to their budget
        self.last_drawn: torch.Tensor | None = None
        self._room: dict[str, torch.Tensor] | None = None    # the buffers cloud and last_drawn begin
        self.peak_active = 0
        # On the CPU the world is rendered into each new frame by the renderer's numba kernels
        # (render/cpu.py: the same images as render_points, test_render_cpu.py), several times
        # faster than eager PyTorch; INSPATIO_CPU_KERNELS=0 keeps PyTorch, as for the Renderer.
        self.cpu_kernels = False
        if device.type == "cpu" and os.environ.get("INSPATIO_CPU_KERNELS") != "0":
            from ..render import cpu

            self.cpu_kernels = cpu.available()

    _CLOUD_FIELDS = ("xyz", "rgb", "radius", "normal", "t_start", "t_end", "surfel")

    def _append_to_cloud(self, xyz, rgb, radius, normal) -> None:
        """Grow the device copy of the world by the new surfels only (no re-upload of the rest).
        The cloud's fields are the first rows of buffers with room to spare, the new rows are
        written after them: concatenating copied the whole cloud (~3 M surfels, 80 bytes each, on
        the dashcam at 640 px) for every frame; now it is copied when the buffers fill up, or
        after _retire_unseen compacted it (every 8th frame at most)."""
        new = PointCloud.from_arrays(xyz, rgb, radius, normal, device=self.device)
        drawn = torch.full((len(new),), self.frames_added, dtype=torch.int64, device=self.device)
        if self.cloud is None:
            self.cloud, self.last_drawn, self._room = new, drawn, None
            return
        old, n, m = self.cloud, len(self.cloud), len(new)
        if self._room is None or n + m > len(self._room["xyz"]):
            # (Also the packed surfel rows: derived afresh they would be rebuilt for the whole
            # cloud on every frame, a fifth of the CPU fusion time on a 49-frame street.)
            capacity = (n + m) * 3 // 2 + 1024
            self._room = {f: torch.empty((capacity, *getattr(old, f).shape[1:]), dtype=getattr(old, f).dtype,
                                         device=self.device) for f in self._CLOUD_FIELDS}
            self._room["last_drawn"] = torch.empty(capacity, dtype=torch.int64, device=self.device)
            for f in self._CLOUD_FIELDS:
                self._room[f][:n] = getattr(old, f)
            self._room["last_drawn"][:n] = self.last_drawn
        for f in self._CLOUD_FIELDS:
            self._room[f][n:n + m] = getattr(new, f)
        self._room["last_drawn"][n:n + m] = drawn
        self.cloud = PointCloud(*(self._room[f][:n + m] for f in self._CLOUD_FIELDS[:-1]),
                                surfel=self._room["surfel"][:n + m])
        self.last_drawn = self._room["last_drawn"][:n + m]

    def _retire_unseen(self) -> None:
        """Drop from ``cloud`` the surfels not drawn in the last settings.active_window frames
        (every 8th frame: compacting costs a copy of the cloud)."""
        window = self.settings.active_window
        if not window or self.cloud is None or self.frames_added % 8:
            return
        recent = self.last_drawn >= self.frames_added - window
        if not bool(recent.all()):
            self.cloud = self.cloud.take(recent)
            self.last_drawn = self.last_drawn[recent]
            self._room = None           # the compacted cloud holds its own copies

    def add_frame(self, frame_id: int, rgb: np.ndarray, depth: np.ndarray, c2w: np.ndarray,
                  exclude: np.ndarray | None = None, budget: int | None = None) -> int:
        """Add one frame's surfels the world does not yet explain; ``exclude`` (HxW bool): pixels
        never to add (points that other frames see through); ``budget``: the most points to add
        (None: no limit; over it the added pixels are thinned, static_grid_step)."""
        if exclude is not None and exclude.any():
            depth = np.where(exclude, np.nan, depth)
        xyz, col, rad, nrm, valid = surfels_from_depth(rgb, depth, self.intr, c2w, self.settings, self.device)
        keep = np.ones(len(xyz), bool)
        cloud = self.cloud
        if cloud is not None and len(xyz):
            cams = Cameras.from_intrinsics(self.intr, c2w[None], self.device)
            if self.cpu_kernels:
                from ..render.cpu import render_points_cpu

                out = render_points_cpu(cloud, cams, None, self.render_settings, return_index=True)
            else:
                with eager_rendering():     # a new cloud size every frame: compiling would cost more
                    out = render_points(cloud, cams, None, self.render_settings, return_index=True)
            drawn = out.point_index[0].reshape(-1)
            self.last_drawn[drawn[drawn >= 0]] = self.frames_added
            covered = out.coverage[0].cpu().numpy()[valid]
            shown = out.depth[0].cpu().numpy()[valid]
            shown_radius = cloud.radius[out.point_index[0].clamp_min(0)].cpu().numpy()  # radius of the drawn surfel
            existing_radius = shown_radius[valid]
            own_depth = (xyz - c2w[:3, 3]) @ c2w[:3, 2]
            s = self.settings
            new_surface = np.abs(shown - own_depth) > self.same_surface * own_depth
            coarser = existing_radius > s.refine_ratio * rad
            keep = ~covered | new_surface | coarser
        if budget is not None and keep.sum() > budget:
            step = static_grid_step(keep, valid, budget)
            keep &= _grid(valid.shape, step)[valid]
            rad = rad * np.float32(step)
            self.thinned_frames += 1
        if keep.any():
            self.parts["xyz"].append(xyz[keep])
            self.parts["rgb"].append(col[keep])
            self.parts["radius"].append(rad[keep])
            self.parts["normal"].append(encode_normals(nrm[keep]))
            self.parts["frame"].append(np.full(int(keep.sum()), frame_id, np.int32))
            self._append_to_cloud(xyz[keep], col[keep], rad[keep], nrm[keep])
        self.peak_active = max(self.peak_active, 0 if self.cloud is None else len(self.cloud))
        self.frames_added += 1
        self._retire_unseen()
        return int(keep.sum())

    def dynamic_surfels(self, rgb: np.ndarray, depth: np.ndarray, c2w: np.ndarray, mask: np.ndarray,
                        step: int = 1) -> tuple | None:
        """The surfels of the pixels ``mask`` of one frame as dynamic-layer columns (xyz, rgb,
        radius, encoded normal), None when there are none; ``step`` > 1: only every step-th pixel
        across and down, its surfel step times larger. Depends on its arguments only (fuse makes
        them on its view-check thread)."""
        if not mask.any():
            return None
        xyz, col, rad, nrm, valid = surfels_from_depth(rgb, np.where(mask, depth, np.nan), self.intr, c2w,
                                                       self.settings, self.device)
        if step > 1:
            pick = _grid(valid.shape, step)[valid]
            xyz, col, rad, nrm = xyz[pick], col[pick], rad[pick] * np.float32(step), nrm[pick]
        if not len(xyz):
            return None
        return xyz, col, rad, encode_normals(nrm)

    def append_dynamic(self, frame_id: int, surfels: tuple | None, t_start: float, t_end: float) -> int:
        """Add dynamic_surfels' columns to the dynamic layer, existing from t_start to t_end."""
        if surfels is None:
            return 0
        xyz, col, rad, normal = surfels
        n = len(xyz)
        for k, v in (("xyz", xyz), ("rgb", col), ("radius", rad), ("normal", normal),
                     ("frame", np.full(n, frame_id, np.int32)), ("t_start", np.full(n, t_start)),
                     ("t_end", np.full(n, t_end))):
            self.dynamic[k].append(v)
        return n

    def add_dynamic(self, frame_id: int, rgb: np.ndarray, depth: np.ndarray, c2w: np.ndarray,
                    mask: np.ndarray, t_start: float, t_end: float, step: int = 1) -> int:
        """Add the pixels ``mask`` of one frame as dynamic points that exist from t_start to
        t_end (a moving object where this frame saw it); ``step`` > 1: only every step-th pixel
        across and down, its surfel step times larger."""
        return self.append_dynamic(frame_id, self.dynamic_surfels(rgb, depth, c2w, mask, step), t_start, t_end)

    def local_surfels(self, rgb: np.ndarray, depth: np.ndarray, c2w: np.ndarray, exclude: np.ndarray | None,
                      step: int = 1) -> tuple | None:
        """The frame-local layer's surfels of one frame (dynamic_surfels of every valid pixel but
        ``exclude``, unknown depth filled when settings.local_fill)."""
        keep = np.ones(depth.shape, bool) if exclude is None else ~exclude
        if self.settings.local_fill:
            depth = fill_unknown_depth(depth, self.settings.sky_distance, ceiling=self.fill_ceiling)
        return self.dynamic_surfels(rgb, depth, c2w, keep, step)

    def append_local(self, frame_id: int, surfels: tuple | None, t_start: float, t_end: float) -> int:
        n = self.append_dynamic(frame_id, surfels, t_start, t_end)
        self.local_points += n
        return n

    def add_local(self, frame_id: int, rgb: np.ndarray, depth: np.ndarray, c2w: np.ndarray,
                  exclude: np.ndarray | None, t_start: float, t_end: float, step: int = 1) -> int:
        """Add every valid pixel of one frame (but ``exclude``; every ``step``-th across and down)
        to the frame-local layer, alive from t_start to t_end (FusionSettings.frame_local)."""
        return self.append_local(frame_id, self.local_surfels(rgb, depth, c2w, exclude, step), t_start, t_end)

    def dynamic_arrays(self) -> dict[str, np.ndarray]:
        """The dynamic layer as World fields (dynamic_xyz, ...); empty arrays when none."""
        if not len(self.dynamic["xyz"]):
            return {}
        return {f"dynamic_{k}": column.array() for k, column in self.dynamic.items()}

    def arrays(self):
        if not len(self.parts["xyz"]):
            raise InputError("no frame gave any valid depth", "check the depth maps (0/NaN mean unknown)")
        return tuple(self.parts[k].array() for k in ("xyz", "rgb", "radius", "normal", "frame"))


@dataclass(frozen=True)
class Fused:
    """What fusion made: the static layer (xyz, rgb, radius, encoded normal, source frame), the
    dynamic layer as World fields (dynamic_xyz, ...; moving objects and the frame-local layer;
    empty when none), whether the frame-local layer is on and how many points it holds, per fused
    frame the points added, the share of pixels with a known depth and the share seen through by
    other frames, and seconds per stage ("view consistency", "fusion")."""

    xyz: np.ndarray
    rgb: np.ndarray
    radius: np.ndarray
    normal: np.ndarray
    frame: np.ndarray
    dynamic: dict[str, np.ndarray]
    frame_local: bool
    local_points: int
    added: list[int]
    coverage: list[float]
    seen_through: list[float]
    seconds: dict[str, float]
    cpu_seconds: dict[str, float]        # the same stages' CPU seconds (all threads)
    # The most of each per-frame thing held in memory at once (the streaming tests check that it
    # does not grow with the video's length): depth maps, static surfels compared with new frames.
    held_at_once: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()          # for the build report's warnings
    # Per fused frame, the share of its pixels whose depth other frames' nearer surfaces corrected
    # (FusionSettings.evidence_neighbours; empty when off).
    evidence_corrected: list[float] = field(default_factory=list)


def fuse(frames: Frames, poses: Poses, depth: Depth, held: np.ndarray, settings: FusionSettings,
         device: torch.device) -> Fused:
    """Fuse the frames not ``held`` out, in order, after the view check (FusionSettings.check_*)."""
    fs, intr, c2w, times = frames.fs, frames.intrinsics, poses.c2w, poses.times
    height, width = frames.shape
    seconds: dict[str, float] = {}
    fuser = WorldFuser(intr, settings, device, fill_ceiling=depth.fill_ceiling,
                       same_surface=same_surface_tolerance(settings, depth.mvs_info))
    started, cpu_started = time.time(), time.process_time()
    added = []
    coverage = []
    fused_idx = [int(i) for i in np.nonzero(~held)[0]]
    spans = moving_time_spans(times, fused_idx)
    frame_local = settings.frame_local if settings.frame_local is not None else depth.mvs_info is not None
    local_spans = frame_local_time_spans(times, fused_idx) if frame_local else {}
    local_step = local_pixel_step(len(fused_idx), height * width, settings.local_max_points) if frame_local else 1
    notes = () if local_step == 1 else (
        f"frame-local layer thinned to every {local_step}th pixel across and down: {len(fused_idx)} frames of "
        f"{width}x{height} would be {len(fused_idx) * height * width / 1e6:.0f} M points, over "
        f"FusionSettings.local_max_points ({settings.local_max_points / 1e6:g} M)",)
    check = settings.check_neighbours > 0
    evidence = settings.evidence_neighbours
    if evidence is None:
        evidence = 3 if depth.mvs_info is not None else 0
    view = _SlidingViewCheck(frames, poses, depth, fused_idx, settings, device, evidence,
                             fuser.same_surface) if check else None
    seen_through_share = []
    check_seconds = check_cpu = 0.0
    # On the CPU the view check of the next frames, and the surfels of their moving objects and
    # frame-local layer (which depend on the checked depth only), are made on a second thread
    # while this one fuses the static layer (ahead.Ahead: the same world; alone, each of the two
    # kept about one core busy).
    threaded = view is not None and device.type == "cpu" and ahead_enabled()
    clock = time.thread_time if threaded else time.process_time     # the view check's CPU time

    def checked(k: int):
        """The k-th fused frame's image, depth, pixels to leave out of the static layer, moving
        mask and the surfels of its moving objects and frame-local layer."""
        nonlocal check_seconds, check_cpu
        i = fused_idx[k]
        rgb = frames.first if i == 0 else fs.load(i)
        if rgb.shape[:2] != (height, width):
            raise InputError(f"frame {fs.names[i]} of {frames.input_path} is {rgb.shape[1]}x{rgb.shape[0]}, "
                             f"the first is {width}x{height}", "give frames of one size")
        if view is not None:
            t_check, cpu_check = time.time(), clock()
            frame_depth, exclude, moving = view.at(k)
            check_seconds += time.time() - t_check
            check_cpu += clock() - cpu_check
        else:
            frame_depth = depth.load(i, (height, width))
            exclude = None
            moving = None if depth.moving is None else depth.moving.get(i)
        moving_surfels = local = None
        if moving is not None and moving.any():
            moving_surfels = fuser.dynamic_surfels(rgb, frame_depth, c2w[i], moving)
        if frame_local:
            # The frame's own surfels, seen-through ones included (the check compares with frames
            # far away, whose depth is the less reliable one); moving objects stay in their own spans.
            local = fuser.local_surfels(rgb, frame_depth, c2w[i], moving, local_step)
        return rgb, frame_depth, exclude, moving, moving_surfels, local

    ahead = Ahead(checked, len(fused_idx), name="inspatio_view_check") if threaded else None
    try:
        for k, i in enumerate(progress(fused_idx, desc="fusing frames", unit="frame")):
            rgb, frame_depth, exclude, moving, moving_surfels, local = ahead.get(k) if ahead is not None else checked(k)
            if view is not None:
                seen_through_share.append(float(exclude.mean()))
            coverage.append(float((np.isfinite(frame_depth) | np.isposinf(frame_depth)).mean()))
            if moving is not None and moving.any():
                exclude = moving if exclude is None else exclude | moving
                fuser.append_dynamic(int(fs.index[i]), moving_surfels, *spans[i])
            budget = static_budget(settings.static_max_points, len(fused_idx), k, sum(added))
            added.append(fuser.add_frame(int(fs.index[i]), rgb, frame_depth, c2w[i], exclude, budget))
            if frame_local:
                fuser.append_local(int(fs.index[i]), local, *local_spans[i])
    finally:
        if ahead is not None:
            ahead.close()
            # Wall: the time fusion waited for its second thread (the rest ran beside it).
            check_seconds = ahead.waited_seconds
    if view is not None:
        seconds["view consistency"] = round(check_seconds, 2)
    held_at_once = {"surfels compared": fuser.peak_active}
    if view is not None:
        held_at_once.update({"depth maps (view check)": view.check.peak_alive, "depth maps (fusion)": view.peak_alive})
    # The world is read back from its spill files next, all of it at once: free what only the
    # frame-by-frame work held first (the surfels new frames were compared with, the view check's
    # window) and hand glibc's freed heap back to the OS, so the two are not in memory together.
    evidence_corrected = [] if view is None else view.corrected_share
    fuser.cloud = fuser.last_drawn = fuser._room = view = None
    return_free_memory()
    if fuser.thinned_frames:
        notes += (f"static layer thinned on {fuser.thinned_frames} of {len(fused_idx)} frames to keep within "
                  f"FusionSettings.static_max_points ({settings.static_max_points / 1e6:g} M points)",)
    xyz, rgb, radius, normal, frame = fuser.arrays()
    dynamic = fuser.dynamic_arrays()
    seconds["fusion"] = round(time.time() - started - check_seconds, 2)
    cpu_seconds = {**({"view consistency": round(check_cpu, 2)} if check else {}),
                   "fusion": round(time.process_time() - cpu_started - check_cpu, 2)}
    return Fused(xyz, rgb, radius, normal, frame, dynamic, frame_local, fuser.local_points, added, coverage,
                 seen_through_share, seconds, cpu_seconds, held_at_once, notes, evidence_corrected)


def _grid(shape: tuple[int, int], step: int) -> np.ndarray:
    """HxW bool: every ``step``-th pixel across and down (centred in its step x step cell)."""
    grid = np.zeros(shape, bool)
    grid[step // 2::step, step // 2::step] = True
    return grid


def static_grid_step(keep: np.ndarray, valid: np.ndarray, budget: int) -> int:
    """The smallest pixel step S such that the pixels ``keep`` (over the ``valid`` pixels of the
    image, as surfels_from_depth gives them) on every S-th pixel across and down number at most
    ``budget`` (the whole image's width at most: then one pixel or none)."""
    step = 2
    while step < max(valid.shape) and int((keep & _grid(valid.shape, step)[valid]).sum()) > budget:
        step += 1
    return step


def static_budget(max_points: int, frames: int, done: int, added: int) -> int | None:
    """Points the next fused frame may add to the static layer so that ``frames`` frames add at most
    ``max_points``: its even share so far (``done`` frames fused before it) less what they added
    (a frame that added less leaves the rest to later ones). None: no limit (max_points 0)."""
    if max_points <= 0:
        return None
    return max(0, max_points * (done + 1) // max(frames, 1) - added)


def local_pixel_step(frames: int, pixels: int, max_points: int) -> int:
    """The smallest pixel step S (every S-th pixel across and down) that keeps ``frames`` frames of
    ``pixels`` pixels within ``max_points`` (1: all of them; max_points 0: no limit)."""
    if max_points <= 0 or frames * pixels <= max_points:
        return 1
    return int(np.ceil(np.sqrt(frames * pixels / max_points)))


class _SlidingViewCheck:
    """The view check of fuse, frame by frame in order over a sliding window (``at(k)``: the k-th
    fused frame's depth, the pixels to leave out of the static layer (seen through by
    check_violations neighbours, or moving) and its moving mask). It holds the frames within
    check_neighbours of the one asked for (the seen-through count) and a few behind (moving regions
    spread from neighbours, spread_moving_at), not every frame's depth map and image: memory stays
    the same however long the video."""

    REACH = 3          # fused frames either side whose moving regions a frame's mask takes in

    def __init__(self, frames: Frames, poses: Poses, depth: Depth, fused_idx: list[int],
                 settings: FusionSettings, device: torch.device, evidence: int = 0, tolerance: float = 0.05):
        self.frames, self.depth, self.fused, self.s = frames, depth, fused_idx, settings
        self.device = device
        # nearer_evidence's neighbours either side (0: off) and relative depth tolerance
        self.evidence, self.tolerance = evidence, tolerance
        self.corrected_share: list[float] = []
        self.c2w = poses.c2w
        self.shape = frames.shape
        # The check loads its own maps (depth.load: from disk or a file, a window ahead of this one).
        self.check = SeenThrough(lambda i: depth.load(i, self.shape), fused_idx, poses.c2w, frames.intrinsics,
                                 settings, device)
        self.maps: dict[int, np.ndarray] = {}
        self.rejected: dict[int, np.ndarray] = {}      # by position in fused_idx
        self.own_moving: dict[int, np.ndarray | None] = {}
        self.checked_up_to = -1
        self.peak_alive = 0

    def _depth(self, i: int) -> np.ndarray:
        if i not in self.maps:
            self.maps[i] = self.depth.load(i, self.shape)
        return self.maps[i]

    def _moving_of(self, i: int) -> np.ndarray | None:
        return self.own_moving.get(i)

    def _own_moving(self, i: int) -> np.ndarray | None:
        """Frame i's own moving mask (MVS's, else the seen-through regions found so far)."""
        if self.depth.moving is not None:
            return self.depth.moving.get(i)
        return self.own_moving.get(i)

    def at(self, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        s, fused = self.s, self.fused
        # Seen-through counts (in order: the check's window slides) as far as the moving regions
        # of the frames around k need them.
        while self.checked_up_to < min(len(fused) - 1, k + self.REACH):
            p = self.checked_up_to + 1
            j = fused[p]
            self.rejected[p] = self.check.count(p) >= s.check_violations
            if self.depth.moving is not None:
                self.own_moving[j] = self.depth.moving.get(j)
            else:
                # Given depth: large regions that other frames see through moved (a car that was
                # there at this frame's time only); small ones are errors and are only dropped.
                self.own_moving[j] = large_regions(self.rejected[p], s.moving_min_area)
            self.checked_up_to = p
        moving = spread_moving_at(k, fused, self._moving_of, self._depth, self.c2w, self.frames.intrinsics, s,
                                  self._colour, self.REACH)
        i = fused[k]
        depth, rejected = self._depth(i), self.rejected.pop(k)
        if self.evidence > 0:
            others = [j for j in fused[max(0, k - self.evidence):k + self.evidence + 1] if j != i]
            # Compared with what the frame-local layer shows: unknown pixels as filled there.
            claimed = depth
            if self.s.local_fill:
                claimed = fill_unknown_depth(depth, self.s.sky_distance, ceiling=self.depth.fill_ceiling)
            corrected, changed = nearer_evidence(claimed, self.c2w[i], [(self._depth(j), self.c2w[j], self._own_moving(j))
                                                                      for j in others],
                                                 self.frames.intrinsics, self.tolerance, self.s.evidence_votes,
                                                 self.device)
            own = self._own_moving(i)
            if own is not None:             # a moving object's depth is its own, not the static scene's
                changed &= ~own
            depth = np.where(changed, corrected, depth)
            self.corrected_share.append(float(changed.mean()))
        self.peak_alive = max(self.peak_alive, len(self.maps))
        # What frames after k no longer need: maps and masks of frames more than REACH (or the
        # evidence's reach) behind.
        behind = set(fused[:max(0, k + 1 - max(self.REACH, self.evidence))])
        for j in [j for j in self.maps if j in behind]:
            del self.maps[j]
        for j in [j for j in self.own_moving if j in behind]:
            del self.own_moving[j]
        return depth, rejected, moving

    def _colour(self, i: int) -> np.ndarray:
        fs = self.frames.fs
        return self.frames.first if i == 0 else fs.load(i)
