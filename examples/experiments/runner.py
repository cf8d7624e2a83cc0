"""The shared experiment runner: arms × runs in separate processes, results to JSON, plots from JSON.

An experiment script defines one module-level function (a spawned process must be able to import
it) that trains one arm once and returns its records::

    def run_one(arm: str, seed: int, steps: int) -> list[dict]:
        ...                      # e.g. [{"step": 213, "reward": 21.0}, ...]  (RL: one per episode)
        return records           #  or  [{"batch": 100, "accuracy": 0.83}, ...]  (one per evaluation)

``run_one`` may instead return ``{"records": [...], **more}``: ``more`` (JSON-able, e.g. the DQN
experiments' ``"greedy"`` evaluations) is saved in the run's entry beside ``"records"``.

and hands it to :func:`run`, which runs every arm ``runs`` times (run ``r`` of every arm uses seed
``seed + r``, so arms are compared on equal seeds), in ``jobs`` parallel processes, and writes
``<out>/<experiment>/results.json``. Everything after that reads the JSON: :func:`summary` makes the
table, :func:`plot` the PNG. The same from a shell::

    python -m examples.experiments.runner plot results/mnist_transfer/results.json
    python -m examples.experiments.runner summary results/mnist_transfer/results.json --at 500 1000
    python -m examples.experiments.runner compare results/mnist_transfer/results.json original scratch

Processes: each run gets a fresh process (``spawn`` context, one task per process where Python
allows it). Importing keras-rl2 disables eager execution for the whole process, so RL runs must
never share a process with Keras-3 code; a fresh process per run also keeps TensorFlow state from
leaking between runs. ``jobs=0`` runs everything in the calling process (for tests and debugging
of Keras-3-only experiments). What the workers print goes to ``<out>/<experiment>/workers.log``.

Ray (``run(..., ray="local")`` or a cluster address; ``--ray`` / ``--ray-address`` in the scripts):
the same runs as Ray tasks, each in a fresh Ray worker process, with the same seeds, JSON and
``resume``; only the executor differs.

The JSON file::

    {"experiment": "mnist_transfer",
     "config": {..., "arms": [...], "runs": 3, "steps": 4000, "seed": 0, "seeds": [0, 1, 2]},
     "plot": {"x": "batch", "y": "accuracy", "smooth": 1, "title": ..., "xlabel": ..., "ylabel": ...},
     "prepared": {"0": {...}, ...},                 # what prepare(seed) returned, if given
     "arms": {"scratch": [{"seed": 0, "seconds": 81.2, "records": [{"batch": 0, "accuracy": 0.17}, ...]},
                          ...], ...}}                # a run may hold more keys (see run_one above)
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import datetime as _dt
import json
import logging
import multiprocessing
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

import numpy as np

logger = logging.getLogger(__name__)

Record = dict
RunOne = Callable[[str, int, int], list]


# ---------------------------------------------------------------------------------------------
# Quiet TensorFlow (scripts only)
from keras_surgeon_rl.quiet import quiet_tensorflow  # noqa: E402,F401  (re-exported for the scripts)


# ---------------------------------------------------------------------------------------------
# Command line shared by the experiment scripts
def arg_parser(description: str, arms: Sequence[str], steps: int, runs: int = 2, jobs: int = 2,
               experiment: Optional[str] = None, more_arms: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The options every experiment script takes; a script adds its own to the returned parser.

    Args:
        description: the script's help text (its docstring).
        arms: the arms the script runs by default; ``--arms`` picks a subset.
        more_arms: arms ``--arms`` may also name, run only when named (e.g. the transfer methods).
        steps: default ``--steps`` (environment steps, or training batches).
        runs: default ``--runs`` per arm.
        jobs: default ``--jobs``.
        experiment: default ``--name`` (the results folder).
    """
    p = _Parser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(default_jobs=jobs)
    more = [a for a in more_arms if a not in arms]
    p.add_argument("--arms", nargs="+", default=list(arms), choices=list(arms) + more, metavar="ARM",
                   help=f"arms to run (default: all of {', '.join(arms)})"
                        + (f"; also {', '.join(more)}" if more else ""))
    p.add_argument("--runs", type=int, default=runs, help=f"runs per arm (default {runs})")
    p.add_argument("--steps", type=int, default=steps, help=f"training steps per run (default {steps})")
    p.add_argument("--seed", type=int, default=0, help="seed of the first run; run r uses seed + r (default 0)")
    p.add_argument("--jobs", type=int, default=None,
                   help=f"parallel processes (default {jobs}; 0 runs in this process, Keras-3 experiments only); "
                        "with --ray, the CPUs each task asks for (default 1)")
    p.add_argument("--ray", action="store_true",
                   help="run every (arm, seed) as a Ray task in a fresh worker process, on a local Ray instance "
                        "(install the 'cluster' extra)")
    p.add_argument("--ray-address", metavar="ADDRESS", default=os.environ.get("RAY_ADDRESS") or None,
                   help="join this Ray cluster (e.g. head-node:6379, or 'auto') instead of starting a local "
                        "instance; implies --ray (default: $RAY_ADDRESS)")
    p.add_argument("--out", type=Path, default=Path("results"), help="results root (default ./results)")
    if experiment is not None:
        p.add_argument("--name", default=experiment, help=f"results folder under --out (default {experiment})")
    p.add_argument("--resume", action="store_true",
                   help="keep the finished runs of an existing results.json with the same settings and run "
                        "only the missing ones (continue an interrupted experiment, or add runs or arms)")
    return p


class _Parser(argparse.ArgumentParser):
    """Fills in ``--jobs`` after parsing: the script's default, or 1 CPU per task on Ray."""

    def parse_args(self, args=None, namespace=None):
        parsed = super().parse_args(args, namespace)
        if parsed.jobs is None:
            parsed.jobs = 1 if (parsed.ray or parsed.ray_address) else parsed.default_jobs
        return parsed


def backend(args: argparse.Namespace) -> dict:
    """The :func:`run` keyword arguments that choose the executor, from :func:`arg_parser`'s options."""
    if args.ray or args.ray_address:
        return {"jobs": args.jobs, "ray": args.ray_address or "local"}
    return {"jobs": args.jobs}


# ---------------------------------------------------------------------------------------------
# Running
def run(experiment: str, run_one: RunOne, arms: Sequence[str], runs: int, steps: int, *, seed: int = 0,
        jobs: int = 2, out: Path | str = "results", x: str = "step", y: str = "reward",
        config: Optional[dict] = None, plot_options: Optional[dict] = None,
        prepare: Optional[Callable[[int], Any]] = None, fresh_process: bool = True,
        progress: bool = True, resume: bool = False, ray: Optional[str] = None) -> Path:
    """Run every arm ``runs`` times and save the records; returns the path of ``results.json``.

    Args:
        experiment: the results folder's name (``<out>/<experiment>/``).
        run_one: ``run_one(arm, seed, steps) -> list of records`` (or ``{"records": [...],
            **more}``, ``more`` saved in the run's entry); module-level (or a ``functools.partial``
            of one) so that spawned processes can import it. Each record is a dict holding at
            least the keys ``x`` and ``y``.
        arms: arm names, in the order tables and legends show them.
        runs: runs per arm; run ``r`` of every arm uses seed ``seed + r``.
        steps: passed to ``run_one``.
        seed: the first run's seed.
        jobs: parallel processes (``0``: everything in this process); with ``ray``, the CPUs each
            task asks for.
        out: the results root.
        x, y: the record keys plotted against each other (``"batch"``/``"accuracy"``,
            ``"step"``/``"reward"``).
        config: the experiment's settings, saved in the JSON beside the runner's own.
        plot_options: saved under ``"plot"``; :func:`plot` reads ``title``, ``xlabel``, ``ylabel``,
            ``smooth`` (trailing records averaged per point; e.g. 20 episodes for RL), ``band``
            (one of :data:`BANDS`) and ``zoom`` (a second panel for x up to this value).
        prepare: optional ``prepare(seed) -> JSON-able info``, run once per seed before that seed's
            runs (e.g. pre-train and cache the old network the arms share).
        fresh_process: give every run (and every ``prepare``) a process of its own. Required for
            keras-rl2 runs; a Keras-3-only experiment may pass ``False`` to let a worker process run
            task after task (saving TensorFlow's start-up per run); its ``run_one`` then clears the
            Keras session itself.
        progress: show a tqdm bar over finished runs.
        resume: if ``results.json`` exists, keep its finished runs and prepared seeds and run only
            the missing (arm, seed) pairs: an interrupted experiment continues, and a larger
            ``runs`` or a new arm adds to it. The saved settings must match (see
            :func:`resume_mismatch`; otherwise a ``ValueError`` says what differs, before anything
            runs). Saved runs of arms or seeds not requested are kept as they are, so ``arms``
            may be a subset: e.g. more seeds for the main arms only.
        ray: run every task as a Ray task in a fresh worker process (``max_calls=1``): ``"local"``
            starts a local Ray instance, any other value is a cluster address for ``ray.init``. Seeds,
            results and ``resume`` are the same as with the process pool.

    Returns:
        ``<out>/<experiment>/results.json``, rewritten after every finished run, so an interrupted
        experiment keeps what it finished.

    Example:
        >>> path = run("demo", run_one, ["old", "preserve"], runs=3, steps=10_000)
        >>> print(summary(path)); plot(path)
    """
    if runs < 1 or steps < 1:
        raise ValueError(f"runs and steps must be positive, got runs={runs}, steps={steps}")
    if not arms:
        raise ValueError("no arms to run")
    seeds = [seed + r for r in range(runs)]
    folder = Path(out) / experiment
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "results.json"
    results = {
        "experiment": experiment,
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
        "config": {**(config or {}), "arms": list(arms), "runs": runs, "steps": steps, "seed": seed,
                   "seeds": seeds, "jobs": jobs, "fresh_process": fresh_process},
        "environment": {"python": platform.python_version(), "numpy": np.__version__,
                        "machine": platform.machine(), "cpus": os.cpu_count(),
                        "worker_threads": _threads(jobs) if jobs > 0 else None},
        "plot": {"x": x, "y": y, "title": experiment, "xlabel": x, "ylabel": y, "smooth": 1, "band": "std",
                 **(plot_options or {})},
        "prepared": {},
        "arms": {arm: [] for arm in arms},
    }
    if resume and path.exists():
        _carry_over(load(path), results, path)
    _save(results, path)
    done = {(arm, r["seed"]) for arm, runs in results["arms"].items() for r in runs}
    # seed-major: a stopped experiment has whole seeds
    tasks = [(arm, s) for s in seeds for arm in arms if (arm, s) not in done]
    if done:
        logger.info("%s: resuming, %d runs kept, %d to run", experiment, len(done), len(tasks))
    logger.info("%s: %d arms x %d runs, %d steps, jobs=%d%s -> %s", experiment, len(arms), runs, steps, jobs,
                f", Ray at {ray}" if ray else "", path)
    if ray:
        results["config"]["ray"] = ray
        results["environment"]["worker_threads"] = max(1, jobs)
    log = None if ray else folder / "workers.log"  # Ray's workers log to Ray's session folder
    with (_ray_executor(ray, max(1, jobs)) if ray else _executor(jobs, fresh_process, log)) as pool:
        if prepare is not None:
            # every seed with runs to do, also one prepared before: what prepare caches (an old agent) may be
            # gone, and if it comes out different, new runs would not pair with the saved ones
            pending = {s for _, s in tasks}
            calls = {s: (prepare, s) for s in seeds if str(s) not in results["prepared"] or s in pending}
            for s, info in _gather(pool, calls, "prepare", progress, log):
                _check_prepared(results["prepared"].get(str(s)), info, s, path)
                results["prepared"][str(s)] = info
            _save(results, path)
        calls = {(arm, s): (_timed, run_one, arm, s, steps) for arm, s in tasks}
        for (arm, s), (result, seconds) in _gather(pool, calls, "runs", progress, log):
            extra = dict(result) if isinstance(result, dict) else {"records": result}
            records = extra.pop("records", None)
            _check_records(records, x, y, arm, s)
            results["arms"][arm].append({"seed": s, "seconds": round(seconds, 2), "records": records, **extra})
            results["arms"][arm].sort(key=lambda r: r["seed"])
            _save(results, path)
    return path


#: Settings a resumed experiment may change: which arms and seeds run, and how.
RESUMABLE_KEYS = frozenset({"arms", "runs", "seed", "seeds", "jobs", "command", "ray"})


#: Config keys holding one entry per arm (``{arm: settings}``): a resumed experiment may add arms to them.
PER_ARM_KEYS = frozenset({"specs", "options"})


def resume_mismatch(saved: dict, config: dict) -> list[str]:
    """The settings that differ between a saved ``config`` and a new one, ignoring :data:`RESUMABLE_KEYS`.

    The per-arm settings of :data:`PER_ARM_KEYS` are compared arm by arm for the saved arms (the saved
    ``arms`` list, else the arms the saved setting names; a missing setting is an empty one): a
    resumed experiment may add an arm with its spec or options, never change a saved arm's.

    Returns:
        ``["steps: saved 8000, now 4000", ...]``; empty when the runs of both can be pooled.
    """
    differ = []
    for k in sorted((set(saved) | set(config)) - RESUMABLE_KEYS):
        was, now = _jsonable(saved.get(k)), _jsonable(config.get(k))
        if k in PER_ARM_KEYS and isinstance(was or {}, dict) and isinstance(now or {}, dict):
            was, now = was or {}, now or {}
            differ += [f"{k}[{arm!r}]: saved {was.get(arm, '(none)')!r:.60}, now {now.get(arm, '(none)')!r:.60}"
                       for arm in sorted(saved.get("arms") or was) if was.get(arm) != now.get(arm)]
        elif was != now:
            differ.append(f"{k}: saved {saved.get(k, '(missing)')!r:.60}, now {config.get(k, '(missing)')!r:.60}")
    return differ


def _carry_over(saved: dict, results: dict, path: Path) -> None:
    """Move the finished runs and prepared seeds of ``saved`` into ``results`` (see ``run(resume=True)``)."""
    differ = resume_mismatch(saved.get("config", {}), results["config"])
    was = tuple(saved.get("plot", {}).get(k) for k in ("x", "y"))
    now = (results["plot"]["x"], results["plot"]["y"])
    if was != now:
        differ.append(f"recorded keys: saved {was}, now {now}")
    if differ:
        raise ValueError(f"cannot resume {path}: its settings differ ({'; '.join(differ)}). Run with the saved "
                         f"settings, or without --resume (or with another --name) to start a new experiment.")
    # runs of arms or seeds this call does not request are kept as saved (never dropped, never extended)
    kept = sorted({f"{arm}/seed {r['seed']}" for arm, runs in saved.get("arms", {}).items() for r in runs
                   if arm not in results["arms"] or r["seed"] not in results["config"]["seeds"]})
    if kept:
        logger.info("%s: keeping %d saved runs this call does not request (%s%s)", path, len(kept),
                    ", ".join(kept[:6]), ", …" if len(kept) > 6 else "")
    for arm, runs in saved.get("arms", {}).items():
        results["arms"][arm] = sorted(runs, key=lambda r: r["seed"])
    results["config"]["arms"] = list(results["arms"])
    seeds = set(results["config"]["seeds"]) | {r["seed"] for runs in results["arms"].values() for r in runs}
    results["config"]["seeds"] = sorted(seeds)
    results["prepared"] = {k: v for k, v in saved.get("prepared", {}).items() if int(k) in seeds}
    results["created"] = saved.get("created", results["created"])
    results["resumed"] = saved.get("resumed", []) + [_dt.datetime.now().isoformat(timespec="seconds")]


#: Keys of ``prepare``'s info that may differ between two preparations of the same seed (where a cache sits,
#: whether it was reused); every other key must come out the same when a resumed experiment prepares a seed again.
VOLATILE_PREPARED = frozenset({"cached", "path"})


def _check_prepared(saved: Optional[dict], info: Any, seed: int, path: Path) -> None:
    """Refuse to add runs to a seed whose preparation (e.g. the old agent's training) came out different now."""
    if not isinstance(saved, dict) or not isinstance(info, dict):
        return
    was = {k: v for k, v in saved.items() if k not in VOLATILE_PREPARED}
    now = {k: v for k, v in _jsonable(info).items() if k not in VOLATILE_PREPARED}
    if was != now:
        keys = sorted(k for k in set(was) | set(now) if was.get(k) != now.get(k))
        raise RuntimeError(
            f"cannot resume {path}: seed {seed} prepared again gives a different {', '.join(keys)} than the saved runs "
            "started from (another machine kind or code version trains a different old agent), so new runs of this "
            "seed would not pair with the saved ones. Run these seeds under another --name, or other --seed values.")


def _timed(run_one: RunOne, arm: str, seed: int, steps: int) -> tuple[list | dict, float]:
    start = time.perf_counter()
    result = run_one(arm, seed, steps)
    return _jsonable(result), time.perf_counter() - start


def _check_records(records: list, x: str, y: str, arm: str, seed: int) -> None:
    if not isinstance(records, list) or not records:
        raise ValueError(f"run_one({arm!r}, seed={seed}) returned {type(records).__name__} {records!r:.80}; "
                         f"it must return a non-empty list of records (dicts with keys {x!r} and {y!r})")
    bad = next((r for r in records if not isinstance(r, dict) or x not in r or y not in r), None)
    if bad is not None:
        raise ValueError(f"run_one({arm!r}, seed={seed}) returned the record {bad!r}; every record needs "
                         f"the keys {x!r} and {y!r}")


def _threads(jobs: int) -> int:
    return max(1, (os.cpu_count() or 1) // jobs)


def _thread_env(threads: int) -> dict:
    t = str(threads)
    return {"TF_NUM_INTRAOP_THREADS": t, "TF_NUM_INTEROP_THREADS": t, "OMP_NUM_THREADS": t}


#: Worker processes keep TensorFlow's C++ logging to errors; what they print goes to a log file.
QUIET_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3"}


#: Where the progress bars write while the workers' standard error goes to their log file.
_console = None


@contextlib.contextmanager
def _workers_log(log: Optional[Path]):
    """Spawned workers inherit this process's standard error: while the pool runs it is ``log``, so what
    TensorFlow, absl and keras-rl2 print from every worker (from its first import on) lands there; the
    progress bars keep the console."""
    global _console
    if log is None:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 2)
    os.close(fd)
    _console = os.fdopen(os.dup(saved), "w", buffering=1)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        _console.close()
        _console = None


@contextlib.contextmanager
def _executor(jobs: int, fresh_process: bool = True, log: Optional[Path] = None):
    """A pool of ``jobs`` ``spawn`` processes (a new one per task if ``fresh_process``), or ``None`` for
    ``jobs=0``. The workers' output goes to ``log`` (when given)."""
    if jobs <= 0:
        yield None
        return
    # Two processes on two cores each want every core: give each its share of threads.
    env = {**_thread_env(_threads(jobs)), **QUIET_ENV}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update({k: v for k, v in env.items() if saved[k] is None})  # spawned children inherit it
    kwargs = {}
    if fresh_process:
        if sys.version_info >= (3, 11):
            kwargs["max_tasks_per_child"] = 1
        else:
            logger.warning("Python < 3.11 cannot give each run a fresh process: worker processes run task after task")
    pool = cf.ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"), **kwargs)
    try:
        with _workers_log(log):
            try:
                yield pool
            except BaseException:
                pool.shutdown(wait=True, cancel_futures=True)
                raise
            else:
                pool.shutdown(wait=True)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)


class _RayPool:
    """``submit(fn, *args) -> concurrent.futures.Future`` on Ray: one task per call asking for ``cpus``
    CPUs, each in a worker process of its own (``max_calls=1``): keras-rl2's graph mode never meets
    Keras-3 code, and no task's random draws depend on what its worker ran before (measured: with
    workers reused, one MNIST run's first evaluation came out 0.150 on Ray and 0.178 in the pool)."""

    def __init__(self, ray, cpus: int, env: dict):
        self.ray, self.refs = ray, []
        self.task = ray.remote(max_calls=1, num_cpus=cpus, runtime_env={"env_vars": env})(_call)

    def submit(self, fn, *args) -> cf.Future:
        ref = self.task.remote(fn, *args)
        self.refs.append(ref)
        return ref.future()

    def cancel_all(self) -> None:
        for ref in self.refs:
            with contextlib.suppress(Exception):
                self.ray.cancel(ref, force=True)


def _call(fn, *args):
    return fn(*args)


@contextlib.contextmanager
def _ray_executor(address: str, cpus: int):
    """A :class:`_RayPool` on a local Ray instance (``address == "local"``) or the cluster at ``address``.

    The workers find this repository's code through ``PYTHONPATH`` (on a cluster, every node needs
    the same checkout at the same path), run with ``cpus`` threads each and log to Ray's session
    folder (``/tmp/ray/session_latest/logs`` on each node), not to the console."""
    try:
        import ray
    except ImportError:
        raise RuntimeError("--ray needs Ray: pip install -e '.[cluster]' (or pip install ray)") from None
    root = str(Path(__file__).resolve().parents[2])
    env = {**_thread_env(cpus), **QUIET_ENV,
           "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}
    started = not ray.is_initialized()
    if started:
        kwargs = {"address": None if address == "local" else address, "log_to_driver": False,
                  "include_dashboard": False, "logging_level": logging.WARNING}
        if address == "local":
            kwargs["num_cpus"] = os.cpu_count()
        ray.init(**kwargs)
    pool = _RayPool(ray, cpus, env)
    try:
        yield pool
    except BaseException:
        pool.cancel_all()
        raise
    finally:
        if started:
            ray.shutdown()


def _gather(pool, calls: dict, what: str, progress: bool, log: Optional[Path] = None) -> Iterable:
    """Yield ``(key, result)`` for ``calls = {key: (fn, *args)}`` as they finish, with a progress bar.

    Without a pool the calls run here, one after the other. The first failure stops the rest.
    """
    bar = _bar(len(calls), what, progress)
    try:
        if pool is None:
            for key, (fn, *args) in calls.items():
                try:
                    result = fn(*args)
                except Exception as e:
                    raise RuntimeError(f"{what}: the task {key!r} failed: {type(e).__name__}: {e}") from e
                bar.update(1)
                yield key, result
            return
        futures = {pool.submit(fn, *args): key for key, (fn, *args) in calls.items()}
        for fut in cf.as_completed(futures):
            key = futures[fut]
            try:
                result = fut.result()
            except Exception as e:
                for f in futures:
                    f.cancel()
                raise RuntimeError(f"{what}: the task {key!r} failed: {type(e).__name__}: {e} (the workers' "
                                   f"output: {log or 'the console'})") from e
            bar.update(1)
            yield key, result
    finally:
        bar.close()


def _bar(total: int, desc: str, enabled: bool):
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is optional: a silent stand-in
        enabled = False
    if not enabled:
        return _NoBar()
    return tqdm(total=total, desc=desc, unit="run", dynamic_ncols=True, smoothing=0, file=_console or sys.stderr)


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    return value


def _save(results: dict, path: Path) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(_jsonable(results), indent=1))
    tmp.replace(path)


def load(path: Path | str | dict) -> dict:
    """The results dict saved by :func:`run`, or a gzipped copy of it (``.json.gz``); a dict is passed through."""
    if isinstance(path, dict):
        return path
    path = Path(path)
    if path.suffix == ".gz":
        import gzip

        with gzip.open(path, "rt", encoding="utf-8") as f:
            return json.load(f)
    return json.loads(path.read_text())


# ---------------------------------------------------------------------------------------------
# Curves, table and plot — all from the saved results
def _series(run: dict, x: str, y: str) -> tuple[np.ndarray, np.ndarray]:
    recs = sorted(run["records"], key=lambda r: r[x])
    return np.array([r[x] for r in recs], float), np.array([r[y] for r in recs], float)


def value_at(xs: np.ndarray, ys: np.ndarray, at: float, smooth: int = 1) -> float:
    """The mean of the last ``smooth`` values recorded at or before ``at`` (NaN if none yet)."""
    k = int(np.searchsorted(xs, at, side="right"))
    if k == 0:
        return float("nan")
    return float(np.mean(ys[max(0, k - smooth):k]))


def curves(results: dict | Path | str, grid: Optional[Sequence[float]] = None, points: int = 100) -> dict:
    """Per arm, the runs' values on a common x grid: ``{arm: (grid, values[runs, len(grid)])}``.

    When every run of an arm recorded the same x values (evaluation points), those are the grid;
    otherwise (episodes end at different steps) ``points`` evenly spaced x values, each taking the
    mean of the ``smooth`` records at or before it.
    """
    res = load(results)
    p = res["plot"]
    x, y, smooth = p["x"], p["y"], int(p.get("smooth", 1))
    out = {}
    for arm, runs in res["arms"].items():
        if not runs:
            continue
        series = [_series(r, x, y) for r in runs]
        g = np.asarray(grid if grid is not None else _grid(series, smooth, points), float)
        values = np.array([[value_at(xs, ys, v, smooth) for v in g] for xs, ys in series])
        out[arm] = (g, values)
    return out


def _grid(series: list, smooth: int, points: int) -> np.ndarray:
    """The x values to compare runs on: their own when every run recorded the same ones and nothing
    is smoothed (evaluation points), otherwise ``points`` evenly spaced up to the last x recorded."""
    if smooth == 1 and all(np.array_equal(xs, series[0][0]) for xs, _ in series):
        return series[0][0]
    hi = max(xs[-1] for xs, _ in series)
    return np.linspace(hi / points, hi, points)


def _final(run: dict, x: str, y: str, smooth: int) -> float:
    xs, ys = _series(run, x, y)
    return value_at(xs, ys, xs[-1], smooth)


def summary_rows(results: dict | Path | str, checkpoints: Sequence[float] = (), interval: str = "std") -> list[dict]:
    """Per arm: runs, and the mean with its spread over runs of the value at each checkpoint, at the
    end, and over the curve.

    ``curve`` is the mean over the whole curve (the area under it divided by its length), a
    single number for how fast an arm learns. ``interval`` ``"std"``: each entry is ``(mean,
    standard deviation)``; ``"ci"``: ``(mean, low, high)``, a 95 % bootstrap interval of the mean
    over runs (:func:`bootstrap_ci`).
    """
    if interval not in ("std", "ci"):
        raise ValueError(f"interval must be 'std' or 'ci', got {interval!r}")
    res = load(results)
    p = res["plot"]
    x, y, smooth = p["x"], p["y"], int(p.get("smooth", 1))

    def spread(vals: np.ndarray) -> tuple:
        vals = vals[np.isfinite(vals)]
        if not len(vals):
            return (float("nan"),) * (2 if interval == "std" else 3)
        if interval == "std":
            return float(vals.mean()), float(vals.std())
        return (float(vals.mean()), *bootstrap_ci(vals))

    rows, per_arm = [], curves(res)
    for arm, runs in res["arms"].items():
        if not runs:
            continue
        row: dict = {"arm": arm, "runs": len(runs), "at": {}}
        for c in checkpoints:
            row["at"][c] = spread(np.array([value_at(*_series(r, x, y), c, smooth) for r in runs]))
        row["final"] = spread(np.array([_final(r, x, y, smooth) for r in runs]))
        row["curve"] = spread(np.nanmean(per_arm[arm][1], axis=1))
        rows.append(row)
    return rows


def summary(results: dict | Path | str, checkpoints: Sequence[float] = (), markdown: bool = False,
            digits: int = 3, interval: str = "std") -> str:
    """The summary table (text, or Markdown for docs): per arm, mean ± std over runs, or (``interval="ci"``)
    the mean and its 95 % bootstrap interval over runs.

    Args:
        results: the results dict or the path of ``results.json``.
        checkpoints: x values (steps or batches) at which to show the value recorded at or before.
        markdown: a Markdown table instead of aligned text.
        digits: decimals shown.
        interval: ``"std"`` or ``"ci"`` (see :func:`summary_rows`).
    """
    res = load(results)
    p = res["plot"]
    rows = summary_rows(res, checkpoints, interval)

    def fmt(v):
        if not np.isfinite(v[0]):
            return "n/a"
        if interval == "std":
            return f"{v[0]:.{digits}f} ± {v[1]:.{digits}f}"
        return f"{v[0]:.{digits}f} ({v[1]:.{digits}f} … {v[2]:.{digits}f})"

    head = ["arm", "runs"] + [f"{p['x']} {_num(c)}" for c in checkpoints] + ["final", "curve mean"]
    body = [[r["arm"], str(r["runs"])] + [fmt(r["at"][c]) for c in checkpoints] + [fmt(r["final"]), fmt(r["curve"])]
            for r in rows]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
        lines += ["| " + " | ".join(b) + " |" for b in body]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in [head] + body) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in [head] + body]
    lines.insert(1, "  ".join("-" * w for w in widths))
    what = "mean ± std over runs" if interval == "std" else "mean (95 % bootstrap CI over runs)"
    title = f"{res['experiment']}: {p['y']} ({what})"
    return "\n".join([title] + lines)


def bootstrap_ci(values: Sequence[float] | np.ndarray, statistic: Callable = np.mean, resamples: int = 10_000,
                 level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """A percentile-bootstrap interval of ``statistic`` over the first axis of ``values`` (runs).

    ``statistic(sample)`` gets ``values`` resampled along axis 0 (runs drawn with replacement) and
    returns a number; ``resamples`` draws from a generator seeded with ``seed``, so the same data
    give the same interval. NaN for no values; a single run gives ``(x, x)``.

    Example:
        >>> bootstrap_ci([1.0, 2.0, 3.0, 4.0])     # the mean's 95 % interval over four runs
        (1.5, 3.5)
    """
    values = np.asarray(values, float)
    if len(values) == 0:
        return float("nan"), float("nan")
    picks = np.random.default_rng(seed).integers(0, len(values), (resamples, len(values)))
    if statistic is np.mean and values.ndim == 1:
        draws = values[picks].mean(axis=1)  # the common case, vectorized
    else:
        draws = np.array([statistic(values[p]) for p in picks])
    tail = (1 - level) / 2 * 100
    return float(np.percentile(draws, tail)), float(np.percentile(draws, 100 - tail))


def paired(results: dict | Path | str, a: str, b: str, points: int = 100, resamples: int = 10_000) -> dict:
    """Arm ``a`` minus arm ``b``, seed by seed (runs of equal seed share the old network and the data).

    For each seed both arms ran: the difference of the curve means (on one x grid for both arms)
    and of the final values. Their mean comes with a 95 % percentile-bootstrap interval over seeds
    (``resamples`` draws, fixed generator) and the count of seeds where ``a`` was ahead.

    Returns:
        ``{"a", "b", "seeds": [...], "curve": {"diffs", "mean", "ci", "ahead"}, "final": {...}}``

    Example:
        >>> d = paired("results/cartpole_deeper/results.json", "preserve", "scratch")
        >>> d["curve"]["mean"], d["curve"]["ci"], d["curve"]["ahead"]
    """
    res = load(results)
    p = res["plot"]
    x, y, smooth = p["x"], p["y"], int(p.get("smooth", 1))
    for arm in (a, b):
        if not res["arms"].get(arm):
            raise ValueError(f"no runs of arm {arm!r} in {res['experiment']}; arms with runs: "
                             f"{', '.join(k for k, v in res['arms'].items() if v)}")
    runs = {arm: {r["seed"]: r for r in res["arms"][arm]} for arm in (a, b)}
    seeds = sorted(set(runs[a]) & set(runs[b]))
    if not seeds:
        raise ValueError(f"arms {a!r} and {b!r} share no seed in {res['experiment']}")
    series = {arm: {s: _series(runs[arm][s], x, y) for s in seeds} for arm in (a, b)}
    grid = _grid([sr for arm in (a, b) for sr in series[arm].values()], smooth, points)  # one grid for both

    def stats(diffs: np.ndarray) -> dict:
        return {"diffs": diffs.tolist(), "mean": float(diffs.mean()), "ci": bootstrap_ci(diffs, resamples=resamples),
                "ahead": int((diffs > 0).sum())}

    with _no_empty_warnings():
        area = {arm: np.array([np.nanmean([value_at(*series[arm][s], g, smooth) for g in grid]) for s in seeds])
                for arm in (a, b)}
    final = {arm: np.array([_final(runs[arm][s], x, y, smooth) for s in seeds]) for arm in (a, b)}
    return {"a": a, "b": b, "seeds": seeds, "curve": stats(area[a] - area[b]), "final": stats(final[a] - final[b])}


def paired_text(d: dict, digits: int = 3) -> str:
    """One line per measure for :func:`paired`'s result."""
    n = len(d["seeds"])
    lines = [f"{d['a']} − {d['b']}, paired over {n} seeds:"]
    for what in ("curve", "final"):
        m = d[what]
        lo, hi = m["ci"]
        lines.append(f"  {'curve mean' if what == 'curve' else 'final':10} {m['mean']:+.{digits}f} "
                     f"(95% CI {lo:+.{digits}f} … {hi:+.{digits}f}), {d['a']} ahead at {m['ahead']} of {n} seeds")
    return "\n".join(lines)


def _num(c: float) -> str:
    return str(int(c)) if float(c).is_integer() else str(c)


#: Plot bands: a 95 % bootstrap interval of the mean, ± one standard deviation, the runs' range.
BANDS = ("ci", "std", "minmax")


def band_of(values: np.ndarray, band: str, resamples: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Lower and upper edge per column of ``values`` (runs × points) for a plot band (see :data:`BANDS`)."""
    if band == "std":
        mean, std = np.nanmean(values, axis=0), np.nanstd(values, axis=0)
        return mean - std, mean + std
    if band == "minmax":
        return np.nanmin(values, axis=0), np.nanmax(values, axis=0)
    picks = np.random.default_rng(0).integers(0, len(values), (resamples, len(values)))
    draws = np.nanmean(values[picks], axis=1)  # resamples × points
    return np.nanpercentile(draws, 2.5, axis=0), np.nanpercentile(draws, 97.5, axis=0)


def plot(results_json: Path | str, out: Optional[Path | str] = None, band: Optional[str] = None,
         zoom: Optional[float] = None) -> Path:
    """Draw mean and band per arm against x from the saved ``results.json``; returns the PNG's path.

    Args:
        results_json: the path ``run`` returned.
        out: the PNG path (default: ``plot.png`` beside the JSON).
        band: ``"ci"`` (a 95 % bootstrap interval of the mean over runs), ``"std"`` (mean ± one
            standard deviation) or ``"minmax"`` (the runs' range); default from the JSON's plot options.
        zoom: if given (or set in the JSON's plot options), a second panel shows x from 0 to
            ``zoom`` (the early phase, where transfer shows).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    results_json = Path(results_json)
    res = load(results_json)
    p = res["plot"]
    band = band or p.get("band", "std")
    zoom = zoom if zoom is not None else p.get("zoom")
    if band not in BANDS:
        raise ValueError(f"band must be one of {', '.join(BANDS)}, got {band!r}")
    out = Path(out) if out is not None else results_json.with_name("plot.png")
    panels = 2 if zoom else 1
    fig, axes = plt.subplots(1, panels, figsize=(7.5 if panels == 1 else 12, 4.5), dpi=120, squeeze=False)
    data = curves(res)
    for k, ax in enumerate(axes[0]):
        for arm, (g, values) in data.items():
            # a mean over runs starts where every run has a value: before that it would average only
            # the runs whose first episodes ended soonest (short ones: CartPole's worst, Acrobot's best)
            keep = np.isfinite(values).all(axis=0) & (g <= zoom if k == 1 else True)
            with np.errstate(all="ignore"), _no_empty_warnings():
                mean = np.nanmean(values, axis=0)
                lo, hi = band_of(values, band)
            line, = ax.plot(g[keep], mean[keep], label=f"{arm} (n={values.shape[0]})", lw=1.6, marker="." if k else None)
            ax.fill_between(g[keep], lo[keep], hi[keep], color=line.get_color(), alpha=0.18, lw=0)
        ax.set_xlabel(p.get("xlabel", p["x"]))
        ax.set_ylabel(p.get("ylabel", p["y"]))
        ax.grid(alpha=0.3)
        if k == 1:
            ax.set_title(f"zoom: {p['x']} ≤ {_num(zoom)}", fontsize=10)
    axes[0][0].legend(fontsize=8, loc="best")
    what = {"std": "± 1 std", "minmax": "min–max", "ci": "95 % CI of the mean"}[band]
    smooth = int(p.get("smooth", 1))
    title = (f"{p.get('title', res['experiment'])}\nmean over runs, band {what}"
             + (f", trailing mean of {smooth} records" if smooth > 1 else ""))
    if panels == 1:
        axes[0][0].set_title(title, fontsize=10)
    else:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


@contextlib.contextmanager
def _no_empty_warnings():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


# ---------------------------------------------------------------------------------------------
def main(argv: Optional[Sequence[str]] = None) -> None:
    """``plot`` or ``summary`` of a saved ``results.json``."""
    p = argparse.ArgumentParser(prog="python -m examples.experiments.runner",
                                description="Plot or tabulate a saved experiment (results.json).")
    sub = p.add_subparsers(dest="command", required=True)
    pp = sub.add_parser("plot", help="draw the PNG from results.json")
    pp.add_argument("results", type=Path)
    pp.add_argument("--out", type=Path, help="PNG path (default: plot.png beside the JSON)")
    pp.add_argument("--band", choices=list(BANDS))
    pp.add_argument("--zoom", type=float, help="add a panel showing x from 0 to ZOOM")
    ps = sub.add_parser("summary", help="print the summary table")
    ps.add_argument("results", type=Path)
    ps.add_argument("--at", type=float, nargs="*", default=[], help="checkpoints (x values)")
    ps.add_argument("--markdown", action="store_true")
    ps.add_argument("--ci", action="store_true", help="95 %% bootstrap intervals of the means instead of ± std")
    pc = sub.add_parser("compare", help="arm A minus arm B, seed by seed, with a bootstrap interval")
    pc.add_argument("results", type=Path)
    pc.add_argument("a", help="arm A")
    pc.add_argument("b", nargs="+", help="arm(s) B")
    for sp in (ps, pc):
        sp.add_argument("--digits", type=int, default=3, help="decimals shown (default 3)")
    args = p.parse_args(argv)
    if args.command == "plot":
        print(f"wrote {plot(args.results, args.out, args.band, args.zoom)}")
    elif args.command == "compare":
        res = load(args.results)  # read once for every arm B
        print("\n".join(paired_text(paired(res, args.a, b), args.digits) for b in args.b))
    else:
        print(summary(args.results, args.at, markdown=args.markdown, digits=args.digits,
                      interval="ci" if args.ci else "std"))


if __name__ == "__main__":
    main()
