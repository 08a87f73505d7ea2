"""Surfel expansion in image space (step 2 of the reference render, reference.py): ring by ring,
each pixel's winning surfel may cover the neighbouring pixels where it is in front. Also the
pieces the CPU kernels share with it (the disk reach slack, ring offsets) and the masked square
minimum filter they are tested against."""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from .compiled import maybe_compiled
from .types import Cameras, RenderSettings



# Farthest a disk of radius r pixels centred in one pixel reaches, in whole pixels of Chebyshev
# distance: it touches the neighbour's centre region when r + sqrt(2)/2 >= distance.
DISK_REACH_SLACK = math.sqrt(0.5)


def square_min_filter(img: torch.Tensor, k: int) -> torch.Tensor:
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


def ring_pass(table, planar: bool, base, rx, ry, best, source, offsets, near: float, keep: float):
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
    """ring_pass for the active pixels (flat indices into the B*H*W image; entries >= B*H*W are
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
    return ring_pass(table, planar, base, rays_x[pix], rays_y[pix], best_all[active], source_all[active], offsets,
                      near, keep)


def _ring_need(depth_img, reach_img, best_img, slope_img, k: int, tolerance: float):
    """Pixels (B,1,H,W) that a surfel reaching >= k pixels, within k pixels, could beat: its
    centre is in front of the pixel's own surface, extended k pixels along its slope, by more
    than k tolerances. Neighbours on the same surface, even a steep one such as the road near the
    horizon, stay behind that bound (a plane's depth is convex in the pixel coordinates, so its
    tangent bounds it from below) and cost nothing."""
    masked = torch.where(reach_img >= k, depth_img, torch.full_like(depth_img, math.inf))
    floor = (1.0 - k * (slope_img + tolerance)).clamp_min(0.0)
    return square_min_filter(masked, k) < best_img * floor


_SPARE_SLOTS = 4096


def compact_indices(mask: torch.Tensor, capacity: int, fill: int) -> torch.Tensor:
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


def ring_offsets(k: int, row_stride: int, device) -> torch.Tensor:
    """Flat offsets (in an image with rows of ``row_stride``) of the pixels at Chebyshev distance
    k, nearest first; cached on the device (a CUDA graph cannot capture the host-to-device copy)."""
    key = (k, row_stride, str(device))
    if key not in _ring_offsets_cache:
        ring = sorted(((dy, dx) for dy in range(-k, k + 1) for dx in range(-k, k + 1) if max(abs(dy), abs(dx)) == k),
                      key=lambda o: o[0] ** 2 + o[1] ** 2)
        _ring_offsets_cache[key] = torch.tensor([dy * row_stride + dx for dy, dx in ring], dtype=torch.int64,
                                                device=device)
    return _ring_offsets_cache[key]


def expand_surfels(cams: Cameras, P, n_cam, plane_c, radius, depth, reach_px, slope, rays_x, rays_y, winner,
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
    table, winner_pad, best_all, source_all = maybe_compiled(_surfel_table, dev)(
        P, n_cam, plane_c, radius, winner, depth, B, H, W, K, planar)
    for k in range(1, K + 1):
        need = maybe_compiled(_ring_need, dev)(depth_img, reach_img, best_all[:num].view(B, 1, H, W), slope_img, k,
                                                s.depth_tolerance).reshape(-1)
        counts[k - 1] = need.sum()
        if capacity is None:
            active = need.nonzero()[:, 0]
            if active.numel() == 0:
                continue
        else:
            active = maybe_compiled(compact_indices, dev)(need, capacity[k - 1], num)
        best, source = maybe_compiled(_ring_step, dev)(table, planar, active, best_all, source_all, rays_x, rays_y,
                                                       ring_offsets(k, Wp, dev), s.near, keep, H, W, K)
        best_all[active] = best
        source_all[active] = source
    best_all, source_all = best_all[:num], source_all[:num]
    taken = source_all >= 0
    winner = torch.where(taken, winner_pad[source_all.clamp_min(0)], winner)
    return best_all, winner, counts
