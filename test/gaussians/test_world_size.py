"""An optimized world stores its Gaussians and a per-Gaussian colour field, not the surfels the
CPU renderer draws: those are made at load (model.world_surfels), the same split optimize fitted
the colours to. Older optimized worlds (surfels stored beside the Gaussians, no colour field)
still load and draw their stored surfels; a damaged colour field is one clear error."""
import dataclasses

import numpy as np
import pytest
import torch

from inspatio_ros.errors import InputError
from inspatio_ros.gaussians.model import (SURFEL_SPLIT_VERSION, fit_surfel_colours, from_world, source_footprint, surfel_colours,
                                          surfel_samples, world_surfels)
from inspatio_ros.render import Renderer, world_point_cloud
from inspatio_ros.world import World

from test_world_v2 import assert_one_clear_gaussian_layer_error, gaussian_world, rewrite_world_file

SURFEL_FIELDS = [f"{layer}_{name}" for layer in ("static", "dynamic") for name in ("xyz", "rgb", "radius", "normal", "frame")]


def _linear_colour(xyz: torch.Tensor) -> torch.Tensor:
    """A smooth colour over space (0-255): what a baked render of a plain wall looks like."""
    return torch.stack([110 + 30 * xyz[:, 0], 120 + 25 * xyz[:, 1], 90 + 10 * xyz[:, 2]], 1).clamp(0, 255)


def compact_world(seed=0) -> World:
    """gaussian_world's Gaussians (some large enough to split) with a colour field fitted to
    _linear_colour at their surfels, and no surfels: the layout optimize writes."""
    w = gaussian_world(seed)
    w = dataclasses.replace(w, **{name: getattr(w, name)[:0] for name in SURFEL_FIELDS},
                            dynamic_t_start=w.dynamic_t_start[:0], dynamic_t_end=w.dynamic_t_end[:0])
    fields = {}
    for layer in ("static", "dynamic"):
        g = from_world(w, layer)
        g.log_scales += 0.8          # wider than a few source pixels: split into several surfels
        w = dataclasses.replace(w, **{f"gauss_{layer}_log_scale": g.log_scales.numpy().astype(np.float16)})
        g = from_world(w, layer)
        s = surfel_samples(g, source_footprint(g.means, w))
        rgb, gradient = fit_surfel_colours(s, _linear_colour(s["xyz"]), len(g))
        fields.update({f"gauss_{layer}_surfel_rgb": rgb, f"gauss_{layer}_surfel_rgb_gradient": gradient})
    return dataclasses.replace(w, **fields, info={**w.info, "optimized": {"surfel_split": SURFEL_SPLIT_VERSION}})


def test_compact_world_round_trip_keeps_the_colour_field_and_no_surfels(tmp_path):
    world = compact_world()
    path = world.save(tmp_path / "w.safetensors")
    back = World.load(path)
    assert back.num_static == 0 and back.num_dynamic == 0 and back.num_gaussians == 400
    for layer in ("static", "dynamic"):
        for name in ("surfel_rgb", "surfel_rgb_gradient", "log_scale", "xyz"):
            a, b = getattr(world, f"gauss_{layer}_{name}"), getattr(back, f"gauss_{layer}_{name}")
            assert a.dtype == b.dtype and np.array_equal(a, b), (layer, name)
    # The file is the Gaussians (38 bytes, +16 for a dynamic one's time span) and their colour
    # field (9 bytes), the frames and the header: nothing that grows with the surfels.
    payload = 400 * (38 + 9) + 100 * 16
    assert payload < path.stat().st_size < payload + 12_000


def test_the_loader_makes_the_surfels_the_colours_were_fitted_to(tmp_path):
    world = World.load(compact_world().save(tmp_path / "w.safetensors"))
    cloud = world_point_cloud(world)
    g = from_world(world, "static")
    s = surfel_samples(g, source_footprint(g.means, world))
    n_static = len(s["xyz"])
    assert len(s["xyz"]) > 2 * len(g)                                        # large Gaussians were split
    assert torch.equal(cloud.xyz[:n_static].cpu(), s["xyz"])
    assert torch.equal(cloud.radius[:n_static].cpu(), s["radius"])
    # Each surfel's colour from the field is the smooth colour at its place (a linear function is
    # what the field represents: within rounding), not one colour per Gaussian.
    expected = _linear_colour(s["xyz"])
    got = cloud.rgb[:n_static].cpu().float()
    assert float((got - expected).abs().max()) <= 2.0
    per_gaussian = torch.zeros(len(g), 3).index_add_(0, s["owner"], expected) / torch.bincount(
        s["owner"], minlength=len(g)).clamp_min(1)[:, None].float()
    assert float((per_gaussian[s["owner"]] - expected).abs().max()) > 5.0   # so the gradient matters here
    # Dynamic Gaussians' surfels keep their time spans.
    assert torch.all(torch.isinf(cloud.t_start[:n_static].cpu()))
    assert torch.allclose(cloud.t_start[n_static:].cpu().double(), torch.tensor(0.05, dtype=torch.float64))


def test_an_optimized_world_of_the_old_layout_still_draws_its_stored_surfels(tmp_path):
    """Before 2026-12-05 optimize stored the split surfels (baked colours) beside the Gaussians and
    no colour field: such a world loads and draws those surfels, the same picture as the new
    layout when the surfels are the same."""
    compact = compact_world()
    xyz, rgb, radius, normal, t_start, t_end = world_surfels(compact)
    dyn = np.isfinite(t_start)
    old = dataclasses.replace(
        compact, static_xyz=xyz[~dyn], static_rgb=rgb[~dyn], static_radius=radius[~dyn], static_normal=normal[~dyn],
        static_frame=np.full(int((~dyn).sum()), -1, np.int32), dynamic_xyz=xyz[dyn], dynamic_rgb=rgb[dyn],
        dynamic_radius=radius[dyn], dynamic_normal=normal[dyn], dynamic_t_start=t_start[dyn], dynamic_t_end=t_end[dyn],
        dynamic_frame=np.full(int(dyn.sum()), -1, np.int32),
        **{f"gauss_{layer}_{name}": getattr(compact, f"gauss_{layer}_{name}")[:0]
           for layer in ("static", "dynamic") for name in ("surfel_rgb", "surfel_rgb_gradient")})
    path = old.save(tmp_path / "old.safetensors")
    from safetensors.numpy import load_file

    rewrite_world_file(path, lambda t: [t.pop(k) for k in list(t) if "surfel_rgb" in k])     # as the old writer wrote it
    assert not any("surfel_rgb" in k for k in load_file(str(path)))
    back = World.load(path)
    assert back.num_static == len(xyz) - int(dyn.sum()) and len(back.gauss_static_surfel_rgb) == 0
    assert np.array_equal(world_point_cloud(back).rgb.cpu().numpy(), np.concatenate([rgb[~dyn], rgb[dyn]]))
    images = []
    for w in (compact, back):
        r = Renderer(w, "cpu")
        images.append(r.render(r.cameras(w.heldout_c2w), float(w.heldout_time[0])).rgb.numpy())
    assert images[0].std() > 10 and np.array_equal(images[0], images[1])


def test_a_world_without_the_colour_field_draws_the_dc_colours(caplog):
    w = compact_world()
    bare = dataclasses.replace(w, **{f"gauss_{layer}_{name}": getattr(w, f"gauss_{layer}_{name}")[:0]
                                     for layer in ("static", "dynamic") for name in ("surfel_rgb", "surfel_rgb_gradient")})
    bare.validate()
    rgb = world_point_cloud(bare).rgb.cpu().numpy()
    assert len(rgb) == len(world_point_cloud(w).xyz) and not np.array_equal(rgb, world_point_cloud(w).rgb.cpu().numpy())
    # A field fitted to another split is not used on this one's surfels (they would get the wrong
    # colours): the DC colours again, and a warning that says how to refit it.
    other = dataclasses.replace(w, info={**w.info, "optimized": {"surfel_split": SURFEL_SPLIT_VERSION + 1}})
    with caplog.at_level("WARNING"):
        assert np.array_equal(world_point_cloud(other).rgb.cpu().numpy(), rgb)
    assert "surfel colour field was fitted to surfel split" in caplog.text and "compact" in caplog.text


@pytest.mark.parametrize("damage, words", [
    (lambda t: t.pop("gauss_static.surfel_rgb_gradient"), "only part of its surfel colour field"),
    (lambda t: t.update({"gauss_static.surfel_rgb": t["gauss_static.surfel_rgb"][:-1]}), "different lengths"),
    (lambda t: t.update({"gauss_dynamic.surfel_rgb": t["gauss_dynamic.surfel_rgb"].astype(np.float32)}),
     "'gauss_dynamic.surfel_rgb' has dtype float32"),
    (lambda t: t.update({"gauss_static.surfel_rgb_gradient": t["gauss_static.surfel_rgb_gradient"][:, :1]}),
     "'gauss_static.surfel_rgb_gradient' has dtype"),
])
def test_a_damaged_colour_field_is_one_clear_error(tmp_path, damage, words):
    path = compact_world().save(tmp_path / "w.safetensors")
    rewrite_world_file(path, damage)
    assert_one_clear_gaussian_layer_error(path, words)


def test_surfel_colours_follow_the_field():
    samples = {"owner": torch.tensor([0, 0, 1]), "uv": torch.tensor([[0.0, 0.0], [1.0, -0.5], [0.0, 0.0]])}
    rgb = torch.tensor([[100, 100, 100], [250, 0, 7]], dtype=torch.uint8)
    gradient = torch.tensor([[[10, -20, 0], [4, 4, 4]], [[0, 0, 0], [0, 0, 0]]], dtype=torch.int8)
    out = surfel_colours(samples, rgb, gradient)
    assert out.tolist() == [[100, 100, 100], [108, 78, 98], [250, 0, 7]]


def test_refit_turns_an_old_layout_world_into_todays(tmp_path):
    """tools/gaussian_size.py compact: an optimized world with stored surfels (and no colour field)
    becomes the same Gaussians with a colour field baked from their render, and no surfels."""
    from inspatio_ros.gaussians.optimize import refit_surfel_colours

    old = gaussian_world()                          # Gaussians beside 300 stored surfels, no colour field
    assert old.num_static == 300 and len(old.gauss_static_surfel_rgb) == 0
    new = World.load(refit_surfel_colours(old).save(tmp_path / "new.safetensors"))
    assert new.num_static == 0 and new.num_dynamic == 0 and new.num_gaussians == old.num_gaussians
    assert new.info["optimized"]["surfel_split"] == SURFEL_SPLIT_VERSION
    assert new.gauss_static_surfel_rgb.shape == (300, 3) and new.gauss_dynamic_surfel_rgb.shape == (100, 3)
    assert np.abs(new.gauss_static_xyz - old.gauss_static_xyz).max() == 0
    # The baked colours are the render's, not all the fallback DC colour: some Gaussians differ.
    dc = np.clip(((0.28209479 * old.gauss_static_sh[:, 0].astype(np.float32)) + 0.5) * 255, 0, 255).round()
    assert (np.abs(new.gauss_static_surfel_rgb.astype(float) - dc).max(1) > 3).mean() > 0.2
    with pytest.raises(InputError, match="no Gaussian layer"):
        refit_surfel_colours(dataclasses.replace(old, **{k: getattr(old, k)[:0] for k in (
            "gauss_static_xyz", "gauss_static_log_scale", "gauss_static_rotation", "gauss_static_opacity",
            "gauss_static_sh", "gauss_dynamic_xyz", "gauss_dynamic_log_scale", "gauss_dynamic_rotation",
            "gauss_dynamic_opacity", "gauss_dynamic_sh", "gauss_dynamic_t_start", "gauss_dynamic_t_end")}))
