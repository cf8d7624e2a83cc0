"""Transfer strategies with real keras-rl2 DQN agents on gymnasium CartPole (graph mode)."""

from keras_surgeon_rl.rl import GymnasiumAdapter, tf_keras

import numpy as np
from rl.agents.dqn import DQNAgent
from rl.callbacks import Callback
from rl.memory import SequentialMemory
from rl.policy import EpsGreedyQPolicy

from keras_surgeon_rl.transfer import (
    distill,
    freeze,
    greedy_agreement,
    recompile,
    rollout_states,
    states_from_memory,
)
from keras_surgeon_rl.transfer.rl_callbacks import AgentFreezeThawCallback, recompile_agent


def q_network(hidden=(16, 16)):
    layers = [tf_keras.layers.Flatten(input_shape=(1, 4))]
    layers += [tf_keras.layers.Dense(n, activation="relu") for n in hidden] + [tf_keras.layers.Dense(2)]
    return tf_keras.Sequential(layers)


def dqn(model, learning_rate=1e-3, warmup=20):
    agent = DQNAgent(model=model, nb_actions=2, memory=SequentialMemory(limit=5000, window_length=1),
                     nb_steps_warmup=warmup, target_model_update=1e-2, policy=EpsGreedyQPolicy())
    agent.compile(tf_keras.optimizers.legacy.Adam(learning_rate=learning_rate))
    return agent


def same(a, b):
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b))


def test_recompile_agent_keeps_targets_and_optimizer_config_and_honours_freezing():
    tf_keras.utils.set_random_seed(0)
    model = q_network()
    agent = dqn(model, learning_rate=2e-3)
    agent.fit(GymnasiumAdapter("CartPole-v1", seed=0), nb_steps=100, verbose=0)
    target_before = agent.target_model.get_weights()
    online_before = model.get_weights()
    assert not same(target_before, online_before)  # soft updates: the target lags behind
    old_optimizer = agent.trainable_model.optimizer.optimizer
    metrics = agent.metrics_names

    freeze(model, [1])
    recompile_agent(agent)

    new_optimizer = agent.trainable_model.optimizer.optimizer
    assert new_optimizer is not old_optimizer and type(new_optimizer) is type(old_optimizer)
    assert new_optimizer.get_config()["learning_rate"] == old_optimizer.get_config()["learning_rate"]
    assert same(agent.target_model.get_weights(), target_before)
    assert same(model.get_weights(), online_before)
    assert agent.metrics_names == metrics == ["loss", "mean_q"]

    frozen_before = model.layers[1].get_weights()
    others_before = model.layers[2].get_weights() + model.layers[3].get_weights()
    agent.fit(GymnasiumAdapter("CartPole-v1", seed=1), nb_steps=100, verbose=0)
    assert same(model.layers[1].get_weights(), frozen_before)
    assert not same(model.layers[2].get_weights() + model.layers[3].get_weights(), others_before)


def test_recompile_agent_with_hard_target_updates():
    tf_keras.utils.set_random_seed(3)
    model = q_network()
    agent = DQNAgent(model=model, nb_actions=2, memory=SequentialMemory(limit=1000, window_length=1),
                     nb_steps_warmup=20, target_model_update=50, policy=EpsGreedyQPolicy())
    agent.compile(tf_keras.optimizers.legacy.RMSprop(learning_rate=5e-4))  # no optimizer wrapper
    agent.fit(GymnasiumAdapter("CartPole-v1", seed=3), nb_steps=60, verbose=0)
    target_before = agent.target_model.get_weights()
    freeze(model, [1, 2])
    recompile_agent(agent)
    assert type(agent.trainable_model.optimizer) is tf_keras.optimizers.legacy.RMSprop
    assert same(agent.target_model.get_weights(), target_before)
    frozen = model.layers[1].get_weights() + model.layers[2].get_weights()
    agent.fit(GymnasiumAdapter("CartPole-v1", seed=4), nb_steps=60, verbose=0)
    assert same(model.layers[1].get_weights() + model.layers[2].get_weights(), frozen)


def test_recompile_a_plain_tf_keras_model_in_graph_mode():
    tf_keras.utils.set_random_seed(4)
    model = q_network()
    model.compile(optimizer=tf_keras.optimizers.legacy.Adam(1e-2), loss="mse", metrics=["mae"])
    x = np.random.default_rng(0).normal(size=(64, 1, 4)).astype("float32")
    y = np.random.default_rng(1).normal(size=(64, 2)).astype("float32")
    model.fit(x, y, epochs=1, verbose=0)
    freeze(model, [1])
    recompile(model)
    before = [layer.get_weights() for layer in model.layers]
    history = model.fit(x, y, epochs=1, verbose=0)
    assert same(model.layers[1].get_weights(), before[1])
    assert not same(model.layers[3].get_weights(), before[3])
    assert "mae" in history.history


def test_agent_freeze_then_thaw_trains_each_layer_from_its_step_on_cartpole():
    tf_keras.utils.set_random_seed(1)
    model = q_network()
    dense = [model.layers[1], model.layers[2], model.layers[3]]
    agent = dqn(model, warmup=10)
    snapshots = []

    def snapshot():  # [kernel, bias] of each Dense layer, one session call
        arrays = model.get_weights()
        return [arrays[0:2], arrays[2:4], arrays[4:6]]

    class Record(Callback):
        def on_train_begin(self, logs=None):
            snapshots.append(snapshot())

        def on_step_end(self, step, logs=None):
            snapshots.append(snapshot())

    schedule = AgentFreezeThawCallback(tl_end=0.5)
    env = GymnasiumAdapter("CartPole-v1", seed=0)
    agent.fit(env, nb_steps=200, verbose=0, callbacks=[schedule, Record()])

    expected = {dense[0].name: 100, dense[1].name: 50, dense[2].name: 0}
    assert schedule.thaw_steps == expected
    assert schedule.thawed_at == expected
    assert len(snapshots) == 201  # snapshots[d]: weights after d agent steps
    for i, layer in enumerate(dense):
        s = expected[layer.name]
        assert all(same(snapshots[d][i], snapshots[0][i]) for d in range(s + 1)), layer.name
        assert not same(snapshots[200][i], snapshots[199][i]), layer.name
        if s > 10:  # after the warm-up, a layer trains at the very step it is thawed
            assert not same(snapshots[s + 1][i], snapshots[s][i]), layer.name
    assert len(agent.trainable_model.trainable_weights) == 6


def test_states_from_memory_are_the_windows_keras_rl2_samples():
    memory = SequentialMemory(limit=100, window_length=3)
    rng = np.random.default_rng(0)
    observations = rng.normal(size=(30, 4)).astype("float32")
    for i, observation in enumerate(observations):
        memory.append(observation, action=0, reward=1.0, terminal=i in (9, 20))

    states = states_from_memory(memory)

    assert states.shape == (30, 3, 4)
    np.testing.assert_array_equal(states[:, -1], observations)
    np.testing.assert_array_equal(states[0], np.stack([np.zeros(4), np.zeros(4), observations[0]]))
    # batch index k makes keras-rl2 build the state ending at observation k; it re-draws a random
    # index when observation k is the terminal observation of an episode (k - 1 flagged terminal)
    ends = [k for k in range(3, 29) if k - 1 not in (9, 20)]
    sampled = memory.sample(len(ends), batch_idxs=ends)
    for k, experience in zip(ends, sampled):
        np.testing.assert_array_equal(states[k], np.stack(experience.state0))
    # observation 10 ends the episode flagged at 9; observation 11 starts the next one
    np.testing.assert_array_equal(states[12], np.stack([np.zeros(4), observations[11], observations[12]]))


def test_distill_a_briefly_trained_dqn_teacher_on_cartpole():
    """Margins checked over seeds 0-19 (this recipe, each seed in place of 2): the teacher's rarer action
    was at least 44 % of its greedy choices (asserted: > 20 %), and the student agreed with it on at
    least 94 % of the held-out states (asserted: >= 85 %). The former recipe (15 epochs, >= 0.95)
    failed at 5 of those 20 seeds. With keras-rl2's soft target updates ordered (see
    test_determinism.py) a seed gives the same numbers on every run."""
    tf_keras.utils.set_random_seed(2)
    agent = dqn(tf_keras.Sequential([tf_keras.layers.Flatten(input_shape=(1, 4)),
                                     tf_keras.layers.Dense(16, activation="relu"), tf_keras.layers.Dense(2)]),
                learning_rate=1e-2, warmup=50)
    agent.fit(GymnasiumAdapter("CartPole-v1", seed=2), nb_steps=1000, verbose=0)
    teacher = agent.model
    explored = rollout_states(teacher, GymnasiumAdapter("CartPole-v1", seed=102), 2000, epsilon=0.2, seed=2)
    held_out = rollout_states(teacher, GymnasiumAdapter("CartPole-v1", seed=202), 500)
    assert explored.shape == (2000, 1, 4) and held_out.shape == (500, 1, 4)
    greedy = np.argmax(teacher.predict_on_batch(held_out), axis=1)
    assert min(np.mean(greedy == 0), np.mean(greedy == 1)) > 0.2  # not a one-action teacher
    student = tf_keras.Sequential([tf_keras.Input((4,)), tf_keras.layers.Dense(64, activation="relu"),
                                   tf_keras.layers.Dense(64, activation="relu"), tf_keras.layers.Dense(2)])

    from_memory = distill(teacher, student, agent.memory, temperature=0.1, epochs=2, learning_rate=1e-3)
    history = distill(teacher, student, np.concatenate([states_from_memory(agent.memory), explored]),
                      temperature=0.1, epochs=40, learning_rate=1e-3, validation_states=held_out)

    assert len(from_memory.loss) == 2 and from_memory.loss[-1] < from_memory.loss[0]
    assert history.loss[-1] < history.loss[0]
    assert greedy_agreement(teacher, student, held_out) >= 0.85


def test_rollout_states_of_a_teacher_that_sees_fewer_features_and_has_its_actions_elsewhere():
    """The old agent of an experiment sees 2 of CartPole's 4 features and its action 0 is the
    environment's 1: the states come back as the environment gives them, and replaying the teacher's
    mapped greedy actions from the same reset walks through exactly those states."""
    tf_keras.utils.set_random_seed(3)
    columns, actions = [2, 3], [1, 0]  # theta, theta_dot; the teacher's outputs in the env's order reversed
    teacher = tf_keras.Sequential([tf_keras.layers.Flatten(input_shape=(1, 2)),
                                   tf_keras.layers.Dense(16, activation="relu"), tf_keras.layers.Dense(2)])
    states = rollout_states(teacher, GymnasiumAdapter("CartPole-v1", seed=7), 300,
                            teacher_input=lambda batch: batch[..., columns], actions=actions)
    assert states.shape == (300, 1, 4)
    env = GymnasiumAdapter("CartPole-v1", seed=7)
    observation, resets = env.reset(), 0
    for state in states:
        np.testing.assert_array_equal(state[0], np.asarray(observation, dtype=np.float32))
        greedy = int(np.argmax(teacher.predict_on_batch(state[None][..., columns])[0]))
        observation, _reward, done, _info = env.step(actions[greedy])
        if done:
            observation, resets = env.reset(), resets + 1
    assert resets >= 2  # the walk crossed episode ends
