"""Offline rendering along a path: a world rendered along a trajectory into a video.

InSpatio-World keyframe trajectories orbit a point ``look_at_depth`` metres in front of the
reference source frame (default: the median scene depth seen from it); pose files (TUM, KITTI,
4x4) are used as they are. Time: the world is rendered at the reference frame's time plus the
trajectory's own time (``fixed_time`` fixes one moment instead), clamped to the recording.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..camera import Intrinsics
from ..errors import InputError
from ..trajectory import load_trajectory
from .renderer import Renderer
from .types import RenderSettings


def scene_depth(renderer: Renderer, c2w: np.ndarray, t: float) -> float:
    """A robust 'distance to the scene' in front of a camera: the median seen depth, 1..50 m."""
    out = renderer.render(renderer.cameras(c2w[None]), t)
    depth = out.depth[0][out.coverage[0]].cpu().numpy()
    depth = depth[np.isfinite(depth)]
    return float(np.clip(np.median(depth), 1.0, 50.0)) if depth.size else 10.0


def render_trajectory(world, traj_spec: str, output: str | Path, *, frames: int = 49,
                      reference_frame: int = 0, look_at_depth: float | None = None, fps: float = 10.0,
                      fixed_time: float | None = None, size: tuple[int, int] | None = None,
                      device: str = "auto", batch: int = 4, settings: RenderSettings | None = None,
                      refiner=None) -> dict:
    """Render ``world`` along ``traj_spec`` (a trajectory file or preset name) into the video
    ``output``; ``refiner``: a generator.Refiner applied to every render. Returns the frame count,
    the orbit depth used and the mean coverage."""
    from ..progress import progress
    from ..video import write_video

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
