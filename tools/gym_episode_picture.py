#!/usr/bin/env python3
"""Picture of one inspatio_ros/Drive-v0 episode: camera frames along it, and the path from above.

The baseline controller (pure pursuit + speed PID) drives the embedded default world from a start
``--lateral-offset`` metres left of the recorded path. Top: the front camera's observation every
``--every`` steps. Bottom: the recorded path (grey) and the ego's trace (red) from above, with the
lateral axis stretched ``--stretch`` times so that decimetres show.

    python tools/gym_episode_picture.py -o docs/images/gym-baseline-episode.png
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from inspatio_ros.agents.controllers import BaselineController  # noqa: E402
from inspatio_ros.agents.gym_env import DriveEnv  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--lateral-offset", type=float, default=1.0)
    ap.add_argument("--every", type=int, default=8, help="steps between the frames shown")
    ap.add_argument("--stretch", type=float, default=10.0, help="lateral exaggeration of the top-down plot")
    args = ap.parse_args()

    env = DriveEnv(device="cpu", observe=("image",))
    driver = BaselineController(env.path, cruise_speed=6.0)
    obs, info = env.reset(seed=0, options={"start_time": 0.0, "lateral_offset": args.lateral_offset,
                                           "heading_offset": 0.0})
    frames, trace = [obs["front_image"]], [(info["progress_m"], info["cross_track_m"])]
    step, done = 0, False
    while not done:
        cmd = driver(env.ego, env.dt)
        obs, _, terminated, truncated, info = env.step([cmd.steering, cmd.acceleration])
        done = terminated or truncated
        step += 1
        trace.append((info["progress_m"], info["cross_track_m"]))
        if step % args.every == 0:
            frames.append(obs["front_image"])
    # How close it holds the path once it has converged: the second half of the drive.
    worst = max(abs(c) for d, c in trace if d >= trace[-1][0] / 2)
    h, w = frames[0].shape[:2]
    frames = frames[:6]
    width = w * len(frames)
    plot_h = 160
    canvas = Image.new("RGB", (width, h + plot_h), "white")
    for i, f in enumerate(frames):
        canvas.paste(Image.fromarray(f), (i * w, 0))
    draw = ImageDraw.Draw(canvas)
    s = np.array([p[0] for p in trace])
    e = np.array([p[1] for p in trace])
    length = env.path.length
    mid = h + plot_h // 2

    def to_px(si, ei):
        return 10 + (width - 20) * si / length, mid - ei * args.stretch * 6.0

    draw.line([to_px(0, 0), to_px(length, 0)], fill=(150, 150, 150), width=3)
    draw.line([to_px(a, b) for a, b in zip(s, e)], fill=(220, 30, 30), width=2)
    draw.text((10, h + 6), f"recorded path (grey) and the baseline's trace (red), lateral x{args.stretch:g}; "
                           f"start {args.lateral_offset:+.1f} m; second half within {worst:.2f} m; {s[-1]:.1f} m driven",
              fill=(0, 0, 0))
    canvas.save(args.output)
    print(f"wrote {args.output}: {step} steps, {s[-1]:.1f} of {length:.1f} m, max |cross-track| over the "
          f"second half {worst:.3f} m")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
