"""render/directional.py: the world along arbitrary directions (cube-face views rendered in one
batch, then looked up), against the synthetic street's exact ray caster."""
import math

import numpy as np
import pytest
import torch

from inspatio_ros.render import cpu as render_cpu
from inspatio_ros.render import Cameras, DirectionalViews, RenderOutput, Renderer, render_directions
from inspatio_ros.render.directional import FACES, INTERPOLATIONS, face_rotation
from inspatio_ros.sim.rig import LINK_FROM_OPTICAL_ROTATION
from inspatio_ros.world import World


def ring_directions(elevations_deg, columns):
    """Unit directions of a spinning LiDAR's beams (x forward, y left, z up), ring-major."""
    az = np.arange(columns) * 2 * np.pi / columns
    el = np.radians(np.asarray(elevations_deg, float))[:, None]
    return np.stack(np.broadcast_arrays(np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)),
                    -1).reshape(-1, 3)


def test_face_rotations_are_proper_and_point_along_their_axis():
    for face in FACES:
        r = face_rotation(face)
        assert np.allclose(r @ r.T, np.eye(3)) and np.isclose(np.linalg.det(r), 1.0)
        axis = np.zeros(3)
        axis["xyz".index(face[1])] = 1.0 if face[0] == "+" else -1.0
        assert np.allclose(r[:, 2], axis)


def test_views_cover_only_the_faces_and_band_the_directions_need():
    band = DirectionalViews(ring_directions(np.linspace(-15, 15, 16), 360), math.radians(0.5))
    assert set(band.faces) == {"+x", "-x", "+y", "-y"}
    # +-15 deg seen 45 deg off a face's axis is tan(15)/cos(45) = 0.379 up or down: a band, not a square.
    assert band.height < 0.45 * band.width
    sphere = DirectionalViews(np.random.default_rng(0).normal(size=(5000, 3)), math.radians(1.0))
    assert set(sphere.faces) == set(FACES)


def ground_plane_render(views, plane_height: float) -> RenderOutput:
    """What the renderer would give for every view of ``views`` if the world were the ground plane
    ``plane_height`` metres below the sensor (NaN depth where a view sees no ground)."""
    depth = torch.empty(views.num_views, views.height, views.width)
    v, u = torch.meshgrid(torch.arange(views.height, dtype=torch.float64),
                          torch.arange(views.width, dtype=torch.float64), indexing="ij")
    nan = torch.tensor(float("nan"), dtype=torch.float64)
    for i in range(views.num_views):
        K = views.K[i]
        ray = torch.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], torch.ones_like(u)], -1)
        down = torch.as_tensor(views.sensor_from_view[i, :3, :3].T @ np.array([0, 0, -1.0]))
        drop = ray @ down                               # metres down per unit of optical z
        depth[i] = torch.where(drop > 1e-6, plane_height / drop, nan).float()
    return RenderOutput(torch.zeros(*depth.shape, 3, dtype=torch.uint8), depth, torch.isfinite(depth))


def test_lookup_recovers_an_analytic_plane_exactly():
    """A render whose depth is that of a plane: bilinear inverse-depth lookup gives the exact range
    along every direction; nearest is off by up to half a pixel's worth."""
    dirs = ring_directions([-20, -10, -3], 720)
    views = DirectionalViews(dirs, math.radians(0.5))
    plane_height = 1.7                                   # the ground 1.7 m below the sensor
    out = ground_plane_render(views, plane_height)
    truth = plane_height / -dirs[:, 2]
    exact = views.sample(out, "bilinear").range[0].numpy()
    assert np.nanmax(np.abs(exact - truth) / truth) < 1e-4
    near = views.sample(out, "nearest").range[0].numpy()
    assert np.nanmax(np.abs(near - truth) / truth) > 1e-3


def test_range_matches_ray_caster_on_the_street(street_world, street):
    """A 16-beam pattern and a sphere of random directions from a source frame's position: ranges
    where the world was seen within 2 % of the exact ray caster's (median, and most rays)."""
    from inspatio_ros.synth.generate import load_scene

    world = World.load(street_world)
    scene = load_scene(street)
    renderer = Renderer(world, "cpu")
    k = 3
    c2w, t = world.frame_c2w[k].astype(np.float64), float(world.frame_time[k])
    world_from_sensor = c2w.copy()
    world_from_sensor[:3, :3] = c2w[:3, :3] @ LINK_FROM_OPTICAL_ROTATION.T   # x forward, z up at the camera
    rng = np.random.default_rng(7)
    ring = ring_directions(np.linspace(-15, 15, 16), 900)
    for dirs, pitch, rows in ((ring, math.radians(0.4), None), (ring, math.radians(0.4), math.radians(1.6)),
                              (rng.normal(size=(20000, 3)), math.radians(0.5), None)):
        views = DirectionalViews(dirs, pitch, renderer.device, row_pitch_rad=rows)
        got = views.sample(renderer.render(views.cameras(world_from_sensor), t))
        truth = scene.ranges(world_from_sensor[:3, 3], dirs @ world_from_sensor[:3, :3].T, t)
        r = got.range[0].numpy()
        both = got.coverage[0].numpy() & np.isfinite(truth) & np.isfinite(r)
        assert both.sum() > 0.1 * len(dirs)              # the world holds the forward half-space
        rel = np.abs(r[both] - truth[both]) / truth[both]
        assert np.median(rel) < 0.02
        assert np.mean(rel < 0.05) > 0.85


def test_cast_directions_agrees_with_the_pixel_caster(street):
    """The direction caster and the pinhole caster hit the same surfaces along pixel-centre rays."""
    from inspatio_ros.synth.generate import load_intrinsics, load_scene

    scene = load_scene(street)
    intr = load_intrinsics(street)
    c2w = scene.camera_pose(0.4)
    _, depth = scene.render(c2w, intr, 0.4, supersample=1)
    v, u = np.mgrid[0:intr.height:7, 0:intr.width:7]
    ray = np.stack([(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, np.ones_like(u, float)], -1).reshape(-1, 3)
    r = scene.ranges(c2w[:3, 3], ray @ c2w[:3, :3].T, 0.4)
    z = depth[v, u].reshape(-1)
    finite = np.isfinite(z)
    assert np.array_equal(finite, np.isfinite(r))
    assert np.allclose(r[finite], z[finite] * np.linalg.norm(ray[finite], axis=1), rtol=1e-4)


def test_views_batch_several_poses_pose_major():
    dirs = ring_directions([0.0], 64)
    views = DirectionalViews(dirs, math.radians(2.0))
    poses = np.tile(np.eye(4), (3, 1, 1))
    poses[:, 0, 3] = [0.0, 1.0, 2.0]
    cams = views.cameras(poses)
    assert isinstance(cams, Cameras) and len(cams) == 3 * views.num_views
    assert torch.allclose(cams.c2w[views.num_views:2 * views.num_views, 0, 3], torch.ones(views.num_views))


@pytest.mark.parametrize("bad", [np.zeros((4, 3)), np.ones((4, 2)), np.full((2, 3), np.nan)])
def test_bad_directions_are_refused(bad):
    with pytest.raises(ValueError):
        DirectionalViews(bad, 0.01)


def test_incidence_of_an_analytic_plane():
    """cos of the angle between each beam and the ground's normal, from the rendered depth alone."""
    dirs = ring_directions([-30, -12, -4], 360)
    views = DirectionalViews(dirs, math.radians(0.5))
    out = ground_plane_render(views, 2.0)
    cos = views.sample(out).cos_incidence[0].numpy()
    assert np.allclose(cos, -dirs[:, 2], atol=2e-3)


def test_groups_render_each_from_its_own_pose():
    """Two groups of the same directions, the second from 1 m further back: its ranges to a wall
    ahead are 1 m longer."""
    dirs = ring_directions([0.0], 8)
    front = np.cos(np.arctan2(dirs[:, 1], dirs[:, 0])) > 0.9
    dirs = np.concatenate([dirs[front], dirs[front]])
    views = DirectionalViews(dirs, math.radians(1.0), groups=np.repeat([0, 1], front.sum()))
    assert views.num_groups == 2 and views.num_views == 2
    poses = np.tile(np.eye(4), (2, 1, 1))
    poses[1, 0, 3] = -1.0
    cams = views.cameras(poses)
    assert len(cams) == 2 and torch.allclose(cams.c2w[:, 0, 3], torch.tensor([0.0, -1.0]))


def assert_same_samples(a, b):
    """Two DirectionalSamples agree: ranges, depths, colours and coverage exactly (NaN where
    the other has NaN), incidence to float32 rounding."""
    for name in ("range", "depth", "rgb", "coverage"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.shape == y.shape and x.dtype == y.dtype, name
        if x.dtype == torch.float32:
            x, y = torch.nan_to_num(x, nan=-1.0), torch.nan_to_num(y, nan=-1.0)
        assert torch.equal(x, y), name
    assert torch.equal(torch.isnan(a.cos_incidence), torch.isnan(b.cos_incidence))
    assert torch.allclose(a.cos_incidence, b.cos_incidence, rtol=0, atol=1e-6, equal_nan=True)


@pytest.mark.skipif(not render_cpu.available(), reason="the CPU kernels need numba")
def test_cpu_lookup_kernel_equals_the_pytorch_lookup(street_world):
    """The CPU lookup kernel (one pass, no PyTorch) gives what the PyTorch gathers give (what CUDA
    runs), on the street rendered from two poses with two groups, both interpolations, and on an
    analytic plane whose views are partly empty (NaN depth)."""
    world = World.load(street_world)
    renderer = Renderer(world, "cpu")
    c2w = world.frame_c2w[3].astype(np.float64)
    sensor = c2w.copy()
    sensor[:3, :3] = c2w[:3, :3] @ LINK_FROM_OPTICAL_ROTATION.T
    dirs = np.concatenate([ring_directions(np.linspace(-15, 15, 16), 360),
                           np.random.default_rng(3).normal(size=(3000, 3))])
    groups = (np.arctan2(dirs[:, 1], dirs[:, 0]) > 0).astype(int)
    views = DirectionalViews(dirs, math.radians(0.5), groups=groups, row_pitch_rad=math.radians(1.0))
    poses = np.stack([np.stack([sensor, sensor]), np.stack([sensor, sensor])])
    poses[1, :, 0, 3] += 0.7                                   # the second pose of the batch: moved
    poses[:, 1, 1, 3] -= 0.3                                   # group 1 from its own pose
    out = renderer.render(views.cameras(poses), float(world.frame_time[3]))
    for interpolation in INTERPOLATIONS:
        torch_path = views.sample(out, interpolation, kernel=False)
        kernel = views.sample(out, interpolation, kernel=True)
        assert kernel.range.shape == (2, len(dirs))
        assert torch.isfinite(kernel.range).float().mean() > 0.2       # the street was seen
        assert_same_samples(torch_path, kernel)
    plane_views = DirectionalViews(ring_directions([-20, -10, -3, 5], 720), math.radians(0.5))
    plane = ground_plane_render(plane_views, 1.7)
    assert torch.isnan(plane.depth).any()
    assert_same_samples(plane_views.sample(plane, kernel=False), plane_views.sample(plane, kernel=True))
