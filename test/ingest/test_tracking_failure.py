"""The likely cause and fix an odometry that placed too few frames reports."""
import numpy as np

from inspatio_ros.camera import Intrinsics
from inspatio_ros.ingest.odometry import OdometryResult, tracking_failure_cause


def result(corners: int, keyframes=(0, 5)) -> OdometryResult:
    n = 10
    return OdometryResult(c2w=np.tile(np.eye(4), (n, 1, 1)), located=np.zeros(n, bool),
                          keyframes=list(keyframes), tracked=np.full(n, corners))


def test_few_corners_at_low_resolution_asks_for_more_pixels():
    cause, fix = tracking_failure_cause(result(40), Intrinsics(200.0, 200.0, 120.0, 67.5, 240, 135))
    assert cause == "too little texture: a median of 40 corners tracked per frame at 240x135"
    assert "--max-size" in fix


def test_few_corners_at_a_good_resolution_blames_the_scene_not_the_pixels():
    cause, fix = tracking_failure_cause(result(62), Intrinsics(500.0, 500.0, 320.0, 180.0, 640, 360))
    assert cause.startswith("too little texture: a median of 62 corners") and "640x360" in cause
    assert "--max-size" not in fix and "texture" in fix


def test_many_corners_without_a_start_is_no_parallax():
    cause, _ = tracking_failure_cause(result(400, keyframes=()), Intrinsics(500.0, 500.0, 320.0, 180.0, 640, 360))
    assert cause.startswith("no parallax")
