"""numba kernels of the CPU renderer (cpu.py loads this module when numba is present).

Module-level functions, so that numba's disk cache holds them across processes (kernels defined
as closures, or calling closures, were compiled afresh in every process: ~12 s at start-up).
"""
import math

import numpy as np
from numba import njit, prange

from .splats import DISK_REACH_SLACK

f32 = np.float32
opts = dict(cache=True, nogil=True, error_model="numpy", fastmath=False)


@njit(inline="always", **opts)
def _zbuffer_points(xyz, t_start, t_end, use_time, t, i0, i1, r00, r01, r02, r10, r11, r12, r20, r21, r22,
                    cx0, cy0, cz0, fx, fy, ccx, ccy, near, umax, vmax, width, base, zbuf, ibuf):
    """Points i0..i1 into one camera's part of a z-buffer (nearest centre, first index on ties)."""
    for i in range(i0, i1):
        if use_time and not (t_start[i] <= t and t_end[i] >= t):
            continue
        dx, dy, dz = xyz[i, 0] - cx0, xyz[i, 1] - cy0, xyz[i, 2] - cz0
        z = dx * r02 + dy * r12 + dz * r22
        if not z > near:
            continue
        # Points more than a pixel outside the image are dropped before the division (half of
        # what a LiDAR's band views project: -12 % of this loop's time there). The pixel of
        # slack is far beyond float32 rounding, so exactly the same points reach the test below.
        x = dx * r00 + dy * r10 + dz * r20
        if x * fx < -(ccx + f32(1.0)) * z or x * fx > (umax + f32(2.0) - ccx) * z:
            continue
        y = dx * r01 + dy * r11 + dz * r21
        if y * fy < -(ccy + f32(1.0)) * z or y * fy > (vmax + f32(2.0) - ccy) * z:
            continue
        inv = f32(1.0) / z
        u = math.floor(x * inv * fx + ccx)
        v = math.floor(y * inv * fy + ccy)
        if not (u >= 0 and u <= umax and v >= 0 and v <= vmax):
            continue
        pix = base + np.int64(v) * width + np.int64(u)
        if z < zbuf[pix]:          # points run in index order: the first of equal depths stays
            zbuf[pix] = z
            ibuf[pix] = np.int32(i)


@njit(parallel=True, **opts)
def centre_zbuffer(xyz, t_start, t_end, use_time, t, rot, centre, K, near, height, width, runs, run_offsets, parts):
    """Per pixel of B images, the index of the nearest point centre (-1: none); camera b
    projects the points of ``runs[run_offsets[b]:run_offsets[b + 1]]`` ((R,2) [start, end) index
    ranges, ascending per camera: the chunks it may see). Ties of equal depth go to the lower
    index, as with reference.py's (depth bits << 32 | index) keys. Each camera's points are split
    into ``parts`` equal shares in index order, each reduced into its own buffers (no atomics),
    then the buffers are merged."""
    B = rot.shape[0]
    P = B * height * width
    zbufs = np.full((parts, P), np.inf, dtype=np.float32)
    ibufs = np.full((parts, P), -1, dtype=np.int32)     # int32: half the scattered bytes
    umax, vmax = f32(width - 1), f32(height - 1)
    for part in prange(parts):
        for b in range(B):
            r_first, r_last = run_offsets[b], run_offsets[b + 1]
            total = 0
            for r in range(r_first, r_last):
                total += runs[r, 1] - runs[r, 0]
            step = (total + parts - 1) // parts
            share_lo, share_hi = part * step, min(total, (part + 1) * step)
            r00, r01, r02 = rot[b, 0, 0], rot[b, 0, 1], rot[b, 0, 2]
            r10, r11, r12 = rot[b, 1, 0], rot[b, 1, 1], rot[b, 1, 2]
            r20, r21, r22 = rot[b, 2, 0], rot[b, 2, 1], rot[b, 2, 2]
            cx0, cy0, cz0 = centre[b, 0], centre[b, 1], centre[b, 2]
            fx, fy = K[b, 0, 0], K[b, 1, 1]
            ccx, ccy = K[b, 0, 2] + f32(0.5), K[b, 1, 2] + f32(0.5)
            base = b * height * width
            seen = 0                        # this camera's points of the runs before run r
            for r in range(r_first, r_last):
                n_run = runs[r, 1] - runs[r, 0]
                lo, hi = max(share_lo, seen), min(share_hi, seen + n_run)
                if lo < hi:
                    offset = runs[r, 0] - seen
                    _zbuffer_points(xyz, t_start, t_end, use_time, t, offset + lo, offset + hi, r00, r01, r02,
                                    r10, r11, r12, r20, r21, r22, cx0, cy0, cz0, fx, fy, ccx, ccy, near, umax,
                                    vmax, width, base, zbufs[part], ibufs[part])
                seen += n_run
    out = np.empty(P, dtype=np.int64)
    for p in prange(P):
        zm = zbufs[0, p]
        best = np.int64(ibufs[0, p])
        for part in range(1, parts):
            if zbufs[part, p] < zm:        # later parts hold higher indices: strict < keeps ties low
                zm = zbufs[part, p]
                best = np.int64(ibufs[part, p])
        out[p] = best
    return out


@njit(parallel=True, **opts)
def decode(index, surfel, rot, centre, K, height, width, pad):
    """For the nearest point ``index`` of each pixel (-1 none): the padded surfel table (per
    padded pixel the camera-frame centre, normal, n.P, radius^2; -1 radius^2 where empty) and per
    pixel the depth (plane or centre, inf empty), reach (px) and relative depth slope."""
    B = rot.shape[0]
    HW = height * width
    Hp, Wp = height + 2 * pad, width + 2 * pad
    table = np.zeros((B * Hp * Wp, 8), dtype=np.float32)
    depth = np.full(B * HW, np.inf, dtype=np.float32)
    reach = np.zeros(B * HW, dtype=np.float32)
    slope = np.zeros(B * HW, dtype=np.float32)
    for bv in prange(B * height):
        b = bv // height
        v = bv - b * height
        r00, r01, r02 = rot[b, 0, 0], rot[b, 0, 1], rot[b, 0, 2]
        r10, r11, r12 = rot[b, 1, 0], rot[b, 1, 1], rot[b, 1, 2]
        r20, r21, r22 = rot[b, 2, 0], rot[b, 2, 1], rot[b, 2, 2]
        fx, fy, cx, cy = K[b, 0, 0], K[b, 1, 1], K[b, 0, 2], K[b, 1, 2]
        ry = (f32(v) - cy) / fy
        for u in range(width):
            q = bv * width + u
            tp = b * Hp * Wp + (v + pad) * Wp + (u + pad)
            w = index[q]
            if w < 0:
                table[tp, 7] = f32(-1.0)
                continue
            dx = surfel[w, 0] - centre[b, 0]
            dy = surfel[w, 1] - centre[b, 1]
            dz = surfel[w, 2] - centre[b, 2]
            px = dx * r00 + dy * r10 + dz * r20
            py = dx * r01 + dy * r11 + dz * r21
            pz = dx * r02 + dy * r12 + dz * r22
            known = surfel[w, 7] > 0
            if known:
                sx, sy, sz = surfel[w, 3], surfel[w, 4], surfel[w, 5]
                nx = sx * r00 + sy * r10 + sz * r20
                ny = sx * r01 + sy * r11 + sz * r21
                nz = sx * r02 + sy * r12 + sz * r22
            else:       # a surfel without a normal faces the camera
                inv_len = f32(1.0) / math.sqrt(max(px * px + py * py + pz * pz, f32(1e-18)))
                nx, ny, nz = -px * inv_len, -py * inv_len, -pz * inv_len
            rx = (f32(u) - cx) / fx
            denom = nx * rx + ny * ry + nz
            plane_c = nx * px + ny * py + nz * pz
            plane = plane_c / (denom if abs(denom) > f32(1e-6) else f32(1e-6))
            ray_len = math.sqrt(rx * rx + ry * ry + f32(1.0))
            usable = (known and abs(denom) > f32(0.05) * ray_len and plane > f32(0.5) * pz
                      and plane < f32(2.0) * pz)
            d = plane if usable else pz
            rad = surfel[w, 6]
            depth[q] = d
            reach[q] = rad * fx / d + f32(DISK_REACH_SLACK)
            if usable:
                slope[q] = (abs(nx) / fx + abs(ny) / fy) / max(abs(denom), f32(1e-6))
            table[tp, 0] = px
            table[tp, 1] = py
            table[tp, 2] = pz
            table[tp, 3] = nx
            table[tp, 4] = ny
            table[tp, 5] = nz
            table[tp, 6] = plane_c
            table[tp, 7] = rad * rad if rad > 0 else f32(-1.0)
    return table, depth, reach, slope


@njit(inline="always", **opts)
def _candidate_depth(table, j, rx, ry, near, limit):
    """Depth where the pixel ray meets table row j's plane if inside its disk, nearer than
    ``limit`` and beyond ``near``; else inf (padding rows give 0/0: rejected)."""
    z = table[j, 6] / (table[j, 3] * rx + table[j, 4] * ry + table[j, 5])
    ex, ey, ez = z * rx - table[j, 0], z * ry - table[j, 1], z - table[j, 2]
    if ex * ex + ey * ey + ez * ez <= table[j, 7] and z > near and z < limit:
        return z
    return np.float32(np.inf)


@njit(parallel=True, **opts)
def need_minimum(depth, reach, k, B, height, width):
    """Per pixel, the minimum of the decoded depth over the (2k+1)^2 square around it, among
    pixels whose surfel reaches >= k px (inf where none): splats._ring_need's masked filter.
    Separable van Herk / Gil-Werman filter: blocks of 2k+1 rows (then columns) get running
    minima from both ends, and each window is the minimum of one suffix and one prefix, so a
    pixel costs ~6 comparisons whatever k (the direct filter costs 2(2k+1): 18 at k = 4)."""
    kf = f32(k)
    inf = np.float32(np.inf)
    L = 2 * k + 1
    blocks = (height + 2 * k + L - 1) // L          # over the rows extended by k on both sides
    rows = blocks * L
    prefix = np.empty((B, rows, width), dtype=np.float32)
    suffix = np.empty((B, rows, width), dtype=np.float32)
    for bb in prange(B * blocks):
        b = bb // blocks
        s = (bb - b * blocks) * L
        for i in range(L):
            y = s + i - k                              # extended row s + i is image row y
            if y >= 0 and y < height:
                row0 = (b * height + y) * width
                for u in range(width):
                    prefix[b, s + i, u] = depth[row0 + u] if reach[row0 + u] >= kf else inf
            else:
                prefix[b, s + i, :] = inf
        suffix[b, s + L - 1, :] = prefix[b, s + L - 1, :]
        for i in range(L - 2, -1, -1):
            for u in range(width):
                suffix[b, s + i, u] = min(prefix[b, s + i, u], suffix[b, s + i + 1, u])
        for i in range(1, L):
            for u in range(width):
                prefix[b, s + i, u] = min(prefix[b, s + i, u], prefix[b, s + i - 1, u])
    out = np.empty(B * height * width, dtype=np.float32)
    columns = ((width + 2 * k + L - 1) // L) * L
    for bv in prange(B * height):
        b = bv // height
        v = bv - b * height
        # Image rows v-k..v+k are extended rows v..v+2k: one suffix and one prefix.
        line = np.full(columns, inf, dtype=np.float32)
        for u in range(width):
            line[k + u] = min(suffix[b, v, u], prefix[b, v + 2 * k, u])
        head = np.empty(columns, dtype=np.float32)
        tail = np.empty(columns, dtype=np.float32)
        for s in range(0, columns, L):
            head[s] = line[s]
            for i in range(1, L):
                head[s + i] = min(head[s + i - 1], line[s + i])
            tail[s + L - 1] = line[s + L - 1]
            for i in range(L - 2, -1, -1):
                tail[s + i] = min(tail[s + i + 1], line[s + i])
        for u in range(width):
            out[bv * width + u] = min(tail[u], head[u + 2 * k])
    return out


@njit(parallel=True, **opts)
def ring(table, near_min, slope, best, source, offsets, k, tolerance, K, near, keep, B, height, width, pad):
    """One splat ring (Chebyshev distance k): splats._ring_need then splats.ring_pass, fused
    per image row, given ``near_min`` from need_minimum. A pixel is examined when near_min is
    in front of its own surface, extended k px along its slope, by more than k tolerances; then
    the offsets are tested nearest first, the front-most qualifying surface wins, on it the
    nearest offset. The need depends only on the decode and the pixel's own best so far, so
    each pixel reads and writes only its own best/source. Returns how many pixels were examined."""
    Hp, Wp = height + 2 * pad, width + 2 * pad
    O = offsets.shape[0]
    kf = f32(k)
    inf = np.float32(np.inf)
    count = 0
    for bv in prange(B * height):
        b = bv // height
        v = bv - b * height
        fx, fy, cx, cy = K[b, 0, 0], K[b, 1, 1], K[b, 0, 2], K[b, 1, 2]
        ry = (f32(v) - cy) / fy
        zs = np.empty(O, dtype=np.float32)
        for u in range(width):
            q = bv * width + u
            floor = max(f32(1.0) - kf * (slope[q] + tolerance), f32(0.0))
            if not near_min[q] < best[q] * floor:
                continue
            count += 1
            base = b * Hp * Wp + (v + pad) * Wp + (u + pad)
            rx = (f32(u) - cx) / fx
            limit = best[q] * keep
            # First the nearest qualifying depth, then the nearest offset on that surface (the
            # candidates are kept: each is a gather of one table row from anywhere in the image).
            z_min = inf
            for j in range(O):
                zs[j] = _candidate_depth(table, base + offsets[j], rx, ry, near, limit)
                z_min = min(z_min, zs[j])
            if z_min < inf:
                for j in range(O):
                    if zs[j] * keep <= z_min:
                        best[q] = zs[j]
                        source[q] = base + offsets[j]
                        break
    return count


@njit(parallel=True, **opts)
def colour(winner, depth, rgb, B, height, width):
    """Push-pull input: (B,4,H,W) rgb + depth of the drawn points (0 where none) and the
    (B,1,H,W) weights (1 drawn, 0 empty)."""
    vw = np.zeros((B, 4, height, width), dtype=np.float32)
    w = np.zeros((B, 1, height, width), dtype=np.float32)
    for bv in prange(B * height):
        b = bv // height
        v = bv - b * height
        for u in range(width):
            q = bv * width + u
            p = winner[q]
            if p < 0:
                continue
            vw[b, 0, v, u] = f32(rgb[p, 0])
            vw[b, 1, v, u] = f32(rgb[p, 1])
            vw[b, 2, v, u] = f32(rgb[p, 2])
            vw[b, 3, v, u] = depth[q]
            w[b, 0, v, u] = f32(1.0)
    return vw, w


@njit(parallel=True, **opts)
def finish(filled, have, background):
    """rgb uint8 (B,H,W,3) (background where nothing was filled) and depth (NaN there)."""
    B, _, H, W = filled.shape
    rgb = np.empty((B, H, W, 3), dtype=np.uint8)
    depth = np.empty((B, H, W), dtype=np.float32)
    for bv in prange(B * H):
        b = bv // H
        y = bv - b * H
        for x in range(W):
            if have[b, 0, y, x]:
                for c in range(3):
                    rgb[b, y, x, c] = np.uint8(min(max(np.rint(filled[b, c, y, x]), f32(0.0)), f32(255.0)))
                depth[b, y, x] = filled[b, 3, y, x]
            else:
                for c in range(3):
                    rgb[b, y, x, c] = background[c]
                depth[b, y, x] = np.float32(np.nan)
    return rgb, depth


@njit(**opts)
def pool(vw, w):
    """2x2 sums (ceil mode): the ratio vw/w equals fill.push_pull's ratio of averages."""
    B, C, H, W = vw.shape
    h, wd = (H + 1) // 2, (W + 1) // 2
    ov = np.zeros((B, C, h, wd), dtype=np.float32)
    ow = np.zeros((B, 1, h, wd), dtype=np.float32)
    for bi in range(B * h):
        b, y = bi // h, bi % h
        for x in range(wd):
            for yy in range(2 * y, min(2 * y + 2, H)):
                for xx in range(2 * x, min(2 * x + 2, W)):
                    ow[b, 0, y, x] += w[b, 0, yy, xx]
                    for c in range(C):
                        ov[b, c, y, x] += vw[b, c, yy, xx]
    return ov, ow


@njit(**opts)
def pull(vw, w, filled, have):
    """One push-pull step up: pixels with own data keep their average, others take the
    bilinear (align_corners=False) upsampling of the coarser level's filled values."""
    B, C, H, W = vw.shape
    h, wd = filled.shape[2], filled.shape[3]
    sy, sx = f32(h / H), f32(wd / W)
    out = np.empty((B, C, H, W), dtype=np.float32)
    out_have = np.zeros((B, 1, H, W), dtype=np.bool_)
    for by in range(B * H):
        b, y = by // H, by % H
        fy = max((f32(y) + f32(0.5)) * sy - f32(0.5), f32(0.0))
        y0 = int(fy)
        y1 = min(y0 + 1, h - 1)
        ly = fy - f32(y0)
        for x in range(W):
            if w[b, 0, y, x] > 0:
                for c in range(C):
                    out[b, c, y, x] = vw[b, c, y, x] / w[b, 0, y, x]
                out_have[b, 0, y, x] = True
                continue
            fx = max((f32(x) + f32(0.5)) * sx - f32(0.5), f32(0.0))
            x0 = int(fx)
            x1 = min(x0 + 1, wd - 1)
            lx = fx - f32(x0)
            w00 = (f32(1.0) - ly) * (f32(1.0) - lx)
            w01 = (f32(1.0) - ly) * lx
            w10 = ly * (f32(1.0) - lx)
            w11 = ly * lx
            h00, h01 = f32(have[b, 0, y0, x0]), f32(have[b, 0, y0, x1])
            h10, h11 = f32(have[b, 0, y1, x0]), f32(have[b, 0, y1, x1])
            up_w = w00 * h00 + w01 * h01 + w10 * h10 + w11 * h11
            if up_w > f32(1e-6):
                for c in range(C):
                    up_v = (w00 * h00 * filled[b, c, y0, x0] + w01 * h01 * filled[b, c, y0, x1]
                            + w10 * h10 * filled[b, c, y1, x0] + w11 * h11 * filled[b, c, y1, x1])
                    out[b, c, y, x] = up_v / up_w
                out_have[b, 0, y, x] = True
            else:
                for c in range(C):
                    out[b, c, y, x] = f32(0.0)
    return out, out_have


@njit(**opts)
def visible_chunks(corners, rot, centre, K, width, height, near, margin):
    """ChunkedCloud.visible_chunks per camera for (C,8,3) float32 box corners: (B, C) bool, a
    chunk dropped for camera b when all its corners lie beyond one plane of b's widened
    frustum."""
    C = corners.shape[0]
    keep = np.zeros((rot.shape[0], C), dtype=np.bool_)
    for b in range(rot.shape[0]):
        fx, fy, cx, cy = K[b, 0, 0], K[b, 1, 1], K[b, 0, 2], K[b, 1, 2]
        right, left = (width + margin - cx) / fx, (cx + margin) / fx
        down, up = (height + margin - cy) / fy, (cy + margin) / fy
        for c in range(C):
            behind = beyond_r = beyond_l = beyond_d = beyond_u = True
            for j in range(8):
                dx = corners[c, j, 0] - centre[b, 0]
                dy = corners[c, j, 1] - centre[b, 1]
                dz = corners[c, j, 2] - centre[b, 2]
                x = dx * rot[b, 0, 0] + dy * rot[b, 1, 0] + dz * rot[b, 2, 0]
                y = dx * rot[b, 0, 1] + dy * rot[b, 1, 1] + dz * rot[b, 2, 1]
                z = dx * rot[b, 0, 2] + dy * rot[b, 1, 2] + dz * rot[b, 2, 2]
                behind &= z <= near
                beyond_r &= x > right * z
                beyond_l &= x < -left * z
                beyond_d &= y > down * z
                beyond_u &= y < -up * z
            keep[b, c] = not (behind or beyond_r or beyond_l or beyond_d or beyond_u)
    return keep



@njit(inline="always", **opts)
def _nan_max(a, b):
    """max that propagates NaN (as torch.amax does)."""
    if a != a or b != b:
        return np.float32(np.nan)
    return a if a > b else b


@njit(inline="always", **opts)
def _lookup_one(depth, rgb, covered, view, pixel, range_per_depth, tangent, fx, fy, edge_tolerance, bilinear, h, w,
                b, n, inv, ranges, zs, colours, seen, cos_out):
    """directional_lookup of direction n for pose b (``inv``: (4, 4) scratch)."""
    one, half = f32(1.0), f32(0.5)
    base = view[n] * (h * w)
    u, v = pixel[n, 0], pixel[n, 1]
    nearest = base + min(max(np.int64(np.rint(v)), 0), h - 1) * w + min(max(np.int64(np.rint(u)), 0), w - 1)
    z = depth[b, nearest]
    seen[b, n] = covered[b, nearest]
    fu, fv = np.floor(u), np.floor(v)
    ax, ay = u - fu, v - fv
    x0 = min(max(np.int64(fu), 1), w - 3)
    y0 = min(max(np.int64(fv), 1), h - 3)
    # inv[dy + 1, dx + 1]: 1/z over the 2x2 cell and its cross (the corners of the 4x4 are unused)
    for dy in range(-1, 3):
        for dx in range(-1, 3):
            if (0 <= dy <= 1) or (0 <= dx <= 1):
                inv[dy + 1, dx + 1] = one / depth[b, base + (y0 + dy) * w + (x0 + dx)]
    # Second differences of 1/z along the cell's two rows and two columns (see sample()).
    curved = f32(0.0)
    for k in range(1, 3):
        for i in range(1, 3):
            curved = _nan_max(curved, abs(inv[k, i - 1] - f32(2.0) * inv[k, i] + inv[k, i + 1]))
            curved = _nan_max(curved, abs(inv[i - 1, k] - f32(2.0) * inv[i, k] + inv[i + 1, k]))
    c00, c01, c10, c11 = inv[1, 1], inv[1, 2], inv[2, 1], inv[2, 2]
    p00 = base + y0 * w + x0
    p01, p10, p11 = p00 + 1, p00 + w, p00 + w + 1
    cov = covered[b, p00] and covered[b, p01] and covered[b, p10] and covered[b, p11]
    cell_max = _nan_max(_nan_max(c00, c01), _nan_max(c10, c11))
    smooth = cov and curved <= edge_tolerance * cell_max            # NaN (no surface) fails
    w00, w01 = (one - ax) * (one - ay), ax * (one - ay)
    w10, w11 = (one - ax) * ay, ax * ay
    w_here = w00 * c00 + w01 * c01 + w10 * c10 + w11 * c11
    grad_u = half * (c01 - c00 + c11 - c10)
    grad_v = half * (c10 - c00 + c11 - c01)
    nx, ny = fx * grad_u, fy * grad_v
    nz = w_here - nx * tangent[n, 0] - ny * tangent[n, 1]
    norm = np.sqrt(nx * nx + ny * ny + nz * nz)
    cos_out[b, n] = min(abs(w_here) / (norm * range_per_depth[n]), one) if smooth else np.float32(np.nan)
    if bilinear and smooth:
        z = one / w_here
        for ch in range(3):
            blend = (w00 * f32(rgb[b, p00, ch]) + w01 * f32(rgb[b, p01, ch]) + w10 * f32(rgb[b, p10, ch])
                     + w11 * f32(rgb[b, p11, ch]))
            colours[b, n, ch] = np.uint8(min(max(np.rint(blend), f32(0.0)), f32(255.0)))
    else:
        for ch in range(3):
            colours[b, n, ch] = rgb[b, nearest, ch]
    zs[b, n] = z
    ranges[b, n] = z * range_per_depth[n]


@njit(parallel=True, **opts)
def directional_lookup(depth, rgb, covered, view, pixel, range_per_depth, tangent, fx, fy, edge_tolerance,
                       bilinear, height, width):
    """DirectionalViews.sample in one pass over the directions (directional.py holds the
    PyTorch version, which CUDA runs; this follows it operation by operation in float32, so both
    give the same numbers up to the order of float additions). ``depth`` (B, V*H*W) float32 (NaN:
    empty), ``rgb`` (B, V*H*W, 3) uint8, ``covered`` (B, V*H*W) bool; per direction its view,
    pixel (u, v), range per unit of depth and tangent-plane (tx, ty); ``fx``, ``fy``,
    ``edge_tolerance`` float32. Returns range, z, rgb, seen and cos_incidence, each (B, N, ...)."""
    B = depth.shape[0]
    N = view.shape[0]
    ranges = np.empty((B, N), dtype=np.float32)
    zs = np.empty((B, N), dtype=np.float32)
    colours = np.empty((B, N, 3), dtype=np.uint8)
    seen = np.empty((B, N), dtype=np.bool_)
    cos_out = np.empty((B, N), dtype=np.float32)
    block = 1024                                 # directions per task, one scratch array each
    blocks = (N + block - 1) // block
    for task in prange(B * blocks):
        b = task // blocks
        n0 = (task - b * blocks) * block
        inv = np.empty((4, 4), dtype=np.float32)
        for n in range(n0, min(n0 + block, N)):
            _lookup_one(depth, rgb, covered, view, pixel, range_per_depth, tangent, fx, fy, edge_tolerance,
                        bilinear, height, width, b, n, inv, ranges, zs, colours, seen, cos_out)
    return ranges, zs, colours, seen, cos_out


@njit(parallel=True, **opts)
def resolve_winner(winner, source, B, height, width, pad):
    """The point drawn at each pixel after the splat rings: where a ring took the pixel
    (``source`` >= 0: an index into the padded surfel table) the winner of the image pixel that
    table row belongs to, else the pixel's own nearest centre."""
    Hp, Wp = height + 2 * pad, width + 2 * pad
    out = np.empty_like(winner)
    for bv in prange(B * height):
        for q in range(bv * width, (bv + 1) * width):
            s = source[q]
            if s < 0:
                out[q] = winner[q]
            else:
                b = s // (Hp * Wp)
                rem = s - b * (Hp * Wp)
                out[q] = winner[b * (height * width) + (rem // Wp - pad) * width + (rem % Wp - pad)]
    return out
