#!/usr/bin/env python3
"""A/B runs of the Gaussian optimizer on the CPU toy scenes (test/gaussians/toy.py), scored on the
held-out view and two views moved sideways: PSNR on the truth's sky pixels, the rest, and all,
through the Gaussian drawing and the CPU surfel drawing. For docs/notes/2026-12-05-gaussian-optimizer.md.

    PYTHONPATH=. python tools/gaussian_toy_ab.py sky --steps 150          # learned sky vs far shell (sky toy)
    PYTHONPATH=. python tools/gaussian_toy_ab.py reset --steps 300 --every 0,60,100   # opacity reset, both toys
    PYTHONPATH=. python tools/gaussian_toy_ab.py sky --steps 150 --picture sky.png

Deterministic (seed 0, one thread); ~1 CPU-minute a run of 150 steps.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "test" / "gaussians"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("experiment", choices=("sky", "reset"))
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--every", default="0,100", help="reset: opacity_reset_every values to compare")
    ap.add_argument("--picture", help="sky: also write truth | sky Gaussians | shell Gaussians | sky CPU | shell CPU")
    a = ap.parse_args(argv)

    import numpy as np
    import torch

    from inspatio_ros.gaussians.optimize import OptimizeSettings, optimize
    from inspatio_ros.generator.data import frame_loader
    from inspatio_ros.render import Renderer
    from inspatio_ros.video import write_png
    from toy import render_sky_truth, render_truth, toy_sky_truth, toy_sky_world, toy_truth, toy_world

    torch.set_num_threads(1)
    fast = dict(iterations=a.steps, seed=0, lr_sh0=0.03, densify_from=50, densify_every=50, densify_until=0.7)

    def truth_of(scene, c2w):
        if scene == "sky":
            frames, sky = render_sky_truth(toy_sky_truth(), c2w[None])
            return frames[0], sky[0]
        frame = render_truth(toy_truth(), c2w[None])[0]
        return frame, np.zeros(frame.shape[:2], bool)

    def views(world):
        out = {"heldout": world.heldout_c2w[0]}
        for dx in (-0.5, 0.5):
            c = world.heldout_c2w[0].copy()
            c[0, 3] += dx
            c[1, 3] += 0.3
            out[f"moved{dx:+.1f}m"] = c
        return out

    def psnr(err, mask):
        return round(10 * math.log10(255 ** 2 / max(float(err[mask].mean()), 1e-9)), 2) if mask.any() else None

    def score(scene, world, optimized):
        res = {}
        for drawing, gaussians in (("gaussians", True), ("cpu_surfels", False)):
            r = Renderer(optimized, "cpu", gaussians=gaussians)
            for name, c2w in views(world).items():
                gt, sky = truth_of(scene, c2w)
                img = r.render(r.cameras(c2w[None]), 0.3).rgb[0].numpy().astype(np.float32)
                err = ((img - gt.astype(np.float32)) ** 2).mean(-1)
                res[f"{drawing}/{name}"] = {"all": psnr(err, np.ones_like(sky)), "sky": psnr(err, sky),
                                            "rest": psnr(err, ~sky)}
        return res

    runs = []
    if a.experiment == "sky":
        cases = [("sky", {"sky": True}), ("sky", {"sky": False})]
    else:
        cases = [(scene, {"opacity_reset_every": int(e)}) for scene in ("plain", "sky") for e in a.every.split(",")]
    results = {}
    for scene, change in cases:
        world, _ = (toy_sky_world if scene == "sky" else toy_world)(Path(tempfile.mkdtemp()))
        t = time.process_time()
        r = optimize(world, frame_loader(world), OptimizeSettings(**{**fast, **change}))
        row = {"scene": scene, **change, "cpu_s": round(time.process_time() - t, 1), "gaussians": r.gaussians,
               "train_psnr": round(r.train_psnr, 2), **score(scene, world, r.world)}
        runs.append(row)
        results[json.dumps(change)] = (world, r.world)
        print(json.dumps(row), flush=True)
    if a.picture and a.experiment == "sky":
        (world, with_sky), (_, with_shell) = results['{"sky": true}'], results['{"sky": false}']
        rows = []
        for c2w in list(views(world).values())[::2]:
            tiles = [truth_of("sky", c2w)[0]]
            for w, gaussians in ((with_sky, True), (with_shell, True), (with_sky, False), (with_shell, False)):
                r = Renderer(w, "cpu", gaussians=gaussians)
                tiles.append(r.render(r.cameras(c2w[None]), 0.3).rgb[0].numpy())
            rows.append(np.concatenate([np.pad(t, ((2, 2), (2, 2), (0, 0)), constant_values=255) for t in tiles], 1))
        write_png(Path(a.picture), np.concatenate(rows, 0).repeat(4, 0).repeat(4, 1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
