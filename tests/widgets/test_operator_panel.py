"""The operator panel builds its form from the registry and reports typed values."""

from typing import Annotated, Literal

import pytest
import shiboken6
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QComboBox, QDoubleSpinBox, QLabel, QLineEdit, QPushButton, QSpinBox, QWidget

from maskwork import operators
from maskwork.operators import Range, Result, register
from maskwork.operators.registry import _REGISTRY
from maskwork.widgets.operator_panel import EMPTY_TEXT, OperatorPanel


@pytest.fixture
def every_type():
    """A throwaway operator with one parameter of each type."""

    @register("test_every_type", title="Every type", category="Test", outputs=("mask",))
    def every_type_op(
        image,
        *,
        count: Annotated[int, Range(2, 40)] = 7,
        sigma: Annotated[float, Range(0.0, 5.0)] = 1.25,
        tolerance: float = 0.0001,
        invert: bool = True,
        mode: Literal["fast", "exact", "auto"] = "exact",
        levels: Literal[4, 8, 16] = 8,
        note: str = "hello",
        ctx=None,
    ) -> Result:
        """Exercise every parameter type.

        Parameters
        ----------
        image : ndarray
            Input.
        count : int
            How many.
        sigma : float
            How smooth.
        tolerance : float
            How close.
        invert : bool
            Swap fore and background.
        mode : str
            Speed or accuracy.
        levels : int
            Grey levels.
        note : str
            Free text.
        ctx : RunContext, optional
            Unused.
        """
        return Result({})

    yield operators.get("test_every_type")
    _REGISTRY.pop("test_every_type", None)


@pytest.fixture
def needs_missing_package():
    @register(
        "test_missing_requirement", title="Needs a package", category="Test", outputs=("mask",),
        requires=("maskwork_surely_absent_pkg",),
    )
    def missing_op(image, *, ctx=None) -> Result:
        """Needs a package nobody has."""
        return Result({})

    yield operators.get("test_missing_requirement")
    _REGISTRY.pop("test_missing_requirement", None)


@pytest.fixture
def panel(qtbot):
    widget = OperatorPanel()
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def editor(panel, name):
    return panel.findChild(QWidget, f"param_{name}")


def button(panel, name):
    return panel.findChild(QPushButton, name)


def label_for(panel, widget):
    return next(label for label in panel.findChildren(QLabel) if label.buddy() is widget)


def test_empty_state(panel):
    assert panel.operator is None
    assert any(label.text() == EMPTY_TEXT and label.isVisible() for label in panel.findChildren(QLabel))
    assert not button(panel, "previewButton").isEnabled()
    assert not button(panel, "applyButton").isEnabled()
    assert panel.values() == {}


def test_form_from_grabcut(panel):
    spec = operators.get("grabcut")
    panel.set_operator(spec)
    iterations = editor(panel, "iterations")
    assert isinstance(iterations, QSpinBox)
    assert (iterations.minimum(), iterations.maximum(), iterations.value()) == (1, 30, 5)
    margin = editor(panel, "margin")
    assert isinstance(margin, QDoubleSpinBox)
    assert margin.decimals() >= 3 and (margin.minimum(), margin.maximum()) == (0.0, 2.0)
    assert margin.singleStep() == pytest.approx(0.01)
    for param in spec.params:
        widget = editor(panel, param.name)
        assert widget.toolTip() == param.help != ""
        assert label_for(panel, widget).toolTip() == param.help
    assert panel.values() == spec.defaults()
    assert button(panel, "applyButton").isEnabled() and button(panel, "previewButton").isEnabled()
    assert any(label.text() == "GrabCut" and label.font().bold() for label in panel.findChildren(QLabel))
    assert any(label.text() == spec.summary for label in panel.findChildren(QLabel))


def test_switching_operators_leaves_only_the_new_form_in_the_panel(qtbot, panel):
    """Each operator's rows are built apart and shown at once; the previous operator's
    rows leave the panel at once (deleted a turn later), so no search by name finds
    them, not even one for a parameter both operators have."""
    grabcut, watershed = operators.get("grabcut"), operators.get("watershed")
    panel.set_operator(grabcut)
    first = editor(panel, "iterations")
    panel.set_operator(watershed)
    panel.set_operator(grabcut)
    assert panel.findChildren(QWidget, "param_iterations") == [editor(panel, "iterations")]
    assert editor(panel, "iterations") is not first
    assert all(editor(panel, param.name).isVisible() for param in grabcut.params)
    assert panel.values() == grabcut.defaults()
    qtbot.waitUntil(lambda: not shiboken6.isValid(first), timeout=2_000)  # deleted a turn later


def test_every_type_builds_the_right_editor_and_typed_values(panel, every_type):
    panel.set_operator(every_type)
    kinds = {name: type(editor(panel, name)) for name in every_type.defaults()}
    assert kinds == {
        "count": QSpinBox, "sigma": QDoubleSpinBox, "tolerance": QDoubleSpinBox, "invert": QCheckBox,
        "mode": QComboBox, "levels": QComboBox, "note": QLineEdit,
    }
    values = panel.values()
    assert values == every_type.defaults()
    assert [type(values[name]) for name in ("count", "sigma", "tolerance", "invert", "mode", "levels", "note")] == [
        int, float, float, bool, str, int, str,
    ]
    # A small default keeps its digits instead of rounding to zero.
    assert editor(panel, "tolerance").value() == pytest.approx(0.0001)
    # Unbounded numbers get a wide range.
    assert editor(panel, "tolerance").maximum() >= 1e6
    assert [editor(panel, "mode").itemText(i) for i in range(3)] == ["fast", "exact", "auto"]
    assert editor(panel, "note").toolTip() == "Free text."
    assert label_for(panel, editor(panel, "sigma")).text() == "Sigma"


def test_params_changed_fires_with_typed_values(qtbot, panel, every_type):
    panel.set_operator(every_type)
    seen = []
    panel.params_changed.connect(seen.append)
    editor(panel, "count").setValue(12)
    editor(panel, "invert").setChecked(False)
    editor(panel, "levels").setCurrentIndex(2)
    qtbot.keyClicks(editor(panel, "note"), "!")
    assert [change["count"] for change in seen] == [12, 12, 12, 12]
    assert seen[-1] == {**every_type.defaults(), "count": 12, "invert": False, "levels": 16, "note": "hello!"}
    assert len(seen) == 4


def test_values_restore_and_reset(qtbot, panel, every_type):
    panel.set_operator(every_type, {"count": 30, "mode": "fast", "sigma": 99.0, "gone": 1})
    values = panel.values()
    # Known good values are restored; an out-of-range one and unknown names fall back.
    assert values["count"] == 30 and values["mode"] == "fast" and values["sigma"] == 1.25
    assert "gone" not in values
    with qtbot.waitSignal(panel.params_changed) as blocker:
        button(panel, "resetButton").click()
    assert blocker.args == [every_type.defaults()]
    assert panel.values() == every_type.defaults()


def test_missing_requirement_disables_running(panel, needs_missing_package):
    panel.set_operator(needs_missing_package)
    assert not button(panel, "applyButton").isEnabled()
    assert not button(panel, "previewButton").isEnabled()
    message = panel.findChild(QLabel, "missingRequirementsLabel")
    assert message.isVisible()
    assert "pip install maskwork_surely_absent_pkg" in message.text()
    panel.set_operator(operators.get("grabcut"))
    assert button(panel, "applyButton").isEnabled() and not message.isVisible()


def test_buttons_emit_and_cancel_follows_running(qtbot, panel):
    panel.set_operator(operators.get("grabcut"))
    with qtbot.waitSignal(panel.preview_requested):
        qtbot.mouseClick(button(panel, "previewButton"), Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(panel.apply_requested):
        qtbot.mouseClick(button(panel, "applyButton"), Qt.MouseButton.LeftButton)
    cancel = button(panel, "cancelButton")
    assert not cancel.isEnabled()
    panel.set_running(True)
    with qtbot.waitSignal(panel.cancel_requested):
        qtbot.mouseClick(cancel, Qt.MouseButton.LeftButton)
    panel.set_running(False)
    assert not cancel.isEnabled()
    check = panel.findChild(QCheckBox, "autoPreviewCheck")
    with qtbot.waitSignal(panel.auto_preview_changed) as blocker:
        qtbot.mouseClick(check, Qt.MouseButton.LeftButton)
    assert blocker.args == [True] and panel.auto_preview is True
    panel.auto_preview = False
    assert not check.isChecked()


def test_rows_follow_the_remembered_choice_and_hidden_values_stay(panel):
    spec = operators.get("inpaint")
    panel.set_operator(spec, {"method": "telea", "patch_size": 15})

    def shown() -> set[str]:
        return {param.name for param in spec.params if editor(panel, param.name).isVisible()}

    assert shown() == {"method", "radius", "draft"}
    assert not label_for(panel, editor(panel, "patch_size")).isVisible()
    assert panel.values()["patch_size"] == 15  # hidden, not forgotten
    button(panel, "resetButton").click()
    assert shown() == {"method", "patch_size", "sharp", "context", "draft"}
    assert panel.values() == spec.defaults()


def test_a_parameters_display_gives_its_label_unit_special_value_and_choice_words(panel):
    from maskwork.operators import Display

    @register("test_display", title="Display", category="Test", outputs=("mask",))
    def display_op(
        image,
        *,
        h: Annotated[float, Range(0.5, 50.0), Display("Strength (h)", "grey levels")] = 10.0,
        context: Annotated[int, Range(0, 400), Display(unit="px", special="automatic")] = 0,
        method: Annotated[Literal["nl_means", "tv_chambolle"], Display(choices=(("nl_means", "non-local means"),))]
        = "nl_means",
        ctx=None,
    ) -> Result:
        """Show parameters in words.

        Parameters
        ----------
        image : ndarray
            Input.
        h : float
            Strength.
        context : int
            Margin; 0 chooses it.
        method : str
            Which.
        ctx : RunContext, optional
            Unused.
        """
        return Result({})

    try:
        panel.set_operator(operators.get("test_display"))
        assert label_for(panel, editor(panel, "h")).text() == "Strength (h)"
        assert editor(panel, "h").text() == "10.000 grey levels"
        assert label_for(panel, editor(panel, "context")).text() == "Context"
        assert editor(panel, "context").text() == "automatic"
        editor(panel, "context").setValue(40)
        assert editor(panel, "context").text() == "40 px" and panel.values()["context"] == 40
        combo = editor(panel, "method")
        assert [combo.itemText(i) for i in range(combo.count())] == ["non-local means", "tv chambolle"]
        combo.setCurrentIndex(1)
        assert panel.values()["method"] == "tv_chambolle", "the value keeps its name for the command line"
    finally:
        _REGISTRY.pop("test_display", None)


def test_words_for_a_choice_an_operator_does_not_have_are_refused():
    from maskwork.operators import Display

    with pytest.raises(ValueError, match=r"words for \['median'\]"):
        @register("test_bad_display", title="Bad", category="Test", outputs=("mask",))
        def bad_op(image, *, method: Annotated[Literal["a", "b"], Display(choices=(("median", "x"),))] = "a",
                   ctx=None) -> Result:
            """Bad.

            Parameters
            ----------
            image : ndarray
                Input.
            method : str
                Which.
            ctx : RunContext, optional
                Unused.
            """
            return Result({})
    _REGISTRY.pop("test_bad_display", None)
