"""Rescaling and Normalization (EfficientNet, ConvNeXt): per-channel constants follow their channel."""

import numpy as np
import pytest

from keras_surgeon_rl import SurgeryError, surgeon

from conftest import randomize


def net(K, pre):
    inp = K.Input((6, 6, 3), name="img")
    x = inp
    for layer in pre(K):
        x = layer(x)
    x = K.layers.Conv2D(4, 3, activation="relu", name="conv")(x)
    x = K.layers.GlobalAveragePooling2D(name="gap")(x)
    return K.Model(inp, K.layers.Dense(2, name="q")(x))


PRE = {
    "rescale_scalar": lambda K: [K.layers.Rescaling(1 / 255.0, offset=-0.5, name="pre")],
    "rescale_per_channel": lambda K: [K.layers.Rescaling([0.5, 2.0, 3.0], offset=[0.1, 0.2, 0.3], name="pre")],
    "normalization_given": lambda K: [K.layers.Normalization(mean=[0.4, 0.5, 0.6], variance=[0.1, 0.2, 0.3],
                                                             name="pre")],
    "normalization_adapted": lambda K: [K.layers.Normalization(axis=-1, name="pre")],
}
SPECS = [
    {"inputs": {"old": ["r", "g", "b"], "new": ["r", "g", "b", "depth"]}},
    {"inputs": {"old": ["r", "g", "b"], "new": ["b", "g", "r"]}},
    {"inputs": {"old": ["r", "g", "b"], "new": ["g", "depth"]}},
]


@pytest.mark.parametrize("kind", list(PRE))
@pytest.mark.parametrize("k", range(len(SPECS)))
def test_input_channels_change_through_preprocessing_exactly(K, kind, k):
    old = randomize(net(K, PRE[kind]))
    if kind == "normalization_adapted":
        old.get_layer("pre").adapt(np.random.default_rng(0).normal(2.0, 3.0, size=(32, 6, 6, 3)).astype("float32"))
    spec = SPECS[k]
    new = surgeon.transplant(old, spec)
    if k == 2:  # r and b dropped: the function changes, as asked; the constants follow g and depth
        config = new.get_layer("pre").get_config()
        for key in ("scale", "mean"):
            if isinstance(config.get(key), list):
                assert len(config[key]) == 2
        return
    x = np.random.default_rng(1).normal(size=(8, 6, 6, 3)).astype("float32")
    assert surgeon.verify(old, new, spec, x=x) <= 1e-5


def test_a_per_channel_constant_of_the_wrong_length_is_refused(K):
    inp = K.Input((6, 6, 3), name="img")
    x = K.layers.Rescaling([[0.5, 2.0, 3.0]], name="pre")(inp)  # nested: not one value per channel
    model = K.Model(inp, K.layers.Dense(2, name="q")(K.layers.GlobalAveragePooling2D(name="gap")(x)))
    with pytest.raises(SurgeryError, match=r"'pre' \(Rescaling\): its 'scale' holds 1 values|'pre'"):
        surgeon.plan(model, {"inputs": {"new": [0, 1, 2, 3]}})
