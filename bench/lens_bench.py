"""Cost of a camera with a lens in the simulator: ``Simulator.render`` of one camera, pinhole vs
plumb_bob (warped from a covering pinhole render) vs equidistant (rendered by ray direction),
in process (no ROS), median and p90 of --repeat renders, and the warp alone.

usage: python bench/lens_bench.py [--world W] [--size 640x360] [--device cpu] [--repeat 20]
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BARREL = [-0.28, 0.09, 0.0012, -0.0008, -0.012]          # a wide dash camera
FISHEYE = [0.02, -0.005, 0.001, 0.0]


def main() -> int:
    from inspatio_ros.render import Cameras
    from inspatio_ros.render.lens_warp import DistortedView, warp_output
    from inspatio_ros.sim.rig import load_rig
    from inspatio_ros.sim.simulator import Simulator
    from inspatio_ros.world import World

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", default="", help="world file (default: the embedded default world)")
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeat", type=int, default=20)
    args = ap.parse_args()
    if not args.world:
        from inspatio_ros.demo import ensure_default_world

        args.world = str(ensure_default_world(device=args.device))
    world = World.load(args.world)
    width, height = (int(v) for v in args.size.split("x"))
    lenses = {"pinhole": {}, "plumb_bob": {"distortion_model": "plumb_bob", "D": BARREL},
              "equidistant 190": {"distortion_model": "equidistant", "D": FISHEYE, "fov_deg": 190.0}}
    print(f"lens_bench: {args.world}, {args.size}, device {args.device}, hfov 90 deg, median (p90) of {args.repeat}")
    print("| camera | outputs | render ms | warp ms | rendered pixels |\n|---|---|---:|---:|---:|")
    for label, lens in lenses.items():
        for outputs in (["image", "depth"], ["image", "depth", "points"]):
            params = {"cameras.front.width": width, "cameras.front.height": height, "cameras.front.hfov_deg": 90.0,
                      "cameras.front.outputs": outputs, **{f"cameras.front.{k}": v for k, v in lens.items()}}
            rig = load_rig(params)
            sim = Simulator(world, rig, device=args.device)
            t = float(sim.path.start + 0.3 * (sim.path.end - sim.path.start))
            pose = sim.recorded_base_pose(t)
            sim.render(0.0, t, pose)                      # first render: kernels, graphs, warp maps
            times = []
            for _ in range(args.repeat):
                started = time.perf_counter()
                sim.render(0.0, t, pose)
                times.append(time.perf_counter() - started)
            view = sim._distorted_view(rig[0])
            warp, pixels = "-", width * height
            if isinstance(view, DistortedView):
                r = view.render_intrinsics
                pixels = r.width * r.height
                out = sim.renderer.render(Cameras.from_intrinsics([r], sim.camera_pose(pose, rig[0])[None],
                                                                  sim.device), t)
                w = []
                for _ in range(args.repeat):
                    started = time.perf_counter()
                    warp_output(out, [view], (0, 0, 0))
                    w.append(time.perf_counter() - started)
                warp = f"{np.median(w) * 1e3:.1f}"
            elif view is not None:
                pixels = view.views.pixels
            print(f"| {label} | {'+'.join(outputs)} | {np.median(times) * 1e3:.1f} ({np.percentile(times, 90) * 1e3:.1f}) "
                  f"| {warp} | {pixels:,} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
