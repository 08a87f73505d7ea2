#!/usr/bin/env python3
"""Photometric statistics of clips, to compare real footage with synthetic clips.

What each number shows (medians over the sampled frames unless said otherwise):

  colour      whether the frames carry colour (max channel difference above 2 levels on 1 % of pixels)
  clipped %   pixels at 0-2 or 253-255 (a burnt-out sky, crushed shadows)
  noise       sensor noise in 8-bit levels: the robust std (1.4826 x MAD) of the image minus its
              3x3 median, over the flattest half of the pixels (edges excluded)
  gain jump % frame-to-frame change of the mean brightness, 90th percentile of |log ratio| (auto-exposure)
  sharpness   variance of the Laplacian of the gray image at 480 px wide (blur lowers it)
  corners     Shi-Tomasi corners (quality 0.01, 7 px apart) per 10 000 px at 480 px wide (texture)

    python tools/footage_stats.py CLIP [CLIP ...] [--every 3]

A CLIP is a folder with frames/, image_0/, images/, rgb/ ... or a video file.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from inspatio_ros.errors import InputError  # noqa: E402
from inspatio_ros.ingest.sources import FRAME_DIRS, IMAGE_SUFFIXES  # noqa: E402


def frames_of(clip: Path, every: int) -> list[np.ndarray]:
    """BGR uint8 frames of a folder clip or a video, every ``every``-th."""
    if clip.is_file():
        cap = cv2.VideoCapture(str(clip))
        out, i = [], 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            if i % every == 0:
                out.append(frame)
            i += 1
        if not out:
            raise InputError(f"video {clip} gave no frames", "give a video OpenCV can decode")
        return out
    folder = next((clip / d for d in FRAME_DIRS if (clip / d).is_dir()), None)
    if folder is None:
        raise InputError(f"clip {clip} has no frame folder", f"give a video or a folder with {', '.join(FRAME_DIRS)}/")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[::every]
    return [cv2.imread(str(f), cv2.IMREAD_COLOR) for f in files]


def _gray480(bgr: np.ndarray) -> np.ndarray:
    gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    scale = 480.0 / gray.shape[1]
    return cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def noise_level(gray: np.ndarray) -> float:
    g = gray.astype(np.float32)
    residual = g - cv2.medianBlur(gray, 3).astype(np.float32)
    gradient = np.abs(cv2.Sobel(g, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(g, cv2.CV_32F, 0, 1))
    flat = gradient <= np.median(gradient)
    r = residual[flat]
    return float(1.4826 * np.median(np.abs(r - np.median(r))))


def stats(frames: list[np.ndarray]) -> dict:
    colour, clipped, noise, sharp, corners, means = [], [], [], [], [], []
    for bgr in frames:
        diff = (bgr.max(axis=2).astype(np.int16) - bgr.min(axis=2)) > 2
        colour.append(diff.mean() > 0.01)
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        clipped.append(float(np.mean((gray <= 2) | (gray >= 253))))
        noise.append(noise_level(gray))
        small = _gray480(bgr)
        sharp.append(float(cv2.Laplacian(small, cv2.CV_64F).var()))
        pts = cv2.goodFeaturesToTrack(small, 5000, 0.01, 7)
        corners.append(0 if pts is None else len(pts) * 1e4 / small.size)
        means.append(float(gray.mean()) + 1e-3)
    jumps = np.abs(np.diff(np.log(means))) if len(means) > 1 else np.zeros(1)
    return {"frames": len(frames), "size": f"{frames[0].shape[1]}x{frames[0].shape[0]}",
            "colour": bool(np.mean(colour) > 0.5), "clipped_pct": 100 * float(np.median(clipped)),
            "noise": float(np.median(noise)), "gain_jump_pct": 100 * float(np.percentile(jumps, 90)),
            "sharpness": float(np.median(sharp)), "corners": float(np.median(corners))}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clips", nargs="+", type=Path)
    ap.add_argument("--every", type=int, default=3, help="use every N-th frame (default 3)")
    args = ap.parse_args(argv)
    print("| clip | frames used | size | colour | clipped % | noise (levels) | gain jump % (p90) | "
          "sharpness | corners / 10k px |")
    print("|---|---|---|---|---|---|---|---|---|")
    for clip in args.clips:
        s = stats(frames_of(clip, args.every))
        print(f"| {clip.name} | {s['frames']} | {s['size']} | {'yes' if s['colour'] else 'no'} | "
              f"{s['clipped_pct']:.2f} | {s['noise']:.2f} | {s['gain_jump_pct']:.2f} | {s['sharpness']:.0f} | "
              f"{s['corners']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
