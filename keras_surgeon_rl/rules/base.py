"""What a surgery rule is (the registry that maps layer classes to rules: :mod:`.registry`).

A rule tells the planner, for one kind of layer, how unit IDs flow through it and how its weights
are made from the old layer's. Rules see only plain data (:class:`Context`): node configs, unit-ID
bookkeeping (:class:`~keras_surgeon_rl.ids.TensorIDs`) and NumPy index maps; never a live layer.

A user can teach the surgeon a custom layer::

    from keras_surgeon_rl.rules import PassThrough, register_rule
    register_rule("MyScale", PassThrough(per_unit_weights={"scale": -1}))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from keras_surgeon_rl.errors import SurgeryError
from keras_surgeon_rl.graph import Node
from keras_surgeon_rl.ids import TensorIDs
from keras_surgeon_rl.spec import Insertion
from keras_surgeon_rl.weights import ArrayMap, AxisMap, Copy


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

    @property
    def changed(self) -> bool:
        """True when the units reaching the layer, or its own units, change."""
        return any(t.changed for t in self.inputs) or (self.units is not None and self.units.changed)

    def fail(self, message: str) -> SurgeryError:
        return SurgeryError(f"layer {self.node.name!r} ({self.node.class_name}): {message}")

    def read_axis(self, t: TensorIDs, data_axis: Optional[int] = None) -> Optional[AxisMap]:
        """The map for a weight axis that reads the units of ``t`` (a kernel's input axis).

        ``data_axis`` is the axis of ``t`` the layer reads; when the units are on another one (so
        they reach the layer unchanged: the rule's check refuses a change there), the weight axis is
        copied as it is (``None``).
        """
        if data_axis is not None and data_axis % max(len(t.shape), 1) != t.axis:
            return None
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
    #: The rule handles a layer called on several tensors (a merge). Other rules see one input, and a
    #: layer of theirs called on several is refused when the units reaching it change.
    several_inputs: bool = False

    def specialize(self, node: Node) -> "Rule":
        """The rule for one node of this kind: ``self``, unless what the rule does depends on the node
        (a wrapper such as TimeDistributed takes on the rule of the layer it wraps)."""
        return self

    def unit_count(self, config: dict) -> int:
        raise NotImplementedError

    def resize(self, config: dict, n: int) -> dict:
        raise NotImplementedError

    def unit_axis(self, config: dict, rank: int) -> int:
        """The unit axis of the layer's output, for layers that own units."""
        return rank - 1

    def reads_axis(self, config: dict, rank: int) -> Optional[int]:
        """The axis of its input (of ``rank`` per-sample axes) that the layer reads as units: a
        convolution's channel axis, a Dense's last axis; ``None`` when the layer has no say (it
        passes units on whatever axis they are, or does not read units at all). A model input's
        unit axis defaults to the one its readers agree on (:mod:`keras_surgeon_rl.input_axis`)."""
        return None

    def hints_axis(self, config: dict, rank: int) -> Optional[int]:
        """A weaker say than :meth:`reads_axis`, heard only when no layer after has that: the axis a
        normalization works on (BatchNormalization's ``axis``: usually, not always, the units')."""
        return None

    def input_axis_of(self, config: dict, axis: int) -> Optional[int]:
        """For a layer that passes units through on any axis (an activation, a join, Permute): the
        axis of its input that becomes ``axis`` of its output; ``None`` otherwise."""
        return None

    def check(self, ctx: Context) -> None:
        """Raise a :class:`SurgeryError` when the layer cannot take what reaches it."""

    def config_for(self, ctx: Context) -> dict:
        """The new layer's config when the units reaching it changed (per-unit constants in the
        config, such as Rescaling's per-channel ``scale``, follow their units)."""
        return ctx.node.config

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


def verbatim_maps(node: Node) -> dict[str, ArrayMap]:
    """Every weight of ``node`` copied as it is: for a layer nothing about which changes."""
    return {name: Copy(name, [None] * w.ndim) for name, w in node.weights}
