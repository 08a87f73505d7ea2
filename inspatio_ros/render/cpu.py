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
import threading
from contextlib import nullcontext
from typing import NamedTuple

import numpy as np
import torch

from ..runtime import in_serial_kernels as runtime_in_serial_kernels
from ..runtime import serial_kernels as runtime_serial_kernels
from ..runtime import serial_twin


def warm_up() -> None:
    """Compile (or load from the disk cache) every kernel, parallel and single-threaded, by
    rendering a tiny cloud: later processes, such as the node's, then start without the compile."""
    from .directional import DirectionalViews
    from .renderer import Renderer
    from .types import Cameras, PointCloud

    xyz = np.array([[0.0, 0.0, 2.0], [0.1, 0.0, 2.0]])
    cloud = PointCloud.from_arrays(xyz, np.full((2, 3), 128), np.full(2, 0.5), None, [0.0, 0.0], [1.0, 1.0])
    cams = Cameras(torch.tensor([[[8.0, 0, 4], [0, 8.0, 4], [0, 0, 1]]]), torch.eye(4)[None], 8, 8)
    renderer = Renderer(cloud, "cpu", cpu_kernels=True)
    views = DirectionalViews(np.array([[0.0, 0.0, 1.0]]), 0.05)              # the LiDAR / fisheye lookup
    for serial in (False, True):           # the parallel kernels and their single-threaded twins
        with serial_kernels() if serial else nullcontext():
            out = renderer.render(cams, 0.5)      # chunk visibility + every kernel
            if int(out.need_counts[0]) == 0:       # the ring kernel would then compile in the next process
                raise RuntimeError("render.cpu.warm_up: the warm-up render did not reach the splat rings")
            views.sample(views.render(renderer, np.eye(4), 0.5), kernel=True)


def available() -> bool:
    try:
        import numba  # noqa: F401
    except ImportError:
        return False
    return True


KERNEL_NAMES = ("centre_zbuffer", "decode", "need_minimum", "ring", "visible_chunks", "colour", "pool", "pull",
                "finish", "directional_lookup", "resolve_winner")
_kernels = None
_serial_kernels = None
# This thread's choice of kernels lives in runtime (serial_kernels): one switch for the renderer's
# kernels and the ingest's (view check, MVS), so a worker thread of the build needs only one.
in_serial_kernels = runtime_in_serial_kernels
serial_kernels = runtime_serial_kernels


def thread_kernels():
    """The kernels (cpu_kernels.py), loaded once per process: the parallel ones, or within
    :func:`serial_kernels` their single-threaded twins."""
    global _kernels, _serial_kernels
    if _kernels is None:
        from ..runtime import use_numba_workqueue

        use_numba_workqueue()
        from . import cpu_kernels as k

        _kernels = {name: getattr(k, name) for name in KERNEL_NAMES}
    if not in_serial_kernels():
        return _kernels
    if _serial_kernels is None:
        with _twin_lock:
            if _serial_kernels is None:
                _serial_kernels = {name: serial_twin(kernel) if kernel.targetoptions.get("parallel") else kernel
                                   for name, kernel in _kernels.items()}
    return _serial_kernels


_twin_lock = threading.Lock()


def camera_arrays(cams):
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
        return CameraRuns(np.tile(np.array([[0, count]], np.int64), (cameras, 1)),
                          np.arange(cameras + 1, dtype=np.int64))

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

    kern = thread_kernels()
    import numba

    B, H, W = len(cams), cams.height, cams.width
    f32 = np.float32
    K, rot, centre = camera_arrays(cams)
    use_time = t is not None and cloud.has_dynamic
    xyz = cloud.xyz.numpy()
    t_start, t_end = cloud.t_start.numpy(), cloud.t_end.numpy()
    if runs is None:
        runs = CameraRuns.every_point(len(xyz), B)
    if len(runs.offsets) != B + 1:
        raise ValueError(f"runs for {len(runs.offsets) - 1} cameras given with a batch of {B}")
    threads = 1 if in_serial_kernels() else numba.get_num_threads()
    parts = max(1, min(threads, runs.projected // 65536 + 1))
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
        winner = kern["resolve_winner"](winner, source, B, H, W, pad)
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
    kern = thread_kernels()
    if getattr(chunks, "_kernel_arrays", None) is None:
        ends = (chunks.starts + chunks.counts).cpu().numpy()
        chunks._kernel_arrays = (np.ascontiguousarray(chunks.corners.cpu().numpy(), dtype=np.float32),
                                 chunks.starts.cpu().numpy(), ends)
    corners, starts, ends = chunks._kernel_arrays
    K, rot, centre = camera_arrays(cams)
    keep = kern["visible_chunks"](corners, rot, centre, K, np.float32(cams.width), np.float32(cams.height),
                                  np.float32(near), np.float32(margin_px))                 # (B, C)
    edges = np.diff(np.pad(keep.astype(np.int8), ((0, 0), (1, 1))), axis=1)             # row-major: camera by camera
    camera, first = np.nonzero(edges == 1)
    last = np.nonzero(edges == -1)[1] - 1
    runs = np.stack([starts[first], ends[last]], 1).astype(np.int64).reshape(-1, 2)
    offsets = np.searchsorted(camera, np.arange(len(keep) + 1)).astype(np.int64)
    return CameraRuns(runs, offsets)


class SideBySide:
    """Runs one tick's independent CPU renders (a camera batch, a LiDAR sweep: ``jobs``, key ->
    callable) on two cores at once: two threads, each with single-threaded kernels
    (:func:`serial_kernels`), the jobs split between them so that their CPU times balance.

    Why: the parallel kernels split each loop evenly between numba's two threads (workqueue:
    static shares), and the Python and single-threaded parts between the kernels leave a core
    idle; a 640x360 camera + a VLP-16 sweep measured 133 CPU-ms in ~104 ms of wall time (1.28 of
    2 cores, idle VM). Two jobs of about equal cost, one per core, keep both busy.

    The split comes from each job's thread CPU time when it ran side by side (a running mean; a
    job not yet measured counts as the mean of the others, or 1). When the best split would leave
    one thread with more than ``balance`` of the total (e.g. an HDL-64E sweep beside a small
    camera; the simulator gives each camera a job of its own, so rigs split well), the jobs run
    one after the other with the parallel kernels instead (those use both cores for ~1.3 of 2:
    side by side pays while the longer thread holds less than ~1/1.3 of the work); that choice, made once every job was measured ``settle`` times, holds for that
    set of jobs. Results are the same either way (the kernels' output does not depend on how
    many threads ran them)."""

    def __init__(self, threads: int | None = None, balance: float = 0.7, settle: int = 3):
        import numba

        self.threads = min(2, numba.get_num_threads() if threads is None else threads)
        self.balance = balance
        self.settle = settle
        self.cost: dict = {}                  # job key -> thread CPU seconds side by side (running mean)
        self.runs: dict = {}                  # job key -> side-by-side runs measured
        self._sequential: set = set()         # job sets found too unbalanced
        self._pool = None

    def plan(self, keys, always: bool = False) -> tuple[list, list] | None:
        """The two threads' job lists (longest first onto the less loaded), or None: run the jobs
        one after the other. ``always``: split them even when unbalanced (two jobs or more)."""
        keys = list(keys)
        if len(keys) < 2 or (not always and (self.threads < 2 or frozenset(keys) in self._sequential)):
            return None
        known = [self.cost[k] for k in keys if k in self.cost]
        guess = float(np.mean(known)) if known else 1.0
        cost = {k: self.cost.get(k, guess) for k in keys}
        lanes: tuple[list, list] = ([], [])
        load = [0.0, 0.0]
        for k in sorted(keys, key=lambda k: -cost[k]):
            i = int(load[1] < load[0])
            lanes[i].append(k)
            load[i] += cost[k]
        settled = all(self.runs.get(k, 0) >= self.settle for k in keys)
        if not always and max(load) > self.balance * sum(load) and settled:
            self._sequential.add(frozenset(keys))
            return None
        return lanes

    def run(self, jobs: dict, always: bool = False) -> dict:
        """key -> what the job returned; exceptions propagate (the other thread's jobs finish
        first). ``always``: side by side even when unbalanced (tests, compiling both kernel sets)."""
        lanes = self.plan(jobs, always)
        if lanes is None:
            return {k: job() for k, job in jobs.items()}
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inspatio_render")
        record = not always                   # forced runs (the warm-up's) include kernel compiles
        other = self._pool.submit(self._lane, jobs, lanes[1], record)
        try:
            results = self._lane(jobs, lanes[0], record)
        finally:
            results_other = other.result()
        return {k: {**results, **results_other}[k] for k in jobs}

    def _lane(self, jobs: dict, keys: list, record: bool = True) -> dict:
        import time

        out = {}
        with serial_kernels():
            for k in keys:
                started = time.thread_time()
                out[k] = jobs[k]()
                if record:
                    spent = time.thread_time() - started
                    self.runs[k] = self.runs.get(k, 0) + 1
                    self.cost[k] = spent if k not in self.cost else 0.7 * self.cost[k] + 0.3 * spent
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
