"""The splat rings' pieces (render/splats.py)."""
import torch


def test_ring_pass_layouts_agree():
    """Planes (GPU layout) and rows (CPU layout) of the surfel table give the same winners."""
    from inspatio_ros.render.splats import ring_pass

    g = torch.Generator().manual_seed(0)
    planes = torch.rand(8, 500, generator=g)
    planes[2] += 2.0                      # centre depth
    planes[5] -= 1.5                      # normals roughly facing the camera
    planes[6] = (planes[0:3] * planes[3:6]).sum(0)
    planes[7] = torch.rand(500, generator=g) * 0.5
    base = torch.arange(50, 450, 3)
    rx, ry = torch.rand(len(base), generator=g) - 0.5, torch.rand(len(base), generator=g) - 0.5
    best = torch.full((len(base),), 10.0)
    source = torch.full((len(base),), -1)
    args = (base, rx, ry, best, source, torch.tensor([1, -1, 7, -7, 8, -8]), 0.05, 0.98)
    b1, s1 = ring_pass(planes, True, *args)
    b2, s2 = ring_pass(planes.t().contiguous(), False, *args)
    assert torch.equal(b1, b2) and torch.equal(s1, s2)
    assert (s1 >= 0).any(), "the test table should produce some winners"


def test_compact_keeps_order_and_capacity():
    from inspatio_ros.render.splats import compact_indices

    mask = torch.tensor([0, 1, 1, 0, 1, 0, 1], dtype=torch.bool)
    assert compact_indices(mask, 6, 99).tolist() == [1, 2, 4, 6, 99 + 4, 99 + 5]   # unused: spare slots fill + j
    assert compact_indices(mask, 2, 99).tolist() == [1, 2]          # overflow: the first ones are kept
    assert compact_indices(torch.zeros(5, dtype=torch.bool), 3, 10).tolist() == [10, 11, 12]
