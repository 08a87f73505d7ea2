"""Simulated LiDAR against the synthetic street's exact ray caster: range error per model, and a
picture (docs/images/lidar_street.png).

Makes a static synthetic street (``--seed``), builds a world from its exact depth and poses,
sweeps each LiDAR preset from the ego at several source frames (still, then at 10 m/s with the
sweep's sectors rendered from the ego pose of their moment) and compares every return's range
with the ray caster's along the same beam from the same pose. Prints a Markdown table (returns,
median / p90 relative error, share within 2 % and 5 %, CPU-ms per sweep) and draws, from above,
one VLP-16 sweep coloured by its error (green < 1 %, yellow < 5 %, red otherwise) next to the same
sweep coloured by intensity.

usage: python tools/lidar_report.py [--seed 3] [--out docs/images/lidar_street.png] [--device cpu]
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image as PILImage, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from inspatio_ros.cli import main as cli  # noqa: E402
from inspatio_ros.sim.lidar import PRESETS, load_lidars  # noqa: E402
from inspatio_ros.sim.rig import load_rig  # noqa: E402
from inspatio_ros.sim.simulator import Simulator  # noqa: E402
from inspatio_ros.synth.generate import generate, load_scene  # noqa: E402
from inspatio_ros.world import World  # noqa: E402


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def errors(sim: Simulator, scene, lidar, sector_poses) -> tuple[np.ndarray, np.ndarray]:
    """(relative error, inf where the truth is sky; xyz in the link frame as fired) of a sweep."""
    p = lidar.points
    xyz = np.stack([p["x"], p["y"], p["z"]], 1).astype(np.float64)
    dist = np.linalg.norm(xyz, axis=1)
    sampler = sim.lidar_sampler(lidar.spec.name)
    column = np.round(np.asarray(p["time"] if "time" in p.dtype.names else p["time_stamp"] * 1e-9, np.float64)
                      * lidar.spec.columns * lidar.spec.rate_hz).astype(int)
    pose = sim.world_from_map @ sector_poses[sampler.column_sector[np.clip(column, 0, lidar.spec.columns - 1)]]
    dirs = np.einsum("nij,nj->ni", pose[:, :3, :3], xyz / dist[:, None])
    truth = np.empty(len(dist))
    for origin in np.unique(pose[:, :3, 3], axis=0):
        sel = np.all(pose[:, :3, 3] == origin, axis=1)
        truth[sel] = scene.ranges(origin, dirs[sel], 0.0)
    with np.errstate(invalid="ignore"):
        rel = np.where(np.isfinite(truth), np.abs(dist - truth) / truth, np.inf)
    return rel, xyz


def birds_eye(xyz: np.ndarray, colours: np.ndarray, label: str, size_px: int = 480, extent_m: float = 40.0):
    canvas = np.full((size_px, size_px, 3), 24, np.uint8)
    scale = size_px / extent_m
    col = (size_px / 2 - xyz[:, 1] * scale).astype(int)        # y left -> image left
    row = (size_px / 2 - xyz[:, 0] * scale).astype(int)        # x forward -> image up
    ok = (col >= 0) & (col < size_px) & (row >= 0) & (row < size_px)
    canvas[row[ok], col[ok]] = colours[ok]
    im = PILImage.fromarray(canvas)
    ImageDraw.Draw(im).text((6, 4), label, fill=(255, 255, 255))
    return im


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "docs" / "images" / "lidar_street.png"))
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lidar_report_"))
    generate("street", work / "street", size=(320, 180), frames=30, moving_cars=0, seed=args.seed)
    if cli(["--device", args.device, "build", str(work / "street"), "-o", str(work / "street.safetensors")]) != 0:
        return 1
    world = World.load(work / "street.safetensors")
    scene = load_scene(work / "street")
    names = {model: model.replace("-", "_").lower() for model in PRESETS}
    params = {"lidars.names": list(names.values())}
    for model, name in names.items():
        params[f"lidars.{name}.model"] = model
    sim = Simulator(world, load_rig({}), device=args.device, lidars=load_lidars(params))
    frames = [5, 12, 19, 26]
    print(f"street seed {args.seed}, {len(world.static_xyz):,} surfels, sweeps from source frames {frames}, "
          f"device {args.device}")
    print("| model | ego | returns / sweep | median error | p90 | within 2 % | within 5 % | CPU-ms / sweep |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    picture = None
    for speed in (0.0, 10.0):
        velocity = (np.array([speed, 0.0, 0.0]), np.zeros(3))
        for spec in sim.lidars:
            rels, returns, spent = [], [], 0.0
            for k in frames:
                t = float(world.frame_time[k])
                base = sim.recorded_base_pose(t)
                started = cpu_s()
                lidar = sim.render_lidar(spec, t, base, *velocity)
                spent += cpu_s() - started
                rel, xyz = errors(sim, scene, lidar, sim.lidar_sampler(spec.name).sensor_poses(base, *velocity))
                rels.append(rel)
                returns.append(len(rel))
                if picture is None and spec.model == "VLP-16":
                    picture = (xyz, rel, lidar.points["intensity"])
            rel = np.concatenate(rels)
            print(f"| {spec.model} | {'still' if speed == 0 else f'{speed:g} m/s'} | {np.mean(returns):,.0f} | "
                  f"{np.median(rel) * 100:.3f} % | {np.percentile(rel, 90) * 100:.2f} % | "
                  f"{np.mean(rel < 0.02) * 100:.1f} % | {np.mean(rel < 0.05) * 100:.1f} % | "
                  f"{spent / len(frames) * 1e3:.0f} |", flush=True)
    xyz, rel, intensity = picture
    err_colour = np.where((rel < 0.01)[:, None], [60, 200, 80], np.where((rel < 0.05)[:, None], [240, 200, 40],
                                                                          [230, 50, 50])).astype(np.uint8)
    grey = np.clip(np.asarray(intensity, np.float64) * 3, 40, 255).astype(np.uint8)
    both = PILImage.new("RGB", (960, 480))
    both.paste(birds_eye(xyz, err_colour, "VLP-16 range error vs ray caster: green <1 %, yellow <5 %, red"), (0, 0))
    both.paste(birds_eye(xyz, np.repeat(grey[:, None], 3, 1), "intensity proxy (x3)"), (480, 0))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    both.save(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
