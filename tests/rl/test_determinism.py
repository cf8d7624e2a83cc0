"""Same seeds, same agent: keras-rl2 training is reproducible on this stack.

keras-rl2 runs its soft target updates (``target_model_update < 1``) in the same graph call as the
optimizer step, with nothing ordering the read of the online weights against the step's write: a
seeded 1,000-step DQN fit gave different agents from run to run (and a test that needed a
two-action teacher failed one run in four). :mod:`keras_surgeon_rl.rl.compat` orders the update
after the step. These tests check the rule step by step (target_t = tau * online_t +
(1 - tau) * target_{t-1}, with the online weights *after* step t) for DQN and for both DDPG
networks, and that two fresh processes train bit-identical agents.
"""

from keras_surgeon_rl.rl import GymnasiumAdapter, tf_keras  # first: sets up keras-rl2

import subprocess
import sys

import numpy as np
from rl.agents.ddpg import DDPGAgent
from rl.agents.dqn import DQNAgent
from rl.callbacks import Callback
from rl.memory import SequentialMemory
from rl.policy import EpsGreedyQPolicy
from rl.random import OrnsteinUhlenbeckProcess

TAU = 0.5  # large, so "after the step" and "before the step" differ by far more than float32 rounding


class Trace(Callback):
    """Weights of (online, target) model pairs after every ``backward`` call of the agent.

    keras-rl2 calls ``backward`` once per step, and once more when an episode ends (after
    ``on_step_end``, before ``on_episode_end``): snapshots at both callbacks see one call each.
    """

    def __init__(self, agent, pairs):
        super().__init__()
        self.agent, self.pairs = agent, pairs
        self.snapshots = []  # (agent.step during that backward call, [(online, target) weights])

    def snapshot(self, step):
        self.snapshots.append((step, [(online.get_weights(), target.get_weights()) for online, target in self.pairs]))

    def on_train_begin(self, logs=None):
        self.snapshot(-1)

    def on_step_end(self, step, logs=None):
        self.snapshot(self.agent.step)  # incremented after on_step_end

    def on_episode_end(self, episode, logs=None):
        self.snapshot(self.agent.step)


def assert_soft_updates_follow_the_step(trace, warmup):
    """After each training call: target = TAU * online + (1 - TAU) * target before, online *after* the step."""
    checked = 0
    for (_, before), (step, after) in zip(trace.snapshots, trace.snapshots[1:]):
        if step <= warmup:  # keras-rl2 trains once agent.step > nb_steps_warmup
            continue
        for (online, target), (_, target_before) in zip(after, before):
            for o, tw, tb in zip(online, target, target_before):
                expected = np.float32(TAU) * o + np.float32(1 - TAU) * tb
                np.testing.assert_allclose(tw, expected, rtol=0, atol=1e-6, err_msg=f"agent step {step}")
        checked += 1
    assert checked >= 50


def test_dqn_soft_target_update_reads_the_online_weights_after_the_step():
    model = tf_keras.Sequential([tf_keras.layers.Flatten(input_shape=(1, 4)),
                                 tf_keras.layers.Dense(16, activation="relu"), tf_keras.layers.Dense(2)])
    agent = DQNAgent(model=model, nb_actions=2, memory=SequentialMemory(limit=1000, window_length=1),
                     nb_steps_warmup=20, target_model_update=TAU, policy=EpsGreedyQPolicy())
    agent.compile(tf_keras.optimizers.legacy.Adam(learning_rate=1e-2))
    trace = Trace(agent, [(agent.model, agent.target_model)])
    agent.fit(GymnasiumAdapter("CartPole-v1", seed=0), nb_steps=100, verbose=0, callbacks=[trace])

    assert not np.array_equal(trace.snapshots[-1][1][0][0][0], trace.snapshots[0][1][0][0][0])  # it trained
    assert_soft_updates_follow_the_step(trace, warmup=20)


def test_ddpg_soft_target_updates_of_actor_and_critic_read_the_weights_after_their_steps():
    actor = tf_keras.Sequential([tf_keras.layers.Flatten(input_shape=(1, 3)),
                                 tf_keras.layers.Dense(16, activation="relu"), tf_keras.layers.Dense(1)])
    action = tf_keras.Input((1,), name="action")
    observation = tf_keras.Input((1, 3), name="observation")
    x = tf_keras.layers.Concatenate()([action, tf_keras.layers.Flatten()(observation)])
    x = tf_keras.layers.Dense(16, activation="relu")(x)
    critic = tf_keras.Model([action, observation], tf_keras.layers.Dense(1)(x))
    agent = DDPGAgent(nb_actions=1, actor=actor, critic=critic, critic_action_input=action,
                      memory=SequentialMemory(limit=1000, window_length=1), nb_steps_warmup_critic=20,
                      nb_steps_warmup_actor=20, target_model_update=TAU,
                      random_process=OrnsteinUhlenbeckProcess(size=1, theta=0.15, mu=0.0, sigma=0.3))
    agent.compile(tf_keras.optimizers.legacy.Adam(learning_rate=1e-2))
    trace = Trace(agent, [(agent.actor, agent.target_actor), (agent.critic, agent.target_critic)])
    agent.fit(GymnasiumAdapter("Pendulum-v1", seed=0), nb_steps=100, verbose=0, callbacks=[trace])

    for k in range(2):  # both networks trained
        assert not np.array_equal(trace.snapshots[-1][1][k][0][0], trace.snapshots[0][1][k][0][0])
    assert_soft_updates_follow_the_step(trace, warmup=20)


FIT = """
from keras_surgeon_rl.rl import GymnasiumAdapter, tf_keras
import hashlib
from rl.agents.dqn import DQNAgent
from rl.memory import SequentialMemory
from rl.policy import EpsGreedyQPolicy
tf_keras.utils.set_random_seed(2)
model = tf_keras.Sequential([tf_keras.layers.Flatten(input_shape=(1, 4)),
                             tf_keras.layers.Dense(16, activation="relu"), tf_keras.layers.Dense(2)])
agent = DQNAgent(model=model, nb_actions=2, memory=SequentialMemory(limit=5000, window_length=1),
                 nb_steps_warmup=50, target_model_update=1e-2, policy=EpsGreedyQPolicy())
agent.compile(tf_keras.optimizers.legacy.Adam(learning_rate=1e-2))
agent.fit(GymnasiumAdapter("CartPole-v1", seed=2), nb_steps=600, verbose=0)
arrays = model.get_weights() + agent.target_model.get_weights()
print("weights", hashlib.sha256(b"".join(a.tobytes() for a in arrays)).hexdigest())
"""


def test_a_seeded_dqn_fit_trains_the_same_agent_in_two_fresh_processes():
    digests = []
    for _ in range(2):
        out = subprocess.run([sys.executable, "-c", FIT], capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr[-3000:]
        digests.append([line for line in out.stdout.splitlines() if line.startswith("weights ")])
    assert len(digests[0]) == 1 and digests[0] == digests[1]
