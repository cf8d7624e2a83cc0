"""What the five keras-rl2 experiments share: the Q-network, the agent, phase 1 (cached) and phase 2.

An experiment is a plain JSON-able dict (saved into results.json as it is)::

    {"env": "CartPole-v1",
     "old": {"features": [...] | None, "actions": [...] | None, "hidden": [16]},   # phase 1 / arm "old"
     "new": {"features": ... , "actions": ..., "hidden": [16]},                     # arm "scratch"
     "specs": {"preserve": {...}, "original": {...}},                               # resume_dqn specs
     "options": {"preserve_fresh_memory": {"like": "preserve", "memory": "fresh"}}, # optional, see below
     "threshold": 195,                                                              # greedy return: "solved"
     "agent": {"policy": "boltzmann" | "eps_greedy", "warmup": 100, ...}}

``features``/``actions`` ``None`` means all of the environment's. Every run happens in a fresh
process (the runner spawns one per run), and this module imports keras-rl2, so whatever imports it
must import :mod:`keras_surgeon_rl.rl` first (this module does that on its first line).

Arms: ``old`` (the old agent keeps training in its old setting), ``scratch`` (a fresh agent of
the new setting, trained for phase 1 + phase 2 steps: its records up to the phase-2 length compare
at equal phase-2 steps, its end at equal total samples) and one arm per entry of ``specs``
(``resume_dqn(old agent, spec)``). ``options[arm]`` changes how an arm resumes: ``like`` (take
another arm's spec), ``memory`` (``resume_dqn``'s ``"carry"`` or ``"fresh"``; default: carry where the
observations keep their shape, as measured in ``docs/results.md``),
``optimizer_state`` (``resume_dqn``'s: ``"fresh"``, default, or ``"carry"`` Adam's moments and
step count through the surgery), ``lr`` (a fresh Adam with this learning rate), ``settings``
(``resume_dqn`` overrides, e.g. ``{"nb_steps_warmup": 0}``) and ``noise`` (``{layer: std}``:
Gaussian noise added to the layer's kernel after surgery, the same in the online and the target
network) and ``freeze`` (``{"layers": [...], "steps": N}``: those layers are frozen after surgery and
thawed after N phase-2 steps, or never with ``"steps": None``; ``"layers": "all_but_final"`` freezes
every weighted layer but the output layer; freezing and thawing each re-compile the agent with a fresh
optimizer of the same class and config, :func:`keras_surgeon_rl.transfer.rl_callbacks.recompile_agent`).

The transfer methods of the literature (``docs/transfer.md``) are options too. After surgery:
``thaw_schedule`` (``{"tl_end": 0.25}``: freeze every layer but the output layer, thaw them from the
output backwards over that fraction of phase 2, ``AgentFreezeThawCallback``), ``reset`` (``[layers]``
re-drawn from their initializers, :func:`~keras_surgeon_rl.transfer.reset_layer`) and ``perturb``
(``{"alpha": a, "last_n": k}``: :func:`~keras_surgeon_rl.transfer.add_noise`, noise of ``a`` × each
array's std on the last ``k`` weighted layers, all if no ``last_n``); each changes the online and the
target network alike. Instead of surgery, ``copy`` (``{"first" | "last": n, "freeze": bool}``:
a fresh agent of the new setting, the one ``scratch`` starts with, gets the old agent's first or last
``n`` weighted layers, :func:`~keras_surgeon_rl.transfer.copy_layers`) and ``distill`` (``{"temperature":
0.1 | [0.1, …, 0.5], "states": N, "epochs": E, "epsilon": ε}``: the same fresh agent is distilled from
the old one, :func:`~keras_surgeon_rl.transfer.distill`, on N states of the old agent acting ε-greedily
in the new setting; it sees the new observation, the old agent its own features by ID, the spec's
``inputs``, and the loss covers the actions both have, by ID). Such arms start with an empty replay
memory, like ``scratch``.

Phase 1 (:func:`prepare`) trains the old agent once per seed and saves it with its replay memory
and its optimizer's state (:func:`keras_surgeon_rl.rl.persist.save_agent`); the ``old`` arm and
every surgery arm of that seed load it, memory included, so phase 2 goes on from where phase 1
stopped: every surgery arm carries the memory whenever the observations keep their shape (added
actions, wider or deeper networks), and starts an empty one otherwise (added observations). The
optimizer starts anew in every arm (a fresh one of the saved class and config; old agents cached
before the optimizer's state was saved have none to carry) unless the arm's options carry it, and
every arm warms up for ``warmup`` steps before learning.

Greedy evaluation (``--eval-every N``, default 500; 0 turns it off): every run also measures the
greedy policy (argmax Q) from ``--eval-episodes`` fixed seeded resets (the same for every arm and
seed, see :mod:`keras_surgeon_rl.rl.evaluate`): the seed's old agent right before surgery, the
arm's agent right after it (before any training step), and every N phase-2 steps. A run's entry in
results.json then holds ``"greedy": {"before", "after", "curve"}`` beside ``"records"`` (the
training episodes, unchanged: evaluating does not change training), and the config
``"greedy_eval"`` (with the return of a uniformly random policy from the same start states, the
zero of :mod:`examples.experiments.greedy`'s retention).

Seeds: the old agent's weights and phase-1 environment use ``10_000 + seed`` (so "scratch" does not
start where the old agent started); phase 2 of every arm uses ``seed`` for TensorFlow, NumPy and
the environment, so the arms of a seed see the same episode start states.
"""

from keras_surgeon_rl.rl import make_env, resume_dqn, tf_keras  # noqa: I001  (first: sets up keras-rl2)

import functools
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from rl.agents.dqn import DQNAgent
from rl.memory import SequentialMemory
from rl.policy import BoltzmannQPolicy, EpsGreedyQPolicy

from keras_surgeon_rl.rl.evaluate import (EVAL_SEED_BASE, GreedyEvaluation, eval_seeds, greedy_returns,
                                          random_returns)
from keras_surgeon_rl.rl.optimizer_state import optimizer_state
from keras_surgeon_rl.rl.persist import load_agent, save_agent
from keras_surgeon_rl.transfer import add_noise, copy_layers, distill, reset_layer, rollout_states
from keras_surgeon_rl.transfer.layers import freeze, freeze_all_but_final
from keras_surgeon_rl.transfer.rl_callbacks import AgentFreezeThawCallback, ThawAfter, recompile_agent

#: keras-rl2's example settings (dqn_cartpole.py), used unless an experiment overrides them.
AGENT_DEFAULTS = {"policy": "boltzmann", "eps": 0.1, "warmup": 100, "memory": 50_000, "gamma": 0.99,
                  "target_model_update": 1e-2, "lr": 1e-3, "batch_size": 32}


def agent_settings(exp: dict) -> dict:
    return {**AGENT_DEFAULTS, **exp.get("agent", {})}


# ---------------------------------------------------------------------------------------------
# Network, agent, environment
def q_network(obs_shape: int | Sequence[int], hidden: Sequence[int], n_actions: int, name: str,
              conv: Sequence[int] = ()):
    """Flatten(window 1) → Dense(relu) × len(hidden) → Dense(n_actions, linear); layers h1, h2, …, q.

    With ``conv`` (image observations, channels last, e.g. MinAtar's 10×10×C): the window's one frame
    → Conv2D(f, 3×3, stride 1, relu) per entry of ``conv`` (layers c1, c2, …) → Flatten → the Dense
    layers, as in the MinAtar paper's DQN (one conv of 16 filters, Dense 128).
    """
    obs_shape = (int(obs_shape),) if np.isscalar(obs_shape) else tuple(int(d) for d in obs_shape)
    if conv:
        layers = [tf_keras.layers.Reshape(obs_shape, input_shape=(1,) + obs_shape, name="frame")]
        layers += [tf_keras.layers.Conv2D(f, 3, activation="relu", name=f"c{i + 1}") for i, f in enumerate(conv)]
        layers += [tf_keras.layers.Flatten(name="flat")]
    else:
        layers = [tf_keras.layers.Flatten(input_shape=(1,) + obs_shape, name="flat")]
    layers += [tf_keras.layers.Dense(n, activation="relu", name=f"h{i + 1}") for i, n in enumerate(hidden)]
    layers += [tf_keras.layers.Dense(n_actions, activation="linear", name="q")]
    return tf_keras.Sequential(layers, name=name)


def env_for(exp: dict, setting: dict, seed: int):
    """The environment of a setting (``exp["old"]`` or ``exp["new"]``), seeded: the setting's ``env``
    (another game, for transfer across games), else the experiment's."""
    return make_env(setting.get("env", exp["env"]), seed=seed, features=setting.get("features"),
                    actions=setting.get("actions"))


def new_agent(exp: dict, setting: dict, name: str) -> DQNAgent:
    """A fresh, compiled DQNAgent for a setting, with random weights from the current seed."""
    a = agent_settings(exp)
    probe = env_for(exp, setting, seed=None)
    obs_shape, n_act = probe.observation_space.shape, int(probe.action_space.n)
    probe.close()
    policy = BoltzmannQPolicy() if a["policy"] == "boltzmann" else EpsGreedyQPolicy(eps=a["eps"])
    network = q_network(obs_shape, setting["hidden"], n_act, name, conv=setting.get("conv", ()))
    agent = DQNAgent(model=network, nb_actions=n_act,
                     memory=SequentialMemory(limit=a["memory"], window_length=1), policy=policy,
                     nb_steps_warmup=a["warmup"], gamma=a["gamma"], batch_size=a["batch_size"],
                     target_model_update=a["target_model_update"])
    agent.compile(tf_keras.optimizers.legacy.Adam(learning_rate=a["lr"]), metrics=[])
    return agent


def _skip_metric_resets(agent: DQNAgent) -> None:
    """Let the agent's training model keep its metric sums between batches.

    Graph-mode ``train_on_batch`` zeroes the loss and ``mean_q`` metrics before every batch, a
    ``Session.run`` of its own that costs about a quarter of a DQN training step here (2.3 of
    ~8 ms on 2 cores). These experiments never read those metrics, and the weights, actions and
    rewards of a run are bit-identical either way (checked on CartPole: 2,000 steps, same weights);
    only the loss and ``mean_q`` keras-rl2 logs become running means over the whole fit.
    """
    model = agent.trainable_model
    if not getattr(model.train_on_batch, "_keeps_metrics", False):
        train_on_batch = functools.partial(model.train_on_batch, reset_metrics=False)
        train_on_batch._keeps_metrics = True
        model.train_on_batch = train_on_batch


def _skip_input_checks(model) -> None:
    """Let ``model.predict_on_batch`` feed its compiled predict function directly.

    keras-rl2 predicts twice per step (the action, and the target network's values of the next
    states). Graph-mode ``predict_on_batch`` first standardizes its input, Python that checks
    structures and types and costs about as much as the prediction itself on networks this small.
    For one array into one model input, the compiled function gets the same array either way, so
    the predictions are bit-identical (tested); the first call, which builds the function, and
    anything else go the usual way.
    """
    if getattr(model.predict_on_batch, "_skips_checks", False) or len(model.inputs) != 1:
        return
    usual = model.predict_on_batch

    def predict_on_batch(x):
        function = getattr(model, "predict_function", None)
        if function is None or not isinstance(x, np.ndarray):
            return usual(x)
        outputs = function([x])
        return outputs[0] if len(outputs) == 1 else outputs

    predict_on_batch._skips_checks = True
    model.predict_on_batch = predict_on_batch


def fit(agent: DQNAgent, env, steps: int, callbacks: Sequence = ()) -> list[dict]:
    """Train for ``steps`` environment steps; one record per finished episode.

    Returns:
        ``[{"step": steps so far at the episode's end, "reward": episode reward, "length": steps}]``
        (an episode still running when ``steps`` is reached is not recorded).
    """
    _skip_metric_resets(agent)
    _skip_input_checks(agent.model)
    _skip_input_checks(agent.target_model)
    h = agent.fit(env, nb_steps=steps, verbose=0, callbacks=list(callbacks)).history
    return [{"step": int(s), "reward": float(r), "length": int(n)}
            for s, r, n in zip(h.get("nb_steps", []), h.get("episode_reward", []), h.get("nb_episode_steps", []))]


# ---------------------------------------------------------------------------------------------
# Phase 1: the old agent, once per seed
def old_agent_dir(exp: dict, seed: int, old_steps: int, cache: str) -> Path:
    """The cached old agent of ``seed``; the name hashes everything that shapes it."""
    # the old setting's own environment, if it has one (another game): old agents of the same game and
    # setting are shared by experiments that read the same cache (``main(old_agents_of=...)``)
    setting = {k: v for k, v in exp["old"].items() if k != "env"}
    key = {"env": exp["old"].get("env", exp["env"]), "old": setting, "agent": agent_settings(exp),
           "old_steps": old_steps, "memory": True}
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    return Path(cache) / f"old_seed{seed}_{digest}"


def prepare(seed: int, *, exp: dict, old_steps: int, cache: str) -> dict:
    """Train the old agent of ``seed`` for ``old_steps`` steps (or reuse the cached one).

    Returns:
        ``{"path", "cached", "phase1": [records]}``: the phase-1 training episodes, for the report.
    """
    tf_keras.backend.clear_session()  # with --jobs 0 (tests) runs share a process and its graph
    path = old_agent_dir(exp, seed, old_steps, cache)
    if (path / "phase1.json").exists():
        return {"path": str(path), "cached": True, **json.loads((path / "phase1.json").read_text())}
    tf_keras.utils.set_random_seed(10_000 + seed)
    agent = new_agent(exp, exp["old"], "old")
    records = fit(agent, env_for(exp, exp["old"], 10_000 + seed), old_steps)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    # Adam's state too, once there is one (a phase 1 shorter than the warm-up never trained)
    save_agent(agent, tmp, memory=True, optimizer=optimizer_state(agent) is not None)
    (tmp / "phase1.json").write_text(json.dumps({"phase1": records}))
    if path.exists():  # another process finished the same agent first
        shutil.rmtree(tmp)
    else:
        tmp.replace(path)
    return {"path": str(path), "cached": False, "phase1": records}


# ---------------------------------------------------------------------------------------------
# Phase 2: one arm
def arm_agent(arm: str, exp: dict, seed: int, old_steps: int, cache: str) -> tuple[DQNAgent, dict]:
    """The agent an arm trains in phase 2, and the setting (old or new) it trains in."""
    agent, setting, _old = _arm_agents(arm, exp, seed, old_steps, cache)
    return agent, setting


def _arm_agents(arm: str, exp: dict, seed: int, old_steps: int, cache: str, need_old: bool = False):
    """``(agent, setting, old agent)``: the old agent is loaded for ``scratch`` only if ``need_old``
    (after the scratch agent: loading it first would shift graph-mode op seeds, i.e. scratch's init)."""
    tf_keras.utils.set_random_seed(seed)
    path = old_agent_dir(exp, seed, old_steps, cache)
    if arm == "scratch":
        agent = new_agent(exp, exp["new"], "scratch")
        return agent, exp["new"], load_agent(path, memory=False) if need_old else None
    if fresh_start(exp, arm):  # scratch's first agent, then initialized from the old one
        agent = new_agent(exp, exp["new"], arm)
        old = load_agent(path, memory=False)
        return initialize_fresh(agent, old, arm, exp, seed), exp["new"], old
    carry = arm_options(exp, arm).get("optimizer_state") == "carry"
    old = load_agent(path, memory=True, optimizer_state=carry)  # Adam's state: only for arms that carry it
    if arm == "old":
        return old, exp["old"], old
    return resume_arm(old, arm, exp, seed), exp["new"], old


def arm_options(exp: dict, arm: str) -> dict:
    """``exp["options"][arm]``: how the arm resumes (see the module docstring); empty if it has none."""
    return exp.get("options", {}).get(arm, {})


def arm_spec(exp: dict, arm: str) -> dict:
    """The ``resume_dqn`` spec of a surgery arm (its own, or that of the arm named by ``options[arm]["like"]``)."""
    like = arm_options(exp, arm).get("like", arm)
    if like not in exp["specs"]:
        raise ValueError(f"arm {arm!r} has no spec: add exp['specs'][{like!r}] or exp['options'][{arm!r}]['like']")
    return exp["specs"][like]


def resume_arm(old: DQNAgent, arm: str, exp: dict, seed: int) -> DQNAgent:
    """``resume_dqn(old, spec)`` as the arm's options (see the module docstring) say."""
    options = arm_options(exp, arm)
    kwargs = dict(options.get("settings", {}))
    # explicit, so that the rows stay what was measured whatever resume_dqn's default: phase 1's replay
    # memory is carried wherever the observations keep their shape (``options`` may say "fresh")
    kwargs["memory"] = options.get("memory", "carry" if same_observations(exp) else "fresh")
    if "lr" in options:
        kwargs["optimizer"] = tf_keras.optimizers.legacy.Adam(learning_rate=options["lr"])
    if "optimizer_state" in options:
        kwargs["optimizer_state"] = options["optimizer_state"]
    agent = resume_dqn(old, arm_spec(exp, arm), **kwargs)
    rng = np.random.default_rng(seed)
    for layer, std in options.get("noise", {}).items():  # e.g. an inserted layer "near identity"
        weights = agent.model.get_layer(layer).get_weights()
        weights[0] = weights[0] + rng.normal(0.0, std, weights[0].shape).astype(weights[0].dtype)
        for model in (agent.model, agent.target_model):
            model.get_layer(layer).set_weights(weights)
    for k, layer in enumerate(options.get("reset", [])):  # forgets: online and target start from the same draw
        reset_layer(agent.model, layer, seed=seed + 1000 * k)
        agent.target_model.get_layer(agent.model.get_layer(layer).name).set_weights(
            agent.model.get_layer(layer).get_weights())
    if "perturb" in options:
        _perturb(agent, options["perturb"], seed)
    _freeze(agent, options)
    return agent


def same_observations(exp: dict) -> bool:
    """Whether the old and the new setting observe the same (same environment, same features)."""
    old_env, new_env = exp["old"].get("env", exp["env"]), exp["new"].get("env", exp["env"])
    return old_env == new_env and exp["old"]["features"] == exp["new"]["features"]


def fresh_start(exp: dict, arm: str) -> bool:
    """Whether an arm starts from a fresh agent of the new setting (``copy``, ``distill``) instead of surgery."""
    options = arm_options(exp, arm)
    return "copy" in options or "distill" in options


def initialize_fresh(agent: DQNAgent, old: DQNAgent, arm: str, exp: dict, seed: int) -> DQNAgent:
    """A fresh agent's network after the arm's ``copy`` or ``distill`` from the old one (target synced)."""
    options = arm_options(exp, arm)
    copy = options.get("copy", {})
    if copy:
        copy_layers(old.model, agent.model, first=copy.get("first"), last=copy.get("last"),
                    freeze=copy.get("freeze", False))
    if "distill" in options:
        _distill(agent, old, exp, options["distill"], seed)
    agent.target_model.set_weights(agent.model.get_weights())
    if copy.get("freeze"):
        recompile_agent(agent)  # the copied layers' freeze takes effect
    _freeze(agent, options)
    return agent


def _freeze(agent: DQNAgent, options: dict) -> None:
    """``options["freeze"]``: freeze the layers (thawed later by :class:`ThawAfter`, if ``steps``)."""
    if "freeze" not in options:
        return
    layers = options["freeze"]["layers"]
    if layers == "all_but_final":
        if options["freeze"].get("steps"):
            raise ValueError('freeze "all_but_final" is for good ("steps": None); thaw with "thaw_schedule"')
        freeze_all_but_final(agent.model)
    else:
        freeze(agent.model, layers)
    recompile_agent(agent)


def _perturb(agent: DQNAgent, perturb: dict, seed: int) -> None:
    """:func:`add_noise` on the online network; the target network gets the same noise."""
    n_weighted = sum(1 for layer in agent.model.layers if layer.weights)
    before = agent.model.get_weights()
    add_noise(agent.model, last_n=perturb.get("last_n", n_weighted), alpha=perturb["alpha"], seed=seed)
    delta = [a - b for a, b in zip(agent.model.get_weights(), before)]
    agent.target_model.set_weights([w + d for w, d in zip(agent.target_model.get_weights(), delta)])


def _old_view(exp: dict) -> tuple[Optional[list[int]], list[int]]:
    """How the old agent sees a state of the new setting, and where its actions go in the new one.

    Returns:
        ``(columns, actions)``: for each old input feature (or channel, the last axis) its index in
        the new observation, ``-1`` where the new one has no feature of that ID (the old agent sees
        zeros there), ``None`` when both see the same; and for each old action its index in the new
        action list. IDs are the ``preserve`` spec's ``inputs``/``outputs`` lists where it gives them
        (e.g. channels of two games matched by role), else the settings' ``features``/``actions``.
    """
    specs = exp.get("specs", {})
    spec = specs.get("preserve") or next(iter(specs.values()), {})
    inputs, outputs = spec.get("inputs", {}), spec.get("outputs", {})
    old_in = inputs.get("old", exp["old"].get("features"))
    new_in = inputs.get("new", exp["new"].get("features"))
    columns = None
    if old_in is not None and new_in is not None and list(old_in) != list(new_in):
        columns = [list(new_in).index(f) if f in new_in else -1 for f in old_in]
    old_act = outputs.get("old", exp["old"].get("actions"))
    new_act = outputs.get("new", exp["new"].get("actions"))
    if old_act is None or new_act is None:
        return columns, list(range(_n_actions(exp, exp["old"])))
    missing = [a for a in old_act if a not in new_act]
    if missing:
        raise ValueError(f"distill: the old actions {missing} are not in the new setting's {list(new_act)}")
    return columns, [list(new_act).index(a) for a in old_act]


def _n_actions(exp: dict, setting: dict) -> int:
    probe = env_for(exp, setting, seed=None)
    n = int(probe.action_space.n)
    probe.close()
    return n


def _as_old_input(states: np.ndarray, columns: Optional[list[int]]) -> np.ndarray:
    if columns is None:
        return states
    padded = np.concatenate([states, np.zeros(states.shape[:-1] + (1,), states.dtype)], axis=-1)
    return padded[..., columns]  # index -1: the zero column


def _distill(student: DQNAgent, teacher: DQNAgent, exp: dict, settings: dict, seed: int) -> None:
    """Policy distillation of ``teacher`` (the old agent) into ``student``, on states of the new setting."""
    columns, actions = _old_view(exp)
    env = env_for(exp, exp["new"], seed=20_000 + seed)
    x = rollout_states(teacher.model, env, settings["states"], epsilon=settings.get("epsilon", 0.05), seed=seed,
                       teacher_input=lambda states: _as_old_input(states, columns), actions=actions)
    env.close()
    n_new = _n_actions(exp, exp["new"])
    history = distill(teacher.model, student.model, x, teacher_states=_as_old_input(x, columns),
                      temperature=settings.get("temperature", 0.1), epochs=settings.get("epochs", 10),
                      teacher_actions=actions, student_actions=list(range(n_new)))
    student.distilled = {"states": len(x), "agreement": history.agreement[-1], "loss": history.loss[-1]}


def evaluation_settings(every: int, episodes: int = 10, seed_base: int = EVAL_SEED_BASE,
                        max_steps: Optional[int] = None) -> Optional[dict]:
    """The greedy evaluation of phase 2 (saved in the config), or ``None`` for ``every=0`` (no evaluation).

    ``max_steps`` caps a greedy episode, for environments without a time limit of their own (MinAtar:
    a deterministic greedy policy can keep a ball bouncing in a loop for ever); ``None``: the
    environment's limit ends it.
    """
    if every <= 0:
        return None
    return {"every": every, "episodes": episodes, "seeds": eval_seeds(episodes, seed_base),
            "policy": "greedy (argmax Q)", "max_steps": max_steps or "the environment's limit"}


def _max_steps(evaluation: dict) -> Optional[int]:
    """The cap of a greedy episode in ``evaluation`` (:func:`evaluation_settings`), or ``None``."""
    cap = evaluation.get("max_steps")
    return cap if isinstance(cap, int) else None


def greedy(agent: DQNAgent, exp: dict, setting: dict, seeds: Sequence[int], max_steps: Optional[int] = None) -> dict:
    """:func:`greedy_returns` of ``agent`` in the environment of ``setting`` from the resets ``seeds``."""
    return greedy_returns(agent, lambda: env_for(exp, setting, seed=None), seeds, max_steps=max_steps)


def random_reference(exp: dict, seeds: Sequence[int], repeats: int = 10) -> dict:
    """The return of uniformly random actions in the new setting from the evaluation's start states
    (``repeats`` episodes per start state): the zero of retention (:mod:`examples.experiments.greedy`)."""
    return random_returns(lambda: env_for(exp, exp["new"], seed=None), seeds, repeats=repeats)


def run_one(arm: str, seed: int, steps: int, *, exp: dict, old_steps: Optional[int], cache: str,
            evaluation: Optional[dict] = None):
    """Phase 2 of one arm: ``steps`` training steps; one record per training episode.

    ``scratch`` trains for ``old_steps + steps`` steps: its first ``steps`` give ``records`` (and
    the greedy curve's points up to ``steps``), the rest ``"equal_samples": {"steps", "records"}``,
    so that its end compares with the other arms' at equal total samples (phase 1 + phase 2).

    Returns:
        Without ``evaluation``: ``{"records": [...]}`` (and ``equal_samples`` for scratch). With it
        (see :func:`evaluation_settings`) also ``"greedy": {"before": old agent, "after": the arm's
        agent before any training step, "curve": [{"step": 0, ...after}, {"step": every, ...}, ...]}``,
        each evaluation a :func:`greedy_returns` result. ``before`` is the old agent of the seed
        (the one surgery starts from) in the old setting, also for ``scratch``; ``after`` for
        ``old`` is the same evaluation. Evaluating changes nothing in training: the records are those
        of a run without it.
    """
    tf_keras.backend.clear_session()
    old_steps = old_steps or steps
    agent, setting, old = _arm_agents(arm, exp, seed, old_steps, cache, need_old=evaluation is not None)
    env = env_for(exp, setting, seed)
    total = steps + old_steps if arm == "scratch" else steps
    callbacks, out = [], {}
    if evaluation is not None:
        seeds, cap = evaluation["seeds"], _max_steps(evaluation)
        before = greedy(old, exp, exp["old"], seeds, max_steps=cap)
        after = before if arm == "old" else greedy(agent, exp, setting, seeds, max_steps=cap)
        callbacks = [GreedyEvaluation(lambda: env_for(exp, setting, seed=None), seeds, every=evaluation["every"],
                                      max_steps=cap)]
    options = arm_options(exp, arm) if arm not in ("old", "scratch") else {}
    if options.get("freeze", {}).get("steps"):
        callbacks.append(ThawAfter(options["freeze"]["layers"], options["freeze"]["steps"]))
    if "thaw_schedule" in options:
        callbacks.append(AgentFreezeThawCallback(tl_end=options["thaw_schedule"]["tl_end"], total_steps=steps))
    records = fit(agent, env, total, callbacks=callbacks)
    out["records"] = [r for r in records if r["step"] <= steps]
    if arm == "scratch":
        out["equal_samples"] = {"steps": total, "records": [r for r in records if r["step"] > steps]}
    if hasattr(agent, "distilled"):
        out["distilled"] = agent.distilled
    if evaluation is not None:
        out["greedy"] = {"before": before, "after": after, "curve": [{"step": 0, **after}] + callbacks[0].results}
    return out


# ---------------------------------------------------------------------------------------------
# The command line every RL experiment script shares
def main(doc: str, experiment: str, exp: dict, arms: Sequence[str], argv: Optional[Sequence[str]],
         steps: int, runs: int, at: Sequence[int], title: str, smooth: int = 10,
         old_steps: Optional[int] = None, eval_every: int = 500, transfer_arms: Sequence[str] = (),
         old_agents_of: Optional[str] = None, eval_max_steps: Optional[int] = None) -> dict:
    """Parse the options, run every arm, print the tables, draw the plots; returns the JSON and PNG paths.

    ``transfer_arms``: the transfer-method arms of the task (:mod:`examples.experiments.transfer`),
    run with ``--transfer`` (together with ``old``, ``preserve``, ``original`` and ``scratch``, the
    comparison's yardsticks) or when ``--arms`` names them. ``old_agents_of``: the experiment whose
    cached old agents to use (``<out>/<it>/old_agents``; default this one's), for experiments that
    start from the same old agents. ``eval_max_steps``: the cap of a greedy evaluation episode, for
    environments without a time limit (:func:`evaluation_settings`).

    ``--old-steps`` (default: ``old_steps``, else ``--steps``) sets phase 1; ``--steps`` is phase 2;
    ``--eval-every`` defaults to ``eval_every``.
    ``at``: the steps shown in the table (the original report's checkpoints).
    """
    import sys

    from examples.experiments import runner, transfer

    parser = runner.arg_parser(doc, arms, steps=steps, runs=runs, experiment=experiment, more_arms=transfer_arms)
    if transfer_arms:
        parser.add_argument("--transfer", action="store_true",
                            help="run the transfer methods' arms (docs/transfer.md) and their yardsticks: "
                                 f"{', '.join(transfer.BASE_ARMS + list(transfer_arms))}")
    parser.add_argument("--old-steps", type=int, default=old_steps,
                        help=f"phase-1 training steps of the old agent (default: {old_steps or '--steps'})")
    parser.add_argument("--eval-every", type=int, default=eval_every, metavar="N",
                        help="greedy evaluation every N phase-2 steps, and of the old and the new agent right before "
                             f"phase 2 (default {eval_every}; 0: none, as in results saved before it existed)")
    parser.add_argument("--eval-episodes", type=int, default=10, metavar="K",
                        help="episodes per greedy evaluation, from K fixed seeded resets (default 10)")
    args = parser.parse_args(argv)
    if getattr(args, "transfer", False):
        args.arms = [a for a in transfer.BASE_ARMS if a in arms] + list(transfer_arms)
    old_steps = args.old_steps or args.steps
    evaluation = evaluation_settings(args.eval_every, args.eval_episodes, max_steps=eval_max_steps)
    cache = str(args.out / (old_agents_of or experiment) / "old_agents")  # shared by every --name; keyed by settings
    print(f"{experiment}: arms {', '.join(args.arms)}; {args.runs} runs each (seeds {args.seed}–"
          f"{args.seed + args.runs - 1}); phase 1 {old_steps} steps (cached in {cache}), phase 2 {args.steps} "
          f"steps; jobs={args.jobs}")
    config = {**exp, "agent": agent_settings(exp), "old_steps": old_steps, "phase2_steps": args.steps,
              "command": " ".join(["python", sys.argv[0]] + list(argv if argv is not None else sys.argv[1:]))}
    if evaluation is not None:  # absent without evaluation: results saved before it still resume
        config["greedy_eval"] = {**evaluation, "random": random_reference(exp, evaluation["seeds"])}
    path = runner.run(
        args.name, functools.partial(run_one, exp=exp, old_steps=old_steps, cache=cache, evaluation=evaluation),
        args.arms, args.runs, args.steps, seed=args.seed, out=args.out, resume=args.resume, **runner.backend(args),
        x="step", y="reward",
        config=config, prepare=functools.partial(prepare, exp=exp, old_steps=old_steps, cache=cache),
        plot_options={"title": title, "xlabel": f"phase-2 training steps (after {old_steps} steps of phase 1)",
                      "ylabel": "training episode reward", "smooth": smooth, "band": "ci"})
    results = runner.load(path)
    for seed, info in sorted(results["prepared"].items(), key=lambda kv: int(kv[0])):
        last = [r["reward"] for r in info["phase1"][-smooth:]]
        print(f"old agent, seed {seed}: {len(info['phase1'])} phase-1 episodes, last {len(last)} mean reward "
              f"{sum(last) / max(1, len(last)):.1f}{' (cached)' if info['cached'] else ''}")
    print()
    print(runner.summary(path, [c for c in at if c <= args.steps], digits=1, interval="ci"))
    png = runner.plot(path)
    out = {"json": path, "png": png}
    if evaluation is not None:
        from examples.experiments import greedy as greedy_stats

        print()
        print(greedy_stats.retention_table(results))
        out["greedy_png"] = greedy_stats.plot(path)
        print(f"\nresults: {path}\nplots:   {png}, {out['greedy_png']}")
    else:
        print(f"\nresults: {path}\nplot:    {png}")
    return out

