"""The small interface the simulator node is written against, and how a transport is chosen.

Two implementations carry the same ROS 2 messages:

* ``RclpyTransport`` (ros/rclpy_transport.py): real rclpy with the install's message classes;
  what ROS users run through ``ros2 run`` / ``ros2 launch``.
* ``DdsTransport`` (ros/dds.py): Cyclone DDS with IDL types named like ROS 2's
  (``sensor_msgs::msg::dds_::Image_`` on topic ``rt/<name>``, classic CDR), so the node runs on a
  machine with no ROS at all and any ROS 2 node on the network receives it.

Messages are built with keyword arguments named as in the .msg files and read by attribute, the
same on both transports::

    Image = transport.message_class("sensor_msgs/msg/Image")
    msg = Image(header=Header(stamp=Time(sec=1, nanosec=0), frame_id="front_optical_frame"),
                height=h, width=w, encoding="rgb8", is_bigendian=0, step=3 * w,
                data=transport.byte_payload(rgb_bytes))

``byte_payload`` turns a bytes-like buffer into what the transport's uint8[] fields take without a
per-byte Python loop (bytes for DDS, array.array('B') for rclpy).

Topic names are ROS names: relative ("front/image_raw") resolves under the node's namespace,
"~/status" under the node's own name, "/tf" is absolute. Resolution is done here, once, so both
transports agree.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Protocol

from ..errors import InputError


@dataclass(frozen=True)
class Qos:
    """The QoS settings the node uses (names as in rclpy.qos)."""

    reliability: str = "reliable"      # reliable | best_effort
    durability: str = "volatile"       # volatile | transient_local
    depth: int = 10                    # history KEEP_LAST depth

    def __post_init__(self):
        if self.reliability not in ("reliable", "best_effort"):
            raise InputError(f"QoS reliability '{self.reliability}' is unknown", "use reliable or best_effort")
        if self.durability not in ("volatile", "transient_local"):
            raise InputError(f"QoS durability '{self.durability}' is unknown", "use volatile or transient_local")
        if int(self.depth) < 1:
            raise InputError(f"QoS depth {self.depth} is below 1", "use a history depth of 1 or more")


SENSOR_OUT = Qos("reliable", "volatile", 5)        # images, depth, clouds: reliable by default
SENSOR_IN = Qos("best_effort", "volatile", 5)      # pose / control inputs: like SensorDataQoS
LATCHED = Qos("reliable", "transient_local", 1)    # /tf_static
CLOCK = Qos("best_effort", "volatile", 1)          # /clock as ROS publishes it
DEFAULT = Qos("reliable", "volatile", 10)


class Publisher(Protocol):
    def publish(self, msg: Any) -> None: ...
    def subscription_count(self) -> int: ...


class Transport(Protocol):
    """What the node needs from a middleware."""

    name: str                  # "rclpy" or "dds"
    node_name: str
    namespace: str

    def message_class(self, type_name: str) -> type:
        """The class for 'pkg/msg/Type' (constructor takes the .msg field names as keywords)."""
    def byte_payload(self, data) -> Any:
        """A bytes-like buffer as the value of a uint8[] field."""
    def create_publisher(self, type_name: str, topic: str, qos: Qos) -> Publisher: ...
    def create_subscription(self, type_name: str, topic: str, callback: Callable[[Any], None],
                            qos: Qos) -> Any: ...
    def spin_once(self, timeout_s: float) -> None:
        """Deliver pending incoming messages to their callbacks (on the calling thread)."""
    def shutdown(self) -> None: ...


def resolve_topic(topic: str, namespace: str, node_name: str) -> str:
    """ROS 2 name resolution: absolute stays, '~' is the node's private namespace, else relative."""
    ns = "/" + namespace.strip("/") if namespace.strip("/") else ""
    if topic.startswith("/"):
        name = topic
    elif topic.startswith("~"):
        name = f"{ns}/{node_name}{topic[1:]}" if topic != "~" else f"{ns}/{node_name}"
    else:
        name = f"{ns}/{topic}"
    parts = [p for p in name.split("/") if p]
    for part in parts:
        if not (part[0].isalpha() or part[0] == "_") or not all(c.isalnum() or c == "_" for c in part):
            raise InputError(f"topic name '{topic}' is not a valid ROS 2 name",
                             "use letters, digits and '_' separated by '/', not starting with a digit")
    return "/" + "/".join(parts)


def make_transport(kind: str = "auto", node_name: str = "inspatio_ros", namespace: str = "") -> Transport:
    """``auto``: rclpy when it imports (a ROS 2 install or the ros-jazzy wheels), else DDS."""
    if kind not in ("auto", "rclpy", "dds"):
        raise InputError(f"transport '{kind}' is unknown", "use auto, rclpy or dds")
    if kind in ("auto", "rclpy"):
        try:
            from .rclpy_transport import RclpyTransport
        except ImportError as exc:
            if kind == "rclpy":
                raise InputError(f"transport rclpy was asked for but rclpy does not import ({exc})",
                                 "source a ROS 2 install (or pip install ros-jazzy-rclpy ...), "
                                 "or use --transport dds") from None
        else:
            return RclpyTransport(node_name, namespace)
    from .dds import DdsTransport
    return DdsTransport(node_name, namespace, domain_id=int(os.environ.get("ROS_DOMAIN_ID", "0") or 0))
