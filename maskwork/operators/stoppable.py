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
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

from maskwork.operators.context import Cancelled, RunContext

__all__ = ["call_stoppable"]

#: How often the parent looks at the cancel flag while the child computes (seconds).
POLL_SECONDS = 0.05
#: What the child runs: read the pickled call from stdin, write the pickled answer.
CHILD_COMMAND = "from maskwork.operators.stoppable import serve_one_call; serve_one_call()"
#: The same through maskwork's own entry point, for a frozen desktop bundle, whose
#: executable is maskwork itself and runs no ``-c`` code.
FROZEN_CHILD_OPTION = "--serve-one-call"


def child_command() -> list[str]:
    """The command line of the child process: this interpreter, or the frozen bundle."""
    if getattr(sys, "frozen", False):
        return [sys.executable, FROZEN_CHILD_OPTION]
    return [sys.executable, "-c", CHILD_COMMAND]


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
        # The child imports maskwork from where this copy lives, installed or not.
        package_root = str(Path(__file__).resolve().parents[2])
        search_path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
        child = subprocess.Popen(
            child_command(),
            stdin=request,
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": search_path},
        )
    try:
        while True:
            try:
                # Retrying after a timeout resumes reading the answer; nothing is lost.
                answer, _ = child.communicate(timeout=POLL_SECONDS)
                break
            except subprocess.TimeoutExpired:
                if ctx.cancelled:
                    raise Cancelled() from None
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    try:
        succeeded, value = pickle.loads(answer)
    except (EOFError, pickle.UnpicklingError):
        raise RuntimeError(f"{function.__name__} ended without a result (exit code {child.returncode})") from None
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
        answer = pickle.dumps((True, function(*args, **kwargs)), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as error:
        answer = pickle.dumps((False, error), protocol=pickle.HIGHEST_PROTOCOL)
    answer_stream.write(answer)
    answer_stream.close()
