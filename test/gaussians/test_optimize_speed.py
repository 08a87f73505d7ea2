"""The optimizer's step does not wait for the device: between the steps where it reads its loss
(every READ_EVERY) or densifies, the loop in optimize.py asks the device for nothing (no float()
or bool() of a tensor, no torch.nonzero, no boolean-mask indexing), so on a GPU the host can queue
the next step while the last one runs. Checked on the CPU by intercepting torch calls made from
optimize.py itself (the rasterizer and Adam are not counted: gsplat's own tile count is one read
per render, outside our control)."""
import dataclasses
import inspect
import math

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode

from inspatio_ros.gaussians import optimize as optimize_module
from inspatio_ros.errors import InputError
from inspatio_ros.gaussians.model import GaussianParams
from inspatio_ros.gaussians.optimize import READ_EVERY, OptimizeSettings, optimize
from inspatio_ros.generator.data import frame_loader

from toy import toy_world

_WAITING = {torch.Tensor.__bool__, torch.Tensor.__float__, torch.Tensor.__int__, torch.Tensor.__index__,
            torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.nonzero, torch.nonzero, torch.Tensor.any,
            torch.Tensor.all, torch.any, torch.all, torch.Tensor.cpu, torch.Tensor.numpy}


class _DeviceReads(TorchFunctionMode):
    """Counts torch calls made directly from gaussians/optimize.py that wait for the device."""

    def __init__(self):
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        caller = inspect.currentframe().f_back
        if caller is not None and caller.f_code.co_filename == optimize_module.__file__ \
                and caller.f_code.co_name != "_shuffled_frames":       # a host-side generator
            masked = func is torch.Tensor.__getitem__ and any(
                isinstance(a, torch.Tensor) and a.dtype == torch.bool for a in
                (args[1] if isinstance(args[1], tuple) else (args[1],)))
            if func in _WAITING or masked:
                self.calls.append(f"{getattr(func, '__name__', func)} at line {caller.f_lineno}")
        return func(*args, **(kwargs or {}))


def _with_moving_blobs(world):
    """The toy's 12 blobs as a dynamic layer, half of them existing only in the first frames."""
    blobs = slice(140, 152)
    n = 12
    t_end = np.where(np.arange(n) < 6, 0.25, np.inf)
    return dataclasses.replace(
        world, static_xyz=world.static_xyz[:140], static_rgb=world.static_rgb[:140],
        static_radius=world.static_radius[:140], static_normal=world.static_normal[:140],
        static_frame=world.static_frame[:140], dynamic_xyz=world.static_xyz[blobs],
        dynamic_rgb=world.static_rgb[blobs], dynamic_radius=world.static_radius[blobs],
        dynamic_normal=world.static_normal[blobs], dynamic_frame=world.static_frame[blobs],
        dynamic_t_start=np.full(n, -1.0), dynamic_t_end=t_end)


def test_ordinary_steps_read_nothing_from_the_device(tmp_path):
    world = _with_moving_blobs(toy_world(tmp_path)[0])
    s = OptimizeSettings(iterations=2 * READ_EVERY + 5, seed=0, densify_from=READ_EVERY, densify_every=READ_EVERY,
                         lr_sh0=0.03)
    by_step: dict[int, list[str]] = {}
    counter = _DeviceReads()

    def on_step(step):
        by_step[step] = list(counter.calls)
        counter.calls.clear()

    original_step_start = counter.calls
    with counter:
        result = optimize(world, frame_loader(world), s, on_step=on_step)
    assert original_step_start is counter.calls
    assert result.steps == s.iterations and len(result.losses) == s.iterations
    assert all(math.isfinite(v) for v in result.losses)
    ordinary = {k: v for k, v in by_step.items() if k % READ_EVERY and k != 1 and k != s.iterations}
    assert len(ordinary) >= 15
    assert not any(ordinary.values()), {k: v for k, v in ordinary.items() if v}
    # The check can fail: the reading steps do read (the loss, the densification's counts).
    assert by_step[READ_EVERY] and by_step[2 * READ_EVERY]


def test_rows_drawn_per_frame_are_the_alive_ones_after_edits():
    """TrainableGaussians.rows_of(f) (worked out at each edit, merged at the step without a host read) is
    exactly torch.nonzero of frame f's alive mask, or None where every Gaussian exists."""
    gen = torch.Generator().manual_seed(0)
    n = 50
    t_start = torch.where(torch.rand(n, generator=gen) < 0.5, -math.inf, torch.rand(n, generator=gen, dtype=torch.float64))
    t_end = torch.where(torch.isinf(t_start), math.inf, t_start + 0.3)
    g = GaussianParams(torch.randn(n, 3, generator=gen), torch.zeros(n, 3), torch.tensor([[1.0, 0, 0, 0]]).repeat(n, 1),
                       torch.zeros(n), torch.zeros(n, 4, 3), t_start, t_end.double())
    times = [0.0, 0.2, 0.5, 0.9, 2.0]
    tr = optimize_module.TrainableGaussians(g, OptimizeSettings(), 1.0, "cpu", times)

    def check():
        for f, t in enumerate(times):
            alive = (tr.t_start <= t) & (t <= tr.t_end)
            rows = tr.rows_of(f)
            if bool(alive.all()):
                assert rows is None
            else:
                assert torch.equal(rows, torch.nonzero(alive)[:, 0])

    check()
    assert tr.rows_of(0) is not None
    keep = torch.rand(n, generator=gen) < 0.7
    new = {k: v.detach()[:4] for k, v in tr.params.items()}
    tr.edit(keep, new, (tr.t_start[:4], tr.t_end[:4]))
    check()
    # Without dynamic Gaussians every frame draws every row as it is.
    static = optimize_module.TrainableGaussians(dataclasses.replace(g, t_start=torch.full((n,), -math.inf, dtype=torch.float64),
                                                            t_end=torch.full((n,), math.inf, dtype=torch.float64)),
                                        OptimizeSettings(), 1.0, "cpu", times)
    assert all(static.rows_of(f) is None for f in range(len(times)))


def test_opacity_reset_lowers_every_opacity_and_clears_its_moments(tmp_path):
    world, _ = toy_world(tmp_path)
    from inspatio_ros.gaussians.optimize import RESET_OPACITY, initial_gaussians

    tr = optimize_module.TrainableGaussians(initial_gaussians(world), OptimizeSettings(), 6.0, "cpu",
                                            [float(t) for t in world.frame_time])
    logits = tr.params["opacity_logits"]
    (torch.sigmoid(logits).sum() + tr.params["means"].sum()).backward()
    tr.optim.step()
    assert float(torch.sigmoid(logits).min()) > 0.5
    tr.reset_opacity(RESET_OPACITY)
    assert float(torch.sigmoid(logits).max()) <= RESET_OPACITY + 1e-6
    state = tr.optim.state[logits]
    assert not state["exp_avg"].any() and not state["exp_avg_sq"].any()
    assert tr.optim.state[tr.params["means"]]["exp_avg"].any()          # other moments kept
    with pytest.raises(InputError, match="opacity-reset-every"):
        OptimizeSettings(opacity_reset_every=-1).check()
