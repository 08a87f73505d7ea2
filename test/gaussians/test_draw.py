"""The renderer's Gaussian drawing (gaussians/draw.py, used on CUDA with gsplat; here forced on the
CPU through the reference rasterizer): one pass gives the image, depth in metres and coverage, and
moving Gaussians appear only inside their time spans."""
import dataclasses

import numpy as np
import torch

from inspatio_ros.gaussians.model import GaussianParams, world_arrays
from inspatio_ros.gaussians.rasterize import SH_C0
from inspatio_ros.metrics import psnr
from inspatio_ros.render import Renderer

from toy import render_truth, toy_truth, toy_world


def _world_with_truth(tmp_path, car_span=None):
    world, _ = toy_world(tmp_path)
    t = toy_truth()
    logit = torch.log(t["opacities"] / (1 - t["opacities"]))
    params = GaussianParams(t["means"], torch.log(t["scales"]), t["quats"], logit, t["sh"])
    fields = world_arrays(params, "static")
    n = len(params)
    in_front = torch.tensor(world.frame_c2w[0, :3, 3] + [0.0, 0.0, 2.0], dtype=torch.float32)[None]
    black = torch.zeros(1, 4, 3)
    black[:, 0] = -0.5 / SH_C0
    car = GaussianParams(in_front, torch.log(torch.full((1, 3), 0.3)), torch.tensor([[1.0, 0, 0, 0]]),
                         torch.tensor([4.0]), black,
                         torch.tensor([car_span[0] if car_span else 0.0], dtype=torch.float64),
                         torch.tensor([car_span[1] if car_span else 0.0], dtype=torch.float64))
    dyn = world_arrays(car if car_span else GaussianParams(*(x[:0] for x in (car.means, car.log_scales, car.quats,
                                                                              car.opacity_logits, car.sh, car.t_start,
                                                                              car.t_end))), "dynamic")
    return dataclasses.replace(world, **fields, **dyn), n


def test_gaussian_drawing_gives_image_depth_and_coverage_in_one_pass(tmp_path):
    world, _ = _world_with_truth(tmp_path)
    r = Renderer(world, "cpu", gaussians=True)
    assert r.gaussians is not None and Renderer(world, "cpu").gaussians is None      # the CPU draws surfels by default
    out = r.render(r.cameras(world.heldout_c2w), float(world.heldout_time[0]))
    rgb, depth, cov = (a[0] for a in out.numpy())
    truth = render_truth(toy_truth(), world.heldout_c2w)[0]
    assert rgb.dtype == np.uint8 and psnr(rgb, truth) > 40.0
    assert cov.dtype == bool and cov.mean() > 0.8
    assert np.all(np.isnan(depth[~cov])) and np.nanmedian(depth) == np.float32(np.nanmedian(depth))
    assert 5.5 < np.nanmedian(depth) < 6.5


def test_a_moving_gaussian_is_drawn_only_inside_its_time_span(tmp_path):
    world, _ = _world_with_truth(tmp_path, car_span=(0.15, 0.25))
    r = Renderer(world, "cpu", gaussians=True)
    cams = r.cameras(world.frame_c2w[:1])
    during, after = (r.render(cams, t).numpy() for t in (0.2, 0.5))
    centre = (slice(20, 28), slice(28, 36))         # around the first camera's principal point
    assert np.nanmedian(during[1][0][centre]) < 2.5 < 5.5 < np.nanmedian(after[1][0][centre])
    assert during[0][0][centre].mean() < after[0][0][centre].mean() - 20      # the black car hides the wall
