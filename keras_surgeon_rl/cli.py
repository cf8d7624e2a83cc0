"""The command line: ``keras-surgeon-rl inspect | transplant | verify | schema`` (also ``python -m keras_surgeon_rl``).

    keras-surgeon-rl inspect qnet.keras
    keras-surgeon-rl transplant qnet.keras add_theta_dot.yaml -o qnet_wide.keras [--dry-run]
    keras-surgeon-rl verify qnet.keras qnet_wide.keras add_theta_dot.yaml --tol 1e-5
    keras-surgeon-rl schema > spec.schema.json        # the spec's JSON Schema, for editors
    keras-surgeon-rl schema --check add_theta_dot.yaml   # a spec file against it, without a model

Stable-Baselines3 agents (``.zip``, the ``sb3`` extra) go through the same three commands:
``transplant agent.zip spec.yaml -o new.zip [--env CartPole-v1]`` (:func:`keras_surgeon_rl.sb3.transplant_zip`;
``--env`` bounds new observation features and actions), ``inspect`` lists the layers a spec can name,
``verify`` compares the agents on the old IDs.

Model files: Keras 3 ``.keras``; tf_keras ``.keras`` and ``.h5``. Unit IDs are read from and written
to the sidecar ``<model>.ids.json``.

Exit codes:
    0  success (``verify``: the largest difference is within ``--tol``)
    1  ``verify`` only: the largest difference is above ``--tol``
    2  a user error: a missing, corrupt or mismatched model, sidecar, spec or ``--inputs`` file, an
       output path that cannot be written, a bad option value. One ``error:`` line names the file,
       option or key at fault and the fix; nothing is written. (argparse's usage errors: 2 too.)
    3  an internal error (a bug): one ``internal error: <type>: <message>`` line and a request to
       report it; ``-v`` adds the traceback.
    130 interrupted (Ctrl-C).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import sys
import traceback
from pathlib import Path
from typing import Any, Optional, Sequence

from keras_surgeon_rl.quiet import quiet_tensorflow

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
MAX_SAMPLES = 1_000_000
_ZIP, _HDF5 = b"PK\x03\x04", b"\x89HDF\r\n\x1a\n"  # .keras files are zip archives, .h5 files HDF5


class UserError(ValueError):
    """A file or option value the user must fix: printed as one ``error:`` line, exit code 2."""


class SpecFileError(UserError):
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
    """The spec in a YAML or JSON file, and the line of every key in it.

    Raises:
        SpecFileError: the file is missing, a directory, not text, empty, or not valid YAML/JSON.
    """
    import yaml

    from keras_surgeon_rl.schema import SPEC_SCHEMA

    if path.is_dir():
        raise SpecFileError(f"{path}: is a directory, not a spec file; give the spec's YAML or JSON file")
    if not path.exists():
        raise SpecFileError(f"{path}: no such spec file; give the path of a YAML or JSON spec")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise SpecFileError(f"{path}: cannot read the spec file ({e.strerror}); check its permissions") from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        if raw.startswith((_ZIP, _HDF5)):
            raise SpecFileError(f"{path}: is a model file, not a spec; give the spec (YAML or JSON) in the spec's "
                                "place (see --help for the order of the arguments)") from e
        raise SpecFileError(f"{path}: not a text file (byte {e.start} is not UTF-8); a spec is YAML or JSON "
                            "text") from e
    empty = (f"{path}: the spec is empty; give at least one change, e.g. 'units: {{hidden: 64}}' "
             f"(keys: {', '.join(SPEC_SCHEMA['properties'])})")
    if not text.strip():
        raise SpecFileError(empty)
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        cyclic = _cyclic(data)
    except json.JSONDecodeError as e:
        raise SpecFileError(f"{path}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}") from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        raise SpecFileError(f"{where}: not valid YAML: {getattr(e, 'problem', e)}") from e
    except RecursionError as e:
        raise SpecFileError(f"{path}: nested too deeply to read; a spec is a few levels of keys and lists") from e
    if data is None:
        raise SpecFileError(empty)
    if cyclic:
        raise SpecFileError(f"{path}: a YAML alias (*name) refers to a list or mapping that contains it; "
                            "write the value out instead")
    try:
        node = yaml.compose(text)
        lines = _marks(node) if node is not None else {}
    except (yaml.YAMLError, RecursionError):
        lines = {}
    return data, lines


def _cyclic(value: Any, on_path: Optional[set] = None, done: Optional[set] = None) -> bool:
    """Whether a YAML alias made ``value`` contain itself (an endless structure).

    Each list and mapping is walked once, however many aliases share it.
    """
    on_path = set() if on_path is None else on_path
    done = set() if done is None else done
    if not isinstance(value, (dict, list)) or id(value) in done:
        return False
    if id(value) in on_path:
        return True
    on_path.add(id(value))
    if any(_cyclic(v, on_path, done) for v in (value.values() if isinstance(value, dict) else value)):
        return True
    on_path.discard(id(value))
    done.add(id(value))
    return False


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


# Options and files, checked before any model is loaded or built (and before Keras is imported) --
def check_output(output: Path, source: Path) -> None:
    """Raise a :class:`UserError` naming ``-o`` and the fix when the new model cannot be written there."""
    opt = f"-o {output}"
    if output.is_dir():
        raise UserError(f"{opt}: is a directory; give a file name in it, e.g. -o {output / 'new.keras'}")
    if output.suffix not in (".keras", ".h5"):
        raise UserError(f"{opt}: a model file ends in .keras (or .h5, for tf_keras models); e.g. "
                        f"-o {output.with_suffix('.keras') if output.name else 'new.keras'}")
    parent = output.parent
    if not parent.exists():
        raise UserError(f"{opt}: the directory {str(parent)!r} does not exist; create it first (mkdir -p {parent}) "
                        "or choose another -o")
    if not parent.is_dir():
        raise UserError(f"{opt}: {str(parent)!r} is a file, not a directory; choose another -o")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(f"{opt}: cannot write into {str(parent)!r} (permission denied); choose a writable "
                        "directory for -o")
    if output.resolve() == source.resolve() or (output.exists() and source.exists()
                                                  and os.path.samefile(output, source)):
        raise UserError(f"{opt}: is the source model {source}; refusing to overwrite it, choose another -o")
    ids = Path(str(output) + ".ids.json")
    if ids.is_dir():
        raise UserError(f"{opt}: its unit-ID file {ids} would replace a directory; remove that directory or "
                        "choose another -o")


def check_verify_options(samples: int, tol: float) -> None:
    """Raise a :class:`UserError` naming ``--samples`` or ``--tol`` when its value makes no sense."""
    if not 1 <= samples <= MAX_SAMPLES:
        raise UserError(f"--samples {samples}: give a number of random samples from 1 to {MAX_SAMPLES:,} "
                        "(default 256); for more, pass your own with --inputs")
    if not (math.isfinite(tol) and tol >= 0):
        raise UserError(f"--tol {tol}: give a finite tolerance of 0 or more, e.g. --tol 1e-5 (the default)")


def read_inputs(path: Path):
    """The array of a ``--inputs`` file: a numeric ``.npy`` of shape ``(samples, ...)`` with finite values.

    Raises:
        UserError: naming ``--inputs``, what is wrong with the file, and how to write a good one.
    """
    import numpy as np
    from numpy.lib import format as npy

    opt = f"--inputs {path}"
    save = "save the old model's inputs with numpy.save(path, x), x of shape (samples, features)"
    if path.is_dir():
        raise UserError(f"{opt}: is a directory; give a .npy file ({save})")
    if not path.exists():
        raise UserError(f"{opt}: no such file; {save}, or omit --inputs for random inputs")
    try:
        with open(path, "rb") as f:
            head = f.read(6)
            f.seek(0)
            version = npy.read_magic(f) if head == b"\x93NUMPY" else None
            header = {(1, 0): npy.read_array_header_1_0, (2, 0): npy.read_array_header_2_0}.get(version)
            dtype = header(f)[2] if header else None
    except OSError as e:
        raise UserError(f"{opt}: cannot read it ({e.strerror}); {save}") from e
    except ValueError as e:
        raise UserError(f"{opt}: a damaged .npy header ({e}); {save}") from e
    if head.startswith(b"PK"):
        raise UserError(f"{opt}: is a .npz archive; give one array as a .npy file ({save})")
    if head != b"\x93NUMPY":
        raise UserError(f"{opt}: not a .npy file; {save}")
    if dtype is not None and dtype.hasobject:
        raise UserError(f"{opt}: holds Python objects (dtype {dtype}), not numbers; {save} from a numeric array")
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise UserError(f"{opt}: cannot read the array ({e}); the file may be truncated: {save}") from e
    if x.dtype.kind not in "biuf":
        raise UserError(f"{opt}: holds {x.dtype} values, not numbers; {save} from a float array")
    if x.ndim < 2:
        raise UserError(f"{opt}: shape {x.shape} has no sample axis; give shape (samples, features), e.g. "
                        "x.reshape(1, -1) for one sample")
    if x.shape[0] == 0:
        raise UserError(f"{opt}: shape {x.shape} holds no samples; give at least one")
    bad = int(x.size - np.count_nonzero(np.isfinite(x)))
    if bad:
        raise UserError(f"{opt}: {bad} of its values are NaN or infinite; verify compares outputs on finite "
                        "inputs only")
    return x


def check_inputs_fit(path: Path, x, model, model_path: Path) -> None:
    """Raise a :class:`UserError` when the ``--inputs`` array does not fit the old model's input."""
    shapes = [tuple(None if d is None else int(d) for d in tuple(t.shape)[1:]) for t in model.inputs]
    opt = f"--inputs {path}"
    if len(shapes) != 1:
        raise UserError(f"{opt}: the old model {model_path} has {len(shapes)} inputs, and --inputs gives one "
                        "array; omit --inputs to verify it on random inputs")
    want = shapes[0]
    fits = len(x.shape) == len(want) + 1 and all(w is None or g == w for g, w in zip(x.shape[1:], want))
    if not fits:
        wanted = ", ".join(["samples", *("any" if w is None else str(w) for w in want)])
        raise UserError(f"{opt}: shape {x.shape}, but the old model {model_path} takes inputs of shape "
                        f"({wanted}); give an array of that shape")


def check_sidecar(model_path: Path) -> None:
    """Refuse a unit-ID sidecar whose JSON has the wrong structure, naming the key and the fix.

    A missing sidecar is fine (no IDs). Unreadable JSON, a sidecar that is not a JSON object, and one
    that does not match its model are reported by :func:`keras_surgeon_rl.io.load_model`.
    """
    from keras_surgeon_rl.io import sidecar

    path = sidecar(model_path)
    if not path.is_file():
        return
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    except RecursionError:
        problem: Optional[str] = "nested too deeply to be a unit-ID file"
    else:
        if not isinstance(data, dict):
            return
        problem = _sidecar_problem(data)
    if problem:
        raise UserError(f"{path}: {problem}; delete {path.name} to use {model_path.name} without unit IDs, or "
                        "save the model again with keras_surgeon_rl.io.save_model")


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


def _sidecar_problem(data: dict) -> Optional[str]:
    for key, what in (("inputs", "input"), ("layers", "layer")):
        value = data.get(key, {})
        if not isinstance(value, dict):
            return f"{key!r} is {_json_type(value)}; it must map {what} names to lists of unit IDs"
        for name, ids in value.items():
            if not isinstance(ids, list):
                return f"{key}[{name!r}] is {_json_type(ids)}; it must be a list of unit IDs"
    fp = data.get("fingerprint")
    if fp is None:
        return None
    if not isinstance(fp, dict):
        return f"'fingerprint' is {_json_type(fp)}; it must be an object with 'inputs' and 'layers'"
    rows = fp.get("layers", [])
    if not isinstance(rows, list):
        return f"fingerprint['layers'] is {_json_type(rows)}; it must be a list of [name, class, weight shapes]"
    for i, row in enumerate(rows):
        if not (isinstance(row, list) and len(row) == 3 and isinstance(row[0], str)):
            return f"fingerprint['layers'][{i}] is not [name, class, weight shapes]"
    return None


def check_model_file(path: Path) -> None:
    """Raise a :class:`UserError` when ``path`` is missing, a directory or plainly not a model file."""
    save = "save it with model.save('model.keras') or keras_surgeon_rl.io.save_model"
    if path.is_dir():
        raise UserError(f"{path}: is a directory, not a model file (a TensorFlow SavedModel?); the command line "
                        f"reads .keras and .h5 files: load the model in Python and {save}")
    if not path.exists():
        raise UserError(f"{path}: no such model file; give the path of a .keras or .h5 file")
    try:
        size, kind = path.stat().st_size, _model_kind(path)
    except OSError as e:
        raise UserError(f"{path}: cannot read the model file ({e.strerror}); check its permissions") from e
    if not size:
        raise UserError(f"{path}: an empty file, not a model (an interrupted copy?); copy the model again, or "
                        f"load it in Python and {save}")
    if kind is None:
        raise UserError(f"{path}: neither a .keras archive nor an HDF5 (.h5) model file; give a model in its "
                        f"place (see --help for the order of the arguments), or load the model in Python and {save}")


def _model_kind(path: Path) -> Optional[str]:
    """``"zip"`` or ``"hdf5"`` from the file's signature (HDF5 may follow a user block of 512·2^k bytes)."""
    with open(path, "rb") as f:
        if f.read(4) == _ZIP:
            return "zip"
        size, offset = path.stat().st_size, 0
        while offset + 8 <= size:
            f.seek(offset)
            if f.read(8) == _HDF5:
                return "hdf5"
            offset = 512 if offset == 0 else 2 * offset
    return None


def is_sb3_agent(path: Path) -> bool:
    """Whether ``path`` is a Stable-Baselines3 save (a zip holding ``policy.pth``), not a .keras archive."""
    import zipfile

    try:
        return path.is_file() and zipfile.is_zipfile(path) and "policy.pth" in zipfile.ZipFile(path).namelist()
    except (OSError, zipfile.BadZipFile):
        return False


def _sb3():
    try:
        from keras_surgeon_rl import sb3
        import stable_baselines3  # noqa: F401
    except ImportError as e:
        raise UserError(f"Stable-Baselines3 agents need the sb3 extra: pip install 'keras-surgeon-rl[sb3]' "
                        f"({e})") from e
    return sb3


def _sb3_env(env_id: Optional[str]):
    if env_id is None:
        return None
    import gymnasium

    from keras_surgeon_rl.sb3.envs import make_env

    try:
        return make_env(env_id)
    except (gymnasium.error.Error, ValueError) as e:
        raise UserError(f"--env {env_id}: {e}") from e


def nonfinite_layer(model) -> Optional[str]:
    """The name of the first layer of ``model`` with a NaN or infinite weight, or ``None``."""
    import numpy as np

    for layer in model.layers:
        if any(not np.isfinite(w).all() for w in layer.get_weights() if w.dtype.kind == "f"):
            return layer.name
    return None


def load(model_path: Path):
    """:func:`keras_surgeon_rl.io.load_model` after :func:`check_model_file` and :func:`check_sidecar`."""
    from keras_surgeon_rl.io import load_model

    check_model_file(model_path)
    check_sidecar(model_path)
    quiet_tensorflow()  # the first Keras import of the command: every check above runs without it
    return load_model(model_path)


# Commands ----------------------------------------------------------------------------------------
def cmd_inspect(args) -> int:
    from keras_surgeon_rl.adapters import adapter_for
    from keras_surgeon_rl.io import sidecar
    from keras_surgeon_rl.rules import rule_for
    from keras_surgeon_rl.rules.registry import LookalikeRule

    if is_sb3_agent(args.model):
        sb3 = _sb3()
        agent = sb3.load(args.model)
        print(f"Stable-Baselines3 {type(agent).__name__} ({type(agent.policy).__name__}): observations "
              f"{agent.observation_space}, actions {agent.action_space}, net_arch "
              f"{agent.policy_kwargs.get('net_arch', 'default')}")
        rows = [("network", "layer", "kernel (in, out)", "params")]
        rows += [(n, layer, str(shape), f"{size:,}") for n, layer, shape, size in sb3.layers(agent)]
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        for r in rows:
            print("  ".join(c.ljust(w) if i != 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
        print("unit IDs: observation features, actions and hidden units count 0..n-1 unless the spec names them")
        return EXIT_OK
    model = load(args.model)
    graph = adapter_for(model).read(model)
    ids = graph.unit_ids
    print(f"model {graph.name!r} ({graph.flavour}, {'Sequential' if graph.sequential else 'Functional'}), "
          f"unit IDs {'from ' + str(sidecar(args.model)) if sidecar(args.model).exists() else 'not saved: 0..n-1'}")
    rows = [("layer", "class", "output shape", "params", "surgery")]
    for node in graph.nodes.values():
        rule = rule_for(node)
        if node.is_input:
            can = "input: features by ID"
        elif rule is None or isinstance(rule, LookalikeRule):
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
    from keras_surgeon_rl.io import save_model

    if is_sb3_agent(args.model):
        return _transplant_sb3(args)
    check_output(args.output, args.model)
    spec, lines = read_spec(args.spec)
    model = load(args.model)
    try:
        plan = surgeon.plan(model, spec)
    except SurgeryError as e:
        raise SpecFileError(_bad_spec(args.spec, lines, e)) from e
    if args.dry_run:
        print(plan)
        print("dry run: nothing written")
        return EXIT_OK
    new = surgeon.transplant_planned(model, plan)  # the plan just made: planning again would double its cost
    print(new.surgery_report)
    save_model(new, args.output)
    print(f"wrote {args.output} (+ {args.output.name}.ids.json)")
    return EXIT_OK


def _transplant_sb3(args) -> int:
    from keras_surgeon_rl.errors import SurgeryError

    if args.output.suffix != ".zip":
        raise UserError(f"-o {args.output}: a Stable-Baselines3 agent is saved as a .zip; name the output <name>.zip")
    if args.output.resolve() == args.model.resolve():
        raise UserError(f"-o {args.output}: the output would overwrite the agent itself; give another file name")
    sb3 = _sb3()
    spec, lines = read_spec(args.spec)
    env = _sb3_env(args.env)
    old = sb3.load(args.model)
    try:
        if args.dry_run:
            new = sb3.transplant(old, spec, env=env)
        else:
            new = sb3.transplant_zip(args.model, spec, args.output, env=env)
    except SurgeryError as e:
        raise SpecFileError(_bad_spec(args.spec, lines, e)) from e
    print(f"{type(new).__name__}: observations {old.observation_space.shape} -> {new.observation_space.shape}, "
          f"actions {old.action_space} -> {new.action_space}, net_arch {old.policy_kwargs.get('net_arch')} -> "
          f"{new.policy_kwargs.get('net_arch')}; largest difference on the old IDs: {sb3.verify(old, new, spec):.3g}")
    print("dry run: nothing written" if args.dry_run else f"wrote {args.output}")
    return EXIT_OK


def _verify_sb3(args) -> int:
    from keras_surgeon_rl.errors import SurgeryError

    sb3 = _sb3()
    spec, lines = read_spec(args.spec)
    if args.inputs is not None:
        raise UserError("--inputs is for Keras models; Stable-Baselines3 agents are verified on --samples random "
                        "observations within the old observation space")
    old, new = sb3.load(args.old), sb3.load(args.new)
    try:
        diff = sb3.verify(old, new, spec, n=args.samples)
    except SurgeryError as e:
        raise SpecFileError(_bad_spec(args.spec, lines, e)) from e
    ok = diff <= args.tol
    print(f"largest difference on the old IDs: {diff:.3g} ({'within' if ok else 'ABOVE'} tolerance {args.tol:g})")
    return EXIT_OK if ok else EXIT_FAILED


def cmd_verify(args) -> int:
    from keras_surgeon_rl import surgeon
    from keras_surgeon_rl.errors import SurgeryError

    check_verify_options(args.samples, args.tol)
    if is_sb3_agent(args.old):
        return _verify_sb3(args)
    x = read_inputs(args.inputs) if args.inputs is not None else None
    spec, lines = read_spec(args.spec)
    old, new = load(args.old), load(args.new)
    if x is not None:
        check_inputs_fit(args.inputs, x, old, args.old)
    bad = nonfinite_layer(old)
    if bad:
        raise UserError(f"{args.old}: layer {bad!r} has NaN or infinite weights, so its outputs mean nothing; "
                        "verify against a model with finite weights")
    try:
        diff = surgeon.verify(old, new, spec, x=x, n=args.samples)
    except SurgeryError as e:
        raise SpecFileError(_bad_spec(args.spec, lines, e)) from e
    bad = nonfinite_layer(new)
    if bad:  # surgeon.verify's max skips NaN differences: never call such a model within tolerance
        print(f"{args.new}: layer {bad!r} has NaN or infinite weights")
        diff = math.nan
    ok = diff <= args.tol
    print(f"largest difference on shared outputs: {diff:.3g} ({'within' if ok else 'ABOVE'} tolerance {args.tol:g})")
    return EXIT_OK if ok else EXIT_FAILED


def cmd_schema(args) -> int:
    from keras_surgeon_rl.schema import SPEC_SCHEMA

    if args.check is None:
        print(json.dumps(SPEC_SCHEMA, indent=2))
        return EXIT_OK
    from keras_surgeon_rl.errors import SurgeryError
    from keras_surgeon_rl.spec import Spec

    spec, lines = read_spec(args.check)
    try:
        Spec.parse(spec)
    except SurgeryError as e:
        raise UserError(_bad_spec(args.check, lines, e)) from e
    print(f"{args.check}: a valid spec (its names and IDs are checked against a model by transplant --dry-run)")
    return EXIT_OK


def parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="log what the library does; print the traceback of an internal error")
    p = argparse.ArgumentParser(prog="keras-surgeon-rl", description=__doc__, parents=[common],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    i = sub.add_parser("inspect", parents=[common],
                       help="layers, shapes, parameters, unit IDs, what surgery can change")
    i.add_argument("model", type=Path)
    i.set_defaults(run=cmd_inspect)
    t = sub.add_parser("transplant", parents=[common], help="apply a spec (YAML or JSON) and write the new model")
    t.add_argument("model", type=Path)
    t.add_argument("spec", type=Path)
    t.add_argument("-o", "--output", type=Path, required=True,
                   help="the new model: a .keras (or tf_keras .h5) file; for a Stable-Baselines3 agent a .zip")
    t.add_argument("--dry-run", action="store_true", help="print the plan, write nothing")
    t.add_argument("--env", metavar="ID", help="Stable-Baselines3 agents: a gymnasium id of the new setting, whose "
                                              "spaces bound new observation features and actions")
    t.set_defaults(run=cmd_transplant)
    v = sub.add_parser("verify", parents=[common],
                       help="largest output difference between old and new on shared units")
    v.add_argument("old", type=Path)
    v.add_argument("new", type=Path)
    v.add_argument("spec", type=Path)
    v.add_argument("--inputs", type=Path, help="old-model inputs, shape (samples, features...), as a .npy file "
                                               "(default: random)")
    v.add_argument("--samples", type=int, default=256,
                   help=f"random samples when --inputs is not given (1 to {MAX_SAMPLES:,}; default 256)")
    v.add_argument("--tol", type=float, default=1e-5, help="largest difference that passes (default 1e-5)")
    v.set_defaults(run=cmd_verify)
    s = sub.add_parser("schema", parents=[common], help="print the spec's JSON Schema, or check a spec file against it")
    s.add_argument("--check", type=Path, metavar="SPEC", help="a spec file (YAML or JSON) to check instead")
    s.set_defaults(run=cmd_schema)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit code (see the module docstring)."""
    from keras_surgeon_rl.errors import SurgeryError

    args = parser().parse_args(argv)
    verbose = getattr(args, "verbose", False)
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s")
    try:
        return args.run(args)
    except (UserError, SurgeryError) as e:  # SurgeryError includes io's ModelFileError
        print("error: " + " ".join(line.strip() for line in str(e).splitlines() if line.strip()), file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # output piped into `head`
        return EXIT_OK
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:  # a bug: say so in one line, keep the traceback for -v
        first = next((line.strip() for line in str(e).splitlines() if line.strip()), "")
        print(f"internal error: {type(e).__name__}" + (f": {first}" if first else ""), file=sys.stderr)
        print("please report this with the command that caused it"
              + ("" if verbose else " (run it again with -v to see the traceback)"), file=sys.stderr)
        if verbose:
            traceback.print_exc()
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
