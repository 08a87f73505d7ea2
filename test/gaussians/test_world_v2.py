"""World format versions 2 and 3: the Gaussian layer's round trip, its stored precision, corrupt
layers, version-2 worlds still read, and version-1 worlds untouched."""
import json
import struct

import numpy as np
import pytest
import torch

from inspatio_ros.camera import Intrinsics
from inspatio_ros.errors import InputError, WorldFileError
from inspatio_ros.gaussians.model import from_surfels, from_world, world_arrays
from inspatio_ros.gaussians.rasterize import rasterize
from inspatio_ros.world import FORMAT_VERSION, World, encode_normals, read_world_metadata


def surfel_world(n=300, seed=0) -> World:
    rng = np.random.default_rng(seed)
    poses = np.tile(np.eye(4), (3, 1, 1))
    poses[:, 0, 3] = [0.0, 0.2, 0.4]
    return World(
        intrinsics=Intrinsics(60.0, 60.0, 31.5, 23.5, 64, 48),
        static_xyz=rng.uniform([-2, -1.5, 4], [2, 1.5, 7], (n, 3)), static_rgb=rng.integers(0, 256, (n, 3)),
        static_radius=rng.uniform(0.05, 0.2, n), static_normal=encode_normals(rng.normal(size=(n, 3))),
        static_frame=np.zeros(n, np.int32), frame_c2w=poses[[0, 2]], frame_time=np.array([0.0, 0.2]),
        frame_index=np.array([0, 2]), heldout_c2w=poses[[1]], heldout_time=np.array([0.1]),
        heldout_index=np.array([1]), provenance={"source": "unit test"})


def gaussian_world(seed=0) -> World:
    """A surfel world with a Gaussian layer made from its surfels: the static ones, and a dynamic
    third alive from 0.05 to 0.15 s with degree-1 colour."""
    import dataclasses

    w = surfel_world(seed=seed)
    g = from_surfels(w.static_xyz, w.static_rgb, w.static_radius, w.static_normal)
    g.sh[:, 1:] = torch.randn(g.sh[:, 1:].shape, generator=torch.Generator().manual_seed(seed)) * 0.2
    g.opacity_logits.uniform_(-2, 3, generator=torch.Generator().manual_seed(seed + 1))
    rows = slice(0, 100)
    dynamic = type(g)(g.means[rows] + 0.1, g.log_scales[rows], g.quats[rows], g.opacity_logits[rows], g.sh[rows],
                      torch.full((100,), 0.05, dtype=torch.float64), torch.full((100,), 0.15, dtype=torch.float64))
    return dataclasses.replace(w, **world_arrays(g, "static"), **world_arrays(dynamic, "dynamic"))


def test_round_trip_keeps_every_gaussian_field(tmp_path):
    """Written as version 3: centres and scales exactly, the 8-bit fields (rotation, opacity,
    degree-1 colour) within their step, and a second save of the loaded world stores the same
    (the 8-bit ones within one step: a decoded quaternion is normalised again before rounding)."""
    world = gaussian_world()
    assert world.has_gaussians and world.num_gaussians == 400
    path = world.save(tmp_path / "w.safetensors")
    assert read_world_metadata(path)["version"] == FORMAT_VERSION == 3
    back = World.load(path)
    for layer in ("static", "dynamic"):
        for name in ("xyz", "log_scale"):
            a, b = getattr(world, f"gauss_{layer}_{name}"), getattr(back, f"gauss_{layer}_{name}")
            assert a.dtype == b.dtype and np.array_equal(a, b), (layer, name)
        f32 = (lambda w, name: getattr(w, f"gauss_{layer}_{name}").astype(np.float32))
        assert np.abs(f32(back, "rotation") - f32(world, "rotation")).max() <= 0.5 / 127 + 1e-3
        opacity = (lambda w: 1 / (1 + np.exp(-f32(w, "opacity"))))
        assert np.abs(opacity(back) - opacity(world)).max() <= 0.5 / 255 + 1e-3
        sh_a, sh_b = f32(world, "sh"), f32(back, "sh")
        assert np.abs(sh_a[:, 0] - sh_b[:, 0]).max() == 0                     # the DC term stays f16
        step = np.abs(sh_a[:, 1:]).max(0) / 127
        assert (np.abs(sh_a[:, 1:] - sh_b[:, 1:]) <= 0.5 * step + 2e-3).all()
    again = World.load(back.save(tmp_path / "again.safetensors"))
    from safetensors.numpy import load_file

    first, second = load_file(str(path)), load_file(str(tmp_path / "again.safetensors"))
    for key in first:
        if key.startswith("gauss") and not key.endswith("sh_rest_scale"):
            a, b = first[key], second[key]
            if a.dtype in (np.int8, np.uint8):
                assert a.shape == b.shape and (a.size == 0 or np.abs(a.astype(int) - b.astype(int)).max() <= 1), key
            else:
                assert np.array_equal(a, b), key
    assert np.array_equal(back.gauss_dynamic_t_start, again.gauss_dynamic_t_start)
    assert np.array_equal(back.gauss_dynamic_t_start, world.gauss_dynamic_t_start)
    assert np.array_equal(back.static_xyz, world.static_xyz)          # surfels kept alongside
    assert back.summary()["format"] == "inspatio_world v3" and back.summary()["gaussians_dynamic"] == 100


def save_as_v2(world: World, path):
    """What an optimized world looked like on disk before version 3 (every Gaussian field as held
    in memory, f16), written the way World.save wrote it then."""
    from safetensors.numpy import save_file

    from inspatio_ros.world import GAUSSIAN_FIELDS, OPTIONAL_GAUSSIAN_FIELDS

    tensors = {k: v for k, v in world._tensors().items() if not k.startswith("gauss")}
    tensors.update({k: getattr(world, "gauss_" + k[len("gauss_"):].replace(".", "_"))
                    for k in GAUSSIAN_FIELDS if k not in OPTIONAL_GAUSSIAN_FIELDS})
    meta = {"format": "inspatio_world", "version": 2, "image_size": [world.intrinsics.width, world.intrinsics.height],
            "conventions": {}, "provenance": world.provenance, "info": world.info}
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(path),
              metadata={"inspatio_world": json.dumps(meta)})
    return path


def test_a_version_2_world_still_loads_exactly(tmp_path):
    world = gaussian_world()
    back = World.load(save_as_v2(world, tmp_path / "v2.safetensors"))
    assert read_world_metadata(tmp_path / "v2.safetensors")["version"] == 2
    for layer in ("static", "dynamic"):
        for name in ("xyz", "log_scale", "rotation", "opacity", "sh"):
            assert np.array_equal(getattr(world, f"gauss_{layer}_{name}"), getattr(back, f"gauss_{layer}_{name}"))
    assert len(back.gauss_static_surfel_rgb) == 0 and np.array_equal(back.static_xyz, world.static_xyz)


def test_v1_world_is_written_and_read_as_before(tmp_path):
    world = surfel_world()
    path = world.save(tmp_path / "w.safetensors")
    assert read_world_metadata(path)["version"] == 1
    from safetensors.numpy import load_file

    assert not any(k.startswith("gauss") for k in load_file(str(path)))
    back = World.load(path)
    assert not back.has_gaussians and back.summary()["format"] == "inspatio_world v1"
    assert np.array_equal(back.static_xyz, world.static_xyz)


def test_stored_precision_costs_no_render_quality(tmp_path):
    """Render the Gaussians' float32 parameters and the stored ones (f16 scales, 8-bit rotations,
    opacities and degree-1 colours): the images agree to > 50 dB."""
    w = surfel_world(n=400)
    g = from_surfels(w.static_xyz, w.static_rgb, w.static_radius, w.static_normal)
    g.sh[:, 1:] = torch.randn(g.sh[:, 1:].shape, generator=torch.Generator().manual_seed(3)) * 0.3
    g.log_scales += torch.randn(g.log_scales.shape, generator=torch.Generator().manual_seed(4)) * 0.3
    g.quats = torch.nn.functional.normalize(torch.randn(len(g), 4, generator=torch.Generator().manual_seed(5)), dim=1)
    import dataclasses

    stored = from_world(World.load(dataclasses.replace(w, **world_arrays(g, "static")).save(tmp_path / "w.safetensors")),
                        "static")
    K = torch.as_tensor(w.intrinsics.K, dtype=torch.float32)[None].expand(2, 3, 3)
    c2w = torch.as_tensor(w.frame_c2w, dtype=torch.float32)
    images = [rasterize(p.means, p.quats, p.scales, p.opacities, p.sh, K, c2w, 64, 48).rgb for p in (g, stored)]
    mse = float(((images[0] - images[1]) ** 2).mean())
    assert float(images[0].std()) > 0.05                    # a real picture, not an empty one
    assert 10 * np.log10(1.0 / max(mse, 1e-20)) > 50.0


def rewrite_world_file(path, change_tensors=None, change_meta=None):
    from safetensors.numpy import load_file, save_file

    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    meta = json.loads(json.loads(raw[8:8 + n])["__metadata__"]["inspatio_world"])
    tensors = load_file(str(path))
    if change_tensors:
        change_tensors(tensors)
    if change_meta:
        change_meta(meta)
    save_file(tensors, str(path), metadata={"inspatio_world": json.dumps(meta)})


@pytest.mark.parametrize("damage, words", [
    (lambda t: t.update({"gauss_static.sh_rest": t["gauss_static.sh_rest"][:, :1]}), "'gauss_static.sh_rest' has dtype"),
    (lambda t: t.update({"gauss_static.opacity": t["gauss_static.opacity"].astype(np.float16)}),
     "'gauss_static.opacity' has dtype float16"),
    (lambda t: t["gauss_dynamic.sh_rest_scale"].__setitem__((0, 0), np.nan), "'gauss_dynamic.sh_rest_scale' is not"),
    (lambda t: t.update({"gauss_static.sh_dc": t["gauss_static.sh_dc"][:-2]}), "different lengths"),
    (lambda t: t.pop("gauss_dynamic.sh_dc"), "lacks gauss_dynamic.sh_dc"),
    (lambda t: t.update({"gauss_static.opacity": t["gauss_static.opacity"][:-1]}), "different lengths"),
    (lambda t: t["gauss_dynamic.log_scale"].__setitem__((3, 1), np.nan), "'gauss_dynamic.log_scale' holds NaN"),
    (lambda t: t["gauss_static.xyz"].__setitem__((0, 0), np.inf), "'gauss_static.xyz' holds NaN"),
    (lambda t: t["gauss_static.rotation"].__setitem__(5, 0), "zero quaternion"),
    (lambda t: t.pop("gauss_dynamic.t_end"), "lacks gauss_dynamic.t_end"),
])
def test_corrupt_gaussian_layer_is_one_clear_error(tmp_path, damage, words):
    path = gaussian_world().save(tmp_path / "w.safetensors")
    rewrite_world_file(path, damage)
    assert_one_clear_gaussian_layer_error(path, words)


def assert_one_clear_gaussian_layer_error(path, words):
    """Loading ``path`` fails with one InputError line matching ``words`` that names the file and
    the fix (optimize the world again)."""
    with pytest.raises(WorldFileError, match=words) as err:
        World.load(path)
    message = str(err.value)
    assert str(path) in message and "inspatio-ros optimize" in message and "\n" not in message
    assert isinstance(err.value, InputError)


def test_wrong_version_keeps_the_existing_errors(tmp_path):
    path = gaussian_world().save(tmp_path / "w.safetensors")
    rewrite_world_file(path, change_meta=lambda m: m.update(version=4))
    with pytest.raises(WorldFileError, match="format version 4.*upgrade inspatio_ros"):
        World.load(path)
    rewrite_world_file(path, change_meta=lambda m: m.update(version=0))
    with pytest.raises(WorldFileError, match="rebuild"):
        World.load(path)


def test_a_failed_v2_save_leaves_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "w.safetensors"
    surfel_world().save(target)
    before = target.read_bytes()
    import safetensors.numpy

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(safetensors.numpy, "save_file", boom)
    with pytest.raises(RuntimeError):
        gaussian_world().save(target)
    assert target.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["w.safetensors"]
