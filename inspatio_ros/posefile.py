"""Camera pose files: TUM, KITTI and per-frame 4x4 (InSpatio-World / generic).

All readers return OpenCV camera-to-world 4x4 matrices (float64) and, where the format has them,
timestamps in seconds.

* TUM: ``timestamp tx ty tz qx qy qz qw`` per line, ``#`` comments.
* KITTI: 12 numbers per line, the row-major 3x4 ``[R|t]`` camera-to-world.
* 4x4: 16 numbers per line (row-major), or blocks of four lines of four numbers.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .camera import check_poses, make_pose, matrix_to_quaternion, quaternion_to_matrix
from .errors import InputError
from .fileio import atomic_write_text


def read_numeric_rows(path: str | os.PathLike, kind: str = "pose file",
                      read_fix: str = "give a TUM, KITTI or 4x4-per-frame text file",
                      empty_fix: str = "give a file with one pose per line",
                      finite: bool = False) -> list[list[float]]:
    """Numbers of a text file, one list per non-empty line (``#`` comments, commas allowed).

    Errors name the file (as ``kind``), the line and the fix; ``finite`` also rejects NaN/inf.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputError(f"{kind} {path} does not exist", "check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{kind} {path} cannot be read as text ({exc})", read_fix) from None
    rows = []
    for lineno, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].replace(",", " ").strip()
        if not line:
            continue
        try:
            values = [float(v) for v in line.split()]
        except ValueError:
            raise InputError(f"{kind} {path}, line {lineno}: '{line[:60]}' is not numbers",
                             "every non-comment line must hold only numbers") from None
        if finite and not all(np.isfinite(values)):
            raise InputError(f"{kind} {path}, line {lineno} holds NaN or infinity", "give finite numbers")
        rows.append(values)
    if not rows:
        raise InputError(f"{kind} {path} holds no numbers", empty_fix)
    return rows


def detect_format(path: str | os.PathLike) -> str:
    """'tum', 'kitti' or '4x4' from the number of values per line."""
    rows = read_numeric_rows(path)
    widths = {len(r) for r in rows}
    if widths == {8}:
        return "tum"
    if widths == {12}:
        return "kitti"
    if widths == {16} or widths == {4}:
        return "4x4"
    raise InputError(f"pose file {path} has lines of {sorted(widths)} values",
                     "TUM has 8 per line, KITTI 12, 4x4 files 16 (or 4 per line in blocks of 4)")


def read_poses(path: str | os.PathLike, fmt: str = "auto") -> tuple[np.ndarray, np.ndarray | None]:
    """Read camera-to-world poses; returns (poses (N,4,4), timestamps (N,) or None)."""
    path = Path(path)
    if fmt == "auto":
        fmt = detect_format(path)
    rows = read_numeric_rows(path)
    times = None
    if fmt == "tum":
        if any(len(r) != 8 for r in rows):
            raise InputError(f"pose file {path} is not TUM", "TUM lines are: t tx ty tz qx qy qz qw")
        arr = np.array(rows)
        times = arr[:, 0]
        poses = np.stack([make_pose(quaternion_to_matrix(*r[4:8]), r[1:4]) for r in arr])
    elif fmt == "kitti":
        if any(len(r) != 12 for r in rows):
            raise InputError(f"pose file {path} is not KITTI", "KITTI lines hold 12 numbers (3x4 row-major)")
        arr = np.array(rows).reshape(-1, 3, 4)
        poses = np.tile(np.eye(4), (len(arr), 1, 1))
        poses[:, :3, :] = arr
    elif fmt == "4x4":
        flat = np.array([v for r in rows for v in r])
        if flat.size % 16:
            raise InputError(f"pose file {path} holds {flat.size} numbers, not a multiple of 16",
                             "a 4x4 pose file holds 16 numbers per pose")
        poses = flat.reshape(-1, 4, 4)
        if not np.allclose(poses[:, 3, :], [0, 0, 0, 1], atol=1e-6):
            raise InputError(f"pose file {path}: the last row of a 4x4 pose is not 0 0 0 1",
                             "give camera-to-world homogeneous matrices")
    else:
        raise InputError(f"pose format '{fmt}' is unknown", "use auto, tum, kitti or 4x4")
    return check_poses(poses, str(path)), times


def tum_text(poses: np.ndarray, times) -> str:
    lines = ["# timestamp tx ty tz qx qy qz qw (camera-to-world, OpenCV optical frame)"]
    for t, pose in zip(times, poses):
        q = matrix_to_quaternion(pose[:3, :3])
        vals = [t, *pose[:3, 3], *q]
        lines.append(" ".join(f"{v:.9f}" for v in vals))
    return "\n".join(lines) + "\n"


def kitti_text(poses: np.ndarray) -> str:
    return "".join(" ".join(f"{v:.9e}" for v in pose[:3, :].reshape(-1)) + "\n" for pose in poses)


def matrix4x4_text(poses: np.ndarray) -> str:
    return "".join(" ".join(f"{v:.9e}" for v in pose.reshape(-1)) + "\n" for pose in poses)


def write_poses(path: str | os.PathLike, poses: np.ndarray, times=None, fmt: str = "tum") -> None:
    poses = check_poses(poses, str(path))
    if fmt == "tum":
        if times is None:
            raise ValueError("TUM pose files need timestamps")
        text = tum_text(poses, times)
    elif fmt == "kitti":
        text = kitti_text(poses)
    elif fmt == "4x4":
        text = matrix4x4_text(poses)
    else:
        raise ValueError(f"unknown pose format {fmt}")
    atomic_write_text(path, text)
