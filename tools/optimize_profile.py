#!/usr/bin/env python3
"""Where an optimizer step's time goes: ``gaussians.optimize`` on a built world, with torch's
profiler over a window of steps. Prints steps per second over the whole run and the profiler's
tables (self CUDA time and self CPU time per operator) for the window; writes them to --out.

    PYTHONPATH=. python tools/optimize_profile.py WORLD.safetensors --device cuda --steps 300 --out prof.txt

Not a test, not a benchmark row: a diagnosis tool for issue 20 (the optimizer made 8 steps/s on
the street on an H200 where gsplat's forward + backward takes ~5 ms).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("world")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=300, help="optimizer steps in all")
    ap.add_argument("--profile-from", type=int, default=150, help="first profiled step (after densification started)")
    ap.add_argument("--profile-steps", type=int, default=20)
    ap.add_argument("--budget", type=int, default=1_000_000)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--no-sky", action="store_true", help="without the learned sky (the far shell as Gaussians)")
    ap.add_argument("--out", default=None, help="also write the report here")
    a = ap.parse_args(argv)

    import torch
    from torch.profiler import ProfilerActivity, profile, schedule

    from inspatio_ros.gaussians.optimize import OptimizeSettings, optimize
    from inspatio_ros.generator.data import frame_loader
    from inspatio_ros.world import World

    world = World.load(a.world)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.device(a.device).type == "cuda" else [])
    prof = profile(activities=activities, record_shapes=False,
                   schedule=schedule(wait=max(a.profile_from - 2, 0), warmup=1, active=a.profile_steps, repeat=1))
    stamps: list[float] = []

    def on_step(step: int) -> None:
        if torch.device(a.device).type == "cuda":
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())
        prof.step()

    settings = OptimizeSettings(iterations=a.steps, budget=a.budget, backend=a.backend, sky=False if a.no_sky else None)
    t0 = time.perf_counter()
    with prof:
        result = optimize(world, frame_loader(world), settings, device=a.device, on_step=on_step)
    total = time.perf_counter() - t0
    gaps = [b - c for b, c in zip(stamps[1:], stamps[:-1])]
    lines = [f"world {a.world}: {result.steps} steps, {result.gaussians} Gaussians at the end, "
             f"optimize() {total:.1f} s in all (frame loading and build depth included)"]
    for lo, hi in ((1, 100), (100, 200), (200, a.steps)):
        part = gaps[lo - 1:hi - 1]
        if part:
            lines.append(f"steps {lo}-{hi}: {1000 * sum(part) / len(part):.1f} ms a step "
                         f"(min {1000 * min(part):.1f}, max {1000 * max(part):.1f})")
    key = "self_cuda_time_total" if ProfilerActivity.CUDA in activities else "self_cpu_time_total"
    lines.append(f"\nprofiled steps {a.profile_from}..{a.profile_from + a.profile_steps - 1}, by {key}:")
    lines.append(prof.key_averages().table(sort_by=key, row_limit=30))
    lines.append("\nby self_cpu_time_total:")
    lines.append(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=30))
    report = "\n".join(lines)
    print(report)
    if a.out:
        Path(a.out).write_text(report + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
