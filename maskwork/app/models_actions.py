"""Deep learning > Models...: the window's entry to the model manager."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QObject

from maskwork.app.actions import window_action
from maskwork.widgets.models_dialog import ModelsDialog

if TYPE_CHECKING:
    from maskwork.app.main_window import MainWindow


class ModelsActions(QObject):
    """Owns the Models dialog: one per window, kept while hidden so a download goes on.

    Parameters
    ----------
    window : MainWindow
        The dialog's parent.
    """

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.dialog: ModelsDialog | None = None
        self.action_models = window_action(
            window, "&Models...", self.show_dialog, None,
            "Download, import and remove pretrained models (Segment Anything, SAM 2.1, LaMa)",
        )

    def show_dialog(self) -> ModelsDialog | None:
        """Show the Models dialog (made on first use), refreshed from the cache; None, and
        the reason in a message box, when the catalogue cannot be read (a site catalogue,
        ``MASKWORK_MODELS_CATALOGUE``, with a typo)."""
        try:
            if self.dialog is None:
                self.dialog = ModelsDialog(self.window)
            else:
                self.dialog.refresh()
        except ValueError as error:
            self.window.show_error("Cannot list the models", str(error))
            return None
        self.dialog.show()
        self.dialog.raise_()
        self.dialog.activateWindow()
        return self.dialog
