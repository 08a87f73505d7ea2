"""Ingest: a recorded video, image folder, dataset folder or rosbag2 bag into a World.

build.build_world is the pipeline, one module per stage, each returning a frozen result:

  frames.py      open_frames -> Frames: decoded input (sources.py, bag.py), intrinsics
                 (intrinsics.py), holdout_mask
  poses.py       given_poses / resolve_poses -> Poses: given, or visual odometry (odometry.py)
  depth.py       given_depth / resolve_depth -> Depth: given, or multi-view stereo (mvs/);
                 refine_scale_by_road_plane (road.py)
  fusion.py      fuse -> Fused: surfels, the view check (consistency.py), dynamic and frame-local layers
  build.py       build_world, the build report, the ``build`` command

Nothing is imported here: ``inspatio_ros.ingest.sources`` stays light for eval and the generator.
"""
