"""``inspatio-ros render WORLD --traj FILE|PRESET -o out.mp4``: offline rendering along a path.

InSpatio-World keyframe trajectories orbit a point ``--look-at-depth`` metres in front of the
reference source frame (``--frame``, default the first); pose files (TUM, KITTI, 4x4) are used as
they are. Time: the world is rendered at the reference frame's time plus the trajectory's own
time (``--time`` fixes one moment instead), clamped to the recording.
"""
from __future__ import annotations

from ..trajectory import list_presets, resolve_trajectory
from .common import add_config_argument, add_generator_arguments, parse_size, render_settings_from_args


def register(subparsers) -> None:
    p = subparsers.add_parser("render", help="render a world along a trajectory into a video",
                              description=__doc__ + "\nPresets: " + ", ".join(list_presets()))
    p.add_argument("world", help="world file (.safetensors)")
    p.add_argument("--traj", required=True, help="trajectory file (InSpatio txt, TUM, KITTI, 4x4) or preset name")
    p.add_argument("-o", "--output", required=True, help="output video (.mp4)")
    p.add_argument("--frames", type=int, default=49, help="frames for keyframe trajectories")
    p.add_argument("--fps", type=float, default=10.0)
    p.add_argument("--frame", type=int, default=0, help="reference source frame for keyframe trajectories")
    p.add_argument("--look-at-depth", type=float, help="orbit distance in metres (default: median scene depth)")
    p.add_argument("--time", type=float, help="render every frame at this recording time (s)")
    p.add_argument("--size", help="output WxH (default: the world's image size)")
    add_config_argument(p)
    add_generator_arguments(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..generator.refiner import load_generator
    from ..render import render_trajectory
    from ..world import World

    settings = render_settings_from_args(args)
    size = parse_size(args.size) if args.size else None
    resolve_trajectory(args.traj)  # an unknown preset or missing file fails before the world loads
    world = World.load(args.world)
    refiner = load_generator(args.generator, args.generator_weights, args.world, args.device)
    stats = render_trajectory(world, args.traj, args.output, frames=args.frames, reference_frame=args.frame,
                              look_at_depth=args.look_at_depth, fps=args.fps, fixed_time=args.time,
                              size=size, device=args.device, settings=settings, refiner=refiner)
    print(f"wrote {args.output}: {stats['frames']} frames, orbit depth {stats['look_at_depth']:.1f} m, "
          f"coverage {stats['coverage']:.3f}")
    return 0
