"""File > Open in napari: the window's layers sent to a napari viewer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject

from maskwork.app.actions import window_action
from maskwork.operators.extras import needs_message, requirements

if TYPE_CHECKING:
    from maskwork.app.main_window import MainWindow


class NapariActions(QObject):
    """Open in napari: sends the layers to a viewer, the same one while it stays open.

    Parameters
    ----------
    window : MainWindow
        The window whose layers are sent; its messages are used.
    """

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        #: The viewer made by the last Open in napari, reused while its window is open.
        self.viewer = None
        self.action_open_in_napari = window_action(
            window, "Open in &napari", self.open_in_napari, None,
            f"Send the layers to a napari viewer (needs {' '.join(requirements(['napari']))})",
        )

    def open_in_napari(self):
        """Send the layers to a napari viewer (the one opened before, while it is open).

        Returns
        -------
        napari.Viewer or None
            None when napari is not installed or there is nothing to send.
        """
        window = self.window
        if not window.document.layers:
            window.show_error("Nothing to send", "Open an image first.")
            return None
        viewer = self.viewer if _napari_window_open(self.viewer) else None
        window.statusBar().showMessage("Starting napari..." if viewer is None else "Sending the layers to napari...", 5000)
        try:
            from maskwork.napari.bridge import open_in_napari

            # napari itself is imported inside, on first use (it takes seconds).
            self.viewer = open_in_napari(list(window.document.layers), viewer=viewer)
        except ImportError as error:
            window.show_error("napari is not installed", f"{needs_message('Open in napari', ['napari'])}\n({error})")
            return None
        return self.viewer


def _napari_window_open(viewer) -> bool:
    """Whether ``viewer`` (a napari viewer or None) still has its window on screen."""
    qt_window = getattr(getattr(viewer, "window", None), "_qt_window", None)
    try:
        return qt_window is not None and qt_window.isVisible()
    except RuntimeError:  # the Qt object behind it was deleted when the person closed it
        return False
