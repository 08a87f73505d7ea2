#!/usr/bin/env python3
"""Picture of an estimated trajectory against the truth (top view, after similarity alignment).

    python tools/odometry_picture.py WORLD.safetensors GT_DIR -o docs/images/odometry_street.png

WORLD: built with ``--poses estimate``; GT_DIR: the folder it was built from (its pose file is
the truth). Drawn by the build preview's trajectory_picture, with the ATE in the title.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from inspatio_ros.ingest.odometry import ate_rel  # noqa: E402
from inspatio_ros.ingest.preview import trajectory_picture  # noqa: E402
from inspatio_ros.ingest.sources import open_input  # noqa: E402
from inspatio_ros.posefile import read_poses  # noqa: E402
from inspatio_ros.video import write_png  # noqa: E402
from inspatio_ros.world import World  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("world")
    ap.add_argument("gt")
    ap.add_argument("-o", "--output", default="docs/images/odometry_street.png")
    ap.add_argument("--size", type=int, default=900, help="picture width in pixels")
    args = ap.parse_args()
    world = World.load(args.world)
    truth_all, _ = read_poses(open_input(args.gt).poses)
    index, c2w, held = world.camera_path()
    truth = truth_all[index]
    err = ate_rel(c2w, truth)
    length = float(np.sum(np.linalg.norm(np.diff(truth[:, :3, 3], axis=0), axis=1)))
    title = (f"truth (green) vs estimate (red, similarity-aligned); rings: held-out frames. "
             f"ATE {100 * err:.3f} % of {length:.1f} m")
    write_png(args.output, trajectory_picture(c2w, held, truth, width=args.size, title=title))
    print(f"wrote {args.output}: ATE {100 * err:.3f} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
