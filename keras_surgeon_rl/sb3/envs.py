"""Gymnasium environments with some observation features or actions, chosen by ID (for SB3 agents).

The same IDs as :mod:`keras_surgeon_rl.rl.envs` (:mod:`keras_surgeon_rl.env_ids`), with gymnasium's
own API, so an SB3 agent can learn on a reduced problem and, after :func:`keras_surgeon_rl.sb3.transplant`,
on the full one::

    old_env = make_env("Acrobot-v1", actions=["torque+1", "torque0"])
    new_env = make_env("Acrobot-v1")
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from keras_surgeon_rl.env_ids import _KNOWN_ENVS, _register_minatar


def _positions(kind: str, all_ids: Sequence[str], keep: Sequence[str]) -> list[int]:
    if isinstance(keep, str) or not keep:
        raise ValueError(f"give a non-empty list of {kind} IDs; valid IDs: {list(all_ids)}")
    unknown = [k for k in keep if k not in all_ids]
    if unknown:
        raise ValueError(f"unknown {kind} IDs {unknown}; valid IDs: {list(all_ids)}")
    if len(set(keep)) != len(keep):
        raise ValueError(f"duplicate {kind} IDs in {list(keep)}")
    return [list(all_ids).index(k) for k in keep]


def make_env(env_id: str, features: Sequence[str] | None = None, actions: Sequence[str] | None = None,
             **make_kwargs: Any):
    """``gymnasium.make(env_id)`` exposing only ``features`` (the last observation axis) and ``actions``, by ID.

    Args:
        env_id: a gymnasium id whose IDs are known (CartPole, Acrobot, LunarLander, Pendulum, MinAtar).
        features: observation feature IDs to keep, in order; ``None``: all.
        actions: discrete action IDs to keep, in order; ``None``: all.
        **make_kwargs: passed to ``gymnasium.make``.

    Raises:
        ValueError: unknown environment or IDs.
    """
    import gymnasium
    from gymnasium import spaces

    if env_id.startswith("MinAtar/"):
        _register_minatar()
    env = gymnasium.make(env_id, **make_kwargs)
    if features is None and actions is None:
        return env
    if env_id not in _KNOWN_ENVS:
        raise ValueError(f"no feature/action IDs known for {env_id!r}; known: {sorted(_KNOWN_ENVS)}")
    feature_ids, action_ids = _KNOWN_ENVS[env_id]
    if features is not None:
        index = np.asarray(_positions("feature", feature_ids, features))
        box = env.observation_space
        space = spaces.Box(low=np.asarray(box.low)[..., index], high=np.asarray(box.high)[..., index], dtype=box.dtype)
        env = gymnasium.wrappers.TransformObservation(env, lambda o: np.asarray(o)[..., index], space)
    if actions is not None:
        if action_ids is None:
            raise ValueError(f"{env_id!r} has no discrete actions to choose from")
        chosen = _positions("action", action_ids, actions)

        class _Actions(gymnasium.ActionWrapper):
            def __init__(self, inner):
                super().__init__(inner)
                self.action_space = spaces.Discrete(len(chosen))

            def action(self, action):
                return chosen[int(action)]

        env = _Actions(env)
    return env
