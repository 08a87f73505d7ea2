#!/usr/bin/env python3
"""Build benchmark: seconds per stage of ``inspatio-ros build`` (not a test: prints a table).

Inputs: a synthetic street generated here (video frames + exact depth; poses estimated by the
odometry unless --given-poses), the same street from its video.mp4 + camera_info alone (poses by
odometry, depth by multi-view stereo) and ../shared/data/kitti06 (video + camera_info alone; and
its frames with ground-truth poses, depth by multi-view stereo).

    python bench/build_bench.py [--device cpu|cuda] [--max-size 640] [--frames 60] [--kitti DIR]
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from inspatio_ros.errors import InputError  # noqa: E402
from inspatio_ros.ingest.build import build_world  # noqa: E402
from inspatio_ros.runtime import keep_freed_memory  # noqa: E402
from inspatio_ros.synth.generate import generate  # noqa: E402

KITTI = ROOT.parent / "shared" / "data" / "kitti06"


def run(name: str, path: Path, device: str, max_size: int | None, poses: str | None,
        intrinsics: str | None = None) -> None:
    started = time.time()
    try:
        world = build_world(path, poses=poses, holdout=5, device=device, max_size=max_size, intrinsics=intrinsics)
    except InputError as exc:
        print(f"| {name} | - | - | - | - | - | not built: {exc.problem} |")
        return
    total = time.time() - started
    r = world.info["report"]
    sec = r["seconds"]
    print(f"| {name} | {r['frames_used'] + r['frames_held_out']} | {r['image_size'][0]}x{r['image_size'][1]} | "
          f"{sec.get('poses (visual odometry)', 0.0):.1f} | {sec.get('dense depth (MVS)', 0.0):.1f} | "
          f"{sec.get('fusion', 0.0):.1f} | "
          f"{total:.1f} s total, {r['points_static']:,} points; poses: {r['poses']} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--max-size", type=int, default=None, help="downscale frames (the CPU target uses 640)")
    ap.add_argument("--frames", type=int, default=60, help="synthetic street length")
    ap.add_argument("--given-poses", action="store_true", help="synthetic street: use its poses, no odometry")
    ap.add_argument("--kitti", type=Path, default=KITTI, help=f"the kitti06 folder (default {KITTI})")
    args = ap.parse_args()
    keep_freed_memory()
    os.environ.setdefault("INSPATIO_NO_PROGRESS", "1")
    print(f"# host: {platform.node()}, {os.cpu_count()} cpus, {time.strftime('%Y-%m-%d')}")
    print("| input | frames | size | odometry s | MVS s | fusion s | result |")
    print("|---|---:|---|---:|---:|---:|---|")
    with tempfile.TemporaryDirectory() as tmp:
        street = Path(tmp) / "street"
        t0 = time.time()
        generate("street", street, size=(640, 360), frames=args.frames, moving_cars=1, seed=0)
        print(f"| (synth street, {args.frames} frames, 640x360: {time.time() - t0:.1f} s to generate) | | | | | | |")
        run("synthetic street, frames + exact depth", street, args.device, args.max_size,
            None if args.given_poses else "estimate")
        run("synthetic street, video + camera_info", street / "video.mp4", args.device, args.max_size, "estimate",
            str(street / "camera_info.yaml"))
    kitti = args.kitti
    if kitti.exists():
        run("kitti06, video + camera_info", kitti / "video.mp4", args.device, args.max_size, "estimate",
            str(kitti / "camera_info.yaml"))
        run("kitti06, frames + ground-truth poses", kitti, args.device, args.max_size, None)
    else:
        print(f"| kitti06 | - | - | - | - | - | not found at {kitti} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
