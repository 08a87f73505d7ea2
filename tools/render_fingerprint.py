"""Fingerprint of the renderer's CPU output: a sha256 per output tensor, to check that a refactor
changes no pixel.

Builds a small synthetic street (``inspatio-ros synth street`` at 160x96, 12 frames, one moving
car, then ``build --frame-local on``, as test/conftest.py does) in a temporary folder, then
renders it on the CPU with several RenderSettings variants through

- the PyTorch reference (``render_points`` on the world's point cloud, with ``return_index``),
- ``Renderer`` with eager PyTorch (culled chunks; the frame-local world's two layers),
- ``Renderer`` with the numba kernels, and the kernels called directly (``render_points_cpu``),

at a frame's time and without a time, and prints one line per tensor: ``case tensor sha256``,
then a sha256 over all lines (and of the built world's point arrays: the build renders too).
Run it before and after a change and diff the output:

    PYTHONPATH=. python tools/render_fingerprint.py > before.txt
    ... change ...
    PYTHONPATH=. python tools/render_fingerprint.py > after.txt && diff before.txt after.txt

Takes about a minute on 2 cores (plus the numba compile on a cold cache).
"""
from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("INSPATIO_NO_PROGRESS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402


def _sha(x) -> str:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.ascontiguousarray(x)
    h = hashlib.sha256()
    h.update(f"{x.dtype}{x.shape}".encode())
    h.update(x.tobytes())
    return h.hexdigest()


def _render_points_cpu():
    """The numba path's entry point, wherever the renderer keeps it."""
    try:
        from inspatio_ros.render.cpu import render_points_cpu
    except ImportError:
        from inspatio_ros.render_cpu import render_points_cpu
    return render_points_cpu


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--keep", metavar="DIR", help="build the world in DIR (reused when it exists) instead of a temp dir")
    args = p.parse_args(argv)

    from inspatio_ros.cli import main as cli
    from inspatio_ros.render import Renderer, RenderSettings, render_points, world_point_cloud
    from inspatio_ros.world import World

    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep) if args.keep else Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        world_path = root / "street.safetensors"
        if not world_path.exists():
            from inspatio_ros.synth.generate import generate

            generate("street", root / "street", size=(160, 96), frames=12, moving_cars=1, seed=3)
            quiet = open(os.devnull, "w")
            stdout, sys.stdout = sys.stdout, quiet
            try:
                rc = cli(["build", str(root / "street"), "-o", str(world_path), "--holdout", "4",
                          "--frame-local", "on"])
            finally:
                sys.stdout = stdout
                quiet.close()
            if rc != 0:
                raise SystemExit(f"build failed ({rc})")
        world = World.load(world_path)

        lines = []

        def record(case: str, **tensors):
            for name, value in tensors.items():
                if value is not None:
                    lines.append(f"{case} {name} {_sha(value)}")

        record("world", static_xyz=world.static_xyz, static_rgb=world.static_rgb,
               static_radius=world.static_radius, static_normal=world.static_normal,
               dynamic_xyz=world.dynamic_xyz, dynamic_rgb=world.dynamic_rgb,
               dynamic_t_start=world.dynamic_t_start, dynamic_t_end=world.dynamic_t_end)

        variants = {
            "default": RenderSettings(),
            "no-fill": RenderSettings(hole_fill_levels=0),
            "no-splat": RenderSettings(max_splat_px=0),
            "knobs": RenderSettings(max_splat_px=2, hole_fill_levels=3, depth_tolerance=0.05, near=0.5,
                                    background=(10, 200, 30)),
        }
        frames = [0, len(world.frame_c2w) // 2, len(world.frame_c2w) - 1]
        c2w = np.stack([world.frame_c2w[i] for i in frames])
        c2w[1, :3, 3] += c2w[1, :3, 0] * 0.7                 # one camera off the recorded path
        times = [None, float(world.frame_time[frames[1]])]
        cloud = world_point_cloud(world, "cpu")
        render_points_cpu = _render_points_cpu()
        for vname, settings in variants.items():
            torch_r = Renderer(world, "cpu", settings, cpu_kernels=False)
            numba_r = Renderer(world, "cpu", settings, cpu_kernels=True)
            uncull = Renderer(world, "cpu", settings, cull=False, cpu_kernels=False)
            cams = torch_r.cameras(c2w)
            for t in times:
                tag = f"{vname} t={t}"
                for case, out in (("reference", render_points(cloud, cams, t, settings, return_index=True)),
                                  ("kernels", render_points_cpu(cloud, cams, t, settings, return_index=True)),
                                  ("renderer-torch", torch_r.render(cams, t)),
                                  ("renderer-torch-nocull", uncull.render(cams, t)),
                                  ("renderer-numba", numba_r.render(cams, t))):
                    record(f"{case} {tag}", rgb=out.rgb, depth=out.depth, coverage=out.coverage,
                           point_index=out.point_index, need_counts=out.need_counts)
        for line in lines:
            print(line)
        print("all", hashlib.sha256("\n".join(lines).encode()).hexdigest())
    return 0


if __name__ == "__main__":
    sys.exit(main())
