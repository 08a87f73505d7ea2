"""Write a synthetic dataset folder: video, frames, exact depth, dynamic masks, poses, scene.

The layout matches what ``inspatio-ros build`` reads from a dataset folder (see
``ingest/sources.py``), and ``scene.json`` lets evaluation re-render exact ground truth at any
pose and time with :func:`load_scene`.
"""
from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from ..camera import Intrinsics, save_camera_info
from ..errors import InputError
from ..fileio import atomic_write_bytes, atomic_write_text
from ..posefile import write_poses
from ..progress import progress
from ..video import write_png, write_video
from .scene import KINDS, Scene

SCENE_FILE = "scene.json"


MAX_BLUR_SAMPLES = 64
MAX_SENSOR_NOISE = 20.0


def check_synth_options(kind: str, size: tuple[int, int], frames: int, moving_cars: int, fps: float,
              exposure: float, blur_samples: int, sensor_noise: float = 0.0) -> None:
    if kind not in KINDS:
        raise InputError(f"scene kind '{kind}' is unknown", f"use one of {', '.join(KINDS)}")
    w, h = size
    if w < 16 or h < 16 or w > 8192 or h > 8192:
        raise InputError(f"image size {w}x{h} is not valid", "give a size between 16x16 and 8192x8192, e.g. 640x360")
    if w % 2 or h % 2:
        raise InputError(f"image size {w}x{h} is odd", "give an even width and height (H.264 yuv420p needs them)")
    if frames < 2:
        raise InputError(f"--frames {frames} is too few", "give at least 2 frames")
    if moving_cars < 0:
        raise InputError(f"--moving-cars {moving_cars} is negative", "give 0 or more")
    if not (np.isfinite(fps) and 0 < fps <= 1000):
        raise InputError(f"--fps {fps} is not valid", "give a frame rate between 0 and 1000, e.g. 10")
    if not (np.isfinite(exposure) and 0.0 <= exposure <= 1.0 / fps):
        raise InputError(f"--exposure {exposure * 1000:g} ms is not valid at {fps:g} fps",
                         f"give 0 (no motion blur) up to the frame interval, {1000.0 / fps:g} ms")
    if not 1 <= blur_samples <= MAX_BLUR_SAMPLES:
        raise InputError(f"--blur-samples {blur_samples} is not valid", f"give 1 to {MAX_BLUR_SAMPLES}")
    if not (np.isfinite(sensor_noise) and 0.0 <= sensor_noise <= MAX_SENSOR_NOISE):
        raise InputError(f"--sensor-noise {sensor_noise} is not valid",
                         f"give the noise's standard deviation in 8-bit levels, 0 to {MAX_SENSOR_NOISE:g} (KITTI: about 1.5)")


def add_sensor_noise(rgb: np.ndarray, sigma: float, seed: int, index: int, gray: bool) -> np.ndarray:
    """Gaussian read noise of ``sigma`` 8-bit levels, its own for each frame (seeded by the
    scene's seed and the frame index, so a clip is reproducible); one value per pixel on a
    monochrome sensor, one per channel on a colour one."""
    if sigma <= 0:
        return rgb
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, int(index), 0x5E45])
    shape = rgb.shape[:2] + ((1,) if gray else (3,))
    noisy = rgb.astype(np.float32) + rng.normal(0.0, sigma, shape).astype(np.float32)
    return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)


def _save_npy(path: Path, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, array)
    atomic_write_bytes(path, buf.getvalue())


def generate(kind: str, out_dir: str | os.PathLike, size: tuple[int, int] = (640, 360), frames: int = 60,
             moving_cars: int = 1, seed: int = 0, fps: float = 10.0, *, supersample: int = 2,
             params: dict | None = None, exposure: float = 0.0, blur_samples: int = 8,
             camera: dict | None = None, sensor_noise: float = 0.0,
             device: str | torch.device = "cpu") -> Path:
    """Render ``frames`` frames of the scene's own trajectory into ``out_dir``; returns it.

    Frame i is at t = i / fps. Writes video.mp4, frames/%06d.png, depth/%06d.npy (float32 m,
    inf = sky), dynamic_mask/%06d.png (0/255), poses_tum.txt, poses_kitti.txt, times.txt,
    camera_info.yaml and scene.json. Each file is written atomically.

    ``params`` overrides the kind's scene parameters (e.g. street ``speed``, ``camera_height``,
    ``pitch`` in rad, ``curve_radius``). ``exposure`` > 0 s adds motion blur: each frame is the
    mean of ``blur_samples`` renders over the shutter time centred on its timestamp, whose pose
    and depth stay the ground truth. Frames are rendered and written one at a time, so memory
    does not grow with the number of frames.

    ``camera`` sets the sensor (see :data:`.scene.CAMERA_DEFAULTS`): ``gain`` exposes brighter
    (highlights clip at 255), ``gray`` records a monochrome camera (frames/ holds one-channel
    PNGs, as KITTI's image_0). ``sensor_noise`` adds Gaussian read noise of that many 8-bit
    levels to the recorded frames only (a re-render from scene.json is the noiseless image).
    """
    size = (int(size[0]), int(size[1]))
    check_synth_options(kind, size, int(frames), int(moving_cars), float(fps), float(exposure), int(blur_samples),
                        float(sensor_noise))
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"output {out} exists and is not a folder", "give a folder path")
    out.mkdir(parents=True, exist_ok=True)

    duration = (frames - 1) / fps
    given = dict(params or {})
    for reserved in ("duration", "moving_objects"):
        if reserved in given:
            raise InputError(f"scene parameter '{reserved}' is set from the frame count and --moving-cars",
                             "leave it out of params")
    scene = Scene(kind, seed, {**given, "duration": duration, "moving_objects": int(moving_cars)}, camera)
    gray = bool(scene.camera["gray"])
    intr: Intrinsics = scene.default_intrinsics(*size)
    times = np.arange(frames, dtype=np.float64) / fps
    poses = np.stack([scene.camera_pose(t) for t in times])

    # Small text files first: a reader that finds scene.json finds a consistent description.
    description = {**scene.to_dict(), "fps": float(fps), "frames": int(frames), "supersample": int(supersample),
                   "exposure_s": float(exposure), "blur_samples": int(blur_samples) if exposure > 0 else 1,
                   "sensor_noise": float(sensor_noise),
                   "intrinsics": {"fx": intr.fx, "fy": intr.fy, "cx": intr.cx, "cy": intr.cy,
                                  "width": intr.width, "height": intr.height},
                   "conventions": "world z-up (x forward, y left); poses OpenCV camera-to-world; "
                                  "depth = z-depth in metres at pixel centres, inf = sky"}
    atomic_write_text(out / SCENE_FILE, json.dumps(description, indent=2, sort_keys=True) + "\n")
    save_camera_info(out / "camera_info.yaml", intr, camera_name=f"synth_{kind}")
    write_poses(out / "poses_tum.txt", poses, times, fmt="tum")
    write_poses(out / "poses_kitti.txt", poses, fmt="kitti")
    atomic_write_text(out / "times.txt", "".join(f"{t:.9f}\n" for t in times))

    def frames_iter() -> Iterator[np.ndarray]:
        for i in progress(range(frames), total=frames, desc=f"synth {kind}", unit="frame"):
            if exposure > 0:
                rgb, depth, dynamic = scene.render_blurred(scene.camera_pose, intr, float(times[i]), float(exposure),
                                                           int(blur_samples), supersample, return_dynamic=True,
                                                           device=device)
            else:
                rgb, depth, dynamic = scene.render(poses[i], intr, float(times[i]), supersample,
                                                   return_dynamic=True, device=device)
            rgb = add_sensor_noise(rgb, float(sensor_noise), seed, i, gray)
            name = f"{i:06d}"
            write_png(out / "frames" / f"{name}.png", rgb[:, :, 0] if gray else rgb)
            _save_npy(out / "depth" / f"{name}.npy", depth)
            write_png(out / "dynamic_mask" / f"{name}.png", dynamic.astype(np.uint8) * 255)
            yield rgb

    write_video(out / "video.mp4", frames_iter(), fps)
    return out


def load_scene(directory: str | os.PathLike) -> Scene:
    """The :class:`Scene` described by ``directory/scene.json`` (or that file itself)."""
    path = Path(directory)
    if path.is_dir():
        path = path / SCENE_FILE
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InputError(f"scene file {path} does not exist", "give a folder written by 'inspatio-ros synth'") from None
    return Scene.from_json(text)


def load_intrinsics(directory: str | os.PathLike) -> Intrinsics:
    """The intrinsics stored in ``scene.json`` (the same as camera_info.yaml)."""
    path = Path(directory)
    if path.is_dir():
        path = path / SCENE_FILE
    data = json.loads(path.read_text())
    return Intrinsics(**data["intrinsics"])
