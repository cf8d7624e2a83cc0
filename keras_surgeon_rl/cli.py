"""The command line: ``keras-surgeon-rl inspect | transplant | verify`` (also ``python -m keras_surgeon_rl``).

    keras-surgeon-rl inspect qnet.keras
    keras-surgeon-rl transplant qnet.keras add_theta_dot.yaml -o qnet_wide.keras [--dry-run]
    keras-surgeon-rl verify qnet.keras qnet_wide.keras add_theta_dot.yaml --tol 1e-5

Model files: Keras 3 ``.keras``; tf_keras ``.keras`` and ``.h5``. Unit IDs are read from and written
to the sidecar ``<model>.ids.json``. Exit codes: 0 success, 1 verify above tolerance, 2 bad input.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from keras_surgeon_rl.quiet import quiet_tensorflow

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2


class SpecFileError(ValueError):
    """A spec file that cannot be read, with file, line and a hint."""


# Spec files --------------------------------------------------------------------------------------
def _marks(node, path=()) -> dict:
    """``{key path: line}`` for every mapping key and sequence item of a YAML (or JSON) document."""
    import yaml

    lines = {path: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            k = key.value
            lines[path + (k,)] = key.start_mark.line + 1
            lines.update({p: ln for p, ln in _marks(value, path + (k,)).items() if p != path + (k,)})
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines.update(_marks(item, path + (str(i),)))
    return lines


def read_spec(path: Path) -> tuple[Any, dict]:
    """The spec in a YAML or JSON file, and the line of every key in it."""
    import yaml

    try:
        text = path.read_text()
    except OSError as e:
        raise SpecFileError(f"{path}: cannot read the spec file: {e.strerror}") from e
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as e:
        raise SpecFileError(f"{path}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}") from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise SpecFileError(f"{where}: not valid YAML: {getattr(e, 'problem', e)}") from e
    try:
        node = yaml.compose(text)
        lines = _marks(node) if node is not None else {}
    except yaml.YAMLError:
        lines = {}
    return data, lines


_PATH = re.compile(r"(inputs|outputs|units|insert|delete|init)((?:\[[^\]]+\]|\.\w+)*)|spec key '(\w+)'|spec '(\w+)'")


def error_line(message: str, lines: dict) -> Optional[int]:
    """The line of the spec that an error message points at (its deepest key found in the file)."""
    for m in _PATH.finditer(message):
        if m.group(3) or m.group(4):
            path = (m.group(3) or m.group(4),)
        else:
            path = (m.group(1),) + tuple(p.strip("'\"") for p in re.findall(r"\[([^\]]+)\]|\.(\w+)", m.group(2))
                                         for p in p if p)
        named = re.search(r"names (?:layer )?'([^']+)'", message)
        if named and path[:1] != (named.group(1),):
            path = path + (named.group(1),)
        while path:
            if path in lines:
                return lines[path]
            path = path[:-1]
    return None


def _bad_spec(spec_path: Path, lines: dict, error: Exception) -> str:
    line = error_line(str(error), lines)
    where = f"{spec_path}:{line}" if line else str(spec_path)
    return f"{where}: {error}"


# Commands ----------------------------------------------------------------------------------------
def cmd_inspect(args) -> int:
    from keras_surgeon_rl.adapters import adapter_for
    from keras_surgeon_rl.io import load_model, sidecar
    from keras_surgeon_rl.rules import rule_for

    model = load_model(args.model)
    graph = adapter_for(model).read(model)
    ids = graph.unit_ids
    print(f"model {graph.name!r} ({graph.flavour}, {'Sequential' if graph.sequential else 'Functional'}), "
          f"unit IDs {'from ' + str(sidecar(args.model)) if sidecar(args.model).exists() else 'not saved: 0..n-1'}")
    rows = [("layer", "class", "output shape", "params", "surgery")]
    for node in graph.nodes.values():
        rule = rule_for(node)
        if node.is_input:
            can = "input: features by ID"
        elif rule is None:
            can = "copied as is; no rule (IDs into it must not change)"
        elif rule.owns_units:
            can = "units by ID (resize, permute, remove)"
        else:
            can = "passes unit IDs through"
        params = sum(int(w.size) for _, w in node.weights)
        rows.append((node.name, node.class_name, str(tuple(node.output_shape)), f"{params:,}", can))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    for r in rows:
        print("  ".join(c.ljust(w) if i != 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    print("unit IDs:")
    for name in graph.inputs:
        print(f"  input  {name}: {ids['inputs'].get(name, f'0..{graph.nodes[name].output_shape[-1] - 1}')}")
    for name, value in ids["layers"].items():
        kind = "output" if name in graph.outputs else "layer "
        print(f"  {kind} {name}: {value if len(value) <= 20 else str(value[:20])[:-1] + ', …]'}")
    return EXIT_OK


def cmd_transplant(args) -> int:
    from keras_surgeon_rl import surgeon
    from keras_surgeon_rl.errors import SurgeryError
    from keras_surgeon_rl.io import load_model, save_model

    spec, lines = read_spec(args.spec)
    model = load_model(args.model)
    try:
        plan = surgeon.plan(model, spec)
    except SurgeryError as e:
        raise SpecFileError(_bad_spec(args.spec, lines, e)) from e
    if args.dry_run:
        print(plan)
        print("dry run: nothing written")
        return EXIT_OK
    if args.output.resolve() == args.model.resolve():
        raise SpecFileError(f"{args.output}: refusing to overwrite the source model; choose another -o")
    new = surgeon.transplant(model, spec)
    print(new.surgery_report)
    save_model(new, args.output)
    print(f"wrote {args.output} (+ {args.output.name}.ids.json)")
    return EXIT_OK


def cmd_verify(args) -> int:
    import numpy as np

    from keras_surgeon_rl import surgeon
    from keras_surgeon_rl.errors import SurgeryError
    from keras_surgeon_rl.io import load_model

    spec, lines = read_spec(args.spec)
    old, new = load_model(args.old), load_model(args.new)
    x = None
    if args.inputs is not None:
        try:
            x = np.load(args.inputs)
        except (OSError, ValueError) as e:
            raise SpecFileError(f"{args.inputs}: cannot read the inputs (.npy): {e}") from e
    try:
        diff = surgeon.verify(old, new, spec, x=x, n=args.samples)
    except SurgeryError as e:
        raise SpecFileError(_bad_spec(args.spec, lines, e)) from e
    ok = diff <= args.tol
    print(f"largest difference on shared outputs: {diff:.3g} ({'within' if ok else 'ABOVE'} tolerance {args.tol:g})")
    return EXIT_OK if ok else EXIT_FAILED


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="keras-surgeon-rl", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true", help="log what the library does")
    sub = p.add_subparsers(dest="command", required=True)
    i = sub.add_parser("inspect", help="layers, shapes, parameters, unit IDs, what surgery can change")
    i.add_argument("model", type=Path)
    i.set_defaults(run=cmd_inspect)
    t = sub.add_parser("transplant", help="apply a spec (YAML or JSON) and write the new model")
    t.add_argument("model", type=Path)
    t.add_argument("spec", type=Path)
    t.add_argument("-o", "--output", type=Path, required=True)
    t.add_argument("--dry-run", action="store_true", help="print the plan, write nothing")
    t.set_defaults(run=cmd_transplant)
    v = sub.add_parser("verify", help="largest output difference between old and new on shared units")
    v.add_argument("old", type=Path)
    v.add_argument("new", type=Path)
    v.add_argument("spec", type=Path)
    v.add_argument("--inputs", type=Path, help="old-model inputs as a .npy file (default: random)")
    v.add_argument("--samples", type=int, default=256, help="random samples when --inputs is not given")
    v.add_argument("--tol", type=float, default=1e-5)
    v.set_defaults(run=cmd_verify)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    from keras_surgeon_rl.errors import SurgeryError
    from keras_surgeon_rl.io import ModelFileError

    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    quiet_tensorflow()
    try:
        return args.run(args)
    except (SpecFileError, ModelFileError, SurgeryError) as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # output piped into `head`
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
