"""The real console script on real saved models of both flavours."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from keras_surgeon_rl import get_unit_ids, set_unit_ids, surgeon
from keras_surgeon_rl.cli import main
from keras_surgeon_rl.io import load_model, save_model

from conftest import FLAVOURS, randomize

CLI = shutil.which("keras-surgeon-rl", path=os.path.dirname(sys.executable)) or "keras-surgeon-rl"

ADD = """\
# CartPole: two more observations, one more action
inputs:
  new: [x, x_dot, theta, theta_dot]
outputs:
  new: [left, right, noop]
  init: keep_greedy
units:
  h0: 16
"""


def run(*args):
    return subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, timeout=300)


def qnet(K):
    model = K.Sequential([K.Input((2,), name="obs"), K.layers.Dense(8, activation="relu", name="h0"),
                          K.layers.Dense(2, name="q")], name="qnet")
    randomize(model)
    set_unit_ids(model, inputs={"obs": ["x_dot", "theta"]}, layers={"q": ["left", "right"]})
    return model


@pytest.fixture
def files(tmp_path):
    save_model(qnet(FLAVOURS["keras3"]), tmp_path / "k3.keras")
    save_model(qnet(FLAVOURS["tf_keras"]), tmp_path / "k2.h5")
    save_model(qnet(FLAVOURS["tf_keras"]), tmp_path / "k2.keras")
    (tmp_path / "add.yaml").write_text(ADD)
    return tmp_path


def test_console_script_inspect_transplant_verify_keras3(files):
    out = run("inspect", files / "k3.keras")
    assert out.returncode == 0, out.stderr
    assert "keras3" in out.stdout and "['x_dot', 'theta']" in out.stdout and "units by ID" in out.stdout
    out = run("transplant", files / "k3.keras", files / "add.yaml", "-o", files / "wide.keras")
    assert out.returncode == 0, out.stderr
    assert "h0" in out.stdout and "copied" in out.stdout
    wide = load_model(files / "wide.keras")
    assert get_unit_ids(wide)["inputs"]["obs"] == ["x", "x_dot", "theta", "theta_dot"]  # persisted IDs used
    assert get_unit_ids(wide)["layers"]["q"] == ["left", "right", "noop"]
    ok = run("verify", files / "k3.keras", files / "wide.keras", files / "add.yaml")
    assert ok.returncode == 0 and "within tolerance" in ok.stdout, ok.stderr
    # a model that does not preserve the function fails verify with exit code 1
    broken = load_model(files / "wide.keras")
    ws = broken.get_layer("q").get_weights()
    broken.get_layer("q").set_weights([ws[0] + 0.1, ws[1]])
    save_model(broken, files / "broken.keras")
    bad = run("verify", files / "k3.keras", files / "broken.keras", files / "add.yaml")
    assert bad.returncode == 1 and "ABOVE tolerance" in bad.stdout


@pytest.mark.parametrize("name", ["k2.h5", "k2.keras"])
def test_tf_keras_files_in_process(files, name, capsys):
    assert main(["inspect", str(files / name)]) == 0
    assert "tf_keras" in capsys.readouterr().out
    out = files / f"wide_{name}"
    assert main(["transplant", str(files / name), str(files / "add.yaml"), "-o", str(out)]) == 0
    assert main(["verify", str(files / name), str(out), str(files / "add.yaml")]) == 0
    x = np.random.default_rng(0).normal(size=(20, 2)).astype("float32")
    np.save(files / "x.npy", x)
    assert main(["verify", str(files / name), str(out), str(files / "add.yaml"), "--inputs", str(files / "x.npy")]) == 0


def test_dry_run_writes_nothing(files):
    out = run("transplant", files / "k3.keras", files / "add.yaml", "-o", files / "dry.keras", "--dry-run")
    assert out.returncode == 0 and "dry run" in out.stdout and "changed" in out.stdout
    assert not (files / "dry.keras").exists() and not (files / "dry.keras.ids.json").exists()


def test_malformed_specs_name_the_line_and_the_fix(files, capsys):
    (files / "typo.yaml").write_text("inputs:\n  new: [x, x_dot, theta, theta_dot]\nunits:\n  h9: 16\n")
    assert main(["transplant", str(files / "k3.keras"), str(files / "typo.yaml"), "-o", str(files / "o.keras")]) == 2
    err = capsys.readouterr().err
    assert "typo.yaml:4:" in err and "'h9'" in err and "Did you mean 'h0'" in err
    (files / "key.json").write_text('{\n  "inputs": {"new": ["x_dot", "theta"]},\n  "unit": {"h0": 3}\n}\n')
    assert main(["transplant", str(files / "k3.keras"), str(files / "key.json"), "-o", str(files / "o.keras")]) == 2
    err = capsys.readouterr().err
    assert "key.json:3:" in err and "unknown spec key 'unit'" in err and "Did you mean 'units'" in err
    (files / "type.yaml").write_text("units:\n  h0: wide\n")
    assert main(["transplant", str(files / "k3.keras"), str(files / "type.yaml"), "-o", str(files / "o.keras")]) == 2
    assert "type.yaml:2:" in capsys.readouterr().err
    (files / "syntax.json").write_text('{"units": {"h0": 3,}}')
    assert main(["transplant", str(files / "k3.keras"), str(files / "syntax.json"), "-o", str(files / "o.keras")]) == 2
    err = capsys.readouterr().err
    assert "syntax.json:1:" in err and "not valid JSON" in err
    assert not (files / "o.keras").exists()


def test_wrong_format_file_is_named(files):
    out = run("inspect", files / "add.yaml")
    assert out.returncode == 2
    assert "add.yaml" in out.stderr and "neither a .keras archive nor an HDF5" in out.stderr
    assert "Traceback" not in out.stderr


def test_failed_write_leaves_no_output_and_source_untouched(files, capsys):
    """A save that fails half-way (a layer Keras cannot serialize) leaves nothing behind."""
    import keras

    class Opaque(keras.layers.Layer):
        def call(self, x):
            return x

        def get_config(self):
            raise RuntimeError("cannot serialize")

    inp = keras.Input((2,), name="obs")
    model = keras.Model(inp, keras.layers.Dense(2, name="q")(Opaque(name="opaque")(inp)))
    before = sorted(p.name for p in files.iterdir())
    with pytest.raises(Exception):
        save_model(model, files / "half.keras")
    assert sorted(p.name for p in files.iterdir()) == before  # no output, no temporary file
    src = (files / "k3.keras").read_bytes()
    assert main(["transplant", str(files / "k3.keras"), str(files / "add.yaml"), "-o", str(files / "k3.keras")]) == 2
    assert (files / "k3.keras").read_bytes() == src


def test_interrupted_write_leaves_no_output(files):
    """Kill the CLI while it writes a large model: the output appears whole or not at all."""
    import keras

    big = keras.Sequential([keras.Input((2,), name="obs"), keras.layers.Dense(4096, name="h0"),
                            keras.layers.Dense(4096, name="h1"), keras.layers.Dense(2, name="q")])
    save_model(big, files / "big.keras")
    (files / "wide.yaml").write_text("units:\n  h1: 4200\n")
    proc = subprocess.Popen([CLI, "transplant", files / "big.keras", files / "wide.yaml", "-o", files / "big2.keras"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # wait until it starts writing (the report is printed right before the save), then kill it
    for line in proc.stdout:
        if line.startswith("total"):
            break
    proc.kill()
    proc.wait()
    out = files / "big2.keras"
    # either nothing under the output's name, or a complete model (never a truncated file)
    assert not out.exists() or load_model(out).get_layer("h1").get_weights()[0].shape == (4096, 4200)
    leftovers = [p.name for p in files.iterdir() if "big2" in p.name and p.name not in ("big2.keras", "big2.keras.ids.json")]
    assert all(name.startswith(".big2.keras.") for name in leftovers)  # only hidden temporaries
