"""The tf_keras (Keras 2, the Keras keras-rl2 uses) side of the adapter.

Works in eager and in graph mode (keras-rl2 disables eager execution process-wide).
"""

from __future__ import annotations

import inspect

import numpy as np
import tf_keras

from keras_surgeon_rl.adapters.base import KerasAdapter
from keras_surgeon_rl.errors import SurgeryError


def _reference(value):
    """``[layer, node, tensor]`` when ``value`` is how tf_keras writes a tensor in call kwargs, else None."""
    value = value.as_list() if hasattr(value, "as_list") else value
    if (isinstance(value, (list, tuple)) and len(value) == 3 and isinstance(value[0], str)
            and all(isinstance(v, int) for v in value[1:])):
        return list(value)
    return None


def _positional(layer) -> list[str]:
    """Names of the arguments of ``layer.call`` after the first, in order, that can be positional."""
    try:
        params = list(inspect.signature(layer.call).parameters.values())
    except (TypeError, ValueError):
        return []
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return [p.name for p in params[1:] if p.kind in kinds]


class TfKerasAdapter(KerasAdapter):
    flavour = "tf_keras"
    keras = tf_keras

    def _fetch_all(self, model) -> dict:
        if not self.defers_writes():
            return {}
        variables = list(model.weights)
        values = tf_keras.backend.batch_get_value(variables)  # new NumPy arrays: nothing else writes to them
        return {id(v): np.asarray(a) for v, a in zip(variables, values)}

    def defers_writes(self) -> bool:
        import tensorflow as tf

        return not tf.executing_eagerly()

    def set_many(self, pairs: list) -> None:
        """In graph mode (keras-rl2) every layer's arrays in one session run, not one run per layer."""
        if not pairs or not self.defers_writes():
            return super().set_many(pairs)
        from tf_keras.src.engine import base_layer, base_layer_v1

        plain = (base_layer.Layer.set_weights, base_layer_v1.Layer.set_weights)
        tuples = []
        for layer, arrays in pairs:
            variables = layer.weights
            if type(layer).set_weights not in plain or len(variables) != len(arrays) or any(
                    tuple(int(d) for d in v.shape) != tuple(a.shape) for v, a in zip(variables, arrays)):
                layer.set_weights(arrays)  # its own set_weights, or Keras's error message
            else:
                tuples += zip(variables, arrays)
        tf_keras.backend.batch_set_value(tuples)
        for layer, _ in pairs:
            self.finish(layer)

    def _first_call(self, layer) -> int:
        # a nested model built on an Input has a call of its own first, which configs do not count
        from tf_keras.src.engine.functional import _should_skip_first_node

        return int(_should_skip_first_node(layer))

    def _parse_inbound(self, layer, node_config) -> tuple[list[tuple[str, int, int]], dict, bool, dict]:
        name = layer.name
        refs, kwargs = [], {}
        for entry in node_config:
            refs.append(list(entry[:3]))
            if len(entry) > 3 and entry[3]:
                kwargs.update(entry[3])
        try:
            as_list = isinstance(layer.input, (list, tuple))
        except (AttributeError, RuntimeError, ValueError):  # a shared layer: .input names no one call
            as_list = len(refs) > 1
        # tf_keras records a call's tensors after the first as keyword arguments (value= of
        # MultiHeadAttention(query, value)); they are read back as the positional inputs they were
        tensor_kwargs = [k for k, v in kwargs.items() if _reference(v) is not None]
        order = _positional(layer)[:len(tensor_kwargs)]
        if tensor_kwargs and (as_list or len(refs) != 1 or sorted(order) != sorted(tensor_kwargs)):
            raise SurgeryError(f"layer {name!r} ({type(layer).__name__}) is called with tensors as keyword arguments "
                               f"({', '.join(tensor_kwargs)}) that are not its next positional arguments "
                               f"({', '.join(order) or 'none'}); the surgeon follows positional inputs only")
        refs += [_reference(kwargs.pop(k)) for k in (order if tensor_kwargs else [])]
        if any(_reference(v) is not None or _nested_reference(v) for v in kwargs.values()):
            raise SurgeryError(f"layer {name!r} ({type(layer).__name__}) is called with tensors nested in its "
                               f"keyword arguments ({', '.join(kwargs)}); the surgeon follows positional inputs only")
        return [(r[0], r[1], r[2]) for r in refs], kwargs, as_list, {}


def _nested_reference(value) -> bool:
    value = value.as_list() if hasattr(value, "as_list") else value
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return any(_reference(v) is not None or _nested_reference(v) for v in value)
    return False
