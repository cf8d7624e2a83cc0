"""Functional graphs with raw ``keras.ops`` calls (Keras 3): exact, or refused with a SurgeryError.

``h + x``, ``keras.ops.relu(h)``, ``x * 2.0`` are operations, not layers. Elementwise ones pass unit
IDs through; others are copied as they are while the IDs reaching them do not change. Whatever the
edit, the result is exact (compared on outputs) or a ``SurgeryError`` from planning, never another
exception type.
"""

import keras
import numpy as np
import pytest

from keras_surgeon_rl import SurgeryError, surgeon

from conftest import randomize

ops = keras.ops


def residual():
    inp = keras.Input((4,), name="obs")
    h = keras.layers.Dense(4, name="h")(inp)
    z = ops.relu(h + inp) * 2.0
    g = keras.layers.Dense(6, activation="relu", name="g")(ops.tanh(z) - 0.5)
    return keras.Model(inp, keras.layers.Dense(3, name="q")(g))


def gated():
    inp = keras.Input((4,), name="obs")
    a = keras.layers.Dense(5, name="a")(inp)
    b = keras.layers.Dense(5, name="b")(inp)
    g = ops.sigmoid(a) * b
    return keras.Model(inp, keras.layers.Dense(2, name="q")(ops.maximum(g, 0.0)))


def reduced():
    inp = keras.Input((4,), name="obs")
    h = keras.layers.Dense(6, activation="relu", name="h")(inp)
    m = ops.mean(h, axis=-1, keepdims=True)  # mixes units: no rule
    return keras.Model(inp, keras.layers.Dense(2, name="q")(ops.concatenate([h - m, m], axis=-1)))


MODELS = {"residual": residual, "gated": gated, "reduced": reduced}
EDITS = [
    {},
    {"outputs": {"new": [1, 0]}},
    {"units": {"g": 9}},
    {"units": {"h": 5}},
    {"inputs": {"new": [0, 1, 2, 3, 4]}},
    {"inputs": {"new": [0, 1, 2, 3, 4]}, "units": {"h": [0, 1, 2, 3, 4]}},
    {"units": {"a": 7, "b": 7}},
    {"units": {"a": 7}},
    {"units": {"a": [4, 3, 2, 1, 0], "b": [4, 3, 2, 1, 0]}},
    {"insert": [{"after": "g", "activation": "relu"}]},
    {"insert": [{"after": "h"}]},
]
# (model, edit index) that must be exact: the rest may be exact or refused.
MUST_WORK = {("residual", 0), ("residual", 1), ("residual", 2), ("residual", 5), ("residual", 9),
             ("gated", 0), ("gated", 6), ("gated", 8), ("reduced", 0), ("reduced", 1)}


@pytest.mark.parametrize("kind", list(MODELS))
@pytest.mark.parametrize("k", range(len(EDITS)))
def test_ops_graphs_are_exact_or_refused(kind, k):
    model = randomize(MODELS[kind](), seed=k)
    spec = EDITS[k]
    names = {layer.name for layer in model.layers}
    if any(n not in names for n in spec.get("units", {})) or any(i["after"] not in names for i in spec.get("insert", [])):
        pytest.skip("the edit names a layer this model does not have")
    before = [w.copy() for w in model.get_weights()]
    try:
        surgeon.plan(model, spec)
    except SurgeryError:
        assert (kind, k) not in MUST_WORK
        with pytest.raises(SurgeryError):
            surgeon.transplant(model, spec)
    else:
        new = surgeon.transplant(model, spec)
        assert surgeon.verify(model, new, spec) <= 1e-5
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_one_side_of_a_residual_changed_is_refused_naming_the_operation():
    with pytest.raises(SurgeryError, match=r"layer 'add\w*' \(Add\): its inputs must change the same way"):
        surgeon.plan(residual(), {"units": {"h": 5}})


def test_a_mixing_operation_on_a_changed_path_is_refused():
    with pytest.raises(SurgeryError, match=r"'mean\w*' \(Mean\) has no surgery rule.*register_rule"):
        surgeon.plan(reduced(), {"units": {"h": 7}})


def test_tensor_keyword_arguments_are_exact_or_refused():
    inp = keras.Input((4,), name="obs")
    h = keras.layers.Dense(4, name="h")(inp)
    out = ops.where(h > 0, x1=h, x2=inp)
    model = randomize(keras.Model(inp, keras.layers.Dense(2, name="q")(out)))
    for spec in ({}, {"outputs": {"new": [1, 0]}}, {"units": {"h": 5}}):
        try:
            new = surgeon.transplant(model, spec)
        except SurgeryError:
            continue
        assert surgeon.verify(model, new, spec) <= 1e-5


def test_branches_with_differently_named_ids_join_when_they_change_alike(K=keras):
    """NASNet adds a Concatenate's output (IDs (branch, id)) to a conv's (IDs 0..n-1): nothing changed,
    so the Add combines the same units as before; widening both the same way is exact too."""
    inp = K.Input((6, 6, 3), name="img")
    a = K.layers.Conv2D(2, 1, name="a")(inp)
    b = K.layers.Conv2D(2, 1, name="b")(inp)
    cat = K.layers.Concatenate(name="cat")([a, b])
    c = K.layers.Conv2D(4, 1, name="c")(inp)
    x = K.layers.Add(name="join")([cat, c])
    y = K.layers.GlobalAveragePooling2D(name="gap")(x)
    model = randomize(K.Model(inp, K.layers.Dense(2, name="q")(y)))
    for spec in ({}, {"inputs": {"new": [0, 1, 2, "depth"]}}, {"outputs": {"new": [1, 0]}}):
        assert surgeon.verify(model, surgeon.transplant(model, spec), spec) <= 1e-5
    with pytest.raises(SurgeryError, match=r"'join' \(Add\): its inputs must change the same way"):
        surgeon.plan(model, {"units": {"c": 5}})
