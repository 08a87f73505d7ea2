"""The ROS-free core of the simulator: :class:`~inspatio_ros.sim.session.SimSession` (session.py)
over the sim clock (clock.py), the ego vehicle models (vehicle.py), the camera rig (rig.py) and
the renderer of a rig (simulator.py); its settings, and the ROS node's, are frozen dataclasses
(settings.py), mapped to and from dotted parameter names and YAML by parameters.py.

Nothing here imports rclpy or ``inspatio_ros.ros``; the ROS adapter turns messages into calls on a
SimSession and its SensorFrames into messages. (Submodules are imported by name, so that the
clock and vehicle models load without torch.)
"""
