"""The Transport on Cyclone DDS alone: the simulator node on a machine with no ROS installed.

Topics are what rmw makes of a ROS topic (``/front/image_raw`` is the DDS topic
``rt/front/image_raw`` of type ``sensor_msgs::msg::dds_::Image_``, classic CDR), so any ROS 2 node
(Fast DDS or Cyclone rmw) on the same domain receives and sends them. The node also announces
itself on ``ros_discovery_info`` as rmw does, so ``ros2 node list`` / ``ros2 node info`` show it.

Participant configuration: ``CYCLONEDDS_URI`` when set is used as it is; otherwise the domain gets
a configuration sized for camera frames (64 kB datagrams and fragments, large socket buffers:
a 1920x1080 rgb8 image is 6 MB, a 32FC1 depth image 8 MB), and with
``ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`` (or the older ``ROS_LOCALHOST_ONLY=1``) it stays on
the loopback interface with unicast discovery to 127.0.0.1, as ROS 2 nodes with that setting do.
"""
from __future__ import annotations

import contextlib
import math
import os
import struct
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from cyclonedds.core import (
    DDSException,
    InstanceState,
    ReadCondition,
    SampleState,
    ViewState,
    WaitSet,
)
from cyclonedds._clayer import ddspy_write
from cyclonedds.domain import Domain, DomainParticipant
from cyclonedds.pub import DataWriter
from cyclonedds.qos import Policy
from cyclonedds.qos import Qos as DdsQos
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration

from ..errors import InputError
from .dds_types import MESSAGE_TYPES, Gid, NodeEntitiesInfo, ParticipantEntitiesInfo
from .transport import Qos, resolve_topic

# Reliable volatile writers keep every sample until each reliable reader has acknowledged it
# (KEEP_ALL), bounded in bytes rather than samples: a writer holding more than WRITER_BACKLOG_BYTES
# unacknowledged drops new samples at the source (counted in the publisher's ``dropped``) instead of
# waiting, so a stalled subscriber never stalls the sim; it holds the topic back for the other
# reliable subscribers until it acknowledges again or its participant's lease expires.
#
# Why not KEEP_LAST: a KEEP_LAST writer forgets unacknowledged samples when newer ones arrive and
# answers a reader's repair request (NACK / NACK_FRAG) for them with a GAP. Fast DDS 2.14 (ROS 2
# Jazzy's rmw_fastrtps) mishandles a GAP for a sample of which it holds some fragments:
# StatefulReader::processGapMsg releases the half-assembled change through History::remove_change_nts,
# which leaves it in the DataReaderHistory's instance list of a keyless topic (every ROS topic), so
# the next take deserializes an empty payload (fastcdr NotEnoughMemoryException in
# read_encapsulation), cannot remove the change (remove_change_sub finds it no more) and loops
# forever holding the reader's mutex: the subscriber process stops receiving on every topic. With
# the node's 5-deep KEEP_LAST writers a Fast DDS subscriber to front/points froze in 11 of 16 runs;
# with depth 1 in 4 of 4 within 5 s, with KEEP_ALL in none (docs/PERFORMANCE.md, "Fast DDS").
# The backlog (INSPATIO_DDS_WRITER_BACKLOG_MB, 32 MiB: four 1080p depth images) bounds each
# writer's memory for slow readers and how stale a lagging reader's frames get; at 3 x 1080p on an
# H200 (node_bench, Cyclone readers) 16 / 32 / 64 MiB gave 52-55 / 58 / 45-55 Hz per camera, KEEP_LAST
# 57 Hz (single runs, about +-5 Hz apart run to run).
WRITER_BACKLOG_BYTES = int(float(os.environ.get("INSPATIO_DDS_WRITER_BACKLOG_MB", "32")) * 1024 * 1024)
# A camera's writer process sizes its writers' backlog in time instead (writer_backlog_bytes): at
# least WRITER_BACKLOG_S seconds of its largest output at the camera's rate, between
# WRITER_BACKLOG_BYTES and WRITER_BACKLOG_MAX_BYTES. Why: the bytes are the same for every topic,
# so the largest sample ran out first; in the 60-minute soak at 640x360 and 10 Hz (a 3.7 MB cloud,
# a 0.9 MB depth image) 32 MiB held 0.9 s of clouds but 3.6 s of depth, and a CPU-starved reader
# that fell ~1 s behind lost 62 clouds and nothing else. The cap bounds a stalled reader's cost:
# at 1080p (33 MB clouds at 30 Hz) time cannot be the rule and clouds stay the first to go.
WRITER_BACKLOG_S = float(os.environ.get("INSPATIO_DDS_WRITER_BACKLOG_S", "2"))
WRITER_BACKLOG_MAX_BYTES = int(float(os.environ.get("INSPATIO_DDS_WRITER_BACKLOG_MAX_MB", "256")) * 1024 * 1024)


def writer_backlog_bytes(sample_bytes: int, rate_hz: float) -> int:
    """Each writer's backlog for samples of up to ``sample_bytes`` written ``rate_hz`` times a
    second: WRITER_BACKLOG_S seconds of them, at least WRITER_BACKLOG_BYTES, at most
    WRITER_BACKLOG_MAX_BYTES (see there)."""
    wanted = math.ceil(max(float(rate_hz), 0.0) * WRITER_BACKLOG_S) * int(sample_bytes)
    return int(max(WRITER_BACKLOG_BYTES, min(WRITER_BACKLOG_MAX_BYTES, wanted)))
# Seconds between a participant's spontaneous announcements (see cyclone_config).
SPDP_INTERVAL_S = 1.0
# A write never waits for acknowledgements: above the backlog it fails at once and is counted.
MAX_BLOCKING_S = 0.0
# Samples taken from one reader per read call in spin_once.
_TAKE_BATCH = 64

_DDS_RETCODE_TIMEOUT = -10

# Domains this module created with its configuration: domain id -> [Domain, transports using it]
_domains: dict[int, list] = {}
_domains_lock = threading.Lock()


def localhost_only() -> bool:
    """True when ROS 2's environment asks for discovery on this host only."""
    # as rcl (Jazzy): ROS_LOCALHOST_ONLY=1 wins over ROS_AUTOMATIC_DISCOVERY_RANGE
    if os.environ.get("ROS_LOCALHOST_ONLY", "").strip() == "1":
        return True
    return os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE", "").strip().upper() == "LOCALHOST"


def cyclone_config(localhost: bool, writer_backlog: int = WRITER_BACKLOG_BYTES) -> str:
    """The Cyclone DDS configuration XML used when CYCLONEDDS_URI is not set; ``writer_backlog``:
    bytes of unacknowledged samples each reliable writer keeps (the domain's watermark)."""
    general = [
        # Datagrams up to the UDP limit (Fast DDS sends 64 kB ones too): an 8 MB image is ~140
        # fragments instead of ~6000 with the defaults (1344 B fragments, 14720 B messages).
        "<MaxMessageSize>65500B</MaxMessageSize>",
        "<MaxRexmitMessageSize>65500B</MaxRexmitMessageSize>",
        "<FragmentSize>62000B</FragmentSize>",
    ]
    # Participant announcements (SPDP) every second instead of Cyclone's 30 s. Why: a subscriber
    # that was stopped (SIGSTOP, a debugger, a swapped-out process) for about its lease (10 s) or
    # longer may, on resuming, expire the node's participant before it reads the node's queued
    # traffic; it then ignores the node until the node announces itself again. Measured with a
    # Cyclone subscriber stopped 10-11 s (36 stalls, VM): 5 resumed only after 29-30 s, the rest
    # within 0.1 s; with the node announcing every second, 24 of 24 within 1.1 s. It costs one
    # ~300-byte packet a second per participant and peer (docs/notes/2026-12-05-dds-rediscovery.md).
    discovery = [f"<SPDPInterval>{SPDP_INTERVAL_S:g}s</SPDPInterval>"]
    if localhost:
        general += [
            "<Interfaces><NetworkInterface address=\"127.0.0.1\"/></Interfaces>",
            "<AllowMulticast>false</AllowMulticast>",
        ]
        discovery += [
            "<ParticipantIndex>auto</ParticipantIndex>",
            # unicast discovery pings participant indices 0..N on 127.0.0.1: room for a few dozen
            # participants (ROS nodes, ros2 CLI daemons, tests) on the host
            "<MaxAutoParticipantIndex>32</MaxAutoParticipantIndex>",
            "<Peers><Peer address=\"127.0.0.1\"/></Peers>",
        ]
    internal = [
        # as large as the OS allows (net.core.rmem_max / wmem_max cap it; no error when smaller)
        "<SocketReceiveBufferSize min=\"default\" max=\"32MiB\"/>",
        "<SocketSendBufferSize min=\"default\" max=\"8MiB\"/>",
        # A reader with a small socket buffer (Fast DDS uses the OS default, ~200 kB) loses most
        # of a multi-MB sample's first burst and asks for the rest fragment-wise (NACKFRAG) after
        # each heartbeat. The defaults (a heartbeat per 100 ms, 1 MiB per NACK) make an 8 MB depth
        # image take seconds to reach a Fast DDS node; heartbeats every 5 ms while data is
        # unacknowledged (none when all is acked) with 512 kB per NACK bring it to ~0.1-0.3 s.
        "<HeartbeatInterval min=\"1ms\" minsched=\"2ms\">5ms</HeartbeatInterval>",
        "<BurstSize><MaxRexmit>512KiB</MaxRexmit></BurstSize>",
        # a reliable (KEEP_ALL) writer holds up to writer_backlog bytes of unacknowledged samples
        # from the start (no adaptive ramp from 30 kB, which would drop the first large frames)
        "<Watermarks>"
        f"<WhcHigh>{int(writer_backlog)}B</WhcHigh><WhcHighInit>{int(writer_backlog)}B</WhcHighInit>"
        "<WhcAdaptive>false</WhcAdaptive>"
        "</Watermarks>",
    ]
    return ("<CycloneDDS xmlns=\"https://cdds.io/config\"><Domain id=\"any\">"
            "<General>" + "".join(general) + "</General>"
            + "<Discovery>" + "".join(discovery) + "</Discovery>"
            + "<Internal>" + "".join(internal) + "</Internal>"
            "</Domain></CycloneDDS>")


def _delete(entity) -> None:
    """Delete a cyclonedds entity now rather than when Python collects it."""
    if entity is not None:
        with contextlib.suppress(Exception):    # already gone with its parent
            entity.__del__()


def _acquire_domain(domain_id: int, writer_backlog: int = WRITER_BACKLOG_BYTES) -> None:
    """Create the domain with our configuration (unless CYCLONEDDS_URI is set) before the first
    participant on it; later transports on the same domain in this process share it (and its
    writer backlog)."""
    with _domains_lock:
        entry = _domains.get(domain_id)
        if entry is not None:
            entry[1] += 1
            return
        if os.environ.get("CYCLONEDDS_URI"):
            return
        try:
            _domains[domain_id] = [Domain(domain_id, cyclone_config(localhost_only(), writer_backlog)), 1]
        except DDSException:
            # the domain exists already in this process (created by other code): use it as it is
            pass


def _release_domain(domain_id: int) -> None:
    """Delete the domain (its threads and sockets) when its last transport shuts down."""
    with _domains_lock:
        entry = _domains.get(domain_id)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] > 0:
            return
        del _domains[domain_id]
        try:
            if entry[0].get_participants():
                return              # participants made by other code in this process live on
        except DDSException:
            pass
        _delete(entry[0])


def dds_qos(qos: Qos, writer: bool = False) -> DdsQos:
    """The Cyclone DDS QoS for one of the node's Qos settings (rmw's mapping).

    writer: for a DataWriter. A reliable volatile writer keeps every unacknowledged sample (KEEP_ALL,
    bounded by WRITER_BACKLOG_BYTES; see there why); ``qos.depth`` then applies to readers and to
    best-effort and transient-local writers (a late joiner gets the last ``depth`` samples)."""
    keep_all = writer and qos.reliability == "reliable" and qos.durability != "transient_local"
    policies = [
        Policy.Reliability.Reliable(max_blocking_time=duration(seconds=MAX_BLOCKING_S))
        if qos.reliability == "reliable" else Policy.Reliability.BestEffort,
        Policy.Durability.TransientLocal if qos.durability == "transient_local" else Policy.Durability.Volatile,
        Policy.History.KeepAll if keep_all else Policy.History.KeepLast(int(qos.depth)),
        # classic CDR, as rmw_fastrtps and rmw_cyclonedds write and read it
        Policy.DataRepresentation(use_cdrv0_representation=True),
    ]
    return DdsQos(*policies)


# Messages whose big uint8[] `data` is spliced into the CDR stream instead of going through the
# Python serializer (which copies a payload four times, growing its buffer by doubling): value =
# how many serialized bytes follow `data` (PointCloud2 has `bool is_dense` after it).
_SPLICED_TAIL = {MESSAGE_TYPES["sensor_msgs/msg/Image"]: 0, MESSAGE_TYPES["sensor_msgs/msg/CompressedImage"]: 0,
                 MESSAGE_TYPES["sensor_msgs/msg/PointCloud2"]: 1}
_SPLICE_MIN_BYTES = 4096


def _serialize_spliced(msg, tail: int) -> bytes:
    """Classic CDR of ``msg`` built as (fields before data | length | data | fields after data).

    The fields around ``data`` come from the regular serializer run on the message with empty
    data, so the layout is the IDL's own; only the payload is joined in, in one copy.
    """
    data = msg.data
    msg.data = b""
    try:
        small = msg.serialize(use_version_2=False)
    finally:
        msg.data = data
    split = len(small) - tail
    length_at = split - 4
    if small[length_at:split] != b"\0\0\0\0" or small[1] != 1:   # empty length, little-endian CDR
        raise RuntimeError(f"unexpected CDR layout for {type(msg).__name__}")
    n = len(data)
    pad = (-(split + n + tail)) % 4
    return b"".join((small[:length_at], struct.pack("<I", n), data, small[split:], b"\0" * pad))


class DdsPublisher:
    """What create_publisher returns."""

    def __init__(self, writer: DataWriter, cls: type, topic: str):
        self._writer = writer
        self._cls = cls
        self.topic = topic
        self.dropped = 0           # samples not written because readers did not keep up

    def publish(self, msg: Any) -> None:
        if not isinstance(msg, self._cls):
            raise TypeError(f"publish on {self.topic} takes {self._cls.__name__}, not {type(msg).__name__}")
        try:
            if self._cls in _SPLICED_TAIL and len(msg.data) >= _SPLICE_MIN_BYTES:
                ret = ddspy_write(self._writer._ref, _serialize_spliced(msg, _SPLICED_TAIL[self._cls]))
                if ret < 0:
                    raise DDSException(ret, f"Occurred while writing sample on {self.topic}")
            else:
                self._writer.write(msg)
        except DDSException as exc:
            if exc.code == _DDS_RETCODE_TIMEOUT:
                self.dropped += 1
                return
            raise

    def subscription_count(self) -> int:
        """Readers matched with this writer (other processes' and this process's)."""
        return int(self._writer.get_publication_matched_status().current_count)


class DdsSubscription:
    """What create_subscription returns."""

    def __init__(self, reader: DataReader, condition: ReadCondition, callback: Callable[[Any], None], topic: str):
        self.reader = reader
        self.condition = condition
        self.callback = callback
        self.topic = topic

    def publisher_count(self) -> int:
        return int(self.reader.get_subscription_matched_status().current_count)


class DdsTransport:
    """Transport on Cyclone DDS with ROS 2-compatible names, types and QoS."""

    name = "dds"

    def __init__(self, node_name: str, namespace: str = "", domain_id: int | None = None,
                 announce_node: bool = True, writer_backlog: int | None = None):
        """domain_id: None takes ROS_DOMAIN_ID (0 when unset), as rclpy does. announce_node: publish
        the node on ros_discovery_info (set False when an rclpy node of the same name exists).
        writer_backlog: bytes each reliable writer keeps for lagging readers (default
        WRITER_BACKLOG_BYTES; the first transport of a domain in a process sets it)."""
        if domain_id is None:
            env = os.environ.get("ROS_DOMAIN_ID", "").strip()
            if env and not env.isdigit():
                raise InputError(f"ROS_DOMAIN_ID '{env}' is not a number", "use a ROS_DOMAIN_ID from 0 to 232")
            domain_id = int(env or 0)
        if not (0 <= int(domain_id) <= 232):
            raise InputError(f"DDS domain id {domain_id} is out of range", "use a ROS_DOMAIN_ID from 0 to 232")
        if "/" in node_name:
            raise InputError(f"node name '{node_name}' contains '/'", "give the namespace separately")
        resolve_topic("/" + node_name, "", node_name)          # validates the node name
        if namespace.strip("/"):
            resolve_topic("/" + namespace.strip("/"), "", node_name)
        self.node_name = node_name
        self.namespace = namespace
        self.domain_id = int(domain_id)
        _acquire_domain(self.domain_id, WRITER_BACKLOG_BYTES if writer_backlog is None else int(writer_backlog))
        try:
            self._participant = DomainParticipant(self.domain_id)
        except DDSException as exc:
            _release_domain(self.domain_id)
            raise InputError(f"Cyclone DDS could not start a participant on domain {self.domain_id} ({exc})",
                             "check CYCLONEDDS_URI and the network settings") from None
        self._waitset = WaitSet(self._participant)
        self._topics: dict[str, Topic] = {}
        self._publishers: list[DdsPublisher] = []
        self._subscriptions: list[DdsSubscription] = []
        self._lock = threading.RLock()
        self._closed = False
        self._graph_writer = None
        self._graph_topic = None
        if announce_node:
            try:
                self._announce_setup()
            except DDSException:
                self._graph_writer = None   # the ROS graph announcement is optional

    # --- Transport protocol ---------------------------------------------------------------

    def message_class(self, type_name: str) -> type:
        try:
            return MESSAGE_TYPES[type_name]
        except KeyError:
            raise InputError(f"message type '{type_name}' is not one the DDS transport carries",
                             "use one of: " + ", ".join(sorted(MESSAGE_TYPES))) from None

    @staticmethod
    def byte_payload(data) -> bytes:
        if isinstance(data, bytes):
            return data
        if isinstance(data, np.ndarray):
            # No copy: the writer copies once when it serialises (see _serialize_spliced).
            return memoryview(np.ascontiguousarray(data)).cast("B")
        if isinstance(data, (bytearray, memoryview)):
            return bytes(data)
        try:
            return bytes(memoryview(data))
        except TypeError:
            raise InputError(f"a uint8[] payload of type {type(data).__name__} is not a byte buffer",
                             "pass bytes, bytearray, memoryview or a numpy array") from None

    def create_publisher(self, type_name: str, topic: str, qos: Qos) -> DdsPublisher:
        cls = self.message_class(type_name)
        name = resolve_topic(topic, self.namespace, self.node_name)
        with self._lock:
            writer = DataWriter(self._participant, self._topic(name, cls), qos=dds_qos(qos, writer=True))
            pub = DdsPublisher(writer, cls, name)
            self._publishers.append(pub)
            self._announce()
        return pub

    def create_subscription(self, type_name: str, topic: str, callback: Callable[[Any], None],
                            qos: Qos) -> DdsSubscription:
        cls = self.message_class(type_name)
        name = resolve_topic(topic, self.namespace, self.node_name)
        with self._lock:
            reader = DataReader(self._participant, self._topic(name, cls), qos=dds_qos(qos))
            cond = ReadCondition(reader, SampleState.NotRead | ViewState.Any | InstanceState.Any)
            self._waitset.attach(cond)
            sub = DdsSubscription(reader, cond, callback, name)
            self._subscriptions.append(sub)
            self._announce()
        return sub

    def spin_once(self, timeout_s: float) -> None:
        """Wait up to timeout_s for data on any subscription, then run the callbacks of all samples
        that have arrived (on this thread)."""
        if self._closed:
            time.sleep(max(0.0, timeout_s))
            return
        subs = list(self._subscriptions)
        if not subs:
            time.sleep(max(0.0, timeout_s))
            return
        if self._waitset.wait(duration(seconds=max(0.0, timeout_s))) <= 0:
            return
        for sub in subs:
            while True:
                samples = sub.reader.take(N=_TAKE_BATCH)
                for sample in samples:
                    info = getattr(sample, "sample_info", None)
                    if info is not None and not info.valid_data:
                        continue                # dispose / unregister notices carry no message
                    sub.callback(sample)
                if len(samples) < _TAKE_BATCH:
                    break

    def shutdown(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for sub in self._subscriptions:
                try:
                    self._waitset.detach(sub.condition)
                except DDSException:
                    pass
            _delete(self._waitset)
            _delete(self._graph_writer)
            for sub in self._subscriptions:
                _delete(sub.condition)
                _delete(sub.reader)
            for pub in self._publishers:
                _delete(pub._writer)
            self._subscriptions.clear()
            self._publishers.clear()
            self._topics.clear()
            _delete(self._participant)
            _release_domain(self.domain_id)

    # --- helpers ---------------------------------------------------------------------------

    def _topic(self, ros_name: str, cls: type) -> Topic:
        dds_name = "rt" + ros_name
        topic = self._topics.get(dds_name)
        if topic is None:
            topic = Topic(self._participant, dds_name, cls)
            self._topics[dds_name] = topic
        elif topic.data_type is not cls:
            raise InputError(f"topic {ros_name} is used with two message types "
                             f"({topic.data_type.__idl_typename__} and {cls.__idl_typename__})",
                             "use one message type per topic")
        return topic

    def _announce_setup(self) -> None:
        """The rmw graph topic: ros_discovery_info, reliable, transient-local, depth 1."""
        self._graph_topic = Topic(self._participant, "ros_discovery_info", ParticipantEntitiesInfo)
        self._graph_writer = DataWriter(self._participant, self._graph_topic, qos=DdsQos(
            Policy.Reliability.Reliable(max_blocking_time=duration(seconds=MAX_BLOCKING_S)),
            Policy.Durability.TransientLocal, Policy.History.KeepLast(1),
            Policy.DataRepresentation(use_cdrv0_representation=True)))
        self._announce()

    def _announce(self) -> None:
        """Publish which node this participant holds and its readers / writers (for `ros2 node`)."""
        if self._graph_writer is None:
            return
        ns = "/" + self.namespace.strip("/") if self.namespace.strip("/") else "/"
        node = NodeEntitiesInfo(
            node_namespace=ns, node_name=self.node_name,
            reader_gid_seq=[_gid(s.reader) for s in self._subscriptions],
            writer_gid_seq=[_gid(p._writer) for p in self._publishers])
        try:
            self._graph_writer.write(ParticipantEntitiesInfo(gid=_gid(self._participant),
                                                             node_entities_info_seq=[node]))
        except DDSException:
            pass


def _gid(entity) -> Gid:
    return Gid(data=list(entity.get_guid().bytes))
