"""GPU point renderer: surfel z-buffer splatting with hole filling, batched over cameras.

One code path for CUDA and CPU (plain PyTorch, no per-pixel or per-point Python loops).

How a batch of B cameras (one image size) is rendered at sim time ``t``:

1. **Centre z-buffer.** Every point alive at ``t`` is projected into every camera; a 64-bit key
   ``(depth bits << 32) | point index`` is reduced with ``scatter_reduce(amin)`` into its pixel,
   so each pixel keeps its nearest point centre (float32 bits of positive depths order like the
   depths themselves). Cost: one pass over the points, independent of splat sizes.
2. **Surfel expansion (image space).** Each pixel's winning point is a small disk (the point's
   radius, its normal; a point without a normal faces the camera). For every neighbour within
   the largest projected radius, the disk's plane is intersected with this pixel's ray: if the
   hit lies inside the disk and is clearly in front of what the pixel holds (relative
   ``depth_tolerance``), the neighbour's surface wins. Points on one surface therefore never
   overwrite each other (the plane depth equals the pixel's own depth), while a close surface
   covers the background that would show through the gaps between its point centres.
3. **Hole filling.** Pixels still empty are filled by push-pull interpolation over an image
   pyramid of ``hole_fill_levels`` levels (holes up to about ``2**levels`` pixels wide); they are
   marked not covered. Pixels beyond that reach keep the background colour and NaN depth.

Outputs: rgb uint8 (B,H,W,3), depth float32 metres (B,H,W, z-depth, NaN = unknown) and
coverage bool (B,H,W): True where the world was seen, False where hole-filled or empty.
"""
from __future__ import annotations

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


def _project(cloud: PointCloud, cams: Cameras, t: float | None, near: float):
    """Camera-frame points (B,N,3), flat pixel keys target (B,N) (dump slot if invalid)."""
    B, H, W = len(cams), cams.height, cams.width
    rot = cams.c2w[:, :3, :3]                                   # (B,3,3) camera axes in world
    centre = cams.c2w[:, :3, 3]                                 # (B,3)
    # x_cam = R^T (x - C) = x R - C R, as one batched matmul over all points.
    pts = torch.matmul(cloud.xyz.unsqueeze(0), rot) - torch.matmul(centre.unsqueeze(1), rot)
    z = pts[..., 2]
    K = cams.K
    zs = z.clamp_min(near)
    u = pts[..., 0] / zs * K[:, 0, 0, None] + K[:, 0, 2, None]
    v = pts[..., 1] / zs * K[:, 1, 1, None] + K[:, 1, 2, None]
    ui = torch.floor(u + 0.5)
    vi = torch.floor(v + 0.5)
    valid = (z > near) & (ui >= 0) & (ui <= W - 1) & (vi >= 0) & (vi <= H - 1)
    if t is not None and cloud.has_dynamic:
        alive = (cloud.t_start <= t) & (cloud.t_end >= t)
        valid &= alive.unsqueeze(0)
    batch_offset = (torch.arange(B, device=z.device) * (H * W)).unsqueeze(1)
    flat = (vi.clamp(0, H - 1) * W + ui.clamp(0, W - 1)).long() + batch_offset
    # Points not drawn go to a spare area after the image, spread over _DUMP_SLOTS slots: one
    # shared slot would serialise millions of atomic updates on the GPU.
    dump = B * H * W + torch.arange(z.shape[1], device=z.device) % _DUMP_SLOTS
    flat = torch.where(valid, flat, dump.unsqueeze(0))
    return pts, z, flat


def _centre_zbuffer(z: torch.Tensor, flat: torch.Tensor, num_pixels: int) -> torch.Tensor:
    """Per pixel, the nearest point's index (or -1). Depth-major 64-bit keys + scatter amin."""
    N = z.shape[1]
    zbits = z.contiguous().view(torch.int32).to(torch.int64)   # monotone for positive floats
    idx = torch.arange(N, device=z.device, dtype=torch.int64).unsqueeze(0)
    key = (zbits << 32) | idx
    buf = torch.full((num_pixels + _DUMP_SLOTS,), _KEY_EMPTY, dtype=torch.int64, device=z.device)
    buf.scatter_reduce_(0, flat.reshape(-1), key.reshape(-1), reduce="amin", include_self=True)
    buf = buf[:num_pixels]
    return torch.where(buf == _KEY_EMPTY, torch.full_like(buf, -1), buf & 0xFFFFFFFF)


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


def _plane_depth_at_pixel(cams: Cameras, P, n_cam, depth):
    """Depth where each pixel's own ray meets its winning surfel's plane.

    A point centre lies anywhere inside its pixel; on a steep surface (the road ahead) its own
    depth can differ from the surface's depth at the pixel centre by several per cent per pixel.
    The plane through the centre gives the exact depth of a planar surface. Grazing planes (ray
    almost in the plane) keep the centre depth; so do surfels without a normal (the caller).
    """
    B, H, W = len(cams), cams.height, cams.width
    dev = depth.device
    v = torch.arange(H, device=dev, dtype=torch.float32).view(1, H, 1)
    u = torch.arange(W, device=dev, dtype=torch.float32).view(1, 1, W)
    K = cams.K
    rx = ((u - K[:, 0, 2, None, None]) / K[:, 0, 0, None, None]).expand(B, H, W).reshape(-1)
    ry = ((v - K[:, 1, 2, None, None]) / K[:, 1, 1, None, None]).expand(B, H, W).reshape(-1)
    denom = n_cam[:, 0] * rx + n_cam[:, 1] * ry + n_cam[:, 2]
    ray_len = torch.sqrt(rx * rx + ry * ry + 1.0)
    plane = (n_cam * P).sum(-1) / torch.where(denom.abs() > 1e-6, denom, torch.full_like(denom, 1e-6))
    usable = (denom.abs() > 0.05 * ray_len) & (plane > 0.5 * depth) & (plane < 2.0 * depth)
    return torch.where(usable & torch.isfinite(depth), plane, depth)


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
        q = table[:, nb] if planar else table[nb].t()                  # (8, A)
        denom = q[3] * rx + q[4] * ry + q[5]
        z = q[6] / torch.where(denom.abs() > 1e-6, denom, torch.full_like(denom, 1e-6))
        ex, ey, ez = z * rx - q[0], z * ry - q[1], z - q[2]
        wins = (ex * ex + ey * ey + ez * ez <= q[7]) & (z > near) & (z < best * keep)
        best = torch.where(wins, z, best)
        source = torch.where(wins, nb, source)
    return best, source


_compiled: dict = {}


def _ring_function(fn, device: torch.device):
    """On CUDA, ``fn`` compiled into fused kernels (eager PyTorch launches ~15 kernels per
    neighbour offset). Eager elsewhere, or when INSPATIO_NO_COMPILE=1."""
    if device.type != "cuda" or os.environ.get("INSPATIO_NO_COMPILE") == "1":
        return fn
    if fn not in _compiled:
        _compiled[fn] = torch.compile(fn, dynamic=True)
    return _compiled[fn]


def _expand_surfels(cams: Cameras, P, n_cam, radius, depth, winner, s: RenderSettings):
    """Let each pixel's winning surfel (disk) cover neighbouring pixels where it is in front.

    P, n_cam (B*H*W,3): winner centre and normal in camera frame; radius (B*H*W,) metres (-1
    where empty); depth (B*H*W,) inf where empty; winner (B*H*W,) point index or -1.
    Only pixels that some neighbour could beat are examined: a masked min-pool over each ring
    finds them (empty pixels, background seen through gaps, silhouettes), so interior pixels of
    a surface cost nothing beyond the pooling.
    """
    B, H, W = len(cams), cams.height, cams.width
    dev = depth.device
    fx = cams.K[:, 0, 0].repeat_interleave(H * W)
    r_px = torch.where(radius > 0, radius * fx / depth, torch.zeros_like(depth))
    reach_px = torch.where(radius > 0, r_px + _DISK_REACH_SLACK, torch.zeros_like(depth))
    K = int(min(s.max_splat_px, math.floor(float(reach_px.max()))))
    if K < 1:
        return depth, winner
    keep = 1.0 - s.depth_tolerance
    depth_img = depth.view(B, 1, H, W)

    # Per-pixel surfel data as planes, zero-padded by K (radius^2 padded with -1 = no surfel).
    Hp, Wp = H + 2 * K, W + 2 * K
    plane_c = (n_cam * P).sum(-1)                                      # n . P
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
        # Pixels that a surfel reaching >= k pixels, within k pixels, could beat: its centre is
        # in front of what the pixel shows by more than k tolerances (a surface seen at a slant
        # changes depth from pixel to pixel; such neighbours are the same surface, not occluders).
        masked = torch.where((reach_px >= k).view(B, 1, H, W), depth_img, torch.full_like(depth_img, math.inf))
        need = _square_min_filter(masked, k) < best_all.view(B, 1, H, W) * (1.0 - k * s.depth_tolerance)
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
        best, source = _ring_function(_ring_pass, dev)(table, planar, base, rx, ry, best_all[active], source_all[active],
                                                       tuple(dy * Wp + dx for dy, dx in ring), s.near, keep)
        best_all[active] = best
        source_all[active] = source
    taken = source_all >= 0
    winner = torch.where(taken, winner_pad[source_all.clamp_min(0)], winner)
    return best_all, winner

    # Per-pixel surfel data, zero-padded by K, flattened: one gather per neighbour offset.
    Hp, Wp = H + 2 * K, W + 2 * K
    plane_c = (n_cam * P).sum(-1)                                      # n . P
    r2 = torch.where(radius > 0, radius * radius, torch.full_like(radius, -1.0))
    planes = torch.stack([P[:, 0], P[:, 1], P[:, 2], n_cam[:, 0], n_cam[:, 1], n_cam[:, 2], plane_c, r2])
    planes = F.pad(planes.view(8, B, H, W), (K, K, K, K), value=0.0)
    planes[7] = F.pad(r2.view(B, H, W), (K, K, K, K), value=-1.0)
    planes = planes.reshape(8, -1)
    winner_pad = F.pad(winner.view(B, H, W), (K, K, K, K), value=-1).reshape(-1)

    b = active // (H * W)
    v = (active // W) % H
    u = active % W
    base = b * (Hp * Wp) + (v + K) * Wp + (u + K)
    rx = (u.to(torch.float32) - cams.K[b, 0, 2]) / cams.K[b, 0, 0]
    ry = (v.to(torch.float32) - cams.K[b, 1, 2]) / cams.K[b, 1, 1]
    best = depth[active]
    best_point = winner[active]
    offsets = sorted(((dy, dx) for dy in range(-K, K + 1) for dx in range(-K, K + 1) if (dy, dx) != (0, 0)),
                     key=lambda o: o[0] ** 2 + o[1] ** 2)
    for dy, dx in offsets:
        nb = base + (dy * Wp + dx)
        q = planes.index_select(1, nb)                                 # (8, A)
        denom = q[3] * rx + q[4] * ry + q[5]
        z = q[6] / torch.where(denom.abs() > 1e-6, denom, torch.full_like(denom, 1e-6))
        ex, ey, ez = z * rx - q[0], z * ry - q[1], z - q[2]
        wins = (ex * ex + ey * ey + ez * ez <= q[7]) & (z > s.near) & (z < best * keep)
        best = torch.where(wins, z, best)
        best_point = torch.where(wins, winner_pad[nb], best_point)
    depth = depth.clone()
    winner = winner.clone()
    depth[active] = best
    winner[active] = best_point
    return depth, winner


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

    pts, z, flat = _project(cloud, cams, t, s.near)
    winner = _centre_zbuffer(z, flat, num_pixels)                      # (B*H*W,) point idx or -1
    has = winner >= 0
    safe = winner.clamp_min(0)
    batch_of_pixel = torch.arange(num_pixels, device=dev) // (H * W)
    gather = batch_of_pixel * len(cloud) + safe
    P = pts.reshape(-1, 3)[gather]                                     # winner, camera frame
    depth = torch.where(has, P[:, 2], torch.full_like(P[:, 2], math.inf))

    point_of_pixel = winner
    if bool(has.any()):
        # Surfel planes of the winners: normal in camera frame (faces the camera if unknown).
        n_world = cloud.normal[safe]
        # n_cam = R^T n for each camera's pixels: one small batched matmul per camera.
        n_cam = torch.bmm(n_world.view(B, H * W, 3), cams.c2w[:, :3, :3]).reshape(-1, 3)
        facing = -P / P.norm(dim=-1, keepdim=True).clamp_min(1e-9)
        unknown = n_world.abs().sum(-1, keepdim=True) == 0
        n_cam = torch.where(unknown, facing, n_cam)
        depth = torch.where(unknown[:, 0], depth, _plane_depth_at_pixel(cams, P, n_cam, depth))
        if s.max_splat_px > 0:
            radius = torch.where(has, cloud.radius[safe], torch.full_like(depth, -1.0))
            depth, point_of_pixel = _expand_surfels(cams, P, n_cam, radius, depth, winner, s)

    covered = point_of_pixel >= 0
    rgb = cloud.rgb[point_of_pixel.clamp_min(0)].to(torch.float32)
    rgb = torch.where(covered.unsqueeze(-1), rgb, torch.zeros_like(rgb))
    depth = torch.where(covered, depth, torch.zeros_like(depth))

    rgb = rgb.reshape(B, H, W, 3).permute(0, 3, 1, 2)
    depth = depth.reshape(B, 1, H, W)
    covered = covered.reshape(B, 1, H, W)
    if s.hole_fill_levels > 0:
        values, have = _push_pull(torch.cat([rgb, depth], 1), covered, s.hole_fill_levels)
        rgb, depth = values[:, :3], values[:, 3:]
    else:
        have = covered
    bg = torch.tensor(s.background, dtype=torch.float32, device=dev).view(1, 3, 1, 1)
    rgb = torch.where(have, rgb, bg)
    depth = torch.where(have, depth, torch.full_like(depth, math.nan))
    rgb_u8 = rgb.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
    index = point_of_pixel.reshape(B, H, W) if return_index else None
    return RenderOutput(rgb_u8, depth[:, 0].contiguous(), covered[:, 0].contiguous(), index)


def world_point_cloud(world, device: str | torch.device = "cpu") -> PointCloud:
    """Static and dynamic layers of a World as one PointCloud on ``device``."""
    n_s, n_d = world.num_static, world.num_dynamic
    xyz = np.concatenate([world.static_xyz, world.dynamic_xyz])
    rgb = np.concatenate([world.static_rgb, world.dynamic_rgb])
    radius = np.concatenate([world.static_radius, world.dynamic_radius])
    normal = np.concatenate([world.static_normal, world.dynamic_normal])
    t_start = np.concatenate([np.full(n_s, -np.inf), world.dynamic_t_start])
    t_end = np.concatenate([np.full(n_s, np.inf), world.dynamic_t_end])
    return PointCloud.from_arrays(xyz, rgb, radius, normal, t_start, t_end, device=device)


class Renderer:
    """A world uploaded once to a device; ``render`` draws batches of cameras at a time."""

    def __init__(self, world, device: str | torch.device = "auto", settings: RenderSettings | None = None):
        self.world = world
        self.device = resolve_device(device)
        self.settings = settings or RenderSettings()
        self.cloud = world_point_cloud(world, self.device)

    def cameras(self, c2w, intrinsics: Intrinsics | Sequence[Intrinsics] | None = None) -> Cameras:
        return Cameras.from_intrinsics(intrinsics or self.world.intrinsics, c2w, self.device)

    def render(self, cameras: Cameras, t: float | None = None) -> RenderOutput:
        return render_points(self.cloud, cameras, t, self.settings)


def render(world, cameras: Cameras, t: float | None = None, device: str | torch.device = "auto",
           settings: RenderSettings | None = None) -> RenderOutput:
    """One-shot render of a World (uploads it each call: keep a Renderer for repeated frames)."""
    return Renderer(world, device, settings).render(cameras, t)
