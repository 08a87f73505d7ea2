#!/usr/bin/env python3
"""Visual odometry alone on an input (video, image folder, dataset folder): frames located,
segments, path length and speed, ATE when the input has true poses, time of the stage.

    python bench/odometry_run.py INPUT [--max-size 480] [--no-intrinsics] [--save out.npz]

Intrinsics as a build resolves them (the input's camera_info, else the documented prior);
``--no-intrinsics`` ignores the input's own (the prior, as for a video nobody calibrated).
Monocular poses are scaled by the camera height (1.5 m) per segment as the build does.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from inspatio_ros.ingest.intrinsics import resolve_intrinsics  # noqa: E402
from inspatio_ros.ingest.odometry import ate_rel, estimate_poses, segment_scales_from_camera_height  # noqa: E402
from inspatio_ros.ingest.sources import open_input  # noqa: E402
from inspatio_ros.posefile import read_poses  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("input")
    ap.add_argument("--max-size", type=int, default=None)
    ap.add_argument("--no-intrinsics", action="store_true", help="ignore the input's intrinsics (use the prior)")
    ap.add_argument("--camera-height", type=float, default=1.5)
    ap.add_argument("--end", type=float, default=None, help="seconds of the input to use")
    ap.add_argument("--save", default=None, help="write c2w, located, segments to this .npz")
    args = ap.parse_args()
    fs = open_input(args.input, None, end=args.end, max_size=args.max_size)
    first = fs.load(0)
    h, w = first.shape[:2]
    nw, nh = fs.native_size or (w, h)
    if args.no_intrinsics:
        fs.camera_info, fs.intrinsics = None, None
    intr, source, _ = resolve_intrinsics(None, fs, nw, nh)
    if (intr.width, intr.height) != (w, h):
        intr = intr.scaled(w, h)
    t0 = time.time()
    res = estimate_poses(fs.load, len(fs), intr)
    seconds = time.time() - t0
    scales = segment_scales_from_camera_height(res, args.camera_height, intr)
    metric = res.scaled_segments(scales, "camera height") if scales else res
    placed = metric.located
    pos = metric.c2w[placed, :3, 3]
    length = float(np.sum(np.linalg.norm(np.diff(pos, axis=0), axis=1)))
    times = fs.times if fs.times is not None else fs.index / 10.0
    duration = float(times[placed][-1] - times[placed][0]) if placed.sum() > 1 else 0.0
    chord = float(np.linalg.norm(pos[-1] - pos[0])) if len(pos) > 1 else 0.0
    out = {"input": args.input, "size": [w, h], "intrinsics": source, "fx": round(float(intr.fx), 2),
           "frames": len(fs), "located": int(placed.sum()), "unplaced": [int(i) for i in np.nonzero(~placed)[0]],
           "segments": [list(s) for s in res.segments], "keyframes": len(res.keyframes),
           "path_m": round(length, 2), "straightness": round(chord / length, 4) if length else None,
           "speed_m_s": round(length / duration, 2) if duration else None, "seconds": round(seconds, 1),
           "reprojection_px": round(float(res.reprojection_px), 3), "warnings": res.warnings[:12]}
    if fs.poses is not None and placed.sum() >= 2:
        gt, _ = read_poses(fs.poses)
        gt = gt[fs.index]
        out["ate_pct_of_path"] = round(100 * ate_rel(res.c2w[placed], gt[placed]), 3)
    print(json.dumps(out, indent=1))
    if args.save:
        np.savez(args.save, c2w=metric.c2w, located=placed, segments=np.array(res.segments))
    return 0


if __name__ == "__main__":
    sys.exit(main())
