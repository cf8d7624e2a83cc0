"""transplant builds the new model without drawing random values for weights it then overwrites whole
(issue #19), while new units still come from the layer's own initializer and the config is unchanged."""

import numpy as np
import pytest

from keras_surgeon_rl import surgeon
from keras_surgeon_rl.adapters import adapter_for
from keras_surgeon_rl.adapters.overwritten import Placeholder, Swap, check, initializer_attribute

from conftest import FLAVOURS, randomize, weights_of

CALLS: list = []  # (flavour, shape) per call of a CountingUniform, across instances


def _counting_class(K):
    """A real initializer of flavour ``K`` (registered, so configs round-trip) that logs each call."""
    register = getattr(getattr(K, "saving", None), "register_keras_serializable", None) or \
        K.utils.register_keras_serializable

    @register(package="test_build_cost", name=f"CountingUniform_{K.__name__}")
    class CountingUniform(K.initializers.Initializer):
        def __init__(self, seed=None):
            self.seed = seed
            self._inner = K.initializers.GlorotUniform(seed=seed)

        def __call__(self, shape, dtype=None, **kwargs):
            CALLS.append((K.__name__, tuple(int(d) for d in shape)))
            return self._inner(shape, dtype=dtype)

        def get_config(self):
            return {"seed": self.seed}

    return CountingUniform


COUNTING = {name: _counting_class(module) for name, module in FLAVOURS.items()}


def _counting_of(K):
    return COUNTING[next(n for n, m in FLAVOURS.items() if m is K)]


def _net(K, sequential, nested=False):
    init = _counting_of(K)
    dense = [K.layers.Dense(w, activation="relu", name=f"h{i}", kernel_initializer=init())
             for i, w in enumerate((32, 48, 40))]
    q = K.layers.Dense(3, name="q", kernel_initializer=init())
    if nested:
        body = K.Sequential([K.Input((6,), name="body_in")] + dense, name="body")
        inp = K.Input((6,), name="obs")
        model = K.Model(inp, q(body(inp)), name="outer")
    elif sequential:
        model = K.Sequential([K.Input((6,), name="obs")] + dense + [q], name="net")
    else:
        x = inp = K.Input((6,), name="obs")
        for layer in dense + [q]:
            x = layer(x)
        model = K.Model(inp, x, name="net")
    randomize(model)
    for layer in model.layers:  # randomize skips a nested model's layers
        if isinstance(layer, K.Model):
            randomize(layer, seed=1)
    return model


def _initializers(config):
    """Every ``*_initializer`` entry in a model config, in order."""
    found = []

    def walk(value):
        if isinstance(value, dict):
            for k, v in value.items():
                if k.endswith("_initializer"):
                    found.append((k, v))
                else:
                    walk(v)
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v)
    walk(config)
    return found


@pytest.mark.parametrize("kind", ["sequential", "functional", "nested"])
def test_only_layers_with_new_units_draw_random_values(K, kind):
    """Widening h1 gives it new columns and h2 new rows (zeroed): only h1's kernel is drawn; h0, h2 and
    q are copied whole and their initializer is never called. It was called for all four before."""
    old = _net(K, kind == "sequential", nested=kind == "nested")
    CALLS.clear()
    new = surgeon.transplant(old, {"units": {"h1": 64}})
    assert [s for _, s in CALLS] == [(32, 64)]
    assert surgeon.verify(old, new, {"units": {"h1": 64}}) < 1e-5


@pytest.mark.parametrize("kind", ["sequential", "functional", "nested"])
def test_config_and_values_as_before(K, kind):
    """The result's config names the user's initializers, equals an ordinary build's, its copied
    weights equal the source's exactly, and the source model is untouched."""
    old = _net(K, kind == "sequential", nested=kind == "nested")
    before = weights_of(old)
    spec = {"outputs": {"old": ["a", "b", "c"], "new": ["a", "b", "c", "d"]}}
    new = surgeon.transplant(old, spec)
    adapter = adapter_for(old)
    ordinary = adapter.build(surgeon.plan(old, spec).new)  # no initializer swapped
    assert new.to_json() == ordinary.to_json()
    assert _initializers(new.get_config()) == _initializers(old.get_config())
    assert any("CountingUniform" in str(v) for _, v in _initializers(new.get_config()))
    for a, b in zip(before, weights_of(old)):
        np.testing.assert_array_equal(a, b)
    n_new = len(new.get_weights())
    for a, b in zip(old.get_weights()[:n_new - 2], new.get_weights()[:n_new - 2]):  # all but q's
        np.testing.assert_array_equal(a, b)
    q_old, q_new = old.get_layer("q").get_weights()[0], new.get_layer("q").get_weights()[0]
    np.testing.assert_array_equal(q_new[:, :3], q_old)
    assert surgeon.verify(old, new, spec) < 1e-5


def test_new_block_keeps_the_initializers_statistics(K):
    """A large new block is drawn from glorot_uniform of the new kernel's shape (not zeros)."""
    model = K.Sequential([K.Input((300,), name="obs"), K.layers.Dense(200, activation="relu", name="h0"),
                          K.layers.Dense(200, activation="relu", name="h1"), K.layers.Dense(4, name="q")])
    randomize(model)
    new = surgeon.transplant(model, {"units": {"h0": 600}})
    kernel = new.get_layer("h0").get_weights()[0]
    block = kernel[:, 200:]  # the 400 new units' incoming weights
    limit = np.sqrt(6 / (300 + 600))
    assert abs(block.std() - limit / np.sqrt(3)) < 0.03 * limit / np.sqrt(3)
    assert np.abs(block).max() <= limit and abs(block.mean()) < 0.01 * limit
    np.testing.assert_array_equal(new.get_layer("h1").get_weights()[0][200:], 0)  # their outgoing weights
    np.testing.assert_array_equal(new.get_layer("h1").get_weights()[0][:200], model.get_layer("h1").get_weights()[0])


def test_custom_layer_keeps_its_initializer(K):
    """A layer outside Keras is built as before: its initializer attribute is never guessed."""
    class Scale(K.layers.Layer):
        def __init__(self, kernel_initializer="ones", **kwargs):
            super().__init__(**kwargs)
            self.kernel_initializer = kernel_initializer

    layer = Scale(name="s")
    assert initializer_attribute(layer, "kernel") is None
    assert initializer_attribute(K.layers.Dense(2), "kernel") == "kernel_initializer"
    assert initializer_attribute(K.layers.Dense(2), "variable#0") is None
    assert initializer_attribute(K.layers.SeparableConv2D(2, 3), "depthwise_kernel") == "depthwise_initializer"


def test_check_refuses_a_placeholder_not_called_once(K):
    """A placeholder called twice (another weight used the same attribute) or never makes the build
    start again the ordinary way."""
    layer = K.layers.Dense(2, name="d")
    layer.build((None, 3))
    adapter = adapter_for(K.Sequential([K.Input((3,)), layer]))
    zeros = K.initializers.Zeros()
    once, twice, never = Placeholder("kernel", zeros), Placeholder("kernel", zeros), Placeholder("kernel", zeros)
    once.calls, twice.calls = [(3, 2)], [(3, 2), (2,)]
    assert check([Swap(layer, "kernel_initializer", None, once)], adapter.get_weights)
    assert not check([Swap(layer, "kernel_initializer", None, twice)], adapter.get_weights)
    assert not check([Swap(layer, "kernel_initializer", None, never)], adapter.get_weights)
    wrong = Placeholder("kernel", zeros)
    wrong.calls = [(2, 3)]
    assert not check([Swap(layer, "kernel_initializer", None, wrong)], adapter.get_weights)
