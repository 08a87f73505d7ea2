"""Filters of the swept depth, each of which turns a pixel unknown (NaN) rather than guessing, and
the fills and masks that follow them (NumPy / SciPy at the matching size).

dense_depth drops texture-less reference windows, weak correlation, ambiguous cost curves (a
second minimum almost as good), too little parallax for the depth to be measured (pixels near
the epipole of forward motion), and depth that no neighbouring frame confirms (PlaneSweep.
consistent_count). Here: small holes are filled from their nearest neighbours (optionally,
texture-less patches whose rim is one plane from that plane); sky (+inf) is marked
conservatively: bright texture-less regions spanning the top border with no measured depth above
them in their column, not reaching below the horizon nor surrounding measured surfaces; objects that move along with the camera (matched best at infinity, below
the horizon) are masked and stood on the road; matched pixels on the near side of a depth step
are marked for propagation to re-decide.
"""
from __future__ import annotations

import numpy as np

from .settings import MVSSettings


def fill_small_holes(depth: np.ndarray, max_area: int) -> np.ndarray:
    """Unknown regions of at most ``max_area`` pixels take their nearest known neighbour's depth."""
    from scipy import ndimage

    unknown = np.isnan(depth)
    if max_area <= 0 or not unknown.any() or unknown.all():
        return depth
    labels, n = ndimage.label(unknown)
    area = np.bincount(labels.ravel(), minlength=n + 1)
    small = (area <= max_area)[labels] & unknown
    if not small.any():
        return depth
    _, (rows, cols) = ndimage.distance_transform_edt(unknown, return_indices=True)
    out = depth.copy()
    out[small] = depth[rows[small], cols[small]]
    return out


def fill_planar_holes(depth: np.ndarray, max_area: int, tolerance: float = 0.03,
                       min_inliers: float = 0.9, blank: np.ndarray | None = None) -> np.ndarray:
    """Unknown regions whose known rim lies on one plane take that plane's depth.

    A plane's inverse depth is affine in pixel coordinates, so a texture-less wall or road
    patch, which matching cannot measure inside, is recovered exactly from its measured edges.
    Regions whose rim is not one plane (an occlusion boundary, a hole spanning surfaces) stay
    unknown. Fitted per region with one least-squares solve per pass (normal equations summed by
    region label), refitted on the rim pixels that agree within ``tolerance``. ``blank``: where
    given, regions are its unknown pixels only (texture-less patches, cut at edges)."""
    from scipy import ndimage

    unknown = np.isnan(depth)
    if not unknown.any() or unknown.all():
        return depth
    labels, n = ndimage.label(unknown if blank is None else unknown & blank)
    h, w = depth.shape
    known = np.isfinite(depth) & (depth > 0)
    # Rim: (region, known pixel) pairs of 4-neighbours.
    region_parts, pixel_parts = [], []
    flat_labels = labels.ravel()
    for dv, du in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        src = np.zeros((h, w), bool)
        src[max(0, -dv):h - max(0, dv), max(0, -du):w - max(0, du)] = True
        pix = np.nonzero((src & known).ravel())[0]
        neighbour = pix + dv * w + du
        lab = flat_labels[neighbour]
        region_parts.append(lab[lab > 0])
        pixel_parts.append(pix[lab > 0])
    region = np.concatenate(region_parts)
    pixel = np.concatenate(pixel_parts)
    if len(region) == 0:
        return depth
    u = (pixel % w).astype(np.float64) / w
    v = (pixel // w).astype(np.float64) / h
    rho = 1.0 / depth.ravel()[pixel].astype(np.float64)
    basis = np.stack([u, v, np.ones_like(u)], 1)
    weight = np.ones(len(region))
    coef = np.zeros((n + 1, 3))
    for _ in range(2):
        normal = np.zeros((n + 1, 3, 3))
        rhs = np.zeros((n + 1, 3))
        for a in range(3):
            rhs[:, a] = np.bincount(region, weight * basis[:, a] * rho, n + 1)
            for b in range(3):
                normal[:, a, b] = np.bincount(region, weight * basis[:, a] * basis[:, b], n + 1)
        normal += 1e-9 * np.eye(3)
        coef = np.linalg.solve(normal, rhs[..., None])[..., 0]
        fit = np.sum(basis * coef[region], 1)
        inlier = np.abs(fit - rho) <= tolerance * rho
        weight = inlier.astype(np.float64)
    rim_count = np.bincount(region, minlength=n + 1)
    inlier_share = np.bincount(region, inlier, n + 1) / np.maximum(rim_count, 1)
    area = np.bincount(flat_labels, minlength=n + 1)
    fill = (inlier_share >= min_inliers) & (rim_count >= 8) & (area <= max_area)
    fill[0] = False
    target = fill[labels] & (labels > 0)
    if not target.any():
        return depth
    vv, uu = np.nonzero(target)
    c = coef[labels[vv, uu]]
    rho_fill = c[:, 0] * uu / w + c[:, 1] * vv / h + c[:, 2]
    # Interpolate, never extrapolate: on a region its rim surrounds, an affine function stays
    # within the rim's range; values outside it come from a rim on one side only (a strip, a
    # region open to the image border) and are left unknown.
    rim_min = np.full(n + 1, np.inf)
    rim_max = np.zeros(n + 1)
    np.minimum.at(rim_min, region, np.where(inlier, rho, np.inf))
    np.maximum.at(rim_max, region, np.where(inlier, rho, 0.0))
    lab = labels[vv, uu]
    ok = (rho_fill >= (1 - tolerance) * rim_min[lab]) & (rho_fill <= (1 + tolerance) * rim_max[lab])
    out = depth.copy()
    out[vv[ok], uu[ok]] = (1.0 / rho_fill[ok]).astype(depth.dtype)
    return out


def moving_object_mask(raw_depth: np.ndarray, cost: np.ndarray, texture: np.ndarray, far: float,
                 road_rho: np.ndarray | None, s: MVSSettings,
                 ambiguity: np.ndarray | None = None, fy: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Objects that move along with the camera (a car ahead in the same lane): their textured
    pixels match well only at the far end of the sweep (they barely move in the image, like
    something infinitely far), yet they lie below the horizon, where a static point that far
    would be under the road. Such pixels, in regions of at least ``moving_min_area`` of the image
    (closed, holes filled), are the mask. Their depth: the road plane's at the region's lowest
    row (where the object stands on the road), per region. Returns (mask, depth) at the
    matching size; depth NaN outside the mask."""
    from scipy import ndimage

    h, w = raw_depth.shape
    empty = np.zeros((h, w), bool), np.full((h, w), np.nan, np.float32)
    if road_rho is None:
        return empty
    road_ok = np.isfinite(road_rho) & (road_rho > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        road_depth = np.where(road_ok, 1.0 / road_rho, np.nan)
    seed = (road_ok & (raw_depth >= 0.9 * far) & (texture >= s.min_texture) & (cost <= 0.5 * s.max_cost + 0.1)
            & (raw_depth > 3.0 * np.nan_to_num(road_depth, nan=np.inf)))
    if ambiguity is not None:
        # Lane markings run along the epipolar lines: they match any depth about as well, the far
        # end included; an object matched at the far end has one clear minimum there.
        seed &= ambiguity <= s.max_ambiguity
    if not seed.any():
        return empty
    region = ndimage.binary_fill_holes(ndimage.binary_closing(seed, iterations=3))
    labels, n = ndimage.label(region)
    area = np.bincount(labels.ravel(), minlength=n + 1)
    mask = np.zeros((h, w), bool)
    depth = np.full((h, w), np.nan, np.float32)
    rows = np.arange(h)[:, None]
    for k in np.nonzero(area >= max(8, s.moving_min_area * h * w))[0]:
        if k == 0:
            continue
        r = labels == k
        bottom = int(np.max(np.where(r, rows, -1)))
        cols = np.nonzero(r[bottom])[0]
        contact = road_depth[bottom, cols]
        contact = contact[np.isfinite(contact)]
        if not len(contact):
            continue
        if fy is not None and s.moving_min_height > 0:
            # Standing where it meets the road, the region must be as tall as a vehicle part:
            # flat blobs at road level (a lane line's end, a kerb under a parked car) are not.
            top = int(np.min(np.where(r, rows, h)))
            if (bottom - top + 1) * float(np.median(contact)) / fy < s.moving_min_height:
                continue
        mask |= r
        depth[r] = float(np.median(contact))
    return mask, depth


def near_side_of_depth_steps(depth: np.ndarray, radius: int, ratio: float) -> np.ndarray:
    """Known pixels with a known pixel more than ``ratio`` x farther within ``radius`` px.

    Window matching fattens foreground: a background pixel next to an object's edge has the
    edge, the strongest texture in its matching window (MVSSettings.window), decide its match, and takes the object's
    depth. Unmeasured again, such a pixel is re-decided by propagation, whose candidates come from
    both sides of the step and whose check uses a 5x5 window."""
    if radius <= 0:
        return np.zeros(depth.shape, bool)
    from scipy.ndimage import maximum_filter

    known = np.isfinite(depth)
    value = np.where(known, depth, 0.0)
    farthest = maximum_filter(value, size=2 * radius + 1, mode="nearest")
    return known & (farthest > ratio * value)


# Sky lies above the horizon: a blank region reaching further below it than this (degrees; a road
# that descends a few percent, a camera's pitch error) with more than SKY_BELOW_HORIZON_SHARE of
# its pixels is a surface (a room's blank wall down to the floor), not sky.
SKY_BELOW_HORIZON_DEG = 2.0
SKY_BELOW_HORIZON_SHARE = 0.01
# Sky is behind everything: it shows under thin things only (a lamp's arm, wires). A blank region
# with more than this share of its pixels under measured surfaces in their column surrounds them,
# as a facade does its windows (synthetic street seed 1: 13-45 %; its sky regions: 0 %).
SKY_MAX_UNDER_MEASURED = 0.1


def sky_mask(depth: np.ndarray, texture: np.ndarray, gray: np.ndarray, min_texture: float,
             elevation: np.ndarray | None = None) -> np.ndarray:
    """Sky (h,w bool): sky_and_surfaces's first mask."""
    return sky_and_surfaces(depth, texture, gray, min_texture, elevation)[0]


def sky_and_surfaces(depth: np.ndarray, texture: np.ndarray, gray: np.ndarray, min_texture: float,
                     elevation: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(sky, surfaces): bright blank regions at the top taken for sky, and those that the rules
    below showed to be surfaces (dense_depth counts both over the video: where surfaces outnumber
    sky, the scene has none). Sky, conservatively: texture-less pixels without depth in a region that spans at least a
    tenth of the top border, is brighter than the image's median (sky is lit; a blank facade top
    in shade is not taken), and has no measured depth above it in its column. ``elevation`` (h,w,
    degrees above the horizon: road.elevation_deg): where given, a region with more than
    SKY_BELOW_HORIZON_SHARE of its pixels over SKY_BELOW_HORIZON_DEG below the horizon is not
    sky. A blank wall in a room is bright, reaches the top border and has nothing measured above
    it, but it comes down to the floor below the horizon; sky does not (synthetic room: 3-19 % of
    such regions 2-6 degrees below; street sky stays 18 degrees above). A region with more than
    SKY_MAX_UNDER_MEASURED of its pixels under measured depth is a surface around what was
    measured (a bright blank facade between its windows, up to the top border), not sky."""
    from scipy import ndimage

    candidate = np.isnan(depth) & (texture < min_texture)
    labels, n = ndimage.label(candidate)
    if n == 0:
        return np.zeros(depth.shape, bool), np.zeros(depth.shape, bool)
    top_span = np.bincount(labels[0], minlength=n + 1)
    area = np.bincount(labels.ravel(), minlength=n + 1)
    brightness = np.bincount(labels.ravel(), gray.ravel(), n + 1) / np.maximum(area, 1)
    measured_above = np.maximum.accumulate(np.isfinite(depth), axis=0)
    under = np.bincount(labels.ravel(), measured_above.ravel(), n + 1)
    bright_top = (top_span >= 0.1 * depth.shape[1]) & (brightness >= max(0.5, float(np.median(gray))))
    bright_top[0] = False
    surface = under > SKY_MAX_UNDER_MEASURED * area
    if elevation is not None:
        below = np.bincount(labels.ravel(), (elevation < -SKY_BELOW_HORIZON_DEG).ravel(), n + 1)
        surface |= below > SKY_BELOW_HORIZON_SHARE * area
    return (bright_top & ~surface)[labels] & ~measured_above, (bright_top & surface)[labels]
