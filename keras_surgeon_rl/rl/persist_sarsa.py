"""Save and load a keras-rl2 ``SARSAAgent`` (called by :func:`~keras_surgeon_rl.rl.persist.save_agent`
and :func:`~keras_surgeon_rl.rl.persist.load_agent`).

A ``SARSAAgent`` has one Q-network, no target network and no replay memory. A directory holds
``network.h5`` with its unit-ID sidecar ``network.h5.ids.json`` and ``agent.json``:
``"agent": "SARSAAgent"``, ``nb_actions``, the settings
(:data:`keras_surgeon_rl.rl.resume_sarsa.SETTINGS` but the processor), the policies, the optimizer's
class and config, and the size and SHA-256 of the network files. The optimizer's slot state is not
saved (``optimizer=True`` and ``memory=True`` are refused).

Example:
    >>> save_agent(sarsa_agent, "runs/cartpole-sarsa")
    >>> agent = load_agent("runs/cartpole-sarsa")   # a SARSAAgent: agent.json says so
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from rl.agents.sarsa import SARSAAgent

from keras_surgeon_rl.errors import ModelFileError
from keras_surgeon_rl.io import load_model, write_model_files
from keras_surgeon_rl.rl.persist import (_check_files, _CLASS, _integer, _make_directory, _NUMBER, _OBJECT,
                                         _optimizer_from, _policy_config, _policy_from, _RESAVE, AGENT, FORMAT, MEMORY,
                                         NETWORK, NETWORK_IDS, OPTIMIZER, publish_agent, saved_settings)
from keras_surgeon_rl.rl.resume import fresh_optimizer
from keras_surgeon_rl.rl.resume_sarsa import SETTINGS, sarsa_settings

logger = logging.getLogger(__name__)

#: What a SARSA save's agent.json holds (see :data:`keras_surgeon_rl.rl.persist.SCHEMA`).
SCHEMA = {
    "nb_actions": _integer(1),
    "settings": {"gamma": _NUMBER, "nb_steps_warmup": _integer(0), "train_interval": _integer(1),
                 "delta_clip": _NUMBER},
    "policy": _CLASS,
    "test_policy": _CLASS,
    "optimizer": _CLASS,
    "files": _OBJECT,
}


def save_sarsa(agent: SARSAAgent, directory, memory: bool = False, optimizer: bool = False) -> Path:
    """Save a compiled ``SARSAAgent``: Q-network with unit IDs, settings, policies, optimizer class and config.

    Args:
        agent: a compiled keras-rl2 ``SARSAAgent``.
        directory: created if missing; the files of an earlier save in it are replaced together.
        memory, optimizer: must be ``False`` (a ``SARSAAgent`` has no replay memory; its optimizer
            state is not saved).

    Returns:
        The directory.

    Raises:
        ModelFileError: ``memory=True``, ``optimizer=True``, an uncompiled agent, or a directory that
            cannot be written; nothing in it is changed then.

    Example:
        >>> save_agent(sarsa_agent, "runs/cartpole-sarsa")   # calls save_sarsa
    """
    directory = Path(directory)
    if memory:
        raise ModelFileError(f"{directory / MEMORY}: a SARSAAgent has no replay memory; save with memory=False")
    if optimizer:
        raise ModelFileError(f"{directory / OPTIMIZER}: the optimizer state of a SARSAAgent is not saved (only a "
                             "DQNAgent's); save with optimizer=False, and the loaded agent's optimizer starts anew")
    if not getattr(agent, "compiled", False):
        raise ModelFileError(f"{directory}: save_agent needs a compiled SARSAAgent (it saves its optimizer); call "
                             "agent.compile first")
    directory = _make_directory(directory)
    opt = fresh_optimizer(agent)
    publish_agent(directory, [NETWORK, NETWORK_IDS, AGENT],
                  lambda tmp: write_model_files(agent.model, tmp[NETWORK], tmp[NETWORK_IDS], directory / NETWORK), {
                      "format": FORMAT,
                      "agent": "SARSAAgent",
                      "nb_actions": agent.nb_actions,
                      "settings": saved_settings(sarsa_settings(agent)),
                      "policy": _policy_config(agent.policy),
                      "test_policy": _policy_config(agent.test_policy),
                      "optimizer": {"class_name": type(opt).__name__, "config": opt.get_config()},
                  })
    logger.info("saved the SARSA agent to %s", directory)
    return directory


def load_sarsa(directory: Path, data: dict, processor: Any = None, policy: Any = None, test_policy: Any = None,
               optimizer: Any = None, memory: Any = "auto", optimizer_state: Any = "auto") -> SARSAAgent:
    """The compiled ``SARSAAgent`` :func:`save_sarsa` saved in ``directory`` (``data``: its checked agent.json).

    Args:
        directory: what :func:`save_sarsa` wrote.
        data: its agent.json, checked by :func:`keras_surgeon_rl.rl.persist.load_agent`.
        processor: the agent's keras-rl2 processor (not saved).
        policy, test_policy, optimizer: replace the saved ones.
        memory, optimizer_state: ``"auto"`` or ``False`` (a SARSA save holds neither; ``True`` is refused).

    Returns:
        The agent, compiled, with its Q-network and unit IDs as saved.

    Raises:
        ModelFileError: naming the file at fault, before the agent is built where possible.

    Example:
        >>> agent = load_agent("runs/cartpole-sarsa")   # calls load_sarsa
    """
    path = directory / AGENT
    for name, value in (("memory", memory), ("optimizer_state", optimizer_state)):
        if value is True or value not in ("auto", False):
            raise ModelFileError(f"{path}: a SARSAAgent's save records no {name.replace('_', ' ')}; load with "
                                 f"{name}='auto' or False")
    _check_files(directory, data, [NETWORK, NETWORK_IDS])
    policy = policy or _policy_from(data["policy"], path, "policy")
    test_policy = test_policy or _policy_from(data["test_policy"], path, "test_policy")
    optimizer = optimizer or _optimizer_from(data["optimizer"], path)
    try:
        network = load_model(directory / NETWORK)
    except ModelFileError as e:
        raise ModelFileError(f"{e} (part of the agent saved in {directory}: {_RESAVE})") from e
    if len(network.inputs) != 1 or len(network.outputs) != 1 or network.outputs[0].shape[-1] != data["nb_actions"]:
        raise ModelFileError(f"{directory / NETWORK}: has {len(network.inputs)} inputs and outputs of "
                             f"{[o.shape[-1] for o in network.outputs]} units; a SARSA Q-network has one input and "
                             f"one output of nb_actions={data['nb_actions']} units ({AGENT}); it belongs to another "
                             f"agent: {_RESAVE}")
    settings = {k: v for k, v in data["settings"].items() if k in SETTINGS}
    try:
        agent = SARSAAgent(model=network, nb_actions=data["nb_actions"], policy=policy, test_policy=test_policy,
                           processor=processor, **settings)
        agent.compile(optimizer, metrics=[])
    except Exception as e:  # the checks above passed, so the framework refused something they do not know of
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ModelFileError(f"{directory}: the SARSA agent cannot be rebuilt from {AGENT} and {NETWORK} "
                             f"({type(e).__name__}: {first:.200}); {_RESAVE}") from e
    logger.info("loaded the SARSA agent from %s", directory)
    return agent
