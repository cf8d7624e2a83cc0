"""Unit IDs that travel with a model: feature names of inputs, unit IDs of Dense/Conv layers.

A model that carries IDs lets a later spec say only what is new (``"inputs": {"new": [...]}``):
the planner takes ``old`` from the model. :func:`~keras_surgeon_rl.surgeon.transplant` gives every
result the IDs of its inputs and layers; :mod:`keras_surgeon_rl.io` saves them beside the model file.

Example:
    >>> set_unit_ids(model, inputs={"obs": ["x_dot", "theta"]}, layers={"q": ["left", "right"]})
    >>> get_unit_ids(model)["inputs"]["obs"]
    ['x_dot', 'theta']
"""

from __future__ import annotations

from typing import Any, Optional

from keras_surgeon_rl.errors import SurgeryError
from keras_surgeon_rl.spec import id_list

_ATTR = "_keras_surgeon_rl_unit_ids"


class _Box:
    """Holds the IDs outside Keras' attribute tracking (which would wrap a bare dict)."""

    def __init__(self, ids: dict):
        self.ids = ids


def empty() -> dict:
    return {"inputs": {}, "layers": {}}


def get_unit_ids(model) -> dict:
    """``{"inputs": {input_name: ids}, "layers": {layer_name: ids}}`` carried by ``model``."""
    box = getattr(model, _ATTR, None)
    ids = box.ids if isinstance(box, _Box) else empty()
    return {"inputs": dict(ids["inputs"]), "layers": dict(ids["layers"])}


def set_unit_ids(model, inputs: Optional[dict] = None, layers: Optional[dict] = None,
                 replace: bool = False) -> None:
    """Attach unit IDs to ``model`` (merged with what it carries unless ``replace``).

    Args:
        model: a Keras model of either flavour.
        inputs: ``{input_name: [ids]}``, one ID per feature on the unit axis.
        layers: ``{layer_name: [ids]}``, one ID per unit of a Dense/Conv layer (use the output
            layer's name for output IDs such as action names).
        replace: drop the IDs the model carried before.
    """
    ids = empty() if replace else get_unit_ids(model)
    for key, given in (("inputs", inputs), ("layers", layers)):
        for name, value in (given or {}).items():
            ids[key][name] = id_list(value, f"unit IDs of {name!r}")
    object.__setattr__(model, _ATTR, _Box(ids))


def check_graph(graph, ids: dict) -> None:
    """Raise a :class:`SurgeryError` when ``ids`` do not fit ``graph``: an unknown input or layer,
    a layer without units of its own, or an ID count other than the number of units."""
    from keras_surgeon_rl.rules import rule_for

    for name, value in ids["inputs"].items():
        if name not in graph.inputs:
            raise SurgeryError(f"unit IDs are given for input {name!r}, but the model's inputs are "
                               f"{', '.join(graph.inputs)}")
        shape = tuple(graph.nodes[name].output_shape)
        if len(value) not in shape:
            raise SurgeryError(f"{len(value)} unit IDs are given for input {name!r}, but its shape is {shape}: "
                               "give one ID per feature on its unit axis")
    for name, value in ids["layers"].items():
        found = graph.find(name)  # a layer of the model or of a model nested in it
        node = found[0][1] if len(found) == 1 else None
        rule = rule_for(node) if node is not None and not node.is_input else None
        if rule is None or not rule.owns_units:
            what = "the model has no layer of that name" if node is None else f"it is a {node.class_name}, which has no units of its own"
            raise SurgeryError(f"unit IDs are given for layer {name!r}, but {what}")
        n = rule.unit_count(node.config)
        if len(value) != n:
            raise SurgeryError(f"{len(value)} unit IDs are given for layer {name!r}, but it has {n} units")


def check_against(model, ids: dict) -> None:
    """:func:`check_graph` for a Keras model of either flavour."""
    from keras_surgeon_rl.adapters import adapter_for

    check_graph(adapter_for(model).read(model), ids)


def to_json(ids: dict) -> dict:
    def plain(v: Any):
        return [plain(x) for x in v] if isinstance(v, (list, tuple)) else v

    return {k: {n: plain(v) for n, v in ids[k].items()} for k in ("inputs", "layers")}


def from_json(data: dict) -> dict:
    ids = empty()
    for key in ("inputs", "layers"):
        for name, value in (data.get(key) or {}).items():
            ids[key][name] = id_list(value, f"unit IDs of {name!r}")
    return ids
