"""Dense depth from the video alone: multi-view stereo by plane sweep (PyTorch, CPU or CUDA).

For each reference frame a few neighbouring source frames are warped into it, for depth
hypotheses spaced uniformly in inverse depth between a near and a far bound (from the
odometry's landmarks when given). A pixel's source position for inverse depth rho is
``a + rho * b`` in homogeneous pixels (``a`` = K R K^-1 x, ``b`` = K t), i.e. the plane-induced
homography of a fronto-parallel plane, evaluated per pixel, so the same code serves the global
sweep and the per-pixel refinement around its winner.

Matching cost: 1 - ZNCC over small windows of grey values (invariant to gain and offset, works
for 1- and 3-channel video); per hypothesis the mean of the best k sources (occlusions spoil the
others); winner-take-all over fronto-parallel, road- and facade-oriented plane families on a
coarse pyramid level, then per-pixel searches narrowing over the finer levels, each with a
sub-step parabola fit.

Filters, each of which turns a pixel unknown (NaN) rather than guessing: texture-less reference
windows, weak correlation, ambiguous cost curves (a second minimum almost as good), too little
parallax for the depth to be measured (pixels near the epipole of forward motion), and
multi-view geometric consistency: the depth reprojected into neighbouring frames must meet their
own depth there and come back to the same pixel. Small holes are filled from their nearest
neighbours (optionally, texture-less patches whose rim is one plane from that plane); sky (+inf)
is marked conservatively: bright texture-less regions spanning the top border with no measured
depth above them in their column.

Then the depth is propagated into the rest (``MVSSettings.propagate``): per unmeasured pixel,
candidates from interpolation between measured rims, the nearest measured values, and a road
plane fitted to the measured points low in the frames; the one the source frames contradict least
(absolute grey differences) is kept if they do not contradict it. Objects that move along with
the camera (matched best at infinity, below the horizon) are masked and stood on the road.
Coverage and accuracy: docs/QUALITY.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..camera import Intrinsics


@dataclass
class MVSSettings:
    max_size: int | None = None       # longer side matched (px); None: 640 on CPU, 1280 on CUDA
    planes: int = 64                  # hypotheses of the global sweep (uniform in inverse depth)
    pyramid_levels: int = 3           # the global sweep runs at 1 / 2^(levels-1) of the matching size
    slanted_planes: bool = True       # also sweep road- and facade-oriented planes (street scenes)
    refine_steps: int = 9             # hypotheses per finer level, across +-2 steps of the level below
    sources: int = 4                  # source frames per reference frame
    max_offset: int = 8               # sources come from at most this many frames away
    source_step: int = 2              # ... at multiples of this offset (more parallax per source)
    source_baseline: float = 1.6      # >0: the step instead follows the path: the whole
                                      # number of frames that moves the camera about this far (pose
                                      # units; max_offset scales with it). 0: source_step as is
    best_k: int = 2                   # sources averaged per hypothesis (the best ones)
    window: int = 11                  # ZNCC window side (px, at the matching size)
    shift_window: int = 1             # >1: each pixel takes the best of the windows this far around
    near: float = 1.0                 # depth bounds when no landmarks give them (pose units); with
    far: float = 200.0                # landmarks the near bound is still at most ``near``: the
                                      # odometry has no landmarks on the nearest surfaces
    min_texture: float = 0.012        # grey std (0..1) below which a window is texture-less
    max_cost: float = 0.45            # 1 - ZNCC of the winner above this: weak match, dropped
    max_ambiguity: float = 0.85       # winner / best cost away from it above this: ambiguous
    ambiguity_basin_px: float = 2.0   # "away from it": a hypothesis moving some source's pixel more
                                      # than this (px of the sweep's level) from the winner's, or
                                      # more than 2 sweep steps; in pixels the basin means the same
                                      # whatever the depth bounds (landmark bounds make steps fine)
    max_depth_uncertainty: float = 0.05  # relative depth change of a 0.5 px match error
    consistency_px: float = 1.5       # reprojection round trip allowed (px, matching size)
    consistency_depth: float = 0.03   # relative depth difference allowed in the round trip
    min_consistent: int = 1           # neighbours that must agree
    fill_holes_px: int = 24           # unknown regions up to this area (matching size) are filled
    fill_planes: float = 0.0          # unknown regions up to this share of the image whose rim is
                                      # one plane get that plane (texture-less walls, road)
    sky: bool = True                  # mark texture-less regions at the top without depth as +inf
    propagate: int = 2                # passes of depth propagation into unmeasured pixels (0: off)
    propagate_cost: float = 0.035     # mean |grey difference| (0..1) a propagated depth may leave
    propagate_window: int = 5         # window (px) of that photometric check
    propagate_median: bool = True     # 5x5 median of the propagated inverse depths
    road_plane: bool = True           # fit the road plane below the camera; a candidate for propagation
    wall_candidates: bool = True      # propagation also continues walls along the direction of travel
    road_colour: float = 0.05         # no road candidate where the grey (0..1, 3x3 mean) differs by
                                      # more than this from the grey where its column meets the
                                      # road below (0: off): the blank side of a parked car is no road
    road_occlusion: float = 0.1       # no road candidate under a known surface nearer than the road
                                      # there by this much (relative; 0: off)
    under_road: float = 0.3           # matched depths this much (relative) beyond the road plane at
                                      # their pixel are dropped: nothing static is seen under the road
                                      # (lane lines along the epipolar lines match too far; 0: off)
    edge_recheck_px: int = 12         # matched pixels this close to a farther matched pixel (a depth
                                      # step) are re-decided by propagation's 5x5 check (0: off)
    edge_recheck_ratio: float = 1.25  # "farther": by this factor
    moving: bool = True               # detect objects moving along with the camera (needs the road plane)
    moving_min_area: float = 0.001    # share of the image a moving object must cover
    moving_min_height: float = 0.5    # ... and how tall it must stand on the road (pose units)


def matching_size(width: int, height: int, max_size: int) -> tuple[int, int]:
    scale = min(1.0, max_size / max(width, height))
    return max(16, int(round(width * scale))), max(16, int(round(height * scale)))


def _to_gray(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2

    img = np.asarray(img)
    if img.ndim == 3 and img.shape[2] >= 3:
        img = cv2.cvtColor(np.ascontiguousarray(img[..., :3]), cv2.COLOR_RGB2GRAY)
    elif img.ndim == 3:
        img = img[..., 0]
    gray = img.astype(np.float32) / (65535.0 if img.dtype == np.uint16 else 255.0)
    if (gray.shape[1], gray.shape[0]) != size:
        gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
    return gray


def _box(x: torch.Tensor, window: int) -> torch.Tensor:
    """Mean over window x window neighbourhoods, per channel (separable; borders replicated)."""
    r = window // 2
    c = x.shape[1]
    k = torch.full((c, 1, 1, window), 1.0 / window, dtype=x.dtype, device=x.device)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k, groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.transpose(2, 3), groups=c)


# Sweep directions (camera frame, x right, y down, z forward): fronto-parallel planes, then the
# slanted surfaces a driving camera sees most: the road (normal along y) and the facades on
# either side (normal along x). A window matched on the wrong slant is distorted by the baseline.
PLANE_NORMALS = ((0.0, 0.0, 1.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0), (-1.0, 0.0, 0.0))


class _Grid:
    """Pixel grid and intrinsics of one pyramid level."""

    def __init__(self, intr: Intrinsics, device: torch.device):
        self.intr = intr
        self.size = (intr.width, intr.height)
        w, h = self.size
        v, u = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64),
                              indexing="ij")
        self.pix = torch.stack([u, v, torch.ones_like(u)]).reshape(3, -1).to(device)   # (3,hw)
        self.K = torch.as_tensor(intr.K, dtype=torch.float64, device=device)
        self.K_inv = torch.linalg.inv(self.K)


class PlaneSweep:
    """Depth of reference frames from their neighbours; see the module docstring.

    Coarse to fine: the global sweep runs on a downscaled pyramid level, where a plane step moves
    the source pixels by less than a pixel; each finer level searches a narrowing inverse-depth
    interval around the upsampled result of the level below."""

    def __init__(self, frames: Callable[[int], np.ndarray], c2w: np.ndarray, intr: Intrinsics,
                 settings: MVSSettings, device: torch.device):
        self.frames = frames
        self.c2w = np.asarray(c2w, np.float64)
        self.s = settings
        self.device = device
        max_size = settings.max_size or (1280 if device.type == "cuda" else 640)
        self.size = matching_size(intr.width, intr.height, max_size)
        self.intr = intr.scaled(*self.size)
        self.grids = [_Grid(self.intr, device)]
        for _ in range(settings.pyramid_levels - 1):
            w, h = self.grids[-1].size
            if min(w, h) < 32:
                break
            self.grids.append(_Grid(self.grids[-1].intr.scaled(w // 2, h // 2), device))
        g0 = self.grids[0]
        self.pix, self.K, self.K_inv = g0.pix, g0.K, g0.K_inv
        self._cache: dict[int, list[torch.Tensor]] = {}
        self.reach = settings.max_offset        # the farthest source offset used (frame cache window)

    def frame(self, i: int) -> list[torch.Tensor]:
        """Frame i's grey pyramid, (1,1,h,w) per level."""
        if i not in self._cache:
            gray = torch.from_numpy(_to_gray(self.frames(i), self.size)).to(self.device)[None, None]
            pyramid = [gray]
            for g in self.grids[1:]:
                w, h = g.size
                pyramid.append(F.interpolate(pyramid[-1], size=(h, w), mode="area"))
            self._cache[i] = pyramid
        return self._cache[i]

    def forget(self, keep: set[int]) -> None:
        for i in [k for k in self._cache if k not in keep]:
            del self._cache[i]

    def _relative(self, ref: int, src: int, grid: _Grid) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-pixel a (3,hw) and b (3,1): source homogeneous pixel = a + rho * b."""
        rel = np.linalg.inv(self.c2w[src]) @ self.c2w[ref]          # ref camera -> src camera
        R = torch.as_tensor(rel[:3, :3], device=self.device)
        t = torch.as_tensor(rel[:3, 3:], device=self.device)
        a = grid.K @ R @ grid.K_inv @ grid.pix
        b = grid.K @ t
        return a.float(), b.float()

    @staticmethod
    def _source_pixels(a, b, rho, size):
        """Source pixel (P,hw,2) and validity (P,hw) for inverse depths rho (P,hw)."""
        hom = a[None] + rho[:, None, :] * b[None]                     # (P,3,hw)
        z = hom[:, 2]
        ok = z > 1e-9
        uv = hom[:, :2] / torch.where(ok, z, torch.ones_like(z))[:, None]
        w, h = size
        ok &= (uv[:, 0] >= 0) & (uv[:, 0] <= w - 1) & (uv[:, 1] >= 0) & (uv[:, 1] <= h - 1)
        return uv.permute(0, 2, 1), ok

    def source_offsets(self, median_step: float) -> tuple[int, int]:
        """(step, max offset) in frames between a reference and its sources; with
        ``source_baseline`` the step follows the camera's median motion per frame."""
        s = self.s
        step, max_offset = s.source_step, s.max_offset
        if s.source_baseline > 0 and median_step > 0:
            step = max(1, int(round(s.source_baseline / median_step)))
            max_offset = max(step, int(round(s.max_offset * step / max(s.source_step, 1))))
        self.reach = max(self.reach, max_offset)
        return step, max_offset

    def select_sources(self, ref: int, usable: np.ndarray) -> list[int]:
        """Nearest usable frames, alternating before/after, skipping ones without baseline
        (a car standing still gives frames with no parallax)."""
        centres = self.c2w[:, :3, 3]
        steps = np.linalg.norm(np.diff(centres[usable], axis=0), axis=1) if usable.sum() > 1 else np.zeros(0)
        median_step = float(np.median(steps)) if len(steps) else 0.0
        min_baseline = 0.25 * median_step
        step, max_offset = self.source_offsets(median_step)
        chosen: list[int] = []
        for off in range(step, max_offset + 1, step):
            for j in (ref - off, ref + off):
                if 0 <= j < len(self.c2w) and usable[j] and len(chosen) < self.s.sources:
                    if np.linalg.norm(centres[j] - centres[ref]) > max(min_baseline, 1e-12):
                        chosen.append(j)
        return chosen

    def _cost(self, level, rho: torch.Tensor) -> torch.Tensor:
        """Aggregated cost (P,h,w) of per-pixel inverse depths rho (P,h,w) on one level."""
        (ref_gray, ref_mean, ref_std), warps, size = level
        P = rho.shape[0]
        w, h = size
        per_source = []
        for src_gray, a, b in warps:
            uv, ok = self._source_pixels(a, b, rho.reshape(P, -1), size)
            grid = torch.stack([2 * uv[..., 0] / (w - 1) - 1, 2 * uv[..., 1] / (h - 1) - 1], -1)
            grid = grid.reshape(P, h, w, 2).to(src_gray.dtype)
            warped = F.grid_sample(src_gray.expand(P, -1, -1, -1), grid, mode="bilinear",
                                   padding_mode="border", align_corners=True)        # (P,1,h,w)
            stats = _box(torch.cat([warped, warped * warped, warped * ref_gray], 1), self.s.window)
            mean_j = stats[:, 0:1]
            var_j = (stats[:, 1:2] - mean_j * mean_j).clamp_min(0)
            cov = stats[:, 2:3] - mean_j * ref_mean
            zncc = cov / (ref_std * var_j.sqrt() + 1e-4)
            cost = (1 - zncc[:, 0]).clamp(0, 2)
            if self.s.shift_window > 1:
                # Shiftable windows: the best window among those covering the pixel, so a pixel
                # next to a depth edge is matched by a window on its own side of it.
                r = self.s.shift_window // 2
                cost = -F.max_pool2d(-cost[:, None], self.s.shift_window, 1, r)[:, 0]
            # Outside the source image the hypothesis is unmatched (worst cost): with best-k
            # aggregation the other sources decide there.
            per_source.append(torch.where(ok.reshape(P, h, w), cost, torch.full_like(cost, 2.0)))
        costs = torch.stack(per_source)                                # (N,P,h,w)
        k = min(self.s.best_k, len(per_source))
        return costs.topk(k, dim=0, largest=False).values.mean(0)

    def _level(self, ref: int, sources: list[int], n: int):
        grid = self.grids[n]
        ref_gray = self.frame(ref)[n]
        st = _box(torch.cat([ref_gray, ref_gray * ref_gray], 1), self.s.window)
        ref_mean = st[:, 0:1]
        ref_std = (st[:, 1:2] - ref_mean * ref_mean).clamp_min(0).sqrt()
        warps = [(self.frame(j)[n], *self._relative(ref, j, grid)) for j in sources]
        return (ref_gray, ref_mean, ref_std), warps, grid.size

    def _sweep(self, level, hypotheses: torch.Tensor) -> torch.Tensor:
        """Costs (P,h,w) of hypotheses (P,h,w), in chunks that bound memory."""
        w, h = level[2]
        chunk = max(1, int(2_000_000 // (w * h)))
        return torch.cat([self._cost(level, hypotheses[i:i + chunk]) for i in range(0, len(hypotheses), chunk)])

    def _away_from_winner(self, level, hyps: torch.Tensor, winner: torch.Tensor, basin_px: float) -> torch.Tensor:
        """(P,h,w) bool: hypotheses outside the winner's basin: more than 2 sweep steps from it
        and moving some source's pixel more than ``basin_px`` from where the winner puts it. A
        match's cost curve is a few pixels of epipolar motion wide; counted in steps alone, the
        basin shrinks with the step (a fine sweep between landmark bounds) and a flat but single
        minimum, e.g. a car ahead matched at the far end, reads as ambiguous."""
        P = hyps.shape[0]
        w, h = level[2]
        steps = torch.arange(P, device=self.device)[:, None, None]
        away = (steps - winner[None]).abs() > 2
        if basin_px <= 0:
            return away
        flat = hyps.reshape(P, -1)
        win = flat.gather(0, winner.reshape(1, -1))                    # (1,hw)
        moved = torch.zeros(P, h * w, dtype=torch.bool, device=self.device)
        for _, a, b in level[1]:
            uv, ok = self._source_pixels(a, b, flat, (w, h))
            uv_w, ok_w = self._source_pixels(a, b, win, (w, h))
            # Squared distance per axis: norm() over the last axis of this (permuted) layout took
            # a third of a CPU frame's sweep.
            du, dv = uv[..., 0] - uv_w[..., 0], uv[..., 1] - uv_w[..., 1]
            moved |= (du * du + dv * dv > basin_px * basin_px) & ok & ok_w
        return away & moved.reshape(P, h, w)

    @staticmethod
    def _parabola(costs: torch.Tensor, hypotheses: torch.Tensor):
        """Winner of evenly spaced hypotheses with a sub-step parabola fit: (rho, cost)."""
        n = len(costs)
        k = costs.argmin(0).clamp(1, n - 2)
        c0 = costs.gather(0, (k - 1)[None])[0]
        c1 = costs.gather(0, k[None])[0]
        c2 = costs.gather(0, (k + 1)[None])[0]
        denom = c0 - 2 * c1 + c2
        shift = torch.where(denom > 1e-9, 0.5 * (c0 - c2) / denom.clamp_min(1e-9), torch.zeros_like(denom))
        shift = shift.clamp(-0.5, 0.5)
        h0 = hypotheses.gather(0, k[None])[0]
        step = hypotheses[1] - hypotheses[0]
        return h0 + shift * step, torch.minimum(c1, costs.amin(0))

    def raw_depth(self, ref: int, sources: list[int], bounds: tuple[float, float]):
        """Unfiltered winner depth, its cost, ambiguity, texture, parallax uncertainty and the
        reference's grey image (h,w each)."""
        s = self.s
        top = len(self.grids) - 1
        level = self._level(ref, sources, top)
        w, h = level[2]
        near, far = bounds
        rho_max, rho_min = 1.0 / near, 1.0 / far
        D = s.planes
        rays = (self.grids[top].K_inv @ self.grids[top].pix).float()          # (3,hw)
        best_rho = best_cost = ambiguity = None
        for normal in PLANE_NORMALS[:len(PLANE_NORMALS) if s.slanted_planes else 1]:
            # Planes n.X = 1/q: inverse depth q * (n . ray), affine in the pixel coordinates.
            along = (torch.tensor(normal, dtype=torch.float32, device=self.device) @ rays).reshape(h, w)
            reach = float(along.max())
            if reach <= 0:
                continue
            q = torch.linspace(rho_min / reach, rho_max / reach, D, dtype=torch.float32, device=self.device)
            seen = along > 0.05 * reach            # planes seen nearly edge-on are not swept
            hyps = q[:, None, None] * torch.where(seen, along, torch.full_like(along, reach))[None]
            volume = self._sweep(level, hyps)
            volume = torch.where(seen[None], volume, torch.full_like(volume, 2.0))
            winner = volume.argmin(0)
            winner_cost = volume.gather(0, winner[None])[0]
            # Ambiguity: the best cost away from the winner's basin against the winner.
            away = self._away_from_winner(level, hyps, winner, s.ambiguity_basin_px)
            second = torch.where(away, volume, torch.full_like(volume, 2.0)).amin(0)
            del away
            rho_n, cost_n = self._parabola(volume, hyps)
            del volume
            if best_rho is None:
                best_rho, best_cost, ambiguity = rho_n, cost_n, winner_cost / second.clamp_min(1e-6)
            else:
                better = cost_n < best_cost
                best_rho = torch.where(better, rho_n, best_rho)
                ambiguity = torch.where(better, winner_cost / second.clamp_min(1e-6), ambiguity)
                best_cost = torch.where(better, cost_n, best_cost)
        rho, cost = best_rho, best_cost
        # Finer levels: +-2 steps of the level below around its (upsampled) winner.
        span = 2.0 * (rho_max - rho_min) / (D - 1)
        for n in range(top, -1, -1):
            if n < top:
                level = self._level(ref, sources, n)
                rho = F.interpolate(rho[None, None], size=level[2][::-1], mode="nearest")[0, 0]
                span /= 2.0
            elif top == 0:
                span /= 2.0
            offsets = torch.linspace(-span, span, s.refine_steps, dtype=torch.float32, device=self.device)
            hyps = (rho[None] + offsets[:, None, None]).clamp_min(0.5 * rho_min)
            rho, cost = self._parabola(self._sweep(level, hyps), hyps)
        w, h = level[2]
        ambiguity = F.interpolate(ambiguity[None, None], size=(h, w), mode="nearest")[0, 0]
        depth = 1.0 / rho.clamp_min(1e-12)
        # Parallax: how far the best-placed source's pixel moves per relative depth change.
        sensitivity = torch.zeros(h * w, dtype=torch.float32, device=self.device)
        for _, a, b in level[1]:
            uv0, ok0 = self._source_pixels(a, b, rho.reshape(1, -1), (w, h))
            uv1, _ = self._source_pixels(a, b, rho.reshape(1, -1) * 1.01, (w, h))
            move = (uv1 - uv0).norm(dim=-1)[0] / 0.01               # px per unit relative depth
            sensitivity = torch.maximum(sensitivity, torch.where(ok0[0], move, torch.zeros_like(move)))
        uncertainty = (0.5 / sensitivity.clamp_min(1e-9)).reshape(h, w)
        return depth, cost, ambiguity, level[0][2][0, 0], uncertainty, level[0][0][0, 0]

    def photo_cost(self, ref: int, sources: list[int], rho: torch.Tensor) -> torch.Tensor:
        """Photometric cost (P,h,w) of per-pixel inverse depths rho (P,h,w) at the matching size:
        mean absolute grey difference over small windows, mean of the best k sources among those
        that see the point (fewer if fewer see it; 2: outside every source). Unlike ZNCC it is
        defined on texture-less surfaces, where it only says that the depth is not contradicted.
        Counting unseen sources as failures (2) would leave unchecked whatever a single source
        sees: the image border of an early frame of a forward drive, which only the one source
        behind it sees (the others are ahead and see less)."""
        (ref_gray, _, _), warps, size = self._level(ref, sources, 0)
        w, h = size
        P = rho.shape[0]
        per_source = []
        for src_gray, a, b in warps:
            uv, ok = self._source_pixels(a, b, rho.reshape(P, -1), size)
            grid = torch.stack([2 * uv[..., 0] / (w - 1) - 1, 2 * uv[..., 1] / (h - 1) - 1], -1)
            warped = F.grid_sample(src_gray.expand(P, -1, -1, -1), grid.reshape(P, h, w, 2).to(src_gray.dtype),
                                   mode="bilinear", padding_mode="border", align_corners=True)
            sad = _box((warped - ref_gray).abs(), self.s.propagate_window)[:, 0]
            per_source.append(torch.where(ok.reshape(P, h, w), sad, torch.full_like(sad, 2.0)))
        costs = torch.stack(per_source)
        k = min(self.s.best_k, len(per_source))
        best = costs.topk(k, dim=0, largest=False).values
        seen = best < 2.0                     # a window's mean grey difference is at most 1
        count = seen.sum(0)
        return torch.where(count > 0, (best * seen).sum(0) / count.clamp_min(1), torch.full_like(best[0], 2.0))

    def consistent_count(self, ref: int, depth: torch.Tensor, others: dict[int, torch.Tensor]) -> torch.Tensor:
        """How many neighbours' depth maps agree with ``depth`` (h,w) of frame ``ref``."""
        s = self.s
        w, h = self.size
        count = torch.zeros(h * w, dtype=torch.int32, device=self.device)
        d = depth.reshape(-1).double()
        known = torch.isfinite(d)
        d0 = torch.where(known, d, torch.zeros_like(d))
        rays = self.K_inv @ self.pix                                      # (3,hw)
        for j, dj in others.items():
            rel = torch.as_tensor(np.linalg.inv(self.c2w[j]) @ self.c2w[ref], device=self.device)
            x_j = rel[:3, :3] @ (rays * d0) + rel[:3, 3:]
            z = x_j[2]
            uv = (self.K @ x_j)[:2] / torch.where(z > 1e-9, z, torch.ones_like(z))
            inside = (z > 1e-9) & (uv[0] >= 0) & (uv[0] <= w - 1) & (uv[1] >= 0) & (uv[1] <= h - 1)
            col = uv[0].round().clamp(0, w - 1).long()
            row = uv[1].round().clamp(0, h - 1).long()
            dj_flat = dj.reshape(-1).double()
            d_there = dj_flat[row * w + col]
            there_known = torch.isfinite(d_there)
            q = torch.stack([col.double(), row.double(), torch.ones_like(z)])
            x_back = torch.linalg.inv(rel)[:3] @ torch.cat([self.K_inv @ q * torch.where(there_known, d_there,
                                                                   torch.zeros_like(d_there)),
                                                            torch.ones_like(z)[None]])
            zb = x_back[2]
            uv_back = (self.K @ x_back)[:2] / torch.where(zb > 1e-9, zb, torch.ones_like(zb))
            round_trip = (uv_back - self.pix[:2]).norm(dim=0)
            agree = (inside & known & there_known & (zb > 1e-9) & (round_trip < s.consistency_px)
                     & ((zb - d).abs() < s.consistency_depth * d))
            count += agree.int()
        return count.reshape(h, w)


def depth_bounds(c2w_ref: np.ndarray, intr: Intrinsics, landmarks: np.ndarray | None,
                 settings: MVSSettings) -> tuple[float, float]:
    """Near and far depth for a reference camera: from the landmarks in its view (with margin),
    else the settings. The near bound is never beyond ``settings.near``: the odometry triangulates
    corners it tracked over several frames, and the nearest surfaces (a parked car passing at 2-5
    m, the road at the image bottom) cross the frame too fast to be tracked. Bounded by the
    landmarks alone (3-9 m on the synthetic street) the sweep could not reach them and matched
    them at the wrong depth: street depth AbsRel 0.127 with that bound, 0.105 with 1.0 m."""
    if landmarks is not None and len(landmarks) >= 20:
        pc = (landmarks - c2w_ref[:3, 3]) @ c2w_ref[:3, :3]
        z = pc[:, 2]
        front = z > 1e-9
        u = pc[front, 0] / z[front] * intr.fx + intr.cx
        v = pc[front, 1] / z[front] * intr.fy + intr.cy
        seen = z[front][(u >= 0) & (u < intr.width) & (v >= 0) & (v < intr.height)]
        if len(seen) >= 20:
            near = min(0.6 * float(np.percentile(seen, 2)), settings.near)
            far = 2.0 * float(np.percentile(seen, 98))
            return near, max(far, 3.0 * near)
    return settings.near, settings.far


def _fill_small_holes(depth: np.ndarray, max_area: int) -> np.ndarray:
    """Unknown regions of at most ``max_area`` pixels take their nearest known neighbour's depth."""
    from scipy import ndimage

    unknown = np.isnan(depth)
    if max_area <= 0 or not unknown.any() or unknown.all():
        return depth
    labels, n = ndimage.label(unknown)
    area = np.bincount(labels.ravel(), minlength=n + 1)
    small = (area <= max_area)[labels] & unknown
    if not small.any():
        return depth
    _, (rows, cols) = ndimage.distance_transform_edt(unknown, return_indices=True)
    out = depth.copy()
    out[small] = depth[rows[small], cols[small]]
    return out


def _fill_planar_holes(depth: np.ndarray, max_area: int, tolerance: float = 0.03,
                       min_inliers: float = 0.9, blank: np.ndarray | None = None) -> np.ndarray:
    """Unknown regions whose known rim lies on one plane take that plane's depth.

    A plane's inverse depth is affine in pixel coordinates, so a texture-less wall or road
    patch, which matching cannot measure inside, is recovered exactly from its measured edges.
    Regions whose rim is not one plane (an occlusion boundary, a hole spanning surfaces) stay
    unknown. Fitted per region with one least-squares solve per pass (normal equations summed by
    region label), refitted on the rim pixels that agree within ``tolerance``. ``blank``: where
    given, regions are its unknown pixels only (texture-less patches, cut at edges)."""
    from scipy import ndimage

    unknown = np.isnan(depth)
    if not unknown.any() or unknown.all():
        return depth
    labels, n = ndimage.label(unknown if blank is None else unknown & blank)
    h, w = depth.shape
    known = np.isfinite(depth) & (depth > 0)
    # Rim: (region, known pixel) pairs of 4-neighbours.
    region_parts, pixel_parts = [], []
    flat_labels = labels.ravel()
    for dv, du in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        src = np.zeros((h, w), bool)
        src[max(0, -dv):h - max(0, dv), max(0, -du):w - max(0, du)] = True
        pix = np.nonzero((src & known).ravel())[0]
        neighbour = pix + dv * w + du
        lab = flat_labels[neighbour]
        region_parts.append(lab[lab > 0])
        pixel_parts.append(pix[lab > 0])
    region = np.concatenate(region_parts)
    pixel = np.concatenate(pixel_parts)
    if len(region) == 0:
        return depth
    u = (pixel % w).astype(np.float64) / w
    v = (pixel // w).astype(np.float64) / h
    rho = 1.0 / depth.ravel()[pixel].astype(np.float64)
    basis = np.stack([u, v, np.ones_like(u)], 1)
    weight = np.ones(len(region))
    coef = np.zeros((n + 1, 3))
    for _ in range(2):
        normal = np.zeros((n + 1, 3, 3))
        rhs = np.zeros((n + 1, 3))
        for a in range(3):
            rhs[:, a] = np.bincount(region, weight * basis[:, a] * rho, n + 1)
            for b in range(3):
                normal[:, a, b] = np.bincount(region, weight * basis[:, a] * basis[:, b], n + 1)
        normal += 1e-9 * np.eye(3)
        coef = np.linalg.solve(normal, rhs[..., None])[..., 0]
        fit = np.sum(basis * coef[region], 1)
        inlier = np.abs(fit - rho) <= tolerance * rho
        weight = inlier.astype(np.float64)
    rim_count = np.bincount(region, minlength=n + 1)
    inlier_share = np.bincount(region, inlier, n + 1) / np.maximum(rim_count, 1)
    area = np.bincount(flat_labels, minlength=n + 1)
    fill = (inlier_share >= min_inliers) & (rim_count >= 8) & (area <= max_area)
    fill[0] = False
    target = fill[labels] & (labels > 0)
    if not target.any():
        return depth
    vv, uu = np.nonzero(target)
    c = coef[labels[vv, uu]]
    rho_fill = c[:, 0] * uu / w + c[:, 1] * vv / h + c[:, 2]
    # Interpolate, never extrapolate: on a region its rim surrounds, an affine function stays
    # within the rim's range; values outside it come from a rim on one side only (a strip, a
    # region open to the image border) and are left unknown.
    rim_min = np.full(n + 1, np.inf)
    rim_max = np.zeros(n + 1)
    np.minimum.at(rim_min, region, np.where(inlier, rho, np.inf))
    np.maximum.at(rim_max, region, np.where(inlier, rho, 0.0))
    lab = labels[vv, uu]
    ok = (rho_fill >= (1 - tolerance) * rim_min[lab]) & (rho_fill <= (1 + tolerance) * rim_max[lab])
    out = depth.copy()
    out[vv[ok], uu[ok]] = (1.0 / rho_fill[ok]).astype(depth.dtype)
    return out


def _nearest_along(known: torch.Tensor, axis: int, reverse: bool) -> torch.Tensor:
    """Index of the nearest known pixel before each pixel along ``axis`` (after, if ``reverse``);
    -1 where none."""
    n = known.shape[axis]
    shape = [1, 1]
    shape[axis] = n
    idx = torch.arange(n, device=known.device).reshape(shape).expand_as(known)
    if reverse:
        flip = torch.flip(known, (axis,))
        out = torch.where(flip, idx, -1).cummax(axis).values
        return torch.flip(torch.where(out >= 0, n - 1 - out, -1), (axis,))
    return torch.where(known, idx, -1).cummax(axis).values


# Preference among the candidates of _propagation_candidates (cost multipliers, in its order:
# row interpolation, left, right, column interpolation, above, below, then, where given, the
# walls through the nearest known pixel left and right, and the road plane).
CANDIDATE_WEIGHTS = (0.8, 1.0, 1.0, 0.8, 1.0, 1.0)
WALL_WEIGHT = 0.9
ROAD_WEIGHT = 0.5
# A wall candidate may bring the surface at most 2x nearer and 5x farther than the known pixel it
# starts from: beyond that the wall has reached the vanishing point of the travel direction (its
# inverse depth there is 0) or the image edge on a wall seen nearly edge-on, where one px of the
# starting pixel's position is a large change.
WALL_RATIO = (0.2, 2.0)


def _rows_of_walls(wall_along: torch.Tensor, ray_length: torch.Tensor,
                   nearest: tuple[tuple[torch.Tensor, torch.Tensor], ...]) -> list[torch.Tensor]:
    """Inverse depth of the wall through the nearest known pixel left and right of each pixel
    (its row): the vertical plane along the direction of travel (facades, the sides of parked
    cars). On a plane n . X = c the inverse depth is (n . ray) / c, so a pixel q takes
    rho_p (n . ray_q) / (n . ray_p) from the known pixel p. ``wall_along`` (h,w): n . ray per
    pixel; ``nearest``: per side, the nearest known pixel's column (h,w) and its inverse depth
    (NaN where there is none within reach), as _propagation_candidates found them. Not where the
    wall through p is seen nearly edge-on (|n . ray_p| < 0.05 |ray_p|) or the ratio leaves
    WALL_RATIO."""
    w = wall_along.shape[1]
    out = []
    for column, rho_p in nearest:
        src = column.clamp(0, w - 1)
        along_p = torch.gather(wall_along, 1, src)
        seen = along_p.abs() >= 0.05 * torch.gather(ray_length, 1, src)
        ratio = wall_along / torch.where(seen, along_p, torch.ones_like(along_p))
        ok = seen & (ratio >= WALL_RATIO[0]) & (ratio <= WALL_RATIO[1])
        out.append(torch.where(ok, rho_p * ratio, torch.full_like(rho_p, float("nan"))))
    return out


def _propagation_candidates(rho: torch.Tensor, road: torch.Tensor | None, max_gap: float = 0.5,
                            road_occlusion: float = 0.0, gray: torch.Tensor | None = None,
                            road_colour: float = 0.0, wall: tuple[torch.Tensor, torch.Tensor] | None = None
                            ) -> torch.Tensor:
    """Inverse-depth candidates (C,h,w) for the unknown (NaN) pixels of ``rho`` (h,w): linear
    interpolation between the nearest known pixels left and right, and above and below (exact on
    a plane: its inverse depth is affine in pixel coordinates), each of those four nearest
    values alone (a surface continuing to an occlusion edge), where ``wall`` ((n . ray, |ray|)
    per pixel, n the wall normal) is given the walls through the nearest known pixels left and
    right (_rows_of_walls), and the road plane (last). NaN where a candidate does not exist;
    gaps longer than ``max_gap`` of the image side are not bridged.
    The walls: a facade or a parked car's side runs along the street, so its inverse depth falls
    to 0 at the vanishing point of the travel direction; the constant and interpolated
    candidates stop at the nearer rim instead (the end of the street came out at half its depth,
    a car's blank side at the depth of its rear).
    ``road_occlusion`` > 0: no road plane where the nearest known pixel above in the column is
    nearer than the road there by more than this (relative): things stand on the road, so a
    surface seen above a road point is at least that far away unless it covers the point itself
    (the blank side of a parked car under its measured roof line is not road). ``gray`` (h,w)
    and ``road_colour`` > 0: no road plane where the pixel's grey differs by more than that from
    the grey where its column meets the road below: just above the first known pixel below that
    lies on the road plane (within 5 %), or at the image bottom. The road plane carries on across
    a lane line (asphalt on both sides), not up the blank side of a parked car, where no matched
    pixel says what it is (its roof line is often unmatched: edges along the epipolar lines).
    Torch on rho's device: per pixel and pass, in numpy it was half of the GPU build's MVS time."""
    h, w = rho.shape
    known = torch.isfinite(rho)
    nan = torch.tensor(float("nan"), device=rho.device, dtype=rho.dtype)
    out = []
    for axis, size in ((1, w), (0, h)):
        lo = _nearest_along(known, axis, False)
        hi = _nearest_along(known, axis, True)
        pos = torch.arange(size, device=rho.device).reshape((1, size) if axis == 1 else (size, 1)).expand_as(rho)
        r_lo = torch.gather(rho, axis, lo.clamp(0, size - 1))
        r_hi = torch.gather(rho, axis, hi.clamp(0, size - 1))
        r_lo = torch.where((lo >= 0) & (pos - lo <= max_gap * size), r_lo, nan)
        r_hi = torch.where((hi >= 0) & (hi - pos <= max_gap * size), r_hi, nan)
        f = (pos - lo).to(rho.dtype) / (hi - lo).clamp_min(1).to(rho.dtype)
        out += [r_lo + f * (r_hi - r_lo), r_lo, r_hi]
        if axis == 1:
            row_nearest = ((lo, r_lo), (hi, r_hi))
    if wall is not None:
        out += _rows_of_walls(wall[0], wall[1], row_nearest)
    if road is not None:
        if road_occlusion > 0:
            above = out[4]                               # nearest known inverse depth above
            covered = torch.isfinite(above) & (above > road * (1.0 + road_occlusion))
            road = torch.where(covered, nan, road)
        if gray is not None and road_colour > 0:
            on_road = known & torch.isfinite(road) & (torch.abs(rho / road - 1) <= 0.05)
            first = _nearest_along(on_road, 0, True)
            meets = torch.where(first >= 0, (first - 1).clamp(min=0), torch.full_like(first, h - 1))
            differs = torch.abs(gray - torch.gather(gray, 0, meets)) > road_colour
            road = torch.where(differs, nan, road)
        out.append(road)
    cand = torch.stack(out).float()
    cand[:, known] = float("nan")
    return torch.where(cand > 0, cand, nan)


def fit_road_plane(points: np.ndarray, max_tilt_deg: float = 20.0,
                   normal: np.ndarray | None = None) -> tuple[np.ndarray, float] | None:
    """Road plane n . X = d in camera coordinates (x right, y down) from points (N,3) seen in the
    road region of the frames (a camera mounted rigidly: one plane for all frames). Robust: starts
    from the plane y = median height and refits by SVD on the points near it; None when the fit
    is not a road (too few points, tilted more than ``max_tilt_deg``). ``normal`` (unit, camera
    coordinates): the road's normal is known (from the direction of travel, odometry's
    road_normals) and only d is fitted, as the median height along it of the points near it.
    A free normal follows whatever the region holds most of: on a street whose asphalt is too
    blank to match, kerbs, lane lines and car bottoms, which tilted it by 1.3 degrees."""
    p = np.asarray(points, np.float64)
    p = p[np.isfinite(p).all(1) & (p[:, 1] > 0)]
    if len(p) < 200:
        return None
    n = np.array([0.0, 1.0, 0.0]) if normal is None else np.asarray(normal, np.float64) / np.linalg.norm(normal)
    d = float(np.median(p @ n))
    for tol in (0.25, 0.1, 0.05):
        inl = np.abs(p @ n - d) < tol * d
        if inl.sum() < 60:
            return None
        if normal is None:
            c = p[inl].mean(0)
            n = np.linalg.svd(p[inl] - c, full_matrices=False)[2][-1]
            n = n if n[1] > 0 else -n
            d = float(n @ c)
        else:
            d = float(np.median(p[inl] @ n))
    if d <= 0 or np.degrees(np.arccos(min(1.0, n[1]))) > max_tilt_deg:
        return None
    return n, d


def road_normal_in_camera(c2w: np.ndarray) -> np.ndarray:
    """The mean road normal of a driving path in camera coordinates (pointing down, y down): the
    odometry's road_normals (from the direction of travel) seen from each camera, averaged."""
    from .odometry import road_normals

    up = road_normals(c2w, np.ones(len(c2w), bool))
    n = -np.einsum("nji,nj->ni", c2w[:, :3, :3], up)          # R^T (-up) per frame
    n = n.mean(0)
    return n / np.linalg.norm(n)


def _road_rho(plane: tuple[np.ndarray, float] | None, intr: Intrinsics) -> np.ndarray | None:
    """Inverse depth (h,w) of the road plane per pixel (NaN above its horizon)."""
    if plane is None:
        return None
    n, d = plane
    v, u = np.mgrid[0:intr.height, 0:intr.width].astype(np.float64)
    along = n[0] * (u - intr.cx) / intr.fx + n[1] * (v - intr.cy) / intr.fy + n[2]
    # z-depth of the ray (u, v, 1) meeting n . X = d: d / along; only well below the horizon.
    return np.where(along > 0.02, along / d, np.nan).astype(np.float32)


def _road_points(depth: np.ndarray, intr: Intrinsics, step: int = 2) -> np.ndarray:
    """Camera-frame points of measured pixels in the road region (lower 40 %, middle 2/3)."""
    h, w = depth.shape
    v, u = np.mgrid[int(0.6 * h):h:step, w // 6:w - w // 6:step]
    z = depth[v, u]
    ok = np.isfinite(z) & (z > 0)
    u, v, z = u[ok], v[ok], z[ok]
    return np.stack([(u - intr.cx) / intr.fx * z, (v - intr.cy) / intr.fy * z, z], 1)


def _moving_mask(raw_depth: np.ndarray, cost: np.ndarray, texture: np.ndarray, far: float,
                 road_rho: np.ndarray | None, s: MVSSettings,
                 ambiguity: np.ndarray | None = None, fy: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Objects that move along with the camera (a car ahead in the same lane): their textured
    pixels match well only at the far end of the sweep (they barely move in the image, like
    something infinitely far), yet they lie below the horizon, where a static point that far
    would be under the road. Such pixels, in regions of at least ``moving_min_area`` of the image
    (closed, holes filled), are the mask. Their depth: the road plane's at the region's lowest
    row (where the object stands on the road), per region. Returns (mask, depth) at the
    matching size; depth NaN outside the mask."""
    from scipy import ndimage

    h, w = raw_depth.shape
    empty = np.zeros((h, w), bool), np.full((h, w), np.nan, np.float32)
    if road_rho is None:
        return empty
    road_ok = np.isfinite(road_rho) & (road_rho > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        road_depth = np.where(road_ok, 1.0 / road_rho, np.nan)
    seed = (road_ok & (raw_depth >= 0.9 * far) & (texture >= s.min_texture) & (cost <= 0.5 * s.max_cost + 0.1)
            & (raw_depth > 3.0 * np.nan_to_num(road_depth, nan=np.inf)))
    if ambiguity is not None:
        # Lane markings run along the epipolar lines: they match any depth about as well, the far
        # end included; an object matched at the far end has one clear minimum there.
        seed &= ambiguity <= s.max_ambiguity
    if not seed.any():
        return empty
    region = ndimage.binary_fill_holes(ndimage.binary_closing(seed, iterations=3))
    labels, n = ndimage.label(region)
    area = np.bincount(labels.ravel(), minlength=n + 1)
    mask = np.zeros((h, w), bool)
    depth = np.full((h, w), np.nan, np.float32)
    rows = np.arange(h)[:, None]
    for k in np.nonzero(area >= max(8, s.moving_min_area * h * w))[0]:
        if k == 0:
            continue
        r = labels == k
        bottom = int(np.max(np.where(r, rows, -1)))
        cols = np.nonzero(r[bottom])[0]
        contact = road_depth[bottom, cols]
        contact = contact[np.isfinite(contact)]
        if not len(contact):
            continue
        if fy is not None and s.moving_min_height > 0:
            # Standing where it meets the road, the region must be as tall as a vehicle part:
            # flat blobs at road level (a lane line's end, a kerb under a parked car) are not.
            top = int(np.min(np.where(r, rows, h)))
            if (bottom - top + 1) * float(np.median(contact)) / fy < s.moving_min_height:
                continue
        mask |= r
        depth[r] = float(np.median(contact))
    return mask, depth


def _near_side_of_depth_steps(depth: np.ndarray, radius: int, ratio: float) -> np.ndarray:
    """Known pixels with a known pixel more than ``ratio`` x farther within ``radius`` px.

    Window matching fattens foreground: a background pixel next to an object's edge has the
    edge, the strongest texture in its matching window (MVSSettings.window), decide its match, and takes the object's
    depth. Unmeasured again, such a pixel is re-decided by propagation, whose candidates come from
    both sides of the step and whose check uses a 5x5 window."""
    if radius <= 0:
        return np.zeros(depth.shape, bool)
    from scipy.ndimage import maximum_filter

    known = np.isfinite(depth)
    value = np.where(known, depth, 0.0)
    farthest = maximum_filter(value, size=2 * radius + 1, mode="nearest")
    return known & (farthest > ratio * value)


def _sky_mask(depth: np.ndarray, texture: np.ndarray, gray: np.ndarray, min_texture: float) -> np.ndarray:
    """Sky, conservatively: texture-less pixels without depth in a region that spans at least a
    tenth of the top border, is brighter than the image's median (sky is lit; a blank facade top
    in shade is not taken), and has no measured depth above it in its column."""
    from scipy import ndimage

    candidate = np.isnan(depth) & (texture < min_texture)
    labels, n = ndimage.label(candidate)
    if n == 0:
        return np.zeros(depth.shape, bool)
    top_span = np.bincount(labels[0], minlength=n + 1)
    area = np.bincount(labels.ravel(), minlength=n + 1)
    brightness = np.bincount(labels.ravel(), gray.ravel(), n + 1) / np.maximum(area, 1)
    sky_label = (top_span >= 0.1 * depth.shape[1]) & (brightness >= max(0.5, float(np.median(gray))))
    sky_label[0] = False
    measured_above = np.maximum.accumulate(np.isfinite(depth), axis=0)
    return sky_label[labels] & ~measured_above


def _upsample(depth: np.ndarray, width: int, height: int) -> np.ndarray:
    """Depth at the frame size: inverse depth interpolated on smooth surfaces, nearest sample at
    edges and next to unknown or sky pixels (interpolating across an edge invents surfaces)."""
    import cv2

    if depth.shape == (height, width):
        return depth
    from ..video import resize_depth

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
                progress_bar: bool = True, filtered: bool = True,
                moving: dict | None = None, road_out: dict | None = None) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Depth (float32 HxW: metres or pose units; NaN unknown, +inf sky) and confidence (0..1, 0
    where unknown) of frames ``indices``, matched against frames ``sources`` (default: all).

    ``frames(i)``: frame i as uint8 RGB or grey; ``c2w`` (N,4,4) OpenCV camera-to-world of every
    frame; ``landmarks`` (M,3): sparse world points that bound the depth range. ``filtered=False``
    skips the consistency, confidence and parallax filters (for measuring what they remove).
    ``moving``: a dict that receives, per frame, the mask (HxW bool) of objects found moving
    along with the camera (their depth, from where they stand on the road, is in the map).
    ``road_out``: a dict that receives the fitted road plane ("plane": (normal, distance) in
    camera coordinates) and "ceiling": per pixel (HxW, NaN where none) the farthest depth a
    static point may have, s.under_road beyond the road plane where it is within reach."""
    from ..progress import progress

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
        if filtered and s.propagate > 0 and s.road_plane and checked:
            pts = np.concatenate([_road_points(d, sweep.intr) for d in checked.values()])
            plane = fit_road_plane(pts, normal=road_normal_in_camera(sweep.c2w) if len(sweep.c2w) > 1 else None)
            road = _road_rho(plane, sweep.intr)
            if plane is not None:
                up = np.asarray(plane[0], np.float64)
                if s.under_road > 0:
                    with np.errstate(divide="ignore", invalid="ignore"):
                        reach = np.isfinite(road) & (road * plane[1] >= 1.0 / 15.0)
                        ceiling = np.where(reach, (1.0 + s.under_road) / road, np.nan).astype(np.float32)
                if road_out is not None:
                    road_out["plane"] = (np.asarray(plane[0], np.float64), float(plane[1]))
                    if ceiling is not None:
                        road_out["ceiling"] = _upsample(ceiling, intr.width, intr.height)

        if up is None and filtered and s.propagate > 0 and s.wall_candidates and len(sweep.c2w) > 1:
            up = road_normal_in_camera(sweep.c2w)      # no road plane: the path's, once for all frames
        out = {}
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
                d = _fill_planar_holes(d, int(s.fill_planes * d.size), blank=blank)
            d = _fill_small_holes(d, s.fill_holes_px)
            sky = np.zeros(d.shape, bool)
            if s.sky:
                gray = raw[i][5].cpu().numpy()
                sky = _sky_mask(d, texture.cpu().numpy(), gray, s.min_texture)
            filled = np.zeros(d.shape, bool)
            moving_mask = np.zeros(d.shape, bool)
            if filtered and s.moving and road is not None:
                moving_mask, moving_depth = _moving_mask(raw[i][0].cpu().numpy(), cost.cpu().numpy(),
                                                         texture.cpu().numpy(), bounds_of[i][1], road, s,
                                                         raw[i][2].cpu().numpy(), sweep.intr.fy)
                d = np.where(moving_mask, np.nan, d)
            if ceiling is not None:
                with np.errstate(invalid="ignore"):
                    under = np.isfinite(d) & (d > ceiling)        # NaN ceiling compares false
                d = np.where(under, np.nan, d)
                measured &= ~under
            if filtered and s.propagate > 0:
                step = _near_side_of_depth_steps(d, s.edge_recheck_px, s.edge_recheck_ratio)
                d_checked = d
                d, filled = _propagate(sweep, i, chosen[i], np.where(step, np.nan, d), sky | moving_mask, road, s,
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
                from ..video import resize_depth

                conf = resize_depth(conf, intr.width, intr.height)
            out[i] = (full, conf)
            if moving is not None:
                from ..video import resize_depth

                moving[i] = resize_depth(moving_mask.astype(np.float32), intr.width, intr.height) > 0.5
    return out


def _wall_along(sweep: PlaneSweep, ref: int, up: np.ndarray | None) -> tuple[torch.Tensor, torch.Tensor] | None:
    """(n . ray, |ray|) per pixel (matching size, rays with z = 1) for the wall normal n of frame
    ``ref``: horizontal (across ``up``, the road's normal; None: the camera's y axis) and across
    the direction of travel (the camera's motion over the frames 2 either side; its optical axis
    where it stands still), i.e. the normal of a facade or a parked car's side along the street.
    None when the travel direction is vertical."""
    c2w = sweep.c2w
    n = len(c2w)
    if up is None:
        up = np.array([0.0, 1.0, 0.0])
    up = np.asarray(up, np.float64) / max(np.linalg.norm(up), 1e-12)
    a, b = max(0, ref - 2), min(n - 1, ref + 2)
    travel = c2w[ref][:3, :3].T @ (c2w[b][:3, 3] - c2w[a][:3, 3])
    if np.linalg.norm(travel) < 1e-9:
        travel = np.array([0.0, 0.0, 1.0])
    normal = np.cross(up, travel / np.linalg.norm(travel))
    if np.linalg.norm(normal) < 0.1:                   # travelling up or down: no street walls
        return None
    normal /= np.linalg.norm(normal)
    rays = (sweep.K_inv @ sweep.pix).float()                               # (3,hw)
    w, h = sweep.size
    along = (torch.as_tensor(normal, dtype=torch.float32, device=sweep.device) @ rays).reshape(h, w)
    return along, rays.norm(dim=0).reshape(h, w)


def _propagate(sweep: PlaneSweep, ref: int, sources: list[int], depth: np.ndarray, sky: np.ndarray,
               road: np.ndarray | None, s: MVSSettings,
               ceiling: np.ndarray | None = None, up: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Depth propagated into the unmeasured, non-sky pixels of ``depth`` (matching size): per
    pass, each such pixel takes the candidate (_propagation_candidates) that the source frames
    contradict least, if they do not contradict it (photometric cost <= s.propagate_cost).
    ``ceiling`` (h,w, NaN: none): no candidate may lie beyond it, the road rule the matched depths
    already follow (on the blank road a neighbour's far depth passes the photometric check as
    well as the road does). ``up``: the road's normal in camera coordinates (dense_depth: the
    road plane's, else the path's; default: the camera's y axis), for the wall candidates
    (s.wall_candidates).
    Returns the depth and the mask of propagated pixels."""
    dev = sweep.device
    d = torch.from_numpy(np.ascontiguousarray(depth, dtype=np.float32)).to(dev)
    filled = torch.zeros(d.shape, dtype=torch.bool, device=dev)
    if not sources:
        return depth.copy(), filled.cpu().numpy()
    sky_t = torch.from_numpy(np.ascontiguousarray(sky)).to(dev)
    # The reference's grey, 3x3 mean (compression noise on blank surfaces is about 0.01).
    gray = F.avg_pool2d(F.pad(sweep.frame(ref)[0], (1, 1, 1, 1), mode="replicate"), 3, stride=1)[0, 0]
    road_t = None if road is None else torch.from_numpy(np.ascontiguousarray(road, dtype=np.float32)).to(dev)
    nan = torch.tensor(float("nan"), device=dev)
    # On blank surfaces every candidate passes the photometric check; the one taken then is the
    # likelier shape: the road plane (a prior that holds below the horizon), then a plane through
    # the rim (interpolation), then a surface continued from one side.
    wall = _wall_along(sweep, ref, up) if s.wall_candidates else None
    weights = (CANDIDATE_WEIGHTS + ((WALL_WEIGHT,) * 2 if wall is not None else ())
               + ((ROAD_WEIGHT,) if road_t is not None else ()))
    weights = torch.tensor(weights, dtype=torch.float32, device=dev)[:, None, None]
    # The lowest inverse depth a candidate may have (0 where the ceiling sets none).
    floor = None
    if ceiling is not None:
        floor = torch.from_numpy(np.nan_to_num(1.0 / ceiling, nan=0.0).astype(np.float32)).to(dev)
    with torch.no_grad():
        for _ in range(s.propagate):
            rho = torch.where(torch.isfinite(d) & (d > 0), 1.0 / d, nan)
            cand = _propagation_candidates(rho, road_t, road_occlusion=s.road_occlusion, gray=gray,
                                           road_colour=s.road_colour, wall=wall)
            if floor is not None:
                cand = torch.where(cand < floor, nan, cand)
            ok = torch.isfinite(cand)
            target = ~torch.isfinite(d) & ~sky_t & ok.any(0)
            if not bool(target.any()):
                break
            cost = sweep.photo_cost(ref, sources, torch.nan_to_num(cand, nan=1e-6))
            cost = torch.where(ok, cost, torch.full_like(cost, float("inf")))
            best = (cost * weights).argmin(0)
            best_cost = torch.gather(cost, 0, best[None])[0]
            accept = target & (best_cost <= s.propagate_cost)
            if not bool(accept.any()):
                break
            value = torch.gather(cand, 0, best[None])[0]
            d = torch.where(accept, 1.0 / value, d)
            filled |= accept
    d, filled = d.cpu().numpy(), filled.cpu().numpy()
    if filled.any() and s.propagate_median:
        # Candidates chosen per pixel leave streaks where several fit about equally (blank
        # surfaces); a median of the inverse depth over 5x5 evens them out (propagated pixels only).
        import cv2

        inv = np.where(np.isfinite(d), 1.0 / np.where(np.isfinite(d), d, 1.0), 0.0).astype(np.float32)
        med = cv2.medianBlur(inv, 5)
        use = filled & (med > 0)
        if floor is not None:
            # The median mixes in matched neighbours' inverse depths: the road rule holds after it too.
            med = np.maximum(med, floor.cpu().numpy())
        d[use] = 1.0 / med[use]
    return d, filled


def depth_coverage(depth: np.ndarray) -> float:
    """Share of pixels with a measured (finite, positive) depth."""
    return float(np.mean(np.isfinite(depth) & (depth > 0))) if depth.size else 0.0


__all__ = ["MVSSettings", "PlaneSweep", "dense_depth", "depth_bounds", "depth_coverage", "matching_size"]
