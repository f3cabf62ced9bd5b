"""The history panel: every undo step as a row; clicking a row goes back (or forward) to it."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QAbstractItemView, QLabel, QListWidget, QListWidgetItem, QVBoxLayout, QWidget

from maskwork.core.history import History

INITIAL_STATE = "Initial state"


def human_bytes(count: int) -> str:
    """``count`` bytes as ``"512 bytes"``, ``"3.2 KiB"``, ``"1.5 MiB"`` or ``"2.0 GiB"``."""
    if count < 1024:
        return f"{count} bytes"
    value = float(count)
    for unit in ("KiB", "MiB", "GiB"):
        value /= 1024
        if value < 1024 or unit == "GiB":
            break
    return f"{value:.1f} {unit}"


class HistoryPanel(QWidget):
    """List of history states: the initial state, the applied steps, then the undone ones.

    Row ``n`` is the state after ``n`` steps, so clicking it calls
    ``history.jump_to(n)``. Undone steps are shown greyed and in italics; the current
    state is selected and bold.

    Parameters
    ----------
    history : History
        The history to show and move through.
    parent : QWidget, optional
        Qt parent.

    Attributes
    ----------
    list_widget : QListWidget
        One row per state.
    memory_label : QLabel
        Memory held by the undo and redo data.
    """

    def __init__(self, history: History, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._history = history
        # True while the panel selects the current row itself, which is no request to jump.
        self._refreshing = False

        self.list_widget = QListWidget(self)
        self.list_widget.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list_widget.setToolTip("Click a step to undo or redo up to it")
        # Long step names are elided (the row tooltip has the whole name) instead of
        # growing a horizontal scroll bar in a narrow dock.
        self.list_widget.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list_widget.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.memory_label = QLabel(self)
        self.memory_label.setToolTip(
            f"Undo data in memory; the oldest steps are dropped beyond "
            f"{human_bytes(history.max_bytes)} or {history.max_steps} steps"
        )

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.list_widget, 1)
        layout.addWidget(self.memory_label)

        self.list_widget.currentRowChanged.connect(self._on_row_chosen)
        history.changed.connect(self.refresh)
        # psygnal does not know when the C++ widget dies; a later change would call into it.
        slot = self.refresh
        self.destroyed.connect(lambda *_: history.changed.disconnect(slot))
        self.refresh()

    def refresh(self) -> None:
        """Show the history as it is now."""
        undo, redo = self._history.undo_names, self._history.redo_names
        names = [INITIAL_STATE, *undo, *redo]
        current = len(undo)
        grey = self.palette().color(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text)
        self._refreshing = True
        try:
            # Rows are updated in place: a jump keeps their number, and this also runs
            # from inside the list's own currentRowChanged.
            while self.list_widget.count() > len(names):
                self.list_widget.takeItem(self.list_widget.count() - 1)
            while self.list_widget.count() < len(names):
                self.list_widget.addItem(QListWidgetItem())
            for row, name in enumerate(names):
                item = self.list_widget.item(row)
                item.setText(name)
                item.setToolTip(name)
                font = item.font()
                font.setItalic(row > current)
                font.setBold(row == current)
                item.setFont(font)
                item.setData(Qt.ItemDataRole.ForegroundRole, grey if row > current else None)
            self.list_widget.setCurrentRow(current)
            self.list_widget.scrollToItem(self.list_widget.item(current))
        finally:
            self._refreshing = False
        self.memory_label.setText(f"History memory: {human_bytes(self._history.nbytes)}")

    def _on_row_chosen(self, row: int) -> None:
        if self._refreshing or row < 0:
            return
        self._history.jump_to(row)
        # jump_to emits nothing when it cannot move (a group is open); the selection must
        # still show the real current state.
        self.refresh()
