"""Weights files and the inference API the renderer's callers use.

A weights file is ``WORLD.generator.safetensors`` beside the world (``generator_path``): the
network's tensors plus, in the safetensors metadata under ``inspatio_generator``, a JSON object
with ``format``, ``version``, ``config`` (GeneratorConfig) and ``training`` (what it was trained
on, how long, the final loss). Loading rebuilds the network from the config and checks every
tensor's name and shape against it; any mismatch is one InputError naming the file and the fix.

    refiner = Refiner.load("street.generator.safetensors", device="cuda")
    out = renderer.render(cams, t)
    rgb = refiner(out.rgb, out.depth, out.coverage)          # (B,H,W,3) uint8, same device
"""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError
from ..fileio import atomic_path
from .model import GeneratorConfig, RefinerNet, make_input, pad_to_multiple

FORMAT_NAME = "inspatio_generator"
FORMAT_VERSION = 1
GENERATORS = ("none", "refiner")


def beside(path: str | os.PathLike, suffix: str) -> Path:
    """``dir/name.safetensors`` -> ``dir/name<suffix>`` (a file kept next to ``path``)."""
    p = Path(path)
    stem = p.name[: -len(".safetensors")] if p.name.endswith(".safetensors") else p.name
    return p.with_name(stem + suffix)


def generator_path(world_path: str | os.PathLike) -> Path:
    """``dir/name.safetensors`` -> ``dir/name.generator.safetensors``."""
    return beside(world_path, ".generator.safetensors")


def save_weights(path: str | os.PathLike, net: RefinerNet, training: dict[str, Any] | None = None) -> Path:
    """Write the network atomically (float32 tensors + config JSON)."""
    from safetensors.torch import save_file

    meta = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "config": net.config.as_dict(),
            "training": training or {}}
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in net.state_dict().items()}
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata={FORMAT_NAME: json.dumps(meta)})
    return path


def _read_meta(path: Path) -> dict:
    fix = "train one with 'inspatio-ros train-generator WORLD', or pass --generator none"
    if not path.is_file():
        raise InputError(f"generator weights {path} do not exist", fix)
    try:
        with open(path, "rb") as f:
            (n,) = struct.unpack("<Q", f.read(8))
            if n > 16 * 1024 * 1024:
                raise ValueError("header length is absurd")
            header = json.loads(f.read(n))
        meta = json.loads(header["__metadata__"][FORMAT_NAME])
    except (OSError, ValueError, KeyError, TypeError, struct.error, UnicodeDecodeError) as exc:
        raise InputError(f"{path} is not a generator weights file ({exc.__class__.__name__}: {exc})", fix) from None
    if meta.get("format") != FORMAT_NAME:
        raise InputError(f"{path} has format '{meta.get('format')}', not {FORMAT_NAME}", fix)
    version = meta.get("version")
    if version != FORMAT_VERSION:
        raise InputError(f"generator weights {path} have version {version}, this inspatio_ros reads "
                         f"version {FORMAT_VERSION}",
                         "retrain with 'inspatio-ros train-generator WORLD'"
                         if isinstance(version, int) and version < FORMAT_VERSION else "upgrade inspatio_ros")
    return meta


def load_network(path: str | os.PathLike) -> tuple[RefinerNet, dict]:
    """The network (CPU, float32, eval mode) and the file's metadata; InputError if unusable."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    meta = _read_meta(path)
    retrain = "retrain it with 'inspatio-ros train-generator WORLD'"
    try:
        config = GeneratorConfig.from_dict(meta["config"])
        net = RefinerNet(config)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise InputError(f"generator weights {path} have an unusable config ({exc})", retrain) from None
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputError(f"generator weights {path} are damaged ({exc})", retrain) from None
    expected = net.state_dict()
    missing = sorted(set(expected) - set(tensors))
    extra = sorted(set(tensors) - set(expected))
    if missing or extra:
        raise InputError(f"generator weights {path} do not match their config (missing {missing[:3]}, "
                         f"unexpected {extra[:3]})", retrain)
    for k, v in expected.items():
        if tuple(tensors[k].shape) != tuple(v.shape):
            raise InputError(f"generator weights {path}: '{k}' has shape {tuple(tensors[k].shape)}, the config "
                             f"needs {tuple(v.shape)}", retrain)
        if not torch.isfinite(tensors[k]).all():
            raise InputError(f"generator weights {path}: '{k}' holds NaN or infinity", retrain)
    net.load_state_dict({k: v.float() for k, v in tensors.items()})
    net.eval()
    return net, meta


class _CapturedRefine:
    """One input shape's refine captured in a CUDA graph (static input and output buffers)."""

    def __init__(self, refiner: "Refiner", rgb, depth, coverage):
        self.rgb, self.depth, self.coverage = rgb.clone(), depth.clone(), coverage.clone()
        stream = torch.cuda.Stream(rgb.device)
        stream.wait_stream(torch.cuda.current_stream(rgb.device))
        with torch.cuda.stream(stream):
            for _ in range(2):
                refiner._eager(self.rgb, self.depth, self.coverage)
        torch.cuda.current_stream(rgb.device).wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.out = refiner._eager(self.rgb, self.depth, self.coverage)

    def replay(self, rgb, depth, coverage) -> torch.Tensor:
        self.rgb.copy_(rgb)
        self.depth.copy_(depth)
        self.coverage.copy_(coverage)
        self.graph.replay()
        return self.out.clone()


class Refiner:
    """A trained refiner on one device. Call it on a render batch; it returns the refined rgb.

    CUDA: bf16 and channels_last, each input shape captured once in a CUDA graph (``graphs``;
    INSPATIO_NO_GRAPHS=1 turns it off). CPU: float32, eager.
    """

    def __init__(self, net: RefinerNet, device: str | torch.device = "auto", *, dtype: torch.dtype | None = None,
                 graphs: bool | None = None, meta: dict | None = None):
        from ..render import resolve_device

        self.device = resolve_device(device)
        cuda = self.device.type == "cuda"
        self.dtype = dtype or (torch.bfloat16 if cuda else torch.float32)
        self.net = net.to(self.device, self.dtype).eval()
        if cuda:
            self.net = self.net.to(memory_format=torch.channels_last)
        self.config = net.config
        self.meta = meta or {}
        if graphs is None:
            graphs = cuda and os.environ.get("INSPATIO_NO_GRAPHS") != "1"
        self.graphs = bool(graphs) and cuda
        self._captured: dict = {}

    @classmethod
    def load(cls, path: str | os.PathLike, device: str | torch.device = "auto", **kwargs) -> "Refiner":
        net, meta = load_network(path)
        return cls(net, device, meta=meta, **kwargs)

    @torch.no_grad()
    def _eager(self, rgb_u8: torch.Tensor, depth: torch.Tensor, coverage: torch.Tensor) -> torch.Tensor:
        x = make_input(rgb_u8, depth, coverage, self.config.depth_scale, self.dtype)
        x, h, w = pad_to_multiple(x, self.config.multiple)
        if self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        # The network runs in bf16 on CUDA; the render's rgb is added back in float32 (bf16 holds
        # only 8 bits of mantissa: adding there would round bright pixels by up to 1/255).
        y = rgb_u8.permute(0, 3, 1, 2).float() / 255.0 + self.net.residual(x)[:, :, :h, :w].float()
        return (y * 255.0 + 0.5).clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()

    @torch.no_grad()
    def __call__(self, rgb_u8: torch.Tensor, depth: torch.Tensor, coverage: torch.Tensor) -> torch.Tensor:
        """rgb (B,H,W,3) uint8 (or float in [0, 1]), depth (B,H,W) metres (NaN unknown), coverage
        (B,H,W) bool -> refined rgb (B,H,W,3) uint8 on the refiner's device. One image without the
        batch axis gives one image back."""
        rgb_u8 = torch.as_tensor(rgb_u8).to(self.device)
        depth = torch.as_tensor(depth).to(self.device, torch.float32)
        coverage = torch.as_tensor(coverage).to(self.device, torch.bool)
        if rgb_u8.dim() == 3:
            return self(rgb_u8[None], depth[None], coverage[None])[0]
        if rgb_u8.dtype != torch.uint8:
            rgb_u8 = (rgb_u8.float() * 255.0).round().clamp(0, 255).to(torch.uint8)
        if not self.graphs:
            return self._eager(rgb_u8, depth, coverage)
        key = tuple(rgb_u8.shape)
        entry = self._captured.get(key)
        if entry is None:
            entry = self._captured[key] = _CapturedRefine(self, rgb_u8, depth, coverage)
        return entry.replay(rgb_u8, depth, coverage)

    def refine_output(self, out):
        """A RenderOutput with its rgb refined (depth and coverage unchanged)."""
        from dataclasses import replace

        return replace(out, rgb=self(out.rgb, out.depth, out.coverage).to(out.rgb.device))


def load_generator(choice: str, weights: str | os.PathLike | None, world_path: str | os.PathLike | None,
                   device: str | torch.device = "auto") -> Refiner | None:
    """``--generator none|refiner`` (+ ``--generator-weights``) -> a Refiner or None."""
    if choice not in GENERATORS:
        raise InputError(f"generator '{choice}' is unknown", f"give one of {', '.join(GENERATORS)}")
    if choice == "none":
        return None
    if not weights:
        if world_path is None:
            raise InputError("generator 'refiner' needs weights and no world file names them",
                             "pass the weights file (generator.weights / --generator-weights)")
        weights = generator_path(world_path)
    return Refiner.load(weights, device)
