"""The sky: a colour per view direction behind the Gaussians, learned with them.

Why: the build places unknown (infinite) depth on a far shell of surfels (ingest/fusion.py
``sky_distance``), sparse and each as wide as a pixel seen from its frame. Turned into Gaussians
they are huge and faint, drawn in every tile of every frame (the slowest kind of Gaussian for a
tile rasterizer), they smear into blotches as they grow to close the gaps, and a camera moved
sideways sees them shift (they are 1 km away, not at infinity). The sky is light arriving from a
direction, whatever the camera's position: so it is a texture over the sphere of directions,
composited where the Gaussians leave a pixel uncovered (colour = Σ wᵢ cᵢ + (1 - Σ wᵢ) sky(d)),
and the far shell is left out of the Gaussians.

The texture is equirectangular, SKY_ROWS x SKY_COLUMNS texels (5.6 degrees each: the sky's
brightness changes slowly with elevation and a sun glow spans tens of degrees), in a frame of the
world's own: ``up`` the source cameras' mean up (-y in OpenCV), azimuth 0 along their mean viewing
direction. Rows go from straight up (row 0) to straight down, columns once round the horizon
(wrapping). Sampling is bilinear, so the colour is smooth and differentiable in the texels.

Stored in the world's ``info["sky"]`` (format version 3 unchanged; readers without a sky model
ignore it and draw the background colour there): ``{"model": "equirectangular", "up": [3],
"forward": [3], "rgb": rows x columns x 3 in 0..1}``. Initialised from the far shell's colours by
direction (the build coloured it from the frames), black without a shell (initial_sky).
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError

SKY_ROWS = 32
SKY_COLUMNS = 64
SKY_MODEL = "equirectangular"
# Surfels at least this share of the build's sky distance from every source camera are the far
# shell (the same rule as the optimizer's depth supervision: optimize.depth_targets).
SKY_SHELL_FRACTION = 0.5
# In the CPU renderer's surfel drawing, empty areas (nothing drawn before hole filling) at least
# 2 x SKY_GAP_PX + 1 pixels across are sky; narrower ones are gaps between surfels, left to the
# hole filling (render/renderer.py).
SKY_GAP_PX = 2


def sky_distance(world) -> float:
    """Metres: where the build placed infinite depth (its fusion setting, 1000 m by default)."""
    fusion = ((world.provenance or {}).get("settings", {}) or {}).get("fusion", {}) or {}
    return float(fusion.get("sky_distance", 1000.0))


def sky_shell(world, xyz) -> np.ndarray:
    """(N,) bool: which of the points ``xyz`` lie on the build's far shell (at least
    SKY_SHELL_FRACTION of the sky distance from every source camera)."""
    points = torch.as_tensor(np.asarray(xyz, np.float32))
    centres = torch.as_tensor(np.asarray(world.frame_c2w[:, :3, 3], np.float32))
    if len(points) == 0:
        return np.zeros(0, bool)
    nearest = torch.cat([torch.cdist(chunk, centres).min(1).values for chunk in points.split(1 << 16)])
    return (nearest >= SKY_SHELL_FRACTION * sky_distance(world)).numpy()


def camera_frame(c2w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(up, forward) unit vectors: the cameras' mean up (-y) and their mean viewing direction (+z)
    made perpendicular to it (any perpendicular where they look straight up or down)."""
    c2w = np.asarray(c2w, np.float64)
    up = -c2w[:, :3, 1].mean(0)
    up = up / max(np.linalg.norm(up), 1e-12) if np.linalg.norm(up) > 1e-6 else np.array([0.0, -1.0, 0.0])
    forward = c2w[:, :3, 2].mean(0)
    forward = forward - up * (forward @ up)
    if np.linalg.norm(forward) < 1e-6:
        forward = np.cross(up, [1.0, 0.0, 0.0] if abs(up[0]) < 0.9 else [0.0, 1.0, 0.0])
    return up, forward / np.linalg.norm(forward)


def pixel_directions(K: torch.Tensor, c2w: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """(B,H,W,3) unit world directions through the pixel centres (integer coordinates, as camera.py)
    of cameras ``K`` (B,3,3) and ``c2w`` (B,4,4) OpenCV."""
    dtype, device = c2w.dtype, c2w.device
    v, u = torch.meshgrid(torch.arange(height, dtype=dtype, device=device),
                          torch.arange(width, dtype=dtype, device=device), indexing="ij")
    K = K.to(device, dtype)
    x = (u[None] - K[:, 0, 2, None, None]) / K[:, 0, 0, None, None]
    y = (v[None] - K[:, 1, 2, None, None]) / K[:, 1, 1, None, None]
    rays = torch.stack([x, y, torch.ones_like(x)], -1)                      # (B,H,W,3) camera frame
    d = torch.einsum("bij,bhwj->bhwi", c2w[:, :3, :3], rays)
    return d / d.norm(dim=-1, keepdim=True)


class SkyMap(torch.nn.Module):
    """The learned sky texture and its frame; ``forward(directions)`` gives colours (…,3) 0..1."""

    def __init__(self, rgb: torch.Tensor, up, forward):
        super().__init__()
        self.rgb = torch.nn.Parameter(torch.as_tensor(rgb, dtype=torch.float32).clone())      # (rows, columns, 3)
        up = torch.as_tensor(np.asarray(up, np.float64), dtype=torch.float32)
        forward = torch.as_tensor(np.asarray(forward, np.float64), dtype=torch.float32)
        self.register_buffer("up", up)
        self.register_buffer("ahead", forward)
        self.register_buffer("left", torch.linalg.cross(up, forward))

    def forward(self, directions: torch.Tensor) -> torch.Tensor:
        shape = directions.shape[:-1]
        d = directions.reshape(-1, 3).to(self.up)
        elevation = torch.asin((d @ self.up).clamp(-1, 1))                  # -π/2 (down) .. π/2 (up)
        azimuth = torch.atan2(d @ self.left, d @ self.ahead)               # -π .. π
        columns = self.rgb.shape[1]
        # One wrapped column each side so that bilinear sampling joins across azimuth ±π
        # (align_corners=False: column i's centre is at (2i + 1) / columns - 1).
        texture = torch.cat([self.rgb[:, -1:], self.rgb, self.rgb[:, :1]], 1).permute(2, 0, 1)[None]
        x = (azimuth / math.pi + 1) * columns / (columns + 2) + 2 / (columns + 2) - 1
        y = -elevation / (math.pi / 2)
        grid = torch.stack([x, y], -1)[None, None]                           # (1,1,P,2)
        out = F.grid_sample(texture, grid, mode="bilinear", padding_mode="border", align_corners=False)
        return out[0, :, 0].T.reshape(*shape, 3)

    def to_info(self) -> dict:
        return {"model": SKY_MODEL, "up": [round(float(x), 7) for x in self.up],
                "forward": [round(float(x), 7) for x in self.ahead],
                "rgb": np.round(self.rgb.detach().clamp(0, 1).cpu().double().numpy(), 4).tolist()}

    @classmethod
    def from_info(cls, info: dict, source: str = "the world") -> "SkyMap":
        """A stored sky (``info["sky"]``); a malformed one is one InputError."""
        try:
            rgb = np.asarray(info["rgb"], np.float64)
            up, forward = np.asarray(info["up"], np.float64), np.asarray(info["forward"], np.float64)
            ok = (info.get("model") == SKY_MODEL and rgb.ndim == 3 and rgb.shape[2] == 3 and min(rgb.shape[:2]) >= 1
                  and np.isfinite(rgb).all() and up.shape == (3,) and forward.shape == (3,)
                  and abs(np.linalg.norm(up) - 1) < 1e-3 and abs(np.linalg.norm(forward) - 1) < 1e-3
                  and abs(up @ forward) < 1e-3)
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise InputError(f"{source}: its sky model (info.sky) is damaged",
                             "optimize the world again ('inspatio-ros optimize'), or remove info.sky to draw "
                             "the background colour there")
        return cls(torch.as_tensor(rgb, dtype=torch.float32), up, forward)


def world_sky(world) -> SkyMap | None:
    """The world's stored sky, or None for a world without one."""
    info = (world.info or {}).get("sky")
    return None if info is None else SkyMap.from_info(info, "the world")


def initial_sky(world, shell_xyz: np.ndarray, shell_rgb: np.ndarray) -> SkyMap:
    """A sky for ``world``'s cameras, each texel the mean colour of the far-shell surfels
    (``shell_xyz``, ``shell_rgb`` u8) in its direction from the cameras' centroid, texels with
    none the shell's mean. Without a shell (a world that saw no sky: indoors), black, the
    renderers' default background: the Gaussians start as they would be drawn without a sky."""
    up, forward = camera_frame(world.frame_c2w)
    sky = SkyMap(torch.zeros((SKY_ROWS, SKY_COLUMNS, 3)), up, forward)
    if len(shell_xyz) == 0:
        return sky
    centre = np.asarray(world.frame_c2w[:, :3, 3], np.float64).mean(0)
    d = np.asarray(shell_xyz, np.float64) - centre
    d /= np.linalg.norm(d, axis=1, keepdims=True).clip(1e-12)
    left = np.cross(up, forward)
    elevation = np.arcsin(np.clip(d @ up, -1, 1))
    azimuth = np.arctan2(d @ left, d @ forward)
    row = np.clip(((np.pi / 2 - elevation) / np.pi * SKY_ROWS).astype(int), 0, SKY_ROWS - 1)
    col = np.clip(((azimuth + np.pi) / (2 * np.pi) * SKY_COLUMNS).astype(int), 0, SKY_COLUMNS - 1)
    cell = row * SKY_COLUMNS + col
    colour = np.asarray(shell_rgb, np.float64) / 255.0
    total = np.zeros((SKY_ROWS * SKY_COLUMNS, 3))
    np.add.at(total, cell, colour)
    count = np.bincount(cell, minlength=SKY_ROWS * SKY_COLUMNS)[:, None]
    texture = np.where(count > 0, total / np.maximum(count, 1), colour.mean(0))
    with torch.no_grad():
        sky.rgb.copy_(torch.as_tensor(texture.reshape(SKY_ROWS, SKY_COLUMNS, 3), dtype=torch.float32))
    return sky


def composite(rgb: torch.Tensor, coverage: torch.Tensor, sky: SkyMap, K: torch.Tensor, c2w: torch.Tensor) -> torch.Tensor:
    """(B,H,W,3) float: the Gaussians' colour ``rgb`` (drawn over black) with the sky behind, in
    proportion to what they leave uncovered (1 - ``coverage``)."""
    B, H, W = coverage.shape
    return rgb + (1 - coverage)[..., None] * sky(pixel_directions(K, c2w.to(rgb.dtype), W, H))


def _erode(mask: torch.Tensor, radius: int, dim: int) -> torch.Tensor:
    """``mask`` (B,H,W) bool eroded along ``dim`` by ``radius`` pixels (outside counts as set)."""
    out = mask.clone()
    n = mask.shape[dim]
    for k in range(1, radius + 1):
        if k >= n:
            break
        out.narrow(dim, 0, n - k).logical_and_(mask.narrow(dim, k, n - k))
        out.narrow(dim, k, n - k).logical_and_(mask.narrow(dim, 0, n - k))
    return out


def open_sky(coverage: torch.Tensor) -> torch.Tensor:
    """(B,H,W) bool: the pixels of the surfel drawing's empty areas (``coverage`` False: nothing
    drawn, before hole filling) that are not narrow gaps: the empty mask opened (eroded, then
    dilated) by a (2 SKY_GAP_PX + 1)² square. Boolean shifts, not pooling: ~1 ms at 640x360."""
    empty = ~coverage
    core = _erode(_erode(empty, SKY_GAP_PX, 1), SKY_GAP_PX, 2)
    grown = ~_erode(_erode(~core, SKY_GAP_PX, 1), SKY_GAP_PX, 2)       # dilation: the complement eroded
    return grown & empty


# The surfel renderer's sky is computed every SKY_DRAW_STRIDE pixels and interpolated: a texel
# spans tens of pixels, and per-pixel directions cost ~30 ms a 640x360 frame on one core.
SKY_DRAW_STRIDE = 4


def sky_image(sky: SkyMap, K: torch.Tensor, c2w: torch.Tensor, width: int, height: int,
              stride: int = SKY_DRAW_STRIDE) -> torch.Tensor:
    """(B,H,W,3) float 0..1: the sky seen by cameras ``K``, ``c2w``, evaluated on a grid every
    ``stride`` pixels (cell centres) and interpolated bilinearly to every pixel."""
    w, h = max(1, math.ceil(width / stride)), max(1, math.ceil(height / stride))
    K = K.to(torch.float32).clone()
    sx, sy = w / width, h / height
    K[:, 0, 0] *= sx
    K[:, 1, 1] *= sy
    K[:, 0, 2] = (K[:, 0, 2] + 0.5) * sx - 0.5
    K[:, 1, 2] = (K[:, 1, 2] + 0.5) * sy - 0.5
    with torch.no_grad():
        small = sky(pixel_directions(K, c2w.to(torch.float32), w, h)).clamp(0, 1)      # (B,h,w,3)
        full = F.interpolate(small.permute(0, 3, 1, 2), size=(height, width), mode="bilinear", align_corners=False)
    return full.permute(0, 2, 3, 1)


def fill_empty(rgb: torch.Tensor, empty: torch.Tensor, sky: SkyMap, K: torch.Tensor, c2w: torch.Tensor) -> torch.Tensor:
    """(B,H,W,3) uint8: ``rgb`` with the sky's colour (sky_image) where ``empty`` (B,H,W) is True
    (the surfel drawing's wide empty areas)."""
    if not bool(empty.any()):
        return rgb
    B, H, W = empty.shape
    colour = (sky_image(sky.to(rgb.device), K.to(rgb.device), c2w.to(rgb.device), W, H) * 255).round().to(rgb.dtype)
    return torch.where(empty[..., None], colour, rgb)
