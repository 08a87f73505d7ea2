"""Pictures of what the node publishes (docs/images/node_outputs.png), through the node's own code.

Runs a SimNode on the DDS transport in this process with the driving rig (config/driving_rig.yaml)
on the embedded default world, takes one rendered frame (replay, 1 m to the left of the recorded
path, half-way through the recording) and draws per camera: image_raw, depth/image (inverse-depth
colours, black = unknown), coverage (white = seen by the world, dark = hole-filled), and a
bird's-eye view of all cameras' point clouds in base_link (x forward = up, 40 m x 40 m).

usage: python tools/node_pictures.py [-o docs/images/node_outputs.png] [--device auto]
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
from PIL import Image as PILImage, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from inspatio_ros.ingest.preview import colorize_depth  # noqa: E402

TILE_H = 180


def tile(pixels: np.ndarray, label: str) -> PILImage.Image:
    if pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=2)
    im = PILImage.fromarray(pixels)
    im = im.resize((max(1, round(im.width * TILE_H / im.height)), TILE_H), PILImage.BILINEAR)
    ImageDraw.Draw(im).text((6, 4), label, fill=(255, 90, 90))
    return im


def birds_eye(frame, size_px: int = 3 * TILE_H, extent_m: float = 40.0) -> PILImage.Image:
    canvas = np.full((size_px, size_px, 3), 24, np.uint8)
    base_from_map = np.linalg.inv(frame.map_from_base)
    for cf in frame.cameras:
        if cf.points is None:
            continue
        pts = cf.points.reshape(-1, 4)
        keep = np.isfinite(pts[:, 2])
        xyz = pts[keep, :3].astype(np.float64)
        rgb = pts[keep, 3].copy().view(np.uint32)
        colours = np.stack([(rgb >> 16) & 255, (rgb >> 8) & 255, rgb & 255], 1).astype(np.uint8)
        base = (base_from_map @ cf.map_from_optical)[:3]
        p = xyz @ base[:, :3].T + base[:, 3]
        u = (size_px / 2 - p[:, 1] / extent_m * size_px).astype(int)      # y left -> image left
        v = (size_px / 2 - p[:, 0] / extent_m * size_px).astype(int)      # x forward -> image up
        ok = (u >= 0) & (u < size_px) & (v >= 0) & (v < size_px) & (p[:, 2] < 2.5)
        canvas[v[ok], u[ok]] = colours[ok]
    im = PILImage.fromarray(canvas)
    d = ImageDraw.Draw(im)
    c = size_px // 2
    d.polygon([(c, c - 8), (c - 5, c + 6), (c + 5, c + 6)], outline=(255, 80, 80))
    d.text((6, 4), "points of all cameras, bird's-eye (base_link, 40 m)", fill=(255, 255, 255))
    return im


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-o", "--output", default=str(ROOT / "docs" / "images" / "node_outputs.png"))
    ap.add_argument("--device", default="auto")
    args = ap.parse_args()
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    from inspatio_ros.config import read_parameters
    from inspatio_ros.fileio import atomic_path
    from inspatio_ros.ros.dds import DdsTransport
    from inspatio_ros.ros.node import SimNode

    params = read_parameters(ROOT / "config" / "driving_rig.yaml")
    for cam in params["cameras.names"]:
        params[f"cameras.{cam}.outputs"] = ["image", "depth", "points", "coverage"]
    params.update({"device": args.device, "replay.lateral_offset": 1.0})
    transport = DdsTransport("node_pictures", announce_node=False)
    try:
        node = SimNode(transport, params)
        sim = node.session.sim
        t = 0.5 * (sim.path.start + sim.path.end)
        pose = sim.recorded_base_pose(t, 1.0)
        frame = sim.render(t, t, pose)
        node.close()
    finally:
        transport.shutdown()
    rows = []
    for kind in ("image", "depth", "coverage"):
        tiles = []
        for cf in frame.cameras:
            if kind == "image":
                pix, label = cf.rgb, f"{cf.spec.name}/image_raw {cf.spec.width}x{cf.spec.height}"
            elif kind == "depth":
                pix, label = colorize_depth(cf.depth), f"{cf.spec.name}/depth/image"
            else:
                pix = np.where(cf.coverage, 235, 40).astype(np.uint8)
                label = f"{cf.spec.name}/coverage ({100 * cf.coverage.mean():.0f}% seen)"
            tiles.append(tile(pix, label))
        order = [1, 0, 2] if len(tiles) == 3 else range(len(tiles))   # left | front | right
        rows.append([tiles[i] for i in order])
    width = max(sum(t.width for t in r) for r in rows)
    bev = birds_eye(frame)
    sheet = PILImage.new("RGB", (width + bev.width, max(TILE_H * len(rows), bev.height)), (0, 0, 0))
    for r, row in enumerate(rows):
        x = 0
        for t_im in row:
            sheet.paste(t_im, (x, r * TILE_H))
            x += t_im.width
    sheet.paste(bev, (width, 0))
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        sheet.save(tmp, format="PNG")
    print(f"wrote {out} ({sheet.width}x{sheet.height})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
