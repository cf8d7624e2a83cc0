"""``resume_agent(old_agent, spec)``: resume any supported keras-rl2 agent after surgery.

The agent's class picks the function that resumes it (:data:`RESUMERS`): ``DQNAgent`` →
:func:`~keras_surgeon_rl.rl.resume.resume_dqn`, ``DDPGAgent`` →
:func:`~keras_surgeon_rl.rl.resume_ddpg.resume_ddpg`, ``SARSAAgent`` →
:func:`~keras_surgeon_rl.rl.resume_sarsa.resume_sarsa`, ``CEMAgent`` →
:func:`~keras_surgeon_rl.rl.resume_cem.resume_cem`, ``NAFAgent`` →
:func:`~keras_surgeon_rl.rl.resume_naf.resume_naf`. A subclass of a supported agent is resumed
as its nearest supported base class; :func:`register_resumer` adds an agent class.
"""

from __future__ import annotations

from typing import Any, Callable

from rl.agents.cem import CEMAgent
from rl.agents.ddpg import DDPGAgent
from rl.agents.dqn import DQNAgent, NAFAgent
from rl.agents.sarsa import SARSAAgent

from keras_surgeon_rl.errors import SurgeryError
from keras_surgeon_rl.rl.resume import resume_dqn
from keras_surgeon_rl.rl.resume_cem import resume_cem
from keras_surgeon_rl.rl.resume_ddpg import resume_ddpg
from keras_surgeon_rl.rl.resume_naf import resume_naf
from keras_surgeon_rl.rl.resume_sarsa import resume_sarsa

#: Agent class → the function resuming it, ``fn(old_agent, spec, **kwargs) -> new_agent``.
RESUMERS: dict[type, Callable] = {DQNAgent: resume_dqn, DDPGAgent: resume_ddpg, SARSAAgent: resume_sarsa,
                                  CEMAgent: resume_cem, NAFAgent: resume_naf}


def register_resumer(agent_class: type, fn: Callable) -> None:
    """Let :func:`resume_agent` resume ``agent_class`` (and its subclasses) with ``fn``.

    Args:
        agent_class: a keras-rl2 agent class.
        fn: ``fn(old_agent, spec, **kwargs)`` returning the new, compiled agent.

    Example:
        >>> register_resumer(MyAgent, resume_my_agent)
    """
    RESUMERS[agent_class] = fn


def resume_agent(old_agent: Any, spec: Any, **kwargs) -> Any:
    """A new agent of ``old_agent``'s kind on the changed network(s), compiled and ready for ``fit``.

    Args:
        old_agent: a compiled keras-rl2 agent of a supported class (see :data:`RESUMERS`); never
            modified.
        spec: the surgery spec, as the agent's resume function takes it (for a ``DDPGAgent`` with
            ``"actor"`` and ``"critic"`` parts).
        **kwargs: passed on (``memory``, settings to override, ...).

    Returns:
        The new agent.

    Raises:
        SurgeryError: the agent's class is not supported (the message lists those that are), or
            the spec does not fit.

    Example:
        >>> new_agent = resume_agent(agent, {"inputs": {"old": ["x_dot", "theta"],
        ...                                             "new": ["x", "x_dot", "theta", "theta_dot"]}})
    """
    for cls in type(old_agent).__mro__:
        if cls in RESUMERS:
            return RESUMERS[cls](old_agent, spec, **kwargs)
    supported = ", ".join(c.__name__ for c in RESUMERS)
    raise SurgeryError(f"resume_agent cannot resume a {type(old_agent).__name__}; supported agent types: {supported} "
                       "(register another with keras_surgeon_rl.rl.agents.register_resumer)")
