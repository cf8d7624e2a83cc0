"""The Keras 3 (``import keras``) side of the adapter."""

from __future__ import annotations

import keras

from keras_surgeon_rl.adapters.base import KerasAdapter
from keras_surgeon_rl.errors import SurgeryError


def _tensors(value, found: list) -> None:
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
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

    def _parse_inbound(self, name: str, node_config) -> tuple[list[str], dict]:
        found: list = []
        _tensors(node_config.get("args", []), found)
        kwargs = node_config.get("kwargs", {}) or {}
        in_kwargs: list = []
        _tensors(kwargs, in_kwargs)
        if in_kwargs:
            raise SurgeryError(f"layer {name!r} is called with tensors as keyword arguments "
                               f"({', '.join(kwargs)}); the surgeon follows positional inputs only")
        for history in found:
            if history[2] != 0:
                raise SurgeryError(f"layer {name!r} reads output {history[2]} of the multi-output layer "
                                   f"{history[0]!r}; multi-output layers are not supported")
        return [h[0] for h in found], kwargs
