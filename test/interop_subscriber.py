"""A subscriber process for the interop matrix: every node output at once, reliable, on one DDS.

    python interop_subscriber.py {rclpy|cyclone} SECONDS OUT.json

``rclpy`` is a real rclpy node on its default RMW (Fast DDS, rmw_fastrtps_cpp from the Jazzy
wheels); ``cyclone`` is a Cyclone DDS participant (the package's DdsTransport, no ROS). After the
first message of every topic it records receive times for SECONDS and writes, atomically, per topic:
count, largest gap between two messages and the time since the last one. A subscriber that freezes
(the Fast DDS take loop of issue 21) writes nothing: the test reads that as a failure.
"""
from __future__ import annotations

import json
import os
import sys
import time

from inspatio_ros.ros.all_outputs import BEST_EFFORT, RCLPY_LACKS, all_outputs

# The rclpy subscriber takes every output its install has types for; Cyclone takes the rest too.
TOPICS = [(t, ty) for t, ty in all_outputs("front") if ty not in RCLPY_LACKS]
CYCLONE_ONLY = [(t, ty) for t, ty in all_outputs("front") if ty in RCLPY_LACKS]
WARM_UP_S = 60.0          # longest wait for the first message of every topic


class Recorder:
    def __init__(self, topics):
        self.times: dict[str, list[float]] = {t: [] for t in topics}

    def callback(self, topic):
        times = self.times[topic]
        return lambda _msg: times.append(time.monotonic())

    def all_seen(self) -> bool:
        return all(self.times.values())

    def report(self, start: float, end: float) -> dict:
        out = {}
        for topic, times in self.times.items():
            window = [start] + [t for t in times if start <= t <= end] + [end]
            gaps = [b - a for a, b in zip(window, window[1:])]
            out[topic] = {"count": len(window) - 2, "max_gap_s": max(gaps)}
        return out


def _rclpy_subscriber(recorder: Recorder):
    import importlib

    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    rclpy.init()
    node = rclpy.create_node("interop_rclpy_subscriber")
    for topic in recorder.times:
        package, _, name = dict(TOPICS)[topic].split("/")
        cls = getattr(importlib.import_module(f"{package}.msg"), name)
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.BEST_EFFORT if topic in BEST_EFFORT
                         else ReliabilityPolicy.RELIABLE)
        node.create_subscription(cls, topic, recorder.callback(topic), qos)
    return lambda timeout: rclpy.spin_once(node, timeout_sec=timeout)


def _cyclone_subscriber(recorder: Recorder):
    from inspatio_ros.ros.dds import DdsTransport
    from inspatio_ros.ros.transport import Qos

    transport = DdsTransport("interop_cyclone_subscriber")
    types = dict(TOPICS + CYCLONE_ONLY)
    for topic in recorder.times:
        reliability = "best_effort" if topic in BEST_EFFORT else "reliable"
        transport.create_subscription(types[topic], topic, recorder.callback(topic), Qos(reliability, "volatile", 10))
    return transport.spin_once


def main(argv: list[str]) -> int:
    kind, seconds, out_path = argv[0], float(argv[1]), argv[2]
    topics = [t for t, _ in TOPICS] + ([t for t, _ in CYCLONE_ONLY] if kind == "cyclone" else [])
    recorder = Recorder(topics)
    spin = _rclpy_subscriber(recorder) if kind == "rclpy" else _cyclone_subscriber(recorder)
    deadline = time.monotonic() + WARM_UP_S
    while not recorder.all_seen() and time.monotonic() < deadline:
        spin(0.02)
    start = time.monotonic()
    while time.monotonic() < start + seconds:
        spin(0.02)
    result = {"kind": kind, "all_seen_before_window": recorder.all_seen(),
              "topics": recorder.report(start, time.monotonic())}
    tmp = out_path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, out_path)
    sys.stdout.flush()
    # rclpy's and Cyclone's exit handlers can take seconds (or hang after a freeze): the result is
    # written, so leave at once.
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
