"""Greedy evaluation of DDPG agents: the deterministic actor's action (keras-rl2's test mode), checked
against manual rollouts on Pendulum-v1; neutral to training; random torques for the reference."""

from keras_surgeon_rl.rl import PENDULUM_FEATURES, make_env, tf_keras  # first: sets up keras-rl2

import sys
from pathlib import Path

import gymnasium
import numpy as np
import pytest
from rl.core import Processor

from keras_surgeon_rl.rl.evaluate import GreedyEvaluation, eval_seeds, greedy_returns, random_returns

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from examples.experiments import ddpg  # noqa: E402

KEPT = ["cos_theta", "sin_theta"]
EXP = {"env": "Pendulum-v1",
       "old": {"features": KEPT, "actor": [8], "critic": [8]},
       "new": {"features": None, "actor": [8], "critic": [8]},
       "specs": {"preserve": {"inputs": {"old": KEPT, "new": PENDULUM_FEATURES}}},
       "agent": {"warmup": 50, "memory": 2000}}
W = np.array([[0.7], [-1.3], [0.4]], np.float32)  # torque = obs @ W + B
B = np.array([0.25], np.float32)


def linear_actor():
    """An actor whose action is known: ``obs @ W + B`` (window 1)."""
    actor = tf_keras.Sequential([tf_keras.layers.Flatten(input_shape=(1, 3)),
                                 tf_keras.layers.Dense(1, activation="linear")])
    actor.set_weights([W, B])
    return actor


def manual_returns(seeds, action_of, max_steps=None):
    """Plain gymnasium rollouts: ``action_of(observation)`` each step until the episode ends."""
    returns, lengths = [], []
    for s in seeds:
        env = gymnasium.make("Pendulum-v1")
        obs, _ = env.reset(seed=s)
        total, n, done = 0.0, 0, False
        while not done and (max_steps is None or n < max_steps):
            obs, reward, terminated, truncated, _ = env.step(action_of(np.asarray(obs, np.float32)))
            total, n, done = total + float(reward), n + 1, terminated or truncated
        env.close()
        returns.append(total)
        lengths.append(n)
    return returns, lengths


def test_actor_network_acts_by_its_output_as_a_manual_rollout():
    seeds = eval_seeds(3)
    result = greedy_returns(linear_actor(), lambda: make_env("Pendulum-v1"), seeds, kind="actor")
    returns, lengths = manual_returns(seeds, lambda o: (o @ W + B).astype(np.float32))
    assert result["lengths"] == lengths == [200, 200, 200]  # Pendulum's time limit
    np.testing.assert_allclose(result["returns"], returns, rtol=1e-5)
    # a different actor gives different returns: the actions are really the actor's
    other = linear_actor()
    other.set_weights([np.zeros_like(W), np.array([-2.0], np.float32)])
    constant = greedy_returns(other, lambda: make_env("Pendulum-v1"), seeds, kind="actor")
    np.testing.assert_allclose(constant["returns"], manual_returns(seeds, lambda o: np.array([-2.0], np.float32))[0],
                               rtol=1e-5)
    assert not np.allclose(constant["returns"], result["returns"])
    capped = greedy_returns(linear_actor(), lambda: make_env("Pendulum-v1"), seeds, kind="actor", max_steps=7)
    assert capped["lengths"] == [7, 7, 7]
    np.testing.assert_allclose(capped["returns"], manual_returns(seeds, lambda o: o @ W + B, max_steps=7)[0],
                               rtol=1e-5)


class Halve(Processor):
    """Halves the torque (``process_action``) and doubles theta_dot (``process_observation``)."""

    def process_action(self, action):
        return action / 2.0

    def process_observation(self, observation):
        return np.asarray(observation, np.float32) * np.array([1, 1, 2], np.float32)


def test_ddpg_agent_acts_by_its_actor_with_the_processor_and_no_noise():
    tf_keras.utils.set_random_seed(0)
    agent = ddpg.new_agent(EXP, EXP["new"], "new")
    agent.actor.set_weights([w if w.ndim == 1 else w * 5 for w in agent.actor.get_weights()])  # torques not ~0
    seeds = eval_seeds(2)
    np.random.seed(3)
    state = np.random.get_state()[1].copy()
    noise = agent.random_process.x_prev.copy()
    result = greedy_returns(agent, lambda: make_env("Pendulum-v1"), seeds)
    assert np.array_equal(np.random.get_state()[1], state)  # no exploration noise drawn
    np.testing.assert_array_equal(agent.random_process.x_prev, noise)
    assert result == greedy_returns(agent.actor, lambda: make_env("Pendulum-v1"), seeds, kind="actor")

    def act(o):  # keras-rl2's select_action without noise
        return agent.actor.predict_on_batch(agent.process_state_batch([[o]])).flatten()

    returns, _ = manual_returns(seeds, act)
    np.testing.assert_allclose(result["returns"], returns, rtol=1e-5)
    torques = [act(o)[0] for o in np.random.default_rng(0).normal(size=(20, 3)).astype(np.float32)]
    assert np.ptp(torques) > 0.1  # a constant actor would prove little
    agent.processor = Halve()
    processed = greedy_returns(agent, lambda: make_env("Pendulum-v1"), seeds)
    returns, _ = manual_returns(seeds, lambda o: act(Halve().process_observation(o)) / 2.0)
    np.testing.assert_allclose(processed["returns"], returns, rtol=1e-5)
    assert not np.allclose(processed["returns"], result["returns"])


def test_evaluating_ddpg_during_fit_changes_nothing_in_training():
    def train(callbacks):
        tf_keras.backend.clear_session()
        tf_keras.utils.set_random_seed(0)
        agent = ddpg.new_agent(EXP, EXP["old"], "old")
        records = ddpg.fit(agent, ddpg.env_for(EXP, EXP["old"], 0), 240, callbacks=callbacks)
        return records, [w.copy() for w in agent.actor.get_weights()]

    plain, plain_weights = train([])
    callback = GreedyEvaluation(lambda: make_env("Pendulum-v1", features=KEPT), eval_seeds(2), every=120)
    evaluated, weights = train([callback])
    assert evaluated == plain and len(plain) == 1
    for a, b in zip(weights, plain_weights):
        np.testing.assert_array_equal(a, b)
    assert [r["step"] for r in callback.results] == [120, 240]
    assert all(r["lengths"] == [200, 200] for r in callback.results)


def test_random_torques_are_seeded_uniform_and_leave_global_generators_alone():
    np.random.seed(5)
    state = np.random.get_state()[1].copy()
    first = random_returns(lambda: make_env("Pendulum-v1"), eval_seeds(3), repeats=2)
    assert np.array_equal(np.random.get_state()[1], state)
    assert first == random_returns(lambda: make_env("Pendulum-v1"), eval_seeds(3), repeats=2)
    assert random_returns(lambda: make_env("Pendulum-v1"), eval_seeds(3), repeats=2, rng_seed=1) != first
    assert -1700 < first["mean"] < -300  # Pendulum under random torques: about -1,000 to -1,200 per episode
    # the torques are uniform in [-2, 2], the same draws as a manual loop with the same generator
    rng = np.random.default_rng(0)
    space = make_env("Pendulum-v1").action_space
    manual = []
    for s in eval_seeds(3):
        total = 0.0
        for _ in range(2):
            total += manual_returns([s], lambda o: rng.uniform(space.low, space.high).astype(np.float32))[0][0]
        manual.append(total / 2)
    np.testing.assert_allclose(first["returns"], manual, rtol=1e-6)


def test_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="kind"):
        greedy_returns(linear_actor(), lambda: make_env("Pendulum-v1"), [0], kind="argmax")
    with pytest.raises(TypeError, match="actor"):
        greedy_returns(object(), lambda: make_env("Pendulum-v1"), [0], kind="actor")
