"""The ROS-free core of the simulator node: sim clock, ego vehicle models and the camera rig.

Nothing here imports rclpy; the ROS adapter (``inspatio_ros.ros``) turns messages into calls on
these objects and their results into messages.
"""
