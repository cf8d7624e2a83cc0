"""transplant_weights into a model the user built: hidden layers resized by hand are inferred.

Outputs are compared: a wider hidden layer keeps the function exactly (verify <= 1e-5); a narrower
one equals the old model with the removed units' outgoing weights zeroed. Inputs and output layers
of another size are inferred only from unit IDs the new model carries, and refused otherwise.
"""

import numpy as np
import pytest

from keras_surgeon_rl import SurgeryError, surgeon
from keras_surgeon_rl.unit_ids import set_unit_ids

from conftest import mlp, randomize, weights_of

TOL = 1e-5


def zero_outgoing(model, reader, rows):
    """A copy of ``model`` whose ``reader`` kernel reads nothing from ``rows`` of its input units."""
    clone = type(model).from_config(model.get_config())
    clone.set_weights(model.get_weights())
    w = clone.get_layer(reader).get_weights()
    w[0][..., rows, :] = 0
    clone.get_layer(reader).set_weights(w)
    return clone


def convnet(K, filters=(4, 5), n_out=3, channels=3):
    layers = [K.layers.Conv2D(f, 3, activation="relu", name=f"c{i}") for i, f in enumerate(filters)]
    layers += [K.layers.Flatten(name="flat"), K.layers.Dense(n_out, name="q")]
    return randomize(K.Sequential([K.Input((7, 7, channels), name="img")] + layers, name="cnn"))


@pytest.mark.parametrize("sequential", [True, False])
def test_wider_hidden_dense_is_inferred_and_exact(K, sequential):
    old = mlp(K, hidden=(8, 6), sequential=sequential)
    new = mlp(K, hidden=(12, 6), sequential=sequential)
    report = surgeon.transplant_weights(old, new, {})
    assert surgeon.verify(old, new, {}) <= TOL
    assert report.row("h0").notes == [
        "new model has 12 units, old 8 — kept IDs 0..7, 4 new (inferred: the spec does not mention it)"]
    assert "h0: new model has 12 units, old 8" in str(report)
    row = report.row("h1")  # reads the 4 new units with zero weights
    assert (row.stats.copied, row.stats.initialized) == (8 * 6 + 6, 4 * 6)
    assert np.all(new.get_layer("h1").get_weights()[0][8:] == 0)


def test_narrower_hidden_dense_removes_the_last_units(K):
    old = mlp(K, hidden=(8,))
    new = mlp(K, hidden=(5,))
    report = surgeon.transplant_weights(old, new, {})
    reference = zero_outgoing(old, "q", [5, 6, 7])
    assert surgeon.verify(reference, new, {}) <= TOL
    assert surgeon.verify(old, new, {}) > 1e-3  # the removed units mattered
    assert report.row("h0").notes == [
        "new model has 5 units, old 8 — kept IDs 0..4, removed IDs 5..7 (inferred: the spec does not mention it)"]
    assert report.row("h0").stats.dropped == 4 * 3 + 3


def test_inferred_units_follow_the_ids_the_old_model_carries(K):
    old = mlp(K, hidden=(3,))
    set_unit_ids(old, layers={"h0": ["a", "b", "c"]})
    new = mlp(K, hidden=(5,))
    report = surgeon.transplant_weights(old, new, {})
    assert surgeon.verify(old, new, {}) <= TOL
    assert "kept IDs 'a', 'b', 'c', 2 new" in report.row("h0").notes[0]


def test_spec_init_applies_to_inferred_units(K):
    old = mlp(K, hidden=(4,))
    new = mlp(K, hidden=(7,))
    surgeon.transplant_weights(old, new, {"init": "net2net"})
    assert surgeon.verify(old, new, {}) <= TOL
    assert np.any(new.get_layer("q").get_weights()[0][4:] != 0)  # net2net: the copies share outgoing weights


def test_wider_and_narrower_conv_filters(K):
    old = convnet(K, filters=(4, 5))
    new = convnet(K, filters=(6, 3))
    report = surgeon.transplant_weights(old, new, {})
    reference = zero_outgoing(old, "q", np.flatnonzero(np.arange(3 * 3 * 5) % 5 >= 3))  # Flatten: channel last
    assert surgeon.verify(reference, new, {}) <= TOL
    assert "6 units, old 4 — kept IDs 0..3, 2 new" in report.row("c0").notes[0]
    assert "3 units, old 5 — kept IDs 0..2, removed IDs 3, 4" in report.row("c1").notes[0]


def test_wider_conv_filters_alone_are_exact(K):
    old = convnet(K, filters=(4, 5))
    new = convnet(K, filters=(9, 5))
    surgeon.transplant_weights(old, new, {})
    assert surgeon.verify(old, new, {}) <= TOL


def test_layers_the_spec_names_are_not_inferred(K):
    old = mlp(K, hidden=(8, 6))
    new = mlp(K, hidden=(8, 9))
    report = surgeon.transplant_weights(old, new, {"units": {"h1": 9}})
    assert report.row("h1").notes == []  # given, not inferred
    assert surgeon.verify(old, new, {}) <= TOL


def test_wider_input_without_ids_is_refused(K):
    """New features are not always appended (CartPole: [x_dot, theta] -> [x, x_dot, theta, theta_dot])."""
    old = mlp(K, n_in=2)
    new = mlp(K, n_in=4)
    before = weights_of(new)
    with pytest.raises(SurgeryError, match=r"input 'obs': the new model has 4 features, the old one 2.*'inputs'"):
        surgeon.transplant_weights(old, new, {})
    assert all(np.array_equal(a, b) for a, b in zip(before, weights_of(new)))


def test_wider_input_is_inferred_from_the_new_models_ids(K):
    old = mlp(K, n_in=2, hidden=(8,))
    set_unit_ids(old, inputs={"obs": ["x_dot", "theta"]})
    new = mlp(K, n_in=4, hidden=(10,))
    set_unit_ids(new, inputs={"obs": ["x", "x_dot", "theta", "theta_dot"]})
    report = surgeon.transplant_weights(old, new, {})
    spec = {"inputs": {"new": ["x", "x_dot", "theta", "theta_dot"]}}
    assert surgeon.verify(old, new, spec) <= TOL
    assert report.row("obs").notes == [
        "new model has 4 features, old 2 — kept IDs 'x_dot', 'theta', 2 new (inferred from the new model's unit "
        "IDs: the spec does not mention it)"]
    assert "2 new" in report.row("h0").notes[0]


def test_new_model_ids_sharing_none_with_the_old_are_refused(K):
    old = mlp(K, n_in=2)
    new = mlp(K, n_in=3)
    set_unit_ids(new, inputs={"obs": ["a", "b", "c"]})
    with pytest.raises(SurgeryError, match="share none"):
        surgeon.transplant_weights(old, new, {})


@pytest.mark.parametrize("n_out", [3, 1])
def test_output_layer_of_another_size_is_refused(K, n_out):
    old = mlp(K, n_out=2)
    new = mlp(K, n_out=n_out)
    before = weights_of(new)
    with pytest.raises(SurgeryError, match=rf"layer 'q': the new model has {n_out} units, the old one 2.*Give them "
                                           r"in the spec, e\.g\. 'outputs'"):
        surgeon.transplant_weights(old, new, {})
    assert all(np.array_equal(a, b) for a, b in zip(before, weights_of(new)))


def test_output_layer_given_in_the_spec_or_by_ids(K):
    old = mlp(K, n_out=2)
    spec = {"outputs": {"new": [0, 1, "jump"]}}
    new = mlp(K, hidden=(11,), n_out=3)
    report = surgeon.transplant_weights(old, new, spec)  # outputs given; h0 still inferred
    assert surgeon.verify(old, new, spec) <= TOL
    assert report.row("q").notes == [] and "11 units, old 8" in report.row("h0").notes[0]
    new = mlp(K, n_out=3)
    set_unit_ids(new, layers={"q": [0, 1, "jump"]})
    report = surgeon.transplant_weights(old, new, {})
    assert surgeon.verify(old, new, spec) <= TOL
    assert "kept IDs 0, 1, 1 new (inferred from the new model's unit IDs" in report.row("q").notes[0]


def test_conv_output_layer_through_flatten_is_refused(K):
    """A Conv whose filters reach the output through a Flatten is an output layer too."""
    inp = K.Input((5, 5, 2), name="img")
    x = K.layers.Conv2D(3, 3, name="c0")(inp)
    old = randomize(K.Model(inp, K.layers.GlobalAveragePooling2D(name="pool")(x)))
    x = K.layers.Conv2D(4, 3, name="c0")(inp)
    new = K.Model(inp, K.layers.GlobalAveragePooling2D(name="pool")(x))
    with pytest.raises(SurgeryError, match="layer 'c0'.*output 'pool'.*'outputs': {'pool'"):
        surgeon.transplant_weights(old, new, {})


def test_incompatible_model_keeps_a_clear_error(K):
    """A layer the new model lacks (renamed) or of another class is not inferred."""
    old = mlp(K, hidden=(8,))
    new = K.Sequential([K.Input((4,), name="obs"), K.layers.Dense(12, name="hidden"), K.layers.Dense(2, name="q")])
    with pytest.raises(SurgeryError, match="no layer 'h0'"):
        surgeon.transplant_weights(old, new, {})
    new = K.Sequential([K.Input((4,), name="obs"), K.layers.Reshape((4, 1), name="h0"), K.layers.Flatten(),
                        K.layers.Dense(2, name="q")])
    before = weights_of(new)
    with pytest.raises(SurgeryError, match="layer 'h0' is a Reshape in the new model.*Dense"):
        surgeon.transplant_weights(old, new, {})
    assert all(np.array_equal(a, b) for a, b in zip(before, weights_of(new)))


def test_a_plan_error_after_inference_says_what_was_inferred(K):
    """UnitNormalization has no surgery rule: the widened Dense before it cannot be copied, and the error says
    why it changed."""
    def net(width):
        return K.Sequential([K.Input((5, 3), name="seq"), K.layers.Dense(width, name="h0"),
                             K.layers.UnitNormalization(name="q")])

    old, new = randomize(net(4)), net(6)
    with pytest.raises(SurgeryError, match=r"'q' \(UnitNormalization\) has no surgery rule.*completed from the new model: h0: new "
                                           r"model has 6 units, old 4"):
        surgeon.transplant_weights(old, new, {})
