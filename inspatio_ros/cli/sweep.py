"""``inspatio-ros sweep SCENARIOS... -o DIR``: the command line of :func:`inspatio_ros.agents.sweep.run_sweep`."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    from ..agents import sweep as sweep_module

    p = subparsers.add_parser(
        "sweep", help="run scenario files (matrices expanded) as Ray tasks: a results table and per-scenario MCAP",
        description=sweep_module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenarios", nargs="+", metavar="SCENARIO.yaml", help="scenario files (see the README)")
    p.add_argument("-o", "--output", required=True, metavar="DIR",
                   help="folder for results.csv, summary.txt and one folder per scenario (new names only)")
    p.add_argument("--address", default=None,
                   help="Ray cluster: ray://HOST:10001 or auto (the cluster this machine belongs to); "
                        "none: a local Ray on this machine")
    p.add_argument("--gpus-per-task", type=float, default=None, metavar="N",
                   help="GPUs per scenario (a fraction packs several on one GPU; 0: CPU only); "
                        "default 1 where the cluster has GPUs, else 0")
    p.add_argument("--cpus-per-task", type=float, default=1.0, metavar="N",
                   help="CPUs per scenario (its renderer's threads; default 1)")
    p.add_argument("--num-cpus", type=int, default=None, metavar="N",
                   help="CPUs of the local Ray (default: all of this machine's)")
    p.add_argument("--no-record", action="store_true", help="do not record each scenario's MCAP")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..agents.sweep import run_sweep

    result = run_sweep(args.scenarios, args.output, address=args.address, gpus_per_task=args.gpus_per_task,
                       cpus_per_task=args.cpus_per_task, record=not args.no_record, num_cpus=args.num_cpus,
                       device=getattr(args, "device", "auto"))
    return 1 if result.failed else 0
