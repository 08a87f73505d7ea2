"""Training data for the refiner: leave-out renders of the world's own source frames.

A world fuses every source frame's points (``static.frame`` / ``dynamic.frame`` say which frame
each point came from). Rendering source frame j from the world *without* the points of frames
j-k .. j+k (k = 0, 1, 2 by default, neighbours in the world's frame order) gives the render a
novel view would get: the points of the frame itself are missing, so the render shows the holes,
stretched splats and mixed colours that neighbouring frames leave, and the larger k the farther
the nearest contributing viewpoint (k = 0 is what a held-out frame between two fused ones sees;
k = 2 is closer to a view a few metres off the path). The target is the real frame, known only at
its recorded pose. Held-out frames are not in ``frames.*`` and are never rendered or loaded here.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from ..errors import InputError
from ..progress import progress
from ..render import Renderer, RenderSettings, world_point_cloud


@dataclass
class TrainingData:
    """Renders and targets on one device. Render m shows frame ``frame_of[m]`` with ``k_of[m]``."""

    rgb: torch.Tensor        # (M,3,H,W) uint8 leave-out renders
    coverage: torch.Tensor   # (M,1,H,W) uint8 (1: seen by the remaining points)
    depth: torch.Tensor      # (M,1,H,W) float16 metres, NaN/inf unknown
    target: torch.Tensor     # (F,3,H,W) uint8 real frames
    frame_of: torch.Tensor   # (M,) int64 index into target
    k_of: list[int]
    frame_index: list[int]   # world frame numbers of the targets (input numbering)
    depth_scale: float       # median depth of the covered pixels (metres)

    def __len__(self) -> int:
        return int(self.rgb.shape[0])


def frame_loader(world, frames_dir: str | Path | None = None) -> Callable[[int], np.ndarray]:
    """frame number (``world.frame_index`` numbering) -> RGB uint8 at the input's own resolution
    (the resolution ``eval`` scores a world built with --max-size at; the aspect must be the
    world's).

    Without ``frames_dir`` the build input recorded in ``world.provenance`` is opened with the
    build's window and stride."""
    from ..ingest.sources import open_input

    prov = world.provenance or {}
    if frames_dir is None:
        source = prov.get("source")
        if not source or not Path(source).exists():
            raise InputError(f"the world's build input ({source or 'not recorded'}) is not there to train on",
                             "pass --frames DIR with the frames the world was built from")
        s = prov.get("settings", {})
        fs = open_input(source, start=s.get("start"), end=s.get("end"), stride=int(s.get("stride") or 1))
        where = source
    else:
        fs = open_input(frames_dir)
        where = str(frames_dir)
    position = {int(n): i for i, n in enumerate(fs.index)}
    w, h = world.intrinsics.width, world.intrinsics.height

    def load(number: int) -> np.ndarray:
        if number not in position:
            raise InputError(f"frame {number} of the world is not in {where} ({len(fs)} frames)",
                             "pass --frames DIR with the frames the world was built from")
        img = np.asarray(fs.load(position[number]))
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        if img.shape[:2] != (h, w) and abs(img.shape[1] / w - img.shape[0] / h) > 0.01 * img.shape[1] / w:
            raise InputError(f"frame {number} of {where} is {img.shape[1]}x{img.shape[0]}, the world's "
                             f"images are {w}x{h}", "pass --frames DIR with the frames the world was built from")
        return img[..., :3]

    return load


def prepare(world, load_frame: Callable[[int], np.ndarray], device: str | torch.device,
            leave_out: Sequence[int] = (0, 1, 2), settings: RenderSettings | None = None) -> TrainingData:
    """Render every source frame once per k in ``leave_out`` without frames j-k..j+k."""
    device = torch.device(device)
    held = set(int(i) for i in world.heldout_index)
    order = np.argsort(world.frame_index, kind="stable")
    numbers = [int(world.frame_index[i]) for i in order]
    if held & set(numbers):
        raise InputError("the world lists frames both as fused and held out", "rebuild the world")
    if len(numbers) < 2:
        raise InputError("the world has fewer than 2 source frames to train on", "build it from more frames")
    cloud = world_point_cloud(world, device)
    point_frame = torch.as_tensor(np.concatenate([world.static_frame, world.dynamic_frame]).astype(np.int64),
                                  device=device)
    rgbs, covs, depths, frame_of, k_of, targets = [], [], [], [], [], []
    for pos in progress(range(len(numbers)), desc="leave-out renders", unit="frame"):
        src = order[pos]
        target = torch.as_tensor(load_frame(numbers[pos])).permute(2, 0, 1).to(device)
        if targets and target.shape != targets[0].shape:
            raise InputError(f"frame {numbers[pos]} is {target.shape[2]}x{target.shape[1]}, the first "
                             f"{targets[0].shape[2]}x{targets[0].shape[1]}", "give frames of one size")
        targets.append(target)
        intr = world.intrinsics.scaled(int(target.shape[2]), int(target.shape[1]))
        for k in leave_out:
            drop = torch.as_tensor(numbers[max(0, pos - k): pos + k + 1], device=device)
            keep = ~torch.isin(point_frame, drop)
            renderer = Renderer(cloud.take(keep), device, settings, graphs=False)
            out = renderer.render(renderer.cameras(world.frame_c2w[src][None], intr), float(world.frame_time[src]))
            rgbs.append(out.rgb[0].permute(2, 0, 1))
            covs.append(out.coverage[0][None].to(torch.uint8))
            depths.append(out.depth[0][None].to(torch.float16))
            frame_of.append(pos)
            k_of.append(int(k))
    depth = torch.stack(depths)
    cov = torch.stack(covs)
    seen = depth[(cov > 0) & torch.isfinite(depth) & (depth > 0)].float()
    scale = float(seen.median()) if seen.numel() else 10.0
    return TrainingData(torch.stack(rgbs), cov, depth, torch.stack(targets),
                        torch.as_tensor(frame_of, device=device), k_of, numbers, max(scale, 1e-3))
