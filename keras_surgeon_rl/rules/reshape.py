"""Flatten: ``(position, id)`` pairs become the flat units, so a change before Flatten reaches the
rows of the Dense after it (and a keras-rl2 ``Flatten(input_shape=(window, features))`` works for
any window length)."""

from __future__ import annotations

from keras_surgeon_rl import ids
from keras_surgeon_rl.ids import TensorIDs
from keras_surgeon_rl.rules.base import Context, Rule


class FlattenRule(Rule):
    def check(self, ctx: Context) -> None:
        t = ctx.input
        if t.changed and (None in t.shape or None in t.old_shape):
            raise ctx.fail(f"Flatten needs a fully known input shape to map units, got {t.shape}")

    def output_ids(self, ctx: Context) -> TensorIDs:
        t = ctx.input
        if len(t.shape) == 1:
            return t
        if not t.changed:  # nothing to map: skip building one (position, id) pair per element
            return TensorIDs.unchanged(range(ctx.out_shape[0]), ctx.out_shape)
        return ids.flatten(t, channels_first=ctx.node.config.get("data_format") == "channels_first")


class PermuteRule(Rule):
    """Permute: the units move with their axis (keras-rl2's Atari network puts a window of frames
    ``(window, h, w)`` last with ``Permute((2, 3, 1))``, so frames become the conv's channels)."""

    def output_ids(self, ctx: Context) -> TensorIDs:
        t = ctx.input
        dims = [int(d) - 1 for d in ctx.node.config["dims"]]  # output axis j reads input axis dims[j]
        return t.with_shape(ctx.out_shape, ctx.old_out_shape, dims.index(t.axis))
