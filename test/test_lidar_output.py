"""LiDAR sweeps as ROS messages: the node's PointCloud2 (both layouts), the recorder's bytes, a
session recording, and -- across processes -- a real rclpy subscriber receiving them from the
node on both transports; the six-camera rig publishing every camera with one stamp per tick."""
from __future__ import annotations

import numpy as np
import pytest

from inspatio_ros.sim.lidar import AUTOWARE_DTYPE, VELODYNE_DTYPE, load_lidars
from inspatio_ros.sim.rig import load_rig
from ros_helpers import DdsMessageClasses

CAMERA = {"cameras.names": ["front"], "cameras.front.width": 64, "cameras.front.height": 40,
          "cameras.front.hfov_deg": 80.0, "cameras.front.rate_hz": 10.0, "cameras.front.outputs": ["image"]}
LIDARS = {"lidars.names": ["top", "roof"], "lidars.top.model": "VLP-16", "lidars.top.columns": 360,
          "lidars.roof.model": "OS1-64", "lidars.roof.columns": 256, "lidars.roof.layout": "autoware",
          "lidars.roof.rate_hz": 5.0, "lidars.roof.xyz": [0.5, 0.0, 2.0]}




@pytest.fixture(scope="module")
def session(street_world):
    from inspatio_ros.sim.session import SimSession
    from inspatio_ros.sim.settings import SessionSettings
    from inspatio_ros.world import World

    return SimSession(World.load(street_world), load_rig(CAMERA), SessionSettings(lockstep=True, device="cpu"),
                      lidars=load_lidars(LIDARS))


def cloud_points(msg) -> np.ndarray:
    """A PointCloud2's points as a structured array read through its own fields."""
    kinds = {2: "u1", 4: "<u2", 6: "<u4", 7: "<f4"}
    dtype = np.dtype({"names": [f.name for f in msg.fields], "formats": [kinds[f.datatype] for f in msg.fields],
                      "offsets": [f.offset for f in msg.fields], "itemsize": msg.point_step})
    return np.frombuffer(bytes(msg.data), dtype, count=msg.width * msg.height)


def test_lidars_tick_with_the_cameras_at_their_own_rates(session):
    """10 Hz camera, 10 Hz and 5 Hz LiDARs: the 5 Hz one on every other tick, all of one frame
    with the frame's stamp."""
    frames = [session.step() for _ in range(4)]
    assert [[lf.spec.name for lf in f.lidars] for f in frames] in (
        [["top", "roof"], ["top"], ["top", "roof"], ["top"]], [["top"], ["top", "roof"], ["top"], ["top", "roof"]])
    assert all(len(f.cameras) == 1 for f in frames)
    assert np.allclose(np.diff([f.stamp for f in frames]), 0.1)


def test_cloud_messages_in_both_layouts(session):
    from inspatio_ros.ros.messages import MessageBuilder

    frame = next(f for f in (session.step() for _ in range(3)) if len(f.lidars) == 2)
    m = MessageBuilder(DdsMessageClasses())
    for lidar, dtype, names in ((frame.lidars[0], VELODYNE_DTYPE, ["x", "y", "z", "intensity", "ring", "time"]),
                                (frame.lidars[1], AUTOWARE_DTYPE, ["x", "y", "z", "intensity", "return_type",
                                                                   "channel", "azimuth", "elevation", "distance",
                                                                   "time_stamp"])):
        msg = m.lidar_cloud(m.header(frame.stamp, lidar.spec.frame), lidar.points)
        assert [f.name for f in msg.fields] == names
        assert msg.point_step == dtype.itemsize and msg.height == 1 and msg.width == len(lidar.points) > 100
        assert msg.is_dense and msg.header.frame_id == f"{lidar.spec.name}_link"
        back = cloud_points(msg)
        assert np.array_equal(back["x"], lidar.points["x"]) and np.array_equal(back["z"], lidar.points["z"])
    assert (VELODYNE_DTYPE.itemsize, AUTOWARE_DTYPE.itemsize) == (22, 32)
    assert [AUTOWARE_DTYPE.fields[n][1] for n in AUTOWARE_DTYPE.names] == [0, 4, 8, 12, 13, 14, 16, 20, 24, 28]


def test_recorder_bytes_are_the_nodes_and_a_recording_holds_the_clouds(session, tmp_path):
    from inspatio_ros.record import Recorder
    from inspatio_ros.record.frame_messages import FrameEncoder
    from inspatio_ros.ros.messages import MessageBuilder

    frame = next(f for f in (session.step() for _ in range(3)) if len(f.lidars) == 2)
    ours = {topic: data for topic, _, data, _ in FrameEncoder().messages(frame)}
    m = MessageBuilder(DdsMessageClasses())
    for lidar in frame.lidars:
        node = m.lidar_cloud(m.header(frame.stamp, lidar.spec.frame), lidar.points)
        assert ours[f"/{lidar.spec.name}/points"] == node.serialize()

    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    out = tmp_path / "rec"
    with Recorder(out) as rec:
        for _ in range(4):
            assert rec.write(session.step())
    got: dict[str, list] = {}
    with AnyReader([out], default_typestore=get_typestore(Stores.ROS2_JAZZY)) as reader:
        for conn, _, raw in reader.messages():
            got.setdefault(conn.topic, []).append(reader.deserialize(raw, conn.msgtype))
    assert len(got["/top/points"]) == 4 and len(got["/roof/points"]) == 2
    image_stamps = {(m.header.stamp.sec, m.header.stamp.nanosec) for m in got["/front/image_raw"]}
    assert {(m.header.stamp.sec, m.header.stamp.nanosec) for m in got["/roof/points"]} <= image_stamps
    children = {t.child_frame_id for msg in got["/tf_static"] for t in msg.transforms}
    assert {"top_link", "roof_link", "front_link"} <= children
    assert set(cloud_points(got["/roof/points"][0]).dtype.names) == set(AUTOWARE_DTYPE.names)


# -- across processes --------------------------------------------------------------------------

def _node_world(tmp_path_factory):
    from inspatio_ros.cli import main
    from inspatio_ros.synth.generate import generate

    scene = tmp_path_factory.mktemp("lidar_scene")
    generate("street", scene, size=(128, 80), frames=16, moving_cars=0, seed=5, fps=5.0)
    path = tmp_path_factory.mktemp("lidar_world") / "street.safetensors"
    assert main(["build", str(scene), "-o", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def node_world(tmp_path_factory):
    return _node_world(tmp_path_factory)


@pytest.mark.slow
@pytest.mark.parametrize("transport, layout", [("dds", "velodyne"), ("rclpy", "autoware")])
def test_rclpy_subscriber_receives_the_lidar_cloud(node_world, tmp_path, transport, layout):
    pytest.importorskip("rclpy")
    from sensor_msgs.msg import Image, PointCloud2

    from ros_helpers import NodeProcess, Probe, stamp_ns, write_params

    params = {"rig.preset": "driving_lidar", "cameras.front.width": 64, "cameras.front.height": 40,
              "lidars.top.columns": 360, "lidars.top.layout": layout, "device": "cpu"}
    cfg = write_params(tmp_path / "node.yaml", params)
    probe = Probe()
    try:
        probe.subscribe(PointCloud2, "/top/points")
        probe.subscribe(Image, "/front/image_raw")
        with NodeProcess(node_world, cfg, transport, tmp_path / "node.log") as node:
            ok = probe.spin_until(lambda: len(probe.received["/top/points"]) >= 2
                                  and len(probe.received["/front/image_raw"]) >= 2, 90, node)
            assert ok, node.log()
            assert "lidar top: VLP-16, 16 x 360 beams @ 10 Hz" in node.log()
    finally:
        probe.close()
    cloud = probe.received["/top/points"][0]
    names = [f.name for f in cloud.fields]
    dtype = VELODYNE_DTYPE if layout == "velodyne" else AUTOWARE_DTYPE
    assert names == list(dtype.names) and cloud.point_step == dtype.itemsize
    assert cloud.header.frame_id == "top_link" and cloud.height == 1 and cloud.width > 100
    points = cloud_points(cloud)
    dist = np.linalg.norm(np.stack([points[k] for k in "xyz"], 1).astype(np.float64), axis=1)
    assert dist.min() >= 0.5 and dist.max() <= 100.0
    ring = points["ring"] if layout == "velodyne" else points["channel"]
    assert ring.max() <= 15 and len(np.unique(ring)) > 4
    image_stamps = {stamp_ns(m.header.stamp) for m in probe.received["/front/image_raw"]}
    lidar_stamps = {stamp_ns(m.header.stamp) for m in probe.received["/top/points"]}
    assert lidar_stamps & image_stamps, "the LiDAR and the camera of one tick share its stamp"


@pytest.mark.slow
def test_six_camera_rig_publishes_every_camera_with_one_stamp_per_tick(node_world, tmp_path):
    pytest.importorskip("rclpy")
    from sensor_msgs.msg import Image, PointCloud2

    from ros_helpers import NodeProcess, Probe, stamp_ns, write_params

    names = ["front", "front_left", "front_right", "rear", "rear_left", "rear_right"]
    params = {"rig.preset": "surround6_lidar", "lidars.top.columns": 256, "lidars.top.rate_hz": 5.0,
              "device": "cpu"}
    for name in names:
        params.update({f"cameras.{name}.width": 48, f"cameras.{name}.height": 32, f"cameras.{name}.rate_hz": 10.0})
    cfg = write_params(tmp_path / "node.yaml", params)
    probe = Probe()
    try:
        for name in names:
            probe.subscribe(Image, f"/{name}/image_raw")
        probe.subscribe(PointCloud2, "/top/points")

        def stamps(topic):
            return [stamp_ns(m.header.stamp) for m in probe.received[topic]]

        with NodeProcess(node_world, cfg, "dds", tmp_path / "node.log") as node:
            ok = probe.spin_until(lambda: all(len(stamps(f"/{n}/image_raw")) >= 6 for n in names)
                                  and len(stamps("/top/points")) >= 2, 120, node)
            assert ok, node.log()
    finally:
        probe.close()
    per_camera = [set(stamps(f"/{n}/image_raw")) for n in names]
    # Every tick's stamp that one camera published, the others published too (the last tick
    # may still be on its way when the node stopped).
    common = set.intersection(*per_camera)
    assert len(common) >= 5 and all(len(s - common) <= 1 for s in per_camera)
    ticks = sorted(set.union(*per_camera))
    lidar = sorted(stamps("/top/points"))
    # The 5 Hz LiDAR rides on the 10 Hz cameras' ticks, on about every other one (a late tick on
    # the busy CPU skips ahead, so not exactly).
    assert set(lidar) <= set(ticks)
    assert len([t for t in ticks if lidar[0] <= t <= lidar[-1]]) >= 2 * len(lidar) - 1 - 2


def test_a_lidar_faster_than_the_cameras_has_ticks_of_its_own(street_world, tmp_path):
    """A 20 Hz LiDAR with a 10 Hz camera: the sim ticks at 20 Hz, the camera on every other tick;
    a tick with the LiDAR alone is a frame without cameras, published and recorded as such."""
    from inspatio_ros.record import Recorder
    from inspatio_ros.sim.session import SimSession
    from inspatio_ros.sim.settings import SessionSettings
    from inspatio_ros.world import World

    lidars = load_lidars({"lidars.names": ["top"], "lidars.top.columns": 180, "lidars.top.rate_hz": 20.0})
    session = SimSession(World.load(street_world), load_rig(CAMERA), SessionSettings(lockstep=True, device="cpu"),
                         lidars=lidars)
    assert session.tick_rate == 20.0
    frames = [session.step() for _ in range(4)]
    assert [len(f.cameras) for f in frames] == [1, 0, 1, 0]
    assert all(len(f.lidars) == 1 for f in frames)
    with Recorder(tmp_path / "rec") as rec:
        assert all(rec.write(f) for f in frames)
