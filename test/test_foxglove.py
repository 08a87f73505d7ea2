"""The live view in Foxglove (inspatio_ros/live/foxglove.py): a real Foxglove WebSocket client, the
protocol's reference client (@foxglove/ws-protocol, run with node in another process), subscribes,
publishes Twist and calls services; the server is the foxglove-sdk one the node starts. No mocks:
messages are decoded with rosbags and compared with the frames the session rendered."""
from __future__ import annotations

import base64
import io
import json
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from foxglove_helpers import FoxgloveClient, client_ready
from inspatio_ros.errors import InputError

pytest.importorskip("foxglove", reason="foxglove-sdk is not installed (pip install foxglove-sdk)")

CAMERA = {"cameras.names": ["front"], "cameras.front.width": 96, "cameras.front.height": 64,
          "cameras.front.hfov_deg": 80.0, "cameras.front.xyz": [0.0, 0.0, 1.5],
          "cameras.front.rpy": [0.0, 0.0, 0.0], "cameras.front.rate_hz": 10.0,
          "cameras.front.outputs": ["image", "depth", "points"]}
TOPICS = {"/front/image_raw/compressed": "sensor_msgs/msg/CompressedImage",
          "/front/camera_info": "sensor_msgs/msg/CameraInfo", "/front/depth/image": "sensor_msgs/msg/Image",
          "/front/points": "sensor_msgs/msg/PointCloud2", "/tf": "tf2_msgs/msg/TFMessage",
          "/odom": "nav_msgs/msg/Odometry"}


@pytest.fixture(scope="module")
def node_client():
    reason = client_ready()
    if reason:
        pytest.skip(reason)


def make_session(world_path, mode="control"):
    from inspatio_ros.sim.rig import load_rig
    from inspatio_ros.sim.session import SimSession
    from inspatio_ros.sim.settings import SessionSettings
    from inspatio_ros.world import World

    return SimSession(World.load(world_path), load_rig(CAMERA), SessionSettings(mode=mode, lockstep=True,
                                                                                 device="cpu"))


@pytest.fixture
def view(street_world, node_client):
    from inspatio_ros.live.foxglove import FoxgloveView
    from inspatio_ros.sim.settings import FoxgloveSettings

    session = make_session(street_world)
    with FoxgloveView(session, FoxgloveSettings(port=0, max_points=1000), world_name="street") as v:
        yield v


def decode(msgtype: str, data: bytes):
    from inspatio_ros.record.recorder import typestore

    return typestore().deserialize_cdr(data, msgtype)


def stamp_ns(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def wait_until(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def connect(view) -> FoxgloveClient:
    client = FoxgloveClient(view.port)
    client.wait_for(lambda ev: ev["ev"] == "advertise")
    client.wait_for(lambda ev: ev["ev"] == "services")
    return client


def test_client_receives_camera_calibration_transforms_and_cloud_with_matching_stamps(view):
    from PIL import Image

    with connect(view) as client:
        advertised = {c["topic"]: c for ev in client.seen if ev["ev"] == "advertise" for c in ev["channels"]}
        for topic, msgtype in TOPICS.items():
            assert advertised[topic]["schemaName"] == msgtype and advertised[topic]["encoding"] == "cdr"
        client.send(op="subscribe", topics=[*TOPICS, "/tf_static", "/recorded_path"], keep=10)
        client.wait_for(lambda ev: ev["ev"] == "message" and ev["topic"] == "/recorded_path")   # subscribed
        frames = []
        for n in range(1, 4):
            frames.append(view.session.step())
            view.publish(frames[-1])
            # One frame at a time: none is replaced before the encoder has sent it.
            wait_until(lambda n=n: view.frames_sent >= n)
        wait_until(lambda: all(len(client.messages(topic)) >= 3 for topic in TOPICS))
        stamps = [round(f.stamp * 1e9) for f in frames]
        for topic, msgtype in TOPICS.items():
            got = client.messages(topic)
            assert [t for t, _ in got] == stamps, topic            # log time = the frame's stamp
            for (_, data), frame in zip(got, frames):
                msg = decode(msgtype, data)
                header = msg.transforms[0].header if topic == "/tf" else msg.header
                assert stamp_ns(header) == round(frame.stamp * 1e9), topic
        last = frames[-1]
        image = Image.open(io.BytesIO(bytes(decode(TOPICS["/front/image_raw/compressed"],
                                                   client.messages("/front/image_raw/compressed")[-1][1]).data)))
        assert image.size == (96, 64)
        # JPEG of the rendered image: close to it, pixel by pixel.
        assert np.abs(np.asarray(image, np.float32) - last.cameras[0].rgb).mean() < 12
        info = decode(TOPICS["/front/camera_info"], client.messages("/front/camera_info")[-1][1])
        intr = last.cameras[0].spec.intrinsics
        assert (info.width, info.height) == (96, 64) and info.k[0] == pytest.approx(intr.fx)
        depth = decode(TOPICS["/front/depth/image"], client.messages("/front/depth/image")[-1][1])
        assert depth.encoding == "32FC1"
        np.testing.assert_array_equal(np.frombuffer(bytes(depth.data), "<f4").reshape(64, 96), last.cameras[0].depth)
        cloud = decode(TOPICS["/front/points"], client.messages("/front/points")[-1][1])
        assert cloud.width * cloud.height <= 1000 and (cloud.height, cloud.width) == (22, 32)     # every 3rd
        np.testing.assert_array_equal(np.frombuffer(bytes(cloud.data), "<f4").reshape(22, 32, 4),
                                      last.cameras[0].points[::3, ::3])
        tf = decode(TOPICS["/tf"], client.messages("/tf")[-1][1])
        child = tf.transforms[1]
        assert child.child_frame_id == "base_link"
        assert [child.transform.translation.x, child.transform.translation.y] == pytest.approx(
            last.map_from_base[:2, 3])
        mounts = decode("tf2_msgs/msg/TFMessage", client.messages("/tf_static")[0][1])
        assert {t.child_frame_id for t in mounts.transforms} == {"front_link", "front_optical_frame"}
        path = decode("visualization_msgs/msg/Marker", client.messages("/recorded_path")[0][1])
        assert path.type == path.LINE_STRIP and len(path.points) == len(view.session.path.times)


def test_nothing_is_encoded_for_topics_nobody_subscribes(view):
    with connect(view) as client:
        client.send(op="subscribe", topics=["/tf"], keep=5)

        def tf_arrived() -> bool:              # frames until the subscription has taken effect
            view.publish(view.session.step())
            return bool(client.messages("/tf"))

        wait_until(tf_arrived)
        stats = client.stats()
        assert "/tf" in stats and "/front/image_raw/compressed" not in stats and "/front/points" not in stats


@pytest.mark.parametrize("encoding", ["json", "cdr"])
def test_a_teleop_twist_moves_the_ego(view, encoding):
    """Foxglove's Teleop panel: schema geometry_msgs/Twist on /cmd_vel, JSON when the server lists json
    first (the app takes the first of the server's encodings it can write); CDR works too."""
    from inspatio_ros.record.recorder import typestore

    session = view.session
    with connect(view) as client:
        assert client.wait_for(lambda ev: ev["ev"] == "serverInfo")["supportedEncodings"][0] == "json"
        client.send(op="advertise", topic="/cmd_vel", encoding=encoding, schemaName="geometry_msgs/Twist")
        client.wait_for(lambda ev: ev["ev"] == "advertised")
        start = session.map_from_base[:3, 3].copy()
        twist = {"linear": {"x": 4.0, "y": 0.0, "z": 0.0}, "angular": {"x": 0.0, "y": 0.0, "z": 0.2}}
        if encoding == "cdr":
            store = typestore()
            vec = store.types["geometry_msgs/msg/Vector3"]
            msg = store.types["geometry_msgs/msg/Twist"](linear=vec(x=4.0, y=0.0, z=0.0), angular=vec(x=0.0, y=0.0,
                                                                                                      z=0.2))
            payload = {"base64": base64.b64encode(bytes(store.serialize_cdr(msg, msg.__msgtype__))).decode()}
        else:
            payload = {"json": twist}
        for n in range(1, 11):                        # the Teleop panel's 10 Hz against 10 Hz sim steps
            client.send(op="publish", topic="/cmd_vel", **payload)
            wait_until(lambda n=n: view.teleop_commands >= n)
            session.step()
        moved = session.map_from_base[:3, 3] - start
        heading = session.map_from_base[:3, :3] @ [1.0, 0.0, 0.0]
        assert np.linalg.norm(moved) > 0.5             # 4 m/s, accelerating at 3 m/s^2, for ~1 s of sim time
        assert session.ego.yaw_rate == pytest.approx(0.2)
        assert np.dot(moved[:2], heading[:2]) > 0      # forward


def test_a_twist_on_another_topic_is_refused_with_a_warning_to_the_client(view):
    session = view.session
    with connect(view) as client:
        client.send(op="advertise", topic="/robot/cmd_vel", encoding="json", schemaName="geometry_msgs/Twist")
        client.wait_for(lambda ev: ev["ev"] == "advertised")
        start = session.map_from_base.copy()
        client.send(op="publish", topic="/robot/cmd_vel", json={"linear": {"x": 3.0}, "angular": {"z": 0.0}})
        status = client.wait_for(lambda ev: ev["ev"] == "status")
        assert "/cmd_vel" in status["message"] and status["level"] == 1           # warning
        for _ in range(5):
            session.step()
        np.testing.assert_array_equal(session.map_from_base, start)
        assert view.teleop_commands == 0


def test_services_pause_seek_rate_and_reset(view):
    session = view.session
    with connect(view) as client:
        names = {s["name"] for ev in client.seen if ev["ev"] == "services" for s in ev["services"]}
        assert names == {f"/inspatio_ros/{k}" for k in ("pause", "resume", "seek", "rate", "reset")}
        assert client.call("/inspatio_ros/pause", {}, 1) == {"success": True, "message": "paused"}
        assert session.paused
        answer = client.call("/inspatio_ros/seek", {"data": 0.7}, 2)
        assert answer["success"] and session.elapsed == pytest.approx(0.7)
        assert client.call("/inspatio_ros/rate", {"data": 2.5}, 3)["success"] and session.rate == 2.5
        assert client.call("/inspatio_ros/resume", {}, 4)["success"] and not session.paused
        bad = client.call("/inspatio_ros/rate", {"data": 50}, 5)
        assert not bad["success"] and "rate" in bad["message"] and session.rate == 2.5
        bad = client.call("/inspatio_ros/seek", {"data": "soon"}, 6)
        assert not bad["success"] and "not a number" in bad["message"]
        assert client.call("/inspatio_ros/reset", {}, 7)["success"] and session.elapsed == pytest.approx(0.0)


def test_a_namespaced_view_serves_the_node_topics_under_its_namespace(street_world, node_client):
    """``run --namespace robot1 --foxglove``: topics and services as the node's resolve under the
    namespace (tf stays global), and the Teleop panel drives it on /robot1/cmd_vel."""
    from inspatio_ros.live.foxglove import FoxgloveView
    from inspatio_ros.sim.settings import FoxgloveSettings

    session = make_session(street_world)
    with FoxgloveView(session, FoxgloveSettings(port=0, max_points=1000), namespace="/robot1/",
                      world_name="street") as view, connect(view) as client:
        served = {c["topic"] for ev in client.seen if ev["ev"] == "advertise" for c in ev["channels"]}
        assert served == {"/tf", "/tf_static", "/robot1/odom", "/robot1/status", "/robot1/recorded_path",
                          *(f"/robot1{t}" for t in TOPICS if t != "/tf" and t != "/odom")}
        services = {s["name"] for ev in client.seen if ev["ev"] == "services" for s in ev["services"]}
        assert services == {f"/robot1/inspatio_ros/{k}" for k in ("pause", "resume", "seek", "rate", "reset")}
        assert client.call("/robot1/inspatio_ros/pause", {}, 1)["success"] and session.paused
        assert client.call("/robot1/inspatio_ros/resume", {}, 2)["success"] and not session.paused
        client.send(op="advertise", topic="/cmd_vel", encoding="json", schemaName="geometry_msgs/Twist")
        client.send(op="advertise", topic="/robot1/cmd_vel", encoding="json", schemaName="geometry_msgs/Twist")
        client.wait_for(lambda ev: ev["ev"] == "advertised")
        client.send(op="publish", topic="/cmd_vel", json={"linear": {"x": 3.0}, "angular": {"z": 0.0}})
        status = client.wait_for(lambda ev: ev["ev"] == "status")
        assert "/robot1/cmd_vel" in status["message"] and view.teleop_commands == 0   # another robot's topic
        client.send(op="publish", topic="/robot1/cmd_vel", json={"linear": {"x": 3.0}, "angular": {"z": 0.0}})
        wait_until(lambda: view.teleop_commands == 1)


def test_cloud_stride_keeps_at_most_max_points():
    from inspatio_ros.live.foxglove import cloud_stride

    for h, w, n in [(720, 1280, 100_000), (64, 96, 1000), (5, 7, 35), (5, 7, 1), (1080, 1920, 12345)]:
        k = cloud_stride(h, w, n)
        assert -(-h // k) * -(-w // k) <= n
        assert k == 1 or -(-h // (k - 1)) * -(-w // (k - 1)) > n          # the smallest such stride


def test_decode_twist_refuses_bad_payloads():
    from inspatio_ros.live.foxglove import decode_twist

    assert decode_twist("json", b'{"linear": {"x": 1.5}, "angular": {"z": -0.25}}', "t") == (1.5, -0.25)
    for encoding, data in [("json", b"{not json"), ("json", b'{"linear": {"x": "fast"}}'), ("cdr", b"\x00\x01"),
                           ("protobuf", b"")]:
        with pytest.raises(InputError, match="geometry_msgs/Twist"):
            decode_twist(encoding, data, "client 1 on /cmd_vel")


def test_without_foxglove_sdk_one_input_error_says_how_to_install(monkeypatch):
    from inspatio_ros.live.foxglove import import_foxglove

    monkeypatch.setitem(sys.modules, "foxglove", None)          # what `import foxglove` does when absent
    with pytest.raises(InputError, match="pip install foxglove-sdk"):
        import_foxglove()


def run_cli_briefly(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "inspatio_ros.cli", "run", *args, "--duration", "1"],
                          capture_output=True, text=True, timeout=120)


def test_bad_and_occupied_ports_are_input_errors(view):
    from inspatio_ros.live.foxglove import FoxgloveView, check_port
    from inspatio_ros.ros.run_cli import check_parameters
    from inspatio_ros.sim.settings import FoxgloveSettings

    with pytest.raises(InputError, match=r"foxglove.port.*65535"):
        check_parameters({"foxglove.port": 70000})
    with pytest.raises(InputError, match="in use"):
        check_port("127.0.0.1", view.port)                     # the view's own server holds it
    with pytest.raises(InputError, match=f"127.0.0.1:{view.port}.*another port"):
        FoxgloveView(view.session, FoxgloveSettings(port=view.port))


@pytest.mark.slow
def test_a_port_out_of_range_is_one_error_line():
    done = run_cli_briefly("--foxglove", "70000")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "foxglove.port" in lines[0] and "65535" in lines[0], done.stderr


@pytest.mark.slow
def test_an_occupied_port_is_one_error_line():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = run_cli_briefly("--foxglove", str(port))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port}" in lines[0] and "in use" in lines[0], done.stderr


@pytest.mark.slow
def test_the_node_serves_foxglove_and_its_teleop_drives_it(street_world, node_client, tmp_path):
    """`inspatio-ros run --foxglove PORT --mode control` (built-in DDS transport): the client sees the
    camera and /tf, a Teleop Twist moves the ego in /tf, a service call pauses and seeks (in /status)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "rig.yaml"
    config.write_text(json.dumps({"inspatio_ros": {"ros__parameters": CAMERA}}))
    node = subprocess.Popen([sys.executable, "-m", "inspatio_ros.cli", "--device", "cpu", "run", str(street_world),
                             "--transport", "dds", "--mode", "control", "--config", str(config), "--foxglove", str(port),
                             "--duration", "90"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        client = None
        deadline = time.monotonic() + 60
        while client is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                client = FoxgloveClient(port)
            except OSError:
                assert node.poll() is None and time.monotonic() < deadline, node.communicate()[1]
                time.sleep(0.5)
        with client:
            client.wait_for(lambda ev: ev["ev"] == "services", 30)
            client.send(op="subscribe", topics=["/tf", "/front/image_raw/compressed", "/status"], keep=100000)
            for topic in ("/front/image_raw/compressed", "/tf", "/status"):
                client.wait_for(lambda ev, topic=topic: ev["ev"] == "message" and ev["topic"] == topic, 30)

            def ego_x() -> float:
                msg = decode("tf2_msgs/msg/TFMessage", client.messages("/tf")[-1][1])
                return msg.transforms[1].transform.translation.x

            def last_status():
                return decode("inspatio_ros_interfaces/msg/SimStatus", client.messages("/status")[-1][1])

            start = ego_x()
            client.send(op="advertise", topic="/cmd_vel", encoding="json", schemaName="geometry_msgs/Twist")
            client.wait_for(lambda ev: ev["ev"] == "advertised")
            for _ in range(30):                         # 3 s at the Teleop panel's 10 Hz
                client.send(op="publish", topic="/cmd_vel", json={"linear": {"x": 3.0}, "angular": {"z": 0.0}})
                time.sleep(0.1)
            moved = abs(ego_x() - start)
            assert moved > 1.0, moved
            assert client.call("/inspatio_ros/pause", {}, 1)["success"]
            assert client.call("/inspatio_ros/seek", {"data": 0.5}, 2)["success"]
            # /status goes out at 2 Hz: the next ones say paused, at 0.5 s of the recording, in mode control.
            wait_until(lambda: last_status().paused and abs(last_status().sim_time - 0.5) < 1e-6)
            assert last_status().mode == "control"
    finally:
        node.terminate()
        _, err = node.communicate(timeout=30)
    assert node.returncode == 0, err


def test_the_shipped_layout_is_current_and_shows_what_the_view_serves(view):
    """config/foxglove_layout.json is what tools/foxglove_layout.py writes, and every topic and service
    it names is one the view serves (for the default camera name, front)."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("foxglove_layout", root / "tools" / "foxglove_layout.py")
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    shipped = (root / "config" / "foxglove_layout.json").read_text()
    assert shipped == tool.layout_json(), "stale: run python tools/foxglove_layout.py"

    def walk(node):
        if isinstance(node, dict):
            if node.get("type") == "panel":
                yield node
            for value in node.values():
                yield from walk(value)
        elif isinstance(node, list):
            for value in node:
                yield from walk(value)

    panels = list(walk(json.loads(shipped)))
    assert {p["panelType"] for p in panels} >= {"Image", "ThreeDee", "Teleop", "ServiceCall", "RawMessages"}
    with connect(view) as client:
        served = {c["topic"] for ev in client.seen if ev["ev"] == "advertise" for c in ev["channels"]}
        services = {s["name"] for ev in client.seen if ev["ev"] == "services" for s in ev["services"]}
    for p in panels:
        c = p["config"]
        named = [c.get("imageMode", {}).get("imageTopic"), c.get("imageMode", {}).get("calibrationTopic"),
                 *c.get("topics", {}), c.get("topicPath")]
        assert {t for t in named if t} <= served, p
        if p["panelType"] == "ServiceCall":
            assert c["serviceName"] in services
        if p["panelType"] == "Teleop":
            assert c["topic"] == "/cmd_vel" and c["publishRate"] >= 1 / 0.5      # within vehicle.command_timeout
