"""Dense depth of video frames: the plane sweep, its filters and the propagation, frame by frame
(dense_depth), and what it found on the way (DenseDepth: moving objects, the road plane).
Coverage and accuracy: docs/QUALITY.md.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ...camera import Intrinsics
from ...video import resize_depth
from ..ahead import Ahead, ahead_enabled
from ..road import elevation_deg, fit_road_plane, road_inverse_depth, road_normal_in_camera, road_region_points
from .filters import fill_planar_holes, fill_small_holes, moving_object_mask, near_side_of_depth_steps, sky_and_surfaces
from .propagate import propagate_depth
from .settings import MVSSettings
from .sweep import PlaneSweep, depth_bounds, scene_length_unit, scene_points_from_poses


@dataclass(frozen=True)
class DenseDepth:
    """What dense_depth measured, at the frames' size.

    ``maps``: per frame, (depth, confidence) (a DepthMapStore: read from disk on access): float32 HxW depth (metres or pose units; NaN
    unknown, +inf sky) and confidence (0..1, 0 where unknown). ``moving``: per frame that had
    sources, the mask (HxW bool) of objects found moving along with the camera (their depth, from
    where they stand on the road, is in the map). ``road_plane``: the fitted road plane
    (unit normal, distance) in camera coordinates, None when none was fitted. ``ceiling``: per
    pixel (HxW, NaN where none) the farthest depth a static point may have, MVSSettings.under_road
    beyond the road plane where it is within reach; None without a road plane."""

    maps: Mapping[int, tuple[np.ndarray, np.ndarray]]
    moving: Mapping[int, np.ndarray]
    road_plane: tuple[np.ndarray, float] | None
    ceiling: np.ndarray | None
    frames_held: int = 0      # the most frames whose matching results were in memory at once


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


# The road plane (one for the whole video: a camera mounted rigidly) is fitted on the first this
# many reference frames' matched depth; their later steps (propagation, moving objects, the road
# rule) wait for it, every later frame streams through at once. Fitted on every frame instead, the
# matching results of the whole video would have to be held until its end (5.5 MB a frame at
# 640x360: 33 GB for 10 minutes at 10 frames/s). A clip of at most this many frames (the
# synthetic streets, kitti06) is fitted on all of them, as before.
ROAD_PLANE_FRAMES = 64


class DepthMapStore(Mapping):
    """dense_depth's maps, frame -> (depth, confidence) like a dict, kept on disk (spill.ArrayStore):
    a video's depth maps do not fit in memory (float32 640x360: 0.9 MB a frame). Confidence is
    stored as float16 (it is a 0..1 score) and read back as float32."""

    def __init__(self, shape: tuple[int, int]):
        from ..spill import ArrayStore

        self.depth = ArrayStore(shape, np.float32)
        self.confidence = ArrayStore(shape, np.float16)

    def put(self, i: int, depth: np.ndarray, confidence: np.ndarray) -> None:
        self.depth.put(i, depth)
        self.confidence.put(i, confidence)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if i not in self.depth:
            raise KeyError(i)
        return self.depth.get(i), self.confidence.get(i).astype(np.float32)

    def depth_map(self, i: int) -> np.ndarray:
        """Frame i's depth alone (read-only; the build reads it again and again, its confidence never)."""
        if i not in self.depth:
            raise KeyError(i)
        return self.depth.get(i)

    def __contains__(self, i) -> bool:
        return i in self.depth

    def __iter__(self):
        return iter(self.depth.indices())

    def __len__(self) -> int:
        return len(self.depth)

    def alive(self) -> int:
        """Depth maps held in memory (the stores' caches): bounded, however long the video."""
        return self.depth.alive() + self.confidence.alive()


class MaskStore(Mapping):
    """dense_depth's moving-object masks, frame -> HxW bool like a dict, bit-packed on disk."""

    def __init__(self, shape: tuple[int, int]):
        from ..spill import PackedMaskStore

        self._masks = PackedMaskStore(shape)

    def put(self, i: int, mask: np.ndarray) -> None:
        self._masks.put(i, mask)

    def __getitem__(self, i: int) -> np.ndarray:
        return self._masks[i]

    def __contains__(self, i) -> bool:
        return i in self._masks

    def __iter__(self):
        return iter(self._masks.keys())

    def __len__(self) -> int:
        return len(self._masks)


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

    It streams: each frame goes through matching, the filters, the consistency check against its
    sources (once they are matched too) and propagation, and its maps go to disk (DepthMapStore);
    what it holds in memory at once is bounded by the sources' reach and ROAD_PLANE_FRAMES, not
    by the number of frames.
    """
    from ...progress import progress

    s = settings or MVSSettings()
    device = torch.device(device)
    sweep = PlaneSweep(frames, c2w, intr, s, device)
    usable = np.zeros(len(c2w), bool)
    usable[list(range(len(c2w))) if sources is None else list(sources)] = True
    landmarks = None if landmarks is None else np.asarray(landmarks, np.float64).reshape(-1, 3)
    order = sorted(int(i) for i in indices)
    # The scene's depth sets the MVS lengths; given poses bring no landmarks, so it is measured
    # from a few corners triangulated with them.
    scene = landmarks if landmarks is not None else scene_points_from_poses(frames, sweep.c2w, intr, order)
    sweep.length_unit = scene_length_unit(sweep.c2w, sweep.intr, scene, order)
    in_order = set(order)
    out = DepthMapStore((intr.height, intr.width))
    moving = MaskStore((intr.height, intr.width))
    stream = _Stream(sweep, s, intr, filtered, out, moving)
    bar = progress(order, desc="dense depth (MVS)", unit="frame") if progress_bar else order

    def matched(k: int):
        """The k-th frame's sources, depth bounds and plane sweep (step 1 of _Stream): it depends
        on the frames and poses only, not on what the stream did with the frames before it."""
        i = order[k]
        chosen = sweep.select_sources(i, usable)
        bounds = depth_bounds(sweep.c2w[i], sweep.intr, landmarks, s, sweep.length_unit)
        with torch.no_grad():                  # (grad mode is per thread)
            return chosen, bounds, sweep.raw_depth(i, chosen, bounds) if chosen else None
    # On the CPU the next frames' sweeps run on two more threads while this one filters,
    # checks and propagates the frames before them (ahead.Ahead: the same maps). Alone, the
    # PyTorch steps between the kernels left a core idle; with one sweep thread this one waited
    # for it (a sweep costs more than the rest of a frame); with two, one of the three threads
    # has work whenever another waits.
    ahead = Ahead(matched, len(order), lead=2, workers=2, name="inspatio_mvs_sweep") \
        if sweep.kernels is not None and ahead_enabled() else None
    try:
        with torch.no_grad():
            for k, i in enumerate(bar):
                chosen, bounds, raw = ahead.get(k) if ahead is not None else matched(k)
                stream.match(i, chosen, bounds, in_order, raw)
            stream.finish()
    finally:
        if ahead is not None:
            ahead.close()
    return DenseDepth(out, moving, stream.road_plane, stream.full_ceiling, stream.peak_in_flight)


class _Stream:
    """dense_depth's frames in flight. Per frame, in order:

    1. ``match``: plane sweep (raw depth, cost, ambiguity, texture, parallax uncertainty, grey)
       and the per-pixel filters (``kept``);
    2. once every source it has among the reference frames is matched: the multi-view
       consistency check against their ``kept`` depths (``checked``), the hole fills and sky;
    3. once the road plane is known (fitted on the first ROAD_PLANE_FRAMES checked frames):
       moving objects, the road rule, propagation; the maps go to the stores and the frame's
       tensors are dropped.
    A frame's ``kept`` depth is dropped when no frame still to be checked can have it as a source
    (sources lie within the sweep's reach)."""

    def __init__(self, sweep: PlaneSweep, s: MVSSettings, intr: Intrinsics, filtered: bool,
                 out: DepthMapStore, moving: MaskStore):
        self.sweep, self.s, self.intr, self.filtered = sweep, s, intr, filtered
        self.out, self.moving = out, moving
        self.raw: dict[int, tuple | None] = {}
        self.kept: dict[int, torch.Tensor] = {}
        self.chosen: dict[int, list[int]] = {}
        self.bounds: dict[int, tuple[float, float]] = {}
        self.unchecked: list[int] = []            # matched, waiting for their sources to be matched
        self.checked: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # (depth, measured, sky)
        self.waiting: list[int] = []              # checked, waiting for the road plane
        self.matched: set[int] = set()
        self.last_matched = -1
        self.needs_road = filtered and s.propagate > 0 and s.road_plane
        self.road_points: list[np.ndarray] = []
        self.elevation: np.ndarray | None = None
        # Pixels of the checked frames taken for sky, and of bright blank top regions found to be
        # surfaces (filters.sky_and_surfaces): more of the latter, and the scene has no sky.
        self.sky_area = 0
        self.surface_area = 0
        self.road_fitted = not self.needs_road
        self.road = None            # the road's inverse depth per pixel (matching size)
        self.up = None              # the road's normal in camera coordinates
        # The farthest depth a static point may have per pixel (matching size, NaN: no limit):
        # s.under_road beyond the road plane, where the road is within 15 camera heights (rays
        # >= ~4 degrees below the horizon; a few degrees of slope or camber cannot put it 30 %
        # beyond the plane). Matched, propagated and (in the build) filled depths all keep to it.
        self.ceiling = None
        self.road_plane = None
        self.full_ceiling = None
        self.peak_in_flight = 0     # most frames' tensors held at once (the streaming tests read it)
        if not self.needs_road:
            self._fit_road()        # nothing to fit: only the path's normal for the wall candidates

    def in_flight(self) -> int:
        return len({*self.raw, *self.kept, *self.checked})

    def match(self, i: int, chosen: list[int], bounds: tuple[float, float], reference: set[int],
              raw: tuple | None) -> None:
        """Step 1 with frame i's plane sweep ``raw`` (PlaneSweep.raw_depth against ``chosen``
        within ``bounds``; None without sources) made."""
        s = self.s
        self.chosen[i] = chosen
        self.matched.add(i)
        self.last_matched = i
        if not chosen:
            self.raw[i] = None
        else:
            self.bounds[i] = bounds
            self.raw[i] = raw
            depth, cost, ambiguity, texture, uncertainty, _ = raw
            good = torch.isfinite(depth) & (texture >= s.min_texture)
            if self.filtered:
                good &= ((cost <= s.max_cost) & (ambiguity <= s.max_ambiguity)
                         & (uncertainty <= s.max_depth_uncertainty))
            self.kept[i] = torch.where(good, depth, torch.full_like(depth, float("nan")))
        # Its sources among the reference frames must be matched before its consistency check.
        self._reference = reference
        self.unchecked.append(i)
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight())
        self._advance(final=False)
        self._forget_frames()

    def finish(self) -> None:
        self._advance(final=True)
        if self.waiting:
            self._fit_road()
            self._finish_waiting()

    def _ready(self, i: int, final: bool) -> bool:
        return final or all(j in self.matched for j in self.chosen[i] if j in self._reference)

    def _advance(self, final: bool) -> None:
        still = []
        for i in self.unchecked:
            if self._ready(i, final):
                self._check(i)
            else:
                still.append(i)
        self.unchecked = still
        # kept depths no frame still to be checked (or matched later) can use as a source
        lowest_pending = min([self.last_matched + 1 - self.sweep.reach] + [min(self.chosen[k], default=k)
                                                                           for k in self.unchecked])
        for j in [j for j in self.kept if j < lowest_pending and j not in self.raw]:
            del self.kept[j]
        if not self.road_fitted and (len(self.road_points) >= ROAD_PLANE_FRAMES or final):
            self._fit_road()
        if self.road_fitted:
            self._finish_waiting()

    def _check(self, i: int) -> None:
        """Step 2: the consistency check, hole fills and sky; the road region's points."""
        s = self.s
        raw = self.raw[i]
        if raw is None:
            self.checked[i] = None
            self.waiting.append(i)
            return
        depth = self.kept[i]
        if self.filtered:
            others = {j: self.kept[j] for j in self.chosen[i] if j in self.kept}
            if others:
                count = self.sweep.consistent_count(i, depth, others)
                depth = torch.where(count >= min(s.min_consistent, len(others)), depth,
                                    torch.full_like(depth, float("nan")))
        d = depth.cpu().numpy()
        if self.needs_road and not self.road_fitted:
            self.road_points.append(road_region_points(d, self.sweep.intr))
        texture = raw[3].cpu().numpy()
        measured = np.isfinite(d)
        blank = texture < s.min_texture
        if s.fill_planes > 0:
            d = fill_planar_holes(d, int(s.fill_planes * d.size), blank=blank)
        d = fill_small_holes(d, s.fill_holes_px)
        sky = np.zeros(d.shape, bool)
        if s.sky:
            sky, surfaces = sky_and_surfaces(d, texture, raw[5].cpu().numpy(), s.min_texture, self._elevation())
            self.sky_area += int(sky.sum())
            self.surface_area += int(surfaces.sum())
        self.checked[i] = (d, measured, sky)
        self.waiting.append(i)

    def _elevation(self) -> np.ndarray | None:
        """Elevation of each pixel above the horizon (degrees, matching size) from the path's
        'down' (road_normal_in_camera: a rigidly mounted camera), made once; None for a single
        frame (no path)."""
        if self.elevation is None and len(self.sweep.c2w) > 1:
            self.elevation = elevation_deg(self.sweep.intr, road_normal_in_camera(self.sweep.c2w))
        return self.elevation

    def _fit_road(self) -> None:
        s, sweep = self.s, self.sweep
        self.road_fitted = True
        if self.needs_road and self.road_points:
            pts = np.concatenate(self.road_points)
            plane = fit_road_plane(pts, normal=road_normal_in_camera(sweep.c2w) if len(sweep.c2w) > 1 else None)
            self.road = road_inverse_depth(plane, sweep.intr)
            if plane is not None:
                self.up = np.asarray(plane[0], np.float64)
                if s.under_road > 0:
                    with np.errstate(divide="ignore", invalid="ignore"):
                        reach = np.isfinite(self.road) & (self.road * plane[1] >= 1.0 / 15.0)
                        self.ceiling = np.where(reach, (1.0 + s.under_road) / self.road, np.nan).astype(np.float32)
                self.road_plane = (np.asarray(plane[0], np.float64), float(plane[1]))
                if self.ceiling is not None:
                    self.full_ceiling = _upsample(self.ceiling, self.intr.width, self.intr.height)
        self.road_points = []
        if self.up is None and self.filtered and s.propagate > 0 and s.wall_candidates and len(sweep.c2w) > 1:
            self.up = road_normal_in_camera(sweep.c2w)      # no road plane: the path's, once for all frames

    def _finish_waiting(self) -> None:
        for i in sorted(self.waiting):
            self._finish(i)
        self.waiting = []

    def _finish(self, i: int) -> None:
        """Step 3: moving objects, the road rule, propagation; the maps to the stores."""
        s, sweep, intr, road, ceiling = self.s, self.sweep, self.intr, self.road, self.ceiling
        raw = self.raw.pop(i)
        checked = self.checked.pop(i)
        if raw is None:
            self.out.put(i, np.full((intr.height, intr.width), np.nan, np.float32),
                         np.zeros((intr.height, intr.width), np.float32))
            return
        d, measured, sky = checked
        if self.surface_area > self.sky_area:
            # Most bright blank regions at the top were surfaces (a room's walls and ceiling): the
            # scene shows no sky, and the rest are surfaces the rules could not tell (a wall
            # corner above the horizon with nothing measured in it): propagation may fill them.
            sky = np.zeros_like(sky)
        cost = raw[1].cpu().numpy()
        moving_mask = np.zeros(d.shape, bool)
        if self.filtered and s.moving and road is not None:
            moving_mask, moving_depth = moving_object_mask(raw[0].cpu().numpy(), cost, raw[3].cpu().numpy(),
                                                           self.bounds[i][1], road, s, raw[2].cpu().numpy(),
                                                           sweep.intr.fy)
            d = np.where(moving_mask, np.nan, d)
        del raw
        filled = np.zeros(d.shape, bool)
        if ceiling is not None:
            with np.errstate(invalid="ignore"):
                under = np.isfinite(d) & (d > ceiling)        # NaN ceiling compares false
            d = np.where(under, np.nan, d)
            measured &= ~under
        if self.filtered and s.propagate > 0:
            step = near_side_of_depth_steps(d, s.edge_recheck_px, s.edge_recheck_ratio)
            d_checked = d
            d, filled = propagate_depth(sweep, i, self.chosen[i], np.where(step, np.nan, d), sky | moving_mask,
                                        road, s, ceiling, self.up)
            # Those the small-window check cannot decide keep their matched depth.
            kept_matched = step & ~np.isfinite(d)
            d = np.where(kept_matched, d_checked, d)
            filled &= ~kept_matched
            measured &= ~filled
        if moving_mask.any():
            d = np.where(moving_mask, moving_depth, d)
        d = np.where(sky, np.inf, d)
        # Matched pixels: their correlation; filled ones (not matched themselves): a low 0.2.
        conf = np.where(measured, np.clip(1.0 - cost, 0.0, 1.0), 0.2)
        conf = np.where(np.isfinite(d), conf, 0.0).astype(np.float32)
        full = _upsample(d.astype(np.float32), intr.width, intr.height)
        if conf.shape != full.shape:
            conf = resize_depth(conf, intr.width, intr.height)
        self.out.put(i, full, conf)
        self.moving.put(i, resize_depth(moving_mask.astype(np.float32), intr.width, intr.height) > 0.5)

    def _forget_frames(self) -> None:
        """Grey pyramids cached by the sweep that neither the frame being matched nor the ones
        waiting for propagation use (they are made again if needed)."""
        reach = self.sweep.reach
        keep = set(range(self.last_matched - reach, self.last_matched + 2 * reach + 1))
        for i in self.waiting:
            keep.update(self.chosen.get(i, ()))
            keep.add(i)
        self.sweep.forget(keep)


def depth_coverage(depth: np.ndarray) -> float:
    """Share of pixels with a measured (finite, positive) depth."""
    return float(np.mean(np.isfinite(depth) & (depth > 0))) if depth.size else 0.0
