"""Cameras with lens distortion in the simulator: rig entries, the published camera_info, and
OpenCV's rectification of a distorted render with that camera_info against the pinhole render."""
import cv2
import numpy as np
import pytest

from inspatio_ros.errors import InputError
from inspatio_ros.sim.rig import load_rig, rig_parameters
from inspatio_ros.sim.simulator import Simulator
from inspatio_ros.world import World

BARREL = ("plumb_bob", [-0.28, 0.09, 0.0012, -0.0008, -0.012])           # a dash camera
PINCUSHION = ("plumb_bob", [0.12, -0.03, -0.001, 0.0015, 0.004])
RATIONAL = ("rational_polynomial", [2.1, 0.45, 0.0009, -0.0011, 0.012, 2.4, 1.1, 0.06])


def _twin_rig(width, height, model, D):
    """Two cameras on one mount with one K: 'pin' a pinhole, 'lens' with the distortion."""
    params = {"cameras.names": ["pin", "lens"], "cameras.lens.distortion_model": model, "cameras.lens.D": D}
    for name in ("pin", "lens"):
        params.update({f"cameras.{name}.width": width, f"cameras.{name}.height": height,
                       f"cameras.{name}.fx": 0.55 * width, f"cameras.{name}.fy": 0.56 * width,
                       f"cameras.{name}.cx": 0.5 * width - 1.3, f"cameras.{name}.cy": 0.5 * height + 0.8,
                       f"cameras.{name}.outputs": ["image", "depth", "points", "coverage"]})
    return load_rig(params)


def _published_camera_info(spec):
    """The camera_info message the node publishes for ``spec`` (built with the DDS types)."""
    from inspatio_ros.ros.dds import DdsTransport
    from inspatio_ros.ros.messages import MessageBuilder

    t = DdsTransport("lens_test", announce_node=False)
    try:
        m = MessageBuilder(t)
        return m.camera_info(m.header(0.0, spec.optical_frame), spec.intrinsics, spec.lens)
    finally:
        t.shutdown()


def _rectified_psnr(world, width, height, model, D, t=0.45):
    rig = _twin_rig(width, height, model, D)
    sim = Simulator(world, rig, device="cpu")
    frame = sim.render(0.0, t, sim.recorded_base_pose(t))
    pin, lens = frame.cameras
    info = _published_camera_info(rig[1])
    assert info.distortion_model == model and list(info.d) == pytest.approx(D)
    K = np.array(info.k).reshape(3, 3)
    P = np.array(info.p).reshape(3, 4)[:, :3]
    mx, my = cv2.initUndistortRectifyMap(K, np.array(info.d), np.array(info.r).reshape(3, 3), P,
                                         (info.width, info.height), cv2.CV_32FC1)
    rectified = cv2.remap(lens.rgb, mx, my, cv2.INTER_LINEAR)
    # Valid: the rectified pixel's source lies inside the distorted image (with its bilinear taps).
    valid = (mx >= 1) & (my >= 1) & (mx <= width - 2) & (my <= height - 2)
    err = (rectified.astype(np.float64) - pin.rgb.astype(np.float64))[valid]
    return 10 * np.log10(255.0 ** 2 / np.mean(err ** 2)), valid.mean(), frame, rig


@pytest.fixture(scope="module")
def street320(tmp_path_factory):
    from inspatio_ros.cli import main
    from inspatio_ros.synth.generate import generate

    out = tmp_path_factory.mktemp("street320")
    generate("street", out, size=(320, 180), frames=16, moving_cars=0, seed=3)
    assert main(["build", str(out), "-o", str(out / "world.safetensors"), "--holdout", "5"]) == 0
    return World.load(out / "world.safetensors")


@pytest.mark.slow
@pytest.mark.parametrize("model, D", [BARREL, PINCUSHION, RATIONAL], ids=["barrel", "pincushion", "rational"])
def test_distorted_render_rectified_with_its_camera_info_is_the_pinhole_render(street320, model, D):
    """Issue 24's check: 640x360, >= 35 dB over the valid area (barrel 35.6, pincushion 37.9,
    rational 35.6 dB measured on the seed-1 street; the rim of a barrel lens holds fewer pixels
    than the pinhole view, so two resamplings there cost most of the error)."""
    value, valid_share, _, _ = _rectified_psnr(street320, 640, 360, model, D)
    assert valid_share > 0.8
    assert value >= 35.0, value


def test_distorted_camera_outputs_agree_with_its_lens(street_world):
    world = World.load(street_world)
    value, _, frame, rig = _rectified_psnr(world, 320, 180, *BARREL)
    assert value > 30.0                          # the small 160x96 world; the 35 dB check is above
    pin, lens = frame.cameras
    K = rig[1].intrinsics.K
    # Each pixel's point lies on the pixel's distorted ray (x, y re-projected through the lens
    # land on the pixel) at the published depth (z).
    pts = lens.points[..., :3].reshape(-1, 3)
    known = np.isfinite(pts).all(1)
    assert known.mean() > 0.9 and np.allclose(pts[known, 2], lens.depth.reshape(-1)[known])
    projected, _ = cv2.projectPoints(pts[known].astype(np.float64), np.zeros(3), np.zeros(3), K,
                                     np.array(rig[1].lens.D))
    v, u = np.divmod(np.nonzero(known)[0], 320)
    assert np.abs(projected.reshape(-1, 2) - np.stack([u, v], 1)).max() < 1e-2
    # Depth rectified like the image is the pinhole camera's depth (nearest: no blended edges).
    mx, my = cv2.initUndistortRectifyMap(K, np.array(rig[1].lens.D), None, K, (320, 180), cv2.CV_32FC1)
    rectified = cv2.remap(lens.depth, mx, my, cv2.INTER_NEAREST, borderValue=float("nan"))
    both = np.isfinite(rectified) & np.isfinite(pin.depth) & (pin.depth < 60)
    assert both.mean() > 0.5
    assert np.median(np.abs(rectified[both] / pin.depth[both] - 1)) < 0.01
    assert lens.coverage.mean() > 0.9


def test_rig_lens_entries_round_trip_and_bad_entries_get_one_clear_error():
    rig = _twin_rig(64, 48, *RATIONAL)
    assert rig[0].lens is None and rig[1].lens.model == "rational_polynomial"
    assert load_rig(rig_parameters(rig)) == rig
    zeros = load_rig({"cameras.front.distortion_model": "plumb_bob", "cameras.front.D": [0.0] * 5})
    assert zeros[0].lens is None                 # all-zero plumb_bob is a pinhole camera
    fisheye = load_rig({"cameras.front.distortion_model": "equidistant", "cameras.front.fov_deg": 190.0,
                        "cameras.front.width": 800, "cameras.front.height": 800})[0]
    # Without fx the image circle of the 190 degree view spans the width.
    assert fisheye.intrinsics.fx == pytest.approx(400.0 / np.radians(95.0))
    across = load_rig({"cameras.front.distortion_model": "equidistant", "cameras.front.hfov_deg": 120.0})[0]
    assert across.intrinsics.fx == pytest.approx(320.0 / np.radians(60.0))     # 120 degrees across 640 px
    bad = [
        ({"cameras.front.distortion_model": "plumbbob"}, "did you mean 'plumb_bob'"),
        ({"cameras.front.distortion_model": "plumb_bob", "cameras.front.D": [0.1, 0.2]}, "takes 5 coefficients"),
        ({"cameras.front.distortion_model": "equidistant", "cameras.front.fov_deg": 200.0}, "at most 190"),
        ({"cameras.front.distortion_model": "equidistant", "cameras.front.fov_deg": 0.0}, "field of view"),
        ({"cameras.front.D": [0.1, 0, 0, 0, 0]}, "without 'cameras.front.distortion_model'"),
        ({"cameras.front.distortion_model": "equidistant", "cameras.front.fov_deg": 150.0,
          "cameras.front.hfov_deg": 160.0}, "at most 'cameras.front.fov_deg' \\(150\\)"),
        ({"cameras.front.distortion_modle": "plumb_bob"}, "did you mean 'cameras.front.distortion_model'"),
    ]
    for params, message in bad:
        with pytest.raises(InputError, match=message) as err:
            load_rig(params)
        assert "cameras.front" in str(err.value) and "\n" not in str(err.value)


def test_fisheye_190_degrees_renders_by_ray_direction(street_world, street):
    """An equidistant camera seeing 190 degrees: every pixel's range along its own ray against the
    synthetic street's exact ray caster, at the centre and at the rim (where a pinhole warp
    would stretch, and beyond 90 degrees where it cannot go at all)."""
    from inspatio_ros.lens import distorted_rays
    from inspatio_ros.synth.generate import load_scene

    world, scene = World.load(street_world), load_scene(street)
    D = [0.02, -0.005, 0.001, 0.0]
    rig = load_rig({"cameras.front.width": 200, "cameras.front.height": 160, "cameras.front.distortion_model":
                    "equidistant", "cameras.front.D": D, "cameras.front.fov_deg": 190.0,
                    "cameras.front.outputs": ["image", "depth", "points", "coverage"]})
    spec = rig[0]
    sim = Simulator(world, rig, device="cpu")
    t = 1.2
    pose = sim.recorded_base_pose(t)
    cam = sim.render(0.0, t, pose).cameras[0]
    rays, valid = distorted_rays(spec.intrinsics.K, spec.lens, (200, 160))
    theta = np.degrees(np.arccos(np.clip(rays[..., 2], -1, 1)))
    assert theta[valid].max() > 94.0                       # the image circle reaches 95 degrees
    assert np.isnan(cam.depth[~valid]).all() and not cam.coverage[~valid].any()
    c2w = sim.camera_pose(pose, spec)
    truth = np.full(valid.shape, np.nan, np.float32)
    truth[valid] = scene.ranges(c2w[:3, 3], rays[valid] @ c2w[:3, :3].T, t)
    seen = valid & cam.coverage & np.isfinite(truth) & (truth < 80)    # sky is the build's far shell
    for lo, hi in ((0, 45), (80, 95)):
        band = seen & (theta >= lo) & (theta < hi)
        assert band.sum() > 200 and (valid & cam.coverage & (theta >= lo) & (theta < hi)).sum() > \
            0.4 * (valid & (theta >= lo) & (theta < hi)).sum()
        assert np.median(np.abs(cam.depth[band] / truth[band] - 1)) < 0.02, (lo, hi)
    # Its depth image holds ranges; its points lie along the rays at those ranges.
    pts = cam.points[..., :3][seen]
    np.testing.assert_allclose(np.linalg.norm(pts, axis=1), cam.depth[seen], rtol=1e-4)
    np.testing.assert_allclose(pts / cam.depth[seen][:, None], rays[seen], atol=1e-4)
    info = _published_camera_info(spec)
    assert info.distortion_model == "equidistant" and list(info.d) == pytest.approx(D)


def test_the_device_warp_agrees_with_the_cpu_warp(street_world):
    """CUDA warps with torch's grid_sample, the CPU with cv2.remap: run the grid_sample path on
    the CPU here and compare (cv2 samples at 1/32 pixel: nearest picks differ at a few pixels)."""
    import dataclasses

    from inspatio_ros.render import Cameras
    from inspatio_ros.render.lens_warp import warp_output

    rig = _twin_rig(320, 180, *BARREL)
    sim = Simulator(World.load(street_world), rig, device="cpu")
    view = sim._distorted_view(rig[1])
    assert view.remap is not None
    pose = sim.recorded_base_pose(0.45)
    out = sim.renderer.render(Cameras.from_intrinsics([view.render_intrinsics] * 2,
                                                      np.stack([sim.camera_pose(pose, rig[1])] * 2), "cpu"), 0.45)
    cpu = warp_output(out, [view, view], (10, 20, 30))
    device = warp_output(out, [dataclasses.replace(view, remap=None)] * 2, (10, 20, 30))
    diff = np.abs(cpu.rgb.numpy().astype(int) - device.rgb.numpy().astype(int))
    assert diff.mean() < 0.2 and np.percentile(diff, 99.9) <= 4
    both = np.isfinite(cpu.depth.numpy()) & np.isfinite(device.depth.numpy())
    assert both.mean() > 0.9 and (cpu.depth.numpy()[both] == device.depth.numpy()[both]).mean() > 0.95
    assert (cpu.coverage == device.coverage).float().mean() > 0.99
