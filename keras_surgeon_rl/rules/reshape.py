"""Layers that rearrange a tensor: Flatten, Permute, Reshape.

Flatten: ``(position, id)`` pairs become the flat units, so a change before Flatten reaches the
rows of the Dense after it (and a keras-rl2 ``Flatten(input_shape=(window, features))`` works for
any window length). Permute moves the units with their axis; Reshape keeps them on an axis of their
own where the reshape allows it.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

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

    def input_axis_of(self, config: dict, axis: int) -> int:
        return int(config["dims"][axis]) - 1

    def output_ids(self, ctx: Context) -> TensorIDs:
        t = ctx.input
        dims = [int(d) - 1 for d in ctx.node.config["dims"]]  # output axis j reads input axis dims[j]
        return t.with_shape(ctx.out_shape, ctx.old_out_shape, dims.index(t.axis))


def _size(shape) -> int:
    return int(np.prod(shape, dtype=np.int64)) if len(shape) else 1


def unit_axis_after_reshape(shape: tuple, axis: int, out_shape: tuple) -> list[int]:
    """The axes of ``out_shape`` that can carry the units of ``shape``'s ``axis`` after a reshape.

    A reshape keeps the order of elements (row-major), so unit ``u`` of ``axis`` lands on axis
    ``j`` of the output, its index intact, exactly when the elements before and after it match:
    ``prod(shape[:axis]) == prod(out_shape[:j])``, ``shape[axis] == out_shape[j]`` and
    ``prod(shape[axis+1:]) == prod(out_shape[j+1:])``. That holds when size-1 axes are added or
    removed around the units (``(C,) -> (1, 1, C)``, ``(C,) -> (C, 1, 1)``) and when other axes are
    merged or split on either side (``(H, W, C) -> (H * W, C)``).

    Returns:
        Every such ``j`` (several only when the units' axis has size 1).
    """
    if None in shape or None in out_shape:
        return []
    pre, width, post = _size(shape[:axis]), shape[axis], _size(shape[axis + 1:])
    return [j for j, d in enumerate(out_shape)
            if d == width and _size(out_shape[:j]) == pre and _size(out_shape[j + 1:]) == post]


class ReshapeRule(Rule):
    """Reshape: the units keep their axis through the reshape when it only adds or removes size-1
    axes around them, or merges other axes (:func:`unit_axis_after_reshape`): the squeeze-excitation
    block's ``GlobalAveragePooling2D -> Reshape((1, 1, C))`` of EfficientNet and MobileNetV3. A
    reshape to one axis flattens (like ``Flatten``: ``(position, id)`` units). A changed unit count
    resizes ``target_shape`` on the units' axis. Any other reshape mixes the units with other axes:
    copied as it is while the units reaching it are unchanged, refused when they change.
    """

    def _axis(self, ctx: Context) -> Optional[int]:
        t = ctx.input
        found = unit_axis_after_reshape(t.old_shape, t.axis, tuple(ctx.old_out_shape))
        return found[-1] if len(found) == 1 or (found and not t.changed) else None

    def _flattens(self, ctx: Context) -> bool:
        return len(ctx.old_out_shape) == 1 and len(ctx.input.shape) > 1

    def check(self, ctx: Context) -> None:
        t = ctx.input
        if not t.changed:
            return
        others = [d for k, d in enumerate(t.shape) if k != t.axis]
        if None in t.shape or others != [d for k, d in enumerate(t.old_shape) if k != t.axis]:
            raise ctx.fail(f"its input's shape goes from {t.old_shape} to {t.shape}, not only on the units' axis "
                           f"{t.axis + 1}; keep the units reaching it unchanged")
        if self._axis(ctx) is None and not self._flattens(ctx):
            found = unit_axis_after_reshape(t.old_shape, t.axis, tuple(ctx.old_out_shape))
            why = (f"the units' axis has size 1, so any of axes {[j + 1 for j in found]} of the output could "
                   "carry them" if found else
                   f"it mixes the units' axis {t.axis + 1} (size {t.old_shape[t.axis]}) with other axes")
            raise ctx.fail(f"a reshape from {t.old_shape} to {tuple(ctx.old_out_shape)}: {why}, so the units "
                           "reaching it cannot change; keep them unchanged (or reshape only by adding or removing "
                           "size-1 axes around the units)")

    def config_for(self, ctx: Context) -> dict:
        t, config = ctx.input, dict(ctx.node.config)
        target = list(config["target_shape"])
        j = self._axis(ctx)
        if j is not None:
            if target[j] != -1:
                target[j] = t.width
        elif -1 not in target:  # a flatten to one axis
            target = [_size(t.shape)]
        config["target_shape"] = type(config["target_shape"])(target)
        return config

    def output_ids(self, ctx: Context) -> TensorIDs:
        t = ctx.input
        j = self._axis(ctx)
        if j is not None:
            return t.with_shape(ctx.out_shape, ctx.old_out_shape, j)
        if t.changed and self._flattens(ctx):
            return ids.flatten(t)
        shape = tuple(ctx.out_shape)
        return TensorIDs.unchanged(range(shape[-1] if shape and shape[-1] is not None else 0), shape)
