#!/usr/bin/env python3
"""Check that a clip's ground-truth poses belong to its frames, from the images alone.

For frame pairs a few frames apart it estimates the relative camera rotation and the direction
of travel from the images (SIFT matches, RANSAC essential matrix with the clip's intrinsics) and
compares them with the same quantities of the ground-truth poses. Poses that belong to other
frames (another sequence, an offset of a few frames, a different camera of the rig, a wrong
pose convention) disagree by degrees; poses that belong agree to a fraction of a degree, up to
the essential matrix's own noise.

    python tools/check_clip_ground_truth.py CLIP_DIR [--gap 3] [--offsets -2,-1,0,1,2]

CLIP_DIR holds the frames (frames/, image_0/, images/, rgb/ ...), camera_info.yaml and a pose
file (poses_gt.txt, KITTI, TUM or 4x4 per frame, camera-to-world in OpenCV axes). --offsets also
scores the poses shifted by a few frames: the true alignment must be the clear best.
Exit status 1 when the median rotation error at offset 0 exceeds --max-deg.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from inspatio_ros.camera import load_camera_info  # noqa: E402
from inspatio_ros.errors import InputError  # noqa: E402
from inspatio_ros.ingest.sources import FRAME_DIRS, IMAGE_SUFFIXES, POSE_FILES  # noqa: E402
from inspatio_ros.posefile import read_poses  # noqa: E402


def _angle_deg(r: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0))))


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v)
    return v / n if n > 0 else v


def image_motion(img_a: np.ndarray, img_b: np.ndarray, k: np.ndarray, sift) -> tuple[np.ndarray, np.ndarray, int]:
    """Relative rotation R and unit translation t with x_b = R x_a + t (camera a to camera b),
    and the number of RANSAC inliers."""
    kp_a, des_a = sift.detectAndCompute(img_a, None)
    kp_b, des_b = sift.detectAndCompute(img_b, None)
    if des_a is None or des_b is None:
        return np.eye(3), np.zeros(3), 0
    matches = cv2.BFMatcher(cv2.NORM_L2).knnMatch(des_a, des_b, k=2)
    good = [m for m, n in (p for p in matches if len(p) == 2) if m.distance < 0.75 * n.distance]
    if len(good) < 15:
        return np.eye(3), np.zeros(3), len(good)
    pa = np.float64([kp_a[m.queryIdx].pt for m in good])
    pb = np.float64([kp_b[m.trainIdx].pt for m in good])
    try:
        e, mask = cv2.findEssentialMat(pa, pb, k, method=cv2.RANSAC, prob=0.999, threshold=1.0)
    except cv2.error:       # a degenerate sample (e.g. matches on one line): no measurement
        return np.eye(3), np.zeros(3), 0
    if e is None or e.shape != (3, 3):
        return np.eye(3), np.zeros(3), 0
    inliers, r, t, _ = cv2.recoverPose(e, pa, pb, k, mask=mask)
    return r, t.ravel(), int(inliers)


def truth_motion(c2w_a: np.ndarray, c2w_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same quantities from camera-to-world poses: x_b = R x_a + t."""
    rel = np.linalg.inv(c2w_b) @ c2w_a
    return rel[:3, :3], rel[:3, 3]


def check(clip: Path, gap: int, offsets: list[int], stride: int) -> dict[int, dict]:
    frame_dir = next((clip / d for d in FRAME_DIRS if (clip / d).is_dir()), None)
    if frame_dir is None:
        raise InputError(f"clip {clip} has no frame folder", f"put its frames in one of {', '.join(FRAME_DIRS)}/")
    files = sorted(p for p in frame_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    pose_file = next((clip / p for p in POSE_FILES if (clip / p).exists()), None)
    if pose_file is None:
        raise InputError(f"clip {clip} has no pose file", f"give one of {', '.join(POSE_FILES)}")
    if not (clip / "camera_info.yaml").exists():
        raise InputError(f"clip {clip} has no camera_info.yaml", "the check needs the clip's intrinsics")
    poses, _ = read_poses(pose_file)
    if len(poses) != len(files):
        raise InputError(f"{pose_file} holds {len(poses)} poses for {len(files)} frames",
                         "give one pose per frame, in frame order")
    cam = load_camera_info(clip / "camera_info.yaml")
    k = np.array([[cam.fx, 0, cam.cx], [0, cam.fy, cam.cy], [0, 0, 1]], np.float64)
    sift = cv2.SIFT_create(nfeatures=3000)
    gray = [cv2.imread(str(f), cv2.IMREAD_GRAYSCALE) for f in files]
    pairs = [(i, i + gap) for i in range(0, len(files) - gap, stride)]
    measured = {(i, j): image_motion(gray[i], gray[j], k, sift) for i, j in pairs}
    results = {}
    for off in offsets:
        rot_err, dir_err, truth_rot = [], [], []
        for (i, j), (r_img, t_img, inliers) in measured.items():
            a, b = i + off, j + off
            if inliers < 15 or not (0 <= a < len(poses) and 0 <= b < len(poses)):
                continue
            r_gt, t_gt = truth_motion(poses[a], poses[b])
            rot_err.append(_angle_deg(r_img.T @ r_gt))
            truth_rot.append(_angle_deg(r_gt))
            if np.linalg.norm(t_gt) > 0.05:   # direction of travel only where the camera moved
                dir_err.append(float(np.degrees(np.arccos(np.clip(_unit(t_img) @ _unit(t_gt), -1, 1)))))
        results[off] = {"pairs": len(rot_err),
                        "rotation_err_deg_median": float(np.median(rot_err)) if rot_err else float("nan"),
                        "rotation_err_deg_max": float(np.max(rot_err)) if rot_err else float("nan"),
                        "direction_err_deg_median": float(np.median(dir_err)) if dir_err else float("nan"),
                        "truth_rotation_deg_median": float(np.median(truth_rot)) if truth_rot else float("nan")}
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("clip", type=Path)
    ap.add_argument("--gap", type=int, default=3, help="frames between the two images of a pair (default 3)")
    ap.add_argument("--stride", type=int, default=2, help="first frames of the pairs this far apart (default 2)")
    ap.add_argument("--offsets", default="-2,-1,0,1,2", help="pose index shifts to score (default -2..2)")
    ap.add_argument("--max-deg", type=float, default=0.5, help="largest median rotation error that passes")
    args = ap.parse_args(argv)
    offsets = [int(v) for v in args.offsets.split(",")]
    if 0 not in offsets:
        offsets.append(0)
    results = check(args.clip, args.gap, offsets, args.stride)
    print(f"{args.clip}: frame pairs {args.gap} apart, image motion vs ground truth")
    print("offset  pairs  rot err median / max (deg)  travel dir err median (deg)  truth rotation median (deg)")
    for off, r in sorted(results.items()):
        print(f"{off:+6d}  {r['pairs']:5d}  {r['rotation_err_deg_median']:8.3f} / {r['rotation_err_deg_max']:6.3f}"
              f"          {r['direction_err_deg_median']:8.3f}                    {r['truth_rotation_deg_median']:8.3f}")
    ok = results[0]["rotation_err_deg_median"] <= args.max_deg
    print("ground truth belongs to the frames" if ok else "ground truth does NOT match the frames")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
