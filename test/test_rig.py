"""Camera rig from ROS 2 parameters: defaults, presets, frames, intrinsics, every error path."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from inspatio_ros.camera import rotation_from_rpy
from inspatio_ros.config import read_parameters
from inspatio_ros.errors import InputError
from inspatio_ros.sim.rig import CameraSpec, load_rig, load_rig_file, rig_parameters

CONFIG = Path(__file__).resolve().parents[1] / "config"


def test_default_rig_is_one_front_camera():
    (cam,) = load_rig({})
    assert cam.name == "front"
    assert (cam.width, cam.height) == (640, 360)
    assert cam.intrinsics.hfov_deg == pytest.approx(90.0)
    assert cam.intrinsics.fx == pytest.approx(320.0) and cam.intrinsics.fy == pytest.approx(320.0)
    assert (cam.intrinsics.cx, cam.intrinsics.cy) == (319.5, 179.5)
    assert cam.xyz == (0.0, 0.0, 1.5) and cam.rpy == (0.0, 0.0, 0.0)
    assert cam.rate_hz == 30.0 and cam.outputs == ("image", "depth", "points")
    assert cam.link_frame == "front_link" and cam.optical_frame == "front_optical_frame"


def test_other_parameters_are_ignored_and_front_keys_apply_without_names():
    (cam,) = load_rig({"render.near": 0.1, "cameras.front.width": 320, "cameras.front.height": 240})
    assert (cam.width, cam.height) == (320, 240) and cam.intrinsics.size == (320, 240)


def test_hfov_sets_fx():
    for hfov in (60.0, 90.0, 120.0):
        (cam,) = load_rig({"cameras.front.width": 800, "cameras.front.hfov_deg": hfov})
        assert cam.intrinsics.fx == pytest.approx(400.0 / math.tan(math.radians(hfov) / 2))
        assert cam.intrinsics.fy == cam.intrinsics.fx
        assert cam.intrinsics.hfov_deg == pytest.approx(hfov)


def test_pinhole_intrinsics_with_defaults_for_fy_cx_cy():
    (cam,) = load_rig({"cameras.names": ["c"], "cameras.c.width": 100, "cameras.c.height": 50, "cameras.c.fx": 80})
    k = cam.intrinsics
    assert (k.fx, k.fy, k.cx, k.cy) == (80.0, 80.0, 49.5, 24.5)


def test_optical_frame_convention():
    (cam,) = load_rig({"cameras.front.xyz": [1.5, 0.0, 1.5]})
    T = cam.base_from_optical()
    r = T[:3, :3]
    np.testing.assert_allclose(r[:, 2], [1, 0, 0], atol=1e-15)     # optical z = base_link +x (forward)
    np.testing.assert_allclose(r[:, 0], [0, -1, 0], atol=1e-15)    # optical x = base_link -y (right)
    np.testing.assert_allclose(r[:, 1], [0, 0, -1], atol=1e-15)    # optical y = base_link -z (down)
    np.testing.assert_allclose(T[:3, 3], [1.5, 0.0, 1.5])
    np.testing.assert_allclose(CameraSpec.link_from_optical()[:3, :3],
                               rotation_from_rpy(-math.pi / 2, 0.0, -math.pi / 2), atol=1e-15)
    assert cam.link_from_optical()[:3, 3].tolist() == [0.0, 0.0, 0.0]


def test_camera_mount_rotation_composes():
    (cam,) = load_rig({"cameras.names": ["left"], "cameras.left.rpy": [0.0, 0.2, math.pi / 2],
                       "cameras.left.xyz": [2.0, 1.0, 1.1]})
    np.testing.assert_allclose(cam.base_from_link()[:3, :3], rotation_from_rpy(0.0, 0.2, math.pi / 2))
    axis = cam.base_from_optical()[:3, 2]
    # looks left (base_link +y), tilted down by the pitch
    np.testing.assert_allclose(axis, [0.0, math.cos(0.2), -math.sin(0.2)], atol=1e-12)
    np.testing.assert_allclose(cam.base_from_optical(), cam.base_from_link() @ cam.link_from_optical())


def test_driving_preset():
    rig = load_rig_file(CONFIG / "driving_rig.yaml")
    assert [c.name for c in rig] == ["front", "left", "right"]
    front, left, right = rig
    assert (front.width, front.height) == (1280, 720) and front.intrinsics.hfov_deg == pytest.approx(90.0)
    assert front.xyz == (1.5, 0.0, 1.5)
    for side, sign in ((left, 1.0), (right, -1.0)):
        assert (side.width, side.height) == (640, 360) and side.intrinsics.hfov_deg == pytest.approx(100.0)
        np.testing.assert_allclose(side.base_from_optical()[:3, 2], [0.0, sign, 0.0], atol=1e-12)
        assert side.xyz[1] * sign > 0                      # mounted on its own side
    np.testing.assert_allclose(front.base_from_optical()[:3, 2], [1.0, 0.0, 0.0], atol=1e-15)


def test_robot_preset():
    (cam,) = load_rig_file(CONFIG / "robot_rgbd.yaml")
    assert cam.name == "camera" and (cam.width, cam.height) == (640, 480)
    k = cam.intrinsics
    assert (k.fx, k.fy, k.cx, k.cy) == (525.0, 525.0, 319.5, 239.5)
    assert cam.xyz == (0.2, 0.0, 0.4)
    assert cam.outputs == ("image", "depth", "points", "coverage")


FLOAT_KEYS = {"fx", "fy", "cx", "cy", "hfov_deg", "rate_hz", "xyz", "rpy"}


@pytest.mark.parametrize("name", ["driving_rig.yaml", "robot_rgbd.yaml"])
def test_presets_use_ros2_types(name):
    """ROS 2 rejects 1 for a double parameter: every float is written with a decimal point."""
    doc = yaml.safe_load((CONFIG / name).read_text())
    assert list(doc) == ["inspatio_ros"] and list(doc["inspatio_ros"]) == ["ros__parameters"]
    params = read_parameters(CONFIG / name)
    assert params
    for key, value in params.items():
        field = key.rsplit(".", 1)[-1]
        values = value if isinstance(value, list) else [value]
        if field in FLOAT_KEYS:
            assert all(type(v) is float for v in values), key
        elif field in ("width", "height"):
            assert type(value) is int, key
        else:
            assert all(type(v) is str for v in values), key


def test_rig_parameters_round_trip():
    rig = load_rig_file(CONFIG / "driving_rig.yaml")
    assert load_rig(rig_parameters(rig)) == rig


# ---------------------------------------------------------------------------------------------
# Errors: each an InputError naming the parameter
# ---------------------------------------------------------------------------------------------

def _error(params) -> str:
    with pytest.raises(InputError) as err:
        load_rig(params, source="config file x.yaml")
    msg = str(err.value)
    assert msg.startswith("config file x.yaml: ")
    return msg


@pytest.mark.parametrize("params, param", [
    ({"cameras.front.outputs": ["image", "pointcloud"]}, "cameras.front.outputs"),
    ({"cameras.front.outputs": []}, "cameras.front.outputs"),
    ({"cameras.front.outputs": "image"}, "cameras.front.outputs"),
    ({"cameras.front.outputs": ["image", "image"]}, "cameras.front.outputs"),
    ({"cameras.front.width": 0}, "cameras.front.width"),
    ({"cameras.front.height": -360}, "cameras.front.height"),
    ({"cameras.front.width": 640.0}, "cameras.front.width"),
    ({"cameras.front.width": True}, "cameras.front.width"),
    ({"cameras.front.hfov_deg": 179.0}, "cameras.front.hfov_deg"),
    ({"cameras.front.hfov_deg": 1.0}, "cameras.front.hfov_deg"),
    ({"cameras.front.hfov_deg": 200.0}, "cameras.front.hfov_deg"),
    ({"cameras.front.hfov_deg": math.nan}, "cameras.front.hfov_deg"),
    ({"cameras.front.hfov_deg": "wide"}, "cameras.front.hfov_deg"),
    ({"cameras.front.fx": 0.0}, "cameras.front.fx"),
    ({"cameras.front.fx": 500.0, "cameras.front.fy": -1.0}, "cameras.front.fy"),
    ({"cameras.front.fx": 500.0, "cameras.front.cx": math.inf}, "cameras.front.cx"),
    ({"cameras.front.cy": 100.0}, "cameras.front.fx"),
    ({"cameras.front.fx": 500.0, "cameras.front.hfov_deg": 90.0}, "cameras.front.hfov_deg"),
    ({"cameras.front.rate_hz": 0.0}, "cameras.front.rate_hz"),
    ({"cameras.front.rate_hz": -5.0}, "cameras.front.rate_hz"),
    ({"cameras.front.rate_hz": math.nan}, "cameras.front.rate_hz"),
    ({"cameras.front.xyz": [1.0, 2.0]}, "cameras.front.xyz"),
    ({"cameras.front.xyz": [1.0, math.nan, 2.0]}, "cameras.front.xyz"),
    ({"cameras.front.rpy": "0 0 0"}, "cameras.front.rpy"),
    ({"cameras.names": ["front", "front"]}, "cameras.names"),
    ({"cameras.names": ["1st"]}, "cameras.names"),
    ({"cameras.names": ["front-left"]}, "cameras.names"),
    ({"cameras.names": ["front__left"]}, "cameras.names"),
    ({"cameras.names": ["names"]}, "cameras.names"),
    ({"cameras.names": []}, "cameras.names"),
    ({"cameras.names": "front"}, "cameras.names"),
    ({"cameras.names": ["front", 3]}, "cameras.names"),
    ({"cameras.front.hfov": 90.0}, "cameras.front.hfov"),
    ({"cameras.rear.width": 640}, "cameras.rear.width"),
    ({"cameras.name": ["front"]}, "cameras.name"),
])
def test_bad_parameters_name_the_parameter(params, param):
    assert f"'{param}'" in _error(params)


def test_unknown_key_suggests_the_close_one():
    assert "did you mean 'cameras.front.hfov_deg'?" in _error({"cameras.front.hfov": 90.0})
    assert "did you mean 'cameras.left.rate_hz'?" in _error({"cameras.names": ["left"], "cameras.left.rate": 10.0})
    assert "did you mean camera 'front'?" in _error({"cameras.frnt.width": 640})
    assert "did you mean 'cameras.names'?" in _error({"cameras.name": ["front"]})
    assert "did you mean output 'points'?" in _error({"cameras.front.outputs": ["image", "point"]})


def test_load_rig_file_names_the_file(tmp_path):
    p = tmp_path / "rig.yaml"
    p.write_text("inspatio_ros:\n  ros__parameters:\n    cameras:\n      front:\n        rate_hz: 0.0\n")
    with pytest.raises(InputError, match=r"rig\.yaml: parameter 'cameras.front.rate_hz'"):
        load_rig_file(p)
