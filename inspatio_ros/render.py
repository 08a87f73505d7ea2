"""GPU point renderer: surfel z-buffer splatting with hole filling, batched over cameras.

One algorithm, written once in plain PyTorch (no per-pixel or per-point Python loops): on CUDA
the stages are compiled (torch.compile) into fused kernels and ``Renderer`` replays each batch
shape from a CUDA graph (no host synchronisation inside a render). On the CPU, ``Renderer`` runs
the same steps as fused numba kernels (render_cpu.py: eager PyTorch makes ~300 passes over memory
per frame); ``render_points`` here stays the reference they are tested against.

How a batch of B cameras (one image size) is rendered at sim time ``t``:

1. **Centre z-buffer.** Every point alive at ``t`` is projected into every camera; a 64-bit key
   ``(depth bits << 32) | point index`` is reduced with ``scatter_reduce(amin)`` into its pixel,
   so each pixel keeps its nearest point centre (float32 bits of positive depths order like the
   depths themselves). Cost: one pass over the points, independent of splat sizes. A pixel's
   depth is where its ray meets the winner's plane (exact on steep surfaces such as the road).
2. **Surfel expansion (image space).** Each pixel's winning point is a small disk (the point's
   radius, its normal; a point without a normal faces the camera). For every neighbour within
   the largest projected radius, the disk's plane is intersected with this pixel's ray: if the
   hit lies inside the disk and is clearly in front of what the pixel holds (relative
   ``depth_tolerance``), the neighbour's surface may win; among those, the front-most surface
   wins, and on it the neighbour nearest in the image. Points on one surface therefore never
   overwrite each other (the plane depth equals the pixel's own depth), while a close surface
   covers the background that would show through the gaps between its point centres. Ring by
   ring (k = 1, 2, ... pixels away), only pixels with a neighbour centre in front of their own
   surface (extended k pixels along its slope) by more than k tolerances are tested, so the
   interiors of surfaces, slanted ones included, cost almost nothing.
3. **Hole filling.** Pixels still empty are filled by push-pull interpolation over an image
   pyramid of ``hole_fill_levels`` levels (holes up to about ``2**levels`` pixels wide); they are
   marked not covered. Pixels beyond that reach keep the background colour and NaN depth.

Outputs: rgb uint8 (B,H,W,3), depth float32 metres (B,H,W, z-depth, NaN = unknown) and
coverage bool (B,H,W): True where the world was seen, False where hole-filled or empty.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .camera import Intrinsics

log = logging.getLogger(__name__)

_KEY_EMPTY = torch.iinfo(torch.int64).max
_DUMP_SLOTS = 4096


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass
class RenderSettings:
    """Knobs of the renderer (defaults suit worlds built from video frames)."""

    near: float = 0.05                 # metres; points closer than this are not drawn
    depth_tolerance: float = 0.02      # relative: a surfel must be this much in front to win a pixel
    max_splat_px: int = 4              # cap on the projected surfel radius searched, pixels
    hole_fill_levels: int = 5          # push-pull levels: fills holes up to ~2**levels pixels
    background: tuple[int, int, int] = (0, 0, 0)


@dataclass
class Cameras:
    """A batch of pinhole cameras of one image size. ``K`` (B,3,3), ``c2w`` (B,4,4) OpenCV."""

    K: torch.Tensor
    c2w: torch.Tensor
    width: int
    height: int

    @classmethod
    def from_intrinsics(cls, intrinsics: Intrinsics | Sequence[Intrinsics], c2w,
                        device: str | torch.device = "cpu") -> "Cameras":
        c2w = torch.as_tensor(np.asarray(c2w, dtype=np.float64)).reshape(-1, 4, 4)
        intr_list = [intrinsics] * len(c2w) if isinstance(intrinsics, Intrinsics) else list(intrinsics)
        if len(intr_list) != len(c2w):
            raise ValueError(f"{len(intr_list)} intrinsics for {len(c2w)} poses")
        sizes = {(i.width, i.height) for i in intr_list}
        if len(sizes) != 1:
            raise ValueError(f"one render batch needs one image size, got {sorted(sizes)}")
        width, height = sizes.pop()
        K = torch.as_tensor(np.stack([i.K for i in intr_list]))
        return cls(K.to(device, torch.float32), c2w.to(device, torch.float32), width, height)

    def __len__(self) -> int:
        return int(self.K.shape[0])

    def to(self, device) -> "Cameras":
        return Cameras(self.K.to(device), self.c2w.to(device), self.width, self.height)


@dataclass
class RenderOutput:
    rgb: torch.Tensor        # (B,H,W,3) uint8
    depth: torch.Tensor      # (B,H,W) float32 metres, NaN unknown
    coverage: torch.Tensor   # (B,H,W) bool: True = seen by the world, False = hole-filled/empty
    point_index: torch.Tensor | None = None  # (B,H,W) int64 point drawn at each pixel, -1 none
    need_counts: torch.Tensor | None = None  # (max_splat_px,) int64 pixels each splat ring examined

    def numpy(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.rgb.cpu().numpy(), self.depth.cpu().numpy(), self.coverage.cpu().numpy()


@dataclass
class PointCloud:
    """Points on one device, ready to render. Static points have t_start=-inf, t_end=+inf."""

    xyz: torch.Tensor        # (N,3) float32
    rgb: torch.Tensor        # (N,3) uint8
    radius: torch.Tensor     # (N,) float32 metres
    normal: torch.Tensor     # (N,3) float32 unit, or zero = faces the camera
    t_start: torch.Tensor    # (N,) float64
    t_end: torch.Tensor      # (N,) float64
    has_dynamic: bool = field(default=False)
    # (N,8) float32 rows x y z nx ny nz radius normal_known, derived from the fields above: the
    # z-buffer decode fetches one row per pixel instead of three scattered gathers.
    surfel: torch.Tensor | None = None

    def __post_init__(self):
        if self.surfel is None:
            known = (self.normal != 0).any(-1, keepdim=True).to(torch.float32)
            self.surfel = torch.cat([self.xyz, self.normal, self.radius[:, None], known], 1).contiguous()

    @classmethod
    def from_arrays(cls, xyz, rgb, radius, normal=None, t_start=None, t_end=None,
                    device: str | torch.device = "cpu") -> "PointCloud":
        n = len(xyz)
        device = torch.device(device)
        xyz_t = torch.as_tensor(np.ascontiguousarray(xyz, dtype=np.float32)).to(device)
        rgb_t = torch.as_tensor(np.ascontiguousarray(rgb, dtype=np.uint8)).to(device)
        rad_t = torch.as_tensor(np.ascontiguousarray(radius, dtype=np.float32)).to(device)
        if normal is None:
            nrm_t = torch.zeros((n, 3), dtype=torch.float32, device=device)
        else:
            nrm_t = torch.as_tensor(np.asarray(normal)).to(device=device, dtype=torch.float32)
            if normal.dtype == np.int8:  # stored as int8 x 127 in world files
                nrm_t = nrm_t / 127.0
        ts = np.full(n, -np.inf) if t_start is None else np.asarray(t_start, dtype=np.float64)
        te = np.full(n, np.inf) if t_end is None else np.asarray(t_end, dtype=np.float64)
        dynamic = bool(np.isfinite(ts).any() or np.isfinite(te).any())
        return cls(xyz_t, rgb_t, rad_t, nrm_t, torch.as_tensor(ts).to(device),
                   torch.as_tensor(te).to(device), dynamic)

    def __len__(self) -> int:
        return int(self.xyz.shape[0])

    def take(self, index) -> "PointCloud":
        """The points at ``index`` (a slice, index tensor or boolean mask), every field alike; a
        slice gives views."""
        return PointCloud(self.xyz[index], self.rgb[index], self.radius[index], self.normal[index],
                          self.t_start[index], self.t_end[index], self.has_dynamic, self.surfel[index])


def _to_camera(x, y, z, rot, centre=None):
    """World coordinates (each (..., N) or broadcastable) into the cameras' frames, x_cam =
    R^T (x - C), written out per axis: it fuses into one pass when compiled, and on the CPU it
    avoids reductions over a length-3 axis (slow in eager PyTorch). rot (B,3,3), centre (B,3);
    without a centre, directions (normals) are rotated only."""
    if centre is None:
        dx, dy, dz = x, y, z
    else:
        dx, dy, dz = x - centre[:, 0, None], y - centre[:, 1, None], z - centre[:, 2, None]
    r = rot[:, :, :, None]                                             # (B,3,3,1) broadcasts over N
    return (dx * r[:, 0, 0] + dy * r[:, 1, 0] + dz * r[:, 2, 0],
            dx * r[:, 0, 1] + dy * r[:, 1, 1] + dz * r[:, 2, 1],
            dx * r[:, 0, 2] + dy * r[:, 1, 2] + dz * r[:, 2, 2])


def _project_keys(xyz, t_start, t_end, rot, centre, K, t: torch.Tensor, near: float, height: int, width: int,
                  use_time: bool):
    """Z-buffer keys of every point in every camera: (key (B,N) int64, pixel (B,N) int64).

    key = (float32 bits of depth << 32) | point index, so that the smallest key of a pixel is its
    nearest point (bits of positive floats order like the floats). Points that are not drawn
    (behind, outside, not alive at ``t``) go to a spare area after the image, spread over
    _DUMP_SLOTS pixels: one shared slot would serialise millions of GPU atomics.
    """
    B, N = rot.shape[0], xyz.shape[0]
    x, y, z = _to_camera(xyz[:, 0], xyz[:, 1], xyz[:, 2], rot, centre)  # (B,N) each
    zs = z.clamp_min(near)
    inv = zs.reciprocal()
    u = torch.floor(x * inv * K[:, 0, 0, None] + (K[:, 0, 2, None] + 0.5))
    v = torch.floor(y * inv * K[:, 1, 1, None] + (K[:, 1, 2, None] + 0.5))
    valid = (z > near) & (u >= 0) & (u <= width - 1) & (v >= 0) & (v <= height - 1)
    if use_time:  # t: 0-dim float64 tensor (a tensor, so that compiled code is not re-made per t)
        valid &= ((t_start <= t) & (t_end >= t)).unsqueeze(0)
    index = torch.arange(N, device=xyz.device, dtype=torch.int64)
    # v * width + u in float32 is exact below 2**24 pixels per image; out-of-image values are replaced.
    pixel = (v * width + u).to(torch.int64) \
        + (torch.arange(B, device=xyz.device, dtype=torch.int64) * (height * width)).unsqueeze(1)
    pixel = torch.where(valid, pixel, B * height * width + (index & (_DUMP_SLOTS - 1)))
    key = (zs.view(torch.int32).to(torch.int64) << 32) | index
    return key, pixel


def _centre_zbuffer(key: torch.Tensor, pixel: torch.Tensor, num_pixels: int) -> torch.Tensor:
    """Per pixel, the nearest point's index (or -1): scatter-min of the keys."""
    buf = torch.full((num_pixels + _DUMP_SLOTS,), _KEY_EMPTY, dtype=torch.int64, device=key.device)
    buf.scatter_reduce_(0, pixel.reshape(-1), key.reshape(-1), reduce="amin", include_self=True)
    return buf[:num_pixels]


def _pixel_rays(K, height: int, width: int, device):
    """Per pixel of each camera the ray (rx, ry, 1) through its centre: two (B, H*W) tensors."""
    vv = torch.arange(height, device=device, dtype=torch.float32).repeat_interleave(width)
    uu = torch.arange(width, device=device, dtype=torch.float32).repeat(height)
    return ((uu.unsqueeze(0) - K[:, 0, 2, None]) / K[:, 0, 0, None],
            (vv.unsqueeze(0) - K[:, 1, 2, None]) / K[:, 1, 1, None])


def _winner_surfels(buf, surfel, rot, centre, K, height: int, width: int):
    """Decode the z-buffer: per pixel the winner's index (-1), camera-frame centre P, normal
    n_cam (facing the camera where unknown), n.P, radius (-1 empty), depth where the pixel's ray
    meets the surfel's plane (inf empty), how far (pixels) its disk can reach, the relative
    depth slope of its plane, and the pixel rays (rx, ry) (B*H*W,) each."""
    B = rot.shape[0]
    has = buf != _KEY_EMPTY
    winner = torch.where(has, buf & 0xFFFFFFFF, torch.full_like(buf, -1))
    row = surfel.index_select(0, winner.clamp_min(0)).view(B, height * width, 8)   # one row per pixel
    px, py, pz = _to_camera(row[..., 0], row[..., 1], row[..., 2], rot, centre)
    nx, ny, nz = _to_camera(row[..., 3], row[..., 4], row[..., 5], rot)
    known = row[..., 7] > 0
    # A surfel without a normal faces the camera.
    inv_len = torch.rsqrt((px * px + py * py + pz * pz).clamp_min(1e-18))
    nx = torch.where(known, nx, -px * inv_len)
    ny = torch.where(known, ny, -py * inv_len)
    nz = torch.where(known, nz, -pz * inv_len)
    has_img = has.view(B, height * width)
    inf = torch.full_like(pz, math.inf)
    centre_depth = torch.where(has_img, pz, inf)
    # Depth where this pixel's ray meets the surfel's plane. A point centre lies anywhere in its
    # pixel; on a steep surface (the road ahead) its own depth differs from the surface's at the
    # pixel centre by several per cent per pixel. Grazing planes and surfels without a normal
    # keep the centre depth.
    rx, ry = _pixel_rays(K, height, width, buf.device)
    denom = nx * rx + ny * ry + nz
    plane_c = nx * px + ny * py + nz * pz
    plane = plane_c / torch.where(denom.abs() > 1e-6, denom, torch.full_like(denom, 1e-6))
    ray_len = torch.sqrt(rx * rx + ry * ry + 1.0)
    usable = (denom.abs() > 0.05 * ray_len) & (plane > 0.5 * centre_depth) & (plane < 2.0 * centre_depth)
    usable &= known & has_img
    depth = torch.where(usable, plane, centre_depth)
    rad = torch.where(has_img, row[..., 6], torch.full_like(centre_depth, -1.0))
    reach = torch.where(has_img, rad * K[:, 0, 0, None] / depth + _DISK_REACH_SLACK, torch.zeros_like(depth))
    # Relative change of the plane's depth per pixel step (|dz/du| + |dz/dv|) / z: how much nearer
    # the same surface may come within one pixel, so that its own neighbours are not taken for
    # occluders. 0 where the centre depth is used.
    slope = (nx.abs() / K[:, 0, 0, None] + ny.abs() / K[:, 1, 1, None]) / denom.abs().clamp_min(1e-6)
    slope = torch.where(usable, slope, torch.zeros_like(slope))
    P = torch.stack([px, py, pz], -1)
    n_cam = torch.stack([nx, ny, nz], -1)
    return (winner, P.reshape(-1, 3), n_cam.reshape(-1, 3), plane_c.reshape(-1), rad.reshape(-1),
            depth.reshape(-1), reach.reshape(-1), slope.reshape(-1), rx.reshape(-1), ry.reshape(-1))


def _push_pull(values: torch.Tensor, known: torch.Tensor, levels: int):
    """Fill unknown pixels of values (B,C,H,W) from known ones (B,1,H,W bool) over a pyramid.

    Returns (filled values, filled mask): a pixel is filled when some level within ``levels``
    had data around it.
    """
    w = known.to(values.dtype)
    pyramid = [(values * w, w)]
    for _ in range(levels):
        vw, ww = pyramid[-1]
        if min(vw.shape[-2:]) < 2:
            break
        pyramid.append((F.avg_pool2d(vw, 2, ceil_mode=True), F.avg_pool2d(ww, 2, ceil_mode=True)))
    vw, ww = pyramid[-1]
    filled = vw / ww.clamp_min(1e-12)
    have = ww > 0
    for vw, ww in reversed(pyramid[:-1]):
        size = vw.shape[-2:]
        up_v = F.interpolate(filled * have, size=size, mode="bilinear", align_corners=False)
        up_w = F.interpolate(have.to(values.dtype), size=size, mode="bilinear", align_corners=False)
        own = ww > 0
        filled = torch.where(own, vw / ww.clamp_min(1e-12), up_v / up_w.clamp_min(1e-12))
        have = own | (up_w > 1e-6)
    return filled, have


# Farthest a disk of radius r pixels centred in one pixel reaches, in whole pixels of Chebyshev
# distance: it touches the neighbour's centre region when r + sqrt(2)/2 >= distance.
_DISK_REACH_SLACK = math.sqrt(0.5)


def _square_min_filter(img: torch.Tensor, k: int) -> torch.Tensor:
    """Minimum over the (2k+1)^2 window of (B,1,H,W), inf outside: two 1-D passes of shifted
    minimums (max_pool2d computes indices on the CPU and is several times slower)."""
    out = img
    for dim in (2, 3):
        padded = F.pad(out, (0, 0, k, k) if dim == 2 else (k, k, 0, 0), value=math.inf)
        size = out.shape[dim]
        acc = padded.narrow(dim, 0, size)
        for j in range(1, 2 * k + 1):
            acc = torch.minimum(acc, padded.narrow(dim, j, size))
        out = acc
    return out


def _ring_pass(table, planar: bool, base, rx, ry, best, source, offsets, near: float, keep: float):
    """Test the surfels at ``offsets`` (one ring, flat offsets in the padded image) against active
    pixels, all offsets at once.

    table: per padded pixel the surfel's centre xyz, normal xyz, n.P and radius^2 (-1 empty),
    as (8, B*Hp*Wp) planes when ``planar`` (coalesced gathers on the GPU) or (B*Hp*Wp, 8) rows
    (one contiguous row per gather on the CPU). base (A,): padded index of each active pixel;
    rx, ry (A,): its ray; best (A,): depth so far; source (A,): padded index of the surfel drawn
    there (-1: the pixel's own); offsets (O,) int64, nearest first.
    A candidate qualifies if its disk contains the point where the pixel's ray meets its plane and
    that point is in front of ``best`` by more than the depth tolerance (``keep = 1 - tol``).
    Among the qualifying ones the front-most surface wins (candidates within the tolerance of
    the nearest depth), and on it the candidate nearest in the image (its colour belongs here).
    """
    A, O = base.shape[0], offsets.shape[0]
    nb = base[:, None] + offsets[None, :]                                # (A,O)
    q = table[:, nb] if planar else table.index_select(0, nb.reshape(-1)).view(A, O, 8).permute(2, 0, 1)
    rxo, ryo = rx[:, None], ry[:, None]
    z = q[6] / (q[3] * rxo + q[4] * ryo + q[5])   # a plane parallel to the ray gives inf/nan: rejected below
    ex, ey, ez = z * rxo - q[0], z * ryo - q[1], z - q[2]
    ok = (ex * ex + ey * ey + ez * ez <= q[7]) & (z > near) & (z < (best * keep)[:, None])
    z = torch.where(ok, z, torch.full_like(z, math.inf))
    front = z * keep <= z.amin(1, keepdim=True)
    first = front.to(torch.uint8).argmax(1, keepdim=True)                # nearest offset on the front surface
    z_won = z.gather(1, first)[:, 0]
    won = z_won < math.inf
    return torch.where(won, z_won, best), torch.where(won, nb.gather(1, first)[:, 0], source)


def _surfel_table(P, n_cam, plane_c, radius, winner, depth, B: int, H: int, W: int, pad: int, planar: bool):
    """What the splat rings read and write: the per-pixel surfel table zero-padded by ``pad``
    pixels (a zero row has no plane, z = 0/0, so padding never wins; empty pixels inside carry
    radius^2 = -1) as (8, B*Hp*Wp) planes when ``planar`` (neighbouring GPU threads gather
    neighbouring addresses) or (B*Hp*Wp, 8) rows (one cache line per gathered surfel on the CPU);
    the padded winner indices; depth and source so far, with spare slots at the end that absorb
    the writes of unused capacity."""
    r2 = torch.where(radius > 0, radius * radius, torch.full_like(radius, -1.0))
    columns = [P[:, 0], P[:, 1], P[:, 2], n_cam[:, 0], n_cam[:, 1], n_cam[:, 2], plane_c, r2]
    if planar:
        table = F.pad(torch.stack(columns).view(8, B, H, W), (pad, pad, pad, pad)).reshape(8, -1)
    else:
        table = F.pad(torch.stack(columns, -1).view(B, H, W, 8), (0, 0, pad, pad, pad, pad)).reshape(-1, 8)
    winner_pad = F.pad(winner.view(B, H, W), (pad, pad, pad, pad), value=-1).reshape(-1)
    best_all = torch.cat([depth, depth.new_full((_SPARE_SLOTS,), math.inf)])
    source_all = torch.full((depth.shape[0] + _SPARE_SLOTS,), -1, dtype=torch.int64, device=depth.device)
    return table, winner_pad, best_all, source_all


def _ring_step(table, planar: bool, active, best_all, source_all, rays_x, rays_y, offsets, near: float,
               keep: float, height: int, width: int, pad: int):
    """_ring_pass for the active pixels (flat indices into the B*H*W image; entries >= B*H*W are
    unused capacity): their padded table index, ray, depth and source so far are gathered here so
    that, compiled, this is one kernel with the pass."""
    num = rays_x.shape[0]
    pix = active.clamp_max(num - 1)
    b, v, u = pix // (height * width), (pix // width) % height, pix % width
    Wp = width + 2 * pad
    base = b * ((height + 2 * pad) * Wp) + (v + pad) * Wp + (u + pad)
    # Unused capacity examines the first pixel (all its offsets lie inside the table); the caller
    # writes its result into a spare slot.
    base = torch.where(active < num, base, torch.full_like(base, pad * Wp + pad))
    return _ring_pass(table, planar, base, rays_x[pix], rays_y[pix], best_all[active], source_all[active], offsets,
                      near, keep)


_compiled: dict = {}
_eager_blocks = 0


@contextlib.contextmanager
def eager_rendering():
    """Render without torch.compile inside this block. For one-off renders whose shapes change
    every call (the build renders its growing world once per fused frame): compiling them, once
    static and again when the shapes turn dynamic, takes tens of seconds on a machine with a cold
    Inductor cache, far more than the eager renders it would speed up."""
    global _eager_blocks
    _eager_blocks += 1
    try:
        yield
    finally:
        _eager_blocks -= 1


def _maybe_compiled(fn, device: torch.device):
    """On CUDA, ``fn`` compiled into fused kernels (eager PyTorch launches one kernel per
    operation: ~15 per neighbour offset in the ring pass). Eager elsewhere, inside
    ``eager_rendering()``, or when INSPATIO_NO_COMPILE=1 (INSPATIO_COMPILE_DYNAMIC=1: dynamic
    shapes from the first call)."""
    if device.type != "cuda" or _eager_blocks or os.environ.get("INSPATIO_NO_COMPILE") == "1":
        return fn
    if fn not in _compiled:
        # Symbolic-shape reasoning about the pyramid's ceil-divisions logs harmless warnings.
        logging.getLogger("torch.utils._sympy.interp").setLevel(logging.ERROR)
        # Shapes are specialised first (a node renders one image size of one world: constant
        # sizes let the kernels' index arithmetic avoid runtime integer divisions) and become
        # dynamic where a second call differs, so new sizes stop recompiling.
        dynamic = True if os.environ.get("INSPATIO_COMPILE_DYNAMIC") == "1" else None
        _compiled[fn] = torch.compile(fn, dynamic=dynamic)
    return _compiled[fn]


def _ring_need(depth_img, reach_img, best_img, slope_img, k: int, tolerance: float):
    """Pixels (B,1,H,W) that a surfel reaching >= k pixels, within k pixels, could beat: its
    centre is in front of the pixel's own surface, extended k pixels along its slope, by more
    than k tolerances. Neighbours on the same surface, even a steep one such as the road near the
    horizon, stay behind that bound (a plane's depth is convex in the pixel coordinates, so its
    tangent bounds it from below) and cost nothing."""
    masked = torch.where(reach_img >= k, depth_img, torch.full_like(depth_img, math.inf))
    floor = (1.0 - k * (slope_img + tolerance)).clamp_min(0.0)
    return _square_min_filter(masked, k) < best_img * floor


_SPARE_SLOTS = 4096


def _compact(mask: torch.Tensor, capacity: int, fill: int) -> torch.Tensor:
    """Indices of the True entries of a 1-D mask, in order, in a tensor of exactly ``capacity``
    entries (extra True entries are dropped): no host synchronisation, unlike ``nonzero``. Unused
    entries hold ``fill + j % _SPARE_SLOTS`` (spare slots the caller can write to without every
    thread hitting one address; so do the discarded writes here)."""
    index = torch.arange(mask.numel(), device=mask.device, dtype=torch.int64)
    position = torch.cumsum(mask, 0) - 1
    slot = torch.where(mask & (position < capacity), position, capacity + (index & (_SPARE_SLOTS - 1)))
    out = fill + (torch.arange(capacity + _SPARE_SLOTS, device=mask.device, dtype=torch.int64) & (_SPARE_SLOTS - 1))
    out.scatter_(0, slot, index)
    return out[:capacity]


_ring_offsets_cache: dict = {}


def _ring_offsets(k: int, row_stride: int, device) -> torch.Tensor:
    """Flat offsets (in an image with rows of ``row_stride``) of the pixels at Chebyshev distance
    k, nearest first; cached on the device (a CUDA graph cannot capture the host-to-device copy)."""
    key = (k, row_stride, str(device))
    if key not in _ring_offsets_cache:
        ring = sorted(((dy, dx) for dy in range(-k, k + 1) for dx in range(-k, k + 1) if max(abs(dy), abs(dx)) == k),
                      key=lambda o: o[0] ** 2 + o[1] ** 2)
        _ring_offsets_cache[key] = torch.tensor([dy * row_stride + dx for dy, dx in ring], dtype=torch.int64,
                                                device=device)
    return _ring_offsets_cache[key]


def _expand_surfels(cams: Cameras, P, n_cam, plane_c, radius, depth, reach_px, slope, rays_x, rays_y, winner,
                    s: RenderSettings, capacity: Sequence[int] | None = None):
    """Let each pixel's winning surfel (disk) cover neighbouring pixels where it is in front.

    P, n_cam (B*H*W,3): winner centre and normal in camera frame; plane_c = n.P; radius (B*H*W,)
    metres (-1 where empty); depth (B*H*W,) inf where empty; reach_px: how many pixels the disk
    can reach; slope: relative depth change of the pixel's own plane per pixel; rays_x, rays_y:
    each pixel's ray; winner (B*H*W,) point index or -1.
    Ring by ring (Chebyshev distance k = 1, 2, ...), only pixels that a neighbour could beat are
    examined: a masked min-filter finds them (empty pixels, background seen through gaps,
    silhouettes), so interior pixels of a surface cost nothing beyond the filter.

    ``capacity`` None: the active pixels of each ring are found with ``nonzero`` and the ring
    count from the widest reach (both wait for the device). A sequence of ``max_splat_px`` ints:
    ring k runs on at most ``capacity[k-1]`` active pixels with no host synchronisation, so that
    the whole render can be captured in a CUDA graph; when a ring had more, the result is wrong and
    must be discarded (``need_counts`` tells).
    Returns (depth, winner, need_counts (max_splat_px,) int64: active pixels per ring).
    """
    B, H, W = len(cams), cams.height, cams.width
    dev = depth.device
    num = B * H * W
    counts = torch.zeros(max(s.max_splat_px, 1), dtype=torch.int64, device=dev)
    if capacity is None:
        K = int(min(s.max_splat_px, math.floor(float(reach_px.max()))))
    else:
        K = s.max_splat_px
        if len(capacity) != K:
            raise ValueError(f"capacity needs one entry per ring ({K}), got {len(capacity)}")
    if K < 1:
        return depth, winner, counts
    keep = 1.0 - s.depth_tolerance
    depth_img = depth.view(B, 1, H, W)
    slope_img = slope.view(B, 1, H, W)
    reach_img = reach_px.view(B, 1, H, W)

    Wp = W + 2 * K
    planar = dev.type == "cuda"
    table, winner_pad, best_all, source_all = _maybe_compiled(_surfel_table, dev)(
        P, n_cam, plane_c, radius, winner, depth, B, H, W, K, planar)
    for k in range(1, K + 1):
        need = _maybe_compiled(_ring_need, dev)(depth_img, reach_img, best_all[:num].view(B, 1, H, W), slope_img, k,
                                                s.depth_tolerance).reshape(-1)
        counts[k - 1] = need.sum()
        if capacity is None:
            active = need.nonzero()[:, 0]
            if active.numel() == 0:
                continue
        else:
            active = _maybe_compiled(_compact, dev)(need, capacity[k - 1], num)
        best, source = _maybe_compiled(_ring_step, dev)(table, planar, active, best_all, source_all, rays_x, rays_y,
                                                       _ring_offsets(k, Wp, dev), s.near, keep, H, W, K)
        best_all[active] = best
        source_all[active] = source
    best_all, source_all = best_all[:num], source_all[:num]
    taken = source_all >= 0
    winner = torch.where(taken, winner_pad[source_all.clamp_min(0)], winner)
    return best_all, winner, counts


def _finish(point_of_pixel, depth, colours, background, B: int, H: int, W: int, levels: int):
    """Colours of the drawn points, hole filling, background: (rgb uint8 (B,H,W,3), depth
    (B,H,W) NaN unknown, covered (B,H,W))."""
    covered = point_of_pixel >= 0
    rgb = colours.index_select(0, point_of_pixel.clamp_min(0)).to(torch.float32)
    rgb = torch.where(covered.unsqueeze(-1), rgb, torch.zeros_like(rgb)).reshape(B, H, W, 3).permute(0, 3, 1, 2)
    depth = torch.where(covered, depth, torch.zeros_like(depth)).reshape(B, 1, H, W)
    covered = covered.reshape(B, 1, H, W)
    if levels > 0:
        values, have = _push_pull(torch.cat([rgb, depth], 1), covered, levels)
        rgb, depth = values[:, :3], values[:, 3:]
    else:
        have = covered
    rgb = torch.where(have, rgb, background.view(1, 3, 1, 1))
    depth = torch.where(have, depth, torch.full_like(depth, math.nan))
    rgb_u8 = rgb.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    return rgb_u8, depth[:, 0].contiguous(), covered[:, 0].contiguous()


_constants: dict = {}


def _device_constant(values, dtype, device) -> torch.Tensor:
    """A small constant tensor kept on the device (made once: graph capture cannot upload)."""
    key = (tuple(values) if isinstance(values, (tuple, list)) else values, dtype, str(device))
    if key not in _constants:
        _constants[key] = torch.tensor(values, dtype=dtype, device=device)
    return _constants[key]


@torch.no_grad()
def render_points(cloud: PointCloud, cams: Cameras, t: float | torch.Tensor | None = None,
                  settings: RenderSettings | None = None, return_index: bool = False,
                  capacity: Sequence[int] | None = None) -> RenderOutput:
    """Render ``cloud`` from every camera of ``cams`` at time ``t`` (None: all points; a 0-dim
    float64 tensor on the cloud's device is taken as is).

    ``return_index`` also returns which point each covered pixel shows (used by fusion).
    ``capacity``: per splat ring, how many pixels it may examine (see _expand_surfels): the render
    then never waits for the device and can be captured in a CUDA graph; check
    ``need_counts`` against it afterwards.
    """
    s = settings or RenderSettings()
    cams = cams.to(cloud.xyz.device)
    B, H, W = len(cams), cams.height, cams.width
    dev = cloud.xyz.device
    num_pixels = B * H * W

    use_time = t is not None and cloud.has_dynamic
    if not use_time:
        t_dev = _device_constant(0.0, torch.float64, dev)
    elif isinstance(t, torch.Tensor):
        t_dev = t
    else:
        t_dev = torch.tensor(float(t), dtype=torch.float64, device=dev)
    rot, centre = cams.c2w[:, :3, :3], cams.c2w[:, :3, 3]
    key, pixel = _maybe_compiled(_project_keys, dev)(cloud.xyz, cloud.t_start, cloud.t_end, rot, centre, cams.K,
                                                     t_dev, s.near, H, W, use_time)
    buf = _centre_zbuffer(key, pixel, num_pixels)
    del key, pixel
    winner, P, n_cam, plane_c, radius, depth, reach, slope, rays_x, rays_y = _maybe_compiled(_winner_surfels, dev)(
        buf, cloud.surfel, rot, centre, cams.K, H, W)
    point_of_pixel = winner
    counts = None
    if s.max_splat_px > 0:
        depth, point_of_pixel, counts = _expand_surfels(cams, P, n_cam, plane_c, radius, depth, reach, slope, rays_x,
                                                        rays_y, winner, s, capacity)

    background = _device_constant(tuple(float(c) for c in s.background), torch.float32, dev)
    rgb_u8, depth, covered = _maybe_compiled(_finish, dev)(point_of_pixel, depth, cloud.rgb, background, B, H, W,
                                                           s.hole_fill_levels)
    index = point_of_pixel.reshape(B, H, W) if return_index else None
    return RenderOutput(rgb_u8, depth, covered, index, counts)


def world_point_cloud(world, device: str | torch.device = "cpu", layers: str = "all") -> PointCloud:
    """Static and dynamic layers of a World as one PointCloud on ``device`` (``layers``: "all",
    "static" or "dynamic")."""
    parts = []
    if layers in ("all", "static"):
        n_s = world.num_static
        parts.append((world.static_xyz, world.static_rgb, world.static_radius, world.static_normal,
                      np.full(n_s, -np.inf), np.full(n_s, np.inf)))
    if layers in ("all", "dynamic"):
        parts.append((world.dynamic_xyz, world.dynamic_rgb, world.dynamic_radius, world.dynamic_normal,
                      world.dynamic_t_start, world.dynamic_t_end))
    return PointCloud.from_arrays(*(np.concatenate(f) for f in zip(*parts)), device=device)


class ChunkedCloud:
    """A PointCloud sorted into spatial chunks (contiguous slices) with bounding boxes, so a batch
    of cameras only projects the run of chunks that can touch its images (frustum culling).

    Culling is exact: a chunk is dropped only when all 8 corners of its box lie beyond one plane of
    every camera's frustum widened by the splat cap (``max_splat_px``) or behind the near plane;
    points outside that region cannot reach a pixel. Only point order changes, which decides ties
    of exactly equal depth.
    """

    def __init__(self, cloud: PointCloud, cell_m: float = 8.0):
        xyz = cloud.xyz
        cells = torch.floor(xyz / cell_m).to(torch.int64)
        cells -= cells.min(dim=0).values
        span = cells.max(dim=0).values + 1
        key = (cells[:, 0] * span[1] + cells[:, 1]) * span[2] + cells[:, 2]
        key, order = torch.sort(key, stable=True)
        self.cloud = cloud.take(order)
        _, counts = torch.unique_consecutive(key, return_counts=True)
        self.counts = counts
        self.starts = torch.cumsum(counts, 0) - counts
        chunk = torch.repeat_interleave(torch.arange(len(counts), device=xyz.device), counts)
        lo = torch.full((len(counts), 3), float("inf"), device=xyz.device)
        hi = torch.full((len(counts), 3), float("-inf"), device=xyz.device)
        idx = chunk[:, None].expand(-1, 3)
        lo.scatter_reduce_(0, idx, self.cloud.xyz, "amin")
        hi.scatter_reduce_(0, idx, self.cloud.xyz, "amax")
        # The 8 corners of each chunk's box: (C, 8, 3).
        pick = torch.tensor([[i >> 2 & 1, i >> 1 & 1, i & 1] for i in range(8)], device=xyz.device, dtype=torch.bool)
        self.corners = torch.where(pick[None], hi[:, None, :], lo[:, None, :])

    def visible_chunks(self, cams: Cameras, near: float, margin_px: float) -> torch.Tensor:
        """(C,) bool: chunks that may touch an image of the batch."""
        rot, centre = cams.c2w[:, :3, :3], cams.c2w[:, :3, 3]
        # Corners in each camera's frame: (B, C, 8, 3).
        rel = self.corners[None] - centre[:, None, None, :]
        pc = torch.einsum("bckj,bji->bcki", rel, rot)
        x, y, z = pc[..., 0], pc[..., 1], pc[..., 2]
        K = cams.K
        fx, fy, cx, cy = (K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2])
        right = ((cams.width + margin_px - cx) / fx)[:, None, None]
        left = ((cx + margin_px) / fx)[:, None, None]
        down = ((cams.height + margin_px - cy) / fy)[:, None, None]
        up = ((cy + margin_px) / fy)[:, None, None]
        outside = ((z <= near).all(-1) | (x > right * z).all(-1) | (x < -left * z).all(-1)
                   | (y > down * z).all(-1) | (y < -up * z).all(-1))
        return ~outside.all(0)

    def subset(self, cams: Cameras, near: float, margin_px: float) -> PointCloud:
        """The contiguous run of chunks from the first to the last visible one, as views (no copy:
        gathering scattered chunks costs more on the CPU than projecting them). Chunks are sorted
        x-major, so for a camera moving along x the run leaves out what is behind it."""
        keep = self.visible_chunks(cams, near, margin_px)
        found = torch.nonzero(keep)
        if len(found) == 0:
            return self.cloud            # nothing in view: render everything (the renderer needs points)
        lo = int(self.starts[found[0, 0]])
        hi = int(self.starts[found[-1, 0]] + self.counts[found[-1, 0]])
        if lo == 0 and hi == len(self.cloud.xyz):
            return self.cloud
        return self.cloud.take(slice(lo, hi))


class _CapturedRender:
    """``render_points`` for one batch shape (cameras, image size, time on or off) captured in a
    CUDA graph: a replay launches the whole render at once, with no per-kernel launch cost and no
    host synchronisation. Inputs are copied into the graph's own camera and time tensors; the
    outputs live in the graph's memory and are overwritten by the next replay."""

    def __init__(self, cloud: PointCloud, cams: Cameras, t, settings: RenderSettings, capacity: list[int]):
        self.capacity = list(capacity)
        self.cams = Cameras(cams.K.clone(), cams.c2w.clone(), cams.width, cams.height)
        self.t = None if t is None else torch.tensor(float(t), dtype=torch.float64, device=cloud.xyz.device)
        args = (cloud, self.cams, self.t, settings, False, self.capacity)
        # Warm up on a side stream (compiles kernels for these shapes, settles the allocator), as
        # graph capture requires.
        side = torch.cuda.Stream(cloud.xyz.device)
        side.wait_stream(torch.cuda.current_stream(cloud.xyz.device))
        with torch.cuda.stream(side):
            for _ in range(2):
                render_points(*args)
        torch.cuda.current_stream(cloud.xyz.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.out = render_points(*args)

    def replay(self, cams: Cameras, t) -> RenderOutput:
        self.cams.K.copy_(cams.K)
        self.cams.c2w.copy_(cams.c2w)
        if self.t is not None:
            self.t.fill_(float(t))
        self.graph.replay()
        return self.out


def _capacity_for(need_counts: torch.Tensor, num_pixels: int) -> list[int]:
    """Pixels each ring of a captured render may examine: the counts seen plus a quarter and a
    floor of 1/64 of the pixels (the camera moves; an overflow costs one eager frame)."""
    floor = max(4096, num_pixels // 64)
    return [min(num_pixels, max(floor, int(c) * 5 // 4 + 1024)) for c in need_counts.tolist()]


class Renderer:
    """A world uploaded once to a device; ``render`` draws batches of cameras at a time.

    On the CPU the world is kept in spatial chunks and each batch projects only the chunks in
    view (ChunkedCloud), and the render runs as compiled CPU kernels (render_cpu.py) where numba
    is installed (``cpu_kernels``; INSPATIO_CPU_KERNELS=0 selects eager PyTorch); on CUDA every
    point is projected (culling is not measured there yet), and each batch shape is captured once in a CUDA graph (``graphs``; INSPATIO_NO_GRAPHS=1 turns it
    off): the first render of a shape runs eagerly and measures how many pixels each splat ring
    examines, later ones replay the graph. A replay whose rings needed more room than captured
    is thrown away and rendered eagerly, and the graph captured again with room for it.

    A world with a frame-local layer (``world.info["frame_local"]``, see ingest/build.py) is drawn
    in two passes at a time ``t``: its dynamic layer (each fused frame's own surfels around the
    frame's time, and moving objects), hole-filled, and the static layer only where hole filling
    could not reach (measured on KITTI: the static layer's surfels from distant frames are worse
    than filling). Without a time it is drawn in one pass, all layers.
    """

    def __init__(self, world, device: str | torch.device = "auto", settings: RenderSettings | None = None,
                 cull: bool | None = None, graphs: bool | None = None, cpu_kernels: bool | None = None):
        """``world``: a World, or a PointCloud already on ``device`` (benchmarks, tests)."""
        self.world = world
        self.device = resolve_device(device)
        self.settings = settings or RenderSettings()
        self.layers = None
        self._options = (cull, graphs, cpu_kernels)
        if not isinstance(world, PointCloud) and world.info.get("frame_local") and len(world.dynamic_xyz) \
                and world.num_static:
            self.layers = (Renderer(world_point_cloud(world, self.device, "dynamic"), self.device, self.settings, cull,
                                    graphs, cpu_kernels),
                           Renderer(world_point_cloud(world, self.device, "static"), self.device, self.settings, cull,
                                    graphs, cpu_kernels))
        # A layered world's one-pass cloud (renders without a time) is made on first use: the node
        # always renders at a time, and the layers already hold every point once.
        self._all_layers: Renderer | None = None
        self.cloud = world if isinstance(world, PointCloud) else (
            world_point_cloud(world, self.device) if self.layers is None else None)
        cull = self.device.type == "cpu" if cull is None else cull
        # Culling needs the splat cap: without it a near surfel may cover any part of the image.
        self.chunks = (ChunkedCloud(self.cloud) if self.cloud is not None and cull and self.settings.max_splat_px > 0
                       and len(self.cloud.xyz) else None)
        if graphs is None:
            graphs = self.device.type == "cuda" and os.environ.get("INSPATIO_NO_GRAPHS") != "1"
        self.graphs = bool(graphs) and self.device.type == "cuda" and self.settings.max_splat_px > 0
        self._captured: dict = {}
        self.recaptures = 0          # graphs captured again after an overflow (diagnostics)
        if cpu_kernels is None and self.device.type == "cpu":
            # Asked only on the CPU: importing numba maps LLVM into the process (~36 MB resident
            # measured in the GPU node, which never runs the kernels).
            from . import render_cpu
            cpu_kernels = os.environ.get("INSPATIO_CPU_KERNELS") != "0" and render_cpu.available()
        self.cpu_kernels = bool(cpu_kernels) and self.device.type == "cpu"

    def cameras(self, c2w, intrinsics: Intrinsics | Sequence[Intrinsics] | None = None) -> Cameras:
        return Cameras.from_intrinsics(intrinsics or self.world.intrinsics, c2w, self.device)

    def render(self, cameras: Cameras, t: float | None = None) -> RenderOutput:
        cameras = cameras.to(self.device)
        if self.layers is not None:
            if t is None:
                if self._all_layers is None:
                    self._all_layers = Renderer(world_point_cloud(self.world, self.device), self.device, self.settings,
                                                *self._options)
                return self._all_layers.render(cameras, None)
            front, back = (r.render(cameras, t) for r in self.layers)
            empty = torch.isnan(front.depth)
            return RenderOutput(torch.where(empty[..., None], back.rgb, front.rgb),
                                torch.where(empty, back.depth, front.depth),
                                front.coverage | (empty & back.coverage), None, front.need_counts)
        if self.graphs:
            return self._render_captured(cameras, t)
        cloud = self.cloud
        margin = float(self.settings.max_splat_px) + 1.0
        if self.cpu_kernels:
            from .render_cpu import render_points_cpu, visible_runs
            if self.chunks is None:
                return render_points_cpu(cloud, cameras, t, self.settings)
            runs = visible_runs(self.chunks, cameras, self.settings.near, margin)
            return render_points_cpu(self.chunks.cloud, cameras, t, self.settings, runs=runs)
        if self.chunks is not None:
            cloud = self.chunks.subset(cameras, self.settings.near, margin)
        return render_points(cloud, cameras, t, self.settings)

    def _render_captured(self, cams: Cameras, t: float | None) -> RenderOutput:
        use_time = t is not None and self.cloud.has_dynamic
        key = (len(cams), cams.height, cams.width, use_time)
        entry = self._captured.get(key)
        if entry is not None:
            out = entry.replay(cams, t)
            counts = out.need_counts.cpu()            # waits for the render (outputs are read next anyway)
            if bool((counts <= torch.tensor(entry.capacity)).all()):
                # Copies: the next replay overwrites the graph's outputs.
                return RenderOutput(out.rgb.clone(), out.depth.clone(), out.coverage.clone(), None, counts)
            log.info("splat rings needed %s pixels, captured for %s: re-capturing the render graph",
                     counts.tolist(), entry.capacity)
            self.recaptures += 1
            del self._captured[key]
        out = render_points(self.cloud, cams, t, self.settings)
        capacity = _capacity_for(out.need_counts, len(cams) * cams.height * cams.width)
        self._captured[key] = _CapturedRender(self.cloud, cams, t if use_time else None, self.settings, capacity)
        return out


def render(world, cameras: Cameras, t: float | None = None, device: str | torch.device = "auto",
           settings: RenderSettings | None = None) -> RenderOutput:
    """One-shot render of a World (uploads it each call: keep a Renderer for repeated frames)."""
    return Renderer(world, device, settings).render(cameras, t)
