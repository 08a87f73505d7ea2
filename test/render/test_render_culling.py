"""Frustum culling (render/culling.py): ChunkedCloud changes which points are projected, never the image."""
import math

import numpy as np
import torch

from inspatio_ros.camera import look_at
from inspatio_ros.render import PointCloud, RenderSettings, render_points
from render_scenes import INTR, camera, pixel_surfels


def test_frustum_culling_changes_nothing_but_the_work():
    """ChunkedCloud: renders with and without culling are identical, looking into, along and away
    from a scattered world (walls of surfels all around the origin, 40 m across). Compared with the
    chunk-sorted cloud: sorting alone may flip ties of exactly equal depth (edge-on walls seen from
    above), which is the renderer's tie rule, not culling."""
    from inspatio_ros.render import ChunkedCloud

    rng = np.random.default_rng(3)
    parts = []
    for yaw in np.linspace(0, 2 * np.pi, 8, endpoint=False):
        c2w = look_at([0.0, 0.0, 1.5], [20 * math.cos(yaw), 20 * math.sin(yaw), 1.5])
        colours = rng.integers(0, 256, (INTR.height, INTR.width, 3), dtype=np.uint8)
        parts.append(pixel_surfels(INTR, c2w, float(rng.uniform(4, 20)), colours))
    xyz, rgb, radius, normal = (np.concatenate([p[i] for p in parts]) for i in range(4))
    cloud = PointCloud.from_arrays(xyz, rgb, radius, normal)
    chunks = ChunkedCloud(cloud, cell_m=4.0)
    assert len(chunks.counts) > 20 and int(chunks.counts.sum()) == len(xyz)
    settings = RenderSettings()
    poses = [look_at([0.0, 0.0, 1.5], [5.0, 1.0, 1.2]), look_at([3.0, -2.0, 1.0], [-10.0, -4.0, 2.0]),
             look_at([0.0, 0.0, 30.0], [0.0, 0.0, 0.0], up=(1.0, 0.0, 0.0))]
    kept = []
    for c2w in poses:
        cams = camera(c2w)
        sub = chunks.subset(cams, settings.near, settings.max_splat_px + 1.0)
        kept.append(len(sub.xyz) / len(xyz))
        full = render_points(chunks.cloud, cams, settings=settings)
        culled = render_points(sub, cams, settings=settings)
        assert torch.equal(full.rgb, culled.rgb) and torch.equal(full.coverage, culled.coverage)
        assert torch.equal(torch.nan_to_num(full.depth, nan=-1.0), torch.nan_to_num(culled.depth, nan=-1.0))
    assert min(kept) < 0.6, kept          # the side views really drop most of the world


def test_culling_with_nothing_in_view_still_renders():
    from inspatio_ros.render import ChunkedCloud

    c2w = np.eye(4)
    colours = np.full((INTR.height, INTR.width, 3), 200, np.uint8)
    cloud = PointCloud.from_arrays(*pixel_surfels(INTR, c2w, 5.0, colours))
    away = look_at([0.0, 0.0, 0.0], [0.0, 0.0, -10.0], up=(0.0, -1.0, 0.0))      # looking backwards
    sub = ChunkedCloud(cloud).subset(camera(away), 0.05, 5.0)
    out = render_points(sub, camera(away))
    assert not bool(out.coverage.any())
