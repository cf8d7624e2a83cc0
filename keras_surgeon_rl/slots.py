"""Optimizer state through a surgery: slot arrays (Adam's moments) follow their weights' index maps.

Framework-free (NumPy and the plan): the keras-rl2 agents (:mod:`keras_surgeon_rl.rl.optimizer_state`)
and Stable-Baselines3 models (:mod:`keras_surgeon_rl.sb3`) both carry their optimizer state with it.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from keras_surgeon_rl.ids import index_of
from keras_surgeon_rl.planner import Plan
from keras_surgeon_rl.weights import Copy


def map_slot(m: Copy, old: np.ndarray, shape: tuple, new_units: Optional[tuple]) -> np.ndarray:
    """A slot array through a weight's :class:`Copy` map: copied entries at their new places, others
    zero. The map's ``scale`` and ``offset`` (for weights: Net2Net's split, a lowered bias) do not
    apply to slots, and along the axis of the layer's own units, a unit with a new ID (``new_units``)
    starts at zero even where its weights are a copy (``keep_greedy``, ``copy:<id>``, Net2Net)."""
    axes = m._resolved(old.shape)
    expected = tuple(len(a.src) for a in axes)
    if expected != tuple(shape):
        return np.zeros(expected, dtype=old.dtype)  # the caller names the mismatch
    srcs = [np.asarray(a.src) for a in axes]
    if new_units is not None:
        kept_src, is_new = new_units
        for ax, src in enumerate(srcs):
            # the axis of the layer's own units: its kept units come from where their IDs were
            if src.shape == is_new.shape and np.array_equal(src[~is_new], kept_src[~is_new]):
                srcs[ax] = np.where(is_new, -1, src)
    out = np.zeros(shape, dtype=old.dtype)
    keep = [np.flatnonzero(src >= 0) for src in srcs]
    if all(k.size for k in keep):
        out[np.ix_(*keep)] = old[np.ix_(*[a.src[k] for a, k in zip(axes, keep)])]
    return out


def new_units(p: Plan, lp) -> Optional[tuple]:
    """``(index of each unit in the old layer, mask of units with new IDs)`` of a kept layer whose
    units got new IDs, else ``None``."""
    new_ids = p.new.unit_ids["layers"].get(lp.node.name)
    if lp.old is None or new_ids is None:
        return None
    old_ids = p.old.unit_ids["layers"].get(lp.old.name)
    if lp.node.name in p.new.outputs:  # an output layer's old IDs may come from the spec's outputs.old
        t = p.outputs[p.new.outputs.index(lp.node.name)]
        if t.old_ids is not None and list(t.ids) == list(new_ids):
            old_ids = list(t.old_ids)
    if old_ids is None:  # IDs the model does not carry count 0..n-1
        shape = tuple(lp.old.output_shape or ())
        if not shape or not isinstance(shape[-1], int):
            return None
        old_ids = list(range(shape[-1]))
    src = index_of(old_ids, new_ids)
    is_new = src < 0
    return (src, is_new) if is_new.any() else None


def plan_maps(p: Plan, out: dict) -> None:
    """``(new layer, weight) -> (old layer name or None, ArrayMap, new units)`` for every planned layer."""
    for lp in p.layers.values():
        if lp.sub is not None:
            plan_maps(lp.sub, out)
            continue
        units = new_units(p, lp)
        for weight, m in lp.maps.items():
            out[(lp.node.name, weight)] = (lp.old.name if lp.old is not None else None, m, units)
