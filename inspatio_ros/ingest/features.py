"""Corners spread over the image and descriptors to find them again, for the visual odometry.

Shi-Tomasi corners detected per grid cell (each cell's quality threshold relative to its own
strongest corner, above a floor relative to the whole image's): a single image-wide threshold
lets a few strong corners (lane markings, a car's edges) set the bar, and the weaker texture of
asphalt and verges, which carries the parallax, gets none; corners then bunch on distant trees.
ORB descriptors at given pixel positions (upright, one scale: the camera does not roll, and the
frames matched are close in time) let a frame where Lucas-Kanade tracking broke (a blank or
blurred stretch, a jump) be matched to the landmarks of recent keyframes.
"""
from __future__ import annotations

import numpy as np

DESCRIPTOR_PATCH = 31          # ORB's patch size; positions closer to the border get no descriptor


FLOOR_STEP = 3.0               # detect_spread lowers its floor this many times at a step


def detect_spread(cv2, gray: np.ndarray, existing: np.ndarray, count: int, spacing: int, quality: float,
                  grid: tuple[int, int] = (8, 5), floor: float = 1e-3, enough: int = 0,
                  lowest_floor: float | None = None) -> np.ndarray:
    """Up to ``count`` new corners (n,2 float32) at least ``spacing`` px from each other and from
    ``existing`` (m,2), spread over a ``grid`` (columns, rows) of cells, the cells with fewest
    existing corners first. A cell's corners must reach ``quality`` x its strongest one and
    ``floor`` x the image's strongest (no corners on sensor noise in blank sky).

    The floor is relative to the single strongest corner, so one high-contrast object (a saturated
    toy box in a room of blank walls) can raise it above all the scene's other texture. When
    ``existing`` and the new corners together are fewer than ``enough``, the floor is lowered
    FLOOR_STEP-fold at a time, down to ``lowest_floor``, until they are not: weak corners are
    better than too few to track with, and an image that has enough strong ones never gets them."""
    h, w = gray.shape
    mask = np.full(gray.shape, 255, np.uint8)
    for x, y in np.asarray(existing).astype(int):
        cv2.circle(mask, (int(x), int(y)), spacing, 0, -1)
    eig = cv2.cornerMinEigenVal(gray, 7)
    peak = float(eig.max()) if eig.size else 0.0
    if count <= 0 or peak <= 0:
        return np.zeros((0, 2), np.float32)
    lowest = floor if lowest_floor is None else min(lowest_floor, floor)
    while True:
        found = _detect_in_cells(cv2, gray, existing, count, spacing, quality, grid, floor * peak, eig, mask)
        if len(existing) + len(found) >= enough or floor <= lowest * (1 + 1e-9):
            return found
        floor = max(floor / FLOOR_STEP, lowest)


def _detect_in_cells(cv2, gray, existing, count, spacing, quality, grid, floor_eig, eig, mask) -> np.ndarray:
    h, w = gray.shape
    cols, rows = grid
    xs = np.linspace(0, w, cols + 1).astype(int)
    ys = np.linspace(0, h, rows + 1).astype(int)
    cells = [(r, c) for r in range(rows) for c in range(cols)]
    have = np.zeros((rows, cols), np.int64)
    for x, y in np.asarray(existing).reshape(-1, 2):
        c = min(int(np.searchsorted(xs, x, side="right")) - 1, cols - 1)
        r = min(int(np.searchsorted(ys, y, side="right")) - 1, rows - 1)
        if 0 <= r < rows and 0 <= c < cols:
            have[r, c] += 1
    total = int(have.sum()) + count
    quota = int(np.ceil(total / len(cells)))
    found = []
    # Fewest existing corners first (stable order: the same video gives the same corners).
    for r, c in sorted(cells, key=lambda rc: (have[rc], rc)):
        want = min(quota - int(have[r, c]), count - sum(len(f) for f in found))
        if want <= 0:
            continue
        y0, y1, x0, x1 = ys[r], ys[r + 1], xs[c], xs[c + 1]
        pts = cv2.goodFeaturesToTrack(gray[y0:y1, x0:x1], maxCorners=want, qualityLevel=quality,
                                      minDistance=spacing, mask=mask[y0:y1, x0:x1], blockSize=7)
        if pts is None:
            continue
        pts = pts.reshape(-1, 2) + [x0, y0]
        strong = eig[pts[:, 1].astype(int), pts[:, 0].astype(int)] >= floor_eig
        found.append(pts[strong])
    if not found:
        return np.zeros((0, 2), np.float32)
    return np.concatenate(found).astype(np.float32)


def describe(cv2, gray: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """ORB descriptors at pixel positions ``pts`` (n,2): (which rows of pts got one (m,) int,
    descriptors (m,32) uint8). Positions near the border get none."""
    orb = cv2.ORB_create(edgeThreshold=DESCRIPTOR_PATCH, patchSize=DESCRIPTOR_PATCH)
    kps = [cv2.KeyPoint(float(x), float(y), DESCRIPTOR_PATCH, 0.0, 0.0, 0, int(n))
           for n, (x, y) in enumerate(np.asarray(pts, np.float64))]
    kps, desc = orb.compute(gray, kps)
    if desc is None or not kps:
        return np.zeros(0, np.int64), np.zeros((0, 32), np.uint8)
    return np.array([k.class_id for k in kps], np.int64), desc


def hamming(desc_a: np.ndarray, desc_b: np.ndarray) -> np.ndarray:
    """(n,m) Hamming distances between binary descriptors (rows of uint8)."""
    a = np.unpackbits(desc_a, axis=1).astype(np.float32)
    b = np.unpackbits(desc_b, axis=1).astype(np.float32)
    # A matrix product on the unpacked bits (exact in float32: at most 256).
    return (a.sum(1)[:, None] + b.sum(1)[None, :] - 2 * (a @ b.T)).astype(np.int32)


def match(desc_a: np.ndarray, desc_b: np.ndarray, ratio: float = 0.8, allowed: np.ndarray | None = None,
          max_distance: int = 80) -> np.ndarray:
    """Mutual nearest neighbours (Hamming) passing the ratio test and ``max_distance``: (k,2) rows
    (index in a, index in b). ``allowed`` (n,m) bool: the pairs that may match at all (e.g.
    those near where a motion model expects them); the others count as infinitely far."""
    if len(desc_a) < 2 or len(desc_b) < 2:
        return np.zeros((0, 2), np.int64)
    dist = hamming(desc_a, desc_b)
    if allowed is not None:
        dist = np.where(allowed, dist, 10_000)
    best_b = np.argmin(dist, 1)
    two = np.partition(dist, 1, axis=1)[:, :2]
    ok = (two[:, 0] < ratio * two[:, 1]) & (two[:, 0] <= max_distance)
    best_a = np.argmin(dist, 0)
    ok &= best_a[best_b] == np.arange(len(desc_a))
    idx = np.nonzero(ok)[0]
    return np.stack([idx, best_b[idx]], 1)
