"""Where a world's held-out renders go wrong: error by region, and an error-map picture.

    python tools/heldout_error_map.py WORLD GT_DIR [--frame N OUT.png] [--single-pass]

For every held-out frame the world is rendered at the truth's resolution (as ``eval`` does) and
the squared grey error is split by what the render shows there: sky or the far shell (rendered
depth > 200 m), near (< 8 m), mid (8-25 m), far (25-200 m), and hole-filled pixels. Prints each
region's share of the image, its share of the squared error and its RMS error (0..255), the PSNR,
and the PSNR of showing the previous / next recorded frame instead (the floor a render must beat).
``--single-pass`` draws a world with a frame-local layer as one z-buffer of all its layers, the
way worlds were drawn before that layer existed. ``--frame N OUT.png``: render, truth and
|error| x 2 of held-out frame N stacked in one picture.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inspatio_ros.ingest.sources import open_input  # noqa: E402
from inspatio_ros.metrics import psnr  # noqa: E402
from inspatio_ros.render import Renderer  # noqa: E402
from inspatio_ros.video import write_png  # noqa: E402
from inspatio_ros.world import World  # noqa: E402

REGIONS = ("sky/shell >200 m", "near <8 m", "mid 8-25 m", "far 25-200 m", "hole-filled")


def regions(depth: np.ndarray, covered: np.ndarray) -> dict[str, np.ndarray]:
    d = np.where(np.isfinite(depth), depth, np.inf)
    return dict(zip(REGIONS, (d > 200, d < 8, (d >= 8) & (d < 25), (d >= 25) & (d <= 200), ~covered)))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("world")
    ap.add_argument("gt")
    ap.add_argument("--frame", nargs=2, metavar=("N", "OUT.png"))
    ap.add_argument("--single-pass", action="store_true")
    args = ap.parse_args()
    world = World.load(args.world)
    if args.single_pass:
        world.info.pop("frame_local", None)
    fs = open_input(args.gt)
    renderer = Renderer(world, "cpu")
    area = {r: [] for r in REGIONS}
    share = {r: [] for r in REGIONS}
    rms = {r: [] for r in REGIONS}
    scores, prev, nxt = [], [], []
    for k in range(len(world.heldout_c2w)):
        idx = int(world.heldout_index[k])
        truth = fs.load(idx)
        h, w = truth.shape[:2]
        out = renderer.render(renderer.cameras(world.heldout_c2w[k][None], world.intrinsics.scaled(w, h)),
                              float(world.heldout_time[k]))
        rgb, depth, covered = (a[0] for a in out.numpy())
        scores.append(psnr(rgb, truth))
        prev.append(psnr(fs.load(idx - 1), truth))
        nxt.append(psnr(fs.load(idx + 1), truth))
        err = (rgb.astype(np.float64) - truth.astype(np.float64)) ** 2
        err = err.mean(-1)
        for name, m in regions(depth, covered).items():
            area[name].append(m.mean())
            share[name].append(err[m].sum() / max(err.sum(), 1e-9))
            rms[name].append(float(np.sqrt(err[m].mean())) if m.any() else 0.0)
        if args.frame and idx == int(args.frame[0]):
            diff = np.clip(np.abs(rgb.astype(np.int16) - truth.astype(np.int16)).sum(-1) * 2 // 3, 0, 255)
            picture = np.concatenate([rgb, truth, np.repeat(diff.astype(np.uint8)[..., None], 3, -1)], 0)
            write_png(args.frame[1], picture)
    print(f"held-out frames {len(scores)}: PSNR {np.mean(scores):.2f} dB (previous frame shown instead: "
          f"{np.mean(prev):.2f}, next: {np.mean(nxt):.2f})")
    print(f"{'region':18s} {'area':>6s} {'error share':>12s} {'RMS':>6s}")
    for name in REGIONS:
        print(f"{name:18s} {np.mean(area[name]):6.3f} {np.mean(share[name]):12.3f} {np.mean(rms[name]):6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
