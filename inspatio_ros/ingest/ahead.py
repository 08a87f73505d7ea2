"""A build stage's per-frame work done ahead on a second thread, so that two stages that run one
after the other frame by frame use both cores of a small machine.

The build's stages after odometry are long loops over the frames whose Python, NumPy and PyTorch
steps run on one core, with numba kernels (that use every core) in between: on the 2-core VM the
view check and fusion each kept ~1 core busy (docs/notes/2026-12-05-build-speed3.md). The view
check of frame k+1 does not depend on fusing frame k, so :class:`Ahead` runs the first on a
worker thread while the caller does the second. The worker's kernels are the single-threaded
twins (runtime.serial_kernels: numba's workqueue pool must not be entered from two threads at
once), the caller's stay parallel. Each result is computed by the same code on the same inputs
in the same order as without the thread: the same results, bit for bit.
"""
from __future__ import annotations

import os
import queue
import threading
import time
from typing import Callable

from ..runtime import serial_kernels

_DONE = object()


def ahead_enabled() -> bool:
    """Whether the build runs stages ahead on a second thread (INSPATIO_BUILD_AHEAD=0: never, all
    on one thread, for A/B timing; the results are the same)."""
    return os.environ.get("INSPATIO_BUILD_AHEAD") != "0"


class Ahead:
    """``produce(k)`` for k = 0, 1, ..., count - 1, in that order, on a worker thread, at most
    ``lead`` results ahead of the caller; ``get(k)`` (k in order) returns produce(k)'s result, or
    raises what it raised. ``close()`` stops the worker (call it also when the caller fails:
    ``with Ahead(...) as ahead:``).

    Its time: ``cpu_seconds`` (the worker thread's CPU time: its kernels are single-threaded, so
    this is all of produce's CPU time), ``busy_seconds`` (the worker's wall time inside produce)
    and ``waited_seconds`` (the caller's wall time inside get: the part not hidden behind the
    caller's own work)."""

    def __init__(self, produce: Callable[[int], object], count: int, lead: int = 2, name: str = "inspatio_ahead"):
        if lead < 1:
            raise ValueError(f"Ahead needs lead >= 1, got {lead}")
        self._produce, self._count = produce, int(count)
        self._results: queue.Queue = queue.Queue(maxsize=lead)
        self._stop = threading.Event()
        self._next = 0
        self.cpu_seconds = self.busy_seconds = self.waited_seconds = 0.0
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def _work(self) -> None:
        cpu_started = time.thread_time()
        try:
            with serial_kernels():
                for k in range(self._count):
                    if self._stop.is_set():
                        return
                    started = time.time()
                    try:
                        item = (True, self._produce(k))
                    except BaseException as exc:     # noqa: BLE001 - handed to the caller's get()
                        item = (False, exc)
                    self.busy_seconds += time.time() - started
                    self.cpu_seconds = time.thread_time() - cpu_started
                    if not self._put(item) or not item[0]:
                        return
        finally:
            self.cpu_seconds = time.thread_time() - cpu_started
            self._put((True, _DONE))

    def _put(self, item) -> bool:
        while not self._stop.is_set():
            try:
                self._results.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def get(self, k: int):
        if k != self._next:
            raise ValueError(f"Ahead.get takes the results in order: asked for {k}, next is {self._next}")
        started = time.time()
        ok, value = self._results.get()
        self.waited_seconds += time.time() - started
        if value is _DONE:
            raise RuntimeError(f"Ahead: no result {k} (the worker made {self._count})")
        self._next += 1
        if not ok:
            self.close()
            raise value
        return value

    def close(self) -> None:
        """Stop the worker and wait for it (its current produce call finishes first)."""
        self._stop.set()
        self._thread.join()

    def __enter__(self) -> "Ahead":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
