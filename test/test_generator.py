"""The per-world refiner (issue 6): weights files, training, the refiner in eval / render / node.

Tiny networks and images (the 160x96 test street): CPU only, a few seconds each. Quality and
speed on real sizes are measured by bench/generator_bench.py (docs/QUALITY.md, PERFORMANCE.md).
"""
import json
import shutil
import struct

import numpy as np
import pytest
import torch

from inspatio_ros.errors import InputError
from inspatio_ros.generator import GeneratorConfig, Refiner, RefinerNet, generator_path, load_network, save_weights
from inspatio_ros.generator.data import frame_loader, prepare
from inspatio_ros.generator.train import TrainSettings, checkpoint_path, train
from inspatio_ros.world import World

from cli_helpers import run_cli

TINY = dict(steps=12, batch=2, crop=32, widths=[4, 8], leave_out=[0, 2], checkpoint_every=0)


def tiny_net(seed=0, widths=(4, 8)) -> RefinerNet:
    torch.manual_seed(seed)
    net = RefinerNet(GeneratorConfig(widths=list(widths), depth_scale=7.5))
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.05 * torch.randn_like(p))     # not the near-identity start: outputs differ
    return net


def render_batch(b=2, h=40, w=56, seed=0):
    g = torch.Generator().manual_seed(seed)
    rgb = torch.randint(0, 256, (b, h, w, 3), dtype=torch.uint8, generator=g)
    depth = torch.rand(b, h, w, generator=g) * 30
    depth[:, :5] = float("nan")
    coverage = torch.rand(b, h, w, generator=g) > 0.3
    return rgb, depth, coverage


@pytest.fixture(scope="module")
def world(street_world):
    return World.load(street_world)


@pytest.fixture(scope="module")
def data(world):
    return prepare(world, frame_loader(world), "cpu", leave_out=TINY["leave_out"])


# --- weights files -------------------------------------------------------------------------------

def test_weights_round_trip(tmp_path):
    net = tiny_net()
    path = save_weights(tmp_path / "w.generator.safetensors", net, {"steps": 3})
    loaded, meta = load_network(path)
    assert meta["version"] == 1 and meta["training"] == {"steps": 3}
    assert loaded.config == net.config
    for k, v in net.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    rgb, depth, cov = render_batch()
    out = Refiner.load(path, "cpu")(rgb, depth, cov)
    assert out.dtype == torch.uint8 and out.shape == rgb.shape
    assert (out.int() - rgb.int()).abs().float().mean() > 1.0      # it does change the image
    # Odd sizes are padded for the network and cropped back.
    assert Refiner.load(path, "cpu")(rgb[:, :37, :45], depth[:, :37, :45], cov[:, :37, :45]).shape == (2, 37, 45, 3)


def test_generator_path_is_beside_the_world(tmp_path):
    assert generator_path(tmp_path / "a.safetensors") == tmp_path / "a.generator.safetensors"


def _rewrite_meta(src, dst, change):
    with open(src, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        body = f.read()
    meta = json.loads(header["__metadata__"]["inspatio_generator"])
    change(meta)
    header["__metadata__"]["inspatio_generator"] = json.dumps(meta)
    raw = json.dumps(header).encode()
    raw += b" " * ((-len(raw)) % 8)
    dst.write_bytes(struct.pack("<Q", len(raw)) + raw + body)


@pytest.mark.parametrize("case, problem", [
    ("missing", "do not exist"),
    ("garbage", "is not a generator weights file"),
    ("world", "is not a generator weights file"),
    ("version", "have version 99"),
    ("shape", "has shape"),
])
def test_unusable_weights_give_one_clear_error(tmp_path, street_world, case, problem):
    good = save_weights(tmp_path / "good.safetensors", tiny_net())
    bad = tmp_path / "bad.generator.safetensors"
    if case == "garbage":
        bad.write_bytes(b"not a safetensors file at all")
    elif case == "world":
        shutil.copy(street_world, bad)
    elif case == "version":
        _rewrite_meta(good, bad, lambda m: m.update(version=99))
    elif case == "shape":
        _rewrite_meta(good, bad, lambda m: m["config"].update(widths=[4, 12]))
    with pytest.raises(InputError, match=problem) as err:
        Refiner.load(bad, "cpu")
    assert str(bad) in str(err.value) and "train-generator" in err.value.fix or case == "version"


# --- inference -------------------------------------------------------------------------------------

def test_batch_gives_each_camera_its_own_image():
    refiner = Refiner(tiny_net(), "cpu")
    rgb, depth, cov = render_batch(b=3)
    together = refiner(rgb, depth, cov)
    for i in range(3):
        assert torch.equal(refiner(rgb[i], depth[i], cov[i]), together[i])


# --- training ----------------------------------------------------------------------------------------

def test_leave_out_renders_use_only_fused_frames(world):
    asked = []
    load = frame_loader(world)
    d = prepare(world, lambda n: asked.append(n) or load(n), "cpu", leave_out=[0, 2])
    assert sorted(asked) == sorted(world.frame_index.tolist())
    assert not set(asked) & set(world.heldout_index.tolist())          # held-out frames never loaded
    assert d.k_of == [0, 2] * len(asked) and len(d) == 2 * len(asked)
    # Leaving out more neighbours leaves more of the image uncovered.
    cov = d.coverage.float().mean(dim=(1, 2, 3))
    assert float(cov[1::2].mean()) < float(cov[0::2].mean()) < 1.0
    assert 1.0 < d.depth_scale < 100.0


def test_training_lowers_the_loss_and_is_deterministic(world, data, tmp_path):
    s = TrainSettings(**{**TINY, "steps": 40})
    a = train(world, tmp_path / "a.safetensors", device="cpu", settings=s, data=data)
    b = train(world, tmp_path / "b.safetensors", device="cpu", settings=s, data=data)
    assert a["final_loss"] < a["initial_loss"] and b["final_loss"] == a["final_loss"]
    assert a["trained_frames"] == sorted(world.frame_index.tolist())
    assert not set(a["trained_frames"]) & set(a["heldout_frames"])
    wa, wb = load_network(tmp_path / "a.safetensors")[0], load_network(tmp_path / "b.safetensors")[0]
    for k, v in wa.state_dict().items():
        assert torch.equal(v, wb.state_dict()[k]), k
    c = train(world, tmp_path / "c.safetensors", device="cpu", settings=TrainSettings(**{**TINY, "steps": 40,
                                                                                           "seed": 1}), data=data)
    assert c["final_loss"] != a["final_loss"]


def test_resumed_training_equals_an_uninterrupted_run(world, data, tmp_path):
    s = TrainSettings(**TINY)
    full = tmp_path / "full.safetensors"
    train(world, full, device="cpu", settings=s, data=data)
    part = tmp_path / "part.safetensors"
    first = train(world, part, device="cpu", settings=s, data=data, stop_after=5)
    assert first["stopped"] and checkpoint_path(part).exists() and not part.exists()
    with pytest.raises(InputError, match="other training settings"):
        train(world, part, device="cpu", settings=TrainSettings(**{**TINY, "lr": 1e-2}), data=data, resume=True)
    train(world, part, device="cpu", settings=s, data=data, resume=True)
    assert part.exists() and not checkpoint_path(part).exists()
    a, b = load_network(full)[0].state_dict(), load_network(part)[0].state_dict()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# --- through the CLI, the simulator and the node's parameters ----------------------------------------

def test_cli_train_then_eval_and_render_with_the_refiner(street_world, street, tmp_path):
    w = tmp_path / "street.safetensors"
    shutil.copy(street_world, w)
    proc = run_cli("eval", str(w), "--gt", str(street), "--json", "--no-shift", "--generator", "refiner")
    assert proc.returncode == 2 and "street.generator.safetensors do not exist" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = run_cli("--device", "cpu", "train-generator", str(w), "--steps", "4", "--batch", "2", "--crop", "32",
                   "--widths", "4,8", "--leave-out", "0")
    assert proc.returncode == 0, proc.stderr
    assert generator_path(w).exists()
    raw = json.loads(run_cli("eval", str(w), "--gt", str(street), "--json", "--no-shift").stdout.splitlines()[-1])
    proc = run_cli("eval", str(w), "--gt", str(street), "--json", "--no-shift", "--generator", "refiner")
    assert proc.returncode == 0, proc.stderr
    refined = json.loads(proc.stdout.splitlines()[-1])
    assert raw["generator"] == "none" and "raw" not in raw
    assert refined["generator"] == "refiner"
    assert refined["raw"]["psnr"] == raw["psnr"] and refined["raw"]["ssim"] == raw["ssim"]
    assert refined["psnr"] != raw["psnr"] and 10 < refined["psnr"] < 40
    video = tmp_path / "v.mp4"
    proc = run_cli("render", str(w), "--traj", "static", "--frames", "3", "-o", str(video), "--generator", "refiner")
    assert proc.returncode == 0, proc.stderr
    assert video.stat().st_size > 0


def test_simulator_applies_the_refiner(world, tmp_path):
    from inspatio_ros.sim.rig import load_rig, recorded_camera_parameters
    from inspatio_ros.sim.simulator import Simulator

    net = tiny_net()
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.fill_(0.2)                 # refined = render + 0.2 (51 grey levels), clamped
    rig = load_rig(recorded_camera_parameters(world))
    t = float(world.frame_time[2])
    raw = Simulator(world, rig, device="cpu")
    refined = Simulator(world, rig, device="cpu", refiner=Refiner(net, "cpu"))
    pose = raw.recorded_base_pose(t)
    a = raw.render(0.0, t, pose).cameras[0].rgb.astype(int)
    b = refined.render(0.0, t, pose).cameras[0].rgb.astype(int)
    assert np.array_equal(b, np.minimum(a + 51, 255))


def test_node_parameters_choose_the_generator():
    from inspatio_ros.ros.params import split_parameters

    node = split_parameters({})[0]
    assert node.generator == "none" and node.generator_weights == ""
    assert split_parameters({"generator": "refiner"})[0].generator == "refiner"
    with pytest.raises(InputError, match="'generator' = 'gan' is out of range"):
        split_parameters({"generator": "gan"})


# Minutes of node processes, builds or training on 2 cores: left out of the quick loop
# (`pytest -m "not slow"`); CI runs everything.
pytestmark = pytest.mark.slow
