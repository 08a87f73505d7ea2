"""A world as an InSpatio-World v1.5 scene folder (``inspatio-ros export WORLD --inspatio DIR``).

The layout is the one their pipeline reads for image scenes (inspatio/inspatio-world-v1.5:
``pipeline/render_scene.py`` ``load_scene``, ``datasets/scene_depth_io.py``,
``pipeline/scene_schema.py``; the example ``examples/multiview_example_00``)::

    DIR/scene.json                 kind "image", views 1 or 4, frames, valid_frames, fps,
                                   resolution [480, 832], depth_encoding "uint16_minmax_v1"
    DIR/input/view_00.png ...      the source views, RGB, 832x480
    DIR/input/target_tcw.txt       one world-to-camera 4x4 a line (16 numbers): the camera path to
                                   generate, ``frames`` lines
    DIR/depth/source_tcw.txt       one world-to-camera 4x4 per view (the first is the identity)
    DIR/depth/source_intrinsics.txt  one 3x3 K per view (9 numbers a line)
    DIR/depth/depth.png | depth_00.png ...  uint16 depth, linear between metadata.txt's min and max
    DIR/depth/metadata.txt         "min max" (metres: 0 and the largest depth)
    DIR/depth/source_depths.npy    (views, 480, 832) float32 depth, 0 = unknown (what their
                                   converter makes the PNGs from)

Their checkpoint takes 832x480 only (``scene_schema.RESOLUTION``), image scenes of 1 or 4 views
(``source_type_for``), and ``frames`` = ``padded_frame_count(valid_frames)`` target poses (multi-view
scenes: whole chunks of three latents). The views are rendered from the world at source cameras
(1: the first; 4: spread over the recording) with the source focal length scaled to 832 pixels
wide (square pixels, centred principal point). Poses are normalised to the first view (its
camera-to-world is the identity) in the world's units, as their depth step normalises to the
first frame. The target path is the recorded camera path (``valid_frames`` poses through the
source frames' times) or a given trajectory, padded with its last pose to ``frames``.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..camera import Intrinsics
from ..errors import InputError

WIDTH, HEIGHT = 832, 480                 # the released checkpoint's resolution
FRAMES_PER_BLOCK = 3
DEPTH_ENCODING = "uint16_minmax_v1"
VIEW_COUNTS = (1, 4)


def padded_frame_count(valid_frames: int) -> int:
    """Their frame count for ``valid_frames`` poses: whole latents (frame 0, then groups of 4) in
    whole blocks of 3 latents."""
    if valid_frames < 1:
        raise InputError("the target path has no poses", "give a trajectory of one pose or more")
    latents = (valid_frames - 1 + 3) // 4 + 1
    latents = -(-latents // FRAMES_PER_BLOCK) * FRAMES_PER_BLOCK
    return (latents - 1) * 4 + 1


def export_intrinsics(world_intrinsics: Intrinsics) -> Intrinsics:
    """The source camera's focal length at 832 pixels wide, square pixels, centred principal point."""
    f = world_intrinsics.fx * WIDTH / world_intrinsics.width
    return Intrinsics(f, f, WIDTH / 2.0, HEIGHT / 2.0, WIDTH, HEIGHT)


def view_frames(count: int, views: int) -> list[int]:
    """Source frame indices of the exported views: the first, or ``views`` spread over the recording."""
    if views not in VIEW_COUNTS:
        raise InputError(f"--views {views}: InSpatio-World scenes have 1 or 4 source views", "give --views 1 or 4")
    if count < views:
        raise InputError(f"the world has {count} source frames, fewer than --views {views}", "give --views 1")
    return [int(round(i)) for i in np.linspace(0, count - 1, views)]


def encode_depth_uint16(depth: np.ndarray, maximum: float) -> np.ndarray:
    """Their ``uint16_minmax_v1`` with minimum 0: round(depth / maximum * 65535); unknown -> 0."""
    values = np.where(np.isfinite(depth) & (depth > 0), depth, 0.0).astype(np.float64)
    return np.rint(np.clip(values / maximum, 0.0, 1.0) * 65535).astype(np.uint16)


def export_inspatio_scene(world, out_dir: str | Path, *, views: int = 1, trajectory: str | None = None,
                          fps: float = 15.0, device: str = "auto", settings=None) -> dict:
    """Write ``world`` as an InSpatio-World v1.5 image scene into the new folder ``out_dir``
    (see the module docstring). ``trajectory``: a trajectory file or preset for target_tcw.txt
    (keyframe orbits around the first view; None: the recorded camera path). Returns scene.json's
    values."""
    from PIL import Image

    from ..render import Renderer
    from ..trajectory import load_trajectory, tcw_text

    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out} exists and is not an empty folder", "give --inspatio a new folder")
    if not (fps > 0 and np.isfinite(fps)):
        raise InputError(f"--fps {fps} is not a positive number", "give the scene's frames per second, e.g. 15")
    chosen = view_frames(len(world.frame_c2w), views)
    c2w = world.frame_c2w[chosen]
    first = c2w[0]
    intr = export_intrinsics(world.intrinsics)
    renderer = Renderer(world, device, settings)
    rgbs, depths = [], []
    for pose, index in zip(c2w, chosen):
        rendered = renderer.render(renderer.cameras(pose[None], intr), float(world.frame_time[index]))
        rgb, depth, _ = rendered.numpy()
        rgbs.append(rgb[0])
        depths.append(np.where(np.isfinite(depth[0]) & (depth[0] > 0), depth[0], 0.0).astype(np.float32))

    if trajectory is None:
        target = world.frame_c2w
    else:
        target = load_trajectory(trajectory, first, fps=fps).poses
    valid = len(target)
    # Whole blocks of three latents: also what multi-view scenes need (render_scene's chunk check).
    frames = padded_frame_count(valid)
    padded = np.concatenate([target, np.repeat(target[-1:], frames - valid, axis=0)])

    (out / "input").mkdir(parents=True, exist_ok=True)
    (out / "depth").mkdir(parents=True, exist_ok=True)
    maximum = max(float(max(d.max() for d in depths)), 1e-6)
    depth_names = ["depth.png"] if views == 1 else [f"depth_{i:02d}.png" for i in range(views)]
    for i, (rgb, depth) in enumerate(zip(rgbs, depths)):
        Image.fromarray(rgb).save(out / "input" / f"view_{i:02d}.png")
        Image.fromarray(encode_depth_uint16(depth, maximum)).save(out / "depth" / depth_names[i])
    np.save(out / "depth" / "source_depths.npy", np.stack(depths))
    (out / "depth" / "metadata.txt").write_text(f"{0.0:.9g} {maximum:.9g}\n")
    (out / "depth" / "source_tcw.txt").write_text(tcw_text(c2w, first))
    (out / "depth" / "source_intrinsics.txt").write_text(
        "".join(" ".join(f"{v:.9g}" for v in intr.K.ravel()) + "\n" for _ in chosen))
    (out / "input" / "target_tcw.txt").write_text(tcw_text(padded, first))
    scene = {"output_id": out.name, "kind": "image", "views": views, "frames": frames, "valid_frames": valid,
             "fps": float(fps), "resolution": [HEIGHT, WIDTH], "target_intrinsics": "estimated_source_view_00_fixed",
             "depth_encoding": DEPTH_ENCODING}
    (out / "scene.json").write_text(json.dumps(scene, indent=2) + "\n")
    return {**scene, "source_frames": chosen, "depth_max": maximum}
