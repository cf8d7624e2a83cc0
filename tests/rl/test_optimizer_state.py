"""The optimizer's state (Adam's iteration count and moments) across save/load and surgery, on request:
``save_agent(..., optimizer=True)``, ``load_agent`` and ``resume_dqn(..., optimizer_state="carry")``."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_surgeon_rl.rl import CARTPOLE_FEATURES, resume_dqn, tf_keras
from keras_surgeon_rl.errors import ModelFileError, SurgeryError
from keras_surgeon_rl.rl.optimizer_state import optimizer_state, set_optimizer_state
from keras_surgeon_rl.rl.persist import OPTIMIZER, load_agent, save_agent

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from examples.experiments import dqn  # noqa: E402

KEPT = ["x_dot", "theta"]
EXP = {"env": "CartPole-v1", "old": {"features": KEPT, "actions": None, "hidden": [16]},
       "agent": {"policy": "boltzmann", "warmup": 100}}


def trained_agent(steps=300):
    """A DQN on CartPole-v1 seeing (x_dot, theta), trained ``steps`` steps (the first 100 warm up)."""
    agent = dqn.new_agent(EXP, EXP["old"], "old")
    dqn.fit(agent, dqn.env_for(EXP, EXP["old"], 0), steps)
    return agent


def slots(state) -> dict:
    """``{(layer, weight, slot): array}`` of a state."""
    return {(w["layer"], w["weight"], s): a for w in state["weights"] for s, a in w["slots"].items()}


def train_batch(agent, seed=1):
    """One training step of the agent's training model on a fixed random batch; the new weights."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(32, 1, 2)).astype("float32")
    targets = rng.normal(size=(32, 2)).astype("float32")
    masks = np.eye(2, dtype="float32")[rng.integers(0, 2, 32)]
    agent.trainable_model.train_on_batch([obs, targets, masks], [np.zeros(32, "float32"), targets])
    return agent.model.get_weights()


def test_save_and_load_keep_the_optimizer_state_and_training_goes_on_from_it(tmp_path):
    agent = trained_agent()
    state = optimizer_state(agent)
    assert state["class_name"] == "Adam" and state["slot_names"] == ["m", "v"]
    n = state["iterations"]  # one Adam step per step after the 100 warm-up steps, and one per episode end
    assert 200 <= n < 300
    assert [(w["layer"], w["weight"]) for w in state["weights"]] == [("h1", "kernel"), ("h1", "bias"),
                                                                    ("q", "kernel"), ("q", "bias")]
    assert all(np.count_nonzero(a) for a in slots(state).values())  # trained: a test of copying can fail

    save_agent(agent, tmp_path / "a", optimizer=True)
    data = json.loads((tmp_path / "a" / "agent.json").read_text())
    assert data["optimizer_state"]["iterations"] == n and set(data["files"]) >= {OPTIMIZER, "network.h5"}
    assert data["files"][OPTIMIZER]["bytes"] == (tmp_path / "a" / OPTIMIZER).stat().st_size

    loaded = load_agent(tmp_path / "a")
    got = optimizer_state(loaded)
    assert got["iterations"] == n and slots(got).keys() == slots(state).keys()
    for key, a in slots(state).items():
        np.testing.assert_array_equal(slots(got)[key], a, err_msg=str(key))
    fresh = load_agent(tmp_path / "a", optimizer_state=False)
    assert optimizer_state(fresh) is None

    # the state is the one training uses: the same step from the same state gives the same weights
    before = agent.model.get_weights()
    after, after_loaded, after_fresh = train_batch(agent), train_batch(loaded), train_batch(fresh)
    for a, b in zip(after, after_loaded):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-7)
    assert optimizer_state(loaded)["iterations"] == n + 1
    # a fresh Adam's first step moves every weight by about the learning rate: far from the carried step
    assert max(np.abs(a - b).max() for a, b in zip(after, after_fresh)) > 1e-4
    assert max(np.abs(a - b).max() for a, b in zip(after, before)) > 0


def test_without_optimizer_true_nothing_changes(tmp_path):
    agent = trained_agent()
    save_agent(agent, tmp_path / "a", optimizer=True)
    save_agent(agent, tmp_path / "a")  # the default: no state, and the earlier save's file goes
    assert not (tmp_path / "a" / OPTIMIZER).exists()
    data = json.loads((tmp_path / "a" / "agent.json").read_text())
    # agent.json as before the option existed: no key for it, so older versions read it as ever
    assert "optimizer_state" not in data and OPTIMIZER not in data["files"]
    with pytest.raises(ModelFileError, match=r"records no optimizer state .*save_agent\(\.\.\., optimizer=True\)"):
        load_agent(tmp_path / "a", optimizer_state=True)
    old = load_agent(tmp_path / "a")
    assert optimizer_state(old) is None
    np.testing.assert_array_equal(old.model.get_weights()[0], agent.model.get_weights()[0])


def test_damaged_or_mismatched_optimizer_file_is_named(tmp_path):
    agent = trained_agent(150)
    save_agent(agent, tmp_path / "a", optimizer=True)
    path = tmp_path / "a" / OPTIMIZER
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ModelFileError, match="optimizer.npz.*optimizer_state=False"):
        load_agent(tmp_path / "a")
    assert optimizer_state(load_agent(tmp_path / "a", optimizer_state=False)) is None  # the file is not read
    save_agent(agent, tmp_path / "b", optimizer=True)
    with pytest.raises(ModelFileError, match="comes from a Adam optimizer.*is a SGD.*optimizer_state=False"):
        load_agent(tmp_path / "b", optimizer=tf_keras.optimizers.legacy.SGD(momentum=0.9))


def test_an_untrained_agent_has_no_state_to_save(tmp_path):
    agent = dqn.new_agent(EXP, EXP["old"], "old")
    assert optimizer_state(agent) is None
    with pytest.raises(ModelFileError, match="never trained.*optimizer=False"):
        save_agent(agent, tmp_path / "a", optimizer=True)
    assert not any((tmp_path / "a").iterdir())  # nothing written


def _inputs(old):  # x_dot, theta -> x, x_dot, theta, theta_dot: h1's kernel gains rows 0 and 3
    k = np.zeros((4, 16), "float32")
    k[[1, 2]] = old[("h1", "kernel")]
    return {("h1", "kernel"): k}


def _units(old):  # h1: 16 -> 24 units
    k, b, q = np.zeros((2, 24), "float32"), np.zeros(24, "float32"), np.zeros((24, 2), "float32")
    k[:, :16], b[:16], q[:16] = old[("h1", "kernel")], old[("h1", "bias")], old[("q", "kernel")]
    return {("h1", "kernel"): k, ("h1", "bias"): b, ("q", "kernel"): q}


def _outputs(old):  # a third action (keep_greedy: its weights copy "left", its slots start at zero)
    k, b = np.zeros((16, 3), "float32"), np.zeros(3, "float32")
    k[:, :2], b[:2] = old[("q", "kernel")], old[("q", "bias")]
    return {("q", "kernel"): k, ("q", "bias"): b}


def _insert(old):  # an identity Dense after h1: new, so zero
    return {("h1b", "kernel"): np.zeros((16, 16), "float32"), ("h1b", "bias"): np.zeros(16, "float32")}


CASES = {
    "inputs": ({"inputs": {"old": KEPT, "new": CARTPOLE_FEATURES}}, _inputs),
    "units": ({"units": {"h1": 24}}, _units),
    "outputs": ({"outputs": {"old": ["left", "right"], "new": ["left", "right", "wait"]}}, _outputs),
    "insert": ({"insert": [{"after": "h1", "activation": "relu", "name": "h1b"}]}, _insert),
}


@pytest.mark.parametrize("case", list(CASES))
def test_carry_maps_the_state_through_the_surgery(case):
    spec, expected = CASES[case]
    agent = trained_agent()
    old_state = optimizer_state(agent)
    assert optimizer_state(resume_dqn(agent, spec)) is None  # the default: a fresh optimizer, as before

    new = resume_dqn(agent, spec, optimizer_state="carry")
    state = optimizer_state(new)
    assert state["iterations"] == old_state["iterations"] >= 200
    new_weights = {(w["layer"], w["weight"]): w for w in state["weights"]}
    assert list(new_weights) == [(layer.name, n) for layer in new.model.layers if layer.weights
                                 for n in ("kernel", "bias")]
    for slot in ("m", "v"):
        old = {(w["layer"], w["weight"]): w["slots"][slot] for w in old_state["weights"]}
        want = {**old, **expected(old)}
        assert set(want) == set(new_weights)
        for key, w in new_weights.items():
            np.testing.assert_array_equal(w["slots"][slot], want[key], err_msg=f"{case} {key} {slot}")


def test_carry_needs_a_trained_agent_and_the_same_optimizer_class():
    agent = dqn.new_agent(EXP, EXP["old"], "old")
    with pytest.raises(SurgeryError, match="never trained.*train it first.*optimizer_state='fresh'"):
        resume_dqn(agent, {"units": {"h1": 24}}, optimizer_state="carry")
    dqn.fit(agent, dqn.env_for(EXP, EXP["old"], 0), 150)
    with pytest.raises(SurgeryError, match="carries the old Adam's state, but optimizer= is a SGD"):
        resume_dqn(agent, {"units": {"h1": 24}}, optimizer_state="carry",
                   optimizer=tf_keras.optimizers.legacy.SGD(momentum=0.9))
    with pytest.raises(SurgeryError, match="optimizer_state='keep'"):
        resume_dqn(agent, {}, optimizer_state="keep")
    # a state of another network is refused by name, with the fix
    wider = resume_dqn(agent, {"units": {"h1": 24}})
    with pytest.raises(ValueError, match="weight 'kernel' of layer 'h1' has shape.*map_optimizer_state"):
        set_optimizer_state(wider, optimizer_state(agent))


def test_net2net_copies_share_their_source_slots_on_the_next_layer_only():
    agent = trained_agent()
    old = {(w["layer"], w["weight"]): w["slots"]["m"] for w in optimizer_state(agent)["weights"]}
    new = resume_dqn(agent, {"units": {"h1": 24}, "init": "net2net"}, optimizer_state="carry")
    got = {(w["layer"], w["weight"]): w["slots"]["m"] for w in optimizer_state(new)["weights"]}
    np.testing.assert_array_equal(got[("h1", "kernel")][:, :16], old[("h1", "kernel")])
    assert not got[("h1", "kernel")][:, 16:].any() and not got[("h1", "bias")][16:].any()  # new units: zero
    np.testing.assert_array_equal(got[("q", "kernel")][:16], old[("q", "kernel")])  # unscaled, not halved
    for row in got[("q", "kernel")][16:]:  # the rows reading a copy: the source unit's row
        assert any(np.array_equal(row, r) for r in old[("q", "kernel")])


def test_dueling_agent_keeps_its_head_state_through_save_load_and_surgery(tmp_path):
    from rl.agents.dqn import DQNAgent
    from rl.memory import SequentialMemory
    from rl.policy import BoltzmannQPolicy

    agent = DQNAgent(model=dqn.q_network(2, [16], 2, "duel"), nb_actions=2, enable_dueling_network=True,
                     memory=SequentialMemory(limit=1000, window_length=1), policy=BoltzmannQPolicy(),
                     nb_steps_warmup=50, target_model_update=1e-2)
    agent.compile(tf_keras.optimizers.legacy.Adam(learning_rate=1e-3), metrics=[])
    dqn.fit(agent, dqn.env_for(EXP, EXP["old"], 0), 150)
    state = optimizer_state(agent)
    head = agent.model.layers[-2].name
    save_agent(agent, tmp_path / "a", optimizer=True)
    loaded = load_agent(tmp_path / "a")
    assert loaded.model.layers[-2].name != head  # keras-rl2 names its head anew
    got = optimizer_state(loaded)
    assert got["iterations"] == state["iterations"]
    for a, b in zip(got["weights"], state["weights"]):
        for s in ("m", "v"):
            np.testing.assert_array_equal(a["slots"][s], b["slots"][s])
    new = resume_dqn(loaded, {"units": {"h1": 20}}, optimizer_state="carry")
    carried = {w["layer"]: w for w in optimizer_state(new)["weights"] if w["weight"] == "kernel"}
    v_head = state["weights"][-2]["slots"]["v"]  # (16, 3): value and two advantages
    np.testing.assert_array_equal(carried[new.model.layers[-2].name]["slots"]["v"][:16], v_head)
    assert not carried[new.model.layers[-2].name]["slots"]["v"][16:].any()
