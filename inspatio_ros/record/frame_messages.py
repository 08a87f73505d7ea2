"""A :class:`~inspatio_ros.sim.simulator.SensorFrame` as the node's messages, in CDR, without ROS.

For recordings made from a SimSession (sweeps, gym environments) where no node runs: the same
topics, frame ids, encodings and conventions as the node (ros/messages.py, ros/all_outputs.py,
ros/outputs.py): rgb8 image, 32FC1 depth, mono8 coverage, organised x y z rgb PointCloud2,
plumb_bob camera_info with zero distortion, JPEG compressed image, /tf map -> odom -> base_link,
odom, /clock and /tf_static for the camera and LiDAR mounts; LiDAR sweeps as unorganised
PointCloud2 on ``/<lidar>/points`` in ``<lidar>_link``. The classes and the serialiser are rosbags'
(a core dependency); test/test_record.py checks that the bytes equal what the node publishes.
"""
from __future__ import annotations

import io
from typing import Iterator

import numpy as np

from ..camera import Intrinsics, matrix_to_quaternion
from .recorder import qos_profile, typestore

FLOAT32 = 7            # sensor_msgs/PointField datatype


def camera_topic_names(name: str) -> dict[str, str]:
    """Output -> absolute topic of camera ``name`` (the node's, with no namespace)."""
    return {"image": f"/{name}/image_raw", "camera_info": f"/{name}/camera_info",
            "depth": f"/{name}/depth/image", "depth_info": f"/{name}/depth/camera_info",
            "points": f"/{name}/points", "coverage": f"/{name}/coverage",
            "compressed": f"/{name}/image_raw/compressed"}


class FrameEncoder:
    """Turns SensorFrames into (topic, type, CDR bytes, QoS), remembering which camera mounts
    went out on /tf_static already."""

    def __init__(self, frames=None, jpeg_quality: int = 90):
        from ..sim.settings import FrameIds

        self.frames = frames or FrameIds()
        self.jpeg_quality = int(jpeg_quality)
        self.store = typestore()
        self.T = self.store.types
        self._mounted: set[str] = set()

    def _cdr(self, msg) -> bytes:
        return bytes(self.store.serialize_cdr(msg, msg.__msgtype__))

    def _time(self, t: float):
        ns = int(round(t * 1e9))
        return self.T["builtin_interfaces/msg/Time"](sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)

    def _header(self, t: float, frame_id: str):
        return self.T["std_msgs/msg/Header"](stamp=self._time(t), frame_id=frame_id)

    def _transform_stamped(self, t: float, parent: str, child: str, matrix: np.ndarray):
        T = self.T
        q = matrix_to_quaternion(matrix[:3, :3])
        x, y, z = (float(v) for v in matrix[:3, 3])
        transform = T["geometry_msgs/msg/Transform"](
            translation=T["geometry_msgs/msg/Vector3"](x=x, y=y, z=z),
            rotation=T["geometry_msgs/msg/Quaternion"](x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])))
        return T["geometry_msgs/msg/TransformStamped"](header=self._header(t, parent), child_frame_id=child,
                                                        transform=transform)

    def _tf(self, transforms):
        return self.T["tf2_msgs/msg/TFMessage"](transforms=transforms)

    def _image(self, header, pixels: np.ndarray, encoding: str):
        pixels = np.ascontiguousarray(pixels)
        h, w = pixels.shape[:2]
        step = w * pixels.itemsize * (pixels.shape[2] if pixels.ndim == 3 else 1)
        data = np.frombuffer(pixels.astype(pixels.dtype.newbyteorder("<"), copy=False).tobytes(), np.uint8)
        return self.T["sensor_msgs/msg/Image"](header=header, height=h, width=w, encoding=encoding, is_bigendian=0,
                                               step=step, data=data)

    def _camera_info(self, header, intr: Intrinsics):
        fx, fy, cx, cy = (float(v) for v in (intr.fx, intr.fy, intr.cx, intr.cy))
        T = self.T
        roi = T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)
        return T["sensor_msgs/msg/CameraInfo"](
            header=header, height=int(intr.height), width=int(intr.width), distortion_model="plumb_bob",
            d=np.zeros(5), k=np.array([fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0]), r=np.eye(3).ravel(),
            p=np.array([fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0]), binning_x=0, binning_y=0, roi=roi)

    def _point_cloud(self, header, cloud: np.ndarray):
        T = self.T
        h, w = cloud.shape[:2]
        fields = [T["sensor_msgs/msg/PointField"](name=n, offset=4 * i, datatype=FLOAT32, count=1)
                  for i, n in enumerate(("x", "y", "z", "rgb"))]
        data = np.frombuffer(np.ascontiguousarray(cloud, dtype="<f4").tobytes(), np.uint8)
        return T["sensor_msgs/msg/PointCloud2"](header=header, height=h, width=w, fields=fields, is_bigendian=False,
                                                point_step=16, row_step=16 * w, data=data, is_dense=False)

    def _lidar_cloud(self, header, points: np.ndarray):
        from ..sim.lidar import POINT_FIELD_TYPES

        T, dtype, n = self.T, points.dtype, len(points)
        fields = [T["sensor_msgs/msg/PointField"](name=name, offset=int(dtype.fields[name][1]),
                                                  datatype=POINT_FIELD_TYPES[dtype.fields[name][0]], count=1)
                  for name in dtype.names]
        data = np.ascontiguousarray(points).view(np.uint8).copy()
        return T["sensor_msgs/msg/PointCloud2"](header=header, height=1, width=n, fields=fields, is_bigendian=False,
                                                point_step=dtype.itemsize, row_step=dtype.itemsize * n, data=data,
                                                is_dense=True)

    def _compressed(self, header, rgb: np.ndarray):
        from PIL import Image as PILImage

        buf = io.BytesIO()
        PILImage.fromarray(rgb).save(buf, format="JPEG", quality=self.jpeg_quality)
        return self.T["sensor_msgs/msg/CompressedImage"](header=header, format="jpeg",
                                                         data=np.frombuffer(buf.getvalue(), np.uint8))

    def _odometry(self, t: float, odom_from_base: np.ndarray, linear, angular):
        T, f = self.T, self.frames
        q = matrix_to_quaternion(odom_from_base[:3, :3])
        x, y, z = (float(v) for v in odom_from_base[:3, 3])
        pose = T["geometry_msgs/msg/Pose"](
            position=T["geometry_msgs/msg/Point"](x=x, y=y, z=z),
            orientation=T["geometry_msgs/msg/Quaternion"](x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])))
        vec = T["geometry_msgs/msg/Vector3"]
        twist = T["geometry_msgs/msg/Twist"](linear=vec(x=float(linear[0]), y=float(linear[1]), z=float(linear[2])),
                                             angular=vec(x=float(angular[0]), y=float(angular[1]),
                                                         z=float(angular[2])))
        return T["nav_msgs/msg/Odometry"](
            header=self._header(t, f.odom), child_frame_id=f.base_link,
            pose=T["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=np.zeros(36)),
            twist=T["geometry_msgs/msg/TwistWithCovariance"](twist=twist, covariance=np.zeros(36)))

    # -- one message each, CDR bytes (also what the live Foxglove view sends) ------------------
    def camera_mounts_cdr(self, stamp: float, specs) -> bytes:
        """/tf_static: base_link -> link -> optical frame of each camera in ``specs``."""
        f = self.frames
        return self._cdr(self._tf([tf for spec in specs for tf in (
            self._transform_stamped(stamp, f.base_link, spec.link_frame, spec.base_from_link()),
            self._transform_stamped(stamp, spec.link_frame, spec.optical_frame, spec.link_from_optical()))]))

    def camera_info_cdr(self, stamp: float, spec) -> bytes:
        return self._cdr(self._camera_info(self._header(stamp, spec.optical_frame), spec.intrinsics))

    def image_cdr(self, stamp: float, spec, pixels: np.ndarray, encoding: str) -> bytes:
        """sensor_msgs/Image of ``pixels`` (rgb8, 32FC1, mono8) in the camera's optical frame."""
        return self._cdr(self._image(self._header(stamp, spec.optical_frame), pixels, encoding))

    def points_cdr(self, stamp: float, spec, cloud: np.ndarray) -> bytes:
        """Organised x y z rgb PointCloud2 of ``cloud`` (H, W, 4) in the camera's optical frame."""
        return self._cdr(self._point_cloud(self._header(stamp, spec.optical_frame), cloud))

    def compressed_cdr(self, stamp: float, spec, rgb: np.ndarray) -> bytes:
        """JPEG CompressedImage of ``rgb`` at the encoder's ``jpeg_quality``."""
        return self._cdr(self._compressed(self._header(stamp, spec.optical_frame), rgb))

    def lidar_mounts_cdr(self, stamp: float, specs) -> bytes:
        """/tf_static: base_link -> <lidar>_link of each LiDAR in ``specs``."""
        return self._cdr(self._tf([self._transform_stamped(stamp, self.frames.base_link, spec.frame,
                                                           spec.base_from_link()) for spec in specs]))

    def lidar_cdr(self, stamp: float, spec, points: np.ndarray) -> bytes:
        """Unorganised PointCloud2 of a LiDAR sweep (sim/lidar.py's structured points) in <lidar>_link."""
        return self._cdr(self._lidar_cloud(self._header(stamp, spec.frame), points))

    def ego_tf_cdr(self, stamp: float, map_from_base: np.ndarray) -> bytes:
        """/tf: map -> odom (identity) -> base_link."""
        f = self.frames
        return self._cdr(self._tf([self._transform_stamped(stamp, f.map, f.odom, np.eye(4)),
                                   self._transform_stamped(stamp, f.odom, f.base_link, map_from_base)]))

    def odometry_cdr(self, stamp: float, map_from_base: np.ndarray, linear, angular) -> bytes:
        return self._cdr(self._odometry(stamp, map_from_base, linear, angular))

    def status_cdr(self, stamp: float, world: str, sim_time: float, rate: float, paused: bool, mode: str,
                   achieved_hz: float) -> bytes:
        """The node's SimStatus (msg/SimStatus.msg)."""
        return self._cdr(self.T["inspatio_ros_interfaces/msg/SimStatus"](
            header=self._header(stamp, self.frames.map), world=world, sim_time=float(sim_time), rate=float(rate),
            paused=bool(paused), mode=mode, achieved_hz=float(achieved_hz)))

    def line_strip_cdr(self, stamp: float, points: np.ndarray, namespace: str,
                       rgba: tuple[float, float, float, float], width: float = 0.15) -> bytes:
        """visualization_msgs/Marker LINE_STRIP through ``points`` (N, 3), in the map frame."""
        T = self.T
        marker = T["visualization_msgs/msg/Marker"]
        identity = T["geometry_msgs/msg/Pose"](position=T["geometry_msgs/msg/Point"](x=0.0, y=0.0, z=0.0),
                                               orientation=T["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0,
                                                                                             w=1.0))
        color = T["std_msgs/msg/ColorRGBA"](r=float(rgba[0]), g=float(rgba[1]), b=float(rgba[2]), a=float(rgba[3]))
        zero = T["builtin_interfaces/msg/Duration"](sec=0, nanosec=0)
        msg = marker(
            header=self._header(stamp, self.frames.map), ns=namespace, id=0, type=marker.LINE_STRIP,
            action=marker.ADD, pose=identity, scale=T["geometry_msgs/msg/Vector3"](x=float(width), y=0.0, z=0.0),
            color=color, lifetime=zero, frame_locked=False,
            points=[T["geometry_msgs/msg/Point"](x=float(x), y=float(y), z=float(z)) for x, y, z in points],
            colors=[], texture_resource="", texture=T["sensor_msgs/msg/CompressedImage"](
                header=self._header(0.0, ""), format="", data=np.zeros(0, np.uint8)),
            uv_coordinates=[], text="", mesh_resource="",
            mesh_file=T["visualization_msgs/msg/MeshFile"](filename="", data=np.zeros(0, np.uint8)),
            mesh_use_embedded_materials=False)
        return self._cdr(msg)

    def messages(self, frame) -> Iterator[tuple[str, str, bytes, dict]]:
        """(topic, type, CDR, QoS) of one frame, in the order the node publishes them."""
        stamp = frame.stamp
        sensor, default = qos_profile(depth=5), qos_profile()
        for cf in frame.cameras:
            spec, topics = cf.spec, camera_topic_names(cf.spec.name)
            if spec.name not in self._mounted:
                self._mounted.add(spec.name)
                yield "/tf_static", "tf2_msgs/msg/TFMessage", self.camera_mounts_cdr(stamp, [spec]), \
                    qos_profile(durability="transient_local", depth=1)
            info = self.camera_info_cdr(stamp, spec)
            yield topics["camera_info"], "sensor_msgs/msg/CameraInfo", info, sensor
            if "image" in spec.outputs:
                yield topics["image"], "sensor_msgs/msg/Image", self.image_cdr(stamp, spec, cf.rgb, "rgb8"), sensor
            if "depth" in spec.outputs:
                yield topics["depth"], "sensor_msgs/msg/Image", self.image_cdr(stamp, spec, cf.depth, "32FC1"), sensor
                yield topics["depth_info"], "sensor_msgs/msg/CameraInfo", info, sensor
            if "points" in spec.outputs and cf.points is not None:
                yield topics["points"], "sensor_msgs/msg/PointCloud2", self.points_cdr(stamp, spec, cf.points), sensor
            if "coverage" in spec.outputs and cf.coverage is not None:
                mono = cf.coverage.view(np.uint8) * np.uint8(255)
                yield topics["coverage"], "sensor_msgs/msg/Image", self.image_cdr(stamp, spec, mono, "mono8"), sensor
            if "compressed" in spec.outputs:
                yield topics["compressed"], "sensor_msgs/msg/CompressedImage", self.compressed_cdr(stamp, spec, cf.rgb), \
                    sensor
        for lidar in getattr(frame, "lidars", ()):
            spec = lidar.spec
            if spec.frame not in self._mounted:
                self._mounted.add(spec.frame)
                yield "/tf_static", "tf2_msgs/msg/TFMessage", self.lidar_mounts_cdr(stamp, [spec]), \
                    qos_profile(durability="transient_local", depth=1)
            yield f"/{spec.name}/points", "sensor_msgs/msg/PointCloud2", self.lidar_cdr(stamp, spec, lidar.points), \
                sensor
        yield "/tf", "tf2_msgs/msg/TFMessage", self.ego_tf_cdr(stamp, frame.map_from_base), default
        yield "/odom", "nav_msgs/msg/Odometry", self.odometry_cdr(
            stamp, frame.map_from_base, frame.linear_velocity, frame.angular_velocity), default
        yield "/clock", "rosgraph_msgs/msg/Clock", self._cdr(self.T["rosgraph_msgs/msg/Clock"](
            clock=self._time(stamp))), qos_profile("best_effort", depth=1)
