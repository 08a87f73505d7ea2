"""Numbers for docs/notes/2026-12-04-gaussian-world.md: the reference rasterizer's CPU time at toy
sizes, and held-out PSNR of a world before and after ``inspatio-ros optimize``.

    PYTHONPATH=. python tools/gaussian_numbers.py timing
    PYTHONPATH=. python tools/gaussian_numbers.py psnr WORLD OPTIMIZED_WORLD GT_DIR [PICTURE.png]

``timing``: forward and backward of N random Gaussians (σ 2-8 cm at 4-8 m) into one camera, CPU
time of this process (the wall time on a shared machine says more about the neighbours), median of
5 after a warm-up, with 1 thread and with torch's default.
``psnr``: held-out frames rendered by the public Renderer (surfel path; CUDA when there is one) from both worlds, and
the optimized world's Gaussians by the reference rasterizer; PICTURE: the first held-out frame,
left to right: truth, surfel world, optimized (surfel render), optimized (Gaussian render).
"""
from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("INSPATIO_NO_PROGRESS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402


def timing() -> None:
    from inspatio_ros.gaussians.rasterize import rasterize

    for threads in (1, torch.get_num_threads()):
        torch.set_num_threads(threads)
        for (w, h), n in (((64, 48), 1000), ((64, 48), 4000), ((160, 90), 1000), ((160, 90), 4000)):
            g = torch.Generator().manual_seed(0)
            means = torch.rand(n, 3, generator=g) * torch.tensor([8.0, 5.0, 4.0]) + torch.tensor([-4.0, -2.5, 4.0])
            params = [means, torch.randn(n, 4, generator=g), torch.rand(n, 3, generator=g) * 0.06 + 0.02,
                      torch.rand(n, generator=g) * 0.9 + 0.05, torch.randn(n, 4, 3, generator=g) * 0.3]
            for p in params:
                p.requires_grad_(True)
            f = 0.8 * w
            K = torch.tensor([[f, 0, (w - 1) / 2], [0, f, (h - 1) / 2], [0, 0, 1.0]])[None]
            fwd, bwd = [], []
            for i in range(6):
                t0 = time.process_time()
                out = rasterize(*params, K, torch.eye(4)[None], w, h)
                t1 = time.process_time()
                (out.rgb.mean() + out.depth.mean()).backward()
                t2 = time.process_time()
                if i:
                    fwd.append(t1 - t0)
                    bwd.append(t2 - t1)
            print(f"{w}x{h} {n:5d} Gaussians, {threads} thread(s): forward {1000 * np.median(fwd):6.1f} ms, "
                  f"backward {1000 * np.median(bwd):6.1f} ms (CPU time), coverage {float(out.coverage.mean()):.2f}")


def psnr_table(world_path: str, optimized_path: str, gt_dir: str, picture: str | None = None) -> None:
    from inspatio_ros.gaussians.model import from_world
    from inspatio_ros.gaussians.rasterize import rasterize
    from inspatio_ros.ingest.sources import open_input
    from inspatio_ros.metrics import psnr, ssim
    from inspatio_ros.render import Renderer
    from inspatio_ros.render.types import resolve_device
    from inspatio_ros.world import World

    device = resolve_device("auto")

    fs = open_input(gt_dir)
    world, opt = World.load(world_path), World.load(optimized_path)
    rows = {"surfel world, surfel render": [], "optimized world, surfel render (CPU path)": [],
            "optimized world, Gaussian render (reference rasterizer)": []}
    intr = world.intrinsics
    K = torch.as_tensor(intr.K, dtype=torch.float32, device=device)[None]
    static, dynamic = from_world(opt, "static").to(device), from_world(opt, "dynamic").to(device)
    shown = []
    for k in range(len(world.heldout_c2w)):
        c2w, t, idx = world.heldout_c2w[k], float(world.heldout_time[k]), int(world.heldout_index[k])
        truth = fs.load(idx)
        for name, w in (("surfel world, surfel render", world), ("optimized world, surfel render (CPU path)", opt)):
            r = Renderer(w, device)
            rgb = r.render(r.cameras(c2w[None]), t).rgb[0].cpu().numpy()
            rows[name].append((psnr(rgb, truth), ssim(rgb, truth)))
            if k == 0:
                shown.append(rgb)
        alive = dynamic.alive(t)
        parts = [static] + ([] if alive is None or not bool(alive.any()) else [dynamic])
        cat = (lambda name: torch.cat([getattr(p, name)[p.alive(t) if p.t_start is not None else slice(None)]
                                       for p in parts]))
        out = rasterize(cat("means"), cat("quats"), cat("scales"), cat("opacities"), cat("sh"), K,
                        torch.as_tensor(c2w[None], dtype=torch.float32, device=device), intr.width, intr.height)
        rgb = (out.rgb[0].clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
        rows["optimized world, Gaussian render (reference rasterizer)"].append((psnr(rgb, truth), ssim(rgb, truth)))
        if k == 0 and picture:
            from inspatio_ros.video import write_png

            write_png(picture, np.concatenate([truth] + shown + [rgb], axis=1))
    print(f"{len(world.heldout_c2w)} held-out frames of {gt_dir}; {world.num_static:,} surfels -> "
          f"{opt.num_gaussians:,} Gaussians ({opt.info.get('optimized', {}).get('steps')} steps)")
    for name, values in rows.items():
        v = np.array(values)
        print(f"  {name:58s} PSNR {v[:, 0].mean():6.2f} dB  SSIM {v[:, 1].mean():.3f}")


if __name__ == "__main__":
    if sys.argv[1:2] == ["timing"]:
        timing()
    elif sys.argv[1:2] == ["psnr"] and len(sys.argv) in (5, 6):
        psnr_table(*sys.argv[2:])
    else:
        print(__doc__)
        sys.exit(2)
