"""The refiner network: a compact U-Net from a render (rgb, depth, coverage) to the final image.

Input channels (float, NCHW): rgb in [0, 1] (3), coverage (1: the world saw the pixel, 0: hole
filled) and a depth feature ``s / (s + depth)`` (0 where the depth is unknown or the sky), with
``s`` the world's typical depth (``GeneratorConfig.depth_scale``), so near is 1 and far is 0.

The network works at half resolution from the start (pixel unshuffle, then 4 levels down to 1/16)
and predicts a residual that is added to the render's rgb and pixel-shuffled back to full size:
at 1920x1080 it costs about 110 GFLOP per image. It has no normalisation layers, so a batch of
cameras gives each camera the image it would get alone.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

IN_CHANNELS = 5


@dataclass
class GeneratorConfig:
    """What is needed to rebuild the network (stored with the weights)."""

    widths: list[int] = field(default_factory=lambda: [32, 48, 96, 128])
    depth_scale: float = 10.0        # metres: s of the depth feature s / (s + depth)
    in_channels: int = IN_CHANNELS

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "GeneratorConfig":
        return cls(widths=[int(w) for w in d["widths"]], depth_scale=float(d["depth_scale"]),
                   in_channels=int(d.get("in_channels", IN_CHANNELS)))

    @property
    def multiple(self) -> int:
        """Image sides are padded to a multiple of this (unshuffle x 2, then each level x 2)."""
        return 2 ** len(self.widths)


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1)


class _Block(nn.Sequential):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__(_conv(cin, cout, stride), nn.LeakyReLU(0.1, inplace=True), _conv(cout, cout),
                         nn.LeakyReLU(0.1, inplace=True))


class RefinerNet(nn.Module):
    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.config = config
        w = config.widths
        self.stem = _Block(config.in_channels * 4, w[0])
        self.down = nn.ModuleList([_Block(w[i - 1], w[i], stride=2) for i in range(1, len(w))])
        self.up = nn.ModuleList([_Block(w[i] + w[i - 1], w[i - 1]) for i in range(len(w) - 1, 0, -1)])
        self.head = nn.Conv2d(w[0], 3 * 4, 3, padding=1)
        with torch.no_grad():                   # starts close to the identity: refined ~ render
            self.head.weight.mul_(0.1)
            self.head.bias.zero_()

    def forward(self, x: torch.Tensor, clamp: bool = True) -> torch.Tensor:
        """x (B, 5, H, W), H and W multiples of ``config.multiple`` -> rgb (B, 3, H, W) in [0, 1].

        Training passes ``clamp=False``: a clamped pixel has no gradient, and a network pushed
        past 0 or 1 everywhere by one large step would never come back."""
        out = x[:, :3].float() + self.residual(x).float()
        return out.clamp(0.0, 1.0) if clamp else out

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """The correction added to the render's rgb (B, 3, H, W), in the network's dtype."""
        h = self.stem(F.pixel_unshuffle(x, 2))
        skips = [h]
        for block in self.down:
            h = block(h)
            skips.append(h)
        skips.pop()
        for block in self.up:
            skip = skips.pop()
            h = F.interpolate(h, size=skip.shape[-2:], mode="nearest")
            h = block(torch.cat([h, skip], 1))
        return F.pixel_shuffle(self.head(h), 2)


def depth_feature(depth: torch.Tensor, scale: float) -> torch.Tensor:
    """s / (s + depth): 1 near, 0 far; 0 where the depth is NaN, infinite or not positive."""
    ok = torch.isfinite(depth) & (depth > 0)
    d = torch.where(ok, depth, torch.zeros_like(depth))
    return torch.where(ok, scale / (scale + d), torch.zeros_like(d))


def make_input(rgb_u8: torch.Tensor, depth: torch.Tensor, coverage: torch.Tensor, scale: float,
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Render tensors (B,H,W,3) uint8, (B,H,W) float, (B,H,W) bool -> network input (B,5,H,W)."""
    rgb = rgb_u8.permute(0, 3, 1, 2).to(dtype) / 255.0
    cov = coverage.to(dtype)[:, None]
    feat = depth_feature(depth.float(), scale).to(dtype)[:, None]
    return torch.cat([rgb, cov, feat], 1)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, int, int]:
    """Replicate-pad the bottom and right so H and W are multiples of ``multiple``."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x, h, w
