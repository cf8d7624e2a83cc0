"""Keras 3's raw operations in a Functional graph: ``h + x``, ``keras.ops.relu(h)``, ``x * 2.0``.

Idiomatic Keras 3 code calls ``keras.ops`` on symbolic tensors; the graph then holds operations
that are not layers and have no weights. Elementwise ones act on each unit alone, so unit IDs pass
through them like an activation (one tensor, or tensors and numbers) or, with several tensors,
like ``Add`` (every tensor must change the same way). Any other operation is copied as it is while
the unit IDs reaching it are unchanged, and refused when they change.
"""

from __future__ import annotations

from keras_surgeon_rl.ids import TensorIDs
from keras_surgeon_rl.rules.base import Context
from keras_surgeon_rl.rules.merge import ElementwiseMerge, _same_units
from keras_surgeon_rl.rules.passthrough import PassThrough
from keras_surgeon_rl.rules.registry import register_op

#: Operations that map each element on its own, defined and finite for every finite input. (Log,
#: Sqrt, Reciprocal, Exp, Divide, Power are not: a new unit could become NaN or inf there, and a
#: zero weight reading it would still give NaN, so they are copied as they are and refused when
#: their units change.)
ELEMENTWISE_UNARY = (
    "Relu", "Relu6", "Sigmoid", "Softplus", "Softsign", "Silu", "LogSigmoid", "LeakyRelu", "HardSigmoid",
    "HardSilu", "Elu", "Selu", "Gelu", "Celu", "SoftShrink", "HardShrink", "TanhShrink", "Squareplus",
    "Tanh", "Abs", "Absolute", "Negative", "Sign", "Sin", "Cos", "Floor", "Ceil", "Round",
)
#: Operations that combine tensors element by element (numbers are broadcast).
ELEMENTWISE_BINARY = ("Add", "Subtract", "Multiply", "Maximum", "Minimum")


def _broadcast(t: TensorIDs) -> bool:
    """A tensor of one unit that nothing changed (``keepdims`` reductions): it broadcasts over the units."""
    return t.width == 1 and t.old_width == 1 and not t.changed


class ElementwiseOp(ElementwiseMerge):
    """An elementwise operation on one or more tensors (and numbers): the units pass through, and
    the tensors must carry the same units, except unchanged one-unit tensors, which broadcast."""

    def _full(self, ctx: Context) -> list[TensorIDs]:
        full = [t for t in ctx.inputs if not _broadcast(t)]
        return full or ctx.inputs[:1]

    def check(self, ctx: Context) -> None:
        if not ctx.changed:
            return
        full = self._full(ctx)
        for t in full[1:]:
            if not _same_units(full[0], t):
                raise ctx.fail(f"its inputs must change the same way, unit position by unit position, but one has {full[0].describe()} and "
                               f"another {t.describe()}; change every branch the same way (e.g. give both layers "
                               "the same 'units' list)")

    def output_ids(self, ctx: Context) -> TensorIDs:
        t = self._full(ctx)[0]
        return t.with_shape(ctx.out_shape, ctx.old_out_shape, t.axis if len(ctx.out_shape) == len(t.shape) else
                            len(ctx.out_shape) - 1)


def register_ops() -> None:
    unary = PassThrough()
    for name in ELEMENTWISE_UNARY:
        register_op(name, unary)
    binary = ElementwiseOp()
    for name in ELEMENTWISE_BINARY:
        register_op(name, binary)
