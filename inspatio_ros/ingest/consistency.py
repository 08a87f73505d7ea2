"""View consistency of a build's depth maps: points other fused frames see through (a wrong depth
or something that moved) and the moving regions they reveal, carried to the frames around."""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from ..camera import Intrinsics

if TYPE_CHECKING:
    from .fusion import FusionSettings


def _project_into(d_i: np.ndarray, c2w_i: np.ndarray, c2w_j: np.ndarray, intr: Intrinsics, sky_distance: float):
    """Frame i's depth map as points seen from camera j: their depth there and the pixel they
    fall on (row, col, inside mask)."""
    H, W = d_i.shape
    v, u = np.mgrid[0:H, 0:W].astype(np.float64)
    d = np.where(np.isposinf(d_i), sky_distance, d_i)
    known = np.isfinite(d) & (d > 0)
    d = np.where(known, d, 0.0)
    pc = np.stack([(u - intr.cx) / intr.fx * d, (v - intr.cy) / intr.fy * d, d], -1)
    rel = np.linalg.inv(c2w_j) @ c2w_i
    pj = pc @ rel[:3, :3].T + rel[:3, 3]
    z = pj[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        col = np.round(pj[..., 0] / z * intr.fx + intr.cx)
        row = np.round(pj[..., 1] / z * intr.fy + intr.cy)
    inside = known & (z > 1e-6) & (col >= 0) & (col < W) & (row >= 0) & (row < H)
    col = np.where(inside, col, 0).astype(np.int64)
    row = np.where(inside, row, 0).astype(np.int64)
    return z, row, col, inside


def seen_through(depths: dict[int, np.ndarray], c2w: dict[int, np.ndarray], intr: Intrinsics,
                 settings: FusionSettings, device: torch.device | str | None = None) -> dict[int, np.ndarray]:
    """Per frame, how many neighbouring frames see *through* each pixel's point: at the pixel
    where the point projects, that frame measured a surface clearly farther away (or sky). A
    static, correctly measured surface is never seen through; a wrong depth (a floater in front
    of the scene) or a moving object (it left that place) is. Neighbour depths are taken as the
    nearest of a 3x3 window, so a point on the edge of a foreground object is not condemned by
    rounding onto the background beside it.

    Runs on ``device`` (default: the CPU) in float32: 2 x check_neighbours projections of every
    pixel per frame (46 KITTI frames at 1226x370 x 32 neighbours: 60 s in float64 numpy on the
    H100 machine's CPU). The depth maps stay on the device for the whole check."""
    frames = sorted(depths)
    s = settings
    dev = torch.device(device) if device is not None else torch.device("cpu")
    H, W = depths[frames[0]].shape
    inf = torch.tensor(float("inf"), device=dev)
    nearest, has_any, known_depth = {}, {}, {}
    for j in frames:
        d = torch.from_numpy(np.ascontiguousarray(depths[j], dtype=np.float32)).to(dev)
        d = torch.where(torch.isposinf(d), torch.full_like(d, s.sky_distance), d)
        measured = torch.isfinite(d) & (d > 0)
        known_depth[j] = (torch.where(measured, d, torch.zeros_like(d)), measured)
        dj = torch.where(measured, d, inf)                 # unknown: no evidence (inf, then ignored)
        # 3x3 minimum / any; max_pool2d leaves the border out of the window, as a clamped window would.
        nearest[j] = (-torch.nn.functional.max_pool2d(-dj[None, None], 3, 1, 1))[0, 0]
        has_any[j] = torch.nn.functional.max_pool2d(measured[None, None].float(), 3, 1, 1)[0, 0] > 0
    v, u = torch.meshgrid(torch.arange(H, device=dev, dtype=torch.float32),
                          torch.arange(W, device=dev, dtype=torch.float32), indexing="ij")
    rays = torch.stack([(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, torch.ones_like(u)], -1)
    keep = 1.0 - s.check_tolerance
    out = {}
    for k, i in enumerate(frames):
        d, measured = known_depth[i]
        points = (rays * d[..., None]).reshape(-1, 3)      # camera i's frame
        count = torch.zeros(H * W, dtype=torch.int32, device=dev)
        for j in frames[max(0, k - s.check_neighbours):k + s.check_neighbours + 1]:
            if j == i:
                continue
            rel = torch.from_numpy((np.linalg.inv(c2w[j]) @ c2w[i]).astype(np.float32)).to(dev)
            pj = points @ rel[:3, :3].T + rel[:3, 3]
            z = pj[:, 2]
            safe_z = torch.where(z > 1e-6, z, torch.ones_like(z))
            col = torch.round(pj[:, 0] / safe_z * intr.fx + intr.cx)
            row = torch.round(pj[:, 1] / safe_z * intr.fy + intr.cy)
            inside = measured.reshape(-1) & (z > 1e-6) & (col >= 0) & (col < W) & (row >= 0) & (row < H)
            flat = torch.where(inside, row * W + col, torch.zeros_like(col)).long()
            there = nearest[j].reshape(-1)[flat]
            count += (inside & has_any[j].reshape(-1)[flat] & torch.isfinite(there) & (z < there * keep)).int()
        out[i] = count.reshape(H, W).cpu().numpy()
    return out


def large_regions(mask: np.ndarray, min_area: float) -> np.ndarray:
    """The connected regions of ``mask`` covering at least ``min_area`` of the image."""
    from scipy import ndimage

    if not mask.any():
        return mask
    labels, n = ndimage.label(mask)
    area = np.bincount(labels.ravel(), minlength=n + 1)
    big = area >= max(8.0, min_area * mask.size)
    big[0] = False
    return big[labels]


def spread_moving(moving: dict[int, np.ndarray], depths: dict[int, np.ndarray], c2w: dict[int, np.ndarray],
                  intr: Intrinsics, settings: FusionSettings, colours: dict[int, np.ndarray], reach: int = 3,
                  depth_tolerance: float = 0.35, colour_tolerance: float = 30.0) -> dict[int, np.ndarray]:
    """Moving regions carried to the fused frames ``reach`` either side: a neighbour's moving
    pixels, projected into this frame with their depth, mark the pixels where this frame sees
    something of about that depth and colour (the object has moved little between nearby
    frames). A car driving ahead is seen through only by later frames; the last frames learn it
    this way. ``colours``: the frames' RGB (HxWx3 uint8) or grey (HxW)."""
    from scipy import ndimage

    frames = sorted(depths)
    out = {}
    for k, i in enumerate(frames):
        mask = moving.get(i, np.zeros(depths[i].shape, bool)).copy()
        d_i = depths[i]
        # Only the neighbours' own detections are carried (carrying carried masks on would creep
        # along the road the object stands on, one frame at a time).
        for j in frames[max(0, k - reach):k + reach + 1]:
            mj = moving.get(j)
            if j == i or mj is None or not mj.any():
                continue
            z, row, col, inside = _project_into(np.where(mj, depths[j], np.nan), c2w[j], c2w[i], intr,
                                                settings.sky_distance)
            there = d_i[row, col]
            c_i = colours[i].reshape(d_i.shape + (-1,)).astype(np.float32)
            c_j = colours[j].reshape(d_i.shape + (-1,)).astype(np.float32)
            alike = np.abs(c_i[row, col] - c_j).mean(-1) < colour_tolerance
            near = inside & mj & np.isfinite(there) & (np.abs(there - z) < depth_tolerance * z) & alike
            mask[row[near], col[near]] = True
        if mask.any():
            mask = ndimage.binary_fill_holes(ndimage.binary_closing(mask, iterations=2)) & np.isfinite(d_i)
        out[i] = mask
    return out
