"""A baseline driver: pure pursuit for the steering, a PID for the speed, on a :class:`ReferencePath`.

It is what a sweep or an environment compares a learned or external controller against, and what
shows that the recorded path can be driven in the simulator at all. Frames: REP-103 (``map``,
x forward, y left, yaw counter-clockwise); the ego's reference point is ``base_link``, the centre
of the rear axle of the kinematic bicycle (:class:`~inspatio_ros.sim.vehicle.BicycleModel`), which
is where pure pursuit's geometry holds.

Pure pursuit: aim at the path point ``lookahead = max(lookahead_min, lookahead_time * speed)``
metres of arc length ahead of the ego's progress, and steer the bicycle onto the circle through
it: ``steer = atan(2 L sin(alpha) / d)`` (``L`` wheelbase, ``alpha`` the target's bearing, ``d``
its distance). Speed: the target is ``cruise_speed``, lowered near the path's end to what stops
there at ``stop_decel``; a PID on the speed error (plus the profile's own deceleration, fed
forward) gives the acceleration, clamped to the vehicle's limits, its integral frozen while
clamped (no wind-up).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import InputError
from .path import ReferencePath


@dataclass(frozen=True)
class AckermannCommand:
    """One command: what an ``ackermann_msgs/AckermannDrive`` carries, and the acceleration the PID asks."""

    steering: float           # front-wheel angle, rad, positive left
    speed: float              # target speed, m/s
    acceleration: float       # signed, m/s^2: what to apply now to approach ``speed``


def _positive(name: str, value: float) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise InputError(f"controller setting {name} = {value!r}", f"give a finite {name} > 0")
    return float(value)


class PurePursuit:
    """Steering toward a point ``lookahead`` metres ahead on the path."""

    def __init__(self, path: ReferencePath, wheelbase: float = 2.7, max_steer: float = 0.6,
                 lookahead_min: float = 4.0, lookahead_time: float = 0.8):
        self.path = path
        self.wheelbase = _positive("wheelbase", wheelbase)
        self.max_steer = _positive("max_steer", max_steer)
        self.lookahead_min = _positive("lookahead_min", lookahead_min)
        self.lookahead_time = _positive("lookahead_time", lookahead_time)

    def lookahead(self, speed: float) -> float:
        return max(self.lookahead_min, self.lookahead_time * abs(speed))

    def steering(self, x: float, y: float, yaw: float, speed: float, s: float) -> float:
        """Steering angle (rad) for the ego at (x, y, yaw) whose progress along the path is ``s``."""
        tx, ty, _ = self.path.point_at(s + self.lookahead(speed))
        dx, dy = tx - x, ty - y
        forward = math.cos(yaw) * dx + math.sin(yaw) * dy
        left = -math.sin(yaw) * dx + math.cos(yaw) * dy
        distance = max(math.hypot(forward, left), 1e-3)
        alpha = math.atan2(left, forward)
        steer = math.atan2(2.0 * self.wheelbase * math.sin(alpha), distance)
        return max(-self.max_steer, min(self.max_steer, steer))


class SpeedPid:
    """Acceleration from the speed error; output clamped to [-max_decel, max_accel], no wind-up."""

    def __init__(self, kp: float = 1.0, ki: float = 0.1, kd: float = 0.0, max_accel: float = 3.0,
                 max_decel: float = 8.0):
        self.kp, self.ki, self.kd = float(kp), float(ki), float(kd)
        for name, gain in (("kp", kp), ("ki", ki), ("kd", kd)):
            if not (math.isfinite(gain) and gain >= 0):
                raise InputError(f"speed PID gain {name} = {gain!r}", "give a finite gain >= 0")
        self.max_accel = _positive("max_accel", max_accel)
        self.max_decel = _positive("max_decel", max_decel)
        self.reset()

    def reset(self) -> None:
        self.integral = 0.0
        self._previous_error: float | None = None

    def __call__(self, target: float, speed: float, dt: float, feed_forward: float = 0.0) -> float:
        """Acceleration (m/s^2) toward ``target`` m/s from ``speed``, ``dt`` s after the previous call;
        ``feed_forward``: the acceleration the target itself is known to have, added before clamping."""
        error = target - speed
        derivative = 0.0 if self._previous_error is None or dt <= 0 else (error - self._previous_error) / dt
        self._previous_error = error
        integral = self.integral + error * dt
        raw = feed_forward + self.kp * error + self.ki * integral + self.kd * derivative
        accel = max(-self.max_decel, min(self.max_accel, raw))
        if accel == raw:                       # keep the integral only while the output is not clamped
            self.integral = integral
        return accel


class BaselineController:
    """Pure pursuit + speed PID along a reference path; call with the ego's pose and speed each step.

    It tracks its own progress along the path (windowed lookups, so a path that passes one place
    twice is followed in order); :meth:`reset` starts it again (at the ego's nearest point).
    """

    def __init__(self, path: ReferencePath, cruise_speed: float = 8.0, wheelbase: float = 2.7,
                 max_steer: float = 0.6, max_accel: float = 3.0, max_decel: float = 8.0, stop_decel: float = 2.0,
                 lookahead_min: float = 4.0, lookahead_time: float = 0.8, kp: float = 1.0, ki: float = 0.1,
                 kd: float = 0.0):
        self.path = path
        self.cruise_speed = _positive("cruise_speed", cruise_speed)
        self.stop_decel = _positive("stop_decel", stop_decel)
        self.pursuit = PurePursuit(path, wheelbase, max_steer, lookahead_min, lookahead_time)
        self.pid = SpeedPid(kp, ki, kd, max_accel, max_decel)
        self.progress: float | None = None

    def reset(self) -> None:
        self.pid.reset()
        self.progress = None

    def target_speed(self, s: float) -> float:
        """Cruise speed, or what still stops at the path's end at ``stop_decel``."""
        remaining = max(0.0, self.path.length - s)
        return min(self.cruise_speed, math.sqrt(2.0 * self.stop_decel * remaining))

    def command(self, x: float, y: float, yaw: float, speed: float, dt: float) -> AckermannCommand:
        """The command for the ego at (x, y, yaw) driving ``speed`` m/s, ``dt`` s after the previous call."""
        # The window reaches back a little (a stopped ego may be nudged backwards) and ahead by what
        # it can drive between two calls at any sensible rate.
        window = 10.0 + abs(speed) * max(dt, 0.1) * 2.0
        point = self.path.project(x, y, near_s=self.progress, window=window)
        self.progress = point.s
        target = self.target_speed(point.s)
        # On the stopping profile the target itself falls at stop_decel: feed that forward, or the
        # PID's lag (about 1 / kp seconds) carries the ego metres past the end.
        feed_forward = -self.stop_decel if target < self.cruise_speed and speed > 0 else 0.0
        accel = self.pid(target, speed, dt, feed_forward)
        return AckermannCommand(steering=self.pursuit.steering(x, y, yaw, speed, point.s), speed=target,
                                acceleration=accel)

    def __call__(self, ego, dt: float) -> AckermannCommand:
        """:meth:`command` for an :class:`~inspatio_ros.sim.vehicle.EgoState` (or anything with x, y, yaw, speed)."""
        return self.command(ego.x, ego.y, ego.yaw, ego.speed, dt)
