"""Shared fixtures: every surgery test runs on Keras 3 and on tf_keras (Keras 2) models.

Under ``KERAS_BACKEND=jax`` or ``torch`` only Keras 3 runs (tf_keras is TensorFlow's), and TensorFlow
is never imported by these fixtures.
"""

import os

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, settings

BACKEND = keras.backend.backend()
FLAVOURS = {"keras3": keras}
if BACKEND == "tensorflow":
    import tf_keras  # (eager stays on: keras-rl2 is never imported in this process)

    FLAVOURS["tf_keras"] = tf_keras

# Property tests: 30 random cases on TensorFlow (both flavours), 10 on each other backend. The same
# cases every run (derandomized), so a rare counterexample never turns CI red at random: go looking
# for new ones on purpose with HYPOTHESIS_PROFILE=explore (fresh random cases, 10x as many).
_EXAMPLES = 30 if BACKEND == "tensorflow" else 10
settings.register_profile("surgery", max_examples=_EXAMPLES, deadline=None, derandomize=True, database=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("explore", max_examples=10 * _EXAMPLES, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "surgery"))


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same random state, whichever tests ran before it."""
    keras.utils.set_random_seed(0)


@pytest.fixture(params=list(FLAVOURS))
def K(request):
    """The Keras module of one flavour; models built from it are of that flavour."""
    module = FLAVOURS[request.param]
    module.utils.set_random_seed(0)
    return module


def randomize(model, seed=0):
    """Give every weight random values (biases too), so copied weights are told apart from fresh ones.

    Kernels get a standard deviation of 1/sqrt(fan-in), so activations stay of order one and a
    float32 tolerance of 1e-5 means what it says; variances stay positive.
    """
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if not layer.weights:
            continue
        new = []
        for var, w in zip(layer.weights, layer.get_weights()):
            name = var.name.split("/")[-1]
            if w.ndim >= 2:
                v = rng.normal(0, 1 / np.sqrt(np.prod(w.shape[:-1])), w.shape)
            elif "variance" in name or "gamma" in name:
                v = rng.uniform(0.5, 1.5, w.shape)
            else:
                v = rng.normal(0, 0.3, w.shape)
            new.append(v.astype(w.dtype))
        layer.set_weights(new)
    return model


def mlp(K, n_in=4, hidden=(8,), n_out=2, sequential=True, names=None, activation="relu"):
    """A Dense MLP with named layers h0, h1, …, q."""
    layers = [K.layers.Dense(w, activation=activation, name=f"h{i}") for i, w in enumerate(hidden)]
    layers.append(K.layers.Dense(n_out, name="q"))
    if sequential:
        model = K.Sequential([K.Input((n_in,), name="obs")] + layers, name="mlp")
    else:
        x = inp = K.Input((n_in,), name="obs")
        for layer in layers:
            x = layer(x)
        model = K.Model(inp, x, name="mlp")
    return randomize(model)


def weights_of(model):
    return [w.copy() for w in model.get_weights()]
