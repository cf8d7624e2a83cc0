"""keras-rl2 trains past 32,767 steps: its np.int16 step counter is widened by the compat layer.

Under NumPy 2, ``np.int16(32_767) + 1`` wraps to -32,768, so without
:mod:`keras_surgeon_rl.rl.compat` ``fit(nb_steps=40_000)`` would never end. The agent here is a real
DQNAgent on a real (tiny) gymnasium environment; the warm-up covers almost all of the 40,000 steps
and training happens only every 100 steps after it, so the test costs mostly keras-rl2's per-step
forward pass.
"""

from keras_surgeon_rl.rl import GymnasiumAdapter, tf_keras  # first import: sets up keras-rl2

import gymnasium
import numpy as np
import pytest
import rl.core
from gymnasium import spaces
from rl.agents.dqn import DQNAgent
from rl.memory import SequentialMemory
from rl.policy import EpsGreedyQPolicy

NB_STEPS = 40_000
EPISODE_STEPS = 50
INT16_MAX = np.iinfo(np.int16).max  # 32,767


class Countdown(gymnasium.Env):
    """One observation (the fraction of the episode left), two actions, episodes of 50 steps.

    Action 1 earns reward 1, action 0 nothing. Episodes end by truncation only.
    """

    observation_space = spaces.Box(0.0, 1.0, (1,), np.float32)
    action_space = spaces.Discrete(2)

    def __init__(self):
        self.t = 0
        self.total_steps = 0

    def _observation(self):
        return np.array([1.0 - self.t / EPISODE_STEPS], dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._observation(), {}

    def step(self, action):
        assert self.action_space.contains(action)
        self.t += 1
        self.total_steps += 1
        return self._observation(), float(action), False, self.t >= EPISODE_STEPS, {}


def test_compat_widens_the_step_counter_of_rl_core():
    wrapped = np.int16(INT16_MAX)
    with np.errstate(over="ignore"):
        wrapped += 1  # keras-rl2's `self.step += 1` on its own np.int16 counter
    assert wrapped == -32_768
    widened = rl.core.np.int16(INT16_MAX)
    widened += 1
    assert widened == 32_768
    assert rl.core.np.int16 is np.int64
    assert rl.core.np.float32 is np.float32  # everything else is NumPy's own
    assert np.int16 is not np.int64  # NumPy itself is untouched


@pytest.mark.slow
def test_dqn_fit_runs_past_32767_steps():
    np.random.seed(0)
    countdown = Countdown()
    env = GymnasiumAdapter(countdown, seed=0)
    model = tf_keras.Sequential([tf_keras.layers.Flatten(input_shape=(1, 1)), tf_keras.layers.Dense(2)])
    agent = DQNAgent(model=model, nb_actions=2, memory=SequentialMemory(limit=1000, window_length=1),
                     nb_steps_warmup=NB_STEPS - 1000, train_interval=100, target_model_update=500,
                     policy=EpsGreedyQPolicy(), batch_size=16)
    agent.compile(tf_keras.optimizers.legacy.Adam(learning_rate=1e-3))
    before = [w.copy() for w in model.get_weights()]

    history = agent.fit(env, nb_steps=NB_STEPS, verbose=0)

    assert agent.step == NB_STEPS
    assert countdown.total_steps == NB_STEPS
    steps_at_episode_end = [int(n) for n in history.history["nb_steps"]]
    assert len(steps_at_episode_end) == NB_STEPS // EPISODE_STEPS
    assert steps_at_episode_end == list(range(EPISODE_STEPS, NB_STEPS + 1, EPISODE_STEPS))
    assert all(int(n) == EPISODE_STEPS for n in history.history["nb_episode_steps"])
    # 145 episodes (ending at steps 32,800, 32,850, ..., 40,000) ran after an int16 counter would wrap.
    past_int16 = [n for n in steps_at_episode_end if n > INT16_MAX]
    assert past_int16[0] == 32_800 and len(past_int16) == 145
    # Training starts only after step 39,000: the weights change only if the counter got there.
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
