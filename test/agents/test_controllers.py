"""The baseline controller drives the kinematic bicycle along synthetic paths (no rendering)."""
import math

import numpy as np
import pytest

from inspatio_ros.agents.controllers import BaselineController, SpeedPid
from inspatio_ros.agents.path import ReferencePath
from inspatio_ros.errors import InputError
from inspatio_ros.sim.vehicle import BicycleModel, EgoState

DT = 0.05


def drive(path: ReferencePath, ego: EgoState, seconds: float, **controller) -> tuple[list, EgoState]:
    """Closed loop at 20 Hz; (|cross-track| per step, final state)."""
    model = BicycleModel(wheelbase=2.7, max_steer=0.6, max_steer_rate=1.0, max_accel=3.0, max_decel=8.0)
    ctl = BaselineController(path, **controller)
    errors = []
    for _ in range(int(seconds / DT)):
        cmd = ctl(ego, DT)
        # The acceleration drives the model as an accel-actuated agent would (toward the target speed).
        model.command(cmd.speed, cmd.steering, acceleration=abs(cmd.acceleration) or None)
        ego = model.step(ego, DT)
        errors.append(abs(path.errors(ego.x, ego.y, ego.yaw, near_s=ctl.progress).cross_track))
    return errors, ego


def test_recovers_from_a_lateral_offset_on_a_straight_path():
    path = ReferencePath(np.array([[0.0, 0.0], [300.0, 0.0]]))
    errors, ego = drive(path, EgoState(0.0, 1.5, 0.0, yaw=0.2), seconds=15.0, cruise_speed=8.0)
    assert errors[0] > 1.4
    assert max(errors[-100:]) < 0.05                       # the last 5 s on the line
    assert ego.speed == pytest.approx(8.0, abs=0.1)


@pytest.mark.parametrize("radius", [25.0, 60.0])
def test_follows_a_curve_within_half_a_metre(radius):
    theta = np.linspace(0, 1.5 * math.pi, 2000)
    path = ReferencePath(np.stack([radius * np.sin(theta), radius - radius * np.cos(theta)], axis=1))
    errors, _ = drive(path, EgoState(0.0, 0.0, 0.0, yaw=0.0), seconds=12.0, cruise_speed=8.0)
    assert max(errors) < 0.5


def test_stops_at_the_end_of_the_path():
    path = ReferencePath(np.array([[0.0, 0.0], [60.0, 0.0]]))
    _, ego = drive(path, EgoState(0.0, 0.0, 0.0, yaw=0.0), seconds=25.0, cruise_speed=10.0)
    assert abs(ego.speed) < 0.05
    assert 58.0 < ego.x < 61.0


def test_speed_pid_reaches_the_target_and_does_not_wind_up():
    pid = SpeedPid(kp=1.0, ki=0.5, max_accel=2.0, max_decel=4.0)
    v = 0.0
    for _ in range(400):                      # 20 s at 20 Hz, saturated for the first ~4 s
        v += pid(10.0, v, DT) * DT
    assert v == pytest.approx(10.0, abs=0.05)
    # While the output was clamped the integral did not grow. These gains alone overshoot 4.3 %
    # (damping 0.71); the ~20 m of error integrated while clamped would add 10 m/s^2 on release.
    pid.reset()
    v, peak = 0.0, 0.0
    for _ in range(400):
        v += pid(10.0, v, DT) * DT
        peak = max(peak, v)
    assert peak < 10.5
    assert pid(0.0, 20.0, DT) == -4.0          # braking clamped to max_decel


@pytest.mark.parametrize("kwargs, match", [({"cruise_speed": 0.0}, "cruise_speed"),
                                           ({"wheelbase": float("nan")}, "wheelbase"),
                                           ({"kp": -1.0}, "kp")])
def test_bad_settings_are_refused(kwargs, match):
    path = ReferencePath(np.array([[0.0, 0.0], [10.0, 0.0]]))
    with pytest.raises(InputError, match=match):
        BaselineController(path, **kwargs)
