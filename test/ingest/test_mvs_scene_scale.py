"""MVS lengths follow the scene, not the pose unit (sweep.scene_length_unit): the same room gives the
same sources and depth bounds whether its world is in metres or in the odometry's own unit.
Geometry only, no rendering (fast)."""
import numpy as np
import torch

from inspatio_ros.camera import Intrinsics
from inspatio_ros.ingest.mvs import MVSSettings, PlaneSweep, depth_bounds
from inspatio_ros.ingest.mvs.sweep import REFERENCE_BAND, REFERENCE_SCENE_DEPTH, scene_length_unit

INTR = Intrinsics(160.0, 160.0, 159.5, 89.5, 320, 180)


def _room(scale: float):
    """A camera walking 3 cm a frame along z through a room whose walls are 2-6 m ahead (landmarks),
    all lengths times ``scale``."""
    c2w = np.tile(np.eye(4), (30, 1, 1))
    c2w[:, 2, 3] = 0.03 * np.arange(30)
    rng = np.random.default_rng(1)
    landmarks = np.stack([rng.uniform(-2, 2, 400), rng.uniform(-1, 1, 400), rng.uniform(2.0, 6.0, 400)], 1)
    c2w[:, :3, 3] *= scale
    return c2w, landmarks * scale


def _sweep(c2w):
    return PlaneSweep(lambda i: np.zeros((INTR.height, INTR.width), np.uint8), c2w, INTR, MVSSettings(),
                      torch.device("cpu"))


def test_the_length_unit_is_the_scene_depth_over_the_reference_outside_the_street_band():
    c2w, landmarks = _room(1.0)
    unit = scene_length_unit(c2w, INTR, landmarks, list(range(30)))
    assert 2.5 / REFERENCE_SCENE_DEPTH < unit < 4.5 / REFERENCE_SCENE_DEPTH    # median depth ~3.5 m
    c2w100, landmarks100 = _room(100.0)                                         # the room in centimetres
    assert abs(scene_length_unit(c2w100, INTR, landmarks100, list(range(30))) / unit - 100.0) < 1e-6
    # Scene depths the settings were set at (the streets, the unscaled rooms): kept as they are.
    c2w6, landmarks6 = _room(6.0)
    depth6 = unit * REFERENCE_SCENE_DEPTH * 6.0
    assert REFERENCE_BAND[0] < depth6 < REFERENCE_BAND[1]
    assert scene_length_unit(c2w6, INTR, landmarks6, list(range(30))) == 1.0
    assert scene_length_unit(c2w, INTR, None, list(range(30))) == 1.0             # nothing to go by


def test_a_metric_room_gets_sources_and_the_same_ones_in_any_unit():
    chosen, bounds = [], []
    for scale in (1.0, 100.0):
        c2w, landmarks = _room(scale)
        sweep = _sweep(c2w)
        sweep.length_unit = scene_length_unit(c2w, INTR, landmarks, list(range(30)))
        chosen.append(sweep.select_sources(15, np.ones(30, bool)))
        near, far = depth_bounds(c2w[15], INTR, landmarks, MVSSettings(), sweep.length_unit)
        bounds.append(np.array([near, far]) / scale)
    assert len(chosen[0]) >= 2                      # one before, one after (10 frames: 0.3 m, the parallax of the street's 1.6 m at 20 m)
    assert chosen[0] == chosen[1]
    assert np.allclose(bounds[0], bounds[1])
    # Taken as metres, the street's 1.6 baseline is 53 frames of this walk: no source in the clip.
    c2w, _ = _room(1.0)
    assert _sweep(c2w).select_sources(15, np.ones(30, bool)) == []


def _wall_video(depth: float, step: float, frames: int = 20):
    """A camera sliding ``step`` a frame to its right in front of a textured wall ``depth`` ahead:
    (frames(i) -> grey image, c2w). The wall's image moves fx * step / depth pixels a frame."""
    cv2 = __import__("pytest").importorskip("cv2")
    rng = np.random.default_rng(3)
    texture = cv2.GaussianBlur(rng.uniform(0, 255, (INTR.height + 40, INTR.width + 400)), (0, 0), 1.5)
    texture = cv2.normalize(texture, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    c2w = np.tile(np.eye(4), (frames, 1, 1))
    c2w[:, 0, 3] = step * np.arange(frames)

    def load(i):
        shift = INTR.fx * step * i / depth
        warp = np.float32([[1, 0, -20 - shift], [0, 1, -20]])
        return cv2.warpAffine(texture, warp, (INTR.width, INTR.height), flags=cv2.INTER_LINEAR)
    return load, c2w


def test_given_poses_without_landmarks_measure_the_scene_from_triangulated_corners():
    from inspatio_ros.ingest.mvs.sweep import scene_points_from_poses

    order = list(range(20))
    load, c2w = _wall_video(depth=3.5, step=0.03)
    points = scene_points_from_poses(load, c2w, INTR, order)
    assert points is not None and len(points) >= 100
    assert abs(np.median(points[:, 2]) / 3.5 - 1.0) < 0.05, np.median(points[:, 2])
    unit = scene_length_unit(c2w, INTR, points, order)
    assert abs(unit * REFERENCE_SCENE_DEPTH / 3.5 - 1.0) < 0.05           # a room in metres: scaled
    sweep = _sweep(c2w)
    sweep.length_unit = unit
    assert len(sweep.select_sources(10, np.ones(20, bool))) >= 2          # sources, where 1.6 m gave none
    # The same video with its poses in centimetres: the points and the unit follow the poses.
    centimetres = c2w.copy()
    centimetres[:, :3, 3] *= 100.0
    points_cm = scene_points_from_poses(load, centimetres, INTR, order)
    assert abs(scene_length_unit(centimetres, INTR, points_cm, order) / unit - 100.0) < 5.0
    # A street's depth (a wall 20 m ahead, a camera moving 1 m a frame): inside the band, kept.
    load20, c2w20 = _wall_video(depth=20.0, step=0.5)
    assert scene_length_unit(c2w20, INTR, scene_points_from_poses(load20, c2w20, INTR, order), order) == 1.0
    # A still camera gives no parallax: nothing triangulated, the settings' lengths as they are.
    still = np.tile(np.eye(4), (20, 1, 1))
    assert scene_points_from_poses(lambda i: load(0), still, INTR, order) is None
