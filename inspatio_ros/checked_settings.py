"""Settings fields that carry their documentation and are checked when the dataclass is made.

A settings dataclass declares each field with :func:`setting` (default, meaning, unit, bounds or
choices) and groups of fields with :func:`group`, and derives from :class:`CheckedSettings`, which
checks every field against that metadata in ``__post_init__``: a bad value is one
:class:`~inspatio_ros.errors.InputError` naming the field, the value and the valid range. The same
metadata names the ROS 2 parameters and writes the README's parameter table
(:mod:`inspatio_ros.sim.parameters`), so what a setting means is written once, next to it.

Used by the simulator's settings (:mod:`inspatio_ros.sim.settings`) and the renderer's
(:class:`inspatio_ros.render.RenderSettings`); it sits below both so the renderer need not import
the simulator.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import field

from .errors import InputError


def setting(default, doc: str, unit: str = "", *, ge: float | None = None, gt: float | None = None,
            le: float | None = None, lt: float | None = None, choices: tuple[str, ...] | None = None,
            param: str | None = None):
    """A dataclass field with its documentation and the bounds ``__post_init__`` checks.

    A tuple default (e.g. an RGB colour) takes a list or tuple of the same length whose items
    have the type of the default's items; the bounds then hold for every item.
    """
    if choices is not None:
        valid = " | ".join(c or "''" for c in choices)
    else:
        parts = [f">= {ge:g}" if ge is not None else None, f"> {gt:g}" if gt is not None else None,
                 f"<= {le:g}" if le is not None else None, f"< {lt:g}" if lt is not None else None]
        valid = " and ".join(p for p in parts if p) or ("true | false" if isinstance(default, bool)
                                                         else "text" if isinstance(default, str) else "any")
        if isinstance(default, tuple):
            item = "integers" if all(isinstance(v, int) for v in default) else "numbers"
            valid = f"{len(default)} {item}" + ("" if valid == "any" else f", each {valid}")
    meta = {"doc": doc, "unit": unit, "range": valid, "bounds": (ge, gt, le, lt), "choices": choices}
    if param is not None:
        meta["param"] = param
    return field(default=default, metadata=meta)


def group(cls, doc: str, prefix: str | None = None):
    """A dataclass field holding a group of settings; its parameters are named ``<prefix><field>``
    (``prefix`` defaults to the group's field name and a dot; "" puts them at the top level)."""
    meta = {"group": doc}
    if prefix is not None:
        meta["prefix"] = prefix
    return field(default_factory=cls, metadata=meta)


def _scalar(default, value) -> tuple[bool, str, object]:
    """(fits, what was expected, value converted) for one value of ``default``'s type."""
    if isinstance(default, bool):
        return isinstance(value, bool), "", value
    if isinstance(default, float):
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
        return ok, "a number ", float(value) if ok else value
    if isinstance(default, int):
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        return ok, "an integer ", int(value) if ok else value
    if isinstance(default, str):
        return isinstance(value, str), "a string ", value
    return True, "", value


def _in_bounds(value, bounds) -> bool:
    ge, gt, le, lt = bounds
    return not ((ge is not None and not value >= ge) or (gt is not None and not value > gt)
                or (le is not None and not value <= le) or (lt is not None and not value < lt))


def check_setting(f: dataclasses.Field, value, where: str):
    """``value`` for the setting field ``f``, checked against its type and metadata (an int is
    taken for a float, a list for a tuple); an :class:`InputError` that starts with ``where`` when
    it does not fit."""
    unit = f" {f.metadata['unit']}" if f.metadata["unit"] else ""
    choices = f.metadata["choices"]
    if isinstance(f.default, tuple):
        items = [_scalar(d, v) for d, v in zip(f.default, value)] if isinstance(value, (list, tuple)) else []
        if len(items) != len(f.default) or not all(ok for ok, _, _ in items):
            raise InputError(f"{where} = {value!r} has the wrong type", f"give {f.metadata['range']}{unit}")
        value = tuple(v for _, _, v in items)
        if not all(_in_bounds(v, f.metadata["bounds"]) for v in value):
            raise InputError(f"{where} = {list(value)!r} is out of range", f"give {f.metadata['range']}{unit}")
        return value
    ok, kind, value = _scalar(f.default, value)
    if isinstance(f.default, str) and choices:
        kind = ""
    if not ok:
        raise InputError(f"{where} = {value!r} has the wrong type", f"give {kind}{f.metadata['range']}{unit}".rstrip())
    if (choices is not None and value not in choices) or not _in_bounds(value, f.metadata["bounds"]):
        raise InputError(f"{where} = {value!r} is out of range", f"give {f.metadata['range']}{unit}")
    return value


class CheckedSettings:
    """Checks every field against its metadata when the dataclass is made."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            if "doc" in f.metadata:
                object.__setattr__(self, f.name,
                                   check_setting(f, getattr(self, f.name), f"{type(self).__name__}.{f.name}"))
