"""What the renderer takes and gives: settings, a batch of cameras, a point cloud on a device,
the rendered images; and the device choice ("auto": CUDA when there is one)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from ..camera import Intrinsics
from ..checked_settings import CheckedSettings, setting


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass(frozen=True)
class RenderSettings(CheckedSettings):
    """Knobs of the renderer (defaults suit worlds built from video frames); the node's
    ``render.<field>`` parameters. Checked when made: a bad value is an InputError."""

    near: float = setting(0.05, "points nearer than this are not drawn", "m", gt=0.0)
    depth_tolerance: float = setting(0.02, "relative: a surfel must be this much nearer to win a pixel",
                                     ge=0.0, lt=1.0)
    max_splat_px: int = setting(4, "cap on the projected surfel radius searched (0: no surfel expansion)", "px",
                                ge=0, le=64)
    hole_fill_levels: int = setting(5, "push-pull levels: fills holes up to ~2**levels pixels (0: no hole filling)",
                                    ge=0, le=16)
    background: tuple[int, int, int] = setting((0, 0, 0), "RGB where nothing is drawn or filled", ge=0, le=255)


@dataclass
class Cameras:
    """A batch of pinhole cameras of one image size. ``K`` (B,3,3), ``c2w`` (B,4,4) OpenCV."""

    K: torch.Tensor
    c2w: torch.Tensor
    width: int
    height: int

    @classmethod
    def from_intrinsics(cls, intrinsics: Intrinsics | Sequence[Intrinsics], c2w,
                        device: str | torch.device = "cpu") -> "Cameras":
        c2w = torch.as_tensor(np.asarray(c2w, dtype=np.float64)).reshape(-1, 4, 4)
        intr_list = [intrinsics] * len(c2w) if isinstance(intrinsics, Intrinsics) else list(intrinsics)
        if len(intr_list) != len(c2w):
            raise ValueError(f"{len(intr_list)} intrinsics for {len(c2w)} poses")
        sizes = {(i.width, i.height) for i in intr_list}
        if len(sizes) != 1:
            raise ValueError(f"one render batch needs one image size, got {sorted(sizes)}")
        width, height = sizes.pop()
        K = torch.as_tensor(np.stack([i.K for i in intr_list]))
        return cls(K.to(device, torch.float32), c2w.to(device, torch.float32), width, height)

    def __len__(self) -> int:
        return int(self.K.shape[0])

    def to(self, device) -> "Cameras":
        return Cameras(self.K.to(device), self.c2w.to(device), self.width, self.height)


@dataclass
class RenderOutput:
    rgb: torch.Tensor        # (B,H,W,3) uint8
    depth: torch.Tensor      # (B,H,W) float32 metres, NaN unknown
    coverage: torch.Tensor   # (B,H,W) bool: True = seen by the world, False = hole-filled/empty
    point_index: torch.Tensor | None = None  # (B,H,W) int64 point drawn at each pixel, -1 none
    need_counts: torch.Tensor | None = None  # (max_splat_px,) int64 pixels each splat ring examined

    def numpy(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.rgb.cpu().numpy(), self.depth.cpu().numpy(), self.coverage.cpu().numpy()


@dataclass
class PointCloud:
    """Points on one device, ready to render. Static points have t_start=-inf, t_end=+inf."""

    xyz: torch.Tensor        # (N,3) float32
    rgb: torch.Tensor        # (N,3) uint8
    radius: torch.Tensor     # (N,) float32 metres
    normal: torch.Tensor     # (N,3) float32 unit, or zero = faces the camera
    t_start: torch.Tensor    # (N,) float64
    t_end: torch.Tensor      # (N,) float64
    has_dynamic: bool = field(default=False)
    # (N,8) float32 rows x y z nx ny nz radius normal_known, derived from the fields above: the
    # z-buffer decode fetches one row per pixel instead of three scattered gathers.
    surfel: torch.Tensor | None = None

    def __post_init__(self):
        if self.surfel is None:
            known = (self.normal != 0).any(-1, keepdim=True).to(torch.float32)
            self.surfel = torch.cat([self.xyz, self.normal, self.radius[:, None], known], 1).contiguous()

    @classmethod
    def from_arrays(cls, xyz, rgb, radius, normal=None, t_start=None, t_end=None,
                    device: str | torch.device = "cpu") -> "PointCloud":
        n = len(xyz)
        device = torch.device(device)
        xyz_t = torch.as_tensor(np.ascontiguousarray(xyz, dtype=np.float32)).to(device)
        rgb_t = torch.as_tensor(np.ascontiguousarray(rgb, dtype=np.uint8)).to(device)
        rad_t = torch.as_tensor(np.ascontiguousarray(radius, dtype=np.float32)).to(device)
        if normal is None:
            nrm_t = torch.zeros((n, 3), dtype=torch.float32, device=device)
        else:
            nrm_t = torch.as_tensor(np.asarray(normal)).to(device=device, dtype=torch.float32)
            if normal.dtype == np.int8:  # stored as int8 x 127 in world files
                nrm_t = nrm_t / 127.0
        ts = np.full(n, -np.inf) if t_start is None else np.asarray(t_start, dtype=np.float64)
        te = np.full(n, np.inf) if t_end is None else np.asarray(t_end, dtype=np.float64)
        dynamic = bool(np.isfinite(ts).any() or np.isfinite(te).any())
        return cls(xyz_t, rgb_t, rad_t, nrm_t, torch.as_tensor(ts).to(device),
                   torch.as_tensor(te).to(device), dynamic)

    def __len__(self) -> int:
        return int(self.xyz.shape[0])

    def take(self, index) -> "PointCloud":
        """The points at ``index`` (a slice, index tensor or boolean mask), every field alike; a
        slice gives views."""
        return PointCloud(self.xyz[index], self.rgb[index], self.radius[index], self.normal[index],
                          self.t_start[index], self.t_end[index], self.has_dynamic, self.surfel[index])
