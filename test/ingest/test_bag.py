"""rosbag2 (MCAP) input: bags recorded from synthetic scenes by test/bag_helpers.py, read without ROS."""
import json

import numpy as np
import pytest

pytest.importorskip("rosbags")

from bag_helpers import write_scene_bag  # noqa: E402
from cli_helpers import run_cli  # noqa: E402
from inspatio_ros.cli import main  # noqa: E402
from inspatio_ros.errors import InputError  # noqa: E402
from inspatio_ros.ingest.bag import BagTopics, open_bag  # noqa: E402


@pytest.fixture(scope="module")
def bag(street, tmp_path_factory):
    path = tmp_path_factory.mktemp("bags") / "street"
    truth = write_scene_bag(street, path, lidar=True)
    return path, truth


def test_list_shows_the_topics_and_what_a_build_reads(bag):
    proc = run_cli("build", str(bag[0]), "--list")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for topic in ("/camera/image_raw", "/camera/camera_info", "/camera/depth/image", "/odom", "/lidar/points",
                  "/tf_static"):
        assert topic in out
    chosen = dict(line.split() for line in out.split("a build would read:")[1].strip().splitlines())
    assert chosen == {"image": "/camera/image_raw", "camera_info": "/camera/camera_info", "odometry": "/odom",
                      "depth": "/camera/depth/image", "lidar": "-"}
    # A bare .mcap file (no metadata.yaml beside it) reads the same.
    bare = next(bag[0].glob("*.mcap"))
    proc = run_cli("build", str(bare), "--list")
    assert proc.returncode == 0 and "/camera/image_raw" in proc.stdout, proc.stderr


def test_poses_from_odometry_and_static_tf_are_the_cameras(bag):
    path, truth = bag
    fs = open_bag(path)
    assert len(fs) == 16
    np.testing.assert_allclose(fs.times, truth["times"], atol=1e-6)
    # odom <- base_link (interpolated to the image stamps) x base_link <- camera_optical_frame.
    np.testing.assert_allclose(fs.pose_array, truth["c2w"], atol=1e-5)
    assert (fs.intrinsics.fx, fs.intrinsics.width) == (truth["intrinsics"].fx, truth["intrinsics"].width)
    depth = fs.depth_load(3)
    assert depth.shape == (96, 160) and np.isfinite(depth).mean() > 0.5


def test_lidar_depth_lands_on_the_true_depth(bag, street):
    """A LiDAR in its own (yawed, offset) frame: projected through /tf_static into the camera, its
    points fall on the pixels they were sampled from, at the true depth."""
    path, truth = bag
    from inspatio_ros.ingest import bag as bag_module

    fs = open_bag(path, BagTopics(lidar="/lidar/points"))
    real_densify = bag_module.densify_sparse_depth
    bag_module.densify_sparse_depth = lambda d: d          # the projection alone
    try:
        depth = fs.depth_load(5)
    finally:
        bag_module.densify_sparse_depth = real_densify
    exact = np.load(sorted((street / "depth").glob("*.npy"))[5])
    sampled = np.zeros_like(exact, bool)
    sampled[::3, ::3] = np.isfinite(exact[::3, ::3]) & (exact[::3, ::3] > 0)
    hit = np.isfinite(depth)
    assert hit[sampled].mean() > 0.98 and not hit[~sampled].any()
    np.testing.assert_allclose(depth[hit], exact[hit], rtol=1e-4)
    dense = fs.depth_load(5)                                # gaps filled from the nearest sample
    assert np.isfinite(dense).mean() > 0.9 * np.isfinite(exact).mean()
    assert np.median(np.abs(dense - exact)[np.isfinite(dense) & np.isfinite(exact)]
                     / exact[np.isfinite(dense) & np.isfinite(exact)]) < 0.02


def test_a_bag_builds_a_world_as_good_as_the_folder(bag, street, street_world, tmp_path):
    from inspatio_ros.eval import evaluate
    from inspatio_ros.world import World

    folder_world, bag_world = street_world, tmp_path / "bag.safetensors"
    assert main(["build", str(bag[0]), "-o", str(bag_world), "--holdout", "5"]) == 0
    w_bag = World.load(bag_world)
    assert "odometry /odom" in w_bag.provenance["poses"]
    a = evaluate(World.load(folder_world), street, device="cpu", shifts=False)
    b = evaluate(w_bag, street, device="cpu", shifts=False)
    assert b.psnr > a.psnr - 0.2, (a.psnr, b.psnr)
    assert b.depth_absrel < a.depth_absrel + 0.005, (a.depth_absrel, b.depth_absrel)
    assert abs(w_bag.num_static - World.load(folder_world).num_static) < 0.02 * w_bag.num_static


def test_a_bag_built_from_lidar_depth(bag, street, tmp_path):
    world = tmp_path / "lidar.safetensors"
    proc = run_cli("build", str(bag[0]), "-o", str(world), "--lidar-topic", "/lidar/points", "--holdout", "5")
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("eval", str(world), "--gt", str(street), "--json", "--no-shift")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    # Every 3rd pixel's depth only, so holes; still a recognisable street.
    assert result["psnr"] > 18.0 and result["depth_absrel"] < 0.1


def test_bad_bags_get_one_clear_error(street, tmp_path):
    no_images = tmp_path / "no_images"
    write_scene_bag(street, no_images, image=False)
    with pytest.raises(InputError, match="no colour image topic"):
        open_bag(no_images)
    no_tf = tmp_path / "no_tf"
    write_scene_bag(street, no_tf, static_tf=False, depth=False)
    with pytest.raises(InputError, match="no /tf_static transform from base_link .* to camera_optical_frame"):
        open_bag(no_tf)
    with pytest.raises(InputError, match="--image-topic /front/image is not in the bag"):
        open_bag(no_tf, BagTopics(image="/front/image"))
    with pytest.raises(InputError, match="topic /odom is nav_msgs/msg/Odometry, not"):
        open_bag(no_tf, BagTopics(image="/odom"))
    broken = tmp_path / "broken.mcap"
    broken.write_bytes(b"\x89MCAP0\r\n not really")
    proc = run_cli("build", str(broken), "-o", str(tmp_path / "w.safetensors"))
    assert proc.returncode != 0 and "bag" in proc.stderr and "cannot be read" in proc.stderr
    proc = run_cli("build", str(street), "--list")
    assert proc.returncode != 0 and "--list is for rosbag2 input" in proc.stderr


# Minutes of node processes, builds or training on 2 cores: left out of the quick loop
# (`pytest -m "not slow"`); CI runs everything.
pytestmark = pytest.mark.slow


def test_a_camera_info_with_distortion_has_the_frames_undistorted(street, tmp_path):
    """The bag's CameraInfo distortion_model and d reach the build like a camera_info.yaml's (the
    street's frames are pinhole; this checks the path, test_undistort_build the geometry)."""
    from inspatio_ros.ingest.build import build_world
    from inspatio_ros.lens import Lens

    lens = Lens.parse("rational_polynomial", [2.1, 0.45, 0.0009, -0.0011, 0.012, 2.4, 1.1, 0.06])
    path = tmp_path / "distorted"
    write_scene_bag(street, path, depth=False, lens=lens)
    fs = open_bag(path, BagTopics())
    assert fs.lens == lens
    world = build_world(path, holdout=0, device="cpu", end=0.3)
    assert world.info["lens"]["distortion_model"] == "rational_polynomial"
    assert "undistorted from rational_polynomial" in world.info["intrinsics_source"]
