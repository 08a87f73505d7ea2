"""Self-calibration of the focal length from the video itself, for a build given no intrinsics.

Method (a focal sweep scored by bundle adjustment with shared intrinsics):

1. Windows of consecutive frames spread over the clip; in each, corners (Shi-Tomasi) tracked
   with pyramidal Lucas-Kanade and a forward-backward check; keyframes where the tracks have
   moved far enough (parallax), tracks seen by three keyframes or more.
2. For a candidate focal length f: a small reconstruction of the window (essential matrix of the
   first keyframe and the farthest one sharing enough tracks with it, triangulation, PnP for the
   others) and a bundle adjustment of every keyframe pose and every point with f held fixed
   (Levenberg-Marquardt, Cauchy loss of 1 px, points eliminated by the Schur complement). The
   score is the robust sum of squared reprojection errors.
3. A coarse sweep over f (0.4x to 2.5x the prior, log spaced), then bundle adjustments with f as a
   parameter too, started from the best candidate and its neighbours (the lowest score wins):
   the estimate, and its standard error from the inverse of the adjustment's Hessian (points
   eliminated) times the residuals' noise variance, or from the spread of f over random halves
   of the tracks where that is larger (a track's errors are correlated along it). Windows are combined by their inverse
   variances; their spread also enters the uncertainty (a window's tracks share their errors,
   so one window alone is overconfident).

The principal point is held at the image centre: it is poorly constrained next to the focal length
(a shift of it looks like a small rotation of the camera) and lies within a few percent of the
centre on most cameras (KITTI's: 10 px of 1226); freeing it would make the sweep unstable rather
than more exact. Pixels are taken as square and the lens as undistorted.

Why a flat score: under pure translation (the camera never turns) the images of a scene seen
with focal f are exactly those of the same scene squeezed sideways by a, seen with focal a f
(X/Z -> a X/Z, with the path squeezed alike); only rotation of the camera tells focal lengths
apart. A straight drive at constant heading therefore leaves the score flat; that is detected
(relative uncertainty above MAX_USABLE_RELATIVE_UNCERTAINTY, or the prior within a few standard
errors, or the best f at the edge of the sweep) and the build falls back to the prior with a
warning naming --fov and camera_info, never pretending. Between MAX_RELATIVE_UNCERTAINTY and that,
an estimate that rules the prior out is used, with a warning giving its uncertainty.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
from scipy.spatial.transform import Rotation

from ..camera import Intrinsics
from ..errors import InputError
from ..progress import progress

# An estimate whose standard error is within this share of it is a calibration.
MAX_RELATIVE_UNCERTAINTY = 0.05
# Up to this share it is still used, with a warning, where it rules the prior out (the prior more
# than PRIOR_REJECTED_SIGMAS standard errors away): a camera that turned a little pins f down
# loosely, and 1.2 x the longer side is 2.4 times off for a 90-degree lens. Beyond it the score
# is flat and the build falls back to the prior.
MAX_USABLE_RELATIVE_UNCERTAINTY = 0.2
PRIOR_REJECTED_SIGMAS = 3.0


@dataclass(frozen=True)
class CalibrationSettings:
    """How self-calibration samples the video."""

    windows: int = 3                  # windows of consecutive frames, spread over the clip
    window_frames: int = 45           # frames tracked per window (at most)
    max_keyframes: int = 20           # keyframes per window (a bundle adjustment each candidate)
    keyframe_parallax: float = 0.015  # median track motion between keyframes, share of the longer side
    max_tracks: int = 500             # tracks per window in the bundle adjustment (the longest)
    max_corners: int = 1200
    fb_check_px: float = 0.7          # forward-backward tracking error allowed
    sweep: tuple[float, float] = (0.25, 3.0)  # focal range searched, times the prior (about 130 to 16 degrees)
    sweep_steps: int = 11


@dataclass(frozen=True)
class FocalEstimate:
    """Result of self-calibration. ``focal_px``: the estimate (None when the video does not
    constrain it, see ``reason``); ``uncertainty_px``: its standard error; ``windows``: per
    window estimate, standard error and score."""

    focal_px: float | None
    uncertainty_px: float
    prior_px: float
    width: int
    height: int
    reason: str
    windows: list[dict] = field(default_factory=list)

    @property
    def constrained(self) -> bool:
        return self.focal_px is not None

    @property
    def uncertain(self) -> bool:
        """Used, but looser than MAX_RELATIVE_UNCERTAINTY (the build warns)."""
        return self.focal_px is not None and self.uncertainty_px > MAX_RELATIVE_UNCERTAINTY * self.focal_px

    def intrinsics(self) -> Intrinsics:
        """The estimated intrinsics (principal point at the centre); the prior's when not constrained."""
        f = self.focal_px if self.focal_px is not None else self.prior_px
        return Intrinsics(f, f, (self.width - 1) / 2.0, (self.height - 1) / 2.0, self.width, self.height)

    def info(self) -> dict:
        """world.info["calibration"]."""
        return {"method": "focal sweep scored by bundle adjustment with shared intrinsics (ingest/calibration.py)",
                "focal_px": None if self.focal_px is None else round(self.focal_px, 2),
                "uncertainty_px": None if not math.isfinite(self.uncertainty_px) else round(self.uncertainty_px, 2),
                "prior_px": round(self.prior_px, 2), "principal_point": "image centre (assumed)",
                "size": [self.width, self.height], "used": self.constrained, "uncertain": self.uncertain,
                "reason": self.reason,
                "windows": self.windows}


# -- tracks ----------------------------------------------------------------------------------

def _gray(cv2, image: np.ndarray) -> np.ndarray:
    return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)


def track_window(load: Callable[[int], np.ndarray], frames: list[int], s: CalibrationSettings):
    """Corner tracks over consecutive ``frames``: (keyframes (K,), observations (K, T, 2) with NaN
    where a track is not seen). Keyframes by parallax; tracks seen by at least three keyframes,
    the longest ``s.max_tracks`` of them."""
    import cv2

    prev = _gray(cv2, load(frames[0]))
    h, w = prev.shape
    longer = max(h, w)
    spacing = max(4, int(longer / 80))
    pts = cv2.goodFeaturesToTrack(prev, s.max_corners, 0.01, spacing)
    pts = np.zeros((0, 2), np.float32) if pts is None else pts.reshape(-1, 2).astype(np.float32)
    ids = np.arange(len(pts))
    next_id = len(pts)
    key_obs: list[dict[int, np.ndarray]] = [dict(zip(ids.tolist(), pts))]
    keyframes = [frames[0]]
    last_key = dict(zip(ids.tolist(), pts))
    lk = dict(winSize=(21, 21), maxLevel=3, criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01))
    for n, i in enumerate(frames[1:], 1):
        cur = _gray(cv2, load(i))
        if len(pts):
            nxt, st, _ = cv2.calcOpticalFlowPyrLK(prev, cur, pts, None, **lk)
            back, st2, _ = cv2.calcOpticalFlowPyrLK(cur, prev, nxt, None, **lk)
            ok = (st.ravel() == 1) & (st2.ravel() == 1) & (np.linalg.norm(back - pts, axis=1) < s.fb_check_px)
            ok &= (nxt[:, 0] >= 0) & (nxt[:, 0] < w) & (nxt[:, 1] >= 0) & (nxt[:, 1] < h)
            pts, ids = nxt[ok], ids[ok]
        common = [t for t in ids.tolist() if t in last_key]
        moved = (np.median([np.linalg.norm(pts[k] - last_key[t]) for k, t in enumerate(ids.tolist()) if t in last_key])
                 if common else np.inf)
        last = n == len(frames) - 1
        if moved >= s.keyframe_parallax * longer or (last and moved >= 0.5 * s.keyframe_parallax * longer):
            keyframes.append(i)
            key_obs.append(dict(zip(ids.tolist(), pts.copy())))
            last_key = key_obs[-1]
            if len(keyframes) >= s.max_keyframes:
                break
        if len(pts) < s.max_corners // 2:
            mask = np.full((h, w), 255, np.uint8)
            for x, y in pts:
                cv2.circle(mask, (int(x), int(y)), spacing, 0, -1)
            extra = cv2.goodFeaturesToTrack(cur, s.max_corners - len(pts), 0.01, spacing, mask=mask)
            if extra is not None:
                extra = extra.reshape(-1, 2).astype(np.float32)
                pts = np.vstack([pts, extra])
                ids = np.concatenate([ids, np.arange(next_id, next_id + len(extra))])
                next_id += len(extra)
        prev = cur
    all_ids = sorted({t for obs in key_obs for t in obs})
    seen = np.array([sum(t in obs for obs in key_obs) for t in all_ids])
    keep = [t for t, c in zip(all_ids, seen) if c >= 3]
    keep.sort(key=lambda t: -sum(t in obs for obs in key_obs))
    keep = keep[:s.max_tracks]
    observations = np.full((len(keyframes), len(keep), 2), np.nan)
    for k, obs in enumerate(key_obs):
        for j, t in enumerate(keep):
            if t in obs:
                observations[k, j] = obs[t]
    return np.array(keyframes), observations


# -- reconstruction and bundle adjustment at a fixed focal length ------------------------------

def _camera_matrix(f: float, width: int, height: int) -> np.ndarray:
    return np.array([[f, 0.0, (width - 1) / 2.0], [0.0, f, (height - 1) / 2.0], [0.0, 0.0, 1.0]])


def _triangulate(P1, P2, x1, x2) -> np.ndarray:
    import cv2
    X = cv2.triangulatePoints(P1, P2, x1.T.astype(np.float64), x2.T.astype(np.float64))
    return (X[:3] / X[3]).T


def _translation_given_rotation(R: np.ndarray, points: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Translation t of a camera of known rotation R seeing ``points`` (N,3) at normalised image
    points ``q`` (N,2): q x (R X + t) = 0 is linear in t; least squares, reweighted (Cauchy)
    against mistracked points."""
    qh = np.hstack([q, np.ones((len(q), 1))])
    Q = np.zeros((len(q), 3, 3))
    Q[:, 0, 1], Q[:, 0, 2], Q[:, 1, 0] = -qh[:, 2], qh[:, 1], qh[:, 2]
    Q[:, 1, 2], Q[:, 2, 0], Q[:, 2, 1] = -qh[:, 0], -qh[:, 1], qh[:, 0]
    A = Q[:, :2].reshape(-1, 3)
    b = -(Q[:, :2] @ (points @ R.T)[:, :, None]).reshape(-1)
    weight = np.ones(len(A))
    t = np.zeros(3)
    for _ in range(5):
        t = np.linalg.lstsq(A * weight[:, None], b * weight, rcond=None)[0]
        r = (A @ t - b).reshape(-1, 2)
        scale = max(float(np.median(np.abs(r))) * 3, 1e-9)
        weight = np.repeat(1.0 / np.sqrt(1.0 + ((r / scale) ** 2).sum(1)), 2)
    return t


def _initial_reconstruction(obs: np.ndarray, K: np.ndarray):
    """Poses (K,3 rotation vectors, K,3 translations; world-to-camera, keyframe 0 at the origin)
    and points (T,3, NaN where not triangulated) of one window at the camera matrix K, or None
    when it cannot be started. Rotations first, chained from the essential matrices of
    consecutive keyframes (all their common tracks, far ones included, so well determined);
    then, with rotations known, each translation from the triangulated points by linear least
    squares, and new points triangulated. (Locating keyframes by PnP on points triangulated
    from short baselines instead gave rotations a degree off, and the adjustment stayed in that
    valley: in forward motion a yaw and a sideways step look alike.)"""
    import cv2

    nk, nt = obs.shape[:2]
    rotations = [np.eye(3)]
    directions = [np.zeros(3)]
    for k in range(1, nk):
        both = np.isfinite(obs[k - 1, :, 0]) & np.isfinite(obs[k, :, 0])
        if both.sum() < 20:
            return None
        pa, pb = obs[k - 1, both], obs[k, both]
        E, inl = cv2.findEssentialMat(pa, pb, K, cv2.RANSAC, 0.999, 1.0)
        if E is None or E.shape != (3, 3):
            return None
        _, R_rel, t_rel, _ = cv2.recoverPose(E, pa, pb, K, mask=inl)
        rotations.append(R_rel @ rotations[-1])
        directions.append(t_rel.ravel())
    Kinv = np.linalg.inv(K)
    rvec = np.array([cv2.Rodrigues(R)[0].ravel() for R in rotations])
    tvec = np.zeros((nk, 3))
    tvec[1] = directions[1]
    points = np.full((nt, 3), np.nan)
    located = [0, 1]
    for k in range(2, nk):
        _triangulate_new(obs, K, rvec, tvec, points, located)
        have = np.isfinite(points[:, 0]) & np.isfinite(obs[k, :, 0])
        if have.sum() < 12:
            return None
        q = (np.hstack([obs[k, have], np.ones((have.sum(), 1))]) @ Kinv.T)[:, :2]
        tvec[k] = _translation_given_rotation(rotations[k], points[have], q)
        located.append(k)
    _triangulate_new(obs, K, rvec, tvec, points, located)
    return rvec, tvec, points


def _triangulate_new(obs, K, rvec, tvec, points, located) -> None:
    """Triangulate (in place) the points not yet known that two located keyframes see: from the
    two of them farthest apart, kept when in front of both."""
    import cv2

    loc = np.array(sorted(located))
    seen = np.isfinite(obs[loc, :, 0])
    for j in np.nonzero(~np.isfinite(points[:, 0]) & (seen.sum(0) >= 2))[0]:
        ks = loc[seen[:, j]]
        a, b = ks[0], ks[-1]
        Ra, Rb = cv2.Rodrigues(rvec[a])[0], cv2.Rodrigues(rvec[b])[0]
        X = _triangulate(K @ np.hstack([Ra, tvec[a][:, None]]), K @ np.hstack([Rb, tvec[b][:, None]]),
                         obs[a, j][None], obs[b, j][None])[0]
        if (Ra @ X + tvec[a])[2] > 0 and (Rb @ X + tvec[b])[2] > 0:
            points[j] = X


def _skew(v: np.ndarray) -> np.ndarray:
    """(N,3,3) cross-product matrices of (N,3) vectors."""
    z = np.zeros(len(v))
    return np.stack([np.stack([z, -v[:, 2], v[:, 1]], 1), np.stack([v[:, 2], z, -v[:, 0]], 1),
                     np.stack([-v[:, 1], v[:, 0], z], 1)], 1)


def _adjust(obs: np.ndarray, f: float, width: int, height: int, start, iterations: int = 40,
            free_focal: bool = False):
    """Bundle adjustment of poses and points at focal length ``f`` (or with f as a parameter
    too, ``free_focal``): Levenberg-Marquardt on the Cauchy loss (1 px; iteratively reweighted),
    analytic Jacobians, points eliminated by the Schur complement (the camera side, 6 per
    keyframe and f, is small and dense). Keyframe 0 is fixed; the damping holds the scale.
    Returns (score: sum of log(1 + r^2) over the observations' squared pixel residuals r^2,
    number of observations, noise variance per coordinate (px^2), solution (rotation vectors,
    translations, points, f), standard error of f (px; inf when not free or not constrained))."""
    rvec, tvec, points = start
    keep = np.isfinite(points[:, 0])
    obs = obs[:, keep]
    X = points[keep].copy()
    nk, nt = obs.shape[:2]
    k_of, t_of = np.nonzero(np.isfinite(obs[:, :, 0]))
    uv = obs[k_of, t_of]
    m = len(k_of)
    c = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
    R = Rotation.from_rotvec(rvec).as_matrix()
    t = tvec.copy()
    n_pose = 6 * (nk - 1)
    n_cam = n_pose + (1 if free_focal else 0)
    posed = k_of > 0

    def residual(R, t, X, f):
        cam = np.einsum("nij,nj->ni", R[k_of], X[t_of]) + t[k_of]
        z = cam[:, 2]
        safe = np.where(z > 1e-6, z, 1e-6)
        r = f * cam[:, :2] / safe[:, None] + c - uv
        r[z <= 1e-6] = 1e3                     # behind the camera: a fixed large residual
        return r, cam, z > 1e-6

    def cost(r):
        return float(np.log1p((r ** 2).sum(1)).sum())

    r, cam, front = residual(R, t, X, f)
    current = cost(r)
    lam = 1e-3
    sigma_f = math.inf
    for it in range(iterations + 1):
        sq = (r ** 2).sum(1)
        w = np.where(front, 1.0 / (1.0 + sq), 0.0)
        x, y, z = cam[:, 0], cam[:, 1], np.where(front, cam[:, 2], 1.0)
        Jp = np.zeros((m, 2, 3))
        Jp[:, 0, 0] = f / z
        Jp[:, 0, 2] = -f * x / z ** 2
        Jp[:, 1, 1] = f / z
        Jp[:, 1, 2] = -f * y / z ** 2
        # A step (w, dt) moves a camera to exp([w]x) (R X + t) + dt: d cam / d w = -[cam]x.
        pose_block = np.concatenate([-Jp @ _skew(cam), Jp], 2)          # (m,2,6): rotation, translation
        pose_block[~posed] = 0.0
        if free_focal:
            Jc = np.concatenate([pose_block, np.stack([x / z, y / z], 1)[:, :, None]], 2)   # (m,2,7)
        else:
            Jc = pose_block
        # Camera-side column of each of an observation's Jacobian columns (keyframe 0's go to a
        # dummy column dropped below; f is the last column).
        col = np.where(posed, 6 * (k_of - 1), n_cam)[:, None] + np.arange(6)
        if free_focal:
            col = np.concatenate([col, np.full((m, 1), n_cam - 1)], 1)
        JX = Jp @ R[k_of]                                               # (m,2,3)
        wr = w[:, None] * r
        JXt = JX.transpose(0, 2, 1)
        Jct = Jc.transpose(0, 2, 1)
        Hpp = np.zeros((nt, 3, 3))
        np.add.at(Hpp, t_of, w[:, None, None] * (JXt @ JX))
        gp = np.zeros((nt, 3))
        np.add.at(gp, t_of, (JXt @ wr[:, :, None])[:, :, 0])
        Hcc = np.zeros((n_cam + 6, n_cam + 6))
        np.add.at(Hcc, (col[:, :, None], col[:, None, :]), w[:, None, None] * (Jct @ Jc))
        Hcc = Hcc[:n_cam, :n_cam]
        gc = np.zeros(n_cam + 6)
        np.add.at(gc, col, (Jct @ wr[:, :, None])[:, :, 0])
        gc = gc[:n_cam]
        B = np.zeros((nt, n_cam + 6, 3))
        np.add.at(B, (t_of[:, None], col), w[:, None, None] * (Jct @ JX))
        B = B[:, :n_cam]
        if it == iterations or (it > 0 and improvement < 1e-6 * max(current, 1.0)):
            break
        while True:
            Hpp_inv = np.linalg.inv(Hpp + lam * (np.einsum("nii->ni", Hpp)[:, :, None] * np.eye(3)) + 1e-9 * np.eye(3))
            BH = B @ Hpp_inv
            S = Hcc + lam * np.diag(np.diag(Hcc)) + 1e-9 * np.eye(n_cam) - (BH @ B.transpose(0, 2, 1)).sum(0)
            rhs = gc - (BH @ gp[:, :, None]).sum(0)[:, 0]
            try:
                dc = np.linalg.solve(S, -rhs)
            except np.linalg.LinAlgError:
                lam *= 10
                continue
            dX = -(Hpp_inv @ (gp + (B.transpose(0, 2, 1) @ dc))[:, :, None])[:, :, 0]
            d_pose = np.vstack([np.zeros(6), dc[:n_pose].reshape(-1, 6)])
            step = Rotation.from_rotvec(d_pose[:, :3]).as_matrix()
            R_new = step @ R
            t_new = np.einsum("nij,nj->ni", step, t) + d_pose[:, 3:]
            f_new = f + (dc[-1] if free_focal else 0.0)
            r_new, cam_new, front_new = residual(R_new, t_new, X + dX, f_new)
            trial = cost(r_new)
            if trial < current and f_new > 0:
                R, t, X, f, r, cam, front = R_new, t_new, X + dX, f_new, r_new, cam_new, front_new
                improvement = current - trial
                current = trial
                lam = max(lam / 3, 1e-9)
                break
            lam *= 4
            if lam > 1e8:
                improvement = 0.0
                break
    sq = (r ** 2).sum(1)
    # Noise variance per coordinate from the median squared residual (chi-square, 2 dof: median
    # 1.386 sigma^2), robust to the outliers the loss down-weights.
    noise = float(np.median(sq) / 1.386)
    if free_focal:
        # Covariance of f: the noise times the f entry of the inverse of the Schur complement
        # (points eliminated) at the solution; pseudo-inverse, as the scale is free.
        Hpp_inv = np.linalg.inv(Hpp + 1e-9 * np.eye(3))
        S = Hcc - (B @ Hpp_inv @ B.transpose(0, 2, 1)).sum(0)
        var = float(np.linalg.pinv(S, rcond=1e-12)[-1, -1]) * noise
        sigma_f = math.sqrt(var) if var > 0 else math.inf
    full = np.full((len(keep), 3), np.nan)
    full[keep] = X
    return current, m, noise, (Rotation.from_matrix(R).as_rotvec(), t, full, f), sigma_f


# An observation that a window's reconstruction at a candidate focal length leaves this far (px)
# from its point, or behind the camera, after a first adjustment is dropped and charged as a
# residual of this size: every candidate is scored on the same observations.
OUTLIER_PX = 8.0


def _reprojection_errors(obs: np.ndarray, f: float, width: int, height: int, solution) -> np.ndarray:
    """(K,T) reprojection error (px) of every observation (NaN where none; inf behind the camera)."""
    rvec, tvec, points = solution[:3]
    R = Rotation.from_rotvec(rvec).as_matrix()
    cam = np.einsum("kij,tj->kti", R, points) + tvec[:, None, :]
    z = cam[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = f * cam[..., :2] / z[..., None] + np.array([(width - 1) / 2.0, (height - 1) / 2.0])
        err = np.linalg.norm(uv - obs, axis=2)
    return np.where(z > 1e-6, err, np.inf)


def _fit_window(obs: np.ndarray, f: float, width: int, height: int, free_focal: bool = False):
    """One window reconstructed at focal length ``f`` and adjusted (_adjust) twice: the
    observations the first adjustment leaves more than OUTLIER_PX off (or behind the camera:
    a point triangulated from two views can lie behind a third, where the loss has no slope to
    pull it back) are dropped before the second, and charged at OUTLIER_PX in the score. None
    when the window cannot be reconstructed."""
    start = _initial_reconstruction(obs, _camera_matrix(f, width, height))
    if start is None:
        return None
    first = _adjust(obs, f, width, height, start, iterations=15)
    err = _reprojection_errors(obs, f, width, height, first[3])
    seen = np.isfinite(obs[:, :, 0])
    bad = seen & ~(err <= OUTLIER_PX)
    clean = obs.copy()
    clean[bad] = np.nan
    points = first[3][2].copy()
    points[np.isfinite(clean[:, :, 0]).sum(0) < 2] = np.nan
    clean[:, ~np.isfinite(points[:, 0])] = np.nan
    dropped = int(seen.sum() - np.isfinite(clean[:, :, 0]).sum())
    score, m, noise, solution, sigma = _adjust(clean, f, width, height, (first[3][0], first[3][1], points),
                                               free_focal=free_focal)
    return score + dropped * math.log1p(OUTLIER_PX ** 2), m, noise, solution, sigma


def estimate_window(obs: np.ndarray, prior: float, width: int, height: int, s: CalibrationSettings,
                    bar=None) -> dict:
    """Focal length of one window: a coarse sweep with f held fixed (each candidate reconstructed
    afresh, so a bad start at one f does not carry over), then bundle adjustments with f free
    from the best candidate and its neighbours; the lowest score wins. Returns a dict with
    focal_px (None when nothing could be reconstructed), sigma_px (standard error from the
    adjustment's Hessian; inf when flat), at_edge (the sweep's best at its end), score, sweep."""
    grid = np.exp(np.linspace(math.log(s.sweep[0] * prior), math.log(s.sweep[1] * prior), s.sweep_steps))
    scores = []
    for f in grid:
        fit = _fit_window(obs, float(f), width, height)
        scores.append(math.inf if fit is None else fit[0])
        if bar is not None:
            bar.update(1)
    scores = np.array(scores)
    sweep = [[round(float(f), 1), round(float(v), 1) if np.isfinite(v) else None] for f, v in zip(grid, scores)]
    if not np.isfinite(scores).any():
        if bar is not None:
            bar.update(4)
        return {"focal_px": None, "sigma_px": math.inf, "reason": "the window could not be reconstructed",
                "sweep": sweep}
    best = int(np.argmin(scores))
    if not sweep_has_one_minimum(scores):
        # Each candidate is reconstructed afresh: a score that goes down and up again on both
        # sides of its lowest point is the reconstructions' own scatter, not the focal length's
        # signal (seen on a straight highway: 7 % bumps, a "minimum" at half the true f).
        if bar is not None:
            bar.update(4)
        return {"focal_px": None, "sigma_px": math.inf, "reason": "the sweep's score is flat or has no single minimum "
                "(the reconstructions scatter more than the focal length changes them)",
                "sweep": sweep}
    refined = []
    for k in (best - 1, best, best + 1):
        if 0 <= k < len(grid) and np.isfinite(scores[k]):
            fit = _fit_window(obs, float(grid[k]), width, height, free_focal=True)
            if fit is not None and s.sweep[0] * prior <= fit[3][3] <= s.sweep[1] * prior:
                refined.append(fit)
        if bar is not None:
            bar.update(1)
    if not refined:
        if bar is not None:
            bar.update(1)
        return {"focal_px": None, "sigma_px": math.inf, "reason": "the adjustment with a free focal length left the "
                "range searched", "at_edge": True, "sweep": sweep}
    score, observations, noise, solution, sigma_hessian = min(refined, key=lambda fit: fit[0])
    f = float(solution[3])
    at_edge = bool(f <= grid[1] or f >= grid[-2])
    sigma_split = _split_half_sigma(obs, width, height, solution)
    if bar is not None:
        bar.update(1)
    return {"focal_px": f, "sigma_px": max(sigma_hessian, sigma_split), "sigma_hessian_px": sigma_hessian,
            "sigma_split_px": sigma_split, "score": score, "noise_px": math.sqrt(noise), "at_edge": at_edge,
            "observations": int(observations), "keyframes": int(obs.shape[0]), "tracks": int(obs.shape[1]),
            "sweep": sweep}


# A sweep's score may fall again by this share of its lowest value on its way up from the minimum
# (bundle adjustments stop at a tolerance; larger dips are the reconstructions' scatter).
SWEEP_DIP_TOLERANCE = 0.01
# The minimum's basin: the candidates around the lowest score that stay within this factor of it.
# Far from the minimum, reconstructions at a badly wrong focal length fail in their own ways and
# their scores jump about; only the basin has to be one smooth valley.
SWEEP_BASIN_FACTOR = 2.0


def sweep_has_one_minimum(scores: np.ndarray, tolerance: float = SWEEP_DIP_TOLERANCE,
                          basin_factor: float = SWEEP_BASIN_FACTOR) -> bool:
    """Whether the coarse sweep's scores (in focal order; inf where the window could not be
    reconstructed) have one minimum: within the basin of candidates around the lowest score that
    stay within ``basin_factor`` of it, the scores fall to the lowest and rise from it, allowing
    dips of ``tolerance`` times the lowest. (A shallow valley is fine: the adjustment with a free
    focal length and its standard error judge how sharp it is.)"""
    scores = np.asarray(scores, float)
    if np.isfinite(scores).sum() < 3:
        return False
    best = int(np.argmin(scores))
    low = float(scores[best])
    inside = scores <= basin_factor * low
    lo = best
    while lo > 0 and inside[lo - 1]:
        lo -= 1
    hi = best
    while hi < len(scores) - 1 and inside[hi + 1]:
        hi += 1
    basin = scores[lo:hi + 1]
    k = best - lo
    slack = tolerance * low
    return bool(np.all(np.diff(basin[k:]) >= -slack) and np.all(np.diff(basin[:k + 1][::-1]) >= -slack))


def _split_half_sigma(obs: np.ndarray, width: int, height: int, solution, splits: int = 2) -> float:
    """Standard error of f from the tracks themselves: the tracks split at random into halves,
    f adjusted on each half from the solution; for independent halves var(f1 - f2) is four times
    the variance of the estimate on all tracks. The Hessian's error assumes every observation's
    error independent; a track's errors along its length are not (it drifts), which this sees."""
    rvec, tvec, points, f = solution
    rng = np.random.default_rng(0)
    usable = np.nonzero(np.isfinite(points[:, 0]))[0]
    diffs = []
    for _ in range(splits):
        half = rng.permutation(usable)
        estimates = []
        for part in (half[: len(half) // 2], half[len(half) // 2:]):
            pts = np.full_like(points, np.nan)
            pts[part] = points[part]
            estimates.append(_adjust(obs, f, width, height, (rvec, tvec, pts), iterations=20, free_focal=True)[3][3])
        diffs.append(estimates[0] - estimates[1])
    return float(np.sqrt(np.mean(np.square(diffs))) / 2)


def estimate_focal(load: Callable[[int], np.ndarray], count: int, width: int, height: int, prior_px: float,
                   settings: CalibrationSettings | None = None) -> FocalEstimate:
    """Focal length (px, square pixels, principal point at the centre) of ``count`` frames of
    ``width`` x ``height`` read by ``load(i)`` (RGB or grey): a FocalEstimate that is
    constrained only when the footage pins it down (see the module's description)."""
    s = settings or CalibrationSettings()
    if count < 3:
        raise InputError(f"self-calibration needs at least 3 frames, the input has {count}",
                         "give --intrinsics or --fov")
    n_win = max(1, min(s.windows, count // max(s.window_frames // 2, 1)))
    length = min(s.window_frames, count)
    starts = np.linspace(0, count - length, n_win).round().astype(int) if n_win > 1 else np.array([0])
    results = []
    evals_per_window = s.sweep_steps + 4
    with progress(total=n_win * evals_per_window, desc="self-calibration (focal sweep)", unit="BA") as bar:
        for start in starts:
            keyframes, obs = track_window(load, list(range(start, start + length)), s)
            if len(keyframes) < 3 or obs.shape[1] < 30:
                results.append({"frames": [int(start), int(start + length - 1)], "focal_px": None,
                                "sigma_px": math.inf, "reason": f"{len(keyframes)} keyframes, {obs.shape[1]} tracks "
                                "(too little motion or texture)"})
                bar.update(evals_per_window)
                continue
            r = estimate_window(obs, prior_px, width, height, s, bar)
            r["frames"] = [int(start), int(start + length - 1)]
            results.append(r)
    return combine_windows(results, prior_px, width, height)


def combine_windows(results: list[dict], prior_px: float, width: int, height: int) -> FocalEstimate:
    """The windows' estimates combined by inverse variance; the uncertainty is the larger of the
    combined standard error and the spread between windows. Not constrained (None) when no window
    has a usable estimate, or the relative uncertainty exceeds MAX_RELATIVE_UNCERTAINTY and either
    exceeds MAX_USABLE_RELATIVE_UNCERTAINTY or leaves the prior within PRIOR_REJECTED_SIGMAS."""
    windows = [{k: (round(v, 3) if isinstance(v, float) and math.isfinite(v) else v) for k, v in r.items()}
               for r in results]
    usable = [r for r in results if r.get("focal_px") is not None and not r.get("at_edge")
              and math.isfinite(r["sigma_px"]) and r["sigma_px"] > 0]
    if not usable:
        edge = any(r.get("at_edge") for r in results)
        why = ("the best focal length lies at the edge of the range searched" if edge else
               "the score is flat: the camera barely turns (forward motion alone does not fix the focal length)"
               if any(r.get("focal_px") is not None or "flat" in r.get("reason", "") for r in results) else
               "no window could be reconstructed (too little motion or texture)")
        return FocalEstimate(None, math.inf, prior_px, width, height, why, windows)
    reconstructed = [r for r in results if r.get("focal_px") is not None or "sweep" in r]
    if len(usable) * 2 <= len(reconstructed) and len(reconstructed) > 1:
        # Windows are independent looks at one camera: when most of those that could be
        # reconstructed find no minimum (or one at the edge), the one that did is not evidence.
        return FocalEstimate(None, math.inf, prior_px, width, height,
                             f"only {len(usable)} of {len(reconstructed)} reconstructed windows find a focal length "
                             "(the others: no single minimum or at the edge of the range)", windows)
    f = np.array([r["focal_px"] for r in usable])
    sig = np.array([r["sigma_px"] for r in usable])
    w = 1.0 / sig ** 2
    mean = float((w * f).sum() / w.sum())
    sigma = float(math.sqrt(1.0 / w.sum()))
    if len(f) > 1:
        spread = float(np.std(f, ddof=1) / math.sqrt(len(f)))
        sigma = max(sigma, spread)
    if sigma > MAX_RELATIVE_UNCERTAINTY * mean:
        loose = f"{mean:.1f} +- {sigma:.1f} px ({100 * sigma / mean:.0f} %; the camera turns little)"
        if sigma <= MAX_USABLE_RELATIVE_UNCERTAINTY * mean and abs(prior_px - mean) > PRIOR_REJECTED_SIGMAS * sigma:
            return FocalEstimate(mean, sigma, prior_px, width, height,
                                 f"uncertain: {loose}, but the prior {prior_px:.1f} px is "
                                 f"{abs(prior_px - mean) / sigma:.0f} standard errors away", windows)
        return FocalEstimate(None, sigma, prior_px, width, height, f"the score is too flat: {loose}", windows)
    return FocalEstimate(mean, sigma, prior_px, width, height,
                         f"{len(usable)} of {len(results)} window(s) agree", windows)
