"""The node's parameters: names, defaults, checks (one table for YAML, CLI and ``ros2 param``).

Camera rig parameters (``cameras.*``) are read by :func:`inspatio_ros.sim.rig.load_rig` and
renderer ones (``render.*``) by :mod:`inspatio_ros.config`; everything else is listed here.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass
from typing import Any

from ..errors import InputError
from ..sim.settings import END_MODES, MODES, SessionSettings

OUTPUT_QOS_KEYS = ("image", "camera_info", "depth", "points", "coverage", "compressed", "odom", "tf",
                   "status", "diagnostics", "clock", "inputs")

# name: (default, check, what a valid value is)
NODE_PARAMETERS: dict[str, tuple[Any, Any, str]] = {
    "world": ("", None, "a world file path ('' = the embedded default world)"),
    "device": ("auto", None, "auto, cpu, cuda, cuda:1 ..."),
    "generator": ("none", lambda v: v in ("none", "refiner"),
                  "none (the raw point render) | refiner (the world's learned refiner)"),
    "generator.weights": ("", None, "refiner weights file ('' = WORLD.generator.safetensors beside the world)"),
    "mode": ("replay", lambda v: v in MODES, " | ".join(MODES)),
    "lockstep": (False, None, "true or false"),
    "clock.rate": (1.0, lambda v: 0.1 <= v <= 10.0, "0.1 .. 10.0 (1.0 = real time)"),
    "clock.end_mode": ("loop", lambda v: v in END_MODES, " | ".join(END_MODES)),
    "clock.publish": (True, None, "true: the node is the time source and publishes /clock"),
    "use_sim_time": (False, None, "true: follow /clock of another node (then no /clock is published)"),
    "replay.lateral_offset": (0.0, lambda v: abs(v) <= 50.0, "metres to the left (+) or right (-), |x| <= 50"),
    "replay.reference_camera": ("", None, "the rig camera that recorded the video ('' = the first)"),
    "trajectory.file": ("", None, "a trajectory file or preset name (mode trajectory)"),
    "trajectory.look_at_depth": (10.0, lambda v: v > 0, "metres > 0 (InSpatio keyframe orbits)"),
    "trajectory.fps": (10.0, lambda v: v > 0, "poses per second of files without times"),
    "vehicle.wheelbase": (2.7, lambda v: 0.1 <= v <= 20.0, "metres, 0.1 .. 20"),
    "vehicle.max_steer": (0.6, lambda v: 0.0 < v < 1.5, "radians, 0 .. 1.5"),
    "vehicle.max_steer_rate": (1.0, lambda v: v > 0, "radians per second > 0"),
    "vehicle.max_speed": (30.0, lambda v: v > 0, "metres per second > 0"),
    "vehicle.max_accel": (3.0, lambda v: v > 0, "metres per second squared > 0"),
    "vehicle.max_decel": (8.0, lambda v: v > 0, "metres per second squared > 0"),
    "vehicle.max_yaw_rate": (1.5, lambda v: v > 0, "radians per second > 0"),
    "vehicle.command_timeout": (0.5, lambda v: v > 0, "seconds of sim time > 0 (then the ego brakes)"),
    "input.max_jump": (5.0, lambda v: v >= 0, "metres per pose message (0 = no limit)"),
    "input.tf_child": ("", None, "a frame whose transform from frames.map on /tf is the ego pose (mode pose)"),
    "input.stale_after": (1.0, lambda v: v >= 0, "seconds (0 = accept any age)"),
    "frames.map": ("map", None, "frame id"),
    "frames.odom": ("odom", None, "frame id"),
    "frames.base_link": ("base_link", None, "frame id"),
    "publish.tf": (True, None, "true or false"),
    "publish.odom": (True, None, "true or false"),
    "publish.status_hz": (2.0, lambda v: v >= 0, "Hz >= 0 (0 = off)"),
    "publish.diagnostics_hz": (1.0, lambda v: v >= 0, "Hz >= 0 (0 = off)"),
    "publish.writer_process": ("auto", lambda v: v in ("auto", "on", "off"),
                               "auto (on for dds + CUDA) | on | off: camera messages written by one process per camera"),
    "publish.jpeg_quality": (90, lambda v: 1 <= v <= 100, "1 .. 100"),
    "publish.rate_warning_s": (60.0, lambda v: v >= 0,
                               "seconds between console warnings that the node runs under its target rate "
                               "(0 = never)"),
}


def _qos_parameters() -> dict[str, tuple[Any, Any, str]]:
    out = {}
    for key in OUTPUT_QOS_KEYS:
        out[f"qos.{key}.reliability"] = ("", lambda v: v in ("", "reliable", "best_effort"),
                                         "reliable | best_effort ('' = the default)")
        out[f"qos.{key}.depth"] = (0, lambda v: 0 <= v <= 1000, "history depth 1 .. 1000 (0 = the default)")
    return out


NODE_PARAMETERS.update(_qos_parameters())


@dataclass
class NodeParameters:
    values: dict[str, Any]

    def __getitem__(self, name: str) -> Any:
        return self.values[name]


def split_parameters(params: dict[str, Any]) -> tuple[NodeParameters, dict[str, Any], dict[str, Any]]:
    """-> (node parameters with defaults filled in, camera parameters, render parameters)."""
    node: dict[str, Any] = {k: v[0] for k, v in NODE_PARAMETERS.items()}
    cameras: dict[str, Any] = {}
    render: dict[str, Any] = {}
    for name, value in params.items():
        if name.startswith("cameras."):
            cameras[name] = value
        elif name.startswith("render."):
            render[name] = value
        elif name in NODE_PARAMETERS:
            if name == "publish.writer_process" and isinstance(value, bool):
                value = "on" if value else "off"         # YAML 1.1 reads a bare on/off as a bool
            node[name] = _check(name, value)
        elif name == "start_type_description_service":      # declared by every rclpy node
            continue
        else:
            close = difflib.get_close_matches(name, list(NODE_PARAMETERS), n=1)
            hint = f"did you mean '{close[0]}'?" if close else "see the parameter table in the README"
            raise InputError(f"parameter '{name}' is unknown", hint)
    return NodeParameters(node), cameras, render


def _check(name: str, value: Any) -> Any:
    default, check, valid = NODE_PARAMETERS[name]
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
        ok = ok and math.isfinite(value)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, str)
    if not ok:
        raise InputError(f"parameter '{name}' = {value!r} has the wrong type",
                         f"give {type(default).__name__}: {valid}")
    if check is not None and not check(value):
        raise InputError(f"parameter '{name}' = {value!r} is out of range", f"give {valid}")
    return value


def session_settings(node: NodeParameters) -> SessionSettings:
    """The SimSession settings of checked node parameters: field ``g.f`` of group ``g`` is parameter
    ``g.f`` (top-level fields: their own name), unless the field's metadata names its ``param``."""
    def build(cls, prefix: str):
        kwargs = {}
        for f in dataclasses.fields(cls):
            if "doc" in f.metadata:
                kwargs[f.name] = node[f.metadata.get("param", prefix + f.name)]
            else:                                        # a group of settings
                kwargs[f.name] = build(f.default_factory, f"{f.name}.")
        return cls(**kwargs)
    return build(SessionSettings, "")
