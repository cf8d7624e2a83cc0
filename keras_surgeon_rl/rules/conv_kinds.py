"""More convolutions: separable, transposed and grouped. Filter IDs are the units, as for Conv2D.

- ``SeparableConv1D/2D``: ``depthwise_kernel [*window, in, mult]`` filters each input channel on its
  own, ``pointwise_kernel [1.., in * mult, filters]`` mixes the results (row ``c * mult + k`` reads
  channel ``c``'s ``k``-th depthwise output). Channel ``c``'s depthwise slice and pointwise rows
  follow its ID; a new channel's pointwise rows start at zero (its depthwise slice keeps its fresh,
  finite values and is never read).
- ``Conv1D/2D/3DTranspose``: ``kernel [*window, filters, in]``: the output axis comes before the
  input axis.
- ``Conv1D/2D/3D`` with ``groups > 1``: ``kernel [*window, in / groups, filters]``; filter ``f``
  belongs to group ``f // (filters / groups)`` and reads only that group's channels. A change is
  exact when every group keeps one size and no channel or filter moves to another group (remove a
  filter from every group, permute within a group, add a channel to every group); the rest is
  refused, saying which group sizes would result.

Example:
    >>> spec = {"units": {"sep": [3, 1, 0, 2, "new"]}}   # SeparableConv2D filters by ID
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from keras_surgeon_rl.errors import SurgeryError
from keras_surgeon_rl.ids import TensorIDs
from keras_surgeon_rl.rules.base import Context, Rule
from keras_surgeon_rl.rules.conv import ConvRule, channel_axis, check_channel_axis
from keras_surgeon_rl.spec import Insertion
from keras_surgeon_rl.weights import AxisMap, Copy


def _refuse_groups(ctx: Context) -> None:
    groups = int(ctx.node.config.get("groups", 1) or 1)
    if groups != 1:
        raise ctx.fail(f"groups={groups}: a grouped {ctx.node.class_name} cannot change by ID (only Conv1D/2D/3D "
                       "take grouped changes); keep its filters and the channels reaching it unchanged")


class _UngroupedKind(ConvRule):
    """Separable and transposed convolutions: never grouped when they change, never inserted (only
    Dense and Conv1D/2D/3D are)."""

    def check(self, ctx: Context) -> None:
        check_channel_axis(ctx, ctx.input)
        if ctx.changed:
            _refuse_groups(ctx)

    def insert_config(self, insertion: Insertion, t: TensorIDs, name: str) -> dict:
        return Rule.insert_config(self, insertion, t, name)


class SeparableConvRule(_UngroupedKind):
    """SeparableConv1D/2D: input channels through both kernels, filters as units."""

    def weight_maps(self, ctx: Context) -> dict:
        t, old = ctx.input, ctx.old
        m = int(ctx.node.config.get("depth_multiplier", 1))
        rows = ctx.read_axis(t, data_axis=channel_axis(ctx.node.config, len(t.shape)))
        window = old.weight("depthwise_kernel").ndim - 2
        depthwise = None if rows is None else ctx.per_unit(t)
        maps = {"depthwise_kernel": Copy("depthwise_kernel", [None] * window + [depthwise, None]),
                "pointwise_kernel": Copy("pointwise_kernel", [None] * window + [_repeat(rows, m), ctx.unit_axis()])}
        if "bias" in old.weight_names:
            maps["bias"] = Copy("bias", [ctx.unit_axis(with_offset=True)])
        return maps


def _repeat(a: AxisMap | None, m: int) -> AxisMap | None:
    """A channel map spread over the ``m`` depthwise outputs of each channel (rows ``c * m + k``)."""
    if a is None or m == 1:
        return a
    src = np.where(a.src[:, None] >= 0, a.src[:, None] * m + np.arange(m), -1).reshape(-1)
    return AxisMap(src, scale=None if a.scale is None else np.repeat(a.scale, m),
                   zero=None if a.zero is None else np.repeat(a.zero, m))


class ConvTransposeRule(_UngroupedKind):
    """Conv1D/2D/3DTranspose: ``kernel [*window, filters, in]``."""

    def weight_maps(self, ctx: Context) -> dict:
        t, old = ctx.input, ctx.old
        rows = ctx.read_axis(t, data_axis=channel_axis(ctx.node.config, len(t.shape)))
        window = old.weight("kernel").ndim - 2
        maps = {"kernel": Copy("kernel", [None] * window + [ctx.unit_axis(), rows])}
        if "bias" in old.weight_names:
            maps["bias"] = Copy("bias", [ctx.unit_axis(with_offset=True)])
        return maps


class GroupedConvRule(ConvRule):
    """Conv1D/2D/3D, grouped or not: with ``groups > 1`` channels and filters change within their group."""

    def check(self, ctx: Context) -> None:
        groups = _groups(ctx.node.config)
        if groups == 1:
            return super().check(ctx)
        t = ctx.input
        check_channel_axis(ctx, t)
        if ctx.insertion is None:
            if t.changed:  # (then on the channel axis: checked above)
                _check_grouped(ctx, groups, t.src, t.ids, t.old_width, "input channel")
            if ctx.units.changed:
                _check_grouped(ctx, groups, ctx.units.src, ctx.units.new_ids, len(ctx.units.old_ids), "filter")

    def weight_maps(self, ctx: Context) -> dict:
        groups = _groups(ctx.node.config)
        if groups == 1 or ctx.insertion is not None:
            return super().weight_maps(ctx)
        rows = ctx.read_axis(ctx.input, data_axis=channel_axis(ctx.node.config, len(ctx.input.shape)))
        columns = ctx.unit_axis()
        window = ctx.old.weight("kernel").ndim - 2
        if rows is None:
            kernel = Copy("kernel", [None] * window + [None, columns])
        else:
            kernel = GroupedCopy.of(rows, columns, groups, ctx.input.old_width, window)
        maps = {"kernel": kernel}
        if "bias" in ctx.old.weight_names:
            maps["bias"] = Copy("bias", [ctx.unit_axis(with_offset=True)])
        return maps

    def insert_config(self, insertion: Insertion, t: TensorIDs, name: str) -> dict:
        config = super().insert_config(insertion, t, name)
        if _groups(config) != 1:
            raise SurgeryError(f"insert after {insertion.after!r}: a grouped {insertion.layer} (groups="
                               f"{config['groups']}) cannot be inserted; insert it with groups=1")
        return config


def _groups(config: dict) -> int:
    return int(config.get("groups", 1) or 1)


def _check_grouped(ctx: Context, groups: int, src: np.ndarray, ids: list, old_n: int, what: str) -> None:
    """Refuse unless ``src`` splits into ``groups`` equal groups, each unit in its old unit's group."""
    n = len(src)
    old_size = old_n // groups
    kept = np.bincount(src[src >= 0] // old_size, minlength=groups).tolist()
    added = int(np.count_nonzero(src < 0))
    layout = (f"the change gives {n} {what}s: kept per group {kept}" + (f" plus {added} new" if added else "")
              + f", where each group had {old_size}")
    if n % groups:
        raise ctx.fail(f"groups={groups} needs the same number of {what}s in every group, but {layout}; add or "
                       f"remove the same number of {what}s in every group, so there are a multiple of {groups}")
    size = n // groups
    moved = np.flatnonzero((src >= 0) & (src // old_size != np.arange(n) // size))
    if moved.size:
        j = int(moved[0])
        raise ctx.fail(f"groups={groups}: {what} {ids[j]!r} was in group {int(src[j]) // old_size} but would sit at "
                       f"position {j}, in group {j // size} of {size} {what}s each ({layout}); a {what} cannot "
                       f"move to another group: keep each group's {what}s together, in group order (group g at "
                       f"positions g*{size} … g*{size}+{size - 1}), with every group the same size"
                       + _regrouped(src, ids, groups, old_size)
                       + ("; net2net copies units from any group: use init 'preserve'" if ctx.init == "net2net"
                          else ""))


def _regrouped(src: np.ndarray, ids: list, groups: int, old_size: int) -> str:
    """`` (e.g. [...])``: the same IDs listed group by group, new ones spread evenly, where that works."""
    by_group = [[ids[j] for j in np.flatnonzero(src // old_size == g) if src[j] >= 0] for g in range(groups)]
    for j in np.flatnonzero(src < 0):
        min(by_group, key=len).append(ids[j])
    if len({len(g) for g in by_group}) != 1:
        return ""
    listed = [uid for g in by_group for uid in g]
    shown = listed if len(listed) <= 16 else listed[:16] + ["…"]
    return f" (e.g. {shown})"


@dataclass
class GroupedCopy(Copy):
    """A grouped kernel ``[*window, in / groups, filters]`` copied one group of filters at a time.

    Filters of group ``g`` read channels of group ``g`` only, so the kernel's input axis means another
    channel in each group: each group's columns get their own row map.

    Attributes:
        parts: ``(new filter slice, Copy)`` per group.
    """

    parts: list = None

    @classmethod
    def of(cls, rows: AxisMap, columns: AxisMap, groups: int, old_in: int, window: int) -> "GroupedCopy":
        """From the maps of every input channel (``rows``) and every filter (``columns``)."""
        new_in, old_size = len(rows.src) // groups, old_in // groups
        out_size = len(columns.src) // groups
        parts = []
        for g in range(groups):
            ch, f = slice(g * new_in, (g + 1) * new_in), slice(g * out_size, (g + 1) * out_size)
            src = rows.src[ch]
            part_rows = AxisMap(np.where(src >= 0, src - g * old_size, -1),
                                scale=None if rows.scale is None else rows.scale[ch],
                                zero=None if rows.zero is None else rows.zero[ch])
            part_columns = AxisMap(columns.src[f], zero=None if columns.zero is None else columns.zero[f])
            parts.append((f, Copy("kernel", [None] * window + [part_rows, part_columns])))
        # ``axes`` gives the new shape (row maps all have one length), for the shape checks
        return cls("kernel", [None] * window + [parts[0][1].axes[-2], columns], parts)

    def apply(self, old: np.ndarray, fresh: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        if out is None:
            out = np.array(fresh, copy=True)
        else:  # the array the new variable will hold (see surgeon._Final): written in place
            out[...] = fresh
        for f, part in self.parts:
            out[..., f] = part.apply(old, fresh[..., f])
        return out

    def overwrites_all(self) -> bool:
        return all(part.overwrites_all() for _, part in self.parts)

    def counts(self, old_shape: tuple, new_shape: tuple) -> tuple[int, int, int]:
        copied = used = 0
        for f, part in self.parts:
            axes = part._resolved(old_shape)
            copied += int(np.prod([np.count_nonzero(a.src >= 0) for a in axes]))
            used += int(np.prod([np.unique(a.src[a.src >= 0]).size for a in axes]))
        return copied, int(np.prod(new_shape)) - copied, int(np.prod(old_shape)) - used
