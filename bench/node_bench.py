"""Node benchmark: the simulator node in its own process, measured from another through a transport.

For each image size x camera count x (with / without point clouds):
  * rate: the node free-runs in replay mode with every camera at --rate Hz; a DDS subscriber in
    this process counts the images and depth maps per camera over --seconds (after a warm-up);
  * latency: the node runs in pose + lockstep mode; this process sends a PoseStamped and times
    until every camera's image and depth with that stamp have arrived (pose in -> images out),
    --poses times; p50 / p99;
  * CPU: the node process's CPU time (user + system, its threads; not the writer processes) per
    frame published during the rate run;
  * memory: the node's resident memory (VmRSS) at the end of the rate run, and that plus the
    private memory of its camera writer processes (node + writers: the node's whole cost).
``--soak MINUTES`` instead runs one configuration that long and prints its memory every 30 s.
``--lidar MODEL`` adds one LiDAR ``top`` (sim/lidar.py preset, at ``--lidar-rate`` Hz) to every
configuration: its clouds are counted like the images (LiDAR Hz) and the latency waits for its
cloud too.

The subscriber is the built-in DDS transport for both node transports, so the numbers are the
node's (a Fast DDS subscriber with OS-default socket buffers drops 1080p frames on its own side).

usage: python bench/node_bench.py [--world W] [--transport dds rclpy] [--sizes 640x360 ...]
                                  [--cameras 1 3] [--points both|on|off] [--device auto]
                                  [--lidar VLP-16|HDL-64E|OS1-64|solid_state] [--lidar-rate 10]
"""
from __future__ import annotations

import argparse
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from inspatio_ros.runtime import keep_freed_memory  # noqa: E402


LIDAR = "top"


def rig_parameters(n: int, size: tuple[int, int], rate: float, points: bool, lidar: str = "",
                   lidar_rate: float = 10.0) -> dict:
    names = ["front", "left", "right"][:n] if n <= 3 else [f"cam{i}" for i in range(n)]
    params = {"cameras.names": names}
    if lidar:
        params.update({"lidars.names": [LIDAR], f"lidars.{LIDAR}.model": lidar,
                       f"lidars.{LIDAR}.rate_hz": float(lidar_rate), f"lidars.{LIDAR}.xyz": [0.0, 0.0, 1.9]})
    yaws = {"front": 0.0, "left": math.pi / 2, "right": -math.pi / 2}
    for name in names:
        params.update({f"cameras.{name}.width": size[0], f"cameras.{name}.height": size[1],
                       f"cameras.{name}.hfov_deg": 90.0, f"cameras.{name}.xyz": [0.0, 0.0, 1.5],
                       f"cameras.{name}.rpy": [0.0, 0.0, float(yaws.get(name, 0.0))],
                       f"cameras.{name}.rate_hz": float(rate),
                       f"cameras.{name}.outputs": ["image", "depth", "points"] if points else ["image", "depth"]})
    return params


class Node:
    def __init__(self, world, params: dict, transport: str, device: str, extra=()):
        self.dir = Path(tempfile.mkdtemp(prefix="node_bench_"))
        cfg = self.dir / "node.yaml"
        cfg.write_text(yaml.safe_dump({"inspatio_ros": {"ros__parameters": {**params, "device": device}}}))
        cmd = [sys.executable, "-m", "inspatio_ros.cli", "run", "--config", str(cfg), "--transport", transport, *extra]
        if world:
            cmd.insert(4, str(world))
        self.log = open(self.dir / "node.log", "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)

    def cpu_s(self) -> float:
        """CPU seconds (user + system) the node process has used so far (its threads included)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return float("nan")

    def rss_mb(self) -> float:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return float("nan")

    def with_writers_mb(self) -> float:
        """The node's RSS plus the private memory of the processes under it (the camera writers, the
        fork server they are started from, multiprocessing's resource tracker): what the node costs
        as a whole (their shared frame slots are in the node's RSS already)."""
        total = self.rss_mb()
        todo = [int(c) for task in self._tasks(self.proc.pid) for c in self._children(task)]
        seen = set()
        while todo:
            pid = todo.pop()
            if pid in seen:
                continue
            seen.add(pid)
            try:
                for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                    if line.startswith(("Private_Clean:", "Private_Dirty:")):
                        total += int(line.split()[1]) / 1024
            except OSError:
                continue
            todo += [int(c) for task in self._tasks(pid) for c in self._children(task)]
        return total

    @staticmethod
    def _tasks(pid: int) -> list[Path]:
        try:
            return list(Path(f"/proc/{pid}/task").iterdir())
        except OSError:
            return []

    @staticmethod
    def _children(task: Path) -> list[str]:
        try:
            return (task / "children").read_text().split()
        except OSError:
            return []

    def check(self):
        if self.proc.poll() is not None:
            self.log.flush()
            raise SystemExit(f"node exited:\n{(self.dir / 'node.log').read_text()[-3000:]}")

    def close(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()


SUBSCRIBER = r"""
import sys, time
sys.path.insert(0, {root!r})
from inspatio_ros.runtime import keep_freed_memory
keep_freed_memory()
from inspatio_ros.ros.dds import DdsTransport
from inspatio_ros.ros.transport import SENSOR_OUT
t = DdsTransport("node_bench_" + {cam!r}, announce_node=False)
out = open({path!r}, "w", buffering=1)
for kind, type_name, topic in {topics!r}:
    t.create_subscription(type_name, topic, lambda m, kind=kind: out.write(
        f"{{kind}} {{m.header.stamp.sec}} {{m.header.stamp.nanosec}} {{time.perf_counter()}}\n"), SENSOR_OUT)
while True:
    t.spin_once(0.01)
"""


class Subscribers:
    """One subscriber process per camera (a Python DDS reader deserialising 1080p frames is itself
    CPU-bound: one process for all cameras would measure the reader, not the node). Receipt times
    are perf_counter (CLOCK_MONOTONIC), comparable across processes."""

    def __init__(self, names, lidars=()):
        self.dir = Path(tempfile.mkdtemp(prefix="node_bench_sub_"))
        self.paths = {c: self.dir / f"{c}.txt" for c in (*names, *lidars)}
        self.kinds = {c: ("image", "depth") for c in names}
        self.kinds.update({c: ("lidar",) for c in lidars})
        topics = {c: [("image", "sensor_msgs/msg/Image", f"/{c}/image_raw"),
                      ("depth", "sensor_msgs/msg/Image", f"/{c}/depth/image")] for c in names}
        topics.update({c: [("lidar", "sensor_msgs/msg/PointCloud2", f"/{c}/points")] for c in lidars})
        self.procs = [subprocess.Popen([sys.executable, "-c", SUBSCRIBER.format(root=str(ROOT), cam=c, path=str(p),
                                                                                topics=topics[c])])
                      for c, p in self.paths.items()]

    def records(self):
        """{(sensor, kind): [(stamp_sec, stamp_nanosec, t_recv), ...]}; kind image, depth or lidar"""
        got = {}
        for cam, path in self.paths.items():
            for kind in self.kinds[cam]:
                got[(cam, kind)] = []
            if path.exists():
                for line in path.read_text().splitlines():
                    parts = line.split()
                    if len(parts) == 4:
                        got[(cam, parts[0])].append((int(parts[1]), int(parts[2]), float(parts[3])))
        return got

    def close(self):
        for p in self.procs:
            p.kill()
            p.wait()


def memory_by_mapping(pid: int, top: int = 12) -> str:
    """The process's resident memory (/proc/PID/smaps) summed per mapping kind: shared-memory
    frame slots, each library, [heap], anonymous, GPU driver mappings; the largest first."""
    groups: dict[str, float] = {}
    name = "?"
    try:
        lines = Path(f"/proc/{pid}/smaps").read_text().splitlines()
    except OSError as exc:
        return f"(smaps of {pid} unreadable: {exc})"
    for line in lines:
        head = line.split(None, 5)
        if len(head) >= 5 and "-" in head[0] and not head[0].endswith(":"):
            path = head[5].strip() if len(head) == 6 else ""
            if path.startswith(("/dev/shm/", "/psm_", "/inspatio_")):
                name = "shared-memory slots"
            elif path.startswith("/dev/nvidia"):
                name = "GPU driver mappings (/dev/nvidia*)"
            elif ".so" in path:
                name = Path(path).name.split(".so")[0] + ".so"
            elif path == "":
                name = "anonymous"
            else:
                name = path if path.startswith("[") else Path(path).name
        elif line.startswith("Rss:"):
            groups[name] = groups.get(name, 0.0) + int(line.split()[1]) / 1024
    rows = sorted(groups.items(), key=lambda kv: -kv[1])
    total = sum(groups.values())
    out = [f"node {pid} resident by mapping (total {total:.0f} MB):"]
    out += [f"  {mb:8.1f} MB  {name}" for name, mb in rows[:top]]
    out.append(f"  {sum(mb for _, mb in rows[top:]):8.1f} MB  ({len(rows) - top} others)")
    return "\n".join(out)


def wait_for(cond, seconds, node: Node | None = None, poll=0.05) -> bool:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        if node is not None:
            node.check()
        if cond():
            return True
        time.sleep(poll)
    return cond()


def measure_rate(world, transport, size, n, points, rate, seconds, device, warmup, extra=None, smaps=False,
                 lidar="", lidar_rate=10.0):
    params = {**rig_parameters(n, size, rate, points, lidar, lidar_rate), **(extra or {})}
    names = params["cameras.names"]
    lidars = params.get("lidars.names", [])
    subs = Subscribers(names, lidars)
    node = Node(world, params, transport, device)
    try:
        if not wait_for(lambda: all(len(v) >= 5 for v in subs.records().values()), warmup, node, 0.5):
            raise SystemExit(f"no images within {warmup} s:\n{(node.dir / 'node.log').read_text()[-2000:]}")
        time.sleep(2.0)                          # past compilation / first-frame effects
        start, cpu_start = time.perf_counter(), node.cpu_s()
        time.sleep(seconds)
        end, cpu_end = time.perf_counter(), node.cpu_s()
        rss = (node.rss_mb(), node.with_writers_mb())
        if smaps:
            print(memory_by_mapping(node.proc.pid), flush=True)
        got = subs.records()
    finally:
        node.close()
        subs.close()
    hz = {k: sum(start <= t <= end for _, _, t in v) / (end - start) for k, v in got.items()}
    lidar_hz = min((hz[(c, "lidar")] for c in lidars), default=float("nan"))
    # The node's CPU time per frame it published: what a frame costs whatever share of a busy
    # machine the node got (on 2 shared cores the rate alone measures the neighbours).
    frames = max(hz[(c, "image")] for c in names) * (end - start)
    cpu_ms = (cpu_end - cpu_start) * 1e3 / frames if frames else float("nan")
    return min(hz[(c, "image")] for c in names), min(hz[(c, "depth")] for c in names), rss, lidar_hz, cpu_ms


def measure_latency(world, transport, size, n, points, poses, device, warmup, extra=None, lidar="", lidar_rate=10.0):
    from inspatio_ros.ros.dds import DdsTransport
    from inspatio_ros.ros.transport import SENSOR_IN

    params = {**rig_parameters(n, size, 30.0, points, lidar, lidar_rate), **(extra or {}), "mode": "pose",
              "lockstep": True, "input.max_jump": 0.0}
    names = params["cameras.names"]
    subs = Subscribers(names, params.get("lidars.names", []))
    pub_t = DdsTransport("node_bench_pose", announce_node=False)
    pose_pub = pub_t.create_publisher("geometry_msgs/msg/PoseStamped", "/pose", SENSOR_IN)
    Pose = pub_t.message_class("geometry_msgs/msg/PoseStamped")
    node = Node(world, params, transport, device)
    lat = []
    try:
        wait_for(lambda: pose_pub.subscription_count() > 0, warmup, node)
        time.sleep(1.0)
        for i in range(poses + 3):
            msg = Pose()
            msg.header.frame_id = "map"
            msg.header.stamp.sec, msg.header.stamp.nanosec = 1 + i, 0
            msg.pose.position.x = 0.01 * i
            sent = time.perf_counter()
            pose_pub.publish(msg)

            def arrived(i=i):
                return all(any(s == 1 + i for s, _, _ in v) for v in subs.records().values())
            if not wait_for(arrived, warmup if i == 0 else 10.0, node, 0.002):
                if i == 0:
                    continue                          # the first pose may precede discovery
                raise SystemExit(f"pose {i}: no images within 10 s")
            last = max(t for v in subs.records().values() for s, _, t in v if s == 1 + i)
            if i >= 3:                                # the first renders compile / warm caches
                lat.append((last - sent) * 1e3)
    finally:
        node.close()
        subs.close()
        pub_t.shutdown()
    return float(np.percentile(lat, 50)), float(np.percentile(lat, 99))


def soak(world, transport, size, n, points, rate, minutes, device, extra=None):
    params = {**rig_parameters(n, size, rate, points), **(extra or {})}
    names = params["cameras.names"]
    subs = Subscribers(names)          # every camera read, as in the rate rows
    node = Node(world, params, transport, device)
    try:
        print("| minute | images/s (slowest camera) | node RSS MB | node + writers MB |\n|---:|---:|---:|---:|",
              flush=True)
        t_end = time.monotonic() + minutes * 60
        while time.monotonic() < t_end:
            start = time.perf_counter()
            wait_for(lambda: False, 30.0, node, 0.5)
            end = time.perf_counter()
            records = subs.records()
            hz = min(sum(start <= t <= end for _, _, t in records[(name, "image")]) for name in names) / (end - start)
            print(f"| {minutes - (t_end - time.monotonic()) / 60:.1f} | {hz:.1f} | {node.rss_mb():.0f} | "
                  f"{node.with_writers_mb():.0f} |", flush=True)
    finally:
        node.close()
        subs.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--world", default="", help="world file (default: the embedded default world)")
    ap.add_argument("--transport", nargs="+", default=["dds"], choices=["dds", "rclpy"])
    ap.add_argument("--sizes", nargs="+", default=["640x360", "1280x720", "1920x1080"])
    ap.add_argument("--cameras", nargs="+", type=int, default=[1, 3])
    ap.add_argument("--points", choices=["both", "on", "off"], default="both")
    ap.add_argument("--rate", type=float, default=60.0, help="each camera's target rate (Hz)")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--poses", type=int, default=30, help="latency samples per configuration")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--warmup", type=float, default=120.0, help="seconds allowed for start-up + compile")
    ap.add_argument("--soak", type=float, default=0.0, help="minutes: memory soak of the first configuration")
    ap.add_argument("--no-latency", action="store_true")
    ap.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                    help="extra node parameter for every run (VALUE read as YAML), e.g. qos.depth.depth=2")
    ap.add_argument("--smaps", action="store_true", help="print the node's resident memory by mapping after each rate run")
    ap.add_argument("--lidar", default="", help="add one LiDAR 'top' of this model (sim/lidar.py preset)")
    ap.add_argument("--lidar-rate", type=float, default=10.0, help="the LiDAR's sweep rate (Hz; divides --rate)")
    args = ap.parse_args()
    keep_freed_memory()
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", str(150 + os.getpid() % 50))
    if not args.world:
        from inspatio_ros.demo import ensure_default_world

        args.world = str(ensure_default_world(device="cpu" if args.device == "cpu" else "auto"))
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes]
    extra = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--param {item!r}: expected KEY=VALUE")
        extra[key] = yaml.safe_load(value)
    points = {"both": [False, True], "on": [True], "off": [False]}[args.points]
    world_mb = Path(args.world).stat().st_size / 2**20
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    print(f"node_bench: world {args.world} ({world_mb:.0f} MB), device {args.device} ({gpu}), "
          f"{os.cpu_count()} CPUs, target {args.rate:g} Hz per camera"
          + (f", LiDAR {args.lidar} at {args.lidar_rate:g} Hz" if args.lidar else "") + f", {time.strftime('%Y-%m-%d')}"
          + (f", parameters {extra}" if extra else ""), flush=True)
    if args.soak > 0:
        soak(args.world, args.transport[0], sizes[0], args.cameras[0], points[0], args.rate, args.soak, args.device,
             extra)
        return 0
    # load: the 1-minute load average when the configuration started and when it ended (the node
    # under test adds up to ~2 of it); wall rates mean little beside a high one, CPU ms/frame less so.
    print("| transport | size | cameras | clouds | image Hz/cam | depth Hz/cam | LiDAR Hz | node CPU ms/frame "
          "| latency p50 ms | p99 ms | node RSS MB | node + writers MB | load |")
    print("|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|", flush=True)
    for transport in args.transport:
        for size in sizes:
            for n in args.cameras:
                for pts in points:
                    load_before = os.getloadavg()[0]
                    img_hz, dep_hz, rss, lidar_hz, cpu_ms = measure_rate(
                        args.world, transport, size, n, pts, args.rate, args.seconds, args.device, args.warmup, extra,
                        args.smaps, args.lidar, args.lidar_rate)
                    p50 = p99 = float("nan")
                    if not args.no_latency:
                        p50, p99 = measure_latency(args.world, transport, size, n, pts, args.poses, args.device,
                                                   args.warmup, extra, args.lidar, args.lidar_rate)
                    print(f"| {transport} | {size[0]}x{size[1]} | {n} | {'yes' if pts else 'no'} | {img_hz:.1f} | "
                          f"{dep_hz:.1f} | {lidar_hz:.1f} | {cpu_ms:.0f} | {p50:.1f} | {p99:.1f} | {rss[0]:.0f} | "
                          f"{rss[1]:.0f} | {load_before:.1f}-{os.getloadavg()[0]:.1f} |",
                          flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
