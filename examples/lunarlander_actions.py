"""LunarLander, actions 2 → 4: a DQN that fired only the side engines gets noop and the main engine.

The original report: the old agent could fire the left and right engines only; after surgery all
four actions; "transplant ≈ +50…+80 vs scratch ≈ −50…+30 at ~14,000 steps".

Arms (phase 2, --steps steps each; phase 1, --old-steps, is trained once per seed and cached):

  old        the old agent keeps training with the left and right engines only
  preserve   ours: resume_dqn, noop's and main's heads are copies of left's lowered by 1 ("keep_greedy":
             the greedy policy is unchanged); the replay memory of phase 1 is carried over
  original   the original method: the new heads start random (outputs init "random", init "random")
  scratch    Input(8) → Dense64 → Dense64 → Dense4, a fresh agent, trained for phase 1 + phase 2 steps
  preserve_fresh_memory   ablation: preserve with an empty replay memory (the recipe before retention
             was measured)
  preserve_double         ablation: preserve with double DQN (less overestimation of the new actions)
  preserve_lr_low         ablation: preserve with Adam's learning rate at 2.5e-4 instead of 1e-3
  preserve_margin         ablation: preserve with the new heads lowered by 10 instead of 1

Usage:
    python examples/lunarlander_actions.py                               # 14,000 + 14,000 steps, 5 runs
    python examples/lunarlander_actions.py --steps 600 --old-steps 600 --runs 1   # smoke test
"""

from keras_surgeon_rl.rl import LUNARLANDER_ACTIONS  # noqa: I001  (first: sets up keras-rl2)

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from examples.experiments import dqn, transfer  # noqa: E402

EXPERIMENT = "lunarlander_actions"
ARMS = ["old", "preserve", "original", "scratch", "preserve_fresh_memory", "preserve_double", "preserve_lr_low",
        "preserve_margin"]
OLD_ACTIONS = ["left", "right"]
EXP = {
    "env": "LunarLander-v3",
    "old": {"features": None, "actions": OLD_ACTIONS, "hidden": [64, 64]},
    "new": {"features": None, "actions": LUNARLANDER_ACTIONS, "hidden": [64, 64]},
    "specs": {"preserve": {"outputs": {"old": OLD_ACTIONS, "new": LUNARLANDER_ACTIONS}},
              "preserve_margin": {"outputs": {"old": OLD_ACTIONS, "new": LUNARLANDER_ACTIONS,
                                              "init": {"keep_greedy": 10}}},
              "original": {"outputs": {"old": OLD_ACTIONS, "new": LUNARLANDER_ACTIONS, "init": "random"},
                           "init": "random"}},
    # ablation: the recipe before the retention study, phase 2 starting with an empty replay memory
    "options": {"preserve_fresh_memory": {"like": "preserve", "memory": "fresh"},
                # ablations of what might cause the dip while the new actions are learned
                "preserve_double": {"like": "preserve", "settings": {"enable_double_dqn": True}},
                "preserve_lr_low": {"like": "preserve", "lr": 2.5e-4}},
    "agent": {"policy": "eps_greedy", "eps": 0.1, "warmup": 1000},
}

# the transfer methods of docs/transfer.md (python examples/lunarlander_actions.py --transfer)
EXP, TRANSFER_ARMS = transfer.with_methods(EXP, copy_first=2)
#: The copy arms left out, and why.
COPY_LEFT_OUT = "the output layer has 2 actions in the old network and 4 in the new one"


def main(argv=None):
    return dqn.main(__doc__, EXPERIMENT, EXP, ARMS, argv, steps=14_000, runs=5, at=[2500, 5000, 7500, 10_000],
                    title="LunarLander-v3: actions (left, right) → all 4", smooth=5, eval_every=1000,
                    transfer_arms=TRANSFER_ARMS)


if __name__ == "__main__":
    main()
