"""What the five keras-rl2 experiments share: the Q-network, the agent, phase 1 (cached) and phase 2.

An experiment is a plain JSON-able dict (saved into results.json as it is)::

    {"env": "CartPole-v1",
     "old": {"features": [...] | None, "actions": [...] | None, "hidden": [16]},   # phase 1 / arm "old"
     "new": {"features": ... , "actions": ..., "hidden": [16]},                     # arm "scratch"
     "specs": {"transplant_preserve": {...}, "transplant_random": {...}},           # resume_dqn specs
     "agent": {"policy": "boltzmann" | "eps_greedy", "warmup": 100, ...}}

``features``/``actions`` ``None`` means all of the environment's. Every run happens in a fresh
process (the runner spawns one per run), and this module imports keras-rl2, so whatever imports it
must import :mod:`keras_surgeon_rl.rl` first (this module does that on its first line).

Phase 1 (:func:`prepare`) trains the old agent once per seed and saves it with
:func:`keras_surgeon_rl.rl.persist.save_agent`; every arm of that seed loads it with ``load_agent``
(the replay memory is not saved: every arm starts phase 2 with an empty memory, and warms up again
for ``warmup`` steps before learning — the same for every arm, scratch included).

Greedy evaluation (``--eval-every N``, default 500; 0 turns it off): every run also measures the
greedy policy (argmax Q) from ``--eval-episodes`` fixed seeded resets (the same for every arm and
seed, see :mod:`keras_surgeon_rl.rl.evaluate`): the seed's old agent right before surgery, the
arm's agent right after it (before any training step), and every N phase-2 steps. A run's entry in
results.json then holds ``"greedy": {"before", "after", "curve"}`` beside ``"records"`` (the
training episodes, unchanged: evaluating does not change training), and the config
``"greedy_eval"``.

Seeds: the old agent's weights and phase-1 environment use ``10_000 + seed`` (so "scratch" does not
start where the old agent started); phase 2 of every arm uses ``seed`` for TensorFlow, NumPy and
the environment, so the arms of a seed see the same episode start states.
"""

from keras_surgeon_rl.rl import make_env, resume_dqn, tf_keras  # noqa: I001  (first: sets up keras-rl2)

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Optional, Sequence

from rl.agents.dqn import DQNAgent
from rl.memory import SequentialMemory
from rl.policy import BoltzmannQPolicy, EpsGreedyQPolicy

from keras_surgeon_rl.rl.evaluate import EVAL_SEED_BASE, GreedyEvaluation, eval_seeds, greedy_returns
from keras_surgeon_rl.rl.persist import load_agent, save_agent

#: keras-rl2's example settings (dqn_cartpole.py), used unless an experiment overrides them.
AGENT_DEFAULTS = {"policy": "boltzmann", "eps": 0.1, "warmup": 100, "memory": 50_000, "gamma": 0.99,
                  "target_model_update": 1e-2, "lr": 1e-3, "batch_size": 32}


def agent_settings(exp: dict) -> dict:
    return {**AGENT_DEFAULTS, **exp.get("agent", {})}


# ---------------------------------------------------------------------------------------------
# Network, agent, environment
def q_network(n_inputs: int, hidden: Sequence[int], n_actions: int, name: str):
    """Flatten(window 1) → Dense(relu) × len(hidden) → Dense(n_actions, linear); layers h1, h2, …, q."""
    layers = [tf_keras.layers.Flatten(input_shape=(1, n_inputs), name="flat")]
    layers += [tf_keras.layers.Dense(n, activation="relu", name=f"h{i + 1}") for i, n in enumerate(hidden)]
    layers += [tf_keras.layers.Dense(n_actions, activation="linear", name="q")]
    return tf_keras.Sequential(layers, name=name)


def env_for(exp: dict, setting: dict, seed: int):
    """The environment of a setting (``exp["old"]`` or ``exp["new"]``), seeded."""
    return make_env(exp["env"], seed=seed, features=setting.get("features"), actions=setting.get("actions"))


def new_agent(exp: dict, setting: dict, name: str) -> DQNAgent:
    """A fresh, compiled DQNAgent for a setting, with random weights from the current seed."""
    a = agent_settings(exp)
    probe = env_for(exp, setting, seed=None)
    n_in, n_act = probe.observation_space.shape[0], int(probe.action_space.n)
    probe.close()
    policy = BoltzmannQPolicy() if a["policy"] == "boltzmann" else EpsGreedyQPolicy(eps=a["eps"])
    agent = DQNAgent(model=q_network(n_in, setting["hidden"], n_act, name), nb_actions=n_act,
                     memory=SequentialMemory(limit=a["memory"], window_length=1), policy=policy,
                     nb_steps_warmup=a["warmup"], gamma=a["gamma"], batch_size=a["batch_size"],
                     target_model_update=a["target_model_update"])
    agent.compile(tf_keras.optimizers.legacy.Adam(learning_rate=a["lr"]), metrics=[])
    return agent


def fit(agent: DQNAgent, env, steps: int, callbacks: Sequence = ()) -> list[dict]:
    """Train for ``steps`` environment steps; one record per finished episode.

    Returns:
        ``[{"step": steps so far at the episode's end, "reward": episode reward, "length": steps}]``
        (an episode still running when ``steps`` is reached is not recorded).
    """
    h = agent.fit(env, nb_steps=steps, verbose=0, callbacks=list(callbacks)).history
    return [{"step": int(s), "reward": float(r), "length": int(n)}
            for s, r, n in zip(h.get("nb_steps", []), h.get("episode_reward", []), h.get("nb_episode_steps", []))]


# ---------------------------------------------------------------------------------------------
# Phase 1: the old agent, once per seed
def old_agent_dir(exp: dict, seed: int, old_steps: int, cache: str) -> Path:
    """The cached old agent of ``seed``; the name hashes everything that shapes it."""
    key = {"env": exp["env"], "old": exp["old"], "agent": agent_settings(exp), "old_steps": old_steps}
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
    save_agent(agent, tmp)
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
    if arm == "scratch":
        agent = new_agent(exp, exp["new"], "scratch")
        return agent, exp["new"], load_agent(old_agent_dir(exp, seed, old_steps, cache)) if need_old else None
    old = load_agent(old_agent_dir(exp, seed, old_steps, cache))
    if arm == "old":
        return old, exp["old"], old
    return resume_dqn(old, exp["specs"][arm]), exp["new"], old


def evaluation_settings(every: int, episodes: int = 10, seed_base: int = EVAL_SEED_BASE) -> Optional[dict]:
    """The greedy evaluation of phase 2 (saved in the config), or ``None`` for ``every=0`` (no evaluation)."""
    if every <= 0:
        return None
    return {"every": every, "episodes": episodes, "seeds": eval_seeds(episodes, seed_base),
            "policy": "greedy (argmax Q)", "max_steps": "the environment's limit"}


def greedy(agent: DQNAgent, exp: dict, setting: dict, seeds: Sequence[int]) -> dict:
    """:func:`greedy_returns` of ``agent`` in the environment of ``setting`` from the resets ``seeds``."""
    return greedy_returns(agent, lambda: env_for(exp, setting, seed=None), seeds)


def run_one(arm: str, seed: int, steps: int, *, exp: dict, old_steps: Optional[int], cache: str,
            evaluation: Optional[dict] = None):
    """Phase 2 of one arm: ``steps`` training steps; one record per training episode.

    Returns:
        Without ``evaluation``: the records. With it (see :func:`evaluation_settings`): ``{"records":
        [...], "greedy": {"before": old agent, "after": the arm's agent before any training step,
        "curve": [{"step": 0, ...after}, {"step": every, ...}, ...]}}``, each evaluation a
        :func:`greedy_returns` result. ``before`` is the old agent of the seed (the one surgery
        starts from) in the old setting, also for ``scratch``; ``after`` for ``old`` is the same
        evaluation. Evaluating changes nothing in training: the records are those of a run without it.
    """
    tf_keras.backend.clear_session()
    agent, setting, old = _arm_agents(arm, exp, seed, old_steps or steps, cache, need_old=evaluation is not None)
    env = env_for(exp, setting, seed)
    if evaluation is None:
        return fit(agent, env, steps)
    seeds = evaluation["seeds"]
    before = greedy(old, exp, exp["old"], seeds)
    after = before if arm == "old" else greedy(agent, exp, setting, seeds)
    callback = GreedyEvaluation(lambda: env_for(exp, setting, seed=None), seeds, every=evaluation["every"])
    records = fit(agent, env, steps, callbacks=[callback])
    return {"records": records,
            "greedy": {"before": before, "after": after, "curve": [{"step": 0, **after}] + callback.results}}


# ---------------------------------------------------------------------------------------------
# The command line every RL experiment script shares
def main(doc: str, experiment: str, exp: dict, arms: Sequence[str], argv: Optional[Sequence[str]],
         steps: int, runs: int, at: Sequence[int], title: str, smooth: int = 10) -> dict:
    """Parse the options, run every arm, print the table, draw the plot; returns the JSON and PNG paths.

    ``--old-steps`` (default: ``--steps``) sets phase 1; ``--steps`` is phase 2.
    ``at``: the steps shown in the table (the original report's checkpoints).
    """
    import functools
    import sys

    from examples.experiments import runner

    parser = runner.arg_parser(doc, arms, steps=steps, runs=runs, experiment=experiment)
    parser.add_argument("--old-steps", type=int, default=None,
                        help="phase-1 training steps of the old agent (default: --steps)")
    parser.add_argument("--eval-every", type=int, default=500, metavar="N",
                        help="greedy evaluation every N phase-2 steps, and of the old and the new agent right before "
                             "phase 2 (default 500; 0: none, as in results saved before it existed)")
    parser.add_argument("--eval-episodes", type=int, default=10, metavar="K",
                        help="episodes per greedy evaluation, from K fixed seeded resets (default 10)")
    args = parser.parse_args(argv)
    old_steps = args.old_steps or args.steps
    evaluation = evaluation_settings(args.eval_every, args.eval_episodes)
    cache = str(args.out / experiment / "old_agents")  # shared by every --name; keyed by settings
    print(f"{experiment}: arms {', '.join(args.arms)}; {args.runs} runs each (seeds {args.seed}–"
          f"{args.seed + args.runs - 1}); phase 1 {old_steps} steps (cached in {cache}), phase 2 {args.steps} "
          f"steps; jobs={args.jobs}")
    config = {**exp, "agent": agent_settings(exp), "old_steps": old_steps, "phase2_steps": args.steps,
              "command": " ".join(["python", sys.argv[0]] + list(argv if argv is not None else sys.argv[1:]))}
    if evaluation is not None:  # absent without evaluation: results saved before it still resume
        config["greedy_eval"] = evaluation
    path = runner.run(
        args.name, functools.partial(run_one, exp=exp, old_steps=old_steps, cache=cache, evaluation=evaluation),
        args.arms, args.runs, args.steps, seed=args.seed, jobs=args.jobs, out=args.out, resume=args.resume,
        x="step", y="reward",
        config=config, prepare=functools.partial(prepare, exp=exp, old_steps=old_steps, cache=cache),
        plot_options={"title": title, "xlabel": f"phase-2 training steps (after {old_steps} steps of phase 1)",
                      "ylabel": "training episode reward", "smooth": smooth})
    results = runner.load(path)
    for seed, info in sorted(results["prepared"].items(), key=lambda kv: int(kv[0])):
        last = [r["reward"] for r in info["phase1"][-smooth:]]
        print(f"old agent, seed {seed}: {len(info['phase1'])} phase-1 episodes, last {len(last)} mean reward "
              f"{sum(last) / max(1, len(last)):.1f}{' (cached)' if info['cached'] else ''}")
    print()
    print(runner.summary(path, [c for c in at if c <= args.steps]))
    if evaluation is not None:
        print()
        print(greedy_summary(results))
    png = runner.plot(path)
    print(f"\nresults: {path}\nplot:    {png}")
    return {"json": path, "png": png}


def greedy_summary(results: dict) -> str:
    """Per arm: greedy mean return of the old agent before surgery, of the arm's agent right after it
    (before any training step), and the lowest and the last point of the phase-2 greedy curve; means over runs."""
    lines = [f"{results['experiment']}: greedy return over {results['config']['greedy_eval']['episodes']} fixed start "
             "states (mean over runs)",
             f"{'arm':24} {'runs':>4} {'before':>9} {'after':>9} {'lowest':>9} {'last':>9}"]
    for arm, runs in results["arms"].items():
        runs = [r for r in runs if "greedy" in r]
        if not runs:
            continue
        g = [r["greedy"] for r in runs]
        cols = [sum(x["before"]["mean"] for x in g), sum(x["after"]["mean"] for x in g),
                sum(min(c["mean"] for c in x["curve"]) for x in g), sum(x["curve"][-1]["mean"] for x in g)]
        lines.append(f"{arm:24} {len(g):>4} " + " ".join(f"{c / len(g):9.1f}" for c in cols))
    return "\n".join(lines)
