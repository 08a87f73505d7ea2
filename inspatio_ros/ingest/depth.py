"""The depth of a build's frames: given (a folder of depth maps, the input's own: a bag's depth or
LiDAR topic) or measured by multi-view stereo on the frames (mvs/), and the scale refinement that
MVS's road plane allows for poses from monocular odometry."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import InputError
from ..video import resize_depth
from .frames import Frames
from .mvs import MVSSettings, dense_depth, depth_coverage
from .poses import Poses
from .road import road_scale_factor
from .sources import DepthMaps

# Below this share of measured pixels (sky not counted) MVS has failed: wrong intrinsics or poses,
# no texture or no camera motion. A street at 640x360 measures 10-20 % (half of it is blank).
MIN_MVS_COVERAGE = 0.05


@dataclass(frozen=True)
class Depth:
    """Depth of the build's frames: ``load(i, (height, width))`` gives frame i's depth in metres
    (float32; NaN unknown, +inf sky) at that size; ``label`` says where it came from (the world's
    provenance). From multi-view stereo also: ``mvs_info`` (world.info["mvs"]), ``moving`` (per
    fused frame, HxW bool: objects found moving along with the camera) and ``fill_ceiling`` (HxW,
    NaN where none: the farthest depth hole filling may give a pixel; None without a road plane)."""

    load: Callable[[int, tuple[int, int]], np.ndarray]
    label: str
    mvs_info: dict | None = None
    moving: dict[int, np.ndarray] | None = None
    fill_ceiling: np.ndarray | None = None

    @property
    def source(self) -> str:
        """world.info["depth_source"]."""
        return "given" if self.mvs_info is None else "multi-view stereo"

    def scaled(self, factor: float) -> "Depth":
        """The same depth in units ``factor`` times smaller (depths and the ceiling times factor)."""
        load = self.load

        def scaled_load(i: int, shape: tuple[int, int]) -> np.ndarray:
            return load(i, shape) * np.float32(factor)
        ceiling = None if self.fill_ceiling is None else self.fill_ceiling * factor
        return replace(self, load=scaled_load, fill_ceiling=ceiling)


def given_depth(frames: Frames, depth: str | None) -> Depth | None:
    """The depth the input brings: ``depth`` (a folder of .npy metres or 16-bit .png millimetres),
    the dataset folder's depth/, or the input's own (a bag's depth or LiDAR topic); None when
    there is none (then multi-view stereo measures it)."""
    fs = frames.fs
    native_w, native_h = frames.native_size
    depth_dir = Path(depth) if depth else fs.depth_dir
    if depth_dir is not None:
        depth_maps = DepthMaps(depth_dir, fs.all_names if fs.all_names is not None else fs.names)
        by_number = fs.all_names is not None

        def load_depth(i: int, shape: tuple[int, int]) -> np.ndarray:
            d = depth_maps.load(int(fs.index[i]) if by_number else i, (native_h, native_w))
            return _rectified(frames, resize_depth(d, shape[1], shape[0]))
        return Depth(load_depth, str(depth_dir))
    if fs.depth_load is not None:
        def load_depth(i: int, shape: tuple[int, int]) -> np.ndarray:
            d = fs.depth_load(i)
            if d.shape != (native_h, native_w):
                raise InputError(f"depth of frame {fs.names[i]} is {d.shape[1]}x{d.shape[0]}, its image "
                                 f"{native_w}x{native_h}", "record depth registered to the colour image")
            return _rectified(frames, resize_depth(d, shape[1], shape[0]))
        return Depth(load_depth, "in the input (" + next((n for n in frames.notes if n.startswith("depth")), "depth")
                     + ")")
    return None


def _rectified(frames: Frames, depth: np.ndarray) -> np.ndarray:
    """Depth registered to distorted frames, drawn like the rectified frames (undistort.py)."""
    return depth if frames.rectification is None else frames.rectification.depth(depth)


def resolve_depth(frames: Frames, poses: Poses, given: Depth | None, held: np.ndarray,
                  settings: MVSSettings | None, device: torch.device) -> Depth:
    """The given depth, else multi-view stereo's (depth_from_video)."""
    if given is not None:
        return given
    return depth_from_video(frames, poses, held, settings or MVSSettings(), device)


def depth_from_video(frames: Frames, poses: Poses, held: np.ndarray, settings: MVSSettings,
                     device: torch.device) -> Depth:
    """Dense depth of every fused frame by multi-view stereo against the other fused frames (held-out
    frames are never looked at), bounded by the odometry's landmarks when there are any. The maps
    stay on disk (mvs.DepthMapStore); ``Depth.load`` reads one when a later stage asks for it."""
    fs = frames.fs
    fused = [int(i) for i in np.nonzero(~held)[0]]
    started = time.time()
    result = dense_depth(fs.load, poses.c2w, frames.intrinsics, fused, settings, device, sources=fused,
                         landmarks=poses.landmarks)
    maps, moving = result.maps, result.moving
    seconds = time.time() - started
    measured = [depth_coverage(maps.depth_map(i)) for i in fused]
    sky = [float(np.isposinf(maps.depth_map(i)).mean()) for i in fused]
    coverage = float(np.mean(measured)) if measured else 0.0
    if coverage < MIN_MVS_COVERAGE:
        raise InputError(f"multi-view stereo measured depth at {100 * coverage:.1f} % of the pixels of {fs.source}",
                         "pass --depth DIR, give a video with more texture and camera motion, or check "
                         "--intrinsics and --poses (wrong geometry matches nothing)")

    def load_depth(i: int, shape: tuple[int, int]) -> np.ndarray:
        if i not in maps:
            raise InputError(f"frame {fs.names[i]} has no MVS depth (held out)", "this is a bug; please report it")
        return resize_depth(maps.depth_map(i), shape[1], shape[0])
    info = {"coverage": round(coverage, 4), "sky": round(float(np.mean(sky)), 4),
            "seconds_per_frame": round(seconds / max(len(fused), 1), 3), "device": str(device),
            "moving_pixels": round(float(np.mean([m.mean() for m in moving.values()])), 5) if moving else 0.0,
            "settings": asdict(settings)}
    if result.road_plane is not None:
        info["road_plane"] = {"normal": [round(float(x), 5) for x in result.road_plane[0]],
                              "distance": round(result.road_plane[1], 4)}
    return Depth(load_depth, "multi-view stereo (plane sweep on the frames)", info, moving, result.ceiling)


def refine_scale_by_road_plane(poses: Poses, depth: Depth, camera_height: float | None) -> tuple[Poses, Depth]:
    """Poses scaled by the camera height from sparse road points, rescaled by the height MVS's
    dense road plane measures (road_scale_factor); unchanged otherwise. The sparse road points
    set the scale before MVS; the dense road plane measures the camera height again from
    thousands of matched road pixels. Poses, depths and the fill ceiling scale together: the
    same world, in metres that fit the road better. ``camera_height`` None: the default
    (scale.DEFAULT_CAMERA_HEIGHT). Poses scaled otherwise (--scale-distance, RGB-D, given) are
    not touched; poses left unscaled because too few sparse points lay on the ground are scaled
    by the dense road plane only when the camera height was given (the user says there is a
    ground that far below; with the assumed 1.5 m a floor or a table would pass for a road)."""
    from .scale import DEFAULT_CAMERA_HEIGHT

    if poses.info.get("unscaled") and camera_height is not None:
        return _scale_by_road_plane(poses, depth, camera_height)
    height = DEFAULT_CAMERA_HEIGHT if camera_height is None else camera_height
    factor = road_scale_factor(poses.info, depth.mvs_info, height)
    if factor is None:
        return poses, depth
    return (poses.scaled(factor, f"; refined x{factor:.4f} by the road plane of the dense depth"),
            depth.scaled(factor))


def _scale_by_road_plane(poses: Poses, depth: Depth, camera_height: float) -> tuple[Poses, Depth]:
    """Unscaled poses made metric by the given camera height over MVS's dense road plane (its
    distance below the camera, in pose units); unchanged without a road plane."""
    plane = (depth.mvs_info or {}).get("road_plane")
    distance = float(plane["distance"]) if plane else float("nan")
    if not (np.isfinite(distance) and distance > 0):
        return poses, depth
    factor = camera_height / distance
    c2w = poses.c2w.copy()
    c2w[:, :3, 3] *= factor
    how = (f"metric (camera height {camera_height:g} m above the road plane of the dense depth; too few sparse "
           "points on the ground)")
    info = {**poses.info, "scale": how, "unscaled": False, "scale_refinement": round(factor, 6)}
    # The warning that the world is unscaled no longer holds; say what scaled it instead.
    notes = tuple(n for n in poses.notes if not n.startswith("the camera-above-a-road model does not fit")) + (
        f"too few sparse points on the ground for the camera height: scaled by the road plane of the dense depth "
        f"({distance:.4g} odometry units below the camera = {camera_height:g} m)",)
    landmarks = None if poses.landmarks is None else poses.landmarks * factor
    return replace(poses, c2w=c2w, info=info, notes=notes, landmarks=landmarks), depth.scaled(factor)
