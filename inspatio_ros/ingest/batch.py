"""Build many worlds at once on Ray, resumably: ``inspatio-ros build-many VIDEOS... -o DIR``.

One Ray task per input (a video, image folder, dataset folder or rosbag2), one build per GPU where
the cluster has GPUs, else per ``cpus_per_task`` CPUs (:func:`~inspatio_ros.distributed.task_resources`);
with ``optimize`` the task then fits the world's Gaussians (:mod:`inspatio_ros.gaussians.optimize`)
and keeps the optimized world.

Resuming: each world ``DIR/<name>.safetensors`` gets a sidecar ``DIR/<name>.build.json`` written
after the world (so a killed build leaves none) holding the **build key**: the SHA-256 of the
input's bytes (every file of a folder, with its relative path) and of the settings (the
BuildSettings fields, the optimize settings, the world format version). A later run skips an input
whose world exists and whose sidecar holds the same key; a changed video, a changed setting or a
newer world format builds it again. Names are the inputs' stems (``drive.mp4`` -> ``drive``);
two inputs with one stem are refused.

The results table ``DIR/builds.csv`` (and ``.parquet`` with pyarrow) has one row per input:
status (built / skipped / failed), attempts, error, seconds, frames, points, host.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path

from ..errors import InputError

SIDECAR_SUFFIX = ".build.json"
CHUNK = 1 << 20


def input_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes, or of every file under a folder (relative path and bytes, sorted)."""
    p = Path(path)
    h = hashlib.sha256()
    if p.is_file():
        files = [(p.name, p)]
    elif p.is_dir():
        files = sorted((str(f.relative_to(p)), f) for f in p.rglob("*") if f.is_file())
    else:
        raise InputError(f"build input {p} does not exist", "give video files, image folders or rosbag2 folders")
    for rel, f in files:
        h.update(rel.encode() + b"\0")
        with open(f, "rb") as fh:
            while chunk := fh.read(CHUNK):
                h.update(chunk)
        h.update(b"\0")
    return h.hexdigest()


def settings_digest(build_settings, optimize_settings=None) -> str:
    from ..world import FORMAT_VERSION

    doc = {"build": dataclasses.asdict(build_settings),
           "optimize": dataclasses.asdict(optimize_settings) if optimize_settings is not None else None,
           "format": FORMAT_VERSION}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


def build_key(input_path, build_settings, optimize_settings=None) -> str:
    return hashlib.sha256((input_digest(input_path) + settings_digest(build_settings, optimize_settings))
                          .encode()).hexdigest()


def world_name(input_path: str | Path) -> str:
    p = Path(input_path)
    return p.stem if p.is_file() else p.name


def is_up_to_date(world_path: Path, key: str) -> bool:
    sidecar = world_path.with_suffix(SIDECAR_SUFFIX)
    if not (world_path.is_file() and sidecar.is_file()):
        return False
    try:
        return json.loads(sidecar.read_text()).get("key") == key
    except (OSError, ValueError):
        return False


def build_task(input_path: str, world_path: str, key: str, build_settings, optimize_settings, device: str,
               cpus: float) -> dict:
    """One input -> one world (and its sidecar); a Ray task, also callable directly."""
    import socket

    from ..distributed import limit_threads

    limit_threads(cpus)
    started = time.perf_counter()
    out = Path(world_path)
    try:
        return _build(input_path, out, key, build_settings, optimize_settings, device, started)
    except BaseException as exc:
        import traceback

        with open(failures_path(out), "a") as f:
            f.write(json.dumps({"host": socket.gethostname(), "error": f"{type(exc).__name__}: {exc}",
                                "traceback": traceback.format_exc()}) + "\n")
        raise


def failures_path(world_path: Path) -> Path:
    """The failed attempts of the current build-many run (cleared when one starts)."""
    return world_path.with_suffix(".failures.jsonl")


def _build(input_path: str, out: Path, key: str, build_settings, optimize_settings, device: str,
           started: float) -> dict:
    import socket

    from .build import build_world

    world = build_world(input_path, build_settings, device=device)
    row = {"frames": int(len(world.frame_c2w)), "points": int(world.num_static)}
    if optimize_settings is not None:
        from ..generator.data import frame_loader
        from ..gaussians.optimize import optimize
        from ..render.types import resolve_device

        result = optimize(world, frame_loader(world), optimize_settings, device=resolve_device(device))
        world = result.world
        row.update(gaussians=int(result.gaussians), train_psnr=float(result.train_psnr))
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp.safetensors")
    world.save(tmp)
    os.replace(tmp, out)
    row.update(seconds=round(time.perf_counter() - started, 2), host=socket.gethostname())
    sidecar = {"key": key, "input": str(input_path),
               "build": dataclasses.asdict(build_settings),
               "optimize": dataclasses.asdict(optimize_settings) if optimize_settings is not None else None, **row}
    tmp_sidecar = out.with_name(f".{out.name}.{os.getpid()}.tmp.json")
    tmp_sidecar.write_text(json.dumps(sidecar, indent=1, default=str))
    os.replace(tmp_sidecar, out.with_suffix(SIDECAR_SUFFIX))
    return row


def build_many(inputs, out_dir: str | Path, build_settings=None, *, optimize_settings=None, address: str | None = None,
               gpus_per_task: float | None = None, cpus_per_task: float = 1.0, device: str = "auto",
               num_cpus: int | None = None, echo=print) -> list[dict]:
    """Build every input not already built with the same key; returns the table's rows (and writes
    ``builds.csv``). See the module docstring."""
    from ..distributed import collect, connect, task_resources, write_table
    from .build import BuildSettings

    settings = build_settings or BuildSettings()
    inputs = [str(Path(i)) for i in inputs]
    if not inputs:
        raise InputError("no inputs given", "pass video files, image folders or rosbag2 folders")
    names: dict[str, str] = {}
    for i in inputs:
        if not Path(i).exists():
            raise InputError(f"build input {i} does not exist", "give video files, image folders or rosbag2 folders")
        name = world_name(i)
        if name in names:
            raise InputError(f"inputs {names[name]} and {i} would both become world '{name}'",
                             "rename one of them (worlds are named after their inputs)")
        names[name] = i
    out = Path(out_dir).expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    rows: dict[str, dict] = {}
    todo = []
    for name, i in names.items():
        world_path = out / f"{name}.safetensors"
        key = build_key(i, settings, optimize_settings)
        if is_up_to_date(world_path, key):
            previous = json.loads(world_path.with_suffix(SIDECAR_SUFFIX).read_text())
            rows[name] = {"world": name, "input": i, "status": "skipped", "attempts": 0, "error": "",
                          **{k: previous.get(k) for k in ("frames", "points", "seconds", "host")}}
        else:
            todo.append((name, i, world_path, key))
    echo(f"build-many: {len(inputs)} input(s), {len(inputs) - len(todo)} up to date, {len(todo)} to build -> {out}")
    if todo:
        ray = connect(address, num_cpus=num_cpus)
        resources = task_resources(ray, gpus_per_task, cpus_per_task)
        remote = ray.remote(max_retries=1, retry_exceptions=True, **resources)(build_task)
        for _, _, p, _ in todo:
            failures_path(p).unlink(missing_ok=True)
        pending = {remote.remote(i, str(p), key, settings, optimize_settings, device, resources["num_cpus"]): name
                   for name, i, p, key in todo}
        for name, value, error in collect(ray, pending, "worlds", "world"):
            fails = failures_path(out / f"{name}.safetensors")
            failed = fails.read_text().splitlines() if fails.exists() else []
            base = {"world": name, "input": names[name]}
            if value is None:
                rows[name] = {**base, "status": "failed", "attempts": max(len(failed), 1), "error": error}
            else:
                rows[name] = {**base, "status": "built", "attempts": len(failed) + 1,
                              "error": json.loads(failed[-1])["error"] if failed else "", **value}
    table = [rows[n] for n in names]
    tables = write_table(table, out / "builds")
    for r in table:
        echo(f"  {r['world']}: {r['status']}" + (f" ({r['error']})" if r["error"] else "")
             + (f", {r.get('seconds')} s, {r.get('points'):,} points" if r["status"] == "built" else ""))
    echo(f"table: {', '.join(tables)}")
    return table
