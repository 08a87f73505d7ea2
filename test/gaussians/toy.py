"""A toy scene of known Gaussians (a coloured wall and a few blobs in front of it), the frames the
reference rasterizer renders of it, and a world whose surfels are a perturbed, grey guess of it."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from inspatio_ros.camera import Intrinsics
from inspatio_ros.gaussians.rasterize import SH_C0, rasterize
from inspatio_ros.video import write_png
from inspatio_ros.world import World, encode_normals

INTR = Intrinsics(60.0, 60.0, 31.5, 23.5, 64, 48)


def toy_truth(seed: int = 0) -> dict[str, torch.Tensor]:
    """Gaussians of the toy scene: a 14x10 wall at z = 6 m (flat, facing the cameras) with smoothly
    varying colour, and 12 round blobs between 3.5 and 4.5 m."""
    rng = np.random.default_rng(seed)
    gx, gy = np.meshgrid(np.linspace(-3.2, 3.2, 14), np.linspace(-2.2, 2.2, 10))
    wall = np.stack([gx.ravel(), gy.ravel(), np.full(gx.size, 6.0)], 1)
    colour_wall = np.stack([0.5 + 0.4 * np.sin(gx.ravel()), 0.5 + 0.4 * np.cos(gy.ravel() * 1.3),
                            0.3 + 0.2 * (gx.ravel() > 0)], 1)
    blobs = np.stack([rng.uniform(-1.5, 1.5, 12), rng.uniform(-1.0, 1.0, 12), rng.uniform(3.5, 4.5, 12)], 1)
    colour_blobs = rng.uniform(0.1, 0.9, (12, 3))
    means = np.concatenate([wall, blobs])
    scales = np.concatenate([np.tile([0.3, 0.3, 0.02], (len(wall), 1)), np.full((12, 3), 0.15)])
    rgb = np.concatenate([colour_wall, colour_blobs])
    sh = np.zeros((len(means), 4, 3))
    sh[:, 0] = (rgb - 0.5) / SH_C0
    n = len(means)
    return {"means": torch.tensor(means, dtype=torch.float32), "quats": torch.tensor([[1.0, 0, 0, 0]] * n),
            "scales": torch.tensor(scales, dtype=torch.float32),
            "opacities": torch.tensor(np.r_[np.full(len(wall), 0.95), np.full(12, 0.9)], dtype=torch.float32),
            "sh": torch.tensor(sh, dtype=torch.float32), "rgb": torch.tensor(rgb, dtype=torch.float32)}


def toy_poses(n: int = 8) -> np.ndarray:
    """Cameras looking along +z, spread 0.8 m sideways and 0.4 m up and down."""
    poses = np.tile(np.eye(4), (n, 1, 1))
    poses[:, 0, 3] = np.linspace(-0.4, 0.4, n)
    poses[:, 1, 3] = 0.2 * np.sin(np.arange(n))
    return poses


def render_truth(truth, c2w: np.ndarray) -> np.ndarray:
    K = torch.as_tensor(INTR.K, dtype=torch.float32)[None].expand(len(c2w), 3, 3)
    out = rasterize(truth["means"], truth["quats"], truth["scales"], truth["opacities"], truth["sh"], K,
                    torch.as_tensor(c2w, dtype=torch.float32), INTR.width, INTR.height)
    return (out.rgb.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def toy_world(folder: Path, seed: int = 0, heldout: int = 3) -> tuple[World, Path]:
    """Frames of the toy scene written to ``folder``/frames, and a world guessing it: the true
    centres moved by up to 5 cm, every colour grey, sizes off by 30 %; frame ``heldout`` held out."""
    truth = toy_truth(seed)
    poses = toy_poses()
    write_frames(folder, render_truth(truth, poses))
    xyz, radius = guessed_surfels(truth, seed)
    n = len(xyz)
    normal = np.zeros((n, 3))
    normal[:140, 2] = -1.0
    world = World(
        intrinsics=INTR, static_xyz=xyz, static_rgb=np.full((n, 3), 128, np.uint8), static_radius=radius,
        static_normal=encode_normals(normal), static_frame=np.zeros(n, np.int32),
        **frame_fields(poses, heldout), provenance={"source": str(folder)}, info={})
    return world, folder


def write_frames(folder: Path, frames: np.ndarray) -> None:
    """The toy's frames as ``folder``/frames/NNNN.png (what optimize's frame loader reads)."""
    for i, img in enumerate(frames):
        write_png(folder / "frames" / f"{i:04d}.png", img)


def guessed_surfels(truth, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(centres, radii) of a build's guess at ``truth``: centres moved by up to 5 cm, sizes off by
    up to 30 % (seeded by ``seed`` + 1)."""
    rng = np.random.default_rng(seed + 1)
    n = len(truth["means"])
    xyz = truth["means"].numpy() + rng.uniform(-0.05, 0.05, (n, 3))
    return xyz, truth["scales"].numpy().max(1) * rng.uniform(0.7, 1.3, n)


def frame_fields(poses: np.ndarray, heldout: int) -> dict:
    """World fields of the toy's frames at 10 Hz: every pose a source frame but ``heldout``."""
    keep = [i for i in range(len(poses)) if i != heldout]
    return dict(frame_c2w=poses[keep], frame_time=np.array(keep, float) * 0.1, frame_index=np.array(keep),
                heldout_c2w=poses[[heldout]], heldout_time=np.array([heldout * 0.1]),
                heldout_index=np.array([heldout]))


SKY_DISTANCE = 100.0


def toy_sky(directions: torch.Tensor) -> torch.Tensor:
    """The sky of the toy street by direction (…,3) unit, OpenCV world (y down): pale at the
    horizon, blue overhead, a bright glow up and to the left."""
    up = (-directions[..., 1]).clamp(0, 1)
    w = up[..., None]
    colour = (1 - w) * torch.tensor([0.80, 0.86, 0.93]) + w * torch.tensor([0.25, 0.45, 0.85])
    sun = torch.nn.functional.normalize(torch.tensor([-0.35, -0.45, 1.0]), dim=0)
    glow = (directions @ sun).clamp(0, 1) ** 40
    return (colour + 0.3 * glow[..., None]).clamp(0, 1)


def toy_sky_truth(seed: int = 0) -> dict[str, torch.Tensor]:
    """The toy scene with the top of its wall cut off (rows above y = -0.5 m), so that the upper
    part of every frame is sky."""
    truth = toy_truth(seed)
    keep = torch.ones(len(truth["means"]), dtype=torch.bool)
    keep[:140] = truth["means"][:140, 1] > -0.5
    return {k: v[keep] for k, v in truth.items()}


def render_sky_truth(truth, c2w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frames of the sky toy (uint8 (B,H,W,3)) and where they show sky (coverage < 0.5)."""
    from inspatio_ros.gaussians.sky import pixel_directions

    K = torch.as_tensor(INTR.K, dtype=torch.float32)[None].expand(len(c2w), 3, 3)
    c2w_t = torch.as_tensor(c2w, dtype=torch.float32)
    out = rasterize(truth["means"], truth["quats"], truth["scales"], truth["opacities"], truth["sh"], K, c2w_t,
                    INTR.width, INTR.height)
    rgb = out.rgb + (1 - out.coverage)[..., None] * toy_sky(pixel_directions(K, c2w_t, INTR.width, INTR.height))
    return (rgb.clamp(0, 1) * 255).round().to(torch.uint8).numpy(), (out.coverage < 0.5).numpy()


def toy_sky_world(folder: Path, seed: int = 0, heldout: int = 3) -> tuple[World, Path]:
    """Frames of the sky toy written to ``folder``/frames and a world guessing it as the build
    would: the scene's surfels (perturbed, grey, as toy_world) and a far shell at SKY_DISTANCE of
    surfels on every second sky pixel of each source frame, coloured by it, a pixel wide."""
    truth = toy_sky_truth(seed)
    poses = toy_poses()
    frames, sky = render_sky_truth(truth, poses)
    write_frames(folder, frames)
    xyz, radius = guessed_surfels(truth, seed)
    n = len(xyz)
    keep = [i for i in range(len(poses)) if i != heldout]
    normal = np.zeros((n, 3))
    normal[:n - 12, 2] = -1.0
    shell_xyz, shell_rgb = [], []
    for f in keep:
        v, u = np.nonzero(sky[f])
        pick = (u + v) % 2 == 0
        v, u = v[pick], u[pick]
        rays = np.stack([(u - INTR.cx) / INTR.fx, (v - INTR.cy) / INTR.fy, np.ones(len(u))], 1)
        rays /= np.linalg.norm(rays, axis=1, keepdims=True)
        shell_xyz.append(poses[f, :3, 3] + SKY_DISTANCE * rays @ poses[f, :3, :3].T)
        shell_rgb.append(frames[f][v, u])
    shell_xyz, shell_rgb = np.concatenate(shell_xyz), np.concatenate(shell_rgb)
    m = len(shell_xyz)
    world = World(
        intrinsics=INTR,
        static_xyz=np.concatenate([xyz, shell_xyz]).astype(np.float32),
        static_rgb=np.concatenate([np.full((n, 3), 128, np.uint8), shell_rgb]),
        static_radius=np.concatenate([radius, np.full(m, SKY_DISTANCE / INTR.fx)]).astype(np.float32),
        static_normal=encode_normals(np.concatenate([normal, np.zeros((m, 3))])),
        static_frame=np.zeros(n + m, np.int32), **frame_fields(poses, heldout),
        provenance={"source": str(folder), "settings": {"fusion": {"sky_distance": SKY_DISTANCE}}}, info={})
    return world, folder
