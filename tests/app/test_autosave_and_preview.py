"""Crash recovery from the autosave file (a project file), its interval, and auto-preview
that follows the seeds."""

import os
import subprocess
import sys
import textwrap

import numpy as np

from maskwork.core.layers import LayerKind
from maskwork.core.project import read_project, stale_temporary_files
from maskwork.operators import get
from maskwork.widgets.canvas import Tool
from window_driver import click, drag, iou


def crash_leaves_the_recovery_file(window):
    """What a crash leaves: the window empty (here), the recovery file as the last autosave
    wrote it (closing the document as a person does would delete it: they discarded it)."""
    from maskwork.app.project_actions import wait_while

    wait_while(lambda: window.autosave._writer is not None)  # the write's end, not only its file
    kept = window.recovery_file.read_bytes()
    window.files.close_document()
    window.recovery_file.write_bytes(kept)


def test_killed_process_is_restored_from_the_autosave(window, photo, isolated_config):
    # A real maskwork process paints, autosaves, and dies without any clean-up.
    script = textwrap.dedent(
        f"""
        import os, signal
        from PySide6.QtCore import QEventLoop
        from maskwork.app.application import create_application
        from maskwork.app.main_window import MainWindow
        app = create_application()
        window = MainWindow()
        window.show()
        window.open_paths([{str(photo[0])!r}])
        window.canvas.brush_radius = 5
        window.canvas.stroke([(40, 40), (40, 200)])
        window.document.set_rect((30, 20, 250, 200))
        window.canvas.stroke([(100, 40), (100, 200)])
        window.undo()  # the second stroke waits to be redone
        written = QEventLoop()
        window.autosave.written.connect(written.quit)
        assert window.autosave_now()
        written.exec()
        # A crash in the middle of the next write leaves its temporary file behind.
        name = window.recovery_file.name
        window.recovery_file.with_name(f".{{name}}.0123456789ab.tmp").write_bytes(b"PK half written")
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    env = dict(os.environ, MASKWORK_CONFIG_DIR=str(isolated_config), QT_QPA_PLATFORM="offscreen")
    crashed = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=120)
    assert crashed.returncode == -9, crashed.stderr.decode()
    left = next(path for path in isolated_config.glob("recovery-*.maskwork") if path != window.recovery_file)
    assert stale_temporary_files(left), "the dead process's recovery file, its own"
    assert read_project(left).manifest["source"] == str(photo[0]), "autosave writes a project"

    assert window.offer_recovery()
    layers = list(window.document.layers)
    assert [layer.kind for layer in layers] == [LayerKind.IMAGE, LayerKind.MARKERS]
    np.testing.assert_array_equal(layers[0].data, photo[1])
    assert layers[1].data[40, 40:201].all() and layers[1].data.sum() > 1000
    assert window.document.rect == (30, 20, 250, 200)
    assert window.source_path == photo[0]
    assert window.document.history.is_modified, "restored work still counts as unsaved"
    assert not stale_temporary_files(left) and not left.exists(), "this process's own file takes over"
    # The undo history came back too: redo the undone stroke, then undo everything.
    history = window.document.history
    assert history.undo_names == ["Brush stroke", "Box"] and history.redo_names == ["Brush stroke"]
    window.redo()
    assert layers[1].data[100, 40:201].all()
    window.undo(), window.undo()
    assert window.document.rect is None and layers[1].data[40, 40:201].all() and not layers[1].data[100].any()
    window.undo()  # the first stroke made the scribble layer
    assert list(window.document.layers) == layers[:1] and not layers[1].data.any()


def test_a_running_maskwork_keeps_its_recovery_file_and_an_ended_ones_is_offered(window, photo, isolated_config,
                                                                                  qtbot):
    from maskwork.app.autosave import recovery_path
    from maskwork.core.io.files import lock_exclusively

    window.open_paths([photo[0]])
    window.canvas.stroke([(10, 10), (10, 50)])
    with qtbot.waitSignal(window.autosave.written, timeout=10_000):
        assert window.autosave_now()
    other = recovery_path(isolated_config, process=999_999)
    other.write_bytes(window.recovery_file.read_bytes())
    with open(other.with_suffix(".lock"), "a+b") as running:  # another maskwork, still open
        assert lock_exclusively(running)
        window.recovery_file.unlink()
        assert not window.offer_recovery(), "a running process's work is not offered"
        window.autosave.stop()  # this window quits cleanly
        assert other.exists(), "and a clean exit leaves it alone"
    assert window.offer_recovery(), "once that process has ended, its work is offered"
    assert not other.exists() and not other.with_suffix(".lock").exists()


def test_declining_recovery_deletes_the_file(window, photo, monkeypatch, qtbot):
    window.open_paths([photo[0]])
    window.canvas.stroke([(10, 10), (10, 50)])
    with qtbot.waitSignal(window.autosave.written, timeout=10_000):
        assert window.autosave_now()
    assert not window.autosave_now(), "nothing changed since the last autosave"
    monkeypatch.setattr(window, "ask", lambda title, question: False)
    assert not window.offer_recovery()
    assert not window.recovery_file.exists()


def test_several_crashed_sessions_are_offered_newest_first_and_the_question_says_so(window, photo, monkeypatch,
                                                                                     isolated_config, qtbot):
    from maskwork.app.autosave import recovery_path

    window.open_paths([photo[0]])
    window.canvas.stroke([(10, 10), (10, 50)])
    with qtbot.waitSignal(window.autosave.written, timeout=10_000):
        assert window.autosave_now()
    left = [recovery_path(isolated_config, process=900_000 + number) for number in range(3)]
    for age, path in enumerate(left):  # three crashed processes, the first the newest
        path.write_bytes(window.recovery_file.read_bytes())
        os.utime(path, (1e9 - age, 1e9 - age))
    crash_leaves_the_recovery_file(window)
    window.recovery_file.unlink()
    questions = []
    monkeypatch.setattr(window, "ask", lambda title, question: questions.append(question) or True)
    assert window.offer_recovery()
    assert "2 older ones are kept and offered one at each start" in questions[0]
    assert not left[0].exists() and left[1].exists() and left[2].exists(), "the newest was restored"


def test_an_unreadable_recovery_file_is_set_aside_once_not_offered_at_every_start(window, monkeypatch,
                                                                                  isolated_config):
    from maskwork.app.autosave import recovery_path

    damaged = recovery_path(isolated_config, process=900_000)
    damaged.write_bytes(b"PK not a project")
    questions = []
    monkeypatch.setattr(window, "ask", lambda title, question: questions.append(question) or True)
    assert not window.offer_recovery()
    kept = next(isolated_config.glob("damaged-recovery-900000-*.maskwork"))
    assert kept.read_bytes() == b"PK not a project" and not damaged.exists()
    assert f"It was kept as {kept}" in window.last_message_box.text()
    assert not window.offer_recovery() and len(questions) == 1, "not asked again at the next start"


def test_an_edit_that_replaces_an_undone_one_of_the_same_name_and_size_is_autosaved(window, photo, qtbot):
    from maskwork.core.document import Document
    from maskwork.core.project import restore

    window.open_paths([photo[0]])
    window.tool_actions[Tool.BRUSH].trigger()
    window.canvas.brush_radius = 4
    click(window.canvas, 50, 50)  # a dot in the wrong place
    with qtbot.waitSignal(window.autosave.written, timeout=10_000):
        assert window.autosave_now()
    window.action_undo.trigger()
    click(window.canvas, 150, 250)  # the same dot where it belongs
    with qtbot.waitSignal(window.autosave.written, timeout=10_000):
        assert window.autosave_now(), "another state, though its step has the same name and size"
    recovered = Document()
    restore(read_project(window.recovery_file), recovered)
    dots = recovered.layers.of_kind(LayerKind.MARKERS)[-1].data
    assert dots[150, 250] == 1 and dots[50, 50] == 0


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


def test_recovery_brings_back_every_kind_of_step(window, photo, qtbot, isolated_config):
    window.open_paths([photo[0]])
    document = window.document
    window.canvas.stroke([(10, 10), (10, 60)])
    document.add_point(30, 40, 1)
    window.choose_operator(get("threshold"))
    with qtbot.waitSignal(window.runner.applied, timeout=10_000):
        window.action_apply.trigger()
    mask = document.layers.of_kind(LayerKind.MASK)[0]
    document.set_property(mask, "opacity", 0.25)
    document.move_layer(len(document.layers) - 1, 1)
    labels = document.convert_layer(mask, LayerKind.LABELS)
    document.remove_layer(labels)
    window.undo()  # the deleted labels come back; deleting them again waits to be redone
    states = []
    while True:  # every state from the newest back to the opened image
        states.append([(layer.name, layer.kind, layer.opacity, layer.data.copy()) for layer in document.layers])
        if not document.history.undo():
            break
    document.history.jump_to(len(states) - 1)
    names = document.history.undo_names, document.history.redo_names
    with qtbot.waitSignal(window.autosave.written, timeout=10_000):
        assert window.autosave_now()
    crash_leaves_the_recovery_file(window)

    assert window.offer_recovery()
    assert (document.history.undo_names, document.history.redo_names) == names
    for state in states:
        restored = [(layer.name, layer.kind, layer.opacity) for layer in document.layers]
        assert restored == [entry[:3] for entry in state]
        for layer, entry in zip(document.layers, state):
            np.testing.assert_array_equal(layer.data, entry[3])
        window.undo()
    window.redo(), window.redo()
    assert document.points == ((30.0, 40.0, 1),)


def test_an_apply_and_a_long_stroke_are_autosaved_within_seconds(window, photo, qtbot):
    window.open_paths([photo[0]])
    window.choose_operator(get("threshold"))
    with qtbot.waitSignal(window.runner.applied, timeout=10_000):
        window.action_apply.trigger()
    qtbot.waitUntil(window.recovery_file.exists, timeout=5_000)
    window.recovery_file.unlink()
    window.canvas.stroke([(10, 10), (10, 60)])  # a short stroke waits for the minute's autosave
    window.tool_actions[Tool.BRUSH].trigger()
    with qtbot.waitSignal(window.document.history.changed, timeout=5_000):
        drag(window.canvas, [(20 + row % 2 * 150, 10 + row * 5) for row in range(60)])
    assert window.document.history.steps[0][-1].edits >= 40
    qtbot.waitUntil(window.recovery_file.exists, timeout=5_000)
    assert not stale_temporary_files(window.recovery_file)


def test_a_failed_autosave_leaves_no_temporary_file_and_says_so(window, photo, monkeypatch, qtbot):
    from maskwork.core import project

    window.open_paths([photo[0]])
    window.canvas.stroke([(10, 10), (10, 60)])
    real_write = project._CountingWriter.write

    def disk_full(self, data):
        real_write(self, data[:16])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(project._CountingWriter, "write", disk_full)
    assert window.autosave_now()
    qtbot.waitUntil(lambda: "No space left" in window.statusBar().currentMessage(), timeout=10_000)
    assert not window.recovery_file.exists() and not stale_temporary_files(window.recovery_file)
    monkeypatch.setattr(project._CountingWriter, "write", real_write)  # the disk has room again
    window.canvas.stroke([(20, 10), (20, 60)])
    with qtbot.waitSignal(window.autosave.written, timeout=10_000):
        assert window.autosave_now(), "the next autosave tries again"


def test_the_autosave_interval_is_a_preference(window, qtbot):
    from maskwork.app.main_window import MainWindow
    from maskwork.core import io

    assert window.autosave.interval_minutes == 1
    dialog = window.preferences_dialog()
    dialog.autosave_spin.setValue(7)
    try:
        dialog.accept()
    finally:
        io.set_max_pixels(None)  # OK also stored the pixel limit shown
    assert window.autosave.interval_minutes == 7
    later = MainWindow()  # the next start keeps the choice
    qtbot.addWidget(later)
    assert later.autosave.interval_minutes == 7


def test_recovery_remembers_the_project_file_of_the_session(window, photo, tmp_path, qtbot):
    window.open_paths([photo[0]])
    window.canvas.stroke([(10, 10), (10, 60)])
    assert window.projects.save_to(tmp_path / "work.maskwork", wait=True)
    window.canvas.stroke([(30, 10), (30, 60)])
    with qtbot.waitSignal(window.autosave.written, timeout=10_000):
        assert window.autosave_now()
    crash_leaves_the_recovery_file(window)

    assert window.offer_recovery()
    assert window.projects.path == tmp_path / "work.maskwork" and window.windowTitle() == "maskwork - work.maskwork[*]"
    assert window.isWindowModified() and window.document.layers[1].data[30, 10:61].all()


def test_autosave_into_a_folder_it_cannot_write_says_so_and_raises_nothing(window, photo, qtbot, tmp_path, monkeypatch):
    window.open_paths([photo[0]])
    window.canvas.stroke([(10, 10), (10, 50)])
    (tmp_path / "a file").write_text("not a folder")
    monkeypatch.setenv("MASKWORK_CONFIG_DIR", str(tmp_path / "a file" / "settings"))
    assert window.autosave_now()
    qtbot.waitUntil(lambda: window.autosave._writer is None, timeout=10_000)
    assert window.statusBar().currentMessage().startswith("Autosave failed")
    window.autosave.stop()  # a clean exit there raises nothing either


def test_a_save_during_an_autosave_that_fails_leaves_the_next_autosave_alone(window, photo, qtbot, monkeypatch):
    from maskwork.app import autosave

    window.open_paths([photo[0]])
    window.canvas.stroke([(10, 10), (10, 50)])
    writing = autosave.start_writing
    monkeypatch.setattr(autosave, "start_writing", lambda project, path, **handlers: writing(
        project, path.parent / "no such folder" / path.name, **handlers))
    assert window.autosave_now()
    window.autosave.forget()  # a project save lands while that write runs (and fails)
    qtbot.waitUntil(lambda: window.autosave._writer is None, timeout=10_000)
    monkeypatch.setattr(autosave, "start_writing", writing)
    window.canvas.stroke([(30, 10), (30, 50)])
    with qtbot.waitSignal(window.autosave.written, timeout=10_000):
        assert window.autosave_now()
    qtbot.waitUntil(lambda: window.autosave._writer is None, timeout=10_000)
    assert window.recovery_file.exists(), "the new work's autosave is kept"


def test_what_a_crash_in_a_first_autosave_left_is_removed_at_the_next_start(window, isolated_config):
    from maskwork.app.autosave import recovery_path

    ended = recovery_path(isolated_config, process=999_998)
    half = ended.with_name(f".{ended.name}.0123456789ab.tmp")
    half.write_bytes(b"PK half written")
    ended.with_suffix(".lock").write_bytes(b"")
    assert not window.offer_recovery()
    assert not half.exists() and not ended.with_suffix(".lock").exists()


def test_another_process_of_the_same_id_gets_a_recovery_file_of_its_own(window, photo, qtbot, isolated_config):
    from maskwork.core.io.files import lock_exclusively

    window.open_paths([photo[0]])
    window.canvas.stroke([(10, 10), (10, 50)])
    taken = window.recovery_file
    with open(taken.with_suffix(".lock"), "a+b") as other:  # a process of this id in another namespace
        assert lock_exclusively(other)
        with qtbot.waitSignal(window.autosave.written, timeout=10_000):
            assert window.autosave_now()
        assert window.recovery_file != taken and window.recovery_file.exists() and not taken.exists()
