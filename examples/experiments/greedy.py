"""Retention, dip and steps-to-threshold: the greedy evaluations of a DQN experiment, in numbers and a plot.

Reads what :mod:`examples.experiments.dqn` saves per run (``"greedy": {"before", "after",
"curve"}``, every evaluation the mean greedy return over the same fixed start states) and the
config's ``greedy_eval`` (with ``random``: the mean return of uniformly random actions from those
start states). Keras-free: it runs on a saved ``results.json`` or ``docs/data/*.json.gz``.

**Retention** puts a greedy return ``x`` on the scale of the old agent it came from::

    retention(x) = (x - random) / (before - random)

1 (100 %) is the old agent's greedy return right before surgery, 0 is random play. Returns are
compared on this scale rather than as a plain ratio ``x / before`` because Acrobot's and
LunarLander's returns are negative; for CartPole (random ≈ 22) the two are close. An arm's
retention over several seeds is the ratio of the seed means (``sum(x - random) / sum(before -
random)``), with a 95 % percentile-bootstrap interval over seeds.

- **at surgery**: the retention of the greedy return right after surgery, before any training step.
- **dip**: the lowest retention of the seed-mean greedy curve at any later evaluation (phase-2
  steps ``every, 2·every, …``, up to the phase-2 length), and the step where it happens. A
  function-preserving edit aims at ≥ 95 % at surgery and a dip no lower than 95 %.
- **seeds < 95 %**: how many seeds' own curves fell below 95 % at least once (one seed's curve is
  noisier than the mean: 10 episodes per point).
- The ``old`` arm (the old agent training on, no surgery) measures the same on the same seeds: how
  much DQN's own instability moves a greedy curve, the yardstick for the surgery arms.
- **steps to threshold**: the first evaluation step at which a seed's greedy return reaches the
  experiment's ``threshold``; the median over seeds, and how many seeds reached it (seeds that
  never did count as "later than the last step" for the median).

Usage::

    python -m examples.experiments.greedy docs/data/retention/lunarlander_actions.json.gz [--markdown] [--plot out.png]
    python -m examples.experiments.greedy docs/data/retention/lunarlander_actions.json.gz --compare preserve scratch
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from examples.experiments.runner import band_of, bootstrap_ci, load

logger = logging.getLogger(__name__)

#: Retention a function-preserving edit aims for, at surgery and at every later evaluation.
GOAL = 0.95


def greedy_runs(results: dict, arm: str) -> list[dict]:
    """The runs of ``arm`` that carry greedy evaluations."""
    return [r for r in results["arms"].get(arm, []) if "greedy" in r]


def random_mean(results: dict) -> float:
    """The random policy's mean return on the evaluation start states (the 0 of retention)."""
    ev = results["config"].get("greedy_eval") or {}
    if "random" not in ev:
        raise ValueError(f"{results['experiment']}: the results hold no random-policy reference "
                         "(config.greedy_eval.random); rerun them with the current examples/experiments/dqn.py")
    return float(ev["random"]["mean"])


def phase2_steps(results: dict) -> int:
    """Phase 2's length: the arms' greedy curves are compared up to it (scratch trains longer)."""
    return int(results["config"].get("phase2_steps", results["config"]["steps"]))


def curve_matrix(runs: Sequence[dict], until: int) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values[runs, points])``: the greedy curves of ``runs`` at their common steps ≤ ``until``."""
    steps = sorted(set.intersection(*[{c["step"] for c in r["greedy"]["curve"]} for r in runs]))
    steps = np.array([s for s in steps if s <= until])
    values = np.array([[next(c["mean"] for c in r["greedy"]["curve"] if c["step"] == s) for s in steps] for r in runs])
    return steps, values


def _ratio(x: np.ndarray, before: np.ndarray, rnd: float) -> float:
    return float(np.sum(x - rnd) / np.sum(before - rnd))


def retention(results: dict | Path | str, arm: str, threshold: Optional[float] = None) -> Optional[dict]:
    """The retention figures of one arm (see the module docstring); ``None`` if it has no greedy runs.

    ``threshold`` (default: the config's ``threshold``, if any) is the greedy return whose first
    step per seed ``"threshold"`` reports.

    Returns:
        ``{"arm", "runs", "before": (mean, lo, hi), "after": (...), "at_surgery": (ratio, lo, hi),
        "dip": (ratio, lo, hi), "lowest": (the dip's greedy return, lo, hi), "dip_step", "seeds_below":
        count of seeds below GOAL at some later evaluation, "final": (mean, lo, hi) greedy return at
        the last phase-2 evaluation, "curve": (mean, lo, hi) mean of the greedy curve after step 0,
        "threshold": {...} or None}``.
    """
    res = load(results)
    runs = greedy_runs(res, arm)
    if not runs:
        return None
    rnd, until = random_mean(res), phase2_steps(res)
    before = np.array([r["greedy"]["before"]["mean"] for r in runs])
    after = np.array([r["greedy"]["after"]["mean"] for r in runs])
    steps, values = curve_matrix(runs, until)
    later = values[:, steps > 0]
    nan3 = (float("nan"),) * 3

    def mean_ci(v):
        return (float(np.mean(v)), *bootstrap_ci(v))

    def ratio_ci(fn):
        data = np.column_stack([before, after, later])
        return (fn(data), *bootstrap_ci(data, statistic=fn, resamples=2000))

    def at_surgery(d):
        return _ratio(d[:, 1], d[:, 0], rnd)

    def dip(d):
        return float(np.min((d[:, 2:] - rnd).sum(axis=0) / np.sum(d[:, 0] - rnd)))

    def lowest(d):
        return float(np.min(d[:, 2:].mean(axis=0)))

    out = {"arm": arm, "runs": len(runs), "before": mean_ci(before), "after": mean_ci(after),
           "at_surgery": ratio_ci(at_surgery), "dip": nan3, "lowest": nan3, "dip_step": None, "seeds_below": None,
           "final": mean_ci(values[:, -1]), "curve": nan3, "threshold": None}
    if later.shape[1]:  # none in runs shorter than one evaluation interval
        per_seed = (later - rnd) / (before[:, None] - rnd)
        mean_curve = (later - rnd).sum(axis=0) / np.sum(before - rnd)
        out.update(dip=ratio_ci(dip), lowest=ratio_ci(lowest),
                   dip_step=int(steps[steps > 0][int(np.argmin(mean_curve))]),
                   seeds_below=int((per_seed.min(axis=1) < GOAL).sum()), curve=mean_ci(later.mean(axis=1)))
    threshold = res["config"].get("threshold") if threshold is None else threshold
    if threshold is not None:
        out["threshold"] = steps_to(steps, values, float(threshold))
    return out


def steps_to(steps: np.ndarray, values: np.ndarray, threshold: float) -> dict:
    """Per run, the first step whose greedy return is ≥ ``threshold``: ``{"value", "reached", "runs",
    "median"}``; the median counts runs that never reached it as later than every step (``None`` if
    more than half never did)."""
    first = [int(steps[np.argmax(row >= threshold)]) if (row >= threshold).any() else None for row in values]
    reached = sorted(f for f in first if f is not None)
    n = len(first)
    ordered = reached + [np.inf] * (n - len(reached))
    median = float(np.median(ordered)) if n else float("nan")
    return {"value": threshold, "per_run": first, "reached": len(reached), "runs": n,
            "median": None if not np.isfinite(median) else median}


def equal_samples(results: dict | Path | str) -> Optional[dict]:
    """Scratch at equal total samples: its greedy return at the end of phase 1 + phase 2 steps
    (``(mean, lo, hi)`` over runs, and the step), or ``None`` when scratch did not run that long."""
    res = load(results)
    runs = [r for r in greedy_runs(res, "scratch") if "equal_samples" in r]
    if not runs:
        return None
    total = runs[0]["equal_samples"]["steps"]
    last = [max((c for c in r["greedy"]["curve"] if c["step"] <= total), key=lambda c: c["step"]) for r in runs]
    v = np.array([c["mean"] for c in last])
    return {"steps": int(last[0]["step"]), "runs": len(runs), "final": (float(v.mean()), *bootstrap_ci(v))}


def old_competence(results: dict | Path | str) -> dict:
    """How many seeds' old agents reached the experiment's ``competence`` (greedy return before surgery)."""
    res = load(results)
    befores = {r["seed"]: r["greedy"]["before"]["mean"] for arm in res["arms"] for r in greedy_runs(res, arm)}
    level = float(res["config"]["competence"])
    return {"level": level, "seeds": len(befores), "at_least": sum(v >= level for v in befores.values()),
            "before": sorted(befores.values())}


def paired(results: dict | Path | str, a: str, b: str) -> dict:
    """Arm ``a`` minus arm ``b`` on the greedy curves, seed by seed (the seeds both ran).

    Returns:
        ``{"a", "b", "seeds", "lowest": ..., "curve": ..., "final": ...}``, each ``{"mean", "ci",
        "ahead"}``: the difference of the seed's lowest greedy return after step 0, of its greedy
        curve mean after step 0, and of its last greedy return (all up to the phase-2 length), with
        a 95 % bootstrap interval over seeds and the count of seeds where ``a`` was higher.
    """
    res = load(results)
    until = phase2_steps(res)
    runs = {arm: {r["seed"]: r for r in greedy_runs(res, arm)} for arm in (a, b)}
    seeds = sorted(set(runs[a]) & set(runs[b]))
    if not seeds:
        raise ValueError(f"arms {a!r} and {b!r} share no seed with greedy evaluations in {res['experiment']}")
    measures = {}
    for arm in (a, b):
        steps, values = curve_matrix([runs[arm][s] for s in seeds], until)
        later = values[:, steps > 0]
        measures[arm] = {"lowest": later.min(axis=1), "curve": later.mean(axis=1), "final": values[:, -1]}
    out = {"a": a, "b": b, "seeds": seeds}
    for what in ("lowest", "curve", "final"):
        d = measures[a][what] - measures[b][what]
        out[what] = {"mean": float(d.mean()), "ci": bootstrap_ci(d), "ahead": int((d > 0).sum())}
    return out


def paired_text(d: dict) -> str:
    n = len(d["seeds"])
    lines = [f"{d['a']} − {d['b']}, greedy return, paired over {n} seeds:"]
    for what, label in (("lowest", "lowest"), ("curve", "curve mean"), ("final", "final")):
        m = d[what]
        lines.append(f"  {label:10} {m['mean']:+.1f} (95% CI {m['ci'][0]:+.1f} … {m['ci'][1]:+.1f}), "
                     f"{d['a']} higher at {m['ahead']} of {n} seeds")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Table and plot
def _pct(v: tuple) -> str:
    return "n/a" if not np.isfinite(v[0]) else f"{100 * v[0]:.0f} % ({100 * v[1]:.0f} … {100 * v[2]:.0f})"


def _ret(v: tuple) -> str:
    return "n/a" if not np.isfinite(v[0]) else f"{v[0]:.1f} ({v[1]:.1f} … {v[2]:.1f})"


def rows(results: dict | Path | str, arms: Optional[Sequence[str]] = None,
         threshold: Optional[float] = None) -> list[dict]:
    """:func:`retention` of every arm with greedy runs (of ``arms``, default all), in the results' order."""
    res = load(results)
    return [r for r in (retention(res, a, threshold) for a in (arms or list(res["arms"]))) if r is not None]


def retention_table(results: dict | Path | str, arms: Optional[Sequence[str]] = None, markdown: bool = False,
                    threshold: Optional[float] = None) -> str:
    """Per arm: greedy return before and right after surgery, retention at surgery and at the dip,
    seeds ever below 95 %, final greedy return and steps to the threshold (95 % bootstrap CIs over seeds)."""
    res = load(results)
    ev = res["config"]["greedy_eval"]
    threshold = res["config"].get("threshold") if threshold is None else threshold
    table = rows(res, arms, threshold)
    head = ["arm", "runs", "greedy before", "right after", "at surgery", "dip (step)", "lowest greedy", "seeds < 95 %",
            "greedy final", "greedy curve mean"] + ([f"steps to ≥ {threshold:g}"] if threshold is not None else [])
    body = []
    for r in table:
        row = [r["arm"], str(r["runs"]), _ret(r["before"]), _ret(r["after"]), _pct(r["at_surgery"]),
               _pct(r["dip"]) + ("" if r["dip_step"] is None else f" ({r['dip_step']})"), _ret(r["lowest"]),
               "n/a" if r["seeds_below"] is None else f"{r['seeds_below']} of {r['runs']}", _ret(r["final"]),
               _ret(r["curve"])]
        if threshold is not None:
            t = r["threshold"]
            median = "—" if t["median"] is None else f"{t['median']:.0f}"
            row.append(f"{median} ({t['reached']} of {t['runs']})")
        body.append(row)
    eq = equal_samples(res)
    note = (f"random play {random_mean(res):.1f} = 0 %, old agent before surgery = 100 %; greedy return over "
            f"{ev['episodes']} fixed start states every {ev['every']} steps, mean (95 % bootstrap CI over seeds)")
    if eq is not None:
        note += (f"; scratch at equal total samples ({eq['steps']} steps): greedy {_ret(eq['final'])}")
    competence = res["config"].get("competence")
    if competence is not None:
        c = old_competence(res)
        note += f"; old agents with a greedy return ≥ {competence:g} before surgery: {c['at_least']} of {c['seeds']}"
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        return "\n".join(lines + ["| " + " | ".join(b) + " |" for b in body])
    widths = [max(len(row[i]) for row in [head] + body) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in [head] + body]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join([f"{res['experiment']}: retention ({note})"] + lines)


def draw_curves(ax, res: dict, arms: Sequence[str]) -> list[float]:
    """Draw each arm's greedy curve over phase 2 on ``ax`` (seed mean, 95 % CI band), with the axes'
    labels; returns the old agents' greedy return before surgery of every run drawn."""
    until, befores = phase2_steps(res), []
    for arm in arms:
        runs = greedy_runs(res, arm)
        if not runs:
            continue
        befores += [r["greedy"]["before"]["mean"] for r in runs]
        steps, values = curve_matrix(runs, until)
        lo, hi = band_of(values, "ci")
        line, = ax.plot(steps, values.mean(axis=0), lw=1.6, marker=".", label=f"{arm} (n={len(runs)})")
        ax.fill_between(steps, lo, hi, color=line.get_color(), alpha=0.15, lw=0)
    old_steps = res["config"].get("old_steps")
    ax.set_xlabel(f"phase-2 training steps (after {f'{old_steps:,}' if old_steps else '?'} steps of phase 1)")
    ax.set_ylabel(f"greedy return, mean of {res['config']['greedy_eval']['episodes']} fixed start states")
    ax.grid(alpha=0.3)
    return befores


def save_figure(fig, ax, out: Path) -> Path:
    """Add the legend to ``ax``, write ``fig`` to ``out`` and close it."""
    import matplotlib.pyplot as plt

    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def plot(results_json: Path | str, out: Optional[Path | str] = None, arms: Optional[Sequence[str]] = None) -> Path:
    """The greedy curves per arm (seed mean, 95 % CI band) over phase 2, with the old agents' mean
    greedy return before surgery and the 95 % retention level; returns the PNG's path
    (default ``greedy.png`` beside the JSON)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results_json = Path(results_json)
    res = load(results_json)
    name = results_json.name.split(".")[0]
    if out is None:
        out = results_json.with_name("greedy.png" if name == "results" else f"{name}_greedy.png")
    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=120)
    before, rnd = float(np.mean(draw_curves(ax, res, arms or list(res["arms"])))), random_mean(res)
    ax.axhline(before, color="k", lw=1, ls="--", label=f"old agents before surgery ({before:.1f})")
    ax.axhline(rnd + GOAL * (before - rnd), color="k", lw=0.8, ls=":", label="95 % retention")
    ax.set_title(f"{res['plot'].get('title', res['experiment'])}\ngreedy policy, mean over seeds, band 95 % CI",
                 fontsize=10)
    return save_figure(fig, ax, Path(out))


def main(argv: Optional[Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(prog="python -m examples.experiments.greedy",
                                description="Retention table and greedy-curve plot of a saved DQN experiment.")
    p.add_argument("results", type=Path)
    p.add_argument("--arms", nargs="+", help="arms to show (default: all with greedy evaluations)")
    p.add_argument("--markdown", action="store_true")
    p.add_argument("--threshold", type=float, help="greedy return for 'steps to' (default: the experiment's)")
    p.add_argument("--compare", nargs="+", metavar="ARM",
                   help="A B [B ...]: arm A minus each arm B on the greedy curves, seed by seed")
    p.add_argument("--plot", type=Path, nargs="?", const=True, default=None,
                   help="also draw the greedy curves (to PLOT, or beside the results)")
    args = p.parse_args(argv)
    res = load(args.results)
    print(retention_table(res, args.arms, markdown=args.markdown, threshold=args.threshold))
    if args.compare:
        if len(args.compare) < 2:
            p.error("--compare needs an arm A and at least one arm B")
        print("\n".join(paired_text(paired(res, args.compare[0], b)) for b in args.compare[1:]))
    if args.plot is not None:
        print(f"wrote {plot(args.results, None if args.plot is True else args.plot, args.arms)}")


if __name__ == "__main__":
    main()
