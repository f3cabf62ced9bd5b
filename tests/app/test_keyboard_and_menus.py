"""The window's frame as a person meets it: keys, menus, the status bar, file dialogs that
come only when there is something to write, and what a drop of several files does."""

from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent, QKeySequence
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QComboBox, QFileDialog, QMessageBox

from maskwork.core import io
from maskwork.core.project import capture, write_project
from maskwork.operators import get
from maskwork.widgets.canvas import Tool


def test_keys_typed_into_a_drop_down_select_in_it_and_leave_the_tool_and_clicks(window, photo):
    window.open_paths([photo[0]])
    window.document.add_point(10, 10, 1)
    window.tool_actions[Tool.PAN].trigger()
    window.choose_operator(get("denoise"))
    methods = next(combo for combo in window.operator_panel.findChildren(QComboBox)
                   if combo.findText("bilateral") >= 0)
    methods.setFocus()
    QTest.keyClick(methods, Qt.Key.Key_B)
    assert methods.currentText() == "bilateral" and window.canvas.tool is Tool.PAN, "B chose, and left the pan tool"
    QTest.keyClick(methods, Qt.Key.Key_Backspace)
    assert len(window.document.points) == 1, "Backspace in a list removes no click"
    QTest.keyClick(methods, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert not window.document.points, "Ctrl+Z still undoes, wherever the focus is"


def test_every_binding_of_a_standard_key_and_the_usual_second_ones_work(window):
    def bindings(action):
        return {key.toString() for key in action.shortcuts()}

    assert {"Ctrl+Shift+Z", "Ctrl+Y"} <= bindings(window.action_redo)
    assert "Ctrl+=" in bindings(window.action_zoom_in)
    assert bindings(window.files.action_close) == {key.toString() for key in QKeySequence.keyBindings(QKeySequence.StandardKey.Close)}


def test_each_menu_of_the_bar_has_its_own_alt_letter(window):
    letters = []
    for action in window.menuBar().actions():
        text = action.text()
        assert "&" in text, f"{text} has no Alt+letter"
        letters.append(text[text.index("&") + 1].lower())
    assert len(letters) == len(set(letters)), [action.text() for action in window.menuBar().actions()]
    titles = [action.text() for action in window.menuBar().actions()]
    assert "&Segmentation" in titles and "&File" in titles


def test_help_lists_the_shortcuts_the_menus_really_have(window):
    dialog = window.shortcuts_dialog()
    table = dialog.table
    rows = {table.item(row, 0).text(): table.item(row, 1).text() for row in range(table.rowCount())}
    assert rows["Edit > Redo"] == "Ctrl+Shift+Z, Ctrl+Y"
    assert rows["Tools > Quick select"] == "Q" and rows["Run > Apply"].startswith("Ctrl+Return")
    assert "Pan" in rows and "Label painted by the brush" in rows, "the canvas's keys no menu holds"
    assert "F1" in {key.toString() for action in window.menuBar().actions()[-1].menu().actions()
                    for key in action.shortcuts()}
    dialog.close()


@pytest.mark.parametrize("what", ["mask", "labels", "cutout"])
def test_an_export_with_nothing_to_write_says_so_before_asking_for_a_file(window, photo, monkeypatch, what):
    window.open_paths([photo[0]])
    asked = []
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args, **kwargs: asked.append(args) or ("", ""))
    window.exports.export_dialog(what)
    assert not asked, "no file dialog for an export that cannot be written"
    assert window.last_message_box.windowTitle().startswith("Nothing to export as ")
    assert "cutout" not in window.last_message_box.windowTitle(), "the menus' words, not the code's"


def test_recipe_transform_and_project_dialogs_wait_for_something_to_write(window, monkeypatch):
    asked = []
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args, **kwargs: asked.append(args) or ("", ""))
    window.recipes.export_recipe_dialog()
    assert window.last_message_box.windowTitle() == "No recipe yet"
    window.transforms.export_transform_dialog()
    assert window.last_message_box.windowTitle() == "No transform"
    window.projects.save_as_dialog()
    assert window.last_message_box.windowTitle() == "Nothing to save"
    assert not asked


def test_preview_and_apply_without_an_operator_say_what_is_missing(window, photo):
    window.open_paths([photo[0]])
    window.action_apply.trigger()
    assert window.statusBar().currentMessage().startswith("Choose an operator first")


def test_the_status_bar_says_how_an_open_or_an_add_ended(window, photo, tmp_path, monkeypatch, qtbot):
    path = photo[0]
    window.open_paths([path])
    window.canvas.stroke([(50, 50), (60, 80)])
    monkeypatch.setattr(window, "ask_to_save", lambda: QMessageBox.StandardButton.Cancel)
    window.files.open_paths([path], background=True)
    qtbot.waitUntil(lambda: not window.statusBar().currentMessage().startswith("Opening"), timeout=10_000)
    assert window.document.history.is_modified, "the person kept their work"
    other = tmp_path / "other.png"
    io.write_image(other, np.zeros((240, 320), np.uint8))
    with qtbot.waitSignal(window.files.added, timeout=10_000):
        window.files.add_image_layers(other, background=True)
    assert window.statusBar().currentMessage() == "Added other.png as a layer"


def test_a_project_dropped_with_images_opens_alone_and_says_what_was_left_out(window, photo, tmp_path, qtbot):
    window.open_paths([photo[0]])
    project = write_project(capture(window.document), tmp_path / "work.maskwork")
    window.files.close_document()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(photo[0])), QUrl.fromLocalFile(str(project))])
    drop = QDropEvent(QPointF(20, 20), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.projects.opened, timeout=10_000):
        window.dropEvent(drop)
    assert window.projects.path == project
    assert window.last_message_box.windowTitle() == "A project opens on its own"
    assert photo[0].name in window.last_message_box.text()


def test_open_recent_tells_files_of_one_name_apart_and_keeps_ampersands(window, tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        io.write_image(tmp_path / folder / "image.png", np.zeros((8, 8), np.uint8))
        window.files.remember_file(tmp_path / folder / "image.png")
    io.write_image(tmp_path / "R&D.png", np.zeros((8, 8), np.uint8))
    window.files.remember_file(tmp_path / "R&D.png")
    window.files.fill_recent_menu()
    texts = [action.text() for action in window.files.recent_menu.actions()]
    assert texts[:3] == ["R&&D.png", "image.png  (b)", "image.png  (a)"]
    assert window.files.recent_menu.toolTipsVisible()
    assert Path(window.files.recent_menu.actions()[0].toolTip()) == tmp_path / "R&D.png"
