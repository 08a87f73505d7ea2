"""The node's output topics: per camera (:func:`camera_topics`, what the node publishes on) and
every topic for one camera with every output on, as (topic, ROS type) (:func:`all_outputs`: what
the subscribers that watch all outputs at once subscribe to, test/interop_subscriber.py and
bench/soak_peers.py). Kept free of heavy imports: those subscribers are small processes.
"""
from __future__ import annotations

# Types a pip-only rclpy (the ROS 2 Jazzy wheels) does not have: only Cyclone subscribers take them.
RCLPY_LACKS = frozenset({"tf2_msgs/msg/TFMessage", "inspatio_ros_interfaces/msg/SimStatus"})
# /clock is best effort, as ROS publishes and subscribes it (rclpy's TimeSource); the rest reliable.
BEST_EFFORT = frozenset({"/clock"})


def camera_topics(name: str) -> dict[str, str]:
    """Output -> topic of camera ``name`` (relative: under the node's namespace)."""
    return {"image": f"{name}/image_raw", "camera_info": f"{name}/camera_info",
            "depth": f"{name}/depth/image", "depth_info": f"{name}/depth/camera_info",
            "points": f"{name}/points", "coverage": f"{name}/coverage",
            "compressed": f"{name}/image_raw/compressed"}


def lidar_topic(name: str) -> str:
    """The point cloud topic of LiDAR ``name`` (relative: under the node's namespace)."""
    return f"{name}/points"


def all_outputs(camera: str = "front") -> list[tuple[str, str]]:
    """(topic, type) of every output of the node with one camera named ``camera``."""
    topic = camera_topics(camera)
    return [
        (topic["image"], "sensor_msgs/msg/Image"),
        (topic["camera_info"], "sensor_msgs/msg/CameraInfo"),
        (topic["depth"], "sensor_msgs/msg/Image"),
        (topic["depth_info"], "sensor_msgs/msg/CameraInfo"),
        (topic["points"], "sensor_msgs/msg/PointCloud2"),
        (topic["coverage"], "sensor_msgs/msg/Image"),
        (topic["compressed"], "sensor_msgs/msg/CompressedImage"),
        ("odom", "nav_msgs/msg/Odometry"),
        ("/clock", "rosgraph_msgs/msg/Clock"),
        ("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray"),
        ("/tf", "tf2_msgs/msg/TFMessage"),
        ("status", "inspatio_ros_interfaces/msg/SimStatus"),
    ]
