"""Odometry with an object that moves on its own (ingest/odometry.py, OdometrySettings.verify_frames).

A toy world rendered exactly: a textured back wall and floor, a camera on an arc looking at its
centre (sideways motion while turning, like the synthetic rooms' robot), and a crisply textured
box face sliding sideways past it at a varying speed. The box's motion runs along the camera's
epipolar lines, so two views triangulate its corners to a wrong depth that fits both; only later
views show that they move. Measured (320x240, 30 frames, seeds 0 and 1): landmarks trusted at
once let the box hold 17-18 % of the landmark observations and the path ends 1.8-2.1 % off;
verified over 3 frames 8-10 % (the returned points include candidates whose track ended before
they were checked: not used for poses) and 1.2 %; with the box standing still 0.06 %.
"""
import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from inspatio_ros.camera import Intrinsics  # noqa: E402
from inspatio_ros.ingest.odometry import (OdometrySettings, agrees_with_track, ate_rel,  # noqa: E402
                                          estimate_poses)

W, H, F, FRAMES = 320, 240, 280.0, 30
TEXELS_PER_M = 100.0


def _texture(rng, size, blur, contrast):
    img = cv2.GaussianBlur(rng.uniform(0, 255, (size, size)).astype(np.float32), (0, 0), blur)
    return np.clip((img - img.mean()) / (img.std() + 1e-6) * contrast + 128, 0, 255).astype(np.float32)


def _camera(i):
    """On an arc of radius 3 m around (0, 0, 3), looking at its centre, 1.7 degrees a frame."""
    th = -0.45 + 0.03 * i
    c2w = np.eye(4)
    c2w[:3, :3] = [[np.cos(th), 0, -np.sin(th)], [0, 1, 0], [np.sin(th), 0, np.cos(th)]]
    c2w[:3, 3] = [3.0 * np.sin(th), 0.0, 3.0 - 3.0 * np.cos(th)]
    return c2w


def _box_centre_x(i, moving):
    """The box face slides along x at 0.045 m a frame +- a swing (the camera moves ~0.09 m)."""
    return -0.8 + (0.045 * i + 0.25 * np.sin(i / 6.0) if moving else 0.0)


class ToyRoom:
    def __init__(self, seed, moving):
        rng = np.random.default_rng(seed)
        self.wall, self.floor = _texture(rng, 1024, 3, 40), _texture(rng, 1024, 3, 40)
        self.box = _texture(rng, 256, 2, 90)             # crisper and stronger than the room
        self.moving = moving
        u, v = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
        self.rays = np.stack([(u - W / 2) / F, (v - H / 2) / F, np.ones_like(u)], -1)

    def render(self, i):
        """(RGB image, bool mask of the box's pixels) of frame i."""
        c2w = _camera(i)
        d, c = self.rays @ c2w[:3, :3].T, c2w[:3, 3]
        image, nearest = np.zeros((H, W), np.float32), np.full((H, W), np.inf)

        def surface(t, tex, x, y):
            nonlocal image, nearest
            hit = np.isfinite(t) & (t > 0) & (t < nearest)
            mx = (x * TEXELS_PER_M).astype(np.float32) % tex.shape[1]
            my = (y * TEXELS_PER_M).astype(np.float32) % tex.shape[0]
            image = np.where(hit, cv2.remap(tex, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_WRAP), image)
            nearest = np.where(hit, t, nearest)
            return hit

        with np.errstate(divide="ignore", invalid="ignore"):
            t = (7.0 - c[2]) / d[..., 2]
            p = c + t[..., None] * d
            surface(t, self.wall, p[..., 0] + 20, p[..., 1] + 5)
            t = np.where(d[..., 1] > 0, (0.8 - c[1]) / d[..., 1], np.inf)
            p = c + t[..., None] * d
            surface(t, self.floor, p[..., 0] + 20, p[..., 2])
            t = (2.0 - c[2]) / d[..., 2]
            p = c + t[..., None] * d
            x0 = _box_centre_x(i, self.moving)
            on_box = (np.abs(p[..., 0] - x0) < 0.4) & (p[..., 1] > -0.1) & (p[..., 1] < 0.8)
            mask = surface(np.where(on_box, t, np.inf), self.box, p[..., 0] - x0 + 1, p[..., 1] + 1)
        gray = np.clip(image, 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2), mask


def _run(room, verify_frames):
    """ATE (share of the path) and the share of landmark observations that lie on the box."""
    frames = [room.render(i) for i in range(FRAMES)]
    intr = Intrinsics(F, F, W / 2, H / 2, W, H)
    res = estimate_poses(lambda i: frames[i][0], FRAMES, intr, OdometrySettings(verify_frames=verify_frames),
                         progress_bar=False)
    assert res.located.all()
    on_box = total = 0
    for i in range(FRAMES):
        ids, pts = res.observations[i]
        with_landmark = np.array([int(t) in res.landmark_by_id for t in ids], bool)
        px = pts[with_landmark].astype(int)
        on_box += int(frames[i][1][np.clip(px[:, 1], 0, H - 1), np.clip(px[:, 0], 0, W - 1)].sum())
        total += int(with_landmark.sum())
    true = np.stack([_camera(i) for i in range(FRAMES)])
    return ate_rel(res.c2w, true), on_box / max(total, 1)


@pytest.mark.slow     # two odometry runs on 30 frames: ~60 CPU s
def test_landmarks_on_an_object_moving_on_its_own_are_left_out_until_verified():
    room = ToyRoom(seed=0, moving=True)
    ate_at_once, box_share_at_once = _run(room, verify_frames=0)
    ate_verified, box_share_verified = _run(room, verify_frames=3)
    # The case is the hard one: trusted at once, the box holds a good share of the landmarks and
    # pulls the path off (measured 17 %, 1.8 %).
    assert box_share_at_once > 0.10 and ate_at_once > 0.012, (box_share_at_once, ate_at_once)
    # Verified: half of the box's points are gone (measured 8 %) and the path is a third better
    # (1.2 %). A static box gives 0.06 %: what is left comes from the box's corners that move
    # least against the camera, the same limit the rooms show (s11 0.80 %, 0.25 % box masked).
    assert box_share_verified < 0.7 * box_share_at_once, (box_share_verified, box_share_at_once)
    assert ate_verified < 0.8 * ate_at_once, (ate_verified, ate_at_once)


@pytest.mark.slow     # ~30 CPU s
def test_verification_keeps_a_static_scene_as_it_was():
    """The box standing still: its corners pass the check like the room's, the path stays exact."""
    ate_verified, box_share = _run(ToyRoom(seed=0, moving=False), verify_frames=3)
    assert ate_verified < 0.002 and box_share > 0.10, (ate_verified, box_share)


def test_agreement_is_within_the_drift_radius_and_in_front():
    K = np.array([[100.0, 0, 50], [0, 100, 50], [0, 0, 1]])
    xyz = np.array([[0.0, 0, 2], [0.0, 0, 2], [0.0, 0, -2]])
    pts = np.array([[51.5, 50], [53.0, 50], [50.0, 50]])
    assert agrees_with_track(K, np.eye(4), xyz, pts, 2.0).tolist() == [True, False, False]
