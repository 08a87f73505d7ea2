"""The bundle adjustment's analytic Jacobian against central finite differences, and the
adjustment itself on a small problem with a known answer."""
import numpy as np
import pytest

from inspatio_ros.ingest.odometry import (BundleAdjustmentProblem, bundle_adjust,
                                          bundle_adjustment_jacobian_sparsity, project_points,
                                          rotation_left_jacobians, rotations_of)

K = np.array([[300.0, 0, 160], [0, 310.0, 120], [0, 0, 1]])


def _c2w_of(rvec, tvec):
    """Camera-to-world 4x4 of a world->camera rotation vector and translation."""
    R = rotations_of(np.asarray(rvec, np.float64)[None])[0]
    out = np.eye(4)
    out[:3, :3], out[:3, 3] = R.T, -R.T @ tvec
    return out


def _central_differences(fun, x, step=1e-6):
    cols = []
    for i in range(len(x)):
        e = np.zeros_like(x)
        e[i] = step
        cols.append((fun(x + e) - fun(x - e)) / (2 * step))
    return np.stack(cols, axis=1)


def _scene(rng, n_kf=5, n_pts=30, noise_px=0.0, outliers=0):
    """Cameras along +z looking at points ahead, random rotations of up to ~0.3 rad (one keyframe
    with a near-zero rotation, where the closed forms switch to series), observations of every
    point by every keyframe (pixel noise, some gross outliers beyond the Huber knee)."""
    poses, rvecs = {}, {}
    for k in range(n_kf):
        r = rng.normal(0, 0.15, 3) if k != 2 else rng.normal(0, 1e-6, 3)
        t = np.array([0.2 * k, 0.05 * k, -0.5 * k]) + rng.normal(0, 0.05, 3)
        rvecs[k] = r
        poses[10 + k] = _c2w_of(r, t)
    pts = {100 + i: p for i, p in enumerate(rng.uniform([-3, -2, 6], [3, 2, 15], (n_pts, 3)))}
    obs = []
    for k, c2w in poses.items():
        uv, z = project_points(K, c2w, np.array(list(pts.values())))
        assert (z > 0).all()
        uv = uv + rng.normal(0, noise_px, uv.shape) if noise_px else uv
        obs += [(k, p, float(u), float(v)) for p, (u, v) in zip(pts, uv)]
    for i in rng.choice(len(obs), outliers, replace=False):
        k, p, u, v = obs[i]
        obs[i] = (k, p, u + 25.0, v - 30.0)
    return poses, pts, obs


def _relative_rotations(poses, pairs, rng, noise_rad):
    out = {}
    for a, b in pairs:
        Ra, Rb = poses[a][:3, :3].T, poses[b][:3, :3].T          # world->camera
        noise = rotations_of(rng.normal(0, noise_rad, (1, 3)))[0]
        out[(a, b)] = noise @ Rb @ Ra.T
    return out


def test_rotations_and_left_jacobians_match_opencv_and_differences():
    import cv2

    rng = np.random.default_rng(0)
    r = np.concatenate([rng.normal(0, 1.0, (6, 3)), rng.normal(0, 1e-7, (2, 3)), np.zeros((1, 3))])
    R = rotations_of(r)
    for ri, Ri in zip(r, R):
        np.testing.assert_allclose(Ri, cv2.Rodrigues(ri)[0], atol=1e-12)
    J = rotation_left_jacobians(r)
    x = rng.normal(size=3)
    for ri, Ji in zip(r, J):
        numeric = _central_differences(lambda v: rotations_of(v[None])[0] @ x, ri)
        analytic = -np.cross(np.eye(3), rotations_of(ri[None])[0] @ x) @ Ji     # -[R x]x J
        np.testing.assert_allclose(analytic, numeric, atol=1e-8)


@pytest.mark.parametrize("with_priors", [False, True])
def test_analytic_jacobian_equals_finite_differences(with_priors):
    rng = np.random.default_rng(7)
    poses, pts, obs = _scene(rng, noise_px=2.0, outliers=6)
    # Perturb the start so the residuals are neither zero nor all inside the Huber knee.
    pts = {p: v + rng.normal(0, 0.05, 3) for p, v in pts.items()}
    rel = _relative_rotations(poses, [(10, 11), (11, 12), (12, 13), (13, 14), (12, 12)], rng, 0.02) \
        if with_priors else None
    problem = BundleAdjustmentProblem(K, dict(poses), {10, 11}, pts, obs, rel, 0.5 / 300.0 if with_priors else 0.0)
    assert problem.loss == ("linear" if with_priors else "huber")
    x = problem.x0 + rng.normal(0, 1e-3, problem.x0.shape)
    res = problem.residuals(x)
    if with_priors:
        assert (np.abs(res[:2 * len(obs)]) > 1.5).any() and (np.abs(res[:2 * len(obs)]) < 1.5).any()
    analytic = problem.jacobian(x).toarray()
    numeric = _central_differences(problem.residuals, x)
    assert analytic.shape == numeric.shape == (len(res), len(x))
    # Each residual row on its own scale; the self-prior (12, 12) is constant, its rows are ~0 up
    # to the differences' rounding (~1e-9), so rows are floored at 1e-4 of the largest entry.
    scale = np.maximum(np.abs(numeric).max(axis=1, keepdims=True), 1e-4 * np.abs(numeric).max())
    rel_err = np.abs(analytic - numeric) / scale
    assert rel_err.max() < 1e-6, rel_err.max()
    # The analytic Jacobian fills only entries the sparsity pattern names.
    pattern = bundle_adjustment_jacobian_sparsity(len(obs), problem.o_kf, problem.o_pt, problem.kf_col,
                                                  problem.priors, len(x)).toarray()
    assert not (analytic[pattern == 0] != 0).any()


def test_bundle_adjustment_recovers_perturbed_poses_and_points():
    """Keyframes 10 and 11 fixed (they carry the scale); the others and every landmark start off
    by ~1-2 % and are pulled back to the truth through noise-free observations, with and without
    rotation priors (Huber without priors needs ~80 evaluations here, hence 200)."""
    rng = np.random.default_rng(11)
    truth, pts, obs = _scene(rng, n_kf=6, n_pts=40)
    rel = _relative_rotations(truth, [(10, 11), (11, 12), (12, 13), (13, 14), (14, 15)], rng, 0.0)
    start = {k: c2w.copy() for k, c2w in truth.items()}
    for k in (12, 13, 14, 15):
        start[k][:3, 3] += rng.normal(0, 0.05, 3)
        start[k][:3, :3] = rotations_of(rng.normal(0, 0.01, (1, 3)))[0] @ start[k][:3, :3]
    start_pts = {p: v + rng.normal(0, 0.1, 3) for p, v in pts.items()}
    for priors in (None, rel):
        poses, points = bundle_adjust(K, {k: v.copy() for k, v in start.items()}, {10, 11}, dict(start_pts), obs,
                                       iterations=200, rel_rot=priors, rot_sigma_rad=1.0 / 300.0 if priors else 0.0)
        for k in truth:
            np.testing.assert_allclose(poses[k], truth[k], atol=1e-5)
        for p in pts:
            np.testing.assert_allclose(points[p], pts[p], atol=1e-4)
