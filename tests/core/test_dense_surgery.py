"""Dense surgery compares model OUTPUTS: every function-preserving edit gives verify <= 1e-5."""

import numpy as np
import pytest

from keras_surgeon_rl import SurgeryError, surgeon

from conftest import mlp, randomize

TOL = 1e-5
CARTPOLE = ["x", "x_dot", "theta", "theta_dot"]


def zero_rows(model, layer, rows):
    """A copy of ``model`` whose ``layer`` kernel rows are zero (removed inputs stop mattering)."""
    clone = type(model).from_config(model.get_config()) if hasattr(model, "get_config") else None
    clone.set_weights(model.get_weights())
    w = clone.get_layer(layer).get_weights()
    w[0][rows] = 0
    clone.get_layer(layer).set_weights(w)
    return clone


@pytest.mark.parametrize("sequential", [True, False])
def test_add_inputs_preserves_outputs(K, sequential):
    old = mlp(K, n_in=2, sequential=sequential)
    spec = {"inputs": {"old": ["x_dot", "theta"], "new": CARTPOLE}}
    new = surgeon.transplant(old, spec)
    assert new.inputs[0].shape[-1] == 4
    assert (type(new).__name__ == "Sequential") == sequential
    assert surgeon.verify(old, new, spec) <= TOL
    # and the new features are really read by the new model: the rows are zero, not absent
    assert new.get_layer("h0").get_weights()[0].shape == (4, 8)


def test_permute_inputs_preserves_outputs(K):
    old = mlp(K)
    spec = {"inputs": {"old": CARTPOLE, "new": CARTPOLE[::-1]}}
    new = surgeon.transplant(old, spec)
    assert surgeon.verify(old, new, spec) <= TOL
    x = np.random.default_rng(1).normal(size=(16, 4)).astype("float32")
    np.testing.assert_allclose(old.predict(x, verbose=0), new.predict(x[:, ::-1], verbose=0), atol=TOL)


def test_remove_inputs_equals_old_with_removed_weights_zeroed(K):
    old = mlp(K)
    spec = {"inputs": {"old": CARTPOLE, "new": ["x", "theta"]}}
    new = surgeon.transplant(old, spec)
    assert surgeon.verify(old, new, spec) > 1e-3  # the removed features mattered
    reference = zero_rows(old, "h0", [1, 3])
    assert surgeon.verify(reference, new, spec) <= TOL


@pytest.mark.parametrize("units", [16, [7, 6, 5, 4, 3, 2, 1, 0], [0, 1, 2, 3, 4, 5, 6, 7, "a", "b"]])
def test_widen_and_permute_hidden_preserves_outputs(K, units):
    old = mlp(K, hidden=(8, 8))
    spec = {"units": {"h0": units}}
    new = surgeon.transplant(old, spec)
    assert surgeon.verify(old, new, spec) <= TOL


def test_new_hidden_units_are_alive_not_dead(K):
    """Preserve init: new units get random incoming weights (they can learn), zero outgoing ones."""
    old = mlp(K, hidden=(8,))
    new = surgeon.transplant(old, {"units": {"h0": 12}})
    w_in, b_in = new.get_layer("h0").get_weights()
    w_out = new.get_layer("q").get_weights()[0]
    assert np.abs(w_in[:, 8:]).sum() > 0
    assert np.all(w_out[8:] == 0)
    np.testing.assert_array_equal(w_in[:, :8], old.get_layer("h0").get_weights()[0])


def test_net2net_widening_preserves_outputs_with_nonzero_new_weights(K):
    old = mlp(K, hidden=(8, 8))
    spec = {"units": {"h0": 14, "h1": 11}, "init": "net2net"}
    new = surgeon.transplant(old, spec)
    assert surgeon.verify(old, new, spec) <= TOL
    assert np.all(new.get_layer("h1").get_weights()[0][8:] != 0)  # split, not zeroed


def test_net2net_copies_become_different_units_when_trained(K):
    """Copies share their unit's outgoing weights unequally; with equal shares they would get identical
    gradients forever (measured: an equal split trained like the old, narrow network)."""
    old = mlp(K, hidden=(8,))
    spec = {"units": {"h0": 14}, "init": "net2net"}
    new = surgeon.transplant(old, spec)
    assert surgeon.verify(old, new, spec) <= TOL
    kernel = new.get_layer("h0").get_weights()[0]
    copies = [(j, next(k for k in range(8) if np.array_equal(kernel[:, j], kernel[:, k]))) for j in range(8, 14)]
    q = new.get_layer("q").get_weights()[0]
    assert all(not np.allclose(q[j], q[k]) for j, k in copies)  # unequal shares of the outgoing weights

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(64, 4)).astype("float32"), rng.normal(size=(64, 2)).astype("float32")
    new.compile(optimizer=K.optimizers.SGD(learning_rate=0.05), loss="mse")
    for _ in range(5):
        new.train_on_batch(x, y)
    trained = new.get_layer("h0").get_weights()[0]
    gaps = [np.max(np.abs(trained[:, j] - trained[:, k])) for j, k in copies]
    assert min(gaps) > 1e-4, gaps


def test_random_init_changes_outputs(K):
    old = mlp(K, n_in=2)
    spec = {"inputs": {"old": ["a", "b"], "new": ["a", "b", "c"]}, "init": "random"}
    new = surgeon.transplant(old, spec)
    assert surgeon.verify(old, new, spec) > 1e-3


def test_narrow_hidden_equals_old_with_removed_units_zeroed(K):
    old = mlp(K, hidden=(8,))
    spec = {"units": {"h0": [0, 2, 4, 6]}}
    new = surgeon.transplant(old, spec)
    reference = zero_rows(old, "q", [1, 3, 5, 7])
    assert surgeon.verify(reference, new, spec) <= TOL
    assert surgeon.verify(old, new, spec) > 1e-3


def test_outputs_add_remove_permute(K):
    old = mlp(K, n_out=3)
    spec = {"outputs": {"old": ["left", "stay", "right"], "new": ["right", "jump", "left"]}}
    new = surgeon.transplant(old, spec)
    assert new.outputs[0].shape[-1] == 3
    assert surgeon.verify(old, new, spec) <= TOL
    x = np.random.default_rng(2).normal(size=(32, 4)).astype("float32")
    yo, yn = old.predict(x, verbose=0), new.predict(x, verbose=0)
    np.testing.assert_allclose(yn[:, [0, 2]], yo[:, [2, 0]], atol=TOL)


def test_output_init_copy_with_bias_offset(K):
    old = mlp(K, n_out=2)
    spec = {"outputs": {"old": ["left", "right"], "new": ["left", "right", "noop"],
                        "init": {"copy": "left", "bias_offset": -0.5}}}
    new = surgeon.transplant(old, spec)
    x = np.random.default_rng(3).normal(size=(64, 4)).astype("float32")
    y = new.predict(x, verbose=0)
    np.testing.assert_allclose(y[:, 2], y[:, 0] - 0.5, atol=TOL)


def test_output_init_zeros(K):
    old = mlp(K, n_out=2)
    new = surgeon.transplant(old, {"outputs": {"new": [0, 1, "z"], "init": "zeros"}})
    x = np.random.default_rng(3).normal(size=(8, 4)).astype("float32")
    np.testing.assert_allclose(new.predict(x, verbose=0)[:, 2], 0, atol=TOL)


@pytest.mark.parametrize("sequential", [True, False])
@pytest.mark.parametrize("width", [None, 12])
def test_insert_identity_dense_after_relu_preserves_outputs(K, sequential, width):
    old = mlp(K, hidden=(8,), sequential=sequential)
    entry = {"after": "h0", "layer": "Dense", "init": "identity", "activation": "relu", "name": "deeper"}
    if width:
        entry["units"] = width
    spec = {"insert": [entry]}
    new = surgeon.transplant(old, spec)
    assert [layer.name for layer in new.layers][-3:] == ["h0", "deeper", "q"]
    assert surgeon.verify(old, new, spec) <= TOL
    assert not new.surgery_report.row("deeper").notes


def test_insert_identity_relu_after_linear_is_flagged_and_approximate(K):
    old = mlp(K, hidden=(8,), activation="linear")
    spec = {"insert": [{"after": "h0", "activation": "relu"}]}
    new = surgeon.transplant(old, spec)
    assert any("exact only" in n for n in new.surgery_report.notes)
    assert surgeon.verify(old, new, spec) > 1e-3


def test_insert_then_delete_round_trip(K):
    old = mlp(K, hidden=(8,))
    deeper = surgeon.transplant(old, {"insert": [{"after": "h0", "activation": "relu", "name": "extra"}]})
    back = surgeon.transplant(deeper, {"delete": ["extra"]})
    assert [layer.name for layer in back.layers] == [layer.name for layer in old.layers]
    x = np.random.default_rng(4).normal(size=(32, 4)).astype("float32")
    np.testing.assert_allclose(back.predict(x, verbose=0), old.predict(x, verbose=0), atol=TOL)


def test_delete_layer_of_matching_shape(K):
    old = mlp(K, hidden=(8, 8, 8))
    spec = {"delete": ["h1"]}
    new = surgeon.transplant(old, spec)
    assert [layer.name for layer in new.layers] == ["h0", "h2", "q"]
    assert surgeon.verify(old, new, spec) > 1e-3  # h1 was doing something
    # deleting treats the layer as an identity: exact when it was one
    old.get_layer("h1").set_weights([np.eye(8, dtype="float32"), np.zeros(8, "float32")])
    assert surgeon.verify(old, new, spec) <= TOL


def test_combined_edit_in_one_spec(K):
    old = mlp(K, n_in=2, hidden=(4, 4))
    spec = {"inputs": {"old": ["x_dot", "theta"], "new": CARTPOLE},
            "units": {"h0": 16, "h1": [3, 2, 1, 0, "n"]},
            "insert": [{"after": "h1", "activation": "relu"}],
            "outputs": {"old": ["left", "right"], "new": ["right", "left"]}}
    new = surgeon.transplant(old, spec)
    assert surgeon.verify(old, new, spec) <= TOL


def test_plan_is_a_dry_run_with_report(K):
    old = mlp(K)
    p = surgeon.plan(old, {"units": {"h0": 10}})
    text = str(p)
    assert "h0" in text and "changed" in text and "copied" in text
    row = p.report.row("h0")
    assert (row.stats.copied, row.stats.initialized, row.stats.dropped) == (4 * 8 + 8, 4 * 2 + 2, 0)
    q = p.report.row("q")
    assert (q.stats.copied, q.stats.initialized, q.stats.dropped) == (8 * 2 + 2, 2 * 2, 0)


def test_transplant_weights_into_user_built_model(K):
    old = mlp(K, n_in=2, hidden=(8,))
    spec = {"inputs": {"old": ["a", "b"], "new": ["a", "c", "b"]}, "units": {"h0": 12}}
    new = mlp(K, n_in=3, hidden=(12,))
    report = surgeon.transplant_weights(old, new, spec)
    assert report.row("h0").stats.copied == 2 * 8 + 8
    assert surgeon.verify(old, new, spec) <= TOL


def test_transplant_weights_with_wrong_shapes_names_the_layer(K):
    old = mlp(K, hidden=(8,))
    new = mlp(K, hidden=(9,))
    with pytest.raises(SurgeryError, match="'h0'.*shape"):
        surgeon.transplant_weights(old, new, {"units": {"h0": 10}})


def test_window_length_flatten_adds_feature_columns_for_every_frame(K):
    """keras-rl2 models start with Flatten(input_shape=(window, features))."""
    layers = [K.layers.Flatten(name="flat"), K.layers.Dense(8, activation="relu", name="h0"),
              K.layers.Dense(2, name="q")]
    old = randomize(K.Sequential([K.Input((3, 2), name="obs")] + layers))
    spec = {"inputs": {"old": ["x_dot", "theta"], "new": CARTPOLE}}
    new = surgeon.transplant(old, spec)
    assert new.inputs[0].shape[1:] == (3, 4)
    assert surgeon.verify(old, new, spec) <= TOL
    x = np.random.default_rng(5).normal(size=(16, 3, 2)).astype("float32")
    x_new = np.random.default_rng(6).normal(size=(16, 3, 4)).astype("float32")
    x_new[:, :, [1, 2]] = x
    np.testing.assert_allclose(old.predict(x, verbose=0), new.predict(x_new, verbose=0), atol=TOL)


def test_unit_ids_travel_with_the_result(K):
    from keras_surgeon_rl import get_unit_ids, set_unit_ids

    old = mlp(K, n_in=2, hidden=(8,))
    set_unit_ids(old, inputs={"obs": ["x_dot", "theta"]}, layers={"q": ["left", "right"]})
    first = surgeon.transplant(old, {"inputs": {"new": ["x_dot", "theta", "x"]}, "units": {"h0": 10}})
    ids = get_unit_ids(first)
    assert ids["inputs"]["obs"] == ["x_dot", "theta", "x"]
    assert ids["layers"]["h0"] == list(range(10)) and ids["layers"]["q"] == ["left", "right"]
    # a later surgery names only what is new
    spec = {"inputs": {"new": ["x", "x_dot", "theta", "theta_dot"]}, "outputs": {"new": ["right", "left", "noop"]}}
    second = surgeon.transplant(first, spec)
    assert surgeon.verify(first, second, spec) <= TOL
    x = np.random.default_rng(7).normal(size=(16, 3)).astype("float32")
    x2 = np.concatenate([x[:, [2, 0, 1]], np.zeros((16, 1), "float32")], axis=1)
    np.testing.assert_allclose(second.predict(x2, verbose=0)[:, :2], first.predict(x, verbose=0)[:, ::-1], atol=TOL)


def test_keep_greedy_output_init_never_changes_the_argmax(K):
    old = mlp(K, n_out=3)
    spec = {"outputs": {"old": ["a", "b", "c"], "new": ["c", "n1", "a", "n2"], "init": {"keep_greedy": 0.01}}}
    new = surgeon.transplant(old, spec)
    x = np.random.default_rng(8).normal(size=(2000, 4)).astype("float32") * 3
    yo, yn = old.predict(x, verbose=0), new.predict(x, verbose=0)
    kept_best = np.array(["a", "b", "c"])[np.argmax(yo[:, [0, 2]], axis=1) * 2]
    new_best = np.array(["c", "n1", "a", "n2"])[np.argmax(yn, axis=1)]
    np.testing.assert_array_equal(new_best, kept_best)
    np.testing.assert_allclose(yn[:, 1], yn[:, 0] - 0.01, atol=TOL)  # a copy of the first kept unit, 'c'


def test_weights_created_without_a_name_are_copied_by_position(K):
    """Keras names an unnamed weight by a process-wide counter ('variable_7'), so the same weight of
    the rebuilt layer has another name (ConvNeXt's LayerScale): it must still be copied."""

    class Scale(K.layers.Layer):
        def build(self, input_shape):
            self.w1 = self.add_weight(shape=(input_shape[-1],), initializer="ones")
            self.w2 = self.add_weight(shape=(input_shape[-1],), initializer="zeros")

        def call(self, x):
            return x * self.w1 + self.w2

    inp = K.Input((4,), name="obs")
    x = K.layers.Dense(4, name="h")(inp)
    x = Scale(name="scale")(x)
    old = K.Model(inp, K.layers.Dense(2, name="q")(x))
    old.get_layer("scale").set_weights([np.arange(1, 5, dtype="float32"), np.full(4, 0.5, "float32")])
    K.layers.Dense(3)(K.Input((2,)))  # moves the counter on, as any other model built meanwhile does
    spec = {"outputs": {"new": [1, 0]}}
    new = surgeon.transplant(old, spec)
    assert surgeon.verify(old, new, spec) <= TOL
