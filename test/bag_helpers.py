"""Write rosbag2 (MCAP) recordings of synthetic scenes, as a robot would record them, for the
bag-input tests: the scene's camera rides on a base_link with a known mounting."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from inspatio_ros.camera import load_camera_info, make_pose, matrix_to_quaternion, rotation_from_rpy
from inspatio_ros.posefile import read_poses
from inspatio_ros.sim.rig import LINK_FROM_OPTICAL_ROTATION
from inspatio_ros.video import read_image

# Camera mounting: base_link -> camera_link (x forward 1.2 m, up 1.4 m, pitched down 2 degrees),
# camera_link -> camera_optical_frame (REP-103 optical rotation).
BASE_FROM_LINK = make_pose(rotation_from_rpy(0.0, np.radians(2.0), 0.0), (1.2, 0.0, 1.4))
LINK_FROM_OPTICAL = make_pose(LINK_FROM_OPTICAL_ROTATION, (0.0, 0.0, 0.0))
BASE_FROM_OPTICAL = BASE_FROM_LINK @ LINK_FROM_OPTICAL
# LiDAR on the roof, yawed 90 degrees (its own frame, not the camera's).
BASE_FROM_LIDAR = make_pose(rotation_from_rpy(0.0, 0.0, np.radians(90.0)), (0.3, 0.1, 1.9))


def _types():
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_JAZZY)


def _header(ts, t: float, frame: str):
    sec = int(np.floor(t))
    return ts.types["std_msgs/msg/Header"](
        stamp=ts.types["builtin_interfaces/msg/Time"](sec=sec, nanosec=int(round((t - sec) * 1e9))), frame_id=frame)


def _transform_msg(ts, t: float, parent: str, child: str, pose: np.ndarray):
    T = ts.types
    q = matrix_to_quaternion(pose[:3, :3])
    return T["geometry_msgs/msg/TransformStamped"](
        header=_header(ts, t, parent), child_frame_id=child,
        transform=T["geometry_msgs/msg/Transform"](
            translation=T["geometry_msgs/msg/Vector3"](x=pose[0, 3], y=pose[1, 3], z=pose[2, 3]),
            rotation=T["geometry_msgs/msg/Quaternion"](x=q[0], y=q[1], z=q[2], w=q[3])))


def _image(ts, t, frame, array: np.ndarray, encoding: str):
    h, w = array.shape[:2]
    data = np.ascontiguousarray(array).view(np.uint8).reshape(-1)
    return ts.types["sensor_msgs/msg/Image"](header=_header(ts, t, frame), height=h, width=w, encoding=encoding,
                                             is_bigendian=0, step=len(data) // h, data=data)


def _camera_info(ts, t, frame, intr, lens=None):
    T = ts.types
    model, d = ("plumb_bob", np.zeros(5)) if lens is None else (lens.model, np.array(lens.D, np.float64))
    k = np.array([intr.fx, 0, intr.cx, 0, intr.fy, intr.cy, 0, 0, 1], np.float64)
    p = np.array([intr.fx, 0, intr.cx, 0, 0, intr.fy, intr.cy, 0, 0, 0, 1, 0], np.float64)
    return T["sensor_msgs/msg/CameraInfo"](
        header=_header(ts, t, frame), height=intr.height, width=intr.width, distortion_model=model,
        d=d, k=k, r=np.eye(3).reshape(-1), p=p, binning_x=0, binning_y=0,
        roi=T["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0, do_rectify=False))


def _odometry(ts, t, pose: np.ndarray):
    T = ts.types
    q = matrix_to_quaternion(pose[:3, :3])
    zeros = T["geometry_msgs/msg/Vector3"](x=0.0, y=0.0, z=0.0)
    return T["nav_msgs/msg/Odometry"](
        header=_header(ts, t, "odom"), child_frame_id="base_link",
        pose=T["geometry_msgs/msg/PoseWithCovariance"](
            pose=T["geometry_msgs/msg/Pose"](position=T["geometry_msgs/msg/Point"](x=pose[0, 3], y=pose[1, 3],
                                                                                   z=pose[2, 3]),
                                             orientation=T["geometry_msgs/msg/Quaternion"](x=q[0], y=q[1], z=q[2],
                                                                                           w=q[3])),
            covariance=np.zeros(36)),
        twist=T["geometry_msgs/msg/TwistWithCovariance"](
            twist=T["geometry_msgs/msg/Twist"](linear=zeros, angular=zeros), covariance=np.zeros(36)))


def _pointcloud(ts, t, frame, xyz: np.ndarray):
    T = ts.types
    fields = [T["sensor_msgs/msg/PointField"](name=n, offset=4 * i, datatype=7, count=1) for i, n in enumerate("xyz")]
    data = np.ascontiguousarray(xyz, dtype="<f4").view(np.uint8).reshape(-1)
    return T["sensor_msgs/msg/PointCloud2"](header=_header(ts, t, frame), height=1, width=len(xyz), fields=fields,
                                            is_bigendian=False, point_step=12, row_step=12 * len(xyz), data=data,
                                            is_dense=True)


def write_scene_bag(scene: Path, bag: Path, *, depth: bool = True, lidar: bool = False, odometry: bool = True,
                    static_tf: bool = True, image: bool = True, odom_rate: int = 3, lens=None) -> dict:
    """Record ``scene`` (an ``inspatio-ros synth`` folder) into the MCAP bag folder ``bag``.

    Topics: /camera/image_raw (rgb8), /camera/camera_info, /camera/depth/image (32FC1, +inf = sky),
    /odom (base_link in odom, ``odom_rate`` samples per frame interval, interpolated), /tf_static
    and, with ``lidar``, /lidar/points: the scene's exact depth of every 3rd pixel, in the LiDAR's
    frame. Returns the truth: camera c2w per frame, times, intrinsics. ``lens`` (lens.Lens): the
    camera_info's distortion_model and d (the scene's frames are not distorted by it).
    """
    from rosbags.rosbag2 import StoragePlugin, Writer
    from scipy.spatial.transform import Rotation, Slerp

    ts = _types()
    intr = load_camera_info(scene / "camera_info.yaml")
    c2w, _ = read_poses(scene / "poses_tum.txt")
    times = np.array([float(x) for x in (scene / "times.txt").read_text().split()])
    frames = sorted((scene / "frames").glob("*.png"))
    depths = sorted((scene / "depth").glob("*.npy"))
    base = c2w @ np.linalg.inv(BASE_FROM_OPTICAL)            # odom <- base_link at each frame
    slerp = Slerp(times, Rotation.from_matrix(base[:, :3, :3]))
    ser = ts.serialize_cdr
    with Writer(bag, version=9, storage_plugin=StoragePlugin.MCAP) as w:
        def conn(topic, msgtype):
            return w.add_connection(topic, msgtype, typestore=ts)

        c_img = conn("/camera/image_raw", "sensor_msgs/msg/Image") if image else None
        c_info = conn("/camera/camera_info", "sensor_msgs/msg/CameraInfo")
        c_depth = conn("/camera/depth/image", "sensor_msgs/msg/Image") if depth else None
        c_odom = conn("/odom", "nav_msgs/msg/Odometry") if odometry else None
        c_lidar = conn("/lidar/points", "sensor_msgs/msg/PointCloud2") if lidar else None
        if static_tf:
            c_tf = conn("/tf_static", "tf2_msgs/msg/TFMessage")
            msg = ts.types["tf2_msgs/msg/TFMessage"](transforms=[
                _transform_msg(ts, times[0], "base_link", "camera_link", BASE_FROM_LINK),
                _transform_msg(ts, times[0], "camera_link", "camera_optical_frame", LINK_FROM_OPTICAL),
                _transform_msg(ts, times[0], "base_link", "lidar_link", BASE_FROM_LIDAR)])
            w.write(c_tf, int(times[0] * 1e9), ser(msg, "tf2_msgs/msg/TFMessage"))
        if odometry:
            for k in range(len(times) - 1):
                for s in range(odom_rate):
                    t = times[k] + (times[k + 1] - times[k]) * s / odom_rate
                    a = (t - times[k]) / (times[k + 1] - times[k])
                    pose = make_pose(slerp([t]).as_matrix()[0], (1 - a) * base[k, :3, 3] + a * base[k + 1, :3, 3])
                    w.write(c_odom, int(t * 1e9), ser(_odometry(ts, t, pose), "nav_msgs/msg/Odometry"))
            w.write(c_odom, int(times[-1] * 1e9), ser(_odometry(ts, times[-1], base[-1]), "nav_msgs/msg/Odometry"))
        for i, t in enumerate(times):
            ns = int(round(t * 1e9))
            w.write(c_info, ns, ser(_camera_info(ts, t, "camera_optical_frame", intr, lens), "sensor_msgs/msg/CameraInfo"))
            if image:
                w.write(c_img, ns, ser(_image(ts, t, "camera_optical_frame", read_image(frames[i]), "rgb8"),
                                       "sensor_msgs/msg/Image"))
            d = np.load(depths[i]).astype(np.float32)
            if depth:
                w.write(c_depth, ns, ser(_image(ts, t, "camera_optical_frame", d, "32FC1"), "sensor_msgs/msg/Image"))
            if lidar:
                v, u = np.mgrid[0:intr.height:3, 0:intr.width:3]
                z = d[v, u]
                ok = np.isfinite(z) & (z > 0)
                cam = np.stack([(u[ok] - intr.cx) / intr.fx * z[ok], (v[ok] - intr.cy) / intr.fy * z[ok], z[ok]], 1)
                lidar_from_cam = np.linalg.inv(BASE_FROM_LIDAR) @ BASE_FROM_OPTICAL
                pts = cam @ lidar_from_cam[:3, :3].T + lidar_from_cam[:3, 3]
                w.write(c_lidar, ns, ser(_pointcloud(ts, t, "lidar_link", pts), "sensor_msgs/msg/PointCloud2"))
    return {"c2w": c2w, "times": times, "intrinsics": intr}
