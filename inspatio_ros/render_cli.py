"""``inspatio-ros render WORLD --traj FILE|PRESET -o out.mp4``: offline rendering along a path.

InSpatio-World keyframe trajectories orbit a point ``--look-at-depth`` metres in front of the
reference source frame (``--frame``, default the first); pose files (TUM, KITTI, 4x4) are used as
they are. Time: the world is rendered at the reference frame's time plus the trajectory's own
time (``--time`` fixes one moment instead), clamped to the recording.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .camera import Intrinsics
from .cli import parse_size
from .config import add_config_argument, add_generator_arguments, render_settings_from_args
from .errors import InputError
from .progress import progress
from .render import Renderer, RenderSettings
from .trajectory import list_presets, load_trajectory, resolve_trajectory
from .world import World


def scene_depth(renderer: Renderer, c2w: np.ndarray, t: float) -> float:
    """A robust 'distance to the scene' in front of a camera: the median seen depth, 1..50 m."""
    out = renderer.render(renderer.cameras(c2w[None]), t)
    depth = out.depth[0][out.coverage[0]].cpu().numpy()
    depth = depth[np.isfinite(depth)]
    return float(np.clip(np.median(depth), 1.0, 50.0)) if depth.size else 10.0


def render_trajectory(world: World, traj_spec: str, output: str | Path, *, frames: int = 49,
                      reference_frame: int = 0, look_at_depth: float | None = None, fps: float = 10.0,
                      fixed_time: float | None = None, size: tuple[int, int] | None = None,
                      device: str = "auto", batch: int = 4, settings: RenderSettings | None = None,
                      refiner=None) -> dict:
    from .video import write_video

    if not 0 <= reference_frame < len(world.frame_c2w):
        raise InputError(f"--frame {reference_frame} is not a source frame of the world",
                         f"give 0..{len(world.frame_c2w) - 1}")
    renderer = Renderer(world, device, settings)
    ref = world.frame_c2w[reference_frame]
    t_ref = float(world.frame_time[reference_frame])
    depth = look_at_depth if look_at_depth is not None else scene_depth(renderer, ref, t_ref)
    traj = load_trajectory(traj_spec, ref, frames=frames, look_at_depth=depth, fps=fps)
    intr: Intrinsics = world.intrinsics if size is None else world.intrinsics.scaled(*size)
    t0, t1 = world.time_range
    relative = traj.times - traj.times[0]
    times = np.full(len(traj.poses), fixed_time) if fixed_time is not None else np.clip(t_ref + relative, t0, t1)
    coverage = []

    def frames_iter():
        for start in progress(range(0, len(traj.poses), batch), desc=f"rendering {traj.name}", unit="batch"):
            stop = min(start + batch, len(traj.poses))
            # One batch shares one time: the batch's first (at 10+ fps, a few tens of ms apart).
            out = renderer.render(renderer.cameras(traj.poses[start:stop], intr), float(times[start]))
            coverage.append(out.coverage.float().mean().item())
            if refiner is not None:
                out = refiner.refine_output(out)
            yield from out.rgb.cpu().numpy()

    write_video(output, frames_iter(), fps, pad_odd=True)
    return {"frames": len(traj.poses), "look_at_depth": depth, "coverage": float(np.mean(coverage))}


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
    settings = render_settings_from_args(args)
    size = parse_size(args.size) if args.size else None
    resolve_trajectory(args.traj)  # an unknown preset or missing file fails before the world loads
    world = World.load(args.world)
    from .generator.refiner import load_generator

    refiner = load_generator(args.generator, args.generator_weights, args.world, args.device)
    stats = render_trajectory(world, args.traj, args.output, frames=args.frames, reference_frame=args.frame,
                              look_at_depth=args.look_at_depth, fps=args.fps, fixed_time=args.time,
                              size=size, device=args.device, settings=settings, refiner=refiner)
    print(f"wrote {args.output}: {stats['frames']} frames, orbit depth {stats['look_at_depth']:.1f} m, "
          f"coverage {stats['coverage']:.3f}")
    return 0
