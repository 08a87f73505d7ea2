"""Fusion's view consistency and the dynamic layer: points other frames see through are dropped,
a moving car goes into the dynamic layer with the time span of the frame that saw it."""
import numpy as np
import pytest

from inspatio_ros.camera import Intrinsics
from inspatio_ros.ingest.build import build_world
from inspatio_ros.ingest.consistency import seen_through
from inspatio_ros.ingest.fusion import (FusionSettings, fill_unknown_depth, frame_local_time_spans,
                                       moving_time_spans)
from inspatio_ros.video import read_image


def test_a_floater_is_seen_through_and_a_wall_is_not():
    intr = Intrinsics(50.0, 50.0, 31.5, 23.5, 64, 48)
    wall = np.full((48, 64), 10.0, np.float32)
    with_floater = wall.copy()
    with_floater[20:28, 28:36] = 4.0                    # a wrong depth in front of the wall
    c2w = {0: np.eye(4), 1: np.eye(4), 2: np.eye(4)}
    c2w[1][0, 3] = 0.5                                  # two more cameras to the right
    c2w[2][0, 3] = 1.0
    counts = seen_through({0: with_floater, 1: wall, 2: wall}, c2w, intr, FusionSettings())
    assert (counts[0][20:28, 28:36] == 2).all()         # both others see the wall behind it
    assert counts[0][:, :20].max() == 0 and counts[1].max() == 0 and counts[2].max() == 0


def test_time_spans_tile_the_fused_frames():
    times = np.arange(12) / 10.0
    fused = [0, 1, 2, 3, 5, 6, 7, 8, 10, 11]           # 4 and 9 held out
    spans = moving_time_spans(times, fused)
    for i in fused:
        assert spans[i][0] <= times[i] <= spans[i][1]
    # Held-out frame 4 (t=0.4) lies in exactly one span, the later neighbour's.
    holders = [i for i in fused if spans[i][0] <= 0.4 <= spans[i][1]]
    assert holders == [5]
    assert spans[0][0] == pytest.approx(-0.05) and spans[11][1] == pytest.approx(1.15)


def test_local_spans_show_the_neighbours_of_a_held_out_time():
    times = np.arange(12) / 10.0
    fused = [0, 1, 2, 3, 5, 6, 7, 8, 10, 11]           # 4 and 9 held out
    spans = frame_local_time_spans(times, fused)
    alive = lambda t: [i for i in fused if spans[i][0] <= t <= spans[i][1]]  # noqa: E731
    assert alive(0.4) == [3, 5] and alive(0.9) == [8, 10]
    assert alive(0.6) == [5, 6, 7]                      # a fused frame's own time: it and its neighbours
    assert alive(0.0) == [0, 1] and alive(1.1) == [10, 11]


def test_unknown_depth_is_filled_from_the_known_inverse_depth():
    depth = np.full((48, 64), 10.0, np.float32)
    depth[:, 32:] = 20.0
    depth[:8] = np.inf                                  # sky
    depth[20:30, 10:20] = np.nan                        # a hole inside the 10 m wall
    out = fill_unknown_depth(depth, 1000.0)
    assert np.isfinite(out[20:30, 10:20]).all() and np.abs(out[20:30, 10:20] - 10.0).max() < 0.5
    assert np.isposinf(out[:8]).all() and (out[8:, 32:] == 20.0).all()
    assert fill_unknown_depth(np.full((4, 4), np.nan, np.float32), 1000.0).shape == (4, 4)


def _wall(z, x0, x1, colour, n=40):
    """Points of a fronto-parallel wall at depth z between x0 and x1 (camera at the origin)."""
    x, y = np.meshgrid(np.linspace(x0, x1, n), np.linspace(-z * 0.8, z * 0.8, n))
    xyz = np.stack([x.ravel(), y.ravel(), np.full(x.size, z)], 1).astype(np.float32)
    return xyz, np.tile(np.array(colour, np.uint8), (len(xyz), 1)), np.full(len(xyz), 0.05 * z, np.float32)


def test_frame_local_layer_is_drawn_before_the_static_layer():
    """A world with a frame-local layer: at a time it covers, its surfels are drawn even where the
    static layer has a nearer surface; the static layer shows only where the local layer (after
    hole filling) has nothing, and everywhere at times the local layer does not cover."""
    from inspatio_ros.render import Renderer, RenderSettings
    from inspatio_ros.world import World

    intr = Intrinsics(40.0, 40.0, 31.5, 23.5, 64, 48)
    s_xyz, s_rgb, s_rad = _wall(10.0, -10.0, 10.0, (255, 0, 0), 80)        # red, near, everywhere
    l_xyz, l_rgb, l_rad = _wall(12.0, -12.0, 0.0, (0, 255, 0), 60)         # green, farther, left half
    world = World(intr, s_xyz, s_rgb, s_rad, np.zeros((len(s_xyz), 3), np.int8), np.zeros(len(s_xyz), np.int32),
                  np.eye(4)[None], np.zeros(1), np.zeros(1, np.int32),
                  dynamic_xyz=l_xyz, dynamic_rgb=l_rgb, dynamic_radius=l_rad,
                  dynamic_normal=np.zeros((len(l_xyz), 3), np.int8), dynamic_t_start=np.zeros(len(l_xyz)),
                  dynamic_t_end=np.ones(len(l_xyz)), dynamic_frame=np.zeros(len(l_xyz), np.int32),
                  info={"frame_local": True})
    settings = RenderSettings(hole_fill_levels=1)
    renderer = Renderer(world, "cpu", settings)
    cams = renderer.cameras(np.eye(4)[None])
    rgb = renderer.render(cams, 0.5).rgb[0].numpy()
    assert (rgb[:, :24] == (0, 255, 0)).all()           # the local layer, though behind the red wall
    assert (rgb[:, 40:] == (255, 0, 0)).all()           # beyond its hole filling: the static layer
    assert (renderer.render(cams, 2.0).rgb[0].numpy() == (255, 0, 0)).all()   # no local surfels alive
    # Without a time: one pass over every layer (made on first use), the nearer red wall wins.
    assert renderer._all_layers is None
    assert (renderer.render(cams, None).rgb[0].numpy() == (255, 0, 0)).all()
    world.info = {}
    plain = Renderer(world, "cpu", settings).render(cams, 0.5).rgb[0].numpy()
    assert (plain == (255, 0, 0)).all()                 # one z-buffer: the nearer red wall everywhere


@pytest.fixture(scope="module")
def street_with_car(tmp_path_factory):
    from inspatio_ros.synth.generate import generate

    out = tmp_path_factory.mktemp("street_car")
    generate("street", out, size=(320, 180), frames=12, moving_cars=1, seed=1)
    return out


def _on_car(world, folder, xyz, frames):
    """Which points fall on the ground-truth moving-car mask of the frame they came from."""
    intr = world.intrinsics
    c2w_of = dict(zip(world.frame_index.tolist(), world.frame_c2w))
    hits = np.zeros(len(xyz), bool)
    for f in np.unique(frames):
        sel = frames == f
        mask = read_image(folder / "dynamic_mask" / f"{int(f):06d}.png")[..., 0] > 0
        c = c2w_of[int(f)]
        pc = (xyz[sel] - c[:3, 3]) @ c[:3, :3]
        u = np.clip(np.round(pc[:, 0] / pc[:, 2] * intr.fx + intr.cx).astype(int), 0, intr.width - 1)
        v = np.clip(np.round(pc[:, 1] / pc[:, 2] * intr.fy + intr.cy).astype(int), 0, intr.height - 1)
        hits[sel] = mask[v, u]
    return hits


def test_the_moving_car_goes_into_the_dynamic_layer(street_with_car):
    """Given depth and poses: the car ahead is seen through by later frames (it drove on), so it
    leaves the static layer and becomes dynamic points living for their frame's time span; at a
    held-out time exactly one frame's car is shown (no ghost trail)."""
    world = build_world(street_with_car, holdout=5, device="cpu")
    assert world.num_dynamic > 1000
    on_car = _on_car(world, street_with_car, world.dynamic_xyz, world.dynamic_frame)
    static_on_car = _on_car(world, street_with_car, world.static_xyz, world.static_frame)
    # Measured 99.5 % of 3,801 dynamic points on the car; 125 car points left static (3 %).
    assert on_car.mean() > 0.95
    assert static_on_car.sum() < 0.1 * world.num_dynamic
    assert len(np.unique(world.dynamic_frame)) >= 8      # every fused frame's car (10 frames)
    time_of = dict(zip(world.frame_index.tolist(), world.frame_time.tolist()))
    t = np.array([time_of[int(f)] for f in world.dynamic_frame])
    assert np.all((world.dynamic_t_start <= t) & (t <= world.dynamic_t_end))
    for t_held in world.heldout_time:
        alive = (world.dynamic_t_start <= t_held) & (t_held <= world.dynamic_t_end)
        assert len(np.unique(world.dynamic_frame[alive])) == 1
    assert world.info["report"]["points_dynamic"] == world.num_dynamic


def test_frame_local_layer_holds_every_fused_frame(street_with_car):
    """With the frame-local layer on, each fused frame's valid pixels are also kept as surfels alive
    from the previous fused frame's time to the next one's: a held-out time sees its two neighbours."""
    world = build_world(street_with_car, holdout=5, device="cpu", settings=FusionSettings(frame_local=True))
    report = world.info["report"]
    assert world.info["frame_local"] and report["points_frame_local"] > 0.9 * 10 * 320 * 180 * 0.9
    local = np.isfinite(world.dynamic_t_start) & ((world.dynamic_t_end - world.dynamic_t_start) > 0.15)
    assert local.sum() == report["points_frame_local"]
    time_of = dict(zip(world.frame_index.tolist(), world.frame_time.tolist()))
    for t_held in world.heldout_time:
        alive = local & (world.dynamic_t_start <= t_held) & (t_held <= world.dynamic_t_end)
        frames = sorted(np.unique(world.dynamic_frame[alive]).tolist())
        assert [round(time_of[f] - t_held, 3) for f in frames] == [-0.1, 0.1]
