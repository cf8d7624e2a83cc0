"""Units on other axes than the last: channels-first inputs, normalizations on any axis, Reshape.

A model input's unit axis defaults to the one the layers reading it read (a channels-first
convolution: axis 1); a normalization follows the units on its own axis and copies its weights
when they change on another axis where that is exact; a Reshape keeps the units on an axis of their
own when it only adds or removes size-1 axes around them.
"""

import numpy as np
import pytest

from keras_surgeon_rl import SurgeryError, surgeon
from keras_surgeon_rl.weights import AxisMap, Copy

from conftest import randomize

TOL = 1e-5
CF = {"data_format": "channels_first"}


def _runs(model) -> bool:
    try:
        model.predict(np.zeros((1,) + tuple(model.inputs[0].shape[1:]), "float32"), verbose=0)
        return True
    except Exception:  # TensorFlow's CPU kernels: no NCHW convolution in some builds
        return False


def exact(K, old, spec):
    new = surgeon.transplant(old, spec)
    rows = new.surgery_report.rows
    assert all(min(r.stats.copied, r.stats.initialized, r.stats.dropped) >= 0 for r in rows)
    if not _runs(old):
        pytest.skip(f"{K.__name__} on this CPU cannot run the old channels-first model")
    assert surgeon.verify(old, new, spec, n=8) <= TOL
    return new


def chw_model(K, shape=(3, 8, 9)):
    """Channels-first image -> Conv2D -> BatchNorm(axis=1) -> pooling -> Dense, as in the issue."""
    L = K.layers
    inp = K.Input(shape, name="img")
    x = L.Conv2D(4, 3, activation="relu", name="c1", **CF)(inp)
    x = L.BatchNormalization(axis=1, name="bn")(x)
    x = L.GlobalAveragePooling2D(name="gap", **CF)(x)
    return randomize(K.Model(inp, L.Dense(2, name="q")(x), name="chw"))


# (1) Channels-first inputs ------------------------------------------------------------------------------
def test_empty_spec_on_a_channels_first_model_is_exact_and_counts_are_not_negative(K):
    old = chw_model(K)
    plan = surgeon.plan(old, {})
    assert plan.inputs["img"].axis == 0 and plan.inputs["img"].width == 3
    assert all(min(r.stats.copied, r.stats.initialized, r.stats.dropped) >= 0 for r in plan.report.rows)
    assert plan.report.totals.initialized == 0 and plan.report.totals.dropped == 0
    exact(K, old, {})


def test_a_channels_first_input_takes_a_new_channel_without_an_axis(K):
    old = chw_model(K)
    spec = {"inputs": {"old": ["r", "g", "b"], "new": ["b", "g", "r", "depth"]}}
    new = exact(K, old, spec)
    assert tuple(new.inputs[0].shape[1:]) == (4, 8, 9)


def test_readers_that_disagree_need_an_axis(K):
    L = K.layers
    inp = K.Input((3, 8, 8), name="img")
    a = L.GlobalAveragePooling2D(name="gap", **CF)(L.Conv2D(4, 3, name="c", **CF)(inp))
    b = L.Flatten(name="f")(L.Dense(2, name="d")(inp))  # reads the last axis (width)
    old = randomize(K.Model(inp, L.Dense(2, name="q")(L.Concatenate(name="cat")([a, b]))))
    with pytest.raises(SurgeryError, match=r"input 'img' .* read as units on different axes: 'c' \(Conv2D\) axis 1, "
                                           r"'d' \(Dense\) axis 3; say which axis"):
        surgeon.plan(old, {"inputs": {"new": [0, 1, 2, "x"]}})
    exact(K, old, {})  # nothing changes: no axis needed
    exact(K, old, {"units": {"d": [1, 0, "n"], "c": [3, 2, 1, 0]}})
    with pytest.raises(SurgeryError, match=r"'d' \(Dense\): Dense reads the last axis"):  # an axis: its readers decide
        surgeon.plan(old, {"inputs": {"new": [2, 1, 0], "axis": 1}})


def test_unchanged_branches_with_units_on_different_axes_join(K):
    L = K.layers
    inp = K.Input((3, 8, 8), name="img")  # read by Add (any axis) and a channels-first conv
    x = L.Add(name="add")([inp, L.Conv2D(3, 1, name="c", **CF)(inp)])
    x = L.Concatenate(axis=1, name="cat")([x, L.Conv2D(2, 1, name="c2", **CF)(x)])
    old = randomize(K.Model(inp, L.Dense(2, name="q")(L.Flatten(name="f")(x))))
    exact(K, old, {})
    exact(K, old, {"units": {"c2": [1, 0, "new"]}})


def test_a_permute_passes_the_question_on():
    import keras as K  # keras-rl2's Atari network: frames first, permuted to a channels-last conv

    inp = K.Input((4, 10, 10), name="frames")
    x = K.layers.Conv2D(3, 3, name="c")(K.layers.Permute((2, 3, 1), name="perm")(inp))
    old = randomize(K.Model(inp, K.layers.Dense(2, name="q")(K.layers.Flatten(name="f")(x))))
    assert surgeon.plan(old, {}).inputs["frames"].axis == 0
    exact(K, old, {"inputs": {"new": [4, 0, 1, 2, 3]}})


def test_counts_of_a_map_larger_than_its_array_are_not_negative():
    m = Copy("kernel", [None, None, AxisMap(np.arange(8)), None])
    copied, initialized, dropped = m.counts((3, 3, 3, 4), (3, 3, 8, 4))
    assert (copied, initialized, dropped) == (108, 180, 0)


# (2) Normalizations on any axis ---------------------------------------------------------------------
def _cf_conv_then(K, make):
    L = K.layers
    inp = K.Input((3, 6, 7), name="img")
    x = make(L, L.Conv2D(5, 3, padding="same", activation="relu", name="c", **CF)(inp))
    return randomize(K.Model(inp, L.Dense(2, name="q")(L.Flatten(name="f")(x))))


@pytest.mark.parametrize("make", [
    lambda L, x: L.BatchNormalization(axis=1, name="n")(x),
    lambda L, x: L.LayerNormalization(axis=-1, name="n")(x),   # over the width: each channel alone
    lambda L, x: L.LayerNormalization(axis=[2, 3], name="n")(x),
    lambda L, x: L.Softmax(axis=-1, name="n")(x),
], ids=["batchnorm_axis1", "layernorm_width", "layernorm_space", "softmax_width"])
def test_a_normalization_takes_new_and_reordered_channels_exactly(K, make):
    old = _cf_conv_then(K, make)
    exact(K, old, {"units": {"c": [4, 2, 0, 1, 3, "new"]}})


@pytest.mark.parametrize("make, pattern", [
    (lambda L, x: L.BatchNormalization(axis=-1, name="n")(x), r"'n' \(BatchNormalization\): it works on axis \[3\]"),
    (lambda L, x: L.LayerNormalization(axis=[1, 2], name="n")(x), r"'n' \(LayerNormalization\): it works on axes"),
], ids=["batchnorm_width", "layernorm_channels_and_rows"])
def test_a_normalization_that_would_mix_the_units_is_refused(K, make, pattern):
    old = _cf_conv_then(K, make)
    with pytest.raises(SurgeryError, match=pattern):
        surgeon.plan(old, {"units": {"c": [0, 1, 2]}})
    exact(K, old, {"outputs": {"new": [1, 0]}})


# (3) Reshape --------------------------------------------------------------------------------------
def squeeze_excite(K, fmt="channels_last"):
    """EfficientNet's squeeze-excitation block on a small image."""
    L, f = K.layers, {"data_format": fmt}
    inp = K.Input((3, 8, 8) if fmt == "channels_first" else (8, 8, 3), name="img")
    x = L.Conv2D(6, 3, padding="same", activation="relu", name="c", **f)(inp)
    s = L.GlobalAveragePooling2D(name="squeeze", **f)(x)
    s = L.Reshape((6, 1, 1) if fmt == "channels_first" else (1, 1, 6), name="se_reshape")(s)
    s = L.Conv2D(2, 1, activation="relu", name="se_reduce", **f)(s)
    s = L.Conv2D(6, 1, activation="sigmoid", name="se_expand", **f)(s)
    x = L.Multiply(name="excite")([x, s])
    x = L.GlobalAveragePooling2D(name="gap", **f)(x)
    return randomize(K.Model(inp, L.Dense(3, name="q")(x), name="se"))


@pytest.mark.parametrize("fmt", ["channels_last", "channels_first"])
def test_squeeze_excitation_takes_new_channels_and_resizes_the_reshape(K, fmt):
    old = squeeze_excite(K, fmt)
    units = [5, 0, 1, 2, 3, 4, "a", "b"]
    spec = {"units": {"c": units, "se_expand": units}}
    new = exact(K, old, spec)
    want = (8, 1, 1) if fmt == "channels_first" else (1, 1, 8)
    assert tuple(new.get_layer("se_reshape").target_shape) == want


def test_a_reshape_to_one_axis_flattens(K):
    L = K.layers
    inp = K.Input((4, 4, 2), name="img")
    x = L.Reshape((-1,), name="rs")(L.Conv2D(5, 3, padding="same", name="c")(inp))
    old = randomize(K.Model(inp, L.Dense(2, name="q")(x)))
    new = exact(K, old, {"units": {"c": [4, 3, "n", 2, 1, 0]}})
    assert new.get_layer("q").get_weights()[0].shape == (96, 2)


def test_a_reshape_that_mixes_the_units_is_copied_while_they_stay_and_refused_when_they_change(K):
    L = K.layers
    inp = K.Input((5,), name="x")
    x = L.Reshape((4, 4), name="rs")(L.Dense(16, name="h")(inp))  # each row mixes four of h's units
    old = randomize(K.Model(inp, L.Dense(2, name="q")(L.Flatten(name="f")(L.Dense(3, name="d")(x)))))
    exact(K, old, {"units": {"d": [2, "n", 1, 0]}, "inputs": {"new": [4, 3, 2, 1, 0, 5]}})
    with pytest.raises(SurgeryError, match=r"'rs' \(Reshape\): a reshape from \(16,\) to \(4, 4\): it mixes the "
                                           r"units' axis 1"):
        surgeon.plan(old, {"units": {"h": 15}})


def test_an_empty_spec_on_inputs_of_unknown_size_is_exact(K):
    L = K.layers
    tokens = K.Input((None,), name="tok", dtype="int32")  # any length: no fixed unit axis
    x = L.GlobalAveragePooling1D(name="gap")(L.Embedding(10, 4, name="emb")(tokens))
    seq = K.Input((None, 3), name="seq")
    y = L.GlobalMaxPooling1D(name="g")(L.Conv1D(4, 2, name="c")(seq))
    old = randomize(K.Model([tokens, seq], L.Dense(2, name="q")(L.Concatenate(name="cat")([x, y]))))
    rng = np.random.default_rng(0)
    xs = [rng.integers(0, 10, size=(4, 7)), rng.normal(size=(4, 7, 3))]
    new = surgeon.transplant(old, {})
    assert surgeon.verify(old, new, {}, x=xs) == 0
    assert surgeon.verify(new, surgeon.transplant(new, {}), {}, x=xs) == 0  # the IDs it carries fit it
    spec = {"inputs": {"seq": {"new": [2, 1, 0, "x"]}}}
    assert surgeon.verify(old, surgeon.transplant(old, spec), spec, x=xs) <= TOL
