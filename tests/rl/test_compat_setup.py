"""compat.setup() refuses a process where TensorFlow was imported first with Keras 3 as tf.keras."""

from keras_surgeon_rl.rl import compat  # first import: sets up keras-rl2 in this process

import os
import subprocess
import sys
import textwrap

_PROJECT_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Runs in a fresh interpreter without TF_USE_LEGACY_KERAS: TensorFlow comes first, with Keras 3.
_SCRIPT = textwrap.dedent(
    """
    import sys

    import tensorflow as tf

    assert not tf.keras.__name__.startswith("tf_keras"), tf.keras.__name__
    try:
        import keras_surgeon_rl.rl  # its __init__ calls compat.setup()
    except Exception as exc:
        print("IMPORT", type(exc).__name__)
    else:
        print("IMPORT ok")

    compat = sys.modules["keras_surgeon_rl.rl.compat"]
    try:
        compat.setup()
    except compat.KerasRL2SetupError as exc:
        print("SETUP KerasRL2SetupError")
        print("MESSAGE", exc)
    else:
        print("SETUP ok")
    print("RL_IMPORTED", "rl.core" in sys.modules)
    """
)


def test_setup_after_keras3_tensorflow_raises_a_helpful_error():
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    result = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True,
                            timeout=120, cwd=_PROJECT_ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert "IMPORT KerasRL2SetupError" in lines
    assert "SETUP KerasRL2SetupError" in lines
    message = next(line for line in lines if line.startswith("MESSAGE "))
    assert "TF_USE_LEGACY_KERAS=1" in message
    assert "RL_IMPORTED False" in lines  # keras-rl2 was not imported (eager execution left alone)


def test_setup_in_this_process_is_idempotent_and_returns_tf_keras():
    import tf_keras

    assert os.environ["TF_USE_LEGACY_KERAS"] == "1"
    assert compat.setup() is tf_keras
    assert compat.setup() is tf_keras
