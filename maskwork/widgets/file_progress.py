"""A busy bar in the status bar while a file is read or written in the background."""

from __future__ import annotations

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QProgressBar, QStatusBar

#: A file job shorter than this never shows the bar: a small PNG written in 20 ms would
#: only make it flicker. Longer ones (a 4000 x 3000 PNG takes 0.7 s) show it.
SHOW_AFTER_MS = 250


class FileProgress(QObject):
    """Shows a moving bar while any file job of the window is under way.

    Image readers and writers give no fraction of their work, so the bar moves without
    one (Qt's busy indicator) and its tooltip names the files.

    Parameters
    ----------
    status_bar : QStatusBar
        Where the bar sits (a permanent widget, hidden when idle).
    """

    def __init__(self, status_bar: QStatusBar) -> None:
        super().__init__(status_bar)
        self.bar = QProgressBar()
        self.bar.setObjectName("fileProgressBar")
        self.bar.setRange(0, 0)
        self.bar.setMaximumWidth(120)
        self.bar.setTextVisible(False)
        self.bar.setVisible(False)
        status_bar.addPermanentWidget(self.bar)
        self._jobs: dict[int, str] = {}
        self._next_id = 0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(SHOW_AFTER_MS)
        self._timer.timeout.connect(self._show)

    def begin(self, text: str) -> int:
        """Note a job that started (``text`` says which file); returns its ticket for :meth:`end`."""
        self._next_id += 1
        self._jobs[self._next_id] = text
        self.bar.setToolTip("\n".join(self._jobs.values()))
        if not self._timer.isActive() and not self.bar.isVisible():
            self._timer.start()
        return self._next_id

    def end(self, ticket: int) -> None:
        """Note that the job of ``ticket`` ended; the bar hides when none is left."""
        self._jobs.pop(ticket, None)
        self.bar.setToolTip("\n".join(self._jobs.values()))
        if not self._jobs:
            self._timer.stop()
            self.bar.setVisible(False)

    @property
    def busy(self) -> bool:
        """Whether a file job is under way."""
        return bool(self._jobs)

    def _show(self) -> None:
        if self._jobs:
            self.bar.setVisible(True)
