"""keras-rl2's Atari DQN (examples/dqn_atari.py) under keras-rl2: a 5th frame and a new action.

The network is the example's, layer for layer, at full size (a window of 4 frames of 84x84, Permute
to channels, Nature-DQN convs). The agent is a real ``DQNAgent`` with the example's processor and
policy, trained a few steps on random frames (no Atari emulator here; the network and the agent
do not know the difference). ``resume_dqn`` then gives an agent whose Q-values for the old actions,
on the same windows, are the old agent's, online and target network alike.
"""

from keras_surgeon_rl.rl import GymnasiumAdapter, resume_dqn, tf_keras  # first: sets up keras-rl2

import gymnasium
import numpy as np
import pytest
from rl.agents.dqn import DQNAgent
from rl.core import Processor
from rl.memory import SequentialMemory
from rl.policy import EpsGreedyQPolicy, LinearAnnealedPolicy

import atari_net
from keras_surgeon_rl import surgeon
from keras_surgeon_rl.rl.memory import CarriedSequentialMemory

WINDOW = 4
FRAMES = ["t-3", "t-2", "t-1", "t"]  # the window, oldest first
ACTIONS = ["noop", "fire", "right", "left"]
N = 16  # windows per check


def dqn_atari(n_actions=len(ACTIONS), window=WINDOW):
    return atari_net.dqn_atari(tf_keras, n_actions, window)


class AtariProcessor(Processor):
    """The example's processor, minus the resizing (frames here are already 84x84 grey levels)."""

    def process_observation(self, observation):
        return observation.astype("uint8")

    def process_state_batch(self, batch):
        return batch.astype("float32") / 255.0

    def process_reward(self, reward):
        return np.clip(reward, -1.0, 1.0)


class RandomFrames(gymnasium.Env):
    """Episodes of 12 random 84x84 grey frames; action 1 ("fire") earns 1."""

    observation_space = gymnasium.spaces.Box(0, 255, (84, 84), np.uint8)

    def __init__(self, n_actions=len(ACTIONS)):
        self.action_space = gymnasium.spaces.Discrete(n_actions)
        self.t = 0

    def _frame(self):
        return self.np_random.integers(0, 256, (84, 84), dtype=np.uint8)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._frame(), {}

    def step(self, action):
        self.t += 1
        return self._frame(), float(action == 1), False, self.t >= 12, {}


def trained_agent(steps=40):
    """The example's agent (smaller memory, warm-up, batch and target period), after ``steps`` steps."""
    policy = LinearAnnealedPolicy(EpsGreedyQPolicy(), attr="eps", value_max=1.0, value_min=0.1, value_test=0.05,
                                  nb_steps=1000)
    agent = DQNAgent(model=dqn_atari(), nb_actions=len(ACTIONS), policy=policy,
                     memory=SequentialMemory(limit=1000, window_length=WINDOW), processor=AtariProcessor(),
                     nb_steps_warmup=16, gamma=0.99, target_model_update=25, train_interval=4, delta_clip=1.0,
                     batch_size=8)
    agent.compile(tf_keras.optimizers.legacy.Adam(learning_rate=0.00025), metrics=["mae"])
    agent.fit(GymnasiumAdapter(RandomFrames(), seed=0), nb_steps=steps, verbose=0)
    return agent


@pytest.fixture
def old():
    return trained_agent()  # per test: conftest clears the graph before each one


def windows(n=N, window=WINDOW, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, window, 84, 84), dtype=np.uint8)


def q_values(agent, states, target=False):
    batch = agent.processor.process_state_batch(states)
    model = agent.target_model if target else agent.model
    return model.predict_on_batch(batch)


def test_a_new_action_keeps_the_old_q_values_and_the_memory(old):
    x = windows()
    # trained: the online network moved away from the target (last synced at step 25 of 40); otherwise
    # "the target network is transplanted too" below would prove nothing
    assert old.step == 40 and np.abs(q_values(old, x) - q_values(old, x, target=True)).max() > 1e-4
    before = [w.copy() for w in old.model.get_weights()]
    new = resume_dqn(old, {"outputs": {"old": ACTIONS, "new": ACTIONS + ["down"]}}, memory="carry")
    assert new.nb_actions == 5 and isinstance(new.processor, AtariProcessor)
    for target in (False, True):
        q_old, q_new = q_values(old, x, target), q_values(new, x, target)
        assert np.abs(q_new[:, :4] - q_old).max() <= 1e-5
        np.testing.assert_array_equal(np.argmax(q_new, -1), np.argmax(q_old, -1))  # keep_greedy by default
    assert isinstance(new.memory, CarriedSequentialMemory) and new.memory.nb_entries == old.memory.nb_entries
    new.fit(GymnasiumAdapter(RandomFrames(n_actions=5), seed=1), nb_steps=20, verbose=0)
    for a, b in zip(before, old.model.get_weights()):
        assert a.tobytes() == b.tobytes()


def test_a_fifth_frame_and_a_new_action(old):
    spec = {"inputs": {"axis": 1, "old": FRAMES, "new": ["t-4"] + FRAMES},
            "outputs": {"old": ACTIONS, "new": ACTIONS + ["down"]}}
    # the window grows: the replay memory (single frames) is carried over with window_length 5
    new = resume_dqn(old, spec, memory="carry")
    assert tuple(new.model.inputs[0].shape[1:]) == (5, 84, 84) and new.nb_actions == 5
    assert isinstance(new.memory, CarriedSequentialMemory) and new.memory.window_length == 5
    assert new.memory.nb_entries == old.memory.nb_entries
    x = windows()
    x5 = np.concatenate([windows(window=1, seed=1), x], axis=1)  # any oldest frame
    for target in (False, True):
        q_old, q_new = q_values(old, x, target), q_values(new, x5, target)
        assert np.abs(q_new[:, :4] - q_old).max() <= 1e-5
        np.testing.assert_array_equal(np.argmax(q_new, -1), np.argmax(q_old, -1))
    new.fit(GymnasiumAdapter(RandomFrames(n_actions=5), seed=1), nb_steps=20, verbose=0)
    assert new.step == 20


def test_transplant_in_graph_mode_verifies():
    model = dqn_atari()
    spec = {"inputs": {"axis": 1, "new": [0, 1, 2, 3, 4]},
            "outputs": {"new": [0, 1, 2, 3, 4], "init": "random"}}
    new = surgeon.transplant(model, spec)
    x = AtariProcessor().process_state_batch(windows())
    assert surgeon.verify(model, new, spec, x=x) <= 1e-5
