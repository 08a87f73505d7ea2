"""``inspatio_ros/Drive-v0``: drive a world's recorded road as a Gymnasium environment (no ROS).

One episode: the ego starts on the recorded path (at ``start_time`` seconds into the recording,
``lateral_offset`` metres to its left, turned ``heading_offset`` rad), standing still; every step
the agent's action commands the vehicle model for one period of the rig's fastest camera (sim
time, lockstep: nothing depends on the wall clock), and the observation is what the rig's cameras
see then. Reward and termination come from the recorded path (:class:`ReferencePath`), the road
the recording vehicle drove.

Observations (a ``Dict``; keys per camera of the rig, ``config.observe`` chooses):

* ``<camera>_image``: (H, W, 3) uint8 RGB;
* ``<camera>_depth``: (H, W) float32 metres along the optical axis, 0 where the world has nothing;
* ``<camera>_points``: (H, W, 3) float32 x, y, z in the camera's optical frame (z forward, x
  right, y down), 0 where the world has nothing;
* ``state``: float32 [speed m/s, steering rad, yaw rate rad/s, cross-track error m, heading error
  rad, progress 0..1 of the path].

Actions (``config.action_type``):

* ``"ackermann"``: [steering rad, acceleration m/s^2] for the kinematic bicycle; the steering
  angle moves toward the command at the vehicle's steering rate; a positive acceleration speeds up
  at that rate (up to ``vehicle.max_speed``), a negative one brakes at that rate to a standstill
  (no reverse gear); bounds from :class:`~inspatio_ros.sim.settings.VehicleSettings`;
* ``"twist"``: [forward speed m/s, yaw rate rad/s] for the unicycle model (reverse allowed).

Actions outside the space are clipped to it; NaN or infinity is an :class:`InputError`.

Reward per step (weights: :class:`RewardWeights`; ``dt`` the step's sim seconds)::

    progress * (metres gained along the path)
    - lateral * |cross-track error| * dt - heading * |heading error| * dt
    - leave_corridor   (once, on the step the ego leaves the corridor; the episode terminates)
    + finish           (once, on reaching the end of the path; the episode terminates)

The corridor is every point within ``corridor_half_width`` metres of the path. The episode is
truncated after ``time_limit`` sim seconds. ``info`` carries the terms and the path errors.

Deterministic: observations and rewards depend only on the seed and the actions; the seed draws
what ``reset`` options do not give, from the ranges of :class:`DriveConfig`.

The vector form, :class:`DriveVectorEnv`, runs ``num_envs`` episodes on one or several worlds and
renders every camera of every environment on one world in one ``Renderer.render`` call (one batch
per world, image size and, for a world that changes over time, recording moment).
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from ..errors import InputError
from ..render import Cameras
from ..sim.rig import CameraSpec, load_rig, load_rig_file, recorded_camera_parameters
from ..sim.session import SimSession
from ..sim.settings import ClockSettings, SessionSettings, VehicleSettings
from ..sim.simulator import Simulator, organised_points
from .path import ReferencePath

ACTION_TYPES = ("ackermann", "twist")
OBSERVATIONS = ("image", "depth", "points", "state")
STATE_FIELDS = ("speed", "steering", "yaw_rate", "cross_track", "heading_error", "progress")


def _finite(name: str, value, lo: float = -math.inf, hi: float = math.inf) -> None:
    if not (isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
            and lo <= value <= hi):
        raise InputError(f"{name} = {value!r}", f"give a finite number in [{lo:g}, {hi:g}]")


def _check_range(name: str, pair, lo: float = -math.inf) -> None:
    if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
        raise InputError(f"{name} = {pair!r}", "give a (low, high) pair; equal values fix it")
    for v in pair:
        _finite(name, v, lo)
    if pair[0] > pair[1]:
        raise InputError(f"{name} = {pair!r} has low > high", "give (low, high) with low <= high")


@dataclass(frozen=True)
class RewardWeights:
    """Weights of the reward terms (the formula: this module's docstring). All >= 0."""

    progress: float = 1.0          # per metre gained along the path
    lateral: float = 0.5           # per metre of |cross-track error| per second
    heading: float = 0.5           # per radian of |heading error| per second
    leave_corridor: float = 10.0   # once, on leaving the corridor
    finish: float = 10.0           # once, on reaching the end of the path

    def __post_init__(self):
        for f in dataclasses.fields(self):
            _finite(f"reward.{f.name}", getattr(self, f.name), 0.0)


@dataclass(frozen=True)
class DriveConfig:
    """Everything an episode of ``inspatio_ros/Drive-v0`` is, besides the world and the rig."""

    action_type: str = "ackermann"                   # "ackermann" [steer, accel] or "twist" [speed, yaw rate]
    observe: tuple[str, ...] = ("image",)            # any of image, depth, points, state
    corridor_half_width: float = 2.0                 # m either side of the path
    time_limit: float = 30.0                         # sim seconds per episode, then truncated
    finish_margin: float = 1.0                       # m before the path's end that count as its end
    # Reset draws what its options do not give, uniformly from these (low, high) ranges:
    start_time: tuple[float, float] = (0.0, 0.0)     # s after the recording's start (clipped to it)
    lateral_offset: tuple[float, float] = (-0.5, 0.5)    # m, to the left
    heading_offset: tuple[float, float] = (-0.05, 0.05)  # rad, counter-clockwise
    # The default rig (used when no rig is given): the recording camera scaled to this size.
    image_size: tuple[int, int] = (160, 90)          # width, height in pixels
    rate_hz: float = 10.0                            # steps (and camera frames) per sim second
    device: str = "auto"                             # where to render: auto, cpu, cuda, cuda:N
    vehicle: VehicleSettings = field(default_factory=lambda: VehicleSettings(command_timeout=1.0))
    reward: RewardWeights = field(default_factory=RewardWeights)

    def __post_init__(self):
        if self.action_type not in ACTION_TYPES:
            raise InputError(f"action_type = {self.action_type!r}", f"give one of {', '.join(ACTION_TYPES)}")
        observe = (self.observe,) if isinstance(self.observe, str) else tuple(self.observe)
        unknown = [o for o in observe if o not in OBSERVATIONS]
        if unknown or not observe:
            raise InputError(f"observe = {self.observe!r}", f"give one or more of {', '.join(OBSERVATIONS)}")
        object.__setattr__(self, "observe", observe)
        _finite("corridor_half_width", self.corridor_half_width, 1e-3)
        _finite("time_limit", self.time_limit, 1e-3)
        _finite("finish_margin", self.finish_margin, 0.0)
        _check_range("start_time", self.start_time, 0.0)
        _check_range("lateral_offset", self.lateral_offset)
        _check_range("heading_offset", self.heading_offset, -math.pi)
        _finite("rate_hz", self.rate_hz, 0.1, 1000.0)
        try:
            w, h = self.image_size
        except (TypeError, ValueError):
            w = h = None
        if not (isinstance(w, numbers.Integral) and isinstance(h, numbers.Integral) and 1 <= w <= 8192
                and 1 <= h <= 8192):
            raise InputError(f"image_size = {self.image_size!r}", "give (width, height) in pixels, 1 .. 8192")
        if not isinstance(self.reward, RewardWeights):
            raise InputError(f"reward = {self.reward!r}", "give a RewardWeights")

    @classmethod
    def with_overrides(cls, config: DriveConfig | None, overrides: dict) -> DriveConfig:
        """``config`` (default: the defaults) with fields replaced by keyword; a misspelt name is an
        InputError with the closest field (so ``gymnasium.make(..., actiontype="twist")`` fails loudly)."""
        base = config if config is not None else cls()
        names = [f.name for f in dataclasses.fields(cls)]
        for key in overrides:
            if key not in names:
                close = difflib.get_close_matches(key, names, n=1)
                hint = f"did you mean '{close[0]}'? " if close else ""
                raise InputError(f"inspatio_ros/Drive-v0 has no option '{key}'", f"{hint}options: {', '.join(names)}")
        return dataclasses.replace(base, **overrides) if overrides else base


def load_world(world, device: str):
    """A World from a World, a path, or None (the embedded default world, built on first use)."""
    from ..world import World

    if world is None:
        from ..demo import ensure_default_world

        world = ensure_default_world(device="cpu" if device == "cpu" else "auto", verbose=False)
    if isinstance(world, (str, Path)):
        return World.load(world)
    return world


def default_rig(world, width: int, height: int, rate_hz: float) -> list[CameraSpec]:
    """One camera ``front`` like the one that recorded ``world``, scaled to ``width`` x ``height``."""
    params = recorded_camera_parameters(world)
    k = world.intrinsics
    sx, sy = width / k.width, height / k.height
    params.update({"cameras.front.width": width, "cameras.front.height": height,
                   "cameras.front.fx": k.fx * sx, "cameras.front.fy": k.fy * sy,
                   "cameras.front.cx": (k.cx + 0.5) * sx - 0.5, "cameras.front.cy": (k.cy + 0.5) * sy - 0.5,
                   "cameras.front.rate_hz": float(rate_hz), "cameras.front.outputs": ["image", "depth"]})
    return load_rig(params, "the default rig")


def resolve_rig(rig, world, config: DriveConfig) -> list[CameraSpec]:
    """The rig from None (:func:`default_rig`), CameraSpecs, ``cameras.*`` parameters or a YAML file."""
    if rig is None:
        return default_rig(world, *config.image_size, config.rate_hz)
    if isinstance(rig, (str, Path)):
        return load_rig_file(rig)
    if isinstance(rig, dict):
        return load_rig(rig, "rig")
    rig = list(rig)
    if not rig or not all(isinstance(c, CameraSpec) for c in rig):
        raise InputError("rig is not a list of CameraSpec", "give None, CameraSpecs, cameras.* parameters or a rig YAML")
    return rig


# -- rendering many environments' cameras at once ------------------------------------------------

def _time_dependent(renderer) -> bool:
    """Whether the renderer's output depends on the recording moment (moving objects, frame-local layers)."""
    return renderer.layers is not None or bool(renderer.cloud.has_dynamic)


def render_requests(requests: list[tuple]) -> list[dict[str, np.ndarray]]:
    """Render many cameras, batched: ``requests`` are (simulator, spec, world-frame camera-to-world,
    recording time, want points); returns per request {"rgb", "depth"[, "points"]} host arrays.
    One ``Renderer.render`` call per simulator and image size (and recording moment where the
    world changes over time)."""
    groups: dict[tuple, list[int]] = {}
    for i, (sim, spec, _c2w, t, _pts) in enumerate(requests):
        key = (id(sim), spec.width, spec.height, t if _time_dependent(sim.renderer) else None)
        groups.setdefault(key, []).append(i)
    results: list[dict | None] = [None] * len(requests)
    for members in groups.values():
        sim, _, _, t, _ = requests[members[0]]
        cams = Cameras.from_intrinsics([requests[i][1].intrinsics for i in members],
                                       np.stack([requests[i][2] for i in members]), sim.device)
        out = sim.renderer.render(cams, t)
        rgb, depth = out.rgb.cpu().numpy(), out.depth.cpu().numpy()
        points = None
        if any(requests[i][4] for i in members):
            points = organised_points(out.depth, out.rgb, cams.K)[..., :3].cpu().numpy()
        for j, i in enumerate(members):
            results[i] = {"rgb": rgb[j], "depth": depth[j], "points": points[j] if points is not None else None}
    return results


class DriveEnv(gym.Env):
    """Drive the recorded road of a world (see the module docstring for spaces, reward, termination).

    ``world``: a World, a world file, or None for the embedded default world. ``rig``: None (the
    recording camera at ``config.image_size``), a list of CameraSpec, ``cameras.*`` parameters or a
    rig YAML. ``config``: a :class:`DriveConfig`; keyword ``overrides`` replace its fields
    (``gymnasium.make("inspatio_ros/Drive-v0", action_type="twist")``). ``simulator`` and
    ``reference_path``: made already for this world and rig (a vector environment shares them).
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(self, world=None, rig=None, config: DriveConfig | None = None, render_mode: str | None = None, *,
                 simulator: Simulator | None = None, reference_path: ReferencePath | None = None, **overrides):
        self.config = c = DriveConfig.with_overrides(config, overrides)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise InputError(f"render_mode = {render_mode!r}", "give None or 'rgb_array'")
        self.render_mode = render_mode
        if simulator is None:
            world = load_world(world, c.device)
            simulator = Simulator(world, resolve_rig(rig, world, c), device=c.device)
        self.sim = simulator
        self.rig = simulator.rig
        self.path = reference_path if reference_path is not None else ReferencePath.from_simulator(simulator)
        # Lockstep with a wall clock that never moves: time passes only in step().
        settings = SessionSettings(device=str(simulator.device), mode="control", lockstep=True,
                                   clock=ClockSettings(end_mode="hold"), vehicle=c.vehicle)
        self.session = SimSession(simulator.world, None, settings, wall_clock=lambda: 0.0, simulator=simulator)
        self.dt = 1.0 / max(cam.rate_hz for cam in self.rig)
        self.metadata = dict(self.metadata, render_fps=1.0 / self.dt)
        self.observation_space = self._observation_space()
        self.action_space = self._action_space()
        self._progress = 0.0
        self._episode_time = 0.0
        self._errors = None                      # the path errors now; None until the first reset
        self._last_images: dict | None = None

    @property
    def ego(self):
        """The ego now (:class:`~inspatio_ros.sim.vehicle.EgoState`: x, y, yaw, speed, ... in the map
        frame): what a controller that knows its pose, like the baseline, drives from."""
        return self.session.ego

    # -- spaces -----------------------------------------------------------------------------------
    def _observation_space(self) -> spaces.Dict:
        obs = {}
        for cam in self.rig:
            h, w = cam.height, cam.width
            if "image" in self.config.observe:
                obs[f"{cam.name}_image"] = spaces.Box(0, 255, (h, w, 3), np.uint8)
            if "depth" in self.config.observe:
                obs[f"{cam.name}_depth"] = spaces.Box(0.0, np.inf, (h, w), np.float32)
            if "points" in self.config.observe:
                obs[f"{cam.name}_points"] = spaces.Box(-np.inf, np.inf, (h, w, 3), np.float32)
        if "state" in self.config.observe:
            obs["state"] = spaces.Box(-np.inf, np.inf, (len(STATE_FIELDS),), np.float32)
        return spaces.Dict(obs)

    def _action_space(self) -> spaces.Box:
        v = self.config.vehicle
        if self.config.action_type == "ackermann":
            low, high = [-v.max_steer, -v.max_decel], [v.max_steer, v.max_accel]
        else:
            low, high = [-v.max_speed, -v.max_yaw_rate], [v.max_speed, v.max_yaw_rate]
        return spaces.Box(np.array(low, np.float32), np.array(high, np.float32), dtype=np.float32)

    # -- the episode ------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._begin(options)
        return self._observation(render_requests(self._requests())), self._info()

    def step(self, action):
        reward, terminated, truncated, terms = self._act(action)
        obs = self._observation(render_requests(self._requests()))
        return obs, reward, terminated, truncated, self._info(terms)

    def render(self):
        """rgb_array: the first camera's image of the last observation (rendered for it anyway)."""
        if self.render_mode != "rgb_array" or self._last_images is None:
            return None
        return self._last_images[self.rig[0].name].copy()

    def _begin(self, options: dict | None) -> None:
        """Put the ego at the start of an episode: options given, or drawn from the config's ranges."""
        options = dict(options or {})
        unknown = set(options) - {"start_time", "lateral_offset", "heading_offset"}
        if unknown:
            raise InputError(f"reset option(s) {', '.join(sorted(unknown))}",
                             "give start_time (s), lateral_offset (m), heading_offset (rad)")
        c, rng = self.config, self.np_random
        duration = self.session.path.end - self.session.path.start
        drawn = {name: float(rng.uniform(*getattr(c, name))) for name in ("start_time", "lateral_offset",
                                                                         "heading_offset")}
        drawn["start_time"] = min(drawn["start_time"], duration)
        values = {**drawn, **options}
        for name, value in values.items():
            _finite(f"reset option {name}", value)
        self.session.reset(elapsed=values["start_time"], lateral_offset=values["lateral_offset"],
                           heading_offset=values["heading_offset"])
        ego = self.session.ego
        near = self.path.s_at_time(self.session.recording_time)
        self._progress = self.path.project(ego.x, ego.y, near_s=near, window=5.0).s
        self._episode_time = 0.0
        self._errors = self.path.errors(ego.x, ego.y, ego.yaw, near_s=self._progress, window=5.0)

    def _command(self, action) -> None:
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != (2,) or not np.isfinite(a).all():
            raise InputError(f"action {np.asarray(action).tolist()!r}",
                             f"give 2 finite numbers for action_type {self.config.action_type}")
        a = np.clip(a, self.action_space.low, self.action_space.high)
        if self.config.action_type == "ackermann":
            steer, accel = float(a[0]), float(a[1])
            speed = self.session.ego.speed
            target = self.config.vehicle.max_speed if accel > 0 else 0.0 if accel < 0 else speed
            self.session.command_ackermann(target, steer, acceleration=abs(accel) or None, source="action")
        else:
            self.session.command_twist(float(a[0]), float(a[1]), source="action")

    def _act(self, action) -> tuple[float, bool, bool, dict]:
        """Command, advance one step, score it: (reward, terminated, truncated, reward terms)."""
        if self._errors is None:
            raise gym.error.ResetNeeded("call reset() before step() (inspatio_ros/Drive-v0)")
        self._command(action)
        self.session.advance(self.dt)
        self._episode_time += self.dt
        ego = self.session.ego
        window = 5.0 + 3.0 * abs(ego.speed) * self.dt
        e = self.path.errors(ego.x, ego.y, ego.yaw, near_s=self._progress, window=window)
        gained = e.s - self._progress
        self._progress, self._errors = e.s, e
        c, w = self.config, self.config.reward
        left = e.point.distance > c.corridor_half_width
        finished = not left and e.s >= self.path.length - c.finish_margin
        terms = {"progress": w.progress * gained,
                 "lateral": -w.lateral * abs(e.cross_track) * self.dt,
                 "heading": -w.heading * abs(e.heading_error) * self.dt,
                 "leave_corridor": -w.leave_corridor if left else 0.0,
                 "finish": w.finish if finished else 0.0}
        terminated = left or finished
        truncated = not terminated and self._episode_time >= c.time_limit - 1e-9
        return float(sum(terms.values())), terminated, truncated, terms

    def _requests(self) -> list[tuple]:
        pose = self.session.map_from_base
        t = self.session.recording_time
        points = "points" in self.config.observe
        return [(self.sim, cam, self.sim.camera_pose(pose, cam), t, points) for cam in self.rig]

    def _observation(self, rendered: list[dict]) -> dict:
        obs = {}
        self._last_images = {}
        for cam, r in zip(self.rig, rendered):
            self._last_images[cam.name] = r["rgb"]
            if "image" in self.config.observe:
                obs[f"{cam.name}_image"] = np.ascontiguousarray(r["rgb"])
            if "depth" in self.config.observe:
                obs[f"{cam.name}_depth"] = np.nan_to_num(r["depth"], nan=0.0).astype(np.float32, copy=False)
            if "points" in self.config.observe:
                obs[f"{cam.name}_points"] = np.nan_to_num(r["points"], nan=0.0).astype(np.float32, copy=False)
        if "state" in self.config.observe:
            ego, e = self.session.ego, self._errors
            obs["state"] = np.array([ego.speed, ego.steering, ego.yaw_rate, e.cross_track, e.heading_error,
                                     e.s / self.path.length], dtype=np.float32)
        return obs

    def _info(self, terms: dict | None = None) -> dict:
        ego, e = self.session.ego, self._errors
        info = {"progress_m": e.s, "cross_track_m": e.cross_track, "heading_error_rad": e.heading_error,
                "speed": ego.speed, "recording_time": self.session.recording_time, "episode_time": self._episode_time}
        if terms is not None:
            info["reward_terms"] = terms
        return info


class DriveVectorEnv(VectorEnv):
    """``num_envs`` episodes of :class:`DriveEnv` stepped together, cameras rendered in batches.

    ``world`` or ``worlds``: environment ``i`` drives ``worlds[i % len(worlds)]`` (each distinct
    world, by object or resolved path, is loaded and uploaded once; its environments share the
    renderer). ``rig``, ``config``,
    ``overrides``: as for :class:`DriveEnv`, the same for all. Autoreset: the next step after an
    episode ends resets that environment (gymnasium's NEXT_STEP mode; its action is ignored, its
    reward 0). ``reset(seed=s)`` seeds environment ``i`` with ``s + i``; ``reset(seed=[s0, s1, ...])``
    gives each its own. ``reset(options=...)`` applies the same options to every environment.
    """

    metadata = {"render_modes": ["rgb_array"], "autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int = 1, world=None, rig=None, config: DriveConfig | None = None,
                 render_mode: str | None = None, *, worlds=None, **overrides):
        if not (isinstance(num_envs, int) and num_envs >= 1):
            raise InputError(f"num_envs = {num_envs!r}", "give a whole number >= 1")
        if world is not None and worlds is not None:
            raise InputError("both world and worlds given", "give one world, or a list as worlds")
        c = DriveConfig.with_overrides(config, overrides)
        sources = list(worlds) if worlds is not None else [world]
        if not sources:
            raise InputError("worlds is empty", "give at least one world")
        # One simulator (one upload of the world, one renderer) per distinct world.
        made: dict = {}
        shared = []
        for source in sources:
            key = str(Path(source).resolve()) if isinstance(source, (str, Path)) else id(source)
            if key not in made:
                w = load_world(source, c.device)
                sim = Simulator(w, resolve_rig(rig, w, c), device=c.device)
                made[key] = (sim, ReferencePath.from_simulator(sim))
            shared.append(made[key])
        self.envs = [DriveEnv(config=c, render_mode=render_mode, simulator=shared[i % len(shared)][0],
                              reference_path=shared[i % len(shared)][1]) for i in range(num_envs)]
        self.num_envs = num_envs
        self.render_mode = render_mode
        self.config = c
        first = self.envs[0]
        for env in self.envs[1:]:
            if env.observation_space != first.observation_space:
                raise InputError("the worlds give different observation spaces", "use one rig for every world")
        self.single_observation_space = first.observation_space
        self.single_action_space = first.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.metadata = dict(self.metadata, render_fps=first.metadata["render_fps"])
        self._needs_reset = np.zeros(num_envs, dtype=bool)

    def reset(self, *, seed: int | list[int] | None = None, options: dict | None = None):
        per_env = isinstance(seed, (list, tuple))
        super().reset(seed=None if per_env else seed)
        seeds = list(seed) if per_env else [None if seed is None else seed + i for i in range(self.num_envs)]
        if len(seeds) != self.num_envs:
            raise InputError(f"{len(seeds)} seeds for {self.num_envs} environments", "give one seed per environment")
        for env, s in zip(self.envs, seeds):
            gym.Env.reset(env, seed=s)
            env._begin(options)
        self._needs_reset[:] = False
        infos: dict = {}
        for i, env in enumerate(self.envs):
            infos = self._add_info(infos, env._info(), i)
        return self._observe(), infos

    def step(self, actions):
        actions = np.asarray(actions)
        rewards = np.zeros(self.num_envs, dtype=np.float64)
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = np.zeros(self.num_envs, dtype=bool)
        results = []
        for i, env in enumerate(self.envs):
            if self._needs_reset[i]:
                env._begin(None)
                results.append(None)
            else:
                rewards[i], terminated[i], truncated[i], terms = env._act(actions[i])
                results.append(terms)
        self._needs_reset = terminated | truncated
        obs = self._observe()
        infos: dict = {}
        for i, env in enumerate(self.envs):
            infos = self._add_info(infos, env._info(results[i]), i)
        return obs, rewards, terminated, truncated, infos

    def _observe(self) -> dict:
        requests, owners = [], []
        for i, env in enumerate(self.envs):
            r = env._requests()
            requests.extend(r)
            owners.append(len(r))
        rendered = render_requests(requests)
        per_env, at = [], 0
        for env, n in zip(self.envs, owners):
            per_env.append(env._observation(rendered[at:at + n]))
            at += n
        return {key: np.stack([o[key] for o in per_env]) for key in self.single_observation_space.spaces}

    def render(self):
        if self.render_mode != "rgb_array":
            return None
        return tuple(env.render() for env in self.envs)

    def close_extras(self, **kwargs):
        self.envs = []


__all__ = ["DriveConfig", "DriveEnv", "DriveVectorEnv", "RewardWeights", "default_rig", "render_requests"]
