"""Exact analytic ray-casting of axis-aligned boxes, a ground plane and a room, in torch.

Rays are generated per screen tile. Each tile keeps only the boxes whose corners are not all
outside one of its four frustum planes (a conservative, exact-when-it-matters cull), and the
slab test runs on ``[tiles, rays, candidate boxes]`` tensors. Tiles are sorted by candidate count
and batched, so padding is small and memory stays bounded however many boxes the scene holds.

Directions are *unnormalised* with camera-frame z = 1, so the hit parameter ``t`` of a ray is the
z-depth along the optical axis directly (no ray-length-to-depth conversion, no rounding from it).
Geometry is expressed relative to the camera centre in float64 before dropping to float32, so
precision does not degrade hundreds of metres from the world origin.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..camera import Intrinsics

TILE = 16                 # tile side in pixels: smaller = tighter culling, more Python overhead
PAIR_BUDGET = 3_000_000   # rays x candidate boxes evaluated per batch (bounds peak memory)
T_EPS = 1e-4              # hits closer than this are ignored (ray starting on a surface)

# Surface index for rays that hit nothing (sky).
MISS = -1


@dataclass
class RayHits:
    """Result of one camera's cast, rays laid out as ``[rays_per_pixel, H, W]``.

    ``surface`` is a box index, ``n_boxes`` for the extra analytic surface (ground plane or
    room), or ``MISS``. ``normal`` is the outward unit normal at the hit (zero on a miss) and
    ``pos`` the camera-relative hit point (``dirs * t``).
    """

    t: torch.Tensor        # [P, H, W] float32, z-depth, inf on a miss
    surface: torch.Tensor  # [P, H, W] int64
    normal: torch.Tensor   # [P, H, W, 3] float32
    dirs: torch.Tensor     # [P, H, W, 3] float32, world frame, camera z component = 1
    rel: torch.Tensor      # [P, H, W, 3] float32 hit point minus camera centre (0 on a miss)


def subpixel_offsets(supersample: int) -> tuple[list[tuple[float, float]], int]:
    """Ray offsets in pixels: the S x S sub-ray grid, then the pixel centre if not already in it.

    Returns (offsets, index of the pixel-centre ray in that list).
    """
    s = int(supersample)
    grid = [((i + 0.5) / s - 0.5, (j + 0.5) / s - 0.5) for j in range(s) for i in range(s)]
    if s % 2 == 1:
        return grid, (s * s) // 2
    return grid + [(0.0, 0.0)], s * s


def _safe_inverse(d: torch.Tensor) -> torch.Tensor:
    # Replace exact zeros so that (bound - 0) * inf never produces NaN in the slab test.
    tiny = torch.where(d >= 0, torch.full_like(d, 1e-20), torch.full_like(d, -1e-20))
    return 1.0 / torch.where(d.abs() < 1e-20, tiny, d)


def _cull(intr: Intrinsics, nx: int, ny: int, corners_cam: np.ndarray) -> np.ndarray:
    """[ny, nx, M] bool: box may overlap the tile's frustum (pyramid with apex at the camera)."""
    x, y, z = corners_cam[..., 0], corners_cam[..., 1], corners_cam[..., 2]  # [M, 8]
    half = 0.5 + 1e-3  # tile extent covers every sub-ray offset (|offset| <= 0.5 px)
    u0 = np.arange(nx) * TILE - half
    u1 = np.arange(nx) * TILE + TILE - 1 + half
    v0 = np.arange(ny) * TILE - half
    v1 = np.arange(ny) * TILE + TILE - 1 + half
    a0, a1 = (u0 - intr.cx) / intr.fx, (u1 - intr.cx) / intr.fx
    b0, b1 = (v0 - intr.cy) / intr.fy, (v1 - intr.cy) / intr.fy
    tol = 1e-6
    # A box is outside a plane when all eight corners are outside it.
    left = ((x[None] - a0[:, None, None] * z[None]) < -tol).all(-1)   # [nx, M]
    right = ((a1[:, None, None] * z[None] - x[None]) < -tol).all(-1)
    top = ((y[None] - b0[:, None, None] * z[None]) < -tol).all(-1)    # [ny, M]
    bottom = ((b1[:, None, None] * z[None] - y[None]) < -tol).all(-1)
    col_ok = ~(left | right)
    row_ok = ~(top | bottom)
    return row_ok[:, None, :] & col_ok[None, :, :]


def _box_corners(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    sel = np.array([[i & 1, (i >> 1) & 1, (i >> 2) & 1] for i in range(8)], dtype=bool)  # [8, 3]
    return np.where(sel[None], hi[:, None, :], lo[:, None, :])  # [M, 8, 3]


def _rotate_z(v: np.ndarray, cos: np.ndarray, sin: np.ndarray) -> np.ndarray:
    """Rotate vectors ``v`` (..., 3) about z by the angle whose cos/sin broadcast over ``v[..., 0]``."""
    return np.stack([cos * v[..., 0] - sin * v[..., 1], sin * v[..., 0] + cos * v[..., 1], v[..., 2]], -1)


def cast(c2w: np.ndarray, intr: Intrinsics, supersample: int, lo: np.ndarray, hi: np.ndarray, *,
         ground_z: float | None = None, room: tuple[np.ndarray, np.ndarray] | None = None,
         yaw: np.ndarray | None = None, place: np.ndarray | None = None,
         device: str | torch.device = "cpu") -> RayHits:
    """Cast ``supersample**2`` sub-rays (+ the pixel-centre ray) per pixel against the boxes.

    ``lo``/``hi``: (M, 3) box bounds (float64), in world coordinates unless ``yaw``/``place``
    are given: then they are local bounds and box k is placed by
    ``world = Rz(yaw[k]) local + place[k]`` (boxes turned about the vertical). ``ground_z``: an
    infinite plane ``z = ground_z`` seen from above. ``room``: (lo, hi) of a box seen from inside.
    """
    device = torch.device(device)
    c2w = np.asarray(c2w, dtype=np.float64)
    rot, origin = c2w[:3, :3], c2w[:3, 3]
    offsets, _ = subpixel_offsets(supersample)
    n_rays_px = len(offsets)
    width, height = intr.width, intr.height
    nx, ny = -(-width // TILE), -(-height // TILE)
    n_tiles = nx * ny
    m = len(lo)

    # ---- rays per tile: [n_tiles, R, 3], R = n_rays_px * TILE * TILE -------------------------
    # float32 ray set-up: directions only need ~1e-7 relative accuracy (depth error ~1e-6 m).
    f32 = torch.float32
    off = torch.tensor(offsets, dtype=f32, device=device)                            # [P, 2]
    local = torch.arange(TILE, dtype=f32, device=device)
    lv, lu = torch.meshgrid(local, local, indexing="ij")                             # [T, T]
    tu = torch.arange(nx, dtype=f32, device=device) * TILE
    tv = torch.arange(ny, dtype=f32, device=device) * TILE
    # u[ty, tx, p, i, j]
    u = tu[None, :, None, None, None] + off[None, None, :, 0, None, None] + lu[None, None, None]
    v = tv[:, None, None, None, None] + off[None, None, :, 1, None, None] + lv[None, None, None]
    u, v = torch.broadcast_tensors(u, v)
    d_cam = torch.stack([(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, torch.ones_like(u)], -1)
    rot_t = torch.tensor(rot, dtype=f32, device=device)
    dirs = (d_cam @ rot_t.T).reshape(n_tiles, -1, 3)                                # [NT, R, 3]
    n_r = dirs.shape[1]
    inv = _safe_inverse(dirs)

    t_best = torch.full((n_tiles, n_r), float("inf"), dtype=torch.float32, device=device)
    s_best = torch.full((n_tiles, n_r), MISS, dtype=torch.int64, device=device)

    # ---- boxes -------------------------------------------------------------------------------
    rotated = yaw is not None and bool(np.any(np.asarray(yaw) != 0.0))
    if yaw is not None and not rotated and place is not None:
        lo, hi = np.asarray(lo, np.float64) + place, np.asarray(hi, np.float64) + place
    if rotated:
        cos_k, sin_k = np.cos(np.asarray(yaw, np.float64)), np.sin(np.asarray(yaw, np.float64))
        place64 = np.zeros((m, 3)) if place is None else np.asarray(place, np.float64)
        # Camera centre in each box's local frame: Rz(-yaw) (origin - place).
        origin_local = _rotate_z(origin[None] - place64, cos_k, -sin_k)
        lo_rel64 = np.asarray(lo, dtype=np.float64) - origin_local   # local axes, camera-relative
        hi_rel64 = np.asarray(hi, dtype=np.float64) - origin_local
        corners_world_rel = _rotate_z(_box_corners(lo_rel64, hi_rel64), cos_k[:, None], sin_k[:, None])
        corners_cam = corners_world_rel @ rot
        cos_t = torch.tensor(cos_k, dtype=torch.float32, device=device)
        sin_t = torch.tensor(sin_k, dtype=torch.float32, device=device)
    elif m:
        lo_rel64 = np.asarray(lo, dtype=np.float64) - origin
        hi_rel64 = np.asarray(hi, dtype=np.float64) - origin
        corners_cam = _box_corners(lo_rel64, hi_rel64) @ rot  # world-relative -> camera frame
    if m:
        overlap = torch.from_numpy(_cull(intr, nx, ny, corners_cam)
                                   .reshape(n_tiles, m)).to(device)
        lo_rel = torch.tensor(lo_rel64, dtype=torch.float32, device=device)
        hi_rel = torch.tensor(hi_rel64, dtype=torch.float32, device=device)
        counts = overlap.sum(1)
        order = torch.argsort(counts)
        counts_sorted = counts[order].tolist()
        start = 0
        while start < n_tiles:
            k_max = counts_sorted[start]
            stop = start + 1
            # Grow the batch while padding every tile to the largest count stays within budget.
            while stop < n_tiles and (stop + 1 - start) * n_r * max(counts_sorted[stop], 1) <= PAIR_BUDGET:
                k_max = counts_sorted[stop]
                stop += 1
            if k_max > 0:
                tiles = order[start:stop]
                ov = overlap[tiles]                                                   # [B, M]
                cand = torch.argsort(ov.to(torch.int8), dim=1, descending=True, stable=True)[:, :k_max]
                valid = ov.gather(1, cand)                                            # [B, K]
                if rotated:
                    t_hit, k_idx = _slab_rotated(dirs[tiles], lo_rel[cand], hi_rel[cand], valid,
                                                 cos_t[cand], sin_t[cand])
                else:
                    t_hit, k_idx = _slab(inv[tiles], lo_rel[cand], hi_rel[cand], valid)
                box = cand.gather(1, k_idx)
                t_best[tiles] = t_hit
                s_best[tiles] = torch.where(torch.isfinite(t_hit), box, s_best[tiles])
            start = stop

    # ---- analytic extra surface: ground plane or room interior ------------------------------
    if ground_z is not None:
        oz = float(origin[2] - ground_z)
        dz = dirs[..., 2]
        t_g = torch.where((dz < 0) & (oz > 0), oz / torch.clamp(-dz, min=1e-20), torch.full_like(dz, float("inf")))
        closer = t_g < t_best
        t_best = torch.where(closer, t_g, t_best)
        s_best = torch.where(closer, torch.full_like(s_best, m), s_best)
    if room is not None:
        r_lo = torch.tensor(np.asarray(room[0], np.float64) - origin, dtype=torch.float32, device=device)
        r_hi = torch.tensor(np.asarray(room[1], np.float64) - origin, dtype=torch.float32, device=device)
        t_far = torch.maximum(r_lo * inv, r_hi * inv).amin(-1)      # exit distance from inside
        closer = (t_far < t_best) & (t_far > T_EPS)
        t_best = torch.where(closer, t_far, t_best)
        s_best = torch.where(closer, torch.full_like(s_best, m), s_best)

    # ---- normals -----------------------------------------------------------------------------
    normal = torch.zeros_like(dirs)
    hit_box = (s_best >= 0) & (s_best < m)
    if hit_box.any() and rotated:
        idx = s_best[hit_box]
        d = dirs[hit_box]
        c, sn = cos_t[idx], sin_t[idx]
        d_loc = torch.stack([c * d[:, 0] + sn * d[:, 1], -sn * d[:, 0] + c * d[:, 1], d[:, 2]], -1)
        iv = _safe_inverse(d_loc)
        t_in = torch.minimum(lo_rel[idx] * iv, hi_rel[idx] * iv)
        axis = t_in.argmax(-1)
        n_loc = torch.zeros_like(d)
        n_loc.scatter_(1, axis[:, None], -torch.sign(d_loc.gather(1, axis[:, None])))
        normal[hit_box] = torch.stack([c * n_loc[:, 0] - sn * n_loc[:, 1], sn * n_loc[:, 0] + c * n_loc[:, 1],
                                       n_loc[:, 2]], -1)
    elif hit_box.any():
        idx = s_best[hit_box]
        d = dirs[hit_box]
        iv = inv[hit_box]
        lo_rel_t = torch.tensor(np.asarray(lo, np.float64) - origin, dtype=torch.float32, device=device)
        hi_rel_t = torch.tensor(np.asarray(hi, np.float64) - origin, dtype=torch.float32, device=device)
        t_in = torch.minimum(lo_rel_t[idx] * iv, hi_rel_t[idx] * iv)                 # [n, 3]
        axis = t_in.argmax(-1)
        n = torch.zeros_like(d)
        n.scatter_(1, axis[:, None], -torch.sign(d.gather(1, axis[:, None])))
        normal[hit_box] = n
    if ground_z is not None:
        normal[s_best == m] = torch.tensor([0.0, 0.0, 1.0], device=device)
    if room is not None:
        in_room = s_best == m
        if in_room.any():
            iv = inv[in_room]
            d = dirs[in_room]
            t_out = torch.maximum(r_lo * iv, r_hi * iv)
            axis = t_out.argmin(-1)
            n = torch.zeros_like(d)
            n.scatter_(1, axis[:, None], -torch.sign(d.gather(1, axis[:, None])))  # faces inward
            normal[in_room] = n

    rel = torch.where(torch.isfinite(t_best)[..., None], dirs * t_best[..., None], torch.zeros_like(dirs))

    def to_image(x: torch.Tensor) -> torch.Tensor:
        # [NT, P*T*T, C] -> [P, H, W, C]
        c = x.shape[-1]
        x = x.reshape(ny, nx, n_rays_px, TILE, TILE, c).permute(2, 0, 3, 1, 4, 5)
        return x.reshape(n_rays_px, ny * TILE, nx * TILE, c)[:, :height, :width]

    return RayHits(t=to_image(t_best[..., None])[..., 0].contiguous(),
                   surface=to_image(s_best[..., None])[..., 0].contiguous(),
                   normal=to_image(normal).contiguous(), dirs=to_image(dirs).contiguous(),
                   rel=to_image(rel).contiguous())


def _slab(inv: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, valid: torch.Tensor
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Nearest entry distance of rays [B, R] into candidate boxes [B, K] (camera-relative).

    Returns (t [B, R] with inf for no hit, index into K [B, R]).
    """
    return _nearest_slab_hit(lambda a: inv[:, :, None, a], lo, hi, valid)     # [B, R, 1]


def _nearest_slab_hit(inverse_of_axis, lo: torch.Tensor, hi: torch.Tensor, valid: torch.Tensor):
    """The slab test shared by axis-aligned and turned boxes: ``inverse_of_axis(a)`` gives the
    reciprocal ray direction along the box's axis a ([B, R, 1] or [B, R, K]), ``lo``/``hi``
    [B, K, 3] the camera-relative bounds. Returns (t [B, R], inf for no hit; box index [B, R])."""
    t_near = None
    t_far = None
    for a in range(3):
        ia = inverse_of_axis(a)
        ta = lo[:, None, :, a] * ia                 # [B, R, K]
        tb = hi[:, None, :, a] * ia
        near = torch.minimum(ta, tb)
        far = torch.maximum(ta, tb)
        t_near = near if t_near is None else torch.maximum(t_near, near)
        t_far = far if t_far is None else torch.minimum(t_far, far)
    hit = (t_near <= t_far) & (t_near > T_EPS) & valid[:, None, :]
    t = torch.where(hit, t_near, torch.full_like(t_near, float("inf")))
    return t.min(-1)


def _slab_rotated(dirs: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, valid: torch.Tensor,
                  cos: torch.Tensor, sin: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`_slab` for boxes turned about z: each ray direction is taken into the box's frame.

    ``dirs`` [B, R, 3] world directions; ``lo``/``hi`` [B, K, 3] camera-relative local bounds;
    ``cos``/``sin`` [B, K] of each box's yaw. The camera-relative origin is 0 in every frame.
    """
    dx, dy, dz = dirs[..., 0, None], dirs[..., 1, None], dirs[..., 2, None]       # [B, R, 1]
    c, s = cos[:, None, :], sin[:, None, :]                                          # [B, 1, K]
    local = (c * dx + s * dy, -s * dx + c * dy, dz.expand(-1, -1, cos.shape[1]))
    # One axis's [B, R, K] inverse at a time: these tensors are the ray caster's largest.
    return _nearest_slab_hit(lambda a: _safe_inverse(local[a]), lo, hi, valid)


def cast_directions(origin: np.ndarray, directions: np.ndarray, lo: np.ndarray, hi: np.ndarray, *,
                    ground_z: float | None = None, room: tuple[np.ndarray, np.ndarray] | None = None,
                    yaw: np.ndarray | None = None, place: np.ndarray | None = None,
                    device: str | torch.device = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Exact hits of rays from one ``origin`` along arbitrary ``directions`` (N, 3), e.g. LiDAR
    beams: the same boxes, ground plane and room as :func:`cast`. Returns (range (N,) float32
    along each direction made unit, inf on a miss; surface (N,) int64 as in :class:`RayHits`).

    Rays go in chunks of at most :data:`PAIR_BUDGET` ray-box pairs (no frustum cull: directions
    need not lie in one image)."""
    device = torch.device(device)
    origin = np.asarray(origin, np.float64)
    d64 = np.asarray(directions, np.float64)
    dirs = torch.tensor(d64 / np.linalg.norm(d64, axis=1, keepdims=True), dtype=torch.float32, device=device)
    n, m = len(dirs), len(lo)
    t_best = torch.full((n,), float("inf"), dtype=torch.float32, device=device)
    s_best = torch.full((n,), MISS, dtype=torch.int64, device=device)
    rotated = yaw is not None and bool(np.any(np.asarray(yaw) != 0.0))
    if m:
        lo64, hi64 = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
        if rotated:
            cos_k, sin_k = np.cos(np.asarray(yaw, np.float64)), np.sin(np.asarray(yaw, np.float64))
            place64 = np.zeros((m, 3)) if place is None else np.asarray(place, np.float64)
            origin_local = _rotate_z(origin[None] - place64, cos_k, -sin_k)
            lo_rel, hi_rel = lo64 - origin_local, hi64 - origin_local
            cos_t = torch.tensor(cos_k, dtype=torch.float32, device=device)[None]
            sin_t = torch.tensor(sin_k, dtype=torch.float32, device=device)[None]
        else:
            if place is not None:
                lo64, hi64 = lo64 + place, hi64 + place
            lo_rel, hi_rel = lo64 - origin, hi64 - origin
        lo_t = torch.tensor(lo_rel, dtype=torch.float32, device=device)[None]      # [1, M, 3]
        hi_t = torch.tensor(hi_rel, dtype=torch.float32, device=device)[None]
        valid = torch.ones((1, m), dtype=torch.bool, device=device)
        step = max(1, PAIR_BUDGET // m)
        for start in range(0, n, step):
            chunk = dirs[start:start + step][None]                                  # [1, R, 3]
            if rotated:
                t_hit, k = _slab_rotated(chunk, lo_t, hi_t, valid, cos_t, sin_t)
            else:
                t_hit, k = _slab(_safe_inverse(chunk), lo_t, hi_t, valid)
            t_best[start:start + step] = t_hit[0]
            s_best[start:start + step] = torch.where(torch.isfinite(t_hit[0]), k[0], MISS)
    if ground_z is not None:
        oz = float(origin[2] - ground_z)
        dz = dirs[:, 2]
        t_g = torch.where((dz < 0) & (oz > 0), oz / torch.clamp(-dz, min=1e-20), torch.full_like(dz, float("inf")))
        closer = t_g < t_best
        t_best = torch.where(closer, t_g, t_best)
        s_best = torch.where(closer, torch.full_like(s_best, m), s_best)
    if room is not None:
        inv = _safe_inverse(dirs)
        r_lo = torch.tensor(np.asarray(room[0], np.float64) - origin, dtype=torch.float32, device=device)
        r_hi = torch.tensor(np.asarray(room[1], np.float64) - origin, dtype=torch.float32, device=device)
        t_far = torch.maximum(r_lo * inv, r_hi * inv).amin(-1)
        closer = (t_far < t_best) & (t_far > T_EPS)
        t_best = torch.where(closer, t_far, t_best)
        s_best = torch.where(closer, torch.full_like(s_best, m), s_best)
    return t_best, s_best
