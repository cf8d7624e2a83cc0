"""Shared layers (one layer called several times) and nested models (a model used as a layer).

A shared layer has one set of weights, so the surgeon supports it when every call reads the same unit
IDs (then the layer gets one set of IDs) and refuses it clearly otherwise. A nested model is planned on
its own with the IDs its call reads; its layers keep their names (a spec names them as it names any
layer), and the new model nests a new model in the same place. Every surgery that preserves the
function is checked on outputs; removals against the old model with the removed units' outgoing
weights zeroed.
"""

import numpy as np
import pytest

from keras_surgeon_rl import SurgeryError, surgeon
from keras_surgeon_rl.io import load_model, save_model
from keras_surgeon_rl.unit_ids import get_unit_ids

from conftest import randomize

TOL = 1e-5


def siamese(K):
    """One encoder layer called on two observations, plus once more on the first."""
    a, b = K.Input((4,), name="a"), K.Input((4,), name="b")
    enc = K.layers.Dense(3, activation="tanh", name="enc")
    diff = K.layers.Subtract(name="diff")([enc(a), enc(b)])
    x = K.layers.Concatenate(name="cat")([diff, enc(a)])
    return randomize(K.Model([a, b], K.layers.Dense(2, name="q")(x), name="siamese"))


def tower_model(K, functional: bool = False):
    """A nested encoder model (Sequential, or Functional) called on two frames, then a head."""
    if functional:
        t_in = K.Input((4,), name="t_in")
        t = K.layers.Dense(6, activation="relu", name="t1")(t_in)
        tower = K.Model(t_in, K.layers.Dense(5, activation="relu", name="t2")(t), name="tower")
    else:
        tower = K.Sequential([K.Input((4,)), K.layers.Dense(6, activation="relu", name="t1"),
                              K.layers.Dense(5, activation="relu", name="t2")], name="tower")
    a, b = K.Input((4,), name="a"), K.Input((4,), name="b")
    x = K.layers.Concatenate(name="cat")([tower(a), tower(b)])
    return randomize(K.Model([a, b], K.layers.Dense(3, name="q")(x), name="two_towers"))


def nested_head(K):
    """obs → Dense → a nested Sequential (inner_fc, then the Q layer) that produces the output."""
    inner = K.Sequential([K.Input((8,)), K.layers.Dense(6, activation="relu", name="inner_fc"),
                          K.layers.Dense(3, name="inner_q")], name="inner")
    inp = K.Input((4,), name="obs")
    x = K.layers.Dense(8, activation="relu", name="h")(inp)
    return randomize(K.Model(inp, inner(x), name="outer"))


def two_levels(K):
    """A nested model inside a nested model."""
    deepest = K.Sequential([K.Input((5,)), K.layers.Dense(4, activation="relu", name="d1")], name="deepest")
    mid_in = K.Input((4,), name="mid_in")
    mid = K.Model(mid_in, deepest(K.layers.Dense(5, activation="relu", name="m1")(mid_in)), name="mid")
    inp = K.Input((4,), name="obs")
    return randomize(K.Model(inp, K.layers.Dense(2, name="q")(mid(inp)), name="top"))


def _exact(old, spec):
    new = surgeon.transplant(old, spec)
    assert surgeon.verify(old, new, spec) <= TOL, spec
    return new


# Shared layers -------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", [
    {},
    {"units": {"enc": 5}},
    {"inputs": {"a": {"new": [0, 1, 2, 3, 4]}, "b": {"new": [0, 1, 2, 3, 4]}}},
    {"inputs": {"a": {"new": [3, 2, 1, 0]}, "b": {"new": [3, 2, 1, 0]}}},
    {"units": {"enc": [2, 1, 0]}, "outputs": {"new": [0, 1, "jump"]}},
], ids=["empty", "widen", "input_feature", "permute_inputs", "permute_and_action"])
def test_shared_layer_takes_edits_that_every_call_sees_alike(K, spec):
    old = siamese(K)
    new = _exact(old, spec)
    assert len(new.get_layer("enc").weights) == 2  # still one layer, called three times


def test_shared_layer_narrowed_matches_old_model_with_removed_units_silenced(K):
    old = siamese(K)
    new = surgeon.transplant(old, {"units": {"enc": [0, 2]}})
    kernel, bias = old.get_layer("q").get_weights()
    kernel = kernel.copy()
    kernel[[1, 4]] = 0  # unit 1 of enc reaches q through diff (row 1) and through enc(a) (row 3 + 1)
    old.get_layer("q").set_weights([kernel, bias])
    assert surgeon.verify(old, new, {"units": {"enc": [0, 2]}}) <= TOL


def test_shared_layer_whose_calls_see_different_ids_is_refused(K):
    old = siamese(K)
    with pytest.raises(SurgeryError, match=r"'enc' \(Dense\) is shared.*'enc@1' reads 4 units.*first call reads 5 "
                                           r"units.*from 'a'.*every call alike"):
        surgeon.plan(old, {"inputs": {"a": {"new": [0, 1, 2, 3, 4]}}})


def test_layer_called_on_its_own_output(K):
    inp = K.Input((4,), name="obs")
    twice = K.layers.Dense(4, activation="tanh", name="twice")
    old = randomize(K.Model(inp, K.layers.Dense(2, name="q")(twice(twice(inp)))))
    _exact(old, {})
    _exact(old, {"outputs": {"new": [1, 0, 2]}})
    with pytest.raises(SurgeryError, match=r"'twice' \(Dense\) is shared.*'twice@1' reads 5 units.*4 units"):
        surgeon.plan(old, {"units": {"twice": 5}})


@pytest.mark.parametrize("spec, pattern", [
    ({"units": {"enc@1": 4}}, r"'enc@1', a later call of the shared layer 'enc'; name the layer itself"),
    ({"delete": ["enc"]}, r"delete 'enc': layer 'enc' is shared \(called 3 times"),
    ({"insert": [{"after": "enc"}]}, r"insert 'enc': layer 'enc' is shared"),
])
def test_shared_layer_edits_that_are_not_defined_are_refused(K, spec, pattern):
    with pytest.raises(SurgeryError, match=pattern):
        surgeon.plan(siamese(K), spec)


def test_shared_conv_encoder_takes_a_new_channel_on_both_frames(K):
    a, b = K.Input((6, 6, 2), name="now"), K.Input((6, 6, 2), name="before")
    conv = K.layers.Conv2D(4, 3, activation="relu", name="conv")
    x = K.layers.Concatenate(name="cat")([conv(a), conv(b)])
    old = randomize(K.Model([a, b], K.layers.Dense(2, name="q")(K.layers.Flatten(name="flat")(x))))
    new_ch = {"new": [0, 1, "depth"]}
    _exact(old, {"inputs": {"now": new_ch, "before": new_ch}, "units": {"conv": 6}})


# Nested models -------------------------------------------------------------------------------
@pytest.mark.parametrize("functional", [False, True], ids=["sequential", "functional"])
@pytest.mark.parametrize("spec", [
    {},
    {"units": {"t1": 9}},
    {"units": {"t2": [4, 3, 2, 1, 0, "new"]}},
    {"inputs": {"a": {"new": [0, 1, 2, 3, 4]}, "b": {"new": [0, 1, 2, 3, 4]}}},
    {"insert": [{"after": "t1"}]},
    {"outputs": {"new": [0, 1, 2, 3]}},
], ids=["empty", "widen_inner", "permute_inner", "input_feature", "insert_inner", "action"])
def test_nested_model_called_twice_takes_edits(K, functional, spec):
    old = tower_model(K, functional)
    new = _exact(old, spec)
    tower = new.get_layer("tower")
    assert isinstance(tower, K.Model)  # still nested, still one model called twice
    assert [layer.name for layer in tower.layers if layer.weights][:1] == ["t1"]


def test_nested_model_called_twice_on_different_ids_is_refused(K):
    with pytest.raises(SurgeryError, match=r"'tower' .* is shared.*'tower@1' reads 4 units.*from 'b'"):
        surgeon.plan(tower_model(K), {"inputs": {"a": {"new": [0, 1, 2, 3, 4]}}})


@pytest.mark.parametrize("spec", [
    {"units": {"h": 10}},
    {"units": {"inner_fc": 9}},
    {"outputs": {"new": [0, 1, 2, "fire"]}},
    {"outputs": {"old": ["left", "right", "noop"], "new": ["noop", "left", "right"]}},
    {"inputs": {"new": [0, 1, 2, 3, 4]}, "units": {"h": 9, "inner_fc": 7}},
    {"insert": [{"after": "inner_fc"}]},
], ids=["widen_outer", "widen_inner", "action", "permute_actions", "all", "insert_inner"])
def test_nested_model_producing_the_output(K, spec):
    old = nested_head(K)
    new = _exact(old, spec)
    assert isinstance(new.get_layer("inner"), K.Model)


def test_nested_model_report_names_inner_layers(K):
    p = surgeon.plan(nested_head(K), {"units": {"inner_fc": 9}})
    assert p.report.row("inner").status == "nested model, changed"
    row = p.report.row("inner/inner_fc")
    assert (row.status, row.new_shape) == ("changed", (9,))
    assert "inner/inner_fc" in str(p)


def test_models_nested_two_levels_deep(K):
    old = two_levels(K)
    for spec in ({}, {"units": {"d1": 7, "m1": 6}}, {"inputs": {"new": [0, 1, 2, 3, 4]}},
                 {"units": {"d1": [3, 2, 1, 0]}}):
        new = _exact(old, spec)
        assert isinstance(new.get_layer("mid").get_layer("deepest"), K.Model)


def test_deleting_a_layer_inside_a_nested_model(K):
    inner = K.Sequential([K.Input((4,)), K.layers.Dense(5, activation="relu", name="i1"),
                          K.layers.Dense(5, name="same"), K.layers.Dense(3, name="i3")], name="inner")
    inp = K.Input((4,), name="obs")
    old = randomize(K.Model(inp, K.layers.Dense(2, name="q")(inner(inp))))
    old.get_layer("inner").get_layer("same").set_weights([np.eye(5, dtype="float32"), np.zeros(5, "float32")])
    new = _exact(old, {"delete": ["same"]})  # an identity layer: deleting it keeps the function
    assert [layer.name for layer in new.get_layer("inner").layers] == ["i1", "i3"]
    with pytest.raises(SurgeryError, match=r"delete 'i1': it maps shape \(4,\) to \(5,\)"):
        surgeon.plan(old, {"delete": ["i1"]})


def test_nested_layer_ids_travel_with_the_model(K, tmp_path):
    old = nested_head(K)
    new = _exact(old, {"outputs": {"old": ["left", "right", "noop"], "new": ["left", "right", "noop", "fire"]}})
    assert get_unit_ids(new)["layers"]["inner_q"] == ["left", "right", "noop", "fire"]
    path = str(tmp_path / ("m.keras" if K.__name__ == "keras" else "m.h5"))
    save_model(new, path)
    loaded = load_model(path)
    spec = {"outputs": {"new": ["fire", "left", "right", "noop"]}}  # 'old' comes from the saved IDs
    assert surgeon.verify(loaded, surgeon.transplant(loaded, spec), spec) <= TOL


def test_a_name_used_inside_and_outside_a_nested_model_is_ambiguous(K):
    inner = K.Sequential([K.Input((4,)), K.layers.Dense(3, name="fc")], name="inner")
    inp = K.Input((4,), name="obs")
    old = K.Model(inp, K.layers.Dense(2, name="fc")(inner(inp)), name="collide")
    with pytest.raises(SurgeryError, match=r"'fc'.* 2 layers of that name \(fc, inner/fc\).*rename"):
        surgeon.plan(old, {"units": {"fc": 4}})
    _exact(old, {})  # names that no spec uses may repeat
