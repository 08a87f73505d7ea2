"""The "indoor" scene: a furnished room, a low robot camera on a smooth loop, moving toy boxes.

World frame: z up, room centred on the origin, floor at z = 0. The camera drives an ellipse
around the room centre looking inward; furniture stands in the band between that loop and the
walls, and the moving boxes slide back and forth inside the loop, where the camera sees them.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch

from ..camera import make_pose, rotation_from_rpy
from ..errors import InputError
from .layout import FrozenLayout, Layout, Rng
from .noise import fbm2, hash01, value_noise2
from .shading import Surf, mix, rgb, smoothstep
from .street import BODY_TO_OPTICAL

ROOM, WOOD, PAINTED, SHELF, CARDBOARD, TOY = range(20, 26)

DEFAULTS: dict = {
    "duration": 6.0,
    "speed": 0.5,            # camera speed along the loop, m/s
    "camera_height": 0.4,
    "room": [8.0, 6.0, 3.0],  # size x, y, z in metres
    "moving_objects": 1,
    # Loop semi-axes as fractions of the room half-size, leaving ~1.3 m for furniture.
}

GROUND_Z: float | None = None
EXTRA_MATERIAL = ROOM

WALL_COLORS = [(0.86, 0.84, 0.78), (0.74, 0.80, 0.84), (0.84, 0.78, 0.70), (0.78, 0.84, 0.76),
               (0.88, 0.86, 0.84), (0.82, 0.74, 0.74)]
FURNITURE_WOOD = [(0.55, 0.38, 0.22), (0.68, 0.52, 0.34), (0.42, 0.28, 0.18), (0.75, 0.62, 0.45)]
PAINT = [(0.85, 0.85, 0.84), (0.30, 0.32, 0.36), (0.62, 0.70, 0.78), (0.80, 0.70, 0.55)]
TOY_COLORS = [(0.85, 0.25, 0.15), (0.15, 0.45, 0.80), (0.95, 0.75, 0.15), (0.25, 0.65, 0.30)]
POSTER_COLORS = [(0.85, 0.30, 0.25), (0.20, 0.35, 0.65), (0.95, 0.80, 0.30), (0.30, 0.60, 0.45),
                 (0.55, 0.30, 0.55), (0.95, 0.60, 0.35), (0.15, 0.15, 0.20)]

# Decal columns: axis (0: wall at x = +-X, 1: wall at y = +-Y), side (+-1), s0, s1, z0, z1,
# kind (0 door, 1 poster), colour (3), colour2 (3), seed.
DOOR, POSTER = 0, 1


def validate(params: dict) -> None:
    """One clear error for a parameter the room cannot be made with."""
    for name, flag in (("speed", "--speed"), ("camera_height", "--camera-height")):
        value = params[name]
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InputError(f"{flag} {value!r} is not a number", f"give a finite {flag}")
    if not 0.0 <= params["speed"] <= 3.0:
        raise InputError(f"--speed {params['speed']:g} m/s is out of range for a room", "give 0 to 3 m/s")
    height = float(params["room"][2]) if len(params["room"]) == 3 else 3.0
    if not 0.1 <= params["camera_height"] <= height - 0.2:
        raise InputError(f"--camera-height {params['camera_height']:g} m does not fit the {height:g} m room",
                         f"give 0.1 to {height - 0.2:g} m")


def room_bounds(params: dict) -> tuple[np.ndarray, np.ndarray]:
    size = np.asarray(params["room"], np.float64)
    return np.array([-size[0] / 2, -size[1] / 2, 0.0]), np.array([size[0] / 2, size[1] / 2, size[2]])


def _loop_axes(params: dict) -> tuple[float, float]:
    sx, sy, _ = params["room"]
    return max(0.5, sx / 2 - 1.8), max(0.4, sy / 2 - 1.7)


def _light_positions(params: dict) -> np.ndarray:
    sx, sy, sz = params["room"]
    return np.array([[-sx / 4, 0.0, sz - 0.1], [sx / 4, 0.0, sz - 0.1]])


def _decals(rng: Rng, params: dict) -> tuple[np.ndarray, list[tuple[int, int, float, float]]]:
    """Doors and posters on the walls; returns them and the door spans to keep free of furniture."""
    sx, sy, sz = params["room"]
    rows: list[list[float]] = []
    doors: list[tuple[int, int, float, float]] = []
    walls = [(0, 1), (0, -1), (1, 1), (1, -1)]
    door_walls = {rng.int(0, 3)}
    if rng.chance(0.5):
        door_walls.add(rng.int(0, 3))
    for wi, (axis, side) in enumerate(walls):
        half = (sy if axis == 0 else sx) / 2   # the wall runs along the other horizontal axis
        s = -half + rng.uniform(0.3, 0.9)
        if wi in door_walls:
            d0 = rng.uniform(-half + 0.4, half - 1.4)
            rows.append([axis, side, d0, d0 + 0.95, 0.0, 2.1, DOOR, *rng.jitter(rng.choice(FURNITURE_WOOD), 0.1),
                         0.9, 0.9, 0.88, rng.int(1, 1 << 20)])
            doors.append((axis, side, d0 - 0.3, d0 + 1.25))
        while True:
            w = rng.uniform(0.5, 1.3)
            if s + w > half - 0.3:
                break
            clash = any(a == axis and sd == side and s < e + 0.1 and s + w > b - 0.1 for a, sd, b, e in doors)
            if not clash and rng.chance(0.6):
                z0 = rng.uniform(1.1, 1.5)
                hgt = min(sz - 0.3 - z0, w * rng.uniform(0.9, 1.5))
                rows.append([axis, side, s, s + w, z0, z0 + hgt, POSTER, *rng.choice(POSTER_COLORS),
                             *rng.choice(POSTER_COLORS), rng.int(1, 1 << 20)])
            s += w + rng.uniform(0.3, 1.0)
    return np.asarray(rows, np.float64).reshape(-1, 14), doors


def _clear_of_loop(x0: float, y0: float, x1: float, y1: float, a: float, b: float) -> bool:
    """True when the footprint rectangle stays outside the camera loop widened by 0.5 m."""
    xs, ys = np.meshgrid(np.linspace(x0, x1, 7), np.linspace(y0, y1, 7))
    return bool(((xs / (a + 0.5)) ** 2 + (ys / (b + 0.5)) ** 2 > 1.0).all())


def build(seed: int, params: dict) -> FrozenLayout:
    rng = Rng(seed * 7919 + 2)
    lay = Layout()
    sx, sy, sz = params["room"]
    if min(sx, sy) < 3.0 or sz < 2.0:
        from ..errors import InputError
        raise InputError(f"room size {params['room']} is too small", "give at least 3 x 3 x 2 m")
    a, b = _loop_axes(params)
    decals, doors = _decals(rng, params)
    placed: list[tuple[float, float, float, float]] = []

    def free(x0: float, y0: float, x1: float, y1: float) -> bool:
        if x0 < -sx / 2 or x1 > sx / 2 or y0 < -sy / 2 or y1 > sy / 2:
            return False
        if not _clear_of_loop(x0, y0, x1, y1, a, b):
            return False
        if any(x0 < q1 + 0.05 and x1 > q0 - 0.05 and y0 < r1 + 0.05 and y1 > r0 - 0.05 for q0, r0, q1, r1 in placed):
            return False
        for axis, side, d0, d1 in doors:  # keep door fronts clear (1 m deep)
            if axis == 0 and (x1 > sx / 2 - 1.0 if side > 0 else x0 < -sx / 2 + 1.0) and y0 < d1 and y1 > d0:
                return False
            if axis == 1 and (y1 > sy / 2 - 1.0 if side > 0 else y0 < -sy / 2 + 1.0) and x0 < d1 and x1 > d0:
                return False
        return True

    def against_wall(w: float, d: float, gap: float) -> tuple[float, float, float, float, int, int]:
        """A random footprint of width w (along the wall) and depth d, ``gap`` from a wall."""
        axis, side = rng.choice([(0, 1), (0, -1), (1, 1), (1, -1)])
        if axis == 0:   # wall at x = side * sx/2; footprint runs along y
            yc = rng.uniform(-sy / 2 + w / 2, sy / 2 - w / 2)
            xw = side * (sx / 2 - gap)
            return min(xw, xw - side * d), yc - w / 2, max(xw, xw - side * d), yc + w / 2, axis, side
        xc = rng.uniform(-sx / 2 + w / 2, sx / 2 - w / 2)
        yw = side * (sy / 2 - gap)
        return xc - w / 2, min(yw, yw - side * d), xc + w / 2, max(yw, yw - side * d), axis, side

    def place(kind: str, tries: int = 60) -> None:
        for _ in range(tries):
            if kind == "shelf":
                w, d, h = rng.uniform(0.8, 1.5), 0.35, rng.uniform(1.2, 2.0)
                x0, y0, x1, y1, axis, side = against_wall(w, d, 0.02)
            elif kind == "table":
                w, d, h = rng.uniform(1.0, 1.6), rng.uniform(0.6, 0.9), rng.uniform(0.72, 0.78)
                x0, y0, x1, y1, axis, side = against_wall(w, d, rng.uniform(0.05, 0.4))
            elif kind == "cabinet":
                w, d, h = rng.uniform(0.6, 1.2), rng.uniform(0.4, 0.55), rng.uniform(0.7, 1.0)
                x0, y0, x1, y1, axis, side = against_wall(w, d, 0.02)
            else:  # stack of cardboard boxes
                w = d = rng.uniform(0.35, 0.6)
                h = w * rng.uniform(0.7, 1.0)
                x0, y0, x1, y1, axis, side = against_wall(w, d, rng.uniform(0.05, 0.5))
            if not free(x0, y0, x1, y1):
                continue
            placed.append((x0, y0, x1, y1))
            front = (axis, -side)  # the face looking into the room
            if kind == "shelf":
                lay.add((x0, y0, 0), (x1, y1, h), SHELF, rng.jitter(rng.choice(PAINT + FURNITURE_WOOD), 0.06),
                        (0, 0, 0), (front[0], front[1]), seed=rng.int(1, 1 << 23))
            elif kind == "table":
                col = rng.jitter(rng.choice(FURNITURE_WOOD), 0.08)
                seed_t = rng.int(1, 1 << 23)
                lay.add((x0, y0, h - 0.04), (x1, y1, h), WOOD, col, seed=seed_t)
                for lx, ly in ((x0 + 0.04, y0 + 0.04), (x1 - 0.11, y0 + 0.04), (x0 + 0.04, y1 - 0.11), (x1 - 0.11, y1 - 0.11)):
                    lay.add((lx, ly, 0), (lx + 0.07, ly + 0.07, h - 0.04), WOOD, col, seed=seed_t)
                if rng.chance(0.6):  # something on the table
                    bw = rng.uniform(0.2, 0.4)
                    cx, cy = rng.uniform(x0 + 0.1, x1 - 0.1 - bw), rng.uniform(y0 + 0.1, y1 - 0.1 - bw)
                    lay.add((cx, cy, h), (cx + bw, cy + bw, h + rng.uniform(0.1, 0.35)), PAINTED,
                            rng.jitter(rng.choice(TOY_COLORS + PAINT), 0.1), seed=rng.int(1, 1 << 23))
            elif kind == "cabinet":
                lay.add((x0, y0, 0), (x1, y1, h), PAINTED, rng.jitter(rng.choice(PAINT), 0.06),
                        (0, 0, 0), (front[0], front[1]), seed=rng.int(1, 1 << 23))
            else:
                lay.add((x0, y0, 0), (x1, y1, h), CARDBOARD, rng.jitter((0.62, 0.46, 0.30), 0.08),
                        seed=rng.int(1, 1 << 23))
                if rng.chance(0.5):
                    w2 = w * rng.uniform(0.6, 0.9)
                    ox, oy = rng.uniform(0, w - w2), rng.uniform(0, w - w2)
                    lay.add((x0 + ox, y0 + oy, h), (x0 + ox + w2, y0 + oy + w2, h + w2 * rng.uniform(0.6, 1.0)),
                            CARDBOARD, rng.jitter((0.62, 0.46, 0.30), 0.08), seed=rng.int(1, 1 << 23))
            return

    for kind in ["shelf", "shelf", "table", "table", "cabinet", "boxes", "boxes", "boxes", "cabinet", "shelf"]:
        place(kind)

    # Moving toy boxes: slide along x inside the loop, on separate y lanes.
    for i in range(int(params["moving_objects"])):
        size = rng.uniform(0.26, 0.32)
        y = ((i % 4) - 1.5) * 0.36 * min(1.0, b / 1.3)
        amp = min(0.9, 0.6 * a)
        omega = 2 * math.pi / (8.0 + 2.0 * i)
        col = rng.choice(TOY_COLORS)
        col2 = TOY_COLORS[(TOY_COLORS.index(col) + 1 + i) % len(TOY_COLORS)]
        lay.add((-size / 2, y - size / 2, 0.0), (size / 2, y + size / 2, size * rng.uniform(0.9, 1.3)), TOY,
                col, col2, motion=(0, 0, 0, amp, 0, 0, omega, rng.uniform(0, 2 * math.pi)),
                seed=rng.int(1, 1 << 23))

    return lay.freeze({"decals": decals})


def camera_pose(t: float, params: dict) -> np.ndarray:
    """Robot camera on an ellipse (counter-clockwise, ~speed m/s), 0.4 m up.

    It looks towards the room centre (with a slow +-7 deg pan), where the moving objects are,
    so every frame sees them and the furniture across the room; its motion is mostly sideways,
    which gives strong parallax.
    """
    a, b = _loop_axes(params)
    omega = params["speed"] / (0.5 * (a + b))
    th = -0.5 * math.pi + omega * t
    x, y = a * math.cos(th), b * math.sin(th)
    yaw = math.atan2(-y, -x) + 0.12 * math.sin(2 * math.pi * t / 4.3)
    pitch = -0.05 + 0.02 * math.sin(2 * math.pi * t / 3.1)   # slightly up: more of the room in view
    return make_pose(rotation_from_rpy(0.0, pitch, yaw) @ BODY_TO_OPTICAL, (x, y, params["camera_height"]))


# ---------------------------------------------------------------------------------------------
# Shading
# ---------------------------------------------------------------------------------------------

def _floor(h: Surf, scene: Any) -> torch.Tensor:
    x, y = h.p[:, 0], h.p[:, 1]
    seed = scene.seed * 31 + 5
    if hash01(scene.seed, 99).item() < 0.5:
        # Wooden planks 0.2 m wide along x with staggered ends; seams are low-contrast lines.
        row = torch.floor(y / 0.2)
        shift = hash01(row.long(), seed) * 1.5
        k = torch.floor((x + shift) / 1.5)
        plank = 0.86 + 0.24 * hash01(row.long(), k.long(), seed)
        grain = fbm2(x * 0.5, y * 3.0, seed, [(1.5, 0.06), (5.0, 0.03)])
        fy = y / 0.2 - row
        fx = (x + shift) / 1.5 - k
        seam = (torch.minimum(fy, 1 - fy) < 0.05) | (torch.minimum(fx, 1 - fx) < 0.008)
        base = rgb((0.58, 0.40, 0.24), x) * hash01(seed, 1).mul(0.4).add(0.8).item()
        return base * (plank * (1 + grain) * torch.where(seam, 0.88, 1.0))[:, None]
    # Tiles 0.5 m with grout.
    fx, fy = torch.floor(x / 0.5), torch.floor(y / 0.5)
    tile = 0.9 + 0.12 * hash01(fx.long(), fy.long(), seed)
    gx, gy = x / 0.5 - fx, y / 0.5 - fy
    grout = torch.minimum(torch.minimum(gx, 1 - gx), torch.minimum(gy, 1 - gy)) < 0.02
    noise = 1 + fbm2(x, y, seed, [(1.0, 0.04), (4.0, 0.02)])
    base = rgb((0.78, 0.76, 0.72), x)
    return base * (tile * noise * torch.where(grout, 0.8, 1.0))[:, None]


def _walls(h: Surf, scene: Any) -> torch.Tensor:
    s, z = h.face_uv()
    key = h.face_key()          # 0/1: walls at -x/+x, 2/3: walls at -y/+y
    wall_idx = hash01(key, scene.seed, 3)
    palette = torch.tensor(WALL_COLORS, dtype=torch.float32, device=s.device)
    col = palette[(wall_idx * len(WALL_COLORS)).long().clamp(max=len(WALL_COLORS) - 1)]
    col = col * (1 + fbm2(s, z, scene.seed * 8 + key, [(0.3, 0.05), (1.5, 0.02), (6.0, 0.006)]))[:, None]
    col = torch.where((z < 0.1)[:, None], rgb((0.93, 0.93, 0.91), s).expand_as(col), col)   # skirting board
    decals = torch.tensor(scene.layout.extras["decals"], dtype=torch.float32, device=s.device)
    # Normal axis/sign of the wall a decal sits on (inward normal = -side along its axis).
    n_axis = h.axis
    n_sign = torch.sign(h.n.gather(1, h.axis[:, None])[:, 0])
    for d in decals:
        axis, side = int(d[0]), float(d[1])
        on = (n_axis == axis) & (n_sign == -side)
        s0, s1, z0, z1 = (float(v) for v in d[2:6])
        inside = on & (s >= s0) & (s <= s1) & (z >= z0) & (z <= z1)
        if not bool(inside.any()):
            continue
        c1 = torch.tensor(d[7:10].tolist(), device=s.device)
        c2 = torch.tensor(d[10:13].tolist(), device=s.device)
        seed = int(d[13])
        border = torch.minimum(torch.minimum(s - s0, s1 - s), torch.minimum(z - z0, z1 - z))
        if int(d[6]) == DOOR:
            wood = c1[None] * (1 + fbm2(s * 3.0, z * 0.5, seed, [(2.0, 0.05), (6.0, 0.02)]))[:, None]
            panel = (border > 0.12) & (border < 0.16)
            frame = border < 0.06
            door_col = torch.where(panel[:, None], wood * 0.85, wood)
            door_col = torch.where(frame[:, None], c2[None].expand_as(wood), door_col)
            col = torch.where(inside[:, None], door_col, col)
        else:
            # Poster: a smooth two-colour abstract picture with a white margin.
            pattern = smoothstep(0.35, 0.65, value_noise2(s * 2.5, z * 2.5, seed))
            art = mix(c1[None].expand(len(s), 3), c2[None].expand(len(s), 3), pattern)
            band = smoothstep(0.3, 0.7, value_noise2(s * 0.8 + 3.1, z * 0.8, seed + 1))
            art = art * (0.8 + 0.35 * band)[:, None]
            art = torch.where((border < 0.04)[:, None], rgb((0.95, 0.95, 0.93), s).expand_as(art), art)
            col = torch.where(inside[:, None], art, col)
    return col


def _ceiling(h: Surf, scene: Any) -> tuple[torch.Tensor, torch.Tensor]:
    x, y = h.p[:, 0], h.p[:, 1]
    col = rgb((0.90, 0.90, 0.88), x) * (1 + fbm2(x, y, scene.seed + 77, [(0.5, 0.02)]))[:, None]
    emit = torch.zeros_like(x)
    for lx, ly, _ in _light_positions(scene.params):
        panel = ((x - lx).abs() < 0.6) & ((y - ly).abs() < 0.3)
        col = torch.where(panel[:, None], rgb((1.0, 0.98, 0.92), x).expand_as(col), col)
        emit = torch.where(panel, 1.0, emit)
    return col, emit


def _room(h: Surf, scene: Any) -> tuple[torch.Tensor, torch.Tensor]:
    nz = h.n[:, 2]
    col = torch.zeros_like(h.p)
    emit = torch.zeros_like(nz)
    for sel, fn in ((nz > 0.5, "floor"), (nz < -0.5, "ceiling"), (nz.abs() <= 0.5, "walls")):
        if not bool(sel.any()):
            continue
        sub = Surf(h.p[sel], h.n[sel], h.axis[sel], h.lo[sel], h.hi[sel], h.attr[sel])
        if fn == "floor":
            col[sel] = _floor(sub, scene)
        elif fn == "walls":
            col[sel] = _walls(sub, scene)
        else:
            col[sel], emit[sel] = _ceiling(sub, scene)
    return col, emit


def _wood(h: Surf, scene: Any) -> tuple[torch.Tensor, torch.Tensor]:
    s, r = h.face_uv()
    grain = fbm2(s * 0.4, r * 3.0, h.seed * 8 + h.face_key(), [(2.0, 0.08), (6.0, 0.03)])
    return h.color * (1 + grain)[:, None], torch.zeros_like(s)


def _painted(h: Surf, scene: Any) -> tuple[torch.Tensor, torch.Tensor]:
    s, r = h.face_uv()
    col = h.color * (1 + fbm2(s, r, h.seed * 8 + h.face_key(), [(0.8, 0.03), (3.0, 0.015)]))[:, None]
    # Cabinets: two doors on the front face, separated by a darker gap, with a handle each.
    front = (h.axis == h.param(7).long()) & (torch.sign(h.n.gather(1, h.axis[:, None])[:, 0]) == h.param(8)) \
        & (h.param(8) != 0)
    s_lo, s_hi, r_lo, r_hi = h.face_extent()
    mid = (s_lo + s_hi) / 2
    gap = front & ((s - mid).abs() < 0.012)
    handle = front & ((s - mid).abs() > 0.05) & ((s - mid).abs() < 0.09) & ((r - (r_hi - 0.2)).abs() < 0.06)
    col = torch.where(gap[:, None], col * 0.6, col)
    col = torch.where(handle[:, None], rgb((0.55, 0.55, 0.58), s).expand_as(col), col)
    return col, torch.zeros_like(s)


def _shelf(h: Surf, scene: Any) -> tuple[torch.Tensor, torch.Tensor]:
    s, r = h.face_uv()
    col = h.color * (1 + fbm2(s, r, h.seed * 8 + h.face_key(), [(0.8, 0.03)]))[:, None]
    front = (h.axis == h.param(7).long()) & (torch.sign(h.n.gather(1, h.axis[:, None])[:, 0]) == h.param(8))
    s_lo, s_hi, r_lo, r_hi = h.face_extent()
    # Shelf boards every 0.4 m; between them rows of book blocks 0.12-0.35 m wide (broad enough
    # that a point-splat re-rendering resolves them), leaning back into a dark interior.
    level = torch.floor((r - r_lo) / 0.4)
    fr = (r - r_lo) - level * 0.4
    side = (s - s_lo < 0.04) | (s_hi - s < 0.04)
    board = (fr < 0.035) | (r > r_hi - 0.04) | side
    block_w = 0.12 + 0.23 * hash01(level.long(), h.seed, 2)
    bi = torch.floor((s - s_lo) / block_w)
    book_h = 0.22 + 0.12 * hash01(bi.long(), level.long(), h.seed)
    palette = torch.tensor(POSTER_COLORS, dtype=torch.float32, device=s.device)
    book = palette[(hash01(bi.long(), level.long(), h.seed, 7) * len(POSTER_COLORS)).long().clamp(max=len(POSTER_COLORS) - 1)]
    book = book * 0.85
    empty = hash01(bi.long(), level.long(), h.seed, 9) < 0.2
    interior = torch.where((fr < book_h + 0.035)[:, None] & ~empty[:, None], book, rgb((0.15, 0.13, 0.12), s).expand_as(book))
    col = torch.where((front & ~board)[:, None], interior, col)
    return col, torch.zeros_like(s)


def _cardboard(h: Surf, scene: Any) -> tuple[torch.Tensor, torch.Tensor]:
    s, r = h.face_uv()
    col = h.color * (1 + fbm2(s, r, h.seed * 8 + h.face_key(), [(1.0, 0.05), (4.0, 0.03)]))[:, None]
    s_lo, s_hi, _, _ = h.face_extent()
    tape = (h.axis == 2) & ((s - (s_lo + s_hi) / 2).abs() < 0.03)
    return torch.where(tape[:, None], col * 1.12, col), torch.zeros_like(s)


def _toy(h: Surf, scene: Any) -> tuple[torch.Tensor, torch.Tensor]:
    z = h.p[:, 2]
    lo, hi = h.lo[:, 2], h.hi[:, 2]
    zr = (z - lo) / (hi - lo)
    band = (zr > 0.4) & (zr < 0.65) & (h.axis != 2)
    col = torch.where((band | (h.axis == 2))[:, None], h.color2, h.color)
    return col, torch.zeros_like(z)


SHADERS: dict[int, Callable[[Surf, Any], tuple[torch.Tensor, torch.Tensor]]] = {
    ROOM: _room, WOOD: _wood, PAINTED: _painted, SHELF: _shelf, CARDBOARD: _cardboard, TOY: _toy,
}

def light(normal: torch.Tensor, world_pos: torch.Tensor, scene: Any) -> torch.Tensor:
    """Ambient plus two ceiling point lights (Lambert, softened inverse-square falloff)."""
    lights = torch.tensor(_light_positions(scene.params), dtype=torch.float32, device=normal.device)
    irr = 0.40 + 0.06 * normal[:, 2].abs()
    for lp in lights:
        v = lp[None] - world_pos
        d2 = (v * v).sum(-1)
        cos = ((v * normal).sum(-1) / d2.sqrt()).clamp(min=0)
        irr = irr + 2.2 * cos / (1.0 + d2)
    return irr


def sky(dirs: torch.Tensor) -> torch.Tensor:
    """Rays never leave a closed room; black marks a bug should one escape."""
    return torch.zeros_like(dirs)
