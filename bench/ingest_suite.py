#!/usr/bin/env python3
"""Ingest benchmark suite (issue 26's "done when"): build worlds from frames alone and score them.

For every clip -- KITTI 06, the Udacity dashcam clip (no ground truth), every public clip with
ground-truth poses in the data folder (shared/data) or test/data/ (a folder with PROVENANCE.txt,
frames and a pose file, e.g. kitti01_ramp), synthetic streets (seeds 0-9 at 640x360 and 480x270),
a curving street at speed (also seen by a KITTI-like gray, clipping, noisy camera), robot- and
drone-height streets, a motion-blurred street, the highway and indoor rooms -- it builds from the
frames alone (poses by visual odometry, depth by multi-view stereo; once with the true intrinsics
given and once without them) in a child process, then scores the
world against the clip's ground truth in another:

  placed      frames the odometry located, of those it was given (world.info["odometry"])
  segments    pieces the trajectory broke into
  ATE %       trajectory RMSE after similarity alignment / path length (ingest.odometry.ate_rel,
              through eval.evaluate)
  focal %     the world's focal length against the true one (both at the clip's resolution)
  AbsRel      held-out depth against the true depth (synthetic clips; eval.evaluate), and after
              the trajectory's similarity alignment
  PSNR        held-out frames (eval.evaluate)
  build s, CPU s, peak RSS   wall time, user + system CPU time and ru_maxrss of the build's
              process (os.wait4); on a shared machine CPU seconds stay comparable, wall seconds do not

Writes suite.json and suite.md (a markdown table) in --out, and prints the table.

    python bench/ingest_suite.py --quick                       # a handful of clips
    python bench/ingest_suite.py --clips kitti06,curve --intrinsics self
    python bench/ingest_suite.py --list
    python bench/ingest_suite.py --device cuda --out /tmp/suite  # the whole set (H200)
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from inspatio_ros.errors import InputError  # noqa: E402
from inspatio_ros.progress import progress  # noqa: E402

VARIANTS = ("given", "self")   # intrinsics given to the build / estimated (or the prior)
FRAME_DIRS = ("frames", "image_0", "images", "rgb", "image", "image_2")


@dataclass
class Clip:
    """One input of the suite. ``prepare(work)`` returns the clip's folder or video (making it
    when needed); that path is also the ground truth eval scores against."""

    name: str
    what: str
    prepare: Callable[[Path], Path]
    has_intrinsics: bool = True       # the true intrinsics are known (camera_info.yaml)
    tags: tuple[str, ...] = ()
    # The builds issue 26's "done when" asks for: real clips without intrinsics, the synthetic
    # depth targets with camera_info, the curve and robot-height street both ways.
    issue_variants: tuple[str, ...] = ("given",)


def _synth(kind: str, size: tuple[int, int], seed: int, frames: int = 60, moving: int = 1,
           params: dict | None = None, exposure: float = 0.0, camera: dict | None = None,
           sensor_noise: float = 0.0) -> Callable[[Path], Path]:
    def prepare(work: Path) -> Path:
        from inspatio_ros.synth.generate import generate

        name = (f"{kind}_s{seed}_{size[0]}x{size[1]}_{frames}f_{moving}m"
                + "".join(f"_{k}{v:g}" for k, v in sorted((params or {}).items()))
                + (f"_exp{exposure:g}" if exposure else "")
                + "".join(f"_{k}{v:g}" for k, v in sorted((camera or {}).items()))
                + (f"_noise{sensor_noise:g}" if sensor_noise else ""))
        out = work / "clips" / name
        # video.mp4 is written last (frame by frame, atomically): its presence marks a whole clip.
        if not (out / "video.mp4").exists():
            generate(kind, out, size=size, frames=frames, moving_cars=moving, seed=seed, params=params,
                     exposure=exposure, camera=camera, sensor_noise=sensor_noise, device=_synth_device())
        return out
    return prepare


def _synth_device() -> str:
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"


def _existing(path: Path) -> Callable[[Path], Path]:
    def prepare(work: Path) -> Path:
        if not path.exists():
            raise InputError(f"clip {path} does not exist", "give the data folder with --data (it holds kitti06/ "
                             "and udacity_solidWhiteRight/), or leave the clip out with --clips")
        return path
    return prepare


def default_data_dir() -> Path:
    for candidate in (ROOT / "shared" / "data", ROOT.parent / "shared" / "data"):
        if candidate.is_dir():
            return candidate
    return ROOT.parent / "shared" / "data"


def public_clips(data: Path, taken: set[str] = frozenset()) -> list[Clip]:
    """Real clips with ground-truth poses: every folder of the data folder (shared/data) or of
    test/data that has a PROVENANCE.txt, frames and a pose file. The frames are public data under
    their own licences: they live in the data folder, next to the repository, not in it."""
    from inspatio_ros.ingest.sources import POSE_FILES

    found = []
    for base, label in ((data, str(data)), (ROOT / "test" / "data", "test/data")):
        for prov in sorted(base.glob("*/PROVENANCE.txt")) if base.is_dir() else []:
            folder = prov.parent
            has_frames = any((folder / d).is_dir() for d in FRAME_DIRS)
            if folder.name in taken or not has_frames or not any((folder / p).exists() for p in POSE_FILES):
                continue
            taken = set(taken) | {folder.name}
            found.append(Clip(folder.name, f"public clip {label}/{folder.name} (PROVENANCE.txt)", _existing(folder),
                              has_intrinsics=(folder / "camera_info.yaml").exists(), tags=("real",),
                              issue_variants=("self",)))
    return found


def all_clips(data: Path) -> list[Clip]:
    clips = [
        Clip("kitti06", "KITTI 06 frames 0-50, 1226x370, 10 Hz, car", _existing(data / "kitti06"), tags=("real",),
             issue_variants=("self",)),
        Clip("dashcam", "Udacity solidWhiteRight.mp4, 960x540, 25 fps, highway (no ground truth)",
             _existing(data / "udacity_solidWhiteRight" / "solidWhiteRight.mp4"), has_intrinsics=False,
             tags=("real",), issue_variants=("self",)),
    ]
    clips += public_clips(data, taken={c.name for c in clips})
    for size in ((640, 360), (480, 270)):
        for seed in range(10):
            clips.append(Clip(f"street_s{seed}_{size[0]}x{size[1]}", f"synth street seed {seed}, {size[0]}x{size[1]}, "
                              "60 frames, 1 moving car", _synth("street", size, seed), tags=("street",)))
    clips += [
        Clip("curve", "synth street bending at 25 m radius, 10 m/s: 2.3 deg and 1.07 m per frame, 640x360",
             _synth("street", (640, 360), 0, params={"curve_radius": 25.0, "speed": 10.0}), tags=("street",),
             issue_variants=VARIANTS),
        Clip("robot", "synth street, camera 0.5 m up (robot), 640x360",
             _synth("street", (640, 360), 0, params={"camera_height": 0.5}), tags=("street",),
             issue_variants=VARIANTS),
        Clip("drone", "synth street, camera 10 m up pitched 35 deg down (drone), 640x360",
             _synth("street", (640, 360), 0, params={"camera_height": 10.0, "pitch": math.radians(35)})),
        Clip("curve_kitti_camera", "the curve seen by a KITTI-like camera: gray, gain 1.4 (a burnt-out sky), "
             "sensor noise 1.5 levels, 640x360",
             _synth("street", (640, 360), 0, params={"curve_radius": 25.0, "speed": 10.0},
                    camera={"gray": True, "gain": 1.4}, sensor_noise=1.5), tags=("street",), issue_variants=VARIANTS),
        Clip("blur", "synth street at 15 m/s with 50 ms motion blur, 640x360",
             _synth("street", (640, 360), 0, params={"speed": 15.0}, exposure=0.05), tags=("street",)),
        Clip("highway", "synth highway at 27 m/s, little near texture, 640x360", _synth("highway", (640, 360), 0,
                                                                                         moving=2)),
    ]
    # 11-13 are the rooms the indoor work measured; 14-15 stay as checks on rooms it did not tune on.
    for seed in (11, 12, 13, 14, 15):
        clips.append(Clip(f"indoor_s{seed}", f"synth room seed {seed}, camera 0.4 m up, 640x360",
                          _synth("indoor", (640, 360), seed), tags=("indoor",)))
    return clips


QUICK = ("kitti06", "street_s0_480x270", "curve", "robot", "indoor_s11")


# ---------------------------------------------------------------------------------------------
# One build and its score
# ---------------------------------------------------------------------------------------------

def make_input(clip_path: Path, variant: str, folder: Path) -> Path:
    """What the build sees: the clip's frames (and times.txt) only, plus camera_info.yaml when
    the intrinsics are given -- no poses, no depth. A video is used as it is."""
    if clip_path.is_file():
        return clip_path
    frame_dir = next((clip_path / d for d in FRAME_DIRS if (clip_path / d).is_dir()), None)
    if frame_dir is None:
        raise InputError(f"clip {clip_path} has no frame folder", f"put its frames in one of {', '.join(FRAME_DIRS)}/")
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    (folder / frame_dir.name).symlink_to(frame_dir.resolve(), target_is_directory=True)
    if (clip_path / "times.txt").exists():
        shutil.copyfile(clip_path / "times.txt", folder / "times.txt")
    if variant == "given":
        shutil.copyfile(clip_path / "camera_info.yaml", folder / "camera_info.yaml")
    return folder


def run_build(input_path: Path, world_path: Path, log_path: Path, *, device: str, holdout: int,
              max_size: int | None, intrinsics: str | None = None) -> dict:
    """``inspatio-ros build`` in a child process: its wall seconds, peak RSS and exit status."""
    # --no-optimize: the suite scores ingest (poses, depth, fusion); on CUDA build would otherwise
    # also fit the Gaussians (tools/h200_gaussian_run.py scores that).
    cmd = [sys.executable, "-m", "inspatio_ros.cli", "--device", device, "build", str(input_path),
           "-o", str(world_path), "--holdout", str(holdout), "--no-optimize"]
    if max_size:
        cmd += ["--max-size", str(max_size)]
    if intrinsics:
        cmd += ["--intrinsics", intrinsics]
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "INSPATIO_NO_PROGRESS": "1"}
    started = time.monotonic()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))
        # wait4: the resource usage of this child alone (RUSAGE_CHILDREN would be the maximum
        # over every child the suite has waited for).
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - started
    result = {"build_s": round(seconds, 1), "build_cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
              "peak_rss_gb": round(usage.ru_maxrss / 1024 ** 2, 3),
              "returncode": proc.returncode}
    if proc.returncode != 0:
        lines = [ln.strip() for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
        result["error"] = lines[-1] if lines else f"exit status {proc.returncode}"
    return result


def score(world_path: Path, truth: Path, *, device: str, shifts: bool) -> dict:
    """Placed frames, segments, focal error and eval's numbers for one world (runs in a child)."""
    import numpy as np

    from inspatio_ros.camera import load_camera_info
    from inspatio_ros.eval import evaluate
    from inspatio_ros.world import World

    world = World.load(world_path)
    info = world.info
    odometry = info.get("odometry") or {}
    out: dict = {
        "pose_source": info.get("pose_source"),
        "intrinsics_source": info.get("intrinsics_source"),
        "frames_given": odometry.get("frames"),
        "frames_placed": odometry.get("located"),
        "segments": len(odometry["segments"]) if "segments" in odometry else None,
        "frames_fused": int(len(world.frame_c2w)),
        "points": int(world.num_static),
        "fx": round(float(world.intrinsics.fx), 3),
    }
    if truth.is_dir() and (truth / "camera_info.yaml").exists():
        true = load_camera_info(truth / "camera_info.yaml")
        fx = world.intrinsics.fx * true.width / world.intrinsics.width
        out["focal_error_pct"] = round(100.0 * (fx / true.fx - 1.0), 3)
    report = evaluate(world, truth, device=device, shifts=shifts).as_json()
    for key in ("psnr", "ssim", "ate_rel", "depth_absrel", "depth_absrel_aligned", "coverage", "shift_psnr"):
        if report.get(key) is not None:
            out[key] = report[key]
    if out.get("ate_rel") is not None:
        out["ate_pct"] = round(100.0 * out.pop("ate_rel"), 3)
    out["path_m"] = round(float(np.sum(np.linalg.norm(np.diff(world.camera_path()[1][:, :3, 3], axis=0), axis=1))), 2)
    return out


def run_score(world_path: Path, truth: Path, out_json: Path, log_path: Path, *, device: str, shifts: bool) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--score", str(world_path), str(truth), str(out_json),
           "--device", device] + (["--shifts"] if shifts else [])
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "INSPATIO_NO_PROGRESS": "1"}
    with open(log_path, "w") as log:
        rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=str(ROOT))
    if rc != 0 or not out_json.exists():
        lines = [ln.strip() for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
        return {"score_error": lines[-1] if lines else f"exit status {rc}"}
    return json.loads(out_json.read_text())


# ---------------------------------------------------------------------------------------------
# The suite
# ---------------------------------------------------------------------------------------------

@dataclass
class Options:
    work: Path
    device: str = "auto"
    holdout: int = 5
    max_size: int | None = None
    variants: tuple[str, ...] = VARIANTS
    shifts: bool = False
    keep_worlds: bool = False
    # Called with the rows so far after every build: a long run that is stopped keeps its rows.
    on_row: Callable[[list[dict]], None] | None = None


def plan(clips: list[Clip], variants: tuple[str, ...]) -> list[tuple[Clip, str]]:
    """(clip, intrinsics variant) of every build: ("issue",) takes each clip's own; a clip whose
    intrinsics are unknown (the dashcam) is built without them only."""
    return [(clip, v) for clip in clips for v in (clip.issue_variants if variants == ("issue",) else variants)
            if v == "self" or clip.has_intrinsics]


def run_suite(clips: list[Clip], opts: Options) -> list[dict]:
    jobs = plan(clips, opts.variants)
    rows = []
    opts.work.mkdir(parents=True, exist_ok=True)
    bar = progress(jobs, total=len(jobs), desc="ingest suite", unit="build")
    for clip, variant in bar:
        if hasattr(bar, "set_postfix_str"):
            bar.set_postfix_str(f"{clip.name} ({variant})")
        row = {"clip": clip.name, "what": clip.what, "intrinsics": variant}
        try:
            path = clip.prepare(opts.work)
        except InputError as exc:
            row["error"] = str(exc)
            rows.append(row)
            if opts.on_row is not None:
                opts.on_row(rows)
            continue
        run_dir = opts.work / "runs" / f"{clip.name}-{variant}"
        run_dir.mkdir(parents=True, exist_ok=True)
        input_path = make_input(path, variant, run_dir / "input")
        world_path = run_dir / "world.safetensors"
        if world_path.exists():
            world_path.unlink()
        intrinsics = None
        if variant == "given" and input_path.is_file():
            intrinsics = str(path.parent / "camera_info.yaml")
        row.update(run_build(input_path, world_path, run_dir / "build.log", device=opts.device,
                             holdout=opts.holdout, max_size=opts.max_size, intrinsics=intrinsics))
        if row["returncode"] == 0:
            row.update(run_score(world_path, path, run_dir / "score.json", run_dir / "score.log",
                                 device=opts.device, shifts=opts.shifts))
            if not opts.keep_worlds:
                world_path.unlink(missing_ok=True)
        (run_dir / "row.json").write_text(json.dumps(row, indent=2) + "\n")
        rows.append(row)
        if opts.on_row is not None:
            opts.on_row(rows)
    return rows


def _fmt(value, spec: str = "{:.3g}") -> str:
    if value is None:
        return "-"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan"
    return spec.format(value)


def markdown_table(rows: list[dict]) -> str:
    head = ("| clip | intrinsics | placed | segments | ATE % path | focal err % | depth AbsRel (aligned) | "
            "PSNR dB | build s | build CPU s | peak RSS GB | note |")
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        placed = (f"{r['frames_placed']}/{r['frames_given']}" if r.get("frames_placed") is not None
                  else (f"{r['frames_fused']} fused" if r.get("frames_fused") is not None else "-"))
        absrel = "-"
        if r.get("depth_absrel") is not None:
            absrel = _fmt(r["depth_absrel"], "{:.3f}") + (f" ({r['depth_absrel_aligned']:.3f})"
                                                         if r.get("depth_absrel_aligned") is not None else "")
        note = r.get("error") or r.get("score_error") or ""
        lines.append("| " + " | ".join([
            r["clip"], r["intrinsics"], placed, _fmt(r.get("segments"), "{}"), _fmt(r.get("ate_pct"), "{:.2f}"),
            _fmt(r.get("focal_error_pct"), "{:+.1f}"), absrel, _fmt(r.get("psnr"), "{:.2f}"),
            _fmt(r.get("build_s"), "{:.0f}"), _fmt(r.get("build_cpu_s"), "{:.0f}"), _fmt(r.get("peak_rss_gb"), "{:.2f}"),
            note.replace("|", "/")]) + " |")
    return "\n".join(lines)


def machine() -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.node()}, {os.cpu_count()} CPU cores, {gpu}, torch {torch.__version__}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", help="comma-separated clip names (see --list; default: all)")
    ap.add_argument("--quick", action="store_true", help=f"a small subset: {', '.join(QUICK)}")
    ap.add_argument("--list", action="store_true", help="list the clips and exit")
    ap.add_argument("--intrinsics", choices=("both", "issue") + VARIANTS, default="both",
                    help="build with the true intrinsics given, without them (self), both (default), or as "
                         "issue 26's targets ask (issue: real clips self, synthetic given, curve and robot both)")
    ap.add_argument("--work", default="/tmp/inspatio_ingest_suite", help="clips, inputs, logs and worlds")
    ap.add_argument("--out", help="where suite.json and suite.md go (default: --work)")
    ap.add_argument("--data", help="folder holding kitti06/, udacity_solidWhiteRight/ and the public clips with "
                                   "ground truth (default: shared/data)")
    ap.add_argument("--device", default="auto", help="torch device for build and eval (auto, cpu, cuda)")
    ap.add_argument("--holdout", type=int, default=5, help="keep every K-th frame out for PSNR (default 5)")
    ap.add_argument("--max-size", type=int, help="downscale frames to this longer side for the build")
    ap.add_argument("--shifts", action="store_true", help="also score lateral shifts on synthetic clips (slow on CPU)")
    ap.add_argument("--keep-worlds", action="store_true", help="keep each world file under --work/runs/")
    ap.add_argument("--merge", nargs="+", metavar="SUITE_JSON",
                    help="print one table of the rows of several runs' suite.json (runs split to fit a time limit)")
    ap.add_argument("--score", nargs=3, metavar=("WORLD", "TRUTH", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.merge:
        runs = [json.loads(Path(p).read_text()) for p in args.merge]
        rows = [row for run in runs for row in run["rows"]]
        for run in runs:
            print(f"{run['machine']}, {run['date']}{'' if run.get('complete') else ' (partial)'}: `{run['command']}`")
        print()
        print(markdown_table(rows))
        return 0

    if args.score:
        world, truth, out = (Path(p) for p in args.score)
        Path(out).write_text(json.dumps(score(world, truth, device=args.device, shifts=args.shifts), indent=2))
        return 0

    data = Path(args.data) if args.data else default_data_dir()
    clips = all_clips(data)
    by_name = {c.name: c for c in clips}
    if args.list:
        for c in clips:
            print(f"{c.name:22s} {c.what}")
        return 0
    if args.holdout < 2:
        raise SystemExit("--holdout must be 2 or more (every K-th frame is held out for PSNR)")
    if args.clips:
        names = [n.strip() for n in args.clips.split(",") if n.strip()]
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise SystemExit(f"unknown clip(s) {', '.join(unknown)}: see --list")
        chosen = [by_name[n] for n in names]
    elif args.quick:
        chosen = [by_name[n] for n in QUICK]
    else:
        chosen = clips
    out = Path(args.out) if args.out else Path(args.work)
    out.mkdir(parents=True, exist_ok=True)
    started = time.time()
    meta = {"machine": machine(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "command": " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])),
            "device": args.device, "holdout": args.holdout, "max_size": args.max_size}

    def write(rows: list[dict], done: bool = False) -> str:
        info = {**meta, "seconds": round(time.time() - started, 1), "complete": done}
        (out / "suite.json").write_text(json.dumps({**info, "rows": rows}, indent=2) + "\n")
        table = markdown_table(rows)
        status = "" if done else f" (partial: {len(rows)} builds so far)"
        (out / "suite.md").write_text(f"{meta['machine']}, {meta['date']}{status}: `{meta['command']}`\n\n{table}\n")
        return table

    opts = Options(work=Path(args.work), device=args.device, holdout=args.holdout, max_size=args.max_size,
                   variants=VARIANTS if args.intrinsics == "both" else (args.intrinsics,), shifts=args.shifts,
                   keep_worlds=args.keep_worlds, on_row=write)
    rows = run_suite(chosen, opts)
    print(write(rows, done=True))
    print(f"\n{out / 'suite.json'}, {out / 'suite.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
