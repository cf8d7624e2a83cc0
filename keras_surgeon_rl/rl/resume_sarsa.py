"""Resume a keras-rl2 ``SARSAAgent`` on a changed Q-network: ``resume_sarsa(old_agent, spec)``.

A ``SARSAAgent`` has discrete actions like a ``DQNAgent`` but a single Q-network: no target
network and no replay memory (it learns from its last two steps only). Its Q-network goes through
:func:`keras_surgeon_rl.surgeon.transplant` with the spec as :func:`~keras_surgeon_rl.rl.resume.resume_dqn`
builds it: ``spec["outputs"] = {"old": [...], "new": [...]}`` holds the action IDs, and new actions
start as ``"keep_greedy"`` (a copy of a kept action's head with its bias lowered by a margin, so the
greedy action is unchanged on every input) unless the spec says otherwise. A new ``SARSAAgent``
gets the old one's settings, copies of its policies and a fresh optimizer of the old one's class
and config.
"""

from __future__ import annotations

import logging
from typing import Any, Optional

from rl.agents.sarsa import SARSAAgent
from rl.policy import Policy

from keras_surgeon_rl import surgeon
from keras_surgeon_rl.errors import SurgeryError
from keras_surgeon_rl.rl.compat import setup
from keras_surgeon_rl.rl.resume import _network_spec, clone_policy, fresh_optimizer
from keras_surgeon_rl.spec import Spec
from keras_surgeon_rl.unit_ids import get_unit_ids, set_unit_ids

logger = logging.getLogger(__name__)
tf_keras = setup()

#: SARSAAgent settings carried from the old agent; each can be overridden by keyword.
SETTINGS = ("gamma", "nb_steps_warmup", "train_interval", "delta_clip", "processor")


def sarsa_settings(agent: SARSAAgent) -> dict:
    """The constructor settings of a ``SARSAAgent`` (without model and policies)."""
    return {k: getattr(agent, k) for k in SETTINGS}


def resume_sarsa(old_agent: SARSAAgent, spec: Any, *, policy: Optional[Policy] = None,
                 test_policy: Optional[Policy] = None, optimizer=None, **overrides) -> SARSAAgent:
    """A new ``SARSAAgent`` on the changed Q-network, compiled and ready for ``fit``.

    Args:
        old_agent: a compiled keras-rl2 ``SARSAAgent``; never modified.
        spec: the surgery spec (see :mod:`keras_surgeon_rl.spec`); ``inputs`` holds the observation
            feature IDs, ``outputs`` the action IDs (new actions start as ``"keep_greedy"`` unless
            ``outputs.init`` says otherwise). Old action IDs default to those the model carries,
            else ``0..nb_actions-1``.
        policy, test_policy: policies for the new agent (default: copies of the old ones).
        optimizer: optimizer for the new agent (default: a fresh one of the old one's class and
            config; its slot state starts anew).
        **overrides: any of :data:`SETTINGS` to change (e.g. ``nb_steps_warmup=0``).

    Returns:
        The new agent. Its model carries the unit IDs of features and actions.

    Raises:
        SurgeryError: not a compiled ``SARSAAgent``, or a bad spec, before anything is built.
        TypeError: an unknown setting in ``overrides``.

    Example:
        >>> new_agent = resume_sarsa(agent, {"inputs": {"old": ["x_dot", "theta"],
        ...                                             "new": ["x", "x_dot", "theta", "theta_dot"]}})
        >>> new_agent.fit(env, nb_steps=10_000)
    """
    if not isinstance(old_agent, SARSAAgent):
        raise SurgeryError(f"resume_sarsa needs a SARSAAgent, got a {type(old_agent).__name__}; use resume_agent")
    if not getattr(old_agent, "compiled", False):
        raise SurgeryError("resume_sarsa needs a compiled SARSAAgent (it reads the optimizer); call agent.compile "
                           "first")
    unknown = set(overrides) - set(SETTINGS)
    if unknown:
        raise TypeError(f"resume_sarsa got unknown settings {sorted(unknown)}; known: {', '.join(SETTINGS)}")
    settings = {**sarsa_settings(old_agent), **overrides}
    model = old_agent.model
    net_spec, old_actions, new_actions = _network_spec(old_agent, Spec.parse(spec), model)
    new_model = surgeon.transplant(model, net_spec)  # plans (and refuses a bad spec) before building
    logger.info("resume_sarsa: Q-network\n%s", new_model.surgery_report)

    agent = SARSAAgent(model=new_model, nb_actions=len(new_actions),
                       policy=policy or clone_policy(old_agent.policy),
                       test_policy=test_policy or clone_policy(old_agent.test_policy), **settings)
    agent.compile(optimizer or fresh_optimizer(old_agent), metrics=[])
    ids = get_unit_ids(new_model)
    set_unit_ids(agent.model, inputs=ids["inputs"], layers=ids["layers"], replace=True)
    return agent
