"""The reference rasterizer: a single Gaussian's footprint against the analytic 2D Gaussian,
compositing order, batching, and gradients against finite differences."""
import math

import numpy as np
import pytest
import torch

from inspatio_ros.gaussians.rasterize import ALPHA_MIN, EPS2D, SH_C0, rasterize

F, W, H = 100.0, 32, 24
K = torch.tensor([[F, 0, (W - 1) / 2], [0, F, (H - 1) / 2], [0, 0, 1.0]])[None]
EYE = torch.eye(4)[None]


def _sh(rgb):
    sh = torch.zeros(len(rgb), 4, 3)
    sh[:, 0] = (torch.as_tensor(rgb, dtype=torch.float32) - 0.5) / SH_C0
    return sh


def _quat_z(angle):
    return torch.tensor([[math.cos(angle / 2), 0.0, 0.0, math.sin(angle / 2)]])


@pytest.mark.parametrize("scales, angle", [((0.05, 0.05, 0.05), 0.0), ((0.12, 0.03, 0.01), math.radians(30))])
def test_single_gaussian_footprint_is_the_analytic_2d_gaussian(scales, angle):
    """A Gaussian on the optical axis at z metres projects to Σ₂ = (f/z)² R diag(σx², σy²) Rᵀ + 0.3 I
    at the principal point (the pinhole's Jacobian there is f/z I); its footprint is
    o exp(-½ dᵀ Σ₂⁻¹ d), cut below 1/255, its depth z wherever it is drawn."""
    z, opacity = 5.0, 0.7
    rgb = torch.tensor([[0.9, 0.4, 0.1]])
    out = rasterize(torch.tensor([[0.0, 0.0, z]]), _quat_z(angle), torch.tensor([scales]), torch.tensor([opacity]),
                    _sh(rgb), K, EYE, W, H)
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    cov = (F / z) ** 2 * rot @ np.diag(np.square(scales[:2])) @ rot.T + EPS2D * np.eye(2)
    v, u = np.mgrid[0:H, 0:W].astype(float)
    d = np.stack([u - (W - 1) / 2, v - (H - 1) / 2], -1)
    expected = opacity * np.exp(-0.5 * np.einsum("hwi,ij,hwj->hw", d, np.linalg.inv(cov), d))
    expected[expected < ALPHA_MIN] = 0.0
    np.testing.assert_allclose(out.coverage[0].numpy(), expected, atol=2e-6)
    np.testing.assert_allclose(out.rgb[0].numpy(), expected[..., None] * rgb.numpy(), atol=2e-6)
    drawn = expected > 0
    assert drawn.sum() > 20 and not drawn.all()
    np.testing.assert_allclose(out.depth[0].numpy()[drawn], z, rtol=1e-5)
    # The elongated one is longer along its rotated x axis than across it.
    if scales[0] != scales[1]:
        along = out.coverage[0, round((H - 1) / 2 + 6 * s), round((W - 1) / 2 + 6 * c)]
        across = out.coverage[0, round((H - 1) / 2 + 6 * c), round((W - 1) / 2 - 6 * s)]
        assert along > 5 * across


def test_front_to_back_compositing_in_depth_order():
    """Red in front (o = 0.6) of blue (o = 0.9) on the same ray: the pixel is 0.6 red + 0.4 x 0.9
    blue, whatever order the Gaussians are given in; the expected depth weights them the same way."""
    means = torch.tensor([[0.0, 0.0, 4.0], [0.0, 0.0, 6.0]])
    scales = torch.tensor([[0.2, 0.2, 0.2], [0.3, 0.3, 0.3]])
    opac = torch.tensor([0.6, 0.9])
    sh = _sh([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    quats = torch.tensor([[1.0, 0, 0, 0]] * 2)
    centre = (H // 2 - 1, W // 2 - 1)          # pixel (15, 11): 0.5 px from the principal point
    outs = [rasterize(means[o], quats[o], scales[o], opac[o], sh[o], K, EYE, W, H) for o in ([0, 1], [1, 0])]
    for out in outs:
        rgb = out.rgb[0][centre]
        # alphas at that pixel, from the analytic footprint of each
        d2 = 0.5 ** 2 * 2
        a_r = 0.6 * math.exp(-0.5 * d2 / ((F / 4 * 0.2) ** 2 + EPS2D))
        a_b = 0.9 * math.exp(-0.5 * d2 / ((F / 6 * 0.3) ** 2 + EPS2D))
        np.testing.assert_allclose(rgb.numpy(), [a_r, 0.0, (1 - a_r) * a_b], atol=1e-5)
        np.testing.assert_allclose(float(out.coverage[0][centre]), a_r + (1 - a_r) * a_b, atol=1e-5)
        np.testing.assert_allclose(float(out.depth[0][centre]),
                                   (a_r * 4 + (1 - a_r) * a_b * 6) / (a_r + (1 - a_r) * a_b), rtol=1e-5)
    torch.testing.assert_close(outs[0].rgb, outs[1].rgb)
    # Blue moved in front: now it wins the pixel.
    swapped = rasterize(torch.tensor([[0.0, 0.0, 7.0], [0.0, 0.0, 6.0]]), quats, scales, opac, sh, K, EYE, W, H)
    assert swapped.rgb[0][centre][2] > swapped.rgb[0][centre][0]


def test_opaque_stack_stops_at_the_transmittance_floor():
    """Opaque Gaussians stacked on one ray: each pixel equals gsplat's serial loop (a Gaussian that
    would bring the transmittance to <= 1e-4 ends the pixel, undrawn), so nothing behind the first
    few shows: the green one at the back does not near the middle."""
    n = 8
    means = torch.tensor([[0.0, 0.0, 3.0 + i] for i in range(n)])
    scales = torch.full((n, 3), 1.0)
    colours = [[1.0, 1.0, 1.0]] * (n - 1) + [[0.0, 1.0, 0.0]]
    out = rasterize(means, torch.tensor([[1.0, 0, 0, 0]] * n), scales, torch.full((n,), 0.98), _sh(colours),
                    K, EYE, W, H)
    for v, u in [(11, 15), (0, 0), (23, 31), (5, 20)]:
        d2 = (u - (W - 1) / 2) ** 2 + (v - (H - 1) / 2) ** 2
        T, rgb = 1.0, np.zeros(3)
        for i in range(n):
            alpha = min(0.99, 0.98 * math.exp(-0.5 * d2 / ((F / float(means[i, 2])) ** 2 + EPS2D)))
            if alpha < ALPHA_MIN:
                continue
            if T * (1 - alpha) <= 1e-4:
                break
            rgb += alpha * T * np.array(colours[i])
            T *= 1 - alpha
        np.testing.assert_allclose(out.rgb[0, v, u].numpy(), rgb, atol=1e-5)
        np.testing.assert_allclose(float(out.coverage[0, v, u]), 1 - T, atol=1e-5)
    centre = out.rgb[0, 8:16, 12:20]
    assert float((centre[..., 1] - centre[..., 0]).abs().max()) < 1e-6     # no green near the middle


def test_batched_cameras_equal_one_at_a_time():
    g = torch.Generator().manual_seed(0)
    n = 60
    means = torch.randn(n, 3, generator=g) * torch.tensor([1.0, 0.7, 0.5]) + torch.tensor([0, 0, 5.0])
    quats = torch.randn(n, 4, generator=g)
    scales = torch.rand(n, 3, generator=g) * 0.2 + 0.02
    opac = torch.rand(n, generator=g) * 0.9
    sh = torch.randn(n, 4, 3, generator=g) * 0.5
    c2w = torch.eye(4).repeat(3, 1, 1)
    c2w[1, 0, 3] = 0.5
    c2w[2, :3, :3] = torch.tensor([[0.0, 0, 1], [0, 1, 0], [-1, 0, 0]]) @ torch.tensor(
        [[0.0, 0, -1], [0, 1, 0], [1, 0, 0]])   # identity through two turns: exercises the rotation path
    both = rasterize(means, quats, scales, opac, sh, K.expand(3, 3, 3), c2w, W, H, tile=8)
    for b in range(3):
        one = rasterize(means, quats, scales, opac, sh, K, c2w[b:b + 1], W, H)
        torch.testing.assert_close(both.rgb[b], one.rgb[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(both.depth[b], one.depth[0], atol=1e-4, rtol=1e-5)
    # Small chunks and depth slices give the same image as one chunk.
    sliced = rasterize(means, quats, scales, opac, sh, K.expand(3, 3, 3), c2w, W, H, depth_slice=3,
                       chunk_elements=1000)
    torch.testing.assert_close(sliced.rgb, both.rgb, atol=1e-5, rtol=1e-5)


def test_gradients_match_finite_differences():
    """torch.autograd.gradcheck in float64 on three overlapping Gaussians, every parameter."""
    torch.manual_seed(0)
    dtype = torch.float64
    means = torch.tensor([[0.05, -0.02, 2.0], [-0.1, 0.05, 2.4], [0.08, 0.08, 3.0]], dtype=dtype)
    quats = torch.tensor([[0.9, 0.1, -0.2, 0.3], [1.0, 0.0, 0.0, 0.0], [0.7, 0.3, 0.3, -0.2]], dtype=dtype)
    log_scales = torch.log(torch.tensor([[0.06, 0.03, 0.02], [0.05, 0.05, 0.05], [0.1, 0.04, 0.03]], dtype=dtype))
    logits = torch.tensor([0.2, 0.8, 1.5], dtype=dtype)
    sh = torch.randn(3, 4, 3, dtype=dtype) * 0.3
    k = torch.tensor([[30.0, 0, 7.5], [0, 30.0, 5.5], [0, 0, 1]], dtype=dtype)[None]
    c2w = torch.eye(4, dtype=dtype)[None]
    c2w[0, 0, 3] = 0.03

    def f(means, quats, log_scales, logits, sh):
        out = rasterize(means, quats, torch.exp(log_scales), torch.sigmoid(logits), sh, k, c2w, 16, 12, tile=8)
        return out.rgb, out.depth * out.coverage, out.coverage

    inputs = tuple(x.clone().requires_grad_(True) for x in (means, quats, log_scales, logits, sh))
    # fast_mode: checks random projections of the Jacobian (the full one takes a backward pass per pixel).
    assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5, rtol=1e-4, fast_mode=True)
