"""One adapter per Keras flavour; :func:`adapter_for` picks the model's own.

Neither flavour is imported until a model of it is seen, so the core runs in a keras-rl2 process
(tf_keras, graph mode) without touching Keras 3, and without tf_keras installed otherwise.
"""

from __future__ import annotations

from keras_surgeon_rl.adapters.base import KerasAdapter
from keras_surgeon_rl.errors import SurgeryError


def adapter_for(model) -> KerasAdapter:
    """The adapter for ``model``'s flavour (Keras 3 or tf_keras)."""
    for cls in type(model).__mro__:
        root = (cls.__module__ or "").split(".")[0]
        if root == "tf_keras":
            from keras_surgeon_rl.adapters.tf_keras import TfKerasAdapter

            return TfKerasAdapter()
        if root == "keras":
            from keras_surgeon_rl.adapters.keras3 import Keras3Adapter

            return Keras3Adapter()
    raise SurgeryError(f"{type(model).__name__} is not a Keras model; pass a keras.Model (Keras 3) or a "
                       "tf_keras.Model (Keras 2, as used by keras-rl2)")
