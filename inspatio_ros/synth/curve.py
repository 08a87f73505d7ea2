"""A road centreline that curves: a straight lead-in, then arcs of one radius turning left, right,
left ... (an S-shaped road that never crosses itself), parameterised by arc length ``s``.

Street coordinates are ``(s, d)``: arc length along the centreline and signed lateral offset (left
positive). A straight street is the special case where street and world coordinates coincide
(``x = s``, ``y = d``). Boxes laid out in street coordinates are placed into the world in short
pieces, each turned to the road's heading at its centre (see :meth:`Centreline.piece`), so
facades, sidewalks and parked cars follow the curve.
"""
from __future__ import annotations

import math

import numpy as np
import torch


class Centreline:
    """Lead-in along +x for ``s < 0``; from ``s = 0`` arcs of ``radius`` turning ``turn`` radians
    each, alternating left (first) and right, up to at least ``s_max``."""

    def __init__(self, radius: float, turn: float, s_max: float):
        self.radius = float(radius)
        self.turn = float(turn)
        self.arc = self.radius * self.turn                  # arc length of one turn
        n = max(1, int(math.ceil(max(s_max, 0.0) / self.arc)) + 1)
        self.sign = np.array([1.0 if j % 2 == 0 else -1.0 for j in range(n)])
        self.start = np.zeros((n, 2))                       # centreline point where arc j starts
        self.heading0 = np.zeros(n)                         # heading there (rad, from +x)
        self.centre = np.zeros((n, 2))                      # the arc's centre of curvature
        p, th = np.zeros(2), 0.0
        for j in range(n):
            self.start[j], self.heading0[j] = p, th
            left = np.array([-math.sin(th), math.cos(th)])
            self.centre[j] = p + self.sign[j] * self.radius * left
            th_end = th + self.sign[j] * self.turn
            p = self.centre[j] - self.sign[j] * self.radius * np.array([-math.sin(th_end), math.cos(th_end)])
            th = th_end

    def _segment(self, s: np.ndarray) -> np.ndarray:
        return np.clip(np.floor(np.asarray(s, np.float64) / self.arc), -1, len(self.sign) - 1).astype(int)

    def curvature(self, s) -> np.ndarray:
        """Signed curvature (1/m, left positive) at arc length ``s``."""
        j = self._segment(s)
        return np.where(j < 0, 0.0, self.sign[np.maximum(j, 0)] / self.radius)

    def heading(self, s) -> np.ndarray:
        s = np.asarray(s, np.float64)
        j = self._segment(s)
        jj = np.maximum(j, 0)
        return np.where(j < 0, 0.0, self.heading0[jj] + self.sign[jj] * (s - jj * self.arc) / self.radius)

    def point(self, s) -> np.ndarray:
        """Centreline point(s) (..., 2) at arc length ``s``."""
        s = np.asarray(s, np.float64)
        j = self._segment(s)
        jj = np.maximum(j, 0)
        th = self.heading(s)
        left = np.stack([-np.sin(th), np.cos(th)], -1)
        on_arc = self.centre[jj] - (self.sign[jj] * self.radius)[..., None] * left
        lead_in = np.stack([s, np.zeros_like(s)], -1)
        return np.where((j < 0)[..., None], lead_in, on_arc)

    def metric(self, s, d) -> np.ndarray:
        """Arc length along the parallel curve at offset ``d``: u = s - d * heading(s).

        Texture coordinates along facades use it, so windows keep their size on both sides of
        a bend (the inner side of a curve is shorter than the centreline, the outer longer).
        """
        return np.asarray(s, np.float64) - np.asarray(d, np.float64) * self.heading(s)

    def piece(self, s0: float, s1: float, d_ref: float, local_centred: bool = False
              ) -> tuple[float, tuple[float, float, float], float, float]:
        """Place the street-coordinate span ``[s0, s1]`` (within one segment) as one straight box.

        Returns ``(yaw, place, u0, u1)``: the box's local x runs over ``[u0, u1]`` and its local
        y is the lateral offset ``d``; ``world = Rz(yaw) local + place``. The box is tangent to the
        parallel curve at offset ``d_ref`` in the middle of the span, and long enough to reach
        the span's ends there (tangent half-length ``r tan(dphi / 2)``). ``local_centred`` puts
        local x = 0 at the span centre (small objects); otherwise local x is :meth:`metric` at
        ``d_ref``, continuous from piece to piece along a facade.
        """
        sc = 0.5 * (s0 + s1)
        yaw = float(self.heading(sc))
        kappa = float(self.curvature(sc))
        scale = 1.0 - kappa * d_ref                       # parallel-curve length per centreline metre
        half = 0.5 * (s1 - s0) * scale
        if kappa != 0.0 and scale > 0:
            # Tangent lines of neighbouring pieces meet on their shared radius: no gap, no step.
            half = abs(scale / kappa) * math.tan(0.5 * abs(kappa) * (s1 - s0))
        uc = 0.0 if local_centred else float(self.metric(sc, d_ref))
        px, py = self.point(sc)
        c, s = math.cos(yaw), math.sin(yaw)
        place = (float(px - c * uc), float(py - s * uc), 0.0)
        return yaw, place, uc - half, uc + half

    def to_street(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """World (x, y) -> street (s, d); ``d = inf`` where no segment covers the point (off-road)."""
        best_s = torch.zeros_like(x)
        best_d = torch.full_like(x, float("inf"))
        # Lead-in: the straight road behind s = 0.
        ok = x <= 0
        best_s = torch.where(ok, x, best_s)
        best_d = torch.where(ok, y, best_d)
        for j in range(len(self.sign)):
            cx, cy = (float(v) for v in self.centre[j])
            dx, dy = x - cx, y - cy
            r = torch.sqrt(dx * dx + dy * dy)
            sign = float(self.sign[j])
            # Heading of the centreline point nearest to (x, y) on this circle.
            th = torch.atan2(dy, dx) + sign * (math.pi / 2)
            delta = torch.remainder(th - float(self.heading0[j]) + math.pi, 2 * math.pi) - math.pi
            along = sign * delta * self.radius
            d = sign * (self.radius - r)
            ok = (along >= 0) & (along <= self.arc) & (d.abs() < best_d.abs())
            best_s = torch.where(ok, j * self.arc + along, best_s)
            best_d = torch.where(ok, d, best_d)
        return best_s, best_d
