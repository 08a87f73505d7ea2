"""Dense depth from the video alone: multi-view stereo by plane sweep (PyTorch, CPU or CUDA).

  settings.py   MVSSettings
  sweep.py      PlaneSweep: plane-sweep matching (ZNCC, coarse to fine), photometric cost,
                multi-view consistency; depth_bounds from the odometry's landmarks
  filters.py    hole fills, sky, objects moving along with the camera, depth steps to re-check
  propagate.py  depth carried into unmatched pixels from candidates the other frames confirm
  dense.py      dense_depth: all of it, frame by frame; DenseDepth, its result

The road plane it fits and uses lives in ingest/road.py. Coverage and accuracy: docs/QUALITY.md.
"""
from .dense import DenseDepth, dense_depth, depth_coverage
from .settings import MVSSettings
from .sweep import PlaneSweep, depth_bounds, matching_size

__all__ = ["DenseDepth", "MVSSettings", "PlaneSweep", "dense_depth", "depth_bounds", "depth_coverage", "matching_size"]
