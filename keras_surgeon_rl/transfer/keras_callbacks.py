"""The freeze-then-thaw schedule as a Keras 3 callback (imports ``keras``)."""

from __future__ import annotations

import logging
from typing import Any, Iterable

import keras

from keras_surgeon_rl.transfer import _flavour
from keras_surgeon_rl.transfer.layers import LayerSpec
from keras_surgeon_rl.transfer.schedule import ThawPlan

logger = logging.getLogger(__name__)


def _all_parameters(layers: list[Any], model: Any) -> list[Any]:
    """The trainable variables of ``model`` once every layer of ``layers`` is thawed."""
    previous = [layer.trainable for layer in layers]
    for layer in layers:
        layer.trainable = True
    variables = list(model.trainable_weights)
    for layer, value in zip(layers, previous):
        layer.trainable = value
    return variables


class FreezeThawCallback(keras.callbacks.Callback):
    """Freeze-then-thaw in a Keras 3 ``model.fit``, counting train batches.

    At the start of ``fit`` all weighted layers but the last are frozen; they are thawed from the
    output backwards as given by :func:`keras_surgeon_rl.transfer.thaw_schedule`. Each change
    rebuilds the train function (``model.make_train_function(force=True)``, as Keras documents for
    callbacks that change ``trainable``), so it takes effect at the next batch; there is no need to
    re-compile. The optimizer is built at the start on every variable the schedule will thaw, so
    thawing keeps its state (Adam moments, step count); only if it was already built on fewer
    variables is it replaced, once, by a fresh optimizer of the same class and config (logged as a
    warning).

    Batches are counted from the start of each ``fit`` call. The ``trainable`` flags are left as they
    are when ``fit`` ends (all thawed once the schedule has run its course), and the model's train
    function matches them. If you change flags yourself afterwards, call
    :func:`keras_surgeon_rl.transfer.recompile` before the next ``fit``.

    Args:
        tl_end: fraction of the training steps over which the layers are thawed (default 0.25).
        total_steps: number of train batches the schedule spans; default: ``epochs`` × batches per
            epoch of the ``fit`` call.
        layers: the layers of the schedule, input to output; default every weighted layer.

    Attributes:
        thaw_steps: layer name -> scheduled step.
        thawed_at: layer name -> number of batches done when it was thawed.

    Example:
        >>> model.compile(optimizer="adam", loss="mse")  # doctest: +SKIP
        >>> model.fit(x, y, epochs=4, callbacks=[FreezeThawCallback(tl_end=0.25)])  # doctest: +SKIP
    """

    def __init__(
        self,
        tl_end: float = 0.25,
        total_steps: int | None = None,
        layers: Iterable[LayerSpec] | None = None,
    ):
        super().__init__()
        self.plan = ThawPlan(layers, tl_end)
        self.total_steps = total_steps
        self._done_before_epoch = 0
        self._done = 0

    @property
    def thaw_steps(self) -> dict[str, int]:
        return self.plan.thaw_steps

    @property
    def thawed_at(self) -> dict[str, int]:
        return self.plan.thawed_at

    def _resolve_total_steps(self) -> int:
        if self.total_steps is not None:
            return int(self.total_steps)
        steps, epochs = self.params.get("steps"), self.params.get("epochs")
        if not steps or not epochs:
            raise ValueError(
                "FreezeThawCallback cannot tell how many batches this fit runs (params: "
                f"steps={steps}, epochs={epochs}); pass total_steps=... to the callback."
            )
        return int(steps) * int(epochs)

    def on_train_begin(self, logs=None):
        model = self.model
        if _flavour.flavour(model) != "keras3":
            raise TypeError(
                "FreezeThawCallback drives Keras 3 models; for a tf_keras model in a keras-rl2 agent "
                "use keras_surgeon_rl.transfer.rl_callbacks.AgentFreezeThawCallback."
            )
        layers = self.plan.layers(model)
        _flavour.prepare_optimizer(model, _all_parameters(layers, model))
        self.plan.start(model, self._resolve_total_steps())
        _flavour.refresh_train_function(model)
        self._done_before_epoch = self._done = 0

    def on_epoch_end(self, epoch, logs=None):
        self._done_before_epoch = self._done

    def on_train_batch_end(self, batch, logs=None):
        self._done = self._done_before_epoch + int(batch) + 1
        if self.plan.due(self._done):
            _flavour.refresh_train_function(self.model)
