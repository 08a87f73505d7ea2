"""The node's ROS-free parts and its static files: parameters, simulator poses, message payloads,
launch files, the interface package. (The node itself is tested across processes in test_node.py.)"""
from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from inspatio_ros.camera import Intrinsics, rotation_from_rpy
from inspatio_ros.errors import InputError
from inspatio_ros.ros.messages import MessageBuilder, split_stamp
from inspatio_ros.ros.params import qos_of, split_parameters
from inspatio_ros.ros.transport import SENSOR_OUT, Qos
from inspatio_ros.ros.transport import resolve_topic
from inspatio_ros.sim.rig import load_rig
from inspatio_ros.sim.simulator import gravity_alignment, organised_points

ROOT = Path(__file__).resolve().parents[1]


def test_parameters_defaults_and_errors():
    node, cams, render = split_parameters({"mode": "pose", "cameras.names": ["a"], "render.near": 0.1})
    assert node.session.mode == "pose" and node.session.clock.rate == 1.0 and cams == {"cameras.names": ["a"]}
    assert render == {"render.near": 0.1}
    assert split_parameters({"clock.rate": 2})[0].session.clock.rate == 2.0      # ints accepted for floats
    with pytest.raises(InputError, match="did you mean 'clock.rate'"):
        split_parameters({"clock.rat": 2.0})
    with pytest.raises(InputError, match="'mode' = 'fly' is out of range"):
        split_parameters({"mode": "fly"})
    with pytest.raises(InputError, match="'lockstep' = 'yes' has the wrong type"):
        split_parameters({"lockstep": "yes"})
    with pytest.raises(InputError, match="clock.rate"):
        split_parameters({"clock.rate": float("nan")})


def test_qos_parameters_override_a_topics_default():
    qos = split_parameters({"qos.image.reliability": "best_effort", "qos.points.depth": 2})[0].qos
    assert qos_of(qos, "image", SENSOR_OUT) == Qos("best_effort", SENSOR_OUT.durability, SENSOR_OUT.depth)
    assert qos_of(qos, "points", SENSOR_OUT) == Qos(SENSOR_OUT.reliability, SENSOR_OUT.durability, 2)
    assert qos_of(qos, "depth", SENSOR_OUT) == SENSOR_OUT


def test_topic_resolution_follows_ros_rules():
    assert resolve_topic("front/image_raw", "", "sim") == "/front/image_raw"
    assert resolve_topic("front/image_raw", "/car1", "sim") == "/car1/front/image_raw"
    assert resolve_topic("~/pause", "car1", "sim") == "/car1/sim/pause"
    assert resolve_topic("/tf", "car1", "sim") == "/tf"
    with pytest.raises(InputError, match="not a valid ROS 2 name"):
        resolve_topic("front/1image", "", "sim")


def test_gravity_alignment_turns_recorded_up_into_z():
    z_up = np.tile(np.eye(4), (3, 1, 1))
    z_up[:, :3, :3] = rotation_from_rpy(0, 0, 0.3) @ np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0]])
    assert np.allclose(gravity_alignment(z_up), np.eye(4))
    cv_world = np.tile(np.eye(4), (3, 1, 1))            # cameras in the first camera's frame: y down
    m = gravity_alignment(cv_world)
    assert np.allclose(m[:3, :3] @ np.array([0.0, -1.0, 0.0]), [0, 0, 1], atol=1e-9)
    assert np.allclose(m[:3, :3] @ m[:3, :3].T, np.eye(3), atol=1e-12)


def reference_points(depth: np.ndarray, rgb: np.ndarray, intr: Intrinsics) -> np.ndarray:
    """The organised cloud computed independently on the host with numpy (the reference)."""
    h, w = depth.shape
    u = (np.arange(w, dtype=np.float32) - np.float32(intr.cx)) / np.float32(intr.fx)
    v = (np.arange(h, dtype=np.float32) - np.float32(intr.cy)) / np.float32(intr.fy)
    out = np.empty((h, w, 4), np.float32)
    out[..., 2] = depth
    np.multiply(depth, u[None, :], out=out[..., 0])
    np.multiply(depth, v[:, None], out=out[..., 1])
    packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    out[..., 3] = packed.view(np.float32)
    return out


def test_cloud_payload_is_depth_back_projected():
    intr = Intrinsics(fx=50.0, fy=52.0, cx=20.5, cy=11.0, width=40, height=24)
    rng = np.random.default_rng(0)
    depth = rng.uniform(1, 30, (24, 40)).astype(np.float32)
    depth[3, 4] = np.nan
    rgb = rng.integers(0, 256, (24, 40, 3), dtype=np.uint8)
    host = reference_points(depth, rgb, intr)
    dev = organised_points(torch.from_numpy(depth)[None], torch.from_numpy(rgb)[None],
                           torch.as_tensor(intr.K, dtype=torch.float32)[None])[0].numpy()
    np.testing.assert_allclose(dev[..., :3], host[..., :3], rtol=1e-6, equal_nan=True)
    assert np.array_equal(dev[..., 3].view(np.uint32), host[..., 3].view(np.uint32))
    assert np.isnan(host[3, 4, :3]).all()
    assert np.isclose(host[0, 0, 0], (0 - 20.5) / 50.0 * depth[0, 0])


def test_message_builder_with_dds_types():
    from inspatio_ros.ros.dds import DdsTransport

    t = DdsTransport("builder_test", announce_node=False)
    try:
        m = MessageBuilder(t)
        header = m.header(12.25, "front_optical_frame")
        assert (header.stamp.sec, header.stamp.nanosec) == (12, 250_000_000)
        depth = np.full((4, 6), 2.5, np.float32)
        img = m.image(header, depth, "32FC1")
        assert (img.width, img.height, img.step, img.is_bigendian) == (6, 4, 24, 0)
        assert np.array_equal(np.frombuffer(img.data, "<f4").reshape(4, 6), depth)
        info = m.camera_info(header, Intrinsics(100.0, 100.0, 3.0, 2.0, 6, 4))
        assert list(info.k) == [100.0, 0.0, 3.0, 0.0, 100.0, 2.0, 0.0, 0.0, 1.0] and info.p[3] == 0.0
        pose = np.eye(4)
        pose[:3, :3] = rotation_from_rpy(0, 0, math.pi / 2)
        pose[:3, 3] = (1, 2, 3)
        tf = m.transform_stamped(1.0, "odom", "base_link", pose)
        q = tf.transform.rotation
        assert np.allclose([q.x, q.y, q.z, q.w], [0, 0, math.sin(math.pi / 4), math.cos(math.pi / 4)])
        assert split_stamp(-0.5) == (-1, 500_000_000)
    finally:
        t.shutdown()


def test_rig_presets_and_launch_files_agree():
    from inspatio_ros.config import read_parameters

    driving = load_rig(read_parameters(ROOT / "config" / "driving_rig.yaml"))
    assert [c.name for c in driving] == ["front", "left", "right"]
    assert len(load_rig(read_parameters(ROOT / "config" / "robot_rgbd.yaml"))) == 1
    for launch, rig in (("driving.launch.py", "driving_rig.yaml"), ("robot.launch.py", "robot_rgbd.yaml")):
        source = (ROOT / "launch" / launch).read_text()
        tree = ast.parse(source)
        assert any(isinstance(n, ast.FunctionDef) and n.name == "generate_launch_description" for n in tree.body)
        assert f'"{rig}"' in source and (ROOT / "config" / rig).is_file()


def test_interface_package_message_parses_with_rosidl():
    parser = pytest.importorskip("rosidl_adapter.parser")
    spec = parser.parse_message_file("inspatio_ros_interfaces", str(ROOT / "inspatio_ros_interfaces" / "msg" / "SimStatus.msg"))
    assert [f.name for f in spec.fields] == ["header", "world", "sim_time", "rate", "paused", "mode", "achieved_hz"]
    cmake = (ROOT / "inspatio_ros_interfaces" / "CMakeLists.txt").read_text()
    assert '"msg/SimStatus.msg"' in cmake and "rosidl_generate_interfaces" in cmake


def test_render_config_accepts_a_whole_node_file(tmp_path):
    """render/eval --config take a node parameter file (rig + node + render.*), typos still fail."""
    from argparse import Namespace

    from inspatio_ros.cli.common import render_settings_from_args

    def load_render_settings(path):
        return render_settings_from_args(Namespace(config=str(path)))

    path = tmp_path / "node.yaml"
    path.write_text("inspatio_ros:\n  ros__parameters:\n    mode: pose\n    cameras.names: [front]\n"
                    "    render.near: 0.2\n")
    assert load_render_settings(path).near == 0.2
    assert load_render_settings(ROOT / "config" / "driving_rig.yaml").near > 0
    path.write_text("inspatio_ros:\n  ros__parameters:\n    render.nearr: 0.2\n")
    with pytest.raises(InputError, match="render.near"):
        load_render_settings(path)


def test_simulator_renders_into_given_arrays(street_world):
    """render(into=...) (the node's path with writer processes: straight into their shared memory)
    gives the same images as the simulator's own buffers, in the very arrays it was given."""
    from inspatio_ros.render import RenderSettings
    from inspatio_ros.ros.writer_process import CameraLayout
    from inspatio_ros.sim.simulator import Simulator
    from inspatio_ros.world import World

    rig = load_rig({"cameras.names": ["left", "front", "right"],
                    "cameras.front.width": 96, "cameras.front.height": 64, "cameras.front.hfov_deg": 80.0,
                    "cameras.front.outputs": ["image", "depth", "points", "coverage"],
                    "cameras.left.width": 64, "cameras.left.height": 48, "cameras.left.rpy": [0.0, 0.0, 0.6],
                    "cameras.left.outputs": ["image", "depth"],
                    "cameras.right.width": 64, "cameras.right.height": 48, "cameras.right.rpy": [0.0, 0.0, -0.6],
                    "cameras.right.outputs": ["image", "depth", "coverage"]})
    sim = Simulator(World.load(street_world), rig, device="cpu", settings=RenderSettings())
    pose = sim.recorded_base_pose(sim.path.start + 0.3)
    expected = {cf.spec.name: cf for cf in sim.render(0.0, sim.path.start + 0.3, pose).cameras}
    into = {}
    for cam in rig:
        layout = CameraLayout(cam.name, cam.optical_frame, cam.intrinsics, tuple(cam.outputs), {}, {})
        into[cam.name] = {k: np.full(shape, 7, dtype) for k, (shape, dtype) in layout.arrays().items()}
    frame = sim.render(0.0, sim.path.start + 0.3, pose, into=into)
    assert [cf.spec.name for cf in frame.cameras] == ["left", "front", "right"]
    for cf in frame.cameras:
        want, dest = expected[cf.spec.name], into[cf.spec.name]
        assert cf.rgb is dest["rgb"] and cf.depth is dest["depth"]
        np.testing.assert_array_equal(cf.rgb, want.rgb)
        np.testing.assert_array_equal(cf.depth, want.depth)      # NaN where unknown, in both
        assert (cf.points is None) == ("points" not in cf.spec.outputs)
        assert (cf.coverage is None) == ("coverage" not in cf.spec.outputs)
        if cf.points is not None:
            assert cf.points is dest["points"]
            np.testing.assert_array_equal(cf.points.view(np.uint32), want.points.view(np.uint32))
        if cf.coverage is not None:
            assert cf.coverage is dest["coverage"]
            np.testing.assert_array_equal(cf.coverage, want.coverage)
        assert cf.coverage_fraction == pytest.approx(want.coverage_fraction)
        assert cf.rgb.any() and np.isfinite(cf.depth).mean() > 0.5
    with pytest.raises(ValueError, match="front"):
        sim.render(0.0, sim.path.start, pose, into={"left": into["left"], "right": into["right"]})


def test_return_free_memory_gives_a_kept_peak_back_to_the_os():
    """The test process keeps freed blocks (conftest: keep_freed_memory), as the node does; after
    a 400 MB peak is freed, return_free_memory must give it back (the node calls it after warm-up).
    Run in a child: the test runner's own heap would blur the numbers."""
    import subprocess
    import sys

    code = r"""
import numpy as np
from inspatio_ros.runtime import keep_freed_memory, return_free_memory
def rss_mb():
    return int([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1]) / 1024
assert keep_freed_memory()
before = rss_mb()
peak = [np.ones(1 << 17) for _ in range(400)]       # 400 x 1 MB: heap blocks below the thresholds
del peak
kept = rss_mb()
assert return_free_memory()
print(before, kept, rss_mb())
"""
    if not sys.platform.startswith("linux"):
        pytest.skip("glibc only")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    before, kept, after = (float(v) for v in out.stdout.split())
    assert kept - before > 300, "the freed peak should have stayed resident under keep_freed_memory"
    assert after - before < 50, f"return_free_memory left {after - before:.0f} MB of the peak resident"


def test_session_settings_come_from_the_node_parameters():
    """The node's settings hold the SessionSettings its parameters give, and values flow."""
    from inspatio_ros.sim.settings import SessionSettings

    assert split_parameters({})[0].session == SessionSettings()
    s = split_parameters({"vehicle.max_speed": 12, "use_sim_time": True, "mode": "control",
                          "input.max_jump": 0.0, "clock.end_mode": "hold"})[0].session
    assert (s.vehicle.max_speed, s.external_clock, s.mode, s.input.max_jump, s.clock.end_mode) == \
        (12.0, True, "control", 0.0, "hold")