"""Camera poses from a monocular video: sparse visual odometry with windowed bundle adjustment.

Classical and weight-free (OpenCV): corners (Shi-Tomasi) tracked frame to frame with pyramidal
Lucas-Kanade and a forward-backward check; a two-view start (essential matrix, RANSAC) once the
tracks have enough parallax; every later frame located by PnP (RANSAC, then Levenberg-Marquardt)
on the tracked landmarks; keyframes when parallax or the share of tracked landmarks calls for
them, where new landmarks are triangulated; a bundle adjustment (scipy least squares, Huber loss)
over the last keyframes after each new one, holding each keyframe-to-keyframe rotation near the
one the essential matrix of all common tracks gives (driving forward, a yaw and a sideways step
look alike to landmarks at similar depth, and without the distant, untriangulated tracks the
adjustment slid along that valley: 20-30 degrees over 60 frames); a final pass that locates every frame again against
the adjusted landmarks. A triangulated landmark is used only once its track has agreed with it at
a few later frames: a point on an object moving along the camera's epipolar lines fits the two
views it was triangulated from, and only later ones show that it moves. Tracking failure (too few
PnP inliers) is reported and the odometry starts a new segment instead of emitting a jump.

Monocular odometry has no scale: ``scale_from_depth`` (metric depth maps) or
``scale_from_camera_height`` (a driving camera's height above the fitted ground plane) give it.
``ate_rel`` scores a trajectory against the truth after a similarity alignment.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from ..camera import Intrinsics
from ..errors import InputError
from .features import describe, detect_spread, match
from .road import road_normals


@dataclass
class OdometrySettings:
    max_corners: int = 1500
    corner_quality: float = 0.01
    corner_spacing_px: int = 8
    # Corners are detected per grid cell (features.detect_spread), each at corner_quality of its
    # cell's strongest and at least corner_floor of the image's strongest corner.
    corner_floor: float = 0.003
    # A segment's first detection (the two-view start's corners, never refilled until it starts)
    # with fewer corners than enough_corners_factor x keyframe_min_landmarks_factor x min_inliers
    # (twice what a keyframe needs with landmarks: not every corner gets one; 0: never; RGB-D: 1x,
    # its corners get their landmarks from the depth at once) lowers the floor down to
    # corner_floor_lowest: a room of blank walls with one saturated toy box in view had 72
    # corners at 0.003, fewer than the two-view start needs after the camera turned 4 degrees. The
    # lowest floor stays ~7x above a clean video's flat wall (its median corner strength is ~1.4e-5
    # of the strongest). Refills at keyframes keep the floor: weaker corners there cost unseen
    # room seed 14 five frames.
    enough_corners_factor: float = 2.0
    corner_floor_lowest: float = 1e-4
    refill_below: int = 600           # tracks: detect new corners when fewer remain
    fb_check_px: float = 1.0          # forward-backward tracking error allowed
    start_parallax_px: float = 15.0   # median track motion needed for the two-view start
    keyframe_tracked_ratio: float = 0.6
    min_inliers: int = 20             # PnP inliers below this (or a pose off the motion model): tracking lost
    # RANSAC inlier threshold of the two-view fits (the start's and the rotation priors' essential
    # matrices) as an angle, milliradians of view: ransac_mrad x the focal length in pixels, at
    # least ransac_min_px (0.5 px lost the small synthetic test streets' starts). A fixed pixel
    # threshold grows as an angle when the frame is downscaled, and a model of mostly turning with
    # the wrong direction of travel then gathers more inliers than the true one: KITTI's ramp at
    # 640x194 (focal 371 px) started 2.3 degrees / 82 degrees off at 1.5 px and right at 0.75 px.
    # 2 mrad is 1.44 px at KITTI's full-size 718.9 px focal length.
    ransac_mrad: float = 2.0
    ransac_min_px: float = 1.0
    # PnP's RANSAC reprojection threshold and the guided re-solve's second radius, in pixels: it
    # also takes relocalised corners (ORB re-detections, about a pixel off their landmark's track).
    pnp_ransac_px: float = 3.0
    min_triangulation_deg: float = 1.0
    window: int = 8                   # keyframes in each bundle adjustment
    track_drift_px: float = 2.0       # a track this far from its landmark's projection is dropped
    # A landmark triangulated after the start is a candidate, left out of PnP and the bundle
    # adjustments, until its track has agreed with it (within track_drift_px) at this many later
    # located frames, located without it; one that disagrees is dropped with its track (0: trusted
    # at once). An object moving on its own along the camera's epipolar lines (a toy box sliding
    # past a robot that moves sideways, a car keeping pace) triangulates from two views to a
    # wrong depth that fits them exactly; once trusted, a few such landmarks with crisp corners
    # pulled a room's path 5-13 degrees off its direction of travel (ATE 1.0-4.7 %; rooms with
    # the box masked out 0.2-0.3 %). Triangulated again from its first sighting to a later view,
    # it misses its track in the view it was triangulated at. With 3 frames rooms 11-15 (from
    # their frames) went from 1.02 / 1.84 / 0.23 / 4.70 / 0.22 % to 0.80 / 0.33 / 0.22 / 0.21 /
    # 0.12 %; streets and the curve the same or better, the robot street 0.38 -> 0.48 %. Off by
    # default (0) for now: on KITTI's full-size ramp (a 98-degree turn) the two-view start's
    # landmarks leave the view before the next ones are verified, and only 21 of 51 frames are
    # placed (51 with 0); every fallback tried let the box back into the rooms
    # (docs/notes/2026-12-05-indoor2.md).
    verify_frames: int = 0
    # Monocular BA: keyframe-to-keyframe rotation from the essential matrix of all common tracks,
    # as a prior weighted by that fit's own uncertainty, never tighter than this sigma in pixels
    # (a rotation moving the image centre this far; 0: no priors).
    rotation_prior_px: float = 0.5
    # A bundle adjustment over all keyframes of each segment after the windowed pass (0: off):
    # the windows hand their scale on from keyframe to keyframe, so it drifts; landmarks seen by
    # keyframes of several windows tie them together once all are adjusted at once.
    global_ba_iterations: int = 10
    # Keyframes by what they add, not by frame count: a median parallax (angle between a track's
    # rays at the last keyframe and now, rotation taken out) or a rotation this large, or the
    # tracked landmarks thinning out (below the ratio of the last keyframe's, or below this many
    # times min_inliers, before PnP runs short of them).
    keyframe_parallax_deg: float = 0.5
    # RGB-D: landmarks come from the depth maps, not from triangulation, so parallax is not needed
    # for them; each keyframe adds the depth's noise to the path (measured: keyframes every frame
    # at 0.5 degrees, 2.1 % of the path off at the end of the 24-frame test street; 1.4 % at 1).
    keyframe_parallax_deg_rgbd: float = 1.0
    keyframe_rotation_deg: float = 3.0
    keyframe_min_landmarks_factor: float = 4.5
    # Tracking lost: match ORB descriptors of the frame's corners to the landmarks of this many
    # recent keyframes and locate it by PnP (relocalisation), for up to this many frames, before
    # a new segment starts.
    relocalise_keyframes: int = 10
    relocalise_frames: int = 30
    # A new segment (relocalisation failed for relocalise_frames) is joined to the one before it
    # by motion continuity: placed where the previous segment's motion carries on across the
    # gap and scaled to its speed, so the clip ends as one trajectory with one scale (False:
    # segments stay apart, each scaled on its own).
    join_segments: bool = True
    join_motion_frames: int = 5       # located frames each side of the gap that measure the motion
    relocalise_radius: float = 0.05   # match within this share of the image's longer side per frame of gap
    # A PnP pose this far from the constant-velocity prediction (rotation; translation as a share
    # of the predicted step) is not trusted as it is: landmarks on cars moving along with the
    # camera can outvote the road's. It is re-solved from the prediction with the landmarks that
    # agree with it (within guided_px) and rejected when that still disagrees.
    motion_gate_deg: float = 5.0
    motion_gate_step: float = 0.5
    guided_px: float = 6.0


def ransac_threshold_px(s: OdometrySettings, intr: Intrinsics) -> float:
    """The RANSAC inlier threshold in pixels for frames of these intrinsics (an angle: see
    OdometrySettings.ransac_mrad)."""
    return max(s.ransac_mrad * 1e-3 * float(intr.fx), s.ransac_min_px)


@dataclass
class OdometryResult:
    c2w: np.ndarray                   # (N,4,4) OpenCV camera-to-world; world = first camera
    located: np.ndarray               # (N,) bool: pose estimated (False: lost, pose held)
    observations: list = field(default_factory=list)   # per frame: (track ids, pixel positions)
    keyframes: list[int] = field(default_factory=list)
    segments: list[tuple[int, int]] = field(default_factory=list)
    inliers: np.ndarray | None = None  # PnP inliers per frame
    reprojection_px: float = float("nan")
    scale_source: str = "unscaled"
    warnings: list[str] = field(default_factory=list)
    landmark_by_id: dict = field(default_factory=dict)   # track id -> world xyz
    tracked: np.ndarray | None = None  # (N,) corner tracks alive at each frame (texture and tracking health)
    relocalised: list[int] = field(default_factory=list)  # frames placed by descriptor matching to the map

    def scaled(self, scale: float, source: str) -> "OdometryResult":
        """The same result in metric units: poses and landmarks scaled about the world origin
        (the first camera)."""
        c2w = self.c2w.copy()
        c2w[:, :3, 3] *= scale
        by_id = {k: v * scale for k, v in self.landmark_by_id.items()}
        return replace(self, c2w=c2w, scale_source=source, landmark_by_id=by_id)

    def segment_of(self) -> np.ndarray:
        """(N,) index of the segment each frame belongs to (frames before a segment starts, held
        at its start pose, belong to it; frames after one ends, held, to that one)."""
        seg = np.zeros(len(self.c2w), np.int64)
        for k, (start, _) in enumerate(self.segments):
            seg[start:] = k
        return seg

    def scaled_segments(self, scales: list[float], source: str) -> "OdometryResult":
        """Each segment scaled by its own factor. A segment starts where the previous one lost
        track, at that pose; it is scaled about that start, which moves with the previous
        segment's scaling, so the path stays connected. Landmarks go with the segment that
        observed them."""
        if len(scales) != max(1, len(self.segments)):
            raise ValueError("one scale per segment")
        if not self.segments:
            return self.scaled(scales[0], source)
        seg = self.segment_of()
        c2w = self.c2w.copy()
        anchors_old = [np.zeros(3)] + [self.c2w[start, :3, 3].copy() for start, _ in self.segments[1:]]
        anchors_new = [np.zeros(3)]
        for k in range(1, len(self.segments)):
            # The start pose is the previous segment's last pose, scaled with that segment.
            a = anchors_old[k]
            anchors_new.append(anchors_new[k - 1] + scales[k - 1] * (a - anchors_old[k - 1]))
        for i in range(len(c2w)):
            k = seg[i]
            c2w[i, :3, 3] = anchors_new[k] + scales[k] * (self.c2w[i, :3, 3] - anchors_old[k])
        owner: dict[int, int] = {}
        for i, obs in enumerate(self.observations):
            if obs is None or not len(obs[0]):
                continue
            for t in obs[0]:
                owner.setdefault(int(t), int(seg[i]))
        by_id = {}
        for t, x in self.landmark_by_id.items():
            k = owner.get(int(t), 0)
            by_id[t] = anchors_new[k] + scales[k] * (x - anchors_old[k])
        return replace(self, c2w=c2w, scale_source=source, landmark_by_id=by_id)

    def report(self) -> dict:
        return {"frames": int(len(self.c2w)), "located": int(self.located.sum()), "keyframes": len(self.keyframes),
                "segments": [list(s) for s in self.segments], "landmarks": len(self.landmark_by_id),
                "median_inliers": float(np.median(self.inliers[self.located])) if self.located.any() else 0.0,
                "reprojection_px": round(float(self.reprojection_px), 3), "scale": self.scale_source,
                "relocalised": len(self.relocalised), "warnings": self.warnings}


def frame_ranges(indices) -> str:
    """Frame numbers as short ranges: [3, 4, 5, 9] -> "3-5, 9"."""
    idx = sorted(int(i) for i in indices)
    parts: list[str] = []
    start = prev = None
    for i in idx + [None]:
        if start is not None and (i is None or i != prev + 1):
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = None
        if i is not None and start is None:
            start = i
        prev = i
    return ", ".join(parts)


def tracking_failure_cause(result: OdometryResult, intr: Intrinsics) -> tuple[str, str]:
    """(likely cause, fix) of an odometry that placed too few frames, from what it saw: few
    corners (too little texture or resolution), many corners but no start (no parallax: the
    camera stood still or only turned), or a start but lost tracks that do not fit one rigid
    camera (intrinsics far off, moving objects filling the view, blur)."""
    tracked = result.tracked if result.tracked is not None else np.zeros(len(result.c2w))
    corners = float(np.median(tracked)) if len(tracked) else 0.0
    pixels = intr.width * intr.height
    if corners < 100:
        # Below 320x180 resolution is the likely limit; above it, the scene's texture is.
        fix = ("give frames with more resolution (320x180 or more: a larger --max-size) or texture"
               if intr.width * intr.height < 320 * 180 else
               "give frames with more texture (at this resolution the scene, not the pixel count, is the limit)")
        return (f"too little texture: a median of {corners:.0f} corners tracked per frame at "
                f"{intr.width}x{intr.height}", fix)
    if not result.keyframes:
        return ("no parallax: the camera did not move far enough (or only turned) for a two-view start",
                "give a clip where the camera travels (not standing still or panning on the spot)")
    lost = sum("tracking lost" in w for w in result.warnings)
    return (f"tracks do not fit one moving camera ({lost} tracking loss(es), median "
            f"{float(np.median(result.inliers[result.located])) if result.located.any() else 0:.0f} PnP inliers "
            f"of {corners:.0f} corners at {pixels / 1e3:.0f} kpx): intrinsics far off, strong blur, or moving "
            "objects filling the view",
            "give the camera's intrinsics (--intrinsics camera_info.yaml or --fov DEGREES)")


def _cv2():
    try:
        import cv2
    except ImportError:
        raise InputError("estimating poses needs OpenCV, which is not installed",
                         "pip install opencv-python-headless (or pass --poses FILE)") from None
    return cv2


def _rt_to_c2w(rvec, tvec) -> np.ndarray:
    """OpenCV solvePnP's world->camera (rvec, tvec) as a camera-to-world 4x4."""
    cv2 = _cv2()
    R, _ = cv2.Rodrigues(np.asarray(rvec, np.float64))
    out = np.eye(4)
    out[:3, :3] = R.T
    out[:3, 3] = -R.T @ np.asarray(tvec, np.float64).reshape(3)
    return out


def _c2w_to_rt(c2w: np.ndarray):
    cv2 = _cv2()
    R = c2w[:3, :3].T
    t = -R @ c2w[:3, 3]
    rvec, _ = cv2.Rodrigues(R)
    return rvec.reshape(3), t


def project_points(K, c2w, xyz):
    """Pixels (n,2) and z-depths (n,) of world points ``xyz`` (n,3) in the camera ``c2w`` (K: 3x3)."""
    R = c2w[:3, :3].T
    pc = (xyz - c2w[:3, 3]) @ R.T
    z = pc[:, 2]
    uv = pc[:, :2] / np.maximum(z[:, None], 1e-9) * [K[0, 0], K[1, 1]] + [K[0, 2], K[1, 2]]
    return uv, z


class _Tracks:
    """Corner tracks: an id (also the id of its landmark, once it has one) and the current pixel
    position of each."""

    def __init__(self):
        self.ids = np.zeros(0, np.int64)
        self.pts = np.zeros((0, 2), np.float32)
        self.next_id = 0

    def add(self, pts: np.ndarray) -> None:
        n = len(pts)
        self.ids = np.concatenate([self.ids, np.arange(self.next_id, self.next_id + n)])
        self.pts = np.concatenate([self.pts, pts.astype(np.float32)])
        self.next_id += n

    def keep(self, mask: np.ndarray) -> None:
        self.ids, self.pts = self.ids[mask], self.pts[mask]


def tracks_with_landmarks(ids: np.ndarray, landmarks: dict) -> tuple[np.ndarray, np.ndarray]:
    """Which tracks have a landmark ((n,) bool) and those landmarks' positions ((m,3))."""
    have = np.array([int(t) in landmarks for t in ids], bool)
    xyz = np.stack([landmarks[int(t)] for t in ids[have]]) if have.any() else np.zeros((0, 3))
    return have, xyz


def _track(cv2, prev, cur, pts, fb_px):
    if len(pts) == 0:
        return pts, np.zeros(0, bool)
    lk = dict(winSize=(21, 21), maxLevel=3, criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01))
    p1, st1, _ = cv2.calcOpticalFlowPyrLK(prev, cur, pts.reshape(-1, 1, 2), None, **lk)
    p0, st0, _ = cv2.calcOpticalFlowPyrLK(cur, prev, p1, None, **lk)
    fb = np.linalg.norm(p0.reshape(-1, 2) - pts.reshape(-1, 2), axis=1)
    h, w = cur.shape
    p1 = p1.reshape(-1, 2)
    ok = (st1.ravel() == 1) & (st0.ravel() == 1) & (fb < fb_px)
    ok &= (p1[:, 0] >= 0) & (p1[:, 0] < w - 1) & (p1[:, 1] >= 0) & (p1[:, 1] < h - 1)
    return p1, ok


def _track_from_keyframe(cv2, K, kf_image, image, ids, pts, landmarks, guess_c2w, fb_px):
    """The keyframe's tracks that have landmarks, followed by pyramidal Lucas-Kanade from the
    keyframe's image to ``image``, each started at its landmark's projection in the pose
    ``guess_c2w`` (checked forward-backward): (ids (n,), pixels (n,2))."""
    have, xyz = tracks_with_landmarks(ids, landmarks)
    if not have.any():
        return np.zeros(0, np.int64), np.zeros((0, 2), np.float32)
    uv, z = project_points(K, guess_c2w, xyz)
    h, w = image.shape
    inside = (z > 0) & (uv[:, 0] >= 0) & (uv[:, 0] < w - 1) & (uv[:, 1] >= 0) & (uv[:, 1] < h - 1)
    p0 = pts[have][inside].astype(np.float32).reshape(-1, 1, 2)
    p1 = uv[inside].astype(np.float32).reshape(-1, 1, 2)
    if len(p0) == 0:
        return np.zeros(0, np.int64), np.zeros((0, 2), np.float32)
    lk = dict(winSize=(21, 21), maxLevel=3, criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01),
              flags=cv2.OPTFLOW_USE_INITIAL_FLOW)
    p1, st1, _ = cv2.calcOpticalFlowPyrLK(kf_image, image, p0, p1.copy(), **lk)
    back, st0, _ = cv2.calcOpticalFlowPyrLK(image, kf_image, p1, p0.copy(), **lk)
    ok = (st1.ravel() == 1) & (st0.ravel() == 1) & (np.linalg.norm((back - p0).reshape(-1, 2), axis=1) < fb_px)
    p1 = p1.reshape(-1, 2)
    ok &= (p1[:, 0] >= 0) & (p1[:, 0] < w - 1) & (p1[:, 1] >= 0) & (p1[:, 1] < h - 1)
    return ids[have][inside][ok], p1[ok].astype(np.float32)


def agrees_with_track(K, c2w, xyz, pts, drift_px: float) -> np.ndarray:
    """(n,) bool: the points ``xyz`` (n,3) project in front of camera ``c2w`` and within
    ``drift_px`` of their tracks' pixels ``pts`` (n,2)."""
    uv, z = project_points(K, c2w, xyz)
    return (np.linalg.norm(uv - pts, axis=1) <= drift_px) & (z > 0)


def enough_corners(s: OdometrySettings, rgbd: bool) -> int:
    """How many corners a frame should have before detect_spread lowers its floor: what a keyframe
    needs with landmarks, and enough_corners_factor times that for monocular odometry, where a
    corner gets a landmark only once it has parallax (RGB-D: from the depth at once)."""
    factor = 1.0 if rgbd else s.enough_corners_factor
    return int(math.ceil(factor * s.keyframe_min_landmarks_factor * s.min_inliers)) if factor > 0 else 0


def _detect(cv2, gray, existing, s: OdometrySettings, count: int, enough: int = 0):
    """New corners; a fresh detection (no existing tracks: a segment's start) lowers the floor
    until it has ``enough`` (refills come at every keyframe, and weaker corners added there moved
    the rooms' paths more than they helped them)."""
    enough = enough if len(existing) == 0 else 0
    return detect_spread(cv2, gray, existing, count, s.corner_spacing_px, s.corner_quality, floor=s.corner_floor,
                         enough=enough, lowest_floor=s.corner_floor_lowest)


def triangulate_pair(cv2, K, c2w_a, c2w_b, pa, pb, min_deg):
    """Points seen at pixels pa (n,2) in camera a and pb in camera b (camera-to-world poses, K 3x3):
    (xyz (n,3), ok (n,) bool: finite, in front of both cameras, reprojected within 2 px in each,
    and their rays meeting at ``min_deg`` or more)."""
    def P(c2w):
        R = c2w[:3, :3].T
        return K @ np.hstack([R, (-R @ c2w[:3, 3])[:, None]])
    X = cv2.triangulatePoints(P(c2w_a), P(c2w_b), pa.T.astype(np.float64), pb.T.astype(np.float64))
    xyz = (X[:3] / np.where(np.abs(X[3]) < 1e-12, 1e-12, X[3])).T
    ok = np.isfinite(xyz).all(1)
    for c2w, p in ((c2w_a, pa), (c2w_b, pb)):
        uv, z = project_points(K, c2w, xyz)
        ok &= (z > 0) & (np.linalg.norm(uv - p, axis=1) < 2.0)
    ra = xyz - c2w_a[:3, 3]
    rb = xyz - c2w_b[:3, 3]
    cos = np.sum(ra * rb, 1) / np.maximum(np.linalg.norm(ra, axis=1) * np.linalg.norm(rb, axis=1), 1e-12)
    ok &= cos < math.cos(math.radians(min_deg))
    return xyz, ok


def _depth_windows(depth: np.ndarray, pts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The 3x3 depth neighbourhood of each pixel position (rounded): ((n,9) row-major, centre at
    4; (n,) bool inside the image with a full neighbourhood, other rows sampled at pixel (1, 1))."""
    h, w = depth.shape
    px = np.round(pts).astype(int)
    inside = (px[:, 0] >= 1) & (px[:, 0] < w - 1) & (px[:, 1] >= 1) & (px[:, 1] < h - 1)
    px = np.where(inside[:, None], px, 1)
    window = np.stack([depth[px[:, 1] + dy, px[:, 0] + dx] for dy in (-1, 0, 1) for dx in (-1, 0, 1)], 1)
    return window, inside


def _backproject(K, c2w, pts, depth):
    """World points of pixels ``pts`` from a metric depth map: (xyz (n,3), ok (n,) bool). Only
    pixels where the depth is locally planar count (each pair of opposite neighbours averages to
    the centre within 1 %, which a slanted road passes): corners often sit on depth edges, where
    the pixel's depth may belong to the surface behind."""
    window, ok = _depth_windows(depth, pts)
    ok &= np.isfinite(window).all(1)
    window = np.where(np.isfinite(window), window, np.nan)      # sky (+inf): no landmark, no inf - inf
    z = window[:, 4]
    ok &= np.nan_to_num(window.min(1)) > 0
    for a, b in ((0, 8), (1, 7), (2, 6), (3, 5)):
        ok &= np.abs(0.5 * (window[:, a] + window[:, b]) - z) <= 0.01 * z
    rays = np.stack([(pts[:, 0] - K[0, 2]) / K[0, 0], (pts[:, 1] - K[1, 2]) / K[1, 1], np.ones(len(pts))], 1)
    pc = rays * np.where(ok, z, 0.0)[:, None]
    return pc @ c2w[:3, :3].T + c2w[:3, 3], ok


def bundle_adjustment_jacobian_sparsity(n_obs: int, o_kf: np.ndarray, o_pt: np.ndarray, kf_col: dict,
                                        priors: list, n_params: int):
    """Which parameters each bundle-adjustment residual depends on: an observation's two pixel
    residuals on its keyframe's six pose parameters (when free) and its landmark's three, a
    rotation prior's three residuals on both keyframes' rotations. Built from index arrays at
    once: setting the blocks one by one in a lil_matrix took a third of the odometry's time."""
    from scipy.sparse import csr_matrix

    rows, cols = [], []
    obs_rows = np.arange(2 * n_obs).reshape(n_obs, 2)
    pose_col = np.array([kf_col.get(int(k), -1) for k in o_kf], np.int64).reshape(-1)
    free = pose_col >= 0
    if free.any():
        r = np.repeat(obs_rows[free], 6, axis=1)                              # (m, 12): rows r0 r0.. r1 r1..
        c = 6 * pose_col[free, None] + np.tile(np.arange(6), 2)[None, :]
        rows.append(r.ravel())
        cols.append(c.ravel())
    n_pose = 6 * len(kf_col)
    rows.append(np.repeat(obs_rows, 3, axis=1).ravel())
    cols.append((n_pose + 3 * np.asarray(o_pt, np.int64)[:, None] + np.tile(np.arange(3), 2)[None, :]).ravel())
    for n, (a, b, _) in enumerate(priors):
        for k in (a, b):
            if k in kf_col:
                rows.append(np.repeat(2 * n_obs + 3 * n + np.arange(3), 3))
                cols.append(np.tile(6 * kf_col[k] + np.arange(3), 3))
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    A = csr_matrix((np.ones(len(rows), np.int8), (rows, cols)), shape=(2 * n_obs + 3 * len(priors), n_params))
    A.data[:] = 1          # duplicates (a prior whose two keyframes coincide) summed to 2
    return A


def _skew(v: np.ndarray) -> np.ndarray:
    """Cross-product matrices [v]x of vectors (..., 3) -> (..., 3, 3)."""
    out = np.zeros(v.shape[:-1] + (3, 3))
    out[..., 0, 1], out[..., 0, 2] = -v[..., 2], v[..., 1]
    out[..., 1, 0], out[..., 1, 2] = v[..., 2], -v[..., 0]
    out[..., 2, 0], out[..., 2, 1] = -v[..., 1], v[..., 0]
    return out


def _angle_terms(rvec: np.ndarray):
    """Angle, unit-safe sin(t)/t, (1-cos t)/t^2 and (t-sin t)/t^3 of rotation vectors (n, 3); the
    Taylor series below 1e-4 rad, where the closed forms lose their digits to cancellation."""
    theta = np.linalg.norm(rvec, axis=-1)
    small = theta < 1e-4
    t = np.where(small, 1.0, theta)
    t2 = theta * theta
    sin_t = np.where(small, 1 - t2 / 6, np.sin(t) / t)
    one_minus_cos = np.where(small, 0.5 - t2 / 24, (1 - np.cos(t)) / t ** 2)
    t_minus_sin = np.where(small, 1 / 6 - t2 / 120, (t - np.sin(t)) / t ** 3)
    return theta, sin_t, one_minus_cos, t_minus_sin


def rotations_of(rvec: np.ndarray) -> np.ndarray:
    """Rotation matrices (n, 3, 3) of rotation vectors (n, 3) (Rodrigues, as cv2.Rodrigues)."""
    _, sin_t, one_minus_cos, _ = _angle_terms(rvec)
    S = _skew(rvec)
    return np.eye(3) + sin_t[:, None, None] * S + one_minus_cos[:, None, None] * (S @ S)


def rotation_left_jacobians(rvec: np.ndarray) -> np.ndarray:
    """Left Jacobians J(r) (n, 3, 3) of SO(3): Rodrigues(r + d) = Rodrigues(J(r) d) Rodrigues(r)
    to first order in d, so d(R x)/dr = -[R x]x J(r)."""
    _, _, one_minus_cos, t_minus_sin = _angle_terms(rvec)
    S = _skew(rvec)
    return np.eye(3) + one_minus_cos[:, None, None] * S + t_minus_sin[:, None, None] * (S @ S)


def _inverse_left_jacobian(phi: np.ndarray) -> np.ndarray:
    """J(phi)^-1 for one rotation vector: log(Rodrigues(e) D) = phi + J(phi)^-1 e to first order,
    where phi = log(D)."""
    theta = float(np.linalg.norm(phi))
    S = _skew(phi)
    if theta < 1e-4:
        coef = 1 / 12 + theta ** 2 / 720
    else:
        coef = 1 / theta ** 2 - (1 + math.cos(theta)) / (2 * theta * math.sin(theta))
    return np.eye(3) - 0.5 * S + coef * (S @ S)


HUBER_PX = 1.5        # reprojection residuals beyond this many pixels grow linearly (Huber)
# Rotation priors beyond this many of their standard deviations grow linearly (Huber): an
# essential matrix that followed a car through the frame (measured: 2.6 degrees off, 30 sigma)
# must not bend the path, while priors a few sigma off keep their full pull.
PRIOR_KNEE_SIGMA = 3.0


class BundleAdjustmentProblem:
    """The residuals of a bundle adjustment and their analytic sparse Jacobian.

    Parameters ``x``: per free keyframe its world->camera rotation vector and translation (6),
    then per landmark its world position (3). Residuals: per observation the pixel error (u, v) of
    its landmark projected into its keyframe; per rotation prior (kf a, kf b, measured rotation
    R_ab from camera a's to camera b's coordinates) the rotation vector of log(R_ab^T R_b R_a^T)
    times its square-root information W (``rel_rot`` values (R_ab, W); a bare R_ab has
    W = I / ``rot_sigma_rad``). With priors the Huber loss is applied inside the residuals (pixels beyond
    HUBER_PX, whitened priors beyond PRIOR_KNEE_SIGMA: a prior a few sigma off keeps its full pull,
    one from a fit that went wrong fades like an outlier) and the solver's loss is linear; without,
    the solver applies Huber itself (``loss``).

    The Jacobian is exact (no finite differences): projection derivative times d(camera point)/
    d(parameters), with d(R X)/dr = -[R X]x J(r) (J: left Jacobian of SO(3) at r), translation
    and landmark derivatives I and R; the priors' rows through the same J and the inverse left
    Jacobian of the prior's disagreement. Everything per observation is one vectorised numpy pass.
    """

    def __init__(self, K, poses: dict, fixed: set, points: dict, obs: list,
                 rel_rot: dict | None = None, rot_sigma_rad: float = 0.0):
        self.free_kf = [k for k in poses if k not in fixed]
        self.kf_col = {k: i for i, k in enumerate(self.free_kf)}
        self.pt_ids = sorted({o[1] for o in obs})
        self.pt_col = {p: i for i, p in enumerate(self.pt_ids)}
        self.empty = not self.pt_ids or not self.free_kf
        if self.empty:
            return
        all_kf = list(poses)
        kf_index = {k: i for i, k in enumerate(all_kf)}
        self.n_kf_free = len(self.free_kf)
        # Every keyframe's rotation vector and translation: the free ones' are overwritten from x.
        rt = [_c2w_to_rt(poses[k]) for k in all_kf]
        self.base_r = np.array([r for r, _ in rt], np.float64).reshape(-1, 3)
        self.base_t = np.array([t for _, t in rt], np.float64).reshape(-1, 3)
        self.free_index = np.array([kf_index[k] for k in self.free_kf], np.int64)
        self.x0 = np.concatenate([np.concatenate([self.base_r[self.free_index], self.base_t[self.free_index]],
                                                 axis=1).ravel(),
                                  np.array([points[p] for p in self.pt_ids], np.float64).ravel()])
        self.n_obs = len(obs)
        self.o_kf = np.array([o[0] for o in obs])
        self.o_kfi = np.array([kf_index[o[0]] for o in obs], np.int64)
        self.o_pt = np.array([self.pt_col[o[1]] for o in obs], np.int64)
        self.o_uv = np.array([[o[2], o[3]] for o in obs], np.float64)
        self.o_free = np.array([self.kf_col.get(o[0], -1) for o in obs], np.int64)
        self.f = np.array([K[0, 0], K[1, 1]], np.float64)
        self.c = np.array([K[0, 2], K[1, 2]], np.float64)
        self.rot_sigma_rad = rot_sigma_rad
        self.priors = []
        self.prior_weights = []
        if rel_rot and rot_sigma_rad > 0:
            for (a, b), value in rel_rot.items():
                if a in poses and b in poses and (a in self.kf_col or b in self.kf_col):
                    # A bare rotation weighs 1 / rot_sigma_rad on each axis; (R, W) its own W.
                    R_ab, W = value if isinstance(value, tuple) else (value, np.eye(3) / rot_sigma_rad)
                    self.priors.append((a, b, R_ab))
                    self.prior_weights.append(np.asarray(W, np.float64))
        self.prior_ab = np.array([(kf_index[a], kf_index[b]) for a, b, _ in self.priors], np.int64).reshape(-1, 2)
        self.loss = "linear" if self.priors else "huber"
        self.n_params = len(self.x0)
        self.n_pose = 6 * self.n_kf_free
        self._structure()

    def _structure(self):
        """Row and column of every Jacobian entry, in the order jacobian() fills the values."""
        n = self.n_obs
        obs_rows = np.arange(2 * n).reshape(n, 2)
        free = self.o_free >= 0
        self.obs_free = free
        # Pose block of free observations (m, 2, 6), then landmark block of all (n, 2, 3).
        pose_rows = np.repeat(obs_rows[free][:, :, None], 6, axis=2)
        pose_cols = np.broadcast_to(6 * self.o_free[free, None, None] + np.arange(6), pose_rows.shape)
        pt_rows = np.repeat(obs_rows[:, :, None], 3, axis=2)
        pt_cols = np.broadcast_to(self.n_pose + 3 * self.o_pt[:, None, None] + np.arange(3), pt_rows.shape)
        rows, cols = [pose_rows.ravel(), pt_rows.ravel()], [pose_cols.ravel(), pt_cols.ravel()]
        # Prior blocks (3x3 each) for each free keyframe of each prior, in prior order, a then b.
        self.prior_blocks = []
        for m, (a, b, _) in enumerate(self.priors):
            for side, k in ((0, a), (1, b)):
                if k in self.kf_col:
                    self.prior_blocks.append((m, side))
                    rows.append(np.repeat(2 * n + 3 * m + np.arange(3), 3))
                    cols.append(np.tile(6 * self.kf_col[k] + np.arange(3), 3))
        self.jac_rows, self.jac_cols = np.concatenate(rows), np.concatenate(cols)
        self.n_residuals = 2 * n + 3 * len(self.priors)

    def _poses(self, x):
        r, t = self.base_r.copy(), self.base_t.copy()
        pose = x[:self.n_pose].reshape(-1, 6)
        r[self.free_index], t[self.free_index] = pose[:, :3], pose[:, 3:]
        return r, t

    def _prior_disagreements(self, R):
        """Rotation matrices R_ab^T R_b R_a^T and their rotation vectors, one per prior."""
        cv2 = _cv2()
        D = [R_ab.T @ R[b] @ R[a].T for (a, b), (_, _, R_ab) in zip(self.prior_ab, self.priors)]
        phi = np.array([cv2.Rodrigues(d)[0].ravel() for d in D], np.float64).reshape(-1, 3)
        return D, phi

    def _reprojection(self, x):
        r, t = self._poses(x)
        R = rotations_of(r)
        xyz = x[self.n_pose:].reshape(-1, 3)
        rotated = np.einsum("nij,nj->ni", R[self.o_kfi], xyz[self.o_pt])      # R X per observation
        pc = rotated + t[self.o_kfi]
        z = np.maximum(pc[:, 2], 1e-6)
        res = pc[:, :2] / z[:, None] * self.f + self.c - self.o_uv
        return r, R, xyz, rotated, pc, z, res

    @staticmethod
    def _robust(res, knee=HUBER_PX):
        """Huber inside the residuals (with priors): the square root of Huber's cost, signed."""
        mag = np.abs(res)
        return np.where(mag <= knee, res, np.sign(res) * np.sqrt(np.maximum(2 * knee * mag - knee ** 2, 0.0)))

    @staticmethod
    def _robust_slope(res, knee=HUBER_PX):
        """d _robust / d res: 1 inside the knee, knee / sqrt(2 knee |res| - knee^2) outside."""
        mag = np.abs(res)
        return np.where(mag <= knee, 1.0, knee / np.sqrt(np.maximum(2 * knee * mag - knee ** 2, 1e-300)))

    def residuals(self, x):
        r, R, _, _, _, _, res = self._reprojection(x)
        res = res.ravel()
        if not self.priors:
            return res
        _, phi = self._prior_disagreements(R)
        weighted = np.einsum("mij,mj->mi", np.asarray(self.prior_weights).reshape(-1, 3, 3), phi)
        return np.concatenate([self._robust(res), self._robust(weighted, PRIOR_KNEE_SIGMA).ravel()])

    def jacobian(self, x):
        from scipy.sparse import csr_matrix

        r, R, _, rotated, pc, z, res = self._reprojection(x)
        n = self.n_obs
        # d(pixel)/d(camera point) (n, 2, 3); the depth clamp has no slope below 1e-6.
        D = np.zeros((n, 2, 3))
        D[:, 0, 0] = self.f[0] / z
        D[:, 1, 1] = self.f[1] / z
        in_front = pc[:, 2] > 1e-6
        D[:, 0, 2] = np.where(in_front, -self.f[0] * pc[:, 0] / z ** 2, 0.0)
        D[:, 1, 2] = np.where(in_front, -self.f[1] * pc[:, 1] / z ** 2, 0.0)
        if self.priors:
            # Chain rule through the in-residual Huber: slope 1 inside, HUBER/sqrt(...) outside.
            D *= self._robust_slope(res)[:, :, None]
        J_left = rotation_left_jacobians(r)
        free = self.obs_free
        d_rot = -np.einsum("nij,njk->nik", D[free], _skew(rotated[free]) @ J_left[self.o_kfi[free]])
        pose_block = np.concatenate([d_rot, D[free]], axis=2)                  # (m, 2, 6)
        point_block = D @ R[self.o_kfi]                                        # (n, 2, 3)
        values = [pose_block.ravel(), point_block.ravel()]
        if self.priors:
            Dm, phi = self._prior_disagreements(R)
            weighted = np.einsum("mij,mj->mi", np.asarray(self.prior_weights).reshape(-1, 3, 3), phi)
            prior_slope = self._robust_slope(weighted, PRIOR_KNEE_SIGMA)
            for m, side in self.prior_blocks:
                a, b = self.prior_ab[m]
                inv = self.prior_weights[m] @ _inverse_left_jacobian(phi[m])
                if side == 0:     # R_a^T(r + d) = R_a^T Rodrigues(-J d): log moves by -J^-1 D J d
                    block = -inv @ Dm[m] @ J_left[a]
                else:             # R_b(r + d) = Rodrigues(J d) R_b: log moves by J^-1 R_ab^T J d
                    block = inv @ self.priors[m][2].T @ J_left[b]
                values.append((prior_slope[m][:, None] * block).ravel())
        return csr_matrix((np.concatenate(values), (self.jac_rows, self.jac_cols)),
                          shape=(self.n_residuals, self.n_params))

    def solution(self, x, poses: dict, points: dict):
        """Write the adjusted poses and landmarks of ``x`` into ``poses`` and ``points``."""
        pose = x[:self.n_pose].reshape(-1, 6)
        for k, j in self.kf_col.items():
            poses[k] = _rt_to_c2w(pose[j, :3], pose[j, 3:])
        xyz = x[self.n_pose:].reshape(-1, 3)
        for p, i in self.pt_col.items():
            points[p] = xyz[i]
        return poses, points


def bundle_adjust(K, poses: dict, fixed: set, points: dict, obs: list, iterations: int = 20,
                   rel_rot: dict | None = None, rot_sigma_rad: float = 0.0):
    """Adjust keyframe poses (except ``fixed``) and landmark positions to minimise reprojection
    error (Huber). poses: kf -> c2w; points: id -> xyz; obs: (kf, landmark id, u, v).
    ``rel_rot``: (kf a, kf b) -> measured rotation from camera a's to camera b's coordinates, or
    (that rotation, its 3x3 square-root information W); each adds a residual (W times the rotation
    vector of the disagreement; a bare rotation W = I / ``rot_sigma_rad``, so one sigma weighs like
    a pixel). Priors are used only when ``rot_sigma_rad`` > 0. Residuals and analytic Jacobian: BundleAdjustmentProblem."""
    from scipy.optimize import least_squares

    problem = BundleAdjustmentProblem(K, poses, fixed, points, obs, rel_rot, rot_sigma_rad)
    if problem.empty:
        return poses, points
    sol = least_squares(problem.residuals, problem.x0, jac=problem.jacobian, loss=problem.loss, f_scale=HUBER_PX,
                        max_nfev=iterations, x_scale="jac", method="trf", tr_solver="lsmr",
                        tr_options={"maxiter": LSMR_ITERATIONS})
    return problem.solution(sol.x, poses, points)


# Iterations of the inner least-squares solver (LSMR) per trust-region step: each step only needs
# to point downhill; solving it to convergence (scipy's default: up to the number of unknowns)
# took 7 s per window once the road gave a few thousand landmarks.
LSMR_ITERATIONS = 100


def _adjust_keyframes(K, keyframes: list[int], kf_poses: dict, kf_obs: dict, landmarks: dict, rel_rot: dict,
                      rot_sigma_rad: float, iterations: int = 20) -> None:
    """Bundle-adjust ``keyframes`` (the first two held fixed: they carry the scale) with every
    landmark they observe; kf_poses and landmarks are updated in place. The windowed pass runs it
    on the last keyframes, the global pass on all keyframes of a segment."""
    obs = [(k, int(tid), float(u), float(v)) for k in keyframes
           for tid, (u, v) in zip(*kf_obs[k]) if int(tid) in landmarks]
    # Landmarks seen by one keyframe of the window constrain no pose, only slow the solver down.
    seen = np.unique([o[1] for o in obs], return_counts=True) if obs else (np.zeros(0), np.zeros(0))
    multi = set(seen[0][seen[1] >= 2].tolist())
    obs = [o for o in obs if o[1] in multi]
    sub_poses = {k: kf_poses[k] for k in keyframes}
    sub_points = {o[1]: landmarks[o[1]] for o in obs}
    sub_poses, sub_points = bundle_adjust(K, sub_poses, set(keyframes[:2]), sub_points, obs, iterations=iterations,
                                           rel_rot=rel_rot, rot_sigma_rad=rot_sigma_rad)
    kf_poses.update(sub_poses)
    landmarks.update(sub_points)


def estimate_poses(load: Callable[[int], np.ndarray], count: int, intr: Intrinsics,
                   settings: OdometrySettings | None = None, progress_bar: bool = True,
                   depth_of: Callable[[int], np.ndarray] | None = None) -> OdometryResult:
    """Camera-to-world poses of ``count`` frames (``load(i)`` -> RGB uint8), up to scale.

    ``depth_of(i)`` (metric depth maps, NaN unknown): landmarks come from the depth at keyframes
    instead of triangulation, so the poses are metric and agree with the depth maps (RGB-D
    odometry); the two-view start is then not needed."""
    from ..progress import progress

    cv2 = _cv2()
    cv2.setRNGSeed(0)            # RANSAC draws: the same video gives the same poses
    s = settings or OdometrySettings()
    ransac_px = ransac_threshold_px(s, intr)
    corners_wanted = enough_corners(s, rgbd=depth_of is not None)
    K = intr.K.astype(np.float64)
    c2w = np.tile(np.eye(4), (count, 1, 1))
    located = np.zeros(count, bool)
    inliers = np.zeros(count, np.int64)
    obs_per_frame: list[tuple[np.ndarray, np.ndarray]] = [(np.zeros(0, np.int64), np.zeros((0, 2)))] * count
    landmarks: dict[int, np.ndarray] = {}          # track id -> world xyz
    # Triangulated landmarks not yet trusted (OdometrySettings.verify_frames): track id ->
    # [world xyz, later located frames its track has agreed with, the keyframe it was triangulated
    # at, its pixel there].
    candidates: dict[int, list] = {}
    # Candidates whose track ended before it was verified or contradicted (a near road point
    # leaves the view within a few frames): never used for poses, but returned with the landmarks
    # for what measures the scene (the camera-height scale, the MVS depth range).
    unverified: dict[int, np.ndarray] = {}
    kf_poses: dict[int, np.ndarray] = {}
    kf_obs: dict[int, tuple[np.ndarray, np.ndarray]] = {}     # keyframe -> (track ids, pixels)
    rel_rot: dict[tuple[int, int], np.ndarray] = {}           # (kf a, kf b) -> rotation a -> b (essential)
    keyframes: list[int] = []
    segments: list[tuple[int, int]] = []
    warnings: list[str] = []
    tracks = _Tracks()
    history: dict[int, tuple[np.ndarray, np.ndarray]] = {}    # frames since the segment's start
    segment_start = 0
    started = False
    last_kf = -1
    prev = None
    offset = np.eye(4)          # where a new segment starts: the last located pose (held)
    tracked = np.zeros(count, np.int64)
    kf_gray: dict[int, np.ndarray] = {}                       # recent keyframes' images (relocalisation)
    kf_desc: dict[int, tuple[np.ndarray, np.ndarray]] = {}    # keyframe -> (track ids, ORB descriptors)
    relocalised: list[int] = []
    first_seen: dict[int, tuple[int, np.ndarray]] = {}        # track id -> (first keyframe that saw it, pixel)
    lost_since = None           # first frame of a stretch that neither tracking nor relocalisation placed
    current_first_id = 0        # track ids from here on belong to the newest segment
    segment_first_ids: list[int] = []                         # per segment: its first track id
    grays: dict[int, np.ndarray] = {}

    def gray_of(i):
        if i not in grays:
            grays.clear()
            grays[i] = cv2.cvtColor(load(i), cv2.COLOR_RGB2GRAY)
        return grays[i]

    def new_keyframe(i, pose, obs=None, image=None):
        """Frame i becomes a keyframe at ``pose``, observing ``obs`` (default: the current tracks)."""
        nonlocal last_kf
        kf_poses[i] = pose
        kf_obs[i] = obs if obs is not None else (tracks.ids.copy(), tracks.pts.copy())
        remember_first_sightings(i)
        keyframes.append(i)
        located[i] = True
        last_kf = i
        kf_gray[i] = gray_of(i) if image is None else image
        for k in [k for k in kf_gray if k not in keyframes[-s.relocalise_keyframes:]]:
            del kf_gray[k]
            kf_desc.pop(k, None)

    def remember_first_sightings(k):
        """Note keyframe k as the first sighting of its tracks that no keyframe saw before."""
        for tid, uv in zip(*kf_obs[k]):
            first_seen.setdefault(int(tid), (k, uv))

    def triangulate_new_tracks(pose, i_now):
        """Landmarks for the current tracks without one, each triangulated from the first keyframe
        that saw it to now: the longest baseline there is (between consecutive keyframes, which
        come often when landmarks run short, road points at speed never reach the angle)."""
        alive = {int(t) for t in tracks.ids}
        for t in [t for t in first_seen if t not in alive]:
            del first_seen[t]
        for t in [t for t in candidates if t not in alive]:
            unverified[t] = candidates.pop(t)[0]
        todo = [(first_seen[int(t)][0], int(t), n) for n, t in enumerate(tracks.ids)
                if int(t) not in landmarks and int(t) not in candidates and int(t) in first_seen
                and first_seen[int(t)][0] in kf_poses]
        for k in sorted({k for k, _, _ in todo}):
            sel = [(t, n) for kk, t, n in todo if kk == k]
            ids_k = np.array([t for t, _ in sel], np.int64)
            p_then = np.array([first_seen[t][1] for t, _ in sel], np.float64)
            p_now = tracks.pts[[n for _, n in sel]].astype(np.float64)
            xyz, good = triangulate_pair(cv2, K, kf_poses[k], pose, p_then, p_now, s.min_triangulation_deg)
            for tid, p, uv in zip(ids_k[good], xyz[good], p_now[good]):
                if s.verify_frames > 0:
                    candidates[int(tid)] = [p, 0, i_now, uv]
                else:
                    landmarks[int(tid)] = p

    def verify_candidates(pose):
        """The candidate landmarks tracked to this located frame (``pose``, found without them),
        triangulated again from their first sighting to here (a longer baseline: a static point
        only gets sharper): one whose new point misses its track at the keyframe it was
        triangulated at by more than track_drift_px (or cannot be triangulated) is dropped with
        its track: the three views see no single static point; it moves on its own. (Checking
        every view since, not only that one, lost rooms frames.) One that has agreed at
        verify_frames frames becomes a landmark, at the new point."""
        cand = np.array([int(t) in candidates and int(t) in first_seen for t in tracks.ids], bool)
        off = np.zeros(len(tracks.ids), bool)
        for k in {first_seen[int(t)][0] for t in tracks.ids[cand]}:
            rows = np.nonzero(cand)[0][[first_seen[int(t)][0] == k for t in tracks.ids[cand]]]
            if k not in kf_poses:
                continue
            ids_k = tracks.ids[rows].tolist()
            first = np.array([first_seen[t][1] for t in ids_k], np.float64)
            xyz, ok = triangulate_pair(cv2, K, kf_poses[k], pose, first, tracks.pts[rows].astype(np.float64),
                                       s.min_triangulation_deg)
            for n, t in enumerate(ids_k):
                _, agreed, b, uv_b = candidates[t]
                if not ok[n] or b not in kf_poses or not agrees_with_track(
                        K, kf_poses[b], xyz[n:n + 1], np.asarray(uv_b, np.float64)[None], s.track_drift_px)[0]:
                    off[rows[n]] = True
                    del candidates[t]
                elif agreed + 1 >= s.verify_frames:
                    landmarks[t] = xyz[n]
                    del candidates[t]
                else:
                    candidates[t][:2] = [xyz[n], agreed + 1]
        tracks.keep(~off)

    def predicted(i):
        """Frame i's pose by constant velocity from the last two located frames (the last pose
        when there are not two)."""
        done = np.nonzero(located[:i])[0]
        if len(done) < 2:
            return c2w[done[-1]] if len(done) else offset
        a, b = done[-2], done[-1]
        step = np.linalg.inv(c2w[a]) @ c2w[b]
        step[:3, 3] *= (i - b) / max(b - a, 1)
        return c2w[b] @ step

    rejected: dict[int, str] = {}      # frame -> why its last PnP pose failed the motion gate

    def plausible(i, pose):
        """Whether ``pose`` for frame i agrees with the constant-velocity prediction (why not: in
        rejected[i], for the warning when the frame is given up)."""
        done = np.nonzero(located[:i])[0]
        if len(done) < 2:
            return True
        guess = predicted(i)
        steps = np.linalg.norm(np.diff(c2w[done[-10:], :3, 3], axis=0), axis=1)
        gap = i - done[-1]
        typical = float(np.median(steps))
        allowed = s.motion_gate_step * gap * max(typical, float(steps[-1]))
        allowed_turn = s.motion_gate_deg * math.sqrt(gap)
        R = guess[:3, :3].T @ pose[:3, :3]
        turn = math.degrees(math.acos(np.clip((np.trace(R) - 1) / 2, -1.0, 1.0)))
        off = float(np.linalg.norm(pose[:3, 3] - guess[:3, 3]))
        if turn > allowed_turn:
            rejected[i] = f"its pose turns {turn:.1f} degrees away from the motion model's (allowed {allowed_turn:.1f})"
            return False
        if off > max(allowed, 1e-9):
            unit = max(typical, 1e-12)
            rejected[i] = (f"its pose lies {off / unit:.2f} steps from the motion model's "
                           f"(allowed {allowed / unit:.2f})")
            return False
        return True

    def locate(i, ids, pts, use_guess=True):
        """PnP of frame i on tracks (ids, pts) checked against the motion: (pose or None, inliers)."""
        guess = predicted(i)
        pose, n = _pnp(cv2, K, ids, pts, landmarks, guess, s, use_guess=use_guess)
        if pose is not None and plausible(i, pose):
            return pose, n
        pose, n = _pnp_guided(cv2, K, ids, pts, landmarks, guess, s)
        if pose is not None and plausible(i, pose):
            return pose, n
        return None, n

    def relocalise(i, gray):
        """Frame i located against the landmarks of the recent keyframes by ORB descriptor
        matching and PnP: (pose, inliers, new tracks: matched corners keep their landmark's id)
        or None."""
        map_ids, map_desc = [], []
        seen: set[int] = set()
        for k in reversed(keyframes[-s.relocalise_keyframes:]):
            if k not in kf_gray:
                continue
            if k not in kf_desc:
                ids_k, pts_k = kf_obs[k]
                rows, desc = describe(cv2, kf_gray[k], pts_k)
                kf_desc[k] = (ids_k[rows], desc)
            for t, d in zip(*kf_desc[k]):
                if int(t) in landmarks and int(t) not in seen:
                    seen.add(int(t))
                    map_ids.append(int(t))
                    map_desc.append(d)
        if len(map_ids) < s.min_inliers:
            return None
        corners = _detect(cv2, gray, np.zeros((0, 2)), s, s.max_corners, corners_wanted)
        rows, desc = describe(cv2, gray, corners)
        map_desc = np.stack(map_desc)
        # First where the motion model expects each landmark (a window that grows with the gap:
        # lane dashes and fence posts repeat, and far from the prediction they match the wrong
        # one); then anywhere, for a motion the model did not foresee.
        done = np.nonzero(located[:i])[0]
        gap = i - done[-1] if len(done) else 1
        guess = predicted(i)
        uv, z = project_points(K, guess, np.stack([landmarks[t] for t in map_ids]))
        near = (z[:, None] > 0) & (np.linalg.norm(uv[:, None] - corners[rows][None], axis=2)
                                   < s.relocalise_radius * max(intr.width, intr.height) * gap)
        pairs = match(map_desc, desc, ratio=0.9, allowed=near)
        if len(pairs) < s.min_inliers:
            pairs = match(map_desc, desc)
        ids_m = np.array(map_ids, np.int64)[pairs[:, 0]]
        pts_m = corners[rows[pairs[:, 1]]].astype(np.float32)
        # Also the last keyframes' landmarks followed by Lucas-Kanade from those keyframes' images,
        # started where the motion model puts them (patches the descriptors missed).
        for k in reversed(keyframes[-3:]):
            if k not in kf_gray:
                continue
            ids_f, pts_f = _track_from_keyframe(cv2, K, kf_gray[k], gray, *kf_obs[k], landmarks, guess,
                                                3 * s.fb_check_px)
            extra = ~np.isin(ids_f, ids_m)
            ids_m = np.concatenate([ids_m, ids_f[extra]])
            pts_m = np.concatenate([pts_m, pts_f[extra]])
        if len(ids_m) < s.min_inliers:
            return None
        pose, n = locate(i, ids_m, pts_m, use_guess=False)
        if pose is None:
            return None
        uv, z = project_points(K, pose, np.stack([landmarks[int(t)] for t in ids_m]))
        good = (np.linalg.norm(uv - pts_m, axis=1) < s.track_drift_px) & (z > 0)
        new = _Tracks()
        new.next_id = tracks.next_id
        new.ids = ids_m[good].copy()
        new.pts = pts_m[good].astype(np.float32)
        new.add(_detect(cv2, gray, new.pts, s, s.max_corners - len(new.ids), corners_wanted))
        return pose, n, new

    def landmarks_from_depth(i):
        """RGB-D: the tracks of keyframe i without a landmark get one from its depth map."""
        fresh = ~tracks_with_landmarks(tracks.ids, landmarks)[0]
        if fresh.any():
            xyz, good = _backproject(K, c2w[i], tracks.pts[fresh], depth_of(i))
            for tid, p in zip(tracks.ids[fresh][good], xyz[good]):
                landmarks[int(tid)] = p

    def resume_by_relocalising(i, gray) -> bool:
        """Try to place frame i by relocalisation; on success it becomes a keyframe whose tracks
        (the matched corners, then fresh ones) carry the tracking on."""
        nonlocal tracks, prev, lost_since
        found = relocalise(i, gray)
        if found is None:
            return False
        pose, n, tracks = found
        c2w[i], inliers[i] = pose, n
        relocalised.append(i)
        obs_per_frame[i] = (tracks.ids.copy(), tracks.pts.copy())
        tracked[i] = len(tracks.ids)
        segments[-1] = (segments[-1][0], i)
        new_keyframe(i, pose, image=gray)
        if depth_of is not None:
            landmarks_from_depth(i)
        prev, lost_since = gray, None
        return True

    def last_located():
        done = np.nonzero(located)[0]
        return c2w[done[-1]] if len(done) else offset

    start_gray = None
    for i in (progress(range(count), desc="visual odometry", unit="frame") if progress_bar else range(count)):
        gray = gray_of(i)
        if lost_since is not None:
            # Lost: this frame is placed by relocalisation against the recent keyframes, or held
            # (unplaced) until relocalise_frames have passed; then a new segment starts here.
            if resume_by_relocalising(i, gray):
                continue
            if i - lost_since < s.relocalise_frames:
                c2w[i] = last_located()
                continue
            warnings.append(f"frames {lost_since}-{i - 1} could not be relocalised; a new segment starts at "
                            f"frame {i}")
            lost_since, prev = None, None
            offset = last_located()
            next_id = tracks.next_id
            tracks = _Tracks()
            tracks.next_id = current_first_id = next_id
        if prev is None:
            start_gray = gray
            tracks.add(_detect(cv2, gray, tracks.pts, s, s.max_corners, corners_wanted))
            history = {i: (tracks.ids.copy(), tracks.pts.copy())}
            segment_start, started, prev = i, False, gray
            c2w[i] = offset        # located once the segment starts from it
            continue
        pts, ok = _track(cv2, prev, gray, tracks.pts, s.fb_check_px)
        tracks.pts = pts.astype(np.float32)
        tracks.keep(ok)
        tracked[i] = len(tracks.ids)
        prev = gray
        if not started and depth_of is not None:
            # RGB-D: the segment's first frame is the first keyframe; its landmarks come from depth.
            xyz, good = _backproject(K, offset, history[segment_start][1], depth_of(segment_start))
            if good.sum() >= 50:
                for tid, p in zip(history[segment_start][0][good], xyz[good]):
                    landmarks[int(tid)] = p
                new_keyframe(segment_start, offset, history[segment_start], image=start_gray)
                obs_per_frame[segment_start] = history[segment_start]
                segments.append((segment_start, segment_start))
                segment_first_ids.append(current_first_id)
                started = True
                history = {}
            else:
                warnings.append(f"frame {segment_start}: too few corners with depth to start ({int(good.sum())})")
        if not started:
            history[i] = (tracks.ids.copy(), tracks.pts.copy())
            ids0, p0 = history[segment_start]
            common, a, b = np.intersect1d(ids0, tracks.ids, return_indices=True)
            if len(common) < 50:
                warnings.append(f"frame {i}: too few tracks to start ({len(common)}); restarting")
                prev = None
                offset = c2w[i - 1]
                c2w[i] = offset        # held, not located
                continue
            flow = np.median(np.linalg.norm(tracks.pts[b] - p0[a], axis=1))
            if flow < s.start_parallax_px:
                c2w[i] = offset
                continue
            E, mask = cv2.findEssentialMat(p0[a], tracks.pts[b], K, cv2.RANSAC, 0.999, ransac_px)
            if E is None or E.shape != (3, 3):
                continue
            n_good, R, t, mask = cv2.recoverPose(E, p0[a], tracks.pts[b], K, mask=mask)
            if n_good < 50:
                continue
            # The RANSAC model is its best five-point sample's; refined on all its inliers (as the
            # keyframe rotation priors are). On the 98-degree KITTI ramp at 640x194 the start came
            # from frames 0-1 (2.5 degrees of turn, 1 m of travel) with its rotation 2.2 degrees
            # off, and every later pose inherited that: ATE 7.5 % of the path, 3.8 % refined.
            refined = refine_relative_pose(K, R, t, p0[a][mask.ravel() > 0], tracks.pts[b][mask.ravel() > 0])
            if refined is not None:
                R, t = refined[0], refined[1].reshape(3, 1)
            cam1 = np.eye(4)
            cam1[:3, :3] = R.T
            cam1[:3, 3] = (-R.T @ t).ravel()
            first, second = offset, offset @ cam1
            xyz, good = triangulate_pair(cv2, K, first, second, p0[a], tracks.pts[b], s.min_triangulation_deg)
            good &= mask.ravel() > 0
            if good.sum() < 50:
                continue
            for tid, p in zip(common[good], xyz[good]):
                landmarks[int(tid)] = p
            new_keyframe(segment_start, first, history[segment_start], image=start_gray)
            c2w[i] = second
            new_keyframe(i, second)
            started = True
            segments.append((segment_start, i))
            segment_first_ids.append(current_first_id)
            # Frames between the two views: located against the new landmarks.
            for j in range(segment_start + 1, i):
                ids_j, pts_j = history[j]
                pose, n = _pnp(cv2, K, ids_j, pts_j, landmarks, c2w[i], s)
                if pose is not None:
                    c2w[j], located[j], inliers[j] = pose, True, n
                    obs_per_frame[j] = (ids_j, pts_j)
                else:
                    c2w[j] = first
            obs_per_frame[segment_start] = history[segment_start]
            obs_per_frame[i] = (tracks.ids.copy(), tracks.pts.copy())
            inliers[i] = int(good.sum())
            history = {}
            continue

        pose, n = locate(i, tracks.ids, tracks.pts)
        if pose is None:
            if resume_by_relocalising(i, gray):
                continue
            # Few inliers is a lost track; many, with a pose off the motion model, is a frame whose
            # landmarks disagree (a moving object in front, drifted landmarks): say which.
            why = f"{n} PnP inliers" + (f"; {rejected[i]}" if i in rejected else "")
            warnings.append(f"frame {i}: tracking lost ({why}); relocalising against the last "
                            f"{s.relocalise_keyframes} keyframes")
            lost_since = i
            c2w[i] = last_located()
            continue
        c2w[i], located[i], inliers[i] = pose, True, n
        # Tracks that drifted off their landmark (KLT follows a patch that changes scale and
        # perspective as the camera moves on) are dropped here rather than kept as bad evidence.
        has_lm, xyz = tracks_with_landmarks(tracks.ids, landmarks)
        if has_lm.any():
            uv, z = project_points(K, pose, xyz)
            bad = np.zeros(len(tracks.ids), bool)
            bad[has_lm] = (np.linalg.norm(uv - tracks.pts[has_lm], axis=1) > s.track_drift_px) | (z <= 0)
            tracks.keep(~bad)
        verify_candidates(pose)
        obs_per_frame[i] = (tracks.ids.copy(), tracks.pts.copy())
        tracked[i] = len(tracks.ids)
        segments[-1] = (segments[-1][0], i)

        # Keyframe: enough parallax or rotation since the last one, or too few landmarks still tracked.
        kf_ids, kf_pts = kf_obs[last_kf]
        common, a, b = np.intersect1d(kf_ids, tracks.ids, return_indices=True)
        parallax, rotation = _parallax_and_rotation_deg(K, kf_poses[last_kf], pose, kf_pts[a], tracks.pts[b])
        with_lm = tracks_with_landmarks(tracks.ids, landmarks)[0].sum()
        kf_with_lm = tracks_with_landmarks(kf_ids, landmarks)[0].sum()
        needed_parallax = s.keyframe_parallax_deg if depth_of is None else s.keyframe_parallax_deg_rgbd
        if (parallax > needed_parallax or rotation > s.keyframe_rotation_deg
                or with_lm < s.keyframe_tracked_ratio * max(kf_with_lm, 1)
                or with_lm < s.keyframe_min_landmarks_factor * s.min_inliers):
            if depth_of is None:
                triangulate_new_tracks(pose, i)
            if s.rotation_prior_px > 0 and depth_of is None and len(common) >= 30:
                prior = _relative_rotation(cv2, K, kf_pts[a], tracks.pts[b], ransac_px,
                                           s.rotation_prior_px / K[0, 0])
                if prior is not None:
                    rel_rot[(last_kf, i)] = prior
            new_keyframe(i, pose)
            window = keyframes[-s.window:]
            if len(window) >= 3:
                before = ({k: kf_poses[k] for k in window}, dict(landmarks))
                _adjust_keyframes(K, window, kf_poses, kf_obs, landmarks, rel_rot, s.rotation_prior_px / K[0, 0])
                located[i] = False          # plausible() compares with the frames before this one
                if plausible(i, kf_poses[i]):
                    c2w[i] = kf_poses[i]
                else:
                    # The adjustment followed landmarks that moved (cars keeping pace): the
                    # window stays as tracking left it.
                    kf_poses.update(before[0])
                    landmarks.clear()
                    landmarks.update(before[1])
                located[i] = True
            if len(tracks.ids) < s.refill_below:
                tracks.add(_detect(cv2, gray, tracks.pts, s, s.max_corners - len(tracks.ids), corners_wanted))
                kf_obs[i] = (tracks.ids.copy(), tracks.pts.copy())
            if depth_of is not None:
                landmarks_from_depth(i)

    if s.global_ba_iterations > 0 and depth_of is None:
        for start, end in segments or [(0, count - 1)]:
            seg_kf = [k for k in keyframes if start <= k <= end]
            if len(seg_kf) > 3:
                _adjust_keyframes(K, seg_kf, kf_poses, kf_obs, landmarks, rel_rot, s.rotation_prior_px / K[0, 0],
                                  iterations=s.global_ba_iterations)

    if s.join_segments and len(segments) > 1:
        # Unverified points move with their segment too.
        points = {**unverified, **{t: c[0] for t, c in candidates.items()}, **landmarks}
        segments = join_segments_by_motion(c2w, located, segments, segment_first_ids, points, kf_poses,
                                           s.join_motion_frames, warnings, metric=depth_of is not None)
        landmarks = {t: points[t] for t in landmarks}
        unverified = {t: points[t] for t in unverified}
        candidates = {t: [points[t], *c[1:]] for t, c in candidates.items()}

    # Final pass: every located frame against the adjusted landmarks.
    errors = []
    for i in range(count):
        ids_i, pts_i = obs_per_frame[i]
        if not located[i] or len(ids_i) == 0 or i in kf_poses:
            if i in kf_poses:
                c2w[i] = kf_poses[i]
            continue
        pose, n = _pnp(cv2, K, ids_i, pts_i, landmarks, c2w[i], s)
        if pose is not None:
            c2w[i], inliers[i] = pose, n
    for i in range(count):
        ids_i, pts_i = obs_per_frame[i]
        have, xyz = tracks_with_landmarks(ids_i, landmarks)
        if located[i] and have.any():
            uv, z = project_points(K, c2w[i], xyz)
            e = np.linalg.norm(uv - pts_i[have], axis=1)
            errors.append(e[e < 5.0])
    rms = float(np.sqrt(np.mean(np.concatenate(errors) ** 2))) if errors else float("nan")
    if not located.all():
        warnings.append(f"{int((~located).sum())} frame(s) could not be located; their poses are held")
    scale = "metric (landmarks from the depth maps)" if depth_of is not None else "unscaled"
    # The returned points: the trusted landmarks and the candidates never contradicted.
    points = {**unverified, **{t: c[0] for t, c in candidates.items()}, **landmarks}
    return OdometryResult(c2w, located, obs_per_frame, keyframes, segments, inliers, rms, scale, warnings,
                          points, tracked, relocalised)


def join_segments_by_motion(c2w: np.ndarray, located: np.ndarray, segments: list[tuple[int, int]],
                            first_ids: list[int], landmarks: dict, kf_poses: dict, motion_frames: int,
                            warnings: list[str], metric: bool = False) -> list[tuple[int, int]]:
    """Join each segment to the one before it into one trajectory with one scale; returns the
    joined segment list ([(first start, last end)]). ``c2w``, ``landmarks`` and ``kf_poses`` are
    moved in place.

    Segments meet where relocalisation failed, so there are no landmarks in common to align
    them by (ORB matches between the maps on both sides of a 3-frame gap on the test street:
    20, all 4-46 m wrong). The motion does carry across: the new segment's first located frame
    is put where the old segment's last ``motion_frames`` located frames carry the camera on
    (constant velocity and turn rate over the gap), and the new segment is scaled so that its
    speed over its first ``motion_frames`` located frames matches the old segment's. Each new
    segment has its own arbitrary scale (a two-view start) and rotation held from the loss; a
    vehicle's speed and turn rate change little over the gap of ~1-3 s this covers. ``metric``
    (RGB-D: every segment already in metres) keeps the new segment's scale. Each segment's
    landmarks (track ids from ``first_ids[k]`` on) move with it."""
    from scipy.spatial.transform import Rotation

    joined = [segments[0]]
    for k in range(1, len(segments)):
        old_frames = [i for i in range(joined[-1][0], joined[-1][1] + 1) if located[i]][-motion_frames - 1:]
        new_frames = [i for i in range(segments[k][0], segments[k][1] + 1) if located[i]][:motion_frames + 1]
        if len(old_frames) < 2 or len(new_frames) < 2:
            warnings.append(f"the segment from frame {segments[k][0]} could not be joined to the one before it "
                            "(too few placed frames either side of the gap); it keeps a scale of its own")
            joined.append(segments[k])
            continue

        def per_frame(frames):
            """Mean step per frame (world units) and rotation vector per frame over ``frames``."""
            a, b = frames[0], frames[-1]
            speed = sum(np.linalg.norm(c2w[j, :3, 3] - c2w[i, :3, 3]) for i, j in zip(frames, frames[1:])) / (b - a)
            turn = Rotation.from_matrix(c2w[b, :3, :3] @ c2w[a, :3, :3].T).as_rotvec() / (b - a)
            return speed, turn
        speed_old, turn_old = per_frame(old_frames)
        speed_new, _ = per_frame(new_frames)
        if speed_new <= 0 or speed_old <= 0:
            joined.append(segments[k])
            continue
        last, first = old_frames[-1], new_frames[0]
        gap = first - last
        velocity = (c2w[last, :3, 3] - c2w[old_frames[0], :3, 3]) / (last - old_frames[0])
        # Constant velocity and turn rate over the gap: the measured velocity is the chord of the
        # old frames, heading as the camera did halfway through them; the gap's chord heads as
        # it does halfway across the gap.
        turn_gap = Rotation.from_rotvec(turn_old * gap).as_matrix()
        heading = Rotation.from_rotvec(turn_old * (last - old_frames[0] + gap) / 2).as_matrix()
        target_pos = c2w[last, :3, 3] + heading @ velocity * gap
        target_rot = turn_gap @ c2w[last, :3, :3]
        scale = 1.0 if metric else speed_old / speed_new
        R = target_rot @ c2w[first, :3, :3].T
        origin = c2w[first, :3, 3].copy()

        def move(pose):
            out = pose.copy()
            out[:3, :3] = R @ pose[:3, :3]
            out[:3, 3] = target_pos + scale * R @ (pose[:3, 3] - origin)
            return out
        end = segments[k][1]
        # The segment's frames, and the unplaced ones held after it (at its last pose).
        for i in range(segments[k][0], segments[k + 1][0] if k + 1 < len(segments) else len(c2w)):
            c2w[i] = move(c2w[i])
        for kf in [kf for kf in kf_poses if segments[k][0] <= kf <= end]:
            kf_poses[kf] = move(kf_poses[kf])
        upper = first_ids[k + 1] if k + 1 < len(first_ids) else None
        for tid in [t for t in landmarks if t >= first_ids[k] and (upper is None or t < upper)]:
            landmarks[tid] = target_pos + scale * R @ (landmarks[tid] - origin)
        warnings.append(f"the segment from frame {segments[k][0]} joined to the one before it by motion continuity "
                        f"across frames {last + 1}-{first - 1} (scale x{scale:.3g}); those frames stay unplaced")
        joined[-1] = (joined[-1][0], end)
    return joined


def _parallax_and_rotation_deg(K, c2w_a, c2w_b, pa, pb) -> tuple[float, float]:
    """Median angle (degrees) between the rays of tracks seen at pa in camera a and pb in camera b
    once the rotation between the cameras is taken out (what triangulation gets from the
    translation; 0 for a camera turning on the spot), and that rotation's angle. No tracks in
    common: infinite parallax (time for a keyframe)."""
    R_ab = c2w_b[:3, :3].T @ c2w_a[:3, :3]              # camera a's coordinates to camera b's
    cos_r = np.clip((np.trace(R_ab) - 1) / 2, -1.0, 1.0)
    rotation = math.degrees(math.acos(cos_r))
    if len(pa) == 0:
        return float("inf"), rotation
    Kinv = np.linalg.inv(K)

    def rays(p):
        r = np.c_[p, np.ones(len(p))] @ Kinv.T
        return r / np.linalg.norm(r, axis=1, keepdims=True)
    ra, rb = rays(np.asarray(pa, np.float64)) @ R_ab.T, rays(np.asarray(pb, np.float64))
    cos_p = np.clip(np.sum(ra * rb, 1), -1.0, 1.0)
    return float(np.degrees(np.median(np.arccos(cos_p)))), rotation


def _relative_rotation(cv2, K, pa, pb, ransac_px, floor_rad: float = 0.0):
    """Rotation from camera a's to camera b's coordinates from the essential matrix of all tracks
    seen in both (with or without a landmark: the distant ones, never triangulated, fix the
    rotation best), and the square-root information (3x3) of that rotation, or None when the fit
    is weak.

    The rotation is refined on the inliers and its information comes from that fit
    (refine_relative_pose) plus ``floor_rad``
    squared on each axis: a short baseline leaves the rotation and the direction of travel
    trading off against each other (measured on a 25 m-radius curve at 480x270: 0.2-2 degrees
    off per keyframe pair, 4-16 times the old fixed 0.5 px sigma), and a prior held tighter than
    its own fit bent the whole path (1.2 % ATE there; 0.64 % with the sigma at 2 px)."""
    pa, pb = np.asarray(pa, np.float64), np.asarray(pb, np.float64)
    E, mask = cv2.findEssentialMat(pa, pb, K, cv2.RANSAC, 0.999, ransac_px)
    if E is None or E.shape != (3, 3):
        return None
    n, R, t, mask = cv2.recoverPose(E, pa, pb, K, mask=mask)
    if n < 30:
        return None
    inl = mask.ravel() > 0
    refined = refine_relative_pose(K, R, t, pa[inl], pb[inl])
    if refined is None:
        return None
    R, _, cov = refined
    info = np.linalg.inv(cov + floor_rad ** 2 * np.eye(3))
    return R, np.linalg.cholesky(info).T


def sampson_px(K, R, t, pa, pb) -> np.ndarray:
    """Signed Sampson distance (pixels, first-order geometric error) of each pixel pair (pa in
    camera a, pb in camera b) from the epipolar geometry x_b = R x_a + t."""
    Kinv = np.linalg.inv(K)
    F = Kinv.T @ (_skew(np.asarray(t, np.float64)[None])[0] @ R) @ Kinv
    xa = np.c_[pa, np.ones(len(pa))]
    xb = np.c_[pb, np.ones(len(pb))]
    Fa, Fb = xa @ F.T, xb @ F
    algebraic = np.sum(xb * Fa, 1)
    return algebraic / np.sqrt(Fa[:, 0] ** 2 + Fa[:, 1] ** 2 + Fb[:, 0] ** 2 + Fb[:, 1] ** 2 + 1e-300)


def refine_relative_pose(K, R, t, pa, pb, iterations: int = 10):
    """A two-view fit refined on all its inliers, and the covariance of its rotation: (R, t unit,
    covariance (3x3, radians^2, of a left perturbation exp(w) R)) or None when degenerate.

    OpenCV's RANSAC returns the essential matrix of its best five-point sample, not a fit to the
    inliers: its rotation was 0.2-2 degrees off on a 25 m-radius curve at 480x270, 4-20 standard
    deviations of what the inliers allow. Gauss-Newton over the five degrees of freedom (rotation,
    direction of travel) on the inliers' signed Sampson errors (pixels); the covariance is
    sigma^2 (J^T J)^-1 marginalised to the rotation, sigma the inliers' robust residual scale."""
    if len(pa) < 8:
        return None
    t = np.asarray(t, np.float64).ravel() / max(np.linalg.norm(t), 1e-12)
    rodrigues = _cv2().Rodrigues
    step = 1e-6
    for it in range(iterations + 1):
        # Two directions perpendicular to t: the travel direction's two degrees of freedom.
        basis = np.linalg.svd(t[None])[2][1:]

        def residuals(p, R=R, t=t, basis=basis):
            tp = t + basis.T @ p[3:]
            return sampson_px(K, rodrigues(p[:3])[0] @ R, tp / np.linalg.norm(tp), pa, pb)
        r0 = residuals(np.zeros(5))
        J = np.stack([(residuals(step * e) - residuals(-step * e)) / (2 * step) for e in np.eye(5)], 1)
        H = J.T @ J
        if not np.isfinite(H).all() or np.linalg.cond(H) > 1e14:
            return None
        if it == iterations:
            break
        delta = -np.linalg.solve(H, J.T @ r0)
        R = rodrigues(delta[:3])[0] @ R
        t = t + basis.T @ delta[3:]
        t /= np.linalg.norm(t)
        if np.abs(delta).max() < 1e-9:
            break
    sigma = 1.4826 * float(np.median(np.abs(r0))) * math.sqrt(len(r0) / max(len(r0) - 5, 1))
    return R, t, sigma ** 2 * np.linalg.inv(H)[:3, :3]


def _pnp(cv2, K, ids, pts, landmarks, guess_c2w, s: OdometrySettings, use_guess: bool = True):
    have, obj = tracks_with_landmarks(ids, landmarks)
    if have.sum() < s.min_inliers:
        return None, int(have.sum())
    obj = obj.astype(np.float64)
    img = pts[have].astype(np.float64)
    r0, t0 = _c2w_to_rt(guess_c2w)
    # The extrinsic guess as 3x1 column vectors: OpenCV 5 misreads flat (3,) arrays here (the
    # same tracks gave a pose metres off and a 30 % ATE on a street OpenCV 4 tracks to 0.4 %).
    r0, t0 = r0.reshape(3, 1).astype(np.float64), t0.reshape(3, 1).astype(np.float64)
    ok, rvec, tvec, inl = cv2.solvePnPRansac(obj, img, K, None, rvec=r0.copy(), tvec=t0.copy(),
                                             useExtrinsicGuess=use_guess, iterationsCount=200,
                                             reprojectionError=s.pnp_ransac_px, confidence=0.999,
                                             flags=cv2.SOLVEPNP_ITERATIVE)
    n = 0 if inl is None else len(inl)
    if not ok or n < s.min_inliers:
        return None, n
    inl = inl.ravel()
    rvec, tvec = cv2.solvePnPRefineLM(obj[inl], img[inl], K, None, rvec, tvec)
    return _rt_to_c2w(rvec, tvec), n


def _pnp_guided(cv2, K, ids, pts, landmarks, guess_c2w, s: OdometrySettings):
    """PnP refined from ``guess_c2w`` on the landmarks that project within ``guided_px`` of
    their tracks there (twice, the second time with the refined pose's pnp_ransac_px inliers):
    the pose the motion model expects, if the image agrees with it. (None, count) when fewer
    than min_inliers agree."""
    have, obj = tracks_with_landmarks(ids, landmarks)
    if have.sum() < s.min_inliers:
        return None, int(have.sum())
    img = pts[have].astype(np.float64)
    pose = guess_c2w
    n = 0
    for radius in (s.guided_px, s.pnp_ransac_px):
        uv, z = project_points(K, pose, obj)
        agree = (z > 0) & (np.linalg.norm(uv - img, axis=1) < radius)
        n = int(agree.sum())
        if n < s.min_inliers:
            return None, n
        r0, t0 = _c2w_to_rt(pose)
        rvec, tvec = cv2.solvePnPRefineLM(obj[agree].astype(np.float64), img[agree], K, None,
                                          r0.reshape(3, 1).astype(np.float64), t0.reshape(3, 1).astype(np.float64))
        pose = _rt_to_c2w(rvec, tvec)
    return pose, n


# -- scale and scoring -------------------------------------------------------------------------

def scale_from_depth(result: OdometryResult, depth_of: Callable[[int], np.ndarray], intr: Intrinsics,
                     frames) -> float | None:
    """Metric scale from depth maps: median ratio of measured depth to landmark depth at the
    landmarks' pixels in ``frames``."""
    ratios = []
    for i in frames:
        ids, pts = result.observations[i]
        if not result.located[i] or len(ids) == 0:
            continue
        have, xyz = tracks_with_landmarks(ids, result.landmark_by_id)
        if not have.any():
            continue
        _, z = project_points(intr.K, result.c2w[i], xyz)
        # Corners often sit on depth edges, where the pixel's depth may belong to the surface
        # behind: use only landmarks whose 3x3 depth neighbourhood is smooth (within 3 %).
        window, inside = _depth_windows(depth_of(i), pts[have])
        ok = inside & np.isfinite(window).all(1) & (z > 0) & (window.max(1) <= 1.03 * window.min(1))
        ratios.append(window[ok, 4] / z[ok])
    r = np.concatenate(ratios) if ratios else np.zeros(0)
    return float(np.median(r)) if len(r) >= 20 else None


def densest_half(values: np.ndarray) -> float:
    """Median of the shortest interval holding half of ``values`` (the shorth): a location
    estimate that follows the dense part of a distribution with a long tail on one side."""
    x = np.sort(np.asarray(values, np.float64))
    k = max(1, (len(x) + 1) // 2)
    widths = x[k - 1:] - x[:len(x) - k + 1]
    j = int(np.argmin(widths))
    return float(np.median(x[j:j + k]))


def _road_heights(result: OdometryResult, intr: Intrinsics, frames) -> np.ndarray:
    """Heights above the road plane under each camera (along road_normals) of the landmarks seen
    in the road region of ``frames`` (lower third, middle half of the columns), below the camera
    that saw them."""
    up = road_normals(result.c2w, result.located)
    heights = []
    for i in frames:
        if not result.located[i]:
            continue
        ids, pts = result.observations[i]
        if not len(ids):
            continue
        road = (pts[:, 1] > intr.height * 2 / 3) & (np.abs(pts[:, 0] - intr.cx) < intr.width / 4)
        for t in ids[road]:
            x = result.landmark_by_id.get(int(t))
            if x is not None:
                heights.append(float((result.c2w[i, :3, 3] - x) @ up[i]))
    h = np.asarray(heights)
    return h[h > 0]


def scale_from_camera_height(result: OdometryResult, height_m: float, intr: Intrinsics) -> float | None:
    """Metric scale for a driving camera: landmarks seen in the road region of the image (the
    lower third, middle half of the columns) lie on the ground; their height below the camera
    that saw them, along the road's normal, is the camera height in odometry units. The densest
    half of those heights over all frames maps it to ``height_m``."""
    if result.located.sum() < 2:
        return None
    h = _road_heights(result, intr, range(len(result.c2w)))
    if len(h) < 20:
        return None
    # Points on cars or kerbs sit higher, mistriangulated ones anywhere: the road is the dense part.
    return height_m / densest_half(h)


def segment_scales_from_camera_height(result: OdometryResult, height_m: float,
                                      intr: Intrinsics) -> list[float] | None:
    """One camera-height scale per odometry segment (each segment after a tracking loss starts
    with an arbitrary scale of its own). A segment with too few road landmarks takes the median
    of the others' scales; None when no segment has enough."""
    if result.located.sum() < 2:
        return None
    segments = result.segments or [(0, len(result.c2w) - 1)]
    seg = result.segment_of() if result.segments else np.zeros(len(result.c2w), np.int64)
    scales: list[float | None] = []
    for k in range(len(segments)):
        h = _road_heights(result, intr, np.nonzero(seg == k)[0])
        scales.append(height_m / densest_half(h) if len(h) >= 20 else None)
    known = [x for x in scales if x is not None]
    if not known:
        return None
    fallback = float(np.median(known))
    return [fallback if x is None else x for x in scales]


def umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity (s, R, t) minimising |dst - (s R src + t)|^2 over corresponding points."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    xs, xd = src - mu_s, dst - mu_d
    cov = xd.T @ xs / len(src)
    U, D, Vt = np.linalg.svd(cov)
    S = np.eye(3)
    if np.linalg.det(U) * np.linalg.det(Vt) < 0:
        S[2, 2] = -1
    R = U @ S @ Vt
    var = (xs ** 2).sum() / len(src)
    s = float(np.trace(np.diag(D) @ S) / var) if var > 0 else 1.0
    return s, R, mu_d - s * R @ mu_s


def ate_rel(estimated_c2w: np.ndarray, true_c2w: np.ndarray) -> float:
    """Absolute trajectory error (RMSE of camera centres after similarity alignment) divided by
    the true path length. Both trajectories in time order (the path length sums their steps)."""
    est, true = estimated_c2w[:, :3, 3], true_c2w[:, :3, 3]
    s, R, t = umeyama(est, true)
    aligned = (s * (R @ est.T)).T + t
    rmse = float(np.sqrt(np.mean(np.sum((aligned - true) ** 2, 1))))
    length = float(np.sum(np.linalg.norm(np.diff(true, axis=0), axis=1)))
    return rmse / length if length > 0 else float("nan")
