"""The experiments' two shortcuts through keras-rl2 change nothing a run produces.

``examples.experiments.dqn.fit`` lets the training model keep its metric sums between batches and
lets ``predict_on_batch`` feed the compiled predict function directly (both skip Python that costs
as much as the small networks' arithmetic). A seeded run with them must train the same weights,
episode by episode, as keras-rl2's own ``fit``.
"""

from keras_surgeon_rl.rl import tf_keras  # first: sets up keras-rl2

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from examples.experiments import dqn  # noqa: E402

EXP = {"env": "CartPole-v1", "old": {"hidden": [8]}, "new": {"hidden": [8]}}
STEPS = 600  # warm-up 100, then 500 training steps


STATES = np.random.default_rng(0).normal(size=(64, 1, 4)).astype(np.float32)


def _run(shortcuts: bool) -> dict:
    """A seeded run's episodes, weights (initial, online, target) and Q-values on fixed states."""
    tf_keras.backend.clear_session()
    tf_keras.utils.set_random_seed(7)
    agent = dqn.new_agent(EXP, EXP["old"], "q")
    env = dqn.env_for(EXP, EXP["old"], seed=7)
    initial = agent.model.get_weights()
    if shortcuts:
        records = dqn.fit(agent, env, STEPS)
        assert agent.model.predict_on_batch._skips_checks and agent.target_model.predict_on_batch._skips_checks
    else:
        h = agent.fit(env, nb_steps=STEPS, verbose=0).history
        records = [{"step": int(s), "reward": float(r), "length": int(n)}
                   for s, r, n in zip(h["nb_steps"], h["episode_reward"], h["nb_episode_steps"])]
    return {"records": records, "initial": initial, "online": agent.model.get_weights(),
            "target": agent.target_model.get_weights(), "q": agent.model.predict_on_batch(STATES)}


def test_shortcuts_train_bit_identical_weights_and_episodes():
    plain, fast = _run(shortcuts=False), _run(shortcuts=True)
    assert len(plain["records"]) > 5 and fast["records"] == plain["records"]
    for key in ("online", "target"):
        for wa, wb in zip(plain[key], fast[key], strict=True):
            np.testing.assert_array_equal(wa, wb, err_msg=key)
    np.testing.assert_array_equal(fast["q"], plain["q"])
    # training moved the weights: a run that never trained could not tell the two paths apart
    assert not all(np.array_equal(w0, w) for w0, w in zip(fast["initial"], fast["online"]))


def test_shortcut_predicts_what_keras_predicts_for_keras_rl2_object_batches():
    tf_keras.backend.clear_session()
    tf_keras.utils.set_random_seed(1)
    agent = dqn.new_agent(EXP, EXP["old"], "q")
    states = [np.random.default_rng(s).normal(size=(1, 4)).astype(np.float32) for s in range(32)]
    batch = agent.process_state_batch(states)  # keras-rl2 passes an object array
    usual = agent.model.predict_on_batch(batch)
    dqn._skip_input_checks(agent.model)
    assert agent.model.predict_on_batch._skips_checks
    np.testing.assert_array_equal(agent.model.predict_on_batch(batch), usual)
    dqn._skip_input_checks(agent.model)  # idempotent: wrapping twice keeps one wrapper
    np.testing.assert_array_equal(agent.model.predict_on_batch(batch), usual)
