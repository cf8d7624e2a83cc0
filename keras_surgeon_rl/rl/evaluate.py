"""Greedy evaluation of a DQN or DDPG agent on fixed start states: ``greedy_returns(agent, env_factory, seeds)``.

A training return is measured under exploration (Boltzmann, ε-greedy) and from whatever start
states the training episodes happened to get, so it cannot tell "the same function" apart from
noise. This module measures the policy itself: every episode starts from a seeded reset (the same
seeds for every agent compared), and the agent acts greedily (argmax of its Q-values; a
``DDPGAgent`` takes its actor's deterministic action, without exploration noise) until the
environment ends the episode (termination, or its own time limit). Nothing here draws from the
global random generators or changes the agent, so evaluating in the middle of training leaves the
training run exactly as it would have been.

:class:`GreedyEvaluation` is a keras-rl2 callback that runs the evaluation every ``every`` steps
of ``agent.fit``.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Optional, Sequence

import numpy as np
from rl.callbacks import Callback

logger = logging.getLogger(__name__)

#: The first seed of :func:`eval_seeds`: far from the seeds experiments train with (0…, 10_000…).
EVAL_SEED_BASE = 1_000_000


def eval_seeds(episodes: int = 10, base: int = EVAL_SEED_BASE) -> list[int]:
    """The reset seeds of a fixed evaluation set: ``base, base + 1, …, base + episodes - 1``."""
    if episodes < 1:
        raise ValueError(f"episodes must be positive, got {episodes}")
    return [base + k for k in range(episodes)]


def _q_function(agent_or_model: Any) -> tuple[Callable[[np.ndarray], np.ndarray], Any, Optional[int]]:
    """``(q_values(state_batch), processor, window)`` of a keras-rl2 agent or a Keras Q-network.

    ``window`` is keras-rl2's ``window_length`` for an agent, ``None`` (infer from the model's
    input) for a model.
    """
    model = getattr(agent_or_model, "model", None)
    if model is not None and hasattr(agent_or_model, "compute_batch_q_values"):  # a keras-rl2 DQNAgent
        processor = getattr(agent_or_model, "processor", None)
        memory = getattr(agent_or_model, "memory", None)
        return model.predict_on_batch, processor, getattr(memory, "window_length", 1)
    if not hasattr(agent_or_model, "predict_on_batch"):
        raise TypeError(f"greedy_returns needs a keras-rl2 DQNAgent or a Keras model, got "
                        f"{type(agent_or_model).__name__}")
    return agent_or_model.predict_on_batch, None, None


def _actor_function(agent_or_model: Any, kind: str) -> Optional[tuple[Callable[[np.ndarray], np.ndarray], Any,
                                                                      Optional[int]]]:
    """``(actions(state_batch), processor, window)`` of a keras-rl2 ``DDPGAgent`` (or, ``kind="actor"``,
    a Keras actor network); ``None`` for anything evaluated by argmax of Q-values."""
    if kind not in ("auto", "q", "actor"):
        raise ValueError(f"greedy_returns(kind={kind!r}): use 'auto', 'q' (argmax of Q-values) or 'actor' "
                         "(a deterministic actor's action)")
    if kind == "q":
        return None
    actor = getattr(agent_or_model, "actor", None)
    if actor is not None and hasattr(agent_or_model, "critic_action_input"):  # a keras-rl2 DDPGAgent
        memory = getattr(agent_or_model, "memory", None)
        return (actor.predict_on_batch, getattr(agent_or_model, "processor", None),
                getattr(memory, "window_length", 1))
    if kind == "auto":
        return None
    if not hasattr(agent_or_model, "predict_on_batch"):
        raise TypeError(f"greedy_returns(kind='actor') needs a keras-rl2 DDPGAgent or a Keras actor network, got "
                        f"{type(agent_or_model).__name__}")
    return agent_or_model.predict_on_batch, None, None


def _window_of(model_input_shape: Sequence, observation: np.ndarray) -> int:
    """The frames per state a model expects: ``(batch, window, *obs)`` → window, ``(batch, *obs)`` → 0."""
    if len(model_input_shape) == observation.ndim + 2:
        return int(model_input_shape[1])
    return 0


def greedy_returns(agent_or_model: Any, env_factory: Callable[[], Any], seeds: Sequence[int], *,
                   max_steps: Optional[int] = None, kind: str = "auto") -> dict:
    """Run one greedy episode per seed and return the episodes' returns.

    The episodes run side by side (one Q-network call per step for all running episodes), each in
    its own environment from ``env_factory``, reset with its seed. The agent acts by argmax of its
    Q-values (ties: the first action, as keras-rl2's ``GreedyQPolicy``); states are built as
    keras-rl2 builds them (``window_length`` frames, zero frames before the episode's first).

    A keras-rl2 ``DDPGAgent`` (or, with ``kind="actor"``, an actor network) acts as in keras-rl2's
    test mode: the actor's output for the state, flattened, without the random process's noise,
    then the processor's ``process_action`` (if the agent has a processor), handed to ``step``.

    Args:
        agent_or_model: a keras-rl2 ``DQNAgent`` (its ``model``, ``processor`` and the memory's
            ``window_length`` are used) or a Keras Q-network (input ``(batch, window, *obs)`` as
            keras-rl2 builds it, or ``(batch, *obs)``), or a keras-rl2 ``DDPGAgent`` (its ``actor``,
            ``processor`` and the memory's ``window_length``).
        env_factory: returns a new keras-rl2-style environment (``reset(seed=...) -> observation``,
            ``step(action) -> (observation, reward, done, info)``), e.g.
            ``lambda: make_env("CartPole-v1", features=[...])``.
        seeds: reset seeds, one episode each (see :func:`eval_seeds`); the same seeds give the same
            start states for every agent.
        max_steps: stop an episode after this many steps; ``None``: only the environment ends it
            (its own time limit, e.g. 500 steps for ``CartPole-v1``).

    Returns:
        ``{"seeds": [...], "returns": [...], "lengths": [...], "mean": mean return}``: the sum
        of the environment's rewards per episode (unprocessed) and its length in steps.

    Example:
        >>> from keras_surgeon_rl.rl import make_env
        >>> from keras_surgeon_rl.rl.evaluate import eval_seeds, greedy_returns
        >>> result = greedy_returns(agent, lambda: make_env("CartPole-v1"), eval_seeds(10))
        >>> result["mean"], result["returns"]
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("greedy_returns needs at least one seed")
    actor = _actor_function(agent_or_model, kind)
    q_values, processor, window = actor if actor is not None else _q_function(agent_or_model)
    envs = [env_factory() for _ in seeds]
    try:
        first = [_processed(env.reset(seed=s), processor) for env, s in zip(envs, seeds)]
        if window is None:
            window = _window_of(agent_or_model.input_shape, first[0])
        frames = [[np.zeros_like(f)] * (window - 1) + [f] for f in first]
        returns, lengths = [0.0] * len(seeds), [0] * len(seeds)
        running = list(range(len(seeds)))
        while running:
            states = np.array([_state(frames[i], window) for i in running], dtype=np.float32)
            if processor is not None:
                states = processor.process_state_batch(states)
            if actor is None:
                actions = [int(a) for a in np.argmax(np.asarray(q_values(states)), axis=-1)]
            else:  # keras-rl2's DDPG test mode: the actor's action, flattened, then the processor's
                outputs = np.asarray(q_values(states))
                actions = [o.flatten() for o in outputs.reshape(len(running), -1)]
                if processor is not None:
                    actions = [processor.process_action(a) for a in actions]
            still = []
            for i, action in zip(running, actions):
                observation, reward, done, _info = envs[i].step(action)
                returns[i] += float(reward)
                lengths[i] += 1
                frames[i] = frames[i][1:] + [_processed(observation, processor)]
                if not (done or (max_steps is not None and lengths[i] >= max_steps)):
                    still.append(i)
            running = still
    finally:
        for env in envs:
            env.close()
    return {"seeds": seeds, "returns": returns, "lengths": lengths, "mean": float(np.mean(returns))}


def random_returns(env_factory: Callable[[], Any], seeds: Sequence[int], *, repeats: int = 10,
                   rng_seed: int = 0, max_steps: Optional[int] = None) -> dict:
    """The returns of uniformly random actions from the start states of ``seeds``: a reference point.

    The zero of a normalized score (``(x - random) / (reference - random)``), measured on the same
    start states as :func:`greedy_returns`. Actions are drawn from a generator seeded with
    ``rng_seed`` (never the global ones), ``repeats`` episodes per start state: an integer below
    ``action_space.n`` for a discrete space, uniform between ``action_space.low`` and ``high``
    for a continuous (Box) one.

    Returns:
        ``{"seeds", "repeats", "returns": [per start state: mean over repeats], "mean"}``.
    """
    seeds = [int(s) for s in seeds]
    if not seeds or repeats < 1:
        raise ValueError(f"random_returns needs seeds and repeats >= 1, got {len(seeds)} seeds, repeats={repeats}")
    rng = np.random.default_rng(rng_seed)
    env = env_factory()
    try:
        space = env.action_space
        if hasattr(space, "n"):
            n = int(space.n)

            def draw():
                return int(rng.integers(n))
        else:  # continuous: uniform in the box
            low, high = np.asarray(space.low, np.float32), np.asarray(space.high, np.float32)

            def draw():
                return rng.uniform(low, high).astype(np.float32)
        per_state = []
        for s in seeds:
            total = 0.0
            for _ in range(repeats):
                env.reset(seed=s)
                done, length = False, 0
                while not done and (max_steps is None or length < max_steps):
                    _obs, reward, done, _info = env.step(draw())
                    total += float(reward)
                    length += 1
            per_state.append(total / repeats)
    finally:
        env.close()
    return {"seeds": seeds, "repeats": repeats, "returns": per_state, "mean": float(np.mean(per_state))}


def _processed(observation: Any, processor: Any) -> np.ndarray:
    if processor is not None:
        observation = processor.process_observation(observation)
    return np.asarray(observation, dtype=np.float32)


def _state(frames: list, window: int) -> np.ndarray:
    """keras-rl2's state: the last ``window`` frames (``window`` 0: the observation alone)."""
    return frames[-1] if window == 0 else np.stack(frames[-window:])


class GreedyEvaluation(Callback):
    """A keras-rl2 callback: :func:`greedy_returns` of the training agent every ``every`` steps of ``fit``.

    Steps count from the start of the ``fit`` call (keras-rl2's ``fit`` sets ``agent.step`` to 0);
    a callback reused over several ``fit`` calls appends to :attr:`results`, steps restarting at
    ``every``. An evaluation runs after a training step, before the next; it draws
    nothing from the global random generators and changes nothing in the agent, so the training
    itself is the same with or without it.

    Args:
        env_factory, seeds, max_steps: as for :func:`greedy_returns`.
        every: evaluate after every ``every``-th step.

    Attributes:
        results: ``[{"step": agent step, **greedy_returns(...)}, ...]`` in step order.

    Example:
        >>> ev = GreedyEvaluation(lambda: make_env("CartPole-v1"), eval_seeds(10), every=500)
        >>> agent.fit(env, nb_steps=5000, callbacks=[ev], verbose=0)
        >>> [(r["step"], r["mean"]) for r in ev.results]
    """

    def __init__(self, env_factory: Callable[[], Any], seeds: Sequence[int], every: int, *,
                 max_steps: Optional[int] = None):
        super().__init__()
        if every < 1:
            raise ValueError(f"every must be positive, got {every}")
        self.env_factory, self.seeds, self.every, self.max_steps = env_factory, list(seeds), every, max_steps
        self.results: list[dict] = []

    def on_step_end(self, step, logs={}):  # noqa: B006  (keras-rl2's signature)
        agent = self.model  # keras-rl2 hands the agent to set_model
        done = int(agent.step) + 1  # fit increments agent.step after the callbacks
        if done % self.every == 0:
            result = greedy_returns(agent, self.env_factory, self.seeds, max_steps=self.max_steps)
            self.results.append({"step": done, **result})
            logger.debug("greedy evaluation at step %d: mean return %.2f", done, result["mean"])
