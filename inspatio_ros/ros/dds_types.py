"""ROS 2 message types as Cyclone DDS IDL structs, wire-compatible with rmw (Fast DDS, Cyclone).

Each struct carries the DDS type name rmw gives the ROS type (``sensor_msgs/msg/Image`` is
``sensor_msgs::msg::dds_::Image_``) and its fields in the order and with the types of the .msg file
(ros2/common_interfaces, Jazzy), so the classic CDR (XCDR1) bytes are the ones any ROS 2 node
expects. Every field has a default, so a message is built from keywords with any left out, as
with rclpy's classes. Differences from rclpy's classes that the node may notice:

* uint8[] fields (Image.data, CompressedImage.data, PointCloud2.data) are ``bytes``;
* fixed arrays (CameraInfo.k, PoseWithCovariance.covariance) are lists, not numpy arrays;
* ``byte`` fields (DiagnosticStatus.level) are ints, not 1-byte ``bytes``
  (``DiagnosticStatus.OK`` .. ``STALE`` are the right constants on each transport).
"""
from dataclasses import dataclass, field

from cyclonedds.idl import IdlStruct
from cyclonedds.idl.types import (
    array,
    byte,
    float32,
    float64,
    int32,
    sequence,
    uint8,
    uint32,
)


def _patch_xtypes_bytes() -> None:
    """Let cyclonedds's XTypes type-object builder take ``bytes`` fields.

    The serialiser handles a ``bytes`` field as sequence<uint8> with a single buffer write (the
    fast path for images and clouds), but XTBuilder, which describes the type for discovery when
    a topic is created, has no case for ``bytes`` and fails. Describing it as sequence<uint8>
    (which is what it is on the wire) fixes that. Applied once, at import.
    """
    try:
        from cyclonedds.idl._xt_builder import XTBuilder as builder
    except ImportError:             # a cyclonedds without XTypes: nothing to patch
        return
    if getattr(builder, "_inspatio_bytes_patched", False):
        return
    seq_u8 = sequence[uint8].__metadata__[0]

    def wrap(original):
        def wrapped(cls, *args, **kwargs):
            args = tuple(seq_u8 if a is bytes else a for a in args)
            kwargs = {k: (seq_u8 if v is bytes else v) for k, v in kwargs.items()}
            return original(cls, *args, **kwargs)
        return classmethod(wrapped)

    for name in ("_xt_type_identifier", "_impl_xt_is_plain", "_impl_xt_is_fully_descriptive"):
        setattr(builder, name, wrap(getattr(builder, name).__func__))
    builder._inspatio_bytes_patched = True


_patch_xtypes_bytes()


# --- builtin_interfaces ----------------------------------------------------------------------

@dataclass
class Time(IdlStruct, typename="builtin_interfaces::msg::dds_::Time_"):
    sec: int32 = 0
    nanosec: uint32 = 0


# --- std_msgs ----------------------------------------------------------------------------------

@dataclass
class Header(IdlStruct, typename="std_msgs::msg::dds_::Header_"):
    stamp: Time = field(default_factory=Time)
    frame_id: str = ""


@dataclass
class Bool(IdlStruct, typename="std_msgs::msg::dds_::Bool_"):
    data: bool = False


@dataclass
class Float64(IdlStruct, typename="std_msgs::msg::dds_::Float64_"):
    data: float64 = 0.0


@dataclass
class Empty(IdlStruct, typename="std_msgs::msg::dds_::Empty_"):
    # rosidl gives an empty message this one member (IDL structs cannot be empty)
    structure_needs_at_least_one_member: uint8 = 0


@dataclass
class String(IdlStruct, typename="std_msgs::msg::dds_::String_"):
    data: str = ""


# --- geometry_msgs -----------------------------------------------------------------------------

@dataclass
class Vector3(IdlStruct, typename="geometry_msgs::msg::dds_::Vector3_"):
    x: float64 = 0.0
    y: float64 = 0.0
    z: float64 = 0.0


@dataclass
class Point(IdlStruct, typename="geometry_msgs::msg::dds_::Point_"):
    x: float64 = 0.0
    y: float64 = 0.0
    z: float64 = 0.0


@dataclass
class Quaternion(IdlStruct, typename="geometry_msgs::msg::dds_::Quaternion_"):
    x: float64 = 0.0
    y: float64 = 0.0
    z: float64 = 0.0
    w: float64 = 1.0


@dataclass
class Pose(IdlStruct, typename="geometry_msgs::msg::dds_::Pose_"):
    position: Point = field(default_factory=Point)
    orientation: Quaternion = field(default_factory=Quaternion)


@dataclass
class PoseStamped(IdlStruct, typename="geometry_msgs::msg::dds_::PoseStamped_"):
    header: Header = field(default_factory=Header)
    pose: Pose = field(default_factory=Pose)


def _zeros(n: int):
    return lambda: [0.0] * n


@dataclass
class PoseWithCovariance(IdlStruct, typename="geometry_msgs::msg::dds_::PoseWithCovariance_"):
    pose: Pose = field(default_factory=Pose)
    covariance: array[float64, 36] = field(default_factory=_zeros(36))


@dataclass
class Twist(IdlStruct, typename="geometry_msgs::msg::dds_::Twist_"):
    linear: Vector3 = field(default_factory=Vector3)
    angular: Vector3 = field(default_factory=Vector3)


@dataclass
class TwistStamped(IdlStruct, typename="geometry_msgs::msg::dds_::TwistStamped_"):
    header: Header = field(default_factory=Header)
    twist: Twist = field(default_factory=Twist)


@dataclass
class TwistWithCovariance(IdlStruct, typename="geometry_msgs::msg::dds_::TwistWithCovariance_"):
    twist: Twist = field(default_factory=Twist)
    covariance: array[float64, 36] = field(default_factory=_zeros(36))


@dataclass
class Transform(IdlStruct, typename="geometry_msgs::msg::dds_::Transform_"):
    translation: Vector3 = field(default_factory=Vector3)
    rotation: Quaternion = field(default_factory=Quaternion)


@dataclass
class TransformStamped(IdlStruct, typename="geometry_msgs::msg::dds_::TransformStamped_"):
    header: Header = field(default_factory=Header)
    child_frame_id: str = ""
    transform: Transform = field(default_factory=Transform)


# --- sensor_msgs -------------------------------------------------------------------------------

@dataclass
class Image(IdlStruct, typename="sensor_msgs::msg::dds_::Image_"):
    header: Header = field(default_factory=Header)
    height: uint32 = 0
    width: uint32 = 0
    encoding: str = ""
    is_bigendian: uint8 = 0
    step: uint32 = 0
    data: bytes = b""           # uint8[]


@dataclass
class CompressedImage(IdlStruct, typename="sensor_msgs::msg::dds_::CompressedImage_"):
    header: Header = field(default_factory=Header)
    format: str = ""
    data: bytes = b""           # uint8[]


@dataclass
class RegionOfInterest(IdlStruct, typename="sensor_msgs::msg::dds_::RegionOfInterest_"):
    x_offset: uint32 = 0
    y_offset: uint32 = 0
    height: uint32 = 0
    width: uint32 = 0
    do_rectify: bool = False


@dataclass
class CameraInfo(IdlStruct, typename="sensor_msgs::msg::dds_::CameraInfo_"):
    header: Header = field(default_factory=Header)
    height: uint32 = 0
    width: uint32 = 0
    distortion_model: str = ""
    d: sequence[float64] = field(default_factory=list)
    k: array[float64, 9] = field(default_factory=_zeros(9))
    r: array[float64, 9] = field(default_factory=_zeros(9))
    p: array[float64, 12] = field(default_factory=_zeros(12))
    binning_x: uint32 = 0
    binning_y: uint32 = 0
    roi: RegionOfInterest = field(default_factory=RegionOfInterest)


@dataclass
class PointField(IdlStruct, typename="sensor_msgs::msg::dds_::PointField_"):
    INT8 = 1
    UINT8 = 2
    INT16 = 3
    UINT16 = 4
    INT32 = 5
    UINT32 = 6
    FLOAT32 = 7
    FLOAT64 = 8

    name: str = ""
    offset: uint32 = 0
    datatype: uint8 = 0
    count: uint32 = 0


@dataclass
class PointCloud2(IdlStruct, typename="sensor_msgs::msg::dds_::PointCloud2_"):
    header: Header = field(default_factory=Header)
    height: uint32 = 0
    width: uint32 = 0
    fields: sequence[PointField] = field(default_factory=list)
    is_bigendian: bool = False
    point_step: uint32 = 0
    row_step: uint32 = 0
    data: bytes = b""           # uint8[]
    is_dense: bool = False


# --- nav_msgs, tf2_msgs, ackermann_msgs, rosgraph_msgs -----------------------------------------

@dataclass
class Odometry(IdlStruct, typename="nav_msgs::msg::dds_::Odometry_"):
    header: Header = field(default_factory=Header)
    child_frame_id: str = ""
    pose: PoseWithCovariance = field(default_factory=PoseWithCovariance)
    twist: TwistWithCovariance = field(default_factory=TwistWithCovariance)


@dataclass
class TFMessage(IdlStruct, typename="tf2_msgs::msg::dds_::TFMessage_"):
    transforms: sequence[TransformStamped] = field(default_factory=list)


@dataclass
class AckermannDrive(IdlStruct, typename="ackermann_msgs::msg::dds_::AckermannDrive_"):
    steering_angle: float32 = 0.0
    steering_angle_velocity: float32 = 0.0
    speed: float32 = 0.0
    acceleration: float32 = 0.0
    jerk: float32 = 0.0


@dataclass
class AckermannDriveStamped(IdlStruct, typename="ackermann_msgs::msg::dds_::AckermannDriveStamped_"):
    header: Header = field(default_factory=Header)
    drive: AckermannDrive = field(default_factory=AckermannDrive)


@dataclass
class Clock(IdlStruct, typename="rosgraph_msgs::msg::dds_::Clock_"):
    clock: Time = field(default_factory=Time)


# --- diagnostic_msgs ---------------------------------------------------------------------------

@dataclass
class KeyValue(IdlStruct, typename="diagnostic_msgs::msg::dds_::KeyValue_"):
    key: str = ""
    value: str = ""


@dataclass
class DiagnosticStatus(IdlStruct, typename="diagnostic_msgs::msg::dds_::DiagnosticStatus_"):
    OK = 0
    WARN = 1
    ERROR = 2
    STALE = 3

    level: byte = 0             # .msg `byte` = IDL octet
    name: str = ""
    message: str = ""
    hardware_id: str = ""
    values: sequence[KeyValue] = field(default_factory=list)


@dataclass
class DiagnosticArray(IdlStruct, typename="diagnostic_msgs::msg::dds_::DiagnosticArray_"):
    header: Header = field(default_factory=Header)
    status: sequence[DiagnosticStatus] = field(default_factory=list)


# --- inspatio_ros_interfaces (msg/SimStatus.msg) ----------------------------------------------------------

@dataclass
class SimStatus(IdlStruct, typename="inspatio_ros_interfaces::msg::dds_::SimStatus_"):
    header: Header = field(default_factory=Header)
    world: str = ""
    sim_time: float64 = 0.0
    rate: float64 = 0.0
    paused: bool = False
    mode: str = ""
    achieved_hz: float64 = 0.0


# --- rmw_dds_common (the ROS graph: which node owns which readers / writers) --------------------

@dataclass
class Gid(IdlStruct, typename="rmw_dds_common::msg::dds_::Gid_"):
    data: array[uint8, 16] = field(default_factory=lambda: [0] * 16)


@dataclass
class NodeEntitiesInfo(IdlStruct, typename="rmw_dds_common::msg::dds_::NodeEntitiesInfo_"):
    node_namespace: str = ""    # string<256>
    node_name: str = ""         # string<256>
    reader_gid_seq: sequence[Gid] = field(default_factory=list)
    writer_gid_seq: sequence[Gid] = field(default_factory=list)


@dataclass
class ParticipantEntitiesInfo(IdlStruct, typename="rmw_dds_common::msg::dds_::ParticipantEntitiesInfo_"):
    gid: Gid = field(default_factory=Gid)
    node_entities_info_seq: sequence[NodeEntitiesInfo] = field(default_factory=list)


MESSAGE_TYPES: dict[str, type] = {
    "builtin_interfaces/msg/Time": Time,
    "std_msgs/msg/Header": Header,
    "std_msgs/msg/Bool": Bool,
    "std_msgs/msg/Float64": Float64,
    "std_msgs/msg/Empty": Empty,
    "std_msgs/msg/String": String,
    "geometry_msgs/msg/Vector3": Vector3,
    "geometry_msgs/msg/Point": Point,
    "geometry_msgs/msg/Quaternion": Quaternion,
    "geometry_msgs/msg/Pose": Pose,
    "geometry_msgs/msg/PoseStamped": PoseStamped,
    "geometry_msgs/msg/PoseWithCovariance": PoseWithCovariance,
    "geometry_msgs/msg/Twist": Twist,
    "geometry_msgs/msg/TwistStamped": TwistStamped,
    "geometry_msgs/msg/TwistWithCovariance": TwistWithCovariance,
    "geometry_msgs/msg/Transform": Transform,
    "geometry_msgs/msg/TransformStamped": TransformStamped,
    "sensor_msgs/msg/Image": Image,
    "sensor_msgs/msg/CompressedImage": CompressedImage,
    "sensor_msgs/msg/CameraInfo": CameraInfo,
    "sensor_msgs/msg/RegionOfInterest": RegionOfInterest,
    "sensor_msgs/msg/PointField": PointField,
    "sensor_msgs/msg/PointCloud2": PointCloud2,
    "nav_msgs/msg/Odometry": Odometry,
    "tf2_msgs/msg/TFMessage": TFMessage,
    "ackermann_msgs/msg/AckermannDrive": AckermannDrive,
    "ackermann_msgs/msg/AckermannDriveStamped": AckermannDriveStamped,
    "rosgraph_msgs/msg/Clock": Clock,
    "diagnostic_msgs/msg/KeyValue": KeyValue,
    "diagnostic_msgs/msg/DiagnosticStatus": DiagnosticStatus,
    "diagnostic_msgs/msg/DiagnosticArray": DiagnosticArray,
    "inspatio_ros_interfaces/msg/SimStatus": SimStatus,
}
