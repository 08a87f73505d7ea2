"""inspatio_ros: a recorded video as an explorable 4D world, and a ROS 2 sensor simulator on it.

The core (world file, renderer, synthetic scenes, trajectories, build, eval) is plain Python +
torch and imports without ROS 2.
"""
__version__ = "0.1.0"

import os as _os

# OpenMP worker threads sleep when idle instead of spinning. PyTorch's OpenMP pool spinning after
# its operations burns the cores the CPU renderer's numba threads need: with numba's OpenMP pool
# beside it the node fell from 18 to 2 frames/s on 2 cores (measured; render/cpu.py now uses
# numba's own thread pool). Must be set before torch loads OpenMP; an explicit OMP_WAIT_POLICY is
# respected.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
