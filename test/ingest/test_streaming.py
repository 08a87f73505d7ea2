"""The build streams: frames are decoded once into a disk-backed store, and multi-view stereo, the
view check and fusion hold a window of frames, not the video, so memory does not grow with the
video's length (issue 26 item 6). Each test runs the same stage on a short and a long input and
checks that what it held at once did not grow."""
from dataclasses import replace

import numpy as np
import pytest

from inspatio_ros.camera import Intrinsics
from inspatio_ros.ingest.spill import ArrayStore, CachedLoader, PackedMaskStore


def test_array_store_reads_back_what_was_written_and_caches_a_bounded_number():
    store = ArrayStore((6, 5, 3), np.uint8, cache_bytes=4 * 90)      # room for 4 records
    rng = np.random.default_rng(0)
    written = {i: rng.integers(0, 256, (6, 5, 3), dtype=np.uint8) for i in range(50)}
    for i in (7, 3, *range(50)):               # out of order, some twice
        store.put(i, written[i])
    assert len(store) == 50 and 49 in store and 50 not in store
    for i in range(50):
        assert np.array_equal(store.get(i), written[i])
        assert store.alive() <= 4
    assert np.array_equal(store[3], written[3])
    with pytest.raises(KeyError):
        store.get(50)
    with pytest.raises(ValueError):
        store.put(1, np.zeros((6, 5), np.uint8))
    store.close()


def test_masks_are_kept_bit_packed():
    masks = PackedMaskStore((7, 9))
    mask = np.random.default_rng(1).random((7, 9)) > 0.5
    masks.put(4, mask)
    assert np.array_equal(masks[4], mask) and masks.get(5) is None and masks.keys() == [4]


def test_cached_loader_decodes_each_frame_once_within_its_window():
    calls = []

    def load(i):
        calls.append(i)
        return np.full((4, 4, 3), i, np.uint8)
    cached = CachedLoader(load, cache_bytes=3 * 48)
    for i in (0, 1, 0, 2, 1, 0, 5, 0):
        assert cached(i)[0, 0, 0] == i
    assert calls == [0, 1, 2, 5] and cached.alive() <= 3
    with pytest.raises(ValueError):
        cached(0)[0, 0, 0] = 9                 # shared by every caller: read-only


def test_a_video_is_decoded_once_into_the_store(tmp_path, monkeypatch):
    from inspatio_ros import video
    from inspatio_ros.ingest.sources import open_input

    frames = [np.full((48, 64, 3), 4 * i, np.uint8) for i in range(30)]
    for i, f in enumerate(frames):
        f[i:i + 5, 10:20] = 255
    video.write_video(tmp_path / "clip.mp4", frames, fps=10)
    decoded, _ = video.read_video(tmp_path / "clip.mp4", stride=2, max_size=32)
    passes = []
    original = video.iter_video

    def counting(*args, **kwargs):
        passes.append(1)
        return original(*args, **kwargs)
    monkeypatch.setattr(video, "iter_video", counting)
    fs = open_input(tmp_path / "clip.mp4", stride=2, max_size=32)
    assert len(passes) == 1 and len(fs) == 15 and fs.frame_store is not None
    for i in (0, 14, 3, 3, 9):
        assert np.array_equal(fs.load(i), decoded[i])
    assert fs.load(0).shape == (24, 32, 3) and list(fs.index) == list(range(0, 30, 2))


def _texture(h, w, seed):
    rng = np.random.default_rng(seed)
    small = rng.random((h // 4 + 1, w // 4 + 1))
    return np.kron(small, np.ones((4, 4)))[:h, :w]


def _corridor(count, step=0.6):
    """A camera driving forward between two textured walls over a textured road: frames (grey
    uint8, rendered by ray casting), camera-to-world poses and intrinsics."""
    intr = Intrinsics(40.0, 40.0, 31.5, 23.5, 64, 48)
    wall_l, wall_r, road = _texture(64, 512, 1), _texture(64, 512, 2), _texture(64, 512, 3)
    v, u = np.mgrid[0:48, 0:64].astype(np.float64)
    rays = np.stack([(u - intr.cx) / intr.fx, (v - intr.cy) / intr.fy, np.ones_like(u)], -1)
    frames, c2w = [], []
    for k in range(count):
        z0 = k * step
        with np.errstate(divide="ignore", invalid="ignore"):
            t_left = np.where(rays[..., 0] < 0, -3.0 / rays[..., 0], np.inf)
            t_right = np.where(rays[..., 0] > 0, 3.0 / rays[..., 0], np.inf)
            t_road = np.where(rays[..., 1] > 0, 1.5 / rays[..., 1], np.inf)
        t = np.minimum(np.minimum(t_left, t_right), np.minimum(t_road, 60.0))
        z = z0 + t * rays[..., 2]
        along = np.clip((z * 8).astype(int) % 512, 0, 511)
        height = np.clip(((rays[..., 1] * t + 1.5) * 12).astype(int), 0, 63)
        across = np.clip(((rays[..., 0] * t + 3.0) * 10).astype(int), 0, 63)
        img = np.where(t == t_left, wall_l[height, along], np.where(t == t_right, wall_r[height, along],
                                                                    np.where(t == t_road, road[across, along], 0.5)))
        frames.append((img * 255).astype(np.uint8))
        pose = np.eye(4)
        pose[2, 3] = z0
        c2w.append(pose)
    return frames, np.asarray(c2w), intr


@pytest.mark.parametrize("road_plane", [False, True])
def test_dense_depth_holds_a_window_of_frames_not_the_video(road_plane, monkeypatch):
    """Multi-view stereo on 10 and on 30 frames holds the same number of frames' matching results at
    once: the sources' reach (and, while the road plane is fitted, its first frames)."""
    from inspatio_ros.ingest.mvs import MVSSettings, dense
    from inspatio_ros.ingest.mvs import dense_depth

    monkeypatch.setattr(dense, "ROAD_PLANE_FRAMES", 6)
    settings = MVSSettings(max_size=64, planes=16, pyramid_levels=1, refine_steps=5, slanted_planes=False,
                           road_plane=road_plane, propagate=1, source_baseline=0, max_offset=4, source_step=1,
                           max_depth_uncertainty=0.5)      # small frames, little parallax: a loose filter
    held = {}
    for count in (10, 30):
        frames, c2w, intr = _corridor(count)
        result = dense_depth(lambda i: frames[i], c2w, intr, list(range(count)), settings, "cpu", progress_bar=False)
        assert sorted(result.maps) == list(range(count)) and len(result.moving) == count
        assert result.maps.alive() <= 2 * 64 * 48 * 4 * count        # what its cache holds: bounded
        assert np.isfinite(result.maps[count // 2][0]).mean() > 0.3   # it measured the corridor
        held[count] = result.frames_held
    assert held[30] == held[10] and held[30] <= 6 + 2 * 4 + 1


def _wall_frames(count, step=0.8):
    """A camera sliding sideways along a textured wall 10 m ahead (4 px a frame), given depth (a few frames
    with a floater in front) and a moving blob in some frames."""
    from inspatio_ros.ingest.depth import Depth
    from inspatio_ros.ingest.frames import Frames
    from inspatio_ros.ingest.poses import Poses
    from inspatio_ros.ingest.sources import FrameSet

    intr = Intrinsics(50.0, 50.0, 31.5, 23.5, 64, 48)
    texture = _texture(48, 64 + 8 * count, 5)
    images = [np.repeat((texture[:, 4 * k:4 * k + 64, None] * 255).astype(np.uint8), 3, 2) for k in range(count)]
    c2w = np.repeat(np.eye(4)[None], count, 0)
    c2w[:, 0, 3] = np.arange(count) * step
    moving = {k: np.zeros((48, 64), bool) for k in range(count)}
    for k in range(3, count, 7):
        moving[k][10:20, 20:30] = True

    def depth(i, shape):
        d = np.full(shape, 10.0, np.float32)
        if i % 5 == 2:
            d[30:36, 30:36] = 3.0                # a floater the neighbours see through
        return d
    fs = FrameSet("wall", [f"{k:06d}" for k in range(count)], np.arange(count) / 10.0, lambda i: images[i])
    frames = Frames("wall", fs, images[0], 64, 48, (64, 48), intr, "given", ())
    poses = Poses(c2w, np.arange(count) / 10.0, "given", {"pose_source": "given", "scale": "given"})
    return frames, poses, Depth(depth, "given", moving=moving)


def test_fusion_and_view_check_hold_a_window_of_frames_not_the_video():
    """Fusion of 30 and of 90 frames of a camera sliding along a wall: the view check holds the
    same number of depth maps, and the surfels new frames are compared with stay those the recent
    frames see, while the world itself keeps growing."""
    import torch

    from inspatio_ros.ingest.fusion import FusionSettings, fuse

    held, points = {}, {}
    for count in (30, 90):
        frames, poses, depth = _wall_frames(count)
        fused = fuse(frames, poses, depth, np.zeros(count, bool), FusionSettings(frame_local=False),
                     torch.device("cpu"))
        held[count], points[count] = fused.held_at_once, len(fused.xyz)
        assert max(fused.seen_through) > 0.005       # the floaters were seen through and dropped
        assert len(fused.dynamic["dynamic_xyz"]) > 0  # the moving blobs went into the dynamic layer
    # check_neighbours (16) either side and the frame itself, however many frames there are
    assert held[30]["depth maps (view check)"] <= held[90]["depth maps (view check)"] == 2 * 16 + 1
    assert held[90]["depth maps (fusion)"] == held[30]["depth maps (fusion)"] <= 2 * 3 + 1
    assert points[90] > 2 * points[30]
    assert held[90]["surfels compared"] < 1.3 * held[30]["surfels compared"]


def test_a_long_video_thins_the_frame_local_layer_to_its_budget():
    """Every pixel of every frame in the frame-local layer does not fit a long video: over
    local_max_points each frame keeps every S-th pixel across and down, with S-times larger
    surfels, and the build report says so."""
    import torch

    from inspatio_ros.ingest.fusion import FusionSettings, fuse, local_pixel_step

    assert local_pixel_step(10, 1000, 0) == 1 and local_pixel_step(10, 1000, 10_000) == 1
    assert local_pixel_step(10, 1000, 2_500) == 2 and local_pixel_step(6000, 640 * 360, 60_000_000) == 5
    frames, poses, depth = _wall_frames(12)
    whole = fuse(frames, poses, depth, np.zeros(12, bool), FusionSettings(frame_local=True, check_neighbours=0),
                 torch.device("cpu"))
    thinned = fuse(frames, poses, depth, np.zeros(12, bool),
                   FusionSettings(frame_local=True, check_neighbours=0, local_max_points=12 * 64 * 48 // 4),
                   torch.device("cpu"))
    assert not whole.notes and "every 2th pixel" in thinned.notes[0]
    assert 0.2 * whole.local_points < thinned.local_points <= 0.25 * whole.local_points
    local = slice(len(thinned.dynamic["dynamic_radius"]) - thinned.local_points, None)
    assert np.median(thinned.dynamic["dynamic_radius"][local]) == pytest.approx(
        2 * np.median(whole.dynamic["dynamic_radius"][len(whole.dynamic["dynamic_radius"]) - whole.local_points:]), rel=0.02)
    assert len(thinned.xyz) == len(whole.xyz)                # the static layer is not thinned


def test_a_long_video_thins_the_static_layer_to_its_budget():
    """Over static_max_points, frames add every S-th pixel of what they would add (their share of
    the budget), and the build report says so; the world stays within the budget."""
    import torch

    from inspatio_ros.ingest.fusion import FusionSettings, fuse

    frames, poses, depth = _wall_frames(12)
    settings = FusionSettings(frame_local=False, check_neighbours=0)
    whole = fuse(frames, poses, depth, np.zeros(12, bool), settings, torch.device("cpu"))
    budget = len(whole.xyz) // 3
    thinned = fuse(frames, poses, depth, np.zeros(12, bool), replace(settings, static_max_points=budget),
                   torch.device("cpu"))
    assert not any("static layer" in n for n in whole.notes)
    assert 0.5 * budget < len(thinned.xyz) <= budget
    assert any(n.startswith("static layer thinned on") for n in thinned.notes)
    assert thinned.radius.max() > 1.9 * whole.radius.max()
