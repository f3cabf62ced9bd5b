"""Creates the QApplication and the main window (``maskwork`` without a command)."""

from __future__ import annotations

import gc
import sys
from typing import Sequence

import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import QApplication

from maskwork.app.settings import APPLICATION, ORGANIZATION


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


def run_application(paths: Sequence[str]) -> int:
    """Open the window with ``paths`` and run the event loop; returns the exit code."""
    missing = [path for path in paths if path.startswith("-")]
    if missing:
        sys.stderr.write(f"maskwork: error: unknown option {missing[0]} (commands: ops, run; or give image files)\n")
        return 2
    app = create_application()
    from maskwork.app.main_window import MainWindow

    window = MainWindow()
    window.show()
    # What exists now lives as long as the window. Frozen, it is no longer walked by each
    # full garbage collection, which runs on whichever thread allocates: the UI thread too.
    gc.freeze()
    if paths:
        window.open_paths(list(paths))

    def after_show() -> None:
        if not paths:
            window.offer_recovery()

    QTimer.singleShot(0, after_show)
    return app.exec()
