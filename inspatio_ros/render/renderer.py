"""``Renderer``: a world uploaded once to a device and rendered batch after batch, on the path
that suits the device (CUDA graphs of the reference render, or the CPU kernels over culled
chunks); ``render`` for one-off renders; ``world_point_cloud`` for a World's points."""
from __future__ import annotations

import dataclasses

import logging
import os
from typing import Sequence

import numpy as np
import torch

from ..camera import Intrinsics
from .cuda_graphs import CapturedRender, ring_capacity
from .culling import ChunkedCloud
from .reference import render_points
from .types import Cameras, PointCloud, RenderOutput, RenderSettings, resolve_device

log = logging.getLogger(__name__)


def world_point_cloud(world, device: str | torch.device = "cpu", layers: str = "all") -> PointCloud:
    """Static and dynamic layers of a World as one PointCloud on ``device`` (``layers``: "all",
    "static" or "dynamic"). A world with a Gaussian layer (format version 2) and no surfels gives
    its Gaussians drawn as surfels, made here (gaussians/model.py world_surfels: large Gaussians
    split, coloured by the field ``optimize`` stored); an optimized world written before that
    (surfels stored beside the Gaussians) draws its stored surfels."""
    if getattr(world, "has_gaussians", False) and world.num_static == 0 and world.num_dynamic == 0:
        from ..gaussians.model import world_surfels

        return PointCloud.from_arrays(*world_surfels(world, layers), device=device)
    parts = []
    if layers in ("all", "static"):
        n_s = world.num_static
        parts.append((world.static_xyz, world.static_rgb, world.static_radius, world.static_normal,
                      np.full(n_s, -np.inf), np.full(n_s, np.inf)))
    if layers in ("all", "dynamic"):
        parts.append((world.dynamic_xyz, world.dynamic_rgb, world.dynamic_radius, world.dynamic_normal,
                      world.dynamic_t_start, world.dynamic_t_end))
    return PointCloud.from_arrays(*(np.concatenate(f) for f in zip(*parts)), device=device)


class Renderer:
    """A world uploaded once to a device; ``render`` draws batches of cameras at a time.

    On the CPU the world is kept in spatial chunks and each batch projects only the chunks in
    view (ChunkedCloud), and the render runs as compiled CPU kernels (cpu.py) where numba
    is installed (``cpu_kernels``; INSPATIO_CPU_KERNELS=0 selects eager PyTorch); on CUDA every
    point is projected (culling is not measured there yet), and each batch shape is captured once in a CUDA graph (``graphs``; INSPATIO_NO_GRAPHS=1 turns it
    off): the first render of a shape runs eagerly and measures how many pixels each splat ring
    examines, later ones replay the graph. A replay whose rings needed more room than captured
    is thrown away and rendered eagerly, and the graph captured again with room for it.

    A world with a frame-local layer (``world.info["frame_local"]``, see ingest/build.py) is drawn
    in two passes at a time ``t``: its dynamic layer (each fused frame's own surfels around the
    frame's time, and moving objects), hole-filled, and the static layer only where hole filling
    could not reach (measured on KITTI: the static layer's surfels from distant frames are worse
    than filling). Without a time it is drawn in one pass, all layers.
    """

    def __init__(self, world, device: str | torch.device = "auto", settings: RenderSettings | None = None,
                 cull: bool | None = None, graphs: bool | None = None, cpu_kernels: bool | None = None,
                 gaussians: bool | None = None):
        """``world``: a World, or a PointCloud already on ``device`` (benchmarks, tests).

        ``gaussians``: draw a version-2 world's Gaussian layer with gsplat (gaussians/draw.py)
        instead of its surfels; None (default) does where the device is CUDA and gsplat is
        installed, unless INSPATIO_GAUSSIANS=0. The CPU always draws the surfels."""
        self.world = world
        self.device = resolve_device(device)
        self.settings = settings or RenderSettings()
        self.layers = None
        self.gaussians = None
        if gaussians is None:
            gaussians = (self.device.type == "cuda" and os.environ.get("INSPATIO_GAUSSIANS") != "0"
                         and not isinstance(world, PointCloud) and getattr(world, "has_gaussians", False))
            if gaussians:
                from ..gaussians.backend import gsplat_available

                gaussians = gsplat_available()
        if gaussians:
            from ..gaussians.draw import GaussianDrawer

            self.gaussians = GaussianDrawer(world, self.device, self.settings.background)
            self.cloud, self.chunks, self.graphs, self.cpu_kernels = None, None, False, False
            self._all_layers, self._captured, self.recaptures, self._options = None, {}, 0, (cull, graphs, cpu_kernels)
            return
        self._options = (cull, graphs, cpu_kernels)
        # An optimized world's learned sky (gaussians/sky.py) shows where the surfels leave wide
        # empty areas; hole filling keeps only the narrow gaps between surfels.
        self.sky = None
        if not isinstance(world, PointCloud) and (world.info or {}).get("sky") is not None:
            from ..gaussians.sky import world_sky

            self.sky = world_sky(world)
        if not isinstance(world, PointCloud) and world.info.get("frame_local") and len(world.dynamic_xyz) \
                and world.num_static:
            self.layers = (Renderer(world_point_cloud(world, self.device, "dynamic"), self.device, self.settings, cull,
                                    graphs, cpu_kernels),
                           Renderer(world_point_cloud(world, self.device, "static"), self.device, self.settings, cull,
                                    graphs, cpu_kernels))
        # A layered world's one-pass cloud (renders without a time) is made on first use: the node
        # always renders at a time, and the layers already hold every point once.
        self._all_layers: Renderer | None = None
        self.cloud = world if isinstance(world, PointCloud) else (
            world_point_cloud(world, self.device) if self.layers is None else None)
        cull = self.device.type == "cpu" if cull is None else cull
        # Culling needs the splat cap: without it a near surfel may cover any part of the image.
        self.chunks = (ChunkedCloud(self.cloud) if self.cloud is not None and cull and self.settings.max_splat_px > 0
                       and len(self.cloud.xyz) else None)
        if graphs is None:
            graphs = self.device.type == "cuda" and os.environ.get("INSPATIO_NO_GRAPHS") != "1"
        self.graphs = bool(graphs) and self.device.type == "cuda" and self.settings.max_splat_px > 0
        self._captured: dict = {}
        self.recaptures = 0          # graphs captured again after an overflow (diagnostics)
        if cpu_kernels is None and self.device.type == "cpu":
            # Asked only on the CPU: importing numba maps LLVM into the process (~36 MB resident
            # measured in the GPU node, which never runs the kernels).
            from . import cpu
            cpu_kernels = os.environ.get("INSPATIO_CPU_KERNELS") != "0" and cpu.available()
        self.cpu_kernels = bool(cpu_kernels) and self.device.type == "cpu"

    def cameras(self, c2w, intrinsics: Intrinsics | Sequence[Intrinsics] | None = None) -> Cameras:
        return Cameras.from_intrinsics(intrinsics or self.world.intrinsics, c2w, self.device)

    def render(self, cameras: Cameras, t: float | None = None) -> RenderOutput:
        cameras = cameras.to(self.device)
        if self.gaussians is not None:
            return self.gaussians.render(cameras, t)
        out = self._render_surfels(cameras, t)
        if self.sky is not None:
            from ..gaussians.sky import fill_empty, open_sky

            sky = open_sky(out.coverage)
            out = dataclasses.replace(out, rgb=fill_empty(out.rgb, sky, self.sky, cameras.K, cameras.c2w),
                                      depth=torch.where(sky, torch.full_like(out.depth, float("nan")), out.depth))
        return out

    def _render_surfels(self, cameras: Cameras, t: float | None) -> RenderOutput:
        if self.layers is not None:
            if t is None:
                if self._all_layers is None:
                    self._all_layers = Renderer(world_point_cloud(self.world, self.device), self.device, self.settings,
                                                *self._options)
                return self._all_layers.render(cameras, None)
            front, back = (r.render(cameras, t) for r in self.layers)
            empty = torch.isnan(front.depth)
            return RenderOutput(torch.where(empty[..., None], back.rgb, front.rgb),
                                torch.where(empty, back.depth, front.depth),
                                front.coverage | (empty & back.coverage), None, front.need_counts)
        if self.graphs:
            return self._render_captured(cameras, t)
        cloud = self.cloud
        margin = float(self.settings.max_splat_px) + 1.0
        if self.cpu_kernels:
            from .cpu import render_points_cpu, visible_runs
            if self.chunks is None:
                return render_points_cpu(cloud, cameras, t, self.settings)
            runs = visible_runs(self.chunks, cameras, self.settings.near, margin)
            return render_points_cpu(self.chunks.cloud, cameras, t, self.settings, runs=runs)
        if self.chunks is not None:
            cloud = self.chunks.subset(cameras, self.settings.near, margin)
        return render_points(cloud, cameras, t, self.settings)

    def _render_captured(self, cams: Cameras, t: float | None) -> RenderOutput:
        use_time = t is not None and self.cloud.has_dynamic
        key = (len(cams), cams.height, cams.width, use_time)
        entry = self._captured.get(key)
        if entry is not None:
            out = entry.replay(cams, t)
            counts = out.need_counts.cpu()            # waits for the render (outputs are read next anyway)
            if bool((counts <= torch.tensor(entry.capacity)).all()):
                # Copies: the next replay overwrites the graph's outputs.
                return RenderOutput(out.rgb.clone(), out.depth.clone(), out.coverage.clone(), None, counts)
            log.info("splat rings needed %s pixels, captured for %s: re-capturing the render graph",
                     counts.tolist(), entry.capacity)
            self.recaptures += 1
            del self._captured[key]
        out = render_points(self.cloud, cams, t, self.settings)
        capacity = ring_capacity(out.need_counts, len(cams) * cams.height * cams.width)
        self._captured[key] = CapturedRender(self.cloud, cams, t if use_time else None, self.settings, capacity)
        return out


def render(world, cameras: Cameras, t: float | None = None, device: str | torch.device = "auto",
           settings: RenderSettings | None = None) -> RenderOutput:
    """One-shot render of a World (uploads it each call: keep a Renderer for repeated frames)."""
    return Renderer(world, device, settings).render(cameras, t)
