"""Bad input of every kind is refused clearly, before anything is built, and the old model is untouched.

Each case gives a ``SurgeryError`` whose message matches a pattern naming the key, layer or file at
fault (and, where there is one, the fix). For spec and model cases, ``transplant`` raises the same
error with model building disabled (so the error comes from planning, before any layer exists), and
every weight of the old model is bit-identical afterwards.
"""

import json
import math
import shutil
import zipfile

import numpy as np
import pytest

from keras_surgeon_rl import SurgeryError, surgeon
from keras_surgeon_rl.adapters.base import KerasAdapter
from keras_surgeon_rl.io import load_model, save_model, sidecar
from keras_surgeon_rl.unit_ids import set_unit_ids

from conftest import FLAVOURS, randomize

NAN, INF = float("nan"), float("inf")


# Models ----------------------------------------------------------------------------------------
def mlp(K):
    inp = K.Input((4,), name="obs")
    x = K.layers.Dense(8, activation="relu", name="h0")(inp)
    x = K.layers.Dense(8, activation="relu", name="h1")(x)
    return K.Model(inp, K.layers.Dense(3, name="q")(x), name="mlp")


def no_bias(K):
    inp = K.Input((4,), name="obs")
    x = K.layers.Dense(8, activation="relu", name="h0")(inp)
    return K.Model(inp, K.layers.Dense(3, use_bias=False, name="q")(x), name="no_bias")


def cnn(K):
    inp = K.Input((10, 10, 4), name="frame")
    x = K.layers.Conv2D(16, 3, padding="same", activation="relu", name="conv")(inp)
    x = K.layers.Dropout(0.1, name="drop")(x)
    x = K.layers.Flatten(name="flat")(x)
    x = K.layers.Dense(32, activation="relu", name="fc")(x)
    return K.Model(inp, K.layers.Dense(3, name="q")(x), name="cnn")


def two_inputs(K):
    a, b = K.Input((2,), name="a"), K.Input((3,), name="b")
    x = K.layers.Concatenate(name="cat")([a, b])
    return K.Model([a, b], K.layers.Dense(2, name="q")(x), name="two")


MODELS = {"mlp": mlp, "no_bias": no_bias, "cnn": cnn, "two_inputs": two_inputs}

# (model, spec, pattern): the pattern names the key/layer at fault, and the fix where there is one.
SPECS = [
    # the spec's shape
    ("mlp", ["units"], r"a spec is a dict"),
    ("mlp", "units", r"a spec is a dict"),
    ("mlp", 42, r"a spec is a dict"),
    ("mlp", {"unit": {"h0": 4}}, r"unknown spec key 'unit'.*Did you mean 'units'"),
    ("mlp", {"Units": {"h0": 4}}, r"unknown spec key 'Units'.*Did you mean 'units'"),
    ("mlp", {1: {}}, r"unknown spec key 1"),
    ("mlp", {"init": "keep"}, r"init: 'keep' is not an init mode; use one of preserve, random, net2net"),
    ("mlp", {"init": None}, r"init: None is not an init mode"),
    ("mlp", {"init": ["preserve"]}, r"init: \['preserve'\] is not an init mode"),
    # inputs
    ("mlp", {"inputs": "x"}, r"inputs: expected \{input_name"),
    ("mlp", {"inputs": []}, r"inputs: expected \{input_name"),
    ("mlp", {"inputs": {"new": []}}, r"inputs.new: \[\] leaves no unit; keep at least one"),
    ("mlp", {"inputs": {"new": "abcd"}}, r"inputs.new: expected a list of unit IDs, got 'abcd'"),
    ("mlp", {"inputs": {"new": [NAN, 1]}}, r"inputs.new\[0\]: nan is not a finite number"),
    ("mlp", {"inputs": {"new": [INF]}}, r"inputs.new\[0\]: inf is not a finite number"),
    ("mlp", {"inputs": {"new": [0, -INF]}}, r"inputs.new\[1\]: -inf is not a finite number"),
    ("mlp", {"inputs": {"new": [None]}}, r"inputs.new\[0\]: None is not a unit ID"),
    ("mlp", {"inputs": {"new": [True, 1]}}, r"inputs.new\[0\]: True is not a unit ID"),
    ("mlp", {"inputs": {"new": [{"a": 1}]}}, r"inputs.new\[0\]: \{'a': 1\} is not a unit ID"),
    ("mlp", {"inputs": {"new": [{1, 2}]}}, r"inputs.new\[0\]: \{1, 2\} is not a unit ID"),
    ("mlp", {"inputs": {"new": np.arange(4)}}, r"inputs.new: expected a list of unit IDs"),
    ("mlp", {"inputs": {"new": [np.arange(2)]}}, r"inputs.new\[0\]: array\(\[0, 1\]\) is not a unit ID"),
    ("mlp", {"inputs": {"new": [1, 1]}}, r"inputs.new: unit ID 1 appears twice \(positions 0 and 1\)"),
    ("mlp", {"inputs": {"new": [1, 1.0]}}, r"inputs.new: unit ID 1.0 appears twice"),
    ("mlp", {"inputs": {"new": [[0, "a"], [0, "a"]]}}, r"inputs.new: unit ID \[0, 'a'\] appears twice"),
    ("mlp", {"inputs": {"old": ["a", "b"]}}, r"inputs\['obs'\].old lists 2 IDs.*4 features.*one ID per feature"),
    ("mlp", {"inputs": {"old": list("abcde")}}, r"inputs\['obs'\].old lists 5 IDs"),
    ("mlp", {"inputs": {"old": [], "new": [1]}}, r"inputs\['obs'\].old lists 0 IDs"),
    ("mlp", {"inputs": {"new": [1], "axis": True}}, r"inputs.axis: True is not an axis"),
    ("mlp", {"inputs": {"new": [1], "axis": "last"}}, r"inputs.axis: 'last' is not an axis"),
    ("mlp", {"inputs": {"new": [1], "axis": 1.5}}, r"inputs.axis: 1.5 is not an axis"),
    ("mlp", {"inputs": {"new": [1], "axis": 5}}, r"inputs\['obs'\].axis 5 is outside the input's shape"),
    ("mlp", {"inputs": {"new": [1], "axis": -3}}, r"inputs\['obs'\].axis -3 is outside"),
    ("mlp", {"inputs": {"new": [1], "init": "zeros"}}, r"inputs: unknown key 'init'; allowed: old, new, axis"),
    ("mlp", {"inputs": {"obs": {"new": [1], "bad": 2}}}, r"inputs\['obs'\]: unknown key 'bad'"),
    ("mlp", {"inputs": {"observation": {"new": [0, 1]}}}, r"'observation'.*not a model input.*Did you mean 'obs'"),
    ("mlp", {"inputs": {"obs": "x"}}, r"inputs\['obs'\]: expected \{'old'"),
    ("mlp", {"inputs": {"obs": None}}, r"inputs\['obs'\]: expected \{'old'"),
    ("two_inputs", {"inputs": {"new": [0, 1, 2]}}, r"2 inputs \(a, b\).*key the spec"),
    ("two_inputs", {"inputs": {"c": {"new": [0]}}}, r"'c'.*not a model input"),
    # outputs
    ("mlp", {"outputs": {"new": []}}, r"outputs.new: \[\] leaves no unit"),
    ("mlp", {"outputs": {"old": ["l", "r"]}}, r"outputs\['q'\].old lists 2 IDs, but layer 'q' has 3 units"),
    ("mlp", {"outputs": {"new": [0, "x"], "init": "copy:zz"}}, r"copies 'zz', which is not an old unit of 'q'"),
    ("mlp", {"outputs": {"new": [0, 5], "init": "clone"}}, r"outputs.init: 'clone' is not a new-unit init; use"),
    ("mlp", {"outputs": {"new": [0, 5], "init": "copy:"}}, r"outputs.init: 'copy:' is not a new-unit init"),
    ("mlp", {"outputs": {"new": [0, 5], "init": {"copy": 0, "bias_offset": NAN}}}, r"bias_offset: nan is not a finite"),
    ("mlp", {"outputs": {"new": [0, 5], "init": {"copy": 0, "bias_offset": INF}}}, r"bias_offset: inf is not a finite"),
    ("mlp", {"outputs": {"new": [0, 5], "init": {"copy": 0, "bias_offset": "x"}}}, r"bias_offset 'x' is not a finite"),
    ("mlp", {"outputs": {"new": [0, 5], "init": {"copy": 0, "bias_offset": None}}}, r"bias_offset None is not a"),
    ("mlp", {"outputs": {"new": [0, 5], "init": {"copy": 0, "extra": 1}}}, r"outputs.init: .* is not a new-unit init"),
    ("mlp", {"outputs": {"new": [0, 5], "init": {"keep_greedy": 0}}}, r"keep_greedy margin 0 is not a number of at least"),
    ("mlp", {"outputs": {"new": [0, 5], "init": {"keep_greedy": -1}}}, r"keep_greedy margin -1 is not"),
    ("mlp", {"outputs": {"new": [0, 5], "init": {"keep_greedy": NAN}}}, r"keep_greedy: nan is not a finite"),
    ("mlp", {"outputs": {"new": [0, 5], "init": {"keep_greedy": "big"}}}, r"keep_greedy margin 'big' is not"),
    ("mlp", {"outputs": {"new": [0, 5], "init": {"keep_greedy": None}}}, r"keep_greedy margin None is not"),
    ("mlp", {"outputs": {"new": [0, 5], "init": {"keep_greedy": 1e-9}}}, r"margin 1e-09 .*float32 rounding"),
    ("mlp", {"outputs": {"new": [0, 5], "init": {}}}, r"outputs.init: an init dict maps new unit IDs"),
    ("mlp", {"outputs": {"new": [0, 1, 2, 3], "init": {5: "zeros"}}}, r"init\[5\]: 5 is not a unit of 'q'.*new units: \[3\]"),
    ("mlp", {"outputs": {"new": [0, 1, 2, 3], "init": {0: "zeros"}}}, r"init\[0\]: 0 is a kept unit of 'q'.*new units only"),
    ("mlp", {"outputs": {"new": [0, 1, 2, 3], "init": {3: "clone"}}}, r"init\[3\]: 'clone' is not a new-unit init"),
    ("mlp", {"outputs": {"old": ["a", "b", "c"], "new": ["x", "y"], "init": "keep_greedy"}},
     r"keep_greedy for 'x' copies a kept unit.*keeps none"),
    ("mlp", {"outputs": {"new": ["left", "right", "up"]}}, r"outputs\['q'\].new keeps none of the units of layer 'q'.*Give 'old'"),
    ("mlp", {"inputs": {"new": ["x", "x_dot", "theta"]}}, r"inputs\['obs'\].new keeps none of the units.*0..3.*Give 'old'"),
    ("no_bias", {"outputs": {"new": [0, 1, 2, 3], "init": "keep_greedy"}}, r"'q'.*has no bias.*use 'zeros', 'random'"),
    ("no_bias", {"outputs": {"new": [0, 1, 2, 3], "init": {"copy": 0, "bias_offset": -1}}}, r"'q' has no bias"),
    ("mlp", {"outputs": {"qq": {"new": [0]}}}, r"'qq', which is not a model output.*Did you mean 'q'"),
    ("mlp", {"outputs": {"h0": {"new": [0]}}}, r"'h0', which is not a model output"),
    ("mlp", {"units": {"q": 3}, "outputs": {"new": [0, 1, 2]}}, r"both 'outputs'.*and 'units'"),
    # units
    ("mlp", {"units": {"h0": 0}}, r"units\['h0'\]: 0 is not a unit count; give a whole number from 1"),
    ("mlp", {"units": {"h0": -1}}, r"units\['h0'\]: -1 is not a unit count"),
    ("mlp", {"units": {"h0": 10 ** 12}}, r"units\['h0'\]: 1000000000000 is not a unit count"),
    ("mlp", {"units": {"h0": 2 ** 24 + 1}}, r"units\['h0'\]: 16777217 is not a unit count.*16,777,216"),
    ("mlp", {"units": {"h0": "wide"}}, r"units\['h0'\]: 'wide' is not a unit count or a list of unit IDs"),
    ("mlp", {"units": {"h0": 3.5}}, r"units\['h0'\]: 3.5 is not a unit count"),
    ("mlp", {"units": {"h0": True}}, r"units\['h0'\]: True is not a unit count"),
    ("mlp", {"units": {"h0": None}}, r"units\['h0'\]: None is not a unit count"),
    ("mlp", {"units": {"h0": []}}, r"units\['h0'\]: \[\] is not a unit count or a list.*'delete'"),
    ("mlp", {"units": {"h0": [1, 2, 1]}}, r"units\['h0'\]: unit ID 1 appears twice"),
    ("mlp", {"units": {"h0": [0, NAN]}}, r"units\['h0'\]\[1\]: nan is not a finite number"),
    ("mlp", {"units": {"h9": 4}}, r"layer 'h9'.*Did you mean 'h[01]'"),
    ("mlp", {"units": {"obs": 4}}, r"units\['obs'\].*no units of its own"),
    ("mlp", {"units": {1: 3}}, r"units: the name 1 is not a string"),
    ("mlp", {"units": "h0"}, r"units: expected \{layer_name"),
    ("cnn", {"units": {"flat": 3}}, r"units\['flat'\]: layer 'flat' \(Flatten\) has no units of its own"),
    ("cnn", {"units": {"drop": 3}}, r"units\['drop'\]: layer 'drop' \(Dropout\) has no units of its own"),
    ("cnn", {"units": {"fc": 2 ** 24}}, r"units\['fc'\]: 16,777,216 units would give layer 'fc'.*memory"),
    ("mlp", {"units": {"h0": ["x", "y"]}, "init": "net2net"}, r"units\['h0'\]: net2net.*no old unit is kept"),
    # insert
    ("mlp", {"insert": "h0"}, r"insert: expected a list of \{'after'"),
    ("mlp", {"insert": {"after": "h0"}}, r"insert: expected a list of \{'after'"),
    ("mlp", {"insert": [3]}, r"insert\[0\]: expected a dict with 'after'"),
    ("mlp", {"insert": [{}]}, r"insert\[0\]: expected a dict with 'after'"),
    ("mlp", {"insert": [{"after": ""}]}, r"insert\[0\].after: '' is not a layer name"),
    ("mlp", {"insert": [{"after": 3}]}, r"insert\[0\].after: 3 is not a layer name"),
    ("mlp", {"insert": [{"after": "h7"}]}, r"spec 'insert' names layer 'h7'.*Did you mean"),
    ("mlp", {"insert": [{"after": "h0", "layer": "LSTM"}]}, r"insert\[0\].layer: cannot insert a 'LSTM' layer"),
    ("mlp", {"insert": [{"after": "h0", "layer": ["Dense"]}]}, r"insert\[0\].layer: cannot insert a \['Dense'\]"),
    ("mlp", {"insert": [{"after": "h0", "layer": None}]}, r"insert\[0\].layer: cannot insert a None"),
    ("mlp", {"insert": [{"after": "h0", "layer": "dense"}]}, r"cannot insert a 'dense' layer.*Did you mean 'Dense'"),
    ("mlp", {"insert": [{"after": "h0", "init": "top_right"}]}, r"init 'top_right' is not available for Dense"),
    ("cnn", {"insert": [{"after": "conv", "layer": "Conv2D", "init": "bogus"}]}, r"insert\[0\].init: 'bogus' is not"),
    ("mlp", {"insert": [{"after": "h0", "units": -1}]}, r"insert\[0\].units: -1 is not a unit count"),
    ("mlp", {"insert": [{"after": "h0", "units": "x"}]}, r"insert\[0\].units: 'x' is not a unit count"),
    ("mlp", {"insert": [{"after": "h0", "units": 0}]}, r"insert\[0\].units: 0 is not a unit count"),
    ("mlp", {"insert": [{"after": "h0", "units": 10 ** 9}]}, r"insert\[0\].units: 1000000000 is not a unit count"),
    ("mlp", {"insert": [{"after": "h0", "name": ""}]}, r"insert\[0\].name: '' is not a layer name"),
    ("mlp", {"insert": [{"after": "h0", "name": 5}]}, r"insert\[0\].name: 5 is not a layer name"),
    ("mlp", {"insert": [{"after": "h0", "name": "h1"}]}, r"insert after 'h0': the name 'h1' is taken"),
    ("mlp", {"insert": [{"after": "h0", "name": "obs"}]}, r"the name 'obs' is taken"),
    ("mlp", {"insert": [{"after": "h0", "activation": 5}]}, r"insert\[0\].activation: 5 is not an activation"),
    ("mlp", {"insert": [{"after": "h0", "activation": "nope"}]}, r"insert after 'h0': cannot place a Dense"),
    ("mlp", {"insert": [{"after": "h0", "use_bias": "yes"}]}, r"insert\[0\].use_bias: 'yes' is not of type 'boolean'"),
    ("mlp", {"insert": [{"after": "h0", "foo": 1}]}, r"insert after 'h0': cannot place a Dense"),
    ("cnn", {"insert": [{"after": "conv", "layer": "Conv2D", "kernel_size": 0}]}, r"insert\[0\].kernel_size: 0 is not"),
    ("cnn", {"insert": [{"after": "conv", "layer": "Conv2D", "padding": "full"}]}, r"insert\[0\].padding: 'full'"),
    ("cnn", {"insert": [{"after": "conv", "layer": "Conv2D", "data_format": "nchw"}]}, r"insert\[0\].data_format"),
    ("mlp", {"insert": [{"after": "h0", "layer": "Conv2D"}]}, r"insert after 'h0': cannot place a Conv2D"),
    ("mlp", {"insert": [{"after": "h1"}], "delete": ["h1"]}, r"insert after 'h1'.*deleted"),
    # delete
    ("mlp", {"delete": "h0"}, r"delete: expected a list of layer names"),
    ("mlp", {"delete": ["q"]}, r"delete 'q'.*outputs cannot be deleted"),
    ("mlp", {"delete": ["obs"]}, r"delete 'obs'.*inputs"),
    ("mlp", {"delete": ["h0"]}, r"delete 'h0'.*shape \(4,\) to \(8,\).*resize"),
    ("mlp", {"delete": ["h1", "h1"]}, r"'h1' is listed twice"),
    ("mlp", {"delete": [3]}, r"delete\[0\]: 3 is not a layer name"),
    ("mlp", {"delete": [""]}, r"delete\[0\]: '' is not a layer name"),
    ("mlp", {"delete": ["h9"]}, r"spec 'delete' names layer 'h9'"),
    ("mlp", {"delete": ["h1"], "units": {"h1": 3}}, r"both resized.*and deleted"),
    ("two_inputs", {"delete": ["cat"]}, r"delete 'cat': it joins 2 inputs"),
]


@pytest.fixture(scope="module")
def models():
    """One randomized model per (flavour, kind), built once."""
    return {(f, kind): randomize(make(K), seed=3) for f, K in FLAVOURS.items() for kind, make in MODELS.items()}


def _weights(model):
    return [np.array(w, copy=True) for w in model.get_weights()]


def _assert_same(before, model):
    after = model.get_weights()
    assert len(before) == len(after)
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)


@pytest.fixture
def no_building(monkeypatch):
    """Fail the test if a surgery gets as far as building a model."""
    def build(self, graph):
        raise AssertionError("a model was built before the error")

    monkeypatch.setattr(KerasAdapter, "build", build)


@pytest.mark.parametrize("flavour", list(FLAVOURS))
@pytest.mark.parametrize("kind, spec, pattern", SPECS, ids=[f"{i}-{c[0]}" for i, c in enumerate(SPECS)])
def test_bad_spec_is_refused_before_building(models, no_building, flavour, kind, spec, pattern):
    model = models[(flavour, kind)]
    before = _weights(model)
    with pytest.raises(SurgeryError, match=pattern):
        surgeon.plan(model, spec)
    with pytest.raises(SurgeryError, match=pattern):
        surgeon.transplant(model, spec)
    _assert_same(before, model)


def test_the_suite_is_large():
    assert len(SPECS) >= 120


# Unsupported models ------------------------------------------------------------------------------
def test_dict_inputs_model_is_refused_or_exact(K):
    a, b = K.Input((2,), name="a"), K.Input((3,), name="b")
    out = K.layers.Dense(2, name="q")(K.layers.Concatenate(name="cat")([a, b]))
    model = randomize(K.Model({"a": a, "b": b}, out))
    before = _weights(model)
    try:
        new = surgeon.transplant(model, {"units": {"q": [1, 0]}})
    except SurgeryError as e:
        assert "input" in str(e)
    else:
        x = {"a": np.ones((2, 2), "float32"), "b": np.ones((2, 3), "float32")}
        np.testing.assert_allclose(new.predict(x, verbose=0), model.predict(x, verbose=0)[:, ::-1], atol=1e-5)
    _assert_same(before, model)


@pytest.mark.parametrize("thing, pattern", [
    (None, r"not a Keras model"), (object(), r"not a Keras model"), ("model.keras", r"not a Keras model"),
])
def test_non_models_are_refused(thing, pattern):
    with pytest.raises(SurgeryError, match=pattern):
        surgeon.plan(thing, {})


def test_a_layer_is_not_a_model(K):
    with pytest.raises(SurgeryError, match=r"Dense 'dense.*' is a layer, not a model; wrap it"):
        surgeon.plan(K.layers.Dense(3), {})


def test_subclassed_and_unbuilt_models_are_refused(K):
    class Net(K.Model):
        def __init__(self):
            super().__init__()
            self.d = K.layers.Dense(2)

        def call(self, x):
            return self.d(x)

    net = Net()
    net(np.zeros((1, 3), "float32"))
    with pytest.raises(SurgeryError, match=r"subclassed or unbuilt"):
        surgeon.plan(net, {})
    with pytest.raises(SurgeryError, match=r"(not built|subclassed or unbuilt)"):
        surgeon.plan(K.Sequential([K.layers.Dense(2)]), {})


# Carried unit IDs that do not fit ------------------------------------------------------------------
@pytest.mark.parametrize("inputs, layers, pattern", [
    (None, {"q": ["a", "b"]}, r"2 unit IDs are given for layer 'q', but it has 3 units.*set_unit_ids"),
    (None, {"nope": [0]}, r"layer 'nope', but the model has no layer of that name"),
    ({"obs": [0, 1]}, None, r"2 unit IDs are given for input 'obs'"),
    ({"other": [0, 1, 2, 3]}, None, r"input 'other', but the model's inputs are obs"),
])
def test_carried_ids_that_do_not_fit_are_refused(K, inputs, layers, pattern):
    model = mlp(K)
    set_unit_ids(model, inputs=inputs, layers=layers)
    with pytest.raises(SurgeryError, match=pattern):
        surgeon.plan(model, {"inputs": {"new": [0, 1, 2, 3, 4]}})


# Files -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A saved Keras 3 model with unit IDs, and a second model of the same sizes but other layer names."""
    import keras

    d = tmp_path_factory.mktemp("files")
    model = randomize(mlp(keras))
    set_unit_ids(model, inputs={"obs": ["x", "x_dot", "theta", "theta_dot"]}, layers={"q": ["l", "s", "r"]})
    save_model(model, d / "m.keras")
    inp = keras.Input((4,), name="obs")
    x = keras.layers.Dense(8, activation="relu", name="a0")(inp)
    x = keras.layers.Dense(8, activation="relu", name="a1")(x)
    twin = keras.Model(inp, keras.layers.Dense(3, name="q")(x))
    twin.save(d / "twin.keras")
    return d


def _corrupt(d, case):
    """A directory holding ``m.keras`` (and maybe its sidecar) broken as ``case`` says; returns the model path."""
    m, ids = d / "m.keras", sidecar(d / "m.keras")
    data = json.loads(ids.read_text())
    if case == "sidecar_not_json":
        ids.write_text("{not json")
    elif case == "sidecar_empty":
        ids.write_text("")
    elif case == "sidecar_a_list":
        ids.write_text("[]")
    elif case == "sidecar_inputs_a_list":
        data["inputs"] = ["x"]
        ids.write_text(json.dumps(data))
    elif case == "sidecar_layer_ids_a_string":
        data["layers"]["q"] = "lsr"
        ids.write_text(json.dumps(data))
    elif case == "sidecar_fingerprint_malformed":
        data["fingerprint"]["layers"][0] = "obs"
        ids.write_text(json.dumps(data))
    elif case == "sidecar_without_hash":
        del data["model_sha256"]
        ids.write_text(json.dumps(data))
    elif case == "sidecar_wrong_count":
        data["layers"]["q"] = ["l", "r"]
        ids.write_text(json.dumps(data))
    elif case == "sidecar_unknown_layer":
        data["layers"]["nope"] = [1]
        ids.write_text(json.dumps(data))
    elif case == "sidecar_nan_id":
        data["layers"]["q"] = ["l", NAN, "r"]
        ids.write_text(json.dumps(data))
    elif case == "sidecar_duplicate_ids":
        data["inputs"]["obs"] = ["x", "x", "t", "u"]
        ids.write_text(json.dumps(data))
    elif case == "sidecar_of_twin":
        shutil.copy(d / "twin.keras", m)  # same sizes, other layer names; sidecar stays
    elif case == "model_resaved_outside":
        import keras

        keras.saving.load_model(m).save(m)
    elif case == "sidecar_fingerprint_edited":
        data["fingerprint"]["layers"][1][0] = "renamed"
        ids.write_text(json.dumps(data))
    elif case == "legacy_sidecar_wrong_count":
        ids.write_text(json.dumps({"inputs": {"obs": ["x", "y"]}, "layers": {}}))
    elif case == "model_truncated":
        m.write_bytes(m.read_bytes()[:200])
    elif case == "model_empty":
        m.write_bytes(b"")
    elif case == "model_garbage":
        m.write_bytes(b"\x00garbage" * 100)
    elif case == "zip_without_metadata":
        with zipfile.ZipFile(m, "w") as z:
            z.writestr("hello.txt", "hi")
    elif case == "model_is_a_directory":
        m.unlink()
        m.mkdir()
    elif case == "model_missing":
        m.unlink()
    return m


FILE_CASES = {
    "sidecar_not_json": r"m.keras.ids.json: unreadable unit-ID file.*delete m.keras.ids.json to load m.keras",
    "sidecar_empty": r"m.keras.ids.json: unreadable unit-ID file",
    "sidecar_a_list": r"m.keras.ids.json: not a unit-ID file as save_model writes it",
    "sidecar_inputs_a_list": r"m.keras.ids.json: not a unit-ID file.*at inputs",
    "sidecar_layer_ids_a_string": r"m.keras.ids.json: not a unit-ID file.*at layers/q",
    "sidecar_fingerprint_malformed": r"m.keras.ids.json: not a unit-ID file.*at fingerprint/layers/0",
    "sidecar_without_hash": r"m.keras.ids.json: not a unit-ID file.*'model_sha256' is a required property",
    "sidecar_wrong_count": r"m.keras.ids.json: .*2 unit IDs are given for layer 'q', but it has 3 units",
    "sidecar_unknown_layer": r"m.keras.ids.json: .*layer 'nope'",
    "sidecar_nan_id": r"m.keras.ids.json: .*nan",
    "sidecar_duplicate_ids": r"m.keras.ids.json: .*'x' appears twice",
    "sidecar_of_twin": r"m.keras.ids.json: written for another version of m.keras",
    "model_resaved_outside": r"m.keras.ids.json: written for another version of m.keras.*check_ids=False",
    "sidecar_fingerprint_edited": r"m.keras.ids.json: describes another model",
    "legacy_sidecar_wrong_count": r"m.keras.ids.json: .*2 unit IDs are given for input 'obs'",
    "model_truncated": r"m.keras: (a zip file but not|neither a .keras archive)",
    "model_empty": r"m.keras: neither a .keras archive nor an HDF5",
    "model_garbage": r"m.keras: neither a .keras archive nor an HDF5",
    "zip_without_metadata": r"m.keras: a zip file but not a Keras .keras archive",
    "model_is_a_directory": r"m.keras: is a directory",
    "model_missing": r"m.keras: no such file",
}


@pytest.mark.parametrize("case", list(FILE_CASES))
def test_bad_model_files_are_refused_naming_the_file(saved, tmp_path, case):
    d = tmp_path / case
    shutil.copytree(saved, d)
    path = _corrupt(d, case)
    with pytest.raises(SurgeryError, match=FILE_CASES[case]):
        load_model(path)


@pytest.mark.parametrize("target, pattern", [
    ("missing_dir/m.keras", r"missing_dir' does not exist"),
    ("", r"save as .keras"),
    ("m.txt", r"save as .keras"),
    ("adir.keras", r"adir.keras: is a directory"),
])
def test_bad_save_targets_are_refused_and_leave_nothing(saved, tmp_path, target, pattern):
    import keras

    (tmp_path / "adir.keras").mkdir()
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(SurgeryError, match=pattern):
        save_model(load_model(saved / "m.keras"), tmp_path / target)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    del keras


def test_a_failed_save_leaves_the_previous_pair_loadable(saved, tmp_path):
    import keras

    shutil.copytree(saved, tmp_path / "d")
    path = tmp_path / "d" / "m.keras"
    before = path.read_bytes(), sidecar(path).read_bytes()

    class Unsaveable(keras.layers.Layer):  # a real layer whose config cannot be serialized
        def call(self, x):
            return x

        def get_config(self):
            raise RuntimeError("cannot serialize")

    inp = keras.Input((4,), name="obs")
    model = keras.Model(inp, Unsaveable(name="u")(inp))
    with pytest.raises(SurgeryError, match=r"m.keras: the model could not be saved"):
        save_model(model, path)
    assert (path.read_bytes(), sidecar(path).read_bytes()) == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.keras", "m.keras.ids.json", "twin.keras"]
    load_model(path)


def test_trusting_a_resaved_sidecar_is_explicit(saved, tmp_path):
    d = tmp_path / "d"
    shutil.copytree(saved, d)
    path = _corrupt(d, "model_resaved_outside")
    from keras_surgeon_rl import get_unit_ids

    assert get_unit_ids(load_model(path, check_ids=False))["layers"]["q"] == ["l", "s", "r"]


# verify ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("x, n, pattern", [
    (np.zeros((5, 3), "float32"), 256, r"verify x: input 'obs' has shape \(5, 3\).*\(n, 4\)"),
    (np.zeros((5,), "float32"), 256, r"verify x: input 'obs' has shape \(5,\)"),
    ([np.zeros((5, 4)), np.zeros((5, 4))], 256, r"verify x: expected 1 arrays, got 2"),
    ({"nope": np.zeros((5, 4))}, 256, r"verify x: no array for input 'obs'"),
    (np.array([["a"] * 4]), 256, r"verify x: input 'obs' is not numeric"),
    (np.full((2, 4), np.nan, "float32"), 256, r"verify x: input 'obs' holds NaN or infinite values"),
    (None, 0, r"verify n: 0 random samples; give at least 1"),
    (None, -3, r"verify n: -3 random samples"),
    (None, 2.5, r"verify n: 2.5 random samples"),
])
def test_verify_refuses_bad_inputs(K, x, n, pattern):
    model = randomize(mlp(K))
    spec = {"units": {"h0": 9}}
    new = surgeon.transplant(model, spec)
    with pytest.raises(SurgeryError, match=pattern):
        surgeon.verify(model, new, spec, x=x, n=n)


def test_nan_never_reaches_a_weight(K):
    """The nan/inf the schema refuses would otherwise have been written into biases."""
    model = randomize(mlp(K))
    new = surgeon.transplant(model, {"outputs": {"new": [0, 1, 2, 3], "init": {"keep_greedy": 2.5}}})
    assert all(np.isfinite(w).all() for w in new.get_weights())
    assert math.isclose(float(new.get_layer("q").get_weights()[1][3]),
                        float(model.get_layer("q").get_weights()[1][0]) - 2.5, rel_tol=1e-6)
