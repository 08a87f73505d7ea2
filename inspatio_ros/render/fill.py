"""Hole filling: push-pull interpolation over an image pyramid (the renderer's last step; the
build fills unknown depth with it too)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def push_pull(values: torch.Tensor, known: torch.Tensor, levels: int):
    """Fill unknown pixels of values (B,C,H,W) from known ones (B,1,H,W bool) over a pyramid.

    Returns (filled values, filled mask): a pixel is filled when some level within ``levels``
    had data around it.
    """
    w = known.to(values.dtype)
    pyramid = [(values * w, w)]
    for _ in range(levels):
        vw, ww = pyramid[-1]
        if min(vw.shape[-2:]) < 2:
            break
        pyramid.append((F.avg_pool2d(vw, 2, ceil_mode=True), F.avg_pool2d(ww, 2, ceil_mode=True)))
    vw, ww = pyramid[-1]
    filled = vw / ww.clamp_min(1e-12)
    have = ww > 0
    for vw, ww in reversed(pyramid[:-1]):
        size = vw.shape[-2:]
        up_v = F.interpolate(filled * have, size=size, mode="bilinear", align_corners=False)
        up_w = F.interpolate(have.to(values.dtype), size=size, mode="bilinear", align_corners=False)
        own = ww > 0
        filled = torch.where(own, vw / ww.clamp_min(1e-12), up_v / up_w.clamp_min(1e-12))
        have = own | (up_w > 1e-6)
    return filled, have
