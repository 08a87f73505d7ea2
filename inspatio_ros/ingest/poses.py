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

# Below this share of frames placed the odometry has failed on the video as a whole (a world of
# the placed ones would be a fragment): the build stops and names the likely cause.
MIN_PLACED_SHARE = 0.5

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
    # (N,) bool: frames the odometry could not place. Their poses are only held (the last placed
    # one), so they are never fused, never MVS neighbours and never held-out views; None: all placed.
    unplaced: np.ndarray | None = None

    def unplaced_mask(self) -> np.ndarray:
        """(N,) bool: frames without a trusted pose (all False for given poses)."""
        return np.zeros(len(self.c2w), bool) if self.unplaced is None else self.unplaced.copy()

    def scaled(self, factor: float, how: str) -> "Poses":
        """The same poses with positions times ``factor``; ``how`` is added to info["scale"]."""
        c2w = self.c2w.copy()
        c2w[:, :3, 3] *= factor
        info = {**self.info, "scale": self.info["scale"] + how, "scale_refinement": round(factor, 6)}
        return replace(self, c2w=c2w, info=info)


def given_poses(frames: Frames, poses: str | None) -> Poses | None:
    """The poses the build is given: ``poses`` (a TUM, KITTI or 4x4 file), else the input's own (a
    dataset folder's pose file, a bag's odometry); None when there are none or ``poses`` is
    "estimate" (visual odometry even where the input has poses). Times: the input's, the pose
    file's, else 10 frames/s."""
    fs = frames.fs
    if poses == "estimate":
        return None
    whole = len(fs.all_names) if fs.all_names is not None else None
    pose_path = Path(poses) if poses else fs.poses
    count_note: tuple[str, ...] = ()
    if pose_path is None and fs.pose_array is not None:
        c2w, pose_times, pose_label = fs.pose_array, None, fs.pose_source
    elif pose_path is None:
        return None
    else:
        c2w, pose_times = read_poses(pose_path)
        pose_label = str(pose_path)
        if (whole is not None and len(c2w) != whole) or len(c2w) <= int(fs.index.max()):
            raise InputError(f"pose file {pose_path} has {len(c2w)} poses for {whole or len(fs)} frames",
                             "give one pose per frame of the whole input, in frame order")
        if fs.total_frames is not None and len(c2w) != fs.total_frames:
            # A video (frame names unknown before decoding): its first frames took the first poses,
            # which is right for a video cut short and wrong for a pose file of another recording.
            count_note = (f"pose file {pose_path} has {len(c2w)} poses, {frames.input_path} has {fs.total_frames} "
                          f"frames: the first {fs.total_frames} poses were used; check that the video is "
                          "complete and the poses are its own (one pose per frame)",)
        c2w = c2w[fs.index]
        pose_times = None if pose_times is None else pose_times[fs.index]
    times, notes = _frame_times(frames, pose_times)
    return Poses(c2w, times, pose_label, {"pose_source": "given", "scale": "metric (given)"},
                 notes=count_note + notes)


def _frame_times(frames: Frames, pose_times: np.ndarray | None) -> tuple[np.ndarray, tuple[str, ...]]:
    """The frames' times (the input's, else the pose file's, else 10 frames/s) and a note when assumed."""
    fs = frames.fs
    times = fs.times if fs.times is not None else pose_times
    if times is None:
        return fs.index.astype(np.float64) / 10.0, ("no timestamps: assumed 10 frames/s",)
    return times, ()


def resolve_poses(frames: Frames, given: Poses | None, depth: "Depth | None", camera_height: float | None,
                  scale_distance: tuple[int, int, float] | None = None) -> Poses:
    """The ``given`` poses (given_poses), else visual odometry on the frames (estimate_poses_of_frames):
    RGB-D with the given ``depth``, monocular scaled by ``scale_distance`` (frame A, frame B,
    metres) or ``camera_height`` (None: the default, checked) without (scale.py)."""
    if given is not None:
        if scale_distance is not None:
            return replace(given, notes=given.notes + ("--scale-distance is not used: the poses are given (metric)",))
        return given
    return estimate_poses_of_frames(frames, depth, camera_height, scale_distance)


def estimate_poses_of_frames(frames: Frames, depth: "Depth | None", camera_height: float | None,
                             scale_distance: tuple[int, int, float] | None = None) -> Poses:
    """Poses of the frames by visual odometry. With depth maps it is RGB-D odometry: landmarks
    from the depth, so the poses are metric and agree with the depth that is fused. Without,
    monocular odometry, scaled by two frames a known distance apart (``scale_distance``) or by
    the camera's height above the road (``camera_height``; None: 1.5 m, a driving camera), when
    a ground plane below the camera fits (scale.py); otherwise the world stays in odometry units
    and info["unscaled"] says so. The landmarks (M,3) bound the depth for MVS. Times: the
    input's, else 10 frames/s."""
    from .odometry import estimate_poses, frame_ranges, tracking_failure_cause
    from .scale import decide_scale

    fs, intr, shape = frames.fs, frames.intrinsics, frames.shape
    times, notes = _frame_times(frames, None)
    depth_of = None if depth is None else (lambda i: depth.load(i, shape))
    result = estimate_poses(fs.load, len(fs), intr, depth_of=depth_of)
    if result.located.sum() < max(2, MIN_PLACED_SHARE * len(fs)):
        cause, fix = tracking_failure_cause(result, intr)
        raise InputError(f"visual odometry located {int(result.located.sum())} of {len(fs)} frames of "
                         f"{fs.source}; likely cause: {cause}", f"{fix}, or pass --poses FILE")
    notes = list(notes)
    scales = None
    scale_info: dict = {"unscaled": False}
    if depth_of is not None:
        how = "metric (RGB-D odometry on the given depth maps)"
        if scale_distance is not None:
            notes.append("--scale-distance is not used: the depth maps give the scale")
    else:
        decision = decide_scale(result, intr, times, fs.index, camera_height, scale_distance, load=fs.load)
        scales, how, scale_info = decision.scales, decision.how, decision.info
        notes.extend(decision.notes)
        if scales is not None:
            result = result.scaled_segments(scales, "scale distance" if scale_distance is not None else "camera height")
    for w in result.warnings:
        notes.append(f"visual odometry: {w}")
    unplaced = ~result.located
    if unplaced.any():
        notes.append(f"visual odometry could not place {int(unplaced.sum())} of {len(fs)} frames "
                     f"({frame_ranges(fs.index[unplaced])}): left out of the world")
    landmarks = np.array(list(result.landmark_by_id.values())) if result.landmark_by_id else None
    report = result.report()
    if depth_of is None and scales is not None:
        report["segment_scales"] = [round(float(x), 6) for x in scales]
    report["unplaced_frames"] = [int(i) for i in fs.index[unplaced]]
    info = {"pose_source": "estimated (visual odometry)", "scale": how, **scale_info, "odometry": report}
    return Poses(result.c2w, times, "estimated (visual odometry)", info, landmarks, tuple(notes),
                 unplaced if unplaced.any() else None)
