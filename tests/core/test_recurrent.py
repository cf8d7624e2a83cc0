"""Recurrent layers by unit ID (SimpleRNN, GRU, LSTM; Bidirectional and TimeDistributed): the new model's
outputs over whole sequences (60 steps) equal the old model's with every removed unit's outgoing weights
zeroed (the reference is built in plain NumPy, without library code)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from keras_surgeon_rl import SurgeryError, surgeon

from conftest import BACKEND, FLAVOURS, randomize

T = 60
CELLS = ["SimpleRNN", "GRU", "LSTM"]


def seq_model(K, cell="LSTM", wrap=None, merge="concat", n_in=3, units=(5, 6), last_sequences=True, masking=False,
              sequential=False, **cell_kw):
    """obs (T, n_in) → [Masking] → rnn (cell, or Bidirectional(cell)) → td (TimeDistributed Dense 4) → rnn2 → q.

    ``q`` is a Dense on every step when ``last_sequences`` (the output is the whole sequence), else on
    rnn2's final state."""
    rnn = getattr(K.layers, cell)(units[0], return_sequences=True, name="rnn", **cell_kw)
    if wrap == "bi":
        rnn = K.layers.Bidirectional(getattr(K.layers, cell)(units[0], return_sequences=True, **cell_kw),
                                     merge_mode=merge, name="rnn")
    layers = ([K.layers.Masking(0.0, name="mask")] if masking else []) + [
        rnn, K.layers.TimeDistributed(K.layers.Dense(4, activation="tanh"), name="td"),
        getattr(K.layers, cell)(units[1], return_sequences=last_sequences, name="rnn2", **cell_kw),
        K.layers.Dense(2, name="q")]
    if sequential:
        model = K.Sequential([K.Input((T, n_in), name="obs")] + layers, name="seq")
    else:
        x = inp = K.Input((T, n_in), name="obs")
        for layer in layers:
            x = layer(x)
        model = K.Model(inp, x, name="seq")
    return randomize(model)


def reference(model, removed: dict, directions: int = 1, concat: bool = True):
    """A copy of ``model`` with the outgoing weights of removed units zeroed: ``removed`` maps a layer to
    the positions of its input units that were removed (its kernel rows), and ``(layer, "self")`` to its
    own removed units (its recurrent kernel rows)."""
    clone = type(model).from_config(model.get_config())
    clone.set_weights(model.get_weights())
    for (name, what), rows in removed.items():
        layer = clone.get_layer(name)
        ws = layer.get_weights()
        per = len(ws) // directions if layer.__class__.__name__ == "Bidirectional" else len(ws)
        for d in range(len(ws) // per):
            ws[d * per + (1 if what == "self" else 0)][rows] = 0
        layer.set_weights(ws)
    return clone


def run(model, x):
    """The model's output on ``x`` (a direct call: ``predict`` compiles a function per model)."""
    return np.asarray(model(x, training=False))


def sequences(n, n_in, seed=0):
    return np.random.default_rng(seed).normal(size=(n, T, n_in)).astype("float32")


def new_inputs(x, old_ids, new_ids, seed=1):
    """The new model's input: kept features moved to their new places, new features random."""
    rng = np.random.default_rng(seed)
    cols = [x[..., old_ids.index(i)] if i in old_ids else rng.normal(size=x.shape[:-1]) for i in new_ids]
    return np.stack(cols, -1).astype("float32")


def check_edit(K, cell, wrap=None, merge="concat", last_sequences=True, sequential=False, spec_units=None, init=None,
               **cell_kw):
    model = seq_model(K, cell, wrap, merge, last_sequences=last_sequences, sequential=sequential, **cell_kw)
    old_in, new_in = [0, 1, 2], [2, "n", 0]
    units = spec_units or {"rnn": [4, 0, "a", 2, 3], "td": [3, "b", 1, 2], "rnn2": 9}
    spec = {"inputs": {"obs": {"old": old_in, "new": new_in}}, "units": units}
    if init:
        spec["init"] = init
    before = [w.copy() for w in model.get_weights()]
    new = surgeon.transplant(model, spec)
    gone = lambda ids, n: [i for i in range(n) if i not in ids]  # noqa: E731
    rnn_gone = gone(units["rnn"], 5) if isinstance(units["rnn"], list) else []
    td_rows = rnn_gone + ([5 + i for i in rnn_gone] if wrap == "bi" and merge == "concat" else [])
    removed = {("rnn", "in"): [1], ("rnn", "self"): rnn_gone, ("td", "in"): td_rows,
               ("rnn2", "in"): gone(units["td"], 4) if isinstance(units["td"], list) else []}
    ref = reference(model, removed, directions=2 if wrap == "bi" else 1)
    x = sequences(8, 3)
    want = run(ref, x)
    got = run(new, new_inputs(x, old_in, new_in))
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights())), "the source model changed"
    return model, new


@pytest.mark.parametrize("cell", CELLS)
def test_widen_narrow_permute_and_add_inputs_keep_the_sequence_output(K, cell):
    check_edit(K, cell)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("merge", ["concat", "sum"])  # mul and ave: in the random edits below
def test_bidirectional_is_resized_by_its_own_name_in_both_directions(K, cell, merge):
    _, new = check_edit(K, cell, "bi", merge)
    layer = new.get_layer("rnn")
    assert layer.forward_layer.units == layer.backward_layer.units == 5


def test_gru_without_reset_after(K):
    check_edit(K, "GRU", reset_after=False)


@pytest.mark.parametrize("cell", CELLS)
def test_final_state_and_backwards_layers(K, cell):
    """The last step's output is the final hidden state: rnn2 returns only it; both layers run backwards."""
    check_edit(K, cell, last_sequences=False, go_backwards=True)


def test_sequential_model_without_bias(K):
    check_edit(K, "LSTM", sequential=True, use_bias=False)


@pytest.mark.parametrize("cell", CELLS)
def test_net2net_widening_is_exact(K, cell):
    """Net2Net copies: a copy's incoming columns in every gate equal its source's, so it carries the same
    state at every step; the split factors on its outgoing rows (recurrent and td's) sum to one."""
    model, new = check_edit(K, cell, "bi" if cell == "GRU" else None,
                            spec_units={"rnn": 8, "td": 7, "rnn2": 6}, init="net2net")
    w = new.get_layer("rnn").get_weights()
    assert not np.allclose(w[1][5:], 0), "net2net copies share their source's recurrent rows, not zeros"


def test_masked_steps_stay_masked(K):
    """Masking before the recurrent layer: steps whose features all equal the mask value are skipped; a new
    feature that is also at the mask value there keeps them masked."""
    model = seq_model(K, "LSTM", masking=True)
    spec = {"inputs": {"obs": {"old": [0, 1, 2], "new": [0, 1, 2, "n"]}}, "units": {"rnn": 7}}
    new = surgeon.transplant(model, spec)
    x = sequences(4, 3)
    x[:, 10:30] = 0.0
    xn = new_inputs(x, [0, 1, 2], [0, 1, 2, "n"])
    xn[:, 10:30] = 0.0
    np.testing.assert_allclose(run(new, xn), run(model, x), atol=1e-5, rtol=0)
    rows = surgeon.plan(model, spec).report.rows
    assert any("mask_value" in note for row in rows if row.name == "mask" for note in row.notes)


@pytest.mark.parametrize("cell", CELLS)
def test_recurrent_output_layer_gets_new_units(K, cell):
    """A recurrent layer as the model's output: a new unit with 'zeros' init outputs zero at every step
    (its state stays at zero), the kept units are unchanged."""
    x = inp = K.Input((T, 3), name="obs")
    out = getattr(K.layers, cell)(4, return_sequences=True, name="rnn")(x)
    model = randomize(K.Model(inp, out))
    new = surgeon.transplant(model, {"outputs": {"rnn": {"old": [0, 1, 2, 3], "new": [0, 1, "x", 2, 3],
                                                          "init": {"x": "zeros"}}}})
    x = sequences(4, 3)
    want, got = run(model, x), run(new, x)
    np.testing.assert_allclose(np.delete(got, 2, axis=-1), want, atol=1e-5, rtol=0)
    np.testing.assert_allclose(got[..., 2], 0.0, atol=1e-6)


def test_time_distributed_conv_follows_channels(K):
    """TimeDistributed(Conv2D) over frames: filters are unit IDs, the readers follow them per frame."""
    x = inp = K.Input((6, 8, 8, 2), name="frames")
    x = K.layers.TimeDistributed(K.layers.Conv2D(4, 3, activation="relu"), name="conv")(x)
    x = K.layers.TimeDistributed(K.layers.GlobalAveragePooling2D(), name="pool")(x)
    x = K.layers.GRU(5, name="rnn")(x)
    model = randomize(K.Model(inp, K.layers.Dense(3, name="q")(x)))
    spec = {"inputs": {"frames": {"old": [0, 1], "new": [1, "c", 0]}}, "units": {"conv": [3, "n", 0, 1], "rnn": 7}}
    new = surgeon.transplant(model, spec)
    frames = np.random.default_rng(0).normal(size=(4, 6, 8, 8, 2)).astype("float32")
    extra = np.random.default_rng(1).normal(size=(4, 6, 8, 8, 1)).astype("float32")
    ref = reference(model, {("rnn", "in"): [2]})
    got = run(new, np.concatenate([frames[..., 1:], extra, frames[..., :1]], -1))
    np.testing.assert_allclose(got, run(ref, frames), atol=1e-5, rtol=0)


# Refusals -----------------------------------------------------------------------------------------

def test_inserting_a_recurrent_layer_is_refused(K):
    model = seq_model(K, "GRU")
    with pytest.raises(SurgeryError, match="cannot insert a 'LSTM' layer.*recurrent.*passes its input through"):
        surgeon.transplant(model, {"insert": [{"after": "td", "layer": "LSTM", "config": {"units": 4}}]})


def test_bidirectional_without_merge_gives_both_directions_the_new_units(K):
    """merge_mode=None: two outputs, one per direction, each with the layer's unit IDs."""
    x = inp = K.Input((T, 3), name="obs")
    a, b = K.layers.Bidirectional(K.layers.LSTM(4, return_sequences=True), merge_mode=None, name="rnn")(x)
    model = randomize(K.Model(inp, K.layers.Dense(2, name="q")(K.layers.Concatenate(name="cat")([a, b]))))
    new = surgeon.transplant(model, {"units": {"rnn": [3, "n", 0, 1]}})
    ref = reference(model, {("rnn", "self"): [2], ("q", "in"): [2, 6]}, directions=2)
    x = sequences(4, 3)
    np.testing.assert_allclose(run(new, x), run(ref, x), atol=1e-5, rtol=0)


STATES = {"SimpleRNN": 1, "GRU": 1, "LSTM": 2}


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("wrap", [None, "bi"])
def test_final_states_follow_the_units(K, cell, wrap):
    """return_state: the final states (h; h and c for LSTM; per direction for Bidirectional) carry the unit
    IDs; on the kept units they and the whole sequence equal the old model's with the removed unit's
    recurrent row zeroed."""
    x = inp = K.Input((T, 3), name="obs")
    layer = getattr(K.layers, cell)(5, return_sequences=True, return_state=True, name="rnn")
    if wrap == "bi":
        layer = K.layers.Bidirectional(getattr(K.layers, cell)(5, return_sequences=True, return_state=True),
                                       name="rnn")
    model = randomize(K.Model(inp, list(layer(x))))
    new = surgeon.transplant(model, {"units": {"rnn": [4, 0, "n", 1, 3]}})
    ref = reference(model, {("rnn", "self"): [2]}, directions=2 if wrap == "bi" else 1)
    x = sequences(4, 3)
    got, want = [np.asarray(t) for t in new(x)], [np.asarray(t) for t in ref(x)]
    assert len(got) == len(want) == 1 + STATES[cell] * (2 if wrap == "bi" else 1)
    new_pos, old_pos = [0, 1, 3, 4], [4, 0, 1, 3]  # the kept units, where they are now and were before
    for g, w in zip(got[1:], want[1:]):  # the states: one value per unit
        assert g.shape == (4, 5)
        np.testing.assert_allclose(g[:, new_pos], w[:, old_pos], atol=1e-5, rtol=0)
    for d in range(2 if wrap == "bi" else 1):  # the sequence; concatenated directions for Bidirectional
        np.testing.assert_allclose(got[0][..., [5 * d + i for i in new_pos]], want[0][..., [5 * d + i for i in old_pos]],
                                   atol=1e-5, rtol=0)


def test_keep_greedy_on_a_recurrent_output_is_refused(K):
    x = inp = K.Input((T, 3), name="obs")
    model = K.Model(inp, K.layers.SimpleRNN(3, activation="linear", name="q")(x))
    with pytest.raises(SurgeryError, match="'q'"):
        surgeon.transplant(model, {"outputs": {"q": {"old": [0, 1, 2], "new": [0, 1, 2, 3],
                                                     "init": {"3": "keep_greedy"}}}})


# Random edits -------------------------------------------------------------------------------------

@st.composite
def rnn_edits(draw):
    flavour = draw(st.sampled_from(sorted(FLAVOURS)))
    cell = draw(st.sampled_from(CELLS))
    wrap = draw(st.sampled_from([None, "bi"]))
    merge = draw(st.sampled_from(["concat", "sum", "mul", "ave"]))

    def ids(n):
        kept = draw(st.lists(st.integers(0, n - 1), unique=True, max_size=n))
        new = list(draw(st.permutations(kept + [f"n{j}" for j in range(draw(st.integers(0, 3)))])))
        return new or ["n0"]

    return flavour, cell, wrap, merge, ids(3), {"rnn": ids(5), "td": ids(4), "rnn2": ids(6)}


@settings(max_examples=12 if BACKEND == "tensorflow" else 5)  # each example builds two recurrent models
@given(rnn_edits())
def test_random_edits_preserve_the_function_on_kept_units(case):
    flavour, cell, wrap, merge, new_in, units = case
    K = FLAVOURS[flavour]
    model = seq_model(K, cell, wrap, merge)
    new = surgeon.transplant(model, {"inputs": {"obs": {"old": [0, 1, 2], "new": new_in}}, "units": units})
    gone = lambda ids, n: [i for i in range(n) if i not in ids]  # noqa: E731
    rnn_gone = gone(units["rnn"], 5)
    td_rows = rnn_gone + ([5 + i for i in rnn_gone] if wrap == "bi" and merge == "concat" else [])
    ref = reference(model, {("rnn", "in"): gone(new_in, 3), ("rnn", "self"): rnn_gone, ("td", "in"): td_rows,
                            ("rnn2", "in"): gone(units["td"], 4), ("rnn2", "self"): gone(units["rnn2"], 6),
                            ("q", "in"): gone(units["rnn2"], 6)}, directions=2 if wrap == "bi" else 1)
    x = sequences(4, 3)
    got = run(new, new_inputs(x, [0, 1, 2], new_in))
    np.testing.assert_allclose(got, run(ref, x), atol=1e-5, rtol=0)


def test_a_mask_passed_by_hand_is_refused():
    """Keras 3 records the mask a Masking layer hands on (and rebuilds it); one passed by hand is a tensor
    argument the surgeon does not follow, so it is refused, naming the layer."""
    import keras

    x = inp = keras.Input((T, 3), name="obs")
    mask = keras.ops.any(keras.ops.not_equal(x, 0.0), axis=-1)
    out = keras.layers.LSTM(4, name="rnn")(x, mask=mask)
    model = keras.Model(inp, keras.layers.Dense(2, name="q")(out))
    with pytest.raises(SurgeryError, match="'rnn'.*keyword"):
        surgeon.transplant(model, {"units": {"rnn": 6}})


def test_other_outputs_of_a_multi_output_layer_are_refused_when_changed(K):
    """Only recurrent layers' extra outputs carry unit IDs the surgeon knows: MultiHeadAttention's scores,
    read when the IDs reaching it change, are refused (it has no rule); unchanged, the model is copied."""
    x = inp = K.Input((6, 4), name="obs")
    h = K.layers.Dense(8, name="h")(x)
    att, scores = K.layers.MultiHeadAttention(2, 4, name="mha")(h, h, return_attention_scores=True)
    model = randomize(K.Model(inp, [K.layers.Dense(2, name="q")(att), scores]))
    with pytest.raises(SurgeryError, match="'mha'"):
        surgeon.transplant(model, {"units": {"h": 10}})
    new = surgeon.transplant(model, {"units": {"q": 3}})
    x = np.random.default_rng(0).normal(size=(2, 6, 4)).astype("float32")
    got, want = [np.asarray(t) for t in new(x)], [np.asarray(t) for t in model(x)]
    np.testing.assert_allclose(got[1], want[1], atol=1e-6)
    np.testing.assert_allclose(got[0][..., :2], want[0], atol=1e-5)
