"""resume_sarsa / resume_agent on real keras-rl2 SARSA agents: the Q-values on the old action IDs and
the greedy action survive every edit that claims to preserve them, settings and policies are
carried, fit runs afterwards, bad specs are refused before anything is built, and the old agent is
untouched; save_agent / load_agent round-trip a SARSAAgent."""

from keras_surgeon_rl.rl import (  # first: sets up keras-rl2
    ACROBOT_ACTIONS, CARTPOLE_FEATURES, make_env, resume_agent, resume_sarsa, tf_keras,
)

import json

import numpy as np
import pytest
from rl.agents import SARSAAgent
from rl.policy import BoltzmannQPolicy, EpsGreedyQPolicy, GreedyQPolicy, LinearAnnealedPolicy

from keras_surgeon_rl import SurgeryError, get_unit_ids, set_unit_ids
from keras_surgeon_rl import surgeon
from keras_surgeon_rl.errors import ModelFileError
from keras_surgeon_rl.rl.persist import load_agent, save_agent

L = tf_keras.layers
N_STATES = 500


def q_net(n_obs, n_actions, hidden=16):
    return tf_keras.Sequential([L.Flatten(input_shape=(1, n_obs), name="flat"),
                                L.Dense(hidden, activation="relu", name="h0"),
                                L.Dense(n_actions, name="q")], name="qnet")


def trained_sarsa(env, n_obs, n_actions, steps=150, features=None, actions=None):
    agent = SARSAAgent(model=q_net(n_obs, n_actions), nb_actions=n_actions, policy=BoltzmannQPolicy(tau=0.8),
                       test_policy=GreedyQPolicy(), gamma=0.97, nb_steps_warmup=20, train_interval=2, delta_clip=5.0)
    agent.compile(tf_keras.optimizers.legacy.Adam(learning_rate=3e-3), metrics=[])
    if features or actions:
        set_unit_ids(agent.model, inputs={agent.model.input_names[0]: features} if features else None,
                     layers={"q": actions} if actions else None)
    agent.fit(env, nb_steps=steps, verbose=0)
    return agent


def states(n_obs, seed=0):
    return np.random.default_rng(seed).normal(0, 1.5, size=(N_STATES, 1, n_obs)).astype("float32")


def reorder(x, old_ids, new_ids, seed=1):
    """``x`` (last axis in ``old_ids``' order) in ``new_ids``' order; new columns random."""
    out = np.random.default_rng(seed).normal(0, 1.5, size=x.shape[:-1] + (len(new_ids),)).astype("float32")
    for j, uid in enumerate(new_ids):
        if uid in old_ids:
            out[..., j] = x[..., old_ids.index(uid)]
    return out


def snapshot(agent):
    return [w.copy() for w in agent.model.get_weights()]


def assert_unchanged(agent, snap):
    now = agent.model.get_weights()
    assert len(now) == len(snap)
    for a, b in zip(snap, now):
        assert a.tobytes() == b.tobytes()


def assert_same_q(old, new, s_old, s_new, old_ids, new_ids, atol=1e-5):
    """Q on the old action IDs is the old Q, and the greedy action (by ID) is the old one."""
    q_old, q_new = old.compute_batch_q_values(s_old), new.compute_batch_q_values(s_new)
    cols = [new_ids.index(a) for a in old_ids]
    np.testing.assert_allclose(q_new[:, cols], q_old, atol=atol)
    greedy_old = [old_ids[i] for i in np.argmax(q_old, axis=1)]
    greedy_new = [new_ids[i] for i in np.argmax(q_new, axis=1)]
    assert greedy_new == greedy_old
    assert len(set(greedy_old)) > 1 or np.ptp(q_old) > 1e-3  # a constant network would prove nothing


def assert_settings_carried(old, new):
    for k in ("gamma", "nb_steps_warmup", "train_interval", "delta_clip"):
        assert getattr(new, k) == getattr(old, k)
    assert type(new.policy) is type(old.policy) and new.policy is not old.policy
    assert new.policy.tau == old.policy.tau and new.policy.agent is new
    assert type(new.test_policy) is GreedyQPolicy and new.test_policy is not old.test_policy
    opt_old, opt_new = old.trainable_model.optimizer, new.trainable_model.optimizer
    assert opt_new is not opt_old and type(opt_new) is type(opt_old)
    assert float(opt_new.get_config()["learning_rate"]) == pytest.approx(3e-3)


@pytest.mark.parametrize("kept, new_ids", [
    (["x_dot", "theta"], CARTPOLE_FEATURES),                       # features added
    (CARTPOLE_FEATURES, ["x_dot", "theta", "theta_dot"]),          # a feature removed
    (CARTPOLE_FEATURES, ["theta_dot", "x", "theta", "x_dot"]),     # permuted
], ids=["add", "remove", "permute"])
def test_cartpole_observation_features_keep_q_and_greedy_action(kept, new_ids):
    old = trained_sarsa(make_env("CartPole-v1", seed=0, features=kept), len(kept), 2, features=kept)
    snap = snapshot(old)
    new = resume_agent(old, {"inputs": {"new": new_ids}})
    assert isinstance(new, SARSAAgent) and new.nb_actions == 2
    s_old = states(len(kept))
    removed = [j for j, f in enumerate(kept) if f not in new_ids]
    s_old[..., removed] = 0.0  # removing a feature = the old network reading 0 for it
    assert_same_q(old, new, s_old, reorder(s_old, kept, new_ids), [0, 1], [0, 1])
    assert_settings_carried(old, new)
    assert get_unit_ids(new.model)["inputs"][new.model.input_names[0]] == new_ids
    history = new.fit(make_env("CartPole-v1", seed=1, features=new_ids), nb_steps=120, verbose=0)
    assert len(history.history["episode_reward"]) >= 1
    assert_unchanged(old, snap)


def test_acrobot_added_action_keeps_q_and_greedy_action():
    kept = ["torque-1", "torque+1"]
    old = trained_sarsa(make_env("Acrobot-v1", seed=0, actions=kept), 6, 2, actions=kept)
    snap = snapshot(old)
    new_actions = ACROBOT_ACTIONS  # ["torque-1", "torque0", "torque+1"]: torque0 added in the middle
    new = resume_sarsa(old, {"outputs": {"new": new_actions}, "units": {"h0": 24}})
    assert new.nb_actions == 3 and new.model.get_layer("h0").units == 24
    s = states(6)
    assert_same_q(old, new, s, s, kept, new_actions)
    q = new.compute_batch_q_values(s)
    assert np.all(q[:, 1] < q.max(axis=1))  # keep_greedy: the new action is never greedy yet
    assert get_unit_ids(new.model)["layers"]["q"] == new_actions
    assert_settings_carried(old, new)
    env = make_env("Acrobot-v1", seed=1, actions=new_actions)
    history = new.fit(env, nb_steps=150, verbose=0, nb_max_episode_steps=50)
    assert len(history.history["episode_reward"]) >= 1
    assert not np.allclose(new.model.get_weights()[0][:, :16], old.model.get_weights()[0])  # it trained
    assert_unchanged(old, snap)


def test_overrides_policy_and_optimizer_are_used():
    old = trained_sarsa(make_env("CartPole-v1", seed=0), 4, 2, steps=60)
    policy, opt = BoltzmannQPolicy(tau=2.0), tf_keras.optimizers.legacy.SGD(learning_rate=0.01)
    new = resume_sarsa(old, {}, policy=policy, optimizer=opt, gamma=0.5, nb_steps_warmup=0)
    assert new.policy is policy and new.trainable_model.optimizer is opt
    assert new.gamma == 0.5 and new.nb_steps_warmup == 0 and new.train_interval == 2
    s = states(4)
    np.testing.assert_array_equal(new.compute_batch_q_values(s), old.compute_batch_q_values(s))  # empty spec


def test_bad_sarsa_requests_are_refused_before_anything_is_built(monkeypatch):
    old = trained_sarsa(make_env("CartPole-v1", seed=0), 4, 2, steps=40)
    snap = snapshot(old)
    uncompiled = SARSAAgent(model=q_net(4, 2), nb_actions=2)
    built = []
    monkeypatch.setattr(surgeon, "transplant_planned", lambda *a, **k: built.append("network"))
    monkeypatch.setattr(SARSAAgent, "__init__", lambda self, *a, **k: built.append("agent"))
    with pytest.raises(SurgeryError, match="outputs.old lists 3 action IDs, but the agent has 2 actions"):
        resume_sarsa(old, {"outputs": {"old": ["a", "b", "c"], "new": ["a"]}})
    with pytest.raises(SurgeryError, match="h9"):
        resume_sarsa(old, {"units": {"h9": 5}})
    with pytest.raises(SurgeryError, match="keep_greedy init copies a kept action, but the spec keeps none"):
        resume_sarsa(old, {"outputs": {"old": [0, 1], "new": [2, 3]}})
    with pytest.raises(SurgeryError, match="inputs"):
        resume_sarsa(old, {"inputs": {"old": ["a", "b"], "new": ["a"]}})  # 2 IDs for 4 features
    with pytest.raises(TypeError, match="unknown settings.*gama"):
        resume_sarsa(old, {}, gama=0.9)
    with pytest.raises(SurgeryError, match="resume_sarsa needs a SARSAAgent, got a str"):
        resume_sarsa("agent", {})
    with pytest.raises(SurgeryError, match="needs a compiled SARSAAgent.*agent.compile"):
        resume_sarsa(uncompiled, {})
    assert built == []
    assert_unchanged(old, snap)


def test_sarsa_save_and_load_round_trip_then_resume(tmp_path):
    kept = ["x_dot", "theta"]
    old = trained_sarsa(make_env("CartPole-v1", seed=0, features=kept), 2, 2, features=kept, actions=["left", "right"])
    old.policy = LinearAnnealedPolicy(EpsGreedyQPolicy(), attr="eps", value_max=1.0, value_min=0.1, value_test=0.05,
                                      nb_steps=300)
    save_agent(old, tmp_path / "s")
    loaded = load_agent(tmp_path / "s")
    assert type(loaded) is SARSAAgent and loaded.compiled
    s = states(2)
    np.testing.assert_allclose(loaded.compute_batch_q_values(s), old.compute_batch_q_values(s), atol=1e-6, rtol=0)
    assert get_unit_ids(loaded.model) == get_unit_ids(old.model)
    for k in ("gamma", "nb_steps_warmup", "train_interval", "delta_clip", "nb_actions"):
        assert getattr(loaded, k) == getattr(old, k)
    assert type(loaded.policy) is LinearAnnealedPolicy and loaded.policy.get_config() == old.policy.get_config()
    assert type(loaded.test_policy) is GreedyQPolicy
    assert loaded.trainable_model.optimizer.get_config() == old.trainable_model.optimizer.get_config()
    # it resumes by name from the loaded IDs, and trains
    new = resume_sarsa(loaded, {"inputs": {"new": CARTPOLE_FEATURES}, "outputs": {"new": ["right", "left"]}})
    assert_same_q(old, new, s, reorder(s, kept, CARTPOLE_FEATURES), ["left", "right"], ["right", "left"])
    new.fit(make_env("CartPole-v1", seed=1, actions=["right", "left"]), nb_steps=60, verbose=0)
    with pytest.raises(ModelFileError, match="a SARSAAgent has no replay memory; save with memory=False"):
        save_agent(old, tmp_path / "m", memory=True)
    with pytest.raises(ModelFileError, match="records no memory; load with memory='auto' or False"):
        load_agent(tmp_path / "s", memory=True)
    data = json.loads((tmp_path / "s" / "agent.json").read_text())
    data["nb_actions"] = 3
    (tmp_path / "s" / "agent.json").write_text(json.dumps(data))
    with pytest.raises(ModelFileError, match=r"network.h5: has 1 inputs and outputs of \[2\] units; a SARSA "
                                             r"Q-network has one input and one output of nb_actions=3"):
        load_agent(tmp_path / "s")
