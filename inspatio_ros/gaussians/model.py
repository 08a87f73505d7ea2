"""The Gaussian layer in memory: parameters as torch tensors, made from a world's fused surfels,
read from and written to a World (format version 2 or 3), and drawn as surfels for the CPU renderer
(split at load: surfel_samples, world_surfels).

Colour is the spherical-harmonic DC term plus degree 1 (4 coefficients per channel), and
per-frame exposure lives in the optimizer (an affine colour transform per source frame, not
stored per Gaussian). Why: a camera on a vehicle sees each surface from a narrow cone of
directions along its path, so higher SH degrees (16 coefficients at degree 3) mostly memorise
the recorded directions and cost 4x the colour storage, while degree 1 keeps the first-order
change of brightness with direction (sheen on cars and wet road) for 9 more half floats. Frame
to frame changes of the camera's exposure and white balance affect every Gaussian of a frame
alike; a per-Gaussian appearance code would let each Gaussian absorb them differently (and a new
view has no code to use), so one affine transform per frame takes them and novel views render at
the reference exposure.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from .rasterize import SH_C0, quaternion_to_rotation

log = logging.getLogger(__name__)

SH_COEFFS = 4                      # DC + degree 1
FLAT_RATIO = 0.1                   # initial thickness along the normal / width of a surfel's Gaussian
INITIAL_OPACITY = 0.8


@dataclass
class GaussianParams:
    """One layer's parameters (raw, before activation): the optimizer's tensors.

    ``t_start``/``t_end`` (float64) give each Gaussian's time span; None for a static layer."""

    means: torch.Tensor           # (N,3) metres
    log_scales: torch.Tensor      # (N,3)
    quats: torch.Tensor           # (N,4) w x y z
    opacity_logits: torch.Tensor  # (N,)
    sh: torch.Tensor              # (N,4,3)
    t_start: torch.Tensor | None = None
    t_end: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.means.shape[0])

    @property
    def scales(self) -> torch.Tensor:
        return torch.exp(self.log_scales)

    @property
    def opacities(self) -> torch.Tensor:
        return torch.sigmoid(self.opacity_logits)

    def alive(self, t: float | None) -> torch.Tensor | None:
        """Boolean mask of the Gaussians that exist at time ``t`` (None: every one)."""
        if t is None or self.t_start is None:
            return None
        return (self.t_start <= t) & (t <= self.t_end)

    def to(self, device=None, dtype=None) -> "GaussianParams":
        f = (lambda x: None if x is None else x.to(device=device, dtype=dtype if x.dtype != torch.float64 else None))
        return GaussianParams(*(f(getattr(self, k)) for k in
                                ("means", "log_scales", "quats", "opacity_logits", "sh")),
                              *(None if x is None else x.to(device) for x in (self.t_start, self.t_end)))


def _rotation_to_normal(normals: np.ndarray) -> np.ndarray:
    """Unit quaternions (w x y z) turning the local z axis onto each unit normal (N,3)."""
    z = np.array([0.0, 0.0, 1.0])
    n = normals / np.linalg.norm(normals, axis=1, keepdims=True).clip(1e-12)
    axis = np.cross(np.broadcast_to(z, n.shape), n)
    w = 1.0 + n @ z
    q = np.concatenate([w[:, None], axis], 1)
    # A normal pointing straight down -z: turn half a circle about x.
    opposite = w < 1e-6
    q[opposite] = [0.0, 1.0, 0.0, 0.0]
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def from_surfels(xyz: np.ndarray, rgb: np.ndarray, radius: np.ndarray, normal: np.ndarray,
                 t_start: np.ndarray | None = None, t_end: np.ndarray | None = None) -> GaussianParams:
    """Flat Gaussians from fused surfels: centred on the surfel, as wide as its radius (σ = radius),
    FLAT_RATIO as thick along its normal,
    and round (σ = radius on every axis) where the normal is unknown; colour the surfel's as SH DC;
    opacity INITIAL_OPACITY (fused surfels are opaque surfaces)."""
    n = len(xyz)
    raw = np.asarray(normal)
    normal = raw.astype(np.float32) / (127.0 if raw.dtype == np.int8 else 1.0)   # int8 x 127 in worlds
    known = np.linalg.norm(normal, axis=1) > 0.5
    quats = np.tile(np.array([1.0, 0.0, 0.0, 0.0]), (n, 1))
    if known.any():
        quats[known] = _rotation_to_normal(normal[known].astype(np.float64))
    radius = np.clip(np.asarray(radius, dtype=np.float64), 1e-5, None)
    scales = np.repeat(radius[:, None], 3, 1)
    scales[known, 2] *= FLAT_RATIO
    sh = np.zeros((n, SH_COEFFS, 3), np.float32)
    sh[:, 0] = (np.asarray(rgb, dtype=np.float32) / 255.0 - 0.5) / SH_C0
    logit = float(np.log(INITIAL_OPACITY / (1 - INITIAL_OPACITY)))
    t = (lambda a: None if a is None else torch.as_tensor(np.asarray(a, dtype=np.float64)))
    return GaussianParams(torch.as_tensor(np.asarray(xyz, dtype=np.float32)),
                          torch.as_tensor(np.log(scales).astype(np.float32)),
                          torch.as_tensor(quats.astype(np.float32)),
                          torch.full((n,), logit, dtype=torch.float32), torch.as_tensor(sh), t(t_start), t(t_end))


def from_world(world, layer: str) -> GaussianParams:
    """A World's stored Gaussian layer ``layer`` ("static" or "dynamic") as float32 tensors."""
    g = f"gauss_{layer}"
    f32 = (lambda name: torch.as_tensor(np.asarray(getattr(world, f"{g}_{name}"), dtype=np.float32)))
    times = ((torch.as_tensor(world.gauss_dynamic_t_start), torch.as_tensor(world.gauss_dynamic_t_end))
             if layer == "dynamic" else (None, None))
    return GaussianParams(f32("xyz"), f32("log_scale"), f32("rotation"), f32("opacity"), f32("sh"), *times)


def world_arrays(params: GaussianParams, layer: str) -> dict[str, np.ndarray]:
    """World field values (``gauss_<layer>_*`` attribute names) of ``params``; the quaternions
    normalised first (the file stores unit quaternions in half precision)."""
    g = f"gauss_{layer}"
    q = params.quats.detach().float()
    q = q / q.norm(dim=1, keepdim=True).clamp_min(1e-12)
    out = {f"{g}_xyz": params.means.detach().float().cpu().numpy(),
           f"{g}_log_scale": params.log_scales.detach().cpu().numpy().astype(np.float16),
           f"{g}_rotation": q.cpu().numpy().astype(np.float16),
           f"{g}_opacity": params.opacity_logits.detach().cpu().numpy().astype(np.float16),
           f"{g}_sh": params.sh.detach().cpu().numpy().astype(np.float16)}
    if layer == "dynamic":
        n = len(params)
        out[f"{g}_t_start"] = (np.full(n, -np.inf) if params.t_start is None else params.t_start.cpu().numpy())
        out[f"{g}_t_end"] = (np.full(n, np.inf) if params.t_end is None else params.t_end.cpu().numpy())
    return out


# The surfel renderer draws every surfel opaque, so a Gaussian drawn as surfels covers where its
# own opacity o·exp(-x²/2) reaches SURFEL_MIN_OPACITY: out to drawn_extent(o) σ from its centre
# (1.55 σ for an opaque one, less for a fainter one), and not at all where o is below it (a blend's
# tail, a half-pruned floater would cover what is behind it). Until 2026-12-05 every Gaussian of
# o >= 0.3 was drawn to its half peak (1.18 σ whatever o): drawing faint ones smaller and opaque
# ones wider scored +0.75 dB and +0.10 dB on two CPU-optimized toy streets (held-out frames,
# docs/notes/2026-12-05-gaussian-size.md), for 17-20 % more surfels.
SURFEL_MIN_OPACITY = 0.3
MIN_EXTENT_SIGMAS = 0.3            # a Gaussian drawn narrower than this (o within 5 % of the cut) is a speck: left out


def drawn_extent(opacities: torch.Tensor) -> torch.Tensor:
    """σ units from a Gaussian's centre out to where its opacity falls to SURFEL_MIN_OPACITY (0 at
    or under it)."""
    return torch.sqrt(2 * torch.log((opacities / SURFEL_MIN_OPACITY).clamp_min(1.0)))


# The colour field a world stores (fit_surfel_colours) belongs to the split that made the surfels it
# was fitted to; a world records this number (info.optimized.surfel_split) and the loader uses the
# field only with the same split. Change it whenever surfel_samples places surfels differently.
SURFEL_SPLIT_VERSION = 1
MAX_SAMPLES_PER_AXIS = 4          # at most (2*4-1)² samples on a Gaussian's plane (49; ~37 in the ellipse)


def surfel_samples(params: GaussianParams, footprint: torch.Tensor) -> dict[str, torch.Tensor]:
    """The Gaussians as surfels for the CPU renderer, a large one split into several: a grid over
    the ellipse where its opacity is at least SURFEL_MIN_OPACITY (drawn_extent σ along each axis),
    in the plane of its two larger axes, spaced by ``footprint`` (N,) metres (about a source pixel
    at the Gaussian's distance, so that the surfels need no hole filling between them), at most
    MAX_SAMPLES_PER_AXIS per half axis (coarser beyond). Each surfel's radius is 0.75 x the grid
    spacing, so neighbouring discs overlap. A Gaussian smaller than a footprint stays one surfel
    as wide as that ellipse. Gaussians whose ellipse is under MIN_EXTENT_SIGMAS are left out.

    Returns xyz (S,3), radius (S,), normal (S,3) (0 where the Gaussian is not flat: the surfel faces
    the camera), owner (S,) index of the Gaussian, uv (S,2) the surfel's place on its Gaussian's
    plane in units of that ellipse (-1..1 along the largest axis, then the middle one; 0, 0 the
    centre).

    Deterministic: the same parameters (e.g. as stored, half precision) give the same surfels, so
    a world need not store them (``world_surfels`` makes them at load)."""
    with torch.no_grad():
        extent = drawn_extent(params.opacities)
        keep = torch.nonzero(extent >= MIN_EXTENT_SIGMAS)[:, 0]
        extent = extent[keep]
        scales = params.scales[keep]
        sorted_scales, axis_order = torch.sort(scales, dim=1)
        rot = quaternion_to_rotation(params.quats[keep])
        axes = torch.gather(rot, 2, axis_order[:, None, :].expand(-1, 3, 3))   # columns: smallest..largest axis
        flat = sorted_scales[:, 0] < 0.5 * sorted_scales[:, 1]
        normal = torch.where(flat[:, None], axes[..., 0], torch.zeros_like(axes[..., 0]))
        half_u = extent * sorted_scales[:, 2]                                    # along the largest axis
        half_v = extent * sorted_scales[:, 1]
        fp = footprint[keep].clamp_min(1e-6)
        n_u = torch.ceil(half_u / fp).clamp(1, MAX_SAMPLES_PER_AXIS).long()
        n_v = torch.ceil(half_v / fp).clamp(1, MAX_SAMPLES_PER_AXIS).long()
        xyz, radius, nrm, owner = [params.means[keep]], [half_u.clone()], [normal], [keep]
        uv = [params.means.new_zeros((len(keep), 2))]
        single = (n_u == 1) & (n_v == 1)
        radius[0] = torch.where(single, torch.sqrt(half_u * half_v), 0.75 * torch.maximum(half_u / n_u, half_v / n_v))
        # Grid cells i in -(n-1)..(n-1) at spacing half/n on each axis, kept inside the ellipse;
        # the centre sample (i = j = 0) is the row above.
        big = torch.nonzero(~single)[:, 0]
        for nu in range(1, MAX_SAMPLES_PER_AXIS + 1):
            for nv in range(1, MAX_SAMPLES_PER_AXIS + 1):
                rows = big[(n_u[big] == nu) & (n_v[big] == nv)]
                if len(rows) == 0:
                    continue
                iu, iv = torch.meshgrid(torch.arange(-nu + 1, nu, device=rows.device),
                                        torch.arange(-nv + 1, nv, device=rows.device), indexing="ij")
                iu, iv = iu.reshape(-1), iv.reshape(-1)
                inside = ((iu / nu) ** 2 + (iv / nv) ** 2 <= 1.0) & ~((iu == 0) & (iv == 0))
                iu, iv = iu[inside].to(params.means.dtype), iv[inside].to(params.means.dtype)
                if len(iu) == 0:
                    continue
                su, sv = half_u[rows] / nu, half_v[rows] / nv                   # spacing
                offset = (iu[None, :, None] * su[:, None, None] * axes[rows, None, :, 2]
                          + iv[None, :, None] * sv[:, None, None] * axes[rows, None, :, 1])
                xyz.append((params.means[keep[rows]][:, None] + offset).reshape(-1, 3))
                radius.append((0.75 * torch.maximum(su, sv))[:, None].expand(-1, len(iu)).reshape(-1))
                nrm.append(normal[rows][:, None].expand(-1, len(iu), 3).reshape(-1, 3))
                owner.append(keep[rows][:, None].expand(-1, len(iu)).reshape(-1))
                uv.append(torch.stack([(iu / nu)[None].expand(len(rows), -1), (iv / nv)[None].expand(len(rows), -1)],
                                      -1).reshape(-1, 2))
        return {"xyz": torch.cat(xyz), "radius": torch.cat(radius), "normal": torch.cat(nrm), "owner": torch.cat(owner),
                "uv": torch.cat(uv)}


# Surfels of a split Gaussian are spaced this many source pixels apart (at the nearest source
# camera): closer gives more surfels to draw (and to make at load) for detail the hole filling
# mostly restores.
SURFEL_SPACING_PX = 2.0


def source_footprint(means: torch.Tensor, world, pixels: float = SURFEL_SPACING_PX) -> torch.Tensor:
    """(N,) metres ``pixels`` source pixels span at each point: its distance to the nearest source
    camera centre over the focal length, times ``pixels``."""
    centres = torch.as_tensor(world.frame_c2w[:, :3, 3], dtype=means.dtype, device=means.device)
    nearest = torch.cat([torch.cdist(chunk, centres).min(1).values for chunk in means.split(1 << 16)]) \
        if len(means) else means.new_zeros(0)
    return pixels * nearest / float(max(world.intrinsics.fx, world.intrinsics.fy))


def fit_surfel_colours(samples: dict[str, torch.Tensor], baked: torch.Tensor, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The per-Gaussian colour field the CPU drawing is stored as: for each of the ``n`` Gaussians a
    colour at its centre and its change across the plane, fitted (least squares) to the colours
    ``baked`` (S,3, 0-255) of its surfels ``samples`` (surfel_samples). Returns rgb u8 (n,3) and
    gradient i8 (n,2,3): grey levels from the centre to the drawn edge (surfel_samples' ellipse)
    along the largest axis, then the middle one. A Gaussian with no surfel (too faint to draw) gets zeros.

    Why a linear field and not every surfel's colour: 9 bytes a Gaussian instead of 3 a surfel
    (13 surfels a Gaussian on the H200 street); on a CPU-optimized toy street (half-peak split) the
    drawing from it was 0.04 dB under the one from every surfel's own colour, one colour a
    Gaussian 0.2 dB under."""
    owner, uv, baked = samples["owner"].cpu(), samples["uv"].cpu(), baked.detach().cpu()
    normal_matrix = torch.zeros(n, 3, 3, dtype=torch.float64)
    rhs = torch.zeros(n, 3, 3, dtype=torch.float64)
    for rows in torch.arange(len(owner)).split(1 << 20):          # bounded memory for 10+ M surfels
        basis = torch.cat([torch.ones(len(rows), 1, dtype=torch.float64), uv[rows].double()], 1)   # (s,3)
        normal_matrix.index_add_(0, owner[rows], basis[:, :, None] * basis[:, None, :])
        rhs.index_add_(0, owner[rows], basis[:, :, None] * baked[rows].double()[:, None, :])
    # A small ridge: a Gaussian split along one axis only (or not at all) has no slope on the other.
    normal_matrix += 1e-3 * torch.eye(3, dtype=torch.float64)
    coef = torch.linalg.solve(normal_matrix, rhs)                                      # (n, basis, rgb)
    rgb = coef[:, 0].round().clamp(0, 255).to(torch.uint8).numpy()
    gradient = coef[:, 1:].round().clamp(-127, 127).to(torch.int8).numpy()
    return rgb, gradient


def surfel_colours(samples: dict[str, torch.Tensor], rgb: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
    """(S,3) uint8: each surfel's colour from its Gaussian's stored field (fit_surfel_colours)."""
    owner, uv = samples["owner"], samples["uv"]
    colour = rgb[owner].float() + (uv[:, :, None].float() * gradient[owner].float()).sum(1)
    return colour.round().clamp(0, 255).to(torch.uint8)


def world_surfels(world, layers: str = "all") -> tuple[np.ndarray, ...]:
    """An optimized World's Gaussian layers (``layers``: "all", "static" or "dynamic") drawn as
    surfels for render.PointCloud.from_arrays: (xyz, rgb, radius, normal, t_start, t_end).

    Made at load, not stored: the split of large Gaussians (surfel_samples, spaced by
    source_footprint of the world's source cameras) and each surfel's colour from the Gaussian's
    stored colour field (``gauss_*.surfel_rgb`` / ``surfel_rgb_gradient``, written by
    ``optimize`` with ``info.optimized.surfel_split``); a world without that field (another
    writer), or whose field was fitted to another split (a warning), colours them by the DC term."""
    parts = []
    split = (world.info.get("optimized") or {}).get("surfel_split")
    field_usable = split == SURFEL_SPLIT_VERSION
    if not field_usable and len(world.gauss_static_surfel_rgb) + len(world.gauss_dynamic_surfel_rgb):
        log.warning("the world's surfel colour field was fitted to surfel split %r, this version splits as %d: "
                    "drawing the Gaussians' own colours on the CPU (run 'inspatio-ros optimize' again, or "
                    "tools/gaussian_size.py compact, to refit it)", split, SURFEL_SPLIT_VERSION)
    for layer in ("static", "dynamic"):
        if layers not in ("all", layer):
            continue
        params = from_world(world, layer)
        samples = surfel_samples(params, source_footprint(params.means, world))
        stored_rgb = getattr(world, f"gauss_{layer}_surfel_rgb")
        if field_usable and len(stored_rgb) == len(params) and len(params):
            rgb = surfel_colours(samples, torch.as_tensor(stored_rgb),
                                 torch.as_tensor(getattr(world, f"gauss_{layer}_surfel_rgb_gradient")))
        else:
            rgb = ((SH_C0 * params.sh[samples["owner"], 0] + 0.5).clamp(0, 1) * 255).round().to(torch.uint8)
        owner = samples["owner"].numpy()
        n = len(owner)
        ts = np.full(n, -np.inf) if params.t_start is None else params.t_start.numpy()[owner]
        te = np.full(n, np.inf) if params.t_end is None else params.t_end.numpy()[owner]
        parts.append((samples["xyz"].numpy(), rgb.numpy(), samples["radius"].numpy(),
                      np.round(samples["normal"].numpy() * 127).astype(np.int8), ts, te))
    return tuple(np.concatenate(f) for f in zip(*parts))
