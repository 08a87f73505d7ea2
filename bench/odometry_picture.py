#!/usr/bin/env python3
"""Picture of an estimated trajectory against the truth (top view, after similarity alignment).

    python bench/odometry_picture.py WORLD.safetensors GT_DIR -o docs/images/odometry_street.png

WORLD: built with ``--poses estimate``; GT_DIR: the folder it was built from (its pose file is
the truth). Truth in green, estimate in red (held-out frames as rings), with a 1 m scale bar and
the ATE in the corner.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from inspatio_ros.ingest.odometry import ate_rel, umeyama  # noqa: E402
from inspatio_ros.ingest.sources import open_input  # noqa: E402
from inspatio_ros.posefile import read_poses  # noqa: E402
from inspatio_ros.world import World  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("world")
    ap.add_argument("gt")
    ap.add_argument("-o", "--output", default="docs/images/odometry_street.png")
    ap.add_argument("--size", type=int, default=900, help="picture width in pixels")
    args = ap.parse_args()
    world = World.load(args.world)
    fs = open_input(args.gt)
    truth_all, _ = read_poses(fs.poses)
    index = np.concatenate([world.frame_index, world.heldout_index]).astype(int)
    est = np.concatenate([world.frame_c2w, world.heldout_c2w])
    order = np.argsort(index)
    index, est = index[order], est[order]
    held = np.isin(index, world.heldout_index)
    truth = truth_all[index][:, :3, 3]
    s, R, t = umeyama(est[:, :3, 3], truth)
    aligned = (s * (R @ est[:, :3, 3].T)).T + t
    err = ate_rel(est, truth_all[index])

    # Top view: the two horizontal axes with the largest spread of the true path.
    spread = truth.max(0) - truth.min(0)
    ax = np.argsort(spread)[::-1][:2]
    lo = np.minimum(truth.min(0), aligned.min(0))[ax]
    hi = np.maximum(truth.max(0), aligned.max(0))[ax]
    span = max(hi - lo)
    pad = 0.08 * span
    W = args.size
    H = max(200, int(W * (hi[1] - lo[1] + 2 * pad) / (hi[0] - lo[0] + 2 * pad)))
    H = min(H, W)
    scale = min((W - 40) / (hi[0] - lo[0] + 2 * pad), (H - 40) / (hi[1] - lo[1] + 2 * pad))

    def px(p):
        return (20 + (p[ax[0]] - lo[0] + pad) * scale, H - 20 - (p[ax[1]] - lo[1] + pad) * scale)

    img = Image.new("RGB", (W, H), (24, 24, 28))
    draw = ImageDraw.Draw(img)
    for path, colour in ((truth, (90, 200, 110)), (aligned, (235, 80, 70))):
        draw.line([px(p) for p in path], fill=colour, width=3)
    for p, h in zip(aligned, held):
        x, y = px(p)
        r = 5 if h else 2
        draw.ellipse([x - r, y - r, x + r, y + r], outline=(255, 255, 255) if h else (235, 80, 70), width=2)
    x0, y0 = 20, H - 12
    draw.line([(x0, y0), (x0 + scale, y0)], fill=(230, 230, 230), width=3)
    draw.text((x0 + scale + 6, y0 - 10), "1 m", fill=(230, 230, 230))
    draw.text((10, 8), f"truth (green) vs estimate (red, similarity-aligned); rings: held-out frames. "
                       f"ATE {100 * err:.3f} % of {np.sum(np.linalg.norm(np.diff(truth, axis=0), axis=1)):.1f} m",
              fill=(230, 230, 230))
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    tmp = args.output + ".tmp.png"
    img.save(tmp)
    os.replace(tmp, args.output)
    print(f"wrote {args.output}: ATE {100 * err:.3f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
