"""Save and load a keras-rl2 ``NAFAgent`` (called by :func:`~keras_surgeon_rl.rl.persist.save_agent`
and :func:`~keras_surgeon_rl.rl.persist.load_agent`).

A directory holds:

- ``V.h5``, ``mu.h5`` and ``L.h5`` with their unit-ID sidecars (``*.h5.ids.json``: observation
  feature IDs, action IDs, and L's entries as action-ID pairs; see :mod:`keras_surgeon_rl.io`),
- ``target_V_weights.h5``, the target V model's weights,
- ``memory.npz``, the replay memory (action vectors stacked into one array), only with
  ``save_agent(..., memory=True)``,
- ``agent.json``: ``"agent": "NAFAgent"``, ``nb_actions``, ``covariance_mode``, the settings
  (:data:`keras_surgeon_rl.rl.resume_naf.SETTINGS` but the processor and custom objects), the random
  process (class, config and state, as for a ``DDPGAgent``), the optimizer's class and config, the
  memory's settings and record, and the size and SHA-256 of every other file.

The optimizer's slot state is not saved (``optimizer=True`` is refused): the loaded agent's
optimizer starts anew.

Example:
    >>> save_agent(naf_agent, "runs/pendulum-naf", memory=True)
    >>> agent = load_agent("runs/pendulum-naf")   # a NAFAgent: agent.json says so
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from rl.agents.dqn import NAFAgent

from keras_surgeon_rl.errors import ModelFileError
from keras_surgeon_rl.io import sidecar, write_model_files
from keras_surgeon_rl.rl.persist import (_BOOL, _check_target_weights, _CLASS, _integer, _NUMBER, _OBJECT,
                                         _optimizer_from, _RESAVE, AGENT, FORMAT, MEMORY, publish_agent, saved_settings,
                                         savez)
from keras_surgeon_rl.rl.persist_ddpg import (_OPTIONAL_OBJECT, _plain, load_networks, process_from,
                                              start_continuous_load, start_continuous_save)
from keras_surgeon_rl.rl.resume_naf import SETTINGS, fresh_naf_optimizer, naf_settings

logger = logging.getLogger(__name__)

V_FILE, MU_FILE, L_FILE = "V.h5", "mu.h5", "L.h5"
TARGET_V = "target_V_weights.h5"
NETWORK_FILES = [V_FILE, sidecar(V_FILE).name, MU_FILE, sidecar(MU_FILE).name, L_FILE, sidecar(L_FILE).name, TARGET_V]

#: NAF settings saved in agent.json (the processor and custom model objects are not saved).
SAVED_SETTINGS = tuple(k for k in SETTINGS if k not in ("processor", "custom_model_objects"))

#: What a NAF save's agent.json holds (see :data:`keras_surgeon_rl.rl.persist.SCHEMA`).
SCHEMA = {
    "nb_actions": _integer(1),
    "covariance_mode": ("'full' or 'diag'", lambda v: v in ("full", "diag")),
    "settings": {
        "gamma": _NUMBER,
        "batch_size": _integer(1),
        "nb_steps_warmup": _integer(0),
        "train_interval": _integer(1),
        "memory_interval": _integer(1),
        "delta_clip": _NUMBER,
        "target_model_update": ("a number >= 0", lambda v: _NUMBER[1](v) and v >= 0),
    },
    "random_process": _OPTIONAL_OBJECT,
    "optimizer": _CLASS,
    "memory": {"limit": _integer(1), "window_length": _integer(1), "ignore_episode_boundaries": _BOOL},
    "files": _OBJECT,
    "replay": _OPTIONAL_OBJECT,
}


def save_naf(agent: NAFAgent, directory, memory: bool = False, optimizer: bool = False) -> Path:
    """Save a compiled ``NAFAgent``: V, μ and L with unit IDs, target V, settings, random process,
    optimizer class and config and (optionally) the replay memory.

    Args:
        agent: a compiled keras-rl2 ``NAFAgent``.
        directory: created if missing; the files of an earlier save in it are replaced together.
        memory: also save the replay memory (a ``SequentialMemory``; its action vectors are stacked).
        optimizer: must be ``False``: the optimizer's slot state of a ``NAFAgent`` is not saved.

    Returns:
        The directory.

    Raises:
        ModelFileError: ``optimizer=True``, an uncompiled agent, a memory or random process that
            cannot be saved, or a directory that cannot be written; nothing in it is changed then.

    Example:
        >>> save_agent(naf_agent, "runs/pendulum-naf", memory=True)   # calls save_naf
    """
    directory, arrays, record, process = start_continuous_save(agent, directory, memory, optimizer,
                                                               "the target V model and the optimizer")
    opt = fresh_naf_optimizer(agent)
    names = NETWORK_FILES + ([MEMORY] if memory else []) + [AGENT]

    def write(tmp):
        for name, model in ((V_FILE, agent.V_model), (MU_FILE, agent.mu_model), (L_FILE, agent.L_model)):
            write_model_files(_plain(model), tmp[name], tmp[sidecar(name).name], directory / name)
        agent.target_V_model.save_weights(str(tmp[TARGET_V]))
        if memory:
            savez(tmp[MEMORY], **arrays)

    publish_agent(directory, names, write, {
        "format": FORMAT,
        "agent": "NAFAgent",
        "nb_actions": agent.nb_actions,
        "covariance_mode": agent.covariance_mode,
        "settings": saved_settings(naf_settings(agent)),
        "random_process": process,
        "optimizer": {"class_name": type(opt).__name__, "config": opt.get_config()},
        "memory": {"limit": agent.memory.limit, "window_length": agent.memory.window_length,
                   "ignore_episode_boundaries": agent.memory.ignore_episode_boundaries},
        "replay": record,
    })
    logger.info("saved the NAF agent to %s%s", directory, " with its replay memory" if memory else "")
    return directory


def _check_networks(V, mu, L, directory: Path, data: dict) -> None:
    fix = f"it belongs to another agent: {_RESAVE}"
    n, mode = data["nb_actions"], data["covariance_mode"]
    entries = n * (n + 1) // 2 if mode == "full" else n
    for path, model, inputs, units in ((V_FILE, V, 1, 1), (MU_FILE, mu, 1, n), (L_FILE, L, 2, entries)):
        if len(model.inputs) != inputs or len(model.outputs) != 1 or model.outputs[0].shape[-1] != units:
            raise ModelFileError(f"{directory / path}: has {len(model.inputs)} inputs and outputs of "
                                 f"{[o.shape[-1] for o in model.outputs]} units; with nb_actions={n} and "
                                 f"covariance_mode={mode!r} ({AGENT}) it needs {inputs} input(s) and one output of "
                                 f"{units} units; {fix}")
    if L.inputs[0].shape[-1] != n:
        raise ModelFileError(f"{directory / L_FILE}: its action input has {L.inputs[0].shape[-1]} features, not "
                             f"nb_actions={n}; {fix}")
    shapes = {tuple(m.inputs[-1].shape[1:]) for m in (V, mu, L)}
    if len(shapes) != 1:
        raise ModelFileError(f"{directory}: {V_FILE}, {MU_FILE} and {L_FILE} read observations of shapes "
                             f"{sorted(shapes)}; they must read the same; {fix}")


def load_naf(directory: Path, data: dict, processor: Any = None, optimizer: Any = None, memory: Any = "auto",
             optimizer_state: Any = "auto", random_process: Any = None) -> NAFAgent:
    """The compiled ``NAFAgent`` :func:`save_naf` saved in ``directory`` (``data``: its checked agent.json).

    Args:
        directory: what :func:`save_naf` wrote.
        data: its agent.json, checked by :func:`keras_surgeon_rl.rl.persist.load_agent`.
        processor: the agent's keras-rl2 processor (not saved).
        optimizer: replaces the saved optimizer class and config.
        memory: as for :func:`~keras_surgeon_rl.rl.persist.load_agent`.
        optimizer_state: ``"auto"`` or ``False`` (a NAF save holds no optimizer state; ``True`` is refused).
        random_process: replaces the saved random process.

    Returns:
        The agent, compiled, with V, μ, L, target V, unit IDs, random process and memory as saved.

    Raises:
        ModelFileError: naming the file at fault, before the agent is built where possible.

    Example:
        >>> agent = load_agent("runs/pendulum-naf")   # calls load_naf
    """
    path = directory / AGENT
    _, agent_memory = start_continuous_load(directory, data, memory, optimizer_state, NETWORK_FILES)
    optimizer = optimizer or _optimizer_from(data["optimizer"], path)
    process = random_process if random_process is not None else process_from(data["random_process"], path)
    V, mu, L = load_networks(directory, (V_FILE, MU_FILE, L_FILE))
    _check_networks(V, mu, L, directory, data)
    _check_target_weights(directory / TARGET_V, V, V_FILE)

    settings = {k: v for k, v in data["settings"].items() if k in SAVED_SETTINGS}
    state = dict(vars(process)) if process is not None else None
    try:
        agent = NAFAgent(nb_actions=data["nb_actions"], V_model=V, L_model=L, mu_model=mu, memory=agent_memory,
                         random_process=process, covariance_mode=data["covariance_mode"], processor=processor,
                         **settings)
        agent.compile(optimizer, metrics=[])
        agent.target_V_model.load_weights(str(directory / TARGET_V))
    except Exception as e:  # the checks above passed, so the framework refused something they do not know of
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ModelFileError(f"{directory}: the NAF agent cannot be rebuilt from {AGENT}, {V_FILE}, {MU_FILE} and "
                             f"{L_FILE} ({type(e).__name__}: {first:.200}); {_RESAVE}") from e
    if state is not None:  # NAFAgent.__init__ resets the process (a new random x_prev): put the saved state back
        vars(process).update(state)
    logger.info("loaded the NAF agent from %s (replay memory: %d entries)", directory,
                getattr(agent.memory, "nb_entries", 0))
    return agent
