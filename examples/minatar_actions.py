"""MinAtar Breakout, actions 3 → 6: a DQN that learned with the game's minimal action set gets the full one.

MinAtar (Young & Tian 2019) is Atari in 10×10: Breakout's observation has four named channels
(paddle, ball, trail, brick) and every game the same six named actions (noop, left, up, right,
down, fire); Breakout's minimal set is noop, left, right. The Q-network is the MinAtar paper's
DQN: Conv2D 16 (3×3) → Dense 128 → Q. After surgery the three new actions' heads are copies of
the lowest old one lowered by 1 (``keep_greedy``), so the greedy policy is unchanged.

Arms (phase 2, --steps steps each; phase 1, --old-steps, is trained once per seed and cached):

  old        the old agent keeps training with the minimal action set
  preserve   ours: resume_dqn, new actions by name, keep_greedy; phase 1's replay memory carried
  original   the original method: the new heads start random (outputs init "random", init "random")
  scratch    a fresh agent with all six actions, trained for phase 1 + phase 2 steps
  --transfer also: the transfer methods of docs/transfer.md (examples/experiments/transfer.py),
             copy_first_2 (conv and Dense 128, ± frozen) included

Usage:
    python examples/minatar_actions.py --transfer --runs 5      # 100,000 + 50,000 steps
    python examples/minatar_actions.py --steps 600 --old-steps 600 --runs 1   # smoke test
"""

from keras_surgeon_rl.rl import MINATAR_ACTIONS, MINATAR_MINIMAL_ACTIONS  # noqa: I001  (first: sets up keras-rl2)

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from examples.experiments import dqn, transfer  # noqa: E402

EXPERIMENT = "minatar_breakout_actions"
OLD_STEPS = 100_000
ARMS = ["old", "preserve", "original", "scratch"]
OLD_ACTIONS = MINATAR_MINIMAL_ACTIONS["Breakout"]
#: The MinAtar paper's DQN network and, as far as keras-rl2 has them, its settings (replay 100,000,
#: target network copied every 1,000 steps, step size 2.5e-4, batch 32, γ 0.99); ε is fixed at 0.1.
NETWORK = {"conv": [16], "hidden": [128]}
AGENT = {"policy": "eps_greedy", "eps": 0.1, "warmup": 1000, "memory": 100_000, "target_model_update": 1000,
         "lr": 2.5e-4}
#: MinAtar has no time limit, and a deterministic greedy policy can keep the ball (or a wave of
#: aliens) going in a loop for ever: a greedy evaluation episode stops after this many steps. The
#: old agents' greedy episodes last 6–200 steps (seeds 0–4), so it binds only on such a loop.
EVAL_MAX_STEPS = 10_000
EXP = {
    "env": "MinAtar/Breakout-v0",
    "old": {"features": None, "actions": OLD_ACTIONS, **NETWORK},
    "new": {"features": None, "actions": MINATAR_ACTIONS, **NETWORK},
    "specs": {"preserve": {"outputs": {"old": OLD_ACTIONS, "new": MINATAR_ACTIONS}},
              "original": {"outputs": {"old": OLD_ACTIONS, "new": MINATAR_ACTIONS, "init": "random"},
                           "init": "random"}},
    "agent": AGENT,
}

# the transfer methods of docs/transfer.md (python examples/minatar_actions.py --transfer)
EXP, TRANSFER_ARMS = transfer.with_methods(EXP, copy_first=2)
#: The copy arms left out, and why.
COPY_LEFT_OUT = "the output layer has 3 actions in the old network and 6 in the new one"


def main(argv=None):
    return dqn.main(__doc__, EXPERIMENT, EXP, ARMS, argv, steps=50_000, runs=5,
                    at=[5000, 10_000, 25_000, 45_000], title="MinAtar Breakout: actions (noop, left, right) → all 6",
                    smooth=20, old_steps=OLD_STEPS, eval_every=5000, transfer_arms=TRANSFER_ARMS,
                    eval_max_steps=EVAL_MAX_STEPS)


if __name__ == "__main__":
    main()
