"""``inspatio-ros build``: fuse frames with their geometry (poses + depth, given or estimated) into a world file.

The build is a short pipeline (build_world), one module per stage:

  frames.py     open the input (video, image folder, dataset folder, rosbag2), intrinsics
                (intrinsics.py: given, --fov or a documented prior), held-out frames
  poses.py      poses given (a pose file, the input's) or by visual odometry (odometry.py): with
                landmarks from the given depth maps when there are any, else monocular and scaled
                by the camera's height above the road (``--camera-height``)
  depth.py      depth given, or by multi-view stereo on the other fused frames (mvs/, plane
                sweep; pixels it cannot measure are propagated from the measured ones where the
                other frames agree); MVS's road plane refines the scale of monocular poses (road.py)
  fusion.py     surfels added where the world does not yet explain a frame, after the view check
                (consistency.py): points other frames see through are dropped, moving regions go
                into the dynamic layer; with MVS depth each frame's own surfels also form a
                frame-local layer drawn around its time (``--frame-local``)

MVS depths of distant frames disagree by more than the fusion's tolerances, and in one merged
layer their surfels hide or replace the near frames' ones (docs/QUALITY.md): hence the
frame-local layer.
"""
from __future__ import annotations

import dataclasses
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import InputError
from ..posefile import read_poses
from ..render import resolve_device
from ..runtime import return_free_memory
from ..world import World, sha256_of
from .depth import Depth, given_depth, refine_scale_by_road_plane, resolve_depth
from .fingerprint import heldout_fingerprint
from .frames import Frames, holdout_mask, open_frames
from .fusion import Fused, FusionSettings, fuse
from .mvs import MVSSettings
from .poses import Poses, given_poses, resolve_poses
from .scale import check_scale_distance, frame_position


@dataclass(frozen=True)
class BuildSettings:
    """How :func:`build_world` builds a world: which frames it fuses, what it assumes of the camera,
    and the settings of its stages. The inputs themselves (frames, intrinsics, poses, depth) are
    build_world's arguments; the ``inspatio-ros build`` flag of each field is in its comment."""
    holdout: int = 0                    # --holdout: keep every K-th frame out of the world, for evaluate (0: none)
    stride: int = 1                     # --stride: fuse every S-th frame of the start..end window
    start: float | None = None          # --start: seconds since the first frame where the build starts
    end: float | None = None            # --end: seconds since the first frame where the build ends
    max_size: int | None = None         # --max-size: downscale frames to this longer side (pixels)
    fov: float | None = None            # --fov: horizontal field of view (degrees) when no intrinsics are known
    # --camera-height: metres above the road, the scale of video-only poses (None: 1.5 m, a car's
    # dash camera, used only where a ground plane below the camera fits; see scale.py)
    camera_height: float | None = None
    scale_distance: tuple[int, int, float] | None = None   # --scale-distance A,B,METRES: frames A, B that far apart
    self_calibrate: bool = True         # --no-self-calibration: with no intrinsics, use the prior focal length
    # --distortion MODEL:D1,D2,...: the frames' lens (else a camera_info's distortion, if any); the
    # frames are undistorted to a pinhole view first (undistort.py)
    distortion: str | None = None
    fusion: FusionSettings = field(default_factory=FusionSettings)    # surfel fusion (--sky-distance, --frame-local)
    mvs: MVSSettings | None = None      # multi-view stereo (--mvs-size, --mvs-propagate); None: the defaults


def build_world(input_path: str | Path, settings: BuildSettings | None = None, *, intrinsics: str | None = None,
                poses: str | None = None, depth: str | None = None, device: str = "auto", bag_topics=None,
                preview: str | Path | None = None, **changes) -> World:
    """Fuse the frames of ``input_path`` (a video, image folder, dataset folder or rosbag2) into a World.

    ``settings``: a :class:`BuildSettings`; keyword ``changes`` replace its fields
    (``build_world(path, holdout=5)`` is ``build_world(path, BuildSettings(holdout=5))``).
    ``intrinsics`` (camera_info.yaml or "fx,fy,cx,cy"), ``poses`` (a pose file, or "estimate") and
    ``depth`` (a folder of depth maps) default to what the input holds. Without depth maps the
    depth comes from multi-view stereo on the frames, with poses from monocular odometry scaled by
    ``camera_height`` (metres above the road) unless given. ``preview``: a folder for
    trajectory.png and depth_sample.png. world.info["report"] summarises the build (frames,
    poses, depth coverage, points, warnings, seconds per stage).
    """
    if settings is not None and not isinstance(settings, BuildSettings):
        # build_world's settings were FusionSettings until BuildSettings bundled them.
        raise TypeError(f"build_world's settings is a BuildSettings, not {type(settings).__name__} "
                        "(fusion settings: build_world(..., fusion=FusionSettings(...)))")
    s = dataclasses.replace(settings or BuildSettings(), **changes)
    _check_settings(s.camera_height, s.mvs, s.scale_distance)
    started = time.time()
    seconds: dict[str, float] = {}
    # CPU seconds per stage (all threads): on a shared machine wall seconds depend on the load,
    # these do not (the build report's "cpu_seconds").
    cpu_seconds: dict[str, float] = {}
    cpu_started = time.process_time()
    frames = open_frames(input_path, bag_topics=bag_topics, start=s.start, end=s.end, stride=s.stride,
                         max_size=s.max_size, intrinsics=intrinsics, fov=s.fov, self_calibrate=s.self_calibrate,
                         distortion=s.distortion)
    if s.scale_distance is not None:                # its frames exist before any work is done
        for number, what in zip(s.scale_distance[:2], "AB"):
            frame_position(frames.fs.index, number, what)
    known_poses = given_poses(frames, poses)        # None: by visual odometry, once the depth is known
    known_depth = given_depth(frames, depth)        # None: by multi-view stereo, once the poses are known
    seconds["open input"] = round(time.time() - started, 2)
    cpu_seconds["open input"] = round(time.process_time() - cpu_started, 2)
    t_stage, cpu_stage = time.time(), time.process_time()
    camera_poses = resolve_poses(frames, known_poses, known_depth, s.camera_height, s.scale_distance)
    if known_poses is None:
        seconds["poses (visual odometry)"] = round(time.time() - t_stage, 2)
        cpu_seconds["poses (visual odometry)"] = round(time.process_time() - cpu_stage, 2)
    # Frames the odometry could not place have no trusted pose: neither fused, nor MVS sources,
    # nor held-out views (eval would score a held pose). ``left_out`` is what depth and fusion skip.
    unplaced = camera_poses.unplaced_mask()
    held = holdout_mask(len(frames.fs), s.holdout) & ~unplaced    # frames of fs (already windowed and strided)
    left_out = held | unplaced
    fingerprint = heldout_fingerprint(frames.fs.load, np.nonzero(held)[0], frames.fs.index)   # for eval --gt
    dev = resolve_device(device)
    t_stage, cpu_stage = time.time(), time.process_time()
    with _one_torch_thread_beside_kernels(dev):
        frame_depth = resolve_depth(frames, camera_poses, known_depth, left_out, s.mvs, dev)
    # MVS frees its per-frame tensors as it goes, but glibc keeps the freed heap (its mmap threshold
    # rises to the largest block freed): give it back before fusion reads the world into memory.
    return_free_memory()
    if known_depth is None:
        seconds["dense depth (MVS)"] = round(time.time() - t_stage, 2)
        cpu_seconds["dense depth (MVS)"] = round(time.process_time() - cpu_stage, 2)
    camera_poses, frame_depth = refine_scale_by_road_plane(camera_poses, frame_depth, s.camera_height)
    fusion_started = time.time()
    with _one_torch_thread_beside_kernels(dev):
        fused = fuse(frames, camera_poses, frame_depth, left_out, s.fusion, dev)
    seconds.update(fused.seconds)
    cpu_seconds.update(fused.cpu_seconds)
    cpu_seconds["total"] = round(time.process_time() - cpu_started, 2)
    world = _world(frames, camera_poses, frame_depth, fused, held, s.fusion, fusion_started, seconds,
                   {"holdout": s.holdout, "stride": s.stride, "start": s.start, "end": s.end, "max_size": s.max_size},
                   fingerprint, unplaced, cpu_seconds)
    world.validate("built world")
    if preview is not None:
        _write_preview(preview, world, frames, frame_depth, left_out, device)
    return world


@contextmanager
def _one_torch_thread_beside_kernels(device):
    """PyTorch on one thread while multi-view stereo and fusion run on the CPU with their numba
    kernels (mvs/cpu_kernels.py, cpu_kernels.py, the renderer's), which use the cores themselves.
    What PyTorch still does there is many small elementwise operations, and its two-thread OpenMP
    pool waits at every one of them for a thread the kernels' pool or another process holds: on
    the shared 2-core VM (load ~12) the dashcam's MVS took 4.4 CPU-s and 19.6 s a frame with two
    PyTorch threads, 1.2 CPU-s and 4.4 s with one (docs/notes/2026-12-05-build-speed.md)."""
    import torch

    from .mvs.sweep import cpu_kernels

    if device.type != "cpu" or cpu_kernels() is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _check_settings(camera_height: float | None, mvs: MVSSettings | None,
                    scale_distance: tuple[int, int, float] | None = None) -> None:
    if scale_distance is not None:
        check_scale_distance(scale_distance)
    if camera_height is not None and not (np.isfinite(camera_height) and camera_height > 0):
        raise InputError(f"--camera-height {camera_height} is not valid", "give the camera's height above the "
                         "road in metres, e.g. 1.5")
    if mvs is not None and mvs.propagate < 0:
        raise InputError(f"--mvs-propagate {mvs.propagate} is negative", "give 0 (off) or a number of passes")
    if mvs is not None and mvs.max_size is not None and mvs.max_size < 32:
        raise InputError(f"--mvs-size {mvs.max_size} is too small", "give the longer side in pixels, 32 or more")


def _world(frames: Frames, poses: Poses, depth: Depth, fused: Fused, held: np.ndarray, settings: FusionSettings,
           fusion_started: float, seconds: dict[str, float], window: dict, fingerprint: dict | None,
           unplaced: np.ndarray, cpu_seconds: dict[str, float] | None = None) -> World:
    """The World of a build with its provenance, info and report. (info["build_seconds"] counts from
    ``fusion_started``, as it always has; the report's seconds give every stage.) ``unplaced``
    frames are in neither the world's frames nor its held-out ones."""
    fs, c2w, times = frames.fs, poses.c2w, poses.times
    notes = list(frames.notes + poses.notes + fused.notes)
    world_idx = np.nonzero(~held & ~unplaced)[0]
    held_idx = np.nonzero(held)[0]
    source = Path(frames.input_path)
    world = World(
        intrinsics=frames.intrinsics, static_xyz=fused.xyz, static_rgb=fused.rgb, static_radius=fused.radius,
        static_normal=fused.normal, static_frame=fused.frame, frame_c2w=c2w[world_idx], frame_time=times[world_idx],
        frame_index=fs.index[world_idx], heldout_c2w=c2w[held_idx], heldout_time=times[held_idx],
        heldout_index=fs.index[held_idx],
        **fused.dynamic,
        provenance={
            "source": str(source.resolve()),
            "source_sha256": sha256_of(source),
            # What eval --gt checks the ground truth against (eval.check_ground_truth).
            "source_frames": fs.total_frames, "source_size": [int(v) for v in frames.native_size],
            **({} if fingerprint is None else {"heldout_fingerprint": fingerprint}),
            "poses": poses.label, "depth": depth.label,
            "settings": {**asdict(settings), **window},
            "builder": f"inspatio_ros {__version__}",
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        },
        info={
            **poses.info, "depth_source": depth.source,
            **({"frame_local": True, "frame_local_points": int(fused.local_points)} if fused.frame_local else {}),
            **({} if depth.mvs_info is None else {"mvs": depth.mvs_info}),
            "intrinsics_source": frames.intrinsics_source,
            **({} if frames.rectification is None else {"lens": frames.rectification.record()}),
            **({} if frames.calibration is None else {"calibration": frames.calibration}),
            "unscaled": bool(poses.info.get("unscaled", False)),
            "frame_names": list(fs.names),
            "unplaced_frames": [int(i) for i in fs.index[unplaced]],
            "points_added_per_frame": fused.added,
            "build_seconds": round(time.time() - fusion_started, 2),
            "notes": notes,
        },
    )
    odometry = poses.info.get("odometry")
    world.info["report"] = {
        "frames_used": int(len(world_idx)), "frames_held_out": int(len(held_idx)),
        "frames_unplaced": int(unplaced.sum()),
        "image_size": [frames.width, frames.height],
        "poses": poses.info["pose_source"] + ("" if odometry is None else
                                              f": {odometry['located']}/{odometry['frames']} frames located, "
                                              f"{len(odometry['segments'])} segment(s), reprojection "
                                              f"{odometry['reprojection_px']} px"),
        "scale": poses.info["scale"],
        "unscaled": bool(poses.info.get("unscaled", False)),
        "intrinsics": frames.intrinsics_source,
        "depth": depth.source,
        "depth_coverage": round(float(np.mean(fused.coverage)), 4) if fused.coverage else 0.0,
        "seen_through": round(float(np.mean(fused.seen_through)), 4) if fused.seen_through else 0.0,
        "depth_corrected_by_neighbours": (round(float(np.mean(fused.evidence_corrected)), 4)
                                          if fused.evidence_corrected else 0.0),
        "points_static": int(world.num_static),
        "points_dynamic": int(len(world.dynamic_xyz) - fused.local_points),
        "points_frame_local": int(fused.local_points),
        "warnings": list(notes),
        "seconds": seconds,
        "cpu_seconds": cpu_seconds or {},
    }
    return world


def _write_preview(folder: str | Path, world: World, frames: Frames, depth: Depth, held: np.ndarray,
                   device: str) -> None:
    """trajectory.png (with the true path, when the input has poses and these were estimated) and
    depth_sample.png of the middle fused frame."""
    from .preview import write_preview

    fs = frames.fs
    world_idx = np.nonzero(~held)[0]
    middle = int(world_idx[len(world_idx) // 2])
    truth = None
    if world.info["pose_source"].startswith("estimated") and fs.poses is not None:
        truth_all, _ = read_poses(fs.poses)
        if len(truth_all) > int(fs.index.max()):
            truth = truth_all[np.sort(fs.index)]
    write_preview(folder, world, (fs.load(middle), depth.load(middle, frames.shape), int(fs.index[middle])),
                  truth, device=device)


def format_report(report: dict) -> str:
    """The build report as a few lines for the terminal."""
    lines = [f"  frames      {report['frames_used']} used, {report['frames_held_out']} held out, "
             + (f"{report['frames_unplaced']} unplaced (left out), " if report.get("frames_unplaced") else "")
             + f"{report['image_size'][0]}x{report['image_size'][1]}",
             f"  poses       {report['poses']}",
             f"  scale       {report['scale']}" + (" (UNSCALED: odometry units, not metres)"
                                                    if report.get("unscaled") else ""),
             *([f"  intrinsics  {report['intrinsics']}"] if "intrinsics" in report else []),
             f"  depth       {report.get('depth', 'given')}: {100 * report['depth_coverage']:.1f} % of pixels known",
             f"  points      {report['points_static']:,} static, {report['points_dynamic']:,} dynamic"
             + (f", {report['points_frame_local']:,} frame-local" if report.get("points_frame_local") else "")
             + (f" ({100 * report['seen_through']:.1f} % of pixels seen through by other frames, dropped)"
                if report.get("seen_through") else ""),
             "  seconds     " + ", ".join(f"{k} {v:g}" for k, v in report["seconds"].items())]
    if report.get("cpu_seconds"):
        lines.append("  CPU seconds " + ", ".join(f"{k} {v:g}" for k, v in report["cpu_seconds"].items()))
    lines += [f"  warning     {w}" for w in report["warnings"]]
    return "\n".join(lines)
