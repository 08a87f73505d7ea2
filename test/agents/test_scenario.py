"""Scenario files: matrix expansion, typed fields, and one clear error per bad field (no Ray, fast)."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from inspatio_ros.agents.scenario import METRICS, ScenarioSettings, load_scenarios, markdown_table
from inspatio_ros.errors import InputError

README = Path(__file__).resolve().parents[2] / "README.md"

def write(tmp_path: Path, text: str, name: str = "s.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_lists_expand_into_their_product_in_file_order(tmp_path):
    path = write(tmp_path, """
        name: drive
        duration: 4
        initial_offset: {lateral: [0.0, 0.5, -0.5]}
        perturbations: {sensor_noise: [0, 4], seed: 3}
        metrics: [cross_track, timing]
    """)
    scenarios = load_scenarios(path)
    assert len(scenarios) == 6
    assert [s.settings.initial_offset.lateral for s in scenarios] == [0.0, 0.0, 0.5, 0.5, -0.5, -0.5]
    assert [s.settings.perturbations.sensor_noise for s in scenarios] == [0.0, 4.0] * 3
    assert {s.settings.perturbations.seed for s in scenarios} == {3}
    assert all(s.metrics == ("cross_track", "timing") for s in scenarios)       # a metrics list is no axis
    assert scenarios[3].name == "drive__lateral=0.5__sensor_noise=4"
    assert dict(scenarios[3].swept) == {"initial_offset.lateral": 0.5, "perturbations.sensor_noise": 4}
    assert len({s.name for s in scenarios}) == 6


def test_defaults_and_typed_fields(tmp_path):
    [s] = load_scenarios(write(tmp_path, "rate: 20\nvehicle: {max_speed: 12}\n", "plain.yaml"))
    assert isinstance(s.settings, ScenarioSettings)
    assert s.name == "plain" and s.settings.rate == 20.0 and s.settings.vehicle.max_speed == 12.0
    assert s.settings.duration == ScenarioSettings().duration
    assert s.controller.kind == "baseline" and s.metrics == METRICS
    with pytest.raises(Exception):
        s.settings.rate = 5.0                                  # frozen


def test_a_list_of_scenarios_and_a_world_relative_to_the_file(tmp_path):
    path = write(tmp_path, """
        - {name: a, world: worlds/x.safetensors}
        - {name: b, controller: {type: baseline, params: {cruise_speed: 5.0}}}
    """)
    a, b = load_scenarios(path)
    assert a.world_path == str((tmp_path / "worlds" / "x.safetensors").resolve())
    assert b.controller.params == {"cruise_speed": 5.0} and b.world_path == ""


def test_a_ros2_controller_keeps_its_params(tmp_path):
    [s] = load_scenarios(write(tmp_path, "controller: {type: ros2, params: {launch: 'my_stack', domain_id: 7}}\n"))
    assert s.controller.kind == "ros2" and s.controller.params == {"launch": "my_stack", "domain_id": 7}


def test_a_callable_controller_is_resolved_when_read(tmp_path):
    [s] = load_scenarios(write(tmp_path, "controller: {callable: 'json:dumps', params: {indent: 2}}\n"))
    assert s.controller.kind == "callable" and s.controller.target == "json:dumps"
    assert s.controller.params == {"indent": 2}


@pytest.mark.parametrize("text, expected", [
    ("perturbation: {sensor_noise: 2}\n", "field 'perturbation.sensor_noise' is unknown: did you mean "
                                          "'perturbations.sensor_noise'?"),
    ("durration: 3\n", "field 'durration' is unknown: did you mean 'duration'?"),
    ("duration: -1\n", "field 'duration' = -1.0 is out of range: give > 0 and <= 86400 s"),
    ("rate: fast\n", "field 'rate' = 'fast' has the wrong type"),
    ("perturbations: {drop_frames: [0, 1.0]}\n", "field 'perturbations.drop_frames' = 1.0 is out of range"),
    ("controller: baselin\n", "controller 'baselin' is unknown: did you mean 'baseline'?"),
    ("controller: {type: ros2, params: {lanch: x}}\n", "ros2 controller param 'lanch' is unknown: did you mean "
                                                       "'launch'?"),
    ("controller: no_such_module_xyz:make\n", "controller module 'no_such_module_xyz' cannot be imported"),
    ("controller: json:lods\n", "'json' has no 'lods': did you mean 'loads'?"),
    ("controller: json.decoder:JSONDecodeError.msg\n", "has no 'JSONDecodeError.msg'"),
    ("controller: {type: baseline, param: {}}\n", "controller field 'param' is unknown: did you mean 'params'?"),
    ("metrics: [cross_trak]\n", "metric 'cross_trak' is unknown: did you mean 'cross_track'?"),
    ("name: [a, b]\n", "field 'name' is a list"),
    ("initial_offset: {lateral: [{a: 1}]}\n", "field 'initial_offset.lateral' holds dict"),
    ("duration: [3\n", "is not valid YAML at line"),
    ("- 3\n", "holds int, not a mapping of fields"),
    ("rig: rig.yaml\ncamera: {width: 160}\n", "both rig (rig.yaml) and camera.width/height are given"),
])
def test_a_bad_field_is_one_clear_error_naming_file_and_field(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(InputError) as info:
        load_scenarios(path)
    message = str(info.value)
    assert expected in message
    assert message.startswith(f"scenario file {path}")
    assert "\n" not in message


def test_names_must_be_unique_and_files_must_exist(tmp_path):
    a = write(tmp_path, "name: same\n", "a.yaml")
    b = write(tmp_path, "name: same\n", "b.yaml")
    with pytest.raises(InputError, match="scenario name 'same' is used twice"):
        load_scenarios([a, b])
    with pytest.raises(InputError, match="does not exist"):
        load_scenarios(tmp_path / "missing.yaml")


def test_readme_lists_every_scenario_field():
    assert markdown_table() in README.read_text(), "run: python tools/scenario_table.py"


def test_the_sweep_command_stops_on_a_bad_field_with_one_line_and_exit_2(tmp_path, capsys):
    from inspatio_ros.cli import main

    path = write(tmp_path, "perturbations: {drop_frame: 0.1}\n")
    assert main(["sweep", str(path), "-o", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"inspatio-ros sweep: error: scenario file {path}: field 'perturbations.drop_frame' is unknown: "
                   "did you mean 'perturbations.drop_frames'?")
    assert not (tmp_path / "out").exists()                     # nothing started, nothing written
