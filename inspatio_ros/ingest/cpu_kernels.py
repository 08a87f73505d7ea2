"""numba kernel of the build's view check on the CPU (consistency.SeenThrough loads this module
when numba is present and the check runs on the CPU; CUDA runs its PyTorch code).

Projecting every pixel of a frame into each of its 2 x check_neighbours neighbours took ~20 eager
PyTorch passes over (pixels x 3) arrays per neighbour; here it is one loop per neighbour, pixels
in parallel, with the same float32 arithmetic. test_build_kernels.py checks both give the same
counts. Module-level, so that numba's disk cache keeps it across processes.
"""
import numpy as np
from numba import njit, prange

f32 = np.float32
opts = dict(cache=True, nogil=True, error_model="numpy", fastmath=False)


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
        d = depth[i]
        px, py, pz = rays[i, 0] * d, rays[i, 1] * d, rays[i, 2] * d
        x = px * rel[0, 0] + py * rel[0, 1] + pz * rel[0, 2] + rel[0, 3]
        y = px * rel[1, 0] + py * rel[1, 1] + pz * rel[1, 2] + rel[1, 3]
        z = px * rel[2, 0] + py * rel[2, 1] + pz * rel[2, 2] + rel[2, 3]
        if not z > f32(1e-6):
            continue
        col = np.rint(x / z * fx + cx)
        row = np.rint(y / z * fy + cy)
        if not (col >= 0 and col < width and row >= 0 and row < height):
            continue
        k = int(row) * width + int(col)
        there = nearest[k]
        if has_any[k] and np.isfinite(there) and z < there * keep:
            count[i] += 1
