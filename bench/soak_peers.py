"""The other processes of the soak bench (bench/soak.py): subscribers and the pose flood.

    python soak_peers.py subscriber {rclpy|cyclone} OUT.npz STATUS.json
    python soak_peers.py flood SECONDS HZ OUT.json

``subscriber``: ``rclpy`` is a real rclpy node on its default RMW (Fast DDS from the Jazzy wheels),
``cyclone`` a Cyclone DDS participant (the package's DdsTransport, no ROS), as in
test/interop_subscriber.py, but for as long as the soak runs and keeping every message's receive
time (CLOCK_MONOTONIC, comparable across processes) and header stamp, so that soak.py can find
gaps around each fault and samples one subscriber got and the other did not. Every second it
writes STATUS.json (per topic: count, last receive time) for soak.py's live checks; on SIGUSR1 or
SIGTERM it writes OUT.npz atomically and exits. /diagnostics values (frames_published,
dropped_inputs, achieved_hz) are kept with their stamps: they are the node's own counters.

``flood``: publishes PoseStamped to the node's ``pose`` topic at HZ for SECONDS (Cyclone, best
effort like the node's input QoS). Each pose has a zero quaternion, so a node in any mode must
refuse it and count it in /diagnostics ``dropped_inputs``: the count says how many the node
handled. (A valid pose in replay mode is ignored without being counted, and a far-away one is
accepted by the jump check once enough sim time has passed since the start pose: 1 km was,
after ~100 s of sim time at vehicle.max_speed 30 m/s, in the first trial of this bench.)
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time

import numpy as np

from inspatio_ros.ros.all_outputs import BEST_EFFORT, RCLPY_LACKS, all_outputs

# The rclpy subscriber takes every output its install has types for; Cyclone takes the rest too.
TOPICS = [(t, ty) for t, ty in all_outputs("front") if ty not in RCLPY_LACKS]
CYCLONE_ONLY = [(t, ty) for t, ty in all_outputs("front") if ty in RCLPY_LACKS]
DEPTH = 10
DIAG_KEYS = ("frames_published", "dropped_inputs", "achieved_hz")


def topics_of(kind: str) -> list[str]:
    return [t for t, _ in TOPICS] + ([t for t, _ in CYCLONE_ONLY] if kind == "cyclone" else [])


def _stamp_ns(topic: str, msg) -> int:
    if topic == "/clock":
        st = msg.clock
    elif topic == "/tf":
        if not msg.transforms:
            return -1
        st = msg.transforms[0].header.stamp
    else:
        st = msg.header.stamp
    return int(st.sec) * 1_000_000_000 + int(st.nanosec)


class Recorder:
    def __init__(self, topics: list[str]):
        self.recv: dict[str, list[float]] = {t: [] for t in topics}
        self.stamp: dict[str, list[int]] = {t: [] for t in topics}
        self.diag: list[tuple] = []       # (receive time, stamp ns, frames_published, dropped_inputs, achieved_hz)

    def callback(self, topic: str):
        recv, stamps = self.recv[topic], self.stamp[topic]

        def on_message(msg):
            t = time.monotonic()
            s = _stamp_ns(topic, msg)
            recv.append(t)
            stamps.append(s)
            if topic == "/diagnostics" and msg.status:
                values = {kv.key: kv.value for kv in msg.status[0].values}
                try:
                    self.diag.append((t, s, *(float(values.get(k, "nan")) for k in DIAG_KEYS)))
                except ValueError:
                    pass
        return on_message

    def write_status(self, path: str) -> None:
        status = {t: [len(r), r[-1] if r else None] for t, r in self.recv.items()}
        _write_atomic(path, json.dumps({"time": time.monotonic(), "topics": status}).encode())

    def save(self, path: str, kind: str) -> None:
        arrays = {"meta": np.frombuffer(json.dumps({"kind": kind, "topics": list(self.recv)}).encode(), np.uint8),
                  "diag": np.array(self.diag, np.float64).reshape(-1, 2 + len(DIAG_KEYS))}
        for i, topic in enumerate(self.recv):
            arrays[f"recv{i}"] = np.array(self.recv[topic], np.float64)
            arrays[f"stamp{i}"] = np.array(self.stamp[topic], np.int64)
        tmp = path + ".tmp.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, path)


def load(path: str) -> dict:
    """OUT.npz -> {"kind", "topics": {topic: (recv, stamp)}, "diag": array}."""
    with np.load(path) as z:
        meta = json.loads(bytes(z["meta"]).decode())
        topics = {t: (z[f"recv{i}"], z[f"stamp{i}"]) for i, t in enumerate(meta["topics"])}
        return {"kind": meta["kind"], "topics": topics, "diag": z["diag"]}


def _write_atomic(path: str, data: bytes) -> None:
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _rclpy_spin(recorder: Recorder):
    import importlib

    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    rclpy.init()
    node = rclpy.create_node("soak_rclpy_subscriber")
    types = dict(TOPICS)
    for topic in recorder.recv:
        package, _, name = types[topic].split("/")
        cls = getattr(importlib.import_module(f"{package}.msg"), name)
        qos = QoSProfile(depth=DEPTH, reliability=ReliabilityPolicy.BEST_EFFORT if topic in BEST_EFFORT
                         else ReliabilityPolicy.RELIABLE)
        node.create_subscription(cls, topic, recorder.callback(topic), qos)
    return lambda timeout: rclpy.spin_once(node, timeout_sec=timeout)


def _cyclone_spin(recorder: Recorder):
    from inspatio_ros.ros.dds import DdsTransport
    from inspatio_ros.ros.transport import Qos

    transport = DdsTransport("soak_cyclone_subscriber")
    types = dict(TOPICS + CYCLONE_ONLY)
    for topic in recorder.recv:
        reliability = "best_effort" if topic in BEST_EFFORT else "reliable"
        transport.create_subscription(types[topic], topic, recorder.callback(topic),
                                      Qos(reliability, "volatile", DEPTH))
    return transport.spin_once


def subscriber(kind: str, out_path: str, status_path: str) -> int:
    recorder = Recorder(topics_of(kind))
    spin = _rclpy_spin(recorder) if kind == "rclpy" else _cyclone_spin(recorder)
    stop = []
    # After rclpy.init, which installs its own SIGINT/SIGTERM handling.
    for sig in (signal.SIGUSR1, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.append(True))
    next_status = 0.0
    while not stop:
        spin(0.05)
        now = time.monotonic()
        if now >= next_status:
            recorder.write_status(status_path)
            next_status = now + 1.0
    recorder.save(out_path, kind)
    sys.stdout.flush()
    # rclpy's and Cyclone's exit handlers can take seconds: the result is written, leave at once.
    os._exit(0)


def flood(seconds: float, hz: float, out_path: str) -> int:
    from inspatio_ros.ros.dds import DdsTransport
    from inspatio_ros.ros.dds_types import Header, Point, Pose, PoseStamped, Quaternion, Time
    from inspatio_ros.ros.transport import Qos

    transport = DdsTransport("soak_pose_flood")
    pub = transport.create_publisher("geometry_msgs/msg/PoseStamped", "pose", Qos("best_effort", "volatile", 10))
    deadline = time.monotonic() + 10.0
    while pub.subscription_count() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)           # discovery: poses sent before the node's reader matched are lost
    matched = pub.subscription_count()
    msg = PoseStamped(header=Header(stamp=Time(sec=0, nanosec=0), frame_id="map"),
                      pose=Pose(position=Point(x=0.0, y=0.0, z=0.0),
                                orientation=Quaternion(x=0.0, y=0.0, z=0.0, w=0.0)))
    sent, period = 0, 1.0 / hz
    started = time.monotonic()
    end = started + seconds
    next_t = started
    while True:
        now = time.monotonic()
        if now >= end:
            break
        if now < next_t:
            time.sleep(next_t - now)
        pub.publish(msg)
        sent += 1
        next_t += period
    took = time.monotonic() - started
    _write_atomic(out_path, json.dumps({"sent": sent, "seconds": took, "matched": matched,
                                        "start": started, "end": started + took}).encode())
    os._exit(0)


def main(argv: list[str]) -> int:
    if argv[0] == "subscriber":
        return subscriber(argv[1], argv[2], argv[3])
    if argv[0] == "flood":
        return flood(float(argv[1]), float(argv[2]), argv[3])
    raise SystemExit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
