"""Hand-made point sets and cameras shared by the render tests."""
import numpy as np

from inspatio_ros.camera import Intrinsics
from inspatio_ros.render import Cameras, PointCloud

INTR = Intrinsics.from_fov(64, 48, 60.0)


def pixel_surfels(intr, c2w, depth, rgb, overlap=1.5):
    """One fronto-parallel surfel per pixel of a camera at a constant depth (a wall)."""
    v, u = np.mgrid[0:intr.height, 0:intr.width].astype(np.float64)
    rays = np.stack([(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, np.ones_like(u)], -1).reshape(-1, 3)
    pc = rays * depth
    xyz = pc @ c2w[:3, :3].T + c2w[:3, 3]
    normal = np.tile(-c2w[:3, 2], (len(xyz), 1))
    radius = np.full(len(xyz), 0.5 * overlap * depth / intr.fx)
    return xyz, rgb.reshape(-1, 3), radius, normal


def camera(c2w, intr=INTR, device="cpu"):
    return Cameras.from_intrinsics(intr, np.asarray(c2w)[None], device)


def street_like_cloud(device="cpu", n=60_000, seed=2):
    """A ground plane and a wall seen at a slant, sparse enough that surfels must fill gaps."""
    rng = np.random.default_rng(seed)
    ground = np.stack([rng.uniform(-6, 6, n), np.full(n, 1.5), rng.uniform(1, 30, n)], 1)
    wall = np.stack([np.full(n // 2, 4.0), rng.uniform(-3, 1.5, n // 2), rng.uniform(2, 30, n // 2)], 1)
    xyz = np.concatenate([ground, wall])
    normal = np.concatenate([np.tile([0, -1.0, 0], (n, 1)), np.tile([-1.0, 0, 0], (n // 2, 1))])
    return PointCloud.from_arrays(xyz, rng.integers(0, 256, (len(xyz), 3)), np.full(len(xyz), 0.08), normal,
                                  device=device)
