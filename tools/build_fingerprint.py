"""Fingerprint of what ``inspatio-ros build`` writes, for checking that a refactor of ingest/
changes no bit of the result.

It synthesises a tiny street with a moving car, builds three worlds through the real CLI
(``inspatio_ros.cli.main(["build", ...])``) on the CPU:

  exact     the dataset folder as written: exact depth maps and poses (view check, dynamic layer)
  mvs       the same frames and poses without depth/: depth by multi-view stereo (road plane,
            moving mask, propagation, frame-local layer)
  estimate  frames only (no depth, no poses): monocular visual odometry scaled by the camera
            height, then MVS with the odometry's landmarks (and the road-plane scale refinement)

and prints, per world, a sha256 of every tensor in the world file (dtype, shape and bytes), the
build report's deterministic entries and one sha256 of the whole metadata with the volatile
entries (times, paths, creation date) removed. Run it before and after a change and diff the
output:

    PYTHONPATH=. python tools/build_fingerprint.py > before.txt
    ... change ...
    PYTHONPATH=. python tools/build_fingerprint.py > after.txt && diff before.txt after.txt

Torch runs on a fixed number of threads (``--threads``, default 2) so reductions are ordered the
same way every time. About a minute on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("INSPATIO_NO_PROGRESS", "1")

import numpy as np  # noqa: E402

# Metadata entries that differ between two identical builds: wall times, where the input lay,
# when the file was written.
VOLATILE = {"seconds", "cpu_seconds", "build_seconds", "seconds_per_frame", "created", "source"}

# Report entries printed in full (the rest are volatile: seconds per stage).
REPORT_KEYS = ("frames_used", "frames_held_out", "image_size", "poses", "scale", "depth", "depth_coverage",
               "seen_through", "points_static", "points_dynamic", "points_frame_local", "warnings")

SIZE = (320, 180)
FRAMES = 16


def _strip(value):
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


def fingerprint(path: Path, root: Path) -> list[str]:
    """Lines: one per tensor (name, dtype, shape, sha256), the report's deterministic entries, and
    the sha256 of the metadata without its volatile entries (``root``, the folder the inputs lie
    in, replaced by ROOT in the paths it names)."""
    from safetensors.numpy import load_file

    from inspatio_ros.world import read_world_metadata

    lines = []
    for name, array in sorted(load_file(str(path)).items()):
        digest = hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()
        lines.append(f"  tensor {name:20s} {str(array.dtype):8s} {str(list(array.shape)):14s} {digest}")
    meta = read_world_metadata(path)
    report = meta.get("info", {}).get("report", {})
    for key in REPORT_KEYS:
        if key in report:
            lines.append(f"  report {key}: {json.dumps(report[key])}")
    stripped = json.dumps(_strip(meta), sort_keys=True).replace(str(root.resolve()), "ROOT").replace(str(root), "ROOT")
    lines.append(f"  metadata sha256 (volatile entries removed): {hashlib.sha256(stripped.encode()).hexdigest()}")
    return lines


def _cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _copy(src: Path, dst: Path, names: tuple[str, ...]) -> Path:
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir()
    for name in names:
        item = src / name
        (shutil.copytree if item.is_dir() else shutil.copy)(item, dst / name)
    return dst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (fixed for repeatability)")
    parser.add_argument("--only", choices=("exact", "mvs", "estimate"), action="append",
                        help="build only these worlds (default: all three)")
    parser.add_argument("--keep", metavar="DIR", help="keep the dataset and the world files here")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from inspatio_ros.cli import main as cli_main
    from inspatio_ros.synth.generate import generate

    with contextlib.ExitStack() as stack:
        root = Path(args.keep) if args.keep else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        root.mkdir(parents=True, exist_ok=True)
        street = root / "street"
        if street.exists():
            shutil.rmtree(street)
        started = time.time()
        generate("street", street, size=SIZE, frames=FRAMES, moving_cars=1, seed=1, supersample=1)
        print(f"  (street {time.time() - started:.1f} s)", file=sys.stderr)
        builds = {
            "exact": (street, ["--holdout", "5", "--max-size", "160"]),
            "mvs": (_copy(street, root / "no_depth", ("frames", "camera_info.yaml", "poses_kitti.txt", "times.txt")),
                    ["--holdout", "5", "--mvs-size", "160"]),
            "estimate": (_copy(street, root / "frames_only", ("frames", "camera_info.yaml", "times.txt")),
                         ["--holdout", "5", "--mvs-size", "160", "--poses", "estimate", "--frame-local", "off"]),
        }
        for name, (folder, extra) in builds.items():
            if args.only and name not in args.only:
                continue
            out = root / f"{name}.safetensors"
            started = time.time()
            with contextlib.redirect_stdout(io.StringIO()):
                code = cli_main(["--device", "cpu", "build", str(folder), "-o", str(out), *extra])
            if code != 0:
                print(f"build {name} failed with exit code {code}", file=sys.stderr)
                return 1
            print(f"world {name}")
            print("\n".join(fingerprint(out, root)))
            print(f"  ({name}: {time.time() - started:.1f} s, {_cpu_seconds():.1f} s CPU so far)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
