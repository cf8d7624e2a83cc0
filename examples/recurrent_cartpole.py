"""A recurrent Q-network on CartPole, widened and given new observations after training.

    python examples/recurrent_cartpole.py                       # 15,000 + 5,000 steps (about 10 minutes)
    python examples/recurrent_cartpole.py --old-steps 300 --steps 200 --eval-episodes 2   # smoke test

Phase 1 trains a keras-rl2 DQN whose Q-network is an LSTM over the last 8 observations, seeing only
the cart's position and the pole's angle (x, theta): with the velocities hidden, it must read them
off the window, so its memory matters. Then ``resume_dqn`` makes one surgery of two edits, from one
spec: the LSTM goes from 16 to 32 units, and the observation gains the velocities (x_dot,
theta_dot) in every frame of the window. The script checks what the surgery promises, on windows of
real CartPole states: the new Q-network's Q-values equal the old one's (largest difference printed,
at most 1e-5) and so do its greedy actions and its greedy returns from fixed start states. Phase 2
then trains the new agent on all four observations.

The new LSTM units' recurrent rows and the Dense rows that read them start at zero, as do the
kernel rows that read the velocities, so the old units follow their old trajectories exactly; the
new units' own weights start from the layer's initializers (see ``keras_surgeon_rl/rules/recurrent.py``).
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from keras_surgeon_rl.rl import CARTPOLE_FEATURES, make_env, resume_dqn, tf_keras  # noqa: E402  (sets up keras-rl2)

import numpy as np  # noqa: E402
from rl.agents.dqn import DQNAgent  # noqa: E402
from rl.memory import SequentialMemory  # noqa: E402
from rl.policy import BoltzmannQPolicy  # noqa: E402

from keras_surgeon_rl.rl.evaluate import eval_seeds, greedy_returns  # noqa: E402

KEPT = ["x", "theta"]
WINDOW = 8
ENV = "CartPole-v1"


def build_agent(features, units: int = 16) -> DQNAgent:
    model = tf_keras.Sequential([
        tf_keras.Input((WINDOW, len(features)), name="obs"),
        tf_keras.layers.LSTM(units, name="lstm"),
        tf_keras.layers.Dense(2, name="q"),
    ], name="recurrent_q")
    agent = DQNAgent(model=model, nb_actions=2, memory=SequentialMemory(limit=50_000, window_length=WINDOW),
                     nb_steps_warmup=200, target_model_update=1e-2, policy=BoltzmannQPolicy())
    agent.compile(tf_keras.optimizers.legacy.Adam(learning_rate=1e-3))
    return agent


def real_windows(seed: int, n: int = 512) -> np.ndarray:
    """``n`` windows of full CartPole observations from random play (the states an agent meets early)."""
    env = make_env(ENV, seed=seed)
    rng = np.random.default_rng(seed)
    frames, windows = [env.reset()], []
    while len(windows) < n:
        obs, _, done, _ = env.step(int(rng.integers(2)))
        frames = frames[-(WINDOW - 1):] + [obs]
        if len(frames) == WINDOW:
            windows.append(np.array(frames))
        if done:
            frames = [env.reset()]
    env.close()
    return np.array(windows, dtype=np.float32)


def fit(agent: DQNAgent, env, steps: int, label: str) -> list:
    """Train with a progress bar; the training episodes' returns."""
    from tqdm.auto import tqdm

    from rl.callbacks import Callback

    class Bar(Callback):
        def __init__(self):
            super().__init__()
            self.bar = tqdm(total=steps, desc=label, unit="step", dynamic_ncols=True)

        def on_step_end(self, step, logs=None):
            self.bar.update(1)

        def on_train_end(self, logs=None):
            self.bar.close()

    return agent.fit(env, nb_steps=steps, verbose=0, callbacks=[Bar()]).history["episode_reward"]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--old-steps", type=int, default=15_000, help="phase-1 training steps (default 15,000)")
    parser.add_argument("--steps", type=int, default=5_000, help="phase-2 training steps (default 5,000)")
    parser.add_argument("--units", type=int, default=32, help="the LSTM's units after surgery (default 32; 16 before)")
    parser.add_argument("--eval-episodes", type=int, default=10, help="greedy episodes from fixed start states")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    tf_keras.utils.set_random_seed(args.seed)
    seeds = eval_seeds(args.eval_episodes)

    agent = build_agent(KEPT)
    phase1 = fit(agent, make_env(ENV, seed=args.seed, features=KEPT), args.old_steps, f"phase 1 on {KEPT}")
    before = greedy_returns(agent, lambda: make_env(ENV, features=KEPT), seeds)

    spec = {"inputs": {"old": KEPT, "new": CARTPOLE_FEATURES}, "units": {"lstm": args.units}}
    resumed = resume_dqn(agent, spec)
    windows = real_windows(args.seed + 1)
    kept = [CARTPOLE_FEATURES.index(f) for f in KEPT]
    q_old = agent.model.predict_on_batch(windows[..., kept])
    q_new = resumed.model.predict_on_batch(windows)
    gap = float(np.max(np.abs(q_new - q_old)))
    same_actions = float(np.mean(np.argmax(q_new, -1) == np.argmax(q_old, -1)))
    after = greedy_returns(resumed, lambda: make_env(ENV), seeds)

    phase2 = fit(resumed, make_env(ENV, seed=args.seed + 2), args.steps, f"phase 2 on {CARTPOLE_FEATURES}")
    trained = greedy_returns(resumed, lambda: make_env(ENV), seeds)

    print()
    print(f"LSTM 16 → {args.units} units, observations {KEPT} → {CARTPOLE_FEATURES}, window {WINDOW}")
    print(f"Q-values on {len(windows)} real windows: largest |new − old| {gap:.2e}; "
          f"same greedy action on {same_actions:.0%}")
    print(f"{'':44s}return")
    print(f"{'phase 1, last 10 training episodes':44s}{np.mean(phase1[-10:]):7.1f}")
    print(f"{'greedy, before surgery (' + str(len(seeds)) + ' start states)':44s}{before['mean']:7.1f}")
    print(f"{'greedy, right after surgery':44s}{after['mean']:7.1f}")
    print(f"{'greedy, after ' + str(args.steps) + ' more steps':44s}{trained['mean']:7.1f}")
    print(f"{'phase 2, last 10 training episodes':44s}{np.mean(phase2[-10:]) if phase2 else float('nan'):7.1f}")
    return {"q_gap": gap, "same_actions": same_actions, "before": before, "after": after, "trained": trained}


if __name__ == "__main__":
    main()
