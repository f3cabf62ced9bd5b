"""The layer panel drives the Document and follows it, including through undo."""

import numpy as np
import pytest
import shiboken6
from PySide6.QtCore import QMimeData, QPointF, Qt
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QLineEdit, QMessageBox

from maskwork.core.document import Document
from maskwork.core.layers import Layer, LayerKind
from maskwork.widgets.layer_panel import KIND_ROLE, LayerPanel


@pytest.fixture
def doc():
    document = Document()
    rng = np.random.default_rng(0)
    document.add_layer(Layer(rng.integers(0, 255, (40, 50), dtype=np.uint8), "image", "photo"))
    document.new_layer("markers", "scribbles")
    document.new_layer("mask", "mask")
    document.history.clear()
    return document


@pytest.fixture
def panel(qtbot, doc):
    widget = LayerPanel(doc)
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def row_names(panel):
    return [panel.list_widget.item(row).text() for row in range(panel.list_widget.count())]


def select(doc, name):
    doc.layers.selected = doc.layers.by_name(name)


def test_rows_are_top_first_with_kind_tags_and_follow_selection(panel, doc):
    assert row_names(panel) == ["mask", "scribbles", "photo"]
    tags = [panel.list_widget.item(row).data(KIND_ROLE) for row in range(3)]
    assert tags == ["mask", "markers", "image"]
    assert "image layer, 40 x 50" in panel.list_widget.item(2).toolTip()
    # The last added layer is selected in the document and in the list.
    assert panel.list_widget.currentRow() == 0
    select(doc, "photo")
    assert panel.list_widget.currentRow() == 2
    panel.list_widget.setCurrentRow(1)
    assert doc.layers.selected is doc.layers.by_name("scribbles")
    # Selecting is not an edit.
    assert doc.history.undo_names == []


def test_visibility_checkbox_is_one_undoable_step(panel, doc):
    photo = doc.layers.by_name("photo")
    panel.list_widget.item(2).setCheckState(Qt.CheckState.Unchecked)
    assert photo.visible is False
    assert doc.history.undo_names == ["Hide photo"]
    doc.history.undo()
    assert photo.visible is True
    assert panel.list_widget.item(2).checkState() == Qt.CheckState.Checked


def test_rename_through_the_editor(qtbot, panel, doc):
    item = panel.list_widget.item(1)
    panel.list_widget.editItem(item)
    editor = panel.list_widget.findChild(QLineEdit)
    assert editor is not None and editor.text() == "scribbles"
    editor.selectAll()
    qtbot.keyClicks(editor, "seeds")
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    layer = doc.layers[1]
    # The delegate commits through a queued call.
    qtbot.waitUntil(lambda: layer.name == "seeds", timeout=1000)
    assert row_names(panel) == ["mask", "seeds", "photo"]
    assert len(doc.history.undo_names) == 1
    doc.history.undo()
    assert layer.name == "scribbles" and row_names(panel)[1] == "scribbles"


def test_empty_name_is_not_committed(panel, doc):
    panel.list_widget.item(0).setText("   ")
    assert doc.layers.by_name("mask") is not None
    assert row_names(panel)[0] == "mask"
    assert doc.history.undo_names == []


def test_move_actions_reorder_and_undo_restores_rows(panel, doc):
    select(doc, "photo")
    assert not panel.action_move_down.isEnabled() and panel.action_move_up.isEnabled()
    panel.action_move_up.trigger()
    assert [layer.name for layer in doc.layers] == ["scribbles", "photo", "mask"]
    assert row_names(panel) == ["mask", "photo", "scribbles"]
    # The moved layer stays selected, in the document and in the list.
    assert doc.layers.selected.name == "photo" and panel.list_widget.currentRow() == 1
    panel.action_move_up.trigger()
    assert row_names(panel) == ["photo", "mask", "scribbles"]
    assert not panel.action_move_up.isEnabled()
    panel.action_move_down.trigger()
    assert row_names(panel) == ["mask", "photo", "scribbles"]
    assert len(doc.history.undo_names) == 3
    doc.history.jump_to(0)
    assert row_names(panel) == ["mask", "scribbles", "photo"]


def test_document_moves_are_reflected(panel, doc):
    doc.move_layer(0, 2)
    assert row_names(panel) == ["photo", "mask", "scribbles"]
    doc.move_layer(2, 1)
    assert row_names(panel) == ["mask", "photo", "scribbles"]


def test_drag_and_drop_moves_the_layer_in_the_document(panel, doc):
    view = panel.list_widget
    view.setCurrentRow(2)  # photo, the bottom layer
    top = view.visualItemRect(view.item(0))
    drop = QDropEvent(
        QPointF(top.center().x(), top.top() + 1),  # upper half of the top row: above it
        Qt.DropAction.MoveAction,
        QMimeData(),
        Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )
    view.dropEvent(drop)
    assert [layer.name for layer in doc.layers] == ["scribbles", "mask", "photo"]
    assert row_names(panel) == ["photo", "mask", "scribbles"]
    assert doc.history.undo_names == ["Move photo"]


def test_opacity_drag_is_one_step_with_the_final_value(panel, doc):
    select(doc, "mask")
    mask = doc.layers.by_name("mask")
    slider = panel.opacity_slider
    assert slider.value() == 100
    slider.setSliderDown(True)  # emits sliderPressed
    for value in (90, 70, 40):
        slider.setValue(value)
        # Live while dragging, but nothing recorded yet.
        assert mask.opacity == pytest.approx(value / 100)
        assert doc.history.undo_names == []
    slider.setSliderDown(False)  # emits sliderReleased
    assert mask.opacity == pytest.approx(0.4)
    assert doc.history.undo_names == ["Opacity of mask"]
    doc.history.undo()
    assert mask.opacity == 1.0 and slider.value() == 100
    doc.history.redo()
    assert mask.opacity == pytest.approx(0.4) and slider.value() == 40


def test_opacity_click_without_drag_is_a_step(panel, doc):
    select(doc, "mask")
    panel.opacity_slider.setValue(55)
    assert doc.layers.by_name("mask").opacity == pytest.approx(0.55)
    assert doc.history.undo_names == ["Opacity of mask"]


def test_delete_then_undo_restores_the_row_and_its_events(panel, doc):
    select(doc, "scribbles")
    layer = doc.layers.selected
    panel.action_delete.trigger()
    assert row_names(panel) == ["mask", "photo"]
    assert len(layer.property_changed) == 0  # the panel let go of the removed layer
    doc.history.undo()
    assert row_names(panel) == ["mask", "scribbles", "photo"]
    layer.name = "renamed elsewhere"
    assert row_names(panel)[1] == "renamed elsewhere"


def test_new_duplicate_and_convert_actions(panel, doc):
    select(doc, "photo")
    panel.action_new_markers.trigger()
    assert doc.layers[-1].kind is LayerKind.MARKERS and row_names(panel)[0] == "markers"
    panel.action_new_mask.trigger()
    assert doc.layers[-1].kind is LayerKind.MASK
    select(doc, "photo")
    panel.action_duplicate.trigger()
    assert doc.layers[1].name == "photo copy" and row_names(panel)[-2] == "photo copy"

    mask = doc.layers.by_name("mask")
    doc.layers.selected = mask
    mask.data[2:6, 2:6] = 1
    mask.data[20:30, 30:40] = 1
    panel.action_to_labels.trigger()
    labels = doc.layers.by_name("mask")
    assert labels.kind is LayerKind.LABELS and labels.data.max() == 2
    row = row_names(panel).index("mask")
    assert panel.list_widget.item(row).data(KIND_ROLE) == "labels"
    assert panel.list_widget.currentRow() == row
    panel.action_to_mask.trigger()
    assert doc.layers.by_name("mask").kind is LayerKind.MASK
    steps = len(doc.history.undo_names)
    assert steps == 5
    doc.history.jump_to(0)
    assert row_names(panel) == ["mask", "scribbles", "photo"]


def test_actions_enabled_per_kind(qtbot):
    doc = Document()
    panel = LayerPanel(doc)
    qtbot.addWidget(panel)
    every = [
        panel.action_new_markers, panel.action_new_mask, panel.action_duplicate, panel.action_delete,
        panel.action_to_labels, panel.action_to_mask, panel.action_move_up, panel.action_move_down,
    ]
    assert not any(action.isEnabled() for action in every)
    doc.add_layer(Layer(np.zeros((10, 12, 3), np.uint8), "image", "rgb"))
    enabled = {action.iconText() for action in every if action.isEnabled()}
    assert enabled == {"New markers", "New mask", "Duplicate", "Delete"}
    assert not panel.colormap_combo.isEnabled()  # RGB has no colour map
    assert panel.contrast_low.isEnabled()
    doc.new_layer("mask")
    assert panel.action_to_labels.isEnabled() and not panel.action_to_mask.isEnabled()
    assert panel.action_move_down.isEnabled() and not panel.action_move_up.isEnabled()
    assert not panel.contrast_low.isEnabled()
    doc.convert_layer(doc.layers.selected, "labels")
    assert panel.action_to_mask.isEnabled() and not panel.action_to_labels.isEnabled()
    doc.layers.append(Layer(np.zeros((10, 12), np.uint8), "preview", "preview"))
    assert not panel.action_delete.isEnabled() and not panel.action_duplicate.isEnabled()
    assert panel.action_new_mask.isEnabled()


def test_document_refusal_becomes_a_message(panel, doc, monkeypatch):
    """A message that does not block the slot (no nested event loop waiting for an answer);
    a second refusal replaces the unanswered box."""

    def refuse(kind):
        raise ValueError("open an image first")

    monkeypatch.setattr(doc, "new_layer", refuse)
    panel.action_new_markers.trigger()
    panel.action_new_markers.trigger()
    shown = [box for box in panel.findChildren(QMessageBox) if box.isVisible()]
    assert [box.text() for box in shown] == ["open an image first"]
    shown[0].close()


def test_colormap_and_contrast_controls(panel, doc):
    select(doc, "photo")
    photo = doc.layers.by_name("photo")
    assert panel.colormap_combo.isEnabled()
    panel.colormap_combo.setCurrentText("viridis")
    assert photo.colormap == "viridis"
    panel.contrast_low.setValue(10)
    assert photo.contrast_limits == (10.0, 255.0)
    panel.contrast_high.setValue(200)
    assert photo.contrast_limits == (10.0, 200.0)
    # The spin boxes cannot cross, so an empty range never reaches the layer.
    panel.contrast_low.setValue(500)
    assert photo.contrast_limits[0] < photo.contrast_limits[1] == 200.0
    panel.auto_contrast_button.click()
    assert photo.contrast_limits == (0.0, 255.0)
    names = doc.history.undo_names
    assert names[0] == "Colormap of photo" and names.count("Contrast limits of photo") == 4
    doc.history.jump_to(0)
    assert panel.colormap_combo.currentText() == "gray"
    assert (panel.contrast_low.value(), panel.contrast_high.value()) == (0.0, 255.0)
    # Controls follow the selection: labels-like layers have no contrast; a mask has a colour.
    select(doc, "mask")
    assert not panel.contrast_low.isEnabled() and panel.colormap_combo.isEnabled()
    assert panel.colormap_combo.currentText() == "sky blue"


def test_each_new_mask_gets_a_colour_of_its_own_which_the_canvas_draws(qtbot):
    from maskwork.core.colors import MASK_COLORS
    from maskwork.widgets.canvas import Canvas

    doc = Document()
    doc.add_layer(Layer(np.zeros((64, 64, 3), np.uint8), "image", "black"))
    first, second = doc.new_layer("mask", "grabcut"), doc.new_layer("mask", "threshold")
    assert (first.colormap, second.colormap) == ("sky blue", "yellow")
    second.data[:] = 1
    panel, canvas = LayerPanel(doc), Canvas(doc)
    for widget in (panel, canvas):
        qtbot.addWidget(widget)
    canvas.resize(200, 200)
    canvas.show()
    second.opacity = 1.0
    select(doc, "threshold")
    panel.colormap_combo.setCurrentText("violet")
    assert second.colormap == "violet" and doc.history.undo_names[-1] == "Colour of threshold"
    canvas.paint_now()
    picture = canvas.graphics.grab().toImage()
    centre = picture.pixelColor(picture.width() // 2, picture.height() // 2)
    assert (centre.red(), centre.green(), centre.blue()) == MASK_COLORS["violet"]
    assert doc.new_layer("mask").colormap == "yellow", "the colour no mask has now"
    assert doc.duplicate_layer(first).colormap == "orange", "a copy is told apart from its original"


def test_float_image_contrast_shows_decimals(qtbot):
    doc = Document()
    image = np.linspace(0, 1, 400, dtype=np.float32).reshape(20, 20)
    doc.add_layer(Layer(image, "image", "float"))
    panel = LayerPanel(doc)
    qtbot.addWidget(panel)
    low, high = doc.layers[0].contrast_limits
    assert panel.contrast_low.decimals() == 4
    assert panel.contrast_low.value() == pytest.approx(low, abs=1e-4)
    assert panel.contrast_high.value() == pytest.approx(high, abs=1e-4)


def test_a_deleted_panel_stops_listening(qtbot, doc):
    panel = LayerPanel(doc)
    assert len(doc.layers.inserted) == 1 and len(doc.layers[0].property_changed) == 1
    shiboken6.delete(panel)  # what a parent does to its children
    assert len(doc.layers.inserted) == 0 and len(doc.layers[0].property_changed) == 0
    doc.new_layer("mask")  # would call into the deleted widget if still connected


def test_contrast_of_a_float_image_of_tiny_values_is_shown_and_moves(qtbot):
    doc = Document()
    image = np.random.default_rng(0).uniform(0, 1e-5, (40, 40)).astype(np.float32)
    doc.add_layer(Layer(image, "image", "faint"))
    panel = LayerPanel(doc)
    qtbot.addWidget(panel)
    layer = doc.layers[0]
    low, high = layer.contrast_limits
    assert panel.contrast_low.value() == pytest.approx(low, rel=1e-2)
    assert panel.contrast_high.value() == pytest.approx(high, rel=1e-2)
    panel.contrast_high.stepBy(-10)
    assert layer.contrast_limits[1] < high and layer.contrast_limits[0] == pytest.approx(low, rel=1e-2)
    panel.contrast_low.setValue(0.0)
    assert layer.contrast_limits[0] == 0.0


def test_blend_mode_is_an_undoable_property_the_canvas_draws_and_a_project_keeps(qtbot, tmp_path):
    from maskwork.core.project import capture, read_project, restore, write_project
    from maskwork.widgets.canvas import Canvas

    doc = Document()
    doc.add_layer(Layer(np.full((64, 64, 3), 100, np.uint8), "image", "below"))
    doc.add_layer(Layer(np.full((64, 64, 3), 60, np.uint8), "image", "above"))
    panel = LayerPanel(doc)
    canvas = Canvas(doc)
    qtbot.addWidget(panel)
    qtbot.addWidget(canvas)
    canvas.resize(200, 200)
    canvas.show()
    select(doc, "above")
    panel.blend_combo.setCurrentText("difference")
    above = doc.layers.by_name("above")
    assert above.blend == "difference" and doc.history.undo_names[-1] == "Blend of above"
    canvas.paint_now()
    picture = canvas.graphics.grab().toImage()
    centre = picture.pixelColor(picture.width() // 2, picture.height() // 2)
    assert (centre.red(), centre.green(), centre.blue()) == (40, 40, 40), "|100 - 60| drawn, not 60 over 100"
    path = write_project(capture(doc), tmp_path / "blend.maskwork")
    doc.history.undo()
    assert above.blend == "normal" and panel.blend_combo.currentText() == "normal"
    again = Document()
    restore(read_project(path), again)
    assert again.layers.by_name("above").blend == "difference"
