"""Surgery on tf_keras models in graph mode, after keras-rl2 disabled eager execution."""

from keras_surgeon_rl.rl import tf_keras  # first: sets up keras-rl2 (graph mode from here on)

import numpy as np
import tensorflow as tf
from rl.agents.dqn import DQNAgent
from rl.memory import SequentialMemory

from keras_surgeon_rl import surgeon


def q_network(n_obs=2, window=1):
    model = tf_keras.Sequential(
        [tf_keras.layers.Flatten(input_shape=(window, n_obs), name="flat"),
         tf_keras.layers.Dense(8, activation="relu", name="h0"), tf_keras.layers.Dense(2, name="q")],
        name="qnet",
    )
    rng = np.random.default_rng(0)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype("float32") for w in model.get_weights()])
    return model


def test_eager_is_off():
    assert not tf.executing_eagerly()


def test_surgery_on_a_model_an_agent_compiled():
    """Compiling a DQNAgent adds outbound nodes to the model's layers; only the model's own count."""
    model = q_network()
    agent = DQNAgent(model=model, nb_actions=2, memory=SequentialMemory(limit=100, window_length=1),
                     nb_steps_warmup=10, enable_dueling_network=True)
    agent.compile(tf_keras.optimizers.legacy.Adam(1e-3))
    before = [w.copy() for w in model.get_weights()]
    spec = {"inputs": {"old": ["x_dot", "theta"], "new": ["x", "x_dot", "theta", "theta_dot"]},
            "units": {"h0": 16}, "insert": [{"after": "h0", "activation": "relu"}],
            "outputs": {"old": ["left", "right"], "new": ["left", "right", "noop"]}}
    new = surgeon.transplant(model, spec)
    assert [layer.name for layer in new.layers] == ["flat", "h0", "h0_dense", "q"]
    assert surgeon.verify(model, new, spec) <= 1e-5
    for a, b in zip(before, model.get_weights()):
        assert a.tobytes() == b.tobytes()


def test_graph_mode_reads_and_writes_the_whole_model_in_few_session_runs(monkeypatch):
    """One session run reads every old weight and one writes every new one, however many layers,
    and the outputs are still the old model's."""
    layers = [tf_keras.layers.Flatten(input_shape=(1, 3), name="flat")]
    layers += [tf_keras.layers.Dense(6, activation="relu", name=f"h{i}") for i in range(8)]
    model = tf_keras.Sequential(layers + [tf_keras.layers.Dense(2, name="q")], name="deep")
    spec = {"inputs": {"old": [0, 1, 2], "new": [0, 1, 2, 3]}, "outputs": {"old": [0, 1], "new": [0, 1, 2]}}
    surgeon.transplant(model, spec)  # warm-up
    runs = []
    real_run = tf.compat.v1.Session.run

    def counting(self, fetches, *args, **kwargs):
        runs.append(fetches)
        return real_run(self, fetches, *args, **kwargs)

    monkeypatch.setattr(tf.compat.v1.Session, "run", counting)
    new = surgeon.transplant(model, spec)
    monkeypatch.undo()
    # one read, one write, and tf_keras's own runs that initialize the new variables (two here): a
    # number that does not grow with the layers (a run per layer to read and to write made 20 and more)
    assert len(runs) <= 6, f"{len(runs)} session runs for a 10-layer model: {runs}"
    assert surgeon.verify(model, new, spec) <= 1e-5
