"""The camera intrinsics of a build: given (--intrinsics, --fov, the input's camera_info) or the
documented prior, at the frames' resolution."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..camera import Intrinsics, parse_calibration, read_camera_info
from ..errors import InputError
from .sources import FrameSet

# Focal length assumed for a camera nobody calibrated: 1.2 x the longer image side (COLMAP's
# default prior; about 45 degrees across the longer side). Recorded in the world's metadata.
PRIOR_FOCAL_FACTOR = 1.2


class ResolvedIntrinsics(NamedTuple):
    """Intrinsics, where they came from (world.info["intrinsics_source"]) and warnings for the
    build report."""

    intrinsics: Intrinsics
    source: str
    notes: tuple[str, ...] = ()


def intrinsics_given(args_intrinsics: str | None, fs: FrameSet, fov: float | None = None) -> bool:
    """Whether the build has intrinsics (--intrinsics, --fov, the input's camera_info); without
    them resolve_intrinsics falls back to the prior and the build self-calibrates."""
    return bool(args_intrinsics) or fov is not None or fs.camera_info is not None or fs.intrinsics is not None


def resolve_intrinsics(args_intrinsics: str | None, fs: FrameSet, width: int, height: int,
                       fov: float | None = None) -> ResolvedIntrinsics:
    """:func:`resolve_camera` for callers that need a rectified camera: a lens distortion is an
    InputError (build undistorts; see open_frames)."""
    resolved, lens = resolve_camera(args_intrinsics, fs, width, height, fov)
    if lens is not None:
        raise InputError(f"the camera ({resolved.source}) has {lens.model} distortion {list(lens.D)}",
                         "rectify the frames first, or let build undistort them")
    return resolved


def resolve_camera(args_intrinsics: str | None, fs: FrameSet, width: int, height: int,
                   fov: float | None = None):
    """(ResolvedIntrinsics, lens.Lens or None): intrinsics for frames of ``width`` x ``height``
    and where they came from: --intrinsics (camera_info.yaml, KITTI calib.txt or fx,fy,cx,cy),
    --fov (horizontal degrees), the input's camera_info, or else the documented prior (with a
    note saying so); and the lens distortion of the camera_info they came from (a file's or a
    bag's), None for a pinhole camera."""
    notes: tuple[str, ...] = ()
    lens = None
    if args_intrinsics and fov is not None:
        raise InputError("both --intrinsics and --fov are given", "give one of them")
    if args_intrinsics:
        (intr, lens), source = parse_calibration(args_intrinsics, width, height), f"given ({args_intrinsics})"
    elif fov is not None:
        if not (np.isfinite(fov) and 1.0 < fov < 179.0):
            raise InputError(f"--fov {fov} is not a horizontal field of view", "give degrees between 1 and 179")
        intr, source = Intrinsics.from_fov(width, height, fov), f"--fov {fov:g} degrees (horizontal)"
    elif fs.camera_info is not None:
        (intr, lens), source = read_camera_info(fs.camera_info), f"given ({fs.camera_info.name})"
    elif fs.intrinsics is not None:
        intr, source, lens = fs.intrinsics, "given (the input's camera_info)", fs.lens
    else:
        f = PRIOR_FOCAL_FACTOR * max(width, height)
        intr = Intrinsics(f, f, (width - 1) / 2.0, (height - 1) / 2.0, width, height)
        source = (f"prior: focal length {PRIOR_FOCAL_FACTOR} x the longer side ({f:.1f} px), principal point at the "
                  "centre; not calibrated")
        notes = (f"no intrinsics given: {source} (pass --intrinsics or --fov for a calibrated camera)",)
    if (intr.width, intr.height) != (width, height):
        what = (args_intrinsics if args_intrinsics else str(fs.camera_info) if fs.camera_info is not None
                else "of the input's camera_info")
        if abs(intr.width / width - intr.height / height) > 0.01:
            raise InputError(f"intrinsics {what} are for {intr.width}x{intr.height} (aspect "
                             f"{intr.width / intr.height:.3f}), the frames are {width}x{height} (aspect "
                             f"{width / height:.3f})", "give intrinsics of the frames' resolution (cropped "
                             "frames need their own cx, cy)")
        # Same aspect: most likely the frames were scaled after calibration; say so, since a
        # calibration of another camera or of cropped frames would pass here too.
        notes = notes + (f"intrinsics {what} are for {intr.width}x{intr.height}, the frames are {width}x{height}: "
                         f"scaled by {width / intr.width:g}; give intrinsics of the frames' resolution if the "
                         "frames were cropped, not scaled",)
        intr = intr.scaled(width, height)
    return ResolvedIntrinsics(intr, source, notes), lens
