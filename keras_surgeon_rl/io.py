"""Saving and loading models together with their unit IDs.

The IDs go into a sidecar file next to the model (``model.keras`` → ``model.keras.ids.json``), so
any Keras file format works and a later surgery can name features and actions. The sidecar is tied
to its model: it records the model file's SHA-256 and the model's structure (layer names, classes,
weight shapes), and loading refuses a sidecar that does not match, naming the file and what differs.

Model and sidecar are published together (:mod:`keras_surgeon_rl.atomic`): a failed save leaves
the previous pair, or nothing, never a half-written file or a sidecar beside another model.

Formats: Keras 3 ``.keras``; tf_keras (Keras 2) ``.keras`` and ``.h5``. The flavour of a file is read
from the file itself.

Example:
    >>> save_model(model, "qnet.keras")
    >>> model = load_model("qnet.keras")   # carries the IDs again
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zipfile
from pathlib import Path
from typing import Optional

from keras_surgeon_rl.atomic import publishing, write_json_atomic
from keras_surgeon_rl.errors import ModelFileError, SurgeryError
from keras_surgeon_rl.unit_ids import check_against, from_json, get_unit_ids, set_unit_ids, to_json

logger = logging.getLogger(__name__)

SIDECAR_SUFFIX = ".ids.json"
SIDECAR_FORMAT = 2

__all__ = ["save_model", "load_model", "write_model_files", "sidecar", "file_flavour", "fingerprint", "file_sha256",
           "ModelFileError", "write_json_atomic"]


def sidecar(path: os.PathLike) -> Path:
    return Path(str(path) + SIDECAR_SUFFIX)


def file_sha256(path: os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fingerprint(model) -> dict:
    """The structure unit IDs depend on: input shapes, and per layer its name, class and weight shapes."""
    inputs = [[None if d is None else int(d) for d in tuple(t.shape)[1:]] for t in model.inputs]
    layers = [[layer.name, type(layer).__name__, [[int(d) for d in w.shape] for w in layer.weights]]
              for layer in model.layers]
    return {"inputs": inputs, "layers": layers}


def _difference(saved: dict, actual: dict) -> Optional[str]:
    """What differs between two fingerprints, in words, or ``None``."""
    if saved.get("inputs") != actual["inputs"]:
        return f"input shapes {saved.get('inputs')} in the sidecar, {actual['inputs']} in the model"
    s_layers = {row[0]: row for row in saved.get("layers", [])}
    a_layers = {row[0]: row for row in actual["layers"]}
    for name in a_layers:
        if name not in s_layers:
            return f"the model has layer {name!r}, the sidecar's model has not"
    for name in s_layers:
        if name not in a_layers:
            return f"the sidecar's model has layer {name!r}, this model has not"
    for name, row in a_layers.items():
        if list(s_layers[name]) != list(row):
            return (f"layer {name!r} is {row[1]} with weight shapes {row[2]} in the model, "
                    f"{s_layers[name][1]} with {s_layers[name][2]} in the sidecar")
    return None


def save_model(model, path: os.PathLike) -> Path:
    """Save ``model`` (either flavour) and its unit IDs; the pair is published together.

    Args:
        model: a Keras 3 or tf_keras model.
        path: ``.keras`` or (tf_keras only) ``.h5``.

    Returns:
        The path written.

    Raises:
        ModelFileError: a bad suffix, a missing or read-only directory, a path that is a directory;
            or the framework failed to save (the previous files, if any, are left as they were).
    """
    path = Path(path)
    if path.suffix not in (".keras", ".h5"):
        raise ModelFileError(f"{path}: save as .keras (or .h5 for tf_keras models)")
    # The sidecar is renamed first: a crash between the two renames leaves it beside an older model
    # file (refused on loading: the hash differs) or beside none, never a new model without its IDs.
    with publishing(sidecar(path), path) as (ids_tmp, tmp):
        write_model_files(model, tmp, ids_tmp, path)
    logger.info("saved %s", path)
    return path


def write_model_files(model, model_path: Path, ids_path: Path, final: os.PathLike) -> None:
    """Write ``model`` and its sidecar to (temporary) paths, for the model file ``final``.

    For writers that publish the pair together with other files (:func:`save_model`, the agent
    saves of :mod:`keras_surgeon_rl.rl.persist`).
    """
    try:
        model.save(str(model_path))
    except Exception as e:  # the framework's own error, with the path that failed
        raise ModelFileError(f"{final}: the model could not be saved: {type(e).__name__}: {e}") from e
    Path(ids_path).write_text(json.dumps({
        "format": SIDECAR_FORMAT,
        "model_file": Path(final).name,
        "model_sha256": file_sha256(model_path),
        "fingerprint": fingerprint(model),
        **to_json(get_unit_ids(model)),
    }, indent=1))


def file_flavour(path: os.PathLike) -> str:
    """``"keras3"`` or ``"tf_keras"``, read from the file's recorded Keras version."""
    path = Path(path)
    if path.is_dir():
        raise ModelFileError(f"{path}: is a directory, not a model file")
    if not path.exists():
        raise ModelFileError(f"{path}: no such file")
    version: Optional[str] = None
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                version = json.loads(z.read("metadata.json")).get("keras_version")
        except (KeyError, ValueError, zipfile.BadZipFile, AttributeError) as e:
            raise ModelFileError(f"{path}: a zip file but not a Keras .keras archive ({e})") from e
    else:
        try:
            import h5py

            with h5py.File(path, "r") as f:
                version = f.attrs.get("keras_version")
                version = version.decode() if isinstance(version, bytes) else version
        except OSError as e:
            raise ModelFileError(f"{path}: neither a .keras archive nor an HDF5 (.h5) model file (truncated, or "
                                 "not a model); pass the file model.save or keras_surgeon_rl.io.save_model wrote") from e
    if not version:
        raise ModelFileError(f"{path}: the file records no Keras version; is it a saved model?")
    return "keras3" if str(version).startswith("3") else "tf_keras"


#: The sidecar's structure (IDs themselves are checked by :func:`keras_surgeon_rl.spec.id_list`).
SIDECAR_SCHEMA = {
    "type": "object",
    "required": ["inputs", "layers"],
    "properties": {
        "format": {"type": "integer"},
        "model_file": {"type": "string"},
        "model_sha256": {"type": "string"},
        "fingerprint": {
            "type": "object", "required": ["inputs", "layers"],
            "properties": {
                "inputs": {"type": "array", "items": {"type": "array"}},
                "layers": {"type": "array", "items": {
                    "type": "array", "minItems": 3, "maxItems": 3,
                    "prefixItems": [{"type": "string"}, {"type": "string"}, {"type": "array"}]}},
            },
        },
        "inputs": {"type": "object", "additionalProperties": {"type": "array"}},
        "layers": {"type": "object", "additionalProperties": {"type": "array"}},
    },
    "if": {"required": ["format"]},
    "then": {"required": ["model_sha256", "fingerprint"]},
}


def _read_sidecar(path: Path, ids_path: Path, model, check: bool) -> dict:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import best_match

    delete = f"delete {ids_path.name} to load {path.name} without unit IDs"
    try:
        data = json.loads(ids_path.read_text())
    except (OSError, ValueError) as e:
        raise ModelFileError(f"{ids_path}: unreadable unit-ID file ({e}); {delete}") from e
    error = best_match(Draft202012Validator(SIDECAR_SCHEMA).iter_errors(data))
    if error is not None:
        at = "/".join(str(p) for p in error.absolute_path) or "the top level"
        raise ModelFileError(f"{ids_path}: not a unit-ID file as save_model writes it (at {at}: {error.message}); "
                             f"{delete}")
    fix = f"{delete}, or (in Python) load_model(path, check_ids=False) to trust it"
    if check and "format" in data:  # sidecars before format 2 carry no fingerprint: checked below
        if data.get("model_sha256") != file_sha256(path):
            raise ModelFileError(
                f"{ids_path}: written for another version of {path.name} (its SHA-256 differs: saved again "
                f"without keras_surgeon_rl.io.save_model, or an interrupted save). {fix}")
        diff = _difference(data.get("fingerprint") or {}, fingerprint(model))
        if diff:
            raise ModelFileError(f"{ids_path}: describes another model: {diff}. {fix}")
    try:
        ids = from_json(data)
        if check:
            check_against(model, ids)
    except SurgeryError as e:
        raise ModelFileError(f"{ids_path}: {e}. {fix}") from e
    return ids


def load_model(path: os.PathLike, custom_objects: Optional[dict] = None, check_ids: bool = True):
    """Load a model of either flavour (from its file) with the unit IDs of its sidecar, if any.

    Args:
        path: the model file.
        custom_objects: passed to the framework's loader.
        check_ids: refuse a sidecar that does not belong to this model file (another file hash, other
            layers or shapes, ID counts that do not match the units). ``False`` trusts it as it is.

    Raises:
        ModelFileError: naming the file that is missing, corrupt or does not match, and the fix.
    """
    path = Path(path)
    flavour = file_flavour(path)
    try:
        if flavour == "keras3":
            import keras

            model = keras.saving.load_model(path, custom_objects=custom_objects, compile=False)
        else:
            import tf_keras

            model = tf_keras.models.load_model(str(path), custom_objects=custom_objects, compile=False)
    except Exception as e:
        raise ModelFileError(f"{path}: cannot load this {flavour} model: {type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else ''}") from e
    ids_path = sidecar(path)
    if ids_path.exists():
        ids = _read_sidecar(path, ids_path, model, check_ids)
        set_unit_ids(model, inputs=ids["inputs"], layers=ids["layers"], replace=True)
    return model
