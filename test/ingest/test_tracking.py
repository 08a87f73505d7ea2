"""Tracking that holds (issue 26 items 1-2): a stretch where Lucas-Kanade tracking breaks is
relocalised against the recent keyframes into one trajectory; frames the odometry cannot place
never reach the world; a build that places too few frames stops with the likely cause."""
import shutil

import numpy as np
import pytest

pytest.importorskip("cv2")

from inspatio_ros.camera import load_camera_info  # noqa: E402
from inspatio_ros.errors import InputError  # noqa: E402
from inspatio_ros.ingest.build import build_world  # noqa: E402
from inspatio_ros.ingest.features import describe, detect_spread, match  # noqa: E402
from inspatio_ros.ingest.odometry import ate_rel, estimate_poses, frame_ranges  # noqa: E402
from inspatio_ros.ingest.sources import open_input  # noqa: E402
from inspatio_ros.posefile import read_poses  # noqa: E402
from inspatio_ros.synth.generate import generate  # noqa: E402


@pytest.fixture(scope="module")
def street(tmp_path_factory):
    out = tmp_path_factory.mktemp("track_street")
    generate("street", out, size=(320, 180), frames=24, moving_cars=0, seed=3)
    return out


def _blanked(folder, frames):
    """A loader of the folder's frames with ``frames`` replaced by a uniform grey (a lens cap, a
    dropped signal): nothing for Lucas-Kanade to follow, nothing to match."""
    fs = open_input(folder)

    def load(i):
        if i in frames:
            return np.full_like(fs.load(0), 128)
        return fs.load(i)
    return fs, load


def test_frame_ranges_are_short():
    assert frame_ranges([3, 4, 5, 9, 11, 12]) == "3-5, 9, 11-12"
    assert frame_ranges([]) == ""


def test_corners_are_spread_and_descriptors_find_them_again(street):
    import cv2

    fs = open_input(street)
    gray = cv2.cvtColor(fs.load(0), cv2.COLOR_RGB2GRAY)
    pts = detect_spread(cv2, gray, np.zeros((0, 2)), 400, 8, 0.01)
    h, w = gray.shape
    # Every column band of the image gets corners (an image-wide threshold left bands empty).
    bands = np.histogram(pts[:, 0], bins=4, range=(0, w))[0]
    assert len(pts) > 100 and bands.min() > 0.1 * len(pts) / 4, bands
    # Existing corners keep new ones away.
    more = detect_spread(cv2, gray, pts, 400, 8, 0.01)
    if len(more):
        assert np.min(np.linalg.norm(more[:, None] - pts[None], axis=2)) >= 7.5
    # The same corners a frame later (moved by their optical flow) are matched to themselves.
    nxt = cv2.cvtColor(fs.load(1), cv2.COLOR_RGB2GRAY)
    moved, st, _ = cv2.calcOpticalFlowPyrLK(gray, nxt, pts.reshape(-1, 1, 2), None)
    ok = st.ravel() == 1
    rows_a, desc_a = describe(cv2, gray, pts[ok])
    rows_b, desc_b = describe(cv2, nxt, moved.reshape(-1, 2)[ok])
    pairs = match(desc_a, desc_b)
    assert len(pairs) > 0.3 * ok.sum()
    right = rows_a[pairs[:, 0]] == rows_b[pairs[:, 1]]
    assert right.mean() > 0.9, right.mean()


def test_a_blank_stretch_is_relocalised_into_one_trajectory(street):
    """Frames 10-12 blank: tracking breaks at frame 10; frame 13 is matched by its descriptors to
    the landmarks of the keyframes before the gap and the odometry carries on in the same
    trajectory and scale (before: a new segment with a scale of its own)."""
    fs, load = _blanked(street, {10, 11, 12})
    intr = load_camera_info(street / "camera_info.yaml")
    gt, _ = read_poses(street / "poses_tum.txt")
    res = estimate_poses(load, len(fs), intr, progress_bar=False)
    assert len(res.segments) == 1, res.warnings
    assert not res.located[10:13].any() and res.located[13:].all() and res.located[:10].all()
    assert 13 in res.relocalised
    placed = res.located
    assert ate_rel(res.c2w[placed], gt[placed]) < 0.02
    # One scale: the steps after the gap are as long as before it (a new segment had its own).
    steps = np.linalg.norm(np.diff(res.c2w[:, :3, 3], axis=0), axis=1)
    before, after = np.median(steps[2:9]), np.median(steps[14:])
    true = np.linalg.norm(np.diff(gt[:, :3, 3], axis=0), axis=1)
    assert abs((after / before) / (np.median(true[14:]) / np.median(true[2:9])) - 1) < 0.1


def test_unplaced_frames_never_reach_the_world(street, tmp_path):
    """Odometry on a folder whose frames 9-10 are blank: those frames have no trusted pose and
    are neither fused, nor held out, nor in the world's frames; the report and world.info say
    which."""
    from PIL import Image

    copy = tmp_path / "copy"
    shutil.copytree(street, copy)
    for name in ("poses_kitti.txt", "poses_tum.txt", "video.mp4"):
        (copy / name).unlink(missing_ok=True)
    pngs = sorted((copy / "frames").glob("*.png"))
    for png in pngs[9:11]:
        Image.fromarray(np.full((180, 320, 3), 128, np.uint8)).save(png)
    world = build_world(copy, holdout=5, device="cpu")
    assert world.info["unplaced_frames"] == [9, 10]
    report = world.info["report"]
    assert report["frames_unplaced"] == 2
    assert any("could not place 2 of 24 frames (9-10)" in w for w in report["warnings"]), report["warnings"]
    assert not {9, 10} & set(world.frame_index.tolist())
    assert not {9, 10} & set(world.heldout_index.tolist())
    assert world.heldout_index.tolist() == [4, 14, 19]
    assert not {9, 10} & set(np.unique(world.static_frame).tolist())
    assert len(world.frame_index) + len(world.heldout_index) == 22


def test_too_few_placed_frames_stop_the_build_with_the_likely_cause(street, tmp_path):
    from PIL import Image

    copy = tmp_path / "copy"
    shutil.copytree(street, copy)
    for name in ("poses_kitti.txt", "poses_tum.txt", "video.mp4"):
        (copy / name).unlink(missing_ok=True)
    for png in sorted((copy / "frames").glob("*.png"))[6:]:
        Image.fromarray(np.full((180, 320, 3), 128, np.uint8)).save(png)
    with pytest.raises(InputError) as err:
        build_world(copy, device="cpu")
    message = str(err.value)
    assert message.startswith("visual odometry located 6 of 24 frames")
    assert "likely cause: too little texture" in message and "--poses FILE" in message


pytestmark = pytest.mark.slow
