"""Synthetic scenes: exact depth, sky, determinism, motion, non-repeating texture, dataset files."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import torch

from inspatio_ros.camera import Intrinsics, look_at, make_pose
from inspatio_ros.errors import InputError
from inspatio_ros.posefile import read_poses
from inspatio_ros.cli import synth as synth_cli
from inspatio_ros.synth import indoor, street
from inspatio_ros.synth.generate import generate, load_intrinsics, load_scene
from inspatio_ros.synth.noise import fbm2, hash01
from inspatio_ros.synth.scene import Scene, exposure_gain
from inspatio_ros.video import read_image, read_video

SMALL = Intrinsics.from_fov(96, 64, 70.0)


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("INSPATIO_NO_PROGRESS", "1")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # These renders are tiny: on a shared 2-core machine, torch's intra-op threads spend more
    # time waiting for a busy sibling core than computing (seen: 1.2 s vs 0.12 s per render).
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def street_scene() -> Scene:
    return Scene("street", seed=3, params={"duration": 2.0})


@pytest.fixture(scope="module")
def indoor_scene() -> Scene:
    return Scene("indoor", seed=1)


def straight_down(x: float, y: float, h: float) -> np.ndarray:
    # Optical axis -z, image x -> world -y, image y -> world -x (a proper rotation, det +1).
    rot = np.array([[0.0, -1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, -1.0]])
    return make_pose(rot, (x, y, h))


def brute_force_depth(scene: Scene, c2w: np.ndarray, intr: Intrinsics, t: float, pixels: np.ndarray) -> np.ndarray:
    """Independent float64 reference: every box and the ground plane, no tiles, no culling."""
    lo, hi = scene.boxes_at(t)
    origin, rot = c2w[:3, 3], c2w[:3, :3]
    u, v = pixels[:, 0].astype(np.float64), pixels[:, 1].astype(np.float64)
    d = np.stack([(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, np.ones_like(u)], -1) @ rot.T  # z_cam = 1
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (lo[None] - origin) / d[:, None]
        t2 = (hi[None] - origin) / d[:, None]
    near = np.nanmax(np.minimum(t1, t2), -1)
    far = np.nanmin(np.maximum(t1, t2), -1)
    ok = (near <= far) & (near > 1e-4)
    best = np.where(ok, near, np.inf).min(-1)
    if scene.kind == "street":
        ground = np.where(d[:, 2] < 0, origin[2] / -d[:, 2], np.inf)
        best = np.minimum(best, ground)
    return best


# ---------------------------------------------------------------------------------------------
# Geometry
# ---------------------------------------------------------------------------------------------

def test_depth_of_road_seen_from_above_is_exact(street_scene):
    for h in (1.5, 2.0, 3.7):
        rgb, depth = street_scene.render(straight_down(5.0, -1.75, h), SMALL, t=0.0)
        assert depth.dtype == np.float32 and depth.shape == (64, 96)
        np.testing.assert_allclose(depth, h, atol=1e-4)
        assert rgb.shape == (64, 96, 3) and rgb.dtype == np.uint8


def test_nothing_is_behind_the_ground_plane(street_scene):
    c2w = street_scene.camera_pose(0.7)
    _, depth = street_scene.render(c2w, SMALL, t=0.7)
    v, u = np.mgrid[0:64, 0:96]
    d = np.stack([(u - SMALL.cx) / SMALL.fx, (v - SMALL.cy) / SMALL.fy, np.ones_like(u, float)], -1) @ c2w[:3, :3].T
    with np.errstate(divide="ignore"):
        ground = np.where(d[..., 2] < 0, c2w[2, 3] / -d[..., 2], np.inf)
    assert (depth <= ground + 1e-4).all()
    road = np.isclose(depth, ground, atol=1e-4) & np.isfinite(ground)
    assert road[-10:].mean() > 0.5  # the bottom rows mostly see road, at exactly the plane depth


def test_depth_matches_independent_brute_force(street_scene, indoor_scene):
    rng = np.random.default_rng(0)
    intr = Intrinsics.from_fov(160, 96, 90.0)
    for scene, times in ((street_scene, (0.0, 1.3)), (indoor_scene, (0.0, 2.5))):
        for t in times:
            c2w = scene.camera_pose(t)
            _, depth = scene.render(c2w, intr, t, supersample=1)
            pix = np.stack([rng.integers(0, 160, 400), rng.integers(0, 96, 400)], -1)
            ref = brute_force_depth(scene, c2w, intr, t, pix)
            got = depth[pix[:, 1], pix[:, 0]].astype(np.float64)
            if scene.kind == "indoor":
                # The room's walls close every ray: the reference gets them from the room box.
                rlo, rhi = indoor.room_bounds(scene.params)
                o = c2w[:3, 3]
                u, v = pix[:, 0].astype(float), pix[:, 1].astype(float)
                d = np.stack([(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, np.ones_like(u)], -1) @ c2w[:3, :3].T
                with np.errstate(divide="ignore"):
                    exit_t = np.maximum((rlo - o) / d, (rhi - o) / d).min(-1)
                ref = np.minimum(ref, exit_t)
            finite = np.isfinite(ref)
            np.testing.assert_array_equal(np.isfinite(got), finite)
            np.testing.assert_allclose(got[finite], ref[finite], rtol=1e-4, atol=1e-4)


def test_sky_is_infinite(street_scene):
    up = look_at((5.0, -1.75, 1.5), (5.0, -1.75, 10.0), up=(1.0, 0.0, 0.0))
    narrow = Intrinsics.from_fov(32, 32, 20.0)  # tall facades stay outside a narrow upward view
    rgb, depth = street_scene.render(up, narrow, t=0.0)
    assert np.isinf(depth).all() and (depth > 0).all()
    assert rgb[..., 2].mean() > rgb[..., 0].mean()  # blue sky
    _, depth = street_scene.render(street_scene.camera_pose(0.0), SMALL, t=0.0)
    assert np.isinf(depth[0]).any() and np.isfinite(depth[-1]).all()


def test_indoor_room_is_closed(indoor_scene):
    for t in (0.0, 3.0):
        _, depth = indoor_scene.render(indoor_scene.camera_pose(t), SMALL, t)
        assert np.isfinite(depth).all() and (depth > 0.05).all()
        assert depth.max() < np.linalg.norm(indoor_scene.params["room"])


# ---------------------------------------------------------------------------------------------
# Determinism, seeds, serialisation
# ---------------------------------------------------------------------------------------------

def test_deterministic_and_seed_dependent():
    a = Scene("street", seed=5, params={"duration": 1.0})
    b = Scene("street", seed=5, params={"duration": 1.0})
    c = Scene("street", seed=6, params={"duration": 1.0})
    pose = a.camera_pose(0.5)
    ra, da = a.render(pose, SMALL, 0.5)
    rb, db = b.render(pose, SMALL, 0.5)
    rc, dc = c.render(pose, SMALL, 0.5)
    np.testing.assert_array_equal(ra, rb)
    np.testing.assert_array_equal(da, db)
    assert np.abs(ra.astype(int) - rc.astype(int)).mean() > 5
    assert not np.array_equal(np.isinf(da), np.isinf(dc)) or not np.allclose(da[np.isfinite(da)], dc[np.isfinite(dc)])


def test_json_round_trip_renders_identically(indoor_scene):
    text = indoor_scene.to_json()
    again = Scene.from_json(text)
    assert again.to_dict() == indoor_scene.to_dict()
    pose = indoor_scene.camera_pose(1.0)
    np.testing.assert_array_equal(indoor_scene.render(pose, SMALL, 1.0)[0], again.render(pose, SMALL, 1.0)[0])
    with pytest.raises(InputError):
        Scene.from_json("{not json")
    with pytest.raises(InputError):
        Scene.from_json({"format": "something else"})
    with pytest.raises(InputError):
        Scene("forest")
    with pytest.raises(InputError):
        Scene("street", params={"colour": 1})


# ---------------------------------------------------------------------------------------------
# Motion and dynamic mask
# ---------------------------------------------------------------------------------------------

def test_moving_car_moves_and_is_masked(street_scene):
    lay = street_scene.layout
    dyn = lay.dynamic
    assert dyn.any()
    lo0, _ = street_scene.boxes_at(0.0)
    lo1, _ = street_scene.boxes_at(1.0)
    moved = np.abs(lo1 - lo0).max(-1)
    assert (moved[dyn] > 5.0).all() and (moved[~dyn] == 0).all()

    masks = []
    for t in (0.0, 1.0):
        _, depth, mask = street_scene.render(street_scene.camera_pose(t), SMALL, t, return_dynamic=True)
        assert mask.dtype == bool and mask.any()
        assert np.isfinite(depth[mask]).all()
        masks.append(mask)
    # Seen from a fixed camera, the car is somewhere else one second later.
    fixed = street_scene.camera_pose(0.0)
    m0 = street_scene.render(fixed, SMALL, 0.0, return_dynamic=True)[2]
    m1 = street_scene.render(fixed, SMALL, 1.0, return_dynamic=True)[2]
    assert m0.any() and not np.array_equal(m0, m1)


def test_no_moving_objects_gives_empty_mask():
    scene = Scene("street", seed=0, params={"duration": 1.0, "moving_objects": 0})
    assert not scene.layout.dynamic.any()
    _, _, mask = scene.render(scene.camera_pose(0.0), SMALL, 0.0, return_dynamic=True)
    assert not mask.any()


def test_indoor_moving_object_in_view(indoor_scene):
    seen = [indoor_scene.render(indoor_scene.camera_pose(t), SMALL, t, return_dynamic=True)[2].any()
            for t in (0.0, 1.5, 3.0, 4.5)]
    assert sum(seen) >= 3


# ---------------------------------------------------------------------------------------------
# Appearance
# ---------------------------------------------------------------------------------------------

def test_noise_does_not_repeat():
    x = torch.linspace(0, 3, 200)
    y = torch.full_like(x, 4.0)
    octaves = [(0.12, 0.1), (0.6, 0.06), (2.5, 0.035), (8.0, 0.01)]
    a = fbm2(x, y, 7, octaves)
    b = fbm2(x + 20.0, y, 7, octaves)
    assert (a - b).abs().mean() > 0.02
    h = hash01(torch.arange(-1000, 1000), torch.zeros(2000, dtype=torch.int64), 3)
    assert 0.45 < float(h.mean()) < 0.55 and len(torch.unique(h)) > 1990


def test_facade_patches_20m_apart_differ(street_scene):
    """Shade one long facade at two patches 20 m apart: a tiled texture would give equal colours."""
    from inspatio_ros.synth.shading import Surf

    lay = street_scene.layout
    b = int(np.flatnonzero(lay.mat == street.BUILDING)[0])
    attr = torch.tensor(lay.attr[b])
    g = torch.linspace(0.0, 2.0, 40)
    xs, zs = torch.meshgrid(g, g + 4.0, indexing="ij")
    patches = []
    for x0 in (30.0, 50.0):
        n = xs.numel()
        p = torch.stack([xs.reshape(-1) + x0, torch.full((n,), 9.0), zs.reshape(-1)], -1)
        h = Surf(p=p, n=torch.tensor([[0.0, -1.0, 0.0]]).expand(n, 3), axis=torch.full((n,), 1),
                 lo=torch.tensor([[0.0, 9.0, 0.0]]).expand(n, 3), hi=torch.tensor([[100.0, 20.0, 20.0]]).expand(n, 3),
                 attr=attr.expand(n, -1))
        albedo, _ = street.SHADERS[street.BUILDING](h, street_scene)
        patches.append(albedo)
    diff = (patches[0] - patches[1]).abs()
    assert diff.mean() > 0.01 and (diff.max(-1).values > 0.005).float().mean() > 0.5

    # And in rendered images: the same relative view of the left facades 20 m apart differs.
    intr = Intrinsics.from_fov(64, 64, 40.0)
    views = [street_scene.render(look_at((x, 0.0, 2.0), (x, 20.0, 2.0)), intr, 0.0, exposure=False)[0]
             for x in (10.0, 30.0)]
    assert np.abs(views[0].astype(float) - views[1].astype(float)).mean() > 4.0


def test_exposure_gain_is_small_and_smooth(street_scene):
    ts = np.linspace(0, 60, 6001)
    g = np.array([exposure_gain(t) for t in ts])
    assert np.abs(g - 1).max() <= 0.04 + 1e-9 and np.abs(g - 1).max() > 0.01
    assert np.abs(np.diff(g)).max() < 0.001  # smooth at 100 Hz sampling
    pose = street_scene.camera_pose(1.0)
    on = street_scene.render(pose, SMALL, 1.0)[0].astype(float)
    off = street_scene.render(pose, SMALL, 1.0, exposure=False)[0].astype(float)
    ratio = on[off > 40].mean() / off[off > 40].mean()
    assert abs(ratio - exposure_gain(1.0)) < 0.01


def test_supersampling_changes_colour_not_depth(street_scene):
    pose = street_scene.camera_pose(0.3)
    r1, d1 = street_scene.render(pose, SMALL, 0.3, supersample=1)
    r2, d2 = street_scene.render(pose, SMALL, 0.3, supersample=2)
    r3, d3 = street_scene.render(pose, SMALL, 0.3, supersample=3)
    np.testing.assert_array_equal(d1, d2)
    np.testing.assert_array_equal(d1, d3)
    assert not np.array_equal(r1, r2)
    assert np.abs(r2.astype(int) - r3.astype(int)).mean() < np.abs(r1.astype(int) - r3.astype(int)).mean()


def test_camera_trajectories():
    s = Scene("street", params={"duration": 6.0})
    p0, p6 = s.camera_pose(0.0), s.camera_pose(6.0)
    assert abs(p0[2, 3] - 1.5) < 1e-9 and 40 < p6[0, 3] - p0[0, 3] < 56
    ys = [s.camera_pose(t)[1, 3] for t in np.linspace(0, 6, 61)]
    assert max(ys) - min(ys) > 0.4 and max(abs(y - street.EGO_LANE_Y) for y in ys) <= 0.3 + 1e-9
    assert p0[:3, 2] @ np.array([1.0, 0, 0]) > 0.99   # looking forward along +x
    assert p0[:3, 2][2] < 0                           # tiny pitch down
    i = Scene("indoor")
    pts = np.array([i.camera_pose(t)[:3, 3] for t in np.linspace(0, 6, 61)])
    assert np.allclose(pts[:, 2], 0.4)
    speed = np.linalg.norm(np.diff(pts, axis=0), axis=1) / 0.1
    assert 0.3 < speed.mean() < 0.7


# ---------------------------------------------------------------------------------------------
# Dataset generation and CLI
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def street_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "street"
    import os
    os.environ["INSPATIO_NO_PROGRESS"] = "1"
    generate("street", out, size=(128, 80), frames=4, moving_cars=2, seed=2, fps=10.0)
    return out


def test_generate_writes_every_file(street_dataset):
    out = street_dataset
    for name in ("video.mp4", "poses_tum.txt", "poses_kitti.txt", "times.txt", "camera_info.yaml", "scene.json"):
        assert (out / name).is_file(), name
    for sub, ext in (("frames", ".png"), ("depth", ".npy"), ("dynamic_mask", ".png")):
        names = sorted(p.name for p in (out / sub).iterdir())
        assert names == [f"{i:06d}{ext}" for i in range(4)]
    assert not [p for p in out.rglob(".*")]  # no temporaries left behind
    depth = np.load(out / "depth" / "000000.npy")
    assert depth.dtype == np.float32 and depth.shape == (80, 128) and np.isinf(depth).any()
    mask = read_image(out / "dynamic_mask" / "000000.png")[..., 0]
    assert set(np.unique(mask)) <= {0, 255} and (mask == 255).any()
    times = np.loadtxt(out / "times.txt")
    np.testing.assert_allclose(times, [0.0, 0.1, 0.2, 0.3])
    frames, vtimes = read_video(out / "video.mp4")
    assert len(frames) == 4 and frames[0].shape == (80, 128, 3)
    np.testing.assert_allclose(vtimes, times, atol=1e-6)
    png = read_image(out / "frames" / "000002.png").astype(float)
    assert 10 * np.log10(255 ** 2 / np.mean((png - frames[2]) ** 2)) > 30
    poses_tum, t_tum = read_poses(out / "poses_tum.txt")
    poses_kitti, _ = read_poses(out / "poses_kitti.txt")
    np.testing.assert_allclose(poses_tum, poses_kitti, atol=1e-6)
    np.testing.assert_allclose(t_tum, times)
    meta = json.loads((out / "scene.json").read_text())
    assert meta["kind"] == "street" and meta["seed"] == 2 and meta["fps"] == 10.0
    assert meta["params"]["moving_objects"] == 2


def test_generated_ground_truth_can_be_rerendered(street_dataset):
    scene = load_scene(street_dataset)
    intr = load_intrinsics(street_dataset)
    poses, times = read_poses(street_dataset / "poses_tum.txt")
    rgb, depth = scene.render(poses[1], intr, float(times[1]))
    np.testing.assert_allclose(depth, np.load(street_dataset / "depth" / "000001.npy"), rtol=1e-5)
    np.testing.assert_array_equal(rgb, read_image(street_dataset / "frames" / "000001.png"))


def test_depth_and_poses_are_consistent_across_frames(street_dataset):
    """Back-project frame 0 with its depth, project into frame 1: static colours must match."""
    _assert_frames_reproject(street_dataset)


def test_curved_street_ground_truth_is_consistent_across_frames(tmp_path):
    """The same check on a bending street: turned boxes, their textures and the GT agree."""
    out = generate("street", tmp_path / "curve", size=(128, 80), frames=2, moving_cars=1, seed=6,
                   params={"curve_radius": 25.0, "speed": 10.0})
    _assert_frames_reproject(out)


def _assert_frames_reproject(out):
    intr = load_intrinsics(out)
    poses, _ = read_poses(out / "poses_tum.txt")
    d0 = np.load(out / "depth" / "000000.npy")
    d1 = np.load(out / "depth" / "000001.npy")
    img0 = read_image(out / "frames" / "000000.png").astype(float)
    img1 = read_image(out / "frames" / "000001.png").astype(float)
    dyn0 = read_image(out / "dynamic_mask" / "000000.png")[..., 0] > 0
    v, u = np.mgrid[0:intr.height, 0:intr.width]
    ok = np.isfinite(d0) & ~dyn0 & (d0 < 40)
    cam0 = np.stack([(u - intr.cx) / intr.fx * d0, (v - intr.cy) / intr.fy * d0, d0], -1)[ok]
    world = cam0 @ poses[0][:3, :3].T + poses[0][:3, 3]
    cam1 = (world - poses[1][:3, 3]) @ poses[1][:3, :3]
    u1 = np.rint(intr.fx * cam1[:, 0] / cam1[:, 2] + intr.cx).astype(int)
    v1 = np.rint(intr.fy * cam1[:, 1] / cam1[:, 2] + intr.cy).astype(int)
    inside = (cam1[:, 2] > 0.1) & (u1 >= 0) & (u1 < intr.width) & (v1 >= 0) & (v1 < intr.height)
    u1, v1, z1 = u1[inside], v1[inside], cam1[inside, 2]
    visible = np.abs(d1[v1, u1] - z1) < 0.03 * z1  # not occluded in frame 1
    assert visible.sum() > 0.3 * ok.sum()
    c0 = img0[ok][inside][visible]
    c1 = img1[v1[visible], u1[visible]]
    diff = np.abs(c0 - c1).mean(-1)
    assert np.median(diff) < 6.0
    assert np.mean(diff < 20) > 0.85


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command")
    synth_cli.register(sub)
    return p


@pytest.mark.parametrize("flags, match", [
    (["--size", "0x5"], "size"),
    (["--size", "64by48"], "WIDTHxHEIGHT"),
    (["--size", "65x48"], "odd"),
    (["--frames", "1"], "frames"),
    (["--moving-cars", "-1"], "moving"),
    (["--fps", "0"], "fps"),
])
def test_cli_rejects_bad_flags(tmp_path, flags, match):
    args = _parser().parse_args(["synth", "street", "-o", str(tmp_path / "o"), *flags])
    with pytest.raises(InputError, match=match) as err:
        args.func(args)
    assert err.value.fix  # every error says how to fix it
    assert not (tmp_path / "o").exists()


def test_cli_runs_indoor(tmp_path, capsys):
    args = _parser().parse_args(["synth", "indoor", "-o", str(tmp_path / "room"), "--size", "64x48",
                                 "--frames", "2", "--seed", "4", "--moving-cars", "2"])
    assert args.func(args) == 0
    assert "synth indoor: 2 frames 64x48" in capsys.readouterr().out
    scene = load_scene(tmp_path / "room")
    assert scene.kind == "indoor" and scene.seed == 4 and scene.params["moving_objects"] == 2
    assert len(list((tmp_path / "room" / "frames").iterdir())) == 2


# ---------------------------------------------------------------------------------------------
# Scene options that real footage shows: a curve at speed, robot / drone height, motion blur,
# a textureless highway, a long street
# ---------------------------------------------------------------------------------------------

CURVE = {"curve_radius": 25.0, "speed": 10.0}


def _yaw_deg_and_step(poses: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per frame pair: rotation about the world vertical (deg) and camera travel (m), from poses."""
    forward = poses[:, :3, 2]                                   # optical axis in the world
    heading = np.unwrap(np.arctan2(forward[:, 1], forward[:, 0]))
    return np.degrees(np.abs(np.diff(heading))), np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1)


def brute_force_depth_placed(scene: Scene, c2w: np.ndarray, intr: Intrinsics, t: float,
                             pixels: np.ndarray) -> np.ndarray:
    """Independent float64 reference for boxes turned about z: each ray taken into each box's
    frame (local = Rz(-yaw) (world - place)), slab test there; plus the ground plane."""
    yaw, place = scene.placement(t)
    lo, hi = scene.layout.lo, scene.layout.hi
    origin = c2w[:3, 3]
    u, v = pixels[:, 0].astype(np.float64), pixels[:, 1].astype(np.float64)
    d = np.stack([(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, np.ones_like(u)], -1) @ c2w[:3, :3].T
    c, s = np.cos(yaw), np.sin(yaw)
    rel = origin[None] - place                                               # [M, 3]
    o_loc = np.stack([c * rel[:, 0] + s * rel[:, 1], -s * rel[:, 0] + c * rel[:, 1], rel[:, 2]], -1)
    d_loc = np.stack([c[None] * d[:, 0, None] + s[None] * d[:, 1, None],
                      -s[None] * d[:, 0, None] + c[None] * d[:, 1, None],
                      np.broadcast_to(d[:, 2, None], (len(d), len(yaw)))], -1)   # [N, M, 3]
    with np.errstate(divide="ignore", invalid="ignore"):
        t1 = (lo[None] - o_loc[None]) / d_loc
        t2 = (hi[None] - o_loc[None]) / d_loc
    near = np.nanmax(np.minimum(t1, t2), -1)
    far = np.nanmin(np.maximum(t1, t2), -1)
    best = np.where((near <= far) & (near > 1e-4), near, np.inf).min(-1)
    ground = np.where(d[:, 2] < 0, origin[2] / -d[:, 2], np.inf)
    return np.minimum(best, ground)


@pytest.fixture(scope="module")
def curved_scene() -> Scene:
    return Scene("street", seed=2, params={**CURVE, "duration": 6.0, "moving_objects": 2})


def test_curving_street_turns_at_least_2_deg_and_1_m_per_frame(curved_scene):
    poses = np.stack([curved_scene.camera_pose(t) for t in np.arange(60) / 10.0])
    yaw, step = _yaw_deg_and_step(poses)
    assert yaw.min() >= 2.0 and step.min() >= 1.0, (yaw.min(), step.min())
    assert 2.0 < np.median(yaw) < 2.6                      # 10 m/s on a 25 m radius: 2.3 deg at 10 Hz
    straight = Scene("street", params={"speed": 10.0})
    yaw_s, _ = _yaw_deg_and_step(np.stack([straight.camera_pose(t) for t in np.arange(60) / 10.0]))
    assert yaw_s.max() < 1.0                               # the option is what turns the camera
    # The total turn over 6 s is the arc's: 60 m on 25 m is 137 deg (+- the weave's yaw).
    assert 125 < yaw.sum() < 150


def test_curved_street_follows_the_road(curved_scene):
    """Buildings, sidewalks and cars turn with the road, and the camera stays in its lane."""
    line = street.centreline(curved_scene.params)
    for t in (0.0, 2.5, 5.0):
        p = curved_scene.camera_pose(t)[:3, 3]
        s, d = line.to_street(torch.tensor([p[0]]), torch.tensor([p[1]]))
        assert abs(float(d) - street.EGO_LANE_Y) <= curved_scene.params["weave"] + 1e-3
        assert abs(float(s) - 10.0 * t) < 0.5
    yaw, place = curved_scene.placement(0.0)
    assert np.ptp(yaw) > np.radians(120)          # pieces along a turn of 137 deg and more
    # Every building piece's road-facing face stays behind the sidewalk (>= 8.4 m off the centre).
    lo, hi = curved_scene.boxes_at(0.0)
    building = curved_scene.layout.mat == street.BUILDING
    centre = 0.5 * (lo + hi)[building]
    _, d = line.to_street(torch.tensor(centre[:, 0]), torch.tensor(centre[:, 1]))
    d = d.numpy()
    assert (np.abs(d[np.isfinite(d)]) > 8.4).all()
    # Moving cars keep to their lanes as they drive round the bend.
    along = curved_scene.layout.extras["along"]
    for t in (0.0, 4.0):
        _, place = curved_scene.placement(t)
        car = place[along[:, 0].astype(int)]
        _, d = line.to_street(torch.tensor(car[:, 0]), torch.tensor(car[:, 1]))
        assert np.abs(d.numpy()).max() < 0.01    # the local frame's origin rides on the centreline


def test_curved_depth_matches_independent_brute_force(curved_scene):
    rng = np.random.default_rng(1)
    intr = Intrinsics.from_fov(128, 72, 90.0)
    for t in (0.0, 3.3):
        c2w = curved_scene.camera_pose(t)
        _, depth = curved_scene.render(c2w, intr, t, supersample=1)
        pix = np.stack([rng.integers(0, 128, 300), rng.integers(0, 72, 300)], -1)
        ref = brute_force_depth_placed(curved_scene, c2w, intr, t, pix)
        got = depth[pix[:, 1], pix[:, 0]].astype(np.float64)
        finite = np.isfinite(ref)
        np.testing.assert_array_equal(np.isfinite(got), finite)
        np.testing.assert_allclose(got[finite], ref[finite], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("height, pitch_deg", [(0.5, 1.7), (10.0, 35.0)])
def test_camera_at_robot_and_drone_height(height, pitch_deg):
    scene = Scene("street", seed=1, params={"camera_height": height, "pitch": np.radians(pitch_deg),
                                             "duration": 1.0, "moving_objects": 0})
    c2w = scene.camera_pose(0.4)
    assert abs(c2w[2, 3] - height) < 1e-9
    forward = c2w[:3, 2]
    assert abs(np.degrees(np.arcsin(-forward[2])) - pitch_deg) < 0.5      # pitched down as asked
    intr = Intrinsics.from_fov(64, 48, 70.0)
    _, depth = scene.render(c2w, intr, 0.4, supersample=1)
    # The bottom-centre pixel sees the ego lane's road: its depth gives the height back.
    v, u = intr.height - 1, intr.width // 2
    ray = np.array([(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, 1.0]) @ c2w[:3, :3].T
    assert ray[2] < 0
    np.testing.assert_allclose(depth[v, u] * -ray[2], height, rtol=1e-4)


def test_motion_blur_lowers_gradient_energy_and_keeps_ground_truth(tmp_path):
    common = dict(size=(96, 64), frames=3, moving_cars=0, seed=3, fps=10.0, supersample=1, params={"speed": 15.0})
    sharp = generate("street", tmp_path / "sharp", **common)
    blurred = generate("street", tmp_path / "blur", exposure=0.08, blur_samples=6, **common)

    def energy(path):
        img = read_image(path).astype(float).mean(-1)
        return (np.diff(img, axis=1) ** 2).mean() + (np.diff(img, axis=0) ** 2).mean()
    for i in (1, 2):
        name = f"{i:06d}"
        assert energy(blurred / "frames" / f"{name}.png") < 0.8 * energy(sharp / "frames" / f"{name}.png")
        np.testing.assert_array_equal(np.load(blurred / "depth" / f"{name}.npy"), np.load(sharp / "depth" / f"{name}.npy"))
    np.testing.assert_array_equal(read_poses(blurred / "poses_tum.txt")[0], read_poses(sharp / "poses_tum.txt")[0])
    meta = json.loads((blurred / "scene.json").read_text())
    assert meta["exposure_s"] == 0.08 and meta["blur_samples"] == 6
    # Blur is a mean over the shutter, not a filter: more exposure, more blur; zero, none.
    scene = load_scene(sharp)
    intr = load_intrinsics(sharp)
    e = [scene.render_blurred(scene.camera_pose, intr, 0.1, x, 6, 1)[0].astype(float).mean(-1) for x in (0.0, 0.03, 0.09)]
    g = [(np.diff(im, axis=1) ** 2).mean() for im in e]
    assert g[0] > g[1] > g[2]
    np.testing.assert_array_equal(e[0], read_image(sharp / "frames" / "000001.png").astype(float).mean(-1))


def test_highway_is_fast_wide_and_nearly_textureless():
    hw = Scene("highway", seed=0, params={"duration": 2.0, "moving_objects": 0})
    poses = np.stack([hw.camera_pose(t) for t in np.arange(11) / 10.0])
    _, step = _yaw_deg_and_step(poses)
    assert 25.0 <= step.mean() * 10 <= 30.0                  # m/s
    town = Scene("street", seed=0, params={"duration": 2.0, "moving_objects": 0})
    intr = Intrinsics.from_fov(128, 72, 80.0)
    img_h, depth_h = hw.render(hw.camera_pose(1.0), intr, 1.0)
    img_s, _ = town.render(town.camera_pose(1.0), intr, 1.0)

    def near_energy(img):   # the lower half: what is close to the camera
        g = img.astype(float).mean(-1)[36:]
        return (np.diff(g, axis=1) ** 2).mean() + (np.diff(g, axis=0) ** 2).mean()
    assert near_energy(img_h) < 0.5 * near_energy(img_s)
    assert np.isinf(depth_h).mean() > 0.25                   # a wide sky
    far = np.isfinite(depth_h) & (depth_h > 250)
    assert far.sum() > 20                                    # far hills for rotation
    assert Scene("highway", seed=1, params={"duration": 2.0}).layout.lo.shape != hw.layout.lo.shape or \
        not np.array_equal(Scene("highway", seed=1, params={"duration": 2.0}).layout.lo, hw.layout.lo)


def test_new_options_are_deterministic_and_round_trip(tmp_path):
    for kind, params in (("street", {**CURVE, "camera_height": 0.6}), ("highway", {"pitch": 0.1})):
        a = Scene(kind, seed=4, params={**params, "duration": 1.0})
        b = Scene.from_json(a.to_json())
        pose = a.camera_pose(0.5)
        ra, da = a.render(pose, SMALL, 0.5)
        rb, db = b.render(pose, SMALL, 0.5)
        np.testing.assert_array_equal(ra, rb)
        np.testing.assert_array_equal(da, db)
        c = Scene(kind, seed=5, params={**params, "duration": 1.0})
        assert np.abs(ra.astype(int) - c.render(pose, SMALL, 0.5)[0].astype(int)).mean() > 2


def test_long_street_casts_a_bounded_number_of_boxes():
    """A 10-minute street holds ~10x the boxes of a minute's; a frame casts only those in range."""
    short = Scene("street", seed=0, params={"duration": 60.0})
    long = Scene("street", seed=0, params={"duration": 600.0})
    assert len(long.layout.mat) > 5 * len(short.layout.mat)
    counts = []
    for t in (30.0, 300.0, 590.0):
        keep = long.in_view_range(long.camera_pose(t)[:3, 3], t)
        assert keep is not None
        counts.append(len(keep))
    assert max(counts) < 0.2 * len(long.layout.mat)
    assert max(counts) < 1.5 * len(short.layout.mat)
    # The default scene (6 s) keeps every box: it renders exactly as without the range.
    default = Scene("street", seed=0)
    assert all(default.in_view_range(default.camera_pose(t)[:3, 3], t) is None for t in (0.0, 6.0))


@pytest.mark.parametrize("kind, flags, match", [
    ("street", ["--curve-radius", "5"], "curve-radius"),
    ("street", ["--curve-radius", "nan"], "curve-radius"),
    ("street", ["--camera-height", "0"], "camera-height"),
    ("street", ["--pitch", "120"], "pitch"),
    ("street", ["--speed", "-3"], "speed"),
    ("street", ["--weave", "4"], "weave"),
    ("street", ["--exposure", "150"], "exposure"),
    ("street", ["--exposure", "40", "--blur-samples", "0"], "blur-samples"),
    ("indoor", ["--curve-radius", "25"], "does not apply"),
    ("highway", ["--curve-radius", "25"], "does not apply"),
    ("indoor", ["--camera-height", "5"], "camera-height"),
])
def test_cli_rejects_bad_scene_options(tmp_path, kind, flags, match):
    args = _parser().parse_args(["synth", kind, "-o", str(tmp_path / "o"), "--size", "64x48", "--frames", "2", *flags])
    with pytest.raises(InputError, match=match) as err:
        args.func(args)
    assert err.value.fix
    assert not (tmp_path / "o").exists()


def test_cli_scene_options_reach_the_ground_truth(tmp_path, capsys):
    args = _parser().parse_args(["synth", "street", "-o", str(tmp_path / "c"), "--size", "64x48", "--frames", "3",
                                 "--curve-radius", "25", "--speed", "10", "--camera-height", "0.6",
                                 "--pitch", "5", "--exposure", "30", "--blur-samples", "2", "--supersample", "1"])
    assert args.func(args) == 0
    assert "curve_radius 25" in capsys.readouterr().out
    poses, _ = read_poses(tmp_path / "c" / "poses_tum.txt")
    assert np.allclose(poses[:, 2, 3], 0.6)
    yaw, step = _yaw_deg_and_step(poses)
    assert (yaw > 2.0).all() and (step > 1.0).all()
    scene = load_scene(tmp_path / "c")
    assert scene.params["curve_radius"] == 25.0 and abs(scene.params["pitch"] - np.radians(5)) < 1e-12


# ---- camera options: what real footage shows beyond the scene (KITTI: gray, clipped, noisy) ----

def test_gray_camera_records_one_channel_frames_of_the_colour_scenes_luma(tmp_path):
    common = dict(size=(96, 64), frames=2, moving_cars=0, seed=3, supersample=1)
    colour = generate("street", tmp_path / "colour", **common)
    gray = generate("street", tmp_path / "gray", camera={"gray": True}, **common)
    from PIL import Image
    with Image.open(gray / "frames" / "000001.png") as im:
        assert im.mode == "L"                                   # one channel, as KITTI's image_0
    rgb = read_image(colour / "frames" / "000001.png").astype(float)
    luma = rgb @ np.array([0.299, 0.587, 0.114])
    mono = np.asarray(Image.open(gray / "frames" / "000001.png"), dtype=float)
    assert np.abs(mono - luma).max() <= 1.5                    # luma of the same render (rounding only)
    assert rgb.std(axis=-1).mean() > 3                         # ... which did have colour
    np.testing.assert_array_equal(np.load(gray / "depth" / "000001.npy"), np.load(colour / "depth" / "000001.npy"))
    # Eval re-renders ground truth from scene.json: it must be gray too.
    scene = load_scene(gray)
    assert scene.camera == {"gain": 1.0, "gray": True}
    again = scene.render(scene.camera_pose(0.1), load_intrinsics(gray), 0.1, 1)[0]
    np.testing.assert_array_equal(again[..., 0], again[..., 2])
    np.testing.assert_array_equal(again[..., 0], mono.astype(np.uint8))


def test_gain_burns_out_the_bright_pixels_and_round_trips(street_scene):
    pose = street_scene.camera_pose(1.0)
    plain = street_scene.render(pose, SMALL, 1.0)[0]
    bright_scene = Scene.from_json({**street_scene.to_dict(), "camera": {"gain": 1.8}})
    bright = bright_scene.render(pose, SMALL, 1.0)[0]
    clipped = lambda img: float((img.max(-1) >= 254).mean())  # noqa: E731
    assert clipped(bright) > clipped(plain) + 0.05
    dark = plain.astype(float) < 100                            # unclipped pixels scale by the gain
    ratio = bright.astype(float)[dark & (plain > 20)] / plain.astype(float)[dark & (plain > 20)]
    assert abs(np.median(ratio) - 1.8) < 0.05
    assert Scene.from_json(bright_scene.to_json()).camera["gain"] == 1.8
    assert "camera" not in street_scene.to_dict()               # default camera: scene.json unchanged


def test_sensor_noise_has_the_asked_spread_is_reproducible_and_spares_ground_truth(tmp_path):
    common = dict(size=(96, 64), frames=2, moving_cars=0, seed=3, supersample=1)
    clean = generate("street", tmp_path / "clean", **common)
    noisy = generate("street", tmp_path / "noisy", sensor_noise=3.0, **common)
    again = generate("street", tmp_path / "again", sensor_noise=3.0, **common)
    a = read_image(clean / "frames" / "000001.png").astype(float)
    b = read_image(noisy / "frames" / "000001.png").astype(float)
    inside = (a > 15) & (a < 240)                               # away from the clipping ends
    assert 2.6 < (b - a)[inside].std() < 3.4
    np.testing.assert_array_equal(b, read_image(again / "frames" / "000001.png"))
    first = read_image(noisy / "frames" / "000000.png").astype(float) - read_image(clean / "frames" / "000000.png")
    assert abs(np.corrcoef(first[inside].ravel(), (b - a)[inside].ravel())[0, 1]) < 0.1   # new noise per frame
    np.testing.assert_array_equal(np.load(noisy / "depth" / "000001.npy"), np.load(clean / "depth" / "000001.npy"))
    assert json.loads((noisy / "scene.json").read_text())["sensor_noise"] == 3.0


@pytest.mark.parametrize("flags, match", [
    (["--gain", "0"], "gain"),
    (["--gain", "nan"], "gain"),
    (["--gain", "9"], "gain"),
    (["--sensor-noise", "-1"], "sensor-noise"),
    (["--sensor-noise", "50"], "sensor-noise"),
])
def test_cli_rejects_bad_camera_options(tmp_path, flags, match):
    args = _parser().parse_args(["synth", "street", "-o", str(tmp_path / "o"), "--size", "64x48", "--frames", "2",
                                 *flags])
    with pytest.raises(InputError, match=match) as err:
        args.func(args)
    assert err.value.fix
    assert not (tmp_path / "o").exists()


def test_cli_camera_options_reach_the_frames(tmp_path, capsys):
    args = _parser().parse_args(["synth", "street", "-o", str(tmp_path / "k"), "--size", "64x48", "--frames", "2",
                                 "--gray", "--gain", "1.4", "--sensor-noise", "1.5", "--supersample", "1"])
    assert args.func(args) == 0
    assert "gray, gain 1.4, sensor noise 1.5" in capsys.readouterr().out
    assert load_scene(tmp_path / "k").camera == {"gain": 1.4, "gray": True}
    frame = read_image(tmp_path / "k" / "frames" / "000000.png")
    np.testing.assert_array_equal(frame[..., 0], frame[..., 1])
    np.testing.assert_array_equal(frame[..., 0], frame[..., 2])
