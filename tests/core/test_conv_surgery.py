"""Convolutional surgery: channels and filters by ID through CNN graphs, outputs compared."""

import numpy as np
import pytest

from keras_surgeon_rl import SurgeryError, surgeon

from conftest import randomize

TOL = 1e-5


def mnist_cnn(K, n_out=4):
    """The experiment's CNN: Conv32 → Conv16 → MaxPool → Flatten → Dense100 → Dense."""
    return randomize(K.Sequential([
        K.Input((28, 28, 1), name="image"),
        K.layers.Conv2D(32, 3, activation="relu", name="conv1"),
        K.layers.Conv2D(16, 3, activation="relu", name="conv2"),
        K.layers.MaxPooling2D(2, name="pool"),
        K.layers.Flatten(name="flat"),
        K.layers.Dense(100, activation="relu", name="fc"),
        K.layers.Dense(n_out, name="digits"),
    ], name="mnist_cnn"), seed=1)


def nature_dqn(K, n_actions=4):
    inp = K.Input((84, 84, 4), name="frames")
    x = K.layers.Conv2D(32, 8, strides=4, activation="relu", name="c1")(inp)
    x = K.layers.Conv2D(64, 4, strides=2, activation="relu", name="c2")(x)
    x = K.layers.Conv2D(64, 3, strides=1, activation="relu", name="c3")(x)
    x = K.layers.Flatten(name="flat")(x)
    x = K.layers.Dense(512, activation="relu", name="fc")(x)
    return randomize(K.Model(inp, K.layers.Dense(n_actions, name="q")(x), name="nature_dqn"), seed=2)


def scale_inputs(K, model, x):
    return x


def zero_filters(model, consumer, filters, axis=-2):
    """A copy whose ``consumer`` kernel ignores the given input channels/rows."""
    clone = type(model).from_config(model.get_config())
    clone.set_weights(model.get_weights())
    w = clone.get_layer(consumer).get_weights()
    index = [slice(None)] * w[0].ndim
    index[axis] = filters
    w[0][tuple(index)] = 0
    clone.get_layer(consumer).set_weights(w)
    return clone


def test_mnist_cnn_add_filters_and_outputs(K):
    old = mnist_cnn(K)
    spec = {"units": {"conv1": 40, "conv2": 20, "fc": 120},
            "outputs": {"old": [0, 1, 2, 3], "new": [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]}}
    new = surgeon.transplant(old, spec)
    assert new.get_layer("flat").output.shape[-1] == 12 * 12 * 20
    assert surgeon.verify(old, new, spec, n=32) <= TOL


def test_mnist_cnn_remove_filters_through_flatten_equals_zeroed_old(K):
    old = mnist_cnn(K)
    keep = [f for f in range(16) if f % 3]
    spec = {"units": {"conv2": keep}}
    new = surgeon.transplant(old, spec)
    assert new.get_layer("fc").get_weights()[0].shape == (12 * 12 * len(keep), 100)
    # zero the fc rows that read the removed filters: Flatten order is (row, col, channel)
    removed = [f for f in range(16) if f not in keep]
    rows = [p * 16 + f for p in range(144) for f in removed]
    reference = zero_filters(old, "fc", rows, axis=0)
    assert surgeon.verify(reference, new, spec, n=32) <= TOL
    assert surgeon.verify(old, new, spec, n=32) > 1e-4


def test_mnist_cnn_permute_filters(K):
    old = mnist_cnn(K)
    spec = {"units": {"conv1": list(range(31, -1, -1)), "conv2": [5, 3, 1] + [f for f in range(16) if f not in (5, 3, 1)]}}
    assert surgeon.verify(old, surgeon.transplant(old, spec), spec, n=32) <= TOL


def test_image_input_channels_by_id(K):
    inp = K.Input((16, 16, 3), name="rgb")
    x = K.layers.Conv2D(8, 3, activation="relu", name="c1")(inp)
    x = K.layers.GlobalAveragePooling2D(name="gap")(x)
    old = randomize(K.Model(inp, K.layers.Dense(2, name="q")(x)))
    spec = {"inputs": {"old": ["r", "g", "b"], "new": ["b", "depth", "r", "g"]}}
    new = surgeon.transplant(old, spec)
    assert new.inputs[0].shape[-1] == 4
    assert surgeon.verify(old, new, spec) <= TOL


def test_nature_dqn_edits(K):
    old = nature_dqn(K)
    spec = {"inputs": {"old": ["f0", "f1", "f2", "f3"], "new": ["f0", "f1", "f2", "f3", "f4"]},
            "units": {"c1": 40, "c3": list(range(63, -1, -1)) + ["x"], "fc": 600},
            "outputs": {"old": ["noop", "fire", "left", "right"], "new": ["noop", "fire", "left", "right", "down"]}}
    new = surgeon.transplant(old, spec)
    assert surgeon.verify(old, new, spec, n=8) <= TOL


def test_two_tower_concatenate_keeps_branches_apart(K):
    """Both branches name their units 0..n-1; a change to one must not touch the other's rows."""
    inp = K.Input((12, 12, 2), name="img")
    a = K.layers.Conv2D(4, 3, activation="relu", name="a")(inp)
    b = K.layers.Conv2D(4, 3, activation="relu", name="b")(inp)
    x = K.layers.Concatenate(name="cat")([a, b])
    x = K.layers.BatchNormalization(name="bn")(x)
    x = K.layers.Conv2D(6, 1, name="mix")(x)
    x = K.layers.Flatten(name="flat")(x)
    old = randomize(K.Model(inp, K.layers.Dense(3, name="q")(x)))
    spec = {"units": {"a": [3, 2, 1, 0, "n"], "b": [0, 2, 3]}}
    new = surgeon.transplant(old, spec)
    assert new.get_layer("mix").get_weights()[0].shape == (1, 1, 8, 6)
    ref = zero_filters(old, "mix", [4 + 1])  # b's filter 1 removed
    # BatchNorm shifts removed channels by its beta: zero that path too
    ws = ref.get_layer("bn").get_weights()
    ws[0][5] = 0
    ws[1][5] = 0
    ref.get_layer("bn").set_weights(ws)
    assert surgeon.verify(ref, new, spec, n=16) <= TOL


def residual(K):
    inp = K.Input((10, 10, 8), name="x")
    y = K.layers.Conv2D(8, 3, padding="same", name="conv_a")(inp)
    y = K.layers.BatchNormalization(name="bn_a")(y)
    y = K.layers.ReLU(name="relu_a")(y)
    y = K.layers.Conv2D(8, 3, padding="same", name="conv_b")(y)
    y = K.layers.BatchNormalization(name="bn_b")(y)
    skip = K.layers.Conv2D(8, 1, name="proj")(inp)
    z = K.layers.Add(name="add")([y, skip])
    z = K.layers.ReLU(name="relu_out")(z)
    z = K.layers.GlobalAveragePooling2D(name="gap")(z)
    return randomize(K.Model(inp, K.layers.Dense(3, name="q")(z), name="resblock"))


def test_residual_block_widen_inner_and_both_branches(K):
    old = residual(K)
    spec = {"units": {"conv_a": 12, "conv_b": 10, "proj": 10}}
    new = surgeon.transplant(old, spec)
    assert surgeon.verify(old, new, spec, n=16) <= TOL


def test_residual_add_with_mismatched_branches_names_both(K):
    old = residual(K)
    with pytest.raises(SurgeryError, match=r"'add' \(Add\).*branch 0 \(from 'bn_b'\).*branch 1 \(from 'proj'\)"):
        surgeon.plan(old, {"units": {"conv_b": 10}})


def test_multi_input_image_and_vector(K):
    img = K.Input((8, 8, 3), name="image")
    vec = K.Input((2,), name="state")
    a = K.layers.Conv2D(4, 3, activation="relu", name="conv")(img)
    a = K.layers.MaxPooling2D(name="pool")(a)
    a = K.layers.Flatten(name="flat")(a)
    b = K.layers.Dense(4, activation="relu", name="vec_fc")(vec)
    x = K.layers.Concatenate(name="join")([a, b])
    q = K.layers.Dense(3, name="q")(x)
    v = K.layers.Dense(1, name="value")(x)
    old = randomize(K.Model([img, vec], [q, v]))
    spec = {"inputs": {"image": {"old": ["r", "g", "b"], "new": ["r", "g", "b", "d"]},
                       "state": {"old": ["speed", "angle"], "new": ["angle", "spin", "speed"]}},
            "units": {"conv": 6},
            "outputs": {"q": {"old": ["a", "b", "c"], "new": ["c", "a", "b", "d"]}}}
    new = surgeon.transplant(old, spec)
    assert surgeon.verify(old, new, spec, n=16) <= TOL


@pytest.mark.parametrize("init, exact", [("identity", True), ("top_right", False)])
def test_insert_conv(K, init, exact):
    old = mnist_cnn(K)
    spec = {"insert": [{"after": "conv2", "layer": "Conv2D", "init": init, "activation": "relu", "name": "extra"}]}
    new = surgeon.transplant(old, spec)
    kernel = new.get_layer("extra").get_weights()[0]
    assert kernel.shape == (3, 3, 16, 16)
    tap = (1, 1) if init == "identity" else (0, 2)
    np.testing.assert_array_equal(kernel[tap], np.eye(16))
    assert kernel.sum() == 16
    diff = surgeon.verify(old, new, spec, n=16)
    assert (diff <= TOL) == exact
    if not exact:
        assert any("top_right" in n for n in new.surgery_report.notes)


def test_insert_identity_conv_needs_same_padding(K):
    old = mnist_cnn(K)
    with pytest.raises(SurgeryError, match=r"identity Conv2D needs padding='same'.*top_right"):
        surgeon.plan(old, {"insert": [{"after": "conv1", "layer": "Conv2D", "padding": "valid"}]})


def test_insert_top_right_valid_conv_shrinks_maps(K):
    old = mnist_cnn(K)
    spec = {"insert": [{"after": "conv2", "layer": "Conv2D", "init": "top_right", "padding": "valid"}]}
    new = surgeon.transplant(old, spec)
    assert new.get_layer("flat").output.shape[-1] == 11 * 11 * 16
    assert np.isfinite(surgeon.verify(old, new, spec, n=4))


def test_padding_cropping_upsampling_depthwise_dropout(K):
    inp = K.Input((9, 9, 3), name="img")
    x = K.layers.Conv2D(4, 3, activation="relu", name="c1")(inp)
    x = K.layers.ZeroPadding2D(1, name="pad")(x)
    x = K.layers.DepthwiseConv2D(3, name="dw")(x)
    x = K.layers.SpatialDropout2D(0.2, name="sdrop")(x)
    x = K.layers.Cropping2D(1, name="crop")(x)
    x = K.layers.UpSampling2D(2, name="up")(x)
    x = K.layers.AveragePooling2D(2, name="avg")(x)
    x = K.layers.Activation("relu", name="act")(x)
    x = K.layers.GlobalMaxPooling2D(name="gmp")(x)
    old = randomize(K.Model(inp, K.layers.Dense(2, name="q")(x)))
    spec = {"units": {"c1": [3, 1, 0, 2, 7, 8]}}
    new = surgeon.transplant(old, spec)
    assert surgeon.verify(old, new, spec) <= TOL


def test_conv1d_same_rule(K):
    inp = K.Input((20, 3), name="seq")
    x = K.layers.Conv1D(5, 3, activation="relu", name="c")(inp)
    x = K.layers.GlobalAveragePooling1D(name="gap")(x)
    old = randomize(K.Model(inp, K.layers.Dense(2, name="q")(x)))
    spec = {"inputs": {"old": ["a", "b", "c"], "new": ["c", "x", "a", "b"]}, "units": {"c": 8}}
    assert surgeon.verify(old, surgeon.transplant(old, spec), spec) <= TOL


def test_grouped_conv_with_changed_channels_is_refused(K):
    inp = K.Input((8, 8, 4), name="img")
    x = K.layers.Conv2D(4, 3, groups=2, name="grouped")(inp)
    old = K.Model(inp, K.layers.Dense(2, name="q")(K.layers.Flatten(name="f")(x)))
    with pytest.raises(SurgeryError, match=r"'grouped' \(Conv2D\): groups=2 needs the same number of input channels"):
        surgeon.plan(old, {"inputs": {"new": [0, 1, 2, 3, 4]}})


def test_batchnorm_on_wrong_axis_is_refused(K):
    inp = K.Input((6, 6, 3), name="img")
    x = K.layers.Conv2D(4, 3, name="c")(inp)
    x = K.layers.BatchNormalization(axis=1, name="bn_rows")(x)
    old = K.Model(inp, K.layers.Dense(2, name="q")(K.layers.Flatten(name="f")(x)))
    with pytest.raises(SurgeryError, match=r"'bn_rows' \(BatchNormalization\).*axis"):
        surgeon.plan(old, {"units": {"c": 5}})


def test_channels_first_pooling_and_flatten():
    import keras as K

    inp = K.Input((3, 8, 8), name="img")
    x = K.layers.Conv2D(4, 3, data_format="channels_first", activation="relu", name="c")(inp)
    x = K.layers.MaxPooling2D(2, data_format="channels_first", name="pool")(x)
    x = K.layers.BatchNormalization(axis=1, name="bn")(x)
    x = K.layers.Flatten(data_format="channels_first", name="flat")(x)
    old = randomize(K.Model(inp, K.layers.Dense(2, name="q")(x)))
    spec = {"inputs": {"old": ["r", "g", "b"], "new": ["g", "r", "b", "a"], "axis": 1},
            "units": {"c": [3, 0, 1, 2, 9]}}
    assert surgeon.verify(old, surgeon.transplant(old, spec), spec) <= TOL
    with pytest.raises(SurgeryError, match="channels_first"):
        surgeon.plan(old, {"inputs": {"new": [0, 1, 2, 3, 4, 5, 6, 7, 8], "axis": -1}})  # a spatial axis
