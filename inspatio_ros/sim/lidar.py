"""Simulated LiDARs: beam patterns, where they sit on the ego, and the point clouds they return.

LiDARs come from ROS 2 parameters next to the cameras (flat dotted names)::

    lidars.names: [top]                      # default: no LiDAR
    lidars.top.model: VLP-16                 # a preset (below) or "custom"
    lidars.top.xyz: [0.0, 0.0, 1.9]          # <name>_link in base_link, metres (x forward, y left, z up)
    lidars.top.rpy: [0.0, 0.0, 0.0]          # roll, pitch, yaw in base_link, radians
    lidars.top.rate_hz: 10.0                 # sweeps per second (a spinning LiDAR: revolutions)
    lidars.top.elevations_deg: [...]         # one vertical angle per beam (ring), degrees (custom)
    lidars.top.columns: 1800                 # firings per sweep (horizontal samples)
    lidars.top.hfov_deg: 360.0               # horizontal field of view: 360 spins, less is a raster
    lidars.top.min_range: 0.5                # metres: closer returns are dropped
    lidars.top.max_range: 100.0              # metres: farther returns are dropped
    lidars.top.range_noise: 0.0              # sigma of Gaussian range noise, metres
    lidars.top.dropout: 0.0                  # probability that a return is lost
    lidars.top.seed: 0                       # noise and dropout draws (reproducible per sweep)
    lidars.top.deskew: false                 # true: every point in the frame at the stamp
    lidars.top.layout: velodyne              # velodyne | autoware (PointXYZIRCAEDT)
    lidars.top.render_pitch_deg: 0.0         # render pixel pitch; 0: the horizontal step
    lidars.top.sectors_per_face: 1           # sweep sectors per 90 deg, each from its own pose

Keys given with a preset override the preset's values. Presets (:data:`PRESETS`): ``VLP-16``,
``HDL-64E``, ``OS1-64`` (spinning) and ``solid_state`` (a 120 x 25 deg raster).

A sweep starts at the frame's stamp and lasts one period (1 / rate_hz); point ``time`` is the
firing time after the stamp. A spinning LiDAR turns clockwise seen from above (as Velodyne and
Ouster do), starting behind on the left (azimuth 135 deg: on a cube face's edge, so a sweep is
four views, one per face, each rendered from the pose of its moment): left, front, right, rear; a
raster sweeps its columns left to right. The ego moves during a sweep: the sensor pose at each
moment is extrapolated from the stamp's pose with the ego's velocity (constant twist), and the
sweep is rendered in azimuth sectors (``sectors_per_face`` per 90 deg; 1: the pose is at most
1/8 sweep from a point's firing, 12.5 mm per m/s at 10 Hz), each from the pose at its middle
moment.
``deskew`` false: each point is in ``<name>_link`` as it was when the point was fired (what a real
driver outputs); true: every point is in ``<name>_link`` at the stamp (motion compensated).

Intensity (0..255): a documented proxy, not a measured reflectivity: the rendered colour's
luminance (Rec. 709 weights of the sRGB values) times |cos| of the angle of incidence (from the
rendered surface's plane; 1 where the return sits on an edge). Light surfaces facing the beam
return strong, dark or grazing ones weak, as a Lambertian target does.

Every bad parameter is an :class:`InputError` naming it and the fix.
"""
from __future__ import annotations

import difflib
import math
import numbers
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from ..camera import make_pose, rotation_from_rpy
from ..errors import InputError

PREFIX = "lidars."
NAMES_PARAM = "lidars.names"
LAYOUTS = ("velodyne", "autoware")
# Where a spin starts: on the edge of the left and rear cube faces, so the sweep's sectors are
# whole faces (starting at 180 deg split the rear face into two views, one more render on the CPU).
SPIN_START_RAD = 0.75 * np.pi
# Sector edges sit on the cube faces' edges so that a sector is one view: 16 sectors of equal
# columns made 18 views and cost 2.6x the CPU time of one per face (VLP-16 on the default world,
# 264 vs 100 CPU-ms, 2026-12-04). Since each view of a batch projects only the chunks it may see
# (render/cpu.py visible_runs), more views cost little on the CPU: 4 / 8 / 16 views (1 / 2 / 4
# sectors per face) 66 / 68 / 90 CPU-ms a sweep (2026-12-05).
MAX_BEAMS = 256
MAX_COLUMNS = 16384
MAX_POINTS = 4_000_000        # beams x columns of one LiDAR (a 128 x 4096 sensor is 0.5 M)


def _uniform(low: float, high: float, count: int) -> tuple[float, ...]:
    return tuple(float(v) for v in np.round(np.linspace(low, high, count), 4))


# Published datasheet patterns, beams as vertical angles in degrees (the "like" models use
# evenly spaced beams over the datasheet's vertical field of view).
PRESETS: dict[str, dict[str, Any]] = {
    # Velodyne VLP-16 (Puck): 16 beams -15..+15 deg every 2 deg; 0.2 deg at 10 Hz; 100 m.
    "VLP-16": {"elevations_deg": _uniform(-15.0, 15.0, 16), "columns": 1800, "hfov_deg": 360.0,
               "min_range": 0.5, "max_range": 100.0, "rate_hz": 10.0},
    # Velodyne HDL-64E-like: 64 beams +2..-24.9 deg (even spacing, 0.43 deg); ~0.18 deg at 10 Hz; 120 m.
    "HDL-64E": {"elevations_deg": _uniform(-24.9, 2.0, 64), "columns": 2000, "hfov_deg": 360.0,
                "min_range": 0.9, "max_range": 120.0, "rate_hz": 10.0},
    # Ouster OS1-64-like: 64 beams over 33.2 deg (+-16.6), 1024 columns at 10 Hz; 120 m.
    "OS1-64": {"elevations_deg": _uniform(-16.6, 16.6, 64), "columns": 1024, "hfov_deg": 360.0,
               "min_range": 0.3, "max_range": 120.0, "rate_hz": 10.0},
    # Solid-state raster (Livox-/Hesai-AT-like field): 120 x 25 deg, 64 rows x 300 columns at 10 Hz; 200 m.
    "solid_state": {"elevations_deg": _uniform(-12.5, 12.5, 64), "columns": 300, "hfov_deg": 120.0,
                    "min_range": 0.5, "max_range": 200.0, "rate_hz": 10.0},
}
DEFAULTS: dict[str, Any] = {"model": "VLP-16", "xyz": [0.0, 0.0, 1.9], "rpy": [0.0, 0.0, 0.0], "range_noise": 0.0,
                            "dropout": 0.0, "seed": 0, "deskew": False, "layout": "velodyne",
                            "render_pitch_deg": 0.0, "sectors_per_face": 1}



def _parameter(unit: str, valid: str, doc: str, default: str = ""):
    from .rig import CameraParameter          # the same record as a camera key's: unit, valid, meaning

    return CameraParameter(unit, valid, doc, default)


# Every key a LiDAR takes, in the README's order; load_lidars refuses any other.
LIDAR_PARAMETERS = {
    "model": _parameter("", " | ".join((*PRESETS, "custom")), "beam pattern preset; keys given as well override it"),
    "xyz": _parameter("m", "3 finite numbers", "`<lidar>_link` in base_link (x forward, y left, z up)"),
    "rpy": _parameter("rad", "3 finite numbers", "roll, pitch, yaw of `<lidar>_link` in base_link"),
    "rate_hz": _parameter("Hz", "> 0 and <= 100; divides the fastest sensor's rate", "sweeps per second", "preset"),
    "elevations_deg": _parameter("deg", "1..256 angles in (-90, 90)", "vertical angle of each beam (ring = rank, "
                                 "0 lowest)", "preset"),
    "columns": _parameter("", f"1..{MAX_COLUMNS}", "firings (horizontal samples) per sweep", "preset"),
    "hfov_deg": _parameter("deg", "360 (spinning) or > 0 and < 180 (raster)", "horizontal field of view",
                           "preset"),
    "min_range": _parameter("m", ">= 0, < max_range", "closer returns are dropped", "preset"),
    "max_range": _parameter("m", "> min_range", "farther returns are dropped", "preset"),
    "range_noise": _parameter("m", ">= 0 and <= 10", "sigma of Gaussian range noise"),
    "dropout": _parameter("", ">= 0 and < 1", "probability that a return is lost"),
    "seed": _parameter("", "integer >= 0", "seed of the noise and dropout draws"),
    "deskew": _parameter("", "true | false", "true: every point in `<lidar>_link` at the stamp; false: as fired "
                         "(the ego moves during a sweep)"),
    "layout": _parameter("", " | ".join(LAYOUTS), "PointCloud2 fields: x y z intensity ring time (Velodyne) or "
                         "PointXYZIRCAEDT (Autoware)"),
    "render_pitch_deg": _parameter("deg", "0, or >= 0.01 and <= 5", "render pixel pitch (0: the horizontal step)"),
    "sectors_per_face": _parameter("", "1..16", "sweep sectors per 90 deg, each rendered from the ego pose of its "
                                   "moment (more: motion followed more finely; on the CPU 2 cost ~3 % more "
                                   "than 1, 4 ~35 %)"),
}
LIDAR_KEYS = tuple(LIDAR_PARAMETERS)


def lidar_parameter_rows() -> list[tuple[str, object, str, str, str]]:
    """(name, default, unit, valid, meaning) of ``lidars.names`` and every ``lidars.<lidar>.<key>``."""
    rows: list[tuple[str, object, str, str, str]] = [
        (NAMES_PARAM, [], "", "ROS name tokens, not a camera's", "the rig's LiDARs, each on `<lidar>/points` "
         "(default: none)")]
    for key, p in LIDAR_PARAMETERS.items():
        rows.append((f"{PREFIX}<lidar>.{key}", DEFAULTS.get(key, p.default), p.unit, p.valid, p.doc))
    return rows


# sensor_msgs/PointField datatypes
UINT8, UINT16, UINT32, FLOAT32 = 2, 4, 6, 7
# The ROS 2 velodyne_pointcloud driver's PointXYZIRT fields, packed (point_step 22).
VELODYNE_DTYPE = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "<f4"), ("ring", "<u2"),
                           ("time", "<f4")])
# Autoware / nebula PointXYZIRCAEDT (point_step 32): time_stamp in ns after header.stamp.
AUTOWARE_DTYPE = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("intensity", "u1"), ("return_type", "u1"),
                           ("channel", "<u2"), ("azimuth", "<f4"), ("elevation", "<f4"), ("distance", "<f4"),
                           ("time_stamp", "<u4")])
POINT_FIELD_TYPES = {np.dtype("<f4"): FLOAT32, np.dtype("u1"): UINT8, np.dtype("<u2"): UINT16,
                     np.dtype("<u4"): UINT32}
RETURN_SINGLE_STRONGEST = 1   # autoware::point_types::ReturnType: one return per firing


@dataclass(frozen=True)
class LidarSpec:
    """One simulated LiDAR: beam pattern, mount, rate, range limits, noise and output layout."""

    name: str
    model: str
    elevations_deg: tuple[float, ...]
    columns: int
    hfov_deg: float = 360.0
    min_range: float = 0.5
    max_range: float = 100.0
    rate_hz: float = 10.0
    xyz: tuple[float, float, float] = (0.0, 0.0, 1.9)
    rpy: tuple[float, float, float] = (0.0, 0.0, 0.0)
    range_noise: float = 0.0
    dropout: float = 0.0
    seed: int = 0
    deskew: bool = False
    layout: str = "velodyne"
    render_pitch_deg: float = 0.0
    sectors_per_face: int = 1

    @property
    def frame(self) -> str:
        """The frame its points are in (and its TF child of base_link)."""
        return f"{self.name}_link"

    @property
    def spinning(self) -> bool:
        return self.hfov_deg >= 360.0

    @property
    def horizontal_step_deg(self) -> float:
        return self.hfov_deg / self.columns

    @property
    def pitch_rad(self) -> float:
        """The render's pixel pitch across: ``render_pitch_deg``, or the horizontal step."""
        return math.radians(self.render_pitch_deg or self.horizontal_step_deg)

    @property
    def row_pitch_rad(self) -> float:
        """The render's pixel pitch down (elevation on the side faces): half the closest beams'
        spacing, at least the pitch across and at most 4 times it (beams 2 deg apart need no
        0.2 deg rows; interpolation between rows is exact on planes)."""
        el = np.sort(np.radians(np.asarray(self.elevations_deg)))
        gaps = np.diff(el)
        gaps = gaps[gaps > 0]
        half = float(gaps.min()) / 2 if len(gaps) else self.pitch_rad
        return float(np.clip(half, self.pitch_rad, 4 * self.pitch_rad))

    def base_from_link(self) -> np.ndarray:
        return make_pose(rotation_from_rpy(*self.rpy), self.xyz)

    def rings(self) -> np.ndarray:
        """(beams,) ring number of each beam: its rank by vertical angle, 0 the lowest (Velodyne's
        convention; Autoware's ``channel``)."""
        order = np.argsort(np.asarray(self.elevations_deg), kind="stable")
        rings = np.empty(len(order), np.uint16)
        rings[order] = np.arange(len(order))
        return rings

    def azimuths_rad(self) -> np.ndarray:
        """(columns,) azimuth of each column in firing order (atan2(y, x) in <name>_link):
        clockwise from 135 deg (behind on the left) for a spinning LiDAR, left to right for a raster."""
        steps = np.arange(self.columns, dtype=np.float64)
        if self.spinning:
            return SPIN_START_RAD - (steps + 0.5) * (2 * np.pi / self.columns)     # centred in its step
        half = math.radians(self.hfov_deg) / 2
        return half - (steps + 0.5) * (2 * half / self.columns)

    def firing_times(self) -> np.ndarray:
        """(columns,) seconds after the sweep's start each column fires."""
        return np.arange(self.columns, dtype=np.float64) / (self.columns * self.rate_hz)

    def directions(self) -> np.ndarray:
        """(columns * beams, 3) unit beam directions in <name>_link, column-major (firing order)."""
        az = self.azimuths_rad()[:, None]
        el = np.radians(np.asarray(self.elevations_deg, np.float64))[None, :]
        d = np.stack(np.broadcast_arrays(np.cos(el) * np.cos(az), np.cos(el) * np.sin(az), np.sin(el)), -1)
        return d.reshape(-1, 3)


# ---------------------------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------------------------

def load_lidars(params: dict[str, Any], source: str = "parameters") -> list[LidarSpec]:
    """The LiDARs of dotted parameters ``lidars.*`` (other parameters are ignored), after the rig
    preset ``rig.preset`` names, if any, is filled in; none without ``lidars.names``."""
    from .rig import expand_preset

    params = expand_preset(params, source)
    given = {k: v for k, v in params.items() if isinstance(k, str) and k.startswith(PREFIX)}
    if not given:
        return []
    if NAMES_PARAM not in given:
        key = sorted(given)[0]
        raise InputError(f"{source}: parameter '{key}' is set but '{NAMES_PARAM}' is not",
                         f"list the LiDARs in '{NAMES_PARAM}', e.g. [top]")
    names = _names(given[NAMES_PARAM], source)
    per_lidar: dict[str, dict[str, Any]] = {n: {} for n in names}
    for key, value in given.items():
        if key == NAMES_PARAM:
            continue
        name, dot, leaf = key[len(PREFIX):].partition(".")
        if not dot:
            raise InputError(f"{source}: unknown parameter '{key}'", f"give '{NAMES_PARAM}' and 'lidars.<name>.<key>'")
        if name not in per_lidar:
            raise InputError(f"{source}: parameter '{key}' is for LiDAR '{name}', which is not in {NAMES_PARAM} "
                             f"{list(names)}", _did_you_mean(name, names, "LiDAR", f"add '{name}' to {NAMES_PARAM}"))
        if leaf not in LIDAR_KEYS:
            close = difflib.get_close_matches(leaf, LIDAR_KEYS, n=1, cutoff=0.6)
            hint = f"did you mean '{PREFIX}{name}.{close[0]}'?" if close else f"known keys: {', '.join(LIDAR_KEYS)}"
            raise InputError(f"{source}: unknown parameter '{key}'", hint)
        per_lidar[name][leaf] = value
    return [_lidar(name, per_lidar[name], source) for name in names]


def lidar_parameters(lidars: list[LidarSpec]) -> dict[str, Any]:
    """Dotted parameters that :func:`load_lidars` turns back into ``lidars`` (model custom)."""
    if not lidars:
        return {}
    params: dict[str, Any] = {NAMES_PARAM: [s.name for s in lidars]}
    for s in lidars:
        p = f"{PREFIX}{s.name}."
        params.update({p + "model": "custom", p + "elevations_deg": list(s.elevations_deg), p + "columns": s.columns,
                       p + "hfov_deg": s.hfov_deg, p + "min_range": s.min_range, p + "max_range": s.max_range,
                       p + "rate_hz": s.rate_hz, p + "xyz": list(s.xyz), p + "rpy": list(s.rpy),
                       p + "range_noise": s.range_noise, p + "dropout": s.dropout, p + "seed": s.seed,
                       p + "deskew": s.deskew, p + "layout": s.layout, p + "render_pitch_deg": s.render_pitch_deg,
                       p + "sectors_per_face": s.sectors_per_face})
    return params


def _did_you_mean(word: str, choices, what: str, otherwise: str) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f"did you mean {what} '{close[0]}'? Or {otherwise}" if close else otherwise


def _names(value, source: str) -> tuple[str, ...]:
    from .rig import valid_name

    if not isinstance(value, (list, tuple)) or not value:
        raise InputError(f"{source}: parameter '{NAMES_PARAM}' = {value!r} is not a non-empty list",
                         "give a list of LiDAR names, e.g. [top]")
    for name in value:
        if not valid_name(name) or name == "names":
            raise InputError(f"{source}: parameter '{NAMES_PARAM}' holds {name!r}, not a valid LiDAR name",
                             "use letters, digits and single underscores, not starting with a digit, e.g. top")
    if len(set(value)) != len(value):
        raise InputError(f"{source}: parameter '{NAMES_PARAM}' = {list(value)} lists a LiDAR twice",
                         "give each LiDAR once")
    return tuple(value)


def _number(param: str, value, source: str, ok, valid: str) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not math.isfinite(value) or not ok(value):
        raise InputError(f"{source}: parameter '{param}' = {value!r} is out of range or not a number", f"give {valid}")
    return float(value)


def _vec3(param: str, value, source: str, valid: str) -> tuple[float, float, float]:
    if (not isinstance(value, (list, tuple)) or len(value) != 3
            or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) for v in value)):
        raise InputError(f"{source}: parameter '{param}' = {value!r} is not three finite numbers", f"give {valid}")
    return tuple(float(v) for v in value)


def _lidar(name: str, given: dict[str, Any], source: str) -> LidarSpec:
    p = f"{PREFIX}{name}."
    model = given.get("model", DEFAULTS["model"])
    known = (*PRESETS, "custom")
    if model not in known:
        raise InputError(f"{source}: parameter '{p}model' = {model!r} is not a known LiDAR model",
                         _did_you_mean(str(model), known, "model", f"use one of {', '.join(known)}"))
    base = dict(PRESETS.get(model, {}))
    if model == "custom":
        missing = [k for k in ("elevations_deg", "columns") if k not in given]
        if missing:
            raise InputError(f"{source}: LiDAR '{name}' of model custom has no '{p}{missing[0]}'",
                             "give elevations_deg (one vertical angle per beam) and columns, or a preset model")
        base.update({"hfov_deg": 360.0, "min_range": 0.5, "max_range": 100.0, "rate_hz": 10.0})
    values = {**DEFAULTS, **base, **given}

    elevations = values["elevations_deg"]
    if not isinstance(elevations, (list, tuple)) or not elevations:
        raise InputError(f"{source}: parameter '{p}elevations_deg' = {elevations!r} holds no beams",
                         "give one vertical angle in degrees per beam, e.g. [-15, -13, ..., 15]")
    if len(elevations) > MAX_BEAMS:
        raise InputError(f"{source}: parameter '{p}elevations_deg' holds {len(elevations)} beams, more than "
                         f"{MAX_BEAMS}", f"give at most {MAX_BEAMS} beams")
    elevations = tuple(_number(f"{p}elevations_deg", e, source, lambda v: -90.0 < v < 90.0,
                               "vertical angles in degrees strictly between -90 and 90") for e in elevations)
    columns = values["columns"]
    if not isinstance(columns, numbers.Integral) or isinstance(columns, bool) or not 1 <= columns <= MAX_COLUMNS:
        raise InputError(f"{source}: parameter '{p}columns' = {columns!r} is not a whole number of firings "
                         f"from 1 to {MAX_COLUMNS}", "give the horizontal samples per sweep, e.g. 1800")
    if len(elevations) * int(columns) > MAX_POINTS:
        raise InputError(f"{source}: LiDAR '{name}' has {len(elevations)} x {columns} points per sweep, more than "
                         f"{MAX_POINTS:,}", "give fewer beams or columns")
    hfov = _number(p + "hfov_deg", values["hfov_deg"], source, lambda v: 0.0 < v <= 360.0,
                   "a horizontal field of view above 0 and at most 360 degrees (360: spinning)")
    if hfov < 360.0 and hfov >= 180.0:
        raise InputError(f"{source}: parameter '{p}hfov_deg' = {hfov:g} is a raster of 180 degrees or more",
                         "give 360 for a spinning LiDAR, or a raster narrower than 180 degrees")
    min_range = _number(p + "min_range", values["min_range"], source, lambda v: v >= 0.0,
                        "a minimum range >= 0 in metres, e.g. 0.5")
    max_range = _number(p + "max_range", values["max_range"], source, lambda v: v > 0.0,
                        "a maximum range > 0 in metres, e.g. 100.0")
    if min_range >= max_range:
        raise InputError(f"{source}: LiDAR '{name}' has min_range {min_range:g} m >= max_range {max_range:g} m",
                         f"give '{p}min_range' below '{p}max_range'")
    rate = _number(p + "rate_hz", values["rate_hz"], source, lambda v: 0.0 < v <= 100.0,
                   "a sweep rate above 0 and at most 100 Hz, e.g. 10.0")
    xyz = _vec3(p + "xyz", values["xyz"], source, "[x, y, z] of the LiDAR in base_link in metres")
    rpy = _vec3(p + "rpy", values["rpy"], source, "[roll, pitch, yaw] of the LiDAR in base_link in radians")
    noise = _number(p + "range_noise", values["range_noise"], source, lambda v: 0.0 <= v <= 10.0,
                    "a range noise sigma from 0 to 10 metres, e.g. 0.02")
    dropout = _number(p + "dropout", values["dropout"], source, lambda v: 0.0 <= v < 1.0,
                      "a probability from 0 up to (not including) 1, e.g. 0.05")
    seed = values["seed"]
    if not isinstance(seed, numbers.Integral) or isinstance(seed, bool) or seed < 0:
        raise InputError(f"{source}: parameter '{p}seed' = {seed!r} is not a whole number >= 0", "give e.g. 0")
    deskew = values["deskew"]
    if not isinstance(deskew, bool):
        raise InputError(f"{source}: parameter '{p}deskew' = {deskew!r} is not true or false",
                         "give true (points in the frame at the stamp) or false (as fired)")
    layout = values["layout"]
    if layout not in LAYOUTS:
        raise InputError(f"{source}: parameter '{p}layout' = {layout!r} is not a known point layout",
                         _did_you_mean(str(layout), LAYOUTS, "layout", f"use one of {', '.join(LAYOUTS)}"))
    pitch = _number(p + "render_pitch_deg", values["render_pitch_deg"], source, lambda v: v == 0.0 or 0.01 <= v <= 5.0,
                    "0 (the horizontal step) or a pixel pitch from 0.01 to 5 degrees")
    sectors = values["sectors_per_face"]
    if not isinstance(sectors, numbers.Integral) or isinstance(sectors, bool) or not 1 <= sectors <= 16:
        raise InputError(f"{source}: parameter '{p}sectors_per_face' = {sectors!r} is not a whole number from 1 to 16",
                         "give e.g. 1 (CPU) or 4 (GPU, fast ego motion)")
    return LidarSpec(name, str(model), elevations, int(columns), hfov, min_range, max_range, rate, xyz, rpy, noise,
                     dropout, int(seed), deskew, str(layout), pitch, int(sectors))


# ---------------------------------------------------------------------------------------------
# Sweeps
# ---------------------------------------------------------------------------------------------

@dataclass
class LidarFrame:
    """One LiDAR's sweep, on the host, ready to become a PointCloud2."""

    spec: LidarSpec
    points: np.ndarray                 # structured, VELODYNE_DTYPE or AUTOWARE_DTYPE, firing order
    map_from_link: np.ndarray          # (4, 4) the LiDAR at the stamp
    returns: int = 0                   # points kept (== len(points))
    fired: int = 0                     # beams x columns


def pose_after(map_from_base: np.ndarray, linear: np.ndarray, angular: np.ndarray, dt: float) -> np.ndarray:
    """``map_from_base`` moved on for ``dt`` seconds at a constant body twist (linear m/s and
    angular rad/s in base_link): the rotation exactly, the translation along the mean heading."""
    w = np.asarray(angular, np.float64) * dt
    angle = float(np.linalg.norm(w))
    rot = np.eye(3)
    half = np.eye(3)
    if angle > 1e-12:
        k = w / angle
        kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
        rot = np.eye(3) + math.sin(angle) * kx + (1 - math.cos(angle)) * kx @ kx
        half = np.eye(3) + math.sin(angle / 2) * kx + (1 - math.cos(angle / 2)) * kx @ kx
    step = np.eye(4)
    step[:3, :3] = rot
    step[:3, 3] = half @ (np.asarray(linear, np.float64) * dt)
    return map_from_base @ step


class LidarSampler:
    """A LiDAR's render plan on one device: its beam directions split into sectors of consecutive
    columns within one azimuth bin (``sectors_per_face`` per cube face), each covered by its
    own cube-face view (render/directional.py), and the per-sweep conversion of the looked-up
    ranges into points."""

    def __init__(self, spec: LidarSpec, device):
        from ..render.directional import DirectionalViews

        self.spec = spec
        beams = len(spec.elevations_deg)
        # Azimuth bins with edges on the cube faces' edges (+-45, +-135 deg), split evenly; a
        # sector is a run of consecutive columns in one bin (a sweep that started inside a bin
        # would sweep it at its start and again at its end: two sectors).
        az = spec.azimuths_rad()
        per_face = spec.sectors_per_face
        width = (np.pi / 2) / per_face
        column_bin = np.floor(np.mod(az + np.pi / 4, 2 * np.pi) / width).astype(int)
        quadrant = column_bin // per_face                    # 0: +x, 1: +y, 2: -x, 3: -y
        column_face = np.array([0, 2, 1, 3])[quadrant]               # index into directional.FACES
        column_sector = np.concatenate([[0], np.cumsum(np.diff(column_bin) != 0)])
        self.sectors = int(column_sector[-1]) + 1
        self.column_sector = column_sector                                    # (columns,)
        self.views = DirectionalViews(spec.directions(), spec.pitch_rad, device,
                                      groups=np.repeat(column_sector, beams), row_pitch_rad=spec.row_pitch_rad,
                                      faces=np.repeat(column_face, beams) if max(
                                          abs(e) for e in spec.elevations_deg) < 35.0 else None)
        times = spec.firing_times()
        # The moment each sector's pose is taken: the middle of its columns' firing times.
        self.sector_times = np.array([times[column_sector == s].mean() for s in range(self.sectors)])
        self.point_time = np.repeat(times, beams)                             # (N,) seconds after the stamp
        self.point_sector = np.repeat(column_sector, beams)
        self.ring = np.tile(spec.rings(), spec.columns)
        self.unit = spec.directions()
        el = np.radians(np.asarray(spec.elevations_deg))
        self.azimuth = np.repeat(np.mod(spec.azimuths_rad(), 2 * np.pi), beams).astype(np.float32)
        self.elevation = np.tile(el, spec.columns).astype(np.float32)
        self._rng = np.random.default_rng(spec.seed)

    def sensor_poses(self, map_from_base: np.ndarray, linear, angular) -> np.ndarray:
        """(sectors, 4, 4) map_from_link at each sector's moment."""
        base_from_link = self.spec.base_from_link()
        return np.stack([pose_after(map_from_base, linear, angular, float(t)) @ base_from_link
                         for t in self.sector_times])

    def points(self, ranges: np.ndarray, rgb: np.ndarray, covered: np.ndarray, cos_incidence: np.ndarray,
               map_from_link_at_stamp: np.ndarray, map_from_link_at: np.ndarray) -> np.ndarray:
        """The sweep's returns as a structured array (the spec's layout) from per-beam lookups
        (host arrays of length N, firing order), the LiDAR's pose at the stamp and the sector
        poses ``map_from_link_at`` (sectors, 4, 4) the ranges were rendered from."""
        s = self.spec
        r = ranges.astype(np.float64)
        if s.range_noise > 0:
            r = r + self._rng.normal(0.0, s.range_noise, size=r.shape)
        keep = covered & np.isfinite(r) & (r >= s.min_range) & (r <= s.max_range)
        if s.dropout > 0:
            keep &= self._rng.random(r.shape) >= s.dropout
        idx = np.flatnonzero(keep)
        r = r[idx]
        xyz = self.unit[idx] * r[:, None]                                     # the link frame when fired
        if s.deskew:
            # Into the link frame at the stamp: link(0)^-1 link(t) x, t the sector's moment (the
            # pose the range was rendered from).
            rel = np.linalg.inv(map_from_link_at_stamp) @ map_from_link_at     # (sectors, 4, 4)
            sec = self.point_sector[idx]
            xyz = np.einsum("nij,nj->ni", rel[sec, :3, :3], xyz) + rel[sec, :3, 3]
        c = rgb[idx].astype(np.float64) / 255.0
        luminance = c @ np.array([0.2126, 0.7152, 0.0722])
        cos = cos_incidence[idx]
        cos = np.where(np.isfinite(cos), cos, 1.0)
        intensity = np.clip(np.round(255.0 * luminance * cos), 0, 255)
        t = self.point_time[idx]
        if s.layout == "velodyne":
            out = np.empty(len(idx), VELODYNE_DTYPE)
            out["intensity"] = intensity
            out["ring"] = self.ring[idx]
            out["time"] = t
        else:
            out = np.empty(len(idx), AUTOWARE_DTYPE)
            out["intensity"] = intensity.astype(np.uint8)
            out["return_type"] = RETURN_SINGLE_STRONGEST
            out["channel"] = self.ring[idx]
            if s.deskew:
                # Of the point as published (in the frame at the stamp), as Autoware defines them.
                out["azimuth"] = np.mod(np.arctan2(xyz[:, 1], xyz[:, 0]), 2 * np.pi)
                out["elevation"] = np.arctan2(xyz[:, 2], np.hypot(xyz[:, 0], xyz[:, 1]))
                out["distance"] = np.linalg.norm(xyz, axis=1)
            else:
                out["azimuth"] = self.azimuth[idx]
                out["elevation"] = self.elevation[idx]
                out["distance"] = r
            out["time_stamp"] = np.round(t * 1e9).astype(np.uint32)
        out["x"], out["y"], out["z"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
        return out
