"""Layers that keep unit IDs: activations, dropout, normalization, pooling, padding, cropping.

Per-unit weights (BatchNormalization's gamma/beta/moving statistics, PReLU's alpha) follow their
unit: kept units keep their values, new units get the layer's initial values (or their Net2Net
source's), removed units' values are dropped.
"""

from __future__ import annotations

from typing import Optional

from keras_surgeon_rl.ids import TensorIDs
from keras_surgeon_rl.rules.base import Context, Rule
from keras_surgeon_rl.rules.conv import check_channel_axis
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
        axis_key: config key naming the axis the layer works on (``"axis"`` for BatchNormalization);
            the changed unit IDs must be on that axis.
        note: a remark added to the plan when the units reaching the layer change (e.g. "not
            function-preserving").
    """

    def __init__(self, per_unit_weights: Optional[dict] = None, axis_key: Optional[str] = None,
                 note: Optional[str] = None):
        self.per_unit_weights = per_unit_weights or {}
        self.axis_key = axis_key
        self.note = note

    def check(self, ctx: Context) -> None:
        t = ctx.input
        check_channel_axis(ctx, t)
        if self.axis_key and t.changed:
            axes = _norm_axis(ctx.node.config.get(self.axis_key, -1), len(t.shape))
            if axes != [t.axis]:
                raise ctx.fail(f"it works on axis {[a + 1 for a in axes]} but the changed unit IDs are on "
                               f"axis {t.axis + 1}; keep the units reaching it unchanged")

    def output_ids(self, ctx: Context) -> TensorIDs:
        if self.note and ctx.input.changed:
            ctx.notes.append(self.note)
        return super().output_ids(ctx)

    def weight_maps(self, ctx: Context) -> dict:
        t = ctx.input
        maps = {}
        for name in ctx.old.weight_names:
            if name not in self.per_unit_weights:
                raise ctx.fail(f"weight {name!r} has no mapping in its rule; register a rule that maps it")
            axis = self.per_unit_weights[name]
            rank = ctx.old.weight(name).ndim
            if axis is None:  # not per unit (Normalization's count): copied as it is
                maps[name] = Copy(name, [None] * rank)
                continue
            if axis == LIKE_DATA:
                axis = t.axis if rank == len(t.shape) else rank - 1
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
