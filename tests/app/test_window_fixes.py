"""The rough edges a new user hit in the window (issue 14), each reproduced as it was met."""

import numpy as np
import pytest
from PySide6.QtCore import Qt, QTimer
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from maskwork.core import io
from maskwork.core.layers import Layer, LayerKind
from maskwork.operators import get
from maskwork.widgets.canvas import Tool
from maskwork.widgets.layer_view import label_table

from window_driver import drag, menu_action, scribble_cat


def _markers(window):
    return window.document.layers.of_kind(LayerKind.MARKERS)


def test_space_pans_the_canvas_while_the_layer_list_has_the_focus(window, photo, qtbot):
    path, image, truth = photo
    assert window.open_paths([path])
    scribble_cat(window, truth)
    (markers,) = _markers(window)
    before = markers.data.copy()
    steps = list(window.document.history.undo_names)
    # The person clicked the layer's row (its visibility box): the list has the focus.
    panel = window.layer_panel.list_widget
    panel.setFocus()
    panel.setCurrentRow(0)
    qtbot.waitUntil(panel.hasFocus)
    view_before = window.canvas.view.viewRect()

    QTest.keyPress(panel, Qt.Key.Key_Space)
    drag(window.canvas, [(120, 160), (100, 120), (80, 90)])
    QTest.keyRelease(panel, Qt.Key.Key_Space)

    assert markers.visible, "Space did not toggle the layer"
    assert window.document.history.undo_names == steps, "no undo step was recorded"
    np.testing.assert_array_equal(markers.data, before)
    assert window.canvas.view.viewRect() != view_before, "the drag panned"
    assert window.canvas.tool_takes_left_drag


def test_space_still_types_a_space_in_a_text_field(window, photo, qtbot):
    path, image, truth = photo
    assert window.open_paths([path])
    dialog = window.exports.open_export_dialog()
    dialog.path_edit.setText("a")
    dialog.path_edit.setFocus()
    qtbot.waitUntil(dialog.path_edit.hasFocus)
    QTest.keyClick(dialog.path_edit, Qt.Key.Key_End)
    QTest.keyClick(dialog.path_edit, Qt.Key.Key_Space)
    assert dialog.path_edit.text().endswith(" ")
    dialog.reject()


def _draw(window, layer, strokes):
    """Paint ``strokes`` (label, points) into ``layer`` with the brush."""
    window.document.layers.selected = layer
    window.tool_actions[Tool.BRUSH].trigger()
    window.canvas.brush_radius = 4
    for label, points in strokes:
        window.canvas.active_label = label
        drag(window.canvas, points)


def test_hiding_a_scribble_layer_re_runs_the_shown_preview_so_apply_matches_it(window, photo, qtbot):
    path, image, truth = photo
    assert window.open_paths([path])
    window.choose_operator(get("random_walker"))
    assert not window.runner.auto_preview
    scribble_cat(window, truth)
    # A second scribble layer on top, its classes the other way round.
    window.layer_panel.action_new_markers.trigger()
    swapped = window.document.layers.selected
    _draw(window, swapped, [(2, [(95, 120), (120, 160), (145, 200)]), (1, [(6, 6), (6, 310), (232, 310)])])
    with qtbot.waitSignal(window.runner.busy_changed, check_params_cb=lambda busy: not busy, timeout=30_000):
        window.action_preview.trigger()
    assert window.runner.preview_layer.data[120, 160] == 2, "the preview used the top scribbles"

    with qtbot.waitSignal(window.runner.busy_changed, check_params_cb=lambda busy: not busy, timeout=30_000):
        window.document.set_property(swapped, "visible", False)
    shown = window.runner.preview_layer.data.copy()
    assert shown[120, 160] == 1, "the preview now uses the visible scribbles"
    with qtbot.waitSignal(window.runner.applied, timeout=30_000) as applied:
        window.action_apply.trigger()
    np.testing.assert_array_equal(applied.args[0][0].data, shown)


def test_painting_into_a_hidden_layer_shows_it_and_says_so(window, photo, qtbot):
    path, image, truth = photo
    assert window.open_paths([path])
    scribble_cat(window, truth)
    (markers,) = _markers(window)
    window.document.set_property(markers, "visible", False)
    messages = []
    window.canvas.message.connect(messages.append)
    drag(window.canvas, [(100, 100), (110, 140)])
    assert markers.visible
    assert any("hidden" in text and markers.name in text for text in messages)
    assert window.document.history.undo_names[-1] == "Brush stroke"
    window.action_undo.trigger()
    assert not markers.visible, "undo takes back the stroke and the showing together"


def test_probabilities_are_added_hidden_and_two_class_labels_show_only_the_object(window, photo, qtbot):
    path, image, truth = photo
    assert window.open_paths([path])
    window.choose_operator(get("random_walker"))
    scribble_cat(window, truth)
    with qtbot.waitSignal(window.runner.applied, timeout=30_000) as applied:
        window.action_apply.trigger()
    labels, *probabilities = applied.args[0]
    assert labels.kind is LayerKind.LABELS and len(probabilities) == 2
    assert all(not layer.visible for layer in probabilities)
    assert labels.visible
    # The background class draws transparent: the photo shows, the object is tinted.
    colors = label_table(labels)
    assert colors[2][3] == 0 and colors[1][3] == 255


def test_apply_keeps_the_result_of_the_cnn_that_made_the_preview(window, photo, qtbot):
    path, image, truth = photo
    assert window.open_paths([path])
    spec = get("scribble_cnn")
    window.choose_operator(spec)
    window.operator_panel.set_operator(spec, {"steps": 5, "features": False, "working_megapixels": 0.05, "device": "cpu"})
    window.runner.set_params(window.operator_panel.values())
    scribble_cat(window, truth)
    with qtbot.waitSignal(window.runner.busy_changed, check_params_cb=lambda busy: not busy, timeout=60_000):
        window.action_preview.trigger()
    shown = window.runner.preview_layer.data.copy()
    scores = []
    window.runner.scores.connect(scores.append)
    with qtbot.waitSignal(window.runner.applied, timeout=60_000) as applied:
        window.action_apply.trigger()
    np.testing.assert_array_equal(applied.args[0][0].data, shown)
    assert scores and scores[-1]["resumed"] == 0.0, "no training continued for Apply"


def test_operator_forms_scroll_instead_of_growing_the_window(window, qtbot):
    window.choose_operator(get("register_intensity"))
    QApplication.processEvents()
    assert window.operator_panel.minimumSizeHint().height() < 360
    assert window.minimumSizeHint().height() < 700


def _two_images(tmp_path, count=2):
    paths = []
    for index in range(count):
        path = tmp_path / f"image{index}.png"
        io.write_image(path, np.roll(np.arange(64 * 64, dtype=np.uint8).reshape(64, 64), 3 * index, axis=1))
        paths.append(path)
    return paths


def test_registration_form_picks_the_fixed_and_moving_layers(window, tmp_path, qtbot):
    paths = _two_images(tmp_path, 3)
    assert window.open_paths(paths)
    first, second, third = window.document.layers.of_kind(LayerKind.IMAGE)
    window.choose_operator(get("register_features"))
    sources = window.operator_panel.source_combos
    assert set(sources) == {"image", "image2"}
    assert sources["image"].currentData() is first and sources["image2"].currentData() is third
    sources["image2"].setCurrentIndex(sources["image2"].findData(second))
    chosen = {}
    window.runner.gather_inputs(window.runner.spec, chosen)
    assert chosen["image"] is first and chosen["image2"] is second
    # Choosing the moving image as the fixed one too moves the other choice away from it.
    sources["image"].setCurrentIndex(sources["image"].findData(second))
    assert sources["image2"].currentData() is not second
    assert window.operator_panel.source_combos["image"].currentData() is second


def test_alignment_dock_starts_with_two_different_layers(window, tmp_path):
    first, second = _two_images(tmp_path)
    assert window.open_paths([first])
    window.files.add_image_layers(second)
    panel = window.alignment_panel
    assert panel.fixed_combo.currentData() is not panel.moving_combo.currentData()


def test_status_readout_and_operator_text_forget_the_previous_image(window, photo, tmp_path, qtbot):
    path, image, truth = photo
    assert window.open_paths([path])
    window.readout_label.setText("row 3, col 4   cat_on_wall.png: 1, 2, 3")
    window.choose_operator(get("threshold"))
    with qtbot.waitSignal(window.runner.busy_changed, check_params_cb=lambda busy: not busy, timeout=30_000):
        window.action_preview.trigger()
    assert window.operator_panel.scores_label.text()
    other, _ = _two_images(tmp_path)
    assert window.open_paths([other])
    assert window.readout_label.text() == ""
    assert window.operator_panel.scores_label.text() == ""


def test_an_empty_document_shows_no_absurd_zoom(window, photo):
    QApplication.processEvents()
    assert window.zoom_label.text() == ""
    path, image, truth = photo
    assert window.open_paths([path])
    assert window.zoom_label.text().endswith("%")
    window.files.close_document()
    assert window.zoom_label.text() == ""


def test_the_layer_panel_does_not_widen_with_long_names(window, photo):
    path, image, truth = photo
    assert window.open_paths([path])
    QApplication.processEvents()
    width = window.docks["layers"].width()
    hint = window.layer_panel.minimumSizeHint().width()
    window.document.add_layer(Layer(truth.astype(np.uint8), LayerKind.MASK, "a very long layer name " * 12))
    QApplication.processEvents()
    assert window.layer_panel.minimumSizeHint().width() <= hint
    assert window.docks["layers"].width() == width
    # The name is shortened in its row, beside its kind, instead of scrolling sideways.
    rows = window.layer_panel.list_widget
    assert rows.horizontalScrollBar().maximum() == 0
    assert rows.visualItemRect(rows.item(0)).width() <= rows.viewport().width()


def test_compare_masks_never_starts_with_a_layer_against_itself(window, photo):
    path, image, truth = photo
    assert window.open_paths([path])
    panel = window.measure_panel
    labels = np.where(truth, 1, 2).astype(np.uint16)
    window.document.add_layer(Layer(labels, LayerKind.LABELS, "labels"))
    a, b = panel.combo_a.currentData(), panel.combo_b.currentData()
    assert a is not None and (b is None or b.layer is not a.layer)
    window.document.add_layer(Layer(truth.astype(np.uint8), LayerKind.MASK, "mask"))
    a, b = panel.combo_a.currentData(), panel.combo_b.currentData()
    assert a is not None and b is not None and b.layer is not a.layer
    # One image: nothing to compare it with.
    assert panel.image_a.currentData() is not None and panel.image_b.currentData() is None


def test_objects_plot_has_whole_object_ticks_and_a_range_that_fits(window, photo, qtbot):
    path, image, truth = photo
    assert window.open_paths([path])
    blobs = np.zeros(truth.shape, np.uint8)
    blobs[10:20, 10:20] = 1
    blobs[40:200, 40:160] = 1  # 19200 pixels: pyqtgraph would show them as 19.2 (x1e+03)
    blobs[100:105, 200:260] = 1
    window.docks["measure"].raise_()
    panel = window.measure_panel
    window.document.add_layer(Layer(blobs, LayerKind.MASK, "blobs"))
    qtbot.waitUntil(lambda: panel.objects_label.text().startswith("3 objects"), timeout=10_000)
    axis = panel.areas_plot.getAxis("bottom")
    (low, high), _ = panel.areas_plot.getViewBox().viewRange()
    assert (low, high) == (0.5, 3.5), "objects count from 1, and the three bars fill the plot"
    ticks = [value for _, values in axis.tickValues(low, high, 300) for value in values]
    assert ticks == [1.0, 2.0, 3.0]
    panel.areas_plot.grab()  # ticks, and their prefix, are made when drawn
    assert panel.areas_plot.getAxis("left").labelString().count("x1e") == 0, "the title is not lengthened"


def test_the_metric_plot_is_cleared_when_another_operator_is_chosen(window, tmp_path, qtbot):
    first, second = _two_images(tmp_path)
    assert window.open_paths([first, second])
    window.choose_operator(get("scribble_cnn"))
    views = window.operator_views
    for step, loss in enumerate((0.5, 0.3, 0.02)):
        window.runner.partial_scores.emit({views._score_plot.score: loss})
    qtbot.waitUntil(lambda: views.metric_plot.getViewBox().viewRange()[0][1] >= 2)

    window.choose_operator(get("register_intensity"))
    QApplication.processEvents()
    assert views.metric_values == [] and views.metric_curve.getData()[0] is None
    (x_low, x_high), (y_low, y_high) = views.metric_plot.getViewBox().viewRange()
    assert (x_low, x_high, y_low, y_high) == (0, 1, 0, 1), "the last run's axes are gone too"
    assert views.metric_plot.getAxis("left").labelString().count("x0.") == 0, "the title is not lengthened"


def test_a_new_run_empties_the_metric_plot_and_its_first_points_set_the_axes(window, tmp_path, qtbot):
    first, second = _two_images(tmp_path)
    assert window.open_paths([first, second])
    window.choose_operator(get("register_intensity"))
    views = window.operator_views
    view_box = views.metric_plot.getViewBox()
    for iteration, metric in ((10, -1.0), (60, -2.0), (130, -2.3)):
        window.runner.partial_scores.emit({"metric": metric, "iteration": float(iteration)})
    qtbot.waitUntil(lambda: view_box.viewRange()[0][1] >= 130)
    last_run = view_box.viewRange()

    window.runner.busy_changed.emit(True)  # the next run starts
    try:
        views.metric_plot.grab()  # painted: the auto-range has had its say on the empty curve
        assert views.metric_values == [] and views.metric_curve.getData()[0] is None
        assert view_box.viewRange() == last_run, "the empty plot is not re-ranged (its axes would be redrawn twice)"

        for iteration, metric in ((3, 0.5), (9, 0.25)):
            window.runner.partial_scores.emit({"metric": metric, "iteration": float(iteration)})
        qtbot.waitUntil(lambda: view_box.viewRange()[0][1] < 100)
        (x_low, x_high), (y_low, y_high) = view_box.viewRange()
        assert x_low <= 3 and 9 <= x_high < 100 and y_low <= 0.25 and 0.5 <= y_high < 1.0
    finally:
        window.runner.busy_changed.emit(False)


def test_the_metric_curve_is_drawn_while_scores_keep_arriving_faster_than_its_redraw(window, qtbot):
    window.choose_operator(get("register_intensity"))
    views = window.operator_views
    drawn = []
    feed = QTimer(interval=20)  # an optimiser reporting 50 scores a second
    feed.timeout.connect(lambda: window.runner.partial_scores.emit({views._score_plot.score: 1.0 / (2 + len(drawn))}))
    views.metric_curve.sigPlotChanged.connect(lambda item: drawn.append(len(item.getData()[0] if item.getData()[0] is not None else ())))
    feed.start()
    try:
        qtbot.waitUntil(lambda: len(drawn) >= 2, timeout=2000)
    finally:
        feed.stop()
    assert 0 < drawn[0] < len(views.metric_values), "drawn during the run, not only after the last score"


def test_a_parameter_change_re_runs_the_shown_preview(window, photo, qtbot):
    path, image, truth = photo
    assert window.open_paths([path])
    window.choose_operator(get("threshold"))
    assert not window.runner.auto_preview
    with qtbot.waitSignal(window.runner.busy_changed, check_params_cb=lambda busy: not busy, timeout=30_000):
        window.action_preview.trigger()
    before = window.runner.preview_layer.data.copy()
    with qtbot.waitSignal(window.runner.busy_changed, check_params_cb=lambda busy: not busy, timeout=30_000):
        window.runner.set_params({**window.runner.params, "invert": True})
    np.testing.assert_array_equal(window.runner.preview_layer.data, 1 - before)


def test_opening_another_image_lets_the_previous_one_go(window, photo, tmp_path, qtbot):
    """After an Apply, the runner kept the Apply's inputs and source layers, so the previous
    photo stayed in memory for as long as the next document was open. Freed by reference
    counting alone (the suite collects no cycles during a test)."""
    import weakref

    path, image, truth = photo
    assert window.open_paths([path])
    window.choose_operator(get("threshold"))
    with qtbot.waitSignal(window.runner.applied, timeout=30_000):
        window.action_apply.trigger()
    previous = [weakref.ref(layer) for layer in window.document.layers]
    other, _ = _two_images(tmp_path)
    assert window.open_paths([other])
    QApplication.processEvents()
    assert [ref() for ref in previous] == [None] * len(previous)
