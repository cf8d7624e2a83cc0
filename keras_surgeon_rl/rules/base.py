"""What a surgery rule is, and the open registry that maps layer classes to rules.

A rule tells the planner, for one kind of layer, how unit IDs flow through it and how its weights
are made from the old layer's. Rules see only plain data (:class:`Context`): node configs, unit-ID
bookkeeping (:class:`~keras_surgeon_rl.ids.TensorIDs`) and NumPy index maps; never a live layer.

A user can teach the surgeon a custom layer::

    from keras_surgeon_rl.rules import PassThrough, register_rule
    register_rule("MyScale", PassThrough(per_unit_weights={"scale": -1}))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from keras_surgeon_rl.errors import SurgeryError
from keras_surgeon_rl.graph import Node
from keras_surgeon_rl.ids import TensorIDs
from keras_surgeon_rl.spec import Insertion
from keras_surgeon_rl.weights import ArrayMap, AxisMap


@dataclass
class Units:
    """The unit IDs of a layer that defines its own units (Dense units, Conv filters).

    Attributes:
        old_ids: the old layer's unit IDs.
        new_ids: the new layer's unit IDs, in order.
        src: for each new unit, the index of the old unit whose weights it takes (``-1``: none).
        scale: for each new unit, a factor on the weights that read it (Net2Net's split).
        zero: mask of new units whose incoming weights and bias start at zero.
        bias_offset: added to each new unit's bias after copying.
    """

    old_ids: list
    new_ids: list
    src: np.ndarray
    scale: np.ndarray
    zero: np.ndarray
    bias_offset: np.ndarray

    @classmethod
    def same(cls, ids: list) -> "Units":
        n = len(ids)
        return cls(list(ids), list(ids), np.arange(n), np.ones(n), np.zeros(n, bool), np.zeros(n))

    @property
    def changed(self) -> bool:
        return (self.new_ids != self.old_ids or not np.array_equal(self.src, np.arange(len(self.old_ids)))
                or bool(self.zero.any()) or bool(self.bias_offset.any()))


@dataclass
class Context:
    """Everything a rule may look at for one node of the new model.

    Attributes:
        node: the new node; ``node.config`` is already the new layer's config.
        old: the old node (``None`` for an inserted layer).
        inputs: unit IDs of the node's inputs, in call order.
        units: the node's own units (layers that define units), else ``None``.
        init: the spec's init mode (``preserve``, ``random``, ``net2net``).
        out_shape: the new per-sample output shape; ``old_out_shape`` the old one.
        insertion: the spec entry that inserted this layer, if any.
        notes: the rule appends remarks on what is only approximately preserved.
    """

    node: Node
    old: Optional[Node]
    inputs: list[TensorIDs]
    units: Optional[Units]
    init: str
    out_shape: tuple
    old_out_shape: tuple
    insertion: Optional[Insertion] = None
    notes: list[str] = field(default_factory=list)

    @property
    def input(self) -> TensorIDs:
        return self.inputs[0]

    def fail(self, message: str) -> SurgeryError:
        return SurgeryError(f"layer {self.node.name!r} ({self.node.class_name}): {message}")

    def read_axis(self, t: TensorIDs) -> AxisMap:
        """The map for a weight axis that reads the units of ``t`` (a kernel's input axis)."""
        zero = None
        if self.init != "random" and not t.fresh:
            zero = t.src < 0  # weights from new units start at zero: the function is unchanged
        scale = None if np.all(t.scale == 1.0) else t.scale
        return AxisMap(t.src, scale=scale, zero=zero)

    def unit_axis(self, with_offset: bool = False) -> AxisMap:
        """The map for a weight axis indexed by the node's own units (kernel columns, bias)."""
        u = self.units
        return AxisMap(u.src, zero=u.zero, offset=u.bias_offset if with_offset and u.bias_offset.any() else None)

    def per_unit(self, t: TensorIDs) -> AxisMap:
        """The map for per-unit parameters of the units of ``t`` (BatchNorm, PReLU)."""
        return AxisMap(t.src)


class Rule:
    """How one kind of layer passes unit IDs on and how its new weights are made.

    Subclasses override what differs. The defaults describe a layer without weights that leaves
    unit IDs alone.
    """

    #: The layer defines its own units (Dense units, Conv filters); ``unit_count`` reads them.
    owns_units: bool = False

    def unit_count(self, config: dict) -> int:
        raise NotImplementedError

    def resize(self, config: dict, n: int) -> dict:
        raise NotImplementedError

    def unit_axis(self, config: dict, rank: int) -> int:
        """The unit axis of the layer's output, for layers that own units."""
        return rank - 1

    def check(self, ctx: Context) -> None:
        """Raise a :class:`SurgeryError` when the layer cannot take what reaches it."""

    def output_ids(self, ctx: Context) -> TensorIDs:
        t = ctx.input
        return t.with_shape(ctx.out_shape, ctx.old_out_shape, _same_axis(t, ctx.out_shape))

    def weight_maps(self, ctx: Context) -> dict[str, ArrayMap]:
        return {}

    # Insertion -----------------------------------------------------------------------------
    def insert_config(self, insertion: Insertion, t: TensorIDs, name: str) -> dict:
        raise SurgeryError(f"insert: layers of kind {insertion.layer!r} cannot be inserted")


def _same_axis(t: TensorIDs, out_shape: tuple) -> int:
    if len(out_shape) == len(t.shape):
        return t.axis
    if len(out_shape) == 1:  # global pooling: only the unit axis is left
        return 0
    if t.axis == len(t.shape) - 1:
        return len(out_shape) - 1
    return t.axis


_REGISTRY: dict[Any, Rule] = {}


def register_rule(layer: Any, rule: Rule) -> None:
    """Use ``rule`` for layers of class ``layer`` (a class or its class name).

    Args:
        layer: a layer class (matches that class only) or a class name such as ``"MyLayer"``
            (matches any class of that name). Subclasses of a known layer need a rule of their own.
        rule: a :class:`Rule` instance.

    Example:
        >>> register_rule("MyScale", PassThrough(per_unit_weights={"scale": -1}))
    """
    if not isinstance(rule, Rule):
        raise TypeError(f"register_rule expects a Rule instance, got {type(rule).__name__}")
    _REGISTRY[layer] = rule


def rule_for(node: Node) -> Optional[Rule]:
    """The rule registered for the node's layer class (or, failing that, its class name), or ``None``."""
    if node.layer_class is not None and node.layer_class in _REGISTRY:
        return _REGISTRY[node.layer_class]
    return _REGISTRY.get(node.class_name)


def registered() -> list[str]:
    """Names of the layer classes that have a rule, sorted."""
    return sorted({k if isinstance(k, str) else k.__name__ for k in _REGISTRY})
