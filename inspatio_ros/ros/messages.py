"""ROS 2 messages from simulator output, the same code for every transport.

Payloads are built from contiguous numpy buffers (one ``tobytes`` per field, no per-pixel or
per-point Python). Conventions:

* image_raw: ``rgb8``; depth: REP-118 ``32FC1`` metres, NaN where unknown; coverage: ``mono8``
  (255 = the world was seen there, 0 = hole-filled or empty).
* points: organised ``PointCloud2`` (height x width of the image), fields x, y, z (float32, metres,
  optical frame) and rgb (float32 holding 0x00RRGGBB, the PCL / RViz convention), NaN xyz where
  depth is unknown (so ``is_dense`` is False).
* LiDAR points (:meth:`MessageBuilder.lidar_cloud`): unorganised ``PointCloud2`` (height 1), one
  point per return in firing order, fields as the structured array's (sim/lidar.py: the Velodyne
  x, y, z, intensity f32, ring u16, time f32 layout, or Autoware's PointXYZIRCAEDT), ``is_dense``.
* camera_info: the camera's lens (rig distortion_model and D; plumb_bob with zeros for a pinhole
  camera), P = [K | 0].
"""
from __future__ import annotations

import io
import math
from typing import Any, Sequence

import numpy as np

from ..camera import Intrinsics, matrix_to_quaternion

# sensor_msgs/PointField datatypes
FLOAT32 = 7
POINT_STEP = 16   # x, y, z, rgb as float32

# diagnostic_msgs/DiagnosticStatus levels
DIAG_OK, DIAG_WARN, DIAG_ERROR = 0, 1, 2


def split_stamp(t: float) -> tuple[int, int]:
    """Seconds -> (sec, nanosec) with nanosec in [0, 1e9) (negative times floor, as rclpy does)."""
    ns = int(round(t * 1e9))
    return ns // 1_000_000_000, ns % 1_000_000_000


def stamp_seconds(stamp) -> float:
    return float(stamp.sec) + float(stamp.nanosec) * 1e-9


class MessageBuilder:
    """Builds the node's messages with the classes of one transport."""

    def __init__(self, transport):
        self.t = transport
        cls = transport.message_class
        self.Time = cls("builtin_interfaces/msg/Time")
        self.Header = cls("std_msgs/msg/Header")
        self.Image = cls("sensor_msgs/msg/Image")
        self.CompressedImage = cls("sensor_msgs/msg/CompressedImage")
        self.CameraInfo = cls("sensor_msgs/msg/CameraInfo")
        self.PointField = cls("sensor_msgs/msg/PointField")
        self.PointCloud2 = cls("sensor_msgs/msg/PointCloud2")
        self.Vector3 = cls("geometry_msgs/msg/Vector3")
        self.Point = cls("geometry_msgs/msg/Point")
        self.Quaternion = cls("geometry_msgs/msg/Quaternion")
        self.Pose = cls("geometry_msgs/msg/Pose")
        self.Transform = cls("geometry_msgs/msg/Transform")
        self.TransformStamped = cls("geometry_msgs/msg/TransformStamped")
        self.PoseWithCovariance = cls("geometry_msgs/msg/PoseWithCovariance")
        self.Twist = cls("geometry_msgs/msg/Twist")
        self.TwistWithCovariance = cls("geometry_msgs/msg/TwistWithCovariance")
        self.Odometry = cls("nav_msgs/msg/Odometry")
        self.TFMessage = cls("tf2_msgs/msg/TFMessage")
        self.Clock = cls("rosgraph_msgs/msg/Clock")
        self.KeyValue = cls("diagnostic_msgs/msg/KeyValue")
        self.DiagnosticStatus = cls("diagnostic_msgs/msg/DiagnosticStatus")
        self.DiagnosticArray = cls("diagnostic_msgs/msg/DiagnosticArray")
        self.SimStatus = cls("inspatio_ros_interfaces/msg/SimStatus")

    # -- small pieces ------------------------------------------------------------------------
    def time(self, t: float):
        sec, nanosec = split_stamp(t)
        return self.Time(sec=sec, nanosec=nanosec)

    def header(self, t: float, frame_id: str):
        return self.Header(stamp=self.time(t), frame_id=frame_id)

    def transform(self, matrix: np.ndarray):
        q = matrix_to_quaternion(matrix[:3, :3])
        x, y, z = (float(v) for v in matrix[:3, 3])
        return self.Transform(translation=self.Vector3(x=x, y=y, z=z),
                              rotation=self.Quaternion(x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])))

    def transform_stamped(self, t: float, parent: str, child: str, matrix: np.ndarray):
        return self.TransformStamped(header=self.header(t, parent), child_frame_id=child,
                                     transform=self.transform(matrix))

    def pose(self, matrix: np.ndarray):
        q = matrix_to_quaternion(matrix[:3, :3])
        x, y, z = (float(v) for v in matrix[:3, 3])
        return self.Pose(position=self.Point(x=x, y=y, z=z),
                         orientation=self.Quaternion(x=float(q[0]), y=float(q[1]), z=float(q[2]), w=float(q[3])))

    # -- sensor messages ---------------------------------------------------------------------
    def image(self, header, pixels: np.ndarray, encoding: str):
        """rgb8 (H, W, 3) uint8, 32FC1 (H, W) float32 or mono8 (H, W) uint8 -> sensor_msgs/Image."""
        pixels = np.ascontiguousarray(pixels)
        h, w = pixels.shape[:2]
        return self.Image(header=header, height=h, width=w, encoding=encoding,
                          is_bigendian=0, step=w * pixels.itemsize * (pixels.shape[2] if pixels.ndim == 3 else 1),
                          data=self.t.byte_payload(pixels.astype(pixels.dtype.newbyteorder("<"), copy=False)))

    def compressed(self, header, rgb: np.ndarray, quality: int = 90):
        from PIL import Image as PILImage

        buf = io.BytesIO()
        PILImage.fromarray(rgb).save(buf, format="JPEG", quality=int(quality))
        return self.CompressedImage(header=header, format="jpeg", data=self.t.byte_payload(buf.getbuffer()))

    def camera_info(self, header, intr: Intrinsics, lens=None):
        """K of ``intr``; ``lens`` (lens.Lens, None: an ideal pinhole) gives distortion_model and D.
        P = [K | 0]: image_proc rectifies a distorted image to the pinhole view of the same K."""
        fx, fy, cx, cy = (float(v) for v in (intr.fx, intr.fy, intr.cx, intr.cy))
        model, d = ("plumb_bob", [0.0] * 5) if lens is None else (lens.model, [float(v) for v in lens.D])
        return self.CameraInfo(
            header=header, height=int(intr.height), width=int(intr.width), distortion_model=model,
            d=d, k=[fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0],
            r=[1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0],
            p=[fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0])

    def point_cloud(self, header, cloud: np.ndarray):
        """(H, W, 4) float32 from sim.simulator.organised_points -> organised PointCloud2."""
        h, w = cloud.shape[:2]
        fields = [self.PointField(name=n, offset=4 * i, datatype=FLOAT32, count=1)
                  for i, n in enumerate(("x", "y", "z", "rgb"))]
        return self.PointCloud2(header=header, height=h, width=w, fields=fields, is_bigendian=False,
                                point_step=POINT_STEP, row_step=POINT_STEP * w,
                                data=self.t.byte_payload(np.ascontiguousarray(cloud, dtype="<f4")),
                                is_dense=False)

    def lidar_cloud(self, header, points: np.ndarray):
        """A structured array of points (sim/lidar.py's layouts) -> unorganised PointCloud2."""
        from ..sim.lidar import POINT_FIELD_TYPES

        dtype = points.dtype
        fields = [self.PointField(name=name, offset=int(dtype.fields[name][1]),
                                  datatype=POINT_FIELD_TYPES[dtype.fields[name][0]], count=1)
                  for name in dtype.names]
        n = len(points)
        return self.PointCloud2(header=header, height=1, width=n, fields=fields, is_bigendian=False,
                                point_step=dtype.itemsize, row_step=dtype.itemsize * n,
                                data=self.t.byte_payload(np.ascontiguousarray(points).view(np.uint8)),
                                is_dense=True)

    # -- ego, time, status -------------------------------------------------------------------
    def odometry(self, t: float, odom_frame: str, base_frame: str, odom_from_base: np.ndarray,
                 linear: Sequence[float], angular: Sequence[float]):
        """Pose in ``odom_frame``, twist in ``base_frame`` (as nav_msgs/Odometry specifies)."""
        twist = self.Twist(linear=self.Vector3(x=float(linear[0]), y=float(linear[1]), z=float(linear[2])),
                           angular=self.Vector3(x=float(angular[0]), y=float(angular[1]), z=float(angular[2])))
        return self.Odometry(header=self.header(t, odom_frame), child_frame_id=base_frame,
                             pose=self.PoseWithCovariance(pose=self.pose(odom_from_base), covariance=[0.0] * 36),
                             twist=self.TwistWithCovariance(twist=twist, covariance=[0.0] * 36))

    def _byte(self, value: int):
        # A ROS `byte` field (DiagnosticStatus.level): rclpy wants bytes of length 1, IDL an int.
        return bytes([value]) if self.t.name == "rclpy" else int(value)

    def tf(self, transforms: list):
        return self.TFMessage(transforms=transforms)

    def clock(self, t: float):
        return self.Clock(clock=self.time(t))

    def diagnostics(self, t: float, name: str, hardware_id: str, level: int, message: str,
                    values: dict[str, Any]):
        status = self.DiagnosticStatus(level=self._byte(level), name=name, message=message, hardware_id=hardware_id,
                                       values=[self.KeyValue(key=k, value=_fmt(v)) for k, v in values.items()])
        return self.DiagnosticArray(header=self.header(t, ""), status=[status])

    def status(self, t: float, frame_id: str, world: str, sim_time: float, rate: float, paused: bool,
               mode: str, achieved_hz: float):
        return self.SimStatus(header=self.header(t, frame_id), world=world, sim_time=float(sim_time),
                              rate=float(rate), paused=bool(paused), mode=mode, achieved_hz=float(achieved_hz))


def _fmt(value) -> str:
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value)
