"""Small computations for widgets (measurements) off the UI thread.

Operators run through :mod:`maskwork.app.workers`; this is the lighter sibling for a
widget that needs a number computed from large layers without freezing the window.
Every job is tracked until its thread ends, so nothing is destroyed while running.
"""

from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QThread, Signal

_running: set["BackgroundJob"] = set()


def live_jobs() -> list["BackgroundJob"]:
    """Jobs whose thread has not finished yet."""
    return [job for job in _running if job.isRunning()]


def wait_for_jobs(timeout_ms: int = 5000) -> None:
    """Block until every running job has finished (used at quit and by tests)."""
    for job in live_jobs():
        job.wait(timeout_ms)


class BackgroundJob(QThread):
    """Calls ``compute()`` in a thread and emits ``done`` with its value (or the exception)."""

    done = Signal(object)

    def __init__(self, compute: Callable[[], object]) -> None:
        super().__init__()
        self._compute = compute
        self.finished.connect(self._forget)

    def start(self) -> None:  # noqa: D102 (QThread.start)
        _running.add(self)
        super().start()

    def _forget(self) -> None:
        _running.discard(self)

    def run(self) -> None:  # noqa: D102 (runs in the worker thread)
        try:
            value = self._compute()
        except Exception as error:  # reported to the widget, which shows it, never raised here
            value = error
        self.done.emit(value)
