#!/usr/bin/env python
"""Benchmark: the cost of ``surgeon.transplant`` against the floor, from tiny Q-networks to 30M parameters.

For each model (CartPole MLP, Nature-DQN CNN, keras-rl2's Atari network, a wide 8 x 2048 MLP, a
ResNet-style CNN with BatchNormalization and Add, and keras.applications ResNet50, EfficientNetB0 and
VGG16 at 224 x 224) and each Keras flavour (Keras 3, tf_keras in eager mode), three methods do the
same job:

* ``ours``: ``surgeon.transplant(old_model, spec)`` for a typical edit (add an input feature or
  channel, widen a hidden layer, add an output); also timed stage by stage (read / plan / build /
  fill / other) by making transplant's calls one by one.
* ``clone``: the floor for building a model and loading weights into it: ``clone_model(new_model)``
  of the *same new architecture* (the model ``transplant`` returns) plus ``set_weights(arrays)``.
* ``numpy``: the floor for touching every weight once: a plain NumPy copy of all the new model's
  arrays.

A 200-layer Dense MLP of 8 units (``deep_narrow``) measures the per-layer constant of the cost,
and a least-squares fit (time = a + b·parameters + c·layers over the models measured, per flavour)
gives the same constant from all models.

End-to-end figures (``E2E``): ``resume_dqn`` (old keras-rl2 agent -> new agent ready to ``fit``,
keras-rl2's Atari network with a 5th frame and a 5th action) against building and compiling a fresh
``DQNAgent`` of the new architecture, in a keras-rl2 process of its own (tf_keras, graph mode); and
the CLI's ``transplant`` (load + surgery + save, through ``keras_surgeon_rl.cli.main`` in process)
against load + save of the model it reads and of the model it writes.

Time: the median of ``--runs`` runs of each method after a warm-up run, interleaved in one process
(one run of every method per round, the order rotating), so background load hits all methods alike.
Memory: in a fresh process per (model, flavour) (forked from a server process that has imported
Keras and the library and run nothing else, so the ~7 s import is paid once per flavour), before
the timed runs, for each method in turn
(ours first, then clone+set, then the NumPy copy) after a warm-up run of it, the peak resident memory of one run
above the level before it (VmRSS before; VmHWM after resetting it through
``/proc/self/clear_refs``), and for models under 1 MB of weights the peak of traced NumPy/Python
allocations (``tracemalloc``; the floors' only up to 50 layers). The stage-by-stage times come from
the first 3 rounds. The workers pin glibc's mmap threshold and turn TensorFlow's oneDNN mode off, so freed blocks go back to
the OS instead of being silently reused by the measured run.

Usage::

    .venv/bin/python bench/surgery.py                     # everything (make bench)
    .venv/bin/python bench/surgery.py --quick             # smoke run of every part: CartPole, deep_narrow,
                                                          # end-to-end figures on CartPole; 2 runs
    .venv/bin/python bench/surgery.py --no-e2e            # the model table only
    .venv/bin/python bench/surgery.py --models nature_dqn resnet --flavours keras3 --runs 7
    .venv/bin/python bench/surgery.py --models dqn_atari resnet50 efficientnetb0 vgg16 --flavours keras3
    .venv/bin/python bench/surgery.py --profile wide_mlp  # cProfile of one transplant per flavour

Writes ``results/bench/surgery.json`` and ``results/bench/surgery.md`` (``surgery-quick.*`` for
``--quick``), prints the Markdown table and checks the goals of issue #19 (time ≤ 0.6 × clone+set
from 1M parameters, ≤ 1.0 × below; peak extra memory ≤ 1.5 × the new model's weight bytes), then
the end-to-end table and the per-layer constant.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's package, not an installed one (workers get PYTHONPATH too)
MODELS = ["cartpole", "deep_narrow", "nature_dqn", "dqn_atari", "wide_mlp", "resnet", "resnet50", "efficientnetb0",
          "vgg16"]
#: End-to-end figures: (kind, model, flavour). ``resume_dqn`` runs under keras-rl2 (tf_keras, graph mode).
#: (The wide MLP's CLI figure in tf_keras, 0.96x, took 145 s of a 31-minute run: saving 117 MB through
#: tf_keras; Keras 3's figure for the same model stays.)
E2E = [("resume_dqn", "dqn_atari", "tf_keras"), ("cli", "nature_dqn", "keras3"), ("cli", "nature_dqn", "tf_keras"),
       ("cli", "wide_mlp", "keras3")]
E2E_QUICK = [("resume_dqn", "cartpole", "tf_keras"), ("cli", "cartpole", "keras3"), ("cli", "cartpole", "tf_keras")]
QUICK_MODELS = ["cartpole", "deep_narrow"]
FLAVOURS = ["keras3", "tf_keras"]
METHODS = ["ours", "clone", "numpy"]
MARK = "BENCH_RESULT "
DONE = "BENCH_JOB_DONE "
#: Below this many bytes of weights the memory goal is not judged (RSS moves in 4 KB pages).
SMALL_WEIGHTS = 2 ** 20
#: The stage-by-stage timing (a profile aid, not a goal) runs in this many rounds at most.
STAGED_RUNS = 3
#: The floors' traced peaks are measured only for small models of at most this many layers: tracing
#: a 200-layer model's Python costs ~20 s a run, and only ours' traced peak is compared there.
TRACE_FLOORS_MAX_LAYERS = 50
#: Fixed glibc mmap threshold in the workers: blocks above it are mmap'ed and returned to the OS
#: when freed, so RSS deltas measure live memory instead of the allocator's earlier history.
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072",
              # with oneDNN on, TensorFlow's CPU allocator keeps freed blocks and reuses them, so memory
              # freed by the set-up (or the warm-up run) would hide part of the measured run's peak
              "TF_ENABLE_ONEDNN_OPTS": "0"}


# ------------------------------------------------------------------------------------------------
# The models and their edits
# ------------------------------------------------------------------------------------------------
def cartpole(K):
    """CartPole Q-network 4-16-16-2 (Sequential). Edit: 5th observation, widen h0 to 24, 3rd action."""
    model = K.Sequential([
        K.Input((4,), name="obs"),
        K.layers.Dense(16, activation="relu", name="h0"),
        K.layers.Dense(16, activation="relu", name="h1"),
        K.layers.Dense(2, name="q"),
    ], name="cartpole")
    spec = {"inputs": {"old": ["x", "x_dot", "theta", "theta_dot"],
                       "new": ["x", "x_dot", "theta", "theta_dot", "wind"]},
            "units": {"h0": 24},
            "outputs": {"old": ["left", "right"], "new": ["left", "right", "stay"]}}
    return model, spec


def nature_dqn(K, n_actions=6):
    """Nature DQN (Mnih et al. 2015). Edit: 5th frame channel, c3 64 -> 80 filters (through Flatten:
    fc's kernel goes from 3136 to 3920 rows), one more action."""
    inp = K.Input((84, 84, 4), name="frames")
    x = K.layers.Conv2D(32, 8, strides=4, activation="relu", name="c1")(inp)
    x = K.layers.Conv2D(64, 4, strides=2, activation="relu", name="c2")(x)
    x = K.layers.Conv2D(64, 3, strides=1, activation="relu", name="c3")(x)
    x = K.layers.Flatten(name="flat")(x)
    x = K.layers.Dense(512, activation="relu", name="fc")(x)
    model = K.Model(inp, K.layers.Dense(n_actions, name="q")(x), name="nature_dqn")
    spec = {"inputs": {"old": [0, 1, 2, 3], "new": [0, 1, 2, 3, 4]},
            "units": {"c3": 80},
            "outputs": {"old": list(range(n_actions)), "new": list(range(n_actions + 1))}}
    return model, spec


def deep_narrow(K, depth=200, width=8):
    """200 Dense layers of 8 units (Sequential, ~14k parameters): the per-layer constant of the cost,
    parameters do not matter here. Edit: a 9th input feature, one more output."""
    layers = [K.Input((width,), name="obs")]
    layers += [K.layers.Dense(width, activation="relu", name=f"h{i}") for i in range(depth - 1)]
    layers.append(K.layers.Dense(width, name="q"))
    spec = {"inputs": {"old": list(range(width)), "new": list(range(width + 1))},
            "outputs": {"old": list(range(width)), "new": list(range(width + 1))}}
    return K.Sequential(layers, name="deep_narrow"), spec


def dqn_atari(K, n_actions=4, window=4):
    """keras-rl2's Atari network (examples/dqn_atari.py, layer for layer): Sequential,
    ``Permute((2, 3, 1), input_shape=(4, 84, 84))`` turns the window of 4 frames into channels, then
    the Nature-DQN convs and Dense 512, each followed by an ``Activation`` layer. Edit: a 5th frame
    by ID on the window axis (axis 1), one more action."""
    L = K.layers
    model = K.Sequential([
        L.Permute((2, 3, 1), input_shape=(window, 84, 84), name="permute"),
        L.Conv2D(32, (8, 8), strides=(4, 4), name="conv1"), L.Activation("relu", name="relu1"),
        L.Conv2D(64, (4, 4), strides=(2, 2), name="conv2"), L.Activation("relu", name="relu2"),
        L.Conv2D(64, (3, 3), strides=(1, 1), name="conv3"), L.Activation("relu", name="relu3"),
        L.Flatten(name="flat"),
        L.Dense(512, name="fc"), L.Activation("relu", name="relu4"),
        L.Dense(n_actions, name="q"), L.Activation("linear", name="linear"),
    ], name="dqn_atari")
    spec = {"inputs": {"axis": 1, "old": [0, 1, 2, 3], "new": [0, 1, 2, 3, 4]},
            "outputs": {"old": list(range(n_actions)), "new": list(range(n_actions + 1))}}
    return model, spec


def wide_mlp(K, n_in=128, width=2048, depth=8, n_out=18):
    """8 x 2048 ReLU MLP (Sequential, ~29.7M parameters). Edit: one more input feature, widen h3 to
    2304 units, one more output."""
    layers = [K.Input((n_in,), name="obs")]
    layers += [K.layers.Dense(width, activation="relu", name=f"h{i}") for i in range(depth)]
    layers.append(K.layers.Dense(n_out, name="q"))
    model = K.Sequential(layers, name="wide_mlp")
    spec = {"inputs": {"old": list(range(n_in)), "new": list(range(n_in + 1))},
            "units": {"h3": width + width // 8},
            "outputs": {"old": list(range(n_out)), "new": list(range(n_out + 1))}}
    return model, spec


RESNET_WIDTHS = (80, 160, 320, 640)


def resnet(K, widths=RESNET_WIDTHS, blocks=2, n_actions=18, fc=320):
    """A ResNet-18-style CNN on 84 x 84 x 4 Atari frames (Functional, ~24.9M parameters): a 7x7/2
    stem, four stages of two basic blocks (Conv-BN-ReLU-Conv-BN + skip, Add, ReLU; a 1x1/2
    projection with BN where the width changes), then IMPALA-style Flatten -> Dense 320 -> Q.

    Edit: a 5th frame channel, the last stage's residual stream widened 640 -> 704 channels (every
    conv and BN writing into it, and so every Add, Flatten and fc's 23040 -> 25344 rows), one more
    action.
    """
    L = K.layers
    inp = K.Input((84, 84, 4), name="frames")
    x = L.Conv2D(widths[0], 7, strides=2, padding="same", use_bias=False, name="stem_conv")(inp)
    x = L.BatchNormalization(name="stem_bn")(x)
    x = L.ReLU(name="stem_relu")(x)
    stream: dict[int, list[str]] = {}  # stage -> layers whose filters are that stage's residual stream
    for s, w in enumerate(widths):
        for b in range(blocks):
            p = f"s{s}b{b}"
            stride = 2 if (s > 0 and b == 0) else 1
            y = L.Conv2D(w, 3, strides=stride, padding="same", use_bias=False, name=f"{p}_conv_a")(x)
            y = L.BatchNormalization(name=f"{p}_bn_a")(y)
            y = L.ReLU(name=f"{p}_relu_a")(y)
            y = L.Conv2D(w, 3, padding="same", use_bias=False, name=f"{p}_conv_b")(y)
            y = L.BatchNormalization(name=f"{p}_bn_b")(y)
            stream.setdefault(s, []).append(f"{p}_conv_b")
            skip = x
            if stride != 1 or int(x.shape[-1]) != w:
                skip = L.Conv2D(w, 1, strides=stride, use_bias=False, name=f"{p}_proj")(x)
                skip = L.BatchNormalization(name=f"{p}_proj_bn")(skip)
                stream[s].append(f"{p}_proj")
            x = L.Add(name=f"{p}_add")([y, skip])
            x = L.ReLU(name=f"{p}_relu")(x)
    x = L.Flatten(name="flat")(x)
    x = L.Dense(fc, activation="relu", name="fc")(x)
    model = K.Model(inp, L.Dense(n_actions, name="q")(x), name="resnet")
    last = len(widths) - 1
    wider = widths[last] + widths[last] // 10
    spec = {"inputs": {"old": [0, 1, 2, 3], "new": [0, 1, 2, 3, 4]},
            "units": {name: wider for name in stream[last]},
            "outputs": {"old": list(range(n_actions)), "new": list(range(n_actions + 1))}}
    return model, spec


#: Input size of the keras.applications models: their standard 224 x 224 x 3. ResNet50's and
#: EfficientNetB0's parameters do not depend on it (global pooling); VGG16's fc1 reads 7 x 7 x 512.
APP_SIZE = 224


def _application(K, ctor, units: dict, n_classes=1000):
    """A keras.applications model (weights=None, logits head: an added class leaves the others
    exact). Edit: a 4th input channel, ``units``, a 1001st class."""
    model = ctor(weights=None, input_shape=(APP_SIZE, APP_SIZE, 3), classes=n_classes, classifier_activation=None)
    spec = {"inputs": {"old": [0, 1, 2], "new": [0, 1, 2, 3]},
            "units": units,
            "outputs": {"old": list(range(n_classes)), "new": list(range(n_classes + 1))}}
    return model, spec


def resnet50(K):
    """keras.applications ResNet50 (Functional, 177 layers, 25.6M parameters). Edit: a 4th input
    channel, the middle 3x3 conv of the first conv3 bottleneck 128 -> 144 filters, a 1001st class."""
    return _application(K, K.applications.ResNet50, {"conv3_block1_2_conv": 144})


def efficientnetb0(K):
    """keras.applications EfficientNetB0 (Functional, 240 layers with Rescaling, Normalization,
    depthwise convs and squeeze-excite Multiply, 5.3M parameters). Edit: a 4th input channel
    (through Rescaling and Normalization), top_conv 1280 -> 1408 filters, a 1001st class."""
    return _application(K, K.applications.EfficientNetB0, {"top_conv": 1408})


def vgg16(K):
    """keras.applications VGG16 (Functional, 138.4M parameters, 74 % of them fc1's 25088 x 4096
    kernel). Edit: a 4th input channel, block5_conv3 512 -> 576 filters (through Flatten: fc1 reads
    28224 rows), a 1001st class."""
    return _application(K, K.applications.VGG16, {"block5_conv3": 576})


BUILDERS = {"cartpole": cartpole, "deep_narrow": deep_narrow, "nature_dqn": nature_dqn, "dqn_atari": dqn_atari, "wide_mlp": wide_mlp,
            "resnet": resnet, "resnet50": resnet50, "efficientnetb0": efficientnetb0, "vgg16": vgg16}


# ------------------------------------------------------------------------------------------------
# Worker: one (model, flavour) in a fresh process (forked by a ForkServer)
# ------------------------------------------------------------------------------------------------
def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def _peak_rss_extra(op) -> dict:
    """Peak resident memory above the level before ``op`` runs, ``op``'s result kept alive until read."""
    gc.collect()
    base = _status_kb("VmRSS")
    exact = _reset_peak()
    if not exact:  # fall back to the process's lifetime peak: only an upper bound on what op needs
        import resource
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = op()
    peak = _status_kb("VmHWM")
    after = _status_kb("VmRSS")
    del result
    gc.collect()
    return {"rss_extra_bytes": (peak - base) * 1024, "rss_kept_bytes": (after - base) * 1024,
            "rss_base_bytes": base * 1024, "hwm_reset": exact}


def _traced_peak(op) -> int:
    import tracemalloc

    gc.collect()
    tracemalloc.start()
    result = op()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del result
    gc.collect()
    return peak


def _times(op, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        gc.collect()
        t0 = time.perf_counter()
        result = op()
        out.append(time.perf_counter() - t0)
        del result
    return out


def _staged(old, spec) -> tuple[object, dict]:
    """``surgeon.transplant`` cut into its stages, each timed."""
    from keras_surgeon_rl.adapters import adapter_for
    from keras_surgeon_rl.planner import make_plan
    from keras_surgeon_rl.surgeon import _fill, build_planned
    from keras_surgeon_rl.unit_ids import set_unit_ids

    t0 = time.perf_counter()
    adapter = adapter_for(old)
    graph = adapter.read(old)
    t1 = time.perf_counter()
    p = make_plan(graph, spec, adapter)
    t2 = time.perf_counter()
    new, finals = build_planned(p, adapter)
    t3 = time.perf_counter()
    _fill(p, adapter, new, strict=True, finals=finals)
    t4 = time.perf_counter()
    set_unit_ids(new, inputs=p.new.unit_ids["inputs"], layers=p.new.unit_ids["layers"], replace=True)
    new.surgery_report = p.report
    t5 = time.perf_counter()
    return new, {"read": t1 - t0, "plan": t2 - t1, "build": t3 - t2, "fill": t4 - t3, "other": t5 - t4}


def _import_flavour(flavour: str):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if flavour == "keras3":
        import keras as K
    else:
        import tf_keras as K  # eager mode: keras-rl2 is never imported here
    return K


def _n_params(arrays) -> int:
    return int(sum(a.size for a in arrays))


def _floors(K, template, arrays) -> dict:
    import numpy as np

    def clone():
        m = K.models.clone_model(template)
        m.set_weights(arrays)
        return m

    def numpy_copy():
        return [np.array(a, copy=True) for a in arrays]

    return {"clone": clone, "numpy": numpy_copy}


def worker(model_name: str, flavour: str, methods: str, runs: int) -> list[dict]:
    """One (model, flavour) in this fresh process: the peak memory of each of ``methods``
    (``"ours+clone+numpy"`` or a part of it), one after the other in that order, and, if ``ours`` is
    among them, the times of all three methods, interleaved, after the memory. A list of one result
    per method.

    Memory first, each method after its own warm-up run: ``transplant`` while nothing else has been
    built in the process, then clone+set, then the NumPy copy. Large blocks are ``mmap``s that go back
    to the OS when freed (see :data:`MALLOC_ENV`), so one method's freed arrays do not hide the next
    one's peak. Interleaving the timed runs (one run of each method per round, the order rotating)
    exposes every method to the same background load, so the ratios hold even on a busy machine. The
    ``tracemalloc`` peak, which only the memory goal of models under :data:`SMALL_WEIGHTS` reads, is
    measured only for those (tracing slows a large model's run several times over), and for the
    floors only up to :data:`TRACE_FLOORS_MAX_LAYERS` layers.
    """
    K = _import_flavour(flavour)
    from keras_surgeon_rl import surgeon

    wanted = methods.split("+")
    unknown = set(wanted) - set(METHODS)
    if unknown:
        raise ValueError(f"unknown methods {sorted(unknown)}; known: {', '.join(METHODS)}")
    K.utils.set_random_seed(0)
    old, spec = BUILDERS[model_name](K)
    base = {"model": model_name, "flavour": flavour, "runs": runs,
            "old_params": _n_params(old.get_weights()), "layers": len(old.layers), "pid": os.getpid()}

    def ours():
        return surgeon.transplant(old, spec)

    new = ours()  # warm-up: first-call costs (imports, tracing, caches) are not the surgery's
    arrays = new.get_weights()
    base["new_params"] = _n_params(arrays)
    base["new_weight_bytes"] = int(sum(a.nbytes for a in arrays))
    small = base["new_weight_bytes"] < SMALL_WEIGHTS
    del new, arrays

    def measure(name, op):
        res = {**base, "method": name, **_peak_rss_extra(op)}
        traced = small and (name == "ours" or len(old.layers) <= TRACE_FLOORS_MAX_LAYERS)
        res["traced_peak_bytes"] = _traced_peak(op) if traced else None
        return res

    results = {}
    if "ours" in wanted:
        results["ours"] = measure("ours", ours)  # before anything else is built in this process
    template = ours()
    ops = {"ours": ours, **_floors(K, template, template.get_weights())}
    for name in ("clone", "numpy"):
        ops[name]()  # warm-up (also of a floor that is only timed)
        if name in wanted:
            results[name] = measure(name, ops[name])
    if "ours" in results:
        stages = []

        def keep_stages(name, result):
            if name == "staged":
                stages.append(result[1])

        out = results["ours"]
        # every op has run already (ours at least three times, each floor at least once; "staged"
        # makes ours' calls one by one)
        out.update(_interleaved({**ops, "staged": lambda: _staged(old, spec)}, runs, keep=keep_stages,
                                warm_up=False, limits={"staged": STAGED_RUNS}))
        out["median"] = out["medians"]["ours"]
        out["stages"] = {k: statistics.median(s[k] for s in stages) for k in stages[0]}
        out["stage_runs"] = stages
    return list(results.values())


def profile_worker(model_name: str, flavour: str, runs: int, out_dir: Path) -> dict:
    import cProfile
    import io
    import pstats

    K = _import_flavour(flavour)
    from keras_surgeon_rl import surgeon

    K.utils.set_random_seed(0)
    old, spec = BUILDERS[model_name](K)
    surgeon.transplant(old, spec)  # warm-up
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(runs):
        surgeon.transplant(old, spec)
    prof.disable()
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"profile-{model_name}-{flavour}.txt"
    s = io.StringIO()
    stats = pstats.Stats(prof, stream=s).strip_dirs()
    stats.sort_stats("cumulative").print_stats(45)
    stats.sort_stats("tottime").print_stats(30)
    path.write_text(s.getvalue())
    prof.dump_stats(str(path.with_suffix(".prof")))
    return {"model": model_name, "flavour": flavour, "profile": str(path)}


# ------------------------------------------------------------------------------------------------
# End-to-end figures: what a user waits for
# ------------------------------------------------------------------------------------------------
def _interleaved(ops: dict, runs: int, keep=None, warm_up: bool = True, limits: dict | None = None) -> dict:
    """Median seconds per op over ``runs`` rounds (one run of each op per round, the order rotating),
    after one warm-up run of each (``warm_up=False``: the caller has run them already). An op named
    in ``limits`` takes part in the first ``limits[name]`` rounds only.
    ``keep(name, result)``, if given, sees each timed run's result before it is dropped."""
    for op in ops.values() if warm_up else ():
        op()
    limits = limits or {}
    times: dict[str, list] = {name: [] for name in ops}
    names = list(ops)
    for r in range(runs):
        for name in names[r % len(names):] + names[:r % len(names)]:
            if r >= limits.get(name, runs):
                continue
            gc.collect()
            t0 = time.perf_counter()
            result = ops[name]()
            times[name].append(time.perf_counter() - t0)
            if keep is not None:
                keep(name, result)
            del result
    return {"times": times, "medians": {name: statistics.median(t) for name, t in times.items()}}


def _rl_network(K, model_name: str, new: bool):
    """A keras-rl2 Q-network (input ``(window, *observation)``), its action count and window, and the
    spec that turns the old one into the new one."""
    if model_name == "cartpole":
        n = 3 if new else 2
        net = K.Sequential([K.layers.Flatten(input_shape=(1, 4), name="flat"),
                            K.layers.Dense(24 if new else 16, activation="relu", name="h0"),
                            K.layers.Dense(16, activation="relu", name="h1"),
                            K.layers.Dense(n, name="q")], name="cartpole")
        spec = {"units": {"h0": 24}, "outputs": {"old": [0, 1], "new": [0, 1, 2]}}
        return net, n, 1, spec
    if model_name == "dqn_atari":
        n, window = (5, 5) if new else (4, 4)
        net, spec = dqn_atari(K, n_actions=n, window=window)
        return net, n, window, spec
    raise ValueError(f"no keras-rl2 agent for model {model_name!r}; use cartpole or dqn_atari")


def e2e_resume_worker(model_name: str, runs: int) -> dict:
    """``resume_dqn`` (old agent -> new agent ready to ``fit``) against building and compiling a fresh
    agent of the new architecture, under keras-rl2 (tf_keras in graph mode, in this process only)."""
    from keras_surgeon_rl.rl import resume_dqn, tf_keras as K  # first: sets up keras-rl2
    from rl.agents.dqn import DQNAgent
    from rl.memory import SequentialMemory
    from rl.policy import EpsGreedyQPolicy

    def agent(new: bool):
        net, n, window, _ = _rl_network(K, model_name, new)
        a = DQNAgent(model=net, nb_actions=n, memory=SequentialMemory(limit=10000, window_length=window),
                     policy=EpsGreedyQPolicy(0.1), nb_steps_warmup=100, target_model_update=1000, gamma=0.99)
        a.compile(K.optimizers.legacy.Adam(learning_rate=2.5e-4), metrics=["mae"])
        return a

    K.utils.set_random_seed(0)
    old = agent(new=False)
    spec = _rl_network(K, model_name, new=False)[3]
    res = _interleaved({"ours": lambda: resume_dqn(old, spec), "fresh": lambda: agent(new=True)}, runs)
    params = int(sum(w.size for w in old.model.get_weights()))
    return {"kind": "resume_dqn", "model": model_name, "flavour": "tf_keras", "runs": runs, "old_params": params,
            "baseline": "build + compile a fresh DQNAgent of the new architecture", **res}


def e2e_cli_worker(model_name: str, flavour: str, runs: int) -> dict:
    """The CLI's ``transplant`` (load + surgery + save, in process through ``cli.main``) against
    load + save of the model it reads, and of the model it writes."""
    import contextlib
    import io
    import shutil
    import tempfile

    K = _import_flavour(flavour)
    from keras_surgeon_rl import cli
    from keras_surgeon_rl.io import save_model

    K.utils.set_random_seed(0)
    old, spec = BUILDERS[model_name](K)
    tmp = Path(tempfile.mkdtemp(prefix="bench-cli-"))
    try:
        old_path, spec_path, new_path = tmp / "old.keras", tmp / "spec.json", tmp / "new.keras"
        save_model(old, old_path)
        spec_path.write_text(json.dumps(spec))
        count = iter(range(10 ** 6))

        def ours():
            with contextlib.redirect_stdout(io.StringIO()):
                rc = cli.main(["transplant", str(old_path), str(spec_path), "-o", str(new_path)])
            if rc != 0:
                raise RuntimeError(f"keras-surgeon-rl transplant exited {rc}")

        def load_save(path):
            def op():
                save_model(cli.load(path), tmp / f"copy{next(count)}.keras")
            return op

        ours()  # the new model's file, for the second floor
        res = _interleaved({"ours": ours, "load_save_old": load_save(old_path), "load_save_new": load_save(new_path)},
                           runs)
        sizes = {"old_file_bytes": old_path.stat().st_size, "new_file_bytes": new_path.stat().st_size}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"kind": "cli", "model": model_name, "flavour": flavour, "runs": runs,
            "old_params": _n_params(old.get_weights()),
            "baseline": "load + save of the model the CLI reads (load_save_old) / writes (load_save_new)", **sizes,
            **res}


def e2e_markdown(results: list[dict]) -> str:
    head = "| figure | model | flavour | params (old) | ours ms | baseline | baseline ms | ours / baseline |"
    lines = [head, "|" + "|".join(["---"] * (head.count("|") - 1)) + "|"]
    for r in results:
        med = r["medians"]
        bases = [("fresh agent: build + compile", "fresh")] if r["kind"] == "resume_dqn" else \
            [("load + save, model read", "load_save_old"), ("load + save, model written", "load_save_new")]
        figure = "`resume_dqn`" if r["kind"] == "resume_dqn" else "CLI `transplant` (load + surgery + save)"
        for label, key in bases:
            lines.append(f"| {figure} | {r['model']} | {r['flavour']} | {_params(r['old_params'])} | "
                         f"{_ms(med['ours'])} | {label} | {_ms(med[key])} | {med['ours'] / med[key]:.2f} |")
    return "\n".join(lines)


def per_layer_fit(rows: list[dict]) -> list[str]:
    """Cost = a + b·parameters + c·layers, least squares over the models measured, per flavour and
    method; and the direct figure from ``deep_narrow`` (its ~14k parameters cost nothing)."""
    import numpy as np

    out = []
    for flavour in FLAVOURS:
        rs = [r for r in rows if r["flavour"] == flavour]
        for r in rs:
            if r["model"] == "deep_narrow":
                out.append(f"{flavour}: per-layer constant from deep_narrow ({r['layers']} layers): ours "
                           f"{r['ours_s'] * 1e3 / r['layers']:.2f} ms a layer, clone+set "
                           f"{r['clone_s'] * 1e3 / r['layers']:.2f} ms a layer")
        if len(rs) < 4:
            continue
        x = np.array([[1.0, r["new_params"] / 1e6, r["layers"]] for r in rs])
        for method in ("ours", "clone"):
            y = np.array([r[f"{method}_s"] * 1e3 for r in rs])
            coef = fit_cost(x, y)
            out.append(f"{flavour}: {method} ms ≈ {coef[0]:.1f} + {coef[1]:.2f} × M params + {coef[2]:.2f} × layers "
                       f"(least squares over {len(rs)} models)")
    return out


def fit_cost(x, y):
    """Least-squares ``coef`` of ``y ≈ x @ coef`` (rows: models; columns: 1, parameters, layers)."""
    import numpy as np

    return np.linalg.lstsq(np.asarray(x, float), np.asarray(y, float), rcond=None)[0]


# ------------------------------------------------------------------------------------------------
# Driver
# ------------------------------------------------------------------------------------------------
def _worker_env() -> dict:
    path = os.pathsep.join([str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    return dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONWARNINGS="ignore", PYTHONPATH=path, **MALLOC_ENV)


def _result(lines, args: list[str], exit_code, stderr: str) -> dict:
    for line in reversed(lines):
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    raise RuntimeError(f"worker {' '.join(args)} failed (exit {exit_code}):\n{stderr[-4000:]}")


def run_job(args: list[str]) -> dict:
    """Run one job in a new Python process (imports included)."""
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), *args], env=_worker_env(), cwd=ROOT,
                          capture_output=True, text=True)
    return _result(proc.stdout.splitlines(), args, proc.returncode, proc.stderr)


class ForkServer:
    """A process that has imported one Keras flavour and the library, and forks one child per job.

    Importing TensorFlow and Keras costs most of a small model's job (about 7 s of 24 on the
    benchmark machine). A child forked from this server starts with the modules imported and
    nothing else built or run (no TensorFlow op has run in the server), so it is the same fresh
    process as far as the measurements go: the memory of its first transplant, clone+set and NumPy
    copy, and the interleaved times. Each job still gets its own process, which exits after it.
    """

    def __init__(self, flavour: str):
        import tempfile

        self.stderr = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve", flavour],
                                     env=_worker_env(), cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, text=True)

    def run(self, args: list[str]) -> dict:
        self.proc.stdin.write(json.dumps(args) + "\n")
        self.proc.stdin.flush()
        lines = []
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            if line.startswith(DONE):
                exit_code = int(line[len(DONE):])
                self.stderr.seek(0)
                err = self.stderr.read()
                self.stderr.seek(0)
                self.stderr.truncate()
                return _result(lines, args, exit_code, err)
            lines.append(line)
        self.stderr.seek(0)
        raise RuntimeError(f"the {args[2] if len(args) > 2 else ''} fork server died "
                           f"(exit {self.proc.wait()}):\n{self.stderr.read()[-4000:]}")

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()
        self.stderr.close()


def serve(flavour: str) -> int:
    """The loop of a :class:`ForkServer`: import, then one forked child per job line on stdin."""
    import traceback

    _import_flavour(flavour)
    import keras_surgeon_rl.cli  # noqa: F401  (imports the surgeon, adapters and I/O)

    for line in sys.stdin:
        job = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # the child: run the job as a worker process would, then exit without cleanup
            try:
                code = main(job)
            except BaseException:  # noqa: BLE001  (reported through stderr and the exit code)
                traceback.print_exc()
                code = 1
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        print(DONE + str(os.waitstatus_to_exitcode(status)), flush=True)
    return 0


def machine() -> dict:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform()}
    try:
        with open("/proc/meminfo") as f:
            info["memory_gb"] = round(int(f.readline().split()[1]) / 2 ** 20, 1)
    except OSError:
        pass
    try:
        from importlib.metadata import version

        for pkg in ("tensorflow", "keras", "tf_keras", "numpy"):
            info[pkg] = version(pkg)
    except Exception:  # pragma: no cover - metadata missing
        pass
    return info


def summarize(results: list[dict]) -> list[dict]:
    rows = []
    by = {(r["model"], r["flavour"], r["method"]): r for r in results}
    for model in MODELS:
        for flavour in FLAVOURS:
            ours = by.get((model, flavour, "ours"))
            if ours is None:
                continue
            med, nb = ours["medians"], ours["new_weight_bytes"]
            row = {"model": model, "flavour": flavour, "old_params": ours["old_params"], "layers": ours.get("layers"),
                   "new_params": ours["new_params"], "new_weight_bytes": nb,
                   "ours_s": med["ours"], "staged_s": med["staged"], "stages_s": ours["stages"],
                   "clone_s": med["clone"], "numpy_s": med["numpy"], "ratio": med["ours"] / med["clone"],
                   "ours_us_per_kparam": med["ours"] * 1e6 / (ours["new_params"] / 1e3),
                   "ours_rss_extra_bytes": ours["rss_extra_bytes"], "ours_mem_x": ours["rss_extra_bytes"] / nb,
                   "ours_traced_peak_bytes": ours["traced_peak_bytes"]}
            for method in ("clone", "numpy"):
                r = by.get((model, flavour, method))
                if r is not None:
                    row[f"{method}_rss_extra_bytes"] = r["rss_extra_bytes"]
                    row[f"{method}_mem_x"] = r["rss_extra_bytes"] / nb
                    row[f"{method}_traced_peak_bytes"] = r["traced_peak_bytes"]
            rows.append(row)
    return rows


def _ms(s: float) -> str:
    ms = s * 1e3
    return f"{ms:.1f}" if ms < 100 else f"{ms:.0f}"


def _mb(b: float) -> str:
    mb = b / 2 ** 20
    return f"{mb:.1f}" if mb >= 10 else f"{mb:.2f}"


def _params(n: int) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n}"


def markdown(rows: list[dict], runs: int) -> str:
    head = ("| model | flavour | params (new) | weights MB | ours ms | read / plan / build / fill ms | "
            "clone+set ms | NumPy copy ms | ours / clone+set | ours µs per 1k params | "
            "peak extra MB (× weights): ours | clone+set | NumPy copy |")
    lines = [head, "|" + "|".join(["---"] * (head.count("|") - 1)) + "|"]

    def mem(r, method):
        if f"{method}_rss_extra_bytes" not in r:
            return "–"
        return f"{_mb(r[f'{method}_rss_extra_bytes'])} ({r[f'{method}_mem_x']:.2f}×)"

    for r in rows:
        st = r["stages_s"]
        lines.append("| " + " | ".join([
            r["model"], r["flavour"], _params(r["new_params"]), _mb(r["new_weight_bytes"]),
            _ms(r["ours_s"]), " / ".join(_ms(st[k]) for k in ("read", "plan", "build", "fill")),
            _ms(r["clone_s"]), _ms(r["numpy_s"]), f"{r['ratio']:.2f}", f"{r['ours_us_per_kparam']:.2f}",
            mem(r, "ours"), mem(r, "clone"), mem(r, "numpy"),
        ]) + " |")
    lines.append("")
    lines.append(f"Times: median of {runs} interleaved runs per method after a warm-up run (stages: median of "
                 f"{min(runs, STAGED_RUNS)} runs of the same calls made one by one). Peak extra memory: one run's VmHWM above the "
                 "VmRSS before it, in a fresh process per (model, flavour) forked from a server that has only "
                 "imported Keras and the library, ours first, then clone+set, then the "
                 "NumPy copy.")
    return "\n".join(lines)


def goals(rows: list[dict]) -> list[str]:
    """The issue's goals, model by model, and the cost per parameter (linear growth)."""
    out = []
    for r in rows:
        where = f"{r['model']:>14} {r['flavour']:>8}"
        limit = 0.6 if r["new_params"] >= 1e6 else 1.0
        ok = "met" if r["ratio"] <= limit else "MISSED"
        out.append(f"{where}: time ≤ {limit} × clone+set: {ok} ({r['ratio']:.2f}×)")
        if r["new_weight_bytes"] < SMALL_WEIGHTS:
            # a few KB of weights: RSS moves in pages and Keras' own objects dwarf the weights
            traced = (f"; traced peak ours {r['ours_traced_peak_bytes'] / 1024:.0f} KB"
                      + (f", clone+set {r['clone_traced_peak_bytes'] / 1024:.0f} KB"
                         if r.get("clone_traced_peak_bytes") is not None else ""))
            out.append(f"{where}: peak extra ≤ 1.5 × weights: n/a ({r['new_weight_bytes'] / 1024:.1f} KB of weights"
                       f"{traced})")
            continue
        clone = f", clone+set {r['clone_mem_x']:.2f}×" if "clone_mem_x" in r else ""
        ok = "met" if r["ours_mem_x"] <= 1.5 else "MISSED"
        out.append(f"{where}: peak extra ≤ 1.5 × weights: {ok} ({r['ours_mem_x']:.2f}×{clone})")
    for flavour in FLAVOURS:
        big = [r for r in rows if r["flavour"] == flavour and r["new_params"] >= 1e6]
        if big:
            out.append(f"{flavour}: ms per million parameters, ours / clone+set: " + ", ".join(
                f"{r['model']} {r['ours_s'] * 1e9 / r['new_params']:.0f} / {r['clone_s'] * 1e9 / r['new_params']:.0f}"
                for r in big))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=None, help="timed runs per method (default 5; 2 with --quick)")
    ap.add_argument("--models", nargs="+", choices=MODELS, default=None, help="models to run (default: all)")
    ap.add_argument("--flavours", nargs="+", choices=FLAVOURS, default=None, help="Keras flavours (default: both)")
    ap.add_argument("--methods", nargs="+", choices=METHODS, default=METHODS, help="methods (default: all)")
    ap.add_argument("--quick", action="store_true",
                    help="smoke run of every part (2 runs): CartPole (all methods), deep_narrow (Keras 3, ours), "
                         "the end-to-end figures on CartPole")
    ap.add_argument("--no-e2e", action="store_true", help="skip the end-to-end figures (resume_dqn, CLI transplant)")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "bench", help="output directory")
    ap.add_argument("--profile", nargs="+", choices=MODELS, default=None,
                    help="instead of benchmarking, write cProfile reports of transplant for these models")
    ap.add_argument("--worker", nargs=3, metavar=("MODEL", "FLAVOUR", "METHODS"), help=argparse.SUPPRESS)
    ap.add_argument("--profile-worker", nargs=2, metavar=("MODEL", "FLAVOUR"), help=argparse.SUPPRESS)
    ap.add_argument("--e2e-worker", nargs=3, metavar=("KIND", "MODEL", "FLAVOUR"), help=argparse.SUPPRESS)
    ap.add_argument("--serve", choices=FLAVOURS, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    runs = args.runs or (2 if args.quick else 5)

    if args.serve:
        return serve(args.serve)
    if args.worker:
        print(MARK + json.dumps(worker(*args.worker, runs=runs)), flush=True)
        return 0
    if args.e2e_worker:
        kind, model, flavour = args.e2e_worker
        res = e2e_resume_worker(model, runs) if kind == "resume_dqn" else e2e_cli_worker(model, flavour, runs)
        print(MARK + json.dumps(res), flush=True)
        return 0
    if args.profile_worker:
        print(MARK + json.dumps(profile_worker(*args.profile_worker, runs=runs, out_dir=args.out)), flush=True)
        return 0

    from tqdm import tqdm

    models = args.models or (QUICK_MODELS if args.quick else MODELS)
    flavours = args.flavours or FLAVOURS
    if args.profile:
        for model in tqdm(args.profile, desc="profiling"):
            for flavour in flavours:
                res = run_job(["--profile-worker", model, flavour, "--runs", str(args.runs or 3),
                               "--out", str(args.out)])
                tqdm.write(f"{model} {flavour}: {res['profile']}")
        return 0

    methods = "+".join(m for m in METHODS if m in args.methods)
    jobs = [(m, f, methods if not args.quick or m == models[0] else "ours") for m in models for f in flavours
            # --quick: memory of the floors for the first model only, deep_narrow in Keras 3 only (200 layers
            # cost a tf_keras worker about a minute)
            if not args.quick or m != "deep_narrow" or f == "keras3"]
    results = []
    t_start = time.perf_counter()
    servers: dict[str, ForkServer] = {}

    def server(flavour):  # started when first needed, so no import runs beside a measured job
        if flavour not in servers:
            servers[flavour] = ForkServer(flavour)
        return servers[flavour]

    bar = tqdm(jobs, desc="benchmark", unit="job")
    for model, flavour, method in bar:
        bar.set_postfix_str(f"{model} {flavour} {method}")
        t0 = time.perf_counter()
        out = server(flavour).run(["--worker", model, flavour, method, "--runs", str(runs)])
        for res in out if isinstance(out, list) else [out]:
            res["job_s"] = round(time.perf_counter() - t0, 1)  # the whole worker's wall time, set-up included
            results.append(res)
            timing = (" ".join(f"{k} {_ms(v)} ms" for k, v in res["medians"].items()) + "; ") if "medians" in res else ""
            tqdm.write(f"{model:>14} {flavour:>8} {res['method']:>5}: {timing}peak extra {_mb(res['rss_extra_bytes'])} MB"
                       f" ({res['job_s']:.0f} s)")
    e2e = []
    for kind, model, flavour in ([] if args.no_e2e else tqdm(E2E_QUICK if args.quick else E2E, desc="end to end")):
        t0 = time.perf_counter()
        job = ["--e2e-worker", kind, model, flavour, "--runs", str(runs)]
        # keras-rl2 needs tf_keras set up before TensorFlow is imported: a new process of its own
        res = run_job(job) if kind == "resume_dqn" else server(flavour).run(job)
        res["job_s"] = round(time.perf_counter() - t0, 1)
        e2e.append(res)
        tqdm.write(f"{kind:>10} {model:>14} {flavour:>8}: " + " ".join(f"{k} {_ms(v)} ms" for k, v in res["medians"].items()))
    for server in servers.values():
        server.close()
    elapsed = time.perf_counter() - t_start

    rows = summarize(results)
    table = markdown(rows, runs)
    if e2e:
        table += "\n\nEnd to end (medians of " + str(runs) + " interleaved runs):\n\n" + e2e_markdown(e2e)
    command = "python bench/surgery.py " + " ".join(argv if argv is not None else sys.argv[1:])
    report = {"machine": machine(), "command": command.strip(), "runs": runs, "elapsed_s": elapsed,
              "rows": rows, "results": results, "e2e": e2e, "fit": per_layer_fit(rows)}
    args.out.mkdir(parents=True, exist_ok=True)
    stem = "surgery-quick" if args.quick else "surgery"
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=1))
    (args.out / f"{stem}.md").write_text(table + "\n")
    m = report["machine"]
    print(f"\n{m['cores']} cores, {m['cpu']}; TensorFlow {m.get('tensorflow')}, Keras {m.get('keras')}, "
          f"tf_keras {m.get('tf_keras')}, NumPy {m.get('numpy')}; {elapsed:.0f} s\n")
    print(table)
    print()
    print("\n".join(goals(rows)))
    print("\n".join(report["fit"]))
    print(f"\nwrote {args.out / (stem + '.json')} and {args.out / (stem + '.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
