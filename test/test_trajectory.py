"""Trajectory files: InSpatio-World keyframes (pitch/yaw/radius), presets, TUM/4x4/KITTI."""
from __future__ import annotations

import math

import numpy as np
import pytest

from inspatio_ros.camera import invert_pose, make_pose, quaternion_to_matrix, rotation_from_rpy
from inspatio_ros.errors import InputError
from inspatio_ros.posefile import write_poses
from inspatio_ros.trajectory import (
    Trajectory, detect_trajectory_format, inspatio_orbit_poses, inspatio_relative_poses,
    list_presets, load_trajectory, parse_inspatio_keyframes, preset_path, resample_keyframes,
)


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def _reference():
    """A non-trivial reference camera: rotated and translated."""
    return make_pose(rotation_from_rpy(0.2, -0.3, 1.1), [3.0, -2.0, 1.5])


def _assert_rigid(poses):
    assert np.isfinite(poses).all()
    r = poses[:, :3, :3]
    np.testing.assert_allclose(np.einsum("nji,njk->nik", r, r), np.broadcast_to(np.eye(3), r.shape), atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-9)
    np.testing.assert_allclose(poses[:, 3, :], np.broadcast_to([0, 0, 0, 1.0], (len(poses), 4)), atol=0)


def _looks_at(pose, point):
    """Unit optical axis vs unit direction from camera centre to ``point``."""
    axis = pose[:3, 2]
    d = np.asarray(point) - pose[:3, 3]
    return axis, d / np.linalg.norm(d)


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------

def test_parse_keyframes_with_comments_and_uneven_lines(tmp_path):
    p = _write(tmp_path, "t.txt", "# header\n0 10 20  # pitch\n\n0 0 5 5\n1 1\n")
    pitch, yaw, radius = parse_inspatio_keyframes(p)
    np.testing.assert_array_equal(pitch, [0, 10, 20])
    np.testing.assert_array_equal(yaw, [0, 0, 5, 5])
    np.testing.assert_array_equal(radius, [1, 1])
    assert pitch.dtype == np.float64


def test_parse_upstream_preset_values():
    pitch, yaw, radius = parse_inspatio_keyframes(preset_path("x_y_circle_cycle"))
    assert (len(pitch), len(yaw), len(radius)) == (37, 37, 45)
    assert pitch.max() == 20 and pitch.min() == -20 and yaw.max() == 20 and yaw.min() == -20
    assert (radius == 1).all()
    pitch, yaw, radius = parse_inspatio_keyframes(preset_path("zoom_out_in.txt"))
    assert not pitch.any() and not yaw.any() and len(radius) == 18
    assert radius.min() == -1 and radius.max() == 1


# ---------------------------------------------------------------------------------------------
# Geometry
# ---------------------------------------------------------------------------------------------

def test_yaw_90_orbits_left_and_keeps_looking_at_pivot():
    ref = _reference()
    depth = 4.0
    poses = inspatio_orbit_poses([0], [90], [1], ref, depth, 3)
    pivot_cam = np.array([0.0, 0.0, depth])
    pivot = ref[:3, :3] @ pivot_cam + ref[:3, 3]
    # In the reference frame: camera at pivot - r * d, d = (sin 90, 0, cos 90) = +x  ->  (-4, 0, 4).
    rel = invert_pose(ref) @ poses[0]
    np.testing.assert_allclose(rel[:3, 3], [-depth, 0.0, depth], atol=1e-12)
    np.testing.assert_allclose(rel[:3, 2], [1.0, 0.0, 0.0], atol=1e-12)   # looks right, at the pivot
    np.testing.assert_allclose(rel[:3, 1], [0.0, 1.0, 0.0], atol=1e-12)   # no roll: y still down
    for pose in poses:
        axis, to_pivot = _looks_at(pose, pivot)
        np.testing.assert_allclose(axis, to_pivot, atol=1e-12)
        np.testing.assert_allclose(np.linalg.norm(pivot - pose[:3, 3]), depth, atol=1e-12)
    _assert_rigid(poses)


def test_positive_pitch_orbits_up():
    rel = inspatio_orbit_poses([30], [0], [1], np.eye(4), 2.0, 1)[0]
    # y down in OpenCV: up is -y. Camera at pivot - r*(0, sin30, cos30) = (0, -1, 2 - sqrt3).
    np.testing.assert_allclose(rel[:3, 3], [0.0, -1.0, 2.0 - math.sqrt(3.0)], atol=1e-12)
    np.testing.assert_allclose(rel[:3, 2], [0.0, 0.5, math.sqrt(3.0) / 2], atol=1e-12)  # looks down
    np.testing.assert_allclose(rel[:3, 0], [1.0, 0.0, 0.0], atol=1e-12)


def test_combined_pitch_yaw_matches_spherical_formula():
    th, ph, r = math.radians(20), math.radians(-35), 3.0
    rel = inspatio_relative_poses(np.array([20.0]), np.array([-35.0]), np.array([r]))[0]
    d = np.array([math.cos(th) * math.sin(ph), math.sin(th), math.cos(th) * math.cos(ph)])
    np.testing.assert_allclose(rel[:3, 3], np.array([0, 0, r]) - r * d, atol=1e-12)
    np.testing.assert_allclose(rel[:3, 2], d, atol=1e-12)
    assert abs(rel[1, 0]) < 1e-12    # image x axis stays level (no roll)


def test_radius_scales_orbit_distance():
    for scale in (0.5, 1.0, 2.0):
        rel = inspatio_orbit_poses([0], [90], [scale], np.eye(4), 10.0, 1)[0]
        R = 10.0 * scale
        np.testing.assert_allclose(rel[:3, 3], [-R, 0.0, R], atol=1e-12)
        np.testing.assert_allclose(np.linalg.norm(np.array([0, 0, R]) - rel[:3, 3]), R, atol=1e-12)


def test_zero_angles_give_reference_pose_exactly():
    ref = _reference()
    # Orbit mode frame with zero angles: reference pose whatever the radius.
    poses = inspatio_orbit_poses([0, 0, 0], [0, 10, 0], [2, 2, 2], ref, 7.0, 5)
    np.testing.assert_array_equal(poses[0], ref @ np.eye(4))
    np.testing.assert_allclose(poses[0], ref, atol=1e-15)
    np.testing.assert_allclose(poses[-1], ref, atol=1e-12)
    # No motion at all (dolly of 0): every frame is the reference.
    still = load_trajectory("static", ref, frames=7)
    np.testing.assert_allclose(still.poses, np.broadcast_to(ref, (7, 4, 4)), atol=1e-15)


def test_dolly_mode_moves_along_optical_axis():
    ref = _reference()
    poses = inspatio_orbit_poses([0, 0], [0, 0], [0, 0.5], ref, 8.0, 3)
    expect = ref[:3, 3] + ref[:3, 2] * np.array([0.0, 2.0, 4.0])[:, None]
    np.testing.assert_allclose(poses[:, :3, 3], expect, atol=1e-12)
    np.testing.assert_allclose(poses[:, :3, :3], np.broadcast_to(ref[:3, :3], (3, 3, 3)), atol=1e-15)
    back = inspatio_orbit_poses([0], [0], [-1], np.eye(4), 3.0, 1)[0]
    np.testing.assert_allclose(back[:3, 3], [0, 0, -3.0])


def test_rotation_only_keeps_camera_centre():
    ref = _reference()
    poses = inspatio_orbit_poses([0, 10], [0, 30], [1, 1], ref, 5.0, 9, rotation_only=True)
    np.testing.assert_allclose(poses[:, :3, 3], np.broadcast_to(ref[:3, 3], (9, 3)), atol=1e-12)
    rel = invert_pose(ref) @ poses[-1]
    assert rel[0, 2] > 0 and rel[1, 2] > 0   # turned to look right and down


def test_per_frame_reference_composes_each_frame():
    refs = np.stack([make_pose(np.eye(3), [0, 0, float(i)]) for i in range(5)])
    poses = inspatio_orbit_poses([0], [90], [1], refs, 1.0, 5)
    np.testing.assert_allclose(poses[:, :3, 3], [[-1, 0, 1 + i] for i in range(5)], atol=1e-12)
    with pytest.raises(ValueError):
        inspatio_orbit_poses([0], [90], [1], refs[:3], 1.0, 5)


# ---------------------------------------------------------------------------------------------
# Resampling
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("interp", ["smooth", "linear"])
def test_resampling_hits_keyframes_at_their_frames(interp):
    keys = np.array([0.0, 10.0, 20.0, 10.0, 0.0, -10.0, -20.0, -10.0, 0.0])   # 9 keys
    out = resample_keyframes(keys, 49, interp)                                  # frame 6k = key k
    assert out.shape == (49,)
    np.testing.assert_allclose(out[::6], keys, atol=1e-12)


def test_smooth_resampling_does_not_overshoot_and_keeps_flats():
    keys = np.array([0, 0, 0, 20, 20, 0, 0], dtype=float)
    out = resample_keyframes(keys, 61)
    assert out.min() >= 0.0 and out.max() <= 20.0
    np.testing.assert_array_equal(out[:21], 0.0)     # flat run between keys 0..2 stays exactly 0
    np.testing.assert_allclose(out[30:41], 20.0, atol=1e-12)
    assert np.all(np.diff(out[20:31]) >= 0)           # monotone between keys


def test_short_lines_and_inspatio_mode():
    np.testing.assert_allclose(resample_keyframes([0, 30], 4), [0, 10, 20, 30])
    np.testing.assert_allclose(resample_keyframes([5], 3), [5, 5, 5])
    np.testing.assert_allclose(resample_keyframes([0, 30, 0], 5, "inspatio"), [0, 15, 30, 15, 0])
    # Upstream's smoothing spline does not pass through peaks; radius ends pinned.
    keys = [0, 10, 20, 10, 0, -10, -20, -10, 0]
    out = resample_keyframes(keys, 49, "inspatio")
    assert 15 < out.max() < 20
    pinned = resample_keyframes([1, 3, 0, 2, 5], 11, "inspatio", pin_ends=True)
    assert pinned[0] == 1 and pinned[-1] == 5


def test_orbit_keyframes_reach_their_frames():
    ref = _reference()
    poses = inspatio_orbit_poses([0, 0, 0], [0, 90, 0], [1, 1, 1], ref, 2.0, 9)
    rel = invert_pose(ref) @ poses[4]
    np.testing.assert_allclose(rel[:3, 3], [-2.0, 0.0, 2.0], atol=1e-12)
    np.testing.assert_allclose(poses[8], ref, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Presets and load_trajectory
# ---------------------------------------------------------------------------------------------

def test_presets_listed_and_all_load():
    names = list_presets()
    for required in ("x_y_circle_cycle", "zoom_out_in", "pan_left_right", "orbit_small", "static"):
        assert required in names
    ref = _reference()
    for name in names:
        assert preset_path(name) == preset_path(name + ".txt")
        assert detect_trajectory_format(preset_path(name)) == "inspatio"
        traj = load_trajectory(name, ref, frames=49, look_at_depth=6.0, fps=5.0)
        assert isinstance(traj, Trajectory) and traj.name == name
        assert traj.poses.shape == (49, 4, 4) and traj.poses.dtype == np.float64
        _assert_rigid(traj.poses)
        np.testing.assert_allclose(traj.times, np.arange(49) / 5.0)
        np.testing.assert_allclose(traj.poses[0], ref, atol=1e-9)   # every preset starts at the reference
        # no preset wanders further than twice the look-at depth
        assert np.linalg.norm(traj.poses[:, :3, 3] - ref[:3, 3], axis=1).max() <= 12.0 + 1e-9


def test_x_y_circle_cycle_geometry():
    ref = _reference()
    traj = load_trajectory("x_y_circle_cycle.txt", ref, frames=145, look_at_depth=5.0)
    pivot = ref[:3, :3] @ [0, 0, 5.0] + ref[:3, 3]
    for pose in traj.poses:
        axis, to_pivot = _looks_at(pose, pivot)
        np.testing.assert_allclose(axis, to_pivot, atol=1e-9)
    # keyframe 2 of 37 (pitch 20, yaw 0) lands on frame 2 * 144 / 36 = 8
    rel = invert_pose(ref) @ traj.poses[8]
    th = math.radians(20)
    np.testing.assert_allclose(rel[:3, 3], [0, -5 * math.sin(th), 5 - 5 * math.cos(th)], atol=1e-9)


def test_zoom_out_in_preset_is_a_dolly():
    traj = load_trajectory("zoom_out_in", np.eye(4), frames=52, look_at_depth=3.0)   # 51 / 17 = 3
    z = traj.poses[:, 2, 3]
    np.testing.assert_allclose(traj.poses[:, :2, 3], 0.0, atol=1e-15)
    np.testing.assert_allclose(traj.poses[:, :3, :3], np.broadcast_to(np.eye(3), (52, 3, 3)), atol=0)
    assert z[12] == pytest.approx(-3.0) and z[39] == pytest.approx(3.0) and z[0] == 0 and z[-1] == 0


def test_load_tum_file_as_is(tmp_path):
    poses = np.stack([make_pose(quaternion_to_matrix(0, 0, math.sin(a / 2), math.cos(a / 2)), [a, 2 * a, 0.5])
                      for a in np.linspace(0, 1, 5)])
    times = np.array([10.0, 10.1, 10.25, 10.3, 10.5])
    p = tmp_path / "drive.tum"
    write_poses(p, poses, times, fmt="tum")
    traj = load_trajectory(str(p), _reference())
    assert traj.name == "drive"
    np.testing.assert_allclose(traj.poses, poses, atol=1e-8)
    np.testing.assert_allclose(traj.times, times)


def test_load_4x4_and_kitti_files_as_is(tmp_path):
    poses = np.stack([make_pose(rotation_from_rpy(0.1 * i, 0.2, -0.1 * i), [i, 0, 2 * i]) for i in range(6)])
    for fmt in ("4x4", "kitti"):
        p = tmp_path / f"poses_{fmt}.txt"
        write_poses(p, poses, fmt=fmt)
        assert detect_trajectory_format(p) == fmt
        traj = load_trajectory(p, None, fps=4.0, frames=3)
        np.testing.assert_allclose(traj.poses, poses, atol=1e-8)
        np.testing.assert_allclose(traj.times, np.arange(6) / 4.0)


def test_three_pose_files_are_not_mistaken_for_keyframes(tmp_path):
    poses = np.stack([make_pose(rotation_from_rpy(0, 0, 0.3 * i), [i, 0, 0]) for i in range(3)])
    for fmt in ("tum", "kitti", "4x4"):
        p = tmp_path / f"three.{fmt}"
        write_poses(p, poses, np.arange(3.0), fmt=fmt)
        assert detect_trajectory_format(p) == fmt
        np.testing.assert_allclose(load_trajectory(p).poses, poses, atol=1e-8)
    # 3 lines of 8 numbers that are not quaternions: keyframes
    p = _write(tmp_path, "k.txt", "0 1 2 3 4 5 6 7\n0 1 2 3 4 5 6 7\n1 1 1 1 1 1 1 1\n")
    assert detect_trajectory_format(p) == "inspatio"


def test_explicit_inspatio_format_for_file_path(tmp_path):
    p = _write(tmp_path, "my_orbit.txt", "0\n90\n1\n")
    traj = load_trajectory(p, np.eye(4), frames=2, look_at_depth=1.0, fmt="inspatio")
    assert traj.name == "my_orbit"
    np.testing.assert_allclose(traj.poses[:, :3, 3], [[-1, 0, 1], [-1, 0, 1]], atol=1e-12)


# ---------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------

def test_unknown_preset_lists_available():
    with pytest.raises(InputError) as err:
        load_trajectory("no_such_preset", np.eye(4))
    assert "x_y_circle_cycle" in str(err.value) and "no_such_preset" in str(err.value)
    with pytest.raises(InputError, match="zoom_out_in"):
        preset_path("nope")


@pytest.mark.parametrize("text, words", [
    ("", "no numbers"),
    ("# only a comment\n", "no numbers"),
    ("0 10\n0 x 5\n1 1\n", "line 2"),
    ("0 nan\n0 1\n1 1\n", "NaN"),
    ("0 1\n0 1\n", "2 numeric lines"),
    ("0 1\n0 1\n1 1\n1 1\n1 1\n", "lines"),
])
def test_bad_files_raise_input_error(tmp_path, text, words):
    p = _write(tmp_path, "bad.txt", text)
    with pytest.raises(InputError, match=words):
        load_trajectory(p, np.eye(4))
    if "numeric lines" in words:
        with pytest.raises(InputError, match="3 lines"):
            parse_inspatio_keyframes(p)


def test_bad_arguments_raise_input_error(tmp_path):
    p = _write(tmp_path, "ok.txt", "0 10\n0 0\n1 1\n")
    with pytest.raises(InputError, match="look_at_depth"):
        load_trajectory(p, np.eye(4), look_at_depth=0.0)
    with pytest.raises(InputError, match="fps"):
        load_trajectory(p, np.eye(4), fps=-1)
    with pytest.raises(InputError, match="frames"):
        load_trajectory(p, np.eye(4), frames=0)
    with pytest.raises(InputError, match="interpolation"):
        load_trajectory(p, np.eye(4), interpolation="bezier")
    with pytest.raises(InputError, match="format"):
        load_trajectory(p, np.eye(4), fmt="ply")
    with pytest.raises(InputError, match="neither"):
        load_trajectory(tmp_path / "missing.txt", np.eye(4))
    with pytest.raises(InputError, match="not a file"):
        load_trajectory(tmp_path, np.eye(4))
