#!/usr/bin/env python3
"""A build's memory by stage: runs ``inspatio-ros ARGS`` (e.g. ``build VIDEO --max-size 640 -o W``)
in this process while a thread samples its resident memory (VmRSS) every 0.25 s, labelled with
the progress bar running at the time (self-calibration, visual odometry, dense depth (MVS),
fusing frames) or "save"; prints the peak and each stage's highest and last RSS, and per stage
its wall and CPU seconds split by thread: the main thread, the build's second thread (ahead.Ahead,
threads named inspatio_*) and the rest (numba's and PyTorch's pools). CPU / wall is the cores the
stage used; on an idle 2-core machine a stage takes at least max(its busiest thread's CPU, its CPU
/ 2) seconds, whatever the load was when it was measured.

    python tools/build_rss.py build ../shared/data/udacity_solidWhiteRight/solidWhiteRight.mp4 --max-size 640 -o /tmp/dash.safetensors
"""
from __future__ import annotations

import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import inspatio_ros.ingest.build  # noqa: E402,F401  (imports every stage's module, to label them below)
import inspatio_ros.progress as progress_module  # noqa: E402
from inspatio_ros import world as world_module  # noqa: E402
from inspatio_ros.cli import main as cli_main  # noqa: E402


def resident_gb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1e6
    raise OSError("no VmRSS in /proc/self/status (Linux only)")


def thread_cpu_seconds() -> dict[int, float]:
    """CPU seconds (user + system) of each thread of this process, by thread id."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:           # the thread ended
            continue
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / tick
    return out


def main() -> int:
    stage = ["start"]
    original = progress_module.progress

    def labelled(*args, desc: str = "", **kwargs):
        stage[0] = desc or stage[0]
        return original(*args, desc=desc, **kwargs)

    # Every module that imported progress by name gets the labelled one.
    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("inspatio_ros") and getattr(module, "progress", None) is original:
            module.progress = labelled
    save = world_module.World.save

    def labelled_save(self, path):
        stage[0] = "save"
        return save(self, path)
    world_module.World.save = labelled_save
    samples: list[tuple[float, float, str]] = []
    done = threading.Event()

    main_thread = threading.get_native_id()
    # per stage: [first, last sample time, CPU of the main thread, the second thread, the others]
    stage_cpu: dict[str, list[float]] = {}
    last_cpu: dict[int, float] = {}

    def sample() -> None:
        started = time.time()
        last_cpu.update(thread_cpu_seconds())     # from here on (the imports before are no stage's)
        while not done.is_set():
            now, name = time.time() - started, stage[0]
            samples.append((now, resident_gb(), name))
            ahead = {t.native_id for t in threading.enumerate() if t.name.startswith("inspatio_")}
            row = stage_cpu.setdefault(name, [now, now, 0.0, 0.0, 0.0])
            row[1] = now
            for tid, cpu in thread_cpu_seconds().items():
                delta = cpu - last_cpu.get(tid, 0.0)       # a thread first seen: all its CPU time
                last_cpu[tid] = cpu
                row[2 if tid == main_thread else 3 if tid in ahead else 4] += delta
            done.wait(0.25)
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        code = cli_main(sys.argv[1:])
    finally:
        done.set()
        sampler.join()
    if not samples:
        return code
    peak = max(samples, key=lambda s: s[1])
    print(f"peak RSS {peak[1]:.3f} GB at {peak[0]:.1f} s ({peak[2]})")
    by_stage: dict[str, list[float]] = {}
    for _, rss, name in samples:
        by_stage.setdefault(name, []).append(rss)
    for name, values in by_stage.items():
        print(f"  {name:40s} highest {max(values):.3f} GB, last {values[-1]:.3f} GB")
    print("stage: wall s, CPU s (main thread + second thread + pools), cores used, idle 2-core bound s")
    for name, (first, last, main_cpu, ahead_cpu, other_cpu) in stage_cpu.items():
        wall, cpu = last - first, main_cpu + ahead_cpu + other_cpu
        bound = max(main_cpu, ahead_cpu, cpu / 2)
        print(f"  {name:40s} {wall:7.1f} s, {cpu:7.1f} CPU s ({main_cpu:.1f} + {ahead_cpu:.1f} + {other_cpu:.1f}), "
              f"{cpu / max(wall, 1e-9):.2f} cores, >= {bound:.1f} s")
    return code


if __name__ == "__main__":
    sys.exit(main())
