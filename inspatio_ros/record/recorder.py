"""Record what the simulator publishes into a rosbag2 recording (MCAP storage), without ROS.

A :class:`Recorder` owns one recording folder laid out as ``ros2 bag record -s mcap`` lays it out:
``metadata.yaml`` beside ``<folder>_0.mcap``, ``<folder>_1.mcap``, ... (a new file when one
reaches ``split_mb`` or spans ``split_s`` seconds). Messages are ROS 2 CDR with the ROS message
definitions as schemas, so ``rosbags``, ``ros2 bag``, Foxglove and ``inspatio-ros build`` read it.

Callers never wait on the disk: :meth:`Recorder.write_message` puts the message on a bounded queue
(``queue_mb``) that one thread serialises and writes; when the queue is full the message is
dropped and counted per topic (:attr:`Recorder.dropped`; the node reports it in /diagnostics),
never blocking the publisher. Log times are wall-clock nanoseconds when the message was handed
over, as ``ros2 bag record`` stamps receive times; header stamps stay in the messages.

Closing (:meth:`Recorder.close`, also on Ctrl-C / SIGTERM through the node) drains the queue and
writes every file's footer and the final metadata.yaml. After a kill (SIGKILL, power cut) the
files hold every chunk flushed (a chunk is flushed at 1 s of messages or 4 MiB); the last file
lacks a footer until :func:`recover_recording` (``python -m inspatio_ros.record.recover DIR``)
rewrites it and metadata.yaml.

``SimSession`` users record a :class:`~inspatio_ros.sim.simulator.SensorFrame` with
:meth:`Recorder.write` (the node's topics and frame ids); the node records its publishers' messages
as they are published (ros/outputs.py).
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import InputError
from .mcap import McapWriter, recover, scan

log = logging.getLogger("inspatio_ros")

# The node's own message (msg/SimStatus.msg, without its comments); a test checks they agree.
SIM_STATUS_MSG = """std_msgs/Header header
string world
float64 sim_time
float64 rate
bool paused
string mode
float64 achieved_hz
"""
SIM_STATUS = "inspatio_ros_interfaces/msg/SimStatus"
METADATA = "metadata.yaml"


def qos_profile(reliability: str = "reliable", durability: str = "volatile", depth: int = 10) -> dict:
    """One offered QoS profile as rosbag2 (metadata version 9) writes it."""
    never = {"sec": 0, "nsec": 0}
    return {"history": "keep_last", "depth": int(depth), "reliability": reliability, "durability": durability,
            "deadline": never, "lifespan": never, "liveliness": "automatic",
            "liveliness_lease_duration": never, "avoid_ros_namespace_conventions": False}


_TYPESTORE = None
_TYPESTORE_LOCK = threading.Lock()


def typestore():
    """rosbags' Jazzy message definitions plus SimStatus (for the schemas and type hashes)."""
    global _TYPESTORE
    with _TYPESTORE_LOCK:
        if _TYPESTORE is None:
            from rosbags.typesys import Stores, get_types_from_msg, get_typestore

            store = get_typestore(Stores.ROS2_JAZZY)
            store.register(get_types_from_msg(SIM_STATUS_MSG, SIM_STATUS))
            _TYPESTORE = store
        return _TYPESTORE


def check_record_dir(directory: str | Path) -> Path:
    """The recording folder, if it can be one: new or empty, and writable. Else one InputError."""
    path = Path(directory).expanduser()
    fix = "give --record (record.dir) a new folder, e.g. recordings/run1"
    if path.exists() and not path.is_dir():
        raise InputError(f"record folder {path} is a file", fix)
    if path.is_dir() and any(path.iterdir()):
        raise InputError(f"record folder {path} is not empty (a recording is never overwritten)", fix)
    parent = path if path.is_dir() else next((p for p in path.parents if p.exists()), Path("."))
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"record folder {path} cannot be created or written ({parent} is not writable)", fix)
    return path


def default_serializer(msg) -> bytes:
    """CDR bytes (with the encapsulation header) of a message of either transport."""
    if hasattr(msg, "serialize"):                  # Cyclone IDL structs (ros/dds_types.py)
        return msg.serialize()
    from rclpy.serialization import serialize_message   # rclpy messages (only on that transport)

    return serialize_message(msg)


def _size_hint(msg) -> int:
    """About the bytes a message holds: its uint8[] payload (bytes, array.array, numpy) and a bit."""
    try:
        return 512 + memoryview(getattr(msg, "data", None)).nbytes
    except TypeError:                              # no buffer payload: a small message
        return 512


@dataclass
class _Topic:
    channel_id: int
    msgtype: str
    qos: dict


class Recorder:
    """One recording folder (see the module docstring). Thread-safe ``write_message``."""

    def __init__(self, directory: str | Path, *, split_mb: float = 0.0, split_s: float = 0.0,
                 queue_mb: float = 256.0, chunk_seconds: float = 1.0, chunk_mb: float = 4.0,
                 frame_ids=None, jpeg_quality: int = 90):
        self.dir = check_record_dir(directory)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"record folder {self.dir} cannot be created ({exc.strerror})",
                             "give --record (record.dir) a folder in a writable place") from None
        self.split_bytes = int(split_mb * (1 << 20)) if split_mb > 0 else 0
        self.split_ns = int(split_s * 1e9) if split_s > 0 else 0
        self.queue_bytes = int(queue_mb * (1 << 20))
        self.chunk_seconds, self.chunk_bytes = chunk_seconds, int(chunk_mb * (1 << 20))
        self.topics: dict[str, _Topic] = {}
        self.dropped: dict[str, int] = {}
        self.written = 0
        self.bytes_written = 0
        self._files: list[dict] = []                  # per closed/open file: path, counts, times
        self._writer: McapWriter | None = None
        self._file_start_ns = 0
        self._queue: deque = deque()
        self._queued_bytes = 0
        self._cond = threading.Condition()
        self._closing = False
        self._error: BaseException | None = None
        self._encoder = None                          # FrameEncoder of write(frame), made at its first call
        self._frame_ids, self._jpeg_quality = frame_ids, jpeg_quality
        self._open_file()
        self._write_metadata()
        self._thread = threading.Thread(target=self._run, name="inspatio_record", daemon=True)
        self._thread.start()

    # -- the caller's side -------------------------------------------------------------------
    def write_message(self, topic: str, msgtype: str, msg: Any, *, qos: dict | None = None,
                      serialize: Callable[[Any], bytes] = default_serializer, size_hint: int | None = None,
                      log_time_ns: int | None = None) -> bool:
        """Queue one message (serialised on the recorder's thread); False when dropped (queue full)."""
        return self._put(("msg", topic, msgtype, qos, msg, serialize, log_time_ns or time.time_ns()),
                         _size_hint(msg) if size_hint is None else size_hint, topic)

    def write_cdr(self, topic: str, msgtype: str, data: bytes, *, qos: dict | None = None,
                  log_time_ns: int | None = None) -> bool:
        """Queue one message already serialised (CDR with its encapsulation header)."""
        return self.write_message(topic, msgtype, data, qos=qos, serialize=bytes, size_hint=len(data),
                                  log_time_ns=log_time_ns)

    def write(self, frame) -> bool:
        """Record one :class:`SensorFrame` as the node publishes it: each camera's outputs, /tf,
        odom and /clock (and /tf_static for cameras not seen before), stamped with the frame's
        sim time, with the ``frame_ids`` (:class:`~inspatio_ros.sim.settings.FrameIds`) and
        ``jpeg_quality`` given to the constructor. False when dropped (queue full).
        The frame's arrays are copied, so the caller may reuse its buffers at once."""
        from .frame_messages import FrameEncoder

        if self._encoder is None:
            self._encoder = FrameEncoder(self._frame_ids, self._jpeg_quality)
        copied = _copy_frame(frame)
        size = sum(a.nbytes for cf in copied.cameras for a in (cf.rgb, cf.depth, cf.points, cf.coverage)
                   if a is not None)
        return self._put(("frame", copied, time.time_ns()), size, "frame")

    def _put(self, item: tuple, size: int, topic: str) -> bool:
        with self._cond:
            if self._error is not None:           # recording stopped (logged once): count, never fail the caller
                self.dropped[topic] = self.dropped.get(topic, 0) + 1
                return False
            if self._closing:
                raise RuntimeError("the recorder is closed")
            if self._queued_bytes + size > self.queue_bytes and self._queue:
                self.dropped[topic] = self.dropped.get(topic, 0) + 1
                return False
            self._queue.append((item, size))
            self._queued_bytes += size
            self._cond.notify()
        return True

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    def counts(self) -> dict[str, float]:
        """Diagnostics values: messages written and dropped, MiB written, files."""
        return {"record.messages": self.written, "record.dropped": self.dropped_total,
                "record.mib": round(self.bytes_written / (1 << 20), 1), "record.files": len(self._files)}

    def close(self) -> None:
        """Write what is queued, the last file's footer and metadata.yaml. Idempotent."""
        with self._cond:
            if self._closing:
                already = True
            else:
                already, self._closing = False, True
                self._cond.notify()
        if not already:
            self._thread.join()
        if self._writer is not None and self._error is not None:
            self._writer.abandon()                 # the failing file as it is (recover_recording reads it)
            self._writer = None
        if self._writer is not None:
            self._close_file()
            self._write_metadata()
            log.info("recording %s: %d messages in %d file(s), %.1f MiB%s", self.dir, self.written,
                     len(self._files), self.bytes_written / (1 << 20),
                     f", {self.dropped_total} dropped (queue full)" if self.dropped_total else "")
        if self._error is not None:
            raise RuntimeError(f"recording to {self.dir} failed: {self._error}") from self._error

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- the recorder's thread ---------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._queue and not self._closing:
                        # Wake up to flush a chunk that has waited its time, so a kill loses little.
                        if not self._cond.wait(timeout=0.25):
                            break
                    batch = list(self._queue)
                    self._queue.clear()
                    self._queued_bytes = 0
                    closing = self._closing
                for (item, _size) in batch:
                    self._handle(item)
                writer = self._writer
                if writer is not None and writer.chunk_age_ns(time.time_ns()) >= self.chunk_seconds * 1e9:
                    writer.flush_chunk()
                if closing and not batch:
                    return
        except BaseException as exc:              # a full disk, say: stop recording, keep the node running
            self._error = exc
            log.error("recording to %s stopped: %s", self.dir, exc)
            with self._cond:
                self._closing = True
                self._queue.clear()

    def _handle(self, item: tuple) -> None:
        if item[0] == "msg":
            _, topic, msgtype, qos, msg, serialize, log_time = item
            self._write(topic, msgtype, serialize(msg), log_time, qos)
        else:
            _, frame, log_time = item
            for topic, msgtype, data, qos in self._encoder.messages(frame):
                self._write(topic, msgtype, data, log_time, qos)

    def _write(self, topic: str, msgtype: str, data: bytes, log_time: int, qos: dict | None) -> None:
        if not self._writer.message_count:
            self._file_start_ns = log_time          # a file's duration counts from its first message
        elif ((self.split_bytes and self._writer.size >= self.split_bytes)
              or (self.split_ns and log_time - self._file_start_ns >= self.split_ns)):
            self._close_file()
            self._open_file()
            self._write_metadata()
            self._file_start_ns = log_time
        entry = self.topics.get(topic)
        if entry is None:
            entry = self.topics[topic] = _Topic(len(self.topics) + 1, msgtype, qos or qos_profile())
            self._add_channel(self._writer, topic, entry)
        elif entry.msgtype != msgtype:
            raise ValueError(f"topic {topic} was {entry.msgtype}, now {msgtype}")
        self._writer.write(entry.channel_id, log_time, data)
        self.written += 1
        self.bytes_written += len(data)

    def _add_channel(self, writer: McapWriter, topic: str, entry: _Topic) -> None:
        import yaml

        store = typestore()
        if entry.msgtype not in writer.schema_ids:
            text, _ = store.generate_msgdef(entry.msgtype, ros_version=2)
            writer.add_schema(len(writer.schema_ids) + 1, entry.msgtype, "ros2msg", text.encode())
        writer.add_channel(entry.channel_id, writer.schema_ids[entry.msgtype], topic, "cdr",
                           {"offered_qos_profiles": yaml.safe_dump([entry.qos], sort_keys=False).strip()})

    def _open_file(self) -> None:
        path = self.dir / f"{self.dir.name}_{len(self._files)}.mcap"
        self._writer = McapWriter(path, chunk_bytes=self.chunk_bytes, chunk_seconds=self.chunk_seconds)
        self._files.append({"path": path.name, "writer": self._writer})
        for topic, entry in self.topics.items():          # every file is readable on its own
            self._add_channel(self._writer, topic, entry)

    def _close_file(self) -> None:
        writer, self._writer = self._writer, None
        writer.close()
        entry = self._files[-1]
        entry.update(_file_summary(writer))
        entry.pop("writer")

    def _write_metadata(self) -> None:
        files = [f if "writer" not in f else {**f, **_file_summary(f["writer"])} for f in self._files]
        counts: dict[int, int] = {}
        for f in files:
            for cid, n in f["channel_counts"].items():
                counts[cid] = counts.get(cid, 0) + n
        write_metadata(self.dir, [{k: v for k, v in f.items() if k != "writer"} for f in files],
                       {t: (e.msgtype, e.qos, counts.get(e.channel_id, 0)) for t, e in self.topics.items()})


def _file_summary(writer: McapWriter) -> dict:
    count = writer.message_count
    return {"path": writer.path.name, "message_count": count, "channel_counts": dict(writer.channel_counts),
            "start": writer.start_time if count else 0, "end": writer.end_time if count else 0}


def write_metadata(directory: Path, files: list[dict], topics: dict[str, tuple[str, dict, int]]) -> None:
    """metadata.yaml (rosbag2 version 9, storage mcap) for ``files`` and ``topics`` (type, QoS, count)."""
    import yaml

    store = typestore()
    counted = [f for f in files if f["message_count"]]
    start = min((f["start"] for f in counted), default=0)
    end = max((f["end"] for f in counted), default=0)
    info = {
        "version": 9,
        "storage_identifier": "mcap",
        "relative_file_paths": [f["path"] for f in files],
        "duration": {"nanoseconds": max(0, end - start)},
        "starting_time": {"nanoseconds_since_epoch": start},
        "message_count": sum(f["message_count"] for f in files),
        "topics_with_message_count": [
            {"topic_metadata": {"name": topic, "type": msgtype, "serialization_format": "cdr",
                                "offered_qos_profiles": [qos], "type_description_hash": store.hash_rihs01(msgtype)},
             "message_count": count}
            for topic, (msgtype, qos, count) in topics.items()],
        "compression_format": "",
        "compression_mode": "",
        "files": [{"path": f["path"], "starting_time": {"nanoseconds_since_epoch": f["start"]},
                   "duration": {"nanoseconds": max(0, f["end"] - f["start"])}, "message_count": f["message_count"]}
                  for f in files],
        "custom_data": {"writer": "inspatio_ros"},
        "ros_distro": "jazzy",
    }
    tmp = directory / (METADATA + ".tmp")
    tmp.write_text(yaml.safe_dump({"rosbag2_bagfile_information": info}, sort_keys=False))
    os.replace(tmp, directory / METADATA)


def recover_recording(directory: str | Path) -> dict[str, int]:
    """Make a recording whose recorder was killed readable: every MCAP file without a footer is
    rewritten with its complete chunks, and metadata.yaml from what the files hold. Returns topic ->
    messages. A complete recording is only re-indexed."""
    import yaml

    path = Path(directory)
    files = sorted(path.glob("*.mcap"), key=lambda p: (len(p.name), p.name))
    if not files:
        raise InputError(f"{path} holds no .mcap files", "give the folder a recording was written to")
    summaries, topics = [], {}
    for f in files:
        found = recover(f)
        counts: dict[int, int] = {}
        for channel, *_ in found.messages:
            counts[channel] = counts.get(channel, 0) + 1
        times = [m[1] for m in found.messages]
        summaries.append({"path": f.name, "message_count": len(found.messages), "channel_counts": counts,
                          "start": min(times, default=0), "end": max(times, default=0)})
        for cid, (sid, topic, _enc, meta) in found.channels.items():
            msgtype = found.schemas[sid][0]
            # The QoS as the channel records it: readers match metadata.yaml's topics to it.
            profiles = yaml.safe_load(meta.get("offered_qos_profiles", "")) or [qos_profile()]
            _, qos, n = topics.get(topic, (msgtype, profiles[0], 0))
            topics[topic] = (msgtype, qos, n + counts.get(cid, 0))
    write_metadata(path, summaries, topics)
    return {topic: n for topic, (_, _, n) in topics.items()}


def _copy_frame(frame):
    import dataclasses

    cams = [dataclasses.replace(cf, rgb=np.array(cf.rgb), depth=np.array(cf.depth),
                                points=None if cf.points is None else np.array(cf.points),
                                coverage=None if cf.coverage is None else np.array(cf.coverage))
            for cf in frame.cameras]
    return dataclasses.replace(frame, cameras=cams, map_from_base=np.array(frame.map_from_base))


__all__ = ["Recorder", "check_record_dir", "recover_recording", "qos_profile", "scan", "write_metadata"]
