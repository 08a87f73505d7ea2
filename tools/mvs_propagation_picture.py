"""Picture of MVS depth before and after propagation on one frame of a synthetic scene.

    python tools/mvs_propagation_picture.py SYNTH_DIR FRAME OUT.png [--holdout 5]

Top: the frame and its exact depth; bottom: MVS depth from matching alone and after propagation
(inverse-depth colours, near = yellow; black: unknown; blue: sky; green outline: moving-object
mask). Prints coverage and AbsRel of both against the exact depth. Poses: the folder's (given).
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inspatio_ros.camera import load_camera_info  # noqa: E402
from inspatio_ros.ingest.mvs import MVSSettings, dense_depth  # noqa: E402
from inspatio_ros.posefile import read_poses  # noqa: E402
from inspatio_ros.video import read_image, write_png  # noqa: E402


def colour(depth: np.ndarray) -> np.ndarray:
    import cv2

    inv = np.where(np.isfinite(depth), 1.0 / np.maximum(np.where(np.isfinite(depth), depth, 1.0), 1e-3), 0.0)
    img = cv2.applyColorMap((np.clip(inv / 0.5, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)[..., ::-1].copy()
    img[~np.isfinite(depth)] = 0
    img[np.isposinf(depth)] = (0, 128, 255)
    return img


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("folder")
    ap.add_argument("frame", type=int)
    ap.add_argument("out")
    ap.add_argument("--holdout", type=int, default=5)
    args = ap.parse_args()
    folder = Path(args.folder)
    intr = load_camera_info(folder / "camera_info.yaml")
    c2w, _ = read_poses(folder / "poses_kitti.txt")
    names = sorted((folder / "frames").glob("*.png"))
    sources = [i for i in range(len(names)) if args.holdout < 2 or i % args.holdout != args.holdout - 1]
    truth = np.load(folder / "depth" / f"{names[args.frame].stem}.npy")
    rows = []
    for propagate in (0, MVSSettings.propagate):
        result = dense_depth(lambda i: read_image(names[i]), c2w, intr, [args.frame], MVSSettings(propagate=propagate),
                             progress_bar=False, sources=sources)
        d, moving = result.maps[args.frame][0], result.moving
        both = np.isfinite(d) & np.isfinite(truth)
        err = np.abs(d[both] - truth[both]) / truth[both]
        print(f"propagate {propagate}: coverage {np.isfinite(d).mean():.3f}, AbsRel {err.mean():.3f}, "
              f"median {np.median(err):.3f}, moving pixels {int(moving[args.frame].sum())}")
        img = colour(d)
        m = moving[args.frame]
        edge = m & ~np.pad(m, 1)[2:, 1:-1] | m & ~np.pad(m, 1)[:-2, 1:-1] | m & ~np.pad(m, 1)[1:-1, 2:] | m & ~np.pad(m, 1)[1:-1, :-2]
        img[edge] = (0, 255, 0)
        rows.append(img)
    top = np.hstack([read_image(names[args.frame]), colour(truth)])
    write_png(args.out, np.vstack([top, np.hstack(rows)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
