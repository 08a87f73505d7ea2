"""``inspatio-ros synth street|highway|indoor -o DIR``: a synthetic dataset with exact ground truth.

Scene options reproduce what real footage shows: ``--curve-radius 25 --speed 10`` a street that
bends at speed (2.3 deg and 1 m per frame at 10 fps), ``--camera-height 0.5`` a robot's camera,
``--camera-height 10 --pitch 35`` a drone's, ``--exposure 40`` motion blur, and the ``highway``
kind a wide, nearly textureless motorway at 27 m/s. Camera options make the sensor look like a
real one: ``--gray`` a monochrome camera (KITTI's image_0), ``--gain 1.5`` a bright sky that burns
out, ``--sensor-noise 1.5`` read noise (KITTI's frames carry about 1.5 levels; the renders none).
"""
from __future__ import annotations

import argparse
import math
import time

from ..errors import InputError
from ..synth.scene import KINDS
from .common import parse_size


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "synth", help="render a procedural scene with exact depth, poses and dynamic masks",
        description="Render a procedural street or indoor scene along its own camera trajectory and "
                    "write video.mp4, frames/, depth/, dynamic_mask/, poses, camera_info.yaml and "
                    "scene.json (to re-render ground truth at any pose).")
    p.add_argument("kind", choices=sorted(KINDS), help="scene kind")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder (created)")
    p.add_argument("--size", default="640x360", metavar="WxH", help="image size (default 640x360)")
    p.add_argument("--frames", type=int, default=60, help="number of frames (default 60)")
    p.add_argument("--moving-cars", type=int, default=1, metavar="N",
                   help="moving cars (street) or moving objects (indoor) (default 1)")
    p.add_argument("--seed", type=int, default=0, help="layout seed (default 0)")
    p.add_argument("--fps", type=float, default=10.0, help="frame rate (default 10)")
    p.add_argument("--supersample", type=int, default=2, help="sub-rays per pixel side for colour (default 2)")
    g = p.add_argument_group("scene options (default: the kind's own)")
    g.add_argument("--speed", type=float, metavar="M/S",
                   help="camera speed along its path (street 8, highway 27, indoor 0.5)")
    g.add_argument("--camera-height", type=float, metavar="M",
                   help="camera height above the ground (street 1.5, highway 1.4, indoor 0.4; "
                        "e.g. 0.5 for a robot, 10 for a drone)")
    g.add_argument("--pitch", type=float, metavar="DEG",
                   help="street/highway: camera pitch below the horizon in degrees (street 1.7, highway 1.1)")
    g.add_argument("--weave", type=float, metavar="M", help="street/highway: lateral weave in the lane")
    g.add_argument("--curve-radius", type=float, metavar="M",
                   help="street: the road bends in an S of this radius (0: straight, the default; e.g. 25)")
    g.add_argument("--exposure", type=float, default=0.0, metavar="MS",
                   help="shutter time in milliseconds for motion blur (default 0: none; at most 1000/fps)")
    g.add_argument("--blur-samples", type=int, default=8, metavar="N",
                   help="renders averaged over the shutter time when --exposure > 0 (default 8)")
    c = p.add_argument_group("camera options (default: an ideal colour camera)")
    c.add_argument("--gray", action="store_true",
                   help="a monochrome camera: one-channel frames (as KITTI's image_0)")
    c.add_argument("--gain", type=float, default=1.0, metavar="G",
                   help="exposure gain (default 1); above 1 the brightest surfaces clip at 255, e.g. 1.5")
    c.add_argument("--sensor-noise", type=float, default=0.0, metavar="LEVELS",
                   help="Gaussian read noise, standard deviation in 8-bit levels (default 0; KITTI about 1.5)")
    p.set_defaults(func=run)


# Scene options: flag attribute -> (scene parameter, conversion from the flag's unit).
SCENE_OPTIONS = {
    "speed": ("speed", float),
    "camera_height": ("camera_height", float),
    "pitch": ("pitch", math.radians),
    "weave": ("weave", float),
    "curve_radius": ("curve_radius", float),
}


def scene_params(kind: str, args: argparse.Namespace) -> dict:
    """The scene parameters the flags set; an InputError for a flag the kind does not have."""
    defaults = KINDS[kind].DEFAULTS
    params = {}
    for attr, (name, convert) in SCENE_OPTIONS.items():
        value = getattr(args, attr, None)
        if value is None:
            continue
        flag = "--" + attr.replace("_", "-")
        if name not in defaults:
            kinds = sorted(k for k, mod in KINDS.items() if name in mod.DEFAULTS)
            raise InputError(f"{flag} does not apply to {kind} scenes", f"use it with {' or '.join(kinds)}, or leave it out")
        if not math.isfinite(value):
            raise InputError(f"{flag} {value} is not a number", f"give a finite {flag}")
        params[name] = convert(value)
    return params


def _device(args: argparse.Namespace) -> str:
    dev = getattr(args, "device", "auto") or "auto"
    if dev == "auto":
        import torch
        return "cuda" if torch.cuda.is_available() else "cpu"
    return dev


def run(args: argparse.Namespace) -> int:
    from ..synth.generate import generate

    size = parse_size(args.size, minimum=16)
    if args.frames < 2:
        raise InputError(f"--frames {args.frames} is too few", "give at least 2 frames")
    if args.moving_cars < 0:
        raise InputError(f"--moving-cars {args.moving_cars} is negative", "give 0 or more")
    if not 1 <= args.supersample <= 8:
        raise InputError(f"--supersample {args.supersample} is not valid", "give 1 to 8")
    params = scene_params(args.kind, args)
    exposure = float(getattr(args, "exposure", 0.0) or 0.0) / 1000.0
    blur_samples = int(getattr(args, "blur_samples", 8))
    sensor_noise = float(getattr(args, "sensor_noise", 0.0) or 0.0)
    camera = {"gain": float(getattr(args, "gain", 1.0)), "gray": bool(getattr(args, "gray", False))}
    # Check every option (scene parameters included) before the output folder is created.
    from ..synth.generate import check_synth_options
    from ..synth.scene import Scene, check_camera
    check_synth_options(args.kind, size, args.frames, args.moving_cars, args.fps, exposure, blur_samples, sensor_noise)
    check_camera(camera)
    Scene(args.kind, args.seed, {**params, "duration": 0.1, "moving_objects": 0})
    start = time.monotonic()
    out = generate(args.kind, args.output, size=size, frames=args.frames, moving_cars=args.moving_cars,
                   seed=args.seed, fps=args.fps, supersample=args.supersample, params=params,
                   exposure=exposure, blur_samples=blur_samples, camera=camera, sensor_noise=sensor_noise,
                   device=_device(args))
    dt = time.monotonic() - start
    extra = "".join(f", {k} {math.degrees(v) if k == 'pitch' else v:g}" for k, v in params.items())
    if exposure > 0:
        extra += f", exposure {exposure * 1000:g} ms x {blur_samples}"
    if camera["gray"]:
        extra += ", gray"
    if camera["gain"] != 1.0:
        extra += f", gain {camera['gain']:g}"
    if sensor_noise > 0:
        extra += f", sensor noise {sensor_noise:g}"
    print(f"synth {args.kind}: {args.frames} frames {size[0]}x{size[1]} @ {args.fps:g} fps, "
          f"{args.moving_cars} moving, seed {args.seed}{extra} -> {out} ({dt:.1f} s, {dt / args.frames:.2f} s/frame)")
    return 0
