"""The simulator node across real processes: the node runs as `inspatio-ros run` in a subprocess,
a real rclpy node (ROS 2 Jazzy wheels) and the built-in DDS transport talk to it. No mocked ROS."""
from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from inspatio_ros.cli import main
from inspatio_ros.synth.generate import generate

from ros_helpers import NodeProcess, Probe, image_array, stamp_ns, write_params

rclpy = pytest.importorskip("rclpy")
from geometry_msgs.msg import PoseStamped  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rosgraph_msgs.msg import Clock  # noqa: E402
from sensor_msgs.msg import CameraInfo, CompressedImage, Image, PointCloud2  # noqa: E402

SIZE = (96, 64)
CAMERA = {"cameras.names": ["front"], "cameras.front.width": SIZE[0], "cameras.front.height": SIZE[1],
          "cameras.front.hfov_deg": 80.0, "cameras.front.xyz": [0.0, 0.0, 1.5],
          "cameras.front.rpy": [0.0, 0.0, 0.0], "cameras.front.rate_hz": 10.0,
          "cameras.front.outputs": ["image", "depth", "points", "coverage", "compressed"]}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A small street with one moving car, 3 s long."""
    scene = tmp_path_factory.mktemp("node_scene")
    generate("street", scene, size=(128, 80), frames=16, moving_cars=1, seed=5, fps=5.0)
    path = tmp_path_factory.mktemp("node_world") / "street.safetensors"
    assert main(["build", str(scene), "-o", str(path)]) == 0
    return path


@pytest.fixture
def probe():
    p = Probe()
    yield p
    p.close()


def config(tmp_path, **extra):
    return write_params(tmp_path / "node.yaml", {**CAMERA, "device": "cpu", **extra})


def first_complete_stamp(probe, topics):
    """A stamp for which every topic in ``topics`` has a message."""
    stamps = [{stamp_ns(m.header.stamp) for m in probe.received[t]} for t in topics]
    common = set.intersection(*stamps)
    return min(common) if common else None


def by_stamp(msgs, stamp):
    return next(m for m in msgs if stamp_ns(m.header.stamp) == stamp)


def test_each_camera_has_its_own_writer_process(world, tmp_path, probe):
    """publish.writer_process on with two cameras: one writer process each, and every camera's
    image of a render carries that render's stamp."""
    cams = {"cameras.names": ["front", "left"]}
    for name, yaw in (("front", 0.0), ("left", 1.2)):
        cams.update({f"cameras.{name}.width": SIZE[0], f"cameras.{name}.height": SIZE[1],
                     f"cameras.{name}.hfov_deg": 80.0, f"cameras.{name}.xyz": [0.0, 0.0, 1.5],
                     f"cameras.{name}.rpy": [0.0, 0.0, yaw], f"cameras.{name}.rate_hz": 10.0,
                     f"cameras.{name}.outputs": ["image", "depth"]})
    topics = ["/front/image_raw", "/left/image_raw", "/front/depth/image", "/left/depth/image"]
    for topic in topics:
        probe.subscribe(Image, topic)
    cfg = write_params(tmp_path / "node.yaml", {**cams, "device": "cpu", "publish.writer_process": "on"})
    with NodeProcess(world, cfg, "dds", tmp_path / "node.log") as node:
        got = probe.spin_until(lambda: first_complete_stamp(probe, topics) is not None, 60, node)
        assert got, node.log()
        log_text = node.log()
    assert "written by 2 writer processes" in log_text
    stamp = first_complete_stamp(probe, topics)
    front, left = (by_stamp(probe.received[t], stamp) for t in topics[:2])
    assert front.header.frame_id == "front_optical_frame" and left.header.frame_id == "left_optical_frame"
    assert not np.array_equal(image_array(front), image_array(left)), "the two cameras look different ways"


@pytest.mark.parametrize("transport,writer", [("dds", "off"), ("rclpy", "off"), ("dds", "on")])
def test_rclpy_receives_every_output_with_one_stamp(world, tmp_path, probe, transport, writer):
    """Also with the camera messages written by the separate writer process (shared memory)."""
    topics = {"/front/image_raw": Image, "/front/camera_info": CameraInfo, "/front/depth/image": Image,
              "/front/points": PointCloud2, "/front/coverage": Image, "/front/image_raw/compressed": CompressedImage,
              "/odom": Odometry}
    for topic, cls in topics.items():
        probe.subscribe(cls, topic)
    probe.subscribe(Clock, "/clock", reliable=False)
    cfg = config(tmp_path, **{"publish.writer_process": writer})
    with NodeProcess(world, cfg, transport, tmp_path / "node.log") as node:
        got = probe.spin_until(lambda: first_complete_stamp(probe, list(topics)[:6]) is not None
                               and len(probe.received["/clock"]) > 3 and probe.received["/odom"]
                               and len(probe.received["/front/points"]) >= 3, 60, node)
        assert got, node.log()
    stamp = first_complete_stamp(probe, list(topics)[:6])
    image = by_stamp(probe.received["/front/image_raw"], stamp)
    info = by_stamp(probe.received["/front/camera_info"], stamp)
    depth_msg = by_stamp(probe.received["/front/depth/image"], stamp)
    cloud = by_stamp(probe.received["/front/points"], stamp)
    assert (image.encoding, image.width, image.height) == ("rgb8", *SIZE)
    assert depth_msg.encoding == "32FC1" and info.header.frame_id == "front_optical_frame"
    assert image.header.frame_id == depth_msg.header.frame_id == cloud.header.frame_id == "front_optical_frame"
    fx, cx, fy, cy = info.k[0], info.k[2], info.k[4], info.k[5]
    assert math.isclose(fx, SIZE[0] / 2 / math.tan(math.radians(40)), rel_tol=1e-6)

    # The published cloud is the depth back-projected with camera_info, coloured by the image.
    depth = image_array(depth_msg)
    rgb = image_array(image)
    assert np.isfinite(depth).mean() > 0.5
    assert cloud.height == SIZE[1] and cloud.width == SIZE[0] and cloud.point_step == 16
    assert [f.name for f in cloud.fields] == ["x", "y", "z", "rgb"]
    pts = np.frombuffer(bytes(cloud.data), "<f4").reshape(SIZE[1], SIZE[0], 4)
    v, u = np.mgrid[0:SIZE[1], 0:SIZE[0]].astype(np.float64)
    expect = np.stack([(u - cx) / fx * depth, (v - cy) / fy * depth, depth], -1)
    finite = np.isfinite(depth)
    assert np.array_equal(np.isfinite(pts[..., 2]), finite)
    np.testing.assert_allclose(pts[..., :3][finite], expect[finite], rtol=1e-5, atol=1e-5)
    packed = pts[..., 3].copy().view("<u4")
    assert np.array_equal((packed >> 16) & 255, rgb[..., 0]) and np.array_equal(packed & 255, rgb[..., 2])
    # Every cloud is its own render's (not one of another frame in the same writer slot): z equals
    # that stamp's depth map.
    depth_by_stamp = {stamp_ns(m.header.stamp): m for m in probe.received["/front/depth/image"]}
    pairs = [(c, depth_by_stamp[stamp_ns(c.header.stamp)]) for c in probe.received["/front/points"]
             if stamp_ns(c.header.stamp) in depth_by_stamp]
    assert len(pairs) >= 2
    for c, d in pairs:
        z = np.frombuffer(bytes(c.data), "<f4").reshape(SIZE[1], SIZE[0], 4)[..., 2]
        assert np.array_equal(z, image_array(d), equal_nan=True), stamp_ns(c.header.stamp)

    # The jpeg decodes to the same picture (up to compression), coverage is a 0/255 mask.
    import io

    from PIL import Image as PILImage

    jpeg = by_stamp(probe.received["/front/image_raw/compressed"], stamp)
    assert jpeg.format == "jpeg"
    decoded = np.asarray(PILImage.open(io.BytesIO(bytes(jpeg.data))).convert("RGB")).astype(float)
    assert np.abs(decoded - rgb).mean() < 8.0
    coverage = image_array(by_stamp(probe.received["/front/coverage"], stamp))
    assert set(np.unique(coverage)) <= {0, 255} and (coverage == 255).mean() > 0.5

    # /clock runs, odometry is stamped on the same clock.
    clocks = [stamp_ns(m.clock) for m in probe.received["/clock"]]
    assert clocks == sorted(clocks) and clocks[-1] > clocks[0]
    odom = probe.received["/odom"][-1]
    assert (odom.header.frame_id, odom.child_frame_id) == ("odom", "base_link")


def _offline_render(world_path, pose_matrix):
    from inspatio_ros.render import RenderSettings
    from inspatio_ros.sim.rig import load_rig
    from inspatio_ros.sim.simulator import Simulator
    from inspatio_ros.world import World

    sim = Simulator(World.load(world_path), load_rig(CAMERA), device="cpu", settings=RenderSettings())
    return sim, sim.render(0.0, sim.path.start, pose_matrix).cameras[0]


def _pose_msg(stamp_s, frame, matrix):
    from inspatio_ros.camera import matrix_to_quaternion

    msg = PoseStamped()
    msg.header.frame_id = frame
    msg.header.stamp.sec, msg.header.stamp.nanosec = int(stamp_s), int(round((stamp_s % 1) * 1e9))
    msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in matrix[:3, 3])
    q = matrix_to_quaternion(matrix[:3, :3])
    msg.pose.orientation.x, msg.pose.orientation.y, msg.pose.orientation.z, msg.pose.orientation.w = (float(v) for v in q)
    return msg


def test_pose_from_rclpy_moves_the_view_and_bad_poses_are_dropped(world, tmp_path, probe):
    sim, _ = _offline_render(world, np.eye(4))
    start = sim.recorded_base_pose(sim.path.start)
    target = start.copy()
    target[:3, 3] += 4.0 * start[:3, 0] + 1.0 * start[:3, 1]      # 4 m ahead, 1 m left
    # The node renders the pose stamped 0.5 s at recording time start + 0.5 s (the world's moving
    # car is in its dynamic layer, so the moment matters).
    expected = sim.render(0.5, sim.path.start + 0.5, target).cameras[0]

    probe.subscribe(Image, "/front/image_raw")
    probe.subscribe(Image, "/front/depth/image")
    pose_pub = probe.publisher(PoseStamped, "/pose", reliable=True)
    cfg = config(tmp_path, mode="pose", lockstep=True)
    images = probe.received["/front/image_raw"]
    with NodeProcess(world, cfg, "dds", tmp_path / "node.log") as node:
        assert probe.spin_until(lambda: pose_pub.get_subscription_count() > 0, 60, node), node.log()
        # A first good pose (repeated until its image arrives: the node's reader may match later).
        for _ in range(50):
            pose_pub.publish(_pose_msg(0.2, "map", start))
            if probe.spin_until(lambda: len(images) > 0, 0.5, node):
                break
        assert images, node.log()
        bad_nan = _pose_msg(0.3, "map", target)
        bad_nan.pose.position.x = float("nan")
        bad_jump = _pose_msg(0.3, "map", target)
        bad_jump.pose.position.x += 500.0
        for bad in (bad_nan, _pose_msg(0.3, "camera_odom", target), bad_jump):
            pose_pub.publish(bad)
        probe.spin_for(1.0)
        assert node.alive()
        pose_pub.publish(_pose_msg(0.5, "map", target))
        assert probe.spin_until(lambda: any(stamp_ns(m.header.stamp) == 500_000_000 for m in images)
                                and len(probe.received["/front/depth/image"]) == len(images), 30, node), node.log()
        probe.spin_for(0.5)
        log = node.log()
    stamps = [stamp_ns(m.header.stamp) for m in images]
    assert 300_000_000 not in stamps, "a bad pose must not render"
    image = images[-1]
    assert stamp_ns(image.header.stamp) == 500_000_000            # lockstep: stamped with the pose's time
    assert np.array_equal(image_array(image), expected.rgb)
    np.testing.assert_array_equal(image_array(probe.received["/front/depth/image"][-1]), expected.depth)
    for text in ("NaN", "frame 'camera_odom' is unknown", "jump"):
        assert text in log, log


def _lockstep_run(world, tmp_path, probe, name):
    from std_msgs.msg import Empty

    probe.subscribe(Image, "/front/image_raw")
    probe.subscribe(Image, "/front/depth/image")
    step = probe.publisher(Empty, "/inspatio_ros/step")
    cfg = write_params(tmp_path / f"{name}.yaml", {**CAMERA, "device": "cpu", "lockstep": True})
    digests = []
    with NodeProcess(world, cfg, "dds", tmp_path / f"{name}.log") as node:
        assert probe.spin_until(lambda: step.get_subscription_count() > 0, 60, node), node.log()
        # Our writer sees the node's reader; give the node's side of discovery a moment too, since a
        # volatile reader drops samples of writers it has not matched yet (each step counts).
        probe.spin_for(1.0)
        for i in range(6):
            step.publish(Empty())
            assert probe.spin_until(lambda: len(probe.received["/front/depth/image"]) > i
                                    and len(probe.received["/front/image_raw"]) > i, 30, node), node.log()
    for img, dep in zip(probe.received["/front/image_raw"], probe.received["/front/depth/image"]):
        assert stamp_ns(img.header.stamp) == stamp_ns(dep.header.stamp)
        digests.append((stamp_ns(img.header.stamp), hashlib.sha256(bytes(img.data) + bytes(dep.data)).hexdigest()))
    return digests


def test_lockstep_is_bit_identical_across_runs(world, tmp_path):
    runs = []
    for name in ("first", "second"):
        p = Probe(f"probe_{name}")
        try:
            runs.append(_lockstep_run(world, tmp_path, p, name))
        finally:
            p.close()
    assert len(runs[0]) == 6 and runs[0] == runs[1]
    assert [s for s, _ in runs[0]] == [int(round(0.1 * (i + 1) * 1e9)) for i in range(6)]   # 10 Hz steps
    assert len({d for _, d in runs[0]}) > 1          # the view moves along the recording


def test_pause_seek_rate_through_control_topics(world, tmp_path):
    """Status (our own msg type) is read through the built-in DDS transport from the test process."""
    from inspatio_ros.ros.dds import DdsTransport
    from inspatio_ros.ros.transport import Qos

    dds = DdsTransport("status_reader")
    statuses, clocks = [], []
    dds.create_subscription("inspatio_ros_interfaces/msg/SimStatus", "/status", statuses.append, Qos())
    dds.create_subscription("rosgraph_msgs/msg/Clock", "/clock", clocks.append, Qos("best_effort"))
    pause = dds.create_publisher("std_msgs/msg/Bool", "/inspatio_ros/pause", Qos())
    seek = dds.create_publisher("std_msgs/msg/Float64", "/inspatio_ros/seek", Qos())
    rate = dds.create_publisher("std_msgs/msg/Float64", "/inspatio_ros/rate", Qos())
    Bool, Float64 = dds.message_class("std_msgs/msg/Bool"), dds.message_class("std_msgs/msg/Float64")

    def spin_until(cond, timeout, node):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not cond():
            assert node.alive(), node.log()
            dds.spin_once(0.02)
        return cond()

    cfg = config(tmp_path, **{"publish.status_hz": 20.0, "clock.end_mode": "hold"})
    try:
        with NodeProcess(world, cfg, "dds", tmp_path / "node.log") as node:
            assert spin_until(lambda: len(statuses) > 2 and pause.subscription_count() > 0
                              and seek.subscription_count() > 0 and rate.subscription_count() > 0, 60, node)
            spin_until(lambda: False, 1.0, node)     # the node's side of discovery, as in lockstep
            pause.publish(Bool(data=True))
            assert spin_until(lambda: statuses[-1].paused, 10, node), node.log()
            dds.spin_once(0.3)
            n, held = len(clocks), statuses[-1].sim_time
            spin_until(lambda: False, 1.0, node)
            assert statuses[-1].paused and statuses[-1].sim_time == held
            assert len(clocks) <= n + 1                          # /clock stands still while paused
            seek.publish(Float64(data=1.25))
            assert spin_until(lambda: abs(statuses[-1].sim_time - 1.25) < 1e-9, 10, node), node.log()
            rate.publish(Float64(data=2.0))
            pause.publish(Bool(data=False))
            assert spin_until(lambda: statuses[-1].rate == 2.0 and not statuses[-1].paused, 10, node)
            t0, w0 = statuses[-1].sim_time, time.monotonic()
            spin_until(lambda: statuses[-1].sim_time > t0 + 0.6, 10, node)
            took = time.monotonic() - w0
            assert statuses[-1].sim_time > t0 + 0.6 and took < 0.6, "rate 2 should advance faster than real time"
            rate.publish(Float64(data=50.0))                     # absurd: dropped, node lives on
            spin_until(lambda: False, 0.5, node)
            assert node.alive() and statuses[-1].rate == 2.0
            assert "rate" in node.log()
    finally:
        dds.shutdown()


def test_closed_loop_pure_pursuit_with_ackermann(tmp_path_factory, tmp_path):
    """A separate controller process drives the ego along the recorded path from /odom."""
    scene = tmp_path_factory.mktemp("loop_scene")
    generate("street", scene, size=(64, 40), frames=34, moving_cars=0, seed=2, fps=1.0)
    world_path = tmp_path / "loop.safetensors"
    assert main(["build", str(scene), "-o", str(world_path)]) == 0
    cam = {**CAMERA, "cameras.front.width": 64, "cameras.front.height": 40, "cameras.front.rate_hz": 10.0,
           "cameras.front.outputs": ["image", "depth"]}
    # Sim time at real time: at rate 2 a controller process starved by a loaded machine (CI's 2
    # cores shared with other tests) reacted too late and the ego left the road.
    cfg = write_params(tmp_path / "loop.yaml", {**cam, "device": "cpu", "mode": "control", "clock.rate": 1.0,
                                                 "vehicle.command_timeout": 1.0,
                                                 "clock.end_mode": "hold"})
    report = tmp_path / "controller.json"
    controller = [sys.executable, str(Path(__file__).with_name("pure_pursuit_controller.py")), str(world_path),
                  str(cfg), str(report), "--sim-seconds", "30"]
    with NodeProcess(world_path, cfg, "dds", tmp_path / "node.log") as node:
        done = subprocess.run(controller, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stdout + done.stderr + node.log()
        assert node.alive()
    result = json.loads(report.read_text())
    assert result["sim_seconds"] >= 30.0
    assert result["distance_m"] > 100.0, result                 # it really drove
    assert result["max_cross_track_m"] <= 0.5, result
    assert result["image_hz"] >= 0.9 * 10.0 * 0.9, result       # images kept flowing at rate (10 Hz sim)


def test_follows_an_external_clock_with_use_sim_time(world, tmp_path, probe):
    probe.subscribe(Image, "/front/image_raw")
    probe.subscribe(Clock, "/clock", reliable=False)
    clock_pub = probe.publisher(Clock, "/clock", reliable=False)
    cfg = config(tmp_path, use_sim_time=True)
    sent = []
    with NodeProcess(world, cfg, "dds", tmp_path / "node.log") as node:
        assert probe.spin_until(lambda: clock_pub.get_subscription_count() > 0, 60, node), node.log()
        t = 100.0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len(probe.received["/front/image_raw"]) < 8:
            msg = Clock()
            msg.clock.sec, msg.clock.nanosec = int(t), int(round((t % 1) * 1e9))
            clock_pub.publish(msg)
            sent.append(stamp_ns(msg.clock))
            probe.spin_for(0.05)
            t += 0.05
        assert len(probe.received["/front/image_raw"]) >= 8, node.log()
    stamps = [stamp_ns(m.header.stamp) for m in probe.received["/front/image_raw"]]
    assert all(min(sent) <= s <= max(sent) for s in stamps), (stamps[:3], sent[:3])
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    # The node does not publish a /clock of its own: every /clock seen is one this test sent.
    assert {stamp_ns(m.clock) for m in probe.received["/clock"]} <= set(sent)


def test_ego_follows_a_tf_lookup(world, tmp_path):
    """mode pose with input.tf_child: the ego is map -> odom -> base_link from /tf (tf2_msgs through DDS)."""
    from inspatio_ros.camera import matrix_to_quaternion
    from inspatio_ros.ros.dds import DdsTransport
    from inspatio_ros.ros.transport import SENSOR_OUT, Qos

    sim, _ = _offline_render(world, np.eye(4))
    start = sim.recorded_base_pose(sim.path.start)
    target = start.copy()
    target[:3, 3] += 3.0 * start[:3, 0] - 0.5 * start[:3, 1]
    odom = np.eye(4)
    odom[:3, 3] = (0.5, -0.25, 0.0)                       # a non-identity map -> odom
    # Rendered at 0.4 s of the recording, as the node does (the moving car is dynamic).
    expected = sim.render(0.4, sim.path.start + 0.4, target).cameras[0]

    dds = DdsTransport("tf_source")
    images = []
    dds.create_subscription("sensor_msgs/msg/Image", "/front/image_raw", images.append, SENSOR_OUT)
    tf_pub = dds.create_publisher("tf2_msgs/msg/TFMessage", "/tf", Qos("reliable", "volatile", 100))
    TF, TS = dds.message_class("tf2_msgs/msg/TFMessage"), dds.message_class("geometry_msgs/msg/TransformStamped")

    def stamped(parent, child, m, t):
        ts = TS()
        ts.header.frame_id, ts.child_frame_id = parent, child
        ts.header.stamp.sec, ts.header.stamp.nanosec = int(t), int(round((t % 1) * 1e9))
        ts.transform.translation.x, ts.transform.translation.y, ts.transform.translation.z = (float(v) for v in m[:3, 3])
        q = matrix_to_quaternion(m[:3, :3])
        r = ts.transform.rotation
        r.x, r.y, r.z, r.w = (float(v) for v in q)
        return ts

    cfg = config(tmp_path, mode="pose", lockstep=True, **{"input.tf_child": "base_link"})
    try:
        with NodeProcess(world, cfg, "dds", tmp_path / "node.log") as node:
            deadline = time.monotonic() + 60
            while tf_pub.subscription_count() == 0 and time.monotonic() < deadline:
                assert node.alive(), node.log()
                dds.spin_once(0.05)
            dds.spin_once(1.0)
            for _ in range(40):                               # until the node has matched us
                tf_pub.publish(TF(transforms=[stamped("map", "odom", odom, 0.4),
                                              stamped("odom", "base_link", np.linalg.inv(odom) @ target, 0.4)]))
                end = time.monotonic() + 0.5
                while time.monotonic() < end and not images:
                    dds.spin_once(0.02)
                if images:
                    break
            assert images, node.log()
    finally:
        dds.shutdown()
    got = images[0]
    assert (got.header.stamp.sec, got.header.stamp.nanosec) == (0, 400_000_000)
    assert np.array_equal(np.frombuffer(bytes(got.data), np.uint8).reshape(expected.rgb.shape), expected.rgb)


def test_trajectory_mode_follows_a_pose_file(world, tmp_path, probe):
    """mode trajectory with a TUM file of the reference camera's poses: odometry follows it."""
    from inspatio_ros.camera import matrix_to_quaternion
    from std_msgs.msg import Empty

    sim, _ = _offline_render(world, np.eye(4))
    cam_start = sim.camera_pose(sim.recorded_base_pose(sim.path.start), sim.reference)
    cam_end = cam_start.copy()
    cam_end[:3, 3] += 2.0 * cam_start[:3, 2]                       # 2 m along the optical axis
    lines = []
    for t, pose in ((0.0, cam_start), (1.0, cam_end)):
        q = matrix_to_quaternion(pose[:3, :3])
        lines.append(" ".join(f"{v:.9f}" for v in (t, *pose[:3, 3], *q)))
    traj = tmp_path / "path_tum.txt"
    traj.write_text("\n".join(lines) + "\n")

    probe.subscribe(Odometry, "/odom")
    step = probe.publisher(Empty, "/inspatio_ros/step")
    cfg = config(tmp_path, mode="trajectory", lockstep=True, **{"trajectory.file": str(traj)})
    with NodeProcess(world, cfg, "dds", tmp_path / "node.log") as node:
        assert probe.spin_until(lambda: step.get_subscription_count() > 0, 60, node), node.log()
        probe.spin_for(1.0)
        for i in range(5):
            step.publish(Empty())
            assert probe.spin_until(lambda: len(probe.received["/odom"]) > i, 30, node), node.log()
    odom = probe.received["/odom"][4]                               # after 5 steps of 0.1 s
    assert stamp_ns(odom.header.stamp) == 500_000_000
    base_from_optical = sim.reference.base_from_optical()
    expected = (0.5 * (cam_start + cam_end) @ np.linalg.inv(base_from_optical))[:3, 3]
    p = odom.pose.pose.position
    np.testing.assert_allclose([p.x, p.y, p.z], expected, atol=1e-4)


def test_std_srvs_services_on_the_rclpy_transport(world, tmp_path, probe):
    """pause (SetBool), step and reset (Trigger) as services: /clock stops while paused."""
    from std_srvs.srv import SetBool, Trigger

    probe.subscribe(Clock, "/clock", reliable=False)
    pause = probe.node.create_client(SetBool, "/inspatio_ros/pause")
    reset = probe.node.create_client(Trigger, "/inspatio_ros/reset")

    def call(client, request):
        future = client.call_async(request)
        assert probe.spin_until(future.done, 20, node), node.log()
        return future.result()

    with NodeProcess(world, config(tmp_path), "rclpy", tmp_path / "node.log") as node:
        assert probe.spin_until(lambda: pause.service_is_ready() and reset.service_is_ready()
                                and len(probe.received["/clock"]) > 3, 60, node), node.log()
        answer = call(pause, SetBool.Request(data=True))
        assert answer.success and answer.message == "paused"
        probe.spin_for(0.5)
        held = stamp_ns(probe.received["/clock"][-1].clock)
        probe.spin_for(1.0)
        assert stamp_ns(probe.received["/clock"][-1].clock) == held
        answer = call(pause, SetBool.Request(data=False))
        assert answer.success and answer.message == "resumed"
        assert probe.spin_until(lambda: stamp_ns(probe.received["/clock"][-1].clock) > held, 10, node)
        assert call(reset, Trigger.Request()).success


# Minutes of node processes, builds or training on 2 cores: left out of the quick loop
# (`pytest -m "not slow"`); CI runs everything.
pytestmark = pytest.mark.slow
