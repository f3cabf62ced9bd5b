"""File > Export...: one dialog for every way a layer can be written."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QWidget,
)

from maskwork.core.layers import Layer


@dataclass(frozen=True)
class ExportChoice:
    """One way to write a layer.

    Attributes
    ----------
    key : str
        What the exporter writes (``"mask"``, ``"labels"``, ...).
    title : str
        Shown in the dialog.
    suffixes : tuple of str
        The file formats it can be written as, the usual one first.
    """

    key: str
    title: str
    suffixes: tuple[str, ...]


class ExportDialog(QDialog):
    """Pick a layer, what to write it as, the format and the file.

    Parameters
    ----------
    layers : sequence of Layer
        The layers that can be exported, listed top first as in the layer panel.
    selected : Layer or None
        The layer chosen at first.
    choices_for : callable
        ``choices_for(layer)`` -> the :class:`ExportChoice` list that layer offers.
    default_path : callable
        ``default_path(layer, choice)`` -> the file proposed (its suffix is replaced by
        the chosen format).
    parent : QWidget, optional
    """

    def __init__(self, layers: Sequence[Layer], selected: Layer | None,
                 choices_for: Callable[[Layer], list[ExportChoice]],
                 default_path: Callable[[Layer, ExportChoice], Path], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export")
        self._layers = list(layers)
        self._choices_for = choices_for
        self._default_path = default_path
        self.layer_combo = QComboBox()
        self.layer_combo.setObjectName("exportLayerCombo")
        for layer in self._layers:
            self.layer_combo.addItem(f"{layer.name}  ({layer.kind.value})")
        self.choice_combo = QComboBox()
        self.choice_combo.setObjectName("exportChoiceCombo")
        self.format_combo = QComboBox()
        self.format_combo.setObjectName("exportFormatCombo")
        self.path_edit = QLineEdit()
        self.path_edit.setObjectName("exportPathEdit")
        self.path_edit.setMinimumWidth(360)
        browse = QPushButton("Browse...")
        browse.clicked.connect(self._browse)
        file_row = QHBoxLayout()
        file_row.addWidget(self.path_edit, 1)
        file_row.addWidget(browse)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.export_button = self.buttons.addButton("Export", QDialogButtonBox.ButtonRole.AcceptRole)
        self.export_button.setDefault(True)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        form = QFormLayout(self)
        form.addRow("Layer", self.layer_combo)
        form.addRow("Write as", self.choice_combo)
        form.addRow("Format", self.format_combo)
        form.addRow("File", file_row)
        form.addRow(self.buttons)
        self.layer_combo.currentIndexChanged.connect(self._fill_choices)
        self.choice_combo.currentIndexChanged.connect(self._fill_formats)
        self.format_combo.currentIndexChanged.connect(self._apply_format)
        self.path_edit.textChanged.connect(self._follow_typed_suffix)
        self.layer_combo.setCurrentIndex(next((i for i, layer in enumerate(self._layers) if layer is selected), 0))
        self._fill_choices()

    @property
    def layer(self) -> Layer | None:
        """The layer to export."""
        index = self.layer_combo.currentIndex()
        return self._layers[index] if 0 <= index < len(self._layers) else None

    @property
    def choice(self) -> ExportChoice | None:
        """What to write the layer as."""
        return self.choice_combo.currentData()

    @property
    def path(self) -> Path:
        """The file to write."""
        return Path(self.path_edit.text().strip())

    def _fill_choices(self) -> None:
        self.choice_combo.blockSignals(True)
        self.choice_combo.clear()
        layer = self.layer
        for choice in self._choices_for(layer) if layer is not None else []:
            self.choice_combo.addItem(choice.title, choice)
        self.choice_combo.blockSignals(False)
        self._fill_formats()

    def _fill_formats(self) -> None:
        choice, layer = self.choice, self.layer
        self.format_combo.blockSignals(True)
        self.format_combo.clear()
        for suffix in choice.suffixes if choice else ():
            self.format_combo.addItem(suffix.lstrip(".").upper(), suffix)
        self.format_combo.blockSignals(False)
        if choice is not None and layer is not None:
            self.path_edit.setText(str(self._default_path(layer, choice)))
            self._apply_format()
        self.export_button.setEnabled(choice is not None and bool(self.path_edit.text().strip()))

    def _apply_format(self) -> None:
        suffix = self.format_combo.currentData()
        text = self.path_edit.text().strip()
        if suffix and text:
            self.path_edit.setText(str(Path(text).with_suffix(suffix)))

    def _follow_typed_suffix(self, text: str) -> None:
        """A typed or browsed file name with a known suffix chooses that format."""
        index = self.format_combo.findData(Path(text.strip()).suffix.lower())
        if index >= 0:
            self.format_combo.blockSignals(True)
            self.format_combo.setCurrentIndex(index)
            self.format_combo.blockSignals(False)
        self.export_button.setEnabled(self.choice is not None and bool(text.strip()))

    def _browse(self) -> None:
        suffix = self.format_combo.currentData() or ""
        path, _ = QFileDialog.getSaveFileName(self, "Export to", self.path_edit.text(),
                                              f"{self.format_combo.currentText()} (*{suffix});;All files (*)")
        if path:
            self.path_edit.setText(path)

