"""Saving and loading models together with their unit IDs.

The IDs go into a sidecar file next to the model (``model.keras`` → ``model.keras.ids.json``), so
any Keras file format works and a later surgery can name features and actions. Files are written
atomically: a failed save leaves no half-written file.

Formats: Keras 3 ``.keras``; tf_keras (Keras 2) ``.keras`` and ``.h5``. The flavour of a file is read
from the file itself.

Example:
    >>> save_model(model, "qnet.keras")
    >>> model = load_model("qnet.keras")   # carries the IDs again
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Optional

from keras_surgeon_rl.unit_ids import from_json, get_unit_ids, set_unit_ids, to_json

logger = logging.getLogger(__name__)

SIDECAR_SUFFIX = ".ids.json"


class ModelFileError(ValueError):
    """A model file that cannot be read or written, with the path in the message."""


def sidecar(path: os.PathLike) -> Path:
    return Path(str(path) + SIDECAR_SUFFIX)


def _atomic_target(path: Path, suffix: str):
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent or ".")
    os.close(fd)
    return Path(tmp)


def write_json_atomic(path: os.PathLike, data: Any) -> None:
    path = Path(path)
    tmp = _atomic_target(path, ".tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_model(model, path: os.PathLike) -> Path:
    """Save ``model`` (either flavour) and its unit IDs; atomic.

    Args:
        model: a Keras 3 or tf_keras model.
        path: ``.keras`` or (tf_keras only) ``.h5``.

    Returns:
        The path written.
    """
    path = Path(path)
    if path.suffix not in (".keras", ".h5"):
        raise ModelFileError(f"{path}: save as .keras (or .h5 for tf_keras models)")
    tmp = _atomic_target(path, path.suffix)
    try:
        tmp.unlink()
        model.save(str(tmp))
        write_json_atomic(sidecar(path), to_json(get_unit_ids(model)))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    logger.info("saved %s", path)
    return path


def file_flavour(path: os.PathLike) -> str:
    """``"keras3"`` or ``"tf_keras"``, read from the file's recorded Keras version."""
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"{path}: no such file")
    version: Optional[str] = None
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as z:
                version = json.loads(z.read("metadata.json")).get("keras_version")
        except (KeyError, ValueError) as e:
            raise ModelFileError(f"{path}: a zip file but not a Keras .keras archive ({e})") from e
    else:
        try:
            import h5py

            with h5py.File(path, "r") as f:
                version = f.attrs.get("keras_version")
                version = version.decode() if isinstance(version, bytes) else version
        except OSError as e:
            raise ModelFileError(f"{path}: neither a .keras archive nor an HDF5 (.h5) model file") from e
    if not version:
        raise ModelFileError(f"{path}: the file records no Keras version; is it a saved model?")
    return "keras3" if str(version).startswith("3") else "tf_keras"


def load_model(path: os.PathLike, custom_objects: Optional[dict] = None):
    """Load a model of either flavour (from its file) with the unit IDs of its sidecar, if any."""
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
        raise ModelFileError(f"{path}: cannot load this {flavour} model: {e}") from e
    ids_path = sidecar(path)
    if ids_path.exists():
        try:
            ids = from_json(json.loads(ids_path.read_text()))
        except (ValueError, TypeError) as e:
            raise ModelFileError(f"{ids_path}: unreadable unit-ID file: {e}") from e
        set_unit_ids(model, inputs=ids["inputs"], layers=ids["layers"], replace=True)
    return model
