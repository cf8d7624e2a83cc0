"""The source model is never changed and never shares a layer or a weight with the result."""

import numpy as np

from keras_surgeon_rl import surgeon

from conftest import mlp, weights_of


def test_old_model_is_bit_identical_and_unshared(K):
    old = mlp(K, n_in=2, hidden=(8, 8))
    before = weights_of(old)
    spec = {"inputs": {"old": ["a", "b"], "new": ["a", "b", "c"]}, "units": {"h0": 12},
            "insert": [{"after": "h1", "activation": "relu"}]}
    new = surgeon.transplant(old, spec)
    for a, b in zip(before, weights_of(old)):
        assert a.tobytes() == b.tobytes()
    old_ids = {id(v) for v in old.weights}
    assert not old_ids & {id(v) for v in new.weights}
    assert not {id(layer) for layer in old.layers} & {id(layer) for layer in new.layers}

    # training the new model leaves the old one alone
    x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    y = np.random.default_rng(1).normal(size=(64, 2)).astype("float32")
    new.compile(optimizer="sgd", loss="mse")
    new_before = weights_of(new)
    new.fit(x, y, epochs=2, verbose=0)
    assert any(not np.array_equal(a, b) for a, b in zip(new_before, weights_of(new)))
    for a, b in zip(before, weights_of(old)):
        assert a.tobytes() == b.tobytes()


def test_unchanged_spec_copies_everything(K):
    old = mlp(K, hidden=(8,))
    new = surgeon.transplant(old, {})
    for a, b in zip(weights_of(old), weights_of(new)):
        np.testing.assert_array_equal(a, b)
    assert new.surgery_report.totals.initialized == 0
    assert new.surgery_report.totals.dropped == 0
