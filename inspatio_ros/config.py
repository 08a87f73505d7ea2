"""Parameter files: ROS 2 YAML (``inspatio_ros: {ros__parameters: {...}}``) read without ROS.

The layout is the one ``ros2 run ... --ros-args --params-file FILE`` reads, so one file serves the
CLI (``--config FILE``) now and the node later::

    inspatio_ros:
      ros__parameters:
        render.near: 0.05
        render.depth_tolerance: 0.02
        render:                  # nested maps are the same as dotted names, as in ROS 2
          max_splat_px: 4

The node key may be ``inspatio_ros``, a namespaced ``/ns/inspatio_ros`` or the wildcard ``/**``;
sections of other nodes are ignored.
Renderer parameters are ``render.<field>`` for every field of
:class:`inspatio_ros.render.RenderSettings`; a parameter's type is its default's type. Float
parameters also accept integers here; ROS 2 itself rejects ``1`` for a double parameter, so write
``1.0`` in files meant for the node.
Unknown names, wrong types and values out of range are an :class:`InputError` naming the
parameter and the fix.
"""
from __future__ import annotations

import dataclasses
import difflib
from pathlib import Path
from typing import Any, Iterable

from .errors import InputError
from .checked_settings import check_setting
from .render import RenderSettings

NODE_NAME = "inspatio_ros"
RENDER_PREFIX = "render."

def render_parameters(settings: RenderSettings | None = None) -> dict[str, Any]:
    """``{"render.near": 0.05, ...}``: the parameter names and values of ``settings``."""
    settings = settings or RenderSettings()
    return {RENDER_PREFIX + f.name: _plain(getattr(settings, f.name)) for f in dataclasses.fields(RenderSettings)}


def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def read_parameters(path: str | Path) -> dict[str, Any]:
    """The node's ``ros__parameters`` of a ROS 2 parameter file, flattened to dotted names."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise InputError(f"config file {path} does not exist", "give a YAML parameter file, e.g. config/render.yaml")
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1})" if where is not None else ""
        raise InputError(f"config file {path} is not valid YAML{at}",
                         "fix the syntax; see config/render.yaml for the layout") from None
    layout = f"write '{NODE_NAME}:' then 'ros__parameters:' then the parameters, as in config/render.yaml"
    if not isinstance(doc, dict):
        raise InputError(f"config file {path} has no '{NODE_NAME}' section", layout)
    # Sections of other nodes are left to them (one file may configure several nodes).
    nodes = [k for k in doc if isinstance(k, str) and k.rstrip("/").split("/")[-1] in (NODE_NAME, "**")]
    if not nodes:
        found = f" (it has {', '.join(repr(k) for k in doc)})" if doc else ""
        raise InputError(f"config file {path} has no '{NODE_NAME}' section{found}", layout)
    params: dict[str, Any] = {}
    for node in nodes:
        section = doc[node]
        if not isinstance(section, dict) or set(section) != {"ros__parameters"}:
            raise InputError(f"config file {path}: '{node}' does not hold exactly one 'ros__parameters' map", layout)
        body = section["ros__parameters"] or {}
        if not isinstance(body, dict):
            raise InputError(f"config file {path}: '{node}.ros__parameters' is not a map", layout)
        _flatten(body, "", params, path)
    return params


def _flatten(tree: dict, prefix: str, into: dict, path: Path) -> None:
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            _flatten(value, name + ".", into, path)
        elif name in into:
            raise InputError(f"config file {path} sets parameter '{name}' twice", "keep one of them")
        else:
            into[name] = value


def render_settings_from(params: dict[str, Any], source: str = "config",
                         base: RenderSettings | None = None) -> RenderSettings:
    """RenderSettings from dotted parameters; every name must be a known ``render.*`` parameter."""
    base = base or RenderSettings()
    known = render_parameters(base)
    changes = {}
    for name, value in params.items():
        if name not in known:
            close = ([RENDER_PREFIX + str(name)] if RENDER_PREFIX + str(name) in known
                     else difflib.get_close_matches(str(name), known, n=1, cutoff=0.8))
            hint = f"did you mean '{close[0]}'?" if close else f"known parameters: {', '.join(known)}"
            raise InputError(f"{source}: unknown parameter '{name}'", hint)
        field = name[len(RENDER_PREFIX):]
        changes[field] = _check(name, field, value, known[name], source)
    return dataclasses.replace(base, **changes)


def _check(name: str, field: str, value, default, source: str):
    """``value`` for ``render.<field>``: the type checked here (to say what the value should be,
    not only its Python type: "[0, 0] (list), not a list" told the user nothing), the range by the
    field's own metadata (RenderSettings, the one place it is written)."""
    spec = next(f for f in dataclasses.fields(RenderSettings) if f.name == field)
    unit = f" {spec.metadata['unit']}" if spec.metadata["unit"] else ""
    valid = f"{spec.metadata['range']}{unit}"
    if isinstance(default, bool):
        good = isinstance(value, bool)
    elif isinstance(default, int):
        good = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        good = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if good else value
    elif isinstance(default, list):
        good = (isinstance(value, list) and len(value) == len(default)
                and all(isinstance(v, int) and not isinstance(v, bool) for v in value))
        value = tuple(value) if good else value
    else:
        good = isinstance(value, type(default))
    if not good:
        if isinstance(default, list):
            expected = f"a list of {len(default)} integers"
        else:
            expected = {bool: "true or false", int: "an integer", float: "a number"}.get(
                type(default), f"a {type(default).__name__}")
        if isinstance(value, list):
            odd = [v for v in value if not isinstance(v, int) or isinstance(v, bool)]
            got = (f"a list of {len(value)}" if not isinstance(default, list) or len(value) != len(default)
                   else f"{odd[0]!r} is not an integer" if odd else "a list")
        else:
            got = type(value).__name__
        raise InputError(f"{source}: parameter '{name}' is {value!r} ({got}), not {expected}", f"give {valid}")
    return check_setting(spec, value, f"{source}: parameter '{name}'")


def load_render_settings(path: str | Path, other_parameters: Iterable[str] = ()) -> RenderSettings:
    """RenderSettings from a ROS 2 parameter file (``--config``); unset parameters keep defaults.

    One file may configure the whole node: its sensor rig (``cameras.*``, ``lidars.*``,
    ``rig.preset``) is left to the rig, and
    the names in ``other_parameters`` (the node's table, which the caller passes: this module
    knows nothing of the ROS adapter) are left to their owner; any other unknown name is still an
    error (a typo must not pass silently).
    """
    others = set(other_parameters)
    params = {k: v for k, v in read_parameters(path).items()
              if not (k.startswith(("cameras.", "lidars.", "rig.")) or k in others)}
    return render_settings_from(params, source=f"config file {path}")
