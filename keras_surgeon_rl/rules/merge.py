"""Layers that join tensors: Concatenate offsets each branch's units, the others need equal units."""

from __future__ import annotations

import numpy as np

from keras_surgeon_rl import ids
from keras_surgeon_rl.ids import TensorIDs
from keras_surgeon_rl.rules.base import Context, Rule


def _same_units(a: TensorIDs, b: TensorIDs) -> bool:
    """The tensors changed the same way, unit position by unit position: an elementwise join then
    combines the same old units as before. (Their ID names may differ: a Concatenate's ``(branch,
    id)`` pairs added to a conv's filter IDs, as in NASNet; the join works on positions.)"""
    return (a.axis == b.axis and a.width == b.width and a.old_width == b.old_width
            and np.array_equal(a.src, b.src) and np.array_equal(a.scale, b.scale))


class ElementwiseMerge(Rule):
    """Add, Subtract, Multiply, Average, Maximum, Minimum: every input must change the same way."""

    several_inputs = True

    def input_axis_of(self, config: dict, axis: int) -> int:
        return axis

    def check(self, ctx: Context) -> None:
        if not ctx.changed:  # nothing to match (the branches may carry their IDs on different axes)
            return
        first = ctx.inputs[0]
        for k, t in enumerate(ctx.inputs[1:], start=1):
            if not _same_units(first, t):
                raise ctx.fail(
                    "its inputs must change the same way, unit position by unit position, but branch 0 (from "
                    f"{ctx.node.inbound[0]!r}) has {first.describe()} and branch {k} (from {ctx.node.inbound[k]!r}) has "
                    f"{t.describe()}; change every branch the same way (e.g. give both layers the same "
                    "'units' list)")


class ConcatenateRule(Rule):
    """Concatenate along the unit axis: each branch keeps its IDs, tagged with its branch index."""

    several_inputs = True

    def input_axis_of(self, config: dict, axis: int) -> int:
        return axis

    def _on_unit_axis(self, ctx: Context) -> bool:
        rank = len(ctx.inputs[0].shape)
        axis = int(ctx.node.config.get("axis", -1))
        axis = axis - 1 if axis >= 0 else rank + axis
        return axis == ctx.inputs[0].axis

    def check(self, ctx: Context) -> None:
        if not ctx.changed:
            return
        if not self._on_unit_axis(ctx):
            ElementwiseMerge().check(ctx)
        elif len({t.axis for t in ctx.inputs}) != 1:
            raise ctx.fail("its inputs carry unit IDs on different axes")

    def output_ids(self, ctx: Context) -> TensorIDs:
        if not self._on_unit_axis(ctx) or len({t.axis for t in ctx.inputs}) != 1:
            return super().output_ids(ctx)
        out = ids.concatenate(ctx.inputs)
        return out.with_shape(ctx.out_shape, ctx.old_out_shape, out.axis)
