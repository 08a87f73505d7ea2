"""inspatio_ros: a recorded video as an explorable 4D world, and a ROS 2 sensor simulator on it.

The public API, in the order of the data flow (video -> World -> render -> SimSession)::

    World            the world file: World.load / save (.safetensors), source frames, held-out frames
    build_world      fuse a video, image folder, dataset folder or rosbag2 into a World
    BuildSettings    how build_world builds (frames used, held out, camera height, fusion, MVS)
    Renderer         a World on a device; render(cameras, t) -> RenderOutput (rgb, depth, coverage)
    Cameras          a batch of pinhole cameras (K, camera-to-world) for Renderer.render
    SimSession       the ROS-free simulator: a world, a camera rig and a clock; step() / tick()
    load_rig         the camera rig of ``cameras.*`` parameters (or a ``rig.preset``), for SimSession
    load_lidars      the LiDARs of ``lidars.*`` parameters (or a ``rig.preset``), for SimSession
    load_trajectory  a trajectory file or preset (InSpatio keyframes, TUM, KITTI, 4x4) as poses
    evaluate         score a world's held-out frames against the recording they came from

The core (everything outside ``inspatio_ros.ros`` and ``inspatio_ros.cli``) is plain Python +
torch and imports without ROS 2. The names above are imported on first use: ``import
inspatio_ros`` stays ~2 ms, where importing the renderer, SimSession and build_world loads torch,
numba and OpenCV (4-5 s on the 2-core VM).
"""
__version__ = "0.1.0"

import os as _os

# OpenMP worker threads sleep when idle instead of spinning. PyTorch's OpenMP pool spinning after
# its operations burns the cores the CPU renderer's numba threads need: with numba's OpenMP pool
# beside it the node fell from 18 to 2 frames/s on 2 cores (measured; render/cpu.py now uses
# numba's own thread pool). Must be set before torch loads OpenMP, which the lazy imports below
# guarantee (torch loads on first use of a public name, after this line); an explicit
# OMP_WAIT_POLICY is respected.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Public name -> the module that defines it (imported on first access, PEP 562).
_PUBLIC = {
    "World": "inspatio_ros.world",
    "build_world": "inspatio_ros.ingest.build",
    "BuildSettings": "inspatio_ros.ingest.build",
    "Renderer": "inspatio_ros.render",
    "Cameras": "inspatio_ros.render",
    "SimSession": "inspatio_ros.sim.session",
    "load_rig": "inspatio_ros.sim.rig",
    "load_lidars": "inspatio_ros.sim.lidar",
    "load_trajectory": "inspatio_ros.trajectory",
    "evaluate": "inspatio_ros.eval",
}

__all__ = ["BuildSettings", "Cameras", "Renderer", "SimSession", "World", "__version__", "build_world", "evaluate",
           "load_lidars", "load_rig", "load_trajectory"]


def __getattr__(name: str):
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'inspatio_ros' has no attribute '{name}'")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value          # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
