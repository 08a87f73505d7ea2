"""Gaussians as surfels for the CPU renderer (model.surfel_samples): a Gaussian wider than the
spacing is split over the ellipse where its opacity reaches SURFEL_MIN_OPACITY, in its plane; a
small one stays one surfel; faint ones are left out, fainter ones drawn smaller."""
import math

import pytest
import torch

from inspatio_ros.gaussians.model import (MAX_SAMPLES_PER_AXIS, SURFEL_MIN_OPACITY, GaussianParams, drawn_extent,
                                          surfel_samples)


def _params(scales, opacities):
    n = len(scales)
    half_turn_about_x = torch.tensor([[math.cos(math.pi / 4), math.sin(math.pi / 4), 0.0, 0.0]])   # 90 deg about x
    quats = half_turn_about_x.expand(n, 4)
    logit = torch.log(torch.tensor(opacities) / (1 - torch.tensor(opacities)))
    return GaussianParams(torch.zeros(n, 3), torch.log(torch.tensor(scales)), quats.clone(), logit,
                          torch.zeros(n, 4, 3))


def test_a_large_flat_gaussian_splits_over_its_drawn_ellipse_in_its_plane():
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
    # Inside the ellipse where its opacity 0.9 falls to 0.3: sqrt(2 ln 3) = 1.48 σ (x along σ 0.4,
    # z along σ 0.2), and spread over it.
    extent = math.sqrt(2 * math.log(0.9 / SURFEL_MIN_OPACITY))
    r = (xyz[:, 0] / (extent * 0.4)) ** 2 + (xyz[:, 2] / (extent * 0.2)) ** 2
    assert float(r.max()) <= 1.0 + 1e-5 and float(xyz[:, 0].max()) > 0.4
    # Discs of neighbouring samples overlap.
    spacing = extent * 0.4 / MAX_SAMPLES_PER_AXIS
    assert float(s["radius"][big].min()) >= 0.7 * spacing


def test_a_fainter_gaussian_is_drawn_smaller_and_the_faintest_not_at_all():
    opacities = [0.99, 0.6, 0.35, 0.305, 0.2]
    p = _params([[0.01, 0.01, 0.001]] * 5, opacities)
    s = surfel_samples(p, torch.full((5,), 1.0))                    # wide footprint: one surfel each
    assert s["owner"].tolist() == [0, 1, 2]                          # 0.305: a speck; 0.2: under the cut
    radii = s["radius"].tolist()
    assert radii[0] > radii[1] > radii[2] > 0
    assert radii[0] == pytest.approx(0.01 * float(drawn_extent(torch.tensor(0.99))), rel=1e-5)
    assert float(drawn_extent(torch.tensor(SURFEL_MIN_OPACITY))) == 0.0
