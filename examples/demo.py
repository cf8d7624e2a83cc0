"""Main demo (`make demo`): the MNIST transfer experiment at a scale that runs in a few minutes.

A CNN is trained on digits 0–3, then moved by surgery (``surgeon.transplant``) to digits 4–9 and
trained on them, beside a network trained from scratch; see ``examples/mnist_transfer.py`` for the
arms. The demo runs every arm twice for 400 batches in two processes, prints the accuracy table and
writes ``results/mnist_transfer/results.json`` and ``plot.png``. The original's scale::

    .venv/bin/python examples/mnist_transfer.py --steps 4000 --runs 5

Extra arguments are passed on, e.g. ``python examples/demo.py --steps 100``.
"""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository, for `examples`

from examples import mnist_transfer  # noqa: E402  (silences TensorFlow's start-up before importing it)

DEMO_ARGS = ["--runs", "2", "--steps", "400", "--jobs", "2"]


def main(argv=None) -> None:
    argv = DEMO_ARGS + list(sys.argv[1:] if argv is None else argv)  # later options win
    print("keras_surgeon_rl demo: transplant a trained MNIST CNN (digits 0–3) to a new task (digits 4–9)")
    print(f"running: python examples/mnist_transfer.py {' '.join(argv)}\n")
    start = time.perf_counter()
    paths = mnist_transfer.main(argv)
    print(f"\ndemo finished in {time.perf_counter() - start:.0f} s. Redraw the plot from the saved results with:")
    print(f"  .venv/bin/python -m examples.experiments.runner plot {paths['json']}")
    print("Original scale (4,000 batches; see docs/results.md):")
    print("  .venv/bin/python examples/mnist_transfer.py --steps 4000 --runs 5")


if __name__ == "__main__":
    main()
