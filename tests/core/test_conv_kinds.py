"""Separable, transposed and grouped convolutions: filters and input channels by ID, outputs compared.

Every model is ``image → up (1x1 conv) → L (the layer under test) → global average pool → q``: the
channels reaching L change through ``up``'s units, L's filters through its own. One spec widens,
narrows and permutes both at once. For removed units the reference is the old model with the
weights that read them zeroed: done in the old model itself, before the surgery (the surgery drops
those weights, so the new model is the same either way).

Spatial sizes (5) never equal a channel count: TensorFlow's oneDNN CPU kernels add a channels-first
Conv3DTranspose's bias on the wrong axis when they do (the framework's own bug: the old model is
wrong too, and differently from a permuted copy).
"""

import numpy as np
import pytest

from keras_surgeon_rl import SurgeryError, surgeon

from conftest import randomize

TOL = 1e-5
GAP = {1: "GlobalAveragePooling1D", 2: "GlobalAveragePooling2D", 3: "GlobalAveragePooling3D"}

#: kind: (class name, rank, extra config)
KINDS = {
    "sep1d": ("SeparableConv1D", 1, {"depth_multiplier": 2}),
    "sep2d": ("SeparableConv2D", 2, {"depth_multiplier": 2}),
    "tconv1d": ("Conv1DTranspose", 1, {"strides": 2}),
    "tconv2d": ("Conv2DTranspose", 2, {"strides": 2}),
    "tconv3d": ("Conv3DTranspose", 3, {}),
    "gconv1d": ("Conv1D", 1, {"groups": 2}),
    "gconv2d": ("Conv2D", 2, {"groups": 2}),
    "gconv3d": ("Conv3D", 3, {"groups": 2}),
    "conv2d": ("Conv2D", 2, {}),
    "dwconv2d": ("DepthwiseConv2D", 2, {"depth_multiplier": 2}),
}
FORMATS = ["channels_last", "channels_first"]


def image_shape(rank, data_format, channels=3):
    return (5,) * rank + (channels,) if data_format == "channels_last" else (channels,) + (5,) * rank


def runs_or_skip(model, cls, data_format):
    """Skip the test where the backend cannot run this layer in this format (TensorFlow on CPU)."""
    x = np.zeros((1,) + tuple(model.inputs[0].shape[1:]), "float32")
    try:
        model(x)
    except Exception as e:  # noqa: BLE001 (the framework's own error, whatever its type)
        pytest.skip(f"{cls} with {data_format} does not run on this backend's CPU kernels ({type(e).__name__})")


def build(K, kind, data_format):
    """``image → up (4 filters) → L (6 filters) → pool → q (3 units)``."""
    cls, rank, extra = KINDS[kind]
    inp = K.Input(image_shape(rank, data_format), name="image")
    x = getattr(K.layers, f"Conv{rank}D")(4, 1, data_format=data_format, name="up")(inp)
    config = dict(extra, data_format=data_format, padding="same", name="L")
    if cls.startswith("Depthwise"):
        x = getattr(K.layers, cls)(3, **config)(x)
    else:
        x = getattr(K.layers, cls)(6, 3, activation="relu", **config)(x)
    x = getattr(K.layers, GAP[rank])(data_format=data_format, name="pool")(x)
    model = randomize(K.Model(inp, K.layers.Dense(3, name="q")(x), name=kind), seed=3)
    runs_or_skip(model, cls, data_format)
    return model


def zero(model, layer, where):
    """Zero ``model.get_layer(layer)``'s weights at ``{weight position: index}``, in place."""
    ws = model.get_layer(layer).get_weights()
    for i, index in where.items():
        ws[i][index] = 0
    model.get_layer(layer).set_weights(ws)


def zero_channel_reads(model, kind, c):
    """Zero the weights with which L reads its input channel ``c`` (of 4)."""
    cls, _, extra = KINDS[kind]
    if cls.startswith("Separable"):  # the depthwise slice: nothing of channel c then reaches the output
        zero(model, "L", {0: (Ellipsis, c, slice(None))})
    elif cls.endswith("Transpose"):  # kernel [*window, filters, in]
        zero(model, "L", {0: (Ellipsis, c)})
    elif extra.get("groups", 1) > 1:  # kernel [*window, 2 channels, 6 filters]: group g = filters 3g..3g+2
        g = c // 2
        zero(model, "L", {0: (Ellipsis, c % 2, slice(3 * g, 3 * g + 3))})
    else:
        zero(model, "L", {0: (Ellipsis, c, slice(None))})


@pytest.mark.parametrize("data_format", FORMATS)
@pytest.mark.parametrize("kind", ["sep1d", "sep2d", "tconv1d", "tconv2d", "tconv3d", "gconv1d", "gconv2d", "gconv3d"])
def test_widen_narrow_permute_filters_and_channels(K, kind, data_format):
    old = build(K, kind, data_format)
    if KINDS[kind][2].get("groups"):  # groups of 2 channels / 3 filters; each keeps one size, nothing moves group
        spec = {"units": {"up": ["n", 1, 3, "m"],                      # 0 and 2 go: row 0 of group 0, row 0 of 1
                          "L": [2, "a", 0, "c", 5, 3, "b", "d"]}}      # 1 and 4 go, 2 + 2 new, order changes
        removed_channels = [0, 2]
    else:
        spec = {"units": {"up": [3, "n", 1, 0], "L": [5, "a", 0, 2, "c", 3, "b"]}}
        removed_channels = [2]
    for c in removed_channels:
        zero_channel_reads(old, kind, c)
    zero(old, "q", {0: ([1, 4], slice(None))})  # L's filters 1 and 4 go
    new = surgeon.transplant(old, spec)
    assert new.get_layer("L").get_weights()[-1].shape == (len(spec["units"]["L"]),)
    assert surgeon.verify(old, new, spec, n=4) <= TOL


@pytest.mark.parametrize("kind", ["sep2d", "gconv2d"])
def test_model_input_channels_channels_first(kind):
    """The model's own input channels by ID, channels-first (``axis: 1``), L reading them directly."""
    import keras as K

    cls, rank, extra = KINDS[kind]
    inp = K.Input(image_shape(rank, "channels_first", channels=4), name="image")
    x = getattr(K.layers, cls)(6, 3, data_format="channels_first", padding="same", name="L", **extra)(inp)
    x = getattr(K.layers, GAP[rank])(data_format="channels_first", name="pool")(x)
    old = randomize(K.Model(inp, K.layers.Dense(2, name="q")(x)))
    runs_or_skip(old, cls, "channels_first")
    zero_channel_reads(old, kind, 1)  # "g" goes
    spec = {"inputs": {"old": ["r", "g", "b", "a"], "new": ["r", "depth", "a", "b"], "axis": 1}}
    if kind == "gconv2d":
        spec["inputs"]["new"] = ["depth", "r", "b", "a"]  # groups [r, g] [b, a]: "g" goes, "depth" joins group 0
    assert surgeon.verify(old, surgeon.transplant(old, spec), spec, n=4) <= TOL


def test_net2net_widening_is_exact_and_random_is_not_zero(K):
    """Separable: a channel's Net2Net share scales its ``depth_multiplier`` pointwise rows."""
    old = build(K, "sep2d", "channels_last")
    spec = {"units": {"up": 6, "L": 8}, "init": "net2net"}
    new = surgeon.transplant(old, spec)
    assert surgeon.verify(old, new, spec, n=4) <= TOL
    reads_up = new.get_layer("L").get_weights()[1]
    assert np.count_nonzero(reads_up) == reads_up.size  # copies read the new channels with real weights
    new = surgeon.transplant(old, {"units": {"up": 6}, "init": "random"})
    reads_up = new.get_layer("L").get_weights()[1]
    assert np.count_nonzero(reads_up) == reads_up.size  # random init: the new channels' rows are not zeroed


@pytest.mark.parametrize("kind", ["conv2d", "dwconv2d"])
def test_conv_and_depthwise_channels_first(K, kind):
    old = build(K, kind, "channels_first")
    spec = {"units": {"up": [3, "n", 1, 0]}}  # channel 2 goes
    if kind == "conv2d":
        spec["units"]["L"] = [5, "a", 0, 2, "c", 3, "b"]
        zero_channel_reads(old, kind, 2)
        zero(old, "q", {0: ([1, 4], slice(None))})
    else:  # channel 2's two depthwise outputs (4 and 5) go
        zero(old, "q", {0: ([4, 5], slice(None))})
    assert surgeon.verify(old, surgeon.transplant(old, spec), spec, n=4) <= TOL


def test_grouped_conv_unchanged_copies_exactly(K):
    old = build(K, "gconv2d", "channels_last")
    spec = {"outputs": {"old": ["a", "b", "c"], "new": ["c", "a", "b"]}}
    new = surgeon.transplant(old, spec)
    for w_old, w_new in zip(old.get_layer("L").get_weights(), new.get_layer("L").get_weights()):
        np.testing.assert_array_equal(w_old, w_new)
    assert surgeon.verify(old, new, spec, n=4) == 0


@pytest.mark.parametrize("spec, match", [
    ({"units": {"up": [0, 1, 2]}}, r"gives 3 input channels: kept per group \[2, 1\].*multiple of 2"),
    ({"units": {"up": [2, 1, 0, 3]}}, r"input channel 2 was in group 1 but would sit at position 0, in group 0"),
    ({"units": {"L": [0, 1, 2, 3, 4, 5, "x"]}}, r"gives 7 filters: kept per group \[3, 3\] plus 1 new"),
    ({"units": {"L": [0, 3, 2, 1, 4, 5]}}, r"filter 3 was in group 1 .* in group 0"),
    ({"units": {"L": 8}, "init": "net2net"}, r"net2net copies units from any group: use init 'preserve'"),
])
def test_grouped_conv_refusals_name_the_layer_and_the_groups(spec, match):
    import keras as K

    old = build(K, "gconv2d", "channels_last")
    with pytest.raises(SurgeryError, match=r"'L' \(Conv2D\): groups=2.*" + match):
        surgeon.plan(old, spec)


def test_insertion_of_these_kinds_is_refused():
    import keras as K

    old = build(K, "sep2d", "channels_last")
    with pytest.raises(SurgeryError, match=r"cannot insert a .SeparableConv2D. layer"):
        surgeon.plan(old, {"insert": [{"after": "L", "layer": "SeparableConv2D"}]})
    with pytest.raises(SurgeryError, match=r"grouped Conv2D \(groups=2\) cannot be inserted"):
        surgeon.plan(old, {"insert": [{"after": "up", "layer": "Conv2D", "groups": 2}]})
