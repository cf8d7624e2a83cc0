"""The tf_keras (Keras 2, the Keras keras-rl2 uses) side of the adapter.

Works in eager and in graph mode (keras-rl2 disables eager execution process-wide).
"""

from __future__ import annotations

import tf_keras

from keras_surgeon_rl.adapters.base import KerasAdapter
from keras_surgeon_rl.errors import SurgeryError


class TfKerasAdapter(KerasAdapter):
    flavour = "tf_keras"
    keras = tf_keras

    def _parse_inbound(self, name: str, node_config) -> tuple[list[str], dict]:
        names, kwargs = [], {}
        for entry in node_config:
            layer_name, _node_index, tensor_index = entry[:3]
            if tensor_index != 0:
                raise SurgeryError(f"layer {name!r} reads output {tensor_index} of the multi-output layer "
                                   f"{layer_name!r}; multi-output layers are not supported")
            names.append(layer_name)
            if len(entry) > 3 and entry[3]:
                kwargs.update(entry[3])
        return names, kwargs
