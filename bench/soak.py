"""Soak bench: the node with every output, two subscribers, for minutes, with injected faults.

    nice python bench/soak.py --minutes 6 --fault-every 2 [--transport dds] [--size 640x360] [--json OUT]

Runs ``inspatio-ros run`` (default world, one camera ``front`` with every output: image, depth,
points, coverage, compressed; plus odom, /tf, /clock, status, /diagnostics) and two subscriber
processes to every output: rclpy on Fast DDS (the Jazzy wheels) and Cyclone DDS (the package's
DdsTransport); see bench/soak_peers.py. After every topic has reached both subscribers the soak
clock starts; faults are injected at (k + 1/2) x ``--fault-every`` minutes, cycling through
``--faults`` (default stall, flood, kill):

* ``stall``: SIGSTOP one subscriber (rclpy and Cyclone in turn) for ``--stall-s``, then SIGCONT.
* ``flood``: a third process publishes PoseStamped to ``pose`` at ``--flood-hz`` for
  ``--flood-s``; each has a zero quaternion, so the node must drop and count every one in
  /diagnostics ``dropped_inputs`` (a valid pose in replay mode is ignored without being counted).
* ``kill``: SIGKILL of the node's camera writer process (``inspatio_writer`` in ps; the busiest
  one, not its standby; only with writer processes, i.e. the dds transport, where the soak sets
  ``publish.writer_process`` on). On a node without writer restarts the node exits or stops
  publishing: that is reported as not recovered; the bench then restarts the node itself
  (``--no-restart`` ends the run instead) so the later faults are still exercised.

A fault is recovered when every topic reached both subscribers again within the stated time
after the fault ended (``--recover-s``; kill: 1 s, the issue's target) and the node did not exit.
At the end it prints, and writes as JSON (``--json``, atomically): per topic and subscriber the
messages delivered against those published (frames: the union of stamps either subscriber got
on any per-frame topic, and the node's own /diagnostics ``frames_published``), the largest gap and
when it happened relative to the faults, node and writer RSS over time (/proc, every ~5 s) with
the growth after the first minute, CPU time of every process, and each fault's outcome.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import soak_peers  # noqa: E402

from inspatio_ros.progress import progress  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")
SUBSCRIBERS = ("rclpy", "cyclone")
# Topics with one message per rendered frame (one camera): their stamps identify frames.
FRAME_TOPICS = [t for t, _ in soak_peers.TOPICS if t.startswith("front/")] + ["odom", "/tf"]
RECOVER_S = {"kill": 1.0, "stall": 5.0, "flood": 2.0}
RSS_EVERY_S = 5.0
END_MARGIN_S = 2.0


# --- /proc ------------------------------------------------------------------------------------

def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return None


def proc_sample(pid: int) -> tuple[float, float] | None:
    """(RSS MB, CPU seconds user + system) of a live process, None when it is gone."""
    status, stat = _read(f"/proc/{pid}/status"), _read(f"/proc/{pid}/stat")
    if status is None or stat is None:
        return None
    rss = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
    fields = stat.rsplit(")", 1)[1].split()
    return rss / 1024.0, (int(fields[11]) + int(fields[12])) / CLK_TCK


def _descendants(root: int) -> list[int]:
    parent = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _read(f"/proc/{entry}/stat")
            if stat is not None:
                parent[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    out, frontier = [], [root]
    while frontier:
        children = [pid for pid, pp in parent.items() if pp in frontier]
        out += children
        frontier = children
    return out


def node_processes(node_pid: int) -> dict[int, str]:
    """The node's helper processes: pid -> "writer" or "forkserver".

    Camera writers are named ``inspatio_writer`` in /proc/PID/comm (main since the node-faults
    merge: forked from a fork server, each camera with a standby writer of the same name). Before
    that they were spawned children with only Python's name ``inspatio_camera_writer``, i.e. a
    ``spawn_main`` command line (resource_tracker and the fork server are not writers)."""
    out = {}
    for pid in _descendants(node_pid):
        comm = (_read(f"/proc/{pid}/comm") or "").strip()
        cmd = (_read(f"/proc/{pid}/cmdline") or "").replace("\0", " ")
        if comm.startswith("inspatio_writer") or "inspatio_camera_writer" in cmd:
            out[pid] = "writer"
        elif "multiprocessing.forkserver" in cmd:
            out[pid] = "forkserver"
        elif "spawn_main" in cmd and "resource_tracker" not in cmd:
            out[pid] = "writer"
    return out


def writer_pids(node_pid: int) -> list[int]:
    return sorted(pid for pid, role in node_processes(node_pid).items() if role == "writer")


def busiest_writer(node_pid: int) -> tuple[int | None, int]:
    """(the writer with the most CPU time, how many writers there are): with one camera that is
    the writing one; its standby (main since node-faults) has written nothing."""
    pids = writer_pids(node_pid)
    cpu = {pid: (proc_sample(pid) or (0.0, -1.0))[1] for pid in pids}
    return (max(cpu, key=cpu.get) if cpu else None), len(pids)


# --- processes --------------------------------------------------------------------------------

class Node:
    def __init__(self, cmd: list[str], env: dict, log_dir: Path):
        self.cmd, self.env, self.log_dir = cmd, env, log_dir
        self.proc: subprocess.Popen | None = None
        self.index = -1
        self.log_path: Path | None = None

    def start(self) -> None:
        self.index += 1
        self.log_path = self.log_dir / f"node_{self.index}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.cmd, stdout=self._log, stderr=subprocess.STDOUT, env=self.env)
        self.started = time.monotonic()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def tail(self, n: int = 8) -> list[str]:
        self._log.flush()
        return self.log_path.read_text(errors="replace").splitlines()[-n:]

    def stop(self, timeout: float = 20.0) -> dict:
        """SIGINT (as Ctrl-C); SIGKILL after ``timeout``. Writers left behind are killed by pid."""
        children = writer_pids(self.proc.pid) if self.alive() else []
        took, rc = 0.0, self.proc.poll()
        if rc is None:
            t = time.monotonic()
            self.proc.send_signal(signal.SIGINT)
            try:
                rc = self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                rc = self.proc.wait()
            took = time.monotonic() - t
        for pid in children:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._log.close()
        return {"rc": rc, "exit_s": round(took, 2)}


def node_command(args, config: Path) -> list[str]:
    cmd = [sys.executable, "-m", "inspatio_ros.cli", "--device", args.device, "run"]
    if args.world:
        cmd.append(args.world)
    return cmd + ["--config", str(config), "--transport", args.transport]


def node_params(args) -> dict:
    w, h = (int(v) for v in args.size.lower().split("x"))
    params = {"cameras.names": ["front"], "cameras.front.width": w, "cameras.front.height": h,
              "cameras.front.hfov_deg": 90.0, "cameras.front.rate_hz": args.rate,
              "cameras.front.outputs": ["image", "depth", "points", "coverage", "compressed"],
              "mode": "replay"}
    if args.transport == "dds":
        # Writer processes are on by default only for dds on CUDA; the soak wants them on the CPU
        # too, so that the writer kill exists (rclpy has none: the kill is then skipped).
        params["publish.writer_process"] = "on"
    return params


# --- the run ----------------------------------------------------------------------------------

class Soak:
    def __init__(self, args, work: Path):
        self.args, self.work = args, work
        self.env = {**os.environ, "INSPATIO_NO_PROGRESS": "1"}
        config = work / "node.yaml"
        config.write_text(yaml.safe_dump({"inspatio_ros": {"ros__parameters": node_params(args)}}), encoding="utf-8")
        self.node = Node(node_command(args, config), self.env, work)
        self.subs: dict[str, subprocess.Popen] = {}
        self.events: list[dict] = []          # node exits, restarts, "stopped publishing"
        self.faults: list[dict] = []
        self.rss: list[dict] = []
        self.cpu: dict[int, dict] = {}        # pid -> {"role", "cpu_s", "first", "last"}
        self.segments: list[dict] = []        # one per node process: start, end (monotonic)
        self._next_rss = 0.0
        self.t0 = None
        self.bar = None
        self.commit = _commit()        # of the code that ran (--reanalyse may run later code)

    def log(self, text: str) -> None:
        (self.bar.write if self.bar is not None else print)(text, file=sys.stderr)

    def status(self, kind: str) -> dict:
        try:
            return json.loads((self.work / f"{kind}.status.json").read_text())["topics"]
        except (OSError, ValueError, KeyError):
            return {}

    def start(self) -> None:
        for kind in SUBSCRIBERS:
            log = open(self.work / f"{kind}.log", "wb")
            self.subs[kind] = subprocess.Popen(
                [sys.executable, str(HERE / "soak_peers.py"), "subscriber", kind, str(self.work / f"{kind}.npz"),
                 str(self.work / f"{kind}.status.json")], stdout=log, stderr=subprocess.STDOUT, env=self.env)
        self._start_node()

    def _start_node(self) -> None:
        self.node.start()
        self.segments.append({"node": self.node.index, "pid": self.node.pid, "start": time.monotonic(), "end": None})

    def _end_segment(self) -> None:
        self.segments[-1]["end"] = time.monotonic()

    def rel(self, t: float) -> float:
        return round(t - (self.t0 if self.t0 is not None else 0.0), 2)

    def all_topics_seen(self) -> bool:
        for kind in SUBSCRIBERS:
            st = self.status(kind)
            if not st or not all(count > 0 for count, _ in st.values()):
                return False
        return True

    def sample(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now < self._next_rss:
            return
        self._next_rss = now + RSS_EVERY_S
        # "abs": monotonic time; "t" (seconds after the soak clock started) is filled in at the end,
        # since samples are taken during start-up too.
        row = {"abs": now, "node_mb": None, "writers_mb": 0.0, "writers": 0, "node": self.node.index}
        roles = []
        if self.node.alive():
            roles.append((self.node.pid, "node"))
            roles += [(pid, role) for pid, role in node_processes(self.node.pid).items()]
        roles += [(p.pid, f"sub_{k}") for k, p in self.subs.items() if p.poll() is None]
        for pid, role in roles:
            s = proc_sample(pid)
            if s is None:
                continue
            rss, cpu = s
            entry = self.cpu.setdefault(pid, {"role": role})
            entry["cpu_s"] = cpu
            if role == "node":
                row["node_mb"] = round(rss, 1)
            elif role == "writer":
                row["writers_mb"] = round(row["writers_mb"] + rss, 1)
                row["writers"] += 1
            elif role == "forkserver":
                row["forkserver_mb"] = round(rss, 1)
            else:
                row[f"{role}_mb"] = round(rss, 1)
        self.rss.append(row)

    def check_node(self) -> None:
        """A node that exited, or one alive that nothing arrives from for --dead-after seconds, is
        recorded and (unless --no-restart) restarted."""
        now = time.monotonic()
        if not self.node.alive():
            self._end_segment()
            rc = self.node.proc.returncode
            self.events.append({"t": self.rel(now), "what": f"node exited, rc {rc}", "log_tail": self.node.tail()})
            self.log(f"[soak] +{self.rel(now):.0f} s: the node exited (rc {rc}); last lines:\n  "
                     + "\n  ".join(self.node.tail(4)))
            self.node.stop()
            self._restart_or_end()
            return
        if now - self.node.started < self.args.warmup_s:
            return
        last = [r[1] for k in SUBSCRIBERS for r in [self.status(k).get("front/image_raw", [0, None])] if r[1]]
        if not last or now - max(last) > self.args.dead_after:
            self._end_segment()
            self.events.append({"t": self.rel(now), "what": f"node alive but no image on either subscriber for "
                                f"{self.args.dead_after:g} s", "log_tail": self.node.tail()})
            self.log(f"[soak] +{self.rel(now):.0f} s: the node stopped publishing; stopping it")
            self.events[-1]["stop"] = self.node.stop()
            self._restart_or_end()

    def _restart_or_end(self) -> None:
        if self.args.no_restart:
            raise RuntimeError("the node is down and --no-restart was given")
        self.events.append({"t": self.rel(time.monotonic()), "what": "node restarted by the bench"})
        self._start_node()

    def tick(self) -> None:
        self.sample()
        self.check_node()
        if self.bar is not None and self.t0 is not None:
            done = int(min(time.monotonic() - self.t0, self.total_s))
            if done > self.bar.n:
                self.bar.update(done - self.bar.n)
            st = {k: self.status(k).get("front/image_raw", [0])[0] for k in SUBSCRIBERS}
            row = self.rss[-1] if self.rss else {}
            # In the description: the project's bar format (inspatio_ros/progress.py) has no postfix.
            self.bar.set_description_str(f"soak: images {st['rclpy']}/{st['cyclone']} (rclpy/cyclone), node "
                                         f"{row.get('node_mb')} MB, faults {len(self.faults)}, node restarts "
                                         f"{len(self.segments) - 1}", refresh=False)

    def wait_until(self, t: float) -> None:
        while time.monotonic() < t:
            self.tick()
            time.sleep(min(0.25, max(0.0, t - time.monotonic())))

    # -- faults --
    def inject(self, kind: str, index: int) -> None:
        fault = {"index": index, "kind": kind, "start": time.monotonic(), "node": self.node.index}
        self.faults.append(fault)
        if kind == "stall":
            who = SUBSCRIBERS[sum(f["kind"] == "stall" for f in self.faults[:-1]) % 2]
            fault["target"] = f"{who} subscriber"
            os.kill(self.subs[who].pid, signal.SIGSTOP)
            self.wait_until(fault["start"] + self.args.stall_s)
            os.kill(self.subs[who].pid, signal.SIGCONT)
            fault["end"] = time.monotonic()
        elif kind == "flood":
            out = self.work / f"flood_{index}.json"
            proc = subprocess.Popen([sys.executable, str(HERE / "soak_peers.py"), "flood", str(self.args.flood_s),
                                     str(self.args.flood_hz), str(out)], env=self.env,
                                    stdout=subprocess.DEVNULL, stderr=open(self.work / f"flood_{index}.log", "wb"))
            while proc.poll() is None:
                self.tick()
                time.sleep(0.1)
            if out.exists():
                info = json.loads(out.read_text())
                fault.update(start=info["start"], end=info["end"], sent=info["sent"], matched=info["matched"])
            else:
                fault.update(end=time.monotonic(), sent=0, error=f"the flood process failed (rc {proc.returncode})")
        elif kind == "kill":
            # One camera: its writing writer (a standby, where the node has one, is left alone).
            pid, count = busiest_writer(self.node.pid) if self.node.alive() else (None, 0)
            fault["target"] = f"writer pid {pid} (busiest of {count})" if pid else "none"
            if pid is None:
                fault["skipped"] = "no camera writer process (writer processes are dds-only)"
            else:
                os.kill(pid, signal.SIGKILL)
            fault["end"] = time.monotonic()
        self.log(f"[soak] +{self.rel(fault['start']):.0f} s: fault {index} {kind} ({fault.get('target', '')}) "
                 f"injected, {fault['end'] - fault['start']:.1f} s")

    def run(self) -> dict:
        a = self.args
        self.total_s = a.minutes * 60.0
        self.start()
        started = time.monotonic()
        print(f"[soak] waiting for every topic on both subscribers (node start-up; up to {a.warmup_s:g} s)",
              file=sys.stderr, flush=True)
        while not self.all_topics_seen():
            if time.monotonic() - started > a.warmup_s:
                raise RuntimeError(f"not every topic reached both subscribers within {a.warmup_s:g} s: "
                                   + json.dumps({k: self.status(k) for k in SUBSCRIBERS}))
            self.sample()
            if not self.node.alive():
                raise RuntimeError("the node exited during start-up:\n" + "\n".join(self.node.tail(20)))
            time.sleep(0.5)
        self.t0 = time.monotonic()
        self.sample(force=True)
        kinds = itertools.cycle(a.faults)
        schedule = []
        k = 0
        while (k + 0.5) * a.fault_every * 60.0 < self.total_s - 30.0 and a.fault_every > 0:
            schedule.append((self.t0 + (k + 0.5) * a.fault_every * 60.0, next(kinds)))
            k += 1
        self.bar = progress(total=round(self.total_s), desc="soak", unit="s")
        try:
            for i, (when, kind) in enumerate(schedule):
                self.wait_until(when)
                self.inject(kind, i)
            self.wait_until(self.t0 + self.total_s)
        finally:
            self.bar.close()
            self.bar = None
        return self.finish()

    def finish(self) -> dict:
        self.t_end = time.monotonic()
        self.sample(force=True)
        # The node first, while its subscribers still listen: its SIGINT exit time is then the
        # one a user sees (a subscriber gone without goodbye leaves reliable writers waiting).
        alive = self.node.alive()
        stop = self.node.stop()
        self._end_segment()
        for proc in self.subs.values():
            proc.send_signal(signal.SIGCONT)
            proc.send_signal(signal.SIGUSR1)
        for kind, proc in self.subs.items():
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        # What the analysis needs besides the subscribers' records, so that --reanalyse can redo it.
        state = {k: getattr(self, k) for k in ("t0", "t_end", "segments", "faults", "events", "rss", "commit")}
        state.update(cpu={str(pid): e for pid, e in self.cpu.items()}, args=vars(self.args), alive=alive, stop=stop)
        write_json_atomic(str(self.work / "state.json"), state)
        return analyse(self, alive, stop)


# --- analysis ---------------------------------------------------------------------------------

def _gaps(recv: np.ndarray, start: float, end: float) -> tuple[np.ndarray, np.ndarray]:
    """(gap lengths, gap start times) between receives in [start, end], the window edges included."""
    t = np.concatenate([[start], recv[(recv >= start) & (recv <= end)], [end]])
    return np.diff(t), t[:-1]


def _where(soak: Soak, t: float) -> str:
    """A moment relative to the faults: 'fault 1 (stall) +0.3 s' for the latest fault started
    within 60 s before it, else 'no fault'."""
    near = [f for f in soak.faults if f["start"] - 1.0 <= t <= f["end"] + 60.0]
    if not near:
        return "no fault"
    f = near[-1]
    return f"fault {f['index']} ({f['kind']}) {t - f['start']:+.1f} s"


def _in_fault(soak: Soak, a: float, b: float) -> bool:
    """Interval [a, b] overlaps a fault's window: from 1 s before it (samples in flight) until
    --settle-s after both subscribers had every topic again (``analyse`` sets ``settled``; the next
    fault or the end when they never did)."""
    return any(a <= f["settled"] and b >= f["start"] - 1.0 for f in soak.faults)


def analyse(soak: Soak, node_alive_at_end: bool, node_stop: dict) -> dict:
    data = {}
    for kind in SUBSCRIBERS:
        path = soak.work / f"{kind}.npz"
        data[kind] = soak_peers.load(str(path)) if path.exists() else None
    t0, t1 = soak.t0, soak.t_end
    result = {"config": {k: v for k, v in vars(soak.args).items() if k != "json"},
              "machine": {"host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version()},
              "commit": soak.commit, "duration_s": round(t1 - t0, 1), "subscribers_wrote_results":
              {k: v is not None for k, v in data.items()}}

    # Frames: the union of stamps any subscriber received on a per-frame topic, per node process
    # (a restarted node starts its sim time again, so stamps are told apart by receive time).
    seg_edges = [(s["start"], s["end"] or t1) for s in soak.segments]
    first_seen: dict[tuple, float] = {}
    for kind, d in data.items():
        if d is None:
            continue
        for topic in FRAME_TOPICS:
            if topic not in d["topics"]:
                continue
            recv, stamp = d["topics"][topic]
            for r, s in zip(recv, stamp):
                seg = next((i for i, (a, b) in enumerate(seg_edges) if a <= r <= b + 5.0), -1)
                key = (seg, int(s))
                first_seen[key] = min(first_seen.get(key, r), r)
    # A frame belongs to the window when it first reached a subscriber between the soak clock's
    # start and END_MARGIN_S before the end: the subscribers are stopped one after the other, so
    # the last frames may reach one and not the other.
    frames = {key for key, r in first_seen.items() if t0 <= r <= t1 - END_MARGIN_S}
    # The node's own count: frames_published from /diagnostics (first and last in the window, per node).
    published_diag = 0
    diag_src = data.get("cyclone") or data.get("rclpy")
    if diag_src is not None and len(diag_src["diag"]):
        d = diag_src["diag"]
        for a, b in seg_edges:
            rows = d[(d[:, 0] >= max(a, t0)) & (d[:, 0] <= min(b, t1))]
            if len(rows) >= 2:
                published_diag += int(rows[-1, 2] - rows[0, 2])
    result["frames"] = {"union_of_stamps": len(frames), "frames_published_diag": published_diag,
                        "note": "frames_published: the node's counter between its first and last /diagnostics "
                                "in the window (a few frames at the edges fall outside the stamp window)"}

    # Faults: when did every topic reach each subscriber again after the fault ended.
    faults = []
    for n, f in enumerate(soak.faults):
        limit = RECOVER_S[f["kind"]]
        nxt = soak.faults[n + 1]["start"] if n + 1 < len(soak.faults) else t1
        out = {k: v for k, v in f.items() if k not in ("start", "end")}
        out.update(at_s=round(f["start"] - t0, 1), lasted_s=round(f["end"] - f["start"], 2), recover_limit_s=limit)
        resume, gap_during = {}, {}
        for kind, d in data.items():
            if d is None:
                continue
            worst, worst_topic, worst_gap = 0.0, None, 0.0
            for topic, (recv, _) in d["topics"].items():
                after = recv[(recv > f["end"]) & (recv <= nxt)]
                delay = float(after[0] - f["end"]) if len(after) else float("inf")
                if topic in ("status", "/diagnostics"):
                    delay = max(0.0, delay - 1.0)      # 2 Hz / 1 Hz topics: their own period is no delay
                if delay > worst or worst_topic is None:
                    worst, worst_topic = delay, topic
                g, s = _gaps(recv, f["start"] - 1.0, min(f["end"] + 10.0, nxt))
                worst_gap = max(worst_gap, float(g.max()))
            resume[kind] = {"resumed_after_s": None if worst == float("inf") else round(worst, 3),
                            "slowest_topic": worst_topic}
            gap_during[kind] = round(worst_gap, 2)
        exits = [e for e in soak.events if f["start"] - t0 - 1 <= e["t"] <= nxt - t0 and "restarted" not in e["what"]]
        ok = (not f.get("skipped") and bool(resume) and len(resume) == 2 and not exits
              and all(r["resumed_after_s"] is not None and r["resumed_after_s"] <= limit for r in resume.values()))
        delays = [r["resumed_after_s"] for r in resume.values()]
        f["settled"] = min(f["end"] + max(delays) + soak.args.settle_s, nxt) if delays and None not in delays else nxt
        out.update(resume=resume, largest_gap_s=gap_during, node_events=[e["what"] for e in exits],
                   recovered="skipped" if f.get("skipped") else ("yes" if ok else "NOT RECOVERED"))
        if f["kind"] == "flood" and diag_src is not None and len(diag_src["diag"]):
            d = diag_src["diag"]
            before = d[(d[:, 0] >= f["start"] - 30.0) & (d[:, 0] < f["start"])]
            during = d[(d[:, 0] >= f["start"]) & (d[:, 0] <= f["end"] + 3.0)]
            after = d[(d[:, 0] > f["end"] + 3.0) & (d[:, 0] <= f["end"] + 6.0)]
            if len(before) and len(after):
                out["dropped_inputs_counted"] = int(after[0, 3] - before[-1, 3])
            out["achieved_hz_before"] = round(float(np.nanmean(before[:, 4])), 1) if len(before) else None
            out["achieved_hz_during"] = round(float(np.nanmean(during[:, 4])), 1) if len(during) else None
            for kind, dd in data.items():
                if dd is None:
                    continue
                recv = dd["topics"]["front/image_raw"][0]
                n_before = int(((recv >= f["start"] - 30.0) & (recv < f["start"])).sum())
                n_during = int(((recv >= f["start"]) & (recv <= f["end"])).sum())
                out[f"image_hz_{kind}"] = {"before_30s": round(n_before / 30.0, 1),
                                           "during": round(n_during / max(f["end"] - f["start"], 1e-9), 1)}
        faults.append(out)
    result["faults"] = faults

    topics, missing_of = {}, {}
    for kind, d in data.items():
        if d is None:
            continue
        for topic, (recv, stamp) in d["topics"].items():
            in_win = (recv >= t0) & (recv <= t1)
            gaps, starts = _gaps(recv, t0, t1)
            i = int(np.argmax(gaps))
            outside = [g for g, s in zip(gaps, starts) if not _in_fault(soak, s, s + g)]
            row = {"delivered": int(in_win.sum()), "max_gap_s": round(float(gaps[i]), 3),
                   "max_gap_at_s": round(float(starts[i] - t0), 1), "max_gap_where": _where(soak, float(starts[i])),
                   "max_gap_outside_faults_s": round(float(max(outside)), 3) if outside else None}
            if topic in FRAME_TOPICS:
                got = set()
                for r, s in zip(recv, stamp):       # every receive: a window frame may arrive after t1
                    seg = next((j for j, (a, b) in enumerate(seg_edges) if a <= r <= b + 5.0), -1)
                    got.add((seg, int(s)))
                missing = frames - got
                outside = sorted(first_seen[key] for key in missing
                                 if not _in_fault(soak, first_seen[key], first_seen[key]))
                row["received"] = row["delivered"]
                row["published"] = len(frames)
                row["delivered"] = len(frames) - len(missing)
                row["missing"] = len(missing)
                missing_of[(kind, topic)] = missing
                row["missing_outside_faults"] = len(outside)
                row["missing_outside_faults_at_s"] = [round(t - t0, 1) for t in outside[:20]]
            topics.setdefault(topic, {})[kind] = row
    result["topics"] = topics
    # Per fault: samples of per-frame topics each subscriber lost in the fault's window.
    for f, out in zip(soak.faults, faults):
        out["samples_lost"] = {kind: sum(1 for (k, _), miss in missing_of.items() if k == kind
                                         for key in miss if f["start"] - 1.0 <= first_seen[key] <= f["settled"])
                               for kind in data if data[kind] is not None}
    window = t1 - t0
    result["expected_by_rate"] = {"status": round(2.0 * window), "/diagnostics": round(1.0 * window),
                                  "note": "status 2 Hz and /diagnostics 1 Hz (the node's defaults): no counter"}

    result["events"] = soak.events
    result["node_at_end"] = {"alive": node_alive_at_end, **node_stop}

    # Memory: growth after the first minute of each node process (the target: <= 5 %).
    for row in soak.rss:
        row["t"] = round(row.pop("abs") - t0, 1)
    mem = []
    for seg in soak.segments:
        rows = [r for r in soak.rss if r["node"] == seg["node"] and r["node_mb"] is not None]
        base_t = max(seg["start"], t0) - t0 + 60.0      # the "after the first minute"
        later = [r for r in rows if r["t"] >= base_t]
        if not later:
            continue
        b = later[0]
        both = [r["node_mb"] + r["writers_mb"] for r in later]
        mem.append({"node": seg["node"], "baseline_at_s": b["t"], "node_mb": [b["node_mb"], later[-1]["node_mb"],
                    max(r["node_mb"] for r in later)], "node_plus_writers_mb": [round(both[0], 1), round(both[-1], 1),
                    round(max(both), 1)], "minutes_after_baseline": round((later[-1]["t"] - b["t"]) / 60.0, 1),
                    "growth_pct_node": round(100.0 * (max(r["node_mb"] for r in later) / b["node_mb"] - 1.0), 1),
                    "growth_pct_node_plus_writers": round(100.0 * (max(both) / both[0] - 1.0), 1),
                    # Peak vs what stays: during an injected stall the writers legitimately hold up
                    # to their backlog (INSPATIO_DDS_WRITER_BACKLOG_MB) for the stalled reader; a
                    # leak is what is still held at the end.
                    "growth_pct_node_at_end": round(100.0 * (later[-1]["node_mb"] / b["node_mb"] - 1.0), 1),
                    "growth_pct_node_plus_writers_at_end": round(100.0 * (both[-1] / both[0] - 1.0), 1)})
    result["memory"] = {"per_node_process": mem, "samples": soak.rss,
                        "note": "[baseline, last, max] MB; writers' VmRSS includes the shared-memory slots they "
                                "touch, which the node's VmRSS counts too"}
    cpu = {}
    for pid, e in soak.cpu.items():
        c = cpu.setdefault(e["role"], {"cpu_s": 0.0, "processes": 0})
        c["cpu_s"] = round(c["cpu_s"] + e["cpu_s"], 1)
        c["processes"] += 1
    for c in cpu.values():
        c["share_of_one_core_pct"] = round(100.0 * c["cpu_s"] / max(window, 1e-9), 1)
    result["cpu"] = {**cpu, "note": "user + system seconds since each process started (start-up included), "
                                    "last sample before it ended"}
    return result


def _commit() -> str:
    try:
        return subprocess.run(["git", "-C", str(HERE.parent), "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


# --- report -----------------------------------------------------------------------------------

def report(r: dict) -> str:
    lines = [f"soak: {r['duration_s'] / 60:.1f} min, transport {r['config']['transport']}, {r['config']['size']}, "
             f"commit {r['commit']}, {r['machine']['cpus']} CPUs",
             f"frames: {r['frames']['union_of_stamps']} stamps seen on per-frame topics by either subscriber; "
             f"the node's frames_published: {r['frames']['frames_published_diag']}", "",
             "| topic | subscriber | delivered | published | missing (outside faults) | largest gap s | at | "
             "largest gap outside faults s |", "|---|---|---:|---:|---:|---:|---|---:|"]
    for topic, per in r["topics"].items():
        for kind, row in per.items():
            pub = row.get("published", r["expected_by_rate"].get(topic, "–"))
            pub = f"~{pub}" if topic in r["expected_by_rate"] else pub
            miss = f"{row['missing']} ({row['missing_outside_faults']})" if "missing" in row else "–"
            lines.append(f"| {topic} | {kind} | {row['delivered']} | {pub} | {miss} | {row['max_gap_s']:.2f} | "
                         f"{row['max_gap_where']} | {row['max_gap_outside_faults_s']} |")
    lines += ["", "| fault | kind | at s | target | resumed after s (rclpy / cyclone) | largest gap s (rclpy / "
              "cyclone) | samples lost (rclpy / cyclone) | within | recovered | notes |",
              "|---|---|---:|---|---|---|---|---:|---|---|"]
    for f in r["faults"]:
        res = " / ".join(str(f["resume"].get(k, {}).get("resumed_after_s", "–")) for k in SUBSCRIBERS)
        gaps = " / ".join(str(f["largest_gap_s"].get(k, "–")) for k in SUBSCRIBERS)
        lost = " / ".join(str(f["samples_lost"].get(k, "–")) for k in SUBSCRIBERS)
        notes = "; ".join(f["node_events"])
        if f["kind"] == "flood":
            notes = (f"sent {f.get('sent')}, node counted {f.get('dropped_inputs_counted')}, node Hz "
                     f"{f.get('achieved_hz_before')} -> {f.get('achieved_hz_during')}, images/s "
                     + ", ".join(f"{k} {f[f'image_hz_{k}']['before_30s']} -> {f[f'image_hz_{k}']['during']}"
                                 for k in SUBSCRIBERS if f"image_hz_{k}" in f) + (f"; {notes}" if notes else ""))
        if f.get("skipped"):
            notes = f["skipped"]
        lines.append(f"| {f['index']} | {f['kind']} | {f['at_s']} | {f.get('target', '')} | {res} | {gaps} | {lost} | "
                     f"{f['recover_limit_s']} s | {f['recovered']} | {notes} |")
    lines += ["", "| node process | baseline at s | node MB (baseline / last / max) | node + writers MB | "
              "minutes | growth node: peak / at end | growth node + writers: peak / at end |",
              "|---|---:|---|---|---:|---:|---:|"]
    for m in r["memory"]["per_node_process"]:
        lines.append(f"| {m['node']} | {m['baseline_at_s']} | {' / '.join(map(str, m['node_mb']))} | "
                     f"{' / '.join(map(str, m['node_plus_writers_mb']))} | {m['minutes_after_baseline']} | "
                     f"{m['growth_pct_node']} / {m.get('growth_pct_node_at_end', '–')} % | "
                     f"{m['growth_pct_node_plus_writers']} / {m.get('growth_pct_node_plus_writers_at_end', '–')} % |")
    # RSS over time: the sample nearest each whole minute (every sample is in the JSON).
    samples = [row for row in r["memory"]["samples"] if row["t"] >= 0 and row["node_mb"] is not None]
    if samples:
        picks = []
        for minute in range(int(samples[-1]["t"] // 60) + 1):
            row = min(samples, key=lambda row: abs(row["t"] - 60.0 * minute))
            if not picks or row is not picks[-1]:
                picks.append(row)
        if picks[-1] is not samples[-1]:
            picks.append(samples[-1])
        lines += ["", "| s | " + " | ".join(f"{row['t']:.0f}" for row in picks) + " |",
                  "|---|" + "---:|" * len(picks),
                  "| node MB | " + " | ".join(f"{row['node_mb']:.0f}" for row in picks) + " |",
                  "| writers MB | " + " | ".join(f"{row['writers_mb']:.0f}" for row in picks) + " |",
                  "| node process | " + " | ".join(str(row["node"]) for row in picks) + " |"]
    lines += ["", "cpu (s, % of one core over the soak): " + ", ".join(
        f"{role} {c['cpu_s']} ({c['share_of_one_core_pct']} %, {c['processes']} proc)"
        for role, c in r["cpu"].items() if isinstance(c, dict))]
    for e in r["events"]:
        lines.append(f"event at +{e['t']} s: {e['what']}")
    end = r["node_at_end"]
    lines.append(f"node at the end: alive {end['alive']}, SIGINT -> exit in {end['exit_s']} s, "
                 f"rc {end['rc']}")
    return "\n".join(lines)


def write_json_atomic(path: str, obj: dict) -> None:
    path = os.path.abspath(path)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".soak.", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, default=float)
    os.replace(tmp, path)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--minutes", type=float, default=60.0, help="soak length after start-up (default 60)")
    p.add_argument("--fault-every", type=float, default=5.0, help="minutes between faults (0: none; default 5)")
    p.add_argument("--faults", nargs="+", choices=("stall", "flood", "kill"), default=["stall", "flood", "kill"],
                   help="fault kinds, injected in this order, cycling")
    p.add_argument("--transport", choices=("dds", "rclpy"), default="dds", help="the node's transport (default dds)")
    p.add_argument("--world", default=None, help="world file (default: the embedded default world)")
    p.add_argument("--device", default="auto", help="the node's torch device (default auto)")
    p.add_argument("--size", default="640x360", help="camera WxH (default 640x360)")
    p.add_argument("--rate", type=float, default=30.0, help="camera rate asked for, Hz (default 30)")
    p.add_argument("--stall-s", type=float, default=10.0, help="how long a subscriber is stopped (default 10)")
    p.add_argument("--flood-hz", type=float, default=1000.0, help="pose flood rate (default 1000)")
    p.add_argument("--flood-s", type=float, default=5.0, help="pose flood length (default 5)")
    p.add_argument("--warmup-s", type=float, default=300.0, help="longest node start-up (default 300)")
    p.add_argument("--settle-s", type=float, default=5.0,
                   help="frames lost this long after a fault's recovery are counted as the fault's (default 5)")
    p.add_argument("--dead-after", type=float, default=30.0,
                   help="a node alive with no image on either subscriber this long is restarted (default 30)")
    p.add_argument("--no-restart", action="store_true",
                   help="end the run when the node is down instead of restarting it")
    p.add_argument("--json", default=None, help="write the results here (atomically)")
    p.add_argument("--reanalyse", default=None, metavar="DIR",
                   help="only analyse again the records a finished run kept in DIR (--keep)")
    p.add_argument("--keep", default=None, help="keep logs and receive records in this folder (default: a temp folder)")
    return p.parse_args(argv)


def reanalyse(work: Path) -> dict:
    """The analysis again from a kept folder (--keep DIR) of a finished run."""
    import types

    state = json.loads((work / "state.json").read_text())
    keys = ("t0", "t_end", "segments", "faults", "events", "rss", "commit")
    soak = types.SimpleNamespace(work=work, args=argparse.Namespace(**state["args"]),
                                 cpu={int(pid): e for pid, e in state["cpu"].items()}, **{k: state[k] for k in keys})
    return analyse(soak, state["alive"], state["stop"])


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.reanalyse:
        result = reanalyse(Path(args.reanalyse))
        if args.json:
            write_json_atomic(args.json, result)
        print(report(result))
        return 0
    if "ROS_DOMAIN_ID" not in os.environ:
        print("[soak] note: ROS_DOMAIN_ID is unset (domain 0); set one of your own to avoid cross-talk",
              file=sys.stderr)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="inspatio_soak_"))
    work.mkdir(parents=True, exist_ok=True)
    soak = Soak(args, work)
    try:
        result = soak.run()
    except BaseException:
        for proc in soak.subs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
        if soak.node.proc is not None and soak.node.proc.poll() is None:
            soak.node.stop()
        print(f"[soak] logs in {work}", file=sys.stderr)
        raise
    result["work_dir"] = str(work)
    if args.json:
        write_json_atomic(args.json, result)
    print(report(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
