#!/usr/bin/env python3
"""A build's memory by stage: runs ``inspatio-ros ARGS`` (e.g. ``build VIDEO --max-size 640 -o W``)
in this process while a thread samples its resident memory (VmRSS) every 0.25 s, labelled with
the progress bar running at the time (self-calibration, visual odometry, dense depth (MVS),
fusing frames) or "save"; prints the peak and each stage's highest and last RSS.

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

    def sample() -> None:
        started = time.time()
        while not done.is_set():
            samples.append((time.time() - started, resident_gb(), stage[0]))
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
    return code


if __name__ == "__main__":
    sys.exit(main())
