"""inspatio_ros: a recorded video as an explorable 4D world, and a ROS 2 sensor simulator on it.

The core (world file, renderer, synthetic scenes, trajectories, build, eval) is plain Python +
torch and imports without ROS 2.
"""
__version__ = "0.1.0"
