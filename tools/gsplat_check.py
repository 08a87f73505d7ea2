"""Compare the reference rasterizer (inspatio_ros/gaussians/rasterize.py) with gsplat's CUDA kernels
on random scenes: forward images, depth and coverage, and the gradients of a random weighting of
them with respect to every Gaussian parameter. Needs a CUDA device and gsplat (1.5.3).

    PYTHONPATH=. python tools/gsplat_check.py [--scenes 5] [--json OUT.json]

Prints one line per scene and a summary; exits 1 when a difference passes its tolerance (see
TOLERANCES: the two differ by design only in the bounding box of a Gaussian, 3σ round here,
an opacity-aware box of up to 3.33σ per axis in gsplat, so pixels where α is under 1.1 % of the
peak; and by gsplat's fast maths). test/gaussians/test_gsplat_cuda.py runs ``check`` on CUDA.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time

import torch

TOLERANCES = {
    "rgb_mean_abs": 2e-3,      # 0..1 colour, mean over pixels
    "rgb_max_abs": 0.06,
    "coverage_mean_abs": 2e-3,
    "depth_rel_median": 1e-3,  # where both cover > 0.5
    "grad_cosine_min": 0.99,   # every parameter's gradient, as one vector, reference vs gsplat
}


def random_scene(seed: int, n: int, cameras: int, width: int, height: int, device) -> dict:
    """Gaussians in a box 2-12 m in front of cameras spread over a metre, random rotations, σ
    1-30 cm (some flat), opacities 0.05-0.99, SH degree 1."""
    g = torch.Generator().manual_seed(seed)

    def u(*shape, lo=0.0, hi=1.0):
        return lo + (hi - lo) * torch.rand(*shape, generator=g, dtype=torch.float64)

    means = torch.stack([u(n, lo=-4, hi=4), u(n, lo=-3, hi=3), u(n, lo=2, hi=12)], -1)
    quats = torch.randn(n, 4, generator=g, dtype=torch.float64)
    scales = torch.exp(u(n, 3, lo=math.log(0.01), hi=math.log(0.3)))
    flat = u(n) < 0.3
    scales[flat, 2] *= 0.05
    opacities = u(n, lo=0.05, hi=0.99)
    sh = torch.randn(n, 4, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 0.2, 0.2, 0.2])[:, None]
    c2w = torch.eye(4, dtype=torch.float64).repeat(cameras, 1, 1)
    for i in range(cameras):
        a = float(u(1, lo=-0.15, hi=0.15))
        c2w[i, :3, :3] = torch.tensor([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]],
                                      dtype=torch.float64)
        c2w[i, :3, 3] = u(3, lo=-0.5, hi=0.5)
    f = 0.9 * width
    K = torch.tensor([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1]], dtype=torch.float64)
    K = K.repeat(cameras, 1, 1)
    background = u(3)
    out = dict(means=means, quats=quats, scales=scales, opacities=opacities, sh=sh, K=K, c2w=c2w, background=background)
    return {k: v.to(device, torch.float32) for k, v in out.items()}


def _render_and_grad(fn, scene, width, height, weights):
    params = {k: scene[k].clone().requires_grad_(True) for k in ("means", "quats", "scales", "opacities", "sh")}
    out = fn(params["means"], params["quats"], params["scales"], params["opacities"], params["sh"], scene["K"],
             scene["c2w"], width, height, scene["background"])
    depth = torch.where(out.coverage > 0.5, out.depth, torch.zeros_like(out.depth))
    loss = (out.rgb * weights["rgb"]).sum() + (out.coverage * weights["coverage"]).sum() \
        + (depth * weights["depth"]).sum() * 0.01
    loss.backward()
    return out, {k: v.grad.detach().clone() for k, v in params.items()}


def compare(scene, width, height, seed: int) -> dict:
    """Differences between the reference and gsplat on one scene."""
    from inspatio_ros.gaussians.backend import rasterize_gsplat
    from inspatio_ros.gaussians.rasterize import rasterize as reference

    g = torch.Generator().manual_seed(seed + 1000)
    B = scene["K"].shape[0]
    weights = {"rgb": torch.rand(B, height, width, 3, generator=g), "coverage": torch.rand(B, height, width, generator=g),
               "depth": torch.rand(B, height, width, generator=g)}
    weights = {k: v.to(scene["means"].device) for k, v in weights.items()}
    ref, ref_grad = _render_and_grad(lambda *a: reference(*a), scene, width, height, weights)
    gs, gs_grad = _render_and_grad(lambda *a: rasterize_gsplat(*a), scene, width, height, weights)
    both = (ref.coverage > 0.5) & (gs.coverage > 0.5)
    rel = ((ref.depth - gs.depth).abs() / ref.depth.clamp_min(1e-6))[both]
    result = {
        "rgb_mean_abs": float((ref.rgb - gs.rgb).abs().mean()),
        "rgb_max_abs": float((ref.rgb - gs.rgb).abs().max()),
        "coverage_mean_abs": float((ref.coverage - gs.coverage).abs().mean()),
        "depth_rel_median": float(rel.median()) if rel.numel() else 0.0,
        "depth_rel_p99": float(rel.quantile(0.99)) if rel.numel() else 0.0,
    }
    cosines = {}
    for k in ref_grad:
        a, b = ref_grad[k].flatten().double(), gs_grad[k].flatten().double()
        cosines[k] = float((a @ b) / (a.norm() * b.norm()).clamp_min(1e-30))
        result[f"grad_{k}_rel_norm_diff"] = float((a - b).norm() / a.norm().clamp_min(1e-30))
    result["grad_cosines"] = cosines
    result["grad_cosine_min"] = min(cosines.values())
    return result


def failures(result: dict) -> list[str]:
    bad = []
    for key, limit in TOLERANCES.items():
        value = result[key]
        if (key == "grad_cosine_min" and not value >= limit) or (key != "grad_cosine_min" and not value <= limit):
            bad.append(f"{key} {value:.4g} (limit {limit})")
    return bad


def check(scenes: int = 5, n: int = 3000, cameras: int = 3, width: int = 320, height: int = 180,
          device: str = "cuda", log=print) -> list[dict]:
    """Run ``scenes`` random scenes; each result carries its ``failures`` (empty: agreed)."""
    results = []
    for seed in range(scenes):
        scene = random_scene(seed, n, cameras, width, height, device)
        t0 = time.perf_counter()
        r = compare(scene, width, height, seed)
        r.update(seed=seed, gaussians=n, cameras=cameras, size=[width, height],
                 seconds=round(time.perf_counter() - t0, 3), failures=failures(r))
        results.append(r)
        log(f"scene {seed}: rgb mean/max {r['rgb_mean_abs']:.2e}/{r['rgb_max_abs']:.3f}, coverage "
            f"{r['coverage_mean_abs']:.2e}, depth rel median {r['depth_rel_median']:.2e}, gradient cosines "
            + ", ".join(f"{k} {v:.5f}" for k, v in r["grad_cosines"].items())
            + ("" if not r["failures"] else "  FAIL: " + "; ".join(r["failures"])))
    return results


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", type=int, default=5)
    ap.add_argument("--gaussians", type=int, default=3000)
    ap.add_argument("--size", default="320x180")
    ap.add_argument("--cameras", type=int, default=3)
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args(argv)
    from inspatio_ros.gaussians.backend import gsplat_available

    if not torch.cuda.is_available() or not gsplat_available():
        print("gsplat_check needs a CUDA device and gsplat (pip install gsplat==1.5.3)", file=sys.stderr)
        return 2
    w, h = (int(v) for v in a.size.split("x"))
    t0 = time.perf_counter()
    import gsplat

    results = check(a.scenes, a.gaussians, a.cameras, w, h)
    summary = {"gsplat": gsplat.__version__, "torch": torch.__version__, "device": torch.cuda.get_device_name(),
               "seconds": round(time.perf_counter() - t0, 1), "tolerances": TOLERANCES, "scenes": results,
               "passed": not any(r["failures"] for r in results)}
    print(f"{'PASSED' if summary['passed'] else 'FAILED'}: {len(results)} scenes, gsplat {gsplat.__version__}, "
          f"{summary['seconds']} s (the first gsplat call compiles its kernels)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(summary, f, indent=1)
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
