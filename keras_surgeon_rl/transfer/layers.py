"""Pick layers of a model and freeze or thaw them.

A *weighted layer* is a top-level layer of ``model.layers`` that has weights (``Dense``, ``Conv2D``,
``BatchNormalization``, a nested model, ...); ``Flatten``, ``Activation`` or keras-rl2's dueling
``Lambda`` are skipped. "The first/last ``n`` layers" always counts weighted layers.

Freezing works the same on Keras 3 and tf_keras models (``layer.trainable = False``), but a model
that is already compiled trains the variables it saw at compile time: call :func:`recompile` (or
``model.compile(...)`` yourself) after changing flags. keras-rl2 agents compile their own training
model: use :func:`keras_surgeon_rl.transfer.rl_callbacks.recompile_agent` instead.
"""

from __future__ import annotations

import logging
from typing import Any, Iterable, Union

from keras_surgeon_rl.transfer import _flavour

logger = logging.getLogger(__name__)

LayerSpec = Union[int, str, Any]
"""A layer given as an index into ``model.layers`` (negative allowed), a name, or the layer."""


def weighted_layers(model: Any) -> list[Any]:
    """The top-level layers of ``model`` that have weights, input to output.

    Args:
        model: a Keras 3 or tf_keras model.

    Returns:
        The layers of ``model.layers`` with at least one weight.

    Example:
        >>> import keras
        >>> model = keras.Sequential([keras.Input((4,)), keras.layers.Flatten(),
        ...                           keras.layers.Dense(8), keras.layers.Dense(2)])
        >>> [layer.name for layer in weighted_layers(model)]  # doctest: +SKIP
        ['dense', 'dense_1']
    """
    return [layer for layer in model.layers if layer.weights]


def get_layer(model: Any, spec: LayerSpec) -> Any:
    """Find one layer of ``model``.

    Args:
        model: a Keras 3 or tf_keras model.
        spec: an index into ``model.layers`` (negative counts from the end), a layer name, or a
            layer object that belongs to ``model``.

    Returns:
        The layer.

    Raises:
        ValueError: no such layer in ``model``.
        TypeError: ``spec`` is of another type.

    Example:
        >>> get_layer(model, -1) is model.layers[-1]  # doctest: +SKIP
        True
    """
    layers = list(model.layers)
    names = [layer.name for layer in layers]
    if isinstance(spec, bool):
        raise TypeError(f"Expected a layer index, name or layer object, got the boolean {spec!r}.")
    if isinstance(spec, int):
        if not -len(layers) <= spec < len(layers):
            raise ValueError(
                f"Layer index {spec} is out of range for model {model.name!r} with {len(layers)} "
                f"layers {names}; pass an index in [{-len(layers)}, {len(layers) - 1}] or a name."
            )
        return layers[spec]
    if isinstance(spec, str):
        if spec not in names:
            raise ValueError(f"Model {model.name!r} has no layer named {spec!r}; its layers are {names}.")
        return layers[names.index(spec)]
    if hasattr(spec, "trainable") and hasattr(spec, "weights"):
        if not any(layer is spec for layer in layers):
            raise ValueError(
                f"Layer {spec.name!r} is not a top-level layer of model {model.name!r} (layers: "
                f"{names}); pass a layer of this model, or its name or index."
            )
        return spec
    raise TypeError(f"Expected a layer index, name or layer object, got {type(spec).__name__}: {spec!r}.")


def _get_layers(model: Any, specs: LayerSpec | Iterable[LayerSpec]) -> list[Any]:
    if isinstance(specs, (int, str)) or hasattr(specs, "weights"):
        specs = [specs]
    return [get_layer(model, spec) for spec in specs]


def _set_trainable(model: Any, specs: LayerSpec | Iterable[LayerSpec], value: bool) -> list[str]:
    layers = _get_layers(model, specs)
    for layer in layers:
        layer.trainable = value
    names = [layer.name for layer in layers]
    logger.info("%s %s in %r", "thawed" if value else "froze", names, model.name)
    return names


def freeze(model: Any, layers: LayerSpec | Iterable[LayerSpec]) -> list[str]:
    """Stop training some layers of ``model`` (``layer.trainable = False``).

    If ``model`` is already compiled, call :func:`recompile` afterwards: a compiled model keeps
    training the variables it had when it was compiled.

    Args:
        model: a Keras 3 or tf_keras model.
        layers: one layer or a list of layers, each an index into ``model.layers``, a name or the
            layer object.

    Returns:
        The names of the frozen layers.

    Example:
        >>> freeze(model, [0, "dense_1"])  # doctest: +SKIP
        ['dense', 'dense_1']
        >>> recompile(model)  # doctest: +SKIP
    """
    return _set_trainable(model, layers, False)


def thaw(model: Any, layers: LayerSpec | Iterable[LayerSpec]) -> list[str]:
    """Train some layers of ``model`` again (``layer.trainable = True``).

    If ``model`` is already compiled, call :func:`recompile` afterwards.

    Args:
        model: a Keras 3 or tf_keras model.
        layers: one layer or a list of layers (index, name or layer object).

    Returns:
        The names of the thawed layers.

    Example:
        >>> thaw(model, -1)  # doctest: +SKIP
        ['dense_2']
    """
    return _set_trainable(model, layers, True)


def freeze_all_but_final(model: Any) -> list[str]:
    """Freeze every weighted layer except the last one, which is made trainable.

    If ``model`` is already compiled, call :func:`recompile` afterwards.

    Args:
        model: a Keras 3 or tf_keras model with at least one weighted layer.

    Returns:
        The names of the frozen layers.

    Raises:
        ValueError: ``model`` has no weighted layer.

    Example:
        >>> freeze_all_but_final(q_network)  # doctest: +SKIP
        ['dense', 'dense_1']
    """
    layers = weighted_layers(model)
    if not layers:
        raise ValueError(f"Model {model.name!r} has no layer with weights; there is nothing to freeze.")
    layers[-1].trainable = True
    return freeze(model, layers[:-1]) if len(layers) > 1 else []


def recompile(model: Any) -> None:
    """Compile ``model`` again with its own loss, metrics and optimizer, so changed ``trainable``
    flags take effect in the next ``fit``.

    Keras (3 and tf_keras) fixes the trained variables at ``compile``; a layer frozen afterwards
    keeps training, and a layer thawed afterwards stays fixed, until the model is compiled again.
    The same optimizer instance (and so its slot state, e.g. Adam moments) is kept when it can
    update every now-trainable variable. Keras 3 optimizers are built once on a fixed list of
    variables: if a thawed layer is not on it, a fresh optimizer of the same class and
    ``get_config()`` replaces it and its slot state and step count are lost (logged as a warning).

    Args:
        model: a compiled Keras 3 or tf_keras model.

    Raises:
        ValueError: ``model`` is not compiled.

    Example:
        >>> model.compile(optimizer="adam", loss="mse")  # doctest: +SKIP
        >>> freeze(model, [0])  # doctest: +SKIP
        >>> recompile(model)  # the next fit leaves layer 0 alone  # doctest: +SKIP
    """
    _flavour.recompile(model)
