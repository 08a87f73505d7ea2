"""Image and depth metrics (torch, CPU or GPU): PSNR, SSIM, depth AbsRel."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def _as_float_image(img) -> torch.Tensor:
    """(H,W,3) uint8/float array or tensor -> (1,3,H,W) float32 in [0,255]."""
    t = torch.as_tensor(np.asarray(img) if not isinstance(img, torch.Tensor) else img)
    t = t.to(torch.float32)
    if t.dim() == 2:
        t = t[..., None].expand(*t.shape, 3)
    return t.permute(2, 0, 1)[None]


def psnr(a, b, data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB over all pixels and channels."""
    mse = float(torch.mean((_as_float_image(a) - _as_float_image(b)) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(data_range ** 2 / mse)


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


def ssim(a, b, data_range: float = 255.0) -> float:
    """Structural similarity (Wang et al. 2004): 11x11 Gaussian window, sigma 1.5, mean over
    channels and valid (unpadded) positions."""
    x, y = _as_float_image(a), _as_float_image(b)
    c = x.shape[1]
    w = _gaussian_window().to(x.dtype).expand(c, 1, 11, 11)
    if min(x.shape[-2:]) < 11:
        raise ValueError("SSIM needs images of at least 11x11 pixels")
    mu_x = F.conv2d(x, w, groups=c)
    mu_y = F.conv2d(y, w, groups=c)
    sxx = F.conv2d(x * x, w, groups=c) - mu_x ** 2
    syy = F.conv2d(y * y, w, groups=c) - mu_y ** 2
    sxy = F.conv2d(x * y, w, groups=c) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (sxx + syy + c2))
    return float(s.mean())


def depth_abs_rel(pred, gt) -> tuple[float, int]:
    """Mean |pred - gt| / gt over pixels where both are finite and positive; (value, count)."""
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    ok = np.isfinite(pred) & np.isfinite(gt) & (gt > 0) & (pred > 0)
    n = int(ok.sum())
    if n == 0:
        return math.nan, 0
    return float(np.mean(np.abs(pred[ok] - gt[ok]) / gt[ok])), n
