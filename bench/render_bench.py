#!/usr/bin/env python3
"""Renderer benchmark: points x resolution x cameras -> ms per batch, batches/s, frames/s.

Not a test: prints a table. The scene is a street corridor (road plus two facades, 200 m long)
sampled with N surfels sized to close the surface, seen by a rig of 1 or 3 cameras (front, and
+-60 degrees) at 1.5 m height, moving forward between batches so that no two batches are equal.

    python bench/render_bench.py                 # CUDA table if a GPU is present, plus CPU table
    python bench/render_bench.py --device cpu --quick
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from inspatio_ros.camera import Intrinsics, make_pose, rotation_from_rpy  # noqa: E402
from inspatio_ros.runtime import keep_freed_memory  # noqa: E402
from inspatio_ros.render import Cameras, PointCloud, Renderer, RenderSettings, render_points  # noqa: E402


def corridor_cloud(n: int, device, seed: int = 0, source_frames: int = 24) -> PointCloud:
    """N surfels as a world built from video would hold them: back-projected pixels of
    ``source_frames`` cameras driving down a street corridor (road plus two 15 m facades, 20 m
    apart), so density falls with distance and surfel radii follow the pixel footprint."""
    rng = np.random.default_rng(seed)
    half_width, height = 10.0, 15.0
    src = Intrinsics.from_fov(1920, 1080, 90.0)
    per_frame = n // source_frames
    # Each source frame's rays sample its image uniformly at this many pixels per ray (area).
    pixels_per_ray = src.width * src.height / per_frame
    xyz_parts, nrm_parts, rad_parts = [], [], []
    for f in range(source_frames):
        cam_x = 2.0 * f
        u = rng.uniform(0, src.width, per_frame * 2)
        v = rng.uniform(0, src.height, per_frame * 2)
        # Camera looks along +x: optical (x right, y down, z fwd) = world (-y, -z, +x).
        d = np.stack([np.ones_like(u), -(u - src.cx) / src.fx, -(v - src.cy) / src.fy], 1)
        t = np.full(len(u), np.inf)
        normal = np.zeros((len(u), 3))
        with np.errstate(divide="ignore", invalid="ignore"):
            t_ground = np.where(d[:, 2] < 0, -1.5 / d[:, 2], np.inf)
            t_left = np.where(d[:, 1] > 0, half_width / d[:, 1], np.inf)
            t_right = np.where(d[:, 1] < 0, -half_width / d[:, 1], np.inf)
        for t_plane, nrm in ((t_ground, (0, 0, 1)), (t_left, (0, -1, 0)), (t_right, (0, 1, 0))):
            closer = t_plane < t
            t = np.where(closer, t_plane, t)
            normal[closer] = nrm
        hit_z = 1.5 + t * d[:, 2]
        ok = np.isfinite(t) & (t < 150) & (hit_z <= height)
        ok &= np.cumsum(ok) <= per_frame
        pts = np.array([cam_x, 0.0, 1.5]) + t[ok, None] * d[ok]
        cos_view = np.abs(np.sum(normal[ok] * d[ok], 1)) / np.linalg.norm(d[ok], axis=1)
        footprint = t[ok] * np.sqrt(pixels_per_ray) / src.fx      # z-depth * sampled pixel size / f
        xyz_parts.append(pts)
        nrm_parts.append(normal[ok])
        rad_parts.append(0.75 * footprint / np.maximum(cos_view, 0.25))
    xyz = np.concatenate(xyz_parts).astype(np.float32)
    rgb = rng.integers(0, 256, (len(xyz), 3), dtype=np.uint8)
    return PointCloud.from_arrays(xyz, rgb, np.concatenate(rad_parts).astype(np.float32),
                                  np.concatenate(nrm_parts).astype(np.float32), device=device)


def rig(num_cameras: int, width: int, height: int, x: float, device) -> Cameras:
    intr = Intrinsics.from_fov(width, height, 90.0)
    # OpenCV camera looking along +x (world z up): optical z = world x, x = -y, y = -z.
    base = np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]], dtype=np.float64)
    yaws = [0.0] if num_cameras == 1 else [0.0, math.radians(60), math.radians(-60)][:num_cameras]
    poses = [make_pose(rotation_from_rpy(0, 0, yaw) @ base, [x, 0.0, 1.5]) for yaw in yaws]
    return Cameras.from_intrinsics(intr, np.stack(poses), device)


def time_config(cloud, num_cameras, width, height, device, hole_fill, repeats, graphs=None):
    """Median ms per batch through ``Renderer`` (what the node uses: CUDA graphs on CUDA, frustum
    culling on the CPU) and the coverage of the last batch."""
    settings = RenderSettings(hole_fill_levels=5 if hole_fill else 0)
    renderer = Renderer(cloud, device, settings, graphs=graphs)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    cams = [rig(num_cameras, width, height, 21.0 + 0.5 * i, device) for i in range(repeats + 3)]
    for c in cams[:3]:  # warm-up: allocator, kernels, graph capture
        renderer.render(c)
    sync()
    times = []
    for c in cams[3:]:
        t0 = time.perf_counter()
        out = renderer.render(c)
        sync()
        times.append(time.perf_counter() - t0)
    cov = float(out.coverage.float().mean())
    ms = 1000 * float(np.median(times))
    return ms, cov


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto", help="auto (CUDA then CPU), cpu or cuda")
    ap.add_argument("--quick", action="store_true", help="fewer configurations and repeats")
    ap.add_argument("--only", action="append", default=[], metavar="POINTS:WxH:CAMS",
                    help="run just this configuration (repeatable), e.g. 4e6:1920x1080:3")
    ap.add_argument("--hole-fill", choices=["both", "on", "off"], default="both")
    ap.add_argument("--no-graphs", action="store_true", help="CUDA: launch kernels one by one (no CUDA graph)")
    ap.add_argument("--profile", action="store_true",
                    help="after the table, a torch profiler breakdown of 4M points, 3 x 1920x1080")
    args = ap.parse_args()
    keep_freed_memory()
    devices = []
    if args.device in ("auto", "cuda") and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    if args.device in ("auto", "cpu"):
        devices.append(torch.device("cpu"))
    print(f"# host: {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    if torch.cuda.is_available():
        print(f"# gpu: {torch.cuda.get_device_name(0)}")
    print(f"{'device':6} {'points':>8} {'resolution':>10} {'cams':>4} {'holefill':>8} {'ms/batch':>9} "
          f"{'batches/s':>9} {'frames/s':>9} {'coverage':>8}")
    for device in devices:
        if device.type == "cuda":
            grid = [(1_000_000, (1280, 720), 1), (4_000_000, (1280, 720), 3), (4_000_000, (1920, 1080), 1),
                    (4_000_000, (1920, 1080), 3), (8_000_000, (1920, 1080), 3)]
            repeats = 20 if args.quick else 50
        else:
            grid = [(250_000, (640, 360), 1), (1_000_000, (640, 360), 1), (1_000_000, (640, 360), 3),
                    (1_000_000, (1280, 720), 1)]
            repeats = 3 if args.quick else 8
        if args.quick:
            grid = grid[:3]
        if args.only:
            grid = []
            for spec in args.only:
                n, size, cams = spec.split(":")
                w, h = size.split("x")
                grid.append((int(float(n)), (int(w), int(h)), int(cams)))
        clouds = {}
        for n, (w, h), cams in grid:
            if n not in clouds:
                clouds = {n: corridor_cloud(n, device)}
            fills = {"both": (True, False), "on": (True,), "off": (False,)}[args.hole_fill]
            for hole_fill in fills if not args.quick else (True,):
                if device.type == "cuda":
                    # Kernels specialise on the first shapes they see, as in a node that renders
                    # one rig: start each configuration afresh (Inductor's cache keeps this cheap).
                    torch._dynamo.reset()
                ms, cov = time_config(clouds[n], cams, w, h, device, hole_fill, repeats,
                                       graphs=False if args.no_graphs else None)
                print(f"{device.type:6} {n / 1e6:7.2f}M {w:>5}x{h:<4} {cams:>4} {str(hole_fill):>8} {ms:9.2f} "
                      f"{1000 / ms:9.1f} {cams * 1000 / ms:9.1f} {cov:8.3f}", flush=True)
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        device = devices[0]
        cloud = corridor_cloud(4_000_000, device)
        cams = rig(3, 1920, 1080, 21.0, device)
        for _ in range(3):
            render_points(cloud, cams)
        activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
        with profile(activities=activities) as prof:
            render_points(cloud, cams)
            if device.type == "cuda":
                torch.cuda.synchronize()
        key = "cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
        print(prof.key_averages().table(sort_by=key, row_limit=25))
    return 0


if __name__ == "__main__":
    sys.exit(main())
