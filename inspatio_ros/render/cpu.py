"""The renderer's algorithm as fused CPU kernels (numba), for machines without a GPU.

``reference.render_points`` (PyTorch) is the reference and what CUDA runs. Eager PyTorch on the CPU
makes one pass over memory per operation (~300 per frame); these kernels do the same work in a
handful of loops, several times faster, so that a CPU-only machine renders a camera in real time.
They follow reference.py step by step (centre z-buffer, plane depth, ring-by-ring surfel expansion
with the same need filter and winner rule, push-pull hole filling); test_render_cpu.py checks
that both give the same images.

The kernels live in cpu_kernels.py (numba), compiled on first use (~20 s on 2 cores) and
cached on disk (numba's cache, next to that file; NUMBA_CACHE_DIR moves it), so later processes
load them in about a second. ``available()`` says whether numba can be imported; without it the
Renderer uses the PyTorch path.
"""
from __future__ import annotations

import math
import os
from typing import NamedTuple

import numpy as np
import torch


def warm_up() -> None:
    """Compile (or load from the disk cache) every kernel by rendering a tiny cloud: later
    processes, such as the node's, then start without the compile."""
    from .directional import DirectionalViews
    from .renderer import Renderer
    from .types import Cameras, PointCloud

    xyz = np.array([[0.0, 0.0, 2.0], [0.1, 0.0, 2.0]])
    cloud = PointCloud.from_arrays(xyz, np.full((2, 3), 128), np.full(2, 0.5), None, [0.0, 0.0], [1.0, 1.0])
    cams = Cameras(torch.tensor([[[8.0, 0, 4], [0, 8.0, 4], [0, 0, 1]]]), torch.eye(4)[None], 8, 8)
    renderer = Renderer(cloud, "cpu", cpu_kernels=True)
    out = renderer.render(cams, 0.5)      # chunk visibility + every kernel
    if int(out.need_counts[0]) == 0:       # the ring kernel would then compile in the next process
        raise RuntimeError("render.cpu.warm_up: the warm-up render did not reach the splat rings")
    views = DirectionalViews(np.array([[0.0, 0.0, 1.0]]), 0.05)              # the LiDAR / fisheye lookup
    views.sample(views.render(renderer, np.eye(4), 0.5), kernel=True)


def available() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


_kernels = None


def _compile():
    """The kernels (cpu_kernels.py), loaded once per process."""
    global _kernels
    if _kernels is not None:
        return _kernels
    import numba

    if "NUMBA_THREADING_LAYER" not in os.environ:
        # numba's plain thread pool. Its OpenMP pool (the default where libgomp exists) stalled
        # whenever other processes wanted the cores too, as the node's writer and the DDS readers
        # do on a 2-core machine: a frame took 560 ms instead of 77 ms (measured under load).
        numba.config.THREADING_LAYER = "workqueue"
    from . import cpu_kernels as k

    _kernels = {name: getattr(k, name) for name in ("centre_zbuffer", "decode", "need_minimum", "ring", "visible_chunks", "colour",
                                                    "pool", "pull", "finish", "directional_lookup")}
    return _kernels


def _camera_arrays(cams):
    """(K (B,3,3), rotation (B,3,3), centre (B,3)) of a Cameras batch as contiguous float32 numpy."""
    K = cams.K.detach().cpu().numpy().astype(np.float32)
    c2w = cams.c2w.detach().cpu().numpy().astype(np.float32)
    return K, np.ascontiguousarray(c2w[:, :3, :3]), np.ascontiguousarray(c2w[:, :3, 3])


class CameraRuns(NamedTuple):
    """The points each camera of a batch projects: camera b the [start, end) index ranges
    ``runs[offsets[b]:offsets[b + 1]]`` (ascending; indices into the cloud)."""

    runs: np.ndarray          # (R, 2) int64
    offsets: np.ndarray       # (B + 1,) int64

    @staticmethod
    def every_point(count: int, cameras: int) -> "CameraRuns":
        return CameraRuns(np.tile(np.array([[0, count]], np.int64), (cameras, 1)), np.arange(cameras + 1, dtype=np.int64))

    def of_camera(self, b: int) -> np.ndarray:
        return self.runs[self.offsets[b]:self.offsets[b + 1]]

    @property
    def projected(self) -> int:
        """Point projections these runs ask for (summed over the cameras)."""
        return int((self.runs[:, 1] - self.runs[:, 0]).sum())


def render_points_cpu(cloud, cams, t, settings, return_index: bool = False, runs: CameraRuns | None = None):
    """reference.render_points on the CPU through the compiled kernels; returns a RenderOutput.
    ``runs``: the points each camera projects (the chunks of a ChunkedCloud it may see,
    :func:`visible_runs`; indices stay those of ``cloud``); None: every camera all points."""
    from .splats import ring_offsets
    from .types import RenderOutput

    kern = _compile()
    import numba

    B, H, W = len(cams), cams.height, cams.width
    f32 = np.float32
    K, rot, centre = _camera_arrays(cams)
    use_time = t is not None and cloud.has_dynamic
    xyz = cloud.xyz.numpy()
    t_start, t_end = cloud.t_start.numpy(), cloud.t_end.numpy()
    if runs is None:
        runs = CameraRuns.every_point(len(xyz), B)
    if len(runs.offsets) != B + 1:
        raise ValueError(f"runs for {len(runs.offsets) - 1} cameras given with a batch of {B}")
    parts = max(1, min(numba.get_num_threads(), runs.projected // 65536 + 1))
    nearest = kern["centre_zbuffer"](xyz, t_start, t_end, use_time, float(t) if use_time else 0.0, rot, centre, K,
                                     f32(settings.near), H, W, np.ascontiguousarray(runs.runs, dtype=np.int64),
                                     np.ascontiguousarray(runs.offsets, dtype=np.int64), parts)
    pad = max(int(settings.max_splat_px), 0)
    winner = nearest
    table, depth, reach, slope = kern["decode"](nearest, cloud.surfel.numpy(), rot, centre, K, H, W, pad)
    counts = np.zeros(max(settings.max_splat_px, 1), dtype=np.int64)
    if settings.max_splat_px > 0:
        ring_count = int(min(settings.max_splat_px, math.floor(float(reach.max())) if reach.size else 0))
        keep = f32(1.0 - settings.depth_tolerance)
        tol = f32(settings.depth_tolerance)
        best = depth.copy()
        source = np.full(B * H * W, -1, dtype=np.int64)
        for k in range(1, ring_count + 1):
            near_min = kern["need_minimum"](depth, reach, k, B, H, W)
            counts[k - 1] = kern["ring"](table, near_min, slope, best, source, ring_offsets(k, W + 2 * pad, "cpu").numpy(), k,
                                         tol, K, f32(settings.near), keep, B, H, W, pad)
        taken = source >= 0
        if taken.any():
            # Padded table index -> image pixel -> the point drawn there.
            Hp, Wp = H + 2 * pad, W + 2 * pad
            s = source[taken]
            b, rem = s // (Hp * Wp), s % (Hp * Wp)
            pix = b * (H * W) + (rem // Wp - pad) * W + (rem % Wp - pad)
            new_winner = winner.copy()
            new_winner[taken] = winner[pix]
            winner = new_winner
        depth = best
    vw, w = kern["colour"](winner, depth, cloud.rgb.numpy(), B, H, W)
    if settings.hole_fill_levels > 0:
        pyramid = [(vw, w)]
        for _ in range(settings.hole_fill_levels):
            pv, pw = pyramid[-1]
            if min(pv.shape[-2:]) < 2:
                break
            pyramid.append(kern["pool"](pv, pw))
        pv, pw = pyramid[-1]
        have = pw > 0
        filled = np.where(have, pv / np.maximum(pw, f32(1e-12)), f32(0.0)).astype(f32)
        for pv, pw in reversed(pyramid[:-1]):
            filled, have = kern["pull"](pv, pw, filled, have)
    else:
        filled, have = vw, w > 0
    background = np.asarray(settings.background, dtype=np.uint8)
    rgb_u8, out_depth = kern["finish"](filled, have, background)
    covered = (w[:, 0] > 0)
    index = torch.from_numpy(winner.reshape(B, H, W)) if return_index else None
    return RenderOutput(torch.from_numpy(rgb_u8), torch.from_numpy(out_depth),
                        torch.from_numpy(covered), index, torch.from_numpy(counts))


def visible_runs(chunks, cams, near: float, margin_px: float) -> CameraRuns:
    """Per camera of ``cams``, the [start, end) point ranges of the chunks of a ChunkedCloud that
    may touch its image (the test of ChunkedCloud.visible_chunks, camera by camera), neighbours
    merged. Each camera projects only its own chunks: a batch of cameras looking different ways
    (a LiDAR's cube faces, a surround rig) costs what its cameras cost one by one, not every
    camera times the chunks any of them sees. A camera that sees no chunk projects nothing
    (culling is exact: nothing could reach its image). Computed here rather than with PyTorch:
    a CPU frame of the kernels then runs no PyTorch operation (its thread pool stalled the
    kernels' threads: 72 -> 204 ms per frame)."""
    kern = _compile()
    if getattr(chunks, "_kernel_arrays", None) is None:
        ends = (chunks.starts + chunks.counts).cpu().numpy()
        chunks._kernel_arrays = (np.ascontiguousarray(chunks.corners.cpu().numpy(), dtype=np.float32),
                                 chunks.starts.cpu().numpy(), ends)
    corners, starts, ends = chunks._kernel_arrays
    K, rot, centre = _camera_arrays(cams)
    keep = kern["visible_chunks"](corners, rot, centre, K, np.float32(cams.width), np.float32(cams.height),
                                  np.float32(near), np.float32(margin_px))                 # (B, C)
    edges = np.diff(np.pad(keep.astype(np.int8), ((0, 0), (1, 1))), axis=1)             # row-major: camera by camera
    camera, first = np.nonzero(edges == 1)
    last = np.nonzero(edges == -1)[1] - 1
    runs = np.stack([starts[first], ends[last]], 1).astype(np.int64).reshape(-1, 2)
    offsets = np.searchsorted(camera, np.arange(len(keep) + 1)).astype(np.int64)
    return CameraRuns(runs, offsets)
