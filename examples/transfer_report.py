"""Which transfer method wins: the tables and plots of docs/transfer.md, from the saved results.

Every task's transfer arms ran at the same seeds as its yardsticks (``old``, ``preserve``,
``original``, ``scratch``); this script compares all arms on those seeds only (paired), with the
greedy evaluation protocol of :mod:`examples.experiments.greedy`: greedy return right after the
change, the mean of the greedy curve over phase 2, the last greedy return, steps to a threshold,
and each arm minus ``scratch`` and minus ``preserve`` seed by seed (95 % bootstrap CIs over seeds).
Keras-free: it reads ``docs/data`` (or ``results/``).

Usage::

    python examples/transfer_report.py                 # every task found; markdown tables, PNGs in docs/img
    python examples/transfer_report.py --task acrobot_actions --data results/acrobot_actions/results.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from examples.experiments import greedy  # noqa: E402
from examples.experiments.runner import bootstrap_ci, load  # noqa: E402

#: Task → (title, threshold of "steps to", the arms' order). Thresholds: CartPole-v1's "solved" (475),
#: Acrobot's −100, LunarLander's 0 (a landing that does not crash), MinAtar's set in its section.
TASKS = {
    "cartpole_observations": ("CartPole, observations 2 → 4", 475),
    "cartpole_wider": ("CartPole, hidden layers 2×4 → 2×16", 475),
    "cartpole_deeper": ("CartPole, a hidden layer inserted (1×8 → 2×8)", 475),
    "acrobot_actions": ("Acrobot, actions 2 → 3", -100),
    "lunarlander_actions": ("LunarLander, actions 2 → 4", 0),
    "minatar_breakout_actions": ("MinAtar Breakout, actions 3 → 6", 10),
    "minatar_breakout_to_space_invaders": ("MinAtar, Breakout → Space Invaders", 10),
}
ORDER = ["old", "preserve", "original", "scratch", "positional", "freeze_all_but_final", "freeze_thaw",
         "reset_final", "noise", "copy_first_1", "copy_first_1_freeze", "copy_first_2", "copy_first_2_freeze",
         "copy_first_1_positional", "copy_last_1", "copy_last_1_freeze", "distill", "distill_annealed"]
YARDSTICKS = {"old", "preserve", "original", "scratch"}


def data_file(task: str, root: Path = ROOT / "docs" / "data") -> Optional[Path]:
    """The saved results of a task's comparison: ``transfer/<task>_transfer`` (all arms run together),
    else ``transfer/<task>``, else ``retention/<task>`` (the transfer arms added to the retention runs)."""
    for path in (root / "transfer" / f"{task}_transfer.json.gz", root / "transfer" / f"{task}.json.gz",
                 root / "retention" / f"{task}.json.gz"):
        if path.exists():
            return path
    return None


def comparison(results: dict) -> dict:
    """The results restricted to the comparison: the arms of :data:`ORDER` (the yardsticks and the methods;
    a task's ablations are left out), at the seeds every method arm ran."""
    methods = [a for a in ORDER if a not in YARDSTICKS and greedy.greedy_runs(results, a)]
    if not methods:
        raise ValueError(f"{results['experiment']}: no transfer-method arm has run")
    seeds = set.intersection(*[{r["seed"] for r in greedy.greedy_runs(results, a)} for a in methods])
    if not seeds:
        raise ValueError(f"{results['experiment']}: the method arms share no seed yet")
    arms = {a: [r for r in results["arms"][a] if r["seed"] in seeds] for a in ORDER if a in results["arms"]}
    return {**results, "arms": {a: runs for a, runs in arms.items() if runs}, "seeds_compared": sorted(seeds)}


def _ci(v: tuple, digits: int = 1) -> str:
    return "n/a" if not np.isfinite(v[0]) else f"{v[0]:.{digits}f} ({v[1]:.{digits}f} … {v[2]:.{digits}f})"


def _delta(d: dict, digits: int = 1) -> str:
    m = d["curve"]
    interval = f"({m['ci'][0]:+.{digits}f} … {m['ci'][1]:+.{digits}f})"
    return f"{m['mean']:+.{digits}f} {interval}, {m['ahead']}/{len(d['seeds'])}"


def verdict(d: dict) -> str:
    """``better`` / ``worse`` when the paired CI of the curve-mean difference excludes 0, else ``same``."""
    lo, hi = d["curve"]["ci"]
    return "better" if lo > 0 else "worse" if hi < 0 else "same"


def rows(res: dict, threshold: float) -> list[dict]:
    """One row per arm: retention figures, and the paired differences to scratch and to preserve."""
    out = []
    for arm in res["arms"]:
        r = greedy.retention(res, arm, threshold)
        if r is None:
            continue
        r["vs_scratch"] = greedy.paired(res, arm, "scratch") if arm != "scratch" and "scratch" in res["arms"] else None
        r["vs_preserve"] = (greedy.paired(res, arm, "preserve")
                            if arm != "preserve" and "preserve" in res["arms"] else None)
        r["distilled"] = [x["distilled"]["agreement"] for x in res["arms"][arm] if "distilled" in x]
        out.append(r)
    return out


def table(res: dict, threshold: float, digits: int = 1) -> str:
    """The markdown table of one task: arms × (right after, curve mean, final, steps to threshold,
    curve mean − scratch, curve mean − preserve)."""
    head = ["arm", "seeds", "greedy right after", "greedy curve mean", "greedy final",
            f"steps to ≥ {threshold:g} (reached)", "curve mean − scratch (seeds ahead)",
            "curve mean − preserve (seeds ahead)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows(res, threshold):
        t = r["threshold"]
        median = "—" if t["median"] is None else f"{t['median']:.0f}"
        cells = [r["arm"], str(r["runs"]), _ci(r["after"], digits), _ci(r["curve"], digits), _ci(r["final"], digits),
                 f"{median} ({t['reached']} of {t['runs']})",
                 "—" if r["vs_scratch"] is None else f"{_delta(r['vs_scratch'], digits)} {_mark(r['vs_scratch'])}",
                 "—" if r["vs_preserve"] is None else f"{_delta(r['vs_preserve'], digits)} {_mark(r['vs_preserve'])}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _mark(d: dict) -> str:
    return {"better": "▲", "worse": "▼", "same": ""}[verdict(d)]


def _seeds(seeds: list[int]) -> str:
    """"seed 0", "seeds 0–3" for a contiguous run, "seeds 0, 2, 3" otherwise."""
    if len(seeds) == 1:
        return f"seed {seeds[0]}"
    if seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"seeds {seeds[0]}–{seeds[-1]}"
    return "seeds " + ", ".join(map(str, seeds))


def notes(res: dict) -> str:
    """What else a reader needs: seeds, random play, the old agents, scratch at equal samples, distillation."""
    ev = res["config"]["greedy_eval"]
    parts = [_seeds(res["seeds_compared"]),
             f"phase 1 {res['config']['old_steps']:,} steps, phase 2 {greedy.phase2_steps(res):,}",
             f"greedy return over {ev['episodes']} fixed start states every {ev['every']:,} steps",
             f"random play {greedy.random_mean(res):.1f}"]
    before = np.array([r["greedy"]["before"]["mean"] for r in greedy.greedy_runs(res, next(iter(res["arms"])))])
    parts.append(f"old agents' greedy return before the change {_ci((before.mean(), *bootstrap_ci(before)))}")
    eq = greedy.equal_samples(res)
    if eq is not None:
        parts.append(f"scratch at equal total samples ({eq['steps']:,} steps) {_ci(eq['final'])}")
    agreement = [x["distilled"]["agreement"] for a in ("distill", "distill_annealed") for x in res["arms"].get(a, [])
                 if "distilled" in x]
    if agreement:
        parts.append(f"distilled students agree with the old agent's greedy action on {100 * min(agreement):.0f}–"
                     f"{100 * max(agreement):.0f} % of the distillation states")
    return "; ".join(parts) + "."


def forest(res: dict, title: str, out: Path) -> Path:
    """Each arm's greedy curve mean minus scratch's, paired over seeds, with its 95 % CI (a forest plot)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    arms = [a for a in res["arms"] if a != "scratch" and greedy.greedy_runs(res, a)]
    ds = [greedy.paired(res, a, "scratch") for a in arms]
    fig, ax = plt.subplots(figsize=(7, 0.35 * len(arms) + 1.4), dpi=120)
    for i, (arm, d) in enumerate(zip(arms, ds)):
        m, (lo, hi) = d["curve"]["mean"], d["curve"]["ci"]
        color = {"better": "tab:green", "worse": "tab:red", "same": "tab:gray"}[verdict(d)]
        ax.plot([lo, hi], [i, i], color=color, lw=2)
        ax.plot([m], [i], "o", color=color)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(range(len(arms)), arms, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("greedy curve mean − scratch's, paired over seeds (95 % CI)")
    ax.set_title(f"{title}: which method helps ({len(res['seeds_compared'])} seeds)", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def curves(res: dict, title: str, out: Path, arms: Sequence[str]) -> Path:
    """The greedy curves (seed mean, 95 % CI band) of some arms, on the comparison's seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5), dpi=120)
    greedy.draw_curves(ax, res, arms)
    ax.axhline(greedy.random_mean(res), color="k", lw=0.8, ls=":", label="random play")
    ax.set_title(f"{title}\nscratch, ours and the best and worst methods; mean over seeds, band 95 % CI", fontsize=10)
    return greedy.save_figure(fig, ax, out)


def highlights(res: dict) -> list[str]:
    """scratch, preserve, and the method arms with the highest and the lowest curve mean."""
    methods = [(greedy.retention(res, a)["curve"][0], a) for a in res["arms"] if a not in YARDSTICKS
               and greedy.greedy_runs(res, a)]
    methods.sort()
    picked = [a for a in ("scratch", "preserve") if a in res["arms"]]
    return picked + [a for _, a in (methods[-1:] + methods[:1]) if a not in picked]


def main(argv: Optional[Sequence[str]] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", nargs="+", choices=list(TASKS), default=list(TASKS), help="tasks (default: all found)")
    p.add_argument("--data", type=Path, help="results file of the one --task (default: docs/data)")
    p.add_argument("--img", type=Path, default=ROOT / "docs" / "img", help="where the PNGs go (default docs/img)")
    args = p.parse_args(argv)
    args.img.mkdir(parents=True, exist_ok=True)
    for task in args.task:
        path = args.data if args.data else data_file(task)
        if path is None:
            continue
        title, threshold = TASKS[task]
        try:
            res = comparison(load(path))
        except ValueError as err:
            print(f"## {title}\n\n{err}\n")
            continue
        digits = 2 if task.startswith("minatar") else 1
        pngs = [forest(res, title, args.img / f"transfer_{task}.png"),
                curves(res, title, args.img / f"transfer_{task}_greedy.png", highlights(res))]
        links = [png.relative_to(ROOT / "docs") if png.is_relative_to(ROOT / "docs") else png for png in pngs]
        images = " ".join(f"![{title}]({link})" for link in links)
        print(f"## {title}\n\n{notes(res)}\n\n{table(res, threshold, digits)}\n\n{images}\n")


if __name__ == "__main__":
    main()
