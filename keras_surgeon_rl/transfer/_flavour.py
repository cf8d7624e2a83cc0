"""Everything that differs between Keras 3 (``keras``) and Keras 2 (``tf_keras``) models.

The transfer strategies work on both flavours through the API they share (``layer.trainable``,
``layer.weights``, ``get_weights``/``set_weights``, ``compile``/``fit``/``predict``). The few places
where the two differ are collected here, so that the rest of :mod:`keras_surgeon_rl.transfer` never
asks which flavour it holds. Neither flavour is imported until a model of that flavour is seen:
importing this module imports no Keras at all.

Differences handled here:

* which weights of a layer are *parameters* (trained when the layer is trainable): Keras 3 flips
  ``variable.trainable`` when a layer is frozen, tf_keras does not;
* evaluating an initializer (tf_keras in graph mode returns a symbolic tensor);
* making changed ``trainable`` flags take effect in a compiled model (re-compile, or rebuild the
  train function mid-``fit``), including an optimizer that already tracks a fixed variable list;
* the ops used in the distillation loss, and the wrapper model and default optimizer used to train.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any, Callable, Literal

import numpy as np

from keras_surgeon_rl.adapters.base import short_name

logger = logging.getLogger(__name__)

Flavour = Literal["keras3", "tf_keras"]


def flavour(obj: Any) -> Flavour:
    """Tell whether a model, layer or optimizer comes from Keras 3 or from tf_keras.

    Args:
        obj: a Keras 3 or tf_keras model, layer or optimizer (custom subclasses included).

    Returns:
        ``"keras3"`` or ``"tf_keras"``.

    Raises:
        TypeError: ``obj`` is neither.

    Example:
        >>> import keras
        >>> flavour(keras.layers.Dense(2))
        'keras3'
    """
    for cls in type(obj).__mro__:
        root = cls.__module__.split(".")[0]
        if root == "keras":
            return "keras3"
        if root == "tf_keras":
            return "tf_keras"
    raise TypeError(
        f"Expected a Keras 3 (`keras`) or Keras 2 (`tf_keras`) model or layer, got "
        f"{type(obj).__module__}.{type(obj).__qualname__}. Build the network with `keras` or "
        "`tf_keras` (keras-rl2 agents: `keras_surgeon_rl.rl.tf_keras`)."
    )


def module(kind: Flavour):
    """The top-level module of a flavour (``keras`` or ``tf_keras``), imported on first use."""
    return importlib.import_module("keras" if kind == "keras3" else "tf_keras")


def weight_names(layer: Any) -> list[str]:
    """Short names (``kernel``, ``bias``, ...) of ``layer.weights``, in ``get_weights`` order."""
    return [short_name(v) for v in layer.weights]


def parameter_mask(layer: Any) -> list[bool]:
    """For each array of ``layer.get_weights()``: is it a parameter (trained when trainable)?

    Non-trainable state such as BatchNormalization moving statistics gives ``False``. The answer
    does not depend on whether the layer is currently frozen.
    """
    if flavour(layer) == "tf_keras":
        # tf.Variable.trainable is fixed at creation; freezing a tf_keras layer leaves it alone.
        return [bool(v.trainable) for v in layer.weights]
    # Keras 3 flips variable.trainable when the layer is frozen; the layer keeps the split.
    trainable_ids = {id(v) for v in getattr(layer, "_trainable_variables", layer.trainable_weights)}
    return [id(v) in trainable_ids for v in layer.weights]


def initializer_value(initializer: Any, shape: tuple[int, ...], dtype: str, kind: Flavour) -> np.ndarray:
    """Draw one array from a Keras initializer, as NumPy, in eager or graph mode."""
    tensor = initializer(shape, dtype=dtype)
    if kind == "keras3":
        return np.asarray(module(kind).ops.convert_to_numpy(tensor))
    return np.asarray(module(kind).backend.get_value(tensor))


def fresh_optimizer(optimizer: Any) -> Any:
    """A new optimizer of the same class and ``get_config()``, without slot state or step count."""
    return type(optimizer).from_config(optimizer.get_config())


def _keras3_optimizer_knows(optimizer: Any, variables: list[Any]) -> bool:
    if not optimizer.built:
        return True
    known = getattr(optimizer, "_trainable_variables_indices", None)
    if known is None:
        return False
    return all(optimizer._var_key(v) in known for v in variables)


def _creates_slots_lazily(optimizer: Any) -> bool:
    """Legacy tf_keras optimizers (``OptimizerV2``) accept any variable at any time."""
    return any(cls.__name__ == "OptimizerV2" for cls in type(optimizer).__mro__)


def _tf_keras_optimizer_knows(optimizer: Any, variables: list[Any]) -> bool:
    if _creates_slots_lazily(optimizer) or not getattr(optimizer, "_built", False):
        return True
    index = getattr(optimizer, "_index_dict", {})
    return all(optimizer._var_key(v) in index for v in variables)


def optimizer_knows(optimizer: Any, variables: list[Any]) -> bool:
    """Can ``optimizer`` update ``variables``?

    Keras 3 optimizers, and tf_keras's non-legacy ones, are built once on a fixed variable list and
    refuse other variables; legacy tf_keras optimizers accept any variable.
    """
    if flavour(optimizer) == "keras3":
        return _keras3_optimizer_knows(optimizer, variables)
    return _tf_keras_optimizer_knows(optimizer, variables)


def _usable_optimizer(model: Any, variables: list[Any]) -> Any:
    """``model.optimizer`` if it can update ``variables``, else a fresh copy of it."""
    optimizer = model.optimizer  # the instance, also when compile was given a name like "adam"
    if optimizer_knows(optimizer, variables):
        return optimizer
    logger.warning(
        "The optimizer %s of model %r was built on other variables than the ones now trainable; "
        "using a fresh %s with the same config (its slot state and step count are lost).",
        getattr(optimizer, "name", optimizer), model.name, type(optimizer).__name__,
    )
    return fresh_optimizer(optimizer)


def _compile_args(model: Any) -> dict[str, Any]:
    """The arguments ``model`` was last compiled with (original objects, not serialized)."""
    config = getattr(model, "_compile_config", None)
    if config is not None:  # Keras 3 and tf_keras (eager Model)
        return dict(config.config)
    if hasattr(model, "_get_compile_args"):  # tf_keras graph mode (training_v1.Model)
        args = dict(model._get_compile_args())
        args["optimizer"] = model.optimizer
        return args
    raise ValueError(
        f"Model {model.name!r} has no record of its compile arguments; compile it yourself with "
        "`model.compile(...)` after changing `trainable` flags."
    )


def recompile(model: Any) -> None:
    """Compile ``model`` again with its own compile arguments so that ``trainable`` changes count.

    The optimizer instance is kept (with its slot state) when it can update every trainable
    variable; otherwise it is replaced by a fresh one of the same class and config.
    """
    if not getattr(model, "optimizer", None):
        raise ValueError(
            f"Model {model.name!r} is not compiled; there is nothing to re-compile. Compile it with "
            "`model.compile(optimizer=..., loss=...)` (the current `trainable` flags are used then)."
        )
    args = _compile_args(model)
    args["optimizer"] = _usable_optimizer(model, list(model.trainable_weights))
    model.compile(**args)
    logger.debug("re-compiled %r: %d trainable arrays", model.name, len(model.trainable_weights))


def prepare_optimizer(model: Any, variables: list[Any]) -> None:
    """Make ``model.optimizer`` able to update ``variables`` (every variable a schedule will thaw).

    An optimizer that is not built yet is built on ``variables`` now, so that later thaws keep its
    state. One built on fewer variables is replaced by a fresh one of the same class and config.
    """
    optimizer = model.optimizer
    if _creates_slots_lazily(optimizer):
        return
    if not optimizer_knows(optimizer, variables):
        optimizer = _usable_optimizer(model, variables)
        model.optimizer = optimizer
    built = optimizer.built if flavour(optimizer) == "keras3" else getattr(optimizer, "_built", False)
    if not built:
        optimizer.build(variables)


def refresh_train_function(model: Any) -> None:
    """Rebuild ``model``'s train function, mid-``fit``, so it sees the current ``trainable`` flags.

    This is what Keras documents for a callback that changes ``trainable`` during training
    (``Model.make_train_function(force=True)``). tf_keras models in graph mode (after keras-rl2 is
    imported) build their train function at ``compile`` and cannot change it mid-``fit``.
    """
    if not hasattr(model, "make_train_function"):
        raise RuntimeError(
            f"Model {model.name!r} runs in graph mode (keras-rl2 was imported), where `fit` cannot "
            "pick up `trainable` changes mid-training. Train it in a process without keras-rl2, "
            "or, for a keras-rl2 agent, use "
            "`keras_surgeon_rl.transfer.rl_callbacks.AgentFreezeThawCallback`."
        )
    model.make_train_function(force=True)


def input_shape(model: Any) -> tuple[int, ...]:
    """The shape of one input sample of a single-input model (batch axis left out)."""
    inputs = getattr(model, "inputs", None)
    if not inputs:
        raise ValueError(
            f"Model {model.name!r} has no known input shape (it was never built on an input). Build "
            "it first, e.g. with `keras.Input(shape=...)` as the first layer of a Sequential."
        )
    if len(inputs) != 1:
        raise ValueError(f"Expected a model with one input, got {len(inputs)} inputs in {model.name!r}.")
    return tuple(int(d) for d in inputs[0].shape[1:])


def predict(model: Any, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """``model``'s outputs on ``x`` as a float64 NumPy array.

    Calls the model directly in eager mode (much faster than ``predict`` for small inputs);
    tf_keras in graph mode (after keras-rl2 is imported) uses ``predict_on_batch``.
    """
    kind = flavour(model)
    outputs = []
    for start in range(0, len(x), batch_size):
        chunk = x[start:start + batch_size]
        if kind == "keras3":
            out = module(kind).ops.convert_to_numpy(model(chunk, training=False))
        elif _executing_eagerly():
            out = model(chunk, training=False).numpy()
        else:
            out = model.predict_on_batch(chunk)
        outputs.append(np.asarray(out, dtype=np.float64))
    return np.concatenate(outputs)


def _executing_eagerly() -> bool:
    import tensorflow as tf

    return tf.executing_eagerly()


def default_optimizer(kind: Flavour, learning_rate: float) -> Any:
    """Adam; the legacy tf_keras Adam for tf_keras, since it also works in graph mode."""
    keras_module = module(kind)
    if kind == "keras3":
        return keras_module.optimizers.Adam(learning_rate=learning_rate)
    return keras_module.optimizers.legacy.Adam(learning_rate=learning_rate)


def training_wrapper(model: Any, shape: tuple[int, ...]) -> Any:
    """A new model ``Input(shape) -> model`` sharing ``model``'s layers and weights.

    Compiling and fitting the wrapper trains ``model`` without touching ``model``'s own compile
    state (e.g. the one a keras-rl2 agent set).
    """
    keras_module = module(flavour(model))
    return keras_module.Sequential([keras_module.Input(shape=shape), model])


def kl_loss(kind: Flavour, student_columns: list[int]) -> Callable[[Any, Any], Any]:
    """``KL(p || softmax(q_student[:, columns]))`` per sample, ``p`` given as ``y_true``.

    Args:
        kind: flavour of the student, which picks the ops (``keras.ops`` or TensorFlow).
        student_columns: the student's outputs matched to the columns of ``p``, in order.

    Returns:
        A Keras loss function ``loss(y_true, y_pred) -> per-sample KL``.
    """
    columns = np.asarray(student_columns, dtype=np.int32)
    eps = 1e-12
    if kind == "keras3":
        ops = module(kind).ops

        def loss(y_true, y_pred):
            z = ops.take(y_pred, columns, axis=-1)
            log_q = z - ops.logsumexp(z, axis=-1, keepdims=True)
            return ops.sum(y_true * (ops.log(ops.maximum(y_true, eps)) - log_q), axis=-1)

        return loss
    import tensorflow as tf

    def loss(y_true, y_pred):
        z = tf.gather(y_pred, columns, axis=-1)
        log_q = z - tf.reduce_logsumexp(z, axis=-1, keepdims=True)
        return tf.reduce_sum(y_true * (tf.math.log(tf.maximum(y_true, eps)) - log_q), axis=-1)

    return loss
