"""Greedy evaluation on fixed start states: deterministic, exact across function-preserving surgery,
neutral to training, and stored by the DQN experiments beside the training returns."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_surgeon_rl.rl import CARTPOLE_FEATURES, make_env, resume_dqn, tf_keras
from keras_surgeon_rl.rl.evaluate import GreedyEvaluation, eval_seeds, greedy_returns, random_returns

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from examples.experiments import dqn  # noqa: E402

KEPT = ["x_dot", "theta"]
EXP = {"env": "CartPole-v1",
       "old": {"features": KEPT, "actions": None, "hidden": [16]},
       "new": {"features": None, "actions": None, "hidden": [16]},
       "specs": {"preserve": {"inputs": {"old": KEPT, "new": CARTPOLE_FEATURES}}},
       "agent": {"policy": "boltzmann", "warmup": 100}}


def old_env():
    return make_env("CartPole-v1", features=KEPT)


def trained_agent(steps=300, seed=0):
    """A DQN on CartPole-v1 seeing (x_dot, theta), trained ``steps`` steps."""
    tf_keras.utils.set_random_seed(seed)
    agent = dqn.new_agent(EXP, EXP["old"], "old")
    records = dqn.fit(agent, dqn.env_for(EXP, EXP["old"], seed), steps)
    return agent, records


def test_same_start_states_give_the_same_returns():
    agent, _ = trained_agent()
    seeds = eval_seeds(5)
    first = greedy_returns(agent, old_env, seeds)
    assert first == greedy_returns(agent, old_env, seeds)
    assert first == greedy_returns(agent.model, old_env, seeds)  # the Q-network alone acts the same
    assert first["seeds"] == seeds and len(first["returns"]) == 5
    assert first["mean"] == pytest.approx(np.mean(first["returns"]))
    # CartPole pays 1 per step: the return is the episode's length, within the environment's 500 cap
    assert first["returns"] == [float(n) for n in first["lengths"]] and max(first["lengths"]) <= 500
    capped = greedy_returns(agent, old_env, seeds, max_steps=5)
    assert capped["lengths"] == [min(5, n) for n in first["lengths"]]


def test_same_seeds_give_the_same_start_states_in_every_setting():
    """An old-setting and a new-setting environment reset with one seed start from one state."""
    for seed in eval_seeds(3):
        full = make_env("CartPole-v1").reset(seed=seed)
        kept = old_env().reset(seed=seed)
        np.testing.assert_array_equal(kept, full[[CARTPOLE_FEATURES.index(f) for f in KEPT]])


def steer(agent):
    """Make hidden units 0 and 1 a controller (push towards the pole's lean): long, varied episodes.

    After a few hundred steps a DQN pushes one way only (9–10 steps per episode, the same action
    at every step), too easy a test of "the same function". The 14 other units keep their trained
    weights, so no two Q-values tie.
    """
    w1, b1, w2, b2 = agent.model.get_weights()
    w1[:, 0], w1[:, 1], b1[:2] = [-0.1, 1.0], [0.1, -1.0], 0.0  # inputs (x_dot, theta)
    w2[0], w2[1] = [-10.0, 10.0], [10.0, -10.0]  # outputs (left, right)
    agent.model.set_weights([w1, b1, w2, b2])
    agent.update_target_model_hard()


def test_exact_surgery_keeps_every_greedy_return():
    agent, _ = trained_agent()
    seeds = eval_seeds(10)
    trained = greedy_returns(agent, old_env, seeds)
    new = resume_dqn(agent, EXP["specs"]["preserve"])  # x and theta_dot start at zero weight
    assert greedy_returns(new, lambda: make_env("CartPole-v1"), seeds) == trained

    steer(agent)
    before = greedy_returns(agent, old_env, seeds)
    assert len(set(before["returns"])) > 3 and before["mean"] > 100  # hundreds of greedy decisions each
    new = resume_dqn(agent, EXP["specs"]["preserve"])
    after = greedy_returns(new, lambda: make_env("CartPole-v1"), seeds)
    assert after["returns"] == before["returns"] and after["lengths"] == before["lengths"]
    # the protocol tells a function-changing transplant apart: random weights on x and theta_dot
    changed = resume_dqn(agent, {**EXP["specs"]["preserve"], "init": "random"})
    assert greedy_returns(changed, lambda: make_env("CartPole-v1"), seeds)["returns"] != before["returns"]


def test_evaluating_during_fit_changes_nothing_in_training():
    _, plain = trained_agent(steps=250)
    tf_keras.backend.clear_session()
    tf_keras.utils.set_random_seed(0)
    agent = dqn.new_agent(EXP, EXP["old"], "old")
    callback = GreedyEvaluation(old_env, eval_seeds(3), every=100)
    evaluated = dqn.fit(agent, dqn.env_for(EXP, EXP["old"], 0), 250, callbacks=[callback])
    assert evaluated == plain
    assert [r["step"] for r in callback.results] == [100, 200]


def test_random_reference_is_seeded_and_leaves_global_generators_alone():
    np.random.seed(5)
    state = np.random.get_state()[1].copy()
    first = random_returns(old_env, eval_seeds(4), repeats=3)
    assert np.array_equal(np.random.get_state()[1], state)
    assert first == random_returns(old_env, eval_seeds(4), repeats=3)
    assert first["seeds"] == eval_seeds(4) and len(first["returns"]) == 4 and first["repeats"] == 3
    assert 8 < first["mean"] < 60  # CartPole under random pushes: about 22 steps
    assert random_returns(old_env, eval_seeds(4), repeats=3, rng_seed=1) != first


def test_experiment_engine_stores_greedy_evaluations(tmp_path, capsys):
    argv = ["--steps", "200", "--old-steps", "150", "--runs", "1", "--jobs", "0", "--out", str(tmp_path), "--arms",
            "old", "preserve", "scratch", "--eval-every", "100", "--eval-episodes", "3"]
    paths = dqn.main("doc", "toy", EXP, ["old", "preserve", "scratch"], argv, steps=200, runs=1,
                     at=[100], title="toy")
    results = json.loads(Path(paths["json"]).read_text())
    assert results["config"]["greedy_eval"]["seeds"] == eval_seeds(3)
    assert results["config"]["greedy_eval"]["random"] == dqn.random_reference(EXP, eval_seeds(3))
    runs = {arm: results["arms"][arm][0] for arm in ("old", "preserve", "scratch")}
    for arm, run in runs.items():
        assert run["records"] and all({"step", "reward", "length"} <= set(r) for r in run["records"]), arm
        assert all(r["step"] <= 200 for r in run["records"]), arm
        g = run["greedy"]
        assert [c["step"] for c in g["curve"]] == ([0, 100, 200, 300] if arm == "scratch" else [0, 100, 200]), arm
        assert g["curve"][0]["returns"] == g["after"]["returns"], arm
        assert all(len(e["returns"]) == 3 for e in [g["before"], g["after"]] + g["curve"]), arm
    # scratch trains phase 1 + phase 2 steps (350): the steps past 200 are its equal-samples part
    eq = runs["scratch"]["equal_samples"]
    assert eq["steps"] == 350 and all(200 < r["step"] <= 350 for r in eq["records"])
    assert "equal_samples" not in runs["old"] and "equal_samples" not in runs["preserve"]
    # one old agent per seed: every arm saw the same "before"; the exact transplant kept it
    assert runs["old"]["greedy"]["before"] == runs["scratch"]["greedy"]["before"]
    assert runs["preserve"]["greedy"]["after"]["returns"] == runs["old"]["greedy"]["before"]["returns"]
    out = capsys.readouterr().out
    assert "toy: retention (random play" in out and "100 % (100 … 100)" in out  # preserve and old, at surgery
    assert Path(paths["greedy_png"]).stat().st_size > 0
    # scratch loads the old agent for "before" after building its own: its training is as without evaluation
    cache = str(tmp_path / "toy" / "old_agents")
    plain = dqn.run_one("scratch", 0, 200, exp=EXP, old_steps=150, cache=cache)
    assert plain["records"] == runs["scratch"]["records"] and plain["equal_samples"] == eq
    # a cap on greedy episodes (MinAtar has no time limit) stops every evaluation, and only it, there
    capped = dqn.run_one("old", 0, 200, exp=EXP, old_steps=150, cache=cache,
                         evaluation=dqn.evaluation_settings(100, 3, max_steps=5))
    assert min(runs["old"]["greedy"]["before"]["lengths"]) > 5  # uncapped, every episode ran longer
    evaluations = [capped["greedy"]["before"], capped["greedy"]["after"]] + capped["greedy"]["curve"]
    assert len(evaluations) == 5 and all(e["lengths"] == [5, 5, 5] for e in evaluations)
    assert capped["records"] == runs["old"]["records"]

    # resume: same settings keep every run; other evaluation settings are refused
    dqn.main("doc", "toy", EXP, ["old", "preserve", "scratch"], argv + ["--resume"], steps=200,
             runs=1, at=[100], title="toy")
    assert json.loads(Path(paths["json"]).read_text())["arms"] == results["arms"]
    with pytest.raises(ValueError, match="greedy_eval"):
        dqn.main("doc", "toy", EXP, ["old", "preserve", "scratch"],
                 argv + ["--resume", "--eval-every", "0"], steps=200, runs=1, at=[100], title="toy")


def test_phase_two_goes_on_from_phase_one_memory_and_arm_options(tmp_path):
    """The old agent is cached with its replay memory: ``old`` and surgery arms whose observations keep
    their shape go on with it; ``options`` pick another arm's spec, an empty memory, a learning rate,
    agent settings and noise on a layer."""
    exp = {"env": "CartPole-v1",
           "old": {"features": None, "actions": None, "hidden": [8]},
           "new": {"features": None, "actions": None, "hidden": [8, 8]},
           "specs": {"preserve": {"insert": [{"after": "h1", "layer": "Dense", "units": 8, "activation": "relu",
                                              "name": "h2", "init": "identity"}]}},
           "options": {"original": {"like": "preserve", "noise": {"h2": 0.01}},
                       "carry": {"like": "preserve", "optimizer_state": "carry"},
                       "fresh": {"like": "preserve", "memory": "fresh", "lr": 5e-4,
                                 "settings": {"nb_steps_warmup": 7}}},
           "agent": {"policy": "boltzmann", "warmup": 100}}
    cache = str(tmp_path)
    dqn.prepare(0, exp=exp, old_steps=120, cache=cache)
    old, _, _ = dqn._arm_agents("old", exp, 0, 120, cache)
    n = old.memory.nb_entries
    assert n >= 120  # every phase-1 step (keras-rl2 also stores each episode's last observation)
    preserve, _, _ = dqn._arm_agents("preserve", exp, 0, 120, cache)
    assert preserve.memory.nb_entries == n
    np.testing.assert_array_equal(np.array(list(preserve.memory.observations)),
                                  np.array(list(old.memory.observations)))
    x = np.random.default_rng(0).normal(size=(64, 1, 4)).astype("float32")
    np.testing.assert_allclose(preserve.model.predict_on_batch(x), old.model.predict_on_batch(x), atol=1e-6)

    original, _, _ = dqn._arm_agents("original", exp, 0, 120, cache)
    kernel = original.model.get_layer("h2").get_weights()[0]
    noise = kernel - np.eye(8)
    assert 0.005 < noise.std() < 0.02  # near identity, not identity
    np.testing.assert_array_equal(original.target_model.get_layer("h2").get_weights()[0], kernel)
    assert not np.allclose(original.model.predict_on_batch(x), old.model.predict_on_batch(x), atol=1e-6)

    fresh, _, _ = dqn._arm_agents("fresh", exp, 0, 120, cache)
    assert fresh.memory.nb_entries == 0 and fresh.nb_steps_warmup == 7
    assert float(tf_keras.backend.get_value(fresh.trainable_model.optimizer.optimizer.learning_rate)) == \
        pytest.approx(5e-4)
    # Adam's state is saved with the old agent, and only an arm that asks for it carries it
    fresh_opt = preserve.trainable_model.optimizer.optimizer
    assert not fresh_opt.weights or int(tf_keras.backend.get_value(fresh_opt.iterations)) == 0
    carried, _, _ = dqn._arm_agents("carry", exp, 0, 120, cache)
    assert int(tf_keras.backend.get_value(carried.trainable_model.optimizer.optimizer.iterations)) > 0
    with pytest.raises(ValueError, match="arm 'nothing' has no spec"):
        dqn._arm_agents("nothing", exp, 0, 120, cache)


def test_a_frozen_layer_stays_as_it_was_until_it_is_thawed(tmp_path):
    """``options[arm]["freeze"]``: the layers keep their weights for ``steps`` phase-2 steps (the rest
    of the network learns), then train (``ThawAfter``)."""
    from keras_surgeon_rl.transfer.rl_callbacks import ThawAfter

    insert = {"after": "h1", "layer": "Dense", "units": 8, "activation": "relu", "name": "h2", "init": "identity"}
    exp = {"env": "CartPole-v1",
           "old": {"features": None, "actions": None, "hidden": [8]},
           "new": {"features": None, "actions": None, "hidden": [8, 8]},
           "specs": {"preserve": {"insert": [insert]}},
           "options": {"frozen": {"like": "preserve", "freeze": {"layers": ["h2"], "steps": 150}}},
           "agent": {"policy": "boltzmann", "warmup": 20}}
    cache = str(tmp_path)
    dqn.prepare(0, exp=exp, old_steps=120, cache=cache)
    agent, setting, _ = dqn._arm_agents("frozen", exp, 0, 120, cache)
    assert [w.name for w in agent.trainable_model.trainable_weights if "h2" in w.name] == []
    h2, q = agent.model.get_layer("h2").get_weights(), agent.model.get_layer("q").get_weights()
    with pytest.raises(ValueError, match="steps=0"):
        ThawAfter(["h2"], 0)
    thaw = ThawAfter(["h2"], 150)
    dqn.fit(agent, dqn.env_for(exp, setting, 0), 150, callbacks=[thaw])
    assert thaw.thawed_at == 150
    for before, after in zip(h2, agent.model.get_layer("h2").get_weights()):
        np.testing.assert_array_equal(before, after)  # frozen for all 150 steps
    assert not np.allclose(q[0], agent.model.get_layer("q").get_weights()[0])  # the rest learned
    assert any("h2" in w.name for w in agent.trainable_model.trainable_weights)  # thawed at the end
    dqn.fit(agent, dqn.env_for(exp, setting, 0), 100)
    assert not np.allclose(h2[0], agent.model.get_layer("h2").get_weights()[0])  # and then it learns
