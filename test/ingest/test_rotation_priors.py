"""Keyframe-to-keyframe rotation priors for the monocular bundle adjustment: the two-view fit is
refined on its inliers and weighted by its own uncertainty, and a prior far off its sigma fades
(Huber) instead of bending the path."""
import numpy as np
import pytest

from inspatio_ros.ingest.odometry import (PRIOR_KNEE_SIGMA, BundleAdjustmentProblem, refine_relative_pose,
                                          rotations_of, sampson_px)

from test_bundle_adjustment import K, _central_differences, _relative_rotations, _scene

cv2 = pytest.importorskip("cv2")


def _two_views(rng, noise_px):
    """Points 5-60 m ahead of camera a; camera b 1 m on and turned 2 degrees (a curve)."""
    X = rng.uniform([-15, -3, 5], [15, 2, 60], (300, 3))
    R = rotations_of(np.radians([[0.3, 2.0, -0.2]]))[0]            # camera a -> camera b coordinates
    t = np.array([0.05, 0.0, -1.0])                                 # x_b = R x_a + t
    pa = X[:, :2] / X[:, 2:] * K[[0, 1], [0, 1]] + K[:2, 2]
    Xb = X @ R.T + t
    pb = Xb[:, :2] / Xb[:, 2:] * K[[0, 1], [0, 1]] + K[:2, 2]
    return R, t / np.linalg.norm(t), pa + rng.normal(0, noise_px, pa.shape), pb + rng.normal(0, noise_px, pb.shape)


def test_sampson_distance_is_zero_on_the_epipolar_geometry_and_in_pixels():
    rng = np.random.default_rng(0)
    R, t, pa, pb = _two_views(rng, 0.0)
    assert np.abs(sampson_px(K, R, t, pa, pb)).max() < 1e-6
    # Moved along its epipolar line a point stays on it; moved d px across, its Sampson distance
    # grows with d, signed, and is below d (the least correction shares d between both images)
    # but above d / 2 (here both images' lines are alike).
    F = np.linalg.inv(K).T @ (np.cross(np.eye(3), t) @ R) @ np.linalg.inv(K)
    line = F @ np.r_[pa[0], 1.0]
    normal = line[:2] / np.linalg.norm(line[:2])
    along = np.array([-normal[1], normal[0]])
    assert abs(sampson_px(K, R, t, pa[:1], pb[:1] + 3.0 * along)[0]) < 0.05
    d2, d4, dm = (sampson_px(K, R, t, pa[:1], pb[:1] + d * normal)[0] for d in (2.0, 4.0, -2.0))
    assert 1.0 < d2 < 2.0 and abs(d4 - 2 * d2) < 0.02 and abs(dm + d2) < 0.02


def test_refinement_recovers_the_rotation_and_its_covariance_is_honest():
    """Started 0.5 degrees off (what a five-point RANSAC sample gives), Gauss-Newton on the
    inliers returns the rotation within its stated uncertainty; over 20 noise draws the
    normalised errors average ~3 (chi-square, three axes), neither far over (overconfident: the
    prior would bend the path) nor far under."""
    chi2 = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        R, t, pa, pb = _two_views(rng, 0.5)
        start = rotations_of(np.radians([[0.3, -0.4, 0.2]]))[0] @ R
        R_fit, t_fit, cov = refine_relative_pose(K, start, t + [0.02, -0.01, 0.0], pa, pb)
        err = cv2.Rodrigues(R @ R_fit.T)[0].ravel()
        assert np.degrees(np.linalg.norm(err)) < 0.1
        assert np.degrees(np.arccos(np.clip(t_fit @ t, -1, 1))) < 2.0
        chi2.append(err @ np.linalg.solve(cov, err))
    assert 1.0 < np.mean(chi2) < 6.0, np.mean(chi2)


def test_weighted_robust_priors_have_an_exact_jacobian_and_a_far_prior_fades():
    rng = np.random.default_rng(3)
    poses, pts, obs = _scene(rng, noise_px=1.0)
    rel = _relative_rotations(poses, [(10, 11), (11, 12), (12, 13), (13, 14)], rng, 0.002)
    # Per-prior square-root information (anisotropic), and one prior 20 degrees off.
    weights = {key: np.diag([400.0, 250.0, 600.0]) + 30.0 * rng.normal(size=(3, 3)) for key in rel}
    rel[(12, 13)] = rotations_of(np.radians([[0.0, 20.0, 0.0]]))[0] @ rel[(12, 13)]
    priors = {key: (R, weights[key]) for key, R in rel.items()}
    problem = BundleAdjustmentProblem(K, dict(poses), {10, 11}, pts, obs, priors, 1.0)
    x = problem.x0 + rng.normal(0, 1e-3, problem.x0.shape)
    res = problem.residuals(x)
    prior_res = res[2 * len(obs):].reshape(-1, 3)
    assert (np.abs(prior_res) > PRIOR_KNEE_SIGMA).any() and (np.abs(prior_res) < PRIOR_KNEE_SIGMA).any()
    analytic = problem.jacobian(x).toarray()
    numeric = _central_differences(problem.residuals, x)
    scale = np.maximum(np.abs(numeric).max(axis=1, keepdims=True), 1e-4 * np.abs(numeric).max())
    assert (np.abs(analytic - numeric) / scale).max() < 1e-6
    # The far prior's cost grows linearly (Huber), not with the square of its 20 degrees.
    far = prior_res[list(rel).index((12, 13))]
    whitened = weights[(12, 13)] @ cv2.Rodrigues(
        rel[(12, 13)].T @ (poses[13][:3, :3].T @ poses[12][:3, :3]))[0].ravel()
    assert np.sum(far ** 2) < 0.2 * np.sum(whitened ** 2)
