"""Quiet TensorFlow start-up, for scripts and the command line only (the library never calls it)."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings


def quiet_tensorflow() -> None:
    """Import TensorFlow without its start-up notices; call before anything imports Keras.

    Sets ``TF_CPP_MIN_LOG_LEVEL=3``, imports TensorFlow with file descriptor 2 sent to ``/dev/null``
    (TensorFlow 2.20+ writes its oneDNN and CUDA notices through absl before any setting can stop
    them), lowers absl's and TensorFlow's Python logging to errors and hides tf_keras' advice to
    prefer the ``.keras`` format. Import errors are still raised.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" not in sys.modules:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            with open(os.devnull, "w") as devnull:
                os.dup2(devnull.fileno(), 2)
                import tensorflow  # noqa: F401
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    with contextlib.suppress(ImportError):
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*HDF5 file via `model.save\\(\\)`.*")
