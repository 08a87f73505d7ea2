"""Recording what the simulator publishes into rosbag2 MCAP files, with or without ROS."""
from .recorder import Recorder, check_record_dir, qos_profile, recover_recording

__all__ = ["Recorder", "check_record_dir", "qos_profile", "recover_recording"]
