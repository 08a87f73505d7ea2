"""The poses of a build's frames: given (a pose file, the input's own) or estimated by visual
odometry on the frames (odometry.py), with the frames' times."""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import InputError
from ..posefile import read_poses
from .frames import Frames

if TYPE_CHECKING:
    from .depth import Depth


@dataclass(frozen=True)
class Poses:
    """Camera-to-world (N,4,4, OpenCV) and times (N,) of every frame of the build, where the poses
    came from (``label``, for the world's provenance), the world.info entries that describe them
    (pose_source, scale, odometry), the odometry's landmarks (M,3) when estimated from video alone
    (they bound MVS's depth range) and warnings for the build report."""

    c2w: np.ndarray
    times: np.ndarray
    label: str
    info: dict
    landmarks: np.ndarray | None = None
    notes: tuple[str, ...] = ()
    estimated: bool = False

    def scaled(self, factor: float, how: str) -> "Poses":
        """The same poses with positions times ``factor``; ``how`` is added to info["scale"]."""
        c2w = self.c2w.copy()
        c2w[:, :3, 3] *= factor
        info = {**self.info, "scale": self.info["scale"] + how, "scale_refinement": round(factor, 6)}
        return replace(self, c2w=c2w, info=info)


def resolve_poses(frames: Frames, poses: str | None, depth: "Depth | None", camera_height: float) -> Poses:
    """The frames' poses: ``poses`` (a TUM, KITTI or 4x4 file; "estimate": visual odometry even
    where the input has poses; None: the input's own), else visual odometry: RGB-D with the given
    ``depth``, monocular scaled by ``camera_height`` without. Times: the input's, the pose file's,
    else 10 frames/s."""
    fs = frames.fs
    whole = len(fs.all_names) if fs.all_names is not None else None
    estimate = poses == "estimate"
    pose_path = None if estimate else (Path(poses) if poses else fs.poses)
    if pose_path is None and fs.pose_array is not None and not estimate:
        c2w, pose_times, pose_label = fs.pose_array, None, fs.pose_source
    elif pose_path is None:
        c2w, pose_times, pose_label = None, None, "estimated (visual odometry)"
    else:
        c2w, pose_times = read_poses(pose_path)
        pose_label = str(pose_path)
        if (whole is not None and len(c2w) != whole) or len(c2w) <= int(fs.index.max()):
            raise InputError(f"pose file {pose_path} has {len(c2w)} poses for {whole or len(fs)} frames",
                             "give one pose per frame of the whole input, in frame order")
        c2w = c2w[fs.index]
        pose_times = None if pose_times is None else pose_times[fs.index]
    notes: tuple[str, ...] = ()
    times = fs.times if fs.times is not None else pose_times
    if times is None:
        times = fs.index.astype(np.float64) / 10.0
        notes = ("no timestamps: assumed 10 frames/s",)
    if c2w is not None:
        return Poses(c2w, times, pose_label, {"pose_source": "given", "scale": "metric (given)"}, notes=notes)
    estimated = estimate_poses_of_frames(frames, depth, camera_height)
    return replace(estimated, times=times, label=pose_label, notes=notes + estimated.notes)


def estimate_poses_of_frames(frames: Frames, depth: "Depth | None", camera_height: float) -> Poses:
    """Poses of the frames by visual odometry. With depth maps it is RGB-D odometry: landmarks
    from the depth, so the poses are metric and agree with the depth that is fused. Without,
    monocular odometry, scaled by the camera's height above the road (a driving camera); when
    that finds no road the world stays in odometry units. The landmarks (M,3) bound the depth
    for MVS. (``times`` and ``label`` are left for resolve_poses to fill in.)"""
    from .odometry import estimate_poses, segment_scales_from_camera_height

    fs, intr, shape = frames.fs, frames.intrinsics, frames.shape
    depth_of = None if depth is None else (lambda i: depth.load(i, shape))
    result = estimate_poses(fs.load, len(fs), intr, depth_of=depth_of)
    if result.located.sum() < max(2, 0.5 * len(fs)):
        detail = "; ".join(result.warnings[:3])
        raise InputError(f"visual odometry located {int(result.located.sum())} of {len(fs)} frames of "
                         f"{fs.source} ({detail})", "pass --poses FILE, or give frames with more texture and "
                         "resolution (the odometry tracks corners; 320x180 or more)")
    notes: list[str] = []
    scales = None
    if depth_of is not None:
        how = "metric (RGB-D odometry on the given depth maps)"
    else:
        scales = segment_scales_from_camera_height(result, camera_height, intr)
        if scales is not None and all(np.isfinite(x) and x > 0 for x in scales):
            result = result.scaled_segments(scales, "camera height")
            how = f"metric (camera height {camera_height:g} m above the road"
            how += ")" if len(scales) == 1 else f", each of {len(scales)} segments scaled by its own)"
        else:
            how = "unscaled"
            notes.append("no scale found (no road seen below the camera): the world is in odometry units, "
                         "not metres; give --poses with metric poses for a metric world")
    for w in result.warnings:
        notes.append(f"visual odometry: {w}")
    landmarks = np.array(list(result.landmark_by_id.values())) if result.landmark_by_id else None
    report = result.report()
    if depth_of is None and scales is not None:
        report["segment_scales"] = [round(float(x), 6) for x in scales]
    info = {"pose_source": "estimated (visual odometry)", "scale": how, "odometry": report}
    return Poses(result.c2w, np.zeros(0), "estimated (visual odometry)", info, landmarks, tuple(notes), estimated=True)
