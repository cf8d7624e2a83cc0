"""Make keras-rl2 1.0.5 run on today's stack (TensorFlow 2.16+, tf-keras, NumPy 2).

keras-rl2 was written for Keras 2 as ``tf.keras``. On TensorFlow 2.16 and newer ``tf.keras`` is
Keras 3 unless ``TF_USE_LEGACY_KERAS=1`` is set *before* TensorFlow is first imported, and keras-rl2
imports ``tensorflow.keras.__version__``, which tf-keras does not define. keras-rl2 also counts steps
in ``np.int16``, which wraps after 32,767 steps under NumPy 2, and a dueling ``DQNAgent`` cannot be
compiled because tf-keras' safe mode refuses to clone its ``Lambda`` layer.

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
    _DONE = True
    logger.debug("keras-rl2 set up on tf_keras %s", tf_keras.__version__)
    return tf_keras
