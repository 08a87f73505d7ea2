"""What the simulator node publishes: camera messages, LiDAR clouds, /tf, odometry, /clock,
status, diagnostics.

:class:`NodeOutputs` makes the publishers from the node's parameters and turns a
:class:`~inspatio_ros.sim.simulator.SensorFrame` into messages. A publisher thread builds and
sends one frame's messages while the next frame renders; with writer processes
(``publish.writer_process``) the camera messages are written by one process per camera from
shared memory the renderer fills directly. Every message of one frame carries the frame's stamp.
"""
from __future__ import annotations

import logging
import math
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError
from ..sim.simulator import SensorFrame
from ..sim.settings import NodeSettings
from .all_outputs import camera_topics, lidar_topic
from .messages import DIAG_OK, DIAG_WARN, MessageBuilder
from .params import qos_of
from .rate_watch import RateWatch
from .transport import CLOCK, DEFAULT, LATCHED, SENSOR_OUT, Qos, resolve_topic
from .writer_process import CameraLayout, CameraWriters, camera_publishers, publish_cameras

log = logging.getLogger("inspatio_ros")

ODOM_TOPIC, STATUS_TOPIC = "odom", "status"


class _RecordedPublisher:
    """A publisher that also hands each message to the recorder (which never blocks: a full queue
    drops the recording's copy, counted, not the publication)."""

    def __init__(self, publisher, recorder, topic: str, type_name: str, qos: Qos):
        from ..record import qos_profile

        self._pub, self._rec, self._topic, self._type = publisher, recorder, topic, type_name
        self._qos = qos_profile(qos.reliability, qos.durability, qos.depth)

    def publish(self, msg) -> None:
        self._pub.publish(msg)
        self._rec.write_message(self._topic, self._type, msg, qos=self._qos)

    def __getattr__(self, name):                 # subscription_count, dropped, ...: the publisher's
        return getattr(self._pub, name)


class _RecordingTransport:
    """The node's transport, with every publisher it makes recorded (record.dir)."""

    def __init__(self, transport, recorder):
        self._t, self.recorder = transport, recorder

    def create_publisher(self, type_name: str, topic: str, qos: Qos):
        publisher = self._t.create_publisher(type_name, topic, qos)
        name = resolve_topic(topic, self._t.namespace, self._t.node_name)
        return _RecordedPublisher(publisher, self.recorder, name, type_name, qos)

    def __getattr__(self, name):
        return getattr(self._t, name)


@dataclass
class PublishStats:
    publish_ms: deque = field(default_factory=lambda: deque(maxlen=240))
    latency_ms: deque = field(default_factory=lambda: deque(maxlen=1000))    # pose in -> frame out
    # wall ms per frame the loop waited for the publishers: a free writer slot, the publisher thread
    wait_ms: deque = field(default_factory=lambda: deque(maxlen=240))
    frames_published: int = 0


class NodeOutputs:
    """The node's publishers over ``transport``, as its :class:`NodeSettings` say."""

    def __init__(self, transport, settings: NodeSettings, session, world_name: str):
        self.t, self.settings, self.session, self.world_name = transport, settings, session, world_name
        self.recorder = None
        if settings.record.dir:
            from ..record import Recorder

            r = settings.record
            self.recorder = Recorder(r.dir, split_mb=r.split_mb, split_s=r.split_s, queue_mb=r.queue_mb)
            self.t = _RecordingTransport(transport, self.recorder)
            log.info("recording every published message into %s (rosbag2, MCAP)", r.dir)
        self.frames, self.pub = settings.frames, settings.publish
        self.rig = session.rig
        self.foxglove = None
        self.lidars = session.lidars
        self.msgs = MessageBuilder(transport)
        self.stats = PublishStats()
        self.writer = None
        self._publisher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inspatio_publish")
        self._inflight: Future | None = None
        self._last_clock_pub = -math.inf
        self._last_status = -math.inf
        self._last_diag = -math.inf
        self._waited_s = 0.0                   # waits of the frame being made (see PublishStats.wait_ms)
        self.rate_watch = RateWatch(self.pub.rate_warning_s)
        try:
            if settings.foxglove.port:
                from ..live.foxglove import FoxgloveView

                self.foxglove = FoxgloveView(session, settings.foxglove, settings.frames, name=transport.node_name,
                                             namespace=transport.namespace,
                                             world_name=world_name)
            self._make_publishers(session.sim.device)
            self._publish_static_tf()
        except BaseException:                  # also Ctrl-C during start-up: no writer or /dev/shm left behind
            self.close()
            raise

    def _make_publishers(self, device) -> None:
        pub = self.t.create_publisher
        self.layouts = {cam.name: CameraLayout(
            name=cam.name, optical_frame=cam.optical_frame, intrinsics=cam.intrinsics, outputs=tuple(cam.outputs),
            topics=camera_topics(cam.name),
            qos={k: qos_of(self.settings.qos, k, SENSOR_OUT)
                 for k in ("image", "camera_info", "depth", "points", "coverage", "compressed")},
            lens=cam.lens, rate_hz=cam.rate_hz) for cam in self.rig}
        choice = self.pub.writer_process
        use_writer = choice == "on" or (choice == "auto" and self.t.name == "dds" and device.type == "cuda")
        if use_writer and self.recorder is not None:
            # The writer processes publish the camera messages themselves, out of the recorder's reach.
            if choice == "on":
                raise InputError("publish.writer_process on cannot be recorded (record.dir is set)",
                                 "set publish.writer_process to auto or off, or record without --record")
            log.info("recording: camera messages are published by the node itself (no writer processes)")
            use_writer = False
        if use_writer and self.t.name != "dds":
            raise InputError("publish.writer_process on needs the dds transport", "use --transport dds, or set it off")
        self.cam_pubs: dict[str, dict[str, Any]] = {}
        if use_writer:
            self.writer = CameraWriters(self.t.node_name, self.t.namespace, self.t.domain_id,
                                        list(self.layouts.values()), self.pub.jpeg_quality,
                                        pin_memory=device.type == "cuda")
            log.info("camera messages written by %d writer processes (one per camera): %s", len(self.writer.writers),
                     ", ".join(f"{name} pid {pid}" for name, pid in self.writer.pids.items()))
            if device.type == "cuda":
                if self.writer.page_locked:
                    log.info("their shared memory is page-locked: renders are copied straight into it")
                else:
                    log.warning("could not page-lock the writers' shared memory: device copies into it "
                                "are synchronous (slower)")
        else:
            self.cam_pubs = {name: camera_publishers(self.t, lay) for name, lay in self.layouts.items()}
        # LiDAR clouds are published by the node itself (a sweep is a few MB at most).
        self.lidar_pubs = {s.name: pub("sensor_msgs/msg/PointCloud2", lidar_topic(s.name),
                                       qos_of(self.settings.qos, "points", SENSOR_OUT)) for s in self.lidars}
        self.tf_pub = (pub("tf2_msgs/msg/TFMessage", "/tf", qos_of(self.settings.qos, "tf", DEFAULT))
                       if self.pub.tf else None)
        self.tf_static_pub = pub("tf2_msgs/msg/TFMessage", "/tf_static", LATCHED)
        self.odom_pub = (pub("nav_msgs/msg/Odometry", ODOM_TOPIC, qos_of(self.settings.qos, "odom", DEFAULT))
                         if self.pub.odom else None)
        # Another node is the time source: follow its /clock, never publish one.
        self.clock_pub = (pub("rosgraph_msgs/msg/Clock", "/clock", qos_of(self.settings.qos, "clock", CLOCK))
                          if self.settings.session.clock.publish and not self.settings.session.external_clock
                          else None)
        if self.settings.session.input.tf_child and self.tf_pub is not None:
            log.info("following %s on /tf: not publishing the ego's transforms", self.settings.session.input.tf_child)
            self.tf_pub = None
        self.status_pub = pub("inspatio_ros_interfaces/msg/SimStatus", STATUS_TOPIC,
                              qos_of(self.settings.qos, "status", DEFAULT))
        self.diag_pub = pub("diagnostic_msgs/msg/DiagnosticArray", "/diagnostics",
                            qos_of(self.settings.qos, "diagnostics", DEFAULT))

    def writer_arrays(self, names: list[str]):
        """Where the session renders cameras ``names``: with writer processes a free slot of their
        shared memory, else None (the simulator's own buffers)."""
        if self.writer is None:
            return None
        started = time.perf_counter()
        arrays = self.writer.acquire(names)
        self._waited_s += time.perf_counter() - started
        return arrays

    def publish(self, frame: SensorFrame) -> None:
        received = frame.input_received
        if self.foxglove is not None:
            # First: it copies what its clients see before a writer process may reuse the frame's memory.
            self.foxglove.publish(frame)
        if self.writer is not None:
            # Camera messages: written by the writer processes from the slot rendered into; the
            # pose -> image latency ends when the writers acknowledge the frame.
            on_done = None if received is None else (
                lambda t_done, t0=received: self.stats.latency_ms.append((t_done - t0) * 1e3))
            self.writer.submit(frame.stamp, frame.cameras, on_done)
            received = None
        # One frame in flight: the previous frame's messages go out while this one rendered.
        started = time.perf_counter()
        self.flush()
        self.stats.wait_ms.append((self._waited_s + time.perf_counter() - started) * 1e3)
        self._waited_s = 0.0
        self._inflight = self._publisher.submit(self._publish_frame, frame, received)

    def _publish_frame(self, frame: SensorFrame, received: float | None) -> None:
        started = time.perf_counter()
        m, f, stamp = self.msgs, self.frames, frame.stamp
        if self.writer is None:
            arrays = {cf.spec.name: {"rgb": cf.rgb, "depth": cf.depth, "points": cf.points, "coverage": cf.coverage}
                      for cf in frame.cameras}
            publish_cameras(m, self.cam_pubs, stamp, [self.layouts[cf.spec.name] for cf in frame.cameras], arrays,
                            self.pub.jpeg_quality)
        for lidar in frame.lidars:
            self.lidar_pubs[lidar.spec.name].publish(m.lidar_cloud(m.header(stamp, lidar.spec.frame), lidar.points))
        if self.tf_pub is not None:
            self.tf_pub.publish(m.tf([m.transform_stamped(stamp, f.map, f.odom, np.eye(4)),
                                      m.transform_stamped(stamp, f.odom, f.base_link,
                                                          frame.map_from_base)]))
        if self.odom_pub is not None:
            self.odom_pub.publish(m.odometry(stamp, f.odom, f.base_link, frame.map_from_base,
                                             frame.linear_velocity, frame.angular_velocity))
        done = time.perf_counter()
        self.stats.publish_ms.append((done - started) * 1e3)
        if received is not None:
            self.stats.latency_ms.append((done - received) * 1e3)
        self.stats.frames_published += 1

    def _publish_static_tf(self) -> None:
        m, stamp, transforms = self.msgs, self.session.sim_time, []
        for cam in self.rig:
            transforms.append(m.transform_stamped(stamp, self.frames.base_link, cam.link_frame, cam.base_from_link()))
            transforms.append(m.transform_stamped(stamp, cam.link_frame, cam.optical_frame, cam.link_from_optical()))
        for lidar in self.lidars:
            transforms.append(m.transform_stamped(stamp, self.frames.base_link, lidar.frame, lidar.base_from_link()))
        self.tf_static_pub.publish(m.tf(transforms))

    def publish_clock(self, sim_time: float, force: bool = False) -> None:
        # /clock at up to 100 Hz of sim time: enough for use_sim_time consumers, cheap.
        if self.clock_pub is not None and (force or sim_time - self._last_clock_pub >= 0.01):
            self._last_clock_pub = sim_time
            self.clock_pub.publish(self.msgs.clock(sim_time))

    def publish_periodic(self, stamp: float) -> None:
        """Status and diagnostics at their rates (publish.status_hz, publish.diagnostics_hz)."""
        if self.writer is not None:
            self.writer.poll()
        now, s = time.monotonic(), self.session
        if self.pub.status_hz > 0 and now - self._last_status >= 1.0 / self.pub.status_hz:
            self._last_status = now
            self.status_pub.publish(self.msgs.status(stamp, self.frames.map, self.world_name, s.elapsed, s.rate,
                                                     s.paused, s.mode, s.achieved_hz()))
        if self.pub.diagnostics_hz > 0 and now - self._last_diag >= 1.0 / self.pub.diagnostics_hz:
            self._last_diag = now
            self.diag_pub.publish(self.msgs.diagnostics(stamp, *self.diagnostic_values()))
        if self.rate_watch.due():
            self.rate_watch.check(s.diagnostics(), s.clock.rate, _mean(self.stats.wait_ms), self._write_ms(),
                                  self.dropped())

    def _write_ms(self) -> float:
        if self.writer is not None:
            return _mean(self.writer.write_s) * 1e3
        return _mean(self.stats.publish_ms)

    def dropped(self) -> dict[str, int]:
        """Samples dropped at the source so far because readers did not keep up: per camera (its
        writer process) and per publisher of the node's own (DDS transport only)."""
        out = {}
        if self.writer is not None:
            out.update({f"camera '{name}'": w.dropped for name, w in self.writer.writers.items()})
        else:
            for name, pubs in self.cam_pubs.items():
                out[f"camera '{name}'"] = sum(getattr(p, "dropped", 0) for p in pubs.values())
        for name, pub in (("/tf", self.tf_pub), ("odom", self.odom_pub),
                          *((f"lidar '{n}'", p) for n, p in self.lidar_pubs.items())):
            if pub is not None and getattr(pub, "dropped", 0):
                out[name] = pub.dropped
        return out

    def diagnostic_values(self):
        """(name, hardware_id, level, message, values) of the /diagnostics status."""
        d, s = self.session.diagnostics(), self.stats
        lat = np.array(s.latency_ms) if s.latency_ms else None
        values = {
            "achieved_hz": d.achieved_hz, "target_hz": d.target_hz, "render_ms_mean": d.render_ms_mean,
            "publish_ms_mean": float(np.mean(s.publish_ms)) if s.publish_ms else float("nan"),
            "pose_to_image_ms_p50": float(np.percentile(lat, 50)) if lat is not None else float("nan"),
            "pose_to_image_ms_p99": float(np.percentile(lat, 99)) if lat is not None else float("nan"),
            "dropped_inputs": d.dropped_inputs, "frames_published": s.frames_published,
            "sim_time": d.sim_time, "paused": d.paused, "mode": d.mode,
            **{f"coverage.{name}": cov for name, cov in d.coverage.items()},
            **(self.writer.counts() if self.writer is not None else {}),
            **(self.recorder.counts() if self.recorder is not None else {}),
            **(self.foxglove.counts() if self.foxglove is not None else {}),
            "samples_dropped": sum(self.dropped().values()),
        }
        return (f"{self.t.node_name}: simulator", self.world_name, DIAG_WARN if d.slow else DIAG_OK, d.message,
                values)

    def flush(self) -> None:
        """Wait until the frame in flight is published."""
        if self._inflight is not None:
            self._inflight.result()
            self._inflight = None

    def stop_restarts(self) -> None:
        """The node is stopping: camera writers that die now are not restarted (safe in a signal handler)."""
        if self.writer is not None:
            self.writer.stop_restarts()

    def close(self) -> None:
        try:
            if self.foxglove is not None:
                self.foxglove.close()
                self.foxglove = None
            self.flush()
            self._publisher.shutdown(wait=True)
            if self.writer is not None:
                self.writer.close()
                self.writer = None
        finally:
            # Last, after every message is out: the recording gets its footers and metadata.yaml
            # also when closing the rest failed.
            if self.recorder is not None:
                self.recorder.close()
                self.recorder = None


def _mean(values) -> float:
    return float(np.mean(values)) if len(values) else float("nan")
