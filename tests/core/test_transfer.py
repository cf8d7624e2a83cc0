"""Transfer strategies on real Keras 3 and tf_keras (eager) models: freezing, freeze-then-thaw in
``model.fit``, re-initialization, noise, layer copying and policy distillation."""

import subprocess
import sys

import keras
import numpy as np
import pytest
import tf_keras

from keras_surgeon_rl.transfer import (
    FreezeThawCallback,
    add_noise,
    copy_layers,
    distill,
    freeze,
    freeze_all_but_final,
    greedy_agreement,
    recompile,
    reset_layer,
    temperature_schedule,
    thaw,
    thaw_schedule,
)

FLAVOURS = {"keras3": keras, "tf_keras": tf_keras}


def mlp(lib, sizes, n_in=4, name=None):
    """Dense ReLU network n_in -> sizes[0] -> ... -> sizes[-1] (linear output), built."""
    layers = [lib.layers.Dense(n, activation="relu") for n in sizes[:-1]] + [lib.layers.Dense(sizes[-1])]
    return lib.Sequential([lib.Input(shape=(n_in,))] + layers, name=name)


def data(n=256, seed=0, n_in=4, n_out=2):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, n_in)).astype("float32"), rng.normal(size=(n, n_out)).astype("float32")


def weights(model):
    return [layer.get_weights() for layer in model.layers]


def flat(arrays):
    """Arrays of a (nested) list of arrays, in order."""
    if isinstance(arrays, np.ndarray):
        return [arrays]
    return [array for item in arrays for array in flat(item)]


def same(a, b):
    """Bit-identical (nested) lists of arrays."""
    a, b = flat(a), flat(b)
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_importing_transfer_pulls_in_no_keras_and_no_keras_rl2():
    code = ("import sys, keras_surgeon_rl.transfer; "
            "print(sorted(m for m in ('keras', 'tf_keras', 'rl', 'tensorflow') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_thaw_schedule_is_linear_from_the_output_backwards():
    assert thaw_schedule(3, total_steps=100, tl_end=0.25) == [25, 12, 0]
    assert thaw_schedule(5, total_steps=1000, tl_end=0.4) == [400, 300, 200, 100, 0]
    assert thaw_schedule(3, total_steps=100, tl_end=0.29) == [29, 14, 0]  # no float drift
    assert thaw_schedule(3, total_steps=100, tl_end=0.0) == [0, 0, 0]
    assert thaw_schedule(1, total_steps=10) == [0]
    with pytest.raises(ValueError, match="tl_end in \\[0, 1\\]"):
        thaw_schedule(3, total_steps=100, tl_end=1.5)


@pytest.mark.parametrize("flavour", ["keras3", "tf_keras"])
def test_frozen_layer_is_bit_identical_after_training_while_others_move(flavour):
    lib = FLAVOURS[flavour]
    lib.utils.set_random_seed(0)
    model = mlp(lib, [16, 16, 2])
    model.compile(optimizer=lib.optimizers.Adam(1e-2), loss="mse", metrics=["mae"])
    x, y = data()
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)  # optimizer built on all layers
    optimizer = model.optimizer
    assert freeze(model, [0]) == [model.layers[0].name]
    recompile(model)
    before = weights(model)
    history = model.fit(x, y, epochs=2, batch_size=32, verbose=0)
    after = weights(model)
    assert same(before[0], after[0])
    assert not same(before[1], after[1]) and not same(before[2], after[2])
    assert "mae" in history.history  # metrics kept
    assert model.optimizer is optimizer  # it already knew every variable: its state is kept


def test_recompile_after_thaw_gives_a_fresh_optimizer_when_needed():
    keras.utils.set_random_seed(1)
    model = mlp(keras, [16, 16, 2])
    assert freeze_all_but_final(model) == [model.layers[0].name, model.layers[1].name]
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.02), loss="mse")
    x, y = data()
    before = weights(model)
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)  # optimizer built on the final layer only
    middle = weights(model)
    assert same(before[0], middle[0]) and same(before[1], middle[1]) and not same(before[2], middle[2])

    thaw(model, [0, 1])
    recompile(model)
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    after = weights(model)
    assert not same(middle[0], after[0]) and not same(middle[1], after[1])
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert float(model.optimizer.learning_rate) == pytest.approx(0.02)


def test_recompile_refuses_an_uncompiled_model():
    with pytest.raises(ValueError, match="not compiled"):
        recompile(mlp(keras, [4, 2]))


def test_freeze_then_thaw_callback_thaws_each_layer_at_its_step_in_fit():
    keras.utils.set_random_seed(2)
    model = keras.Sequential(
        [keras.Input(shape=(4,)), keras.layers.Dense(16, activation="relu"), keras.layers.Flatten(),
         keras.layers.Dense(16, activation="relu"), keras.layers.Dense(2)]
    )
    dense = [model.layers[0], model.layers[2], model.layers[3]]
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    snapshots = []

    class Record(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            snapshots.append([layer.get_weights() for layer in dense])

        def on_train_batch_end(self, batch, logs=None):
            snapshots.append([layer.get_weights() for layer in dense])

    schedule = FreezeThawCallback(tl_end=0.5)
    x, y = data(n=320)  # 10 batches of 32 per epoch, 4 epochs: 40 steps, thawed over 20
    model.fit(x, y, epochs=4, batch_size=32, verbose=0, callbacks=[schedule, Record()])

    expected = {dense[0].name: 20, dense[1].name: 10, dense[2].name: 0}
    assert schedule.thaw_steps == expected
    assert schedule.thawed_at == expected
    assert len(snapshots) == 41  # snapshots[d]: weights after d steps
    for i, layer in enumerate(dense):
        s = expected[layer.name]
        # untouched before its step s (0-based), trained by step s itself and later ones
        assert all(same(snapshots[d][i], snapshots[0][i]) for d in range(s + 1)), layer.name
        assert not same(snapshots[s + 1][i], snapshots[s][i]), layer.name
        assert not same(snapshots[40][i], snapshots[39][i]), layer.name
    assert all(layer.trainable for layer in dense)


def test_freeze_then_thaw_callback_replaces_an_optimizer_built_on_the_final_layer_only():
    keras.utils.set_random_seed(3)
    model = mlp(keras, [16, 16, 2])
    freeze_all_but_final(model)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.02), loss="mse")
    x, y = data(n=64)
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)  # Adam now knows the final layer only
    before = weights(model)

    model.fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[FreezeThawCallback(tl_end=0.5)])

    after = weights(model)  # 4 steps, thawed at [2, 1, 0]: every layer trained
    assert all(not same(b, a) for b, a in zip(before, after))
    assert float(model.optimizer.learning_rate) == pytest.approx(0.02)


@pytest.mark.parametrize("flavour", ["keras3", "tf_keras"])
def test_reset_layer_redraws_the_layer_from_its_own_initializers(flavour):
    lib = FLAVOURS[flavour]
    lib.utils.set_random_seed(3)
    model = lib.Sequential(
        [lib.Input(shape=(64,)), lib.layers.Dense(64, activation="relu"),
         lib.layers.Dense(128, kernel_initializer="glorot_uniform", bias_initializer="ones")]
    )
    trained = [np.full_like(w, 7.0) for w in model.layers[-1].get_weights()]
    model.layers[-1].set_weights(trained)
    first = model.layers[0].get_weights()

    assert reset_layer(model, -1) == ["kernel", "bias"]
    kernel, bias = model.layers[-1].get_weights()
    limit = np.sqrt(6.0 / (64 + 128))
    assert np.abs(kernel).max() <= limit
    assert np.std(kernel) == pytest.approx(limit / np.sqrt(3.0), rel=0.05)  # uniform(-limit, limit)
    assert np.array_equal(bias, np.ones(128, dtype="float32"))
    assert same(first, model.layers[0].get_weights())  # other layers untouched

    reset_layer(model, model.layers[-1].name)
    assert not np.array_equal(kernel, model.layers[-1].get_weights()[0])  # a fresh draw each time
    reset_layer(model, -1, seed=5)
    seeded = model.layers[-1].get_weights()[0]
    reset_layer(model, -1, seed=5)
    assert np.array_equal(seeded, model.layers[-1].get_weights()[0])


@pytest.mark.parametrize("flavour", ["keras3", "tf_keras"])
def test_add_noise_has_alpha_times_the_std_of_each_array(flavour):
    lib = FLAVOURS[flavour]
    lib.utils.set_random_seed(4)
    model = lib.Sequential(
        [lib.Input(shape=(200,)), lib.layers.Dense(200, activation="relu"), lib.layers.BatchNormalization(),
         lib.layers.Dense(200)]
    )
    model.layers[1].set_weights([np.random.default_rng(0).normal(3.0, 2.0, 200).astype("float32")
                                 for _ in range(4)])
    frozen = model.layers[2]
    frozen.trainable = False  # frozen layers get noise too
    before = weights(model)
    assert add_noise(model, last_n=2, alpha=0.1, seed=0) == [model.layers[1].name, model.layers[2].name]
    after = weights(model)

    assert same(before[0], after[0])  # not among the last 2
    kernel_ratio = np.std(after[2][0] - before[2][0]) / (0.1 * np.std(before[2][0]))
    assert 0.9 <= kernel_ratio <= 1.1, kernel_ratio
    assert np.array_equal(after[2][1], before[2][1])  # zero bias: zero std, zero noise
    gamma_ratio = np.std(after[1][0] - before[1][0]) / (0.1 * np.std(before[1][0]))
    assert 0.9 <= gamma_ratio <= 1.1, gamma_ratio
    assert same(after[1][2:], before[1][2:])  # moving statistics are state, not parameters
    with pytest.raises(ValueError, match="last_n in \\[1, 3\\]"):
        add_noise(model, last_n=4, alpha=0.1)


def test_copy_layers_first_and_last_with_and_without_freezing():
    keras.utils.set_random_seed(5)
    src, dst = mlp(keras, [16, 16, 2]), mlp(keras, [16, 16, 2])
    src_w, dst_w = weights(src), weights(dst)

    pairs = copy_layers(src, dst, first=2)
    assert pairs == [(src.layers[0].name, dst.layers[0].name), (src.layers[1].name, dst.layers[1].name)]
    assert same(weights(dst)[0], src_w[0]) and same(weights(dst)[1], src_w[1])
    assert same(weights(dst)[2], dst_w[2])
    assert all(layer.trainable for layer in dst.layers)

    other = mlp(keras, [16, 16, 2])
    copy_layers(src, other, last=1, freeze=True)
    assert same(weights(other)[2], src_w[2])
    assert [layer.trainable for layer in other.layers] == [True, True, False]


def test_copy_layers_between_tf_keras_and_keras3_keeps_outputs():
    tf_keras.utils.set_random_seed(6)
    src = mlp(tf_keras, [8, 3])
    dst = mlp(keras, [8, 3])
    copy_layers(src, dst, first=2)
    x, _ = data(n=16)
    np.testing.assert_allclose(src(x).numpy(), keras.ops.convert_to_numpy(dst(x)), rtol=1e-5, atol=1e-6)


def test_copy_layers_shape_mismatch_names_both_layers_and_points_at_transplant():
    src, dst = mlp(keras, [16, 2], name="src"), mlp(keras, [32, 2], name="dst")
    dst_before = weights(dst)
    with pytest.raises(ValueError) as error:
        copy_layers(src, dst, first=2)
    message = str(error.value)
    assert src.layers[0].name in message and dst.layers[0].name in message
    assert "[(4, 16), (16,)]" in message and "[(4, 32), (32,)]" in message
    assert "keras_surgeon_rl.surgeon.transplant" in message
    assert same(dst_before, weights(dst))  # nothing copied
    with pytest.raises(ValueError, match="exactly one of first=n or last=n"):
        copy_layers(src, dst, first=1, last=1)


def test_distill_a_random_teacher_into_another_architecture():
    keras.utils.set_random_seed(0)
    teacher = mlp(keras, [32, 3])  # fixed random Q-network, 4-dim states, 3 actions
    student = mlp(keras, [64, 64, 3])
    rng = np.random.default_rng(0)
    states = rng.normal(size=(4000, 4)).astype("float32")
    held_out = rng.normal(size=(1000, 4)).astype("float32")
    assert greedy_agreement(teacher, student, held_out) < 0.8  # an untrained student disagrees

    history = distill(teacher, student, states, temperature=0.1, epochs=12, batch_size=64, learning_rate=3e-3)

    assert len(history.loss) == 12 and history.temperature == [0.1] * 12
    assert history.loss[-1] < 0.25 * history.loss[0]
    assert greedy_agreement(teacher, student, held_out) >= 0.95


def test_distill_matches_actions_by_id_with_a_temperature_schedule():
    tf_keras.utils.set_random_seed(1)
    keras.utils.set_random_seed(1)
    teacher = mlp(tf_keras, [32, 3])  # a tf_keras teacher (eager) for a Keras 3 student
    student = mlp(keras, [64, 64, 4])
    teacher_ids = ["left", "stay", "right"]
    student_ids = ["right", "noop", "left", "stay"]  # reordered, plus one the teacher lacks
    rng = np.random.default_rng(1)
    states = rng.normal(size=(6000, 4)).astype("float32")
    held_out = rng.normal(size=(1000, 4)).astype("float32")

    history = distill(
        teacher, student, states, temperature=temperature_schedule(0.1, 0.5, 0.1), epochs=1,
        batch_size=32, learning_rate=3e-3, teacher_actions=teacher_ids, student_actions=student_ids,
        validation_states=held_out,
    )

    assert history.temperature == [0.1, 0.2, 0.3, 0.4, 0.5]  # each sample once per temperature
    assert len(history.validation_agreement) == 5
    by_id = greedy_agreement(teacher, student, held_out, teacher_ids, student_ids)
    assert by_id == history.validation_agreement[-1]
    assert by_id >= 0.9
    assert greedy_agreement(teacher, student, held_out) < 0.6  # matching by position is wrong
    with pytest.raises(ValueError, match="share no ID"):
        distill(teacher, student, states[:10], teacher_actions=["a", "b", "c"], student_actions=student_ids)
