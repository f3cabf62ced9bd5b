"""A dock's contents that scroll instead of making the window taller than the screen."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFrame, QScrollArea, QWidget


def vertical_scroll_area(content: QWidget, parent: QWidget) -> QScrollArea:
    """Put ``content`` in a frameless area that scrolls up and down, never sideways.

    A dock's minimum height is its contents' minimum height: a long operator form or the
    Measure panel's four groups made the window 920 px and more tall (987 px on a 1000 px
    screen), and the saved window size kept that.
    """
    area = QScrollArea(parent)
    area.setWidgetResizable(True)
    area.setFrameShape(QFrame.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    area.setWidget(content)
    return area
