"""View consistency of a build's depth maps: points other fused frames see through (a wrong depth
or something that moved) and the moving regions they reveal, carried to the frames around."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import numpy as np
import torch

from ..camera import Intrinsics
from ..runtime import thread_kernel

if TYPE_CHECKING:
    from .fusion import FusionSettings


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


def _pixel_rays(H: int, W: int, intr: Intrinsics, dev: torch.device) -> torch.Tensor:
    """(H, W, 3) each pixel's ray in its camera's frame, scaled to depth 1 (float32)."""
    v, u = torch.meshgrid(torch.arange(H, device=dev, dtype=torch.float32),
                          torch.arange(W, device=dev, dtype=torch.float32), indexing="ij")
    return torch.stack([(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, torch.ones_like(u)], -1)


def _project_points(points: torch.Tensor, rel: np.ndarray, intr: Intrinsics, H: int, W: int):
    """Points (N, 3) of one camera moved by ``rel`` (4x4, into another camera of the same
    intrinsics): their depth there, the pixel they round to (row, col) and whether it lies in
    front of that camera and inside its image."""
    rel_t = torch.from_numpy(rel.astype(np.float32)).to(points.device)
    p = points @ rel_t[:3, :3].T + rel_t[:3, 3]
    z = p[:, 2]
    safe_z = torch.where(z > 1e-6, z, torch.ones_like(z))
    col = torch.round(p[:, 0] / safe_z * intr.fx + intr.cx)
    row = torch.round(p[:, 1] / safe_z * intr.fy + intr.cy)
    inside = (z > 1e-6) & (col >= 0) & (col < W) & (row >= 0) & (row < H)
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
    H100 machine's CPU). The frames are checked in order over a sliding window (SeenThrough)."""
    frames = sorted(depths)
    check = SeenThrough(lambda i: depths[i], frames, c2w, intr, settings, device)
    return {i: check.count(k) for k, i in enumerate(frames)}


class SeenThrough:
    """seen_through over a sliding window: ``count(k)`` for the k-th of ``frames`` (in order, each
    once) prepares the depth of the frames within check_neighbours of it (``load(i)``: frame i's
    depth map) and drops those behind, so memory holds 2 x check_neighbours + 1 frames' maps
    however long the video. ``c2w``: frame -> camera-to-world (a dict or an array)."""

    def __init__(self, load: Callable[[int], np.ndarray], frames: list[int], c2w, intr: Intrinsics,
                 settings: FusionSettings, device: torch.device | str | None = None):
        self.load, self.frames, self.c2w, self.intr, self.s = load, list(frames), c2w, intr, settings
        self.dev = torch.device(device) if device is not None else torch.device("cpu")
        self.prepared: dict[int, tuple] = {}
        self.rays = None
        self.peak_alive = 0

    def _prepare(self, j: int) -> tuple:
        if j in self.prepared:
            return self.prepared[j]
        s, dev = self.s, self.dev
        kernels = view_check_kernels() if dev.type == "cpu" else None
        if kernels is not None:
            # The same maps by one kernel (PyTorch's two 3x3 poolings and masks: ~50 ms a frame
            # at 640x360, the kernel a few).
            depth = np.ascontiguousarray(self.load(j), dtype=np.float32)
            H, W = depth.shape
            known, nearest = np.empty(H * W, np.float32), np.empty(H * W, np.float32)
            measured, has_any = np.empty(H * W, bool), np.empty(H * W, bool)
            thread_kernel(kernels.prepare_neighbour)(depth.reshape(-1), np.float32(s.sky_distance), W, H, known,
                                                     measured, nearest, has_any)
            self.prepared[j] = tuple(torch.from_numpy(a.reshape(H, W)) for a in (known, measured, nearest, has_any))
            self.peak_alive = max(self.peak_alive, len(self.prepared))
            return self.prepared[j]
        # A copy: maps read from the depth store are read-only, which torch.from_numpy warns about.
        d = torch.from_numpy(np.array(self.load(j), dtype=np.float32)).to(dev)
        d = torch.where(torch.isposinf(d), torch.full_like(d, s.sky_distance), d)
        measured = torch.isfinite(d) & (d > 0)
        known = torch.where(measured, d, torch.zeros_like(d))
        dj = torch.where(measured, d, torch.tensor(float("inf"), device=dev))  # unknown: no evidence
        # 3x3 minimum / any; max_pool2d leaves the border out of the window, as a clamped window would.
        nearest = (-torch.nn.functional.max_pool2d(-dj[None, None], 3, 1, 1))[0, 0]
        has_any = torch.nn.functional.max_pool2d(measured[None, None].float(), 3, 1, 1)[0, 0] > 0
        self.prepared[j] = (known, measured, nearest, has_any)
        self.peak_alive = max(self.peak_alive, len(self.prepared))
        return self.prepared[j]

    def count(self, k: int) -> np.ndarray:
        """(H,W) int32: how many of the neighbours of the k-th frame see through each of its pixels."""
        s, dev, intr, frames = self.s, self.dev, self.intr, self.frames
        lo, hi = max(0, k - s.check_neighbours), k + s.check_neighbours + 1
        for j in [j for j in self.prepared if j not in frames[lo:hi]]:
            del self.prepared[j]
        i = frames[k]
        d, measured, _, _ = self._prepare(i)
        H, W = d.shape
        if self.rays is None:
            self.rays = _pixel_rays(H, W, intr, dev)
        keep = 1.0 - s.check_tolerance
        kernels = view_check_kernels() if dev.type == "cpu" else None
        if kernels is not None:
            return self._count_with_kernel(kernels, i, frames[lo:hi], d, measured, keep)
        points = (self.rays * d[..., None]).reshape(-1, 3)      # camera i's frame
        count = torch.zeros(H * W, dtype=torch.int32, device=dev)
        for j in frames[lo:hi]:
            if j == i:
                continue
            _, _, nearest, has_any = self._prepare(j)
            z, row, col, inside = _project_points(points, np.linalg.inv(self.c2w[j]) @ self.c2w[i], intr, H, W)
            inside &= measured.reshape(-1)
            flat = torch.where(inside, row * W + col, torch.zeros_like(col)).long()
            there = nearest.reshape(-1)[flat]
            count += (inside & has_any.reshape(-1)[flat] & torch.isfinite(there) & (z < there * keep)).int()
        return count.reshape(H, W).cpu().numpy()

    def _count_with_kernel(self, kernels, i: int, neighbours: list[int], d: torch.Tensor, measured: torch.Tensor,
                           keep: float) -> np.ndarray:
        """count's loop over the neighbours as the numba kernel (cpu_kernels.add_seen_through)."""
        intr = self.intr
        H, W = d.shape
        f32 = np.float32
        rays = self.rays.reshape(-1, 3).numpy()
        depth, known = d.reshape(-1).numpy(), measured.reshape(-1).numpy()
        count = np.zeros(H * W, np.int32)
        add_seen_through = thread_kernel(kernels.add_seen_through)    # single-threaded on a worker thread
        for j in neighbours:
            if j == i:
                continue
            _, _, nearest, has_any = self._prepare(j)
            rel = np.ascontiguousarray((np.linalg.inv(self.c2w[j]) @ self.c2w[i])[:3].astype(f32))
            add_seen_through(depth, known, rays, rel, f32(intr.fx), f32(intr.fy), f32(intr.cx), f32(intr.cy),
                                     W, H, nearest.reshape(-1).numpy(), has_any.reshape(-1).numpy(), f32(keep), count)
        return count.reshape(H, W)


def view_check_kernels():
    """The view check's numba kernel module (cpu_kernels.py), loaded once; None without numba or
    with INSPATIO_CPU_KERNELS=0 (eager PyTorch, as for the Renderer)."""
    from ..runtime import optional_cpu_kernels

    return optional_cpu_kernels("inspatio_ros.ingest.cpu_kernels")


def large_regions(mask: np.ndarray, min_area: float) -> np.ndarray:
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
    this way. ``colours``: the frames' RGB (HxWx3 uint8) or grey (HxW). Frame by frame:
    spread_moving_at."""
    frames = sorted(depths)
    return {i: spread_moving_at(k, frames, moving.get, depths.__getitem__, c2w, intr, settings,
                                colours.__getitem__, reach, depth_tolerance, colour_tolerance)
            for k, i in enumerate(frames)}


def spread_moving_at(k: int, frames: list[int], moving_of: Callable[[int], np.ndarray | None],
                     depth_of: Callable[[int], np.ndarray], c2w, intr: Intrinsics, settings: FusionSettings,
                     colour_of: Callable[[int], np.ndarray], reach: int = 3, depth_tolerance: float = 0.35,
                     colour_tolerance: float = 30.0) -> np.ndarray:
    """spread_moving's mask of the k-th of ``frames``: it needs only the frames ``reach`` either
    side (``moving_of(i)``: frame i's own moving mask or None, ``depth_of``, ``colour_of``)."""
    from scipy import ndimage

    i = frames[k]
    d_i = depth_of(i)
    own = moving_of(i)
    mask = np.zeros(d_i.shape, bool) if own is None else own.copy()
    # Only the neighbours' own detections are carried (carrying carried masks on would creep
    # along the road the object stands on, one frame at a time).
    for j in frames[max(0, k - reach):k + reach + 1]:
        mj = moving_of(j)
        if j == i or mj is None or not mj.any():
            continue
        z, row, col, inside = _project_into(np.where(mj, depth_of(j), np.nan), c2w[j], c2w[i], intr,
                                            settings.sky_distance)
        there = d_i[row, col]
        c_i = colour_of(i).reshape(d_i.shape + (-1,)).astype(np.float32)
        c_j = colour_of(j).reshape(d_i.shape + (-1,)).astype(np.float32)
        alike = np.abs(c_i[row, col] - c_j).mean(-1) < colour_tolerance
        near = inside & mj & np.isfinite(there) & (np.abs(there - z) < depth_tolerance * z) & alike
        mask[row[near], col[near]] = True
    if mask.any():
        mask = ndimage.binary_fill_holes(ndimage.binary_closing(mask, iterations=2)) & np.isfinite(d_i)
    return mask


def nearer_evidence(depth: np.ndarray, c2w: np.ndarray, neighbours: list[tuple[np.ndarray, np.ndarray, np.ndarray | None]],
                    intr: Intrinsics, tolerance: float, min_votes: int = 2,
                    device: torch.device | str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One frame's depth (HxW; NaN unknown, +inf sky) corrected where other frames measured a
    surface in front of it: a static surface that ``min_votes`` neighbours saw, each at about the
    same depth, nearer than this frame's depth along the same ray (by more than ``tolerance``,
    relative), lies in the space this frame claims is empty; so this frame's depth there is too far
    (a blank region filled from the background behind it, a near building top taken for sky) or
    unknown, and it gets the median of those neighbours' depths. The opposite case (neighbours
    see through this frame's point) is the view check's (seen_through). Pass the depth as the
    frame will be drawn (unknown pixels filled, fusion.fill_unknown_depth) to correct the fill too.

    ``neighbours``: (depth, c2w, moving mask or None) of each other frame; their moving pixels, sky
    and unknown pixels give no evidence (a car that drove on is no surface where it was). A
    neighbour that saw a surface from farther away hits only some of its pixels here: its empty
    pixels take the nearest hit of their 3x3 window. Each neighbour's points are compared with the
    nearest depth of this frame's 3x3 window, so a neighbour's foreground edge rounded (or
    fattened by a pixel) onto the background beside it condemns nothing; and only patches a 3x3
    window fits wholly are changed (a lone pixel pulled in front of its ring would leave the ring
    "behind an edge", which surfels_from_depth drops: a hole the sky shows through). Returns
    the corrected depth and the mask of the pixels it changed."""
    dev = torch.device(device) if device is not None else torch.device("cpu")
    H, W = depth.shape
    kernels = view_check_kernels() if dev.type == "cpu" else None
    if kernels is not None:
        return _nearer_evidence_with_kernels(kernels, depth, c2w, neighbours, intr, tolerance, min_votes)
    d_i = torch.from_numpy(np.array(depth, dtype=np.float32)).to(dev)
    claimed = torch.where(torch.isnan(d_i) | (d_i <= 0), torch.full_like(d_i, float("inf")), d_i)
    nearest = (-torch.nn.functional.max_pool2d(-claimed[None, None], 3, 1, 1))[0, 0].reshape(-1)
    rays = _pixel_rays(H, W, intr, dev).reshape(-1, 3)
    w2c = np.linalg.inv(c2w)
    votes = []
    for d_j, c2w_j, moving_j in neighbours:
        dj = torch.from_numpy(np.array(d_j, dtype=np.float32)).to(dev).reshape(-1)
        use = torch.isfinite(dj) & (dj > 0)
        if moving_j is not None:
            use &= ~torch.from_numpy(np.asarray(moving_j, bool)).to(dev).reshape(-1)
        pick = use.nonzero()[:, 0]
        z, row, col, inside = _project_points(rays[pick] * dj[pick, None], w2c @ c2w_j, intr, H, W)
        seen = torch.full((H * W,), float("inf"), device=dev)
        seen.scatter_reduce_(0, (row[inside] * W + col[inside]).long(), z[inside], reduce="amin")
        # Seen from farther away, the neighbour hits only some of a surface's pixels here.
        img = seen.reshape(1, 1, H, W)
        seen = torch.where(torch.isinf(img), -torch.nn.functional.max_pool2d(-img, 3, 1, 1), img).reshape(-1)
        votes.append(torch.where(seen < nearest * (1.0 - tolerance), seen, torch.full_like(seen, float("inf"))))
    if len(votes) < min_votes:
        return np.array(depth, dtype=np.float32), np.zeros((H, W), bool)
    stacked, _ = torch.sort(torch.stack(votes), dim=0)            # votes first, no vote (inf) last
    count = torch.isfinite(stacked).sum(0)
    median = stacked.gather(0, ((count - 1).clamp_min(0) // 2)[None])[0]
    agree = (torch.isfinite(stacked) & ((stacked - median).abs() <= tolerance * median)).sum(0)
    change = ((count >= min_votes) & (agree >= min_votes)).reshape(H, W)
    change = _opened(change)            # whole patches only
    out = torch.where(change, median.reshape(H, W), d_i)
    return out.cpu().numpy(), change.cpu().numpy()


def _nearer_evidence_with_kernels(kernels, depth: np.ndarray, c2w: np.ndarray, neighbours, intr: Intrinsics,
                                  tolerance: float, min_votes: int) -> tuple[np.ndarray, np.ndarray]:
    """nearer_evidence as three numba kernels (cpu_kernels.claimed_nearest, nearer_votes,
    nearer_median): the same steps, with the projection's float32 sums written out where PyTorch
    multiplies by a matrix (the last bit of a depth may differ). Its PyTorch passes (pooling,
    scatter, sort over the stacked votes) were 0.2 CPU-s a frame at 640x360, most of the view
    check's time (docs/notes/2026-12-05-build-speed3.md)."""
    H, W = depth.shape
    f32 = np.float32
    d_i = np.array(depth, dtype=np.float32).reshape(-1)
    if len(neighbours) < min_votes:
        return d_i.reshape(H, W), np.zeros((H, W), bool)
    nearest = np.empty(H * W, f32)
    thread_kernel(kernels.claimed_nearest)(d_i, W, H, nearest)
    rays = _pixel_rays(H, W, intr, torch.device("cpu")).reshape(-1, 3).numpy()
    w2c = np.linalg.inv(c2w)
    depths = np.stack([np.asarray(d_j, dtype=f32).reshape(-1) for d_j, _, _ in neighbours])
    use = np.isfinite(depths) & (depths > 0)
    for m, (_, _, moving_j) in enumerate(neighbours):
        if moving_j is not None:
            use[m] &= ~np.asarray(moving_j, bool).reshape(-1)
    rels = np.ascontiguousarray(np.stack([(w2c @ c2w_j)[:3] for _, c2w_j, _ in neighbours]).astype(f32))
    votes = np.empty((len(neighbours), H * W), f32)
    thread_kernel(kernels.nearer_votes)(depths, use, rays, rels, f32(intr.fx), f32(intr.fy), f32(intr.cx),
                                        f32(intr.cy), W, H, nearest, f32(1.0 - tolerance), votes)
    median = np.empty(H * W, f32)
    change = np.empty(H * W, bool)
    thread_kernel(kernels.nearer_median)(votes, f32(tolerance), int(min_votes), W, H, median, change)
    out = np.where(change, median, d_i)
    return out.reshape(H, W), change.reshape(H, W)


def _opened(mask: torch.Tensor) -> torch.Tensor:
    """Binary opening with a 3x3 square: the pixels of ``mask`` that some 3x3 window wholly in it covers."""
    m = mask[None, None].float()
    eroded = -torch.nn.functional.max_pool2d(-m, 3, 1, 1)
    return torch.nn.functional.max_pool2d(eroded, 3, 1, 1)[0, 0] > 0.5
