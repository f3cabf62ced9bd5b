"""Checksums of model files: the catalogue's hash, or the one pinned at the first download.

Publishers give different algorithms (SHA-256, MD5, a Git blob id), so the catalogue
writes ``"<algorithm>:<hex>"`` and :func:`file_digest` computes any of them in one pass
over the file. A model whose publisher gives no hash is trusted on its first download or
import: the file's SHA-256 is written to ``pinned_hashes.json`` in the cache folder, and a
later download or import of a different file under that name is refused. The record stays
when the model is removed, so a re-download must bring the same bytes; deleting the record
(the refusal's message names it) accepts a file the publisher has replaced.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

from maskwork.core.models.cache import models_folder
from maskwork.core.models.catalogue import ModelEntry

#: Bytes read at a time while hashing (large enough for speed, small enough to report progress).
READ_BYTES = 4 * 1024 * 1024
#: File in the cache folder holding the SHA-256 of models without a published hash.
PINNED_FILE_NAME = "pinned_hashes.json"


class HashMismatch(ValueError):
    """A file's checksum differs from the catalogue's (or from the one pinned before)."""


def file_digest(path: Path, algorithm: str, progress: Callable[[int], None] | None = None) -> str:
    """The hex digest of ``path`` with ``algorithm`` (``sha256``, ``md5`` or ``gitsha1``).

    ``gitsha1`` is Git's blob id: SHA-1 of ``b"blob <size>\\0"`` followed by the content,
    the id ``git ls-tree`` shows for a committed file. ``progress`` receives the bytes
    hashed so far after each read.
    """
    if algorithm == "gitsha1":
        digest = hashlib.sha1(usedforsecurity=False)
        digest.update(b"blob %d\0" % path.stat().st_size)
    elif algorithm in ("sha256", "md5"):
        digest = hashlib.new(algorithm, usedforsecurity=False)
    else:
        raise ValueError(f"unknown hash algorithm {algorithm!r} (sha256, md5 or gitsha1)")
    done = 0
    with open(path, "rb") as stream:
        while block := stream.read(READ_BYTES):
            digest.update(block)
            done += len(block)
            if progress is not None:
                progress(done)
    return digest.hexdigest()


def _pinned_path() -> Path:
    return models_folder() / PINNED_FILE_NAME


def _pinned() -> dict[str, str]:
    """file name -> SHA-256 of the first download of each model without a published hash."""
    try:
        return json.loads(_pinned_path().read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}


def expected_hash(entry: ModelEntry) -> str | None:
    """The ``"<algorithm>:<hex>"`` a file for ``entry`` must match: published, else pinned, else None."""
    if entry.hash:
        return entry.hash
    pinned = _pinned().get(entry.file_name)
    return f"sha256:{pinned}" if pinned else None


def check_file(path: Path, entry: ModelEntry, progress: Callable[[int], None] | None = None) -> str | None:
    """Raise :class:`HashMismatch` unless ``path`` is ``entry``'s file.

    Returns the SHA-256 to pin once the file is installed, for a model with neither a
    published nor a pinned hash (the first download); None otherwise.
    """
    expected = expected_hash(entry)
    if expected is None:
        return file_digest(path, "sha256", progress)
    algorithm, _, wanted = expected.partition(":")
    found = file_digest(path, algorithm, progress)
    if found != wanted.lower():
        origin = entry.hash_source if entry.hash else f"pinned at its first download in {_pinned_path()}"
        raise HashMismatch(
            f"{entry.name}: the file's {algorithm} is {found}, not {wanted} ({origin}); nothing was installed"
        )
    return None


def pin_hash(entry: ModelEntry, sha256: str) -> None:
    """Record the SHA-256 of the first installed file of a model that has no published hash."""
    pinned = _pinned()
    pinned[entry.file_name] = sha256
    models_folder().mkdir(parents=True, exist_ok=True)
    _pinned_path().write_text(json.dumps(pinned, indent=1, sort_keys=True), encoding="utf-8")
