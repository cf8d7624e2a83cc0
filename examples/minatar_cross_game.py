"""MinAtar Breakout → Space Invaders: a Breakout DQN moved to another game, channels matched by role.

The two games share roles: a player at the bottom moving left and right (Breakout's paddle,
Space Invaders' cannon), a projectile that removes targets (the ball, the cannon's bullet) and
targets that pay when hit (bricks, aliens). Unit IDs say so: the old network's input channels
are named by their role in the new game, so the surgery routes each Breakout channel's filters
to the Space Invaders channel of the same role; Breakout's trail has no counterpart (its filters
are dropped) and Space Invaders' alien_left, alien_right and enemy_bullet are new (zero filters).
Actions are matched by name; fire is new (``keep_greedy``).

Arms (phase 2, --steps steps each in Space Invaders; phase 1, --old-steps of Breakout with the
minimal action set: the old agents of examples/minatar_actions.py, cached there):

  preserve      ours: channels by role, actions by name; an empty replay memory (another game's)
  positional    the same surgery with channels and actions matched by position (what copying the
                weights without IDs does: paddle → cannon, but ball → alien, brick → alien_right)
  scratch       a fresh agent for Space Invaders, trained for phase 1 + phase 2 steps
  copy_first_1  the layer-copying study: only the first layer (the convolution) kept, channels by
                role, the layers after it re-drawn; ``_freeze``: the copied layer frozen
  copy_first_2  the same with the conv and the Dense 128 layer kept
  copy_first_1_positional   copy_first_1 with channels by position
  --transfer    also: the transfer methods of docs/transfer.md on top of ``preserve``
                (freeze_all_but_final, freeze_thaw, reset_final, noise, distill, distill_annealed)

The ``old`` arm (Breakout goes on) and ``original`` (the surgery with random new units) are left
out: the first plays another game, and across games every unit of the new game's channels is
"new" only by name.

Usage:
    python examples/minatar_cross_game.py --transfer --runs 5   # 100,000 Breakout + 50,000 Space Invaders steps
    python examples/minatar_cross_game.py --steps 600 --old-steps 600 --runs 1   # smoke test
"""

from keras_surgeon_rl.rl import MINATAR_CHANNELS, MINATAR_MINIMAL_ACTIONS  # noqa: I001  (first: sets up keras-rl2)

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from examples import minatar_actions  # noqa: E402
from examples.experiments import dqn, transfer  # noqa: E402

EXPERIMENT = "minatar_breakout_to_space_invaders"
OLD_STEPS = minatar_actions.OLD_STEPS
BREAKOUT = MINATAR_CHANNELS["Breakout"]             # paddle, ball, trail, brick
SPACE_INVADERS = MINATAR_CHANNELS["SpaceInvaders"]  # cannon, alien, alien_left, alien_right, friendly_bullet, ...
#: Breakout's channels named by their role in Space Invaders (paddle, ball, trail, brick): the cross-game spec.
BREAKOUT_AS_SPACE_INVADERS = ["cannon", "friendly_bullet", "trail", "alien"]
OLD_ACTIONS = MINATAR_MINIMAL_ACTIONS["Breakout"]       # noop, left, right
NEW_ACTIONS = MINATAR_MINIMAL_ACTIONS["SpaceInvaders"]  # noop, left, right, fire
ROLES = {"inputs": {"old": BREAKOUT_AS_SPACE_INVADERS, "new": SPACE_INVADERS},
         "outputs": {"old": OLD_ACTIONS, "new": NEW_ACTIONS}}
#: Without IDs: the i-th channel (action) of one game is the i-th of the other.
POSITIONS = {"inputs": {"old": [f"channel{i}" for i in range(len(BREAKOUT))],
                        "new": [f"channel{i}" for i in range(len(SPACE_INVADERS))]},
             "outputs": {"old": [f"action{i}" for i in range(len(OLD_ACTIONS))],
                         "new": [f"action{i}" for i in range(len(NEW_ACTIONS))]}}
AFTER = {1: ["h1", "q"], 2: ["q"]}  # the layers re-drawn when the first n are copied
EXP = {
    "env": "MinAtar/SpaceInvaders-v1",
    # the old agents of examples/minatar_actions.py: Breakout with its minimal action set
    "old": {"env": minatar_actions.EXP["env"], **minatar_actions.EXP["old"]},
    "new": {"features": None, "actions": None, **minatar_actions.NETWORK},
    "specs": {"preserve": ROLES, "positional": POSITIONS},
    "options": {
        **{f"copy_first_{n}": {"like": "preserve", "reset": AFTER[n]} for n in (1, 2)},
        **{f"copy_first_{n}_freeze": {"like": "preserve", "reset": AFTER[n],
                                      "freeze": {"layers": ["c1", "h1"][:n], "steps": None}} for n in (1, 2)},
        "copy_first_1_positional": {"like": "positional", "reset": AFTER[1]},
    },
    "agent": minatar_actions.AGENT,
}
ARMS = ["preserve", "positional", "scratch", "copy_first_1", "copy_first_1_freeze", "copy_first_2",
        "copy_first_2_freeze", "copy_first_1_positional"]

# the transfer methods of docs/transfer.md on top of the role-matched surgery (--transfer)
EXP, _METHODS = transfer.with_methods(EXP)
TRANSFER_ARMS = [a for a in ARMS if a not in transfer.BASE_ARMS] + _METHODS  # with preserve and scratch
#: Arms of the other tasks left out here, and why.
LEFT_OUT = {"old": "the old agent plays another game",
            "original": "across games no unit is new by position; the role-matched surgery's new channels start "
                        "at zero"}


def main(argv=None):
    return dqn.main(__doc__, EXPERIMENT, EXP, ARMS, argv, steps=50_000, runs=5,
                    at=[5000, 10_000, 25_000, 45_000], title="MinAtar: Breakout (minimal actions) → Space Invaders",
                    smooth=20, old_steps=OLD_STEPS, eval_every=5000, transfer_arms=TRANSFER_ARMS,
                    eval_max_steps=minatar_actions.EVAL_MAX_STEPS,
                    old_agents_of=minatar_actions.EXPERIMENT)


if __name__ == "__main__":
    main()
