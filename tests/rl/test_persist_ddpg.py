"""save_agent / load_agent on real keras-rl2 DDPG agents: actor, critic and both targets come back
with identical outputs and unit IDs, settings, random process (config and state), optimizers and
replay memory (action vectors) as saved; a resumed agent round-trips with its IDs; bad or
mismatched saves are a ModelFileError naming the file and the fix."""

from keras_surgeon_rl.rl import PENDULUM_FEATURES, make_env, resume_ddpg, tf_keras  # first: sets up keras-rl2

import json
import shutil

import numpy as np
import pytest
from rl.agents import DDPGAgent, DQNAgent
from rl.memory import SequentialMemory
from rl.random import GaussianWhiteNoiseProcess, OrnsteinUhlenbeckProcess

from keras_surgeon_rl import get_unit_ids, set_unit_ids
from keras_surgeon_rl.errors import ModelFileError
from keras_surgeon_rl.io import file_sha256
from keras_surgeon_rl.rl.memory import memory_arrays, memory_from_arrays
from keras_surgeon_rl.rl.persist import load_agent, save_agent

L = tf_keras.layers
ACTION_IDS = ["torque"]
RESAVE = "save the agent again with save_agent"


def make_ddpg(n_obs=3, hidden=8, action_first=True, process=None, steps=200, limit=1000):
    """A small DDPGAgent on Pendulum (features ``PENDULUM_FEATURES[:n_obs]``), unit IDs set, fitted ``steps``."""
    features = PENDULUM_FEATURES[:n_obs]
    actor = tf_keras.Sequential([L.Flatten(input_shape=(1, n_obs), name="a_flat"),
                                 L.Dense(hidden, activation="relu", name="a_h"),
                                 L.Dense(1, activation="tanh", name="a_out")], name="actor")
    action = L.Input((1,), name="action_input")
    obs = L.Input((1, n_obs), name="observation_input")
    x = L.Concatenate(name="cat")([action, L.Flatten(name="c_flat")(obs)])
    x = L.Dense(hidden, activation="relu", name="c_h")(x)
    critic = tf_keras.Model([action, obs] if action_first else [obs, action], L.Dense(1, name="q")(x), name="critic")
    set_unit_ids(actor, inputs={"a_flat_input": features}, layers={"a_out": ACTION_IDS})
    set_unit_ids(critic, inputs={"observation_input": features, "action_input": ACTION_IDS})
    agent = DDPGAgent(nb_actions=1, actor=actor, critic=critic, critic_action_input=action,
                      memory=SequentialMemory(limit=limit, window_length=1),
                      random_process=process or OrnsteinUhlenbeckProcess(theta=.15, mu=0.1, sigma=.3, dt=0.05,
                                                                         sigma_min=0.05, n_steps_annealing=500),
                      nb_steps_warmup_critic=40, nb_steps_warmup_actor=60, gamma=.95, batch_size=16,
                      train_interval=2, memory_interval=1, delta_clip=4.0, target_model_update=1e-2)
    agent.compile([tf_keras.optimizers.legacy.Adam(learning_rate=1e-3),
                   tf_keras.optimizers.legacy.RMSprop(learning_rate=2e-3)])
    if steps:
        agent.fit(make_env("Pendulum-v1", seed=0, features=features), nb_steps=steps, verbose=0,
                  nb_max_episode_steps=60)
    return agent


def states(n_obs, n=300, seed=0):
    return np.random.default_rng(seed).normal(0, 1.5, size=(n, 1, n_obs)).astype("float32")


def critic_q(agent, critic, obs, actions):
    xs = [obs]
    xs.insert(agent.critic_action_input_idx, actions)
    return critic.predict_on_batch(xs)


def assert_same_networks(a, b, n_obs):
    s = states(n_obs)
    acts = np.random.default_rng(1).uniform(-1, 1, size=(len(s), 1)).astype("float32")
    assert a.critic_action_input_idx == b.critic_action_input_idx
    for actor_a, actor_b in ((a.actor, b.actor), (a.target_actor, b.target_actor)):
        np.testing.assert_allclose(actor_b.predict_on_batch(s), actor_a.predict_on_batch(s), atol=1e-6, rtol=0)
    for critic_a, critic_b in ((a.critic, b.critic), (a.target_critic, b.target_critic)):
        np.testing.assert_allclose(critic_q(b, critic_b, s, acts), critic_q(a, critic_a, s, acts), atol=1e-6, rtol=0)
    # the targets differ from the online networks after soft updates: each was saved on its own
    assert np.abs(a.actor.predict_on_batch(s) - a.target_actor.predict_on_batch(s)).max() > 1e-6
    assert get_unit_ids(b.actor) == get_unit_ids(a.actor)
    assert get_unit_ids(b.critic) == get_unit_ids(a.critic)


SETTINGS = ("gamma", "batch_size", "nb_steps_warmup_critic", "nb_steps_warmup_actor", "train_interval",
            "memory_interval", "delta_clip", "target_model_update", "nb_actions")


def assert_same_memory(m1, m2):
    assert type(m2) is type(m1) and m2.nb_entries == m1.nb_entries > 0
    assert (m2.limit, m2.window_length, m2.ignore_episode_boundaries) == \
           (m1.limit, m1.window_length, m1.ignore_episode_boundaries)
    for field in ("observations", "actions", "recent_observations"):
        a, b = list(getattr(m1, field)), list(getattr(m2, field))
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert isinstance(y, np.ndarray) and x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y)
    for field in ("rewards", "terminals", "recent_terminals"):
        a, b = list(getattr(m1, field)), list(getattr(m2, field))
        assert [type(x) for x in a] == [type(y) for y in b] and a == b


@pytest.mark.parametrize("action_first", [True, False], ids=["action-input-0", "action-input-1"])
def test_ddpg_round_trip_with_memory(tmp_path, action_first):
    agent = make_ddpg(action_first=action_first)
    process = agent.random_process
    save_agent(agent, tmp_path / "a", memory=True)
    data = json.loads((tmp_path / "a" / "agent.json").read_text())
    assert data["agent"] == "DDPGAgent" and data["critic_action_input_idx"] == (0 if action_first else 1)
    loaded = load_agent(tmp_path / "a")
    assert isinstance(loaded, DDPGAgent) and loaded.compiled
    assert_same_networks(agent, loaded, 3)
    for k in SETTINGS:
        assert getattr(loaded, k) == getattr(agent, k), k
    # the random process: class, settings and state (OU's x_prev, the annealing step)
    lp = loaded.random_process
    assert type(lp) is OrnsteinUhlenbeckProcess and lp is not process
    for k in ("theta", "mu", "sigma", "dt", "size", "sigma_min", "m", "c", "n_steps"):
        assert getattr(lp, k) == getattr(process, k), k
    assert process.n_steps > 0 and process.m != 0
    np.testing.assert_array_equal(lp.x_prev, process.x_prev)
    assert lp.current_sigma == process.current_sigma
    # optimizers: class and config (their state starts anew)
    assert type(loaded.actor_optimizer).__name__ == "Adam"
    assert loaded.actor_optimizer.get_config() == agent.actor_optimizer.get_config()
    assert type(loaded.critic.optimizer.optimizer).__name__ == "RMSprop"
    assert loaded.critic.optimizer.optimizer.get_config() == agent.critic.optimizer.optimizer.get_config()
    assert_same_memory(agent.memory, loaded.memory)
    # the loaded agent trains: its weights move
    before = loaded.actor.get_weights()
    history = loaded.fit(make_env("Pendulum-v1", seed=1), nb_steps=150, verbose=0, nb_max_episode_steps=60)
    assert len(history.history["episode_reward"]) >= 2
    assert max(np.abs(a - b).max() for a, b in zip(before, loaded.actor.get_weights())) > 0


def test_ddpg_round_trip_without_memory_and_with_white_noise(tmp_path):
    agent = make_ddpg(process=GaussianWhiteNoiseProcess(mu=0.0, sigma=0.4, size=1), steps=100)
    save_agent(agent, tmp_path / "a", memory=True)
    save_agent(agent, tmp_path / "a")  # again without memory: the memory file goes
    assert not (tmp_path / "a" / "memory.npz").exists()
    loaded = load_agent(tmp_path / "a")
    assert loaded.memory.nb_entries == 0 and loaded.memory.limit == 1000
    assert_same_networks(agent, loaded, 3)
    lp = loaded.random_process
    assert type(lp) is GaussianWhiteNoiseProcess
    assert agent.random_process.n_steps > 0
    assert (lp.mu, lp.sigma, lp.sigma_min, lp.m, lp.size, lp.n_steps) == \
           (0.0, 0.4, 0.4, 0.0, 1, agent.random_process.n_steps)
    with pytest.raises(ModelFileError, match=r"records no replay memory .*memory=True"):
        load_agent(tmp_path / "a", memory=True)


def test_resumed_ddpg_round_trips_with_its_ids(tmp_path):
    kept = PENDULUM_FEATURES[:2]
    old = make_ddpg(n_obs=2, steps=150)
    new = resume_ddpg(old, {"inputs": {"new": PENDULUM_FEATURES}, "critic": {"units": {"c_h": 12}}})
    new.fit(make_env("Pendulum-v1", seed=1), nb_steps=100, verbose=0, nb_max_episode_steps=60)
    save_agent(new, tmp_path / "r", memory=True)
    loaded = load_agent(tmp_path / "r")
    assert get_unit_ids(loaded.actor)["inputs"]["a_flat_input"] == PENDULUM_FEATURES
    assert get_unit_ids(loaded.critic)["inputs"]["observation_input"] == PENDULUM_FEATURES
    assert get_unit_ids(loaded.critic)["inputs"]["action_input"] == ACTION_IDS
    assert get_unit_ids(loaded.actor)["layers"]["a_out"] == ACTION_IDS
    assert loaded.critic.get_layer("c_h").units == 12
    assert_same_networks(new, loaded, 3)
    assert_same_memory(new.memory, loaded.memory)
    assert kept != PENDULUM_FEATURES
    # and it resumes again from the loaded IDs: dropping a feature by name
    again = resume_ddpg(loaded, {"inputs": {"new": ["sin_theta", "theta_dot"]}})
    assert get_unit_ids(again.actor)["inputs"]["a_flat_input"] == ["sin_theta", "theta_dot"]


def test_vector_actions_in_memory_arrays():
    memory = SequentialMemory(limit=10, window_length=1)
    for i in range(4):
        memory.append(np.full(3, i, np.float32), np.array([0.1 * i, -0.2 * i], np.float32), float(i), i == 3)
    arrays, record = memory_arrays(memory)
    assert arrays["actions"].shape == (4, 2) and arrays["actions"].dtype == np.float32
    assert record["action_shape"] == [2] and record["action_dtype"] == "float32"
    back = memory_from_arrays(arrays, record, limit=10, window_length=1, nb_actions=2)
    np.testing.assert_array_equal(np.stack(list(back.actions)), arrays["actions"])
    with pytest.raises(ValueError, match=r"vectors of shape \(2,\), but the agent has 3 action dimensions"):
        memory_from_arrays(arrays, record, limit=10, window_length=1, nb_actions=3)
    bad = dict(arrays, actions=arrays["actions"][:, :1])
    with pytest.raises(ValueError, match=r"'actions' has shape \(4, 1\), expected \(4, 2\)"):
        memory_from_arrays(bad, record, limit=10, window_length=1)


# --- damaged and mismatched DDPG saves ----------------------------------------------------------


@pytest.fixture(scope="module")
def ddpg_saves(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddpg_saves")
    tf_keras.backend.clear_session()
    tf_keras.utils.set_random_seed(0)
    save_agent(make_ddpg(steps=80, limit=200), root / "good", memory=True)
    save_agent(make_ddpg(hidden=6, steps=0), root / "narrow")
    return root


def edit_json(d, fn):
    p = d / "agent.json"
    data = json.loads(p.read_text())
    fn(data)
    p.write_text(json.dumps(data))


def rehash(d, *names):
    def fn(data):
        for name in names:
            data["files"][name] = {"bytes": (d / name).stat().st_size, "sha256": file_sha256(d / name)}
    edit_json(d, fn)


def copy_rehashed(saves, *names):
    def fn(d):
        for name in names:
            shutil.copy(saves / "narrow" / name, d / name)
        rehash(d, *names)
    return fn


def set_key(value, *keys):
    def fn(d):
        def edit(data):
            *parents, last = keys
            for k in parents:
                data = data[k]
            data[last] = value
        edit_json(d, edit)
    return fn


CASES = [
    ("unknown-agent-type", set_key("PPOAgent", "agent"), "agent.json", "upgrade keras_surgeon_rl", {}),
    ("action-index-out-of-range", set_key(1, "critic_action_input_idx"), "agent.json",
     "action input at index 1", {}),
    ("settings-missing-key", lambda d: edit_json(d, lambda data: data["settings"].pop("nb_steps_warmup_actor")),
     "agent.json", "settings.nb_steps_warmup_actor", {}),
    ("unknown-process", set_key("BrownianProcess", "random_process", "class_name"), "agent.json",
     "unknown keras-rl2 random process 'BrownianProcess'", {}),
    ("process-bad-config", set_key(-1, "random_process", "config", "nonsense"), "agent.json",
     "cannot be built from its config", {}),
    ("unknown-optimizer", set_key("Adamax2", "critic_optimizer", "class_name"), "agent.json",
     "unknown optimizer 'Adamax2'", {}),
    ("actor-of-another-save", lambda d, s: shutil.copy(s / "narrow" / "actor.h5", d / "actor.h5"), "actor.h5",
     "does not belong to this save", {}),
    ("target-critic-of-another-network", None, "target_critic_weights.h5", "does not fit critic.h5", {}),
    ("memory-truncated", lambda d: (d / "memory.npz").write_bytes((d / "memory.npz").read_bytes()[:100]),
     "memory.npz", "memory=False", {}),
    ("optimizer-state-true", lambda d: None, "agent.json", "records no optimizer state", {"optimizer_state": True}),
]


@pytest.mark.parametrize("mutate, bad, fix, kwargs", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_damaged_ddpg_save_is_refused_clearly(ddpg_saves, tmp_path, monkeypatch, mutate, bad, fix, kwargs):
    d = tmp_path / "good"
    shutil.copytree(ddpg_saves / "good", d)
    if mutate is None:
        mutate = copy_rehashed(ddpg_saves, "target_critic_weights.h5")
    mutate(d) if mutate.__code__.co_argcount == 1 else mutate(d, ddpg_saves)
    built = []
    monkeypatch.setattr(DDPGAgent, "__init__", lambda self, *a, **k: built.append(1))
    with pytest.raises(ModelFileError) as e:
        load_agent(d, **kwargs)
    message = str(e.value)
    assert str(d / bad) in message and fix in message, message
    assert built == []  # refused before an agent is built


def test_ddpg_save_refusals(tmp_path):
    agent = make_ddpg(steps=0)
    with pytest.raises(ModelFileError, match=r"optimizer state of a DDPGAgent is not saved.*optimizer=False"):
        save_agent(agent, tmp_path / "a", optimizer=True)
    assert not (tmp_path / "a").exists()
    save_agent(agent, tmp_path / "a")
    with pytest.raises(TypeError, match="holds a DDPGAgent, which has no policy"):
        load_agent(tmp_path / "a", policy=object())
    with pytest.raises(TypeError, match=r"pair \[actor_optimizer, critic_optimizer\]"):
        load_agent(tmp_path / "a", optimizer=tf_keras.optimizers.legacy.Adam())
    with pytest.raises(ModelFileError, match="save_agent saves agents of types DQNAgent, DDPGAgent, SARSAAgent, "
                                             ".*not a str"):
        save_agent("agent", tmp_path / "b")


def test_dqn_saves_name_their_type_and_untyped_saves_still_load_as_dqn(tmp_path):
    model = tf_keras.Sequential([L.Flatten(input_shape=(1, 4), name="flat"), L.Dense(2, name="q")], name="qnet")
    agent = DQNAgent(model=model, nb_actions=2, memory=SequentialMemory(limit=50, window_length=1), nb_steps_warmup=5)
    agent.compile(tf_keras.optimizers.legacy.Adam(learning_rate=1e-3))
    save_agent(agent, tmp_path / "q")
    assert json.loads((tmp_path / "q" / "agent.json").read_text())["agent"] == "DQNAgent"
    edit_json(tmp_path / "q", lambda data: data.pop("agent"))  # as saved before the key existed
    loaded = load_agent(tmp_path / "q")
    assert type(loaded) is DQNAgent
    s = np.random.default_rng(0).normal(size=(20, 1, 4)).astype("float32")
    np.testing.assert_array_equal(loaded.model.predict_on_batch(s), agent.model.predict_on_batch(s))
    # a typed save of format 1 is refused: format 1 held only DQNAgents
    d = tmp_path / "d"
    save_agent(make_ddpg(steps=0), d)
    edit_json(d, lambda data: data.update(format=1))
    with pytest.raises(ModelFileError, match="format 1 holds only DQNAgents, but it names a DDPGAgent"):
        load_agent(d)
