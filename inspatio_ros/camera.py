"""Pinhole intrinsics, pose helpers and ROS camera-calibration YAML.

Conventions (see docs/CONVENTIONS in the README):
  * camera frame is OpenCV / ROS optical: x right, y down, z forward;
  * a pose is a 4x4 camera-to-world matrix ``c2w`` (float64 on disk, any float in memory);
  * intrinsics are fx, fy, cx, cy in pixels for an image of ``width`` x ``height`` with
    pixel centres at integer coordinates (cx = (width - 1) / 2 for a centred principal point).
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import InputError
from .fileio import atomic_write_text


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of one image size (no distortion: inputs must be rectified)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def __post_init__(self) -> None:
        values = (self.fx, self.fy, self.cx, self.cy)
        if not all(math.isfinite(v) for v in values) or self.fx <= 0 or self.fy <= 0:
            raise InputError(
                f"intrinsics fx={self.fx} fy={self.fy} cx={self.cx} cy={self.cy} are not valid",
                "give positive, finite focal lengths in pixels",
            )
        if self.width <= 0 or self.height <= 0:
            raise InputError(f"image size {self.width}x{self.height} is not valid",
                             "give a positive width and height")

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    @property
    def size(self) -> tuple[int, int]:
        return (self.width, self.height)

    def as_array(self) -> np.ndarray:
        """[fx, fy, cx, cy] as float64."""
        return np.array([self.fx, self.fy, self.cx, self.cy], dtype=np.float64)

    @classmethod
    def from_fov(cls, width: int, height: int, hfov_deg: float) -> "Intrinsics":
        """Square pixels, centred principal point, horizontal field of view in degrees."""
        if not 1.0 <= hfov_deg <= 179.0:
            raise InputError(f"horizontal field of view {hfov_deg} deg is not valid",
                             "give a value between 1 and 179 degrees")
        f = 0.5 * width / math.tan(math.radians(hfov_deg) / 2.0)
        return cls(f, f, (width - 1) / 2.0, (height - 1) / 2.0, int(width), int(height))

    def scaled(self, width: int, height: int) -> "Intrinsics":
        """The same camera sampled at another image size (pixel-centre convention kept)."""
        sx, sy = width / self.width, height / self.height
        return Intrinsics(self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5,
                          (self.cy + 0.5) * sy - 0.5, int(width), int(height))

    @property
    def hfov_deg(self) -> float:
        return math.degrees(2.0 * math.atan(0.5 * self.width / self.fx))


def load_kitti_calib(path: str | os.PathLike, camera: str, width: int | None, height: int | None) -> Intrinsics:
    """Intrinsics from a KITTI ``calib.txt`` (lines ``P0: 12 numbers``, the 3x4 projection of each
    camera): fx, fy, cx, cy of camera ``camera`` (P0 ... P3)."""
    rows = {}
    for line in Path(path).read_text().splitlines():
        if ":" in line:
            key, values = line.split(":", 1)
            rows[key.strip()] = values.split()
    if camera not in rows:
        raise InputError(f"KITTI calibration {path} has no {camera} line (it has {', '.join(sorted(rows))})",
                         "name one of its cameras: --intrinsics calib.txt:P0 (P0 ... P3)")
    try:
        P = np.array([float(v) for v in rows[camera]]).reshape(3, 4)
    except ValueError:
        raise InputError(f"KITTI calibration {path}: {camera} is not 12 numbers", "give a KITTI calib.txt") from None
    if width is None or height is None:
        raise InputError(f"KITTI calibration {path} gives no image size", "the image size comes from the frames")
    return Intrinsics(P[0, 0], P[1, 1], P[0, 2], P[1, 2], int(width), int(height))


def parse_intrinsics(spec: str, width: int | None = None, height: int | None = None) -> Intrinsics:
    """``fx,fy,cx,cy`` (needs width/height), a ROS camera_info.yaml, or a KITTI calib.txt
    (``calib.txt`` reads P0, ``calib.txt:P2`` another camera)."""
    path, _, camera = spec.partition(":") if not os.path.exists(spec) else (spec, "", "")
    if os.path.exists(path):
        with open(path, errors="replace") as f:
            head = f.read(4096)
        if re.search(r"^P[0-3]\s*:", head, re.M):
            return load_kitti_calib(path, camera or "P0", width, height)
        return load_camera_info(path)
    parts = spec.split(",")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 4:
        raise InputError(f"--intrinsics '{spec}' is neither a file nor 'fx,fy,cx,cy'",
                         "pass a camera_info.yaml path or four comma-separated numbers")
    if width is None or height is None:
        raise InputError(f"--intrinsics '{spec}' gives no image size",
                         "the image size comes from the input frames; pass them too")
    fx, fy, cx, cy = values
    # The principal point of a rectified camera lies in its image; one outside is a wrong order
    # or sign (a negative cx built a world that its own frames see through for 44 % of pixels).
    bad = [f"{n} {v:g}" for n, v, ok in (("fx", fx, fx > 0), ("fy", fy, fy > 0), ("cx", cx, 0 <= cx <= width),
                                         ("cy", cy, 0 <= cy <= height)) if not (math.isfinite(v) and ok)]
    if bad:
        raise InputError(f"--intrinsics '{spec}' has {', '.join(bad)} for {width}x{height} frames",
                         f"give fx,fy,cx,cy in pixels: focal lengths > 0, cx in 0..{width}, cy in 0..{height} "
                         f"(e.g. {1.2 * max(width, height):g},{1.2 * max(width, height):g},"
                         f"{(width - 1) / 2:g},{(height - 1) / 2:g})")
    return Intrinsics(fx, fy, cx, cy, int(width), int(height))


def load_camera_info(path: str | os.PathLike) -> Intrinsics:
    """Read a ROS camera calibration YAML (camera_calibration_parsers format) of a rectified
    camera: non-zero distortion is an InputError (read_camera_info reads the lens too)."""
    intr, lens = read_camera_info(path)
    if lens is not None:
        raise InputError(f"camera info file {path} has {lens.model} distortion {list(lens.D)}",
                         "rectify the images first, or build with it (build --intrinsics undistorts the frames)")
    return intr


def parse_calibration(spec: str, width: int | None = None, height: int | None = None):
    """(Intrinsics, lens.Lens or None) of an --intrinsics value: a camera_info.yaml may carry a
    distortion model and D; KITTI calib.txt and fx,fy,cx,cy are pinhole (None)."""
    if os.path.exists(spec):
        with open(spec, errors="replace") as f:
            head = f.read(4096)
        if not re.search(r"^P[0-3]\s*:", head, re.M):
            return read_camera_info(spec)
    return parse_intrinsics(spec, width, height), None


def read_camera_info(path: str | os.PathLike):
    """(Intrinsics, lens.Lens or None) of a ROS camera calibration YAML: distortion_model and
    distortion_coefficients.data (plumb_bob, rational_polynomial, equidistant; lens.py); None
    where there is no distortion (no D, or a plumb_bob / rational_polynomial D of zeros)."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
        k = [float(v) for v in data["camera_matrix"]["data"]]
        width, height = int(data["image_width"]), int(data["image_height"])
    except FileNotFoundError:
        raise InputError(f"camera info file {path} does not exist", "check the path") from None
    except (KeyError, TypeError, ValueError, yaml.YAMLError) as exc:
        raise InputError(f"camera info file {path} is not a ROS camera calibration YAML ({exc})",
                         "it needs image_width, image_height and camera_matrix.data (9 numbers)") from None
    if len(k) != 9:
        raise InputError(f"camera info file {path}: camera_matrix.data has {len(k)} numbers",
                         "camera_matrix.data must hold the 9 numbers of the 3x3 matrix")
    intr = Intrinsics(k[0], k[4], k[2], k[5], width, height)
    dist = data.get("distortion_coefficients", {}) or {}
    coeffs = dist.get("data") or [] if isinstance(dist, dict) else dist
    model = data.get("distortion_model") or ("plumb_bob" if coeffs else None)
    if model is None:
        return intr, None
    from .lens import MODEL_SIZES, Lens

    if model == "plumb_bob" and len(coeffs) == 4:
        coeffs = list(coeffs) + [0.0]               # OpenCV's 4-coefficient form: k3 = 0
    if model == "plumb_bob" and not any(coeffs):
        coeffs = [0.0] * MODEL_SIZES[model]         # an empty or zero D: a rectified camera
    lens = Lens.parse(model, coeffs, f"camera info file {path}: distortion_model / distortion_coefficients")
    return intr, None if lens.is_identity else lens


def camera_info_yaml(intr: Intrinsics, camera_name: str = "camera", lens=None) -> str:
    """The ROS camera calibration YAML text of a camera: a rectified pinhole, or with ``lens``
    (lens.Lens) its distortion model and D (P = [K | 0] either way)."""
    fx, fy, cx, cy = intr.fx, intr.fy, intr.cx, intr.cy
    model, D = ("plumb_bob", [0.0] * 5) if lens is None else (lens.model, list(lens.D))

    def row(values):
        return "[" + ", ".join(repr(float(v)) for v in values) + "]"

    return (
        f"image_width: {intr.width}\n"
        f"image_height: {intr.height}\n"
        f"camera_name: {camera_name}\n"
        "camera_matrix:\n  rows: 3\n  cols: 3\n"
        f"  data: {row([fx, 0, cx, 0, fy, cy, 0, 0, 1])}\n"
        f"distortion_model: {model}\n"
        f"distortion_coefficients:\n  rows: 1\n  cols: {len(D)}\n"
        f"  data: {row(D)}\n"
        "rectification_matrix:\n  rows: 3\n  cols: 3\n"
        f"  data: {row([1, 0, 0, 0, 1, 0, 0, 0, 1])}\n"
        "projection_matrix:\n  rows: 3\n  cols: 4\n"
        f"  data: {row([fx, 0, cx, 0, 0, fy, cy, 0, 0, 0, 1, 0])}\n"
    )


def save_camera_info(path: str | os.PathLike, intr: Intrinsics, camera_name: str = "camera", lens=None) -> None:
    atomic_write_text(path, camera_info_yaml(intr, camera_name, lens))


# ---------------------------------------------------------------------------------------------
# Pose helpers (numpy, float64)
# ---------------------------------------------------------------------------------------------

def rotation_from_rpy(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """R = Rz(yaw) @ Ry(pitch) @ Rx(roll), the ROS (REP-103) fixed-axis convention."""
    cr, sr = math.cos(roll), math.sin(roll)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx


def quaternion_to_matrix(qx: float, qy: float, qz: float, qw: float) -> np.ndarray:
    q = np.array([qx, qy, qz, qw], dtype=np.float64)
    n = np.linalg.norm(q)
    if not np.isfinite(n) or n < 1e-9:
        raise InputError(f"quaternion {tuple(q)} is not a rotation", "give a non-zero, finite quaternion")
    x, y, z, w = q / n
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def rigid_from_xyz_quat(xyz, q_xyzw, what: str) -> np.ndarray:
    """4x4 pose from a translation (x, y, z) and a quaternion (x, y, z, w), e.g. of a ROS Pose or
    Transform. NaN or infinity, or a quaternion far from unit norm (a unit or convention bug in the
    sender), is an InputError naming ``what``; a nearly unit one is normalised."""
    values = [*xyz, *q_xyzw]
    if not all(math.isfinite(v) for v in values):
        raise InputError(f"{what} has NaN or infinite values", "send finite numbers")
    qx, qy, qz, qw = q_xyzw
    n = math.sqrt(qx ** 2 + qy ** 2 + qz ** 2 + qw ** 2)
    if not 0.9 < n < 1.1:
        raise InputError(f"{what} has a quaternion of norm {n:.3g}", "send a unit quaternion")
    return make_pose(quaternion_to_matrix(qx / n, qy / n, qz / n, qw / n), values[:3])


def matrix_to_quaternion(r: np.ndarray) -> np.ndarray:
    """[qx, qy, qz, qw] with qw >= 0 (Shepperd's method, stable for every rotation)."""
    r = np.asarray(r, dtype=np.float64)
    tr = np.trace(r)
    if tr > 0:
        s = math.sqrt(tr + 1.0) * 2
        q = [(r[2, 1] - r[1, 2]) / s, (r[0, 2] - r[2, 0]) / s, (r[1, 0] - r[0, 1]) / s, 0.25 * s]
    elif r[0, 0] > r[1, 1] and r[0, 0] > r[2, 2]:
        s = math.sqrt(1.0 + r[0, 0] - r[1, 1] - r[2, 2]) * 2
        q = [0.25 * s, (r[0, 1] + r[1, 0]) / s, (r[0, 2] + r[2, 0]) / s, (r[2, 1] - r[1, 2]) / s]
    elif r[1, 1] > r[2, 2]:
        s = math.sqrt(1.0 + r[1, 1] - r[0, 0] - r[2, 2]) * 2
        q = [(r[0, 1] + r[1, 0]) / s, 0.25 * s, (r[1, 2] + r[2, 1]) / s, (r[0, 2] - r[2, 0]) / s]
    else:
        s = math.sqrt(1.0 + r[2, 2] - r[0, 0] - r[1, 1]) * 2
        q = [(r[0, 2] + r[2, 0]) / s, (r[1, 2] + r[2, 1]) / s, 0.25 * s, (r[1, 0] - r[0, 1]) / s]
    q = np.array(q)
    q /= np.linalg.norm(q)
    return -q if q[3] < 0 else q


def make_pose(rotation: np.ndarray, translation) -> np.ndarray:
    pose = np.eye(4)
    pose[:3, :3] = rotation
    pose[:3, 3] = np.asarray(translation, dtype=np.float64)
    return pose


def look_at(eye, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """OpenCV camera-to-world pose at ``eye`` looking at ``target`` (image y points away from ``up``)."""
    eye, target, up = (np.asarray(v, dtype=np.float64) for v in (eye, target, up))
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-9:
        raise ValueError("look_at: viewing direction is parallel to up")
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return make_pose(np.stack([x, y, z], axis=1), eye)


def invert_pose(pose: np.ndarray) -> np.ndarray:
    """Inverse of rigid 4x4 transform(s), batched over leading dimensions."""
    pose = np.asarray(pose, dtype=np.float64)
    r = pose[..., :3, :3]
    t = pose[..., :3, 3]
    inv = np.zeros_like(pose)
    rt = np.swapaxes(r, -1, -2)
    inv[..., :3, :3] = rt
    inv[..., :3, 3] = -np.einsum("...ij,...j->...i", rt, t)
    inv[..., 3, 3] = 1.0
    return inv


def check_poses(poses: np.ndarray, source: str) -> np.ndarray:
    """Validate an (N, 4, 4) array of rigid camera-to-world poses; return it as float64."""
    poses = np.asarray(poses, dtype=np.float64)
    if poses.ndim != 3 or poses.shape[1:] != (4, 4):
        raise InputError(f"{source}: poses have shape {poses.shape}", "expected N 4x4 matrices")
    bad = ~np.isfinite(poses).all(axis=(1, 2))
    if bad.any():
        raise InputError(f"{source}: pose {int(np.argmax(bad))} holds NaN or infinity",
                         "fix or remove that line of the pose file")
    r = poses[:, :3, :3]
    err = np.abs(np.einsum("nji,njk->nik", r, r) - np.eye(3)).max(axis=(1, 2))
    det = np.linalg.det(r)
    bad = (err > 1e-3) | (det < 0.99)
    if bad.any():
        i = int(np.argmax(bad))
        raise InputError(f"{source}: pose {i} is not a rotation (|R^T R - I| = {err[i]:.2e}, det {det[i]:.3f})",
                         "poses must be rigid camera-to-world transforms")
    return poses
