"""The sensor-simulator node, written once against the Transport interface (ros/transport.py).

The simulation itself (clock, modes, ego, input checks, lockstep, which cameras are due) is a
ROS-free :class:`~inspatio_ros.sim.session.SimSession`; this node turns messages into its calls
and its frames into messages. Per tick the session renders the cameras that are due, and a
publisher thread builds and sends the frame's messages while the next frame renders. Every
message of one render has the same header.stamp (the sim time rendered).

Bad input (a NaN, a jump beyond ``input.max_jump``, an unknown frame, an absurd control) is
dropped with a throttled warning and counted in /diagnostics; the node keeps running.
"""
from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any, Callable

import numpy as np

from ..camera import rigid_from_xyz_quat
from ..config import render_settings_from
from ..errors import InputError
from ..sim.lidar import load_lidars
from ..sim.rig import has_camera_parameters, load_rig
from ..sim.session import SimSession, ThrottledLog
from ..sim.simulator import SensorFrame
from .messages import stamp_seconds
from .outputs import NodeOutputs
from .params import qos_of, split_parameters
from .transport import LATCHED, SENSOR_IN, Qos

log = logging.getLogger("inspatio_ros")

# Input topic names (relative ones resolve under the node's namespace, so remapping/namespaces work).
POSE_TOPIC, ODOM_IN_TOPIC, CMD_VEL_TOPIC, ACKERMANN_TOPIC = "pose", "odom_in", "cmd_vel", "ackermann_cmd"
CONTROL_TOPICS = {"pause": "~/pause", "seek": "~/seek", "rate": "~/rate", "reset": "~/reset", "step": "~/step"}


class SimNode:
    """The simulator node. ``params`` are ROS 2 parameters (dotted names), e.g. from config/*.yaml;
    they are checked into ``self.settings`` (:class:`~inspatio_ros.sim.settings.NodeSettings`)."""

    def __init__(self, transport, params: dict[str, Any], world=None, world_name: str | None = None):
        from ..generator.refiner import load_generator

        self.t = transport
        s, rig_params, render_params = split_parameters(params)
        self.settings = s
        render = render_settings_from(render_params, source="parameters")
        if world is None:
            world, world_name = load_world(s.world)
        self.world_name = world_name or s.world or "default"
        refiner = load_generator(s.generator, s.generator_weights or None, s.world or None, s.session.device)
        self.session = SimSession(world, load_rig(rig_params) if has_camera_parameters(rig_params) else None,
                                  s.session, render=render, refiner=refiner, lidars=load_lidars(rig_params))
        self.rig = self.session.rig
        self._warnings = ThrottledLog(log)
        self._step_requests = 0
        self._tf_tree: dict[str, tuple[str, np.ndarray, float]] = {}   # child -> (parent, T, stamp)
        self._stop = threading.Event()
        self.out = NodeOutputs(transport, s, self.session, self.world_name)
        self.stats = self.out.stats
        try:
            self._make_subscriptions()
        except BaseException:                  # also Ctrl-C during start-up: no writer or /dev/shm left behind
            self.out.close()
            raise

    # -- wiring ------------------------------------------------------------------------------
    def _make_subscriptions(self) -> None:
        sub = self.t.create_subscription
        qin = qos_of(self.settings.qos, "inputs", SENSOR_IN)
        sub("geometry_msgs/msg/PoseStamped", POSE_TOPIC, self._guarded("pose", self.on_pose), qin)
        sub("nav_msgs/msg/Odometry", ODOM_IN_TOPIC, self._guarded("odom_in", self.on_odometry), qin)
        sub("geometry_msgs/msg/Twist", CMD_VEL_TOPIC, self._guarded("cmd_vel", self.on_twist), qin)
        sub("ackermann_msgs/msg/AckermannDriveStamped", ACKERMANN_TOPIC,
            self._guarded("ackermann_cmd", self.on_ackermann), qin)
        if self.settings.session.external_clock:
            sub("rosgraph_msgs/msg/Clock", "/clock", self._guarded("clock", self.on_clock),
                Qos("best_effort", "volatile", 10))
        if self.settings.session.input.tf_child:
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
            counted = self.session.stats.dropped_inputs
            try:
                handler(msg)
            except InputError as exc:
                if self.session.stats.dropped_inputs == counted:   # refused here, before the session
                    self.session.stats.dropped_inputs += 1
                # Throttled per kind of problem (numbers stripped), so each kind is seen once.
                self._warnings.warn(f"{name}:{re.sub(r'[0-9][0-9.e+-]*', '#', exc.problem)}",
                                    f"{name}: dropped: {exc}")
        return callback

    # -- inputs ------------------------------------------------------------------------------
    def _set_pose(self, header, pose, source: str) -> None:
        ids = self.settings.frames
        if header.frame_id not in ("", ids.map, ids.odom):
            raise InputError(f"frame '{header.frame_id}' is unknown",
                             f"send poses in '{ids.map}' (or '{ids.odom}', the same here)")
        p, q = pose.position, pose.orientation
        T = rigid_from_xyz_quat((p.x, p.y, p.z), (q.x, q.y, q.z, q.w), "the pose")
        self.session.set_pose(T, stamp_seconds(header.stamp), source)

    def on_pose(self, msg) -> None:
        self._set_pose(msg.header, msg.pose, "pose")

    def on_odometry(self, msg) -> None:
        self._set_pose(msg.header, msg.pose.pose, "odometry")

    def on_tf(self, msg) -> None:
        """Keep the transforms; when the chain map -> ... -> input.tf_child is complete, that is the pose."""
        target, root = self.settings.session.input.tf_child, self.settings.frames.map
        touched = False
        for tf in msg.transforms:
            v, q = tf.transform.translation, tf.transform.rotation
            T = rigid_from_xyz_quat((v.x, v.y, v.z), (q.x, q.y, q.z, q.w),
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
        self.session.set_pose(pose, stamp, "tf")

    def on_twist(self, msg) -> None:
        self.session.command_twist(msg.linear.x, msg.angular.z)

    def on_ackermann(self, msg) -> None:
        d = msg.drive                # acceleration 0 means "as fast as allowed" (the model's limits)
        self.session.command_ackermann(d.speed, d.steering_angle, d.acceleration)

    def on_clock(self, msg) -> None:
        self.session.follow_clock(stamp_seconds(msg.clock))

    def on_seek(self, msg) -> None:
        self.session.seek(msg.data)

    def on_rate(self, msg) -> None:
        self.session.set_rate(msg.data)

    def on_pause(self, msg) -> None:
        self.session.pause() if msg.data else self.session.resume()

    def on_reset(self, msg) -> None:
        self.session.reset()

    def on_step(self, msg) -> None:
        self._step_requests += 1

    # -- the loop ----------------------------------------------------------------------------
    def tick(self) -> SensorFrame | None:
        """One free-running iteration: the session's tick, then /clock, the frame, status. Returns the frame."""
        frame = self.session.tick(into=self.out.writer_arrays)
        if self.session.waiting_for_clock:
            return None                          # nothing to stamp with before the first /clock
        stamp = self.session.stamp
        self.out.publish_clock(stamp)
        if frame is not None:
            self.out.publish(frame)
        self.out.publish_periodic(stamp)
        return frame

    def lockstep_tick(self) -> SensorFrame | None:
        """Render once per received pose (pose mode) or per ~/step request, else nothing."""
        if self.session.mode != "pose":
            if self._step_requests <= 0:
                return None
            self._step_requests -= 1
        frame = self.session.step(into=self.out.writer_arrays)
        if frame is not None:
            self.out.publish_clock(frame.stamp, force=True)
            self.out.publish(frame)
        return frame

    def spin(self, duration_s: float | None = None, max_frames: int | None = None) -> None:
        """Run until stop(), the duration (wall seconds) or the number of rendered frames."""
        deadline = None if duration_s is None else time.monotonic() + duration_s
        frames = 0
        while not self._stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                break
            if self.session.lockstep:
                self.t.spin_once(0.01)
                frame = self.lockstep_tick()
            else:
                # Short waits, so inputs are handled promptly.
                self.t.spin_once(0.02 if self.session.paused else min(max(self.session.seconds_until_due(), 0.0),
                                                                      0.005))
                frame = self.tick()
            if frame is not None:
                frames += 1
                if max_frames is not None and frames >= max_frames:
                    break
        self.flush()

    def warm_up(self) -> float:
        return self.session.warm_up()

    def stop(self) -> None:
        """End spin() (safe in a signal handler); writers that die from now on are not restarted."""
        self._stop.set()
        self.out.stop_restarts()

    def flush(self) -> None:
        self.out.flush()

    def close(self) -> None:
        self.stop()
        self.out.close()


def load_world(path: str):
    """A world file, or the embedded default world when ``path`` is empty."""
    from ..world import World

    if not path:
        from ..demo import ensure_default_world

        world_path = ensure_default_world()
        return World.load(world_path), "default"
    return World.load(path), path
