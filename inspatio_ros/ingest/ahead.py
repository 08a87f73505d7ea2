"""A build stage's per-frame work done ahead on other threads, so that two stages that run one
after the other frame by frame use both cores of a small machine.

The build's stages after odometry are long loops over the frames whose Python, NumPy and PyTorch
steps run on one core, with numba kernels (that use every core) in between: on the 2-core VM the
view check and fusion each kept ~1 core busy (docs/notes/2026-12-05-build-speed3.md). The view
check of frame k+1 does not depend on fusing frame k, so :class:`Ahead` runs the first on a
worker thread while the caller does the second; likewise MVS's plane sweep of the next frames
(two workers: each frame's sweep depends on the frames and poses only) beside the filters, checks
and propagation of the frames before them. The workers' kernels are the single-threaded twins
(runtime.serial_kernels: numba's workqueue pool must not be entered from two threads at once),
the caller's stay parallel. Each result is computed by the same code on the same inputs as
without the threads, and the caller takes them in the same order: the same results, bit for bit.
"""
from __future__ import annotations

import os
import threading
import time
from typing import Callable

from ..runtime import serial_kernels


def ahead_enabled() -> bool:
    """Whether the build runs stages ahead on a second thread (INSPATIO_BUILD_AHEAD=0: never, all
    on one thread, for A/B timing; the results are the same)."""
    return os.environ.get("INSPATIO_BUILD_AHEAD") != "0"


class Ahead:
    """``produce(k)`` for k = 0, 1, ..., count - 1 on ``workers`` threads (taken in order; with one
    worker also made in order: for a ``produce`` that keeps state from one k to the next), at most
    ``lead`` results ahead of the caller; ``get(k)`` (k in order) returns produce(k)'s result, or
    raises what it raised. ``close()`` stops the workers (call it also when the caller fails:
    ``with Ahead(...) as ahead:``).

    Its time: ``cpu_seconds`` (the workers' CPU time: their kernels are single-threaded, so this
    is all of produce's CPU time), ``busy_seconds`` (the workers' wall time inside produce, summed)
    and ``waited_seconds`` (the caller's wall time inside get: the part not hidden behind the
    caller's own work)."""

    def __init__(self, produce: Callable[[int], object], count: int, lead: int = 2, name: str = "inspatio_ahead",
                 workers: int = 1):
        if lead < 1 or workers < 1:
            raise ValueError(f"Ahead needs lead >= 1 and workers >= 1, got {lead} and {workers}")
        self._produce, self._count, self._lead = produce, int(count), max(int(lead), int(workers))
        self._done: dict[int, tuple[bool, object]] = {}
        self._changed = threading.Condition()
        self._stop = False
        self._taken = 0            # the next k a worker takes
        self._next = 0             # the next k the caller gets
        self.cpu_seconds = self.busy_seconds = self.waited_seconds = 0.0
        self._threads = [threading.Thread(target=self._work, name=f"{name}_{n}" if workers > 1 else name,
                                          daemon=True) for n in range(workers)]
        for thread in self._threads:
            thread.start()

    def _take(self) -> int | None:
        """The next k to make, once it is within ``lead`` of the caller; None: stop."""
        with self._changed:
            while not self._stop and self._taken < self._count and self._taken >= self._next + self._lead:
                self._changed.wait()
            if self._stop or self._taken >= self._count:
                return None
            self._taken += 1
            return self._taken - 1

    def _work(self) -> None:
        cpu_started = time.thread_time()
        try:
            with serial_kernels():
                while (k := self._take()) is not None:
                    started = time.time()
                    try:
                        item = (True, self._produce(k))
                    except BaseException as exc:     # noqa: BLE001 - handed to the caller's get()
                        item = (False, exc)
                    with self._changed:
                        self.busy_seconds += time.time() - started
                        self._done[k] = item
                        self._stop |= not item[0]        # after an error nothing more is made
                        self._changed.notify_all()
        finally:
            with self._changed:
                self.cpu_seconds += time.thread_time() - cpu_started

    def get(self, k: int):
        if k != self._next:
            raise ValueError(f"Ahead.get takes the results in order: asked for {k}, next is {self._next}")
        if k >= self._count:
            raise ValueError(f"Ahead: no result {k} (it makes {self._count})")
        started = time.time()
        with self._changed:
            while k not in self._done:
                if self._stop and not any(t.is_alive() for t in self._threads) and k not in self._done:
                    raise RuntimeError(f"Ahead: stopped before result {k}")
                self._changed.wait(0.1)
            ok, value = self._done.pop(k)
            self._next += 1
            self._changed.notify_all()
        self.waited_seconds += time.time() - started
        if not ok:
            self.close()
            raise value
        return value

    def close(self) -> None:
        """Stop the workers and wait for them (their current produce calls finish first)."""
        with self._changed:
            self._stop = True
            self._changed.notify_all()
        for thread in self._threads:
            thread.join()
        self._done.clear()

    def __enter__(self) -> "Ahead":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
