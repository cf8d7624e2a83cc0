"""keras-rl2's Atari network: ``Permute((2, 3, 1))`` on a window of frames, then Nature-DQN convs.

A 5th frame is added by ID (the window's axis becomes the conv's channels) and an action is added,
exactly, in Keras 3 and tf_keras.
"""

import numpy as np
import pytest

from keras_surgeon_rl import SurgeryError, surgeon

from conftest import randomize

FRAMES = ["t-3", "t-2", "t-1", "t"]


def atari(K, window=4, size=20):
    """The shape of keras-rl2's examples/dqn_atari.py network, on small frames."""
    return K.Sequential([
        K.Input((window, size, size), name="frames"),
        K.layers.Permute((2, 3, 1), name="permute"),
        K.layers.Conv2D(8, 8, strides=4, activation="relu", name="conv1"),
        K.layers.Conv2D(8, 3, strides=1, activation="relu", name="conv2"),
        K.layers.Flatten(name="flat"),
        K.layers.Dense(16, activation="relu", name="fc"),
        K.layers.Dense(3, name="q"),
    ], name="atari")


def test_a_fifth_frame_and_a_new_action(K):
    old = randomize(atari(K))
    spec = {"inputs": {"old": FRAMES, "new": ["t-4"] + FRAMES, "axis": 1},
            "outputs": {"old": ["noop", "left", "right"], "new": ["noop", "left", "right", "fire"],
                        "init": "keep_greedy"}}
    new = surgeon.transplant(old, spec)
    assert tuple(new.inputs[0].shape[1:]) == (5, 20, 20)
    assert surgeon.verify(old, new, spec) <= 1e-5
    x = np.random.default_rng(0).normal(size=(64, 4, 20, 20)).astype("float32")
    x5 = np.concatenate([np.random.default_rng(1).normal(size=(64, 1, 20, 20)).astype("float32"), x], axis=1)
    np.testing.assert_array_equal(np.argmax(new.predict(x5, verbose=0), -1), np.argmax(old.predict(x, verbose=0), -1))


def test_permuting_frames_and_widening_the_convs(K):
    old = randomize(atari(K))
    spec = {"inputs": {"old": FRAMES, "new": FRAMES[::-1], "axis": 1}, "units": {"conv1": 12, "fc": 20}}
    assert surgeon.verify(old, surgeon.transplant(old, spec), spec) <= 1e-5


@pytest.mark.parametrize("dims, axis", [((1, 3, 2), 1), ((3, 1, 2), 1), ((2, 1, 3), 3)])
def test_units_follow_their_axis_through_any_permutation(K, dims, axis):
    inp = K.Input((3, 4, 5), name="x")
    y = K.layers.Permute(dims, name="p")(inp)
    y = K.layers.Flatten(name="flat")(y)
    old = randomize(K.Model(inp, K.layers.Dense(2, name="q")(y)))
    width = (3, 4, 5)[axis - 1]
    spec = {"inputs": {"new": list(range(width)) + ["extra"], "axis": axis}}
    assert surgeon.verify(old, surgeon.transplant(old, spec), spec) <= 1e-5


def test_a_dense_reading_permuted_frames_on_the_wrong_axis_is_refused(K):
    inp = K.Input((4, 6), name="frames")
    y = K.layers.Permute((2, 1), name="p")(inp)  # frames now last: a Dense reads them
    y = K.layers.Permute((2, 1), name="back")(y)  # and back: the Dense reads features
    old = K.Model(inp, K.layers.Dense(2, name="q")(y))
    with pytest.raises(SurgeryError, match=r"'q' \(Dense\).*axis"):
        surgeon.plan(old, {"inputs": {"new": [0, 1, 2, 3, 4], "axis": 1}})
