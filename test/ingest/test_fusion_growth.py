"""What bounds the static layer's growth: a pixel whose depth agrees with the surfel the world
already draws there, within the two depth maps' combined uncertainty, is that surface, not a new
one (fusion.same_surface_tolerance); fusion frees its frame-by-frame state before it reads the
world back."""
import numpy as np
import pytest
import torch

from inspatio_ros.camera import Intrinsics
from inspatio_ros.errors import InputError
from inspatio_ros.ingest.fusion import FusionSettings, WorldFuser, same_surface_tolerance

INTR = Intrinsics(60.0, 60.0, 31.5, 23.5, 64, 48)
MVS_INFO = {"settings": {"max_depth_uncertainty": 0.05}}


def test_same_surface_tolerance_follows_the_depth_maps_uncertainty():
    s = FusionSettings()
    assert same_surface_tolerance(s, None) == s.novelty_tolerance            # given depth: as before
    assert same_surface_tolerance(s, MVS_INFO) == pytest.approx(0.05 * np.sqrt(2))
    assert same_surface_tolerance(FusionSettings(depth_uncertainty=0.01), MVS_INFO) == s.novelty_tolerance
    assert same_surface_tolerance(FusionSettings(depth_uncertainty=0.1), None) == pytest.approx(0.1 * np.sqrt(2))
    for bad in (-0.1, float("nan")):
        with pytest.raises(InputError, match="depth uncertainty"):
            same_surface_tolerance(FusionSettings(depth_uncertainty=bad), None)


def _added(same_surface: float | None, second: np.ndarray) -> int:
    """Points the second of two frames from one pose adds over a wall at depth 10 (first frame)."""
    fuser = WorldFuser(INTR, FusionSettings(), torch.device("cpu"), same_surface=same_surface)
    rgb = np.full((INTR.height, INTR.width, 3), 100, np.uint8)
    pose = np.eye(4)
    first = np.full((INTR.height, INTR.width), 10.0, np.float32)
    assert fuser.add_frame(0, rgb, first, pose) > 0.9 * first.size
    return fuser.add_frame(1, rgb, second.astype(np.float32), pose)


def test_a_measurement_within_the_uncertainty_is_the_surface_already_there():
    """The second frame measures the left half of the wall 5 % farther (noise of one MVS map) and
    the right half 30 % farther (something else). With MVS's uncertainty the left half is the wall
    already fused; only the right half is new. With the fixed 3 % both halves were added."""
    second = np.full((INTR.height, INTR.width), 10.0, np.float32)
    second[:, :32] = 10.5
    second[:, 32:] = 13.0
    inner = (INTR.height - 2) * 30          # pixels of a half away from the border (no normals there)
    mvs = _added(same_surface_tolerance(FusionSettings(), MVS_INFO), second)
    given = _added(None, second)
    assert inner <= mvs <= INTR.height * 32             # the right half, not the left
    assert given >= 2 * inner                           # both halves
    nearer = second.copy()
    nearer[:, :32] = 9.55                               # 4.5 % nearer: the same wall too
    assert _added(same_surface_tolerance(FusionSettings(), MVS_INFO), nearer) <= INTR.height * 32


def test_each_frame_adds_at_most_its_share_of_the_static_budget():
    from inspatio_ros.ingest.fusion import static_budget, static_grid_step

    assert static_budget(0, 10, 3, 10**9) is None                          # no limit
    assert static_budget(1000, 10, 0, 0) == 100                            # the first frame's share
    assert static_budget(1000, 10, 4, 200) == 300                          # unused shares pass on
    assert static_budget(1000, 10, 4, 900) == 0                            # never negative
    valid = np.ones((48, 64), bool)
    keep = np.ones(valid.sum(), bool)
    step = static_grid_step(keep, valid, 200)
    assert step == 4 and (48 // 4) * (64 // 4) <= 200 < (48 // 3) * (64 // 3)
    # over a budget the frame adds every step-th pixel of what it would add, surfels step times larger
    fuser = WorldFuser(INTR, FusionSettings(), torch.device("cpu"))
    rgb = np.full((INTR.height, INTR.width, 3), 100, np.uint8)
    added = fuser.add_frame(0, rgb, np.full((INTR.height, INTR.width), 10.0, np.float32), np.eye(4), budget=200)
    assert 150 <= added <= 200 and fuser.thinned_frames == 1
    whole = WorldFuser(INTR, FusionSettings(), torch.device("cpu"))
    whole.add_frame(0, rgb, np.full((INTR.height, INTR.width), 10.0, np.float32), np.eye(4))
    assert np.median(fuser.parts["radius"].array()) == pytest.approx(
        4 * np.median(whole.parts["radius"].array()), rel=0.02)   # (radii vary a little with the ray)
