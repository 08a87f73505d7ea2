"""The launch description shared by launch/driving.launch.py and launch/robot.launch.py.

Needs a ROS 2 install with ``launch`` and ``launch_ros`` (not on PyPI); nothing else in the
package imports this module.
"""
from __future__ import annotations


def simulator_launch(rig_file: str, default_mode: str = "replay"):
    """The simulator node with ``config/<rig_file>`` plus launch arguments world, mode, namespace."""
    from launch import LaunchDescription
    from launch.actions import DeclareLaunchArgument
    from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
    from launch_ros.actions import Node
    from launch_ros.parameter_descriptions import ParameterValue
    from launch_ros.substitutions import FindPackageShare

    arguments = [
        DeclareLaunchArgument("world", default_value="",
                              description="world file (.safetensors); empty: the embedded default world"),
        DeclareLaunchArgument("mode", default_value=default_mode, description="replay | pose | control | trajectory"),
        DeclareLaunchArgument("namespace", default_value="", description="namespace of the node and its topics"),
        DeclareLaunchArgument("use_sim_time", default_value="false",
                              description="true when another node publishes /clock"),
    ]
    rig = PathJoinSubstitution([FindPackageShare("inspatio_ros"), "config", rig_file])
    node = Node(package="inspatio_ros", executable="sim_node", name="inspatio_ros",
                namespace=LaunchConfiguration("namespace"), output="screen",
                # Typed, so an empty world stays the string "" instead of YAML's null.
                parameters=[rig, {"world": ParameterValue(LaunchConfiguration("world"), value_type=str),
                                  "mode": ParameterValue(LaunchConfiguration("mode"), value_type=str),
                                  "use_sim_time": ParameterValue(LaunchConfiguration("use_sim_time"),
                                                                 value_type=bool)}])
    return LaunchDescription([*arguments, node])
