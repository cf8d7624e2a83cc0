"""Policy distillation: train a student Q-network to act like a teacher.

The student (any architecture, Keras 3 or tf_keras) is trained on states with the loss of Rusu et
al., "Policy Distillation" (2016)::

    KL( softmax(q_teacher / tau) || softmax(q_student) )

with a fixed temperature ``tau`` or a schedule of temperatures (e.g. 0.1 -> 0.5 in steps of 0.1,
each sample used once per temperature). Actions are matched by ID, so the student may order its
actions differently or have actions the teacher lacks; those are left out of the loss.

States come from a keras-rl2 replay memory (:func:`states_from_memory`), from greedy rollouts of
the teacher in an environment (:func:`rollout_states`), or from any array.
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Sequence

import numpy as np

from keras_surgeon_rl.transfer import _flavour

logger = logging.getLogger(__name__)


@dataclass
class DistillHistory:
    """What :func:`distill` did, one entry per epoch.

    Attributes:
        loss: mean KL loss of each epoch (at that epoch's temperature).
        temperature: temperature of each epoch.
        agreement: after each epoch, the fraction of training states on which the student's greedy
            action equals the teacher's (over the actions both have).
        validation_agreement: the same on ``validation_states``, if given.
    """

    loss: list[float] = field(default_factory=list)
    temperature: list[float] = field(default_factory=list)
    agreement: list[float] = field(default_factory=list)
    validation_agreement: list[float] = field(default_factory=list)


def temperature_schedule(start: float = 0.1, stop: float = 0.5, step: float = 0.1) -> list[float]:
    """Temperatures from ``start`` to ``stop`` (inclusive) in steps of ``step``.

    Args:
        start: first temperature, ``> 0``.
        stop: last temperature, ``>= start``.
        step: increment, ``> 0``.

    Returns:
        The temperatures, rounded to 10 decimals (no float drift: ``0.30000000000000004``).

    Example:
        >>> temperature_schedule(0.1, 0.5, 0.1)
        [0.1, 0.2, 0.3, 0.4, 0.5]
    """
    if start <= 0 or step <= 0 or stop < start:
        raise ValueError(
            f"Expected 0 < start <= stop and step > 0, got start={start}, stop={stop}, step={step}."
        )
    count = int(np.floor((stop - start) / step + 1e-9)) + 1
    return [round(start + i * step, 10) for i in range(count)]


def states_from_memory(memory: Any) -> np.ndarray:
    """The observations of a keras-rl2 replay memory, as the states the agent's network sees.

    Each stored observation becomes one state: the window of the last ``memory.window_length``
    observations ending at it, zero-padded at the start of an episode as keras-rl2 does.

    Args:
        memory: a keras-rl2 ``SequentialMemory`` (anything with ``observations``, ``terminals`` and
            ``window_length``).

    Returns:
        An array of shape ``(n_observations, window_length, *observation_shape)``.

    Raises:
        ValueError: the memory holds no observations.

    Example:
        >>> agent.fit(env, nb_steps=1000)  # doctest: +SKIP
        >>> states = states_from_memory(agent.memory)  # (n, 1, 4) on CartPole  # doctest: +SKIP
    """
    observations = [np.asarray(o) for o in memory.observations]
    terminals = list(memory.terminals)
    if not observations:
        raise ValueError("The replay memory holds no observations yet; train or run the agent first.")
    window = int(memory.window_length)
    ignore_boundaries = bool(getattr(memory, "ignore_episode_boundaries", False))
    states = []
    for i in range(len(observations)):
        state = [observations[i]]
        for j in range(i - 1, i - window, -1):
            # keras-rl2 stops at the terminal observation of the previous episode (the one after a
            # step flagged terminal).
            if j < 0 or (j >= 1 and terminals[j - 1] and not ignore_boundaries):
                break
            state.insert(0, observations[j])
        while len(state) < window:
            state.insert(0, np.zeros_like(observations[i]))
        states.append(np.stack(state))
    return np.stack(states).astype(np.float32)


def _as_input(model: Any, states: np.ndarray) -> np.ndarray:
    """``states`` reshaped to ``model``'s input shape (e.g. ``(n, 1, 4)`` <-> ``(n, 4)``)."""
    shape = _flavour.input_shape(model)
    if tuple(states.shape[1:]) == shape:
        return states
    if int(np.prod(states.shape[1:])) == int(np.prod(shape)):
        return states.reshape((len(states),) + shape)
    raise ValueError(
        f"States of shape {tuple(states.shape[1:])} do not fit the input shape {shape} of model "
        f"{model.name!r}; pass states shaped (n, *{shape}) or with the same number of values."
    )


def _states_array(states: Any) -> np.ndarray:
    if hasattr(states, "observations") and hasattr(states, "window_length"):
        return states_from_memory(states)
    array = np.asarray(states, dtype=np.float32)
    if array.ndim < 2 or len(array) == 0:
        raise ValueError(
            f"Expected states as an array (n_states, *state_shape) or a keras-rl2 SequentialMemory, "
            f"got an array of shape {array.shape}."
        )
    return array


def _window_for(model: Any, observation: np.ndarray) -> int:
    """How many observations make one state of ``model`` (0: the observation itself)."""
    shape = _flavour.input_shape(model)
    if shape == observation.shape:
        return 0
    if shape[1:] == observation.shape:
        return shape[0]
    raise ValueError(
        f"Observations of shape {observation.shape} do not fit the input shape {shape} of model "
        f"{model.name!r}: expected {observation.shape} or (window_length, *{observation.shape})."
    )


def rollout_states(
    teacher: Any,
    env: Any,
    n_states: int,
    epsilon: float = 0.0,
    seed: int | None = None,
    *,
    teacher_input: Callable[[np.ndarray], np.ndarray] | None = None,
    actions: Sequence[int] | None = None,
) -> np.ndarray:
    """Collect states by running the teacher greedily in an environment.

    The environment has the old (keras-rl2) API: ``reset() -> observation`` and ``step(action) ->
    (observation, reward, done, info)``, e.g. :class:`keras_surgeon_rl.rl.GymnasiumAdapter`. If the
    teacher takes a window of observations (keras-rl2 input ``(window_length, *obs_shape)``), states
    are windows zero-padded at episode starts, as keras-rl2 builds them.

    Args:
        teacher: the Q-network that picks actions (argmax of its outputs).
        env: the environment, old API.
        n_states: how many states to collect (episodes restart as needed).
        epsilon: probability of a uniformly random action instead of the greedy one.
        seed: seed of the generator for the ``epsilon`` choices.
        teacher_input: for a teacher that sees other inputs than the environment gives (e.g. fewer
            features, picked by ID): maps a batch of states as the environment gives them to the
            teacher's input; the states returned stay the environment's (for the student, and
            :func:`distill`'s ``teacher_states=`` is ``teacher_input`` of them).
        actions: for a teacher with other actions than the environment: the environment's action
            for each of the teacher's outputs.

    Returns:
        An array ``(n_states, *state_shape)`` of the states the teacher acted in: the teacher's
        input shape, or with ``teacher_input`` the environment's observations in the same window.

    Example:
        >>> env = GymnasiumAdapter("CartPole-v1", seed=1)  # doctest: +SKIP
        >>> states = rollout_states(agent.model, env, 500)  # doctest: +SKIP
    """
    view = teacher_input if teacher_input is not None else (lambda batch: batch)
    rng = np.random.default_rng(seed)
    observation = np.asarray(env.reset(), dtype=np.float32)
    window = _window_for(teacher, view(observation[None])[0])
    recent: deque = deque(maxlen=max(window, 1))
    states = []
    while len(states) < n_states:
        recent.append(observation)
        padding = [np.zeros_like(observation)] * (window - len(recent))
        state = np.stack(padding + list(recent)) if window else observation
        states.append(state)
        q_values = np.asarray(teacher.predict_on_batch(view(state[None])))[0]
        n_actions = q_values.shape[-1]
        action = int(rng.integers(n_actions)) if rng.random() < epsilon else int(np.argmax(q_values))
        observation, _reward, done, _info = env.step(action if actions is None else actions[action])
        observation = np.asarray(observation, dtype=np.float32)
        if done:
            observation = np.asarray(env.reset(), dtype=np.float32)
            recent.clear()
    return np.stack(states).astype(np.float32)


def _match_actions(
    n_teacher: int,
    n_student: int,
    teacher_actions: Sequence[Hashable] | None,
    student_actions: Sequence[Hashable] | None,
) -> tuple[list[int], list[int]]:
    """Output columns of the actions both networks have, in the teacher's order."""
    teacher_ids = list(range(n_teacher)) if teacher_actions is None else list(teacher_actions)
    student_ids = list(range(n_student)) if student_actions is None else list(student_actions)
    for role, ids, n in (("teacher", teacher_ids, n_teacher), ("student", student_ids, n_student)):
        if len(ids) != n:
            raise ValueError(
                f"{role}_actions lists {len(ids)} action IDs {ids}, but the {role} has {n} outputs; "
                "give one ID per output, in output order."
            )
        if len(set(ids)) != len(ids):
            raise ValueError(f"{role}_actions has repeated action IDs: {ids}.")
    student_column = {action: i for i, action in enumerate(student_ids)}
    common = [action for action in teacher_ids if action in student_column]
    if not common:
        raise ValueError(
            f"The teacher's actions {teacher_ids} and the student's actions {student_ids} share no ID; "
            "pass teacher_actions=/student_actions= so that matching actions have equal IDs."
        )
    left_out = [a for a in student_ids if a not in common] + [a for a in teacher_ids if a not in common]
    if left_out:
        logger.info("actions left out of the distillation loss (not in both networks): %s", left_out)
    return [teacher_ids.index(a) for a in common], [student_column[a] for a in common]


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def greedy_agreement(
    teacher: Any,
    student: Any,
    states: Any,
    teacher_actions: Sequence[Hashable] | None = None,
    student_actions: Sequence[Hashable] | None = None,
) -> float:
    """The fraction of states on which student and teacher pick the same greedy action.

    Greedy actions are taken over the actions both networks have (matched by ID).

    Args:
        teacher: the teacher Q-network.
        student: the student Q-network.
        states: an array of states or a keras-rl2 ``SequentialMemory``.
        teacher_actions: action IDs of the teacher's outputs; default ``0 .. n-1``.
        student_actions: action IDs of the student's outputs; default ``0 .. n-1``.

    Returns:
        A number in ``[0, 1]``.

    Example:
        >>> greedy_agreement(teacher, student, held_out_states)  # doctest: +SKIP
        0.985
    """
    x = _states_array(states)
    q_teacher = _flavour.predict(teacher, _as_input(teacher, x))
    q_student = _flavour.predict(student, _as_input(student, x))
    t_cols, s_cols = _match_actions(
        q_teacher.shape[-1], q_student.shape[-1], teacher_actions, student_actions
    )
    return _agreement(q_teacher[:, t_cols], q_student[:, s_cols])


def _agreement(q_teacher: np.ndarray, q_student: np.ndarray) -> float:
    return float(np.mean(np.argmax(q_teacher, axis=-1) == np.argmax(q_student, axis=-1)))


def distill(
    teacher: Any,
    student: Any,
    states: Any,
    temperature: float | Sequence[float] = 0.1,
    epochs: int = 10,
    batch_size: int = 64,
    teacher_actions: Sequence[Hashable] | None = None,
    student_actions: Sequence[Hashable] | None = None,
    optimizer: Any = None,
    learning_rate: float = 1e-3,
    validation_states: Any = None,
    teacher_states: Any = None,
) -> DistillHistory:
    """Train ``student`` to match ``teacher``'s policy on ``states`` (policy distillation).

    The loss is ``KL(softmax(q_teacher / tau) || softmax(q_student))`` over the actions both
    networks have. Teacher Q-values are computed once; the student is trained with its own
    framework's ``fit`` through a wrapper model that shares its weights, so the student's own
    compile state (e.g. the one a keras-rl2 agent set) is left alone and its frozen layers stay
    frozen. Works on Keras 3 and tf_keras students, also in keras-rl2's graph mode.

    Args:
        teacher: the trained Q-network (Keras 3 or tf_keras), outputs = one Q-value per action.
        student: the Q-network to train (any architecture, either flavour), same kind of outputs.
        states: an array ``(n, *state_shape)`` or a keras-rl2 ``SequentialMemory``. States are
            reshaped to each network's input when the number of values matches (``(1, 4)`` vs
            ``(4,)``).
        temperature: ``tau``, or a sequence of them (see :func:`temperature_schedule`) trained one
            after the other.
        epochs: passes over ``states`` per temperature (``1`` uses each sample once per
            temperature).
        batch_size: samples per gradient step.
        teacher_actions: action IDs of the teacher's outputs; default ``0 .. n_teacher-1``.
        student_actions: action IDs of the student's outputs; default ``0 .. n_student-1``. Student
            actions the teacher lacks (and teacher actions the student lacks) are left out.
        optimizer: optimizer of the student's flavour; default Adam(``learning_rate``) (for tf_keras
            the legacy Adam, which also runs in graph mode).
        learning_rate: learning rate of the default optimizer.
        validation_states: optional held-out states to measure agreement on after each epoch.
        teacher_states: the same states as the teacher sees them, one per state of ``states``, when
            its inputs differ from the student's (e.g. a teacher trained without some observation
            features, or on other channels); default ``states``.

    Returns:
        A :class:`DistillHistory`.

    Raises:
        ValueError: bad temperatures or epochs, states that fit neither network, ``teacher_states``
            of another length than ``states``, or action IDs that do not match the networks' outputs.

    Example:
        >>> history = distill(teacher, student, states, temperature=0.1, epochs=20)  # doctest: +SKIP
        >>> history.agreement[-1]  # doctest: +SKIP
        0.97
    """
    temperatures = [float(temperature)] if np.isscalar(temperature) else [float(t) for t in temperature]
    if not temperatures or min(temperatures) <= 0:
        raise ValueError(f"Expected temperatures > 0, got {temperature!r}.")
    if epochs < 1:
        raise ValueError(f"Expected epochs >= 1 (passes per temperature), got {epochs}.")
    x = _states_array(states)
    x_teacher = x if teacher_states is None else _states_array(teacher_states)
    if teacher_states is not None and validation_states is not None:
        raise ValueError("validation_states cannot be combined with teacher_states (the teacher would need its own "
                         "view of them too); measure agreement afterwards with greedy_agreement instead.")
    if len(x_teacher) != len(x):
        raise ValueError(
            f"teacher_states holds {len(x_teacher)} states but states holds {len(x)}; give the teacher's view "
            "of each student state, in the same order."
        )
    q_all = _flavour.predict(teacher, _as_input(teacher, x_teacher))
    x_student = _as_input(student, x)
    n_student = _flavour.predict(student, x_student[:1]).shape[-1]
    t_cols, s_cols = _match_actions(q_all.shape[-1], n_student, teacher_actions, student_actions)
    q_teacher = q_all[:, t_cols]
    validation = None
    if validation_states is not None:
        x_val = _states_array(validation_states)
        q_val = _flavour.predict(teacher, _as_input(teacher, x_val))[:, t_cols]
        validation = (q_val, _as_input(student, x_val))

    kind = _flavour.flavour(student)
    wrapper = _flavour.training_wrapper(student, tuple(x_student.shape[1:]))
    wrapper.compile(
        optimizer=optimizer if optimizer is not None else _flavour.default_optimizer(kind, learning_rate),
        loss=_flavour.kl_loss(kind, s_cols),
    )
    history = DistillHistory()
    for tau in temperatures:
        targets = _softmax(q_teacher / tau).astype(np.float32)
        for _ in range(epochs):
            fitted = wrapper.fit(x_student, targets, batch_size=batch_size, epochs=1, shuffle=True, verbose=0)
            history.loss.append(float(fitted.history["loss"][-1]))
            history.temperature.append(tau)
            history.agreement.append(_agreement(q_teacher, _flavour.predict(student, x_student)[:, s_cols]))
            if validation is not None:
                q_val = _flavour.predict(student, validation[1])[:, s_cols]
                history.validation_agreement.append(_agreement(validation[0], q_val))
        logger.info(
            "distill tau=%g: loss %.4f, agreement %.3f", tau, history.loss[-1], history.agreement[-1]
        )
    return history
