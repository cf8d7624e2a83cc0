"""The keras-rl2 DDPG experiments: actor, critic, agent, phase 1 (cached) and phase 2, as :mod:`.dqn` does for DQN.

An experiment is a plain JSON-able dict (saved into results.json as it is)::

    {"env": "Pendulum-v1",
     "old": {"features": [...] | None, "actor": [16, 16, 16], "critic": [32, 32, 32]},  # phase 1 / arm "old"
     "new": {"features": None, "actor": [...], "critic": [...]},                       # arm "scratch"
     "specs": {"preserve": {"inputs": {"old": [...], "new": [...]}}},                  # resume_ddpg specs
     "agent": {"warmup": 100, "memory": 100_000, ...}}                                  # see AGENT_DEFAULTS

``features`` ``None`` means all of the environment's. As in :mod:`.dqn`, every run happens in a
fresh process and this module imports keras-rl2 (whatever imports it must import
:mod:`keras_surgeon_rl.rl` first; this module does that on its first line).

Arms: ``old`` (the old agent keeps training in its old setting, its replay memory carried),
``scratch`` (a fresh agent of the new setting trained for phase 1 + phase 2 steps: its records up to
the phase-2 length compare at equal phase-2 steps, its end at equal total samples) and one arm per
entry of ``specs`` (``resume_ddpg(old agent, spec)``: fresh optimizers of the old classes and
configs, the old random process's state, a fresh replay memory where the observations change).

Phase 1 (:func:`prepare`) trains the old agent once per seed and saves it with its replay memory
(:func:`keras_surgeon_rl.rl.persist.save_agent`; a DDPG save holds no optimizer state).

Greedy evaluation (``--eval-every N``; 0 turns it off): the deterministic actor (its action without
exploration noise, as keras-rl2's test mode acts; :func:`keras_surgeon_rl.rl.evaluate.greedy_returns`)
from ``--eval-episodes`` fixed seeded resets: the seed's old agent right before surgery, the arm's
agent right after it, and every N phase-2 steps; stored as ``"greedy": {"before", "after", "curve"}``
in the run's entry, read by :mod:`examples.experiments.greedy`. The zero of its retention is the
return of uniformly random torques from the same start states.

Seeds: as :mod:`.dqn`: phase 1 uses ``10_000 + seed``, phase 2 of every arm ``seed`` (TensorFlow,
NumPy, whose global generator drives the Ornstein-Uhlenbeck noise, and the environment).
"""

from keras_surgeon_rl.rl import make_env, resume_ddpg, tf_keras  # noqa: I001  (first: sets up keras-rl2)

import functools
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Optional, Sequence

from rl.agents.ddpg import DDPGAgent
from rl.memory import SequentialMemory
from rl.random import OrnsteinUhlenbeckProcess

from examples.experiments.dqn import _skip_input_checks
from keras_surgeon_rl.rl.evaluate import (EVAL_SEED_BASE, GreedyEvaluation, eval_seeds, greedy_returns,
                                          random_returns)
from keras_surgeon_rl.rl.persist import load_agent, save_agent

#: keras-rl2's example settings (ddpg_pendulum.py), used unless an experiment overrides them.
AGENT_DEFAULTS = {"warmup": 100, "memory": 100_000, "gamma": 0.99, "target_model_update": 1e-3, "lr": 1e-3,
                  "clipnorm": 1.0, "batch_size": 32, "ou_theta": 0.15, "ou_mu": 0.0, "ou_sigma": 0.3}


def agent_settings(exp: dict) -> dict:
    return {**AGENT_DEFAULTS, **exp.get("agent", {})}


# ---------------------------------------------------------------------------------------------
# Networks, agent, environment
def actor_network(n_obs: int, hidden: Sequence[int], n_act: int, name: str):
    """Flatten(window 1) → Dense(relu) × len(hidden) → Dense(n_act, linear); layers a_h1, …, a_out."""
    L = tf_keras.layers
    layers = [L.Flatten(input_shape=(1, n_obs), name="a_flat")]
    layers += [L.Dense(n, activation="relu", name=f"a_h{i + 1}") for i, n in enumerate(hidden)]
    layers += [L.Dense(n_act, activation="linear", name="a_out")]
    return tf_keras.Sequential(layers, name=f"{name}_actor")


def critic_network(n_obs: int, hidden: Sequence[int], n_act: int, name: str):
    """``(critic, action_input)``: Concatenate(action, Flatten(observation)) → Dense(relu) × len(hidden)
    → Dense(1); layers c_h1, …, q."""
    L = tf_keras.layers
    action = L.Input((n_act,), name="action_input")
    observation = L.Input((1, n_obs), name="observation_input")
    x = L.Concatenate(name="cat")([action, L.Flatten(name="c_flat")(observation)])
    for i, n in enumerate(hidden):
        x = L.Dense(n, activation="relu", name=f"c_h{i + 1}")(x)
    return tf_keras.Model([action, observation], L.Dense(1, name="q")(x), name=f"{name}_critic"), action


def env_for(exp: dict, setting: dict, seed: Optional[int]):
    """The environment of a setting (``exp["old"]`` or ``exp["new"]``), seeded."""
    return make_env(exp["env"], seed=seed, features=setting.get("features"))


def new_agent(exp: dict, setting: dict, name: str) -> DDPGAgent:
    """A fresh, compiled DDPGAgent for a setting, with random weights from the current seed."""
    a = agent_settings(exp)
    probe = env_for(exp, setting, seed=None)
    n_obs, n_act = probe.observation_space.shape[0], int(probe.action_space.shape[0])
    probe.close()
    critic, action_input = critic_network(n_obs, setting["critic"], n_act, name)
    agent = DDPGAgent(nb_actions=n_act, actor=actor_network(n_obs, setting["actor"], n_act, name), critic=critic,
                      critic_action_input=action_input, memory=SequentialMemory(limit=a["memory"], window_length=1),
                      random_process=OrnsteinUhlenbeckProcess(theta=a["ou_theta"], mu=a["ou_mu"],
                                                              sigma=a["ou_sigma"], size=n_act),
                      nb_steps_warmup_critic=a["warmup"], nb_steps_warmup_actor=a["warmup"], gamma=a["gamma"],
                      batch_size=a["batch_size"], target_model_update=a["target_model_update"])
    agent.compile([tf_keras.optimizers.legacy.Adam(learning_rate=a["lr"], clipnorm=a["clipnorm"]),
                   tf_keras.optimizers.legacy.Adam(learning_rate=a["lr"], clipnorm=a["clipnorm"])], metrics=[])
    return agent


def fit(agent: DDPGAgent, env, steps: int, callbacks: Sequence = ()) -> list[dict]:
    """Train for ``steps`` environment steps; one record per finished episode (as :func:`.dqn.fit`)."""
    _skip_input_checks(agent.actor)  # one input each: bit-identical predictions, less Python per step
    _skip_input_checks(agent.target_actor)
    h = agent.fit(env, nb_steps=steps, verbose=0, callbacks=list(callbacks)).history
    return [{"step": int(s), "reward": float(r), "length": int(n)}
            for s, r, n in zip(h.get("nb_steps", []), h.get("episode_reward", []), h.get("nb_episode_steps", []))]


# ---------------------------------------------------------------------------------------------
# Phase 1: the old agent, once per seed
def old_agent_dir(exp: dict, seed: int, old_steps: int, cache: str) -> Path:
    """The cached old agent of ``seed``; the name hashes everything that shapes it."""
    key = {"env": exp["env"], "old": exp["old"], "agent": agent_settings(exp), "old_steps": old_steps,
           "memory": True, "algorithm": "ddpg"}
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    return Path(cache) / f"old_seed{seed}_{digest}"


def prepare(seed: int, *, exp: dict, old_steps: int, cache: str) -> dict:
    """Train the old agent of ``seed`` for ``old_steps`` steps (or reuse the cached one).

    Returns:
        ``{"path", "cached", "phase1": [records]}``.
    """
    tf_keras.backend.clear_session()
    path = old_agent_dir(exp, seed, old_steps, cache)
    if (path / "phase1.json").exists():
        return {"path": str(path), "cached": True, **json.loads((path / "phase1.json").read_text())}
    tf_keras.utils.set_random_seed(10_000 + seed)
    agent = new_agent(exp, exp["old"], "old")
    records = fit(agent, env_for(exp, exp["old"], 10_000 + seed), old_steps)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    save_agent(agent, tmp, memory=True)
    (tmp / "phase1.json").write_text(json.dumps({"phase1": records}))
    if path.exists():
        shutil.rmtree(tmp)
    else:
        tmp.replace(path)
    return {"path": str(path), "cached": False, "phase1": records}


# ---------------------------------------------------------------------------------------------
# Phase 2: one arm
def arm_agents(arm: str, exp: dict, seed: int, old_steps: int, cache: str, need_old: bool = False):
    """``(agent, setting, old agent)`` of an arm (the old agent for ``scratch`` only if ``need_old``,
    loaded after the scratch agent is built so that it does not shift scratch's initialization)."""
    tf_keras.utils.set_random_seed(seed)
    path = old_agent_dir(exp, seed, old_steps, cache)
    if arm == "scratch":
        agent = new_agent(exp, exp["new"], "scratch")
        return agent, exp["new"], load_agent(path, memory=False) if need_old else None
    if arm == "old":
        old = load_agent(path, memory=True)
        return old, exp["old"], old
    if arm not in exp["specs"]:
        raise ValueError(f"arm {arm!r} has no spec: add exp['specs'][{arm!r}] (a resume_ddpg spec)")
    same = exp["old"]["features"] == exp["new"]["features"]
    old = load_agent(path, memory=same)  # the memory only matters where the observations keep their shape
    return resume_ddpg(old, exp["specs"][arm], memory="carry" if same else "fresh"), exp["new"], old


def evaluation_settings(every: int, episodes: int = 10, seed_base: int = EVAL_SEED_BASE) -> Optional[dict]:
    """The greedy evaluation of phase 2 (saved in the config), or ``None`` for ``every=0``."""
    if every <= 0:
        return None
    return {"every": every, "episodes": episodes, "seeds": eval_seeds(episodes, seed_base),
            "policy": "deterministic actor (no exploration noise)", "max_steps": "the environment's limit"}


def greedy(agent: DDPGAgent, exp: dict, setting: dict, seeds: Sequence[int]) -> dict:
    """:func:`greedy_returns` of ``agent``'s deterministic actor in the environment of ``setting``."""
    return greedy_returns(agent, lambda: env_for(exp, setting, seed=None), seeds)


def random_reference(exp: dict, seeds: Sequence[int], repeats: int = 10) -> dict:
    """The return of uniformly random actions in the new setting from the evaluation's start states."""
    return random_returns(lambda: env_for(exp, exp["new"], seed=None), seeds, repeats=repeats)


def run_one(arm: str, seed: int, steps: int, *, exp: dict, old_steps: Optional[int], cache: str,
            evaluation: Optional[dict] = None):
    """Phase 2 of one arm, as :func:`.dqn.run_one` (``scratch`` trains ``old_steps + steps`` steps).

    Returns:
        ``{"records": [...], "greedy": {"before", "after", "curve"}}`` (``greedy`` with
        ``evaluation``; ``equal_samples`` for scratch).
    """
    tf_keras.backend.clear_session()
    old_steps = old_steps or steps
    agent, setting, old = arm_agents(arm, exp, seed, old_steps, cache, need_old=evaluation is not None)
    env = env_for(exp, setting, seed)
    total = steps + old_steps if arm == "scratch" else steps
    callbacks, out = [], {}
    if evaluation is not None:
        seeds = evaluation["seeds"]
        before = greedy(old, exp, exp["old"], seeds)
        after = before if arm == "old" else greedy(agent, exp, setting, seeds)
        callbacks = [GreedyEvaluation(lambda: env_for(exp, setting, seed=None), seeds, every=evaluation["every"])]
    records = fit(agent, env, total, callbacks=callbacks)
    out["records"] = [r for r in records if r["step"] <= steps]
    if arm == "scratch":
        out["equal_samples"] = {"steps": total, "records": [r for r in records if r["step"] > steps]}
    if evaluation is not None:
        out["greedy"] = {"before": before, "after": after, "curve": [{"step": 0, **after}] + callbacks[0].results}
    return out


# ---------------------------------------------------------------------------------------------
# The command line
def main(doc: str, experiment: str, exp: dict, arms: Sequence[str], argv: Optional[Sequence[str]],
         steps: int, runs: int, at: Sequence[int], title: str, smooth: int = 5,
         old_steps: Optional[int] = None, eval_every: int = 1000) -> dict:
    """Parse the options, run every arm, print the tables, draw the plots (as :func:`.dqn.main`).

    Returns:
        ``{"json", "png"}`` and, with greedy evaluation, ``"greedy_png"``.
    """
    import sys

    from examples.experiments import greedy as greedy_stats
    from examples.experiments import runner

    parser = runner.arg_parser(doc, arms, steps=steps, runs=runs, experiment=experiment)
    parser.add_argument("--old-steps", type=int, default=old_steps,
                        help=f"phase-1 training steps of the old agent (default: {old_steps or '--steps'})")
    parser.add_argument("--eval-every", type=int, default=eval_every, metavar="N",
                        help=f"greedy (deterministic actor) evaluation every N phase-2 steps, and of the old and "
                             f"the new agent right before phase 2 (default {eval_every}; 0: none)")
    parser.add_argument("--eval-episodes", type=int, default=10, metavar="K",
                        help="episodes per greedy evaluation, from K fixed seeded resets (default 10)")
    args = parser.parse_args(argv)
    old_steps = args.old_steps or args.steps
    evaluation = evaluation_settings(args.eval_every, args.eval_episodes)
    cache = str(args.out / experiment / "old_agents")
    print(f"{experiment}: arms {', '.join(args.arms)}; {args.runs} runs each (seeds {args.seed}–"
          f"{args.seed + args.runs - 1}); phase 1 {old_steps} steps (cached in {cache}), phase 2 {args.steps} "
          f"steps; jobs={args.jobs}")
    config = {**exp, "agent": agent_settings(exp), "old_steps": old_steps, "phase2_steps": args.steps,
              "command": " ".join(["python", sys.argv[0]] + list(argv if argv is not None else sys.argv[1:]))}
    if evaluation is not None:
        config["greedy_eval"] = {**evaluation, "random": random_reference(exp, evaluation["seeds"])}
    path = runner.run(
        args.name, functools.partial(run_one, exp=exp, old_steps=old_steps, cache=cache, evaluation=evaluation),
        args.arms, args.runs, args.steps, seed=args.seed, out=args.out, resume=args.resume, **runner.backend(args),
        x="step", y="reward", config=config,
        prepare=functools.partial(prepare, exp=exp, old_steps=old_steps, cache=cache),
        plot_options={"title": title, "xlabel": f"phase-2 training steps (after {old_steps} steps of phase 1)",
                      "ylabel": "training episode reward", "smooth": smooth, "band": "ci"})
    results = runner.load(path)
    for seed, info in sorted(results["prepared"].items(), key=lambda kv: int(kv[0])):
        last = [r["reward"] for r in info["phase1"][-smooth:]]
        print(f"old agent, seed {seed}: {len(info['phase1'])} phase-1 episodes, last {len(last)} mean reward "
              f"{sum(last) / max(1, len(last)):.1f}{' (cached)' if info['cached'] else ''}")
    print()
    print(runner.summary(path, [c for c in at if c <= args.steps], digits=1, interval="ci"))
    out = {"json": path, "png": runner.plot(path)}
    if evaluation is not None:
        print()
        print(greedy_stats.retention_table(results))
        out["greedy_png"] = greedy_stats.plot(path)
        print(f"\nresults: {path}\nplots:   {out['png']}, {out['greedy_png']}")
    else:
        print(f"\nresults: {path}\nplot:    {out['png']}")
    return out
