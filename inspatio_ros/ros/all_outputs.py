"""Every topic the node publishes for one camera with every output on, as (topic, ROS type): what
the subscribers that watch all outputs at once subscribe to (test/interop_subscriber.py,
bench/soak_peers.py). Kept free of heavy imports: those subscribers are small processes.
"""
from __future__ import annotations

# Types a pip-only rclpy (the ROS 2 Jazzy wheels) does not have: only Cyclone subscribers take them.
RCLPY_LACKS = frozenset({"tf2_msgs/msg/TFMessage", "inspatio_ros_interfaces/msg/SimStatus"})
# /clock is best effort, as ROS publishes and subscribes it (rclpy's TimeSource); the rest reliable.
BEST_EFFORT = frozenset({"/clock"})


def all_outputs(camera: str = "front") -> list[tuple[str, str]]:
    """(topic, type) of every output of the node with one camera named ``camera``."""
    return [
        (f"{camera}/image_raw", "sensor_msgs/msg/Image"),
        (f"{camera}/camera_info", "sensor_msgs/msg/CameraInfo"),
        (f"{camera}/depth/image", "sensor_msgs/msg/Image"),
        (f"{camera}/depth/camera_info", "sensor_msgs/msg/CameraInfo"),
        (f"{camera}/points", "sensor_msgs/msg/PointCloud2"),
        (f"{camera}/coverage", "sensor_msgs/msg/Image"),
        (f"{camera}/image_raw/compressed", "sensor_msgs/msg/CompressedImage"),
        ("odom", "nav_msgs/msg/Odometry"),
        ("/clock", "rosgraph_msgs/msg/Clock"),
        ("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray"),
        ("/tf", "tf2_msgs/msg/TFMessage"),
        ("status", "inspatio_ros_interfaces/msg/SimStatus"),
    ]
