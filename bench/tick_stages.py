#!/usr/bin/env python3
"""Where a simulator tick's wall time goes on any device: the camera batch, its copy to the host,
and a LiDAR sweep split into its render, its lookup, the download and the host-side points.

In one process, no ROS, no node (node_bench.py measures the node with publishing): the rig of
node_bench (``--cameras`` cameras of ``--size``, one ``--lidar``) on the default world (or
``--world``), ``--ticks`` ticks along its path after a warm-up tick. Each stage is timed with the
device synchronised at its end, so the stages add up to a serial tick; the node overlaps nothing
of this either (on CUDA the sweep and the cameras run one after the other in its tick thread).

    python bench/tick_stages.py --device cuda --cameras 6 --size 1920x1080 --lidar HDL-64E --ticks 30
    python bench/tick_stages.py --device cpu --cameras 1 --size 320x180 --lidar VLP-16 --ticks 5
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import inspatio_ros  # noqa: E402,F401  (first: it sets OMP_WAIT_POLICY before torch loads, as in the node)

import numpy as np  # noqa: E402
import torch  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", default="", help="world file (default: the embedded default world)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--cameras", type=int, default=1)
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--lidar", default="VLP-16", help="sim/lidar.py preset ('' for none)")
    ap.add_argument("--ticks", type=int, default=10)
    a = ap.parse_args(argv)

    from node_bench import rig_parameters

    from inspatio_ros.render import Cameras, resolve_device
    from inspatio_ros.sim.lidar import load_lidars
    from inspatio_ros.sim.rig import load_rig
    from inspatio_ros.sim.simulator import Simulator
    from inspatio_ros.world import World

    device = torch.device(resolve_device(a.device))
    if not a.world:
        from inspatio_ros.demo import ensure_default_world

        a.world = str(ensure_default_world(device=device.type))
    width, height = (int(v) for v in a.size.split("x"))
    params = rig_parameters(a.cameras, (width, height), 30.0, False, a.lidar, 10.0)
    sim = Simulator(World.load(a.world), load_rig(params), device=str(device),
                    lidars=load_lidars(params) if a.lidar else [])

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    times = np.linspace(sim.path.times[0] + 0.5, sim.path.times[-1] - 0.5, a.ticks)
    started = time.perf_counter()
    sim.warm_up(times[0], sim.recorded_base_pose(times[0]))
    sim.render(0.0, float(times[0]), sim.recorded_base_pose(times[0]))
    sync()
    print(f"warm-up (compiles on CUDA): {time.perf_counter() - started:.1f} s", flush=True)
    stages: dict[str, list[float]] = {}

    def timed(name, fn):
        t0 = time.perf_counter()
        out = fn()
        sync()
        stages.setdefault(name, []).append(1e3 * (time.perf_counter() - t0))
        return out

    zero = np.zeros(3)
    for t in times:
        t = float(t)
        base = sim.recorded_base_pose(t)
        cams = Cameras.from_intrinsics([s.intrinsics for s in sim.rig],
                                       np.stack([sim.camera_pose(base, s) for s in sim.rig]), device)
        timed("cameras: render", lambda: sim.renderer.render(cams, t))
        timed("cameras: render + copy to host (Simulator.render)", lambda: sim.render(t, t, base, lidars=[]))
        for spec in sim.lidars:
            sampler = sim.lidar_sampler(spec.name)
            at = timed("lidar: sector poses", lambda: sampler.sensor_poses(base, zero, zero))
            out = timed("lidar: render faces", lambda: sampler.views.render(sim.renderer, sim.world_from_map @ at, t))
            samples = timed("lidar: lookup", lambda: sampler.views.sample(out))
            host = timed("lidar: download", lambda: [x[0].cpu().numpy() for x in (
                samples.range, samples.rgb, samples.coverage, samples.cos_incidence)])
            timed("lidar: points on the host", lambda: sampler.points(*host, base @ spec.base_from_link(), at))
            timed("lidar: Simulator.render_lidar", lambda: sim.render_lidar(spec, t, base))
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"{a.cameras} x {a.size} cameras, LiDAR {a.lidar or 'none'}, {name}, {a.ticks} ticks, ms:")
    print("| stage | median | p90 | max |\n|---|---:|---:|---:|")
    for k, v in stages.items():
        v = sorted(v)
        print(f"| {k} | {statistics.median(v):.2f} | {v[int(0.9 * (len(v) - 1))]:.2f} | {v[-1]:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
