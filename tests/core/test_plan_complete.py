"""Trust (#16): whatever ``transplant`` would refuse, ``plan`` refuses first, naming the layer.

Regression tests for cases that used to pass ``plan()`` and fail (or build something wrong) only once
a model was built, and a property test over random small models of many layer kinds with random
edits: either ``plan`` raises a ``SurgeryError`` (and the old model is untouched), or ``transplant``
succeeds, the new model runs, and for edits that preserve the function its outputs on the shared
units match the old model's.
"""

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_surgeon_rl import PassThrough, SurgeryError, register_rule, surgeon
from keras_surgeon_rl.ids import index_of

from conftest import FLAVOURS, randomize, weights_of

TOL = 1e-5


# Layers a user might write, one set per flavour ----------------------------------------------------
_USER: dict = {}


def user_layers(K):
    """User classes: one named ``Dense`` that is not Keras' Dense, a Dense subclass with an extra
    weight, a per-unit scale with a rule registered by class name, a layer without a rule, and a
    layer called on two tensors."""
    if K.__name__ in _USER:
        return _USER[K.__name__]

    class Dense(K.layers.Layer):  # not keras' Dense: a kernel named "w", no bias
        def __init__(self, units, **kwargs):
            super().__init__(**kwargs)
            self.units = units

        def build(self, input_shape):
            self.w = self.add_weight(shape=(input_shape[-1], self.units), name="w")

        def call(self, x):
            return x @ self.w

        def compute_output_shape(self, input_shape):
            return tuple(input_shape[:-1]) + (self.units,)

        def get_config(self):
            return {**super().get_config(), "units": self.units}

    class GatedDense(K.layers.Dense):  # a Dense with one more weight per unit
        def build(self, input_shape):
            super().build(input_shape)
            self.gate = self.add_weight(shape=(self.units,), name="gate", initializer="ones")

        def call(self, x):
            return super().call(x) * self.gate

    class PlanCompleteScale(K.layers.Layer):  # taught by a rule registered under its class name
        def build(self, input_shape):
            self.scale = self.add_weight(shape=(input_shape[-1],), name="scale", initializer="ones")

        def call(self, x):
            return x * self.scale

    class Shift(K.layers.Layer):  # no rule: copied as it is while its inputs do not change
        def call(self, x):
            return x + 1.0

    class Mix(K.layers.Layer):  # called as Mix()(a, b), taught (wrongly) with a rule for one input
        def call(self, a, b):
            return a + 2.0 * b

    register_rule("PlanCompleteScale", PassThrough(per_unit_weights={"scale": -1}))
    register_rule(Mix, PassThrough())
    _USER[K.__name__] = {"Dense": Dense, "GatedDense": GatedDense, "Scale": PlanCompleteScale, "Shift": Shift,
                         "Mix": Mix}
    return _USER[K.__name__]


def snapshot(model):
    return [w.tobytes() for w in weights_of(model)]


def refused(model, spec, pattern):
    """``plan`` refuses ``spec`` with a message matching ``pattern``; the model is untouched."""
    before = snapshot(model)
    with pytest.raises(SurgeryError, match=pattern):
        surgeon.plan(model, spec)
    with pytest.raises(SurgeryError, match=pattern):
        surgeon.transplant(model, spec)
    assert snapshot(model) == before


def exact(model, spec):
    new = surgeon.transplant(model, spec)
    assert surgeon.verify(model, new, spec, n=16) <= TOL
    return new


# (a) Known cases -----------------------------------------------------------------------------------
def test_user_class_named_dense_gets_no_builtin_rule(K):
    Dense = user_layers(K)["Dense"]
    inp = K.Input((4,), name="obs")
    model = randomize(K.Model(inp, K.layers.Dense(2, name="q")(Dense(6, name="mine")(inp))))
    message = r"layer 'mine' \(Dense\) is a class of its own .*not the framework's Dense.*register_rule\(Dense, "
    refused(model, {"units": {"mine": 8}}, message)
    refused(model, {"inputs": {"new": [0, 1, 2, 3, 4]}}, message)
    exact(model, {"units": {"q": [1, 0, "x"]}})  # untouched, it is copied as it is


@pytest.mark.parametrize("class_name", ["GatedDense", "Dense"])
def test_dense_subclass_is_refused_when_its_units_change(K, class_name):
    GatedDense = type(class_name, (user_layers(K)["GatedDense"],), {})
    inp = K.Input((4,), name="obs")
    model = randomize(K.Model(inp, K.layers.Dense(2, name="q")(GatedDense(6, name="gated")(inp))))
    message = rf"layer 'gated' \({class_name}\) is a subclass of \S*\.Dense without a rule.*register_rule\({class_name}"
    refused(model, {"units": {"gated": 8}}, message)
    refused(model, {"inputs": {"new": [0, 1, 2, 3, 4]}}, message)
    new = exact(model, {"outputs": {"new": [1, 0]}})
    np.testing.assert_array_equal(new.get_layer("gated").get_weights()[-1], model.get_layer("gated").get_weights()[-1])


def test_subclass_with_a_rule_of_its_own_works(K):
    from keras_surgeon_rl.rules import DenseRule

    class Wide(K.layers.Dense):
        pass

    register_rule(Wide, DenseRule())
    inp = K.Input((4,), name="obs")
    model = randomize(K.Model(inp, K.layers.Dense(2, name="q")(Wide(6, name="wide")(inp))))
    exact(model, {"units": {"wide": 9}, "inputs": {"new": [3, 2, 1, 0, "x"]}})


def test_string_registered_rule_still_teaches_a_custom_class(K):
    Scale = user_layers(K)["Scale"]
    inp = K.Input((4,), name="obs")
    x = Scale(name="scale")(K.layers.Dense(6, activation="relu", name="h")(inp))
    model = randomize(K.Model(inp, K.layers.Dense(2, name="q")(x)))
    exact(model, {"units": {"h": [5, 0, "new", 2, 1, 3, 4]}})


@pytest.mark.parametrize("mode", ["int8", "int4", "float8"])
def test_quantized_dense_is_refused_when_changed_and_copied_when_not(mode):
    inp = keras.Input((4,), name="obs")
    x = keras.layers.Dense(6, activation="relu", name="h")(inp)
    model = randomize(keras.Model(inp, keras.layers.Dense(3, name="q")(x)))
    model.get_layer("h").quantize(mode)
    refused(model, {"units": {"h": 8}}, rf"'h' \(Dense\).*quantized \({mode}")
    refused(model, {"inputs": {"new": [0, 1, 2, 3, 4]}}, rf"'h' \(Dense\).*quantized \({mode}")
    new = exact(model, {"units": {"q": [2, 0, 1, 5]}})
    copied = {v.name: np.asarray(v) for v in new.get_layer("h").weights}  # (in another order for float8)
    for v in model.get_layer("h").weights:
        np.testing.assert_array_equal(copied[v.name], np.asarray(v))


def test_lora_dense_is_resized_exactly():
    inp = keras.Input((4,), name="obs")
    x = keras.layers.Dense(6, activation="relu", lora_rank=2, name="h")(inp)
    model = randomize(keras.Model(inp, keras.layers.Dense(3, name="q")(x)))  # lora_kernel_b is non-zero now
    spec = {"inputs": {"new": [3, 0, "x", 1, 2]}, "units": {"h": [5, "n", 0, 1, 2, 3, 4]}}
    new = exact(model, spec)
    assert new.get_layer("h").lora_enabled and new.get_layer("h").lora_kernel_a.shape == (5, 2)
    exact(model, {**spec, "init": "net2net"})


@pytest.mark.parametrize("axis", [1, 2])
def test_batchnorm_on_another_axis_is_refused_when_changed_and_copied_when_not(K, axis):
    inp = K.Input((3, 4, 5), name="img")
    x = K.layers.Conv2D(6, 1, name="conv")(inp)
    x = K.layers.BatchNormalization(axis=axis, name="bn")(x)  # per row (and column), not per channel
    model = randomize(K.Model(inp, K.layers.Dense(2, name="q")(K.layers.Flatten(name="flat")(x))))
    refused(model, {"units": {"conv": 8}}, r"'bn' \(BatchNormalization\).*axis")
    exact(model, {"inputs": {"new": [4, "x", 3, 2, 1, 0]}, "outputs": {"new": [1, 0]}})


def test_batchnorm_over_time_copied_when_features_change_elsewhere(K):
    inp = K.Input((5, 3), name="seq")
    x = K.layers.BatchNormalization(axis=1, name="bn")(inp)  # gamma has 5 entries, one per time step
    x = K.layers.Dense(4, name="h")(x)
    model = randomize(K.Model(inp, K.layers.Dense(2, name="q")(K.layers.Flatten(name="flat")(x))))
    exact(model, {"units": {"h": [3, "n", 2, 1, 0]}})
    refused(model, {"inputs": {"new": [2, 1, 0]}}, r"'bn' \(BatchNormalization\).*axis")


def test_multi_head_attention_copied_when_untouched_refused_when_changed(K):
    q, v = K.Input((3, 4), name="query"), K.Input((5, 4), name="value")
    x = K.layers.MultiHeadAttention(2, 3, name="mha")(q, v)
    model = randomize(K.Model([q, v], K.layers.Dense(2, name="out")(K.layers.Flatten(name="flat")(x))))
    refused(model, {"inputs": {"value": {"new": [0, 1, 2, 3, 4]}}}, r"'mha' \(MultiHeadAttention\).*no surgery rule")
    exact(model, {"outputs": {"new": [1, "x", 0]}})
    inp = K.Input((3, 4), name="seq")
    x = K.layers.MultiHeadAttention(2, 3, name="self")(inp, inp)
    model = randomize(K.Model(inp, K.layers.Dense(2, name="out")(K.layers.Flatten(name="flat")(x))))
    exact(model, {"outputs": {"new": [1, "x", 0]}})
    refused(model, {"inputs": {"new": [3, 2, 1, 0]}}, r"'self' \(MultiHeadAttention\).*no surgery rule")


def test_layer_on_two_tensors_needs_a_rule_that_reads_two(K):
    Mix = user_layers(K)["Mix"]
    inp = K.Input((4,), name="obs")
    a, b = K.layers.Dense(3, name="a")(inp), K.layers.Dense(3, name="b")(inp)
    model = randomize(K.Model(inp, K.layers.Dense(2, name="q")(Mix(name="mix")(a, b))))
    exact(model, {"inputs": {"new": [3, 2, "x", 1, 0]}})  # rebuilt as called: Mix(a, b)
    refused(model, {"units": {"a": [2, 1, 0], "b": [2, 1, 0]}}, r"'mix' \(Mix\): it is called on 2 tensors")


def test_embedding_keeps_its_vocabulary_size(K):
    inp = K.Input((5,), dtype="int32", name="tokens")
    x = K.layers.Flatten(name="flat")(K.layers.Embedding(7, 3, name="embed")(inp))
    model = randomize(K.Model(inp, K.layers.Dense(2, name="q")(K.layers.Dense(4, name="h")(x))))
    new = surgeon.transplant(model, {"units": {"h": 6}})  # input_dim was dropped as if it were a shape
    assert new.get_layer("embed").get_config()["input_dim"] == 7
    tokens = np.arange(10).reshape(2, 5) % 7
    np.testing.assert_allclose(new(tokens), model(tokens), atol=TOL)
    refused(model, {"inputs": {"new": [4, 3, 2, 1, 0]}}, r"'embed' \(Embedding\) has no surgery rule")


def test_python_lambda_in_keras3_is_refused_before_building():
    inp = keras.Input((4,), name="obs")
    x = keras.layers.Lambda(lambda t: 2.0 * t, name="twice")(keras.layers.Dense(3, name="h")(inp))
    model = randomize(keras.Model(inp, keras.layers.Dense(2, name="q")(x)))
    refused(model, {"outputs": {"new": [1, 0]}}, r"'twice' \(Lambda\) cannot be rebuilt.*register_keras_serializable")


def test_registered_lambda_function_is_rebuilt(K):
    inp = K.Input((4,), name="obs")
    x = K.layers.Lambda(double, name="twice")(K.layers.Dense(3, name="h")(inp))
    model = randomize(K.Model(inp, K.layers.Dense(2, name="q")(x)))
    exact(model, {"outputs": {"new": [1, 0, "x"]}})


def test_unregistered_custom_activation_is_refused_before_building(K):
    def relu2(x):
        return K.activations.relu(x)

    inp = K.Input((4,), name="obs")
    model = randomize(K.Model(inp, K.layers.Dense(2, name="q")(K.layers.Dense(3, activation=relu2, name="h")(inp))))
    refused(model, {"outputs": {"new": [1, 0]}}, r"'h' \(Dense\) cannot be rebuilt from its config.*relu2")


def test_grouped_conv_filters_change_within_their_group(K):
    inp = K.Input((6, 4), name="seq")
    x = K.layers.Conv1D(4, 2, groups=2, name="grouped")(inp)
    model = randomize(K.Model(inp, K.layers.Dense(2, name="q")(K.layers.Flatten(name="flat")(x))))
    refused(model, {"units": {"grouped": 6}}, r"'grouped' \(Conv1D\): groups=2: filter 2 was in group 1.*"
                                              r"e\.g\. \[0, 1, 4, 2, 3, 5\]")  # a count appends: list the IDs
    exact(model, {"units": {"grouped": [1, 0, 4, 3, 2, 5]}})
    exact(model, {"outputs": {"new": [1, 0]}})


def test_dense_reading_another_axis_than_the_unit_ids_is_resized_exactly(K):
    inp = K.Input((2, 4, 4), name="chw")
    x = K.layers.Conv2D(3, 1, data_format="channels_first", name="conv")(inp)
    model = randomize(K.Model(inp, K.layers.Dense(2, name="q")(x)))  # q reads the width axis, the IDs are channels
    exact(model, {"outputs": {"new": [1, "x", 0]}})
    refused(model, {"units": {"conv": [2, 1, 0]}}, r"'q' \(Dense\): Dense reads the last axis")


# (b) Random models, random edits -----------------------------------------------------------------
#: Per-sample input shapes per kind of model: "tokens" is read by an Embedding, "chw" is
#: channels-first, "two" has two inputs (3 and 2 features) joined by a Concatenate.
SHAPES = {"flat": (4,), "seq": (5, 3), "img": (5, 5, 2), "chw": (2, 4, 4), "tokens": (5,), "two": (3,)}
#: The ops data of each rank (of the per-sample shape) can take; "chw" data has ops of its own.
OPS = {
    1: ["dense", "dense", "bn", "ln", "dropout", "relu", "prelu", "scale", "shift", "user_dense", "gated", "lora",
        "int8", "add", "concat", "reshape", "lambda", "lambda_fn", "softmax", "nested", "mix"],
    2: ["conv1d", "conv1d", "dwconv1d", "gconv1d", "dense", "bn", "ln", "pool1d", "pad1d", "mha", "gru",
        "time_dense", "flatten", "gap", "concat", "concat_time", "add", "dropout"],
    3: ["conv2d", "conv2d", "dwconv2d", "bn", "pool2d", "pad2d", "flatten", "gap", "dense"],
    "chw": ["conv2d_cf", "bn_cf", "pool2d_cf", "flatten", "flatten_cf", "gap_cf"],
}
KERAS3_ONLY = {"lora", "int8"}
MIXING = {"ln", "softmax", "time_dense"}  # changing the units reaching them changes every output
FLAT = {"flatten", "flatten_cf", "gap", "gap_cf", "reshape"}  # ops after which the data is flat


@keras.saving.register_keras_serializable(package="plan_complete")
def double(t):
    return 2.0 * t


@st.composite
def recipes(draw):
    """A small model as data: (flavour, kind, [(op, arg)], outputs of the head, second head?, Sequential?)."""
    flavour = draw(st.sampled_from(sorted(FLAVOURS)))
    kind = draw(st.sampled_from(sorted(SHAPES)))
    rank = "chw" if kind == "chw" else {"seq": 2, "tokens": 2, "img": 3}.get(kind, 1)
    ops = [("embedding", 3)] if kind == "tokens" else []
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from([o for o in OPS[rank] if flavour == "keras3" or o not in KERAS3_ONLY]))
        arg = draw(st.sampled_from([1, -1] if op == "bn" and rank != 1 else [2, 3, 4]))
        ops.append((op, arg))
        rank = 1 if op in FLAT else rank
    return flavour, kind, ops, draw(st.integers(1, 3)), draw(st.booleans()), draw(st.booleans())


def _layer(K, op, arg, name, rank):
    """One layer for ``op``, or a small block of layers as a function of its input."""
    L, user = K.layers, user_layers(K)
    cf = {"data_format": "channels_first"}
    make = {
        "dense": lambda: L.Dense(arg, activation="relu", name=name),
        "lora": lambda: L.Dense(arg, activation="tanh", lora_rank=2, name=name),
        "int8": lambda: L.Dense(arg, activation="relu", name=name),
        "user_dense": lambda: user["Dense"](arg, name=name),
        "gated": lambda: user["GatedDense"](arg, name=name),
        "conv1d": lambda: L.Conv1D(arg, 2, padding="same" if arg % 2 else "valid", activation="relu", name=name),
        "conv2d": lambda: L.Conv2D(arg, 2, padding="same" if arg % 2 else "valid", activation="relu", name=name),
        "conv2d_cf": lambda: L.Conv2D(arg, 2, padding="same", activation="relu", name=name, **cf),
        "dwconv1d": lambda: L.DepthwiseConv1D(2, depth_multiplier=arg % 2 + 1, padding="same", name=name),
        "dwconv2d": lambda: L.DepthwiseConv2D(2, depth_multiplier=arg % 2 + 1, padding="same", name=name),
        "bn": lambda: L.BatchNormalization(axis=arg if rank != 1 else -1, name=name),
        "bn_cf": lambda: L.BatchNormalization(axis=1, name=name),
        "ln": lambda: L.LayerNormalization(name=name),
        "dropout": lambda: L.Dropout(0.3, name=name),
        "relu": lambda: L.ReLU(name=name),
        "prelu": lambda: L.PReLU(name=name),
        "softmax": lambda: L.Softmax(name=name),
        "scale": lambda: user["Scale"](name=name),
        "shift": lambda: user["Shift"](name=name),
        "lambda": lambda: L.Lambda(lambda t: 2.0 * t, name=name),
        "lambda_fn": lambda: L.Lambda(double, name=name),
        "nested": lambda: K.Sequential([L.Dense(arg, name=f"{name}_inner")], name=name),
        "gru": lambda: L.GRU(arg, return_sequences=True, name=name),
        "time_dense": lambda: L.TimeDistributed(L.Dense(arg), name=name),
        "pool1d": lambda: L.MaxPooling1D(2, padding="same", name=name),
        "pool2d": lambda: L.AveragePooling2D(2, padding="same", name=name),
        "pool2d_cf": lambda: L.MaxPooling2D(2, padding="same", name=name, **cf),
        "pad1d": lambda: L.ZeroPadding1D(1, name=name),
        "pad2d": lambda: L.ZeroPadding2D(1, name=name),
        "flatten": lambda: L.Flatten(name=name),
        "flatten_cf": lambda: L.Flatten(name=name, **cf),
        "gap": lambda: (L.GlobalAveragePooling1D if rank == 2 else L.GlobalAveragePooling2D)(name=name),
        "gap_cf": lambda: L.GlobalAveragePooling2D(name=name, **cf),
        "reshape": lambda: L.Reshape((-1,), name=name),
        "embedding": lambda: L.Embedding(7, arg, name=name),
    }
    if op in make:
        return make[op]()
    if op == "mix":
        return lambda x: user["Mix"](name=name)(x, L.Dense(x.shape[-1], name=f"{name}_b")(x))
    if op == "mha":
        return lambda x: L.MultiHeadAttention(2, 2, name=name)(x, x)
    if op == "gconv1d":
        return lambda x: L.Conv1D(2 * arg, 2, groups=2, name=name)(L.Conv1D(4, 1, name=f"{name}_pre")(x))
    if op == "add":
        return lambda x: L.Add(name=name)([L.Dense(arg, name=f"{name}_a")(x), L.Dense(arg, name=f"{name}_b")(x)])
    if op == "concat":
        return lambda x: L.Concatenate(name=name)([x, L.Dense(arg, name=f"{name}_b")(x)])
    if op == "concat_time":  # along time, not along the units
        return lambda x: L.Concatenate(axis=1, name=name)([x, L.Conv1D(x.shape[-1], 1, name=f"{name}_b")(x)])
    raise AssertionError(op)


def build(recipe):
    flavour, kind, ops, n_out, two_heads, sequential = recipe
    K = FLAVOURS[flavour]
    if kind == "two":
        ins = [K.Input((3,), name="a"), K.Input((2,), name="b")]
        x = K.layers.Concatenate(name="join")(ins)
    else:
        ins = [K.Input(SHAPES[kind], name="x", dtype="int32" if kind == "tokens" else "float32")]
        x = ins[0]
    layers, rank = [], "chw" if kind == "chw" else len(SHAPES[kind]) + (kind == "tokens")
    for i, (op, arg) in enumerate(ops):
        layers.append(_layer(K, op, arg, f"{op}{i}", rank))
        x = layers[-1](x)
        rank = 1 if op in FLAT else rank
    layers.append(K.layers.Dense(n_out, name="q"))
    outs = [layers[-1](x)] + ([K.layers.Dense(2, name="q2")(x)] if two_heads else [])
    if sequential and len(ins) == len(outs) == 1 and all(isinstance(layer, K.layers.Layer) for layer in layers):
        model = K.Sequential(ins + layers, name="random")
    else:
        model = K.Model(ins if len(ins) > 1 else ins[0], outs if len(outs) > 1 else outs[0], name="random")
    randomize(model)
    for op, name in ((op, f"{op}{i}") for i, (op, _) in enumerate(ops)):
        if op == "int8":
            model.get_layer(name).quantize("int8")
    return model


def _name(tensor) -> str:
    return tensor._keras_history[0].name


def _ids(draw, old, prefix, keep_all=False, keep_one=False):
    """New IDs for units ``old``: a permutation of the kept IDs (all, or some) and some new ones."""
    kept = old if keep_all else draw(st.lists(st.sampled_from(old), unique=True, max_size=len(old),
                                             min_size=1 if keep_one else 0))
    new = list(draw(st.permutations(list(kept) + [f"{prefix}{k}" for k in range(draw(st.integers(0, 2)))])))
    return new or [f"{prefix}0"]


@st.composite
def specs(draw, model):
    """A random spec for ``model``, and whether it preserves the function on the shared units."""
    layers = [layer for layer in model.layers if type(layer).__name__ != "InputLayer"]
    names = [layer.name for layer in layers]
    spec, lossless = {}, True
    for edit in draw(st.lists(st.sampled_from(["inputs", "units", "outputs", "insert", "delete"]),
                              min_size=1, max_size=2, unique=True)):
        keep = draw(st.booleans())  # keep every old unit (the function is preserved) or not
        if edit == "inputs":
            tensor = draw(st.sampled_from(model.inputs))
            axis = 1 if tuple(tensor.shape[1:]) == SHAPES["chw"] else -1
            spec["inputs"] = {_name(tensor): {"new": _ids(draw, list(range(int(tensor.shape[axis]))), "i", keep,
                                                          keep_one=True), "axis": axis}}
            lossless &= keep
        elif edit == "units":
            owners = [layer for layer in layers if {"units", "filters"} & set(layer.get_config())]
            layer = draw(st.sampled_from(owners if owners and draw(st.integers(0, 5)) else layers))
            width = layer.get_config().get("units", layer.get_config().get("filters", 2))
            if draw(st.booleans()):
                value = draw(st.integers(width if keep else 1, width + 3))
            else:
                value = _ids(draw, list(range(width)), "u", keep, keep_one=True)
            spec["units"] = {layer.name: value}
            lossless &= keep
        elif edit == "outputs":
            tensor = draw(st.sampled_from(model.outputs))
            spec["outputs"] = {_name(tensor): {
                "new": _ids(draw, list(range(int(tensor.shape[-1]))), "o", keep, keep_one=True),
                "init": draw(st.sampled_from(["random", "zeros", "copy:0", "keep_greedy"]))}}
        elif edit == "insert":
            after = draw(st.sampled_from(names))
            rank = len(model.get_layer(after).output.shape) - 1
            layer = draw(st.sampled_from(["Dense", "Conv1D", "Conv2D"][:rank]))
            init = draw(st.sampled_from(["identity", "random"] + (["top_right"] if layer != "Dense" else [])))
            activation = draw(st.sampled_from(["linear", "relu"]))
            entry = {"after": after, "layer": layer, "init": init, "activation": activation}
            if not keep:
                entry["units" if layer == "Dense" else "filters"] = draw(st.integers(1, 3))
            spec["insert"] = [entry]
            lossless &= keep and init == "identity" and activation == "linear"
        else:  # mostly a layer that can be deleted
            inner = [n for n in names if n not in ("q", "q2") and n not in str(spec.get("insert"))]
            spec["delete"] = [draw(st.sampled_from(inner if inner and draw(st.integers(0, 5)) else names))]
            lossless = False
    init = draw(st.sampled_from(["preserve", "preserve", "net2net", "random"]))
    if init != "preserve":
        spec["init"] = init
    lossless &= init != "random" and not any(layer.name.startswith(tuple(MIXING)) for layer in layers)
    return spec, lossless


def _call(model, xs):
    out = model(xs if len(xs) > 1 else xs[0], training=False)
    return [np.asarray(o) for o in (out if isinstance(out, (list, tuple)) else [out])]


def _shared_outputs(model, new, p, rng):
    """Old and new outputs on the units both have (inputs matched by ID, new features random)."""
    xs, new_xs = [], []
    for name, tensor in zip(p.old.inputs, model.inputs):
        t = p.inputs[name]
        shape = (3,) + tuple(p.old.nodes[name].output_shape)
        if "int" in str(tensor.dtype):
            x = rng.integers(0, 7, shape).astype("int32")
            xn = rng.integers(0, 7, (3,) + t.shape).astype("int32")
        else:
            x = rng.standard_normal(shape).astype("float32")
            xn = rng.standard_normal((3,) + t.shape).astype("float32")
        idx = index_of(t.old_ids, t.ids)
        have = np.flatnonzero(idx >= 0)
        dst = [slice(None)] * xn.ndim
        dst[t.axis + 1] = have
        xn[tuple(dst)] = np.take(x, idx[have], axis=t.axis + 1)
        xs.append(x)
        new_xs.append(xn)
    pairs = []
    for t, yo, yn in zip(p.outputs, _call(model, xs), _call(new, new_xs)):
        assert yn.shape[1:] == tuple(t.shape), f"new output shape {yn.shape[1:]}, plan says {t.shape}"
        assert np.all(np.isfinite(yn))
        idx = index_of(t.old_ids, t.ids)
        have = np.flatnonzero(idx >= 0)
        pairs.append((np.take(yo, idx[have], axis=t.axis + 1), np.take(yn, have, axis=t.axis + 1)))
    return pairs


@settings(max_examples=5 * settings.default.max_examples)  # 150 derandomized cases on TensorFlow, ~20 s
@given(recipes(), st.data())
def test_plan_refuses_whatever_transplant_would_refuse(recipe, data):
    model = build(recipe)
    spec, lossless = data.draw(specs(model), label="spec")
    before = snapshot(model)
    try:
        p = surgeon.plan(model, spec)
    except SurgeryError:
        assert snapshot(model) == before
        return
    new = surgeon.transplant(model, spec)  # plan accepted it: anything raised here is a bug
    assert snapshot(model) == before
    for old_out, new_out in _shared_outputs(model, new, p, np.random.default_rng(0)):
        if lossless:
            np.testing.assert_allclose(new_out, old_out, atol=TOL, rtol=0)
