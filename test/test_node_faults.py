"""Faults of the running node, across real processes (issue 21, part 3): a camera writer process
killed mid-run, SIGINT / SIGTERM, and the console line when the node runs under its target rate.
The node runs as `inspatio-ros run` in a subprocess; a real rclpy node (Fast DDS) receives."""
from __future__ import annotations

import math
import os
import re
import signal
import time
import types
from pathlib import Path

import pytest

from inspatio_ros.camera import Intrinsics
from inspatio_ros.errors import InputError
from inspatio_ros.ros import writer_process
from inspatio_ros.ros.rate_watch import RateWatch
from inspatio_ros.ros.transport import SENSOR_OUT
from inspatio_ros.ros.writer_process import CameraLayout, CameraWriters
from inspatio_ros.sim.session import SessionDiagnostics

from ros_helpers import NodeProcess, Probe, write_params

SIZE = (96, 64)


def camera(rate_hz: float, outputs=("image", "depth")) -> dict:
    return {"cameras.names": ["front"], "cameras.front.width": SIZE[0], "cameras.front.height": SIZE[1],
            "cameras.front.hfov_deg": 80.0, "cameras.front.xyz": [0.0, 0.0, 1.5], "cameras.front.rpy": [0.0, 0.0, 0.0],
            "cameras.front.rate_hz": rate_hz, "cameras.front.outputs": list(outputs)}


def wait_for_log(node: NodeProcess, pattern: str, timeout: float) -> re.Match:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(pattern, node.log())
        if m:
            return m
        assert node.alive(), node.log()
        time.sleep(0.05)
    raise AssertionError(f"no '{pattern}' in the node's log:\n{node.log()}")


def node_shm(pid: int) -> list[str]:
    """The node's shared-memory segments (named after its pid, see writer_process)."""
    return sorted(p.name for p in Path("/dev/shm").glob(f"inspatio_{pid}_*"))


def writer_processes(pid: int) -> list[int]:
    """The camera writer processes under process ``pid`` (forked by its fork server), from /proc."""
    out, todo = [], [pid]
    while todo:
        for task in Path(f"/proc/{todo.pop()}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            todo += children
            out += [c for c in children if _comm(c) == writer_process.PROCESS_NAME]
    return out


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


class Images:
    """A reliable rclpy subscription to front/image_raw that keeps, per image, when it arrived
    (monotonic) and when its writer wrote it (the DDS source timestamp, wall-clock ns)."""

    def __init__(self, probe: Probe):
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        self.arrivals: list[tuple[float, int]] = []
        probe.node.create_subscription(Image, "/front/image_raw", self._image,
                                       QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE))

    def _image(self, msg, info) -> None:
        self.arrivals.append((time.monotonic(), int(info["source_timestamp"])))

    def written_after(self, wall_ns: int) -> list[float]:
        return [t for t, source in self.arrivals if source > wall_ns]


@pytest.fixture
def probe():
    pytest.importorskip("rclpy")
    p = Probe("faults_probe")
    yield p
    p.close()


def test_killed_writer_is_restarted_and_images_resume_within_1s(street_world, tmp_path, probe):
    cfg = write_params(tmp_path / "node.yaml", {**camera(20.0), "device": "cpu", "publish.writer_process": "on"})
    images = Images(probe)
    with NodeProcess(street_world, cfg, "dds", tmp_path / "node.log") as node:
        assert probe.spin_until(lambda: len(images.arrivals) >= 10, 60, node), node.log()
        pid = int(wait_for_log(node, r"front pid (\d+)", 5).group(1))
        assert Path(f"/proc/{pid}/comm").read_text().strip() == writer_process.PROCESS_NAME

        # Images the dead writer wrote before it died may still be on their way: the next one is the
        # first written after the kill.
        killed_wall_ns = time.time_ns()
        os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()
        assert probe.spin_until(lambda: images.written_after(killed_wall_ns), 10, node), node.log()
        first = min(images.written_after(killed_wall_ns))
        print(f"kill -> first image of the restarted writer: {first - killed_at:.3f} s")
        assert first - killed_at < 1.0, node.log()
        # ... and they keep coming.
        count = len(images.arrivals)
        assert probe.spin_until(lambda: len(images.arrivals) >= count + 5, 5, node), node.log()
        log_text = node.log()
    # (A line saying the loaded VM runs the node under its rate may come too.)
    warnings = [line for line in log_text.splitlines() if "WARNING" in line and "camera writer" in line]
    assert len(warnings) == 1, log_text
    assert re.search(rf"camera writer of 'front' \(pid {pid}\) was killed by SIGKILL; \d frame\(s\) in flight "
                     r"given up; its standby \(pid \d+\) took over", warnings[0]), warnings[0]
    assert node.proc.returncode == 0, log_text
    assert node_shm(node.proc.pid) == []


class SessionNodeProcess(NodeProcess):
    """The node as the leader of a process group of its own, as a shell runs it in a terminal."""

    def __enter__(self) -> "SessionNodeProcess":
        import subprocess

        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.cmd, stdout=self._log, stderr=subprocess.STDOUT, env=self.env,
                                     start_new_session=True)
        return self


@pytest.mark.parametrize("signum,group", [(signal.SIGINT, False), (signal.SIGTERM, False), (signal.SIGINT, True)],
                         ids=["SIGINT", "SIGTERM", "Ctrl-C"])
def test_signal_ends_the_node_cleanly_within_2s(street_world, tmp_path, probe, signum, group):
    """Ctrl-C in a terminal sends SIGINT to the whole process group, writers included: they leave
    stopping to the node, which must not take them for crashed."""
    cfg = write_params(tmp_path / "node.yaml", {**camera(10.0), "device": "cpu", "publish.writer_process": "on"})
    images = Images(probe)
    with SessionNodeProcess(street_world, cfg, "dds", tmp_path / "node.log") as node:
        assert probe.spin_until(lambda: len(images.arrivals) >= 3, 60, node), node.log()
        writer = int(wait_for_log(node, r"front pid (\d+)", 5).group(1))
        assert node_shm(node.proc.pid), "the writer's shared memory is named after the node"
        deadline = time.monotonic() + 10
        while len(writers := writer_processes(node.proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert writer in writers and len(writers) == 2, f"the writer and its standby: {writers}"
        if group:
            os.killpg(node.proc.pid, signum)
        else:
            node.proc.send_signal(signum)
        sent = time.monotonic()
        rc = node.proc.wait(timeout=10)
        took = time.monotonic() - sent
        print(f"{signal.Signals(signum).name}: exit {rc} after {took:.2f} s")
        log_text = node.log()
    assert rc == 0, log_text
    assert took < 2.0, log_text
    assert "published" in log_text and "Traceback" not in log_text, log_text
    assert "camera writer of" not in log_text, "no writer taken for dead while the node stops"
    assert node_shm(node.proc.pid) == []
    assert not any(Path(f"/proc/{pid}").exists() for pid in writers), "the writer and its standby have exited"


# -- writers in this process -----------------------------------------------------------------------

def layout() -> CameraLayout:
    topics = {"image": "faults/image_raw", "camera_info": "faults/camera_info", "depth": "faults/depth/image",
              "depth_info": "faults/depth/camera_info"}
    return CameraLayout("front", "front_optical_frame", Intrinsics(50.0, 50.0, 48.0, 32.0, *SIZE), ("image", "depth"),
                        topics, {k: SENSOR_OUT for k in ("image", "camera_info", "depth")})


def submit_frame(writers: CameraWriters, stamp: float) -> None:
    arrays = writers.acquire(["front"])["front"]
    frame = types.SimpleNamespace(spec=types.SimpleNamespace(name="front"), rgb=arrays["rgb"], depth=arrays["depth"],
                                  points=None, coverage=None)
    writers.submit(stamp, [frame])


def wait_for_restart(writers: CameraWriters, old_pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while writers.pids["front"] == old_pid:
        assert time.monotonic() < deadline, "the writer was not restarted"
        writers.poll()
        time.sleep(0.01)


@pytest.mark.parametrize("standby", [True, False], ids=["standby", "fresh writer"])
def test_frames_held_by_a_dead_writer_are_given_up_and_never_block(monkeypatch, standby):
    monkeypatch.setattr(writer_process, "STANDBY", standby)
    writers = CameraWriters("faults", "", int(os.environ["ROS_DOMAIN_ID"]), [layout()], 90)
    try:
        pid = writers.pids["front"]
        os.kill(pid, signal.SIGSTOP)        # holds both slots without acknowledging them
        submit_frame(writers, 1.0)
        submit_frame(writers, 1.1)
        os.kill(pid, signal.SIGKILL)
        started = time.monotonic()
        submit_frame(writers, 1.2)          # would wait for a slot forever, were the writer alive
        assert time.monotonic() - started < 2.0
        counts = writers.counts()
        assert counts["writer_restarts"] == 1 and counts["frames_given_up"] == 2, counts
        assert writers.pids["front"] != pid
    finally:
        writers.close()


def test_a_hung_writer_is_killed_and_restarted(monkeypatch):
    monkeypatch.setattr(writer_process, "HANG_S", 0.5)
    writers = CameraWriters("faults", "", int(os.environ["ROS_DOMAIN_ID"]), [layout()], 90)
    try:
        pid = writers.pids["front"]
        os.kill(pid, signal.SIGSTOP)        # alive, but never acknowledges again
        submit_frame(writers, 1.0)
        submit_frame(writers, 1.1)
        started = time.monotonic()
        submit_frame(writers, 1.2)          # waits HANG_S for a slot, then gives up on the writer
        assert 0.4 < time.monotonic() - started < 3.0
        assert writers.pids["front"] != pid and not Path(f"/proc/{pid}/status").exists()
        assert writers.counts()["frames_given_up"] == 2
    finally:
        writers.close()


def test_a_writer_that_keeps_dying_ends_with_an_error():
    writers = CameraWriters("faults", "", int(os.environ["ROS_DOMAIN_ID"]), [layout()], 90)
    try:
        for _ in range(writer_process.MAX_RESTARTS):
            pid = writers.pids["front"]
            os.kill(pid, signal.SIGKILL)
            wait_for_restart(writers, pid)
        os.kill(writers.pids["front"], signal.SIGKILL)
        with pytest.raises(InputError, match=rf"the {writer_process.MAX_RESTARTS + 1}th death of its writers within 60 s"):
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                writers.poll()
                time.sleep(0.01)
        assert writers.counts()["writer_restarts"] == writer_process.MAX_RESTARTS
    finally:
        writers.close()


# -- under the target rate -------------------------------------------------------------------------

def diagnostics(achieved_hz: float, render_ms: float, target_hz: float = 30.0) -> SessionDiagnostics:
    slow = achieved_hz < 0.8 * target_hz
    return SessionDiagnostics(achieved_hz=achieved_hz, target_hz=target_hz, render_ms_mean=render_ms,
                              dropped_inputs=0, frames_rendered=100, sim_time=5.0, paused=False, mode="replay",
                              coverage={}, slow=slow, message="")


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def lines_over(watch: RateWatch, clock: FakeClock, seconds: float, *args) -> list[tuple[float, str]]:
    """Ask the watch 10 times a second for ``seconds`` of fake time, as the node's loop does."""
    out, start = [], clock.now
    while clock.now - start < seconds:
        if watch.due():
            line = watch.check(*args)
            if line is not None:
                out.append((clock.now - start, line))
        clock.now += 0.1
    return out


@pytest.mark.parametrize("diag,waited_ms,reason", [
    (diagnostics(12.0, 70.0), 2.0, r"render: a frame takes 70 ms to render, the period is 33 ms"),
    (diagnostics(15.0, 5.0), 50.0, r"publish: the loop waited 50 ms per frame"),
    (diagnostics(20.0, 5.0), 3.0, r"fit the 33 ms period: the CPU is busy elsewhere"),
])
def test_under_rate_warning_once_per_minute_with_the_reason(diag, waited_ms, reason, caplog):
    clock = FakeClock()
    watch = RateWatch(60.0, clock=clock)
    with caplog.at_level("WARNING", logger="inspatio_ros"):
        lines = lines_over(watch, clock, 150.0, diag, 1.0, waited_ms, 40.0, {})
    assert [round(t) for t, _ in lines] == [0, 60, 120]
    assert all(re.search(reason, line) for _, line in lines), lines
    assert f"rendering {diag.achieved_hz:.1f} Hz of 30.0 Hz" in lines[0][1]
    assert len(caplog.records) == 3


def test_under_rate_warning_names_subscriber_backpressure():
    clock = FakeClock()
    watch = RateWatch(60.0, clock=clock)
    fast = diagnostics(30.0, 5.0)
    assert lines_over(watch, clock, 5.0, fast, 1.0, 0.0, 10.0, {"camera 'front'": 0}) == []
    lines = lines_over(watch, clock, 5.0, fast, 1.0, 0.0, 10.0, {"camera 'front'": 40, "/tf": 0})
    assert len(lines) == 1
    assert re.search(r"^delivering under the target rate: rendering at 30.0 Hz; subscriber backpressure: "
                     r"40 samples of camera 'front' dropped", lines[0][1]), lines
    # No new drops within the next minute: no line at its end.
    assert lines_over(watch, clock, 70.0, fast, 1.0, 0.0, 10.0, {"camera 'front'": 40}) == []


def test_node_under_its_rate_says_so_on_the_console(street_world, tmp_path):
    """A camera at 400 Hz the CPU renderer cannot reach: the console says so, with the reason, once
    per publish.rate_warning_s (here 1 s instead of 60)."""
    cfg = write_params(tmp_path / "node.yaml", {**camera(400.0), "device": "cpu", "publish.writer_process": "off",
                                                 "publish.rate_warning_s": 1.0})
    with NodeProcess(street_world, cfg, "dds", tmp_path / "node.log") as node:
        first = wait_for_log(node, r"running under the target rate", 60)
        seen_at = time.monotonic()
        time.sleep(3.0)
        log_text = node.log()
        waited = time.monotonic() - seen_at
    lines = [line for line in log_text.splitlines() if "running under the target rate" in line]
    assert first and 2 <= len(lines) <= math.ceil(waited) + 1, lines
    assert all(re.search(r"rendering [\d.]+ Hz of 400.0 Hz; render: a frame takes \d+ ms", line) for line in lines), lines
    assert node.proc.returncode == 0


# Minutes of node processes, builds or training on 2 cores: left out of the quick loop
# (`pytest -m "not slow"`); CI runs everything.
pytestmark = pytest.mark.slow
