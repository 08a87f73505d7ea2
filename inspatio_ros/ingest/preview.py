"""Pictures of a build (``build --preview DIR``): the camera path from above and a depth sample.

Plain numpy + Pillow, written atomically as PNGs:

* ``trajectory.png``: the frames' camera centres from above (the two horizontal axes along which
  the path spreads most), held-out frames as rings, a 1 m scale bar; with ``truth`` (camera-to-
  world poses of the same frames), the truth in green and the path similarity-aligned onto it.
* ``depth_sample.png``: one frame's image, the depth the build used, and the built world's
  depth rendered at that frame, side by side (inverse-depth colours, near = yellow).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..video import write_png

_STOPS = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], np.float32)


def colorize_depth(depth: np.ndarray, near: float = 2.0, far: float = 80.0) -> np.ndarray:
    """Inverse-depth colour map (near = yellow, far = purple); unknown/infinite = black."""
    with np.errstate(divide="ignore", invalid="ignore"):
        x = (1.0 / depth - 1.0 / far) / (1.0 / near - 1.0 / far)
    known = np.isfinite(x)
    x = np.clip(np.where(known, x, 0.0), 0.0, 1.0) * (len(_STOPS) - 1)
    i = np.minimum(x.astype(int), len(_STOPS) - 2)
    f = (x - i)[..., None]
    rgb = _STOPS[i] * (1 - f) + _STOPS[i + 1] * f
    return np.where(known[..., None], rgb, 0).astype(np.uint8)


def trajectory_picture(c2w: np.ndarray, held: np.ndarray, truth: np.ndarray | None = None,
                       width: int = 900, title: str = "") -> np.ndarray:
    """Top view of camera centres (RGB uint8). ``held``: (N,) bool, drawn as rings."""
    from PIL import Image, ImageDraw

    path = c2w[:, :3, 3]
    if truth is not None:
        from .odometry import umeyama

        s, R, t = umeyama(path, truth[:, :3, 3])
        path = (s * (R @ path.T)).T + t
        truth_path = truth[:, :3, 3]
        everything = np.concatenate([path, truth_path])
    else:
        truth_path = None
        everything = path
    # Up = the cameras' mean -y (OpenCV y points down); the view looks down along it.
    up = -c2w[:, :3, 1].mean(0)
    up = up / max(np.linalg.norm(up), 1e-12)
    a = np.cross(up, [1.0, 0.0, 0.0])
    if np.linalg.norm(a) < 0.1:
        a = np.cross(up, [0.0, 1.0, 0.0])
    a /= np.linalg.norm(a)
    b = np.cross(up, a)
    spread = everything - everything.mean(0)
    # Along the path's main horizontal direction first.
    flat = spread @ np.stack([a, b], 1)
    _, _, vt = np.linalg.svd(flat - flat.mean(0), full_matrices=False)
    axes = np.stack([a, b], 1) @ vt.T                      # (3,2): horizontal, main direction first

    def plane(p):
        return (p - everything.mean(0)) @ axes

    pts = plane(everything)
    lo, hi = pts.min(0), pts.max(0)
    span = np.maximum(hi - lo, 1e-6)
    pad = 0.08 * span.max()
    scale = (width - 40) / (span[0] + 2 * pad)
    height = int(np.clip((span[1] + 2 * pad) * scale + 60, 160, width))

    def px(p):
        q = plane(np.atleast_2d(p))[0]
        return (20 + (q[0] - lo[0] + pad) * scale, height - 30 - (q[1] - lo[1] + pad) * scale)

    img = Image.new("RGB", (width, height), (24, 24, 28))
    draw = ImageDraw.Draw(img)
    if truth_path is not None:
        draw.line([px(p) for p in truth_path], fill=(90, 200, 110), width=3)
    draw.line([px(p) for p in path], fill=(235, 80, 70), width=3)
    for p, h in zip(path, held):
        x, y = px(p)
        r = 5 if h else 2
        draw.ellipse([x - r, y - r, x + r, y + r], outline=(255, 255, 255) if h else (235, 80, 70), width=2)
    bar = min(scale, width / 4)
    draw.line([(20, height - 12), (20 + bar, height - 12)], fill=(230, 230, 230), width=3)
    draw.text((26 + bar, height - 22), f"{bar / scale:g} m", fill=(230, 230, 230))
    draw.text((10, 8), title, fill=(230, 230, 230))
    return np.asarray(img)


def write_preview(folder: str | Path, world, depth_frame: tuple[np.ndarray, np.ndarray, int],
                  truth: np.ndarray | None = None, device: str = "auto") -> list[Path]:
    """Write trajectory.png and depth_sample.png for a built world. ``depth_frame``: (rgb, depth
    used, frame number) of one frame that is part of the world; ``truth``: true camera-to-world
    poses of the world's frames (held-out ones included) in increasing frame number."""
    from ..render import Renderer

    folder = Path(folder)
    _, c2w, held = world.camera_path()
    source = world.info.get("pose_source", "given")
    title = f"camera path from above ({source}); rings: held-out frames"
    if truth is not None:
        title += "; green: truth, red: similarity-aligned estimate"
    written = [write_png(folder / "trajectory.png", trajectory_picture(c2w, held, truth, title=title))]
    rgb, depth, number = depth_frame
    k = int(np.nonzero(world.frame_index == number)[0][0])
    renderer = Renderer(world, device)
    out = renderer.render(renderer.cameras(world.frame_c2w[k][None]), float(world.frame_time[k]))
    rendered = out.depth[0].cpu().numpy()
    finite = depth[np.isfinite(depth)]
    far = float(np.percentile(finite, 95)) if finite.size else 80.0
    near = max(0.5, float(np.percentile(finite, 2))) if finite.size else 2.0
    gap = np.full((rgb.shape[0], 6, 3), 255, np.uint8)
    strip = np.concatenate([rgb, gap, colorize_depth(depth, near, far), gap, colorize_depth(rendered, near, far)], 1)
    written.append(write_png(folder / "depth_sample.png", strip))
    return written
