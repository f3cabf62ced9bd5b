"""Library calls that cannot be interrupted, run in a child process that Cancel stops.

Most operators honour Cancel by checking between chunks of work. A few library calls are
one indivisible step whose result would change if it were split (SciPy's sparse direct
solver under scikit-image's biharmonic inpainting): :func:`call_stoppable` runs such a
call in a child Python process and kills that process when the run is cancelled.

The child is a fresh interpreter (``python -c``), not a fork: the caller holds Qt and
torch threads, which a fork would copy in an unknown state, and multiprocessing's spawn
would re-run the caller's main script. Starting it costs about half a second (numpy and
the called library are imported again), so callers use it only for calls that take
longer than that.

:func:`call_warm` is for the other kind: calls of tens to hundreds of milliseconds that
hold the GIL (PyMaxflow's max-flow), which in a worker thread would stop the window for
that long, and which come many to a click. One long-lived child serves them one after
another, so only the first call pays the start (and the first after a child was killed
by Cancel or died).
"""

from __future__ import annotations

import atexit
import importlib
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, BinaryIO, Callable

import numpy as np

from maskwork.core.heap import child_variables, give_back_freed_memory, keeping_freed_memory
from maskwork.operators.context import Cancelled, RunContext

__all__ = ["call_stoppable", "call_warm", "import_modules", "warm_child_alive"]

#: How often the parent looks at the cancel flag while the child computes (seconds).
POLL_SECONDS = 0.05
#: What the child runs: read the pickled call from stdin, write the pickled answer.
CHILD_COMMAND = "from maskwork.operators.stoppable import serve_one_call; serve_one_call()"
#: The same through maskwork's own entry point, for a frozen desktop bundle, whose
#: executable is maskwork itself and runs no ``-c`` code.
FROZEN_CHILD_OPTION = "--serve-one-call"
#: The long-lived child of :func:`call_warm`: serve calls until stdin closes.
WARM_CHILD_COMMAND = "from maskwork.operators.stoppable import serve_calls; serve_calls()"
FROZEN_WARM_CHILD_OPTION = "--serve-calls"
#: How long a cancelled :func:`call_warm` still waits for the call to end (its answer is
#: dropped and the child stays warm for the next call) before it kills the child.
DRAIN_SECONDS = 0.5
#: How long the answer's bytes may still take to arrive once the child has ended: all it
#: wrote is in the pipe then, at most the pipe's buffer (64 KiB on Linux), read in
#: milliseconds. Bytes still missing after that never come: a process the child started
#: holds the pipe open, so its end is not seen either. (Unpickling what arrived is not
#: bounded by this.)
ENDED_CHILD_GRACE_SECONDS = 2.0


def child_command(warm: bool = False) -> list[str]:
    """The command line of a child process (``warm``: :func:`call_warm`'s): this
    interpreter, or the frozen bundle."""
    if getattr(sys, "frozen", False):
        return [sys.executable, FROZEN_WARM_CHILD_OPTION if warm else FROZEN_CHILD_OPTION]
    return [sys.executable, "-c", WARM_CHILD_COMMAND if warm else CHILD_COMMAND]


def _child_environment() -> dict[str, str]:
    """The environment of a child: it imports maskwork from where this copy lives,
    installed or not."""
    package_root = str(Path(__file__).resolve().parents[2])
    search_path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    # The heap policy too (maskwork.core.heap): a child of the window keeps freed memory.
    return {**os.environ, **child_variables(), "PYTHONPATH": search_path}


def call_stoppable(ctx: RunContext, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``function(*args, **kwargs)`` computed in a child process that Cancel ends.

    Parameters
    ----------
    ctx : RunContext
        The run; once cancellation is requested the child is killed within
        :data:`POLL_SECONDS` and :class:`~maskwork.operators.context.Cancelled` raised.
    function : callable
        A module-level function (it is pickled by name); its arguments and result are
        pickled too, so they should be arrays and plain values.
    *args, **kwargs
        Passed to ``function``.

    Returns
    -------
    object
        What ``function`` returned.

    Raises
    ------
    Cancelled
        When the run was cancelled before the result arrived.
    Exception
        Whatever ``function`` raised in the child; RuntimeError when the child ended
        without an answer (killed, out of memory).
    """
    ctx.check()
    # The call goes through a temporary file: a pipe would need writing while polling.
    with tempfile.TemporaryFile() as request:
        pickle.dump((function, args, kwargs), request, protocol=pickle.HIGHEST_PROTOCOL)
        request.seek(0)
        child = subprocess.Popen(child_command(), stdin=request, stdout=subprocess.PIPE, env=_child_environment())
    # A thread reads the answer (its arrays straight into their memory, the GIL released:
    # a 12 MP float result read whole and unpickled held it 48-83 ms), and this one
    # watches for Cancel meanwhile.
    reader, answer = _start_reading(child.stdout)
    silent = _watch_for_silent_end(child, answer)
    try:
        while reader.is_alive():
            reader.join(POLL_SECONDS)
            if reader.is_alive() and ctx.cancelled:
                raise Cancelled()
            if reader.is_alive() and silent():
                break
    finally:
        _end_child(child, reader)  # its answer is read, or no longer wanted
    received, message = answer.get("frame", (False, None))
    if not received:
        error = answer.get("error")
        reason = f"its answer could not be read ({error!r})" if error else f"exit code {child.returncode}"
        raise RuntimeError(f"{function.__name__} ended without a result ({reason})")
    succeeded, value = message
    if not succeeded:
        raise value
    return value


def serve_one_call() -> None:
    """In the child: read a pickled ``(function, args, kwargs)`` from stdin, write the
    pickled ``(True, result)`` or ``(False, exception)`` to stdout."""
    answer_stream = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    # Whatever the library prints goes to stderr, not into the answer.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    function, args, kwargs = pickle.loads(sys.stdin.buffer.read())
    try:
        answer = (True, function(*args, **kwargs))
    except Exception as error:
        answer = (False, error)
    try:
        _send(answer_stream, answer)  # pickles in full before it writes anything
    except Exception as error:
        _send(answer_stream, (False, RuntimeError(f"{function.__name__}: its answer cannot be sent back: {error!r}")))
    answer_stream.close()


def import_modules(*names: str) -> None:
    """Import the modules ``names``: sent through :func:`call_warm` ahead of a first call
    (``register(prepare=...)``), it starts the warm child with what that call needs."""
    for name in names:
        importlib.import_module(name)


def warm_child_alive() -> bool:
    """Whether :func:`call_warm`'s child is up, so that a call would not wait for its start."""
    return _WARM_CHILD.alive


def call_warm(ctx: RunContext, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``function(*args, **kwargs)`` computed in the long-lived child process.

    For calls that hold the GIL for tens to hundreds of milliseconds and come often; the
    first call starts the child (about half a second), later ones cost the sending of
    their arguments (a few ms for a few MB). Calls from several threads take turns.
    Arguments, result and errors are as for :func:`call_stoppable`, with two
    differences: once cancellation is requested the call still waits up to
    :data:`DRAIN_SECONDS` for the child to finish (its answer is dropped and the child
    stays warm) before it kills the child, and a child that ended without an answer is
    replaced at the next call.
    """
    return _WARM_CHILD.call(ctx, function, args, kwargs)


class _WarmChild:
    """The child process behind :func:`call_warm`, started on first use."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        """No child and a free lock (also in a forked process: the parent's child and a
        lock some other thread held at the fork are not this process's)."""
        self._lock = threading.Lock()
        self._process: subprocess.Popen | None = None
        self._reader: threading.Thread | None = None  # reading the answer of the call under way

    def call(self, ctx: RunContext, function: Callable[..., Any], args: tuple, kwargs: dict) -> Any:
        ctx.check()
        request = (function, args, kwargs)
        while not self._lock.acquire(timeout=POLL_SECONDS):  # another call has the child
            ctx.check()
        try:
            ctx.check()
            received, message = self._exchange(ctx, request)
        except Cancelled:
            raise  # the exchange ended in step (drained) or stopped the child itself
        except BaseException:
            # Interrupted half way (Ctrl-C, a half-written request): the pipes are out of
            # step, so the child goes; the next call starts another.
            self._stop()
            raise
        finally:
            self._lock.release()
        if not received:
            raise RuntimeError(f"{function.__name__} ended without a result: {message}")
        succeeded, value = message
        if not succeeded:
            raise value
        return value

    def _exchange(self, ctx: RunContext, request: tuple) -> tuple[bool, Any]:
        """Send ``request`` and wait for the answer, watching for Cancel; the lock is held."""
        process = self._running()
        try:
            _send(process.stdin, request)
        except OSError:  # it died since the last call: one fresh start
            self._stop()
            process = self._running()
            _send(process.stdin, request)
        # A thread reads the answer, so that this one can watch for Cancel meanwhile.
        reader, answer = _start_reading(process.stdout)
        silent = _watch_for_silent_end(process, answer)
        self._reader = reader
        drain_until = None
        while reader.is_alive():
            reader.join(POLL_SECONDS)
            if drain_until is None and ctx.cancelled:
                drain_until = time.monotonic() + DRAIN_SECONDS
            if drain_until is not None and reader.is_alive() and time.monotonic() > drain_until:
                break  # _stop below ends the child
            if drain_until is None and reader.is_alive() and silent():
                break  # it died (out of memory, a crash in native code)
        received, message = answer.get("frame", (False, None))
        if not received:
            self._stop()
        if drain_until is not None:
            raise Cancelled()
        if not received:
            error = answer.get("error")
            return False, f"its answer could not be read ({error!r})" if error else "the warm child process stopped"
        return True, message

    @property
    def alive(self) -> bool:
        """Whether a child is up (started, and not ended since)."""
        process = self._process
        return process is not None and process.poll() is None

    def _running(self) -> subprocess.Popen:
        if self._process is not None and self._process.poll() is not None:
            self._stop()  # died: its pipes are closed before a new child starts
        if self._process is None:
            self._process = subprocess.Popen(
                child_command(warm=True), stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=_child_environment()
            )
        return self._process

    def _stop(self) -> None:
        """End the child (:func:`_end_child`, with the reader of the call under way)."""
        process, self._process = self._process, None
        reader, self._reader = self._reader, None
        if process is not None:
            _end_child(process, reader)

    def stop(self) -> None:
        """End the child (a later call starts a new one). At exit a call still going on
        in some thread is not waited for longer than a moment: the child is killed."""
        if self._lock.acquire(timeout=1.0):
            try:
                self._stop()
            finally:
                self._lock.release()
        elif self._process is not None:
            self._process.kill()


_WARM_CHILD = _WarmChild()
atexit.register(_WARM_CHILD.stop)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_WARM_CHILD._reset)


def _watch_for_silent_end(process: subprocess.Popen, answer: dict[str, Any]) -> Callable[[], bool]:
    """A check, called as the caller polls, of whether ``process`` ended more than
    :data:`ENDED_CHILD_GRACE_SECONDS` ago and the bytes of its ``answer`` (the dict of
    :func:`_start_reading`) have still not all arrived.

    Without a process the child started, the end of the pipe ends the reader at once; with
    one that holds the pipe open, the reader would wait as long as that process lives.
    The check never blocks, so Cancel is still seen meanwhile.
    """
    ended_at = None

    def silent() -> bool:
        nonlocal ended_at
        if "arrived" in answer or process.poll() is None:
            return False
        if ended_at is None:
            ended_at = time.monotonic()
        return time.monotonic() - ended_at > ENDED_CHILD_GRACE_SECONDS

    return silent


def _end_child(process: subprocess.Popen, reader: threading.Thread | None) -> None:
    """Kill ``process`` unless it has ended, wait for it, and close its pipes.

    A process the child started may still hold the answer pipe open: then ``reader``, the
    thread reading that pipe, stays blocked (a daemon, it ends with that process) and the
    pipe is left to it, since closing it would wait for that read as long as the holder
    lives (Cancel would hang).
    """
    if process.poll() is None:
        process.kill()  # the reader sees the end of the pipe
    process.wait()
    if reader is not None:
        reader.join(POLL_SECONDS)
    for stream in (process.stdin, process.stdout):
        if stream is None or (stream is process.stdout and reader is not None and reader.is_alive()):
            continue
        try:
            stream.close()
        except OSError:
            pass


def _send(stream: BinaryIO, message: Any) -> None:
    """Write ``message`` pickled, its large arrays as separate buffers (pickle protocol 5
    out of band): written straight from their memory, with the GIL released, instead of
    being copied into one big bytes object first (44 MB for a 12 MP GrabCut band: a
    24 ms stop of the window)."""
    buffers: list[pickle.PickleBuffer] = []
    head = pickle.dumps(message, protocol=5, buffer_callback=buffers.append)
    stream.write(len(buffers).to_bytes(8, "little") + len(head).to_bytes(8, "little"))
    stream.write(head)
    for buffer in buffers:
        raw = buffer.raw()
        stream.write(raw.nbytes.to_bytes(8, "little"))
        stream.write(raw)
    stream.flush()


def _start_reading(stream: BinaryIO) -> tuple[threading.Thread, dict[str, Any]]:
    """A started daemon thread that reads one answer from ``stream`` (:func:`_receive`),
    and the dict where it leaves it: ``"arrived"`` once its bytes are all read, then
    ``"frame"``, or ``"error"`` when the answer could not be unpickled here."""
    answer: dict[str, Any] = {}

    def read() -> None:
        try:
            answer["frame"] = _receive(stream, arrived=lambda: answer.setdefault("arrived", True))
        except BaseException as error:
            answer["error"] = error

    reader = threading.Thread(target=read, name="maskwork-child-answer", daemon=True)
    reader.start()
    return reader, answer


def _receive(stream: BinaryIO, arrived: Callable[[], Any] | None = None) -> tuple[bool, Any]:
    """``(True, message)`` read from ``stream`` as :func:`_send` wrote it, or ``(False,
    None)`` at the end of the stream; ``arrived()`` is called once the message's bytes
    are all read, before they are unpickled."""

    def exactly(size: int) -> np.ndarray | None:
        # Not a bytearray: that fills its memory with zeros first, holding the GIL (tens
        # of milliseconds for a 12 MP float image); reading into it releases the GIL.
        data = np.empty(size, np.uint8)
        view, done = memoryview(data), 0
        while done < size:
            got = stream.readinto(view[done:])
            if not got:
                return None
            done += got
        return data

    header = exactly(16)
    if header is None:
        return False, None
    count, head_size = int.from_bytes(header[:8].tobytes(), "little"), int.from_bytes(header[8:].tobytes(), "little")
    head = exactly(head_size)
    buffers = []
    for _ in range(count if head is not None else 0):
        size = exactly(8)
        data = None if size is None else exactly(int.from_bytes(size.tobytes(), "little"))
        if data is None:
            return False, None
        buffers.append(data)
    if head is None:
        return False, None
    if arrived is not None:
        arrived()
    return True, pickle.loads(head, buffers=buffers)


#: How long the warm child waits for its next call before it gives the memory its heap
#: keeps (maskwork.core.heap) back to the system (the window does when it is deactivated).
WARM_CHILD_GIVE_BACK_MEMORY_AFTER_S = 60.0


def _wait_for_call(requests: BinaryIO, idle_s: float) -> None:
    """Wait for the next call on ``requests`` (an unbuffered pipe); if none comes within
    ``idle_s``, give the memory the heap keeps back to the system, then return."""
    if not keeping_freed_memory():
        return
    import select

    try:
        ready, _, _ = select.select([requests], [], [], idle_s)
    except (OSError, ValueError):  # not a pipe select can watch: read as before
        return
    if not ready:
        give_back_freed_memory()


def serve_calls() -> None:
    """In :func:`call_warm`'s child: answer pickled ``(function, args, kwargs)`` frames from
    stdin with pickled ``(True, result)`` or ``(False, exception)`` frames on stdout, until
    stdin closes."""
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    # Whatever a library prints goes to stderr, not into the answers.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    # Unbuffered, so that waiting on the pipe sees every byte not yet read.
    requests = sys.stdin.buffer.raw
    while True:
        _wait_for_call(requests, WARM_CHILD_GIVE_BACK_MEMORY_AFTER_S)
        try:
            received, request = _receive(requests)
        except Exception as error:  # read whole, but not unpicklable here (a __main__ function)
            _send(answers, (False, RuntimeError(f"the warm child cannot read the call: {error!r}")))
            continue
        if not received:
            return
        function, args, kwargs = request
        try:
            answer = (True, function(*args, **kwargs))
        except Exception as error:
            answer = (False, error)
        try:
            _send(answers, answer)  # pickles in full before it writes anything
        except Exception as error:
            _send(answers, (False, RuntimeError(f"{function.__name__}: its answer cannot be sent back: {error!r}")))
