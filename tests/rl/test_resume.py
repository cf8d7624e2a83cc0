"""resume_dqn on real keras-rl2 agents and gymnasium environments: the greedy policy survives
every edit that claims to preserve it, fit runs afterwards, and the old agent is untouched."""

from keras_surgeon_rl.rl import (  # first: sets up keras-rl2
    ACROBOT_ACTIONS, ACROBOT_FEATURES, CARTPOLE_FEATURES, LUNARLANDER_ACTIONS, make_env, resume_dqn, tf_keras,
)

import numpy as np
import pytest
from rl.agents.dqn import DQNAgent
from rl.memory import SequentialMemory
from rl.policy import BoltzmannQPolicy, EpsGreedyQPolicy, LinearAnnealedPolicy

from keras_surgeon_rl import SurgeryError, get_unit_ids, set_unit_ids
from keras_surgeon_rl.rl.memory import CarriedSequentialMemory

N_STATES = 1000


def q_net(n_obs, n_actions, hidden=(16,), window=1):
    layers = [tf_keras.layers.Flatten(input_shape=(window, n_obs), name="flat")]
    layers += [tf_keras.layers.Dense(w, activation="relu", name=f"h{i}") for i, w in enumerate(hidden)]
    layers.append(tf_keras.layers.Dense(n_actions, name="q"))
    return tf_keras.Sequential(layers, name="qnet")


def trained_agent(env, n_obs, n_actions, steps=150, window=1, hidden=(16,), **kwargs):
    agent = DQNAgent(model=q_net(n_obs, n_actions, hidden, window), nb_actions=n_actions,
                     memory=SequentialMemory(limit=5000, window_length=window), nb_steps_warmup=50,
                     target_model_update=1e-2, policy=BoltzmannQPolicy(), **kwargs)
    agent.compile(tf_keras.optimizers.legacy.Adam(learning_rate=1e-3))
    agent.fit(env, nb_steps=steps, verbose=0)
    return agent


def greedy(agent, states):
    return np.argmax(agent.compute_batch_q_values(states), axis=1)


def random_states(n_features, window=1, seed=0):
    return np.random.default_rng(seed).normal(0, 1.5, size=(N_STATES, window, n_features)).astype("float32")


def widen_states(states, old_ids, new_ids, seed=1):
    new = np.random.default_rng(seed).normal(0, 1.5, size=states.shape[:-1] + (len(new_ids),)).astype("float32")
    for j, uid in enumerate(new_ids):
        if uid in old_ids:
            new[..., j] = states[..., old_ids.index(uid)]
    return new


def snapshot(agent):
    return [w.copy() for w in agent.model.get_weights()], [w.copy() for w in agent.target_model.get_weights()]


def assert_unchanged(agent, snap):
    for a, b in zip(snap[0] + snap[1], agent.model.get_weights() + agent.target_model.get_weights()):
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("window", [1, 3])
def test_cartpole_add_observations_keeps_greedy_policy(window):
    kept = ["x_dot", "theta"]
    env = make_env("CartPole-v1", seed=0, features=kept)
    old = trained_agent(env, 2, 2, window=window)
    snap = snapshot(old)
    spec = {"inputs": {"old": kept, "new": CARTPOLE_FEATURES}}
    new = resume_dqn(old, spec)
    states = random_states(2, window)
    np.testing.assert_array_equal(greedy(new, widen_states(states, kept, CARTPOLE_FEATURES)), greedy(old, states))
    assert isinstance(new.memory, SequentialMemory) and new.memory.nb_entries == 0  # obs shape changed
    assert get_unit_ids(new.model)["inputs"] and list(get_unit_ids(new.model)["inputs"].values())[0] == CARTPOLE_FEATURES
    history = new.fit(make_env("CartPole-v1", seed=1), nb_steps=200, verbose=0)
    assert history.history["episode_reward"]
    assert_unchanged(old, snap)


def test_cartpole_widen_and_add_layer_keep_greedy_policy_and_memory():
    env = make_env("CartPole-v1", seed=0)
    old = trained_agent(env, 4, 2, hidden=(4, 4), enable_double_dqn=True)
    snap = snapshot(old)
    spec = {"units": {"h0": 16, "h1": 16}, "insert": [{"after": "h1", "activation": "relu"}]}
    new = resume_dqn(old, spec)
    states = random_states(4)
    np.testing.assert_array_equal(greedy(new, states), greedy(old, states))
    # same settings, carried memory, fresh optimizer of the same kind
    assert new.enable_double_dqn and new.gamma == old.gamma and new.target_model_update == old.target_model_update
    assert isinstance(new.memory, CarriedSequentialMemory) and new.memory.nb_entries == old.memory.nb_entries
    assert type(new.trainable_model.optimizer.optimizer).__name__ == "Adam"
    # the target network is transplanted too, not re-cloned from the online one
    np.testing.assert_array_equal(greedy_target(new, states), np.argmax(old.target_model.predict_on_batch(states), 1))
    new.fit(env, nb_steps=100, verbose=0)
    assert_unchanged(old, snap)


def greedy_target(agent, states):
    return np.argmax(agent.target_model.predict_on_batch(states), axis=1)


def test_acrobot_add_action_keeps_greedy_policy_and_remaps_memory():
    kept = ["torque+1", "torque0"]
    env = make_env("Acrobot-v1", seed=0, actions=kept)
    old = trained_agent(env, 6, 2, hidden=(16, 16))
    set_unit_ids(old.model, layers={"q": kept})
    spec = {"outputs": {"new": ACROBOT_ACTIONS}}  # old action IDs come from the model
    assert resume_dqn(old, spec).memory.nb_entries == 0  # memory="auto": added actions start empty
    new = resume_dqn(old, spec, memory="carry")
    assert new.nb_actions == 3
    states = random_states(6)
    old_best = np.array(kept)[greedy(old, states)]
    new_best = np.array(ACROBOT_ACTIONS)[greedy(new, states)]
    np.testing.assert_array_equal(new_best, old_best)
    # memory: action "torque+1" was index 0, is now index 2
    m_old, m_new = old.memory, new.memory
    assert m_new.nb_entries == m_old.nb_entries
    mapping = {0: 2, 1: 1}
    assert all(m_new.actions[i] == mapping[m_old.actions[i]] for i in range(m_old.nb_entries))
    new.fit(make_env("Acrobot-v1", seed=1), nb_steps=100, verbose=0)


def test_removed_action_transitions_are_never_sampled():
    env = make_env("Acrobot-v1", seed=0)
    old = trained_agent(env, 6, 3, steps=150)
    spec = {"outputs": {"old": ACROBOT_ACTIONS, "new": ["torque+1", "torque-1"]}}
    new = resume_dqn(old, spec)
    removed = [i for i in range(old.memory.nb_entries) if old.memory.actions[i] == 1]
    assert removed
    for _ in range(20):
        for e in new.memory.sample(32):
            assert e.action in (0, 1)
    sampled = {tuple(np.ravel(e.state0)) for _ in range(30) for e in new.memory.sample(32)}
    for i in removed:
        assert tuple(np.ravel(old.memory.observations[i])) not in sampled or \
            any(old.memory.actions[j] != 1 and np.array_equal(old.memory.observations[j], old.memory.observations[i])
                for j in range(old.memory.nb_entries) if j != i)


def test_lunarlander_two_to_four_actions_dueling_keeps_greedy_policy():
    kept = ["left", "right"]
    env = make_env("LunarLander-v3", seed=0, actions=kept)
    old = trained_agent(env, 8, 2, hidden=(16,), enable_dueling_network=True, dueling_type="avg")
    snap = snapshot(old)
    spec = {"outputs": {"old": kept, "new": LUNARLANDER_ACTIONS}}
    new = resume_dqn(old, spec)
    assert new.enable_dueling_network and new.nb_actions == 4
    states = random_states(8)
    np.testing.assert_array_equal(np.array(LUNARLANDER_ACTIONS)[greedy(new, states)],
                                  np.array(kept)[greedy(old, states)])
    new.fit(make_env("LunarLander-v3", seed=1), nb_steps=100, verbose=0)
    assert_unchanged(old, snap)


def test_random_new_action_init_is_honoured_and_zero_trap_documented():
    env = make_env("CartPole-v1", seed=0)
    old = trained_agent(env, 4, 2)
    zeros = resume_dqn(old, {"outputs": {"old": ["left", "right"], "new": ["left", "right", "wait"], "init": "zeros"}})
    states = random_states(4)
    np.testing.assert_allclose(zeros.compute_batch_q_values(states)[:, 2], 0, atol=1e-6)
    copied = resume_dqn(old, {"outputs": {"old": ["left", "right"], "new": ["left", "right", "wait"], "init": "copy:right"}})
    q = copied.compute_batch_q_values(states)
    np.testing.assert_allclose(q[:, 2], q[:, 1], atol=1e-5)


def test_policies_and_settings_are_copied_not_shared():
    env = make_env("CartPole-v1", seed=0)
    policy = LinearAnnealedPolicy(EpsGreedyQPolicy(), attr="eps", value_max=1.0, value_min=0.1, value_test=0.05,
                                  nb_steps=1000)
    agent = DQNAgent(model=q_net(4, 2), nb_actions=2, memory=SequentialMemory(limit=1000, window_length=1),
                     nb_steps_warmup=20, target_model_update=100, policy=policy, gamma=0.95, batch_size=16)
    agent.compile(tf_keras.optimizers.legacy.RMSprop(learning_rate=5e-4))
    agent.fit(env, nb_steps=60, verbose=0)
    new = resume_dqn(agent, {"units": {"h0": 20}}, nb_steps_warmup=0)
    assert new.policy is not agent.policy and new.policy.agent is new and agent.policy.agent is agent
    assert new.policy.inner_policy is not agent.policy.inner_policy
    assert (new.gamma, new.batch_size, new.target_model_update, new.nb_steps_warmup) == (0.95, 16, 100, 0)
    opt = new.trainable_model.optimizer
    assert type(opt).__name__ == "RMSprop" and np.isclose(opt.get_config()["learning_rate"], 5e-4)


def test_bad_resume_requests_are_refused():
    env = make_env("CartPole-v1", seed=0)
    old = trained_agent(env, 4, 2, steps=60)
    with pytest.raises(SurgeryError, match="outputs.old lists 3 action IDs"):
        resume_dqn(old, {"outputs": {"old": ["a", "b", "c"], "new": ["a"]}})
    with pytest.raises(SurgeryError, match="memory='carry'.*observation shape changed"):
        resume_dqn(old, {"inputs": {"new": [0, 1, 2, 3, 4]}}, memory="carry")
    with pytest.raises(TypeError, match="unknown settings"):
        resume_dqn(old, {}, gama=0.9)
    with pytest.raises(SurgeryError, match="memory='keep'.*use 'auto', 'carry', 'fresh'"):
        resume_dqn(old, {"units": {"h0": 5}}, memory="keep")


def test_keras_rl2_weight_file_is_a_starting_point(tmp_path):
    env = make_env("CartPole-v1", seed=0)
    trained = trained_agent(env, 4, 2, steps=120)
    path = str(tmp_path / "dqn_weights.h5")
    trained.save_weights(path)
    # months later: rebuild the same agent, load keras-rl2's file, resume on a wider network
    agent = DQNAgent(model=q_net(4, 2), nb_actions=2, memory=SequentialMemory(limit=1000, window_length=1),
                     nb_steps_warmup=10, policy=BoltzmannQPolicy())
    agent.compile(tf_keras.optimizers.legacy.Adam(1e-3))
    agent.load_weights(path)
    new = resume_dqn(agent, {"units": {"h0": 32}, "outputs": {"old": ["left", "right"], "new": ["left", "right", "noop"]}})
    states = random_states(4)
    np.testing.assert_array_equal(np.array(["left", "right", "noop"])[greedy(new, states)],
                                  np.array(["left", "right"])[greedy(trained, states)])


@pytest.mark.parametrize("dueling", [False, True])
def test_save_and_load_agent_then_resume_by_name(tmp_path, dueling):
    from keras_surgeon_rl.rl.persist import load_agent, save_agent

    kept = ["x_dot", "theta"]
    env = make_env("CartPole-v1", seed=0, features=kept)
    agent = trained_agent(env, 2, 2, steps=80, enable_dueling_network=dueling)
    set_unit_ids(agent.model, inputs={agent.model.input_names[0]: kept})
    save_agent(agent, tmp_path / "agent")
    loaded = load_agent(tmp_path / "agent")
    states = random_states(2)
    np.testing.assert_allclose(loaded.compute_batch_q_values(states), agent.compute_batch_q_values(states), atol=1e-6)
    np.testing.assert_allclose(loaded.target_model.predict_on_batch(states), agent.target_model.predict_on_batch(states),
                               atol=1e-6)
    assert (loaded.gamma, loaded.enable_dueling_network, type(loaded.policy).__name__) == (agent.gamma, dueling,
                                                                                            "BoltzmannQPolicy")
    # the saved feature names let the next surgery say only what is new
    new = resume_dqn(loaded, {"inputs": {"new": CARTPOLE_FEATURES}})
    np.testing.assert_array_equal(greedy(new, widen_states(states, kept, CARTPOLE_FEATURES)), greedy(agent, states))
    # the target network takes the same surgery by ID (it once counted its features 0..n-1)
    widened = widen_states(states, kept, CARTPOLE_FEATURES)
    np.testing.assert_allclose(new.target_model.predict_on_batch(widened), agent.target_model.predict_on_batch(states),
                               atol=1e-5)
