"""Gaussians as surfels for the CPU renderer (model.surfel_samples): a Gaussian wider than the
spacing is split over its half-peak ellipse, in its plane; a small one stays one surfel; faint
ones are left out."""
import math

import torch

from inspatio_ros.gaussians.model import HALF_PEAK_SIGMAS, MAX_SAMPLES_PER_AXIS, GaussianParams, surfel_samples


def _params(scales, opacities):
    n = len(scales)
    half_turn_about_x = torch.tensor([[math.cos(math.pi / 4), math.sin(math.pi / 4), 0.0, 0.0]])   # 90 deg about x
    quats = half_turn_about_x.expand(n, 4)
    logit = torch.log(torch.tensor(opacities) / (1 - torch.tensor(opacities)))
    return GaussianParams(torch.zeros(n, 3), torch.log(torch.tensor(scales)), quats.clone(), logit,
                          torch.zeros(n, 4, 3))


def test_a_large_flat_gaussian_splits_over_its_half_peak_ellipse_in_its_plane():
    p = _params([[0.4, 0.2, 0.01], [0.01, 0.01, 0.001], [0.4, 0.4, 0.4]], [0.9, 0.9, 0.1])
    s = surfel_samples(p, torch.full((3,), 0.1))
    owner = s["owner"]
    assert set(owner.tolist()) == {0, 1}                              # the faint one is left out
    big, small = owner == 0, owner == 1
    assert int(small.sum()) == 1 and float(s["radius"][small][0]) < 0.02
    n_big = int(big.sum())
    assert 5 < n_big <= (2 * MAX_SAMPLES_PER_AXIS - 1) ** 2
    xyz = s["xyz"][big]
    # The Gaussian's plane: its local z axis (flat) turned onto world -y by the rotation about x.
    assert float(xyz[:, 1].abs().max()) < 1e-6
    assert torch.allclose(s["normal"][big], torch.tensor([0.0, -1.0, 0.0]).expand(n_big, 3), atol=1e-6)
    # Inside the half-peak ellipse (x along σ 0.4, z along σ 0.2) and spread over it.
    r = (xyz[:, 0] / (HALF_PEAK_SIGMAS * 0.4)) ** 2 + (xyz[:, 2] / (HALF_PEAK_SIGMAS * 0.2)) ** 2
    assert float(r.max()) <= 1.0 + 1e-5 and float(xyz[:, 0].max()) > 0.3
    # Discs of neighbouring samples overlap.
    spacing = HALF_PEAK_SIGMAS * 0.4 / MAX_SAMPLES_PER_AXIS
    assert float(s["radius"][big].min()) >= 0.7 * spacing
