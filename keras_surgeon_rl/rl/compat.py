"""Make keras-rl2 1.0.5 run on today's stack (TensorFlow 2.16+, tf-keras, NumPy 2).

keras-rl2 was written for Keras 2 as ``tf.keras``. On TensorFlow 2.16 and newer ``tf.keras`` is
Keras 3 unless ``TF_USE_LEGACY_KERAS=1`` is set *before* TensorFlow is first imported, and keras-rl2
imports ``tensorflow.keras.__version__``, which tf-keras does not define. keras-rl2 also counts steps
in ``np.int16``, which wraps after 32,767 steps under NumPy 2, and a dueling ``DQNAgent`` cannot be
compiled because tf-keras' safe mode refuses to clone its ``Lambda`` layer. Its soft target updates
(``target_model_update < 1``) race with the optimizer step they run beside, so two runs with the
same seeds trained differently; here they read the online weights after the step, always.
A ``NAFAgent`` cannot be trained in graph mode as it comes: the gradient of its ``NAFLayer``'s
``tf.scan`` fails ("Connecting to invalid output ... of source node naf_layer/scan/while"), so
``setup`` has while loops keep all their intermediates
(``tf.compat.v1.experimental.output_all_intermediates(True)``).

Call :func:`setup` before anything imports TensorFlow, or import :mod:`keras_surgeon_rl.rl`, which
calls it. Importing keras-rl2 disables eager execution for the whole process (keras-rl2 calls
``tf.compat.v1.disable_eager_execution()``): Keras-3 code cannot run in the same process afterwards.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import types

import numpy as np

logger = logging.getLogger(__name__)

_DONE = False


class KerasRL2SetupError(RuntimeError):
    """keras-rl2 cannot be set up in this process."""


def _tf_keras_is_legacy() -> bool:
    tf = sys.modules["tensorflow"]
    return tf.keras.__name__.startswith("tf_keras")


class _WideIntNumpy(types.ModuleType):
    """NumPy as seen by ``rl.core``, with ``int16`` widened to ``int64``.

    keras-rl2 counts steps and episodes in ``np.int16``; under NumPy 2 the counter wraps to
    -32,768 after 32,767 steps and ``fit(nb_steps=40_000)`` never ends. Only the name ``np`` in
    ``rl.core`` is redirected; NumPy itself and the rest of keras-rl2 are untouched.
    """

    def __init__(self) -> None:
        super().__init__("numpy")

    def __getattr__(self, name: str):
        if name == "int16":
            return np.int64
        return getattr(np, name)


def _clone_in_process_model(model, custom_objects={}):
    """keras-rl2's ``clone_model`` for a model that lives in this process.

    A dueling ``DQNAgent`` puts a Python ``lambda`` in its model and clones it through its config at
    ``compile``; tf-keras refuses to deserialize lambdas unless safe mode is off. The model was built
    in this process (no file is read), so the clone turns safe mode off for that one call.
    """
    import rl.util
    from tf_keras.src.saving.serialization_lib import SafeModeScope

    with SafeModeScope(False):
        return rl.util.clone_model(model, custom_objects)


class SoftTargetUpdate:
    """keras-rl2's soft target update ``target <- tau * source + (1 - tau) * target``, not yet built.

    keras-rl2 builds these as ``(target, value)`` pairs and hands them to the optimizer
    (``AdditionalUpdatesOptimizer``) or to ``K.function`` beside the optimizer's own update op. In
    graph mode nothing orders them: the read of ``source`` happens before or after the optimizer
    writes it, as the executor's threads happen to run, so one seed gave different agents from run
    to run. :func:`order_soft_updates` builds the update to run after the step instead.
    """

    __slots__ = ("target", "source", "tau")

    def __init__(self, target, source, tau: float):
        self.target, self.source, self.tau = target, source, tau


def soft_target_updates(target, source, tau: float) -> list:
    """``rl.util.get_soft_target_model_updates``, as :class:`SoftTargetUpdate` objects."""
    target_weights = target.trainable_weights + sum([layer.non_trainable_weights for layer in target.layers], [])
    source_weights = source.trainable_weights + sum([layer.non_trainable_weights for layer in source.layers], [])
    if len(target_weights) != len(source_weights):
        raise ValueError(f"target model has {len(target_weights)} weights, source model {len(source_weights)}")
    return [SoftTargetUpdate(t, s, tau) for t, s in zip(target_weights, source_weights)]


def order_soft_updates(updates: list) -> list:
    """The same updates, with every soft target update reading its weights after the other update ops.

    Args:
        updates: a ``K.function`` update list: ops, ``(variable, value)`` pairs and
            :class:`SoftTargetUpdate` objects.

    Returns:
        The ops and plain pairs as given, then one assign op per soft update, each under a control
        dependency on every op of ``updates`` (the optimizer's step).
    """
    soft = [u for u in updates if isinstance(u, SoftTargetUpdate)]
    if not soft:
        return updates
    tf = sys.modules["tensorflow"]
    others = [u for u in updates if not isinstance(u, SoftTargetUpdate)]
    with tf.control_dependencies([u for u in others if not isinstance(u, tuple)]):
        ordered = [tf.compat.v1.assign(u.target, u.tau * u.source + (1.0 - u.tau) * u.target) for u in soft]
    return others + ordered


def _ordered_additional_updates_optimizer(base):
    class OrderedAdditionalUpdatesOptimizer(base):
        """keras-rl2's ``AdditionalUpdatesOptimizer``; soft target updates run after the step."""

        def get_updates(self, params, loss):
            self.updates = order_soft_updates(super().get_updates(params, loss))
            return self.updates

    return OrderedAdditionalUpdatesOptimizer


class _OrderedBackend(types.ModuleType):
    """``tensorflow.keras.backend`` as seen by ``rl.agents.ddpg``: ``function`` orders soft updates."""

    def __init__(self, backend) -> None:
        super().__init__(backend.__name__)
        self._backend = backend

    def __getattr__(self, name: str):
        return getattr(self._backend, name)

    def function(self, inputs, outputs, updates=None, **kwargs):
        return self._backend.function(inputs, outputs, updates=order_soft_updates(list(updates or [])), **kwargs)


def _order_soft_target_updates() -> None:
    """Make keras-rl2's soft target updates deterministic (see :class:`SoftTargetUpdate`)."""
    import rl.agents.ddpg
    import rl.agents.dqn
    import rl.util

    ordered = _ordered_additional_updates_optimizer(rl.util.AdditionalUpdatesOptimizer)
    for module in (rl.agents.dqn, rl.agents.ddpg):  # DQN, NAF, and DDPG's critic and actor
        module.get_soft_target_model_updates = soft_target_updates
        module.AdditionalUpdatesOptimizer = ordered
    rl.agents.ddpg.K = _OrderedBackend(rl.agents.ddpg.K)


def setup():
    """Prepare the process for keras-rl2 and import it.

    Returns:
        The ``tf_keras`` module: build the models keras-rl2 agents use from it (``tf_keras.layers``,
        ``tf_keras.Sequential``) and their optimizers from ``tf_keras.optimizers.legacy``.

    Raises:
        KerasRL2SetupError: TensorFlow was already imported with Keras 3 as ``tf.keras``.

    Example:
        >>> from keras_surgeon_rl.rl import compat
        >>> tf_keras = compat.setup()
        >>> from rl.agents.dqn import DQNAgent
    """
    global _DONE
    if _DONE:
        return sys.modules["tf_keras"]
    if "tensorflow" in sys.modules:
        if not _tf_keras_is_legacy():
            raise KerasRL2SetupError(
                "TensorFlow was imported before keras_surgeon_rl.rl with Keras 3 as tf.keras; "
                "keras-rl2 needs Keras 2. Set the environment variable TF_USE_LEGACY_KERAS=1 before "
                "anything imports tensorflow (or import keras_surgeon_rl.rl first), and run "
                "Keras-3 code in a separate process."
            )
    else:
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf  # noqa: F401  (after TF_USE_LEGACY_KERAS)
    import tf_keras

    tk = importlib.import_module("tensorflow.keras")
    if not hasattr(tk, "__version__"):
        tk.__version__ = tf_keras.__version__
    import rl.agents.dqn
    import rl.core

    rl.core.np = _WideIntNumpy()
    rl.agents.dqn.clone_model = _clone_in_process_model
    _order_soft_target_updates()
    tf.compat.v1.experimental.output_all_intermediates(True)  # NAFAgent: gradients through NAFLayer's tf.scan
    _DONE = True
    logger.debug("keras-rl2 set up on tf_keras %s", tf_keras.__version__)
    return tf_keras
