"""The "highway" scene: a wide divided motorway at speed, with little texture near the camera.

What real highway footage shows and a town street lacks: most of the image is smooth asphalt and
sky, the near texture is sparse (lane dashes, a guard rail, a median barrier, the odd sign
gantry), and the steady landmarks for rotation are far hills hundreds of metres away.

World frame (REP-103): z up, x forward along the road, y left. The median barrier spans
|y| < 0.3 m; each carriageway has three 3.75 m lanes from |y| = 0.6 m, then a 2.5 m shoulder,
a guard rail and a grass verge. The ego car drives the middle lane of the right carriageway.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch

from ..camera import make_pose, rotation_from_rpy
from ..errors import InputError
from . import street
from .layout import FrozenLayout, Layout, Rng
from .noise import fbm2, value_noise2
from .shading import Surf, rgb

GROUND, BARRIER, RAIL, SIGN, HILL = range(30, 35)
CAR_BODY, CAR_CABIN, TYRE, METAL = street.CAR_BODY, street.CAR_CABIN, street.TYRE, street.METAL

MEDIAN_HALF = 0.6      # inner edge of each carriageway
LANE_W = 3.75
LANES = 3
CARRIAGEWAY_OUT = MEDIAN_HALF + LANES * LANE_W     # 11.85 m: outer edge line
SHOULDER_OUT = CARRIAGEWAY_OUT + 2.5               # 14.35 m: guard rail
EGO_LANE_Y = -(MEDIAN_HALF + 1.5 * LANE_W)         # the right carriageway's middle lane
DASH, DASH_PERIOD = 3.0, 12.0                      # lane dashes: 3 m paint every 12 m

DEFAULTS: dict = {
    "duration": 6.0,
    "speed": 27.0,          # m/s (97 km/h)
    "camera_height": 1.4,
    "weave": 0.15,          # m: small lateral drift within the lane
    "moving_objects": 2,    # other cars
    "pitch": 0.02,          # rad below the horizon
}

GROUND_Z: float | None = 0.0
EXTRA_MATERIAL = GROUND
VIEW_RANGE = 2500.0         # the far hills stand up to ~1.2 km off the road


def room_bounds(params: dict) -> None:
    return None


def validate(params: dict) -> None:
    street.validate({**street.DEFAULTS, **{k: v for k, v in params.items() if k in street.DEFAULTS}})
    if params["weave"] > 0.8:
        raise InputError(f"--weave {params['weave']:g} m is out of range on the highway",
                         "give 0 to 0.8 m (it must stay in its lane)")


def build(seed: int, params: dict) -> FrozenLayout:
    rng = Rng(seed * 7919 + 3)
    lay = Layout()
    x0 = -400.0
    x1 = params["speed"] * params["duration"] + 1500.0

    # Median barrier (concrete) and guard rails on both outer shoulders: long, plain boxes.
    lay.add((x0, -0.3, 0.0), (x1, 0.3, 0.85), BARRIER, (0.70, 0.69, 0.66), seed=rng.int(1, 1 << 23))
    for s in (1, -1):
        y = s * SHOULDER_OUT
        lay.add((x0, y - 0.05, 0.55), (x1, y + 0.05, 0.85), RAIL, (0.66, 0.68, 0.70), seed=rng.int(1, 1 << 23))
        # Rail posts every 4 m: the only regular near texture besides the lane dashes.
        x = x0
        while x < x1:
            lay.add((x - 0.06, y + s * 0.05, 0.0), (x + 0.06, y + s * 0.2, 0.75), METAL, (0.45, 0.46, 0.47))
            x += 4.0

    # An overhead sign gantry every 300-600 m over the ego carriageway.
    x = rng.uniform(60.0, 200.0)
    while x < x1:
        for y in (-SHOULDER_OUT - 0.4, -0.35):
            lay.add((x - 0.2, y - 0.2, 0.0), (x + 0.2, y + 0.2, 7.0), METAL, (0.50, 0.51, 0.52))
        lay.add((x - 0.25, -SHOULDER_OUT - 0.4, 6.4), (x + 0.25, -0.35, 6.9), METAL, (0.50, 0.51, 0.52))
        y0 = rng.uniform(-SHOULDER_OUT + 1.0, -6.0)
        lay.add((x - 0.35, y0, 5.0), (x - 0.25, y0 + rng.uniform(3.5, 5.0), 6.6), SIGN, (0.05, 0.38, 0.20),
                seed=rng.int(1, 1 << 23))
        x += rng.uniform(300.0, 600.0)

    # Far hills: overlapping broad boxes 250-1200 m off the road, a ridge line on each side.
    for s in (1, -1):
        x = x0 - 1000.0
        while x < x1 + 1000.0:
            width = rng.uniform(120.0, 320.0)
            dist = rng.uniform(250.0, 900.0)
            height = rng.uniform(25.0, 110.0) * (dist / 600.0)
            color = rng.jitter(rng.choice([(0.33, 0.42, 0.28), (0.40, 0.44, 0.30), (0.45, 0.42, 0.33)]), 0.08)
            lay.add((x, s * dist, 0.0), (x + width, s * (dist + rng.uniform(150.0, 300.0)), height), HILL, color,
                    seed=rng.int(1, 1 << 23))
            x += width * rng.uniform(0.6, 0.9)

    # Other cars: even ones ahead in the left (faster) lane, odd ones oncoming.
    for i in range(int(params["moving_objects"])):
        color = rng.jitter(rng.choice(street.CAR_COLORS), 0.05)
        if i % 2 == 0:
            x, y, v, heading = 25.0 + 40.0 * (i // 2), EGO_LANE_Y + LANE_W, params["speed"] * 1.15, 1
        else:
            x, y, v, heading = 150.0 + 60.0 * (i // 2), MEDIAN_HALF + (0.5 + (i // 2) % LANES) * LANE_W, \
                -params["speed"], -1
        for box in street.car_boxes(rng, x, y, heading, color, (v, 0, 0, 0, 0, 0, 0, 0)):
            lay.add(*box)
    return lay.freeze()


def camera_pose(t: float, params: dict) -> np.ndarray:
    """Ego camera (OpenCV c2w): ``speed`` along +x in the middle lane, slow drift and yaw."""
    v, w = params["speed"], params["weave"]
    period = 9.0
    y = EGO_LANE_Y + w * math.sin(2 * math.pi * t / period)
    dy = w * 2 * math.pi / period * math.cos(2 * math.pi * t / period)
    yaw = math.atan2(dy, v) + 0.01 * math.sin(2 * math.pi * t / 4.1 + 0.3)
    pitch = params["pitch"] + 0.003 * math.sin(2 * math.pi * t / 1.7)
    body = rotation_from_rpy(0.0, pitch, yaw)
    return make_pose(body @ street.BODY_TO_OPTICAL, (v * t, y, params["camera_height"]))


# ---------------------------------------------------------------------------------------------
# Shading
# ---------------------------------------------------------------------------------------------

def _ground(h: Surf, scene: Any) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = h.p[:, 0], h.p[:, 1]
    ay = y.abs()
    # Fresh, even asphalt: faint grain only (the point of this scene is little near texture).
    grain = fbm2(x, y, scene.seed + 21, [(0.05, 0.03), (0.5, 0.015), (3.0, 0.008)])
    asphalt = rgb((0.36, 0.36, 0.37), x) * (1.0 + grain)[:, None]
    grass_n = fbm2(x, y, scene.seed + 22, [(0.02, 0.15), (0.2, 0.08), (1.5, 0.05)])
    grass = rgb((0.33, 0.40, 0.22), x) * (1.0 + grass_n)[:, None]
    col = torch.where((ay < SHOULDER_OUT + 0.5)[:, None], asphalt, grass)
    lane = (ay - MEDIAN_HALF) / LANE_W
    dash_line = (ay > MEDIAN_HALF + 0.5) & ((lane - torch.round(lane)).abs() * LANE_W < 0.075) \
        & (torch.round(lane) >= 1) & (torch.round(lane) <= LANES - 1)
    dash = dash_line & (torch.remainder(x, DASH_PERIOD) < DASH)
    edge = ((ay - (MEDIAN_HALF + 0.2)).abs() < 0.075) | ((ay - CARRIAGEWAY_OUT).abs() < 0.1)
    wear = 0.94 + 0.06 * value_noise2(x * 1.5, y * 1.5, scene.seed + 23)
    paint = rgb((0.88, 0.87, 0.82), x) * wear[:, None]
    col = torch.where((dash | edge)[:, None], paint, col)
    return col, torch.zeros_like(x)


def _hill(h: Surf, scene: Any) -> tuple[torch.Tensor, torch.Tensor]:
    s, r = h.face_uv()
    n = fbm2(s * 0.02, r * 0.05, h.seed * 8 + h.face_key(), [(1.0, 0.18), (4.0, 0.08), (12.0, 0.04)])
    # Aerial perspective: the hills' colour drifts towards the horizon haze.
    haze = rgb((0.72, 0.78, 0.85), s)
    col = h.color * (1.0 + n)[:, None]
    return col + (haze - col) * 0.35, torch.zeros_like(s)


def _sign(h: Surf, scene: Any) -> tuple[torch.Tensor, torch.Tensor]:
    s, r = h.face_uv()
    s_lo, s_hi, r_lo, r_hi = h.face_extent()
    # White border and two rows of "lettering" blocks on the green panel.
    border = torch.minimum(torch.minimum(s - s_lo, s_hi - s), torch.minimum(r - r_lo, r_hi - r)) < 0.08
    rows = ((r - r_lo) / (r_hi - r_lo) * 4.0)
    letter_row = ((rows > 0.8) & (rows < 1.6)) | ((rows > 2.3) & (rows < 3.1))
    letter = letter_row & (value_noise2(s * 3.0, torch.floor(rows), h.seed) > 0.45)
    white = rgb((0.92, 0.93, 0.90), s).expand(len(s), 3)
    col = torch.where((border | letter)[:, None], white, h.color.expand(len(s), 3))
    return col, torch.zeros_like(s)


def _plain(noise_amp: float) -> Callable[[Surf, Any], tuple[torch.Tensor, torch.Tensor]]:
    def shade(h: Surf, scene: Any) -> tuple[torch.Tensor, torch.Tensor]:
        s, r = h.face_uv()
        n = fbm2(s, r, h.seed * 8 + h.face_key(), [(0.3, noise_amp), (2.0, noise_amp * 0.4)])
        return h.color * (1.0 + n)[:, None], torch.zeros_like(s)
    return shade


SHADERS: dict[int, Callable[[Surf, Any], tuple[torch.Tensor, torch.Tensor]]] = {
    GROUND: _ground, BARRIER: _plain(0.04), RAIL: _plain(0.02), SIGN: _sign, HILL: _hill,
    CAR_BODY: street.SHADERS[CAR_BODY], CAR_CABIN: street.SHADERS[CAR_CABIN], TYRE: street.SHADERS[TYRE],
    METAL: street.SHADERS[METAL],
}

light = street.light
sky = street.sky
