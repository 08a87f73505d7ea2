"""The road plane under a driving camera: fit from depth, its normal from the path, its depth per
pixel. Multi-view stereo uses it for propagation, the depth ceiling and moving objects; the build
uses its height to refine the scale of poses from monocular odometry (road_scale_factor).
"""
from __future__ import annotations

import numpy as np

from ..camera import Intrinsics


def road_normals(c2w: np.ndarray, located: np.ndarray, half_window: int = 3) -> np.ndarray:
    """(N,3) world 'up' of the road under each camera of a driving path: perpendicular to the
    direction of travel (over the located frames within ``half_window``) and to the camera's x
    axis. A driving camera is pitched (1-2 degrees on the synthetic street, more on many dash
    mounts), so its own -y axis is not the road's normal: for a road point 10 m ahead a 1.7
    degree pitch moves its height along -y by 0.3 m. The travel direction lies in the road plane
    whatever the pitch. Frames that do not move (or are not located) take the camera's -y."""
    n = len(c2w)
    up = -c2w[:, :3, 1].copy()
    idx = np.nonzero(located)[0]
    for i in range(n):
        if not located[i]:
            continue
        near = idx[np.abs(idx - i) <= half_window]
        travel = c2w[near.max(), :3, 3] - c2w[near.min(), :3, 3]
        length = np.linalg.norm(travel)
        if near.max() == near.min() or length <= 0:
            continue
        normal = np.cross(c2w[i, :3, 0], travel / length)
        norm = np.linalg.norm(normal)
        if norm < 0.5:                      # travelling sideways: no road normal from the path
            continue
        normal /= norm
        up[i] = normal if normal @ up[i] > 0 else -normal
    return up


def fit_road_plane(points: np.ndarray, max_tilt_deg: float = 20.0,
                   normal: np.ndarray | None = None) -> tuple[np.ndarray, float] | None:
    """Road plane n . X = d in camera coordinates (x right, y down) from points (N,3) seen in the
    road region of the frames (a camera mounted rigidly: one plane for all frames). Robust: starts
    from the plane y = median height and refits by SVD on the points near it; None when the fit
    is not a road (too few points, tilted more than ``max_tilt_deg``). ``normal`` (unit, camera
    coordinates): the road's normal is known (from the direction of travel,
    road_normals) and only d is fitted, as the median height along it of the points near it.
    A free normal follows whatever the region holds most of: on a street whose asphalt is too
    blank to match, kerbs, lane lines and car bottoms, which tilted it by 1.3 degrees."""
    p = np.asarray(points, np.float64)
    p = p[np.isfinite(p).all(1) & (p[:, 1] > 0)]
    if len(p) < 200:
        return None
    n = np.array([0.0, 1.0, 0.0]) if normal is None else np.asarray(normal, np.float64) / np.linalg.norm(normal)
    d = float(np.median(p @ n))
    for tol in (0.25, 0.1, 0.05):
        inl = np.abs(p @ n - d) < tol * d
        if inl.sum() < 60:
            return None
        if normal is None:
            c = p[inl].mean(0)
            n = np.linalg.svd(p[inl] - c, full_matrices=False)[2][-1]
            n = n if n[1] > 0 else -n
            d = float(n @ c)
        else:
            d = float(np.median(p[inl] @ n))
    if d <= 0 or np.degrees(np.arccos(min(1.0, n[1]))) > max_tilt_deg:
        return None
    return n, d


def road_normal_in_camera(c2w: np.ndarray) -> np.ndarray:
    """The mean road normal of a driving path in camera coordinates (pointing down, y down): the
    road_normals (from the direction of travel) seen from each camera, averaged."""
    up = road_normals(c2w, np.ones(len(c2w), bool))
    n = -np.einsum("nji,nj->ni", c2w[:, :3, :3], up)          # R^T (-up) per frame
    n = n.mean(0)
    return n / np.linalg.norm(n)


def elevation_deg(intr: Intrinsics, down: np.ndarray) -> np.ndarray:
    """Elevation (h,w, degrees) of each pixel's ray above the horizon of a camera whose world
    'down' is ``down`` (unit, camera coordinates: road_normal_in_camera); negative below it."""
    v, u = np.mgrid[0:intr.height, 0:intr.width].astype(np.float64)
    x, y = (u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy
    along = down[0] * x + down[1] * y + down[2]
    return np.degrees(np.arcsin(np.clip(-along / np.sqrt(x * x + y * y + 1.0), -1.0, 1.0))).astype(np.float32)


def road_inverse_depth(plane: tuple[np.ndarray, float] | None, intr: Intrinsics) -> np.ndarray | None:
    """Inverse depth (h,w) of the road plane per pixel (NaN above its horizon)."""
    if plane is None:
        return None
    n, d = plane
    v, u = np.mgrid[0:intr.height, 0:intr.width].astype(np.float64)
    along = n[0] * (u - intr.cx) / intr.fx + n[1] * (v - intr.cy) / intr.fy + n[2]
    # z-depth of the ray (u, v, 1) meeting n . X = d: d / along; only well below the horizon.
    return np.where(along > 0.02, along / d, np.nan).astype(np.float32)


def road_region_points(depth: np.ndarray, intr: Intrinsics, step: int = 2) -> np.ndarray:
    """Camera-frame points of measured pixels in the road region (lower 40 %, middle 2/3)."""
    h, w = depth.shape
    v, u = np.mgrid[int(0.6 * h):h:step, w // 6:w - w // 6:step]
    z = depth[v, u]
    ok = np.isfinite(z) & (z > 0)
    u, v, z = u[ok], v[ok], z[ok]
    return np.stack([(u - intr.cx) / intr.fx * z, (v - intr.cy) / intr.fy * z, z], 1)


# The dense road plane may correct the sparse camera-height scale by at most this much (relative):
# a larger disagreement means one of the two fits is not the road, and the sparse one is kept.
MAX_ROAD_SCALE_CHANGE = 0.1
# A provisional scale (a handful of sparse ground points, scale.py) may change by this much.
MAX_PROVISIONAL_SCALE_CHANGE = 0.5


def road_scale_factor(pose_info: dict, mvs_info: dict | None, camera_height: float) -> float | None:
    """camera_height / the camera's height above MVS's road plane (pose units), when the poses
    were scaled by the camera height as one segment (several segments have scales of their own,
    which one plane over all frames cannot tell apart) and the two agree within
    MAX_ROAD_SCALE_CHANGE; else None. ``pose_info``: the poses' world.info entries (scale,
    odometry); ``mvs_info``: world.info["mvs"] (None: depth given)."""
    if mvs_info is None or "road_plane" not in mvs_info:
        return None
    if not str(pose_info.get("scale", "")).startswith("metric (camera height"):
        return None
    if len(pose_info.get("odometry", {}).get("segment_scales", [])) != 1:
        return None
    height = float(mvs_info["road_plane"]["distance"])
    if not (np.isfinite(height) and height > 0):
        return None
    factor = camera_height / height
    limit = (MAX_PROVISIONAL_SCALE_CHANGE if pose_info.get("scale_check", {}).get("verdict") == "provisional"
             else MAX_ROAD_SCALE_CHANGE)
    return factor if abs(factor - 1.0) <= limit else None
