"""The history panel lists every state and jumps to the one clicked."""

import numpy as np
import pytest
import shiboken6
from PySide6.QtCore import Qt

from maskwork.core.document import Document
from maskwork.core.layers import Layer
from maskwork.widgets.history_panel import HistoryPanel, human_bytes


@pytest.fixture
def doc():
    document = Document()
    document.add_layer(Layer(np.zeros((64, 64), np.uint8), "image", "photo"))
    document.new_layer("mask")
    document.set_property(document.layers[1], "opacity", 0.5)
    return document


@pytest.fixture
def panel(qtbot, doc):
    widget = HistoryPanel(doc.history)
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def texts(panel):
    return [panel.list_widget.item(row).text() for row in range(panel.list_widget.count())]


def click_row(qtbot, panel, row):
    view = panel.list_widget
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=view.visualItemRect(view.item(row)).center())


def test_rows_list_initial_state_then_steps(panel, doc):
    assert texts(panel) == ["Initial state", "Add photo", "New mask layer", "Opacity of mask"]
    assert panel.list_widget.currentRow() == 3
    assert panel.list_widget.item(3).font().bold()
    doc.set_property(doc.layers[0], "visible", False)
    assert texts(panel)[-1] == "Hide photo" and panel.list_widget.currentRow() == 4


def test_undone_steps_are_greyed_italic(panel, doc):
    doc.history.undo()
    assert panel.list_widget.currentRow() == 2
    assert [panel.list_widget.item(row).font().italic() for row in range(4)] == [False, False, False, True]
    doc.history.undo()
    assert panel.list_widget.currentRow() == 1
    assert [panel.list_widget.item(row).font().italic() for row in range(4)] == [False, False, True, True]
    assert not panel.list_widget.item(2).font().bold() and panel.list_widget.item(1).font().bold()
    assert panel.list_widget.item(3).data(Qt.ItemDataRole.ForegroundRole) is not None
    assert panel.list_widget.item(0).data(Qt.ItemDataRole.ForegroundRole) is None
    # A new edit drops the redo rows.
    doc.set_property(doc.layers[0], "name", "picture")
    assert texts(panel) == ["Initial state", "Add photo", "Rename photo"]


def test_clicking_a_row_jumps(qtbot, panel, doc):
    click_row(qtbot, panel, 0)
    assert doc.history.undo_names == [] and len(doc.layers) == 0
    assert panel.list_widget.currentRow() == 0 and len(texts(panel)) == 4
    click_row(qtbot, panel, 2)
    assert doc.history.undo_names == ["Add photo", "New mask layer"]
    assert [layer.name for layer in doc.layers] == ["photo", "mask"] and doc.layers[1].opacity == 1.0
    click_row(qtbot, panel, 3)
    assert doc.layers[1].opacity == 0.5 and panel.list_widget.currentRow() == 3


def test_memory_label(panel, doc):
    # Inserted layers live in the stack (64 bytes each in history) plus one property step;
    # a deleted layer is held by history alone, so its pixels count.
    assert doc.history.nbytes == 3 * 64
    assert panel.memory_label.text() == "History memory: 192 bytes"
    doc.remove_layer(doc.layers[1])
    assert doc.history.nbytes == 3 * 64 + 64 * 64
    assert panel.memory_label.text() == "History memory: 4.2 KiB"
    doc.history.clear()
    assert panel.memory_label.text() == "History memory: 0 bytes"
    assert texts(panel) == ["Initial state"]


def test_human_bytes():
    assert human_bytes(0) == "0 bytes"
    assert human_bytes(1023) == "1023 bytes"
    assert human_bytes(1536) == "1.5 KiB"
    assert human_bytes(3 * 1024**2) == "3.0 MiB"
    assert human_bytes(5 * 1024**4) == "5120.0 GiB"


def test_a_deleted_panel_stops_listening(qtbot, doc):
    panel = HistoryPanel(doc.history)
    assert len(doc.history.changed) == 1
    shiboken6.delete(panel)  # what a parent does to its children
    assert len(doc.history.changed) == 0
    doc.history.undo()
