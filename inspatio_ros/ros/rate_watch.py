"""The console line that says the node runs under its target rate, and why.

/diagnostics carries the numbers, but a user watching the node's terminal saw nothing when it ran
at 12-24 Hz of 30 (issue 21). At most once per interval (``publish.rate_warning_s``, 60 s) the node
writes one warning naming the reason:

* render: rendering a frame takes longer than the period;
* publish: the loop waited for the camera writers' acknowledgements (or the publisher thread)
  before it could render the next frame;
* subscriber backpressure: the DDS writers dropped samples at the source because a reliable
  subscriber did not acknowledge them (the writer's backlog for it full, see ros/dds.py); the node
  renders at its rate but a subscriber does not get every frame.

When the render and the waits together fit the period and nothing was dropped, the line says that
(the CPU is busy elsewhere) instead of blaming one of them.
"""
from __future__ import annotations

import logging
import math
import time
from typing import Callable

log = logging.getLogger("inspatio_ros")


class RateWatch:
    """``if watch.due(): watch.check(...)`` as often as convenient: due() is True at most once per
    second, and not within ``every_s`` of the last line."""

    def __init__(self, every_s: float = 60.0, clock: Callable[[], float] = time.monotonic,
                 logger: logging.Logger = log):
        self.every_s = every_s
        self._clock = clock
        self._log = logger
        self._last_check = -math.inf
        self._last_line = -math.inf
        self._dropped_base: dict[str, int] = {}      # samples dropped per publisher at the last line

    def due(self) -> bool:
        now = self._clock()
        if self.every_s <= 0 or now - self._last_check < 1.0 or now - self._last_line < self.every_s:
            return False
        self._last_check = now
        return True

    def check(self, diag, clock_rate: float, waited_ms: float, write_ms: float,
              dropped: dict[str, int]) -> str | None:
        """``diag``: the session's SessionDiagnostics; ``clock_rate``: sim seconds per wall second;
        ``waited_ms``: mean wall ms per frame the loop waited for the publishers (writer slots,
        publisher thread); ``write_ms``: mean ms a frame's messages took to write; ``dropped``:
        samples dropped so far, per publisher name. Returns the line written, if one was."""
        now = self._clock()
        rising = {name: n - self._dropped_base.get(name, 0) for name, n in dropped.items()
                  if n > self._dropped_base.get(name, 0)}
        reasons = []
        if diag.slow:
            reasons.append(self._slow_reason(diag, clock_rate, waited_ms, write_ms))
        if rising:
            worst = sorted(rising.items(), key=lambda kv: -kv[1])
            since = "since the last line" if self._last_line > -math.inf else "so far"
            reasons.append("subscriber backpressure: " + ", ".join(f"{n} samples of {name}" for name, n in worst[:3])
                           + f" dropped at the source {since} (a reliable subscriber does not keep up)")
        if not reasons:
            return None
        self._last_line = now
        self._dropped_base = dict(dropped)
        # Rendering slowly, or rendering at the rate while a subscriber does not get every sample.
        if diag.slow:
            head = (f"running under the target rate: rendering {diag.achieved_hz:.1f} Hz of "
                    f"{diag.target_hz * clock_rate:.1f} Hz")
        else:
            head = f"delivering under the target rate: rendering at {diag.achieved_hz:.1f} Hz"
        line = f"{head}; " + "; ".join(reasons)
        self._log.warning(line)
        return line

    @staticmethod
    def _slow_reason(diag, clock_rate: float, waited_ms: float, write_ms: float) -> str:
        period = 1e3 / max(diag.target_hz * clock_rate, 1e-9)
        render = diag.render_ms_mean
        waited = waited_ms if math.isfinite(waited_ms) else 0.0
        if math.isfinite(render) and render >= waited and render >= 0.5 * period:
            return f"render: a frame takes {render:.0f} ms to render, the period is {period:.0f} ms"
        if waited >= 0.5 * period or (waited > 0 and render + waited >= period):
            writing = f"; writing a frame takes {write_ms:.0f} ms" if math.isfinite(write_ms) else ""
            return (f"publish: the loop waited {waited:.0f} ms per frame for the publishers' acknowledgements "
                    f"(period {period:.0f} ms){writing}")
        return (f"render {render:.0f} ms + publish waits {waited:.0f} ms per frame fit the {period:.0f} ms period: "
                "the CPU is busy elsewhere")
