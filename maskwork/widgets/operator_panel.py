"""Parameter form of one operator, generated from its registry entry, with Preview/Apply/Cancel.

The panel knows nothing about running operators: it shows the parameters, reports their
values and says what a person asked for through signals. The window's preview controller
decides when and where the operator runs.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from maskwork.core.layers import Layer
from maskwork.operators.context import InputError
from maskwork.operators.registry import OperatorSpec, ParamSpec
from maskwork.widgets.layer_choice import fill_layer_combo
from maskwork.widgets.scrolling import vertical_scroll_area

EMPTY_TEXT = "Choose an operator from the Segmentation menu (or another operator menu)"
NO_BREAK = "\u00a0"

class OperatorPanel(QWidget):
    """Form for one operator's parameters plus Preview, Apply, Cancel and Auto-preview.

    Parameters
    ----------
    parent : QWidget, optional
        Qt parent.

    Notes
    -----
    The buttons have object names ``previewButton``, ``applyButton``, ``cancelButton``,
    ``resetButton`` and the check box ``autoPreviewCheck``.
    """

    params_changed = Signal(dict)
    """Emitted with :meth:`values` after a person changed any parameter."""
    preview_requested = Signal()
    """Preview was clicked."""
    apply_requested = Signal()
    """Apply was clicked."""
    cancel_requested = Signal()
    """Cancel was clicked while a run was in progress."""
    auto_preview_changed = Signal(bool)
    sources_changed = Signal(dict)
    """An operator of two images got another image layer for an input (input name -> layer)."""
    """The Auto-preview check box was toggled."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._spec: OperatorSpec | None = None
        self._editors: dict[str, tuple[ParamSpec, QWidget]] = {}
        #: Input name -> the combo choosing its image layer, for operators of two images.
        self.source_combos: dict[str, QComboBox] = {}
        self._source_layers: list[Layer] = []
        # True while the panel itself fills the editors, which is no edit to report.
        self._loading = False

        self._empty_label = QLabel(EMPTY_TEXT, self)
        self._empty_label.setWordWrap(True)
        self._empty_label.setAlignment(Qt.AlignmentFlag.AlignCenter)

        self._title_label = QLabel(self)
        font = self._title_label.font()
        font.setBold(True)
        font.setPointSizeF(font.pointSizeF() * 1.15)
        self._title_label.setFont(font)
        self._summary_label = QLabel(self)
        self._summary_label.setWordWrap(True)
        self._missing_label = QLabel(self)
        self._missing_label.setWordWrap(True)
        self._missing_label.setObjectName("missingRequirementsLabel")
        self._missing_label.setStyleSheet("color: #c0392b; font-weight: bold;")
        self._missing_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.scores_label = QLabel(self)
        self.scores_label.setObjectName("scoresLabel")
        self.scores_label.setWordWrap(True)
        self.scores_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.scores_label.setToolTip("Numbers the last preview or apply reported (thresholds, noise estimate, ...)")

        self.suggestion_label = QLabel(self)
        self.suggestion_label.setObjectName("suggestionLabel")
        self.suggestion_label.setWordWrap(True)
        self.suggestion_button = QPushButton("Use suggested values", self)
        self.suggestion_button.setObjectName("suggestionButton")
        self.suggestion_button.clicked.connect(self._use_suggestion)
        self._suggested: dict = {}

        self._form = QFormLayout()
        self._form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)

        self.preview_button = QPushButton("Preview", self)
        self.preview_button.setObjectName("previewButton")
        self.preview_button.setToolTip("Run on the current seeds and show the result without committing it")
        self.apply_button = QPushButton("Apply", self)
        self.apply_button.setObjectName("applyButton")
        self.apply_button.setToolTip("Run at full resolution and add the result as one undoable step")
        self.apply_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setObjectName("cancelButton")
        self.cancel_button.setToolTip("Stop the running operator")
        self.cancel_button.setEnabled(False)
        self.reset_button = QPushButton("Reset", self)
        self.reset_button.setObjectName("resetButton")
        self.reset_button.setToolTip("Restore every parameter to its default")
        self.auto_preview_check = QCheckBox("Auto-preview", self)
        self.auto_preview_check.setObjectName("autoPreviewCheck")
        self.auto_preview_check.setToolTip("Preview again whenever a parameter or a seed changes")

        self.preview_button.clicked.connect(self.preview_requested)
        self.apply_button.clicked.connect(self.apply_requested)
        self.cancel_button.clicked.connect(self.cancel_requested)
        self.reset_button.clicked.connect(self.reset_defaults)
        self.auto_preview_check.toggled.connect(self.auto_preview_changed)

        self._operator_box = QWidget(self)
        box = QVBoxLayout(self._operator_box)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self._title_label)
        box.addWidget(self._summary_label)
        box.addWidget(self._missing_label)
        box.addWidget(self.suggestion_label)
        box.addWidget(self.suggestion_button)
        box.addLayout(self._form)
        options = QHBoxLayout()
        options.addWidget(self.auto_preview_check)
        options.addStretch(1)
        options.addWidget(self.reset_button)
        box.addLayout(options)
        box.addStretch(1)  # the form stays at the top of the scrolling area
        self._scroll = vertical_scroll_area(self._operator_box, self)
        self._scroll.setObjectName("operatorFormScroll")
        # The operator's views (a live metric plot), the run buttons and the last scores
        # stay in view below the scrolling form.
        self._run_box = QWidget(self)
        run = QVBoxLayout(self._run_box)
        run.setContentsMargins(0, 0, 0, 0)
        self._views_slot = QVBoxLayout()
        self._views_slot.setContentsMargins(0, 0, 0, 0)
        run.addLayout(self._views_slot)
        buttons = QHBoxLayout()
        buttons.addWidget(self.preview_button)
        buttons.addWidget(self.apply_button)
        buttons.addWidget(self.cancel_button)
        run.addLayout(buttons)
        run.addWidget(self.scores_label)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self._empty_label)
        layout.addWidget(self._scroll, 1)
        layout.addWidget(self._run_box)
        layout.addStretch(0)  # keeps the empty state's text at the top; the form takes the room

        self.set_operator(None)

    # -- public API -------------------------------------------------------------------
    @property
    def operator(self) -> OperatorSpec | None:
        """The operator shown, or None."""
        return self._spec

    @property
    def auto_preview(self) -> bool:
        """Whether previews should follow every change."""
        return self.auto_preview_check.isChecked()

    @auto_preview.setter
    def auto_preview(self, enabled: bool) -> None:
        self.auto_preview_check.setChecked(bool(enabled))

    def set_operator(self, spec: OperatorSpec | None, values: dict | None = None) -> None:
        """Show ``spec``'s parameters, or the empty state when it is None.

        Parameters
        ----------
        spec : OperatorSpec or None
            The operator to show.
        values : dict, optional
            Parameter name -> value overriding the defaults (remembered settings). Unknown
            names and values the parameter no longer accepts fall back to the default.
        """
        self._spec = spec
        # Rows built in a hidden box are laid out and shown once, not one by one: choosing
        # an operator of 15 parameters took the UI thread 9 ms instead of 11-12.
        self._operator_box.hide()
        with self._silent():
            while self._form.rowCount():
                self._form.removeRow(0)
            self._editors.clear()
            self.source_combos = {}
            if spec is not None and "image2" in spec.required_inputs:
                self._add_source_rows(spec)
            if spec is not None:
                for param in spec.params:
                    self._add_row(param, self._initial_value(param, values or {}))
        self._show_applicable_rows()
        self._operator_box.show()
        self._empty_label.setVisible(spec is None)
        self._scroll.setVisible(spec is not None)
        self._run_box.setVisible(spec is not None)
        missing = spec.missing_requirements_message() if spec is not None else ""
        self._title_label.setText(spec.title if spec is not None else "")
        self._summary_label.setText(spec.summary if spec is not None else "")
        self._summary_label.setVisible(bool(spec is not None and spec.summary))
        self._missing_label.setText(missing)
        self._missing_label.setVisible(bool(missing))
        self.show_scores({})
        self.set_suggestion("", {})
        runnable = spec is not None and not missing
        self.preview_button.setEnabled(runnable)
        self.apply_button.setEnabled(runnable)
        self.reset_button.setEnabled(bool(spec is not None and spec.params))

    def set_source_layers(self, layers: Sequence[Layer]) -> None:
        """The image layers an operator of two images may take, bottom first."""
        self._source_layers = list(layers)
        self._fill_sources()

    def chosen_sources(self) -> dict[str, Layer]:
        """Input name -> the image layer chosen for it (empty for one-image operators)."""
        return {name: combo.currentData() for name, combo in self.source_combos.items() if combo.currentData() is not None}

    def _add_source_rows(self, spec: OperatorSpec) -> None:
        registration = spec.category.split("/")[0] == "Registration"
        titles = {"image": "Fixed image" if registration else "Image", "image2": "Moving image" if registration else "Second image"}
        tips = {"image": "The image the other is aligned to" if registration else "The image the operator works on",
                "image2": "The image moved onto the fixed one" if registration else "The operator's second image"}
        for name in ("image", "image2"):
            combo = QComboBox(self._operator_box)
            combo.setObjectName(f"{name}SourceCombo")
            combo.setToolTip(tips[name])
            combo.currentIndexChanged.connect(self._on_source_chosen)
            self._form.addRow(titles[name], combo)
            self.source_combos[name] = combo
        self._fill_sources()

    def _fill_sources(self) -> None:
        """List the image layers: the first input keeps its choice (else the bottom image),
        the second its own unless that is now the first's (else the topmost other)."""
        if not self.source_combos:
            return
        layers = self._source_layers
        first = fill_layer_combo(self.source_combos["image"], layers)
        fill_layer_combo(self.source_combos["image2"], layers, lambda layer: layer is not first, len(layers) - 1)

    def _on_source_chosen(self, *_: Any) -> None:
        chosen = self.sender()
        other = next(combo for combo in self.source_combos.values() if combo is not chosen)
        if other.currentData() is chosen.currentData():
            # The same image twice aligns nothing: the other input takes another image.
            fill_layer_combo(other, self._source_layers, lambda layer: layer is not chosen.currentData(),
                             len(self._source_layers) - 1)
        self.sources_changed.emit(self.chosen_sources())

    def values(self) -> dict[str, Any]:
        """Parameter name -> current value, typed as the registry declares."""
        return {name: self._editor_value(param, editor) for name, (param, editor) in self._editors.items()}

    def reset_defaults(self) -> None:
        """Put every parameter back to its default (one ``params_changed`` if anything moved)."""
        before = self.values()
        with self._silent():
            for param, editor in self._editors.values():
                self._set_editor_value(param, editor, param.default)
        self._show_applicable_rows()
        after = self.values()
        if after != before:
            self.params_changed.emit(after)

    def set_views(self, widgets: Sequence[QWidget]) -> None:
        """Show ``widgets`` under the form, in order: the views the operator declares
        (a histogram for thresholds, a live plot, an info button); none hides them."""
        while self._views_slot.count():
            item = self._views_slot.takeAt(0)
            if item.widget() is not None:
                item.widget().setParent(None)
        for widget in widgets:
            self._views_slot.addWidget(widget)
            widget.show()  # a child added to a visible widget stays hidden until shown

    def set_suggestion(self, text: str, values: dict) -> None:
        """Offer parameter values (e.g. from a noise estimate) with a button to use them."""
        self._suggested = {name: value for name, value in values.items() if name in self._editors}
        self.suggestion_label.setText(text)
        self.suggestion_label.setVisible(bool(text))
        self.suggestion_button.setVisible(bool(self._suggested))

    def _use_suggestion(self) -> None:
        values = {**self.values(), **self._suggested}
        text, suggested = self.suggestion_label.text(), self._suggested
        self.set_operator(self._spec, values)
        self.set_suggestion(text, suggested)
        self.params_changed.emit(self.values())

    def show_scores(self, scores: dict) -> None:
        """Show the numbers the last result reported, e.g. ``threshold 107``."""
        # No-break spaces inside a score: a narrow panel wraps between scores, never
        # between a name and its number ("ty" at a line's end, "-15" under it).
        parts = [f"{name.replace('_', NO_BREAK)}{NO_BREAK}{_format_score(value)}" for name, value in scores.items()]
        # Never hidden, only emptied: showing the hidden label at the first result cost the
        # UI thread 2-4 ms, in the same turn as drawing that result.
        self.scores_label.setText("   ".join(parts))

    def set_running(self, running: bool) -> None:
        """Enable Cancel while an operator runs."""
        self.cancel_button.setEnabled(bool(running))

    # -- form building ----------------------------------------------------------------
    @contextmanager
    def _silent(self) -> Iterator[None]:
        previous, self._loading = self._loading, True
        try:
            yield
        finally:
            self._loading = previous

    @staticmethod
    def _initial_value(param: ParamSpec, values: dict) -> Any:
        if param.name not in values:
            return param.default
        try:
            return param.coerce(values[param.name])
        except InputError:
            return param.default

    def _add_row(self, param: ParamSpec, value: Any) -> None:
        editor = self._make_editor(param)
        self._set_editor_value(param, editor, value)
        label = QLabel(param.label, self._operator_box)
        label.setBuddy(editor)
        if param.help:
            label.setToolTip(param.help)
            editor.setToolTip(param.help)
        self._form.addRow(label, editor)
        self._editors[param.name] = (param, editor)

    def _make_editor(self, param: ParamSpec) -> QWidget:
        parent = self._operator_box
        if param.type in ("int", "float"):
            if param.type == "int":
                editor = QSpinBox(parent)
            else:
                editor = QDoubleSpinBox(parent)
                editor.setDecimals(param.editor_decimals())
                editor.setSingleStep(param.editor_step())
            editor.setRange(*param.editor_bounds())
            if param.display.unit:
                editor.setSuffix(f" {param.display.unit}")
            if param.display.special:
                editor.setSpecialValueText(param.display.special)  # shown at the lowest value
            editor.valueChanged.connect(self._on_edited)
        elif param.type == "bool":
            editor = QCheckBox(parent)
            editor.toggled.connect(self._on_edited)
        elif param.type == "choice":
            editor = QComboBox(parent)
            editor.addItems([param.choice_label(choice) for choice in param.choices])
            editor.currentIndexChanged.connect(self._on_edited)
        elif param.type == "path":
            editor = PathEdit(param.file_filter or "", parent)
            editor.line_edit.setObjectName(f"param_{param.name}_text")
            editor.line_edit.textChanged.connect(self._on_edited)
        else:
            editor = QLineEdit(parent)
            editor.textChanged.connect(self._on_edited)
        editor.setObjectName(f"param_{param.name}")
        return editor

    @staticmethod
    def _set_editor_value(param: ParamSpec, editor: QWidget, value: Any) -> None:
        if param.type in ("int", "float"):
            editor.setValue(value)
        elif param.type == "bool":
            editor.setChecked(bool(value))
        elif param.type == "choice":
            editor.setCurrentIndex(param.choices.index(value))
        elif param.type == "path":
            editor.line_edit.setText(str(value))
        else:
            editor.setText(str(value))

    @staticmethod
    def _editor_value(param: ParamSpec, editor: QWidget) -> Any:
        if param.type == "int":
            return int(editor.value())
        if param.type == "float":
            return float(editor.value())
        if param.type == "bool":
            return editor.isChecked()
        if param.type == "choice":
            # The index maps back to the declared choice, which keeps its own type.
            return param.choices[editor.currentIndex()]
        if param.type == "path":
            return editor.line_edit.text()
        return editor.text()

    def _show_applicable_rows(self) -> None:
        """Show the rows of the parameters that matter for the choices made (a method's
        own settings), hide the others; hidden editors keep their values."""
        values = self.values()
        for param, editor in self._editors.values():
            self._form.setRowVisible(editor, param.applies(values))

    def _on_edited(self, *_: Any) -> None:
        if not self._loading:
            self._show_applicable_rows()
            self.params_changed.emit(self.values())


class PathEdit(QWidget):
    """A file path as text plus a Browse button that opens a file dialog.

    Parameters
    ----------
    file_filter : str
        Qt name filter for the dialog, e.g. ``"Models (*.pt *.onnx)"``.
    parent : QWidget, optional
        Qt parent.
    """

    def __init__(self, file_filter: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._file_filter = file_filter
        self.line_edit = QLineEdit(self)
        self.line_edit.setPlaceholderText("no file chosen")
        self.browse_button = QPushButton("Browse…", self)
        self.browse_button.clicked.connect(self._browse)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.line_edit, 1)
        layout.addWidget(self.browse_button)

    def setToolTip(self, text: str) -> None:  # noqa: N802 - Qt naming
        """Show ``text`` on the text field as well."""
        super().setToolTip(text)
        self.line_edit.setToolTip(text)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a file", self.line_edit.text(), self._file_filter)
        if path:
            self.line_edit.setText(path)


def _format_score(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
