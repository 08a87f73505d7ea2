"""``inspatio-ros optimize``: the command line of :func:`inspatio_ros.gaussians.optimize.optimize`
(its help text is that module's description)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import InputError
from ..gaussians import optimize as optimize_module
from ..gaussians.backend import BACKENDS
from ..gaussians.optimize import OptimizeSettings
from .common import add_world_training_arguments

# Most Gaussians an optimization starts from on the CPU without --device cpu given: the reference
# rasterizer takes ~10 s a step for 68,000 Gaussians at 160x96 on a 2-core machine (docs/notes/
# 2026-12-04-gaussian-world.md), so a real world would take days; say so instead of starting.
CPU_GAUSSIAN_LIMIT = 50_000


def add_optimize_options(p, prefix: str = "") -> None:
    """The optimizer's options (``prefix`` "optimize-" for build --optimize)."""
    d = OptimizeSettings()
    p.add_argument(f"--{prefix}iterations", type=int, default=d.iterations,
                   help=f"optimizer steps, one frame each (default {d.iterations})")
    p.add_argument(f"--{prefix}max-minutes", type=float, help="stop when this much time has passed (the world is "
                                                              "written; no longer deterministic)")
    p.add_argument(f"--{prefix}budget", type=int, default=d.budget, help=f"most Gaussians (default {d.budget:,})")
    p.add_argument(f"--{prefix}backend", choices=BACKENDS, default=d.backend,
                   help="rasterizer: gsplat (CUDA), reference (pure PyTorch, any device) or auto (gsplat on "
                        "CUDA where installed)")
    p.add_argument(f"--{prefix}depth-weight", type=float, default=d.depth_weight,
                   help=f"weight of the build's depth where confident (relative error; 0: off; default "
                        f"{d.depth_weight})")
    p.add_argument(f"--{prefix}pose-refine", action=argparse.BooleanOptionalAction, default=None,
                   help="refine the source frames' poses (default: on where they were estimated)")
    p.add_argument(f"--{prefix}opacity-reset-every", type=int, default=d.opacity_reset_every,
                   help="lower every opacity to 0.01 this often while densifying (3DGS's reset; 0: never, the "
                        "default: it lost 2-6 dB in moved views of the toy scenes at 300 steps)")
    p.add_argument(f"--{prefix}sky", action=argparse.BooleanOptionalAction, default=d.sky,
                   help="learn a sky (a colour per view direction) behind the Gaussians instead of turning the "
                        "build's far shell into Gaussians (default: on where the build has a far shell)")


def settings_from(args, prefix: str = "", seed: int = 0) -> OptimizeSettings:
    get = (lambda name: getattr(args, (prefix + name).replace("-", "_")))
    return OptimizeSettings(iterations=get("iterations"), max_minutes=get("max-minutes"), seed=seed,
                            budget=get("budget"), backend=get("backend"), depth_weight=get("depth-weight"),
                            pose_refine=get("pose-refine"), sky=get("sky"),
                            opacity_reset_every=get("opacity-reset-every"))


def check_device(device, world, settings: OptimizeSettings, explicit: bool) -> None:
    """A CPU run of a world larger than CPU_GAUSSIAN_LIMIT needs ``--device cpu`` said outright."""
    if device.type == "cuda" or explicit:
        return
    start = min(settings.budget, world.num_gaussians if world.has_gaussians else world.num_static + world.num_dynamic)
    if start > CPU_GAUSSIAN_LIMIT:
        raise InputError(f"no CUDA device: optimizing {start:,} Gaussians on the CPU would take days "
                         f"(the CPU rasterizer is for toy sizes)",
                         f"run on a machine with CUDA, or pass --device cpu explicitly (with --budget "
                         f"{CPU_GAUSSIAN_LIMIT:,} or less to subsample)")


def register(subparsers) -> None:
    p = subparsers.add_parser("optimize", help="fit the world's Gaussians to its source frames (format v3)",
                              description=optimize_module.__doc__)
    add_world_training_arguments(p, "optimized world (default: WORLD.optimized.safetensors beside the world)")
    add_optimize_options(p)
    p.add_argument("--seed", type=int, default=OptimizeSettings.seed)
    p.add_argument("--checkpoint-every", type=int, default=OptimizeSettings.checkpoint_every,
                   help="steps between checkpoints, written atomically to OUTPUT.ckpt (removed at the end)")
    p.add_argument("--resume", action="store_true", help="continue from OUTPUT.ckpt where an earlier run stopped")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..generator.data import frame_loader
    from ..render.types import resolve_device
    from ..world import World

    settings = settings_from(args, seed=args.seed)
    settings.checkpoint_every = args.checkpoint_every
    settings.check()                       # before loading anything: a bad option is one line at once
    output = Path(args.output) if args.output else optimize_module.default_output(args.world)
    checkpoint = output.with_name(output.name + ".ckpt")
    if args.resume and not checkpoint.exists():
        raise InputError(f"--resume: there is no checkpoint {checkpoint}", "leave out --resume to start from the beginning")
    world = World.load(args.world)
    device = resolve_device(args.device)
    check_device(device, world, settings, explicit=str(args.device) != "auto")
    load = frame_loader(world, args.frames)
    result = optimize_module.optimize(world, load, settings, device=device,
                                      log=lambda line: print(line, file=sys.stderr), checkpoint=checkpoint,
                                      resume=args.resume)
    result.world.save(output)
    checkpoint.unlink(missing_ok=True)
    print(f"wrote {output}: {result.gaussians:,} Gaussians after {result.steps} steps in {result.seconds:.1f} s, "
          f"loss {result.first_loss:.4f} -> {result.last_loss:.4f}, training PSNR {result.train_psnr:.2f} dB")
    return 0
