"""A new segment that relocalisation could not avoid is joined to the one before it: one
trajectory, one scale (issue 26 item 2)."""
import numpy as np
import pytest

pytest.importorskip("cv2")

from inspatio_ros.camera import load_camera_info  # noqa: E402
from inspatio_ros.ingest.odometry import (OdometrySettings, ate_rel, estimate_poses,  # noqa: E402
                                          join_segments_by_motion)
from inspatio_ros.ingest.sources import open_input  # noqa: E402
from inspatio_ros.posefile import read_poses  # noqa: E402
from inspatio_ros.synth.generate import generate  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def street(tmp_path_factory):
    out = tmp_path_factory.mktemp("join_street")
    generate("street", out, size=(320, 180), frames=24, moving_cars=0, seed=3)
    return out


def test_a_forced_break_ends_as_one_trajectory_with_one_scale(street):
    """Frames 10-12 blank and relocalisation allowed one frame only (on footage where nothing
    can be matched across the gap): tracking is lost at 10, a new segment starts after the gap
    with a scale of its own, and is joined back by motion continuity. Without the join: two
    segments (scaled each on its own, the path stalls over the gap)."""
    fs = open_input(street)
    blank = np.full_like(fs.load(0), 128)

    def load(i):
        return blank if 10 <= i < 13 else fs.load(i)
    intr = load_camera_info(street / "camera_info.yaml")
    gt, _ = read_poses(street / "poses_tum.txt")
    apart = estimate_poses(load, len(fs), intr, OdometrySettings(relocalise_frames=1, join_segments=False),
                           progress_bar=False)
    assert len(apart.segments) == 2, apart.warnings
    res = estimate_poses(load, len(fs), intr, OdometrySettings(relocalise_frames=1), progress_bar=False)
    assert len(res.segments) == 1 and any("joined" in w for w in res.warnings), res.warnings
    placed = res.located
    assert not placed[10:13].any() and placed.sum() >= len(fs) - 4
    assert ate_rel(res.c2w[placed], gt[placed]) < 0.01
    # One scale: steps after the gap as long as before it, and the jump over the gap as long as
    # the frames it spans (constant speed here).
    steps = np.linalg.norm(np.diff(res.c2w[:, :3, 3], axis=0), axis=1)
    true = np.linalg.norm(np.diff(gt[:, :3, 3], axis=0), axis=1)
    before, after = np.median(steps[2:9]), np.median(steps[15:])
    assert abs((after / before) / (np.median(true[15:]) / np.median(true[2:9])) - 1) < 0.05
    first_after = int(np.nonzero(placed[13:])[0][0]) + 13
    jump = np.linalg.norm(res.c2w[first_after, :3, 3] - res.c2w[9, :3, 3])
    true_jump = np.linalg.norm(gt[first_after, :3, 3] - gt[9, :3, 3])
    assert abs(jump / before / (true_jump / np.median(true[2:9])) - 1) < 0.1


def _circle_with_a_break(n=30, step=1.0, turn=np.radians(2.0)):
    """A camera on a circle (2 degrees and 1 m per frame), frames 10-13 missing; the second
    segment (from 14) starts at the held pose of frame 9 with a 0.3x scale and no turn over the
    gap. (truth, c2w, located)."""
    true = np.tile(np.eye(4), (n, 1, 1))
    for i in range(n):
        a = turn * i
        true[i, :3, :3] = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
        r = step / turn
        true[i, :3, 3] = [r * np.sin(a), r * (1 - np.cos(a)), 0]
    located = np.ones(n, bool)
    located[10:14] = False
    c2w = true.copy()
    c2w[10:14] = true[9]
    # Second segment: its own frame (starts at frame 9's pose, relative motion scaled by 0.3).
    rel = np.linalg.inv(true[14]) @ true[14:]
    rel[:, :3, 3] *= 0.3
    c2w[14:] = true[9] @ rel
    return true, c2w, located


def test_motion_join_continues_a_turning_path_at_the_old_speed():
    """The join puts the second segment back on the circle, at the first one's speed."""
    n = 30
    true, c2w, located = _circle_with_a_break(n)
    landmarks = {5: np.array([3.0, 1.0, 0.0]), 50: c2w[20, :3, 3] + 0.3 * np.array([1.0, 0.0, 0.0])}
    warnings: list[str] = []
    segments = join_segments_by_motion(c2w, located, [(0, 9), (14, n - 1)], [0, 40], landmarks, {}, 5, warnings)
    assert segments == [(0, n - 1)] and "joined" in warnings[0]
    np.testing.assert_allclose(c2w[14:, :3, 3], true[14:, :3, 3], atol=1e-6)
    np.testing.assert_allclose(c2w[14:, :3, :3], true[14:, :3, :3], atol=1e-9)
    np.testing.assert_allclose(landmarks[5], [3.0, 1.0, 0.0])                       # old segment's: unmoved
    np.testing.assert_allclose(landmarks[50], true[20, :3, 3] + true[14, :3, :3] @ true[9, :3, :3].T @ [1.0, 0, 0],
                               atol=1e-6)


def test_a_metric_segment_keeps_its_scale_when_joined():
    """RGB-D segments are in metres already: the join moves and turns the new one, never
    rescales it."""
    true, c2w, located = _circle_with_a_break()
    steps_before = np.linalg.norm(np.diff(c2w[14:, :3, 3], axis=0), axis=1)
    warnings: list[str] = []
    join_segments_by_motion(c2w, located, [(0, 9), (14, 29)], [0, 40], {}, {}, 5, warnings, metric=True)
    np.testing.assert_allclose(np.linalg.norm(np.diff(c2w[14:, :3, 3], axis=0), axis=1), steps_before, rtol=1e-9)
    np.testing.assert_allclose(c2w[14, :3, 3], true[14, :3, 3], atol=1e-6)
