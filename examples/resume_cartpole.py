"""Train a DQN on CartPole seeing two observations, then resume it on all four.

    python examples/resume_cartpole.py --steps 4000

Phase 1 trains on (x_dot, theta). ``resume_dqn`` adds x and theta_dot to the network (their
weights start at zero, so the agent's policy is unchanged) and training goes on with all four.
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_surgeon_rl.rl import CARTPOLE_FEATURES, make_env, resume_dqn, tf_keras  # noqa: E402  (sets up keras-rl2)

import numpy as np  # noqa: E402
from rl.agents.dqn import DQNAgent  # noqa: E402
from rl.memory import SequentialMemory  # noqa: E402
from rl.policy import BoltzmannQPolicy  # noqa: E402

KEPT = ["x_dot", "theta"]


def mean_last(rewards, n=10):
    return float(np.mean(rewards[-n:])) if rewards else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=4000, help="training steps per phase")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    tf_keras.utils.set_random_seed(args.seed)

    model = tf_keras.Sequential([
        tf_keras.layers.Flatten(input_shape=(1, len(KEPT)), name="flat"),
        tf_keras.layers.Dense(16, activation="relu", name="hidden"),
        tf_keras.layers.Dense(2, name="q"),
    ])
    agent = DQNAgent(model=model, nb_actions=2, memory=SequentialMemory(limit=50_000, window_length=1),
                     nb_steps_warmup=100, target_model_update=1e-2, policy=BoltzmannQPolicy())
    agent.compile(tf_keras.optimizers.legacy.Adam(learning_rate=1e-3))

    print(f"phase 1: {args.steps} steps on {KEPT}")
    before = agent.fit(make_env("CartPole-v1", seed=args.seed, features=KEPT), nb_steps=args.steps,
                       verbose=0).history["episode_reward"]
    test_before = agent.test(make_env("CartPole-v1", seed=args.seed + 100, features=KEPT), nb_episodes=5,
                             visualize=False, verbose=0).history["episode_reward"]

    spec = {"inputs": {"old": KEPT, "new": CARTPOLE_FEATURES}}
    resumed = resume_dqn(agent, spec)
    print(resumed.model.surgery_report if hasattr(resumed.model, "surgery_report") else "")
    test_resumed = resumed.test(make_env("CartPole-v1", seed=args.seed + 100), nb_episodes=5, visualize=False,
                                verbose=0).history["episode_reward"]

    print(f"phase 2: {args.steps} steps on {CARTPOLE_FEATURES}")
    after = resumed.fit(make_env("CartPole-v1", seed=args.seed + 1), nb_steps=args.steps,
                        verbose=0).history["episode_reward"]

    print()
    print(f"{'':38s}reward")
    print(f"{'phase 1, last 10 training episodes':38s}{mean_last(before):7.1f}")
    print(f"{'greedy test before surgery (2 obs)':38s}{np.mean(test_before):7.1f}")
    print(f"{'greedy test right after surgery (4 obs)':38s}{np.mean(test_resumed):7.1f}")
    print(f"{'phase 2, first 10 training episodes':38s}{float(np.mean(after[:10])):7.1f}")
    print(f"{'phase 2, last 10 training episodes':38s}{mean_last(after):7.1f}")


if __name__ == "__main__":
    main()
