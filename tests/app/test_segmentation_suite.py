"""Issue 4 through the window: the same seeds drive every segmentation operator."""

import numpy as np
from skimage import data

from maskwork.core import io
from maskwork.core.layers import LayerKind
from maskwork.operators import get
from maskwork.widgets.canvas import Tool
from window_driver import drag, iou, scribble_cat


def wait_idle(qtbot, window, action):
    with qtbot.waitSignal(window.runner.busy_changed, check_params_cb=lambda busy: not busy, timeout=30_000):
        action()


def test_random_walker_auto_preview_follows_scribbles_then_applies(window, photo, qtbot):
    path, image, truth = photo
    window.open_paths([path])
    window.choose_operator(get("random_walker"))
    window.operator_panel.auto_preview = True
    window.runner.set_auto_preview(True)
    rows, cols = np.nonzero(truth)
    r, c = int(rows.mean()), int(cols.mean())
    window.tool_actions[Tool.BRUSH].trigger()
    window.canvas.brush_radius = 4
    drag(window.canvas, [(r - 25, c - 40), (r, c), (r + 25, c + 40)])
    window.action_swap.trigger()
    # The background scribble completes the seeds: the preview follows by itself.
    drag(window.canvas, [(6, 6), (6, 310), (232, 310)])
    qtbot.waitUntil(lambda: window.runner.preview_layer is not None and not window.runner.busy, timeout=30_000)
    preview = window.runner.preview_layer
    assert preview.kind is LayerKind.LABELS
    first = preview.data.copy()
    assert set(np.unique(first)) <= {1, 2}
    # A correcting background scribble along the bottom-left: the preview updates.
    drag(window.canvas, [(232, 6), (120, 6), (232, 150)])
    qtbot.waitUntil(
        lambda: not window.runner.busy and not np.array_equal(window.runner.preview_layer.data, first), timeout=30_000
    )
    second = window.runner.preview_layer.data
    markers = window.document.layers.of_kind(LayerKind.MARKERS)[-1].data
    np.testing.assert_array_equal(second[markers == 2], 2)  # seeds keep their class
    np.testing.assert_array_equal(second[markers == 1], 1)
    assert iou(second == 1, truth) > 0.6  # texture on texture: quality is measured in tests/operators
    with qtbot.waitSignal(window.runner.applied, timeout=30_000) as applied:
        window.action_apply.trigger()
    kinds = [layer.kind for layer in applied.args[0]]
    assert kinds[0] is LayerKind.LABELS and kinds.count(LayerKind.IMAGE) == 2  # P(class 1), P(class 2)
    np.testing.assert_array_equal(applied.args[0][0].data, second)
    assert window.document.history.undo_names[-1] == "Random walker"

    # Clean-up keeps the classes (Fill holes would make one mask of the whole image).
    labels = applied.args[0][0]
    window.document.layers.selected = labels
    window.choose_operator(get("clean_labels"))
    with qtbot.waitSignal(window.runner.applied, timeout=30_000) as cleaned:
        window.action_apply.trigger()
    clean = cleaned.args[0][0]
    assert clean.kind is LayerKind.LABELS and set(np.unique(clean.data)) == {1, 2}
    assert np.mean(clean.data == labels.data) > 0.97


def test_results_go_under_the_scribbles_a_person_goes_on_refining_with(window, photo, qtbot):
    path, image, truth = photo
    window.open_paths([path])
    scribble_cat(window, truth)
    scribbles = window.document.layers.of_kind(LayerKind.MARKERS)[-1]
    window.choose_operator(get("watershed"))
    with qtbot.waitSignal(window.runner.applied, timeout=30_000) as applied:
        window.action_apply.trigger()
    labels = applied.args[0][0]
    assert [layer.kind for layer in window.document.layers] == [LayerKind.IMAGE, LayerKind.LABELS, LayerKind.MARKERS]
    assert window.document.layers[-1] is scribbles and window.document.layers.selected is labels
    window.action_undo.trigger()
    assert list(window.document.layers) == [window.document.layers[0], scribbles]


def test_compare_two_operators_on_the_same_seeds(window, photo, qtbot):
    path, image, truth = photo
    window.open_paths([path])
    scribble_cat(window, truth)
    results = []
    for op_id in ("grabcut", "watershed"):
        window.choose_operator(get(op_id))
        with qtbot.waitSignal(window.runner.applied, timeout=30_000) as applied:
            window.action_apply.trigger()
        results.append(applied.args[0][0])
    grabcut_mask, watershed_labels = results
    panel = window.measure_panel
    panel.combo_a.setCurrentIndex(panel.combo_a.findText(grabcut_mask.name))
    # Watershed labels the background 2: its class 1 is the foreground to compare (listed
    # once the panel has counted the layer's classes in the background).
    qtbot.waitUntil(lambda: panel.combo_b.findText(f"{watershed_labels.name} = 1") >= 0, timeout=10_000)
    panel.combo_b.setCurrentIndex(panel.combo_b.findText(f"{watershed_labels.name} = 1"))
    with qtbot.waitSignal(panel.refreshed, timeout=10_000):
        panel.refresh()
    expected = iou(grabcut_mask.data, watershed_labels.data == 1)
    assert panel.overlap_label.text().startswith(f"IoU {expected:.4f}")
    difference = panel.add_difference_layer()
    assert difference.kind is LayerKind.LABELS and difference in window.document.layers
    assert set(np.unique(difference.data)) <= {0, 1, 2, 3}
    assert iou(grabcut_mask.data, truth) > 0.9


def test_threshold_preview_draws_its_threshold_on_the_histogram(window, tmp_path, qtbot):
    path = tmp_path / "coins.png"
    io.write_image(path, data.coins())
    window.open_paths([path])
    window.choose_operator(get("threshold"))
    wait_idle(qtbot, window, window.runner.preview)
    lines = window.measure_panel.threshold_values
    assert len(lines) == 1 and 80 < lines[0] < 130  # Otsu on coins is about 107
    assert window.runner.preview_layer is not None
    assert window.operator_panel.scores_label.text().startswith("threshold\u00a0")
    # The same histogram and line sit in the operator panel, under the parameters.
    assert window.operator_views.histogram.isVisibleTo(window.operator_panel)
    assert window.operator_views.histogram.threshold_values == lines
    window.choose_operator(get("multi_otsu"))
    wait_idle(qtbot, window, window.runner.preview)
    assert len(window.operator_views.histogram.threshold_values) == 2  # three classes
    window.choose_operator(get("grabcut"))
    assert not window.operator_views.histogram.isVisibleTo(window.operator_panel)


def test_both_histograms_show_the_image_the_threshold_runs_on(window, tmp_path, qtbot):
    """With a second image selected, the threshold was computed on it but drawn on the
    first image's histogram."""
    io.write_image(tmp_path / "coins.png", data.coins())
    signed = (data.camera().astype(np.float32) / 255.0 * 3.7 - 1.2)  # values -1.2 .. 2.5
    io.write_image(tmp_path / "signed.tif", signed)
    assert window.open_paths([tmp_path / "coins.png", tmp_path / "signed.tif"])
    window.choose_operator(get("threshold"))
    panel = window.measure_panel
    window.docks["measure"].show()
    with qtbot.waitSignal(panel.refreshed, timeout=10_000):
        panel.refresh()
    coins, signed_layer = window.document.layers.of_kind(LayerKind.IMAGE)
    # A click in the Layers panel redraws the histogram, and measures nothing else again.
    with qtbot.assertNotEmitted(panel.refreshed, wait=300):
        window.document.layers.selected = signed_layer
    wait_idle(qtbot, window, window.runner.preview)
    for histogram in (window.operator_views.histogram, panel.histogram_plot):
        edges, _ = histogram.curve_data()
        assert edges.min() < -1.1 and edges.max() > 2.4, "the float image's histogram, not the coins'"
        assert -1.2 < histogram.threshold_values[0] < 2.5
    # With a mask selected, the bottom image feeds the threshold: moving the float image
    # to the bottom makes it that image, and the form's histogram follows.
    window.document.layers.selected = coins
    mask = window.document.new_layer(LayerKind.MASK)
    window.document.layers.selected = mask
    assert window.operator_views.histogram.curve_data()[0].min() >= 0.0  # the coins'
    window.document.move_layer(1, 0)
    assert window.runner.input_layer("image") is signed_layer
    assert window.operator_views.histogram.curve_data()[0].min() < -1.1
