"""distributed.py without starting Ray: task sizes, result tables, error lines."""
from __future__ import annotations

import csv

import pytest

from inspatio_ros.distributed import error_text, table_columns, task_resources, write_table
from inspatio_ros.errors import InputError


class Cluster:
    """What task_resources asks of the ray module: the cluster's resources."""

    def __init__(self, cpus: float, gpus: float = 0.0):
        self.resources = {"CPU": cpus, **({"GPU": gpus} if gpus else {})}

    def cluster_resources(self):
        return self.resources


def test_one_task_per_gpu_where_there_are_gpus_else_per_cpu_slot():
    assert task_resources(Cluster(64, 8)) == {"num_gpus": 1.0, "num_cpus": 1.0}
    assert task_resources(Cluster(2)) == {"num_gpus": 0.0, "num_cpus": 1.0}
    assert task_resources(Cluster(64, 8), gpus_per_task=0.25, cpus_per_task=4) == {"num_gpus": 0.25, "num_cpus": 4.0}
    assert task_resources(Cluster(64, 8), gpus_per_task=0) == {"num_gpus": 0.0, "num_cpus": 1.0}


@pytest.mark.parametrize("kwargs, message", [
    ({"gpus_per_task": 1}, "--gpus-per-task 1 but the Ray cluster has 0 GPU"),
    ({"gpus_per_task": -1}, "--gpus-per-task -1 is negative"),
    ({"cpus_per_task": 4}, "--cpus-per-task 4 but the Ray cluster has 2 CPU"),
    ({"cpus_per_task": 0}, "--cpus-per-task 0 is not positive"),
])
def test_impossible_task_sizes_are_one_clear_error(kwargs, message):
    with pytest.raises(InputError, match=message):
        task_resources(Cluster(2), **kwargs)


def test_table_columns_have_one_type_each():
    rows = [{"a": 0, "b": "x", "c": True}, {"a": 4.5, "b": 3, "d": 1.0}, {"a": None}]
    columns = table_columns(rows)
    assert list(columns) == ["a", "b", "c", "d"]
    assert columns["a"] == [0.0, 4.5, None] and all(isinstance(v, float) for v in columns["a"][:2])
    assert columns["b"] == ["x", "3", None]
    assert columns["c"] == [True, None, None] and columns["d"] == [None, 1.0, None]


def test_write_table_writes_csv_and_parquet_when_pyarrow_is_there(tmp_path):
    rows = [{"scenario": "a", "status": "ok", "x": 0.123456789}, {"scenario": "b", "status": "failed", "error": "E"}]
    written = write_table(rows, tmp_path / "results")
    with open(tmp_path / "results.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert table == [{"scenario": "a", "status": "ok", "x": "0.123457", "error": ""},
                     {"scenario": "b", "status": "failed", "x": "", "error": "E"}]
    import pyarrow.parquet as pq                      # the test extra installs pyarrow
    assert written == [str(tmp_path / "results.csv"), str(tmp_path / "results.parquet")]
    typed = pq.read_table(tmp_path / "results.parquet")
    assert typed.to_pylist() == [{"scenario": "a", "status": "ok", "x": 0.123456789, "error": None},
                                 {"scenario": "b", "status": "failed", "x": None, "error": "E"}]
    assert str(typed.schema.field("x").type) == "double"


def test_write_table_without_pyarrow_writes_csv_only(tmp_path, monkeypatch):
    import builtins
    real_import = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):
        if name.startswith("pyarrow"):
            raise ImportError("No module named 'pyarrow'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    assert write_table([{"scenario": "a"}], tmp_path / "results") == [str(tmp_path / "results.csv")]
    assert not (tmp_path / "results.parquet").exists()


def test_error_text_is_the_tasks_own_first_line():
    class Wrapped(Exception):                    # what ray.get raises: the task's exception as .cause
        def __init__(self, cause):
            super().__init__("Traceback ...\nlots of lines")
            self.cause = cause

    assert error_text(Wrapped(InputError("world file w does not exist", "build it"))) == \
        "InputError: world file w does not exist: build it"
    assert error_text(Wrapped(RuntimeError("boom\nmore"))) == "RuntimeError: boom"
    assert error_text(ValueError()) == "ValueError"


def test_the_build_key_covers_input_bytes_settings_and_optimize(tmp_path):
    from inspatio_ros.gaussians.optimize import OptimizeSettings
    from inspatio_ros.ingest.batch import build_key
    from inspatio_ros.ingest.build import BuildSettings

    folder = tmp_path / "clip"
    (folder / "frames").mkdir(parents=True)
    (folder / "frames" / "0.png").write_bytes(b"one")
    key = build_key(folder, BuildSettings())
    assert build_key(folder, BuildSettings()) == key
    assert build_key(folder, BuildSettings(holdout=5)) != key
    assert build_key(folder, BuildSettings(), OptimizeSettings(iterations=3)) != key
    assert build_key(folder, BuildSettings(), OptimizeSettings(iterations=3)) != \
        build_key(folder, BuildSettings(), OptimizeSettings(iterations=4))
    (folder / "frames" / "0.png").write_bytes(b"two")
    changed = build_key(folder, BuildSettings())
    assert changed != key
    (folder / "frames" / "0.png").rename(folder / "frames" / "1.png")       # names count too
    assert build_key(folder, BuildSettings()) != changed
