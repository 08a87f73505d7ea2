"""numba kernels of the plane sweep's matching costs on the CPU (sweep.py loads this module when
numba is present and the sweep runs on the CPU; CUDA runs the PyTorch code in sweep.py).

Eager PyTorch makes one pass over memory per operation: the ZNCC cost of one hypothesis plane
against one source took ~50 passes over (planes x pixels) arrays (source pixel, bilinear warp,
three box filters, the correlation, the mask, the best-k sources), which made the sweep memory-
bound at ~2.3 CPU-s a frame at 640x360. Here one plane's warp, box filters, correlation and best-k
insertion run in one loop nest on a plane-sized scratch (in cache at the coarse level), planes in
parallel. They follow sweep.py's PyTorch code step by step (bilinear sampling with the border
clamped as grid_sample's padding_mode="border", align_corners=True; box means with replicated
borders; the same float32 arithmetic for the source pixels), and test_build_kernels.py checks that both
give the same costs. Module-level functions, so that numba's disk cache keeps them across
processes.
"""
import math

import numpy as np
from numba import njit, prange

f32 = np.float32
opts = dict(cache=True, nogil=True, error_model="numpy", fastmath=False)


@njit(inline="always", **opts)
def _source_pixel(a, b, n, i, r):
    """Source n's pixel (u, v) of reference pixel i at inverse depth r, and whether it is in
    front of the camera (sweep.PlaneSweep._source_pixels: where it is not, u, v are the raw
    homogeneous coordinates, as there)."""
    hx = a[n, 0, i] + r * b[n, 0]
    hy = a[n, 1, i] + r * b[n, 1]
    z = a[n, 2, i] + r * b[n, 2]
    front = z > f32(1e-9)
    if front:
        return hx / z, hy / z, front
    return hx, hy, front


@njit(inline="always", **opts)
def _clamped_position(src, a, b, n, i, r):
    """Reference pixel i's position in source n for inverse depth r, clamped to the image
    (grid_sample's border padding; NaN, an unknown rho, as 0), and whether the unclamped position
    lies inside the source image and in front of its camera."""
    h, w = src.shape
    wmax = f32(w - 1)
    hmax = f32(h - 1)
    u, v, front = _source_pixel(a, b, n, i, r)
    ok = front and u >= 0 and u <= wmax and v >= 0 and v <= hmax
    x = min(max(u if u == u else f32(0.0), f32(0.0)), wmax)
    y = min(max(v if v == v else f32(0.0), f32(0.0)), hmax)
    return x, y, ok


@njit(inline="always", **opts)
def _bilinear(src, x, y):
    """src bilinearly sampled at x, y (inside the image, so truncation is the floor: with
    math.floor the warp loop took 1.7x as long)."""
    sh, sw = src.shape
    x0 = int(x)
    y0 = int(y)
    fx = x - f32(x0)
    fy = y - f32(y0)
    x1 = min(x0 + 1, sw - 1)
    y1 = min(y0 + 1, sh - 1)
    top = src[y0, x0] * (f32(1.0) - fx) + src[y0, x1] * fx
    bottom = src[y1, x0] * (f32(1.0) - fx) + src[y1, x1] * fx
    return top * (f32(1.0) - fy) + bottom * fy


@njit(inline="always", **opts)
def _warp_pixel(src, a, b, n, i, r):
    """Source n's grey (h,w) at reference pixel i's source position for inverse depth r
    (_clamped_position, then _bilinear), and whether that position lies inside the source image
    and in front of its camera."""
    x, y, ok = _clamped_position(src, a, b, n, i, r)
    return _bilinear(src, x, y), ok


@njit(inline="always", **opts)
def _warp_plane(src, a, b, n, rho_p, warped, ok):
    """Source n's grey warped into every reference pixel (those of a and rho_p, (hw,)) by inverse
    depths rho_p (_warp_pixel); ok: the source pixel lies inside the source and in front of it."""
    for i in range(rho_p.shape[0]):
        warped[i], ok[i] = _warp_pixel(src, a, b, n, i, rho_p[i])


@njit(inline="always", **opts)
def _box_mean(x, h, w, window, rows, colsum, out):
    """Mean of x (hw,) over window x window neighbourhoods, borders replicated (float64 running
    sums; scratch: ``rows`` (hw,) and ``colsum`` (w,) float64) into out (hw,) float32. Both passes
    run along rows (contiguous), the second carrying a row of column sums down the image."""
    r = window // 2
    for y in range(h):
        base = y * w
        s = 0.0
        for k in range(-r, r + 1):
            s += x[base + min(max(k, 0), w - 1)]
        rows[base] = s
        for c in range(1, w):
            s += x[base + min(c + r, w - 1)] - x[base + max(c - r - 1, 0)]
            rows[base + c] = s
    norm = 1.0 / (window * window)
    colsum[:] = 0.0
    for k in range(-r, r + 1):
        base = min(max(k, 0), h - 1) * w
        for c in range(w):
            colsum[c] += rows[base + c]
    for y in range(h):
        base = y * w
        for c in range(w):
            out[base + c] = f32(colsum[c] * norm)
        if y + 1 < h:
            add = min(y + r + 1, h - 1) * w
            sub = max(y - r, 0) * w
            for c in range(w):
                colsum[c] += rows[add + c] - rows[sub + c]


@njit(inline="always", **opts)
def _insert(best, count, value, i):
    """Insert value into pixel i's ascending list of the ``count`` smallest values so far."""
    for j in range(count):
        lo = min(best[j, i], value)
        value = max(best[j, i], value)
        best[j, i] = lo


@njit(inline="always", **opts)
def _row_positions(src, a, b, n, rho_p, base, w, xs, ys, ok):
    """_clamped_position for the w reference pixels from ``base`` on (xs, ys (w,), ok[base + c]).
    Split from the samples (_bilinear), the positions' loop has no gathers and LLVM can vectorise
    it: the same arithmetic, 1.6x faster than the one loop of _warp_plane."""
    for c in range(w):
        xs[c], ys[c], ok[base + c] = _clamped_position(src, a, b, n, base + c, rho_p[base + c])


@njit(inline="always", **opts)
def _row_sums(src, a, b, n, rho_p, ref, w, y, r, ring, slot, warped, ok):
    """Source n warped into reference row y (_warp_pixel; ok per pixel of the row), and the
    horizontal window sums of the warped grey, its square and its product with the reference
    (each _box_mean's first pass, the same float64 running sums) into ring[0..2, slot]."""
    base = y * w
    xs = warped[w:2 * w]
    ys = warped[2 * w:]
    _row_positions(src, a, b, n, rho_p, base, w, xs, ys, ok)
    for c in range(w):
        warped[c] = _bilinear(src, xs[c], ys[c])
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    for k in range(-r, r + 1):
        c = min(max(k, 0), w - 1)
        s1 += warped[c]
        s2 += warped[c] * warped[c]
        s3 += warped[c] * ref[base + c]
    ring[0, slot, 0] = s1
    ring[1, slot, 0] = s2
    ring[2, slot, 0] = s3
    for c in range(1, w):
        add = min(c + r, w - 1)
        sub = max(c - r - 1, 0)
        s1 += warped[add] - warped[sub]
        s2 += warped[add] * warped[add] - warped[sub] * warped[sub]
        s3 += warped[add] * ref[base + add] - warped[sub] * ref[base + sub]
        ring[0, slot, c] = s1
        ring[1, slot, c] = s2
        ring[2, slot, c] = s3


@njit(inline="always", **opts)
def _zncc_of_source(src, a, b, n, rho_p, ref, ref_mean, ref_std, h, w, window, ring, colsum, warped, ok, cost):
    """cost (hw,): 1 - ZNCC of the reference against source n warped by rho_p, clamped to 0..2;
    ok: the source pixel lies inside the source. The arithmetic of three _box_mean passes and the
    correlation, in one sweep down the image: the horizontal sums of the window's rows are made
    as the vertical running sums reach them and kept in a ring of window + 1 rows (in cache,
    where three whole-image passes went through memory at the finest level)."""
    r = window // 2
    R = ring.shape[1]
    norm = 1.0 / (window * window)
    made = min(r, h - 1) + 1                      # rows whose sums are in the ring
    for y in range(made):
        _row_sums(src, a, b, n, rho_p, ref, w, y, r, ring, y % R, warped, ok)
    for q in range(3):
        for c in range(w):
            colsum[q, c] = 0.0
    for k in range(-r, r + 1):
        slot = min(max(k, 0), h - 1) % R
        for q in range(3):
            for c in range(w):
                colsum[q, c] += ring[q, slot, c]
    for y in range(h):
        base = y * w
        for c in range(w):
            i = base + c
            mean_j = f32(colsum[0, c] * norm)
            var_j = max(f32(colsum[1, c] * norm) - mean_j * mean_j, f32(0.0))
            cov = f32(colsum[2, c] * norm) - mean_j * ref_mean[i]
            zncc = cov / (ref_std[i] * math.sqrt(var_j) + f32(1e-4))
            cost[i] = min(max(f32(1.0) - zncc, f32(0.0)), f32(2.0))
        if y + 1 < h:
            add = min(y + r + 1, h - 1)
            while made <= add:
                _row_sums(src, a, b, n, rho_p, ref, w, made, r, ring, made % R, warped, ok)
                made += 1
            sa = add % R
            ss = max(y - r, 0) % R
            for q in range(3):
                for c in range(w):
                    colsum[q, c] += ring[q, sa, c] - ring[q, ss, c]


@njit(parallel=True, **opts)
def zncc_cost(ref, ref_mean, ref_std, h, w, srcs, a, b, rho, window, shift_window, best_k, out):
    """out (P,hw): 1 - ZNCC of the reference (h x w pixels, flat: a crop of the level or all of
    it; its window statistics ref_mean, ref_std) against each source (N,sh,sw) warped by the
    inverse depths rho (P,hw), clamped to 0..2, the best over shift_window x shift_window windows
    around the pixel when shift_window > 1, 2 where the source pixel is outside the source, and per
    pixel the mean of the best_k sources (sweep.PlaneSweep._cost)."""
    N = srcs.shape[0]
    P = rho.shape[0]
    hw = h * w
    k = min(best_k, N)
    sr = shift_window // 2
    for p in prange(P):
        warped = np.empty(3 * w, f32)            # a row's warped grey, then its source x and y
        ok = np.empty(hw, np.bool_)
        ring = np.empty((3, window + 1, w), np.float64)
        colsum = np.empty((3, w), np.float64)
        cost = np.empty(hw, f32)
        shifted = np.empty(hw if sr > 0 else 0, f32)
        best = np.full((k, hw), np.inf, f32)
        for n in range(N):
            _zncc_of_source(srcs[n], a, b, n, rho[p], ref, ref_mean, ref_std, h, w, window, ring, colsum,
                            warped, ok, cost)
            if sr > 0:
                for i in range(hw):
                    y, x = i // w, i % w
                    lowest = cost[i]
                    for yy in range(max(y - sr, 0), min(y + sr, h - 1) + 1):
                        for xx in range(max(x - sr, 0), min(x + sr, w - 1) + 1):
                            lowest = min(lowest, cost[yy * w + xx])
                    shifted[i] = lowest
                for i in range(hw):
                    cost[i] = shifted[i]
            for i in range(hw):
                _insert(best, k, cost[i] if ok[i] else f32(2.0), i)
        for i in range(hw):
            total = best[0, i]
            for j in range(1, k):
                total += best[j, i]
            out[p, i] = total / f32(k)


@njit(parallel=True, **opts)
def sad_cost(ref, h, w, srcs, a, b, rho, window, best_k, out):
    """out (P,hw): mean absolute grey difference of the reference (hw,) and each source (N,h,w)
    warped by rho (P,hw) over window x window, 2 where the source pixel is outside the source;
    per pixel the mean of the best_k sources among those that see it, 2 where none does
    (sweep.PlaneSweep.photo_cost)."""
    N = srcs.shape[0]
    P = rho.shape[0]
    hw = h * w
    k = min(best_k, N)
    for p in prange(P):
        warped = np.empty(hw, f32)
        ok = np.empty(hw, np.bool_)
        rows = np.empty(hw, np.float64)
        colsum = np.empty(w, np.float64)
        sad = np.empty(hw, f32)
        best = np.full((k, hw), np.inf, f32)
        for n in range(N):
            _warp_plane(srcs[n], a, b, n, rho[p], warped, ok)
            for i in range(hw):
                warped[i] = abs(warped[i] - ref[i])
            _box_mean(warped, h, w, window, rows, colsum, sad)
            for i in range(hw):
                _insert(best, k, sad[i] if ok[i] else f32(2.0), i)
        for i in range(hw):
            total = f32(0.0)
            seen = 0
            for j in range(k):
                if best[j, i] < f32(2.0):
                    total += best[j, i]
                    seen += 1
            out[p, i] = total / f32(seen) if seen > 0 else f32(2.0)


@njit(parallel=True, **opts)
def second_best_away(volume, hyps, winner, a, b, h, w, basin_px, out):
    """out (hw,): per pixel the lowest cost of volume (P,hw) among the hypotheses outside the
    winner's basin (sweep.PlaneSweep._away_from_winner): more than 2 steps from the winner and,
    when basin_px > 0, moving some source's pixel more than basin_px from where the winner puts
    it (both inside the source, h x w); 2 where there is none."""
    P = volume.shape[0]
    N = a.shape[0]
    wmax = f32(w - 1)
    hmax = f32(h - 1)
    basin2 = f32(basin_px) * f32(basin_px)
    for i in prange(volume.shape[1]):
        win = winner[i]
        lowest = f32(2.0)
        for p in range(P):
            c = volume[p, i]
            if abs(p - win) <= 2 or not c < lowest:
                continue
            if basin_px > 0:
                moved = False
                for n in range(N):
                    u, v, front = _source_pixel(a, b, n, i, hyps[p, i])
                    uw, vw, front_w = _source_pixel(a, b, n, i, hyps[win, i])
                    inside = front and u >= 0 and u <= wmax and v >= 0 and v <= hmax
                    inside_w = front_w and uw >= 0 and uw <= wmax and vw >= 0 and vw <= hmax
                    du, dv = u - uw, v - vw
                    if inside and inside_w and du * du + dv * dv > basin2:
                        moved = True
                        break
                if not moved:
                    continue
            lowest = c
        out[i] = lowest


@njit(parallel=True, **opts)
def sad_cost_at(ref, h, w, srcs, a, b, rho, wanted, window, best_k, out):
    """sad_cost where ``wanted`` (P,hw bool) only; out is 2 elsewhere. Propagation asks for the
    cost of a candidate only at the unknown pixels that have it (a quarter of the candidate
    planes' pixels on the dashcam clip), so the warped differences are made only within a window
    of a wanted pixel and summed only at wanted pixels: separable direct sums in float64 (the
    dense kernel's running sums round differently in the last bits)."""
    N = srcs.shape[0]
    P = rho.shape[0]
    hw = h * w
    k = min(best_k, N)
    r = window // 2
    norm = 1.0 / (window * window)
    for p in prange(P):
        # rows_needed: pixels whose row sum a wanted pixel's window takes (within r rows of one,
        # in its column); diff_needed: pixels whose difference those row sums take.
        rows_needed = np.zeros(hw, np.bool_)
        diff_needed = np.zeros(hw, np.bool_)
        row_any = np.zeros(h, np.bool_)
        xs = np.empty(w, f32)
        ys = np.empty(w, f32)
        any_wanted = False
        for i in range(hw):
            if wanted[p, i]:
                any_wanted = True
                y, x = i // w, i % w
                for yy in range(max(y - r, 0), min(y + r, h - 1) + 1):
                    rows_needed[yy * w + x] = True
        if not any_wanted:
            for i in range(hw):
                out[p, i] = f32(2.0)
            continue
        for y in range(h):
            base = y * w
            for x in range(w):
                if rows_needed[base + x]:
                    row_any[y] = True
                    for xx in range(max(x - r, 0), min(x + r, w - 1) + 1):
                        diff_needed[base + xx] = True
        diff = np.zeros(hw, f32)
        ok = np.zeros(hw, np.bool_)
        row_sum = np.zeros(hw, np.float64)
        best = np.full((k, hw), np.inf, f32)
        for n in range(N):
            src = srcs[n]
            for y in range(h):
                base = y * w
                if not row_any[y]:
                    continue
                _row_positions(src, a, b, n, rho[p], base, w, xs, ys, ok)
                for c in range(w):
                    if diff_needed[base + c]:
                        diff[base + c] = abs(_bilinear(src, xs[c], ys[c]) - ref[base + c])
            for y in range(h):
                if not row_any[y]:
                    continue
                base = y * w
                for x in range(w):
                    if rows_needed[base + x]:
                        total = 0.0
                        for dx in range(-r, r + 1):
                            total += diff[base + min(max(x + dx, 0), w - 1)]
                        row_sum[base + x] = total
            for y in range(h):
                base = y * w
                for x in range(w):
                    i = base + x
                    if wanted[p, i]:
                        total = 0.0
                        for dy in range(-r, r + 1):
                            total += row_sum[min(max(y + dy, 0), h - 1) * w + x]
                        _insert(best, k, f32(total * norm) if ok[i] else f32(2.0), i)
        for i in range(hw):
            if not wanted[p, i]:
                out[p, i] = f32(2.0)
                continue
            total = f32(0.0)
            seen = 0
            for j in range(k):
                if best[j, i] < f32(2.0):
                    total += best[j, i]
                    seen += 1
            out[p, i] = total / f32(seen) if seen > 0 else f32(2.0)
