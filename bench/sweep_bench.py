#!/usr/bin/env python3
"""Agents at scale: how fast the simulator steps when something drives it in process.

Not a test: prints a table and, with --json, writes it.

``vector``: steps per second of :class:`~inspatio_ros.agents.gym_env.DriveVectorEnv` (the
``inspatio_ros/Drive-v0`` vector form) on the embedded default world with one camera per
environment, for several environment counts. Every step commands every environment (random
Ackermann actions, seeded) and renders all their cameras in one ``Renderer.render`` call; an
environment whose episode ends is reset on the next step (gymnasium's NEXT_STEP autoreset), as in
training. Reported: vector steps/s, environment steps/s (x num_envs), milliseconds per vector step
(mean of the timed steps after warm-up steps, which on CUDA compile the renderer for that batch).

    python bench/sweep_bench.py vector --envs 1 8 32 --size 160x90 --device cpu --steps 20
    python bench/sweep_bench.py vector --envs 1 8 32 --size 160x90 --device cuda --steps 200 --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from inspatio_ros.agents.gym_env import DriveVectorEnv  # noqa: E402
from inspatio_ros.progress import progress  # noqa: E402
from inspatio_ros.render import resolve_device  # noqa: E402


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size {text!r}: give WIDTHxHEIGHT, e.g. 160x90") from None
    if not (1 <= w <= 8192 and 1 <= h <= 8192):
        raise argparse.ArgumentTypeError(f"--size {text!r}: each side 1 .. 8192")
    return w, h


def bench_vector(num_envs: int, size: tuple[int, int], device: str, steps: int, warmup: int,
                 seed: int = 0) -> dict:
    envs = DriveVectorEnv(num_envs, device=device, image_size=size, observe=("image",), time_limit=30.0)
    envs.action_space.seed(seed)
    envs.reset(seed=seed)
    actions = [envs.action_space.sample() for _ in range(warmup + steps)]
    sync = torch.cuda.synchronize if envs.envs[0].sim.device.type == "cuda" else (lambda: None)
    for a in actions[:warmup]:
        envs.step(a)
    sync()
    started = time.perf_counter()
    for a in progress(actions[warmup:], desc=f"{num_envs} envs", unit="step"):
        envs.step(a)        # observations are on the host when step returns
    sync()
    seconds = time.perf_counter() - started
    envs.close()
    return {"num_envs": num_envs, "size": f"{size[0]}x{size[1]}", "device": device, "steps": steps,
            "vector_steps_per_s": steps / seconds, "env_steps_per_s": steps * num_envs / seconds,
            "ms_per_step": 1e3 * seconds / steps}


def machine() -> str:
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    v = sub.add_parser("vector", help="steps/s of the vector environment for several environment counts")
    v.add_argument("--envs", type=int, nargs="+", default=[1, 8, 32], help="environment counts (default 1 8 32)")
    v.add_argument("--size", type=parse_size, default=(160, 90), help="camera WIDTHxHEIGHT (default 160x90)")
    v.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    v.add_argument("--steps", type=int, default=50, help="timed vector steps per count (default 50)")
    v.add_argument("--warmup", type=int, default=3, help="untimed steps first (CUDA compiles per batch size)")
    v.add_argument("--json", help="write the rows here too")
    args = ap.parse_args()
    if any(n < 1 for n in args.envs) or args.steps < 1 or args.warmup < 0:
        ap.error("--envs and --steps must be >= 1, --warmup >= 0")
    device = str(resolve_device(args.device))
    rows = [bench_vector(n, args.size, device, args.steps, args.warmup) for n in args.envs]
    print(f"\nvector environment, one {args.size[0]}x{args.size[1]} camera per env, default world, {machine()}")
    print(f"{'envs':>5} {'vector steps/s':>15} {'env steps/s':>12} {'ms/step':>9}")
    for r in rows:
        print(f"{r['num_envs']:>5} {r['vector_steps_per_s']:>15.1f} {r['env_steps_per_s']:>12.1f} "
              f"{r['ms_per_step']:>9.1f}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine(), "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
