"""Re-initialize a layer, or add Gaussian noise to the last layers of a model.

Both are ways to let a transferred network forget part of what it learned: re-draw the final layer
from its own initializers, or shake the last ``n`` weighted layers with noise scaled to each
parameter array's own spread.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from keras_surgeon_rl.transfer import _flavour
from keras_surgeon_rl.transfer.layers import LayerSpec, get_layer, weighted_layers

logger = logging.getLogger(__name__)


def _find_initializer(layer: Any, weight_name: str) -> Any:
    """``layer.<weight>_initializer`` (also on ``layer.cell``), e.g. ``kernel_initializer``."""
    candidates = [f"{weight_name}_initializer"]
    if weight_name.endswith("_kernel"):  # recurrent_kernel -> recurrent_initializer, depthwise_...
        candidates.append(f"{weight_name[: -len('_kernel')]}_initializer")
    for owner in (layer, getattr(layer, "cell", None)):
        for attribute in candidates:
            initializer = getattr(owner, attribute, None) if owner is not None else None
            if initializer is not None:
                return initializer
    raise ValueError(
        f"Cannot re-initialize weight {weight_name!r} of layer {layer.name!r} "
        f"({type(layer).__name__}): expected an attribute {' or '.join(candidates)} on the layer. "
        "Set the weight yourself with `layer.set_weights(...)`."
    )


def _fresh(initializer: Any, seed: int | None) -> Any:
    """A new instance of ``initializer`` (an unseeded tf_keras instance repeats its first draw)."""
    if not hasattr(initializer, "get_config"):
        return initializer  # a plain function
    config = dict(initializer.get_config())
    if seed is not None and "seed" in config:
        config["seed"] = seed
    return type(initializer).from_config(config)


def reset_layer(model: Any, layer: LayerSpec, seed: int | None = None) -> list[str]:
    """Re-draw every weight of one layer from the layer's own initializers.

    Each weight ``w`` (``kernel``, ``bias``, ``gamma``, ...) is drawn from ``layer.<w>_initializer``
    (``recurrent_kernel`` from ``recurrent_initializer``), as when the layer was built. A fresh copy
    of the initializer is used, so the values differ from the layer's first initialization unless
    the initializer has a fixed seed.

    Args:
        model: a Keras 3 or tf_keras model.
        layer: the layer (index into ``model.layers``, name, or layer object), e.g. ``-1``.
        seed: optional seed for initializers that take one (weight ``i`` uses ``seed + i``).

    Returns:
        The names of the re-drawn weights.

    Raises:
        ValueError: the layer has no weights, or a weight has no matching initializer attribute.

    Example:
        >>> reset_layer(q_network, -1)  # doctest: +SKIP
        ['kernel', 'bias']
    """
    target = get_layer(model, layer)
    if not target.weights:
        raise ValueError(f"Layer {target.name!r} of model {model.name!r} has no weights to reset.")
    kind = _flavour.flavour(target)
    names = _flavour.weight_names(target)
    values = []
    for i, (name, current) in enumerate(zip(names, target.get_weights())):
        initializer = _fresh(_find_initializer(target, name), None if seed is None else seed + i)
        value = _flavour.initializer_value(initializer, tuple(current.shape), str(current.dtype), kind)
        if value.shape != current.shape:
            raise ValueError(
                f"Initializer of {name!r} in layer {target.name!r} gave shape {value.shape}, "
                f"expected {current.shape}."
            )
        values.append(value.astype(current.dtype))
    target.set_weights(values)
    logger.info("re-initialized %s of layer %r", names, target.name)
    return names


def add_noise(model: Any, last_n: int, alpha: float, seed: int | None = None) -> list[str]:
    """Add Gaussian noise to the parameters of the last ``last_n`` weighted layers.

    Each parameter array ``w`` gets ``w + N(0, (alpha * std(w))**2)``, elementwise. Arrays with zero
    spread (e.g. fresh zero biases) are left unchanged. Non-trainable state such as
    BatchNormalization moving statistics is left unchanged; frozen layers are perturbed all the
    same.

    Args:
        model: a Keras 3 or tf_keras model.
        last_n: how many weighted layers, counted from the output (``1`` = the final layer).
        alpha: noise scale relative to each array's standard deviation, ``>= 0``.
        seed: seed of the NumPy generator drawing the noise.

    Returns:
        The names of the perturbed layers, input to output.

    Raises:
        ValueError: ``last_n`` is not in ``[1, number of weighted layers]`` or ``alpha < 0``.

    Example:
        >>> add_noise(q_network, last_n=2, alpha=0.1, seed=0)  # doctest: +SKIP
        ['dense_1', 'dense_2']
    """
    layers = weighted_layers(model)
    if not 1 <= last_n <= len(layers):
        raise ValueError(
            f"Expected last_n in [1, {len(layers)}] (the weighted layers of model {model.name!r}: "
            f"{[layer.name for layer in layers]}), got {last_n}."
        )
    if alpha < 0:
        raise ValueError(f"Expected alpha >= 0 (noise std as a fraction of each array's std), got {alpha}.")
    rng = np.random.default_rng(seed)
    chosen = layers[-last_n:]
    for layer in chosen:
        arrays = layer.get_weights()
        for i, is_parameter in enumerate(_flavour.parameter_mask(layer)):
            if is_parameter:
                scale = alpha * float(np.std(arrays[i]))
                arrays[i] = (arrays[i] + rng.normal(0.0, scale, arrays[i].shape)).astype(arrays[i].dtype)
        layer.set_weights(arrays)
    names = [layer.name for layer in chosen]
    logger.info("added noise (alpha=%g) to %s of %r", alpha, names, model.name)
    return names
