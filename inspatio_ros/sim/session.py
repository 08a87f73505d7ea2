"""SimSession: a running simulation of a world, without ROS.

One session holds the sim clock (:class:`~inspatio_ros.sim.clock.SimClock`), the ego and where it
comes from (``settings.mode``), the camera rig and the renderer
(:class:`~inspatio_ros.sim.simulator.Simulator`). A driver (the ROS node, a gym environment, a
notebook) calls it::

    session = SimSession(World.load("street.safetensors"), None, SessionSettings(mode="control"))
    session.command_twist(2.0, 0.1)            # m/s, rad/s
    while True:
        frame = session.tick()                 # SensorFrame of the cameras due now, or None
        ...

Modes (``settings.mode``): ``replay`` follows the recorded camera path (``replay.lateral_offset``
metres to the left); ``pose`` sits on the recorded start pose until :meth:`set_pose`; ``control``
starts there and integrates the vehicle model of the last command (:meth:`command_twist`:
unicycle, :meth:`command_ackermann`: kinematic bicycle) at the sim rate; ``trajectory`` follows
``trajectory.file``, looped.

Time: :meth:`tick` advances the clock by the wall time since the previous tick (times the rate),
moves the ego and renders the cameras that are due at their ``rate_hz``; every camera of one frame
has the same stamp. With ``settings.lockstep`` time moves only in :meth:`step`, so two runs give
identical frames. With ``settings.external_clock`` time comes from :meth:`follow_clock` (another
node's /clock) and stamps are in that clock's time.

Inputs are checked before they touch the state: a pose with NaN, not rigid, older than
``input.stale_after`` or jumping farther than the limits allow, an absurd command, a rate or seek
time out of range raises :class:`~inspatio_ros.errors.InputError` (counted in
:meth:`diagnostics`) and the ego keeps its last good state. An input for another mode is ignored
with a warning (the method returns False).

Pose jumps: a pose may lie at most ``input.max_jump + vehicle.max_speed * dt`` metres from the
previous accepted pose (the recorded start pose, and the pose :meth:`reset` puts the ego on, count
as accepted when they are taken, unstamped). ``dt`` (:func:`pose_interval`) is the difference of
the two poses' stamps when both are stamped and it is positive and at most
:data:`STAMP_SLACK_S` longer than the sim time between their arrivals: the stamps then come from
one clock, the node's /clock or a wall clock alike. Otherwise ``dt`` is the sim time between their
arrivals: for a stamp of 0 (it means "now"), a stamp going backwards, or stamps of two clocks (a
wall-clock stamp after sim-time ones, whose difference would allow ~5e10 m). In lockstep a pose
arrives at its stamp, since the clock moves there to render it.
"""
from __future__ import annotations

import functools
import logging
import math
import numbers
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import numpy as np

from ..camera import invert_pose
from ..errors import InputError
from .clock import SimClock
from .lidar import LidarSpec
from .rig import CameraSpec, check_sensors, load_rig, recorded_camera_parameters, sensor_divisors
from .settings import SessionSettings
from .simulator import RecordedPath, SensorFrame, Simulator
from .vehicle import BicycleModel, EgoState, UnicycleModel, check_pose_jump

if TYPE_CHECKING:
    from ..render import RenderSettings

log = logging.getLogger("inspatio_ros")

# How much longer the stamps may say two poses are apart than their arrivals do, and still be
# believed: delivery jitter, a sender whose copy of our /clock (sent at up to 100 Hz) lags, a
# sender's queue; the same second input.stale_after allows by default.
STAMP_SLACK_S = 1.0

# ``into`` of tick()/step(): camera names -> per camera the arrays to render into (see
# Simulator.render), e.g. shared memory of the processes that publish them.
IntoArrays = Callable[[list[str]], dict]


class ThrottledLog:
    """Each kind of warning at most once per interval: a flood of bad inputs must not flood the log."""

    def __init__(self, logger: logging.Logger = log):
        self._log = logger
        self._last: dict[str, float] = {}

    def warn(self, key: str, text: str, every_s: float = 2.0) -> None:
        now = time.monotonic()
        if now - self._last.get(key, -math.inf) >= every_s:
            self._last[key] = now
            self._log.warning(text)


@dataclass
class SessionStats:
    renders: deque = field(default_factory=lambda: deque(maxlen=240))        # wall times of renders
    render_ms: deque = field(default_factory=lambda: deque(maxlen=240))
    coverage: dict = field(default_factory=dict)                               # camera -> seen share
    dropped_inputs: int = 0
    frames_rendered: int = 0

    def achieved_hz(self, now: float) -> float:
        recent = [t for t in self.renders if now - t <= 2.0]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-9)


@dataclass(frozen=True)
class SessionDiagnostics:
    achieved_hz: float           # renders per wall second over the last 2 s
    target_hz: float             # the tick rate: the fastest sensor's
    render_ms_mean: float        # render + host copy, mean of the last 240 (NaN before the first)
    dropped_inputs: int          # inputs rejected with an InputError
    frames_rendered: int
    sim_time: float
    paused: bool
    mode: str
    coverage: dict               # camera -> share of pixels the world covered in its last render
    slow: bool                   # free-running under 80 % of target * rate (after 10 frames)
    message: str                 # "ok", or how slow


def _counts_rejections(method):
    """An InputError from an input method is counted as a dropped input, then raised."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except InputError:
            self.stats.dropped_inputs += 1
            raise
    return wrapper


class SimSession:
    """A world, a camera rig and a clock: ego updates, input checks, and frames on ``tick``/``step``.

    ``rig``: the cameras (None: one camera ``front`` like the recording's, so replay reproduces
    it); ``lidars``: the LiDARs (sim/lidar.py, default none). The sim ticks at the fastest
    sensor's rate; every sensor's rate divides it (else InputError) and a sensor is due on every
    n-th tick of a grid anchored at the session's start, so sensors due together render in one
    frame with one stamp. ``render``: the renderer's settings; ``refiner``: a generator.Refiner applied to every
    render; ``wall_clock``: seconds, monotonic (injected so tests run on a fake clock).
    """

    def __init__(self, world, rig: list[CameraSpec] | None = None, settings: SessionSettings | None = None, *,
                 render: RenderSettings | None = None, refiner=None,
                 wall_clock: Callable[[], float] = time.monotonic, simulator: Simulator | None = None,
                 lidars: list[LidarSpec] | None = None):
        """``simulator``: a :class:`Simulator` of ``world`` already made (then ``rig`` and
        ``lidars`` default to its own and ``render``/``refiner`` are its own): sessions on one world
        share its renderer, one upload of the world, as a vector environment's do. Frames a shared
        simulator renders into its own buffers are valid until another session's next render."""
        self.settings = s = settings if settings is not None else SessionSettings()
        if simulator is not None:
            if simulator.world is not world:
                raise ValueError("SimSession(simulator=...) must be a Simulator of the same world")
            self.rig = list(rig) if rig is not None else list(simulator.rig)
            self.lidars = list(lidars) if lidars is not None else list(simulator.lidars)
            unknown = {x.name for x in self.lidars} - {x.name for x in simulator.lidars}
            if unknown:
                raise ValueError(f"SimSession(simulator=...): LiDARs {sorted(unknown)} are not the simulator's")
            self.sim = simulator
        else:
            self.rig = list(rig) if rig is not None else load_rig(recorded_camera_parameters(world))
            self.lidars = list(lidars or [])
            self.sim = Simulator(world, self.rig, device=s.device, settings=render,
                                 reference_camera=s.replay.reference_camera or None, refiner=refiner,
                                 lidars=self.lidars)
        self.tick_rate = check_sensors(self.rig, self.lidars)
        self._divisor = sensor_divisors(self.rig, self.lidars)
        self.clock = SimClock(self.sim.path.start, self.sim.path.end, rate=s.clock.rate,
                              end_mode=s.clock.end_mode, wall_clock=wall_clock, lockstep=s.lockstep)
        self._wall = wall_clock
        self.stats = SessionStats()
        self._warnings = ThrottledLog()
        # Input callbacks may run on a transport's threads while tick() renders.
        self._lock = threading.Lock()
        self._map_from_base = self.sim.recorded_base_pose(self.sim.path.start, s.replay.lateral_offset)
        self._ego = EgoState.from_pose_matrix(self._map_from_base)
        self._velocity = (np.zeros(3), np.zeros(3))          # linear, angular in base_link
        self._pose_received: float | None = None             # perf_counter of the last accepted pose
        # The previous accepted pose's stamp (0: none) and arrival (sim time), for the jump limit.
        self._last_pose_stamp, self._last_pose_arrival = 0.0, self.clock.sim_time
        self._lockstep_pose: tuple[float, np.ndarray] | None = None   # (stamp, pose) awaiting step()
        self._last_sim = self.clock.sim_time
        self._stamp_offset = 0.0        # external clock time - sim time (0: the session's own clock)
        self._clock_anchored = False
        self._trajectory = self._load_trajectory() if s.mode == "trajectory" else None
        self._trajectory_start = self.clock.sim_time
        v = s.vehicle
        self.unicycle = UnicycleModel(max_speed=v.max_speed, max_yaw_rate=v.max_yaw_rate, max_accel=v.max_accel,
                                      timeout_s=v.command_timeout)
        self.bicycle = BicycleModel(wheelbase=v.wheelbase, max_steer=v.max_steer, max_steer_rate=v.max_steer_rate,
                                    max_accel=v.max_accel, max_decel=v.max_decel, max_speed=v.max_speed,
                                    timeout_s=v.command_timeout)
        self.vehicle = None                                  # the model of the last command received
        # The tick grid: tick k is at sim time grid_start + k / tick_rate, grid_start the first
        # frame's time; a sensor of divisor n is due on the first tick at or after each multiple
        # of n ticks (late ticks skip, not burst).
        self._grid_start: float | None = None
        self._last_slot = {name: -1 for name in self._divisor}

    # -- state -------------------------------------------------------------------------------
    @property
    def mode(self) -> str:
        return self.settings.mode

    @property
    def lockstep(self) -> bool:
        return self.settings.lockstep

    @property
    def sim_time(self) -> float:
        """Seconds of simulation since the session was made (monotonic)."""
        return self.clock.sim_time

    @property
    def stamp(self) -> float:
        """The time stamped on frames now: sim time, or the external clock's time."""
        return self.clock.sim_time + self._stamp_offset

    @property
    def recording_time(self) -> float:
        """The moment of the recording shown, in [path.start, path.end]."""
        return self.clock.recording_time

    @property
    def elapsed(self) -> float:
        """Seconds of the recording since its start (what :meth:`seek` takes)."""
        return self.clock.recording_time - self.sim.path.start

    @property
    def rate(self) -> float:
        return self.clock.rate

    @property
    def paused(self) -> bool:
        return self.clock.paused

    @property
    def path(self) -> RecordedPath:
        return self.sim.path

    @property
    def map_from_base(self) -> np.ndarray:
        """The ego pose now (4x4, a copy)."""
        with self._lock:
            return self._map_from_base.copy()

    @property
    def ego(self) -> EgoState:
        return self._ego

    @property
    def waiting_for_clock(self) -> bool:
        """With an external clock: nothing to stamp with before its first time arrives."""
        return self.settings.external_clock and not self._clock_anchored

    # -- inputs ------------------------------------------------------------------------------
    @_counts_rejections
    def set_pose(self, map_from_base: np.ndarray, stamp: float = 0.0, source: str = "pose") -> bool:
        """The ego's pose (base_link in map, 4x4) from outside, ``stamp`` seconds (0: unstamped).

        Checked first (InputError naming ``source``): finite and rigid, not older than
        ``input.stale_after`` (outside lockstep), and within ``input.max_jump`` plus what
        ``vehicle.max_speed`` allows since the previous accepted pose (the rule: this module's
        docstring). Then, in mode pose, it is the ego; in other modes it is ignored with a warning
        (returns False). In lockstep the next :meth:`step` renders it, stamped ``stamp``.
        """
        T = np.asarray(map_from_base, dtype=np.float64)
        if not math.isfinite(stamp):
            raise InputError(f"the {source} is stamped {stamp!r} s", "stamp it with finite seconds (0: unstamped)")
        now = self.stamp
        stale = self.settings.input.stale_after
        if stamp > 0 and stale > 0 and not self.lockstep and stamp < now - stale:
            raise InputError(f"the {source} is {now - stamp:.2f} s old",
                             "stamp inputs with the node's /clock (use_sim_time:=true) or set input.stale_after 0")
        # In lockstep the clock moves to the pose's stamp to render it: that is when it arrives.
        arrival = max(stamp, self.clock.sim_time) if self.lockstep and stamp > 0 else self.clock.sim_time
        dt, from_stamps = pose_interval(stamp, self._last_pose_stamp, arrival, self._last_pose_arrival)
        check_pose_jump(self._ego, T, dt, self.settings.vehicle.max_speed, 0.0, source=source)   # finite, rigid
        self._check_jump(T, dt, from_stamps, stamp, source)
        if self.mode != "pose":
            self._warnings.warn("pose_mode", f"a pose arrived in mode '{self.mode}': ignored (run with mode pose)",
                                10.0)
            return False
        with self._lock:
            self._map_from_base = T.copy()
            self._ego = EgoState.from_pose_matrix(T)
            self._pose_received = time.perf_counter()
            self._last_pose_stamp, self._last_pose_arrival = stamp, arrival
            if self.lockstep:
                self._lockstep_pose = (stamp, self._map_from_base)
        return True

    def _check_jump(self, T: np.ndarray, dt: float, from_stamps: bool, stamp: float, source: str) -> None:
        max_jump, max_speed = self.settings.input.max_jump, self.settings.vehicle.max_speed
        e = self._ego
        dist = float(np.linalg.norm(T[:3, 3] - [e.x, e.y, e.z]))
        allowed = max_jump + max_speed * dt
        if max_jump <= 0 or dist <= allowed:
            return
        fix = "publish a continuous pose (~/reset puts the ego back on the recorded start), or raise input.max_jump " \
              "(0: no check)"
        if from_stamps:
            basis = "between the stamps"
        elif stamp > 0 and self._last_pose_stamp > 0:
            basis = (f"between arrivals: its stamp {stamp:.3f} s and the previous pose's {self._last_pose_stamp:.3f} s "
                     "are not of one clock")
            fix = "stamp every pose with one clock (the node's /clock: use_sim_time:=true; 0 = now), " + fix
        else:
            basis = "between arrivals: " + ("it is unstamped" if stamp <= 0 else "the previous pose was unstamped")
        raise InputError(f"{source}: pose jumps {dist:.3f} m in {dt:.3g} s ({basis}), more than input.max_jump + "
                         f"vehicle.max_speed * dt = {max_jump:g} + {max_speed:g} * {dt:.3g} = {allowed:.3f} m", fix)

    @_counts_rejections
    def command_twist(self, linear_x: float, angular_z: float, source: str = "cmd_vel") -> bool:
        """Mode control: drive the unicycle model at ``linear_x`` m/s, turning ``angular_z`` rad/s."""
        if self.mode != "control":
            self._warnings.warn("cmd_mode", f"{source} arrived in mode '{self.mode}': ignored (run with mode control)",
                                10.0)
            return False
        self.unicycle.command(linear_x, angular_z, source=source)
        self.vehicle = self.unicycle
        return True

    @_counts_rejections
    def command_ackermann(self, speed: float, steering_angle: float, acceleration: float | None = None,
                          source: str = "ackermann_cmd") -> bool:
        """Mode control: drive the kinematic bicycle (m/s, rad; acceleration None or 0: the limits)."""
        if self.mode != "control":
            self._warnings.warn("cmd_mode", f"{source} arrived in mode '{self.mode}': ignored (run with mode control)",
                                10.0)
            return False
        self.bicycle.command(speed, steering_angle, acceleration=(acceleration or None), source=source)
        self.vehicle = self.bicycle
        return True

    # -- clock controls ----------------------------------------------------------------------
    def pause(self) -> None:
        self.clock.pause()

    def resume(self) -> None:
        self.clock.resume()

    @_counts_rejections
    def seek(self, elapsed: float) -> None:
        """Show the recording ``elapsed`` seconds after its start next (sim time runs on)."""
        self.clock.seek(self.sim.path.start + float(elapsed))

    @_counts_rejections
    def set_rate(self, rate: float) -> None:
        """Sim seconds per wall second, 0.1 .. 10."""
        self.clock.set_rate(float(rate))

    def reset(self, elapsed: float = 0.0, lateral_offset: float | None = None, heading_offset: float = 0.0) -> None:
        """Back to the recording ``elapsed`` seconds after its start (default: the start), the ego on
        the recorded pose there, ``lateral_offset`` metres to its left (None: ``replay.lateral_offset``)
        and turned ``heading_offset`` rad counter-clockwise about the vertical, the vehicle stopped."""
        for name, value in (("elapsed", elapsed), ("lateral_offset", lateral_offset), ("heading_offset", heading_offset)):
            if value is not None and not (isinstance(value, numbers.Real) and math.isfinite(value)):
                raise InputError(f"reset {name} = {value!r}", f"give {name} as finite seconds / metres / radians")
        duration = self.sim.path.end - self.sim.path.start
        if not 0.0 <= elapsed <= duration:
            raise InputError(f"reset elapsed = {elapsed!r} s is outside the recording", f"give 0 .. {duration:g} s")
        lateral = self.settings.replay.lateral_offset if lateral_offset is None else float(lateral_offset)
        with self._lock:
            self.clock.reset()
            if elapsed:
                self.clock.seek(self.sim.path.start + float(elapsed))
            pose = self.sim.recorded_base_pose(self.clock.recording_time, lateral)
            if heading_offset:
                c, s = math.cos(heading_offset), math.sin(heading_offset)
                pose[:3, :3] = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ pose[:3, :3]
            self._map_from_base = pose
            self._ego = EgoState.from_pose_matrix(self._map_from_base)
            self._velocity = (np.zeros(3), np.zeros(3))
            self.vehicle = None
            self._last_pose_stamp, self._last_pose_arrival = 0.0, self.clock.sim_time

    @_counts_rejections
    def follow_clock(self, t: float) -> None:
        """``settings.external_clock``: another clock reads ``t`` s; stamps take its time and the
        recording advances with it. A jump back of more than 1 s re-anchors (the recording goes on)."""
        if not self.settings.external_clock:
            raise RuntimeError("follow_clock needs SessionSettings(external_clock=True)")
        if not math.isfinite(t):
            raise InputError("/clock is not finite", "publish a finite clock")
        if not self._clock_anchored or t < self.stamp - 1.0:
            if self._clock_anchored:
                self._warnings.warn("clock_back", f"/clock jumped back to {t:.3f} s: following it "
                                                  "(recording continues)")
            self._stamp_offset = t - self.clock.sim_time
            self._clock_anchored = True
            return
        dt = t - self.stamp
        if dt > 0:
            self.clock.step(dt)

    # -- trajectory mode ---------------------------------------------------------------------
    def _load_trajectory(self):
        from ..trajectory import load_trajectory

        t = self.settings.trajectory
        if not t.file:
            raise InputError("mode trajectory needs trajectory.file", "give a trajectory file or preset name")
        ref_world = self.sim.camera_pose(self.sim.recorded_base_pose(self.sim.path.start), self.sim.reference)
        traj = load_trajectory(t.file, ref_world, look_at_depth=t.look_at_depth, fps=t.fps)
        # Trajectory poses are of the reference camera, in the world frame: base_link follows them
        # as it follows the recorded camera in replay.
        poses = self.sim.map_from_world @ traj.poses @ invert_pose(self.sim.reference.base_from_optical())
        times = traj.times - traj.times[0]
        if len(poses) == 1 or times[-1] <= 0:
            return poses[0]
        return RecordedPath(times, poses)

    def _trajectory_pose(self, elapsed: float) -> np.ndarray:
        """The trajectory at ``elapsed`` seconds, looped; a one-pose trajectory is that pose."""
        if isinstance(self._trajectory, np.ndarray):
            return self._trajectory
        return self._trajectory.camera_pose(elapsed % self._trajectory.end)

    # -- the loop ----------------------------------------------------------------------------
    def _move_ego(self, sim_time: float, dt: float) -> None:
        with self._lock:
            if self.mode == "replay":
                prev = self._map_from_base
                self._map_from_base = self.sim.recorded_base_pose(self.clock.recording_time,
                                                                  self.settings.replay.lateral_offset)
                self._velocity = body_velocity(prev, self._map_from_base, dt)
            elif self.mode == "trajectory":
                prev = self._map_from_base
                self._map_from_base = self._trajectory_pose(sim_time - self._trajectory_start)
                self._velocity = body_velocity(prev, self._map_from_base, dt)
            elif self.mode == "control" and self.vehicle is not None and dt > 0:
                self._ego = self.vehicle.step(self._ego, dt)
                self._map_from_base = self._ego.pose_matrix()
                self._velocity = (np.array([self._ego.speed, 0.0, 0.0]), np.array([0.0, 0.0, self._ego.yaw_rate]))

    def _slot(self, sim_time: float) -> int:
        """The index of the last tick of the grid at or before ``sim_time``."""
        return math.floor((sim_time - self._grid_start) * self.tick_rate + 1e-6)

    def _due(self, sim_time: float) -> tuple[list[CameraSpec], list[LidarSpec]]:
        """The sensors due at ``sim_time`` (marked as rendered): each sensor whose own period
        (its divisor's worth of ticks) has started since it was last rendered."""
        if self._grid_start is None:
            self._grid_start = sim_time
        slot = self._slot(sim_time)
        due = []
        for sensor in (*self.rig, *self.lidars):
            period = slot // self._divisor[sensor.name]
            if period > self._last_slot[sensor.name]:
                self._last_slot[sensor.name] = period
                due.append(sensor)
        return ([c for c in due if isinstance(c, CameraSpec)], [x for x in due if isinstance(x, LidarSpec)])

    def seconds_until_due(self) -> float:
        """Wall seconds until the next sensor is due (<= 0: now; inf while paused)."""
        if self.clock.paused:
            return math.inf
        if self._grid_start is None:
            return 0.0
        ticks = min((self._last_slot[name] + 1) * n for name, n in self._divisor.items())
        return (self._grid_start + ticks / self.tick_rate - self.clock.sim_time) / self.clock.rate

    def tick(self, into: IntoArrays | None = None) -> SensorFrame | None:
        """Free-running: advance the clock by the wall time since the last tick, move the ego and
        render the cameras that are due (None when none is, or while waiting for an external clock)."""
        if not self.settings.external_clock:
            self.clock.update()
        elif not self._clock_anchored:
            return None
        sim_time = self.clock.sim_time
        dt = sim_time - self._last_sim
        self._last_sim = sim_time
        self._move_ego(sim_time, dt)
        cameras, lidars = self._due(sim_time)
        return self._render(sim_time + self._stamp_offset, cameras, into, lidars) if cameras or lidars else None

    def step(self, into: IntoArrays | None = None) -> SensorFrame | None:
        """Lockstep: in mode pose, render the pose accepted since the last step at its stamp (the
        clock moves forward to it; None when no pose came) with every sensor; in the other modes
        advance one tick (a period of the fastest sensor), move the ego and render the sensors due
        on that tick."""
        if self.mode == "pose":
            with self._lock:
                request, self._lockstep_pose = self._lockstep_pose, None
            if request is None:
                return None
            stamp = request[0] if request[0] > 0 else self.clock.sim_time
            if stamp > self.clock.sim_time:
                self.clock.step(stamp - self.clock.sim_time)
            return self._render(stamp, self.rig, into, self.lidars)
        sim_time = self.advance()
        cameras, lidars = self._due(sim_time)
        return self._render(sim_time, cameras, into, lidars)

    def advance(self, dt: float | None = None) -> float:
        """Lockstep without rendering: move the clock ``dt`` sim seconds (default one tick: a
        period of the fastest sensor) and the ego with it; returns the sim time. For drivers that
        render themselves (a vector environment batching many sessions' cameras)."""
        period = 1.0 / self.tick_rate if dt is None else float(dt)
        self.clock.step(period)
        sim_time = self.clock.sim_time
        self._move_ego(sim_time, period)
        self._last_sim = sim_time
        return sim_time

    def warm_up(self) -> float:
        """Render the rig once, keeping nothing (on CUDA the first render compiles the renderer's
        kernels: minutes on a fresh machine, seconds with Inductor's cache). Returns the seconds taken."""
        started = time.perf_counter()
        self.sim.warm_up(self.clock.recording_time, self.map_from_base)
        return time.perf_counter() - started

    def _render(self, stamp: float, cameras: list[CameraSpec], into: IntoArrays | None,
                lidars: list[LidarSpec] = ()) -> SensorFrame:
        with self._lock:
            map_from_base = self._map_from_base.copy()
            velocity = self._velocity
            received, self._pose_received = self._pose_received, None
        arrays = into([c.name for c in cameras]) if into is not None and cameras else None
        frame = self.sim.render(stamp, self.clock.recording_time, map_from_base, cameras, into=arrays,
                                lidars=list(lidars), velocity=velocity)
        frame.linear_velocity, frame.angular_velocity = velocity
        frame.input_received = received
        s = self.stats
        s.renders.append(self._wall())
        s.render_ms.append(frame.render_s * 1e3)
        s.frames_rendered += 1
        for cf in frame.cameras:
            s.coverage[cf.spec.name] = cf.coverage_fraction
        return frame

    # -- diagnostics -------------------------------------------------------------------------
    def achieved_hz(self) -> float:
        return self.stats.achieved_hz(self._wall())

    def diagnostics(self) -> SessionDiagnostics:
        s = self.stats
        hz = self.achieved_hz()
        target = self.tick_rate
        slow = (not self.clock.paused and not self.lockstep and s.frames_rendered > 10
                and hz < 0.8 * target * self.clock.rate)
        return SessionDiagnostics(
            achieved_hz=hz, target_hz=target,
            render_ms_mean=float(np.mean(s.render_ms)) if s.render_ms else float("nan"),
            dropped_inputs=s.dropped_inputs, frames_rendered=s.frames_rendered, sim_time=self.clock.sim_time,
            paused=self.clock.paused, mode=self.mode, coverage=dict(s.coverage), slow=slow,
            message=f"rendering {hz:.1f} Hz of {target * self.clock.rate:.1f} Hz" if slow else "ok")


def pose_interval(stamp: float, prev_stamp: float, arrival: float, prev_arrival: float,
                  slack: float = STAMP_SLACK_S) -> tuple[float, bool]:
    """Seconds a pose had to move from the previous accepted one, and whether the stamps gave it.

    ``stamp``/``prev_stamp``: the poses' stamps (0: unstamped, meaning "now"); ``arrival``/
    ``prev_arrival``: sim time when each arrived. The stamps' difference when both are stamped, it is
    positive, and it exceeds the time between the arrivals by at most ``slack`` (so both stamps come
    from one clock); else the time between the arrivals.
    """
    between_arrivals = max(0.0, arrival - prev_arrival)
    if stamp > 0 and prev_stamp > 0 and 0 < stamp - prev_stamp <= between_arrivals + slack:
        return stamp - prev_stamp, True
    return between_arrivals, False


def body_velocity(prev: np.ndarray, cur: np.ndarray, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """Finite-difference linear and angular velocity in the body frame of ``cur``."""
    if dt <= 0:
        return np.zeros(3), np.zeros(3)
    rot = cur[:3, :3]
    linear = rot.T @ (cur[:3, 3] - prev[:3, 3]) / dt
    d = prev[:3, :3].T @ rot
    angle = math.acos(float(np.clip((np.trace(d) - 1) / 2, -1.0, 1.0)))
    if angle < 1e-9:
        return linear, np.zeros(3)
    axis = np.array([d[2, 1] - d[1, 2], d[0, 2] - d[2, 0], d[1, 0] - d[0, 1]]) / (2 * math.sin(angle))
    return linear, axis * angle / dt
