"""A person's path through the real main window, plus its menus, tools and errors."""

import time

import numpy as np

from maskwork.app import main_window
from maskwork.core import io
from maskwork.core.layers import LayerKind
from maskwork.operators import get
from maskwork.widgets.canvas import Tool

from window_driver import drag, iou, menu_action


def test_cut_out_an_object_from_open_to_export(window, photo, qtbot, tmp_path):
    path, image, truth = photo
    assert window.open_paths([path])
    assert window.windowTitle().startswith("maskwork - cat_on_wall.png")
    assert window.document.base_image.shape == truth.shape

    # Drag a box around the cat with the box tool.
    window.tool_actions[Tool.BOX].trigger()
    rows, cols = np.nonzero(truth)
    top, left, bottom, right = rows.min() - 8, cols.min() - 8, rows.max() + 8, cols.max() + 8
    drag(window.canvas, [(top, left), ((top + bottom) / 2, (left + right) / 2), (bottom, right)])
    x, y, w, h = window.document.rect
    assert abs(x - left) <= 2 and abs(y - top) <= 2 and abs(x + w - right) <= 2 and abs(y + h - bottom) <= 2

    # A correcting foreground scribble in the middle of the cat.
    window.tool_actions[Tool.BRUSH].trigger()
    window.canvas.brush_radius = 4
    centre_r, centre_c = truth.shape[0] // 2, truth.shape[1] // 2
    drag(window.canvas, [(centre_r - 20, centre_c - 30), (centre_r, centre_c), (centre_r + 20, centre_c + 30)])
    markers = window.document.layers.of_kind(LayerKind.MARKERS)
    assert len(markers) == 1 and (markers[0].data == 1).sum() > 100
    assert window.document.history.undo_names[-1] == "Brush stroke"

    # Choose GrabCut from the menu; preview, then apply, waiting for the workers.
    menu_action(window, "Segmentation", "GrabCut").trigger()
    assert window.runner.spec.id == "grabcut"
    partials = []
    window.runner.preview_changed.connect(partials.append)
    with qtbot.waitSignal(window.runner.busy_changed, check_params_cb=lambda busy: not busy, timeout=30_000):
        window.action_preview.trigger()
    preview = window.runner.preview_layer
    assert preview is not None and iou(preview.data, truth) > 0.9
    steps_before = len(window.document.history.undo_names)
    with qtbot.waitSignal(window.runner.applied, timeout=30_000) as applied:
        window.action_apply.trigger()
    (mask_layer,) = applied.args[0]
    assert mask_layer.kind is LayerKind.MASK
    assert iou(mask_layer.data, truth) >= 0.9
    assert len(window.document.history.undo_names) == steps_before + 1
    assert window.runner.preview_layer is None

    # Undo removes the result, redo brings it back.
    window.action_undo.trigger()
    assert mask_layer not in window.document.layers
    window.action_redo.trigger()
    assert mask_layer in window.document.layers

    # Export the mask and the cut-out, read them back.
    mask_path = window.exports.export("mask", tmp_path / "mask.png")
    written = io.read_image(mask_path)
    assert set(np.unique(written)) <= {0, 255}
    assert iou(written > 0, truth) >= 0.9
    cutout = io.read_image(window.exports.export("cutout", tmp_path / "cutout.png"))
    assert cutout.shape == (*truth.shape, 4)
    np.testing.assert_array_equal(cutout[..., 3] > 0, mask_layer.data > 0)
    assert (tmp_path / "mask.png.json").exists()
    assert window.document.history.is_modified, "an export is no save: work is saved in a project"


def test_operator_error_shows_message_and_leaves_document(window, photo, qtbot):
    window.open_paths([photo[0]])
    names_before = [layer.name for layer in window.document.layers]
    window.choose_operator(get("grabcut"))
    # No box and no scribbles: GrabCut cannot run; the worker reports it.
    with qtbot.waitSignal(window.runner.failed, timeout=10_000):
        window.action_apply.trigger()
    box = window.last_message_box
    assert box is not None and "box or foreground" in box.text()
    assert [layer.name for layer in window.document.layers] == names_before
    box.close()


def test_cancel_stops_a_running_operator(window, photo, qtbot):
    window.open_paths([photo[0]])
    window.document.set_rect((60, 30, 200, 180))
    window.choose_operator(get("grabcut"))
    window.operator_panel.set_operator(get("grabcut"), {"iterations": 30, "coarse_megapixels": 0.0})
    window.runner.set_params(window.operator_panel.values())
    with qtbot.waitSignal(window.runner.progress, timeout=10_000):
        window.action_apply.trigger()
    assert window.cancel_button.isEnabled()
    with qtbot.waitSignal(window.runner.busy_changed, timeout=5_000):
        window.cancel_button.click()
    assert not window.runner.busy
    assert window.document.layers.of_kind(LayerKind.MASK) == []


def test_progress_shows_the_latest_report_at_most_once_per_interval(window, qtbot):
    """A run's progress reports (hundreds a second from some operators) reach the bar and
    the status line at most once per PROGRESS_INTERVAL_MS and never in the turn they
    arrive in, the latest values winning, also while reports keep coming; what is held
    back when the run ends is dropped."""
    interval = main_window.PROGRESS_INTERVAL_MS
    runner = window.runner
    runner.busy_changed.emit(True)
    shown = []
    window.progress_bar.valueChanged.connect(shown.append)
    for step in range(1, 201):  # as a worker's reports arrive, in one turn of the event loop
        runner.progress.emit(step / 200, f"step {step} of 200")
    assert shown == []
    qtbot.waitUntil(lambda: shown == [1000], timeout=2_000)
    assert window.statusBar().currentMessage() == "step 200 of 200"

    # A steady stream for four intervals: shown as it goes, not only once it stops.
    shown.clear()
    start = time.perf_counter()
    for step in range(40):
        runner.progress.emit(step / 100, f"stream {step}")
        qtbot.wait(interval // 10)
    elapsed_ms = 1000 * (time.perf_counter() - start)
    assert 2 <= len(shown) <= elapsed_ms / interval + 1
    assert shown == sorted(shown)

    runner.progress.emit(0.9, "held back")
    runner.busy_changed.emit(False)
    qtbot.wait(3 * interval)
    assert shown[-1] == 0  # the reset at the end, nothing after it
    assert window.statusBar().currentMessage() != "held back"


def test_unreadable_file_gives_message_and_keeps_current_document(window, photo, tmp_path):
    window.open_paths([photo[0]])
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image at all")
    assert not window.open_paths([bad])
    assert "broken.png" in window.last_message_box.text() + window.last_message_box.informativeText() or "broken.png" in window.last_message_box.windowTitle()
    assert window.document.base_image.name == "cat_on_wall.png"


def test_closing_with_unsaved_work_asks(window, photo, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    window.open_paths([photo[0]])
    window.canvas.stroke([(50, 50), (60, 80)])
    asked = []
    monkeypatch.setattr(window, "ask_to_save", lambda: asked.append("save?") or QMessageBox.StandardButton.Cancel)
    assert not window.files.close_document()
    assert asked == ["save?"] and window.document.layers
    monkeypatch.setattr(window, "ask_to_save", lambda: QMessageBox.StandardButton.Discard)
    assert window.files.close_document()
    assert not window.document.layers


def test_menus_are_generated_from_the_registry(window):
    from maskwork.operators import all_operators

    for spec in all_operators():
        path = spec.category.split("/") + [spec.title]
        assert menu_action(window, *path) is window.operator_actions[spec.id]


def test_opening_the_window_imports_no_heavy_library(tmp_path):
    from tests.fresh_interpreter import modules_loaded_after

    code = (
        "import os\n"
        "os.environ['QT_QPA_PLATFORM'] = 'offscreen'\n"
        f"os.environ['MASKWORK_CONFIG_DIR'] = {str(tmp_path)!r}\n"
        "from maskwork.app.application import create_application\n"
        "from maskwork.app.main_window import MainWindow\n"
        "app = create_application(); w = MainWindow(); w.show(); app.processEvents()\n"
    )
    heavy = ("torch", "SimpleITK", "napari", "dask", "onnxruntime", "segment_anything", "scipy.ndimage", "scipy.sparse",
             "scipy.fft", "pyamg")
    assert modules_loaded_after(code, heavy) == []
