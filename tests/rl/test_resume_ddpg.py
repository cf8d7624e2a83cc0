"""resume_ddpg / resume_agent on real keras-rl2 DDPG agents: actions and Q-values survive every edit
that claims to preserve them (online and target networks), fit runs afterwards, the random process
and the replay memory follow the action IDs, and the old agent is untouched."""

from keras_surgeon_rl.rl import (  # first: sets up keras-rl2
    CARTPOLE_FEATURES, PENDULUM_FEATURES, make_env, resume_agent, resume_ddpg, resume_dqn,
    tf_keras,
)

import numpy as np
import pytest
import tensorflow as tf
from rl.agents import DDPGAgent, DQNAgent
from rl.core import Agent
from rl.memory import SequentialMemory
from rl.policy import BoltzmannQPolicy
from rl.random import OrnsteinUhlenbeckProcess

from keras_surgeon_rl import SurgeryError, get_unit_ids
from keras_surgeon_rl.rl.memory import carry_action_columns
from keras_surgeon_rl.rl.resume_ddpg import map_random_process

L = tf_keras.layers
N_STATES = 500


def actor_net(n_obs, n_act, hidden=8):
    return tf_keras.Sequential([L.Flatten(input_shape=(1, n_obs), name="a_flat"),
                                L.Dense(hidden, activation="relu", name="a_h"),
                                L.Dense(n_act, activation="tanh", name="a_out")], name="actor")


def critic_net(n_obs, n_act, hidden=8):
    action = L.Input((n_act,), name="action_input")
    obs = L.Input((1, n_obs), name="observation_input")
    x = L.Concatenate(name="cat")([action, L.Flatten(name="c_flat")(obs)])
    x = L.Dense(hidden, activation="relu", name="c_h")(x)
    return tf_keras.Model([action, obs], L.Dense(1, name="q")(x), name="critic"), action


def trained_ddpg(env, n_obs, n_act, steps=150):
    critic, action_input = critic_net(n_obs, n_act)
    agent = DDPGAgent(nb_actions=n_act, actor=actor_net(n_obs, n_act), critic=critic,
                      critic_action_input=action_input, memory=SequentialMemory(limit=2000, window_length=1),
                      random_process=OrnsteinUhlenbeckProcess(theta=.15, mu=0., sigma=.3, size=n_act),
                      nb_steps_warmup_critic=50, nb_steps_warmup_actor=50, gamma=.95, batch_size=16,
                      target_model_update=1e-2)
    agent.compile([tf_keras.optimizers.legacy.Adam(learning_rate=1e-3),
                   tf_keras.optimizers.legacy.Adam(learning_rate=2e-3)])
    agent.fit(env, nb_steps=steps, verbose=0, nb_max_episode_steps=60)
    return agent


def q_net(n_obs, n_actions):
    return tf_keras.Sequential([L.Flatten(input_shape=(1, n_obs), name="flat"),
                                L.Dense(8, activation="relu", name="h0"), L.Dense(n_actions, name="q")], name="qnet")


def trained_dqn(env, n_obs, n_actions, steps=100):
    agent = DQNAgent(model=q_net(n_obs, n_actions), nb_actions=n_actions,
                     memory=SequentialMemory(2000, window_length=1), nb_steps_warmup=50, target_model_update=1e-2, policy=BoltzmannQPolicy())
    agent.compile(tf_keras.optimizers.legacy.Adam(learning_rate=1e-3))
    agent.fit(env, nb_steps=steps, verbose=0)
    return agent


class HoldSecondActuator:
    """A 2-actuator continuous env seen as 1-actuator: the agent's action drives the first, the second is 0."""

    def __init__(self, env):
        self.env = env
        import gymnasium

        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (1,), np.float32)
        self.observation_space = env.observation_space

    def reset(self, **kwargs):
        return self.env.reset(**kwargs)

    def step(self, action):
        return self.env.step(np.array([np.asarray(action).ravel()[0], 0.0], np.float32))

    def __getattr__(self, name):
        if name == "env" or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.env, name)


def networks(agent):
    return agent.actor, agent.critic, agent.target_actor, agent.target_critic


def snapshot(agent):
    return [[w.copy() for w in net.get_weights()] for net in networks(agent)]


def assert_unchanged(agent, snap):
    for net, weights in zip(networks(agent), snap):
        now = net.get_weights()
        assert len(now) == len(weights)
        for a, b in zip(weights, now):
            assert a.tobytes() == b.tobytes()


def states(n_obs, seed=0):
    return np.random.default_rng(seed).normal(0, 1.5, size=(N_STATES, 1, n_obs)).astype("float32")


def reorder(x, old_ids, new_ids, seed=1, fill=None):
    """``x`` (last axis in ``old_ids``' order) in ``new_ids``' order; new columns random (or ``fill``)."""
    shape = x.shape[:-1] + (len(new_ids),)
    out = np.random.default_rng(seed).normal(0, 1.5, size=shape).astype("float32") if fill is None \
        else np.full(shape, fill, np.float32)
    for j, uid in enumerate(new_ids):
        if uid in old_ids:
            out[..., j] = x[..., old_ids.index(uid)]
    return out


def q_values(critic, action_idx, obs, actions):
    xs = [obs]
    xs.insert(action_idx, actions)
    return critic.predict_on_batch(xs)


def assert_same_function(old, new, obs_old, obs_new, act_old_ids, act_new_ids, atol=1e-5):
    """Actions (on the old action IDs) and Q (old actions, new ones at 0 and at 0.7) are the old ones."""
    cols = [act_new_ids.index(a) for a in act_old_ids]
    added = [j for j, a in enumerate(act_new_ids) if a not in act_old_ids]
    for old_actor, new_actor, old_critic, new_critic in ((old.actor, new.actor, old.critic, new.critic),
                                                         (old.target_actor, new.target_actor, old.target_critic,
                                                          new.target_critic)):
        a_old, a_new = old_actor.predict_on_batch(obs_old), new_actor.predict_on_batch(obs_new)
        np.testing.assert_allclose(a_new[:, cols], a_old, atol=atol)
        np.testing.assert_array_equal(a_new[:, added], 0.0)  # the neutral value of a new action dimension
        q_old = q_values(old_critic, old.critic_action_input_idx, obs_old, a_old)
        for fill in (0.0, 0.7):
            acts = reorder(a_old, act_old_ids, act_new_ids, fill=fill)
            np.testing.assert_allclose(q_values(new_critic, new.critic_action_input_idx, obs_new, acts), q_old,
                                       atol=atol)
    assert np.ptp(old.actor.predict_on_batch(obs_old)) > 1e-3  # a constant actor would prove nothing


def deterministic_action(agent, observation):
    """The action ``forward`` would take without exploration noise (keras-rl2's test mode)."""
    batch = agent.process_state_batch([[observation]])
    return agent.actor.predict_on_batch(batch).flatten()


def test_pendulum_add_observation_feature_keeps_actions_and_q():
    kept = ["cos_theta", "theta_dot"]
    old = trained_ddpg(make_env("Pendulum-v1", seed=0, features=kept), 2, 1)
    snap = snapshot(old)
    x_prev = old.random_process.x_prev.copy()
    new = resume_agent(old, {"inputs": {"old": kept, "new": PENDULUM_FEATURES}})
    assert isinstance(new, DDPGAgent) and new.nb_actions == 1
    s_old = states(2)
    s_new = reorder(s_old, kept, PENDULUM_FEATURES)
    assert_same_function(old, new, s_old, s_new, [0], [0])
    obs_old, obs_new = s_old[3, 0], s_new[3, 0]
    np.testing.assert_array_equal(deterministic_action(new, obs_new), deterministic_action(old, obs_old))
    # settings, optimizers, random process, memory, unit IDs
    for k in ("gamma", "batch_size", "nb_steps_warmup_critic", "nb_steps_warmup_actor", "target_model_update"):
        assert getattr(new, k) == getattr(old, k)
    assert new.actor_optimizer is not old.actor_optimizer
    assert type(new.actor_optimizer).__name__ == "Adam"
    assert float(new.actor_optimizer.get_config()["learning_rate"]) == pytest.approx(1e-3)
    assert float(new.critic.optimizer.optimizer.get_config()["learning_rate"]) == pytest.approx(2e-3)
    assert new.random_process is not old.random_process and new.random_process.size == 1
    np.testing.assert_array_equal(new.random_process.x_prev, x_prev)
    assert new.random_process.theta == old.random_process.theta and new.random_process.sigma == .3
    assert new.memory.nb_entries == 0  # the observation changed: memory="auto" starts empty
    assert get_unit_ids(new.actor)["inputs"]["a_flat_input"] == PENDULUM_FEATURES
    assert get_unit_ids(new.critic)["inputs"]["observation_input"] == PENDULUM_FEATURES
    history = new.fit(make_env("Pendulum-v1", seed=1), nb_steps=200, verbose=0, nb_max_episode_steps=60)
    assert len(history.history["episode_reward"]) >= 3
    assert_unchanged(old, snap)
    np.testing.assert_array_equal(old.random_process.x_prev, x_prev)


def test_pendulum_remove_and_permute_features_with_hidden_edits():
    old = trained_ddpg(make_env("Pendulum-v1", seed=0), 3, 1)
    snap = snapshot(old)
    new_ids = ["theta_dot", "cos_theta"]  # sin_theta removed, the other two swapped
    spec = {"inputs": {"old": PENDULUM_FEATURES, "new": new_ids},
            "actor": {"units": {"a_h": 12}},
            "critic": {"units": {"c_h": 16}, "insert": [{"after": "c_h", "activation": "relu"}]}}
    new = resume_ddpg(old, spec)
    assert new.critic.get_layer("c_h").units == 16 and new.actor.get_layer("a_h").units == 12
    assert len(new.critic.layers) == len(old.critic.layers) + 1
    s_old = states(3)
    s_old[..., 1] = 0.0  # removing a feature = the old network reading 0 for it
    s_new = reorder(s_old, PENDULUM_FEATURES, new_ids)
    assert_same_function(old, new, s_old, s_new, [0], [0])
    # and a pure permutation gives exactly the old function too
    perm = ["theta_dot", "sin_theta", "cos_theta"]
    permuted = resume_ddpg(old, {"inputs": {"old": PENDULUM_FEATURES, "new": perm}})
    s_old = states(3, seed=2)
    assert_same_function(old, permuted, s_old, reorder(s_old, PENDULUM_FEATURES, perm), [0], [0])
    new.fit(make_env("Pendulum-v1", seed=1, features=new_ids), nb_steps=200, verbose=0, nb_max_episode_steps=60)
    assert_unchanged(old, snap)


def test_added_action_dimension_keeps_actions_q_noise_and_memory():
    lunar = make_env("LunarLanderContinuous-v3", seed=0)
    old = trained_ddpg(HoldSecondActuator(lunar), 8, 1)
    snap = snapshot(old)
    old_x = old.random_process.x_prev.copy()
    old_ids, new_ids = ["main"], ["lateral", "main"]  # the new dimension first: columns really move
    new = resume_agent(old, {"outputs": {"old": old_ids, "new": new_ids}})
    assert new.nb_actions == 2
    s = states(8)
    assert_same_function(old, new, s, s, old_ids, new_ids)
    np.testing.assert_array_equal(deterministic_action(new, s[0, 0]), [0.0, deterministic_action(old, s[0, 0])[0]])
    # the random process: size 2, state mapped by ID, the new dimension at 0
    assert new.random_process.size == 2
    np.testing.assert_array_equal(new.random_process.x_prev, [0.0, old_x[0]])
    assert new.random_process.sample().shape == (2,)
    # the memory: carried (same observations), stored action vectors mapped by ID
    assert new.memory.nb_entries == old.memory.nb_entries > 100
    for i in range(old.memory.nb_entries):
        np.testing.assert_array_equal(new.memory.actions[i], [0.0, np.asarray(old.memory.actions[i])[0]])
        assert new.memory.rewards[i] == old.memory.rewards[i]
        np.testing.assert_array_equal(new.memory.observations[i], old.memory.observations[i])
    assert get_unit_ids(new.actor)["layers"]["a_out"] == new_ids
    assert get_unit_ids(new.critic)["inputs"]["action_input"] == new_ids
    new.fit(make_env("LunarLanderContinuous-v3", seed=1), nb_steps=200, verbose=0, nb_max_episode_steps=60)
    assert_unchanged(old, snap)
    # memory="fresh" starts empty
    assert resume_ddpg(old, {"outputs": {"old": old_ids, "new": new_ids}}, memory="fresh").memory.nb_entries == 0


def test_map_random_process_by_id():
    process = OrnsteinUhlenbeckProcess(theta=.2, sigma=.5, size=3)
    process.x_prev = np.array([1.0, 2.0, 3.0])
    new = map_random_process(process, ["a", "b", "c"], ["c", "d", "a"])
    np.testing.assert_array_equal(new.x_prev, [3.0, 0.0, 1.0])
    assert new.size == 3 and new.theta == .2 and new.sigma == .5
    np.testing.assert_array_equal(process.x_prev, [1.0, 2.0, 3.0])
    assert map_random_process(process, ["a", "b", "c"], ["b"]).x_prev.tolist() == [2.0]


def test_carry_action_columns_maps_drops_and_zero_fills_by_id():
    old = SequentialMemory(limit=10, window_length=1)
    for i in range(4):
        old.append(np.array([i, -i], np.float32), np.array([1.0 + i, 2.0 + i, 3.0 + i]), float(i), i == 3)
    new = carry_action_columns(old, ["a", "b", "c"], ["c", "new", "a"])
    assert new.nb_entries == 4 and new.limit == 10
    for i in range(4):
        np.testing.assert_array_equal(new.actions[i], [3.0 + i, 0.0, 1.0 + i])
        assert new.actions[i].dtype == old.actions[i].dtype
        assert (new.rewards[i], new.terminals[i]) == (old.rewards[i], old.terminals[i])
    np.testing.assert_array_equal(old.actions[0], [1.0, 2.0, 3.0])  # the old memory is untouched
    with pytest.raises(ValueError, match="expected \\(2,\\)"):
        carry_action_columns(old, ["a", "b"], ["a"])


@pytest.mark.parametrize("spec, message", [
    ({"actr": {"units": {"a_h": 4}}}, "unknown key 'actr'"),
    ({"units": {"a_h": 4}}, "put hidden-layer edits under"),
    ({"critic": {"inputs": {"old": [0], "new": [0]}}}, "unknown key 'inputs' in spec['critic']"),
    ({"outputs": {"old": ["a", "b"], "new": ["a"]}}, "lists 2 action IDs, but the agent has 1"),
    ({"inputs": {"old": ["x"], "new": ["x"]}}, "lists 1 observation feature IDs"),
    ({"critic": {"units": {"no_such_layer": 4}}}, "no_such_layer"),
])
def test_bad_spec_raises_before_anything_is_built(spec, message):
    old = trained_ddpg(make_env("Pendulum-v1", seed=0), 3, 1, steps=60)
    graph = tf.compat.v1.get_default_graph()
    n_ops = len(graph.get_operations())
    with pytest.raises(SurgeryError, match=message.replace("[", r"\[").replace("]", r"\]")):
        resume_agent(old, spec)
    assert len(graph.get_operations()) == n_ops


def test_memory_carry_refused_when_observations_change():
    old = trained_ddpg(make_env("Pendulum-v1", seed=0, features=["cos_theta"]), 1, 1, steps=60)
    with pytest.raises(SurgeryError, match="memory='carry'"):
        resume_ddpg(old, {"inputs": {"old": ["cos_theta"], "new": PENDULUM_FEATURES}}, memory="carry")


def test_resume_agent_on_dqn_is_resume_dqn():
    kept = ["x_dot", "theta"]
    old = trained_dqn(make_env("CartPole-v1", seed=0, features=kept), 2, 2)
    spec = {"inputs": {"old": kept, "new": CARTPOLE_FEATURES}}
    a, b = resume_agent(old, spec), resume_dqn(old, spec)
    assert type(a) is type(b)
    for x, y in zip(a.model.get_weights() + a.target_model.get_weights(),
                    b.model.get_weights() + b.target_model.get_weights()):
        np.testing.assert_array_equal(x, y)
    assert a.memory.nb_entries == b.memory.nb_entries and a.gamma == b.gamma


def test_resume_agent_refuses_unsupported_agent_types():
    class OtherAgent(Agent):  # a keras-rl2 agent class no resumer is registered for
        pass

    agent = OtherAgent()
    with pytest.raises(SurgeryError, match=r"cannot resume a OtherAgent; supported agent types: DQNAgent, DDPGAgent, "
                                           r"SARSAAgent"):
        resume_agent(agent, {})
