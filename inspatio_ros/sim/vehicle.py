"""Ego motion: the pose of ``base_link`` in ``map`` driven by control commands, integrated in sim time.

Frames follow REP-103: ``map`` with x forward, y left, z up; ``yaw`` turns about z
(counter-clockwise seen from above, i.e. a positive yaw rate turns left). The models move the ego
in the x-y plane: z, pitch and roll are kept as they are (the ego drives on at its current
height), unless a ``ground_height(x, y)`` callable is given, in which case z follows the terrain
height changes along the way (the offset of base_link above the ground is kept; pitch and roll are
still kept).

Two models, both ``command(...)`` (store the latest command) then ``step(state, dt)`` (integrate
``dt`` seconds of sim time, return the new :class:`EgoState`):

* :class:`UnicycleModel` -- ``geometry_msgs/Twist`` (``linear.x`` m/s, ``angular.z`` rad/s), for
  differential-drive robots. The speed follows the command at most ``max_accel``; the yaw rate at
  most ``max_yaw_accel`` (default: at once).
* :class:`BicycleModel` -- ``ackermann_msgs/AckermannDrive`` (``speed``, ``steering_angle``,
  optional ``acceleration`` and ``steering_angle_velocity``), a kinematic bicycle about the rear
  axle: base_link is the centre of the rear axle, yaw rate = speed * tan(steering) / wheelbase, so
  a constant steering angle drives a circle of radius wheelbase / tan(steering). The steering
  angle moves at most ``max_steer_rate``; the speed changes at most ``max_accel`` when its
  magnitude grows and ``max_decel`` when it shrinks (through zero when reversing).

Commands: non-finite values and values far beyond the limits (|speed| > 2 * max_speed, |yaw rate|
> 2 * max_yaw_rate, |steering| > 2 * max_steer or >= pi/2) are physically meaningless, most likely
a unit or sign bug in the sender, and are rejected with an :class:`InputError` naming the field and
the limit; the previous command stays in force (and keeps ageing). Values over a limit but within
those bounds are clamped to the limit.

Safety: a :class:`CommandTimeout` watches the commands. If no valid command arrived for
``timeout_s`` seconds of sim time (default 0.5 s; also before the first command) the model brakes
to a stop: the target speed becomes 0 (reached at ``max_accel`` for the unicycle, ``max_decel`` for
the bicycle), the unicycle's target yaw rate 0, the bicycle's steering stays where it is.

Integration is exact where the inputs are steady (constant speed and curvature: one exact arc,
however long ``dt``) and sub-stepped (``max_substep`` seconds, default 0.01) while the speed,
steering or yaw rate is still ramping, with the ramps themselves integrated exactly. So a large
``dt`` (a slow render, a lockstep step of a second) gives the same path as many small ones.

:func:`check_pose_jump` validates an externally supplied pose (the pose-input mode) before it is
used.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..camera import make_pose, rotation_from_rpy
from ..errors import InputError

GroundHeight = Callable[[float, float], float]

# Sanity bounds: commands beyond REJECT_FACTOR times a limit are rejected, not clamped.
REJECT_FACTOR = 2.0


def wrap_angle(angle: float) -> float:
    """The same angle in [-pi, pi]."""
    return math.remainder(angle, 2.0 * math.pi)


def rpy_from_rotation(r: np.ndarray) -> tuple[float, float, float]:
    """(roll, pitch, yaw) of R = Rz(yaw) @ Ry(pitch) @ Rx(roll), the inverse of ``rotation_from_rpy``.

    Pitch is in [-pi/2, pi/2]; at pitch = +-pi/2 (gimbal lock) roll is taken as 0.
    """
    r = np.asarray(r, dtype=np.float64)
    sp = -float(r[2, 0])
    pitch = math.asin(max(-1.0, min(1.0, sp)))
    if math.hypot(r[0, 0], r[1, 0]) > 1e-9:
        roll = math.atan2(r[2, 1], r[2, 2])
        yaw = math.atan2(r[1, 0], r[0, 0])
    else:
        roll = 0.0
        yaw = math.atan2(-r[0, 1], r[1, 1])
    return roll, pitch, yaw


@dataclass
class EgoState:
    """The ego (``base_link``) in ``map``: position (m), attitude (rad) and motion.

    ``speed`` is the signed forward speed (m/s, negative when reversing), ``yaw_rate`` rad/s
    (positive: turning left), ``steering`` the bicycle's virtual front-wheel angle (rad, positive:
    left).
    """

    x: float
    y: float
    z: float
    yaw: float
    pitch: float = 0.0
    roll: float = 0.0
    speed: float = 0.0
    yaw_rate: float = 0.0
    steering: float = 0.0

    def pose_matrix(self) -> np.ndarray:
        """4x4 ``map_from_base_link`` (float64)."""
        return make_pose(rotation_from_rpy(self.roll, self.pitch, self.yaw), [self.x, self.y, self.z])

    @classmethod
    def from_pose_matrix(cls, pose: np.ndarray, speed: float = 0.0, yaw_rate: float = 0.0,
                         steering: float = 0.0) -> EgoState:
        """The state at ``map_from_base_link`` pose (rigid 4x4); roll/pitch/yaw are extracted."""
        pose = np.asarray(pose, dtype=np.float64)
        if pose.shape != (4, 4):
            raise InputError(f"ego pose has shape {pose.shape}", "give a 4x4 map_from_base_link matrix")
        roll, pitch, yaw = rpy_from_rotation(pose[:3, :3])
        x, y, z = (float(v) for v in pose[:3, 3])
        return cls(x, y, z, yaw, pitch, roll, float(speed), float(yaw_rate), float(steering))


class CommandTimeout:
    """Time since the last valid command, in sim seconds; ``expired`` after ``timeout_s``.

    Starts expired (no command yet). ``timeout_s = math.inf`` disables the safety stop.
    """

    def __init__(self, timeout_s: float = 0.5):
        if not _is_number(timeout_s) or math.isnan(timeout_s) or timeout_s <= 0:
            raise InputError(f"command timeout {timeout_s!r} s is not valid",
                             "give a timeout > 0 seconds of sim time, e.g. 0.5")
        self.timeout_s = float(timeout_s)
        self.since_command = math.inf

    def reset(self) -> None:
        """A command arrived now."""
        self.since_command = 0.0

    def advance(self, dt: float) -> None:
        self.since_command += dt

    @property
    def remaining(self) -> float:
        """Sim seconds until the timeout expires (0 once expired)."""
        return max(0.0, self.timeout_s - self.since_command)

    @property
    def expired(self) -> bool:
        return self.remaining <= 1e-12


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _check_limit(name: str, value, allow_inf: bool = True) -> float:
    ok = _is_number(value) and not math.isnan(value) and value > 0 and (allow_inf or math.isfinite(value))
    if not ok:
        raise InputError(f"vehicle parameter {name} = {value!r} is not valid",
                         f"give a {'' if allow_inf else 'finite '}value > 0")
    return float(value)


def _check_command(source: str, field: str, value, limit: float, param: str, unit: str) -> float:
    """The command value clamped to +-limit; InputError when non-finite or beyond REJECT_FACTOR * limit."""
    if not _is_number(value) or not math.isfinite(value):
        raise InputError(f"{source}: {field} = {value!r} is not a finite number",
                         f"send a finite {field} in {unit}")
    value = float(value)
    if abs(value) > REJECT_FACTOR * limit:
        raise InputError(f"{source}: {field} = {value} {unit} is beyond {REJECT_FACTOR:g} x {param} "
                         f"({limit} {unit}); command rejected",
                         f"send |{field}| <= {param} = {limit} {unit} (check units and signs), "
                         f"or raise the {param} parameter")
    return max(-limit, min(limit, value))


def _ramp(v: float, target: float, h: float, a_up: float, a_down: float) -> tuple[float, float]:
    """Move ``v`` toward ``target`` for ``h`` seconds; (new value, exact integral of v over h).

    The magnitude grows at most ``a_up`` per second and shrinks at most ``a_down`` (through zero
    when the sign changes: first down to 0 at ``a_down``, then up at ``a_up``).
    """
    integral = 0.0
    t = h
    for _ in range(3):
        if t <= 0.0 or v == target:
            break
        shrinking = v != 0.0 and (target == 0.0 or (v > 0.0) != (target > 0.0) or abs(target) < abs(v))
        if shrinking:
            goal = target if (target != 0.0 and (v > 0.0) == (target > 0.0)) else 0.0
            a = a_down
        else:
            goal, a = target, a_up
        need = abs(goal - v) / a
        if need <= t:
            integral += 0.5 * (v + goal) * need
            v, t = goal, t - need
        else:
            v1 = v + math.copysign(a * t, goal - v)
            integral += 0.5 * (v + v1) * t
            v, t = v1, 0.0
    integral += v * t
    return v, integral


def _arc(x: float, y: float, yaw: float, ds: float, dtheta: float) -> tuple[float, float, float]:
    """Exact planar motion along an arc of length ``ds`` turning by ``dtheta``."""
    half = 0.5 * dtheta
    f = math.sin(half) / half if abs(half) > 1e-6 else 1.0 - half * half / 6.0
    chord = ds * f
    heading = yaw + half
    return x + chord * math.cos(heading), y + chord * math.sin(heading), yaw + dtheta


class _Model:
    """Shared stepping: timeout, sub-steps while ramping, one exact arc while steady, terrain."""

    def __init__(self, timeout_s: float, ground_height: GroundHeight | None, max_substep: float):
        self.timeout = CommandTimeout(timeout_s)
        self.ground_height = ground_height
        self.max_substep = _check_limit("max_substep", max_substep, allow_inf=False)

    # subclasses: _steady(state) and _substep(state, h) on a mutable working state
    def _steady(self, s: EgoState) -> bool:
        raise NotImplementedError

    def _substep(self, s: EgoState, h: float) -> None:
        raise NotImplementedError

    def step(self, state: EgoState, dt: float) -> EgoState:
        """Integrate ``dt`` seconds of sim time from ``state``; the input state is not changed."""
        if not _is_number(dt) or not math.isfinite(dt) or dt < 0:
            raise InputError(f"vehicle step of {dt!r} s is not valid", "give a finite dt >= 0 seconds of sim time")
        s = dataclasses.replace(state)
        x0, y0 = s.x, s.y
        remaining = float(dt)
        while remaining > 0.0:
            h = remaining
            if not self.timeout.expired:
                h = min(h, self.timeout.remaining)
            if not self._steady(s):
                h = min(h, self.max_substep)
            self._substep(s, h)
            self.timeout.advance(h)
            remaining = 0.0 if h >= remaining else remaining - h
        s.yaw = wrap_angle(s.yaw)
        if self.ground_height is not None and dt > 0:
            h0, h1 = self.ground_height(x0, y0), self.ground_height(s.x, s.y)
            if math.isfinite(h0) and math.isfinite(h1):
                s.z += h1 - h0
        return s


class UnicycleModel(_Model):
    """Differential drive from ``geometry_msgs/Twist`` (``linear.x``, ``angular.z``)."""

    def __init__(self, max_speed: float = 2.0, max_yaw_rate: float = 2.0, max_accel: float = 2.0,
                 max_yaw_accel: float = math.inf, timeout_s: float = 0.5,
                 ground_height: GroundHeight | None = None, max_substep: float = 0.01):
        super().__init__(timeout_s, ground_height, max_substep)
        self.max_speed = _check_limit("max_speed", max_speed, allow_inf=False)
        self.max_yaw_rate = _check_limit("max_yaw_rate", max_yaw_rate, allow_inf=False)
        self.max_accel = _check_limit("max_accel", max_accel)
        self.max_yaw_accel = _check_limit("max_yaw_accel", max_yaw_accel)
        self.speed_cmd = 0.0
        self.yaw_rate_cmd = 0.0

    def command(self, linear_x: float, angular_z: float, source: str = "cmd_vel") -> None:
        """Store a Twist command (m/s, rad/s); InputError (command ignored) when absurd."""
        v = _check_command(source, "linear.x", linear_x, self.max_speed, "max_speed", "m/s")
        w = _check_command(source, "angular.z", angular_z, self.max_yaw_rate, "max_yaw_rate", "rad/s")
        self.speed_cmd, self.yaw_rate_cmd = v, w
        self.timeout.reset()

    def _targets(self) -> tuple[float, float]:
        return (0.0, 0.0) if self.timeout.expired else (self.speed_cmd, self.yaw_rate_cmd)

    def _steady(self, s: EgoState) -> bool:
        return (s.speed, s.yaw_rate) == self._targets()

    def _substep(self, s: EgoState, h: float) -> None:
        v_target, w_target = self._targets()
        s.speed, ds = _ramp(s.speed, v_target, h, self.max_accel, self.max_accel)
        s.yaw_rate, dtheta = _ramp(s.yaw_rate, w_target, h, self.max_yaw_accel, self.max_yaw_accel)
        s.x, s.y, s.yaw = _arc(s.x, s.y, s.yaw, ds, dtheta)


class BicycleModel(_Model):
    """Kinematic bicycle about the rear axle from ``ackermann_msgs/AckermannDrive``."""

    def __init__(self, wheelbase: float = 2.7, max_steer: float = 0.6, max_steer_rate: float = 0.8,
                 max_accel: float = 3.0, max_decel: float = 8.0, max_speed: float = 40.0,
                 timeout_s: float = 0.5, ground_height: GroundHeight | None = None,
                 max_substep: float = 0.01):
        super().__init__(timeout_s, ground_height, max_substep)
        self.wheelbase = _check_limit("wheelbase", wheelbase, allow_inf=False)
        self.max_steer = _check_limit("max_steer", max_steer, allow_inf=False)
        if self.max_steer >= math.pi / 2:
            raise InputError(f"vehicle parameter max_steer = {max_steer} rad is not below pi/2",
                             "give the largest front-wheel angle in radians, e.g. 0.6")
        self.max_steer_rate = _check_limit("max_steer_rate", max_steer_rate)
        self.max_accel = _check_limit("max_accel", max_accel)
        self.max_decel = _check_limit("max_decel", max_decel)
        self.max_speed = _check_limit("max_speed", max_speed, allow_inf=False)
        self.speed_cmd = 0.0
        self.steering_cmd = 0.0
        self.accel_cmd = 0.0        # 0: as fast as the limits allow (AckermannDrive convention)
        self.steer_rate_cmd = 0.0

    def command(self, speed: float, steering_angle: float, acceleration: float | None = None,
                steering_angle_velocity: float | None = None, source: str = "ackermann_cmd") -> None:
        """Store an AckermannDrive command; InputError (command ignored) when absurd.

        ``acceleration`` and ``steering_angle_velocity`` are magnitudes (sign ignored) that may
        lower the model's limits for this command; None or 0 means "as fast as the limits allow",
        as in ``ackermann_msgs``.
        """
        v = _check_command(source, "speed", speed, self.max_speed, "max_speed", "m/s")
        if _is_number(steering_angle) and math.isfinite(steering_angle) and abs(steering_angle) >= math.pi / 2:
            raise InputError(f"{source}: steering_angle = {steering_angle} rad is not below pi/2; command rejected",
                             f"send |steering_angle| <= max_steer = {self.max_steer} rad (check units: radians)")
        steer = _check_command(source, "steering_angle", steering_angle, self.max_steer, "max_steer", "rad")
        extras = []
        for field, value in (("acceleration", acceleration), ("steering_angle_velocity", steering_angle_velocity)):
            if value is None:
                value = 0.0
            if not _is_number(value) or not math.isfinite(value):
                raise InputError(f"{source}: {field} = {value!r} is not a finite number",
                                 f"send a finite {field} (0: as fast as the limits allow)")
            extras.append(abs(float(value)))
        self.speed_cmd, self.steering_cmd = v, steer
        self.accel_cmd, self.steer_rate_cmd = extras
        self.timeout.reset()

    def _limits(self) -> tuple[float, float, float]:
        """(accel, decel, steer rate) in force now."""
        if self.timeout.expired:                       # safety stop: full braking
            return self.max_accel, self.max_decel, self.max_steer_rate
        a, r = self.accel_cmd, self.steer_rate_cmd
        return (min(self.max_accel, a) if a else self.max_accel,
                min(self.max_decel, a) if a else self.max_decel,
                min(self.max_steer_rate, r) if r else self.max_steer_rate)

    def _targets(self, s: EgoState) -> tuple[float, float]:
        if self.timeout.expired:
            return 0.0, s.steering                     # brake to a stop, steering held
        return self.speed_cmd, self.steering_cmd

    def _steady(self, s: EgoState) -> bool:
        return (s.speed, s.steering) == self._targets(s)

    def _substep(self, s: EgoState, h: float) -> None:
        v_target, steer_target = self._targets(s)
        a_up, a_down, steer_rate = self._limits()
        steer0 = s.steering
        s.steering, _ = _ramp(steer0, steer_target, h, steer_rate, steer_rate)
        steer_mid, _ = _ramp(steer0, steer_target, 0.5 * h, steer_rate, steer_rate)
        s.speed, ds = _ramp(s.speed, v_target, h, a_up, a_down)
        s.x, s.y, s.yaw = _arc(s.x, s.y, s.yaw, ds, ds * math.tan(steer_mid) / self.wheelbase)
        s.yaw_rate = s.speed * math.tan(s.steering) / self.wheelbase

    def turning_radius(self, steering_angle: float) -> float:
        """Radius of the rear axle's circle at a steering angle (inf when straight)."""
        t = math.tan(steering_angle)
        return math.inf if t == 0 else self.wheelbase / abs(t)


def check_pose_jump(prev: EgoState | None, new_pose: np.ndarray, dt: float | None, max_speed: float,
                    max_jump: float, source: str = "pose") -> EgoState:
    """Validate an external ``map_from_base_link`` pose; return it as an EgoState.

    Rejected with an :class:`InputError` naming ``source``: a matrix that is not 4x4, holds NaN or
    infinity, or whose rotation is not orthonormal with det +1 (tolerance 1e-3) or bottom row not
    [0, 0, 0, 1]; and, when ``max_jump > 0`` and there is a previous state, a move of more than
    ``max_jump + max_speed * dt`` metres since ``prev`` (what the ego can drive in ``dt`` plus
    ``max_jump`` of slack for localisation jumps). ``max_jump <= 0`` disables the jump check.
    ``dt = None`` (time step unknown, e.g. an unstamped message) allows ``max_jump`` alone.
    The returned state's speed (along its heading) and yaw rate are the finite differences to
    ``prev`` over ``dt`` (0 without ``prev``, or when ``dt`` is 0 or None).
    """
    pose = np.asarray(new_pose, dtype=np.float64)
    if pose.shape != (4, 4):
        raise InputError(f"{source}: pose has shape {pose.shape}", "give a 4x4 map_from_base_link matrix")
    if not np.isfinite(pose).all():
        raise InputError(f"{source}: pose holds NaN or infinity", "publish a finite pose (check the localisation)")
    r = pose[:3, :3]
    err = float(np.abs(r.T @ r - np.eye(3)).max())
    det = float(np.linalg.det(r))
    if err > 1e-3 or det < 0.99:
        raise InputError(f"{source}: rotation is not orthonormal (|R^T R - I| = {err:.2e}, det {det:.3f})",
                         "publish a normalised quaternion / a rigid transform")
    if np.abs(pose[3] - [0.0, 0.0, 0.0, 1.0]).max() > 1e-6:
        raise InputError(f"{source}: bottom row {pose[3].tolist()} is not [0, 0, 0, 1]", "give a rigid 4x4 transform")
    if dt is not None and (not _is_number(dt) or not math.isfinite(dt) or dt < 0):
        raise InputError(f"{source}: time step {dt!r} s is not valid", "give a finite dt >= 0 seconds")
    dt = 0.0 if dt is None else float(dt)
    new = EgoState.from_pose_matrix(pose)
    if prev is None:
        return new
    delta = np.array([new.x - prev.x, new.y - prev.y, new.z - prev.z])
    dist = float(np.linalg.norm(delta))
    if max_jump > 0:
        allowed = max_jump + max_speed * dt
        if not dist <= allowed:
            raise InputError(f"{source}: pose jumps {dist:.3f} m in {dt:g} s, more than "
                             f"max_jump + max_speed * dt = {allowed:.3f} m",
                             "publish a continuous pose, reset the ego to teleport, or raise max_jump "
                             "(0 disables the check)")
    if dt > 0:
        new.speed = float(delta[0] * math.cos(new.yaw) + delta[1] * math.sin(new.yaw)) / dt
        new.yaw_rate = wrap_angle(new.yaw - prev.yaw) / dt
    return new
