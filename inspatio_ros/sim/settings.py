"""What a :class:`~inspatio_ros.sim.session.SimSession` is told: frozen dataclasses, one per concern.

Every field carries its unit, valid range and meaning in ``dataclasses.field(metadata=...)``
(keys ``unit``, ``range``, ``doc``), and is checked when the dataclass is made: a bad value is an
:class:`~inspatio_ros.errors.InputError` naming the field and the valid range. The ROS node maps
its dotted parameters onto these (``vehicle.max_speed`` -> ``SessionSettings.vehicle.max_speed``;
``ros/params.py``, :func:`inspatio_ros.ros.params.session_settings`); the parameter names are the
group and field names, except where a field's metadata gives ``param``.

Renderer settings (``RenderSettings``) and the camera rig (``CameraSpec``) have their own types.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field

from ..errors import InputError

MODES = ("replay", "pose", "control", "trajectory")
END_MODES = ("loop", "ping_pong", "hold")


def setting(default, doc: str, unit: str = "", *, ge: float | None = None, gt: float | None = None,
            le: float | None = None, lt: float | None = None, choices: tuple[str, ...] | None = None,
            param: str | None = None):
    """A dataclass field with its documentation and the bounds ``__post_init__`` checks."""
    if choices is not None:
        valid = " | ".join(choices)
    else:
        parts = [f">= {ge:g}" if ge is not None else None, f"> {gt:g}" if gt is not None else None,
                 f"<= {le:g}" if le is not None else None, f"< {lt:g}" if lt is not None else None]
        valid = " and ".join(p for p in parts if p) or ("true | false" if isinstance(default, bool) else "any")
    meta = {"doc": doc, "unit": unit, "range": valid, "bounds": (ge, gt, le, lt), "choices": choices}
    if param is not None:
        meta["param"] = param
    return field(default=default, metadata=meta)


class _Checked:
    """Checks every field against its metadata when the dataclass is made."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if "doc" not in f.metadata:
                continue
            value = getattr(self, f.name)
            where = f"{type(self).__name__}.{f.name} = {value!r}"
            fix = f"give {f.metadata['range']}{(' ' + f.metadata['unit']) if f.metadata['unit'] else ''}"
            if isinstance(f.default, bool):
                ok = isinstance(value, bool)
            elif isinstance(f.default, float):
                ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
                if ok:
                    object.__setattr__(self, f.name, float(value))
            elif isinstance(f.default, str):
                ok = isinstance(value, str)
            else:
                ok = True
            if not ok:
                raise InputError(f"{where} has the wrong type", fix)
            choices = f.metadata["choices"]
            ge, gt, le, lt = f.metadata["bounds"]
            value = getattr(self, f.name)
            if ((choices is not None and value not in choices) or (ge is not None and not value >= ge)
                    or (gt is not None and not value > gt) or (le is not None and not value <= le)
                    or (lt is not None and not value < lt)):
                raise InputError(f"{where} is out of range", fix)


@dataclass(frozen=True)
class ClockSettings(_Checked):
    rate: float = setting(1.0, "sim seconds per wall second (1.0: real time)", "", ge=0.1, le=10.0)
    end_mode: str = setting("loop", "what happens at the end of the recording (sim time always runs on)",
                            choices=END_MODES)


@dataclass(frozen=True)
class ReplaySettings(_Checked):
    lateral_offset: float = setting(0.0, "replay: the ego this far to the left (+) or right (-) of the recorded "
                                         "path", "m", ge=-50.0, le=50.0)
    reference_camera: str = setting("", "the rig camera that recorded the video ('' = the first)")


@dataclass(frozen=True)
class TrajectorySettings(_Checked):
    file: str = setting("", "mode trajectory: a trajectory file (keyframe, TUM, KITTI, 4x4) or preset name")
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
    max_jump: float = setting(5.0, "slack on top of max_speed * interval a pose input may move (0: no check)",
                              "m", ge=0.0)
    stale_after: float = setting(1.0, "stamped inputs older than this are dropped (0: accept any age)", "s",
                                 ge=0.0)


@dataclass(frozen=True)
class SessionSettings(_Checked):
    """Everything a SimSession needs besides the world, the rig and the renderer's settings."""

    mode: str = setting("replay", "where the ego comes from: the recorded path, set_pose, commands or a "
                                  "trajectory file", choices=MODES)
    lockstep: bool = setting(False, "render only on step() (and, in mode pose, once per accepted pose, "
                                    "stamped with it): deterministic output")
    device: str = setting("auto", "torch device of the renderer: auto, cpu, cuda, cuda:1 ...")
    external_clock: bool = setting(False, "time comes from follow_clock() (another node's /clock), not the "
                                          "wall clock", param="use_sim_time")
    clock: ClockSettings = field(default_factory=ClockSettings)
    replay: ReplaySettings = field(default_factory=ReplaySettings)
    trajectory: TrajectorySettings = field(default_factory=TrajectorySettings)
    vehicle: VehicleSettings = field(default_factory=VehicleSettings)
    input: InputSettings = field(default_factory=InputSettings)
