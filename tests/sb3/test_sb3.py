"""Stable-Baselines3 agents through the same plan: real SB3 models on real gymnasium environments.

Each agent is trained briefly on a reduced setting (some observation features or actions hidden by
ID), transplanted to the full one, and then: the old model is unchanged, the new one's outputs on
the old IDs equal the old one's (Q-values, log-probabilities, values), the optimizer's moments sit
at their units' new places, ``load`` of the saved result works and ``learn()`` goes on.
Runs with ``KERAS_BACKEND=torch`` (``make test-sb3``): the mirror needs no TensorFlow.
"""

import numpy as np
import pytest
import torch
from stable_baselines3 import A2C, DQN, PPO, SAC, TD3
from stable_baselines3.common.noise import NormalActionNoise

from keras_surgeon_rl import sb3
from keras_surgeon_rl.env_ids import ACROBOT_ACTIONS, ACROBOT_FEATURES, CARTPOLE_FEATURES, PENDULUM_FEATURES
from keras_surgeon_rl.errors import SurgeryError
from keras_surgeon_rl.sb3.envs import make_env

OLD_FEATURES = ACROBOT_FEATURES[:4]  # the angles' cos and sin, without the velocities
OLD_ACTIONS = ["torque+1", "torque0"]
DQN_SPEC = {"inputs": {"old": OLD_FEATURES, "new": ACROBOT_FEATURES},
            "outputs": {"old": OLD_ACTIONS, "new": ACROBOT_ACTIONS},
            "units": {"q_0": 96}}


def state(model) -> dict:
    return {k: v.detach().cpu().numpy().copy() for k, v in model.policy.state_dict().items()}


@pytest.fixture(scope="module")
def dqn():
    model = DQN("MlpPolicy", make_env("Acrobot-v1", features=OLD_FEATURES, actions=OLD_ACTIONS),
                learning_starts=100, train_freq=1, target_update_interval=100, seed=0)
    model.learn(700)
    return model


def test_dqn_gains_features_an_action_and_units_and_keeps_its_q_values(dqn):
    before = state(dqn)
    new = sb3.transplant(dqn, DQN_SPEC, env=make_env("Acrobot-v1"))
    after = state(dqn)
    assert before.keys() == after.keys() and all(np.array_equal(before[k], after[k]) for k in before)  # untouched
    assert sb3.verify(dqn, new, DQN_SPEC) <= 1e-5  # online and target Q of the old actions
    assert new.observation_space.shape == (6,) and new.action_space.n == 3
    assert new.policy_kwargs["net_arch"] == [96, 64]
    # the new action (torque-1, first in the new list) never becomes the greedy one
    x = torch.as_tensor(np.random.default_rng(0).normal(size=(256, 6)).astype(np.float32))
    x[:, 4:] = 0
    with torch.no_grad():
        q = new.policy.q_net(x).numpy()
    assert (q[:, 0] < q[:, 1:].max(axis=1)).all()
    # no parameter is shared with the old model
    old_ptrs = {p.data_ptr() for p in dqn.policy.parameters()}
    assert not old_ptrs & {p.data_ptr() for p in new.policy.parameters()}
    new.learn(200)  # and it trains on


def test_dqn_optimizer_moments_follow_their_units_and_start_at_zero_for_new_ones(dqn):
    new = sb3.transplant(dqn, DQN_SPEC, env=make_env("Acrobot-v1"))
    old_opt, new_opt = dqn.policy.optimizer.state_dict(), new.policy.optimizer.state_dict()
    names = [n for n, _ in new.policy.q_net.named_parameters()]
    assert len(new_opt["state"]) == len(old_opt["state"]) == len(names)
    params = dict(new.policy.q_net.named_parameters())
    first = new_opt["state"][0]["exp_avg"].numpy()  # q_net.0.weight: (96 units, 6 features)
    assert first.shape == tuple(params[names[0]].shape)
    old_first = old_opt["state"][0]["exp_avg"].numpy()  # (64, 4)
    src = [ACROBOT_FEATURES.index(f) for f in OLD_FEATURES]
    np.testing.assert_array_equal(first[:64][:, src], old_first)
    assert not first[64:].any() and not first[:, 4:].any()
    assert np.abs(old_first).max() > 0  # a moment that was zero everywhere would prove nothing
    assert int(new_opt["state"][0]["step"]) == int(old_opt["state"][0]["step"]) > 0
    fresh = sb3.transplant(dqn, DQN_SPEC, env=make_env("Acrobot-v1"), optimizer_state="fresh")
    assert fresh.policy.optimizer.state_dict()["state"] == {}


def test_a_saved_dqn_is_transplanted_to_a_zip_that_load_and_learn_accept(dqn, tmp_path):
    dqn.save(tmp_path / "old.zip")
    sb3.transplant_zip(tmp_path / "old.zip", DQN_SPEC, tmp_path / "new.zip", env=make_env("Acrobot-v1"))
    loaded = DQN.load(tmp_path / "new.zip", env=make_env("Acrobot-v1"))
    assert sb3.verify(dqn, loaded, DQN_SPEC) <= 1e-5
    loaded.learn(150)
    # the replay buffer saved beside it, carried by ID (actions only: the observations keep their features)
    dqn.save_replay_buffer(tmp_path / "old_buffer.pkl")
    spec = {"outputs": DQN_SPEC["outputs"]}
    sb3.transplant_zip(tmp_path / "old.zip", spec, tmp_path / "new2.zip", replay_buffer=tmp_path / "old_buffer.pkl",
                       replay_buffer_dst=tmp_path / "new_buffer.pkl")
    again = DQN.load(tmp_path / "new2.zip", env=make_env("Acrobot-v1", features=OLD_FEATURES))
    again.load_replay_buffer(tmp_path / "new_buffer.pkl")
    n = dqn.replay_buffer.size()
    assert again.replay_buffer.size() == n > 0
    np.testing.assert_array_equal(again.replay_buffer.actions[:n], np.array([2, 1])[dqn.replay_buffer.actions[:n]])
    again.learn(100)


def test_ppo_cartpole_gains_observations_and_a_wider_policy_net():
    kept = ["x_dot", "theta"]
    model = PPO("MlpPolicy", make_env("CartPole-v1", features=kept), n_steps=128, batch_size=64, n_epochs=2, seed=0)
    model.learn(256)
    spec = {"inputs": {"old": kept, "new": CARTPOLE_FEATURES}, "units": {"pi_0": 128, "vf_1": 96}}
    new = sb3.transplant(model, spec, env=make_env("CartPole-v1"))
    assert sb3.verify(model, new, spec) <= 1e-5  # log-probs of the actions and values
    assert new.policy_kwargs["net_arch"] == {"pi": [128, 64], "vf": [64, 96]}
    new.learn(128)


def test_ppo_pendulum_gains_the_angular_velocity_with_its_gaussian_policy_unchanged():
    kept = ["cos_theta", "sin_theta"]
    model = PPO("MlpPolicy", make_env("Pendulum-v1", features=kept), n_steps=128, batch_size=64, n_epochs=2,
                seed=0, policy_kwargs={"log_std_init": -0.5})
    model.learn(256)
    spec = {"inputs": {"old": kept, "new": PENDULUM_FEATURES}}
    new = sb3.transplant(model, spec, env=make_env("Pendulum-v1"))
    assert sb3.verify(model, new, spec) <= 1e-5  # means, standard deviations and values
    np.testing.assert_array_equal(state(new)["log_std"], state(model)["log_std"])
    new.learn(128)


def test_a2c_widens_the_value_net():
    model = A2C("MlpPolicy", make_env("CartPole-v1"), n_steps=8, seed=0)
    model.learn(64)
    spec = {"units": {"vf_0": 100}}
    new = sb3.transplant(model, spec)
    assert type(new) is A2C and sb3.verify(model, new, spec) <= 1e-5


def test_what_sb3_could_not_rebuild_is_refused_before_anything_is_built(dqn):
    with pytest.raises(SurgeryError, match=r"new observation IDs \['theta1_dot', 'theta2_dot'\] need bounds"):
        sb3.transplant(dqn, {"inputs": DQN_SPEC["inputs"]})
    model = PPO("MlpPolicy", make_env("Acrobot-v1", actions=OLD_ACTIONS), n_steps=16, batch_size=16, seed=0)
    with pytest.raises(SurgeryError, match=r"softmax policy cannot gain an action"):
        sb3.transplant(model, {"outputs": {"old": OLD_ACTIONS, "new": ACROBOT_ACTIONS}}, env=make_env("Acrobot-v1"))
    with pytest.raises(SurgeryError, match=r"unknown layer|no layer|'q_9'"):
        sb3.transplant(dqn, {"units": {"q_9": 10}})
    with pytest.raises(SurgeryError, match=r"the critics' hidden layers would differ .*resize qf0_k and qf1_k alike"):
        sb3.transplant(SAC("MlpPolicy", make_env("Pendulum-v1"), buffer_size=100, seed=0), {"units": {"qf0_0": 300}})
    with pytest.raises(SurgeryError, match=r"spec keys \['insert'\]: SB3 agents take inputs, outputs, units"):
        sb3.transplant(dqn, {"insert": [{"after": "q_0", "layer": "Dense", "units": 64}]})
    with pytest.raises(SurgeryError, match=r"gSDE"):
        sb3.transplant(PPO("MlpPolicy", make_env("Pendulum-v1"), use_sde=True, n_steps=16, batch_size=16), {})


@pytest.mark.parametrize("algo", [SAC, TD3])
def test_off_policy_actor_critics_gain_an_observation_and_wider_critics(algo):
    kept = ["cos_theta", "sin_theta"]
    kwargs = {"action_noise": NormalActionNoise(np.zeros(1), np.full(1, 0.3))} if algo is TD3 else {}
    model = algo("MlpPolicy", make_env("Pendulum-v1", features=kept), buffer_size=2000, learning_starts=100,
                 seed=0, policy_kwargs={"net_arch": [32, 32]}, **kwargs)
    model.learn(300)
    spec = {"inputs": {"old": kept, "new": PENDULUM_FEATURES}, "units": {"pi_0": 48, "qf0_1": 40, "qf1_1": 40}}
    before = state(model)
    new = sb3.transplant(model, spec, env=make_env("Pendulum-v1"))
    assert all(np.array_equal(before[k], v) for k, v in state(model).items())
    assert sb3.verify(model, new, spec) <= 1e-5  # actor (and its target) and both critics (and targets)
    assert new.policy_kwargs["net_arch"] == {"pi": [48, 32], "qf": [32, 40]}
    new.learn(150)


def test_sac_gains_an_action_its_entropy_target_follows_and_the_old_action_keeps_its_values():
    """Two torques from one (the second's bounds given as a space): the old torque keeps its Gaussian and
    Q-values; the automatic target entropy is -2 now."""
    from gymnasium import spaces

    model = SAC("MlpPolicy", make_env("Pendulum-v1"), buffer_size=2000, learning_starts=100, seed=0,
                policy_kwargs={"net_arch": [32, 32]})
    model.learn(200)
    two = spaces.Box(low=-2.0, high=2.0, shape=(2,), dtype=np.float32)
    spec = {"outputs": {"old": ["torque"], "new": ["torque", "torque2"]}}
    with pytest.raises(SurgeryError, match=r"new action IDs \['torque2'\] need bounds"):
        sb3.transplant(model, spec)
    new = sb3.transplant(model, spec, action_space=two)
    assert new.action_space == two and new.target_entropy == -2.0
    assert sb3.verify(model, new, spec) <= 1e-5


def test_td3_gains_an_action_with_its_exploration_noise_by_action_id():
    from gymnasium import spaces

    noise = NormalActionNoise(np.zeros(1), np.full(1, 0.3))
    model = TD3("MlpPolicy", make_env("Pendulum-v1"), buffer_size=2000, learning_starts=100, seed=0,
                action_noise=noise, policy_kwargs={"net_arch": [32, 32]})
    model.learn(200)
    two = spaces.Box(low=-2.0, high=2.0, shape=(2,), dtype=np.float32)
    spec = {"outputs": {"old": ["torque"], "new": ["torque2", "torque"]}}
    new = sb3.transplant(model, spec, action_space=two)
    assert sb3.verify(model, new, spec) <= 1e-5  # the old torque's action (online, target) and every Q
    np.testing.assert_array_equal(new.action_noise._sigma, [0.3, 0.3])
    np.testing.assert_array_equal(new.action_noise._mu, [0.0, 0.0])
    np.testing.assert_array_equal(model.action_noise._sigma, [0.3])  # the old model's noise is its own


def test_the_replay_buffer_keeps_its_transitions_with_actions_renumbered_by_id(dqn):
    spec = {"outputs": {"old": OLD_ACTIONS, "new": ACROBOT_ACTIONS}}  # (torque+1, torque0) -> (torque-1, 0, +1)
    env = make_env("Acrobot-v1", features=OLD_FEATURES)
    new = sb3.transplant(dqn, spec, env=env)  # observations unchanged: carried ("auto")
    a, b = dqn.replay_buffer, new.replay_buffer
    n = a.size()
    assert n > 0 and b.size() == n and b.pos == a.pos
    np.testing.assert_array_equal(b.observations[:n], a.observations[:n])
    np.testing.assert_array_equal(b.rewards[:n], a.rewards[:n])
    np.testing.assert_array_equal(b.actions[:n], np.array([2, 1])[a.actions[:n].astype(int)])  # +1: 0 -> 2, 0: 1 -> 1
    assert set(np.unique(a.actions[:n])) == {0, 1}
    new.learn(100)  # trains on the carried transitions

    # new observation features: the stored ones lack them, so "auto" starts empty; "carry" puts zeros there
    assert sb3.transplant(dqn, DQN_SPEC, env=make_env("Acrobot-v1")).replay_buffer.size() == 0
    carried = sb3.transplant(dqn, DQN_SPEC, env=make_env("Acrobot-v1"), replay_buffer="carry").replay_buffer
    np.testing.assert_array_equal(carried.observations[:n, :, :4], a.observations[:n])
    assert not carried.observations[:n, :, 4:].any()


def test_the_command_line_transplants_inspects_and_verifies_a_saved_agent(dqn, tmp_path, capsys):
    from keras_surgeon_rl import cli

    dqn.save(tmp_path / "old.zip")
    (tmp_path / "spec.yaml").write_text("outputs:\n  old: [torque+1, torque0]\n  new: [torque-1, torque0, torque+1]\n"
                                        "units:\n  q_0: 80\n")
    old, spec, new = (str(tmp_path / n) for n in ("old.zip", "spec.yaml", "new.zip"))
    assert cli.main(["inspect", old]) == 0 and "q_net_target  q_0" in capsys.readouterr().out
    assert cli.main(["transplant", old, spec, "-o", new]) == 0  # Discrete actions need no bounds: no --env
    assert "actions Discrete(2) -> Discrete(3)" in capsys.readouterr().out
    assert DQN.load(new).policy_kwargs["net_arch"] == [80, 64]
    assert cli.main(["verify", old, new, spec]) == 0
    assert "largest difference on the old IDs: 0" in capsys.readouterr().out
    assert cli.main(["transplant", old, spec, "-o", str(tmp_path / "new.keras")]) == 2
    assert "saved as a .zip" in capsys.readouterr().err
    (tmp_path / "bad.yaml").write_text("units:\n  q_7: 80\n")
    assert cli.main(["transplant", old, str(tmp_path / "bad.yaml"), "-o", new]) == 2
    assert "units names ['q_7'], not layers of this DQN" in capsys.readouterr().err


def test_vec_normalize_statistics_follow_the_features_so_normalized_policies_agree(tmp_path):
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.vec_env import VecNormalize

    kept = ["x_dot", "theta"]
    old_env = VecNormalize(make_vec_env(lambda: make_env("CartPole-v1", features=kept), n_envs=1, seed=0))
    model = PPO("MlpPolicy", old_env, n_steps=128, batch_size=64, n_epochs=2, seed=0)
    model.learn(256)
    old_env.save(tmp_path / "vecnormalize.pkl")
    spec = {"inputs": {"old": kept, "new": CARTPOLE_FEATURES}}
    new_venv = make_vec_env(lambda: make_env("CartPole-v1"), n_envs=1, seed=0)
    new_env = sb3.transplant_vec_normalize(tmp_path / "vecnormalize.pkl", spec, new_venv)
    new = sb3.transplant(model, spec, env=new_env)
    np.testing.assert_array_equal(new_env.obs_rms.mean[[1, 2]], old_env.obs_rms.mean)
    np.testing.assert_array_equal(new_env.obs_rms.var[[0, 3]], [1.0, 1.0])
    assert new_env.obs_rms.count == old_env.obs_rms.count and new_env.clip_obs == old_env.clip_obs
    raw = np.random.default_rng(0).normal(size=(64, 4)).astype(np.float32)
    with torch.no_grad():
        v_old = model.policy.predict_values(torch.as_tensor(old_env.normalize_obs(raw[:, [1, 2]]))).numpy()
        v_new = new.policy.predict_values(torch.as_tensor(new_env.normalize_obs(raw))).numpy()
    np.testing.assert_allclose(v_new, v_old, atol=1e-5)  # new features normalized, read by zero weights
    new.learn(128)


def test_ppo_gains_an_action_only_with_a_stated_approximate_start():
    model = PPO("MlpPolicy", make_env("Acrobot-v1", actions=OLD_ACTIONS), n_steps=128, batch_size=64, n_epochs=2,
                seed=0)
    model.learn(256)
    spec = {"outputs": {"old": OLD_ACTIONS, "new": ACROBOT_ACTIONS}}
    with pytest.raises(SurgeryError, match=r"new_action_probability=p"):
        sb3.transplant(model, spec, env=make_env("Acrobot-v1"))
    new = sb3.transplant(model, spec, env=make_env("Acrobot-v1"), new_action_probability=0.05)
    assert new.surgery_notes and new.surgery_notes[0].startswith("approximate: new actions ['torque-1']")
    obs = torch.as_tensor(model.rollout_buffer.observations.reshape(-1, 6))
    with torch.no_grad():
        p_new = new.policy.get_distribution(obs).distribution.probs.numpy()
        p_old = model.policy.get_distribution(obs).distribution.probs.numpy()
    assert abs(np.exp(np.log(p_new[:, 0]).mean()) - 0.05) < 0.02  # about 5 % where the policy plays
    # the old actions keep their odds: only their share shrinks
    np.testing.assert_allclose(p_new[:, 2] / p_new[:, 1], p_old[:, 0] / p_old[:, 1], rtol=1e-4)
    new.learn(128)


def test_cnn_policies_gain_an_image_channel_by_id():
    """CarRacing's frames: a DQN and a PPO that saw the red and green channels get the blue one too (NatureCNN
    filters by channel ID, new channels with zero weights), the PPO's shared extractor once, a wider feature layer."""
    old_channels, channels = ["red", "green"], ["red", "green", "blue"]
    spec = {"inputs": {"old": old_channels, "new": channels}, "units": {"features": 600}}
    old_env = make_env("CarRacing-v3", features=old_channels, continuous=False)
    dqn_cnn = DQN("CnnPolicy", old_env, buffer_size=300, learning_starts=40, train_freq=4, seed=0)
    dqn_cnn.learn(120)
    new = sb3.transplant(dqn_cnn, spec, env=make_env("CarRacing-v3", continuous=False))
    assert new.observation_space.shape == (3, 96, 96)
    assert sb3.verify(dqn_cnn, new, spec, n=16) <= 1e-4  # Q-values (online and target) on random frames
    assert new.policy.q_net.features_extractor.linear[0].out_features == 600
    assert new.replay_buffer.size() == 0  # new channels: the stored frames lack them ("auto")
    new.learn(60)

    ppo = PPO("CnnPolicy", make_env("CarRacing-v3", features=old_channels, continuous=False), n_steps=32,
              batch_size=32, n_epochs=1, seed=0)
    ppo.learn(32)
    new = sb3.transplant(ppo, spec, env=make_env("CarRacing-v3", continuous=False))
    assert sb3.verify(ppo, new, spec, n=16) <= 1e-4  # log-probs and values
    shared = new.policy.features_extractor
    assert new.policy.pi_features_extractor is shared and new.policy.vf_features_extractor is shared
    new.learn(32)


def test_dqn_cartpole_gains_an_observation_and_an_action():
    """The issue's own case: a CartPole DQN that saw three features and could only push right."""
    kept, old_actions = ["x", "x_dot", "theta"], ["right"]
    model = DQN("MlpPolicy", make_env("CartPole-v1", features=kept, actions=old_actions), learning_starts=50, seed=0)
    model.learn(200)
    spec = {"inputs": {"old": kept, "new": CARTPOLE_FEATURES}, "outputs": {"old": old_actions, "new": ["left", "right"]}}
    new = sb3.transplant(model, spec, env=make_env("CartPole-v1"))
    assert new.observation_space.shape == (4,) and new.action_space.n == 2
    assert sb3.verify(model, new, spec) <= 1e-5
    new.learn(100)
