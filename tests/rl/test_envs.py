"""Environment adapters and ID-based subsets, on real gymnasium environments and real DQN agents."""

from keras_surgeon_rl.rl import (  # first import: sets up keras-rl2 before TensorFlow
    ACROBOT_ACTIONS,
    ACROBOT_FEATURES,
    CARTPOLE_ACTIONS,
    CARTPOLE_FEATURES,
    LUNARLANDER_ACTIONS,
    LUNARLANDER_FEATURES,
    ActionSubset,
    GymnasiumAdapter,
    ObservationSubset,
    make_env,
    tf_keras,
)

import copy
import re

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces
from rl.agents.dqn import DQNAgent
from rl.memory import SequentialMemory
from rl.policy import EpsGreedyQPolicy


def _rollout(env, actions, first=None):
    """Old-API rollout: the first observation, then (observation, reward, done) per action until done."""
    steps = [env.reset() if first is None else first]
    for action in actions:
        observation, reward, done, _info = env.step(action)
        steps.append((observation, reward, done))
        if done:
            break
    return steps


def _assert_same_rollout(a, b):
    assert len(a) == len(b)
    np.testing.assert_array_equal(a[0], b[0])
    for (obs_a, r_a, d_a), (obs_b, r_b, d_b) in zip(a[1:], b[1:]):
        np.testing.assert_array_equal(obs_a, obs_b)
        assert r_a == r_b and d_a == d_b


# --- GymnasiumAdapter -------------------------------------------------------------------------------


def test_reset_and_step_use_the_old_api():
    env = GymnasiumAdapter("CartPole-v1", seed=0)
    observation = env.reset()
    assert isinstance(observation, np.ndarray) and observation.shape == (4,)
    result = env.step(1)
    assert len(result) == 4
    observation, reward, done, info = result
    assert observation.shape == (4,)
    assert type(reward) is float and reward == 1.0
    assert type(done) is bool and not done
    assert isinstance(info, dict)
    assert env.observation_space.shape == (4,) and env.action_space.n == 2
    assert env.unwrapped.spec.id == "CartPole-v1"  # other attributes come from the wrapped env


def test_done_is_terminated_or_truncated():
    # Truncation: the time limit ends the episode after 5 steps, well before CartPole can fall.
    raw = gymnasium.make("CartPole-v1", max_episode_steps=5)
    env = GymnasiumAdapter(gymnasium.make("CartPole-v1", max_episode_steps=5), seed=3)
    raw.reset(seed=3)
    env.reset()
    for t in range(5):
        _, _, terminated, truncated, _ = raw.step(t % 2)
        _, _, done, _ = env.step(t % 2)
        assert done == (terminated or truncated)
    assert truncated and not terminated and done

    # Termination: always pushing right makes the pole fall long before the 500-step limit.
    raw = gymnasium.make("CartPole-v1")
    env = GymnasiumAdapter("CartPole-v1", seed=4)
    raw.reset(seed=4)
    env.reset()
    for _ in range(500):
        _, _, terminated, truncated, _ = raw.step(1)
        _, _, done, _ = env.step(1)
        assert done == (terminated or truncated)
        if done:
            break
    assert terminated and not truncated and done


def test_same_seed_same_trajectory():
    def trajectory(seed):
        env = GymnasiumAdapter("CartPole-v1", seed=seed)
        first = env.reset()  # also seeds env.action_space
        actions = [env.action_space.sample() for _ in range(200)]
        steps = _rollout(env, actions, first)
        second_episode = env.reset()
        return actions, steps, second_episode

    actions_a, steps_a, second_a = trajectory(123)
    actions_b, steps_b, second_b = trajectory(123)
    assert actions_a == actions_b  # the action space is seeded too
    _assert_same_rollout(steps_a, steps_b)
    np.testing.assert_array_equal(second_a, second_b)
    # Later resets continue the random stream instead of re-seeding.
    assert not np.array_equal(steps_a[0], second_a)

    actions_c, steps_c, _ = trajectory(124)
    assert not np.array_equal(steps_a[0], steps_c[0])
    assert actions_a != actions_c


def test_seed_method_and_reset_seed_are_reproducible():
    env = GymnasiumAdapter("Acrobot-v1")
    env.seed(5)
    first = env.reset()
    samples = [env.action_space.sample() for _ in range(20)]
    again = env.reset(seed=5)
    np.testing.assert_array_equal(first, again)
    assert [env.action_space.sample() for _ in range(20)] == samples


class _Gym026Env:
    """A minimal environment written against the gym >= 0.26 API, without gymnasium's Env class."""

    observation_space = spaces.Box(-10.0, 10.0, (3,), np.float32)
    action_space = spaces.Discrete(3)

    def reset(self, *, seed=None, options=None):
        self.rng = np.random.default_rng(seed)
        self.t = 0
        self.state = self.rng.uniform(-1, 1, 3).astype(np.float32)
        return self.state.copy(), {}

    def step(self, action):
        self.t += 1
        self.state[int(action)] += 1.0
        return self.state.copy(), float(action), self.t >= 4, False, {"t": self.t}

    def close(self):
        pass


class _OldGymEnv(_Gym026Env):
    """The gym < 0.26 API, which the adapter rejects."""

    def reset(self, *, seed=None, options=None):
        return super().reset(seed=seed)[0]


def test_adapter_accepts_gym_026_style_envs():
    env = GymnasiumAdapter(_Gym026Env(), seed=1)
    first = env.reset()
    np.testing.assert_array_equal(first, _Gym026Env().reset(seed=1)[0])
    observation, reward, done, info = env.step(2)
    assert observation[2] == pytest.approx(first[2] + 1.0) and reward == 2.0 and not done
    assert info == {"t": 1}
    sub = ActionSubset(ObservationSubset(GymnasiumAdapter(_Gym026Env(), seed=1), ["a", "b", "c"], ["c"]),
                       ["x", "y", "z"], ["z"])
    np.testing.assert_array_equal(sub.reset(), first[[2]])
    np.testing.assert_array_equal(sub.step(0)[0], observation[[2]])


def test_adapter_rejects_the_old_gym_api():
    with pytest.raises(TypeError, match=r"reset\(\) must return \(observation, info\)"):
        GymnasiumAdapter(_OldGymEnv()).reset()


def test_subsets_of_unadapted_gym_026_envs_ask_for_the_adapter():
    sub = ObservationSubset(_Gym026Env(), ["a", "b", "c"], ["b"])  # not a gymnasium.Env: not auto-wrapped
    with pytest.raises(TypeError, match="wrap it in GymnasiumAdapter"):
        sub.reset(seed=0)


def test_adapter_survives_deepcopy():
    env = GymnasiumAdapter("CartPole-v1", seed=0)
    env.reset()
    clone = copy.deepcopy(env)
    np.testing.assert_array_equal(clone.step(0)[0], env.step(0)[0])


# --- ObservationSubset ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "env_id, feature_ids, keep",
    [
        ("CartPole-v1", CARTPOLE_FEATURES, ["theta_dot", "x"]),
        ("Acrobot-v1", ACROBOT_FEATURES, ["theta2_dot", "cos_theta1", "sin_theta2"]),
        ("LunarLander-v3", LUNARLANDER_FEATURES, ["y", "angle", "left_leg_contact"]),
    ],
)
def test_observation_subset_returns_exactly_the_kept_columns(env_id, feature_ids, keep):
    full = GymnasiumAdapter(env_id, seed=11)
    sub = ObservationSubset(GymnasiumAdapter(env_id, seed=11), feature_ids, keep)
    columns = [list(feature_ids).index(k) for k in keep]

    assert sub.feature_ids == keep and sub.indices == columns
    assert isinstance(sub.observation_space, spaces.Box)
    assert sub.observation_space.shape == (len(keep),)
    assert sub.observation_space.dtype == full.observation_space.dtype
    np.testing.assert_array_equal(sub.observation_space.low, full.observation_space.low[columns])
    np.testing.assert_array_equal(sub.observation_space.high, full.observation_space.high[columns])
    assert sub.action_space == full.action_space

    np.testing.assert_array_equal(sub.reset(), full.reset()[columns])
    rng = np.random.default_rng(0)
    for _ in range(300):
        action = int(rng.integers(full.action_space.n))
        obs_full, r_full, d_full, _ = full.step(action)
        obs_sub, r_sub, d_sub, _ = sub.step(action)
        assert obs_sub.shape == (len(keep),)
        np.testing.assert_array_equal(obs_sub, obs_full[columns])
        assert (r_sub, d_sub) == (r_full, d_full)
        if d_full:
            np.testing.assert_array_equal(sub.reset(), full.reset()[columns])


def test_observation_subset_wraps_gymnasium_envs_and_ids():
    sub = ObservationSubset("CartPole-v1", CARTPOLE_FEATURES, ["theta"])
    assert isinstance(sub.env, GymnasiumAdapter)
    assert sub.reset(seed=0).shape == (1,)
    sub = ObservationSubset(gymnasium.make("CartPole-v1"), CARTPOLE_FEATURES, ["x", "theta"])
    assert isinstance(sub.env, GymnasiumAdapter)
    sub.reset(seed=0)
    assert sub.step(0)[0].shape == (2,)


# --- ActionSubset -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "env_id, action_ids, keep, seed",
    [
        ("Acrobot-v1", ACROBOT_ACTIONS, ["torque+1", "torque0"], 21),
        ("LunarLander-v3", LUNARLANDER_ACTIONS, ["main", "noop", "right"], 22),
        ("CartPole-v1", CARTPOLE_ACTIONS, ["right"], 23),
    ],
)
def test_action_subset_maps_actions(env_id, action_ids, keep, seed):
    full = GymnasiumAdapter(env_id, seed=seed)
    sub = ActionSubset(GymnasiumAdapter(env_id, seed=seed), action_ids, keep)
    mapping = [list(action_ids).index(k) for k in keep]

    assert sub.action_ids == keep and sub.env_actions == mapping
    assert sub.action_space == spaces.Discrete(len(keep))
    assert sub.observation_space == full.observation_space

    np.testing.assert_array_equal(sub.reset(), full.reset())
    rng = np.random.default_rng(1)
    for _ in range(150):
        agent_action = int(rng.integers(len(keep)))
        obs_full, r_full, d_full, _ = full.step(mapping[agent_action])
        obs_sub, r_sub, d_sub, _ = sub.step(agent_action)
        np.testing.assert_array_equal(obs_sub, obs_full)
        assert (r_sub, d_sub) == (r_full, d_full)
        if d_full:
            break


def test_action_subset_differs_from_the_unmapped_action():
    # Sanity check of the comparison above: agent action 0 is torque +1, not the env's action 0.
    sub = ActionSubset(GymnasiumAdapter("Acrobot-v1", seed=2), ACROBOT_ACTIONS, ["torque+1", "torque0"])
    raw = GymnasiumAdapter("Acrobot-v1", seed=2)
    sub.reset(), raw.reset()
    assert not np.array_equal(sub.step(0)[0], raw.step(0)[0])


def test_action_subset_rejects_actions_outside_the_subset():
    sub = ActionSubset(GymnasiumAdapter("Acrobot-v1", seed=0), ACROBOT_ACTIONS, ["torque0", "torque-1"])
    sub.reset()
    with pytest.raises(ValueError, match=r"action 2 outside 0\.\.1"):
        sub.step(2)


def test_action_subset_seeds_its_action_space():
    def samples(seed):
        env = make_env("LunarLander-v3", seed=seed, actions=["left", "right"])
        env.reset()
        return [int(env.action_space.sample()) for _ in range(30)]

    assert samples(8) == samples(8)
    assert set(samples(8)) == {0, 1}
    sub = ActionSubset(GymnasiumAdapter("Acrobot-v1"), ACROBOT_ACTIONS, ["torque0", "torque-1"])
    sub.seed(4)
    sub.reset()
    first = [int(sub.action_space.sample()) for _ in range(30)]
    sub.reset(seed=4)
    assert [int(sub.action_space.sample()) for _ in range(30)] == first


# --- ID validation ----------------------------------------------------------------------------------


def test_unknown_and_duplicate_ids_are_reported_with_the_valid_ones():
    valid_features = re.escape(str(CARTPOLE_FEATURES))
    with pytest.raises(ValueError, match=rf"unknown feature ID 'theta_ddot'.*{valid_features}"):
        ObservationSubset(GymnasiumAdapter("CartPole-v1"), CARTPOLE_FEATURES, ["x", "theta_ddot"])
    with pytest.raises(ValueError, match=rf"duplicate feature ID 'x'.*{valid_features}"):
        ObservationSubset(GymnasiumAdapter("CartPole-v1"), CARTPOLE_FEATURES, ["x", "theta", "x"])

    valid_actions = re.escape(str(ACROBOT_ACTIONS))
    with pytest.raises(ValueError, match=rf"unknown action ID 'torque\+2'.*{valid_actions}"):
        ActionSubset(GymnasiumAdapter("Acrobot-v1"), ACROBOT_ACTIONS, ["torque+2"])
    with pytest.raises(ValueError, match=rf"duplicate action ID 'torque0'.*{valid_actions}"):
        ActionSubset(GymnasiumAdapter("Acrobot-v1"), ACROBOT_ACTIONS, ["torque0", "torque0"])

    with pytest.raises(ValueError, match=r"unknown action ID 'up'.*\['noop', 'left', 'main', 'right'\]"):
        make_env("LunarLander-v3", actions=["main", "up"])
    with pytest.raises(ValueError, match=r"unknown feature ID 'z'"):
        make_env("LunarLander-v3", features=["x", "z"])


def test_id_lists_must_match_the_spaces():
    with pytest.raises(ValueError, match="3 feature IDs"):
        ObservationSubset(GymnasiumAdapter("CartPole-v1"), ["x", "x_dot", "theta"], ["x"])
    with pytest.raises(ValueError, match="duplicate feature ID 'x' in the environment's"):
        ObservationSubset(GymnasiumAdapter("CartPole-v1"), ["x", "x", "theta", "theta_dot"], ["theta"])
    with pytest.raises(ValueError, match="2 action IDs"):
        ActionSubset(GymnasiumAdapter("Acrobot-v1"), ["a", "b"], ["a"])
    with pytest.raises(ValueError, match="at least one"):
        ActionSubset(GymnasiumAdapter("Acrobot-v1"), ACROBOT_ACTIONS, [])
    with pytest.raises(TypeError, match="not the string"):
        ObservationSubset(GymnasiumAdapter("CartPole-v1"), CARTPOLE_FEATURES, "theta")
    with pytest.raises(ValueError, match="Discrete action space"):
        ActionSubset(GymnasiumAdapter("LunarLanderContinuous-v3"), ["main", "lateral"], ["main"])
    with pytest.raises(ValueError, match="no feature/action IDs known for 'MountainCar-v0'"):
        make_env("MountainCar-v0", features=["x"])


def test_id_constants_match_the_environments():
    for env_id, features, actions in [
        ("CartPole-v1", CARTPOLE_FEATURES, CARTPOLE_ACTIONS),
        ("Acrobot-v1", ACROBOT_FEATURES, ACROBOT_ACTIONS),
        ("LunarLander-v3", LUNARLANDER_FEATURES, LUNARLANDER_ACTIONS),
    ]:
        env = gymnasium.make(env_id)
        assert env.observation_space.shape == (len(features),)
        assert env.action_space.n == len(actions)
        assert len(set(features)) == len(features) and len(set(actions)) == len(actions)
    assert LUNARLANDER_ACTIONS == ["noop", "left", "main", "right"]
    assert len(ACROBOT_FEATURES) == 6 and len(LUNARLANDER_FEATURES) == 8


def test_lunar_lander_action_ids_name_the_right_engines():
    # From the same state, the main engine pushes the lander up; the left orientation engine
    # (action "left") spins it counter-clockwise, the right one clockwise.
    def after(action_id, steps=8):
        env = make_env("LunarLander-v3", seed=0, actions=[action_id])
        env.reset()
        for _ in range(steps):
            observation, *_ = env.step(0)
        return dict(zip(LUNARLANDER_FEATURES, observation))

    noop, main, left, right = after("noop"), after("main"), after("left"), after("right")
    assert main["y_dot"] > noop["y_dot"]
    assert left["angle_dot"] > noop["angle_dot"] > right["angle_dot"]


# --- make_env ---------------------------------------------------------------------------------------


def test_make_env_composes_the_wrappers():
    env = make_env("Acrobot-v1", seed=9, features=["theta1_dot", "cos_theta1"],
                   actions=["torque-1", "torque+1"])
    assert isinstance(env, ActionSubset) and isinstance(env.env, ObservationSubset)
    assert isinstance(env.env.env, GymnasiumAdapter)
    assert env.feature_ids == ["theta1_dot", "cos_theta1"]  # reached through the wrappers
    assert env.action_ids == ["torque-1", "torque+1"]
    assert env.observation_space.shape == (2,) and env.action_space == spaces.Discrete(2)

    full = GymnasiumAdapter("Acrobot-v1", seed=9)
    np.testing.assert_array_equal(env.reset(), full.reset()[[4, 0]])
    for agent_action in [0, 1, 1, 0, 1, 0, 0, 1]:
        np.testing.assert_array_equal(env.step(agent_action)[0], full.step([0, 2][agent_action])[0][[4, 0]])

    plain = make_env("CartPole-v1", seed=0, max_episode_steps=3)
    assert isinstance(plain, GymnasiumAdapter)
    plain.reset()
    assert [plain.step(0)[2] for _ in range(3)] == [False, False, True]

    from_env = make_env(gymnasium.make("CartPole-v1"), seed=1, features=["theta"])
    assert from_env.reset().shape == (1,)


# --- real keras-rl2 agents --------------------------------------------------------------------------


class _RecordActions(gymnasium.Wrapper):
    """Records the actions the real environment receives."""

    def __init__(self, env):
        super().__init__(env)
        self.actions = []

    def step(self, action):
        self.actions.append(int(action))
        return self.env.step(action)


def _fit_dqn(env, nb_steps, nb_steps_warmup=50):
    n_features = env.observation_space.shape[0]
    n_actions = int(env.action_space.n)
    model = tf_keras.Sequential(
        [tf_keras.layers.Flatten(input_shape=(1, n_features)), tf_keras.layers.Dense(16, activation="relu"),
         tf_keras.layers.Dense(n_actions)]
    )
    before = [w.copy() for w in model.get_weights()]
    agent = DQNAgent(model=model, nb_actions=n_actions, memory=SequentialMemory(limit=2000, window_length=1),
                     nb_steps_warmup=nb_steps_warmup, target_model_update=1e-2, policy=EpsGreedyQPolicy(),
                     batch_size=16)
    agent.compile(tf_keras.optimizers.legacy.Adam(learning_rate=1e-3))
    history = agent.fit(env, nb_steps=nb_steps, verbose=0)
    assert agent.step == nb_steps
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights())), "no training step"
    return agent, history


def test_dqn_fits_on_cartpole_with_two_features():
    np.random.seed(0)
    env = make_env("CartPole-v1", seed=0, features=["x_dot", "theta"])
    agent, history = _fit_dqn(env, nb_steps=300)
    assert agent.model.input_shape == (None, 1, 2)
    assert history.history["episode_reward"], "no episode finished in 300 CartPole steps"


def test_dqn_fits_on_lunar_lander_with_two_actions():
    np.random.seed(0)
    recorder = _RecordActions(gymnasium.make("LunarLander-v3", max_episode_steps=100))
    env = ActionSubset(GymnasiumAdapter(recorder, seed=0), LUNARLANDER_ACTIONS, ["main", "left"])
    _, history = _fit_dqn(env, nb_steps=300)
    assert history.history["episode_reward"], "no episode finished in 300 LunarLander steps"
    assert len(recorder.actions) == 300
    assert set(recorder.actions) == {2, 1}  # only the main and left engines ever fired


def test_dqn_fits_on_acrobot():
    np.random.seed(0)
    env = make_env("Acrobot-v1", seed=0, features=["cos_theta1", "sin_theta1", "theta1_dot", "theta2_dot"],
                   actions=["torque-1", "torque+1"], max_episode_steps=100)
    _, history = _fit_dqn(env, nb_steps=300)
    episode_steps = history.history["nb_episode_steps"]
    assert len(episode_steps) >= 2, "the 100-step time limit should end at least two episodes in 300 steps"
    assert all(0 < n <= 100 for n in episode_steps)
