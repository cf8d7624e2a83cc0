"""Adapters from gymnasium environments to the API keras-rl2 expects, and ID-based subsets.

keras-rl2 calls ``reset() -> observation`` and ``step(action) -> (observation, reward, done, info)``;
gymnasium (and gym >= 0.26) return ``(observation, info)`` and ``(observation, reward, terminated,
truncated, info)``. :class:`GymnasiumAdapter` bridges the two, with ``done = terminated or truncated``.

Observation features and discrete actions are named by **ID** (strings such as ``"theta_dot"`` or
``"torque+1"``), the same IDs the surgery uses to name the input and output units of a network.
:class:`ObservationSubset` exposes only some observation features and :class:`ActionSubset` only some
actions, so an agent can first learn on a reduced problem and later, after surgery on its network,
on the full one. :func:`make_env` composes the three.
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import numpy as np

logger = logging.getLogger(__name__)

from keras_surgeon_rl.env_ids import (  # noqa: F401  (re-exported: the IDs live in a framework-free module)
    ACROBOT_ACTIONS,
    ACROBOT_FEATURES,
    CARTPOLE_ACTIONS,
    CARTPOLE_FEATURES,
    LUNARLANDER_ACTIONS,
    LUNARLANDER_FEATURES,
    MINATAR_ACTIONS,
    MINATAR_CHANNELS,
    MINATAR_MINIMAL_ACTIONS,
    PENDULUM_FEATURES,
    _KNOWN_ENVS,
    _register_minatar,
)


class GymnasiumAdapter:
    """Wrap a gymnasium (or gym >= 0.26) environment for keras-rl2.

    ``reset()`` returns only the observation and ``step(action)`` returns ``(observation, reward,
    done, info)`` with ``done = terminated or truncated``. Any object with the gymnasium API works
    (``reset(seed=...) -> (observation, info)``, ``step -> 5-tuple``), so gym >= 0.26 environments
    do too; gym itself is never imported.

    Args:
        env: a gymnasium (or gym >= 0.26) environment, or its id (``"CartPole-v1"``), made with
            ``gymnasium.make``.
        seed: seed of the first ``reset``; it also seeds ``env.action_space`` then, so
            ``action_space.sample()`` (keras-rl2's random start steps) is reproducible too. Later
            resets continue the environment's own random stream. ``None``: not seeded.

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
        """Start an episode.

        Args:
            **kwargs: passed to the environment's ``reset`` (``seed``, ``options``). A ``seed``
                given here also seeds the action space.

        Returns:
            The first observation of the episode.

        Raises:
            TypeError: the environment does not follow the gymnasium / gym >= 0.26 API.
        """
        if self._seed is not None:
            kwargs.setdefault("seed", self._seed)
            self._seed = None
        if kwargs.get("seed") is not None:
            self.env.action_space.seed(kwargs["seed"])
        result = self.env.reset(**kwargs)
        if not (isinstance(result, tuple) and len(result) == 2 and isinstance(result[1], dict)):
            raise TypeError(
                f"{type(self.env).__name__}.reset() must return (observation, info) as in gymnasium "
                "and gym >= 0.26; older gym environments (reset() -> observation) are not supported."
            )
        observation, _info = result
        return observation

    def step(self, action):
        """Take one step.

        Args:
            action: an action of ``action_space``.

        Returns:
            ``(observation, reward, done, info)``: ``reward`` a float, ``done`` is ``terminated or
            truncated``, ``info`` a copy of the environment's info without its ``"episode"`` entry.

        Raises:
            TypeError: ``step`` does not return the 5-tuple of gymnasium / gym >= 0.26.
        """
        result = self.env.step(action)
        if len(result) != 5:
            raise TypeError(
                f"{type(self.env).__name__}.step() returned {len(result)} values; expected "
                "(observation, reward, terminated, truncated, info) as in gymnasium and gym >= 0.26."
            )
        observation, reward, terminated, truncated, info = result
        info = dict(info)
        info.pop("episode", None)  # keras-rl2 averages numeric info values; keep only flat ones
        return observation, float(reward), bool(terminated or truncated), info

    def render(self, mode: str = "human"):
        return self.env.render()

    def close(self):
        self.env.close()

    def seed(self, seed: int | None = None):
        """Seed the next ``reset`` (and the action space then), as in the old gym API.

        Returns:
            ``[seed]``.
        """
        self._seed = seed
        return [seed]

    def __getattr__(self, name):
        # Guard against recursion when "env" is not set yet (copy, pickle).
        if name == "env" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.env, name)

    def __repr__(self):
        return f"{type(self).__name__}({self.env!r})"


def _as_old_api(env: Any) -> Any:
    """``env`` for keras-rl2: ids and gymnasium environments are wrapped in a GymnasiumAdapter."""
    if isinstance(env, str):
        return GymnasiumAdapter(env)
    try:
        import gymnasium
    except ImportError:  # pragma: no cover - gymnasium is part of the "rl" extra
        return env
    if isinstance(env, gymnasium.Env):
        logger.debug("wrapping %r in a GymnasiumAdapter", env)
        return GymnasiumAdapter(env)
    return env


def _select(kind: str, all_ids: Sequence[str], keep: Sequence[str]) -> list[int]:
    """Positions of ``keep`` in ``all_ids``, validating both."""
    all_ids = list(all_ids)
    seen: set[str] = set()
    for id_ in all_ids:
        if id_ in seen:
            raise ValueError(f"duplicate {kind} ID {id_!r} in the environment's {kind} IDs {all_ids}")
        seen.add(id_)
    if isinstance(keep, str):
        raise TypeError(f"keep must be a sequence of {kind} IDs, not the string {keep!r}")
    keep = list(keep)
    if not keep:
        raise ValueError(f"keep at least one {kind} ID; valid IDs: {all_ids}")
    positions = []
    for id_ in keep:
        if id_ not in seen:
            raise ValueError(f"unknown {kind} ID {id_!r}; valid IDs: {all_ids}")
        position = all_ids.index(id_)
        if position in positions:
            raise ValueError(f"duplicate {kind} ID {id_!r} in keep {keep}; valid IDs: {all_ids}")
        positions.append(position)
    return positions


class _Wrapper:
    """Old-API (keras-rl2) wrapper: delegates everything it does not override to ``env``."""

    def __init__(self, env: Any):
        self.env = _as_old_api(env)
        self.observation_space = self.env.observation_space
        self.action_space = self.env.action_space
        self.reward_range = getattr(self.env, "reward_range", (-np.inf, np.inf))

    def reset(self, **kwargs):
        return self.env.reset(**kwargs)

    def step(self, action):
        return self.env.step(action)

    def render(self, mode: str = "human"):
        return self.env.render(mode=mode)

    def close(self):
        self.env.close()

    def seed(self, seed: int | None = None):
        return self.env.seed(seed)

    def __getattr__(self, name):
        if name == "env" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.env, name)

    def __repr__(self):
        return f"{type(self).__name__}({self.env!r})"


class ObservationSubset(_Wrapper):
    """Expose only some observation features of an environment, chosen by ID.

    The wrapped environment keeps running on its full state; the agent sees only the kept features,
    in the order of ``keep``. Features are the entries of a vector observation, or the channels (the
    last axis) of an image one, such as MinAtar's.

    Args:
        env: an environment with keras-rl2's (old gym) API, such as a :class:`GymnasiumAdapter` or
            another subset wrapper, and a ``Box`` observation space. A gymnasium environment or
            id is wrapped in a :class:`GymnasiumAdapter` first.
        feature_ids: IDs of all features of the environment's observation (its last axis), in order,
            for instance :data:`CARTPOLE_FEATURES` or ``MINATAR_CHANNELS["Breakout"]``.
        keep: the IDs to expose, in the order the agent sees them.

    Attributes:
        feature_ids: the kept IDs (``list(keep)``).
        all_feature_ids: ``list(feature_ids)``.
        indices: positions of the kept features in the full observation vector.
        observation_space: a gymnasium ``Box`` with the kept features' bounds.

    Raises:
        ValueError: ``feature_ids`` does not match the observation space, or ``keep`` is empty or
            names an unknown or duplicate ID (the message lists the valid IDs).

    Example:
        >>> env = ObservationSubset(GymnasiumAdapter("CartPole-v1", seed=0), CARTPOLE_FEATURES,
        ...                         ["x_dot", "theta"])
        >>> env.reset().shape
        (2,)
        >>> env.feature_ids
        ['x_dot', 'theta']
    """

    def __init__(self, env: Any, feature_ids: Sequence[str], keep: Sequence[str]):
        super().__init__(env)
        space = self.env.observation_space
        shape = getattr(space, "shape", None)
        if not (hasattr(space, "low") and hasattr(space, "high") and shape):
            raise ValueError(f"ObservationSubset needs a Box observation space, got {space}")
        feature_ids = list(feature_ids)
        if len(feature_ids) != shape[-1]:
            raise ValueError(
                f"{len(feature_ids)} feature IDs {feature_ids} for an observation of {shape[-1]} features "
                f"(its last axis, shape {shape})"
            )
        self.indices = _select("feature", feature_ids, keep)
        self.all_feature_ids = feature_ids
        self.feature_ids = list(keep)
        import gymnasium

        low = np.asarray(space.low)[..., self.indices]
        high = np.asarray(space.high)[..., self.indices]
        self.observation_space = gymnasium.spaces.Box(low=low, high=high, dtype=space.dtype)
        self._index = np.asarray(self.indices, dtype=np.intp)
        logger.debug("observation subset %s of %s", self.feature_ids, feature_ids)

    def observation(self, observation):
        """The kept features of a full observation, as a new array."""
        if isinstance(observation, tuple):
            raise TypeError(
                "ObservationSubset got a tuple observation: the wrapped environment seems to follow the "
                "gymnasium API (reset() -> (observation, info)); wrap it in GymnasiumAdapter first."
            )
        return np.asarray(observation)[..., self._index]

    def reset(self, **kwargs):
        """Start an episode; returns the kept features of the first observation."""
        return self.observation(self.env.reset(**kwargs))

    def step(self, action):
        """Take one step; returns ``(kept features, reward, done, info)``."""
        observation, reward, done, info = self.env.step(action)
        return self.observation(observation), reward, done, info


class ActionSubset(_Wrapper):
    """Expose only some actions of a discrete action space, chosen by ID.

    Agent action ``i`` is the environment's action ``keep[i]``.

    Args:
        env: an environment with keras-rl2's (old gym) API, such as a :class:`GymnasiumAdapter` or
            another subset wrapper, and a ``Discrete`` action space. A gymnasium environment or id
            is wrapped in a :class:`GymnasiumAdapter` first.
        action_ids: IDs of all actions of the environment, in its order, for instance
            :data:`ACROBOT_ACTIONS`.
        keep: the IDs to expose, in the order of the agent's actions.

    Attributes:
        action_ids: the kept IDs (``list(keep)``).
        all_action_ids: ``list(action_ids)``.
        env_actions: the environment action of each agent action.
        action_space: ``gymnasium.spaces.Discrete(len(keep))``. It has its own random stream: seed it
            with :meth:`seed`, ``reset(seed=...)`` or :func:`make_env`'s ``seed``.

    Raises:
        ValueError: ``action_ids`` does not match the action space, or ``keep`` is empty or names
            an unknown or duplicate ID (the message lists the valid IDs).

    Example:
        >>> env = ActionSubset(GymnasiumAdapter("Acrobot-v1", seed=0), ACROBOT_ACTIONS,
        ...                    ["torque+1", "torque0"])
        >>> env.action_space
        Discrete(2)
        >>> env.env_actions  # agent action 0 -> torque +1, 1 -> torque 0
        [2, 1]
    """

    def __init__(self, env: Any, action_ids: Sequence[str], keep: Sequence[str]):
        super().__init__(env)
        space = self.env.action_space
        if not hasattr(space, "n") or getattr(space, "shape", ()) not in ((), None):
            raise ValueError(f"ActionSubset needs a Discrete action space, got {space}")
        action_ids = list(action_ids)
        if len(action_ids) != int(space.n):
            raise ValueError(f"{len(action_ids)} action IDs {action_ids} for {int(space.n)} actions")
        start = int(getattr(space, "start", 0))
        self.env_actions = [start + i for i in _select("action", action_ids, keep)]
        self.all_action_ids = action_ids
        self.action_ids = list(keep)
        import gymnasium

        self.action_space = gymnasium.spaces.Discrete(len(self.action_ids))
        logger.debug("action subset %s of %s", self.action_ids, action_ids)

    def action(self, action) -> int:
        """The environment action of agent action ``action``."""
        index = int(action)
        if not 0 <= index < len(self.env_actions):
            raise ValueError(f"action {action!r} outside 0..{len(self.env_actions) - 1} ({self.action_ids})")
        return self.env_actions[index]

    def reset(self, **kwargs):
        """Start an episode; a ``seed`` given here also seeds this wrapper's action space."""
        if kwargs.get("seed") is not None:
            self.action_space.seed(kwargs["seed"])
        return self.env.reset(**kwargs)

    def step(self, action):
        """Take agent action ``action`` (an index into ``keep``)."""
        return self.env.step(self.action(action))

    def seed(self, seed: int | None = None):
        """Seed the next ``reset`` of the wrapped environment and this wrapper's action space."""
        if seed is not None:
            self.action_space.seed(seed)
        return self.env.seed(seed)


def make_env(
    env_id: Any,
    seed: int | None = None,
    features: Sequence[str] | None = None,
    actions: Sequence[str] | None = None,
    **make_kwargs: Any,
):
    """Make a keras-rl2-ready environment exposing the chosen features and actions.

    Composes :class:`GymnasiumAdapter`, then :class:`ObservationSubset` (if ``features``), then
    :class:`ActionSubset` (if ``actions``).

    Args:
        env_id: a gymnasium id, one of ``CartPole-v0``/``-v1``, ``Acrobot-v1``,
            ``LunarLander-v3`` (also ``-v2`` and the continuous variants, features only),
            ``Pendulum-v1`` (features only) when
            ``features`` or ``actions`` are given; or a gymnasium environment with such a
            ``spec.id``. Without subsets any id works.
        seed: seed of the first reset and of the action spaces; ``None``: not seeded.
        features: observation feature IDs to keep, in order (see :data:`CARTPOLE_FEATURES`,
            :data:`ACROBOT_FEATURES`, :data:`LUNARLANDER_FEATURES`, :data:`PENDULUM_FEATURES`); ``None``: all,
            unwrapped.
        actions: action IDs to keep, in order (see :data:`CARTPOLE_ACTIONS`,
            :data:`ACROBOT_ACTIONS`, :data:`LUNARLANDER_ACTIONS`); ``None``: all, unwrapped.
        **make_kwargs: passed to ``gymnasium.make`` when ``env_id`` is a string (for instance
            ``max_episode_steps=200``).

    Returns:
        The outermost wrapper: an :class:`ActionSubset`, :class:`ObservationSubset` or
        :class:`GymnasiumAdapter`.

    Raises:
        ValueError: subsets are asked of an environment whose IDs are unknown, or unknown or
            duplicate IDs are given.

    Example:
        >>> env = make_env("Acrobot-v1", seed=0, features=["cos_theta1", "sin_theta1"],
        ...                actions=["torque-1", "torque+1"])
        >>> env.observation_space.shape, int(env.action_space.n)
        ((2,), 2)
    """
    if isinstance(env_id, str):
        import gymnasium

        if env_id.startswith("MinAtar/"):
            _register_minatar()
        name = env_id
        gym_env = gymnasium.make(env_id, **make_kwargs)
    else:
        if make_kwargs:
            raise TypeError(f"keyword arguments {sorted(make_kwargs)} need env_id to be a string")
        spec = getattr(env_id, "spec", None)
        name = getattr(spec, "id", None) or type(env_id).__name__
        gym_env = env_id
    env = GymnasiumAdapter(gym_env, seed=seed)
    if features is None and actions is None:
        return env
    if name not in _KNOWN_ENVS:
        raise ValueError(
            f"no feature/action IDs known for {name!r}; known environments: {sorted(_KNOWN_ENVS)}. "
            "Wrap it in ObservationSubset/ActionSubset with your own IDs instead."
        )
    feature_ids, action_ids = _KNOWN_ENVS[name]
    if features is not None:
        env = ObservationSubset(env, feature_ids, features)
    if actions is not None:
        if action_ids is None:
            raise ValueError(f"{name!r} has no discrete actions to choose from")
        env = ActionSubset(env, action_ids, actions)
        if seed is not None:
            env.action_space.seed(seed)
    logger.debug("made %s: features %s, actions %s", name, features, actions)
    return env
