"""The sensor-simulator node, written once against the Transport interface (ros/transport.py).

Per tick: advance the sim clock, move the ego (replay / pose / control / trajectory), render the
cameras that are due in one batched call per image size, and hand the frame to a publisher thread
that builds and sends the messages while the next frame renders. Every message of one render has
the same header.stamp (the sim time rendered).

Inputs are checked before they touch the state: a NaN, a jump beyond ``input.max_jump``, an
unknown frame or an absurd control is dropped with a throttled warning (and counted in
/diagnostics); the ego keeps its last good state and the node keeps running.
"""
from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..camera import invert_pose, quaternion_to_matrix
from ..config import render_settings_from
from ..errors import InputError
from ..sim.clock import SimClock
from ..sim.rig import CameraSpec, load_rig
from ..sim.simulator import RecordedPath, SensorFrame, Simulator
from ..sim.vehicle import BicycleModel, EgoState, UnicycleModel, check_pose_jump
from .messages import DIAG_OK, DIAG_WARN, MessageBuilder, stamp_seconds
from .params import split_parameters
from .transport import CLOCK, DEFAULT, LATCHED, SENSOR_IN, SENSOR_OUT, Qos
from .writer_process import CameraLayout, CameraWriters, camera_publishers, publish_cameras

log = logging.getLogger("inspatio_ros")

# Topic names (relative ones resolve under the node's namespace, so remapping/namespaces work).
POSE_TOPIC, ODOM_IN_TOPIC, CMD_VEL_TOPIC, ACKERMANN_TOPIC = "pose", "odom_in", "cmd_vel", "ackermann_cmd"
ODOM_TOPIC, STATUS_TOPIC = "odom", "status"
CONTROL_TOPICS = {"pause": "~/pause", "seek": "~/seek", "rate": "~/rate", "reset": "~/reset", "step": "~/step"}


def camera_topics(name: str) -> dict[str, str]:
    return {"image": f"{name}/image_raw", "camera_info": f"{name}/camera_info",
            "depth": f"{name}/depth/image", "depth_info": f"{name}/depth/camera_info",
            "points": f"{name}/points", "coverage": f"{name}/coverage",
            "compressed": f"{name}/image_raw/compressed"}


@dataclass
class Stats:
    renders: deque = field(default_factory=lambda: deque(maxlen=240))        # wall times of renders
    render_ms: deque = field(default_factory=lambda: deque(maxlen=240))
    publish_ms: deque = field(default_factory=lambda: deque(maxlen=240))
    latency_ms: deque = field(default_factory=lambda: deque(maxlen=1000))    # pose in -> frame out
    coverage: dict = field(default_factory=dict)
    dropped_inputs: int = 0
    frames_published: int = 0

    def achieved_hz(self, now: float) -> float:
        recent = [t for t in self.renders if now - t <= 2.0]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-9)


class SimNode:
    """The simulator node. ``params`` are ROS 2 parameters (dotted names), e.g. from config/*.yaml."""

    def __init__(self, transport, params: dict[str, Any], world=None, world_name: str | None = None):
        self.t = transport
        self.p, camera_params, render_params = split_parameters(params)
        settings = render_settings_from(render_params, source="parameters")
        if world is None:
            world, world_name = load_world(self.p["world"])
        if not camera_params:
            camera_params = recorded_camera_parameters(world)
        self.rig: list[CameraSpec] = load_rig(camera_params)
        self.world_name = world_name or self.p["world"] or "default"
        from ..generator.refiner import load_generator

        refiner = load_generator(self.p["generator"], self.p["generator.weights"] or None, self.p["world"] or None,
                                 self.p["device"])
        self.sim = Simulator(world, self.rig, device=self.p["device"], settings=settings,
                             reference_camera=self.p["replay.reference_camera"] or None, refiner=refiner)
        self.clock = SimClock(self.sim.path.start, self.sim.path.end, rate=self.p["clock.rate"],
                              end_mode=self.p["clock.end_mode"])
        self.mode = self.p["mode"]
        self.lockstep = bool(self.p["lockstep"])
        self.msgs = MessageBuilder(transport)
        self.stats = Stats()
        self._warned: dict[str, float] = {}
        self._lock = threading.Lock()

        start = self.sim.path.start
        self.map_from_base = self.sim.recorded_base_pose(start, self.p["replay.lateral_offset"])
        self.ego = EgoState.from_pose_matrix(self.map_from_base)
        self.velocity = (np.zeros(3), np.zeros(3))          # linear, angular in base_link
        self._pose_received_wall: float | None = None
        self._last_sim = self.clock.sim_time
        self._step_requests = 0
        self._stamp_offset = 0.0            # external clock time - sim time (0: the node's own clock)
        self._clock_anchored = False
        self._tf_tree: dict[str, tuple[str, np.ndarray, float]] = {}   # child -> (parent, T, stamp)
        self._lockstep_pose: tuple[float, np.ndarray, float] | None = None
        self._trajectory = self._load_trajectory() if self.mode == "trajectory" else None
        self.unicycle = UnicycleModel(max_speed=self.p["vehicle.max_speed"], max_yaw_rate=self.p["vehicle.max_yaw_rate"],
                                      max_accel=self.p["vehicle.max_accel"],
                                      timeout_s=self.p["vehicle.command_timeout"])
        self.bicycle = BicycleModel(wheelbase=self.p["vehicle.wheelbase"], max_steer=self.p["vehicle.max_steer"],
                                    max_steer_rate=self.p["vehicle.max_steer_rate"],
                                    max_accel=self.p["vehicle.max_accel"], max_decel=self.p["vehicle.max_decel"],
                                    max_speed=self.p["vehicle.max_speed"], timeout_s=self.p["vehicle.command_timeout"])
        self.vehicle = None                                  # the model of the last control received

        self._make_publishers()
        self._make_subscriptions()
        self._next_due = {c.name: self.clock.sim_time for c in self.rig}
        self._publisher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inspatio_publish")
        self._inflight: Future | None = None
        self._last_clock_pub = -math.inf
        self._last_status = -math.inf
        self._last_diag = -math.inf
        self._stop = threading.Event()
        self._publish_static_tf()

    # -- wiring ------------------------------------------------------------------------------
    def _qos(self, key: str, default: Qos) -> Qos:
        rel = self.p[f"qos.{key}.reliability"] or default.reliability
        depth = self.p[f"qos.{key}.depth"] or default.depth
        return Qos(rel, default.durability, depth)

    def _make_publishers(self) -> None:
        pub = self.t.create_publisher
        self.layouts = {cam.name: CameraLayout(
            name=cam.name, optical_frame=cam.optical_frame, intrinsics=cam.intrinsics, outputs=tuple(cam.outputs),
            topics=camera_topics(cam.name),
            qos={k: self._qos(k, SENSOR_OUT) for k in ("image", "camera_info", "depth", "points", "coverage",
                                                        "compressed")}) for cam in self.rig}
        choice = self.p["publish.writer_process"]
        use_writer = choice == "on" or (choice == "auto" and self.t.name == "dds" and self.sim.device.type == "cuda")
        if use_writer and self.t.name != "dds":
            raise InputError("publish.writer_process on needs the dds transport", "use --transport dds, or set it off")
        self.writer = None
        self.cam_pubs: dict[str, dict[str, Any]] = {}
        if use_writer:
            self.writer = CameraWriters(self.t.node_name, self.t.namespace, self.t.domain_id,
                                        list(self.layouts.values()), self.p["publish.jpeg_quality"],
                                        pin_memory=self.sim.device.type == "cuda")
            log.info("camera messages written by %d writer processes (one per camera)", len(self.writer.writers))
            if self.sim.device.type == "cuda":
                if self.writer.page_locked:
                    log.info("their shared memory is page-locked: renders are copied straight into it")
                else:
                    log.warning("could not page-lock the writers' shared memory: device copies into it "
                                "are synchronous (slower)")
        else:
            self.cam_pubs = {name: camera_publishers(self.t, lay) for name, lay in self.layouts.items()}
        self.tf_pub = pub("tf2_msgs/msg/TFMessage", "/tf", self._qos("tf", DEFAULT)) if self.p["publish.tf"] else None
        self.tf_static_pub = pub("tf2_msgs/msg/TFMessage", "/tf_static", LATCHED)
        self.odom_pub = (pub("nav_msgs/msg/Odometry", ODOM_TOPIC, self._qos("odom", DEFAULT))
                         if self.p["publish.odom"] else None)
        self.external_clock = bool(self.p["use_sim_time"])
        # Another node is the time source: follow its /clock, never publish one.
        self.clock_pub = (pub("rosgraph_msgs/msg/Clock", "/clock", self._qos("clock", CLOCK))
                          if self.p["clock.publish"] and not self.external_clock else None)
        if self.p["input.tf_child"] and self.tf_pub is not None:
            log.info("following %s on /tf: not publishing the ego's transforms", self.p["input.tf_child"])
            self.tf_pub = None
        self.status_pub = pub("inspatio_ros_interfaces/msg/SimStatus", STATUS_TOPIC, self._qos("status", DEFAULT))
        self.diag_pub = pub("diagnostic_msgs/msg/DiagnosticArray", "/diagnostics", self._qos("diagnostics", DEFAULT))

    def _make_subscriptions(self) -> None:
        sub = self.t.create_subscription
        qin = self._qos("inputs", SENSOR_IN)
        sub("geometry_msgs/msg/PoseStamped", POSE_TOPIC, self._guarded("pose", self.on_pose), qin)
        sub("nav_msgs/msg/Odometry", ODOM_IN_TOPIC, self._guarded("odom_in", self.on_odometry), qin)
        sub("geometry_msgs/msg/Twist", CMD_VEL_TOPIC, self._guarded("cmd_vel", self.on_twist), qin)
        sub("ackermann_msgs/msg/AckermannDriveStamped", ACKERMANN_TOPIC,
            self._guarded("ackermann_cmd", self.on_ackermann), qin)
        if self.external_clock:
            sub("rosgraph_msgs/msg/Clock", "/clock", self._guarded("clock", self.on_clock), Qos("best_effort", "volatile", 10))
        if self.p["input.tf_child"]:
            sub("tf2_msgs/msg/TFMessage", "/tf", self._guarded("tf", self.on_tf), Qos("reliable", "volatile", 100))
            sub("tf2_msgs/msg/TFMessage", "/tf_static", self._guarded("tf", self.on_tf), LATCHED)
        ctl = Qos("reliable", "volatile", 10)
        sub("std_msgs/msg/Bool", CONTROL_TOPICS["pause"], self._guarded("pause", self.on_pause), ctl)
        sub("std_msgs/msg/Float64", CONTROL_TOPICS["seek"], self._guarded("seek", self.on_seek), ctl)
        sub("std_msgs/msg/Float64", CONTROL_TOPICS["rate"], self._guarded("rate", self.on_rate), ctl)
        sub("std_msgs/msg/Empty", CONTROL_TOPICS["reset"], self._guarded("reset", self.on_reset), ctl)
        sub("std_msgs/msg/Empty", CONTROL_TOPICS["step"], self._guarded("step", self.on_step), ctl)
        # The same controls as std_srvs services where the transport has services (rclpy); the DDS
        # transport has the topics only (ROS 2 services are not wire-compatible across rmw).
        if hasattr(self.t, "create_service"):
            self.t.create_service("std_srvs/srv/SetBool", CONTROL_TOPICS["pause"],
                                  self._service(self.on_pause, lambda req: "paused" if req.data else "resumed"))
            self.t.create_service("std_srvs/srv/Trigger", CONTROL_TOPICS["reset"],
                                  self._service(self.on_reset, lambda req: "reset to the start"))
            self.t.create_service("std_srvs/srv/Trigger", CONTROL_TOPICS["step"],
                                  self._service(self.on_step, lambda req: "one step requested"))

    def _service(self, action: Callable[[Any], None], done: Callable[[Any], str]):
        def handle(request, response):
            try:
                action(request)
                response.success, response.message = True, done(request)
            except InputError as exc:
                response.success, response.message = False, str(exc)
            return response
        return handle

    def _guarded(self, name: str, handler: Callable[[Any], None]) -> Callable[[Any], None]:
        """Bad input -> a throttled warning and a dropped-input count; the node keeps running."""
        def callback(msg):
            try:
                handler(msg)
            except InputError as exc:
                self.stats.dropped_inputs += 1
                # Throttled per kind of problem (numbers stripped), so each kind is seen once.
                self.warn(f"{name}:{re.sub(r'[0-9][0-9.e+-]*', '#', exc.problem)}", f"{name}: dropped: {exc}")
        return callback

    def warn(self, key: str, text: str, every_s: float = 2.0) -> None:
        now = time.monotonic()
        if now - self._warned.get(key, -math.inf) >= every_s:
            self._warned[key] = now
            log.warning(text)

    # -- inputs ------------------------------------------------------------------------------
    def _pose_from_msg(self, frame_id: str, stamp, pose, source: str) -> tuple[np.ndarray, float]:
        frames = ("", self.p["frames.map"], self.p["frames.odom"])
        if frame_id not in frames:
            raise InputError(f"frame '{frame_id}' is unknown",
                             f"send poses in '{self.p['frames.map']}' (or '{self.p['frames.odom']}', the same here)")
        T = rigid_from_ros(pose.position, pose.orientation, "the pose")
        t_msg = stamp_seconds(stamp)
        self._check_pose(T, t_msg, source)
        return T, t_msg

    def now_stamp(self) -> float:
        """The time stamped on outputs now: sim time, or the external /clock's time."""
        return self.clock.sim_time + self._stamp_offset

    def _check_pose(self, T: np.ndarray, t_msg: float, source: str) -> None:
        now = self.now_stamp()
        stale = self.p["input.stale_after"]
        if t_msg > 0 and stale > 0 and not self.lockstep and t_msg < now - stale:
            raise InputError(f"the {source} is {now - t_msg:.2f} s old",
                             "stamp inputs with the node's /clock (use_sim_time:=true) or set input.stale_after 0")
        dt = max(1e-3, t_msg - now) if t_msg > 0 else None
        check_pose_jump(self.ego, T, dt, self.p["vehicle.max_speed"], self.p["input.max_jump"], source=source)

    def _accept_pose(self, T: np.ndarray, t_msg: float) -> None:
        if self.mode != "pose":
            self.warn("pose_mode", f"a pose arrived in mode '{self.mode}': ignored (run with mode pose)", 10.0)
            return
        with self._lock:
            self.map_from_base = T
            self.ego = EgoState.from_pose_matrix(T)
            self._pose_received_wall = time.perf_counter()
            if self.lockstep:
                self._lockstep_pose = (t_msg, T, self._pose_received_wall)

    def on_pose(self, msg) -> None:
        T, t_msg = self._pose_from_msg(msg.header.frame_id, msg.header.stamp, msg.pose, "pose")
        self._accept_pose(T, t_msg)

    def on_odometry(self, msg) -> None:
        T, t_msg = self._pose_from_msg(msg.header.frame_id, msg.header.stamp, msg.pose.pose, "odometry")
        self._accept_pose(T, t_msg)

    def on_tf(self, msg) -> None:
        """Keep the transforms; when the chain map -> ... -> input.tf_child is complete, that is the pose."""
        target, root = self.p["input.tf_child"], self.p["frames.map"]
        touched = False
        for tf in msg.transforms:
            T = rigid_from_ros(tf.transform.translation, tf.transform.rotation,
                               f"transform {tf.header.frame_id} -> {tf.child_frame_id}")
            self._tf_tree[tf.child_frame_id] = (tf.header.frame_id, T, stamp_seconds(tf.header.stamp))
            touched = touched or tf.child_frame_id != root
        if not touched or target not in self._tf_tree:
            return
        frame, pose, stamp = target, np.eye(4), self._tf_tree[target][2]
        for _ in range(16):                      # walk up to the map frame
            if frame == root:
                break
            if frame not in self._tf_tree:
                return                           # chain not complete yet (e.g. map -> odom missing)
            parent, T, _ = self._tf_tree[frame]
            pose = T @ pose
            frame = parent
        else:
            raise InputError(f"no transform chain from {root} to {target} within 16 frames", "check the TF tree")
        self._check_pose(pose, stamp, "tf")
        self._accept_pose(pose, stamp)

    def on_clock(self, msg) -> None:
        """Follow another node's /clock: stamps take its time, the recording advances with it."""
        t = stamp_seconds(msg.clock)
        if not math.isfinite(t):
            raise InputError("/clock is not finite", "publish a finite clock")
        if not self._clock_anchored or t < self.now_stamp() - 1.0:
            if self._clock_anchored:
                self.warn("clock_back", f"/clock jumped back to {t:.3f} s: following it (recording continues)")
            self._stamp_offset = t - self.clock.sim_time
            self._clock_anchored = True
            return
        dt = t - self.now_stamp()
        if dt > 0:
            self.clock.step(dt)

    def on_twist(self, msg) -> None:
        if self.mode != "control":
            self.warn("cmd_mode", f"cmd_vel arrived in mode '{self.mode}': ignored (run with mode control)", 10.0)
            return
        self.unicycle.command(msg.linear.x, msg.angular.z)
        self.vehicle = self.unicycle

    def on_ackermann(self, msg) -> None:
        if self.mode != "control":
            self.warn("cmd_mode", f"ackermann_cmd arrived in mode '{self.mode}': ignored (run with mode control)", 10.0)
            return
        d = msg.drive
        # AckermannDrive: acceleration 0 means "as fast as allowed" (the model's limits).
        self.bicycle.command(d.speed, d.steering_angle, acceleration=(d.acceleration or None))
        self.vehicle = self.bicycle

    def on_pause(self, msg) -> None:
        self.clock.pause() if msg.data else self.clock.resume()

    def on_seek(self, msg) -> None:
        self.clock.seek(self.sim.path.start + float(msg.data))

    def on_rate(self, msg) -> None:
        self.clock.set_rate(float(msg.data))

    def on_reset(self, msg) -> None:
        with self._lock:
            self.clock.reset()
            self.map_from_base = self.sim.recorded_base_pose(self.clock.recording_time, self.p["replay.lateral_offset"])
            self.ego = EgoState.from_pose_matrix(self.map_from_base)
            self.vehicle = None

    def on_step(self, msg) -> None:
        self._step_requests += 1

    # -- trajectory mode ---------------------------------------------------------------------
    def _load_trajectory(self):
        from ..trajectory import load_trajectory

        spec = self.p["trajectory.file"]
        if not spec:
            raise InputError("mode trajectory needs trajectory.file", "give a trajectory file or preset name")
        ref_world = self.sim.camera_pose(self.sim.recorded_base_pose(self.sim.path.start), self.sim.reference)
        traj = load_trajectory(spec, ref_world, look_at_depth=self.p["trajectory.look_at_depth"],
                               fps=self.p["trajectory.fps"])
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
                prev = self.map_from_base
                self.map_from_base = self.sim.recorded_base_pose(self.clock.recording_time,
                                                                 self.p["replay.lateral_offset"])
                self.velocity = _body_velocity(prev, self.map_from_base, dt)
            elif self.mode == "trajectory":
                prev = self.map_from_base
                self.map_from_base = self._trajectory_pose(sim_time - self._trajectory_start)
                self.velocity = _body_velocity(prev, self.map_from_base, dt)
            elif self.mode == "control" and self.vehicle is not None and dt > 0:
                self.ego = self.vehicle.step(self.ego, dt)
                self.map_from_base = self.ego.pose_matrix()
                self.velocity = (np.array([self.ego.speed, 0.0, 0.0]), np.array([0.0, 0.0, self.ego.yaw_rate]))

    def due_cameras(self, sim_time: float) -> list[CameraSpec]:
        due = []
        for cam in self.rig:
            if sim_time + 1e-9 >= self._next_due[cam.name]:
                due.append(cam)
                period = 1.0 / cam.rate_hz
                nxt = self._next_due[cam.name] + period
                # Behind by more than a period (slow render, pause): skip ahead instead of bursting.
                self._next_due[cam.name] = nxt if nxt > sim_time else sim_time + period
        return due

    def tick(self) -> SensorFrame | None:
        """One free-running iteration: clock, ego, render what is due, publish. Returns the frame."""
        if not self.external_clock:
            self.clock.update()
        elif not self._clock_anchored:
            return None                          # nothing to stamp with before the first /clock
        sim_time = self.clock.sim_time
        dt = sim_time - self._last_sim
        self._last_sim = sim_time
        self._move_ego(sim_time, dt)
        stamp = sim_time + self._stamp_offset
        self._publish_clock(stamp)
        due = self.due_cameras(sim_time)
        frame = self._render_and_publish(stamp, due) if due else None
        self._publish_periodic(stamp)
        return frame

    def lockstep_tick(self) -> SensorFrame | None:
        """Render once per received pose (pose mode) or per ~/step request, else nothing."""
        if self.mode == "pose":
            with self._lock:
                request, self._lockstep_pose = self._lockstep_pose, None
            if request is None:
                return None
            t_msg, T, _ = request
            stamp = t_msg if t_msg > 0 else self.clock.sim_time
            if stamp > self.clock.sim_time:
                self.clock.step(stamp - self.clock.sim_time)
            self._publish_clock(stamp, force=True)
            return self._render_and_publish(stamp, self.rig)
        if self._step_requests <= 0:
            return None
        self._step_requests -= 1
        period = 1.0 / max(c.rate_hz for c in self.rig)
        self.clock.step(period)
        sim_time = self.clock.sim_time
        self._move_ego(sim_time, period)
        self._last_sim = sim_time
        self._publish_clock(sim_time, force=True)
        return self._render_and_publish(sim_time, self.rig)

    def spin(self, duration_s: float | None = None, max_frames: int | None = None) -> None:
        """Run until stop(), the duration (wall seconds) or the number of rendered frames."""
        self._trajectory_start = self.clock.sim_time
        deadline = None if duration_s is None else time.monotonic() + duration_s
        frames = 0
        while not self._stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            if self.lockstep:
                self.t.spin_once(0.01)
                frame = self.lockstep_tick()
            else:
                self.t.spin_once(self._wait_s())
                frame = self.tick()
            if frame is not None:
                frames += 1
                if max_frames is not None and frames >= max_frames:
                    break
        self.flush()

    def _wait_s(self) -> float:
        """Wall time until the next camera is due (short, so inputs are handled promptly)."""
        if self.clock.paused:
            return 0.02
        ahead = min(self._next_due.values()) - self.clock.sim_time
        return float(np.clip(ahead / self.clock.rate, 0.0, 0.005))

    def warm_up(self) -> float:
        """Render the rig once before the first tick (on CUDA the first render compiles the renderer's
        kernels: minutes on a fresh machine, seconds with Inductor's cache). Returns the seconds taken."""
        started = time.perf_counter()
        self.sim.warm_up(self.clock.recording_time, self.map_from_base)
        return time.perf_counter() - started

    def stop(self) -> None:
        self._stop.set()

    def flush(self) -> None:
        if self._inflight is not None:
            self._inflight.result()
            self._inflight = None

    def close(self) -> None:
        self.stop()
        self.flush()
        self._publisher.shutdown(wait=True)
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    # -- output ------------------------------------------------------------------------------
    def _render_and_publish(self, stamp: float, cameras: list[CameraSpec]) -> SensorFrame:
        with self._lock:
            map_from_base = self.map_from_base.copy()
            velocity = self.velocity
            pose_wall, self._pose_received_wall = self._pose_received_wall, None
        # With writer processes the render lands straight in their shared memory (a free slot).
        into = self.writer.acquire([c.name for c in cameras]) if self.writer is not None else None
        frame = self.sim.render(stamp, self.clock.recording_time, map_from_base, cameras, into=into)
        self.stats.renders.append(time.monotonic())
        self.stats.render_ms.append(frame.render_s * 1e3)
        if self.writer is not None:
            # Camera messages: written by the writer processes from the slot rendered into; the
            # pose -> image latency ends when the writers acknowledge the frame.
            on_done = None if pose_wall is None else (
                lambda t_done, t0=pose_wall: self.stats.latency_ms.append((t_done - t0) * 1e3))
            self.writer.submit(stamp, frame.cameras, on_done)
            pose_wall = None
        # One frame in flight: the previous frame's messages go out while this one rendered.
        self.flush()
        self._inflight = self._publisher.submit(self._publish_frame, frame, velocity, pose_wall)
        return frame

    def _publish_frame(self, frame: SensorFrame, velocity, pose_wall: float | None) -> None:
        started = time.perf_counter()
        m = self.msgs
        stamp = frame.stamp
        if self.writer is None:
            arrays = {cf.spec.name: {"rgb": cf.rgb, "depth": cf.depth, "points": cf.points, "coverage": cf.coverage}
                      for cf in frame.cameras}
            publish_cameras(m, self.cam_pubs, stamp, [self.layouts[cf.spec.name] for cf in frame.cameras], arrays,
                            self.p["publish.jpeg_quality"])
        for cf in frame.cameras:
            self.stats.coverage[cf.spec.name] = cf.coverage_fraction
        if self.tf_pub is not None:
            self.tf_pub.publish(m.tf([
                m.transform_stamped(stamp, self.p["frames.map"], self.p["frames.odom"], np.eye(4)),
                m.transform_stamped(stamp, self.p["frames.odom"], self.p["frames.base_link"], frame.map_from_base),
            ]))
        if self.odom_pub is not None:
            self.odom_pub.publish(m.odometry(stamp, self.p["frames.odom"], self.p["frames.base_link"],
                                             frame.map_from_base, velocity[0], velocity[1]))
        done = time.perf_counter()
        self.stats.publish_ms.append((done - started) * 1e3)
        if pose_wall is not None:
            self.stats.latency_ms.append((done - pose_wall) * 1e3)
        self.stats.frames_published += 1

    def _publish_static_tf(self) -> None:
        m = self.msgs
        stamp = self.clock.sim_time
        transforms = []
        for cam in self.rig:
            transforms.append(m.transform_stamped(stamp, self.p["frames.base_link"], cam.link_frame, cam.base_from_link()))
            transforms.append(m.transform_stamped(stamp, cam.link_frame, cam.optical_frame, cam.link_from_optical()))
        self.tf_static_pub.publish(m.tf(transforms))

    def _publish_clock(self, sim_time: float, force: bool = False) -> None:
        # /clock at up to 100 Hz of sim time: enough for use_sim_time consumers, cheap.
        if self.clock_pub is not None and (force or sim_time - self._last_clock_pub >= 0.01):
            self._last_clock_pub = sim_time
            self.clock_pub.publish(self.msgs.clock(sim_time))

    def _publish_periodic(self, sim_time: float) -> None:
        if self.writer is not None:
            self.writer.poll()
        now = time.monotonic()
        hz = self.stats.achieved_hz(now)
        if self.p["publish.status_hz"] > 0 and now - self._last_status >= 1.0 / self.p["publish.status_hz"]:
            self._last_status = now
            self.status_pub.publish(self.msgs.status(
                sim_time, self.p["frames.map"], self.world_name, self.clock.recording_time - self.sim.path.start,
                self.clock.rate, self.clock.paused, self.mode, hz))
        if self.p["publish.diagnostics_hz"] > 0 and now - self._last_diag >= 1.0 / self.p["publish.diagnostics_hz"]:
            self._last_diag = now
            self.diag_pub.publish(self.msgs.diagnostics(sim_time, *self.diagnostic_values(hz)))

    def diagnostic_values(self, hz: float):
        s = self.stats
        lat = np.array(s.latency_ms) if s.latency_ms else None
        target = max(c.rate_hz for c in self.rig)
        values = {
            "achieved_hz": hz, "target_hz": target,
            "render_ms_mean": float(np.mean(s.render_ms)) if s.render_ms else float("nan"),
            "publish_ms_mean": float(np.mean(s.publish_ms)) if s.publish_ms else float("nan"),
            "pose_to_image_ms_p50": float(np.percentile(lat, 50)) if lat is not None else float("nan"),
            "pose_to_image_ms_p99": float(np.percentile(lat, 99)) if lat is not None else float("nan"),
            "dropped_inputs": s.dropped_inputs, "frames_published": s.frames_published,
            "sim_time": self.clock.sim_time, "paused": self.clock.paused, "mode": self.mode,
        }
        for name, cov in s.coverage.items():
            values[f"coverage.{name}"] = cov
        slow = (not self.clock.paused and not self.lockstep and s.frames_published > 10
                and hz < 0.8 * target * self.clock.rate)
        level = DIAG_WARN if slow else DIAG_OK
        message = f"rendering {hz:.1f} Hz of {target * self.clock.rate:.1f} Hz" if slow else "ok"
        return f"{self.t.node_name}: simulator", self.world_name, level, message, values


def rigid_from_ros(translation, q, what: str) -> np.ndarray:
    """4x4 from a ROS Point/Vector3 and Quaternion; NaN or a quaternion far from unit norm is an
    InputError naming ``what`` (a nearly unit one is normalised)."""
    values = [translation.x, translation.y, translation.z, q.x, q.y, q.z, q.w]
    if not all(math.isfinite(v) for v in values):
        raise InputError(f"{what} has NaN or infinite values", "send finite numbers")
    n = math.sqrt(q.x ** 2 + q.y ** 2 + q.z ** 2 + q.w ** 2)
    if not 0.9 < n < 1.1:
        raise InputError(f"{what} has a quaternion of norm {n:.3g}", "send a unit quaternion")
    T = np.eye(4)
    T[:3, :3] = quaternion_to_matrix(q.x / n, q.y / n, q.z / n, q.w / n)
    T[:3, 3] = values[:3]
    return T


def _body_velocity(prev: np.ndarray, cur: np.ndarray, dt: float):
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


def recorded_camera_parameters(world, name: str = "front") -> dict[str, Any]:
    """With no rig configured: one camera ``front`` like the one that recorded the world."""
    k = world.intrinsics
    return {"cameras.names": [name], f"cameras.{name}.width": int(k.width), f"cameras.{name}.height": int(k.height),
            f"cameras.{name}.fx": float(k.fx), f"cameras.{name}.fy": float(k.fy),
            f"cameras.{name}.cx": float(k.cx), f"cameras.{name}.cy": float(k.cy)}


def load_world(path: str):
    """A world file, or the embedded default world when ``path`` is empty."""
    from ..world import World

    if not path:
        from ..demo import ensure_default_world

        world_path = ensure_default_world()
        return World.load(world_path), "default"
    return World.load(path), path
