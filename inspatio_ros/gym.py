"""Importing this module registers ``inspatio_ros/Drive-v0`` with Gymnasium::

    import gymnasium
    import inspatio_ros.gym  # noqa: F401  (registers the environment)

    env = gymnasium.make("inspatio_ros/Drive-v0", world="street.safetensors", observe=("image", "state"))
    envs = gymnasium.make_vec("inspatio_ros/Drive-v0", num_envs=8, vectorization_mode="vector_entry_point")

The environment, its spaces, reward and options: :mod:`inspatio_ros.agents.gym_env`.
"""
from __future__ import annotations

import gymnasium

from .agents.gym_env import DriveConfig, DriveEnv, DriveVectorEnv, RewardWeights

ENV_ID = "inspatio_ros/Drive-v0"

if ENV_ID not in gymnasium.registry:
    gymnasium.register(ENV_ID, entry_point="inspatio_ros.agents.gym_env:DriveEnv",
                       vector_entry_point="inspatio_ros.agents.gym_env:DriveVectorEnv")

__all__ = ["ENV_ID", "DriveConfig", "DriveEnv", "DriveVectorEnv", "RewardWeights"]
