"""Keras 3 on JAX and PyTorch: the core does its surgery with TensorFlow out of reach.

The output-comparison suites themselves run once per backend from `make test`
(``KERAS_BACKEND=jax`` / ``torch``). This test runs a surgery in a clean process per backend where
importing TensorFlow (or tf_keras) fails, as on a machine without it. (With TensorFlow installed,
Keras 3's own ``get_config`` imports it to check for ``tf.TensorShape``; our code never does.)
"""

import os
import subprocess
import sys

import pytest

SCRIPT = r"""
import sys


class NoTensorFlow:  # as if TensorFlow were not installed
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "tf_keras"):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")


import keras  # (torch probes for TensorFlow with find_spec while Keras loads it)

assert "tensorflow" not in sys.modules
sys.meta_path.insert(0, NoTensorFlow())
import numpy as np
from keras_surgeon_rl import surgeon

assert keras.backend.backend() == sys.argv[1], keras.backend.backend()
inp = keras.Input((6, 6, 2), name="img")
x = keras.layers.Conv2D(4, 3, activation="relu", name="conv")(inp)
x = keras.layers.Flatten(name="flat")(x)
x = keras.layers.Dense(8, activation="relu", name="h")(x)
model = keras.Model(inp, keras.layers.Dense(2, name="q")(x))
spec = {"inputs": {"old": ["a", "b"], "new": ["b", "c", "a"]}, "units": {"conv": 6, "h": 12},
        "insert": [{"after": "h", "activation": "relu"}], "outputs": {"old": ["l", "r"], "new": ["r", "l", "n"]}}
new = surgeon.transplant(model, spec)
diff = surgeon.verify(model, new, spec)
assert diff <= 1e-5, diff
print("tensorflow imported:", "tensorflow" in sys.modules)
"""


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_surgery_on_backend_imports_no_tensorflow(backend):
    pytest.importorskip(backend)
    env = {**os.environ, "KERAS_BACKEND": backend}
    out = subprocess.run([sys.executable, "-c", SCRIPT, backend], capture_output=True, text=True, env=env,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "tensorflow imported: False" in out.stdout
