"""The window names a missing extra in the operator menus and in the operator panel."""

import sys

import pytest
from PySide6.QtWidgets import QLabel

from maskwork.operators import extras

#: Operators that need torch (the dl extra).
NEED_TORCH = ("scribble_cnn", "run_model", "learned_inpaint", "segment_anything")


@pytest.fixture
def without_torch(monkeypatch):
    """torch unimportable from before the window is made (see tests/test_extras.py)."""
    for name in [name for name in sys.modules if name.split(".")[0] == "torch"] + ["torch"]:
        monkeypatch.setitem(sys.modules, name, None)


@pytest.fixture
def desktop_application(monkeypatch):
    """The person installed ``maskwork``, the window's distribution (the test environment
    has maskwork-core only, whose commands name ``maskwork-core[dl]``)."""
    monkeypatch.setattr(extras, "runs_as_desktop_application", lambda: True)


def test_menus_and_panel_name_the_dl_extra(desktop_application, without_torch, window):
    for op_id in NEED_TORCH:
        action = window.operator_actions[op_id]
        assert action.text().endswith("(needs maskwork[dl])"), action.text()
        assert action.toolTip().endswith("needs torch: pip install 'maskwork[dl]'")
        assert action.isEnabled()  # choosing it shows what to install
    grabcut = window.operator_actions["grabcut"]
    assert "needs" not in grabcut.text() and "pip install" not in grabcut.toolTip()

    window.operator_actions["scribble_cnn"].trigger()
    label = window.operator_panel.findChild(QLabel, "missingRequirementsLabel")
    assert label.isVisible() and label.text().endswith("needs torch: pip install 'maskwork[dl]'")
    assert not window.operator_panel.preview_button.isEnabled()
    assert "pip install 'maskwork[dl]'" in window.statusBar().currentMessage()


def test_preferences_say_how_to_install_torch(desktop_application, without_torch):
    from maskwork.widgets.preferences_dialog import detect_devices

    assert detect_devices() == "Deep learning needs torch: pip install 'maskwork[dl]'"
