#!/usr/bin/env python3
"""Where a synthetic scene's moving objects ended up in a world built from it (not a test).

    python tools/dynamic_layer_report.py WORLD SYNTH_DIR

Projects every point into the fused frame it came from and looks it up in that frame's
ground-truth ``dynamic_mask/`` (which the build never reads). Prints, per layer (static, moving
objects, frame-local), how many points there are and how many lie on a moving object, and per
fused frame the share of the object's pixels that went into the moving-object layer (recall).
Moving-object points and frame-local points share the world's dynamic arrays; they are told apart
by their life span (frame-local points live from the previous fused frame to the next one, moving
objects about one frame interval)."""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inspatio_ros.video import read_image  # noqa: E402
from inspatio_ros.world import World  # noqa: E402


def pixels_of(world: World, xyz: np.ndarray, frames: np.ndarray):
    """(frame, v, u) of each point in the camera of the frame it came from."""
    intr = world.intrinsics
    c2w_of = dict(zip(world.frame_index.tolist(), world.frame_c2w))
    u = np.zeros(len(xyz), int)
    v = np.zeros(len(xyz), int)
    for f in np.unique(frames):
        sel = frames == f
        c = c2w_of[int(f)]
        pc = (xyz[sel] - c[:3, 3]) @ c[:3, :3]
        u[sel] = np.clip(np.round(pc[:, 0] / pc[:, 2] * intr.fx + intr.cx).astype(int), 0, intr.width - 1)
        v[sel] = np.clip(np.round(pc[:, 1] / pc[:, 2] * intr.fy + intr.cy).astype(int), 0, intr.height - 1)
    return u, v


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("world")
    ap.add_argument("synth_dir", type=Path)
    args = ap.parse_args()
    world = World.load(args.world)
    masks = {}

    def mask(f: int) -> np.ndarray:
        if f not in masks:
            masks[f] = read_image(args.synth_dir / "dynamic_mask" / f"{f:06d}.png")[..., 0] > 0
        return masks[f]

    def on_object(xyz, frames):
        u, v = pixels_of(world, xyz, frames)
        hits = np.zeros(len(xyz), bool)
        for f in np.unique(frames):
            sel = frames == f
            hits[sel] = mask(int(f))[v[sel], u[sel]]
        return hits, u, v

    span = world.dynamic_t_end - world.dynamic_t_start
    local = np.isfinite(span) & (span > 0.15) if world.info.get("frame_local") else np.zeros(len(span), bool)
    layers = {"static": (world.static_xyz, world.static_frame),
              "moving objects": (world.dynamic_xyz[~local], world.dynamic_frame[~local]),
              "frame-local": (world.dynamic_xyz[local], world.dynamic_frame[local])}
    print("| layer | points | on a moving object | share |")
    print("|---|---:|---:|---:|")
    moving_hits = None
    for name, (xyz, frames) in layers.items():
        if not len(xyz):
            print(f"| {name} | 0 | 0 | - |")
            continue
        hits, u, v = on_object(xyz, frames)
        if name == "moving objects":
            moving_hits = (frames, u, v, hits)
        print(f"| {name} | {len(xyz):,} | {int(hits.sum()):,} | {hits.mean():.3f} |")
    recalls = []
    for f in world.frame_index.tolist():
        m = mask(int(f))
        if not m.any():
            continue
        got = np.zeros_like(m)
        if moving_hits is not None:
            frames, u, v, _ = moving_hits
            sel = frames == f
            got[v[sel], u[sel]] = True
        recalls.append((got & m).sum() / m.sum())
    if recalls:
        r = np.array(recalls)
        print(f"moving-object pixels in the moving layer, per fused frame: mean {r.mean():.2f}, "
              f"median {np.median(r):.2f}, frames with none {int((r == 0).sum())} of {len(r)}")


if __name__ == "__main__":
    main()
