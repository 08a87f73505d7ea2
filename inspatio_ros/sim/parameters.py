"""The node's settings as dotted ROS 2 parameter names, and back; ROS 2 YAML files; the README table.

:class:`~inspatio_ros.sim.settings.NodeSettings` (and any other settings dataclass built from
``setting`` / ``group`` fields) is a tree: each leaf field is one parameter, named by its groups'
prefixes and its field name (``vehicle.max_speed``) unless its metadata gives ``param``
(``use_sim_time``, ``generator.weights``). This module walks that tree once and

- makes settings from parameters (:func:`settings_from_parameters`), where an unknown name is an
  :class:`InputError` with the closest known name ("did you mean ...") and a bad value one that
  names the parameter, the value, the valid range and the unit;
- splits a node's whole parameter set into its settings, camera rig (``cameras.*``) and renderer
  (``render.*``) parameters (:func:`split_parameters`), as the node, ``inspatio-ros run`` and
  ``ros2 run`` get them;
- turns settings back into parameters (:func:`parameters_of`) and ROS 2 YAML (:func:`to_yaml`;
  :func:`read_settings` reads such a file);
- writes the README's parameter table from the fields' metadata (:func:`markdown_table`;
  ``tools/parameter_table.py`` puts it into the README, and a test fails when it is stale).

No ROS here: the ROS layer (ros/params.py, ros/node.py, ros/run_cli.py) calls it.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from ..errors import InputError
from .settings import NodeSettings, check_setting

# Parameters every rclpy node declares by itself; they are not ours to check.
ROS_OWN_PARAMETERS = frozenset({"start_type_description_service"})
CAMERA_PREFIX, RENDER_PREFIX = "cameras.", "render."
# The sensor rig's parameters: cameras (sim/rig.py), LiDARs (sim/lidar.py) and the rig preset.
RIG_PREFIXES = (CAMERA_PREFIX, "lidars.", "rig.")


@dataclass(frozen=True)
class Parameter:
    """One leaf of a settings tree: its parameter name, where it sits, and its metadata."""

    name: str
    path: tuple[str, ...]          # attribute names from the root settings object to the field
    field: dataclasses.Field

    @property
    def default(self) -> Any:
        return self.field.default

    @property
    def unit(self) -> str:
        return self.field.metadata["unit"]

    @property
    def range(self) -> str:
        return self.field.metadata["range"]

    @property
    def doc(self) -> str:
        return self.field.metadata["doc"]


@functools.lru_cache(maxsize=None)
def parameter_table(cls: type = NodeSettings) -> dict[str, Parameter]:
    """``{name: Parameter}`` of every leaf of ``cls``, in field order."""
    table: dict[str, Parameter] = {}

    def walk(klass, prefix: str, path: tuple[str, ...]) -> None:
        for f in dataclasses.fields(klass):
            if "doc" in f.metadata:
                name = f.metadata.get("param", prefix + f.name)
                if name in table:
                    raise TypeError(f"{cls.__name__}: parameter '{name}' is defined twice")
                table[name] = Parameter(name, path + (f.name,), f)
            elif "group" in f.metadata:
                walk(f.default_factory, f.metadata.get("prefix", prefix + f.name + "."), path + (f.name,))
            else:
                raise TypeError(f"{klass.__name__}.{f.name} is neither a setting() nor a group() field")

    walk(cls, "", ())
    return table


def unknown_parameter(name: str, known) -> InputError:
    close = difflib.get_close_matches(str(name), list(known), n=1)
    hint = f"did you mean '{close[0]}'?" if close else "see the parameter table in the README"
    return InputError(f"parameter '{name}' is unknown", hint)


def settings_from_parameters(values: Mapping[str, Any], cls: type = NodeSettings, base=None):
    """``cls`` (default: ``base`` or the defaults) with the parameters in ``values`` set; every name
    must be one of ``cls``'s parameters."""
    table = parameter_table(cls)
    changes: dict[tuple[str, ...], Any] = {}
    for name, value in values.items():
        if name not in table:
            raise unknown_parameter(name, table)
        param = table[name]
        if param.field.metadata["choices"] and "on" in param.field.metadata["choices"] and isinstance(value, bool):
            value = "on" if value else "off"          # YAML 1.1 reads a bare on/off as a bool
        changes[param.path] = check_setting(param.field, value, f"parameter '{name}'")
    return _replace(base if base is not None else cls(), changes)


def _replace(obj, changes: dict[tuple[str, ...], Any]):
    if not changes:
        return obj
    here: dict[str, Any] = {}
    below: dict[str, dict[tuple[str, ...], Any]] = {}
    for path, value in changes.items():
        if len(path) == 1:
            here[path[0]] = value
        else:
            below.setdefault(path[0], {})[path[1:]] = value
    for name, sub in below.items():
        here[name] = _replace(getattr(obj, name), sub)
    return dataclasses.replace(obj, **here)


def parameters_of(settings) -> dict[str, Any]:
    """``{name: value}`` of every parameter of ``settings`` (a settings dataclass instance)."""
    out = {}
    for name, param in parameter_table(type(settings)).items():
        value = settings
        for attr in param.path:
            value = getattr(value, attr)
        out[name] = value
    return out


def split_parameters(params: Mapping[str, Any]) -> tuple[NodeSettings, dict[str, Any], dict[str, Any]]:
    """A node's parameters -> (its checked :class:`NodeSettings`, the sensor rig's ``cameras.*``,
    ``lidars.*`` and ``rig.*`` parameters, the renderer's ``render.*`` parameters); rclpy's own
    parameters are skipped."""
    node: dict[str, Any] = {}
    cameras: dict[str, Any] = {}
    render: dict[str, Any] = {}
    for name, value in params.items():
        if name.startswith(RIG_PREFIXES):
            cameras[name] = value
        elif name.startswith(RENDER_PREFIX):
            render[name] = value
        elif name not in ROS_OWN_PARAMETERS:
            node[name] = value
    return settings_from_parameters(node), cameras, render


def read_settings(path: str | Path) -> tuple[NodeSettings, dict[str, Any], dict[str, Any]]:
    """:func:`split_parameters` of a ROS 2 parameter file (``inspatio_ros: ros__parameters: ...``)."""
    from ..config import read_parameters

    return split_parameters(read_parameters(path))


def to_yaml(settings, node_name: str = "inspatio_ros", only_changed: bool = False) -> str:
    """A ROS 2 parameter file of ``settings`` (dotted names, the layout ``--config`` and
    ``--ros-args --params-file`` read); ``only_changed``: the parameters that differ from the defaults."""
    import yaml

    params = parameters_of(settings)
    if only_changed:
        defaults = parameters_of(type(settings)())
        params = {k: v for k, v in params.items() if v != defaults[k]}
    return yaml.safe_dump({node_name: {"ros__parameters": params}}, sort_keys=False, allow_unicode=True)


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f"`{value}`" if value else '`""`'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(v if isinstance(v, str) else _cell(v) for v in value) + "]"
    return repr(value) if isinstance(value, float) else str(value)


def _escape(text: str) -> str:
    return text.replace("|", "\\|")                      # a bar inside a Markdown table cell


def markdown_table(cls: type = NodeSettings, rig_and_renderer: bool = True) -> str:
    """The README's parameter table: one row per parameter (the QoS overrides, the same two
    fields for every output, as one row), from the fields' metadata; then, with
    ``rig_and_renderer``, the rig preset, the camera rig's ``cameras.*`` rows (sim/rig.py's
    CAMERA_PARAMETERS), the LiDARs' ``lidars.*`` rows (sim/lidar.py's LIDAR_PARAMETERS) and
    the renderer's ``render.*`` rows (RenderSettings' field metadata)."""
    rows = ["| parameter | default | unit | valid | meaning |", "|---|---|---|---|---|"]
    qos_outputs: list[str] = []
    qos_rows: dict[str, Parameter] = {}
    for name, p in parameter_table(cls).items():
        if name.startswith("qos."):
            _, output, leaf = name.split(".")
            if output not in qos_outputs:
                qos_outputs.append(output)
            qos_rows.setdefault(leaf, p)
            continue
        rows.append(f"| `{name}` | {_cell(p.default)} | {p.unit} | {_escape(p.range)} | {_escape(p.doc)} |")
    for leaf, p in qos_rows.items():
        rows.append(f"| `qos.<output>.{leaf}` | {_cell(p.default)} | {p.unit} | {_escape(p.range)} | "
                    f"{p.doc}; `<output>`: {', '.join(qos_outputs)} |")
    if rig_and_renderer:
        from ..render import RenderSettings      # loads torch: only when the README table is made
        from .lidar import lidar_parameter_rows
        from .rig import camera_parameter_rows, preset_parameter_rows

        for name, default, unit, valid, doc in (*preset_parameter_rows(), *camera_parameter_rows(),
                                                *lidar_parameter_rows()):
            shown = default if isinstance(default, str) else _cell(default)   # a word, e.g. "centre"
            rows.append(f"| `{name}` | {shown} | {unit} | {_escape(valid)} | {_escape(doc)} |")
        for f in dataclasses.fields(RenderSettings):
            default = list(f.default) if isinstance(f.default, tuple) else f.default
            rows.append(f"| `render.{f.name}` | {_cell(default)} | {f.metadata['unit']} | "
                        f"{_escape(f.metadata['range'])} | {_escape(f.metadata['doc'])} |")
    return "\n".join(rows) + "\n"


# The README's generated table sits between these two lines (tools/parameter_table.py writes it).
TABLE_BEGIN = "<!-- parameter table: generated by tools/parameter_table.py from sim/settings.py, sim/rig.py, sim/lidar.py and render/types.py -->"
TABLE_END = "<!-- end of the generated parameter table -->"


def with_table(readme: str, table: str, begin: str = TABLE_BEGIN, end: str = TABLE_END) -> str:
    """``readme`` with the text between the marker lines ``begin`` and ``end`` (default: the
    parameter table's) replaced by ``table``; other generated tables (tools/scenario_table.py) pass
    their own markers."""
    if readme.count(begin) != 1 or readme.count(end) != 1:
        raise InputError("the README does not hold the generated table's markers once each",
                         f"put the lines '{begin}' and '{end}' where the table goes")
    head, rest = readme.split(begin)
    _, tail = rest.split(end)
    return f"{head}{begin}\n{table}{end}{tail}"
