"""Numbers for docs/notes/2026-12-05-gaussian-size.md: how big an optimized world is, and what its
CPU drawing looks like when the surfels are made at load instead of stored.

    PYTHONPATH=. python tools/gaussian_size.py layout
    PYTHONPATH=. python tools/gaussian_size.py compact OLD_OPTIMIZED NEW [--device cpu|cuda]
    PYTHONPATH=. python tools/gaussian_size.py compare OLD_OPTIMIZED NEW GT_DIR [PICTURE.png]
    PYTHONPATH=. python tools/gaussian_size.py loadtime WORLD [--gaussians 1000000] [--threads 1]

``layout``: bytes per Gaussian of the stored layer (from world.py's field table) and the file
sizes that follow for the H200 street and kitti06 worlds (1 M Gaussians each, and their stored
surfel counts of today: 13.2 M and 22.5 M).
``compact``: rewrite an optimized world written before 2026-12-05 (split surfels stored beside
the Gaussians) in today's layout: the Gaussians unchanged, the colour field baked from their render
over the source frames (what ``optimize`` now writes), no surfels. No re-optimization.
``compare``: held-out frames drawn by the CPU Renderer from both worlds (the old one's stored
surfels, the new one's surfels made at load): PSNR of each against the truth and of the new
against the old, file sizes, surfel counts, and CPU seconds to load and draw.
``loadtime``: the world's Gaussians (with their cameras) repeated along x until there are
``--gaussians`` of them, then the CPU seconds and peak RSS of making the surfels at load
(World.load + world_point_cloud) and of the Renderer's set-up.
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


def gaussian_bytes(dynamic: bool = False, colour_field: bool = True) -> int:
    from inspatio_ros.world import _GAUSSIAN_FIELDS

    group = "gauss_dynamic" if dynamic else "gauss_static"
    total = 0
    for key, (dtype, shape) in _GAUSSIAN_FIELDS.items():
        if not key.startswith(group + ".") or (not colour_field and "surfel_rgb" in key):
            continue
        total += int(np.dtype(dtype).itemsize * int(np.prod(shape or (1,))))
    return total


def layout() -> None:
    with_field, without = gaussian_bytes(), gaussian_bytes(colour_field=False)
    print(f"static Gaussian: {without} bytes (parameters) + {with_field - without} (CPU colour field) = {with_field}; "
          f"dynamic: {gaussian_bytes(True)}")
    print(f"a stored surfel: {STATIC_SURFEL_BYTES} bytes")
    for name, gaussians, surfels in (("street (H200, 1 M Gaussians)", 1_000_000, 13_200_000),
                                     ("kitti06 (H200, 1 M Gaussians)", 1_000_000, 22_500_000)):
        before = gaussians * without + surfels * STATIC_SURFEL_BYTES
        after = gaussians * with_field
        print(f"{name}: before {before / MB:.0f} MB ({gaussians * without / MB:.0f} Gaussians + "
              f"{surfels * STATIC_SURFEL_BYTES / MB:.0f} surfels), after {after / MB:.0f} MB")


def compact(old_path: str, new_path: str, device: str) -> None:
    from inspatio_ros.gaussians.optimize import _optimized_world, initial_gaussians
    from inspatio_ros.world import World

    old = World.load(old_path)
    if not old.has_gaussians:
        sys.exit(f"{old_path} has no Gaussian layer: give an optimized world")
    t0 = time.process_time()
    new = _optimized_world(old, initial_gaussians(old), dict(old.info.get("optimized", {})), device)
    new.save(new_path)
    print(f"wrote {new_path}: {new.num_gaussians:,} Gaussians, no surfels (was {old.num_static + old.num_dynamic:,}); "
          f"{os.path.getsize(old_path) / MB:.2f} -> {os.path.getsize(new_path) / MB:.2f} MB; "
          f"baking {time.process_time() - t0:.1f} s CPU")


def _held_out_renders(world):
    from inspatio_ros.render import Renderer

    t0 = time.process_time()
    renderer = Renderer(world, "cpu")
    setup = time.process_time() - t0
    images = [renderer.render(renderer.cameras(world.heldout_c2w[k:k + 1]), float(world.heldout_time[k])).rgb[0].numpy()
              for k in range(len(world.heldout_c2w))]
    return images, setup, len(renderer.cloud.xyz) if renderer.cloud is not None else -1


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
    (old_img, old_setup, old_n), (new_img, new_setup, new_n) = _held_out_renders(old), _held_out_renders(new)
    print(f"{len(truth)} held-out frames of {gt_dir}")
    print(f"  old layout: {os.path.getsize(old_path) / MB:7.2f} MB, {old_n:,} stored surfels, set-up {old_setup:.2f} s CPU, "
          f"PSNR vs truth {psnr(old_img, truth):.2f} dB")
    print(f"  new layout: {os.path.getsize(new_path) / MB:7.2f} MB, {new_n:,} surfels made at load, set-up {new_setup:.2f} s CPU, "
          f"PSNR vs truth {psnr(new_img, truth):.2f} dB, vs the old layout's drawing {psnr(new_img, old_img):.2f} dB")
    if picture:
        from inspatio_ros.video import write_png

        write_png(picture, np.concatenate([truth[0], old_img[0], new_img[0]], axis=1))


def loadtime(path: str, gaussians: int, threads: int) -> None:
    from inspatio_ros.render import Renderer, world_point_cloud
    from inspatio_ros.world import World

    world = World.load(path)
    n = len(world.gauss_static_xyz)
    if n == 0 or len(world.gauss_static_surfel_rgb) != n:
        sys.exit(f"{path}: give an optimized world in today's layout (tools/gaussian_size.py compact)")
    copies = -(-gaussians // n)
    span = float(np.ptp(np.concatenate([world.gauss_static_xyz[:, 0], world.frame_c2w[:, 0, 3]]))) + 10.0
    shift = np.arange(copies)[:, None] * span
    tiled = {}
    for name in ("xyz", "log_scale", "rotation", "opacity", "sh", "surfel_rgb", "surfel_rgb_gradient"):
        a = getattr(world, f"gauss_static_{name}")
        tiled[f"gauss_static_{name}"] = np.concatenate([a] * copies)[:gaussians]
    xyz = tiled["gauss_static_xyz"].copy()
    xyz[:, 0] += np.repeat(shift[:, 0], n)[:gaussians].astype(np.float32)
    tiled["gauss_static_xyz"] = xyz
    c2w = np.concatenate([world.frame_c2w] * copies)
    c2w[:, 0, 3] += np.repeat(shift[:, 0], len(world.frame_c2w))
    frames = len(c2w)
    big = dataclasses.replace(world, **tiled, frame_c2w=c2w, frame_time=np.arange(frames, dtype=np.float64) * 0.1,
                              frame_index=np.arange(frames, dtype=np.int32), heldout_c2w=world.heldout_c2w[:0],
                              heldout_time=world.heldout_time[:0], heldout_index=world.heldout_index[:0])
    import tempfile

    out = os.path.join(tempfile.gettempdir(), "gaussian_size_loadtime.safetensors")
    big.save(out)
    size = os.path.getsize(out)
    torch.set_num_threads(threads)
    t0 = time.process_time()
    loaded = World.load(out)
    t1 = time.process_time()
    cloud = world_point_cloud(loaded)
    t2 = time.process_time()
    Renderer(cloud, "cpu")
    t3 = time.process_time()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{gaussians:,} Gaussians ({copies} copies of {n:,}, {frames} source cameras), file {size / MB:.1f} MB, "
          f"{torch.get_num_threads()} thread(s): load {t1 - t0:.2f} s, surfels made at load {t2 - t1:.2f} s CPU "
          f"({len(cloud.xyz):,} surfels, {len(cloud.xyz) / gaussians:.1f} a Gaussian), renderer set-up {t3 - t2:.2f} s; "
          f"peak RSS {rss:.0f} MB")
    os.remove(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("layout")
    c = sub.add_parser("compact")
    c.add_argument("old"), c.add_argument("new"), c.add_argument("--device", default="cpu")
    m = sub.add_parser("compare")
    m.add_argument("old"), m.add_argument("new"), m.add_argument("gt"), m.add_argument("picture", nargs="?")
    lt = sub.add_parser("loadtime")
    lt.add_argument("world"), lt.add_argument("--gaussians", type=int, default=1_000_000)
    lt.add_argument("--threads", type=int, default=1, help="torch threads (1: comparable on a shared machine)")
    a = ap.parse_args()
    if a.cmd == "layout":
        layout()
    elif a.cmd == "compact":
        compact(a.old, a.new, a.device)
    elif a.cmd == "compare":
        compare(a.old, a.new, a.gt, a.picture)
    else:
        loadtime(a.world, a.gaussians, a.threads)


if __name__ == "__main__":
    main()
