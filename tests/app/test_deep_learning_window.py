"""Issue 7 through the window: device preference, memory warnings, deep-learning operators."""

import dataclasses

import numpy as np
from PySide6.QtWidgets import QDialog, QLineEdit, QPushButton

from maskwork.app.runner import SEED_DEBOUNCE_MS
from maskwork.app.settings import settings
from maskwork.core import io
from maskwork.core.layers import LayerKind
from maskwork.operators import get
from maskwork.operators.dl import device as dl_device
from maskwork.widgets.canvas import Tool
from window_driver import click, drag


def test_preferences_choose_the_device_that_auto_means(window, qtbot):
    dialog = window.preferences_dialog()
    qtbot.waitUntil(lambda: "sees" in dialog.detected_label.text(), timeout=30_000)
    assert "cpu" in dialog.detected_label.text()
    dialog.device_combo.setCurrentIndex(dialog.device_combo.findData("cpu"))
    dialog.done(QDialog.DialogCode.Accepted)
    try:
        assert dl_device.preferred_device() == "cpu"
        assert settings().value("dl/device") == "cpu"
    finally:
        dl_device.set_preferred_device("auto")


def test_torch_leaves_the_window_a_core_for_its_ui_thread(window, monkeypatch):
    """On 2 cores torch trains on one thread: two threads that wait for each other at
    every step, one of them sharing its core with the UI, made the scribble CNN's test
    below take more than 120 s instead of 9 while another process kept a core busy."""

    class ThreadCount:
        threads = 2

        def get_num_threads(self):
            return self.threads

        def set_num_threads(self, threads):
            self.threads = threads

    monkeypatch.setattr(dl_device.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    torch = ThreadCount()
    dl_device._limit_cpu_threads(torch)
    assert torch.threads == 1


def test_preferences_raise_the_pixel_limit_of_files_the_window_opens(window, qtbot, tmp_path):
    big = tmp_path / "wide.png"
    # 2.2 MP of noise: too large for a 2 MP limit, and no decompression bomb.
    io.write_image(big, np.random.default_rng(0).integers(0, 256, (1000, 2200), dtype=np.uint8))
    io.set_max_pixels(2_000_000)
    try:
        dialog = window.preferences_dialog()
        assert dialog.max_megapixels == 2
        dialog.done(QDialog.DialogCode.Accepted)
        errors = []
        window.show_error = lambda title, message, details="": errors.append(message)
        assert not window.open_paths([big])
        assert "over the limit" in errors[0] and "Preferences" in errors[0]
        dialog = window.preferences_dialog()
        dialog.max_megapixels_spin.setValue(3)
        dialog.done(QDialog.DialogCode.Accepted)
        assert settings().value("files/max_megapixels") in (3, "3")
        assert window.open_paths([big]) and window.document.base_image.shape == (1000, 2200)
    finally:
        io.set_max_pixels(None)


def test_memory_warning_asks_before_running(window, tmp_path, qtbot, monkeypatch):
    """An operator whose estimate exceeds free memory runs only after the person agrees."""
    path = tmp_path / "coins.png"
    from skimage import data

    io.write_image(path, data.coins())
    window.open_paths([path])
    greedy = dataclasses.replace(get("threshold"), memory_estimate=lambda inputs, params: 1 << 60)
    window.choose_operator(greedy)
    questions = []
    monkeypatch.setattr(window, "ask", lambda title, question: questions.append(question) or False)
    with qtbot.waitSignal(window.runner.memory_warning, timeout=30_000):
        window.action_apply.trigger()
    qtbot.waitUntil(lambda: not window.runner.busy)
    assert questions and "Run it anyway?" in questions[0] and "GB" in questions[0]
    assert not window.document.layers.of_kind(LayerKind.MASK)  # declined: nothing ran
    # Declined: new seeds do not start automatic previews that would ask again.
    window.runner.set_auto_preview(False)
    window.runner.auto_preview = True
    window.document.set_rect((10, 10, 50, 50))
    qtbot.wait(SEED_DEBOUNCE_MS * 5)  # the debounce would have started a preview by now
    assert len(questions) == 1 and not window.runner.busy

    monkeypatch.setattr(window, "ask", lambda title, question: True)
    with qtbot.waitSignal(window.runner.applied, timeout=30_000):
        window.action_apply.trigger()
    assert len(window.document.layers.of_kind(LayerKind.MASK)) == 1


def test_segment_anything_encodes_once_then_answers_each_prompt(window, tmp_path, qtbot):
    """Choose the checkpoint in the form: the image is encoded in the background; a box,
    then a click, each preview a mask from the cached encoding; Apply adds it."""
    from skimage import data

    import tiny_models

    checkpoint = tiny_models.save_tiny_sam(tmp_path / "tiny_sam.pth")
    path = tmp_path / "astronaut.png"
    io.write_image(path, data.astronaut()[::2, ::2])
    window.open_paths([path])
    window.choose_operator(get("segment_anything"))
    window.operator_panel.auto_preview = True
    window.runner.set_auto_preview(True)
    editor = window.operator_panel.findChild(QLineEdit, "param_checkpoint_text")
    with qtbot.waitSignal(window.runner.prepared, check_params_cb=lambda text: "ready" in text, timeout=60_000):
        editor.setText(str(checkpoint))

    window.tool_actions[Tool.BOX].trigger()
    drag(window.canvas, [(40, 60), (150, 160), (200, 190)])
    qtbot.waitUntil(lambda: window.runner.preview_layer is not None and not window.runner.busy, timeout=60_000)
    assert window.runner.preview_layer.shape == (256, 256)
    assert "embedding cached True" in window.operator_panel.scores_label.text().replace("\u00a0", " ")

    window.tool_actions[Tool.POINT_POSITIVE].trigger()
    with qtbot.waitSignal(window.runner.scores, timeout=60_000) as scores:
        click(window.canvas, 120, 120)
    assert scores.args[0]["embedding_cached"] is True and scores.args[0]["encoder_seconds"] == 0.0

    with qtbot.waitSignal(window.runner.applied, timeout=60_000) as applied:
        window.action_apply.trigger()
    layer = applied.args[0][0]
    assert layer.kind is LayerKind.MASK and layer.shape == (256, 256)
    assert window.document.history.undo_names[-1] == "Segment Anything (box / points)"


def test_run_a_brought_torchscript_model_and_read_its_info(window, tmp_path, qtbot):
    """Run model with a TorchScript file: Model info describes it; Apply adds labels that
    match the model's known rule (bright pixels); a wrong file gives a message."""
    from skimage import data

    import tiny_models

    model = tiny_models.save_torchscript(tiny_models.bright_pixel_net(), tmp_path / "bright.pt")
    path = tmp_path / "coins.png"
    io.write_image(path, data.coins())
    window.open_paths([path])
    window.choose_operator(get("run_model"))
    window.operator_panel.findChild(QLineEdit, "param_model_text").setText(str(model))

    window.operator_panel.findChild(QPushButton, "modelInfoButton").click()
    qtbot.waitUntil(lambda: window.last_message_box is not None and "TorchScript" in window.last_message_box.text(), timeout=30_000)
    window.last_message_box.close()

    with qtbot.waitSignal(window.runner.applied, timeout=60_000) as applied:
        window.action_apply.trigger()
    labels = applied.args[0][0]
    assert labels.kind is LayerKind.LABELS
    # Plane k of a model's probabilities scores label k: "dark" is 0, "bright" is 1.
    assert [layer.name for layer in applied.args[0][1:]] == ["Run segmentation model P(class 0)", "Run segmentation model P(class 1)"]
    bright = data.coins() / 255.0 > tiny_models.BRIGHT_LEVEL
    assert np.mean((labels.data == 1) == bright) > 0.99

    window.operator_panel.findChild(QLineEdit, "param_model_text").setText(str(path))  # a PNG is no model
    with qtbot.waitSignal(window.runner.failed, timeout=30_000) as failed:
        window.action_apply.trigger()
    assert failed.args[0].is_input_error and "model" in failed.args[0].message.lower()


def test_scribble_cnn_previews_while_training_and_resumes_on_a_new_scribble(window, photo, qtbot):
    """Draw foreground and background: the CNN's labels preview arrives while it trains; a
    correcting scribble continues from the trained weights; Apply adds labels and P(class)."""
    from window_driver import iou, scribble_cat

    path, image, truth = photo
    window.open_paths([path])
    window.choose_operator(get("scribble_cnn"))
    window.operator_panel.auto_preview = True
    window.runner.set_auto_preview(True)
    events = []
    window.runner.preview_changed.connect(lambda layer: events.append("preview"))
    window.runner.scores.connect(lambda scores: events.append("scores"))
    # The foreground stroke alone is one class (no run); the background stroke starts it.
    with qtbot.waitSignal(window.runner.scores, timeout=120_000) as first:
        scribble_cat(window, truth)
    # The final result emits its scores before it is drawn: a preview drawn earlier was partial.
    assert "preview" in events and events.index("preview") < events.index("scores")
    assert first.args[0]["resumed"] == 0.0
    assert window.operator_views.metric_values, "the training loss is plotted as previews arrive"
    preview = window.runner.preview_layer
    assert preview.kind is LayerKind.LABELS and preview.shape == truth.shape
    assert iou(preview.data == 1, truth) > 0.7

    with qtbot.waitSignal(window.runner.scores, timeout=120_000) as second:
        drag(window.canvas, [(120, 6), (200, 40)])
    assert second.args[0]["resumed"] == 1.0  # the new scribble continued from the trained weights

    with qtbot.waitSignal(window.runner.applied, timeout=120_000) as applied:
        window.action_apply.trigger()
    kinds = [layer.kind for layer in applied.args[0]]
    assert kinds == [LayerKind.LABELS, LayerKind.IMAGE, LayerKind.IMAGE]
    assert iou(applied.args[0][0].data == 1, truth) > 0.7
