"""The node's typed settings and their dotted parameter names (sim/parameters.py): both directions,
YAML, errors that name the fix, and the README table made from the fields' metadata."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from inspatio_ros.config import read_parameters
from inspatio_ros.errors import InputError
from inspatio_ros.sim.parameters import (
    TABLE_BEGIN,
    TABLE_END,
    markdown_table,
    parameter_table,
    parameters_of,
    read_settings,
    settings_from_parameters,
    split_parameters,
    to_yaml,
    with_table,
)
from inspatio_ros.sim.settings import NodeSettings, SessionSettings

ROOT = Path(__file__).resolve().parents[2]


def test_every_parameter_has_a_doc_a_range_and_a_default_of_its_type():
    table = parameter_table()
    assert len(table) == 44 + 12 * 2      # node and session parameters, QoS overrides of 12 outputs
    for name, p in table.items():
        assert p.doc and p.range, name
        assert type(p.default) in (bool, int, float, str), name
    # The names the node has always had (README, config/*.yaml, launch files) are still there.
    for name in ("use_sim_time", "generator.weights", "clock.publish", "input.tf_child", "qos.inputs.depth",
                 "publish.writer_process", "frames.base_link", "vehicle.command_timeout", "record.dir"):
        assert name in table


def test_parameters_and_settings_map_both_ways():
    defaults = NodeSettings()
    assert settings_from_parameters(parameters_of(defaults)) == defaults
    changed = {"vehicle.max_speed": 12.0, "use_sim_time": True, "generator.weights": "w.safetensors",
               "qos.points.reliability": "best_effort", "publish.jpeg_quality": 70, "input.tf_child": "base"}
    s = settings_from_parameters(changed)
    assert (s.session.vehicle.max_speed, s.session.external_clock, s.generator_weights,
            s.qos.points.reliability, s.publish.jpeg_quality, s.session.input.tf_child) == \
        (12.0, True, "w.safetensors", "best_effort", 70, "base")
    assert {k: v for k, v in parameters_of(s).items() if parameters_of(defaults)[k] != v} == changed
    # a base is kept where a parameter does not change it
    again = settings_from_parameters({"clock.rate": 2}, base=s)
    assert again.session.clock.rate == 2.0 and again.session.vehicle.max_speed == 12.0
    # the session's own settings map the same way, without the node's
    assert settings_from_parameters({"mode": "pose"}, cls=SessionSettings) == SessionSettings(mode="pose")


def test_settings_are_frozen():
    s = NodeSettings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.publish.tf = False


def test_unknown_names_get_the_closest_known_one():
    with pytest.raises(InputError, match=r"parameter 'vehicle.max_sped' is unknown: did you mean 'vehicle.max_speed'"):
        settings_from_parameters({"vehicle.max_sped": 3.0})
    with pytest.raises(InputError, match="'qos.imgae.depth' is unknown: did you mean 'qos.image.depth'"):
        split_parameters({"qos.imgae.depth": 3})
    with pytest.raises(InputError, match="'zzz' is unknown: see the parameter table in the README"):
        split_parameters({"zzz": 1})


def test_bad_values_name_the_parameter_value_range_and_unit():
    with pytest.raises(InputError, match=r"parameter 'vehicle.max_speed' = -1.0 is out of range: give > 0 m/s$"):
        split_parameters({"vehicle.max_speed": -1})
    with pytest.raises(InputError, match=r"parameter 'replay.lateral_offset' = 60.0 is out of range: "
                                         r"give >= -50 and <= 50 m$"):
        split_parameters({"replay.lateral_offset": 60})
    with pytest.raises(InputError, match=r"'publish.jpeg_quality' = 1.5 has the wrong type: give an integer >= 1"):
        split_parameters({"publish.jpeg_quality": 1.5})
    with pytest.raises(InputError, match=r"'qos.tf.reliability' = 'sometimes' is out of range: "
                                         r"give '' \| reliable \| best_effort"):
        split_parameters({"qos.tf.reliability": "sometimes"})
    with pytest.raises(InputError, match=r"'publish.tf' = 1 has the wrong type: give true \| false"):
        split_parameters({"publish.tf": 1})


def test_split_leaves_the_rig_and_renderer_to_their_owners():
    s, cameras, render = split_parameters({"cameras.names": ["front"], "cameras.front.width": 320,
                                           "render.near": 0.1, "start_type_description_service": True,
                                           "publish.writer_process": False})
    assert cameras == {"cameras.names": ["front"], "cameras.front.width": 320} and render == {"render.near": 0.1}
    assert s.publish.writer_process == "off"          # YAML 1.1 reads a bare off as false


def test_yaml_round_trip(tmp_path):
    s = settings_from_parameters({"mode": "control", "vehicle.wheelbase": 3.1, "publish.writer_process": "on",
                                  "qos.clock.depth": 3})
    path = tmp_path / "node.yaml"
    path.write_text(to_yaml(s), encoding="utf-8")
    assert read_settings(path)[0] == s
    short = to_yaml(s, only_changed=True)
    path.write_text(short, encoding="utf-8")
    assert read_parameters(path) == {"mode": "control", "vehicle.wheelbase": 3.1, "publish.writer_process": "on",
                                     "qos.clock.depth": 3}
    assert read_settings(path)[0] == s


def test_the_shipped_parameter_files_are_valid_settings():
    checked = []
    for path in sorted((ROOT / "config").glob("*.yaml")):
        if "inspatio_ros" in path.read_text(encoding="utf-8"):
            read_settings(path)                         # raises on an unknown or bad node parameter
            checked.append(path.name)
    assert "render.yaml" in checked and len(checked) >= 3, checked


def test_the_readme_parameter_table_is_current():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert with_table(readme, markdown_table()) == readme, \
        "README.md's parameter table is stale: run python tools/parameter_table.py"
    table = readme.split(TABLE_BEGIN)[1].split(TABLE_END)[0]
    for name in parameter_table():
        shown = name if not name.startswith("qos.") else "qos.<output>." + name.split(".")[-1]
        assert f"`{shown}`" in table, name


def test_the_readme_table_lists_every_camera_key_and_renderer_setting():
    import dataclasses

    from inspatio_ros.render import RenderSettings
    from inspatio_ros.sim.rig import CAMERA_KEYS

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    table = readme.split(TABLE_BEGIN)[1].split(TABLE_END)[0]
    for key in CAMERA_KEYS:
        assert f"| `cameras.<cam>.{key}` |" in table, key
    for f in dataclasses.fields(RenderSettings):
        assert f"| `render.{f.name}` |" in table, f.name
    assert "| `cameras.names` |" in table


@pytest.mark.parametrize("changes, says", [
    ({"near": 0.0}, "RenderSettings.near = 0.0 is out of range"),
    ({"max_splat_px": 65}, "RenderSettings.max_splat_px = 65 is out of range"),
    ({"background": (0, 0, 256)}, "RenderSettings.background = [0, 0, 256] is out of range"),
    ({"background": (0, 0)}, "RenderSettings.background = (0, 0) has the wrong type"),
    ({"depth_tolerance": float("nan")}, "RenderSettings.depth_tolerance = nan has the wrong type"),
])
def test_render_settings_check_their_fields_when_made(changes, says):
    from inspatio_ros.render import RenderSettings

    with pytest.raises(InputError, match=re.escape(says)):
        RenderSettings(**changes)
    assert RenderSettings(background=[1, 2, 3]).background == (1, 2, 3)     # a list is taken for a tuple
