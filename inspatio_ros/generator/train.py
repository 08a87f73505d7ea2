"""``inspatio-ros train-generator WORLD``: learn a per-world refiner from the world's own frames.

Self-supervised: each fused source frame is rendered from the world without its own points and
its neighbours' (k = 0, 1, 2 frames either side; see generator/data.py), once, and cached on the
device; then the network learns to turn random crops of those renders into the real frame's crops
(L1 + 0.2 (1 - SSIM) + 0.1 multi-scale gradient L1; AdamW, warm-up then cosine learning rate,
gradients clipped to norm 1), with random horizontal flips. Held-out
frames are never rendered, loaded or trained on.

Why no pose jitter: the real image is known only at its recorded pose, so a render from a
jittered pose does not line up with the target pixel for pixel, and a network trained on such
pairs learns to blur. The leave-out renders give the novel-view defects (holes, stretched splats,
colours of points seen from elsewhere) while keeping the target exact; larger k stands in for
larger shifts.

Deterministic with ``--seed`` on the CPU (each step's crops come from a generator seeded by seed
and step, so a resumed run draws the same crops); resumable with ``--resume`` from the checkpoint
``WORLD.generator.ckpt.pt`` written every ``--checkpoint-every`` steps. CUDA: bf16 autocast,
channels_last.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import InputError
from ..fileio import atomic_path
from ..progress import progress
from .data import TrainingData, frame_loader, prepare
from .model import GeneratorConfig, RefinerNet, depth_feature
from .refiner import beside, save_weights


@dataclass
class TrainSettings:
    steps: int = 8000
    batch: int = 16
    crop: int = 192
    lr: float = 5e-4
    seed: int = 0
    leave_out: list[int] = field(default_factory=lambda: [0, 1, 2])
    widths: list[int] = field(default_factory=lambda: [32, 48, 96, 128])
    ssim_weight: float = 0.2
    grad_weight: float = 0.1
    checkpoint_every: int = 250
    amp: bool = True                 # bf16 autocast on CUDA

    def resume_key(self) -> dict:
        """What a checkpoint must agree on to be resumed."""
        d = asdict(self)
        d.pop("checkpoint_every")
        return d


def checkpoint_path(weights: str | Path) -> Path:
    """``dir/name.safetensors`` -> ``dir/name.ckpt.pt``."""
    return beside(weights, ".ckpt.pt")


def _gauss(size: int = 7, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(x ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None].expand(3, 1, size, size).contiguous()


def ssim_map(x: torch.Tensor, y: torch.Tensor, window: torch.Tensor) -> torch.Tensor:
    """SSIM of images in [0, 1] (B,3,H,W), valid positions only."""
    mu_x = F.conv2d(x, window, groups=3)
    mu_y = F.conv2d(y, window, groups=3)
    sxx = F.conv2d(x * x, window, groups=3) - mu_x ** 2
    syy = F.conv2d(y * y, window, groups=3) - mu_y ** 2
    sxy = F.conv2d(x * y, window, groups=3) - mu_x * mu_y
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    return ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (sxx + syy + c2))


def image_loss(pred: torch.Tensor, target: torch.Tensor, window: torch.Tensor, s: TrainSettings) -> torch.Tensor:
    """Called outside autocast: in bf16, SSIM's E[x^2] - E[x]^2 cancels to noise (training with
    the loss under autocast diverged on the H100: loss 0.07 -> 9 in 100 steps)."""
    pred, target = pred.float(), target.float()
    loss = (pred - target).abs().mean()
    if s.ssim_weight:
        loss = loss + s.ssim_weight * (1.0 - ssim_map(pred, target, window).mean())
    if s.grad_weight:
        p, t = pred, target
        for _ in range(2):
            for dim in (2, 3):
                loss = loss + s.grad_weight * (p.diff(dim=dim) - t.diff(dim=dim)).abs().mean()
            p, t = F.avg_pool2d(p, 2), F.avg_pool2d(t, 2)
    return loss


def batch(data: TrainingData, step: int, s: TrainSettings, crop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The step's crops: (input (B,5,c,c) float32, target (B,3,c,c) float32); a function of
    (seed, step) only."""
    g = torch.Generator().manual_seed(s.seed * 1_000_003 + step)
    H, W = data.rgb.shape[-2:]
    idx = torch.randint(len(data), (s.batch,), generator=g).tolist()
    ys = torch.randint(H - crop + 1, (s.batch,), generator=g).tolist()
    xs = torch.randint(W - crop + 1, (s.batch,), generator=g).tolist()
    flips = (torch.rand(s.batch, generator=g) < 0.5).tolist()
    inputs, targets = [], []
    for m, y, x, flip in zip(idx, ys, xs, flips):
        sl = (slice(None), slice(y, y + crop), slice(x, x + crop))
        rgb = data.rgb[m][sl].float() / 255.0
        cov = data.coverage[m][sl].float()
        feat = depth_feature(data.depth[m][sl].float(), data.depth_scale)
        inp = torch.cat([rgb, cov, feat], 0)
        tgt = data.target[int(data.frame_of[m])][sl].float() / 255.0
        if flip:
            inp, tgt = inp.flip(-1), tgt.flip(-1)
        inputs.append(inp)
        targets.append(tgt)
    return torch.stack(inputs), torch.stack(targets)


def _lr(step: int, s: TrainSettings) -> float:
    warm = max(1, s.steps // 20)
    if step < warm:
        return s.lr * (step + 1) / warm
    a = (step - warm) / max(1, s.steps - warm)
    return 1e-2 * s.lr + 0.5 * (s.lr - 1e-2 * s.lr) * (1 + math.cos(math.pi * min(a, 1.0)))


def train(world, output: str | Path, *, world_path: str | Path | None = None, frames_dir=None,
          device: str | torch.device = "auto", settings: TrainSettings | None = None, resume: bool = False,
          max_seconds: float | None = None, render_settings=None, stop_after: int | None = None,
          data: TrainingData | None = None) -> dict:
    """Train and write the weights to ``output``; returns the training summary.

    ``stop_after`` (tests): stop after that many steps as if interrupted (checkpoint written, no
    weights). ``max_seconds``: stop training early when over the time budget (no longer
    deterministic). ``data``: leave-out renders already prepared (benchmarks)."""
    from ..render import resolve_device

    s = settings or TrainSettings()
    dev = resolve_device(device)
    cuda = dev.type == "cuda"
    amp = cuda and s.amp
    output = Path(output)
    ckpt = checkpoint_path(output)
    started = time.perf_counter()
    if data is None:
        data = prepare(world, frame_loader(world, frames_dir), dev, s.leave_out, render_settings)
    prep_s = time.perf_counter() - started
    H, W = data.rgb.shape[-2:]
    config = GeneratorConfig(widths=list(s.widths), depth_scale=data.depth_scale)
    crop = min(s.crop, H, W) // config.multiple * config.multiple
    if crop < config.multiple:
        raise InputError(f"the world's images ({W}x{H}) are too small for the refiner",
                         f"give images of at least {config.multiple}x{config.multiple}")
    torch.manual_seed(s.seed)
    net = RefinerNet(config).to(dev)
    if cuda:
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.AdamW(net.parameters(), lr=s.lr, weight_decay=1e-4, betas=(0.9, 0.99))
    window = _gauss().to(dev)
    start_step, loss_ema, seconds_before = 0, None, 0.0
    if resume and ckpt.exists():
        state = torch.load(ckpt, map_location=dev, weights_only=True)
        if state.get("settings") != s.resume_key() or abs(state.get("depth_scale", -1) - data.depth_scale) > 1e-6:
            raise InputError(f"checkpoint {ckpt} was written with other training settings",
                             "use the same settings as the interrupted run, or delete the checkpoint to start over")
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["opt"])
        start_step, loss_ema, seconds_before = int(state["step"]), state["loss_ema"], float(state["seconds"])
    elif resume:
        print(f"no checkpoint {ckpt}: training from the start")

    # A fixed validation batch (full crops of the same kind) to report the loss before and after.
    val_in, val_tgt = batch(data, -1, TrainSettings(**{**asdict(s), "batch": min(8, len(data))}), crop)
    val_in, val_tgt = val_in.to(dev), val_tgt.to(dev)

    def val_loss() -> float:
        net.eval()
        with torch.no_grad():
            with torch.autocast(dev.type, torch.bfloat16, enabled=amp):
                pred = net(val_in)
            v = float(image_loss(pred, val_tgt, window, s))
        net.train()
        return v

    initial = val_loss() if start_step == 0 else None

    def save_checkpoint(step: int, seconds: float) -> None:
        with atomic_path(ckpt) as tmp:
            torch.save({"model": net.state_dict(), "opt": opt.state_dict(), "step": step, "loss_ema": loss_ema,
                        "settings": s.resume_key(), "depth_scale": data.depth_scale, "seconds": seconds,
                        "initial_loss": initial}, tmp)

    if start_step and "initial_loss" in state:
        initial = state["initial_loss"]
    net.train()
    train_started = time.perf_counter()
    end = s.steps if stop_after is None else min(s.steps, stop_after)
    bar = progress(range(start_step, end), desc="training refiner", unit="step", total=end - start_step)
    step = start_step
    stopped_early = False
    curve: list = []
    skipped = 0
    for step in bar:
        for group in opt.param_groups:
            group["lr"] = _lr(step, s)
        x, y = batch(data, step, s, crop)
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(dev.type, torch.bfloat16, enabled=amp):
            pred = net(x, clamp=False)
        loss = image_loss(pred, y, window, s)      # float32: SSIM's variances cancel badly in bf16
        if not torch.isfinite(loss):
            skipped += 1
            continue
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        if step % 10 == 0 or step == end - 1:
            value = float(loss.detach())
            loss_ema = value if loss_ema is None else 0.9 * loss_ema + 0.1 * value
            bar.set_postfix(loss=f"{loss_ema:.4f}")
            if step % 100 == 0:
                curve.append([step, round(loss_ema, 5)])
        done = step + 1
        elapsed = seconds_before + time.perf_counter() - train_started
        if s.checkpoint_every and done % s.checkpoint_every == 0 and done < s.steps:
            save_checkpoint(done, elapsed)
        if max_seconds is not None and time.perf_counter() - started > max_seconds and done < end:
            stopped_early = True
            step = done - 1
            break
    bar.close()
    done = step + 1 if end > start_step else start_step
    train_s = seconds_before + time.perf_counter() - train_started
    if stop_after is not None and done < s.steps:
        save_checkpoint(done, train_s)
        return {"steps": done, "stopped": True, "checkpoint": str(ckpt)}
    final = val_loss()
    summary = {
        "steps": done, "planned_steps": s.steps, "stopped_early": stopped_early,
        "settings": asdict(s), "device": str(dev),
        "prepare_seconds": round(prep_s, 2), "train_seconds": round(train_s, 2),
        "initial_loss": initial, "final_loss": final, "loss_ema": loss_ema, "loss_curve": curve, "skipped_steps": skipped,
        "trained_frames": data.frame_index, "heldout_frames": [int(i) for i in world.heldout_index],
        "renders": len(data), "image_size": [int(W), int(H)], "crop": crop,
        "world": None if world_path is None else Path(world_path).name,
        "world_points": int(world.num_static + world.num_dynamic),
    }
    save_weights(output, net.float(), summary)
    if ckpt.exists():
        ckpt.unlink()
    return summary
