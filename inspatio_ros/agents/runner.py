"""Run one scenario in-process: a SimSession, a controller, the vehicle model, metrics, a recording.

No ROS and no DDS: the session renders in lockstep (mode pose: the runner owns the vehicle model,
so a scenario can start anywhere on the recorded path, be pushed mid-run and drive with either
command type), and the controller is a Python object in the same process. One control period
(``1 / rate``) is one step:

1. the ego pose goes to the session (``set_pose``, stamped with the step's sim time) and the rig
   is rendered (``step``): the frame shows the moment of the recording ``start_time + t``;
2. unless the frame is dropped (``perturbations.drop_frames``) or skipped (paced run fallen
   behind), the controller gets an :class:`Observation` (images with ``sensor_noise``) and returns
   a command, which the vehicle model takes;
3. the vehicle model advances the ego one period; the step's metrics are taken.

The controller is the scenario's: the baseline, a user's callable, or (``ros2``) the ROS
adapter's bridge (ros/scenario_bridge.py), which publishes each frame over DDS and returns the
external stack's answer; a controller with ``close()`` is closed when the run ends.

What the controller saw and did is recorded into ``OUT/recording`` (rosbag2, MCAP): the frames it
got as the node's topics (images, camera_info, /tf, /odom, /clock) and each command on
``/ackermann_cmd`` (ackermann_msgs/AckermannDriveStamped) or ``/cmd_vel`` (geometry_msgs/Twist).
Per-step metrics go to ``OUT/steps.csv``; :func:`run_scenario` returns the summary (also written
to ``OUT/summary.json``).

Summary columns (by ``metrics``): cross_track: mean |e|, RMS and max |e| (m, signed distance to
the recorded path); heading: mean and max |heading error| (rad); comfort: max and RMS |jerk|
(m/s^3, from the model's speed), max |lateral acceleration| (speed x yaw rate, m/s^2); corridor:
seconds and share of the run farther than ``corridor_half_width`` from the path; progress: metres
along the path and the share of the path left at the start that was driven; timing: frames the
controller got per sim second (``achieved_hz``; drops and skips lower it), steps per wall second,
step latency (render + noise + controller, ms) p50 / p99 / max, controller ms p50.
"""
from __future__ import annotations

import csv
import json
import math
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import InputError
from .controllers import AckermannCommand, BaselineController
from .scenario import ControllerSpec, Scenario, resolve_callable

# ackermann_msgs is not in rosbags' Jazzy store: its definitions, as the node's DDS types have them.
ACKERMANN_DRIVE_MSG = """float32 steering_angle
float32 steering_angle_velocity
float32 speed
float32 acceleration
float32 jerk
"""
ACKERMANN_DRIVE_STAMPED_MSG = """std_msgs/Header header
ackermann_msgs/AckermannDrive drive
"""


@dataclass(frozen=True)
class Observation:
    """What a controller gets each step it is not denied a frame."""

    time: float                        # sim seconds since the scenario started
    map_from_base: np.ndarray          # 4x4 ego pose (perfect localisation, as the node's /odom)
    speed: float                       # m/s, forward
    yaw_rate: float                    # rad/s, left positive
    steering: float                    # rad, the bicycle's front-wheel angle now
    images: dict                       # camera name -> (H, W, 3) uint8, sensor noise applied
    depth: dict                        # camera name -> (H, W) float32 metres (camera.depth), else {}
    path: Any                          # the ReferencePath (agents/path.py) being followed
    frame: Any = None                  # the SensorFrame shown (noise applied), as a bridge publishes it
    session: Any = None                # the SimSession rendering it (for bridges, not for steering)


@dataclass(frozen=True)
class TwistCommand:
    linear_x: float                    # m/s
    angular_z: float                   # rad/s


# The ``ros2`` controller: the ROS adapter's bridge (the core imports nothing of ros/; it names it).
ROS2_BRIDGE = "inspatio_ros.ros.scenario_bridge:ros2_controller"

STEP_COLUMNS = ("t", "x", "y", "yaw", "speed", "accel", "jerk", "lat_accel", "s", "cross_track", "heading_error",
                "in_corridor", "delivered", "skipped", "cmd_speed", "cmd_steer", "render_ms", "controller_ms",
                "step_ms")


# -- controllers -------------------------------------------------------------------------------

def make_controller(spec: ControllerSpec, scenario: Scenario, path, out_dir: Path) -> Callable[[Observation], Any]:
    """The controller object of ``spec`` for one run of ``scenario`` along ``path`` (a controller
    with a ``close()`` method is closed when the run ends)."""
    if spec.kind == "baseline":
        return baseline_controller(scenario, path, **spec.params)
    if spec.kind in ("callable", "ros2"):
        if spec.kind == "ros2":           # the ROS adapter's bridge, named like a user's callable
            factory = resolve_callable(ROS2_BRIDGE, f"scenario {scenario.name}")
            controller = factory(scenario, path, out_dir=out_dir, **spec.params)
        else:
            factory = resolve_callable(spec.target, f"scenario {scenario.name}")
            controller = factory(scenario, path, **spec.params)
        if not callable(controller):
            raise InputError(f"controller {spec.target} returned {type(controller).__name__}, not a controller",
                             "return a callable taking an Observation and returning an AckermannCommand or "
                             "TwistCommand")
        return controller
    raise InputError(f"controller kind '{spec.kind}' cannot run here", "use baseline or a Python callable")


def baseline_controller(scenario: Scenario, path, **params) -> Callable[[Observation], AckermannCommand]:
    """The built-in baseline (agents/controllers.py: pure pursuit + speed PID) with the scenario's
    vehicle limits; ``params``: BaselineController's (cruise_speed, lookahead_min, kp, ...)."""
    v = scenario.settings.vehicle
    limits = {"wheelbase": v.wheelbase, "max_steer": v.max_steer, "max_accel": v.max_accel, "max_decel": v.max_decel}
    try:
        baseline = BaselineController(path, **{**limits, **params})
    except TypeError as exc:
        raise InputError(f"scenario {scenario.name}: baseline controller params {sorted(params)} ({exc})",
                         "give params of BaselineController: cruise_speed, stop_decel, lookahead_min, "
                         "lookahead_time, kp, ki, kd") from None
    last = {"t": None}

    def act(obs: Observation) -> AckermannCommand:
        dt = 0.0 if last["t"] is None else obs.time - last["t"]
        last["t"] = obs.time
        x, y = float(obs.map_from_base[0, 3]), float(obs.map_from_base[1, 3])
        yaw = math.atan2(obs.map_from_base[1, 0], obs.map_from_base[0, 0])
        return baseline.command(x, y, yaw, obs.speed, dt)

    return act


def as_command(value, source: str):
    """A controller's return value as AckermannCommand / TwistCommand (a (speed, steering) pair works)."""
    if isinstance(value, (AckermannCommand, TwistCommand)):
        return value
    if isinstance(value, (tuple, list)) and len(value) == 2:
        return AckermannCommand(steering=float(value[1]), speed=float(value[0]), acceleration=0.0)
    raise InputError(f"{source} returned {value!r}",
                     "return an AckermannCommand(steering, speed, acceleration) (inspatio_ros.agents.controllers), "
                     "a TwistCommand(linear_x, angular_z) or a (speed, steering) pair")


# -- worlds, rigs and sessions -----------------------------------------------------------------

_WORLDS: dict[tuple, Any] = {}
_WORLDS_LOCK = threading.Lock()


def load_world(path: str, device: str = "auto"):
    """The World at ``path`` ('' = the embedded default world), kept per process: a Ray worker that
    runs several scenarios of one world reads it once."""
    from ..world import World

    if not path:
        from ..demo import ensure_default_world

        path = str(ensure_default_world(device, verbose=False))
    p = Path(path)
    if not p.is_file():
        raise InputError(f"world file {path} does not exist (on {_host()})",
                         "give a world built with `inspatio-ros build`; on a cluster it must be reachable from "
                         "every machine at the same path (a shared filesystem)")
    key = (str(p.resolve()), p.stat().st_mtime_ns)
    with _WORLDS_LOCK:
        if key not in _WORLDS:
            _WORLDS.clear()                       # one world per process: a worker moves to the next
            _WORLDS[key] = World.load(p)
        return _WORLDS[key]


def _host() -> str:
    import socket

    return socket.gethostname()


def scenario_rig(scenario: Scenario, world):
    from ..sim.rig import load_rig, load_rig_file, recorded_camera_parameters

    s = scenario.settings
    if scenario.rig_path:
        return load_rig_file(scenario.rig_path)
    params = recorded_camera_parameters(world)
    w0, h0 = params["cameras.front.width"], params["cameras.front.height"]
    # One side given: the other keeps the recording's aspect (square pixels stay square).
    width = s.camera.width or (max(1, round(w0 * s.camera.height / h0)) if s.camera.height else w0)
    height = s.camera.height or max(1, round(h0 * width / w0))
    sx, sy = width / w0, height / h0
    params.update({"cameras.front.width": width, "cameras.front.height": height,
                   "cameras.front.fx": params["cameras.front.fx"] * sx,
                   "cameras.front.fy": params["cameras.front.fy"] * sy,
                   "cameras.front.cx": (params["cameras.front.cx"] + 0.5) * sx - 0.5,
                   "cameras.front.cy": (params["cameras.front.cy"] + 0.5) * sy - 0.5,
                   "cameras.front.rate_hz": s.rate,
                   "cameras.front.outputs": ["image", "depth"] if s.camera.depth else ["image"]})
    return load_rig(params, source=f"scenario {scenario.name}")


_SIMULATOR: dict[str, Any] = {}


def shared_simulator(world, rig, device: str):
    """A Simulator of ``world`` and ``rig`` on ``device``, kept per process: the scenarios a worker
    runs one after another on one world and rig share its renderer (one upload of the world,
    ~3 s of set-up each on the 2-core VM otherwise) and its reference path."""
    from ..sim.rig import rig_parameters
    from ..sim.simulator import Simulator
    from .path import ReferencePath

    key = repr((sorted(rig_parameters(rig).items()), device))
    cached = _SIMULATOR.get("entry")
    if cached is None or cached[0] is not world or cached[1] != key:
        _SIMULATOR.clear()
        sim = Simulator(world, rig, device=device)
        _SIMULATOR["entry"] = (world, key, sim, ReferencePath.from_simulator(sim))
    return _SIMULATOR["entry"][2], _SIMULATOR["entry"][3]


def make_session(scenario: Scenario, world, rig):
    """The scenario's SimSession (mode pose, lockstep, the recording held at its end) on the
    process's shared Simulator, and the reference path."""
    from ..sim.session import SimSession
    from ..sim.settings import ClockSettings, InputSettings, SessionSettings

    s = scenario.settings
    settings = SessionSettings(mode="pose", lockstep=True, device=s.device, clock=ClockSettings(end_mode="hold"),
                               vehicle=s.vehicle, input=InputSettings(max_jump=0.0, stale_after=0.0))
    sim, path = shared_simulator(world, rig, s.device)
    return SimSession(world, rig, settings, simulator=sim), path


def yawed(pose: np.ndarray, lateral: float, heading: float) -> np.ndarray:
    """``pose`` moved ``lateral`` m along its own +y (left) and turned ``heading`` rad about its z."""
    out = pose.copy()
    out[:3, 3] += lateral * pose[:3, 1]
    c, s = math.cos(heading), math.sin(heading)
    out[:3, :3] = pose[:3, :3] @ np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    return out


# -- the run -----------------------------------------------------------------------------------

class _Recording:
    """The run's rosbag2 recording: frames the controller got and its commands."""

    def __init__(self, directory: Path):
        from ..record.recorder import Recorder, qos_profile, typestore

        store = typestore()
        if "ackermann_msgs/msg/AckermannDriveStamped" not in store.types:
            from rosbags.typesys import get_types_from_msg

            store.register(get_types_from_msg(ACKERMANN_DRIVE_MSG, "ackermann_msgs/msg/AckermannDrive"))
            store.register(get_types_from_msg(ACKERMANN_DRIVE_STAMPED_MSG, "ackermann_msgs/msg/AckermannDriveStamped"))
        self.store = store
        self.recorder = Recorder(directory)
        self.qos = qos_profile()

    def frame(self, frame) -> None:
        self.recorder.write(frame)

    def command(self, stamp: float, cmd) -> None:
        T = self.store.types
        ns = int(round(stamp * 1e9))
        header = T["std_msgs/msg/Header"](stamp=T["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9),
                                          frame_id="base_link")
        if isinstance(cmd, TwistCommand):
            vec = T["geometry_msgs/msg/Vector3"]
            msg = T["geometry_msgs/msg/Twist"](linear=vec(x=float(cmd.linear_x), y=0.0, z=0.0),
                                               angular=vec(x=0.0, y=0.0, z=float(cmd.angular_z)))
            topic = "/cmd_vel"
        else:
            drive = T["ackermann_msgs/msg/AckermannDrive"](
                steering_angle=float(cmd.steering), steering_angle_velocity=0.0, speed=float(cmd.speed),
                acceleration=abs(float(cmd.acceleration)), jerk=0.0)
            msg = T["ackermann_msgs/msg/AckermannDriveStamped"](header=header, drive=drive)
            topic = "/ackermann_cmd"
        data = bytes(self.store.serialize_cdr(msg, msg.__msgtype__))
        self.recorder.write_cdr(topic, msg.__msgtype__, data, qos=self.qos)

    def close(self) -> None:
        self.recorder.close()


def run_scenario(scenario: Scenario, out_dir: str | Path, *, record: bool = True, world=None,
                 wall_clock: Callable[[], float] = time.perf_counter, sleep: Callable[[float], None] = time.sleep,
                 on_step: Callable[[int, int], None] | None = None) -> dict:
    """Drive ``scenario`` once; write ``out_dir``/steps.csv, summary.json and (``record``)
    recording/; return the summary. ``world``: an already loaded World (else loaded from the
    scenario, once per process). ``on_step(done, total)`` reports progress."""
    from ..sim.vehicle import BicycleModel, EgoState, UnicycleModel

    s = scenario.settings
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = wall_clock()
    world = world if world is not None else load_world(scenario.world_path, s.device)
    rig = scenario_rig(scenario, world)
    session, path = make_session(scenario, world, rig)
    recorded = session.path.end - session.path.start
    if s.start_time >= recorded:
        raise InputError(f"scenario {scenario.name}: start_time = {s.start_time:g} s is past the recording's end "
                         f"({recorded:.2f} s)", f"give start_time < {recorded:.2f}")
    controller = make_controller(scenario.controller, scenario, path, out)

    # The start: on the recorded path at start_time, offset, at the recorded speed there.
    t0 = session.path.start + s.start_time
    p = s.perturbations
    kick_at_start = p.offset_at <= 0
    lateral = s.initial_offset.lateral + (p.lateral_offset if kick_at_start else 0.0)
    heading = s.initial_offset.heading + (p.heading_offset if kick_at_start else 0.0)
    start = yawed(session.sim.recorded_base_pose(t0), lateral, heading)
    a, b = min(t0 + 0.25, session.path.end), max(t0 - 0.25, session.path.start)
    speed0 = float(np.linalg.norm(session.sim.recorded_base_pose(a)[:2, 3] - session.sim.recorded_base_pose(b)[:2, 3])
                   / max(a - b, 1e-9))
    ego = EgoState.from_pose_matrix(start, speed=speed0)
    session.seek(s.start_time)
    v = s.vehicle
    bicycle = BicycleModel(wheelbase=v.wheelbase, max_steer=v.max_steer, max_steer_rate=v.max_steer_rate,
                           max_accel=v.max_accel, max_decel=v.max_decel, max_speed=v.max_speed,
                           timeout_s=v.command_timeout)
    unicycle = UnicycleModel(max_speed=v.max_speed, max_yaw_rate=v.max_yaw_rate, max_accel=v.max_accel,
                             timeout_s=v.command_timeout)
    # Until the first command the ego holds its speed and steering (no command is not a stop order).
    bicycle.command(min(speed0, v.max_speed), 0.0)
    model = bicycle
    session.warm_up()                                   # kernels compiled before the first timed step

    rng = np.random.default_rng(p.seed)
    period = 1.0 / s.rate
    n_steps = max(1, int(round(s.duration * s.rate)))
    stamp0 = session.sim_time
    paced = p.sim_rate > 0
    recording = _Recording(out / "recording") if record else None
    steps: list[tuple] = []
    near_s = path.project(ego.x, ego.y).s
    start_s = near_s
    prev_speed, prev_accel = ego.speed, 0.0
    cmd_speed, cmd_steer = float("nan"), float("nan")
    kicked = kick_at_start
    loop_start = wall_clock()
    try:
        for k in range(n_steps):
            t = k * period
            if not kicked and t >= p.offset_at:
                kicked = True
                ego = EgoState.from_pose_matrix(yawed(ego.pose_matrix(), p.lateral_offset, p.heading_offset),
                                                speed=ego.speed, yaw_rate=ego.yaw_rate, steering=ego.steering)
            step_start = wall_clock()
            skipped = False
            if paced:
                due = loop_start + t / p.sim_rate
                if step_start > due + period / p.sim_rate:
                    skipped = True                       # this frame's slot has passed: the run is behind
                elif step_start < due:
                    sleep(due - step_start)
                    step_start = wall_clock()
            delivered = False
            render_ms = controller_ms = float("nan")
            if not skipped:
                session.set_pose(ego.pose_matrix(), stamp=stamp0 + t, source="scenario ego")
                frame = session.step()
                render_ms = frame.render_s * 1e3
                if not rng.random() < p.drop_frames:
                    frame = perturbed(frame, p.sensor_noise, p.depth_noise, rng)
                    frame.linear_velocity = np.array([ego.speed, 0.0, 0.0])
                    frame.angular_velocity = np.array([0.0, 0.0, ego.yaw_rate])
                    obs = Observation(time=t, map_from_base=frame.map_from_base.copy(), speed=ego.speed,
                                      yaw_rate=ego.yaw_rate, steering=ego.steering,
                                      images={cf.spec.name: cf.rgb for cf in frame.cameras},
                                      depth={cf.spec.name: cf.depth for cf in frame.cameras} if s.camera.depth else {},
                                      path=path, frame=frame, session=session)
                    c0 = wall_clock()
                    cmd = as_command(controller(obs), f"controller {scenario.controller.label()}")
                    controller_ms = (wall_clock() - c0) * 1e3
                    if isinstance(cmd, TwistCommand):
                        unicycle.command(cmd.linear_x, cmd.angular_z, source="controller")
                        model = unicycle
                        cmd_speed, cmd_steer = cmd.linear_x, float("nan")
                    else:
                        # AckermannDrive's convention: ramp toward speed at |acceleration| (0: the limits).
                        bicycle.command(cmd.speed, cmd.steering, acceleration=abs(cmd.acceleration) or None,
                                        source="controller")
                        model = bicycle
                        cmd_speed, cmd_steer = cmd.speed, cmd.steering
                    delivered = True
                    if recording is not None:
                        recording.frame(frame)
                        recording.command(stamp0 + t, cmd)
            step_ms = (wall_clock() - step_start) * 1e3
            err = path.errors(ego.x, ego.y, ego.yaw, near_s=near_s)
            near_s = err.s
            accel = (ego.speed - prev_speed) / period if k else 0.0
            jerk = (accel - prev_accel) / period if k > 1 else 0.0
            prev_speed, prev_accel = ego.speed, accel
            steps.append((t, ego.x, ego.y, ego.yaw, ego.speed, accel, jerk, ego.speed * ego.yaw_rate, err.s,
                          err.cross_track, err.heading_error, err.point.distance <= s.corridor_half_width,
                          delivered, skipped, cmd_speed, cmd_steer, render_ms, controller_ms, step_ms))
            ego = model.step(ego, period)
            if on_step is not None:
                on_step(k + 1, n_steps)
    finally:
        try:
            if hasattr(controller, "close"):
                controller.close()
        finally:
            if recording is not None:
                recording.close()
    wall = wall_clock() - loop_start
    write_steps(out / "steps.csv", steps)
    summary = summarize(scenario, steps, period, wall, path.length - start_s)
    summary["setup_s"] = round(loop_start - started, 3)
    if hasattr(controller, "timeouts"):              # frames the controller did not answer in time
        summary["controller_timeouts"] = int(controller.timeouts)
    if hasattr(controller, "domain_id"):
        summary["ros_domain_id"] = int(controller.domain_id)
    summary["recording"] = str(out / "recording") if record else ""
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=_plain))
    return summary


def perturbed(frame, sensor_noise: float, depth_noise: float, rng: np.random.Generator):
    """``frame`` with Gaussian noise on its images (8-bit levels) and depth (relative); the
    original buffers are left alone (the renderer may reuse them)."""
    if sensor_noise <= 0 and depth_noise <= 0:
        return frame
    cams = []
    for cf in frame.cameras:
        rgb, depth = cf.rgb, cf.depth
        if sensor_noise > 0:
            noise = rng.standard_normal(rgb.shape, dtype=np.float32) * np.float32(sensor_noise)
            rgb = np.clip(rgb.astype(np.float32) + noise, 0, 255).round().astype(np.uint8)
        if depth_noise > 0 and depth is not None:
            depth = depth * (1 + rng.standard_normal(depth.shape, dtype=np.float32) * np.float32(depth_noise))
        cams.append(replace(cf, rgb=rgb, depth=depth))
    return replace(frame, cameras=cams)


def write_steps(path: Path, steps: list[tuple]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(STEP_COLUMNS)
        for row in steps:
            w.writerow([(f"{v:.6g}" if isinstance(v, float) else int(v) if isinstance(v, bool) else v) for v in row])


def summarize(scenario: Scenario, steps: list[tuple], period: float, wall_s: float, path_left: float) -> dict:
    """The run's summary columns (see the module docstring) for the scenario's ``metrics``."""
    col = {name: np.array([row[i] for row in steps], dtype=np.float64) for i, name in enumerate(STEP_COLUMNS)}
    n = len(steps)
    out: dict[str, Any] = {"scenario": scenario.name, "steps": n, "sim_s": round(n * period, 6)}
    m = set(scenario.metrics)
    e = np.abs(col["cross_track"])
    if "cross_track" in m:
        out.update(cross_track_mean_m=float(e.mean()), cross_track_rms_m=float(np.sqrt((e ** 2).mean())),
                   cross_track_max_m=float(e.max()))
    if "heading" in m:
        h = np.abs(col["heading_error"])
        out.update(heading_error_mean_rad=float(h.mean()), heading_error_max_rad=float(h.max()))
    if "comfort" in m:
        j = np.abs(col["jerk"])
        out.update(jerk_max=float(j.max()), jerk_rms=float(np.sqrt((j ** 2).mean())),
                   lat_accel_max=float(np.abs(col["lat_accel"]).max()))
    if "corridor" in m:
        outside = int(n - col["in_corridor"].sum())
        out.update(out_of_corridor_s=round(outside * period, 6), out_of_corridor_share=outside / n)
    if "progress" in m:
        driven = float(col["s"][-1] - col["s"][0])
        out.update(progress_m=driven, completion=driven / path_left if path_left > 0 else 1.0)
    if "timing" in m:
        delivered = int(col["delivered"].sum())
        rendered = ~np.isnan(col["render_ms"])
        step_ms = col["step_ms"][rendered] if rendered.any() else np.array([np.nan])
        ctl = col["controller_ms"][~np.isnan(col["controller_ms"])]
        out.update(frames_delivered=delivered, frames_dropped=int(rendered.sum()) - delivered,
                   frames_skipped=int(col["skipped"].sum()), achieved_hz=delivered / (n * period),
                   steps_per_wall_s=n / wall_s if wall_s > 0 else float("inf"),
                   step_ms_p50=float(np.percentile(step_ms, 50)), step_ms_p99=float(np.percentile(step_ms, 99)),
                   step_ms_max=float(step_ms.max()),
                   controller_ms_p50=float(np.percentile(ctl, 50)) if len(ctl) else float("nan"))
    out["wall_s"] = round(wall_s, 3)
    return out


def _plain(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON")
