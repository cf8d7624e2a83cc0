"""Property-based: random MLPs, random ID edits; outputs match the old model with removed units zeroed."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from keras_surgeon_rl import surgeon

from conftest import FLAVOURS, mlp


@st.composite
def edits(draw):
    n_in = draw(st.integers(1, 5))
    hidden = draw(st.lists(st.integers(1, 6), min_size=1, max_size=3))
    n_out = draw(st.integers(1, 4))

    def edit(n, prefix, keep_one=False):
        old = [f"{prefix}{i}" for i in range(n)]
        kept = draw(st.lists(st.sampled_from(old), unique=True, min_size=1 if keep_one else 0, max_size=n))
        added = [f"{prefix}new{i}" for i in range(draw(st.integers(0, 3)))]
        new = draw(st.permutations(kept + added))
        if not new:
            new = [f"{prefix}new"]
        return old, list(new)

    inputs = edit(n_in, "i")
    # hidden IDs are 0..n-1: draw kept ints and appended names
    units = {}
    for k, w in enumerate(hidden):
        kept = draw(st.lists(st.integers(0, w - 1), unique=True, min_size=0, max_size=w))
        new = list(draw(st.permutations(kept + [f"n{j}" for j in range(draw(st.integers(0, 3)))])))
        units[f"h{k}"] = new or ["n0"]
    outputs = edit(n_out, "o", keep_one=True)
    flavour = draw(st.sampled_from(sorted(FLAVOURS)))
    sequential = draw(st.booleans())
    return flavour, sequential, n_in, hidden, n_out, inputs, units, outputs


def reference(model, spec, hidden):
    """The old model with every removed unit's outgoing weights zeroed (plain NumPy, no library code)."""
    clone = type(model).from_config(model.get_config())
    clone.set_weights(model.get_weights())
    names = [f"h{k}" for k in range(len(hidden))] + ["q"]
    old_in, new_in = spec["inputs"]["old"], spec["inputs"]["new"]
    removed = [[i for i, u in enumerate(old_in) if u not in new_in]]
    for k, w in enumerate(hidden):
        removed.append([i for i in range(w) if i not in spec["units"][f"h{k}"]])
    for name, rows in zip(names, removed):
        ws = clone.get_layer(name).get_weights()
        ws[0][rows] = 0
        clone.get_layer(name).set_weights(ws)
    return clone


@given(edits())  # examples per backend: see the "surgery" profile in conftest.py
def test_random_edits_preserve_the_function_on_kept_units(case):
    flavour, sequential, n_in, hidden, n_out, (old_in, new_in), units, (old_out, new_out) = case
    K = FLAVOURS[flavour]
    model = mlp(K, n_in=n_in, hidden=tuple(hidden), n_out=n_out, sequential=sequential)
    spec = {"inputs": {"old": old_in, "new": new_in}, "units": units,
            "outputs": {"old": old_out, "new": new_out}}
    new = surgeon.transplant(model, spec)
    assert new.outputs[0].shape[-1] == len(new_out)
    assert surgeon.verify(reference(model, spec, hidden), new, spec) <= 1e-5
