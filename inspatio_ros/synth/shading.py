"""Shared shading helpers: the per-hit surface record and small texture utilities."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .layout import A_COLOR, A_COLOR2, A_SEED


@dataclass
class Surf:
    """Hits of one material, in the object's own (motion-compensated) frame."""

    p: torch.Tensor      # [n, 3] hit point (texture coordinates move with the object)
    n: torch.Tensor      # [n, 3] outward unit normal (axis-aligned)
    axis: torch.Tensor   # [n] 0, 1 or 2: the normal's axis
    lo: torch.Tensor     # [n, 3] the hit box's bounds in the same frame
    hi: torch.Tensor
    attr: torch.Tensor   # [n, N_ATTR]

    @property
    def color(self) -> torch.Tensor:
        return self.attr[:, A_COLOR]

    @property
    def color2(self) -> torch.Tensor:
        return self.attr[:, A_COLOR2]

    @property
    def seed(self) -> torch.Tensor:
        return self.attr[:, A_SEED].to(torch.int64)

    def param(self, i: int) -> torch.Tensor:
        return self.attr[:, i]

    def face_uv(self) -> tuple[torch.Tensor, torch.Tensor]:
        """In-plane coordinates: (along, up) on vertical faces, (x, y) on horizontal ones."""
        x, y, z = self.p.unbind(-1)
        s = torch.where(self.axis == 0, y, x)
        r = torch.where(self.axis == 2, y, z)
        return s, r

    def face_extent(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(s_lo, s_hi, r_lo, r_hi) of the hit face in face_uv coordinates."""
        s_lo = torch.where(self.axis == 0, self.lo[:, 1], self.lo[:, 0])
        s_hi = torch.where(self.axis == 0, self.hi[:, 1], self.hi[:, 0])
        r_lo = torch.where(self.axis == 2, self.lo[:, 1], self.lo[:, 2])
        r_hi = torch.where(self.axis == 2, self.hi[:, 1], self.hi[:, 2])
        return s_lo, s_hi, r_lo, r_hi

    def face_key(self) -> torch.Tensor:
        """Integer per face orientation (0..5), mixed into hashes so faces differ."""
        sign = (self.n.sum(-1) > 0).to(torch.int64)
        return self.axis * 2 + sign


def rgb(values, like: torch.Tensor) -> torch.Tensor:
    """A constant colour as a [1, 3] tensor on ``like``'s device."""
    return torch.tensor(values, dtype=torch.float32, device=like.device).reshape(1, 3)


def smoothstep(e0: float, e1: float, x: torch.Tensor) -> torch.Tensor:
    t = torch.clamp((x - e0) / (e1 - e0), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def rect_mask(s: torch.Tensor, r: torch.Tensor, s0, s1, r0, r1) -> torch.Tensor:
    return (s >= s0) & (s <= s1) & (r >= r0) & (r <= r1)


def mix(a: torch.Tensor, b: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Per-row blend ``a (1-w) + b w`` with w of shape [n] (or [n, 1])."""
    if w.dim() == 1:
        w = w[:, None]
    return a + (b - a) * w
