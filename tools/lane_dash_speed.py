#!/usr/bin/env python3
"""An independent check of a driving world's scale: the ego's speed from the period of dashed lane
lines passing under the camera, compared with the speed of the world's camera path.

Why: a video's odometry gets its scale from an assumed camera height, and under forward motion the
ratio of distance driven to camera height grows with the focal length used (a ground point at depth
Z is seen f*h/Z below the horizon, so t/h = f * (1/y - 1/y')). When the focal length is only a prior
(no intrinsics given, a straight drive that does not fix it), the world's speed is off by the same
factor as the prior. Dashed lane lines repeat at a standard length (US MUTCD: 10 ft line + 30 ft gap
= 12.19 m; California: 12 ft + 36 ft = 14.63 m), so the time between two dashes passing a fixed image
row gives the speed without any camera model. It is a check for people, not a build input: the
cycle length is regional, so the tool prints the speed for each cycle it is given.

How: white-line response (a morphological top-hat) in the lower part of each frame; every pixel
whose response varies in time contributes its autocorrelation over the frames; dashes make a peak
at their period (refined to a fraction of a frame). Windows along the clip show whether the speed
holds.

    python tools/lane_dash_speed.py ../shared/data/udacity_solidWhiteRight/solidWhiteRight.mp4 \\
        [--world W.safetensors] [--cycle-m 12.19 14.63] [--window-s 3]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Dash periods outside this range (frames at the video's rate) are not searched: a period of one
# or two frames cannot be told from flicker, and a window must hold at least two periods.
MIN_PERIOD_FRAMES = 3


def read_gray(path: str, width: int = 320) -> tuple[np.ndarray, float]:
    """(frames, H, W) float32 grey frames scaled to ``width`` and the video's frame rate."""
    import cv2

    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        raise SystemExit(f"{path}: cannot be read as a video (check the path and that OpenCV can decode it)")
    fps = float(cap.get(cv2.CAP_PROP_FPS)) or 0.0
    frames = []
    while True:
        ok, bgr = cap.read()
        if not ok:
            break
        grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        h = round(grey.shape[0] * width / grey.shape[1])
        frames.append(cv2.resize(grey, (width, h), interpolation=cv2.INTER_AREA).astype(np.float32))
    if len(frames) < 4 * MIN_PERIOD_FRAMES or fps <= 0:
        raise SystemExit(f"{path}: {len(frames)} frames at {fps} fps: too short to see dashes pass")
    return np.stack(frames), fps


def line_response(frames: np.ndarray, lower_fraction: float = 0.3) -> np.ndarray:
    """(frames, pixels) bright-thin-line response in the lowest ``lower_fraction`` of the image
    (the road just ahead, where dashes move fastest and are widest)."""
    import cv2

    h = frames.shape[1]
    top = int(round(h * (1.0 - lower_fraction)))
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (9, 1))     # wider than a line, narrower than a car
    out = [cv2.morphologyEx(f[top:], cv2.MORPH_TOPHAT, kernel) for f in frames]
    return np.stack(out).reshape(len(frames), -1)


def dash_period(signal: np.ndarray, max_period: int) -> tuple[float, float]:
    """(period in frames, peak autocorrelation) of the strongest repetition common to the pixels
    of ``signal`` (frames, pixels); (nan, 0) when nothing repeats."""
    x = signal - signal.mean(axis=0)
    var = (x * x).sum(axis=0)
    if not np.any(var > 0):
        return float("nan"), 0.0
    # Pixels a dash crosses vary most; the steady solid line and flat asphalt vary least.
    keep = var >= np.quantile(var, 0.9)
    x = x[:, keep]
    n = len(x)
    spec = np.fft.rfft(x, n=2 * n, axis=0)
    ac = np.fft.irfft(spec * np.conj(spec), axis=0)[:n].sum(axis=1)
    ac = ac / ac[0]
    # Normalise for the shrinking overlap so later lags are not penalised.
    ac = ac * n / (n - np.arange(n))
    hi = min(max_period, n // 2)
    if hi <= MIN_PERIOD_FRAMES:
        return float("nan"), 0.0
    lags = np.arange(MIN_PERIOD_FRAMES, hi)
    peaks = [int(k) for k in lags if ac[k] >= ac[k - 1] and ac[k] >= ac[k + 1] and ac[k] > 0]
    if not peaks:
        return float("nan"), float(ac[lags].max())
    # The strongest repetition, or its half where that repeats nearly as strongly (a peak at twice
    # the period is the same dashes one cycle later).
    k = max(peaks, key=lambda q: ac[q])
    while True:
        half = [q for q in peaks if abs(2 * q - k) <= 1 and ac[q] >= 0.8 * ac[k]]
        if not half:
            break
        k = half[0]
    a, b, c = ac[k - 1], ac[k], ac[k + 1]
    shift = 0.5 * (a - c) / (a - 2 * b + c) if (a - 2 * b + c) != 0 else 0.0
    return float(k + np.clip(shift, -0.5, 0.5)), float(b)


def world_speed(world_path: str, windows: list[tuple[float, float]] = ()) -> dict:
    """Length, duration and mean speed of a world's recorded camera path (held-out frames
    included), in the world's units (metres unless the build flagged it unscaled), and its mean
    speed in each (start, end) window of the recording's time."""
    from inspatio_ros.world import World

    world = World.load(world_path)
    _, c2w, _ = world.camera_path()
    times = np.sort(np.concatenate([world.frame_time, world.heldout_time]))
    steps = np.linalg.norm(np.diff(c2w[:, :3, 3], axis=0), axis=1)
    duration = float(times[-1] - times[0])
    per_window = []
    for start, end in windows:
        inside = (times[:-1] >= times[0] + start) & (times[1:] <= times[0] + end)
        span = float(np.sum(np.diff(times)[inside]))
        per_window.append(float(steps[inside].sum() / span) if span > 0 else float("nan"))
    return {"path_m": float(steps.sum()), "duration_s": duration,
            "speed_mps": float(steps.sum() / duration) if duration > 0 else float("nan"),
            "window_speed_mps": per_window, "unscaled": bool(world.info.get("unscaled", False))}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("video")
    ap.add_argument("--world", default="", help="a world built from the video: its camera path's speed is compared")
    ap.add_argument("--cycle-m", type=float, nargs="+", default=[12.19, 14.63],
                    help="dash + gap lengths to report the speed for (default: US MUTCD 12.19 m, California 14.63 m)")
    ap.add_argument("--window-s", type=float, default=3.0, help="window length along the clip (s)")
    ap.add_argument("--json", default="", help="write the results here")
    a = ap.parse_args(argv)

    frames, fps = read_gray(a.video)
    response = line_response(frames)
    window = max(4 * MIN_PERIOD_FRAMES, int(round(a.window_s * fps)))
    max_period = window // 2
    rows = []
    for start in range(0, len(frames) - window + 1, max(1, window // 2)):
        period, strength = dash_period(response[start:start + window], max_period)
        rows.append({"start_s": start / fps, "period_frames": period, "strength": strength})
    whole, strength = dash_period(response, max_period)
    result = {"video": a.video, "fps": fps, "frames": len(frames), "period_frames": whole, "strength": strength,
              "windows": rows,
              "speed_mps": {f"{c:g}": (c * fps / whole if np.isfinite(whole) else None) for c in a.cycle_m}}
    print(f"{a.video}: {len(frames)} frames at {fps:g} fps; dashes pass every {whole:.2f} frames "
          f"(autocorrelation {strength:.2f})")
    for c in a.cycle_m:
        v = c * fps / whole
        print(f"  with a {c:g} m dash cycle: {v:.1f} m/s ({3.6 * v:.0f} km/h)")
    print("  windows: " + ", ".join(f"{r['start_s']:.1f} s: {r['period_frames']:.2f}" for r in rows))
    if a.world:
        ws = world_speed(a.world, [(r["start_s"], r["start_s"] + window / fps) for r in rows])
        result["world"] = ws
        ratios = ", ".join(f"{ws['speed_mps'] / (c * fps / whole):.2f} ({c:g} m)" for c in a.cycle_m)
        print(f"  world {a.world}: {ws['path_m']:.1f} m in {ws['duration_s']:.2f} s = {ws['speed_mps']:.1f} m/s; "
              f"world / dashes: {ratios}")
        # The dashes' speed per window over the world's: constant when the world's scale holds.
        drift = [v * p / fps for v, p in zip(ws["window_speed_mps"], (r["period_frames"] for r in rows))]
        print("  world speed x dash period per window (m per dash cycle; constant if the scale holds): "
              + ", ".join(f"{r['start_s']:.1f} s: {d:.2f}" for r, d in zip(rows, drift)))
    if a.json:
        from inspatio_ros.fileio import atomic_write_text

        atomic_write_text(a.json, json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
