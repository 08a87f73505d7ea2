"""The rclpy transport: a real ROS 2 node with the install's message classes.

Types the install lacks (a pip-only ROS has no tf2_msgs or ackermann_msgs, and the package's own
SimStatus needs the inspatio_ros_interfaces package built by colcon) are carried by the built-in
DDS transport in the same process: same topic names and wire format, so ROS subscribers receive
them all the same. A warning names each such type once.
"""
from __future__ import annotations

import array
import importlib
import logging
import os
from pathlib import Path
from typing import Any, Callable

# Fast DDS reads its XML profile when the first participant is created: the node's own profile
# (ros/fastdds_node.xml) unless the user gives one. Why: Fast DDS's reliable writers heartbeat every
# 3 s, so a sample a subscriber lost (a full shared-memory port under load) was repaired only after
# up to 3 s; the interop matrix measured 1.5-2.9 s gaps on /diagnostics from this node to an rclpy
# subscriber, none over 0.4 s with 50 ms heartbeats. It also raises the UDP socket buffers to 4 MiB.
NODE_FASTDDS_PROFILE = Path(__file__).with_name("fastdds_node.xml")
if not os.environ.get("FASTRTPS_DEFAULT_PROFILES_FILE") and not os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE"):
    os.environ["FASTRTPS_DEFAULT_PROFILES_FILE"] = str(NODE_FASTDDS_PROFILE)

import rclpy  # noqa: E402  (after the profile is chosen)
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from ..errors import InputError
from .transport import Qos

log = logging.getLogger("inspatio_ros")


def qos_profile(qos: Qos) -> QoSProfile:
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST, depth=int(qos.depth),
        reliability=ReliabilityPolicy.RELIABLE if qos.reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT,
        durability=(DurabilityPolicy.TRANSIENT_LOCAL if qos.durability == "transient_local"
                    else DurabilityPolicy.VOLATILE))


class _RclpyPublisher:
    def __init__(self, pub):
        self._pub = pub

    def publish(self, msg) -> None:
        self._pub.publish(msg)

    def subscription_count(self) -> int:
        return self._pub.get_subscription_count()


# Parameters every rclpy node declares itself (not ours to check).
_ROS_BUILTIN_PARAMETERS = {"use_sim_time", "start_type_description_service"}


class RclpyTransport:
    name = "rclpy"

    def __init__(self, node_name: str = "inspatio_ros", namespace: str = "", args: list[str] | None = None):
        self._owns_context = not rclpy.ok()
        if self._owns_context:
            # Only `ros2 run` passes its argv (with --ros-args); the inspatio-ros CLI passes none,
            # so rcl does not read our own flags as remap rules.
            rclpy.init(args=list(args) if args is not None else [])
        # Parameters given with --ros-args --params-file arrive as overrides; declaring them from the
        # overrides keeps the dynamic per-camera names (cameras.<name>.*) without a fixed list.
        self.node = rclpy.create_node(node_name, namespace=namespace or "",
                                      automatically_declare_parameters_from_overrides=True)
        self.node_name = self.node.get_name()
        self.namespace = self.node.get_namespace()
        self._fallback = None
        self._fallback_types: set[str] = set()

    # -- types -------------------------------------------------------------------------------
    def _ros_class(self, type_name: str):
        pkg, kind, typ = type_name.split("/")
        try:
            return getattr(importlib.import_module(f"{pkg}.{kind}"), typ)
        except (ImportError, AttributeError):
            return None

    def _dds(self):
        if self._fallback is None:
            from .dds import DdsTransport

            # The rclpy node already announces this node in the ROS graph.
            self._fallback = DdsTransport(self.node_name, self.namespace, announce_node=False)
        return self._fallback

    def _uses_fallback(self, type_name: str) -> bool:
        if type_name in self._fallback_types:
            return True
        if self._ros_class(type_name) is not None:
            return False
        self._dds().message_class(type_name)   # InputError if neither side knows the type
        log.warning("%s is not installed for rclpy here; it is published through the built-in DDS "
                    "transport (same topic and wire format)", type_name)
        self._fallback_types.add(type_name)
        return True

    def message_class(self, type_name: str) -> type:
        if self._uses_fallback(type_name):
            return self._dds().message_class(type_name)
        cls = self._ros_class(type_name)
        if cls is None:
            raise InputError(f"message type {type_name} is unknown", "check the type name")
        return cls

    def byte_payload(self, data) -> Any:
        out = array.array("B")
        out.frombytes(memoryview(data).cast("B"))
        return out

    # -- endpoints ---------------------------------------------------------------------------
    def create_publisher(self, type_name: str, topic: str, qos: Qos):
        if self._uses_fallback(type_name):
            return self._dds().create_publisher(type_name, topic, qos)
        return _RclpyPublisher(self.node.create_publisher(self.message_class(type_name), topic, qos_profile(qos)))

    def create_subscription(self, type_name: str, topic: str, callback: Callable[[Any], None], qos: Qos):
        if self._uses_fallback(type_name):
            return self._dds().create_subscription(type_name, topic, callback, qos)
        return self.node.create_subscription(self.message_class(type_name), topic, callback, qos_profile(qos))

    def create_service(self, type_name: str, name: str, handler: Callable[[Any, Any], Any]):
        """A ROS service (e.g. std_srvs/srv/Trigger); ``handler(request, response) -> response``."""
        pkg, kind, typ = type_name.split("/")
        srv = getattr(importlib.import_module(f"{pkg}.{kind}"), typ)
        return self.node.create_service(srv, name, handler)

    def parameter_overrides(self) -> dict[str, Any]:
        """Parameters given on the command line / params file (dotted names -> values)."""
        return {name: p.value for name, p in self.node.get_parameters_by_prefix("").items()
                if name not in _ROS_BUILTIN_PARAMETERS}

    def use_sim_time(self) -> bool:
        return bool(self.node.get_parameter("use_sim_time").value) if self.node.has_parameter("use_sim_time") else False

    def spin_once(self, timeout_s: float) -> None:
        if self._fallback is not None:
            self._fallback.spin_once(0.0)
        rclpy.spin_once(self.node, timeout_sec=max(0.0, timeout_s))

    def shutdown(self) -> None:
        if self._fallback is not None:
            self._fallback.shutdown()
        self.node.destroy_node()
        if self._owns_context and rclpy.ok():
            rclpy.shutdown()
