"""Model and sidecar appear together or not at all; a save killed mid-write leaves nothing the next one keeps."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import keras
import numpy as np
import pytest

from keras_surgeon_rl import SurgeryError, get_unit_ids
from keras_surgeon_rl.atomic import clean_stale, publishing
from keras_surgeon_rl.io import load_model, save_model, sidecar
from keras_surgeon_rl.unit_ids import set_unit_ids

from conftest import randomize


def _model(units=8):
    inp = keras.Input((4,), name="obs")
    x = keras.layers.Dense(units, activation="relu", name="h")(inp)
    model = randomize(keras.Model(inp, keras.layers.Dense(2, name="q")(x)))
    set_unit_ids(model, layers={"q": ["left", "right"]})
    return model


def test_a_save_killed_mid_write_leaves_the_old_pair_and_its_temporaries_are_cleaned(tmp_path):
    path = tmp_path / "m.keras"
    save_model(_model(), path)
    before = path.read_bytes(), sidecar(path).read_bytes()
    # A real process, stopped with SIGKILL while it writes the model (inside the publication).
    script = textwrap.dedent(f"""
        import pathlib, time
        from keras_surgeon_rl.atomic import publishing
        with publishing(pathlib.Path({str(path)!r}), pathlib.Path({str(sidecar(path))!r})) as (m, ids):
            m.write_bytes(b"half a model")
            print("writing", flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    left = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert left, "the killed writer should have left its temporary file"
    assert (path.read_bytes(), sidecar(path).read_bytes()) == before  # the old pair is untouched
    assert get_unit_ids(load_model(path))["layers"]["q"] == ["left", "right"]

    save_model(_model(units=5), path)  # the next save cleans up after the dead one
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras", "m.keras.ids.json"]
    assert load_model(path).get_layer("h").units == 5


def test_temporaries_of_live_processes_are_kept(tmp_path):
    mine = tmp_path / f".m.keras.ksrl-{os.getpid()}.tmp.keras"
    mine.write_bytes(b"in progress")
    assert clean_stale(tmp_path) == []
    assert mine.exists()


def test_a_failing_writer_changes_nothing(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text("old a")
    with pytest.raises(RuntimeError):
        with publishing(a, b) as (ta, tb):
            ta.write_text("new a")
            raise RuntimeError("the writer failed")
    assert a.read_text() == "old a" and not b.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_a_writer_that_writes_nothing_publishes_nothing(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    with pytest.raises(SurgeryError, match=r"b.json: nothing was written"):
        with publishing(a, b) as (ta, tb):
            ta.write_text("a")
    assert list(tmp_path.iterdir()) == []


def test_the_sidecar_records_the_model_it_belongs_to(tmp_path):
    path = tmp_path / "m.keras"
    model = _model()
    save_model(model, path)
    data = json.loads(sidecar(path).read_text())
    assert data["model_file"] == "m.keras"
    assert [row[0] for row in data["fingerprint"]["layers"]] == [layer.name for layer in model.layers]
    x = np.ones((3, 4), "float32")
    np.testing.assert_array_equal(load_model(path).predict(x, verbose=0), model.predict(x, verbose=0))
