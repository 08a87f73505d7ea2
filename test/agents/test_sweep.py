"""Sweeps and build-many on a local Ray (2 CPUs, one Ray session for the module).

A 4-scenario sweep of the baseline controller on the embedded world at 160x90: a results table,
MCAP recordings rosbags reads, and cross-track error under 0.5 m on the recorded path; failing
scenarios are retried once and reported; build-many builds, skips what is current, rebuilds what
changed and reports a failing input.
"""
from __future__ import annotations

import csv
import os
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


@pytest.fixture(scope="module")
def ray_session():
    """One local Ray for the module; its workers import this checkout and the test controllers."""
    import ray

    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE)] + ([old] if old else []))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
    if old is None:
        os.environ.pop("PYTHONPATH", None)
    else:
        os.environ["PYTHONPATH"] = old


def write(path: Path, text: str) -> Path:
    path.write_text(textwrap.dedent(text))
    return path


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_four_scenario_sweep_records_and_tracks_the_path(ray_session, tmp_path):
    from rosbags.highlevel import AnyReader

    from inspatio_ros.agents.sweep import run_sweep

    scenarios = write(tmp_path / "street.yaml", """
        name: street
        duration: 3.5
        rate: 10
        camera: {width: 160, height: 90}
        initial_offset: {lateral: [0.0, 1.0]}
        perturbations: {drop_frames: [0.0, 0.2], sensor_noise: 4, seed: 1}
    """)
    out = tmp_path / "out"
    result = run_sweep([scenarios], out, echo=lambda *a: None)
    assert [r["status"] for r in result.rows] == ["ok"] * 4, result.rows
    table = read_csv(out / "results.csv")
    assert [r["scenario"] for r in table] == [r["scenario"] for r in result.rows]
    assert {"initial_offset.lateral", "perturbations.drop_frames", "cross_track_max_m", "achieved_hz",
            "attempts", "error"} <= set(table[0])
    assert (out / "summary.txt").read_text().count(" ok ") == 4
    import pyarrow.parquet as pq                      # the test extra installs pyarrow
    typed = pq.read_table(out / "results.parquet").to_pylist()
    assert [r["scenario"] for r in typed] == [r["scenario"] for r in table]
    assert all(isinstance(r["cross_track_max_m"], float) for r in typed)
    assert [r["cross_track_max_m"] for r in typed] == pytest.approx([float(r["cross_track_max_m"]) for r in table], rel=1e-5)  # the CSV keeps 6 digits
    for row in result.rows:
        folder = out / row["scenario"]
        steps = read_csv(folder / "steps.csv")
        assert len(steps) == 35
        cross = np.abs([float(s["cross_track"]) for s in steps])
        if row["initial_offset.lateral"] == 0.0:
            assert row["cross_track_max_m"] < 0.5           # the baseline drives the recorded path
        else:
            assert cross[0] == pytest.approx(1.0, abs=0.02)  # started 1 m off, it comes back
            assert cross[-10:].max() < 0.5
        assert row["out_of_corridor_s"] == 0.0
        dropped = row["perturbations.drop_frames"] > 0
        assert (row["frames_dropped"] > 0) == dropped and row["frames_delivered"] + row["frames_dropped"] == 35
        with AnyReader([folder / "recording"]) as reader:
            counts = {c.topic: c.msgcount for c in reader.connections}
            assert counts["/front/image_raw"] == counts["/ackermann_cmd"] == row["frames_delivered"]
            assert counts["/odom"] == row["frames_delivered"]
            image = next(reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages(
                [c for c in reader.connections if c.topic == "/front/image_raw"]))
            assert (image.width, image.height, image.encoding) == (160, 90, "rgb8")
            cmd = next(reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages(
                [c for c in reader.connections if c.topic == "/ackermann_cmd"]))
            assert abs(cmd.drive.steering_angle) < 0.6 and cmd.drive.speed > 0


def test_a_failing_scenario_is_retried_once_and_reported(ray_session, tmp_path):
    from inspatio_ros.cli import main

    markers = tmp_path / "markers"
    markers.mkdir()
    scenarios = write(tmp_path / "failing.yaml", f"""
        - name: crashes
          duration: 0.5
          camera: {{width: 160, height: 90}}
          controller: sweep_controllers:always_fails
        - name: flaky
          duration: 0.5
          camera: {{width: 160, height: 90}}
          controller: {{callable: sweep_controllers:fails_once, params: {{marker_dir: {markers}}}}}
    """)
    out = tmp_path / "out"
    assert main(["sweep", str(scenarios), "-o", str(out), "--no-record"]) == 1      # a failure: exit 1
    rows = {r["scenario"]: r for r in read_csv(out / "results.csv")}
    assert rows["crashes"]["status"] == "failed" and rows["crashes"]["attempts"] == "2"
    assert "RuntimeError: controller crashed on purpose" in rows["crashes"]["error"]
    assert rows["flaky"]["status"] == "ok" and rows["flaky"]["attempts"] == "2"
    assert "first attempt fails on purpose" in rows["flaky"]["error"]
    assert len((out / "crashes" / "attempts.jsonl").read_text().splitlines()) == 2
    assert "crashes" in (out / "summary.txt").read_text()
    # Results are never overwritten.
    from inspatio_ros.errors import InputError
    from inspatio_ros.agents.sweep import run_sweep

    with pytest.raises(InputError, match="already holds results of scenario"):
        run_sweep([scenarios], out, echo=lambda *a: None)


def test_build_many_builds_skips_what_is_current_and_reports_failures(ray_session, street, tmp_path):
    from inspatio_ros.ingest.batch import build_many
    from inspatio_ros.ingest.build import BuildSettings

    scene = tmp_path / "street"
    shutil.copytree(street, scene)
    empty = tmp_path / "empty_folder"
    empty.mkdir()
    (empty / "notes.txt").write_text("no frames here")
    out = tmp_path / "worlds"
    quiet = {"echo": lambda *a: None}
    rows = {r["world"]: r for r in build_many([scene, empty], out, BuildSettings(holdout=5), **quiet)}
    assert rows["street"]["status"] == "built" and rows["street"]["points"] > 0
    assert rows["empty_folder"]["status"] == "failed" and rows["empty_folder"]["attempts"] == 2
    assert rows["empty_folder"]["error"]
    assert (out / "street.safetensors").is_file() and (out / "street.build.json").is_file()
    assert [r["world"] for r in read_csv(out / "builds.csv")] == ["street", "empty_folder"]
    stamp = (out / "street.safetensors").stat().st_mtime_ns

    rows = {r["world"]: r for r in build_many([scene], out, BuildSettings(holdout=5), **quiet)}
    assert rows["street"]["status"] == "skipped"                       # same bytes, same settings
    assert (out / "street.safetensors").stat().st_mtime_ns == stamp

    rows = {r["world"]: r for r in build_many([scene], out, BuildSettings(holdout=4), **quiet)}
    assert rows["street"]["status"] == "built"                         # a setting changed
    frame = sorted((scene / "frames").iterdir())[0]
    frame.write_bytes(frame.read_bytes())                               # same bytes: still current
    assert build_many([scene], out, BuildSettings(holdout=4), **quiet)[0]["status"] == "skipped"
    shutil.copy(sorted((scene / "frames").iterdir())[1], frame)         # other bytes: built again
    assert build_many([scene], out, BuildSettings(holdout=4), **quiet)[0]["status"] == "built"
