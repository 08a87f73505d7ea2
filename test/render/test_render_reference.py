"""render_points (the PyTorch reference) on hand-made point sets (accuracy against the ray-caster:
test_build_eval.py::test_render_matches_raycaster_depth_on_source_views)."""
import math
import os

import numpy as np
import pytest
import torch

from inspatio_ros.camera import Intrinsics, look_at
from inspatio_ros.render import Cameras, PointCloud, RenderSettings, render_points
from render_scenes import INTR, camera, pixel_surfels, street_like_cloud

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_source_view_is_reproduced_exactly(device):
    rng = np.random.default_rng(0)
    c2w = np.eye(4)
    colours = rng.integers(0, 256, (INTR.height, INTR.width, 3), dtype=np.uint8)
    cloud = PointCloud.from_arrays(*pixel_surfels(INTR, c2w, 5.0, colours), device=device)
    out = render_points(cloud, camera(c2w, device=device))
    # Surfels of one surface never overwrite each other, so every pixel shows its own point.
    assert np.array_equal(out.rgb[0].cpu().numpy(), colours)
    np.testing.assert_allclose(out.depth[0].cpu().numpy(), 5.0, rtol=1e-5)
    assert bool(out.coverage.all())


def test_close_sparse_surface_hides_the_background():
    # Background wall at 10 m, densely sampled, red. Foreground wall at 3 m in the middle, green,
    # sampled from a camera 1.5 m further back: seen from the render camera its points are ~2 px
    # apart, so without splatting the red wall would show through the gaps.
    far = pixel_surfels(INTR, np.eye(4), 10.0, np.full((48, 64, 3), (255, 0, 0), np.uint8))
    back = np.eye(4)
    back[2, 3] = -1.5
    xyz, rgb, radius, normal = pixel_surfels(INTR, back, 4.5, np.full((48, 64, 3), (0, 255, 0), np.uint8))
    middle = (np.abs(xyz[:, 0]) < 1.0) & (np.abs(xyz[:, 1]) < 0.7)
    near = (xyz[middle], rgb[middle], radius[middle], normal[middle])
    cloud = PointCloud.from_arrays(*(np.concatenate([a, b]) for a, b in zip(far, near)))
    out = render_points(cloud, camera(np.eye(4)))
    rgb_out = out.rgb[0].numpy()
    depth = out.depth[0].numpy()
    # Pixels whose ray hits the foreground square (x, y within the square at z=3).
    v, u = np.mgrid[0:48, 0:64]
    x = (u - INTR.cx) / INTR.fx * 3.0
    y = (v - INTR.cy) / INTR.fy * 3.0
    inside = (np.abs(x) < 0.95) & (np.abs(y) < 0.65)
    assert inside.sum() > 200
    assert (rgb_out[inside] == (0, 255, 0)).all(), "background shows through the close surface"
    np.testing.assert_allclose(depth[inside], 3.0, rtol=1e-3)
    outside = (np.abs(x) > 1.1) | (np.abs(y) > 0.8)
    assert (rgb_out[outside] == (255, 0, 0)).all()


def test_dynamic_points_exist_only_in_their_time_span():
    wall = pixel_surfels(INTR, np.eye(4), 8.0, np.full((48, 64, 3), 50, np.uint8))
    xyz, rgb, radius, normal = pixel_surfels(INTR, np.eye(4), 4.0, np.full((48, 64, 3), 200, np.uint8))
    n = len(xyz)
    t_start = np.concatenate([np.full(n, -np.inf), np.full(n, 1.0)])
    t_end = np.concatenate([np.full(n, np.inf), np.full(n, 2.0)])
    cloud = PointCloud.from_arrays(np.concatenate([wall[0], xyz]), np.concatenate([wall[1], rgb]),
                                   np.concatenate([wall[2], radius]), np.concatenate([wall[3], normal]),
                                   t_start, t_end)
    cam = camera(np.eye(4))
    assert (render_points(cloud, cam, t=0.5).rgb == 50).all()
    assert (render_points(cloud, cam, t=1.5).rgb == 200).all()
    assert (render_points(cloud, cam, t=2.5).rgb == 50).all()
    assert (render_points(cloud, cam, t=None).rgb == 200).all()  # no time: everything


def test_holes_are_filled_and_marked_uncovered():
    colours = np.full((48, 64, 3), 120, np.uint8)
    xyz, rgb, radius, normal = pixel_surfels(INTR, np.eye(4), 5.0, colours, overlap=1.0)
    v, u = np.mgrid[0:48, 0:64]
    hole = ((u - 30) ** 2 + (v - 20) ** 2 < 16).reshape(-1)
    cloud = PointCloud.from_arrays(xyz[~hole], rgb[~hole], radius[~hole] * 0.5, normal[~hole])
    out = render_points(cloud, camera(np.eye(4)))
    hole_img = hole.reshape(48, 64)
    assert not out.coverage[0][torch.from_numpy(hole_img)].any()
    assert out.coverage[0][torch.from_numpy(~hole_img)].all()
    assert (out.rgb[0].numpy()[hole_img] == 120).all(), "hole is not filled with the surrounding colour"
    np.testing.assert_allclose(out.depth[0].numpy()[hole_img], 5.0, rtol=1e-4)
    # Without hole filling the hole stays background with unknown depth.
    bare = render_points(cloud, camera(np.eye(4)), settings=RenderSettings(hole_fill_levels=0))
    assert (bare.rgb[0].numpy()[hole_img] == 0).all()
    assert np.isnan(bare.depth[0].numpy()[hole_img]).all()


def test_batch_equals_single_renders():
    rng = np.random.default_rng(1)
    xyz = rng.uniform(-3, 3, (20000, 3)) + [0, 0, 8]
    cloud = PointCloud.from_arrays(xyz, rng.integers(0, 256, (20000, 3)), np.full(20000, 0.05))
    poses = [look_at([dx, 0, 0], [0, 0, 8], up=(0, -1, 0)) for dx in (-1.0, 0.0, 1.5)]
    batch = render_points(cloud, Cameras.from_intrinsics(INTR, np.stack(poses)))
    for i, pose in enumerate(poses):
        single = render_points(cloud, camera(pose))
        assert torch.equal(batch.rgb[i], single.rgb[0])
        assert torch.equal(batch.coverage[i], single.coverage[0])
        np.testing.assert_array_equal(batch.depth[i].numpy(), single.depth[0].numpy())


def test_points_behind_or_outside_are_ignored():
    cloud = PointCloud.from_arrays(np.array([[0, 0, -5.0], [100, 0, 5.0]]), np.full((2, 3), 255), np.full(2, 0.1))
    out = render_points(cloud, camera(np.eye(4)))
    assert not out.coverage.any() and (out.rgb == 0).all() and torch.isnan(out.depth).all()


def test_projection_lands_on_the_expected_pixel():
    intr = Intrinsics(50.0, 50.0, 31.5, 23.5, 64, 48)
    # A point at (1, -0.5, 5) projects to u = 50*0.2 + 31.5 = 41.5 -> rounds to 42, v = -5 + 23.5 = 18.5 -> 19.
    cloud = PointCloud.from_arrays(np.array([[1.0, -0.5, 5.0]]), np.array([[255, 255, 255]]), np.array([0.01]))
    out = render_points(cloud, camera(np.eye(4), intr), settings=RenderSettings(hole_fill_levels=0))
    ys, xs = np.nonzero(out.coverage[0].numpy())
    assert (ys.tolist(), xs.tolist()) == ([19], [42])
    assert math.isclose(float(out.depth[0, 19, 42]), 5.0, rel_tol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu():
    """One code path: the compiled CUDA render agrees with the CPU render (float rounding may
    flip a few z-ties at silhouettes)."""
    rng = np.random.default_rng(5)
    n = 200_000
    xyz = rng.uniform(-4, 4, (n, 3)) + [0, 0, 8]
    normal = rng.normal(size=(n, 3))
    args = (xyz, rng.integers(0, 256, (n, 3)), rng.uniform(0.01, 0.08, n), normal)
    poses = np.stack([np.eye(4), look_at([0.7, 0.2, 0], [0, 0, 8], up=(0, -1, 0))])
    intr = Intrinsics.from_fov(320, 240, 70.0)
    outs = [render_points(PointCloud.from_arrays(*args, device=d), Cameras.from_intrinsics(intr, poses, d))
            for d in ("cpu", "cuda")]
    cpu, gpu = outs[0], outs[1]
    same = (cpu.rgb == gpu.rgb.cpu()).all(-1)
    assert same.float().mean() > 0.995
    assert (cpu.coverage == gpu.coverage.cpu()).float().mean() > 0.999
    d_cpu, d_gpu = cpu.depth.numpy(), gpu.depth.cpu().numpy()
    both = np.isfinite(d_cpu) & np.isfinite(d_gpu)
    assert np.median(np.abs(d_cpu[both] - d_gpu[both])) < 1e-4


def test_fixed_capacity_render_equals_the_synchronising_one():
    """The capacity path (what a CUDA graph captures) gives the same image when every ring fits,
    and reports the rings that did not fit."""
    cloud = street_like_cloud()
    intr = Intrinsics.from_fov(160, 120, 80.0)
    cams = Cameras.from_intrinsics(intr, np.stack([np.eye(4), look_at([0.5, 0, 0], [0, 0.5, 10], up=(0, -1, 0))]))
    ref = render_points(cloud, cams)
    num = 2 * 160 * 120
    full = render_points(cloud, cams, capacity=[num] * 4)
    assert torch.equal(ref.rgb, full.rgb) and torch.equal(ref.coverage, full.coverage)
    np.testing.assert_array_equal(ref.depth.numpy(), full.depth.numpy())
    counts = full.need_counts
    assert int(counts[0]) > 100, "the scene should make the first ring work"
    tight = [max(1, int(c)) for c in counts]
    exact = render_points(cloud, cams, capacity=tight)
    assert torch.equal(ref.rgb, exact.rgb)
    small = render_points(cloud, cams, capacity=[10, 10, 10, 10])
    assert bool((small.need_counts > 10).any())


def test_eager_rendering_skips_compilation_only_inside_its_block():
    """The build renders a growing cloud once per frame: inside eager_rendering() the CUDA stages
    run uncompiled (no torch.compile of shapes that change every call); outside they compile."""
    from inspatio_ros.render import eager_rendering
    from inspatio_ros.render.compiled import maybe_compiled
    from inspatio_ros.render.fill import push_pull

    cuda = torch.device("cuda")           # only the device type is read: no GPU needed
    with eager_rendering():
        assert maybe_compiled(push_pull, cuda) is push_pull
        with eager_rendering():
            assert maybe_compiled(push_pull, cuda) is push_pull
        assert maybe_compiled(push_pull, cuda) is push_pull
    if os.environ.get("INSPATIO_NO_COMPILE") != "1":
        assert maybe_compiled(push_pull, cuda) is not push_pull
    assert maybe_compiled(push_pull, torch.device("cpu")) is push_pull
