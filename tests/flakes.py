"""Flake detector: rerun test suites N times, each run in fresh pytest processes, and count failures per test.

A test that fails one run in ten blocks a landing one time in ten and teaches everyone to ignore red.
This reruns the suites whose outcome could depend on training dynamics or timing (by default the
keras-rl2 suite and the experiment smoke tests), each repetition in new processes as CI runs them,
and prints per test how often it failed. Exit status 1 when any test failed in any run.

With ``--fresh-clone`` each run is what CI does instead: a new clone of the committed ``HEAD`` in
a temporary folder, then ``make test`` there (a new ``.venv`` installed from the project's files),
and the failures counted from pytest's summary lines.

Usage::

    python tests/flakes.py --runs 10                  # keras-rl2 + example suites, 10 times
    python tests/flakes.py --runs 3 --suite all       # everything `make test` runs, 3 times
    python tests/flakes.py --runs 20 --suite rl -k distill   # extra arguments go to pytest
    python tests/flakes.py --runs 10 --fresh-clone    # 10 x (git clone + make test), as CI runs it
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BACKEND_TESTS = (ROOT / "tests" / "backend_tests.txt").read_text().split()  # the Makefile's list too

#: suite -> (pytest arguments, extra environment); each runs in a process of its own, as in `make test`.
SUITES = {
    "rl": (["tests/rl"], {}),
    "examples": (["tests/core/test_examples_mnist.py"], {}),
    "core": (["tests/core"], {}),
    "jax": (BACKEND_TESTS, {"KERAS_BACKEND": "jax"}),
    "torch": (BACKEND_TESTS, {"KERAS_BACKEND": "torch"}),
    "sb3": (["tests/sb3"], {"KERAS_BACKEND": "torch"}),
}
GROUPS = {"default": ["rl", "examples", "sb3"], "all": ["core", "rl", "jax", "torch", "sb3"]}


def run_suite(name: str, extra: list[str], folder: Path) -> tuple[dict[str, str], float, str]:
    """Run one suite in a fresh pytest process.

    Returns:
        ``{test id: "passed" | "failed" | "skipped"}``, the wall time in seconds, and a note: the
        tail of the output when pytest itself failed to produce a report (a crash, a collection
        error), else empty.
    """
    paths, env = SUITES[name]
    report = folder / f"{name}.xml"
    command = [sys.executable, "-m", "pytest", *paths, "-q", "-p", "no:cacheprovider", f"--junitxml={report}", *extra]
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **env},
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    outcomes: dict[str, str] = {}
    if report.exists():
        for case in ET.parse(report).getroot().iter("testcase"):
            test = f"{name}: {case.get('classname', '')}::{case.get('name', '')}"
            if case.find("failure") is not None or case.find("error") is not None:
                outcomes[test] = "failed"
            elif case.find("skipped") is not None:
                outcomes[test] = "skipped"
            else:
                outcomes[test] = "passed"
    crashed = proc.returncode not in (0, 1) or not outcomes
    if crashed:  # no per-test verdict: count the suite itself as a failing entry
        outcomes[f"{name}: <pytest exit {proc.returncode}>"] = "failed"
    return outcomes, seconds, (proc.stdout + proc.stderr)[-2000:] if crashed else ""


def run_fresh_clone(folder: Path) -> tuple[dict[str, str], float, str]:
    """Clone the committed ``HEAD`` into ``folder`` and run ``make test`` there, as CI does.

    Returns:
        ``{test id: "failed"}`` from pytest's ``FAILED``/``ERROR`` summary lines and
        ``{"make test: pytest run k": "passed"}`` for each pytest run that finished, the wall time,
        and a note: the passed counts, or the tail of the output when ``make test`` failed.
    """
    start = time.perf_counter()
    subprocess.run(["git", "clone", "-q", str(ROOT), str(folder)], check=True)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    proc = subprocess.run(["make", "-C", str(folder), "test"], env={**env, "CI": "true"}, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    out = proc.stdout + proc.stderr
    outcomes = {f"make test: {m.group(2)}": "failed" for m in re.finditer(r"^(FAILED|ERROR) (\S+)", out, re.M)}
    passed = re.findall(r"^=*\s*(\d+) passed.* in ", out, re.M)
    outcomes.update({f"make test: pytest run {i + 1}": "passed" for i in range(len(passed))})
    if proc.returncode != 0 and not any(o == "failed" for o in outcomes.values()):
        outcomes[f"make test: <exit {proc.returncode}>"] = "failed"
    shutil.rmtree(folder, ignore_errors=True)
    note = out[-3000:] if proc.returncode else "    passed per pytest run: " + ", ".join(passed)
    return outcomes, seconds, note


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="repetitions (default 10)")
    parser.add_argument("--suite", action="append", choices=[*SUITES, *GROUPS],
                        help="suites to rerun (repeatable; default: rl and examples; 'all': what make test runs)")
    parser.add_argument("--fresh-clone", action="store_true",
                        help="each run: clone HEAD into a temporary folder and run `make test` there, as CI does")
    args, extra = parser.parse_known_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.fresh_clone and (args.suite or extra):
        parser.error("--fresh-clone runs `make test` as it is: no --suite, no pytest arguments")
    suites = [s for group in (args.suite or ["default"]) for s in GROUPS.get(group, [group])]
    suites = ["make test"] if args.fresh_clone else list(dict.fromkeys(suites))

    try:
        from tqdm import tqdm
    except ImportError:  # the dev extra has tqdm; without it, one line per suite run
        tqdm = None
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # test -> [runs, failures]
    seconds: dict[str, list[float]] = defaultdict(list)
    total = args.runs * len(suites)
    bar = tqdm(total=total, unit="suite", desc="flakes") if tqdm else None
    with tempfile.TemporaryDirectory(prefix="flakes-") as tmp:
        for run in range(1, args.runs + 1):
            for name in suites:
                folder = Path(tmp) / f"run{run}"
                folder.mkdir(exist_ok=True)
                if args.fresh_clone:
                    outcomes, took, note = run_fresh_clone(folder / "clone")
                else:
                    outcomes, took, note = run_suite(name, extra, folder)
                seconds[name].append(took)
                failed = sorted(t for t, o in outcomes.items() if o == "failed")
                for test, outcome in outcomes.items():
                    if outcome != "skipped":
                        counts[test][0] += 1
                        counts[test][1] += outcome == "failed"
                tally = {o: sum(v == o for v in outcomes.values()) for o in ("passed", "failed", "skipped")}
                line = f"run {run}/{args.runs} {name}: " + ", ".join(f"{n} {o}" for o, n in tally.items() if n)
                line += f", {took:.0f} s"
                for test in failed:
                    line += f"\n    FAILED {test}"
                if note:
                    line += "\n" + note
                (bar.write if bar else print)(line)
                if bar:
                    bar.update()
    if bar:
        bar.close()

    flaky = {t: c for t, c in counts.items() if c[1]}
    what = "checks (pytest runs and failed tests)" if args.fresh_clone else "tests"
    where = "fresh clones" if args.fresh_clone else "fresh processes"
    print(f"\n{len(counts)} {what}, {args.runs} runs of {', '.join(suites)} in {where}")
    for name in suites:
        times = sorted(seconds[name])
        print(f"  {name}: median {times[len(times) // 2]:.0f} s, max {times[-1]:.0f} s per run")
    if not flaky:
        print(f"0 failures: every one passed in every run ({sum(c[0] for c in counts.values())} results)")
        return 0
    print(f"{len(flaky)} tests failed at least once:")
    width = max(map(len, flaky))
    for test, (runs, failures) in sorted(flaky.items(), key=lambda kv: -kv[1][1]):
        print(f"  {test:<{width}}  failed {failures} of {runs}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
