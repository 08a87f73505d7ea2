"""``inspatio-ros optimize``: the command line of :func:`inspatio_ros.gaussians.optimize.optimize`
(its help text is that module's description)."""
from __future__ import annotations

import sys
from pathlib import Path

from ..gaussians import optimize as optimize_module
from ..gaussians.optimize import OptimizeSettings


def register(subparsers) -> None:
    p = subparsers.add_parser("optimize", help="fit the world's Gaussians to its source frames (format v2)",
                              description=optimize_module.__doc__)
    p.add_argument("world", help="world file (.safetensors) made by 'inspatio-ros build'")
    p.add_argument("-o", "--output", help="optimized world (default: WORLD.optimized.safetensors beside the world)")
    p.add_argument("--frames", help="the frames the world was built from (default: the build input it records)")
    d = OptimizeSettings()
    p.add_argument("--iterations", type=int, default=d.iterations, help=f"optimizer steps, one frame each "
                                                                        f"(default {d.iterations})")
    p.add_argument("--max-minutes", type=float, help="stop when this much time has passed (the world is written; "
                                                     "no longer deterministic)")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--budget", type=int, default=d.budget, help=f"most Gaussians (default {d.budget:,})")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..generator.data import frame_loader
    from ..world import World

    settings = OptimizeSettings(iterations=args.iterations, max_minutes=args.max_minutes, seed=args.seed,
                                budget=args.budget)
    settings.check()                       # before loading anything: a bad option is one line at once
    world = World.load(args.world)
    output = Path(args.output) if args.output else optimize_module.default_output(args.world)
    load = frame_loader(world, args.frames)
    from ..render.types import resolve_device

    device = resolve_device(args.device)
    result = optimize_module.optimize(world, load, settings, device=device,
                                      log=lambda line: print(line, file=sys.stderr))
    result.world.save(output)
    print(f"wrote {output}: {result.gaussians:,} Gaussians after {result.steps} steps in {result.seconds:.1f} s, "
          f"loss {result.first_loss:.4f} -> {result.last_loss:.4f}, training PSNR {result.train_psnr:.2f} dB")
    return 0
