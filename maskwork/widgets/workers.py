"""Work off the UI thread, one mechanism for all of it: operator runs, an operator's
preparation, measurements, model information, file I/O and downloads.

A :class:`Worker` is a superqt thread worker (a QRunnable on Qt's thread pool whose
signals live on a QObject of the main thread, so every slot runs there). It adds what
maskwork needs on top: a cancel event the computation can check (an operator's
:class:`~maskwork.operators.context.RunContext` uses it), progress and "partial result
waiting" signals, and a record of every worker still running so that quitting, and each
test, can make sure none is left behind. superqt imports Qt through qtpy, so the napari
plugin (under whichever binding napari runs) and the window share this module.

Workers never touch widgets or layers: they compute, and the main thread applies.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any, Callable

import qtpy
from qtpy.QtCore import QObject, QThread, QThreadPool, Signal
from superqt.utils import WorkerBase

from maskwork.pipeline.session import RunOutcome, RunSession

#: Threads of Qt's pool at least. A cancelled run holds its thread until its next
#: checkpoint (a GrabCut iteration on 12 MP takes about a second); with the pool sized to
#: the cores of a small laptop, the fresh preview would wait behind it.
MIN_POOL_THREADS = 8

#: How much nicer a pool thread is than the window's on Linux (0 normal, 19 lowest). With
#: as many busy threads as cores, the window's thread at the same priority waited its
#: turn: 4-5 gaps over 16 ms instead of 15-18 during a 12 MP registration preview
#: (window_speed.py, another process busy). A thread the worker starts (ITK's, torch's)
#: inherits it. The price: while other programs keep every core busy, a run gets a
#: smaller share of the CPU than they do; with a core free it loses nothing.
WORKER_NICENESS = 10

#: Per pool thread: whether its priority was lowered already.
_thread_state = threading.local()
_live: set["Worker"] = set()
_live_lock = threading.Lock()
#: Workers started so far in this process (see workers_started).
_started = 0


def live_workers() -> list["Worker"]:
    """Workers started whose computation has not returned yet."""
    with _live_lock:
        return list(_live)


def workers_started() -> int:
    """How many workers this process has started: a change between two looks means work
    ran in between, even work too short to be seen live."""
    return _started


def stop_all_workers(timeout_ms: int = 5000) -> bool:
    """Cancel every live worker and wait for them (at quit, and after each test).

    Returns whether all of them finished within ``timeout_ms``.
    """
    for worker in live_workers():
        worker.quit()
    return QThreadPool.globalInstance().waitForDone(timeout_ms)


def lower_thread_priority() -> None:
    """Let the calling thread yield the CPU to the window's thread (once per pool thread).

    Linux keeps a niceness per thread, which Qt's ``QThread.setPriority`` does not set
    there (it changes only real-time scheduling parameters); elsewhere Qt's low priority
    is the platform's own.
    """
    if getattr(_thread_state, "lowered", False):
        return
    _thread_state.lowered = True
    try:
        if sys.platform.startswith("linux"):
            # Relative to the window's thread, whose Linux thread id is the process id (a
            # pool thread started by another one would otherwise add its niceness again).
            window = os.getpriority(os.PRIO_PROCESS, os.getpid())
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), min(19, window + WORKER_NICENESS))
        else:
            QThread.currentThread().setPriority(QThread.Priority.LowPriority)
    except (OSError, RuntimeError):  # a sandbox may forbid it: the work runs all the same
        pass


def _release_runnable(worker: "Worker") -> None:
    """Destroy a finished worker's C++ runnable, on the main thread after its last signal.

    ``QThreadPool.start`` hands the runnable to C++, and the binding then keeps a reference
    to the Python worker until the C++ object is destroyed. Qt destroys only runnables
    that auto-delete, which a worker does not (see :class:`Worker`): without this every
    worker lived as long as the process, with its computation's closure (a run session
    and its input images). The pool no longer touches a runnable once its ``run()``
    returned (it reads ``autoDelete()`` before the run), and the last signal comes at
    the end of ``run()``; destroying it through the binding tells the Python wrapper,
    which then has no C++ object left to delete twice.
    """
    if qtpy.PYSIDE6 or qtpy.PYSIDE2:
        from qtpy import shiboken as binding

        handed_to_cpp = not binding.ownedByPython(worker)
    else:
        from qtpy import sip as binding

        handed_to_cpp = not binding.ispyowned(worker)
    if handed_to_cpp:
        binding.delete(worker)


class AbortedComputation(Exception):
    """A computation ended by a BaseException (SystemExit, ...), reported through ``errored``."""


class WorkerSignals(QObject):
    """superqt's worker signals plus ``progress`` and ``partial_ready``."""

    started = Signal()
    finished = Signal()
    _finished = Signal(object)  # superqt: drops the worker from its own set
    returned = Signal(object)
    errored = Signal(object)
    warned = Signal(tuple)
    progress = Signal(float, str)
    partial_ready = Signal()


class Worker(WorkerBase):
    """Calls ``compute(worker)`` in a pool thread; ``returned`` brings its value back.

    Parameters
    ----------
    compute : callable
        Takes the worker (for :attr:`cancel_event` and the ``progress`` and
        ``partial_ready`` signals) and returns the value ``returned`` carries. An exception
        arrives through ``errored``.
    cancel_event : threading.Event, optional
        Set by :meth:`quit`; ``compute`` checks it (a RunContext made with it raises
        Cancelled at the operator's next checkpoint). A fresh one by default.
    name : str
        Says what the worker does, in the report of a worker left running.

    Attributes
    ----------
    session : RunSession or None
        The operator run it executes (see :func:`session_worker`).
    """

    def __init__(self, compute: Callable[["Worker"], Any], *, cancel_event: threading.Event | None = None,
                 name: str = "") -> None:
        super().__init__(SignalsClass=WorkerSignals)
        # Not auto-deleted: Qt would free it after run() while its Python wrapper lives on,
        # and when the garbage collector later freed the wrapper (a closure cycle through
        # the signals) the second delete aborted the process. Instead the main thread
        # destroys it through the binding after its last signal (_release_runnable).
        self.setAutoDelete(False)
        self._compute = compute
        self.cancel_event = cancel_event or threading.Event()
        self.name = name or getattr(compute, "__qualname__", "worker")
        self.session: RunSession | None = None

    def __repr__(self) -> str:
        return f"<Worker {self.name}>"

    def work(self) -> Any:  # noqa: D102 (runs in the pool thread)
        try:
            lower_thread_priority()
            return self._compute(self)
        except Exception:
            raise
        except BaseException as error:
            # superqt catches Exception only: a SystemExit raised inside a library would
            # leave the worker unfinished and its caller busy forever.
            raise AbortedComputation(f"{type(error).__name__}: {error}") from error
        finally:
            with _live_lock:
                _live.discard(self)

    def quit(self) -> None:
        """Ask the computation to stop; ``returned`` is not emitted after this."""
        self.cancel_event.set()
        super().quit()

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`quit` was called."""
        return self.cancel_event.is_set()

    def start(self) -> None:
        """Queue the work on Qt's thread pool."""
        pool = QThreadPool.globalInstance()
        if pool.maxThreadCount() < MIN_POOL_THREADS:
            pool.setMaxThreadCount(MIN_POOL_THREADS)
        global _started
        with _live_lock:
            _live.add(self)
            _started += 1
        # Connected before the run can end (a queued signal reaches only the slots
        # connected when it is emitted).
        self._finished.connect(_release_runnable)
        super().start()


def start_worker(compute: Callable[["Worker"], Any], *, returned: Callable | None = None,
                 errored: Callable | None = None, finished: Callable | None = None,
                 cancel_event: threading.Event | None = None, name: str = "") -> Worker:
    """Start a :class:`Worker` with its slots connected.

    An exception of ``compute`` reaches ``errored``; without an ``errored`` slot it reaches
    ``returned`` as the value, so a widget that shows "what came back" shows the error too.
    """
    worker = Worker(compute, cancel_event=cancel_event, name=name)
    if returned is not None:
        worker.returned.connect(returned)
    if errored is not None:
        worker.errored.connect(errored)
    elif returned is not None:
        worker.errored.connect(returned)
    if finished is not None:
        worker.finished.connect(finished)
    worker.start()
    return worker


def session_worker(session: RunSession, *, check_memory: bool = False, partials: bool = True) -> Worker:
    """A worker (not started) that executes ``session``; ``returned`` brings its
    :class:`~maskwork.pipeline.session.RunOutcome`.

    Its ``progress`` signal relays the operator's progress and ``partial_ready`` says a new
    partial result waits in :meth:`RunSession.take_partial` (signalled once per empty slot,
    so a fast optimiser never floods the main thread); ``partials=False`` asks the
    operator for none (it skips the work of making them). :meth:`Worker.quit` cancels the
    session.
    """

    def execute(worker: Worker) -> RunOutcome:
        offer = worker.partial_ready.emit if partials else None
        return session.execute(worker.progress.emit, offer, check_memory=check_memory)

    worker = Worker(execute, cancel_event=session.cancel_event, name=f"{session.spec.id} ({session.purpose})")
    worker.session = session
    return worker
