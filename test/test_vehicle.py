"""Ego vehicle models: exact kinematics, limits, rejected commands, timeout braking, pose validation."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from inspatio_ros.camera import make_pose, rotation_from_rpy
from inspatio_ros.errors import InputError
from inspatio_ros.sim.vehicle import (
    BicycleModel,
    CommandTimeout,
    EgoState,
    UnicycleModel,
    check_pose_jump,
    rpy_from_rotation,
    wrap_angle,
)

# ---------------------------------------------------------------------------------------------
# EgoState
# ---------------------------------------------------------------------------------------------

def test_pose_matrix_round_trip_and_rep103_axes():
    s = EgoState(1.0, -2.0, 0.5, yaw=2.5, pitch=-0.3, roll=0.2, speed=3.0)
    T = s.pose_matrix()
    np.testing.assert_allclose(T[:3, :3], rotation_from_rpy(0.2, -0.3, 2.5), atol=1e-15)
    np.testing.assert_allclose(T[:3, 3], [1.0, -2.0, 0.5])
    back = EgoState.from_pose_matrix(T, speed=3.0)
    for f in ("x", "y", "z", "yaw", "pitch", "roll", "speed"):
        assert getattr(back, f) == pytest.approx(getattr(s, f), abs=1e-12)
    # yaw +90 deg: base_link +x (forward) points along map +y (left)
    np.testing.assert_allclose(EgoState(0, 0, 0, math.pi / 2).pose_matrix()[:3, 0], [0, 1, 0], atol=1e-15)


def test_rpy_from_rotation_gimbal_lock_still_reproduces_rotation():
    r = rotation_from_rpy(0.0, math.pi / 2, 0.7)
    roll, pitch, yaw = rpy_from_rotation(r)
    np.testing.assert_allclose(rotation_from_rpy(roll, pitch, yaw), r, atol=1e-9)


def test_from_pose_matrix_rejects_wrong_shape():
    with pytest.raises(InputError, match="shape"):
        EgoState.from_pose_matrix(np.eye(3))


# ---------------------------------------------------------------------------------------------
# Bicycle
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dt", [0.02, 0.37, None])   # None: the whole circle in one step
def test_bicycle_drives_a_circle_of_radius_wheelbase_over_tan_steer(dt):
    L, steer, v = 2.7, 0.3, 5.0
    model = BicycleModel(wheelbase=L, timeout_s=math.inf)
    model.command(v, steer)
    start = EgoState(3.0, -2.0, 1.2, yaw=0.4, pitch=0.05, roll=-0.02, speed=v, steering=steer)
    radius = L / math.tan(steer)
    assert model.turning_radius(steer) == pytest.approx(radius)
    # rear axle circle centre: to the left of the heading (positive steer turns left)
    centre = np.array([start.x - radius * math.sin(start.yaw), start.y + radius * math.cos(start.yaw)])
    period = 2 * math.pi * radius / v
    steps = [period] if dt is None else [dt] * int(period // dt) + [period % dt]
    state, points = start, []
    for h in steps:
        state = model.step(state, h)
        points.append([state.x, state.y])
    dist = np.linalg.norm(np.array(points) - centre, axis=1)
    np.testing.assert_allclose(dist, radius, rtol=1e-3)
    # after a full circle: back at the start, same heading, z/pitch/roll untouched
    assert math.hypot(state.x - start.x, state.y - start.y) < 1e-3 * radius
    assert abs(wrap_angle(state.yaw - start.yaw)) < 1e-6
    assert (state.z, state.pitch, state.roll) == (start.z, start.pitch, start.roll)
    assert state.yaw_rate == pytest.approx(v * math.tan(steer) / L)
    assert state.speed == v and state.steering == steer


def test_bicycle_right_turn_and_reverse_directions():
    model = BicycleModel(wheelbase=2.0, timeout_s=math.inf)
    model.command(2.0, -0.4)
    s = model.step(EgoState(0, 0, 0, 0, speed=2.0, steering=-0.4), 0.5)
    assert s.y < 0 and s.yaw < 0                     # negative steer turns right (clockwise)
    model.command(-2.0, 0.4)
    s = model.step(EgoState(0, 0, 0, 0, speed=-2.0, steering=0.4), 0.5)
    assert s.x < 0 and s.yaw < 0                     # reversing with left steer: rear swings right


def test_bicycle_acceleration_and_steer_rate_limits():
    model = BicycleModel(max_accel=2.0, max_decel=5.0, max_steer_rate=0.4, max_steer=0.6, timeout_s=math.inf)
    model.command(10.0, 0.5)
    s = model.step(EgoState(0, 0, 0, 0), 1.0)
    assert s.speed == pytest.approx(2.0)              # a * t
    assert s.steering == pytest.approx(0.4)           # rate * t
    # with a small steering effect the distance is ~ a t^2 / 2
    straight = BicycleModel(max_accel=2.0, timeout_s=math.inf)
    straight.command(10.0, 0.0)
    s2 = straight.step(EgoState(0, 0, 0, 0), 1.0)
    assert s2.x == pytest.approx(1.0, abs=1e-12) and s2.y == 0.0
    # sampled: per-step changes never exceed the limits
    model = BicycleModel(max_accel=2.0, max_decel=5.0, max_steer_rate=0.4, timeout_s=math.inf)
    state, dt = EgoState(0, 0, 0, 0), 0.05
    cmds = [(8.0, 0.5)] * 60 + [(0.0, -0.5)] * 60
    for v, st in cmds:
        model.command(v, st)
        new = model.step(state, dt)
        dv = new.speed - state.speed
        assert dv <= 2.0 * dt + 1e-12 and -dv <= 5.0 * dt + 1e-12
        assert abs(new.steering - state.steering) <= 0.4 * dt + 1e-12
        state = new
    assert state.speed == 0.0 and state.steering == pytest.approx(-0.5)


def test_bicycle_decelerates_with_max_decel_and_reverses_through_zero():
    model = BicycleModel(max_accel=1.0, max_decel=4.0, timeout_s=math.inf)
    model.command(-2.0, 0.0)
    s = model.step(EgoState(0, 0, 0, 0, speed=2.0), 1.5)
    # 0.5 s braking at 4 (to 0, 0.5 m forward), 1 s accelerating backwards at 1 (to -1, 0.5 m back)
    assert s.speed == pytest.approx(-1.0)
    assert s.x == pytest.approx(0.0, abs=1e-12)


def test_bicycle_command_acceleration_and_steer_velocity_lower_the_limits():
    model = BicycleModel(max_accel=3.0, max_steer_rate=0.8, timeout_s=math.inf)
    model.command(10.0, 0.5, acceleration=1.0, steering_angle_velocity=0.1)
    s = model.step(EgoState(0, 0, 0, 0), 1.0)
    assert s.speed == pytest.approx(1.0) and s.steering == pytest.approx(0.1)
    model.command(10.0, 0.5, acceleration=0.0, steering_angle_velocity=0.0)    # 0: as fast as allowed
    s = model.step(EgoState(0, 0, 0, 0), 1.0)
    assert s.speed == pytest.approx(3.0) and s.steering == pytest.approx(0.5)
    model.command(10.0, 0.0, acceleration=5.0)                                  # above the limit: limit
    assert model.step(EgoState(0, 0, 0, 0), 1.0).speed == pytest.approx(3.0)


def test_bicycle_clamps_in_range_over_limit_commands():
    model = BicycleModel(max_speed=40.0, max_steer=0.6, max_accel=math.inf, max_steer_rate=math.inf,
                         timeout_s=math.inf)
    model.command(45.0, -0.9)
    assert (model.speed_cmd, model.steering_cmd) == (40.0, -0.6)
    s = model.step(EgoState(0, 0, 0, 0), 0.1)
    assert s.speed == 40.0 and s.steering == -0.6


@pytest.mark.parametrize("kwargs, field, limit", [
    ({"speed": math.nan, "steering_angle": 0.0}, "speed", "finite"),
    ({"speed": 80.5, "steering_angle": 0.0}, "speed", "max_speed"),
    ({"speed": -81.0, "steering_angle": 0.0}, "speed", "max_speed"),
    ({"speed": 1.0, "steering_angle": 1.25}, "steering_angle", "max_steer"),
    ({"speed": 1.0, "steering_angle": math.inf}, "steering_angle", "finite"),
    ({"speed": 1.0, "steering_angle": 0.1, "acceleration": math.nan}, "acceleration", "finite"),
    ({"speed": 1.0, "steering_angle": 0.1, "steering_angle_velocity": math.inf}, "steering_angle_velocity", "finite"),
])
def test_bicycle_rejects_absurd_commands_and_keeps_the_previous(kwargs, field, limit):
    model = BicycleModel(max_speed=40.0, max_steer=0.6)
    model.command(5.0, 0.2)
    with pytest.raises(InputError) as err:
        model.command(**kwargs)
    msg = str(err.value)
    assert field in msg and limit in msg and "ackermann_cmd" in msg
    assert (model.speed_cmd, model.steering_cmd) == (5.0, 0.2)


def test_bicycle_rejects_steering_at_right_angles_even_with_a_wide_max_steer():
    model = BicycleModel(max_steer=1.0)
    with pytest.raises(InputError, match="steering_angle.*pi/2"):
        model.command(1.0, 1.58)
    model.command(1.0, -1.5)                          # within 2 x max_steer and below pi/2: clamped
    assert model.steering_cmd == -1.0


def test_bicycle_timeout_brakes_to_a_stop():
    model = BicycleModel(max_decel=8.0)               # timeout 0.5 s
    model.command(10.0, 0.0)
    start = EgoState(0, 0, 0, 0, speed=10.0)
    s = model.step(start, 0.5)                        # still within the timeout: cruising
    assert s.speed == 10.0 and s.x == pytest.approx(5.0)
    s = model.step(s, 1.0)                            # expired: 1 s of braking at 8 m/s^2
    assert s.speed == pytest.approx(2.0) and s.x == pytest.approx(5.0 + 10.0 - 4.0)
    s = model.step(s, 1.0)
    assert s.speed == 0.0 and s.x == pytest.approx(5.0 + 6.0 + 0.25)
    assert model.step(s, 5.0).x == s.x                # stays stopped
    # the same in one long step (the timeout expires inside it)
    model.command(10.0, 0.0)
    one = model.step(start, 3.0)
    assert one.speed == 0.0 and one.x == pytest.approx(11.25)


def test_bicycle_timeout_keeps_the_steering_and_a_new_command_resumes():
    model = BicycleModel(timeout_s=0.2, max_steer_rate=math.inf)
    model.command(3.0, 0.3)
    s = model.step(EgoState(0, 0, 0, 0, speed=3.0, steering=0.3), 2.0)
    assert s.speed == 0.0 and s.steering == 0.3
    model.command(3.0, 0.3)
    assert model.step(s, 0.1).speed > 0.0


def test_no_command_yet_means_stopping():
    s = BicycleModel(max_decel=4.0).step(EgoState(0, 0, 0, 0, speed=2.0), 1.0)
    assert s.speed == 0.0 and s.x == pytest.approx(0.5)
    s = UnicycleModel(max_accel=1.0).step(EgoState(0, 0, 0, 0, speed=1.0, yaw_rate=0.5), 2.0)
    assert s.speed == 0.0 and s.yaw_rate == 0.0


def test_large_step_matches_many_small_steps_during_ramps():
    def path(model, dts):
        state = EgoState(0, 0, 0, 0.3)
        model.command(12.0, 0.4)
        for dt in dts:
            state = model.step(state, dt)
        return state

    big = path(BicycleModel(timeout_s=math.inf), [3.0])
    small = path(BicycleModel(timeout_s=math.inf), [0.01] * 300)
    fine = path(BicycleModel(timeout_s=math.inf, max_substep=1e-4), [3.0])
    for s, tol in ((small, 1e-9), (fine, 1e-4)):    # same sub-steps; a 100x finer reference
        assert math.hypot(big.x - s.x, big.y - s.y) < tol
        assert abs(wrap_angle(big.yaw - s.yaw)) < tol
        assert big.speed == pytest.approx(s.speed) and big.steering == pytest.approx(s.steering)


def test_ground_height_is_followed():
    model = BicycleModel(timeout_s=math.inf, ground_height=lambda x, y: 0.1 * x)
    model.command(10.0, 0.0)
    s = model.step(EgoState(0, 0, 1.5, 0, speed=10.0), 1.0)   # base_link 1.5 m above the ground
    assert s.x == pytest.approx(10.0) and s.z == pytest.approx(1.5 + 1.0)


def test_bad_step_and_bad_parameters_are_input_errors():
    with pytest.raises(InputError, match="dt"):
        BicycleModel().step(EgoState(0, 0, 0, 0), -0.1)
    with pytest.raises(InputError, match="dt"):
        UnicycleModel().step(EgoState(0, 0, 0, 0), math.nan)
    with pytest.raises(InputError, match="wheelbase"):
        BicycleModel(wheelbase=0.0)
    with pytest.raises(InputError, match="max_steer"):
        BicycleModel(max_steer=1.6)
    with pytest.raises(InputError, match="max_accel"):
        UnicycleModel(max_accel=math.nan)
    with pytest.raises(InputError, match="timeout"):
        CommandTimeout(0.0)


def test_step_does_not_change_the_input_state():
    model = BicycleModel(timeout_s=math.inf)
    model.command(5.0, 0.1)
    start = EgoState(0, 0, 0, 0)
    before = dataclasses.replace(start)
    model.step(start, 1.0)
    assert start == before


# ---------------------------------------------------------------------------------------------
# Unicycle
# ---------------------------------------------------------------------------------------------

def test_unicycle_straight_line_from_rest_with_accel_limit():
    model = UnicycleModel(max_speed=2.0, max_accel=1.0, timeout_s=math.inf)
    model.command(1.5, 0.0)
    s = model.step(EgoState(1.0, 2.0, 0.3, math.pi / 2), 3.0)
    # 1.5 s ramp (1.125 m) then 1.5 s at 1.5 m/s (2.25 m), all along map +y
    assert s.speed == pytest.approx(1.5)
    assert s.x == pytest.approx(1.0, abs=1e-12) and s.y == pytest.approx(2.0 + 3.375)
    assert s.z == 0.3 and s.yaw == pytest.approx(math.pi / 2)


def test_unicycle_turn_and_rotation_in_place():
    model = UnicycleModel(timeout_s=math.inf)
    v, w, t = 1.0, 0.5, 2.0
    model.command(v, w)
    s = model.step(EgoState(0, 0, 0, 0, speed=v, yaw_rate=w), t)
    r = v / w
    assert s.yaw == pytest.approx(w * t)
    assert s.x == pytest.approx(r * math.sin(w * t)) and s.y == pytest.approx(r * (1 - math.cos(w * t)))
    assert s.yaw_rate == w
    model.command(0.0, -1.0)
    s = model.step(EgoState(4.0, 5.0, 0, 0, yaw_rate=-1.0), 1.0)
    assert (s.x, s.y) == (4.0, 5.0) and s.yaw == pytest.approx(-1.0)


def test_unicycle_yaw_accel_limit():
    model = UnicycleModel(max_yaw_accel=1.0, timeout_s=math.inf)
    model.command(0.0, 1.0)
    s = model.step(EgoState(0, 0, 0, 0), 0.5)
    assert s.yaw_rate == pytest.approx(0.5) and s.yaw == pytest.approx(0.125)


def test_unicycle_clamps_and_rejects():
    model = UnicycleModel(max_speed=2.0, max_yaw_rate=1.0)
    model.command(3.0, -1.5)
    assert (model.speed_cmd, model.yaw_rate_cmd) == (2.0, -1.0)
    with pytest.raises(InputError) as err:
        model.command(4.5, 0.0)
    assert "linear.x" in str(err.value) and "max_speed" in str(err.value) and "cmd_vel" in str(err.value)
    with pytest.raises(InputError, match="angular.z.*finite"):
        model.command(0.0, math.nan)
    with pytest.raises(InputError, match="angular.z.*max_yaw_rate"):
        model.command(0.0, -2.5, source="/robot/cmd_vel")
    assert (model.speed_cmd, model.yaw_rate_cmd) == (2.0, -1.0)


def test_unicycle_timeout_brakes_with_max_accel():
    model = UnicycleModel(max_accel=2.0, timeout_s=0.5)
    model.command(2.0, 0.0)
    s = model.step(EgoState(0, 0, 0, 0, speed=2.0), 0.5)
    assert s.speed == 2.0
    s = model.step(s, 0.5)
    assert s.speed == pytest.approx(1.0)
    s = model.step(s, 1.0)
    assert s.speed == 0.0 and s.x == pytest.approx(1.0 + 0.75 + 0.25)


# ---------------------------------------------------------------------------------------------
# Pose input validation
# ---------------------------------------------------------------------------------------------

def _pose(x, y, yaw):
    return make_pose(rotation_from_rpy(0.0, 0.0, yaw), [x, y, 0.0])


def test_check_pose_jump_accepts_and_estimates_motion():
    prev = check_pose_jump(None, _pose(0, 0, 0), 0.1, max_speed=30.0, max_jump=1.0)
    assert prev.speed == 0.0
    new = check_pose_jump(prev, _pose(1.0, 0.0, 0.05), 0.1, max_speed=30.0, max_jump=1.0)
    assert new.x == 1.0 and new.speed == pytest.approx(1.0 / 0.1 * math.cos(0.05))
    assert new.yaw_rate == pytest.approx(0.5)
    # yaw wrap: from +179 to -179 deg is a small left turn
    a = check_pose_jump(None, _pose(0, 0, math.radians(179)), 0.1, 1.0, 1.0)
    b = check_pose_jump(a, _pose(0, 0, math.radians(-179)), 0.1, 1.0, 1.0)
    assert b.yaw_rate == pytest.approx(math.radians(2) / 0.1)


def test_check_pose_jump_rejects_jumps_beyond_the_limit():
    prev = EgoState(0, 0, 0, 0)
    with pytest.raises(InputError, match=r"/ego_pose: pose jumps 5\.000 m in 0\.1 s.*max_jump"):
        check_pose_jump(prev, _pose(3.0, 4.0, 0), 0.1, max_speed=10.0, max_jump=2.0, source="/ego_pose")
    check_pose_jump(prev, _pose(3.0, 4.0, 0), 0.1, max_speed=30.0, max_jump=2.0)   # 2 + 30 * 0.1 = 5
    check_pose_jump(prev, _pose(300.0, 0, 0), 0.1, max_speed=10.0, max_jump=0.0)   # check disabled


@pytest.mark.parametrize("bad, what", [
    (np.full((4, 4), np.nan), "NaN"),
    (make_pose(np.diag([1.0, 1.0, 1.1]), [0, 0, 0]), "orthonormal"),
    (make_pose(np.diag([1.0, 1.0, -1.0]), [0, 0, 0]), "orthonormal"),
    (np.eye(3), "shape"),
    (np.vstack([np.eye(4)[:3], [0, 0, 1, 1]]), "bottom row"),
])
def test_check_pose_jump_rejects_bad_matrices(bad, what):
    with pytest.raises(InputError, match=what) as err:
        check_pose_jump(None, bad, 0.1, 10.0, 1.0, source="/initialpose")
    assert "/initialpose" in str(err.value)


def test_check_pose_jump_rejects_bad_dt():
    with pytest.raises(InputError, match="time step"):
        check_pose_jump(None, np.eye(4), math.nan, 10.0, 1.0)


def test_check_pose_jump_without_dt_allows_max_jump_only():
    prev = EgoState(0, 0, 0, 0)
    new = check_pose_jump(prev, _pose(0.9, 0.0, 0.0), None, max_speed=30.0, max_jump=1.0)
    assert new.x == 0.9 and new.speed == 0.0
    with pytest.raises(InputError, match="jumps 1.100 m"):
        check_pose_jump(prev, _pose(1.1, 0.0, 0.0), None, max_speed=30.0, max_jump=1.0)
