"""The live view of a SimSession in Foxglove: a Foxglove WebSocket server (foxglove-sdk), without ROS.

:class:`FoxgloveView` serves what the node publishes, on the node's topic names and as the node's
own ROS 2 messages (CDR with ``ros2msg`` schemas, built by record/frame_messages.py, so Foxglove
layouts work the same on this server and on foxglove_bridge over the ROS topics):

Topic names are the node's as they resolve under its namespace (``--namespace robot1`` gives
``/robot1/front/camera_info``, ``/robot1/odom``; ``/tf`` and ``/tf_static`` stay global, as on ROS):

* per camera ``/<cam>/image_raw/compressed`` (JPEG at ``jpeg_quality``; the raw image is not sent:
  1280x720 rgb8 at 20 Hz is 55 MB/s), ``/<cam>/camera_info``, ``/<cam>/depth/image`` (32FC1, when
  the camera has the depth output) and ``/<cam>/points`` (when it has points; every k-th row and
  column so that at most ``max_points`` go out);
* ``/tf`` (map -> odom -> base_link), ``/tf_static`` (the camera mounts), ``/odom``, ``/status``
  (SimStatus, 2 Hz) and ``/recorded_path`` (a visualization_msgs/Marker line strip through the
  recorded camera positions). The server time (Foxglove's clock) is the frames' stamp.

Only what some client subscribes to is encoded: with no client the view costs one ``has_sinks``
check per channel and frame. :meth:`FoxgloveView.publish` never waits: it copies what is
subscribed out of the frame and hands it to one encoding thread; a frame not yet taken when the
next one arrives is replaced (counted as skipped), so a slow client or encoder lowers the view's
rate, never the simulation's. Each client's queue holds at most ``BACKLOG_MESSAGES`` messages (the
oldest data is dropped beyond it), so a stalled browser cannot grow the node's memory.

In (clients publish with the ClientPublish capability, JSON or CDR; services take and answer
JSON):

* ``geometry_msgs/Twist`` (Foxglove's Teleop panel sends schema ``geometry_msgs/Twist``, JSON,
  when the server lists ``json`` first; ``geometry_msgs/msg/Twist`` and CDR are read too) on
  ``/cmd_vel`` (under the namespace) drives the ego in mode control (``SimSession.command_twist``); a Twist on another
  topic is ignored with a warning to the client, as is one in another mode.
* services ``/<ns>/<name>/pause`` (``{}`` or ``{"data": false}`` to resume), ``/<name>/resume``,
  ``/<name>/seek`` (``{"data": seconds}`` after the recording's start), ``/<name>/rate``
  (``{"data": sim seconds per wall second}``) and ``/<name>/reset``, answering
  ``{"success": bool, "message": str}``.

foxglove-sdk is optional (extra ``foxglove``); it is imported when a view is made.
"""
from __future__ import annotations

import json
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..errors import InputError

log = logging.getLogger("inspatio_ros")

TWIST_SCHEMAS = ("geometry_msgs/Twist", "geometry_msgs/msg/Twist")
CMD_VEL_TOPIC = "/cmd_vel"
PATH_TOPIC, STATUS_TOPIC = "/recorded_path", "/status"
GLOBAL_TOPICS = ("/tf", "/tf_static")        # not namespaced (ROS's tf convention)
STATUS_PERIOD_S = 0.5
# Latched-like topics (a Foxglove server keeps no history) are sent again when a client subscribes,
# and this often in case a subscription raced the send.
LATCHED_PERIOD_S = 5.0
BACKLOG_MESSAGES = 64          # per client; about 8 frames of one camera's messages
PATH_POINTS = 2000             # the recorded path's line keeps at most this many points
SERVICES = ("pause", "resume", "seek", "rate", "reset")


def import_foxglove():
    """The foxglove-sdk module, or one InputError that says how to install it."""
    try:
        import foxglove
        import foxglove.websocket  # noqa: F401  (the server's types)
    except ImportError:
        raise InputError("the Foxglove live view needs the foxglove-sdk package, which is not installed",
                         "pip install foxglove-sdk (or: pip install 'inspatio-ros[foxglove]')") from None
    return foxglove


def check_port(host: str, port: int) -> None:
    """One InputError now, before the world loads, when ``host:port`` cannot be listened on (the
    server's own bind says so too, later: another program may take the port in between)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        with socket.socket(infos[0][0], socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(infos[0][4])
    except OSError as exc:
        raise InputError(f"the Foxglove server cannot listen on {host}:{port} ({exc.strerror or exc})",
                         PORT_FIX) from None


PORT_FIX = ("give another port (--foxglove PORT, parameter foxglove.port) or stop the program that holds it; "
            "foxglove.host must be an address of this machine")


@dataclass
class _CameraChannels:
    spec: object
    info: object
    compressed: object
    depth: object | None
    points: object | None


@dataclass
class _PendingCamera:
    spec: object
    rgb: np.ndarray | None
    depth: np.ndarray | None
    points: np.ndarray | None
    info: bool


@dataclass
class _PendingFrame:
    stamp: float
    map_from_base: np.ndarray
    linear: np.ndarray
    angular: np.ndarray
    cameras: list


def cloud_stride(height: int, width: int, max_points: int) -> int:
    """Keep every k-th row and column: the smallest k with ceil(H/k) * ceil(W/k) <= max_points."""
    k = max(1, int(math.sqrt(height * width / max_points)))
    while math.ceil(height / k) * math.ceil(width / k) > max_points:
        k += 1
    return k


def decode_twist(encoding: str, data: bytes, where: str) -> tuple[float, float]:
    """(linear.x, angular.z) of a Twist a client sent as JSON or CDR; InputError naming ``where``."""
    fix = "publish geometry_msgs/Twist as JSON ({\"linear\": {\"x\": m/s}, \"angular\": {\"z\": rad/s}}) or CDR"
    try:
        if encoding == "json":
            msg = json.loads(bytes(data).decode("utf-8"))
            linear, angular = msg.get("linear", {}), msg.get("angular", {})
            vx, wz = float(linear.get("x", 0.0)), float(angular.get("z", 0.0))
        elif encoding == "cdr":
            from ..record.recorder import typestore

            msg = typestore().deserialize_cdr(bytes(data), "geometry_msgs/msg/Twist")
            vx, wz = float(msg.linear.x), float(msg.angular.z)
        else:
            raise InputError(f"{where}: a Twist in encoding '{encoding}'", fix)
    except InputError:
        raise
    except Exception as exc:                       # malformed JSON or CDR, fields of the wrong type
        raise InputError(f"{where}: the Twist could not be read ({type(exc).__name__}: {exc})", fix) from None
    return vx, wz


class FoxgloveView:
    """A Foxglove WebSocket server showing ``session`` (a SimSession) and driving it (see the module
    docstring). ``settings``: FoxgloveSettings (port, host, jpeg_quality, max_points); ``frames``:
    FrameIds; ``name``: prefix of the services (the node's name); ``namespace``: the node's, put
    before every topic but /tf and /tf_static and before the services; ``world_name``: in /status.
    Raises one InputError when foxglove-sdk is missing or the port cannot be opened."""

    def __init__(self, session, settings, frames=None, *, name: str = "inspatio_ros", namespace: str = "",
                 world_name: str = "", wall_clock: Callable[[], float] = time.monotonic):
        from ..record.frame_messages import FrameEncoder, camera_topic_names

        fg = import_foxglove()
        from foxglove.websocket import Capability

        self.session, self.settings, self.name, self.world_name = session, settings, name.strip("/"), world_name
        self.prefix = "/" + namespace.strip("/") if namespace.strip("/") else ""
        self.cmd_vel_topics = (self.topic(CMD_VEL_TOPIC), CMD_VEL_TOPIC.lstrip("/"))
        self._wall = wall_clock
        self.encoder = FrameEncoder(frames, settings.jpeg_quality)
        self.context = fg.Context()
        self._schemas: dict[str, object] = {}
        self._cameras: dict[str, _CameraChannels] = {}
        for spec in session.rig:
            topics = camera_topic_names(spec.name)
            self._cameras[spec.name] = _CameraChannels(
                spec=spec, info=self._channel(topics["camera_info"], "sensor_msgs/msg/CameraInfo"),
                compressed=self._channel(topics["compressed"], "sensor_msgs/msg/CompressedImage"),
                depth=self._channel(topics["depth"], "sensor_msgs/msg/Image") if "depth" in spec.outputs else None,
                points=(self._channel(topics["points"], "sensor_msgs/msg/PointCloud2")
                        if "points" in spec.outputs else None))
        self.tf = self._channel("/tf", "tf2_msgs/msg/TFMessage")
        self.tf_static = self._channel("/tf_static", "tf2_msgs/msg/TFMessage")
        self.odom = self._channel("/odom", "nav_msgs/msg/Odometry")
        self.status = self._channel(STATUS_TOPIC, "inspatio_ros_interfaces/msg/SimStatus")
        self.path = self._channel(PATH_TOPIC, "visualization_msgs/msg/Marker")
        self._latched_topics = {"/tf_static", self.topic(PATH_TOPIC)}
        positions = np.asarray(session.path.poses)[:, :3, 3]
        self._path_points = positions[::max(1, math.ceil(len(positions) / PATH_POINTS))]

        self.frames_sent = 0
        self.frames_skipped = 0
        self.teleop_commands = 0
        self._client_channels: dict[tuple[int, int], object] = {}
        self._warned: set[str] = set()
        self._cond = threading.Condition()
        self._pending: _PendingFrame | None = None
        self._resend_latched = True
        self._closing = False
        self._error: BaseException | None = None
        try:
            self.server = fg.start_server(
                name=f"inspatio_ros {world_name}".strip(), host=settings.host, port=settings.port,
                capabilities=[Capability.ClientPublish, Capability.Services, Capability.Time],
                server_listener=_Listener(self), supported_encodings=["json", "cdr"],
                services=self._services(fg), context=self.context, message_backlog_size=BACKLOG_MESSAGES)
        except (RuntimeError, OSError) as exc:
            reason = str(exc).replace("FoxgloveError: ", "")
            raise InputError(f"the Foxglove server cannot listen on {settings.host}:{settings.port} ({reason})",
                             PORT_FIX) from None
        self.port = self.server.port
        self._thread = threading.Thread(target=self._run, name="inspatio_foxglove", daemon=True)
        self._thread.start()
        log.info("Foxglove: open ws://%s:%d in Foxglove (Open connection -> Foxglove WebSocket); layout "
                 "config/foxglove_layout.json", "localhost" if settings.host in ("127.0.0.1", "0.0.0.0")
                 else settings.host, self.port)

    # -- channels and services ---------------------------------------------------------------
    def topic(self, name: str) -> str:
        """The absolute topic ``name`` (the node's name without namespace) under the namespace."""
        return name if name in GLOBAL_TOPICS else self.prefix + name

    def _channel(self, topic: str, msgtype: str):
        import foxglove

        topic = self.topic(topic)

        schema = self._schemas.get(msgtype)
        if schema is None:
            text, _ = self.encoder.store.generate_msgdef(msgtype, ros_version=2)
            schema = self._schemas[msgtype] = foxglove.Schema(name=msgtype, encoding="ros2msg", data=text.encode())
        return foxglove.Channel(topic, schema=schema, message_encoding="cdr", context=self.context)

    def _services(self, fg) -> list:
        number = {"type": "object", "properties": {"data": {"type": "number"}}, "required": ["data"]}
        flag = {"type": "object", "properties": {"data": {"type": "boolean"}}}
        empty = {"type": "object", "properties": {}}
        answer = {"type": "object", "properties": {"success": {"type": "boolean"}, "message": {"type": "string"}}}
        requests = {"pause": flag, "resume": empty, "seek": number, "rate": number, "reset": empty}

        def schema(title, body):
            return fg.MessageSchema(encoding="json", schema=fg.Schema(
                name=title, encoding="jsonschema", data=json.dumps({"title": title, **body}).encode()))

        return [fg.Service(f"{self.prefix}/{self.name}/{kind}", schema=fg.ServiceSchema(
            f"inspatio_ros/{kind}", request=schema(f"inspatio_ros/{kind}_request", requests[kind]),
            response=schema("inspatio_ros/control_response", answer)), handler=self._service_handler(kind))
            for kind in SERVICES]

    def _service_handler(self, kind: str):
        def handle(request) -> bytes:
            try:
                message = self.control(kind, _json_request(request, kind))
                answer = {"success": True, "message": message}
            except InputError as exc:
                answer = {"success": False, "message": str(exc)}
            return json.dumps(answer).encode()
        return handle

    def control(self, kind: str, request: dict) -> str:
        """One clock control (a service call): returns what was done; InputError when it cannot be."""
        s = self.session
        if kind == "pause":
            pause = request.get("data", True)
            if not isinstance(pause, bool):
                raise InputError(f"{self.prefix}/{self.name}/pause: data = {pause!r}", 'send {"data": true} or {"data": false}')
            s.pause() if pause else s.resume()
            return "paused" if pause else "resumed"
        if kind == "resume":
            s.resume()
            return "resumed"
        if kind in ("seek", "rate"):
            value = request.get("data")
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InputError(f"{self.prefix}/{self.name}/{kind}: data = {value!r} is not a number",
                                 '{"data": seconds after the recording\'s start}' if kind == "seek"
                                 else '{"data": sim seconds per wall second, 0.1 .. 10}')
            if kind == "seek":
                s.seek(float(value))
                return f"showing the recording at {float(value):.2f} s"
            s.set_rate(float(value))
            return f"rate {float(value):g}"
        if kind == "reset":
            s.reset()
            return "reset to the start"
        raise InputError(f"no service '{kind}'", f"call one of {', '.join(SERVICES)}")

    # -- teleop ------------------------------------------------------------------------------
    def on_client_channel(self, client_id: int, channel) -> None:
        self._client_channels[(client_id, channel.id)] = channel

    def on_client_message(self, client_id: int, channel_id: int, data: bytes) -> None:
        channel = self._client_channels.get((client_id, channel_id))
        if channel is None:
            return
        where = f"Foxglove client {client_id} on {channel.topic}"
        try:
            if channel.schema_name not in TWIST_SCHEMAS:
                raise InputError(f"{where}: schema {channel.schema_name} is not read",
                                 f"publish {TWIST_SCHEMAS[0]} on /cmd_vel (Foxglove's Teleop panel)")
            if channel.topic not in self.cmd_vel_topics:
                raise InputError(f"{where}: a Twist on another topic than {self.cmd_vel_topics[0]}",
                                 f"set the Teleop panel's topic to {self.cmd_vel_topics[0]}")
            vx, wz = decode_twist(channel.encoding, data, where)
            if self.session.command_twist(vx, wz, source="Foxglove teleop"):
                self.teleop_commands += 1
            else:
                self._warn_once("mode", f"Teleop: the simulator runs in mode '{self.session.mode}'; "
                                        "driving needs mode control (inspatio-ros run --mode control)")
        except InputError as exc:
            self._warn_once(exc.problem, str(exc))

    def _warn_once(self, key: str, text: str) -> None:
        """A problem of a client's input: logged and shown in the client's problems panel, once."""
        if key in self._warned:
            return
        self._warned.add(key)
        log.warning("Foxglove: %s", text)
        import foxglove

        self.server.publish_status(text, foxglove.StatusLevel.Warning)

    # -- frames ------------------------------------------------------------------------------
    def publish(self, frame) -> None:
        """Hand one SensorFrame to the encoding thread (copies what clients subscribe to; never waits)."""
        if self._closing:
            return
        cams = []
        for cf in frame.cameras:
            ch = self._cameras.get(cf.spec.name)
            if ch is None:
                continue
            points = None
            if ch.points is not None and cf.points is not None and ch.points.has_sinks():
                k = cloud_stride(*cf.points.shape[:2], self.settings.max_points)
                points = np.ascontiguousarray(cf.points[::k, ::k])
            cams.append(_PendingCamera(
                spec=cf.spec, rgb=np.array(cf.rgb) if ch.compressed.has_sinks() else None,
                depth=np.array(cf.depth) if ch.depth is not None and ch.depth.has_sinks() else None,
                points=points, info=ch.info.has_sinks()))
        pending = _PendingFrame(frame.stamp, np.array(frame.map_from_base), np.array(frame.linear_velocity),
                                np.array(frame.angular_velocity), cams)
        with self._cond:
            if self._pending is not None:
                self.frames_skipped += 1
            self._pending = pending
            self._cond.notify()

    def _run(self) -> None:
        last_status, last_latched = -math.inf, self._wall()
        try:
            while True:
                with self._cond:
                    if self._pending is None and not self._closing:
                        self._cond.wait(timeout=STATUS_PERIOD_S)
                    if self._closing:
                        return
                    pending, self._pending = self._pending, None
                    resend, self._resend_latched = self._resend_latched, False
                now = self._wall()
                if resend or now - last_latched >= LATCHED_PERIOD_S:
                    last_latched = now
                    self._send_latched()
                if pending is not None:
                    self._send_frame(pending)
                if now - last_status >= STATUS_PERIOD_S:
                    last_status = now
                    self._send_status()
        except BaseException as exc:              # keep the simulation running; say why the view stopped
            self._error = exc
            log.error("Foxglove view stopped: %s: %s", type(exc).__name__, exc)

    def _send_frame(self, f: _PendingFrame) -> None:
        enc, ns = self.encoder, int(round(f.stamp * 1e9))
        for cam in f.cameras:
            ch = self._cameras[cam.spec.name]
            if cam.info:
                ch.info.log(enc.camera_info_cdr(f.stamp, cam.spec), log_time=ns)
            if cam.rgb is not None:
                ch.compressed.log(enc.compressed_cdr(f.stamp, cam.spec, cam.rgb), log_time=ns)
            if cam.depth is not None:
                ch.depth.log(enc.image_cdr(f.stamp, cam.spec, cam.depth, "32FC1"), log_time=ns)
            if cam.points is not None:
                ch.points.log(enc.points_cdr(f.stamp, cam.spec, cam.points), log_time=ns)
        if self.tf.has_sinks():
            self.tf.log(enc.ego_tf_cdr(f.stamp, f.map_from_base), log_time=ns)
        if self.odom.has_sinks():
            self.odom.log(enc.odometry_cdr(f.stamp, f.map_from_base, f.linear, f.angular), log_time=ns)
        self.server.broadcast_time(ns)
        self.frames_sent += 1

    def _send_latched(self) -> None:
        stamp = self.session.stamp
        ns = int(round(stamp * 1e9))
        if self.tf_static.has_sinks():
            self.tf_static.log(self.encoder.camera_mounts_cdr(stamp, self.session.rig), log_time=ns)
        if self.path.has_sinks():
            self.path.log(self.encoder.line_strip_cdr(stamp, self._path_points, "recorded_path",
                                                      (1.0, 0.6, 0.1, 1.0)), log_time=ns)

    def _send_status(self) -> None:
        if not self.status.has_sinks():
            return
        s = self.session
        stamp = s.stamp
        self.status.log(self.encoder.status_cdr(stamp, self.world_name, s.elapsed, s.rate, s.paused, s.mode,
                                                s.achieved_hz()), log_time=int(round(stamp * 1e9)))

    def resend_latched(self) -> None:
        with self._cond:
            self._resend_latched = True
            self._cond.notify()

    # -- diagnostics and closing -------------------------------------------------------------
    def counts(self) -> dict[str, float]:
        """Diagnostics values: frames sent to Foxglove, frames replaced before they were sent, teleop commands."""
        return {"foxglove.frames_sent": self.frames_sent, "foxglove.frames_skipped": self.frames_skipped,
                "foxglove.teleop_commands": self.teleop_commands}

    def close(self) -> None:
        """Stop the encoding thread and the server (clients are disconnected). Idempotent."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout=5.0)
        self.server.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _json_request(request, kind: str) -> dict:
    """The JSON object a service call carries ({} when it carries nothing)."""
    if not request.payload:
        return {}
    if request.encoding not in ("json", ""):
        raise InputError(f"service {kind}: request in encoding '{request.encoding}'", "send the request as JSON")
    try:
        body = json.loads(bytes(request.payload).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"service {kind}: the request is not JSON ({exc})", 'send e.g. {"data": 12.5}') from None
    if not isinstance(body, dict):
        raise InputError(f"service {kind}: the request is {type(body).__name__}, not an object",
                         'send e.g. {"data": 12.5}')
    return body


class _Listener:
    """foxglove.websocket.ServerListener: client channels, their messages, subscriptions."""

    def __init__(self, view: FoxgloveView):
        self.view = view

    def on_subscribe(self, client, channel) -> None:
        if channel.topic in self.view._latched_topics:
            self.view.resend_latched()

    def on_unsubscribe(self, client, channel) -> None:
        return None

    def on_client_advertise(self, client, channel) -> None:
        self.view.on_client_channel(client.id, channel)

    def on_client_unadvertise(self, client, client_channel_id: int) -> None:
        self.view._client_channels.pop((client.id, client_channel_id), None)

    def on_message_data(self, client, client_channel_id: int, data: bytes) -> None:
        self.view.on_client_message(client.id, client_channel_id, data)
