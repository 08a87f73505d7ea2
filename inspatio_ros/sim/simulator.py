"""The simulator core: a world, a camera rig and the recorded path -> sensor frames (no ROS here).

Frames (REP-103/105): the world file's frame is ``map``. A world whose up direction is not +z
(built from a video without gravity, so in the first camera's OpenCV frame) is rotated so the
recorded cameras' mean "up" (-y of the OpenCV camera) becomes +z: ``map_from_world``.

The ego (``base_link``) in replay follows the recorded camera: the rig's reference camera (the one
that recorded the video, by default the first) is put exactly on the recorded pose, so replay with
the default rig reproduces the recording; ``base_link`` is wherever that camera's extrinsics place
it. A lateral offset moves the ego along its own +y (left, REP-103).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ..camera import invert_pose
from ..errors import InputError
from ..render import Cameras, Renderer, RenderSettings
from ..render.lens_warp import DistortedView, FisheyeView, warp_output
from .lidar import LidarFrame, LidarSampler, LidarSpec
from .rig import CameraSpec


@dataclass
class CameraFrame:
    """One camera's render, on the host, ready to become messages."""

    spec: CameraSpec
    rgb: np.ndarray                  # (H, W, 3) uint8
    depth: np.ndarray                # (H, W) float32 metres along the optical axis, NaN unknown
    coverage: np.ndarray | None      # (H, W) bool, or None when the camera does not publish it
    points: np.ndarray | None        # (H, W, 4) float32 x, y, z (optical frame) + packed rgb, or None
    map_from_optical: np.ndarray     # (4, 4)
    coverage_fraction: float = 1.0   # share of pixels the world covered (the rest hole-filled)


@dataclass
class SensorFrame:
    stamp: float                     # sim time the frame shows (header.stamp of every message)
    recording_time: float            # moment of the recording rendered
    map_from_base: np.ndarray        # ego pose
    cameras: list[CameraFrame] = field(default_factory=list)
    lidars: list[LidarFrame] = field(default_factory=list)   # the LiDARs due this tick (same stamp)
    render_s: float = 0.0            # wall seconds spent rendering + copying to the host
    # The ego's motion in base_link (m/s, rad/s), filled in by SimSession: what odometry reports.
    linear_velocity: np.ndarray = field(default_factory=lambda: np.zeros(3))
    angular_velocity: np.ndarray = field(default_factory=lambda: np.zeros(3))
    # time.perf_counter() when the pose input this frame shows was accepted (None: no new pose):
    # where the node's pose -> image latency starts.
    input_received: float | None = None


def gravity_alignment(world_c2w: np.ndarray) -> np.ndarray:
    """``map_from_world``: identity for z-up worlds, else the rotation taking recorded 'up' to +z."""
    up = -world_c2w[:, :3, 1].mean(axis=0)         # OpenCV camera y points down
    norm = np.linalg.norm(up)
    if norm < 1e-6:
        return np.eye(4)
    up = up / norm
    if up[2] > np.cos(np.radians(30.0)):          # already z-up (synthetic and gravity-aware worlds)
        return np.eye(4)
    # Rotation taking `up` to +z (Rodrigues about up x z).
    z = np.array([0.0, 0.0, 1.0])
    axis = np.cross(up, z)
    s, c = np.linalg.norm(axis), float(up @ z)
    if s < 1e-9:
        rot = np.diag([1.0, -1.0, -1.0])          # up == -z: half turn about x
    else:
        k = axis / s
        kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
        rot = np.eye(3) + s * kx + (1 - c) * kx @ kx
    out = np.eye(4)
    out[:3, :3] = rot
    return out


class RecordedPath:
    """The recorded camera path (all source frames, held-out ones included) in the map frame."""

    def __init__(self, times: np.ndarray, map_from_camera: np.ndarray):
        from scipy.spatial.transform import Rotation, Slerp

        order = np.argsort(times)
        self.times = np.asarray(times, np.float64)[order]
        self.poses = np.asarray(map_from_camera, np.float64)[order]
        if len(self.times) < 2:
            raise InputError("the world has fewer than 2 source frames", "rebuild it from a video of 2 frames or more")
        keep = np.concatenate([[True], np.diff(self.times) > 0])
        self.times, self.poses = self.times[keep], self.poses[keep]
        self._slerp = Slerp(self.times, Rotation.from_matrix(self.poses[:, :3, :3]))

    @property
    def start(self) -> float:
        return float(self.times[0])

    @property
    def end(self) -> float:
        return float(self.times[-1])

    def camera_pose(self, t: float) -> np.ndarray:
        t = float(np.clip(t, self.start, self.end))
        i = int(np.clip(np.searchsorted(self.times, t) - 1, 0, len(self.times) - 2))
        a = (t - self.times[i]) / (self.times[i + 1] - self.times[i])
        out = np.eye(4)
        out[:3, :3] = self._slerp([t]).as_matrix()[0]
        out[:3, 3] = (1 - a) * self.poses[i, :3, 3] + a * self.poses[i + 1, :3, 3]
        return out


class Simulator:
    """Renders a rig at an ego pose and a moment of the recording, all cameras batched per size."""

    def __init__(self, world, rig: list[CameraSpec], *, device: str = "auto",
                 settings: RenderSettings | None = None, reference_camera: str | None = None, refiner=None,
                 lidars: list[LidarSpec] | None = None):
        """``refiner``: a generator.Refiner applied to every camera render batch (None: the raw
        render); ``lidars``: the LiDARs (sim/lidar.py), rendered raw (no refiner: ranges, not looks)."""
        if not rig:
            raise InputError("the camera rig is empty", "list at least one camera in cameras.names")
        self.world = world
        self.rig = list(rig)
        self.renderer = Renderer(world, device, settings)
        self.device = self.renderer.device
        self.refiner = refiner
        all_c2w = np.concatenate([world.frame_c2w, world.heldout_c2w]).astype(np.float64)
        all_t = np.concatenate([world.frame_time, world.heldout_time]).astype(np.float64)
        self.map_from_world = gravity_alignment(all_c2w)
        self.world_from_map = invert_pose(self.map_from_world)
        self.path = RecordedPath(all_t, self.map_from_world @ all_c2w)
        names = [c.name for c in self.rig]
        ref = reference_camera or names[0]
        if ref not in names:
            raise InputError(f"replay.reference_camera '{ref}' is not in the rig ({', '.join(names)})",
                             "name one of the rig's cameras, the one that recorded the video")
        self.reference = self.rig[names.index(ref)]
        self._optical_from_base_ref = invert_pose(self.reference.base_from_optical())
        self._host: dict = {}
        self._flip = 0
        self.lidars = list(lidars or [])
        self._lidar_samplers = {spec.name: LidarSampler(spec, self.device) for spec in self.lidars}
        self._views: dict[str, DistortedView | FisheyeView] = {}
        # On the CPU the tick's camera batches and LiDAR sweeps render side by side, one per core
        # (render/cpu.py SideBySide), where their costs balance; INSPATIO_SIDE_BY_SIDE=0: never.
        self._side_by_side = None
        if self.device.type == "cpu" and self.renderer.cpu_kernels and os.environ.get("INSPATIO_SIDE_BY_SIDE") != "0":
            from ..render.cpu import SideBySide

            self._side_by_side = SideBySide()

    # -- poses -------------------------------------------------------------------------------
    def recorded_base_pose(self, recording_time: float, lateral_offset: float = 0.0) -> np.ndarray:
        """``map_from_base`` that puts the reference camera on the recorded camera at that time."""
        base = self.path.camera_pose(recording_time) @ self._optical_from_base_ref
        if lateral_offset:
            base = base.copy()
            base[:3, 3] += lateral_offset * base[:3, 1]
        return base

    def camera_pose(self, map_from_base: np.ndarray, spec: CameraSpec) -> np.ndarray:
        """World-frame OpenCV camera-to-world pose of ``spec`` (what the renderer takes)."""
        return self.world_from_map @ map_from_base @ spec.base_from_optical()

    # -- rendering ---------------------------------------------------------------------------
    def _to_host(self, name: str, tensor: torch.Tensor) -> np.ndarray:
        if self.device.type != "cuda":
            return tensor.numpy()
        key = (self._flip, name, tuple(tensor.shape), tensor.dtype)
        buf = self._host.get(key)
        if buf is None:
            buf = self._host[key] = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
        buf.copy_(tensor, non_blocking=True)
        return buf.numpy()

    def render(self, stamp: float, recording_time: float, map_from_base: np.ndarray,
               cameras: list[CameraSpec] | None = None,
               into: dict[str, dict[str, np.ndarray]] | None = None, lidars: list[LidarSpec] | None = None,
               velocity: tuple[np.ndarray, np.ndarray] | None = None) -> SensorFrame:
        """Render ``cameras`` (default: the rig) and ``lidars`` (default: all) at the ego pose
        ``map_from_base`` and the recording time; ``velocity`` (linear m/s, angular rad/s in
        base_link, default still) moves the ego during a LiDAR sweep. ``into`` (camera name -> "rgb", "depth" and, where published, "points", "coverage"
        arrays) receives the images directly (the node passes its writer processes' shared memory,
        page-locked on CUDA); without it they land in reused host buffers of the simulator."""
        cameras = self.rig if cameras is None else cameras
        started = time.perf_counter()
        frame = SensorFrame(stamp=stamp, recording_time=recording_time, map_from_base=map_from_base)
        by_name = {}
        self._flip ^= 1               # two host buffer sets: one being published, one being filled
        lidars = self.lidars if lidars is None else lidars
        linear, angular = velocity if velocity is not None else (np.zeros(3), np.zeros(3))
        rendered = self._render_all(map_from_base, recording_time, cameras, lidars, linear, angular)
        for specs, K, ray_per_depth, out in rendered["cameras"]:
            want_points = [("points" in s.outputs) for s in specs]
            want_coverage = [("coverage" in s.outputs) for s in specs]
            clouds = organised_points(out.depth, out.rgb, K, ray_per_depth) if any(want_points) else None
            # Only what is published leaves the device.
            if into is not None:
                host = [self._copy_into(into, s, out, clouds, i, want_points[i], want_coverage[i])
                        for i, s in enumerate(specs)]
            else:
                rgb = self._to_host("rgb", out.rgb)
                depth = self._to_host("depth", out.depth)
                cov = self._to_host("coverage", out.coverage) if any(want_coverage) else None
                pts = self._to_host("points", clouds) if clouds is not None else None
                host = [{"rgb": rgb[i], "depth": depth[i],
                         "coverage": cov[i] if want_coverage[i] else None,
                         "points": pts[i] if want_points[i] else None} for i in range(len(specs))]
            seen = self._to_host("seen", out.coverage.float().mean(dim=(1, 2)))
            if self.device.type == "cuda":
                torch.cuda.current_stream(self.device).synchronize()
            for i, s in enumerate(specs):
                by_name[s.name] = CameraFrame(
                    spec=s, rgb=host[i]["rgb"], depth=host[i]["depth"], coverage=host[i]["coverage"],
                    points=host[i]["points"], coverage_fraction=float(seen[i]),
                    map_from_optical=map_from_base @ s.base_from_optical())
        frame.cameras = [by_name[s.name] for s in cameras]
        frame.lidars = rendered["lidars"]
        frame.render_s = time.perf_counter() - started
        return frame

    def _render_all(self, map_from_base: np.ndarray, recording_time: float, cameras: list[CameraSpec],
                    lidars: list[LidarSpec], linear, angular, side_by_side: bool | None = None) -> dict:
        """{"cameras": [(specs, K, rays, out)] per camera batch, "lidars": [LidarFrame]}: every
        batch and sweep of the tick, on the CPU side by side where that pays (``side_by_side``
        None; True / False: always / never)."""
        runner = self._side_by_side
        groups = self._camera_groups(cameras)
        if runner is not None and side_by_side is not False and self.refiner is None:
            # On the CPU a batch costs what its cameras cost one by one (each projects its own
            # chunks), so side by side renders each camera as a job of its own: a six-camera rig
            # then splits over the two threads, not as one job beside the LiDAR.
            groups = [[spec] for specs in groups for spec in specs]
        jobs = {("cameras", tuple(s.name for s in specs)): (
                    lambda specs=specs: self._render_group(specs, map_from_base, recording_time)) for specs in groups}
        jobs.update({("lidar", spec.name): (
                    lambda spec=spec: self.render_lidar(spec, recording_time, map_from_base, linear, angular))
                     for spec in lidars})
        if runner is None or side_by_side is False:
            done = {k: job() for k, job in jobs.items()}
        else:
            done = runner.run(jobs, always=bool(side_by_side))
        return {"cameras": [done[k] for k in jobs if k[0] == "cameras"],
                "lidars": [done[k] for k in jobs if k[0] == "lidar"]}

    def lidar_sampler(self, name: str) -> LidarSampler:
        """The render plan of LiDAR ``name`` (its views, sector moments, per-point tables)."""
        return self._lidar_samplers[name]

    def render_lidar(self, spec: LidarSpec, recording_time: float, map_from_base: np.ndarray,
                     linear=(0.0, 0.0, 0.0), angular=(0.0, 0.0, 0.0)) -> LidarFrame:
        """One sweep of LiDAR ``spec`` starting at the ego pose ``map_from_base``: every sector
        rendered from where the sensor is when it sweeps it (one render call on CUDA)."""
        sampler = self._lidar_samplers[spec.name]
        at_sectors = sampler.sensor_poses(map_from_base, linear, angular)                  # map_from_link
        out = sampler.views.render(self.renderer, self.world_from_map @ at_sectors, recording_time)
        samples = sampler.views.sample(out)
        ranges, rgb, covered, cos = (x[0].cpu().numpy() for x in (samples.range, samples.rgb, samples.coverage,
                                                                    samples.cos_incidence))
        at_stamp = map_from_base @ spec.base_from_link()
        points = sampler.points(ranges, rgb, covered, cos, at_stamp, at_sectors)
        return LidarFrame(spec, points, at_stamp, len(points), len(ranges))

    def warm_up(self, recording_time: float, map_from_base: np.ndarray) -> None:
        """Render the rig once and keep nothing (the first render compiles the kernels; on the CPU
        both the parallel kernels and the single-threaded ones that side-by-side renders use)."""
        zero = np.zeros(3)
        self._render_all(map_from_base, recording_time, self.rig, self.lidars, zero, zero, side_by_side=False)
        if self._side_by_side is not None:
            self._render_all(map_from_base, recording_time, self.rig, self.lidars, zero, zero, side_by_side=True)
        if self.device.type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()

    def _distorted_view(self, spec: CameraSpec) -> DistortedView | FisheyeView | None:
        """How a camera with a lens is drawn (made once), None for a pinhole camera."""
        if spec.lens is None:
            return None
        view = self._views.get(spec.name)
        if view is None:
            view = self._views[spec.name] = (FisheyeView(spec.intrinsics, spec.lens, self.device) if spec.lens.is_fisheye
                                             else DistortedView.make(spec.intrinsics, spec.lens, self.device))
        return view

    def _camera_groups(self, cameras: list[CameraSpec]) -> list[list[CameraSpec]]:
        """The cameras in render batches: pinhole cameras of one size in one batch; distorted
        cameras of one size and one covering render size in another; each fisheye camera alone."""
        groups: dict[tuple, list[CameraSpec]] = {}
        for spec in cameras:
            view = self._distorted_view(spec)
            key = (spec.width, spec.height) if view is None else ("fisheye", spec.name) if isinstance(
                view, FisheyeView) else (spec.width, spec.height, view.render_intrinsics.width,
                                         view.render_intrinsics.height)
            groups.setdefault(key, []).append(spec)
        return list(groups.values())

    def _render_groups(self, map_from_base: np.ndarray, recording_time: float, cameras: list[CameraSpec]):
        """(specs, K (B, 3, 3), per-pixel ray per unit of depth (B, H, W, 3) or None for pinhole
        cameras, RenderOutput) per batch (:meth:`_camera_groups`), one after the other."""
        for specs in self._camera_groups(cameras):
            yield self._render_group(specs, map_from_base, recording_time)

    def _render_group(self, specs: list[CameraSpec], map_from_base: np.ndarray, recording_time: float):
        """One batch of :meth:`_camera_groups`: distorted cameras warped to their lens, a fisheye
        camera from its cube-face views."""
        background = self.renderer.settings.background
        views = [self._distorted_view(s) for s in specs]
        c2w = np.stack([self.camera_pose(map_from_base, s) for s in specs])
        if isinstance(views[0], FisheyeView):
            out = views[0].views.render(self.renderer, c2w[0], recording_time)
            out = out if self.refiner is None else self.refiner.refine_output(out)
            K = torch.as_tensor(specs[0].intrinsics.K[None]).to(self.device, torch.float32)
            return specs, K, views[0].ray_per_depth[None], views[0].output(out, background)
        drawn = [s.intrinsics if v is None else v.render_intrinsics for s, v in zip(specs, views)]
        cams = Cameras.from_intrinsics(drawn, c2w, self.device)
        out = self.renderer.render(cams, recording_time)
        out = out if self.refiner is None else self.refiner.refine_output(out)
        if views[0] is None:
            return specs, cams.K, None, out
        K = torch.as_tensor(np.stack([s.intrinsics.K for s in specs])).to(self.device, torch.float32)
        return specs, K, torch.stack([v.ray_per_depth for v in views]), warp_output(out, views, background)

    @staticmethod
    def _copy_into(into: dict, spec: CameraSpec, out, clouds, i: int, want_points: bool,
                   want_coverage: bool) -> dict:
        """Copy camera ``i`` of a batch into the caller's arrays (asynchronous on CUDA when they
        are page-locked; the caller's stream synchronisation ends it)."""
        try:
            dest = into[spec.name]
        except KeyError:
            raise ValueError(f"render(into=...) has no arrays for camera '{spec.name}'") from None
        pairs = [("rgb", out.rgb[i]), ("depth", out.depth[i])]
        if want_points:
            pairs.append(("points", clouds[i]))
        if want_coverage:
            pairs.append(("coverage", out.coverage[i]))
        host = {"points": None, "coverage": None}
        for key, tensor in pairs:
            array = dest[key]
            torch.from_numpy(array).copy_(tensor, non_blocking=True)
            host[key] = array
        return host


def organised_points(depth: torch.Tensor, rgb: torch.Tensor, K: torch.Tensor,
                     ray_per_depth: torch.Tensor | None = None) -> torch.Tensor:
    """(B, H, W, 4) float32: optical-frame x, y, z from depth (NaN stays NaN) + rgb packed as float bits.
    ``ray_per_depth`` (B, H, W, 3): for cameras with a lens, the point of each pixel per unit of
    its depth value ((x/z, y/z, 1) of its ray; a fisheye's unit ray, its depth being the range);
    else the pinhole rays of K."""
    b, h, w = depth.shape
    dev = depth.device
    out = torch.empty((b, h, w, 4), device=dev, dtype=torch.float32)
    if ray_per_depth is not None:
        out[..., :3] = depth[..., None] * ray_per_depth
    else:
        u = torch.arange(w, device=dev, dtype=torch.float32)
        v = torch.arange(h, device=dev, dtype=torch.float32)
        fx, fy, cx, cy = (K[:, 0, 0], K[:, 1, 1], K[:, 0, 2], K[:, 1, 2])
        xn = (u[None, :] - cx[:, None]) / fx[:, None]        # (B, W)
        yn = (v[None, :] - cy[:, None]) / fy[:, None]        # (B, H)
        out[..., 0] = depth * xn[:, None, :]
        out[..., 1] = depth * yn[:, :, None]
        out[..., 2] = depth
    c = rgb.to(torch.int32)
    packed = (c[..., 0] << 16) | (c[..., 1] << 8) | c[..., 2]
    out[..., 3] = packed.view(torch.float32)
    return out
