"""``inspatio-ros export WORLD --inspatio DIR``: a world in another project's layout
(interop/inspatio_world.py writes it)."""
from __future__ import annotations


def register(subparsers) -> None:
    p = subparsers.add_parser("export", help="write a world in another project's layout (InSpatio-World v1.5 scene)",
                              description="Write a world's source views (rendered at 832x480), their depth and "
                                          "cameras, and a target camera path as an InSpatio-World v1.5 image scene "
                                          "folder, for its generator (pipeline/render_scene.py reads it).")
    p.add_argument("world", help="world file (.safetensors)")
    p.add_argument("--inspatio", required=True, metavar="DIR", help="new folder for the InSpatio-World scene")
    p.add_argument("--views", type=int, default=1, choices=(1, 4),
                   help="source views: 1 (the first source frame) or 4 (spread over the recording)")
    p.add_argument("--traj", default=None, help="target path for input/target_tcw.txt: a trajectory file or "
                                                 "preset (keyframe orbits pivot in front of the first view); "
                                                 "default: the recorded camera path")
    p.add_argument("--fps", type=float, default=15.0, help="frames per second of the scene (scene.json)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..interop.inspatio_world import export_inspatio_scene
    from ..trajectory import resolve_trajectory
    from ..world import World

    if args.traj is not None:
        resolve_trajectory(args.traj)            # a missing file fails before the world loads
    scene = export_inspatio_scene(World.load(args.world), args.inspatio, views=args.views, trajectory=args.traj,
                                  fps=args.fps, device=getattr(args, "device", "auto"))
    print(f"wrote {args.inspatio}: InSpatio-World image scene, {scene['views']} view(s) from source frames "
          f"{scene['source_frames']}, {scene['valid_frames']} target poses padded to {scene['frames']}, depth "
          f"0..{scene['depth_max']:.2f} in uint16")
    return 0
