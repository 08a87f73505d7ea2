"""``inspatio-ros train-generator``: the command line of :func:`inspatio_ros.generator.train.train`
(its help text is that module's description)."""
from __future__ import annotations

from pathlib import Path

from ..errors import InputError
from ..generator import train as train_module
from ..generator.refiner import generator_path
from ..generator.train import TrainSettings
from .common import add_config_argument, add_world_training_arguments, render_settings_from_args


def register(subparsers) -> None:
    p = subparsers.add_parser("train-generator", help="train the world's refiner on its own frames",
                              description=train_module.__doc__)
    add_world_training_arguments(p, "weights file (default: WORLD.generator.safetensors beside the world)")
    d = TrainSettings()
    p.add_argument("--steps", type=int, default=d.steps, help=f"optimiser steps (default {d.steps})")
    p.add_argument("--batch", type=int, default=d.batch, help=f"crops per step (default {d.batch})")
    p.add_argument("--crop", type=int, default=d.crop, help=f"crop side in pixels (default {d.crop})")
    p.add_argument("--lr", type=float, default=d.lr, help=f"peak learning rate (default {d.lr})")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--widths", default=",".join(map(str, d.widths)),
                   help="channels per level, comma-separated (default %(default)s)")
    p.add_argument("--leave-out", default=",".join(map(str, d.leave_out)),
                   help="renders per frame without frames j-k..j+k, one per k (default %(default)s)")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every)
    p.add_argument("--resume", action="store_true", help="continue from the checkpoint of an interrupted run")
    p.add_argument("--max-minutes", type=float, help="stop training when this much time has passed "
                                                     "(the weights are written; no longer deterministic)")
    p.add_argument("--no-amp", action="store_true",
                   help="train in float32 on CUDA (bf16 autocast is the default; for this small network "
                        "float32 was ~25%% faster per step on an H100, same loss)")
    add_config_argument(p)
    p.set_defaults(func=run)


def _int_list(text: str, flag: str, minimum: int) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or any(v < minimum for v in values):
        raise InputError(f"{flag} '{text}' is not a list of integers >= {minimum}", f"write it like {flag} 0,1,2")
    return values


def run(args) -> int:
    from ..world import World

    for flag, value, low in (("--steps", args.steps, 1), ("--batch", args.batch, 1), ("--crop", args.crop, 16)):
        if value < low:
            raise InputError(f"{flag} {value} is too small", f"give {low} or more")
    s = TrainSettings(steps=args.steps, batch=args.batch, crop=args.crop, lr=args.lr, seed=args.seed,
                      widths=_int_list(args.widths, "--widths", 4), leave_out=_int_list(args.leave_out, "--leave-out", 0),
                      checkpoint_every=args.checkpoint_every, amp=not args.no_amp)
    world = World.load(args.world)
    output = Path(args.output) if args.output else generator_path(args.world)
    summary = train_module.train(world, output, world_path=args.world, frames_dir=args.frames, device=args.device, settings=s,
                    resume=args.resume, render_settings=render_settings_from_args(args),
                    max_seconds=None if args.max_minutes is None else 60.0 * args.max_minutes)
    print(f"wrote {output}: {summary['steps']} steps on {len(summary['trained_frames'])} frames "
          f"({summary['renders']} renders), loss {summary['initial_loss']:.4f} -> {summary['final_loss']:.4f}, "
          f"prepare {summary['prepare_seconds']:.1f} s, train {summary['train_seconds']:.1f} s")
    return 0
