"""Copy the first or last ``n`` weighted layers from one network to another (layer copying).

The DQN layer-copying study initializes a new network with the first (or last) ``n`` layers of a
trained one, frozen or free to train on. :func:`copy_layers` does that between any two Keras 3 or
tf_keras models (also across the two), pairing weighted layers in order. It copies arrays whose
shapes match exactly; when the two networks differ in width, map weights by unit ID with
``keras_surgeon_rl.surgeon.transplant`` (or ``transplant_weights``) instead.
"""

from __future__ import annotations

import logging
from typing import Any

from keras_surgeon_rl.transfer.layers import freeze as freeze_layers
from keras_surgeon_rl.transfer.layers import weighted_layers

logger = logging.getLogger(__name__)


def _shapes(layer: Any) -> list[tuple[int, ...]]:
    return [tuple(array.shape) for array in layer.get_weights()]


def _pick(model: Any, role: str, first: int | None, last: int | None) -> list[Any]:
    layers = weighted_layers(model)
    n = first if first is not None else last
    if n > len(layers):
        raise ValueError(
            f"Cannot copy {n} layers: the {role} model {model.name!r} has only {len(layers)} weighted "
            f"layers {[layer.name for layer in layers]}."
        )
    return layers[:n] if first is not None else layers[len(layers) - n:]


def _check_pair(src_layer: Any, dst_layer: Any) -> None:
    src_shapes, dst_shapes = _shapes(src_layer), _shapes(dst_layer)
    if src_shapes != dst_shapes:
        raise ValueError(
            f"Cannot copy layer {src_layer.name!r} ({type(src_layer).__name__}, weight shapes "
            f"{src_shapes}) onto layer {dst_layer.name!r} ({type(dst_layer).__name__}, weight shapes "
            f"{dst_shapes}): the shapes differ. copy_layers copies whole arrays; to move weights "
            "between layers of different widths use keras_surgeon_rl.surgeon.transplant (or "
            "transplant_weights(src, dst, spec) to fill an existing network), which maps weights "
            "by unit ID."
        )


def copy_layers(
    src: Any,
    dst: Any,
    *,
    first: int | None = None,
    last: int | None = None,
    freeze: bool = False,
) -> list[tuple[str, str]]:
    """Copy the weights of the first or last ``n`` weighted layers of ``src`` into ``dst``.

    Weighted layers are paired in order (the ``i``-th of ``src`` with the ``i``-th of ``dst``,
    counting from the input for ``first`` and from the output for ``last``). Every pair is checked
    before anything is copied, so on error ``dst`` is unchanged. Non-trainable state (e.g.
    BatchNormalization moving statistics) is copied too.

    Args:
        src: the trained network (Keras 3 or tf_keras).
        dst: the network to initialize (Keras 3 or tf_keras; may differ from ``src``'s flavour).
        first: copy the first ``first`` weighted layers. Give exactly one of ``first``/``last``.
        last: copy the last ``last`` weighted layers.
        freeze: also freeze the copied layers in ``dst`` (re-compile ``dst`` afterwards if it is
            already compiled, see :func:`keras_surgeon_rl.transfer.recompile`).

    Returns:
        The ``(src layer name, dst layer name)`` pairs copied, input to output.

    Raises:
        ValueError: not exactly one of ``first``/``last``, ``n < 1``, too few weighted layers, or a
            pair of layers whose weight shapes differ (the message names both layers and shapes).

    Example:
        >>> copy_layers(trained, fresh, first=2, freeze=True)  # doctest: +SKIP
        [('dense', 'dense_3'), ('dense_1', 'dense_4')]
    """
    if (first is None) == (last is None):
        raise ValueError(
            f"Pass exactly one of first=n or last=n to copy_layers, got first={first}, last={last}."
        )
    n = first if first is not None else last
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"Expected a number of layers >= 1, got {n!r}.")
    src_layers = _pick(src, "source", first, last)
    dst_layers = _pick(dst, "destination", first, last)
    for src_layer, dst_layer in zip(src_layers, dst_layers):
        _check_pair(src_layer, dst_layer)
    for src_layer, dst_layer in zip(src_layers, dst_layers):
        dst_layer.set_weights(src_layer.get_weights())
    pairs = [(s.name, d.name) for s, d in zip(src_layers, dst_layers)]
    logger.info("copied %s from %r to %r", pairs, src.name, dst.name)
    if freeze:
        freeze_layers(dst, dst_layers)
    return pairs
