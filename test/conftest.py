import os

os.environ.setdefault("INSPATIO_NO_PROGRESS", "1")

from inspatio_ros.runtime import keep_freed_memory

keep_freed_memory()

# ROS 2 participants of the tests (node subprocesses, rclpy probes, DDS readers) stay on the
# loopback interface and on a domain of their own, so parallel test runs do not cross-talk.
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
os.environ.setdefault("ROS_DOMAIN_ID", str(1 + os.getpid() % 200))
