"""Acrobot, actions 2 → 3: a DQN that could apply torque +1 and 0 is given torque −1 too.

The original report: Input(6) → Dense16 → Dense16 → Dense(2 → 3), 20,000 steps a phase; "transplant
starts high (≈ −250, reaching ≈ −150 by ~2,500 steps); scratch needs far longer".

Arms (phase 2, --steps steps each; phase 1, --old-steps, is trained once per seed and cached):

  old        the old agent keeps training with torque +1 and 0 only
  preserve   ours: resume_dqn, torque−1's head is a copy of torque+1's lowered by 1 ("keep_greedy":
             the greedy policy is unchanged); the replay memory of phase 1 is carried over
  original   the original method: torque−1's head starts random (outputs init "random", init "random")
  scratch    Input(6) → Dense16 → Dense16 → Dense3, a fresh agent, trained for phase 1 + phase 2 steps
  preserve_fresh_memory   ablation: preserve with an empty replay memory (the recipe before retention
             was measured)

Usage:
    python examples/acrobot_actions.py                                   # 20,000 + 20,000 steps, 5 runs
    python examples/acrobot_actions.py --steps 600 --old-steps 600 --runs 1   # smoke test
"""

from keras_surgeon_rl.rl import ACROBOT_ACTIONS  # noqa: I001  (first: sets up keras-rl2)

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from examples.experiments import dqn, transfer  # noqa: E402

EXPERIMENT = "acrobot_actions"
ARMS = ["old", "preserve", "original", "scratch", "preserve_fresh_memory"]
OLD_ACTIONS = ["torque+1", "torque0"]
EXP = {
    "env": "Acrobot-v1",
    "old": {"features": None, "actions": OLD_ACTIONS, "hidden": [16, 16]},
    "new": {"features": None, "actions": ACROBOT_ACTIONS, "hidden": [16, 16]},
    "specs": {"preserve": {"outputs": {"old": OLD_ACTIONS, "new": ACROBOT_ACTIONS}},
              "original": {"outputs": {"old": OLD_ACTIONS, "new": ACROBOT_ACTIONS, "init": "random"},
                           "init": "random"}},
    # ablation: the recipe before the retention study, phase 2 starting with an empty replay memory
    "options": {"preserve_fresh_memory": {"like": "preserve", "memory": "fresh"}},
    "agent": {"policy": "eps_greedy", "eps": 0.1, "warmup": 1000},
}

# the transfer methods of docs/transfer.md (python examples/acrobot_actions.py --transfer)
EXP, TRANSFER_ARMS = transfer.with_methods(EXP, copy_first=2)
#: The copy arms left out, and why.
COPY_LEFT_OUT = "the output layer has 2 actions in the old network and 3 in the new one"


def main(argv=None):
    return dqn.main(__doc__, EXPERIMENT, EXP, ARMS, argv, steps=20_000, runs=5, at=[1000, 2500, 5000, 10_000, 15_000],
                    title="Acrobot-v1: actions (torque+1, torque0) → all 3", smooth=5, eval_every=1000,
                    transfer_arms=TRANSFER_ARMS)


if __name__ == "__main__":
    main()
