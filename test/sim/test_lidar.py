"""Simulated LiDARs (sim/lidar.py): presets, parameter checks, and sweeps of the synthetic street
against its exact ray caster."""
import math

import numpy as np
import pytest

from inspatio_ros.errors import InputError
from inspatio_ros.sim.lidar import (AUTOWARE_DTYPE, PRESETS, VELODYNE_DTYPE, LidarSpec, lidar_parameters,
                                    load_lidars, pose_after)
from inspatio_ros.sim.rig import RIG_PRESETS, check_sensors, load_rig
from inspatio_ros.world import World


def one(params):
    return load_lidars({"lidars.names": ["top"], **{f"lidars.top.{k}": v for k, v in params.items()}})[0]


def test_vlp16_preset_rings_angles_and_times():
    s = one({"model": "VLP-16"})
    assert len(s.elevations_deg) == 16 and s.columns == 1800 and s.rate_hz == 10.0
    assert np.allclose(s.elevations_deg, np.arange(-15, 16, 2))
    assert list(s.rings()) == list(range(16))
    az = s.azimuths_rad()
    assert np.allclose(np.diff(az), -math.radians(0.2))          # clockwise, 0.2 deg a column
    t = s.firing_times()
    assert t[0] == 0.0 and t[-1] < 0.1 and np.all(np.diff(t) > 0)
    d = s.directions()
    assert d.shape == (1800 * 16, 3) and np.allclose(np.linalg.norm(d, axis=1), 1.0)
    # Render rows: half the 2 deg beam spacing, at most 4 x the 0.2 deg columns.
    assert math.degrees(s.pitch_rad) == pytest.approx(0.2) and math.degrees(s.row_pitch_rad) == pytest.approx(0.8)


def test_sweep_sectors_are_one_view_each():
    """Sectors per cube face, each one view: a spin starts on a face's edge."""
    from inspatio_ros.sim.lidar import LidarSampler

    for per_face, sectors in ((1, 4), (2, 8)):
        sampler = LidarSampler(one({"model": "VLP-16", "sectors_per_face": per_face}), "cpu")
        assert sampler.sectors == sectors and sampler.views.num_views == sectors
        assert np.all(np.diff(sampler.sector_times) > 0)


@pytest.mark.parametrize("model", sorted(PRESETS))
def test_every_preset_loads_with_its_datasheet_beams(model):
    s = one({"model": model})
    assert len(s.elevations_deg) in (16, 64)
    assert s.min_range < s.max_range and (s.hfov_deg == 360.0) == s.spinning
    assert sorted(s.rings()) == list(range(len(s.elevations_deg)))


def test_unordered_custom_beams_get_rings_by_elevation():
    s = one({"model": "custom", "elevations_deg": [5.0, -5.0, 0.0], "columns": 90})
    assert list(s.rings()) == [2, 0, 1]


def test_parameters_round_trip():
    s = one({"model": "OS1-64", "range_noise": 0.02, "dropout": 0.1, "seed": 3, "deskew": True,
             "layout": "autoware", "xyz": [1.0, 0.0, 2.0]})
    back = load_lidars(lidar_parameters([s]))[0]
    assert back.elevations_deg == s.elevations_deg and back.columns == s.columns and back.layout == "autoware"
    assert back.deskew and back.seed == 3 and back.xyz == (1.0, 0.0, 2.0)


@pytest.mark.parametrize("params, needle", [
    ({"model": "VLP16"}, "did you mean model 'VLP-16'"),
    ({"model": "custom", "elevations_deg": [], "columns": 100}, "holds no beams"),
    ({"model": "custom", "columns": 100}, "has no 'lidars.top.elevations_deg'"),
    ({"columns": 0}, "lidars.top.columns"),
    ({"hfov_deg": 400.0}, "lidars.top.hfov_deg"),
    ({"hfov_deg": 200.0}, "raster of 180 degrees or more"),
    ({"min_range": 50.0, "max_range": 10.0}, "min_range 50 m >= max_range 10 m"),
    ({"dropout": 1.0}, "lidars.top.dropout"),
    ({"layout": "velodine"}, "did you mean layout 'velodyne'"),
    ({"elevations_deg": [0.0, 95.0]}, "lidars.top.elevations_deg"),
    ({"rate": 10.0}, "did you mean 'lidars.top.rate_hz'"),
    ({"sectors_per_face": 0}, "lidars.top.sectors_per_face"),
])
def test_bad_lidar_entries_get_one_clear_error(params, needle):
    with pytest.raises(InputError) as err:
        one(params)
    assert needle in str(err.value)


def test_bad_rig_level_entries():
    with pytest.raises(InputError, match="did you mean preset 'surround6'"):
        load_rig({"rig.preset": "surround"})
    with pytest.raises(InputError, match="unknown parameter 'rig.presets'"):
        load_rig({"rig.presets": "surround6"})
    with pytest.raises(InputError, match="lidars.names"):
        load_lidars({"lidars.top.model": "VLP-16"})
    with pytest.raises(InputError, match="names both a camera and a LiDAR"):
        check_sensors(load_rig({}), load_lidars({"lidars.names": ["front"]}))
    with pytest.raises(InputError, match="does not divide the sim rate 30 Hz"):
        check_sensors(load_rig({}), load_lidars({"lidars.names": ["top"], "lidars.top.rate_hz": 20.0}))
    assert check_sensors(load_rig({}), load_lidars({"lidars.names": ["top"], "lidars.top.rate_hz": 10.0})) == 30.0


def test_rig_presets():
    six = load_rig({"rig.preset": "surround6"})
    assert [c.name for c in six] == ["front", "front_left", "front_right", "rear", "rear_left", "rear_right"]
    assert {(c.width, c.height) for c in six} == {(1920, 1080)}
    yaws = {c.name: round(math.degrees(c.rpy[2])) for c in six}
    assert yaws == {"front": 0, "front_left": 55, "front_right": -55, "rear": 180, "rear_left": 110,
                    "rear_right": -110}
    assert load_lidars({"rig.preset": "surround6"}) == []
    (top,) = load_lidars({"rig.preset": "surround6_lidar"})
    assert top.model == "HDL-64E" and len(top.elevations_deg) == 64
    # Parameters given with a preset override it.
    small = load_rig({"rig.preset": "driving_lidar", "cameras.front.width": 320})
    assert small[0].width == 320 and small[0].height == 360
    for name in RIG_PRESETS:
        check_sensors(load_rig({"rig.preset": name}), load_lidars({"rig.preset": name}))


def test_pose_after_integrates_a_constant_twist():
    start = np.eye(4)
    moved = pose_after(start, [10.0, 0.0, 0.0], [0.0, 0.0, 0.0], 0.1)
    assert np.allclose(moved[:3, 3], [1.0, 0.0, 0.0]) and np.allclose(moved[:3, :3], np.eye(3))
    turned = pose_after(start, [10.0, 0.0, 0.0], [0.0, 0.0, math.pi / 2], 1.0)
    assert np.allclose(turned[:3, :3] @ [1, 0, 0], [0, 1, 0])
    # A quarter circle of radius 20/pi: the chord along the mean heading (45 deg).
    assert np.allclose(turned[:3, 3], [10 * math.cos(math.pi / 4), 10 * math.sin(math.pi / 4), 0.0])


# -- sweeps of the street against the ray caster -------------------------------------------------

@pytest.fixture(scope="module")
def street_sim(street_world):
    from inspatio_ros.sim.rig import load_rig
    from inspatio_ros.sim.simulator import Simulator

    world = World.load(street_world)
    lidars = load_lidars({"lidars.names": ["top", "raw", "skew"],
                          "lidars.top.model": "VLP-16", "lidars.top.layout": "autoware",
                          "lidars.raw.model": "VLP-16", "lidars.skew.model": "VLP-16", "lidars.skew.deskew": True,
                          "lidars.skew.layout": "autoware"})
    return Simulator(world, load_rig({}), device="cpu", lidars=lidars), world


def truth_of(scene, sim, frame, origins_at):
    """Exact ranges along each returned point's direction from where its sector was swept."""
    p = frame.points
    xyz = np.stack([p["x"], p["y"], p["z"]], 1).astype(np.float64)
    dist = np.linalg.norm(xyz, axis=1)
    pose = origins_at(frame)
    dirs = xyz / dist[:, None]
    world_dirs = np.einsum("nij,nj->ni", pose[:, :3, :3], dirs)
    truth = np.empty(len(dist))
    for key in np.unique(pose[:, :3, 3], axis=0):
        sel = np.all(pose[:, :3, 3] == key, axis=1)
        truth[sel] = scene.ranges(key, world_dirs[sel], 0.0)
    return dist, truth


def relative_error(dist, truth):
    """|error| / truth, inf where the truth is sky (a return the world should not give)."""
    with np.errstate(invalid="ignore"):
        return np.where(np.isfinite(truth), np.abs(dist - truth) / truth, np.inf)


def test_sweep_ranges_match_the_ray_caster(street_sim, street):
    from inspatio_ros.synth.generate import load_scene

    sim, world = street_sim
    scene = load_scene(street)
    t = float(world.frame_time[3])
    base = sim.recorded_base_pose(t)
    frame = sim.render(0.0, t, base, cameras=[], lidars=[sim.lidars[0]])
    (lidar,) = frame.lidars
    assert lidar.points.dtype == AUTOWARE_DTYPE and lidar.fired == 16 * 1800
    assert lidar.returns > 2000                      # the built street holds the forward half-space
    at = sim.world_from_map @ lidar.map_from_link
    dist, truth = truth_of(scene, sim, lidar, lambda f: np.broadcast_to(at, (len(f.points), 4, 4)))
    rel = relative_error(dist, truth)
    assert np.median(rel) < 0.02, np.median(rel)
    assert np.mean(rel < 0.05) > 0.85
    p = lidar.points
    # Fields as the beams say: distance, the beam's elevation and azimuth, channel = ring.
    assert np.allclose(p["distance"], dist, rtol=1e-5)
    spec = sim.lidars[0]
    elev = np.degrees(np.arcsin(p["z"] / p["distance"]))
    assert np.allclose(elev, np.asarray(spec.elevations_deg)[p["channel"]], atol=1e-3)
    assert np.allclose(np.degrees(p["elevation"]), elev, atol=1e-3)
    az = np.mod(np.arctan2(p["y"], p["x"]), 2 * np.pi)
    assert np.allclose(np.cos(az - p["azimuth"]), 1.0, atol=1e-6)
    assert np.all(np.diff(p["time_stamp"].astype(np.int64)) >= 0) and p["time_stamp"].max() < 100_000_000
    assert p["intensity"].max() > 0 and np.all(p["return_type"] == 1)


def test_moving_ego_sweeps_from_where_the_sensor_is(street_sim, street):
    """At 10 m/s the sensor moves 1 m in a sweep: raw points are ranges from the sector's own pose
    (within 2 % of the ray caster there); deskewed ones are the same world points seen from the
    pose at the stamp."""
    from inspatio_ros.synth.generate import load_scene

    sim, world = street_sim
    scene = load_scene(street)
    t = float(world.frame_time[2])
    base = sim.recorded_base_pose(t)
    speed = (np.array([10.0, 0.0, 0.0]), np.zeros(3))
    raw, skew = sim.render(0.0, t, base, cameras=[], lidars=list(sim.lidars[1:]), velocity=speed).lidars
    spec = sim.lidars[1]
    sampler = sim.lidar_sampler("raw")
    sectors = sim.world_from_map @ sampler.sensor_poses(base, *speed)
    # Each point's column from its firing time, and the column's sector.
    column = np.round(raw.points["time"].astype(np.float64) * spec.columns * spec.rate_hz).astype(int)
    sector_of = sampler.column_sector[column]
    dist, truth = truth_of(scene, sim, raw, lambda f: sectors[sector_of])
    rel = relative_error(dist, truth)
    assert np.median(rel) < 0.02, np.median(rel)
    # The same noise-free beams: deskewing moves each point by where its sector's pose is.
    assert len(raw.points) == len(skew.points)
    raw_xyz = np.stack([raw.points[k] for k in "xyz"], 1)
    skew_xyz = np.stack([skew.points[k] for k in "xyz"], 1)
    shift = np.linalg.norm(skew_xyz - raw_xyz, axis=1)
    expected = 10.0 * sampler.sector_times[sector_of]
    assert np.allclose(shift, expected, atol=1e-3)
    # Autoware's distance / azimuth / elevation describe the point as published (the frame at the stamp).
    assert np.allclose(skew.points["distance"], np.linalg.norm(skew_xyz, axis=1), rtol=1e-5)
    assert np.allclose(np.tan(skew.points["elevation"]), skew_xyz[:, 2] / np.hypot(skew_xyz[:, 0], skew_xyz[:, 1]),
                       atol=1e-5)


def test_noise_and_dropout_are_seeded(street_world):
    from inspatio_ros.sim.simulator import Simulator

    world = World.load(street_world)

    def sweep(seed, noise, dropout):
        spec = one({"model": "VLP-16", "seed": seed, "range_noise": noise, "dropout": dropout})
        sim = Simulator(world, load_rig({}), device="cpu", lidars=[spec])
        base = sim.recorded_base_pose(float(world.frame_time[3]))
        return sim.render(0.0, float(world.frame_time[3]), base, cameras=[]).lidars[0].points

    clean = sweep(0, 0.0, 0.0)
    a, b, c = sweep(5, 0.05, 0.3), sweep(5, 0.05, 0.3), sweep(6, 0.05, 0.3)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert 0.6 < len(a) / len(clean) < 0.8                         # about 30 % dropped
    noisy = sweep(1, 0.05, 0.0)
    assert len(noisy) == pytest.approx(len(clean), rel=0.02)
    assert noisy.dtype == VELODYNE_DTYPE


def test_run_checks_the_rig_before_starting():
    """`inspatio-ros run`'s early check (before the transport and the world) refuses a bad rig."""
    from inspatio_ros.ros.run_cli import check_parameters

    with pytest.raises(InputError, match="did you mean preset 'surround6'"):
        check_parameters({"rig.preset": "surround7"})
    with pytest.raises(InputError, match="lidars.top.rate_hz"):
        check_parameters({"lidars.names": ["top"], "lidars.top.rate_hz": 20.0})      # the default camera: 30 Hz
    with pytest.raises(InputError, match="holds no beams"):
        check_parameters({"lidars.names": ["top"], "lidars.top.model": "custom", "lidars.top.columns": 10,
                          "lidars.top.elevations_deg": []})
    check_parameters({"rig.preset": "driving_lidar", "cameras.front.width": 320})
