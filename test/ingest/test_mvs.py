"""Dense depth from video (plane-sweep MVS) against the synthetic street's exact depth, and a build
from frames alone through the real CLI."""
import json
import shutil

import numpy as np
import pytest

from inspatio_ros.camera import load_camera_info
from inspatio_ros.ingest.mvs import MVSSettings, dense_depth, depth_bounds
from inspatio_ros.ingest.mvs.filters import fill_planar_holes, moving_object_mask, sky_and_surfaces, sky_mask
from inspatio_ros.ingest.road import fit_road_plane
from inspatio_ros.posefile import read_poses
from inspatio_ros.video import read_image

from cli_helpers import run_cli


@pytest.fixture(scope="module")
def street320(tmp_path_factory):
    """A 320x180 static street: 160x96 frames are too small for window matching."""
    from inspatio_ros.synth.generate import generate

    out = tmp_path_factory.mktemp("street320")
    generate("street", out, size=(320, 180), frames=12, moving_cars=0, seed=1)
    return out


def _scene(folder):
    intr = load_camera_info(folder / "camera_info.yaml")
    c2w, _ = read_poses(folder / "poses_kitti.txt")
    names = sorted((folder / "frames").glob("*.png"))
    truth = [np.load(folder / "depth" / f"{p.stem}.npy") for p in names]
    return intr, c2w, names, truth


def _score(maps, truth):
    """AbsRel on the pixels MVS claims (finite depth), share of claimed pixels, sky precision."""
    err, claimed, sky_right, sky_all = [], [], 0, 0
    for i, (depth, conf) in maps.items():
        gt = truth[i]
        both = np.isfinite(depth) & np.isfinite(gt)
        err.append(np.abs(depth[both] - gt[both]) / gt[both])
        claimed.append(np.isfinite(depth).mean())
        sky = np.isposinf(depth)
        sky_right += int((sky & np.isposinf(gt)).sum())
        sky_all += int(sky.sum())
        assert conf.shape == depth.shape and np.all(conf[~np.isfinite(depth)] == 0)
        assert np.all((conf >= 0) & (conf <= 1))
    return float(np.concatenate(err).mean()), float(np.mean(claimed)), sky_right / max(sky_all, 1)


class _Maps(tuple):
    """(kept, raw, truth, dense) maps and the whole DenseDepth of the dense run."""

    def __new__(cls, items, dense):
        out = super().__new__(cls, items)
        out.dense = dense
        return out


@pytest.fixture(scope="module")
def street_maps(street320):
    intr, c2w, names, truth = _scene(street320)
    frames = [3, 4, 5, 6, 7, 8]
    kept = dense_depth(lambda i: read_image(names[i]), c2w, intr, frames, MVSSettings(propagate=0), device="cpu",
                       progress_bar=False).maps
    raw = dense_depth(lambda i: read_image(names[i]), c2w, intr, frames, device="cpu", progress_bar=False,
                      filtered=False).maps
    dense = dense_depth(lambda i: read_image(names[i]), c2w, intr, frames, device="cpu", progress_bar=False)
    return _Maps((kept, raw, truth, dense.maps), dense)


def test_mvs_depth_matches_truth_with_given_poses(street_maps):
    kept, _, truth, _ = street_maps
    absrel, claimed, sky_precision = _score(kept, truth)
    # Measured 0.075 AbsRel on 18 % of the pixels (320x180; unfiltered: 1.1 on 68 %): half the
    # street is texture-less (plain facades, road) and matching claims only what several views
    # confirm.
    assert absrel < 0.1
    assert claimed > 0.12
    assert sky_precision > 0.95           # +inf only where the truth is sky
    sky_share = np.mean([np.isposinf(d).mean() for d, _ in kept.values()])
    assert sky_share > 0.02               # measured 0.033 (the truth: 0.09; sky is taken cautiously)


def test_filters_remove_wrong_depth(street_maps):
    kept, raw, truth, _ = street_maps
    absrel_kept, claimed_kept, _ = _score(kept, truth)
    absrel_raw, claimed_raw, _ = _score(raw, truth)
    assert claimed_raw > 2 * claimed_kept
    assert absrel_kept < 0.5 * absrel_raw


def test_propagation_covers_the_blank_road_and_walls(street_maps):
    """Depth propagated from the matched pixels (road plane, interpolation between rims), kept
    where the other frames do not contradict it: most of the frame gets a depth."""
    kept, _, truth, dense = street_maps
    absrel_kept, claimed_kept, _ = _score(kept, truth)
    absrel, claimed, sky_precision = _score(dense, truth)
    both = {i: np.isfinite(d) & np.isfinite(truth[i]) for i, (d, _) in dense.items()}
    err = np.concatenate([np.abs(d[both[i]] - truth[i][both[i]]) / truth[i][both[i]] for i, (d, _) in dense.items()])
    # Measured (320x180): 80 % of the pixels, AbsRel 0.23 (median 0.044); matched alone: 18 %.
    assert claimed > 0.7 and claimed > 3 * claimed_kept
    assert np.median(err) < 0.08 and absrel < 0.4
    assert sky_precision > 0.95
    # Matched pixels are not changed by propagation, except matches beyond the road plane (a
    # static point cannot be under the road) and those on the near side of a depth step (window
    # matching fattens foreground): those are re-decided by propagation, closer to the truth.
    # Measured: 21 % of the matched pixels (radius 12).
    changed, before, after = 0, [], []
    for i, (d, _) in dense.items():
        m = np.isfinite(kept[i][0])
        moved = m & ~np.isclose(d, kept[i][0], rtol=1e-5)
        changed += int(moved.sum())
        t = moved & np.isfinite(truth[i]) & np.isfinite(d)
        before.append(np.abs(kept[i][0][t] - truth[i][t]) / truth[i][t])
        after.append(np.abs(d[t] - truth[i][t]) / truth[i][t])
    assert changed < 0.3 * sum(int(np.isfinite(k[0]).sum()) for k in kept.values())
    assert np.median(np.concatenate(after)) < 0.75 * np.median(np.concatenate(before))


def test_near_side_of_a_depth_step_is_the_band_within_the_radius():
    """The pixels re-checked at a depth step: known, nearer by the ratio than a known pixel
    within the radius; unknown pixels and the far side are not."""
    from inspatio_ros.ingest.mvs.filters import near_side_of_depth_steps

    depth = np.full((20, 30), 20.0, np.float32)
    depth[:, :15] = 5.0                             # near surface on the left
    depth[:, 5] = np.nan                            # an unknown column on the near side
    band = near_side_of_depth_steps(depth, 3, 1.25)
    assert band[:, 12:15].all() and not band[:, :12].any() and not band[:, 15:].any()
    depth[:, 15:] = 5.5                             # a step within the ratio is no step
    assert not near_side_of_depth_steps(depth, 3, 1.25).any()
    assert not near_side_of_depth_steps(depth, 0, 1.25).any()


def test_matched_pixels_at_depth_steps_are_rechecked(street_maps):
    """Matched pixels next to a farther matched surface are re-decided by propagation's 5x5
    check: window matching gives the background next to an object's edge the object's depth.
    The re-decided ones get closer to the truth."""
    from inspatio_ros.ingest.mvs.filters import near_side_of_depth_steps

    kept, _, truth, dense = street_maps
    s = MVSSettings()
    band_total, before, after = 0, [], []
    for i, (d, _) in dense.items():
        k = kept[i][0]
        band = near_side_of_depth_steps(k, s.edge_recheck_px, s.edge_recheck_ratio)
        band_total += int(band.sum())
        t = band & ~np.isclose(d, k, rtol=1e-5) & np.isfinite(truth[i]) & np.isfinite(d)
        before.append(np.abs(k[t] - truth[i][t]) / truth[i][t])
        after.append(np.abs(d[t] - truth[i][t]) / truth[i][t])
    before, after = np.concatenate(before), np.concatenate(after)
    # Measured (320x180, radius 12): 13,384 band pixels re-decided, median error 0.048 -> 0.030.
    assert band_total > 3000 and len(after) > 0.3 * band_total
    assert np.median(after) < 0.75 * np.median(before)


def test_nothing_static_is_placed_beyond_the_road_plane(street_maps):
    """Within the road plane's reach no depth, matched or propagated, lies more than under_road
    beyond it (on the blank road a neighbour's far depth passes the photometric check too), and
    the build gets that limit (and the plane) for its own hole filling."""
    _, _, truth, dense = street_maps
    normal, distance = street_maps.dense.road_plane
    # The synthetic camera is 1.5 m up; the fit from the few matched road-region pixels of these
    # 320x180 frames (cars and kerbs among them) measured 1.30: roughly right, not exact.
    assert 1.0 < distance < 2.0 and normal[1] > 0.99
    ceiling = street_maps.dense.ceiling
    assert ceiling.shape == truth[3].shape and np.isfinite(ceiling).mean() > 0.2
    for i, (d, _) in dense.items():
        limited = np.isfinite(d) & np.isfinite(ceiling)
        assert limited.sum() > 1000
        assert np.all(d[limited] <= ceiling[limited] * 1.001), i


def test_road_plane_fit_ignores_cars_and_kerbs():
    rng = np.random.default_rng(0)
    x, z = rng.uniform(-4, 4, 3000), rng.uniform(4, 30, 3000)
    road = np.stack([x, np.full_like(x, 1.6) + 0.01 * rng.standard_normal(3000), z], 1)
    clutter = np.stack([rng.uniform(-4, 4, 800), rng.uniform(0.2, 1.2, 800), rng.uniform(4, 30, 800)], 1)
    n, d = fit_road_plane(np.concatenate([road, clutter]))
    assert abs(d - 1.6) < 0.02 and n[1] > 0.999
    assert fit_road_plane(clutter[:50]) is None


def test_road_plane_fit_with_a_known_normal_fits_only_its_distance():
    """A camera pitched 1.7 degrees down sees the road's normal tilted by as much. When the
    matched points are mostly clutter standing on the road (kerbs, car bottoms: the blank asphalt
    is not matched), a free fit tilts with them; given the normal (from the path), only d is
    fitted and it is the road's."""
    rng = np.random.default_rng(2)
    pitch = np.radians(1.7)
    normal = np.array([0.0, np.cos(pitch), -np.sin(pitch)])        # camera coordinates, y down
    x, z = rng.uniform(-4, 4, 1500), rng.uniform(4, 30, 1500)
    y = (1.55 + normal[2] * -z) / normal[1] + 0.01 * rng.standard_normal(1500)
    road = np.stack([x, y, z], 1)
    # Kerb tops 0.15 m up along the near right side.
    kx, kz = rng.uniform(2.5, 4, 700), rng.uniform(4, 12, 700)
    kerb = np.stack([kx, (1.40 + normal[2] * -kz) / normal[1], kz], 1)
    pts = np.concatenate([road, kerb])
    n, d = fit_road_plane(pts, normal=normal)
    np.testing.assert_allclose(n, normal)
    assert abs(d - 1.55) < 0.02, d


def test_an_object_moving_with_the_camera_is_found_and_stands_on_the_road():
    """A car driving ahead barely moves in the image: it matches at the far end of the sweep,
    below the horizon, where nothing static can be. Its depth comes from where it meets the road."""
    h, w = 90, 160
    v = np.arange(h, dtype=np.float32)[:, None].repeat(w, 1)
    road_rho = np.where(v > 50, (v - 45) / (100.0 * 1.5), np.nan).astype(np.float32)   # y/fy/h
    raw = np.where(v > 50, 1.0 / np.where(v > 50, road_rho, 1), 50.0).astype(np.float32)
    cost = np.full((h, w), 0.1, np.float32)
    texture = np.full((h, w), 0.05, np.float32)
    raw[55:70, 70:90] = 400.0                     # the car: far end of a 2..200 sweep (x2 refine reach)
    raw[80:82, 10:12] = 400.0                     # a speck: too small to be an object
    mask, depth = moving_object_mask(raw, cost, texture, 200.0, road_rho, MVSSettings(moving_min_area=0.01))
    assert mask[55:70, 70:90].all() and mask.sum() < 1.3 * 15 * 20 and not mask[80, 10]
    np.testing.assert_allclose(depth[60, 80], 1.0 / road_rho[69, 80], rtol=0.05)
    assert not moving_object_mask(raw, cost, texture, 200.0, None, MVSSettings())[0].any()
    # A flat far-matching blob lying on the road (a lane line's end): 4 rows at ~4 m stand 0.16 m
    # tall, the car 0.94 m; with the focal length given, only the car is an object.
    raw[80:84, 100:140] = 400.0
    flat, _ = moving_object_mask(raw, cost, texture, 200.0, road_rho, MVSSettings(moving_min_area=0.01))
    assert flat[81, 120]
    tall, _ = moving_object_mask(raw, cost, texture, 200.0, road_rho, MVSSettings(moving_min_area=0.01), fy=100.0)
    assert tall[55:70, 70:90].all() and not tall[81, 120]


def test_grayscale_frames_give_the_same_depth(street320):
    intr, c2w, names, truth = _scene(street320)

    def gray(i):
        return read_image(names[i]).mean(2).astype(np.uint8)     # (H,W), like KITTI's frames

    frames = [3, 5, 7]              # sources are 2 and 4 frames away: 3 and 7 check 5's depth
    maps = dense_depth(gray, c2w, intr, frames, MVSSettings(max_size=256, propagate=0), device="cpu",
                       progress_bar=False).maps
    absrel, claimed, _ = _score(maps, truth)
    assert maps[5][0].shape == (180, 320)
    assert absrel < 0.11 and claimed > 0.1         # measured 0.089 on 17 % (256x144)


def test_planar_fill_recovers_a_plane_and_leaves_occlusions_unknown():
    h, w = 60, 80
    v, u = np.mgrid[0:h, 0:w]
    plane = 1.0 / (0.1 + 0.002 * u + 0.003 * v)                      # a slanted plane
    depth = plane.astype(np.float32).copy()
    depth[20:40, 30:50] = np.nan                                       # texture-less inside
    filled = fill_planar_holes(depth, max_area=1000)
    np.testing.assert_allclose(filled[20:40, 30:50], plane[20:40, 30:50], rtol=1e-4)
    # A hole on an occlusion boundary (two depths on its rim) is not invented.
    step = np.where(u < 40, 5.0, 20.0).astype(np.float32)
    step[20:40, 30:50] = np.nan
    assert np.isnan(fill_planar_holes(step, max_area=1000)[20:40, 30:50]).all()


def test_sky_is_bright_blank_top_with_nothing_measured_above():
    depth = np.full((40, 60), 10.0, np.float32)
    depth[:15] = np.nan                   # unmeasured band at the top
    depth[5:15, 40:] = 8.0                # a building reaching into it
    texture = np.zeros_like(depth)
    gray = np.full(depth.shape, 0.3, np.float32)
    gray[:15] = 0.8
    sky = sky_mask(depth, texture, gray, 0.01)
    assert sky[:15, :40].all() and not sky[15:].any() and not sky[5:15, 40:].any()
    dark = sky_mask(depth, texture, np.full(depth.shape, 0.3, np.float32), 0.01)
    assert not dark.any()                 # a shaded blank facade top is not sky


def test_a_blank_wall_reaching_below_the_horizon_is_not_sky():
    """A room's bright blank wall spans the top border with nothing measured above it, like sky,
    but comes down past the horizon (to the floor); sky stays above it."""
    from inspatio_ros.camera import Intrinsics
    from inspatio_ros.ingest.road import elevation_deg

    intr = Intrinsics(50.0, 50.0, 29.5, 19.5, 60, 40)
    level = elevation_deg(intr, np.array([0.0, 1.0, 0.0]))
    assert abs(level[19, 30] - np.degrees(np.arctan(0.5 / 50))) < 1e-3 and level[:19].min() > 0 > level[20:].max()
    pitched = elevation_deg(intr, np.array([0.0, np.cos(0.1), np.sin(0.1)]))   # 0.1 rad down
    assert abs(pitched[19, 30] - (level[19, 30] - np.degrees(0.1))) < 0.05
    depth = np.full((40, 60), 10.0, np.float32)
    depth[:30, :30] = np.nan              # blank wall down to row 29 (8-11 degrees below the horizon)
    depth[:15, 30:] = np.nan              # blank sky above the horizon
    texture = np.zeros_like(depth)
    gray = np.full(depth.shape, 0.3, np.float32)
    gray[:30] = 0.8
    without = sky_mask(depth, texture, gray, 0.01)
    assert without[:30, :30].all()                               # the old rule took the wall
    split = depth.copy()
    split[:15, 29] = 7.0                  # a measured edge between wall and sky
    split[15:30, 29] = 7.0
    sky = sky_mask(split, texture, gray, 0.01, level)
    assert not sky[:, :29].any() and sky[:15, 30:].all()
    # The same wall region seen from a camera pitched up 0.2 rad lies above the horizon: sky.
    up = elevation_deg(intr, np.array([0.0, np.cos(0.2), -np.sin(0.2)]))
    assert sky_mask(split, texture, gray, 0.01, up)[:29, :29].all()


def test_a_blank_facade_around_its_windows_is_not_sky():
    """A bright blank facade reaching the top border surrounds its measured windows; sky only
    shows under thin things (a lamp's arm)."""
    depth = np.full((40, 60), 10.0, np.float32)
    depth[:20] = np.nan                   # blank and bright down to row 19
    texture = np.zeros_like(depth)
    gray = np.full(depth.shape, 0.3, np.float32)
    gray[:20] = 0.8
    lamp = depth.copy()
    lamp[6, 10:14] = 5.0                  # a lamp head: 52 px under it of 1196
    sky = sky_mask(lamp, texture, gray, 0.01)
    assert sky.sum() == 1196 - 52 and not sky[7:, 10:14].any()
    facade = depth.copy()
    facade[4:10, 5:55] = 12.0             # a row of windows: 500 px of 900 under them
    sky, surfaces = sky_and_surfaces(facade, texture, gray, 0.01)
    assert not sky.any() and surfaces.sum() == 900   # counted as a surface (dense_depth's vote)


def test_depth_bounds_follow_the_landmarks():
    from inspatio_ros.camera import Intrinsics

    intr = Intrinsics(100.0, 100.0, 49.5, 49.5, 100, 100)
    rng = np.random.default_rng(0)
    z = rng.uniform(4.0, 40.0, 500)
    pts = np.stack([rng.uniform(-0.3, 0.3, 500) * z, rng.uniform(-0.3, 0.3, 500) * z, z], 1)
    near, far = depth_bounds(np.eye(4), intr, pts, MVSSettings(near=10.0))
    assert 2.0 < near < 4.0 and 40.0 < far < 100.0
    # The landmarks start at 4 m, but nearer surfaces have none (too fast to track): the near
    # bound stays at the settings' 1.0, the far one follows the landmarks.
    near, far = depth_bounds(np.eye(4), intr, pts, MVSSettings())
    assert near == 1.0 and 40.0 < far < 100.0
    assert depth_bounds(np.eye(4), intr, pts[:5], MVSSettings(near=0.5, far=50.0)) == (0.5, 50.0)


def test_build_from_frames_without_depth_then_eval(street320, tmp_path):
    """No depth in the input: the build measures it by MVS and says so; eval scores the world."""
    folder = tmp_path / "nodepth"
    folder.mkdir()
    for name in ("frames", "camera_info.yaml", "poses_kitti.txt", "times.txt", "scene.json"):
        src = street320 / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, folder / name)
    world_path = tmp_path / "w.safetensors"
    proc = run_cli("--device", "cpu", "build", str(folder), "-o", str(world_path), "--holdout", "5",
                   "--mvs-size", "256")
    assert proc.returncode == 0, proc.stderr
    assert "multi-view stereo" in proc.stdout and "dense depth (MVS)" in proc.stdout
    from inspatio_ros.world import World

    world = World.load(world_path)
    assert world.info["depth_source"] == "multi-view stereo"
    assert 0.05 < world.info["mvs"]["coverage"] <= 1.0
    assert world.info["report"]["seconds"]["dense depth (MVS)"] > 0
    proc = run_cli("--device", "cpu", "eval", str(world_path), "--gt", str(street320), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    # Measured 19.3 dB, coverage 0.43 at 320x180 (12 frames, 2 held out): the texture-less road
    # gets no depth, so the held-out views miss it (docs/notes/2026-11-25-ingest-mvs.md, the 640x360 run).
    assert result["psnr"] > 18.0
    assert result["coverage"] > 0.35


def test_negative_propagation_passes_are_refused(tmp_path):
    from inspatio_ros.errors import InputError
    from inspatio_ros.ingest.build import build_world

    with pytest.raises(InputError, match="--mvs-propagate -1"):
        build_world(tmp_path, mvs=MVSSettings(propagate=-1))


def test_car_ahead_is_found_between_landmark_depth_bounds(tmp_path):
    """A car driving ahead, whose best match lies at the far end, has a wide flat minimum. Where
    the sweep runs between the odometry landmarks' depth bounds alone (MVSSettings.near above
    them), its inverse-depth steps are fine (1.7x finer here) and the winner's basin, measured
    in sweep steps, stopped short of the car: every car pixel read as ambiguous (nothing found).
    Measured in pixels of epipolar motion (MVSSettings.ambiguity_basin_px) the car is found, at
    those fine steps and at the default near bound (1.0) too."""
    from inspatio_ros.synth.generate import generate

    generate("street", tmp_path, size=(320, 180), frames=14, moving_cars=1, seed=0)
    intr, c2w, names, truth = _scene(tmp_path)
    cars = [read_image(tmp_path / "dynamic_mask" / p.name)[..., 0] > 0 for p in names]
    # Static surface points where the odometry would have landmarks (the truth, off the car).
    rng = np.random.default_rng(0)
    landmarks = []
    for i in range(0, len(names), 3):
        v, u = np.nonzero(np.isfinite(truth[i]) & ~cars[i])
        pick = rng.choice(len(v), 300, replace=False)
        z = truth[i][v[pick], u[pick]]
        cam = np.stack([(u[pick] - intr.cx) / intr.fx * z, (v[pick] - intr.cy) / intr.fy * z, z], 1)
        landmarks.append(cam @ c2w[i][:3, :3].T + c2w[i][:3, 3])
    landmarks = np.concatenate(landmarks)
    fine = dict(near=10.0)                  # the landmarks' own near bound, not capped
    near, far = depth_bounds(c2w[7], intr, landmarks, MVSSettings(**fine))
    # Measured 1.7 .. 149: an inverse-depth span 0.58 of the default bounds' (1 .. 200).
    assert 1 / near - 1 / far < 0.7 * (1 / 1.0 - 1 / 200.0)

    def found(settings):
        moving = dense_depth(lambda i: read_image(names[i]), c2w, intr, [4, 7, 9], settings, device="cpu",
                             landmarks=landmarks, progress_bar=False).moving
        return [((moving[i] & cars[i]).sum() / cars[i].sum(), (moving[i] & cars[i]).sum() / max(moving[i].sum(), 1))
                for i in (4, 7, 9)]

    # Measured, fine steps: recall 0.77 / 0.62 / 0.73, precision 0.71 / 0.52 / 0.55 (the mask is
    # made at a quarter of the size and closed, so it spills onto the road under the car; with the
    # road plane's normal fitted freely instead of taken from the path: 0.48 / 0.44 / 0.47 and
    # 0.37 / 0.47 / 0.47). At the default near bound: 0.63 / 0.60 / 0.67 and 0.68 / 0.51 / 0.55.
    with_basin = found(MVSSettings(**fine))
    for recall, precision in with_basin:
        assert recall > 0.5 and precision > 0.4
    # The basin counted in sweep steps only: measured recall 0 / 0.28 / 0.
    in_steps = [recall for recall, _ in found(MVSSettings(ambiguity_basin_px=0.0, **fine))]
    assert sum(r < 0.1 for r in in_steps) >= 2 and sum(in_steps) < 0.5 * sum(r for r, _ in with_basin)
    for recall, precision in found(MVSSettings()):
        assert recall > 0.5 and precision > 0.4


def test_sources_follow_the_camera_motion():
    """Sources about MVSSettings.source_baseline apart (1.6 pose units): the same parallax from a
    slow robot, a 10 Hz street and a fast car, instead of a fixed number of frames."""
    import torch

    from inspatio_ros.camera import Intrinsics
    from inspatio_ros.ingest.mvs import PlaneSweep

    cpu = torch.device("cpu")
    intr = Intrinsics(100.0, 100.0, 49.5, 49.5, 100, 100)
    for per_frame, step in ((0.4, 4), (0.8, 2), (1.2, 1), (3.0, 1)):
        c2w = np.tile(np.eye(4), (40, 1, 1))
        c2w[:, 2, 3] = per_frame * np.arange(40)
        sweep = PlaneSweep(lambda i: None, c2w, intr, MVSSettings(), cpu)
        usable = np.ones(40, bool)
        assert sweep.select_sources(20, usable) == [20 - step, 20 + step, 20 - 2 * step, 20 + 2 * step]
        assert sweep.reach >= 2 * step
    fixed = PlaneSweep(lambda i: None, c2w, intr, MVSSettings(source_baseline=0.0), cpu)
    assert fixed.select_sources(20, usable) == [18, 22, 16, 24]
    usable[[18, 22]] = False                       # held-out neighbours: the next multiples stand in
    assert fixed.select_sources(20, usable) == [16, 24, 14, 26]


def test_road_candidate_stops_where_the_colour_does():
    """The road plane is a propagation candidate below the horizon, but not up the blank side of a
    parked car: where a pixel's grey differs from the grey where its column meets the road below,
    the candidate is dropped. Across a lane line (asphalt on both sides) it carries on."""
    import torch

    from inspatio_ros.ingest.mvs.propagate import propagation_candidates

    h, w = 60, 80
    v = torch.arange(h, dtype=torch.float32)[:, None].expand(h, w)
    road = torch.where(v > 20, (v - 20) / 300.0, torch.tensor(float("nan")))   # inverse depth of the plane
    gray = torch.full((h, w), 0.40)                 # asphalt
    gray[30:33, :] = 0.90                           # a lane line across the image (unmatched paint)
    gray[25:45, 50:70] = 0.75                       # the blank, brighter side of a parked car
    rho = torch.full((h, w), float("nan"))
    rho[55:, :] = road[55:]                         # matched road near the bottom
    rho[10, :] = 1 / 40.0                           # a facade row far above
    cand = propagation_candidates(rho, road, gray=gray, road_colour=0.05)[-1]
    assert torch.isfinite(cand[26:30, :40]).all()   # asphalt above the lane line: road
    assert torch.isfinite(cand[34:54, :40]).all()
    assert torch.isnan(cand[25:45, 50:70]).all()    # the car's side: no road
    assert torch.isfinite(cand[46:54, 50:70]).all()  # the asphalt under the car: road
    # Without the colour rule the car's side takes the road plane (what made it 1.3x too far).
    plain = propagation_candidates(rho, road)[-1]
    assert torch.isfinite(plain[25:45, 50:70]).all()


def test_photo_cost_uses_the_sources_that_see_the_point():
    """A pixel only one source sees (the image border of an early frame of a forward drive: the
    sources ahead see less) is checked against that source alone, instead of failing for the
    sources that do not see it; one that no source sees costs 2 (not checked)."""
    import torch

    from inspatio_ros.camera import Intrinsics
    from inspatio_ros.ingest.mvs import PlaneSweep

    intr = Intrinsics(100.0, 100.0, 79.5, 59.5, 160, 120)
    wall = 10.0                                     # a textured wall 10 units ahead of frame 1
    c2w = np.tile(np.eye(4), (3, 1, 1))
    c2w[:, 2, 3] = [-1.6, 0.0, 1.6]                 # frame 0 behind frame 1, frame 2 ahead

    def frame(i):
        v, u = np.mgrid[0:intr.height, 0:intr.width].astype(np.float64)
        z = wall - c2w[i, 2, 3]
        x, y = (u - intr.cx) / intr.fx * z, (v - intr.cy) / intr.fy * z
        g = 0.5 + 0.25 * np.sin(7.0 * x) * np.cos(5.0 * y) + 0.2 * np.sin(2.3 * x + 3.1 * y)
        return (255 * np.clip(g, 0, 1)).astype(np.uint8)

    sweep = PlaneSweep(frame, c2w, intr, MVSSettings(max_size=160), torch.device("cpu"))
    true_rho = torch.full((1, intr.height, intr.width), 1.0 / wall)
    both = sweep.photo_cost(1, [0, 2], true_rho)[0]
    wrong = sweep.photo_cost(1, [0, 2], 2.0 * true_rho)[0]
    ahead_only = sweep.photo_cost(1, [2], true_rho)[0]
    # Frame 2 sees frame 1's pixels within 67 px of the centre column (80 * 8.4 / 10).
    border = np.zeros((intr.height, intr.width), bool)
    border[10:-10, 3:10] = border[10:-10, -10:-3] = True
    centre = np.zeros_like(border)
    centre[30:-30, 40:-40] = True
    assert float(both[torch.from_numpy(border)].max()) < 0.035        # was (cost + 2) / 2 > 1
    assert float(both[torch.from_numpy(centre)].max()) < 0.035
    assert float(wrong[torch.from_numpy(border)].median()) > 0.05      # one source still checks
    assert torch.all(ahead_only[torch.from_numpy(border)] == 2.0)      # nobody sees it: unchecked


def test_wall_candidate_continues_a_facade_towards_the_vanishing_point():
    """A wall along the direction of travel (x = 3, camera looking and moving along z): its
    inverse depth falls to 0 at the vanishing point. From the nearest known pixel of the wall, the
    wall candidate gives the true depth of the unknown pixels between it and the vanishing point
    (up to 5x as far); the constant one-sided candidate keeps the known pixel's depth (too near)."""
    import torch

    from inspatio_ros.ingest.mvs.propagate import WALL_RATIO, propagation_candidates

    h, w, fx, cx = 40, 200, 100.0, 99.5
    u = torch.arange(w, dtype=torch.float32)[None].expand(h, w)
    ray_x = (u - cx) / fx
    true_rho = torch.where(ray_x > 0, ray_x / 3.0, torch.tensor(float("nan")))   # wall at x = 3
    rho = torch.full((h, w), float("nan"))
    rho[:, 180:] = true_rho[:, 180:]                # the near part of the wall is matched
    along = ray_x                                   # wall normal (1, 0, 0): n . ray
    length = torch.sqrt(ray_x ** 2 + 1.0)           # |ray| on the row v = cy
    cand = propagation_candidates(rho, None, wall=(along, length))
    assert cand.shape[0] == 8                       # six of the rows and columns, two walls
    from_right = cand[7]
    ratio = ray_x / ray_x[:, 180:181]
    inside = (ratio >= WALL_RATIO[0]) & (ratio <= WALL_RATIO[1]) & (u < 180)
    assert inside.sum() > 10 * h
    rel = (from_right[inside] - true_rho[inside]).abs() / true_rho[inside]
    assert float(rel.max()) < 1e-4
    assert torch.isnan(from_right[(u < 180) & ~inside]).all()   # beyond 5x: no candidate
    constant = cand[2]                              # the nearest known pixel on the right, as is
    half = inside & (ratio < 0.5)                   # truly more than twice as far as the known pixel
    assert float((constant[half] / true_rho[half]).min()) > 2.0   # the constant: that much too near


# Minutes of node processes, builds or training on 2 cores: left out of the quick loop
# (`pytest -m "not slow"`); CI runs everything.
pytestmark = pytest.mark.slow
