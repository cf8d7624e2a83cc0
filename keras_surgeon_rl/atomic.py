"""Publishing files atomically: every target appears complete, or none changes.

Each target is first written to a temporary file in its own directory
(``.<name>.ksrl-<pid>.tmp<suffix>``), then all temporaries are renamed over their targets in the
order given. A failure before the renames leaves every target as it was and removes the
temporaries. A process killed while writing leaves its temporaries behind; the next publication
into the same directory removes those of processes that no longer run.

Renames of several files cannot be one atomic step. Between the first and the last rename a crash
leaves a mix of old and new targets; the files this library writes record what they belong to
(a model's sidecar records the model file's hash), so such a mix is refused on loading, never
trusted.

Example:
    >>> with publishing("qnet.keras", "qnet.keras.ids.json") as (model_tmp, ids_tmp):
    ...     model.save(model_tmp)
    ...     ids_tmp.write_text("{}")
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any, Iterator

from keras_surgeon_rl.errors import ModelFileError

logger = logging.getLogger(__name__)

_TMP = re.compile(r"^\.(?P<name>.+)\.ksrl-(?P<pid>\d+)\.tmp")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def clean_stale(directory: os.PathLike) -> list[Path]:
    """Remove the temporaries that killed publications left in ``directory``; returns them."""
    removed = []
    try:
        entries = list(Path(directory).iterdir())
    except OSError:
        return removed
    for p in entries:
        m = _TMP.match(p.name)
        if m and not _alive(int(m.group("pid"))):
            try:
                p.unlink()
                removed.append(p)
                logger.info("removed %s, left by an interrupted save", p)
            except OSError:
                pass
    return removed


def _check_target(path: Path) -> None:
    parent = path.parent
    if not parent.is_dir():
        raise ModelFileError(f"{path}: the directory {str(parent) or '.'!r} does not exist; create it first "
                             "or choose another path")
    if path.is_dir():
        raise ModelFileError(f"{path}: is a directory; give a file name (e.g. {path / 'model.keras'})")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ModelFileError(f"{path}: cannot write into {str(parent) or '.'!r} (permission denied); choose a "
                             "writable directory")


@contextlib.contextmanager
def publishing(*targets: os.PathLike) -> Iterator[list[Path]]:
    """Temporary paths to write ``targets`` to; renamed over the targets when the block succeeds.

    Args:
        targets: the final paths, renamed in this order (put the file that commits the set, such
            as an index of the others, last).

    Yields:
        One temporary path per target, in the target's directory, with the target's suffix (some
        writers pick the format from it). Nothing exists at these paths yet.

    Raises:
        ModelFileError: a target's directory is missing or read-only, or a target is a directory;
            raised before anything is written.
    """
    paths = [Path(t) for t in targets]
    for p in paths:
        _check_target(p)
    for d in {p.parent for p in paths}:
        clean_stale(d)
    tmps = [p.parent / f".{p.name}.ksrl-{os.getpid()}.tmp{''.join(p.suffixes[-1:])}" for p in paths]
    try:
        for t in tmps:
            t.unlink(missing_ok=True)
        yield tmps
        for t, p in zip(tmps, paths):  # every file first: a missing one must not leave the others published
            if not t.exists():
                raise ModelFileError(f"{p}: nothing was written (the writer left no file)")
        for t, p in zip(tmps, paths):
            os.replace(t, p)
    finally:
        for t in tmps:
            with contextlib.suppress(OSError):
                t.unlink()


def write_json_atomic(path: os.PathLike, data: Any) -> None:
    """Write ``data`` as JSON to ``path``, atomically."""
    with publishing(path) as (tmp,):
        tmp.write_text(json.dumps(data, indent=2))
