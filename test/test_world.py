"""World file: round trip, atomic save, version and corruption errors."""
import json
import struct

import numpy as np
import pytest

from inspatio_ros.camera import Intrinsics
from inspatio_ros.errors import WorldFileError
from inspatio_ros.world import FORMAT_VERSION, SURFEL_FORMAT_VERSION, World, encode_normals, read_world_metadata


def small_world(n=1000, m=50, seed=0):
    rng = np.random.default_rng(seed)
    poses = np.tile(np.eye(4), (4, 1, 1))
    poses[:, 0, 3] = np.arange(4)
    return World(
        intrinsics=Intrinsics(100.0, 100.0, 31.5, 23.5, 64, 48),
        static_xyz=rng.normal(size=(n, 3)).astype(np.float32),
        static_rgb=rng.integers(0, 256, (n, 3), dtype=np.uint8),
        static_radius=rng.uniform(0.01, 0.1, n).astype(np.float32),
        static_normal=encode_normals(rng.normal(size=(n, 3))),
        static_frame=rng.integers(0, 4, n).astype(np.int32),
        frame_c2w=poses[[0, 1, 3]], frame_time=np.array([0.0, 0.1, 0.3]), frame_index=np.array([0, 1, 3]),
        dynamic_xyz=rng.normal(size=(m, 3)), dynamic_rgb=rng.integers(0, 256, (m, 3), dtype=np.uint8),
        dynamic_radius=np.full(m, 0.05), dynamic_normal=np.zeros((m, 3), np.int8),
        dynamic_t_start=np.full(m, 0.1), dynamic_t_end=np.full(m, 0.2), dynamic_frame=np.ones(m, np.int32),
        heldout_c2w=poses[[2]], heldout_time=np.array([0.2]), heldout_index=np.array([2]),
        provenance={"source": "unit test", "source_sha256": "0" * 64}, info={"note": "ü"},
    )


def test_round_trip_preserves_everything(tmp_path):
    world = small_world()
    path = world.save(tmp_path / "w.safetensors")
    back = World.load(path)
    for name in ("static_xyz", "static_rgb", "static_radius", "static_normal", "static_frame", "dynamic_xyz",
                 "dynamic_t_start", "dynamic_t_end", "frame_c2w", "frame_time", "frame_index", "heldout_c2w",
                 "heldout_time", "heldout_index"):
        a, b = getattr(world, name), getattr(back, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    assert back.intrinsics == world.intrinsics
    assert back.provenance == world.provenance and back.info == world.info
    meta = read_world_metadata(path)
    assert meta["version"] == SURFEL_FORMAT_VERSION and meta["conventions"]["poses"] == "camera-to-world 4x4"
    assert back.time_range == (0.0, 0.3)


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path, monkeypatch):
    world = small_world()
    target = tmp_path / "w.safetensors"
    world.save(target)
    before = target.read_bytes()
    import safetensors.numpy

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(safetensors.numpy, "save_file", boom)
    with pytest.raises(RuntimeError):
        small_world(seed=1).save(target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]


def _rewrite_metadata(path, change):
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    meta = json.loads(header["__metadata__"]["inspatio_world"])
    change(meta)
    header["__metadata__"]["inspatio_world"] = json.dumps(meta)
    new = json.dumps(header).encode()
    new += b" " * ((8 - len(new) % 8) % 8)
    path.write_bytes(struct.pack("<Q", len(new)) + new + raw[8 + n:])


def test_newer_version_asks_for_upgrade(tmp_path):
    path = small_world().save(tmp_path / "w.safetensors")
    _rewrite_metadata(path, lambda m: m.update(version=FORMAT_VERSION + 1))
    with pytest.raises(WorldFileError, match="upgrade inspatio_ros"):
        World.load(path)


def test_older_version_asks_for_rebuild(tmp_path):
    path = small_world().save(tmp_path / "w.safetensors")
    _rewrite_metadata(path, lambda m: m.update(version=0))
    with pytest.raises(WorldFileError, match="rebuild"):
        World.load(path)


def test_truncated_file_is_reported_as_damaged(tmp_path):
    path = small_world().save(tmp_path / "w.safetensors")
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - 100])
    with pytest.raises(WorldFileError, match="damaged"):
        World.load(path)


def test_garbage_and_missing_files(tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a world at all")
    with pytest.raises(WorldFileError, match="not an inspatio world"):
        World.load(junk)
    with pytest.raises(WorldFileError, match="does not exist"):
        World.load(tmp_path / "missing.safetensors")


def test_other_safetensors_file_is_rejected(tmp_path):
    from safetensors.numpy import save_file

    path = tmp_path / "weights.safetensors"
    save_file({"w": np.zeros(3, np.float32)}, str(path))
    with pytest.raises(WorldFileError, match="not an inspatio world"):
        World.load(path)


def test_nan_points_and_bad_poses_are_rejected(tmp_path):
    world = small_world()
    world.static_xyz[3, 1] = np.nan
    with pytest.raises(WorldFileError, match="NaN"):
        world.save(tmp_path / "w.safetensors")
    world = small_world()
    world.frame_c2w[1, :3, :3] *= 2.0
    with pytest.raises(Exception, match="not a rotation"):
        world.save(tmp_path / "w.safetensors")
    assert not (tmp_path / "w.safetensors").exists()


def test_encode_normals():
    enc = encode_normals(np.array([[0, 0, 2.0], [0, 0, 0], [np.nan, 0, 0], [1, 1, 0]]))
    assert enc.dtype == np.int8
    assert enc.tolist()[:3] == [[0, 0, 127], [0, 0, 0], [0, 0, 0]]
    assert enc[3].tolist() == [90, 90, 0]


def test_saved_files_get_ordinary_permissions(tmp_path):
    import os
    import stat

    path = small_world().save(tmp_path / "w.safetensors")
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask


_REWRITER = """
import sys
sys.path.insert(0, {test_dir!r})
from test_world import small_world
a, b = small_world(20000, 500, seed=1), small_world(20000, 500, seed=2)
for i in range(40):
    (a if i % 2 else b).save({path!r})
print("done", flush=True)
"""


def test_a_world_rewritten_while_it_is_loaded_is_never_read_half_written(tmp_path):
    """Another process saves two different worlds over the file, again and again, while this one
    loads it: every load is one of the two whole worlds (save writes a temp file and renames it,
    load reads one file whole), never a mix, never an error."""
    import subprocess
    import sys
    from pathlib import Path

    path = tmp_path / "w.safetensors"
    a, b = small_world(20000, 500, seed=1), small_world(20000, 500, seed=2)
    a.save(path)
    script = _REWRITER.format(test_dir=str(Path(__file__).parent), path=str(path))
    writer = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    seen = {"a": 0, "b": 0}
    try:
        while writer.poll() is None:
            w = World.load(path)
            which = "a" if np.array_equal(w.static_xyz, a.static_xyz) else "b"
            ref = a if which == "a" else b
            assert np.array_equal(w.static_xyz, ref.static_xyz)
            assert np.array_equal(w.dynamic_rgb, ref.dynamic_rgb)
            assert np.array_equal(w.static_frame, ref.static_frame)
            seen[which] += 1
    finally:
        writer.wait(timeout=60)
    assert writer.returncode == 0 and writer.stdout.read().strip() == "done"
    assert seen["a"] + seen["b"] >= 3, seen
