#!/usr/bin/env python
"""Every layer class and ``keras.ops`` operation class in the keras.applications models, with the
surgery rule the registry gives it and the README's verdict.

Builds one model per family (``tests/core/zoo.py``'s ``MODELS``; ``--all``: every constructor in
``keras.applications``, at its smallest input), collects ``(kind, class)`` of every layer and
operation, nested models' included, and prints a Markdown table: class, kind, the rule
(``keras_surgeon_rl.rules.registry.rule_for``), the models holding it, and the README's row (or
MISSING). Exit status 1 when the README's table lacks a class.

Usage::

    .venv/bin/python bench/zoo_layers.py            # one model per family (~1 min)
    .venv/bin/python bench/zoo_layers.py --all      # every constructor (large ones take minutes)
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "core")]  # this checkout's package, not an installed one

import keras  # noqa: E402

from keras_surgeon_rl.rules import rule_for  # noqa: E402
from zoo import MODELS, build, graph_of, kind_of, layer_classes, readme_table  # noqa: E402

#: Smallest input of the constructors not in MODELS (default 32).
SIDES = {"InceptionV3": 75, "InceptionResNetV2": 75, "Xception": 71, "NASNetLarge": 32}


def constructors(every: bool) -> dict[str, tuple[str, int]]:
    if not every:
        return MODELS
    names = sorted(n for n in dir(keras.applications) if n[0].isupper())
    return {n: (n, SIDES.get(n, 32)) for n in names}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--all", action="store_true", help="every keras.applications constructor, not one per family")
    args = ap.parse_args()
    found: dict[tuple[str, str], list[str]] = {}
    rules: dict[tuple[str, str], str] = {}
    for name, (constructor, side) in constructors(args.all).items():
        MODELS.setdefault(name, (constructor, side))
        model = build(name)
        for c in layer_classes(model):
            found.setdefault(c, []).append(name)
        for node in graph_of(model).nodes.values():
            if not node.is_input:
                rule = rule_for(node)
                rules[(kind_of(node), node.class_name)] = type(rule).__name__ if rule else "none"
        print(f"built {name}", file=sys.stderr, flush=True)
        del model
        keras.backend.clear_session()
    table = readme_table()
    print("| class | kind | rule | models | README |\n|---|---|---|---|---|")
    missing = 0
    for (kind, cls), models in sorted(found.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        verdict = table.get((kind, cls))
        missing += verdict is None
        rule = rules.get((kind, cls), "none (nested model's layer)")
        print(f"| {cls} | {kind} | {rule} | {', '.join(models)} | {verdict or 'MISSING'} |")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
