"""A small MCAP writer for rosbag2 recordings, and recovery of a file whose writer was killed.

Written from the MCAP specification (https://mcap.dev/spec), profile ``ros2``: schemas are ROS 2
``.msg`` text (``ros2msg``), messages CDR. The layout is chosen for a recorder that may die at any
moment:

* schema and channel records go into the data section as soon as they are added, before any
  chunk that uses them;
* messages are collected in a chunk (uncompressed: the images are incompressible enough that
  zstd would cost the 2-core VM more than the disk) that is written, with its message indexes,
  and flushed to the OS when it holds ``chunk_bytes`` or spans ``chunk_seconds`` of log time;
* :meth:`McapWriter.close` writes the summary section (schemas, channels, statistics, chunk
  indexes, summary offsets) and the footer.

So a file cut short by SIGKILL or a power cut holds every chunk flushed before; :func:`recover`
rewrites such a file with those chunks and a footer (what ``mcap recover`` does), and then any
MCAP reader opens it. What a kill can lose is the chunk being filled: at most ``chunk_seconds``
of messages (plus what the recorder's queue held).
"""
from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path

MAGIC = b"\x89MCAP0\r\n"
OP_HEADER, OP_FOOTER, OP_SCHEMA, OP_CHANNEL, OP_MESSAGE, OP_CHUNK = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
OP_MESSAGE_INDEX, OP_CHUNK_INDEX, OP_STATISTICS, OP_SUMMARY_OFFSET, OP_DATA_END = 0x07, 0x08, 0x0B, 0x0E, 0x0F
_U8, _U16, _U32, _U64 = struct.Struct("<B"), struct.Struct("<H"), struct.Struct("<I"), struct.Struct("<Q")
_MESSAGE_HEAD = struct.Struct("<HIQQ")          # channel id, sequence, log time, publish time
_RECORD_HEAD = struct.Struct("<BQ")             # opcode, content length


def _string(text: str) -> bytes:
    raw = text.encode()
    return _U32.pack(len(raw)) + raw


def _prefixed(raw: bytes) -> bytes:
    return _U32.pack(len(raw)) + raw


def _record(op: int, content: bytes) -> bytes:
    return _RECORD_HEAD.pack(op, len(content)) + content


def _string_map(pairs: dict[str, str]) -> bytes:
    return _prefixed(b"".join(_string(k) + _string(v) for k, v in pairs.items()))


@dataclass
class _Chunk:
    """Message records collected for the next chunk, and their per-channel index."""

    records: bytearray = field(default_factory=bytearray)
    start: int = 2**64 - 1
    end: int = 0
    index: dict[int, list[tuple[int, int]]] = field(default_factory=dict)   # channel -> (log time, offset)


class McapWriter:
    """One MCAP file, written in chunks (see the module docstring)."""

    def __init__(self, path: str | Path, *, chunk_bytes: int = 4 << 20, chunk_seconds: float = 1.0,
                 library: str = "inspatio_ros"):
        self.path = Path(path)
        self.chunk_bytes, self.chunk_ns = int(chunk_bytes), int(chunk_seconds * 1e9)
        self._file = open(self.path, "xb")
        self._schemas: dict[int, bytes] = {}      # id -> record content (repeated in the summary)
        self.schema_ids: dict[str, int] = {}      # schema name -> id
        self._channels: dict[int, bytes] = {}
        self._chunk_indexes: list[bytes] = []
        self._chunk = _Chunk()
        self.message_count = 0
        self.channel_counts: dict[int, int] = {}
        self.start_time, self.end_time = 2**64 - 1, 0
        self._sequence = 0
        self._data_crc = 0
        self._write(MAGIC + _record(OP_HEADER, _string("ros2") + _string(library)))
        self._file.flush()

    @property
    def size(self) -> int:
        """Bytes written so far, the chunk being filled included."""
        return self._file.tell() + len(self._chunk.records)

    def _write(self, data: bytes) -> None:
        self._file.write(data)
        self._data_crc = zlib.crc32(data, self._data_crc)

    def add_schema(self, schema_id: int, name: str, encoding: str, data: bytes) -> None:
        content = _U16.pack(schema_id) + _string(name) + _string(encoding) + _prefixed(data)
        self._schemas[schema_id] = content
        self.schema_ids[name] = schema_id
        self._write(_record(OP_SCHEMA, content))

    def add_channel(self, channel_id: int, schema_id: int, topic: str, message_encoding: str = "cdr",
                    metadata: dict[str, str] | None = None) -> None:
        content = (_U16.pack(channel_id) + _U16.pack(schema_id) + _string(topic) + _string(message_encoding)
                   + _string_map(metadata or {}))
        self._channels[channel_id] = content
        self.channel_counts.setdefault(channel_id, 0)
        self._write(_record(OP_CHANNEL, content))
        self._file.flush()                  # a recovered file needs it before the chunks that use it

    def write(self, channel_id: int, log_time: int, data: bytes, publish_time: int | None = None) -> None:
        """One message (``data``: its CDR bytes); ``log_time`` in ns since the epoch."""
        chunk = self._chunk
        if chunk.records and (len(chunk.records) >= self.chunk_bytes or log_time - chunk.start >= self.chunk_ns):
            self.flush_chunk()
            chunk = self._chunk
        chunk.index.setdefault(channel_id, []).append((log_time, len(chunk.records)))
        chunk.records += _RECORD_HEAD.pack(OP_MESSAGE, _MESSAGE_HEAD.size + len(data))
        chunk.records += _MESSAGE_HEAD.pack(channel_id, self._sequence, log_time,
                                            log_time if publish_time is None else publish_time)
        chunk.records += data
        self._sequence = (self._sequence + 1) & 0xFFFFFFFF
        chunk.start, chunk.end = min(chunk.start, log_time), max(chunk.end, log_time)
        self.message_count += 1
        self.channel_counts[channel_id] = self.channel_counts.get(channel_id, 0) + 1
        self.start_time, self.end_time = min(self.start_time, log_time), max(self.end_time, log_time)

    def chunk_age_ns(self, now_ns: int) -> int:
        """How long the oldest message waiting in the chunk has waited (0: none waits)."""
        return now_ns - self._chunk.start if self._chunk.records else 0

    def flush_chunk(self) -> None:
        """Write the collected messages as one chunk with its message indexes, and hand them to the OS."""
        chunk, self._chunk = self._chunk, _Chunk()
        if not chunk.records:
            return
        records = chunk.records
        head = (_U64.pack(chunk.start) + _U64.pack(chunk.end) + _U64.pack(len(records))
                + _U32.pack(zlib.crc32(records)) + _string("") + _U64.pack(len(records)))
        chunk_start = self._file.tell()
        # Record head and the records written apart: no copy of the (MiB-sized) chunk.
        self._write(_RECORD_HEAD.pack(OP_CHUNK, len(head) + len(records)) + head)
        self._write(records)
        chunk_length = self._file.tell() - chunk_start
        offsets = []
        for channel_id, entries in chunk.index.items():
            offsets.append(_U16.pack(channel_id) + _U64.pack(self._file.tell()))
            body = b"".join(_U64.pack(t) + _U64.pack(o) for t, o in entries)
            self._write(_record(OP_MESSAGE_INDEX, _U16.pack(channel_id) + _prefixed(body)))
        index_length = self._file.tell() - chunk_start - chunk_length
        self._chunk_indexes.append(
            _U64.pack(chunk.start) + _U64.pack(chunk.end) + _U64.pack(chunk_start) + _U64.pack(chunk_length)
            + _prefixed(b"".join(offsets)) + _U64.pack(index_length) + _string("")
            + _U64.pack(len(records)) + _U64.pack(len(records)))
        self._file.flush()

    def close(self) -> None:
        """The last chunk, the summary section and the footer; the file is complete."""
        if self._file.closed:
            return
        self.flush_chunk()
        self._file.write(_record(OP_DATA_END, _U32.pack(self._data_crc)))
        summary_start = self._file.tell()
        groups = []
        count = self.message_count
        stats = (_U64.pack(count) + _U16.pack(len(self._schemas)) + _U32.pack(len(self._channels))
                 + _U32.pack(0) + _U32.pack(0) + _U32.pack(len(self._chunk_indexes))
                 + _U64.pack(self.start_time if count else 0) + _U64.pack(self.end_time if count else 0)
                 + _prefixed(b"".join(_U16.pack(c) + _U64.pack(n) for c, n in self.channel_counts.items())))
        for op, contents in ((OP_SCHEMA, self._schemas.values()), (OP_CHANNEL, self._channels.values()),
                             (OP_STATISTICS, [stats]), (OP_CHUNK_INDEX, self._chunk_indexes)):
            contents = list(contents)
            if not contents:
                continue
            start = self._file.tell()
            for content in contents:
                self._file.write(_record(op, content))
            groups.append((op, start, self._file.tell() - start))
        summary_offset_start = self._file.tell()
        for op, start, length in groups:
            self._file.write(_record(OP_SUMMARY_OFFSET, _U8.pack(op) + _U64.pack(start) + _U64.pack(length)))
        # Footer: summary crc 0 = not computed (allowed by the spec).
        self._file.write(_record(OP_FOOTER, _U64.pack(summary_start) + _U64.pack(summary_offset_start)
                                 + _U32.pack(0)) + MAGIC)
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()

    def abandon(self) -> None:
        """Close the file as it is, without the last chunk or a footer (what a crash leaves)."""
        if not self._file.closed:
            self._file.close()


@dataclass
class ScannedFile:
    """What :func:`scan` found in an MCAP file's data section."""

    complete: bool                                 # has a footer: nothing to recover
    schemas: dict[int, tuple[str, str, bytes]]     # id -> (name, encoding, data)
    channels: dict[int, tuple[int, str, str, dict[str, str]]]   # id -> (schema, topic, encoding, metadata)
    messages: list[tuple[int, int, int, bytes]]    # (channel, log time, publish time, data), complete chunks
    end_of_valid: int                              # byte offset after the last complete record


def _read_string(buf: bytes, pos: int) -> tuple[str, int]:
    (n,) = _U32.unpack_from(buf, pos)
    return buf[pos + 4:pos + 4 + n].decode(), pos + 4 + n


def _read_map(buf: bytes, pos: int) -> tuple[dict[str, str], int]:
    (n,) = _U32.unpack_from(buf, pos)
    end, out = pos + 4 + n, {}
    pos += 4
    while pos < end:
        key, pos = _read_string(buf, pos)
        out[key], pos = _read_string(buf, pos)
    return out, end


def _chunk_messages(content: bytes) -> list[tuple[int, int, int, bytes]]:
    start, end, size, crc = struct.unpack_from("<QQQI", content, 0)
    compression, pos = _read_string(content, 28)
    if compression:
        raise ValueError(f"compressed chunk ({compression})")
    (length,) = _U64.unpack_from(content, pos)
    records = content[pos + 8:pos + 8 + length]
    if crc and zlib.crc32(records) != crc:
        raise ValueError("chunk CRC mismatch")
    out, pos = [], 0
    while pos + 9 <= len(records):
        op, n = _RECORD_HEAD.unpack_from(records, pos)
        body = records[pos + 9:pos + 9 + n]
        if op == OP_MESSAGE:
            channel, _, log_time, publish_time = _MESSAGE_HEAD.unpack_from(body, 0)
            out.append((channel, log_time, publish_time, body[_MESSAGE_HEAD.size:]))
        pos += 9 + n
    return out


def scan(path: str | Path) -> ScannedFile:
    """Read an MCAP file's data section record by record, stopping at the first incomplete one."""
    data = Path(path).read_bytes()
    if not data.startswith(MAGIC):
        raise ValueError("not an MCAP file (no magic)")
    schemas, channels, messages = {}, {}, []
    pos, end_of_valid, complete = len(MAGIC), len(MAGIC), False
    while pos + 9 <= len(data):
        op, n = _RECORD_HEAD.unpack_from(data, pos)
        if pos + 9 + n > len(data):
            break                                       # cut off here
        body = data[pos + 9:pos + 9 + n]
        if op == OP_SCHEMA:
            (sid,) = _U16.unpack_from(body, 0)
            name, p = _read_string(body, 2)
            encoding, p = _read_string(body, p)
            (size,) = _U32.unpack_from(body, p)
            schemas[sid] = (name, encoding, body[p + 4:p + 4 + size])
        elif op == OP_CHANNEL:
            cid, sid = struct.unpack_from("<HH", body, 0)
            topic, p = _read_string(body, 4)
            encoding, p = _read_string(body, p)
            metadata, p = _read_map(body, p)
            channels[cid] = (sid, topic, encoding, metadata)
        elif op == OP_CHUNK:
            try:
                messages.extend(_chunk_messages(body))
            except (ValueError, struct.error):
                break                                   # a damaged chunk: keep what came before
        elif op == OP_MESSAGE:
            channel, _, log_time, publish_time = _MESSAGE_HEAD.unpack_from(body, 0)
            messages.append((channel, log_time, publish_time, body[_MESSAGE_HEAD.size:]))
        elif op in (OP_DATA_END, OP_FOOTER):
            complete = data.endswith(MAGIC) and len(data) >= len(MAGIC) * 2 + 29
            end_of_valid = pos
            break
        pos += 9 + n
        end_of_valid = pos
    return ScannedFile(complete, schemas, channels, messages, end_of_valid)


def recover(path: str | Path) -> ScannedFile:
    """Make an MCAP file cut short (no footer) readable: rewrite it with every complete chunk and a
    summary and footer. A complete file is left alone. Returns what the file holds."""
    path = Path(path)
    found = scan(path)
    if found.complete:
        return found
    tmp = path.with_name(path.name + ".recovering")
    tmp.unlink(missing_ok=True)
    writer = McapWriter(tmp, chunk_bytes=4 << 20, chunk_seconds=1e9)
    try:
        for sid, (name, encoding, data) in sorted(found.schemas.items()):
            writer.add_schema(sid, name, encoding, data)
        for cid, (sid, topic, encoding, metadata) in sorted(found.channels.items()):
            writer.add_channel(cid, sid, topic, encoding, metadata)
        for channel, log_time, publish_time, data in found.messages:
            writer.write(channel, log_time, data, publish_time)
        writer.close()
    except BaseException:
        writer.abandon()
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    return found
