"""The first stage of a build: the input's frames, their size and intrinsics, and which frames are
held out."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..camera import Intrinsics
from ..errors import InputError
from .intrinsics import PRIOR_FOCAL_FACTOR, intrinsics_given, resolve_camera
from .sources import FrameSet, open_input
from .undistort import Rectification, describe, parse_distortion


@dataclass(frozen=True)
class Frames:
    """The frames a build uses (``fs``: already windowed, strided and downscaled), the first one
    decoded, their size, their intrinsics at that size and warnings for the build report (the
    input's own first). ``input_path``: the input as given."""

    input_path: str | Path
    fs: FrameSet
    first: np.ndarray
    width: int
    height: int
    native_size: tuple[int, int]        # (width, height) before --max-size
    intrinsics: Intrinsics
    intrinsics_source: str
    notes: tuple[str, ...]
    calibration: dict | None = None     # self-calibration's record (world.info["calibration"]), if it ran
    # A camera with lens distortion: how fs's frames were rectified (undistort.py); ``intrinsics``
    # is then the rectified pinhole camera's.
    rectification: Rectification | None = None

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width


def open_frames(input_path: str | Path, *, bag_topics=None, start: float | None = None, end: float | None = None,
                stride: int = 1, max_size: int | None = None, intrinsics: str | None = None,
                fov: float | None = None, self_calibrate: bool = True, distortion: str | None = None) -> Frames:
    """Open INPUT (video, image folder, dataset folder or bag) and resolve the intrinsics; with
    none given, ``self_calibrate`` estimates the focal length from the frames (calibration.py).
    A lens distortion (the camera_info.yaml's, or ``distortion``: ``MODEL:D1,D2,...``) has the
    frames rectified to a pinhole view (undistort.py)."""
    fs = open_input(input_path, bag_topics, start=start, end=end, stride=stride, max_size=max_size)
    if len(fs) < 2:
        raise InputError(f"input {input_path} has {len(fs)} frame(s) to use", "a world needs at least two frames "
                         "(check --start, --end and --stride)")
    first = fs.load(0)
    height, width = first.shape[:2]
    native_w, native_h = fs.native_size or (width, height)
    (intr, intr_source, notes), lens = resolve_camera(intrinsics, fs, native_w, native_h, fov)
    if distortion is not None:
        flag_lens = parse_distortion(distortion)
        if lens is not None:
            raise InputError(f"--distortion '{distortion}' is given and the camera_info has {lens.model} distortion",
                             "give the lens once: drop --distortion or the camera_info's distortion")
        if not intrinsics_given(intrinsics, fs, fov):
            raise InputError(f"--distortion '{distortion}' is given without the camera's intrinsics",
                             "distortion coefficients belong to one camera matrix: pass --intrinsics "
                             "camera_info.yaml or fx,fy,cx,cy (or --fov)")
        lens = flag_lens
    if (intr.width, intr.height) != (width, height):
        intr = intr.scaled(width, height)
        notes += (f"frames downscaled from {native_w}x{native_h} to {width}x{height} (--max-size)",)
    rectification = None
    if lens is not None:
        rectification = Rectification.make(intr, lens)
        fs = rectification.frameset(fs)
        first = fs.load(0)
        intr = rectification.target
        intr_source = f"{intr_source}; {describe(rectification)}"
    calibration = None
    if self_calibrate and not intrinsics_given(intrinsics, fs, fov):
        intr, intr_source, notes, calibration = _self_calibrated(fs, width, height, notes)
    return Frames(input_path, fs, first, width, height, (native_w, native_h), intr, intr_source,
                  tuple(fs.notes) + notes, calibration, rectification)


def _self_calibrated(fs: FrameSet, width: int, height: int, notes: tuple[str, ...]):
    """Intrinsics by self-calibration (estimate_focal) in place of the prior: (intrinsics,
    source, notes without the prior's note, calibration record); the prior, with a warning,
    when the frames do not constrain the focal length."""
    from .calibration import estimate_focal

    prior = PRIOR_FOCAL_FACTOR * max(width, height)
    started = time.time()
    estimate = estimate_focal(fs.load, len(fs), width, height, prior)
    record = {**estimate.info(), "seconds": round(time.time() - started, 2)}
    notes = tuple(n for n in notes if not n.startswith("no intrinsics given"))
    if estimate.constrained:
        f, sigma = estimate.focal_px, estimate.uncertainty_px
        source = (f"self-calibrated: focal length {f:.1f} +- {sigma:.1f} px at {width}x{height} (horizontal field of "
                  f"view {2 * np.degrees(np.arctan(width / (2 * f))):.1f} degrees), principal point at the centre")
        if estimate.uncertain:
            notes += (f"no intrinsics given: {source}, uncertain ({estimate.reason}); the world's shape follows "
                      "it, so pass --fov DEGREES or --intrinsics camera_info.yaml",)
        else:
            notes += (f"no intrinsics given: {source}; pass --intrinsics or --fov for a calibrated camera",)
    else:
        source = (f"prior: focal length {PRIOR_FOCAL_FACTOR} x the longer side ({prior:.1f} px), principal point at "
                  "the centre; not calibrated (self-calibration failed)")
        notes += (f"no intrinsics given and self-calibration could not fix the focal length ({estimate.reason}): used "
                  f"the prior, {PRIOR_FOCAL_FACTOR} x the longer side ({prior:.1f} px); the world's scale and shape "
                  "follow it, so pass --fov DEGREES or --intrinsics camera_info.yaml",)
    return estimate.intrinsics(), source, notes, record


def holdout_mask(count: int, every: int) -> np.ndarray:
    """Held-out frames: every K-th frame (K-1, 2K-1, ...), never the first or the last frame,
    so that each held-out view lies between frames of the world."""
    mask = np.zeros(count, bool)
    if every and every > 1:
        idx = np.arange(every - 1, count - 1, every)
        mask[idx[idx > 0]] = True
    elif every == 1:
        raise InputError("--holdout 1 would hold out every frame", "use 0 (none) or K >= 2")
    return mask
