"""The plane sweep's CPU fast paths give what its PyTorch code gives (the code CUDA runs): the
numba matching-cost kernels (mvs/cpu_kernels.py), OpenCV's box filter, the best-k insertion
network and min() in place of argmin()."""
import numpy as np
import pytest
import torch

from inspatio_ros.camera import Intrinsics
from inspatio_ros.ingest.mvs import MVSSettings, PlaneSweep
from inspatio_ros.ingest.mvs.sweep import box_mean, cpu_kernels, smallest_values

INTR = Intrinsics(110.0, 110.0, 79.5, 47.5, 160, 96)


def _scene():
    """A textured box room seen by 5 cameras moving forward and sideways (depth 3-12 units), so
    that the sources see the reference's pixels from different sides and some fall outside."""
    c2w = np.tile(np.eye(4), (5, 1, 1))
    c2w[:, 0, 3] = [-0.3, -0.1, 0.0, 0.15, 0.35]
    c2w[:, 2, 3] = [-0.8, -0.4, 0.0, 0.4, 0.8]
    rng = np.random.default_rng(3)
    texture = rng.random((64, 64)).astype(np.float32)

    def frame(i):
        v, u = np.mgrid[0:INTR.height, 0:INTR.width].astype(np.float64)
        x, y = (u - INTR.cx) / INTR.fx, (v - INTR.cy) / INTR.fy
        z_wall = 12.0 - c2w[i, 2, 3]
        z_floor = np.where(y > 0.02, 1.5 / np.maximum(y, 1e-3), np.inf)     # a floor 1.5 below
        z = np.minimum(z_wall, z_floor)
        wx, wy, wz = x * z + c2w[i, 0, 3], y * z, z + c2w[i, 2, 3]
        g = (0.5 + 0.3 * np.sin(5.1 * wx + 0.7 * wz) * np.cos(4.3 * wy + 1.3 * wz)
             + 0.15 * texture[(np.floor(wx * 9) % 64).astype(int), (np.floor((wy + wz) * 9) % 64).astype(int)])
        return (255 * np.clip(g, 0, 1)).astype(np.uint8)
    return frame, c2w


@pytest.fixture(scope="module")
def sweeps():
    if cpu_kernels() is None:
        pytest.skip("numba is not installed")
    frame, c2w = _scene()
    s = MVSSettings(max_size=160, pyramid_levels=2, planes=24, shift_window=3)
    fast = PlaneSweep(frame, c2w, INTR, s, torch.device("cpu"))
    plain = PlaneSweep(frame, c2w, INTR, s, torch.device("cpu"))
    plain.kernels = None
    return fast, plain


def test_box_filter_on_the_cpu_matches_the_convolution():
    x = torch.rand(3, 3, 37, 53)
    for window in (3, 5, 11):
        r = window // 2
        k = torch.full((3, 1, 1, window), 1.0 / window)
        ref = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (r, r, 0, 0), mode="replicate"), k, groups=3)
        ref = torch.nn.functional.conv2d(torch.nn.functional.pad(ref, (0, 0, r, r), mode="replicate"),
                                         k.transpose(2, 3), groups=3)
        assert torch.allclose(box_mean(x, window), ref, atol=2e-6)


def test_smallest_is_topk():
    values = [torch.rand(4, 7) for _ in range(5)]
    values[2][0, 0] = values[1][0, 0]                           # ties
    for k in (1, 2, 3, 5):
        expected = torch.stack(values).topk(k, dim=0, largest=False).values
        assert torch.equal(torch.stack(smallest_values(values, k)), expected)


@pytest.mark.parametrize("level_index", [0, 1])
def test_zncc_kernel_matches_pytorch(sweeps, level_index):
    fast, plain = sweeps
    sources = [0, 1, 3, 4]
    lf, lp = fast._level(2, sources, level_index), plain._level(2, sources, level_index)
    w, h = lf[2]
    rho = torch.linspace(1 / 20, 1 / 2, 16)[:, None, None].expand(16, h, w).contiguous()
    rho[3, 5:9, 7:30] = float("nan")                            # an unknown inverse depth stays local
    a, b = fast._sweep(lf, rho), plain._sweep(lp, rho)
    assert a.shape == b.shape == (16, h, w)
    # The box means differ in the last bits (double running sums vs a float convolution); the
    # correlation divides by the window's spread, so blank windows amplify them a little.
    close = (a - b).abs() < 1e-4
    assert close.float().mean() > 0.999 and float((a - b).abs().max()) < 5e-3
    # Only the cameras ahead: the reference's border falls outside both (cost 2), the same pixels.
    lf, lp = fast._level(2, [3, 4], level_index), plain._level(2, [3, 4], level_index)
    a, b = fast._sweep(lf, rho[:4]), plain._sweep(lp, rho[:4])
    assert float((a == 2.0).float().mean()) > 0.01
    assert torch.equal(a == 2.0, b == 2.0)


def test_second_best_and_photo_cost_kernels_match_pytorch(sweeps):
    fast, plain = sweeps
    sources = [0, 1, 3, 4]
    lf, lp = fast._level(2, sources, 1), plain._level(2, sources, 1)
    w, h = lf[2]
    hyps = torch.linspace(1 / 20, 1 / 2, 24)[:, None, None].expand(24, h, w).contiguous()
    volume = plain._sweep(lp, hyps)
    winner = volume.min(0).indices
    for basin in (0.0, 2.0):
        a = fast._second_best(lf, volume, hyps, winner, basin)
        b = plain._second_best(lp, volume, hyps, winner, basin)
        assert torch.equal(a, b)
    rho = torch.stack([torch.full((INTR.height, INTR.width), 1 / 12.0), torch.full((INTR.height, INTR.width), 0.3)])
    a, b = fast.photo_cost(2, sources, rho), plain.photo_cost(2, sources, rho)
    assert float((a - b).abs().max()) < 1e-5


def test_photo_cost_at_wanted_pixels_only_matches_the_whole(sweeps):
    """Propagation reads the photometric cost only where a candidate exists at an unknown pixel:
    the kernel that computes only those gives there what the whole cost gives (both kernels and
    PyTorch), and 2 elsewhere."""
    fast, plain = sweeps
    sources = [0, 1, 3, 4]
    h, w = INTR.height, INTR.width
    rng = np.random.default_rng(7)
    rho = torch.from_numpy(rng.uniform(1 / 15, 1 / 3, (5, h, w)).astype(np.float32))
    wanted = torch.from_numpy(rng.random((5, h, w)) < 0.2)
    wanted[1] = False                                   # a candidate no pixel needs
    wanted[2, :3, :] = True                             # the border rows (replicated windows)
    wanted[3, :, -2:] = True                            # the border columns
    wanted[4] = True                                    # all of them
    some = fast.photo_cost(2, sources, rho, wanted=wanted)
    whole = fast.photo_cost(2, sources, rho)
    torch_whole = plain.photo_cost(2, sources, rho, wanted=wanted)
    assert float((some[wanted] - whole[wanted]).abs().max()) < 1e-6
    assert float((some[wanted] - torch_whole[wanted]).abs().max()) < 1e-5
    assert bool((some[~wanted] == 2.0).all())
    assert float((whole[wanted] < 2.0).float().mean()) > 0.5       # most of them are seen: a real check


def test_raw_depth_kernels_match_pytorch(sweeps):
    """The whole sweep: the same winners but where two hypotheses cost the same to the last bits."""
    fast, plain = sweeps
    a = fast.raw_depth(2, [0, 1, 3, 4], (2.0, 30.0))
    b = plain.raw_depth(2, [0, 1, 3, 4], (2.0, 30.0))
    rel = ((a[0] - b[0]).abs() / b[0]).flatten()
    assert float((rel < 1e-3).float().mean()) > 0.98
    assert float((a[1] - b[1]).abs().median()) < 1e-5


def _depth_frames(n=5, size=(96, 64)):
    """A wall 10 units ahead with a floater patch (a wrong near depth) in frame 2, seen by cameras
    moving sideways; depth maps with unknown and sky pixels."""
    w, h = size
    intr = Intrinsics(70.0, 70.0, (w - 1) / 2, (h - 1) / 2, w, h)
    c2w = np.tile(np.eye(4), (n, 1, 1))
    c2w[:, 0, 3] = np.linspace(-0.8, 0.8, n)
    rng = np.random.default_rng(5)
    depths = {}
    for i in range(n):
        d = (10.0 + 0.05 * rng.standard_normal((h, w))).astype(np.float32)
        d[:6] = np.inf                                  # sky
        d[rng.random((h, w)) < 0.1] = np.nan            # unknown
        if i == 2:
            d[30:40, 40:55] = 4.0                       # a floater the others see through
        depths[i] = d
    return intr, c2w, depths


def test_view_check_kernel_matches_pytorch(monkeypatch):
    from inspatio_ros.ingest.consistency import seen_through, view_check_kernels
    from inspatio_ros.ingest.fusion import FusionSettings

    if view_check_kernels() is None:
        pytest.skip("numba is not installed")
    intr, c2w, depths = _depth_frames()
    settings = FusionSettings(check_neighbours=2)
    fast = seen_through(depths, dict(enumerate(c2w)), intr, settings, "cpu")
    monkeypatch.setenv("INSPATIO_CPU_KERNELS", "0")
    plain = seen_through(depths, dict(enumerate(c2w)), intr, settings, "cpu")
    assert fast[2][30:40, 40:55].min() >= 2                       # the floater is seen through...
    for i in depths:
        assert (fast[i] == plain[i]).mean() > 0.999               # ...as PyTorch counts (rounding aside)


def test_view_check_neighbour_maps_kernel_matches_pytorch(monkeypatch):
    """SeenThrough's per-frame maps (known depth, measured, 3x3 nearest, 3x3 any) by the kernel are
    PyTorch's exactly, sky, unknown and border pixels included."""
    from inspatio_ros.ingest.consistency import SeenThrough, view_check_kernels
    from inspatio_ros.ingest.fusion import FusionSettings

    if view_check_kernels() is None:
        pytest.skip("numba is not installed")
    intr, c2w, depths = _depth_frames()
    depths[0][-1, :] = 0.0                                      # non-positive: unknown
    depths[0][:, 0] = np.nan                                    # a column of unknown pixels at the border
    maps = {}
    for kernels in ("1", "0"):
        monkeypatch.setenv("INSPATIO_CPU_KERNELS", kernels)
        check = SeenThrough(lambda i: depths[i], sorted(depths), dict(enumerate(c2w)), intr, FusionSettings(), "cpu")
        maps[kernels] = check._prepare(0)
    for fast, plain in zip(maps["1"], maps["0"]):
        assert fast.dtype == plain.dtype and fast.shape == plain.shape
        assert torch.equal(fast, plain)


def test_nearer_evidence_kernels_match_pytorch_bit_for_bit(monkeypatch):
    """consistency.nearer_evidence with its numba kernels gives PyTorch's corrected depth and
    mask exactly: rotated and shifted neighbours, one with moving pixels, sky and unknown pixels,
    a patch too far that the neighbours correct and noise they do not agree on."""
    from scipy.spatial.transform import Rotation

    from inspatio_ros.ingest.consistency import nearer_evidence, view_check_kernels

    if view_check_kernels() is None:
        pytest.skip("numba is not installed")
    w, h = 120, 80
    intr = Intrinsics(90.0, 90.0, 59.5, 39.5, w, h)
    rng = np.random.default_rng(3)

    def wall(scale=1.0):
        d = (10.0 * scale + 0.3 * rng.random((h, w))).astype(np.float32)
        d[:8] = np.inf
        d[rng.random((h, w)) < 0.1] = np.nan
        return d
    depth = wall()
    depth[30:50, 40:70] = 40.0
    depth[55:65, 10:30] = np.nan
    neighbours = []
    for m in range(6):
        c2w = np.eye(4)
        c2w[:3, :3] = Rotation.from_rotvec(rng.normal(0, 0.02, 3)).as_matrix()
        c2w[:3, 3] = [0.15 * (m - 2.5), 0.02 * m, 0.6 * (m - 2.5)]
        neighbours.append((wall(), c2w, rng.random((h, w)) < 0.1 if m == 1 else None))
    fast, fast_changed = nearer_evidence(depth, np.eye(4), neighbours, intr, 0.07, 2)
    monkeypatch.setenv("INSPATIO_CPU_KERNELS", "0")
    plain, plain_changed = nearer_evidence(depth, np.eye(4), neighbours, intr, 0.07, 2)
    assert plain_changed.mean() < 0.5 and plain_changed[30:50, 40:70].mean() > 0.8    # a real correction
    np.testing.assert_array_equal(fast_changed, plain_changed)
    np.testing.assert_array_equal(fast, plain)
    assert fast.dtype == plain.dtype == np.float32
    # Fewer neighbours than votes needed: unchanged.
    same, none = nearer_evidence(depth, np.eye(4), neighbours[:1], intr, 0.07, 2)
    assert not none.any() and np.array_equal(same, depth, equal_nan=True)


def test_fusion_with_the_cpu_renderer_adds_what_pytorch_adds():
    import torch

    from inspatio_ros.ingest.fusion import FusionSettings, WorldFuser
    from inspatio_ros.render import cpu

    if not cpu.available():
        pytest.skip("numba is not installed")
    intr, c2w, depths = _depth_frames()
    added = {}
    for kernels in (True, False):
        fuser = WorldFuser(intr, FusionSettings(), torch.device("cpu"))
        fuser.cpu_kernels = kernels
        rgb = np.full((intr.height, intr.width, 3), 128, np.uint8)
        added[kernels] = [fuser.add_frame(i, rgb, depths[i], c2w[i]) for i in depths]
    assert added[True][0] == added[False][0] > 0
    assert added[True][1] < 0.5 * added[True][0]                   # the wall is mostly explained already
    assert np.allclose(added[True], added[False], rtol=0.01, atol=5)


def test_surfels_kernel_matches_pytorch(monkeypatch):
    from inspatio_ros.ingest.consistency import view_check_kernels
    from inspatio_ros.ingest.fusion import FusionSettings, surfels_from_depth

    if view_check_kernels() is None:
        pytest.skip("numba is not installed")
    intr, c2w, depths = _depth_frames()
    depth = depths[2].copy()
    v = np.arange(intr.height)[:, None]
    depth[v[:, 0] > 40] = (1.5 * intr.fy / np.maximum(v[v[:, 0] > 40] - intr.cy, 1)).astype(np.float32)  # a road
    depth[50:52, 10:20] = 500.0                                  # beyond max_depth
    rgb = np.random.default_rng(0).integers(0, 255, (intr.height, intr.width, 3), dtype=np.uint8)
    pose = c2w[2].copy()
    pose[:3, :3] = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
    fast = surfels_from_depth(rgb, depth, intr, pose, FusionSettings())
    monkeypatch.setenv("INSPATIO_CPU_KERNELS", "0")
    plain = surfels_from_depth(rgb, depth, intr, pose, FusionSettings())
    assert np.array_equal(fast[4], plain[4]) and fast[4].sum() > 0.5 * depth.size
    assert np.array_equal(fast[1], plain[1])
    assert np.allclose(fast[0], plain[0], rtol=1e-5, atol=1e-4)
    assert np.allclose(fast[2], plain[2], rtol=1e-4)
    assert np.abs(fast[3] - plain[3]).max() < 1e-3 and (np.abs(plain[3]).sum(1) > 0.5).mean() > 0.3
