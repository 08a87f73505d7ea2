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
from . import indoor, street
from .layout import FrozenLayout
from .raycast import MISS, cast, subpixel_offsets
from .shading import Surf

FORMAT = "inspatio_ros.synth.scene/1"
KINDS: dict[str, ModuleType] = {"street": street, "indoor": indoor}
HFOV_DEG = {"street": 90.0, "indoor": 80.0}


def exposure_gain(t: float) -> float:
    """Smooth auto-exposure drift, within +-4 % (two incommensurate sines, peak 0.04)."""
    return 1.0 + 0.025 * math.sin(2 * math.pi * t / 7.3) + 0.015 * math.sin(2 * math.pi * t / 2.9 + 1.3)


class Scene:
    """A deterministic procedural scene: layout, camera trajectory and ray-cast renderer."""

    def __init__(self, kind: str, seed: int = 0, params: dict[str, Any] | None = None):
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
        self.layout: FrozenLayout = self._mod.build(self.seed, self.params)

    # ---- serialisation -----------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "kind": self.kind, "seed": self.seed, "params": dict(self.params)}

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
        return cls(data["kind"], int(data["seed"]), data.get("params") or {})

    # ---- trajectory and camera ---------------------------------------------------------------
    def camera_pose(self, t: float) -> np.ndarray:
        """The scene's own camera trajectory at time t (OpenCV camera-to-world 4x4, float64)."""
        return self._mod.camera_pose(float(t), self.params)

    def default_intrinsics(self, width: int, height: int) -> Intrinsics:
        return Intrinsics.from_fov(width, height, HFOV_DEG[self.kind])

    def exposure_gain(self, t: float) -> float:
        return exposure_gain(t)

    def boxes_at(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """(lo, hi) world bounds of every box at time t."""
        off = self.layout.offset(t)
        return self.layout.lo + off, self.layout.hi + off

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
        lay = self.layout
        lo, hi = self.boxes_at(t)
        mod = self._mod
        room = mod.room_bounds(self.params)
        hits = cast(c2w, intr, int(supersample), lo, hi, ground_z=mod.GROUND_Z, room=room, device=device)
        _, centre = subpixel_offsets(int(supersample))
        n_sub = int(supersample) ** 2

        # Per-surface tables; index m is the analytic extra surface (ground plane / room).
        mat = torch.tensor(np.append(lay.mat, mod.EXTRA_MATERIAL), device=device)
        attr = torch.tensor(np.vstack([lay.attr, np.zeros((1, lay.attr.shape[1]), np.float32)]), device=device)
        off_t = self.layout.offset(t)
        # Texture frame: object-local for moving boxes (texture moves with them), world otherwise.
        origin = c2w[:3, 3]
        shift = torch.tensor(np.vstack([origin - off_t, origin[None]]), dtype=torch.float32, device=device)
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
            # local position = (camera-relative hit) + camera centre - object offset
            p = rel[sel] + shift[idx]
            h = Surf(p=p, n=n, axis=n.abs().argmax(-1), lo=lo_loc[idx], hi=hi_loc[idx], attr=attr[idx])
            albedo, emit = shader(h, self)
            world = rel[sel] + origin_t
            irr = mod.light(n, world, self)
            color[sel] = albedo * (irr * (1.0 - emit) + emit)[:, None]

        h_img, w_img = intr.height, intr.width
        color = color.reshape(n_sub, h_img, w_img, 3).mean(0)
        if exposure:
            color = color * self.exposure_gain(t)
        rgb = (color.clamp(0.0, 1.0) * 255.0 + 0.5).to(torch.uint8).cpu().numpy()
        depth = hits.t[centre].cpu().numpy().astype(np.float32)
        if not return_dynamic:
            return rgb, depth
        dyn_table = torch.tensor(np.append(lay.dynamic, False), device=device)
        s_c = hits.surface[centre]
        dynamic = (dyn_table[s_c.clamp(min=0)] & (s_c != MISS)).cpu().numpy()
        return rgb, depth, dynamic
