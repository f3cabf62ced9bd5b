"""Crash recovery from the autosave file, and auto-preview that follows the seeds."""

import os
import subprocess
import sys
import textwrap

import numpy as np

from maskwork.core.layers import LayerKind
from maskwork.operators import get
from maskwork.widgets.canvas import Tool
from window_driver import drag, iou


def test_killed_process_is_restored_from_the_autosave(window, photo, isolated_config):
    # A real maskwork process paints, autosaves, and dies without any clean-up.
    script = textwrap.dedent(
        f"""
        import os, signal
        from maskwork.app.application import create_application
        from maskwork.app.main_window import MainWindow
        app = create_application()
        window = MainWindow()
        window.show()
        window.open_paths([{str(photo[0])!r}])
        window.canvas.brush_radius = 5
        window.canvas.stroke([(40, 40), (40, 200)])
        window.document.set_rect((30, 20, 250, 200))
        assert window.autosave_now()
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    env = dict(os.environ, MASKWORK_CONFIG_DIR=str(isolated_config), QT_QPA_PLATFORM="offscreen")
    crashed = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=120)
    assert crashed.returncode == -9, crashed.stderr.decode()
    assert window.recovery_file.exists()

    assert window.offer_recovery()
    layers = list(window.document.layers)
    assert [layer.kind for layer in layers] == [LayerKind.IMAGE, LayerKind.MARKERS]
    np.testing.assert_array_equal(layers[0].data, photo[1])
    assert layers[1].data[40, 40:201].all() and layers[1].data.sum() > 1000
    assert window.document.rect == (30, 20, 250, 200)
    assert window.source_path == photo[0]
    assert window.document.history.is_modified, "restored work still counts as unsaved"


def test_declining_recovery_deletes_the_file(window, photo, monkeypatch):
    window.open_paths([photo[0]])
    window.canvas.stroke([(10, 10), (10, 50)])
    assert window.autosave_now()
    assert not window.autosave_now(), "nothing changed since the last autosave"
    monkeypatch.setattr(window, "ask", lambda title, question: False)
    assert not window.offer_recovery()
    assert not window.recovery_file.exists()


def test_auto_preview_follows_new_scribbles(window, photo, qtbot):
    path, image, truth = photo
    window.open_paths([path])
    window.choose_operator(get("grabcut"))
    window.operator_panel.auto_preview = True
    # Turning auto-preview on previews at once; without seeds that only says what is missing.
    with qtbot.waitSignal(window.runner.message, check_params_cb=lambda text: "needs a box" in text, timeout=10_000):
        window.runner.set_auto_preview(True)
    assert window.last_message_box is None, "missing seeds while drawing are no error dialog"
    window.tool_actions[Tool.BRUSH].trigger()
    window.canvas.brush_radius = 5
    rows, cols = np.nonzero(truth)
    centre = (int(rows.mean()), int(cols.mean()))
    with qtbot.waitSignal(window.runner.busy_changed, check_params_cb=lambda busy: not busy, timeout=20_000):
        drag(window.canvas, [(centre[0] - 30, centre[1] - 40), centre, (centre[0] + 30, centre[1] + 40)])
    first = window.runner.preview_layer.data.copy()
    # A background scribble along the border: the preview updates by itself.
    window.action_swap.trigger()
    with qtbot.waitSignal(window.runner.busy_changed, check_params_cb=lambda busy: not busy, timeout=20_000):
        drag(window.canvas, [(5, 5), (5, 300), (230, 300), (230, 5), (6, 5)])
    second = window.runner.preview_layer.data
    assert not np.array_equal(first, second)
    assert iou(second, truth) > iou(first, truth) and iou(second, truth) > 0.85
    # The preview never enters history or the layer stack.
    assert all(layer.kind is not LayerKind.PREVIEW for layer in window.document.layers)
    assert window.document.history.undo_names == ["Brush stroke", "Brush stroke"]


def test_a_new_preview_request_cancels_the_stale_run(window, photo, qtbot):
    window.open_paths([photo[0]])
    window.document.set_rect((40, 20, 240, 200))
    window.choose_operator(get("grabcut"))
    window.runner.set_params({"iterations": 30, "coarse_megapixels": 0.0})
    window.runner.preview()
    stale_cancel = window.runner.session.cancel_event
    window.runner.set_params({"iterations": 2, "coarse_megapixels": 0.0})
    with qtbot.waitSignal(window.runner.busy_changed, check_params_cb=lambda busy: not busy, timeout=20_000):
        window.runner.preview()
    assert stale_cancel.is_set()
    assert window.runner.preview_layer is not None
    assert "2 iterations" in window.statusBar().currentMessage()
