"""Deep learning > Models... in the real window, downloading from a loopback server."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from window_driver import menu_action

from maskwork.core.models import installed_path, model_entry, partial_bytes
from maskwork.widgets.models_dialog import COLUMNS
from tests.model_server import serve_models


@pytest.fixture()
def server(tmp_path, monkeypatch):
    with serve_models(tmp_path, monkeypatch) as state:
        yield state


def select(dialog, name):
    row = next(r for r in range(dialog.table.rowCount()) if dialog.table.item(r, 0).text() == name)
    dialog.table.selectRow(row)
    return row


def state_of(dialog, name):
    return dialog.table.item(select(dialog, name), COLUMNS.index("State")).text()


def test_download_with_progress_cancel_import_and_remove(window, server, qtbot, tmp_path):
    menu_action(window, "Deep learning", "Models...").trigger()
    dialog = window.models.dialog
    qtbot.waitExposed(dialog)
    assert state_of(dialog, "sam_vit_b") == "not downloaded"
    assert dialog.table.item(select(dialog, "sam_vit_b"), COLUMNS.index("Size")).text() == "375.0 MB"

    # Download: the bar moves with bytes and rate, then the model is installed.
    server.chunk_delay_s = 0.01
    select(dialog, "tiny")
    with qtbot.waitSignal(dialog.models_changed, timeout=10_000):
        qtbot.mouseClick(dialog.download_button, Qt.MouseButton.LeftButton)
        assert not dialog.download_button.isEnabled() and dialog.cancel_button.isEnabled()
        qtbot.waitUntil(lambda: dialog.progress_bar.value() > 0 and dialog.progress_label.text().endswith("B/s"),
                        timeout=10_000)
        assert dialog.progress_bar.isVisible()
        assert " of 614.4 kB, " in dialog.progress_label.text()
    qtbot.waitUntil(lambda: dialog.worker is None)
    assert installed_path(model_entry("tiny")).read_bytes() == server.files["/tiny.pt"]
    assert state_of(dialog, "tiny") == "installed"
    assert dialog.status_label.text().startswith("tiny is installed: ")
    assert not dialog.progress_bar.isVisible() and dialog.remove_button.isEnabled()

    # Cancel part way: the bytes are kept, and the state says it resumes.
    server.chunk_delay_s = 0.05
    select(dialog, "tiny_md5")
    qtbot.mouseClick(dialog.download_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.progress_bar.value() > 0, timeout=10_000)
    qtbot.mouseClick(dialog.cancel_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.worker is None, timeout=10_000)
    assert "cancelled" in dialog.status_label.text()
    assert 0 < partial_bytes(model_entry("tiny_md5")) < 200 * 1024
    assert state_of(dialog, "tiny_md5").endswith("% (resumable)")

    # Import file...: a copy brought on a USB stick, hash-checked in the background.
    stick = tmp_path / "usb" / "tiny_md5.pt"
    stick.parent.mkdir()
    stick.write_bytes(server.files["/tiny_md5.pt"])
    with qtbot.waitSignal(dialog.models_changed, timeout=10_000):
        dialog.import_file("tiny_md5", stick)
    qtbot.waitUntil(lambda: dialog.worker is None)
    assert state_of(dialog, "tiny_md5") == "installed"
    assert partial_bytes(model_entry("tiny_md5")) == 0  # the cancelled download's bytes went

    # Remove: the file leaves the cache.
    select(dialog, "tiny")
    with qtbot.waitSignal(dialog.models_changed):
        qtbot.mouseClick(dialog.remove_button, Qt.MouseButton.LeftButton)
    assert not installed_path(model_entry("tiny")).exists()
    assert state_of(dialog, "tiny") == "not downloaded"
    assert dialog.status_label.text() == "Removed tiny (614.4 kB freed)."


def test_a_catalogue_with_a_typo_is_said_in_the_window(window, tmp_path, monkeypatch):
    """The menu item did nothing: the error went to stderr only."""
    (tmp_path / "site.json").write_text('[{"name": "x"\n')
    monkeypatch.setenv("MASKWORK_MODELS_CATALOGUE", str(tmp_path / "site.json"))
    menu_action(window, "Deep learning", "Models...").trigger()
    box = window.last_message_box
    assert window.models.dialog is None and box is not None and box.isVisible()
    assert box.windowTitle() == "Cannot list the models" and "not a list of model entries" in box.text()
