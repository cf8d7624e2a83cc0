"""Pendulum, observations 2 → 3: a DDPG agent that saw (cos_theta, sin_theta) is given theta_dot too.

keras-rl2's DDPGAgent (its ddpg_pendulum.py settings: actor 3 × 16, critic 3 × 32, Ornstein-Uhlenbeck
noise, soft target updates 1e-3) on gymnasium's Pendulum-v1. Phase 1 trains the old agent on the
pendulum's angle only (cos_theta, sin_theta; it cannot see the angular velocity), phase 2 goes on
with all three observations.

Arms (phase 2, --steps steps each; phase 1, --old-steps, is trained once per seed and cached):

  old        the old agent keeps training on (cos_theta, sin_theta) only
  preserve   ours: resume_ddpg, theta_dot's weights start at zero in the actor and the critic (the
             function is kept: the deterministic actor's return right after surgery equals the old one's)
  scratch    a fresh agent on all three observations, trained for phase 1 + phase 2 steps

Greedy evaluation: the deterministic actor (no exploration noise) on 10 fixed start states every
--eval-every steps (Pendulum episodes last 200 steps; the return is minus the swing-up cost).

Usage:
    python examples/pendulum_ddpg.py                             # 20,000 + 10,000 steps, 3 runs
    python examples/pendulum_ddpg.py --old-steps 200 --steps 200 --runs 1 --eval-every 100 \\
        --eval-episodes 2 --jobs 1 --out /tmp/pendulum_smoke      # smoke test
"""

from keras_surgeon_rl.rl import PENDULUM_FEATURES  # noqa: I001  (first: sets up keras-rl2)

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from examples.experiments import ddpg  # noqa: E402

EXPERIMENT = "pendulum_ddpg"
OLD_STEPS = 20_000
ARMS = ["old", "preserve", "scratch"]
KEPT = ["cos_theta", "sin_theta"]
ACTOR, CRITIC = [16, 16, 16], [32, 32, 32]
EXP = {
    "env": "Pendulum-v1",
    "old": {"features": KEPT, "actor": ACTOR, "critic": CRITIC},
    "new": {"features": None, "actor": ACTOR, "critic": CRITIC},
    "specs": {"preserve": {"inputs": {"old": KEPT, "new": PENDULUM_FEATURES}}},
    "agent": {"warmup": 100},
}


def main(argv=None):
    return ddpg.main(__doc__, EXPERIMENT, EXP, ARMS, argv, steps=10_000, runs=3, at=[2500, 5000, 7500, 10_000],
                     title="Pendulum-v1 (DDPG): observations (cos θ, sin θ) → + θ̇", old_steps=OLD_STEPS,
                     eval_every=1000)


if __name__ == "__main__":
    main()
