"""Camera messages written by separate processes (one per camera), fed through shared memory
(DDS transport).

Why: a Cyclone DDS write holds the GIL while it copies and fragments a multi-megabyte sample, so
in one process the writes of 3 x 1080p frames stall the render loop (measured: the renderer's
Python thread ran at ~37 % speed next to a thread writing 8 MB depth maps). Here the node copies
each rendered frame into one of two shared-memory slots (numpy copies release the GIL) and sends
the slot number and stamp through a pipe; the writer process builds the messages on the shared
arrays without copying them and writes them; its acknowledgement frees the slot.

Only camera outputs (image, depth, points, coverage, compressed, camera_info) go through here;
TF, odometry, /clock, status and diagnostics stay with the node.

Faults: a writer that dies (a crash, SIGKILL) is seen by the node when its pipe closes; a standby
writer of the same camera, started long before and so already discovered by the subscribers, takes
over at once, and a new standby is forked from the fork server. The frames the dead writer held
are given up (counted), frames rendered while no writer is ready are skipped (counted), and the
node never waits for it. More than MAX_RESTARTS deaths of one camera's writers within
RESTART_WINDOW_S end the node with an error instead of a restart loop. The node stops its writers
itself (SIGINT to its process group, as Ctrl-C sends, leaves them running until it does).
"""
from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
import secrets
import signal
import sys
import time
import types
from collections import deque
from dataclasses import dataclass
from multiprocessing import shared_memory
from typing import Any

import numpy as np

from ..errors import InputError

log = logging.getLogger("inspatio_ros")

SLOTS = 2
# One camera's writers (writing or standby) are replaced at most MAX_RESTARTS times within
# RESTART_WINDOW_S; the next death ends the node with an error: a writer that crashes on every frame
# must not respawn forever.
MAX_RESTARTS = 3
RESTART_WINDOW_S = 60.0
# A writer that holds a frame this long without acknowledging it is taken for hung (stopped, deadlocked)
# and killed, then replaced like one that died. Its DDS writes never wait (ros/dds.py), so a frame
# takes it milliseconds to tens of milliseconds (one writer for all of 3 x 1080p kept ~30 Hz on the
# H100 machine).
HANG_S = 5.0
# Each camera has a standby writer (DDS participant and publishers made, writing nothing) that takes
# over when its writer dies. Why: a new writer is ready 0.1-0.2 s after the death, but a Fast DDS
# subscriber (rclpy's default) discovered it only 0.04-0.94 s later (measured on the 2-core VM:
# kill -> next image at an rclpy subscriber 0.13-1.25 s without a standby); a Cyclone DDS one at once.
# It costs one process per camera (~8 MB private memory, forked), a second, silent publisher per topic
# and a DDS participant (on localhost Cyclone has 33 participant indices per domain: node, writers,
# standbys and subscribers of the host share them). INSPATIO_WRITER_STANDBY=0 turns it off.
STANDBY = os.environ.get("INSPATIO_WRITER_STANDBY", "1").strip() != "0"
# The writers' name in ps / top / /proc/PID/comm (at most 15 characters).
PROCESS_NAME = "inspatio_writer"
# How often a writer gives its heap's whole free pages back to the OS (see _writer_main).
TRIM_INTERVAL_S = 5.0
# What the fork server imports once, so that a forked writer starts with it loaded (no torch here).
_PRELOAD = ["inspatio_ros.ros.writer_process", "inspatio_ros.ros.dds", "inspatio_ros.ros.messages",
            "inspatio_ros.runtime"]


@dataclass(frozen=True)
class CameraLayout:
    """What the writer needs to know of one camera (picklable)."""

    name: str
    optical_frame: str
    intrinsics: Any            # camera.Intrinsics
    outputs: tuple[str, ...]
    topics: dict
    qos: dict                  # output kind -> transport.Qos
    lens: Any = None           # lens.Lens of a distorted camera (camera_info's model and D), None: pinhole
    rate_hz: float = 30.0      # how often its messages are written (sizes the DDS backlog)

    def arrays(self) -> dict[str, tuple[tuple[int, ...], str]]:
        h, w = self.intrinsics.height, self.intrinsics.width
        shapes = {"rgb": ((h, w, 3), "u1"), "depth": ((h, w), "<f4")}
        if "points" in self.outputs:
            shapes["points"] = ((h, w, 4), "<f4")
        if "coverage" in self.outputs:
            shapes["coverage"] = ((h, w), "?")
        return shapes

    def largest_sample_bytes(self) -> int:
        """Serialized bytes of its largest message, payload only (a cloud: 16 B a point)."""
        h, w = self.intrinsics.height, self.intrinsics.width
        per_pixel = {"image": 3, "compressed": 3, "depth": 4, "coverage": 1, "points": 16}
        return h * w * max((per_pixel.get(o, 0) for o in self.outputs), default=3)


def _views(shm_by_key: dict, layouts: list[CameraLayout]) -> list[dict[str, dict[str, np.ndarray]]]:
    """views[slot][camera][array] -> numpy views onto the shared memory."""
    out = []
    for slot in range(SLOTS):
        per_cam = {}
        for lay in layouts:
            arrs = {}
            for key, (shape, dtype) in lay.arrays().items():
                shm = shm_by_key[(lay.name, key)]
                size = int(np.prod(shape)) * np.dtype(dtype).itemsize
                arrs[key] = np.ndarray(shape, dtype, buffer=shm.buf, offset=slot * size)
            per_cam[lay.name] = arrs
        out.append(per_cam)
    return out


def publish_cameras(builder, pubs: dict, stamp: float, layouts: list[CameraLayout],
                    arrays: dict[str, dict[str, np.ndarray]], jpeg_quality: int) -> None:
    """Build and write one frame's camera messages (shared by the node and the writer process)."""
    for lay in layouts:
        p = pubs[lay.name]
        a = arrays[lay.name]
        header = builder.header(stamp, lay.optical_frame)
        p["camera_info"].publish(builder.camera_info(header, lay.intrinsics, lay.lens))
        if "image" in p:
            p["image"].publish(builder.image(header, a["rgb"], "rgb8"))
        if "depth" in p:
            p["depth"].publish(builder.image(header, a["depth"], "32FC1"))
            p["depth_info"].publish(builder.camera_info(header, lay.intrinsics, lay.lens))
        if "points" in p and a.get("points") is not None:
            p["points"].publish(builder.point_cloud(header, a["points"]))
        if "coverage" in p and a.get("coverage") is not None:
            p["coverage"].publish(builder.image(header, a["coverage"].view(np.uint8) * np.uint8(255), "mono8"))
        if "compressed" in p:
            p["compressed"].publish(builder.compressed(header, a["rgb"], jpeg_quality))


def camera_publishers(transport, layout: CameraLayout) -> dict[str, Any]:
    """The publishers of one camera's outputs (topics and QoS from its layout)."""
    pub, t, q = transport.create_publisher, layout.topics, layout.qos
    pubs = {"camera_info": pub("sensor_msgs/msg/CameraInfo", t["camera_info"], q["camera_info"])}
    if "image" in layout.outputs:
        pubs["image"] = pub("sensor_msgs/msg/Image", t["image"], q["image"])
    if "depth" in layout.outputs:
        pubs["depth"] = pub("sensor_msgs/msg/Image", t["depth"], q["depth"])
        pubs["depth_info"] = pub("sensor_msgs/msg/CameraInfo", t["depth_info"], q["camera_info"])
    if "points" in layout.outputs:
        pubs["points"] = pub("sensor_msgs/msg/PointCloud2", t["points"], q["points"])
    if "coverage" in layout.outputs:
        pubs["coverage"] = pub("sensor_msgs/msg/Image", t["coverage"], q["coverage"])
    if "compressed" in layout.outputs:
        pubs["compressed"] = pub("sensor_msgs/msg/CompressedImage", t["compressed"], q["compressed"])
    return pubs


@contextlib.contextmanager
def _without_main_module():
    """Start spawned children without re-importing the parent's __main__.

    Why: a spawned child imports the parent's main module first (a script that starts the node
    in-process, e.g. a benchmark, imports PyTorch and the renderer there), which cost a writer
    ~60 MB of memory and seconds of start-up it never uses; its target lives in this module."""
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def _context():
    """Writer processes are forked from multiprocessing's fork server, which has imported what they need.

    Why: a spawned writer starts a fresh interpreter and imports numpy, Cyclone DDS and the message
    types first: 0.7-0.9 s to ready on the 2-core VM, so a writer that crashed could not be back
    within a second. Forked from the server it is ready in about 0.1 s. The server is itself started
    as a fresh interpreter (never fork the node: it may hold a CUDA context) and imports only _PRELOAD."""
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    return ctx


def _set_process_name(name: str) -> None:
    try:
        import ctypes

        ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)      # PR_SET_NAME
    except (OSError, AttributeError):
        pass


class _Stop(Exception):
    """SIGTERM in a writer process."""


def _writer_main(conn, node_name: str, namespace: str, domain_id: int, layouts: list[CameraLayout],
                 shm_names: dict, jpeg_quality: int) -> None:
    # The node stops its writers through the pipe once it has taken their last acknowledgements, and
    # a writer whose node died sees the pipe close. A Ctrl-C in a terminal sends SIGINT to the whole
    # process group: the writer leaves it to the node. SIGTERM (a service manager stopping the group,
    # multiprocessing ending leftover children at exit) ends it cleanly: DDS entities deleted.
    def _terminate(signum, frame):
        raise _Stop

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _terminate)
    _set_process_name(PROCESS_NAME)

    from ..runtime import keep_freed_memory, release_large_blocks, return_free_memory
    from .dds import DdsTransport, writer_backlog_bytes
    from .messages import MessageBuilder

    # Which way the writer's malloc treats its few large blocks per frame (the serialised samples
    # DDS keeps until acknowledged): "keep" them in the heap for reuse (no page faults, but the
    # heap holds its peak), or "release" them to the OS on free (bounded memory, page faults).
    if os.environ.get("INSPATIO_WRITER_MALLOC", "keep") == "release":
        release_large_blocks()
    else:
        keep_freed_memory()
    shms = {key: shared_memory.SharedMemory(name=name) for key, name in shm_names.items()}
    # The backlog in time, not bytes: each topic of this camera keeps the same seconds for a
    # reader that lags (ros/dds.py, WRITER_BACKLOG_S).
    backlog = max(writer_backlog_bytes(lay.largest_sample_bytes(), lay.rate_hz) for lay in layouts)
    transport = DdsTransport(node_name, namespace, domain_id=domain_id, announce_node=False,
                             writer_backlog=backlog)
    try:
        builder = MessageBuilder(transport)
        pubs = {lay.name: camera_publishers(transport, lay) for lay in layouts}
        every_pub = [p for per_cam in pubs.values() for p in per_cam.values()]
        views = _views(shms, layouts)
        conn.send(("ready",))
        last_trim = time.monotonic()
        while True:
            job = conn.recv()
            if job is None:
                break
            slot, stamp, names = job
            started = time.perf_counter()
            publish_cameras(builder, pubs, stamp, [lay for lay in layouts if lay.name in names], views[slot],
                            jpeg_quality)
            # "keep" holds the heap at its peak for good: after a reliable subscriber stalled, the
            # samples DDS kept for it (up to the writer backlog, 32 MiB) stayed resident after they
            # were acknowledged, and the soak's node + writers RSS ended 7.9 % up. Giving whole
            # free pages back every few seconds bounds that to one interval's worth, at the cost of
            # re-faulting the per-frame blocks once per interval (a few MB, < 1 ms).
            if time.monotonic() - last_trim > TRIM_INTERVAL_S:
                return_free_memory()
                last_trim = time.monotonic()
            # With the acknowledgement: how many samples its DDS writers have dropped so far because
            # readers did not keep up (the node reports subscriber backpressure from it).
            conn.send(("done", slot, time.perf_counter() - started, sum(p.dropped for p in every_pub)))
    except (EOFError, BrokenPipeError, _Stop):
        pass
    finally:
        transport.shutdown()
        for shm in shms.values():
            shm.close()


def _how_it_ended(exitcode: int | None) -> str:
    if exitcode is None:
        return "closed its pipe"
    if exitcode < 0:
        try:
            return f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with code {exitcode}"


class CameraWriterProcess:
    """The node's side: shared-memory slots, the writer process, slot bookkeeping, restarts."""

    def __init__(self, node_name: str, namespace: str, domain_id: int, layouts: list[CameraLayout],
                 jpeg_quality: int, start_timeout_s: float = 60.0, wait: bool = True, pin_memory: bool = False):
        self.layouts = layouts
        self.name = ", ".join(f"'{lay.name}'" for lay in layouts)
        self._shms = {}
        self._pinned: list[int] = []
        # Named after the node's pid, so that what a killed node leaves in /dev/shm is recognisable.
        prefix = f"inspatio_{os.getpid()}_{secrets.token_hex(3)}"
        for lay in layouts:
            for key, (shape, dtype) in lay.arrays().items():
                size = int(np.prod(shape)) * np.dtype(dtype).itemsize
                shm = self._shms[(lay.name, key)] = shared_memory.SharedMemory(
                    name=f"{prefix}_{lay.name}_{key}", create=True, size=SLOTS * size)
                if pin_memory:
                    # The renderer copies from the GPU straight into these slots (no staging copy).
                    from ..runtime import pin_host_memory

                    whole = np.frombuffer(shm.buf, np.uint8)
                    address = whole.ctypes.data
                    del whole                 # no export of shm.buf may outlive close()
                    if pin_host_memory(address, SLOTS * size):
                        self._pinned.append(address)
        self._views = _views(self._shms, layouts)
        self._args = (node_name, namespace, domain_id, layouts, {key: shm.name for key, shm in self._shms.items()},
                      jpeg_quality)
        self._reserved: int | None = None
        self._next = 0
        self.write_s: deque = deque(maxlen=1000)   # seconds per frame written (recent)
        self._stopping = False                   # the node is stopping: a death is final
        self._was_ready = False                  # a writer that never started is not restarted
        self.restarts = 0
        self._restart_times: deque = deque()
        self.frames_given_up = 0                 # in the slots of a writer when it died
        self.frames_skipped = 0                  # rendered while a restarted writer was not ready yet
        self.dropped = 0                         # samples its DDS writers dropped (last reported)
        self._dropped_before = 0                 # ... by the writers before the current one
        self._died_at: float | None = None
        self._standby: tuple | None = None        # (process, pipe) of the standby writer
        self._standby_ready = False
        self._start()
        if wait:
            self.wait_ready(start_timeout_s)

    def _spawn(self) -> tuple:
        ctx = _context()
        conn, child = ctx.Pipe()
        proc = ctx.Process(target=_writer_main, name="inspatio_camera_writer", daemon=True, args=(child, *self._args))
        with _without_main_module():
            proc.start()
        child.close()
        return proc, conn

    def _start(self, writer: tuple | None = None, ready: bool = False) -> None:
        """Make ``writer`` (a new one when None) the one that writes; its slots all free."""
        self._proc, self._conn = writer if writer is not None else self._spawn()
        self._busy = [False] * SLOTS
        self._on_done: list = [None] * SLOTS      # per slot: called with the wall time it was written
        self._ready = ready
        self._dead = False

    def _start_standby(self) -> None:
        if STANDBY and not self._stopping:
            self._standby, self._standby_ready = self._spawn(), False

    def _poll_standby(self) -> None:
        """Take the standby's ready message; one that died is replaced (within the restart budget)."""
        if self._standby is None:
            return
        proc, conn = self._standby
        try:
            while conn.poll(0):
                self._standby_ready = conn.recv() == ("ready",) or self._standby_ready
            return
        except (EOFError, OSError):
            pass
        proc.join(timeout=1.0)
        with contextlib.suppress(OSError):
            conn.close()
        self._standby = None
        if self._stopping:
            return
        if self._over_budget(time.monotonic()):
            log.warning("standby camera writer of %s (pid %d) %s; running without one", self.name, proc.pid,
                        _how_it_ended(proc.exitcode))
            return
        self._restart_times.append(time.monotonic())
        self._start_standby()
        log.warning("standby camera writer of %s (pid %d) %s; started another (pid %d)", self.name, proc.pid,
                    _how_it_ended(proc.exitcode), self._standby[0].pid)

    def _over_budget(self, now: float) -> bool:
        while self._restart_times and now - self._restart_times[0] > RESTART_WINDOW_S:
            self._restart_times.popleft()
        return len(self._restart_times) >= MAX_RESTARTS

    @property
    def pid(self) -> int:
        return self._proc.pid

    def wait_ready(self, timeout_s: float) -> None:
        """Wait for the writer's DDS participant and publishers; on failure clean up and raise."""
        deadline = time.monotonic() + timeout_s
        while not self._ready and not self._dead:
            left = deadline - time.monotonic()
            if left <= 0 or not self._collect(left):
                break
        if self._ready and self._standby is None:
            self._start_standby()
        if not self._ready:
            self.close()
            raise RuntimeError("the camera writer process did not start (see its error above); "
                               "set publish.writer_process off to write from the node's own process")

    def _handle(self, msg) -> None:
        if msg[0] == "ready":
            self._ready = self._was_ready = True
            if self._died_at is not None:
                log.info("camera writer of %s is back (pid %d), %.2f s after it died", self.name, self.pid,
                         time.monotonic() - self._died_at)
                self._died_at = None
        elif msg[0] == "done":
            _, slot, seconds, dropped = msg
            self._busy[slot] = False
            self.write_s.append(seconds)
            self.dropped = self._dropped_before + dropped
            done, self._on_done[slot] = self._on_done[slot], None
            if done is not None:
                done(time.perf_counter())

    def _collect(self, timeout: float | None) -> bool:
        """Take the writer's messages that have arrived, waiting up to ``timeout`` (None: forever)
        for the first. False when nothing came in time or the writer died (then it is restarted
        where allowed)."""
        if self._dead:
            return False
        try:
            if not self._conn.poll(timeout):
                return False
            while True:
                self._handle(self._conn.recv())
                if not self._conn.poll(0):
                    return True
        except (EOFError, OSError):            # its end of the pipe closed: it has exited
            self._lost()
            return False

    def _lost(self, how: str | None = None) -> None:
        """The writer died: give up the frames it held; restart it unless the node is stopping."""
        if self._dead:
            return
        self._dead = True
        old = self._proc
        old.join(timeout=1.0)                  # it has closed its pipe: exiting, if not gone
        if old.exitcode is None:
            old.kill()
            old.join(timeout=1.0)
        given_up = sum(self._busy)
        self.frames_given_up += given_up
        self._busy = [False] * SLOTS
        self._on_done = [None] * SLOTS
        self._dropped_before = self.dropped
        with contextlib.suppress(OSError):
            self._conn.close()
        how = how or _how_it_ended(old.exitcode)
        if self._stopping or not self._was_ready:
            return
        now = time.monotonic()
        if self._over_budget(now):
            raise InputError(
                f"the camera writer of {self.name} (pid {old.pid}) {how}: the {MAX_RESTARTS + 1}th death of its "
                f"writers within {RESTART_WINDOW_S:g} s; not replacing it again",
                "see the writer's error above; set publish.writer_process off to write from the node's own process")
        self._restart_times.append(now)
        self.restarts += 1
        self._died_at = now
        self._poll_standby()
        if self._standby is not None:
            standby, self._standby = self._standby, None
            self._start(standby, ready=self._standby_ready)
            took_over = f"its standby (pid {self.pid}) took over"
        else:
            self._start()
            took_over = f"restarted it as pid {self.pid}"
        if self._ready:
            self._died_at = None
        self._start_standby()
        log.warning("camera writer of %s (pid %d) %s; %d frame(s) in flight given up; %s",
                    self.name, old.pid, how, given_up, took_over)

    def poll(self) -> None:
        """Take the writer's acknowledgements that have arrived (frees slots, runs on_done); a writer
        that has died is seen here (its pipe closed) and replaced."""
        self._collect(0)
        self._poll_standby()

    def acquire(self) -> dict[str, dict[str, np.ndarray]]:
        """Reserve the next slot (waiting until the writer has written what it held) and return its
        arrays (camera name -> array name -> array) for the renderer to fill; ``submit`` hands it over.
        Never waits for a writer that died: its slots are given up."""
        if self._reserved is None:
            slot = self._next
            self._collect(0)
            deadline = time.monotonic() + HANG_S
            while self._busy[slot]:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._lost(f"did not acknowledge a frame for {HANG_S:g} s and was killed")
                    break
                self._collect(left)
            self._reserved = slot
        return self._views[self._reserved]

    def submit(self, stamp: float, cameras: list, on_done=None) -> None:
        """Hand one frame (CameraFrame list) to the writer: in the slot ``acquire`` reserved (arrays
        already there are not copied again) or in the next free one; ``on_done(wall_time)`` runs
        (on a later submit/poll/flush) once the writer has written it. A frame that reaches a
        restarted writer before it is ready is skipped (counted; on_done never runs)."""
        views = self.acquire()
        slot, self._reserved = self._reserved, None
        if not self._ready:
            self.frames_skipped += 1
            return
        for cf in cameras:
            v = views[cf.spec.name]
            for key, array in (("rgb", cf.rgb), ("depth", cf.depth), ("points", cf.points),
                               ("coverage", cf.coverage)):
                if key in v and array is not None and array is not v[key]:
                    np.copyto(v[key], array)
        self._busy[slot] = True
        self._on_done[slot] = on_done
        self._next = (slot + 1) % SLOTS
        try:
            self._conn.send((slot, stamp, [cf.spec.name for cf in cameras]))
        except OSError:                        # it died: this frame is given up with the rest
            self._lost()

    def flush(self, timeout_s: float | None = None) -> None:
        """Wait (up to ``timeout_s``) until the writer has acknowledged every frame it holds."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while any(self._busy) and not self._dead:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            self._collect(left)

    def stop_restarts(self) -> None:
        """The node is stopping: a writer that dies from now on stays dead (e.g. killed with the
        node's process group)."""
        self._stopping = True

    def request_stop(self) -> None:
        """Ask the writer to finish (after the frames it holds) and exit; a death is now final."""
        self._stopping = True
        if not self._dead:
            with contextlib.suppress(OSError):
                self._conn.send(None)
        if self._standby is not None:
            with contextlib.suppress(OSError):
                self._standby[1].send(None)

    def close(self, timeout_s: float = 1.0) -> None:
        """Stop the writer (waiting up to ``timeout_s`` for its acknowledgements and exit, then
        killing it), release and unlink the shared memory."""
        deadline = time.monotonic() + timeout_s
        self._stopping = True
        self.flush(timeout_s)
        self.request_stop()
        for proc, conn in [(self._proc, self._conn)] + ([self._standby] if self._standby is not None else []):
            proc.join(timeout=max(0.05, deadline - time.monotonic()))
            if proc.exitcode is None:
                proc.kill()
                proc.join()
            with contextlib.suppress(OSError):
                conn.close()
        self._standby = None
        if self._pinned:
            from ..runtime import unpin_host_memory

            for address in self._pinned:
                unpin_host_memory(address)
            self._pinned = []
        for shm in self._shms.values():
            shm.close()
            with contextlib.suppress(FileNotFoundError):
                shm.unlink()
        self._shms = {}


class CameraWriters:
    """One writer process per camera, used like one CameraWriterProcess.

    Why: at 3 x 1920x1080 a single writer builds and writes 43.5 MB of messages per frame, and
    its pace (~30 Hz on the H100 machine) set the node's rate while a render took ~5 ms. Each
    camera's writer has its own DDS participant and shared-memory slots; a frame is done (its
    ``on_done`` runs) when every writer it went to has acknowledged it.
    """

    def __init__(self, node_name: str, namespace: str, domain_id: int, layouts: list[CameraLayout],
                 jpeg_quality: int, start_timeout_s: float = 60.0, pin_memory: bool = False):
        self.writers: dict[str, CameraWriterProcess] = {}
        try:
            for lay in layouts:     # start them all, then wait: each start imports and discovers
                self.writers[lay.name] = CameraWriterProcess(node_name, namespace, domain_id, [lay], jpeg_quality,
                                                             wait=False, pin_memory=pin_memory)
            for w in self.writers.values():
                w.wait_ready(start_timeout_s)
        except BaseException:                  # also Ctrl-C while they start
            self.close()
            raise

    @property
    def write_s(self) -> list[float]:
        return [t for w in self.writers.values() for t in w.write_s]

    @property
    def page_locked(self) -> bool:
        """Every writer's slots are page-locked for CUDA (asked for with pin_memory, and granted)."""
        return all(w._pinned for w in self.writers.values())

    @property
    def pids(self) -> dict[str, int]:
        return {name: w.pid for name, w in self.writers.items()}

    def counts(self) -> dict[str, int]:
        """Restarts, frames given up / skipped, and samples dropped for slow readers, over all writers."""
        ws = self.writers.values()
        return {"writer_restarts": sum(w.restarts for w in ws),
                "frames_given_up": sum(w.frames_given_up for w in ws),
                "frames_skipped": sum(w.frames_skipped for w in ws),
                "samples_dropped": sum(w.dropped for w in ws)}

    def acquire(self, names) -> dict[str, dict[str, np.ndarray]]:
        """The arrays of a free slot of each named camera's writer (see CameraWriterProcess.acquire)."""
        return {name: self.writers[name].acquire()[name] for name in names}

    def submit(self, stamp: float, cameras: list, on_done=None) -> None:
        groups: dict[str, list] = {}
        for cf in cameras:
            groups.setdefault(cf.spec.name, []).append(cf)
        pending = [len(groups), 0.0]          # writers still to acknowledge, latest acknowledgement

        def one_done(wall_time: float) -> None:
            pending[0] -= 1
            pending[1] = max(pending[1], wall_time)
            if pending[0] == 0 and on_done is not None:
                on_done(pending[1])

        for name, cfs in groups.items():
            self.writers[name].submit(stamp, cfs, one_done)

    def poll(self) -> None:
        for w in self.writers.values():
            w.poll()

    def flush(self, timeout_s: float | None = None) -> None:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        for w in self.writers.values():
            w.flush(None if deadline is None else max(0.0, deadline - time.monotonic()))

    def stop_restarts(self) -> None:
        for w in self.writers.values():
            w.stop_restarts()

    def close(self, timeout_s: float = 1.0) -> None:
        """Stop every writer within about ``timeout_s`` (together, not one after another)."""
        deadline = time.monotonic() + timeout_s
        self.stop_restarts()
        self.flush(timeout_s)
        for w in self.writers.values():
            w.request_stop()
        for w in self.writers.values():
            w.close(max(0.05, deadline - time.monotonic()))
