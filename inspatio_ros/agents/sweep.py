"""A sweep: every scenario of some scenario files, one Ray task each, and one results table.

:func:`run_sweep` expands the files' matrices (:func:`~inspatio_ros.agents.scenario.load_scenarios`),
submits one Ray task per scenario (sized by :func:`~inspatio_ros.distributed.task_resources`: one
simulator per GPU, or per CPU slot), and collects them as they finish. Each task runs
:func:`~inspatio_ros.agents.runner.run_scenario` and writes into ``OUT/<scenario>/``: its
recording (rosbag2 MCAP of what the controller saw and did), ``steps.csv`` and ``summary.json``.

A task that raises is run once more (Ray ``max_retries=1, retry_exceptions=True``); each failed
attempt appends its error and traceback to ``OUT/<scenario>/attempts.jsonl``, and the table
reports ``attempts`` and, for a scenario that failed both times, ``status: failed`` and the error:
no scenario is dropped. The output folder must be reachable by every task at the same path (this
machine's disk for a local Ray; a shared filesystem on a cluster, see docs/SCALING.md).

The driver writes ``OUT/results.csv`` (and ``results.parquet`` when pyarrow is installed): one row
per scenario, its swept values, status, attempts, error and summary metrics; and
``OUT/summary.txt`` / ``summary.json``, the sweep's totals, which the command also prints.
"""
from __future__ import annotations

import json
import shutil
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from ..errors import InputError
from .scenario import Scenario, load_scenarios

ATTEMPTS = "attempts.jsonl"
# Columns of the printed summary table (when the scenarios compute them).
SHOWN = ("cross_track_mean_m", "cross_track_max_m", "heading_error_max_rad", "out_of_corridor_s", "completion",
         "achieved_hz", "step_ms_p99")


@dataclass(frozen=True)
class SweepResult:
    rows: list                      # one dict per scenario, in the order of the scenario files
    tables: list                    # results.csv (and .parquet) written
    summary: dict                   # totals (see summarize_sweep)
    wall_s: float

    @property
    def failed(self) -> list:
        return [r for r in self.rows if r["status"] != "ok"]


def scenario_task(scenario: Scenario, out_dir: str, record: bool, cpus: float, gpus: float = 0.0,
                  device: str = "auto") -> dict:
    """One scenario, as a Ray task runs it (also callable directly). Raises what the run raises,
    after noting the attempt in ``attempts.jsonl``. Where the scenario says ``device: auto`` it
    renders on ``device`` (the command's --device), and a task given no GPU on the CPU (a GPU it
    was not given may be another task's)."""
    from ..distributed import limit_threads
    from .runner import run_scenario

    limit_threads(cpus)
    if scenario.settings.device == "auto":
        chosen = device if device != "auto" else ("cpu" if gpus <= 0 else "auto")
        scenario = replace(scenario, settings=replace(scenario.settings, device=chosen))
    folder = Path(out_dir) / scenario.name
    folder.mkdir(parents=True, exist_ok=True)
    log_file = folder / ATTEMPTS
    attempt = 1 + (len(log_file.read_text().splitlines()) if log_file.exists() else 0)
    if attempt > 1:                                   # a retry: the failed attempt's partial outputs go
        shutil.rmtree(folder / "recording", ignore_errors=True)
    try:
        summary = run_scenario(scenario, folder, record=record)
    except BaseException as exc:
        with open(log_file, "a") as f:
            f.write(json.dumps({"attempt": attempt, "host": _host(), "error": f"{type(exc).__name__}: {exc}",
                                "traceback": traceback.format_exc()}) + "\n")
        raise
    summary["attempts"] = attempt
    summary["host"] = _host()
    return summary


def _host() -> str:
    import socket

    return socket.gethostname()


def check_output(out_dir: Path, scenarios: list[Scenario]) -> None:
    """The output folder must not hold results of these scenarios already (never overwritten)."""
    taken = [s.name for s in scenarios if (out_dir / s.name).exists()]
    if taken:
        raise InputError(f"output folder {out_dir} already holds results of scenario '{taken[0]}'"
                         + (f" and {len(taken) - 1} more" if len(taken) > 1 else ""),
                         "give a new -o folder (results are never overwritten)")


def run_sweep(scenario_files, out_dir: str | Path, *, address: str | None = None,
              gpus_per_task: float | None = None, cpus_per_task: float = 1.0, record: bool = True,
              num_cpus: int | None = None, device: str = "auto", echo=print) -> SweepResult:
    """Run every scenario of ``scenario_files`` on Ray; write the table and the summary into
    ``out_dir`` (see the module docstring). ``num_cpus``: CPUs of a local Ray (default: all);
    ``device``: the renderer's device where a scenario says ``auto``."""
    from ..distributed import collect, connect, task_resources, write_table

    scenarios = load_scenarios(scenario_files)
    out = Path(out_dir).expanduser().resolve()
    check_output(out, scenarios)
    ray = connect(address, num_cpus=num_cpus)
    resources = task_resources(ray, gpus_per_task, cpus_per_task)
    out.mkdir(parents=True, exist_ok=True)
    remote = ray.remote(max_retries=1, retry_exceptions=True, **resources)(scenario_task)
    echo(f"sweep: {len(scenarios)} scenario(s) from {len(list(_as_list(scenario_files)))} file(s) on Ray "
         f"({_describe(ray)}), {resources['num_gpus']:g} GPU + {resources['num_cpus']:g} CPU per task -> {out}")
    started = time.perf_counter()
    pending = {remote.remote(s, str(out), record, resources["num_cpus"], resources["num_gpus"], device): s.name
               for s in scenarios}
    finished = {name: (value, error) for name, value, error in collect(ray, pending, "scenarios", "scenario")}
    wall = time.perf_counter() - started
    rows = [result_row(s, *finished[s.name], out) for s in scenarios]
    tables = write_table(rows, out / "results")
    summary = summarize_sweep(rows, wall)
    text = format_summary(rows, summary)
    (out / "summary.txt").write_text(text)
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    echo(text.rstrip())
    echo(f"results: {', '.join(tables)}")
    return SweepResult(rows=rows, tables=tables, summary=summary, wall_s=wall)


def _as_list(files):
    return [files] if isinstance(files, (str, Path)) else list(files)


def _describe(ray) -> str:
    r = ray.cluster_resources()
    nodes = len([n for n in ray.nodes() if n.get("Alive")])
    return f"{nodes} machine(s), {r.get('CPU', 0):g} CPU, {r.get('GPU', 0):g} GPU"


def result_row(scenario: Scenario, summary: dict | None, error: str | None, out: Path) -> dict:
    """One row of the table: the scenario, what was swept, how it ended, its metrics."""
    row = {"scenario": scenario.name, "source": scenario.source, "controller": scenario.controller.label(),
           "world": scenario.settings.world or "(default)"}
    row.update({k: v for k, v in scenario.swept})
    attempts_file = out / scenario.name / ATTEMPTS
    failures = attempts_file.read_text().splitlines() if attempts_file.exists() else []
    if summary is None:
        row.update(status="failed", attempts=max(len(failures), 1), error=error or "")
        return row
    row.update(status="ok", attempts=summary.get("attempts", 1),
               error=(json.loads(failures[-1])["error"] if failures else ""))
    row.update({k: v for k, v in summary.items() if k not in ("scenario", "attempts")})
    return row


def summarize_sweep(rows: list[dict], wall_s: float) -> dict:
    ok = [r for r in rows if r["status"] == "ok"]
    out = {"scenarios": len(rows), "ok": len(ok), "failed": len(rows) - len(ok),
           "retried": sum(1 for r in rows if r.get("attempts", 1) > 1), "wall_s": round(wall_s, 2),
           "episodes_per_hour": round(len(ok) / wall_s * 3600, 1) if wall_s > 0 else None}
    for key in ("cross_track_mean_m", "cross_track_max_m", "out_of_corridor_s", "achieved_hz"):
        values = [r[key] for r in ok if isinstance(r.get(key), (int, float))]
        if values:
            out[f"{key}_mean"] = float(np.mean(values))
            out[f"{key}_worst"] = float(np.min(values) if key == "achieved_hz" else np.max(values))
    return out


def format_summary(rows: list[dict], summary: dict) -> str:
    """The sweep as text: one line per scenario and the totals."""
    shown = [c for c in SHOWN if any(c in r for r in rows)]
    width = max(len("scenario"), *(len(r["scenario"]) for r in rows))
    header = "  ".join(f"{c:>{max(len(c), 8)}}" for c in shown)
    lines = [f"{'scenario':<{width}}  {'status':<6} {'tries':>5}  {header}"]
    for r in rows:
        cells = "  ".join(f"{_fmt(r.get(c)):>{max(len(c), 8)}}" for c in shown)
        lines.append(f"{r['scenario']:<{width}}  {r['status']:<6} {r.get('attempts', 1):>5}  {cells}")
        if r["status"] != "ok" or r.get("error"):
            lines.append(f"  {'error' if r['status'] != 'ok' else 'first attempt'}: {r.get('error')}")
    lines.append(f"{summary['ok']}/{summary['scenarios']} ok, {summary['failed']} failed, "
                 f"{summary['retried']} retried, "
                 f"{summary['wall_s']:.1f} s wall ({summary['episodes_per_hour']} episodes/hour)")
    return "\n".join(lines) + "\n"


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)
