"""A pure-PyTorch reference rasterizer of 3D Gaussians: differentiable, batched over cameras,
tiled so that toy sizes run on the CPU.

The maths follows gsplat's (v1.x, ``rasterization`` with ``packed=False``, ``rasterize_mode=
"classic"``), so that its CUDA kernels can be checked against this file:

* covariance Σ = R S Sᵀ Rᵀ from a quaternion (w, x, y, z; normalised here) and scales (σ, metres);
* EWA projection: camera-space mean p = R_cw x + t_cw, Jacobian of the pinhole at p with
  x/z and y/z clamped to 0.3 x tan(half the field of view) past the image edges (as gsplat does, so Gaussians far outside the view
  do not blow up), Σ₂ = J R_cw Σ R_cwᵀ Jᵀ + 0.3 I (gsplat's ``eps2d`` low-pass, in pixels²);
* screen radius ceil(3 sqrt(λ_max(Σ₂))); Gaussians with z <= near (0.01 m) are culled;
* per pixel, front to back in order of camera-space depth z of the centre:
  α = min(0.99, o exp(-½ dᵀ Σ₂⁻¹ d)), skipped when α < 1/255; a Gaussian that would bring the
  transmittance to <= 1e-4 ends the pixel (it and everything behind it are not drawn);
* colour: degree-0/1 spherical harmonics of the direction from the camera centre to the mean,
  rgb = max(0, 0.5 + C0 sh₀ + C1 (-y sh₁ + z sh₂ - x sh₃));
* outputs: rgb = Σ wᵢ cᵢ + (1 - Σ wᵢ) background, coverage (accumulated opacity) Σ wᵢ, and the
  expected depth Σ wᵢ zᵢ / Σ wᵢ (gsplat's "ED" mode; metres along the optical axis), where
  wᵢ = αᵢ Πⱼ<ᵢ (1 - αⱼ).

One difference to call gsplat with: this project puts pixel centres at integer coordinates
(camera.py: cx = (width - 1) / 2 for a centred principal point), gsplat at half-integers, so the
same image from gsplat needs cx + 0.5 and cy + 0.5.

Tiles of 16x16 pixels (configurable) hold the Gaussians whose 3-sigma box reaches them, sorted
by depth; tiles are processed in chunks of at most ``chunk_elements`` pixel-Gaussian pairs, so
memory stays bounded and autograd sees plain tensor ops (gather, exp, cumprod, sum).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

SH_C0 = 0.28209479177387814        # 1 / (2 sqrt(pi))
SH_C1 = 0.4886025119029199         # sqrt(3) / (2 sqrt(pi))
EPS2D = 0.3                        # gsplat's low-pass filter added to every 2D covariance (pixels²)
ALPHA_MIN = 1.0 / 255.0
ALPHA_MAX = 0.99
TRANSMITTANCE_MIN = 1e-4
NEAR = 0.01


@dataclass
class RasterOutput:
    rgb: torch.Tensor        # (B,H,W,3) float, 0..1 (plus background where coverage < 1)
    depth: torch.Tensor      # (B,H,W) expected depth, metres; 0 where nothing was drawn
    coverage: torch.Tensor   # (B,H,W) accumulated opacity, 0..1
    means2d: torch.Tensor    # (B,N,2) projected centres (pixels); retain_grad() it for densification
    radii: torch.Tensor      # (B,N) int screen radius, 0 = not drawn in that camera


def quaternion_to_rotation(quats: torch.Tensor) -> torch.Tensor:
    """(N,4) w x y z (any norm) -> (N,3,3) rotation matrices."""
    q = quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], -1).reshape(*q.shape[:-1], 3, 3)


def covariance_3d(quats: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Σ = R S Sᵀ Rᵀ, (N,3,3)."""
    m = quaternion_to_rotation(quats) * scales[..., None, :]
    return m @ m.transpose(-1, -2)


def sh_to_rgb(sh: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """Colour of spherical-harmonic coefficients ``sh`` (N,1|4,3) seen along unit ``directions``
    (...,N,3) (from the camera to the Gaussian) -> (...,N,3), gsplat's degree-0/1 convention."""
    rgb = SH_C0 * sh[:, 0]
    if sh.shape[1] >= 4:
        x, y, z = directions[..., 0:1], directions[..., 1:2], directions[..., 2:3]
        rgb = rgb + SH_C1 * (-y * sh[:, 1] + z * sh[:, 2] - x * sh[:, 3])
    return (rgb + 0.5).clamp_min(0.0)


def project(means: torch.Tensor, cov3d: torch.Tensor, K: torch.Tensor, w2c: torch.Tensor, width: int,
            height: int, near: float = NEAR):
    """EWA projection into B cameras: (means2d (B,N,2), conics (B,N,3) [a, b, c] of Σ₂⁻¹,
    depths (B,N), radii (B,N) int, with 0 for culled Gaussians)."""
    R, t = w2c[:, :3, :3], w2c[:, :3, 3]
    p = torch.einsum("bij,nj->bni", R, means) + t[:, None, :]
    x, y, z = p.unbind(-1)
    in_front = z > near
    zs = torch.where(in_front, z, torch.ones_like(z))
    fx, fy = K[:, 0, 0, None], K[:, 1, 1, None]
    cx, cy = K[:, 0, 2, None], K[:, 1, 2, None]
    # gsplat's clamp: 0.3 x tan(half the field of view) past each image edge, the edges measured
    # in its half-integer pixel convention (cx + 0.5), so both clamp the same Gaussians.
    gx, gy = cx + 0.5, cy + 0.5
    lim_x_pos = (width - gx) / fx + 0.15 * width / fx
    lim_x_neg = gx / fx + 0.15 * width / fx
    lim_y_pos = (height - gy) / fy + 0.15 * height / fy
    lim_y_neg = gy / fy + 0.15 * height / fy
    tx = zs * torch.minimum(torch.maximum(x / zs, -lim_x_neg), lim_x_pos)
    ty = zs * torch.minimum(torch.maximum(y / zs, -lim_y_neg), lim_y_pos)
    zero = torch.zeros_like(zs)
    J = torch.stack([fx / zs, zero, -fx * tx / zs ** 2, zero, fy / zs, -fy * ty / zs ** 2], -1).reshape(
        *zs.shape, 2, 3)
    cov_cam = R[:, None] @ cov3d[None] @ R[:, None].transpose(-1, -2)
    cov2d = J @ cov_cam @ J.transpose(-1, -2)
    a = cov2d[..., 0, 0] + EPS2D
    b = cov2d[..., 0, 1]
    c = cov2d[..., 1, 1] + EPS2D
    det = a * c - b * b
    ok = in_front & (det > 0)
    det_safe = torch.where(ok, det, torch.ones_like(det))
    conics = torch.stack([c / det_safe, -b / det_safe, a / det_safe], -1)
    means2d = torch.stack([fx * x / zs + cx, fy * y / zs + cy], -1)
    with torch.no_grad():
        mid = 0.5 * (a + c)
        lam = mid + torch.sqrt((mid * mid - det).clamp_min(0.01))
        radii = torch.ceil(3.0 * torch.sqrt(lam.clamp_min(0))).to(torch.int64)
        u, v = means2d[..., 0], means2d[..., 1]
        on_screen = (u + radii >= -0.5) & (u - radii <= width - 0.5) & (v + radii >= -0.5) & (v - radii <= height - 0.5)
        radii = torch.where(ok & on_screen & torch.isfinite(u) & torch.isfinite(v), radii, torch.zeros_like(radii))
    return means2d, conics, z, radii


def rasterize(means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor, opacities: torch.Tensor,
              sh: torch.Tensor, K: torch.Tensor, c2w: torch.Tensor, width: int, height: int,
              background: torch.Tensor | None = None, tile: int = 16, depth_slice: int = 64,
              chunk_elements: int = 1 << 21,
              near: float = NEAR) -> RasterOutput:
    """Render N Gaussians into B cameras.

    ``means`` (N,3) metres, ``quats`` (N,4) w x y z, ``scales`` (N,3) σ in metres (activated,
    not log), ``opacities`` (N,) 0..1 (activated), ``sh`` (N,1|4,3) colour coefficients,
    ``K`` (B,3,3), ``c2w`` (B,4,4) OpenCV camera-to-world, ``background`` (3,) 0..1 (default
    black). Differentiable in every float input.
    """
    device, dtype = means.device, means.dtype
    B, N = int(K.shape[0]), int(means.shape[0])
    K = K.to(dtype)
    c2w = c2w.to(dtype)
    R = c2w[:, :3, :3]
    w2c = torch.zeros_like(c2w)
    w2c[:, :3, :3] = R.transpose(-1, -2)
    w2c[:, :3, 3] = -(R.transpose(-1, -2) @ c2w[:, :3, 3:4])[..., 0]
    w2c[:, 3, 3] = 1
    means2d, conics, depths, radii = project(means, covariance_3d(quats, scales), K, w2c, width, height, near)
    directions = means[None] - c2w[:, None, :3, 3]
    directions = directions / directions.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    colors = sh_to_rgb(sh, directions)                                  # (B,N,3)
    bg = torch.zeros(3, dtype=dtype, device=device) if background is None else background.to(device, dtype)

    tiles_x, tiles_y = math.ceil(width / tile), math.ceil(height / tile)
    n_tiles = B * tiles_x * tiles_y
    # (camera, Gaussian) pairs drawn, and the tiles their 3-sigma boxes reach.
    cam_i, g_i = torch.nonzero(radii > 0, as_tuple=True)
    with torch.no_grad():
        r = radii[cam_i, g_i].to(dtype)
        m = means2d.detach()[cam_i, g_i]
        x0 = torch.floor((m[:, 0] - r + 0.5) / tile).clamp(0, tiles_x - 1).to(torch.int64)
        x1 = torch.floor((m[:, 0] + r + 0.5) / tile).clamp(0, tiles_x - 1).to(torch.int64)
        y0 = torch.floor((m[:, 1] - r + 0.5) / tile).clamp(0, tiles_y - 1).to(torch.int64)
        y1 = torch.floor((m[:, 1] + r + 0.5) / tile).clamp(0, tiles_y - 1).to(torch.int64)
        nx, ny = x1 - x0 + 1, y1 - y0 + 1
        count = nx * ny
        src = torch.repeat_interleave(torch.arange(len(cam_i), device=device), count)
        local = torch.arange(len(src), device=device) - torch.repeat_interleave(torch.cumsum(count, 0) - count, count)
        tile_id = (cam_i[src] * tiles_y + y0[src] + local // nx[src]) * tiles_x + x0[src] + local % nx[src]
        # Sort by depth, then (stably) by tile: each tile's list runs front to back.
        by_depth = torch.argsort(depths.detach()[cam_i[src], g_i[src]], stable=True)
        order = by_depth[torch.argsort(tile_id[by_depth], stable=True)]
        pair_flat = (cam_i * N + g_i)[src[order]]                      # (P,) index into (B*N)
        tile_sorted = tile_id[order]
        per_tile = torch.bincount(tile_sorted, minlength=n_tiles)
        start = torch.cumsum(per_tile, 0) - per_tile
        slot = torch.arange(len(tile_sorted), device=device) - start[tile_sorted]

    flat_means = means2d.reshape(B * N, 2)
    flat_conics = conics.reshape(B * N, 3)
    flat_colors = colors.reshape(B * N, 3)
    flat_depths = depths.reshape(B * N)
    flat_opac = opacities.expand(B, N).reshape(B * N)
    # Pixel centres of a tile, relative to its corner (integer coordinates: camera.py).
    py, px = torch.meshgrid(torch.arange(tile, device=device, dtype=dtype),
                            torch.arange(tile, device=device, dtype=dtype), indexing="ij")
    offsets = torch.stack([px.reshape(-1), py.reshape(-1)], -1)       # (tile², 2)
    # Tiles in order of list length: a chunk's tiles run out of Gaussians at similar slices.
    by_length = torch.argsort(per_tile, stable=True)
    tiles_per_chunk = max(1, chunk_elements // (tile * tile * depth_slice))
    results = []
    for t0 in range(0, n_tiles, tiles_per_chunk):
        results.append(_composite_tiles(by_length[t0:t0 + tiles_per_chunk], depth_slice, tile, tiles_x, tiles_y,
                                        offsets, start, per_tile, pair_flat, slot, flat_means, flat_conics,
                                        flat_colors, flat_depths, flat_opac, dtype))
    out = torch.empty((n_tiles, tile * tile, 5), dtype=dtype, device=device)
    out = out.index_put((by_length,), torch.cat(results, 0))
    out = out.reshape(B, tiles_y, tiles_x, tile, tile, 5).permute(0, 1, 3, 2, 4, 5).reshape(
        B, tiles_y * tile, tiles_x * tile, 5)[:, :height, :width]
    coverage = out[..., 3]
    rgb = out[..., :3] + (1 - coverage)[..., None] * bg
    depth = out[..., 4] / coverage.clamp_min(1e-10)
    return RasterOutput(rgb, depth, coverage, means2d, radii)


def _composite_tiles(tiles, depth_slice, tile, tiles_x, tiles_y, offsets, start, per_tile, pair_flat, slot,
                     flat_means, flat_conics, flat_colors, flat_depths, flat_opac, dtype) -> torch.Tensor:
    """The tiles ``tiles`` (ids) composited: (len(tiles), tile², 5) = weighted rgb, coverage,
    weighted depth.

    Each tile's depth-sorted list is taken ``depth_slice`` Gaussians at a time, front to back,
    carrying every pixel's transmittance; a tile leaves the loop when its list ends or all its
    pixels are done (transmittance <= 1e-4), as gsplat's kernel stops, so hidden Gaussians cost
    nothing in an opaque scene."""
    device = flat_means.device
    n, P = len(tiles), tile * tile
    lengths = per_tile[tiles]
    longest = int(lengths.max()) if n else 0
    acc = torch.zeros((n, P, 5), dtype=dtype, device=device)
    if longest == 0:
        return acc
    with torch.no_grad():
        rows = torch.repeat_interleave(torch.arange(n, device=device), lengths)
        first = torch.repeat_interleave(torch.cumsum(lengths, 0) - lengths, lengths)
        pairs = torch.repeat_interleave(start[tiles], lengths) + torch.arange(len(rows), device=device) - first
        index = torch.full((n, longest), -1, dtype=torch.int64, device=device)
        index[rows, slot[pairs]] = pair_flat[pairs]
        tile_ids = tiles % (tiles_x * tiles_y)
        corner = torch.stack([(tile_ids % tiles_x) * tile, (tile_ids // tiles_x) * tile], -1).to(dtype)
        pixels = corner[:, None, :] + offsets[None]                   # (n, P, 2)
    log_t = torch.zeros((n, P), dtype=dtype, device=device)          # log transmittance before the slice
    for k0 in range(0, longest, depth_slice):
        with torch.no_grad():
            live = (lengths > k0) & (log_t.detach() > math.log(TRANSMITTANCE_MIN)).any(1)
            active = torch.nonzero(live)[:, 0]
            if len(active) == 0:
                break
            sub = index[active, k0:k0 + depth_slice]
            present = sub >= 0
            safe = sub.clamp_min(0)
            pix = pixels[active]
        mean = flat_means[safe]                                        # (a, S, 2)
        conic = flat_conics[safe]
        dx = pix[:, :, None, 0] - mean[:, None, :, 0]                  # (a, P, S)
        dy = pix[:, :, None, 1] - mean[:, None, :, 1]
        power = -0.5 * (conic[:, None, :, 0] * dx * dx + conic[:, None, :, 2] * dy * dy) - conic[:, None, :, 1] * dx * dy
        alpha = (flat_opac[safe][:, None, :] * torch.exp(power.clamp_max(0))).clamp_max(ALPHA_MAX)
        drawn = present[:, None, :] & (power <= 0) & (alpha >= ALPHA_MIN)
        alpha = torch.where(drawn, alpha, torch.zeros_like(alpha))
        # Transmittance after each Gaussian as exp(cumsum(log)): its gradient is far cheaper than
        # cumprod's (alpha <= 0.99 keeps the log finite).
        log_before_slice = log_t[active]
        log_after = log_before_slice[..., None] + torch.cumsum(torch.log1p(-alpha), -1)
        after = torch.exp(log_after)
        before = torch.exp(torch.cat([log_before_slice[..., None], log_after[..., :-1]], -1))
        weight = alpha * before * (after > TRANSMITTANCE_MIN)
        part = torch.cat([torch.einsum("apk,akc->apc", weight, flat_colors[safe]), weight.sum(-1, keepdim=True),
                          torch.einsum("apk,ak->ap", weight, flat_depths[safe])[..., None]], -1)
        acc = acc.index_add(0, active, part)
        log_t = log_t.index_copy(0, active, log_after[..., -1])
    return acc
