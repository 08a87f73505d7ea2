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
"""
from __future__ import annotations

import contextlib
import multiprocessing as mp
import sys
import time
import types
from dataclasses import dataclass
from multiprocessing import shared_memory
from typing import Any

import numpy as np

SLOTS = 2


@dataclass(frozen=True)
class CameraLayout:
    """What the writer needs to know of one camera (picklable)."""

    name: str
    optical_frame: str
    intrinsics: Any            # camera.Intrinsics
    outputs: tuple[str, ...]
    topics: dict
    qos: dict                  # output kind -> transport.Qos

    def arrays(self) -> dict[str, tuple[tuple[int, ...], str]]:
        h, w = self.intrinsics.height, self.intrinsics.width
        shapes = {"rgb": ((h, w, 3), "u1"), "depth": ((h, w), "<f4")}
        if "points" in self.outputs:
            shapes["points"] = ((h, w, 4), "<f4")
        if "coverage" in self.outputs:
            shapes["coverage"] = ((h, w), "?")
        return shapes


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
        p["camera_info"].publish(builder.camera_info(header, lay.intrinsics))
        if "image" in p:
            p["image"].publish(builder.image(header, a["rgb"], "rgb8"))
        if "depth" in p:
            p["depth"].publish(builder.image(header, a["depth"], "32FC1"))
            p["depth_info"].publish(builder.camera_info(header, lay.intrinsics))
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


def _writer_main(conn, node_name: str, namespace: str, domain_id: int, layouts: list[CameraLayout],
                 shm_names: dict, jpeg_quality: int) -> None:
    import os

    from ..runtime import keep_freed_memory, release_large_blocks
    from .dds import DdsTransport
    from .messages import MessageBuilder

    # Which way the writer's malloc treats its few large blocks per frame (the serialised samples
    # DDS keeps until acknowledged): "keep" them in the heap for reuse (no page faults, but the
    # heap holds its peak), or "release" them to the OS on free (bounded memory, page faults).
    if os.environ.get("INSPATIO_WRITER_MALLOC", "keep") == "release":
        release_large_blocks()
    else:
        keep_freed_memory()
    shms = {key: shared_memory.SharedMemory(name=name) for key, name in shm_names.items()}
    transport = DdsTransport(node_name, namespace, domain_id=domain_id, announce_node=False)
    try:
        builder = MessageBuilder(transport)
        pubs = {lay.name: camera_publishers(transport, lay) for lay in layouts}
        views = _views(shms, layouts)
        conn.send(("ready",))
        while True:
            job = conn.recv()
            if job is None:
                break
            slot, stamp, names = job
            started = time.perf_counter()
            publish_cameras(builder, pubs, stamp, [lay for lay in layouts if lay.name in names], views[slot],
                            jpeg_quality)
            conn.send(("done", slot, time.perf_counter() - started))
    except (EOFError, KeyboardInterrupt):
        pass
    finally:
        transport.shutdown()
        for shm in shms.values():
            shm.close()


class CameraWriterProcess:
    """The node's side: shared-memory slots, the writer process, slot bookkeeping."""

    def __init__(self, node_name: str, namespace: str, domain_id: int, layouts: list[CameraLayout],
                 jpeg_quality: int, start_timeout_s: float = 60.0, wait: bool = True, pin_memory: bool = False):
        self.layouts = layouts
        self._shms = {}
        self._pinned: list[int] = []
        for lay in layouts:
            for key, (shape, dtype) in lay.arrays().items():
                size = int(np.prod(shape)) * np.dtype(dtype).itemsize
                shm = self._shms[(lay.name, key)] = shared_memory.SharedMemory(create=True, size=SLOTS * size)
                if pin_memory:
                    # The renderer copies from the GPU straight into these slots (no staging copy).
                    from ..runtime import pin_host_memory

                    whole = np.frombuffer(shm.buf, np.uint8)
                    address = whole.ctypes.data
                    del whole                 # no export of shm.buf may outlive close()
                    if pin_host_memory(address, SLOTS * size):
                        self._pinned.append(address)
        self._views = _views(self._shms, layouts)
        self._reserved: int | None = None
        ctx = mp.get_context("spawn")          # never fork a process that holds a CUDA context
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_writer_main, name="inspatio_camera_writer", daemon=True, args=(
            child, node_name, namespace, domain_id, layouts,
            {key: shm.name for key, shm in self._shms.items()}, jpeg_quality))
        with _without_main_module():
            self._proc.start()
        child.close()
        self._busy = [False] * SLOTS
        self._next = 0
        self._on_done: list = [None] * SLOTS      # per slot: called with the wall time it was written
        self.write_s: list[float] = []
        if wait:
            self.wait_ready(start_timeout_s)

    def wait_ready(self, timeout_s: float) -> None:
        """Wait for the writer's DDS participant and publishers; on failure clean up and raise."""
        try:
            ready = self._conn.poll(timeout_s) and self._conn.recv() == ("ready",)
        except (EOFError, OSError):
            ready = False
        if not ready:
            self.close()
            raise RuntimeError("the camera writer process did not start (see its error above); "
                               "set publish.writer_process off to write from the node's own process")

    def _collect(self, block: bool) -> None:
        while self._conn.poll(None if block else 0):
            msg = self._conn.recv()
            if msg[0] == "done":
                self._busy[msg[1]] = False
                self.write_s.append(msg[2])
                done, self._on_done[msg[1]] = self._on_done[msg[1]], None
                if done is not None:
                    done(time.perf_counter())
            block = False

    def poll(self) -> None:
        """Take the writer's acknowledgements that have arrived (frees slots, runs on_done)."""
        self._collect(block=False)

    def acquire(self) -> dict[str, dict[str, np.ndarray]]:
        """Reserve the next slot (waiting until the writer has written what it held) and return its
        arrays (camera name -> array name -> array) for the renderer to fill; ``submit`` hands it over."""
        if self._reserved is None:
            slot = self._next
            self._collect(block=False)
            while self._busy[slot]:
                if not self._proc.is_alive():
                    raise RuntimeError("the camera writer process died")
                self._collect(block=True)
            self._reserved = slot
        return self._views[self._reserved]

    def submit(self, stamp: float, cameras: list, on_done=None) -> None:
        """Hand one frame (CameraFrame list) to the writer: in the slot ``acquire`` reserved (arrays
        already there are not copied again) or in the next free one; ``on_done(wall_time)`` runs
        (on a later submit/poll/flush) once the writer has written it."""
        views = self.acquire()
        slot, self._reserved = self._reserved, None
        for cf in cameras:
            v = views[cf.spec.name]
            for key, array in (("rgb", cf.rgb), ("depth", cf.depth), ("points", cf.points),
                               ("coverage", cf.coverage)):
                if key in v and array is not None and array is not v[key]:
                    np.copyto(v[key], array)
        self._busy[slot] = True
        self._on_done[slot] = on_done
        self._next = (slot + 1) % SLOTS
        self._conn.send((slot, stamp, [cf.spec.name for cf in cameras]))

    def flush(self) -> None:
        while any(self._busy) and self._proc.is_alive():
            self._collect(block=True)

    def close(self) -> None:
        try:
            if self._proc.is_alive():
                self.flush()
                self._conn.send(None)
                self._proc.join(timeout=10)
        except (BrokenPipeError, EOFError, OSError):
            pass
        if self._proc.is_alive():
            self._proc.kill()
            self._proc.join()
        if self._pinned:
            from ..runtime import unpin_host_memory

            for address in self._pinned:
                unpin_host_memory(address)
            self._pinned = []
        for shm in self._shms.values():
            shm.close()
            shm.unlink()


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
        except Exception:
            self.close()
            raise

    @property
    def write_s(self) -> list[float]:
        return [t for w in self.writers.values() for t in w.write_s]

    @property
    def page_locked(self) -> bool:
        """Every writer's slots are page-locked for CUDA (asked for with pin_memory, and granted)."""
        return all(w._pinned for w in self.writers.values())

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

    def flush(self) -> None:
        for w in self.writers.values():
            w.flush()

    def close(self) -> None:
        for w in self.writers.values():
            w.close()
