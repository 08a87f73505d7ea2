"""A mobile robot: one RGB-D camera (config/robot_rgbd.yaml).

ros2 launch inspatio_ros robot.launch.py world:=/path/world.safetensors mode:=control
"""
from inspatio_ros.ros.launch_description import simulator_launch


def generate_launch_description():
    return simulator_launch("robot_rgbd.yaml")
