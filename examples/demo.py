"""Main demo: a keras-rl2 DQN agent trains on gymnasium CartPole (proves the stack end to end)."""

from keras_surgeon_rl.rl import GymnasiumAdapter, tf_keras  # first: sets up keras-rl2

import numpy as np
from rl.agents.dqn import DQNAgent
from rl.memory import SequentialMemory
from rl.policy import BoltzmannQPolicy


def main(steps: int = 600) -> None:
    env = GymnasiumAdapter("CartPole-v1", seed=0)
    model = tf_keras.Sequential(
        [
            tf_keras.layers.Flatten(input_shape=(1, 4)),
            tf_keras.layers.Dense(16, activation="relu"),
            tf_keras.layers.Dense(2),
        ]
    )
    agent = DQNAgent(
        model=model, nb_actions=2, memory=SequentialMemory(limit=10_000, window_length=1),
        nb_steps_warmup=100, target_model_update=1e-2, policy=BoltzmannQPolicy(),
    )
    agent.compile(tf_keras.optimizers.legacy.Adam(learning_rate=1e-3))
    history = agent.fit(env, nb_steps=steps, verbose=0)
    rewards = history.history["episode_reward"]
    print(f"DQN trained {steps} steps on CartPole-v1: {len(rewards)} episodes, "
          f"mean reward {np.mean(rewards):.1f}, last {rewards[-1]:.0f}")


if __name__ == "__main__":
    main()
