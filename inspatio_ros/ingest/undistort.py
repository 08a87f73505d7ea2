"""Frames of a camera with lens distortion, rectified before the build sees them.

A build given a distortion (a camera_info.yaml with distortion_model and D, or ``--distortion
MODEL:D1,D2,...``) draws every frame, and every given depth map, as the pinhole view of the
same image size that lies wholly inside the distorted image (lens.inscribed_pinhole, like
cv2.getOptimalNewCameraMatrix with alpha = 0): the rectified frames have no empty border
(odometry, stereo and fusion would take a black border for scene), at the cost of the distorted
image's rim outside that view. A fisheye's view is capped at 120 degrees per axis. Odometry,
depth and fusion then work on pinhole frames with that K; the world records the original lens
and K in ``info["lens"]`` (eval rectifies its ground truth with it).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import cv2
import numpy as np

from ..camera import Intrinsics
from ..errors import InputError
from ..lens import MODEL_SIZES, Lens, inscribed_pinhole, rectify_map

# The widest pinhole view a fisheye input is rectified to, per axis: beyond it a pinhole image
# stretches the rim so much that matching and fusion there are worse than leaving it out.
MAX_RECTIFIED_FOV_DEG = 120.0


def parse_distortion(spec: str) -> Lens:
    """``--distortion MODEL:D1,D2,...`` (e.g. ``plumb_bob:-0.28,0.09,0,0,-0.01``)."""
    model, colon, values = str(spec).partition(":")
    example = "plumb_bob:-0.28,0.09,0,0,0 (k1,k2,p1,p2,k3), rational_polynomial:<8 numbers> or equidistant:<4 numbers>"
    if not colon:
        raise InputError(f"--distortion '{spec}' is not MODEL:D1,D2,...", f"give e.g. {example}")
    try:
        D = [float(v) for v in values.split(",")] if values.strip() else []
    except ValueError:
        raise InputError(f"--distortion '{spec}': '{values}' is not comma-separated numbers",
                         f"give e.g. {example}") from None
    return Lens.parse(model.strip(), D, f"--distortion '{spec}'")


@dataclass(frozen=True)
class Rectification:
    """How the build's frames are drawn from the distorted ones (at the build's frame size)."""

    lens: Lens
    source: Intrinsics          # the distorted camera's K
    target: Intrinsics          # the pinhole camera of the rectified frames
    map_x: np.ndarray
    map_y: np.ndarray

    @classmethod
    def make(cls, source: Intrinsics, lens: Lens, target: Intrinsics | None = None) -> "Rectification":
        """``target`` None: the inscribed pinhole view of the source's size."""
        size = (source.width, source.height)
        if target is None:
            K = inscribed_pinhole(source.K, lens, size, MAX_RECTIFIED_FOV_DEG)
            target = Intrinsics(K[0, 0], K[1, 1], K[0, 2], K[1, 2], *size)
        map_x, map_y = rectify_map(source.K, lens, target.K, (target.width, target.height))
        return cls(lens, source, target, map_x, map_y)

    def image(self, rgb: np.ndarray) -> np.ndarray:
        self._check(rgb.shape[:2], "frame")
        return cv2.remap(rgb, self.map_x, self.map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def depth(self, depth: np.ndarray) -> np.ndarray:
        """Nearest sample: a blend of a near and a far depth is a surface that is not there."""
        self._check(depth.shape[:2], "depth map")
        return cv2.remap(depth.astype(np.float32), self.map_x, self.map_y, cv2.INTER_NEAREST,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=float("nan"))

    def _check(self, shape, what: str) -> None:
        if tuple(shape) != (self.source.height, self.source.width):
            raise InputError(f"a {what} of {shape[1]}x{shape[0]} does not match the distorted camera's "
                             f"{self.source.width}x{self.source.height}",
                             "give frames and depth of the calibration's resolution")

    def frameset(self, fs):
        """``fs`` (ingest.sources.FrameSet) with its frames rectified (depth maps are rectified
        where they are brought to the frames' size: depth.given_depth)."""
        load = fs.load
        return dataclasses.replace(fs, load=lambda i: self.image(load(i)))

    def record(self) -> dict:
        """world.info["lens"]: the recorded camera and the pinhole view built from it."""
        k = lambda i: [float(i.fx), float(i.fy), float(i.cx), float(i.cy)]  # noqa: E731
        return {**self.lens.as_dict(), "source_K": k(self.source), "rectified_K": k(self.target),
                "size": [int(self.source.width), int(self.source.height)],
                "view": "inscribed: every rectified pixel lies inside the distorted image; the distorted rim "
                        "outside it is not used"}

    @classmethod
    def from_record(cls, record: dict, width: int, height: int) -> "Rectification":
        """The rectification a world recorded, for frames of ``width`` x ``height`` (eval's truth)."""
        lens = Lens.from_dict(record, "the world's info.lens")
        w, h = record["size"]
        source = Intrinsics(*record["source_K"], int(w), int(h)).scaled(width, height)
        target = Intrinsics(*record["rectified_K"], int(w), int(h)).scaled(width, height)
        return cls.make(source, lens, target)


def describe(rect: Rectification) -> str:
    t = rect.target
    names = MODEL_SIZES[rect.lens.model]
    return (f"frames undistorted from {rect.lens.model} (D = {', '.join(f'{v:g}' for v in rect.lens.D)}; {names} "
            f"coefficients) to the inscribed pinhole view fx {t.fx:.1f}, fy {t.fy:.1f}, cx {t.cx:.1f}, cy {t.cy:.1f} "
            f"(horizontal field of view {t.hfov_deg:.1f} degrees)")
