"""The surgery spec: a plain JSON-able dict, validated into a :class:`Spec`.

Example:
    >>> spec = Spec.parse({
    ...     "inputs": {"old": ["x_dot", "theta"], "new": ["x", "x_dot", "theta", "theta_dot"]},
    ...     "units": {"hidden": 32},
    ...     "insert": [{"after": "hidden", "layer": "Dense", "init": "identity", "activation": "relu"}],
    ... })

Keys:
    inputs: ``{input_name: {"old": [ids], "new": [ids]}}`` (or ``{"old": …, "new": …}`` for a model
        with one input). ``"axis"`` may name the unit axis, counting the batch axis (default: the axis
        the layers reading the input read as units: ``1`` before a channels-first convolution, the
        last one before a Dense or a channels-last convolution; refused when they disagree).
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

The keys, types and ranges are declared once, in :data:`keras_surgeon_rl.schema.SPEC_SCHEMA`;
:meth:`Spec.parse` validates against it and then builds the typed objects below.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from typing import Any, Hashable, Optional

from keras_surgeon_rl.errors import SurgeryError
from keras_surgeon_rl.schema import INIT_MODES, INSERT_INITS, plain, validate, validate_part

__all__ = ["Spec", "IdChange", "NewUnitInit", "Insertion", "id_list", "suggest", "INIT_MODES", "INSERT_INITS"]


def suggest(name: Any, choices) -> str:
    """`` Did you mean 'x'?`` for the closest valid name, or an empty string."""
    name, choices = str(name), [str(c) for c in choices]
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.5)
    close = close or [c for c in choices if c and (name.startswith(c) or c.startswith(name))][:1]
    return f" Did you mean {close[0]!r}?" if close else ""


def _hashable(uid: Any, where: str = "unit ID") -> Hashable:
    if isinstance(uid, (list, tuple)):
        return tuple(_hashable(u, where) for u in uid)
    if isinstance(uid, bool) or not isinstance(uid, (str, int, float)):
        raise SurgeryError(f"{where}: {uid!r} ({type(uid).__name__}) is not a unit ID; IDs are strings, finite "
                           "numbers or lists of them" + (" (use .tolist() on arrays)" if hasattr(uid, "tolist") else ""))
    if isinstance(uid, float) and not math.isfinite(uid):
        raise SurgeryError(f"{where}: {uid!r} is not a unit ID; NaN and infinite IDs cannot be told apart or "
                           "matched, use strings or finite numbers")
    return uid


def id_list(value: Any, where: str) -> list:
    """A validated list of unique, hashable unit IDs."""
    if not isinstance(value, (list, tuple)):
        raise SurgeryError(f"{where}: expected a list of unit IDs, got {type(value).__name__} {value!r}"
                           + (" (use .tolist() on arrays)" if hasattr(value, "tolist") else ""))
    ids = [_hashable(plain(v), where) for v in value]
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
    unit ``copy_of``, bias plus ``bias_offset``) or ``keep_greedy`` (a copy of an old unit, by default
    the first kept one, with its bias lowered by the margin: the new unit is below that unit on every
    input, so the argmax over the outputs, a Q-network's greedy action, never changes; the planner
    refuses it where that cannot hold, e.g. an output layer without a bias).
    """

    kind: str = "random"
    copy_of: Hashable = None
    bias_offset: float = 0.0

    @classmethod
    def parse(cls, value: Any, where: str) -> "NewUnitInit":
        """One new-unit init, already valid under the schema (or validated here when used alone)."""
        if isinstance(value, NewUnitInit):
            return value
        validate_part(value, "new_unit_init", where)
        if value in ("random", "zeros"):
            return cls(value)
        if value == "keep_greedy":
            return cls("keep_greedy", bias_offset=-1.0)
        if isinstance(value, str):  # copy:<id>
            return cls("copy", value[len("copy:"):])
        if "keep_greedy" in value:
            return cls("keep_greedy", bias_offset=-float(value["keep_greedy"]))
        return cls("copy", _hashable(value["copy"], where), float(value.get("bias_offset", 0.0)))


@dataclass
class IdChange:
    """Old and new unit IDs of one model input or output."""

    old: Optional[list] = None
    new: Optional[list] = None
    axis: Optional[int] = None
    new_unit_init: dict = field(default_factory=dict)  # new ID -> NewUnitInit ('*': all)

    @classmethod
    def parse(cls, value: dict, where: str) -> "IdChange":
        """An input or output change, already valid under the schema."""
        old = id_list(value["old"], f"{where}.old") if value.get("old") is not None else None
        new = id_list(value["new"], f"{where}.new") if value.get("new") is not None else None
        axis = int(value["axis"]) if value.get("axis") is not None else None
        inits: dict = {}
        raw = value.get("init")
        if raw is not None:
            if isinstance(raw, dict) and "copy" not in raw and "keep_greedy" not in raw:
                inits = {_hashable(k, f"{where}.init"): NewUnitInit.parse(v, f"{where}.init[{k!r}]")
                         for k, v in raw.items()}
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
        spec = validate(spec)
        return cls(
            inputs=_changes(spec.get("inputs"), "inputs"),
            outputs=_changes(spec.get("outputs"), "outputs"),
            units={name: v if isinstance(v, int) else id_list(v, f"units[{name!r}]")
                   for name, v in (spec.get("units") or {}).items()},
            insert=[Insertion(e["after"], e.get("layer", "Dense"), e.get("init", "identity"),
                              {k: v for k, v in e.items() if k not in ("after", "layer", "init")})
                    for e in spec.get("insert") or []],
            delete=list(spec.get("delete") or []),
            init=spec.get("init", "preserve"),
        )


def _changes(value: Any, key: str) -> dict:
    if not value:
        return {}
    if any(k in value for k in ("old", "new", "axis")):  # the shorthand for a model with one input / output
        return {None: IdChange.parse(value, key)}
    return {name: IdChange.parse(v, f"{key}[{name!r}]") for name, v in value.items()}
