"""The camera rig: which cameras the simulator renders, where they sit on the ego, what they publish.

Cameras come from ROS 2 parameters (flat dotted names, as :func:`inspatio_ros.config.read_parameters`
returns them)::

    cameras.names: [front, left, right]     # default: one camera named front
    cameras.front.width: 640                 # pixels (default 640)
    cameras.front.height: 360                # pixels (default 360)
    cameras.front.fx: 320.0                  # pinhole intrinsics in pixels: fx (required in this
    cameras.front.fy: 320.0                  #   form), fy (default fx), cx, cy (default the centre,
    cameras.front.cx: 319.5                  #   (width - 1) / 2 and (height - 1) / 2) ...
    cameras.front.cy: 179.5
    cameras.front.hfov_deg: 90.0             # ... or a horizontal FOV, square pixels, centred
                                             #   (default 90 when no fx/fy/cx/cy is given)
    cameras.front.xyz: [1.5, 0.0, 1.5]       # <cam>_link in base_link, metres (default [0, 0, 1.5])
    cameras.front.rpy: [0.0, 0.0, 0.0]       # roll, pitch, yaw of <cam>_link in base_link, radians
    cameras.front.rate_hz: 30.0              # publish rate (default 30)
    cameras.front.outputs: [image, depth, points]   # subset of image, depth, points, coverage,
                                                    #   compressed (default [image, depth, points])
    cameras.front.distortion_model: plumb_bob  # lens (default none: an ideal pinhole camera):
    cameras.front.D: [-0.28, 0.09, 0.0, 0.0, 0.0] #   plumb_bob (k1 k2 p1 p2 k3), rational_polynomial
                                             #   (k1 k2 p1 p2 k3 k4 k5 k6) or equidistant (fisheye
                                             #   k1..k4); D defaults to zeros. See lens.py
    cameras.front.fov_deg: 190.0             # equidistant only: the field of view the fisheye sees
                                             #   (default 180, at most 190); without fx or hfov_deg
                                             #   (the angle across the width) the image circle of
                                             #   that view spans the width

Rig presets: ``rig.preset: <name>`` fills in the cameras (and LiDARs, sim/lidar.py) of a preset
(:data:`RIG_PRESETS`: ``surround6``, ``surround6_lidar``, ``driving_lidar``); any ``cameras.*`` /
``lidars.*`` parameter given as well overrides the preset's value (``cameras.names`` the list).

Rates: the sim ticks at the fastest sensor's rate and every sensor's rate must divide it exactly
(30 Hz cameras with a 10 Hz LiDAR: every third tick carries the LiDAR), so sensors due together
share one tick and one stamp (:func:`check_sensors`).

A fisheye (equidistant) camera is rendered by ray direction (render/lens_warp.py FisheyeView);
its depth image holds the range along each pixel's ray.

Frames (REP-103/105): ``base_link -> <name>_link -> <name>_optical_frame``. ``<name>_link`` is a
body frame (x forward, y left, z up) placed by ``xyz``/``rpy``; the optical frame (z forward,
x right, y down: the frame images, depth and points are in) is fixed to it by the rotation
rpy = (-pi/2, 0, -pi/2). A camera with rpy 0 looks along base_link +x.

Every bad parameter is an :class:`InputError` naming it and the fix.
"""
from __future__ import annotations

import difflib
import math
import numbers
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..camera import Intrinsics, make_pose, rotation_from_rpy
from ..errors import InputError
from ..lens import Lens

PREFIX = "cameras."
NAMES_PARAM = "cameras.names"
OUTPUTS = ("image", "depth", "points", "coverage", "compressed")
DEFAULT_NAMES = ("front",)
DEFAULTS: dict[str, Any] = {
    "width": 640,
    "height": 360,
    "hfov_deg": 90.0,
    "xyz": [0.0, 0.0, 1.5],
    "rpy": [0.0, 0.0, 0.0],
    "rate_hz": 30.0,
    "outputs": ["image", "depth", "points"],
}

# link_from_optical: optical z -> link +x, optical x -> link -y, optical y -> link -z.
# Exactly rotation_from_rpy(-pi/2, 0, -pi/2), written without rounding noise.
LINK_FROM_OPTICAL_ROTATION = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])

_NAME_TOKEN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Size limits checked before anything is allocated: -p cameras.front.width:=100000 with the same
# height (1e10 pixels) ended in a MemoryError traceback from the renderer's first per-pixel
# buffer. 8192 is also the render command's --size limit; 64 Mpixel for the whole rig is ten
# times the 3 x 1080p driving rig.
MAX_SIDE = 8192
MAX_RIG_PIXELS = 8192 * 8192


@dataclass(frozen=True)
class CameraParameter:
    """What one ``cameras.<cam>.<key>`` parameter means, for the README's generated table
    (tools/parameter_table.py); the checks themselves are in :func:`_camera`."""

    unit: str
    valid: str
    doc: str
    default: str = ""       # shown when the key has no entry in DEFAULTS


# Every key a camera takes, in the README's order; load_rig refuses any other.
CAMERA_PARAMETERS: dict[str, CameraParameter] = {
    "width": CameraParameter("px", f"1..{MAX_SIDE} (at most 8192 x 8192 pixels for the whole rig)", "image width"),
    "height": CameraParameter("px", f"1..{MAX_SIDE}", "image height"),
    "fx": CameraParameter("px", "> 0", "focal length; with fy, cx, cy instead of hfov_deg", "none (hfov_deg)"),
    "fy": CameraParameter("px", "> 0", "focal length (default fx)", "fx"),
    "cx": CameraParameter("px", "any", "principal point column (default the centre, (width - 1) / 2)", "centre"),
    "cy": CameraParameter("px", "any", "principal point row (default the centre, (height - 1) / 2)", "centre"),
    "hfov_deg": CameraParameter("deg", "> 1 and < 179 (fisheye: <= fov_deg)", "horizontal field of view, square "
                                "pixels, centred (used when no fx/fy/cx/cy is given; a fisheye's default is its "
                                "fov_deg)"),
    "xyz": CameraParameter("m", "3 finite numbers", "`<cam>_link` in base_link (REP-103: x forward, y left, z up)"),
    "rpy": CameraParameter("rad", "3 finite numbers", "roll, pitch, yaw of `<cam>_link` in base_link"),
    "rate_hz": CameraParameter("Hz", "> 0", "publish rate"),
    "outputs": CameraParameter("", " | ".join(OUTPUTS), "what the camera publishes (a non-empty list)"),
    "distortion_model": CameraParameter("", "plumb_bob | rational_polynomial | equidistant",
                                        "lens distortion (README: Lens distortion); camera_info carries it",
                                        "none (pinhole)"),
    "D": CameraParameter("", "5, 8 or 4 finite numbers (by model)",
                         "the model's coefficients in ROS order: plumb_bob k1 k2 p1 p2 k3; rational_polynomial "
                         "k1 k2 p1 p2 k3 k4 k5 k6; equidistant k1 k2 k3 k4", "zeros"),
    "fov_deg": CameraParameter("deg", "> 0 and <= 190", "equidistant only: the field of view the fisheye sees; "
                               "without fx or hfov_deg the image circle of that view spans the width", "180"),
}
CAMERA_KEYS = tuple(CAMERA_PARAMETERS)


def camera_parameter_rows() -> list[tuple[str, object, str, str, str]]:
    """(name, default, unit, valid, meaning) of ``cameras.names`` and every ``cameras.<cam>.<key>``."""
    rows: list[tuple[str, object, str, str, str]] = [
        (NAMES_PARAM, list(DEFAULT_NAMES), "", "ROS name tokens",
         "the rig's cameras (default: one camera, front, with the world's own intrinsics)")]
    for key, p in CAMERA_PARAMETERS.items():
        rows.append((f"{PREFIX}<cam>.{key}", DEFAULTS.get(key, p.default), p.unit, p.valid, p.doc))
    return rows


@dataclass(frozen=True)
class CameraSpec:
    """One simulated camera: image size, intrinsics (K) and lens distortion (None: an ideal
    pinhole), mount on the ego, rate, outputs."""

    name: str
    width: int
    height: int
    intrinsics: Intrinsics
    xyz: tuple[float, float, float] = (0.0, 0.0, 1.5)
    rpy: tuple[float, float, float] = (0.0, 0.0, 0.0)
    rate_hz: float = 30.0
    outputs: tuple[str, ...] = ("image", "depth", "points")
    lens: Lens | None = None

    @property
    def link_frame(self) -> str:
        return f"{self.name}_link"

    @property
    def optical_frame(self) -> str:
        return f"{self.name}_optical_frame"

    def base_from_link(self) -> np.ndarray:
        """4x4 pose of ``<name>_link`` in ``base_link``."""
        return make_pose(rotation_from_rpy(*self.rpy), self.xyz)

    @staticmethod
    def link_from_optical() -> np.ndarray:
        """4x4 pose of ``<name>_optical_frame`` in ``<name>_link`` (a fixed rotation)."""
        return make_pose(LINK_FROM_OPTICAL_ROTATION, (0.0, 0.0, 0.0))

    def base_from_optical(self) -> np.ndarray:
        """4x4 pose of the optical frame in ``base_link``: map_from_optical = map_from_base @ this."""
        return self.base_from_link() @ self.link_from_optical()


def valid_name(name) -> bool:
    """A sensor name usable in frame and topic names: a ROS name token without double underscores."""
    return isinstance(name, str) and bool(_NAME_TOKEN.match(name)) and "__" not in name


PRESET_PARAM = "rig.preset"


def has_camera_parameters(params: dict[str, Any]) -> bool:
    """Whether ``params`` give cameras (``cameras.*`` or a rig preset): without, a session uses
    one camera like the recording's."""
    return any(isinstance(k, str) and (k.startswith(PREFIX) or k == PRESET_PARAM) for k in params)


def _surround_camera(name: str, xyz, yaw_deg: float, hfov_deg: float) -> dict[str, Any]:
    p = f"{PREFIX}{name}."
    return {p + "width": 1920, p + "height": 1080, p + "hfov_deg": hfov_deg, p + "xyz": list(xyz),
            p + "rpy": [0.0, 0.0, round(math.radians(yaw_deg), 12)], p + "rate_hz": 30.0,
            p + "outputs": ["image"]}


# A car's surround rig like nuScenes' (extrinsics rounded from its calibration; base_link is the
# rear axle's centre on the ground): six 1920x1080 cameras at 30 Hz, 70 deg lenses except the
# rear's 110 deg, yaws 0, +-55, +-110 and 180 deg.
_SURROUND6: dict[str, Any] = {
    NAMES_PARAM: ["front", "front_left", "front_right", "rear", "rear_left", "rear_right"],
    **_surround_camera("front", [1.70, 0.0, 1.51], 0.0, 70.0),
    **_surround_camera("front_left", [1.52, 0.49, 1.51], 55.0, 70.0),
    **_surround_camera("front_right", [1.52, -0.49, 1.51], -55.0, 70.0),
    **_surround_camera("rear", [0.03, 0.0, 1.58], 180.0, 110.0),
    **_surround_camera("rear_left", [1.04, 0.48, 1.56], 110.0, 70.0),
    **_surround_camera("rear_right", [1.04, -0.48, 1.56], -110.0, 70.0),
}
RIG_PRESETS: dict[str, dict[str, Any]] = {
    "surround6": _SURROUND6,
    # The surround rig with a 64-beam roof LiDAR at 10 Hz (the H200 performance rig).
    "surround6_lidar": {**_SURROUND6, "lidars.names": ["top"], "lidars.top.model": "HDL-64E",
                        "lidars.top.xyz": [0.94, 0.0, 1.84]},
    # One 640x360 front camera at 10 Hz and a VLP-16 on the roof at 10 Hz (the CPU rig).
    "driving_lidar": {NAMES_PARAM: ["front"], "cameras.front.width": 640, "cameras.front.height": 360,
                      "cameras.front.hfov_deg": 90.0, "cameras.front.xyz": [1.5, 0.0, 1.5],
                      "cameras.front.rate_hz": 10.0, "lidars.names": ["top"], "lidars.top.model": "VLP-16",
                      "lidars.top.xyz": [1.0, 0.0, 1.9], "lidars.top.rate_hz": 10.0},
}


def preset_parameter_rows() -> list[tuple[str, object, str, str, str]]:
    """(name, default, unit, valid, meaning) of ``rig.preset`` for the README's table."""
    return [(PRESET_PARAM, "none", "", " | ".join(RIG_PRESETS),
             "a sensor rig preset (cameras and LiDARs); cameras.* / lidars.* given as well override it")]


def expand_preset(params: dict[str, Any], source: str = "parameters") -> dict[str, Any]:
    """``params`` with the values of the preset ``rig.preset`` names filled in under the ones
    given (none: ``params`` as they are)."""
    for key in params:
        if isinstance(key, str) and key.startswith("rig.") and key != PRESET_PARAM:
            raise InputError(f"{source}: unknown parameter '{key}'",
                             f"the rig takes '{PRESET_PARAM}' (did you mean it?)")
    if PRESET_PARAM not in params:
        return params
    name = params[PRESET_PARAM]
    if name not in RIG_PRESETS:
        raise InputError(f"{source}: parameter '{PRESET_PARAM}' = {name!r} is not a known rig preset",
                         _did_you_mean(str(name), RIG_PRESETS, "preset", f"use one of {', '.join(RIG_PRESETS)}"))
    return {**RIG_PRESETS[name], **{k: v for k, v in params.items() if k != PRESET_PARAM}}


def check_sensors(cameras, lidars=(), source: str = "parameters") -> float:
    """The tick rate (the fastest sensor's). Every sensor's rate must divide it exactly, and a
    LiDAR may not share a camera's name (both would be ``<name>_link`` with ``<name>/points``)."""
    clash = sorted({c.name for c in cameras} & {s.name for s in lidars})
    if clash:
        raise InputError(f"{source}: '{clash[0]}' names both a camera and a LiDAR",
                         "give the LiDAR another name in lidars.names, e.g. top")
    sensors = [(f"cameras.{c.name}.rate_hz", c.rate_hz) for c in cameras] + \
              [(f"lidars.{s.name}.rate_hz", s.rate_hz) for s in lidars]
    fastest = max(rate for _, rate in sensors)
    for param, rate in sensors:
        ratio = fastest / rate
        if abs(ratio - round(ratio)) > 1e-6 * ratio:
            raise InputError(f"{source}: parameter '{param}' = {rate:g} Hz does not divide the sim rate "
                             f"{fastest:g} Hz (the fastest sensor's) exactly ({fastest:g} / {rate:g} = {ratio:.4g})",
                             f"give a rate of {fastest:g} Hz divided by a whole number, "
                             f"e.g. {fastest / math.ceil(ratio):g}")
    return fastest


def sensor_divisors(cameras, lidars=()) -> dict[str, int]:
    """Sensor name -> ticks between its frames (the tick rate over its rate, :func:`check_sensors`)."""
    fastest = max([c.rate_hz for c in cameras] + [s.rate_hz for s in lidars])
    return {x.name: max(1, round(fastest / x.rate_hz)) for x in (*cameras, *lidars)}


def load_rig(params: dict[str, Any], source: str = "parameters") -> list[CameraSpec]:
    """The cameras of dotted parameters ``cameras.*`` (other parameters are ignored), after the
    preset ``rig.preset`` names, if any, is filled in.

    Without ``cameras.names`` the rig is one camera named ``front``; keys left out take the
    defaults in :data:`DEFAULTS`.
    """
    params = expand_preset(params, source)
    cams = {k: v for k, v in params.items() if isinstance(k, str) and k.startswith(PREFIX)}
    names = _names(cams.get(NAMES_PARAM, list(DEFAULT_NAMES)), source)
    per_camera: dict[str, dict[str, Any]] = {n: {} for n in names}
    for key, value in cams.items():
        if key == NAMES_PARAM:
            continue
        rest = key[len(PREFIX):]
        cam, dot, field = rest.partition(".")
        if not dot:
            hint = "did you mean 'cameras.names'?" if difflib.get_close_matches(
                key, [NAMES_PARAM], n=1, cutoff=0.6) else f"give '{NAMES_PARAM}' and 'cameras.<name>.<key>'"
            raise InputError(f"{source}: unknown parameter '{key}'", hint)
        if cam not in per_camera:
            raise InputError(f"{source}: parameter '{key}' is for camera '{cam}', which is not in {NAMES_PARAM} "
                             f"{list(names)}", _did_you_mean(cam, names, "camera", f"add '{cam}' to {NAMES_PARAM}"))
        if field not in CAMERA_KEYS:
            known = [f"{PREFIX}{cam}.{k}" for k in CAMERA_KEYS]
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(CAMERA_KEYS)}"
            raise InputError(f"{source}: unknown parameter '{key}'", hint)
        per_camera[cam][field] = value
    rig = [_camera(name, per_camera[name], source) for name in names]
    pixels = sum(c.width * c.height for c in rig)
    if pixels > MAX_RIG_PIXELS:
        sizes = ", ".join(f"{c.name} {c.width}x{c.height}" for c in rig)
        raise InputError(f"{source}: the rig's cameras ({sizes}) have {pixels:,} pixels together, more than "
                         f"the limit of {MAX_RIG_PIXELS:,} (8192x8192)",
                         f"give smaller '{PREFIX}<name>.width' / '.height' or fewer cameras")
    return rig


def load_rig_file(path: str | Path) -> list[CameraSpec]:
    """The rig of a ROS 2 parameter file (e.g. config/driving_rig.yaml)."""
    from ..config import read_parameters

    return load_rig(read_parameters(path), source=f"config file {path}")


def rig_parameters(rig: list[CameraSpec]) -> dict[str, Any]:
    """Dotted parameters that :func:`load_rig` turns back into ``rig`` (intrinsics as fx/fy/cx/cy)."""
    params: dict[str, Any] = {NAMES_PARAM: [c.name for c in rig]}
    for c in rig:
        p = f"{PREFIX}{c.name}."
        k = c.intrinsics
        params.update({
            p + "width": c.width, p + "height": c.height,
            p + "fx": float(k.fx), p + "fy": float(k.fy), p + "cx": float(k.cx), p + "cy": float(k.cy),
            p + "xyz": [float(v) for v in c.xyz], p + "rpy": [float(v) for v in c.rpy],
            p + "rate_hz": float(c.rate_hz), p + "outputs": list(c.outputs),
        })
        if c.lens is not None:
            params.update({p + "distortion_model": c.lens.model, p + "D": list(c.lens.D)})
            if c.lens.fov_deg is not None:
                params[p + "fov_deg"] = c.lens.fov_deg
    return params


def recorded_camera_parameters(world, name: str = "front") -> dict[str, Any]:
    """The rig parameters of one camera ``name`` like the one that recorded ``world`` (its own
    intrinsics; the rest defaults): with it, replay reproduces the recording."""
    k = world.intrinsics
    return {NAMES_PARAM: [name], f"{PREFIX}{name}.width": int(k.width), f"{PREFIX}{name}.height": int(k.height),
            f"{PREFIX}{name}.fx": float(k.fx), f"{PREFIX}{name}.fy": float(k.fy),
            f"{PREFIX}{name}.cx": float(k.cx), f"{PREFIX}{name}.cy": float(k.cy)}


# ---------------------------------------------------------------------------------------------

def _did_you_mean(word: str, choices, what: str, otherwise: str) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean {what} '{close[0]}'? Or {otherwise}" if close else otherwise


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _names(value, source: str) -> tuple[str, ...]:
    fix = "give a list of camera names, e.g. [front, left, right]"
    if not isinstance(value, (list, tuple)) or not value:
        raise InputError(f"{source}: parameter '{NAMES_PARAM}' = {value!r} is not a non-empty list", fix)
    seen: set[str] = set()
    for name in value:
        if not valid_name(name):
            raise InputError(f"{source}: parameter '{NAMES_PARAM}' holds {name!r}, not a valid ROS name token",
                             "use letters, digits and single underscores, not starting with a digit, e.g. front_left")
        if name == "names":
            raise InputError(f"{source}: parameter '{NAMES_PARAM}' holds 'names', which clashes with "
                             f"'{NAMES_PARAM}' itself", "pick another camera name")
        if name in seen:
            raise InputError(f"{source}: parameter '{NAMES_PARAM}' lists '{name}' twice", "give each camera once")
        seen.add(name)
    return tuple(value)


def _int(param: str, value, source: str) -> int:
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value <= 0:
        raise InputError(f"{source}: parameter '{param}' = {value!r} is not a positive integer",
                         "give a size in pixels, e.g. 640")
    if value > MAX_SIDE:
        raise InputError(f"{source}: parameter '{param}' = {value} pixels is larger than the limit of {MAX_SIDE}",
                         f"give a size in pixels of at most {MAX_SIDE}, e.g. 1920")
    return int(value)


def _float(param: str, value, source: str, ok, valid: str) -> float:
    if not _is_number(value) or not math.isfinite(value) or not ok(value):
        raise InputError(f"{source}: parameter '{param}' = {value!r} is out of range or not a number",
                         f"give {valid}")
    return float(value)


def _vec3(param: str, value, source: str, valid: str) -> tuple[float, float, float]:
    if (not isinstance(value, (list, tuple)) or len(value) != 3
            or not all(_is_number(v) and math.isfinite(v) for v in value)):
        raise InputError(f"{source}: parameter '{param}' = {value!r} is not three finite numbers", f"give {valid}")
    return tuple(float(v) for v in value)


def _camera(name: str, given: dict[str, Any], source: str) -> CameraSpec:
    p = f"{PREFIX}{name}."
    width = _int(p + "width", given.get("width", DEFAULTS["width"]), source)
    height = _int(p + "height", given.get("height", DEFAULTS["height"]), source)

    lens = _lens(p, given, source)
    pinhole = [k for k in ("fx", "fy", "cx", "cy") if k in given]
    if pinhole and "hfov_deg" in given:
        raise InputError(f"{source}: both '{p}hfov_deg' and '{p}{pinhole[0]}' are set",
                         "give either fx/fy/cx/cy (pixels) or hfov_deg, not both")
    if pinhole:
        if "fx" not in given:
            raise InputError(f"{source}: parameter '{p}fx' is missing while '{p}{pinhole[0]}' is set",
                             "give fx (and optionally fy, cx, cy) in pixels, or hfov_deg instead")
        focal = "a focal length > 0 in pixels, e.g. 525.0"
        fx = _float(p + "fx", given["fx"], source, lambda v: v > 0, focal)
        fy = _float(p + "fy", given.get("fy", fx), source, lambda v: v > 0, focal)
        cx = _float(p + "cx", given.get("cx", (width - 1) / 2.0), source, lambda v: True,
                    "the principal point's column in pixels")
        cy = _float(p + "cy", given.get("cy", (height - 1) / 2.0), source, lambda v: True,
                    "the principal point's row in pixels")
        intrinsics = Intrinsics(fx, fy, cx, cy, width, height)
    elif lens is not None and lens.is_fisheye:
        # hfov_deg: the angle the fisheye sees across the image width (default its whole field of
        # view: the image circle spans the width).
        across = _float(p + "hfov_deg", given.get("hfov_deg", lens.fov_deg), source,
                        lambda v: 1.0 < v <= lens.fov_deg,
                        f"for a fisheye, the field of view across the image width: above 1 and at most "
                        f"'{p}fov_deg' ({lens.fov_deg:g}) degrees")
        focal = 0.5 * width / float(lens.theta_d(np.radians(across) / 2.0))
        intrinsics = Intrinsics(focal, focal, (width - 1) / 2.0, (height - 1) / 2.0, width, height)
    else:
        hfov = _float(p + "hfov_deg", given.get("hfov_deg", DEFAULTS["hfov_deg"]), source,
                      lambda v: 1.0 < v < 179.0, "a horizontal field of view between 1 and 179 degrees, e.g. 90.0")
        intrinsics = Intrinsics.from_fov(width, height, hfov)

    xyz = _vec3(p + "xyz", given.get("xyz", DEFAULTS["xyz"]), source,
                "[x, y, z] of the camera in base_link in metres (x forward, y left, z up)")
    rpy = _vec3(p + "rpy", given.get("rpy", DEFAULTS["rpy"]), source,
                "[roll, pitch, yaw] of the camera in base_link in radians")
    rate = _float(p + "rate_hz", given.get("rate_hz", DEFAULTS["rate_hz"]), source, lambda v: v > 0,
                  "a rate > 0 in Hz, e.g. 30.0")

    outputs = given.get("outputs", DEFAULTS["outputs"])
    if not isinstance(outputs, (list, tuple)) or not outputs:
        raise InputError(f"{source}: parameter '{p}outputs' = {outputs!r} is not a non-empty list",
                         f"give a list of some of {', '.join(OUTPUTS)}")
    for out in outputs:
        if out not in OUTPUTS:
            raise InputError(f"{source}: parameter '{p}outputs' holds unknown output {out!r}",
                             _did_you_mean(str(out), OUTPUTS, "output", f"give some of {', '.join(OUTPUTS)}"))
    if len(set(outputs)) != len(outputs):
        raise InputError(f"{source}: parameter '{p}outputs' = {list(outputs)} lists an output twice",
                         "give each output once")
    return CameraSpec(name, width, height, intrinsics, xyz, rpy, rate, tuple(outputs), lens)


def _lens(p: str, given: dict[str, Any], source: str) -> Lens | None:
    """The camera's lens from distortion_model / D / fov_deg; None for a pinhole camera (no model,
    or plumb_bob / rational_polynomial with all-zero D)."""
    if "distortion_model" not in given:
        extra = [k for k in ("D", "fov_deg") if k in given]
        if extra:
            raise InputError(f"{source}: '{p}{extra[0]}' is set without '{p}distortion_model'",
                             "give distortion_model: plumb_bob, rational_polynomial or equidistant")
        return None
    model = given["distortion_model"]
    from ..lens import MODEL_SIZES

    D = given.get("D", [0.0] * MODEL_SIZES.get(model, 0))
    lens = Lens.parse(model, D, f"{source}: parameters '{p}distortion_model' / 'D' / 'fov_deg'", given.get("fov_deg"))
    return None if lens.is_identity else lens
