"""An optimized world's Gaussian layer drawn for the renderer (render/renderer.py uses it on CUDA
where gsplat is installed): one rasterizer pass per batch of cameras gives RGB, expected depth
(metres along the optical axis) and coverage (accumulated opacity), as RenderOutput.

Coverage > 0.5 counts as seen; depth is NaN elsewhere (as the surfel renderer's holes), and the
world's sky (info.sky: gaussians/sky.py), or the background colour for a world without one, shows
through in proportion to what the Gaussians leave uncovered.
"""
from __future__ import annotations

import torch

from ..render.types import Cameras, RenderOutput
from .backend import rasterize
from .model import from_world
from .sky import sky_image, world_sky

COVERED = 0.5          # accumulated opacity above which a pixel counts as seen (coverage True, depth kept)


class GaussianDrawer:
    """A world's Gaussians uploaded once, activated (σ, opacity, unit quaternions), ready to draw."""

    def __init__(self, world, device, background=(0, 0, 0), backend: str = "auto"):
        self.device = torch.device(device)
        self.backend = backend
        layers = [from_world(world, "static"), from_world(world, "dynamic")]
        cat = (lambda name: torch.cat([getattr(g, name) for g in layers]).to(self.device, torch.float32))
        quats = cat("quats")
        self.means = cat("means").contiguous()
        self.quats = (quats / quats.norm(dim=1, keepdim=True).clamp_min(1e-12)).contiguous()
        self.scales = torch.exp(cat("log_scales")).contiguous()
        self.opacities = torch.sigmoid(cat("opacity_logits")).contiguous()
        self.sh = cat("sh").contiguous()
        n_static = len(layers[0])
        inf = torch.full((n_static,), float("inf"), dtype=torch.float64)
        self.t_start = torch.cat([-inf, layers[1].t_start.double()]).to(self.device)
        self.t_end = torch.cat([inf, layers[1].t_end.double()]).to(self.device)
        self.has_dynamic = len(layers[1]) > 0
        self.background = torch.tensor(background, dtype=torch.float32, device=self.device) / 255.0
        self.sky = world_sky(world)
        if self.sky is not None:
            self.sky = self.sky.to(self.device).requires_grad_(False)

    def __len__(self) -> int:
        return int(self.means.shape[0])

    @torch.no_grad()
    def render(self, cameras: Cameras, t: float | None = None) -> RenderOutput:
        if t is not None and self.has_dynamic:
            idx = torch.nonzero((self.t_start <= t) & (t <= self.t_end))[:, 0]
            args = (self.means[idx], self.quats[idx], self.scales[idx], self.opacities[idx], self.sh[idx])
        else:
            args = (self.means, self.quats, self.scales, self.opacities, self.sh)
        K, c2w = cameras.K.to(self.device), cameras.c2w.to(self.device)
        out = rasterize(*args, K, c2w, cameras.width, cameras.height,
                        background=self.background if self.sky is None else None, backend=self.backend)
        # The sky every few pixels, interpolated (sky.sky_image: within 2 grey levels on a smooth
        # sky, a sixteenth of the directions for three 1080p cameras a frame).
        colour = out.rgb if self.sky is None else \
            out.rgb + (1 - out.coverage)[..., None] * sky_image(self.sky, K, c2w, cameras.width, cameras.height)
        covered = out.coverage > COVERED
        rgb = (colour.clamp(0, 1) * 255).round().to(torch.uint8)
        depth = torch.where(covered, out.depth, torch.full_like(out.depth, float("nan")))
        return RenderOutput(rgb, depth, covered)
