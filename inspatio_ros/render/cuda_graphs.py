"""A render captured in a CUDA graph, and how much room each splat ring gets in it."""
from __future__ import annotations

import torch

from .reference import render_points
from .types import Cameras, PointCloud, RenderOutput, RenderSettings


class CapturedRender:
    """``render_points`` for one batch shape (cameras, image size, time on or off) captured in a
    CUDA graph: a replay launches the whole render at once, with no per-kernel launch cost and no
    host synchronisation. Inputs are copied into the graph's own camera and time tensors; the
    outputs live in the graph's memory and are overwritten by the next replay."""

    def __init__(self, cloud: PointCloud, cams: Cameras, t, settings: RenderSettings, capacity: list[int]):
        self.capacity = list(capacity)
        self.cams = Cameras(cams.K.clone(), cams.c2w.clone(), cams.width, cams.height)
        self.t = None if t is None else torch.tensor(float(t), dtype=torch.float64, device=cloud.xyz.device)
        args = (cloud, self.cams, self.t, settings, False, self.capacity)
        # Warm up on a side stream (compiles kernels for these shapes, settles the allocator), as
        # graph capture requires.
        side = torch.cuda.Stream(cloud.xyz.device)
        side.wait_stream(torch.cuda.current_stream(cloud.xyz.device))
        with torch.cuda.stream(side):
            for _ in range(2):
                render_points(*args)
        torch.cuda.current_stream(cloud.xyz.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.out = render_points(*args)

    def replay(self, cams: Cameras, t) -> RenderOutput:
        self.cams.K.copy_(cams.K)
        self.cams.c2w.copy_(cams.c2w)
        if self.t is not None:
            self.t.fill_(float(t))
        self.graph.replay()
        return self.out


def ring_capacity(need_counts: torch.Tensor, num_pixels: int) -> list[int]:
    """Pixels each ring of a captured render may examine: the counts seen plus a quarter and a
    floor of 1/64 of the pixels (the camera moves; an overflow costs one eager frame)."""
    floor = max(4096, num_pixels // 64)
    return [min(num_pixels, max(floor, int(c) * 5 // 4 + 1024)) for c in need_counts.tolist()]
