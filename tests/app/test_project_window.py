"""Project files in the real window: Save, Save As, Open project (menu, recent files, drop),
the * in the title, the close prompt, and a workflow saved midway and continued later."""

from contextlib import contextmanager

import numpy as np
from PySide6.QtCore import QMimeData, QPointF, Qt, QTimer, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QApplication, QMessageBox

from maskwork.app import file_actions, project_actions
from maskwork.core.project import read_project
from maskwork.pipeline.inputs import LayerInput
from maskwork.widgets.canvas import Tool
from window_driver import drag, iou, menu_action

SAVE, DISCARD = QMessageBox.StandardButton.Save, QMessageBox.StandardButton.Discard


def save_dialog_answers(monkeypatch, *answers):
    """Make File > Save As's file dialog answer ``answers`` in turn; returns the calls made."""
    calls = []

    def ask(parent, caption, start, filters):
        calls.append(start)
        return (str(answers[len(calls) - 1]), filters)

    monkeypatch.setattr(project_actions.QFileDialog, "getSaveFileName", ask)
    return calls


def press(window, key, modifiers=Qt.KeyboardModifier.NoModifier):
    window.activateWindow()
    window.setFocus()
    from PySide6.QtTest import QTest

    QTest.keyClick(window, key, modifiers)


def saved_layer(path, name):
    """The pixels of the layer called ``name`` in the project file at ``path``."""
    loaded = read_project(path)
    return loaded.arrays[next(layer["data"] for layer in loaded.manifest["layers"] if layer["name"] == name)]


def layer_states(window):
    return [(layer.name, layer.kind, layer.visible, layer.opacity, layer.data.copy()) for layer in window.document.layers]


def assert_same_layers(a, b):
    assert [entry[:4] for entry in a] == [entry[:4] for entry in b]
    for first, second in zip(a, b):
        np.testing.assert_array_equal(first[4], second[4])


def test_save_as_then_save_with_the_shortcuts_and_the_star_in_the_title(window, photo, tmp_path, qtbot, monkeypatch):
    window.open_paths([photo[0]])
    assert window.windowTitle() == "maskwork - cat_on_wall.png[*]" and not window.isWindowModified()
    window.canvas.stroke([(40, 40), (40, 200)])
    assert window.isWindowModified()
    calls = save_dialog_answers(monkeypatch, tmp_path / "cat work", tmp_path / "copy.maskwork")

    with qtbot.waitSignal(window.projects.saved, timeout=10_000) as saved:
        press(window, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)  # no file yet: Save asks where
    assert saved.args[0] == tmp_path / "cat work.maskwork", "the suffix is added"
    assert calls[0].endswith("cat_on_wall.maskwork"), "the dialog proposes the image's name"
    assert window.windowTitle() == "maskwork - cat work.maskwork[*]" and not window.isWindowModified()

    window.canvas.stroke([(60, 40), (60, 200)])
    assert window.isWindowModified()
    with qtbot.waitSignal(window.projects.saved, timeout=10_000):
        press(window, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)  # saves where it saved before
    assert len(calls) == 1 and not window.isWindowModified()
    assert saved_layer(tmp_path / "cat work.maskwork", "markers")[60, 40:201].all()

    with qtbot.waitSignal(window.projects.saved, timeout=10_000):
        press(window, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert window.projects.path == tmp_path / "copy.maskwork" and window.windowTitle() == "maskwork - copy.maskwork[*]"
    window.canvas.stroke([(80, 40), (80, 200)])
    assert window.isWindowModified()


def test_open_project_by_file_open_recent_files_and_drop(window, photo, tmp_path, qtbot, monkeypatch):
    from maskwork.operators import get

    window.open_paths([photo[0]])
    window.canvas.stroke([(40, 40), (40, 200)])
    window.choose_operator(get("threshold"))
    with qtbot.waitSignal(window.runner.applied, timeout=10_000):
        window.action_apply.trigger()
    window.choose_operator(get("morphology"), {"operation": "dilate", "radius": 4})
    window.document.set_property(window.document.layers[1], "opacity", 0.3)
    saved_layers, saved_steps = layer_states(window), window.document.history.undo_names
    path = tmp_path / "session.maskwork"
    assert window.projects.save_to(path, wait=True)
    window.files.close_document()
    assert not window.document.layers and window.windowTitle() == "maskwork - untitled[*]"

    def reopened():
        assert_same_layers(layer_states(window), saved_layers)
        assert window.document.history.undo_names == saved_steps and not window.isWindowModified()
        assert window.windowTitle() == "maskwork - session.maskwork[*]" and window.source_path == photo[0]
        assert window.runner.spec.id == "morphology" and window.operator_panel.values()["radius"] == 4
        assert [step.operator for step in window.recipes.current_recipe().steps] == ["threshold"]

    # File > Open takes projects too.
    monkeypatch.setattr(file_actions.QFileDialog, "getOpenFileName", lambda *args: (str(path), ""))
    with qtbot.waitSignal(window.projects.opened, timeout=10_000) as opened:
        menu_action(window, "File", "Open...").trigger()
    assert opened.args == [True]
    reopened()

    # Open recent lists it.
    window.files.close_document()
    window.files.fill_recent_menu()
    entry = next(action for action in window.files.recent_menu.actions() if action.text() == "session.maskwork")
    with qtbot.waitSignal(window.projects.opened, timeout=10_000):
        entry.trigger()
    reopened()

    # A dropped project opens as the project.
    window.files.close_document()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    drop = QDropEvent(QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.projects.opened, timeout=10_000):
        window.dropEvent(drop)
    reopened()


def test_a_damaged_project_says_why_and_keeps_the_document(window, photo, tmp_path, qtbot):
    window.open_paths([photo[0]])
    broken = tmp_path / "broken.maskwork"
    broken.write_bytes(b"PK not really")
    with qtbot.waitSignal(window.projects.opened, timeout=10_000) as opened:
        window.files.open_paths([broken], background=True)
    assert opened.args == [False] and "broken.maskwork" in window.last_message_box.windowTitle()
    assert window.document.base_image.name == "cat_on_wall.png"


def answer_prompt(qtbot, window, answer):
    """When the save prompt shows, give it ``answer``: a key, or a button to click."""
    seen = []

    def look():
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox) or box.objectName() != "saveChangesBox":
            return
        timer.stop()
        seen.append((box.text(), box.defaultButton() is box.button(SAVE)))
        if isinstance(answer, QMessageBox.StandardButton):
            box.button(answer).click()
        else:
            focus, key = answer
            if focus is not None:
                box.button(focus).setFocus()
            focused = QApplication.focusWidget()
            qtbot.keyClick(focused if focused is not None and box.isAncestorOf(focused) else box, key)

    timer = QTimer(window)
    timer.timeout.connect(look)
    timer.start(10)
    return seen


@contextmanager
def real_prompt(window, monkeypatch):
    """The window's real save prompt inside the block; after it, unsaved work is dropped
    when asked, as the window fixture does, so that closing the window after the test asks
    nothing (pytest-qt closes the test's windows before fixtures end)."""
    monkeypatch.delattr(window, "ask_to_save")
    try:
        yield
    finally:
        monkeypatch.setattr(window, "ask_to_save", lambda: DISCARD)


def test_enter_on_the_close_prompt_saves_and_closes(window, photo, tmp_path, qtbot, monkeypatch):
    window.open_paths([photo[0]])
    path = tmp_path / "saved.maskwork"
    window.canvas.stroke([(40, 40), (40, 200)])
    assert window.projects.save_to(path, wait=True)
    window.canvas.stroke([(90, 40), (90, 200)])
    with real_prompt(window, monkeypatch):
        # Enter with the focus on Don't save still saves.
        seen = answer_prompt(qtbot, window, (DISCARD, Qt.Key.Key_Return))
        assert window.close()
    assert seen == [("Save the changes to saved.maskwork?", True)]
    assert not window.isVisible()
    assert saved_layer(path, "markers")[90, 40:201].all(), "the last stroke was saved"


def test_enter_on_the_prompt_of_an_untitled_document_keeps_the_window_when_save_as_is_cancelled(
        window, photo, qtbot, monkeypatch):
    window.open_paths([photo[0]])
    window.canvas.stroke([(40, 40), (40, 200)])
    save_dialog_answers(monkeypatch, "")  # the person cancels the file dialog
    with real_prompt(window, monkeypatch):
        answer_prompt(qtbot, window, (None, Qt.Key.Key_Enter))
        assert not window.close()
        assert window.isVisible() and window.document.layers and window.isWindowModified()
        answer_prompt(qtbot, window, (None, Qt.Key.Key_Escape))
        assert not window.close() and window.document.layers


def test_dont_save_on_the_prompt_discards_and_closes(window, photo, qtbot, monkeypatch):
    window.open_paths([photo[0]])
    window.canvas.stroke([(40, 40), (40, 200)])
    with real_prompt(window, monkeypatch):
        answer_prompt(qtbot, window, DISCARD)
        assert window.close() and not window.isVisible()


def test_tour_save_midway_reopen_in_a_new_window_continue_and_undo(window, photo, tmp_path, qtbot, monkeypatch):
    """Issue 14's tour: open, box, GrabCut, Apply, save, close, reopen, Apply more, undo back."""
    from maskwork.app.main_window import MainWindow

    path, image, truth = photo
    monkeypatch.setattr(file_actions.QFileDialog, "getOpenFileName", lambda *args: (str(path), ""))
    with qtbot.waitSignal(window.files.opened, timeout=10_000):
        menu_action(window, "File", "Open...").trigger()
    window.tool_actions[Tool.BOX].trigger()
    rows, cols = np.nonzero(truth)
    top, left, bottom, right = rows.min() - 8, cols.min() - 8, rows.max() + 8, cols.max() + 8
    drag(window.canvas, [(top, left), ((top + bottom) / 2, (left + right) / 2), (bottom, right)])
    menu_action(window, "Segmentation", "GrabCut").trigger()
    with qtbot.waitSignal(window.runner.applied, timeout=30_000) as applied:
        window.action_apply.trigger()
    (grabcut_mask,) = applied.args[0]
    assert iou(grabcut_mask.data, truth) > 0.9
    states_before_save = []  # newest first, as undo will walk them
    history = window.document.history
    for _ in range(len(history.undo_names)):
        states_before_save.append((layer_states(window), window.document.rect))
        history.undo()
    history.jump_to(len(states_before_save))
    project_file = tmp_path / "tour.maskwork"
    save_dialog_answers(monkeypatch, project_file)
    with qtbot.waitSignal(window.projects.saved, timeout=10_000):
        press(window, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)
    assert window.close(), "nothing unsaved: the window closes without asking"

    later = MainWindow()
    qtbot.addWidget(later)
    monkeypatch.setattr(later, "ask_to_save", lambda: DISCARD)
    later.show()
    qtbot.waitExposed(later)
    monkeypatch.setattr(file_actions.QFileDialog, "getOpenFileName", lambda *args: (str(project_file), ""))
    with qtbot.waitSignal(later.projects.opened, timeout=10_000):
        menu_action(later, "File", "Open...").trigger()
    assert later.windowTitle() == "maskwork - tour.maskwork[*]" and later.runner.spec.id == "grabcut"
    mask = later.document.layers.by_name(grabcut_mask.name)
    np.testing.assert_array_equal(mask.data, grabcut_mask.data)

    # Continue: dilate the GrabCut mask, Apply.
    later.document.layers.selected = mask
    menu_action(later, "Refine", "Open / close / dilate / erode").trigger()
    with qtbot.waitSignal(later.runner.applied, timeout=30_000):
        later.action_apply.trigger()
    assert later.isWindowModified()
    recipe = later.recipes.current_recipe()
    assert [step.operator for step in recipe.steps] == ["grabcut", "morphology"]
    assert isinstance(recipe.steps[1].inputs["mask"], LayerInput), "the new step takes the reopened GrabCut result"

    # Undo the new step, then every step made before the save, state by state.
    later.action_undo.trigger()
    for layers, rect in states_before_save:
        assert_same_layers(layer_states(later), layers)
        assert later.document.rect == rect
        later.action_undo.trigger()
    assert [layer.name for layer in later.document.layers] == ["cat_on_wall.png"] and later.document.rect is None


def test_work_done_while_a_save_runs_stays_unsaved(window, photo, tmp_path, qtbot):
    window.open_paths([photo[0]])
    window.canvas.stroke([(40, 40), (40, 200)])
    with qtbot.waitSignal(window.projects.saved, timeout=10_000):
        assert window.projects.save_to(tmp_path / "first.maskwork")
        window.canvas.stroke([(90, 40), (90, 200)])  # the worker writes meanwhile
    assert window.isWindowModified() and window.projects.path == tmp_path / "first.maskwork"
    markers = saved_layer(tmp_path / "first.maskwork", "markers")
    assert markers[40, 40:201].all() and not markers[90].any(), "the file holds the document as it was at Save"

    with qtbot.waitSignal(window.projects.saved, timeout=10_000):
        assert window.projects.save_to(tmp_path / "second.maskwork")
        window.files.close_document()  # the person discards and closes while it is written
    assert window.projects.path is None and window.windowTitle() == "maskwork - untitled[*]"


def test_save_as_asks_before_replacing_the_project_a_typed_name_becomes(window, photo, tmp_path, qtbot, monkeypatch):
    window.open_paths([photo[0]])
    other = tmp_path / "work.maskwork"
    other.write_bytes(b"another project")
    asked = []
    monkeypatch.setattr(window, "ask", lambda title, question: asked.append(question) or False)
    save_dialog_answers(monkeypatch, tmp_path / "work")
    assert not window.projects.save_as_dialog(wait=True)
    assert "work.maskwork already exists" in asked[0] and other.read_bytes() == b"another project"


def test_a_project_whose_arrays_are_missing_keeps_the_open_document(window, photo, tmp_path, qtbot):
    import zipfile

    window.open_paths([photo[0]])
    good = tmp_path / "good.maskwork"
    with qtbot.waitSignal(window.projects.saved, timeout=10_000):
        window.projects.save_to(good)
    damaged = tmp_path / "damaged.maskwork"
    with zipfile.ZipFile(good) as source, zipfile.ZipFile(damaged, "w") as target:
        for item in source.infolist():
            if not item.filename.startswith("arrays/"):
                target.writestr(item, source.read(item))
    with qtbot.waitSignal(window.projects.opened, timeout=10_000) as opened:
        window.files.open_paths([damaged], background=True)
    assert opened.args == [False] and "damaged.maskwork" in window.last_message_box.windowTitle()
    assert window.document.base_image.name == "cat_on_wall.png" and window.projects.path == good


def test_a_saved_project_leaves_no_recovery_file_to_offer_older_work_back(window, photo, tmp_path, qtbot):
    window.open_paths([photo[0]])
    window.canvas.stroke([(10, 10), (10, 50)])
    with qtbot.waitSignal(window.autosave.written, timeout=10_000):
        assert window.autosave_now()
    assert window.recovery_file.exists()
    window.canvas.stroke([(30, 10), (30, 50)])
    with qtbot.waitSignal(window.projects.saved, timeout=10_000):
        window.projects.save_to(tmp_path / "day.maskwork")
    # At once, or when the autosave's writer has finished (its file would go after it).
    qtbot.waitUntil(lambda: window.autosave._writer is None and not window.recovery_file.exists(), timeout=5_000)
    window.canvas.stroke([(50, 10), (50, 50)])
    with qtbot.waitSignal(window.autosave.written, timeout=10_000):
        assert window.autosave_now(), "unsaved work after the save is autosaved again"
    window.files.empty_document()  # File > Close, its changes discarded
    qtbot.waitUntil(lambda: window.autosave._writer is None and not window.recovery_file.exists(), timeout=5_000)


def test_a_registration_transform_survives_a_project(window, tmp_path, qtbot):
    from skimage import data

    from maskwork.core import io
    from maskwork.operators import get
    from maskwork.operators.registration.transform import Transform

    io.write_image(tmp_path / "fixed.png", data.camera())
    io.write_image(tmp_path / "moving.png", np.roll(data.camera(), (6, -9), axis=(0, 1)))
    window.open_paths([tmp_path / "fixed.png", tmp_path / "moving.png"])
    window.choose_operator(get("register_features"))
    with qtbot.waitSignal(window.runner.applied, timeout=60_000) as applied:
        window.action_apply.trigger()
    warped = applied.args[0][0]
    matrix = warped.metadata["transform"].matrix.copy()
    with qtbot.waitSignal(window.projects.saved, timeout=10_000):
        window.projects.save_to(tmp_path / "aligned.maskwork")
    with qtbot.waitSignal(window.projects.opened, timeout=10_000):
        window.files.open_paths([tmp_path / "aligned.maskwork"], background=True)
    reopened = window.document.layers.by_name(warped.name)
    assert isinstance(reopened.metadata["transform"], Transform)
    np.testing.assert_allclose(reopened.metadata["transform"].matrix, matrix)
    window.document.layers.selected = reopened
    assert window.transforms.export_transform(tmp_path / "t.json") is not None
    # A layer only the history holds (deleted before saving) keeps its transform too.
    window.document.remove_layer(reopened)
    with qtbot.waitSignal(window.projects.saved, timeout=10_000):
        window.projects.save_to(tmp_path / "deleted.maskwork")
    with qtbot.waitSignal(window.projects.opened, timeout=10_000):
        window.files.open_paths([tmp_path / "deleted.maskwork"], background=True)
    window.undo()
    back = window.document.layers.by_name(warped.name)
    assert isinstance(back.metadata["transform"], Transform)
    np.testing.assert_allclose(back.metadata["transform"].matrix, matrix)
