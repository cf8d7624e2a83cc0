"""Writing a new layer's weights straight into its variables, a block of rows at a time.

``layer.set_weights(arrays)`` needs every new array whole in NumPy first: for the largest weight of
a model (a Nature DQN's or VGG16's first Dense kernel holds most of its parameters) that is a
second full-size copy on its way into the variable. In eager TensorFlow a variable can be written
in place one block of rows at a time (``variable[r0:r1].assign(block)``), so the new array only
ever exists in the variable, plus one block of at most :data:`BLOCK_BYTES` in NumPy.

Only plain TensorFlow resource variables of Keras's own layers are written this way (Keras 3 on
the TensorFlow backend, tf_keras in eager mode); anything else (graph mode under keras-rl2, the
JAX and PyTorch backends, a layer with its own ``set_weights``) goes through ``set_weights``.

Example:
    >>> target = tf_variable(layer, variable)      # None: use layer.set_weights
    >>> for r0, r1 in row_blocks(target.shape, np.float32):
    ...     write_rows(target, r0, r1, block)
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

#: The largest block of new values made in NumPy at once, in bytes.
BLOCK_BYTES = 4 * 2 ** 20


def tf_variable(layer, variable, base_set_weights) -> Any | None:
    """The eager TensorFlow variable behind ``variable`` that can be written row by row, or ``None``.

    Args:
        layer: the layer that owns ``variable``.
        variable: one of ``layer.weights``.
        base_set_weights: the flavour's ``Layer.set_weights``; a layer that overrides it is left to it.

    Returns:
        A ``tf.Variable`` (resource variable), or ``None`` when the weight must go through ``set_weights``.
    """
    tf = sys.modules.get("tensorflow")
    if tf is None or not tf.executing_eagerly() or type(layer).set_weights is not base_set_weights:
        return None
    inner = getattr(variable, "_value", None) if not isinstance(variable, tf.Variable) else variable
    if type(inner).__name__ != "ResourceVariable" or not hasattr(inner, "handle"):
        return None  # AutoCastVariable, a mirrored variable, a Keras 3 variable on another backend
    return inner


def row_blocks(shape: tuple, dtype) -> list[tuple[int, int]]:
    """``(r0, r1)`` ranges along the first axis, each block at most :data:`BLOCK_BYTES` (one row at least).

    Args:
        shape: the array's shape (at least one axis).
        dtype: its dtype.

    Returns:
        The ranges, covering ``0 … shape[0]`` in order.
    """
    row = int(np.prod(shape[1:], dtype=np.int64)) * np.dtype(dtype).itemsize
    step = max(1, BLOCK_BYTES // max(row, 1))
    return [(r0, min(r0 + step, shape[0])) for r0 in range(0, shape[0], step)]


def read_rows(target, r0: int, r1: int) -> np.ndarray:
    """A NumPy copy of rows ``r0 … r1`` of ``target`` that shares no memory with it."""
    part = target[r0:r1]
    out = np.array(part, copy=True)
    del part  # a slice may alias the variable's buffer: dropping it keeps the next write in place
    return out


def write_rows(target, r0: int, r1: int, block: np.ndarray) -> None:
    """Write ``block`` into rows ``r0 … r1`` of ``target`` (in place: TensorFlow copies the
    variable's buffer first only when a tensor still holds it)."""
    if r0 == 0 and r1 == int(target.shape[0]):
        target.assign(block)
    else:
        target[r0:r1].assign(block)
