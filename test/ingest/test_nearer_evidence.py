"""nearer_evidence: a frame's depth that other frames contradict by seeing a static surface in
front of it (a too-far blank fill, a near building taken for sky, an unknown patch) takes their
depth; a single neighbour's floater, moving pixels, lone pixels and the background beside a
foreground edge change nothing."""
import numpy as np
import pytest

from inspatio_ros.camera import Intrinsics
from inspatio_ros.ingest.consistency import nearer_evidence

INTR = Intrinsics(60.0, 60.0, 39.5, 29.5, 80, 60)
WALL = 8.0


def _camera(x: float) -> np.ndarray:
    c2w = np.eye(4)
    c2w[0, 3] = x
    return c2w


def _neighbours(depths, xs=(-0.6, -0.3, 0.3, 0.6), moving=None):
    return [(d, _camera(x), moving) for d, x in zip(depths, xs)]


def _wall_maps(n=4):
    return [np.full((60, 80), WALL, np.float32) for _ in range(n)]


@pytest.mark.parametrize("wrong", [np.inf, 3.0 * WALL, np.nan], ids=["sky", "too far", "unknown"])
def test_a_patch_the_neighbours_see_in_front_takes_their_depth(wrong):
    depth = np.full((60, 80), WALL, np.float32)
    depth[10:30, 30:50] = wrong
    out, changed = nearer_evidence(depth, _camera(0.0), _neighbours(_wall_maps()), INTR, 0.07)
    assert changed[12:28, 32:48].all()
    assert np.abs(out[12:28, 32:48] / WALL - 1).max() < 0.01
    # The wall elsewhere agrees with the neighbours: untouched.
    assert not changed[40:, :].any() and (out[40:, :] == WALL).all()


def test_one_neighbours_floater_is_no_evidence():
    depth = np.full((60, 80), WALL, np.float32)
    depth[10:30, 30:50] = 3.0 * WALL                    # this frame too far there ...
    maps = [np.full((60, 80), 3.0 * WALL, np.float32) for _ in range(4)]
    maps[0][:, :] = WALL                                # ... and only one neighbour says otherwise
    out, changed = nearer_evidence(depth, _camera(0.0), _neighbours(maps), INTR, 0.07, min_votes=2)
    assert not changed.any() and np.array_equal(out, depth)


def test_neighbours_that_disagree_with_each_other_change_nothing():
    depth = np.full((60, 80), 4.0 * WALL, np.float32)
    maps = [np.full((60, 80), z, np.float32) for z in (WALL, 1.5 * WALL, 2.2 * WALL, 3.0 * WALL)]
    out, changed = nearer_evidence(depth, _camera(0.0), _neighbours(maps), INTR, 0.07, min_votes=2)
    assert not changed.any()


def test_moving_pixels_of_the_neighbours_are_no_evidence():
    depth = np.full((60, 80), 3.0 * WALL, np.float32)   # the car has driven on: this frame sees far
    moving = np.ones((60, 80), bool)
    out, changed = nearer_evidence(depth, _camera(0.0), _neighbours(_wall_maps(), moving=moving), INTR, 0.07)
    assert not changed.any()


def test_a_lone_pixel_is_not_pulled_in_front_of_its_neighbours():
    depth = np.full((60, 80), WALL, np.float32)
    depth[20, 40] = 3.0 * WALL                          # one pixel too far: the neighbours say so, but
    out, changed = nearer_evidence(depth, _camera(0.0), _neighbours(_wall_maps()), INTR, 0.07)
    assert not changed.any()                            # its nearest 3x3 neighbour already is the wall


def test_a_small_patch_is_not_pulled_in_front_of_the_ring_around_it():
    """A 3x3 patch 30 % too far: the neighbours contradict all of it, but only its centre has no
    nearer pixel in its window; pulled alone, it would leave its ring "behind an edge" (dropped
    as surfels, a hole). Only patches that a 3x3 window fits wholly are changed."""
    depth = np.full((60, 80), WALL, np.float32)
    depth[19:22, 39:42] = 1.3 * WALL
    out, changed = nearer_evidence(depth, _camera(0.0), _neighbours(_wall_maps()), INTR, 0.07)
    assert not changed.any()


def _box_scene(x: float, fatten_px: int = 0) -> np.ndarray:
    """Depth seen from a camera at x: a box (world x, y within 0.5) at 4 m before a wall at 12 m;
    ``fatten_px``: the box drawn that many pixels wider all round (a foreground edge that a
    matcher's window fattens)."""
    from scipy import ndimage

    d = np.full((60, 80), 12.0, np.float32)
    xw = (np.arange(80) - INTR.cx) / INTR.fx * 4.0 + x
    yw = (np.arange(60) - INTR.cy) / INTR.fy * 4.0
    box = np.zeros((60, 80), bool)
    box[np.ix_(np.abs(yw) <= 0.5, np.abs(xw) <= 0.5)] = True
    if fatten_px:
        box = ndimage.binary_dilation(box, iterations=fatten_px)
    d[box] = 4.0
    return d


def test_the_background_beside_a_fattened_foreground_edge_keeps_its_depth():
    """Every neighbour draws the box 2 px too wide: the wall pixels beside the box's edges in this
    frame stay at 12 m (a pixel next to the edge has the box in its 3x3 window; compared pixel by
    pixel, the 2 px band would take the box's depth)."""
    depth = _box_scene(0.0)
    neighbours = [(_box_scene(x, fatten_px=2), _camera(x), None) for x in (-0.6, -0.3, 0.3, 0.6)]
    out, changed = nearer_evidence(depth, _camera(0.0), neighbours, INTR, 0.07)
    assert not changed.any() and np.array_equal(out, depth)
