"""Scenario files: what one closed-loop drive in a world is, and the matrix of them a sweep runs.

A scenario file is YAML: one mapping (one scenario, or a matrix of them) or a list of mappings.
Every field but ``controller`` and ``metrics`` is a plain value; **a list where a value goes is a
matrix axis**, and a file expands into the product of its axes (in file order)::

    name: street-lateral                 # default: the file's stem; swept values are appended
    world: ""                            # world file ('' = the embedded default world)
    start_time: 0.0                      # s after the recording's start where the ego starts
    duration: 8.0                        # s of simulation
    rate: 10.0                           # Hz: camera frames and controller steps
    camera: {width: 160, height: 90}     # the recording's camera at this size (0: its own size)
    initial_offset: {lateral: [0.0, 0.5], heading: 0.0}   # m left of the path, rad left of it
    controller: baseline                 # or {type: baseline, params: {...}}, "pkg.mod:make", ros2
    perturbations:
      sensor_noise: [0, 4]               # std of Gaussian noise on the images, 8-bit levels
      drop_frames: 0.1                   # share of frames the controller never gets
      sim_rate: 0                        # 0: lockstep; > 0: sim seconds per wall second (paced)
      seed: 0
    metrics: [cross_track, heading, comfort, corridor, progress, timing]

expands into 4 scenarios (2 offsets x 2 noise levels). The scalar fields are the dataclasses
below (:class:`ScenarioSettings`), read through :func:`~inspatio_ros.sim.parameters.
settings_from_parameters` with dotted names (``perturbations.sensor_noise``): an unknown field is
one :class:`~inspatio_ros.errors.InputError` naming the file and the closest known field, a bad
value one naming the field, the value and the valid range. The README's "Scenario files" table
lists every field (:func:`markdown_table`).

Controllers (``controller``):

* ``baseline``: :class:`~inspatio_ros.agents.controllers.BaselineController`, pure pursuit on the
  recorded path with a PID on speed, with the scenario's vehicle limits; ``params`` go to its
  constructor (``cruise_speed``, ``lookahead_min``, ``kp``, ...).
* ``module.path:function``: a Python callable, imported where the scenario runs (the module must
  be importable there: installed, or on PYTHONPATH). It is called once per scenario as
  ``function(scenario, path, **params)`` and returns the controller: a callable taking an
  :class:`~inspatio_ros.agents.runner.Observation` and returning an
  :class:`~inspatio_ros.agents.controllers.AckermannCommand` or
  :class:`~inspatio_ros.agents.runner.TwistCommand`.
* ``ros2``: an external ROS 2 stack on the scenario's own ROS_DOMAIN_ID, in lockstep over the
  built-in DDS transport (:mod:`inspatio_ros.ros.scenario_bridge`): each frame is published as the
  node publishes it and the run waits for the stack's ``/ackermann_cmd`` or ``/cmd_vel``; params
  ``launch`` (a command that starts the stack), ``domain_id``, ``response_timeout``,
  ``startup_timeout``.

Perturbations: ``lateral_offset`` / ``heading_offset`` push the ego sideways / turn it at
``offset_at`` seconds (0: at the start, added to ``initial_offset``); ``sensor_noise`` and
``depth_noise`` corrupt what the controller sees (and what is recorded); ``drop_frames`` withholds
frames from it (the vehicle keeps the last command until ``vehicle.command_timeout``);
``sim_rate`` > 0 paces the run at that many sim seconds per wall second, so a controller slower
than the camera rate misses frames, as it would against the node.
"""
from __future__ import annotations

import difflib
import importlib
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..errors import InputError
from ..sim.parameters import parameter_table, settings_from_parameters
from ..checked_settings import CheckedSettings, group, setting
from ..sim.settings import VehicleSettings

METRICS = ("cross_track", "heading", "comfort", "corridor", "progress", "timing")
CONTROLLER_KINDS = ("baseline", "callable", "ros2")
# Params of the ros2 controller (ros/scenario_bridge.py documents them).
ROS2_PARAMS = ("launch", "domain_id", "response_timeout", "startup_timeout")
# Fields that are not plain values (never matrix axes inside; a list of controllers is one).
STRUCTURED = ("controller", "metrics")
_CALLABLE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*:[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$")


@dataclass(frozen=True)
class OffsetSettings(CheckedSettings):
    lateral: float = setting(0.0, "the ego starts this far left (+) or right (-) of the recorded path", "m",
                             ge=-20.0, le=20.0)
    heading: float = setting(0.0, "the ego starts turned this much left (+) of the path's direction", "rad",
                             ge=-1.5, le=1.5)


@dataclass(frozen=True)
class CameraSettings(CheckedSettings):
    width: int = setting(0, "the recording's camera rendered this wide, intrinsics scaled (0: from height and "
                            "the recording's aspect, or its own size; not with rig)", "px", ge=0, le=8192)
    height: int = setting(0, "... and this high (0: from width and the recording's aspect)", "px", ge=0, le=8192)
    depth: bool = setting(False, "the controller also gets each camera's depth image")


@dataclass(frozen=True)
class PerturbationSettings(CheckedSettings):
    lateral_offset: float = setting(0.0, "push the ego this far left (+) at offset_at", "m", ge=-20.0, le=20.0)
    heading_offset: float = setting(0.0, "turn the ego this much left (+) at offset_at", "rad", ge=-1.5, le=1.5)
    offset_at: float = setting(0.0, "when the push and turn happen (0: at the start)", "s", ge=0.0)
    sim_rate: float = setting(0.0, "0: lockstep (as fast as it renders, deterministic); > 0: paced at this many "
                                   "sim seconds per wall second, frames the run falls behind on are skipped",
                              ge=0.0, le=100.0)
    sensor_noise: float = setting(0.0, "std of Gaussian noise added to every image the controller gets", "8-bit levels",
                                  ge=0.0, le=128.0)
    depth_noise: float = setting(0.0, "std of multiplicative Gaussian noise on depth images (0.02: 2 %)", "",
                                 ge=0.0, le=1.0)
    drop_frames: float = setting(0.0, "share of frames the controller never gets (random, seeded)", "", ge=0.0,
                                 lt=1.0)
    seed: int = setting(0, "seed of the noise and the dropped frames", ge=0)


@dataclass(frozen=True)
class ScenarioSettings(CheckedSettings):
    """The plain-valued fields of a scenario (dotted names: ``perturbations.sensor_noise``)."""

    name: str = setting("", "the scenario's name, its output folder ('' = the file's stem); a matrix appends "
                            "the swept values")
    world: str = setting("", "world file (.safetensors; relative to the scenario file; '' = the embedded "
                             "default world)")
    rig: str = setting("", "camera rig file (ROS 2 parameters cameras.*; '' = one camera like the recording's, "
                           "see camera)")
    start_time: float = setting(0.0, "where the ego starts: seconds after the recording's start", "s", ge=0.0)
    duration: float = setting(10.0, "sim seconds the scenario runs", "s", gt=0.0, le=86400.0)
    rate: float = setting(10.0, "camera frames and controller steps per sim second", "Hz", gt=0.0, le=1000.0)
    corridor_half_width: float = setting(1.75, "the ego is out of the corridor farther than this from the "
                                               "recorded path", "m", gt=0.0)
    device: str = setting("auto", "renderer device of the task: auto (CUDA if present), cpu, cuda")
    initial_offset: OffsetSettings = group(OffsetSettings, "the ego's start against the recorded path")
    camera: CameraSettings = group(CameraSettings, "the default camera")
    perturbations: PerturbationSettings = group(PerturbationSettings, "what is done to the ego and to what the "
                                                                      "controller sees")
    vehicle: VehicleSettings = group(VehicleSettings, "the vehicle model the controller drives (the node's "
                                                      "vehicle.* parameters)")


@dataclass(frozen=True)
class ControllerSpec:
    kind: str                                   # one of CONTROLLER_KINDS
    target: str = ""                            # "module:function" of a callable controller
    params: Mapping[str, Any] = field(default_factory=dict)

    def label(self) -> str:
        return self.target if self.kind == "callable" else self.kind


@dataclass(frozen=True)
class Scenario:
    """One expanded scenario: its settings, controller and metrics; ``swept``: the matrix values
    that made it (field -> value), for the results table."""

    name: str
    settings: ScenarioSettings
    controller: ControllerSpec
    metrics: tuple[str, ...] = METRICS
    source: str = ""                            # the file it came from
    swept: tuple[tuple[str, Any], ...] = ()

    @property
    def world_path(self) -> str:
        """The world file, resolved against the scenario file's folder ('' = the default world)."""
        w = self.settings.world
        if not w or Path(w).is_absolute() or not self.source:
            return w
        return str((Path(self.source).parent / w).resolve())

    @property
    def rig_path(self) -> str:
        r = self.settings.rig
        if not r or Path(r).is_absolute() or not self.source:
            return r
        return str((Path(self.source).parent / r).resolve())


# -- reading -----------------------------------------------------------------------------------

def load_scenarios(paths) -> list[Scenario]:
    """Every scenario of the files ``paths`` (str or Path, or a list of them), matrices expanded.
    Names must be unique across all of them (each is an output folder)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    out: list[Scenario] = []
    for p in paths:
        out.extend(read_scenario_file(p))
    seen: dict[str, str] = {}
    for s in out:
        if s.name in seen:
            raise InputError(f"scenario name '{s.name}' is used twice ({seen[s.name]} and {s.source})",
                             "give each scenario a distinct name (field name)")
        seen[s.name] = s.source
    if not out:
        raise InputError("no scenarios given", "pass one or more scenario YAML files")
    return out


def read_scenario_file(path: str | Path) -> list[Scenario]:
    import yaml

    path = Path(path)
    if not path.is_file():
        raise InputError(f"scenario file {path} does not exist", "give the path of a scenario YAML file")
    try:
        doc = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise InputError(f"scenario file {path} is not valid YAML{where}", "fix the YAML syntax there") from None
    entries = doc if isinstance(doc, list) else [doc]
    scenarios: list[Scenario] = []
    for i, entry in enumerate(entries):
        where = f"scenario file {path}" + (f" (entry {i + 1})" if len(entries) > 1 else "")
        if not isinstance(entry, dict):
            raise InputError(f"{where} holds {type(entry).__name__}, not a mapping of fields",
                             "write fields as 'name: value' lines (see the README's scenario example)")
        scenarios.extend(expand(entry, where, source=str(path),
                                default_name=path.stem if len(entries) == 1 else f"{path.stem}-{i + 1}"))
    return scenarios


def expand(entry: Mapping[str, Any], where: str = "scenario", source: str = "",
           default_name: str = "scenario") -> list[Scenario]:
    """The scenarios of one mapping: the product of its list-valued fields (matrix axes)."""
    flat = flatten(entry, where)
    axes = [k for k, v in flat.items() if isinstance(v, list) and k != "metrics"]
    if "name" in axes:
        raise InputError(f"{where}: field 'name' is a list", "give one name; the matrix appends the swept values")
    scenarios = []
    for combo in itertools.product(*(flat[k] for k in axes)):
        values = dict(flat)
        values.update(zip(axes, combo))
        swept = tuple(zip(axes, combo))
        scenarios.append(make_scenario(values, where, source, default_name, swept))
    return scenarios


def flatten(entry: Mapping[str, Any], where: str, prefix: str = "") -> dict[str, Any]:
    """Nested mappings -> dotted names; the controller's mapping and metrics stay whole."""
    out: dict[str, Any] = {}
    for key, value in entry.items():
        if not isinstance(key, str):
            raise InputError(f"{where}: field {key!r} is not a name", "write fields as 'name: value'")
        name = prefix + key
        if isinstance(value, dict) and name not in STRUCTURED:
            out.update(flatten(value, where, name + "."))
        else:
            out[name] = value
    return out


def make_scenario(values: Mapping[str, Any], where: str, source: str = "", default_name: str = "scenario",
                  swept: tuple = ()) -> Scenario:
    plain = {k: v for k, v in values.items() if k not in STRUCTURED}
    for k, v in plain.items():
        if isinstance(v, (list, dict)):
            raise InputError(f"{where}: field '{k}' holds {type(v).__name__} {v!r} inside a matrix axis",
                             "a matrix axis is a list of plain values (numbers, text, true/false)")
    try:
        settings = settings_from_parameters(plain, ScenarioSettings)
    except InputError as exc:
        raise InputError(f"{where}: {exc.problem.replace('parameter ', 'field ', 1)}",
                         exc.fix.replace("see the parameter table in the README",
                                         "see the scenario field table in the README")) from None
    if settings.rig and (settings.camera.width or settings.camera.height):
        raise InputError(f"{where}: both rig ({settings.rig}) and camera.width/height are given",
                         "size the cameras in the rig file, or leave rig out to use the recording's camera at "
                         "camera.width x camera.height")
    controller = parse_controller(values.get("controller", "baseline"), where)
    metrics = parse_metrics(values.get("metrics", list(METRICS)), where)
    base = settings.name or default_name
    name = base + "".join(f"__{k.rsplit('.', 1)[-1]}={_short(v)}" for k, v in swept)
    name = re.sub(r"[^\w.=+-]", "_", name)
    # The swept values as the settings hold them (a YAML 0 in a float field is 0.0), for the table.
    typed = tuple((k, controller.label() if k == "controller" else _setting_value(settings, k)) for k, _ in swept)
    return Scenario(name=name, settings=settings, controller=controller, metrics=metrics, source=source,
                    swept=typed)


def _setting_value(settings: ScenarioSettings, dotted: str):
    value = settings
    for attr in parameter_table(ScenarioSettings)[dotted].path:
        value = getattr(value, attr)
    return value


def _short(value) -> str:
    if isinstance(value, dict):
        return str(value.get("callable") or value.get("type") or "controller").rsplit(":", 1)[-1]
    if isinstance(value, str) and ":" in value:
        return value.rsplit(":", 1)[-1]
    return f"{value:g}" if isinstance(value, float) else str(value)


def parse_metrics(value, where: str) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    for m in items:
        if m not in METRICS:
            close = difflib.get_close_matches(str(m), METRICS, n=1)
            raise InputError(f"{where}: metric {m!r} is unknown",
                             (f"did you mean '{close[0]}'? " if close else "") + f"choose from {', '.join(METRICS)}")
    return tuple(dict.fromkeys(items))


def parse_controller(value, where: str) -> ControllerSpec:
    """``baseline`` | ``ros2`` | ``module:function`` | {type: ..., callable: ..., params: {...}}."""
    if isinstance(value, str):
        spec = {"type": "callable", "callable": value} if ":" in value else {"type": value}
    elif isinstance(value, dict):
        spec = dict(value)
    else:
        raise InputError(f"{where}: controller = {value!r} is neither a name nor a mapping",
                         "give baseline, module.path:function, or {type: baseline, params: {...}}")
    unknown = set(spec) - {"type", "callable", "params"}
    if unknown:
        key = sorted(unknown)[0]
        close = difflib.get_close_matches(key, ["type", "callable", "params"], n=1)
        raise InputError(f"{where}: controller field '{key}' is unknown",
                         f"did you mean '{close[0]}'?" if close else "use type, callable and params")
    kind = spec.get("type", "callable" if "callable" in spec else "baseline")
    if kind not in CONTROLLER_KINDS:
        close = difflib.get_close_matches(str(kind), CONTROLLER_KINDS, n=1)
        raise InputError(f"{where}: controller {kind!r} is unknown",
                         (f"did you mean '{close[0]}'? " if close else "")
                         + "give baseline, ros2 or a Python callable module.path:function")
    params = spec.get("params", {}) or {}
    if not isinstance(params, dict):
        raise InputError(f"{where}: controller params = {params!r} is not a mapping", "write params: {name: value}")
    if kind == "ros2":
        for key in params:
            if key not in ROS2_PARAMS:
                close = difflib.get_close_matches(str(key), ROS2_PARAMS, n=1)
                raise InputError(f"{where}: ros2 controller param '{key}' is unknown",
                                 (f"did you mean '{close[0]}'? " if close else "") + f"give {', '.join(ROS2_PARAMS)}")
    target = ""
    if kind == "callable":
        target = spec.get("callable", "")
        if not isinstance(target, str) or not _CALLABLE.match(target):
            raise InputError(f"{where}: controller callable {target!r} is not of the form module.path:function",
                             "name the module and the function, e.g. my_stack.control:make_controller")
        resolve_callable(target, where)
    return ControllerSpec(kind=kind, target=target, params=dict(params))


def resolve_callable(target: str, where: str = "controller"):
    """The object ``module.path:attr.path`` names; one InputError when it cannot be imported."""
    module_name, attr_path = target.split(":")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as exc:
        raise InputError(f"{where}: controller module '{module_name}' cannot be imported ({exc})",
                         "install it or put its folder on PYTHONPATH (on every machine of the Ray cluster)") from None
    for attr in attr_path.split("."):
        if not hasattr(obj, attr):
            names = [n for n in dir(obj) if not n.startswith("_")]
            close = difflib.get_close_matches(attr, names, n=1)
            raise InputError(f"{where}: '{module_name}' has no '{attr_path}'",
                             f"did you mean '{close[0]}'?" if close else f"define {attr_path} in {module_name}")
        obj = getattr(obj, attr)
    if not callable(obj):
        raise InputError(f"{where}: controller {target} is not callable", "name a function or a class")
    return obj


# -- the README's table ------------------------------------------------------------------------

def markdown_table() -> str:
    """One row per plain scenario field (name, default, unit, valid, meaning)."""
    rows = ["| field | default | unit | valid | meaning |", "|---|---|---|---|---|"]
    for name, p in parameter_table(ScenarioSettings).items():
        default = p.default
        cell = ("true" if default else "false") if isinstance(default, bool) else \
            (f"`{default}`" if default else '`""`') if isinstance(default, str) else default
        rows.append(f"| `{name}` | {cell} | {p.unit} | {p.range.replace('|', chr(92) + '|')} | "
                    f"{p.doc.replace('|', chr(92) + '|')} |")
    rows.append("| `controller` | `baseline` | | baseline \\| module.path:function \\| ros2 \\| "
                "{type, callable, params} | "
                "who drives (ros2: an external ROS 2 stack over DDS, params launch, domain_id, response_timeout, "
                "startup_timeout) |")
    rows.append(f"| `metrics` | all | | list of {', '.join(METRICS)} | the summary columns computed |")
    return "\n".join(rows) + "\n"
