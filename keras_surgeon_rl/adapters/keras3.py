"""The Keras 3 (``import keras``) side of the adapter."""

from __future__ import annotations

import keras

from keras_surgeon_rl.adapters.base import KerasAdapter
from keras_surgeon_rl.errors import SurgeryError


def _is_tensor(value) -> bool:
    return isinstance(value, dict) and value.get("class_name") == "__keras_tensor__"


def _tensors(value, found: list) -> None:
    if isinstance(value, dict):
        if _is_tensor(value):
            found.append(value["config"]["keras_history"])
        else:
            for v in value.values():
                _tensors(v, found)
    elif isinstance(value, (list, tuple)):
        for v in value:
            _tensors(v, found)


class Keras3Adapter(KerasAdapter):
    flavour = "keras3"
    keras = keras

    def _parse_inbound(self, layer, node_config) -> tuple[list[str], dict, bool]:
        name = layer.name
        args = list(node_config.get("args", []))
        kwargs = node_config.get("kwargs", {}) or {}
        in_kwargs: list = []
        _tensors(kwargs, in_kwargs)
        if in_kwargs:
            raise SurgeryError(f"layer {name!r} is called with tensors as keyword arguments "
                               f"({', '.join(kwargs)}); the surgeon follows positional inputs only")
        as_list = len(args) == 1 and isinstance(args[0], (list, tuple))
        found = []
        for arg in args[0] if as_list else args:
            if not _is_tensor(arg):
                raise SurgeryError(f"layer {name!r} ({type(layer).__name__}) is called with {arg!r} among its "
                                   "positional inputs; the surgeon rebuilds calls on tensors (one, several, or one "
                                   "list of them): pass other arguments by keyword")
            found.append(arg["config"]["keras_history"])
        for history in found:
            if history[2] != 0:
                raise SurgeryError(f"layer {name!r} reads output {history[2]} of the multi-output layer "
                                   f"{history[0]!r}; multi-output layers are not supported")
        return [h[0] for h in found], kwargs, as_list
