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

    def adopt(self, array):
        if keras.backend.backend() != "tensorflow":  # another backend's variables take no tf tensor
            return None
        return super().adopt(array)

    def _operation(self, model, name: str):
        """A layer, or a raw ``keras.ops`` call in the graph (``h + x``, ``keras.ops.relu(h)``): an
        operation without weights, rebuilt from its config and called like a layer."""
        try:
            return model.get_layer(name)
        except ValueError:
            for op in model.operations:
                if op.name == name:
                    return op
            raise SurgeryError(f"model {model.name!r} records an operation {name!r} that it does not hold") from None

    def _parse_inbound(self, layer, node_config) -> tuple[list[tuple[str, int]], dict, bool, dict]:
        name = layer.name
        args = list(node_config.get("args", []))
        kwargs = node_config.get("kwargs", {}) or {}
        in_kwargs: list = []
        _tensors(kwargs, in_kwargs)
        if in_kwargs:
            raise SurgeryError(f"layer {name!r} is called with tensors as keyword arguments "
                               f"({', '.join(kwargs)}); the surgeon follows positional inputs only")
        as_list = len(args) == 1 and isinstance(args[0], (list, tuple))
        found, constants = [], {}
        is_op = not isinstance(layer, keras.layers.Layer)
        for pos, arg in enumerate(args[0] if as_list else args):
            if is_op and not as_list and isinstance(arg, (int, float)) and not isinstance(arg, bool):
                constants[pos] = arg  # x * 2.0: a keras.ops call on a tensor and a number
                continue
            if not _is_tensor(arg):
                raise SurgeryError(f"layer {name!r} ({type(layer).__name__}) is called with {arg!r} among its "
                                   "positional inputs; the surgeon rebuilds calls on tensors (one, several, or one "
                                   "list of them): pass other arguments by keyword")
            found.append(arg["config"]["keras_history"])
        for history in found:
            if history[2] != 0:
                raise SurgeryError(f"layer {name!r} reads output {history[2]} of the multi-output layer "
                                   f"{history[0]!r}; multi-output layers are not supported")
        return [(h[0], h[1]) for h in found], kwargs, as_list, constants
