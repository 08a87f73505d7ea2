#!/usr/bin/env python3
"""Quality run of the core (issue 3's acceptance): synthetic street without moving cars, built
from its exact depth and poses with --holdout 5, evaluated on the held-out frames; writes the
numbers (JSON) and the pictures used in docs/QUALITY.md.

    python tools/quality_report.py --work /tmp/quality --docs docs/images
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from inspatio_ros.eval import evaluate, shifted_pose  # noqa: E402
from inspatio_ros.ingest.build import build_world  # noqa: E402
from inspatio_ros.ingest.preview import colorize_depth  # noqa: E402
from inspatio_ros.render import Renderer  # noqa: E402
from inspatio_ros.runtime import keep_freed_memory  # noqa: E402
from inspatio_ros.synth.generate import generate, load_scene  # noqa: E402
from inspatio_ros.video import read_image, write_png  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/inspatio_quality", help="folder for the scene and the world")
    ap.add_argument("--docs", default="docs/images", help="where the pictures go")
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    keep_freed_memory()
    work, docs = Path(args.work), Path(args.docs)
    w, h = (int(v) for v in args.size.split("x"))
    scene_dir = work / f"street_s{args.seed}_{w}x{h}_{args.frames}"
    timings = {}
    if not (scene_dir / "scene.json").exists():
        t0 = time.time()
        generate("street", scene_dir, size=(w, h), frames=args.frames, moving_cars=0, seed=args.seed)
        timings["synth_s"] = time.time() - t0
    t0 = time.time()
    world = build_world(scene_dir, holdout=5, device=args.device)
    timings["build_s"] = time.time() - t0
    t0 = time.time()
    report = evaluate(world, scene_dir, device=args.device)
    timings["eval_s"] = time.time() - t0

    # Pictures: a held-out frame (render | truth), its depth (render | truth), a 1 m shift.
    renderer = Renderer(world, args.device)
    scene = load_scene(scene_dir)
    k = len(world.heldout_c2w) // 2
    c2w, t, idx = world.heldout_c2w[k], float(world.heldout_time[k]), int(world.heldout_index[k])
    out = renderer.render(renderer.cameras(c2w[None]), t)
    rgb, depth, _ = (a[0] for a in out.numpy())
    truth = read_image(scene_dir / "frames" / f"{idx:06d}.png")
    truth_depth = np.load(scene_dir / "depth" / f"{idx:06d}.npy")
    error = np.clip(np.abs(rgb.astype(int) - truth.astype(int)).sum(-1) * 2, 0, 255).astype(np.uint8)
    gap = np.full((h, 8, 3), 255, np.uint8)
    docs.mkdir(parents=True, exist_ok=True)
    write_png(docs / "street_heldout.png", np.concatenate([rgb, gap, truth, gap, np.stack([error] * 3, -1)], 1))
    write_png(docs / "street_heldout_depth.png",
              np.concatenate([colorize_depth(depth), gap, colorize_depth(truth_depth)], 1))
    shifted = shifted_pose(c2w, 1.0)
    shift_render = renderer.render(renderer.cameras(shifted[None]), t).rgb[0].cpu().numpy()
    shift_truth, _ = scene.render(shifted, world.intrinsics, t)
    write_png(docs / "street_shift_1m.png", np.concatenate([shift_render, gap, shift_truth], 1))

    result = {"scene": f"street seed {args.seed} {w}x{h}, {args.frames} frames, no moving cars",
              "points": world.num_static, "heldout_frames": len(world.heldout_c2w),
              **report.as_json(), **{k: round(v, 1) for k, v in timings.items()}}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
