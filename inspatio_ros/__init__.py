"""inspatio_ros: a recorded video as an explorable 4D world, and a ROS 2 sensor simulator on it.

The core (world file, renderer, synthetic scenes, trajectories, build, eval) is plain Python +
torch and imports without ROS 2.
"""
__version__ = "0.1.0"

import os as _os

# OpenMP worker threads sleep when idle instead of spinning. The CPU renderer alternates between
# PyTorch's and numba's OpenMP pools (two runtimes): with spinning workers each pool burns the
# cores the other needs, and the node fell from 18 to 2 frames/s on 2 cores (measured). Must be
# set before torch or numba load OpenMP; an explicit OMP_WAIT_POLICY is respected.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
