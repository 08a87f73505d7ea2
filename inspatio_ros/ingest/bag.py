"""rosbag2 input for ``inspatio-ros build`` (MCAP or SQLite storage), read without ROS (``rosbags``).

A bag gives:

* frames from an image topic: ``sensor_msgs/Image`` (rgb8, bgr8, rgba8, bgra8, mono8, mono16) or
  ``sensor_msgs/CompressedImage`` (jpeg, png), stamped with their header stamps;
* intrinsics from the matching ``sensor_msgs/CameraInfo``;
* camera poses from ``nav_msgs/Odometry`` (the pose of its ``child_frame_id`` in its frame),
  interpolated to each image stamp, times the static transform from that child frame to the
  camera's optical frame (``camera_info.header.frame_id``) found on ``/tf_static``;
* depth, if present, from a depth image topic (32FC1 metres or 16UC1 millimetres, registered to
  the colour image) or from a LiDAR ``sensor_msgs/PointCloud2`` projected into each frame (its
  extrinsics from ``/tf_static``; the scan's own time is compensated with the odometry).

Topics are chosen by name and type unless given (``--image-topic`` ...); ``--list`` prints what a
bag holds and what would be chosen.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..camera import Intrinsics, make_pose, quaternion_to_matrix
from ..errors import InputError
from .sources import FrameSet

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
ODOMETRY = "nav_msgs/msg/Odometry"
POINTCLOUD = "sensor_msgs/msg/PointCloud2"
TF = "tf2_msgs/msg/TFMessage"
DEPTH_ENCODINGS = ("32FC1", "16UC1")


def is_bag(path: str | Path) -> bool:
    """A rosbag2 folder (metadata.yaml beside its storage files) or a bare .mcap / .db3 file."""
    path = Path(path)
    if path.is_dir():
        return (path / "metadata.yaml").exists()
    return path.suffix.lower() in (".mcap", ".db3")


@dataclass
class BagTopics:
    """Which topics a build reads: given ones, else chosen from what the bag holds."""

    image: str | None = None
    camera_info: str | None = None
    odometry: str | None = None
    depth: str | None = None
    lidar: str | None = None
    available: dict[str, tuple[str, int]] = field(default_factory=dict)   # topic -> (type, count)

    def describe(self) -> str:
        lines = ["topics in the bag (type, messages):"]
        for topic, (msgtype, count) in sorted(self.available.items()):
            lines.append(f"  {topic:40s} {msgtype:34s} {count}")
        lines.append("a build would read:")
        for role in ("image", "camera_info", "odometry", "depth", "lidar"):
            lines.append(f"  {role:12s} {getattr(self, role) or '-'}")
        return "\n".join(lines)


def _open_reader(path: Path):
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    try:
        reader = AnyReader([path], default_typestore=get_typestore(Stores.ROS2_JAZZY))
        reader.open()
    except Exception as exc:     # rosbags raises its own error types for every kind of damage
        raise InputError(f"bag {path} cannot be read ({type(exc).__name__}: {exc})",
                         "give a rosbag2 folder (metadata.yaml + .mcap/.db3) or an .mcap file that "
                         "`ros2 bag info` can read") from None
    return reader


def _namespace(topic: str) -> str:
    parts = [p for p in topic.split("/") if p]
    while parts and parts[-1] in ("compressed", "image_raw", "image_color", "image_rect_color", "image_rect",
                                  "image", "camera_info"):
        parts.pop()
    return "/" + "/".join(parts)


def choose_topics(available: dict[str, tuple[str, int]], given: BagTopics) -> BagTopics:
    """Fill the roles not given from the bag's topics; given names must exist with a usable type."""
    by_type: dict[str, list[str]] = {}
    for topic, (msgtype, count) in sorted(available.items()):
        if count > 0:
            by_type.setdefault(msgtype, []).append(topic)
    listing = ", ".join(sorted(available)) or "none"

    def check(role: str, topic: str | None, types: tuple[str, ...]) -> str | None:
        if topic is None:
            return None
        if topic not in available:
            raise InputError(f"--{role.replace('_', '-')}-topic {topic} is not in the bag",
                             f"use one of its topics: {listing} (see `inspatio-ros build BAG --list`)")
        if available[topic][0] not in types:
            raise InputError(f"topic {topic} is {available[topic][0]}, not {' or '.join(types)}",
                             f"give a {role.replace('_', ' ')} topic of that type")
        return topic

    out = BagTopics(available=available)
    out.image = check("image", given.image, (IMAGE, COMPRESSED))
    out.camera_info = check("camera_info", given.camera_info, (CAMERA_INFO,))
    out.odometry = check("odom", given.odometry, (ODOMETRY,))
    out.depth = check("depth", given.depth, (IMAGE,))
    out.lidar = check("lidar", given.lidar, (POINTCLOUD,))

    images = by_type.get(IMAGE, []) + by_type.get(COMPRESSED, [])
    colour = [t for t in images if "depth" not in t.lower()]
    if out.image is None:
        if not colour:
            raise InputError("the bag has no colour image topic (sensor_msgs/Image or CompressedImage)",
                             f"record the camera's image topic; the bag holds: {listing}")
        rank = {"image_raw": 0, "image_color": 1, "image_rect_color": 2, "compressed": 4}
        out.image = min(colour, key=lambda t: (rank.get(t.rstrip("/").split("/")[-1], 3), t))
    space = _namespace(out.image)
    if out.camera_info is None:
        infos = by_type.get(CAMERA_INFO, [])
        same = [t for t in infos if _namespace(t) == space]
        out.camera_info = (same or (infos if len(infos) == 1 else [None]))[0]
    if out.odometry is None and by_type.get(ODOMETRY):
        out.odometry = by_type[ODOMETRY][0]
    if out.depth is None and out.lidar is None:
        depth_images = [t for t in by_type.get(IMAGE, []) if "depth" in t.lower()]
        if depth_images:
            out.depth = min(depth_images, key=lambda t: (not t.startswith(space), t))
        elif by_type.get(POINTCLOUD):
            out.lidar = by_type[POINTCLOUD][0]
    return out


def _stamp(header) -> float:
    return header.stamp.sec + header.stamp.nanosec * 1e-9


def _transform(t) -> np.ndarray:
    q, p = t.rotation, t.translation
    return make_pose(quaternion_to_matrix(q.x, q.y, q.z, q.w), (p.x, p.y, p.z))


class StaticTransforms:
    """The /tf_static tree: ``lookup(parent, child)`` composes the chain between two frames."""

    def __init__(self):
        self.edges: dict[str, list[tuple[str, np.ndarray]]] = {}

    def add(self, parent: str, child: str, parent_from_child: np.ndarray) -> None:
        parent, child = parent.lstrip("/"), child.lstrip("/")
        self.edges.setdefault(parent, []).append((child, parent_from_child))
        self.edges.setdefault(child, []).append((parent, np.linalg.inv(parent_from_child)))

    def lookup(self, parent: str, child: str) -> np.ndarray | None:
        """``parent_from_child`` (4x4), or None when the two frames are not connected."""
        parent, child = parent.lstrip("/"), child.lstrip("/")
        if parent == child:
            return np.eye(4)
        seen = {parent: np.eye(4)}
        todo = deque([parent])
        while todo:
            frame = todo.popleft()
            for nxt, frame_from_next in self.edges.get(frame, []):
                if nxt not in seen:
                    seen[nxt] = seen[frame] @ frame_from_next
                    if nxt == child:
                        return seen[nxt]
                    todo.append(nxt)
        return None


def decode_image(msg, msgtype: str, topic: str) -> np.ndarray:
    """A colour image message as (H, W, 3) uint8 RGB."""
    if msgtype == COMPRESSED:
        import io

        from PIL import Image

        try:
            with Image.open(io.BytesIO(bytes(msg.data))) as im:
                return np.asarray(im.convert("RGB"), dtype=np.uint8).copy()
        except OSError as exc:
            raise InputError(f"a compressed image on {topic} cannot be decoded ({exc})",
                             "record jpeg or png compressed images") from None
    enc = msg.encoding.lower()
    h, w, step = msg.height, msg.width, msg.step
    data = np.frombuffer(bytes(msg.data), np.uint8)
    channels = {"rgb8": 3, "bgr8": 3, "8uc3": 3, "rgba8": 4, "bgra8": 4, "8uc4": 4, "mono8": 1, "8uc1": 1}
    if enc in channels:
        c = channels[enc]
        rows = data[: h * step].reshape(h, step)[:, : w * c].reshape(h, w, c)
        if c == 1:
            return np.repeat(rows, 3, axis=2)
        rgb = rows[..., :3]
        return np.ascontiguousarray(rgb[..., ::-1] if enc.startswith("bgr") else rgb)
    if enc in ("mono16", "16uc1"):
        dtype = ">u2" if msg.is_bigendian else "<u2"
        rows = data[: h * step].view(dtype).reshape(h, step // 2)[:, :w]
        gray = (rows >> 8).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    raise InputError(f"images on {topic} are {msg.encoding}", "record rgb8, bgr8, rgba8, bgra8, mono8, mono16 "
                     "or jpeg/png compressed images")


def decode_depth(msg, topic: str) -> np.ndarray:
    """A depth image as float32 metres (H, W): NaN unknown, +inf beyond range (REP-118: sky)."""
    h, w, step = msg.height, msg.width, msg.step
    data = np.frombuffer(bytes(msg.data), np.uint8)
    end = ">" if msg.is_bigendian else "<"
    if msg.encoding == "32FC1":
        depth = data[: h * step].view(end + "f4").reshape(h, step // 4)[:, :w].astype(np.float32)
    elif msg.encoding == "16UC1":
        depth = data[: h * step].view(end + "u2").reshape(h, step // 2)[:, :w].astype(np.float32) / 1000.0
    else:
        raise InputError(f"depth images on {topic} are {msg.encoding}",
                         "record 32FC1 (metres) or 16UC1 (millimetres) depth (REP-118)")
    return np.where((np.isfinite(depth) & (depth > 0)) | np.isposinf(depth), depth, np.nan).astype(np.float32)


def pointcloud_xyz(msg, topic: str) -> np.ndarray:
    """(N, 3) float64 x, y, z of a PointCloud2 (float32 or float64 fields), non-finite dropped."""
    fields = {f.name: f for f in msg.fields}
    if not all(k in fields for k in "xyz"):
        raise InputError(f"point clouds on {topic} have no x, y, z fields", "record a LiDAR cloud with x, y, z")
    kinds = {7: "f4", 8: "f8"}
    n = msg.width * msg.height
    raw = np.frombuffer(bytes(msg.data), np.uint8)[: n * msg.point_step].reshape(n, msg.point_step)
    cols = []
    for k in "xyz":
        f = fields[k]
        if f.datatype not in kinds:
            raise InputError(f"point clouds on {topic} store {k} as datatype {f.datatype}",
                             "record float32 or float64 coordinates")
        dt = np.dtype((">" if msg.is_bigendian else "<") + kinds[f.datatype])
        cols.append(raw[:, f.offset:f.offset + dt.itemsize].copy().view(dt)[:, 0].astype(np.float64))
    xyz = np.stack(cols, 1)
    return xyz[np.isfinite(xyz).all(1)]


def project_points(xyz_cam: np.ndarray, intr: Intrinsics) -> np.ndarray:
    """Sparse depth (H, W) float32 from optical-frame points: nearest point per pixel, NaN elsewhere."""
    depth = np.full((intr.height, intr.width), np.inf, np.float32)
    z = xyz_cam[:, 2]
    front = z > 0.05
    p, z = xyz_cam[front], z[front]
    u = np.floor(p[:, 0] / z * intr.fx + intr.cx + 0.5).astype(np.int64)
    v = np.floor(p[:, 1] / z * intr.fy + intr.cy + 0.5).astype(np.int64)
    inside = (u >= 0) & (u < intr.width) & (v >= 0) & (v < intr.height)
    np.minimum.at(depth, (v[inside], u[inside]), z[inside].astype(np.float32))
    depth[np.isinf(depth)] = np.nan
    return depth


def densify_sparse_depth(depth: np.ndarray) -> np.ndarray:
    """Fill the gaps between sparse depth samples (a LiDAR projected into an image) with the
    nearest sample's depth, up to about one sample spacing away, so that every pixel near a
    sample becomes a surfel (fusion sizes surfels by the pixel footprint, not the sample spacing).
    Pixels farther from any sample stay unknown; edges may bleed by up to one spacing."""
    from scipy.ndimage import distance_transform_edt

    known = np.isfinite(depth)
    n = int(known.sum())
    if n == 0 or known.all():
        return depth
    spacing = np.sqrt(depth.size / n)
    dist, (iy, ix) = distance_transform_edt(~known, return_indices=True)
    filled = depth[iy, ix]
    return np.where(known | (dist <= spacing), filled, np.nan).astype(np.float32)


def open_bag(path: str | Path, topics: BagTopics | None = None, *, list_only: bool = False):
    """Read a bag into a FrameSet with intrinsics, camera poses and depth in memory (images and
    depth decoded per frame on demand). ``list_only``: return the chosen BagTopics only."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"bag {path} does not exist", "give a rosbag2 folder or an .mcap file")
    reader = _open_reader(path)
    try:
        available: dict[str, tuple[str, int]] = {}
        for conn in reader.connections:
            msgtype, count = available.get(conn.topic, (conn.msgtype, 0))
            available[conn.topic] = (msgtype, count + conn.msgcount)
        chosen = choose_topics(available, topics or BagTopics())
        if list_only:
            return chosen
        return _read(reader, path, chosen)
    finally:
        reader.close()


def _read(reader, path: Path, chosen: BagTopics) -> FrameSet:
    from ..sim.simulator import RecordedPath

    wanted = {t for t in (chosen.image, chosen.camera_info, chosen.odometry, chosen.depth, chosen.lidar) if t}
    conns = [c for c in reader.connections if c.topic in wanted or c.msgtype == TF and c.topic == "/tf_static"]
    # Messages are kept as deserialised (their arrays are the payload, not copies), so frames,
    # depth and scans are decoded without a second pass through CDR.
    images: list[tuple[float, object, str]] = []
    depths: list[tuple[float, object]] = []
    scans: list[tuple[float, object]] = []
    odom_t, odom_pose = [], []
    odom_frames: tuple[str, str] | None = None
    info = None
    static = StaticTransforms()
    for conn, _, raw in reader.messages(connections=conns):
        if conn.topic == chosen.image:
            msg = reader.deserialize(raw, conn.msgtype)
            images.append((_stamp(msg.header), msg, conn.msgtype))
        elif conn.topic == chosen.camera_info and info is None:
            info = reader.deserialize(raw, conn.msgtype)
        elif conn.topic == chosen.odometry:
            msg = reader.deserialize(raw, conn.msgtype)
            p, q = msg.pose.pose.position, msg.pose.pose.orientation
            pose = make_pose(quaternion_to_matrix(q.x, q.y, q.z, q.w), (p.x, p.y, p.z))
            if np.isfinite(pose).all():
                odom_t.append(_stamp(msg.header))
                odom_pose.append(pose)
                odom_frames = (msg.header.frame_id, msg.child_frame_id)
        elif conn.topic == chosen.depth:
            msg = reader.deserialize(raw, conn.msgtype)
            depths.append((_stamp(msg.header), msg))
        elif conn.topic == chosen.lidar:
            msg = reader.deserialize(raw, conn.msgtype)
            scans.append((_stamp(msg.header), msg))
        elif conn.topic == "/tf_static":
            for tf in reader.deserialize(raw, conn.msgtype).transforms:
                static.add(tf.header.frame_id, tf.child_frame_id, _transform(tf.transform))
    notes = [f"frames from bag topic {chosen.image}"]
    if len(images) < 2:
        raise InputError(f"bag {path} has {len(images)} image(s) on {chosen.image}", "a world needs at least two frames")
    images.sort(key=lambda x: x[0])
    times = np.array([t for t, _, _ in images])

    def load(i: int) -> np.ndarray:
        _, msg, msgtype = images[i]
        return decode_image(msg, msgtype, chosen.image)

    fs = FrameSet(path, [f"{i:06d}" for i in range(len(images))], times, load, notes=notes)
    if info is not None:
        k = info.k
        fs.intrinsics = Intrinsics(float(k[0]), float(k[4]), float(k[2]), float(k[5]), int(info.width),
                                   int(info.height))
        fs.lens = _lens_of(info, f"bag {path}: {chosen.camera_info}")
        camera_frame = info.header.frame_id
        notes.append(f"intrinsics from {chosen.camera_info}")
    else:
        camera_frame = None

    if chosen.odometry and odom_t:
        parent, child = odom_frames
        if camera_frame is None:
            raise InputError(f"bag {path} has odometry but no camera_info to name the camera's frame",
                             "record the camera's camera_info topic (its frame_id ties the camera to the odometry)")
        child_from_cam = static.lookup(child, camera_frame)
        if child_from_cam is None:
            raise InputError(f"bag {path} has no /tf_static transform from {child} (odometry) to {camera_frame} "
                             "(camera)", "record /tf_static with the camera's mounting on the robot")
        order = np.argsort(odom_t)
        track = RecordedPath(np.asarray(odom_t)[order], np.asarray(odom_pose)[order])
        inside = (times >= track.start - 1e-3) & (times <= track.end + 1e-3)
        if inside.sum() < 2:
            raise InputError(f"the odometry on {chosen.odometry} does not cover the images' time span",
                             "record odometry while the camera records")
        if not inside.all():
            keep = np.nonzero(inside)[0]
            images = [images[i] for i in keep]
            times = times[keep]
            fs.names = [f"{i:06d}" for i in range(len(images))]
            fs.index = np.arange(len(images), dtype=np.int64)
            fs.times = times
            notes.append(f"{int((~inside).sum())} frame(s) outside the odometry's time span dropped")
        fs.pose_array = np.stack([track.camera_pose(t) @ child_from_cam for t in times])
        fs.pose_source = f"odometry {chosen.odometry} ({parent} <- {child}) x /tf_static {child} <- {camera_frame}"
        notes.append(f"poses from {fs.pose_source}")

        if chosen.lidar and scans:
            fs.depth_load = _lidar_depth(scans, times, track, static, child, child_from_cam, fs, chosen.lidar)
            notes.append(f"depth from LiDAR {chosen.lidar} projected into each frame")
    if chosen.depth and depths:
        depths.sort(key=lambda x: x[0])
        dtimes = np.array([t for t, _ in depths])

        def depth_load(i: int) -> np.ndarray:
            j = _nearest(dtimes, times[i], 0.02)
            if j is None:
                return np.full(fs.load(i).shape[:2], np.nan, np.float32)
            return decode_depth(depths[j][1], chosen.depth)

        fs.depth_load = depth_load
        notes.append(f"depth from {chosen.depth}")
    return fs


def _nearest(sorted_times: np.ndarray, t: float, tolerance: float) -> int | None:
    """Index of the time nearest ``t``, or None when it is more than ``tolerance`` away."""
    j = int(np.argmin(np.abs(sorted_times - t)))
    return j if abs(sorted_times[j] - t) <= tolerance else None


def _lidar_depth(scans, times, track, static, base_frame, base_from_cam, fs, topic):
    """Per frame: the nearest scan (within 0.1 s), moved into the camera at the image's time."""
    scans.sort(key=lambda x: x[0])
    stimes = np.array([t for t, _ in scans])
    cam_from_base = np.linalg.inv(base_from_cam)

    def load(i: int) -> np.ndarray:
        j = _nearest(stimes, times[i], 0.1)
        intr = fs.intrinsics
        if j is None or intr is None:
            return np.full(fs.load(i).shape[:2], np.nan, np.float32)
        t_scan, msg = scans[j]
        frame = msg.header.frame_id
        base_from_lidar = static.lookup(base_frame, frame)
        if base_from_lidar is None:
            raise InputError(f"bag has no /tf_static transform from {base_frame} to {frame} (LiDAR {topic})",
                             "record /tf_static with the LiDAR's mounting on the robot")
        xyz = pointcloud_xyz(msg, topic)
        world_from_lidar = track.camera_pose(t_scan) @ base_from_lidar
        cam_from_world = cam_from_base @ np.linalg.inv(track.camera_pose(times[i]))
        m = cam_from_world @ world_from_lidar
        return densify_sparse_depth(project_points(xyz @ m[:3, :3].T + m[:3, 3], intr))

    return load


def _lens_of(info, what: str):
    """The lens (lens.Lens) of a CameraInfo message with a distortion, None for a rectified camera
    (no model, or a plumb_bob / rational_polynomial D of zeros): build undistorts with it."""
    from ..lens import Lens

    d = [float(v) for v in info.d]
    model = str(info.distortion_model or "")
    if not model and not any(d):
        return None
    if model == "plumb_bob" and not any(d):
        return None
    if model == "plumb_bob" and len(d) == 4:
        d.append(0.0)                              # OpenCV's 4-coefficient form: k3 = 0
    lens = Lens.parse(model, d, f"{what} distortion_model / d")
    return None if lens.is_identity else lens
