"""GPU point renderer: surfel z-buffer splatting with hole filling, batched over cameras.

One code path for CUDA and CPU (plain PyTorch, no per-pixel or per-point Python loops); on CUDA
the stages are compiled (torch.compile) into fused kernels, elsewhere they run eagerly.

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
   ``depth_tolerance``), the neighbour's surface wins. Points on one surface therefore never
   overwrite each other (the plane depth equals the pixel's own depth), while a close surface
   covers the background that would show through the gaps between its point centres. Ring by
   ring (k = 1, 2, ... pixels away), only pixels with a neighbour centre more than k tolerances
   in front are tested, so the interiors of surfaces cost almost nothing.
3. **Hole filling.** Pixels still empty are filled by push-pull interpolation over an image
   pyramid of ``hole_fill_levels`` levels (holes up to about ``2**levels`` pixels wide); they are
   marked not covered. Pixels beyond that reach keep the background colour and NaN depth.

Outputs: rgb uint8 (B,H,W,3), depth float32 metres (B,H,W, z-depth, NaN = unknown) and
coverage bool (B,H,W): True where the world was seen, False where hole-filled or empty.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from .camera import Intrinsics

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


def _project_keys(xyz, t_start, t_end, rot, centre, K, t: torch.Tensor, near: float, height: int, width: int,
                  use_time: bool):
    """Z-buffer keys of every point in every camera: (key (B,N) int64, pixel (B,N) int64).

    key = (float32 bits of depth << 32) | point index, so that the smallest key of a pixel is its
    nearest point (bits of positive floats order like the floats). Points that are not drawn
    (behind, outside, not alive at ``t``) go to a spare area after the image, spread over
    _DUMP_SLOTS pixels: one shared slot would serialise millions of GPU atomics.
    """
    B, N = rot.shape[0], xyz.shape[0]
    # x_cam = R^T (x - C): written out per axis so that it fuses into one pass over the points.
    d = xyz.unsqueeze(0) - centre.unsqueeze(1)                          # (B,N,3)
    x = (d * rot[:, None, :, 0]).sum(-1)
    y = (d * rot[:, None, :, 1]).sum(-1)
    z = (d * rot[:, None, :, 2]).sum(-1)
    zs = z.clamp_min(near)
    u = torch.floor(x / zs * K[:, 0, 0, None] + K[:, 0, 2, None] + 0.5)
    v = torch.floor(y / zs * K[:, 1, 1, None] + K[:, 1, 2, None] + 0.5)
    valid = (z > near) & (u >= 0) & (u <= width - 1) & (v >= 0) & (v <= height - 1)
    if use_time:  # t: 0-dim float64 tensor (a tensor, so that compiled code is not re-made per t)
        valid &= ((t_start <= t) & (t_end >= t)).unsqueeze(0)
    index = torch.arange(N, device=xyz.device, dtype=torch.int64)
    pixel = (v.clamp(0, height - 1) * width + u.clamp(0, width - 1)).to(torch.int64) \
        + (torch.arange(B, device=xyz.device, dtype=torch.int64) * (height * width)).unsqueeze(1)
    pixel = torch.where(valid, pixel, B * height * width + index % _DUMP_SLOTS)
    key = (zs.view(torch.int32).to(torch.int64) << 32) | index
    return key, pixel


def _centre_zbuffer(key: torch.Tensor, pixel: torch.Tensor, num_pixels: int) -> torch.Tensor:
    """Per pixel, the nearest point's index (or -1): scatter-min of the keys."""
    buf = torch.full((num_pixels + _DUMP_SLOTS,), _KEY_EMPTY, dtype=torch.int64, device=key.device)
    buf.scatter_reduce_(0, pixel.reshape(-1), key.reshape(-1), reduce="amin", include_self=True)
    return buf[:num_pixels]


def _winner_surfels(buf, xyz, normal, radius, rot, centre, K, height: int, width: int):
    """Decode the z-buffer: per pixel the winner's index (-1), camera-frame centre P, normal
    n_cam (facing the camera where unknown), radius (-1 empty), and depth where the pixel's ray
    meets the surfel's plane (inf empty)."""
    B = rot.shape[0]
    has = buf != _KEY_EMPTY
    winner = torch.where(has, buf & 0xFFFFFFFF, torch.full_like(buf, -1))
    safe = winner.clamp_min(0)
    d = xyz.index_select(0, safe).view(B, height * width, 3) - centre.unsqueeze(1)  # world offset
    P = torch.stack([(d * rot[:, None, :, i]).sum(-1) for i in range(3)], -1)
    n_world = normal.index_select(0, safe).view(B, height * width, 3)
    n_cam = torch.stack([(n_world * rot[:, None, :, i]).sum(-1) for i in range(3)], -1)
    unknown = (n_world.abs().sum(-1, keepdim=True) == 0)
    facing = -P / P.norm(dim=-1, keepdim=True).clamp_min(1e-9)
    n_cam = torch.where(unknown, facing, n_cam)
    has_img = has.view(B, height * width)
    centre_depth = torch.where(has_img, P[..., 2], torch.full_like(P[..., 2], math.inf))
    # Depth where this pixel's ray meets the surfel's plane. A point centre lies anywhere in its
    # pixel; on a steep surface (the road ahead) its own depth differs from the surface's at the
    # pixel centre by several per cent per pixel. Grazing planes and surfels without a normal
    # keep the centre depth.
    vv = torch.arange(height, device=xyz.device, dtype=torch.float32).repeat_interleave(width)
    uu = torch.arange(width, device=xyz.device, dtype=torch.float32).repeat(height)
    rx = (uu.unsqueeze(0) - K[:, 0, 2, None]) / K[:, 0, 0, None]
    ry = (vv.unsqueeze(0) - K[:, 1, 2, None]) / K[:, 1, 1, None]
    denom = n_cam[..., 0] * rx + n_cam[..., 1] * ry + n_cam[..., 2]
    plane_c = (n_cam * P).sum(-1)
    plane = plane_c / torch.where(denom.abs() > 1e-6, denom, torch.full_like(denom, 1e-6))
    ray_len = torch.sqrt(rx * rx + ry * ry + 1.0)
    usable = (denom.abs() > 0.05 * ray_len) & (plane > 0.5 * centre_depth) & (plane < 2.0 * centre_depth)
    usable &= ~unknown[..., 0] & has_img
    depth = torch.where(usable, plane, centre_depth)
    rad = torch.where(has_img, radius.index_select(0, safe).view(B, height * width), torch.full_like(centre_depth, -1.0))
    r_px = torch.where(has_img, rad * K[:, 0, 0, None] / depth, torch.zeros_like(depth))
    reach = torch.where(has_img, r_px + _DISK_REACH_SLACK, torch.zeros_like(depth))
    return (winner, P.reshape(-1, 3), n_cam.reshape(-1, 3), plane_c.reshape(-1), rad.reshape(-1),
            depth.reshape(-1), reach.reshape(-1))


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


def _ring_pass(table, planar: bool, base, rx, ry, best, source, offsets: tuple[int, ...], near: float,
               keep: float):
    """Test the surfels at ``offsets`` (flat, in the padded image) against active pixels.

    table: per padded pixel the surfel's centre xyz, normal xyz, n.P and radius^2 (-1 empty),
    as (8, B*Hp*Wp) planes when ``planar`` (coalesced gathers on the GPU) or (B*Hp*Wp, 8) rows
    (one contiguous row per gather on the CPU). base (A,): padded index of each active pixel;
    rx, ry (A,): its ray; best (A,): depth so far; source (A,): padded index of the surfel drawn
    there (-1: the pixel's own). A candidate wins if its disk contains the pixel's ray hit and it
    is in front by more than the depth tolerance. Offsets go nearest first.
    """
    for off in offsets:
        nb = base + off
        q = table[:, nb] if planar else table.index_select(0, nb).t()  # (8, A); index_select: 3x faster on CPU
        denom = q[3] * rx + q[4] * ry + q[5]
        z = q[6] / torch.where(denom.abs() > 1e-6, denom, torch.full_like(denom, 1e-6))
        ex, ey, ez = z * rx - q[0], z * ry - q[1], z - q[2]
        wins = (ex * ex + ey * ey + ez * ez <= q[7]) & (z > near) & (z < best * keep)
        best = torch.where(wins, z, best)
        source = torch.where(wins, nb, source)
    return best, source


_compiled: dict = {}


def _maybe_compiled(fn, device: torch.device):
    """On CUDA, ``fn`` compiled into fused kernels (eager PyTorch launches one kernel per
    operation: ~15 per neighbour offset in the ring pass). Eager elsewhere, or when
    INSPATIO_NO_COMPILE=1. Shapes are dynamic, so resolutions and point counts do not recompile."""
    if device.type != "cuda" or os.environ.get("INSPATIO_NO_COMPILE") == "1":
        return fn
    if fn not in _compiled:
        # Symbolic-shape reasoning about the pyramid's ceil-divisions logs harmless warnings.
        logging.getLogger("torch.utils._sympy.interp").setLevel(logging.ERROR)
        _compiled[fn] = torch.compile(fn, dynamic=True)
    return _compiled[fn]


def _ring_need(depth_img, reach_img, best_img, k: int, tolerance: float):
    """Pixels (B,1,H,W) that a surfel reaching >= k pixels, within k pixels, could beat: its
    centre is in front of what the pixel shows by more than k tolerances (a surface seen at a
    slant changes depth from pixel to pixel; such neighbours are the same surface)."""
    masked = torch.where(reach_img >= k, depth_img, torch.full_like(depth_img, math.inf))
    return _square_min_filter(masked, k) < best_img * (1.0 - k * tolerance)


def _expand_surfels(cams: Cameras, P, n_cam, plane_c, radius, depth, reach_px, winner, s: RenderSettings):
    """Let each pixel's winning surfel (disk) cover neighbouring pixels where it is in front.

    P, n_cam (B*H*W,3): winner centre and normal in camera frame; plane_c = n.P; radius (B*H*W,)
    metres (-1 where empty); depth (B*H*W,) inf where empty; reach_px: how many pixels the disk
    can reach; winner (B*H*W,) point index or -1.
    Ring by ring (Chebyshev distance k = 1, 2, ...), only pixels that a neighbour could beat are
    examined: a masked min-filter finds them (empty pixels, background seen through gaps,
    silhouettes), so interior pixels of a surface cost nothing beyond the filter.
    """
    B, H, W = len(cams), cams.height, cams.width
    dev = depth.device
    K = int(min(s.max_splat_px, math.floor(float(reach_px.max()))))
    if K < 1:
        return depth, winner
    keep = 1.0 - s.depth_tolerance
    depth_img = depth.view(B, 1, H, W)

    # Per-pixel surfel data as planes, zero-padded by K (radius^2 padded with -1 = no surfel).
    Hp, Wp = H + 2 * K, W + 2 * K
    r2 = torch.where(radius > 0, radius * radius, torch.full_like(radius, -1.0))
    planes = torch.stack([P[:, 0], P[:, 1], P[:, 2], n_cam[:, 0], n_cam[:, 1], n_cam[:, 2], plane_c, r2])
    planes = F.pad(planes.view(8, B, H, W), (K, K, K, K), value=0.0)
    planes[7] = F.pad(r2.view(B, H, W), (K, K, K, K), value=-1.0)
    winner_pad = F.pad(winner.view(B, H, W), (K, K, K, K), value=-1).reshape(-1)
    planar = dev.type == "cuda"
    table = planes.reshape(8, -1) if planar else planes.reshape(8, -1).t().contiguous()

    best_all = depth.clone()
    source_all = torch.full_like(winner, -1)                           # padded pixel that won, -1: own
    for k in range(1, K + 1):
        need = _maybe_compiled(_ring_need, dev)(depth_img, reach_px.view(B, 1, H, W), best_all.view(B, 1, H, W), k,
                                                s.depth_tolerance)
        ring = sorted(((dy, dx) for dy in range(-k, k + 1) for dx in range(-k, k + 1) if max(abs(dy), abs(dx)) == k),
                      key=lambda o: o[0] ** 2 + o[1] ** 2)
        active = need.reshape(-1).nonzero()[:, 0]
        if active.numel() == 0:
            continue
        b = active // (H * W)
        v = (active // W) % H
        u = active % W
        base = b * (Hp * Wp) + (v + K) * Wp + (u + K)
        rx = (u.to(torch.float32) - cams.K[b, 0, 2]) / cams.K[b, 0, 0]
        ry = (v.to(torch.float32) - cams.K[b, 1, 2]) / cams.K[b, 1, 1]
        best, source = _maybe_compiled(_ring_pass, dev)(table, planar, base, rx, ry, best_all[active], source_all[active],
                                                       tuple(dy * Wp + dx for dy, dx in ring), s.near, keep)
        best_all[active] = best
        source_all[active] = source
    taken = source_all >= 0
    winner = torch.where(taken, winner_pad[source_all.clamp_min(0)], winner)
    return best_all, winner


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


@torch.no_grad()
def render_points(cloud: PointCloud, cams: Cameras, t: float | None = None,
                  settings: RenderSettings | None = None, return_index: bool = False) -> RenderOutput:
    """Render ``cloud`` from every camera of ``cams`` at time ``t`` (None: all points).

    ``return_index`` also returns which point each covered pixel shows (used by fusion).
    """
    s = settings or RenderSettings()
    cams = cams.to(cloud.xyz.device)
    B, H, W = len(cams), cams.height, cams.width
    dev = cloud.xyz.device
    num_pixels = B * H * W

    use_time = t is not None and cloud.has_dynamic
    rot, centre = cams.c2w[:, :3, :3], cams.c2w[:, :3, 3]
    key, pixel = _maybe_compiled(_project_keys, dev)(cloud.xyz, cloud.t_start, cloud.t_end, rot, centre, cams.K,
                                                     torch.tensor(float(t) if use_time else 0.0, dtype=torch.float64,
                                                                  device=dev), s.near, H, W, use_time)
    buf = _centre_zbuffer(key, pixel, num_pixels)
    del key, pixel
    winner, P, n_cam, plane_c, radius, depth, reach = _maybe_compiled(_winner_surfels, dev)(
        buf, cloud.xyz, cloud.normal, cloud.radius, rot, centre, cams.K, H, W)
    point_of_pixel = winner
    if s.max_splat_px > 0:
        depth, point_of_pixel = _expand_surfels(cams, P, n_cam, plane_c, radius, depth, reach, winner, s)

    background = torch.tensor(s.background, dtype=torch.float32, device=dev)
    rgb_u8, depth, covered = _maybe_compiled(_finish, dev)(point_of_pixel, depth, cloud.rgb, background, B, H, W,
                                                           s.hole_fill_levels)
    index = point_of_pixel.reshape(B, H, W) if return_index else None
    return RenderOutput(rgb_u8, depth, covered, index)


def world_point_cloud(world, device: str | torch.device = "cpu") -> PointCloud:
    """Static and dynamic layers of a World as one PointCloud on ``device``."""
    n_s = world.num_static
    xyz = np.concatenate([world.static_xyz, world.dynamic_xyz])
    rgb = np.concatenate([world.static_rgb, world.dynamic_rgb])
    radius = np.concatenate([world.static_radius, world.dynamic_radius])
    normal = np.concatenate([world.static_normal, world.dynamic_normal])
    t_start = np.concatenate([np.full(n_s, -np.inf), world.dynamic_t_start])
    t_end = np.concatenate([np.full(n_s, np.inf), world.dynamic_t_end])
    return PointCloud.from_arrays(xyz, rgb, radius, normal, t_start, t_end, device=device)


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
        self.cloud = PointCloud(xyz[order], cloud.rgb[order], cloud.radius[order], cloud.normal[order],
                                cloud.t_start[order], cloud.t_end[order], cloud.has_dynamic)
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
        c = self.cloud
        return PointCloud(c.xyz[lo:hi], c.rgb[lo:hi], c.radius[lo:hi], c.normal[lo:hi], c.t_start[lo:hi],
                          c.t_end[lo:hi], c.has_dynamic)


class Renderer:
    """A world uploaded once to a device; ``render`` draws batches of cameras at a time.

    On the CPU the world is kept in spatial chunks and each batch projects only the chunks in
    view (ChunkedCloud); on CUDA every point is projected (culling is not measured there yet).
    """

    def __init__(self, world, device: str | torch.device = "auto", settings: RenderSettings | None = None,
                 cull: bool | None = None):
        self.world = world
        self.device = resolve_device(device)
        self.settings = settings or RenderSettings()
        self.cloud = world_point_cloud(world, self.device)
        cull = self.device.type == "cpu" if cull is None else cull
        # Culling needs the splat cap: without it a near surfel may cover any part of the image.
        self.chunks = ChunkedCloud(self.cloud) if cull and self.settings.max_splat_px > 0 and len(self.cloud.xyz) else None

    def cameras(self, c2w, intrinsics: Intrinsics | Sequence[Intrinsics] | None = None) -> Cameras:
        return Cameras.from_intrinsics(intrinsics or self.world.intrinsics, c2w, self.device)

    def render(self, cameras: Cameras, t: float | None = None) -> RenderOutput:
        cloud = self.cloud
        if self.chunks is not None:
            cloud = self.chunks.subset(cameras.to(self.device), self.settings.near, float(self.settings.max_splat_px) + 1.0)
        return render_points(cloud, cameras, t, self.settings)


def render(world, cameras: Cameras, t: float | None = None, device: str | torch.device = "auto",
           settings: RenderSettings | None = None) -> RenderOutput:
    """One-shot render of a World (uploads it each call: keep a Renderer for repeated frames)."""
    return Renderer(world, device, settings).render(cameras, t)
