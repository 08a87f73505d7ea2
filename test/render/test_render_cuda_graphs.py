"""Renders replayed from CUDA graphs (render/cuda_graphs.py) against eager ones."""
import numpy as np
import pytest
import torch

from inspatio_ros.camera import Intrinsics, look_at
from inspatio_ros.render import Cameras
from render_scenes import street_like_cloud


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_graph_replays_equal_eager_renders_and_recapture_on_overflow():
    from inspatio_ros.render import Renderer

    w = street_like_cloud("cuda", n=200_000)
    intr = Intrinsics.from_fov(320, 240, 80.0)
    graphed = Renderer(w, "cuda", graphs=True)
    eager = Renderer(w, "cuda", graphs=False)
    for i in range(5):
        pose = look_at([0.3 * i, 0, 0.5 * i], [0, 0.5, 12], up=(0, -1, 0))
        cams = Cameras.from_intrinsics(intr, np.stack([pose, np.eye(4)]), "cuda")
        a, b = graphed.render(cams), eager.render(cams)
        assert torch.equal(a.rgb, b.rgb) and torch.equal(a.coverage, b.coverage)
    assert len(graphed._captured) == 1
    entry = next(iter(graphed._captured.values()))
    entry.capacity[0] = 1                      # pretend the captured room was too small
    cams = Cameras.from_intrinsics(intr, np.stack([np.eye(4), np.eye(4)]), "cuda")
    a, b = graphed.render(cams), eager.render(cams)
    assert torch.equal(a.rgb, b.rgb) and graphed.recaptures == 1
