"""Ray for the commands that fan work out (``sweep``, ``build-many``): connect, size tasks, collect.

Ray is an optional dependency (``pip install inspatio_ros[agents]``); importing this module does
not import it. :func:`connect` joins a cluster (``address``: ``ray://host:10001`` through Ray
Client, ``auto`` for the cluster this machine is part of) or starts a local Ray on this machine
with every CPU (and GPU) it has, no dashboard, and the workers' output kept off the console.

Tasks are sized by :func:`task_resources`: ``gpus_per_task`` when given (a fraction packs several
simulators on one GPU), else one GPU per task where the cluster has GPUs, else ``cpus_per_task``
CPUs: one simulator per GPU or per CPU slot. Inside a task, :func:`limit_threads` keeps the
renderer's thread pools to the CPUs the task was given, so tasks sharing a machine do not fight
over its cores.

:func:`collect` waits for submitted tasks as they finish (a progress bar with ETA) and turns each
into ``(key, value, error)``: a task that raised after its retry is reported with its error, never
dropped.
"""
from __future__ import annotations

import logging
import numbers
import os
from typing import Any, Callable

from .errors import InputError

log = logging.getLogger("inspatio_ros")


def require_ray():
    try:
        import ray
    except ImportError:
        raise InputError("Ray is not installed", "pip install 'inspatio_ros[agents]' (or pip install ray)") from None
    return ray


def connect(address: str | None = None, num_cpus: int | None = None, num_gpus: int | None = None):
    """Ray, initialised: the running session if there is one, else ``address``'s cluster, else a
    local Ray with ``num_cpus`` (default: this machine's) CPUs. Returns the ray module."""
    ray = require_ray()
    if ray.is_initialized():
        return ray
    if address:
        try:
            ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            reason = str(exc).splitlines()[0]
            fix = ("pip install 'ray[client]' (ray:// addresses need Ray Client)" if "ray[client]" in reason else
                   "start it (`ray start --head` on the head machine) or give the head's ray://HOST:10001 "
                   "address; leave --address out to run on this machine")
            raise InputError(f"cannot connect to the Ray cluster at {address} ({reason})", fix) from None
        return ray
    ray.init(num_cpus=num_cpus or os.cpu_count() or 1, num_gpus=num_gpus, include_dashboard=False,
             log_to_driver=False, logging_level=logging.WARNING)
    return ray


def task_resources(ray, gpus_per_task: float | None = None, cpus_per_task: float = 1.0) -> dict[str, float]:
    """``num_gpus`` / ``num_cpus`` of one task on this cluster (see the module docstring)."""
    if gpus_per_task is not None and gpus_per_task < 0:
        raise InputError(f"--gpus-per-task {gpus_per_task:g} is negative", "give 0 (CPU tasks), a fraction or 1")
    if not cpus_per_task > 0:
        raise InputError(f"--cpus-per-task {cpus_per_task:g} is not positive", "give at least 0.1 CPU per task")
    cluster = ray.cluster_resources()
    gpus = float(cluster.get("GPU", 0.0))
    if gpus_per_task is None:
        gpus_per_task = 1.0 if gpus >= 1 else 0.0
    if gpus_per_task > gpus:
        raise InputError(f"--gpus-per-task {gpus_per_task:g} but the Ray cluster has {gpus:g} GPU(s)",
                         "give --gpus-per-task 0 to run on CPUs, or add GPU machines to the cluster")
    cpus = float(cluster.get("CPU", 1.0))
    if cpus_per_task > cpus:
        raise InputError(f"--cpus-per-task {cpus_per_task:g} but the Ray cluster has {cpus:g} CPU(s)",
                         f"give --cpus-per-task {cpus:g} or less")
    return {"num_gpus": float(gpus_per_task), "num_cpus": float(cpus_per_task)}


def limit_threads(cpus: float) -> None:
    """Inside a task: the renderer's CPU thread pools (numba, torch) to the task's CPUs."""
    n = max(1, int(cpus))
    try:
        import numba

        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    except ImportError:
        pass
    import torch

    torch.set_num_threads(n)


def error_text(exc: BaseException) -> str:
    """One line for a task's failure: the task's own exception, without Ray's wrapping."""
    cause = getattr(exc, "cause", None)
    inner = cause if isinstance(cause, BaseException) else exc
    text = str(inner).strip().splitlines()
    first = text[0] if text else ""
    return f"{type(inner).__name__}: {first}" if first else type(inner).__name__


def collect(ray, pending: dict, desc: str, unit: str,
            on_done: Callable[[Any, Any, str | None], None] | None = None) -> list[tuple[Any, Any, str | None]]:
    """Wait for ``pending`` ({ObjectRef: key}) as they finish; ``(key, value, error)`` of each, in
    the order they finished (value None and error set for a task that failed)."""
    from .progress import progress

    results = []
    refs = list(pending)
    with progress(total=len(refs), desc=desc, unit=unit) as bar:
        while refs:
            # Everything finished within the next half second, at once: one call per batch, not
            # one per task, so a sweep of many thousands of tasks does not spend its time here.
            done, refs = ray.wait(refs, num_returns=len(refs), timeout=0.5)
            for ref in done:
                key = pending[ref]
                try:
                    value, error = ray.get(ref), None
                except Exception as exc:          # the task raised after its retry: report it
                    value, error = None, error_text(exc)
                results.append((key, value, error))
                if on_done is not None:
                    on_done(key, value, error)
                bar.update(1)
    return results


def write_table(rows: list[dict], path_stem) -> list[str]:
    """``rows`` as ``<stem>.csv`` (always) and ``<stem>.parquet`` (when pyarrow is installed);
    the columns are the union of the rows' keys, first seen first. Returns the files written."""
    import csv
    from pathlib import Path

    stem = Path(path_stem)
    columns = table_columns(rows)
    written = []
    with open(stem.with_suffix(".csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(columns))
        w.writeheader()
        for i in range(len(rows)):
            w.writerow({k: _cell(values[i]) for k, values in columns.items()})
    written.append(str(stem.with_suffix(".csv")))
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        return written
    pq.write_table(pa.table(columns), stem.with_suffix(".parquet"))
    written.append(str(stem.with_suffix(".parquet")))
    return written


def table_columns(rows: list[dict]) -> dict[str, list]:
    """Column name -> one value per row (None where a row lacks it), each column of one type as a
    typed table (Parquet) needs it: ints beside floats become floats; a column mixing text with
    anything else becomes text."""
    names: list[str] = []
    for row in rows:
        names.extend(k for k in row if k not in names)
    columns = {}
    for name in names:
        values = [row.get(name) for row in rows]
        present = [v for v in values if v is not None]
        kinds = {bool if isinstance(v, bool) else int if isinstance(v, numbers.Integral) else
                 float if isinstance(v, numbers.Real) else str for v in present}
        if len(kinds) > 1:
            if kinds <= {int, float}:
                values = [None if v is None else float(v) for v in values]
            else:
                values = [None if v is None else str(v) for v in values]
        columns[name] = values
    return columns


def _cell(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return value
