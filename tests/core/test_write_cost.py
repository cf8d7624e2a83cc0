"""transplant writes the new weights with as few full-size copies as the framework allows (issue #19):
a weight overwritten whole is never read from the new layer, and a large weight costs two transient
full-size copies at most on its way into its variable (the new array, and TensorFlow's copy of it
when it converts the array to a tensor; writing the variable in slices instead would switch it to
copy-on-read for good, so that every forward pass copied it). In eager TensorFlow a copied weight
costs one: it is made at build, into memory the variable then holds, and never written again."""

import tracemalloc

import numpy as np
import pytest

from keras_surgeon_rl import surgeon
from keras_surgeon_rl.adapters.base import KerasAdapter

from conftest import mlp


def test_weights_overwritten_whole_are_not_read_from_the_new_layers(K, monkeypatch):
    old = mlp(K, n_in=5, hidden=(12, 9), n_out=3)
    spec = {"inputs": {"old": list(range(5)), "new": [0, 1, 5, 2, 3, 4]},  # a new input: its row is zeroed
            "units": {"h1": 11},                                            # h1's new units keep their init
            "outputs": {"old": [0, 1, 2], "new": [0, 1, 2, 3]}}
    read = []
    real = KerasAdapter.get_weights
    monkeypatch.setattr(KerasAdapter, "get_weights", lambda self, layer: read.append(layer) or real(self, layer))
    new = surgeon.transplant(old, spec)
    # eager TensorFlow: h1's and q's copies are made from the initializer's draw as the build makes it,
    # so no new layer's value is read back at all
    assert {layer.name for layer in read if layer not in old.layers} == set()
    monkeypatch.setattr(KerasAdapter, "adopt", lambda self, array: None)  # where arrays cannot be handed over
    read.clear()
    new = surgeon.transplant(old, spec)
    assert {layer.name for layer in read if layer not in old.layers} == {"h1", "q"}  # new units or outputs
    assert surgeon.verify(old, new, spec) < 1e-5
    kernel = new.get_layer("h1").get_weights()[0]
    assert np.abs(kernel[:, 9:]).max() > 0  # h1's new units came from the initializer
    np.testing.assert_array_equal(new.get_layer("h0").get_weights()[0][2], 0)  # the new input's row


def _big_net(K, n_in, units):
    return K.Sequential([K.Input((n_in,), name="obs"), K.layers.Dense(units, name="big"),
                         K.layers.Dense(2, name="q")], name="big_net")


def _traced_transplant(old, spec, before=lambda: None):
    """``transplant(old, spec)`` after a warm-up run (first-call allocations are not the surgery's), and
    the peak of the NumPy and Python allocations it made."""
    surgeon.transplant(old, spec)
    before()
    tracemalloc.start()
    try:
        new = surgeon.transplant(old, spec)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return new, peak


@pytest.mark.parametrize("widen", [False, True], ids=["copied-whole", "new-units"])
def test_two_transient_copies_of_a_large_weight_at_most(K, widen):
    n_in, units = 2048, 4096  # a 32 MB kernel
    old = _big_net(K, n_in, units)
    spec = {"inputs": {"old": list(range(n_in)), "new": list(range(n_in + 1))}}
    if widen:
        spec["units"] = {"big": units + 64}
    kernel_bytes = (n_in + 1) * (units + 64 * widen) * 4
    new, peak = _traced_transplant(old, spec)
    # the new kernel made once in NumPy, and TensorFlow's conversion of it (no copy of the initial values)
    assert peak < 2.25 * kernel_bytes, f"traced NumPy peak {peak / 2**20:.1f} MB, kernel {kernel_bytes / 2**20:.1f} MB"
    kernel = new.get_layer("big").get_weights()[0]
    np.testing.assert_array_equal(kernel[:n_in, :units], old.get_layer("big").get_weights()[0])
    np.testing.assert_array_equal(kernel[n_in], 0)  # the new input's row reads nothing yet


def test_weights_copied_whole_are_created_holding_their_final_values(K, monkeypatch):
    """A weight the plan copies is made once, in memory TensorFlow then holds as the variable's buffer
    (one copied in part, from the initializer's draw): it is never written after the build, and the
    traced NumPy peak is that one array (the old path made it, then TensorFlow copied it into the
    variable, up to 2 × more)."""
    n_in, units = 2048, 4096  # a 32 MB kernel
    old = _big_net(K, n_in, units)
    spec = {"inputs": {"old": list(range(n_in)), "new": list(range(n_in + 1))},  # big's new row: zeroed
            "outputs": {"old": [0, 1], "new": [0, 1, 2]}}                        # q's new output: drawn
    kernel_bytes = (n_in + 1) * units * 4
    written = []
    real = KerasAdapter.set_weights
    monkeypatch.setattr(KerasAdapter, "set_weights",
                        lambda self, layer, arrays: written.append(layer.name) or real(self, layer, arrays))
    new, peak = _traced_transplant(old, spec, before=written.clear)
    assert written == []  # big (copied whole) and q (a new output) are never written after the build
    assert peak < 1.25 * kernel_bytes, f"traced NumPy peak {peak / 2**20:.1f} MB, kernel {kernel_bytes / 2**20:.1f} MB"
    big = new.get_layer("big")
    kernel, bias = big.get_weights()
    np.testing.assert_array_equal(kernel[:n_in], old.get_layer("big").get_weights()[0])
    np.testing.assert_array_equal(kernel[n_in], 0)
    np.testing.assert_array_equal(bias, old.get_layer("big").get_weights()[1])
    assert new.get_layer("big").get_config() == old.get_layer("big").get_config() | {"name": "big"}
    # the variables holding those arrays are ordinary ones: written in place, read back, trained
    big.kernel.assign(big.kernel * 2.0)
    np.testing.assert_array_equal(big.get_weights()[0][:n_in], 2.0 * old.get_layer("big").get_weights()[0])
    new.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).standard_normal((8, n_in + 1)).astype("float32")
    before = big.get_weights()[0].copy()
    new.fit(x, np.zeros((8, 3), "float32"), epochs=1, verbose=0)
    after = big.get_weights()[0]
    assert np.isfinite(after).all() and not np.array_equal(after, before)


@pytest.mark.parametrize("model", ["mlp", "conv"])
def test_weights_made_at_build_are_bit_identical_to_the_written_ones(K, monkeypatch, model):
    """The same seed gives the same new model whether the copies are made at build (eager TensorFlow)
    or written afterwards (where arrays cannot be handed over): same draws for new units, same copies."""
    if model == "mlp":
        old = mlp(K, n_in=5, hidden=(12, 9), n_out=3)
        spec = {"inputs": {"old": list(range(5)), "new": [0, 1, 5, 2, 3, 4]}, "units": {"h1": 11},
                "outputs": {"old": [0, 1, 2], "new": [0, 1, 2, 3]}}
    else:
        inp = K.Input((10, 10, 3), name="frames")
        x = K.layers.Conv2D(8, 3, activation="relu", name="c1")(inp)
        x = K.layers.BatchNormalization(name="bn")(x)
        x = K.layers.Conv2D(6, 3, name="c2")(x)
        x = K.layers.Flatten(name="flat")(x)
        old = K.Model(inp, K.layers.Dense(4, name="q")(K.layers.Dense(16, name="fc")(x)), name="conv")
        spec = {"inputs": {"old": [0, 1, 2], "new": [0, 1, 2, 3]}, "units": {"c1": 10, "c2": 7},
                "outputs": {"old": [0, 1, 2, 3], "new": [0, 1, 2, 3, 4]}}
    K.utils.set_random_seed(7)
    made = surgeon.transplant(old, spec)
    monkeypatch.setattr(KerasAdapter, "adopt", lambda self, array: None)
    K.utils.set_random_seed(7)
    written = surgeon.transplant(old, spec)
    a, b = made.get_weights(), written.get_weights()
    assert len(a) == len(b) and any(w.size for w in a)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert made.to_json().replace(made.name, "m") == written.to_json().replace(written.name, "m")


def test_the_variables_hold_the_arrays_made_at_build_without_a_copy(K):
    """Each weight's final value is made once: TensorFlow's variable holds that very array's memory."""
    from keras_surgeon_rl.adapters import adapter_for
    from keras_surgeon_rl.adapters.base import _tensor_view

    old = mlp(K, n_in=5, hidden=(12, 9), n_out=3)
    spec = {"inputs": {"old": list(range(5)), "new": [0, 1, 5, 2, 3, 4]}, "units": {"h1": 11},
            "outputs": {"old": [0, 1, 2], "new": [0, 1, 2, 3]}}
    adapter = adapter_for(old)
    p = surgeon.plan(old, spec)
    new, finals = surgeon.build_planned(p, adapter)
    checked = 0
    for name, lp in p.layers.items():
        names, variables = adapter.weight_slots(new.get_layer(name)) if lp.maps else ([], [])
        for w, v in zip(names, variables):
            final = finals[id(lp)][w]
            assert final.holds(), (name, w)
            assert _tensor_view(v).ctypes.data == final.array.ctypes.data, f"{name}/{w} was copied"
            checked += 1
    assert checked == 6  # kernel and bias of h0, h1 and q


def test_a_build_thrown_away_leaves_nothing_taken_for_written(K, monkeypatch):
    """When the placeholders' check fails the model is built again the ordinary way, and every weight
    is then written: the values made for the first build are not taken for the second's."""
    import keras_surgeon_rl.adapters.base as base

    old = mlp(K, n_in=5, hidden=(12, 9), n_out=3)
    spec = {"inputs": {"old": list(range(5)), "new": [0, 1, 5, 2, 3, 4]}, "units": {"h1": 11},
            "outputs": {"old": [0, 1, 2], "new": [0, 1, 2, 3]}}
    monkeypatch.setattr(base, "overwrite_check", lambda swaps, weights_of: False)
    new = surgeon.transplant(old, spec)
    assert surgeon.verify(old, new, spec) < 1e-5
    np.testing.assert_array_equal(new.get_layer("h0").get_weights()[0][[0, 1, 3, 4, 5]],
                                  old.get_layer("h0").get_weights()[0])
    np.testing.assert_array_equal(new.get_layer("h0").get_weights()[0][2], 0)
