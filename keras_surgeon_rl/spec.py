"""The surgery spec: a plain JSON-able dict, validated into a :class:`Spec`.

Example:
    >>> spec = Spec.parse({
    ...     "inputs": {"old": ["x_dot", "theta"], "new": ["x", "x_dot", "theta", "theta_dot"]},
    ...     "units": {"hidden": 32},
    ...     "insert": [{"after": "hidden", "layer": "Dense", "init": "identity", "activation": "relu"}],
    ... })

Keys:
    inputs: ``{input_name: {"old": [ids], "new": [ids]}}`` (or ``{"old": …, "new": …}`` for a model
        with one input). ``"axis"`` may name the unit axis (default: last; ``1`` for channels-first).
    outputs: the same for the model's outputs, keyed by output layer name; ``"init"`` says how new
        output units start: ``"random"`` (the layer's initializer, default), ``"zeros"``,
        ``"copy:<id>"``, ``{"copy": id, "bias_offset": -1.0}``, ``"keep_greedy"`` (a copy of a kept
        unit, lowered by a margin: the argmax never changes) or ``{"keep_greedy": margin}``, or a dict
        from new ID to one of those.
    units: ``{layer_name: n}`` resizes a hidden layer (new IDs appended), ``{layer_name: [ids]}``
        lists its units (drop, keep, permute, add).
    insert: ``[{"after": layer_name, "layer": "Dense" | "Conv2D" | "Conv1D", "init": …, **config}]``.
    delete: ``[layer_name, …]``.
    init: how new units start: ``"preserve"`` (default), ``"random"`` or ``"net2net"``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any, Hashable, Optional

from keras_surgeon_rl.errors import SurgeryError

INIT_MODES = ("preserve", "random", "net2net")
INSERT_INITS = {"Dense": ("identity", "random"), "Conv2D": ("identity", "top_right", "random"),
                "Conv1D": ("identity", "top_right", "random")}
TOP_KEYS = ("inputs", "outputs", "units", "insert", "delete", "init")
CHANGE_KEYS = ("old", "new", "axis", "init")


def suggest(name: Any, choices) -> str:
    """`` Did you mean 'x'?`` for the closest valid name, or an empty string."""
    name, choices = str(name), [str(c) for c in choices]
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    close = close or [c for c in choices if c and (name.startswith(c) or c.startswith(name))][:1]
    return f" Did you mean {close[0]!r}?" if close else ""


def _hashable(uid: Any) -> Hashable:
    if isinstance(uid, list):
        return tuple(_hashable(u) for u in uid)
    if isinstance(uid, dict):
        raise SurgeryError(f"unit ID {uid!r} is a dict; IDs are strings, numbers or lists of them")
    return uid


def id_list(value: Any, where: str) -> list:
    """A validated list of unique, hashable unit IDs."""
    if not isinstance(value, (list, tuple)):
        raise SurgeryError(f"{where}: expected a list of unit IDs, got {type(value).__name__} {value!r}")
    ids = [_hashable(v) for v in value]
    seen: dict = {}
    for i, uid in enumerate(ids):
        if uid in seen:
            raise SurgeryError(f"{where}: unit ID {uid!r} appears twice (positions {seen[uid]} and {i}); "
                               "unit IDs must be unique")
        seen[uid] = i
    return ids


@dataclass
class NewUnitInit:
    """How one new output unit starts.

    ``kind`` is ``random`` (the layer's initializer), ``zeros``, ``copy`` (the weights of the old
    unit ``copy_of``, bias plus ``bias_offset``) or ``keep_greedy`` (a copy of the first kept old
    unit with its bias lowered by ``margin``: the new unit is below that unit on every input, so
    the argmax over the outputs, a Q-network's greedy action, never changes).
    """

    kind: str = "random"
    copy_of: Hashable = None
    bias_offset: float = 0.0

    @classmethod
    def parse(cls, value: Any, where: str) -> "NewUnitInit":
        if isinstance(value, NewUnitInit):
            return value
        if value in ("random", "zeros"):
            return cls(value)
        if value == "keep_greedy":
            return cls("keep_greedy", bias_offset=-1.0)
        if isinstance(value, dict) and set(value) == {"keep_greedy"}:
            margin = float(value["keep_greedy"])
            if margin <= 0:
                raise SurgeryError(f"{where}: the keep_greedy margin must be positive, got {margin}")
            return cls("keep_greedy", bias_offset=-margin)
        if isinstance(value, str) and value.startswith("copy:"):
            return cls("copy", value[len("copy:"):])
        if isinstance(value, dict) and "copy" in value:
            unknown = set(value) - {"copy", "bias_offset"}
            if unknown:
                raise SurgeryError(f"{where}: unknown key {sorted(unknown)[0]!r}; a copy init takes "
                                   "'copy' and 'bias_offset'")
            return cls("copy", _hashable(value["copy"]), float(value.get("bias_offset", 0.0)))
        raise SurgeryError(f"{where}: {value!r} is not a new-unit init; use 'random', 'zeros', "
                           "'copy:<id>', {'copy': id, 'bias_offset': -1.0}, 'keep_greedy' or {'keep_greedy': margin}")


@dataclass
class IdChange:
    """Old and new unit IDs of one model input or output."""

    old: Optional[list] = None
    new: Optional[list] = None
    axis: Optional[int] = None
    new_unit_init: dict = field(default_factory=dict)  # new ID -> NewUnitInit ('*': all)

    @classmethod
    def parse(cls, value: Any, where: str, allow_init: bool) -> "IdChange":
        if not isinstance(value, dict):
            raise SurgeryError(f"{where}: expected {{'old': [...], 'new': [...]}}, got {value!r}")
        keys = CHANGE_KEYS if allow_init else CHANGE_KEYS[:3]
        for k in value:
            if k not in keys:
                raise SurgeryError(f"{where}: unknown key {k!r}; allowed: {', '.join(keys)}.{suggest(k, keys)}")
        old = id_list(value["old"], f"{where}.old") if value.get("old") is not None else None
        new = id_list(value["new"], f"{where}.new") if value.get("new") is not None else None
        axis = value.get("axis")
        if axis is not None and not isinstance(axis, int):
            raise SurgeryError(f"{where}.axis: expected an integer axis, got {axis!r}")
        inits: dict = {}
        raw = value.get("init")
        if raw is not None:
            if isinstance(raw, dict) and "copy" not in raw and "keep_greedy" not in raw:
                inits = {_hashable(k): NewUnitInit.parse(v, f"{where}.init[{k!r}]") for k, v in raw.items()}
            else:
                inits = {"*": NewUnitInit.parse(raw, f"{where}.init")}
        return cls(old, new, axis, inits)

    def init_for(self, uid: Hashable) -> NewUnitInit:
        return self.new_unit_init.get(uid, self.new_unit_init.get("*", NewUnitInit()))


@dataclass
class Insertion:
    """A layer to insert after ``after``."""

    after: str
    layer: str = "Dense"
    init: str = "identity"
    config: dict = field(default_factory=dict)


@dataclass
class Spec:
    """A validated surgery spec (see the module docstring for the keys)."""

    inputs: dict = field(default_factory=dict)   # name (None: the only input) -> IdChange
    outputs: dict = field(default_factory=dict)  # name (None: the only output) -> IdChange
    units: dict = field(default_factory=dict)    # layer name -> int | list of IDs
    insert: list = field(default_factory=list)
    delete: list = field(default_factory=list)
    init: str = "preserve"

    @classmethod
    def parse(cls, spec: Any) -> "Spec":
        """Validate a spec dict (or pass a :class:`Spec` through).

        Raises:
            SurgeryError: naming the key at fault and the fix.
        """
        if isinstance(spec, Spec):
            return spec
        if spec is None:
            return cls()
        if not isinstance(spec, dict):
            raise SurgeryError(f"a spec is a dict with keys {', '.join(TOP_KEYS)}; got {type(spec).__name__}")
        for k in spec:
            if k not in TOP_KEYS:
                raise SurgeryError(f"unknown spec key {k!r}; allowed: {', '.join(TOP_KEYS)}.{suggest(k, TOP_KEYS)}")
        init = spec.get("init", "preserve")
        if init not in INIT_MODES:
            raise SurgeryError(f"spec 'init' is {init!r}; use one of {', '.join(INIT_MODES)}.{suggest(init, INIT_MODES)}")
        return cls(
            inputs=_changes(spec.get("inputs"), "inputs", allow_init=False),
            outputs=_changes(spec.get("outputs"), "outputs", allow_init=True),
            units=_units(spec.get("units")),
            insert=_insertions(spec.get("insert")),
            delete=_deletions(spec.get("delete")),
            init=init,
        )


def _changes(value: Any, key: str, allow_init: bool) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SurgeryError(f"spec '{key}': expected a dict, got {type(value).__name__}")
    if "old" in value or "new" in value:  # the shorthand for a model with one input / output
        return {None: IdChange.parse(value, key, allow_init)}
    return {name: IdChange.parse(v, f"{key}[{name!r}]", allow_init) for name, v in value.items()}


def _units(value: Any) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise SurgeryError(f"spec 'units': expected {{layer_name: n or [ids]}}, got {type(value).__name__}")
    out = {}
    for name, v in value.items():
        if isinstance(v, bool) or not isinstance(v, (int, list, tuple)):
            raise SurgeryError(f"units[{name!r}]: expected a unit count or a list of unit IDs, got {v!r}")
        if isinstance(v, int) and v < 1:
            raise SurgeryError(f"units[{name!r}]: a layer needs at least one unit, got {v}")
        out[name] = v if isinstance(v, int) else id_list(v, f"units[{name!r}]")
        if isinstance(v, (list, tuple)) and not v:
            raise SurgeryError(f"units[{name!r}]: a layer needs at least one unit; delete it with 'delete'")
    return out


def _insertions(value: Any) -> list:
    if value is None:
        return []
    if not isinstance(value, list):
        raise SurgeryError("spec 'insert': expected a list of {'after': layer_name, 'layer': 'Dense', ...}")
    out = []
    for i, entry in enumerate(value):
        where = f"insert[{i}]"
        if not isinstance(entry, dict) or "after" not in entry:
            raise SurgeryError(f"{where}: expected a dict with 'after': layer_name, got {entry!r}")
        layer = entry.get("layer", "Dense")
        if layer not in INSERT_INITS:
            raise SurgeryError(f"{where}: cannot insert a {layer!r} layer; insertable: "
                               f"{', '.join(INSERT_INITS)}.{suggest(layer, INSERT_INITS)}")
        init = entry.get("init", "identity")
        if init not in INSERT_INITS[layer]:
            raise SurgeryError(f"{where}: init {init!r} is not available for {layer}; use one of "
                               f"{', '.join(INSERT_INITS[layer])}")
        config = {k: v for k, v in entry.items() if k not in ("after", "layer", "init")}
        out.append(Insertion(str(entry["after"]), layer, init, config))
    return out


def _deletions(value: Any) -> list:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SurgeryError(f"spec 'delete': expected a list of layer names, got {value!r}")
    if len(set(value)) != len(value):
        raise SurgeryError(f"spec 'delete': a layer is listed twice in {value!r}")
    return list(value)
