"""Recording what the simulator publishes (inspatio_ros/record/): rosbag2 MCAP folders that
rosbags opens, split by size, readable after SIGKILL up to the last flushed chunk, complete after
SIGINT / SIGTERM, one InputError for a bad folder, and a node recording built back into a world.
Real processes and real files; no ROS install (the node runs on the built-in DDS transport)."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from inspatio_ros.errors import InputError
from inspatio_ros.record import Recorder, recover_recording
from inspatio_ros.record.mcap import scan
from inspatio_ros.record.recorder import SIM_STATUS_MSG

ROOT = Path(__file__).resolve().parents[1]
RATE_HZ = 10.0
CAMERA = {"cameras.names": ["front"], "cameras.front.width": 96, "cameras.front.height": 64,
          "cameras.front.hfov_deg": 80.0, "cameras.front.xyz": [0.0, 0.0, 1.5],
          "cameras.front.rpy": [0.0, 0.0, 0.0], "cameras.front.rate_hz": RATE_HZ,
          "cameras.front.outputs": ["image", "depth", "points", "coverage", "compressed"]}


def read_recording(path: Path) -> dict[str, list]:
    """topic -> [(log time ns, message)] of a rosbag2 folder, read by rosbags."""
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    out: dict[str, list] = {}
    with AnyReader([path], default_typestore=get_typestore(Stores.ROS2_JAZZY)) as reader:
        for conn in reader.connections:
            out.setdefault(conn.topic, [])
        for conn, t, raw in reader.messages():
            out[conn.topic].append((t, reader.deserialize(raw, conn.msgtype)))
    return out


def stamp_s(header) -> float:
    return header.stamp.sec + header.stamp.nanosec * 1e-9


@pytest.fixture(scope="module")
def session(street_world):
    from inspatio_ros.sim.rig import load_rig
    from inspatio_ros.sim.session import SimSession
    from inspatio_ros.sim.settings import SessionSettings
    from inspatio_ros.world import World

    return SimSession(World.load(street_world), load_rig(CAMERA), SessionSettings(lockstep=True, device="cpu"))


# -- the recorder alone -----------------------------------------------------------------------------
def test_sim_status_definition_is_the_msg_file():
    lines = [line.split("#")[0].strip() for line in (ROOT / "msg" / "SimStatus.msg").read_text().splitlines()]
    assert [" ".join(line.split()) for line in lines if line] == SIM_STATUS_MSG.strip().splitlines()


def test_frame_messages_are_the_bytes_the_node_publishes(session):
    """The ROS-free encoder of record/ and the node's MessageBuilder (over the DDS types) agree byte for byte."""
    from inspatio_ros.record.frame_messages import FrameEncoder, camera_topic_names
    from inspatio_ros.ros.all_outputs import camera_topics
    from inspatio_ros.ros.messages import MessageBuilder
    from ros_helpers import DdsMessageClasses

    assert camera_topic_names("front") == {k: "/" + v for k, v in camera_topics("front").items()}
    frame = session.step()
    ours = {topic: data for topic, _, data, _ in FrameEncoder().messages(frame)}
    m, cf, spec = MessageBuilder(DdsMessageClasses()), frame.cameras[0], frame.cameras[0].spec
    header = m.header(frame.stamp, spec.optical_frame)
    node = {
        "/front/camera_info": m.camera_info(header, spec.intrinsics),
        "/front/image_raw": m.image(header, cf.rgb, "rgb8"),
        "/front/depth/image": m.image(header, cf.depth, "32FC1"),
        "/front/points": m.point_cloud(header, cf.points),
        "/front/coverage": m.image(header, cf.coverage.view(np.uint8) * np.uint8(255), "mono8"),
        "/front/image_raw/compressed": m.compressed(header, cf.rgb, 90),
        "/odom": m.odometry(frame.stamp, "odom", "base_link", frame.map_from_base, frame.linear_velocity,
                            frame.angular_velocity),
        "/clock": m.clock(frame.stamp),
        "/tf": m.tf([m.transform_stamped(frame.stamp, "map", "odom", np.eye(4)),
                     m.transform_stamped(frame.stamp, "odom", "base_link", frame.map_from_base)]),
    }
    for topic, msg in node.items():
        assert ours[topic] == msg.serialize(), topic


def test_session_recording_opens_with_rosbags_and_splits_by_size(session, tmp_path):
    out = tmp_path / "sweep"
    stamps = []
    with Recorder(out, split_mb=0.2) as rec:        # ~75 KB of messages per frame: several files
        for _ in range(8):
            frame = session.step()
            stamps.append(frame.stamp)
            assert rec.write(frame)
    meta = yaml.safe_load((out / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    files = sorted(p.name for p in out.glob("*.mcap"))
    assert len(files) >= 3 and sorted(meta["relative_file_paths"]) == files
    assert all(scan(out / f).complete for f in files)
    got = read_recording(out)
    assert meta["message_count"] == sum(len(v) for v in got.values())
    assert len(got["/tf_static"]) == 1
    for topic in ("/front/image_raw", "/front/depth/image", "/front/points", "/front/coverage",
                  "/front/image_raw/compressed", "/front/camera_info", "/odom", "/tf", "/clock"):
        assert len(got[topic]) == 8, topic
    assert [stamp_s(m.header) for _, m in got["/front/image_raw"]] == pytest.approx(stamps, abs=1e-9)
    image = got["/front/image_raw"][0][1]
    assert (image.width, image.height, image.encoding) == (96, 64, "rgb8")


KILLED_WRITER = textwrap.dedent("""
    import struct, sys, time
    from inspatio_ros.record import Recorder, qos_profile
    rec = Recorder(sys.argv[1])
    i = 0
    while True:
        # std_msgs/Int64 payload i: CDR header + 4 pad bytes for the 8-aligned int64
        rec.write_cdr("/counter", "std_msgs/msg/Int64", b"\\x00\\x01\\x00\\x00" + struct.pack("<q", i),
                      qos=qos_profile("best_effort", depth=3))   # not the default: recovery keeps it
        i += 1
        if i % 20 == 0:
            print(i, time.monotonic(), flush=True)
        time.sleep(0.005)
""")


def test_sigkill_leaves_every_flushed_chunk_readable(tmp_path):
    """A recorder killed mid-run: its file lacks the footer; recovery keeps every message up to
    the last flushed chunk (chunks are flushed every second), in order and without holes."""
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(out)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    progress = []
    started = None
    for line in proc.stdout:
        count, at = line.split()
        progress.append((int(count), float(at)))
        started = started or float(at)
        if float(at) - started > 3.0:
            break
    proc.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    proc.wait()
    proc.stdout.close()
    files = list(out.glob("*.mcap"))
    assert len(files) == 1 and not scan(files[0]).complete
    counts = recover_recording(out)
    got = read_recording(out)
    values = [m.data for _, m in got["/counter"]]
    assert counts["/counter"] == len(values) > 0
    assert values == list(range(len(values)))               # in order, nothing missing before the cut
    # Lost at most what came in the last chunk_seconds (1 s) + the thread's 0.25 s wake-up + margin.
    handed_before = max(c for c, t in progress if t <= killed_at - 2.0)
    assert len(values) >= handed_before
    assert scan(files[0]).complete


def test_a_bad_record_folder_is_one_input_error(tmp_path, capsys):
    from inspatio_ros.cli import main

    full = tmp_path / "full"
    full.mkdir()
    (full / "old.mcap").write_bytes(b"x")
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for bad, says in ((full, "is not empty"), (a_file, "is a file"), (a_file / "rec", "cannot be created")):
        with pytest.raises(InputError, match=says):
            Recorder(bad)
    assert list(full.iterdir()) == [full / "old.mcap"]          # nothing written into it
    # The command line says so in one line, before starting a transport or loading a world.
    capsys.readouterr()
    assert main(["run", "--record", str(full), "--transport", "dds", "--duration", "1"]) == 2
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and "is not empty" in errors[0] and "--record" in errors[0], err


def test_recovering_a_complete_recording_changes_nothing(session, tmp_path):
    out = tmp_path / "whole"
    with Recorder(out) as rec:
        rec.write(session.step())
    before = {p.name: p.read_bytes() for p in out.glob("*.mcap")}
    recover_recording(out)
    assert {p.name: p.read_bytes() for p in out.glob("*.mcap")} == before
    with pytest.raises(InputError, match="no .mcap"):
        recover_recording(tmp_path)


# -- the node --------------------------------------------------------------------------------------
def start_node(world: Path, tmp_path: Path, record: Path, extra_params: dict | None = None,
               transport: str = "dds") -> subprocess.Popen:
    from ros_helpers import write_params

    config = write_params(tmp_path / "node.yaml", {**CAMERA, "device": "cpu", **(extra_params or {})})
    log = open(tmp_path / "node.log", "wb")
    return subprocess.Popen([sys.executable, "-m", "inspatio_ros.cli", "--device", "cpu", "run", str(world),
                             "--config", str(config), "--transport", transport, "--record", str(record)],
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def wait_recording(record: Path, proc: subprocess.Popen, seconds: float, timeout: float = 120.0) -> None:
    """Until the node has published (its files hold a chunk) and then ``seconds`` more."""
    deadline = time.monotonic() + timeout
    while sum(f.stat().st_size for f in record.glob("*.mcap")) < 64 << 10:
        assert proc.poll() is None, "the node ended before recording"
        assert time.monotonic() < deadline, "the node did not start recording"
        time.sleep(0.2)
    time.sleep(seconds)
    assert proc.poll() is None


def record_until_signal(world: Path, tmp_path: Path, record: Path, seconds: float, sig: int,
                        extra_params: dict | None = None, transport: str = "dds", timeout: float = 120.0) -> int:
    """Start the node recording into ``record``, let it record ``seconds`` once it has started,
    send it ``sig`` and return its exit status (the node is killed if it outlives the test)."""
    proc = start_node(world, tmp_path, record, extra_params, transport)
    try:
        wait_recording(record, proc, seconds, timeout)
        proc.send_signal(sig)
        return proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def check_rates(got: dict[str, list], frames_published: int) -> None:
    """Every output of the node is in the recording, each at the rate it was published."""
    from inspatio_ros.ros.all_outputs import all_outputs

    assert {"/" + t.lstrip("/") for t, _ in all_outputs("front")} | {"/tf_static"} <= set(got)
    cam = [t for t in got if t.startswith("/front/")]
    for topic in [*cam, "/tf", "/odom"]:
        assert len(got[topic]) == frames_published, topic          # every frame published is recorded
    # One message per rendered frame, at most at the camera's rate (slower when the loaded machine
    # renders slower), and logged as they were published: sim time (clock.rate 1) and the
    # wall-clock log times advance together.
    log_s = np.array([t for t, _ in got["/front/image_raw"]]) * 1e-9
    stamps = np.array([stamp_s(m.header) for _, m in got["/front/image_raw"]])
    assert np.all(np.diff(stamps) > 0)
    assert (len(stamps) - 1) / (stamps[-1] - stamps[0]) <= RATE_HZ * 1.05
    # (the first frames go out late while the renderer warms up: left out)
    slope = np.polyfit(log_s[5:] - log_s[5], stamps[5:], 1)[0]
    assert slope == pytest.approx(1.0, abs=0.1)
    span = (got["/tf"][-1][0] - got["/tf"][0][0]) * 1e-9
    for topic, hz in (("/status", 2.0), ("/diagnostics", 1.0)):   # publish.status_hz, diagnostics_hz
        # The node's loop publishes them at most at that rate (later when a render holds the loop
        # up on the loaded VM); the recording holds each once, in order.
        assert span * hz * 0.75 - 1 <= len(got[topic]) <= span * hz + 2, topic
        stamps = [stamp_s(m.header) for _, m in got[topic]]
        assert np.all(np.diff(stamps) > 0), topic
    last = {kv.key: kv.value for kv in got["/diagnostics"][-1][1].status[0].values}
    assert last["record.dropped"] == "0" and int(last["record.messages"]) > 0


def frames_published(log: str) -> int:
    return int(re.search(r"published (\d+) frames", log).group(1))


@pytest.fixture(scope="module")
def sigterm_recording(street_world, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("sigterm")
    record = tmp / "run"
    assert record_until_signal(street_world, tmp, record, 6.0, signal.SIGTERM) == 0
    return record, (tmp / "node.log").read_text()


@pytest.mark.slow
def test_sigterm_leaves_a_complete_recording_of_every_topic_at_its_rate(sigterm_recording):
    record, log = sigterm_recording
    assert all(scan(f).complete for f in record.glob("*.mcap"))
    check_rates(read_recording(record), frames_published(log))


@pytest.mark.slow
def test_ctrl_c_leaves_a_complete_recording_split_by_duration(street_world, tmp_path):
    record = tmp_path / "run"
    assert record_until_signal(street_world, tmp_path, record, 5.0, signal.SIGINT,
                               extra_params={"record.split_s": 2.0}) == 0
    files = sorted(record.glob("*.mcap"))
    assert len(files) >= 3 and all(scan(f).complete for f in files)
    check_rates(read_recording(record), frames_published((tmp_path / "node.log").read_text()))


@pytest.mark.slow
def test_the_rclpy_transport_records_its_messages_too(street_world, tmp_path):
    """rclpy's messages are serialised by rclpy (the DDS transport's by Cyclone): the same recording."""
    pytest.importorskip("rclpy")
    record = tmp_path / "run"
    assert record_until_signal(street_world, tmp_path, record, 4.0, signal.SIGTERM, transport="rclpy") == 0
    assert all(scan(f).complete for f in record.glob("*.mcap"))
    check_rates(read_recording(record), frames_published((tmp_path / "node.log").read_text()))


@pytest.mark.slow
def test_sigkill_of_the_node_leaves_the_flushed_chunks_readable(street_world, tmp_path):
    record = tmp_path / "run"
    record_until_signal(street_world, tmp_path, record, 4.0, signal.SIGKILL)
    first = record / f"{record.name}_0.mcap"
    assert not scan(first).complete
    counts = recover_recording(record)
    got = read_recording(record)
    images = got["/front/image_raw"]
    # >= 4 s recorded before the kill, of which at most the last ~1.25 s (one chunk) may be lost.
    assert counts["/front/image_raw"] == len(images) >= 2 * RATE_HZ
    assert all(m.width == 96 and m.height == 64 for _, m in images)
    stamps = np.array([stamp_s(m.header) for _, m in images])
    assert np.all(np.diff(stamps) > 0)


@pytest.mark.slow
def test_a_recording_builds_back_into_a_world(sigterm_recording, tmp_path):
    from inspatio_ros.cli import main
    from inspatio_ros.world import World

    record, log = sigterm_recording
    out = tmp_path / "again.safetensors"
    assert main(["build", str(record), "-o", str(out)]) == 0
    world = World.load(out)
    got = read_recording(record)
    assert len(world.frame_c2w) + len(world.heldout_c2w) == len(got["/front/image_raw"])
    assert (world.intrinsics.width, world.intrinsics.height) == (96, 64)
    assert len(world.static_xyz) > 1000


@pytest.mark.slow
def test_a_sixty_second_recording_holds_every_topic_at_its_rate(street_world, tmp_path):
    """The issue's 60 s recording: complete, every output at the rate it was published, nothing dropped."""
    record = tmp_path / "minute"
    assert record_until_signal(street_world, tmp_path, record, 60.0, signal.SIGTERM,
                               extra_params={"record.split_s": 30.0}, timeout=180.0) == 0
    files = sorted(record.glob("*.mcap"))
    assert len(files) >= 2 and all(scan(f).complete for f in files)
    got = read_recording(record)
    log = (tmp_path / "node.log").read_text()
    check_rates(got, frames_published(log))
    span = (got["/tf"][-1][0] - got["/tf"][0][0]) * 1e-9
    size = sum(f.stat().st_size for f in files)
    print(f"60 s recording: {span:.1f} s logged, {sum(len(v) for v in got.values())} messages, "
          f"{len(got['/front/image_raw']) / span:.2f} frames/s, {size / 2**20:.1f} MiB in {len(files)} files "
          f"({size / 2**20 / span:.2f} MiB/s); per topic: "
          + ", ".join(f"{t} {len(v) / span:.2f} Hz" for t, v in sorted(got.items())))
