"""Freeze-then-thaw: start with only the final layer trainable, thaw from the output backwards.

The schedule of the walker transfer study: at step 0 every weighted layer but the last is frozen;
the others are thawed one by one, from the output towards the input, at evenly spaced steps, the
input-most layer at ``tl_end`` × the total number of training steps (default 0.25). After that the
whole network trains.

:func:`thaw_schedule` computes the steps and :class:`ThawPlan` applies them to a model; the
callbacks drive a plan: :class:`keras_surgeon_rl.transfer.keras_callbacks.FreezeThawCallback` in a
Keras 3 ``model.fit`` (counting train batches) and
:class:`keras_surgeon_rl.transfer.rl_callbacks.AgentFreezeThawCallback` in a keras-rl2 agent's
``fit`` (counting agent steps). This module imports no Keras.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Iterable

from keras_surgeon_rl.transfer.layers import LayerSpec, get_layer, weighted_layers

logger = logging.getLogger(__name__)


def thaw_schedule(n_layers: int, total_steps: int, tl_end: float = 0.25) -> list[int]:
    """The step at which each layer becomes trainable, input to output.

    The last layer is trainable from step 0. Layer ``n_layers - 1 - k`` (``k`` counted from the
    output, ``k = 1 .. n_layers - 1``) is thawed at ``floor(k / (n_layers - 1) * tl_end *
    total_steps)``: linearly, the input-most layer at ``tl_end`` × ``total_steps``. "Thawed at step
    ``s``" means trainable for training step ``s`` (0-based) and every step after it, i.e. once ``s``
    steps are done.

    Args:
        n_layers: number of layers in the schedule (weighted layers of the model).
        total_steps: number of training steps (train batches, or agent steps).
        tl_end: fraction of ``total_steps`` over which the layers are thawed, in ``[0, 1]``.

    Returns:
        A list of ``n_layers`` steps, one per layer, input to output; non-increasing.

    Raises:
        ValueError: an argument is out of range.

    Example:
        >>> thaw_schedule(3, total_steps=100, tl_end=0.25)
        [25, 12, 0]
    """
    if n_layers < 1:
        raise ValueError(f"Expected at least one layer in the schedule, got n_layers={n_layers}.")
    if total_steps < 1:
        raise ValueError(f"Expected total_steps >= 1, got {total_steps}.")
    if not 0.0 <= tl_end <= 1.0:
        raise ValueError(f"Expected tl_end in [0, 1] (a fraction of the training steps), got {tl_end}.")
    if n_layers == 1:
        return [0]
    horizon = tl_end * total_steps
    from_output = [math.floor(round(k * horizon / (n_layers - 1), 9)) for k in range(n_layers)]
    return from_output[::-1]


class ThawPlan:
    """The state of a freeze-then-thaw schedule on one model, shared by the Keras and keras-rl2
    callbacks.

    Args:
        layers: the layers of the schedule, input to output (indices, names or layer objects);
            ``None`` for every weighted layer of the model.
        tl_end: fraction of the training steps over which the layers are thawed.

    Example:
        >>> plan = ThawPlan()
        >>> plan.start(model, total_steps=1000)  # doctest: +SKIP
        >>> plan.due(steps_done=125)  # doctest: +SKIP
        [<Dense name=dense_1, built=True>]
    """

    def __init__(self, layers: Iterable[LayerSpec] | None = None, tl_end: float = 0.25):
        self.layer_specs = None if layers is None else list(layers)
        self.tl_end = float(tl_end)
        self.thaw_steps: dict[str, int] = {}
        self.thawed_at: dict[str, int] = {}
        self._pending: list[tuple[int, Any]] = []

    def layers(self, model: Any) -> list[Any]:
        """The layers of the schedule in ``model``, input to output."""
        if self.layer_specs is None:
            return weighted_layers(model)
        return [get_layer(model, spec) for spec in self.layer_specs]

    def start(self, model: Any, total_steps: int) -> list[Any]:
        """Freeze all but the final layer of the schedule and thaw those due at step 0.

        Returns:
            The layers of the schedule, input to output.
        """
        layers = self.layers(model)
        if not layers:
            raise ValueError(f"Model {model.name!r} has no layer with weights; nothing to schedule.")
        steps = thaw_schedule(len(layers), total_steps, self.tl_end)
        self.thaw_steps = {layer.name: step for layer, step in zip(layers, steps)}
        self.thawed_at = {}
        self._pending = sorted(zip(steps, layers), key=lambda pair: pair[0])
        for layer in layers:
            layer.trainable = False
        logger.info("freeze-then-thaw on %r over %d steps: %s", model.name, total_steps, self.thaw_steps)
        self.due(0)
        return layers

    def due(self, steps_done: int) -> list[Any]:
        """Thaw the layers due once ``steps_done`` steps are done.

        Returns:
            The layers thawed now (empty when none is due).
        """
        thawed = []
        while self._pending and self._pending[0][0] <= steps_done:
            _, layer = self._pending.pop(0)
            layer.trainable = True
            self.thawed_at[layer.name] = steps_done
            thawed.append(layer)
        if thawed:
            logger.info("step %d: thawed %s", steps_done, [layer.name for layer in thawed])
        return thawed
