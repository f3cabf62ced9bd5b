"""File-level helpers every part of :mod:`maskwork.core.io` shares: suffixes, atomic writes."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def file_suffix(path: Path) -> str:
    """Return the lower-case suffix of `path`, treating ``.nii.gz`` as one suffix."""
    name = path.name.lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    return path.suffix.lower()


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename.

    A reader (or a crash) never sees half a file: the old content stays in place
    until the new one is complete. Parent folders are created.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
