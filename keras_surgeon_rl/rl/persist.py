"""Save and load what resuming a keras-rl2 ``DQNAgent`` (``DDPGAgent``, ``SARSAAgent``) needs, months later.

``agent.json``'s ``"agent"`` key names the agent type (a save without it holds a ``DQNAgent``). A
``DDPGAgent``'s files are described in :mod:`keras_surgeon_rl.rl.persist_ddpg`, a ``SARSAAgent``'s in
:mod:`keras_surgeon_rl.rl.persist_sarsa`; a ``DQNAgent``'s directory holds:

- ``network.h5`` and its unit-ID sidecar ``network.h5.ids.json`` (architecture, weights, unit IDs of
  features and actions; see :mod:`keras_surgeon_rl.io`),
- ``target_weights.h5``, the target network's weights,
- ``memory.npz``, the replay memory, only with ``save_agent(..., memory=True)`` (observations
  stacked into one array, actions, rewards and terminals as arrays; see
  :func:`keras_surgeon_rl.rl.memory.memory_arrays`),
- ``optimizer.npz``, the optimizer's state (iteration count and slots, e.g. Adam's moments), only
  with ``save_agent(..., optimizer=True)`` (see :mod:`keras_surgeon_rl.rl.optimizer_state`),
- ``agent.json``: the agent's settings, policies, optimizer class and config, the memory's
  settings, the optimizer state's record (only when saved), and the size and SHA-256 of every other file.

All files are published together (:mod:`keras_surgeon_rl.atomic`), ``agent.json`` last: a failed
save leaves the previous save, never a mix. The optimizer's slot state (e.g. Adam's moments) is saved
only on request (``optimizer=True``); by default the loaded agent's optimizer starts anew. The
agent's step counter is not saved (keras-rl2's ``fit`` restarts its step count anyway).

Loading checks before it builds anything: ``agent.json`` (JSON, format, every key and its type,
known policy and optimizer classes), then that every recorded file is there with its recorded size
and SHA-256 (so a truncated file, or one copied from another save, is named), then the memory's
arrays against their record, the network's outputs against ``nb_actions`` and the target weights'
shapes against the network. Every failure is a :class:`~keras_surgeon_rl.errors.ModelFileError`
naming the file, what is wrong and how to fix it. Saves of format 1 (no hashes, no memory) still
load, with all checks but the hashes.

Example:
    >>> save_agent(agent, "runs/cartpole", memory=True)
    >>> agent = load_agent("runs/cartpole")          # the replay memory too, as it was saved
    >>> new_agent = resume_dqn(agent, {"inputs": {"new": ["x", "x_dot", "theta", "theta_dot"]}})
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import zipfile
from pathlib import Path
from typing import Any, Callable, Union

import numpy as np
import rl.policy
from rl.agents.dqn import DQNAgent
from rl.memory import Memory, SequentialMemory

from keras_surgeon_rl.atomic import publishing
from keras_surgeon_rl.errors import ModelFileError
from keras_surgeon_rl.io import file_sha256, load_model, sidecar, write_model_files
from keras_surgeon_rl.rl.compat import setup
from keras_surgeon_rl.rl.memory import memory_arrays, memory_from_arrays
from keras_surgeon_rl.rl.optimizer_state import optimizer_state as read_optimizer_state
from keras_surgeon_rl.rl.optimizer_state import set_optimizer_state
from keras_surgeon_rl.rl.resume import (SETTINGS, _agent_model, _copy_into, agent_settings, fresh_optimizer,
                                       network_of, state_for_agent)
from keras_surgeon_rl.unit_ids import get_unit_ids, set_unit_ids

logger = logging.getLogger(__name__)
tf_keras = setup()

FORMAT = 2
#: Formats :func:`load_agent` reads: 1 (no file hashes, no memory) and 2.
READS = (1, 2)

AGENT = "agent.json"
NETWORK = "network.h5"
NETWORK_IDS = sidecar(NETWORK).name
TARGET = "target_weights.h5"
MEMORY = "memory.npz"
OPTIMIZER = "optimizer.npz"

_RESAVE = "restore the whole directory from a copy, or save the agent again with save_agent"
#: The keras-rl2 agent classes saved and loaded; agent.json's "agent" names one (absent: DQNAgent).
AGENT_TYPES = ("DQNAgent", "DDPGAgent", "SARSAAgent", "CEMAgent", "NAFAgent")
#: The module saving and loading each agent type but DQNAgent (its ``SCHEMA``, ``save_*`` and ``load_*``).
_MODULES = {"DDPGAgent": "keras_surgeon_rl.rl.persist_ddpg", "SARSAAgent": "keras_surgeon_rl.rl.persist_sarsa",
            "CEMAgent": "keras_surgeon_rl.rl.persist_cem", "NAFAgent": "keras_surgeon_rl.rl.persist_naf"}


# --- agent.json: its declared shape -------------------------------------------------------------

Rule = tuple  # (what is expected, in words; predicate)


def _integer(low: int) -> Rule:
    return f"an integer >= {low}", lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low


_NUMBER: Rule = ("a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool))
_BOOL: Rule = ("true or false", lambda v: isinstance(v, bool))
_NAME: Rule = ("a non-empty string", lambda v: isinstance(v, str) and bool(v))
_OBJECT: Rule = ("a JSON object", lambda v: isinstance(v, dict))
_CLASS = {"class_name": _NAME, "config": _OBJECT}

#: What agent.json holds: a nested dict is a JSON object with these keys, a tuple a rule for a value.
SCHEMA = {
    "nb_actions": _integer(1),
    "settings": {
        "gamma": _NUMBER,
        "batch_size": _integer(1),
        "nb_steps_warmup": _integer(0),
        "train_interval": _integer(1),
        "memory_interval": _integer(1),
        "target_model_update": ("a number >= 0", lambda v: _NUMBER[1](v) and v >= 0),
        "delta_clip": _NUMBER,
        "enable_double_dqn": _BOOL,
        "enable_dueling_network": _BOOL,
        "dueling_type": ("'avg', 'max' or 'naive'", lambda v: v in ("avg", "max", "naive")),
    },
    "policy": _CLASS,
    "test_policy": _CLASS,
    "optimizer": _CLASS,
    "memory": {"limit": _integer(1), "window_length": _integer(1), "ignore_episode_boundaries": _BOOL},
}
#: Added in format 2: the size and hash of every other file, and the saved memory's record (or null).
SCHEMA_2 = {**SCHEMA, "files": _OBJECT, "replay": ("a JSON object or null", lambda v: v is None or isinstance(v, dict))}
_FILE = {"bytes": _integer(0), "sha256": ("64 hex digits", lambda v: isinstance(v, str) and len(v) == 64
                                          and all(c in "0123456789abcdef" for c in v))}


_STRINGS: Rule = ("a list of strings", lambda v: isinstance(v, list) and all(isinstance(x, str) for x in v))
_SHAPE: Rule = ("a list of integers", lambda v: isinstance(v, list) and all(_integer(0)[1](x) for x in v))
#: agent.json's "optimizer_state", only in saves made with save_agent(..., optimizer=True).
OPTIMIZER_RECORD = {"class_name": _NAME, "iterations": _integer(0), "slot_names": _STRINGS, "extra": _STRINGS,
                    "weights": ("a list of {'layer', 'weight', 'shape'} objects", lambda v: isinstance(v, list) and all(
                        isinstance(w, dict) and _NAME[1](w.get("layer")) and _NAME[1](w.get("weight"))
                        and _SHAPE[1](w.get("shape")) for w in v))}


def _check(data: dict, schema: dict, path: Path, where: str = "") -> None:
    for key, rule in schema.items():
        name = f"{where}{key}"
        if key not in data:
            raise ModelFileError(f"{path}: has no {name!r}; the file was edited or damaged: {_RESAVE}")
        value = data[key]
        if isinstance(rule, dict):
            if not isinstance(value, dict):
                raise ModelFileError(f"{path}: {name!r} is {value!r:.60}, expected a JSON object; the file was edited "
                                     f"or damaged: {_RESAVE}")
            _check(value, rule, path, f"{name}.")
        elif not rule[1](value):
            raise ModelFileError(f"{path}: {name!r} is {value!r:.60}, expected {rule[0]}; the file was edited or "
                                 f"damaged: {_RESAVE}")


def _read_agent_json(directory: Path) -> dict:
    path = directory / AGENT
    if not directory.exists():
        raise ModelFileError(f"{directory}: no such directory; give the directory save_agent wrote")
    if not directory.is_dir():
        raise ModelFileError(f"{directory}: is a file, not a directory; give the directory save_agent wrote "
                             f"(it holds {AGENT}, {NETWORK} and {TARGET})")
    if not path.is_file():
        raise ModelFileError(f"{path}: missing, so {directory} holds no saved agent (or an interrupted save); "
                             "give the directory save_agent wrote, or save the agent again")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ModelFileError(f"{path}: cannot be read ({type(e).__name__}: {e}); {_RESAVE}") from e
    if not text.strip():
        raise ModelFileError(f"{path}: is empty (damaged after the save, which publishes complete files); {_RESAVE}")
    try:
        data = json.loads(text)
    except ValueError as e:
        raise ModelFileError(f"{path}: not valid JSON, truncated or damaged ({e}); {_RESAVE}") from e
    if not isinstance(data, dict):
        raise ModelFileError(f"{path}: holds a JSON {type(data).__name__}, not the object save_agent writes; "
                             f"{_RESAVE}")
    fmt = data.get("format")
    if "format" not in data:
        raise ModelFileError(f"{path}: has no 'format', so save_agent did not write it; give the directory "
                             "save_agent wrote, or save the agent again")
    if type(fmt) is int and fmt > FORMAT:
        raise ModelFileError(f"{path}: format {fmt} was written by a newer keras_surgeon_rl; this version reads "
                             f"formats {', '.join(map(str, READS))}: upgrade keras_surgeon_rl")
    if type(fmt) is not int or fmt not in READS:
        raise ModelFileError(f"{path}: format {fmt!r} is not one save_agent writes (it reads "
                             f"{', '.join(map(str, READS))}); {_RESAVE}")
    kind = data.get("agent", "DQNAgent")  # saves made before DDPGAgent was supported name no type: DQNAgent
    if kind not in AGENT_TYPES:
        raise ModelFileError(f"{path}: holds a {kind!r:.60} agent; this version loads "
                             f"{', '.join(AGENT_TYPES)}: upgrade keras_surgeon_rl, or {_RESAVE}")
    if kind != "DQNAgent":
        if fmt < 2:
            raise ModelFileError(f"{path}: format {fmt} holds only DQNAgents, but it names a {kind}; the file was "
                                 f"edited or damaged: {_RESAVE}")
        _check(data, importlib.import_module(_MODULES[kind]).SCHEMA, path)
        return data
    _check(data, SCHEMA_2 if fmt >= 2 else SCHEMA, path)
    record = data.get("optimizer_state")
    if record is not None:
        if not isinstance(record, dict):
            raise ModelFileError(f"{path}: 'optimizer_state' is {record!r:.60}, expected a JSON object or null; the "
                                 f"file was edited or damaged: {_RESAVE}")
        _check(record, OPTIMIZER_RECORD, path, "optimizer_state.")
    return data


# --- recorded files ----------------------------------------------------------------------------


def _check_files(directory: Path, data: dict, names: list) -> None:
    """Every file in ``names`` is there with the size and SHA-256 agent.json records (format 2)."""
    record = data["files"]
    for name in names:
        path = directory / name
        fix = {MEMORY: f"load with memory=False for an empty replay memory, or {_RESAVE}",
               OPTIMIZER: f"load with optimizer_state=False for a fresh optimizer, or {_RESAVE}"}.get(name, _RESAVE)
        if name not in record:
            raise ModelFileError(f"{directory / AGENT}: records no hash for {name}; the file was edited or damaged: "
                                 f"{_RESAVE}")
        _check(record[name], _FILE, directory / AGENT, f"files.{name}.")
        if not path.is_file():
            raise ModelFileError(f"{path}: missing from this save (deleted or never copied); {fix}")
        size = path.stat().st_size
        if size != record[name]["bytes"]:
            raise ModelFileError(f"{path}: does not belong to this save: {size:,} bytes, {AGENT} records "
                                 f"{record[name]['bytes']:,} (truncated, or copied from another save); {fix}")
        if file_sha256(path) != record[name]["sha256"]:
            raise ModelFileError(f"{path}: does not belong to this save: its SHA-256 differs from {AGENT}'s record "
                                 f"(changed, or copied from another save); {fix}")


# --- policies and optimizer ---------------------------------------------------------------------


def _policy_config(policy) -> dict:
    config = {k: v for k, v in policy.get_config().items()}
    if "inner_policy" in config:
        config["inner_policy"] = _policy_config(policy.inner_policy)
    return {"class_name": type(policy).__name__, "config": config}


def _policy_from(config: dict, path: Path, key: str):
    fix = f"pass {key}= to load_agent, or {_RESAVE}"
    if not (isinstance(config, dict) and isinstance(config.get("class_name"), str)
            and isinstance(config.get("config"), dict)):
        raise ModelFileError(f"{path}: {key!r} is {config!r:.60}, expected {{'class_name': ..., 'config': {{...}}}}; "
                             f"{fix}")
    name = config["class_name"]
    cls = getattr(rl.policy, name, None)
    if not (isinstance(cls, type) and issubclass(cls, rl.policy.Policy)):
        raise ModelFileError(f"{path}: unknown keras-rl2 policy {name!r} in {key!r}; {fix}")
    kwargs = dict(config["config"])
    if "inner_policy" in kwargs:
        kwargs["inner_policy"] = _policy_from(kwargs["inner_policy"], path, key)
    try:
        return cls(**kwargs)
    except Exception as e:  # keras-rl2's own check of the arguments
        raise ModelFileError(f"{path}: the {key!r} {name} cannot be built from its config {kwargs!r:.80} "
                             f"({type(e).__name__}: {e}); {fix}") from e


def _optimizer_from(config: dict, path: Path):
    fix = f"pass optimizer= to load_agent, or {_RESAVE}"
    name = config["class_name"]
    cls = getattr(tf_keras.optimizers.legacy, name, None)
    if not (isinstance(cls, type) and issubclass(cls, tf_keras.optimizers.legacy.Optimizer)):
        raise ModelFileError(f"{path}: unknown optimizer {name!r} (expected a tf_keras.optimizers.legacy class); {fix}")
    try:
        opt = cls.from_config(config["config"])
    except Exception as e:  # the optimizer's own check of its config
        raise ModelFileError(f"{path}: the {name} optimizer cannot be built from its config ({type(e).__name__}: "
                             f"{e}); {fix}") from e
    for key, value in opt.get_config().items():  # tf_keras takes any value for a hyperparameter, fails at compile
        if key != "name" and isinstance(value, str):
            raise ModelFileError(f"{path}: the {name} optimizer's {key!r} is {value!r:.40}, expected a number; {fix}")
    return opt


def _json_default(path: Path) -> Callable:
    def default(obj):
        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        raise ModelFileError(f"{path}: cannot save a {type(obj).__name__} ({obj!r:.60}) from the agent's settings or "
                             "policies as JSON; use plain numbers in them")
    return default


# --- save ---------------------------------------------------------------------------------------


def _make_directory(directory: os.PathLike) -> Path:
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ModelFileError(f"{directory}: cannot create the directory ({type(e).__name__}: {e}); choose another "
                             "path") from e
    return directory


#: Files only some saves write; a save without one removes an earlier save's (no longer recorded).
OPTIONAL_FILES = (MEMORY, OPTIMIZER)


def saved_settings(settings: dict) -> dict:
    """An agent's settings as ``agent.json`` keeps them: without ``processor`` (never saved; a warning
    if the agent has one) and ``custom_model_objects``."""
    settings = dict(settings)
    if settings.pop("processor", None) is not None:
        logger.warning("the agent's processor is not saved; pass processor= to load_agent")
    settings.pop("custom_model_objects", None)
    return settings


def replay_arrays(memory: Any, directory: Path) -> tuple[dict, dict]:
    """:func:`~keras_surgeon_rl.rl.memory.memory_arrays` of a replay memory being saved into ``directory``.

    Raises:
        ModelFileError: the memory cannot be saved in this format (naming the file and the fix).
    """
    try:
        return memory_arrays(memory)
    except ValueError as e:
        raise ModelFileError(f"{directory / MEMORY}: cannot save the replay memory: {e}; pass memory=False to "
                             "save the agent without it") from e


def savez(path: Path, **arrays) -> None:
    """``np.savez`` into ``path`` (a temporary file of :func:`publish_agent`)."""
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def publish_agent(directory: Path, names: list, write: Callable[[dict], None], data: dict) -> None:
    """Write a save's files and publish them together, ``agent.json`` (the last of ``names``) last.

    Args:
        directory: the save's directory (it exists).
        names: the file names of the save, ``AGENT`` last.
        write: ``write(tmp)`` writes every file of ``names`` but ``agent.json`` to ``tmp[name]``, a
            temporary path renamed into place only when every file is written.
        data: ``agent.json``'s content; the size and SHA-256 of every other file are added as ``"files"``.

    Raises:
        ModelFileError: a file could not be written (e.g. a full disk); the earlier save is left as it was.
    """
    with publishing(*(directory / n for n in names)) as tmps:
        tmp = dict(zip(names, tmps))
        try:
            write(tmp)
        except OSError as e:
            raise ModelFileError(f"{directory}: the agent could not be saved ({type(e).__name__}: {e}); free space "
                                 "or choose another directory") from e
        data = {**data, "files": {n: {"bytes": tmp[n].stat().st_size, "sha256": file_sha256(tmp[n])}
                                  for n in names[:-1]}}
        tmp[AGENT].write_text(json.dumps(data, indent=2, default=_json_default(directory / AGENT)))
    for stale in OPTIONAL_FILES:
        if stale not in names:
            (directory / stale).unlink(missing_ok=True)


def _optimizer_arrays(state: dict) -> tuple[dict, dict]:
    """The arrays of optimizer.npz and agent.json's record of them."""
    arrays = {f"{i}/{s}": a for i, w in enumerate(state["weights"]) for s, a in w["slots"].items()}
    arrays.update({f"extra/{k}": a for k, a in state["extra"].items()})
    record = {"class_name": state["class_name"], "iterations": state["iterations"],
              "slot_names": list(state["slot_names"]), "extra": list(state["extra"]),
              "weights": [{"layer": w["layer"], "weight": w["weight"], "shape": list(w["shape"]),
                           "slots": sorted(w["slots"])} for w in state["weights"]]}
    return arrays, record


def save_agent(agent: Any, directory: os.PathLike, memory: bool = False, optimizer: bool = False) -> Path:
    """Save a compiled ``DQNAgent``'s networks, unit IDs, settings and (optionally) replay memory.

    A ``DDPGAgent`` is saved by :func:`keras_surgeon_rl.rl.persist_ddpg.save_ddpg` (actor, critic,
    both targets, random process, optimizers' classes and configs; ``optimizer=True`` is refused), a
    ``SARSAAgent`` by :func:`keras_surgeon_rl.rl.persist_sarsa.save_sarsa`, a ``NAFAgent`` by
    :func:`keras_surgeon_rl.rl.persist_naf.save_naf`.

    Args:
        agent: a compiled keras-rl2 ``DQNAgent`` (plain, double or dueling).
        directory: created if missing; the files of an earlier save in it are replaced together.
        memory: also save the replay memory (a ``SequentialMemory`` whose observations are NumPy
            arrays of one shape), so that the loaded agent samples the same experiences.
        optimizer: also save the optimizer's state (iteration count and slots, e.g. Adam's
            moments; see :mod:`keras_surgeon_rl.rl.optimizer_state`), so that the loaded agent's
            optimizer goes on from it. The agent must have trained (an optimizer has no state before).

    Returns:
        The directory.

    Raises:
        ModelFileError: the directory cannot be written, (``memory=True``) the memory cannot be
            saved in this format, or (``optimizer=True``) the optimizer has no state yet; nothing
            in the directory is changed then.

    Example:
        >>> save_agent(agent, "runs/cartpole", memory=True, optimizer=True)
    """
    from rl.agents.ddpg import DDPGAgent
    from rl.agents.sarsa import SARSAAgent

    if isinstance(agent, DDPGAgent):
        from keras_surgeon_rl.rl.persist_ddpg import save_ddpg

        return save_ddpg(agent, directory, memory=memory, optimizer=optimizer)
    if isinstance(agent, SARSAAgent):
        from keras_surgeon_rl.rl.persist_sarsa import save_sarsa

        return save_sarsa(agent, directory, memory=memory, optimizer=optimizer)
    from rl.agents.cem import CEMAgent

    if isinstance(agent, CEMAgent):
        from keras_surgeon_rl.rl.persist_cem import save_cem

        return save_cem(agent, directory, memory=memory, optimizer=optimizer)
    from rl.agents.dqn import NAFAgent

    if isinstance(agent, NAFAgent):
        from keras_surgeon_rl.rl.persist_naf import save_naf

        return save_naf(agent, directory, memory=memory, optimizer=optimizer)
    if not isinstance(agent, DQNAgent):
        raise ModelFileError(f"{directory}: save_agent saves agents of types {', '.join(AGENT_TYPES)}, not a "
                             f"{type(agent).__name__}; save its networks with keras_surgeon_rl.io.save_model")
    directory = _make_directory(directory)
    arrays, record = replay_arrays(agent.memory, directory) if memory else (None, None)
    opt_arrays, opt_record = None, None
    if optimizer:
        state = read_optimizer_state(agent)
        if state is None:
            raise ModelFileError(f"{directory / OPTIMIZER}: the agent's optimizer has no state yet (it has never "
                                 "trained); train the agent first, or save with optimizer=False")
        opt_arrays, opt_record = _optimizer_arrays(state)
    opt = fresh_optimizer(agent)
    names = [NETWORK, NETWORK_IDS, TARGET] + [n for n, on in ((MEMORY, memory), (OPTIMIZER, optimizer)) if on] + [AGENT]

    def write(tmp):
        write_model_files(network_of(agent), tmp[NETWORK], tmp[NETWORK_IDS], directory / NETWORK)
        network_of(agent, target=True).save_weights(str(tmp[TARGET]))
        if memory:
            savez(tmp[MEMORY], **arrays)
        if optimizer:
            savez(tmp[OPTIMIZER], **opt_arrays)

    data = {
        "format": FORMAT,
        "agent": "DQNAgent",
        "nb_actions": agent.nb_actions,
        "settings": saved_settings(agent_settings(agent)),
        "policy": _policy_config(agent.policy),
        "test_policy": _policy_config(agent.test_policy),
        "optimizer": {"class_name": type(opt).__name__, "config": opt.get_config()},
        "memory": {"limit": agent.memory.limit, "window_length": agent.memory.window_length,
                   "ignore_episode_boundaries": agent.memory.ignore_episode_boundaries},
        "replay": record,
    }
    if optimizer:  # only then: a default save's agent.json is what it was before the option existed
        data["optimizer_state"] = opt_record
    publish_agent(directory, names, write, data)
    logger.info("saved the agent to %s%s%s", directory, " with its replay memory" if memory else "",
                " with its optimizer state" if optimizer else "")
    return directory


# --- load ---------------------------------------------------------------------------------------


def _memory_settings(data: dict) -> dict:
    return {k: data["memory"][k] for k in SCHEMA["memory"]}


def _read_memory(directory: Path, data: dict) -> SequentialMemory:
    path = directory / MEMORY
    fix = f"load with memory=False for an empty replay memory, or {_RESAVE}"
    arrays = {}
    try:
        with np.load(path, allow_pickle=False) as z:
            for key in z.files:
                arrays[key] = z[key]
    except FileNotFoundError as e:
        raise ModelFileError(f"{path}: missing from this save; {fix}") from e
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise ModelFileError(f"{path}: not a readable NumPy .npz archive, truncated or damaged ({type(e).__name__}: "
                             f"{e}); {fix}") from e
    try:
        return memory_from_arrays(arrays, data["replay"], nb_actions=data["nb_actions"], **_memory_settings(data))
    except (ValueError, TypeError) as e:
        raise ModelFileError(f"{path}: does not match {AGENT}'s record of the memory: {e}; {fix}") from e


def _read_optimizer_state(directory: Path, data: dict) -> dict:
    """The state optimizer.npz holds, checked against agent.json's record of it."""
    path, record = directory / OPTIMIZER, data["optimizer_state"]
    fix = f"load with optimizer_state=False for a fresh optimizer, or {_RESAVE}"
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {key: z[key] for key in z.files}
    except FileNotFoundError as e:
        raise ModelFileError(f"{path}: missing from this save; {fix}") from e
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise ModelFileError(f"{path}: not a readable NumPy .npz archive, truncated or damaged ({type(e).__name__}: "
                             f"{e}); {fix}") from e
    weights = []
    for i, w in enumerate(record["weights"]):
        slots = {}
        for slot in w.get("slots", record["slot_names"]):
            a = arrays.get(f"{i}/{slot}")
            if a is None or tuple(a.shape) != tuple(w["shape"]):
                got = "missing" if a is None else f"of shape {tuple(a.shape)}"
                raise ModelFileError(f"{path}: the {slot!r} slot of weight {w['weight']!r} of layer {w['layer']!r} is "
                                     f"{got}, {AGENT} records shape {tuple(w['shape'])}; {fix}")
            slots[slot] = a
        weights.append({"layer": w["layer"], "weight": w["weight"], "shape": tuple(w["shape"]), "slots": slots})
    extra = {}
    for k in record["extra"]:
        if f"extra/{k}" not in arrays:
            raise ModelFileError(f"{path}: has no optimizer variable {k!r}, which {AGENT} records; {fix}")
        extra[k] = arrays[f"extra/{k}"]
    return {"class_name": record["class_name"], "iterations": record["iterations"],
            "slot_names": list(record["slot_names"]), "extra": extra, "weights": weights}


def _check_network(network, directory: Path, data: dict, memory_read: bool, processor) -> None:
    path, dueling = directory / NETWORK, data["settings"]["enable_dueling_network"]
    fix = f"it belongs to another agent: {_RESAVE}"
    if len(network.inputs) != 1 or len(network.outputs) != 1:
        raise ModelFileError(f"{path}: has {len(network.inputs)} inputs and {len(network.outputs)} outputs; a DQN "
                             f"network has one of each; {fix}")
    units = network.outputs[0].shape[-1]
    expected = data["nb_actions"] + (1 if dueling else 0)
    if units != expected:
        dueling_head = f", so a dueling head of {expected} units (value and advantages)" if dueling else ""
        raise ModelFileError(f"{path}: its output has {units} units, but {AGENT} records nb_actions="
                             f"{data['nb_actions']}{dueling_head}; {fix}")
    shape = tuple(network.inputs[0].shape[1:])
    window = data["memory"]["window_length"]
    if processor is None and len(shape) >= 1 and shape[0] is not None and shape[0] != window:
        raise ModelFileError(f"{path}: takes inputs of shape {shape}, but {AGENT} records window_length={window} "
                             f"(keras-rl2 feeds (window_length, *observation)); {fix}")
    if processor is None and memory_read:
        obs = tuple(data["replay"]["observation_shape"])
        if None not in shape[1:] and tuple(shape[1:]) != obs:
            raise ModelFileError(f"{directory / MEMORY}: holds observations of shape {obs}, but {NETWORK} takes "
                                 f"{shape[1:]} per frame; the memory belongs to another agent: {_RESAVE}")


def _weight_shapes(model) -> list:
    return [[tuple(int(d) for d in w.shape) for w in layer.weights] for layer in model.layers if layer.weights]


def _check_target_weights(path: Path, network, network_file: str = NETWORK) -> None:
    """The weight file's layers (those with weights, in order, as tf_keras loads them) fit ``network``
    (loaded from ``network_file``)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            file_shapes = []
            for name in f.attrs["layer_names"]:
                group = f[name.decode() if isinstance(name, bytes) else name]
                shapes = [tuple(group[w.decode() if isinstance(w, bytes) else w].shape)
                          for w in group.attrs["weight_names"]]
                if shapes:
                    file_shapes.append(shapes)
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise ModelFileError(f"{path}: not a tf_keras HDF5 weight file, truncated or damaged ({type(e).__name__}: "
                             f"{e}); {_RESAVE}") from e
    net_shapes = _weight_shapes(network)
    if file_shapes != net_shapes:
        if len(file_shapes) != len(net_shapes):
            diff = f"{len(file_shapes)} layers with weights in the file, {len(net_shapes)} in {network_file}"
        else:
            i = next(i for i, (a, b) in enumerate(zip(file_shapes, net_shapes)) if a != b)
            diff = (f"layer {i + 1} with weights has shapes {file_shapes[i]} in the file, {net_shapes[i]} in "
                    f"{network_file}")
        raise ModelFileError(f"{path}: does not fit {network_file} ({diff}); it was saved from another network: "
                             f"{_RESAVE}")


def load_agent(directory: os.PathLike, processor: Any = None, policy: Any = None, test_policy: Any = None,
               optimizer: Any = None, memory: Union[str, bool, Memory] = "auto",
               optimizer_state: Union[str, bool] = "auto", random_process: Any = None) -> Any:
    """A compiled ``DQNAgent`` or ``DDPGAgent`` as :func:`save_agent` left it.

    ``agent.json`` says which agent type the directory holds (saves without that key hold a
    ``DQNAgent``). For a ``DDPGAgent`` see :func:`keras_surgeon_rl.rl.persist_ddpg.load_ddpg`:
    ``policy`` and ``test_policy`` do not apply, ``optimizer`` is a pair ``[actor, critic]``. For a
    ``SARSAAgent`` see :func:`keras_surgeon_rl.rl.persist_sarsa.load_sarsa`, for a ``NAFAgent``
    :func:`keras_surgeon_rl.rl.persist_naf.load_naf` (no policies; ``random_process`` applies).

    Args:
        directory: what :func:`save_agent` wrote.
        processor: the agent's keras-rl2 processor (not saved).
        policy, test_policy, optimizer: replace the saved ones (e.g. a custom policy class).
        memory: ``"auto"``: the saved replay memory if there is one, else an empty one; ``True``:
            the saved memory (refuse if none was saved); ``False``: an empty memory (the memory
            file is not read); or a keras-rl2 ``Memory`` to use.
        optimizer_state: ``"auto"``: the saved optimizer state (``save_agent(...,
            optimizer=True)``) if there is one, else a fresh optimizer; ``True``: the saved state
            (refuse if none was saved); ``False``: a fresh optimizer (the file is not read). A
            given ``optimizer`` must then be of the saved class and configuration.
        random_process: (``DDPGAgent`` only) replaces the saved random process.

    Returns:
        The agent, compiled, with online and target weights, unit IDs, memory and (if saved)
        optimizer state as saved.

    Raises:
        ModelFileError: naming the file that is missing, damaged or belongs to another save, what
            is wrong with it and how to fix it; raised before the agent is built where possible.

    Example:
        >>> agent = load_agent("runs/cartpole")
        >>> agent.fit(env, nb_steps=10_000)
    """
    if memory not in ("auto", True, False) and not isinstance(memory, Memory):
        raise TypeError(f"load_agent(memory={memory!r}): use 'auto', True, False or a keras-rl2 Memory")
    directory = Path(directory)
    data = _read_agent_json(directory)
    path = directory / AGENT
    if data.get("agent", "DQNAgent") == "DDPGAgent":
        from keras_surgeon_rl.rl.persist_ddpg import load_ddpg

        if policy is not None or test_policy is not None:
            raise TypeError(f"load_agent: {path} holds a DDPGAgent, which has no policy or test_policy (its "
                            "exploration is the random process); pass random_process= instead")
        return load_ddpg(directory, data, processor=processor, optimizer=optimizer, memory=memory,
                         optimizer_state=optimizer_state, random_process=random_process)
    if data.get("agent") == "SARSAAgent":
        from keras_surgeon_rl.rl.persist_sarsa import load_sarsa

        return load_sarsa(directory, data, processor=processor, policy=policy, test_policy=test_policy,
                          optimizer=optimizer, memory=memory, optimizer_state=optimizer_state)
    if data.get("agent") == "CEMAgent":
        from keras_surgeon_rl.rl.persist_cem import load_cem

        return load_cem(directory, data, processor=processor, policy=policy, test_policy=test_policy,
                        optimizer=optimizer, memory=memory, optimizer_state=optimizer_state)
    if data.get("agent") == "NAFAgent":
        from keras_surgeon_rl.rl.persist_naf import load_naf

        if policy is not None or test_policy is not None:
            raise TypeError(f"load_agent: {path} holds a NAFAgent, which has no policy or test_policy (its "
                            "exploration is the random process); pass random_process= instead")
        return load_naf(directory, data, processor=processor, optimizer=optimizer, memory=memory,
                        optimizer_state=optimizer_state, random_process=random_process)
    saved_memory = data.get("replay") is not None
    if memory is True and not saved_memory:
        raise ModelFileError(f"{path}: records no replay memory (saved with memory=False, or by format 1); load with "
                             "memory='auto' or False, or save the agent with save_agent(..., memory=True)")
    read_memory = saved_memory and memory in ("auto", True)
    if optimizer_state not in ("auto", True, False):
        raise TypeError(f"load_agent(optimizer_state={optimizer_state!r}): use 'auto', True or False")
    saved_state = data.get("optimizer_state") is not None
    if optimizer_state is True and not saved_state:
        raise ModelFileError(f"{path}: records no optimizer state (saved without optimizer=True); load with "
                             "optimizer_state='auto' or False, or save the agent with save_agent(..., optimizer=True)")
    read_state = saved_state and optimizer_state in ("auto", True)
    if data["format"] >= 2:
        _check_files(directory, data, [NETWORK, NETWORK_IDS, TARGET] + ([MEMORY] if read_memory else [])
                     + ([OPTIMIZER] if read_state else []))
    else:
        logger.info("%s: format 1 records no file hashes; save the agent again to have its files checked", path)
    policy = policy or _policy_from(data["policy"], path, "policy")
    test_policy = test_policy or _policy_from(data["test_policy"], path, "test_policy")
    optimizer = optimizer or _optimizer_from(data["optimizer"], path)
    if isinstance(memory, Memory):
        agent_memory = memory
    elif read_memory:
        agent_memory = _read_memory(directory, data)
    else:
        agent_memory = SequentialMemory(**_memory_settings(data))
    state = _read_optimizer_state(directory, data) if read_state else None

    try:
        network = load_model(directory / NETWORK)
    except ModelFileError as e:
        raise ModelFileError(f"{e} (part of the agent saved in {directory}: {_RESAVE})") from e
    _check_network(network, directory, data, read_memory, processor)
    _check_target_weights(directory / TARGET, network)

    settings = {k: v for k, v in data["settings"].items() if k in SETTINGS}
    dueling = settings["enable_dueling_network"]
    try:
        model = _agent_model(network, dueling, data["nb_actions"])
        agent = DQNAgent(model=model, nb_actions=data["nb_actions"], memory=agent_memory, policy=policy,
                         test_policy=test_policy, processor=processor, **settings)
        _copy_into(agent.model, network, dueling)
        agent.compile(optimizer, metrics=[])
        network_of(agent, target=True).load_weights(str(directory / TARGET))
    except Exception as e:  # the checks above passed, so the framework refused something they do not know of
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise ModelFileError(f"{directory}: the agent cannot be rebuilt from {AGENT}, {NETWORK} and {TARGET} "
                             f"({type(e).__name__}: {first:.200}); {_RESAVE}") from e
    ids = get_unit_ids(network)
    if dueling:
        ids["layers"][agent.model.layers[-2].name] = ids["layers"].pop(network.layers[-1].name, None)
    set_unit_ids(agent.model, inputs=ids["inputs"], layers={k: v for k, v in ids["layers"].items() if v is not None},
                 replace=True)
    if state is not None:
        try:
            set_optimizer_state(agent, state_for_agent(state, network, agent))
        except ValueError as e:
            raise ModelFileError(f"{directory / OPTIMIZER}: does not fit the agent: {e}; or load with "
                                 "optimizer_state=False for a fresh optimizer") from e
    logger.info("loaded the agent from %s (replay memory: %d entries; optimizer state: %s)", directory,
                getattr(agent.memory, "nb_entries", 0), "as saved" if state is not None else "fresh")
    return agent
