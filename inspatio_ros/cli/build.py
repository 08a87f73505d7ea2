"""``inspatio-ros build``: the command line of :func:`inspatio_ros.ingest.build.build_world`.

Its help text is the build module's own description of the pipeline.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import InputError
from .optimize import add_optimize_options, check_device, settings_from
from ..ingest import build as build_module
from ..ingest.build import BuildSettings, build_world, format_report
from ..ingest.fusion import FusionSettings
from ..ingest.mvs import MVSSettings
from ..ingest.scale import parse_scale_distance


def register(subparsers) -> None:
    p = subparsers.add_parser("build", help="fuse a video/images with given or estimated poses and depth into a world file",
                              description=build_module.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("input", help="video file, image folder, dataset folder (frames/, camera_info.yaml, poses, "
                                 "depth/), or rosbag2 bag (folder or .mcap)")
    p.add_argument("-o", "--output", help="world file to write (.safetensors)")
    p.add_argument("--intrinsics", help="camera_info.yaml or fx,fy,cx,cy (default: the folder's camera_info.yaml); "
                                        "a camera_info's distortion_model and D have the frames undistorted")
    p.add_argument("--distortion", metavar="MODEL:D1,D2,...",
                   help="lens distortion of the frames, with --intrinsics' camera matrix: plumb_bob:k1,k2,p1,p2,k3, "
                        "rational_polynomial:k1,k2,p1,p2,k3,k4,k5,k6 or equidistant:k1,k2,k3,k4 (fisheye); the "
                        "frames are undistorted to the largest pinhole view inside them")
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
    p.add_argument("--camera-height", type=float, default=None,
                   help="metres of the camera above the road: the scale of poses estimated from video alone "
                        "(default: 1.5, a car's dash camera, used only where a ground plane below the camera fits)")
    p.add_argument("--scale-distance", metavar="A,B,METRES",
                   help="frames A and B (frame numbers of the input) were METRES apart: the scale of poses "
                        "estimated from video alone (instead of the camera height)")
    p.add_argument("--no-self-calibration", action="store_true",
                   help="with no intrinsics given, use the prior focal length (1.2 x the longer side) instead of "
                        "estimating it from the video")
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
    opt = p.add_argument_group("Gaussian optimization after the build (inspatio-ros optimize; see its help)")
    opt.add_argument("--optimize", action=argparse.BooleanOptionalAction, default=None,
                     help="fit the world's Gaussians to the source frames after fusing (default: on when the "
                          "device is CUDA); the fused world is written first, then replaced by the optimized one")
    add_optimize_options(opt, prefix="optimize-")
    bag = p.add_argument_group("rosbag2 input (topics default to what the bag holds; see --list)")
    bag.add_argument("--list", action="store_true", help="print the bag's topics and the ones a build would read")
    bag.add_argument("--image-topic", help="sensor_msgs/Image or CompressedImage topic")
    bag.add_argument("--camera-info-topic", help="sensor_msgs/CameraInfo topic")
    bag.add_argument("--odom-topic", help="nav_msgs/Odometry topic for the poses")
    bag.add_argument("--depth-topic", help="depth image topic (32FC1 metres / 16UC1 mm, registered)")
    bag.add_argument("--lidar-topic", help="sensor_msgs/PointCloud2 topic projected into the frames for depth")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..ingest.bag import BagTopics, is_bag, open_bag

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
    settings = BuildSettings(
        holdout=args.holdout, stride=args.stride, start=args.start, end=args.end, max_size=args.max_size,
        fov=args.fov, camera_height=args.camera_height,
        scale_distance=None if args.scale_distance is None else parse_scale_distance(args.scale_distance),
        self_calibrate=not args.no_self_calibration, distortion=args.distortion,
        fusion=FusionSettings(sky_distance=args.sky_distance,
                              frame_local={"auto": None, "on": True, "off": False}[args.frame_local]),
        mvs=MVSSettings(max_size=args.mvs_size, propagate=args.mvs_propagate))
    from ..render.types import resolve_device

    device = resolve_device(args.device)
    optimize = device.type == "cuda" if args.optimize is None else args.optimize
    if optimize:
        optimize_settings = settings_from(args, "optimize-")
        optimize_settings.check("--optimize-")  # a bad option is one line before the build starts
    world = build_world(args.input, settings, intrinsics=args.intrinsics, poses=args.poses, depth=args.depth,
                        device=args.device, bag_topics=topics, preview=args.preview)
    world.save(output)
    print(f"wrote {output}: {world.num_static:,} points from {len(world.frame_c2w)} frames, "
          f"{len(world.heldout_c2w)} held out, {output.stat().st_size / 1e6:.1f} MB")
    print(format_report(world.info["report"]))
    if optimize:
        import sys

        from ..gaussians.optimize import optimize as optimize_world
        from ..generator.data import frame_loader

        try:
            check_device(device, world, optimize_settings, explicit=str(args.device) != "auto")
        except InputError as e:
            raise InputError(f"{e.problem} (the fused world {output} is written, not optimized)", e.fix) from None
        checkpoint = output.with_name(output.name + ".ckpt")
        result = optimize_world(world, frame_loader(world), optimize_settings, device=device,
                                log=lambda line: print(line, file=sys.stderr), checkpoint=checkpoint)
        result.world.save(output)
        checkpoint.unlink(missing_ok=True)
        print(f"optimized {output}: {result.gaussians:,} Gaussians after {result.steps} steps in "
              f"{result.seconds:.1f} s, training PSNR {result.train_psnr:.2f} dB, {output.stat().st_size / 1e6:.1f} MB")
    if args.preview:
        print(f"pictures in {args.preview}: trajectory.png, depth_sample.png")
    return 0
