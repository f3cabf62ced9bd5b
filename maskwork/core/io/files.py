"""File-level helpers every part of :mod:`maskwork.core.io` shares: suffixes, atomic writes."""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path


def file_suffix(path: Path) -> str:
    """Return the lower-case suffix of `path`, treating ``.nii.gz`` as one suffix."""
    name = path.name.lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    return path.suffix.lower()


#: The temporary file a file is written through before its rename (write_bytes_atomic,
#: and ITK transforms): ".NAME.<16 hex digits>.tmp", maybe with the suffix lowered after.
_TEMPORARY_NAME = re.compile(r"\.(?P<name>.+)\.[0-9a-f]{16}\.tmp(\.[^.]+)?")


def temporary_sibling(path: Path, suffix: str = "") -> Path:
    """A hidden, unique temporary file beside ``path`` for writing it through a rename
    (``suffix`` after the name where a writer picks its format by it)."""
    return path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp{suffix}"


def unwritable(path: Path, error: OSError) -> OSError:
    """``error``, raised while writing ``path``, said in words: "cannot write FILE: why".
    FILE is the file that failed (a sidecar or another file written beside ``path``, the
    file a temporary one was to become), why the folder on the way that is a file, or the
    system's reason; never an errno or the name of a temporary file the person never
    asked for. An error without an errno (a library's own message) is returned as it is."""
    if error.errno is None:
        return error
    folder = _file_on_the_way(path)
    if folder is not None:
        return OSError(f"cannot write {path}: {folder} is a file, not a folder")
    failed = next((Path(name) for name in (error.filename2, error.filename) if name), path)
    temporary = _TEMPORARY_NAME.fullmatch(failed.name)
    if temporary is not None:
        failed = failed.with_name(temporary["name"])
    folder = _file_on_the_way(failed)
    if folder is not None:
        why = f"{folder} is a file, not a folder"
    elif failed.is_dir():
        why = "that is a folder"
    else:
        why = error.strerror or str(error)
    return OSError(f"cannot write {failed}: {why}")


def _file_on_the_way(path: Path) -> Path | None:
    """The first of ``path``'s folders, from the top, that exists as a file (None if none)."""
    return next((parent for parent in reversed(path.parents) if parent.exists() and not parent.is_dir()), None)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename.

    A reader (or a crash) never sees half a file: the old content stays in place
    until the new one is complete. Parent folders are created. The file gets the
    permissions of any new file under the person's umask (``tempfile.mkstemp`` would
    create it 0600, and the rename would keep that).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = temporary_sibling(path)
    # 0o666 as open() asks; the kernel removes the umask's bits. O_EXCL: never another's file.
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def lock_exclusively(handle) -> bool:
    """Lock the open file ``handle`` exclusively without waiting (``flock``;
    ``msvcrt.locking`` on Windows): True when locked, OSError when another holder has it,
    False where the file system has no locks (NFS without lockd). The system releases the
    lock when its holder ends, however it ends."""
    import errno

    try:
        if os.name == "nt":
            import msvcrt

            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if isinstance(error, BlockingIOError) or error.errno in (errno.EACCES, errno.EDEADLK):
            raise  # held by another
        return False
    return True


def unlock(handle) -> None:
    """Release a Windows lock at once (at close Windows frees it when it gets to it); on
    POSIX closing the file releases it."""
    if os.name != "nt":
        return
    import contextlib
    import msvcrt

    with contextlib.suppress(OSError):
        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
