"""transplant writes the new weights into the variables a block of rows at a time (issue #19): the
values are those of ``set_weights`` with whole arrays, and no full-size NumPy copy of a large weight
is made on its way into its variable."""

import tracemalloc

import numpy as np
import pytest

from keras_surgeon_rl import surgeon
from keras_surgeon_rl.adapters import inplace
from keras_surgeon_rl.adapters.base import KerasAdapter
from keras_surgeon_rl.weights import AxisMap, Copy

from conftest import mlp, weights_of


def test_rows_of_a_copy_are_the_rows_of_the_whole_copy():
    rng = np.random.default_rng(0)
    old = rng.standard_normal((6, 5)).astype(np.float32)
    fresh = rng.standard_normal((9, 7)).astype(np.float32)
    rows = AxisMap(np.array([0, 1, -1, 2, 3, -1, 4, 5, -1]), scale=rng.uniform(0.5, 2, 9),
                   zero=np.array([0, 0, 1, 0, 0, 0, 0, 0, 0], bool), offset=rng.standard_normal(9))
    columns = AxisMap(np.array([4, 3, 2, 1, 0, -1, -1]), zero=np.array([0, 0, 0, 0, 0, 0, 1], bool))
    for axes in ([rows, columns], [None, columns]):
        m = Copy("kernel", axes)
        f = fresh if axes[0] is not None else fresh[:6]
        whole = m.apply(old, f)
        for r0, r1 in [(0, 1), (0, 3), (2, 5), (4, len(f)), (0, len(f))]:
            np.testing.assert_array_equal(m.rows(r0, r1, old.shape).apply(old, f[r0:r1]), whole[r0:r1])


def _edit(K, sequential):
    model = mlp(K, n_in=5, hidden=(12, 9), n_out=3, sequential=sequential)
    spec = {"inputs": {"old": list(range(5)), "new": [0, 1, 5, 2, 3, 4]},  # a new input in the middle
            "units": {"h0": 16},                                            # new columns keep their init
            "outputs": {"old": [0, 1, 2], "new": [0, 1, 2, 3]}}
    return model, spec


@pytest.mark.parametrize("sequential", [True, False], ids=["sequential", "functional"])
def test_block_writes_give_the_arrays_set_weights_gives(K, sequential, monkeypatch):
    old, spec = _edit(K, sequential)
    before = weights_of(old)
    surgeon.transplant(old, spec)  # warm-up: Keras 3's first build in a process draws other seeds
    monkeypatch.setattr(inplace, "BLOCK_BYTES", 40)  # a block of one to a few rows
    K.utils.set_random_seed(3)
    blocks = surgeon.transplant(old, spec)
    monkeypatch.setattr(KerasAdapter, "in_place", lambda self, layer, variable: None)  # set_weights path
    K.utils.set_random_seed(3)
    whole = surgeon.transplant(old, spec)
    got, want = weights_of(blocks), weights_of(whole)
    assert [w.shape for w in got] == [w.shape for w in want]
    for i, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_array_equal(g, w, err_msg=f"weight {i}")
    new_cols = blocks.get_layer("h0").get_weights()[0][:, 12:]
    assert np.abs(new_cols).max() > 0  # the new units' weights came from the initializer, not zeros
    assert surgeon.verify(old, blocks, spec) < 1e-5
    for i, (value, was) in enumerate(zip(weights_of(old), before)):  # the old model is untouched
        np.testing.assert_array_equal(value, was, err_msg=f"weight {i}")


@pytest.mark.parametrize("widen", [False, True], ids=["copied-whole", "new-units"])
def test_no_full_size_numpy_copy_of_a_large_weight(K, widen):
    n_in, units = 2048, 4096  # a 32 MB kernel
    old = K.Sequential([K.Input((n_in,), name="obs"), K.layers.Dense(units, name="big"),
                        K.layers.Dense(2, name="q")], name="big_net")
    spec = {"inputs": {"old": list(range(n_in)), "new": list(range(n_in + 1))}}
    if widen:
        spec["units"] = {"big": units + 64}
    kernel_bytes = (n_in + 1) * units * 4
    surgeon.transplant(old, spec)  # warm-up: first-call allocations are not the surgery's
    tracemalloc.start()
    try:
        new = surgeon.transplant(old, spec)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 0.5 * kernel_bytes, f"traced NumPy peak {peak / 2**20:.1f} MB for a {kernel_bytes / 2**20:.1f} MB kernel"
    kernel = new.get_layer("big").get_weights()[0]
    np.testing.assert_array_equal(kernel[:n_in, :units], old.get_layer("big").get_weights()[0])
    np.testing.assert_array_equal(kernel[n_in], 0)  # the new input's row reads nothing yet
