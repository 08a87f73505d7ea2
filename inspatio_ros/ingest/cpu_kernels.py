"""numba kernels of the build's view check and fusion on the CPU (consistency.SeenThrough and
fusion.surfels_from_depth load this module when numba is present and they run on the CPU; CUDA
runs their PyTorch code).

Projecting every pixel of a frame into each of its 2 x check_neighbours neighbours took ~20 eager
PyTorch passes over (pixels x 3) arrays per neighbour; here it is one loop per neighbour, pixels
in parallel, with the same float32 arithmetic. test_build_kernels.py checks both give the same
counts. Module-level, so that numba's disk cache keeps it across processes.
"""
import numpy as np
from numba import njit, prange

f32 = np.float32
opts = dict(cache=True, nogil=True, error_model="numpy", fastmath=False)


@njit(inline="always", **opts)
def _pixel_of(rays, i, d, rel, fx, fy, cx, cy, width, height):
    """Pixel ray i at depth d moved into another camera by rel (3,4): (flat index of the pixel
    it falls on, rounded half to even as torch.round, and its depth there), or (-1, z) where it
    lies behind that camera or outside its image."""
    px, py, pz = rays[i, 0] * d, rays[i, 1] * d, rays[i, 2] * d
    x = px * rel[0, 0] + py * rel[0, 1] + pz * rel[0, 2] + rel[0, 3]
    y = px * rel[1, 0] + py * rel[1, 1] + pz * rel[1, 2] + rel[1, 3]
    z = px * rel[2, 0] + py * rel[2, 1] + pz * rel[2, 2] + rel[2, 3]
    if not z > f32(1e-6):
        return -1, z
    col = np.rint(x / z * fx + cx)
    row = np.rint(y / z * fy + cy)
    if not (col >= 0 and col < width and row >= 0 and row < height):
        return -1, z
    return int(row) * width + int(col), z


@njit(parallel=True, **opts)
def add_seen_through(depth, measured, rays, rel, fx, fy, cx, cy, width, height, nearest, has_any, keep, count):
    """count (hw,) += 1 where frame j sees through the pixel's point: depth (hw,) the frame's
    depth (0 unknown), measured (hw,) its known pixels, rays (hw,3) their rays (z = 1), rel (3,4)
    camera -> camera j; at the pixel of j the point falls on (rounded, half to even as
    torch.round), j's 3x3-nearest depth ``nearest`` (hw,) is finite, j measured something
    (``has_any``) and the point lies nearer than nearest * keep (consistency.SeenThrough.count)."""
    for i in prange(depth.shape[0]):
        if not measured[i]:
            continue
        k, z = _pixel_of(rays, i, depth[i], rel, fx, fy, cx, cy, width, height)
        if k < 0:
            continue
        there = nearest[k]
        if has_any[k] and np.isfinite(there) and z < there * keep:
            count[i] += 1


@njit(parallel=True, **opts)
def surfels_from_depth(depth, fx, fy, cx, cy, sky_distance, max_depth, edge_jump, overlap, grazing_limit, rot,
                       centre):
    """fusion.surfels_from_depth's per-pixel work in three passes over the image (its PyTorch code
    made ~50): the valid pixels (sky at sky_distance, finite, positive, within max_depth or sky,
    not just behind a depth edge), their camera-frame points, normals from central differences
    where the 3x3 cross is one plane and not sky (0 elsewhere), radii from the pixel footprint
    stretched by the view angle, and world coordinates. Returns (xyz (n,3), normal (n,3), radius
    (n,), pixel (n,) flat indices in row-major order, valid (H,W))."""
    H, W = depth.shape
    d = np.empty((H, W), f32)
    sky = np.zeros((H, W), np.bool_)
    valid0 = np.zeros((H, W), np.bool_)
    for y in prange(H):
        for x in range(W):
            v = depth[y, x]
            if v == np.inf:
                sky[y, x] = True
                v = f32(sky_distance)
            d[y, x] = v
            valid0[y, x] = np.isfinite(v) and v > 0 and (v <= max_depth or sky[y, x])
    valid = np.zeros((H, W), np.bool_)
    row_count = np.zeros(H, np.int64)
    keep = f32(1.0 - edge_jump)
    for y in prange(H):
        n = 0
        for x in range(W):
            if not valid0[y, x]:
                continue
            near = np.inf
            if y > 0 and valid0[y - 1, x]:
                near = min(near, d[y - 1, x])
            if y + 1 < H and valid0[y + 1, x]:
                near = min(near, d[y + 1, x])
            if x > 0 and valid0[y, x - 1]:
                near = min(near, d[y, x - 1])
            if x + 1 < W and valid0[y, x + 1]:
                near = min(near, d[y, x + 1])
            if not near < d[y, x] * keep:
                valid[y, x] = True
                n += 1
        row_count[y] = n
    start = np.zeros(H + 1, np.int64)
    for y in range(H):
        start[y + 1] = start[y] + row_count[y]
    total = start[H]
    xyz = np.empty((total, 3), f32)
    normal = np.empty((total, 3), f32)
    radius = np.empty(total, f32)
    pixel = np.empty(total, np.int64)
    half = f32(0.5) * f32(overlap)
    for y in prange(H):
        k = start[y]
        ry = (f32(y) - f32(cy)) / f32(fy)
        for x in range(W):
            if not valid[y, x]:
                continue
            rx = (f32(x) - f32(cx)) / f32(fx)
            dz = d[y, x]
            px, py, pz = rx * dz, ry * dz, dz
            nx = ny = nz = f32(0.0)
            ok = False
            if 0 < y < H - 1 and 0 < x < W - 1 and not sky[y, x] and valid[y, x - 1] and valid[y, x + 1] \
                    and valid[y - 1, x] and valid[y + 1, x]:
                ic = f32(1.0) / dz
                il, ir = f32(1.0) / d[y, x - 1], f32(1.0) / d[y, x + 1]
                iu, idn = f32(1.0) / d[y - 1, x], f32(1.0) / d[y + 1, x]
                if abs(ir + il - f32(2.0) * ic) < f32(0.05) * ic and abs(idn + iu - f32(2.0) * ic) < f32(0.05) * ic:
                    rxl, rxr = (f32(x - 1) - f32(cx)) / f32(fx), (f32(x + 1) - f32(cx)) / f32(fx)
                    ryu, ryd = (f32(y - 1) - f32(cy)) / f32(fy), (f32(y + 1) - f32(cy)) / f32(fy)
                    dl, dr, du_, dd_ = d[y, x - 1], d[y, x + 1], d[y - 1, x], d[y + 1, x]
                    ax, ay, az = rxr * dr - rxl * dl, ry * dr - ry * dl, dr - dl
                    bx, by, bz = rx * dd_ - rx * du_, ryd * dd_ - ryu * du_, dd_ - du_
                    nx, ny, nz = ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx
                    length = np.sqrt(nx * nx + ny * ny + nz * nz)
                    if length > 1e-12:
                        nx, ny, nz = nx / length, ny / length, nz / length
                    else:
                        nx = ny = nz = f32(0.0)
                    if nx * px + ny * py + nz * pz > 0:
                        nx, ny, nz = -nx, -ny, -nz
                    ok = True
            ray_len = np.sqrt(rx * rx + ry * ry + f32(1.0))
            cos_view = abs(nx * rx + ny * ry + nz) / ray_len if ok else f32(1.0)
            footprint = dz * ray_len / f32(fx)
            radius[k] = half * footprint / max(cos_view, f32(grazing_limit))
            for a in range(3):
                xyz[k, a] = px * rot[a, 0] + py * rot[a, 1] + pz * rot[a, 2] + centre[a]
                normal[k, a] = nx * rot[a, 0] + ny * rot[a, 1] + nz * rot[a, 2]
            pixel[k] = y * W + x
            k += 1
    return xyz, normal, radius, pixel, valid


@njit(parallel=True, **opts)
def nearer_votes(depths, use, rays, rels, fx, fy, cx, cy, width, height, nearest, keep, votes):
    """consistency.nearer_evidence's per-neighbour votes: neighbour m's points (depths (n,hw),
    pixels ``use``, rays (hw,3) at depth 1) moved into this camera by rels[m] (3,4), the nearest
    of them at each pixel they round to (half to even, as torch.round), empty pixels given the
    nearest of their 3x3 window; votes[m] is that depth where it lies nearer than this frame's
    3x3-nearest depth ``nearest`` (hw,) times ``keep`` (1 - tolerance), inf elsewhere. One
    neighbour per thread: its scatter of minima writes a map of its own."""
    n = depths.shape[0]
    hw = width * height
    for m in prange(n):
        seen = np.full(hw, np.inf, dtype=np.float32)
        rel = rels[m]
        for i in range(hw):
            if not use[m, i]:
                continue
            k, z = _pixel_of(rays, i, depths[m, i], rel, fx, fy, cx, cy, width, height)
            if k < 0:
                continue
            if z < seen[k]:
                seen[k] = z
        for r in range(height):
            for c in range(width):
                k = r * width + c
                v = seen[k]
                if v == np.inf:          # no hit: the nearest hit of its 3x3 window
                    for rr in range(max(r - 1, 0), min(r + 2, height)):
                        for cc in range(max(c - 1, 0), min(c + 2, width)):
                            v = min(v, seen[rr * width + cc])
                votes[m, k] = v if v < nearest[k] * keep else np.inf


@njit(parallel=True, **opts)
def nearer_median(votes, tolerance, min_votes, width, height, median, change):
    """consistency.nearer_evidence's decision per pixel from the votes (n,hw): the median of the
    finite ones (the lower middle one), and ``change`` where at least ``min_votes`` voted and as
    many lie within ``tolerance`` (relative) of that median; then the binary opening of
    ``change`` by a 3x3 square (whole patches only)."""
    n = votes.shape[0]
    agreed = np.zeros(height * width, np.bool_)
    for r in prange(height):
        ordered = np.empty(n, np.float32)
        for c in range(width):
            k = r * width + c
            count = 0
            for m in range(n):                       # insertion sort, inf (no vote) last
                v = votes[m, k]
                j = m
                while j > 0 and ordered[j - 1] > v:
                    ordered[j] = ordered[j - 1]
                    j -= 1
                ordered[j] = v
                if np.isfinite(v):
                    count += 1
            mid = ordered[max(count - 1, 0) // 2]
            agree = 0
            for m in range(n):
                if np.isfinite(ordered[m]) and abs(ordered[m] - mid) <= tolerance * mid:
                    agree += 1
            median[k] = mid
            agreed[k] = count >= min_votes and agree >= min_votes
    eroded = np.zeros(height * width, np.bool_)
    for r in prange(height):
        for c in range(width):
            whole = True
            for rr in range(max(r - 1, 0), min(r + 2, height)):
                for cc in range(max(c - 1, 0), min(c + 2, width)):
                    whole = whole and agreed[rr * width + cc]
            eroded[r * width + c] = whole
    for r in prange(height):
        for c in range(width):
            any_whole = False
            for rr in range(max(r - 1, 0), min(r + 2, height)):
                for cc in range(max(c - 1, 0), min(c + 2, width)):
                    any_whole = any_whole or eroded[rr * width + cc]
            change[r * width + c] = any_whole


@njit(parallel=True, **opts)
def claimed_nearest(depth, width, height, out):
    """The nearest depth of each pixel's 3x3 window (clipped at the border) of a frame's depth
    (hw,), unknown (NaN) and non-positive depths counting as inf (consistency.nearer_evidence)."""
    for r in prange(height):
        for c in range(width):
            v = np.inf
            for rr in range(max(r - 1, 0), min(r + 2, height)):
                for cc in range(max(c - 1, 0), min(c + 2, width)):
                    d = depth[rr * width + cc]
                    if d > 0:                # NaN compares false: unknown
                        v = min(v, d)
            out[r * width + c] = v


@njit(parallel=True, **opts)
def prepare_neighbour(depth, sky_distance, width, height, known, measured, nearest, has_any):
    """consistency.SeenThrough's view of one frame's depth (hw,): sky (+inf) at sky_distance;
    ``measured`` finite and positive, ``known`` its depth there (0 elsewhere); ``nearest`` the
    nearest measured depth of each 3x3 window (clipped at the border; inf: none) and ``has_any``
    whether the window holds a measured pixel."""
    for r in prange(height):
        for c in range(width):
            k = r * width + c
            v = depth[k]
            if v == np.inf:
                v = sky_distance
            ok = np.isfinite(v) and v > 0
            measured[k] = ok
            known[k] = v if ok else f32(0.0)
    for r in prange(height):
        for c in range(width):
            v = np.inf
            seen = False
            for rr in range(max(r - 1, 0), min(r + 2, height)):
                for cc in range(max(c - 1, 0), min(c + 2, width)):
                    kk = rr * width + cc
                    if measured[kk]:
                        seen = True
                        v = min(v, known[kk])
            nearest[r * width + c] = v
            has_any[r * width + c] = seen
