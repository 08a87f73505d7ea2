"""The Cyclone DDS transport: ROS 2 wire compatibility with real rclpy (Fast DDS) processes.

Every participant (this process's DdsTransport, the rclpy peers started from this file with
``python test_dds_transport.py peer ...``) runs with ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and a
ROS_DOMAIN_ID of its own test, so parallel runs and consecutive tests do not cross-talk.
"""
from __future__ import annotations

import array
import dataclasses
import hashlib
import importlib
import itertools
import json
import os
import subprocess
import sys
import time
import typing
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent

# --- the rclpy peer (this file run as a script) ---------------------------------------------------


def ros_plain(x, ftype: str | None = None):
    """An rclpy message as JSON-able nested dicts (uint8[] as length + sha1, byte as int)."""
    if hasattr(x, "get_fields_and_field_types"):
        return {k: ros_plain(getattr(x, k), t) for k, t in x.get_fields_and_field_types().items()}
    if ftype == "octet":
        return x[0] if isinstance(x, bytes) else int(x)
    if ftype == "sequence<uint8>" or isinstance(x, (bytes, bytearray)) or (
            isinstance(x, array.array) and x.typecode == "B"):
        b = bytes(x)
        return {"len": len(b), "sha1": hashlib.sha1(b).hexdigest()}
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, (list, tuple, array.array)):
        return [ros_plain(e) for e in x]
    return x


def _ros_fill(msg, values: dict):
    for key, value in values.items():
        if isinstance(value, dict):
            _ros_fill(getattr(msg, key), value)
        else:
            setattr(msg, key, value)
    return msg


def _peer_main(argv: list[str]) -> None:
    """peer sub TYPE TOPIC RELIABILITY COUNT TIMEOUT [NODE_NS/NODE_NAME]  -> one JSON line
    peer pub TYPE TOPIC RELIABILITY JSON_VALUES TIMEOUT                  -> publishes every 0.1 s"""
    import rclpy
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    mode, type_name, topic, reliability = argv[:4]
    pkg, _, name = type_name.split("/")
    cls = getattr(importlib.import_module(pkg + ".msg"), name)
    rclpy.init()
    node = rclpy.create_node("rclpy_peer")
    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE if reliability == "reliable"
                     else ReliabilityPolicy.BEST_EFFORT)
    try:
        if mode == "sub":
            count, timeout = int(argv[4]), float(argv[5])
            got = []

            def on_message(m):
                got.append(m)
                # Each reception as it happens: a later take can hang (see test_publish_time_1080p_rgb8).
                print(f"GOT {len(got)}", flush=True)
            node.create_subscription(cls, topic, on_message, qos)
            # Where the peer is if it overruns its timeout (stderr, in the test's failure message).
            import faulthandler
            faulthandler.dump_traceback_later(timeout + 3.0, exit=False)
            print("READY", flush=True)
            deadline = time.time() + timeout
            while time.time() < deadline and len(got) < count:
                rclpy.spin_once(node, timeout_sec=0.05)
            nodes = node.get_node_names_and_namespaces()
            if len(argv) > 6:                     # wait a little for the DDS node in the ROS graph
                ns, _, want = argv[6].rpartition("/")
                t_end = time.time() + 3.0
                while (want, ns or "/") not in nodes and time.time() < t_end:
                    time.sleep(0.05)
                    nodes = node.get_node_names_and_namespaces()
            print(json.dumps({"received": len(got), "msgs": [ros_plain(m) for m in got[:count]],
                              "nodes": [list(n) for n in nodes]}), flush=True)
        elif mode == "pub":
            msg = _ros_fill(cls(), json.loads(argv[4]))
            pub = node.create_publisher(cls, topic, qos)
            deadline = time.time() + float(argv[5])
            while time.time() < deadline:
                pub.publish(msg)
                rclpy.spin_once(node, timeout_sec=0.1)
    finally:
        node.destroy_node()
        rclpy.shutdown()


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == "peer":
    _peer_main(sys.argv[2:])
    sys.exit(0)

# --- the tests --------------------------------------------------------------------------------------

from cyclonedds.idl import IdlStruct
from cyclonedds.idl.types import array as idl_array
from cyclonedds.idl.types import sequence as idl_sequence

from inspatio_ros.errors import InputError
from inspatio_ros.ros import dds_types as T
from inspatio_ros.ros.dds import DdsTransport
from inspatio_ros.ros.transport import CLOCK, DEFAULT, SENSOR_IN, SENSOR_OUT

_test_index = itertools.count()
NODE_NS, NODE_NAME = "inspatio_test", "dds_node"


@pytest.fixture
def domain(monkeypatch) -> int:
    """A domain of this test alone, loopback only, for this process and the peers it starts."""
    domain_id = 1 + (os.getpid() * 7 + 13 * next(_test_index)) % 100
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain_id))
    monkeypatch.delenv("ROS_LOCALHOST_ONLY", raising=False)
    monkeypatch.delenv("CYCLONEDDS_URI", raising=False)
    return domain_id


@pytest.fixture
def transport(domain):
    t = DdsTransport(NODE_NAME, NODE_NS, domain_id=domain)
    yield t
    t.shutdown()


def plain(x):
    """A DDS message as the nested dicts ros_plain makes of the rclpy one."""
    if isinstance(x, IdlStruct):
        return {f.name: plain(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, (bytes, bytearray, memoryview)):
        return {"len": len(x), "sha1": hashlib.sha1(bytes(x)).hexdigest()}
    if isinstance(x, (list, tuple)):
        return [plain(e) for e in x]
    return x


def _value(hint, v: int):
    """A distinct, exactly representable value for a field of the given IDL type."""
    if typing.get_origin(hint) is typing.Annotated:
        meta = hint.__metadata__[0]
        if isinstance(meta, idl_array):
            return [_value(meta.subtype, v + k) for k in range(meta.length)]
        if isinstance(meta, idl_sequence):
            return [_value(meta.subtype, v + k) for k in range(3)]
        if meta in ("float32", "float64"):
            return v + 0.5
        if meta in ("uint8", "byte", "int8"):
            return v % 100
        return v * 1000 + 7
    if hint is str:
        return f"s{v}"
    if hint is bool:
        return v % 2 == 1
    if hint is bytes:
        return bytes((v + k) % 256 for k in range(37))
    if isinstance(hint, type) and issubclass(hint, IdlStruct):
        return sample(hint, 3 * v + 1)
    raise AssertionError(f"no sample value for {hint}")


def sample(cls, seed: int = 1):
    """A message of cls with every field set to a non-default value."""
    hints = typing.get_type_hints(cls, include_extras=True)
    return cls(**{name: _value(hint, seed + i) for i, (name, hint) in enumerate(hints.items())})


def wait_for(cond, timeout: float, step: float = 0.05) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


def start_peer(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(HERE), "peer", *map(str, args)], cwd=str(ROOT),
                            env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stop(proc: subprocess.Popen, timeout: float = 10.0) -> tuple[str, str]:
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.communicate()


def peer_result(proc: subprocess.Popen, received_is_enough: bool = False) -> dict:
    """The peer's JSON result. ``received_is_enough``: a peer that hung after receiving (it
    printed GOT lines from its callback but no result) yields {"received": n} instead of failing."""
    out, err = stop(proc)
    lines = [ln for ln in out.splitlines() if ln.startswith("{")]
    got = [ln for ln in out.splitlines() if ln.startswith("GOT ")]
    if not lines and received_is_enough and got:
        return {"received": len(got), "hung": True, "stderr": err[-3000:]}
    assert lines, f"the rclpy peer printed no result (rc {proc.returncode}):\n{out}\n{err[-3000:]}"
    return json.loads(lines[-1])


def publish_until_received(transport, type_name, topic, qos, msg, count=1, timeout=15.0,
                           period=0.2, expect_node=False, received_is_enough=False) -> tuple[dict, list[float]]:
    """Start an rclpy subscriber, wait until it is matched, publish msg every `period` s until it
    has what it waits for; returns its result and the publish durations."""
    pub = transport.create_publisher(type_name, topic, qos)
    node_arg = [f"/{NODE_NS}/{NODE_NAME}"] if expect_node else []
    ros_topic = topic if topic.startswith("/") else f"/{NODE_NS}/{topic}"
    proc = start_peer("sub", type_name, ros_topic, qos.reliability, count, timeout, *node_arg)
    durations = []
    try:
        assert wait_for(lambda: pub.subscription_count() >= 1 or proc.poll() is not None, timeout), \
            "the rclpy subscriber never matched the DDS writer"
        deadline = time.time() + timeout
        while proc.poll() is None and time.time() < deadline:
            t0 = time.perf_counter()
            pub.publish(msg)
            durations.append(time.perf_counter() - t0)
            time.sleep(period)
        return peer_result(proc, received_is_enough), durations
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def expected(msg) -> dict:
    return json.loads(json.dumps(plain(msg)))


def header(sec=1_700_000_123, nanosec=456_789_000, frame_id="front_optical_frame"):
    return T.Header(stamp=T.Time(sec=sec, nanosec=nanosec), frame_id=frame_id)


# --- types ---------------------------------------------------------------------------------------


def test_simstatus_matches_msg_file():
    """SimStatus's IDL fields are those of msg/SimStatus.msg, in order, with the same types."""
    idl_of = {"std_msgs/Header": T.Header, "string": str, "float64": "float64", "bool": bool}
    fields = []
    for line in (ROOT / "msg" / "SimStatus.msg").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            ftype, fname = line.split()[:2]
            fields.append((fname, ftype))
    hints = typing.get_type_hints(T.SimStatus, include_extras=True)
    assert [f.name for f in dataclasses.fields(T.SimStatus)] == [n for n, _ in fields]
    for fname, ftype in fields:
        hint = hints[fname]
        got = hint.__metadata__[0] if typing.get_origin(hint) is typing.Annotated else hint
        assert got == idl_of[ftype], f"SimStatus.{fname}: {ftype} in the .msg, {got} in the IDL"
    assert T.MESSAGE_TYPES["inspatio_ros_interfaces/msg/SimStatus"] is T.SimStatus


def test_defaults_and_keywords():
    assert T.Quaternion().w == 1.0
    info = T.CameraInfo(width=640)
    assert (info.height, info.width, len(info.k), len(info.r), len(info.p), info.d) == (0, 640, 9, 9, 12, [])
    assert T.CameraInfo().k is not T.CameraInfo().k          # no shared mutable defaults
    assert T.Image().data == b"" and T.Empty().structure_needs_at_least_one_member == 0
    for type_name, cls in T.MESSAGE_TYPES.items():
        pkg, _, name = type_name.split("/")
        assert cls.__idl_typename__ == f"{pkg}::msg::dds_::{name}_"
        cls()                                                  # every field has a default


@pytest.mark.parametrize("type_name", sorted(T.MESSAGE_TYPES))
def test_rclpy_serialisation_agrees(type_name):
    """Our CDR bytes deserialise in rclpy to the same values, and rclpy's bytes in ours."""
    pytest.importorskip("rclpy")
    from rclpy.serialization import deserialize_message, serialize_message

    pkg, _, name = type_name.split("/")
    try:
        ros_cls = getattr(importlib.import_module(pkg + ".msg"), name)
    except (ImportError, AttributeError):
        # AttributeError: the repository's inspatio_ros_interfaces/ folder (not built by rosidl)
        # imports as a namespace package from the checkout.
        pytest.skip(f"{pkg} is not installed for rclpy")
    cls = T.MESSAGE_TYPES[type_name]
    msg = sample(cls)
    ros_msg = deserialize_message(msg.serialize(), ros_cls)
    ros_fields = ros_cls.get_fields_and_field_types()
    if not ros_fields:                    # std_msgs/Empty: rosidl's one placeholder member
        msg = cls()
    assert ros_plain(ros_msg) == {k: v for k, v in expected(msg).items() if k in ros_fields}
    back = cls.deserialize(serialize_message(ros_msg))
    assert back == msg


# --- in-process round trip ----------------------------------------------------------------------


def test_every_type_round_trips(transport):
    """Each MESSAGE_TYPES class through a DdsTransport writer and reader arrives equal."""
    got: dict[str, list] = {}
    pubs, msgs = {}, {}
    for i, (type_name, cls) in enumerate(sorted(T.MESSAGE_TYPES.items())):
        topic = "roundtrip/" + type_name.replace("/msg/", "_")
        transport.create_subscription(type_name, topic, got.setdefault(type_name, []).append, DEFAULT)
        pubs[type_name] = transport.create_publisher(type_name, topic, DEFAULT)
        msgs[type_name] = sample(cls, seed=i + 2)
    assert all(p.subscription_count() == 1 for p in pubs.values())
    for type_name, pub in pubs.items():
        pub.publish(msgs[type_name])
    deadline = time.time() + 10
    while time.time() < deadline and any(not v for v in got.values()):
        transport.spin_once(0.1)
    for type_name, msg in msgs.items():
        assert got[type_name] == [msg], type_name


def test_transport_api(transport):
    assert transport.name == "dds"
    assert transport.message_class("sensor_msgs/msg/Image") is T.Image
    with pytest.raises(InputError):
        transport.message_class("sensor_msgs/msg/LaserScan")
    raw = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    for buf in (raw.tobytes(), bytearray(raw.tobytes()), memoryview(raw.tobytes()), raw):
        assert transport.byte_payload(buf) == raw.tobytes()
    assert transport.byte_payload(np.arange(3, dtype="<f4")) == np.arange(3, dtype="<f4").tobytes()
    pub = transport.create_publisher("std_msgs/msg/String", "~/status_text", DEFAULT)
    assert pub.topic == f"/{NODE_NS}/{NODE_NAME}/status_text"
    with pytest.raises(TypeError):
        pub.publish(T.Bool(data=True))
    with pytest.raises(InputError):
        transport.create_publisher("std_msgs/msg/Bool", "~/status_text", DEFAULT)   # one type per topic
    t0 = time.perf_counter()
    transport.spin_once(0.2)                      # readers but no data: waits, then returns
    assert 0.15 < time.perf_counter() - t0 < 2.0


def test_domain_from_environment(domain):
    t = DdsTransport("env_node")                  # no domain id: ROS_DOMAIN_ID, as rclpy
    try:
        assert t.domain_id == domain
    finally:
        t.shutdown()
    with pytest.raises(InputError):
        DdsTransport("n", domain_id=300)
    with pytest.raises(InputError):
        DdsTransport("a/b", domain_id=domain)


# --- DDS -> real rclpy ---------------------------------------------------------------------------


def _image(width, height, encoding, pixels: np.ndarray):
    return T.Image(header=header(), height=height, width=width, encoding=encoding, is_bigendian=0,
                   step=pixels.nbytes // height, data=DdsTransport.byte_payload(pixels))


def _pointcloud():
    rng = np.random.default_rng(3)
    pts = rng.normal(size=(500, 4)).astype("<f4")
    fields = [T.PointField(name=n, offset=4 * i, datatype=T.PointField.FLOAT32, count=1)
              for i, n in enumerate(("x", "y", "z", "intensity"))]
    return T.PointCloud2(header=header(frame_id="lidar"), height=1, width=500, fields=fields,
                         is_bigendian=False, point_step=16, row_step=16 * 500,
                         data=DdsTransport.byte_payload(pts), is_dense=True)


def _camera_info():
    return T.CameraInfo(header=header(), height=720, width=1280, distortion_model="plumb_bob",
                        d=[-0.1, 0.01, 0.001, -0.002, 0.0],
                        k=[900.5, 0.0, 640.25, 0.0, 901.5, 360.75, 0.0, 0.0, 1.0],
                        r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
                        p=[900.5, 0.0, 640.25, -45.0, 0.0, 901.5, 360.75, 0.0, 0.0, 0.0, 1.0, 0.0],
                        binning_x=1, binning_y=2,
                        roi=T.RegionOfInterest(x_offset=4, y_offset=8, height=700, width=1200, do_rectify=True))


def _odometry():
    cov = [0.0] * 36
    cov[0], cov[7], cov[35] = 0.25, 0.5, 0.125
    return T.Odometry(header=header(frame_id="odom"), child_frame_id="base_link",
                      pose=T.PoseWithCovariance(pose=T.Pose(position=T.Point(x=1.5, y=-2.25, z=0.125),
                                                            orientation=T.Quaternion(z=0.6, w=0.8)),
                                                covariance=cov),
                      twist=T.TwistWithCovariance(twist=T.Twist(linear=T.Vector3(x=3.5),
                                                                angular=T.Vector3(z=-0.25)),
                                                  covariance=cov[::-1]))


def _diagnostics():
    return T.DiagnosticArray(header=header(frame_id=""), status=[
        T.DiagnosticStatus(level=T.DiagnosticStatus.WARN, name="inspatio_ros: simulator",
                           message="rendering below rate", hardware_id="cpu",
                           values=[T.KeyValue(key="achieved_hz", value="9.5"),
                                   T.KeyValue(key="mode", value="replay")]),
        T.DiagnosticStatus(level=T.DiagnosticStatus.OK, name="camera front", message="ok")])


_pattern = (np.arange(720 * 1280 * 3, dtype=np.uint32) * 7 % 251).astype(np.uint8).reshape(720, 1280, 3)

DDS_TO_RCLPY = {
    "image_rgb8_1280x720": ("sensor_msgs/msg/Image", "front/image_raw", SENSOR_OUT,
                            lambda: _image(1280, 720, "rgb8", _pattern)),
    "camera_info": ("sensor_msgs/msg/CameraInfo", "front/camera_info", SENSOR_OUT, _camera_info),
    "pointcloud2": ("sensor_msgs/msg/PointCloud2", "lidar/points", SENSOR_OUT, _pointcloud),
    "clock": ("rosgraph_msgs/msg/Clock", "/clock", CLOCK,
              lambda: T.Clock(clock=T.Time(sec=42, nanosec=500_000_000))),
    "odometry": ("nav_msgs/msg/Odometry", "odom", DEFAULT, _odometry),
    "diagnostics": ("diagnostic_msgs/msg/DiagnosticArray", "/diagnostics", DEFAULT, _diagnostics),
}


@pytest.mark.parametrize("case", sorted(DDS_TO_RCLPY))
def test_dds_to_rclpy(transport, case):
    pytest.importorskip("rclpy")
    type_name, topic, qos, make = DDS_TO_RCLPY[case]
    msg = make()
    result, _ = publish_until_received(transport, type_name, topic, qos, msg,
                                     expect_node=(case == "image_rgb8_1280x720"))
    assert result["received"] >= 1, f"{case}: nothing arrived at the rclpy subscriber"
    got = result["msgs"][0]
    assert got == expected(msg)
    if type_name == "sensor_msgs/msg/Image":
        assert got["header"]["stamp"] == {"sec": 1_700_000_123, "nanosec": 456_789_000}
        assert (got["width"], got["height"], got["encoding"], got["step"]) == (1280, 720, "rgb8", 3840)
        assert got["data"] == {"len": _pattern.nbytes, "sha1": hashlib.sha1(_pattern.tobytes()).hexdigest()}
        # the node shows in the ROS graph (ros_discovery_info), as `ros2 node list` would list it
        assert [NODE_NAME, f"/{NODE_NS}"] in result["nodes"]
    if type_name == "sensor_msgs/msg/CameraInfo":
        assert got["k"] == msg.k and got["d"] == msg.d and got["p"] == msg.p
    if type_name == "sensor_msgs/msg/PointCloud2":
        assert [f["name"] for f in got["fields"]] == ["x", "y", "z", "intensity"]
        assert [f["offset"] for f in got["fields"]] == [0, 4, 8, 12]
        assert got["data"]["sha1"] == hashlib.sha1(msg.data).hexdigest()
    if type_name == "diagnostic_msgs/msg/DiagnosticArray":
        assert [s["level"] for s in got["status"]] == [1, 0]


def test_depth_32fc1_1080p_to_rclpy(transport):
    """An 8 MB 1920x1080 32FC1 depth image arrives intact at a real rclpy subscriber."""
    pytest.importorskip("rclpy")
    yy, xx = np.mgrid[0:1080, 0:1920]
    depth = (1.0 + 0.01 * xx + 0.001 * yy).astype("<f4")
    msg = _image(1920, 1080, "32FC1", depth)
    assert len(msg.data) == 1920 * 1080 * 4 and msg.step == 7680
    t0 = time.time()
    result, _ = publish_until_received(transport, "sensor_msgs/msg/Image", "front/depth", SENSOR_OUT, msg,
                                       period=0.5)
    print(f"\n8 MB depth image: rclpy subscriber done {time.time() - t0:.2f} s after start")
    assert result["received"] >= 1
    got = result["msgs"][0]
    assert (got["width"], got["height"], got["encoding"], got["step"]) == (1920, 1080, "32FC1", 7680)
    assert got["data"] == {"len": depth.nbytes, "sha1": hashlib.sha1(depth.tobytes()).hexdigest()}


def test_publish_time_1080p_rgb8(transport):
    """How long publish() of a 1920x1080 rgb8 image takes with a real rclpy subscriber matched
    (printed, not asserted: it is a measurement).

    The peer waits for 5 images, not 20: rclpy's take of a 6.2 MB uint8[] is slow in Python, and
    with the CPU loaded one take ran for seconds (faulthandler showed the peer inside
    _take_subscription past its deadline), so 20 of them overran the test's wait. On the 2-core VM
    under load a take also hung outright (33 s inside spin_once, session 8): the peer reports each
    image from its callback as it arrives, and images it received before hanging count."""
    pytest.importorskip("rclpy")
    rgb = np.random.default_rng(1).integers(0, 256, size=(1080, 1920, 3), dtype=np.uint8)
    msg = _image(1920, 1080, "rgb8", rgb)
    result, durations = publish_until_received(transport, "sensor_msgs/msg/Image", "front/image_raw",
                                               SENSOR_OUT, msg, count=5, timeout=30.0, period=0.1,
                                               received_is_enough=True)
    ms = np.array(durations) * 1000
    print(f"\npublish 1920x1080 rgb8 (6.2 MB), {len(ms)} frames at 10 Hz: median {np.median(ms):.1f} ms, "
          f"min {ms.min():.1f} ms, max {ms.max():.1f} ms; rclpy subscriber received {result['received']}"
          + (" (then hung in a take)" if result.get("hung") else ""))
    assert result["received"] >= 1, result.get("stderr")


@pytest.mark.slow   # a real rclpy subscriber process (6-7 s)
def test_subscription_count_follows_rclpy_subscriber(transport):
    pytest.importorskip("rclpy")
    pub = transport.create_publisher("sensor_msgs/msg/Image", "front/image_raw", SENSOR_OUT)
    assert pub.subscription_count() == 0
    proc = start_peer("sub", "sensor_msgs/msg/Image", f"/{NODE_NS}/front/image_raw", "reliable", 1, 6)
    try:
        assert wait_for(lambda: pub.subscription_count() == 1, 15), "the rclpy subscriber never matched"
        stop(proc, timeout=15)                       # it exits by itself, destroying its node
        assert wait_for(lambda: pub.subscription_count() == 0, 10), "the rclpy subscriber never unmatched"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --- real rclpy -> DDS -------------------------------------------------------------------------


RCLPY_TO_DDS = {
    "pose_stamped": ("geometry_msgs/msg/PoseStamped", "goal_pose", {
        "header": {"stamp": {"sec": 12, "nanosec": 345}, "frame_id": "map"},
        "pose": {"position": {"x": 1.25, "y": -3.5, "z": 0.5},
                 "orientation": {"x": 0.0, "y": 0.0, "z": 0.6, "w": 0.8}}}),
    "twist": ("geometry_msgs/msg/Twist", "cmd_vel", {
        "linear": {"x": 2.5, "y": 0.0, "z": 0.0}, "angular": {"x": 0.0, "y": 0.0, "z": -0.75}}),
}


@pytest.mark.parametrize("case", sorted(RCLPY_TO_DDS))
def test_rclpy_to_dds(transport, case):
    pytest.importorskip("rclpy")
    type_name, topic, values = RCLPY_TO_DDS[case]
    got = []
    transport.create_subscription(type_name, topic, got.append, SENSOR_IN)   # best effort, as the node
    proc = start_peer("pub", type_name, f"/{NODE_NS}/{topic}", "reliable", json.dumps(values), 15)
    try:
        deadline = time.time() + 15
        while not got and time.time() < deadline and proc.poll() is None:
            transport.spin_once(0.1)
    finally:
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate()
    assert got, f"nothing arrived from the rclpy publisher:\n{err[-3000:]}"
    assert isinstance(got[0], T.MESSAGE_TYPES[type_name])
    assert plain(got[0]) == values


def test_reliable_writers_keep_all_and_latched_keep_last(transport):
    """Reliable volatile writers keep every unacknowledged sample (KEEP_ALL: they never answer a
    repair request with a GAP, which freezes Fast DDS 2.14 readers of fragmented samples: see
    ros/dds.py); transient-local writers and readers keep the last ``depth``."""
    from cyclonedds.qos import Policy

    from inspatio_ros.ros.transport import LATCHED, SENSOR_OUT

    sensor = transport.create_publisher("sensor_msgs/msg/Image", "keep_all_probe", SENSOR_OUT)
    latched = transport.create_publisher("std_msgs/msg/String", "keep_last_probe", LATCHED)
    reader = transport.create_subscription("sensor_msgs/msg/Image", "keep_all_probe", lambda m: None, SENSOR_OUT)
    assert sensor._writer.get_qos()[Policy.History] == Policy.History.KeepAll
    assert latched._writer.get_qos()[Policy.History] == Policy.History.KeepLast(1)
    assert reader.reader.get_qos()[Policy.History] == Policy.History.KeepLast(SENSOR_OUT.depth)


_STALLED_READER = """
import sys, time
from inspatio_ros.ros.dds import DdsTransport
from inspatio_ros.ros.transport import SENSOR_OUT
t = DdsTransport("stalled_reader")
t.create_subscription("sensor_msgs/msg/Image", "/backlog_probe", lambda m: None, SENSOR_OUT)
print("ready", flush=True)
while True:
    t.spin_once(0.05)
"""


def test_writer_backlog_is_sized_in_time_between_its_floor_and_cap():
    """A camera's writers keep WRITER_BACKLOG_S seconds of its largest output, never less than the
    floor nor more than the cap: at 640x360 and 10 Hz the 3.7 MB clouds get 2 s where the fixed
    32 MiB held 0.9 s (what the soak's starved reader lost)."""
    from inspatio_ros.camera import Intrinsics
    from inspatio_ros.ros import dds
    from inspatio_ros.ros.writer_process import CameraLayout

    def layout(w, h, outputs, rate):
        return CameraLayout(name="front", optical_frame="front_optical", intrinsics=Intrinsics.from_fov(w, h, 90.0),
                            outputs=outputs, topics={}, qos={}, rate_hz=rate)

    clouds = layout(640, 360, ("image", "depth", "points"), 10.0)
    assert clouds.largest_sample_bytes() == 640 * 360 * 16
    backlog = dds.writer_backlog_bytes(clouds.largest_sample_bytes(), clouds.rate_hz)
    assert backlog >= dds.WRITER_BACKLOG_S * 10.0 * 640 * 360 * 16
    assert backlog > dds.WRITER_BACKLOG_BYTES
    small = layout(160, 90, ("image",), 30.0)
    assert dds.writer_backlog_bytes(small.largest_sample_bytes(), small.rate_hz) == dds.WRITER_BACKLOG_BYTES
    huge = layout(1920, 1080, ("image", "depth", "points"), 30.0)
    assert dds.writer_backlog_bytes(huge.largest_sample_bytes(), huge.rate_hz) == dds.WRITER_BACKLOG_MAX_BYTES
    assert f"<WhcHigh>{backlog}B</WhcHigh>" in dds.cyclone_config(False, backlog)


_SIZED_WRITER = """
import sys, time
import numpy as np
from inspatio_ros.ros.dds import DdsTransport
from inspatio_ros.ros.dds_types import MESSAGE_TYPES
from inspatio_ros.ros.transport import SENSOR_OUT
backlog, count = int(sys.argv[1]), int(sys.argv[2])
t = DdsTransport("sized_writer", writer_backlog=backlog)
pub = t.create_publisher("sensor_msgs/msg/Image", "/sized_backlog_probe", SENSOR_OUT)
deadline = time.monotonic() + 20
while pub.subscription_count() < 1 and time.monotonic() < deadline:
    time.sleep(0.05)
Image = MESSAGE_TYPES["sensor_msgs/msg/Image"]
data = np.zeros((1080, 1920), np.float32).tobytes()
msg = Image(height=1080, width=1920, encoding="32FC1", step=1920 * 4, data=data)
pub.publish(msg)
print("first", flush=True)
sys.stdin.readline()                 # the reader is stopped now
for _ in range(count):
    pub.publish(msg)
print(pub.dropped, flush=True)
t.shutdown()
"""


def test_a_writer_keeps_the_backlog_it_was_given(domain):
    """DdsTransport(writer_backlog=B): a reliable writer facing a stalled reader accepts about
    B / sample bytes samples before it drops (the domain's watermark is B, not the default)."""
    import signal

    from inspatio_ros.ros import dds

    env = {**os.environ, "ROS_DOMAIN_ID": str(domain)}
    reader = subprocess.Popen([sys.executable, "-c", _STALLED_READER.replace("/backlog_probe", "/sized_backlog_probe")],
                              stdout=subprocess.PIPE, text=True, env=env)
    sample = 1920 * 1080 * 4
    backlog = 2 * dds.WRITER_BACKLOG_BYTES
    count = 3 * backlog // sample
    writer = subprocess.Popen([sys.executable, "-c", _SIZED_WRITER, str(backlog), str(count)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert reader.stdout.readline().strip() == "ready"
        assert writer.stdout.readline().strip() == "first"
        time.sleep(0.5)                      # the first sample acknowledged
        reader.send_signal(signal.SIGSTOP)
        writer.stdin.write("go\n")
        writer.stdin.flush()
        dropped = int(writer.stdout.readline())
        kept = count - dropped
        # The default 32 MiB would keep 4 of these 8.3 MB samples; 64 MiB keeps 8 (+-1 for the
        # watermark's rounding and the first sample's acknowledgement).
        assert backlog // sample - 1 <= kept <= backlog // sample + 1, (kept, count)
    finally:
        reader.send_signal(signal.SIGCONT)
        for p in (reader, writer):
            p.kill()
            p.wait()


def test_a_stalled_reliable_reader_never_blocks_the_writer(transport, domain):
    """A reliable reader that stops acknowledging (SIGSTOP) costs the writer at most its backlog:
    writes keep returning at once and the samples beyond the backlog are counted as dropped."""
    import signal

    from inspatio_ros.ros import dds
    from inspatio_ros.ros.transport import SENSOR_OUT

    reader = subprocess.Popen([sys.executable, "-c", _STALLED_READER], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "ROS_DOMAIN_ID": str(domain)})
    try:
        assert reader.stdout.readline().strip() == "ready"
        pub = transport.create_publisher("sensor_msgs/msg/Image", "/backlog_probe", SENSOR_OUT)
        deadline = time.monotonic() + 20
        while pub.subscription_count() < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pub.subscription_count() >= 1
        pixels = np.zeros((1080, 1920), np.float32)           # 8.3 MB, 32FC1
        msg = T.Image(height=1080, width=1920, encoding="32FC1", step=1920 * 4, data=pixels.tobytes())
        pub.publish(msg)
        reader.send_signal(signal.SIGSTOP)
        n = 3 * dds.WRITER_BACKLOG_BYTES // len(msg.data) + 4
        slowest = 0.0
        for _ in range(n):
            t0 = time.perf_counter()
            pub.publish(msg)
            slowest = max(slowest, time.perf_counter() - t0)
        assert pub.dropped >= n - dds.WRITER_BACKLOG_BYTES // len(msg.data) - 2, (pub.dropped, n)
        assert slowest < 0.5, f"a write waited {slowest:.2f} s for the stalled reader"
    finally:
        reader.send_signal(signal.SIGCONT)
        reader.kill()
        reader.wait()


_PROBE_SUBSCRIBER = """
import time
from inspatio_ros.ros.dds import DdsTransport
from inspatio_ros.ros.transport import Qos
t = DdsTransport("stall_probe_subscriber")
t.create_subscription("sensor_msgs/msg/Image", "/stall_probe", lambda m: print(time.time(), flush=True),
                      Qos("reliable", "volatile", 5))
while True:
    t.spin_once(0.05)
"""

_PROBE_PUBLISHER = """
import time
import numpy as np
from inspatio_ros.ros.dds import DdsTransport
from inspatio_ros.ros.dds_types import MESSAGE_TYPES
from inspatio_ros.ros.transport import Qos
t = DdsTransport("stall_probe_publisher")
p = t.create_publisher("sensor_msgs/msg/Image", "/stall_probe", Qos("reliable", "volatile", 5))
msg = MESSAGE_TYPES["sensor_msgs/msg/Image"](height=360, width=640, encoding="rgb8", step=640 * 3,
                                            data=np.zeros(640 * 360 * 3, np.uint8).tobytes())
while True:
    p.publish(msg)
    time.sleep(0.1)
"""


@pytest.mark.slow
def test_a_subscriber_stopped_past_its_lease_hears_the_node_again_within_seconds(domain):
    """A subscriber stopped (SIGSTOP) for about its participant lease may expire the publisher's
    participant on resuming and then hear nothing until the publisher announces itself again:
    with Cyclone's 30 s announcement interval the soak's Cyclone subscriber came back after 30.0 s.
    Our configuration announces every SPDP_INTERVAL_S. The lease is shortened here to 2 s (stalls
    of 2.2 s) so that eight stalls take seconds; with a 30 s interval 13 of 20 such stalls stayed
    silent for over 8 s (docs/notes/2026-12-05-dds-rediscovery.md)."""
    import signal

    from inspatio_ros.ros import dds

    config = dds.cyclone_config(True).replace("<Discovery>", "<Discovery><LeaseDuration>2s</LeaseDuration>")
    assert f"<SPDPInterval>{dds.SPDP_INTERVAL_S:g}s</SPDPInterval>" in config
    env = {**os.environ, "ROS_DOMAIN_ID": str(domain), "CYCLONEDDS_URI": config}
    publisher = subprocess.Popen([sys.executable, "-c", _PROBE_PUBLISHER], env=env)
    subscriber = subprocess.Popen([sys.executable, "-u", "-c", _PROBE_SUBSCRIBER], env=env, stdout=subprocess.PIPE,
                                  text=True)
    os.set_blocking(subscriber.stdout.fileno(), False)

    def received() -> list[float]:
        return [float(line) for line in iter(subscriber.stdout.readline, "")]

    try:
        deadline = time.monotonic() + 30
        while not received():
            assert time.monotonic() < deadline, "the subscriber never received the publisher"
            time.sleep(0.1)
        silences = []
        for k in range(8):
            time.sleep(1.0 + 0.37 * (k % 3))
            received()
            subscriber.send_signal(signal.SIGSTOP)
            time.sleep(2.2)
            received()
            subscriber.send_signal(signal.SIGCONT)
            resumed = time.time()
            silence = None
            while silence is None and time.time() - resumed < 8.0:
                later = [t for t in received() if t > resumed]
                silence = later[0] - resumed if later else None
                time.sleep(0.01)
            silences.append(silence)
        assert all(s is not None and s < 3.0 for s in silences), silences
    finally:
        for p in (publisher, subscriber):
            p.send_signal(signal.SIGCONT)
            p.kill()
            p.wait()
