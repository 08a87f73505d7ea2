"""``inspatio-ros build-many INPUTS... -o DIR``: the command line of :func:`inspatio_ros.ingest.batch.build_many`."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    from ..ingest import batch

    p = subparsers.add_parser("build-many", help="build many worlds on Ray (one per GPU or CPU slot), skipping "
                                                 "those already built from the same input and settings",
                              description=batch.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="videos, image folders, dataset folders or rosbag2 bags (one world each, named after it)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="folder of the worlds and builds.csv")
    p.add_argument("--holdout", type=int, default=0, help="keep every K-th frame out of each world, for eval")
    p.add_argument("--stride", type=int, default=1, help="use every S-th frame")
    p.add_argument("--max-size", type=int, help="downscale frames so that the longer side is at most this (pixels)")
    p.add_argument("--fov", type=float, help="horizontal field of view in degrees, when no intrinsics are known")
    p.add_argument("--camera-height", type=float, default=None,
                   help="metres of the camera above the road (scale of poses estimated from video alone)")
    p.add_argument("--optimize", action="store_true",
                   help="also fit each world's Gaussians (inspatio-ros optimize) and keep the optimized world")
    p.add_argument("--iterations", type=int, default=None, help="optimizer steps with --optimize")
    p.add_argument("--address", default=None,
                   help="Ray cluster: ray://HOST:10001 or auto; none: a local Ray on this machine")
    p.add_argument("--gpus-per-task", type=float, default=None, metavar="N",
                   help="GPUs per build (default 1 where the cluster has GPUs, else 0)")
    p.add_argument("--cpus-per-task", type=float, default=1.0, metavar="N", help="CPUs per build (default 1)")
    p.add_argument("--num-cpus", type=int, default=None, metavar="N",
                   help="CPUs of the local Ray (default: all of this machine's)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import InputError
    from ..ingest.batch import build_many
    from ..ingest.build import BuildSettings

    if args.holdout < 0 or args.stride < 1:
        raise InputError(f"--holdout {args.holdout} / --stride {args.stride}", "give --holdout >= 0 and --stride >= 1")
    settings = BuildSettings(holdout=args.holdout, stride=args.stride, max_size=args.max_size, fov=args.fov,
                             camera_height=args.camera_height)
    optimize_settings = None
    if args.optimize:
        from ..gaussians.optimize import OptimizeSettings

        optimize_settings = OptimizeSettings(**({"iterations": args.iterations} if args.iterations else {}))
        optimize_settings.check()
    elif args.iterations is not None:
        raise InputError("--iterations without --optimize", "add --optimize, or leave --iterations out")
    rows = build_many(args.inputs, args.output, settings, optimize_settings=optimize_settings, address=args.address,
                      gpus_per_task=args.gpus_per_task, cpus_per_task=args.cpus_per_task,
                      device=getattr(args, "device", "auto"), num_cpus=args.num_cpus)
    return 1 if any(r["status"] == "failed" for r in rows) else 0
