"""Creates the QApplication and the main window (``maskwork`` without a command)."""

from __future__ import annotations

import gc
import sys
from typing import Sequence

import pyqtgraph as pg
from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from maskwork.app.settings import APPLICATION, ORGANIZATION
from maskwork.core.heap import give_back_freed_memory, keeping_freed_memory


def configure_pyqtgraph() -> None:
    """Global pyqtgraph options, set once before any item exists."""
    # Arrays are (row, col[, channel]) everywhere in maskwork.
    pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)


def reserve_a_core_for_the_interface() -> None:
    """Let OpenCV use all cores but one, so operators never starve the UI thread."""
    import os

    import cv2

    cv2.setNumThreads(max(1, (os.cpu_count() or 2) - 1))


def create_application(argv: Sequence[str] = ()) -> QApplication:
    """The QApplication (reused if one exists, as in tests)."""
    configure_pyqtgraph()
    reserve_a_core_for_the_interface()
    app = QApplication.instance() or QApplication([sys.argv[0], *argv])
    app.setOrganizationName(ORGANIZATION)
    app.setApplicationName(APPLICATION)
    from importlib.resources import files

    icon = files("maskwork.resources").joinpath("maskwork.svg")
    if icon.is_file():
        app.setWindowIcon(QIcon(str(icon)))
    return app


#: How often the window looks for a moment without workers to collect garbage in.
GARBAGE_COLLECTION_INTERVAL_MS = 2_000


def collect_garbage_when_idle(window) -> QTimer:
    """Collect reference cycles only on the UI thread while no worker computes.

    The automatic collector runs on whichever thread allocates, at any moment. A
    collection while a worker has torch build modules (``import torch``, or the
    submodules such as ``torch._dynamo`` that torch imports lazily during a run) walks
    half-built objects and crashes the process (faulthandler: "Garbage-collecting", on
    the UI thread or in the worker). Returns the timer; each tick without live workers is
    :func:`collect_idle_garbage`.
    """
    from maskwork.widgets.workers import live_workers

    gc.disable()
    timer = QTimer(window)
    timer.setInterval(GARBAGE_COLLECTION_INTERVAL_MS)
    timer.timeout.connect(lambda: None if live_workers() else collect_idle_garbage())
    timer.start()
    return timer


class MemoryGiveBack(QObject):
    """Gives the memory the heap keeps (maskwork.core.heap) back to the system when the
    person turns to another application: the moment another program may want it, and
    no one is drawing in this window. ``malloc_trim`` takes about 8 ms per 1.4 GB kept
    and holds the heap's lock meanwhile (allocations on the UI thread wait for it), so
    it runs on a worker then, once per spell away, and only when work ran since the
    last time (a no-op where the heap keeps nothing). A run still going at that moment
    frees its memory later: the next spell away gives it back.

    Parameters
    ----------
    parent : QObject
        The window: the object lives, and listens, as long as it does.
    """

    def __init__(self, parent: QObject) -> None:
        from maskwork.widgets.workers import workers_started

        super().__init__(parent)
        self._started_at_last = workers_started()
        QApplication.instance().applicationStateChanged.connect(self.on_application_state)

    def on_application_state(self, state: Qt.ApplicationState) -> None:
        """Slot of ``QGuiApplication.applicationStateChanged``."""
        from maskwork.widgets.workers import live_workers, start_worker, workers_started

        if (state == Qt.ApplicationState.ApplicationActive or QApplication.closingDown() or live_workers()
                or workers_started() == self._started_at_last):
            return
        if keeping_freed_memory():
            start_worker(lambda _worker: give_back_freed_memory(), name="give back freed memory")
        self._started_at_last = workers_started()


#: ``len(sys.modules)`` when the collector last froze what exists (see collect_idle_garbage).
_modules_at_last_freeze = 0


def collect_idle_garbage() -> bool:
    """One idle collection; returns whether it froze what exists instead.

    A full collection walks every object not frozen. torch's import leaves about 140,000
    of them, which made each idle collection a 60-100 ms stall of the UI thread, every
    two seconds. So when modules were imported since the last freeze (an operator's first
    run, torch's lazy submodules), what exists is frozen instead: the modules' objects
    live as long as the process, and later collections skip them. Freezing walks
    nothing; collecting first would itself be that 100 ms stall, to free the few thousand
    cycles an import leaves (7,000 objects after torch and SimpleITK), which stay frozen
    instead. Freezing only exempts objects from cycle detection; one whose last
    reference goes is still freed at once.
    """
    global _modules_at_last_freeze
    if len(sys.modules) == _modules_at_last_freeze:
        gc.collect()
        return False
    gc.freeze()
    _modules_at_last_freeze = len(sys.modules)
    return True


def manage_garbage(window) -> QTimer:
    """The shown window's garbage collection: what exists now is frozen (it lives as long
    as the window, so no collection walks it again), and cycles are collected only while
    no worker runs (:func:`collect_garbage_when_idle`); memory the heap keeps goes back to
    the system when the application is deactivated (:class:`MemoryGiveBack`). Returns the
    timer.

    Benchmarks that drive a window call this too, so they measure what people run.
    """
    global _modules_at_last_freeze
    gc.freeze()
    _modules_at_last_freeze = len(sys.modules)
    if window.findChild(MemoryGiveBack) is None:
        MemoryGiveBack(window)
    return collect_garbage_when_idle(window)


def run_application(paths: Sequence[str]) -> int:
    """Open the window with ``paths`` and run the event loop; returns the exit code."""
    app = create_application()
    from maskwork.app.main_window import MainWindow

    window = MainWindow()
    window.show()
    manage_garbage(window)
    if paths:
        window.open_paths(list(paths))

    def after_show() -> None:
        if not paths:
            window.offer_recovery()

    QTimer.singleShot(0, after_show)
    return app.exec()
