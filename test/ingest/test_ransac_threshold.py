"""The odometry's RANSAC inlier threshold is an angle, so a frame and its downscaled copy judge
tracks alike (a fixed 1.5 px let a turning-with-the-wrong-travel model win on KITTI's ramp at
640x194: docs/notes/2026-12-05-tracking-640.md)."""
import math

import pytest

from inspatio_ros.camera import Intrinsics
from inspatio_ros.ingest.odometry import OdometrySettings, ransac_threshold_px


def test_threshold_is_the_same_angle_at_every_size_above_the_floor():
    s = OdometrySettings()
    full = Intrinsics(fx=718.856, fy=718.856, cx=607.19, cy=185.22, width=1241, height=376)
    half = full.scaled(1000, 303)
    px_full, px_half = ransac_threshold_px(s, full), ransac_threshold_px(s, half)
    # 2 mrad is 1.44 px at KITTI's own focal length (the old fixed threshold was 1.5 px)
    assert px_full == pytest.approx(1.44, abs=0.01)
    assert px_half / half.fx == pytest.approx(px_full / full.fx, rel=1e-9)
    assert math.degrees(px_half / half.fx) == pytest.approx(math.degrees(2e-3), rel=1e-9)
    # At 640x194 (focal 371 px) 2 mrad is 0.74 px: the floor holds it at 1 px, still under the 1.5 px
    # that picked the ramp's wrong start.
    assert ransac_threshold_px(s, full.scaled(640, 194)) == pytest.approx(1.0)


def test_threshold_never_below_the_floor():
    s = OdometrySettings()
    tiny = Intrinsics(fx=100.0, fy=100.0, cx=80.0, cy=45.0, width=160, height=90)
    assert ransac_threshold_px(s, tiny) == s.ransac_min_px
    assert ransac_threshold_px(OdometrySettings(ransac_min_px=0.2), tiny) == pytest.approx(0.2)
