"""Numbers for docs/notes/2026-12-05-gaussian-size.md: how big an optimized world is, and what its
CPU drawing looks like when the surfels are made at load instead of stored.

    PYTHONPATH=. python tools/gaussian_size.py layout
    PYTHONPATH=. python tools/gaussian_size.py compact OLD_OPTIMIZED NEW [--device cpu|cuda]
    PYTHONPATH=. python tools/gaussian_size.py compare OLD_OPTIMIZED NEW GT_DIR [PICTURE.png]
    PYTHONPATH=. python tools/gaussian_size.py loadtime WORLD [--gaussians N] [--threads 1] [--old-layout]

``layout``: bytes per Gaussian of the stored layer (from world.py's field table) and the file
sizes that follow for the H200 street and kitti06 worlds (1 M Gaussians each, and their stored
surfel counts of today: 13.2 M and 22.5 M).
``compact``: rewrite an optimized world written before 2026-12-05 (split surfels stored beside
the Gaussians) in today's layout: the Gaussians unchanged, the colour field baked from their render
over the source frames (what ``optimize`` now writes), no surfels. No re-optimization.
``compare``: held-out frames drawn by the CPU Renderer from both worlds (the old one's stored
surfels, the new one's surfels made at load): PSNR of each against the truth and of the new
against the old, file sizes, surfel counts, CPU seconds to set up and CPU time a frame (after a
warm-up frame).
``loadtime``: the world's Gaussians repeated in place until there are ``--gaussians`` of them
(each copy splits as the original), written to a temporary file, then in a fresh process the CPU
seconds and peak RSS of World.load, of the surfels (made at load, or with ``--old-layout`` read
from the file as before 2026-12-05) and of the Renderer's set-up.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import sys
import time

os.environ.setdefault("INSPATIO_NO_PROGRESS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

STATIC_SURFEL_BYTES = 12 + 3 + 4 + 3 + 4          # xyz f32, rgb u8, radius f32, normal i8, frame i32
MB = 1e6


def gaussian_bytes(version: int = 3, dynamic: bool = False, colour_field: bool = True) -> int:
    """Bytes one Gaussian takes in a world file of format ``version`` (2 or 3), from world.py's
    own field table and encoder (per-layer constants such as sh_rest_scale left out)."""
    from inspatio_ros.world import GAUSSIAN_FIELDS, encode_gaussians

    one = {key: np.zeros((1, *shape), dtype) for key, (dtype, shape) in GAUSSIAN_FIELDS.items()}
    for group in ("gauss_static", "gauss_dynamic"):
        one[f"{group}.rotation"][:, 0] = 1
    stored = encode_gaussians(one) if version >= 3 else one
    group = "gauss_dynamic" if dynamic else "gauss_static"
    return sum(a.nbytes for key, a in stored.items() if key.startswith(group + ".") and len(a) == 1
               and not key.endswith("sh_rest_scale") and (colour_field or "surfel_rgb" not in key))


def layout() -> None:
    for version in (2, 3):
        with_field, without = gaussian_bytes(version), gaussian_bytes(version, colour_field=False)
        print(f"format {version}: a static Gaussian {without} bytes + {with_field - without} (CPU colour field) = "
              f"{with_field}; a dynamic one {gaussian_bytes(version, True)}")
    print(f"a stored surfel: {STATIC_SURFEL_BYTES} bytes")
    v2, v3 = gaussian_bytes(2, colour_field=False), gaussian_bytes(3)
    for name, gaussians, surfels in (("street (H200, 1 M Gaussians)", 1_000_000, 13_200_000),
                                     ("kitti06 (H200, 1 M Gaussians)", 1_000_000, 22_500_000)):
        before = gaussians * v2 + surfels * STATIC_SURFEL_BYTES
        print(f"{name}: before {before / MB:.0f} MB ({gaussians * v2 / MB:.0f} Gaussians + "
              f"{surfels * STATIC_SURFEL_BYTES / MB:.0f} surfels), after {gaussians * v3 / MB:.0f} MB")


def compact(old_path: str, new_path: str, device: str) -> None:
    from inspatio_ros.gaussians.optimize import refit_surfel_colours
    from inspatio_ros.world import World

    old = World.load(old_path)
    if not old.has_gaussians:
        sys.exit(f"{old_path} has no Gaussian layer: give an optimized world")
    t0 = time.process_time()
    new = refit_surfel_colours(old, device)
    new.save(new_path)
    print(f"wrote {new_path}: {new.num_gaussians:,} Gaussians, no surfels (was {old.num_static + old.num_dynamic:,}); "
          f"{os.path.getsize(old_path) / MB:.2f} -> {os.path.getsize(new_path) / MB:.2f} MB; "
          f"baking {time.process_time() - t0:.1f} s CPU")


def _held_out_renders(world):
    from inspatio_ros.render import Renderer

    t0 = time.process_time()
    renderer = Renderer(world, "cpu")
    setup = time.process_time() - t0
    draw = (lambda k: renderer.render(renderer.cameras(world.heldout_c2w[k:k + 1]), float(world.heldout_time[k])))
    draw(0)                                                       # warm-up (kernel compile, caches)
    t0 = time.process_time()
    images = [draw(k).rgb[0].numpy() for k in range(len(world.heldout_c2w))]
    per_frame = (time.process_time() - t0) / max(len(images), 1)
    return images, setup, len(renderer.cloud.xyz) if renderer.cloud is not None else -1, per_frame


def compare(old_path: str, new_path: str, gt_dir: str, picture: str | None = None) -> None:
    from inspatio_ros.ingest.sources import open_input
    from inspatio_ros.world import World

    def psnr(a, b):
        mse = np.mean([((x.astype(np.float64) - y.astype(np.float64)) ** 2).mean() for x, y in zip(a, b)])
        return 10 * np.log10(255 ** 2 / max(mse, 1e-12))

    fs = open_input(gt_dir)
    row = {int(n): i for i, n in enumerate(fs.index)}
    old, new = World.load(old_path), World.load(new_path)
    truth = [np.asarray(fs.load(row[int(i)]))[..., :3] for i in old.heldout_index]
    (old_img, old_setup, old_n, old_ms), (new_img, new_setup, new_n, new_ms) = _held_out_renders(old), _held_out_renders(new)
    print(f"{len(truth)} held-out frames of {gt_dir}")
    print(f"  old layout: {os.path.getsize(old_path) / MB:7.2f} MB, {old_n:,} stored surfels, set-up {old_setup:.2f} s CPU, "
          f"{1000 * old_ms:.0f} ms CPU a frame, PSNR vs truth {psnr(old_img, truth):.2f} dB")
    print(f"  new layout: {os.path.getsize(new_path) / MB:7.2f} MB, {new_n:,} surfels made at load, set-up {new_setup:.2f} s CPU, "
          f"{1000 * new_ms:.0f} ms CPU a frame, PSNR vs truth {psnr(new_img, truth):.2f} dB, vs the old layout's drawing "
          f"{psnr(new_img, old_img):.2f} dB")
    if picture:
        from inspatio_ros.video import write_png

        write_png(picture, np.concatenate([truth[0], old_img[0], new_img[0]], axis=1))


def loadtime(path: str, gaussians: int, threads: int, old_layout: bool) -> None:
    import subprocess
    import tempfile

    from inspatio_ros.gaussians.model import world_surfels
    from inspatio_ros.world import World

    world = World.load(path)
    n = len(world.gauss_static_xyz)
    if n == 0 or len(world.gauss_static_surfel_rgb) != n:
        sys.exit(f"{path}: give an optimized world in today's layout (tools/gaussian_size.py compact)")
    gaussians = gaussians or n
    if len(world.gauss_dynamic_xyz):
        print(f"  (timing the static layer only: {len(world.gauss_dynamic_xyz):,} dynamic Gaussians left out)")
        world = dataclasses.replace(world, **{f"gauss_dynamic_{k}": getattr(world, f"gauss_dynamic_{k}")[:0] for k in (
            "xyz", "log_scale", "rotation", "opacity", "sh", "surfel_rgb", "surfel_rgb_gradient", "t_start", "t_end")})
    # Copies in the same place, seen by the same cameras: each splits exactly as the original.
    copies = -(-gaussians // n)
    tiled = {f"gauss_static_{name}": np.concatenate([getattr(world, f"gauss_static_{name}")] * copies)[:gaussians]
             for name in ("xyz", "log_scale", "rotation", "opacity", "sh", "surfel_rgb", "surfel_rgb_gradient")}
    big = dataclasses.replace(world, **tiled)
    if old_layout:
        # As optimize wrote it before 2026-12-05: the surfels stored (format 2), no colour field.
        xyz, rgb, radius, normal, _, _ = world_surfels(big)
        big = dataclasses.replace(big, static_xyz=xyz, static_rgb=rgb, static_radius=radius, static_normal=normal,
                                  static_frame=np.full(len(xyz), -1, np.int32),
                                  gauss_static_surfel_rgb=tiled["gauss_static_surfel_rgb"][:0],
                                  gauss_static_surfel_rgb_gradient=tiled["gauss_static_surfel_rgb_gradient"][:0])
    out = os.path.join(tempfile.gettempdir(), f"gaussian_size_loadtime_{os.getpid()}.safetensors")
    big.save(out)
    try:
        subprocess.run([sys.executable, __file__, "_measure", out, str(threads)], check=True)
    finally:
        os.remove(out)
    print(f"  ({'old layout: surfels stored' if old_layout else 'surfels made at load'}; {copies} copies of {n:,} "
          f"Gaussians, {len(world.frame_c2w)} source cameras)")


def _measure(path: str, threads: int) -> None:
    from inspatio_ros.render import Renderer, world_point_cloud
    from inspatio_ros.world import World

    torch.set_num_threads(threads)
    t0 = time.process_time()
    loaded = World.load(path)
    t1 = time.process_time()
    cloud = world_point_cloud(loaded)
    t2 = time.process_time()
    Renderer(cloud, "cpu")
    t3 = time.process_time()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{loaded.num_gaussians:,} Gaussians, file {os.path.getsize(path) / MB:.1f} MB, {threads} thread(s): "
          f"World.load {t1 - t0:.2f} s, surfels {t2 - t1:.2f} s CPU ({len(cloud.xyz):,}, "
          f"{len(cloud.xyz) / loaded.num_gaussians:.1f} a Gaussian), renderer set-up {t3 - t2:.2f} s; "
          f"peak RSS {rss:.0f} MB", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("layout")
    c = sub.add_parser("compact")
    c.add_argument("old"), c.add_argument("new"), c.add_argument("--device", default="cpu")
    m = sub.add_parser("compare")
    m.add_argument("old"), m.add_argument("new"), m.add_argument("gt"), m.add_argument("picture", nargs="?")
    lt = sub.add_parser("loadtime")
    lt.add_argument("world"), lt.add_argument("--gaussians", type=int, default=0,
                                              help="repeat the Gaussians up to this many (0: the world's own)")
    lt.add_argument("--threads", type=int, default=1, help="torch threads (1: comparable on a shared machine)")
    lt.add_argument("--old-layout", action="store_true", help="store the surfels in the file, as before 2026-12-05")
    if sys.argv[1:2] == ["_measure"]:
        return _measure(sys.argv[2], int(sys.argv[3]))
    a = ap.parse_args()
    if a.cmd == "layout":
        layout()
    elif a.cmd == "compact":
        compact(a.old, a.new, a.device)
    elif a.cmd == "compare":
        compare(a.old, a.new, a.gt, a.picture)
    else:
        loadtime(a.world, a.gaussians, a.threads, a.old_layout)


if __name__ == "__main__":
    main()
