"""Save and load a keras-rl2 ``DDPGAgent`` (called by :func:`~keras_surgeon_rl.rl.persist.save_agent`
and :func:`~keras_surgeon_rl.rl.persist.load_agent`).

A directory holds:

- ``actor.h5`` and ``critic.h5`` with their unit-ID sidecars (``*.h5.ids.json``: observation
  feature IDs and action IDs; see :mod:`keras_surgeon_rl.io`),
- ``target_actor_weights.h5`` and ``target_critic_weights.h5``, the target networks' weights,
- ``memory.npz``, the replay memory (action vectors stacked into one array), only with
  ``save_agent(..., memory=True)``,
- ``agent.json``: ``"agent": "DDPGAgent"``, ``nb_actions``, the settings
  (:data:`keras_surgeon_rl.rl.resume_ddpg.SETTINGS` but the processor and custom objects), the
  critic's action-input index, the random process (class, constructor config and state, e.g. an
  Ornstein-Uhlenbeck process's ``x_prev`` and annealing step), the actor's and the critic's
  optimizer class and config, the memory's settings and record, and the size and SHA-256 of every
  other file.

The target networks carry no unit IDs of their own in keras-rl2 (they are clones of the online
networks, whose IDs :func:`~keras_surgeon_rl.rl.resume_ddpg.resume_ddpg` lends them); the loaded
agent's actor and critic carry the saved IDs. The optimizers' slot state is not saved
(``optimizer=True`` is refused): the loaded agent's optimizers start anew.

Example:
    >>> save_agent(ddpg_agent, "runs/pendulum", memory=True)
    >>> agent = load_agent("runs/pendulum")   # a DDPGAgent: agent.json says so
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path
from typing import Any, Optional

import numpy as np
import rl.random
from rl.agents.ddpg import DDPGAgent
from rl.memory import Memory, SequentialMemory

from keras_surgeon_rl.errors import ModelFileError
from keras_surgeon_rl.io import load_model, sidecar, write_model_files
from keras_surgeon_rl.rl.compat import setup
from keras_surgeon_rl.rl.persist import (_BOOL, _check, _check_files, _check_target_weights, _CLASS, _integer,
                                         _make_directory, _memory_settings, _NUMBER, _OBJECT, _optimizer_from,
                                         _read_memory, _RESAVE, AGENT, FORMAT, MEMORY, OPTIMIZER, publish_agent,
                                         replay_arrays, saved_settings, savez)
from keras_surgeon_rl.rl.resume_ddpg import SETTINGS, ddpg_settings, fresh_ddpg_optimizers
from keras_surgeon_rl.unit_ids import get_unit_ids, set_unit_ids

logger = logging.getLogger(__name__)
tf_keras = setup()

ACTOR = "actor.h5"
ACTOR_IDS = sidecar(ACTOR).name
CRITIC = "critic.h5"
CRITIC_IDS = sidecar(CRITIC).name
TARGET_ACTOR = "target_actor_weights.h5"
TARGET_CRITIC = "target_critic_weights.h5"
NETWORK_FILES = [ACTOR, ACTOR_IDS, CRITIC, CRITIC_IDS, TARGET_ACTOR, TARGET_CRITIC]

#: DDPG settings saved in agent.json (the processor and custom model objects are not saved).
SAVED_SETTINGS = tuple(k for k in SETTINGS if k not in ("processor", "custom_model_objects"))

_OPTIONAL_OBJECT = ("a JSON object or null", lambda v: v is None or isinstance(v, dict))
#: What a DDPG save's agent.json holds (see :data:`keras_surgeon_rl.rl.persist.SCHEMA`).
SCHEMA = {
    "nb_actions": _integer(1),
    "settings": {
        "gamma": _NUMBER,
        "batch_size": _integer(1),
        "nb_steps_warmup_critic": _integer(0),
        "nb_steps_warmup_actor": _integer(0),
        "train_interval": _integer(1),
        "memory_interval": _integer(1),
        "delta_clip": _NUMBER,
        "target_model_update": ("a number >= 0", lambda v: _NUMBER[1](v) and v >= 0),
    },
    "critic_action_input_idx": _integer(0),
    "random_process": _OPTIONAL_OBJECT,
    "actor_optimizer": _CLASS,
    "critic_optimizer": _CLASS,
    "memory": {"limit": _integer(1), "window_length": _integer(1), "ignore_episode_boundaries": _BOOL},
    "files": _OBJECT,
    "replay": _OPTIONAL_OBJECT,
}
_PROCESS = {"class_name": ("a non-empty string", lambda v: isinstance(v, str) and bool(v)), "config": _OBJECT,
            "state": _OBJECT}


# --- random process ---------------------------------------------------------------------------


def _encode(value, what: str):
    """A random process attribute as JSON: numbers and None as they are, arrays as {"array", "dtype"}."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, np.generic) and value.dtype.kind in "biuf":
        return value.item()
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return {"array": value.tolist(), "dtype": value.dtype.name}
    raise ModelFileError(f"cannot save the random process's {what!r} ({type(value).__name__}: {value!r:.60}); "
                         "only numbers and numeric NumPy arrays are saved. Save the agent with random_process=None "
                         "and pass random_process= to load_agent")


def _decode(value, path: Path, what: str):
    if isinstance(value, dict):
        try:
            return np.array(value["array"], dtype=np.dtype(value["dtype"]))
        except (KeyError, TypeError, ValueError) as e:
            raise ModelFileError(f"{path}: the random process's {what!r} is {value!r:.60}, expected an array "
                                 f"record {{'array': [...], 'dtype': ...}}; pass random_process= to load_agent, or "
                                 f"{_RESAVE}") from e
    return value


def process_record(process) -> Optional[dict]:
    """A keras-rl2 random process as JSON: its class, constructor config and state (every attribute).

    The config holds the constructor's arguments as the process keeps them (an annealed process's
    ``sigma_min`` and ``n_steps_annealing`` are derived from ``m`` and ``c``); the state holds all its
    attributes (``x_prev``, ``n_steps``, ``m``, ``c``, ...), which loading sets after construction, so
    the loaded process continues exactly.

    Args:
        process: a process from ``rl.random``, or ``None``.

    Returns:
        ``{"class_name", "config", "state"}``, or ``None``.

    Raises:
        ModelFileError: the process is not one of ``rl.random``'s classes, or holds something other
            than numbers and numeric arrays.

    Example:
        >>> process_record(OrnsteinUhlenbeckProcess(theta=.15, size=1))["config"]["theta"]
        0.15
    """
    if process is None:
        return None
    cls = type(process)
    if getattr(rl.random, cls.__name__, None) is not cls:
        raise ModelFileError(f"cannot save a {cls.__name__} random process: save_agent saves keras-rl2's own "
                             "(rl.random); pass random_process= to load_agent instead")
    state = {k: _encode(v, k) for k, v in vars(process).items()}
    config = {}
    for name in list(inspect.signature(cls.__init__).parameters)[1:]:
        if name in state:
            config[name] = state[name]
    if "sigma_min" in inspect.signature(cls.__init__).parameters:  # AnnealedGaussianProcess keeps m, c instead
        annealed = getattr(process, "m", 0.0) != 0.0
        config["sigma_min"] = float(process.sigma_min) if annealed else None
        if annealed:
            config["n_steps_annealing"] = float(process.sigma - process.sigma_min) / -float(process.m)
    return {"class_name": cls.__name__, "config": config, "state": state}


def process_from(record: Optional[dict], path: Path):
    """The random process :func:`process_record` recorded, in the recorded state."""
    if record is None:
        return None
    fix = f"pass random_process= to load_agent, or {_RESAVE}"
    _check(record, _PROCESS, path, "random_process.")
    name = record["class_name"]
    cls = getattr(rl.random, name, None)
    if not (isinstance(cls, type) and issubclass(cls, rl.random.RandomProcess)):
        raise ModelFileError(f"{path}: unknown keras-rl2 random process {name!r}; {fix}")
    config = {k: _decode(v, path, k) for k, v in record["config"].items()}
    try:
        process = cls(**config)
    except Exception as e:  # the process's own check of its arguments
        raise ModelFileError(f"{path}: the {name} random process cannot be built from its config {config!r:.80} "
                             f"({type(e).__name__}: {e}); {fix}") from e
    for key, value in record["state"].items():
        if key not in vars(process):
            raise ModelFileError(f"{path}: the {name} random process has no attribute {key!r}, which the save "
                                 f"records; {fix}")
        setattr(process, key, _decode(value, path, key))
    return process


# --- save ---------------------------------------------------------------------------------------


def _plain(model):
    """``model`` as an uncompiled Model over the same layers, with its unit IDs (keras-rl2 compiles the
    critic with a closure loss and a wrapper optimizer that a model file cannot hold)."""
    view = tf_keras.Model(model.inputs, model.outputs, name=model.name)
    ids = get_unit_ids(model)
    set_unit_ids(view, inputs=ids["inputs"], layers=ids["layers"])
    return view


def start_continuous_save(agent: Any, directory, memory: bool, optimizer: bool, saves: str):
    """What a ``DDPGAgent``'s or ``NAFAgent``'s save checks and reads before writing anything.

    Args:
        agent: the agent being saved.
        directory: where it is saved (created here once the checks pass).
        memory, optimizer: the save's options (``optimizer=True`` is refused).
        saves: what the save needs a compiled agent for, for the error message.

    Returns:
        ``(directory, memory arrays, memory record, random-process record)`` (the memory's ``None``
        without ``memory``).

    Raises:
        ModelFileError: ``optimizer=True``, an uncompiled agent, or a memory or random process that
            cannot be saved; nothing is written then.
    """
    kind = type(agent).__name__
    directory = Path(directory)
    if optimizer:
        raise ModelFileError(f"{directory / OPTIMIZER}: the optimizer state of a {kind} is not saved (only a "
                             "DQNAgent's); save with optimizer=False, and the loaded agent's optimizers start anew")
    if not getattr(agent, "compiled", False):
        raise ModelFileError(f"{directory}: save_agent needs a compiled {kind} (it saves {saves}); call "
                             "agent.compile first")
    arrays, record = replay_arrays(agent.memory, directory) if memory else (None, None)
    try:
        process = process_record(agent.random_process)
    except ModelFileError as e:
        raise ModelFileError(f"{directory / AGENT}: {e}") from e
    return _make_directory(directory), arrays, record, process


def save_ddpg(agent: DDPGAgent, directory, memory: bool = False, optimizer: bool = False) -> Path:
    """Save a compiled ``DDPGAgent``: networks with unit IDs, targets, settings, random process,
    optimizers' classes and configs and (optionally) the replay memory.

    Args:
        agent: a compiled keras-rl2 ``DDPGAgent``.
        directory: created if missing; the files of an earlier save in it are replaced together.
        memory: also save the replay memory (a ``SequentialMemory``; its action vectors are stacked).
        optimizer: must be ``False``: the optimizers' slot state of a ``DDPGAgent`` is not saved.

    Returns:
        The directory.

    Raises:
        ModelFileError: ``optimizer=True``, an uncompiled agent, a memory or random process that
            cannot be saved, or a directory that cannot be written; nothing in it is changed then.

    Example:
        >>> save_agent(ddpg_agent, "runs/pendulum", memory=True)   # calls save_ddpg
    """
    directory, arrays, record, process = start_continuous_save(agent, directory, memory, optimizer,
                                                               "the target networks and optimizers")
    actor_opt, critic_opt = fresh_ddpg_optimizers(agent)
    names = NETWORK_FILES + ([MEMORY] if memory else []) + [AGENT]

    def write(tmp):
        write_model_files(_plain(agent.actor), tmp[ACTOR], tmp[ACTOR_IDS], directory / ACTOR)
        write_model_files(_plain(agent.critic), tmp[CRITIC], tmp[CRITIC_IDS], directory / CRITIC)
        agent.target_actor.save_weights(str(tmp[TARGET_ACTOR]))
        agent.target_critic.save_weights(str(tmp[TARGET_CRITIC]))
        if memory:
            savez(tmp[MEMORY], **arrays)

    publish_agent(directory, names, write, {
        "format": FORMAT,
        "agent": "DDPGAgent",
        "nb_actions": agent.nb_actions,
        "settings": saved_settings(ddpg_settings(agent)),
        "critic_action_input_idx": agent.critic_action_input_idx,
        "random_process": process,
        "actor_optimizer": {"class_name": type(actor_opt).__name__, "config": actor_opt.get_config()},
        "critic_optimizer": {"class_name": type(critic_opt).__name__, "config": critic_opt.get_config()},
        "memory": {"limit": agent.memory.limit, "window_length": agent.memory.window_length,
                   "ignore_episode_boundaries": agent.memory.ignore_episode_boundaries},
        "replay": record,
    })
    logger.info("saved the DDPG agent to %s%s", directory, " with its replay memory" if memory else "")
    return directory


# --- load ---------------------------------------------------------------------------------------


def _check_networks(actor, critic, directory: Path, data: dict, memory_read: bool, processor) -> None:
    fix = f"it belongs to another agent: {_RESAVE}"
    n, idx = data["nb_actions"], data["critic_action_input_idx"]
    if len(actor.inputs) != 1 or len(actor.outputs) != 1 or actor.outputs[0].shape[-1] != n:
        raise ModelFileError(f"{directory / ACTOR}: has {len(actor.inputs)} inputs and outputs of "
                             f"{[o.shape[-1] for o in actor.outputs]} units; a DDPG actor has one observation input "
                             f"and one output of nb_actions={n} units ({AGENT}); {fix}")
    if len(critic.inputs) != 2 or len(critic.outputs) != 1 or critic.outputs[0].shape[-1] != 1:
        raise ModelFileError(f"{directory / CRITIC}: has {len(critic.inputs)} inputs and outputs of "
                             f"{[o.shape[-1] for o in critic.outputs]} units; a DDPG critic has an action and an "
                             f"observation input and one output of 1 unit; {fix}")
    if idx > 1 or critic.inputs[idx].shape[-1] != n:
        got = f"input {idx} has {critic.inputs[idx].shape[-1]} features" if idx <= 1 else f"has no input {idx}"
        raise ModelFileError(f"{directory / AGENT}: records the critic's action input at index {idx}, but "
                             f"{CRITIC} {got}, not nb_actions={n}; the file was edited or damaged: {_RESAVE}")
    obs = tuple(critic.inputs[1 - idx].shape[1:])
    if obs != tuple(actor.inputs[0].shape[1:]):
        raise ModelFileError(f"{directory / CRITIC}: reads observations of shape {obs}, {ACTOR} of shape "
                             f"{tuple(actor.inputs[0].shape[1:])}; {fix}")
    window = data["memory"]["window_length"]
    if processor is None and len(obs) >= 1 and obs[0] is not None and obs[0] != window:
        raise ModelFileError(f"{directory / ACTOR}: takes inputs of shape {obs}, but {AGENT} records window_length="
                             f"{window} (keras-rl2 feeds (window_length, *observation)); {fix}")
    if processor is None and memory_read:
        stored = tuple(data["replay"]["observation_shape"])
        if None not in obs[1:] and tuple(obs[1:]) != stored:
            raise ModelFileError(f"{directory / MEMORY}: holds observations of shape {stored}, but {ACTOR} takes "
                                 f"{obs[1:]} per frame; the memory belongs to another agent: {_RESAVE}")


def start_continuous_load(directory: Path, data: dict, memory: Any, optimizer_state: Any, network_files: list):
    """What a ``DDPGAgent``'s or ``NAFAgent``'s load checks and reads before building any network.

    Args:
        directory: the save's directory; ``data`` its checked agent.json.
        memory, optimizer_state: ``load_agent``'s options (``optimizer_state=True`` is refused: these
            saves hold none).
        network_files: the save's network and target files, checked with the memory file if it is read.

    Returns:
        ``(read_memory, memory)``: whether the saved replay memory was read, and the agent's memory
        (the one passed, the saved one, or an empty one of the saved settings).

    Raises:
        TypeError: an unknown ``memory`` or ``optimizer_state``.
        ModelFileError: ``optimizer_state=True``, ``memory=True`` without a saved memory, or a file
            that is missing or does not match agent.json.
    """
    path = directory / AGENT
    if memory not in ("auto", True, False) and not isinstance(memory, Memory):
        raise TypeError(f"load_agent(memory={memory!r}): use 'auto', True, False or a keras-rl2 Memory")
    if optimizer_state not in ("auto", True, False):
        raise TypeError(f"load_agent(optimizer_state={optimizer_state!r}): use 'auto', True or False")
    if optimizer_state is True:
        raise ModelFileError(f"{path}: a {data['agent']}'s save records no optimizer state; load with "
                             "optimizer_state='auto' or False")
    saved_memory = data["replay"] is not None
    if memory is True and not saved_memory:
        raise ModelFileError(f"{path}: records no replay memory (saved with memory=False); load with memory='auto' or "
                             "False, or save the agent with save_agent(..., memory=True)")
    read_memory = saved_memory and memory in ("auto", True)
    _check_files(directory, data, network_files + ([MEMORY] if read_memory else []))
    if isinstance(memory, Memory):
        return read_memory, memory
    if read_memory:
        return read_memory, _read_memory(directory, data)
    return read_memory, SequentialMemory(**_memory_settings(data))


def load_networks(directory: Path, names) -> list:
    """The saved networks ``names`` (model files with unit IDs) of an agent saved in ``directory``."""
    networks = []
    for name in names:
        try:
            networks.append(load_model(directory / name))
        except ModelFileError as e:
            raise ModelFileError(f"{e} (part of the agent saved in {directory}: {_RESAVE})") from e
    return networks


def load_ddpg(directory: Path, data: dict, processor: Any = None, optimizer: Any = None, memory: Any = "auto",
              optimizer_state: Any = "auto", random_process: Any = None) -> DDPGAgent:
    """The compiled ``DDPGAgent`` :func:`save_ddpg` saved in ``directory`` (``data``: its checked agent.json).

    Args:
        directory: what :func:`save_ddpg` wrote.
        data: its agent.json, checked by :func:`keras_surgeon_rl.rl.persist.load_agent`.
        processor: the agent's keras-rl2 processor (not saved).
        optimizer: ``[actor_optimizer, critic_optimizer]`` replacing the saved classes and configs.
        memory: as for :func:`~keras_surgeon_rl.rl.persist.load_agent`.
        optimizer_state: ``"auto"`` or ``False`` (a DDPG save holds no optimizer state; ``True`` is refused).
        random_process: replaces the saved random process.

    Returns:
        The agent, compiled, with actor, critic, both targets, unit IDs, random process and memory as saved.

    Raises:
        ModelFileError: naming the file at fault, before the agent is built where possible.

    Example:
        >>> agent = load_agent("runs/pendulum")   # calls load_ddpg
    """
    path = directory / AGENT
    if optimizer is not None and not (isinstance(optimizer, (list, tuple)) and len(optimizer) == 2):
        raise TypeError("load_agent(optimizer=...) of a DDPGAgent takes a pair [actor_optimizer, critic_optimizer]")
    read_memory, agent_memory = start_continuous_load(directory, data, memory, optimizer_state, NETWORK_FILES)
    optimizers = list(optimizer) if optimizer is not None else [
        _optimizer_from(data[key], path) for key in ("actor_optimizer", "critic_optimizer")]
    process = random_process if random_process is not None else process_from(data["random_process"], path)
    actor, critic = load_networks(directory, (ACTOR, CRITIC))
    _check_networks(actor, critic, directory, data, read_memory, processor)
    _check_target_weights(directory / TARGET_ACTOR, actor, ACTOR)
    _check_target_weights(directory / TARGET_CRITIC, critic, CRITIC)

    settings = {k: v for k, v in data["settings"].items() if k in SAVED_SETTINGS}
    state = dict(vars(process)) if process is not None else None
    idx = data["critic_action_input_idx"]
    try:
        agent = DDPGAgent(nb_actions=data["nb_actions"], actor=actor, critic=critic,
                          critic_action_input=critic.inputs[idx], memory=agent_memory, random_process=process,
                          processor=processor, **settings)
        agent.compile(optimizers, metrics=[])
        agent.target_actor.load_weights(str(directory / TARGET_ACTOR))
        agent.target_critic.load_weights(str(directory / TARGET_CRITIC))
    except Exception as e:  # the checks above passed, so the framework refused something they do not know of
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ModelFileError(f"{directory}: the DDPG agent cannot be rebuilt from {AGENT}, {ACTOR} and {CRITIC} "
                             f"({type(e).__name__}: {first:.200}); {_RESAVE}") from e
    if state is not None:  # DDPGAgent.__init__ resets the process (a new random x_prev): put the saved state back
        vars(process).update(state)
    logger.info("loaded the DDPG agent from %s (replay memory: %d entries)", directory,
                getattr(agent.memory, "nb_entries", 0))
    return agent
