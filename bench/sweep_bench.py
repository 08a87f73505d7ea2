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

``sweep``: closed-loop episodes per hour through ``inspatio-ros sweep`` on a local Ray: N scenarios
(start times x lateral offsets) of the baseline controller on the embedded default world, one
camera of --size, each --duration sim seconds at --rate Hz, one Ray task per scenario (one per CPU
slot, or per GPU / fraction of one with --gpus-per-task). Also runs one episode in-process (no
Ray) for the per-episode cost without Ray's scheduling, and reports where an episode's time goes
(set-up, render + controller steps).

    python bench/sweep_bench.py sweep --episodes 8 --num-cpus 2
    python bench/sweep_bench.py sweep --episodes 64 --size 160x90 --device cuda --gpus-per-task 0.125 --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
# The sweep's Ray workers import this checkout too.
os.environ["PYTHONPATH"] = os.pathsep.join([os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))]
                                           + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))
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


def scenario_yaml(episodes: int, duration: float, rate: float, size: tuple[int, int], device: str) -> str:
    """``episodes`` scenarios: start times x lateral offsets (a matrix), the baseline driving."""
    starts = [0.0, 0.5, 1.0, 1.5]
    offsets = [round(-0.6 + 1.2 * i / max(1, (episodes + len(starts) - 1) // len(starts) - 1), 3)
               for i in range((episodes + len(starts) - 1) // len(starts))]
    lines = [f"- name: bench{i}\n  duration: {duration}\n  rate: {rate}\n  device: {device}\n"
             f"  camera: {{width: {size[0]}, height: {size[1]}}}\n  start_time: {s}\n"
             f"  initial_offset: {{lateral: {o}}}\n"
             for i, (s, o) in enumerate((s, o) for o in offsets for s in starts)]
    return "".join(lines[:episodes])


def bench_sweep(episodes: int, duration: float, rate: float, size: tuple[int, int], num_cpus: int | None,
                gpus_per_task: float | None, device: str) -> dict:
    from inspatio_ros.agents.runner import run_scenario
    from inspatio_ros.agents.scenario import load_scenarios
    from inspatio_ros.agents.sweep import run_sweep
    from inspatio_ros.demo import ensure_default_world

    ensure_default_world(device, verbose=True)             # built once, outside the timing
    with tempfile.TemporaryDirectory(prefix="sweep_bench.") as tmp:
        scenarios = Path(tmp) / "bench.yaml"
        scenarios.write_text(scenario_yaml(episodes, duration, rate, size, device))
        # Two episodes in-process first (no Ray): the first pays the world load and the renderer's
        # set-up (and caches the kernels), the second is what a warm worker pays per episode.
        first, second = load_scenarios(scenarios)[:2] if episodes > 1 else load_scenarios(scenarios) * 2
        walls = []
        for i, sc in enumerate((first, second)):
            started = time.perf_counter()
            single = run_scenario(sc, Path(tmp) / f"single{i}", record=True)
            walls.append(time.perf_counter() - started)
        ray_started = time.perf_counter()
        from inspatio_ros.distributed import connect

        ray = connect(None, num_cpus=num_cpus)
        ray_start_s = time.perf_counter() - ray_started
        result = run_sweep([scenarios], Path(tmp) / "sweep", gpus_per_task=gpus_per_task, echo=lambda *a: None)
        resources = ray.cluster_resources()
        ray.shutdown()
    ok = [r for r in result.rows if r["status"] == "ok"]
    mean = lambda key: sum(r[key] for r in ok) / max(1, len(ok))          # noqa: E731
    return {"episodes": episodes, "ok": len(ok), "sim_s_per_episode": duration, "rate_hz": rate,
            "size": f"{size[0]}x{size[1]}", "ray_cpus": resources.get("CPU", 0), "ray_gpus": resources.get("GPU", 0),
            "gpus_per_task": gpus_per_task, "ray_start_s": round(ray_start_s, 1),
            "sweep_wall_s": round(result.wall_s, 1), "episodes_per_hour": round(len(ok) / result.wall_s * 3600, 1),
            "sim_s_per_wall_s": round(len(ok) * duration / result.wall_s, 2),
            "in_process_first_episode_s": round(walls[0], 2), "in_process_warm_episode_s": round(walls[1], 2),
            "in_process_warm_setup_s": single["setup_s"],
            "in_process_warm_episodes_per_hour": round(3600 / walls[1], 1),
            "step_ms_p50_mean": round(mean("step_ms_p50"), 1), "step_ms_p99_mean": round(mean("step_ms_p99"), 1),
            "controller_ms_p50_mean": round(mean("controller_ms_p50"), 2),
            "task_setup_s_mean": round(mean("setup_s"), 2), "cross_track_max_m_worst": round(max(
                r["cross_track_max_m"] for r in ok), 3) if ok else None}


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
    s = sub.add_parser("sweep", help="closed-loop episodes per hour through a Ray sweep")
    s.add_argument("--episodes", type=int, default=8)
    s.add_argument("--duration", type=float, default=4.0, help="sim seconds per episode")
    s.add_argument("--rate", type=float, default=10.0, help="camera and controller Hz")
    s.add_argument("--size", type=parse_size, default=(160, 90), help="camera WIDTHxHEIGHT (default 160x90)")
    s.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    s.add_argument("--gpus-per-task", type=float, default=None)
    s.add_argument("--device", default="auto")
    s.add_argument("--json", help="also write the result here")
    args = ap.parse_args()
    if args.what == "sweep":
        return main_sweep(args)
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


def main_sweep(args) -> int:
    result = bench_sweep(args.episodes, args.duration, args.rate, args.size, args.num_cpus, args.gpus_per_task,
                         args.device)
    result.update(machine=machine(), date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    print("| measure | value |\n|---|---|")
    for k, v in result.items():
        print(f"| {k} | {v} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
