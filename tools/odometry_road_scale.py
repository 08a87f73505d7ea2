"""Why the camera-height scale of monocular odometry is off: the landmarks it rests on.

    python tools/odometry_road_scale.py SYNTH_DIR

Runs the monocular odometry on SYNTH_DIR/video.mp4 with the intrinsics only, as ``build`` does,
then looks at the landmarks that ``scale_from_camera_height`` uses (those seen in the road
region: lower third, middle half of the columns) with the synthetic folder's truth, which the
odometry never sees: how many there are, how many lie on a moving object (dynamic_mask), and how
their depth in the observing camera compares with the exact depth at that pixel (after the
trajectory's similarity alignment). Prints the scale from the camera height against the true one.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inspatio_ros.camera import load_camera_info  # noqa: E402
from inspatio_ros.ingest import odometry as od  # noqa: E402
from inspatio_ros.posefile import read_poses  # noqa: E402
from inspatio_ros.video import read_image, read_video  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("synth_dir")
    ap.add_argument("--camera-height", type=float, default=1.5)
    args = ap.parse_args()
    d = Path(args.synth_dir)
    frames, _ = read_video(d / "video.mp4")
    intr = load_camera_info(d / "camera_info.yaml")
    gt, _ = read_poses(d / "poses_tum.txt")
    res = od.estimate_poses(lambda i: frames[i], len(frames), intr, progress_bar=False)
    s_true = od.umeyama(res.c2w[:, :3, 3], gt[:, :3, 3])[0]
    s_height = od.scale_from_camera_height(res, args.camera_height, intr)
    print(f"odometry: {res.report()}")
    print(f"ATE {100 * od.ate_rel(res.c2w, gt):.2f} %; scale from the camera height / true scale: "
          f"{(s_height or float('nan')) / s_true:.3f}")

    located = np.nonzero(res.located)[0]
    up = -res.c2w[located, :3, 1].mean(0)
    up /= np.linalg.norm(up)
    per_landmark: dict[int, list] = {}
    all_obs = on_moving = 0
    for i in located:
        ids, pts = res.observations[i]
        have, xyz = od.tracks_with_landmarks(ids, res.landmark_by_id)
        if not have.any():
            continue
        mask = read_image(d / "dynamic_mask" / f"{i:06d}.png")
        mask = (mask[..., 0] if mask.ndim == 3 else mask) > 0
        depth = np.load(d / "depth" / f"{i:06d}.npy")
        px = np.round(pts[have]).astype(int)
        px[:, 0] = px[:, 0].clip(0, intr.width - 1)
        px[:, 1] = px[:, 1].clip(0, intr.height - 1)
        moving = mask[px[:, 1], px[:, 0]]
        all_obs += len(px)
        on_moving += int(moving.sum())
        _, z = od.project_points(intr.K, res.c2w[i], xyz)
        p = pts[have]
        road = (p[:, 1] > intr.height * 2 / 3) & (np.abs(p[:, 0] - intr.cx) < intr.width / 4)
        for k in np.nonzero(road)[0]:
            t = int(ids[have][k])
            h = float((res.c2w[i, :3, 3] - xyz[k]) @ up) * s_true
            per_landmark.setdefault(t, []).append((h, z[k] * s_true / depth[px[k, 1], px[k, 0]], bool(moving[k]),
                                                   int(i), p[k].round(0)))
    print(f"landmark observations: {all_obs}, on the moving object: {on_moving} ({100 * on_moving / max(all_obs, 1):.1f} %)")
    obs = [o for v in per_landmark.values() for o in v]
    print(f"road region: {len(obs)} observations of {len(per_landmark)} landmarks, "
          f"{sum(o[2] for o in obs)} on the moving object")
    if obs:
        h = np.array([o[0] for o in obs])
        r = np.array([o[1] for o in obs])
        print(f"  height below the camera (true scale, truth {args.camera_height} m): "
              f"percentiles 10/25/50/75/90 {np.percentile(h, [10, 25, 50, 75, 90]).round(2)}")
        print(f"  landmark depth / exact depth: percentiles 10/25/50/75/90 {np.percentile(r, [10, 25, 50, 75, 90]).round(2)}")
        for t, v in sorted(per_landmark.items()):
            print(f"  landmark {t}: frames {[o[3] for o in v]}, pixel {v[0][4].tolist()}, height "
                  f"{np.median([o[0] for o in v]):.2f} m, depth ratio {np.median([o[1] for o in v]):.2f}")


if __name__ == "__main__":
    main()
