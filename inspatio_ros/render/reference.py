"""The renderer's algorithm in plain PyTorch: ``render_points``, what CUDA runs (its stages
compiled, see compiled.py) and the reference the CPU kernels (cpu.py) are tested against.

How a batch of B cameras (one image size) is rendered at sim time ``t``:

1. **Centre z-buffer.** Every point alive at ``t`` is projected into every camera; a 64-bit key
   ``(depth bits << 32) | point index`` is reduced with ``scatter_reduce(amin)`` into its pixel,
   so each pixel keeps its nearest point centre (float32 bits of positive depths order like the
   depths themselves). Cost: one pass over the points, independent of splat sizes. A pixel's
   depth is where its ray meets the winner's plane (exact on steep surfaces such as the road).
2. **Surfel expansion (image space, splats.py).** Each pixel's winning point is a small disk (the
   point's radius, its normal; a point without a normal faces the camera). For every neighbour
   within the largest projected radius, the disk's plane is intersected with this pixel's ray: if
   the hit lies inside the disk and is clearly in front of what the pixel holds (relative
   ``depth_tolerance``), the neighbour's surface may win; among those, the front-most surface
   wins, and on it the neighbour nearest in the image. Points on one surface therefore never
   overwrite each other (the plane depth equals the pixel's own depth), while a close surface
   covers the background that would show through the gaps between its point centres. Ring by
   ring (k = 1, 2, ... pixels away), only pixels with a neighbour centre in front of their own
   surface (extended k pixels along its slope) by more than k tolerances are tested, so the
   interiors of surfaces, slanted ones included, cost almost nothing.
3. **Hole filling (fill.py).** Pixels still empty are filled by push-pull interpolation over an
   image pyramid of ``hole_fill_levels`` levels (holes up to about ``2**levels`` pixels wide);
   they are marked not covered. Pixels beyond that reach keep the background colour and NaN depth.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

from .compiled import maybe_compiled
from .fill import push_pull
from .splats import DISK_REACH_SLACK, expand_surfels
from .types import Cameras, PointCloud, RenderOutput, RenderSettings

_KEY_EMPTY = torch.iinfo(torch.int64).max
_DUMP_SLOTS = 4096


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
    reach = torch.where(has_img, rad * K[:, 0, 0, None] / depth + DISK_REACH_SLACK, torch.zeros_like(depth))
    # Relative change of the plane's depth per pixel step (|dz/du| + |dz/dv|) / z: how much nearer
    # the same surface may come within one pixel, so that its own neighbours are not taken for
    # occluders. 0 where the centre depth is used.
    slope = (nx.abs() / K[:, 0, 0, None] + ny.abs() / K[:, 1, 1, None]) / denom.abs().clamp_min(1e-6)
    slope = torch.where(usable, slope, torch.zeros_like(slope))
    P = torch.stack([px, py, pz], -1)
    n_cam = torch.stack([nx, ny, nz], -1)
    return (winner, P.reshape(-1, 3), n_cam.reshape(-1, 3), plane_c.reshape(-1), rad.reshape(-1),
            depth.reshape(-1), reach.reshape(-1), slope.reshape(-1), rx.reshape(-1), ry.reshape(-1))


def _finish(point_of_pixel, depth, colours, background, B: int, H: int, W: int, levels: int):
    """Colours of the drawn points, hole filling, background: (rgb uint8 (B,H,W,3), depth
    (B,H,W) NaN unknown, covered (B,H,W))."""
    covered = point_of_pixel >= 0
    rgb = colours.index_select(0, point_of_pixel.clamp_min(0)).to(torch.float32)
    rgb = torch.where(covered.unsqueeze(-1), rgb, torch.zeros_like(rgb)).reshape(B, H, W, 3).permute(0, 3, 1, 2)
    depth = torch.where(covered, depth, torch.zeros_like(depth)).reshape(B, 1, H, W)
    covered = covered.reshape(B, 1, H, W)
    if levels > 0:
        values, have = push_pull(torch.cat([rgb, depth], 1), covered, levels)
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
    ``capacity``: per splat ring, how many pixels it may examine (see splats.expand_surfels): the render
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
    key, pixel = maybe_compiled(_project_keys, dev)(cloud.xyz, cloud.t_start, cloud.t_end, rot, centre, cams.K,
                                                     t_dev, s.near, H, W, use_time)
    buf = _centre_zbuffer(key, pixel, num_pixels)
    del key, pixel
    winner, P, n_cam, plane_c, radius, depth, reach, slope, rays_x, rays_y = maybe_compiled(_winner_surfels, dev)(
        buf, cloud.surfel, rot, centre, cams.K, H, W)
    point_of_pixel = winner
    counts = None
    if s.max_splat_px > 0:
        depth, point_of_pixel, counts = expand_surfels(cams, P, n_cam, plane_c, radius, depth, reach, slope, rays_x,
                                                        rays_y, winner, s, capacity)

    background = _device_constant(tuple(float(c) for c in s.background), torch.float32, dev)
    rgb_u8, depth, covered = maybe_compiled(_finish, dev)(point_of_pixel, depth, cloud.rgb, background, B, H, W,
                                                           s.hole_fill_levels)
    index = point_of_pixel.reshape(B, H, W) if return_index else None
    return RenderOutput(rgb_u8, depth, covered, index, counts)
