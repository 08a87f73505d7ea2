"""SimSession in process, no ROS: modes, clock controls, lockstep, input checks, diagnostics.

Time comes from a fake wall clock, so every stamp and pose below is exact; frames are real renders
of the conftest street (compared with the Simulator's render at the pose the session should use).
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from inspatio_ros.camera import make_pose, rotation_from_rpy
from inspatio_ros.errors import InputError
from inspatio_ros.sim.rig import load_rig
from inspatio_ros.sim.session import SimSession
from inspatio_ros.sim.settings import (
    ClockSettings,
    InputSettings,
    ReplaySettings,
    SessionSettings,
    VehicleSettings,
)
from inspatio_ros.sim.simulator import Simulator
from inspatio_ros.sim.vehicle import BicycleModel, UnicycleModel
from inspatio_ros.world import World

RIG = {"cameras.names": ["front"], "cameras.front.width": 48, "cameras.front.height": 32,
       "cameras.front.hfov_deg": 80.0, "cameras.front.rate_hz": 10.0,
       "cameras.front.outputs": ["image", "depth", "points"]}
# Long enough that the vehicle models never brake for want of a command inside a test.
VEHICLE = VehicleSettings(command_timeout=100.0)


class FakeWall:
    def __init__(self):
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture(scope="module")
def world(street_world):
    return World.load(street_world)


@pytest.fixture(scope="module")
def reference(world):
    """The renderer alone, to check the session renders the right pose at the right moment."""
    return Simulator(world, load_rig(RIG), device="cpu")


def make(world, wall=None, **settings):
    wall = wall or FakeWall()
    s = SessionSettings(device="cpu", **settings)
    return SimSession(world, load_rig(RIG), s, wall_clock=wall), wall


def assert_renders(frame, reference, recording_time, map_from_base):
    """``frame`` shows the ego at ``map_from_base`` at ``recording_time``, pixel for pixel."""
    np.testing.assert_allclose(frame.map_from_base, map_from_base, atol=1e-9)
    assert frame.recording_time == pytest.approx(recording_time, abs=1e-9)
    want = reference.render(frame.stamp, recording_time, map_from_base).cameras[0]
    got = frame.cameras[0]
    np.testing.assert_array_equal(got.rgb, want.rgb)
    np.testing.assert_array_equal(got.depth, want.depth)
    assert np.isfinite(got.depth).mean() > 0.5 and got.rgb.std() > 5     # a real view, not a blank
    np.testing.assert_allclose(got.map_from_optical, map_from_base @ got.spec.base_from_optical(), atol=1e-12)


def test_replay_follows_the_recorded_path_at_the_camera_rate(world, reference):
    session, wall = make(world, replay=ReplaySettings(lateral_offset=1.0))
    start = session.path.start
    frame = session.tick()
    assert frame.stamp == 0.0 and frame.recording_time == start
    wall.t += 0.05
    assert session.tick() is None                             # a 10 Hz camera is not due yet
    wall.t += 0.05
    frame = session.tick()
    assert frame.stamp == pytest.approx(0.1)
    recorded = session.sim.recorded_base_pose(start + 0.1)
    expected = recorded.copy()
    expected[:3, 3] += 1.0 * recorded[:3, 1]                  # lateral_offset: 1 m along base_link +y
    assert_renders(frame, reference, start + 0.1, expected)
    # Odometry's twist: the finite difference of the path over the tick, in base_link.
    prev = session.sim.recorded_base_pose(start + 0.05)
    prev[:3, 3] += prev[:3, 1]
    expected_v = expected[:3, :3].T @ (expected[:3, 3] - prev[:3, 3]) / 0.05
    np.testing.assert_allclose(frame.linear_velocity, expected_v, atol=1e-9)
    assert np.linalg.norm(frame.linear_velocity) > 1.0       # the recording drives forward


def test_pose_mode_renders_the_pose_it_was_given(world, reference):
    session, wall = make(world, mode="pose")
    start = session.sim.recorded_base_pose(session.path.start)
    np.testing.assert_allclose(session.map_from_base, start)   # sits on the recorded start pose
    target = start @ make_pose(rotation_from_rpy(0, 0, 0.2), [3.0, 0.5, 0.0])
    assert session.set_pose(target, stamp=0.0)
    frame = session.tick()
    assert frame.input_received is not None                    # the pose -> image latency starts there
    assert_renders(frame, reference, session.path.start, target)
    wall.t += 0.1
    assert session.tick().input_received is None               # no new pose since


def test_a_pose_in_another_mode_is_ignored(world):
    session, _ = make(world)
    start = session.map_from_base
    moved = start.copy()
    moved[:3, 3] += 1.0
    assert session.set_pose(moved) is False
    np.testing.assert_allclose(session.map_from_base, start)
    assert session.command_twist(1.0, 0.0) is False
    assert session.diagnostics().dropped_inputs == 0          # ignored, not rejected


def test_input_checks_reject_nan_and_non_rigid_poses(world):
    session, _ = make(world, mode="pose")
    start = session.map_from_base
    nan = start.copy()
    nan[0, 3] = math.nan
    with pytest.raises(InputError, match="pose: pose holds NaN"):
        session.set_pose(nan)
    sheared = start.copy()
    sheared[0, 1] += 0.5
    with pytest.raises(InputError, match="odometry: rotation is not orthonormal"):
        session.set_pose(sheared, source="odometry")
    with pytest.raises(InputError, match="stamped nan"):
        session.set_pose(start, stamp=math.nan)
    np.testing.assert_allclose(session.map_from_base, start)  # the last good state
    assert session.diagnostics().dropped_inputs == 3


def test_jump_limits_and_stale_poses(world):
    session, wall = make(world, mode="pose", vehicle=VehicleSettings(max_speed=10.0),
                         input=InputSettings(max_jump=2.0, stale_after=1.0))
    start = session.map_from_base

    def ahead(m):
        p = start.copy()
        p[:3, 3] += m * start[:3, 0]
        return p

    with pytest.raises(InputError, match=r"pose: pose jumps 500\.000 m"):
        session.set_pose(ahead(500.0))
    assert session.set_pose(ahead(1.9))                         # within max_jump, unstamped
    np.testing.assert_allclose(session.map_from_base, ahead(1.9))
    with pytest.raises(InputError, match=r"jumps 2\.200 m"):  # unstamped: max_jump alone
        session.set_pose(ahead(4.1))
    wall.t += 3.0
    session.tick()                                             # sim time 3.0
    with pytest.raises(InputError, match=r"the pose is 2\.00 s old"):
        session.set_pose(ahead(2.0), stamp=1.0)
    np.testing.assert_allclose(session.map_from_base, ahead(1.9))
    assert session.diagnostics().dropped_inputs == 3


def test_twist_drives_the_unicycle(world):
    session, wall = make(world, mode="control", vehicle=VEHICLE)
    start = session.ego
    session.tick()
    assert session.command_twist(2.0, 0.0)
    wall.t += 1.0
    frame = session.tick()
    # From rest to 2 m/s at max_accel 3 m/s^2 (2/3 s), then 1/3 s at 2 m/s: 2/3 + 2/3 m.
    moved = frame.map_from_base[:3, 3] - start.pose_matrix()[:3, 3]
    heading = np.array([math.cos(start.yaw), math.sin(start.yaw), 0.0])    # the models drive level
    assert moved @ heading == pytest.approx(4.0 / 3.0, abs=1e-9)
    np.testing.assert_allclose(frame.linear_velocity, [2.0, 0.0, 0.0])
    model = UnicycleModel(max_speed=30.0, max_yaw_rate=1.5, max_accel=3.0, timeout_s=100.0)
    model.command(2.0, 0.0)
    np.testing.assert_allclose(frame.map_from_base, model.step(start, 1.0).pose_matrix(), atol=1e-12)
    with pytest.raises(InputError, match=r"linear\.x = 100\.0 m/s is beyond 2 x max_speed"):
        session.command_twist(100.0, 0.0)


def test_ackermann_drives_the_bicycle(world):
    session, wall = make(world, mode="control", vehicle=VEHICLE)
    start = session.ego
    session.tick()
    assert session.command_ackermann(5.0, 0.2)
    wall.t += 3.0
    frame = session.tick()
    ego = session.ego
    assert (ego.speed, ego.steering) == (pytest.approx(5.0), pytest.approx(0.2))
    assert frame.angular_velocity[2] == pytest.approx(5.0 * math.tan(0.2) / 2.7)
    model = BicycleModel(wheelbase=2.7, max_steer=0.6, max_steer_rate=1.0, max_accel=3.0, max_decel=8.0,
                         max_speed=30.0, timeout_s=100.0)
    model.command(5.0, 0.2)
    np.testing.assert_allclose(frame.map_from_base, model.step(start, 3.0).pose_matrix(), atol=1e-12)
    with pytest.raises(InputError, match="steering_angle = 2.0 rad is not below pi/2"):
        session.command_ackermann(5.0, 2.0)
    assert session.diagnostics().dropped_inputs == 1


def test_pause_seek_rate_reset(world, reference):
    session, wall = make(world, clock=ClockSettings(end_mode="hold"))
    start = session.path.start
    session.tick()
    session.pause()
    wall.t += 1.0
    assert session.tick() is None and session.sim_time == 0.0 and session.paused
    assert session.seconds_until_due() == math.inf
    session.seek(1.0)
    assert session.elapsed == pytest.approx(1.0) and session.sim_time == 0.0
    session.set_rate(2.0)
    session.resume()
    wall.t += 0.2                                              # 0.4 s of sim time at rate 2
    frame = session.tick()
    assert frame.stamp == pytest.approx(0.4) and session.rate == 2.0
    assert_renders(frame, reference, start + 1.4, session.sim.recorded_base_pose(start + 1.4))
    with pytest.raises(InputError, match="rate 50.0 is out of range"):
        session.set_rate(50.0)
    with pytest.raises(InputError, match="outside the recording"):
        session.seek(100.0)
    assert session.rate == 2.0 and session.diagnostics().dropped_inputs == 2
    session.reset()
    assert session.elapsed == 0.0 and session.sim_time == pytest.approx(0.4)   # sim time runs on
    np.testing.assert_allclose(session.map_from_base, session.sim.recorded_base_pose(start))


def test_lockstep_steps_are_exact_and_repeatable(world):
    runs = []
    for _ in range(2):
        session, wall = make(world, lockstep=True)
        frames = []
        for _ in range(3):
            wall.t += 5.0                                      # the wall clock does not matter
            frame = session.step()
            frames.append((frame.stamp, frame.recording_time - session.path.start, frame.cameras[0].rgb.copy(),
                           frame.cameras[0].depth.copy()))
        runs.append(frames)
    assert [f[0] for f in runs[0]] == pytest.approx([0.1, 0.2, 0.3])
    assert [f[1] for f in runs[0]] == pytest.approx([0.1, 0.2, 0.3])
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a[2], b[2])
        np.testing.assert_array_equal(a[3], b[3])
    assert not np.array_equal(runs[0][0][2], runs[0][2][2])    # the view moves along the recording


def test_lockstep_seek_reset_pause_never_add_wall_time(world):
    # The clock's seek/reset/pause first account for the wall time up to the call; in lockstep
    # that wall time is not sim time (it used to jump the stamps by the seconds between steps).
    session, wall = make(world, lockstep=True)
    session.step()
    for control in (lambda: session.seek(0.5), session.reset, session.pause, session.resume,
                    lambda: session.set_rate(2.0)):
        wall.t += 7.0
        control()
        assert session.sim_time == pytest.approx(0.1), control
    assert session.step().stamp == pytest.approx(0.2)


def test_lockstep_pose_renders_once_per_pose_at_its_stamp(world, reference):
    session, _ = make(world, mode="pose", lockstep=True)
    assert session.step() is None                              # no pose yet
    start = session.map_from_base
    target = start.copy()
    target[:3, 3] += 2.0 * start[:3, 0]
    assert session.set_pose(target, stamp=0.4)
    frame = session.step()
    assert frame.stamp == 0.4 and session.sim_time == pytest.approx(0.4)
    assert_renders(frame, reference, session.path.start + 0.4, target)
    assert session.step() is None                              # one render per pose


def test_follows_an_external_clock(world):
    session, _ = make(world, external_clock=True)
    assert session.tick() is None and session.waiting_for_clock
    session.follow_clock(100.0)
    frame = session.tick()
    assert frame.stamp == 100.0 and session.sim_time == 0.0
    session.follow_clock(100.25)
    frame = session.tick()
    assert frame.stamp == pytest.approx(100.25) and session.sim_time == pytest.approx(0.25)
    assert frame.recording_time == pytest.approx(session.path.start + 0.25)
    with pytest.raises(InputError, match="not finite"):
        session.follow_clock(math.inf)


def test_diagnostics_report_rate_coverage_and_drops(world):
    session, wall = make(world)
    for _ in range(12):
        session.tick()
        wall.t += 0.1
    d = session.diagnostics()
    assert d.frames_rendered == 12 and d.target_hz == 10.0 and d.mode == "replay"
    assert d.achieved_hz == pytest.approx(10.0)
    assert not d.slow and d.message == "ok"
    assert 0.5 < d.coverage["front"] <= 1.0 and d.render_ms_mean > 0
    wall.t += 5.0                                               # 5 s without a render: slow
    d = session.diagnostics()
    assert d.achieved_hz == 0.0 and d.slow and d.message == "rendering 0.0 Hz of 10.0 Hz"


def test_settings_are_checked_when_made():
    with pytest.raises(InputError, match=r"SessionSettings.mode = 'fly' is out of range: give replay \| pose"):
        SessionSettings(mode="fly")
    with pytest.raises(InputError, match=r"VehicleSettings.max_speed = -1.0 is out of range: give > 0 m/s"):
        VehicleSettings(max_speed=-1.0)
    with pytest.raises(InputError, match="ClockSettings.rate = 'fast' has the wrong type"):
        ClockSettings(rate="fast")
    assert ClockSettings(rate=2).rate == 2.0 and isinstance(ClockSettings(rate=2).rate, float)


# -- pose jump limits: the interval since the previous accepted pose (issue 21) ----------------

WALL_STAMP = 1796390000.0        # a PoseStamped stamped with ordinary wall-clock time (Dec 2026)


def ahead_of(pose, metres):
    out = pose.copy()
    out[:3, 3] += metres * pose[:3, 0]
    return out


def test_pose_interval_rule():
    from inspatio_ros.sim.session import pose_interval

    assert pose_interval(WALL_STAMP + 0.1, WALL_STAMP, 5.0, 4.9) == (pytest.approx(0.1), True)   # one wall clock
    assert pose_interval(3.1, 3.0, 5.0, 4.9) == (pytest.approx(0.1), True)                   # one sim clock
    assert pose_interval(0.3, 0.2, 1.0, 1.0) == (pytest.approx(0.1), True)     # arrived together: stamps
    assert pose_interval(WALL_STAMP, 0.2, 1.1, 1.0) == (pytest.approx(0.1), False)   # two clocks: arrivals
    assert pose_interval(0.2, WALL_STAMP, 1.1, 1.0) == (pytest.approx(0.1), False)   # backwards: arrivals
    assert pose_interval(0.0, 3.0, 2.0, 1.5) == (0.5, False)                   # 0 = now: arrivals
    assert pose_interval(3.0, 0.0, 2.0, 1.5) == (0.5, False)                   # the start pose: unstamped
    assert pose_interval(2.7, 1.5, 2.0, 1.9) == (pytest.approx(0.1), False)                   # 1.2 s of stamps in 0.1 s


def test_a_wall_clock_stamped_far_pose_is_rejected(world):
    session, wall = make(world, mode="pose")
    start = session.map_from_base
    wall.t += 1.0
    session.tick()                                             # sim time 1.0
    assert session.set_pose(ahead_of(start, 1.0), stamp=1.0)   # sim-stamped, 1 m in 1 s
    wall.t += 0.1
    session.tick()
    with pytest.raises(InputError) as err:
        session.set_pose(ahead_of(start, 1000.0), stamp=WALL_STAMP)
    text = str(err.value)
    # The allowed distance is what 0.1 s of arrivals allow (5 + 30 * 0.1 m), not 30 * 1.8e9 m.
    assert text.startswith("pose: pose jumps 999.000 m in 0.1 s (between arrivals: its stamp 1796390000.000 s and "
                           "the previous pose's 1.000 s are not of one clock), more than input.max_jump + "
                           "vehicle.max_speed * dt = 5 + 30 * 0.1 = 8.000 m: stamp every pose with one clock "
                           "(the node's /clock: use_sim_time:=true; 0 = now)"), text
    assert "raise input.max_jump" in text and "e+09 s" not in text
    np.testing.assert_allclose(session.map_from_base, ahead_of(start, 1.0))

    # The first pose after the start too: the start pose is unstamped, 0.5 s of arrivals allow 20 m.
    fresh, wall = make(world, mode="pose")
    wall.t += 0.5
    fresh.tick()
    with pytest.raises(InputError, match=r"odometry: pose jumps 1000\.000 m in 0\.5 s \(between arrivals: the "
                                         r"previous pose was unstamped\).* = 20\.000 m: publish a continuous pose"):
        fresh.set_pose(ahead_of(start, 1000.0), stamp=WALL_STAMP, source="odometry")
    assert fresh.diagnostics().dropped_inputs == 1


@pytest.mark.parametrize("clock", ["wall", "sim"])
def test_reasonable_motion_is_accepted_on_either_clock(world, clock):
    """25 m/s in poses 0.1 s apart, stamped with a wall clock or the session's: accepted with
    input.max_jump 0.5 (0.5 + 30 * 0.1 = 3.5 m per pose); 40 m/s is not."""
    session, wall = make(world, mode="pose", input=InputSettings(max_jump=0.5, stale_after=0.0))
    start = session.map_from_base
    base = WALL_STAMP if clock == "wall" else 0.0
    for k in range(1, 6):
        wall.t += 0.1
        session.tick()
        assert session.set_pose(ahead_of(start, 2.5 * k), stamp=base + session.sim_time)
    np.testing.assert_allclose(session.map_from_base, ahead_of(start, 12.5))
    # Two poses that arrive together still move by their stamps' interval (0.1 s), no more.
    assert session.set_pose(ahead_of(start, 15.0), stamp=base + session.sim_time + 0.1)
    with pytest.raises(InputError, match=r"jumps 4\.000 m in 0\.1 s \(between the stamps\)"):
        session.set_pose(ahead_of(start, 19.0), stamp=base + session.sim_time + 0.2)
    # The stamps, not the arrivals, are what counts when they agree: a pose 0.1 s of stamps after
    # the previous one may not use the 3 s it took to arrive.
    wall.t += 3.0
    session.tick()
    with pytest.raises(InputError, match=r"jumps 10\.000 m in 0\.1 s \(between the stamps\)"):
        session.set_pose(ahead_of(start, 25.0), stamp=base + session.sim_time - 2.8)


def test_lockstep_pose_stamps_are_the_clock_and_reset_restarts_the_limit(world):
    session, _ = make(world, mode="pose", lockstep=True)
    start = session.map_from_base
    assert session.set_pose(start, stamp=0.2)
    session.step()
    # 0.8 s of stamps later (the clock moves there to render it): 5 + 30 * 0.8 = 29 m allowed.
    assert session.set_pose(ahead_of(start, 20.0), stamp=1.0)
    assert session.step().stamp == 1.0
    with pytest.raises(InputError, match=r"jumps 30\.000 m in 0\.1 s"):
        session.set_pose(ahead_of(start, 50.0), stamp=1.1)
    session.reset()                                            # back on the start pose, unstamped
    with pytest.raises(InputError, match=r"jumps 10\.000 m in 0 s \(between arrivals: the previous pose was "
                                         r"unstamped\)"):
        session.set_pose(ahead_of(start, 10.0), stamp=1.0)    # arrives now: max_jump only
    assert session.set_pose(ahead_of(start, 10.0), stamp=1.5)  # 0.5 s after the reset: 20 m


def test_the_session_imports_nothing_of_ros():
    """SimSession is the ROS-free core: importing it loads no ROS adapter, CLI or DDS module (run in
    a fresh interpreter: this test process has long imported them)."""
    import subprocess
    import sys

    code = ("import sys, inspatio_ros.sim.session, inspatio_ros.sim.settings; "
            "print([m for m in sys.modules if m.startswith(('inspatio_ros.ros', 'inspatio_ros.cli', 'rclpy', "
            "'cyclonedds'))])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_reset_to_a_moment_with_offsets_and_advance_without_rendering(world, reference):
    """reset(elapsed, lateral_offset, heading_offset) places the ego; advance() drives it without a
    render; sessions made on one Simulator share its renderer and still render what their own would."""
    session = SimSession(world, None, SessionSettings(device="cpu", mode="control", vehicle=VEHICLE),
                         wall_clock=FakeWall(), simulator=reference)
    assert session.sim is reference and session.rig == reference.rig
    start = session.path.start
    session.reset(elapsed=1.0, lateral_offset=0.5, heading_offset=0.1)
    recorded = session.sim.recorded_base_pose(start + 1.0)
    pose = session.map_from_base
    assert session.elapsed == pytest.approx(1.0)
    np.testing.assert_allclose(pose[:3, 3], recorded[:3, 3] + 0.5 * recorded[:3, 1], atol=1e-12)
    yaw = lambda m: math.atan2(m[1, 0], m[0, 0])   # noqa: E731
    assert yaw(pose) - yaw(recorded) == pytest.approx(0.1, abs=1e-9)
    assert session.ego.speed == 0.0 and session.vehicle is None
    session.command_ackermann(4.0, 0.0)
    before = session.stats.frames_rendered
    sim_time = session.advance()
    assert sim_time == pytest.approx(0.1) and session.stats.frames_rendered == before    # 10 Hz rig, no render
    assert session.ego.speed > 0 and session.elapsed == pytest.approx(1.1)
    frame = session.step()
    assert_renders(frame, reference, start + 1.2, session.map_from_base)
    with pytest.raises(InputError, match="outside the recording"):
        session.reset(elapsed=1e6)
    with pytest.raises(InputError, match="heading_offset"):
        session.reset(heading_offset=float("nan"))
    with pytest.raises(ValueError, match="same world"):
        SimSession(object(), None, simulator=reference)
