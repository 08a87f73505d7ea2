"""SimClock: recording time confined to the recording, monotonic sim time, deterministic under a fake clock."""
from __future__ import annotations

import math

import pytest

from inspatio_ros.errors import InputError
from inspatio_ros.sim.clock import SimClock


class FakeWall:
    """A wall clock the test moves by hand."""

    def __init__(self, t: float = 1000.0):
        self.t = t
        self.calls = 0

    def __call__(self) -> float:
        self.calls += 1
        return self.t

    def advance(self, dt: float) -> None:
        self.t += dt


def _clock(start=10.0, end=14.0, **kw):
    wall = FakeWall()
    return SimClock(start, end, wall_clock=wall, **kw), wall


def _tick(clock, wall, dt):
    wall.advance(dt)
    return clock.update()


def test_starts_at_recording_start_and_sim_zero():
    clock, _ = _clock()
    assert clock.sim_time == 0.0
    assert clock.recording_time == 10.0
    assert clock.direction == 1 and not clock.paused and not clock.at_end
    assert clock.duration == 4.0


def test_update_follows_wall_clock_and_returns_dt():
    clock, wall = _clock()
    assert _tick(clock, wall, 1.25) == pytest.approx(1.25)
    assert clock.sim_time == pytest.approx(1.25)
    assert clock.recording_time == pytest.approx(11.25)
    assert clock.update() == 0.0            # no wall time passed: nothing moves
    assert clock.sim_time == pytest.approx(1.25)


def test_properties_do_not_read_the_wall_clock():
    clock, wall = _clock()
    calls = wall.calls
    wall.advance(5.0)
    _ = (clock.sim_time, clock.recording_time, clock.direction, clock.at_end, clock.paused)
    assert wall.calls == calls
    assert clock.sim_time == 0.0


def test_loop_wraps_to_start_and_sim_keeps_counting():
    clock, wall = _clock()
    _tick(clock, wall, 3.5)
    assert clock.recording_time == pytest.approx(13.5)
    _tick(clock, wall, 1.0)                 # 4.5 s into a 4 s recording
    assert clock.recording_time == pytest.approx(10.5)
    assert clock.sim_time == pytest.approx(4.5)
    _tick(clock, wall, 8.0)                 # two more loops
    assert clock.recording_time == pytest.approx(10.5)
    assert clock.sim_time == pytest.approx(12.5)
    clock.step(3.5)                          # exactly at the end: shows the start
    assert clock.recording_time == pytest.approx(10.0)
    assert not clock.at_end


def test_ping_pong_reverses_at_both_ends():
    clock, wall = _clock(end_mode="ping_pong")
    _tick(clock, wall, 3.0)
    assert (clock.recording_time, clock.direction) == (pytest.approx(13.0), 1)
    _tick(clock, wall, 2.0)                 # 1 s past the end: 1 s back from it
    assert (clock.recording_time, clock.direction) == (pytest.approx(13.0), -1)
    _tick(clock, wall, 2.5)
    assert (clock.recording_time, clock.direction) == (pytest.approx(10.5), -1)
    _tick(clock, wall, 1.0)                 # 0.5 s past the start: forwards again
    assert (clock.recording_time, clock.direction) == (pytest.approx(10.5), 1)
    assert clock.sim_time == pytest.approx(8.5)
    _tick(clock, wall, 8.0)                 # one full cycle later: same place, same direction
    assert (clock.recording_time, clock.direction) == (pytest.approx(10.5), 1)


def test_ping_pong_direction_at_the_end_is_backwards():
    clock, _ = _clock(end_mode="ping_pong")
    clock.step(4.0)
    assert clock.recording_time == pytest.approx(14.0) and clock.direction == -1


def test_hold_stays_at_end_while_sim_time_runs():
    clock, wall = _clock(end_mode="hold")
    _tick(clock, wall, 3.9)
    assert not clock.at_end
    _tick(clock, wall, 0.2)
    assert clock.at_end and clock.recording_time == 14.0
    _tick(clock, wall, 100.0)
    assert clock.at_end and clock.recording_time == 14.0
    assert clock.sim_time == pytest.approx(104.1)
    clock.seek(12.0)                         # seeking back leaves the end
    assert not clock.at_end and clock.recording_time == 12.0


def test_at_end_only_in_hold_mode():
    for mode in ("loop", "ping_pong"):
        clock, _ = _clock(end_mode=mode)
        clock.step(4.0)
        assert not clock.at_end


def test_sim_time_is_monotonic_under_seek_loop_reset_and_ping_pong():
    for mode in ("loop", "ping_pong", "hold"):
        clock, wall = _clock(end_mode=mode)
        last = clock.sim_time
        for i in range(200):
            _tick(clock, wall, 0.37)
            if i % 7 == 0:
                clock.seek(10.0 + (i % 5))
            if i % 11 == 0:
                clock.reset()
            if i % 13 == 0:
                clock.step(0.5)
            assert clock.sim_time >= last
            assert 10.0 <= clock.recording_time <= 14.0
            last = clock.sim_time
        assert clock.sim_time == pytest.approx(200 * 0.37 + 0.5 * len(range(0, 200, 13)))


def test_seek_and_reset_do_not_change_sim_time():
    clock, wall = _clock(end_mode="ping_pong")
    _tick(clock, wall, 5.0)
    assert clock.direction == -1
    clock.seek(11.0)
    assert clock.recording_time == 11.0 and clock.sim_time == pytest.approx(5.0)
    _tick(clock, wall, 0.5)                  # direction kept by seek: still backwards
    assert clock.recording_time == pytest.approx(10.5)
    clock.reset()
    assert clock.recording_time == 10.0 and clock.direction == 1
    assert clock.sim_time == pytest.approx(5.5)


def test_seek_accounts_for_wall_time_before_it():
    clock, wall = _clock()
    wall.advance(1.0)                        # not yet read by update()
    clock.seek(12.0)
    assert clock.sim_time == pytest.approx(1.0)
    assert clock.update() == 0.0             # the second before the seek is not added again
    assert clock.recording_time == 12.0


def test_rate_scales_both_times_and_applies_from_the_change():
    clock, wall = _clock(start=0.0, end=100.0)
    _tick(clock, wall, 1.0)
    wall.advance(1.0)                        # this second still runs at rate 1
    clock.set_rate(2.0)
    assert clock.rate == 2.0
    assert clock.sim_time == pytest.approx(2.0)
    assert _tick(clock, wall, 1.0) == pytest.approx(2.0)
    assert clock.sim_time == pytest.approx(4.0) and clock.recording_time == pytest.approx(4.0)
    clock.set_rate(0.1)
    _tick(clock, wall, 10.0)
    assert clock.sim_time == pytest.approx(5.0)
    clock.set_rate(10)                       # integers are fine
    _tick(clock, wall, 1.0)
    assert clock.sim_time == pytest.approx(15.0)


@pytest.mark.parametrize("bad", [0.0, 0.09, 10.5, -1.0, math.nan, math.inf, "2", True, None])
def test_bad_rate_is_input_error(bad):
    clock, _ = _clock()
    with pytest.raises(InputError, match="rate"):
        clock.set_rate(bad)
    assert clock.rate == 1.0
    with pytest.raises(InputError, match="rate"):
        SimClock(0.0, 1.0, rate=bad, wall_clock=FakeWall())


def test_pause_and_resume_skip_the_paused_wall_time():
    clock, wall = _clock(start=0.0, end=100.0)
    _tick(clock, wall, 1.0)
    wall.advance(0.5)                        # counted: pause reads the wall first
    clock.pause()
    assert clock.paused and clock.sim_time == pytest.approx(1.5)
    assert _tick(clock, wall, 10.0) == 0.0
    assert clock.sim_time == pytest.approx(1.5) and clock.recording_time == pytest.approx(1.5)
    wall.advance(3.0)
    clock.resume()
    assert not clock.paused
    assert _tick(clock, wall, 1.0) == pytest.approx(1.0)
    assert clock.sim_time == pytest.approx(2.5)
    clock.resume()                           # resuming a running clock changes nothing
    assert clock.sim_time == pytest.approx(2.5)


def test_step_is_exact_and_ignores_pause_and_wall_clock():
    clock, wall = _clock(start=0.0, end=1.0)
    clock.pause()
    for _ in range(30):
        wall.advance(123.0)
        assert clock.step(0.05) == 0.05
        clock.update()                       # paused: the wall clock adds nothing
    assert clock.sim_time == pytest.approx(1.5)
    assert clock.recording_time == pytest.approx(0.5)      # looped once
    assert clock.step(0) == 0.0


@pytest.mark.parametrize("bad", [-0.1, math.nan, math.inf, "0.1"])
def test_bad_step_is_input_error(bad):
    clock, _ = _clock()
    with pytest.raises(InputError, match="step"):
        clock.step(bad)
    assert clock.sim_time == 0.0


@pytest.mark.parametrize("bad", [9.99, 14.01, math.nan, -math.inf, None])
def test_seek_outside_recording_is_input_error(bad):
    clock, _ = _clock()
    with pytest.raises(InputError, match="seek"):
        clock.seek(bad)
    assert clock.recording_time == 10.0


def test_seek_to_both_ends_is_allowed():
    clock, _ = _clock(end_mode="hold")
    clock.seek(14.0)
    assert clock.at_end
    clock.seek(10.0)
    assert clock.recording_time == 10.0


def test_bad_construction_is_input_error():
    wall = FakeWall()
    with pytest.raises(InputError, match="end_mode"):
        SimClock(0.0, 1.0, end_mode="bounce", wall_clock=wall)
    with pytest.raises(InputError, match="before it starts"):
        SimClock(2.0, 1.0, wall_clock=wall)
    with pytest.raises(InputError, match="span"):
        SimClock(math.nan, 1.0, wall_clock=wall)


def test_single_frame_recording():
    for mode in ("loop", "ping_pong", "hold"):
        clock, wall = _clock(start=5.0, end=5.0, end_mode=mode)
        _tick(clock, wall, 2.0)
        assert clock.recording_time == 5.0 and clock.sim_time == pytest.approx(2.0)
        assert clock.at_end == (mode == "hold")


def test_wall_clock_going_backwards_advances_nothing():
    clock, wall = _clock()
    _tick(clock, wall, 1.0)
    assert _tick(clock, wall, -0.5) == 0.0
    assert clock.sim_time == pytest.approx(1.0)
    assert _tick(clock, wall, 0.75) == pytest.approx(0.75)


def test_same_wall_readings_give_same_times():
    runs = []
    for _ in range(2):
        clock, wall = _clock(end_mode="ping_pong", rate=1.7)
        out = []
        for dt in (0.1, 0.33, 2.0, 5.0, 0.01):
            _tick(clock, wall, dt)
            out.append((clock.sim_time, clock.recording_time, clock.direction))
        runs.append(out)
    assert runs[0] == runs[1]
