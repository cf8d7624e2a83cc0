"""keep_greedy never changes the greedy action, or is refused: no silent wrong Q-network.

For every output head it accepts, the new model's argmax over its outputs names the same unit ID as
the old model's argmax over the kept units, on 10,000 random inputs (some of them large, where
saturating activations would tie), with the new IDs first, last or in between. Heads where a
lowered copy could tie with its source are refused with the reason and the init to use instead.
"""

import numpy as np
import pytest

from keras_surgeon_rl import SurgeryError, surgeon

from conftest import randomize

N = 10_000
ACTIONS = ["left", "stay", "right"]
PLACEMENTS = {
    "new_first": ["new_a", "new_b", "left", "stay", "right"],
    "new_last": ["left", "stay", "right", "new_a", "new_b"],
    "between_and_one_dropped": ["right", "new_a", "left", "new_b"],
}


def _head(K, kind):
    """A small Q-network whose output head is ``kind``; returns (model, accepted)."""
    inp = K.Input((6,), name="obs")
    h = K.layers.Dense(16, activation="relu", name="h")(inp)
    if kind.startswith("conv"):
        x = K.layers.Reshape((4, 4, 1), name="grid")(K.layers.Dense(16, name="to_grid")(h))
        use_bias = kind != "conv_no_bias"
        q = K.layers.Conv2D(3, 3, padding="same", use_bias=use_bias, name="q")(x)
        return K.Model(inp, q, name=kind), use_bias
    specs = {  # kind: (Dense kwargs, layer after it or None, accepted)
        "linear": ({}, None, True),
        "no_bias": ({"use_bias": False}, None, False),
        "softmax": ({"activation": "softmax"}, None, True),
        "relu": ({"activation": "relu"}, None, False),
        "sigmoid": ({"activation": "sigmoid"}, None, False),
        "tanh": ({"activation": "tanh"}, None, False),
        "then_dropout": ({}, K.layers.Dropout(0.5, name="drop"), True),
        "then_softmax": ({}, K.layers.Activation("softmax", name="probs"), True),
        "then_relu": ({}, K.layers.ReLU(name="clip"), False),
        "then_tanh": ({}, K.layers.Activation("tanh", name="squash"), False),
    }
    kwargs, after, accepted = specs[kind]
    q = K.layers.Dense(3, name="q", **kwargs)(h)
    out = after(q) if after is not None else q
    return K.Model(inp, out, name=kind), accepted


KINDS = ["linear", "no_bias", "softmax", "relu", "sigmoid", "tanh", "then_dropout", "then_softmax", "then_relu",
         "then_tanh", "conv", "conv_no_bias"]


def _inputs():
    rng = np.random.default_rng(123)
    x = rng.normal(size=(N, 6)).astype("float32")
    x[: N // 4] *= 30  # large activations: where saturation would make a copy tie with its source
    x[N // 4: N // 2] *= 0.01  # tiny ones: near the origin, where a bias-free copy ties
    return x


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("placement", list(PLACEMENTS))
def test_keep_greedy_keeps_the_greedy_action_on_every_input_or_refuses(K, kind, placement, margin="keep_greedy"):
    old, accepted = _head(K, kind)
    randomize(old, seed=KINDS.index(kind))
    out_name = old.layers[-1].name
    new_ids = PLACEMENTS[placement]
    spec = {"outputs": {out_name: {"old": ACTIONS, "new": new_ids, "init": margin}}}
    before = [w.copy() for w in old.get_weights()]
    if not accepted:
        with pytest.raises(SurgeryError, match=r"keep_greedy.*'q'.*use 'zeros', 'random' or 'copy:<id>'"):
            surgeon.plan(old, spec)
        for a, b in zip(before, old.get_weights()):
            np.testing.assert_array_equal(a, b)
        return
    new = surgeon.transplant(old, spec)
    x = _inputs()
    yo, yn = old.predict(x, verbose=0, batch_size=2048), new.predict(x, verbose=0, batch_size=2048)
    kept = [ACTIONS.index(a) for a in new_ids if a in ACTIONS]
    old_kept = yo[..., kept]
    old_greedy = np.array(ACTIONS)[np.array(kept)[np.argmax(old_kept, axis=-1)]]
    new_greedy = np.array(new_ids)[np.argmax(yn, axis=-1)]
    # Where the old model itself ties among the kept actions (a softmax saturated by a dropped action
    # rounds them all to 0), it has no one greedy action to keep.
    top2 = np.sort(old_kept, axis=-1)[..., -2:]
    defined = top2[..., 1] > top2[..., 0]
    assert defined.mean() > 0.9
    changed = np.mean(old_greedy[defined] != new_greedy[defined])
    assert changed == 0.0, f"the greedy action changed on {changed:.2%} of {defined.sum()} inputs"
    for a, b in zip(before, old.get_weights()):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", ["linear", "softmax", "conv"])
def test_the_smallest_margin_still_keeps_the_greedy_action(K, kind):
    test_keep_greedy_keeps_the_greedy_action_on_every_input_or_refuses(K, kind, "new_first", {"keep_greedy": 0.001})


def test_a_copy_with_bias_offset_needs_a_bias(K):
    old, _ = _head(K, "no_bias")
    spec = {"outputs": {"old": ACTIONS, "new": ACTIONS + ["n"], "init": {"copy": "left", "bias_offset": -1.0}}}
    with pytest.raises(SurgeryError, match=r"bias_offset.*'q' has no bias.*use_bias=True"):
        surgeon.plan(old, spec)
    plain_copy = {"outputs": {"old": ACTIONS, "new": ACTIONS + ["n"], "init": "copy:left"}}
    new = surgeon.transplant(old, plain_copy)  # a plain copy is what was asked: allowed
    x = _inputs()[:64]
    np.testing.assert_array_equal(new.predict(x, verbose=0)[:, 3], new.predict(x, verbose=0)[:, 0])
