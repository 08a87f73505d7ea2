"""Agents on a world: the reference path to drive, baseline controllers, and the Gymnasium environment.

``path``: :class:`~inspatio_ros.agents.path.ReferencePath` (progress, cross-track and heading
error, corridor) from a world's recorded path. ``controllers``: a pure-pursuit + PID baseline.
``gym_env``: the ``inspatio_ros/Drive-v0`` environment (import :mod:`inspatio_ros.gym` to register
it). Nothing here imports ROS.
"""
