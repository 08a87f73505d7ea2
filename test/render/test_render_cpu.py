"""The CPU kernels (render/cpu.py) against the PyTorch reference (render.render_points): same
points drawn, same colours, same depth, in every mode the renderer has."""
import numpy as np
import pytest
import torch

from inspatio_ros.camera import Intrinsics, look_at
from inspatio_ros.render import Cameras, PointCloud, Renderer, RenderSettings, cpu, render_points

pytestmark = pytest.mark.skipif(not cpu.available(), reason="numba is not installed")


def _scene(seed=4, n=40_000):
    """Ground, a slanted wall, points without normals, and a car-sized box alive for 1 s."""
    rng = np.random.default_rng(seed)
    ground = np.stack([rng.uniform(-6, 6, n), np.full(n, 1.5), rng.uniform(1, 30, n)], 1)
    wall = np.stack([np.full(n // 2, 4.0), rng.uniform(-3, 1.5, n // 2), rng.uniform(2, 30, n // 2)], 1)
    loose = rng.uniform([-3, -2, 6], [3, 0, 12], (n // 4, 3))            # no normal: faces the camera
    box = rng.uniform([-1, 0, 7], [1, 1.5, 9], (n // 4, 3))
    xyz = np.concatenate([ground, wall, loose, box])
    normal = np.concatenate([np.tile([0, -1.0, 0], (n, 1)), np.tile([-1.0, 0, 0], (n // 2, 1)),
                             np.zeros((n // 4, 3)), np.tile([0, 0, -1.0], (n // 4, 1))])
    radius = np.concatenate([np.full(n, 0.08), np.full(n // 2, 0.06), rng.uniform(0.01, 0.2, n // 4),
                             np.full(n // 4, 0.05)])
    t_start = np.concatenate([np.full(len(xyz) - n // 4, -np.inf), np.full(n // 4, 1.0)])
    t_end = np.concatenate([np.full(len(xyz) - n // 4, np.inf), np.full(n // 4, 2.0)])
    return PointCloud.from_arrays(xyz, rng.integers(0, 256, (len(xyz), 3)), radius, normal, t_start, t_end)


def _cameras():
    intr = Intrinsics.from_fov(160, 120, 80.0)
    poses = [np.eye(4), look_at([0.5, 0.2, 0], [0, 0.5, 10], up=(0, -1, 0)),
             look_at([-2.0, -1.0, 3.0], [1.0, 1.0, 12.0], up=(0, -1, 0))]
    return Cameras.from_intrinsics(intr, np.stack(poses))


def _assert_same(ref, out, index=False):
    """Drawn pixels are identical; hole-filled ones may differ by one grey level (the kernels
    average the pyramid as sums, a float rounding apart) and by float32 rounding in depth."""
    assert torch.equal(ref.coverage, out.coverage)
    drawn = ref.coverage.unsqueeze(-1).expand_as(ref.rgb)
    assert torch.equal(ref.rgb[drawn], out.rgb[drawn])
    diff = (ref.rgb.int() - out.rgb.int()).abs()
    assert int(diff.max()) <= 1 and float((diff > 0).float().mean()) < 1e-3
    np.testing.assert_array_equal(np.isnan(ref.depth.numpy()), np.isnan(out.depth.numpy()))
    np.testing.assert_allclose(np.nan_to_num(out.depth.numpy()), np.nan_to_num(ref.depth.numpy()), rtol=1e-5)
    if index:
        assert torch.equal(ref.point_index, out.point_index)


@pytest.mark.parametrize("t", [None, 0.5, 1.5])
def test_kernels_draw_what_the_reference_draws(t):
    cloud, cams = _scene(), _cameras()
    ref = render_points(cloud, cams, t, return_index=True)
    out = cpu.render_points_cpu(cloud, cams, t, RenderSettings(), return_index=True)
    _assert_same(ref, out, index=True)
    assert torch.equal(ref.need_counts, out.need_counts)
    assert int(out.need_counts[0]) > 500, "the scene should make the splat rings work"
    assert 0.3 < float(out.coverage.float().mean()) < 0.999, "the scene should have holes to fill"


@pytest.mark.parametrize("settings", [RenderSettings(hole_fill_levels=0), RenderSettings(max_splat_px=0),
                                      RenderSettings(max_splat_px=2, hole_fill_levels=3, depth_tolerance=0.05,
                                                     background=(10, 200, 30))],
                         ids=["no-hole-fill", "no-splats", "other-knobs"])
def test_kernels_follow_the_settings(settings):
    cloud, cams = _scene(seed=5), _cameras()
    _assert_same(render_points(cloud, cams, None, settings), cpu.render_points_cpu(cloud, cams, None, settings))


def test_renderer_uses_the_kernels_on_the_cpu_and_can_be_told_not_to(monkeypatch):
    cloud, cams = _scene(seed=6), _cameras()
    fast = Renderer(cloud, "cpu")
    assert fast.cpu_kernels
    monkeypatch.setenv("INSPATIO_CPU_KERNELS", "0")
    eager = Renderer(cloud, "cpu")
    assert not eager.cpu_kernels
    _assert_same(eager.render(cams, 1.5), fast.render(cams, 1.5))


def test_world_renders_agree(street_world):
    """A world built by the pipeline (fused surfels, chunked and culled), from its own frames."""
    from inspatio_ros.world import World

    world = World.load(street_world)
    fast = Renderer(world, "cpu", cpu_kernels=True)
    eager = Renderer(world, "cpu", cpu_kernels=False)
    for i in (0, len(world.frame_c2w) // 2, len(world.frame_c2w) - 1):
        cams = fast.cameras(world.frame_c2w[i][None])
        _assert_same(eager.render(cams, float(world.frame_time[i])), fast.render(cams, float(world.frame_time[i])))


def test_visible_runs_skip_hidden_chunks_and_change_nothing():
    """Kernels project only the visible chunks' runs (not subset's one run from the first to the
    last visible chunk), each camera of a batch only its own; the images equal the full cloud's,
    camera by camera and as one batch (a camera that sees nothing included)."""
    from inspatio_ros.render import ChunkedCloud

    rng = np.random.default_rng(8)
    intr = Intrinsics.from_fov(96, 64, 70.0)
    # Posts on a 60 m x 60 m grid around the origin: most chunks lie outside any one view.
    grid = np.stack(np.meshgrid(np.arange(-30, 31, 3.0), np.arange(-30, 31, 3.0)), -1).reshape(-1, 2)
    pts = np.concatenate([np.column_stack([g[0] + rng.normal(0, 0.2, 200), g[1] + rng.normal(0, 0.2, 200),
                                           rng.uniform(0, 2, 200)]) for g in grid])
    cloud = PointCloud.from_arrays(pts, rng.integers(0, 256, (len(pts), 3)), np.full(len(pts), 0.1))
    chunks = ChunkedCloud(cloud, cell_m=4.0)
    settings = RenderSettings()
    margin = settings.max_splat_px + 1.0
    # Two side views, one looking down, one looking up past the grid (sees no chunk).
    targets = ([20.0, 3.0, 1.0], [-5.0, 25.0, 1.0], [0.0, 0.0, -20.0], [0.0, 0.0, 40.0])
    poses = np.stack([look_at([0.5, 0.5, 3.0], target) for target in targets])
    for i in range(len(targets)):
        cams = Cameras.from_intrinsics(intr, poses[i:i + 1])
        runs = cpu.visible_runs(chunks, cams, settings.near, margin)
        projected = runs.projected
        assert projected <= len(chunks.subset(cams, settings.near, margin).xyz)
        ref = render_points(chunks.cloud, cams, None, settings)
        _assert_same(ref, cpu.render_points_cpu(chunks.cloud, cams, None, settings, runs=runs))
        if targets[i][2] > 0 and i < 2:
            assert projected < 0.5 * len(pts), "a side view should skip most of the grid"
        # The kernel's visibility test is ChunkedCloud.visible_chunks'.
        mask = chunks.visible_chunks(cams, settings.near, margin).numpy()
        starts = chunks.starts.numpy()[mask]
        assert all(((runs.runs[:, 0] <= s) & (s < runs.runs[:, 1])).any() for s in starts)
        assert int(chunks.counts.numpy()[mask].sum()) == projected
        if i == 3:
            assert projected == 0 and not ref.coverage.any()
    batch = Cameras.from_intrinsics(intr, poses)
    runs = cpu.visible_runs(chunks, batch, settings.near, margin)
    assert runs.projected == sum(cpu.visible_runs(chunks, Cameras.from_intrinsics(intr, poses[i:i + 1]), settings.near,
                                                  margin).projected for i in range(len(targets)))
    union = int(chunks.counts.numpy()[chunks.visible_chunks(batch, settings.near, margin).numpy()].sum())
    assert runs.projected < len(targets) * union, "each camera should project its own chunks, not the batch's"
    ref = render_points(chunks.cloud, batch, None, settings, return_index=True)
    _assert_same(ref, cpu.render_points_cpu(chunks.cloud, batch, None, settings, return_index=True, runs=runs),
                 index=True)
    _assert_same(ref, Renderer(cloud, "cpu").render(batch))


@pytest.mark.parametrize("k", [1, 2, 3, 4])
def test_need_minimum_equals_the_direct_masked_square_filter(k):
    """The van Herk filter of the ring kernels against splats.square_min_filter, on sizes that are
    no multiple of the 2k+1 blocks, with infinities and masked pixels."""
    from inspatio_ros.render import cpu_kernels
    from inspatio_ros.render.splats import square_min_filter
    rng = np.random.default_rng(k)
    B, H, W = 2, 23, 37
    depth = rng.uniform(0.5, 50.0, (B, 1, H, W)).astype(np.float32)
    depth[rng.random(depth.shape) < 0.2] = np.inf
    reach = rng.uniform(0.0, 5.0, (B, 1, H, W)).astype(np.float32)
    masked = torch.where(torch.from_numpy(reach) >= k, torch.from_numpy(depth), torch.tensor(np.inf))
    expected = square_min_filter(masked, k).numpy().reshape(-1)
    got = cpu_kernels.need_minimum(depth.reshape(-1), reach.reshape(-1), k, B, H, W)
    assert np.array_equal(got, expected)
    unmasked = square_min_filter(torch.from_numpy(depth), k).numpy().reshape(-1)
    assert not np.array_equal(got, unmasked), "the reach mask should change some minimums"
