"""Non-blocking message boxes that replace each other instead of piling up."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox, QWidget
from shiboken6 import isValid


def replace_message_box(parent: QWidget, previous: QMessageBox | None, icon: QMessageBox.Icon, title: str,
                        text: str) -> QMessageBox:
    """Open a window-modal message box over ``parent`` in place of ``previous``, if still open.

    It returns at once: ``QMessageBox.warning`` and friends run a nested event loop inside
    the caller's slot until answered. Closing a box deletes it, and a new message replaces
    an unanswered one: a box costs about 150 KB, and a failure repeated for hours must not
    pile them up. Returns the new box (keep it to pass as ``previous`` next time).
    """
    if previous is not None and isValid(previous):
        previous.close()
    box = QMessageBox(icon, title, text, QMessageBox.StandardButton.Ok, parent)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.setWindowModality(Qt.WindowModality.WindowModal)
    box.open()
    return box
