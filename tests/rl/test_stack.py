"""The keras-rl2 stack works: a real DQNAgent trains on a real gymnasium environment."""

from keras_surgeon_rl.rl import GymnasiumAdapter, tf_keras

import numpy as np
from rl.agents.dqn import DQNAgent
from rl.memory import SequentialMemory
from rl.policy import EpsGreedyQPolicy


def test_dqn_trains_on_cartpole():
    env = GymnasiumAdapter("CartPole-v1", seed=0)
    model = tf_keras.Sequential(
        [tf_keras.layers.Flatten(input_shape=(1, 4)), tf_keras.layers.Dense(8, activation="relu"),
         tf_keras.layers.Dense(2)]
    )
    before = [w.copy() for w in model.get_weights()]
    agent = DQNAgent(model=model, nb_actions=2, memory=SequentialMemory(limit=1000, window_length=1),
                     nb_steps_warmup=50, target_model_update=1e-2, policy=EpsGreedyQPolicy())
    agent.compile(tf_keras.optimizers.legacy.Adam(learning_rate=1e-3))
    history = agent.fit(env, nb_steps=300, verbose=0)
    assert history.history["episode_reward"], "no episode finished in 300 CartPole steps"
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
