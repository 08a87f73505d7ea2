"""ReferencePath on synthetic paths with known answers: straight, circular, self-overlapping."""
import math

import numpy as np
import pytest

from inspatio_ros.agents.path import ReferencePath
from inspatio_ros.errors import InputError

R = 20.0   # circle radius of the curved path, m


def straight() -> ReferencePath:
    return ReferencePath(np.array([[0.0, 0.0], [100.0, 0.0]]))


def left_arc() -> ReferencePath:
    """Half a circle of radius R from (0, 0) heading +x, turning left about (0, R)."""
    theta = np.linspace(0.0, math.pi, 3000)
    return ReferencePath(np.stack([R * np.sin(theta), R - R * np.cos(theta)], axis=1))


def out_and_back() -> ReferencePath:
    """Out along y=0 to x=50, a U-turn of radius 1, back along y=2: the legs lie 2 m apart."""
    out = np.stack([np.linspace(0, 50, 201), np.zeros(201)], axis=1)
    a = np.linspace(-math.pi / 2, math.pi / 2, 50)[1:-1]
    turn = np.stack([50 + np.cos(a), 1 + np.sin(a)], axis=1)
    back = np.stack([np.linspace(50, 0, 201), np.full(201, 2.0)], axis=1)
    return ReferencePath(np.concatenate([out, turn, back]))


def test_straight_path_progress_cross_track_and_heading():
    p = straight()
    assert p.length == pytest.approx(100.0)
    left = p.project(30.0, 2.0)
    assert (left.s, left.cross_track, left.overrun) == pytest.approx((30.0, 2.0, 0.0))
    right = p.project(72.5, -1.5)
    assert (right.s, right.cross_track) == pytest.approx((72.5, -1.5))
    e = p.errors(10.0, 0.3, yaw=0.1)
    assert e.heading_error == pytest.approx(0.1) and e.cross_track == pytest.approx(0.3)
    assert p.errors(10.0, 0.0, yaw=2 * math.pi - 0.2).heading_error == pytest.approx(-0.2)   # wrapped
    assert p.point_at(40.0) == pytest.approx((40.0, 0.0, 0.0))


def test_straight_path_ends_and_corridor():
    p = straight()
    past = p.project(105.0, 1.0)
    assert (past.s, past.overrun, past.cross_track) == pytest.approx((100.0, 5.0, 1.0))
    before = p.project(-3.0, 0.0)
    assert (before.s, before.overrun) == pytest.approx((0.0, 3.0))
    assert p.in_corridor(50.0, 1.9, half_width=2.0)
    assert not p.in_corridor(50.0, -2.1, half_width=2.0)
    assert p.in_corridor(101.0, 0.0, half_width=2.0)          # the corridor ends in a half disc
    assert not p.in_corridor(101.5, 1.5, half_width=2.0)      # 2.12 m from the end point
    assert not p.in_corridor(110.0, 0.0, half_width=2.0)
    with pytest.raises(InputError, match="half-width"):
        p.in_corridor(0.0, 0.0, half_width=0.0)


@pytest.mark.parametrize("phi", [0.3, 1.0, 2.2, 3.0])
@pytest.mark.parametrize("radius", [R - 1.5, R, R + 0.7])
def test_arc_progress_and_signed_errors(phi, radius):
    """A point at angle phi and distance `radius` from the centre: s = R phi, cross-track R - radius
    (inside a left turn is left of the path), path heading phi."""
    p = left_arc()
    assert p.length == pytest.approx(math.pi * R, rel=1e-5)
    x, y = radius * math.sin(phi), R - radius * math.cos(phi)
    e = p.errors(x, y, yaw=phi + 0.2)
    assert e.s == pytest.approx(R * phi, abs=0.01)
    assert e.cross_track == pytest.approx(R - radius, abs=1e-3)
    assert e.heading_error == pytest.approx(0.2, abs=0.01)
    # The windowed lookup from a nearby progress gives the same answer.
    w = p.project(x, y, near_s=R * phi + 5.0, window=10.0)
    assert (w.s, w.cross_track) == pytest.approx((e.s, e.cross_track), abs=1e-9)


def test_global_lookup_equals_brute_force_on_a_wiggly_path():
    """The k-d tree answer is the nearest point of the whole polyline (checked against every segment)."""
    x = np.linspace(0, 60, 4000)
    p = ReferencePath(np.stack([x, 3 * np.sin(x / 4)], axis=1), spacing=0.3)
    rng = np.random.default_rng(0)
    a, b = p.points[:-1], p.points[1:]
    ab = b - a
    for q in rng.uniform([-2, -6], [62, 6], size=(300, 2)):
        t = np.clip(((q - a) * ab).sum(1) / (ab * ab).sum(1), 0, 1)
        brute = np.linalg.norm(a + t[:, None] * ab - q, axis=1).min()
        assert p.project(*q).distance == pytest.approx(brute, abs=1e-9)


def test_window_keeps_progress_on_the_leg_being_driven():
    p = out_and_back()
    leg_length = 50.0 + math.pi + 50.0
    assert p.length == pytest.approx(leg_length, abs=0.01)
    # 1.2 m left of the outward leg is 0.8 m from the return leg: globally nearest is the return leg.
    glob = p.project(10.0, 1.2)
    assert glob.s == pytest.approx(50 + math.pi + 40, abs=0.01) and glob.cross_track == pytest.approx(0.8, abs=1e-6)
    driving = p.project(10.0, 1.2, near_s=9.0, window=20.0)
    assert driving.s == pytest.approx(10.0, abs=1e-6) and driving.cross_track == pytest.approx(1.2, abs=1e-6)


def test_standstills_are_dropped_and_times_map_to_progress():
    pts = np.array([[0, 0], [0, 0], [0, 0], [10, 0], [10, 0], [20, 0]], dtype=float)
    times = np.array([0, 1, 2, 3, 4, 5], dtype=float)
    p = ReferencePath(pts, times, spacing=1.0)
    assert p.length == pytest.approx(20.0) and len(p.points) == 21
    assert p.s_at_time(1.0) == 0.0 and p.s_at_time(3.0) == pytest.approx(10.0)   # standing still 0-2 s and 3-4 s
    assert p.s_at_time(4.5) == pytest.approx(15.0)         # halfway from (10, 0) @ 4 s to (20, 0) @ 5 s
    assert p.s_at_time(9.0) == pytest.approx(20.0)
    assert p.s_at_time(2.5) == pytest.approx(5.0)          # it left (0, 0) at 2 s and reached (10, 0) at 3 s
    assert p.s_at_time(3.5) == pytest.approx(10.0)


@pytest.mark.parametrize("points, match", [
    (np.zeros((5, 4)), "shape"),
    (np.array([[0, 0], [np.nan, 1.0]]), "NaN"),
    (np.array([[1.0, 1.0], [1.0, 1.0]]), "does not move"),
])
def test_bad_paths_are_refused(points, match):
    with pytest.raises(InputError, match=match):
        ReferencePath(points)
