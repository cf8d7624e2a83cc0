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

    def _implicit(self, model) -> set:
        """The operations that compute masks Keras hands from layer to layer by itself (a Masking layer's
        ``any(x != mask_value)``): a layer called on a tensor that carries a mask gets it as its ``mask``
        argument, and the rebuilt model hands it on again. Only operations that feed nothing but such
        masks count; a mask a user passes by hand stays a tensor argument (and is refused)."""
        masks, users = set(), {}
        for op in model.operations:
            for node in getattr(op, "_inbound_nodes", []):
                args, kwargs = node.arguments.args, node.arguments.kwargs
                for t in node.arguments.keras_tensors:
                    users.setdefault(id(t), []).append(op.name)
                mask = kwargs.get("mask")
                if mask is not None and args and getattr(args[0], "_keras_mask", None) is mask:
                    masks.add(id(mask))
        implicit: set = set()
        todo = [op for op in model.operations if not isinstance(op, keras.layers.Layer)]
        changed = True
        while changed:  # an operation is implicit when all it feeds is masks or other implicit operations
            changed = False
            for op in todo:
                if op.name in implicit:
                    continue
                outs = [t for node in getattr(op, "_inbound_nodes", []) for t in node.outputs]
                if outs and all(id(t) in masks or all(u in implicit for u in users.get(id(t), [None]))
                                for t in outs):
                    implicit.add(op.name)
                    changed = True
        return implicit

    def _parse_inbound(self, layer, node_config) -> tuple[list[tuple[str, int, int]], dict, bool, dict]:
        name = layer.name
        args = list(node_config.get("args", []))
        kwargs = dict(node_config.get("kwargs", {}) or {})
        mask = kwargs.get("mask")
        if _is_tensor(mask) and mask["config"]["keras_history"][0] in self._skipped:
            del kwargs["mask"]  # handed on by Keras itself; the rebuilt model does the same
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
        return [(h[0], h[1], h[2]) for h in found], kwargs, as_list, constants
