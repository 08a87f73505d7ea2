"""InSpatio-World v1.5 interop: its target_tcw.txt read by our trajectory loader (render --traj, the
node's trajectory mode), and `export WORLD --inspatio DIR` writing the scene layout its pipeline
reads. The reader checks here follow inspatio/inspatio-world-v1.5's pipeline/render_scene.py
(load_scene), datasets/scene_depth_io.py and pipeline/scene_schema.py (read, not copied)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from cli_helpers import run_cli
from inspatio_ros.errors import InputError


def random_rigid(rng, n: int) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    out = np.tile(np.eye(4), (n, 1, 1))
    out[:, :3, :3] = Rotation.from_rotvec(rng.normal(scale=0.4, size=(n, 3))).as_matrix()
    out[:, :3, 3] = rng.normal(scale=5.0, size=(n, 3))
    return out


def test_target_tcw_round_trip_through_the_trajectory_loader(tmp_path):
    """Known camera-to-world poses -> world-to-camera lines relative to the first (their file) ->
    load_trajectory with the first pose as reference gives the poses back."""
    from inspatio_ros.trajectory import detect_trajectory_format, load_trajectory, tcw_text

    rng = np.random.default_rng(7)
    poses = random_rigid(rng, 30)
    path = tmp_path / "target_tcw.txt"
    path.write_text(tcw_text(poses))
    rows = np.loadtxt(path, ndmin=2)
    assert rows.shape == (30, 16)                                       # their load_matrix(path, 4)
    np.testing.assert_allclose(rows[0].reshape(4, 4), np.eye(4), atol=1e-7)   # first frame normalised
    assert detect_trajectory_format(path) == "tcw"
    traj = load_trajectory(path, poses[0], fps=15.0)
    np.testing.assert_allclose(traj.poses, poses, atol=1e-6)
    np.testing.assert_allclose(traj.times, np.arange(30) / 15.0)
    # Against another reference the whole path moves rigidly with it.
    moved = load_trajectory(path, np.eye(4)).poses
    np.testing.assert_allclose(moved, np.linalg.inv(poses[0]) @ poses, atol=1e-6)


def test_a_tcw_file_is_world_to_camera_not_camera_to_world(tmp_path):
    """The same 16 numbers mean the inverse pose in target_tcw.txt and in a plain 4x4 pose file."""
    from inspatio_ros.trajectory import load_trajectory

    rng = np.random.default_rng(3)
    m = random_rigid(rng, 5)
    text = "".join(" ".join(f"{v:.12g}" for v in x.ravel()) + "\n" for x in m)
    (tmp_path / "target_tcw.txt").write_text(text)
    (tmp_path / "poses.txt").write_text(text)
    np.testing.assert_allclose(load_trajectory(tmp_path / "target_tcw.txt", np.eye(4)).poses, np.linalg.inv(m),
                               atol=1e-9)
    np.testing.assert_allclose(load_trajectory(tmp_path / "poses.txt").poses, m, atol=1e-9)


def test_bad_tcw_files_are_one_input_error(tmp_path):
    from inspatio_ros.trajectory import load_trajectory

    bad = tmp_path / "target_tcw.txt"
    bad.write_text("1 0 0 0 0 1 0 0 0 0 1 0 0 0 0 2\n")
    with pytest.raises(InputError, match="last row"):
        load_trajectory(bad, np.eye(4), fmt="tcw")
    bad.write_text("2 0 0 0 0 1 0 0 0 0 1 0 0 0 0 1\n")
    with pytest.raises(InputError):
        load_trajectory(bad, np.eye(4), fmt="tcw")
    bad.write_text("1 0 0 0 0 1 0 0 0 0 1 0\n")
    with pytest.raises(InputError, match="not 16"):
        load_trajectory(bad, np.eye(4), fmt="tcw")


def test_padded_frame_count_matches_their_example():
    from inspatio_ros.interop.inspatio_world import padded_frame_count

    # examples/multiview_example_00/scene.json: valid_frames 130, frames 141.
    assert padded_frame_count(130) == 141
    for valid in range(1, 200):
        frames = padded_frame_count(valid)
        latents = 1 + -(-(frames - 1) // 4)                   # frame 0 alone, then groups of four
        assert frames >= valid and latents % 3 == 0 and (frames - 1) % 4 == 0


def read_like_their_pipeline(scene_dir):
    """What load_scene + decode_image_depth + source_type_for do with an image scene, with their checks."""
    meta = json.loads((scene_dir / "scene.json").read_text())
    source_k = np.loadtxt(scene_dir / "depth" / "source_intrinsics.txt", ndmin=2).astype(np.float32).reshape(-1, 3, 3)
    source_tcw = np.loadtxt(scene_dir / "depth" / "source_tcw.txt", ndmin=2).astype(np.float32).reshape(-1, 4, 4)
    target_tcw = np.loadtxt(scene_dir / "input" / "target_tcw.txt", ndmin=2).astype(np.float32).reshape(-1, 4, 4)
    assert len(target_tcw) == meta["frames"] and len(source_k) == meta["views"] == len(source_tcw)
    assert meta["kind"] == "image" and meta["views"] in (1, 4)            # source_type_for
    assert tuple(meta["resolution"]) == (480, 832) and meta["depth_encoding"] == "uint16_minmax_v1"
    images = sorted((scene_dir / "input").glob("view_*.png"))
    depth_paths = ([scene_dir / "depth" / "depth.png"] if meta["views"] == 1
                   else [scene_dir / "depth" / f"depth_{i:02d}.png" for i in range(meta["views"])])
    assert len(images) == len(depth_paths) and all(p.is_file() for p in depth_paths)
    lo, hi = np.loadtxt(scene_dir / "depth" / "metadata.txt", ndmin=1)
    views = []
    for image_path, depth_path in zip(images, depth_paths):
        with Image.open(depth_path) as im:
            assert im.mode in ("I;16", "I")
            q = np.asarray(im, dtype=np.uint16)
        depth = (lo + q.astype(np.float64) / 65535 * (hi - lo)).astype(np.float32)
        rgb = np.asarray(Image.open(image_path).convert("RGB"))
        assert rgb.shape == (480, 832, 3) and depth.shape == (480, 832)
        views.append((rgb, depth))
    raw = np.load(scene_dir / "depth" / "source_depths.npy")
    assert raw.shape == (meta["views"], 480, 832)                          # convert_image's shape check
    return meta, source_k, source_tcw, target_tcw, views


@pytest.mark.parametrize("views", [1, 4])
def test_export_writes_a_scene_their_reader_parses(street_world, tmp_path, views):
    from inspatio_ros.interop.inspatio_world import export_inspatio_scene
    from inspatio_ros.trajectory import load_trajectory
    from inspatio_ros.world import World

    world = World.load(street_world)
    out = tmp_path / "street_scene"
    info = export_inspatio_scene(world, out, views=views, device="cpu")
    meta, source_k, source_tcw, target_tcw, scene_views = read_like_their_pipeline(out)
    assert meta["valid_frames"] == len(world.frame_c2w) and meta["output_id"] == "street_scene"
    first = world.frame_c2w[info["source_frames"][0]]
    np.testing.assert_allclose(source_tcw[0], np.eye(4), atol=1e-6)
    # Their world is the first view's camera: our source cameras map back onto the world's.
    np.testing.assert_allclose(first @ np.linalg.inv(source_tcw.astype(np.float64)),
                               world.frame_c2w[info["source_frames"]], atol=1e-4)
    # target_tcw read back by our loader (as render --traj does, reference = the first view) is the
    # recorded path, padded with its last pose.
    back = load_trajectory(out / "input" / "target_tcw.txt", first).poses
    np.testing.assert_allclose(back[:len(world.frame_c2w)], world.frame_c2w, atol=1e-4)
    np.testing.assert_allclose(back[len(world.frame_c2w):], np.repeat(world.frame_c2w[-1:], len(back) - len(
        world.frame_c2w), axis=0), atol=1e-4)
    # The depth they decode is ours to within the uint16 step; unprojecting it with their K and
    # source_tcw puts the first view's road where the world's points are.
    raw = np.load(out / "depth" / "source_depths.npy")
    step = info["depth_max"] / 65535
    for (rgb, depth), ours in zip(scene_views, raw):
        assert np.abs(depth - ours).max() <= step
        assert (depth > 0).mean() > 0.5 and rgb.std() > 5
    k = source_k[0].astype(np.float64)
    assert k[0, 0] == pytest.approx(world.intrinsics.fx * 832 / world.intrinsics.width, rel=1e-6)
    depth = scene_views[0][1]
    v, u = np.nonzero(depth > 0)
    rays = np.linalg.inv(k) @ np.stack([u, v, np.ones_like(u)]).astype(np.float64)
    local = rays * depth[v, u]
    world_pts = (first @ np.vstack([local, np.ones(local.shape[1])]))[:3].T
    from scipy.spatial import cKDTree

    dist, _ = cKDTree(world.static_xyz).query(world_pts[::97])
    assert np.median(dist) < 0.15


@pytest.mark.slow
def test_export_cli_and_its_errors(street_world, tmp_path):
    done = run_cli("--device", "cpu", "export", str(street_world), "--inspatio", str(tmp_path / "scene"),
                   "--traj", "x_y_circle_cycle")
    assert done.returncode == 0, done.stderr
    meta = json.loads((tmp_path / "scene" / "scene.json").read_text())
    assert meta["views"] == 1 and meta["frames"] >= meta["valid_frames"] == 49
    again = run_cli("--device", "cpu", "export", str(street_world), "--inspatio", str(tmp_path / "scene"))
    assert again.returncode == 2 and len(again.stderr.strip().splitlines()) == 1 and "new folder" in again.stderr


def test_the_node_trajectory_mode_follows_a_target_tcw(street_world, tmp_path):
    """A target_tcw.txt written from the recorded cameras (relative to the first) puts the session's
    camera in mode trajectory on those cameras: the node's reference is the recorded start camera."""
    from inspatio_ros.sim.rig import load_rig
    from inspatio_ros.sim.session import SimSession
    from inspatio_ros.sim.settings import SessionSettings, TrajectorySettings
    from inspatio_ros.trajectory import tcw_text
    from inspatio_ros.world import World

    world = World.load(street_world)
    _, cameras, _ = world.camera_path()
    path = tmp_path / "target_tcw.txt"
    path.write_text(tcw_text(cameras))
    rig = load_rig({"cameras.names": ["front"], "cameras.front.width": 48, "cameras.front.height": 32,
                    "cameras.front.hfov_deg": 80.0, "cameras.front.rate_hz": 10.0, "cameras.front.outputs": ["image"]})
    session = SimSession(world, rig, SessionSettings(mode="trajectory", lockstep=True, device="cpu",
                                                     trajectory=TrajectorySettings(file=str(path), fps=10.0)))
    map_from_world = session.sim.map_from_world
    for k in range(1, 6):                              # step k shows the trajectory at k / 10 s: pose k
        frame = session.step()
        np.testing.assert_allclose(frame.cameras[0].map_from_optical, map_from_world @ cameras[k], atol=1e-6)
