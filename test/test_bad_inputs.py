"""Bad inputs (issue 21): each gets one clear error (exit 2, one line on stderr naming the input and
the fix, no traceback) or a warning in the build report naming the input and the fix.

The inputs are made here from the session's small synthetic street (conftest ``street``,
``street_world``). Most cases run ``cli.main`` in-process (a subprocess costs ~5 s of imports on
2 cores); the two whose failure was in the process itself (argparse misreading argv, a
MemoryError traceback) run the real command line in a subprocess.
"""
import json

import pytest
from PIL import Image

from inspatio_ros.cli import main

from cli_helpers import run_cli


def cli(capsys, *args):
    """``inspatio-ros ARGS`` in-process: (exit code, stdout, stderr)."""
    try:
        rc = main([str(a) for a in args])
    except SystemExit as exc:          # argparse's own errors
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err


def assert_one_error(rc, err, *names):
    assert rc == 2, err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert ": error: " in lines[0], err
    for name in names:
        assert str(name) in lines[0], (name, err)


def _copy_frames(street, dest, change=lambda im: im, count=None, suffix=".png"):
    """A dataset folder holding (changed copies of) the street's frames only."""
    (dest / "frames").mkdir(parents=True)
    for path in sorted((street / "frames").glob("*.png"))[:count]:
        with Image.open(path) as im:
            change(im.convert("RGB")).save((dest / "frames" / path.name).with_suffix(suffix))
    return dest


@pytest.fixture(scope="module")
def other_truths(street, tmp_path_factory):
    """Ground-truth folders that are not the street world's recording."""
    root = tmp_path_factory.mktemp("truths")
    return {
        "mirrored": _copy_frames(street, root / "mirrored", lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT)),
        "shorter": _copy_frames(street, root / "shorter", count=15),
        "larger": _copy_frames(street, root / "larger", lambda im: im.resize((320, 192))),
    }


# -- 1. eval --gt of another recording ------------------------------------------------------------

@pytest.mark.parametrize("which, says", [
    ("mirrored", "held-out frame 000004 differs from the one the world was built with"),
    ("shorter", "it has 15 frames, the world's recording had 16"),
    ("larger", "its frames are 320x192, the world's recording was 160x96"),
])
def test_eval_refuses_ground_truth_of_another_recording(capsys, street, street_world, other_truths, which, says):
    gt = other_truths[which]
    rc, out, err = cli(capsys, "eval", street_world, "--gt", gt, "--no-shift")
    assert_one_error(rc, err, f"ground truth {gt} is not the world's recording", says, "--force", street.resolve())
    assert "PSNR" not in out


def test_eval_force_scores_it_with_one_warning(capsys, street_world, other_truths):
    rc, out, err = cli(capsys, "eval", street_world, "--gt", other_truths["mirrored"], "--no-shift", "--json",
                       "--force")
    assert rc == 0, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "warning" in lines[0] and "is not the world's recording" in lines[0], err
    assert "truth_mismatch" in json.loads(out.strip().splitlines()[-1])


def test_copies_of_the_recording_are_accepted(street, street_world, other_truths, tmp_path):
    """The check must not refuse the same recording in another form: JPEG frames, its video, frames
    a few levels darker (as kitti06's mp4v video is)."""
    from inspatio_ros.eval import check_ground_truth
    from inspatio_ros.ingest.sources import open_input
    from inspatio_ros.world import World

    world = World.load(street_world)
    assert world.provenance["source_frames"] == 16 and world.provenance["source_size"] == [160, 96]
    assert world.provenance["heldout_fingerprint"]["frames"] == [4, 9, 14]
    jpeg = _copy_frames(street, tmp_path / "jpeg", suffix=".jpg")
    assert check_ground_truth(world, open_input(jpeg)) is None
    assert check_ground_truth(world, open_input(street / "video.mp4")) is None
    darker = _copy_frames(street, tmp_path / "darker", lambda im: im.point(lambda v: max(0, v - 6)))
    assert check_ground_truth(world, open_input(darker)) is None
    assert check_ground_truth(world, open_input(other_truths["mirrored"])) is not None


# -- 2. a truncated video with the whole recording's poses ----------------------------------------

def test_truncated_video_with_more_poses_warns(capsys, street, tmp_path):
    from inspatio_ros.video import read_image, write_video
    from inspatio_ros.world import World

    video = tmp_path / "cut.mp4"
    write_video(video, [read_image(p) for p in sorted((street / "frames").glob("*.png"))[:6]], fps=10)
    out_path = tmp_path / "w.safetensors"
    rc, out, err = cli(capsys, "build", video, "--poses", street / "poses_kitti.txt", "--depth", street / "depth",
                       "--intrinsics", street / "camera_info.yaml", "-o", out_path)
    assert rc == 0, err
    warning = [line for line in out.splitlines() if "warning" in line and "poses" in line]
    assert len(warning) == 1, out
    assert all(s in warning[0] for s in ("16 poses", "6 frames", str(video), "poses_kitti.txt", "check that"))
    assert any("16 poses" in w for w in World.load(out_path).info["report"]["warnings"])


# -- 3. camera_info of another resolution ---------------------------------------------------------

def test_camera_info_of_another_size_warns_or_refuses(capsys, street, tmp_path):
    from inspatio_ros.camera import load_camera_info, save_camera_info

    intr = load_camera_info(street / "camera_info.yaml")
    double, wide = tmp_path / "double.yaml", tmp_path / "wide.yaml"
    save_camera_info(double, intr.scaled(320, 192))
    save_camera_info(wide, intr.scaled(320, 96))
    rc, out, err = cli(capsys, "build", street, "--intrinsics", double, "--stride", 5,
                       "-o", tmp_path / "w.safetensors")
    assert rc == 0, err
    warning = [line for line in out.splitlines() if "warning" in line and "intrinsics" in line]
    assert len(warning) == 1 and all(s in warning[0] for s in (str(double), "320x192", "160x96", "give")), out
    rc, _, err = cli(capsys, "build", street, "--intrinsics", wide, "-o", tmp_path / "w2.safetensors")
    assert_one_error(rc, err, wide, "320x96", "160x96", "give intrinsics of the frames' resolution")
    assert not (tmp_path / "w2.safetensors").exists()


# -- 4. absurd rig sizes ------------------------------------------------------------------------

def test_absurd_camera_size_is_refused_before_allocation(street_world):
    proc = run_cli("run", street_world, "--transport", "dds", "--frames", "1",
                   "-p", "cameras.front.width:=100000", "-p", "cameras.front.height:=100000", timeout=120)
    assert_one_error(proc.returncode, proc.stderr, "'cameras.front.width' = 100000", "at most 8192")


def test_rig_over_the_pixel_limit_is_refused(capsys, street_world):
    rc, _, err = cli(capsys, "run", street_world, "--transport", "dds", "--frames", "1",
                     "-p", "cameras.names:=[a, b]", "-p", "cameras.a.width:=8192", "-p", "cameras.a.height:=8192",
                     "-p", "cameras.b.width:=640", "-p", "cameras.b.height:=360")
    assert_one_error(rc, err, "a 8192x8192, b 640x360", "limit of 67,108,864", "fewer cameras")


# -- 5. negative intrinsics ---------------------------------------------------------------------

def test_negative_intrinsics_are_read_and_refused(street, tmp_path):
    # A subprocess: the bug was argparse reading the real argv "--intrinsics -100,..." as a flag.
    proc = run_cli("build", street, "-o", tmp_path / "w.safetensors", "--intrinsics", "-100,100,79.5,47.5",
                   timeout=120)
    assert_one_error(proc.returncode, proc.stderr, "--intrinsics '-100,100,79.5,47.5'", "fx -100",
                     "focal lengths > 0")


@pytest.mark.parametrize("spec, says", [
    ("--intrinsics=-100,100,79.5,47.5", "fx -100"),
    ("--intrinsics=100,100,-79.5,47.5", "cx -79.5"),
    ("--intrinsics=100,100,79.5,480", "cy 480"),
])
def test_bad_numeric_intrinsics_name_the_value(capsys, street, tmp_path, spec, says):
    rc, _, err = cli(capsys, "build", street, "-o", tmp_path / "w.safetensors", spec)
    assert_one_error(rc, err, spec.split("=", 1)[1], says, "160x96", "cx in 0..160")


# -- 6. a malformed world version ---------------------------------------------------------------

def test_string_world_version_is_malformed_not_newer(capsys, street_world, tmp_path):
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    with safe_open(str(street_world), "numpy") as f:
        meta = f.metadata()
    world_meta = json.loads(meta["inspatio_world"])
    world_meta["version"] = "1.0"
    bad = tmp_path / "v.safetensors"
    save_file(load_file(str(street_world)), str(bad), metadata={"inspatio_world": json.dumps(world_meta)})
    rc, _, err = cli(capsys, "info", bad)
    assert_one_error(rc, err, bad, "malformed format version '1.0' (str)", "expected the integer 1", "rebuild")
    assert "upgrade" not in err


# -- 7. a render.background of two numbers ------------------------------------------------------

def test_short_background_says_what_a_background_is(capsys, street_world, tmp_path):
    rc, _, err = cli(capsys, "run", street_world, "--transport", "dds", "--frames", "1", "-p",
                     "render.background:=[0, 0]")
    assert_one_error(rc, err, "'render.background' is [0, 0] (a list of 2), not a list of 3 integers",
                     "3 integers, each >= 0 and <= 255")
    config = tmp_path / "bg.yaml"
    config.write_text("inspatio_ros:\n  ros__parameters:\n    render.background: [0.5, 0.5, 0.5]\n")
    rc, _, err = cli(capsys, "eval", street_world, "--gt", tmp_path, "--config", config)
    assert_one_error(rc, err, config, "0.5 is not an integer", "3 integers, each >= 0 and <= 255")
