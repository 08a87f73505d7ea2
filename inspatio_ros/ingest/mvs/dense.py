"""Dense depth of video frames: the plane sweep, its filters and the propagation, frame by frame
(dense_depth), and what it found on the way (DenseDepth: moving objects, the road plane).
Coverage and accuracy: docs/QUALITY.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ...camera import Intrinsics
from ...video import resize_depth
from ..road import fit_road_plane, road_inverse_depth, road_normal_in_camera, road_region_points
from .filters import fill_planar_holes, fill_small_holes, moving_object_mask, near_side_of_depth_steps, sky_mask
from .propagate import propagate_depth
from .settings import MVSSettings
from .sweep import PlaneSweep, depth_bounds


@dataclass(frozen=True)
class DenseDepth:
    """What dense_depth measured, at the frames' size.

    ``maps``: per frame, (depth, confidence): float32 HxW depth (metres or pose units; NaN
    unknown, +inf sky) and confidence (0..1, 0 where unknown). ``moving``: per frame that had
    sources, the mask (HxW bool) of objects found moving along with the camera (their depth, from
    where they stand on the road, is in the map). ``road_plane``: the fitted road plane
    (unit normal, distance) in camera coordinates, None when none was fitted. ``ceiling``: per
    pixel (HxW, NaN where none) the farthest depth a static point may have, MVSSettings.under_road
    beyond the road plane where it is within reach; None without a road plane."""

    maps: dict[int, tuple[np.ndarray, np.ndarray]]
    moving: dict[int, np.ndarray]
    road_plane: tuple[np.ndarray, float] | None
    ceiling: np.ndarray | None


def _upsample(depth: np.ndarray, width: int, height: int) -> np.ndarray:
    """Depth at the frame size: inverse depth interpolated on smooth surfaces, nearest sample at
    edges and next to unknown or sky pixels (interpolating across an edge invents surfaces)."""
    import cv2

    if depth.shape == (height, width):
        return depth

    nearest = resize_depth(depth, width, height)
    inv = np.where(np.isfinite(depth), 1.0 / np.where(np.isfinite(depth), depth, 1.0), np.nan).astype(np.float32)
    smooth = cv2.resize(inv, (width, height), interpolation=cv2.INTER_LINEAR)
    with np.errstate(invalid="ignore", divide="ignore"):
        interp = 1.0 / smooth
        use = np.isfinite(interp) & np.isfinite(nearest) & (np.abs(interp - nearest) < 0.03 * nearest)
    return np.where(use, interp, nearest).astype(np.float32)


def dense_depth(frames: Callable[[int], np.ndarray], c2w: np.ndarray, intr: Intrinsics, indices: list[int],
                settings: MVSSettings | None = None, device: str | torch.device = "cpu", *,
                sources: list[int] | None = None, landmarks: np.ndarray | None = None,
                progress_bar: bool = True, filtered: bool = True) -> DenseDepth:
    """Depth (float32 HxW: metres or pose units; NaN unknown, +inf sky) and confidence (0..1, 0
    where unknown) of frames ``indices``, matched against frames ``sources`` (default: all), with
    the moving-object masks and the road plane found on the way (DenseDepth).

    ``frames(i)``: frame i as uint8 RGB or grey; ``c2w`` (N,4,4) OpenCV camera-to-world of every
    frame; ``landmarks`` (M,3): sparse world points that bound the depth range. ``filtered=False``
    skips the consistency, confidence and parallax filters (for measuring what they remove).
    """
    from ...progress import progress

    s = settings or MVSSettings()
    device = torch.device(device)
    sweep = PlaneSweep(frames, c2w, intr, s, device)
    usable = np.zeros(len(c2w), bool)
    usable[list(range(len(c2w))) if sources is None else list(sources)] = True
    landmarks = None if landmarks is None else np.asarray(landmarks, np.float64).reshape(-1, 3)
    raw = {}
    chosen = {}
    bounds_of: dict[int, tuple[float, float]] = {}
    order = sorted(int(i) for i in indices)
    bar = progress(order, desc="dense depth (MVS)", unit="frame") if progress_bar else order
    with torch.no_grad():
        for i in bar:
            chosen[i] = sweep.select_sources(i, usable)
            if not chosen[i]:
                raw[i] = None
                continue
            bounds = depth_bounds(sweep.c2w[i], sweep.intr, landmarks, s)
            bounds_of[i] = bounds
            raw[i] = sweep.raw_depth(i, chosen[i], bounds)
            # Frames are cached for their neighbours; the ones no later frame reaches are freed.
            sweep.forget({j for j in range(i - sweep.reach, i + 2 * sweep.reach + 1)})

        kept: dict[int, torch.Tensor] = {}
        for i in order:
            if raw[i] is None:
                continue
            depth, cost, ambiguity, texture, uncertainty, _ = raw[i]
            good = torch.isfinite(depth) & (texture >= s.min_texture)
            if filtered:
                good &= ((cost <= s.max_cost) & (ambiguity <= s.max_ambiguity)
                         & (uncertainty <= s.max_depth_uncertainty))
            kept[i] = torch.where(good, depth, torch.full_like(depth, float("nan")))

        checked: dict[int, np.ndarray] = {}
        for i in order:
            if raw[i] is None:
                continue
            depth = kept[i]
            if filtered:
                others = {j: kept[j] for j in chosen[i] if j in kept}
                if others:
                    count = sweep.consistent_count(i, depth, others)
                    depth = torch.where(count >= min(s.min_consistent, len(others)), depth,
                                        torch.full_like(depth, float("nan")))
            checked[i] = depth.cpu().numpy()
        road = None
        up = None                         # the road's normal in camera coordinates
        # The farthest depth a static point may have per pixel (matching size, NaN: no limit):
        # s.under_road beyond the road plane, where the road is within 15 camera heights (rays
        # >= ~4 degrees below the horizon; a few degrees of slope or camber cannot put it 30 %
        # beyond the plane). Matched, propagated and (in the build) filled depths all keep to it.
        ceiling = None
        road_plane = None
        full_ceiling = None
        if filtered and s.propagate > 0 and s.road_plane and checked:
            pts = np.concatenate([road_region_points(d, sweep.intr) for d in checked.values()])
            plane = fit_road_plane(pts, normal=road_normal_in_camera(sweep.c2w) if len(sweep.c2w) > 1 else None)
            road = road_inverse_depth(plane, sweep.intr)
            if plane is not None:
                up = np.asarray(plane[0], np.float64)
                if s.under_road > 0:
                    with np.errstate(divide="ignore", invalid="ignore"):
                        reach = np.isfinite(road) & (road * plane[1] >= 1.0 / 15.0)
                        ceiling = np.where(reach, (1.0 + s.under_road) / road, np.nan).astype(np.float32)
                road_plane = (np.asarray(plane[0], np.float64), float(plane[1]))
                if ceiling is not None:
                    full_ceiling = _upsample(ceiling, intr.width, intr.height)

        if up is None and filtered and s.propagate > 0 and s.wall_candidates and len(sweep.c2w) > 1:
            up = road_normal_in_camera(sweep.c2w)      # no road plane: the path's, once for all frames
        out = {}
        moving = {}
        for i in order:
            if raw[i] is None:
                out[i] = (np.full((intr.height, intr.width), np.nan, np.float32),
                          np.zeros((intr.height, intr.width), np.float32))
                continue
            cost, texture = raw[i][1], raw[i][3]
            d = checked[i]
            measured = np.isfinite(d)
            blank = texture.cpu().numpy() < s.min_texture
            if s.fill_planes > 0:
                d = fill_planar_holes(d, int(s.fill_planes * d.size), blank=blank)
            d = fill_small_holes(d, s.fill_holes_px)
            sky = np.zeros(d.shape, bool)
            if s.sky:
                gray = raw[i][5].cpu().numpy()
                sky = sky_mask(d, texture.cpu().numpy(), gray, s.min_texture)
            filled = np.zeros(d.shape, bool)
            moving_mask = np.zeros(d.shape, bool)
            if filtered and s.moving and road is not None:
                moving_mask, moving_depth = moving_object_mask(raw[i][0].cpu().numpy(), cost.cpu().numpy(),
                                                         texture.cpu().numpy(), bounds_of[i][1], road, s,
                                                         raw[i][2].cpu().numpy(), sweep.intr.fy)
                d = np.where(moving_mask, np.nan, d)
            if ceiling is not None:
                with np.errstate(invalid="ignore"):
                    under = np.isfinite(d) & (d > ceiling)        # NaN ceiling compares false
                d = np.where(under, np.nan, d)
                measured &= ~under
            if filtered and s.propagate > 0:
                step = near_side_of_depth_steps(d, s.edge_recheck_px, s.edge_recheck_ratio)
                d_checked = d
                d, filled = propagate_depth(sweep, i, chosen[i], np.where(step, np.nan, d), sky | moving_mask, road, s,
                                       ceiling, up)
                # Those the small-window check cannot decide keep their matched depth.
                kept_matched = step & ~np.isfinite(d)
                d = np.where(kept_matched, d_checked, d)
                filled &= ~kept_matched
                measured &= ~filled
                sweep.forget({j for j in range(i - sweep.reach, i + 2 * sweep.reach + 1)})
            if moving_mask.any():
                d = np.where(moving_mask, moving_depth, d)
            d = np.where(sky, np.inf, d)
            # Matched pixels: their correlation; filled ones (not matched themselves): a low 0.2.
            conf = np.where(measured, np.clip(1.0 - cost.cpu().numpy(), 0.0, 1.0), 0.2)
            conf = np.where(np.isfinite(d), conf, 0.0).astype(np.float32)
            full = _upsample(d.astype(np.float32), intr.width, intr.height)
            if conf.shape != full.shape:
                conf = resize_depth(conf, intr.width, intr.height)
            out[i] = (full, conf)
            moving[i] = resize_depth(moving_mask.astype(np.float32), intr.width, intr.height) > 0.5
    return DenseDepth(out, moving, road_plane, full_ceiling)


def depth_coverage(depth: np.ndarray) -> float:
    """Share of pixels with a measured (finite, positive) depth."""
    return float(np.mean(np.isfinite(depth) & (depth > 0))) if depth.size else 0.0
