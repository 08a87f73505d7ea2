"""The rasterizer switch (gaussians/backend.py): our conventions mapped to gsplat's, the choice of
backend per device, and one clear error where gsplat cannot run. The comparison of the two
rasterizers' maths runs where gsplat is: its projection and SH on the CPU (gsplat's own PyTorch
versions, when the package is importable), everything on CUDA (test_gsplat_cuda.py)."""
import math

import pytest
import torch

from inspatio_ros.errors import InputError
from inspatio_ros.gaussians import backend
from inspatio_ros.gaussians.rasterize import covariance_3d, project, rasterize, sh_to_rgb


def _rotation(ax, ay, az):
    cx, sx, cy, sy, cz, sz = math.cos(ax), math.sin(ax), math.cos(ay), math.sin(ay), math.cos(az), math.sin(az)
    rx = torch.tensor([[1, 0, 0], [0, cx, -sx], [0, sx, cx]], dtype=torch.float64)
    ry = torch.tensor([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]], dtype=torch.float64)
    rz = torch.tensor([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]], dtype=torch.float64)
    return rz @ ry @ rx


def _scene(n=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g, dtype=torch.float64) * 1.5 + torch.tensor([0, 0, 5.0], dtype=torch.float64)
    quats = torch.randn(n, 4, generator=g, dtype=torch.float64)
    scales = torch.rand(n, 3, generator=g, dtype=torch.float64) * 0.2 + 0.02
    K = torch.tensor([[60.0, 0, 31.5], [0, 58.0, 23.5], [0, 0, 1]], dtype=torch.float64)[None]
    c2w = torch.eye(4, dtype=torch.float64)[None].clone()
    c2w[0, :3, :3] = _rotation(0.3, -0.2, 0.1)
    c2w[0, :3, 3] = torch.tensor([0.2, -0.1, 0.3])
    return means, quats, scales, K, c2w


def test_world_to_camera_inverts_a_rigid_pose():
    _, _, _, _, c2w = _scene()
    w2c = backend.world_to_camera(c2w)
    assert torch.allclose(w2c @ c2w, torch.eye(4, dtype=torch.float64)[None], atol=1e-12)


def test_gsplat_intrinsics_move_the_principal_point_half_a_pixel():
    K = torch.tensor([[60.0, 0, 31.5], [0, 58.0, 23.5], [0, 0, 1]])[None]
    G = backend.gsplat_intrinsics(K)
    assert G[0, 0, 2] == 32.0 and G[0, 1, 2] == 24.0 and torch.equal(G[0, :2, :2], K[0, :2, :2])


def test_backend_choice_and_errors():
    assert backend.resolve_backend("reference", "cpu") == "reference"
    assert backend.resolve_backend("auto", "cpu") == "reference"
    with pytest.raises(InputError, match="needs a CUDA device"):
        backend.resolve_backend("gsplat", "cpu")
    with pytest.raises(InputError, match="not a Gaussian rasterizer"):
        backend.resolve_backend("vulkan", "cpu")


def test_auto_backend_on_the_cpu_is_the_reference():
    means, quats, scales, K, c2w = (t.float() for t in _scene(50))
    sh = torch.rand(50, 4, 3)
    op = torch.full((50,), 0.7)
    a = backend.rasterize(means, quats, scales, op, sh, K, c2w, 64, 48, backend="auto")
    b = rasterize(means, quats, scales, op, sh, K, c2w, 64, 48)
    assert torch.equal(a.rgb, b.rgb) and torch.equal(a.depth, b.depth)


def test_projection_and_colour_match_gsplats_own_pytorch_maths():
    """gsplat's PyTorch projection (EWA, the field-of-view clamp, eps2d) and SH evaluation, given
    our cameras through backend's mapping, agree with the reference's: centres 0.5 px apart
    (pixel-centre conventions), the same conics, depths and colours."""
    impl = pytest.importorskip("gsplat.cuda._torch_impl")
    means, quats, scales, K, c2w = _scene()
    cov = covariance_3d(quats, scales)
    means2d, conics, depths, radii = project(means, cov, K, torch.linalg.inv(c2w), 64, 48)
    g_radii, g_means2d, g_depths, g_conics, _ = impl._fully_fused_projection(
        means, cov, backend.world_to_camera(c2w), backend.gsplat_intrinsics(K), 64, 48)
    both = (radii > 0) & (g_radii > 0).all(-1)
    assert int(both.sum()) > 50
    assert float((g_means2d - 0.5 - means2d)[both].abs().max()) < 1e-4
    assert float(((g_conics - conics)[both].abs() / conics[both].abs().clamp_min(1e-3)).max()) < 1e-4
    assert float((g_depths - depths)[both].abs().max()) < 1e-5
    dirs = means[None] - c2w[:, None, :3, 3]
    sh = torch.randn(len(means), 4, 3, dtype=torch.float64)
    ours = sh_to_rgb(sh, dirs / dirs.norm(dim=-1, keepdim=True))
    theirs = (impl._spherical_harmonics(1, dirs, sh[None].expand(1, -1, 4, 3)) + 0.5).clamp_min(0)
    assert float((ours - theirs).abs().max()) < 1e-9
