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

import argparse
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import InputError
from ..posefile import read_poses
from ..render import resolve_device
from ..world import World, sha256_of
from .depth import Depth, given_depth, refine_scale_by_road_plane, resolve_depth
from .fingerprint import heldout_fingerprint
from .frames import Frames, holdout_mask, open_frames
from .fusion import Fused, FusionSettings, fuse
from .mvs import MVSSettings
from .poses import Poses, given_poses, resolve_poses


def build_world(input_path: str | Path, *, intrinsics: str | None = None, poses: str | None = None,
                depth: str | None = None, holdout: int = 0, stride: int = 1,
                settings: FusionSettings | None = None, device: str = "auto", bag_topics=None,
                start: float | None = None, end: float | None = None, max_size: int | None = None,
                fov: float | None = None, preview: str | Path | None = None, camera_height: float = 1.5,
                mvs: MVSSettings | None = None) -> World:
    """Fuse INPUT into a World; ``preview``: a folder for trajectory.png and depth_sample.png.
    Without depth maps the depth comes from multi-view stereo on the frames (``mvs``), with poses
    from monocular odometry scaled by ``camera_height`` (metres above the road) unless given.
    world.info["report"] summarises the build (frames, poses, depth coverage, points, warnings,
    seconds per stage)."""
    settings = settings or FusionSettings()
    _check_settings(camera_height, mvs)
    started = time.time()
    seconds: dict[str, float] = {}
    frames = open_frames(input_path, bag_topics=bag_topics, start=start, end=end, stride=stride,
                         max_size=max_size, intrinsics=intrinsics, fov=fov)
    known_poses = given_poses(frames, poses)        # None: by visual odometry, once the depth is known
    known_depth = given_depth(frames, depth)        # None: by multi-view stereo, once the poses are known
    seconds["open input"] = round(time.time() - started, 2)
    t_stage = time.time()
    camera_poses = resolve_poses(frames, known_poses, known_depth, camera_height)
    if known_poses is None:
        seconds["poses (visual odometry)"] = round(time.time() - t_stage, 2)
    held = holdout_mask(len(frames.fs), holdout)       # frames of fs (already windowed and strided)
    fingerprint = heldout_fingerprint(frames.fs.load, np.nonzero(held)[0], frames.fs.index)   # for eval --gt
    dev = resolve_device(device)
    t_stage = time.time()
    frame_depth = resolve_depth(frames, camera_poses, known_depth, held, mvs, dev)
    if known_depth is None:
        seconds["dense depth (MVS)"] = round(time.time() - t_stage, 2)
    camera_poses, frame_depth = refine_scale_by_road_plane(camera_poses, frame_depth, camera_height)
    fusion_started = time.time()
    fused = fuse(frames, camera_poses, frame_depth, held, settings, dev)
    seconds.update(fused.seconds)
    world = _world(frames, camera_poses, frame_depth, fused, held, settings, fusion_started, seconds,
                   {"holdout": holdout, "stride": stride, "start": start, "end": end, "max_size": max_size},
                   fingerprint)
    world.validate("built world")
    if preview is not None:
        _write_preview(preview, world, frames, frame_depth, held, device)
    return world


def _check_settings(camera_height: float, mvs: MVSSettings | None) -> None:
    if not (np.isfinite(camera_height) and camera_height > 0):
        raise InputError(f"--camera-height {camera_height} is not valid", "give the camera's height above the "
                         "road in metres, e.g. 1.5")
    if mvs is not None and mvs.propagate < 0:
        raise InputError(f"--mvs-propagate {mvs.propagate} is negative", "give 0 (off) or a number of passes")
    if mvs is not None and mvs.max_size is not None and mvs.max_size < 32:
        raise InputError(f"--mvs-size {mvs.max_size} is too small", "give the longer side in pixels, 32 or more")


def _world(frames: Frames, poses: Poses, depth: Depth, fused: Fused, held: np.ndarray, settings: FusionSettings,
           fusion_started: float, seconds: dict[str, float], window: dict, fingerprint: dict | None) -> World:
    """The World of a build with its provenance, info and report. (info["build_seconds"] counts from
    ``fusion_started``, as it always has; the report's seconds give every stage.)"""
    fs, c2w, times = frames.fs, poses.c2w, poses.times
    notes = list(frames.notes + poses.notes)
    world_idx = np.nonzero(~held)[0]
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
            "frame_names": list(fs.names),
            "points_added_per_frame": fused.added,
            "build_seconds": round(time.time() - fusion_started, 2),
            "notes": notes,
        },
    )
    odometry = poses.info.get("odometry")
    world.info["report"] = {
        "frames_used": int(len(world_idx)), "frames_held_out": int(len(held_idx)),
        "image_size": [frames.width, frames.height],
        "poses": poses.info["pose_source"] + ("" if odometry is None else
                                              f": {odometry['located']}/{odometry['frames']} frames located, "
                                              f"{len(odometry['segments'])} segment(s), reprojection "
                                              f"{odometry['reprojection_px']} px"),
        "scale": poses.info["scale"],
        "depth": depth.source,
        "depth_coverage": round(float(np.mean(fused.coverage)), 4) if fused.coverage else 0.0,
        "seen_through": round(float(np.mean(fused.seen_through)), 4) if fused.seen_through else 0.0,
        "points_static": int(world.num_static),
        "points_dynamic": int(len(world.dynamic_xyz) - fused.local_points),
        "points_frame_local": int(fused.local_points),
        "warnings": list(notes),
        "seconds": seconds,
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
             f"{report['image_size'][0]}x{report['image_size'][1]}",
             f"  poses       {report['poses']}",
             f"  scale       {report['scale']}",
             f"  depth       {report.get('depth', 'given')}: {100 * report['depth_coverage']:.1f} % of pixels known",
             f"  points      {report['points_static']:,} static, {report['points_dynamic']:,} dynamic"
             + (f", {report['points_frame_local']:,} frame-local" if report.get("points_frame_local") else "")
             + (f" ({100 * report['seen_through']:.1f} % of pixels seen through by other frames, dropped)"
                if report.get("seen_through") else ""),
             "  seconds     " + ", ".join(f"{k} {v:g}" for k, v in report["seconds"].items())]
    lines += [f"  warning     {w}" for w in report["warnings"]]
    return "\n".join(lines)


def register(subparsers) -> None:
    p = subparsers.add_parser("build", help="fuse a video/images with given or estimated poses and depth into a world file",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="video file, image folder, dataset folder (frames/, camera_info.yaml, poses, "
                                 "depth/), or rosbag2 bag (folder or .mcap)")
    p.add_argument("-o", "--output", help="world file to write (.safetensors)")
    p.add_argument("--intrinsics", help="camera_info.yaml or fx,fy,cx,cy (default: the folder's camera_info.yaml)")
    p.add_argument("--poses", help="camera poses: TUM, KITTI or per-frame 4x4 file (default: the folder's; "
                                   "'estimate': visual odometry even where the input has poses)")
    p.add_argument("--depth", help="folder of depth maps: .npy metres or 16-bit .png millimetres (default: DIR/depth)")
    p.add_argument("--holdout", type=int, default=0, help="keep every K-th frame out of the world, for eval")
    p.add_argument("--stride", type=int, default=1, help="use every S-th frame (of the --start/--end window)")
    p.add_argument("--start", type=float, help="seconds since the first frame where the build starts")
    p.add_argument("--end", type=float, help="seconds since the first frame where the build ends")
    p.add_argument("--max-size", type=int, help="downscale frames so that the longer side is at most this (pixels)")
    p.add_argument("--fov", type=float, help="horizontal field of view in degrees, when no intrinsics are known")
    p.add_argument("--preview", metavar="DIR", help="write trajectory.png and depth_sample.png there")
    p.add_argument("--camera-height", type=float, default=1.5,
                   help="metres of the camera above the road: the scale of poses estimated from video alone")
    p.add_argument("--mvs-size", type=int, help="longer side (px) at which multi-view stereo matches frames "
                                                "(default 640 on CPU, 1280 on CUDA)")
    p.add_argument("--mvs-propagate", type=int, default=MVSSettings.propagate, metavar="PASSES",
                   help="passes propagating MVS depth into unmeasured pixels (road plane, neighbours), each "
                        "checked against the other frames (0: only matched pixels)")
    p.add_argument("--sky-distance", type=float, default=FusionSettings.sky_distance,
                   help="metres at which infinite depth (sky) is placed")
    p.add_argument("--frame-local", choices=("auto", "on", "off"), default="auto",
                   help="also keep each fused frame's own surfels, shown around its time in front of the merged "
                        "static layer (auto: on when the depth comes from multi-view stereo)")
    bag = p.add_argument_group("rosbag2 input (topics default to what the bag holds; see --list)")
    bag.add_argument("--list", action="store_true", help="print the bag's topics and the ones a build would read")
    bag.add_argument("--image-topic", help="sensor_msgs/Image or CompressedImage topic")
    bag.add_argument("--camera-info-topic", help="sensor_msgs/CameraInfo topic")
    bag.add_argument("--odom-topic", help="nav_msgs/Odometry topic for the poses")
    bag.add_argument("--depth-topic", help="depth image topic (32FC1 metres / 16UC1 mm, registered)")
    bag.add_argument("--lidar-topic", help="sensor_msgs/PointCloud2 topic projected into the frames for depth")
    p.set_defaults(func=run)


def run(args) -> int:
    from .bag import BagTopics, is_bag, open_bag

    topics = BagTopics(args.image_topic, args.camera_info_topic, args.odom_topic, args.depth_topic, args.lidar_topic)
    given = [f"--{n}-topic" for n, v in (("image", args.image_topic), ("camera-info", args.camera_info_topic),
                                          ("odom", args.odom_topic), ("depth", args.depth_topic),
                                          ("lidar", args.lidar_topic)) if v]
    if (args.list or given) and not is_bag(args.input):
        flag = "--list" if args.list else given[0]
        raise InputError(f"{flag} is for rosbag2 input; {args.input} is not a bag",
                         "give a rosbag2 folder (with metadata.yaml) or an .mcap file")
    if args.list:
        print(open_bag(args.input, topics, list_only=True).describe())
        return 0
    if not args.output:
        raise InputError("no output world file given", "pass -o WORLD.safetensors")
    output = Path(args.output)
    if output.suffix != ".safetensors":
        raise InputError(f"output {output} does not end in .safetensors", "name the world file WORLD.safetensors")
    settings = FusionSettings(sky_distance=args.sky_distance,
                              frame_local={"auto": None, "on": True, "off": False}[args.frame_local])
    world = build_world(args.input, intrinsics=args.intrinsics, poses=args.poses, depth=args.depth,
                        holdout=args.holdout, stride=args.stride, settings=settings, device=args.device,
                        bag_topics=topics, start=args.start, end=args.end, max_size=args.max_size, fov=args.fov,
                        preview=args.preview, camera_height=args.camera_height,
                        mvs=MVSSettings(max_size=args.mvs_size, propagate=args.mvs_propagate))
    world.save(output)
    print(f"wrote {output}: {world.num_static:,} points from {len(world.frame_c2w)} frames, "
          f"{len(world.heldout_c2w)} held out, {output.stat().st_size / 1e6:.1f} MB")
    print(format_report(world.info["report"]))
    if args.preview:
        print(f"pictures in {args.preview}: trajectory.png, depth_sample.png")
    return 0
