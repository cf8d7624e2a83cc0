"""Which units a resized layer gets and how its new output units start (plain NumPy, no Keras).

Hidden layers: a count keeps the first units and appends fresh IDs; a list names the units.
Output layers: new units start as the spec's ``init`` says (:class:`~keras_surgeon_rl.spec.NewUnitInit`).
``keep_greedy`` is only accepted where it is exact: the new unit is a copy of a kept unit with its
bias lowered by the margin, so the layer needs a bias, and everything between the layer and the
model's output must keep a strict order between units (a linear or softmax activation, dropout).
"""

from __future__ import annotations

import zlib
from typing import Hashable, Sequence

import numpy as np

from keras_surgeon_rl.errors import SurgeryError
from keras_surgeon_rl.graph import Graph, Node
from keras_surgeon_rl.ids import index_of
from keras_surgeon_rl.rules import Units
from keras_surgeon_rl.rules.dense import activation_name
from keras_surgeon_rl.spec import IdChange, NewUnitInit, suggest

#: Activations that keep a strict order between units: a lower input stays a lower output (in float32 too).
ORDER_KEEPING = {"linear", "None", "softmax"}
#: Layers that are the identity at inference (or keep the order between units, for Activation/Softmax).
_INFERENCE_IDENTITY = {"Dropout", "Identity", "GaussianNoise", "GaussianDropout", "AlphaDropout",
                       "ActivityRegularization", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D"}


def fresh_ids(taken: Sequence[Hashable], start: int, count: int) -> list:
    """``count`` integer IDs from ``start`` upward that are not in ``taken``, in vectorized time."""
    if count <= 0:
        return []
    ints = np.fromiter((int(u) for u in taken if isinstance(u, (int, float)) and not isinstance(u, bool)
                        and float(u).is_integer() and u >= start), dtype=np.int64)
    candidates = np.arange(start, start + count + ints.size, dtype=np.int64)
    return candidates[~np.isin(candidates, ints)][:count].tolist()


def hidden_units(name: str, old: list, value, init: str) -> Units:
    """A hidden layer's units for ``units[name] = value`` (a count or a list of IDs)."""
    if isinstance(value, int):
        new = old[:value] + fresh_ids(old, len(old), value - len(old))
    else:
        new = list(value)
    src = index_of(old, new)
    scale = np.ones(len(new))
    if init == "net2net":
        kept = src[src >= 0]
        if kept.size == 0:
            raise SurgeryError(f"units[{name!r}]: net2net init copies existing units, but no old unit is kept; keep at "
                               "least one, or use init 'preserve'")
        rng = np.random.default_rng(zlib.crc32(name.encode()))
        new_units = np.flatnonzero(src < 0)
        src = src.copy()
        src[new_units] = rng.choice(kept, size=new_units.size)
        scale = net2net_split(src, len(old), rng)
    return Units(old, new, src, scale, np.zeros(len(new), bool), np.zeros(len(new)))


def find_id(ids: Sequence[Hashable], wanted: Hashable) -> int:
    """Position of ``wanted`` in ``ids`` (also matching by text: spec files key IDs by strings), or -1."""
    for i, uid in enumerate(ids):
        if uid == wanted:
            return i
    for i, uid in enumerate(ids):
        if str(uid) == str(wanted):
            return i
    return -1


def _inits_by_unit(change: IdChange, new: list, is_new: np.ndarray, where: str, layer: str) -> list[NewUnitInit]:
    """The init of every new unit; an init keyed by an ID that is not a new unit is an error."""
    by_unit = [change.new_unit_init.get("*", NewUnitInit())] * len(new)
    new_positions = np.flatnonzero(is_new)
    new_ids = [new[j] for j in new_positions]
    for key, init in change.new_unit_init.items():
        if key == "*":
            continue
        k = find_id(new_ids, key)
        if k < 0:
            kept = find_id(new, key) >= 0
            raise SurgeryError(
                f"{where}.init[{key!r}]: {key!r} is {'a kept unit' if kept else 'not a unit'} of {layer!r}, and inits "
                f"apply to new units only (new units: {new_ids or 'none'}).{'' if kept else suggest(key, new_ids)} "
                "Kept units keep their weights; remove this entry or add the ID to 'new'")
        by_unit[new_positions[k]] = init
    return by_unit


def check_keep_greedy(graph: Graph, owner: str, out: str, where: str) -> None:
    """Refuse ``keep_greedy`` where a lowered copy could tie with (or pass) its source unit."""
    node = graph.nodes[owner]
    fix = ("use 'zeros', 'random' or 'copy:<id>' knowing the greedy action may change, or rebuild the layer "
           "with use_bias=True and a linear activation")
    if "bias" not in node.weight_names:
        raise SurgeryError(
            f"{where}: keep_greedy lowers a copied unit's bias by the margin, but layer {owner!r} ({node.class_name}, "
            f"use_bias=False) has no bias, so the new unit would tie with its source on every input and the greedy "
            f"action could change; {fix}")
    act = activation_name(node.config)
    if act not in ORDER_KEEPING:
        raise SurgeryError(
            f"{where}: keep_greedy needs a linear or softmax activation on {owner!r}; with {act!r} the lowered copy "
            f"can come out equal to its source (saturation or clipping), a tie that can change the greedy action; {fix}")
    name = out
    while name != owner:
        n = graph.nodes[name]
        ok = n.class_name in _INFERENCE_IDENTITY or (
            n.class_name == "Activation" and activation_name(n.config) in ORDER_KEEPING) or n.class_name == "Softmax"
        if not ok:
            raise SurgeryError(
                f"{where}: keep_greedy is exact only when the units of {owner!r} reach the output unchanged in order, "
                f"but {name!r} ({n.class_name}) sits between them and can make the lowered copy tie with its source; "
                f"{fix}")
        name = n.inbound[0]


def output_units(graph: Graph, owner: str, out: str, old: list, change: IdChange, where: str) -> Units:
    """An output layer's units: kept ones by ID, new ones initialized as ``change.init`` says."""
    new = change.new if change.new is not None else old
    src = index_of(old, new)
    is_new = src < 0
    inits = _inits_by_unit(change, new, is_new, where, owner)
    zero = np.zeros(len(new), bool)
    offset = np.zeros(len(new))
    has_bias = "bias" in graph.nodes[owner].weight_names
    greedy_checked = False
    for j in np.flatnonzero(is_new):
        init = inits[j]
        if init.kind == "zeros":
            zero[j] = True
        elif init.kind in ("copy", "keep_greedy"):
            if init.kind == "keep_greedy" and not greedy_checked:
                check_keep_greedy(graph, owner, out, where)
                greedy_checked = True
            if init.copy_of is not None:
                k = find_id(old, init.copy_of)
                if k < 0:
                    raise SurgeryError(f"{where}: the init of {new[j]!r} copies {init.copy_of!r}, which is not an old "
                                       f"unit of {owner!r}; old units: {old}.{suggest(init.copy_of, old)}")
            else:  # keep_greedy: the first kept unit
                kept = src[src >= 0]
                if kept.size == 0:
                    raise SurgeryError(f"{where}: keep_greedy for {new[j]!r} copies a kept unit of {owner!r}, but the "
                                       "spec keeps none; give new units 'random', 'zeros' or 'copy:<id>'")
                k = int(kept[0])
            if init.bias_offset and not has_bias:
                raise SurgeryError(f"{where}: the init of {new[j]!r} adds bias_offset {init.bias_offset} to the copied "
                                   f"bias, but layer {owner!r} has no bias (use_bias=False); drop bias_offset or "
                                   "rebuild the layer with use_bias=True")
            src[j] = k
            offset[j] = init.bias_offset
    return Units(old, new, src, np.ones(len(new)), zero, offset)


def net2net_split(src: np.ndarray, n_old: int, rng: np.random.Generator) -> np.ndarray:
    """Net2WiderNet's factors on the weights that read each new unit: unequal shares that sum to one.

    A unit and its copies share the unit's outgoing weights, so the next layer's sum is unchanged.
    The shares are random (each drawn from [0.5, 1.5), then normalised within the unit's group): with
    equal shares the copies would get identical gradients at every step and never become different
    units, so the layer would never gain capacity. A unit without copies keeps its weights (factor 1).
    """
    draw = rng.uniform(0.5, 1.5, size=len(src))
    return draw / np.bincount(src, weights=draw, minlength=n_old)[src]


def node_params(node: Node) -> int:
    return sum(int(w.size) for _, w in node.weights)
