"""The world file: an anchored 4D world as one ``.safetensors`` file with JSON metadata.

Tensors (names are the on-disk keys):

=====================  =============  ==========================================================
key                    dtype/shape    meaning
=====================  =============  ==========================================================
static.xyz             f32 (N,3)      world position, metres
static.rgb             u8  (N,3)      colour
static.radius          f32 (N)        splat radius (half width), metres
static.normal          i8  (N,3)      unit surface normal x 127 (0,0,0: unknown, splat faces the camera)
static.frame           i32 (N)        index of the source frame the point came from (-1: none)
dynamic.xyz            f32 (M,3)      points that exist only for a while (moving objects)
dynamic.rgb            u8  (M,3)
dynamic.radius         f32 (M)
dynamic.normal         i8  (M,3)
dynamic.t_start        f64 (M)        the point exists for t_start <= t <= t_end (seconds)
dynamic.t_end          f64 (M)
dynamic.frame          i32 (M)
frames.c2w             f64 (F,4,4)    source frames' OpenCV camera-to-world poses
frames.time            f64 (F)        source frames' timestamps (s, recording time)
frames.index           i32 (F)        index of each frame in the input (video frame number)
heldout.c2w            f64 (H,4,4)    frames kept out of the world for evaluation
heldout.time           f64 (H)
heldout.index          i32 (H)
intrinsics             f64 (4)        fx, fy, cx, cy of the source images (pixels)
=====================  =============  ==========================================================

Format version 2 adds a layer of 3D Gaussians fitted to the source frames (``inspatio-ros
optimize``, inspatio_ros/gaussians/): two groups, ``gauss_static`` (always there) and
``gauss_dynamic`` (Gaussians that exist for a while: moving objects keep their time spans):

========================  =============  =======================================================
key                       dtype/shape    meaning
========================  =============  =======================================================
gauss_static.xyz          f32 (G,3)      centre, metres (f32: f16 would be 6 cm off at 100 m)
gauss_static.log_scale    f16 (G,3)      log of the standard deviations along the local axes (m)
gauss_static.rotation     f16 (G,4)      quaternion w x y z (local axes to world; normalised on use)
gauss_static.opacity      f16 (G)        logit of the peak opacity
gauss_static.sh           f16 (G,4,3)    colour: spherical-harmonic DC and degree-1 coefficients
                                         per RGB channel (gsplat's convention: rgb = 0.5 + SH)
gauss_static.surfel_rgb   u8  (G,3)      the CPU drawing's colour field (optional: G or 0 rows):
                                         colour at the centre of the Gaussian drawn as opaque
                                         surfels, baked from the optimized render ...
gauss_static.surfel_rgb_gradient  i8 (G,2,3)  ... and its change (grey levels) from the centre
                                         to the drawn edge along the largest, then the middle
                                         axis (gaussians/model.py fit_surfel_colours)
gauss_dynamic.*           as above (D)   plus:
gauss_dynamic.t_start     f64 (D)        the Gaussian exists for t_start <= t <= t_end (seconds)
gauss_dynamic.t_end       f64 (D)
========================  =============  =======================================================

This table is the layer as held in memory and as version 2 stored it; version 3 (written since
2026-12-05) stores the rotation, opacity and colour more compactly (8-bit; see encode_gaussians
below), 47 bytes a static Gaussian with its colour field where version 2 took 61 (52 without).
Neither costs anything measurable (test/gaussians: a render of the stored parameters is > 50 dB
from the f32 one; docs/notes/2026-12-05-gaussian-size.md). A world without Gaussians is
written as version 1, byte for byte what earlier versions wrote, so that they keep reading it;
this version reads all three. An optimized world stores no surfels: the CPU renderer draws its
Gaussians as surfels made at load (large ones split over the ellipse where they are at least 0.3
opaque, coloured by the
``surfel_rgb`` field; gaussians/model.py world_surfels), so the file is about the size of its
Gaussians. Optimized worlds written before 2026-12-05 store those surfels in the ``static.*`` /
``dynamic.*`` arrays beside the Gaussians and without the colour field; they are drawn from the
stored surfels as before.

The safetensors header's ``__metadata__`` holds one key, ``inspatio_world``, a JSON object with
``format`` ("inspatio_world"), ``version``, ``image_size`` [w, h], ``conventions``,
``provenance`` (source path, sha256, settings; ``source_frames`` and ``source_size``, the input's
frame count and native [w, h], and ``heldout_fingerprint``, thumbnails of held-out frames, that
``eval`` checks its ground truth against: ingest/fingerprint.py) and free-form ``info``.

``info`` keys that change how a world renders (the rest of ``info`` is a record of the build):

=====================  =============  ==========================================================
info key               type           meaning
=====================  =============  ==========================================================
frame_local            bool           the dynamic layer also holds a frame-local layer: every
                                      fused frame's own surfels (its unknown depth interpolated),
                                      alive from the previous fused frame's time to the next
                                      one's (ingest/fusion.py, ``frame_local_time_spans``).
                                      ``Renderer`` then draws at a time t in two passes: the
                                      dynamic layer hole-filled in front, the static layer only
                                      where hole filling cannot reach. Absent or false: one pass
                                      over all layers. Written by ``build`` with MVS depth
                                      (``--frame-local auto|on|off``); version 1 readers that
                                      ignore it still draw every point, in one pass.
frame_local_points     int            how many of the dynamic points are frame-local (the rest
                                      are moving objects); present with ``frame_local``
sky                    object         an optimized world's learned sky (gaussians/sky.py): an
                                      equirectangular texture of colours by view direction
                                      (``model``, ``up``, ``forward``, ``rgb`` rows x columns x
                                      3), drawn behind the Gaussians where they leave a pixel
                                      uncovered, and by the CPU renderer in the wide areas its
                                      surfels leave empty. Readers without it draw the
                                      background colour there.
=====================  =============  ==========================================================
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .camera import Intrinsics, check_poses
from .errors import WorldFileError
from .fileio import atomic_path

FORMAT_NAME = "inspatio_world"
FORMAT_VERSION = 3          # the newest version this reader reads (and writes for a world with Gaussians)
GAUSSIAN_V2 = 2             # the first Gaussian layer: every parameter as held in memory (f16), still read
SURFEL_FORMAT_VERSION = 1   # what a world without a Gaussian layer is written as
CONVENTIONS = {
    "world_frame": "map; metric; gravity-aligned when known (z up per REP-103) else the first camera's",
    "camera_frame": "OpenCV optical: x right, y down, z forward",
    "poses": "camera-to-world 4x4",
    "depth": "z-depth along the optical axis, metres",
    "time": "seconds of the recording",
}

_FIELDS = {
    # key: (dtype, trailing shape)
    "static.xyz": (np.float32, (3,)),
    "static.rgb": (np.uint8, (3,)),
    "static.radius": (np.float32, ()),
    "static.normal": (np.int8, (3,)),
    "static.frame": (np.int32, ()),
    "dynamic.xyz": (np.float32, (3,)),
    "dynamic.rgb": (np.uint8, (3,)),
    "dynamic.radius": (np.float32, ()),
    "dynamic.normal": (np.int8, (3,)),
    "dynamic.t_start": (np.float64, ()),
    "dynamic.t_end": (np.float64, ()),
    "dynamic.frame": (np.int32, ()),
    "frames.c2w": (np.float64, (4, 4)),
    "frames.time": (np.float64, ()),
    "frames.index": (np.int32, ()),
    "heldout.c2w": (np.float64, (4, 4)),
    "heldout.time": (np.float64, ()),
    "heldout.index": (np.int32, ()),
    "intrinsics": (np.float64, None),
}

# Format version 2's Gaussian layer (see the module docstring).
_GAUSSIAN_PARAMS = {
    "xyz": (np.float32, (3,)),
    "log_scale": (np.float16, (3,)),
    "rotation": (np.float16, (4,)),
    "opacity": (np.float16, ()),
    "sh": (np.float16, (4, 3)),
}
# The CPU drawing's colour field: per Gaussian, or no rows at all (a world written before it).
_SURFEL_COLOUR_PARAMS = {
    "surfel_rgb": (np.uint8, (3,)),
    "surfel_rgb_gradient": (np.int8, (2, 3)),
}
GAUSSIAN_FIELDS = {
    **{f"gauss_static.{k}": v for k, v in {**_GAUSSIAN_PARAMS, **_SURFEL_COLOUR_PARAMS}.items()},
    **{f"gauss_dynamic.{k}": v for k, v in {**_GAUSSIAN_PARAMS, **_SURFEL_COLOUR_PARAMS}.items()},
    "gauss_dynamic.t_start": (np.float64, ()),
    "gauss_dynamic.t_end": (np.float64, ()),
}
OPTIONAL_GAUSSIAN_FIELDS = {f"{group}.{k}" for group in ("gauss_static", "gauss_dynamic") for k in _SURFEL_COLOUR_PARAMS}
_ALL_FIELDS = {**_FIELDS, **GAUSSIAN_FIELDS}
GAUSSIAN_FIX = ("the Gaussian layer is damaged: run 'inspatio-ros optimize' again on the world it was made from "
                "(or rebuild the world)")


def _attr(key: str) -> str:
    """World attribute of an on-disk key: 'frames.c2w' -> 'frame_c2w', 'static.xyz' -> 'static_xyz'."""
    group, name = key.split(".")
    return f"{'frame' if group == 'frames' else group}_{name}"


_GROUPS = {"static": "static.xyz", "dynamic": "dynamic.xyz", "frames": "frames.c2w", "heldout": "heldout.c2w"}
_GAUSSIAN_GROUPS = {"gauss_static": "gauss_static.xyz", "gauss_dynamic": "gauss_dynamic.xyz"}


def _empty(key: str) -> np.ndarray:
    dtype, shape = GAUSSIAN_FIELDS[key]
    return np.zeros((0, *shape), dtype)


def sha256_of(path: str | os.PathLike, limit: int | None = None) -> str:
    """Hex SHA-256 of a file (or of a folder's sorted file names and sizes)."""
    path = Path(path)
    h = hashlib.sha256()
    if path.is_dir():
        for p in sorted(path.rglob("*")):
            if p.is_file():
                h.update(f"{p.relative_to(path)}:{p.stat().st_size}\n".encode())
        return h.hexdigest()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class World:
    """An anchored 4D world. Arrays are numpy; the renderer moves them to the GPU once."""

    intrinsics: Intrinsics
    static_xyz: np.ndarray
    static_rgb: np.ndarray
    static_radius: np.ndarray
    static_normal: np.ndarray
    static_frame: np.ndarray
    frame_c2w: np.ndarray
    frame_time: np.ndarray
    frame_index: np.ndarray
    dynamic_xyz: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.float32))
    dynamic_rgb: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.uint8))
    dynamic_radius: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32))
    dynamic_normal: np.ndarray = field(default_factory=lambda: np.zeros((0, 3), np.int8))
    dynamic_t_start: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float64))
    dynamic_t_end: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float64))
    dynamic_frame: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int32))
    heldout_c2w: np.ndarray = field(default_factory=lambda: np.zeros((0, 4, 4), np.float64))
    heldout_time: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float64))
    heldout_index: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int32))
    gauss_static_xyz: np.ndarray = field(default_factory=lambda: _empty("gauss_static.xyz"))
    gauss_static_log_scale: np.ndarray = field(default_factory=lambda: _empty("gauss_static.log_scale"))
    gauss_static_rotation: np.ndarray = field(default_factory=lambda: _empty("gauss_static.rotation"))
    gauss_static_opacity: np.ndarray = field(default_factory=lambda: _empty("gauss_static.opacity"))
    gauss_static_sh: np.ndarray = field(default_factory=lambda: _empty("gauss_static.sh"))
    gauss_dynamic_xyz: np.ndarray = field(default_factory=lambda: _empty("gauss_dynamic.xyz"))
    gauss_dynamic_log_scale: np.ndarray = field(default_factory=lambda: _empty("gauss_dynamic.log_scale"))
    gauss_dynamic_rotation: np.ndarray = field(default_factory=lambda: _empty("gauss_dynamic.rotation"))
    gauss_dynamic_opacity: np.ndarray = field(default_factory=lambda: _empty("gauss_dynamic.opacity"))
    gauss_dynamic_sh: np.ndarray = field(default_factory=lambda: _empty("gauss_dynamic.sh"))
    gauss_static_surfel_rgb: np.ndarray = field(default_factory=lambda: _empty("gauss_static.surfel_rgb"))
    gauss_static_surfel_rgb_gradient: np.ndarray = field(
        default_factory=lambda: _empty("gauss_static.surfel_rgb_gradient"))
    gauss_dynamic_surfel_rgb: np.ndarray = field(default_factory=lambda: _empty("gauss_dynamic.surfel_rgb"))
    gauss_dynamic_surfel_rgb_gradient: np.ndarray = field(
        default_factory=lambda: _empty("gauss_dynamic.surfel_rgb_gradient"))
    gauss_dynamic_t_start: np.ndarray = field(default_factory=lambda: _empty("gauss_dynamic.t_start"))
    gauss_dynamic_t_end: np.ndarray = field(default_factory=lambda: _empty("gauss_dynamic.t_end"))
    provenance: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key, (dtype, _shape) in _ALL_FIELDS.items():
            if key == "intrinsics":
                continue
            attr = _attr(key)
            setattr(self, attr, np.ascontiguousarray(getattr(self, attr), dtype=dtype))

    # -- derived facts ---------------------------------------------------------------------
    @property
    def num_static(self) -> int:
        return int(len(self.static_xyz))

    @property
    def num_dynamic(self) -> int:
        return int(len(self.dynamic_xyz))

    @property
    def num_gaussians(self) -> int:
        return int(len(self.gauss_static_xyz) + len(self.gauss_dynamic_xyz))

    @property
    def has_gaussians(self) -> bool:
        """True for an optimized world (format version 2 or 3 with a non-empty Gaussian layer)."""
        return self.num_gaussians > 0

    @property
    def format_version(self) -> int:
        """The version this world is written as: 3 with a Gaussian layer, else 1."""
        return FORMAT_VERSION if self.has_gaussians else SURFEL_FORMAT_VERSION

    @property
    def time_range(self) -> tuple[float, float]:
        """First and last source time (held-out frames included)."""
        times = np.concatenate([self.frame_time, self.heldout_time])
        return float(times.min()), float(times.max())

    def camera_path(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every source camera, held-out ones included, in frame order: (frame numbers (N,),
        camera-to-world (N,4,4), held out (N,) bool)."""
        index = np.concatenate([self.frame_index, self.heldout_index]).astype(np.int64)
        c2w = np.concatenate([self.frame_c2w, self.heldout_c2w])
        held = np.concatenate([np.zeros(len(self.frame_index), bool), np.ones(len(self.heldout_index), bool)])
        order = np.argsort(index, kind="stable")
        return index[order], c2w[order], held[order]

    def validate(self, source: str = "world") -> None:
        """Check shapes, dtypes and values; raise WorldFileError naming what is wrong."""
        for key, (dtype, shape) in _FIELDS.items():
            if key == "intrinsics":
                continue
            arr = getattr(self, _attr(key))
            if arr.dtype != dtype or arr.shape[1:] != shape:
                raise WorldFileError(f"{source}: '{key}' has dtype {arr.dtype} shape {arr.shape}",
                                     f"expected {np.dtype(dtype)} (N,{','.join(map(str, shape))})")
        for group, lead in _GROUPS.items():
            n = len(getattr(self, _attr(lead)))
            for key in _FIELDS:
                if key.startswith(group + ".") and len(getattr(self, _attr(key))) != n:
                    raise WorldFileError(f"{source}: the '{group}' arrays have different lengths",
                                         "the file is damaged; rebuild the world")
        if len(self.frame_c2w) == 0:
            raise WorldFileError(f"{source} has no source frames", "rebuild the world from a video")
        for name in ("static_xyz", "dynamic_xyz", "static_radius", "dynamic_radius"):
            arr = getattr(self, name)
            if arr.size and not np.isfinite(arr).all():
                raise WorldFileError(f"{source}: '{name}' holds NaN or infinity",
                                     "the file is damaged; rebuild the world")
        check_poses(self.frame_c2w, f"{source} frames.c2w")
        if len(self.heldout_c2w):
            check_poses(self.heldout_c2w, f"{source} heldout.c2w")
        self._validate_gaussians(source)

    def _validate_gaussians(self, source: str) -> None:
        for key, (dtype, shape) in GAUSSIAN_FIELDS.items():
            arr = getattr(self, _attr(key))
            if arr.dtype != dtype or arr.shape[1:] != shape:
                raise WorldFileError(f"{source}: the Gaussian layer's '{key}' has dtype {arr.dtype} shape "
                                     f"{arr.shape}, expected {np.dtype(dtype)} (N,{','.join(map(str, shape))})",
                                     GAUSSIAN_FIX)
        for group, lead in _GAUSSIAN_GROUPS.items():
            n = len(getattr(self, _attr(lead)))
            for key in GAUSSIAN_FIELDS:
                rows = len(getattr(self, _attr(key)))
                if key in OPTIONAL_GAUSSIAN_FIELDS and rows == 0:
                    continue
                if key.startswith(group + ".") and rows != n:
                    raise WorldFileError(f"{source}: the Gaussian layer's '{group}' arrays have different "
                                         f"lengths ('{key}' has {len(getattr(self, _attr(key)))}, '{lead}' {n})",
                                         GAUSSIAN_FIX)
        for group in _GAUSSIAN_GROUPS:
            rows = {len(getattr(self, _attr(f"{group}.{k}"))) for k in _SURFEL_COLOUR_PARAMS}
            if len(rows) > 1:
                raise WorldFileError(f"{source}: the Gaussian layer's '{group}' has only part of its surfel colour "
                                     f"field ({', '.join(_SURFEL_COLOUR_PARAMS)})", GAUSSIAN_FIX)
        for key in GAUSSIAN_FIELDS:
            arr = getattr(self, _attr(key))
            if arr.size and not np.isfinite(arr).all():
                raise WorldFileError(f"{source}: the Gaussian layer's '{key}' holds NaN or infinity", GAUSSIAN_FIX)
        for group in _GAUSSIAN_GROUPS:
            q = getattr(self, f"{group}_rotation").astype(np.float32)
            if len(q) and (np.linalg.norm(q, axis=1) < 1e-3).any():
                raise WorldFileError(f"{source}: the Gaussian layer's '{group}.rotation' holds a zero quaternion",
                                     GAUSSIAN_FIX)
        if (self.gauss_dynamic_t_start > self.gauss_dynamic_t_end).any():
            raise WorldFileError(f"{source}: the Gaussian layer's 'gauss_dynamic.t_start' is after its t_end",
                                 GAUSSIAN_FIX)

    def summary(self) -> dict[str, Any]:
        t0, t1 = self.time_range
        i = self.intrinsics
        return {
            "format": f"{FORMAT_NAME} v{self.format_version}",
            "image_size": [i.width, i.height],
            "intrinsics": {"fx": i.fx, "fy": i.fy, "cx": i.cx, "cy": i.cy},
            "static_points": self.num_static,
            "dynamic_points": self.num_dynamic,
            **({"gaussians_static": int(len(self.gauss_static_xyz)),
                "gaussians_dynamic": int(len(self.gauss_dynamic_xyz))} if self.has_gaussians else {}),
            "source_frames": int(len(self.frame_c2w)),
            "heldout_frames": int(len(self.heldout_c2w)),
            "time_range_s": [t0, t1],
            "path_length_m": float(np.linalg.norm(np.diff(self.frame_c2w[:, :3, 3], axis=0), axis=1).sum()),
            "provenance": self.provenance,
            "info": self.info,
        }

    # -- persistence -------------------------------------------------------------------------
    def _tensors(self) -> dict[str, np.ndarray]:
        out = {key: getattr(self, _attr(key)) for key in _FIELDS if key != "intrinsics"}
        out["intrinsics"] = self.intrinsics.as_array()
        if self.has_gaussians:
            out.update(encode_gaussians({key: getattr(self, _attr(key)) for key in GAUSSIAN_FIELDS}))
        return out

    def save(self, path: str | os.PathLike) -> Path:
        """Write atomically (temp file + rename): readers never see a half-written world."""
        from safetensors.numpy import save_file

        self.validate(str(path))
        meta = {
            "format": FORMAT_NAME,
            "version": self.format_version,
            "image_size": [self.intrinsics.width, self.intrinsics.height],
            "conventions": CONVENTIONS,
            "provenance": self.provenance,
            "info": self.info,
        }
        path = Path(path)
        with atomic_path(path) as tmp:
            save_file({k: np.ascontiguousarray(v) for k, v in self._tensors().items()}, str(tmp),
                      metadata={FORMAT_NAME: json.dumps(meta)})
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> "World":
        path = Path(path)
        meta = read_world_metadata(path)
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        try:
            tensors = load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise WorldFileError(f"world file {path} is damaged ({exc})",
                                 "rebuild it with 'inspatio-ros build'") from None
        missing = [k for k in _FIELDS if k not in tensors]
        if missing:
            raise WorldFileError(f"world file {path} lacks {', '.join(missing)}",
                                 "the file is damaged or not a world; rebuild it with 'inspatio-ros build'")
        fx, fy, cx, cy = (float(v) for v in tensors["intrinsics"])
        w, h = meta["image_size"]
        kwargs = {_attr(key): tensors[key] for key in _FIELDS if key != "intrinsics"}
        if meta["version"] >= COMPACT_GAUSSIAN_VERSION:
            tensors = decode_gaussians(tensors, f"world file {path}")
        if meta["version"] >= GAUSSIAN_V2:
            missing = [k for k in GAUSSIAN_FIELDS if k not in tensors and k not in OPTIONAL_GAUSSIAN_FIELDS]
            if missing:
                raise WorldFileError(f"world file {path} (format version {meta['version']}) lacks {', '.join(missing)}", GAUSSIAN_FIX)
            for key, (dtype, shape) in GAUSSIAN_FIELDS.items():
                # Checked before World() casts: a float colour field would otherwise wrap into u8.
                if key in tensors and tensors[key].dtype != dtype:
                    raise WorldFileError(f"world file {path}: the Gaussian layer's '{key}' has dtype "
                                         f"{tensors[key].dtype} shape {tensors[key].shape}, expected "
                                         f"{np.dtype(dtype)} (N,{','.join(map(str, shape))})", GAUSSIAN_FIX)
            kwargs.update({_attr(key): tensors[key] for key in GAUSSIAN_FIELDS if key in tensors})
        world = cls(intrinsics=Intrinsics(fx, fy, cx, cy, int(w), int(h)),
                    provenance=meta.get("provenance", {}), info=meta.get("info", {}), **kwargs)
        world.validate(f"world file {path}")
        return world


# Format version 3 stores three of the Gaussian layer's fields more compactly than they are held
# in memory (and than version 2 stored them); the rest as in the table above:
#   rotation  i8 (G,4)     unit quaternion x 127 (decoded: / 127; normalised on use anyway)
#   opacity   u8 (G)       peak opacity x 255 (decoded to the f16 logit; 0 and 255 as 0.5 and 254.5)
#   sh_dc     f16 (G,3)    the SH DC term (colour)
#   sh_rest   i8 (G,3,3)   the degree-1 terms / sh_rest_scale, rounded
#   sh_rest_scale f32 (3,3) per layer: the largest |degree-1 term| of each coefficient and channel / 127
# 47 bytes a static Gaussian with its colour field, instead of 61 (measured on the CPU-optimized
# toy street: the Gaussian render of these values is 58.5 dB from that of the f16 ones).
COMPACT_GAUSSIAN_VERSION = 3
_COMPACT_FIELDS = {
    "rotation": (np.int8, (4,)),
    "opacity": (np.uint8, ()),
    "sh_dc": (np.float16, (3,)),
    "sh_rest": (np.int8, (3, 3)),
}


def encode_gaussians(fields: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The Gaussian layer's on-disk tensors (format version 3) from the in-memory ones (the
    ``gauss_*`` keys of GAUSSIAN_FIELDS)."""
    out = dict(fields)
    for group in _GAUSSIAN_GROUPS:
        q = out.pop(f"{group}.rotation").astype(np.float32)
        q = q / np.linalg.norm(q, axis=1, keepdims=True).clip(1e-12)
        out[f"{group}.rotation"] = np.round(q * 127).astype(np.int8)
        logit = out.pop(f"{group}.opacity").astype(np.float64)
        out[f"{group}.opacity"] = np.round(255.0 / (1.0 + np.exp(-logit))).astype(np.uint8)
        sh = out.pop(f"{group}.sh").astype(np.float32)
        out[f"{group}.sh_dc"] = sh[:, 0].astype(np.float16)
        rest = sh[:, 1:]
        scale = (np.abs(rest).max(axis=0) if len(rest) else np.zeros((3, 3), np.float32)) / 127.0
        out[f"{group}.sh_rest"] = np.round(rest / np.where(scale > 0, scale, 1.0)).clip(-127, 127).astype(np.int8)
        out[f"{group}.sh_rest_scale"] = scale.astype(np.float32)
    return out


def decode_gaussians(tensors: dict[str, np.ndarray], source: str) -> dict[str, np.ndarray]:
    """The in-memory Gaussian fields from a version-3 file's tensors (the inverse of
    encode_gaussians, up to its rounding); a missing or malformed compact tensor is one
    WorldFileError naming it."""
    out = dict(tensors)
    for group in _GAUSSIAN_GROUPS:
        wanted = {**{f"{group}.{k}": v for k, v in _COMPACT_FIELDS.items()},
                  f"{group}.sh_rest_scale": (np.float32, None)}
        for key, (dtype, shape) in wanted.items():
            if key not in out:
                raise WorldFileError(f"{source} (format version {COMPACT_GAUSSIAN_VERSION}) lacks {key}", GAUSSIAN_FIX)
            arr = out[key]
            good_shape = arr.shape == (3, 3) if shape is None else arr.shape[1:] == shape
            if arr.dtype != dtype or not good_shape:
                expected = "(3,3)" if shape is None else f"(N,{','.join(map(str, shape))})"
                raise WorldFileError(f"{source}: the Gaussian layer's '{key}' has dtype {arr.dtype} shape {arr.shape}, "
                                     f"expected {np.dtype(dtype)} {expected}", GAUSSIAN_FIX)
        scale = out.pop(f"{group}.sh_rest_scale")
        if not (np.isfinite(scale).all() and (scale >= 0).all()):
            raise WorldFileError(f"{source}: the Gaussian layer's '{group}.sh_rest_scale' is not finite and >= 0",
                                 GAUSSIAN_FIX)
        dc, rest = out.pop(f"{group}.sh_dc"), out.pop(f"{group}.sh_rest")
        if len(dc) != len(rest):
            raise WorldFileError(f"{source}: the Gaussian layer's '{group}' arrays have different lengths "
                                 f"('{group}.sh_rest' has {len(rest)}, '{group}.sh_dc' {len(dc)})", GAUSSIAN_FIX)
        out[f"{group}.sh"] = np.concatenate([dc[:, None].astype(np.float32), rest.astype(np.float32) * scale],
                                            1).astype(np.float16)
        out[f"{group}.rotation"] = (out[f"{group}.rotation"].astype(np.float32) / 127.0).astype(np.float16)
        p = np.clip(out[f"{group}.opacity"].astype(np.float64), 0.5, 254.5) / 255.0
        out[f"{group}.opacity"] = np.log(p / (1.0 - p)).astype(np.float16)
    return out


def read_world_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check the JSON metadata of a world file without loading its tensors."""
    path = Path(path)
    if not path.exists():
        raise WorldFileError(f"world file {path} does not exist",
                             "check the path, or make one with 'inspatio-ros build'")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) != 8:
                raise ValueError("shorter than a safetensors header")
            (n,) = struct.unpack("<Q", head)
            if n > 100 * 1024 * 1024:
                raise ValueError("header length is absurd")
            header = json.loads(f.read(n))
        meta = json.loads(header["__metadata__"][FORMAT_NAME])
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise WorldFileError(f"{path} is not an inspatio world file ({exc})",
                             "give a .safetensors world made by 'inspatio-ros build'") from None
    if meta.get("format") != FORMAT_NAME:
        raise WorldFileError(f"{path} has format '{meta.get('format')}'",
                             "give a .safetensors world made by 'inspatio-ros build'")
    version = meta.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        # "1.0" (a string) or 1.0 is no version this reader or a newer one writes: asking to
        # upgrade would send the user the wrong way.
        raise WorldFileError(f"world file {path} has a malformed format version {version!r} "
                             f"({type(version).__name__}), expected the integer {SURFEL_FORMAT_VERSION} or {FORMAT_VERSION}",
                             "the metadata was edited or written by another tool; rebuild the world with "
                             "'inspatio-ros build'")
    if not SURFEL_FORMAT_VERSION <= version <= FORMAT_VERSION:
        raise WorldFileError(
            f"world file {path} has format version {version}, this inspatio_ros reads versions "
            f"{SURFEL_FORMAT_VERSION} to {FORMAT_VERSION}",
            "rebuild the world with this version's 'inspatio-ros build'"
            if isinstance(version, int) and version < SURFEL_FORMAT_VERSION
            else "upgrade inspatio_ros to read it")
    size = meta.get("image_size")
    if not (isinstance(size, list) and len(size) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size)):
        raise WorldFileError(f"world file {path} has a malformed image_size {size!r}, expected [width, height] "
                             "in pixels", "the metadata was edited or written by another tool; rebuild the world "
                             "with 'inspatio-ros build'")
    return meta


def encode_normals(normals: np.ndarray) -> np.ndarray:
    """Float normals (N,3) to the stored int8 form (x 127); zero or non-finite rows become 0."""
    normals = np.asarray(normals, dtype=np.float32)
    length = np.linalg.norm(normals, axis=-1, keepdims=True)
    ok = np.isfinite(length) & (length > 1e-6)
    unit = np.where(ok, normals / np.where(ok, length, 1.0), 0.0)
    return np.round(unit * 127.0).astype(np.int8)
