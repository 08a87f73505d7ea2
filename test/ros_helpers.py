"""Test helpers: the node in a real subprocess, and a real rclpy node that talks to it.

Every participant runs with ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST (loopback only) and a
ROS_DOMAIN_ID of this test session (set in conftest.py), so parallel runs do not cross-talk.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import yaml


def write_params(path: Path, params: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump({"inspatio_ros": {"ros__parameters": params}}), encoding="utf-8")
    return path


class NodeProcess:
    """``inspatio-ros run`` in a subprocess; stopped with SIGINT (as Ctrl-C) on exit."""

    def __init__(self, world: Path, config: Path, transport: str, log_path: Path, extra: list[str] = (),
                 env: dict[str, str] | None = None):
        self.cmd = [sys.executable, "-m", "inspatio_ros.cli", "--device", "cpu", "run", str(world),
                    "--config", str(config), "--transport", transport, *extra]
        self.log_path = log_path
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "NodeProcess":
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.cmd, stdout=self._log, stderr=subprocess.STDOUT, env=self.env)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


class Probe:
    """A real rclpy node in the test process: subscribes, publishes, waits."""

    def __init__(self, name: str = "probe"):
        import rclpy

        self.rclpy = rclpy
        if not rclpy.ok():
            rclpy.init()
        self.node = rclpy.create_node(name)
        self.received: dict[str, list] = {}

    def subscribe(self, msg_type, topic: str, reliable: bool = True, depth: int = 50):
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        qos = QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT)
        self.received[topic] = []
        self.node.create_subscription(msg_type, topic, self.received[topic].append, qos)

    def publisher(self, msg_type, topic: str, reliable: bool = True):
        from rclpy.qos import QoSProfile, ReliabilityPolicy

        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT)
        return self.node.create_publisher(msg_type, topic, qos)

    def spin_until(self, done: Callable[[], bool], timeout: float, node: NodeProcess | None = None) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done():
                return True
            if node is not None and not node.alive():
                raise AssertionError(f"the node exited:\n{node.log()}")
            self.rclpy.spin_once(self.node, timeout_sec=0.02)
        return done()

    def spin_for(self, seconds: float) -> None:
        self.spin_until(lambda: False, seconds)

    def close(self) -> None:
        self.node.destroy_node()


def image_array(msg) -> np.ndarray:
    data = np.frombuffer(bytes(msg.data), dtype=np.uint8)
    if msg.encoding == "rgb8":
        return data.reshape(msg.height, msg.width, 3)
    if msg.encoding == "32FC1":
        return data.view("<f4").reshape(msg.height, msg.width)
    if msg.encoding == "mono8":
        return data.reshape(msg.height, msg.width)
    raise ValueError(msg.encoding)


def stamp_ns(stamp) -> int:
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


class DdsMessageClasses:
    """The built-in DDS transport's message classes without a DDS participant, for building the
    node's messages in a test (MessageBuilder(DdsMessageClasses()))."""

    name = "dds"

    def message_class(self, type_name):
        from inspatio_ros.ros import dds_types

        return getattr(dds_types, type_name.rsplit("/", 1)[-1])

    def byte_payload(self, data):
        return bytes(data)
