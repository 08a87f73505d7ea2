"""``inspatio-ros synth street|indoor -o DIR``: a synthetic dataset with exact ground truth."""
from __future__ import annotations

import argparse
import time

from ..errors import InputError
from ..synth.scene import KINDS
from .common import parse_size


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "synth", help="render a procedural scene with exact depth, poses and dynamic masks",
        description="Render a procedural street or indoor scene along its own camera trajectory and "
                    "write video.mp4, frames/, depth/, dynamic_mask/, poses, camera_info.yaml and "
                    "scene.json (to re-render ground truth at any pose).")
    p.add_argument("kind", choices=sorted(KINDS), help="scene kind")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder (created)")
    p.add_argument("--size", default="640x360", metavar="WxH", help="image size (default 640x360)")
    p.add_argument("--frames", type=int, default=60, help="number of frames (default 60)")
    p.add_argument("--moving-cars", type=int, default=1, metavar="N",
                   help="moving cars (street) or moving objects (indoor) (default 1)")
    p.add_argument("--seed", type=int, default=0, help="layout seed (default 0)")
    p.add_argument("--fps", type=float, default=10.0, help="frame rate (default 10)")
    p.add_argument("--supersample", type=int, default=2, help="sub-rays per pixel side for colour (default 2)")
    p.set_defaults(func=run)


def _device(args: argparse.Namespace) -> str:
    dev = getattr(args, "device", "auto") or "auto"
    if dev == "auto":
        import torch
        return "cuda" if torch.cuda.is_available() else "cpu"
    return dev


def run(args: argparse.Namespace) -> int:
    from ..synth.generate import generate

    size = parse_size(args.size, minimum=16)
    if args.frames < 2:
        raise InputError(f"--frames {args.frames} is too few", "give at least 2 frames")
    if args.moving_cars < 0:
        raise InputError(f"--moving-cars {args.moving_cars} is negative", "give 0 or more")
    if not 1 <= args.supersample <= 8:
        raise InputError(f"--supersample {args.supersample} is not valid", "give 1 to 8")
    start = time.monotonic()
    out = generate(args.kind, args.output, size=size, frames=args.frames, moving_cars=args.moving_cars,
                   seed=args.seed, fps=args.fps, supersample=args.supersample, device=_device(args))
    dt = time.monotonic() - start
    print(f"synth {args.kind}: {args.frames} frames {size[0]}x{size[1]} @ {args.fps:g} fps, "
          f"{args.moving_cars} moving, seed {args.seed} -> {out} ({dt:.1f} s, {dt / args.frames:.2f} s/frame)")
    return 0
