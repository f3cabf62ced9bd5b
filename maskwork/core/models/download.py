"""Download a catalogue model into the cache, or import a file a person already has.

The HTTP part uses requests (the library pooch's own HTTPDownloader is built on) rather
than pooch: pooch always writes a download from its first byte into a fresh temporary
file, so it cannot resume one that was interrupted, and its progress hook cannot stop a
download. Here each download streams into ``.partial/<file name>.part`` inside the cache
folder; an interrupted or cancelled one keeps that file and the next attempt asks only
for the rest (an HTTP Range request), falling back to the whole file when the server
does not honour it. The finished file is checked against the catalogue's hash
(:mod:`maskwork.core.models.hashing`) and only then renamed into the cache, an atomic
step on one file system, so the cache never holds a partial or wrong file; a wrong file is
deleted. Cancel is a :class:`threading.Event` checked before each chunk of 64 KiB; once the body
streams, a server that stalls without sending anything is left at once as well: Cancel
shuts the connection's socket down, which ends the blocking read (urllib3's
``HTTPResponse.shutdown``, 2.3 and later). While the headers are awaited, and with an
older urllib3, Cancel waits for the read to time out (:data:`READ_TIMEOUT_S`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

from maskwork.core.io.files import lock_exclusively, unlock
from maskwork.core.models.cache import installed_path, partial_path
from maskwork.core.models.catalogue import ModelEntry, human_bytes, model_entry
from maskwork.core.models.hashing import HashMismatch, check_file, pin_hash

#: Bytes read from the connection between two checks of Cancel.
CHUNK_BYTES = 64 * 1024
#: Seconds to wait for the server to accept the connection, and for each chunk after.
CONNECT_TIMEOUT_S = 15
READ_TIMEOUT_S = 20
#: Seconds between two progress reports while bytes arrive (the last one always comes).
REPORT_INTERVAL_S = 0.1
#: Seconds between two looks at Cancel while a chunk is awaited.
CANCEL_POLL_S = 0.05


class DownloadCancelled(Exception):
    """The person cancelled; what arrived so far is kept for the next attempt to resume."""


class DownloadError(OSError):
    """The file could not be fetched (offline, server gone, HTTP error); one line for people."""


@dataclass(frozen=True)
class Progress:
    """Where a download (or the hash check after it) stands.

    Attributes
    ----------
    stage : {'downloading', 'verifying'}
        Bytes arriving, or the finished file being hashed.
    done_bytes : int
        Bytes downloaded (resumed ones included) or hashed so far.
    total_bytes : int or None
        The file's size, when the server or the catalogue tells it.
    bytes_per_second : float
        Average rate of this attempt (resumed bytes not counted); 0 while verifying.
    """

    stage: str
    done_bytes: int
    total_bytes: int | None
    bytes_per_second: float

    @property
    def fraction(self) -> float | None:
        """done / total, or None when the total is unknown."""
        return self.done_bytes / self.total_bytes if self.total_bytes else None


ProgressCallback = Callable[[Progress], None]


def download_model(
    name: str, *, progress: ProgressCallback | None = None, cancel: threading.Event | None = None
) -> Path:
    """Download catalogue model ``name`` into the cache (resuming an earlier attempt).

    Parameters
    ----------
    name : str
        A catalogue name (``maskwork models list``).
    progress : callable, optional
        Receives a :class:`Progress` about ten times a second, and once at the end of each
        stage.
    cancel : threading.Event, optional
        Set it to stop: the download raises :class:`DownloadCancelled` before its next chunk.

    Returns
    -------
    pathlib.Path
        The installed file (at once when it is installed already).

    Raises
    ------
    DownloadError
        Offline, the server gone or answering with an error (one line).
    DownloadCancelled
        ``cancel`` was set; the bytes received are kept for a later resume.
    HashMismatch
        The file is not the catalogue's; it is deleted and nothing is installed.
    """
    entry = model_entry(name)
    target = installed_path(entry)
    if target.is_file():
        return target
    partial = partial_path(entry)
    partial.parent.mkdir(parents=True, exist_ok=True)
    with _only_download(entry, partial):
        if target.is_file():
            return target  # the download that held the lock installed it
        _check_free_space(entry, partial)
        try:
            _fetch(entry, partial, progress or _ignore, cancel or threading.Event())
            return _install(entry, partial, progress or _ignore)
        except FileNotFoundError:
            # The .part was deleted under it: Remove, or an Import that installed the model.
            if target.is_file():
                return target
            raise DownloadError(f"the download of {entry.name} was removed while it ran (Remove): download it "
                                "again to get it") from None


@contextlib.contextmanager
def _only_download(entry: ModelEntry, partial: Path) -> Iterator[None]:
    """Hold the lock of ``entry``'s download for the block, or raise DownloadError at once
    when another process (the window and a terminal, two terminals) or thread holds it:
    both appended to one ``.part`` file, and a file of the wrong size was installed (and,
    for a model without a published hash, its hash pinned as the trusted one).

    An exclusive lock on ``<part>.lock`` (``flock``; ``msvcrt.locking`` on Windows), which
    the system releases when its holder ends, however it ends; the holder deletes the file
    on the way out, and a lock taken on a file deleted meanwhile is taken again.
    """
    lock_path = partial.with_name(partial.name + ".lock")
    while True:
        handle = open(lock_path, "a+b")
        try:
            locked = lock_exclusively(handle)
        except OSError:
            handle.close()
            raise DownloadError(f"{entry.name} is being downloaded already (by the Models window or another "
                                "`maskwork models download`): let that one finish") from None
        if not locked:
            break  # a folder without locks (NFS without lockd): download unguarded, as before
        try:
            same = os.path.samestat(os.fstat(handle.fileno()), os.stat(lock_path))
        except FileNotFoundError:
            same = False
        if same:
            break
        handle.close()  # locked a file its last holder had deleted: take the one there now
    try:
        yield
    finally:
        if os.name == "nt":
            # Windows deletes no open file: unlock and close, then delete (no one can
            # open it between the two and lock it there, as on POSIX).
            unlock(handle)
            handle.close()
            with contextlib.suppress(OSError):
                lock_path.unlink()
        else:
            lock_path.unlink(missing_ok=True)
            handle.close()


def _check_free_space(entry: ModelEntry, partial: Path) -> None:
    """Refuse at once, rather than after gigabytes, a download the disk cannot hold."""
    if entry.size_bytes is None:
        return
    needed = entry.size_bytes - (partial.stat().st_size if partial.exists() else 0)
    free = shutil.disk_usage(partial.parent).free
    if needed > free:
        raise DownloadError(
            f"cannot download {entry.name}: it needs {human_bytes(needed)} more and {partial.parent.parent} "
            f"has {human_bytes(free)} free (set MASKWORK_MODELS to a folder on a larger disk)"
        )


def import_model_file(name: str, source: str | os.PathLike, *, progress: ProgressCallback | None = None) -> Path:
    """Copy a model file a person already has into the cache, after checking its hash.

    For machines without internet: the file comes from a USB stick or another computer.
    The copy is assembled beside the cache and renamed into it only when its hash matches
    the catalogue (or, for a model without a published hash, the one pinned before).

    Raises
    ------
    FileNotFoundError
        ``source`` does not exist.
    HashMismatch
        ``source`` is not this model's file; nothing is installed.
    """
    entry = model_entry(name)
    source = Path(source).expanduser()
    if not source.is_file():
        raise FileNotFoundError(f"no file {source}")
    staged = partial_path(entry).with_suffix(".import")
    staged.parent.mkdir(parents=True, exist_ok=True)
    try:
        shutil.copyfile(source, staged)
    except OSError:
        staged.unlink(missing_ok=True)  # a full disk: no half copy left behind
        raise
    return _install(entry, staged, progress or _ignore)


def _ignore(_: Progress) -> None:
    """The progress callback of a caller that wants none."""


def _install(entry: ModelEntry, staged: Path, progress: ProgressCallback) -> Path:
    """Check ``staged`` against ``entry``'s hash, then rename it into the cache (or delete it)."""
    total = staged.stat().st_size

    def report(done: int) -> None:
        progress(Progress("verifying", done, total, 0.0))

    try:
        first_sha256 = check_file(staged, entry, report)
    except HashMismatch:
        staged.unlink()
        raise
    target = installed_path(entry)
    os.replace(staged, target)
    partial_path(entry).unlink(missing_ok=True)  # an interrupted download an import made useless
    if first_sha256 is not None:
        pin_hash(entry, first_sha256)
    return target


def _fetch(entry: ModelEntry, partial: Path, progress: ProgressCallback, cancel: threading.Event) -> None:
    """Bring ``entry.url``'s bytes into ``partial``, asking only for those it lacks."""
    import requests

    have = partial.stat().st_size if partial.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        with requests.get(entry.url, headers=headers, stream=True, timeout=(CONNECT_TIMEOUT_S, READ_TIMEOUT_S)) as reply:
            if have and reply.status_code == 416 and have == (_range_total(reply) or entry.size_bytes):
                return  # every byte is here already (a stop while it was being verified)
            if have and (reply.status_code == 416 or reply.status_code == 206 and _range_start(reply) != have):
                # The partial file is as long as the whole (or longer), or the server answered
                # another range than the one asked for: start afresh.
                partial.unlink()
                return _fetch(entry, partial, progress, cancel)
            if reply.status_code >= 400:
                raise DownloadError(
                    f"cannot download {entry.name}: {entry.url} answered HTTP {reply.status_code} {reply.reason}"
                )
            resumed = reply.status_code == 206
            if not resumed:
                have = 0  # a server that ignores Range sends the whole file
            total = _total_bytes(reply, have) or entry.size_bytes
            _stream(reply, partial, "ab" if resumed else "wb", have, total, progress, cancel)
            _raise_if_cancelled(cancel, partial)
            if total is not None and partial.stat().st_size < total:
                raise DownloadError(
                    f"cannot download {entry.name}: {urlsplit(entry.url).netloc} closed the connection at "
                    f"{partial.stat().st_size} of {total} bytes; downloading again resumes there"
                )
    except requests.RequestException as error:
        _raise_if_cancelled(cancel, partial)  # the read Cancel ended by shutting the socket down
        host = urlsplit(entry.url).netloc
        kept = partial.stat().st_size if partial.exists() else 0
        if _timed_out_reading(error):
            raise DownloadError(
                f"cannot download {entry.name}: {host} stopped sending (nothing for {READ_TIMEOUT_S} s) at {kept} "
                "bytes; downloading again resumes there"
            ) from error
        if kept > have:
            raise DownloadError(
                f"cannot download {entry.name}: the connection to {host} broke off at {kept} bytes "
                f"({type(error).__name__}); downloading again resumes there"
            ) from error
        raise DownloadError(
            f"cannot download {entry.name}: {host} cannot be reached (offline, or the server is gone: "
            f"{type(error).__name__}); without internet: Import file... in Deep learning > Models, or "
            f"`maskwork models import {entry.name} FILE`"
        ) from error


def _stream(reply, partial: Path, mode: str, have: int, total: int | None, progress: ProgressCallback,
            cancel: threading.Event) -> None:
    """Write the reply's body to ``partial`` chunk by chunk, checking Cancel between chunks
    (and, while a read waits for a server that sends nothing, ending it on Cancel)."""
    started = time.monotonic()
    last_report = 0.0
    done = have
    finished = threading.Event()
    shut_down = getattr(reply.raw, "shutdown", None)  # urllib3 2.3 and later
    watcher = threading.Thread(target=_shut_down_on_cancel, args=(cancel, finished, shut_down), name="download cancel")
    if shut_down is not None:
        watcher.start()
    try:
        with open(partial, mode) as stream:
            for chunk in reply.iter_content(CHUNK_BYTES):
                _raise_if_cancelled(cancel, partial)
                stream.write(chunk)
                done += len(chunk)
                now = time.monotonic()
                if now - last_report >= REPORT_INTERVAL_S:
                    last_report = now
                    progress(Progress("downloading", done, total, (done - have) / max(now - started, 1e-6)))
    finally:
        finished.set()
        if watcher.is_alive():
            watcher.join()
    elapsed = max(time.monotonic() - started, 1e-6)
    progress(Progress("downloading", done, total, (done - have) / elapsed))


def _shut_down_on_cancel(cancel: threading.Event, finished: threading.Event, shut_down: Callable[[], None]) -> None:
    """Until ``finished``: shut the connection down as soon as ``cancel`` is set."""
    while not finished.is_set():
        if cancel.wait(CANCEL_POLL_S):
            try:
                shut_down()
            except (RuntimeError, OSError):  # the last bytes were read meanwhile: nothing to end
                pass
            return


def _timed_out_reading(error) -> bool:
    """Whether ``error`` is a read that timed out: the server answered (or accepted the
    connection) and then sent nothing. requests raises ReadTimeout while it waits for the
    headers, and a ConnectionError around urllib3's ReadTimeoutError while the body
    streams."""
    import requests
    from urllib3.exceptions import ReadTimeoutError

    return isinstance(error, requests.ReadTimeout) or any(isinstance(arg, ReadTimeoutError) for arg in error.args)


def _raise_if_cancelled(cancel: threading.Event, partial: Path) -> None:
    if cancel.is_set():
        kept = partial.stat().st_size if partial.exists() else 0
        raise DownloadCancelled(f"download cancelled at {kept} bytes; downloading again resumes there")


def _range_start(reply) -> int | None:
    """The first byte a 206 reply carries (``Content-Range: bytes START-END/TOTAL``)."""
    unit, _, span = reply.headers.get("Content-Range", "").partition(" ")
    start = span.partition("-")[0]
    return int(start) if unit == "bytes" and start.isdigit() else None


def _range_total(reply) -> int | None:
    """The whole file's size a reply's ``Content-Range`` gives (``bytes */N`` for a 416)."""
    whole = reply.headers.get("Content-Range", "").rpartition("/")[2]
    return int(whole) if whole.isdigit() else None


def _total_bytes(reply, have: int) -> int | None:
    """The whole file's size from the reply's headers, when given."""
    whole = _range_total(reply)
    if whole is not None:
        return whole
    length = reply.headers.get("Content-Length", "")
    return have + int(length) if length.isdigit() else None
