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
def _warp_plane(src, a, b, n, rho_p, warped, ok):
    """Source n's grey (h,w) warped into the reference pixels (those of a and rho_p, (hw,)) by
    inverse depths rho_p: bilinear, the coordinates clamped to the image (grid_sample's border
    padding); ok: the source pixel lies inside the source image and in front of its camera."""
    h, w = src.shape
    wmax = f32(w - 1)
    hmax = f32(h - 1)
    for i in range(rho_p.shape[0]):
        u, v, front = _source_pixel(a, b, n, i, rho_p[i])
        ok[i] = front and u >= 0 and u <= wmax and v >= 0 and v <= hmax
        x = u if u == u else f32(0.0)                 # NaN (unknown rho): sample a defined pixel
        y = v if v == v else f32(0.0)
        x = min(max(x, f32(0.0)), wmax)
        y = min(max(y, f32(0.0)), hmax)
        x0 = int(math.floor(x))
        y0 = int(math.floor(y))
        fx = x - f32(x0)
        fy = y - f32(y0)
        x1 = min(x0 + 1, w - 1)
        y1 = min(y0 + 1, h - 1)
        top = src[y0, x0] * (f32(1.0) - fx) + src[y0, x1] * fx
        bottom = src[y1, x0] * (f32(1.0) - fx) + src[y1, x1] * fx
        warped[i] = top * (f32(1.0) - fy) + bottom * fy


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
        warped = np.empty(hw, f32)
        ok = np.empty(hw, np.bool_)
        prod = np.empty(hw, f32)
        rows = np.empty(hw, np.float64)
        colsum = np.empty(w, np.float64)
        m1 = np.empty(hw, f32)
        m2 = np.empty(hw, f32)
        m3 = np.empty(hw, f32)
        cost = np.empty(hw, f32)
        best = np.full((k, hw), np.inf, f32)
        for n in range(N):
            _warp_plane(srcs[n], a, b, n, rho[p], warped, ok)
            _box_mean(warped, h, w, window, rows, colsum, m1)
            for i in range(hw):
                prod[i] = warped[i] * warped[i]
            _box_mean(prod, h, w, window, rows, colsum, m2)
            for i in range(hw):
                prod[i] = warped[i] * ref[i]
            _box_mean(prod, h, w, window, rows, colsum, m3)
            for i in range(hw):
                mean_j = m1[i]
                var_j = max(m2[i] - mean_j * mean_j, f32(0.0))
                cov = m3[i] - mean_j * ref_mean[i]
                zncc = cov / (ref_std[i] * math.sqrt(var_j) + f32(1e-4))
                cost[i] = min(max(f32(1.0) - zncc, f32(0.0)), f32(2.0))
            if sr > 0:
                for i in range(hw):
                    y, x = i // w, i % w
                    lowest = cost[i]
                    for yy in range(max(y - sr, 0), min(y + sr, h - 1) + 1):
                        for xx in range(max(x - sr, 0), min(x + sr, w - 1) + 1):
                            lowest = min(lowest, cost[yy * w + xx])
                    m1[i] = lowest
                for i in range(hw):
                    cost[i] = m1[i]
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
