"""File-level helpers every part of :mod:`maskwork.core.io` shares: suffixes, atomic writes."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def file_suffix(path: Path) -> str:
    """Return the lower-case suffix of `path`, treating ``.nii.gz`` as one suffix."""
    name = path.name.lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    return path.suffix.lower()


def unwritable(path: Path, error: OSError) -> OSError:
    """``error``, raised while writing ``path``, said in words: "cannot write PATH: why",
    with why the folder on the way that is a file, or the system's reason, never an
    errno or the name of a temporary file the person never asked for. An error without
    an errno (a library's own message) is returned as it is."""
    if error.errno is None:
        return error
    folder = next((parent for parent in reversed(path.parents) if parent.exists() and not parent.is_dir()), None)
    if folder is not None:
        why = f"{folder} is a file, not a folder"
    elif path.is_dir():
        why = "that is a folder"
    else:
        why = error.strerror or str(error)
    return OSError(f"cannot write {path}: {why}")


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename.

    A reader (or a crash) never sees half a file: the old content stays in place
    until the new one is complete. Parent folders are created. The file gets the
    permissions of any new file under the person's umask (``tempfile.mkstemp`` would
    create it 0600, and the rename would keep that).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    # 0o666 as open() asks; the kernel removes the umask's bits. O_EXCL: never another's file.
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
