"""Freeze-then-thaw for keras-rl2 agents, and re-compiling an agent after ``trainable`` changes.

Importing this module imports keras-rl2 (through :mod:`keras_surgeon_rl.rl`, which must come
before anything imports TensorFlow, and which disables eager execution for the process).

keras-rl2 builds the agent's training graph in ``agent.compile``: the variables it trains are
fixed there. :func:`recompile_agent` compiles the agent again with a fresh optimizer of the same
class and ``get_config()``, and keeps the target network's weights. What is lost:

* the optimizer's slot state (e.g. Adam's moment estimates) and its step count (``iterations``;
  Adam's bias correction and any learning-rate schedule start again from step 0);
* nothing else: the online network's weights, the replay memory, the policy, ``agent.step`` and the
  target network's weights are kept (``DQNAgent.compile`` clones a new target network; its weights
  are set back to what they were).
"""

from __future__ import annotations

import logging
from typing import Any, Iterable

import keras_surgeon_rl.rl  # noqa: F401  (prepares keras-rl2; must precede TensorFlow)
from rl.agents.dqn import mean_q  # noqa: E402
from rl.callbacks import Callback  # noqa: E402

from keras_surgeon_rl.rl.resume import fresh_optimizer  # noqa: E402
from keras_surgeon_rl.transfer.layers import LayerSpec, thaw  # noqa: E402
from keras_surgeon_rl.transfer.schedule import ThawPlan  # noqa: E402

logger = logging.getLogger(__name__)

_TARGETS = ("target_model", "target_V_model")


def _user_metrics(trainable_model: Any) -> list[Any]:
    """The metrics the agent was compiled with, without the ``mean_q`` keras-rl2 adds itself."""
    compiled = getattr(trainable_model, "_compile_metrics", None)
    if isinstance(compiled, dict):
        compiled = [m for ms in compiled.values() for m in (ms if isinstance(ms, list) else [ms])]
    if not isinstance(compiled, list):
        logger.warning("cannot read the agent's metrics; re-compiling with keras-rl2's default only")
        return []
    return [m for m in compiled if m is not mean_q]


def recompile_agent(agent: Any, metrics: list[Any] | None = None) -> None:
    """Compile a keras-rl2 agent again so that ``trainable`` changes in its network take effect.

    The agent is compiled with a fresh optimizer of the same class and ``get_config()`` as the one
    it has (learning rate, clipping, ... kept; slot state and step count lost), and the same
    metrics. The target network's weights are restored after ``compile`` re-clones it, so soft and
    hard target updates continue from where they were.

    Args:
        agent: a compiled keras-rl2 agent that trains one ``trainable_model`` (``DQNAgent``,
            ``SARSAAgent``).
        metrics: metrics to compile with; default the ones the agent was compiled with.

    Raises:
        TypeError: the agent is not compiled, or trains several models (``DDPGAgent``).

    Example:
        >>> freeze(agent.model, [0])  # doctest: +SKIP
        >>> recompile_agent(agent)  # doctest: +SKIP
        >>> agent.fit(env, nb_steps=1000)  # layer 0 stays as it is  # doctest: +SKIP
    """
    trainable_model = getattr(agent, "trainable_model", None)
    if not getattr(agent, "compiled", False) or trainable_model is None:
        raise TypeError(
            f"recompile_agent needs a compiled agent that trains one `trainable_model` (DQNAgent, "
            f"SARSAAgent); got {type(agent).__name__} (compiled={getattr(agent, 'compiled', None)}). "
            "Compile it with `agent.compile(optimizer)` first, or re-compile other agents yourself."
        )
    optimizer = fresh_optimizer(agent)  # same class and config, unwrapped from soft-update wrapper
    metrics = _user_metrics(trainable_model) if metrics is None else list(metrics)
    targets = {name: getattr(agent, name).get_weights() for name in _TARGETS if hasattr(agent, name)}
    agent.compile(optimizer, metrics=metrics)
    for name, weights in targets.items():
        getattr(agent, name).set_weights(weights)
    logger.info(
        "re-compiled %s with a fresh %s; %d trainable arrays",
        type(agent).__name__, type(optimizer).__name__, len(agent.trainable_model.trainable_weights),
    )


class AgentFreezeThawCallback(Callback):
    """Freeze-then-thaw in a keras-rl2 agent's ``fit``, counting agent steps.

    At the start of ``agent.fit`` every weighted layer of ``agent.model`` but the last is frozen;
    they are thawed from the output backwards, linearly over ``tl_end`` × ``nb_steps`` agent steps
    (:func:`keras_surgeon_rl.transfer.thaw_schedule`). A layer scheduled at step ``s`` is trainable
    for agent step ``s`` (0-based) and after. Each change re-compiles the agent with
    :func:`recompile_agent` (fresh optimizer of the same class and config; slot state lost; target
    weights kept).

    Args:
        tl_end: fraction of the agent steps over which the layers are thawed (default 0.25).
        total_steps: agent steps the schedule spans; default ``nb_steps`` of the ``fit`` call.
        layers: the layers of the schedule in ``agent.model``, input to output; default every
            weighted layer.

    Attributes:
        thaw_steps: layer name -> scheduled step.
        thawed_at: layer name -> number of agent steps done when it was thawed.

    Example:
        >>> agent.compile(tf_keras.optimizers.legacy.Adam(1e-3))  # doctest: +SKIP
        >>> schedule = AgentFreezeThawCallback(tl_end=0.25)
        >>> agent.fit(env, nb_steps=50_000, callbacks=[schedule])  # doctest: +SKIP
    """

    def __init__(
        self,
        tl_end: float = 0.25,
        total_steps: int | None = None,
        layers: Iterable[LayerSpec] | None = None,
    ):
        super().__init__()
        self.plan = ThawPlan(layers, tl_end)
        self.total_steps = total_steps
        self._done = 0

    @property
    def thaw_steps(self) -> dict[str, int]:
        return self.plan.thaw_steps

    @property
    def thawed_at(self) -> dict[str, int]:
        return self.plan.thawed_at

    def on_train_begin(self, logs=None):
        agent = self.model
        total = self.total_steps if self.total_steps is not None else self.params.get("nb_steps")
        if not total:
            raise ValueError("AgentFreezeThawCallback needs total_steps=... when fit has no nb_steps.")
        self.plan.start(agent.model, int(total))
        recompile_agent(agent)
        self._done = 0

    def on_step_end(self, step, logs=None):
        self._done += 1
        if self.plan.due(self._done):
            recompile_agent(self.model)


class ThawAfter(Callback):
    """Thaw some layers of a keras-rl2 agent's network after a number of agent steps of ``fit``.

    With :func:`~keras_surgeon_rl.transfer.layers.freeze` and :func:`recompile_agent` before ``fit``,
    this keeps a freshly inserted layer as it was while the rest of the network goes on learning:
    on CartPole (a Dense inserted as an identity), training the inserted layer from the first
    phase-2 step made the greedy return dip below the un-operated agent's, and freezing it for
    4,000 steps did not (see ``docs/results.md``). Thawing re-compiles the agent with
    :func:`recompile_agent` (a fresh optimizer of the same class and config; target weights kept).

    Args:
        layers: the layers to thaw (names, indices or layers of ``agent.model``).
        steps: thaw after this many agent steps of the ``fit`` call (counted from its start).

    Attributes:
        thawed_at: the step count at which the layers were thawed (``None`` until then).

    Example:
        >>> new_agent = resume_dqn(agent, {"insert": [{"after": "h1", "layer": "Dense", "units": 8,
        ...                                            "activation": "relu", "name": "h2"}]})  # doctest: +SKIP
        >>> freeze(new_agent.model, ["h2"]); recompile_agent(new_agent)  # doctest: +SKIP
        >>> new_agent.fit(env, nb_steps=8000, callbacks=[ThawAfter(["h2"], 4000)])  # doctest: +SKIP
    """

    def __init__(self, layers: Iterable[LayerSpec], steps: int):
        super().__init__()
        if int(steps) < 1:
            raise ValueError(f"ThawAfter(steps={steps!r}): give the number of agent steps (>= 1) after which to thaw")
        self.layers, self.steps, self.done, self.thawed_at = list(layers), int(steps), 0, None

    def on_step_end(self, step, logs=None):
        self.done += 1
        if self.done == self.steps:
            thaw(self.model.model, self.layers)
            recompile_agent(self.model)
            self.thawed_at = self.done
            logger.info("thawed %s after %d agent steps", self.layers, self.done)
