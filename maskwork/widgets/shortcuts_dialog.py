"""Help > Keyboard shortcuts: every key the window answers, read from its menus, so the
list never falls behind them, plus the canvas's mouse and keys that no menu holds."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QHeaderView, QMenuBar, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

#: What the canvas does with the mouse and keys outside the menus: (what, how).
CANVAS_KEYS = (
    ("Pan", "Space + drag, or middle-button drag"),
    ("Zoom at the cursor", "Wheel, or right-button drag"),
    ("Background click (Quick select)", "Right click, or Shift + click"),
    ("Label painted by the brush", "1 to 9 (X swaps foreground and background)"),
)


def menu_shortcuts(menu_bar: QMenuBar) -> list[tuple[str, str]]:
    """(menu path and entry, its keys) for every entry of ``menu_bar`` that has a shortcut,
    in menu order; every binding of an entry is listed ("Ctrl+Shift+Z, Ctrl+Y")."""
    rows: list[tuple[str, str]] = []

    def walk(actions: list[QAction], path: str) -> None:
        for action in actions:
            text = action.text().replace("&&", "\0").replace("&", "").replace("\0", "&")
            if action.menu() is not None:
                walk(action.menu().actions(), f"{path}{text} > ")
            elif typed := [key for key in action.shortcuts() if not _special_key(key)]:
                keys = ", ".join(key.toString(QKeySequence.SequenceFormat.NativeText) for key in typed)
                rows.append((f"{path}{text}", keys))

    walk(menu_bar.actions(), "")
    return rows


def _special_key(sequence: QKeySequence) -> bool:
    """Whether ``sequence`` is a keyboard's own Open, Save, Undo or Zoom In key (the
    platform binds them to those actions too): not worth a line in the list."""
    return sequence.count() == 1 and sequence[0].key().value >= Qt.Key.Key_Back.value


class ShortcutsDialog(QDialog):
    """A table of the window's shortcuts: its menus' (:func:`menu_shortcuts`), then the
    canvas's mouse and keys (:data:`CANVAS_KEYS`)."""

    def __init__(self, menu_bar: QMenuBar, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        rows = [*menu_shortcuts(menu_bar), *CANVAS_KEYS]
        self.table = QTableWidget(len(rows), 2, self)
        self.table.setObjectName("shortcutsTable")
        self.table.setHorizontalHeaderLabels(["What", "Keys"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        for row, (what, keys) in enumerate(rows):
            self.table.setItem(row, 0, QTableWidgetItem(what))
            self.table.setItem(row, 1, QTableWidgetItem(keys))
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        layout.addWidget(buttons)
        self.resize(620, 560)
