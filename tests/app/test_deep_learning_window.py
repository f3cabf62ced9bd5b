"""Issue 7 through the window: device preference, memory warnings, deep-learning operators."""

import dataclasses

import numpy as np
from PySide6.QtWidgets import QDialog

from maskwork.app.settings import settings
from maskwork.core import io
from maskwork.core.layers import LayerKind
from maskwork.operators import get
from maskwork.operators.dl import device as dl_device
from maskwork.widgets.canvas import Tool
from window_driver import drag


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

    monkeypatch.setattr(window, "ask", lambda title, question: True)
    with qtbot.waitSignal(window.runner.applied, timeout=30_000):
        window.action_apply.trigger()
    assert len(window.document.layers.of_kind(LayerKind.MASK)) == 1
