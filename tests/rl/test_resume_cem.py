"""resume_cem / resume_agent on real keras-rl2 CEM agents: the network's outputs on the old IDs and
the greedy (test-time) actions survive, theta, best_seen and the episode memory are mapped as a
direct transplant of the same parameters maps them, fit runs afterwards, bad requests are refused
before anything is built, the old agent is untouched; save_agent / load_agent round-trip a CEMAgent."""

from keras_surgeon_rl.rl import (  # first: sets up keras-rl2
    ACROBOT_ACTIONS, CARTPOLE_FEATURES, make_env, resume_agent, resume_cem, tf_keras,
)

import json
import random

import numpy as np
import pytest
from rl.agents.cem import CEMAgent
from rl.callbacks import Callback
from rl.memory import EpisodeParameterMemory

from keras_surgeon_rl import SurgeryError, get_unit_ids, set_unit_ids, surgeon
from keras_surgeon_rl.errors import ModelFileError
from keras_surgeon_rl.rl.persist import load_agent, save_agent

L = tf_keras.layers
HIDDEN = 8


def cem_net(n_obs, n_actions, hidden=HIDDEN):
    return tf_keras.Sequential([L.Flatten(input_shape=(1, n_obs), name="flat"),
                                L.Dense(hidden, activation="relu", name="h0"),
                                L.Dense(n_actions, name="out")], name="policy")


def trained_cem(env, n_obs, n_actions, steps=600, features=None, actions=None, seed=0, episode_steps=100):
    np.random.seed(seed)
    random.seed(seed)
    agent = CEMAgent(model=cem_net(n_obs, n_actions), nb_actions=n_actions,
                     memory=EpisodeParameterMemory(limit=200, window_length=1), batch_size=10, nb_steps_warmup=50,
                     train_interval=5, elite_frac=0.2, noise_decay_const=0.001, noise_ampl=0.05)
    agent.compile()
    set_unit_ids(agent.model, inputs={agent.model.input_names[0]: features} if features else None,
                 layers={"out": actions} if actions else None)
    agent.fit(env, nb_steps=steps, verbose=0, nb_max_episode_steps=episode_steps)
    assert np.isfinite(agent.best_seen[0]) and agent.memory.nb_entries >= 10  # it trained
    return agent


def flat(agent):
    return agent.get_weights_flat(agent.model.get_weights())


def snapshot(agent):
    return {"weights": [w.copy() for w in agent.model.get_weights()], "theta": agent.theta.copy(),
            "best": (agent.best_seen[0], np.array(agent.best_seen[1], copy=True)),
            "params": [np.array(p, copy=True) for p in agent.memory.params],
            "rewards": list(agent.memory.total_rewards), "episode": agent.episode}


def assert_unchanged(agent, snap):
    now = snapshot(agent)
    assert len(now["weights"]) == len(snap["weights"])
    for a, b in zip(snap["weights"], now["weights"]):
        assert a.tobytes() == b.tobytes()
    assert now["theta"].tobytes() == snap["theta"].tobytes()
    assert now["best"][0] == snap["best"][0] and now["best"][1].tobytes() == snap["best"][1].tobytes()
    assert len(now["params"]) == len(snap["params"])
    assert all(a.tobytes() == b.tobytes() for a, b in zip(snap["params"], now["params"]))
    assert now["rewards"] == snap["rewards"] and now["episode"] == snap["episode"]


def states(n_obs, n=400, seed=0):
    return np.random.default_rng(seed).normal(0, 1.5, size=(n, 1, n_obs)).astype("float32")


def reorder(x, old_ids, new_ids, seed=1):
    """``x`` (last axis in ``old_ids``' order) in ``new_ids``' order; new columns random."""
    out = np.random.default_rng(seed).normal(0, 1.5, size=x.shape[:-1] + (len(new_ids),)).astype("float32")
    for j, uid in enumerate(new_ids):
        if uid in old_ids:
            out[..., j] = x[..., old_ids.index(uid)]
    return out


def assert_same_outputs(old, new, s_old, s_new, old_ids, new_ids):
    """Outputs on the old action IDs are the old ones, and the argmax (by ID) is the old one."""
    o_old, o_new = old.model.predict_on_batch(s_old), new.model.predict_on_batch(s_new)
    cols = [new_ids.index(a) for a in old_ids]
    np.testing.assert_allclose(o_new[:, cols], o_old, atol=1e-5, rtol=0)
    assert [new_ids[i] for i in o_new.argmax(1)] == [old_ids[i] for i in o_old.argmax(1)]
    assert len(set(o_old.argmax(1))) > 1  # a network with one greedy action everywhere would prove little


class Actions(Callback):
    def __init__(self):
        super().__init__()
        self.actions = []

    def on_action_begin(self, action, logs=None):
        self.actions.append(int(action))


def greedy_episode(agent, env, ids, steps=150):
    """The action IDs ``agent.test`` takes (argmax) in one episode of ``env``, and its reward."""
    rec = Actions()
    h = agent.test(env, nb_episodes=1, visualize=False, verbose=0, nb_max_episode_steps=steps, callbacks=[rec])
    return [ids[a] for a in rec.actions], h.history["episode_reward"][0]


def direct(agent, params, spec):
    """``params`` (flat, for ``agent``'s network) transplanted by ``spec``: a network holding them, operated on."""
    clone = tf_keras.models.clone_model(agent.model)
    clone.set_weights(agent.get_weights_list(np.asarray(params)))
    ids = get_unit_ids(agent.model)
    set_unit_ids(clone, inputs=ids["inputs"], layers=ids["layers"])
    new = surgeon.transplant(clone, spec)
    return np.concatenate([w.ravel() for w in new.get_weights()]).astype(np.float64)


def assert_mapped_like_transplants(old, new, spec, skip=()):
    """theta's mean, best_seen and memory entries (first, middle, last) map as a direct transplant does."""
    keep = np.ones(new.num_weights, bool)
    keep[list(skip)] = False
    n = old.num_weights
    assert flat(old).tobytes() == old.best_seen[1].tobytes()  # after fit CEM's model holds best_seen
    np.testing.assert_allclose(flat(new), new.best_seen[1], atol=1e-6, rtol=1e-6)  # and so does the resumed one
    assert new.best_seen[0] == old.best_seen[0]
    np.testing.assert_allclose(new.best_seen[1][keep], direct(old, old.best_seen[1], spec)[keep], atol=1e-6, rtol=1e-6)
    np.testing.assert_allclose(new.theta[:new.num_weights][keep], direct(old, old.theta[:n], spec)[keep],
                               atol=1e-6, rtol=1e-6)
    k = old.memory.nb_entries
    assert new.memory.nb_entries == k and list(new.memory.total_rewards) == list(old.memory.total_rewards)
    for i in sorted({0, k // 2, k - 1}):
        np.testing.assert_allclose(new.memory.params[i][keep], direct(old, old.memory.params[i], spec)[keep],
                                   atol=1e-6, rtol=1e-6)
    assert new.episode == old.episode


def expected_std(old, spec, new_positions):
    """theta's std as the docs promise: carried ones moved like the weights, new ones the mean of the old ones
    (float32 through the direct transplant: compare with rtol=1e-6)."""
    n = old.num_weights
    std = direct(old, old.theta[n:], spec)  # every old parameter is carried in the specs used with this
    std[list(new_positions)] = old.theta[n:].mean()
    return std


def kernel_rows(n_in, rows, cols=HIDDEN, start=0):
    """Flat positions of ``rows`` of a (n_in, cols) kernel stored at ``start``."""
    return [start + r * cols + c for r in rows for c in range(cols)]


@pytest.mark.parametrize("kept, new_ids", [
    (["x_dot", "theta"], CARTPOLE_FEATURES),                       # features added
    (CARTPOLE_FEATURES, ["x_dot", "theta", "theta_dot"]),          # a feature removed
    (CARTPOLE_FEATURES, ["theta_dot", "x", "theta", "x_dot"]),     # permuted
], ids=["add", "remove", "permute"])
def test_cartpole_features_keep_actions_and_map_theta_best_seen_memory(kept, new_ids):
    old = trained_cem(make_env("CartPole-v1", seed=0, features=kept), len(kept), 2, features=kept)
    snap = snapshot(old)
    new = resume_agent(old, {"inputs": {"new": new_ids}})
    assert isinstance(new, CEMAgent) and new.nb_actions == 2 and new.num_weights == (len(new_ids) + 3) * HIDDEN + 2
    for k in ("batch_size", "nb_steps_warmup", "train_interval", "elite_frac", "memory_interval",
              "noise_decay_const", "noise_ampl"):
        assert getattr(new, k) == getattr(old, k)
    s_old = states(len(kept))
    removed = [j for j, f in enumerate(kept) if f not in new_ids]
    s_old[..., removed] = 0.0  # removing a feature = the old network reading 0 for it
    assert_same_outputs(old, new, s_old, reorder(s_old, kept, new_ids), [0, 1], [0, 1])
    assert get_unit_ids(new.model)["inputs"][new.model.input_names[0]] == new_ids
    # the same greedy actions on the real environment (only the old features matter)
    if not removed:
        assert greedy_episode(new, make_env("CartPole-v1", seed=5, features=new_ids), [0, 1]) == \
            greedy_episode(old, make_env("CartPole-v1", seed=5, features=kept), [0, 1])
    spec = {"inputs": {"old": kept, "new": new_ids}}
    assert_mapped_like_transplants(old, new, spec)
    added = [j for j, f in enumerate(new_ids) if f not in kept]
    assert added == [] or np.all(new.model.get_weights()[0][added] == 0)  # new features: zero input weights
    np.testing.assert_allclose(new.theta[new.num_weights:],
                               expected_std(old, spec, kernel_rows(len(new_ids), added)), atol=0, rtol=1e-6)
    before = new.memory.nb_entries
    history = new.fit(make_env("CartPole-v1", seed=1, features=new_ids), nb_steps=250, verbose=0,
                      nb_max_episode_steps=100)
    assert len(history.history["episode_reward"]) >= 2 and new.memory.nb_entries > before
    assert_unchanged(old, snap)


def test_acrobot_added_and_removed_actions_keep_greedy_and_softmax_as_documented():
    kept = ["torque-1", "torque+1"]
    old = trained_cem(make_env("Acrobot-v1", seed=0, actions=kept), 6, 2, actions=kept, steps=800,
                      episode_steps=40)
    snap = snapshot(old)
    new = resume_cem(old, {"outputs": {"new": ACROBOT_ACTIONS}})  # torque0 added in the middle
    assert new.nb_actions == 3 and get_unit_ids(new.model)["layers"]["out"] == ACROBOT_ACTIONS
    s = states(6)
    assert_same_outputs(old, new, s, s, kept, ACROBOT_ACTIONS)
    o_old, o_new = old.model.predict_on_batch(s), new.model.predict_on_batch(s)
    assert np.all(o_new[:, 1] < o_new.max(1))  # keep_greedy: never the greedy action
    # training samples from softmax(o): old actions keep their ratios, the new one gets at most e^-1/(1+e^-1)
    p_old, p_new = (np.exp(o) / np.exp(o).sum(1, keepdims=True) for o in (o_old, o_new))
    np.testing.assert_allclose(p_new[:, 0] / p_new[:, 2], p_old[:, 0] / p_old[:, 1], rtol=1e-4)
    expect = p_old[:, 0] * np.exp(-1) / (1 + p_old[:, 0] * np.exp(-1))  # it copies torque-1, the first kept
    np.testing.assert_allclose(p_new[:, 1], expect, rtol=1e-4)
    assert p_new[:, 1].max() <= np.exp(-1) / (1 + np.exp(-1)) + 1e-6
    assert greedy_episode(new, make_env("Acrobot-v1", seed=3, actions=ACROBOT_ACTIONS), ACROBOT_ACTIONS, 120) == \
        greedy_episode(old, make_env("Acrobot-v1", seed=3, actions=kept), kept, 120)
    spec = {"outputs": {"out": {"old": kept, "new": ACROBOT_ACTIONS, "init": "keep_greedy"}}}
    assert_mapped_like_transplants(old, new, spec)
    start = 6 * HIDDEN + HIDDEN  # the output kernel (HIDDEN, 3), then its bias (3,)
    new_params = [start + r * 3 + 1 for r in range(HIDDEN)] + [start + 3 * HIDDEN + 1]
    np.testing.assert_allclose(new.theta[new.num_weights:], expected_std(old, spec, new_params), atol=0, rtol=1e-6)
    # new_std overrides the default for new parameters only
    custom = resume_cem(old, {"outputs": {"new": ACROBOT_ACTIONS}}, new_std=0.25, memory="fresh")
    std = custom.theta[custom.num_weights:]
    assert np.all(std[new_params] == 0.25) and np.array_equal(np.delete(std, new_params),
                                                              np.delete(new.theta[new.num_weights:], new_params))
    assert custom.memory.nb_entries == 0 and custom.best_seen[0] == old.best_seen[0]
    # removing an action: its head and its parameters everywhere go
    fewer = resume_cem(old, {"outputs": {"new": ["torque+1"]}})
    assert fewer.nb_actions == 1 and fewer.num_weights == old.num_weights - HIDDEN - 1
    np.testing.assert_allclose(fewer.model.predict_on_batch(s)[:, 0], o_old[:, 1], atol=1e-5, rtol=0)
    assert_mapped_like_transplants(old, fewer, {"outputs": {"out": {"old": kept, "new": ["torque+1"]}}})
    history = new.fit(make_env("Acrobot-v1", seed=1, actions=ACROBOT_ACTIONS), nb_steps=300, verbose=0,
                      nb_max_episode_steps=40)
    assert len(history.history["episode_reward"]) >= 5
    assert_unchanged(old, snap)


def test_wider_hidden_layer_keeps_outputs_and_carries_std_of_old_units():
    old = trained_cem(make_env("CartPole-v1", seed=0), 4, 2, steps=400)
    snap = snapshot(old)
    new = resume_cem(old, {"units": {"h0": 12}})
    s = states(4)
    assert_same_outputs(old, new, s, s, [0, 1], [0, 1])
    n_new = new.num_weights
    assert n_new == 4 * 12 + 12 + 12 * 2 + 2
    fresh = [r * 12 + c for r in range(4) for c in range(HIDDEN, 12)] + [48 + c for c in range(HIDDEN, 12)]
    outgoing = [60 + r * 2 + c for r in range(HIDDEN, 12) for c in range(2)]
    spec = {"units": {"h0": 12}}
    assert_mapped_like_transplants(old, new, spec, skip=fresh)  # fresh: the new units' random incoming weights
    assert np.all(new.theta[:n_new][outgoing] == 0)  # new units' outgoing weights: zero, so outputs are kept
    np.testing.assert_allclose(new.theta[n_new:], expected_std(old, spec, fresh + outgoing), atol=0, rtol=1e-6)
    assert_unchanged(old, snap)


def test_bad_cem_requests_are_refused_before_anything_is_built(monkeypatch):
    old = trained_cem(make_env("CartPole-v1", seed=0), 4, 2, steps=300)
    snap = snapshot(old)
    uncompiled = CEMAgent(model=cem_net(4, 2), nb_actions=2, memory=EpisodeParameterMemory(limit=10, window_length=1))
    built = []
    monkeypatch.setattr(surgeon, "transplant_planned", lambda *a, **k: built.append("network"))
    monkeypatch.setattr(CEMAgent, "__init__", lambda self, *a, **k: built.append("agent"))
    with pytest.raises(SurgeryError, match="outputs.old lists 3 action IDs, but the agent has 2 actions"):
        resume_cem(old, {"outputs": {"old": ["a", "b", "c"], "new": ["a"]}})
    with pytest.raises(SurgeryError, match="h9"):
        resume_cem(old, {"units": {"h9": 5}})
    with pytest.raises(SurgeryError, match="keep_greedy init copies a kept action, but the spec keeps none"):
        resume_cem(old, {"outputs": {"old": [0, 1], "new": [2, 3]}})
    with pytest.raises(SurgeryError, match="inputs"):
        resume_cem(old, {"inputs": {"old": ["a", "b"], "new": ["a"]}})  # 2 IDs for 4 features
    with pytest.raises(TypeError, match="unknown settings.*elite_fraction"):
        resume_cem(old, {}, elite_fraction=0.1)
    with pytest.raises(SurgeryError, match="memory='keep': use 'carry', 'fresh'"):
        resume_cem(old, {}, memory="keep")
    with pytest.raises(SurgeryError, match="new_std=-1.0: give a finite number >= 0"):
        resume_cem(old, {}, new_std=-1.0)
    with pytest.raises(SurgeryError, match="resume_cem needs a CEMAgent, got a str"):
        resume_cem("agent", {})
    with pytest.raises(SurgeryError, match="needs a compiled CEMAgent.*agent.compile"):
        resume_cem(uncompiled, {})
    assert built == []
    assert_unchanged(old, snap)


def test_cem_save_and_load_round_trip_then_resume(tmp_path):
    kept = ["x_dot", "theta"]
    old = trained_cem(make_env("CartPole-v1", seed=0, features=kept), 2, 2, features=kept, actions=["left", "right"])
    save_agent(old, tmp_path / "c", memory=True)
    loaded = load_agent(tmp_path / "c")
    assert type(loaded) is CEMAgent and loaded.compiled
    assert flat(loaded).tobytes() == flat(old).tobytes()
    assert get_unit_ids(loaded.model) == get_unit_ids(old.model)
    assert_unchanged(loaded, snapshot(old))  # weights, theta, best_seen, memory, rewards, episode: bit for bit
    assert loaded.memory.intermediate_rewards == old.memory.intermediate_rewards
    assert loaded.step == old.step and loaded.memory.limit == old.memory.limit
    for k in ("nb_actions", "batch_size", "nb_steps_warmup", "train_interval", "elite_frac", "memory_interval",
              "noise_decay_const", "noise_ampl", "num_best", "init_stdev"):
        assert getattr(loaded, k) == getattr(old, k)
    env_ids = ["left", "right"]
    assert greedy_episode(loaded, make_env("CartPole-v1", seed=4, features=kept), env_ids) == \
        greedy_episode(old, make_env("CartPole-v1", seed=4, features=kept), env_ids)
    # it resumes by name from the loaded IDs, and trains
    new = resume_cem(loaded, {"inputs": {"new": CARTPOLE_FEATURES}, "outputs": {"new": ["right", "left"]}})
    s = states(2)
    assert_same_outputs(old, new, s, reorder(s, kept, CARTPOLE_FEATURES), ["left", "right"], ["right", "left"])
    new.fit(make_env("CartPole-v1", seed=1, actions=["right", "left"]), nb_steps=150, verbose=0)
    # without the memory: theta and best_seen still saved, the memory starts empty
    save_agent(old, tmp_path / "n")
    bare = load_agent(tmp_path / "n")
    assert bare.memory.nb_entries == 0 and bare.theta.tobytes() == old.theta.tobytes()
    assert bare.best_seen[1].tobytes() == old.best_seen[1].tobytes()
    with pytest.raises(ModelFileError, match="holds no episode memory"):
        load_agent(tmp_path / "n", memory=True)
    with pytest.raises(ModelFileError, match="a CEMAgent has no optimizer"):
        save_agent(old, tmp_path / "o", optimizer=True)
    with pytest.raises(TypeError, match="holds a CEMAgent, which has no policy"):
        load_agent(tmp_path / "c", policy=object())
    data = json.loads((tmp_path / "c" / "agent.json").read_text())
    data["nb_actions"] = 3
    (tmp_path / "c" / "agent.json").write_text(json.dumps(data))
    with pytest.raises(ModelFileError, match=r"network.h5: has outputs of \[2\] units; a CEM network has one output "
                                             r"of nb_actions=3"):
        load_agent(tmp_path / "c")
    data["nb_actions"], data["episodes_saved"] = 2, 3
    (tmp_path / "c" / "agent.json").write_text(json.dumps(data))
    with pytest.raises(ModelFileError, match=r"memory.npz: holds params .* but agent.json records 3 episodes"):
        load_agent(tmp_path / "c")
