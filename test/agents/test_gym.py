"""inspatio_ros/Drive-v0 on the embedded default world at 160x90, on the CPU.

The quick loop keeps the checker, the seed, the reset options and the refusals; episodes driven
to the end, the vector form and gymnasium.make are marked slow."""
import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import inspatio_ros.gym  # noqa: F401  (registers the environment)
from inspatio_ros.agents.controllers import BaselineController
from inspatio_ros.agents.gym_env import DriveConfig, DriveEnv, DriveVectorEnv, RewardWeights
from inspatio_ros.errors import InputError
from inspatio_ros.world import World

ALL = ("image", "depth", "points", "state")


@pytest.fixture(scope="module")
def world():
    from inspatio_ros.demo import ensure_default_world

    return World.load(ensure_default_world(device="cpu", verbose=False))


def make(world, **overrides):
    return DriveEnv(world, device="cpu", **overrides)


# What the quick tests share (an environment costs ~1.5 s to make on the VM): every observation
# kind, starts drawn over 2 s of the recording and 2 m across the road.
SHARED = dict(observe=ALL, lateral_offset=(-1.0, 1.0), start_time=(0.0, 2.0), render_mode="rgb_array")


@pytest.fixture(scope="module")
def shared_env(world):
    return make(world, **SHARED)


def assert_same_obs(a: dict, b: dict):
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_passes_gymnasiums_env_checker(shared_env):
    env = shared_env
    check_env(env, skip_render_check=False)
    obs, _ = env.reset(seed=3)
    assert obs["front_image"].shape == (90, 160, 3) and obs["front_image"].std() > 10      # a real view
    assert (obs["front_depth"] > 0).mean() > 0.5
    assert env.render().shape == (90, 160, 3)


def test_same_seed_same_observations_and_rewards(world, shared_env):
    """Two environments (the shared one, used by other tests before, and a fresh one): one seed,
    one action sequence, identical observations and rewards."""
    actions = np.random.default_rng(5).uniform([-0.3, -1.0], [0.3, 3.0], size=(12, 2)).astype(np.float32)
    runs = []
    for env in (shared_env, make(world, **SHARED)):
        obs, info = env.reset(seed=42)
        trace = [(obs, 0.0)]
        for a in actions:
            obs, reward, *_ = env.step(a)
            trace.append((obs, reward))
        runs.append(trace)
    for (obs_a, r_a), (obs_b, r_b) in zip(*runs):
        assert_same_obs(obs_a, obs_b)
        assert r_a == r_b
    # Another seed starts elsewhere: the draw really comes from the seed.
    assert env.reset(seed=1)[0]["state"][3] != env.reset(seed=2)[0]["state"][3]


def test_reset_options_place_the_ego_and_the_reward_follows_the_path(world, shared_env):
    env = shared_env
    _, info = env.reset(seed=0, options={"start_time": 1.0, "lateral_offset": 1.0, "heading_offset": 0.0})
    assert info["recording_time"] == pytest.approx(env.session.path.start + 1.0)
    assert info["cross_track_m"] == pytest.approx(1.0, abs=0.05)              # 1 m left of the path
    start = info["progress_m"]
    for _ in range(10):                                                        # 1 s accelerating at 2 m/s^2
        obs, reward, terminated, truncated, info = env.step(np.array([0.0, 2.0], np.float32))
    assert info["speed"] == pytest.approx(2.0, abs=1e-6)
    assert info["progress_m"] - start == pytest.approx(1.0, abs=0.1)          # s = a t^2 / 2
    assert obs["state"][0] == pytest.approx(2.0, abs=1e-5)
    assert not (terminated or truncated) and reward > 0
    with pytest.raises(InputError, match="reset option"):
        env.reset(options={"lateral_ofset": 1.0})
    with pytest.raises(InputError, match="outside the recording"):
        env.reset(options={"start_time": 1e6})
    fresh = make(world, observe=("state",), image_size=(np.int64(32), np.int64(18)))   # numpy numbers are fine
    with pytest.raises(gymnasium.error.ResetNeeded):
        fresh.step(np.zeros(2, np.float32))
    fresh.reset(seed=0, options={"lateral_offset": np.float32(0.25)})
    env.reset(seed=0)
    with pytest.raises(InputError, match="action"):
        env.step(np.array([np.nan, 0.0], np.float32))


@pytest.mark.slow
def test_leaving_the_corridor_terminates_and_the_time_limit_truncates(world):
    weights = RewardWeights(leave_corridor=7.0)
    env = make(world, observe=("state",), corridor_half_width=1.0, reward=weights)
    env.reset(seed=0, options={"lateral_offset": 0.0, "heading_offset": 0.0})
    for _ in range(100):
        _, reward, terminated, truncated, info = env.step(np.array([0.6, 3.0], np.float32))   # hard left
        if terminated or truncated:
            break
    assert terminated and not truncated
    assert abs(info["cross_track_m"]) > 1.0 and info["reward_terms"]["leave_corridor"] == -7.0
    env = make(world, observe=("state",), time_limit=0.5, action_type="twist")
    env.reset(seed=0)
    flags = [env.step(np.array([1.0, 0.0], np.float32))[2:4] for _ in range(5)]
    assert flags == [(False, False)] * 4 + [(False, True)]


@pytest.mark.slow
def test_the_baseline_controller_drives_the_recorded_road_within_half_a_metre(world):
    env = make(world, observe=("state",), time_limit=15.0)
    controller = BaselineController(env.path, cruise_speed=6.0, max_accel=3.0, max_decel=8.0)
    env.reset(seed=0, options={"start_time": 0.0, "lateral_offset": 0.3, "heading_offset": 0.0})
    worst, distance = 0.0, 0.0
    for _ in range(150):
        cmd = controller(env.session.ego, env.dt)
        _, _, terminated, truncated, info = env.step(np.array([cmd.steering, cmd.acceleration], np.float32))
        worst = max(worst, abs(info["cross_track_m"]))
        if terminated or truncated:
            break
    # The default world's road is ~31 m: driven to its end (finish reward, episode over) on the road.
    assert terminated and info["reward_terms"]["finish"] > 0, info
    assert info["progress_m"] >= env.path.length - env.config.finish_margin
    assert worst < 0.5


@pytest.mark.slow
def test_the_vector_env_equals_the_single_envs_and_renders_once_per_step(world, street_world):
    """Four environments on one world and two on another: per step one render call per world, and
    every observation, reward and flag equal to the single environment's with the same seed."""
    overrides = dict(observe=ALL, device="cpu", lateral_offset=(-1.0, 1.0), start_time=(0.0, 3.0),
                     time_limit=0.4, rig=None)
    other = World.load(street_world)
    vec = DriveVectorEnv(6, worlds=[world, world, world, other, world, other], **overrides)
    assert vec.envs[0].sim is vec.envs[1].sim and vec.envs[0].sim is not vec.envs[3].sim
    singles = [DriveEnv([world, world, world, other, world, other][i], **overrides) for i in range(6)]
    calls = {}
    for env in vec.envs[:4]:
        renderer = env.sim.renderer
        if id(renderer) not in calls:
            calls[id(renderer)] = 0
            original = renderer.render

            def counted(cams, t=None, _original=original, _key=id(renderer)):
                calls[_key] += 1
                return _original(cams, t)
            renderer.render = counted
    obs, _ = vec.reset(seed=10)
    assert sorted(calls.values()) == [1, 1]
    single_obs = [env.reset(seed=10 + i)[0] for i, env in enumerate(singles)]
    actions = np.random.default_rng(1).uniform([-0.2, 0.0], [0.2, 3.0], size=(6, 6, 2)).astype(np.float32)
    done = np.zeros(6, dtype=bool)
    autoresets = 0
    for step, batch in enumerate(actions):
        for i, env in enumerate(singles):
            assert_same_obs({k: v[i] for k, v in obs.items()}, single_obs[i])
        obs, rewards, terminated, truncated, infos = vec.step(batch)
        assert sorted(calls.values()) == [step + 2, step + 2]
        for i, env in enumerate(singles):
            if done[i]:         # NEXT_STEP autoreset: the step after an episode's end resets it
                single_obs[i], _ = env.reset()
                assert (rewards[i], terminated[i], truncated[i]) == (0.0, False, False)
                autoresets += 1
                continue
            single_obs[i], r, term, trunc, _ = env.step(batch[i])
            assert (rewards[i], terminated[i], truncated[i]) == (r, term, trunc)
        done = terminated | truncated
    assert autoresets >= 6          # the 0.4 s time limit ends every episode by the 4th step


@pytest.mark.slow
def test_registered_and_made_by_gymnasium(world):
    env = gymnasium.make("inspatio_ros/Drive-v0", world=world, device="cpu", observe=("image", "state"))
    obs, _ = env.reset(seed=0)
    assert set(obs) == {"front_image", "state"}
    vec = gymnasium.make_vec("inspatio_ros/Drive-v0", num_envs=2, vectorization_mode="vector_entry_point",
                             world=world, device="cpu")
    obs, _ = vec.reset(seed=0)
    assert obs["front_image"].shape == (2, 90, 160, 3)
    obs, *_ = vec.step(vec.action_space.sample())
    assert obs["front_image"].shape == (2, 90, 160, 3)
    listed, _ = vec.reset(seed=[0, 1])                      # a seed per environment: the same as seed=0
    again, _ = vec.reset(seed=0)
    assert_same_obs(listed, again)
    with pytest.raises(InputError, match="3 seeds for 2"):
        vec.reset(seed=[0, 1, 2])


@pytest.mark.parametrize("overrides, match", [
    ({"actiontype": "twist"}, "did you mean 'action_type'"),
    ({"action_type": "wheels"}, "action_type"),
    ({"observe": ("image", "lidar")}, "observe"),
    ({"corridor_half_width": -1.0}, "corridor_half_width"),
    ({"lateral_offset": (1.0, -1.0)}, "low > high"),
    ({"image_size": 160}, "image_size"),
    ({"image_size": (0, 90)}, "image_size"),
])
def test_bad_options_are_refused(overrides, match):
    with pytest.raises(InputError, match=match):
        DriveConfig.with_overrides(None, overrides)


@pytest.mark.slow
def test_the_baseline_follows_a_curved_street_within_half_a_metre(tmp_path):
    """An S-curved synthetic street (radius 30 m, the heading turns ~2 rad): the baseline drives all
    of it from the recorded start and never strays 0.5 m from the recorded path."""
    from inspatio_ros.ingest.build import build_world
    from inspatio_ros.synth.generate import generate

    scene = generate("street", tmp_path / "scene", size=(96, 54), frames=17, moving_cars=0, seed=3, fps=2.0,
                     params={"curve_radius": 30.0})
    env = DriveEnv(build_world(scene, holdout=0, device="cpu"), device="cpu", observe=("state",), time_limit=30.0)
    turn = np.ptp(np.unwrap(env.path.segment_heading))
    assert turn > 1.0 and env.path.length > 50.0
    controller = BaselineController(env.path, cruise_speed=8.0)
    env.reset(seed=0, options={"start_time": 0.0, "lateral_offset": 0.0, "heading_offset": 0.0})
    worst, done = 0.0, False
    while not done:
        cmd = controller(env.ego, env.dt)
        _, _, terminated, truncated, info = env.step([cmd.steering, cmd.acceleration])
        worst = max(worst, abs(info["cross_track_m"]))
        done = terminated or truncated
    assert terminated and info["reward_terms"]["finish"] > 0, info
    assert worst < 0.5
