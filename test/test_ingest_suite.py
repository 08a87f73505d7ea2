"""bench/ingest_suite.py: inputs hold frames only, a real build of a toy clip gives real numbers."""
from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from inspatio_ros.errors import InputError
from inspatio_ros.video import write_png

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def suite():
    spec = importlib.util.spec_from_file_location("ingest_suite", ROOT / "bench" / "ingest_suite.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["ingest_suite"] = module      # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _quiet(monkeypatch):
    monkeypatch.setenv("INSPATIO_NO_PROGRESS", "1")


def _dataset(folder: Path) -> Path:
    """A dataset folder as synth writes it: frames, depth, poses, camera_info, times."""
    (folder / "frames").mkdir(parents=True)
    (folder / "depth").mkdir()
    for i in range(3):
        write_png(folder / "frames" / f"{i:06d}.png", np.full((8, 8, 3), 40 * i, np.uint8))
        np.save(folder / "depth" / f"{i:06d}.npy", np.ones((8, 8), np.float32))
    for name in ("camera_info.yaml", "poses_tum.txt", "poses_kitti.txt", "times.txt", "scene.json"):
        (folder / name).write_text("0\n")
    return folder


def test_inputs_hold_frames_only(tmp_path, suite):
    clip = _dataset(tmp_path / "clip")
    given = suite.make_input(clip, "given", tmp_path / "in_given")
    alone = suite.make_input(clip, "self", tmp_path / "in_self")
    assert sorted(p.name for p in given.iterdir()) == ["camera_info.yaml", "frames", "times.txt"]
    assert sorted(p.name for p in alone.iterdir()) == ["frames", "times.txt"]      # no intrinsics either
    assert sorted(p.name for p in (alone / "frames").iterdir()) == [f"{i:06d}.png" for i in range(3)]
    video = tmp_path / "clip.mp4"
    video.write_bytes(b"")
    assert suite.make_input(video, "self", tmp_path / "unused") == video           # a video as it is
    with pytest.raises(InputError, match="frame folder"):
        suite.make_input(_empty(tmp_path / "empty"), "self", tmp_path / "x")


def _empty(folder: Path) -> Path:
    folder.mkdir()
    return folder


def test_clip_list_covers_the_issue(suite):
    names = {c.name for c in suite.all_clips(Path("/nonexistent"))}
    streets = {n for n in names if n.startswith("street_s")}
    assert len(streets) == 20                                   # seeds 0-9 at two sizes
    assert {"kitti06", "dashcam", "curve", "robot", "drone", "blur", "highway"} <= names
    assert {"indoor_s11", "indoor_s12", "indoor_s13"} <= names
    assert set(suite.QUICK) <= names
    with pytest.raises(SystemExit, match="unknown clip"):
        suite.main(["--clips", "kitti06,nope", "--work", "/tmp/unused"])


def test_failed_build_is_a_row_with_its_error(suite):
    table = suite.markdown_table([{"clip": "c", "intrinsics": "self", "build_s": 3.0, "peak_rss_gb": 0.5,
                                   "returncode": 2, "error": "visual odometry located 0 of 9 frames | x"}])
    row = table.splitlines()[2]
    assert row.startswith("| c | self | - |") and "located 0 of 9 frames / x" in row


@pytest.mark.slow
def test_toy_clip_gets_real_numbers(tmp_path, suite):
    """One real build (child process) and score of a tiny synthetic street, intrinsics given."""
    clip = suite.Clip("toy", "toy street", suite._synth("street", (320, 180), 1, frames=14, moving=0))
    rows = suite.run_suite([clip], suite.Options(work=tmp_path, device="cpu", holdout=7, variants=("given",)))
    assert len(rows) == 1
    r = rows[0]
    assert r["returncode"] == 0, r.get("error")
    assert r["frames_placed"] == r["frames_given"] == 14 and r["segments"] == 1
    assert 0 <= r["ate_pct"] < 5                                # a straight street, exact intrinsics
    assert r["focal_error_pct"] == 0.0                          # given, so exact
    assert 10 < r["psnr"] < 60 and math.isfinite(r["depth_absrel"])
    assert r["build_s"] > 1 and 0.1 < r["peak_rss_gb"] < 8     # the child's own, not the test's
    assert 1 < r["build_cpu_s"] < 50 * r["build_s"]
    table = suite.markdown_table(rows)
    cells = [c.strip() for c in table.splitlines()[2].strip("|").split("|")]
    assert cells[:4] == ["toy", "given", "14/14", "1"]
    assert all(c not in ("-", "nan", "") for c in cells[4:11]), cells
    assert not (tmp_path / "runs" / "toy-given" / "world.safetensors").exists()   # removed unless kept
    assert json.loads((tmp_path / "runs" / "toy-given" / "row.json").read_text()) == r   # kept per build


def test_merge_joins_runs_split_for_time(tmp_path, suite, capsys):
    for i, clip in enumerate(("a", "b")):
        run = {"machine": "m", "date": "d", "command": f"ingest_suite.py --clips {clip}", "complete": i == 0,
               "rows": [{"clip": clip, "intrinsics": "self", "frames_placed": 9, "frames_given": 10, "segments": 1,
                         "ate_pct": 0.5 + i, "psnr": 20.0, "build_s": 12.0, "peak_rss_gb": 1.5, "returncode": 0}]}
        if clip == "b":
            run["rows"][0]["build_cpu_s"] = 20.0     # a run from before CPU seconds were recorded: "-" in a
        (tmp_path / f"{clip}.json").write_text(json.dumps(run))
    assert suite.main(["--merge", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 0
    out = capsys.readouterr().out
    assert "m, d: `ingest_suite.py --clips a`" in out and "m, d (partial): `ingest_suite.py --clips b`" in out
    rows = [ln for ln in out.splitlines() if ln.startswith("| a ") or ln.startswith("| b ")]
    assert rows == ["| a | self | 9/10 | 1 | 0.50 | - | - | 20.00 | 12 | - | 1.50 |  |",
                    "| b | self | 9/10 | 1 | 1.50 | - | - | 20.00 | 12 | 20 | 1.50 |  |"]


def test_plan_of_builds(suite):
    clips = {c.name: c for c in suite.all_clips(Path("/nonexistent"))}
    chosen = [clips[n] for n in ("kitti06", "dashcam", "street_s3_480x270", "curve")]
    names = lambda jobs: [(c.name, v) for c, v in jobs]  # noqa: E731
    assert names(suite.plan(chosen, ("issue",))) == [("kitti06", "self"), ("dashcam", "self"),
                                                      ("street_s3_480x270", "given"), ("curve", "given"), ("curve", "self")]
    # Both ways for every clip, but the dashcam's intrinsics are unknown: without them only.
    assert names(suite.plan(chosen, suite.VARIANTS)) == [
        ("kitti06", "given"), ("kitti06", "self"), ("dashcam", "self"), ("street_s3_480x270", "given"),
        ("street_s3_480x270", "self"), ("curve", "given"), ("curve", "self")]


def _public_clip(folder: Path, poses: bool = True) -> Path:
    (folder / "image_0").mkdir(parents=True)
    (folder / "PROVENANCE.txt").write_text("where it comes from\n")
    if poses:
        (folder / "poses_gt.txt").write_text("1 0 0 0 0 1 0 0 0 0 1 0\n")
    return folder


def test_public_clips_with_ground_truth_in_the_data_folder_join_the_suite(tmp_path, suite):
    data = tmp_path / "data"
    _public_clip(data / "ramp")
    (data / "ramp" / "camera_info.yaml").write_text("0\n")
    _public_clip(data / "no_poses", poses=False)              # nothing to score ATE against: left out
    _public_clip(data / "kitti06")                             # already in the list under its own entry
    clips = {c.name: c for c in suite.all_clips(data)}
    assert "ramp" in clips and "no_poses" not in clips
    assert [c.name for c in suite.all_clips(data)].count("kitti06") == 1
    ramp = clips["ramp"]
    assert ramp.has_intrinsics and ramp.issue_variants == ("self",) and "real" in ramp.tags
    assert ramp.prepare(tmp_path / "work") == data / "ramp"
    # issue 26 asks real clips for "from frames alone, without intrinsics"; --intrinsics both adds the given build
    assert suite.plan([ramp], ("issue",)) == [(ramp, "self")]
    assert suite.plan([ramp], suite.VARIANTS) == [(ramp, "given"), (ramp, "self")]
    assert "curve_kitti_camera" in clips
