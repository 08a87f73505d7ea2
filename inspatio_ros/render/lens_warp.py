"""Camera images through a lens: distorted pinhole models warped from a pinhole render
(plumb_bob, rational_polynomial), and fisheye images rendered by ray direction (equidistant).

A distorted camera (K, lens, size) is drawn as a pinhole view wide enough to hold the rays of
all its pixels (lens.covering_pinhole: same focal lengths, larger image) and warped on the
renderer's device: colour bilinearly, depth and coverage by the nearest render pixel (a blend
of a near and a far depth would be a surface that is not there). Pixels whose ray the lens
does not image (past the model's fold) get the background colour, NaN depth and no coverage.
The warp grids are made once per camera (numpy, float64) and kept on the device.

A fisheye (equidistant, up to 190 degrees) cannot be one pinhole view: its rim looks sideways
and behind. Each of its pixels' rays is looked up in cube-face views rendered in one batch
(render/directional.py), so the rim is sampled as finely as the centre and nothing is stretched.
Its depth image holds the range along each pixel's ray (z along the optical axis is zero at 90
degrees and negative beyond), and its points are range x ray.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..camera import Intrinsics
from ..lens import Lens, covering_pinhole, distorted_rays
from .types import RenderOutput


@dataclass
class DistortedView:
    """How one distorted camera is drawn from its pinhole render."""

    render_intrinsics: Intrinsics      # the covering pinhole view that is rendered
    grid: torch.Tensor                 # (H, W, 2) float32 grid_sample coordinates into that render
    valid: torch.Tensor                # (H, W) bool: pixels the lens images
    ray_per_depth: torch.Tensor        # (H, W, 3) float32 (x/z, y/z, 1) of each pixel's ray (NaN invalid)
    # On the CPU: cv2.remap's fixed-point maps into the render (invalid pixels outside it).
    remap: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def make(cls, intrinsics: Intrinsics, lens: Lens, device) -> "DistortedView":
        if lens.is_fisheye:
            raise ValueError("an equidistant (fisheye) camera is rendered by ray direction, not warped")
        size = (intrinsics.width, intrinsics.height)
        rays, valid = distorted_rays(intrinsics.K, lens, size)
        K_r, (w_r, h_r) = covering_pinhole(intrinsics.K, lens, size, rays=(rays, valid))
        render = Intrinsics(K_r[0, 0], K_r[1, 1], K_r[0, 2], K_r[1, 2], w_r, h_r)
        with np.errstate(invalid="ignore", divide="ignore"):
            ray_per_depth = rays / rays[..., 2:3]
            ray_xy = ray_per_depth[..., :2]
        u = ray_xy[..., 0] * K_r[0, 0] + K_r[0, 2]
        v = ray_xy[..., 1] * K_r[1, 1] + K_r[1, 2]
        # grid_sample with align_corners=True: -1 and +1 are the centres of the outer pixels.
        grid = np.stack([2.0 * u / (w_r - 1) - 1.0, 2.0 * v / (h_r - 1) - 1.0], -1)
        grid[~valid] = -2.0                    # outside the render: zero, then set explicitly
        as_t = lambda a, dt=torch.float32: torch.as_tensor(np.ascontiguousarray(a)).to(device, dt)  # noqa: E731
        remap = None
        if torch.device(device).type == "cpu":
            u, v = np.where(valid, u, -1e4), np.where(valid, v, -1e4)
            remap = cv2.convertMaps(u.astype(np.float32), v.astype(np.float32), cv2.CV_16SC2)
        return cls(render, as_t(grid), as_t(valid, torch.bool), as_t(ray_per_depth), remap)


def warp_output(out: RenderOutput, views: list[DistortedView], background: tuple[int, int, int]) -> RenderOutput:
    """A batch rendered at the views' render_intrinsics -> the distorted images (one batch). On
    the CPU through cv2.remap (its fixed-point bicubic is ~20x faster there than grid_sample's);
    elsewhere torch's grid_sample, batched."""
    if out.rgb.device.type == "cpu" and all(v.remap is not None for v in views):
        return _warp_cv2(out, views, background)
    grid = torch.stack([v.grid for v in views])                    # (B, H, W, 2)
    valid = torch.stack([v.valid for v in views])
    rgb = out.rgb.permute(0, 3, 1, 2).to(torch.float32)
    rgb = F.grid_sample(rgb, grid, mode="bicubic", padding_mode="border", align_corners=True)
    rgb = rgb.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    rgb = torch.where(valid[..., None], rgb, torch.tensor(background, dtype=torch.uint8, device=rgb.device))
    depth = F.grid_sample(out.depth[:, None], grid, mode="nearest", padding_mode="border", align_corners=True)[:, 0]
    depth = torch.where(valid, depth, torch.full_like(depth, float("nan")))
    coverage = F.grid_sample(out.coverage[:, None].to(torch.float32), grid, mode="nearest", padding_mode="border",
                             align_corners=True)[:, 0] > 0.5
    coverage &= valid
    return RenderOutput(rgb.contiguous(), depth.contiguous(), coverage.contiguous(), None, out.need_counts)


def _warp_cv2(out: RenderOutput, views: list[DistortedView], background: tuple[int, int, int]) -> RenderOutput:
    rgb_in, depth_in, cov_in = out.rgb.numpy(), out.depth.numpy(), out.coverage.numpy().view(np.uint8)
    rgb, depth, coverage = [], [], []
    for i, view in enumerate(views):
        m1, m2 = view.remap
        rgb.append(cv2.remap(rgb_in[i], m1, m2, cv2.INTER_CUBIC, borderMode=cv2.BORDER_CONSTANT,
                             borderValue=tuple(int(c) for c in background)))
        depth.append(cv2.remap(depth_in[i], m1, m2, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                               borderValue=float("nan")))
        coverage.append(cv2.remap(cov_in[i], m1, m2, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT,
                                  borderValue=0))
    return RenderOutput(torch.from_numpy(np.stack(rgb)), torch.from_numpy(np.stack(depth)),
                        torch.from_numpy(np.stack(coverage).astype(bool)), None, out.need_counts)


class FisheyeView:
    """How one equidistant camera is drawn: its valid pixels' rays (optical frame) covered by
    cube-face views with a pixel pitch of 1 / focal length (the fisheye's own pitch at its centre;
    equidistant pixels only get coarser towards the rim)."""

    def __init__(self, intrinsics: Intrinsics, lens: Lens, device):
        from .directional import DirectionalViews

        if not lens.is_fisheye:
            raise ValueError(f"a {lens.model} camera is warped from a pinhole render (DistortedView)")
        size = (intrinsics.width, intrinsics.height)
        rays, valid = distorted_rays(intrinsics.K, lens, size)
        if not valid.any():
            raise ValueError("the fisheye images no ray")
        self.width, self.height = size
        self.views = DirectionalViews(rays[valid], 1.0 / max(intrinsics.fx, intrinsics.fy), device)
        self.valid = torch.as_tensor(valid).to(self.views.device)
        # Points are range x unit ray: the depth image of a fisheye holds ranges.
        self.ray_per_depth = torch.as_tensor(np.where(valid[..., None], rays, np.nan)).to(self.views.device,
                                                                                           torch.float32)

    def output(self, out: RenderOutput, background: tuple[int, int, int]) -> RenderOutput:
        """The fisheye image from a render of ``views.cameras(...)`` (one pose)."""
        samples = self.views.sample(out)
        h, w = self.height, self.width
        dev = samples.range.device
        rgb = torch.empty((1, h, w, 3), dtype=torch.uint8, device=dev)
        rgb[:] = torch.tensor(background, dtype=torch.uint8, device=dev)
        rgb[:, self.valid] = samples.rgb
        depth = torch.full((1, h, w), float("nan"), dtype=torch.float32, device=dev)
        depth[:, self.valid] = samples.range
        coverage = torch.zeros((1, h, w), dtype=torch.bool, device=dev)
        coverage[:, self.valid] = samples.coverage
        return RenderOutput(rgb, depth, coverage, None, out.need_counts)
