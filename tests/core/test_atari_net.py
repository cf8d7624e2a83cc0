"""keras-rl2's Atari network, full size, as ``examples/dqn_atari.py`` builds it.

``Permute((2, 3, 1), input_shape=(4, 84, 84))`` turns the window of 4 frames into the channels of the
Nature-DQN convs (32 8x8/4, 64 4x4/2, 64 3x3/1, each followed by an ``Activation('relu')`` layer),
then Flatten, Dense 512 + relu, Dense(n_actions) + ``Activation('linear')``. A 5th frame is added by
ID on the frame axis (axis 1) and an action is added; both exactly, in Keras 3 and in tf_keras.
The same network under keras-rl2 (graph mode, a real ``DQNAgent``) is in tests/rl/test_atari_net.py.
"""

import numpy as np
import pytest

from keras_surgeon_rl import SurgeryError, surgeon

import atari_net
from conftest import randomize

WINDOW = 4
FRAMES = ["t-3", "t-2", "t-1", "t"]  # keras-rl2's window: oldest first
ACTIONS = ["noop", "fire", "right", "left"]  # Breakout's
N = 16  # samples per check: 84x84 convs are slow on CPU

# keras-rl2's example passes input_shape to the first layer; Keras 3 warns and accepts it
pytestmark = pytest.mark.filterwarnings("ignore:Do not pass an `input_shape`")


def dqn_atari(K, n_actions=len(ACTIONS)):
    return atari_net.dqn_atari(K, n_actions, WINDOW)


def frames(n, window=WINDOW, seed=0):
    """Frames as keras-rl2's AtariProcessor gives them: grey levels / 255."""
    return np.random.default_rng(seed).integers(0, 256, size=(n, window, 84, 84)).astype("float32") / 255.0


@pytest.fixture
def old(K):
    return randomize(dqn_atari(K))


@pytest.mark.parametrize("new_frames", [["t-4"] + FRAMES, FRAMES + ["t+1"]], ids=["older", "newer"])
def test_a_fifth_frame_by_id_on_the_frame_axis(K, old, new_frames):
    spec = {"inputs": {"axis": 1, "old": FRAMES, "new": new_frames}}
    new = surgeon.transplant(old, spec)
    assert tuple(new.inputs[0].shape[1:]) == (5, 84, 84)
    assert new.get_layer("conv1").get_weights()[0].shape == (8, 8, 5, 32)
    assert surgeon.verify(old, new, spec, x=frames(N)) <= 1e-5
    # the new frame's channel reads zero weights: any values there leave every Q-value as it was
    pos = new_frames.index(next(f for f in new_frames if f not in FRAMES))
    x = frames(N)
    x5 = np.insert(x, pos, frames(N, window=1, seed=1)[:, 0], axis=1)
    np.testing.assert_allclose(new.predict(x5, verbose=0), old.predict(x, verbose=0), atol=1e-5)


def test_the_same_with_integer_ids(K, old):
    spec = {"inputs": {"axis": 1, "new": [0, 1, 2, 3, 4]}}  # old IDs default to 0..3
    new = surgeon.transplant(old, spec)
    assert surgeon.verify(old, new, spec, x=frames(N)) <= 1e-5


@pytest.mark.parametrize("init", ["keep_greedy", "random", "zeros"])
def test_a_fifth_frame_and_a_new_action(K, old, init):
    spec = {"inputs": {"axis": 1, "old": FRAMES, "new": ["t-4"] + FRAMES},
            "outputs": {"old": ACTIONS, "new": ACTIONS + ["down"], "init": init}}
    new = surgeon.transplant(old, spec)
    assert new.outputs[0].shape[-1] == 5
    assert surgeon.verify(old, new, spec, x=frames(N)) <= 1e-5  # the old actions' Q-values, exactly
    if init == "keep_greedy":  # the new action is below a kept one everywhere: the greedy action stays
        x = frames(N)
        x5 = np.concatenate([frames(N, window=1, seed=1), x], axis=1)
        q_old, q_new = old.predict(x, verbose=0), new.predict(x5, verbose=0)
        np.testing.assert_array_equal(np.argmax(q_new, -1), np.argmax(q_old, -1))
        assert (q_new[:, 4] < q_new[:, :4].max(-1)).all()


def test_an_action_inserted_between_old_ones_and_the_old_ones_permuted(K, old):
    spec = {"outputs": {"old": ACTIONS, "new": ["left", "noop", "down", "fire", "right"], "init": "keep_greedy"}}
    new = surgeon.transplant(old, spec)
    assert surgeon.verify(old, new, spec, x=frames(N)) <= 1e-5


def test_frames_on_the_pixel_axis_are_refused(K, old):
    """axis 2 is a pixel row: after Permute it is a spatial axis of conv1, whose size the convs fix."""
    with pytest.raises(SurgeryError, match=r"'conv1' \(Conv2D\).*axis 3.*axis 1"):
        surgeon.plan(old, {"inputs": {"axis": 2, "new": list(range(85))}})
