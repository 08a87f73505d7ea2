"""``inspatio-ros eval``: the command line of :func:`inspatio_ros.eval.evaluate` (its help text is
that module's description)."""
from __future__ import annotations

import json
import sys

from .. import eval as eval_module
from .common import add_config_argument, add_generator_arguments, render_settings_from_args


def register(subparsers) -> None:
    p = subparsers.add_parser("eval", help="score a world's held-out frames against ground truth",
                              description=eval_module.__doc__)
    p.add_argument("world", help="world file (.safetensors) built with --holdout")
    p.add_argument("--gt", required=True, help="ground-truth folder (the build input: frames, depth/, scene.json)")
    p.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    p.add_argument("--no-shift", action="store_true", help="skip the lateral-shift scores")
    p.add_argument("--force", action="store_true",
                   help="score ground truth that does not look like the world's recording (frame count, size, "
                        "held-out frames' fingerprint), with a warning")
    p.add_argument("--save", help="folder for side-by-side pictures (render above, truth below; with a "
                                  "generator: raw render, refined, truth)")
    add_generator_arguments(p)
    add_config_argument(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..generator.refiner import load_generator
    from ..world import World

    settings = render_settings_from_args(args)
    world = World.load(args.world)
    refiner = load_generator(args.generator, args.generator_weights, args.world, args.device)
    report = eval_module.evaluate(world, args.gt, device=args.device, shifts=not args.no_shift,
                                  save_dir=args.save, settings=settings, refiner=refiner, force=args.force)
    j = report.as_json()
    if report.truth_mismatch is not None:
        print(f"inspatio-ros eval: warning: {report.truth_mismatch} (scored anyway: --force)", file=sys.stderr)

    def fmt(v, unit=""):
        return "n/a" if v is None else f"{v:.4f}{unit}" if abs(v) < 10 else f"{v:.2f}{unit}"

    print(f"held-out frames : {report.frames}")
    raw = j.get("raw")
    print(f"PSNR            : {fmt(j['psnr'], ' dB')}" + (f" (raw render {fmt(raw['psnr'], ' dB')})" if raw else ""))
    print(f"SSIM            : {fmt(j['ssim'])}" + (f" (raw render {fmt(raw['ssim'])})" if raw else ""))
    print(f"depth AbsRel    : {fmt(j['depth_absrel'])}" + (
        f" ({fmt(j['depth_absrel_aligned'])} after the trajectory's similarity alignment)"
        if j.get("depth_absrel_aligned") is not None else ""))
    print(f"coverage        : {fmt(j['coverage'])}")
    if j["ate_rel"] is not None:
        print(f"trajectory ATE  : {100 * j['ate_rel']:.2f} % of the path length (estimated poses)")
    if j["shift_psnr"]:
        print("lateral shift PSNR: " + ", ".join(f"{k} m {fmt(v, ' dB')}" for k, v in j["shift_psnr"].items()))
        if raw and raw.get("shift_psnr"):
            print("  raw render     : " + ", ".join(f"{k} m {fmt(v, ' dB')}" for k, v in raw["shift_psnr"].items()))
    else:
        print("lateral shift PSNR: n/a (ground truth cannot render other poses)")
    if args.json:
        print(json.dumps(j))
    return 0
