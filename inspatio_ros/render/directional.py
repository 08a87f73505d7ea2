"""Render the world along arbitrary ray directions: range, colour and coverage per direction.

A LiDAR beam pattern or a fisheye lens asks for the world along directions no single pinhole
image holds. ``DirectionalViews`` covers a fixed set of directions (in a sensor's own frame) with
pinhole views on the faces of a cube around the sensor, rendered in ONE ``Renderer.render`` call
(one batch, one image size), and then looks each direction up in its face:

- Each direction belongs to the cube face of its largest component (|x|, |y| or |z|), so its
  angle to that face's axis is at most ~54.7 deg and it lands inside the face's square.
- A face is rendered only where its directions are: its image is the bounding box of their
  tangent-plane coordinates plus a margin, via that view's own principal point; all views share
  the largest box's size (one batch). A 16-beam LiDAR (+-15 deg) thus renders four flat bands,
  not six squares.
- Pixels whose pitch at the face centre is ``pitch_rad`` across and ``row_pitch_rad`` (default the
  same: square pixels) down the image (the angle between neighbouring pixels only shrinks away
  from the centre, so the pitch holds everywhere). A LiDAR whose beams are 2 deg apart needs no
  0.2 deg rows: on the side faces rows are elevation, and coarser rows cut the pixels rendered.
- Lookup: ``"bilinear"`` interpolates inverse depth between the four pixel centres around the
  direction -- exact on a plane, since 1/z is affine in the image of a plane, at any grazing
  angle -- where the four are covered and the neighbourhood is planar (second differences of
  1/z within ``edge_tolerance``); elsewhere (silhouettes, creases, holes) the nearest pixel is
  used, so ranges never blend a foreground and a background surface.
  ``"nearest"`` always takes the nearest pixel.
- Range along the ray = z-depth of the face / cos(angle between the ray and the face axis).

Everything per direction is a gather on the renderer's device (CPU or CUDA, no Python loop over
directions); the plan (faces, pixel coordinates) is made once per direction set.

    views = DirectionalViews(directions, pitch_rad=math.radians(0.2), device=renderer.device)
    out = views.render(renderer, world_from_sensor, t)     # renderer.render(views.cameras(...), t)
    samples = views.sample(out)           # .range (B, N) metres, NaN = no surface; .rgb; .coverage
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch

from .types import Cameras, RenderOutput, resolve_device

# The six cube faces as rotations sensor_from_view (columns: the view's optical x, y, z axes in
# the sensor frame). Optical z is the face axis; optical y is the sensor's -z for the four side
# faces (upright images for a z-up sensor frame) and +-x for the top and bottom faces.
_FACE_AXES = {
    "+x": ((0, -1, 0), (0, 0, -1), (1, 0, 0)),
    "-x": ((0, 1, 0), (0, 0, -1), (-1, 0, 0)),
    "+y": ((1, 0, 0), (0, 0, -1), (0, 1, 0)),
    "-y": ((-1, 0, 0), (0, 0, -1), (0, -1, 0)),
    "+z": ((0, -1, 0), (1, 0, 0), (0, 0, 1)),
    "-z": ((0, -1, 0), (-1, 0, 0), (0, 0, -1)),
}
FACES = tuple(_FACE_AXES)
INTERPOLATIONS = ("bilinear", "nearest")
MARGIN_PX = 2               # pixels around each face's box: the bilinear planarity test reads 2 beyond
MAX_VIEW_SIDE = 8192         # the rig's per-image limit (sim/rig.py MAX_SIDE)


def face_rotation(face: str) -> np.ndarray:
    """3x3 sensor_from_view rotation of cube face ``face`` (one of :data:`FACES`)."""
    x, y, z = _FACE_AXES[face]
    return np.array([x, y, z], dtype=np.float64).T


@dataclass
class DirectionalSamples:
    """The world along each direction, for each of B sensor poses."""

    range: torch.Tensor       # (B, N) float32 metres along the ray from the sensor; NaN: nothing there
    depth: torch.Tensor       # (B, N) float32 z-depth in the direction's face (range * cos)
    rgb: torch.Tensor         # (B, N, 3) uint8
    coverage: torch.Tensor    # (B, N) bool: the world was seen there (False: hole-filled or empty)
    # (B, N) float32 |cos| of the angle between the ray and the surface normal, from the plane
    # through the rendered depth around the direction; NaN where that is not one plane (edges).
    cos_incidence: torch.Tensor


class DirectionalViews:
    """Cube-face pinhole views covering ``directions`` (N, 3) given in the sensor's frame (any
    length, not zero), with pixels of ``pitch_rad`` x ``row_pitch_rad`` (default square) at each
    face's centre.

    ``groups`` (N,) small non-negative ints, optional: directions of different groups get views of
    their own (one per group and face), so each group can be rendered from its own pose -- a
    spinning LiDAR's azimuth sectors from where the sensor is when it sweeps them. ``faces`` (N,)
    indices into :data:`FACES`, optional: the face of each direction instead of its largest
    component (a caller that splits directions on the faces' edges decides ties its own way);
    each must lie within 1 % of its face's square."""

    def __init__(self, directions, pitch_rad: float, device: str | torch.device = "cpu",
                 margin_px: int = MARGIN_PX, max_side: int = MAX_VIEW_SIDE, groups=None,
                 row_pitch_rad: float | None = None, faces=None):
        dirs = np.asarray(directions.cpu() if isinstance(directions, torch.Tensor) else directions, np.float64)
        if dirs.ndim != 2 or dirs.shape[1] != 3 or len(dirs) == 0:
            raise ValueError(f"directions must be (N, 3) with N > 0, got shape {dirs.shape}")
        norm = np.linalg.norm(dirs, axis=1)
        if not np.all(np.isfinite(norm)) or np.any(norm <= 0):
            raise ValueError("directions must be finite and non-zero")
        row_pitch_rad = pitch_rad if row_pitch_rad is None else row_pitch_rad
        for pitch in (pitch_rad, row_pitch_rad):
            if not (math.isfinite(pitch) and 0 < pitch < math.radians(45)):
                raise ValueError(f"pixel pitch {pitch} rad must be in (0, pi/4)")
        dirs = dirs / norm[:, None]
        self.device = resolve_device(device)
        self.count = len(dirs)
        self.focal = np.array([1.0 / math.tan(pitch_rad), 1.0 / math.tan(row_pitch_rad)])   # fx, fy
        group = np.zeros(len(dirs), np.int64) if groups is None else np.asarray(groups).astype(np.int64)
        if group.shape != (len(dirs),) or group.min() < 0:
            raise ValueError(f"groups must be (N,) non-negative integers, got shape {group.shape}")
        self.num_groups = int(group.max()) + 1
        if faces is None:
            axis = np.abs(dirs).argmax(1)
            sign = dirs[np.arange(len(dirs)), axis] > 0
            face_of = axis * 2 + ~sign                 # index into FACES: +x -x +y -y +z -z
        else:
            face_of = np.asarray(faces).astype(np.int64)
            if face_of.shape != (len(dirs),) or face_of.min() < 0 or face_of.max() >= len(FACES):
                raise ValueError(f"faces must be (N,) indices into {FACES}")
        key = group * len(FACES) + face_of
        used, view_of = np.unique(key, return_inverse=True)
        self.faces = tuple(FACES[k % len(FACES)] for k in used)
        self.view_group = used // len(FACES)                                    # (V,) group of each view
        rotations = np.stack([face_rotation(f) for f in self.faces])           # (V, 3, 3) sensor_from_view
        in_view = np.einsum("nji,nj->ni", rotations[view_of], dirs)            # R^T d: view-frame direction
        if np.any(in_view[:, 2] <= 0):
            raise ValueError("a direction lies behind the face given for it")
        tangent = in_view[:, :2] / in_view[:, 2:3]                              # (N, 2), |.| <= 1
        if np.abs(tangent).max() > 1.01:
            raise ValueError("a direction lies outside the face given for it")
        lo = np.stack([tangent[view_of == v].min(0) for v in range(len(used))])  # (V, 2)
        hi = np.stack([tangent[view_of == v].max(0) for v in range(len(used))])
        sizes = np.ceil((hi - lo) * self.focal).astype(int) + 1 + 2 * margin_px
        self.width, self.height = int(sizes[:, 0].max()), int(sizes[:, 1].max())
        if max(self.width, self.height) > max_side:
            raise ValueError(f"views of {self.width}x{self.height} pixels exceed {max_side}: give a coarser pitch")
        principal = margin_px - lo * self.focal                                 # (V, 2) cx, cy
        K = np.zeros((len(used), 3, 3))
        K[:, 0, 0], K[:, 1, 1] = self.focal
        K[:, :2, 2] = principal
        K[:, 2, 2] = 1.0
        self.K = K
        self.sensor_from_view = np.tile(np.eye(4), (len(used), 1, 1))
        self.sensor_from_view[:, :3, :3] = rotations
        pixel = tangent * self.focal + principal[view_of]
        self._view = torch.as_tensor(view_of, dtype=torch.int64, device=self.device)
        self._pixel = torch.as_tensor(pixel, dtype=torch.float32, device=self.device)
        # range = z-depth / cos(angle to the face axis) = z-depth * |(tx, ty, 1)|
        self._range_per_depth = torch.as_tensor(np.sqrt(1.0 + (tangent ** 2).sum(1)), dtype=torch.float32,
                                                device=self.device)
        self._K = torch.as_tensor(K, dtype=torch.float32, device=self.device)
        self._tangent = torch.as_tensor(tangent, dtype=torch.float32, device=self.device)
        self._host = None                    # the same on the host for the CPU lookup kernel

    @property
    def num_views(self) -> int:
        return len(self.faces)

    @property
    def pixels(self) -> int:
        """Pixels one sensor pose renders (views x width x height)."""
        return self.num_views * self.width * self.height

    def cameras(self, world_from_sensor) -> Cameras:
        """The views of B sensor poses ``world_from_sensor`` ((4, 4) or (B, 4, 4)) as one batch of
        B x num_views cameras (pose-major). With groups: one pose per group, (G, 4, 4) or
        (B, G, 4, 4)."""
        poses = np.asarray(world_from_sensor, np.float64)
        if self.num_groups > 1 or poses.ndim == 4:
            poses = poses.reshape(-1, self.num_groups, 4, 4)[:, self.view_group]        # (B, V, 4, 4)
        else:
            poses = np.broadcast_to(poses.reshape(-1, 1, 4, 4), (len(poses.reshape(-1, 4, 4)), self.num_views, 4, 4))
        c2w = np.einsum("bvij,vjk->bvik", poses, self.sensor_from_view).reshape(-1, 4, 4)
        K = self._K.repeat(len(poses), 1, 1)
        return Cameras(K, torch.as_tensor(c2w, dtype=torch.float32, device=self.device), self.width, self.height)

    def render(self, renderer, world_from_sensor, t: float | None = None) -> RenderOutput:
        """``renderer.render`` of :meth:`cameras`: one call, one batch (on the CPU each view
        projects only the chunks it may see, render/cpu.py ``visible_runs``, so the batch costs
        what its views cost one by one, without a call and a concatenation per view)."""
        return renderer.render(self.cameras(world_from_sensor), t)

    def sample(self, out: RenderOutput, interpolation: str = "bilinear",
               edge_tolerance: float = 0.02, kernel: bool | None = None) -> DirectionalSamples:
        """Each direction looked up in a render of :meth:`cameras` (B poses). ``edge_tolerance``:
        the largest second difference of inverse depth, relative to the cell's, still taken
        for one surface (bilinear lookup). ``kernel``: look up with the CPU kernel
        (cpu_kernels.directional_lookup: one pass, no PyTorch operation) instead of the PyTorch
        gathers below; None: where the render is on the CPU and numba is installed. The two
        agree (test_render_directional.py); the ~60 PyTorch operations cost ~10 CPU-ms a VLP-16
        sweep (with OMP_WAIT_POLICY=PASSIVE, as inspatio_ros sets it; ~160 where OpenMP threads
        spin on a busy machine), the kernel ~2."""
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation {interpolation!r} is not one of {INTERPOLATIONS}")
        batch = out.depth.shape[0] // self.num_views
        if out.depth.shape != (batch * self.num_views, self.height, self.width):
            raise ValueError(f"render of shape {tuple(out.depth.shape)} is not of these views "
                             f"({self.num_views} x {self.height} x {self.width} per pose)")
        if kernel is None:
            kernel = out.depth.device.type == "cpu" and _cpu_kernels_available()
        if kernel:
            return self._sample_kernel(out, batch, interpolation, edge_tolerance)
        h, w = self.height, self.width
        depth = out.depth.reshape(batch, -1)
        rgb = out.rgb.reshape(batch, -1, 3)
        covered = out.coverage.reshape(batch, -1)
        base = self._view * (h * w)                                           # (N,)
        u, v = self._pixel[:, 0], self._pixel[:, 1]
        nearest = base + v.round().long().clamp(0, h - 1) * w + u.round().long().clamp(0, w - 1)
        z = depth[:, nearest]
        colour = rgb[:, nearest]
        seen = covered[:, nearest]
        x0, y0 = u.floor(), v.floor()
        ax, ay = u - x0, v - y0
        x0 = x0.long().clamp(1, w - 3)
        y0 = y0.long().clamp(1, h - 3)

        def at(dy: int, dx: int) -> torch.Tensor:
            return base + (y0 + dy) * w + (x0 + dx)

        corners = [at(0, 0), at(0, 1), at(1, 0), at(1, 1)]
        inv = {(dy, dx): 1.0 / depth[:, at(dy, dx)] for dy in range(-1, 3) for dx in range(-1, 3)
               if (0 <= dy <= 1) or (0 <= dx <= 1)}                          # the 2x2 cell and its cross
        # On a plane 1/z is affine in the image: every second difference along the cell's two
        # rows and two columns, one pixel past the cell each way, vanishes. A silhouette (or a
        # crease) does not; there the nearest pixel is taken instead of a blend.
        second = []
        for k in (0, 1):
            row = [inv[(k, dx)] for dx in range(-1, 3)]
            col = [inv[(dy, k)] for dy in range(-1, 3)]
            for line in (row, col):
                second += [line[i - 1] - 2 * line[i] + line[i + 1] for i in (1, 2)]
        cell = torch.stack([inv[(0, 0)], inv[(0, 1)], inv[(1, 0)], inv[(1, 1)]])          # (4, B, N)
        curved = torch.stack(second).abs().amax(0)
        cov = torch.stack([covered[:, c] for c in corners]).all(0)
        smooth = cov & (curved <= edge_tolerance * cell.amax(0))              # NaN (no surface) fails
        weights = torch.stack([(1 - ax) * (1 - ay), ax * (1 - ay), (1 - ax) * ay, ax * ay])       # (4, N)
        w_here = (weights[:, None, :] * cell).sum(0)                          # 1/z at the direction
        # Incidence from the plane 1/z = a u + b v + c: its normal over its distance is
        # (fx a, fy b, 1/z - fx a tx - fy b ty) in the view frame, and n.(tx, ty, 1) = d/z.
        grad_u = 0.5 * (cell[1] - cell[0] + cell[3] - cell[2])
        grad_v = 0.5 * (cell[2] - cell[0] + cell[3] - cell[1])
        tx, ty = self._tangent[:, 0], self._tangent[:, 1]
        nx, ny = float(self.focal[0]) * grad_u, float(self.focal[1]) * grad_v
        nz = w_here - nx * tx - ny * ty
        norm = torch.sqrt(nx * nx + ny * ny + nz * nz)
        cos_incidence = torch.where(smooth, (w_here.abs() / (norm * self._range_per_depth)).clamp(max=1.0),
                                    torch.full_like(w_here, float("nan")))
        if interpolation == "bilinear":
            z = torch.where(smooth, 1.0 / w_here, z)
            cs = torch.stack([rgb[:, c].float() for c in corners])            # (4, B, N, 3)
            blended = (weights[:, None, :, None] * cs).sum(0).round().clamp(0, 255).to(torch.uint8)
            colour = torch.where(smooth[..., None], blended, colour)
        ranges = z * self._range_per_depth
        return DirectionalSamples(ranges, z, colour, seen, cos_incidence)

    def _sample_kernel(self, out: RenderOutput, batch: int, interpolation: str,
                       edge_tolerance: float) -> DirectionalSamples:
        from .cpu import thread_kernels

        if self._host is None:     # the per-direction plan as contiguous host arrays, made once
            self._host = (self._view.cpu().numpy(), np.ascontiguousarray(self._pixel.cpu().numpy()),
                          self._range_per_depth.cpu().numpy(), np.ascontiguousarray(self._tangent.cpu().numpy()))
        view, pixel, range_per_depth, tangent = self._host
        lookup = thread_kernels()["directional_lookup"]
        arrays = lookup(np.ascontiguousarray(out.depth.cpu().numpy().reshape(batch, -1)),
                        np.ascontiguousarray(out.rgb.cpu().numpy().reshape(batch, -1, 3)),
                        np.ascontiguousarray(out.coverage.cpu().numpy().reshape(batch, -1)),
                        view, pixel, range_per_depth, tangent, np.float32(self.focal[0]), np.float32(self.focal[1]),
                        np.float32(edge_tolerance), interpolation == "bilinear", self.height, self.width)
        ranges, z, colour, seen, cos_incidence = (torch.from_numpy(a) for a in arrays)
        return DirectionalSamples(ranges, z, colour, seen, cos_incidence)


def _cpu_kernels_available() -> bool:
    from . import cpu

    return os.environ.get("INSPATIO_CPU_KERNELS") != "0" and cpu.available()


def render_directions(renderer, world_from_sensor, directions, pitch_rad: float, t: float | None = None,
                      interpolation: str = "bilinear") -> DirectionalSamples:
    """One-shot: plan views for ``directions`` (sensor frame), render them from the pose(s)
    ``world_from_sensor`` at time ``t`` (:meth:`DirectionalViews.render`), and sample. Keep a
    :class:`DirectionalViews` for repeated renders of the same directions."""
    views = DirectionalViews(directions, pitch_rad, renderer.device)
    return views.sample(views.render(renderer, world_from_sensor, t), interpolation)
