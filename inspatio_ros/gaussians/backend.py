"""Which rasterizer draws the Gaussians: gsplat's CUDA kernels on a CUDA device where gsplat is
installed, else the pure-PyTorch reference (rasterize.py). Both take the same arguments and give
the same RasterOutput; ``rasterize(..., backend="auto"|"reference"|"gsplat")`` picks.

Why gsplat (PyPI 1.5.3) on the GPU rather than a renderer of our own: its kernels are the
field's reference implementation of exactly the maths rasterize.py writes out (tools/gsplat_check.py
compares the two on random scenes, forward and gradients), they are differentiable in every
Gaussian parameter, batch over cameras, and render RGB + expected depth + accumulated opacity in
one pass. The wheel is pure Python; its CUDA kernels are compiled on first use by the machine's
nvcc. ``prepare_gsplat`` restricts that compile to the GPU's own architecture (TORCH_CUDA_ARCH_LIST,
unless already set) and keeps the build in a cache folder (TORCH_EXTENSIONS_DIR, default
~/.cache/inspatio_ros/torch_extensions), so only the first run on a machine pays for it.

Mapping our conventions to gsplat's:

* pixel centres: ours at integer coordinates (camera.py), gsplat's at half-integers, so gsplat
  gets cx + 0.5 and cy + 0.5; its projected centres (``means2d``) are then 0.5 px larger than the
  reference's (only their gradients are used, for densification, and those are the same);
* cameras: we pass camera-to-world, gsplat takes world-to-camera ``viewmats`` (the inverse);
* quaternions: both w x y z, neither needs them normalised; scales: σ in metres (activated);
  opacities: activated (0..1); colours: SH coefficients (N, K, 3) with ``sh_degree`` 0 for K = 1 and
  1 for K = 4, and gsplat adds the same 0.5 and clamps at 0;
* ``render_mode="RGB+ED"``: the last channel is the expected depth Σ wᵢ zᵢ / Σ wᵢ, as ours;
* ``packed=False`` so that ``means2d`` is (B, N, 2) per Gaussian, as the optimizer's densification
  reads it; gsplat's radii are per axis (B, N, 2), reduced here to one radius, 0 = not drawn.

Known differences (small, measured by tools/gsplat_check.py): gsplat bounds each Gaussian by an
opacity-aware box of at most 3.33σ per axis where the reference uses a round 3σ, so pixels at 3
to 3.33σ (α < 1.1 % of the peak) are drawn by gsplat only; and gsplat is compiled with fast maths.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import InputError
from .rasterize import NEAR, RasterOutput
from .rasterize import rasterize as reference_rasterize

BACKENDS = ("auto", "reference", "gsplat")

_gsplat_state: dict = {}


def prepare_gsplat() -> None:
    """Compile settings for gsplat's first use: this GPU's architecture only, and a kept build
    folder. Leaves variables the user set alone."""
    if torch.cuda.is_available() and "TORCH_CUDA_ARCH_LIST" not in os.environ:
        major, minor = torch.cuda.get_device_capability()
        os.environ["TORCH_CUDA_ARCH_LIST"] = f"{major}.{minor}"
    if "TORCH_EXTENSIONS_DIR" not in os.environ:
        os.environ["TORCH_EXTENSIONS_DIR"] = str(Path.home() / ".cache" / "inspatio_ros" / "torch_extensions")
    if "MAX_JOBS" not in os.environ:
        os.environ["MAX_JOBS"] = str(max(1, os.cpu_count() or 1))


def gsplat_available() -> bool:
    """True where gsplat imports and a CUDA device exists (the answer is kept)."""
    if "available" not in _gsplat_state:
        ok = False
        if torch.cuda.is_available():
            prepare_gsplat()
            try:
                import gsplat  # noqa: F401

                ok = True
            except ImportError:
                ok = False
        _gsplat_state["available"] = ok
    return _gsplat_state["available"]


def resolve_backend(backend: str, device: torch.device | str) -> str:
    """"reference" or "gsplat" for ``backend`` on ``device``; "auto" takes gsplat on CUDA where it
    is installed. Asking for gsplat where it cannot run is one InputError."""
    if backend not in BACKENDS:
        raise InputError(f"--backend {backend!r} is not a Gaussian rasterizer",
                         f"give one of {', '.join(BACKENDS)}")
    on_cuda = torch.device(device).type == "cuda"
    if backend == "reference":
        return "reference"
    if backend == "gsplat":
        if not on_cuda:
            raise InputError("--backend gsplat needs a CUDA device", "run with --device cuda, or --backend reference")
        if not gsplat_available():
            raise InputError("--backend gsplat: the gsplat package is not installed",
                             "pip install gsplat==1.5.3 (its CUDA kernels compile on first use), "
                             "or use --backend reference")
        return "gsplat"
    return "gsplat" if on_cuda and gsplat_available() else "reference"


def world_to_camera(c2w: torch.Tensor) -> torch.Tensor:
    """(B,4,4) rigid camera-to-world -> world-to-camera (transpose of the rotation, not a general
    inverse: exact for rotations, differentiable)."""
    R = c2w[:, :3, :3]
    Rt = R.transpose(-1, -2)
    top = torch.cat([Rt, -(Rt @ c2w[:, :3, 3:4])], -1)
    bottom = torch.zeros_like(c2w[:, 3:4, :])
    bottom[..., 3] = 1
    return torch.cat([top, bottom], 1)


def gsplat_intrinsics(K: torch.Tensor) -> torch.Tensor:
    """Our K (integer pixel centres) as gsplat's (half-integer pixel centres): cx, cy + 0.5."""
    shift = torch.zeros_like(K)
    shift[:, 0, 2] = 0.5
    shift[:, 1, 2] = 0.5
    return K + shift


def rasterize_gsplat(means, quats, scales, opacities, sh, K, c2w, width: int, height: int,
                     background: torch.Tensor | None = None, near: float = NEAR,
                     rasterization=None) -> RasterOutput:
    """The reference's call through gsplat's ``rasterization`` (or ``rasterization``, a function
    with its signature: tools/gsplat_check.py passes gsplat's own)."""
    if rasterization is None:
        from gsplat import rasterization
    B, N = int(K.shape[0]), int(means.shape[0])
    dtype, device = torch.float32, means.device
    if N == 0:
        bg = torch.zeros(3, device=device) if background is None else background.to(device, dtype)
        return RasterOutput(bg.expand(B, height, width, 3).clone(), torch.zeros((B, height, width), device=device),
                            torch.zeros((B, height, width), device=device), torch.zeros((B, 0, 2), device=device),
                            torch.zeros((B, 0), dtype=torch.int64, device=device))
    K = K.to(device, dtype)
    c2w = c2w.to(device, dtype)
    degree = {1: 0, 4: 1}.get(int(sh.shape[1]))
    if degree is None:
        raise ValueError(f"SH coefficients of shape {tuple(sh.shape)}: 1 or 4 per channel expected")
    backgrounds = None if background is None else background.to(device, dtype)[None].expand(B, 3).contiguous()
    colours, alphas, meta = rasterization(
        means.contiguous(), quats.contiguous(), scales.contiguous(), opacities.contiguous(), sh.contiguous(),
        world_to_camera(c2w).contiguous(), gsplat_intrinsics(K).contiguous(), int(width), int(height),
        near_plane=near, sh_degree=degree, packed=False, backgrounds=backgrounds, render_mode="RGB+ED")
    radii = meta["radii"]
    if radii.dim() == 3:                       # gsplat >= 1.5: per-axis radii (B, N, 2)
        radii = torch.where((radii > 0).all(-1), radii.max(-1).values, torch.zeros_like(radii[..., 0]))
    return RasterOutput(colours[..., :3], colours[..., 3], alphas[..., 0], meta["means2d"], radii.to(torch.int64))


def rasterize(means, quats, scales, opacities, sh, K, c2w, width: int, height: int,
              background: torch.Tensor | None = None, backend: str = "auto", near: float = NEAR) -> RasterOutput:
    """Render N Gaussians into B cameras with the rasterizer ``backend`` picks for the tensors'
    device (arguments as rasterize.rasterize)."""
    if resolve_backend(backend, means.device) == "gsplat":
        return rasterize_gsplat(means, quats, scales, opacities, sh, K, c2w, width, height, background, near)
    return reference_rasterize(means, quats, scales, opacities, sh, K, c2w, width, height, background, near=near)
