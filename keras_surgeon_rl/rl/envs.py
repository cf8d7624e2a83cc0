"""Adapters from gymnasium environments to the API keras-rl2 expects.

keras-rl2 calls ``reset() -> observation`` and ``step(action) -> (observation, reward, done, info)``;
gymnasium (and gym >= 0.26) return ``(observation, info)`` and ``(observation, reward, terminated,
truncated, info)``. :class:`GymnasiumAdapter` bridges the two, with ``done = terminated or truncated``.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class GymnasiumAdapter:
    """Wrap a gymnasium environment for keras-rl2.

    Args:
        env: a gymnasium environment, or its id (``"CartPole-v1"``), made with ``gymnasium.make``.
        seed: seed of the first ``reset``; later resets continue the environment's own random stream.

    Example:
        >>> env = GymnasiumAdapter("CartPole-v1", seed=0)
        >>> obs = env.reset()
        >>> obs, reward, done, info = env.step(0)
    """

    def __init__(self, env: Any, seed: int | None = None):
        if isinstance(env, str):
            import gymnasium

            env = gymnasium.make(env)
        self.env = env
        self._seed = seed
        self.action_space = env.action_space
        self.observation_space = env.observation_space
        self.reward_range = getattr(env, "reward_range", (-np.inf, np.inf))

    def reset(self, **kwargs):
        if self._seed is not None:
            kwargs.setdefault("seed", self._seed)
            self._seed = None
        observation, _info = self.env.reset(**kwargs)
        return observation

    def step(self, action):
        observation, reward, terminated, truncated, info = self.env.step(action)
        info = dict(info)
        info.pop("episode", None)  # keras-rl2 averages numeric info values; keep only flat ones
        return observation, float(reward), bool(terminated or truncated), info

    def render(self, mode: str = "human"):
        return self.env.render()

    def close(self):
        self.env.close()

    def seed(self, seed: int | None = None):
        self._seed = seed
        return [seed]

    def __getattr__(self, name):
        return getattr(self.env, name)
