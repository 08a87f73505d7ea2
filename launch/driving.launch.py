"""A car: front + two side cameras (config/driving_rig.yaml).

ros2 launch inspatio_ros driving.launch.py world:=/path/world.safetensors mode:=control
"""
from inspatio_ros.ros.launch_description import simulator_launch


def generate_launch_description():
    return simulator_launch("driving_rig.yaml")
