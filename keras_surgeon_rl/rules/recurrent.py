"""Recurrent layers by unit ID: ``SimpleRNN``, ``GRU`` and ``LSTM``, and the ``Bidirectional`` and
``TimeDistributed`` wrappers.

A recurrent layer's hidden units are its unit IDs. Its weights are blocks per gate (one for
SimpleRNN, ``[z, r, h]`` for GRU, ``[i, f, c, o]`` for LSTM), ``units`` columns each:

- ``kernel[in, gates·units]``: rows follow the input IDs, columns the unit IDs within every block;
- ``recurrent_kernel[units, gates·units]``: rows *and* columns follow the unit IDs;
- ``bias[gates·units]`` (GRU with ``reset_after``: ``bias[2, gates·units]``, input and recurrent biases).

Function preservation. A unit's state reaches the other units only through its row of the recurrent
kernel, and the next layer only through its output. A new unit's recurrent row starts at zero (as
the next layer's rows that read it), so the old units follow exactly their old trajectories over any
sequence length, whatever the new unit's own state does; nothing else is needed (its incoming
weights and bias keep the layer's initializers, so it learns from the first step). Removed units
drop out as the old model with their outgoing weights zeroed. Net2Net's widening is exact too: a
copy gets its source's incoming columns in every gate, so by induction over time steps the two
carry the same state, and the split factors on their outgoing rows (recurrent and next layer) sum
to one.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Optional

import numpy as np

from keras_surgeon_rl.errors import SurgeryError
from keras_surgeon_rl.graph import Node
from keras_surgeon_rl.ids import TensorIDs, index_of
from keras_surgeon_rl.rules.base import Context, Rule, verbatim_maps
from keras_surgeon_rl.rules.dense import LastAxisUnits
from keras_surgeon_rl.rules.registry import FRAMEWORKS, rule_for
from keras_surgeon_rl.weights import AxisMap, Copy

#: Gate blocks per recurrent cell class.
GATES = {"SimpleRNN": 1, "GRU": 3, "LSTM": 4}
#: The names a Bidirectional layer gives its two directions' units in a concatenated output.
DIRECTIONS = ("forward", "backward")


def blocks(m: AxisMap, old_n: int, gates: int) -> AxisMap:
    """``m`` (a map over ``units``) repeated for each of ``gates`` blocks of ``old_n`` old units."""
    src = np.concatenate([np.where(m.src >= 0, m.src + g * old_n, -1) for g in range(gates)])
    tile = (lambda a: None if a is None else np.tile(a, gates))
    return AxisMap(src, scale=tile(m.scale), zero=tile(m.zero))


def outgoing(ctx: Context) -> AxisMap:
    """The recurrent kernel's row map: the weights through which each new unit's state reaches the
    others. A kept unit keeps its row; a Net2Net copy shares its source's row by the split factors; a
    new unit's row starts at zero (``init: "random"``: at the initializer's values). A copied output
    unit (``copy:<id>``) is a new unit here: its row would otherwise count its source's state twice."""
    u = ctx.units
    is_new = index_of(u.old_ids, u.new_ids) < 0
    split = not np.all(u.scale == 1.0)
    src = u.src if split else np.where(is_new, -1, u.src)
    zero = None if ctx.init == "random" or split else is_new
    return AxisMap(src, scale=u.scale if split else None, zero=zero)


class RecurrentRule(LastAxisUnits):
    """``SimpleRNN``, ``GRU`` (both ``reset_after`` settings) and ``LSTM``, Keras 3 and tf_keras. With
    ``return_state`` the states (``h``, and ``c`` for LSTM) carry the unit IDs too."""

    states_follow_units = True

    def __init__(self, gates: int):
        self.gates = gates

    def check(self, ctx: Context) -> None:
        t = ctx.input
        if t.changed and t.axis != len(t.shape) - 1:
            raise ctx.fail(f"a recurrent layer reads the last axis (features), but the changed unit IDs are on axis "
                           f"{t.axis + 1}; add a Permute before it")
        if t.changed and t.shape[:-1] != t.old_shape[:-1]:
            raise ctx.fail(f"the sequence shape changes ({t.old_shape} → {t.shape}); only the feature axis may change")
        if ctx.units is not None and ctx.units.bias_offset.any():
            raise ctx.fail("bias_offset (keep_greedy) is for a Dense or Conv output layer; a recurrent unit's "
                           "bias enters every gate and every time step. Use 'zeros', 'random' or 'copy:<id>'")

    def weight_maps(self, ctx: Context, names: Optional[dict] = None) -> dict:
        """The maps of the cell's weights; ``names`` renames them (``{"kernel": "kernel#3"}``, for
        the backward direction of a Bidirectional layer)."""
        names = names or {}
        n_old = len(ctx.units.old_ids)
        columns = blocks(ctx.unit_axis(), n_old, self.gates)
        rows = ctx.read_axis(ctx.input, data_axis=-1)
        maps = {"kernel": [rows, columns], "recurrent_kernel": [outgoing(ctx), columns]}
        old = {n.split("#")[0]: n for n in ctx.old.weight_names}
        bias = old.get("bias")
        if bias is not None:
            two = ctx.old.weight(bias).ndim == 2  # GRU, reset_after: [input bias, recurrent bias]
            maps["bias"] = [None, columns] if two else [columns]
        return {names.get(k, k): Copy(names.get(k, k), axes) for k, axes in maps.items()}


def _inner_node(node: Node, key: str = "layer") -> Node:
    """The layer a wrapper holds (``config[key]``) as a node of its own, with the wrapper's weights."""
    inner = node.config[key]
    cls = None
    module = inner.get("module") or ""
    root = (getattr(node.layer_class, "__module__", None) or "").split(".")[0]
    if root in FRAMEWORKS and (not module or module.split(".")[0] in FRAMEWORKS):
        cls = getattr(getattr(sys.modules.get(root), "layers", None), inner["class_name"], None)
    return Node(node.name, inner["class_name"], cls, dict(inner["config"]), list(node.inbound), node.call_as_list,
                dict(node.call_kwargs), list(node.weights), node.output_shape)


def _wrapped(config: dict, inner_config: dict, key: str = "layer") -> dict:
    """``config`` with the wrapped layer's config replaced. Keras 3 saves the wrapped layer's input shape
    (``build_config``) and builds it from that: the new layer would keep the old input size."""
    inner = {k: v for k, v in config[key].items() if k != "build_config"}
    return {**config, key: {**inner, "config": inner_config}}


class BidirectionalRule(LastAxisUnits):
    """``Bidirectional(LSTM/GRU/SimpleRNN)``, resized by the wrapper's own name: both directions get the
    same unit IDs and the same edit. With ``merge_mode="concat"`` the output's IDs are
    ``("forward", id)`` and ``("backward", id)`` pairs; with ``sum``, ``mul`` or ``ave`` they are the
    unit IDs (a new unit's outputs are combined with each other only); with ``None`` each direction's
    output carries them, as each direction's states do with ``return_state``."""

    states_follow_units = True

    def _cell(self, config: dict) -> RecurrentRule:
        """The rule of the wrapped recurrent layer (both directions are of its kind: see :meth:`check`)."""
        name = config["layer"]["class_name"]
        if name not in GATES:
            raise SurgeryError(f"layer {config.get('name')!r} (Bidirectional) wraps a {name}; the surgeon knows "
                               f"Bidirectional({', '.join(GATES)}) only")
        return RecurrentRule(GATES[name])

    def unit_count(self, config: dict) -> int:
        return int(config["layer"]["config"]["units"])

    def resize(self, config: dict, n: int) -> dict:
        new = _wrapped(config, {**config["layer"]["config"], "units": int(n)})
        if config.get("backward_layer"):
            new = _wrapped(new, {**config["backward_layer"]["config"], "units": int(n)}, "backward_layer")
        return new

    def _halves(self, ctx: Context) -> list[tuple[Context, list[str]]]:
        """Per direction: its context (the wrapped layer's node, its weights by their plain names) and
        the wrapper's names of its weights (``kernel#3``)."""
        names = ctx.old.weight_names
        half = len(names) // 2
        out = []
        for d, key in enumerate(("layer", "backward_layer")):
            if key == "backward_layer" and not ctx.old.config.get(key):
                key = "layer"
            mine = names[d * half:(d + 1) * half]
            old = _inner_node(ctx.old, key)
            old.weights = [(n.split("#")[0], ctx.old.weight(n)) for n in mine]
            new = _inner_node(ctx.node, key)
            out.append((dataclasses.replace(ctx, node=new, old=old, notes=ctx.notes), mine))
        return out

    def check(self, ctx: Context) -> None:
        if not ctx.changed:
            return
        cfg = ctx.node.config
        cell = self._cell(cfg)
        back = cfg.get("backward_layer")
        if back and back["class_name"] != cfg["layer"]["class_name"]:
            raise ctx.fail(f"its directions are of different kinds ({cfg['layer']['class_name']} forward, "
                           f"{back['class_name']} backward); the surgeon resizes both alike only when they match")
        if back and int(back["config"]["units"]) != int(cfg["layer"]["config"]["units"]):
            raise ctx.fail("its directions have different numbers of units; the surgeon resizes both alike")
        names = [n.split("#")[0] for n in ctx.old.weight_names]
        if len(names) % 2 or names[:len(names) // 2] != names[len(names) // 2:]:
            raise ctx.fail(f"its directions have different weights ({', '.join(names)}); the surgeon resizes both "
                           "alike only when they match (e.g. both with or both without a bias)")
        for sub, _ in self._halves(ctx):
            cell.check(sub)

    def config_for(self, ctx: Context) -> dict:
        config = _wrapped(ctx.node.config, ctx.node.config["layer"]["config"])
        if config.get("backward_layer"):
            config = _wrapped(config, config["backward_layer"]["config"], "backward_layer")
        return config

    def output_ids(self, ctx: Context) -> TensorIDs:
        if ctx.node.config.get("merge_mode") != "concat":  # sum, mul, ave; None: the forward output (first)
            return super().output_ids(ctx)
        u, shape = ctx.units, tuple(ctx.out_shape)
        n_old = len(u.old_ids)
        src = np.concatenate([u.src, np.where(u.src >= 0, u.src + n_old, -1)])
        return TensorIDs([(d, i) for d in DIRECTIONS for i in u.new_ids], src, np.tile(u.scale, 2), shape,
                         len(shape) - 1, [(d, i) for d in DIRECTIONS for i in u.old_ids], tuple(ctx.old_out_shape))

    def weight_maps(self, ctx: Context) -> dict:
        if not ctx.changed:
            return verbatim_maps(ctx.old)
        maps, cell = {}, self._cell(ctx.node.config)
        for sub, names in self._halves(ctx):
            maps.update(cell.weight_maps(sub, {n.split("#")[0]: n for n in names}))
        return maps


class TimeDistributedRule(Rule):
    """``TimeDistributed(layer)``: the wrapped layer's rule, applied per time step (axis 0 of a sample
    is time; the wrapped layer sees the axes after it). Units, checks and weights are the wrapped
    layer's; its name is the wrapper's."""

    def __init__(self, node: Optional[Node] = None):
        self.inner = rule_for(_inner_node(node)) if node is not None else None
        self.owns_units = bool(self.inner is not None and self.inner.owns_units)

    def specialize(self, node: Node) -> Rule:
        return TimeDistributedRule(node)

    def unit_count(self, config: dict) -> int:
        return self.inner.unit_count(config["layer"]["config"])

    def resize(self, config: dict, n: int) -> dict:
        return _wrapped(config, self.inner.resize(config["layer"]["config"], n))

    def unit_axis(self, config: dict, rank: int) -> int:
        return self.inner.unit_axis(config["layer"]["config"], rank - 1) + 1

    def reads_axis(self, config: dict, rank: int) -> Optional[int]:
        if self.inner is None:
            return None
        axis = self.inner.reads_axis(config["layer"]["config"], rank - 1)
        return None if axis is None else axis + 1

    def _inner(self, ctx: Context) -> Context:
        """The wrapped layer's context: one time step (the time axis stripped from every shape)."""
        inputs = [t.with_shape(t.shape[1:], t.old_shape[1:], t.axis - 1) for t in ctx.inputs]
        return dataclasses.replace(ctx, node=_inner_node(ctx.node), old=_inner_node(ctx.old),
                                   inputs=inputs, out_shape=tuple(ctx.out_shape[1:]),
                                   old_out_shape=tuple(ctx.old_out_shape[1:]), notes=ctx.notes)

    def check(self, ctx: Context) -> None:
        if not ctx.changed:
            return
        if self.inner is None:
            raise ctx.fail(f"it wraps a {ctx.node.config['layer']['class_name']}, which has no surgery rule, and the "
                           "units reaching it change")
        if any(t.changed and t.axis == 0 for t in ctx.inputs):
            raise ctx.fail("the changed unit IDs are on the time axis, which TimeDistributed maps over")
        self.inner.check(self._inner(ctx))

    def config_for(self, ctx: Context) -> dict:
        if self.inner is None:
            return ctx.node.config
        return _wrapped(ctx.node.config, self.inner.config_for(self._inner(ctx)))

    def output_ids(self, ctx: Context) -> TensorIDs:
        if self.inner is None:
            return super().output_ids(ctx)
        t = self.inner.output_ids(self._inner(ctx))
        return t.with_shape(ctx.out_shape, ctx.old_out_shape, t.axis + 1)

    def weight_maps(self, ctx: Context) -> dict:
        return verbatim_maps(ctx.old) if self.inner is None else self.inner.weight_maps(self._inner(ctx))
