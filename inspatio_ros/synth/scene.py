"""Procedural synthetic scenes with an exact, analytic ray-caster (ground truth for tests/eval).

A :class:`Scene` is fully determined by ``(kind, seed, params)``: the layout is rebuilt from
them, so ``scene.json`` stays tiny and re-rendering ground truth at any pose and time is exact.

    scene = Scene("street", seed=0)
    rgb, depth = scene.render(scene.camera_pose(0.0), scene.default_intrinsics(640, 360), t=0.0)

Rendering casts ``supersample**2`` sub-rays per pixel for colour (box-filtered) plus the
pixel-centre ray for depth and the dynamic mask, so depth is exact at pixel centres rather than
an average across edges.
"""
from __future__ import annotations

import json
import math
from types import ModuleType
from typing import Any

import numpy as np
import torch

from ..camera import Intrinsics
from ..errors import InputError
from . import highway, indoor, street
from .layout import FrozenLayout
from .raycast import MISS, cast, cast_directions, subpixel_offsets
from .shading import Surf

FORMAT = "inspatio_ros.synth.scene/1"
KINDS: dict[str, ModuleType] = {"street": street, "indoor": indoor, "highway": highway}
HFOV_DEG = {"street": 90.0, "indoor": 80.0, "highway": 80.0}


def exposure_gain(t: float) -> float:
    """Smooth auto-exposure drift, within +-4 % (two incommensurate sines, peak 0.04)."""
    return 1.0 + 0.025 * math.sin(2 * math.pi * t / 7.3) + 0.015 * math.sin(2 * math.pi * t / 2.9 + 1.3)


# The camera's response, the same for every kind: what real footage shows beyond the scene.
# ``gain`` > 1 exposes for the shadows, so a bright sky and sunlit walls burn out at 255 (KITTI's
# frames clip 3-9 % of their pixels; the shaded scenes clip none); ``gray`` is a monochrome
# sensor (KITTI image_0/1, many robot cameras): Rec. 601 luma in all three channels.
CAMERA_DEFAULTS: dict[str, Any] = {"gain": 1.0, "gray": False}
MIN_GAIN, MAX_GAIN = 0.25, 4.0


def check_camera(camera: dict[str, Any] | None) -> dict[str, Any]:
    """The camera response with defaults filled in; one InputError for a bad entry."""
    camera = dict(camera or {})
    unknown = set(camera) - set(CAMERA_DEFAULTS)
    if unknown:
        raise InputError(f"camera options {sorted(unknown)} are unknown", f"use only {sorted(CAMERA_DEFAULTS)}")
    out = {**CAMERA_DEFAULTS, **camera}
    gain = out["gain"]
    if isinstance(gain, bool) or not isinstance(gain, (int, float)) or not MIN_GAIN <= float(gain) <= MAX_GAIN:
        raise InputError(f"--gain {gain!r} is not valid",
                         f"give an exposure gain from {MIN_GAIN:g} to {MAX_GAIN:g} (1: none; e.g. 1.5 burns out a bright sky)")
    if not isinstance(out["gray"], bool):
        raise InputError(f"camera option gray={out['gray']!r} is not true or false", "give a boolean")
    out["gain"] = float(gain)
    return out


LUMA = (0.299, 0.587, 0.114)


def _to_uint8(color: torch.Tensor, camera: dict[str, Any]) -> np.ndarray:
    """Linear colour (H, W, 3) after exposure -> the sensor's 8-bit RGB (clipped; gray if mono)."""
    if camera["gray"]:
        luma = color[..., 0] * LUMA[0] + color[..., 1] * LUMA[1] + color[..., 2] * LUMA[2]
        color = luma[..., None].expand(*luma.shape, 3)
    return (color.clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8).cpu().numpy()


class Scene:
    """A deterministic procedural scene: layout, camera trajectory and ray-cast renderer."""

    def __init__(self, kind: str, seed: int = 0, params: dict[str, Any] | None = None,
                 camera: dict[str, Any] | None = None):
        if kind not in KINDS:
            raise InputError(f"scene kind '{kind}' is unknown", f"use one of {', '.join(KINDS)}")
        self.kind = kind
        self.seed = int(seed)
        self._mod = KINDS[kind]
        unknown = set(params or {}) - set(self._mod.DEFAULTS)
        if unknown:
            raise InputError(f"scene parameters {sorted(unknown)} are unknown for '{kind}'",
                             f"use only {sorted(self._mod.DEFAULTS)}")
        self.params: dict[str, Any] = {**self._mod.DEFAULTS, **(params or {})}
        validate = getattr(self._mod, "validate", None)
        if validate is not None:
            validate(self.params)
        self.layout: FrozenLayout = self._mod.build(self.seed, self.params)
        self.camera: dict[str, Any] = check_camera(camera)

    # ---- serialisation -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out = {"format": FORMAT, "kind": self.kind, "seed": self.seed, "params": dict(self.params)}
        if self.camera != CAMERA_DEFAULTS:
            # Only when set: scenes of the default camera keep their scene.json (and cache keys).
            out["camera"] = dict(self.camera)
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, data: str | dict[str, Any]) -> "Scene":
        """Rebuild from ``to_json()`` text or dict (extra keys, e.g. intrinsics, are ignored)."""
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except json.JSONDecodeError as exc:
                raise InputError(f"scene description is not JSON ({exc})", "give a scene.json written by synth") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise InputError(f"scene description has format {data.get('format') if isinstance(data, dict) else None!r}",
                             f"expected '{FORMAT}' (a scene.json written by inspatio-ros synth)")
        return cls(data["kind"], int(data["seed"]), data.get("params") or {}, data.get("camera"))

    # ---- trajectory and camera ---------------------------------------------------------------
    def camera_pose(self, t: float) -> np.ndarray:
        """The scene's own camera trajectory at time t (OpenCV camera-to-world 4x4, float64)."""
        return self._mod.camera_pose(float(t), self.params)

    def default_intrinsics(self, width: int, height: int) -> Intrinsics:
        return Intrinsics.from_fov(width, height, HFOV_DEG[self.kind])

    def exposure_gain(self, t: float) -> float:
        """The auto-exposure drift times the camera's fixed gain."""
        return self.camera["gain"] * exposure_gain(t)

    def placement(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """(yaw (M,), place (M, 3)) of every box at time t: ``world = Rz(yaw) local + place``.

        A kind may move boxes its own way (``placement(layout, t, params)``, e.g. cars that
        follow a curving road); otherwise the motion law's offset is added to the static place.
        """
        custom = getattr(self._mod, "placement", None)
        if custom is not None:
            placed = custom(self.layout, float(t), self.params)
            if placed is not None:
                return placed
        return self.layout.yaw, self.layout.place + self.layout.offset(t)

    def boxes_at(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) world bounds of every box at time t (for a box turned about the vertical,
        the axis-aligned bounds of its corners)."""
        yaw, place = self.placement(t)
        if not np.any(yaw != 0.0):
            return self.layout.lo + place, self.layout.hi + place
        lo, hi = self.layout.lo, self.layout.hi
        xs = np.stack([lo[:, 0], hi[:, 0], hi[:, 0], lo[:, 0]], 1)
        ys = np.stack([lo[:, 1], lo[:, 1], hi[:, 1], hi[:, 1]], 1)
        c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
        wx, wy = c * xs - s * ys + place[:, 0:1], s * xs + c * ys + place[:, 1:2]
        return (np.stack([wx.min(1), wy.min(1), lo[:, 2] + place[:, 2]], 1),
                np.stack([wx.max(1), wy.max(1), hi[:, 2] + place[:, 2]], 1))

    def in_view_range(self, origin: np.ndarray, t: float) -> np.ndarray | None:
        """Indices of the boxes within the kind's ``VIEW_RANGE`` of ``origin``, or None for all.

        A long street holds tens of thousands of boxes; casting only those in range keeps the
        cost of a frame independent of the street's length. The range is wider than anything a
        scene of the default length holds, so short scenes render exactly as without it.
        """
        view_range = getattr(self._mod, "VIEW_RANGE", None)
        if view_range is None or len(self.layout.mat) == 0:
            return None
        lo, hi = self.boxes_at(t)
        gap = np.maximum(np.maximum(lo - origin, origin - hi), 0.0)
        near = np.flatnonzero((gap * gap).sum(1) <= view_range * view_range)
        return None if len(near) == len(lo) else near

    def ranges(self, origin: np.ndarray, directions: np.ndarray, t: float,
               device: str | torch.device = "cpu") -> np.ndarray:
        """Exact distance (N,) float32 from ``origin`` along each of ``directions`` (N, 3, world
        frame, any length) to the first surface at time ``t``; ``inf`` where a ray hits nothing
        (sky). The truth a simulated LiDAR is tested against."""
        origin = np.asarray(origin, np.float64)
        yaw, place = self.placement(t)
        keep = self.in_view_range(origin, t)
        lo, hi = self.layout.lo, self.layout.hi
        if keep is not None:
            lo, hi, yaw, place = lo[keep], hi[keep], yaw[keep], place[keep]
        r, _ = cast_directions(origin, directions, lo, hi, ground_z=self._mod.GROUND_Z,
                               room=self._mod.room_bounds(self.params), yaw=yaw, place=place, device=device)
        return r.cpu().numpy()

    # ---- rendering ---------------------------------------------------------------------------
    def render(self, c2w: np.ndarray, intr: Intrinsics, t: float, supersample: int = 2, *,
               exposure: bool = True, return_dynamic: bool = False,
               device: str | torch.device = "cpu"):
        """Ray-cast one view at time ``t``.

        Returns ``(rgb uint8 (H,W,3), depth float32 (H,W))`` -- z-depth in metres at pixel
        centres, ``+inf`` for sky -- and, with ``return_dynamic``, a bool (H,W) mask of pixels
        whose centre ray hits a moving object.
        """
        c2w = np.asarray(c2w, dtype=np.float64)
        if c2w.shape != (4, 4) or not np.isfinite(c2w).all():
            raise InputError(f"camera pose has shape {c2w.shape} or is not finite", "give a finite 4x4 camera-to-world matrix")
        if int(supersample) < 1:
            raise InputError(f"supersample {supersample} is not valid", "give 1 or more")
        device = torch.device(device)
        color, hits = self._shade(c2w, intr, t, int(supersample), device)
        if exposure:
            color = color * self.exposure_gain(t)
        rgb = _to_uint8(color, self.camera)
        _, centre = subpixel_offsets(int(supersample))
        depth = hits.t[centre].cpu().numpy().astype(np.float32)
        if not return_dynamic:
            return rgb, depth
        dyn_table = torch.tensor(np.append(self.layout.dynamic, False), device=device)
        s_c = hits.surface[centre]
        dynamic = (dyn_table[s_c.clamp(min=0)] & (s_c != MISS)).cpu().numpy()
        return rgb, depth, dynamic

    def render_blurred(self, pose_at, intr: Intrinsics, t: float, exposure_s: float, samples: int,
                       supersample: int = 2, *, return_dynamic: bool = False,
                       device: str | torch.device = "cpu"):
        """Motion blur: the mean colour of ``samples`` renders spread evenly over the shutter
        time ``[t - exposure_s / 2, t + exposure_s / 2]``, each at its own camera pose
        ``pose_at(time)`` and object positions (averaged in linear colour before rounding).

        Depth and the dynamic mask are those of the pose at mid-exposure ``t``, the frame's
        ground-truth time and pose. ``samples`` 1 or ``exposure_s`` 0 is a plain render.
        """
        device = torch.device(device)
        samples = int(samples)
        if samples < 1 or not (np.isfinite(exposure_s) and exposure_s >= 0):
            raise InputError(f"motion blur of {exposure_s} s with {samples} samples is not valid",
                             "give an exposure >= 0 s and 1 or more samples")
        if samples == 1 or exposure_s == 0:
            return self.render(pose_at(t), intr, t, supersample, return_dynamic=return_dynamic, device=device)
        total = None
        for k in range(samples):
            tk = t + exposure_s * ((k + 0.5) / samples - 0.5)
            color, _ = self._shade(pose_at(tk), intr, tk, int(supersample), device)
            color = color * self.exposure_gain(tk)
            total = color if total is None else total + color
        rgb = _to_uint8(total / samples, self.camera)
        # Geometry at mid-exposure from one pixel-centre ray per pixel (its colour is not used).
        _, depth, *dynamic = self.render(pose_at(t), intr, t, 1, return_dynamic=return_dynamic, device=device)
        return (rgb, depth, *dynamic)

    def _shade(self, c2w: np.ndarray, intr: Intrinsics, t: float, supersample: int, device: torch.device):
        """Linear colour (H, W, 3) before exposure gain, and the rays' hits."""
        lay = self.layout
        mod = self._mod
        room = mod.room_bounds(self.params)
        origin = c2w[:3, 3]
        yaw, place = self.placement(t)
        rotated = bool(np.any(yaw != 0.0))
        keep = self.in_view_range(origin, t)
        box_lo, box_hi, box_yaw, box_place = lay.lo, lay.hi, yaw, place
        if keep is not None:
            box_lo, box_hi, box_yaw, box_place = lay.lo[keep], lay.hi[keep], yaw[keep], place[keep]
        if rotated:
            hits = cast(c2w, intr, supersample, box_lo, box_hi, ground_z=mod.GROUND_Z, room=room,
                        yaw=box_yaw, place=box_place, device=device)
        else:
            hits = cast(c2w, intr, supersample, box_lo + box_place, box_hi + box_place,
                        ground_z=mod.GROUND_Z, room=room, device=device)
        m = len(lay.mat)
        if keep is not None:
            # Back to layout indices: cast numbered the kept boxes 0..k-1 and the extra surface k.
            table = torch.tensor(np.append(keep, m), dtype=torch.int64, device=device)
            hits.surface = torch.where(hits.surface == MISS, hits.surface, table[hits.surface.clamp(min=0)])
        n_sub = supersample ** 2

        # Per-surface tables; index m is the analytic extra surface (ground plane / room).
        mat = torch.tensor(np.append(lay.mat, mod.EXTRA_MATERIAL), device=device)
        attr = torch.tensor(np.vstack([lay.attr, np.zeros((1, lay.attr.shape[1]), np.float32)]), device=device)
        # Texture frame: each box's own local frame (texture moves and turns with it); world
        # for the extra surface. Local = Rz(-yaw) (world - place); world = rel + camera centre,
        # so the camera centre's local coordinates are precomputed per box in float64.
        cos_k, sin_k = np.cos(np.append(yaw, 0.0)), np.sin(np.append(yaw, 0.0))
        d = np.vstack([origin - place, origin[None]])
        shift = torch.tensor(np.stack([cos_k * d[:, 0] + sin_k * d[:, 1], -sin_k * d[:, 0] + cos_k * d[:, 1],
                                       d[:, 2]], 1), dtype=torch.float32, device=device)
        cos_t = torch.tensor(cos_k, dtype=torch.float32, device=device)
        sin_t = torch.tensor(sin_k, dtype=torch.float32, device=device)
        extra_lo, extra_hi = room if room is not None else (np.zeros(3), np.zeros(3))
        lo_loc = torch.tensor(np.vstack([lay.lo, extra_lo]), dtype=torch.float32, device=device)
        hi_loc = torch.tensor(np.vstack([lay.hi, extra_hi]), dtype=torch.float32, device=device)
        origin_t = torch.tensor(origin, dtype=torch.float32, device=device)

        surf = hits.surface[:n_sub].reshape(-1)
        normal = hits.normal[:n_sub].reshape(-1, 3)
        rel = hits.rel[:n_sub].reshape(-1, 3)
        dirs = hits.dirs[:n_sub].reshape(-1, 3)
        color = torch.zeros_like(rel)
        hit = surf != MISS
        if (~hit).any():
            color[~hit] = mod.sky(dirs[~hit])
        ray_mat = torch.where(hit, mat[surf.clamp(min=0)], torch.zeros_like(surf))  # 0: sky
        for mid, shader in mod.SHADERS.items():
            sel = ray_mat == mid
            if not sel.any():
                continue
            idx = surf[sel]
            n = normal[sel]
            r = rel[sel]
            if rotated:
                c, s = cos_t[idx], sin_t[idx]
                p = torch.stack([c * r[:, 0] + s * r[:, 1], -s * r[:, 0] + c * r[:, 1], r[:, 2]], -1) + shift[idx]
                n_loc = torch.stack([c * n[:, 0] + s * n[:, 1], -s * n[:, 0] + c * n[:, 1], n[:, 2]], -1)
                n_loc = torch.where(n_loc.abs() > 0.5, torch.sign(n_loc), torch.zeros_like(n_loc))
            else:
                # local position = (camera-relative hit) + camera centre - object offset
                p = r + shift[idx]
                n_loc = n
            h = Surf(p=p, n=n_loc, axis=n_loc.abs().argmax(-1), lo=lo_loc[idx], hi=hi_loc[idx], attr=attr[idx])
            albedo, emit = shader(h, self)
            world = r + origin_t
            irr = mod.light(n, world, self)
            color[sel] = albedo * (irr * (1.0 - emit) + emit)[:, None]

        h_img, w_img = intr.height, intr.width
        return color.reshape(n_sub, h_img, w_img, 3).mean(0), hits
