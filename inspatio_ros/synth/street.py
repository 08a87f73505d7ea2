"""The "street" scene: a two-lane road through a town, parked and moving cars, an ego car camera.

World frame (REP-103): z up, x forward along the street, y left. The driving lanes span
|y| < 3.5 m (ego lane y < 0, right-hand traffic), parking strips 3.5..5.7 m, sidewalks
5.7..8.5 m, building facades from 8.5 m (plus a per-building setback).
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch

from ..camera import make_pose, rotation_from_rpy
from .layout import FrozenLayout, Layout, Rng
from .noise import fbm2, hash01, value_noise2
from .shading import Surf, mix, rgb, smoothstep

# Material ids of this scene (0 is reserved for "no material").
GROUND, SIDEWALK, BUILDING, CAR_BODY, CAR_CABIN, TYRE, METAL, LAMP, TRUNK, FOLIAGE = range(1, 11)

LANE_HALF = 3.5        # each driving lane is 3.5 m wide
PARKING_OUT = 5.7      # outer edge of the parking strip (curb)
SIDEWALK_OUT = 8.5     # outer edge of the sidewalk (building line)
CURB_H = 0.15
EGO_LANE_Y = -1.75
ONCOMING_LANE_Y = 1.75

DEFAULTS: dict = {
    "duration": 6.0,        # s of ego motion the layout must cover (buildings extend beyond)
    "speed": 8.0,           # ego speed, m/s (+x)
    "camera_height": 1.5,   # m above the road
    "weave": 0.3,           # lateral weave amplitude, m
    "moving_objects": 1,    # moving cars
}

FACADE_COLORS = [
    (0.78, 0.70, 0.58), (0.66, 0.38, 0.30), (0.72, 0.72, 0.70), (0.85, 0.80, 0.66),
    (0.60, 0.66, 0.72), (0.80, 0.62, 0.40), (0.55, 0.52, 0.48), (0.84, 0.76, 0.72),
    (0.58, 0.64, 0.52), (0.74, 0.56, 0.50),
]
CAR_COLORS = [
    (0.70, 0.10, 0.08), (0.12, 0.22, 0.55), (0.72, 0.73, 0.75), (0.88, 0.88, 0.86),
    (0.10, 0.10, 0.11), (0.15, 0.38, 0.22), (0.85, 0.65, 0.15), (0.45, 0.47, 0.50),
]

# The analytic extra surface of this scene: the road plane z = 0 (no room).
GROUND_Z: float | None = 0.0
EXTRA_MATERIAL = GROUND


def room_bounds(params: dict) -> tuple[np.ndarray, np.ndarray] | None:
    return None


SUN = np.array([0.40, 0.30, 0.85]) / np.linalg.norm([0.40, 0.30, 0.85])


# ---------------------------------------------------------------------------------------------
# Layout
# ---------------------------------------------------------------------------------------------

def _add_car(lay: Layout, rng: Rng, x: float, y: float, heading: int, color, motion) -> None:
    """A car centred at (x, y) facing ``heading`` (+1: +x): body, cabin and two axle boxes."""
    length = rng.uniform(3.9, 4.7)
    width = rng.uniform(1.70, 1.90)
    body_lo, body_top = 0.32, rng.uniform(0.95, 1.10)
    cabin_top = body_top + rng.uniform(0.42, 0.52)
    seed = rng.int(1, 1 << 23)
    params = (float(heading), length, width)
    lay.add((x - length / 2, y - width / 2, body_lo), (x + length / 2, y + width / 2, body_top),
            CAR_BODY, color, (0, 0, 0), params, motion, seed)
    front_in, rear_in = rng.uniform(1.0, 1.3), rng.uniform(0.45, 0.7)
    c0 = x - length / 2 + (rear_in if heading > 0 else front_in)
    c1 = x + length / 2 - (front_in if heading > 0 else rear_in)
    lay.add((c0, y - width / 2 + 0.1, body_top), (c1, y + width / 2 - 0.1, cabin_top),
            CAR_CABIN, color, (0, 0, 0), params, motion, seed)
    for ax in (-1, 1):
        xc = x + ax * (length / 2 - 0.8)
        lay.add((xc - 0.32, y - width / 2 + 0.04, 0.0), (xc + 0.32, y + width / 2 - 0.04, 0.64),
                TYRE, (0.07, 0.07, 0.07), (0, 0, 0), params, motion, seed)


def build(seed: int, params: dict) -> FrozenLayout:
    rng = Rng(seed * 7919 + 1)
    lay = Layout()
    x0 = -60.0
    x1 = params["speed"] * params["duration"] + 250.0

    # Sidewalks (with the curb as their road-facing side).
    for s in (1, -1):
        lay.add((x0 - 50, s * PARKING_OUT, 0.0), (x1 + 50, s * SIDEWALK_OUT, CURB_H), SIDEWALK,
                (0.62, 0.61, 0.58), (0.70, 0.69, 0.66), seed=rng.int(1, 1 << 23))

    # Continuous facades with occasional alleys; every building has its own palette and seed.
    for s in (1, -1):
        x = x0
        while x < x1:
            if rng.chance(0.15):
                x += rng.uniform(2.0, 5.0)  # alley
            width = rng.uniform(8.0, 22.0)
            setback = 0.0 if rng.chance(0.6) else rng.uniform(0.3, 2.0)
            depth = rng.uniform(8.0, 16.0)
            floor_h = rng.uniform(2.9, 3.5)
            floors = rng.int(2, 7)
            height = floors * floor_h + rng.uniform(0.4, 1.2)
            base = rng.choice(FACADE_COLORS)
            wall = rng.jitter(base, 0.08)
            # Trim (frames, cornice) is the wall colour made lighter or darker, never a new hue.
            k = rng.uniform(1.12, 1.3) if rng.chance(0.6) else rng.uniform(0.6, 0.8)
            trim = [min(1.0, c * k) for c in wall]
            y_front = s * (SIDEWALK_OUT + setback)
            params_b = (floor_h, rng.uniform(2.2, 3.2), rng.uniform(0.38, 0.6), rng.uniform(1.2, 1.7),
                        1.0 if rng.chance(0.5) else 0.0)
            lay.add((x, y_front, 0.0), (x + width, y_front + s * depth, height), BUILDING, wall, trim,
                    params_b, seed=rng.int(1, 1 << 23))
            x += width

    # Street lights, with trees half-way between them.
    for s in (1, -1):
        x = x0 + rng.uniform(0, 10)
        while x < x1:
            yp = s * (PARKING_OUT + 0.35)
            lay.add((x - 0.1, yp - 0.1, CURB_H), (x + 0.1, yp + 0.1, 6.5), METAL, (0.42, 0.44, 0.46))
            lay.add((x - 0.07, yp, 6.3), (x + 0.07, yp - s * 1.8, 6.45), METAL, (0.42, 0.44, 0.46))
            lay.add((x - 0.3, yp - s * 1.5, 6.12), (x + 0.3, yp - s * 2.0, 6.32), LAMP, (0.92, 0.90, 0.82))
            gap = rng.uniform(22.0, 30.0)
            if rng.chance(0.65):
                xt, yt = x + gap / 2, s * (PARKING_OUT + 1.35)
                lay.add((xt - 0.16, yt - 0.16, CURB_H), (xt + 0.16, yt + 0.16, 2.6), TRUNK, (0.30, 0.22, 0.15))
                r = rng.uniform(1.0, 1.4)
                lay.add((xt - r, yt - r, 2.4), (xt + r, yt + r, rng.uniform(4.3, 5.2)), FOLIAGE,
                        rng.jitter((0.22, 0.38, 0.15), 0.12), seed=rng.int(1, 1 << 23))
            x += gap

    # Parked cars in the parking strips, facing the traffic direction of their side.
    for s in (1, -1):
        x = x0
        while x < x1:
            x += rng.uniform(1.2, 3.5)
            if rng.chance(0.25):
                x += rng.uniform(5.0, 9.0)  # empty bay
                continue
            _add_car(lay, rng, x + 2.3, s * (LANE_HALF + 1.1), -s, rng.jitter(rng.choice(CAR_COLORS), 0.05),
                     (0.0,) * 8)
            x += 4.7

    # Moving cars: even ones ahead in the ego lane (faster than ego, so they stay ahead), odd
    # ones oncoming. Cars of one lane share a speed, so they never collide.
    for i in range(int(params["moving_objects"])):
        color = rng.jitter(rng.choice(CAR_COLORS), 0.05)
        if i % 2 == 0:
            x, y, v, heading = 14.0 + 22.0 * (i // 2), EGO_LANE_Y, params["speed"] * 1.2, 1
        else:
            x, y, v, heading = 45.0 + 30.0 * (i // 2), ONCOMING_LANE_Y, -params["speed"], -1
        _add_car(lay, rng, x, y, heading, color, (v, 0, 0, 0, 0, 0, 0, 0))
    return lay.freeze()


def camera_pose(t: float, params: dict) -> np.ndarray:
    """Ego camera (OpenCV c2w): 8 m/s along +x in the ego lane, gentle weave and yaw, 1.7 deg down."""
    v, w = params["speed"], params["weave"]
    period = 5.0
    y = EGO_LANE_Y + w * math.sin(2 * math.pi * t / period)
    dy = w * 2 * math.pi / period * math.cos(2 * math.pi * t / period)
    yaw = math.atan2(dy, v) + 0.04 * math.sin(2 * math.pi * t / 3.7 + 0.5)
    pitch = 0.03 + 0.005 * math.sin(2 * math.pi * t / 2.3)
    body = rotation_from_rpy(0.0, pitch, yaw)
    return make_pose(body @ BODY_TO_OPTICAL, (v * t, y, params["camera_height"]))


# Columns: the optical x (right), y (down), z (forward) axes in the body frame (x fwd, y left, z up).
BODY_TO_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


# ---------------------------------------------------------------------------------------------
# Shading: albedo (and emission) per material
# ---------------------------------------------------------------------------------------------

def _ground(h: Surf, scene: Any) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = h.p[:, 0], h.p[:, 1]
    ay = y.abs()
    grain = fbm2(x, y, scene.seed + 11, [(0.15, 0.06), (0.8, 0.05), (3.0, 0.03), (9.0, 0.008)])
    asphalt = rgb((0.33, 0.33, 0.34), x) * (1.0 + grain)[:, None]
    # Repaired patches: large, low-frequency darker areas keyed by position.
    patch = smoothstep(0.62, 0.7, value_noise2(x * 0.08, y * 0.3, scene.seed + 12))
    asphalt = asphalt * (1.0 - 0.12 * patch)[:, None]
    parking = rgb((0.37, 0.36, 0.35), x) * (1.0 + grain)[:, None]
    dirt = rgb((0.34, 0.36, 0.25), x) * (1.0 + 2.0 * grain)[:, None]
    col = torch.where((ay < LANE_HALF)[:, None], asphalt, torch.where((ay < PARKING_OUT)[:, None], parking, dirt))
    dash = (ay < 0.075) & (torch.remainder(x, 6.0) < 3.0)
    edge = (ay - (LANE_HALF - 0.1)).abs() < 0.075
    wear = 0.92 + 0.08 * value_noise2(x * 2.0, y * 2.0, scene.seed + 13)
    paint = rgb((0.86, 0.85, 0.80), x) * wear[:, None]
    col = torch.where((dash | edge)[:, None], paint, col)
    return col, torch.zeros_like(x)


def _sidewalk(h: Surf, scene: Any) -> tuple[torch.Tensor, torch.Tensor]:
    x, y, z = h.p.unbind(-1)
    top = h.axis == 2
    fx, fy = torch.floor(x), torch.floor(y)
    slab = 0.93 + 0.10 * hash01(fx.long(), fy.long(), h.seed)
    seam = torch.minimum(torch.minimum(x - fx, 1 - (x - fx)), torch.minimum(y - fy, 1 - (y - fy))) < 0.02
    s, r = h.face_uv()
    noise = 1.0 + fbm2(s, r, h.seed, [(0.5, 0.04), (2.5, 0.03), (8.0, 0.01)])
    paving = h.color * (slab * torch.where(seam, 0.93, 1.0) * noise)[:, None]
    curb = h.color2 * noise[:, None]
    return torch.where(top[:, None], paving, curb), torch.zeros_like(x)


def _building(h: Surf, scene: Any) -> tuple[torch.Tensor, torch.Tensor]:
    s, r = h.face_uv()
    seed = h.seed * 8 + h.face_key()
    noise = fbm2(s, r, seed, [(0.12, 0.10), (0.6, 0.06), (2.5, 0.035), (8.0, 0.01)])
    wall = h.color * (1.0 + noise)[:, None]
    roof = rgb((0.30, 0.30, 0.31), s) * (1.0 + noise)[:, None]
    trim = h.color2 * (1.0 + 0.5 * noise)[:, None]

    s_lo, s_hi, _, top = h.face_extent()
    z = h.p[:, 2]
    floor_h, spacing, win_frac, win_h, shop = (h.param(i) for i in range(7, 12))
    length = s_hi - s_lo
    n_cells = torch.floor(length / spacing)
    margin = (length - n_cells * spacing) / 2
    cs = (s - s_lo - margin) / spacing
    ci = torch.floor(cs)
    fs = (cs - ci - 0.5).abs() * spacing             # metres from the window column centre
    fi = torch.floor(z / floor_h)
    fz = z - fi * floor_h                             # metres above this floor's level
    in_col = (ci >= 0) & (ci < n_cells)
    half_w = win_frac * spacing / 2
    upper = (fi >= 1) & (z < top - 0.7)
    sill = 0.85
    win = in_col & upper & (fs < half_w) & (fz > sill) & (fz < sill + win_h)
    frame = in_col & upper & (fs < half_w + 0.09) & (fz > sill - 0.12) & (fz < sill + win_h + 0.09) & ~win

    # Glass: darker than the wall but not black (window edges are the main source of resampling
    # error for a point-splat re-rendering); each window differs a little -- keyed by its cell.
    key = hash01(ci.long(), fi.long(), seed)
    key2 = hash01(ci.long() + 7, fi.long() - 3, seed)
    glass = rgb((0.24, 0.28, 0.34), s) * (0.8 + 0.4 * key)[:, None]
    curtain = rgb((0.62, 0.58, 0.50), s) * (0.8 + 0.3 * key)[:, None]
    glass = torch.where((key2 < 0.3)[:, None], curtain, glass)
    glass = glass + 0.10 * ((fz - sill) / win_h).clamp(0, 1)[:, None]  # sky reflection: lighter on top

    col = torch.where(frame[:, None], trim, wall)
    col = torch.where(win[:, None], glass, col)
    # Ground floor: a cornice band, shop windows (on shop buildings) and one door per facade.
    cornice = (fz > floor_h - 0.32) & (fz < floor_h - 0.05) & (fi == 0)
    parapet = z > top - 0.3
    col = torch.where((cornice | parapet)[:, None], trim, col)
    shop_win = (fi == 0) & (shop > 0.5) & in_col & (fs < 0.42 * spacing) & (z > 0.45) & (z < 2.45)
    shop_glass = rgb((0.24, 0.28, 0.32), s) * (0.85 + 0.3 * key)[:, None] + 0.08 * ((z - 0.45) / 2).clamp(0, 1)[:, None]
    col = torch.where(shop_win[:, None], shop_glass, col)
    door_s = s_lo + 0.8 + hash01(h.seed, 5) * (length - 2.8).clamp(min=0)
    door = (h.axis == 1) & (s > door_s) & (s < door_s + 1.2) & (z < 2.3)
    door_col = rgb((0.34, 0.22, 0.13), s) * (1.0 + 0.5 * noise)[:, None]
    col = torch.where(door[:, None], door_col, col)
    col = torch.where((h.axis == 2)[:, None], roof, col)
    return col, torch.zeros_like(s)


def _car_body(h: Surf, scene: Any) -> tuple[torch.Tensor, torch.Tensor]:
    x, y, z = h.p.unbind(-1)
    heading = h.param(7)
    lo, hi = h.lo, h.hi
    col = h.color * (1.0 + fbm2(x, y + z, h.seed, [(1.0, 0.02)]))[:, None]
    sill = (h.axis != 2) & (z < lo[:, 2] + 0.14)
    col = torch.where(sill[:, None], col * 0.55, col)
    # Lights on the front (headlights) and rear (tail lights) faces.
    end_face = h.axis == 0
    front = end_face & (torch.sign(h.n[:, 0]) == heading)
    yc = (lo[:, 1] + hi[:, 1]) / 2
    off = (y - yc).abs()
    half = (hi[:, 1] - lo[:, 1]) / 2
    lamp = end_face & (off > half - 0.45) & (off < half - 0.1) & (z > hi[:, 2] - 0.26) & (z < hi[:, 2] - 0.08)
    head = rgb((0.95, 0.95, 0.88), x).expand_as(col)
    tail = rgb((0.70, 0.08, 0.06), x).expand_as(col)
    col = torch.where((lamp & front)[:, None], head, col)
    col = torch.where((lamp & ~front)[:, None], tail, col)
    plate = end_face & (off < 0.26) & (z > lo[:, 2] + 0.18) & (z < lo[:, 2] + 0.30)
    col = torch.where(plate[:, None], rgb((0.85, 0.85, 0.82), x).expand_as(col), col)
    emit = torch.where(lamp & front, 0.4, 0.0)
    return col, emit


def _car_cabin(h: Surf, scene: Any) -> tuple[torch.Tensor, torch.Tensor]:
    s, r = h.face_uv()
    s_lo, s_hi, r_lo, r_hi = h.face_extent()
    glass_area = (s > s_lo + 0.08) & (s < s_hi - 0.08) & (r > r_lo + 0.04) & (r < r_hi - 0.06) & (h.axis != 2)
    glass = rgb((0.10, 0.12, 0.15), s) + 0.12 * ((r - r_lo) / (r_hi - r_lo)).clamp(0, 1)[:, None]
    return torch.where(glass_area[:, None], glass, h.color), torch.zeros_like(s)


def _plain(noise_amp: float) -> Callable[[Surf, Any], tuple[torch.Tensor, torch.Tensor]]:
    def shade(h: Surf, scene: Any) -> tuple[torch.Tensor, torch.Tensor]:
        s, r = h.face_uv()
        n = fbm2(s, r, h.seed * 8 + h.face_key(), [(0.5, noise_amp), (2.0, noise_amp * 0.5)])
        return h.color * (1.0 + n)[:, None], torch.zeros_like(s)
    return shade


def _lamp(h: Surf, scene: Any) -> tuple[torch.Tensor, torch.Tensor]:
    return h.color, torch.where(h.n[:, 2] < 0, 0.7, 0.0)


def _foliage(h: Surf, scene: Any) -> tuple[torch.Tensor, torch.Tensor]:
    s, r = h.face_uv()
    n = fbm2(s, r, h.seed * 8 + h.face_key(), [(0.7, 0.25), (2.2, 0.12), (6.0, 0.04)])
    return h.color * (1.0 + n)[:, None], torch.zeros_like(s)


SHADERS: dict[int, Callable[[Surf, Any], tuple[torch.Tensor, torch.Tensor]]] = {
    GROUND: _ground, SIDEWALK: _sidewalk, BUILDING: _building, CAR_BODY: _car_body,
    CAR_CABIN: _car_cabin, TYRE: _plain(0.05), METAL: _plain(0.03), LAMP: _lamp,
    TRUNK: _plain(0.12), FOLIAGE: _foliage,
}


def light(normal: torch.Tensor, world_pos: torch.Tensor, scene: Any) -> torch.Tensor:
    """Lambertian sun plus a sky ambient that favours upward faces. [n] irradiance factor."""
    sun = torch.tensor(SUN, dtype=torch.float32, device=normal.device)
    return 0.42 + 0.08 * normal[:, 2] + 0.62 * (normal @ sun).clamp(min=0.0)


def sky(dirs: torch.Tensor) -> torch.Tensor:
    """Sky radiance by direction: horizon haze to zenith blue, a glow around the sun."""
    d = dirs / dirs.norm(dim=-1, keepdim=True)
    elev = d[:, 2].clamp(min=0.0)
    w = smoothstep(0.0, 0.6, elev)
    col = mix(rgb((0.80, 0.86, 0.93), d), rgb((0.36, 0.56, 0.86), d), w)
    sun = torch.tensor(SUN, dtype=torch.float32, device=d.device)
    glow = (d @ sun).clamp(min=0.0) ** 24
    return col + 0.25 * glow[:, None]
