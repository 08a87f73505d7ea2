#!/usr/bin/env python3
"""Issue 20 on a CUDA machine: gsplat checked against the reference, then worlds built from the
frames alone and optimized, scored on their held-out frames. Writes JSON to --out.

    PYTHONPATH=. python tools/h200_gaussian_run.py --out $OUT --check            # gsplat compile + check
    PYTHONPATH=. python tools/h200_gaussian_run.py --out $OUT --clips kitti06
    PYTHONPATH=. python tools/h200_gaussian_run.py --out $OUT --clips street_s0,street_s1

Clips: ``kitti06`` (KITTI 06 frames 0-50 from --data, built from its frames alone: no intrinsics,
no poses), ``street_sN`` (the synthetic street of seed N, 640x360, 60 frames, one moving car; built
from video.mp4 + camera_info.yaml only, poses estimated). For each: ``build --no-optimize``
(timed), eval of that surfel world, ``optimize`` (timed; --iterations, --max-minutes, --budget),
eval of the optimized world (Gaussians drawn by gsplat), and world sizes. Street clips also get
the lateral-shift scores (±1 m, ±2 m). ``--cpu-eval``: the optimized world also scored on the
CPU (the surfels made from its Gaussians at load, as a node without a GPU draws it). ``--node-bench``: the node on each optimized world, 3
cameras at 1920x1080 with depth, at the --node-rates (bench/node_bench.py; logs in --out). Each clip runs in child processes; rows are written to
OUT/gaussian_run.json as they finish, so a run cut short keeps what it did.

gsplat compiles its kernels on first use (minutes); the build folder defaults to
REPO/.torch_extensions (ignored by git) so later calls on the same machine skip it.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def _env() -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "INSPATIO_NO_PROGRESS": "1", "PYTHONUNBUFFERED": "1"}
    env.setdefault("TORCH_EXTENSIONS_DIR", str(ROOT / ".torch_extensions"))
    return env


def _run(cmd: list[str], log: Path) -> dict:
    """A child process: wall seconds, peak RSS (its own, os.wait4), exit status, last line on error."""
    started = time.monotonic()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=_env(), cwd=str(ROOT))
        _, status, usage = os.wait4(proc.pid, 0)
        code = os.waitstatus_to_exitcode(status)
    out = {"seconds": round(time.monotonic() - started, 1), "returncode": code,
           "peak_rss_gb": round(usage.ru_maxrss / 1024 ** 2, 3)}
    if code != 0:
        lines = [ln.strip() for ln in log.read_text(errors="replace").splitlines() if ln.strip()]
        out["error"] = lines[-1] if lines else f"exit status {code}"
    return out


def _score(world: Path, truth: Path, shifts: bool, out_json: Path, log: Path, device: str) -> dict:
    """eval in a child (ingest_suite's scorer: psnr, ssim, depth AbsRel, ATE, shifts)."""
    cmd = [sys.executable, str(ROOT / "bench" / "ingest_suite.py"), "--score", str(world), str(truth), str(out_json),
           "--device", device] + (["--shifts"] if shifts else [])
    r = _run(cmd, log)
    if r["returncode"] == 0 and out_json.exists():
        return {**json.loads(out_json.read_text()), "eval_s": r["seconds"]}
    return {"eval_error": r.get("error"), "eval_s": r["seconds"]}


def prepare_clip(name: str, data: Path, work: Path, size: tuple[int, int]) -> tuple[Path, Path, list[str], bool]:
    """(build input, ground truth, extra build arguments, score shifts) for a clip name."""
    import ingest_suite

    if name == "kitti06":
        clip = data / "kitti06"
        if not clip.is_dir():
            raise SystemExit(f"{clip} is not there: give --data (the folder holding kitti06/)")
        return ingest_suite.make_input(clip, "self", work / "kitti06_input"), clip, [], False
    if name.startswith("street_s"):
        seed = int(name[len("street_s"):])
        clip = ingest_suite._synth("street", size, seed)(work)
        return clip / "video.mp4", clip, ["--intrinsics", str(clip / "camera_info.yaml")], True
    raise SystemExit(f"unknown clip {name!r}: kitti06 or street_sN")


def run_clip(name: str, a) -> dict:
    work = Path(a.work)
    run = work / "runs" / name
    run.mkdir(parents=True, exist_ok=True)
    row: dict = {"clip": name}
    t0 = time.monotonic()
    input_path, truth, extra, shifts = prepare_clip(name, Path(a.data), work, tuple(int(v) for v in a.size.split("x")))
    row["prepare_s"] = round(time.monotonic() - t0, 1)
    surfels, optimized = run / "world.safetensors", run / "world.optimized.safetensors"
    for p in (surfels, optimized):
        p.unlink(missing_ok=True)
    build = _run([sys.executable, "-m", "inspatio_ros.cli", "--device", a.device, "build", str(input_path), "-o",
                  str(surfels), "--holdout", str(a.holdout), "--no-optimize", *extra], run / "build.log")
    row["build"] = build
    if build["returncode"] != 0:
        return row
    row["surfel_world_mb"] = round(surfels.stat().st_size / 1e6, 2)
    if not a.skip_surfel_eval:
        row["surfel_eval"] = _score(surfels, truth, shifts, run / "surfel_score.json", run / "surfel_score.log", a.device)
    opt = _run([sys.executable, "-m", "inspatio_ros.cli", "--device", a.device, "optimize", str(surfels), "-o",
                str(optimized), "--iterations", str(a.iterations), "--max-minutes", str(a.max_minutes), "--budget",
                str(a.budget), "--backend", a.backend, *(["--no-sky"] if a.no_sky else []),
                *shlex.split(a.optimize_args)], run / "optimize.log")
    row["optimize"] = opt
    if opt["returncode"] != 0:
        return row
    from inspatio_ros.world import World

    w = World.load(optimized)
    row["optimized_world_mb"] = round(optimized.stat().st_size / 1e6, 2)
    row["gaussians"] = int(w.num_gaussians)
    row["optimize_record"] = {k: v for k, v in w.info.get("optimized", {}).items()
                              if k not in ("pose_correction", "heldout_pose_correction")}
    row["build_plus_optimize_s"] = round(build["seconds"] + opt["seconds"], 1)
    row["optimized_eval"] = _score(optimized, truth, shifts, run / "opt_score.json", run / "opt_score.log", a.device)
    if a.cpu_eval:
        # The same world drawn as the CPU node draws it (surfels made from the Gaussians at load).
        row["optimized_eval_cpu"] = _score(optimized, truth, shifts, run / "opt_score_cpu.json",
                                           run / "opt_score_cpu.log", "cpu")
    if a.node_bench:
        # The node drawing this world's Gaussians: 3 cameras at 1920x1080, RGB + depth, at each
        # --node-rates (Hz per camera), rate and pose->image latency (bench/node_bench.py).
        log = Path(a.out) / f"node_bench_{name}.log"
        rates = []
        for rate in a.node_rates.split(","):
            r = _run([sys.executable, str(ROOT / "bench" / "node_bench.py"), "--world", str(optimized), "--sizes",
                      "1920x1080", "--cameras", "3", "--points", "off", "--rate", rate, "--device", a.device],
                     log.with_name(f"node_bench_{name}_{rate}hz.log"))
            r["rate_hz"] = float(rate)
            r["tail"] = log.with_name(f"node_bench_{name}_{rate}hz.log").read_text(errors="replace")[-1500:]
            rates.append(r)
        row["node_bench"] = rates
    return row


def main(argv=None) -> int:
    import ingest_suite

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="folder for gaussian_run.json (and gsplat_check.json)")
    ap.add_argument("--clips", default="", help="comma-separated: kitti06, street_s0 ... street_s4")
    ap.add_argument("--check", action="store_true", help="compile gsplat and compare it with the reference first")
    ap.add_argument("--data", default=str(ingest_suite.default_data_dir()), help="folder holding kitti06/")
    ap.add_argument("--work", default="/tmp/inspatio_gaussian_run")
    ap.add_argument("--holdout", type=int, default=5)
    ap.add_argument("--iterations", type=int, default=3000)
    ap.add_argument("--max-minutes", type=float, default=3.0)
    ap.add_argument("--budget", type=int, default=1_000_000)
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--optimize-args", default="", help="more options for optimize, one string "
                    "(e.g. \"--opacity-reset-every 1000\")")
    ap.add_argument("--no-sky", action="store_true", help="optimize without the learned sky (the build's far shell "
                    "becomes Gaussians, as before 2026-12-05): for A/B runs")
    ap.add_argument("--device", default="cuda", help="cuda (the point of this script); cpu only to try it at toy size")
    ap.add_argument("--size", default="640x360", help="synthetic street size")
    ap.add_argument("--cpu-eval", action="store_true",
                    help="also score each optimized world on the CPU (its surfel drawing: the node without a GPU)")
    ap.add_argument("--node-bench", action="store_true", help="also run bench/node_bench.py on each optimized world "
                                                               "(3 cameras 1920x1080, RGB + depth)")
    ap.add_argument("--node-rates", default="60,120", help="per-camera rates for --node-bench (Hz, comma-separated)")
    ap.add_argument("--skip-surfel-eval", action="store_true", help="score only the optimized world")
    a = ap.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    import torch

    info = {"torch": torch.__version__, "cuda": torch.cuda.is_available(),
            "device": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        import gsplat
        info["gsplat"] = gsplat.__version__
    except ImportError:
        info["gsplat"] = None
    print(json.dumps(info), flush=True)
    if a.check:
        r = _run([sys.executable, str(ROOT / "tools" / "gsplat_check.py"), "--json", str(out / "gsplat_check.json")],
                 out / "gsplat_check.log")
        print("gsplat_check:", json.dumps(r), flush=True)
        print((out / "gsplat_check.log").read_text()[-3000:], flush=True)
    rows: list = []
    out_path = out / "gaussian_run.json"
    for name in [c for c in a.clips.split(",") if c]:
        row = run_clip(name, a)
        rows.append(row)
        out_path.write_text(json.dumps({"machine": info, "settings": vars(a), "rows": rows}, indent=1) + "\n")
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
