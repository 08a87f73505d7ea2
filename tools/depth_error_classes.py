"""Where a world's held-out depth goes wrong on a synthetic scene: AbsRel split by what the truth shows.

    python tools/depth_error_classes.py WORLD SCENE_DIR [--picture FRAME OUT.png]

Renders every held-out frame as ``eval`` does and compares the depth with the scene's truth. Each
scored pixel (both depths finite) is put in one class by the truth: the road (a true point less
than 5 cm above the ground plane z = 0 of the synthetic world), the moving objects (the scene's
dynamic_mask), and everything else by true depth (near < 10 m, mid 10-25 m, far > 25 m). Prints,
per class, its share of the scored pixels, its mean AbsRel, its share of the world's AbsRel (the
shares add up to the world's AbsRel) and the median rendered/true depth ratio (< 1: too near).
Worlds with estimated poses are scored both as rendered and after the trajectory's similarity
scale, like ``eval``'s ``depth_absrel_aligned``. ``--picture FRAME OUT.png``: for held-out frame
FRAME, the render, the truth's depth and the signed depth error (red: too far, blue: too near).
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inspatio_ros.ingest.odometry import umeyama  # noqa: E402
from inspatio_ros.ingest.sources import DepthMaps, open_input  # noqa: E402
from inspatio_ros.posefile import read_poses  # noqa: E402
from inspatio_ros.render import Renderer  # noqa: E402
from inspatio_ros.video import read_image, write_png  # noqa: E402
from inspatio_ros.world import World  # noqa: E402

CLASSES = ("road", "moving", "near <10 m", "mid 10-25 m", "far >25 m")


def classify(true_depth: np.ndarray, true_c2w: np.ndarray, intr, moving: np.ndarray) -> np.ndarray:
    """Class index (into CLASSES) of every pixel by the truth."""
    h, w = true_depth.shape
    v, u = np.mgrid[0:h, 0:w].astype(np.float64)
    z = np.where(np.isfinite(true_depth), true_depth, 0.0)
    cam = np.stack([(u - intr.cx) / intr.fx * z, (v - intr.cy) / intr.fy * z, z], -1)
    height = cam @ true_c2w[:3, :3].T[:, 2] + true_c2w[2, 3]
    cls = np.where(true_depth < 10, 2, np.where(true_depth < 25, 3, 4))
    cls = np.where(height < 0.05, 0, cls)
    return np.where(moving, 1, cls)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("world")
    ap.add_argument("scene")
    ap.add_argument("--picture", nargs=2, metavar=("FRAME", "OUT.png"))
    args = ap.parse_args()
    world = World.load(args.world)
    scene = Path(args.scene)
    fs = open_input(scene)
    depth_maps = DepthMaps(fs.depth_dir, fs.names)
    true_c2w, _ = read_poses(fs.poses)
    scale = 1.0
    if str(world.info.get("pose_source", "")).startswith("estimated"):
        idx, est, _ = world.camera_path()
        scale = umeyama(est[:, :3, 3], true_c2w[idx, :3, 3])[0]
    renderer = Renderer(world, "auto")
    intr = world.intrinsics
    sums = {"as rendered": np.zeros(len(CLASSES)), "aligned": np.zeros(len(CLASSES))}
    counts = np.zeros(len(CLASSES))
    ratios: list[list[np.ndarray]] = [[] for _ in CLASSES]
    for k in range(len(world.heldout_c2w)):
        i = int(world.heldout_index[k])
        out = renderer.render(renderer.cameras(world.heldout_c2w[k][None], intr), float(world.heldout_time[k]))
        rgb, depth, _ = (a[0] for a in out.numpy())
        truth = depth_maps.load(i, depth.shape)
        mask_path = scene / "dynamic_mask" / f"{fs.names[i]}.png"
        moving = read_image(mask_path)[..., 0] > 127 if mask_path.exists() else np.zeros(depth.shape, bool)
        cls = classify(truth, true_c2w[i], intr, moving)
        ok = np.isfinite(depth) & np.isfinite(truth) & (depth > 0) & (truth > 0)
        for name, factor in (("as rendered", 1.0), ("aligned", scale)):
            rel = np.abs(depth * factor - truth) / np.where(ok, truth, 1.0)
            sums[name] += np.bincount(cls[ok], rel[ok], len(CLASSES))
        counts += np.bincount(cls[ok], minlength=len(CLASSES))
        for c in range(len(CLASSES)):
            sel = ok & (cls == c)
            ratios[c].append(depth[sel] * scale / truth[sel])
        if args.picture and fs.names[i] == args.picture[0]:
            err = np.where(ok, np.clip((depth * scale - truth) / np.where(ok, truth, 1.0), -0.5, 0.5) / 0.5, 0.0)
            pic = np.zeros(depth.shape + (3,), np.uint8)
            pic[..., 0] = (255 * np.clip(err, 0, 1)).astype(np.uint8)
            pic[..., 2] = (255 * np.clip(-err, 0, 1)).astype(np.uint8)
            near = np.where(np.isfinite(truth), np.clip(1.0 - np.log1p(truth) / np.log1p(80.0), 0, 1), 0)
            grey = np.repeat((255 * near)[..., None], 3, -1).astype(np.uint8)
            write_png(args.picture[1], np.concatenate([rgb, grey, pic], 0))
    total = counts.sum()
    print(f"world {args.world}: {len(world.heldout_c2w)} held-out frames, {int(total)} scored pixels"
          + (f", similarity scale {scale:.4f}" if scale != 1.0 else ""))
    print(f"{'class':<14}{'pixels':>8}{'AbsRel':>9}{'share':>8}{'aligned':>9}{'share':>8}{'ratio':>8}")
    for c, name in enumerate(CLASSES):
        if counts[c] == 0:
            continue
        ratio = float(np.median(np.concatenate(ratios[c])))
        print(f"{name:<14}{counts[c] / total:>8.1%}{sums['as rendered'][c] / counts[c]:>9.3f}"
              f"{sums['as rendered'][c] / total:>8.3f}{sums['aligned'][c] / counts[c]:>9.3f}"
              f"{sums['aligned'][c] / total:>8.3f}{ratio:>8.3f}")
    print(f"{'all':<14}{1:>8.0%}{sums['as rendered'].sum() / total:>9.3f}{'':>8}{sums['aligned'].sum() / total:>9.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
