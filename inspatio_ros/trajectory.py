"""Camera trajectories to render a world along: InSpatio-World keyframe files, 4x4, TUM, KITTI.

Formats
=======

**InSpatio-World keyframe files** (``*.txt``, three numeric lines; ``#`` comments allowed here).
Determined from ``inspatio/inspatio-world`` (commit 84639bf): ``README.md`` ("Trajectory File
Format"), ``datasets/utils.py`` (``txt_interpolation``, ``sphere2pose``, ``generate_traj_txt``),
``datasets/test_dataset.py`` (how the radius line is scaled by depth) and
``scripts/render_point_cloud.py`` (``generate_target_c2ws``: how the poses are composed with the
source camera). Re-implemented here, not copied::

    line 1: pitch keyframes, degrees ("x_up"):   + = camera orbits UP   (and looks down at the pivot)
    line 2: yaw keyframes, degrees   ("y_left"): + = camera orbits LEFT (and looks right at the pivot)
    line 3: radius keyframes, a scale relative to the scene depth (``look_at_depth`` here)

Each line may hold a different number of keyframes. Keyframe ``k`` of a line with ``K`` values
sits at normalised time ``k / (K - 1)``; output frame ``i`` of ``frames`` is at
``i / (frames - 1)``. So keyframe ``k`` lands exactly on frame ``k (frames - 1) / (K - 1)`` when
that is a whole number (e.g. 5 keyframes and 49 frames: frames 0, 12, 24, 36, 48).

Geometry, in the reference camera's OpenCV frame (x right, y down, z forward), with pitch ``θ``,
yaw ``φ`` and ``R = radius * look_at_depth`` at one frame:

* Orbit mode (any pitch or yaw keyframe non-zero): the pivot is the point ``(0, 0, R)``, i.e.
  ``R`` metres straight ahead of the reference camera (exactly ``look_at_depth`` for the usual
  radius 1). With the unit direction ``d = (cos θ sin φ, sin θ, cos θ cos φ)`` the camera centre
  is ``pivot - R d`` and its optical axis is ``d``, so it always looks at the pivot from distance
  ``R``; its rotation is ``Ry(φ) @ Rx(-θ)`` (right-handed rotations about the reference camera's
  y and x axes), which keeps the image x axis level (no roll). ``θ = φ = 0`` gives the reference
  pose exactly, whatever the radius. ``+θ`` moves the camera to ``y < 0`` (up, since y points
  down); ``+φ`` moves it to ``x < 0`` (left).
* Dolly mode (every pitch and yaw keyframe is zero): the radius line is a displacement along the
  optical axis instead: the camera keeps the reference orientation and moves ``R`` metres
  forward (``+``: dolly in / "zoom in", ``-``: dolly out). E.g. upstream ``zoom_out_in``.
* ``rotation_only=True`` (upstream ``--rotation_only``, a tripod pan/tilt): orbit mode rotations
  with the translation dropped; the camera stays at the reference centre (so ``+φ`` then turns it
  to look right). Dolly mode is unaffected, as upstream.

The per-frame offset ``T_i`` (reference-camera frame) is composed as ``reference_pose @ T_i``.
Passing one reference pose per frame, shape ``(frames, 4, 4)``, composes each frame with its own
source camera (upstream ``--relative_to_source``: the orbit rides along with the recording).

Depth scale: upstream multiplies line 3 by the minimum depth of the first source frame (times
``radius_ratio``, 1 in all its examples; ``render_point_cloud.py`` uses the raw values in its
depth model's units). Here that scale is the ``look_at_depth`` argument, in metres.

Interpolation (``interpolation=``):

* ``"smooth"`` (default): shape-preserving piecewise cubic (PCHIP) through the keyframes. Every
  keyframe is hit exactly, it never overshoots (flat runs stay flat, zeros stay zero) and it is
  C1. Two keyframes give a straight line, one a constant.
* ``"linear"``: piecewise linear between keyframes.
* ``"inspatio"``: upstream's resampling for bit-level comparisons: more than 3 keyframes use a
  cubic *smoothing* spline (scipy ``UnivariateSpline``, ``k=3``, default smoothing ``s = K``),
  which does NOT pass through the keyframes (peaks of 20 degrees come out a little lower);
  3 or fewer use linear interpolation. Upstream pins only the radius line's end values back to
  the keyframes, and so does this mode.

Upstream also varies the number of frames with the trajectory's total angle (0.3-0.8 degrees per
frame, at least 121 frames); here the caller chooses ``frames``.

**Pose files**: per-frame 4x4 camera-to-world (16 numbers a line, or 4 lines of 4), TUM
(``t tx ty tz qx qy qz qw``) and KITTI (12 numbers, 3x4 row-major) are read by
:func:`inspatio_ros.posefile.read_poses` and returned as is (world-frame OpenCV camera-to-world);
times come from the file (TUM) or are ``i / fps``.

**InSpatio-World v1.5 target trajectories** (``target_tcw.txt``; any file named ``*tcw.txt``, or
``fmt="tcw"``): one OpenCV world-to-camera 4x4 per line (16 numbers, row-major), in the first
frame's normalised frame: the first source camera is the identity and the units are the source
cameras' (their README, "Run your own data"; pipeline/depth_estimation.py normalises the estimated
camera-to-world poses by the first one's inverse). Here "the first frame" is ``reference_pose``
(``render --traj``: source frame ``--frame``, default 0; the node: the recorded start camera), and
the units are the world's: pose ``i`` is ``reference_pose @ inv(Tcw_i)``. A target trajectory made
by their depth model for the same video is in its scale, not ours; one written by
``inspatio-ros export --inspatio`` is in ours.

Format detection: a file named ``*tcw.txt`` with 16 numbers a line is an InSpatio-World v1.5
world-to-camera file. A file with exactly three numeric lines is an InSpatio keyframe file unless
its lines all have the same width and look like real poses (TUM: unit quaternions, KITTI/4x4:
orthonormal rotations and, for 4x4, a ``0 0 0 1`` last row); anything else goes to the pose-file
readers.

Shipped presets live in ``inspatio_ros/trajectories/*.txt`` (see :func:`list_presets`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .camera import check_poses
from .errors import InputError
from .posefile import read_numeric_rows, read_poses

PRESET_DIR = Path(__file__).resolve().parent / "trajectories"

INTERPOLATIONS = ("smooth", "linear", "inspatio")
POSE_FORMATS = ("tum", "kitti", "4x4")
TCW_SUFFIX = "tcw.txt"          # InSpatio-World v1.5: target_tcw.txt, source_tcw.txt


@dataclass
class Trajectory:
    """Camera path: OpenCV camera-to-world poses, optional times (s) and a name for outputs."""

    poses: np.ndarray            # (N, 4, 4) float64 camera-to-world
    times: np.ndarray | None     # (N,) float64 seconds, or None
    name: str

    def __len__(self) -> int:
        return len(self.poses)


# ---------------------------------------------------------------------------------------------
# Presets
# ---------------------------------------------------------------------------------------------

def list_presets() -> list[str]:
    """Names of the shipped trajectory presets (without ``.txt``), sorted."""
    if not PRESET_DIR.is_dir():
        return []
    return sorted(p.stem for p in PRESET_DIR.glob("*.txt"))


def preset_path(name: str) -> Path:
    """Path of a shipped preset; ``name`` with or without ``.txt``."""
    stem = name[:-4] if name.endswith(".txt") else name
    path = PRESET_DIR / f"{stem}.txt"
    if os.sep in stem or "/" in stem or not stem or not path.is_file():
        raise InputError(f"trajectory preset '{name}' does not exist",
                         f"use one of: {', '.join(list_presets())}, or give a trajectory file path")
    return path


def resolve_trajectory(spec: str | os.PathLike) -> tuple[Path, str]:
    """(file path, display name) for a file path or preset name."""
    path = Path(spec)
    if path.is_file():
        return path, path.stem
    text = str(spec)
    stem = text[:-4] if text.endswith(".txt") else text
    if stem and "/" not in stem and os.sep not in stem and (PRESET_DIR / f"{stem}.txt").is_file():
        return PRESET_DIR / f"{stem}.txt", stem
    if path.exists():
        raise InputError(f"trajectory '{spec}' is not a file",
                         "give a trajectory text file or a preset name")
    raise InputError(f"trajectory '{spec}' is neither an existing file nor a preset",
                     f"check the path, or use a preset: {', '.join(list_presets())}")


# ---------------------------------------------------------------------------------------------
# InSpatio-World keyframe files
# ---------------------------------------------------------------------------------------------

def _read_rows(path: Path) -> list[list[float]]:
    return read_numeric_rows(
        path, "trajectory file", "give an InSpatio 3-line keyframe file or a TUM/KITTI/4x4 pose file",
        "give 3 lines (pitch degrees, yaw degrees, radius) or one pose per line", finite=True)


def parse_inspatio_keyframes(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Read an InSpatio-World trajectory file: (pitch_deg, yaw_deg, radius) keyframe arrays.

    Three non-empty, non-comment lines of space-separated numbers; lines may differ in length.
    """
    path = Path(path)
    rows = _read_rows(path)
    if len(rows) != 3:
        raise InputError(f"trajectory file {path} has {len(rows)} numeric lines, not 3",
                         "an InSpatio trajectory is 3 lines: pitch degrees, yaw degrees, radius scale")
    pitch, yaw, radius = (np.asarray(r, dtype=np.float64) for r in rows)
    return pitch, yaw, radius


def resample_keyframes(values, frames: int, interpolation: str = "smooth",
                       pin_ends: bool = False) -> np.ndarray:
    """Resample keyframes spread evenly over [0, 1] to ``frames`` evenly spread samples."""
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if values.size == 0:
        raise InputError("a trajectory keyframe line is empty", "give at least one number per line")
    if interpolation not in INTERPOLATIONS:
        raise InputError(f"trajectory interpolation '{interpolation}' is unknown",
                         f"use one of: {', '.join(INTERPOLATIONS)}")
    if frames < 1:
        raise InputError(f"trajectory frames = {frames}", "give at least 1 frame")
    k = values.size
    if k == 1:
        return np.full(frames, values[0])
    x = np.linspace(0.0, 1.0, k)
    xs = np.linspace(0.0, 1.0, frames)
    if interpolation == "linear" or k == 2 or (interpolation == "inspatio" and k <= 3):
        out = np.interp(xs, x, values)
    elif interpolation == "smooth":
        from scipy.interpolate import PchipInterpolator
        out = PchipInterpolator(x, values)(xs)
    else:  # inspatio: smoothing cubic spline, default smoothing factor (s = number of keyframes)
        from scipy.interpolate import UnivariateSpline
        out = UnivariateSpline(x, values, k=3)(xs)
        if pin_ends:
            out[0], out[-1] = values[0], values[-1]
    return np.asarray(out, dtype=np.float64)


def _rot_x(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    r = np.zeros(a.shape + (3, 3))
    r[..., 0, 0] = 1.0
    r[..., 1, 1], r[..., 1, 2] = c, -s
    r[..., 2, 1], r[..., 2, 2] = s, c
    return r


def _rot_y(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    r = np.zeros(a.shape + (3, 3))
    r[..., 0, 0], r[..., 0, 2] = c, s
    r[..., 1, 1] = 1.0
    r[..., 2, 0], r[..., 2, 2] = -s, c
    return r


def inspatio_relative_poses(pitch_deg, yaw_deg, radius, *, dolly: bool = False,
                            rotation_only: bool = False) -> np.ndarray:
    """Per-frame offsets (N, 4, 4) in the reference camera frame from per-frame pitch/yaw/radius.

    ``radius`` is in metres here (already multiplied by the depth scale). ``dolly`` selects the
    all-zero-angle mode (move ``radius`` forward along the optical axis).
    """
    theta = np.deg2rad(np.asarray(pitch_deg, dtype=np.float64))
    phi = np.deg2rad(np.asarray(yaw_deg, dtype=np.float64))
    r = np.asarray(radius, dtype=np.float64)
    n = theta.shape[0]
    out = np.tile(np.eye(4), (n, 1, 1))
    if dolly:
        out[:, 2, 3] = r
        return out
    out[:, :3, :3] = _rot_y(phi) @ _rot_x(-theta)
    if not rotation_only:
        d = np.stack([np.cos(theta) * np.sin(phi), np.sin(theta), np.cos(theta) * np.cos(phi)], axis=-1)
        pivot = np.zeros((n, 3))
        pivot[:, 2] = r
        out[:, :3, 3] = pivot - r[:, None] * d
    return out


def _check_reference(reference_pose, frames: int) -> np.ndarray:
    if reference_pose is None:
        return np.eye(4)[None]
    ref = np.asarray(reference_pose, dtype=np.float64)
    if ref.shape == (4, 4):
        ref = ref[None]
    if ref.ndim != 3 or ref.shape[1:] != (4, 4) or ref.shape[0] not in (1, frames):
        raise ValueError(f"reference_pose must be (4, 4) or ({frames}, 4, 4), got {ref.shape}")
    return check_poses(ref, "reference pose")


def _check_positive(name: str, value: float) -> float:
    value = float(value)
    if not np.isfinite(value) or value <= 0:
        raise InputError(f"{name} = {value}", f"give a positive, finite {name}")
    return value


def inspatio_orbit_poses(pitch, yaw, radius, reference_pose, look_at_depth: float, frames: int, *,
                         interpolation: str = "smooth", rotation_only: bool = False) -> np.ndarray:
    """World camera-to-world poses (frames, 4, 4) from InSpatio pitch/yaw/radius keyframes.

    ``reference_pose``: (4, 4) camera-to-world of the camera the orbit starts from (None means
    identity), or (frames, 4, 4) to compose every frame with its own source camera.
    ``look_at_depth``: metres that one unit of ``radius`` stands for (the pivot distance for
    radius 1). See the module docstring for the exact geometry.
    """
    frames = int(frames)
    if frames < 1:
        raise InputError(f"trajectory frames = {frames}", "give at least 1 frame")
    depth = _check_positive("look_at_depth", look_at_depth)
    pitch = np.asarray(pitch, dtype=np.float64).reshape(-1)
    yaw = np.asarray(yaw, dtype=np.float64).reshape(-1)
    radius = np.asarray(radius, dtype=np.float64).reshape(-1)
    for label, vals in (("pitch", pitch), ("yaw", yaw), ("radius", radius)):
        if vals.size == 0 or not np.isfinite(vals).all():
            raise InputError(f"trajectory {label} keyframes {vals.tolist()[:8]} are empty or not finite",
                             "give finite numbers on every line")
    ref = _check_reference(reference_pose, frames)
    dolly = not pitch.any() and not yaw.any()
    p = resample_keyframes(pitch, frames, interpolation)
    y = resample_keyframes(yaw, frames, interpolation)
    r = resample_keyframes(radius, frames, interpolation, pin_ends=True) * depth
    rel = inspatio_relative_poses(p, y, r, dolly=dolly, rotation_only=rotation_only)
    return ref @ rel


# ---------------------------------------------------------------------------------------------
# Detection and loading
# ---------------------------------------------------------------------------------------------
# InSpatio-World v1.5 world-to-camera files

def read_tcw(path: str | os.PathLike) -> np.ndarray:
    """The (N, 4, 4) world-to-camera matrices of a ``*tcw.txt`` file (16 numbers a line), checked rigid."""
    path = Path(path)
    rows = _read_rows(path)
    widths = sorted({len(r) for r in rows})
    if widths != [16]:
        raise InputError(f"{path} has lines of {widths} numbers, not 16",
                         "give one world-to-camera 4x4 a line, 16 numbers row-major (InSpatio-World target_tcw.txt)")
    tcw = np.asarray(rows, dtype=np.float64).reshape(-1, 4, 4)
    bad = np.flatnonzero(np.abs(tcw[:, 3, :] - [0.0, 0.0, 0.0, 1.0]).max(axis=1) > 1e-6)
    if bad.size:
        raise InputError(f"{path} line {bad[0] + 1}: the last row is {tcw[bad[0], 3].tolist()}, not 0 0 0 1",
                         "give rigid 4x4 world-to-camera matrices")
    check_poses(np.linalg.inv(tcw), f"{path} (as camera-to-world)")
    return tcw


def inspatio_tcw_poses(tcw: np.ndarray, reference_pose: np.ndarray | None) -> np.ndarray:
    """World camera-to-world poses of world-to-camera matrices given relative to the first source
    camera, which sits at ``reference_pose`` in the world (None: the world frame is that camera's)."""
    ref = np.eye(4) if reference_pose is None else _check_reference(reference_pose, len(tcw))
    return ref @ np.linalg.inv(np.asarray(tcw, dtype=np.float64))


def tcw_text(camera_to_world: np.ndarray, first: np.ndarray | None = None) -> str:
    """``camera_to_world`` (N, 4, 4) as InSpatio-World v1.5 world-to-camera lines, relative to
    ``first`` (a camera-to-world pose; default the first of them): the inverse of :func:`inspatio_tcw_poses`."""
    poses = np.asarray(camera_to_world, dtype=np.float64)
    origin = poses[0] if first is None else np.asarray(first, dtype=np.float64)
    tcw = np.linalg.inv(np.linalg.inv(origin) @ poses)
    tcw[:, 3, :] = [0.0, 0.0, 0.0, 1.0]
    return "".join(" ".join(f"{v:.9g}" for v in m.ravel()) + "\n" for m in tcw)


# ---------------------------------------------------------------------------------------------

def _looks_like_poses(rows: list[list[float]]) -> str | None:
    """For a 3-line file: the pose format it really is, or None (then it is InSpatio keyframes)."""
    widths = {len(r) for r in rows}
    if len(widths) != 1:
        return None
    width = widths.pop()
    arr = np.asarray(rows, dtype=np.float64)
    if width == 8:
        q = np.linalg.norm(arr[:, 4:8], axis=1)
        if np.allclose(q, 1.0, atol=1e-3):
            return "tum"
        return None
    if width in (12, 16):
        m = arr.reshape(-1, 3, 4) if width == 12 else arr.reshape(-1, 4, 4)
        rot = m[:, :3, :3]
        ortho = np.allclose(np.einsum("nji,njk->nik", rot, rot), np.eye(3), atol=1e-3)
        if not ortho:
            return None
        if width == 16 and not np.allclose(m[:, 3, :], [0, 0, 0, 1], atol=1e-6):
            return None
        return "kitti" if width == 12 else "4x4"
    return None


def detect_trajectory_format(path: str | os.PathLike) -> str:
    """'inspatio', 'tcw', 'tum', 'kitti' or '4x4'."""
    path = Path(path)
    rows = _read_rows(path)
    if path.name.lower().endswith(TCW_SUFFIX) and {len(r) for r in rows} == {16}:
        return "tcw"
    if len(rows) == 3:
        return _looks_like_poses(rows) or "inspatio"
    widths = {len(r) for r in rows}
    if widths == {8}:
        return "tum"
    if widths == {12}:
        return "kitti"
    if widths == {16} or (widths == {4} and len(rows) % 4 == 0):
        return "4x4"
    raise InputError(f"trajectory file {path} has {len(rows)} numeric lines of {sorted(widths)} values",
                     "give an InSpatio file (3 lines: pitch, yaw, radius) or one pose a line "
                     "(TUM 8 values, KITTI 12, 4x4 16)")


def load_trajectory(spec: str | os.PathLike, reference_pose: np.ndarray | None = None, *,
                    frames: int = 49, look_at_depth: float = 10.0, fps: float = 10.0,
                    fmt: str = "auto", interpolation: str = "smooth",
                    rotation_only: bool = False) -> Trajectory:
    """Load a trajectory from a file path or a shipped preset name (``x_y_circle_cycle[.txt]``).

    InSpatio keyframe files become ``frames`` poses orbiting the point ``look_at_depth`` metres
    in front of ``reference_pose`` (see the module docstring), with times ``i / fps``. TUM, KITTI
    and 4x4 files are returned as they are, with the file's times (TUM) or ``i / fps``.
    ``fmt``: 'auto', 'inspatio', 'tum', 'kitti' or '4x4'.
    """
    path, name = resolve_trajectory(spec)
    fps = _check_positive("fps", fps)
    if fmt == "auto":
        fmt = detect_trajectory_format(path)
    if fmt == "inspatio":
        pitch, yaw, radius = parse_inspatio_keyframes(path)
        poses = inspatio_orbit_poses(pitch, yaw, radius, reference_pose, look_at_depth, frames,
                                     interpolation=interpolation, rotation_only=rotation_only)
        times = np.arange(len(poses), dtype=np.float64) / fps
        return Trajectory(poses=poses, times=times, name=name)
    if fmt == "tcw":
        poses = inspatio_tcw_poses(read_tcw(path), reference_pose)
        return Trajectory(poses=poses, times=np.arange(len(poses), dtype=np.float64) / fps, name=name)
    if fmt not in POSE_FORMATS:
        raise InputError(f"trajectory format '{fmt}' is unknown",
                         "use auto, inspatio, tcw, tum, kitti or 4x4")
    poses, times = read_poses(path, fmt)
    if times is None:
        times = np.arange(len(poses), dtype=np.float64) / fps
    else:
        times = np.asarray(times, dtype=np.float64)
    return Trajectory(poses=np.asarray(poses, dtype=np.float64), times=times, name=name)


__all__ = [
    "Trajectory", "load_trajectory", "resolve_trajectory", "parse_inspatio_keyframes", "inspatio_orbit_poses",
    "inspatio_relative_poses", "resample_keyframes", "detect_trajectory_format", "read_tcw", "inspatio_tcw_poses",
    "tcw_text",
    "list_presets", "preset_path", "PRESET_DIR",
]
