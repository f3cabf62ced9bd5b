"""Checksums of model files: the catalogue's hashes, or the one pinned at the first download.

Publishers and the projects that check their files give different algorithms (SHA-256,
MD5, a Git blob id), so the catalogue writes ``"<algorithm>:<hex>"`` and
:func:`file_digests` computes every algorithm an entry needs in one pass over the file. A
model without any known hash (a site's own catalogue entry) is trusted on its first
download or import: the file's SHA-256 is written to ``pinned_hashes.json`` in the cache
folder, and a later download or import of a different file under that name is refused.
The record stays when the model is removed, so a re-download must bring the same bytes;
deleting the record (the refusal's message names it) accepts a file the publisher has
replaced.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable, Iterable

from maskwork.core.models.cache import models_folder
from maskwork.core.models.catalogue import HASH_HEX_DIGITS, ModelEntry

#: Bytes read at a time while hashing (large enough for speed, small enough to report progress).
READ_BYTES = 4 * 1024 * 1024
#: File in the cache folder holding the SHA-256 of models without a known hash.
PINNED_FILE_NAME = "pinned_hashes.json"
ALGORITHMS = tuple(HASH_HEX_DIGITS)


class HashMismatch(ValueError):
    """A file's checksum differs from the catalogue's (or from the one pinned before)."""


def file_digests(path: Path, algorithms: Iterable[str], progress: Callable[[int], None] | None = None) -> dict[str, str]:
    """The hex digest of ``path`` under each of ``algorithms``, reading the file once.

    ``gitsha1`` is Git's blob id: SHA-1 of ``b"blob <size>\\0"`` followed by the content,
    the id ``git ls-tree`` shows for a committed file. ``progress`` receives the bytes
    hashed so far after each read.
    """
    digests = {}
    for algorithm in algorithms:
        if algorithm not in ALGORITHMS:
            raise ValueError(f"unknown hash algorithm {algorithm!r} (one of {', '.join(ALGORITHMS)})")
        name = "sha1" if algorithm == "gitsha1" else algorithm
        digests[algorithm] = hashlib.new(name, usedforsecurity=False)
    if "gitsha1" in digests:
        digests["gitsha1"].update(b"blob %d\0" % path.stat().st_size)
    done = 0
    with open(path, "rb") as stream:
        while block := stream.read(READ_BYTES):
            for digest in digests.values():
                digest.update(block)
            done += len(block)
            if progress is not None:
                progress(done)
    return {algorithm: digest.hexdigest() for algorithm, digest in digests.items()}


def _pinned_path() -> Path:
    return models_folder() / PINNED_FILE_NAME


def _pinned() -> dict[str, str]:
    """file name -> SHA-256 of the first download of each model without a known hash."""
    try:
        return json.loads(_pinned_path().read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}


def expected_hashes(entry: ModelEntry) -> tuple[str, ...]:
    """The ``"<algorithm>:<hex>"`` values a file for ``entry`` must match: the catalogue's,
    else the pinned SHA-256, else none (a first download)."""
    if entry.hashes:
        return entry.hashes
    pinned = _pinned().get(entry.file_name)
    return (f"sha256:{pinned}",) if pinned else ()


def check_file(path: Path, entry: ModelEntry, progress: Callable[[int], None] | None = None) -> str | None:
    """Raise :class:`HashMismatch` unless ``path`` is ``entry``'s file.

    Returns the SHA-256 to pin once the file is installed, for a model with neither a
    catalogue nor a pinned hash (its first download); None otherwise.
    """
    expected = [value.partition(":")[::2] for value in expected_hashes(entry)]
    if not expected:
        return file_digests(path, ["sha256"], progress)["sha256"]
    found = file_digests(path, dict.fromkeys(algorithm for algorithm, _ in expected), progress)
    for algorithm, wanted in expected:
        if found[algorithm] != wanted.lower():
            origin = entry.hash_source if entry.hashes else f"pinned at its first download in {_pinned_path()}"
            raise HashMismatch(
                f"{entry.name}: the file's {algorithm} is {found[algorithm]}, not {wanted} ({origin}); "
                "nothing was installed"
            )
    return None


def pin_hash(entry: ModelEntry, sha256: str) -> None:
    """Record the SHA-256 of the first installed file of a model that has no known hash."""
    pinned = _pinned()
    pinned[entry.file_name] = sha256
    models_folder().mkdir(parents=True, exist_ok=True)
    _pinned_path().write_text(json.dumps(pinned, indent=1, sort_keys=True), encoding="utf-8")
