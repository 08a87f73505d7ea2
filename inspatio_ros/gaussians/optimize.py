"""``inspatio-ros optimize WORLD``: fit the world's Gaussians to its source frames.

Starts from the fused surfels (model.from_surfels: flat Gaussians oriented by the normal, as wide
as the surfel's radius; or from the world's Gaussian layer when it has one), then renders source
frames one at a time through the reference rasterizer (rasterize.py) and minimises
0.8 L1 + 0.2 (1 - SSIM) against the real frame, with Adam (learning rates as gsplat's
simple_trainer, the centres' scaled by the scene's size and decaying 100x over the run).
Held-out frames are never loaded.

Each source frame has an affine colour transform (3x3 + offset, starting at the identity, or at
the world's own when it is optimized again) applied to its render before the loss: the camera's
exposure and white balance changes go there instead of into the Gaussians' colours; the stored
world renders at the reference exposure and keeps the transforms in ``info.optimized.exposure``.

Densify and prune (every ``densify_every`` steps until ``densify_until`` of the run): Gaussians
whose projected centre's mean gradient (in normalised device units, as gsplat measures it) is
above ``grad_threshold`` are cloned when small (largest σ <= ``dense_fraction`` of the scene size)
and split in two (samples of themselves, σ / 1.6) when large; the highest gradients go first and
the total never exceeds ``budget``; Gaussians with opacity under ``prune_opacity`` or larger than
half the scene are removed.

Dynamic Gaussians (moving objects) keep their time spans and are drawn only at the frames inside
them. A frame-local world's dynamic layer (every fused frame's own surfels: ingest/fusion.py) is
not used: it repeats the static layer's surfaces frame by frame, and the optimization fits one
consistent layer instead.

Depth supervision (``depth_weight``, default 0.1): the build's depth of each source frame is the
fused world drawn from that frame (its frame-local surfels in front where the world has them, i.e.
the frame's own MVS or given depth, else the merged static layer), taken only where it is
confident: a surfel was drawn there (not hole-filled), the depth is finite and nearer than half
the build's sky distance (the sky shell is a placeholder, not a measurement). The loss adds
``depth_weight`` x the mean relative error |D - D_build| / D_build of the render's expected depth
over those pixels where the render covers more than half the pixel. Relative, so near and far
surfaces count alike and the weight needs no scene scale.

Pose refinement (``pose_refine``; default on when the world's poses were estimated, off for given
ones): every source frame but the first (the anchor that fixes the gauge) gets a small SE(3)
correction c2w' = c2w · exp(ω, τ) (rotation vector ω in radians, translation τ in metres, in the
camera's frame), learned with Adam at ``lr_pose_rotation`` / ``lr_pose_translation``. The world
written stores the corrected source poses in ``frames.c2w``, the corrections in
``info["optimized"]["pose_correction"]`` ([ωx, ωy, ωz, τx, τy, τz] per frame), and corrects the
held-out poses by interpolating their neighbours' corrections in time (no held-out image is
used), so that eval, the refiner and the node render the frames where the Gaussians were fitted.

Resumable: with a ``checkpoint`` path every ``checkpoint_every`` steps the whole state (Gaussians,
Adam moments, exposures, pose corrections, densification statistics, random generator, step) is
written there atomically; ``resume`` continues from it (the settings must be the same) and the
run ends exactly as an uninterrupted one would on the CPU. ``inspatio-ros optimize`` keeps it
beside the output (OUTPUT.ckpt) and removes it once the world is written.

Rasterizer: gaussians/backend.py (gsplat on CUDA where installed, else the reference).

Step cost on a GPU: an ordinary step reads nothing back from the device (test_optimize_speed.py
checks it), so the host queues step n+1 while the GPU runs step n: the loss and PSNR stay on the
device and are read every READ_EVERY steps; the rows a frame draws are worked out at each
densification (every row as it is without dynamic Gaussians, else the static rows merged with
the frame's alive dynamic ones), not by torch.nonzero per step; the depth term is a masked mean;
Adam is fused on CUDA; checkpoints are written at most every CHECKPOINT_MIN_SECONDS. Only the
densification steps and gsplat's own tile count read the device.

Sky (``sky``; default on where the build made a far shell: sky_default): the build's far shell is left out of the Gaussians and a learned colour
per view direction (gaussians/sky.py) is composited behind them where they leave a pixel
uncovered; stored in the world's ``info.sky``.

Opacity reset (``opacity_reset_every``, default 0 = never): every that many steps while
densifying, every opacity is lowered to RESET_OPACITY and its Adam moments cleared, as 3DGS does
every 3000 of 30 000 steps. Off: on the toy scenes at 300 steps it lost 2-6 dB in moved views
(up to 4 dB held-out; docs/notes/2026-12-05-gaussian-optimizer.md): runs of our length have no time to
recover from it.

Deterministic with ``seed`` on the CPU (frame order and split samples come from a generator seeded
by it).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InputError
from ..progress import progress
from .model import (SURFEL_SPLIT_VERSION, GaussianParams, fit_surfel_colours, from_surfels, from_world,
                    source_footprint, surfel_samples, world_arrays)
from .backend import BACKENDS, rasterize, resolve_backend
from .sky import SKY_SHELL_FRACTION, SkyMap, composite, initial_sky, sky_distance, sky_shell, world_sky


# What an opacity reset lowers every opacity to (3DGS: 0.01).
RESET_OPACITY = 0.01
# Steps whose loss and PSNR are read to the host together (the progress bar shows them this often).
READ_EVERY = 10
# A checkpoint of 1-2 M Gaussians with their Adam moments is 0.4-0.8 GB: at most one this often,
# whatever checkpoint_every says (at 100 steps a second, 500 steps would be one every 5 s).
CHECKPOINT_MIN_SECONDS = 60.0


@dataclass
class OptimizeSettings:
    iterations: int = 3000
    max_minutes: float | None = None
    seed: int = 0
    budget: int = 2_000_000          # most Gaussians the world may hold
    ssim_weight: float = 0.2
    lr_means: float = 1.6e-4         # x scene size; decays to 1 % at the end
    lr_scales: float = 5e-3
    lr_quats: float = 1e-3
    lr_opacity: float = 5e-2
    lr_sh0: float = 2.5e-3
    lr_sh1: float = 2.5e-3 / 20
    lr_exposure: float = 1e-3
    densify_from: int = 100
    densify_until: float = 0.5       # share of the iterations
    densify_every: int = 100
    grad_threshold: float = 2e-4
    dense_fraction: float = 0.01
    prune_opacity: float = 0.005
    depth_weight: float = 0.1        # x mean relative depth error where the build's depth is confident
    pose_refine: bool | None = None  # None: on when the world's poses were estimated
    lr_pose_rotation: float = 1e-4   # radians
    lr_pose_translation: float = 1e-3  # metres
    checkpoint_every: int = 500      # steps between checkpoints (with a checkpoint path)
    opacity_reset_every: int = 0     # steps between opacity resets during densification (0: never)
    sky: bool | None = None          # a learned sky instead of the far shell (sky.py); None: where the build has a shell
    lr_sky: float = 1e-2             # the sky texture's colours (0..1); decays to 10 %
    backend: str = "auto"            # gaussians/backend.py: auto | reference | gsplat

    def check(self, option_prefix: str = "--") -> None:
        """One InputError for a bad setting, naming the option as the user typed it (``option_prefix``
        "--optimize-" for build --optimize)."""
        o = option_prefix
        if not (isinstance(self.iterations, int) and self.iterations > 0):
            raise InputError(f"{o}iterations {self.iterations} is not a positive number of steps",
                             f"give {o}iterations N with N >= 1")
        if self.max_minutes is not None and not (math.isfinite(self.max_minutes) and self.max_minutes > 0):
            raise InputError(f"{o}max-minutes {self.max_minutes} leaves no time to optimize",
                             f"give a positive number of minutes, or leave {o}max-minutes out")
        if self.budget < 1:
            raise InputError(f"{o}budget {self.budget} allows no Gaussians", "give a positive budget")
        if self.backend not in BACKENDS:
            raise InputError(f"{o}backend {self.backend!r} is not a Gaussian rasterizer",
                             f"give one of {', '.join(BACKENDS)}")
        if not (math.isfinite(self.depth_weight) and self.depth_weight >= 0):
            raise InputError(f"{o}depth-weight {self.depth_weight} is not a weight", "give 0 (off) or more")
        if self.opacity_reset_every < 0:
            raise InputError(f"{o}opacity-reset-every {self.opacity_reset_every} is not a number of steps",
                             "give 0 (never) or a positive number of steps")
        if self.checkpoint_every < 1:
            raise InputError(f"{o}checkpoint-every {self.checkpoint_every} is not a number of steps",
                             "give a positive number of steps")


@dataclass
class OptimizeResult:
    world: object
    steps: int
    seconds: float
    first_loss: float
    last_loss: float
    train_psnr: float
    gaussians: int
    losses: list[float]


def _gauss_window(size: int = 11, sigma: float = 1.5, dtype=torch.float32) -> torch.Tensor:
    x = torch.arange(size, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-x * x / (2 * sigma * sigma))
    return g / g.sum()


def ssim(x: torch.Tensor, y: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of images (B,3,H,W) in 0..1, Gaussian window (separable), valid region."""
    c = x.shape[1]
    kx = window.to(x)[None, None, None, :].expand(c, 1, 1, -1)
    ky = window.to(x)[None, None, :, None].expand(c, 1, -1, 1)

    def blur(z):
        return F.conv2d(F.conv2d(z, kx, groups=c), ky, groups=c)

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))
    return s.mean()


def initial_gaussians(world, without_sky_shell: bool = False) -> GaussianParams:
    """Every Gaussian the optimization starts from, one set (static ones with an infinite span);
    ``without_sky_shell``: not the static ones on the build's far shell (sky.sky_shell), which a
    learned sky replaces."""
    if world.has_gaussians:
        static, dynamic = from_world(world, "static"), from_world(world, "dynamic")
        if without_sky_shell:
            near = torch.as_tensor(~sky_shell(world, static.means.numpy()))
            static = GaussianParams(static.means[near], static.log_scales[near], static.quats[near],
                                    static.opacity_logits[near], static.sh[near])
    else:
        if world.num_static == 0:
            raise InputError("the world has no surfels to start the Gaussians from",
                             "build it again with 'inspatio-ros build'")
        near = ~sky_shell(world, world.static_xyz) if without_sky_shell else slice(None)
        static = from_surfels(world.static_xyz[near], world.static_rgb[near], world.static_radius[near],
                              world.static_normal[near])
        # Moving objects only: a frame-local layer repeats the static surfaces frame by frame.
        rows = slice(None) if world.num_dynamic and not world.info.get("frame_local") else slice(0)
        dynamic = from_surfels(world.dynamic_xyz[rows], world.dynamic_rgb[rows], world.dynamic_radius[rows],
                               world.dynamic_normal[rows], world.dynamic_t_start[rows], world.dynamic_t_end[rows])
    n_s = len(static)
    cat = (lambda a, b: torch.cat([a, b]))
    return GaussianParams(cat(static.means, dynamic.means), cat(static.log_scales, dynamic.log_scales),
                          cat(static.quats, dynamic.quats), cat(static.opacity_logits, dynamic.opacity_logits),
                          cat(static.sh, dynamic.sh),
                          torch.cat([torch.full((n_s,), -math.inf, dtype=torch.float64), dynamic.t_start]),
                          torch.cat([torch.full((n_s,), math.inf, dtype=torch.float64), dynamic.t_end]))


def scene_size(world, means: torch.Tensor) -> float:
    """Metres: the larger of the camera path's radius and the median distance of the Gaussians from
    the cameras' centroid (a camera that only turns still sees a scene of some size), the build's
    far shell (sky.sky_shell) left out: it is where the sky was put, not part of the scene."""
    centres = torch.as_tensor(world.frame_c2w[:, :3, 3], dtype=torch.float32)
    mid = centres.mean(0)
    path = float((centres - mid).norm(dim=1).max())
    means = means[torch.as_tensor(~sky_shell(world, means.detach().cpu().numpy()))]
    points = float((means - mid).norm(dim=1).median()) if len(means) else 0.0
    return max(path * 1.1, points, 1e-3)


class TrainableGaussians:
    """The Gaussians' parameters as leaf tensors in one Adam, with the row edits densification
    needs (the optimizer's moments follow the rows; new rows start with zero moments)."""

    NAMES = ("means", "log_scales", "quats", "opacity_logits", "sh0", "sh1")

    def __init__(self, g: GaussianParams, s: OptimizeSettings, size: float, device, frame_times: list[float]):
        self.frame_times = frame_times
        self.params = {
            "means": g.means, "log_scales": g.log_scales, "quats": g.quats, "opacity_logits": g.opacity_logits,
            "sh0": g.sh[:, :1], "sh1": g.sh[:, 1:],
        }
        self.params = {k: v.detach().to(device, torch.float32).clone().requires_grad_(True)
                       for k, v in self.params.items()}
        self.t_start, self.t_end = g.t_start.to(device), g.t_end.to(device)
        self.base_lr = {"means": s.lr_means * size, "log_scales": s.lr_scales, "quats": s.lr_quats,
                        "opacity_logits": s.lr_opacity, "sh0": s.lr_sh0, "sh1": s.lr_sh1}
        # Fused (one kernel for every parameter) on CUDA; the CPU keeps the default implementation,
        # whose results the seeded CPU runs are compared against.
        self.optim = torch.optim.Adam([{"params": [self.params[k]], "lr": self.base_lr[k], "name": k}
                                       for k in self.NAMES], eps=1e-15, fused=torch.device(device).type == "cuda")
        self._index_rows()

    def _index_rows(self) -> None:
        """Which rows each source frame draws, worked out once per edit rather than every step (a
        per-step torch.nonzero waits for the GPU): None for a frame where every Gaussian exists
        (always, without dynamic Gaussians: the parameters go to the rasterizer as they are),
        else the alive dynamic rows, merged with the static rows at the step (_rows_of)."""
        static = torch.isinf(self.t_start) & torch.isinf(self.t_end)
        dynamic_rows = torch.nonzero(~static)[:, 0]
        self.static_rows = torch.nonzero(static)[:, 0]
        self.alive_dynamic: list[torch.Tensor | None] = []
        ts, te = self.t_start[dynamic_rows], self.t_end[dynamic_rows]
        for t in self.frame_times:
            alive = (ts <= t) & (t <= te)
            self.alive_dynamic.append(None if bool(alive.all()) else dynamic_rows[alive])

    def rows_of(self, frame: int) -> torch.Tensor | None:
        """The rows frame ``frame`` draws in ascending order (as torch.nonzero of its alive mask
        gives them), or None for every row; no host synchronisation."""
        alive = self.alive_dynamic[frame]
        return None if alive is None else torch.sort(torch.cat([self.static_rows, alive])).values

    def __len__(self) -> int:
        return int(self.params["means"].shape[0])

    def edit(self, keep: torch.Tensor, new: dict[str, torch.Tensor], new_t: tuple[torch.Tensor, torch.Tensor]):
        """Keep the rows ``keep`` (bool) and append ``new`` (values per parameter name)."""
        for group in self.optim.param_groups:
            name = group["name"]
            old = group["params"][0]
            value = torch.cat([old.detach()[keep], new[name].detach()]).requires_grad_(True)
            state = self.optim.state.pop(old, None)
            if state:
                for key in ("exp_avg", "exp_avg_sq"):
                    state[key] = torch.cat([state[key][keep], torch.zeros_like(new[name])])
                self.optim.state[value] = state
            group["params"][0] = value
            self.params[name] = value
        self.t_start = torch.cat([self.t_start[keep], new_t[0]])
        self.t_end = torch.cat([self.t_end[keep], new_t[1]])
        self._index_rows()

    def reset_opacity(self, ceiling: float) -> None:
        """Every opacity above ``ceiling`` lowered to it, the opacities' Adam moments cleared (3DGS's
        reset: Gaussians that matter regain opacity, floaters stay faint and are pruned)."""
        logits = self.params["opacity_logits"]
        with torch.no_grad():
            logits.clamp_(max=math.log(ceiling / (1 - ceiling)))
        state = self.optim.state.get(logits)
        if state:
            state["exp_avg"].zero_()
            state["exp_avg_sq"].zero_()

    def as_params(self) -> GaussianParams:
        p = self.params
        return GaussianParams(p["means"], p["log_scales"], p["quats"], p["opacity_logits"],
                              torch.cat([p["sh0"], p["sh1"]], 1), self.t_start, self.t_end)


def _densify(tr: TrainableGaussians, grad_sum: torch.Tensor, grad_count: torch.Tensor, s: OptimizeSettings,
             size: float, gen: torch.Generator) -> tuple[int, int, int]:
    """One densify-and-prune pass; returns (cloned, split, pruned)."""
    p = {k: v.detach() for k, v in tr.params.items()}
    n = len(tr)
    with torch.no_grad():
        avg = grad_sum / grad_count.clamp_min(1)
        scales = torch.exp(p["log_scales"])
        largest = scales.max(1).values
        opacity = torch.sigmoid(p["opacity_logits"])
        prune = (opacity < s.prune_opacity) | (largest > 0.5 * size)
        grow = (avg > s.grad_threshold) & ~prune
        room = max(s.budget - (n - int(prune.sum())), 0)
        if int(grow.sum()) > room:
            # The highest gradients first, as many as the budget allows.
            order = torch.argsort(torch.where(grow, avg, torch.full_like(avg, -1.0)), descending=True)
            grow = torch.zeros_like(grow)
            grow[order[:room]] = True
        split = grow & (largest > s.dense_fraction * size)
        clone = grow & ~split
        new = {k: v[clone] for k, v in p.items()}
        new_t = (tr.t_start[clone], tr.t_end[clone])
        if split.any():
            from .rasterize import quaternion_to_rotation

            rot = quaternion_to_rotation(p["quats"][split])
            sc = scales[split]
            parts = []
            for _ in range(2):
                offset = torch.randn(sc.shape, generator=gen, dtype=sc.dtype, device="cpu").to(sc.device) * sc
                parts.append(p["means"][split] + (rot @ offset[..., None])[..., 0])
            halves = {"means": torch.cat(parts),
                      "log_scales": torch.log(sc / 1.6).repeat(2, 1),
                      **{k: p[k][split].repeat(2, *([1] * (p[k].dim() - 1)))
                         for k in ("quats", "opacity_logits", "sh0", "sh1")}}
            new = {k: torch.cat([new[k], halves[k]]) for k in new}
            new_t = (torch.cat([new_t[0], tr.t_start[split].repeat(2)]), torch.cat([new_t[1], tr.t_end[split].repeat(2)]))
        keep = ~(prune | split)
    tr.edit(keep, new, new_t)
    return int(clone.sum()), int(split.sum()), int(prune.sum())


def _shuffled_frames(count: int, gen: torch.Generator) -> list[int]:
    """The next epoch's frame order (popped from the end), from the seeded host-side generator: a
    list on the host, read without waiting for the device."""
    return torch.randperm(count, generator=gen).tolist()


def pose_exp(delta: torch.Tensor) -> torch.Tensor:
    """(F,6) [ωx ωy ωz τx τy τz] -> (F,4,4) rigid transforms: rotation exp(ω) (Rodrigues, with
    its series near 0 so the gradient at the zero correction is exact) and translation τ."""
    w, tau = delta[:, :3], delta[:, 3:]
    theta2 = (w * w).sum(-1, keepdim=True)[..., None]
    theta = torch.sqrt(theta2.clamp_min(1e-24))
    small = theta2 < 1e-8
    a = torch.where(small, 1 - theta2 / 6, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24, (1 - torch.cos(theta)) / theta2.clamp_min(1e-24))
    zero = torch.zeros_like(w[:, 0])
    wx = torch.stack([zero, -w[:, 2], w[:, 1], w[:, 2], zero, -w[:, 0], -w[:, 1], w[:, 0], zero], -1).reshape(-1, 3, 3)
    R = torch.eye(3, dtype=delta.dtype, device=delta.device) + a * wx + b * (wx @ wx)
    top = torch.cat([R, tau[..., None]], -1)
    bottom = torch.zeros_like(top[:, :1, :])
    bottom[..., 3] = 1
    return torch.cat([top, bottom], 1)


def pose_refine_default(world) -> bool:
    """Pose refinement is on by default where the poses were estimated from the images."""
    return str(world.info.get("pose_source", "")).startswith("estimated")


def depth_targets(world, device, sky_fraction: float = SKY_SHELL_FRACTION) -> list[torch.Tensor | None]:
    """The build's depth of every source frame where it is confident, NaN elsewhere ((H,W) float32
    on ``device``; None for a frame with no confident pixel): the fused world drawn from the frame
    at its time (render/renderer.py: the frame's own surfels in front in a frame-local world),
    kept where a surfel was drawn (not hole-filled) and nearer than ``sky_fraction`` of the build's
    sky distance."""
    from ..render.renderer import Renderer

    sky = sky_distance(world)
    renderer = Renderer(world, device)
    out = []
    for f in progress(range(len(world.frame_c2w)), desc="build depth", unit="frame"):
        r = renderer.render(renderer.cameras(world.frame_c2w[f:f + 1]), float(world.frame_time[f]))
        d = r.depth[0].to(device, torch.float32)
        ok = r.coverage[0].to(device) & torch.isfinite(d) & (d > 0) & (d < sky_fraction * sky)
        out.append(torch.where(ok, d, torch.full_like(d, math.nan)) if bool(ok.any()) else None)
    return out


def _corrected_poses(world, delta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(source c2w, held-out c2w, held-out corrections): the source poses with their corrections,
    the held-out ones with the corrections of their neighbours in time interpolated linearly."""
    def apply(c2w, d):
        return np.asarray(c2w, np.float64) @ pose_exp(torch.as_tensor(d, dtype=torch.float64)).numpy()

    order = np.argsort(world.frame_time)
    held = np.stack([np.interp(world.heldout_time, world.frame_time[order], delta[order, k]) for k in range(6)], -1) \
        if len(world.heldout_time) else np.zeros((0, 6))
    return apply(world.frame_c2w, delta), apply(world.heldout_c2w, held), held


def _save_checkpoint(path: Path, state: dict) -> None:
    from ..fileio import atomic_path

    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def _load_checkpoint(path: Path, settings: "OptimizeSettings", world, device) -> dict:
    try:
        state = torch.load(path, map_location=device, weights_only=False)
    except Exception as e:  # a truncated or foreign file
        raise InputError(f"checkpoint {path} cannot be read ({type(e).__name__}: {e})",
                         "delete it and optimize from the start (leave out --resume)") from None
    if not isinstance(state, dict) or state.get("format") != "inspatio_optimize_checkpoint":
        raise InputError(f"{path} is not an optimize checkpoint", "delete it, or leave out --resume")
    mine = {k: v for k, v in asdict(settings).items() if k != "max_minutes"}
    theirs = {k: v for k, v in state["settings"].items() if k != "max_minutes"}
    if mine != theirs:
        differ = sorted(k for k in mine if mine.get(k) != theirs.get(k))
        raise InputError(f"checkpoint {path} was made with other settings ({', '.join(differ)})",
                         "resume with the same options, or delete the checkpoint to start again")
    if state["frames"] != [int(i) for i in world.frame_index]:
        raise InputError(f"checkpoint {path} belongs to another world (other source frames)",
                         "delete it, or resume with the world it was made for")
    return state


def optimize(world, load_frame: Callable[[int], np.ndarray], settings: OptimizeSettings | None = None,
             device: str | torch.device = "cpu", log: Callable[[str], None] | None = None,
             checkpoint: str | Path | None = None, resume: bool = False,
             on_step: Callable[[int], None] | None = None) -> OptimizeResult:
    """Fit Gaussians to ``world``'s source frames (``load_frame``: frame number -> RGB uint8, as
    generator.data.frame_loader gives) and return the optimized world (a copy: format version 2,
    the fused surfels replaced by the Gaussians drawn as surfels: _optimized_world).

    ``checkpoint``: where the state is saved every ``checkpoint_every`` steps (the caller removes it
    once the result is saved);
    ``resume``: continue from it when it exists. ``on_step(step)`` is called after each step."""
    s = settings or OptimizeSettings()
    s.check()
    device = torch.device(device)
    backend = resolve_backend(s.backend, device)
    refine_poses = pose_refine_default(world) if s.pose_refine is None else bool(s.pose_refine)
    torch.manual_seed(s.seed)
    gen = torch.Generator().manual_seed(s.seed)
    intr = world.intrinsics
    W, H = intr.width, intr.height
    checkpoint = None if checkpoint is None else Path(checkpoint)
    state = _load_checkpoint(checkpoint, s, world, device) if resume and checkpoint and checkpoint.exists() else None
    frames = _load_targets(world, load_frame, device)
    depths = depth_targets(world, device) if s.depth_weight > 0 else [None] * len(frames)
    # Per frame: where the build's depth is known, and that depth with 1 elsewhere (a NaN there
    # would reach the gradient through the masked loss).
    depths = [None if d is None else (torch.isfinite(d), torch.where(torch.isfinite(d), d, 1.0)) for d in depths]
    K = torch.as_tensor(intr.K, dtype=torch.float32, device=device)[None]
    c2w_all = torch.as_tensor(world.frame_c2w, dtype=torch.float32, device=device)
    times = [float(t) for t in world.frame_time]

    use_sky = sky_default(world) if s.sky is None else bool(s.sky)
    g0 = initial_gaussians(world, without_sky_shell=use_sky)
    sky = _initial_sky(world) if use_sky else None
    if len(g0) > s.budget:
        pick = torch.randperm(len(g0), generator=gen)[:s.budget].sort().values
        g0 = GaussianParams(g0.means[pick], g0.log_scales[pick], g0.quats[pick], g0.opacity_logits[pick],
                            g0.sh[pick], g0.t_start[pick], g0.t_end[pick])
    size = scene_size(world, g0.means)
    tr = TrainableGaussians(g0, s, size, device, times)
    exposure = torch.zeros((len(frames), 3, 4), device=device)
    exposure[:, :, :3] = torch.eye(3, device=device)
    # An optimized world keeps its source frames' colour transforms (info.optimized.exposure): the
    # Gaussians' colours were fitted with them, so optimizing it again starts from them.
    stored = np.asarray((world.info.get("optimized") or {}).get("exposure", []), dtype=np.float64) \
        if world.has_gaussians else np.zeros(0)
    if stored.shape == (len(frames), 3, 4) and np.isfinite(stored).all():
        exposure.copy_(torch.as_tensor(stored, dtype=torch.float32, device=device))
    exposure.requires_grad_(True)
    exposure_optim = torch.optim.Adam([exposure], lr=s.lr_exposure)
    pose_rot = torch.zeros((len(frames), 3), device=device, requires_grad=True)
    pose_trans = torch.zeros((len(frames), 3), device=device, requires_grad=True)
    pose_optim = torch.optim.Adam([{"params": [pose_rot], "lr": s.lr_pose_rotation},
                                   {"params": [pose_trans], "lr": s.lr_pose_translation}])
    window = _gauss_window().to(device)
    if sky is not None:
        sky = sky.to(device)
        sky_optim = torch.optim.Adam([sky.rgb], lr=s.lr_sky)
    grad_sum = torch.zeros(len(tr), device=device)
    grad_count = torch.zeros(len(tr), device=device)
    densify_until = int(s.densify_until * s.iterations)

    losses: list[float] = []
    psnrs: list[float] = []
    order: list[int] = []
    first_step = 1
    if state is not None:
        tr = TrainableGaussians(GaussianParams(**state["gaussians"]), s, size, device, times)
        tr.optim.load_state_dict(state["adam"])
        with torch.no_grad():
            exposure.copy_(state["exposure"])
            pose_rot.copy_(state["pose_rotation"])
            pose_trans.copy_(state["pose_translation"])
        exposure_optim.load_state_dict(state["exposure_adam"])
        if sky is not None:
            with torch.no_grad():
                sky.rgb.copy_(state["sky"])
            sky_optim.load_state_dict(state["sky_adam"])
        pose_optim.load_state_dict(state["pose_adam"])
        grad_sum, grad_count = state["grad_sum"].to(device), state["grad_count"].to(device)
        gen.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        losses, psnrs, order = list(state["losses"]), list(state["psnrs"]), list(state["order"])
        first_step = int(state["step"]) + 1
        if log is not None:
            log(f"resuming from {checkpoint} after step {state['step']}")
    # Each step's loss and image MSE stay on the device until READ_EVERY steps have passed: reading
    # one (float()) waits for the GPU to finish the step, so every step would wait for its own.
    pending: list[torch.Tensor] = []

    def read_pending() -> None:
        if pending:
            for loss_value, mse in torch.stack(pending).tolist():
                losses.append(loss_value)
                psnrs.append(10 * math.log10(1.0 / max(mse, 1e-12)))
            pending.clear()

    half_image = torch.tensor([W / 2.0, H / 2.0], device=device)
    last_checkpoint = -math.inf
    start = time.monotonic()
    deadline = None if s.max_minutes is None else start + 60.0 * s.max_minutes
    bar = progress(total=s.iterations, desc="optimizing", unit="step")
    bar.update(first_step - 1)
    step = first_step - 1
    for step in range(first_step, s.iterations + 1):
        if not order:
            order = _shuffled_frames(len(frames), gen)
        f = order.pop()
        # Centres' learning rate decays exponentially to 1 % over the run (gsplat's schedule); the
        # pose corrections' to 10 %.
        progress_share = (step - 1) / max(s.iterations - 1, 1)
        tr.optim.param_groups[0]["lr"] = tr.base_lr["means"] * 0.01 ** progress_share
        pose_optim.param_groups[0]["lr"] = s.lr_pose_rotation * 0.1 ** progress_share
        pose_optim.param_groups[1]["lr"] = s.lr_pose_translation * 0.1 ** progress_share
        if sky is not None:
            sky_optim.param_groups[0]["lr"] = s.lr_sky * 0.1 ** progress_share
        idx = tr.rows_of(f)
        p = tr.params if idx is None else {k: v[idx] for k, v in tr.params.items()}
        c2w = c2w_all[f:f + 1]
        if refine_poses and f != 0:
            c2w = c2w @ pose_exp(torch.cat([pose_rot[f:f + 1], pose_trans[f:f + 1]], 1))
        out = rasterize(p["means"], p["quats"], torch.exp(p["log_scales"]), torch.sigmoid(p["opacity_logits"]),
                        torch.cat([p["sh0"], p["sh1"]], 1), K, c2w, W, H, backend=backend)
        out.means2d.retain_grad()
        rgb = (out.rgb if sky is None else composite(out.rgb, out.coverage, sky, K, c2w))[0].permute(2, 0, 1)   # (3,H,W)
        rgb = torch.einsum("ij,jhw->ihw", exposure[f, :, :3], rgb) + exposure[f, :, 3, None, None]
        target = frames[f]
        l1 = (rgb - target).abs().mean()
        loss = (1 - s.ssim_weight) * l1 + s.ssim_weight * (1 - ssim(rgb[None], target[None], window))
        if depths[f] is not None:
            # The mean over the confident pixels the render covers, as a masked sum (no host read of
            # the mask's count); 0 where there is none.
            known, depth = depths[f]
            use = known & (out.coverage[0].detach() > 0.5)
            relative = (out.depth[0] - depth).abs() / depth
            loss = loss + s.depth_weight * torch.where(use, relative, 0.0).sum() / use.sum().clamp_min(1)
        tr.optim.zero_grad(set_to_none=True)
        exposure_optim.zero_grad(set_to_none=True)
        pose_optim.zero_grad(set_to_none=True)
        if sky is not None:
            sky_optim.zero_grad(set_to_none=True)
        loss.backward()
        with torch.no_grad():
            if step < densify_until:
                seen = out.radii[0] > 0
                g2 = torch.where(seen, (out.means2d.grad[0] * half_image).norm(dim=-1), 0.0)
                if idx is None:
                    grad_sum += g2
                    grad_count += seen.to(grad_count.dtype)
                else:
                    grad_sum.index_add_(0, idx, g2)
                    grad_count.index_add_(0, idx, seen.to(grad_count.dtype))
            pending.append(torch.stack([loss.detach(), ((rgb.clamp(0, 1) - target) ** 2).mean()]))
        tr.optim.step()
        exposure_optim.step()
        if refine_poses and f != 0:
            pose_optim.step()
        if sky is not None:
            sky_optim.step()
        if step % READ_EVERY == 0 or step == s.iterations:
            read_pending()
        if s.densify_from <= step < densify_until and step % s.densify_every == 0:
            cloned, split, pruned = _densify(tr, grad_sum, grad_count, s, size, gen)
            grad_sum = torch.zeros(len(tr), device=device)
            grad_count = torch.zeros(len(tr), device=device)
            if log is not None:
                log(f"step {step}: cloned {cloned}, split {split}, pruned {pruned}: {len(tr)} Gaussians")
        if s.opacity_reset_every and step % s.opacity_reset_every == 0 and step < densify_until:
            tr.reset_opacity(RESET_OPACITY)
        bar.update(1)
        if step % 10 == 0 or step == s.iterations:
            recent = slice(-min(len(losses), 20), None)
            bar.set_postfix(loss=f"{np.mean(losses[recent]):.4f}", psnr=f"{np.mean(psnrs[recent]):.2f}",
                            gaussians=len(tr))
        if checkpoint is not None and step % s.checkpoint_every == 0 and step < s.iterations \
                and time.monotonic() - last_checkpoint >= CHECKPOINT_MIN_SECONDS:
            read_pending()
            last_checkpoint = time.monotonic()
            g = tr.as_params()
            _save_checkpoint(checkpoint, {
                "format": "inspatio_optimize_checkpoint", "settings": asdict(s), "step": step,
                "frames": [int(i) for i in world.frame_index],
                "gaussians": {"means": g.means.detach(), "log_scales": g.log_scales.detach(),
                              "quats": g.quats.detach(), "opacity_logits": g.opacity_logits.detach(),
                              "sh": g.sh.detach(), "t_start": g.t_start, "t_end": g.t_end},
                "adam": tr.optim.state_dict(), "exposure": exposure.detach(),
                "exposure_adam": exposure_optim.state_dict(), "pose_rotation": pose_rot.detach(),
                "pose_translation": pose_trans.detach(), "pose_adam": pose_optim.state_dict(),
                "grad_sum": grad_sum, "grad_count": grad_count, "generator": gen.get_state(),
                "torch_rng": torch.get_rng_state(), "losses": losses, "psnrs": psnrs, "order": order,
                **({} if sky is None else {"sky": sky.rgb.detach(), "sky_adam": sky_optim.state_dict()})})
        if on_step is not None:
            on_step(step)
        if deadline is not None and time.monotonic() >= deadline:
            read_pending()
            if log is not None:
                log(f"--max-minutes {s.max_minutes} reached after {step} of {s.iterations} steps")
            break
    bar.close()
    seconds = time.monotonic() - start
    recent = slice(-min(len(losses), max(len(frames), 10)), None)
    delta = torch.cat([pose_rot, pose_trans], 1).detach().double().cpu().numpy() if refine_poses \
        else np.zeros((len(frames), 6))
    record = {**{k: v for k, v in asdict(s).items()}, "steps": step, "seconds": round(seconds, 2),
              "train_psnr": round(float(np.mean(psnrs[recent])), 3), "scene_size_m": round(size, 3),
              "backend": backend, "pose_refine": refine_poses,
              "depth_frames": int(sum(d is not None for d in depths)),
              # Per source frame, the affine colour transform (3x3 | offset) its render took to
              # match the frame: what no later step can recompute without optimizing again.
              "exposure": np.round(exposure.detach().cpu().double().numpy(), 6).tolist()}
    result_world = _optimized_world(world, tr.as_params(), record, device, delta, backend, sky)
    return OptimizeResult(result_world, step, seconds, losses[0], float(np.mean(losses[recent])),
                          float(np.mean(psnrs[recent])), len(tr), losses)


def sky_default(world) -> bool:
    """The learned sky is on by default where the world saw sky: it has one already (optimized
    again), or the build put surfels (or an optimization Gaussians) on its far shell. Not for a
    world without (indoors, the toy scenes): there a colour per direction can only absorb errors
    at the frames' edges, and it lost 2 dB held-out on the plain toy (2026-12-05 note)."""
    if world_sky(world) is not None:
        return True
    xyz = from_world(world, "static").means.numpy() if world.has_gaussians else world.static_xyz
    return bool(sky_shell(world, xyz).any())


def _initial_sky(world) -> SkyMap:
    """The world's own sky when it has one (optimized again), else one made from its far shell's
    colours (the static surfels, or Gaussians' DC colours, on it: sky.initial_sky)."""
    stored = world_sky(world)
    if stored is not None:
        return stored
    if world.has_gaussians:
        from .rasterize import SH_C0

        g = from_world(world, "static")
        shell = sky_shell(world, g.means.numpy())
        rgb = ((SH_C0 * g.sh[shell, 0] + 0.5).clamp(0, 1) * 255).round().numpy()
        return initial_sky(world, g.means[shell].numpy(), rgb)
    shell = sky_shell(world, world.static_xyz)
    return initial_sky(world, world.static_xyz[shell], world.static_rgb[shell])


def _load_targets(world, load_frame, device) -> list[torch.Tensor]:
    """The source frames (never the held-out ones) as (3,H,W) float 0..1 at the world's size."""
    import cv2

    w, h = world.intrinsics.width, world.intrinsics.height
    out = []
    for number in progress([int(i) for i in world.frame_index], desc="loading frames", unit="frame"):
        img = np.asarray(load_frame(number))
        if img.shape[:2] != (h, w):
            img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
        out.append(torch.as_tensor(img[..., :3].astype(np.float32) / 255.0).permute(2, 0, 1).contiguous().to(device))
    return out


def baked_colours(params: GaussianParams, world, device, points: torch.Tensor, owner: torch.Tensor,
                  backend: str = "auto") -> torch.Tensor:
    """(S,3) uint8: the colour the optimized render shows at each of ``points`` (S,3), surfels of
    the Gaussians ``owner`` (S,), for drawing them as opaque surfels. Alpha blending lets
    overlapping Gaussians make a colour none of them has (a saturated one under a faint one), so a
    Gaussian's DC colour alone draws a speckled picture; this is the mean of the final render (at
    the reference exposure) at the point over the source frames where the point is on the drawn
    surface (its depth within 5 % of the render's expected depth there) while its Gaussian exists.
    Points no frame sees keep their Gaussian's DC colour."""
    from .rasterize import SH_C0

    n = len(points)
    total = torch.zeros((n, 3), device=device)
    seen = torch.zeros(n, device=device)
    intr = world.intrinsics
    K = torch.as_tensor(intr.K, dtype=torch.float32, device=device)[None]
    points, owner = points.to(device), owner.to(device)
    with torch.no_grad():
        for f in range(len(world.frame_c2w)):
            t = float(world.frame_time[f])
            alive = (params.t_start <= t) & (t <= params.t_end)
            idx = torch.nonzero(alive)[:, 0]
            c2w = torch.as_tensor(world.frame_c2w[f:f + 1], dtype=torch.float32, device=device)
            out = rasterize(params.means[idx], params.quats[idx], params.scales[idx], params.opacities[idx],
                            params.sh[idx], K, c2w, intr.width, intr.height, backend=backend)
            p = (points - c2w[0, :3, 3]) @ c2w[0, :3, :3]
            z = p[:, 2]
            u = torch.round(intr.fx * p[:, 0] / z.clamp_min(1e-3) + intr.cx)
            v = torch.round(intr.fy * p[:, 1] / z.clamp_min(1e-3) + intr.cy)
            inside = alive[owner] & (z > 1e-3) & (u >= 0) & (u < intr.width) & (v >= 0) & (v < intr.height)
            rows = torch.nonzero(inside)[:, 0]
            ui, vi = u[rows].long(), v[rows].long()
            drawn = out.depth[0, vi, ui]
            on_surface = (out.coverage[0, vi, ui] > 0.5) & ((z[rows] - drawn).abs() < 0.05 * drawn)
            who = rows[on_surface]
            total.index_add_(0, who, out.rgb[0, vi, ui][on_surface].clamp(0, 1))
            seen.index_add_(0, who, torch.ones(len(who), device=device))
        dc = (SH_C0 * params.sh[owner, 0] + 0.5).clamp(0, 1)
        colour = torch.where(seen[:, None] > 0, total / seen.clamp_min(1)[:, None], dc)
    return (colour * 255).round().to(torch.uint8)


def _optimized_world(world, params: GaussianParams, record: dict, device, pose_delta: np.ndarray | None = None,
                     backend: str = "auto", sky: SkyMap | None | str = "keep"):
    """A copy of ``world`` with the Gaussian layer ``params`` (split into its static and dynamic
    groups), the source and held-out poses corrected by ``pose_delta`` ((F,6) per source frame,
    recorded in ``record["pose_correction"]``), each Gaussian's colour field for the CPU drawing
    (model.fit_surfel_colours of baked_colours), and no surfels: the fused ones are what the
    Gaussians replace, and the CPU renderer splits the Gaussians into surfels at load
    (model.world_surfels), exactly as here, from the stored (half precision) parameters."""
    import dataclasses

    if pose_delta is not None and np.any(pose_delta):
        frame_c2w, heldout_c2w, held = _corrected_poses(world, pose_delta)
        record = {**record, "pose_correction": np.round(pose_delta, 7).tolist(),
                  "heldout_pose_correction": np.round(held, 7).tolist(),
                  "pose_correction_max": {"rotation_deg": round(float(np.degrees(np.linalg.norm(pose_delta[:, :3], axis=1)).max()), 4),
                                          "translation_m": round(float(np.linalg.norm(pose_delta[:, 3:], axis=1).max()), 4)}}
        world = dataclasses.replace(world, frame_c2w=frame_c2w, heldout_c2w=heldout_c2w)

    static = torch.isinf(params.t_start) & torch.isinf(params.t_end)

    def rows(mask):
        return GaussianParams(params.means[mask], params.log_scales[mask], params.quats[mask],
                              params.opacity_logits[mask], params.sh[mask], params.t_start[mask], params.t_end[mask])

    fields = {**world_arrays(rows(static), "static"), **world_arrays(rows(~static), "dynamic")}
    info = {k: v for k, v in world.info.items() if k not in ("frame_local", "frame_local_points")}
    info["optimized"] = {**record, "surfel_split": SURFEL_SPLIT_VERSION}
    # The sky the Gaussians were fitted with (none: they were fitted without one); "keep": the world's own.
    if sky is None:
        info.pop("sky", None)
    elif isinstance(sky, SkyMap):
        info["sky"] = sky.to_info()
    empty = {f"{layer}_{name}": getattr(world, f"{layer}_{name}")[:0] for layer in ("static", "dynamic")
             for name in ("xyz", "rgb", "radius", "normal", "frame")}
    out = dataclasses.replace(world, **fields, **empty, dynamic_t_start=world.dynamic_t_start[:0],
                              dynamic_t_end=world.dynamic_t_end[:0], info=info)
    # The colour field is fitted to the surfels the loader will make: the same split of the stored
    # parameters, each surfel coloured by the optimized render (baked_colours).
    layers = [from_world(out, layer) for layer in ("static", "dynamic")]
    n_static = len(layers[0])
    layers[0].t_start = torch.full((n_static,), -math.inf, dtype=torch.float64)
    layers[0].t_end = torch.full((n_static,), math.inf, dtype=torch.float64)
    stored = GaussianParams(*(torch.cat([getattr(g, k) for g in layers]) for k in
                              ("means", "log_scales", "quats", "opacity_logits", "sh", "t_start", "t_end"))).to(device)
    samples = [surfel_samples(g, source_footprint(g.means, out)) for g in layers]
    points = torch.cat([s["xyz"] for s in samples]).to(device)
    owner = torch.cat([samples[0]["owner"], samples[1]["owner"] + n_static]).to(device)
    baked = baked_colours(stored, out, device, points, owner, backend).cpu().float()
    first = len(samples[0]["owner"])
    colour_fields = {}
    for layer, s, rgb in (("static", samples[0], baked[:first]), ("dynamic", samples[1], baked[first:])):
        field_rgb, gradient = fit_surfel_colours(s, rgb, len(layers[0 if layer == "static" else 1]))
        colour_fields.update({f"gauss_{layer}_surfel_rgb": field_rgb, f"gauss_{layer}_surfel_rgb_gradient": gradient})
    return dataclasses.replace(out, **colour_fields)


def refit_surfel_colours(world, device="cpu", backend: str = "auto"):
    """An optimized world in today's layout: its Gaussians unchanged, their colour field for the
    CPU drawing baked again from their render over the source frames, no stored surfels. For
    worlds written before 2026-12-05 (split surfels stored beside the Gaussians: several times
    the file) or whose field was fitted to another split (model.SURFEL_SPLIT_VERSION); no
    optimization step is taken."""
    if not world.has_gaussians:
        raise InputError("the world has no Gaussian layer", "give a world written by 'inspatio-ros optimize'")
    return _optimized_world(world, initial_gaussians(world), dict(world.info.get("optimized") or {}),
                            torch.device(device), backend=backend)


def default_output(world_path: str | Path) -> Path:
    """WORLD.safetensors -> WORLD.optimized.safetensors beside it."""
    p = Path(world_path)
    return p.with_name(p.name[:-len(".safetensors")] + ".optimized.safetensors"
                       if p.name.endswith(".safetensors") else p.name + ".optimized.safetensors")
