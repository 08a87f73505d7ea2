"""Issue 26's target on real footage: every public clip with ground-truth poses, built from its
frames alone without its intrinsics, gives one trajectory of every frame with ATE <= 2 % of the
path and a focal length within 5 %.

The clips live in the data folder beside the repository (shared/data, or $INSPATIO_DATA): each a
folder with PROVENANCE.txt, frames, a pose file and camera_info.yaml (withheld from the build,
used to score). Their licences (KITTI: CC BY-NC-SA 3.0) keep them out of the repository and the
package; without the folder these tests skip. One build per clip at the clip's own resolution (as a
user runs it; about 4 CPU minutes and 2 GB for 51 KITTI frames), through bench/ingest_suite.py, so
the test and the benchmark measure the same. (At --max-size 640, 194 px high, the odometry alone is
held by test_reduced_size_tracking.py; docs/notes/2026-12-05-tracking-640.md.)
"""
from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("INSPATIO_DATA") or ROOT.parent / "shared" / "data")
MAX_SIZE = None

# Clips that miss the target today, with what was measured (strict: a fix turns the xfail into a
# failure that asks for this entry to go).
KNOWN_SHORTFALLS = {
    "kitti06": "2026-12-05, 2-core VM, main at fd5efdb, 1226x370: 51/51 placed, 1 segment, ATE 0.06 %, but "
               "focal +108 %: these 51 frames drive straight (1.2 deg of yaw), self-calibration's score is "
               "flat (1386 +- 898 px) and the build keeps the 1.2 x width prior, as designed "
               "(docs/notes/2026-12-04-calibration-scale.md)",
}


def _suite():
    spec = importlib.util.spec_from_file_location("ingest_suite", ROOT / "bench" / "ingest_suite.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["ingest_suite"] = module
    spec.loader.exec_module(module)
    return module


def _clip_names() -> list[str]:
    if not DATA.is_dir():
        return []
    suite = _suite()
    return [c.name for c in suite.public_clips(DATA) if c.has_intrinsics]


CLIPS = _clip_names()


@pytest.mark.skipif(not CLIPS, reason=f"no public clips with ground truth in {DATA} (set INSPATIO_DATA)")
@pytest.mark.parametrize("name", [pytest.param(n, marks=[
    pytest.mark.xfail(reason=KNOWN_SHORTFALLS[n], strict=True),
    # A build of a clip known to miss costs ~4 CPU minutes and says what its entry says: CI skips
    # it; INSPATIO_REAL_CLIPS=all runs it (and a fix then fails it, asking for the entry to go).
    pytest.mark.skipif(os.environ.get("INSPATIO_REAL_CLIPS") != "all",
                       reason=f"known shortfall (INSPATIO_REAL_CLIPS=all runs it): {KNOWN_SHORTFALLS[n]}")])
    if n in KNOWN_SHORTFALLS else n for n in CLIPS] or ["none"])
def test_real_clip_from_frames_alone_is_one_trajectory_within_2_percent_and_focal_within_5(name, tmp_path,
                                                                                           monkeypatch):
    monkeypatch.setenv("INSPATIO_NO_PROGRESS", "1")
    suite = _suite()
    clip = next(c for c in suite.public_clips(DATA) if c.name == name)
    path = clip.prepare(tmp_path)
    inputs = suite.make_input(path, "self", tmp_path / "input")
    assert not (inputs / "camera_info.yaml").exists()          # the intrinsics are withheld
    world = tmp_path / "world.safetensors"
    built = suite.run_build(inputs, world, tmp_path / "build.log", device="cpu", holdout=5, max_size=MAX_SIZE)
    assert built["returncode"] == 0, built.get("error")
    row = suite.run_score(world, path, tmp_path / "score.json", tmp_path / "score.log", device="cpu", shifts=False)
    assert "score_error" not in row, row["score_error"]
    assert row["frames_placed"] == row["frames_given"], row
    assert row["segments"] == 1, row
    assert row["ate_pct"] <= 2.0, row
    assert abs(row["focal_error_pct"]) <= 5.0, row
