"""Where one CPU tick of the simulator goes: a camera batch and a LiDAR sweep, kernel by kernel.

Renders ``--ticks`` ticks along the default world's path (or ``--world``) with the rig of
node_bench (``--size`` camera, ``--lidar`` preset) and prints, per job (camera batch, LiDAR
sweep):

* CPU-ms per tick of every CPU kernel (render/cpu_kernels.py) and the rest (Python, numpy), with
  the parallel kernels one job after the other (process CPU time: both numba threads), and with
  the single-threaded kernels that side-by-side ticks use (thread CPU time of the job's thread);
* the floor: world points, point projections the z-buffer makes, the points that land in an
  image, pixels rendered, LiDAR directions looked up.

CPU time, not wall time: it stays comparable on a loaded machine (say the load average beside
it, printed at the end). No ROS, no node: node_bench.py measures the node (publishing included).

usage: python bench/sensor_tick_profile.py [--world W] [--size 640x360] [--lidar VLP-16] [--ticks 10]
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from contextlib import nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import inspatio_ros  # noqa: E402,F401  (first: it sets OMP_WAIT_POLICY before torch loads, as in the node)
from inspatio_ros.runtime import keep_freed_memory  # noqa: E402

import numpy as np  # noqa: E402


def process_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", default="", help="world file (default: the embedded default world)")
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--lidar", default="VLP-16", help="sim/lidar.py preset")
    ap.add_argument("--ticks", type=int, default=10)
    args = ap.parse_args()
    keep_freed_memory()                     # as the node does: freed blocks are reused, not re-faulted

    sys.path.insert(0, str(ROOT / "bench"))
    from node_bench import rig_parameters

    from inspatio_ros.render import cpu
    from inspatio_ros.sim.lidar import load_lidars
    from inspatio_ros.sim.rig import load_rig
    from inspatio_ros.sim.simulator import Simulator
    from inspatio_ros.world import World

    if not cpu.available():
        raise SystemExit("sensor_tick_profile: needs numba (the CPU kernels)")
    if not args.world:
        from inspatio_ros.demo import ensure_default_world

        args.world = str(ensure_default_world(device="cpu"))
    width, height = (int(v) for v in args.size.split("x"))
    params = rig_parameters(1, (width, height), 10.0, False, args.lidar, 10.0)
    sim = Simulator(World.load(args.world), load_rig(params), device="cpu", lidars=load_lidars(params))
    times = np.linspace(sim.path.times[0] + 0.5, sim.path.times[-1] - 0.5, args.ticks)
    sim.warm_up(times[0], sim.recorded_base_pose(times[0]))
    spec = sim.lidars[0]
    groups = sim._camera_groups(sim.rig)

    def jobs(t):
        base = sim.recorded_base_pose(t)
        return {"camera": lambda: [sim._render_group(g, base, t) for g in groups],
                "lidar": lambda: sim.render_lidar(spec, t, base)}

    for serial in (False, True):
        spent: dict = {}
        job_name = ["?"]
        clock = time.thread_time if serial else process_cpu_s
        with cpu.serial_kernels() if serial else nullcontext():
            kernels = cpu.thread_kernels()
            originals = dict(kernels)

            def timed(name, kernel):
                def run(*a, **k):
                    started = clock()
                    out = kernel(*a, **k)
                    spent.setdefault((job_name[0], name), []).append(clock() - started)
                    return out
                return run

            kernels.update({name: timed(name, k) for name, k in originals.items()})
            try:
                for t in times:
                    for name, job in jobs(t).items():
                        job_name[0] = name
                        started = clock()
                        job()
                        spent.setdefault((name, "total"), []).append(clock() - started)
            finally:
                kernels.update(originals)
        label = ("single-threaded kernels (side by side: thread CPU of the job's thread)" if serial
                 else "parallel kernels, one job after the other (process CPU)")
        print(f"\n{label}, CPU-ms per tick over {args.ticks} ticks:")
        for job in ("camera", "lidar"):
            total = 1e3 * sum(spent[(job, "total")]) / args.ticks
            parts = {k: 1e3 * sum(v) / args.ticks for (j, k), v in spent.items() if j == job and k != "total"}
            rest = total - sum(parts.values())
            print(f"  {job:7s} {total:6.1f}: " + ", ".join(f"{k} {v:.1f}" for k, v in
                                                         sorted(parts.items(), key=lambda kv: -kv[1]))
                  + f", other (Python, numpy) {rest:.1f}")

    # The floor: what a tick touches.
    t = float(np.median(times))
    base = sim.recorded_base_pose(t)
    renderer = sim.renderer if sim.renderer.layers is None else sim.renderer.layers[0]
    sampler = sim.lidar_sampler(spec.name)
    margin = float(renderer.settings.max_splat_px) + 1.0
    cams = {"camera": renderer.cameras(np.stack([sim.camera_pose(base, s) for s in groups[0]]),
                                       [s.intrinsics for s in groups[0]]),
            "lidar": sampler.views.cameras(sim.world_from_map @ sampler.sensor_poses(base, np.zeros(3), np.zeros(3)))}
    print(f"\nfloor at the path's middle: world {len(renderer.chunks.cloud.xyz):,} points")
    xyz = renderer.chunks.cloud.xyz.numpy()
    for job, c in cams.items():
        runs = cpu.visible_runs(renderer.chunks, c, renderer.settings.near, margin)
        K, rot, centre = cpu.camera_arrays(c)
        landed = 0
        for b in range(len(c)):
            idx = np.concatenate([np.arange(s, e) for s, e in runs.of_camera(b)] or [np.zeros(0, np.int64)])
            p = (xyz[idx] - centre[b]) @ rot[b]
            front = p[:, 2] > renderer.settings.near
            u = p[front, 0] / p[front, 2] * K[b, 0, 0] + K[b, 0, 2]
            v = p[front, 1] / p[front, 2] * K[b, 1, 1] + K[b, 1, 2]
            landed += int(((u >= 0) & (u < c.width) & (v >= 0) & (v < c.height)).sum())
        extra = f", {sampler.views.count:,} directions looked up" if job == "lidar" else ""
        print(f"  {job:7s} {len(c)} view(s) of {c.width}x{c.height} = {len(c) * c.width * c.height:,} pixels; "
              f"{runs.projected:,} point projections, {landed:,} land in an image{extra}")
    print(f"\nload average {os.getloadavg()[0]:.1f} (1 min) on {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
