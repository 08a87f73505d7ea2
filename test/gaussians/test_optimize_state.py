"""The optimizer's pose refinement, depth supervision, checkpoints and device policy, on the toy
scene (test/gaussians/toy.py) on the CPU."""
import dataclasses
import math

import numpy as np
import pytest
import torch

from inspatio_ros.cli import main
from inspatio_ros.errors import InputError
from inspatio_ros.gaussians.optimize import OptimizeSettings, depth_targets, optimize, pose_exp
from inspatio_ros.generator.data import frame_loader

from toy import toy_poses, toy_world

FAST = dict(lr_sh0=0.03, densify_from=50, densify_every=50, densify_until=0.7)


def test_pose_exp_is_a_rigid_transform_and_exact_at_zero():
    d = torch.tensor([[0.0] * 6, [0.01, -0.02, 0.03, 0.1, 0.2, -0.3], [1e-6, 0, 0, 0, 0, 0]], dtype=torch.float64)
    T = pose_exp(d)
    assert torch.allclose(T[0], torch.eye(4, dtype=torch.float64))
    R = T[:, :3, :3]
    assert torch.allclose(R @ R.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(3, 3, 3), atol=1e-12)
    assert torch.allclose(T[1, :3, 3], d[1, 3:])
    # A rotation by 0.5 rad about z.
    z = pose_exp(torch.tensor([[0, 0, 0.5, 0, 0, 0]], dtype=torch.float64))[0]
    assert z[0, 0] == pytest.approx(math.cos(0.5)) and z[1, 0] == pytest.approx(math.sin(0.5))


def _reprojection_px(c2w, truth_c2w, points):
    """Mean image displacement (pixels) of ``points`` seen from ``c2w`` instead of ``truth_c2w``:
    the error that matters for the images (a sideways shift and a turn are nearly the same to a
    camera facing a wall, so the pose's own parts can trade off)."""
    from toy import INTR

    def project(pose):
        p = (points - pose[:3, 3]) @ pose[:3, :3]
        return np.stack([INTR.fx * p[:, 0] / p[:, 2] + INTR.cx, INTR.fy * p[:, 1] / p[:, 2] + INTR.cy], 1)

    return float(np.linalg.norm(project(c2w) - project(truth_c2w), axis=1).mean())


@pytest.mark.slow      # 150 optimizer steps on the CPU, ~15 s
def test_pose_refinement_reduces_a_perturbed_poses_error(tmp_path):
    """One source frame's pose is off by 14 cm (sideways and up), 1 degree of pitch and 2 of
    roll: the corrected pose the optimized world records projects the scene well under two thirds as far
    from where the true pose does, and the other frames stay put."""
    from toy import toy_truth

    world, _ = toy_world(tmp_path)
    truth = world.frame_c2w.copy()
    k = 4
    off = pose_exp(torch.tensor([[math.radians(1.0), 0.0, math.radians(2.0), 0.12, 0.08, 0.0]],
                                dtype=torch.float64))[0].numpy()
    frame_c2w = truth.copy()
    frame_c2w[k] = truth[k] @ off
    world = dataclasses.replace(world, frame_c2w=frame_c2w)
    result = optimize(world, frame_loader(world), OptimizeSettings(
        iterations=150, seed=0, pose_refine=True, lr_pose_translation=5e-3, lr_pose_rotation=1.5e-3, **FAST))
    fixed = result.world.frame_c2w
    points = toy_truth()["means"].double().numpy()
    before, after = _reprojection_px(frame_c2w[k], truth[k], points), _reprojection_px(fixed[k], truth[k], points)
    # Measured: 1.43 px before, 0.65 px after (64x48 images: a pixel is 10 cm on the wall).
    assert before > 1.0 and after < 0.6 * before, (before, after)
    others = [i for i in range(len(truth)) if i != k]
    assert max(_reprojection_px(fixed[i], truth[i], points) for i in others) < 0.5 * before
    rec = result.world.info["optimized"]
    assert rec["pose_refine"] and len(rec["pose_correction"]) == len(truth) and rec["pose_correction"][0] == [0.0] * 6
    assert len(rec["heldout_pose_correction"]) == len(world.heldout_c2w)


def test_depth_targets_are_the_builds_surfaces_where_confident(tmp_path):
    world, _ = toy_world(tmp_path)
    targets = depth_targets(world, "cpu")
    assert len(targets) == len(world.frame_c2w) and all(t is not None for t in targets)
    d = torch.stack(targets)
    finite = torch.isfinite(d)
    assert 0.5 < float(finite.float().mean()) < 1.0            # holes between the guessed surfels stay out
    assert 3.0 < float(d[finite].min()) and float(d[finite].max()) < 6.5
    # A sky shell (the build's placeholder for infinite depth) is not a measurement.
    far = dataclasses.replace(world, provenance={**world.provenance, "settings": {"fusion": {"sky_distance": 8.0}}})
    d_far = torch.stack([t if t is not None else torch.full_like(d[0], math.nan) for t in depth_targets(far, "cpu")])
    assert float(torch.isfinite(d_far).float().mean()) < float(finite.float().mean()) and \
        float(d_far[torch.isfinite(d_far)].max()) < 4.0


class _Stop(Exception):
    pass


def test_a_stopped_run_resumes_to_the_same_world(tmp_path):
    """Stopped after step 13 (checkpoint at 10), resumed: the same Gaussians, losses and poses as
    one uninterrupted run of 20 steps (densification at 5, 10 and 15 straddles the stop)."""
    world, _ = toy_world(tmp_path)
    world = dataclasses.replace(world, info={"pose_source": "estimated"})
    s = OptimizeSettings(iterations=20, seed=3, checkpoint_every=10, **{**FAST, "densify_from": 5, "densify_every": 5})
    whole = optimize(world, frame_loader(world), s)
    ckpt = tmp_path / "run.ckpt"

    def stop(step):
        if step == 13:
            raise _Stop

    with pytest.raises(_Stop):
        optimize(world, frame_loader(world), s, checkpoint=ckpt, on_step=stop)
    assert ckpt.exists()
    resumed = optimize(world, frame_loader(world), s, checkpoint=ckpt, resume=True)
    assert resumed.losses == whole.losses and resumed.gaussians == whole.gaussians
    for name in ("xyz", "log_scale", "rotation", "opacity", "sh"):
        assert np.array_equal(getattr(resumed.world, f"gauss_static_{name}"), getattr(whole.world, f"gauss_static_{name}"))
    assert np.array_equal(resumed.world.frame_c2w, whole.world.frame_c2w)
    assert not np.array_equal(whole.world.frame_c2w, world.frame_c2w)          # poses were refined
    # Other settings, or a damaged file: one clear error.
    with pytest.raises(InputError, match="other settings .*iterations"):
        optimize(world, frame_loader(world), dataclasses.replace(s, iterations=40), checkpoint=ckpt, resume=True)
    ckpt.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot be read"):
        optimize(world, frame_loader(world), s, checkpoint=ckpt, resume=True)


def test_cli_resume_without_a_checkpoint_and_big_cpu_worlds_are_clear_errors(tmp_path, capsys):
    world, folder = toy_world(tmp_path / "toy")
    path = world.save(tmp_path / "w.safetensors")
    assert main(["optimize", str(path), "--resume"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no checkpoint" in err
    big = 60_000
    rng = np.random.default_rng(0)
    large = dataclasses.replace(world, static_xyz=rng.normal(size=(big, 3)).astype(np.float32) + [0, 0, 6],
                                static_rgb=np.full((big, 3), 128, np.uint8), static_radius=np.full(big, 0.05, np.float32),
                                static_normal=np.zeros((big, 3), np.int8), static_frame=np.zeros(big, np.int32))
    large_path = large.save(tmp_path / "large.safetensors")
    if torch.cuda.is_available():
        pytest.skip("the CPU policy applies where there is no CUDA device")
    assert main(["optimize", str(large_path), "--frames", str(folder), "--iterations", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no CUDA device" in err and "--device cpu" in err
    with pytest.raises(InputError, match="--depth-weight"):
        OptimizeSettings(depth_weight=-1).check()
