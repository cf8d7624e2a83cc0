"""resume_dqn on recurrent Q-networks (keras-rl2, tf_keras in graph mode): an LSTM, GRU or SimpleRNN over
keras-rl2's window of observations is widened and given new features; the new Q-network gives the old
Q-values on windows of 30 steps, the online and target networks alike, and the new agent fits."""

from keras_surgeon_rl.rl import CARTPOLE_FEATURES, make_env, resume_dqn, tf_keras  # first: sets up keras-rl2

import numpy as np
import pytest
from rl.agents.dqn import DQNAgent
from rl.memory import SequentialMemory
from rl.policy import BoltzmannQPolicy

from keras_surgeon_rl import SurgeryError

KEPT = ["x", "theta"]
WINDOW = 30


def recurrent_agent(cell, wrap=False, units=6):
    rnn = getattr(tf_keras.layers, cell)(units, name="rnn")
    if wrap:
        rnn = tf_keras.layers.Bidirectional(getattr(tf_keras.layers, cell)(units), name="rnn")
    model = tf_keras.Sequential([tf_keras.Input((WINDOW, len(KEPT)), name="obs"), rnn,
                                 tf_keras.layers.Dense(2, name="q")], name="recurrent_q")
    agent = DQNAgent(model=model, nb_actions=2, memory=SequentialMemory(limit=2000, window_length=WINDOW),
                     nb_steps_warmup=40, target_model_update=1e-2, policy=BoltzmannQPolicy())
    agent.compile(tf_keras.optimizers.legacy.Adam(learning_rate=1e-3))
    agent.fit(make_env("CartPole-v1", seed=0, features=KEPT), nb_steps=120, verbose=0)
    return agent


def windows(n=256, seed=0):
    return np.random.default_rng(seed).normal(0, 1.0, size=(n, WINDOW, len(CARTPOLE_FEATURES))).astype("float32")


@pytest.mark.parametrize("cell, wrap", [("LSTM", False), ("GRU", False), ("SimpleRNN", False), ("LSTM", True)])
def test_recurrent_q_network_widened_with_new_observations_keeps_its_q_values(cell, wrap):
    agent = recurrent_agent(cell, wrap)
    before = [w.copy() for w in agent.model.get_weights() + agent.target_model.get_weights()]
    spec = {"inputs": {"old": KEPT, "new": CARTPOLE_FEATURES}, "units": {"rnn": [5, 0, 1, "a", 2, 3, "b", 4]}}
    new = resume_dqn(agent, spec)
    x = windows()
    kept = [CARTPOLE_FEATURES.index(f) for f in KEPT]
    for old_net, new_net in ((agent.model, new.model), (agent.target_model, new.target_model)):
        np.testing.assert_allclose(new_net.predict_on_batch(x), old_net.predict_on_batch(x[..., kept]), atol=1e-5,
                                   rtol=0)
    assert all(a.tobytes() == b.tobytes() for a, b in
               zip(before, agent.model.get_weights() + agent.target_model.get_weights())), "the old agent changed"
    new.fit(make_env("CartPole-v1", seed=1), nb_steps=60, verbose=0)
    assert new.step == 60


def test_net2net_on_a_recurrent_q_network_keeps_its_q_values():
    agent = recurrent_agent("GRU")
    new = resume_dqn(agent, {"units": {"rnn": 10}, "init": "net2net"})
    x = windows()[..., [0, 2]]
    np.testing.assert_allclose(new.model.predict_on_batch(x), agent.model.predict_on_batch(x), atol=1e-5, rtol=0)


def test_inserting_a_recurrent_layer_is_refused_before_anything_is_built():
    agent = recurrent_agent("LSTM")
    with pytest.raises(SurgeryError, match="cannot insert a 'GRU' layer"):
        resume_dqn(agent, {"insert": [{"after": "rnn", "layer": "GRU", "config": {"units": 6}}]})


def test_the_recurrent_cartpole_example_keeps_q_values_and_greedy_returns():
    """examples/recurrent_cartpole.py at smoke size: LSTM 16 → 32 and two observations added, on real windows."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from examples import recurrent_cartpole

    result = recurrent_cartpole.main(["--old-steps", "300", "--steps", "100", "--eval-episodes", "2"])
    assert result["q_gap"] <= 1e-5
    assert result["same_actions"] == 1.0
    assert result["after"]["returns"] == result["before"]["returns"]
