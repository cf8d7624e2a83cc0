"""The transfer methods as experiment arms (``examples/experiments/transfer.py``) do what they say.

Each arm is built the way an experiment builds it (``dqn._arm_agents`` from a cached old agent),
then trained briefly; the tests check the weights and outputs each method promises: frozen layers
stay put, a reset or noisy layer differs from the surgery's by what it should, copied layers are
the old agent's, a distilled agent acts like the old one (seeing the old features by ID), and
the cross-game spec of the MinAtar experiment keeps the old network's function.
"""

from keras_surgeon_rl.rl import MINATAR_CHANNELS, make_env, resume_dqn, tf_keras  # first: sets up keras-rl2

import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from examples import cartpole_deeper, cartpole_observations, minatar_cross_game  # noqa: E402
from examples.experiments import dqn, transfer  # noqa: E402
from keras_surgeon_rl.transfer import rollout_states  # noqa: E402

OLD_STEPS = 1500  # warm-up 100, then 1,400 training steps: a policy whose action depends on the state


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """Old agents (seed 0) of the CartPole deeper and observations tasks, trained once for the module."""
    folder = tmp_path_factory.mktemp("old_agents")
    for task in (cartpole_deeper, cartpole_observations):
        tf_keras.backend.clear_session()
        dqn.prepare(0, exp=task.EXP, old_steps=OLD_STEPS, cache=str(folder))
    return str(folder)


def weights(model) -> dict:
    return {layer.name: layer.get_weights() for layer in model.layers if layer.weights}


def same(a: list, b: list) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def build(arm: str, cache: str, task=cartpole_deeper):
    """The arm's agent in a fresh graph, as a run builds it (graph-mode op seeds depend on what was built
    before): take what you need of an earlier build as arrays before the next one."""
    tf_keras.backend.clear_session()
    agent, setting, old = dqn._arm_agents(arm, task.EXP, 0, OLD_STEPS, cache, need_old=True)
    return agent, setting, old


def train(agent, setting, task=cartpole_deeper, steps: int = 300, callbacks=()):
    dqn.fit(agent, dqn.env_for(task.EXP, setting, seed=0), steps, callbacks=list(callbacks))


STATES = np.random.default_rng(0).normal(size=(256, 1, 4)).astype(np.float32)


def test_every_task_offers_the_same_methods_and_the_copy_arms_that_fit():
    assert transfer.METHOD_ARMS == ["freeze_all_but_final", "freeze_thaw", "reset_final", "noise", "distill",
                                    "distill_annealed"]
    assert cartpole_deeper.TRANSFER_ARMS == transfer.METHOD_ARMS + [
        "copy_first_1", "copy_first_1_freeze", "copy_last_1", "copy_last_1_freeze"]
    assert cartpole_observations.TRANSFER_ARMS == transfer.METHOD_ARMS + ["copy_last_1", "copy_last_1_freeze"]


def test_freeze_all_but_final_keeps_the_surgery_and_trains_only_the_output_layer(cache):
    kept = build("preserve", cache)[0].model.predict_on_batch(STATES)
    agent, setting, _old = build("freeze_all_but_final", cache)
    np.testing.assert_array_equal(agent.model.predict_on_batch(STATES), kept)
    before = weights(agent.model)
    train(agent, setting)
    after = weights(agent.model)
    assert same(before["h1"], after["h1"]) and same(before["h2"], after["h2"])
    assert not same(before["q"], after["q"])


def test_freeze_thaw_thaws_from_the_output_backwards_over_a_quarter_of_phase_2(cache):
    from keras_surgeon_rl.transfer.rl_callbacks import AgentFreezeThawCallback

    agent, setting, _old = build("freeze_thaw", cache)
    schedule = AgentFreezeThawCallback(tl_end=0.25, total_steps=400)
    before = weights(agent.model)
    train(agent, setting, steps=400, callbacks=[schedule])
    assert schedule.thaw_steps == {"h1": 100, "h2": 50, "q": 0} and schedule.thawed_at == schedule.thaw_steps
    after = weights(agent.model)
    assert all(not same(before[name], after[name]) for name in before)


def test_reset_final_redraws_only_the_output_layer_in_the_online_and_the_target_network(cache):
    preserve = build("preserve", cache)[0]
    theirs, kept = weights(preserve.model), preserve.model.predict_on_batch(STATES)
    agent, _setting, _old = build("reset_final", cache)
    mine = weights(agent.model)
    assert same(mine["h1"], theirs["h1"]) and same(mine["h2"], theirs["h2"])
    assert not same(mine["q"][:1], theirs["q"][:1])
    assert same(weights(agent.target_model)["q"], mine["q"])
    assert not np.allclose(agent.model.predict_on_batch(STATES), kept)


def test_noise_adds_a_tenth_of_each_arrays_spread_to_online_and_target_alike(cache):
    preserve = build("preserve", cache)[0]
    theirs, theirs_t = weights(preserve.model), weights(preserve.target_model)
    agent, _setting, _old = build("noise", cache)
    mine, mine_t = weights(agent.model), weights(agent.target_model)
    for name in mine:
        for w, w0, t, t0 in zip(mine[name], theirs[name], mine_t[name], theirs_t[name]):
            np.testing.assert_allclose(t - t0, w - w0, atol=1e-6)
            if np.std(w0) > 0:
                assert 0.05 < np.std(w - w0) / (transfer.NOISE_ALPHA * np.std(w0)) < 2.0, name
            else:  # zero spread (a fresh layer's zero biases): left as it is
                np.testing.assert_array_equal(w, w0)


def test_copy_arms_start_from_scratchs_network_with_the_old_agents_layers(cache):
    scratch = weights(build("scratch", cache)[0].model)
    agent, setting, old = build("copy_first_1_freeze", cache)
    mine, theirs = weights(agent.model), weights(old.model)
    assert same(mine["h1"], theirs["h1"]) and not same(mine["h1"], scratch["h1"])
    assert same(mine["h2"], scratch["h2"]) and same(mine["q"], scratch["q"])
    assert same(weights(agent.target_model)["h1"], mine["h1"])
    assert agent.memory.nb_entries == 0  # a fresh agent: an empty replay memory, like scratch
    train(agent, setting)
    after = weights(agent.model)
    assert same(after["h1"], mine["h1"]) and not same(after["q"], mine["q"])  # frozen / trained

    agent, _setting, old = build("copy_last_1", cache)
    mine = weights(agent.model)
    assert same(mine["q"], weights(old.model)["q"]) and same(mine["h1"], scratch["h1"])


def test_distillation_teaches_a_fresh_network_the_old_agents_greedy_actions(cache):
    agent, _setting, old = build("distill", cache)
    assert agent.distilled["states"] == transfer.DISTILL_STATES and agent.distilled["agreement"] > 0.9
    # states the distillation did not see: the old agent's own play from other start states
    x = rollout_states(old.model, make_env("CartPole-v1", seed=5), 300, epsilon=0.2, seed=5)
    teacher = np.argmax(old.model.predict_on_batch(x), 1)
    assert 0.1 < teacher.mean() < 0.9  # both actions: agreeing with a constant policy would prove nothing
    agree = np.mean(np.argmax(agent.model.predict_on_batch(x), 1) == teacher)
    chance = np.mean(np.argmax(build("scratch", cache)[0].model.predict_on_batch(x), 1) == teacher)
    assert agree > 0.9 and agree > chance + 0.1, (agree, chance)


def test_distillation_shows_the_old_agent_its_own_features_by_id(cache):
    columns, actions = dqn._old_view(cartpole_observations.EXP)
    assert columns == [1, 2] and actions == [0, 1]  # x_dot, theta of (x, x_dot, theta, theta_dot)
    agent, _setting, old = build("distill", cache, task=cartpole_observations)
    assert agent.distilled["agreement"] > 0.9
    full = np.random.default_rng(1).normal(size=(200, 1, 4)).astype(np.float32)
    agree = np.mean(np.argmax(agent.model.predict_on_batch(full), 1)
                    == np.argmax(old.model.predict_on_batch(full[..., [1, 2]]), 1))
    assert agree > 0.8


def test_the_cross_game_spec_routes_each_breakout_channel_to_its_role_in_space_invaders():
    """Breakout → Space Invaders by role keeps the old network's Q-values wherever both games agree."""
    exp = minatar_cross_game.EXP
    columns, actions = dqn._old_view(exp)
    si = MINATAR_CHANNELS["SpaceInvaders"]
    assert columns == [si.index("cannon"), si.index("friendly_bullet"), -1, si.index("alien")] and actions == [0, 1, 2]
    tf_keras.utils.set_random_seed(3)
    old = dqn.new_agent(exp, exp["old"], "old")
    for layer in old.model.layers:  # a trained-looking network: no zero biases hiding a routing error
        layer.set_weights([w + np.random.default_rng(4).normal(0, 0.1, w.shape).astype(w.dtype)
                           for w in layer.get_weights()])
    new = resume_dqn(old, exp["specs"]["preserve"], memory="fresh")
    positional = resume_dqn(old, exp["specs"]["positional"], memory="fresh")
    rng = np.random.default_rng(5)
    si_states = (rng.random((128, 1, 10, 10, 6)) < 0.2).astype(np.float32)
    si_states[..., [si.index("alien_left"), si.index("alien_right"), si.index("enemy_bullet")]] = 0  # new channels
    breakout_view = dqn._as_old_input(si_states, columns)  # Breakout's trail channel: zeros
    q_old = old.model.predict_on_batch(breakout_view)
    q_new = new.model.predict_on_batch(si_states)
    np.testing.assert_allclose(q_new[:, :3], q_old, atol=1e-5)
    assert np.all(q_new[:, 3] < q_new[:, :3].max(1))  # fire, new: never the greedy action
    # by position instead, the ball's filters read the aliens: another function
    assert np.abs(positional.model.predict_on_batch(si_states)[:, :3] - q_old).max() > 1e-2


def test_minatar_channels_and_actions_by_name():
    env = make_env("MinAtar/Breakout-v0", seed=0, features=["brick", "paddle"], actions=["noop", "left", "right"])
    observation = env.reset()
    full = make_env("MinAtar/Breakout-v0", seed=0).reset()
    assert observation.shape == (10, 10, 2) and env.action_space.n == 3
    np.testing.assert_array_equal(observation, full[..., [3, 0]])
    assert env.observation_space.shape == (10, 10, 2)
    with pytest.raises(ValueError, match="unknown feature ID 'ball_x'.*'paddle', 'ball', 'trail', 'brick'"):
        make_env("MinAtar/Breakout-v0", features=["ball_x"])
