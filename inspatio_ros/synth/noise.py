"""Hash-based value noise in torch: non-repeating procedural texture keyed by world position.

A tiling texture image would repeat; an integer hash of the lattice cell (plus a seed) never does,
so two facade patches 20 m apart always look different. Everything is vectorised over rays.
"""
from __future__ import annotations

from typing import Sequence

import torch

_M32 = 0xFFFFFFFF


# Odd multipliers below 2**31: a masked 32-bit value times one of them fits in int64, so the
# arithmetic never overflows and the hash is bit-identical on every platform and device.
_K = (0x27D4EB2D, 0x165667B1, 0x3C6EF372, 0x1B873593, 0x2C1B3C6D)
_MIX1, _MIX2 = 0x7FEB352D, 0x4CF5AD43


def _fmix(h: torch.Tensor) -> torch.Tensor:
    """Avalanche a non-negative int64 key into a uint32 (held in int64)."""
    h = (h ^ (h >> 32)) & _M32
    h = ((h ^ (h >> 16)) * _MIX1) & _M32
    h = ((h ^ (h >> 15)) * _MIX2) & _M32
    return h ^ (h >> 16)


def _combine(*keys: torch.Tensor | int) -> torch.Tensor | int:
    """Linear key ``sum k_i * K_i`` (exact in int64 for keys below ~2**31); mixed by _fmix.

    Two keys collide only when they differ by a multiple of a 31-bit constant, i.e. never at
    the lattice sizes used here (texture cells are >= 1 cm and scenes a few km at most).
    """
    h: torch.Tensor | int = 0
    for i, key in enumerate(keys):
        h = h + key * _K[i % len(_K)]
    return h


def hash_u32(*keys: torch.Tensor | int) -> torch.Tensor:
    """Mix integer keys (int64 tensors or ints, any sign) into a well-spread uint32 in int64."""
    h = _combine(*keys)
    if not isinstance(h, torch.Tensor):
        h = torch.tensor(h)
    return _fmix(h & ((1 << 62) - 1))


def hash01(*keys: torch.Tensor | int) -> torch.Tensor:
    """Uniform float32 in [0, 1) from integer keys."""
    return _to01(hash_u32(*keys))


def _to01(h: torch.Tensor) -> torch.Tensor:
    return (h & 0xFFFFFF).to(torch.float32) * (1.0 / 16777216.0)


def _smooth(f: torch.Tensor) -> torch.Tensor:
    # Quintic fade: C2-continuous, so shading has no visible lattice creases.
    return f * f * f * (f * (f * 6.0 - 15.0) + 10.0)


def value_noise2(x: torch.Tensor, y: torch.Tensor, seed: torch.Tensor | int) -> torch.Tensor:
    """Smooth 2-D value noise in [0, 1) with unit lattice spacing."""
    fx, fy = torch.floor(x), torch.floor(y)
    ix, iy = fx.to(torch.int64), fy.to(torch.int64)
    sx, sy = _smooth(x - fx), _smooth(y - fy)
    # Corner keys differ from the (ix, iy) key by a constant, so combine once and offset.
    k00 = _combine(ix, iy, seed) & ((1 << 62) - 1)
    n00 = _to01(_fmix(k00))
    n10 = _to01(_fmix(k00 + _K[0]))
    n01 = _to01(_fmix(k00 + _K[1]))
    n11 = _to01(_fmix(k00 + (_K[0] + _K[1])))
    a = n00 + (n10 - n00) * sx
    b = n01 + (n11 - n01) * sx
    return a + (b - a) * sy


def fbm2(x: torch.Tensor, y: torch.Tensor, seed: torch.Tensor | int,
         octaves: Sequence[tuple[float, float]]) -> torch.Tensor:
    """Sum of zero-mean noise octaves given as (frequency in 1/m, amplitude).

    Callers keep amplitudes of fine octaves (frequency above ~7/m, i.e. detail below 0.15 m)
    small, so a point-splat re-rendering of the scene can reproduce it within ~28 dB PSNR.
    """
    out = torch.zeros_like(x)
    for i, (freq, amp) in enumerate(octaves):
        # Each octave gets its own seed and an offset so lattice points do not line up.
        out = out + amp * (2.0 * value_noise2(x * freq + 17.31 * i, y * freq - 9.73 * i, seed * 7 + 101 * i + 3) - 1.0)
    return out
