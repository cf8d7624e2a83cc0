"""Carrying a keras-rl2 replay memory over to an agent with changed actions (discrete: :func:`carry_memory`,
continuous: :func:`carry_action_columns`), and to NumPy arrays.

:func:`memory_arrays` turns a ``SequentialMemory`` into a few NumPy arrays (observations stacked
into one) and a small JSON record; :func:`memory_from_arrays` checks them against each other and
rebuilds a memory that samples the same experiences (same values, same Python or NumPy scalar types,
so a batch built from them has the same dtypes).
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Optional

import numpy as np

from rl.memory import SequentialMemory, sample_batch_indexes

logger = logging.getLogger(__name__)


class CarriedSequentialMemory(SequentialMemory):
    """A ``SequentialMemory`` whose entries can be marked unusable as transition starts.

    Carried-over transitions whose action no longer exists keep their observation (it is the next
    state of the transition before it) but are never sampled. New entries are always usable.
    """

    def __init__(self, limit: int, **kwargs):
        super().__init__(limit, **kwargs)
        self.usable = deque(maxlen=limit)  # kept in step with the memory's own deques

    def append(self, observation, action, reward, terminal, training=True, usable=True):
        super().append(observation, action, reward, terminal, training=training)
        if training:
            self.usable.append(bool(usable))

    def sample(self, batch_size, batch_idxs=None):
        if batch_idxs is None:
            batch_idxs = []
            for _ in range(1000):
                for b in sample_batch_indexes(self.window_length, self.nb_entries - 1, size=batch_size - len(batch_idxs)):
                    if self.usable[b] and not self.terminals[b - 1]:
                        batch_idxs.append(b)
                if len(batch_idxs) == batch_size:
                    break
            else:
                raise RuntimeError("the replay memory has too few usable transitions to fill a batch")
        return super().sample(batch_size, batch_idxs)


def carry_memory(old: SequentialMemory, action_map: np.ndarray,
                 window_length: Optional[int] = None) -> CarriedSequentialMemory:
    """A copy of ``old`` with actions renumbered; transitions of removed actions are never sampled.

    Args:
        old: the old agent's memory.
        action_map: for each old action index, its new index (``-1``: removed).
        window_length: the new agent's window (frames per state; default: the old one's). The
            memory stores single observations, so a longer window reads them as they are.

    Returns:
        A new memory with the same limit and episode-boundary setting.
    """
    new = CarriedSequentialMemory(old.limit, window_length=window_length or old.window_length,
                                  ignore_episode_boundaries=old.ignore_episode_boundaries)
    dropped = 0
    for i in range(old.nb_entries):
        a = int(action_map[int(old.actions[i])])
        dropped += a < 0
        new.append(old.observations[i], max(a, 0), old.rewards[i], old.terminals[i], usable=a >= 0)
    logger.info("carried %d replay entries over (%d of removed actions, never sampled)", old.nb_entries, dropped)
    return new


def carry_action_columns(old: SequentialMemory, old_actions: list, new_actions: list,
                         window_length: Optional[int] = None) -> SequentialMemory:
    """A copy of ``old`` whose stored continuous action vectors are mapped by action ID.

    keras-rl2's ``DDPGAgent`` stores each action as a vector of ``nb_actions`` values. Column ``j``
    of a carried action is the old column of ``new_actions[j]``; a new action's column holds the
    neutral value ``0``, a removed action's column is dropped. Every transition stays usable.

    Args:
        old: the old agent's memory; never modified.
        old_actions, new_actions: the action IDs before and after, one per column.
        window_length: the new agent's window (default: the old one's).

    Returns:
        A new ``SequentialMemory`` with the same limit and episode-boundary setting.

    Raises:
        ValueError: a stored action is not a vector of ``len(old_actions)`` values.

    Example:
        >>> new = carry_action_columns(agent.memory, ["main"], ["main", "lateral"])
        >>> new.actions[0]  # array([a_main, 0.])
    """
    from keras_surgeon_rl.ids import index_of

    columns = index_of(old_actions, new_actions)
    kept = columns >= 0
    new = SequentialMemory(old.limit, window_length=window_length or old.window_length,
                           ignore_episode_boundaries=old.ignore_episode_boundaries)
    for i in range(old.nb_entries):
        action = np.asarray(old.actions[i])
        if action.shape != (len(old_actions),):
            raise ValueError(f"stored action {i} has shape {action.shape}, expected ({len(old_actions)},): one value "
                             f"per old action {old_actions}")
        mapped = np.zeros(len(new_actions), action.dtype)
        mapped[kept] = action[columns[kept]]
        new.append(old.observations[i], mapped, old.rewards[i], old.terminals[i])
    logger.info("carried %d replay entries over, action columns %s → %s", old.nb_entries, old_actions, new_actions)
    return new


#: Scalar fields of a ``SequentialMemory`` (and of ``Memory``'s recent window), saved with their item types.
SCALAR_FIELDS = ("actions", "rewards", "terminals", "recent_terminals")
_PYTHON = {"bool": bool, "int": int, "float": float}


def _scalar_type(x) -> str:
    if isinstance(x, np.generic) and x.dtype.kind in "biuf":
        return f"numpy:{x.dtype.name}"
    if type(x) in _PYTHON.values():
        return f"python:{type(x).__name__}"
    raise ValueError(f"holds a {type(x).__name__} ({x!r:.40}); only Python or NumPy bool, int and float scalars "
                     "are saved")


def _kind(name: str) -> str:
    """``"b"``, ``"i"`` or ``"f"``: how the values of a scalar type are stored; ValueError if unknown."""
    flavour, _, dtype = name.partition(":")
    if flavour == "python" and dtype in _PYTHON:
        return {"bool": "b", "int": "i", "float": "f"}[dtype]
    if flavour == "numpy":
        try:
            kind = np.dtype(dtype).kind
        except TypeError:
            kind = None
        if kind in ("b", "i", "u", "f"):
            return "i" if kind == "u" else kind
    raise ValueError(f"unknown scalar type {name!r}")


_STORED = {"b": np.dtype(bool), "i": np.dtype(np.int64), "f": np.dtype(np.float64)}


def _stored_dtype(names: list) -> np.dtype:
    kinds = {_kind(n) for n in names}
    return _STORED["f" if "f" in kinds else "i" if "i" in kinds else "b"]


def _scalars_to_array(field: str, items) -> tuple[dict, list]:
    items = list(items)
    try:
        types = [_scalar_type(x) for x in items]
    except ValueError as e:
        raise ValueError(f"the memory's {field} {e}") from None
    names = sorted(set(types))
    arrays = {field: np.array([x.item() if isinstance(x, np.generic) else x for x in items], dtype=_stored_dtype(names))
              if items else np.zeros(0, _STORED["b"])}
    if len(names) > 1:
        code = {n: i for i, n in enumerate(names)}
        arrays[f"{field}_types"] = np.array([code[t] for t in types], dtype=np.uint8)
    return arrays, names


def _array_to_scalars(values: np.ndarray, names: list, codes: Optional[np.ndarray]) -> list:
    converted = []
    for name in names:
        flavour, _, dtype = name.partition(":")
        if flavour == "python":
            converted.append(values.astype(_PYTHON[dtype]).tolist())
        else:
            converted.append(list(values.astype(dtype)))
    if len(names) == 1:
        return converted[0]
    return [converted[c][i] for i, c in enumerate(codes.tolist())]


def _stack(field: str, items, shape: Optional[tuple], dtype: Optional[np.dtype]) -> np.ndarray:
    items = list(items)
    for x in items:
        if not isinstance(x, np.ndarray) or x.dtype.kind not in "biuf":
            raise ValueError(f"the memory's {field} hold a {type(x).__name__}"
                             f"{' of dtype ' + str(x.dtype) if isinstance(x, np.ndarray) else ''}; only numeric "
                             "NumPy arrays are saved")
        if shape is None:
            shape, dtype = x.shape, x.dtype
        if x.shape != shape or x.dtype != dtype:
            raise ValueError(f"the memory's {field} differ in shape or dtype ({shape} {dtype} and {x.shape} "
                             f"{x.dtype}); only observations of one shape and dtype are saved")
    if not items:
        return np.zeros((0,) + (shape or ()), dtype or np.float32)
    return np.stack(items)


def memory_arrays(memory: SequentialMemory) -> tuple[dict, dict]:
    """The contents of a ``SequentialMemory`` as NumPy arrays, and a JSON record to rebuild it.

    Args:
        memory: a keras-rl2 ``SequentialMemory`` or a :class:`CarriedSequentialMemory` whose
            observations are NumPy arrays of one shape and dtype, whose actions are Python or NumPy
            scalars (``DQNAgent``) or float NumPy vectors of one shape and dtype (``DDPGAgent``; then
            stacked into one array, and the record holds ``action_shape`` and ``action_dtype``),
            and whose rewards and terminals are Python or NumPy scalars.

    Returns:
        ``(arrays, record)``: arrays for ``np.savez`` (observations stacked into one array; each
        scalar field as one array, plus ``<field>_types`` codes when it mixes types such as Python
        ``int`` and ``np.int64``), and a JSON-ready record of what :func:`memory_from_arrays` checks.

    Raises:
        ValueError: the memory is of another class, or holds something this format cannot store.

    Example:
        >>> arrays, record = memory_arrays(agent.memory)
        >>> np.savez("memory.npz", **arrays)
    """
    if type(memory) not in (SequentialMemory, CarriedSequentialMemory):
        raise ValueError(f"the memory is a {type(memory).__name__}; only SequentialMemory (and the "
                         "CarriedSequentialMemory of resume_dqn) is saved")
    observations = _stack("observations", memory.observations, None, None)
    shape = observations.shape[1:] if len(memory.observations) else None
    dtype = observations.dtype if len(memory.observations) else None
    recent = _stack("recent observations", memory.recent_observations, shape, dtype)
    if shape is None and len(memory.recent_observations):
        shape, dtype = recent.shape[1:], recent.dtype
        observations = np.zeros((0,) + shape, dtype)
    arrays = {"observations": observations, "recent_observations": recent}
    types = {}
    vector_actions = len(memory.actions) and isinstance(memory.actions[0], np.ndarray)
    for field in SCALAR_FIELDS:
        if field == "actions" and vector_actions:  # DDPGAgent's continuous action vectors, stacked
            arrays["actions"] = _stack("actions", memory.actions, None, None)
            types["actions"] = []
            continue
        field_arrays, types[field] = _scalars_to_array(field, getattr(memory, field))
        arrays.update(field_arrays)
    carried = isinstance(memory, CarriedSequentialMemory)
    if carried:
        arrays["usable"] = np.array(list(memory.usable), dtype=bool)
    record = {"class": type(memory).__name__, "nb_entries": int(memory.nb_entries),
              "nb_recent": len(memory.recent_observations),
              "observation_shape": [int(d) for d in observations.shape[1:]],
              "observation_dtype": observations.dtype.name, "types": types}
    if vector_actions:
        record["action_shape"] = [int(d) for d in arrays["actions"].shape[1:]]
        record["action_dtype"] = arrays["actions"].dtype.name
    return arrays, record


def _expect(arrays: dict, key: str, shape: tuple, kinds: str) -> np.ndarray:
    if key not in arrays:
        raise ValueError(f"has no array {key!r}")
    a = arrays[key]
    if a.shape != shape:
        raise ValueError(f"its {key!r} has shape {a.shape}, expected {shape}")
    if a.size and a.dtype.kind not in kinds:
        raise ValueError(f"its {key!r} has dtype {a.dtype}, expected {'/'.join(_KIND_NAMES[k] for k in kinds)}")
    return a


_KIND_NAMES = {"b": "bool", "i": "int", "u": "unsigned int", "f": "float"}


def memory_from_arrays(arrays: dict, record: dict, *, limit: int, window_length: int,
                       ignore_episode_boundaries: bool = False, nb_actions: Optional[int] = None) -> SequentialMemory:
    """A memory rebuilt from :func:`memory_arrays`' output, after checking the arrays against the record.

    Args:
        arrays: the arrays (e.g. from ``np.load``).
        record: the record :func:`memory_arrays` returned.
        limit, window_length, ignore_episode_boundaries: the memory's settings.
        nb_actions: if given, every stored action must be in ``0..nb_actions-1`` (or, for action
            vectors, have shape ``(nb_actions,)``).

    Returns:
        A ``SequentialMemory`` (or a :class:`CarriedSequentialMemory`, as saved) with the same
        entries, recent window and item types.

    Raises:
        ValueError: saying what does not match (a missing array, a shape, a dtype, a count).
    """
    classes = {"SequentialMemory": SequentialMemory, "CarriedSequentialMemory": CarriedSequentialMemory}
    cls = classes.get(record.get("class"))
    if cls is None:
        raise ValueError(f"the record names memory class {record.get('class')!r}; expected SequentialMemory or "
                         "CarriedSequentialMemory")
    n, k = record.get("nb_entries"), record.get("nb_recent")
    shape, dtype = record.get("observation_shape"), record.get("observation_dtype")
    if not (isinstance(n, int) and 0 <= n <= limit):
        raise ValueError(f"the record's nb_entries is {n!r}, expected an integer from 0 to the memory's limit {limit}")
    if not (isinstance(k, int) and 0 <= k <= window_length):
        raise ValueError(f"the record's nb_recent is {k!r}, expected an integer from 0 to window_length "
                         f"{window_length}")
    if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
        raise ValueError(f"the record's observation_shape is {shape!r}, expected a list of sizes")
    obs = _expect(arrays, "observations", (n, *shape), "biuf")
    recent = _expect(arrays, "recent_observations", (k, *shape), "biuf")
    for key, a in (("observations", obs), ("recent_observations", recent)):
        if a.dtype.name != dtype:
            raise ValueError(f"its {key!r} has dtype {a.dtype}, the record says {dtype}")
    types = record.get("types")
    if not isinstance(types, dict):
        raise ValueError("the record has no scalar types")
    scalars = {}
    action_shape = record.get("action_shape")
    if action_shape is not None:  # action vectors (DDPGAgent)
        if not (isinstance(action_shape, list) and all(isinstance(d, int) and d >= 0 for d in action_shape)):
            raise ValueError(f"the record's action_shape is {action_shape!r}, expected a list of sizes")
        if nb_actions is not None and action_shape != [nb_actions]:
            raise ValueError(f"its actions are vectors of shape {tuple(action_shape)}, but the agent has "
                             f"{nb_actions} action dimensions")
        vectors = _expect(arrays, "actions", (n, *action_shape), "f")
        if vectors.dtype.name != record.get("action_dtype"):
            raise ValueError(f"its 'actions' has dtype {vectors.dtype}, the record says {record.get('action_dtype')}")
        scalars["actions"] = list(vectors)
    for field in SCALAR_FIELDS:
        if field in scalars:
            continue
        names, size = types.get(field), (k if field.startswith("recent") else n)
        if not (isinstance(names, list) and all(isinstance(t, str) for t in names) and (names or not size)):
            raise ValueError(f"the record's types of {field!r} are {names!r}, expected a list of type names")
        stored = _stored_dtype(names) if names else _STORED["b"]
        values = _expect(arrays, field, (size,), stored.kind)
        codes = None
        if len(names) > 1:
            codes = _expect(arrays, f"{field}_types", (size,), "u")
            if codes.size and int(codes.max()) >= len(names):
                raise ValueError(f"its {field + '_types'!r} has codes up to {int(codes.max())}, but the record names "
                                 f"{len(names)} types")
        scalars[field] = _array_to_scalars(values, names, codes) if size else []
    if nb_actions is not None and n and action_shape is None:
        actions = arrays["actions"]
        if actions.min() < 0 or actions.max() >= nb_actions or not np.all(actions == np.round(actions)):
            raise ValueError(f"its actions range from {actions.min()} to {actions.max()}, but the agent has "
                             f"{nb_actions} actions (0 to {nb_actions - 1})")
    memory = cls(limit, window_length=window_length, ignore_episode_boundaries=ignore_episode_boundaries)
    memory.observations.extend(list(obs))
    memory.recent_observations.extend(list(recent))
    for field, items in scalars.items():
        getattr(memory, field).extend(items)
    if cls is CarriedSequentialMemory:
        memory.usable.extend(_expect(arrays, "usable", (n,), "b").tolist())
    return memory
