"""Depth propagation into the pixels matching could not measure (``MVSSettings.propagate``).

Per unmeasured pixel, candidates from interpolation between measured rims, the nearest measured
values, walls continued along the direction of travel, the road plane fitted to the measured
points low in the frames and surfaces standing on it; the one the source frames contradict least (absolute grey
differences, PlaneSweep.photo_cost) is kept if they do not contradict it.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from .settings import MVSSettings
from .sweep import PlaneSweep


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


# Preference among the candidates of propagation_candidates (cost multipliers, in its order:
# row interpolation, left, right, column interpolation, above, below, then, where given, the
# walls through the nearest known pixel left and right, and the surface standing on the road and
# the road plane).
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
    (NaN where there is none within reach), as propagation_candidates found them. Not where the
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


# Things stand on the road: a blank surface that rises from it (the side of a parked car, a hedge,
# a kerbside wall) gets this preference, the road plane's (ROAD_WEIGHT): the two priors cover
# disjoint pixels (road-coloured or not).
STANDING_WEIGHT = 0.5


# Two known inverse depths this close (relative) are one surface.
SAME_SURFACE = 0.05


def _standing_on_road(rho: torch.Tensor, known: torch.Tensor, road: torch.Tensor, road_like: torch.Tensor,
                      max_gap: float, road_reach: torch.Tensor | None) -> torch.Tensor:
    """Inverse depth of a vertical surface standing on the road where the pixel's column meets it
    (h,w; NaN where none): the road plane's at the nearest road-like pixel below (``road_like``:
    known on the road plane, or unknown with the road's grey), for the pixels that are not
    road-like themselves. A camera whose up is about its y axis sees a vertical surface at one
    z-depth down a column, so the surface keeps the contact's depth up to the pixel. None where a
    known pixel of another depth lies between the pixel and the contact (the surface there is
    measured: the "below" candidate carries it), where the contact is more than ``max_gap`` of
    the image height away, or outside ``road_reach`` (h,w bool: where the road plane is close
    enough that a few degrees of slope cannot move it much, the ceiling's region; near the
    horizon a facade of the road's grey reads as road up to there and would be stood 70 m away).
    Why: a blank near surface has no matched pixel, and every candidate from its rim passes the
    photometric check; the one taken was often the facade behind it (above, left) or a row
    interpolation across it, 1.3-3.4x too far (docs/notes/2026-12-05-depth.md)."""
    h = rho.shape[0]
    nan = torch.full_like(rho, float("nan"))
    contact = _nearest_along(road_like, 0, True)
    at = contact.clamp(0, h - 1)
    value = torch.gather(road, 0, at)
    rows = torch.arange(h, device=rho.device)[:, None].expand_as(rho)
    ok = (contact >= 0) & ~road_like & torch.isfinite(value) & (contact - rows <= max_gap * h)
    below = _nearest_along(known & ~road_like, 0, True)
    rho_below = torch.gather(rho, 0, below.clamp(0, h - 1))
    other_surface = (below >= 0) & (below < contact) & ~(torch.abs(rho_below / value - 1) <= SAME_SURFACE)
    ok &= ~other_surface
    if road_reach is not None:
        ok &= torch.gather(road_reach, 0, at)
    return torch.where(ok, value, nan)


def propagation_candidates(rho: torch.Tensor, road: torch.Tensor | None, max_gap: float = 0.5,
                            road_occlusion: float = 0.0, gray: torch.Tensor | None = None,
                            road_colour: float = 0.0, wall: tuple[torch.Tensor, torch.Tensor] | None = None,
                            road_reach: torch.Tensor | None = None, standing: bool = True) -> torch.Tensor:
    """Inverse-depth candidates (C,h,w) for the unknown (NaN) pixels of ``rho`` (h,w): linear
    interpolation between the nearest known pixels left and right, and above and below (exact on
    a plane: its inverse depth is affine in pixel coordinates), each of those four nearest
    values alone (a surface continuing to an occlusion edge), where ``wall`` ((n . ray, |ray|)
    per pixel, n the wall normal) is given the walls through the nearest known pixels left and
    right (_rows_of_walls), where ``road`` is given and ``standing`` a surface standing on the
    road where the column meets it (_standing_on_road; needs ``gray`` and ``road_colour``,
    limited to ``road_reach``), and the road plane (last). NaN where a candidate does not exist;
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
        road_raw = road
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
            if standing:
                out.append(_standing_on_road(rho, known, road_raw, on_road | (~known & torch.isfinite(road)),
                                             max_gap, road_reach))
        elif standing:
            out.append(torch.full_like(rho, float("nan")))   # no grey: nothing tells road from what stands on it
        out.append(road)
    cand = torch.stack(out).float()
    # One elementwise pass (a boolean-mask assignment into the stack cost several).
    return torch.where(~known & (cand > 0), cand, nan)


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
    return along, (rays * rays).sum(0).sqrt().reshape(h, w)   # norm(dim=0) here took 0.2 s on the CPU


def photo_tolerance(gray: torch.Tensor, s: MVSSettings) -> torch.Tensor | float:
    """Mean |grey difference| a propagated depth may leave per pixel (h,w): s.propagate_cost plus
    the difference a position error of s.propagate_shift_px leaves at the window's grey
    gradient (its mean |gradient| over the window, grey per px). At the right depth a near
    surface still differs across its edges: the sources that see it from behind show it smaller
    (a parked van at 3 m from 2 m back: 0.6x), and bilinear sampling of the minified edges
    leaves a 5x5 window 0.04-0.07 apart (synthetic street seed 1), so every candidate on it,
    the right one included, failed 0.035 and the van stayed unknown; the fused world showed the
    facade behind it there. A wrong depth moves a window by pixels, not a fraction of one, and
    leaves the edge's whole contrast (docs/notes/2026-12-05-depth-matching.md)."""
    if s.propagate_shift_px <= 0:
        return s.propagate_cost
    g = F.pad(gray[None, None], (1, 1, 1, 1), mode="replicate")[0, 0]
    gx = 0.5 * (g[1:-1, 2:] - g[1:-1, :-2])
    gy = 0.5 * (g[2:, 1:-1] - g[:-2, 1:-1])
    k = s.propagate_window
    mean_gradient = F.avg_pool2d(F.pad((gx * gx + gy * gy).sqrt()[None, None], (k // 2,) * 4, mode="replicate"),
                                 k, stride=1)[0, 0]
    return s.propagate_cost + s.propagate_shift_px * mean_gradient


def propagate_depth(sweep: PlaneSweep, ref: int, sources: list[int], depth: np.ndarray, sky: np.ndarray,
               road: np.ndarray | None, s: MVSSettings,
               ceiling: np.ndarray | None = None, up: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Depth propagated into the unmeasured, non-sky pixels of ``depth`` (matching size): per
    pass, each such pixel takes the candidate (propagation_candidates) that the source frames
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
    allowed = photo_tolerance(sweep.frame(ref)[0][0, 0], s)
    road_t = None if road is None else torch.from_numpy(np.ascontiguousarray(road, dtype=np.float32)).to(dev)
    nan = torch.tensor(float("nan"), device=dev)
    # On blank surfaces every candidate passes the photometric check; the one taken then is the
    # likelier shape: the road plane or what stands on it (priors that hold below the horizon),
    # then a plane through the rim (interpolation), then a surface continued from one side.
    wall = _wall_along(sweep, ref, up) if s.wall_candidates else None
    weights = (CANDIDATE_WEIGHTS + ((WALL_WEIGHT,) * 2 if wall is not None else ())
               + ((STANDING_WEIGHT,) if road_t is not None and s.standing_candidates else ())
               + ((ROAD_WEIGHT,) if road_t is not None else ()))
    weights = torch.tensor(weights, dtype=torch.float32, device=dev)[:, None, None]
    # The lowest inverse depth a candidate may have (0 where the ceiling sets none).
    floor = None
    if ceiling is not None:
        floor = torch.from_numpy(np.nan_to_num(1.0 / ceiling, nan=0.0).astype(np.float32)).to(dev)
    with torch.no_grad():
        for _ in range(s.propagate):
            rho = torch.where(torch.isfinite(d) & (d > 0), 1.0 / d, nan)
            cand = propagation_candidates(rho, road_t, road_occlusion=s.road_occlusion, gray=gray,
                                           road_colour=s.road_colour, wall=wall,
                                           road_reach=None if floor is None else floor > 0,
                                           standing=s.standing_candidates)
            if floor is not None:
                cand = torch.where(cand < floor, nan, cand)
            ok = torch.isfinite(cand)
            target = ~torch.isfinite(d) & ~sky_t & ok.any(0)
            if not bool(target.any()):
                break
            # Only the costs of existing candidates at the target pixels are read (the CPU kernel
            # skips the rest: three quarters of the work).
            cost = sweep.photo_cost(ref, sources, torch.nan_to_num(cand, nan=1e-6), wanted=ok & target[None])
            cost = torch.where(ok, cost, torch.full_like(cost, float("inf")))
            best = (cost * weights).min(0).indices        # argmin over dim 0 is 6x slower on the CPU
            best_cost = torch.gather(cost, 0, best[None])[0]
            accept = target & (best_cost <= allowed)
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
