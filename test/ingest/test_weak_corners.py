"""Corners in a room of blank walls (issue 26 item 5, placement): the corner floor is relative to
the image's strongest corner, so one saturated object raised it above all the room's other
texture; a frame with too few corners to track with now gets weaker ones, and the rooms' first
frames are placed."""
import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from inspatio_ros.camera import load_camera_info  # noqa: E402
from inspatio_ros.ingest.features import detect_spread  # noqa: E402
from inspatio_ros.ingest.odometry import OdometrySettings, ate_rel, estimate_poses  # noqa: E402
from inspatio_ros.ingest.sources import open_input  # noqa: E402
from inspatio_ros.posefile import read_poses  # noqa: E402
from inspatio_ros.synth.generate import generate  # noqa: E402


def _room_with_a_toy(weak_contrast: float) -> np.ndarray:
    """A grey wall with faint blotches (``weak_contrast`` grey levels) and one black-and-yellow
    checkered toy in the corner: the toy's corners are ~1000x stronger than the wall's."""
    rng = np.random.default_rng(0)
    h, w = 180, 320
    blotches = cv2.GaussianBlur(rng.normal(size=(h, w)), (0, 0), 3.0)
    wall = 128 + weak_contrast * blotches / blotches.std()
    wall[10:50, 10:50] = np.kron((np.indices((4, 4)).sum(0) % 2) * 220 + 20, np.ones((10, 10)))
    return np.clip(wall, 0, 255).astype(np.uint8)


def test_a_strong_object_does_not_leave_the_rest_of_the_image_without_corners():
    gray = _room_with_a_toy(weak_contrast=4.0)
    none = np.zeros((0, 2))
    fixed = detect_spread(cv2, gray, none, 400, 8, 0.01, floor=0.003)
    lowered = detect_spread(cv2, gray, none, 400, 8, 0.01, floor=0.003, enough=150, lowest_floor=1e-4)
    on_wall = lambda pts: int(((pts[:, 0] > 60) | (pts[:, 1] > 60)).sum())  # noqa: E731
    # The fixed floor keeps the toy's corners and almost none of the wall's.
    assert on_wall(fixed) < 5 and len(fixed) > 5, (on_wall(fixed), len(fixed))
    # Lowered until there are enough: the wall's texture carries the tracking, spread over the image.
    assert len(lowered) >= 150 and on_wall(lowered) > 100, (len(lowered), on_wall(lowered))
    bands = np.histogram(lowered[:, 0], bins=4, range=(0, gray.shape[1]))[0]
    assert bands.min() > 0.1 * len(lowered) / 4, bands
    # The toy's own corners are all still there.
    toy = lambda pts: {tuple(p) for p in np.round(pts[(pts[:, 0] < 60) & (pts[:, 1] < 60)], 1)}  # noqa: E731
    assert toy(fixed) <= toy(lowered)


def test_the_floor_stays_where_there_are_enough_corners_and_never_goes_below_the_lowest():
    textured = _room_with_a_toy(weak_contrast=60.0)
    none = np.zeros((0, 2))
    fixed = detect_spread(cv2, textured, none, 400, 8, 0.01, floor=0.003)
    assert len(fixed) >= 150
    same = detect_spread(cv2, textured, none, 400, 8, 0.01, floor=0.003, enough=150, lowest_floor=1e-4)
    np.testing.assert_array_equal(fixed, same)
    # A blank wall (no texture at all, only the toy): lowering cannot invent corners on a flat image.
    blank = _room_with_a_toy(weak_contrast=0.0)
    lowest = detect_spread(cv2, blank, none, 400, 8, 0.01, floor=0.003, enough=150, lowest_floor=1e-4)
    assert len(lowest) < 150
    assert np.all((lowest[:, 0] < 60) & (lowest[:, 1] < 60)), lowest
    # Existing corners count towards enough: a refill with plenty tracked does not lower the floor.
    weak = _room_with_a_toy(weak_contrast=4.0)
    plenty = np.stack(np.meshgrid(np.arange(70, 310, 12.0), np.arange(70, 175, 12.0)), -1).reshape(-1, 2)
    assert len(plenty) >= 150
    refill = detect_spread(cv2, weak, plenty, 100, 8, 0.01, floor=0.003, enough=150, lowest_floor=1e-4)
    np.testing.assert_array_equal(refill, detect_spread(cv2, weak, plenty, 100, 8, 0.01, floor=0.003))


@pytest.mark.slow
def test_a_turning_robot_in_a_blank_room_is_placed_from_its_first_frame(tmp_path):
    """Synthetic room seed 12 (a toy box in front, the camera turning ~4 degrees a frame): with the
    fixed floor 72 corners, fewer than 50 survive to the start's parallax and frames 0-3 were left
    unplaced (0-8 from the video); now every frame is placed, on the true path."""
    generate("indoor", tmp_path, size=(640, 360), frames=12, moving_cars=1, seed=12, device="cpu")
    fs = open_input(tmp_path)
    intr = load_camera_info(tmp_path / "camera_info.yaml")
    truth, _ = read_poses(tmp_path / "poses_tum.txt")
    before = estimate_poses(fs.load, len(fs), intr, OdometrySettings(enough_corners_factor=0.0), progress_bar=False)
    assert not before.located[:4].any(), before.warnings      # the scene still needs the change
    res = estimate_poses(fs.load, len(fs), intr, progress_bar=False)
    assert res.located.all(), res.warnings
    assert len(res.segments) == 1
    assert ate_rel(res.c2w, truth) < 0.02
