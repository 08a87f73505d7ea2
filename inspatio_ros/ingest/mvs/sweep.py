"""Plane-sweep stereo (PyTorch, CPU or CUDA): the raw depth of a reference frame from its neighbours.

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
sub-step parabola fit. PlaneSweep also gives the photometric cost propagation checks its
candidates with (photo_cost) and the multi-view consistency count (consistent_count).
"""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ...camera import Intrinsics
from ...runtime import thread_kernel
from .settings import MVSSettings


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


def box_mean(x: torch.Tensor, window: int) -> torch.Tensor:
    """Mean over window x window neighbourhoods, per channel (separable; borders replicated).
    On the CPU OpenCV's running-sum box filter, plane by plane (13x less CPU time than torch's
    depthwise convolution, which was a third of the CPU sweep; its double sums are as exact)."""
    if x.device.type == "cpu" and x.dtype == torch.float32 and window > 1:
        return _box_cpu(x, window)
    r = window // 2
    c = x.shape[1]
    k = torch.full((c, 1, 1, window), 1.0 / window, dtype=x.dtype, device=x.device)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), k, groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), k.transpose(2, 3), groups=c)


def _box_cpu(x: torch.Tensor, window: int) -> torch.Tensor:
    import cv2

    planes = x.contiguous().numpy().reshape(-1, *x.shape[-2:])
    out = np.empty_like(planes)
    for k in range(len(planes)):
        cv2.blur(planes[k], (window, window), dst=out[k], borderType=cv2.BORDER_REPLICATE)
    return torch.from_numpy(out).reshape(x.shape)


def smallest_values(values, k: int) -> list[torch.Tensor]:
    """The k smallest of equally shaped tensors, per element, in ascending order (what
    torch.stack(values).topk(k, 0, largest=False) gives, sorted): an insertion network of
    elementwise minima and maxima, a few passes over memory where topk over a stacked leading
    dimension was a sixth of the CPU sweep."""
    best: list[torch.Tensor] = []
    for v in values:
        carry = v
        for j in range(len(best)):
            best[j], carry = torch.minimum(best[j], carry), torch.maximum(best[j], carry)
        if len(best) < k:
            best.append(carry)
    return best


def _mean_of_smallest(values, k: int) -> torch.Tensor:
    best = smallest_values(values, k)
    total = best[0]
    for b in best[1:]:
        total = total + b
    return total / len(best)


def cpu_kernels():
    """The sweep's numba kernels (cpu_kernels.py), loaded once per process; None without numba or
    with INSPATIO_CPU_KERNELS=0 (eager PyTorch, as for the Renderer)."""
    from ...runtime import optional_cpu_kernels

    return optional_cpu_kernels("inspatio_ros.ingest.mvs.cpu_kernels")


def _flat(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().cpu().numpy(), dtype=np.float32)


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
        # Pose units per unit of the settings' lengths (source_baseline, near): dense_depth sets it
        # from the scene's depth (scene_length_unit) when landmarks give it.
        self.length_unit = 1.0
        # On the CPU the matching costs run as fused numba kernels (cpu_kernels.py: the same
        # costs, ~5x less CPU time than eager PyTorch's pass over memory per operation); None:
        # the PyTorch code below (CUDA, or no numba).
        self.kernels = cpu_kernels() if device.type == "cpu" else None
        # photo_cost's last finest level ((ref, sources), level): propagation asks for the same
        # frame's costs pass after pass; its warps and packing are made once (~10 ms a pass).
        self._photo_level: tuple[tuple, tuple] | None = None

    def frame(self, i: int) -> list[torch.Tensor]:
        """Frame i's grey pyramid, (1,1,h,w) per level."""
        # (Read once and kept in a local: dense_depth's matching thread reads while the other
        # thread's forget() drops entries; at worst a pyramid is made twice, the same.)
        pyramid = self._cache.get(i)
        if pyramid is None:
            gray = torch.from_numpy(_to_gray(self.frames(i), self.size)).to(self.device)[None, None]
            pyramid = [gray]
            for g in self.grids[1:]:
                w, h = g.size
                pyramid.append(F.interpolate(pyramid[-1], size=(h, w), mode="area"))
            self._cache[i] = pyramid
        return pyramid

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
        ``source_baseline`` (times ``length_unit``) the step follows the camera's median motion per frame."""
        s = self.s
        step, max_offset = s.source_step, s.max_offset
        if s.source_baseline > 0 and median_step > 0:
            step = max(1, int(round(s.source_baseline * self.length_unit / median_step)))
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
        (ref_gray, ref_mean, ref_std), warps, size, _ = level
        P = rho.shape[0]
        w, h = size
        per_source = []
        for src_gray, a, b in warps:
            uv, ok = self._source_pixels(a, b, rho.reshape(P, -1), size)
            grid = torch.stack([2 * uv[..., 0] / (w - 1) - 1, 2 * uv[..., 1] / (h - 1) - 1], -1)
            grid = grid.reshape(P, h, w, 2).to(src_gray.dtype)
            warped = F.grid_sample(src_gray.expand(P, -1, -1, -1), grid, mode="bilinear",
                                   padding_mode="border", align_corners=True)        # (P,1,h,w)
            stats = box_mean(torch.cat([warped, warped * warped, warped * ref_gray], 1), self.s.window)
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
        return _mean_of_smallest(per_source, min(self.s.best_k, len(per_source)))

    def _level(self, ref: int, sources: list[int], n: int):
        grid = self.grids[n]
        ref_gray = self.frame(ref)[n]
        st = box_mean(torch.cat([ref_gray, ref_gray * ref_gray], 1), self.s.window)
        ref_mean = st[:, 0:1]
        ref_std = (st[:, 1:2] - ref_mean * ref_mean).clamp_min(0).sqrt()
        warps = [(self.frame(j)[n], *self._relative(ref, j, grid)) for j in sources]
        packed = None
        if self.kernels is not None and warps:
            # The same level as contiguous float32 arrays for the kernels: per pixel (hw,) the
            # reference's grey and window statistics; per source (N,...) its grey, a and b.
            packed = {"ref": _flat(ref_gray).ravel(), "ref_mean": _flat(ref_mean).ravel(),
                      "ref_std": _flat(ref_std).ravel(),
                      "srcs": np.ascontiguousarray(np.stack([_flat(g[0, 0]) for g, _, _ in warps])),
                      "a": np.ascontiguousarray(np.stack([_flat(a) for _, a, _ in warps])),
                      "b": np.ascontiguousarray(np.stack([_flat(b).ravel() for _, _, b in warps])),
                      "shape": (grid.size[1], grid.size[0])}
        return (ref_gray, ref_mean, ref_std), warps, grid.size, packed

    @staticmethod
    def _cropped(level, rows: slice, cols: slice):
        """The kernels' level restricted to the reference pixels rows x cols (the sources whole):
        costs inside the crop farther than the box window from its edges are those of the
        whole level."""
        packed = level[3]
        h, w = packed["shape"]

        def crop(flat):
            return np.ascontiguousarray(flat.reshape(*flat.shape[:-1], h, w)[..., rows, cols]).reshape(
                *flat.shape[:-1], -1)
        sub = {**packed, "ref": crop(packed["ref"]), "ref_mean": crop(packed["ref_mean"]),
               "ref_std": crop(packed["ref_std"]), "a": crop(packed["a"]),
               "shape": (rows.stop - rows.start, cols.stop - cols.start)}
        return level[0], level[1], level[2], sub

    def _sweep(self, level, hypotheses: torch.Tensor) -> torch.Tensor:
        """Costs (P,h,w) of hypotheses (P,h,w), in chunks that bound memory."""
        w, h = level[2]
        packed = level[3]
        if packed is not None:
            # All planes at once (no chunks: the kernel holds one plane's scratch per thread).
            P = len(hypotheses)
            rh, rw = packed["shape"]
            out = np.empty((P, rh * rw), np.float32)
            zncc_cost = thread_kernel(self.kernels.zncc_cost)     # single-threaded on dense_depth's worker
            zncc_cost(packed["ref"], packed["ref_mean"], packed["ref_std"], rh, rw, packed["srcs"], packed["a"],
                      packed["b"], _flat(hypotheses).reshape(P, -1), self.s.window, self.s.shift_window,
                      self.s.best_k, out)
            return torch.from_numpy(out).reshape(P, rh, rw)
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

    def _second_best(self, level, volume: torch.Tensor, hyps: torch.Tensor, winner: torch.Tensor,
                     basin_px: float) -> torch.Tensor:
        """(h,w): the lowest cost of ``volume`` (P,h,w) outside the winner's basin
        (_away_from_winner), 2 where every hypothesis is inside it."""
        packed = level[3]
        if packed is None:
            away = self._away_from_winner(level, hyps, winner, basin_px)
            return torch.where(away, volume, torch.full_like(volume, 2.0)).amin(0)
        P = volume.shape[0]
        w, h = level[2]                       # the sources' size
        rh, rw = packed["shape"]              # the reference pixels' (a crop of the level, or all)
        out = np.empty(rh * rw, np.float32)
        second_best_away = thread_kernel(self.kernels.second_best_away)
        second_best_away(_flat(volume).reshape(P, -1), _flat(hyps).reshape(P, -1),
                         np.ascontiguousarray(winner.cpu().numpy().ravel(), dtype=np.int64),
                         packed["a"], packed["b"], h, w, float(basin_px), out)
        return torch.from_numpy(out).reshape(rh, rw)

    @staticmethod
    def _parabola(costs: torch.Tensor, hypotheses: torch.Tensor):
        """Winner of evenly spaced hypotheses with a sub-step parabola fit: (rho, cost)."""
        n = len(costs)
        lowest, k = costs.min(0)          # min's indices: argmin over dim 0 took 6x longer on the CPU
        k = k.clamp(1, n - 2)
        c0 = costs.gather(0, (k - 1)[None])[0]
        c1 = costs.gather(0, k[None])[0]
        c2 = costs.gather(0, (k + 1)[None])[0]
        denom = c0 - 2 * c1 + c2
        shift = torch.where(denom > 1e-9, 0.5 * (c0 - c2) / denom.clamp_min(1e-9), torch.zeros_like(denom))
        shift = shift.clamp(-0.5, 0.5)
        h0 = hypotheses.gather(0, k[None])[0]
        step = hypotheses[1] - hypotheses[0]
        return h0 + shift * step, torch.minimum(c1, lowest)

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
        # The kernels sweep a slanted family only over the pixels that see it (and a box window
        # around them): the road family below the horizon, each facade family on its side of the
        # image. Elsewhere its cost is 2, which never beats the fronto-parallel family's.
        margin = s.window // 2 + s.shift_window // 2
        for normal in PLANE_NORMALS[:len(PLANE_NORMALS) if s.slanted_planes else 1]:
            # Planes n.X = 1/q: inverse depth q * (n . ray), affine in the pixel coordinates.
            along = (torch.tensor(normal, dtype=torch.float32, device=self.device) @ rays).reshape(h, w)
            reach = float(along.max())
            if reach <= 0:
                continue
            q = torch.linspace(rho_min / reach, rho_max / reach, D, dtype=torch.float32, device=self.device)
            seen = along > 0.05 * reach            # planes seen nearly edge-on are not swept
            rows, cols = slice(0, h), slice(0, w)
            family_level = level
            if best_rho is not None and level[3] is not None:
                rows, cols = _bounding_slices(seen, margin)
                family_level = self._cropped(level, rows, cols)
            along, seen = along[rows, cols], seen[rows, cols]
            hyps = q[:, None, None] * torch.where(seen, along, torch.full_like(along, reach))[None]
            volume = self._sweep(family_level, hyps)
            volume = torch.where(seen[None], volume, torch.full_like(volume, 2.0))
            winner_cost, winner = volume.min(0)
            # Ambiguity: the best cost away from the winner's basin against the winner.
            second = self._second_best(family_level, volume, hyps, winner, s.ambiguity_basin_px)
            rho_n, cost_n = self._parabola(volume, hyps)
            del volume
            if best_rho is None:
                best_rho, best_cost, ambiguity = rho_n, cost_n, winner_cost / second.clamp_min(1e-6)
            else:
                better = cost_n < best_cost[rows, cols]
                best_rho[rows, cols] = torch.where(better, rho_n, best_rho[rows, cols])
                ambiguity[rows, cols] = torch.where(better, winner_cost / second.clamp_min(1e-6),
                                                    ambiguity[rows, cols])
                best_cost[rows, cols] = torch.where(better, cost_n, best_cost[rows, cols])
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
            du, dv = uv1[0, :, 0] - uv0[0, :, 0], uv1[0, :, 1] - uv0[0, :, 1]
            # (norm() over the last axis of this permuted layout cost 100x more)
            move = (du * du + dv * dv).sqrt() / 0.01                 # px per unit relative depth
            sensitivity = torch.maximum(sensitivity, torch.where(ok0[0], move, torch.zeros_like(move)))
        uncertainty = (0.5 / sensitivity.clamp_min(1e-9)).reshape(h, w)
        return depth, cost, ambiguity, level[0][2][0, 0], uncertainty, level[0][0][0, 0]

    def photo_cost(self, ref: int, sources: list[int], rho: torch.Tensor,
                   wanted: torch.Tensor | None = None) -> torch.Tensor:
        """Photometric cost (P,h,w) of per-pixel inverse depths rho (P,h,w) at the matching size:
        mean absolute grey difference over small windows, mean of the best k sources among those
        that see the point (fewer if fewer see it; 2: outside every source). Unlike ZNCC it is
        defined on texture-less surfaces, where it only says that the depth is not contradicted.
        Counting unseen sources as failures (2) would leave unchecked whatever a single source
        sees: the image border of an early frame of a forward drive, which only the one source
        behind it sees (the others are ahead and see less).
        ``wanted`` (P,h,w bool): the costs the caller reads; elsewhere the result is unspecified
        (the CPU kernel leaves 2 there and skips the work: propagation reads a quarter of them)."""
        key = (ref, tuple(sources))
        if self._photo_level is None or self._photo_level[0] != key:
            self._photo_level = (key, self._level(ref, sources, 0))
        level = self._photo_level[1]
        (ref_gray, _, _), warps, size, packed = level
        w, h = size
        P = rho.shape[0]
        if packed is not None:
            out = np.empty((P, h * w), np.float32)
            if wanted is None:
                sad_cost = thread_kernel(self.kernels.sad_cost)
                sad_cost(packed["ref"], h, w, packed["srcs"], packed["a"], packed["b"], _flat(rho).reshape(P, -1),
                         self.s.propagate_window, self.s.best_k, out)
            else:
                sad_cost_at = thread_kernel(self.kernels.sad_cost_at)
                sad_cost_at(packed["ref"], h, w, packed["srcs"], packed["a"], packed["b"], _flat(rho).reshape(P, -1),
                            np.ascontiguousarray(wanted.cpu().numpy().reshape(P, -1), dtype=np.bool_),
                            self.s.propagate_window, self.s.best_k, out)
            return torch.from_numpy(out).reshape(P, h, w)
        per_source = []
        for src_gray, a, b in warps:
            uv, ok = self._source_pixels(a, b, rho.reshape(P, -1), size)
            grid = torch.stack([2 * uv[..., 0] / (w - 1) - 1, 2 * uv[..., 1] / (h - 1) - 1], -1)
            warped = F.grid_sample(src_gray.expand(P, -1, -1, -1), grid.reshape(P, h, w, 2).to(src_gray.dtype),
                                   mode="bilinear", padding_mode="border", align_corners=True)
            sad = box_mean((warped - ref_gray).abs(), self.s.propagate_window)[:, 0]
            per_source.append(torch.where(ok.reshape(P, h, w), sad, torch.full_like(sad, 2.0)))
        best = torch.stack(smallest_values(per_source, min(self.s.best_k, len(per_source))))
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
            du, dv = uv_back[0] - self.pix[0], uv_back[1] - self.pix[1]
            round_trip = (du * du + dv * dv).sqrt()
            agree = (inside & known & there_known & (zb > 1e-9) & (round_trip < s.consistency_px)
                     & ((zb - d).abs() < s.consistency_depth * d))
            count += agree.int()
        return count.reshape(h, w)


# The scene depths (median depth of the landmarks in view, scene_length_unit) at which the
# settings' lengths in pose units hold as they are: the synthetic streets', where they were set
# (21-26 m from the odometry's landmarks on seeds 4 and 1), and the rooms built from video
# without scale (21 units, 5.5 units a metre). Inside the band they are kept: scaled there, seed
# 1's source step went from 2 to 3 frames and its depth AbsRel from 0.110 to 0.116; outside it
# (a room in metres: 3.5; a world in millimetres) they scale with the scene.
REFERENCE_SCENE_DEPTH = 20.0
REFERENCE_BAND = (10.0, 40.0)


def landmark_depths_in_view(c2w: np.ndarray, intr: Intrinsics, landmarks: np.ndarray) -> np.ndarray:
    """Depths (z in camera ``c2w``) of the ``landmarks`` (N,3) in front of it that land in its image."""
    pc = (landmarks - c2w[:3, 3]) @ c2w[:3, :3]
    z = pc[:, 2]
    front = z > 1e-9
    u = pc[front, 0] / z[front] * intr.fx + intr.cx
    v = pc[front, 1] / z[front] * intr.fy + intr.cy
    return z[front][(u >= 0) & (u < intr.width) & (v >= 0) & (v < intr.height)]


def scene_points_from_poses(frames: Callable[[int], np.ndarray], c2w: np.ndarray, intr: Intrinsics,
                            indices: list[int], references: int = 8, span: int = 15,
                            min_deg: float = 1.0) -> np.ndarray | None:
    """Sparse scene points (M,3) for poses that came without landmarks (given poses): corners of
    up to ``references`` frames spread over ``indices``, followed by Lucas-Kanade through the next
    frames of ``indices`` (up to ``span``) and triangulated with the given poses from the
    reference to the last frame that still sees them, where their rays meet at ``min_deg`` or
    more. Only the scene's depth is taken from them (scene_length_unit); None when too few.
    Without them a room with metric poses was measured with the streets' lengths: a 1.6 m source
    baseline for a camera moving 5 cm a frame, no source for most frames, half the pixels unknown."""
    try:
        import cv2
    except ImportError:          # OpenCV is optional for given poses: the settings' lengths as they are
        return None
    from ..odometry import triangulate_pair
    order = sorted(int(i) for i in indices)
    if len(order) < 2:
        return None
    K = intr.K.astype(np.float64)
    lk = dict(winSize=(21, 21), maxLevel=3, criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 30, 0.01))

    def gray(i):
        image = frames(i)
        return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)

    found = []
    starts = np.unique(np.linspace(0, len(order) - 2, min(references, len(order) - 1)).round().astype(int))
    for k in starts:
        ref = order[k]
        prev = gray(ref)
        start = cv2.goodFeaturesToTrack(prev, maxCorners=400, qualityLevel=0.01, minDistance=8)
        if start is None:
            continue
        start = start.reshape(-1, 2).astype(np.float32)
        pts, alive = start.copy(), np.ones(len(start), bool)
        best = np.zeros(len(start), bool)
        xyz_best = np.zeros((len(start), 3))
        for j in order[k + 1:k + 1 + span]:
            cur = gray(j)
            idx = np.nonzero(alive)[0]
            moved, st, _ = cv2.calcOpticalFlowPyrLK(prev, cur, pts[idx].reshape(-1, 1, 2), None, **lk)
            back, st_back, _ = cv2.calcOpticalFlowPyrLK(cur, prev, moved, None, **lk)
            moved = moved.reshape(-1, 2)
            ok = ((st.ravel() == 1) & (st_back.ravel() == 1)
                  & (np.linalg.norm(back.reshape(-1, 2) - pts[idx], axis=1) < 1.0))
            pts[idx] = moved
            alive[idx[~ok]] = False
            prev = cur
            if alive.sum() < 8:
                break
            idx = np.nonzero(alive)[0]
            xyz, good = triangulate_pair(cv2, K, c2w[ref], c2w[j], start[idx], pts[idx], min_deg)
            best[idx[good]] = True
            xyz_best[idx[good]] = xyz[good]
        found.append(xyz_best[best])
    points = np.concatenate(found) if found else np.zeros((0, 3))
    return points if len(points) >= 20 else None


def scene_length_unit(c2w: np.ndarray, intr: Intrinsics, landmarks: np.ndarray | None, indices: list[int],
                      max_frames: int = 64) -> float:
    """Pose units per unit of MVSSettings' lengths (source_baseline, near): the median over (up to
    ``max_frames`` evenly spread) ``indices`` of the landmarks' median depth in view, divided by
    REFERENCE_SCENE_DEPTH; 1.0 without landmarks or when that depth lies in REFERENCE_BAND. A world's unit is whatever scale gave it: metres
    (camera height, RGB-D) or the odometry's own unit (unscaled). Taken as pose units, a 1.6 m
    source baseline in a metric room (camera moving 3 cm a frame) put every source beyond the clip
    and left no depth at all; relative to the scene it is the same parallax angle in a street or a
    room, whatever the unit."""
    if landmarks is None or len(landmarks) < 20 or not len(indices):
        return 1.0
    pick = np.asarray(indices)[np.linspace(0, len(indices) - 1, min(max_frames, len(indices))).round().astype(int)]
    medians = []
    for i in pick:
        seen = landmark_depths_in_view(c2w[i], intr, landmarks)
        if len(seen) >= 20:
            medians.append(float(np.median(seen)))
    if not medians:
        return 1.0
    depth = float(np.median(medians))
    return 1.0 if REFERENCE_BAND[0] <= depth <= REFERENCE_BAND[1] else depth / REFERENCE_SCENE_DEPTH


def _bounding_slices(mask: torch.Tensor, margin: int) -> tuple[slice, slice]:
    """Rows and columns of the smallest box holding ``mask`` (h,w), grown by ``margin`` within
    the image; the whole image when the mask is empty."""
    h, w = mask.shape
    rows = torch.nonzero(mask.any(1))[:, 0]
    cols = torch.nonzero(mask.any(0))[:, 0]
    if not len(rows):
        return slice(0, h), slice(0, w)
    return (slice(max(int(rows[0]) - margin, 0), min(int(rows[-1]) + 1 + margin, h)),
            slice(max(int(cols[0]) - margin, 0), min(int(cols[-1]) + 1 + margin, w)))


def depth_bounds(c2w_ref: np.ndarray, intr: Intrinsics, landmarks: np.ndarray | None,
                 settings: MVSSettings, length_unit: float = 1.0) -> tuple[float, float]:
    """Near and far depth for a reference camera: from the landmarks in its view (with margin),
    else the settings. The near bound is never beyond ``settings.near``: the odometry triangulates
    corners it tracked over several frames, and the nearest surfaces (a parked car passing at 2-5
    m, the road at the image bottom) cross the frame too fast to be tracked. Bounded by the
    landmarks alone (3-9 m on the synthetic street) the sweep could not reach them and matched
    them at the wrong depth: street depth AbsRel 0.127 with that bound, 0.105 with 1.0 m.
    ``length_unit`` (scene_length_unit) scales ``settings.near`` to the scene."""
    if landmarks is not None and len(landmarks) >= 20:
        seen = landmark_depths_in_view(c2w_ref, intr, landmarks)
        if len(seen) >= 20:
            near = min(0.6 * float(np.percentile(seen, 2)), settings.near * length_unit)
            far = 2.0 * float(np.percentile(seen, 98))
            return near, max(far, 3.0 * near)
    return settings.near, settings.far
