"""The learned sky (gaussians/sky.py): its texture maps directions as documented, survives the
world file, a damaged one is one clear error; on a toy street with sky the optimizer leaves the
build's far shell out, and the held-out and sideways-moved views' sky is better than with the
shell turned into Gaussians, on the Gaussian drawing and on the CPU surfel drawing."""
import dataclasses
import math

import numpy as np
import pytest
import torch

from inspatio_ros.errors import InputError
from inspatio_ros.gaussians.optimize import OptimizeSettings, initial_gaussians, optimize
from inspatio_ros.gaussians.sky import SkyMap, initial_sky, open_sky, sky_shell, world_sky
from inspatio_ros.generator.data import frame_loader
from inspatio_ros.render import Renderer
from inspatio_ros.world import World

from toy import render_sky_truth, toy_poses, toy_sky_truth, toy_sky_world


def test_texture_maps_up_down_and_wraps_round_the_horizon():
    up, forward = np.array([0.0, -1.0, 0.0]), np.array([0.0, 0.0, 1.0])
    rgb = torch.zeros(8, 16, 3)
    rgb[:4, :, 2] = 1.0                      # upper half blue
    rgb[4:, :, 0] = 1.0                      # lower half red
    rgb[:, 0, 1] = rgb[:, -1, 1] = 1.0       # green at azimuth ±π (behind)
    sky = SkyMap(rgb, up, forward)
    d = torch.tensor([[0.0, -1.0, 0.0], [0.0, 1.0, 0.0], [0.0, -0.1, -1.0], [0.0, -0.1, 1.0]])
    c = sky(torch.nn.functional.normalize(d, dim=1))
    assert c[0, 2] > 0.99 and c[1, 0] > 0.99                         # straight up blue, down red
    assert c[2, 1] > 0.99 and c[3, 1] < 0.01                         # behind: the wrapped column
    # Either side of azimuth π the colour is continuous.
    a, b = sky(torch.tensor([[0.01, -0.1, -1.0], [-0.01, -0.1, -1.0]]))
    assert torch.allclose(a, b, atol=0.05)


def test_sky_survives_the_world_file_and_damage_is_one_error(tmp_path):
    world, _ = toy_sky_world(tmp_path)
    shell = sky_shell(world, world.static_xyz)
    assert 0 < shell.sum() < len(shell) and not shell[:len(toy_sky_truth()["means"])].any()
    sky = initial_sky(world, world.static_xyz[shell], world.static_rgb[shell])
    # Initialised from the shell's colours: the sky toy's pale-to-blue, not the grey default.
    assert float((sky.rgb[..., 2] - sky.rgb[..., 0]).detach().max()) > 0.2
    saved = dataclasses.replace(world, info={"sky": sky.to_info()}).save(tmp_path / "w.safetensors")
    loaded = world_sky(World.load(saved))
    assert torch.allclose(loaded.rgb, sky.rgb, atol=1e-4)
    assert world_sky(world) is None
    bad = dataclasses.replace(world, info={"sky": {**sky.to_info(), "up": [0, 0, 2]}})
    with pytest.raises(InputError, match="sky"):
        world_sky(bad)
    with pytest.raises(InputError, match="sky"):
        world_sky(dataclasses.replace(world, info={"sky": {"model": "equirectangular"}}))
    # The optimizer starts without the shell's surfels when it learns a sky, with them when not.
    assert len(initial_gaussians(world, without_sky_shell=True)) == int((~shell).sum())
    assert len(initial_gaussians(world)) == len(shell)


def test_open_sky_keeps_wide_empty_areas_not_gaps():
    coverage = torch.ones(1, 20, 30, dtype=torch.bool)
    coverage[0, :8] = False                   # a wide empty band: sky
    coverage[0, 14, 10:12] = False            # a 2-pixel gap between surfels
    sky = open_sky(coverage)
    assert bool(sky[0, :8].all()) and not bool(sky[0, 8:].any())


def _psnr(img, truth, mask):
    e = ((img.astype(np.float32) - truth.astype(np.float32)) ** 2).mean(-1)[mask].mean()
    return 10 * math.log10(255 ** 2 / max(e, 1e-9))


@pytest.mark.slow       # two 100-step toy optimizations, ~40 s of CPU
def test_a_learned_sky_beats_the_far_shell_in_new_views(tmp_path):
    world, _ = toy_sky_world(tmp_path)
    fast = dict(iterations=100, seed=0, lr_sh0=0.03, densify_from=50, densify_every=50, densify_until=0.7)
    with_sky = optimize(world, frame_loader(world), OptimizeSettings(sky=True, **fast))
    with_shell = optimize(world, frame_loader(world), OptimizeSettings(sky=False, **fast))
    assert "sky" in with_sky.world.info and "sky" not in with_shell.world.info
    assert with_sky.gaussians < with_shell.gaussians / 3           # the shell's surfels are not Gaussians
    truth = toy_sky_truth()
    views = [world.heldout_c2w[0]]
    for dx in (-0.5, 0.5):
        c = world.heldout_c2w[0].copy()
        c[0, 3] += dx
        c[1, 3] += 0.3
        views.append(c)
    scores = {}
    for name, result in (("sky", with_sky), ("shell", with_shell)):
        for gaussians in (True, False):
            r = Renderer(result.world, "cpu", gaussians=gaussians)
            for k, c2w in enumerate(views):
                gt, sky = render_sky_truth(truth, c2w[None])
                img = r.render(r.cameras(c2w[None]), 0.3).rgb[0].numpy()
                scores[name, gaussians, k] = (_psnr(img, gt[0], sky[0]), _psnr(img, gt[0], ~sky[0]))
    for k in range(3):
        sky_px, rest = scores["sky", True, k]
        shell_sky_px, shell_rest = scores["shell", True, k]
        # Gaussian drawing (150 steps measured: +5.3 dB sky held-out, +6.4 to +7.1 dB moved sideways).
        assert sky_px > shell_sky_px + 2.0 and rest > shell_rest - 0.5, (k, scores)
    # The CPU surfel drawing shows the learned sky in the wide empty areas: without it (the
    # world's info.sky removed) the sky there is hole filling and background.
    bare = dataclasses.replace(with_sky.world, info={k: v for k, v in with_sky.world.info.items() if k != "sky"})
    r = Renderer(bare, "cpu")
    gt, sky = render_sky_truth(truth, views[0][None])
    without = _psnr(r.render(r.cameras(views[0][None]), 0.3).rgb[0].numpy(), gt[0], sky[0])
    assert scores["sky", False, 0][0] > without + 3.0, (scores["sky", False, 0], without)


def test_the_surfel_renderers_sky_is_the_per_pixel_sky_interpolated():
    """sky_image evaluates the sky every SKY_DRAW_STRIDE pixels and interpolates: on a smooth sky
    (the sky toy's, as a texture) within 2 grey levels of evaluating every pixel."""
    from inspatio_ros.gaussians.sky import SKY_COLUMNS, SKY_ROWS, pixel_directions, sky_image

    from toy import toy_sky

    up, forward = np.array([0.0, -1.0, 0.0]), np.array([0.0, 0.0, 1.0])
    elevation = (0.5 - (torch.arange(SKY_ROWS) + 0.5) / SKY_ROWS) * math.pi
    azimuth = ((torch.arange(SKY_COLUMNS) + 0.5) / SKY_COLUMNS * 2 - 1) * math.pi
    el, az = torch.meshgrid(elevation, azimuth, indexing="ij")
    left = torch.linalg.cross(torch.tensor(up, dtype=torch.float32), torch.tensor(forward, dtype=torch.float32))
    d = (torch.cos(el)[..., None] * (torch.cos(az)[..., None] * torch.tensor(forward, dtype=torch.float32)
                                     + torch.sin(az)[..., None] * left)
         + torch.sin(el)[..., None] * torch.tensor(up, dtype=torch.float32))
    sky = SkyMap(toy_sky(d), up, forward)
    K = torch.tensor([[[320.0, 0, 319.5], [0, 320.0, 179.5], [0, 0, 1]]])
    c2w = torch.eye(4)[None]
    with torch.no_grad():
        exact = sky(pixel_directions(K, c2w, 640, 360)).clamp(0, 1) * 255
    fast = sky_image(sky, K, c2w, 640, 360) * 255
    assert fast.shape == exact.shape and float((fast - exact).abs().max()) < 2.0


def test_the_sky_is_on_by_default_only_where_the_build_saw_sky(tmp_path):
    from inspatio_ros.gaussians.optimize import sky_default

    from toy import toy_world

    assert sky_default(toy_sky_world(tmp_path / "sky")[0])
    plain = toy_world(tmp_path / "plain")[0]
    assert not sky_default(plain)
    sky = initial_sky(plain, np.zeros((0, 3)), np.zeros((0, 3), np.uint8))
    assert not sky.rgb.detach().any()                       # no shell: black, the renderers' background
    assert sky_default(dataclasses.replace(plain, info={"sky": sky.to_info()}))
