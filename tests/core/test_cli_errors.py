"""The command line's contract: exit codes, and one ``error:`` line for every user mistake.

0 success, 1 only for ``verify`` above tolerance, 2 for every user error (one line naming the file,
option or key at fault and the fix; no traceback; nothing written, the source model and its sidecar
byte-identical), 3 for an internal error (a bug: one line, the traceback only with ``-v``).

The CLI runs in-process (``cli.main``); two subprocesses check the real entry point
``python -m keras_surgeon_rl``, where the exit code and the absence of a traceback are the process's.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import yaml

from keras_surgeon_rl import set_unit_ids, surgeon
from keras_surgeon_rl.cli import main
from keras_surgeon_rl.io import save_model
from keras_surgeon_rl.rules import PassThrough, register_rule

from conftest import FLAVOURS, randomize

ADD = """\
inputs:
  new: [x, x_dot, theta, theta_dot]
outputs:
  new: [left, right, noop]
  init: keep_greedy
units:
  h0: 16
"""


def qnet(K):
    model = K.Sequential([K.Input((2,), name="obs"), K.layers.Dense(8, activation="relu", name="h0"),
                          K.layers.Dense(2, name="q")], name="qnet")
    randomize(model)
    set_unit_ids(model, inputs={"obs": ["x_dot", "theta"]}, layers={"q": ["left", "right"]})
    return model


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    """Models, spec and inputs every case reads (never writes): built once for the module."""
    d = tmp_path_factory.mktemp("cli_src")
    model = qnet(keras)
    save_model(model, d / "k3.keras")
    if "tf_keras" in FLAVOURS:
        save_model(qnet(FLAVOURS["tf_keras"]), d / "k2.h5")
    (d / "add.yaml").write_text(ADD)
    wide = surgeon.transplant(model, yaml.safe_load(ADD))
    save_model(wide, d / "wide.keras")
    q = wide.get_layer("q")
    kernel, bias = q.get_weights()
    q.set_weights([kernel + 0.1, bias])
    save_model(wide, d / "broken.keras")
    q.set_weights([kernel * np.nan, bias])
    save_model(wide, d / "nan_wide.keras")
    h0 = model.get_layer("h0")
    h0.set_weights([h0.get_weights()[0] * np.inf, h0.get_weights()[1]])
    save_model(model, d / "inf_k3.keras")
    np.save(d / "x.npy", np.random.default_rng(0).normal(size=(16, 2)).astype("float32"))
    return d


def snapshot(*dirs):
    """Every file under ``dirs`` with the SHA-256 of its bytes."""
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for d in dirs for p in sorted(Path(d).rglob("*")) if p.is_file()}


def run(argv, capsys):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


# Fault set-ups: each writes what the case needs into `t` (the test's own directory) ---------------
def write(name, data):
    def setup(t, s):
        (t / name).write_bytes(data.encode() if isinstance(data, str) else data)
    return setup


def model_copy(name="m.keras", ids=None, ids_text=None):
    """A copy of k3.keras (and its sidecar) named ``name``; ``ids``/``ids_text`` replace the sidecar."""
    def setup(t, s):
        shutil.copy(s / "k3.keras", t / name)
        good = json.loads((s / "k3.keras.ids.json").read_text())
        good["model_file"] = name
        text = ids_text if ids_text is not None else json.dumps(ids(good) if ids else good)
        (t / f"{name}.ids.json").write_text(text)
    return setup


def both(*setups):
    def setup(t, s):
        for f in setups:
            f(t, s)
    return setup


def mkdir(name):
    return lambda t, s: (t / name).mkdir(parents=True)


def npy(name, array, **kw):
    return lambda t, s: np.save(t / name, array, **kw)


def zip_without_metadata(t, s):
    import zipfile

    with zipfile.ZipFile(t / "notkeras.keras", "w") as z:
        z.writestr("hello.txt", "not a model")


def truncated(source, name, keep=3000):
    def setup(t, s):
        if not (s / source).exists():
            pytest.skip(f"no {source}: tf_keras is TensorFlow's")
        (t / name).write_bytes((s / source).read_bytes()[:keep])
    return setup


def link_to_source(t, s):
    os.symlink(s / "k3.keras", t / "link.keras")


def truncated_npy(t, s):
    np.save(t / "cut.npy", np.zeros((100, 2), "float32"))
    data = (t / "cut.npy").read_bytes()
    (t / "cut.npy").write_bytes(data[:200])


T3 = ["transplant", "{s}/k3.keras", "{s}/add.yaml", "-o"]
V = ["verify", "{s}/k3.keras", "{s}/wide.keras", "{s}/add.yaml"]


def spec_case(text, name="spec.yaml"):
    return write(name, text), ["transplant", "{s}/k3.keras", "{t}/" + name, "-o", "{t}/o.keras"]


# (id, set-up or None, argv with {s} = shared sources and {t} = the test's directory, what the error names)
CASES = [
    # -o: where the new model goes, checked before anything is loaded
    ("o-missing-dir", None, T3 + ["{t}/missing/o.keras"], ["-o", "missing", "mkdir"]),
    ("o-is-directory", mkdir("out.keras"), T3 + ["{t}/out.keras"], ["-o", "out.keras", "is a directory"]),
    ("o-is-test-dir", None, T3 + ["{t}"], ["-o", "is a directory"]),
    ("o-suffix-txt", None, T3 + ["{t}/o.txt"], ["-o", "o.txt", ".keras"]),
    ("o-no-suffix", None, T3 + ["{t}/o"], ["-o", ".keras"]),
    ("o-sidecar-name", None, T3 + ["{t}/o.ids.json"], ["-o", "o.ids.json"]),
    ("o-is-source", None, T3 + ["{s}/k3.keras"], ["-o", "k3.keras", "source model"]),
    ("o-is-source-spelled-otherwise", None, T3 + ["{s}/../" + "{sname}/k3.keras"], ["-o", "source model"]),
    ("o-symlink-to-source", link_to_source, T3 + ["{t}/link.keras"], ["-o", "link.keras", "source model"]),
    ("o-parent-is-file", write("file.txt", "x"), T3 + ["{t}/file.txt/o.keras"], ["-o", "file.txt", "not a directory"]),
    ("o-sidecar-is-dir", mkdir("o.keras.ids.json"), T3 + ["{t}/o.keras"], ["-o", "o.keras.ids.json"]),
    ("o-checked-on-dry-run", None, T3 + ["{t}/o.txt", "--dry-run"], ["-o", "o.txt"]),
    # the spec file
    ("spec-missing", None, ["transplant", "{s}/k3.keras", "{t}/nope.yaml", "-o", "{t}/o.keras"],
     ["nope.yaml", "no such"]),
    ("spec-is-dir", mkdir("specs"), ["transplant", "{s}/k3.keras", "{t}/specs", "-o", "{t}/o.keras"],
     ["specs", "is a directory"]),
    ("spec-empty", *spec_case(""), ["spec.yaml", "the spec is empty"]),
    ("spec-null", *spec_case("null\n"), ["spec.yaml", "the spec is empty"]),
    ("spec-only-comments", *spec_case("# nothing yet\n\n"), ["spec.yaml", "the spec is empty"]),
    ("spec-empty-json", *spec_case("", "spec.json"), ["spec.json", "the spec is empty"]),
    ("spec-is-a-model", None, ["transplant", "{s}/k3.keras", "{s}/k3.keras", "-o", "{t}/o.keras"],
     ["k3.keras", "not a spec"]),
    ("spec-arguments-swapped", None, ["transplant", "{s}/add.yaml", "{s}/k3.keras", "-o", "{t}/o.keras"],
     ["k3.keras", "not a spec"]),
    ("spec-not-utf8", *spec_case(b"units:\n  h0: \xe9\xff\n"), ["spec.yaml", "UTF-8"]),
    ("spec-yaml-tab", *spec_case("units:\n\th0: 3\n"), ["spec.yaml:2:", "not valid YAML"]),
    ("spec-json-syntax", *spec_case('{"units": {"h0": 3,}}', "spec.json"), ["spec.json:1:", "not valid JSON"]),
    ("spec-alias-loop", *spec_case("units: &a [*a]\n"), ["spec.yaml", "alias"]),
    ("spec-list", *spec_case("- units\n"), ["spec.yaml", "dict"]),
    ("spec-unknown-key", *spec_case("unit: {h0: 3}\n"), ["spec.yaml:1", "'unit'", "units"]),
    ("spec-unknown-layer", *spec_case("units: {h9: 3}\n"), ["spec.yaml:1", "'h9'", "h0"]),
    ("spec-bad-count", *spec_case("units: {h0: -1}\n"), ["spec.yaml:1", "units['h0']"]),
    ("spec-not-shape-preserving-delete", *spec_case("delete: [h0]\n"), ["spec.yaml:1", "'h0'"]),
    # model files
    ("model-missing", None, ["inspect", "{t}/nope.keras"], ["nope.keras", "no such model file"]),
    ("model-is-dir", mkdir("saved_model"), ["inspect", "{t}/saved_model"], ["saved_model", "is a directory"]),
    ("model-empty", write("empty.keras", b""), ["inspect", "{t}/empty.keras"], ["empty.keras", "empty file"]),
    ("model-garbage", write("junk.keras", b"\x00junk" * 200), ["inspect", "{t}/junk.keras"],
     ["junk.keras", "neither a .keras archive nor an HDF5"]),
    ("model-is-a-spec", None, ["inspect", "{s}/add.yaml"], ["add.yaml", "neither a .keras archive"]),
    ("model-truncated-keras", truncated("k3.keras", "cut.keras"), ["inspect", "{t}/cut.keras"], ["cut.keras"]),
    ("model-truncated-h5", truncated("k2.h5", "cut.h5"), ["inspect", "{t}/cut.h5"], ["cut.h5"]),
    ("model-zip-not-keras", zip_without_metadata, ["inspect", "{t}/notkeras.keras"], ["notkeras.keras"]),
    ("transplant-model-missing", None, ["transplant", "{t}/nope.keras", "{s}/add.yaml", "-o", "{t}/o.keras"],
     ["nope.keras"]),
    ("verify-new-model-missing", None, ["verify", "{s}/k3.keras", "{t}/nope.keras", "{s}/add.yaml"], ["nope.keras"]),
    ("verify-old-model-not-finite", None, ["verify", "{s}/inf_k3.keras", "{s}/wide.keras", "{s}/add.yaml"],
     ["inf_k3.keras", "'h0'", "infinite"]),
    ("verify-models-swapped", None, ["verify", "{s}/wide.keras", "{s}/k3.keras", "{s}/add.yaml"],
     ["add.yaml", "spec"]),
    # unit-ID sidecars
    ("sidecar-bad-json", model_copy(ids_text="{not json"), ["inspect", "{t}/m.keras"], ["m.keras.ids.json", "delete"]),
    ("sidecar-empty", model_copy(ids_text=""), ["inspect", "{t}/m.keras"], ["m.keras.ids.json", "delete"]),
    ("sidecar-list", model_copy(ids_text="[1, 2]"), ["inspect", "{t}/m.keras"], ["m.keras.ids.json", "delete"]),
    ("sidecar-inputs-string", model_copy(ids=lambda g: {**g, "inputs": "obs"}), ["inspect", "{t}/m.keras"],
     ["m.keras.ids.json", "'inputs'", "delete"]),
    ("sidecar-layers-list", model_copy(ids=lambda g: {**g, "layers": ["q"]}), ["inspect", "{t}/m.keras"],
     ["m.keras.ids.json", "'layers'", "delete"]),
    ("sidecar-ids-null", model_copy(ids=lambda g: {**g, "inputs": {"obs": None}}), ["inspect", "{t}/m.keras"],
     ["m.keras.ids.json", "'obs'"]),
    ("sidecar-input-count", model_copy(ids=lambda g: {**g, "inputs": {"obs": ["a", "b", "c"]}}),
     ["inspect", "{t}/m.keras"], ["m.keras.ids.json", "'obs'", "delete"]),
    ("sidecar-layer-count", model_copy(ids=lambda g: {**g, "layers": {"q": ["left"]}}),
     ["inspect", "{t}/m.keras"], ["m.keras.ids.json", "'q'", "delete"]),
    ("sidecar-unknown-layer", model_copy(ids=lambda g: {**g, "layers": {"zz": ["a"]}}),
     ["inspect", "{t}/m.keras"], ["m.keras.ids.json", "'zz'"]),
    ("sidecar-duplicate-ids", model_copy(ids=lambda g: {**g, "inputs": {"obs": ["a", "a"]}}),
     ["inspect", "{t}/m.keras"], ["m.keras.ids.json", "'a'"]),
    ("sidecar-other-model-file", model_copy(ids=lambda g: {**g, "model_sha256": "0" * 64}),
     ["inspect", "{t}/m.keras"], ["m.keras.ids.json", "SHA-256"]),
    ("sidecar-fingerprint-string", model_copy(ids=lambda g: {**g, "fingerprint": "x"}),
     ["inspect", "{t}/m.keras"], ["m.keras.ids.json", "'fingerprint'"]),
    ("sidecar-fingerprint-rows", model_copy(ids=lambda g: {**g, "fingerprint": {"inputs": [[2]], "layers": [1]}}),
     ["inspect", "{t}/m.keras"], ["m.keras.ids.json", "fingerprint['layers'][0]"]),
    ("sidecar-is-dir", both(lambda t, s: shutil.copy(s / "k3.keras", t / "m.keras"), mkdir("m.keras.ids.json")),
     ["inspect", "{t}/m.keras"], ["m.keras.ids.json"]),
    ("sidecar-bad-in-transplant", model_copy(ids=lambda g: {**g, "inputs": []}),
     ["transplant", "{t}/m.keras", "{s}/add.yaml", "-o", "{t}/o.keras"], ["m.keras.ids.json", "'inputs'"]),
    ("sidecar-bad-of-verify-new-model",
     both(lambda t, s: shutil.copy(s / "wide.keras", t / "w.keras"), write("w.keras.ids.json", "{")),
     ["verify", "{s}/k3.keras", "{t}/w.keras", "{s}/add.yaml"], ["w.keras.ids.json"]),
    # verify's options
    ("samples-zero", None, V + ["--samples", "0"], ["--samples 0"]),
    ("samples-negative", None, V + ["--samples", "-5"], ["--samples -5"]),
    ("samples-absurd", None, V + ["--samples", "1000000000000"], ["--samples", "--inputs"]),
    ("tol-nan", None, V + ["--tol", "nan"], ["--tol nan", "finite"]),
    ("tol-negative", None, V + ["--tol=-1e-5"], ["--tol", "0 or more"]),
    ("tol-inf", None, V + ["--tol", "inf"], ["--tol inf", "finite"]),
    ("inputs-wrong-features", npy("x.npy", np.zeros((4, 3), "float32")), V + ["--inputs", "{t}/x.npy"],
     ["--inputs", "x.npy", "(4, 3)", "(samples, 2)"]),
    ("inputs-one-sample-1d", npy("x.npy", np.zeros(2, "float32")), V + ["--inputs", "{t}/x.npy"],
     ["--inputs", "x.npy", "reshape"]),
    ("inputs-rank-3", npy("x.npy", np.zeros((4, 2, 1), "float32")), V + ["--inputs", "{t}/x.npy"],
     ["--inputs", "x.npy", "(samples, 2)"]),
    ("inputs-no-samples", npy("x.npy", np.zeros((0, 2), "float32")), V + ["--inputs", "{t}/x.npy"],
     ["--inputs", "x.npy", "no samples"]),
    ("inputs-objects", npy("x.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True),
     V + ["--inputs", "{t}/x.npy"], ["--inputs", "x.npy", "objects"]),
    ("inputs-strings", npy("x.npy", np.array([["a", "b"]])), V + ["--inputs", "{t}/x.npy"],
     ["--inputs", "x.npy", "not numbers"]),
    ("inputs-complex", npy("x.npy", np.zeros((4, 2), "complex64")), V + ["--inputs", "{t}/x.npy"],
     ["--inputs", "x.npy", "not numbers"]),
    ("inputs-nan", npy("x.npy", np.full((4, 2), np.nan, "float32")), V + ["--inputs", "{t}/x.npy"],
     ["--inputs", "x.npy", "NaN"]),
    ("inputs-npz", lambda t, s: np.savez(t / "x.npz", x=np.zeros((4, 2))), V + ["--inputs", "{t}/x.npz"],
     ["--inputs", "x.npz", ".npz"]),
    ("inputs-text", write("x.npy", "1 2\n3 4\n"), V + ["--inputs", "{t}/x.npy"], ["--inputs", "x.npy", "numpy.save"]),
    ("inputs-truncated", truncated_npy, V + ["--inputs", "{t}/cut.npy"], ["--inputs", "cut.npy", "truncated"]),
    ("inputs-missing", None, V + ["--inputs", "{t}/nope.npy"], ["--inputs", "nope.npy", "no such file"]),
    ("inputs-is-dir", mkdir("x.npy"), V + ["--inputs", "{t}/x.npy"], ["--inputs", "x.npy", "directory"]),
]


@pytest.mark.parametrize("setup, argv, culprits", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_user_error_is_one_line_exit_2_and_writes_nothing(src, tmp_path, capsys, setup, argv, culprits):
    if setup is not None:
        setup(tmp_path, src)
    before = snapshot(src, tmp_path)
    argv = [a.format(s=src, t=tmp_path, sname=src.name) for a in argv]
    code, out, err = run(argv, capsys)
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2, (out, err)
    assert len(errors) == 1, err
    for culprit in culprits:
        assert culprit in errors[0], (culprit, errors[0])
    assert "Traceback" not in out + err
    assert snapshot(src, tmp_path) == before  # sources, sidecars and test files unchanged, nothing new


def test_read_only_directory(src, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip("running as root: a read-only directory is writable")
        code, out, err = run(["transplant", src / "k3.keras", src / "add.yaml", "-o", ro / "o.keras"], capsys)
        assert code == 2 and err.startswith("error: -o ") and "permission denied" in err and "Traceback" not in err
        assert not list(ro.iterdir())
    finally:
        ro.chmod(0o755)


@pytest.mark.parametrize("argv", [
    [], ["transplant", "a.keras", "b.yaml"], ["verify", "a", "b", "c", "--tol", "abc"], ["frobnicate"],
    ["verify", "a", "b", "c", "--samples", "1.5"],
], ids=["no-command", "no-output", "tol-not-a-number", "unknown-command", "samples-not-an-int"])
def test_usage_errors_stay_argparse_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    out, err = capsys.readouterr()
    assert e.value.code == 2 and "usage:" in err and "Traceback" not in out + err


# Success and verify's verdict ---------------------------------------------------------------------
def test_success_exits_0(src, tmp_path, capsys):
    assert run(["inspect", src / "k3.keras"], capsys)[0] == 0
    dry = ["transplant", src / "k3.keras", src / "add.yaml", "-o", tmp_path / "o.keras", "--dry-run"]
    assert run(dry, capsys)[0] == 0
    assert not (tmp_path / "o.keras").exists()
    code, out, err = run(["transplant", src / "k3.keras", src / "add.yaml", "-o", tmp_path / "o.keras"], capsys)
    assert code == 0 and "wrote" in out and (tmp_path / "o.keras.ids.json").exists(), err
    code, out, _ = run(["verify", src / "k3.keras", tmp_path / "o.keras", src / "add.yaml", "--inputs", src / "x.npy"],
                       capsys)
    assert code == 0 and "within tolerance" in out


def test_verify_above_tolerance_exits_1_and_only_then(src, capsys):
    code, out, err = run(["verify", src / "k3.keras", src / "broken.keras", src / "add.yaml"], capsys)
    assert code == 1 and "ABOVE tolerance" in out and "error" not in err
    code, out, _ = run(["verify", src / "k3.keras", src / "broken.keras", src / "add.yaml", "--tol", "1e3"], capsys)
    assert code == 0 and "within tolerance" in out
    # NaN outputs are never within tolerance, however large (NaN differences escape a plain max)
    code, out, _ = run(["verify", src / "k3.keras", src / "nan_wide.keras", src / "add.yaml", "--tol", "1e30"], capsys)
    assert code == 1 and "nan (ABOVE tolerance" in out and "'q'" in out


# Internal errors: a bug in a surgery rule --------------------------------------------------------
@keras.saving.register_keras_serializable(package="ksrl_test_cli_errors")
class Scale(keras.layers.Layer):
    """A custom layer with one weight per unit."""

    def build(self, shape):
        self.scale = self.add_weight(shape=(shape[-1],), initializer="ones", name="scale")

    def call(self, x):
        return x * self.scale


class BuggyScaleRule(PassThrough):
    """A rule with a real bug: it maps ``scale`` by the layer's own units, which a pass-through layer
    does not have (``ctx.units`` is ``None``), so planning fails with an AttributeError."""

    def weight_maps(self, ctx):
        return {"scale": ctx.unit_axis()}


@pytest.fixture(scope="module")
def buggy(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli_buggy")
    inp = keras.Input((2,), name="obs")
    h = keras.layers.Dense(8, name="h0")(inp)
    save_model(keras.Model(inp, keras.layers.Dense(2, name="q")(Scale(name="scale")(h))), d / "scaled.keras")
    (d / "wider.yaml").write_text("units: {h0: 16}\n")
    register_rule(Scale, BuggyScaleRule())
    yield d
    register_rule(Scale, PassThrough(per_unit_weights={"scale": -1}))  # the rule Scale should have had


@pytest.mark.parametrize("verbose", [[], ["-v"], ["--verbose"]], ids=["quiet", "-v-after", "--verbose-after"])
def test_internal_error_exits_3_with_one_line(buggy, tmp_path, capsys, verbose):
    before = snapshot(buggy)
    code, out, err = run(["transplant", buggy / "scaled.keras", buggy / "wider.yaml", "-o", tmp_path / "o.keras",
                          *verbose], capsys)
    assert code == 3, err
    lines = err.splitlines()
    assert lines[0] == "internal error: AttributeError: 'NoneType' object has no attribute 'src'"
    assert lines[1].startswith("please report this with the command that caused it")
    assert not any(line.startswith("error:") for line in lines)
    if verbose:
        assert "Traceback" in err and "weight_maps" in err
    else:
        assert "Traceback" not in out + err and len(lines) == 2 and "-v" in lines[1]
    assert snapshot(buggy) == before and not list(tmp_path.iterdir())


def test_verbose_before_the_command_also_shows_the_traceback(buggy, tmp_path, capsys):
    code, _, err = run(["-v", "transplant", buggy / "scaled.keras", buggy / "wider.yaml", "-o", tmp_path / "o.keras"],
                       capsys)
    assert code == 3 and "Traceback" in err


def test_interrupt_exits_130(buggy, tmp_path, capsys):
    class Interrupted(PassThrough):
        def check(self, ctx):
            raise KeyboardInterrupt  # as Ctrl-C during planning

    register_rule(Scale, Interrupted())
    try:
        code, _, err = run(["transplant", buggy / "scaled.keras", buggy / "wider.yaml", "-o", tmp_path / "o.keras"],
                           capsys)
    finally:
        register_rule(Scale, BuggyScaleRule())
    assert code == 130 and err.strip() == "interrupted" and not list(tmp_path.iterdir())


# The real entry point, in processes of its own -----------------------------------------------------
def python_m(*args, code=None):
    argv = [sys.executable, "-c", code, *args] if code else [sys.executable, "-m", "keras_surgeon_rl", *args]
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=300)


def test_real_process_user_error_exit_2_without_traceback(src, tmp_path):
    (tmp_path / "m.keras").write_bytes((src / "k3.keras").read_bytes())
    (tmp_path / "m.keras.ids.json").write_text('{"inputs": {"obs": ["a", "b", "c"]}, "layers": {}}')
    before = snapshot(src, tmp_path)
    p = python_m("transplant", tmp_path / "m.keras", src / "add.yaml", "-o", tmp_path / "o.keras")
    assert p.returncode == 2, p.stderr
    assert [line for line in p.stderr.splitlines() if line.startswith("error:")] == [p.stderr.strip()]
    assert "m.keras.ids.json" in p.stderr and "Traceback" not in p.stdout + p.stderr
    assert snapshot(src, tmp_path) == before


def test_real_process_internal_error_exit_3(buggy, tmp_path):
    """``python -m keras_surgeon_rl`` (run as __main__) with the buggy rule registered first."""
    code = textwrap.dedent(f"""\
        import runpy, sys
        import keras
        from keras_surgeon_rl.rules import PassThrough, register_rule

        @keras.saving.register_keras_serializable(package="ksrl_test_cli_errors")
        class Scale(keras.layers.Layer):
            def build(self, shape):
                self.scale = self.add_weight(shape=(shape[-1],), initializer="ones", name="scale")

            def call(self, x):
                return x * self.scale

        class BuggyScaleRule(PassThrough):
            def weight_maps(self, ctx):
                return {{"scale": ctx.unit_axis()}}

        register_rule(Scale, BuggyScaleRule())
        sys.argv = ["keras_surgeon_rl", *sys.argv[1:]]
        runpy.run_module("keras_surgeon_rl", run_name="__main__")
        """)
    p = python_m("transplant", buggy / "scaled.keras", buggy / "wider.yaml", "-o", tmp_path / "o.keras", code=code)
    assert p.returncode == 3, p.stderr
    assert "internal error: AttributeError:" in p.stderr and "please report this" in p.stderr
    assert "Traceback" not in p.stdout + p.stderr and not list(tmp_path.iterdir())
