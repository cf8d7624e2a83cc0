"""Bad specs fail before anything is built, with a message naming the layer/key and the fix."""

import numpy as np
import pytest

from keras_surgeon_rl import PassThrough, SurgeryError, register_rule, surgeon
from keras_surgeon_rl.spec import Spec

from conftest import mlp, randomize


@pytest.fixture
def model(K):
    return mlp(K, hidden=(8, 8))


@pytest.mark.parametrize(
    "spec, pattern",
    [
        ({"unit": {"h0": 4}}, r"unknown spec key 'unit'.*Did you mean 'units'"),
        ({"units": {"h9": 4}}, r"layer 'h9'.*Did you mean 'h[01]'"),
        ({"units": {"h0": 0}}, r"units\['h0'\]: 0 is not a unit count"),
        ({"units": {"h0": "wide"}}, r"units\['h0'\].*count or a list"),
        ({"units": {"h0": [1, 2, 1]}}, r"unit ID 1 appears twice"),
        ({"inputs": {"old": ["a", "b"], "new": ["a"]}}, r"inputs\['obs'\].old lists 2 IDs.*4 features"),
        ({"inputs": {"old": ["a", "b", "c", "a"]}}, r"unit ID 'a' appears twice"),
        ({"inputs": {"observation": {"new": [0, 1]}}}, r"'observation'.*not a model input.*Did you mean 'obs'"),
        ({"outputs": {"old": ["l", "r", "x"]}}, r"outputs\['q'\].old lists 3 IDs.*'q' has 2 units"),
        ({"outputs": {"new": [0, "x"], "init": "copy:zz"}}, r"copies 'zz'.*not an old unit"),
        ({"outputs": {"new": [0, 5], "init": "clone"}}, r"not a new-unit init"),
        ({"init": "keep"}, r"init: 'keep' is not an init mode.*preserve"),
        ({"insert": [{"after": "h7"}]}, r"layer 'h7'"),
        ({"insert": [{"after": "h0", "layer": "LSTM"}]}, r"cannot insert a 'LSTM'"),
        ({"insert": [{"after": "h0", "init": "top_right"}]}, r"init 'top_right' is not available for Dense"),
        ({"insert": [{"after": "h0", "name": "h1"}]}, r"name 'h1' is taken"),
        ({"delete": ["q"]}, r"delete 'q'.*outputs cannot be deleted"),
        ({"delete": ["obs"]}, r"delete 'obs'.*inputs"),
        ({"delete": ["h0"]}, r"delete 'h0'.*shape \(4,\) to \(8,\)"),
        ({"delete": ["h1"], "units": {"h1": 3}}, r"both resized.*and deleted"),
        ({"insert": [{"after": "h1"}], "delete": ["h1"]}, r"insert after 'h1'.*deleted"),
        ({"units": {"q": 3}, "outputs": {"new": [0, 1, 2]}}, r"both 'outputs'.*and 'units'"),
        (["units"], r"a spec is a dict"),
    ],
)
def test_bad_spec_is_refused_with_a_clear_message(model, spec, pattern):
    with pytest.raises(SurgeryError, match=pattern):
        surgeon.plan(model, spec)


def test_surgery_error_is_a_value_error():
    assert issubclass(SurgeryError, ValueError)


def test_changed_ids_into_a_layer_without_rule_are_refused_before_building(K):
    inp = K.Input((4,), name="obs")
    x = K.layers.Dense(6, name="h0")(inp)
    x = K.layers.RepeatVector(2, name="fold")(x)  # (Reshape has a rule now)
    x = K.layers.Flatten(name="flat")(x)
    out = K.layers.Dense(2, name="q")(x)
    model = K.Model(inp, out)
    # unchanged IDs through the RepeatVector: fine, copied as it is
    assert surgeon.verify(model, surgeon.transplant(model, {"inputs": {"new": [3, 2, 1, 0]}}),
                          {"inputs": {"new": [3, 2, 1, 0]}}) <= 1e-5
    with pytest.raises(SurgeryError, match=r"layer 'fold' \(RepeatVector\) has no surgery rule.*from 'h0'.*register_rule"):
        surgeon.plan(model, {"units": {"h0": 8}})


def test_multi_input_shorthand_is_refused(K):
    a, b = K.Input((2,), name="a"), K.Input((3,), name="b")
    out = K.layers.Dense(2, name="q")(K.layers.Concatenate(name="cat")([a, b]))
    model = K.Model([a, b], out)
    with pytest.raises(SurgeryError, match=r"2 inputs \(a, b\).*key the spec"):
        surgeon.plan(model, {"inputs": {"new": [0, 1, 2]}})


def test_registered_rule_teaches_a_custom_layer(K):
    class Scale(K.layers.Layer):
        def build(self, input_shape):
            self.scale = self.add_weight(name="scale", shape=(input_shape[-1],), initializer="ones")

        def call(self, x):
            return x * self.scale

    inp = K.Input((4,), name="obs")
    x = K.layers.Dense(6, activation="relu", name="h0")(inp)
    x = Scale(name="scale")(x)
    model = randomize(K.Model(inp, K.layers.Dense(2, name="q")(x)))
    spec = {"units": {"h0": 9}}
    with pytest.raises(SurgeryError, match="'scale' \\(Scale\\) has no surgery rule"):
        surgeon.plan(model, spec)
    register_rule(Scale, PassThrough(per_unit_weights={"scale": -1}))
    new = surgeon.transplant(model, spec)
    assert surgeon.verify(model, new, spec) <= 1e-5
    np.testing.assert_array_equal(new.get_layer("scale").get_weights()[0][:6], model.get_layer("scale").get_weights()[0])


def test_spec_parse_accepts_json_lists_as_tuple_ids():
    spec = Spec.parse({"inputs": {"old": [[0, "a"], [1, "a"]], "new": [[1, "a"]]}})
    assert spec.inputs[None].old == [(0, "a"), (1, "a")]


def test_non_keras_object_is_refused():
    with pytest.raises(SurgeryError, match="not a Keras model"):
        surgeon.plan(object(), {})
