"""Each canvas tool, driven with the mouse and keyboard through the real window."""

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent, QWheelEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from maskwork.core import io
from maskwork.core.layers import LayerKind
from maskwork.widgets.canvas import Tool
from window_driver import _send, click, drag, widget_point


@pytest.fixture
def opened(window, photo):
    window.open_paths([photo[0]])
    return window


def markers_of(window):
    return window.document.layers.of_kind(LayerKind.MARKERS)[-1]


def test_brush_stroke_is_one_undo_step_without_gaps(opened):
    win = opened
    win.tool_actions[Tool.BRUSH].trigger()
    win.canvas.brush_radius = 3
    drag(win.canvas, [(40, 40), (40, 120), (40, 200)])
    markers = markers_of(win)
    assert markers.data[40, 40:201].all(), "the stroke is continuous between mouse positions"
    assert set(np.unique(markers.data)) == {0, 1}
    assert win.document.history.undo_names == ["Brush stroke"]
    win.action_undo.trigger()
    assert not win.document.layers.of_kind(LayerKind.MARKERS), "the stroke created its markers layer and undo removes both"


def test_swap_label_eraser_and_brush_size_keys(opened):
    win = opened
    win.canvas.brush_radius = 4
    win.action_swap.trigger()
    assert win.canvas.active_label == 2 and win.label_combo.currentData() == 2
    drag(win.canvas, [(100, 30), (100, 90)])
    assert (markers_of(win).data == 2).sum() > 200
    win.action_brush_bigger.trigger()
    assert win.canvas.brush_radius == 5 and win.brush_slider.value() == 5
    win.action_brush_smaller.trigger()
    assert win.canvas.brush_radius == 4
    win.tool_actions[Tool.ERASER].trigger()
    win.canvas.brush_radius = 8
    drag(win.canvas, [(100, 20), (100, 100)])
    assert not markers_of(win).data.any()
    assert win.document.history.undo_names[-1] == "Erase"
    win.label_actions[2].trigger()  # key 3
    assert win.canvas.active_label == 3


def test_polygon_clicks_and_lasso_fill_the_active_mask(opened):
    win = opened
    win.layer_panel.action_new_mask.trigger()
    mask = win.document.layers.selected
    assert mask.kind is LayerKind.MASK
    win.tool_actions[Tool.POLYGON].trigger()
    for row, col in [(20, 20), (20, 100), (100, 100)]:
        click(win.canvas, row, col)
    click(win.canvas, 100, 20, Qt.MouseButton.RightButton)  # right click closes
    # The right click itself is not a vertex: three vertices, a triangle.
    assert mask.data[25, 90] == 1 and mask.data[90, 25] == 0
    assert win.document.history.undo_names[-1] == "Polygon fill"
    drag(win.canvas, [(150, 150), (150, 220), (220, 220), (220, 150)])
    assert mask.data[200, 200] == 1
    area = mask.data[140:230, 140:230].sum()
    assert 0.3 * 70 * 70 < area < 1.2 * 70 * 70


def test_flood_fill_fills_a_hole_in_a_mask(opened):
    win = opened
    win.layer_panel.action_new_mask.trigger()
    mask = win.document.layers.selected
    ring = np.zeros(mask.shape, np.uint8)
    ring[50:120, 50:120] = 1
    ring[60:110, 60:110] = 0
    win.document.write(mask, (slice(None), slice(None)), ring, "ring")
    win.tool_actions[Tool.FILL].trigger()
    click(win.canvas, 80, 80)
    assert mask.data[50:120, 50:120].all() and mask.data.sum() == 70 * 70
    assert win.document.history.undo_names[-1] == "Flood fill"


def test_point_prompts_and_clearing_them(opened):
    win = opened
    win.tool_actions[Tool.POINT_POSITIVE].trigger()
    click(win.canvas, 60, 70)
    win.tool_actions[Tool.POINT_NEGATIVE].trigger()
    click(win.canvas, 10, 10)
    assert win.document.points == ((60.0, 70.0, 1), (10.0, 10.0, 0))
    win.action_clear_seeds.trigger()
    assert win.document.points == ()
    win.action_undo.trigger()
    assert len(win.document.points) == 2


def test_a_click_beside_an_earlier_mark_is_a_prompt_of_its_own(opened):
    win = opened
    win.tool_actions[Tool.POINT_POSITIVE].trigger()
    click(win.canvas, 60, 70)
    click(win.canvas, 60, 73)  # on the first point's 12-pixel mark
    assert win.document.points == ((60.0, 70.0, 1), (60.0, 73.0, 1))
    win.tool_actions[Tool.BRUSH].trigger()
    win.canvas.brush_radius = 1
    click(win.canvas, 62, 70)
    assert win.document.layers.of_kind(LayerKind.MARKERS)[-1].data[62, 70] == win.canvas.active_label


def test_space_drag_and_middle_drag_pan_without_painting(opened):
    win = opened
    canvas = win.canvas
    win.tool_actions[Tool.BRUSH].trigger()
    before = canvas.view.viewRect()
    drag(canvas, [(100, 100), (100, 140), (100, 180)], Qt.MouseButton.MiddleButton)
    after = canvas.view.viewRect()
    assert after.x() < before.x() - 20, "dragging right moves the image right"
    canvas.graphics.setFocus()
    QApplication.sendEvent(canvas.graphics, _key(QEvent.Type.KeyPress, Qt.Key.Key_Space))
    drag(canvas, [(100, 100), (140, 100), (180, 100)])
    QApplication.sendEvent(canvas.graphics, _key(QEvent.Type.KeyRelease, Qt.Key.Key_Space))
    assert canvas.view.viewRect().y() < after.y() - 20
    assert not win.document.layers.of_kind(LayerKind.MARKERS), "panning never paints"


def _press_move_release(canvas, points, between):
    """A left drag through (row, col) ``points`` with ``between()`` called after the
    first move, the button still held (a key pressed mid-stroke)."""
    viewport = canvas.graphics.viewport()
    QApplication.processEvents()
    positions = [widget_point(canvas, r, c) for r, c in points]
    left, none = Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton
    _send(viewport, QEvent.Type.MouseButtonPress, positions[0], left, left)
    _send(viewport, QEvent.Type.MouseMove, positions[1], none, left)
    between()
    for pos in positions[2:]:
        _send(viewport, QEvent.Type.MouseMove, pos, none, left)
    _send(viewport, QEvent.Type.MouseButtonRelease, positions[-1], left, none)
    QApplication.processEvents()


def test_space_pressed_mid_stroke_ends_the_stroke_at_the_release_and_undo_keeps_working(opened):
    win = opened
    canvas = win.canvas
    win.tool_actions[Tool.BRUSH].trigger()
    canvas.brush_radius = 3
    canvas.graphics.setFocus()
    _press_move_release(canvas, [(50, 50), (50, 100), (50, 150), (80, 150)],
                        lambda: QApplication.sendEvent(canvas.graphics, _key(QEvent.Type.KeyPress, Qt.Key.Key_Space)))
    QApplication.sendEvent(canvas.graphics, _key(QEvent.Type.KeyRelease, Qt.Key.Key_Space))
    history = win.document.history
    assert not history.in_group and history.undo_names == ["Brush stroke"]
    assert markers_of(win).data[50, 50:151].all() and markers_of(win).data[50:81, 150].all(), \
        "the stroke the press began goes on to the release"
    drag(canvas, [(150, 40), (150, 280)])
    assert history.undo_names == ["Brush stroke", "Brush stroke"] and win.action_undo.isEnabled()
    assert history.is_modified and "*" in win.windowTitle()


def test_a_tool_key_mid_drag_leaves_the_drag_to_the_tool_that_began_it(opened):
    win = opened
    canvas = win.canvas
    win.tool_actions[Tool.BRUSH].trigger()
    canvas.brush_radius = 3
    _press_move_release(canvas, [(50, 50), (50, 100), (50, 150)], lambda: win.tool_actions[Tool.BOX].trigger())
    assert canvas.tool is Tool.BOX
    assert win.document.history.undo_names == ["Brush stroke"] and not win.document.history.in_group
    assert win.document.rect is None
    _press_move_release(canvas, [(20, 30), (60, 90), (100, 200)], lambda: win.tool_actions[Tool.BRUSH].trigger())
    assert win.document.rect == (30, 20, 171, 81), "the box is drawn to the release, B or not"
    assert win.document.history.undo_names == ["Brush stroke", "Box"]


def test_e_or_x_pressed_mid_stroke_leave_the_stroke_painting_what_it_began_with(opened):
    win = opened
    win.tool_actions[Tool.BRUSH].trigger()
    win.canvas.brush_radius = 3

    def switch():
        win.tool_actions[Tool.ERASER].trigger()
        win.action_swap.trigger()

    _press_move_release(win.canvas, [(50, 50), (50, 100), (50, 150), (50, 200)], switch)
    assert (markers_of(win).data[50, 50:201] == 1).all(), "one brush stroke of label 1, to its end"
    assert win.document.history.undo_names == ["Brush stroke"]


def test_a_box_covers_the_pixels_it_was_dragged_between_and_a_flat_drag_keeps_one_row(window, tmp_path):
    io.write_image(tmp_path / "small.png", np.full((240, 320), 90, np.uint8))
    window.open_paths([tmp_path / "small.png"])
    window.tool_actions[Tool.BOX].trigger()
    drag(window.canvas, [(0, 0), (120, 160), (239, 319)])
    assert window.document.rect == (0, 0, 320, 240), "the first and last pixels are inside"
    drag(window.canvas, [(50, 30), (50, 130)])
    assert window.document.rect == (30, 50, 101, 1), "a sloppy flat drag is a one-row box, not Clear box"
    drag(window.canvas, [(-40, 20), (-10, 60)])
    assert window.document.rect == (30, 50, 101, 1), "a drag wholly above the image leaves the box"
    assert window.canvas._rect_item.isVisible() and window.canvas._rect_item.rect().width() == 101, \
        "and it is still drawn"


def test_a_landmark_dragged_off_the_image_stays_on_its_edge(opened):
    win = opened
    win.tool_actions[Tool.LANDMARK].trigger()
    click(win.canvas, 40, 50)
    click(win.canvas, 45, 55)
    drag(win.canvas, [(40, 50), (10, 50), (-15, 50)])
    assert win.document.points[0] == (0, 50, 1)
    assert win.document.history.undo_names[-1] == "Move landmark 1" and not win.document.history.in_group


def test_the_brush_slider_reaches_the_largest_brush_the_keys_give(opened):
    win = opened
    win.canvas.brush_radius = 480
    for _ in range(30):
        win.action_brush_bigger.trigger()
    assert win.canvas.brush_radius == win.brush_slider.value() == win.brush_slider.maximum()


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_flood_fill_on_scribbles_follows_a_deep_images_own_contrast(window, tmp_path, dtype):
    rng = np.random.default_rng(1)
    if dtype is np.uint16:
        halves, noise = (10000, 50000), 300
    else:
        halves, noise = (0.2, 0.8), 0.003
    image = np.empty((120, 160), np.float64)
    image[:, :80], image[:, 80:] = halves
    image = (image + rng.normal(0, noise, image.shape)).astype(dtype)
    io.write_image(tmp_path / "halves.tif", image)
    window.open_paths([tmp_path / "halves.tif"])
    window.tool_actions[Tool.FILL].trigger()
    click(window.canvas, 60, 40)
    filled = markers_of(window).data > 0
    assert filled[:, :80].all() and not filled[:, 80:].any(), "the left half, up to the edge"


def _key(kind, key):
    from PySide6.QtGui import QKeyEvent

    return QKeyEvent(kind, key, Qt.KeyboardModifier.NoModifier, " ")


def test_wheel_zooms_at_the_cursor_and_fit_restores(opened):
    win = opened
    canvas = win.canvas
    zoom_before = canvas.zoom
    pos = widget_point(canvas, 60, 80)
    viewport = canvas.graphics.viewport()
    event = QWheelEvent(
        QPointF(pos), QPointF(viewport.mapToGlobal(pos)), QPoint(0, 0), QPoint(0, 240),
        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False,
    )
    QApplication.sendEvent(viewport, event)
    assert canvas.zoom > zoom_before * 1.2
    # The pixel under the cursor stays under the cursor.
    after = widget_point(canvas, 60, 80)
    assert abs(after.x() - pos.x()) <= 2 and abs(after.y() - pos.y()) <= 2
    assert win.zoom_label.text() == f"Zoom {canvas.zoom * 100:.0f}%"
    win.action_fit.trigger()
    rect = canvas.view.viewRect()
    assert rect.width() >= 320 and rect.height() >= 240
    win.action_actual.trigger()
    assert abs(canvas.zoom - 1.0) < 0.02


def test_cursor_readout_and_brush_outline_follow_the_mouse(opened, photo):
    win = opened
    image = photo[1]
    win.tool_actions[Tool.BRUSH].trigger()
    win.canvas.brush_radius = 6
    viewport = win.canvas.graphics.viewport()
    _send(viewport, QEvent.Type.MouseMove, widget_point(win.canvas, 33, 44), Qt.MouseButton.NoButton, Qt.MouseButton.NoButton)
    text = win.readout_label.text()
    assert text.startswith("row 33, col 44")
    assert ", ".join(str(v) for v in image[33, 44]) in text
    outline = win.canvas._brush_outline
    assert outline.isVisible()
    centre = outline.rect().center()
    assert abs(centre.x() - 44.5) < 0.6 and abs(centre.y() - 33.5) < 0.6 and outline.rect().width() == 12


def test_history_panel_jumps_back(opened):
    win = opened
    win.canvas.brush_radius = 2
    for row in (20, 40, 60):
        drag(win.canvas, [(row, 20), (row, 80)])
    panel = win.history_panel
    assert panel.list_widget.count() == 4  # initial state + three strokes
    item = panel.list_widget.item(1)
    QTest.mouseClick(panel.list_widget.viewport(), Qt.MouseButton.LeftButton, pos=panel.list_widget.visualItemRect(item).center())
    markers = markers_of(win)
    assert markers.data[20, 50] == 1 and markers.data[40, 50] == 0
    assert win.document.history.redo_names == ["Brush stroke", "Brush stroke"]


def test_layer_operations_from_the_layers_menu_are_undoable(opened):
    win = opened
    panel = win.layer_panel
    panel.action_new_mask.trigger()
    mask = win.document.layers.selected
    win.document.write(mask, (slice(10, 30), slice(10, 30)), np.ones((20, 20), np.uint8), "square")
    win.document.write(mask, (slice(50, 60), slice(50, 60)), np.ones((10, 10), np.uint8), "square")
    panel.action_duplicate.trigger()
    assert len(win.document.layers.of_kind(LayerKind.MASK)) == 2
    panel.action_to_labels.trigger()
    labels = win.document.layers.selected
    assert labels.kind is LayerKind.LABELS and labels.data.max() == 2
    panel.action_delete.trigger()
    assert labels not in win.document.layers
    for _ in range(3):
        win.action_undo.trigger()
    assert len(win.document.layers.of_kind(LayerKind.MASK)) == 1
    win.document.set_property(mask, "opacity", 0.25)
    assert win.document.history.undo_names[-1].startswith("Opacity")


def test_sixteen_bit_image_is_shown_through_percentile_contrast(window, tmp_path):
    data = np.full((120, 160), 1000, np.uint16)
    data[40:80, 40:120] = 4000
    data[0, 0] = 65535
    path = tmp_path / "cells.tif"
    io.write_image(path, data)
    window.open_paths([path])
    layer = window.document.base_image
    assert layer.data.dtype == np.uint16
    assert layer.contrast_limits == (1000.0, 4000.0)


def test_drop_opens_file_and_recent_files_remember_it(window, photo, qtbot):
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(photo[0]))])
    event = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    # The file is read in the background; the window answers meanwhile.
    with qtbot.waitSignal(window.files.opened, check_params_cb=bool, timeout=10_000):
        window.dropEvent(event)
    assert window.document.base_image is not None and window.source_path == photo[0]
    window.files.fill_recent_menu()
    assert [a.text() for a in window.files.recent_menu.actions()] == [photo[0].name]


def test_an_unreadable_file_from_the_open_dialog_is_reported_and_the_document_kept(window, photo, qtbot, tmp_path,
                                                                                  monkeypatch):
    from PySide6.QtWidgets import QFileDialog

    window.open_paths([photo[0]])
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    errors = []
    monkeypatch.setattr(window, "show_error", lambda title, message, details="": errors.append((title, message)))
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *args, **kwargs: (str(broken), ""))
    with qtbot.waitSignal(window.files.opened, check_params_cb=lambda shown: not shown, timeout=10_000):
        window.files.action_open.trigger()
    assert errors and errors[0][0] == "Cannot open broken.png"
    assert window.source_path == photo[0] and window.document.base_image is not None


def test_layout_and_tool_settings_persist(qtbot, photo, monkeypatch):
    from maskwork.app.main_window import MainWindow

    first = MainWindow()
    qtbot.addWidget(first)
    first.canvas.tool = Tool.ERASER
    first.canvas.brush_radius = 23
    first.canvas.active_label = 2
    first.docks["history"].hide()
    first.close()
    second = MainWindow()
    qtbot.addWidget(second)
    assert second.canvas.tool is Tool.ERASER and second.tool_actions[Tool.ERASER].isChecked()
    assert second.canvas.brush_radius == 23 and second.canvas.active_label == 2
    assert second.docks["history"].isHidden()
