"""Refiner benchmark (not a test): training time, inference ms per resolution and batch, flicker,
and the held-out quality table raw render vs refined (``inspatio-ros eval`` numbers).

    python bench/generator_bench.py WORLD --gt DIR [--frames DIR] [--steps 8000] [--max-minutes 2] [--out DIR]

Trains WORLD's refiner (unless --weights is given), evaluates the held-out frames with and
without it, writes a side-by-side picture (raw render | refined | real frame, top to bottom) of
one held-out frame and, on CUDA, times the refiner at 1280x720 and 1920x1080 for batches of 1
and 4 cameras. Prints a table and writes OUT/NAME_bench.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inspatio_ros.eval import evaluate  # noqa: E402
from inspatio_ros.generator import Refiner  # noqa: E402
from inspatio_ros.generator.train import TrainSettings, train  # noqa: E402
from inspatio_ros.ingest.sources import open_input  # noqa: E402
from inspatio_ros.render import Renderer  # noqa: E402
from inspatio_ros.video import write_png  # noqa: E402
from inspatio_ros.world import World  # noqa: E402


def time_refiner(refiner: Refiner, renderer: Renderer, world: World, size, batch: int, iters: int = 50) -> float:
    """ms per call of the refiner on a real render batch (inputs already on the device)."""
    intr = world.intrinsics.scaled(*size)
    poses = world.frame_c2w[np.linspace(0, len(world.frame_c2w) - 1, batch).astype(int)]
    out = renderer.render(renderer.cameras(poses, intr), float(world.frame_time[0]))
    for _ in range(3):
        refiner(out.rgb, out.depth, out.coverage)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(iters):
        refiner(out.rgb, out.depth, out.coverage)
    torch.cuda.synchronize()
    return 1000.0 * (time.perf_counter() - t0) / iters


def flicker(renderer: Renderer, refiner: Refiner, world: World, frames: int = 10) -> tuple[float, float]:
    """Mean |frame - previous frame| (0..255) of a static camera (source frame 0's pose) while the
    recording time runs: raw render and refined."""
    c2w = world.frame_c2w[:1]
    t0, t1 = world.time_range
    raw, ref = [], []
    for t in np.linspace(t0, t1, frames):
        out = renderer.render(renderer.cameras(c2w), float(t))
        raw.append(out.rgb[0].float().cpu())
        ref.append(refiner(out.rgb, out.depth, out.coverage)[0].float().cpu())

    def change(seq):
        return float(np.mean([(b - a).abs().mean() for a, b in zip(seq, seq[1:])]))
    return change(raw), change(ref)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("world")
    ap.add_argument("--gt", required=True, help="ground-truth folder (the build input)")
    ap.add_argument("--frames", help="frames for training (default: the build input the world records)")
    ap.add_argument("--weights", help="skip training, use these weights")
    ap.add_argument("--steps", type=int, default=TrainSettings().steps)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--crop", type=int, default=192)
    ap.add_argument("--widths", default="32,48,96,128")
    ap.add_argument("--lr", type=float, default=TrainSettings().lr)
    ap.add_argument("--no-amp", action="store_true", help="train in float32 on CUDA")
    ap.add_argument("--max-minutes", type=float, help="stop training after this many minutes")
    ap.add_argument("--out", default="bench_out")
    ap.add_argument("--name", help="name of the outputs (default: the world's file stem)")
    ap.add_argument("--picture-frame", type=int, default=None, help="held-out frame number to picture")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--no-shift", action="store_true")
    args = ap.parse_args()

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = args.name or Path(args.world).name.split(".")[0]
    world = World.load(args.world)
    result: dict = {"world": name, "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
                    "date": time.strftime("%Y-%m-%d")}
    weights = Path(args.weights) if args.weights else out_dir / f"{name}.generator.safetensors"
    if not args.weights:
        s = TrainSettings(steps=args.steps, batch=args.batch, crop=args.crop,
                          widths=[int(w) for w in args.widths.split(",")], lr=args.lr, amp=not args.no_amp)
        t0 = time.perf_counter()
        summary = train(world, weights, world_path=args.world, frames_dir=args.frames, device=args.device, settings=s,
                        max_seconds=None if args.max_minutes is None else 60 * args.max_minutes)
        result["training"] = {k: summary[k] for k in ("steps", "prepare_seconds", "train_seconds", "initial_loss",
                                                      "final_loss", "renders", "image_size", "crop", "loss_curve",
                                                      "stopped_early", "settings")}
        result["training"]["total_seconds"] = round(time.perf_counter() - t0, 2)
        print("training:", json.dumps(result["training"]), flush=True)
    refiner = Refiner.load(weights, args.device)

    t0 = time.perf_counter()
    report = evaluate(world, args.gt, device=args.device, shifts=not args.no_shift, refiner=refiner)
    result["eval"] = report.as_json()
    result["eval"]["per_frame"] = report.per_frame
    result["eval_seconds"] = round(time.perf_counter() - t0, 2)
    j = result["eval"]
    print("eval:", json.dumps({k: v for k, v in j.items() if k != "per_frame"}), flush=True)

    # Side by side: raw render, refined, real frame (a held-out frame, at the truth's resolution).
    renderer = Renderer(world, args.device)
    fs = open_input(args.gt)
    k = len(world.heldout_index) // 2 if args.picture_frame is None else \
        int(np.nonzero(world.heldout_index == args.picture_frame)[0][0])
    truth = fs.load(int(world.heldout_index[k]))
    intr = world.intrinsics.scaled(truth.shape[1], truth.shape[0])
    out = renderer.render(renderer.cameras(world.heldout_c2w[k][None], intr), float(world.heldout_time[k]))
    refined = refiner(out.rgb, out.depth, out.coverage)[0].cpu().numpy()
    write_png(out_dir / f"{name}_side_by_side.png", np.concatenate([out.rgb[0].cpu().numpy(), refined, truth], 0))
    result["picture_frame"] = int(world.heldout_index[k])
    if (Path(args.gt) / "scene.json").exists():
        # A view no frame saw: 1 m to the right of the held-out frame; ray-cast truth.
        from inspatio_ros.eval import shifted_pose
        from inspatio_ros.synth.generate import load_scene

        pose = shifted_pose(world.heldout_c2w[k], 1.0)
        out = renderer.render(renderer.cameras(pose[None], intr), float(world.heldout_time[k]))
        refined = refiner(out.rgb, out.depth, out.coverage)[0].cpu().numpy()
        truth, _ = load_scene(args.gt).render(pose, intr, float(world.heldout_time[k]))
        write_png(out_dir / f"{name}_shift1m_side_by_side.png",
                  np.concatenate([out.rgb[0].cpu().numpy(), refined, truth], 0))

    raw_f, ref_f = flicker(renderer, refiner, world)
    result["flicker"] = {"raw": raw_f, "refined": ref_f}
    if refiner.device.type == "cuda":
        timings = {}
        for size in ((1280, 720), (1920, 1080)):
            for b in (1, 4):
                graphed = time_refiner(refiner, renderer, world, size, b)
                eager = time_refiner(Refiner(refiner.net, refiner.device, graphs=False, meta=refiner.meta),
                                     renderer, world, size, b, iters=20)
                timings[f"{size[0]}x{size[1]} b{b}"] = {"graph_ms": round(graphed, 3), "graph_ms_per_frame":
                                                        round(graphed / b, 3), "eager_ms": round(eager, 3)}
                print(f"refiner {size[0]}x{size[1]} batch {b}: {graphed:.2f} ms ({graphed / b:.2f} per frame; "
                      f"eager {eager:.2f} ms)", flush=True)
        result["inference"] = timings
    (out_dir / f"{name}_bench.json").write_text(json.dumps(result, indent=1))

    raw = j["raw"]
    print(f"\n| {name} (held-out) | raw render | refined |\n|---|---|---|")
    print(f"| PSNR | {raw['psnr']:.2f} dB | {j['psnr']:.2f} dB |")
    print(f"| SSIM | {raw['ssim']:.3f} | {j['ssim']:.3f} |")
    if j.get("shift_psnr"):
        print(f"| shift PSNR -2/-1/+1/+2 m | {' / '.join(f'{v:.2f}' for v in raw['shift_psnr'].values())} | "
              f"{' / '.join(f'{v:.2f}' for v in j['shift_psnr'].values())} |")
    print(f"| flicker (static camera) | {raw_f:.3f} | {ref_f:.3f} |")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("INSPATIO_NO_PROGRESS", "1")
    sys.exit(main())
