"""Scene layout: boxes with a material, per-object attributes, a placement and a motion law.

Each box is axis-aligned in its own *local* frame (``lo``/``hi``), which is also the frame its
texture is computed in. Its placement maps local to world: ``world = Rz(yaw) local + place``
(a rotation about the vertical only, so roads and facades can follow a curve while every box
stays upright); yaw 0 and place 0 (the default) make local and world the same. The motion law
then adds a time-dependent world translation.

Layouts are built with :class:`Rng`, which draws only from ``random.Random.random()`` -- the one
part of Python's ``random`` whose sequence for an integer seed is guaranteed stable across Python
versions -- so ``(kind, seed, params)`` rebuilds the same scene on any machine.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

# Attribute columns shared by every material (the rest are material-specific parameters).
A_COLOR = slice(0, 3)     # main albedo (RGB, 0..1)
A_COLOR2 = slice(3, 6)    # secondary albedo (trim, roof, band ...)
A_SEED = 6                # per-object integer seed (stored as float, exact below 2**24)
N_ATTR = 14


class Rng:
    """Deterministic draws from ``random.Random(seed).random()`` only (see module docstring)."""

    def __init__(self, seed: int):
        self._r = random.Random(int(seed))

    def random(self) -> float:
        return self._r.random()

    def uniform(self, a: float, b: float) -> float:
        return a + (b - a) * self._r.random()

    def int(self, a: int, b: int) -> int:
        """Integer in [a, b] inclusive."""
        return min(b, a + int(math.floor((b - a + 1) * self._r.random())))

    def chance(self, p: float) -> bool:
        return self._r.random() < p

    def choice(self, seq: Sequence):
        return seq[self.int(0, len(seq) - 1)]

    def jitter(self, color: Sequence[float], amount: float) -> list[float]:
        """A colour with a common brightness and small per-channel variation."""
        k = 1.0 + self.uniform(-amount, amount)
        return [min(1.0, max(0.0, c * k * (1.0 + self.uniform(-amount, amount) * 0.5))) for c in color]


@dataclass
class Layout:
    """All boxes of a scene as flat arrays (one row per box)."""

    lo: list = field(default_factory=list)
    hi: list = field(default_factory=list)
    mat: list = field(default_factory=list)
    attr: list = field(default_factory=list)
    motion: list = field(default_factory=list)  # vx vy vz ax ay az omega phase
    yaw: list = field(default_factory=list)     # rad about world z: local -> world rotation
    place: list = field(default_factory=list)   # world translation of the local origin
    next_seed: int = 1

    def add(self, lo: Sequence[float], hi: Sequence[float], mat: int, color: Sequence[float],
            color2: Sequence[float] = (0.0, 0.0, 0.0), params: Sequence[float] = (),
            motion: Sequence[float] = (0.0,) * 8, seed: int | None = None, *, yaw: float = 0.0,
            place: Sequence[float] = (0.0, 0.0, 0.0)) -> int:
        lo_a = np.minimum(lo, hi)
        hi_a = np.maximum(lo, hi)
        if seed is None:
            seed = self.next_seed
            self.next_seed += 1
        row = np.zeros(N_ATTR, np.float32)
        row[A_COLOR] = color
        row[A_COLOR2] = color2
        row[A_SEED] = float(seed % (1 << 24))
        row[7:7 + len(params)] = params
        self.lo.append(lo_a)
        self.hi.append(hi_a)
        self.mat.append(mat)
        self.attr.append(row)
        self.motion.append(np.asarray(motion, np.float64))
        self.yaw.append(float(yaw))
        self.place.append(np.asarray(place, np.float64))
        return len(self.mat) - 1

    def freeze(self, extras: dict | None = None) -> "FrozenLayout":
        n = len(self.mat)
        return FrozenLayout(
            lo=np.asarray(self.lo, np.float64).reshape(n, 3),
            hi=np.asarray(self.hi, np.float64).reshape(n, 3),
            mat=np.asarray(self.mat, np.int64).reshape(n),
            attr=np.asarray(self.attr, np.float32).reshape(n, N_ATTR),
            motion=np.asarray(self.motion, np.float64).reshape(n, 8),
            extras=dict(extras or {}),
            yaw=np.asarray(self.yaw, np.float64).reshape(n),
            place=np.asarray(self.place, np.float64).reshape(n, 3),
        )


@dataclass
class FrozenLayout:
    lo: np.ndarray       # (M, 3) local bounds (world bounds at t = 0 where yaw and place are 0)
    hi: np.ndarray
    mat: np.ndarray      # (M,) material id
    attr: np.ndarray     # (M, N_ATTR)
    motion: np.ndarray   # (M, 8)
    extras: dict = field(default_factory=dict)  # kind-specific data for shaders (e.g. wall decals)
    yaw: np.ndarray | None = None    # (M,) rad, local -> world rotation about z (None: all 0)
    place: np.ndarray | None = None  # (M, 3) world translation of the local origin (None: all 0)

    def __post_init__(self) -> None:
        n = len(self.mat)
        if self.yaw is None:
            self.yaw = np.zeros(n)
        if self.place is None:
            self.place = np.zeros((n, 3))

    @property
    def rotated(self) -> bool:
        """True when some box is turned about the vertical (the ray-caster's general path)."""
        return bool(np.any(self.yaw != 0.0))

    @property
    def dynamic(self) -> np.ndarray:
        return np.abs(self.motion).sum(1) > 0

    def offset(self, t: float) -> np.ndarray:
        """(M, 3) displacement at time t: ``v t + a sin(omega t + phase)``."""
        m = self.motion
        return m[:, 0:3] * t + m[:, 3:6] * np.sin(m[:, 6:7] * t + m[:, 7:8])
