"""Layers that keep unit IDs: activations, dropout, normalization, pooling, padding, cropping.

Per-unit weights (BatchNormalization's gamma/beta/moving statistics, PReLU's alpha) follow their
unit: kept units keep their values, new units get the layer's initial values (or their Net2Net
source's), removed units' values are dropped.
"""

from __future__ import annotations

from typing import Optional

from keras_surgeon_rl.ids import TensorIDs
from keras_surgeon_rl.rules.base import Context, Rule, verbatim_maps
from keras_surgeon_rl.rules.conv import channel_axis, check_channel_axis
from keras_surgeon_rl.weights import Copy

#: ``per_unit_weights`` value for a weight shaped like the data (PReLU's alpha).
LIKE_DATA = "like_data"


def _norm_axis(axis, rank: int) -> list[int]:
    """A Keras ``axis`` config (counting the batch axis) as per-sample axes."""
    axes = axis if isinstance(axis, (list, tuple)) else [axis]
    return sorted(a - 1 if a >= 0 else rank + a for a in (int(x) for x in axes))


class PassThrough(Rule):
    """A layer that passes unit IDs through unchanged.

    Args:
        per_unit_weights: weights indexed by unit: ``{name: axis of the weight array}``, or
            ``{name: LIKE_DATA}`` for a weight shaped like one sample of the data, or
            ``{name: None}`` for a weight that is not per unit (copied as it is).
        axis_key: config key naming the axis the layer works on (``"axis"`` for BatchNormalization).
            When the changed unit IDs are on that axis, the per-unit weights follow them; when they
            are on another axis, see ``other_axis``.
        other_axis: what a change of units on another axis than ``axis_key``'s does: ``"refuse"``
            (BatchNormalization: in training its batch statistics would mix the units), or
            ``"exact"`` (LayerNormalization, Softmax, Normalization: each unit is computed on its
            own, and the weights, indexed by the other axis, are copied as they are).
        note: a remark added to the plan when the units reaching the layer change on its
            ``axis_key`` axis (e.g. "not function-preserving").
    """

    def __init__(self, per_unit_weights: Optional[dict] = None, axis_key: Optional[str] = None,
                 note: Optional[str] = None, other_axis: str = "refuse"):
        self.per_unit_weights = per_unit_weights or {}
        self.axis_key = axis_key
        self.note = note
        self.other_axis = other_axis

    def _axes(self, config: dict, rank: int) -> Optional[list[int]]:
        """The per-sample axes the layer works on (``None``: no axis key, or ``axis=None``)."""
        if not self.axis_key or config.get(self.axis_key, -1) is None:
            return None
        return _norm_axis(config.get(self.axis_key, -1), rank)

    def _on_its_axis(self, ctx: Context) -> bool:
        axes = self._axes(ctx.node.config, len(ctx.input.shape))
        return axes is None or ctx.input.axis in axes

    def reads_axis(self, config: dict, rank: int) -> Optional[int]:
        return channel_axis(config, rank) if "data_format" in config else None

    def hints_axis(self, config: dict, rank: int) -> Optional[int]:
        axes = self._axes(config, rank)
        return axes[0] if axes is not None and len(axes) == 1 and 0 <= axes[0] < rank else None

    def input_axis_of(self, config: dict, axis: int) -> Optional[int]:
        return axis if "data_format" not in config else None

    def check(self, ctx: Context) -> None:
        t = ctx.input
        check_channel_axis(ctx, t)
        if not (self.axis_key and t.changed):
            return
        axes = self._axes(ctx.node.config, len(t.shape))
        if axes is None:
            raise ctx.fail(f"it works on every axis at once ({self.axis_key}=None), so a change of the units "
                           "reaching it changes every output; keep the units reaching it unchanged")
        if t.axis not in axes and self.other_axis == "refuse":
            raise ctx.fail(f"it works on axis {[a + 1 for a in axes]} but the changed unit IDs are on axis "
                           f"{t.axis + 1}, so its statistics are per position of another axis than the units' (in "
                           "training, the units would be mixed); keep the units reaching it unchanged, or give "
                           f"the model input's unit axis in the spec ('axis')")
        if t.axis in axes and axes != [t.axis]:
            raise ctx.fail(f"it works on axes {[a + 1 for a in axes]} together, the changed unit IDs among them "
                           f"(axis {t.axis + 1}); keep the units reaching it unchanged")

    def output_ids(self, ctx: Context) -> TensorIDs:
        if self.note and ctx.input.changed and self._on_its_axis(ctx):
            ctx.notes.append(self.note)
        return super().output_ids(ctx)

    def weight_maps(self, ctx: Context) -> dict:
        t = ctx.input
        if not self._on_its_axis(ctx):  # weights indexed by another axis: each unit alone, as before
            return verbatim_maps(ctx.old)
        maps = {}
        for name in ctx.old.weight_names:
            if name not in self.per_unit_weights:
                raise ctx.fail(f"weight {name!r} has no mapping in its rule; register a rule that maps it")
            axis = self.per_unit_weights[name]
            shape = ctx.old.weight(name).shape
            rank = len(shape)
            if axis == LIKE_DATA:
                axis = t.axis if rank == len(t.shape) else rank - 1
            if axis is None or (shape[axis % rank] == 1 and t.old_width != 1):
                # not per unit (Normalization's count), or shared across the units (PReLU's shared_axes)
                maps[name] = Copy(name, [None] * rank)
                continue
            axes = [None] * rank
            axes[axis % rank] = ctx.per_unit(t)
            maps[name] = Copy(name, axes)
        return maps


class PerUnitConstants(PassThrough):
    """A pass-through layer whose config may hold one constant per unit: Rescaling's ``scale`` and
    ``offset``, Normalization's ``mean`` and ``variance`` given to its constructor (ConvNeXt).

    Kept units keep their constants, new units get ``defaults`` (their values never matter: the
    weights reading new units start at zero), removed units' constants are dropped. Scalars stay.

    Args:
        defaults: ``{config key: value for a new unit}``.
        **kwargs: as for :class:`PassThrough`.
    """

    def __init__(self, defaults: dict, **kwargs):
        super().__init__(**kwargs)
        self.defaults = defaults

    def config_for(self, ctx: Context) -> dict:
        t, config = ctx.input, dict(ctx.node.config)
        if not self._on_its_axis(ctx):  # constants per position of another axis: kept as they are
            return config
        for key, default in self.defaults.items():
            value = config.get(key)
            if not isinstance(value, (list, tuple)):
                continue
            nested = any(isinstance(v, (list, tuple)) for v in value)
            if len(value) == 1 and not nested:  # one value for every unit
                continue
            if len(value) != t.old_width or nested:
                raise ctx.fail(f"its {key!r} holds {len(value)} values, not one per unit of the {t.old_width} on "
                               f"axis {t.axis + 1}; keep the units reaching it unchanged")
            config[key] = [value[s] if s >= 0 else default for s in t.src.tolist()]
        return config
