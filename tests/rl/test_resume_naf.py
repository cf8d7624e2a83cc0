"""resume_naf / resume_agent / save_agent on real keras-rl2 NAF agents: V, μ and Q (through the agent's
combined model) survive every edit that claims to preserve them, L's entries follow action-ID pairs
in NAFLayer's order, inexact 'full'-mode edits are refused before anything is built, fit runs
afterwards, the random process and replay memory follow the action IDs, the old agent is untouched,
and a save round-trips."""

from keras_surgeon_rl.rl import PENDULUM_FEATURES, make_env, resume_agent, resume_naf, tf_keras  # first: keras-rl2

import gymnasium
import numpy as np
import pytest
import tensorflow as tf
from rl.agents.dqn import NAFAgent, NAFLayer
from rl.memory import SequentialMemory
from rl.random import OrnsteinUhlenbeckProcess

from keras_surgeon_rl import SurgeryError, get_unit_ids
from keras_surgeon_rl.rl.persist import load_agent, save_agent
from keras_surgeon_rl.rl.resume_naf import l_entry_ids

L = tf_keras.layers
LUNAR = "LunarLanderContinuous-v3"
ACTUATORS = ["main", "lateral"]  # LunarLanderContinuous's two action dimensions
N_STATES = 128


class Actuators:
    """A continuous env driven through the actuators ``keep``: action ``j`` drives ``keep[j]`` (ignored if the
    env has no such actuator), the env's other actuators are held at 0."""

    def __init__(self, env, keep, ids=ACTUATORS):
        self.env, self.columns, self.n = env, [ids.index(k) if k in ids else -1 for k in keep], len(ids)
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (len(keep),), np.float32)
        self.observation_space = env.observation_space

    def reset(self, **kwargs):
        return self.env.reset(**kwargs)

    def step(self, action):
        full, action = np.zeros(self.n, np.float32), np.asarray(action, np.float32).ravel()
        for j, c in enumerate(self.columns):
            if c >= 0:
                full[c] = action[j]
        return self.env.step(full)

    def __getattr__(self, name):
        if name == "env" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.env, name)


def make_naf(n_obs, n_act, mode="full", l_activation="linear", mu_activation="linear", l_reads_action=True):
    """A compiled NAFAgent laid out as keras-rl2's examples/naf_pendulum.py (L ends in an Activation layer and,
    unless ``l_reads_action=False``, reads the action as well as the observation)."""
    V = tf_keras.Sequential([L.Flatten(input_shape=(1, n_obs), name="v_flat"),
                             L.Dense(8, activation="relu", name="v_h"), L.Dense(1, name="v_out")], name="V")
    mu = tf_keras.Sequential([L.Flatten(input_shape=(1, n_obs), name="m_flat"),
                              L.Dense(8, activation="relu", name="m_h"),
                              L.Dense(n_act, activation=mu_activation, name="mu_out")], name="mu")
    action = L.Input((n_act,), name="action_input")
    obs = L.Input((1, n_obs), name="observation_input")
    x = L.Flatten(name="l_flat")(obs)
    x = L.Concatenate(name="cat")([action, x]) if l_reads_action else x
    x = L.Dense(8, activation="relu", name="l_h")(x)
    x = L.Dense(n_act * (n_act + 1) // 2 if mode == "full" else n_act, name="l_dense")(x)
    Lm = tf_keras.Model([action, obs], L.Activation(l_activation, name="l_out")(x), name="L")
    agent = NAFAgent(nb_actions=n_act, V_model=V, L_model=Lm, mu_model=mu, covariance_mode=mode,
                     memory=SequentialMemory(2000, window_length=1), nb_steps_warmup=20, gamma=.95, batch_size=16,
                     random_process=OrnsteinUhlenbeckProcess(theta=.15, mu=0., sigma=.3, size=n_act),
                     target_model_update=1e-2)
    agent.compile(tf_keras.optimizers.legacy.Adam(learning_rate=2e-3), metrics=[])
    return agent


def trained_naf(env, n_obs, n_act, mode="full", steps=40, **kwargs):
    agent = make_naf(n_obs, n_act, mode, **kwargs)
    if steps:
        agent.fit(env, nb_steps=steps, verbose=0, nb_max_episode_steps=50)
    return agent


def networks(agent):
    return agent.V_model, agent.mu_model, agent.L_model, agent.target_V_model


def snapshot(agent):
    return [[w.copy() for w in net.get_weights()] for net in networks(agent)]


def assert_unchanged(agent, snap):
    for net, weights in zip(networks(agent), snap):
        now = net.get_weights()
        assert len(now) == len(weights)
        for a, b in zip(weights, now):
            assert a.tobytes() == b.tobytes()


def states(n_obs, seed=0):
    return np.random.default_rng(seed).normal(0, 1.0, size=(N_STATES, 1, n_obs)).astype("float32")


def reorder(x, old_ids, new_ids, fill=0.0):
    """``x`` (last axis in ``old_ids``' order) in ``new_ids``' order; new columns ``fill``."""
    out = np.full(x.shape[:-1] + (len(new_ids),), fill, np.float32)
    for j, uid in enumerate(new_ids):
        if uid in old_ids:
            out[..., j] = x[..., old_ids.index(uid)]
    return out


def q(agent, obs, actions):
    return agent.combined_model.predict_on_batch([actions, obs])


def close(a, b):
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-6)


def assert_same_function(old, new, s_old, s_new, old_ids, new_ids):
    """V and target V, μ on the kept actions (new ones exactly 0), and Q through the combined model for
    actions near μ whose new dimensions are 0 and whose removed ones are at the old μ, are the old ones."""
    close(new.V_model.predict_on_batch(s_new), old.V_model.predict_on_batch(s_old))
    close(new.target_V_model.predict_on_batch(s_new), old.target_V_model.predict_on_batch(s_old))
    mu_old, mu_new = old.mu_model.predict_on_batch(s_old), new.mu_model.predict_on_batch(s_new)
    kept = [a for a in new_ids if a in old_ids]
    close(mu_new[:, [new_ids.index(a) for a in kept]], mu_old[:, [old_ids.index(a) for a in kept]])
    np.testing.assert_array_equal(mu_new[:, [j for j, a in enumerate(new_ids) if a not in old_ids]], 0.0)
    noise = np.random.default_rng(5).normal(0, 0.7, size=mu_old.shape).astype("float32")
    removed = [i for i, a in enumerate(old_ids) if a not in new_ids]
    noise[:, removed] = 0.0  # a removed action is held at the old μ
    a_old = mu_old + noise
    q_old = q(old, s_old, a_old)
    close(q(new, s_new, reorder(a_old, old_ids, new_ids)), q_old)
    assert np.ptp(q_old) > 1e-2 and np.ptp(mu_old) > 1e-3  # constant networks would prove nothing
    return q_old, a_old


def deterministic_action(agent, observation):
    """The action ``forward`` takes without exploration noise (keras-rl2's test mode)."""
    return agent.mu_model.predict_on_batch(agent.process_state_batch([[observation]])).flatten()


def test_l_entry_ids_follow_naflayer_order():
    """NAFLayer's A = -½ (a-μ)ᵀ L Lᵀ (a-μ) with L filled from the entries in l_entry_ids' order."""
    n, batch = 3, 7
    rng = np.random.default_rng(0)
    flat, mu, a = (rng.normal(0, 1, (batch, k)).astype("float32") for k in (n * (n + 1) // 2, n, n))
    ins = [L.Input((n * (n + 1) // 2,)), L.Input((n,)), L.Input((n,))]
    model = tf_keras.Model(ins, NAFLayer(n, mode="full")(ins))
    got = model.predict_on_batch([flat, mu, a])[:, 0]
    ids = list(range(n))
    assert l_entry_ids(["a", "b", "c"]) == [("a", "a"), ("b", "a"), ("b", "b"), ("c", "a"), ("c", "b"), ("c", "c")]

    def advantage(pairs):
        out = []
        for x, m, act in zip(flat, mu, a):
            Lmat = np.zeros((n, n))
            for k, (i, j) in enumerate(pairs):
                Lmat[i, j] = np.exp(x[k]) + 1e-7 if i == j else x[k]
            d = act - m
            out.append(-.5 * d @ Lmat @ Lmat.T @ d)
        return np.array(out)

    np.testing.assert_allclose(got, advantage(l_entry_ids(ids)), rtol=1e-4, atol=1e-5)
    column_major = [(i, j) for j in range(n) for i in range(j, n)]  # the other natural order differs
    assert not np.allclose(got, advantage(column_major), rtol=1e-4, atol=1e-5)
    # diag mode: entry i is P[i, i] itself
    ins = [L.Input((n,)), L.Input((n,)), L.Input((n,))]
    diag = tf_keras.Model(ins, NAFLayer(n, mode="diag")(ins)).predict_on_batch([mu, flat[:, :n], a])[:, 0]
    np.testing.assert_allclose(diag, -.5 * np.sum(mu * (a - flat[:, :n]) ** 2, axis=1), rtol=1e-4, atol=1e-5)
    assert l_entry_ids(["a", "b"], "diag") == [("a", "a"), ("b", "b")]


def test_pendulum_added_feature_keeps_v_mu_q_and_settings():
    kept = ["cos_theta", "theta_dot"]
    old = trained_naf(make_env("Pendulum-v1", seed=0, features=kept), 2, 1)
    snap = snapshot(old)
    x_prev = old.random_process.x_prev.copy()
    new = resume_agent(old, {"inputs": {"old": kept, "new": PENDULUM_FEATURES}})
    assert isinstance(new, NAFAgent) and new.nb_actions == 1 and new.covariance_mode == "full"
    s_old = states(2)
    s_new = reorder(s_old, kept, PENDULUM_FEATURES)
    s_new[..., 1] = np.random.default_rng(3).normal(size=(N_STATES, 1))  # the new feature: any value
    assert_same_function(old, new, s_old, s_new, [0], [0])
    np.testing.assert_array_equal(deterministic_action(new, s_new[3, 0]), deterministic_action(old, s_old[3, 0]))
    for k in ("gamma", "batch_size", "nb_steps_warmup", "target_model_update", "delta_clip", "train_interval"):
        assert getattr(new, k) == getattr(old, k)
    opt = new.combined_model.optimizer.optimizer  # inside keras-rl2's soft-update wrapper
    assert type(opt).__name__ == "Adam" and opt is not old.combined_model.optimizer.optimizer
    assert float(opt.get_config()["learning_rate"]) == pytest.approx(2e-3)
    assert new.random_process is not old.random_process and new.random_process.size == 1
    np.testing.assert_array_equal(new.random_process.x_prev, x_prev)
    assert new.memory.nb_entries == 0  # the observation changed: memory="auto" starts empty
    for net, name in ((new.V_model, "v_flat_input"), (new.mu_model, "m_flat_input"),
                      (new.L_model, "observation_input")):
        assert get_unit_ids(net)["inputs"][name] == PENDULUM_FEATURES
    new.fit(make_env("Pendulum-v1", seed=1), nb_steps=40, verbose=0, nb_max_episode_steps=40)
    assert new.step == 40
    assert_unchanged(old, snap)
    np.testing.assert_array_equal(old.random_process.x_prev, x_prev)


def test_pendulum_removed_and_permuted_features_with_hidden_edits():
    old = trained_naf(make_env("Pendulum-v1", seed=0), 3, 1)
    snap = snapshot(old)
    new_ids = ["theta_dot", "cos_theta"]  # sin_theta removed, the other two swapped
    new = resume_naf(old, {"inputs": {"old": PENDULUM_FEATURES, "new": new_ids},
                           "V": {"units": {"v_h": 12}}, "mu": {"units": {"m_h": 10}}, "L": {"units": {"l_h": 16}}})
    assert (new.V_model.get_layer("v_h").units, new.mu_model.get_layer("m_h").units,
            new.L_model.get_layer("l_h").units) == (12, 10, 16)
    s_old = states(3)
    s_old[..., 1] = 0.0  # removing a feature = the old networks reading 0 for it
    assert_same_function(old, new, s_old, reorder(s_old, PENDULUM_FEATURES, new_ids), [0], [0])
    with pytest.raises(AssertionError):  # the check can fail: the removed feature did matter
        s_bad = states(3)
        assert_same_function(old, new, s_bad, reorder(s_bad, PENDULUM_FEATURES, new_ids), [0], [0])
    assert_unchanged(old, snap)


def test_lunar_added_action_full_mode_keeps_q_noise_and_memory():
    old = trained_naf(Actuators(make_env(LUNAR, seed=0), ["main"]), 8, 1)
    snap = snapshot(old)
    old_x = old.random_process.x_prev.copy()
    new = resume_agent(old, {"outputs": {"old": ["main"], "new": ["lateral", "main"]}})  # new first: columns move
    assert new.nb_actions == 2 and new.L_model.output_shape == (None, 3)
    assert get_unit_ids(new.L_model)["layers"]["l_dense"] == [("lateral", "lateral"), ("main", "lateral"),
                                                               ("main", "main")]
    assert get_unit_ids(new.mu_model)["layers"]["mu_out"] == ["lateral", "main"]
    assert get_unit_ids(new.L_model)["inputs"]["action_input"] == ["lateral", "main"]
    s = states(8)
    q_old, a_old = assert_same_function(old, new, s, s, ["main"], ["lateral", "main"])
    # the new dimension's L entries: off-diagonal 0, diagonal exp(0) + ε, so Q falls by ½ (1 + ε)² c² at value c
    acts = reorder(a_old, ["main"], ["lateral", "main"], fill=0.8)
    close(q(new, s, acts), q_old - .5 * (1 + 1e-7) ** 2 * 0.8 ** 2)
    np.testing.assert_array_equal(deterministic_action(new, s[0, 0]), [0.0, deterministic_action(old, s[0, 0])[0]])
    assert new.random_process.size == 2
    np.testing.assert_array_equal(new.random_process.x_prev, [0.0, old_x[0]])
    assert new.memory.nb_entries == old.memory.nb_entries > 30
    for i in range(old.memory.nb_entries):
        np.testing.assert_array_equal(new.memory.actions[i], [0.0, np.asarray(old.memory.actions[i])[0]])
    new.fit(make_env(LUNAR, seed=1, max_episode_steps=40), nb_steps=40, verbose=0)
    assert new.step == 40
    assert_unchanged(old, snap)


def test_diag_mode_any_action_edit_is_exact():
    old = trained_naf(make_env(LUNAR, seed=0), 8, 2, mode="diag", l_reads_action=False)
    snap = snapshot(old)
    s = states(8)
    for new_ids in (["lateral"], ["lateral", "extra", "main"]):  # removed; permuted and added
        new = resume_naf(old, {"outputs": {"old": ACTUATORS, "new": new_ids}})
        assert new.covariance_mode == "diag" and new.L_model.output_shape == (None, len(new_ids))
        assert get_unit_ids(new.L_model)["layers"]["l_dense"] == [(a, a) for a in new_ids]
        assert_same_function(old, new, s, s, ACTUATORS, new_ids)
    new.fit(Actuators(make_env(LUNAR, seed=1, max_episode_steps=40), new_ids), nb_steps=40, verbose=0)
    assert new.step == 40
    assert_unchanged(old, snap)


def test_full_mode_removing_trailing_action_is_exact():
    old = trained_naf(make_env(LUNAR, seed=0), 8, 2, steps=0, l_reads_action=False)
    new = resume_naf(old, {"outputs": {"old": ACTUATORS, "new": ["main"]}})
    assert new.L_model.output_shape == (None, 1)
    s = states(8)
    assert_same_function(old, new, s, s, ACTUATORS, ["main"])


@pytest.mark.parametrize("new_ids, message", [
    (["lateral", "main"], "change their order"),
    (["lateral"], "removes \\['main'\\], which come before the kept action 'lateral'"),
    (["extra", "lateral", "main"], "change their order"),
    (["main"], "the L model reads its action input 'action_input'"),  # trailing: exact only if L ignores a
])
def test_full_mode_refuses_inexact_action_edits_before_building(new_ids, message):
    old = trained_naf(make_env(LUNAR, seed=0), 8, 2, steps=0)
    graph = tf.compat.v1.get_default_graph()
    n_ops = len(graph.get_operations())
    with pytest.raises(SurgeryError, match=message) as err:
        resume_agent(old, {"outputs": {"old": ACTUATORS, "new": new_ids}})
    assert "covariance_mode='diag'" in str(err.value) or "L(s)" in str(err.value)
    assert len(graph.get_operations()) == n_ops


def test_added_action_refused_when_output_activation_is_not_zero_at_zero():
    graph = tf.compat.v1.get_default_graph()
    old = make_naf(8, 1, l_activation="softplus")
    n_ops = len(graph.get_operations())
    with pytest.raises(SurgeryError, match="L model's output layer 'l_out' has an activation with f\\(0\\) != 0"):
        resume_naf(old, {"outputs": {"old": ["main"], "new": ["main", "lateral"]}})
    assert len(graph.get_operations()) == n_ops
    old = make_naf(8, 1, mu_activation="sigmoid")
    n_ops = len(graph.get_operations())
    with pytest.raises(SurgeryError, match="mu model's output layer 'mu_out'"):
        resume_naf(old, {"outputs": {"old": ["main"], "new": ["main", "lateral"]}})
    assert len(graph.get_operations()) == n_ops
    # in diag mode a non-zero L activation is fine: the new dimension has no off-diagonal entries
    old = make_naf(8, 1, mode="diag", l_activation="softplus")
    new = resume_naf(old, {"outputs": {"old": ["main"], "new": ["main", "lateral"]}})
    s = states(8)
    mu_old = old.mu_model.predict_on_batch(s)
    close(q(new, s, np.concatenate([mu_old + .3, np.zeros_like(mu_old)], 1)), q(old, s, mu_old + .3))


def test_save_load_round_trip_keeps_networks_ids_settings_memory(tmp_path):
    old = trained_naf(Actuators(make_env(LUNAR, seed=0), ["main"]), 8, 1)
    agent = resume_naf(old, {"outputs": {"old": ["main"], "new": ["main", "lateral"]}}, gamma=.9)
    assert agent.gamma == .9
    agent.fit(make_env(LUNAR, seed=2, max_episode_steps=40), nb_steps=30, verbose=0)  # the new L entries move off 0
    save_agent(agent, tmp_path / "naf", memory=True)
    loaded = load_agent(tmp_path / "naf")
    assert isinstance(loaded, NAFAgent) and loaded.nb_actions == 2 and loaded.covariance_mode == "full"
    for a, b in zip(networks(agent), networks(loaded)):
        for x, y in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_array_equal(x, y)
    s = states(8)
    acts = np.random.default_rng(1).normal(size=(N_STATES, 2)).astype("float32")
    np.testing.assert_array_equal(q(loaded, s, acts), q(agent, s, acts))
    for k in ("gamma", "batch_size", "nb_steps_warmup", "target_model_update", "delta_clip", "memory_interval"):
        assert getattr(loaded, k) == getattr(agent, k)
    assert get_unit_ids(loaded.L_model)["layers"]["l_dense"] == l_entry_ids(["main", "lateral"])
    assert get_unit_ids(loaded.mu_model)["layers"]["mu_out"] == ["main", "lateral"]
    np.testing.assert_array_equal(loaded.random_process.x_prev, agent.random_process.x_prev)
    assert loaded.memory.nb_entries == agent.memory.nb_entries > 30
    for i in range(agent.memory.nb_entries):
        np.testing.assert_array_equal(loaded.memory.actions[i], agent.memory.actions[i])
        assert loaded.memory.rewards[i] == agent.memory.rewards[i]
    # the loaded agent resumes again from its carried IDs (L's pairs are checked against the actions)
    again = resume_agent(loaded, {"outputs": {"new": ["main", "lateral", "extra"]}})
    assert get_unit_ids(again.L_model)["layers"]["l_dense"] == l_entry_ids(["main", "lateral", "extra"])
    assert_same_function(loaded, again, s, s, ["main", "lateral"], ["main", "lateral", "extra"])  # 3 actions:
    # tril's row-major and column-major orders differ, so this checks the pairs end to end
    with pytest.raises(SurgeryError, match="carries the unit IDs"):
        resume_agent(loaded, {"outputs": {"old": ["lateral", "main"], "new": ["lateral", "main"]}})
    with pytest.raises(TypeError, match="holds a NAFAgent, which has no policy"):
        load_agent(tmp_path / "naf", policy=object())
