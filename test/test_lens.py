"""Distortion models against OpenCV: projection both ways, maps, and bad entries."""
import cv2
import numpy as np
import pytest

from inspatio_ros.errors import InputError
from inspatio_ros.lens import Lens, covering_pinhole, distorted_rays, inscribed_pinhole, rectify_map

K = np.array([[400.0, 0.0, 318.3], [0.0, 410.0, 181.7], [0.0, 0.0, 1.0]])
SIZE = (640, 360)
PINHOLE_LENSES = [
    Lens.parse("plumb_bob", [-0.28, 0.09, 0.0012, -0.0008, -0.012]),          # barrel, a dash camera
    Lens.parse("plumb_bob", [0.12, -0.03, -0.001, 0.0015, 0.004]),           # pincushion
    Lens.parse("rational_polynomial", [2.1, 0.45, 0.0009, -0.0011, 0.012, 2.4, 1.1, 0.06]),
]
FISHEYE = Lens.parse("equidistant", [0.031, -0.012, 0.0021, -0.0003], fov_deg=190.0)


def _rays(count, max_angle_deg, seed):
    rng = np.random.default_rng(seed)
    theta = np.radians(max_angle_deg) * np.sqrt(rng.uniform(0, 1, count))
    phi = rng.uniform(0, 2 * np.pi, count)
    return np.stack([np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi), np.cos(theta)], 1)


@pytest.mark.parametrize("lens", PINHOLE_LENSES, ids=lambda l: l.model)
def test_pinhole_models_project_like_cv2_projectPoints(lens):
    rays = _rays(2000, 40, 1)
    xy_d, valid = lens.project_rays(rays)
    assert valid.all()
    ours = xy_d @ K[:2, :2].T + K[:2, 2]
    cv, _ = cv2.projectPoints(rays.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), K, np.array(lens.D))
    np.testing.assert_allclose(ours, cv.reshape(-1, 2), atol=1e-6)


def test_equidistant_projects_like_cv2_fisheye_and_beyond_90_degrees():
    rays = _rays(2000, 85, 2)
    xy_d, valid = FISHEYE.project_rays(rays)
    assert valid.all()
    ours = xy_d @ K[:2, :2].T + K[:2, 2]
    cv, _ = cv2.fisheye.projectPoints(rays.reshape(-1, 1, 3), np.zeros(3), np.zeros(3), K, np.array(FISHEYE.D))
    np.testing.assert_allclose(ours, cv.reshape(-1, 2), atol=1e-6)
    # A ray 94 degrees off axis (behind the image plane) is still imaged by a 190 degree lens,
    # one at 96 degrees is not.
    side = np.array([[np.sin(np.radians(a)), 0.0, np.cos(np.radians(a))] for a in (94.0, 96.0)])
    assert FISHEYE.project_rays(side)[1].tolist() == [True, False]


@pytest.mark.parametrize("lens", PINHOLE_LENSES + [FISHEYE], ids=lambda l: l.model)
def test_unproject_inverts_projection_and_matches_cv2_undistortPoints(lens):
    rays = _rays(3000, 94 if lens.is_fisheye else 38, 3)
    xy_d, valid = lens.project_rays(rays)
    back, ok = lens.unproject(xy_d)
    assert (ok == valid).all() and valid.all()
    np.testing.assert_allclose(back, rays, atol=1e-8)
    front = rays[:, 2] > 0.2
    pix = (xy_d[front] @ K[:2, :2].T + K[:2, 2]).reshape(-1, 1, 2)
    if lens.is_fisheye:
        cv = cv2.fisheye.undistortPoints(pix, K, np.array(lens.D),
                                         criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-12))
    else:
        cv = cv2.undistortPoints(pix, K, np.array(lens.D), None, None,
                                     criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12))
    ours, ok = lens.undistort(xy_d[front])
    assert ok.all()
    np.testing.assert_allclose(ours, cv.reshape(-1, 2), atol=1e-6)


def test_points_beyond_the_fold_are_refused_not_misplaced():
    strong = Lens.parse("plumb_bob", [-0.5, 0.0, 0.0, 0.0, 0.0])   # r (1 - 0.5 r^2) peaks at r = 0.816
    r_peak = np.sqrt(1 / 1.5)
    inside = np.array([[0.9 * r_peak * (1 - 0.5 * (0.9 * r_peak) ** 2), 0.0]])
    beyond = np.array([[0.6, 0.0]])                                # above the peak value 0.544
    assert strong.unproject(inside)[1].all()
    rays, ok = strong.unproject(beyond)
    assert not ok.any() and np.isnan(rays).all()
    assert not strong.project_rays(np.array([[1.0, 0.0, 1.0]]))[1].any()   # r = 1 lies past the fold


def test_rectify_map_agrees_with_cv2_initUndistortRectifyMap():
    lens = PINHOLE_LENSES[0]
    K_new = inscribed_pinhole(K, lens, SIZE)
    mx, my = rectify_map(K, lens, K_new, SIZE)
    cx, cy = cv2.initUndistortRectifyMap(K, np.array(lens.D), None, K_new, SIZE, cv2.CV_32FC1)
    np.testing.assert_allclose(mx, cx, atol=2e-3)
    np.testing.assert_allclose(my, cy, atol=2e-3)
    # Inscribed: every rectified pixel comes from inside the source image, and the view is
    # the largest such (a border pixel of the map lies on the source border).
    assert mx.min() >= -0.01 and mx.max() <= SIZE[0] - 0.99 and my.min() >= -0.01 and my.max() <= SIZE[1] - 0.99
    touches = min(mx.min(), my.min(), SIZE[0] - 1 - mx.max(), SIZE[1] - 1 - my.max())
    assert touches < 0.05


def test_covering_pinhole_holds_every_distorted_pixel_ray():
    for lens in PINHOLE_LENSES:
        K_r, (w, h) = covering_pinhole(K, lens, SIZE)
        rays, valid = distorted_rays(K, lens, SIZE)
        assert valid.all()
        u = rays[..., 0] / rays[..., 2] * K_r[0, 0] + K_r[0, 2]
        v = rays[..., 1] / rays[..., 2] * K_r[1, 1] + K_r[1, 2]
        assert u.min() >= 1.0 and v.min() >= 1.0 and u.max() <= w - 2.0 and v.max() <= h - 2.0
        assert K_r[0, 0] <= K[0, 0] + 1e-9


@pytest.mark.parametrize("model, D, fov, message", [
    ("plumb_bobb", [0] * 5, None, "did you mean 'plumb_bob'"),
    ("fisheye", [0] * 4, None, "unknown distortion model"),
    ("plumb_bob", [0.1, 0.0, 0.0, 0.0], None, "takes 5 coefficients"),
    ("rational_polynomial", [0.0] * 5, None, "takes 8 coefficients"),
    ("equidistant", [0.0] * 4, 200.0, "at most 190"),
    ("equidistant", [0.0] * 4, 0.0, "field of view"),
    ("equidistant", [0.0] * 4, -10.0, "field of view"),
    ("plumb_bob", [0.0] * 5, 120.0, "fov_deg is for the equidistant"),
    ("plumb_bob", "0,0,0,0,0", None, "not a list of numbers"),
    ("plumb_bob", [float("nan")] + [0.0] * 4, None, "NaN"),
    ("plumb_bob", [-1e6, 0.0, 0.0, 0.0, 0.0], None, "folds back"),
])
def test_bad_entries_get_one_clear_error(model, D, fov, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(")) as err:
        Lens.parse(model, D, "cameras.front", fov)
    assert "cameras.front" in str(err.value)
