"""The simulator's clock: which moment of the recording is shown, and what time it is.

Two notions of time, both in seconds:

``recording_time``
    The moment of the recorded video that is shown. It always lies in ``[start, end]`` of the
    recording. It moves forward at ``rate`` times wall-clock speed while playing, and what happens
    at ``end`` is ``end_mode``:

    * ``"loop"``: jump back to ``start`` and play on (reaching ``end`` exactly shows ``start``);
    * ``"ping_pong"``: play backwards to ``start``, then forwards again, and so on; ``direction``
      is +1 while playing forwards and -1 while playing backwards (-1 from the instant ``end`` is
      reached);
    * ``"hold"``: stay at ``end`` (``at_end`` becomes true) while ``sim_time`` keeps running, so
      the world stays frozen at its last moment and the ego can still drive around in it.

    ``seek(t)`` jumps to any recording time, ``reset()`` back to ``start``.

``sim_time``
    Monotonic seconds since the clock was made: published on ``/clock`` and used as every
    message's ``header.stamp``. It advances by exactly as much as the recording plays (``rate``
    times the wall-clock time while playing, ``dt`` for ``step(dt)``, nothing while paused) and
    never goes backwards: not when the recording loops, ping-pongs, is seeked or reset.

Time moves only in :meth:`SimClock.update` (by the wall-clock time since the previous reading,
times ``rate``, unless paused) and :meth:`SimClock.step` (by exactly ``dt``, paused or not: the
lockstep mode, where the node renders once per step request). The properties read the state as
of the last of these calls; they never read the wall clock. The wall clock is an injected
callable (``time.monotonic`` by default), so everything is deterministic under a fake clock.
``pause``, ``resume``, ``set_rate``, ``seek`` and ``reset`` first account for the wall time up to
the call (at the old rate), so a change takes effect at the moment it is made. A wall clock that
goes backwards advances nothing.

Typical use::

    clock = SimClock(world_start, world_end, rate=1.0, end_mode="loop")
    while running:                      # real-time mode
        dt = clock.update()             # sim seconds since the last tick
        state = vehicle.step(state, dt)
        render(clock.recording_time, stamp=clock.sim_time)

    clock.pause()                       # lockstep mode: time moves only on request
    clock.step(0.05)
"""
from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable

from ..errors import InputError

END_MODES = ("loop", "ping_pong", "hold")
MIN_RATE = 0.1
MAX_RATE = 10.0


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


class SimClock:
    """Playback of a recording spanning ``[start, end]`` seconds, plus a monotonic sim time."""

    def __init__(self, start: float, end: float, rate: float = 1.0, end_mode: str = "loop",
                 wall_clock: Callable[[], float] = time.monotonic, lockstep: bool = False):
        """``lockstep``: time moves only by :meth:`step`; :meth:`update` (and the wall time that
        pause / resume / set_rate / seek / reset account for) never moves it."""
        if not (_is_number(start) and _is_number(end) and math.isfinite(start) and math.isfinite(end)):
            raise InputError(f"recording span start={start!r} end={end!r} is not a pair of finite numbers",
                             "give the recording's first and last timestamps in seconds")
        if end < start:
            raise InputError(f"recording span ends ({end}) before it starts ({start})",
                             "give start <= end")
        if end_mode not in END_MODES:
            raise InputError(f"end_mode {end_mode!r} is not known", f"give one of {', '.join(END_MODES)}")
        self._start = float(start)
        self._end = float(end)
        self._end_mode = end_mode
        self._rate = self._checked_rate(rate)
        self._wall_clock = wall_clock
        self._last_wall = float(wall_clock())
        self._sim = 0.0
        self._offset = 0.0        # recording_time - start, in [0, duration]
        self._direction = 1
        self._paused = False
        self._lockstep = bool(lockstep)

    # -- read-only state -------------------------------------------------------------------

    @property
    def start(self) -> float:
        return self._start

    @property
    def end(self) -> float:
        return self._end

    @property
    def duration(self) -> float:
        return self._end - self._start

    @property
    def end_mode(self) -> str:
        return self._end_mode

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def sim_time(self) -> float:
        """Seconds of simulation since the clock was made (monotonic; the ``/clock`` value)."""
        return self._sim

    @property
    def recording_time(self) -> float:
        """The moment of the recording shown, in ``[start, end]``."""
        return min(self._start + self._offset, self._end)

    @property
    def direction(self) -> int:
        """+1 while the recording plays forwards, -1 while it plays backwards (ping_pong)."""
        return self._direction

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def at_end(self) -> bool:
        """True in hold mode once the recording has reached its end."""
        return self._end_mode == "hold" and self._offset >= self.duration

    def __repr__(self) -> str:
        return (f"SimClock(sim_time={self._sim:.6f}, recording_time={self.recording_time:.6f}, "
                f"span=[{self._start}, {self._end}], rate={self._rate}, end_mode={self._end_mode!r}, "
                f"direction={self._direction:+d}, paused={self._paused})")

    # -- moving time -----------------------------------------------------------------------

    def update(self) -> float:
        """Advance by the wall-clock time since the last reading times ``rate`` (0 while paused).

        Returns the sim seconds advanced, e.g. to integrate the ego motion over.
        """
        wall = float(self._wall_clock())
        wall_dt = max(0.0, wall - self._last_wall) if math.isfinite(wall) else 0.0
        if math.isfinite(wall):
            self._last_wall = wall
        # In lockstep the wall time between steps is not sim time: a seek or reset there used to
        # add it (every second spent between steps moved the stamps).
        if self._paused or self._lockstep or wall_dt == 0.0:
            return 0.0
        dt = wall_dt * self._rate
        self._advance(dt)
        return dt

    def step(self, dt: float) -> float:
        """Advance by exactly ``dt`` sim seconds, paused or not, whatever the wall clock says."""
        if not _is_number(dt) or not math.isfinite(dt) or dt < 0:
            raise InputError(f"step of {dt!r} s is not valid", "give a finite step >= 0 seconds of sim time")
        self._advance(float(dt))
        return float(dt)

    def _advance(self, dt: float) -> None:
        self._sim += dt
        length = self.duration
        if length <= 0.0:
            self._offset = 0.0
            return
        if self._end_mode == "loop":
            self._offset = math.fmod(self._offset + dt, length)
        elif self._end_mode == "hold":
            self._offset = min(self._offset + dt, length)
        else:  # ping_pong: a phase on a cycle of 2 * length, forwards then backwards
            phase = self._offset if self._direction > 0 else 2.0 * length - self._offset
            phase = math.fmod(phase + dt, 2.0 * length)
            if phase < length:
                self._offset, self._direction = phase, 1
            else:
                self._offset, self._direction = 2.0 * length - phase, -1

    # -- controls --------------------------------------------------------------------------

    def pause(self) -> None:
        """Stop the clock (both times); ``step`` still moves it."""
        self.update()
        self._paused = True

    def resume(self) -> None:
        """Play on from where it was paused; the paused wall time is not counted."""
        if self._paused:
            self._last_wall = float(self._wall_clock())
            self._paused = False

    def set_rate(self, rate: float) -> None:
        """Playback speed relative to the wall clock, 0.1..10 (1.0: real time)."""
        rate = self._checked_rate(rate)
        self.update()
        self._rate = rate

    def seek(self, recording_time: float) -> None:
        """Show ``recording_time`` next (inside ``[start, end]``); ``sim_time`` is not changed."""
        t = recording_time
        if not _is_number(t) or not math.isfinite(t) or not self._start <= t <= self._end:
            raise InputError(f"seek time {t!r} s is outside the recording [{self._start}, {self._end}]",
                             "give a recording time between the recording's start and end")
        self.update()
        self._offset = float(t) - self._start

    def reset(self) -> None:
        """Back to the start of the recording, playing forwards; ``sim_time`` is not changed."""
        self.update()
        self._offset = 0.0
        self._direction = 1

    @staticmethod
    def _checked_rate(rate) -> float:
        if not _is_number(rate) or not math.isfinite(rate) or not MIN_RATE <= rate <= MAX_RATE:
            raise InputError(f"playback rate {rate!r} is out of range",
                             f"give a rate between {MIN_RATE} and {MAX_RATE} (1.0: real time)")
        return float(rate)
