"""Mouse input on the canvas as a person gives it, and small scoring helpers."""

import numpy as np
from PySide6.QtCore import QEvent, QPoint, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from maskwork.widgets.canvas import Tool


def widget_point(canvas, row, col):
    """Viewport coordinates of the centre of image pixel (row, col)."""
    scene = canvas.view.mapViewToScene(QPointF(col + 0.5, row + 0.5))
    return canvas.graphics.mapFromScene(scene)


#: pyqtgraph drops mouse moves closer than 10 ms apart (its mouseRateLimit of 100 Hz);
#: a hand on a mouse is slower than that, and so is this driver.
MOVE_INTERVAL_MS = 12


def _send(widget, kind, pos: QPoint, button, buttons, wait: bool = True, modifiers=Qt.KeyboardModifier.NoModifier):
    if wait:
        QTest.qWait(MOVE_INTERVAL_MS)
    event = QMouseEvent(kind, QPointF(pos), QPointF(widget.mapToGlobal(pos)), button, buttons, modifiers)
    QApplication.sendEvent(widget, event)


def drag(canvas, points, button=Qt.MouseButton.LeftButton):
    """Press at the first (row, col), move through the others, release at the last."""
    viewport = canvas.graphics.viewport()
    QApplication.processEvents()  # let a pending layout or fit settle before aiming
    positions = [widget_point(canvas, r, c) for r, c in points]
    _send(viewport, QEvent.Type.MouseButtonPress, positions[0], button, button)
    for pos in positions[1:]:
        _send(viewport, QEvent.Type.MouseMove, pos, Qt.MouseButton.NoButton, button)
    _send(viewport, QEvent.Type.MouseButtonRelease, positions[-1], button, Qt.MouseButton.NoButton)
    QApplication.processEvents()


def click(canvas, row, col, button=Qt.MouseButton.LeftButton, modifiers=Qt.KeyboardModifier.NoModifier):
    """A click on image pixel (row, col), aimed after pending events have settled."""
    viewport = canvas.graphics.viewport()
    QTest.qWait(MOVE_INTERVAL_MS)  # a status message or late layout may still move the view
    pos = widget_point(canvas, row, col)
    _send(viewport, QEvent.Type.MouseButtonPress, pos, button, button, wait=False, modifiers=modifiers)
    _send(viewport, QEvent.Type.MouseButtonRelease, pos, button, Qt.MouseButton.NoButton, wait=False, modifiers=modifiers)
    QApplication.processEvents()


def menu_action(window, *path):
    """The QAction at a menu path such as ("File", "Export mask (PNG 0/255)...")."""
    menu = None
    for text in path:
        actions = window.menuBar().actions() if menu is None else menu.actions()
        match = [a for a in actions if a.text().replace("&", "").startswith(text)]
        assert match, f"no menu entry {text!r} among {[a.text() for a in actions]}"
        action = match[0]
        menu = action.menu()
    return action


def iou(a, b):
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    return (a & b).sum() / max(1, (a | b).sum())


def scribble_cat(window, truth):
    """Foreground through the cat, background around the border, drawn with the mouse."""
    rows, cols = np.nonzero(truth)
    r, c = int(rows.mean()), int(cols.mean())
    window.tool_actions[Tool.BRUSH].trigger()
    window.canvas.brush_radius = 4
    window.canvas.active_label = 1
    drag(window.canvas, [(r - 25, c - 40), (r, c), (r + 25, c + 40)])
    window.canvas.active_label = 2
    drag(window.canvas, [(6, 6), (6, 310), (232, 310)])
