"""Tracking at the size users build at on a CPU (--max-size 640): each public clip with ground
truth and intrinsics (as test_real_clips finds them, in $INSPATIO_DATA or ../shared/data; skipped
without) is one trajectory of every frame with ATE <= 2 % of the path, the odometry alone with the
clip's intrinsics. KITTI's 3.3:1 frames are 194 px high at 640 wide; with a fixed 1.5 px RANSAC
threshold the ramp's two-view start took a turning model with the wrong direction of travel
(ATE 7.5 %): docs/notes/2026-12-05-tracking-640.md."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from inspatio_ros.ingest.intrinsics import resolve_intrinsics
from inspatio_ros.ingest.odometry import ate_rel, estimate_poses
from inspatio_ros.ingest.sources import open_input
from inspatio_ros.posefile import read_poses

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("INSPATIO_DATA") or ROOT.parent / "shared" / "data")
CLIPS = sorted(p.parent for p in DATA.glob("*/PROVENANCE.txt")
               if (p.parent / "camera_info.yaml").exists()) if DATA.is_dir() else []


@pytest.mark.skipif(not CLIPS, reason=f"no public clips with ground truth in {DATA} (set INSPATIO_DATA)")
@pytest.mark.parametrize("folder", CLIPS or [None], ids=[c.name for c in CLIPS] or ["none"])
def test_clip_at_640_is_one_trajectory_of_every_frame_within_2_percent(folder):
    fs = open_input(str(folder), None, max_size=640)
    h, w = fs.load(0).shape[:2]
    nw, nh = fs.native_size or (w, h)
    intr, _, _ = resolve_intrinsics(None, fs, nw, nh)
    if (intr.width, intr.height) != (w, h):
        intr = intr.scaled(w, h)
    res = estimate_poses(fs.load, len(fs), intr, progress_bar=False)
    gt, _ = read_poses(fs.poses)
    gt = gt[fs.index]
    assert res.located.all(), f"unplaced: {np.nonzero(~res.located)[0].tolist()}; {res.warnings}"
    assert len(res.segments) == 1, res.segments
    assert ate_rel(res.c2w, gt) <= 0.02
