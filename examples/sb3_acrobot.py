"""A Stable-Baselines3 DQN on Acrobot gains an action and hidden units: surgery time and retention.

Phase 1: SB3's DQN (``MlpPolicy``, RL Zoo's Acrobot settings, net_arch [64, 64]) learns Acrobot with
two torques (−1, +1). Surgery (``keras_surgeon_rl.sb3.transplant``): zero torque joins by ID
(``keep_greedy``: the greedy policy is unchanged) and the first hidden layer grows 64 → 96. Phase
2: the new agent learns on, with the carried optimizer state and replay buffer (actions renumbered by
ID). The greedy policy (``predict(deterministic=True)``) is measured from 10 fixed start states
before surgery, right after it and during phase 2. (Measured first with torques +1 and 0, and without
the angular velocities: the old agents stayed at −500 when greedy within this budget, nothing to
retain.)

Usage:
    python examples/sb3_acrobot.py                          # 3 seeds, 30,000 + 20,000 steps
    python examples/sb3_acrobot.py --seeds 1 --steps 2000 --old-steps 2000   # smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "torch")  # the plan needs no TensorFlow

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from keras_surgeon_rl import sb3  # noqa: E402
from keras_surgeon_rl.env_ids import ACROBOT_ACTIONS  # noqa: E402
from keras_surgeon_rl.sb3.envs import make_env  # noqa: E402

OLD_ACTIONS = ["torque-1", "torque+1"]
SPEC = {"outputs": {"old": OLD_ACTIONS, "new": ACROBOT_ACTIONS}, "units": {"q_0": 96}}
#: RL Zoo's hyperparameters for DQN on Acrobot-v1 (rl-baselines3-zoo, hyperparams/dqn.yml).
DQN_SETTINGS = {"learning_rate": 6.3e-4, "batch_size": 128, "buffer_size": 50_000, "learning_starts": 0,
                "gamma": 0.99, "target_update_interval": 250, "train_freq": 4, "gradient_steps": -1,
                "exploration_fraction": 0.12, "exploration_final_eps": 0.1,
                "policy_kwargs": {"net_arch": [256, 256]}}
EVAL_SEEDS = list(range(1000, 1010))


def greedy_return(model, actions=None) -> float:
    """Mean return of the greedy policy from the fixed start states ``EVAL_SEEDS``."""
    total = []
    for seed in EVAL_SEEDS:
        env = make_env("Acrobot-v1", actions=actions)
        obs, _ = env.reset(seed=seed)
        done, ret = False, 0.0
        while not done:
            action, _ = model.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(int(action))
            ret += float(reward)
            done = terminated or truncated
        total.append(ret)
    return float(np.mean(total))


def run(seed: int, old_steps: int, steps: int, every: int) -> dict:
    from stable_baselines3 import DQN

    model = DQN("MlpPolicy", make_env("Acrobot-v1", actions=OLD_ACTIONS), seed=seed,
                **{**DQN_SETTINGS, "policy_kwargs": {"net_arch": [64, 64]}})
    model.learn(old_steps)
    before = greedy_return(model, OLD_ACTIONS)
    seconds = []  # the first call in a process includes Keras's start-up; the second is the surgery itself
    for _ in range(2):
        start = time.perf_counter()
        new = sb3.transplant(model, SPEC, env=make_env("Acrobot-v1"))
        seconds.append(time.perf_counter() - start)
    error = sb3.verify(model, new, SPEC)
    curve = [{"step": 0, "greedy": greedy_return(new)}]
    for done in range(every, steps + 1, every):
        new.learn(every, reset_num_timesteps=False)
        curve.append({"step": done, "greedy": greedy_return(new)})
    return {"seed": seed, "before": before, "after": curve[0]["greedy"], "surgery_seconds": seconds,
            "verify": error, "curve": curve}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--old-steps", type=int, default=30_000)
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--every", type=int, default=5000)
    p.add_argument("--out", type=Path, default=Path("results") / "sb3_acrobot.json")
    args = p.parse_args(argv)
    import torch
    from tqdm import tqdm

    torch.set_num_threads(1)  # small networks: one thread is as fast, and leaves the other cores alone

    runs = [run(s, args.old_steps, args.steps, min(args.every, args.steps)) for s in tqdm(range(args.seeds), "seeds")]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    result = {"spec": SPEC, "old_steps": args.old_steps, "steps": args.steps, "eval_seeds": EVAL_SEEDS, "runs": runs}
    args.out.write_text(json.dumps(result, indent=1))
    for r in runs:
        print(f"seed {r['seed']}: greedy {r['before']:.1f} before, {r['after']:.1f} right after "
              f"(verify {r['verify']:.1e}; surgery {r['surgery_seconds'][1]:.2f} s, first call "
              f"{r['surgery_seconds'][0]:.2f} s), "
              + ", ".join(f"{c['greedy']:.1f} at {c['step']}" for c in r["curve"][1:]))
    print(f"results: {args.out}")
    return result


if __name__ == "__main__":
    main()
