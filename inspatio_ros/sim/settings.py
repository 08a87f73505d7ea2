"""What the simulator is told: frozen dataclasses, one per concern, without ROS.

:class:`SessionSettings` is what a :class:`~inspatio_ros.sim.session.SimSession` needs (clock,
replay, trajectory, vehicle limits, input checks); :class:`NodeSettings` adds what the ROS node
needs around it (world, refiner, frame ids, publishing, QoS). Every field carries its unit, valid
range and meaning in ``dataclasses.field(metadata=...)`` (keys ``unit``, ``range``, ``doc``), and
is checked when the dataclass is made: a bad value is an :class:`~inspatio_ros.errors.InputError`
naming the field and the valid range.

The node's dotted parameter names are the group and field names (``vehicle.max_speed`` is
``NodeSettings.session.vehicle.max_speed``; the session's groups sit at the top level), except
where a field's metadata gives ``param``. :mod:`inspatio_ros.sim.parameters` maps these
dataclasses to and from those names and ROS 2 YAML files, and writes the README's table.

Renderer settings (``RenderSettings``) and the camera rig (``CameraSpec``) have their own types.
"""
from __future__ import annotations

from dataclasses import dataclass

# The field helpers live below sim/ because the renderer's settings use them too.
from ..checked_settings import CheckedSettings as _Checked
from ..checked_settings import check_setting, group, setting  # noqa: F401  (check_setting: public here too)

MODES = ("replay", "pose", "control", "trajectory")
END_MODES = ("loop", "ping_pong", "hold")


@dataclass(frozen=True)
class ClockSettings(_Checked):
    rate: float = setting(1.0, "sim seconds per wall second (1.0: real time)", "", ge=0.1, le=10.0)
    end_mode: str = setting("loop", "what happens at the end of the recording (sim time and /clock always run "
                                    "forward)", choices=END_MODES)
    publish: bool = setting(True, "the node is the time source and publishes /clock (read by the node, not the "
                                  "session; never with use_sim_time)")


@dataclass(frozen=True)
class ReplaySettings(_Checked):
    lateral_offset: float = setting(0.0, "replay: the ego this far to the left (+) or right (-) of the recorded "
                                         "path", "m", ge=-50.0, le=50.0)
    reference_camera: str = setting("", "the rig camera that recorded the video ('' = the first)")


@dataclass(frozen=True)
class TrajectorySettings(_Checked):
    file: str = setting("", "mode trajectory: a trajectory file (keyframe, target_tcw, TUM, KITTI, 4x4) or "
                                  "preset name")
    look_at_depth: float = setting(10.0, "pivot distance of InSpatio keyframe orbits", "m", gt=0.0)
    fps: float = setting(10.0, "poses per second of trajectory files without times", "Hz", gt=0.0)


@dataclass(frozen=True)
class VehicleSettings(_Checked):
    wheelbase: float = setting(2.7, "bicycle model: rear axle to front axle", "m", ge=0.1, le=20.0)
    max_steer: float = setting(0.6, "bicycle model: largest front-wheel angle", "rad", gt=0.0, lt=1.5)
    max_steer_rate: float = setting(1.0, "bicycle model: fastest steering change", "rad/s", gt=0.0)
    max_speed: float = setting(30.0, "both models, and pose inputs' jump limit", "m/s", gt=0.0)
    max_accel: float = setting(3.0, "speed gain per second", "m/s^2", gt=0.0)
    max_decel: float = setting(8.0, "bicycle model: speed loss per second", "m/s^2", gt=0.0)
    max_yaw_rate: float = setting(1.5, "unicycle model: fastest turn", "rad/s", gt=0.0)
    command_timeout: float = setting(0.5, "sim seconds without a command before the ego brakes to a stop", "s",
                                     gt=0.0)


@dataclass(frozen=True)
class InputSettings(_Checked):
    max_jump: float = setting(5.0, "how far a pose input may move beyond max_speed x the time since the previous "
                                   "accepted pose (0: no check)", "m", ge=0.0)
    stale_after: float = setting(1.0, "stamped inputs older than this are dropped (0: accept any age)", "s",
                                 ge=0.0)
    tf_child: str = setting("", "mode pose: the ego pose is the TF chain frames.map -> ... -> this frame (read by "
                                "the node, which then publishes no /tf of its own; '' = off)")


@dataclass(frozen=True)
class SessionSettings(_Checked):
    """Everything a SimSession needs besides the world, the rig and the renderer's settings."""

    mode: str = setting("replay", "where the ego comes from: the recorded path, set_pose, commands or a "
                                  "trajectory file", choices=MODES)
    lockstep: bool = setting(False, "render only on step() (and, in mode pose, once per accepted pose, "
                                    "stamped with it): deterministic output")
    device: str = setting("auto", "torch device of the renderer: auto, cpu, cuda, cuda:1 ...")
    external_clock: bool = setting(False, "time comes from another clock, not the wall clock: the node follows "
                                          "/clock of another node (outputs stamped with its time, no /clock of "
                                          "its own; ROS's own parameter on rclpy), a SimSession follow_clock()",
                                   param="use_sim_time")
    clock: ClockSettings = group(ClockSettings, "sim clock")
    replay: ReplaySettings = group(ReplaySettings, "mode replay")
    trajectory: TrajectorySettings = group(TrajectorySettings, "mode trajectory")
    vehicle: VehicleSettings = group(VehicleSettings, "mode control: vehicle models and their limits")
    input: InputSettings = group(InputSettings, "checks on pose and command inputs")


@dataclass(frozen=True)
class FrameIds(_Checked):
    map: str = setting("map", "frame id of the world (z up); poses come in it")
    odom: str = setting("odom", "frame id of odometry (map -> odom is the identity: perfect localisation)")
    base_link: str = setting("base_link", "frame id of the ego (REP-103: x forward, y left, z up)")


WRITER_PROCESS = ("auto", "on", "off")


@dataclass(frozen=True)
class PublishSettings(_Checked):
    tf: bool = setting(True, "publish /tf (map -> odom -> base_link) with every render")
    odom: bool = setting(True, "publish odom (nav_msgs/Odometry) with every render")
    status_hz: float = setting(2.0, "rate of the status topic (0: off)", "Hz", ge=0.0)
    diagnostics_hz: float = setting(1.0, "rate of /diagnostics (0: off)", "Hz", ge=0.0)
    writer_process: str = setting("auto", "on: camera messages are written by one process per camera from shared "
                                          "memory the renderer fills directly (a DDS write holds Python's GIL); "
                                          "auto: on for the dds transport on CUDA", choices=WRITER_PROCESS)
    jpeg_quality: int = setting(90, "JPEG quality of the compressed output", ge=1, le=100)
    rate_warning_s: float = setting(60.0, "time between console warnings that the node runs under its target "
                                          "rate, with the reason: render, publish or subscriber backpressure "
                                          "(0: never)", "s", ge=0.0)


RELIABILITIES = ("", "reliable", "best_effort")


@dataclass(frozen=True)
class QosOverride(_Checked):
    reliability: str = setting("", "reliable or best_effort ('' = the topic's default in the README's topic "
                                   "table)", choices=RELIABILITIES)
    depth: int = setting(0, "history depth (0 = the topic's default)", ge=0, le=1000)


@dataclass(frozen=True)
class QosSettings:
    """One override per output (and ``inputs`` for the subscriptions); parameter ``qos.<output>.*``."""

    image: QosOverride = group(QosOverride, "<cam>/image_raw")
    camera_info: QosOverride = group(QosOverride, "<cam>/camera_info, <cam>/depth/camera_info")
    depth: QosOverride = group(QosOverride, "<cam>/depth/image")
    points: QosOverride = group(QosOverride, "<cam>/points")
    coverage: QosOverride = group(QosOverride, "<cam>/coverage")
    compressed: QosOverride = group(QosOverride, "<cam>/image_raw/compressed")
    odom: QosOverride = group(QosOverride, "odom")
    tf: QosOverride = group(QosOverride, "/tf")
    status: QosOverride = group(QosOverride, "status")
    diagnostics: QosOverride = group(QosOverride, "/diagnostics")
    clock: QosOverride = group(QosOverride, "/clock")
    inputs: QosOverride = group(QosOverride, "the input subscriptions (pose, odom_in, cmd_vel, ackermann_cmd)")


@dataclass(frozen=True)
class RecordSettings(_Checked):
    dir: str = setting("", "record everything the node publishes into this new folder, a rosbag2 recording with "
                           "MCAP storage ('' = off; --record DIR)")
    split_mb: float = setting(0.0, "start a new MCAP file when one reaches this size (0: never)", "MiB", ge=0.0)
    split_s: float = setting(0.0, "start a new MCAP file after this many wall seconds (0: never)", "s", ge=0.0)
    queue_mb: float = setting(256.0, "messages waiting for the disk beyond this are dropped (counted in "
                                     "/diagnostics as record.dropped), so recording never slows publishing",
                              "MiB", gt=0.0)


@dataclass(frozen=True)
class FoxgloveSettings(_Checked):
    port: int = setting(0, "serve the live view to Foxglove on this WebSocket port (0 = off; --foxglove [PORT], "
                           "8765 without a number): camera JPEGs, depth, camera_info, clouds, /tf, odom, the "
                           "recorded path, status; Teleop Twist and pause/resume/seek/rate/reset services in",
                        ge=0, le=65535)
    host: str = setting("127.0.0.1", "address the Foxglove server binds (0.0.0.0: every interface, reachable "
                                     "from other machines)")
    jpeg_quality: int = setting(80, "JPEG quality of the camera images sent to Foxglove", ge=1, le=100)
    max_points: int = setting(100_000, "clouds sent to Foxglove keep every k-th row and column so that at most "
                                       "this many points go out per camera and frame", gt=0)


GENERATORS = ("none", "refiner")


@dataclass(frozen=True)
class NodeSettings(_Checked):
    """Everything the simulator node is told besides its camera rig (``cameras.*``) and renderer
    (``render.*``): the session's settings plus the node's own."""

    world: str = setting("", "world file ('' = the embedded default world)")
    generator: str = setting("none", "none: the raw point render; refiner: every render passes through the "
                                     "world's learned refiner (inspatio-ros train-generator WORLD)", choices=GENERATORS)
    generator_weights: str = setting("", "refiner weights file ('' = WORLD.generator.safetensors beside the world)",
                                     param="generator.weights")
    session: SessionSettings = group(SessionSettings, "the simulation (SimSession)", prefix="")
    frames: FrameIds = group(FrameIds, "frame ids")
    publish: PublishSettings = group(PublishSettings, "what is published, and how")
    qos: QosSettings = group(QosSettings, "QoS overrides per output")
    record: RecordSettings = group(RecordSettings, "recording what is published (rosbag2, MCAP)")
    foxglove: FoxgloveSettings = group(FoxgloveSettings, "the live view and teleop in Foxglove (WebSocket)")
