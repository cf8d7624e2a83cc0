"""save_agent / load_agent on real keras-rl2 agents: what is saved comes back exactly (networks,
settings, replay memory), and every damaged or mismatched save is a ModelFileError that names the
bad file, says why and how to fix it, before anything is built where possible."""

from keras_surgeon_rl.rl import make_env, resume_dqn, tf_keras  # first: sets up keras-rl2

import json
import random
import re
import shutil

import numpy as np
import pytest
import tensorflow as tf
from rl.agents.dqn import DQNAgent
from rl.memory import SequentialMemory
from rl.policy import EpsGreedyQPolicy, LinearAnnealedPolicy

from keras_surgeon_rl import SurgeryError, get_unit_ids, set_unit_ids
from keras_surgeon_rl.errors import ModelFileError
from keras_surgeon_rl.io import file_sha256
from keras_surgeon_rl.rl.memory import CarriedSequentialMemory
from keras_surgeon_rl.rl.persist import load_agent, save_agent

RESAVE = "save the agent again with save_agent"


def make_agent(n_actions=2, hidden=8, window=1, limit=100, steps=0, optimizer=None, policy=None, **kwargs):
    """A small compiled CartPole-sized DQNAgent (4 observations), fitted for ``steps`` steps."""
    model = tf_keras.Sequential([tf_keras.layers.Flatten(input_shape=(window, 4), name="flat"),
                                tf_keras.layers.Dense(hidden, activation="relu", name="h0"),
                                tf_keras.layers.Dense(n_actions, name="q")], name="qnet")
    agent = DQNAgent(model=model, nb_actions=n_actions, memory=SequentialMemory(limit=limit, window_length=window),
                     nb_steps_warmup=10, target_model_update=1e-2, policy=policy or EpsGreedyQPolicy(eps=0.3), **kwargs)
    agent.compile(optimizer or tf_keras.optimizers.legacy.Adam(learning_rate=1e-3))
    if steps:
        agent.fit(make_env("CartPole-v1", seed=0), nb_steps=steps, verbose=0)
    return agent


def states(window=1, n=200):
    return np.random.default_rng(0).normal(0, 1.5, size=(n, window, 4)).astype("float32")


def assert_same_items(a, b):
    """Two deques of a memory hold equal items of the same types (NumPy arrays compared by value)."""
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert type(x) is type(y)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and np.array_equal(x, y)
        else:
            assert x == y


def assert_same_batches(m1, m2, seeds=(0, 1, 2), batch=16):
    for seed in seeds:
        random.seed(seed)
        np.random.seed(seed)
        b1 = m1.sample(batch)
        random.seed(seed)
        np.random.seed(seed)
        b2 = m2.sample(batch)
        for e1, e2 in zip(b1, b2):
            for s1, s2 in ((e1.state0, e2.state0), (e1.state1, e2.state1)):
                assert np.array_equal(np.array(s1), np.array(s2))
            for x, y in ((e1.action, e2.action), (e1.reward, e2.reward), (e1.terminal1, e2.terminal1)):
                assert type(x) is type(y) and x == y


# --- round trips -------------------------------------------------------------------------------


@pytest.mark.parametrize("dueling", [False, True])
def test_round_trip_without_memory(tmp_path, dueling):
    policy = LinearAnnealedPolicy(EpsGreedyQPolicy(), attr="eps", value_max=1.0, value_min=0.1, value_test=0.05,
                                  nb_steps=500)
    agent = make_agent(steps=60, policy=policy, enable_double_dqn=True, enable_dueling_network=dueling, gamma=0.95,
                       optimizer=tf_keras.optimizers.legacy.RMSprop(learning_rate=5e-4))
    set_unit_ids(agent.model, inputs={agent.model.input_names[0]: ["x", "x_dot", "theta", "theta_dot"]})
    save_agent(agent, tmp_path / "agent")
    assert not (tmp_path / "agent" / "memory.npz").exists()
    loaded = load_agent(tmp_path / "agent")
    x = states()
    np.testing.assert_array_equal(loaded.compute_batch_q_values(x), agent.compute_batch_q_values(x))
    np.testing.assert_array_equal(loaded.target_model.predict_on_batch(x), agent.target_model.predict_on_batch(x))
    assert (loaded.gamma, loaded.enable_double_dqn, loaded.enable_dueling_network) == (0.95, True, dueling)
    assert type(loaded.policy) is LinearAnnealedPolicy and type(loaded.policy.inner_policy) is EpsGreedyQPolicy
    assert loaded.policy.get_config()["value_test"] == 0.05
    opt = loaded.trainable_model.optimizer.optimizer  # soft updates wrap it
    assert type(opt).__name__ == "RMSprop" and np.isclose(opt.get_config()["learning_rate"], 5e-4)
    assert type(loaded.memory) is SequentialMemory and loaded.memory.nb_entries == 0
    assert (loaded.memory.limit, loaded.memory.window_length) == (100, 1)
    assert get_unit_ids(loaded.model)["inputs"] == get_unit_ids(agent.model)["inputs"]


def test_round_trip_with_memory_samples_and_trains_identically(tmp_path):
    # SGD keeps no optimizer state, so original and loaded agent must continue bit for bit
    agent = make_agent(window=2, limit=100, steps=150, optimizer=tf_keras.optimizers.legacy.SGD(learning_rate=1e-2))
    assert agent.memory.nb_entries == 100  # the deque has wrapped around
    save_agent(agent, tmp_path / "agent", memory=True)
    loaded = load_agent(tmp_path / "agent")
    m1, m2 = agent.memory, loaded.memory
    assert type(m2) is SequentialMemory and (m2.limit, m2.window_length, m2.nb_entries) == (100, 2, 100)
    for field in ("observations", "actions", "rewards", "terminals", "recent_observations", "recent_terminals"):
        assert_same_items(getattr(m1, field), getattr(m2, field))
    assert_same_batches(m1, m2)
    # training continues from the loaded memory exactly as it would have from the original
    for a in (agent, loaded):
        random.seed(7)
        np.random.seed(7)
        a.fit(make_env("CartPole-v1", seed=1), nb_steps=40, verbose=0)
    for w1, w2 in zip(agent.model.get_weights() + agent.target_model.get_weights(),
                      loaded.model.get_weights() + loaded.target_model.get_weights()):
        np.testing.assert_array_equal(w1, w2)
    assert_same_items(m1.observations, m2.observations)


def test_carried_memory_round_trip(tmp_path):
    agent = make_agent(n_actions=2, steps=60)
    resumed = resume_dqn(agent, {"outputs": {"old": ["left", "right"], "new": ["right"]}})
    assert not all(resumed.memory.usable)
    save_agent(resumed, tmp_path / "agent", memory=True)
    loaded = load_agent(tmp_path / "agent", memory=True)
    assert type(loaded.memory) is CarriedSequentialMemory
    assert list(loaded.memory.usable) == list(resumed.memory.usable)
    assert_same_batches(resumed.memory, loaded.memory)


def test_format_1_saves_still_load(tmp_path):
    agent = make_agent(steps=30)
    save_agent(agent, tmp_path / "agent", memory=True)
    to_format_1(tmp_path / "agent")
    loaded = load_agent(tmp_path / "agent")
    x = states()
    np.testing.assert_array_equal(loaded.compute_batch_q_values(x), agent.compute_batch_q_values(x))
    assert loaded.memory.nb_entries == 0


def test_memory_false_ignores_the_memory_file_and_resave_without_memory_removes_it(tmp_path):
    agent = make_agent(steps=30)
    d = tmp_path / "agent"
    save_agent(agent, d, memory=True)
    truncate(d / "memory.npz")
    assert load_agent(d, memory=False).memory.nb_entries == 0
    with pytest.raises(ModelFileError, match="memory.npz"):
        load_agent(d)
    save_agent(agent, d)
    assert not (d / "memory.npz").exists()
    assert load_agent(d).memory.nb_entries == 0


def test_unsavable_memory_is_refused_and_the_previous_save_kept(tmp_path):
    agent = make_agent()
    d = tmp_path / "agent"
    save_agent(agent, d)
    before = {p.name: p.read_bytes() for p in d.iterdir()}
    agent.memory.append([0.0, 1.0, 2.0, 3.0], 0, 1.0, False)  # a list, not a NumPy array
    with pytest.raises(ModelFileError, match=r"memory\.npz.*observations hold a list.*pass memory=False"):
        save_agent(agent, d, memory=True)
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before


# --- damaged and mismatched saves --------------------------------------------------------------


@pytest.fixture(scope="module")
def saves(tmp_path_factory):
    """A good save with memory, and saves of other agents to copy files from."""
    root = tmp_path_factory.mktemp("saves")
    tf_keras.backend.clear_session()
    tf_keras.utils.set_random_seed(0)
    save_agent(make_agent(steps=40, limit=50), root / "good", memory=True)
    save_agent(make_agent(hidden=6), root / "narrow", memory=True)  # other weight shapes, an empty memory
    save_agent(make_agent(n_actions=3), root / "three")    # another agent's network (3 actions)
    return root


def edit_json(d, fn):
    p = d / "agent.json"
    data = json.loads(p.read_text())
    fn(data)
    p.write_text(json.dumps(data))


def rehash(d, *names):
    """Record the files as they are now: a tampered record, so that the deeper checks are reached."""
    def fn(data):
        for name in names:
            data["files"][name] = {"bytes": (d / name).stat().st_size, "sha256": file_sha256(d / name)}
    edit_json(d, fn)


def to_format_1(d):
    def fn(data):
        data["format"] = 1
        del data["files"], data["replay"]
    edit_json(d, fn)
    (d / "memory.npz").unlink(missing_ok=True)


def truncate(p, frac=0.5):
    b = p.read_bytes()
    p.write_bytes(b[:int(len(b) * frac)])


def garbage(p):
    p.write_bytes(np.random.default_rng(0).bytes(p.stat().st_size))


def copy_from(saves, other, *names):
    def fn(d):
        for name in names:
            shutil.copy(saves / other / name, d / name)
    return fn


def edit_npz(fn, record=None):
    def mutate(d):
        with np.load(d / "memory.npz") as z:
            arrays = {k: z[k] for k in z.files}
        fn(arrays)
        with open(d / "memory.npz", "wb") as f:
            np.savez(f, **arrays)
        if record:
            edit_json(d, lambda data: data["replay"].update(record))
        rehash(d, "memory.npz")
    return mutate


def delete(*keys):
    def fn(data):
        *parents, last = keys
        for k in parents:
            data = data[k]
        del data[last]
    return fn


def setting(value, *keys):
    def fn(data):
        *parents, last = keys
        for k in parents:
            data = data[k]
        data[last] = value
    return fn


def seq(*fns):
    def fn(d):
        for f in fns:
            f(d)
    return fn


ANY_FIX = RESAVE

# (id, mutation of a copy of the good save (given the directory and the other saves), bad file (None: the
# directory), fix the message must give, raised before anything is built, load_agent kwargs)
CASES = [
    ("dir-missing", lambda d, s: shutil.rmtree(d), None, "give the directory save_agent wrote", True, {}),
    ("dir-is-a-file", lambda d, s: (shutil.rmtree(d), d.write_text("x")), None, "give the directory", True, {}),
    ("agent-json-missing", lambda d, s: (d / "agent.json").unlink(), "agent.json", "give the directory", True, {}),
    ("agent-json-empty", lambda d, s: (d / "agent.json").write_text(""), "agent.json", ANY_FIX, True, {}),
    ("agent-json-truncated", lambda d, s: truncate(d / "agent.json"), "agent.json", ANY_FIX, True, {}),
    ("agent-json-binary", lambda d, s: garbage(d / "agent.json"), "agent.json", ANY_FIX, True, {}),
    ("agent-json-not-json", lambda d, s: (d / "agent.json").write_text("nb_actions = 2"), "agent.json", ANY_FIX,
     True, {}),
    ("agent-json-a-list", lambda d, s: (d / "agent.json").write_text("[2]"), "agent.json", ANY_FIX, True, {}),
    ("format-missing", lambda d, s: edit_json(d, delete("format")), "agent.json", "save the agent again", True, {}),
    ("format-newer", lambda d, s: edit_json(d, setting(3, "format")), "agent.json", "upgrade keras_surgeon_rl",
     True, {}),
    ("format-string", lambda d, s: edit_json(d, setting("2", "format")), "agent.json", ANY_FIX, True, {}),
    *[(f"no-{key}", (lambda k: lambda d, s: edit_json(d, delete(k)))(key), "agent.json", ANY_FIX, True, {})
      for key in ("settings", "nb_actions", "policy", "test_policy", "optimizer", "memory", "files")],
    ("nb-actions-string", lambda d, s: edit_json(d, setting("x", "nb_actions")), "agent.json", ANY_FIX, True, {}),
    ("nb-actions-zero", lambda d, s: edit_json(d, setting(0, "nb_actions")), "agent.json", ANY_FIX, True, {}),
    ("nb-actions-true", lambda d, s: edit_json(d, setting(True, "nb_actions")), "agent.json", ANY_FIX, True, {}),
    ("settings-a-list", lambda d, s: edit_json(d, setting([], "settings")), "agent.json", ANY_FIX, True, {}),
    ("gamma-string", lambda d, s: edit_json(d, setting("high", "settings", "gamma")), "agent.json", ANY_FIX, True, {}),
    ("batch-size-missing", lambda d, s: edit_json(d, delete("settings", "batch_size")), "agent.json", ANY_FIX, True,
     {}),
    ("dueling-type-unknown", lambda d, s: edit_json(d, setting("sum", "settings", "dueling_type")), "agent.json",
     ANY_FIX, True, {}),
    ("memory-limit-zero", lambda d, s: edit_json(d, setting(0, "memory", "limit")), "agent.json", ANY_FIX, True, {}),
    ("unknown-policy", lambda d, s: edit_json(d, setting("FancyQPolicy", "policy", "class_name")), "agent.json",
     "pass policy= to load_agent", True, {}),
    ("policy-bad-config", lambda d, s: edit_json(d, setting({"temperature": 2}, "policy", "config")), "agent.json",
     "pass policy= to load_agent", True, {}),
    ("unknown-test-policy", lambda d, s: edit_json(d, setting("Policy2", "test_policy", "class_name")), "agent.json",
     "pass test_policy= to load_agent", True, {}),
    ("unknown-optimizer", lambda d, s: edit_json(d, setting("Adamax2", "optimizer", "class_name")), "agent.json",
     "pass optimizer= to load_agent", True, {}),
    ("optimizer-bad-config", lambda d, s: edit_json(d, setting({"learning_rate": "fast"}, "optimizer", "config")),
     "agent.json", "pass optimizer= to load_agent", True, {}),
    ("optimizer-unknown-argument", lambda d, s: edit_json(d, setting({"bogus": 1}, "optimizer", "config")),
     "agent.json", "pass optimizer= to load_agent", True, {}),
    ("file-record-missing", lambda d, s: edit_json(d, delete("files", "target_weights.h5")), "agent.json", ANY_FIX,
     True, {}),
    ("file-hash-not-hex", lambda d, s: edit_json(d, setting("xyz", "files", "network.h5", "sha256")), "agent.json",
     ANY_FIX, True, {}),
    ("memory-required-but-not-saved", lambda d, s: (edit_json(d, setting(None, "replay"))), "agent.json",
     "save_agent\\(\\.\\.\\., memory=True\\)", True, {"memory": True}),
    # network.h5 and its sidecar
    ("network-missing", lambda d, s: (d / "network.h5").unlink(), "network.h5", ANY_FIX, True, {}),
    ("network-truncated", lambda d, s: truncate(d / "network.h5"), "network.h5", ANY_FIX, True, {}),
    ("network-garbage", lambda d, s: garbage(d / "network.h5"), "network.h5", ANY_FIX, True, {}),
    ("network-of-another-agent", lambda d, s: copy_from(s, "three", "network.h5")(d), "network.h5", ANY_FIX, True,
     {}),
    ("network-of-another-agent-rehashed", lambda d, s: seq(copy_from(s, "three", "network.h5", "network.h5.ids.json"),
                                                           lambda d: rehash(d, "network.h5", "network.h5.ids.json"))(d),
     "network.h5", ANY_FIX, False, {}),
    ("network-of-another-agent-format-1", lambda d, s: seq(to_format_1, copy_from(s, "three", "network.h5",
                                                                                   "network.h5.ids.json"))(d),
     "network.h5", ANY_FIX, False, {}),
    ("network-garbage-format-1", lambda d, s: seq(to_format_1, lambda d: garbage(d / "network.h5"))(d), "network.h5",
     ANY_FIX, False, {}),
    ("nb-actions-edited", lambda d, s: edit_json(d, setting(3, "nb_actions")), "network.h5", ANY_FIX, False, {}),
    ("window-length-edited", lambda d, s: edit_json(d, setting(2, "memory", "window_length")), "network.h5", ANY_FIX,
     False, {"memory": False}),
    ("sidecar-missing", lambda d, s: (d / "network.h5.ids.json").unlink(), "network.h5.ids.json", ANY_FIX, True, {}),
    ("sidecar-of-another-model-format-1", lambda d, s: seq(to_format_1, copy_from(s, "narrow",
                                                                                   "network.h5.ids.json"))(d),
     "network.h5.ids.json", ANY_FIX, False, {}),
    # target_weights.h5
    ("target-missing", lambda d, s: (d / "target_weights.h5").unlink(), "target_weights.h5", ANY_FIX, True, {}),
    ("target-truncated", lambda d, s: truncate(d / "target_weights.h5"), "target_weights.h5", ANY_FIX, True, {}),
    ("target-of-another-save", lambda d, s: copy_from(s, "narrow", "target_weights.h5")(d), "target_weights.h5",
     ANY_FIX, True, {}),
    ("target-of-another-save-rehashed", lambda d, s: seq(copy_from(s, "narrow", "target_weights.h5"),
                                                         lambda d: rehash(d, "target_weights.h5"))(d),
     "target_weights.h5", ANY_FIX, False, {}),
    ("target-garbage-rehashed", lambda d, s: seq(lambda d: garbage(d / "target_weights.h5"),
                                                 lambda d: rehash(d, "target_weights.h5"))(d),
     "target_weights.h5", ANY_FIX, False, {}),
    ("target-of-another-save-format-1", lambda d, s: seq(to_format_1, copy_from(s, "three", "target_weights.h5"))(d),
     "target_weights.h5", ANY_FIX, False, {}),
    # memory.npz
    ("memory-missing", lambda d, s: (d / "memory.npz").unlink(), "memory.npz", "load with memory=False", True, {}),
    ("memory-truncated", lambda d, s: truncate(d / "memory.npz"), "memory.npz", "load with memory=False", True, {}),
    ("memory-of-another-save", lambda d, s: copy_from(s, "narrow", "memory.npz")(d), "memory.npz",
     "load with memory=False", True, {}),
    ("memory-of-another-save-rehashed", lambda d, s: seq(copy_from(s, "narrow", "memory.npz"),
                                                         lambda d: rehash(d, "memory.npz"))(d),
     "memory.npz", "load with memory=False", True, {}),
    ("memory-truncated-rehashed", lambda d, s: seq(lambda d: truncate(d / "memory.npz"),
                                                   lambda d: rehash(d, "memory.npz"))(d),
     "memory.npz", "load with memory=False", True, {}),
    ("memory-a-pickle-rehashed", lambda d, s: edit_npz(lambda a: a.update(actions=np.array([{}], dtype=object)))(d),
     "memory.npz", "load with memory=False", True, {}),
    ("memory-rewards-short-rehashed", lambda d, s: edit_npz(lambda a: a.update(rewards=a["rewards"][:-1]))(d),
     "memory.npz", "load with memory=False", True, {}),
    ("memory-rewards-missing-rehashed", lambda d, s: edit_npz(lambda a: a.pop("rewards"))(d), "memory.npz",
     "load with memory=False", True, {}),
    ("memory-obs-dtype-rehashed", lambda d, s: edit_npz(
        lambda a: a.update(observations=a["observations"].astype(np.float64)))(d), "memory.npz",
     "load with memory=False", True, {}),
    ("memory-actions-out-of-range-rehashed", lambda d, s: edit_npz(lambda a: a.update(actions=a["actions"] + 5))(d),
     "memory.npz", "load with memory=False", True, {}),
    ("memory-type-codes-out-of-range-rehashed", lambda d, s: edit_npz(
        lambda a: a.update(actions_types=a["actions_types"] + 7))(d), "memory.npz", "load with memory=False", True, {}),
    ("memory-count-edited", lambda d, s: edit_json(d, setting(7, "replay", "nb_entries")), "memory.npz",
     "load with memory=False", True, {}),
    ("memory-over-limit", lambda d, s: edit_json(d, setting(10, "memory", "limit")), "memory.npz",
     "load with memory=False", True, {}),
    ("memory-obs-shape-of-another-agent", lambda d, s: edit_npz(
        lambda a: a.update(observations=a["observations"][:, :3], recent_observations=a["recent_observations"][:, :3]),
        record={"observation_shape": [3]})(d), "memory.npz", ANY_FIX, False, {}),
]


@pytest.mark.parametrize("mutate, bad, fix, before_build, kwargs", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_damaged_save_is_refused_clearly(saves, tmp_path, mutate, bad, fix, before_build, kwargs):
    d = tmp_path / "agent"
    shutil.copytree(saves / "good", d)
    mutate(d, saves)
    graph = tf.compat.v1.get_default_graph()
    ops_before = len(graph.get_operations())
    with pytest.raises(ModelFileError) as info:
        load_agent(d, **kwargs)
    msg = str(info.value)
    assert isinstance(info.value, SurgeryError)
    named = d if bad is None else d / bad
    assert re.search(re.escape(str(named)) + r"(?![\w.])", msg), msg
    assert re.search(fix, msg), msg
    assert "\n" not in msg and len(msg) < 600, msg  # a sentence, not a graph dump
    if before_build:
        assert len(graph.get_operations()) == ops_before, "a model was built before the save was refused"


def test_enough_damaged_cases():
    assert len(CASES) >= 25
