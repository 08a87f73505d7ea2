"""torch.compile of the reference renderer's stages on CUDA, and the switch that keeps them eager."""
from __future__ import annotations

import contextlib
import logging
import os

import torch

_compiled: dict = {}
_eager_blocks = 0


@contextlib.contextmanager
def eager_rendering():
    """Render without torch.compile inside this block. For one-off renders whose shapes change
    every call (the build renders its growing world once per fused frame): compiling them, once
    static and again when the shapes turn dynamic, takes tens of seconds on a machine with a cold
    Inductor cache, far more than the eager renders it would speed up."""
    global _eager_blocks
    _eager_blocks += 1
    try:
        yield
    finally:
        _eager_blocks -= 1


def maybe_compiled(fn, device: torch.device):
    """On CUDA, ``fn`` compiled into fused kernels (eager PyTorch launches one kernel per
    operation: ~15 per neighbour offset in the ring pass). Eager elsewhere, inside
    ``eager_rendering()``, or when INSPATIO_NO_COMPILE=1 (INSPATIO_COMPILE_DYNAMIC=1: dynamic
    shapes from the first call)."""
    if device.type != "cuda" or _eager_blocks or os.environ.get("INSPATIO_NO_COMPILE") == "1":
        return fn
    if fn not in _compiled:
        # Symbolic-shape reasoning about the pyramid's ceil-divisions logs harmless warnings.
        logging.getLogger("torch.utils._sympy.interp").setLevel(logging.ERROR)
        # Shapes are specialised first (a node renders one image size of one world: constant
        # sizes let the kernels' index arithmetic avoid runtime integer divisions) and become
        # dynamic where a second call differs, so new sizes stop recompiling.
        dynamic = True if os.environ.get("INSPATIO_COMPILE_DYNAMIC") == "1" else None
        _compiled[fn] = torch.compile(fn, dynamic=dynamic)
    return _compiled[fn]
