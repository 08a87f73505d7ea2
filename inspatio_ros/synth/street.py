"""The "street" scene: a two-lane road through a town, parked and moving cars, an ego car camera.

World frame (REP-103): z up, x forward along the street, y left. The driving lanes span
|y| < 3.5 m (ego lane y < 0, right-hand traffic), parking strips 3.5..5.7 m, sidewalks
5.7..8.5 m, building facades from 8.5 m (plus a per-building setback).

With ``curve_radius`` > 0 the street bends (see :mod:`.curve`): the same layout is made in
street coordinates (s along the centreline, d lateral) and placed along an S-shaped road of
that radius, in pieces turned to its heading; the ego camera follows the curve. ``camera_height``
and ``pitch`` put the camera where a robot (0.3-0.8 m) or a drone (~10 m, looking down) carries it.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Any, Callable

import numpy as np
import torch

from ..camera import make_pose, rotation_from_rpy
from ..errors import InputError
from .curve import Centreline
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
    "pitch": 0.03,          # camera pitch below the horizon, rad (1.7 deg)
    "curve_radius": 0.0,    # m; 0 = a straight street, else an S-curve of this radius
}

# Casting only boxes within this distance keeps a frame's cost independent of the street's
# length (a 10-minute street holds ~50 000 boxes). Wider than a default-length scene's extent,
# so those render exactly as without it; beyond it the street's end shows sky anyway.
VIEW_RANGE = 420.0
MIN_CURVE_RADIUS = 15.0     # the inner facades (8.5 m + setback from the centreline) must fit
CURVE_PIECE = 2.0           # m of centreline per straight piece of a curved facade / sidewalk


def validate(params: dict) -> None:
    """One clear error for a parameter the street cannot be made with."""
    def finite(name: str, flag: str) -> float:
        value = params[name]
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InputError(f"{flag} {value!r} is not a number", f"give a finite {flag}")
        return float(value)
    speed = finite("speed", "--speed")
    if not 0.0 <= speed <= 80.0:
        raise InputError(f"--speed {speed:g} m/s is out of range", "give 0 to 80 m/s (e.g. 8 in town, 27 on a highway)")
    height = finite("camera_height", "--camera-height")
    if not 0.1 <= height <= 200.0:
        raise InputError(f"--camera-height {height:g} m is out of range",
                         "give 0.1 to 200 m (e.g. 0.5 for a robot, 1.5 for a car, 10 for a drone)")
    pitch = finite("pitch", "--pitch")
    if not -math.radians(45) <= pitch <= math.radians(89):
        raise InputError(f"--pitch {math.degrees(pitch):g} deg is out of range",
                         "give -45 to 89 degrees below the horizon (e.g. 30 for a drone looking down)")
    weave = finite("weave", "--weave")
    if not 0.0 <= weave <= 1.5:
        raise InputError(f"--weave {weave:g} m is out of range", "give 0 to 1.5 m (it must stay in its lane)")
    radius = finite("curve_radius", "--curve-radius")
    if radius != 0.0 and not MIN_CURVE_RADIUS <= radius <= 100000.0:
        raise InputError(f"--curve-radius {radius:g} m is out of range",
                         f"give 0 for a straight street or {MIN_CURVE_RADIUS:g} to 100000 m (e.g. 25)")


@lru_cache(maxsize=16)
def _centreline(radius: float, speed: float, duration: float) -> Centreline:
    # Each arc turns far enough that the default clip stays on the first one (one steady turn),
    # but at most 150 deg so that an arc's inner buildings never meet its own outer road.
    turn = min(max((speed * duration + 30.0) / radius, math.pi / 2), 5 * math.pi / 6)
    return Centreline(radius, turn, speed * duration + 300.0)


def centreline(params: dict) -> Centreline | None:
    """The bending road's centreline, or None for a straight street."""
    if not params.get("curve_radius"):
        return None
    return _centreline(float(params["curve_radius"]), float(params["speed"]), float(params["duration"]))

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

class _Emitter:
    """Adds boxes given in street coordinates (x = s along the road, y = d across it).

    Straight street: they go into the layout as they are. Curved street: ``long`` boxes
    (sidewalks, facades) are cut into short pieces that follow the curve, and ``group`` boxes (a
    car, a lamp) are placed rigidly at the road's heading at the group's centre.
    """

    def __init__(self, lay: Layout, line: Centreline | None):
        self.lay = lay
        self.line = line
        self.along: list[tuple[int, float, float]] = []   # (box, s at t = 0, speed along s)

    def long(self, lo, hi, d_ref: float, *args, **kw) -> tuple[float, float]:
        """A box along the road, its face at lateral offset ``d_ref`` kept on the curve.
        Returns the local x range of that face (texture coordinates of the whole box)."""
        if self.line is None:
            self.lay.add(lo, hi, *args, **kw)
            return 0.0, 0.0
        line = self.line
        s0, s1 = min(lo[0], hi[0]), max(lo[0], hi[0])
        cuts = [s0]
        for b in np.arange(0.0, s1, line.arc):           # never straddle a change of curvature
            if s0 < b < s1:
                cuts.append(float(b))
        cuts.append(s1)
        for a, b in zip(cuts[:-1], cuts[1:]):
            kappa = float(line.curvature(0.5 * (a + b)))
            # Faces farther than d_ref from the centre of curvature (outside the bend) would open
            # wedge gaps between pieces; each piece reaches that far past its ends, into its
            # neighbour (hidden there). Faces nearer the centre overlap by themselves.
            reach = max(0.0, -(lo[1] - d_ref) * np.sign(kappa), -(hi[1] - d_ref) * np.sign(kappa))
            n = max(1, int(math.ceil((b - a) / CURVE_PIECE)))
            for k in range(n):
                p0, p1 = a + (b - a) * k / n, a + (b - a) * (k + 1) / n
                yaw, place, u0, u1 = line.piece(p0, p1, d_ref)
                ext = reach * math.tan(0.5 * abs(kappa) * (p1 - p0)) + 1e-3
                self.lay.add((u0 - ext, lo[1], lo[2]), (u1 + ext, hi[1], hi[2]), *args, yaw=yaw, place=place, **kw)
        return float(line.metric(s0, d_ref)), float(line.metric(s1, d_ref))

    def group(self, boxes: list[tuple], s_centre: float, d_ref: float, speed: float = 0.0) -> None:
        """Boxes of one rigid object: ``(lo, hi, *add_args)`` each, in street coordinates."""
        if self.line is None:
            for lo, hi, *args in boxes:
                self.lay.add(lo, hi, *args)
            return
        yaw, place, _, _ = self.line.piece(s_centre, s_centre, d_ref, local_centred=True)
        for lo, hi, *args in boxes:
            k = self.lay.add((lo[0] - s_centre, lo[1], lo[2]), (hi[0] - s_centre, hi[1], hi[2]), *args,
                             yaw=yaw, place=place)
            if speed:
                self.along.append((k, s_centre, speed))


def car_boxes(rng: Rng, x: float, y: float, heading: int, color, motion) -> list[tuple]:
    """A car centred at (x, y) facing ``heading`` (+1: +x): body, cabin and two axle boxes."""
    length = rng.uniform(3.9, 4.7)
    width = rng.uniform(1.70, 1.90)
    body_lo, body_top = 0.32, rng.uniform(0.95, 1.10)
    cabin_top = body_top + rng.uniform(0.42, 0.52)
    seed = rng.int(1, 1 << 23)
    params = (float(heading), length, width)
    boxes = [((x - length / 2, y - width / 2, body_lo), (x + length / 2, y + width / 2, body_top),
              CAR_BODY, color, (0, 0, 0), params, motion, seed)]
    front_in, rear_in = rng.uniform(1.0, 1.3), rng.uniform(0.45, 0.7)
    c0 = x - length / 2 + (rear_in if heading > 0 else front_in)
    c1 = x + length / 2 - (front_in if heading > 0 else rear_in)
    boxes.append(((c0, y - width / 2 + 0.1, body_top), (c1, y + width / 2 - 0.1, cabin_top),
                  CAR_CABIN, color, (0, 0, 0), params, motion, seed))
    for ax in (-1, 1):
        xc = x + ax * (length / 2 - 0.8)
        boxes.append(((xc - 0.32, y - width / 2 + 0.04, 0.0), (xc + 0.32, y + width / 2 - 0.04, 0.64),
                      TYRE, (0.07, 0.07, 0.07), (0, 0, 0), params, motion, seed))
    return boxes


def build(seed: int, params: dict) -> FrozenLayout:
    rng = Rng(seed * 7919 + 1)
    lay = Layout()
    line = centreline(params)
    emit = _Emitter(lay, line)
    x0 = -60.0
    x1 = params["speed"] * params["duration"] + 250.0

    # Sidewalks (with the curb as their road-facing side).
    for s in (1, -1):
        emit.long((x0 - 50, s * PARKING_OUT, 0.0), (x1 + 50, s * SIDEWALK_OUT, CURB_H), s * PARKING_OUT, SIDEWALK,
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
            b_seed = rng.int(1, 1 << 23)
            if line is None:
                lay.add((x, y_front, 0.0), (x + width, y_front + s * depth, height), BUILDING, wall, trim,
                        params_b, seed=b_seed)
            else:
                # The facade's whole extent (cols 12, 13) keeps one window grid across its pieces.
                u0, u1 = line.metric(x, y_front), line.metric(x + width, y_front)
                emit.long((x, y_front, 0.0), (x + width, y_front + s * depth, height), y_front, BUILDING, wall, trim,
                          (*params_b, float(min(u0, u1)), float(max(u0, u1))), seed=b_seed)
            x += width

    # Street lights, with trees half-way between them.
    for s in (1, -1):
        x = x0 + rng.uniform(0, 10)
        while x < x1:
            yp = s * (PARKING_OUT + 0.35)
            emit.group([((x - 0.1, yp - 0.1, CURB_H), (x + 0.1, yp + 0.1, 6.5), METAL, (0.42, 0.44, 0.46)),
                        ((x - 0.07, yp, 6.3), (x + 0.07, yp - s * 1.8, 6.45), METAL, (0.42, 0.44, 0.46)),
                        ((x - 0.3, yp - s * 1.5, 6.12), (x + 0.3, yp - s * 2.0, 6.32), LAMP, (0.92, 0.90, 0.82))],
                       x, yp)
            gap = rng.uniform(22.0, 30.0)
            if rng.chance(0.65):
                xt, yt = x + gap / 2, s * (PARKING_OUT + 1.35)
                trunk = ((xt - 0.16, yt - 0.16, CURB_H), (xt + 0.16, yt + 0.16, 2.6), TRUNK, (0.30, 0.22, 0.15))
                r = rng.uniform(1.0, 1.4)
                crown = ((xt - r, yt - r, 2.4), (xt + r, yt + r, rng.uniform(4.3, 5.2)), FOLIAGE,
                         rng.jitter((0.22, 0.38, 0.15), 0.12), (0.0, 0.0, 0.0), (), (0.0,) * 8, rng.int(1, 1 << 23))
                emit.group([trunk, crown], xt, yt)
            x += gap

    # Parked cars in the parking strips, facing the traffic direction of their side.
    for s in (1, -1):
        x = x0
        while x < x1:
            x += rng.uniform(1.2, 3.5)
            if rng.chance(0.25):
                x += rng.uniform(5.0, 9.0)  # empty bay
                continue
            yc = s * (LANE_HALF + 1.1)
            emit.group(car_boxes(rng, x + 2.3, yc, -s, rng.jitter(rng.choice(CAR_COLORS), 0.05), (0.0,) * 8),
                       x + 2.3, yc)
            x += 4.7

    # Moving cars: even ones ahead in the ego lane (faster than ego, so they stay ahead), odd
    # ones oncoming. Cars of one lane share a speed, so they never collide.
    for i in range(int(params["moving_objects"])):
        color = rng.jitter(rng.choice(CAR_COLORS), 0.05)
        if i % 2 == 0:
            x, y, v, heading = 14.0 + 22.0 * (i // 2), EGO_LANE_Y, params["speed"] * 1.2, 1
        else:
            x, y, v, heading = 45.0 + 30.0 * (i // 2), ONCOMING_LANE_Y, -params["speed"], -1
        emit.group(car_boxes(rng, x, y, heading, color, (v, 0, 0, 0, 0, 0, 0, 0)), x, y, speed=v)
    extras = {}
    if emit.along:
        extras["along"] = np.asarray(emit.along, np.float64).reshape(-1, 3)
    return lay.freeze(extras)


def placement(layout: FrozenLayout, t: float, params: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """Curved street: moving cars follow the road (their speed is along it). None when straight."""
    line = centreline(params)
    if line is None:
        return None
    yaw, place = layout.yaw.copy(), layout.place.copy()
    along = layout.extras.get("along")
    if along is not None and len(along):
        idx = along[:, 0].astype(int)
        s = along[:, 1] + along[:, 2] * t
        yaw[idx] = line.heading(s)
        place[idx, :2] = line.point(s)
    return yaw, place


def camera_pose(t: float, params: dict) -> np.ndarray:
    """Ego camera (OpenCV c2w): ``speed`` along the road in the ego lane, gentle weave and yaw,
    ``pitch`` down (1.7 deg by default), ``camera_height`` above the road."""
    v, w = params["speed"], params["weave"]
    period = 5.0
    y = EGO_LANE_Y + w * math.sin(2 * math.pi * t / period)
    dy = w * 2 * math.pi / period * math.cos(2 * math.pi * t / period)
    yaw = math.atan2(dy, v)
    line = centreline(params)
    if line is None:
        # A small steering wobble; on a bend the car tracks the curve instead, so its yaw rate
        # stays the curve's (2.3 deg per frame at 10 m/s, 25 m, 10 Hz) give or take the weave.
        yaw += 0.04 * math.sin(2 * math.pi * t / 3.7 + 0.5)
    pitch = params["pitch"] + 0.005 * math.sin(2 * math.pi * t / 2.3)
    if line is None:
        body = rotation_from_rpy(0.0, pitch, yaw)
        return make_pose(body @ BODY_TO_OPTICAL, (v * t, y, params["camera_height"]))
    s = v * t
    heading = float(line.heading(s))
    px, py = line.point(s)
    body = rotation_from_rpy(0.0, pitch, heading + yaw)
    return make_pose(body @ BODY_TO_OPTICAL, (px - math.sin(heading) * y, py + math.cos(heading) * y,
                                              params["camera_height"]))


# Columns: the optical x (right), y (down), z (forward) axes in the body frame (x fwd, y left, z up).
BODY_TO_OPTICAL = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])


# ---------------------------------------------------------------------------------------------
# Shading: albedo (and emission) per material
# ---------------------------------------------------------------------------------------------

def _ground(h: Surf, scene: Any) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = h.p[:, 0], h.p[:, 1]
    line = centreline(scene.params)
    # Street coordinates: along (s) and across (d) the road; the world's x, y on a straight one.
    s, d = (x, y) if line is None else line.to_street(x, y)
    ay = d.abs()
    grain = fbm2(x, y, scene.seed + 11, [(0.15, 0.06), (0.8, 0.05), (3.0, 0.03), (9.0, 0.008)])
    asphalt = rgb((0.33, 0.33, 0.34), x) * (1.0 + grain)[:, None]
    # Repaired patches: large, low-frequency darker areas keyed by position (along the road).
    patch = smoothstep(0.62, 0.7, value_noise2(s * 0.08, torch.nan_to_num(d, posinf=1e4) * 0.3, scene.seed + 12))
    asphalt = asphalt * (1.0 - 0.12 * patch)[:, None]
    parking = rgb((0.37, 0.36, 0.35), x) * (1.0 + grain)[:, None]
    dirt = rgb((0.34, 0.36, 0.25), x) * (1.0 + 2.0 * grain)[:, None]
    col = torch.where((ay < LANE_HALF)[:, None], asphalt, torch.where((ay < PARKING_OUT)[:, None], parking, dirt))
    dash = (ay < 0.075) & (torch.remainder(s, 6.0) < 3.0)
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
    # A facade cut into pieces along a curve keeps its whole extent in cols 12, 13 (else 0, 0).
    whole = (h.param(13) > h.param(12)) & (h.axis == 1)
    s_lo = torch.where(whole, h.param(12), s_lo)
    s_hi = torch.where(whole, h.param(13), s_hi)
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
