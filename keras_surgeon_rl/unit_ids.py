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
