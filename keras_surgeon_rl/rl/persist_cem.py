"""Save and load a keras-rl2 ``CEMAgent`` (called by :func:`~keras_surgeon_rl.rl.persist.save_agent`
and :func:`~keras_surgeon_rl.rl.persist.load_agent`).

A directory holds:

- ``network.h5`` and its unit-ID sidecar ``network.h5.ids.json`` (the weights the model holds: after
  ``fit``, ``best_seen``'s parameters),
- ``cem.npz``: ``theta`` (means, then standard deviations of the flat weights), ``best_seen_reward``
  and ``best_seen_params`` (kept in NumPy: the reward is ``-inf`` before the first update),
- ``memory.npz``, the ``EpisodeParameterMemory`` (``params``: one row of flat parameters per
  episode, ``total_rewards``, ``intermediate_rewards``), only with ``save_agent(..., memory=True)``,
- ``agent.json``: ``"agent": "CEMAgent"``, ``nb_actions``, the settings
  (:data:`keras_surgeon_rl.rl.resume_cem.SETTINGS` but the processor), the counters ``episode`` and
  ``step``, ``init_mean`` and ``init_stdev``, the memory's settings and the number of episodes saved,
  and the size and SHA-256 of every other file.

A ``CEMAgent`` has no optimizer and no policies (``optimizer=True`` is refused; ``policy``,
``test_policy`` and ``optimizer`` do not apply when loading). The memory's recent observations are
not saved.

Example:
    >>> save_agent(cem_agent, "runs/cartpole-cem", memory=True)
    >>> agent = load_agent("runs/cartpole-cem")   # a CEMAgent: agent.json says so
"""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from rl.agents.cem import CEMAgent
from rl.memory import EpisodeParameterMemory, Memory

from keras_surgeon_rl.errors import ModelFileError
from keras_surgeon_rl.io import load_model, write_model_files
from keras_surgeon_rl.rl.persist import (_BOOL, _check_files, _integer, _make_directory, _NUMBER, _OBJECT, _RESAVE,
                                         AGENT, FORMAT, MEMORY, NETWORK, NETWORK_IDS, OPTIMIZER, publish_agent,
                                         saved_settings, savez)
from keras_surgeon_rl.rl.resume_cem import SETTINGS, cem_settings

logger = logging.getLogger(__name__)

CEM_STATE = "cem.npz"

#: What a CEM save's agent.json holds (see :data:`keras_surgeon_rl.rl.persist.SCHEMA`).
SCHEMA = {
    "nb_actions": _integer(1),
    "settings": {"batch_size": _integer(1), "nb_steps_warmup": _integer(0), "train_interval": _integer(1),
                 "elite_frac": _NUMBER, "memory_interval": _integer(1), "noise_decay_const": _NUMBER,
                 "noise_ampl": _NUMBER},
    "counters": {"episode": _integer(0), "step": _integer(0)},
    "init": {"mean": _NUMBER, "stdev": _NUMBER},
    "memory": {"limit": _integer(1), "window_length": _integer(1), "ignore_episode_boundaries": _BOOL},
    "episodes_saved": ("an integer >= 0 or null", lambda v: v is None or _integer(0)[1](v)),
    "files": _OBJECT,
}


def save_cem(agent: CEMAgent, directory, memory: bool = False, optimizer: bool = False) -> Path:
    """Save a compiled ``CEMAgent``: network with unit IDs, ``theta``, ``best_seen``, counters, settings
    and (with ``memory=True``) its ``EpisodeParameterMemory``.

    Args:
        agent: a compiled keras-rl2 ``CEMAgent`` with an ``EpisodeParameterMemory``.
        directory: created if missing; the files of an earlier save in it are replaced together.
        memory: also save the episode memory (every episode's flat parameters and rewards).
        optimizer: must be ``False`` (a ``CEMAgent`` has no optimizer).

    Returns:
        The directory.

    Raises:
        ModelFileError: ``optimizer=True``, an uncompiled agent, a memory that is not an
            ``EpisodeParameterMemory``, or a directory that cannot be written; nothing in it is changed then.

    Example:
        >>> save_agent(cem_agent, "runs/cartpole-cem", memory=True)   # calls save_cem
    """
    directory = Path(directory)
    if optimizer:
        raise ModelFileError(f"{directory / OPTIMIZER}: a CEMAgent has no optimizer (it learns by sampling "
                             "weights); save with optimizer=False")
    if not getattr(agent, "compiled", False):
        raise ModelFileError(f"{directory}: save_agent needs a compiled CEMAgent; call agent.compile() first")
    if not isinstance(agent.memory, EpisodeParameterMemory):
        raise ModelFileError(f"{directory}: a CEMAgent's memory must be an EpisodeParameterMemory to be saved, it "
                             f"is a {type(agent.memory).__name__}")
    directory = _make_directory(directory)
    mem = agent.memory
    names = [NETWORK, NETWORK_IDS, CEM_STATE] + ([MEMORY] if memory else []) + [AGENT]

    def write(tmp):
        write_model_files(agent.model, tmp[NETWORK], tmp[NETWORK_IDS], directory / NETWORK)
        savez(tmp[CEM_STATE], theta=np.asarray(agent.theta, np.float64),
              best_seen_reward=np.float64(agent.best_seen[0]),
              best_seen_params=np.asarray(agent.best_seen[1], np.float64))
        if memory:
            params = (np.vstack([np.asarray(p, np.float64) for p in mem.params]) if len(mem.params)
                      else np.zeros((0, agent.num_weights)))
            savez(tmp[MEMORY], params=params, total_rewards=np.asarray(list(mem.total_rewards), np.float64),
                  intermediate_rewards=np.asarray(mem.intermediate_rewards, np.float64))

    publish_agent(directory, names, write, {
        "format": FORMAT,
        "agent": "CEMAgent",
        "nb_actions": agent.nb_actions,
        "settings": saved_settings(cem_settings(agent)),
        "counters": {"episode": int(agent.episode), "step": int(agent.step)},
        "init": {"mean": float(agent.init_mean), "stdev": float(agent.init_stdev)},
        "memory": {"limit": mem.limit, "window_length": mem.window_length,
                   "ignore_episode_boundaries": mem.ignore_episode_boundaries},
        "episodes_saved": len(mem.params) if memory else None,
    })
    logger.info("saved the CEM agent to %s%s", directory, " with its episode memory" if memory else "")
    return directory


def _read_npz(path: Path, keys: dict, fix: str) -> dict:
    """The arrays ``keys`` (name → number of dimensions) of an .npz file, checked."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in keys}
    except KeyError as e:
        raise ModelFileError(f"{path}: lacks the array {e}; {fix}") from e
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ModelFileError(f"{path}: not a readable NumPy .npz archive, truncated or damaged ({type(e).__name__}: "
                             f"{e}); {fix}") from e
    for k, ndim in keys.items():
        if arrays[k].ndim != ndim or not np.issubdtype(arrays[k].dtype, np.floating):
            raise ModelFileError(f"{path}: {k!r} is a {arrays[k].ndim}-D {arrays[k].dtype} array, expected a "
                                 f"{ndim}-D float array; {fix}")
    return arrays


def load_cem(directory: Path, data: dict, processor: Any = None, policy: Any = None, test_policy: Any = None,
             optimizer: Any = None, memory: Any = "auto", optimizer_state: Any = "auto") -> CEMAgent:
    """The compiled ``CEMAgent`` :func:`save_cem` saved in ``directory`` (``data``: its checked agent.json).

    Args:
        directory: what :func:`save_cem` wrote.
        data: its agent.json, checked by :func:`keras_surgeon_rl.rl.persist.load_agent`.
        processor: the agent's keras-rl2 processor (not saved).
        policy, test_policy, optimizer: must be ``None`` (a ``CEMAgent`` has none).
        memory: ``"auto"`` (the saved episode memory if there is one, else an empty one), ``True``
            (the saved one; refused if none was saved), ``False`` (an empty one) or a keras-rl2 memory.
        optimizer_state: ``"auto"`` or ``False`` (``True`` is refused: there is no optimizer).

    Returns:
        The agent, compiled, with its network, unit IDs, ``theta``, ``best_seen``, counters and
        memory as saved.

    Raises:
        ModelFileError: naming the file at fault, before the agent is built where possible.
        TypeError: ``policy``, ``test_policy`` or ``optimizer`` given.

    Example:
        >>> agent = load_agent("runs/cartpole-cem")   # calls load_cem
    """
    path = directory / AGENT
    given = [k for k, v in (("policy", policy), ("test_policy", test_policy), ("optimizer", optimizer))
             if v is not None]
    if given:
        raise TypeError(f"load_agent: {path} holds a CEMAgent, which has no {', '.join(given)} (it acts by the "
                        "softmax / argmax of its network); leave them out")
    if optimizer_state is True or optimizer_state not in ("auto", False):
        raise ModelFileError(f"{path}: a CEMAgent has no optimizer state; load with optimizer_state='auto' or False")
    saved_memory = data["episodes_saved"] is not None
    if memory is True and not saved_memory:
        raise ModelFileError(f"{directory / MEMORY}: this save holds no episode memory (saved with memory=False); "
                             "load with memory='auto' or False, or save the agent with memory=True")
    read_memory = saved_memory and memory in ("auto", True) and not isinstance(memory, Memory)
    _check_files(directory, data, [NETWORK, NETWORK_IDS, CEM_STATE] + ([MEMORY] if read_memory else []))
    state = _read_npz(directory / CEM_STATE, {"theta": 1, "best_seen_reward": 0, "best_seen_params": 1}, _RESAVE)
    try:
        network = load_model(directory / NETWORK)
    except ModelFileError as e:
        raise ModelFileError(f"{e} (part of the agent saved in {directory}: {_RESAVE})") from e
    n = sum(int(np.prod(w.shape)) for w in network.weights)
    if len(network.outputs) != 1 or network.outputs[0].shape[-1] != data["nb_actions"]:
        raise ModelFileError(f"{directory / NETWORK}: has outputs of {[o.shape[-1] for o in network.outputs]} units; "
                             f"a CEM network has one output of nb_actions={data['nb_actions']} units ({AGENT}); it "
                             f"belongs to another agent: {_RESAVE}")
    if state["theta"].shape != (2 * n,) or state["best_seen_params"].shape != (n,):
        raise ModelFileError(f"{directory / CEM_STATE}: theta has {state['theta'].size} entries and best_seen "
                             f"{state['best_seen_params'].size}, but {NETWORK} has {n} weights (theta needs {2 * n}); "
                             f"{_RESAVE}")
    if np.isnan(state["theta"]).any() or (state["theta"][n:] < 0).any():
        raise ModelFileError(f"{directory / CEM_STATE}: theta holds NaN or negative standard deviations; {_RESAVE}")
    settings = {k: v for k, v in data["settings"].items() if k in SETTINGS}
    mem_settings = data["memory"]
    if isinstance(memory, Memory):
        new_memory = memory
    else:
        new_memory = EpisodeParameterMemory(mem_settings["limit"], window_length=mem_settings["window_length"],
                                            ignore_episode_boundaries=mem_settings["ignore_episode_boundaries"])
    if read_memory:
        fix = f"load with memory=False for an empty episode memory, or {_RESAVE}"
        arrays = _read_npz(directory / MEMORY, {"params": 2, "total_rewards": 1, "intermediate_rewards": 1}, fix)
        k = data["episodes_saved"]
        if arrays["params"].shape != (k, n) or arrays["total_rewards"].shape != (k,):
            raise ModelFileError(f"{directory / MEMORY}: holds params {arrays['params'].shape} and rewards "
                                 f"{arrays['total_rewards'].shape}, but {AGENT} records {k} episodes of {n} "
                                 f"parameters; {fix}")
        new_memory.params.extend(list(arrays["params"]))
        new_memory.total_rewards.extend(arrays["total_rewards"].tolist())
        new_memory.intermediate_rewards = arrays["intermediate_rewards"].tolist()
    try:
        agent = CEMAgent(model=network, nb_actions=data["nb_actions"], memory=new_memory,
                         theta_init=state["theta"], processor=processor, **settings)
        agent.compile()
    except Exception as e:  # the checks above passed, so the framework refused something they do not know of
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ModelFileError(f"{directory}: the CEM agent cannot be rebuilt from {AGENT} and {NETWORK} "
                             f"({type(e).__name__}: {first:.200}); {_RESAVE}") from e
    agent.best_seen = (float(state["best_seen_reward"]), state["best_seen_params"])
    agent.episode = data["counters"]["episode"]
    agent.step = data["counters"]["step"]
    agent.init_mean, agent.init_stdev = data["init"]["mean"], data["init"]["stdev"]
    logger.info("loaded the CEM agent from %s%s", directory, " with its episode memory" if read_memory else "")
    return agent
