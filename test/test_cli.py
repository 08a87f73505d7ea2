"""The command line as a user meets it: help, one-line errors with exit code 2, --config files."""
import os
import subprocess
import sys

import numpy as np
import pytest

from inspatio_ros.camera import Intrinsics
from inspatio_ros.cli import COMMAND_MODULES, make_parser
from inspatio_ros.config import load_render_settings, read_parameters, render_parameters
from inspatio_ros.errors import InputError
from inspatio_ros.render import RenderSettings
from inspatio_ros.video import read_video
from inspatio_ros.world import World
from cli_helpers import run_cli_in_process

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SUBCOMMANDS = ["build", "run", "render", "eval", "train-generator", "optimize", "info", "export", "synth", "demo",
               "sweep", "build-many"]


def run_cli(*args, cwd=None):
    env = dict(os.environ, INSPATIO_NO_PROGRESS="1")
    return subprocess.run([sys.executable, "-m", "inspatio_ros.cli", *args], capture_output=True, text=True,
                          env=env, timeout=300, cwd=cwd)


def one_error_line(result, command: str) -> str:
    """The run failed with exit code 2 and exactly one stderr line from ``command``; return it."""
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"inspatio-ros {command}: error: "), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def wall_world(tmp_path_factory):
    """A tiny world: a wall 3 m ahead covering the left half of a 64x48 view; the right half is empty."""
    xs, ys = np.meshgrid(np.arange(-2.0, 0.0, 0.02), np.arange(-1.5, 1.5, 0.02))
    xyz = np.stack([xs.ravel(), ys.ravel(), np.full(xs.size, 3.0)], 1).astype(np.float32)
    n = len(xyz)
    world = World(
        intrinsics=Intrinsics(50.0, 50.0, 32.0, 24.0, 64, 48),
        static_xyz=xyz, static_rgb=np.full((n, 3), (40, 160, 60), np.uint8),
        static_radius=np.full(n, 0.015, np.float32),
        static_normal=np.tile(np.array([[0, 0, -127]], np.int8), (n, 1)),
        static_frame=np.zeros(n, np.int32),
        frame_c2w=np.stack([np.eye(4), np.eye(4)]), frame_time=np.array([0.0, 0.1]),
        frame_index=np.array([0, 1], np.int32),
    )
    path = tmp_path_factory.mktemp("wall") / "wall.safetensors"
    world.save(path)
    return path


def write(path, text):
    path.write_text(text)
    return path


# --- help -----------------------------------------------------------------------------------------

def test_help_lists_every_subcommand():
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    for name in SUBCOMMANDS:
        # (argparse puts a long name's help on the next line)
        assert f"\n    {name} " in result.stdout or f"\n    {name}\n" in result.stdout, (name, result.stdout)
    # ... and the list above is the CLI's own list, so a new sub-command needs a line here too.
    assert len(COMMAND_MODULES) == len(SUBCOMMANDS)
    assert set(make_parser()._subparsers._group_actions[0].choices) == set(SUBCOMMANDS)


def test_no_command_prints_help_and_exits_2():
    result = run_cli_in_process()
    assert result.returncode == 2
    assert "COMMAND" in result.stdout


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_each_subcommand_has_help(command):
    result = run_cli_in_process(command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: inspatio-ros {command}")


def test_render_and_eval_help_offer_config():
    for command in ("render", "eval"):
        assert "--config YAML" in run_cli_in_process(command, "--help").stdout


# --- errors: exit code 2, one line naming the input and the fix -------------------------------------

@pytest.mark.parametrize("flags, names, fix", [
    (["--size", "abc"], "--size 'abc'", "write it like 640x360"),
    (["--size", "8x8"], "--size 8x8", "at least 16x16"),
    (["--frames", "1"], "--frames 1", "at least 2 frames"),
    (["--moving-cars", "-1"], "--moving-cars -1", "give 0 or more"),
    (["--supersample", "9"], "--supersample 9", "give 1 to 8"),
])
def test_synth_bad_flags_give_one_line(tmp_path, flags, names, fix):
    out = tmp_path / "scene"
    line = one_error_line(run_cli_in_process("synth", "street", "-o", str(out), *flags), "synth")
    assert names in line and fix in line
    assert not out.exists()  # nothing half-written


def test_render_unknown_preset_gives_one_line(wall_world, tmp_path):
    video = tmp_path / "out.mp4"
    line = one_error_line(run_cli_in_process("render", str(wall_world), "--traj", "no_such_path", "-o", str(video)), "render")
    assert "'no_such_path'" in line
    assert "x_y_circle_cycle" in line  # the fix lists the presets
    assert not video.exists()


@pytest.mark.parametrize("content", [b"", b"hello, not a world\n", b"\x89PNG\r\n\x1a\n" + bytes(64)])
def test_info_on_a_non_world_file_errors_cleanly(tmp_path, content):
    path = tmp_path / "not_a_world.safetensors"
    path.write_bytes(content)
    line = one_error_line(run_cli_in_process("info", str(path)), "info")
    assert str(path) in line and "inspatio-ros build" in line
    assert "Traceback" not in line


def test_info_on_a_missing_file(tmp_path):
    line = one_error_line(run_cli_in_process("info", str(tmp_path / "missing.safetensors")), "info")
    assert "does not exist" in line


def test_info_on_a_world(wall_world):
    result = run_cli_in_process("info", str(wall_world))
    assert result.returncode == 0, result.stderr
    assert "static_points: 15000" in result.stdout
    assert "image_size: [64, 48]" in result.stdout


# --- config files (ROS 2 parameter layout) -----------------------------------------------------------

def test_shipped_render_yaml_holds_every_setting_at_its_default():
    path = os.path.join(REPO, "config", "render.yaml")
    assert read_parameters(path) == render_parameters(RenderSettings())
    assert load_render_settings(path) == RenderSettings()


def test_config_sets_render_settings(tmp_path):
    path = write(tmp_path / "p.yaml", """
inspatio_ros:
  ros__parameters:
    render.near: 1          # an integer is taken for a float parameter
    render.depth_tolerance: 0.05
    render.background: [10, 20, 30]
""")
    s = load_render_settings(path)
    assert s == RenderSettings(near=1.0, depth_tolerance=0.05, background=(10, 20, 30))
    assert isinstance(s.near, float) and isinstance(s.background, tuple)


def test_config_nested_names_and_wildcard_node_are_ros2_equivalents(tmp_path):
    path = write(tmp_path / "p.yaml", """
/**:
  ros__parameters:
    render:
      max_splat_px: 2
      hole_fill_levels: 0
""")
    assert load_render_settings(path) == RenderSettings(max_splat_px=2, hole_fill_levels=0)
    path = write(tmp_path / "q.yaml", "/robot1/inspatio_ros:\n  ros__parameters:\n    render.near: 0.5\n")
    assert load_render_settings(path).near == 0.5
    shared = write(tmp_path / "s.yaml", "camera_driver:\n  ros__parameters:\n    fps: 30\n"
                                        "inspatio_ros:\n  ros__parameters:\n    render.near: 0.2\n")
    assert load_render_settings(shared).near == 0.2  # other nodes' sections are theirs
    empty = write(tmp_path / "e.yaml", "inspatio_ros:\n  ros__parameters: {}\n")
    assert load_render_settings(empty) == RenderSettings()


@pytest.mark.parametrize("body, names, fix", [
    ("render.depth_tolerence: 0.03", "'render.depth_tolerence'", "did you mean 'render.depth_tolerance'"),
    ("depth_tolerance: 0.03", "'depth_tolerance'", "did you mean 'render.depth_tolerance'"),
    ("render.colour: 3", "'render.colour'", "known parameters: render.near"),
    ("render.max_splat_px: 2.5", "'render.max_splat_px'", ">= 0 and <= 64 px"),
    ("render.max_splat_px: true", "'render.max_splat_px'", ">= 0 and <= 64 px"),
    ("render.near: fast", "'render.near'", "> 0 m"),
    ("render.near: -1.0", "'render.near' = -1.0 is out of range", "> 0 m"),
    ("render.near: .nan", "'render.near'", "> 0 m"),
    ("render.hole_fill_levels: 40", "'render.hole_fill_levels' = 40", ">= 0 and <= 16"),
    ("render.background: [0, 0]", "'render.background'", "3 integers, each >= 0 and <= 255"),
    ("render.background: [0, 0, 300]", "'render.background' = [0, 0, 300]", "3 integers, each >= 0 and <= 255"),
])
def test_config_bad_parameters_name_the_key_and_the_fix(tmp_path, body, names, fix):
    path = write(tmp_path / "p.yaml", f"inspatio_ros:\n  ros__parameters:\n    {body}\n")
    with pytest.raises(InputError) as err:
        load_render_settings(path)
    message = str(err.value)
    assert str(path) in message and names in message and fix in message
    assert "\n" not in message


@pytest.mark.parametrize("text, problem", [
    ("inspatio_ros: [1, 2\n", "is not valid YAML (line 2)"),
    ("- 1\n- 2\n", "no 'inspatio_ros' section"),
    ("inspatio_ros:\n  render.near: 0.1\n", "exactly one 'ros__parameters' map"),
    ("other_node:\n  ros__parameters:\n    render.near: 0.1\n", "no 'inspatio_ros' section (it has 'other_node')"),
    ("inspatio_ros:\n  ros__parameters:\n    render.near: 0.1\n    render: {near: 0.2}\n", "'render.near' twice"),
])
def test_config_bad_layout_is_named(tmp_path, text, problem):
    path = write(tmp_path / "p.yaml", text)
    with pytest.raises(InputError, match="ros__parameters|YAML|keep one|config/render.yaml") as err:
        load_render_settings(path)
    assert problem in str(err.value)


def test_config_missing_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        load_render_settings(tmp_path / "nope.yaml")


@pytest.mark.slow   # CLI subprocesses that import torch and render (4-6 s)
def test_render_and_eval_reject_a_bad_config_in_one_line(wall_world, tmp_path):
    bad = write(tmp_path / "bad.yaml", "inspatio_ros:\n  ros__parameters:\n    render.nearr: 0.1\n")
    line = one_error_line(run_cli("render", str(wall_world), "--traj", "static", "-o", str(tmp_path / "o.mp4"),
                                  "--config", str(bad)), "render")
    assert "'render.nearr'" in line and "did you mean 'render.near'" in line
    line = one_error_line(run_cli("eval", str(wall_world), "--gt", str(tmp_path), "--config", str(bad)), "eval")
    assert "'render.nearr'" in line
    assert not (tmp_path / "o.mp4").exists()


@pytest.mark.slow   # CLI subprocesses that import torch and render (4-6 s)
def test_render_config_is_applied(wall_world, tmp_path):
    """--config reaches the renderer: without hole filling the empty right half shows the background."""
    cfg = write(tmp_path / "magenta.yaml", """
inspatio_ros:
  ros__parameters:
    render.background: [255, 0, 255]
    render.hole_fill_levels: 0
""")
    plain, styled = tmp_path / "plain.mp4", tmp_path / "styled.mp4"
    common = ["--traj", "static", "--frames", "3", "--look-at-depth", "3"]
    assert run_cli("render", str(wall_world), *common, "-o", str(plain)).returncode == 0
    result = run_cli("render", str(wall_world), *common, "-o", str(styled), "--config", str(cfg))
    assert result.returncode == 0, result.stderr
    (a, _), (b, _) = read_video(plain), read_video(styled)
    assert len(b) == 3 and b[0].shape == (48, 64, 3)
    right = (slice(8, 40), slice(48, 60))  # well inside the empty half, away from the wall's edge
    left = (slice(8, 40), slice(4, 24))    # on the wall
    assert np.abs(b[0][right].mean((0, 1)) - (255, 0, 255)).max() < 20
    # By default push-pull hole filling (5 levels, ~32 px) paints the empty half with the wall.
    assert np.abs(a[0][right].mean((0, 1)) - (40, 160, 60)).max() < 20
    assert np.abs(b[0][left].mean((0, 1)) - (40, 160, 60)).max() < 20


def test_render_checks_the_trajectory_before_loading_the_world(tmp_path):
    """An unknown preset is reported even when the world file is missing (checked first)."""
    line = one_error_line(run_cli_in_process("render", str(tmp_path / "absent.safetensors"), "--traj", "no_such_path",
                                  "-o", str(tmp_path / "o.mp4")), "render")
    assert "no_such_path" in line


def test_output_into_a_closed_pipe_ends_quietly(wall_world):
    """The reader goes away before the first line (like `| head` on long output): no traceback."""
    env = dict(os.environ, INSPATIO_NO_PROGRESS="1")
    read_end, write_end = os.pipe()
    os.close(read_end)  # closed before the command writes anything: its first write gets EPIPE
    proc = subprocess.Popen([sys.executable, "-m", "inspatio_ros.cli", "info", str(wall_world)],
                            stdout=write_end, stderr=subprocess.PIPE, text=True, env=env)
    os.close(write_end)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 141
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr


def test_a_broken_pipe_of_our_own_is_an_error_not_a_quiet_exit(wall_world, monkeypatch, capsys):
    """Only a closed stdout ends quietly (141): a pipe to another process that breaks (a camera
    writer that died) is reported and exits 1, so a crash is never hidden as a `| head`."""
    import inspatio_ros.cli.info as info_cli
    from inspatio_ros.cli import main

    def write_into_a_closed_pipe(args):
        read_end, write_end = os.pipe()
        os.close(read_end)
        try:
            os.write(write_end, b"frame")          # a real EPIPE
        finally:
            os.close(write_end)

    monkeypatch.setattr(info_cli, "run", write_into_a_closed_pipe)
    code = main(["info", str(wall_world)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and "a pipe to another process broke" in err[0], err
