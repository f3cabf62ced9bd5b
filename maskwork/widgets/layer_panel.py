"""The layer stack panel: a Qt adapter over :class:`~maskwork.core.document.Document`.

The panel owns no state. Every change a person makes goes through a Document method, so
it lands in history exactly once; every change from anywhere (undo, an operator, the
canvas) reaches the panel through the layer stack's and the layers' psygnal signals, and
only the affected row is updated.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import numpy as np
from psygnal import Signal as EventSignal
from PySide6.QtCore import QModelIndex, QPoint, QSize, Qt, Signal
from PySide6.QtGui import QAction, QColor, QDropEvent, QFontMetrics, QKeySequence, QPainter
from PySide6.QtWidgets import (
    QAbstractItemView,
    QApplication,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QSizePolicy,
    QSlider,
    QStyle,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from maskwork.core.document import Document
from maskwork.core.colors import MASK_COLORS, mask_color_name
from maskwork.core.layers import BLEND_MODES, Layer, LayerKind, auto_contrast_limits
from maskwork.widgets.messages import replace_message_box

#: Colour maps offered for single-channel image layers (pyqtgraph knows them all).
COLORMAPS = ("gray", "viridis", "magma", "inferno", "plasma")

#: Item data role holding the layer kind shown as a tag at the right of each row.
KIND_ROLE = Qt.ItemDataRole.UserRole + 1

# Contrast spin boxes must hold any float image's range; the layer decides the real one.
_CONTRAST_BOUND = 1e12
#: Least width (pixels) of a contrast box; its text scrolls when a value is longer.
CONTRAST_BOX_WIDTH = 64
#: Most decimals the float contrast boxes show (a range of 1e-12 still moves).
MAX_CONTRAST_DECIMALS = 15


class _KindTagDelegate(QStyledItemDelegate):
    """Draws the row as usual, with the layer kind as a small grey tag on the right.

    The tag is painted rather than put into the item text so that editing the name
    edits the name only.
    """

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        opt = QStyleOptionViewItem(option)
        self.initStyleOption(opt, index)
        widget = opt.widget
        style = widget.style() if widget is not None else QApplication.style()
        tag = index.data(KIND_ROLE) or ""
        font = opt.font
        font.setPointSizeF(max(6.0, font.pointSizeF() * 0.85))
        tag_width = QFontMetrics(font).horizontalAdvance(tag) + 8
        # Elide the name so it never runs under the tag.
        text_rect = style.subElementRect(QStyle.SubElement.SE_ItemViewItemText, opt, widget)
        opt.text = opt.fontMetrics.elidedText(opt.text, Qt.TextElideMode.ElideRight, max(0, text_rect.width() - tag_width))
        style.drawControl(QStyle.ControlElement.CE_ItemViewItem, opt, painter, widget)
        painter.save()
        painter.setFont(font)
        selected = bool(opt.state & QStyle.StateFlag.State_Selected)
        color = opt.palette.highlightedText().color() if selected else QColor(128, 128, 128)
        painter.setPen(color)
        painter.drawText(
            opt.rect.adjusted(0, 0, -4, 0),
            int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter),
            tag,
        )
        painter.restore()

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:  # noqa: N802
        # No width of its own: a row spans the list, however long the name (which is
        # elided above). Wanting the name's width, rows scrolled sideways, past their tags.
        hint = super().sizeHint(option, index)
        return QSize(0, hint.height())


class _LayerList(QListWidget):
    """A list whose internal drag and drop only reports where a row was dropped.

    The view never moves rows itself: the panel turns the drop into a Document move, and
    the stack's ``moved`` signal moves the row, exactly as it does for undo.
    """

    row_dropped = Signal(int, int)
    """(source row, insertion row): the row and the gap (0 = above the first row) it was dropped in."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setDragDropMode(QAbstractItemView.DragDropMode.InternalMove)
        self.setDefaultDropAction(Qt.DropAction.MoveAction)
        self.setDropIndicatorShown(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setEditTriggers(
            QAbstractItemView.EditTrigger.DoubleClicked | QAbstractItemView.EditTrigger.EditKeyPressed
        )

    def insertion_row(self, y: int) -> int:
        """The gap between rows nearest to viewport coordinate ``y``."""
        index = self.indexAt(QPoint(self.viewport().width() // 2, y))
        if not index.isValid():
            # Rows fill the list from the top, so a miss is the empty space below them.
            return self.count()
        rect = self.visualRect(index)
        return index.row() + (1 if y >= rect.center().y() else 0)

    def dropEvent(self, event: QDropEvent) -> None:
        # InternalMove makes Qt refuse drags from elsewhere before they get here, and in
        # single selection the dragged row is the current one.
        source = self.currentRow()
        insert = self.insertion_row(event.position().toPoint().y())
        # Ignore keeps QDrag from deleting the source row after the drop.
        event.setDropAction(Qt.DropAction.IgnoreAction)
        event.accept()
        if source >= 0:
            self.row_dropped.emit(source, insert)


class LayerPanel(QWidget):
    """List of layers (top first) with visibility, names, order and display settings.

    Parameters
    ----------
    document : Document
        The document whose layers are shown and edited.
    parent : QWidget, optional
        Qt parent.

    Attributes
    ----------
    list_widget : QListWidget
        One row per layer, top layer first; checkbox = visibility, text = name.
    opacity_slider : QSlider
        0-100 opacity of the selected layer; one drag is one undo step.
    blend_combo : QComboBox
        How the selected layer combines with those below (core.layers.BLEND_MODES).
    colormap_combo : QComboBox
        Colour map of a selected single-channel image layer, or a mask's colour.
    contrast_low, contrast_high : QDoubleSpinBox
        Contrast limits of a selected image layer.
    auto_contrast_button : QPushButton
        Sets the contrast limits from percentiles of the data.
    action_new_markers, action_new_mask : QAction
        Add an empty markers or mask layer the size of the image.
    action_duplicate, action_delete : QAction
        Duplicate or delete the selected layer.
    action_to_labels, action_to_mask : QAction
        Convert a mask to connected-component labels, or labels to a mask.
    action_move_up, action_move_down : QAction
        Move the selected layer one place up (towards the top) or down.
    """

    def __init__(self, document: Document, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._document = document
        # Layers in row order (top first): the one place rows map back to layers.
        self._rows: list[Layer] = []
        # True while the panel writes model state into widgets, whose change signals
        # must then not be taken for a person's edit.
        self._syncing = False
        # (layer, opacity before the drag) while the opacity slider is held.
        self._drag: tuple[Layer, float] | None = None
        self._refusal_box: QMessageBox | None = None

        self.list_widget = _LayerList(self)
        self.list_widget.setItemDelegate(_KindTagDelegate(self.list_widget))
        self.list_widget.setToolTip("Drag to reorder; double-click or F2 to rename; the box shows or hides")

        self._make_actions()
        self._make_controls()
        self._layout()

        self.list_widget.currentRowChanged.connect(self._on_current_row_changed)
        self.list_widget.itemChanged.connect(self._on_item_changed)
        self.list_widget.row_dropped.connect(self._on_row_dropped)

        stack = document.layers
        self._connections: list[tuple[EventSignal, Callable]] = [
            (stack.inserted, self._on_inserted),
            (stack.removed, self._on_removed),
            (stack.moved, self._on_moved),
            (stack.selection_changed, self._on_selection_changed),
        ]
        for signal, slot in self._connections:
            signal.connect(slot)
        for index, layer in enumerate(stack):
            self._on_inserted(index, layer)
        # psygnal does not know when the C++ widget dies; without this a later layer
        # event would call into a deleted widget.
        connections, layer_slot = self._connections, self._on_layer_property
        self.destroyed.connect(lambda *_: _disconnect_all(document, connections, layer_slot))
        self._on_selection_changed(stack.selected)

    # -- construction -----------------------------------------------------------------
    def _make_actions(self) -> None:
        def action(text: str, icon_text: str, tip: str, slot: Callable[[], None]) -> QAction:
            act = QAction(text, self)
            act.setIconText(icon_text)
            act.setToolTip(tip)
            act.setStatusTip(tip)
            act.triggered.connect(slot)
            return act

        doc = self._document
        self.action_new_markers = action(
            "New markers layer", "New markers", "Add an empty markers (scribbles) layer the size of the image",
            lambda: self._guarded(doc.new_layer, LayerKind.MARKERS),
        )
        self.action_new_mask = action(
            "New mask layer", "New mask", "Add an empty mask layer the size of the image",
            lambda: self._guarded(doc.new_layer, LayerKind.MASK),
        )
        self.action_duplicate = action(
            "Duplicate layer", "Duplicate", "Add a copy of the selected layer just above it",
            lambda: self._guarded(doc.duplicate_layer, self._selected()),
        )
        self.action_delete = action(
            "Delete layer", "Delete", "Delete the selected layer (undoable)",
            lambda: self._guarded(doc.remove_layer, self._selected()),
        )
        # The list has focus when Delete is meant for a layer; elsewhere (the canvas)
        # the key must stay free.
        self.action_delete.setShortcut(QKeySequence(QKeySequence.StandardKey.Delete))
        self.action_delete.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.list_widget.addAction(self.action_delete)
        self.action_to_labels = action(
            "Convert mask to labels", "To labels", "Replace the mask by its connected components, one label each",
            lambda: self._guarded(doc.convert_layer, self._selected(), LayerKind.LABELS),
        )
        self.action_to_mask = action(
            "Convert labels to mask", "To mask", "Replace the labels by a mask of every labelled pixel",
            lambda: self._guarded(doc.convert_layer, self._selected(), LayerKind.MASK),
        )
        self.action_move_up = action(
            "Move layer up", "Up", "Move the selected layer one place up (drawn above the next one)",
            lambda: self._move_selected(+1),
        )
        self.action_move_down = action(
            "Move layer down", "Down", "Move the selected layer one place down",
            lambda: self._move_selected(-1),
        )

    def _make_controls(self) -> None:
        self.opacity_slider = QSlider(Qt.Orientation.Horizontal, self)
        self.opacity_slider.setRange(0, 100)
        self.opacity_slider.setToolTip("Opacity of the selected layer")
        self._opacity_label = QLabel("100 %", self)
        self._opacity_label.setMinimumWidth(self._opacity_label.fontMetrics().horizontalAdvance("100 %") + 4)
        self.opacity_slider.sliderPressed.connect(self._on_slider_pressed)
        self.opacity_slider.valueChanged.connect(self._on_opacity_value)
        self.opacity_slider.sliderReleased.connect(self._on_slider_released)

        self.blend_combo = QComboBox(self)
        self.blend_combo.addItems(BLEND_MODES)
        self.blend_combo.setToolTip(
            "How the selected layer's colours combine with the layers below: over them, added, multiplied, "
            "screened, their difference, the lighter or the darker"
        )
        self.blend_combo.currentTextChanged.connect(self._on_blend_chosen)

        self.colormap_combo = QComboBox(self)
        self.colormap_combo.addItems(COLORMAPS)
        self.colormap_combo.setToolTip("Colour map of a single-channel image layer, or the colour of a mask")
        self.colormap_combo.currentTextChanged.connect(self._on_colormap_chosen)

        self.contrast_low = QDoubleSpinBox(self)
        self.contrast_high = QDoubleSpinBox(self)
        for spin, tip in (
            (self.contrast_low, "Data value drawn black (lowest contrast limit)"),
            (self.contrast_high, "Data value drawn white (highest contrast limit)"),
        ):
            spin.setRange(-_CONTRAST_BOUND, _CONTRAST_BOUND)
            # Qt sizes a spin box for its range's longest number (-1e12 with decimals): the
            # Layers dock then took 464 of a 1280 px window, and grew as decimals changed.
            spin.setMinimumWidth(CONTRAST_BOX_WIDTH)
            # Typing commits on Enter or focus-out only: one undo step per edit, not per digit.
            spin.setKeyboardTracking(False)
            spin.setToolTip(tip)
            spin.valueChanged.connect(self._on_contrast_edited)
        self.auto_contrast_button = QPushButton("Auto", self)
        self.auto_contrast_button.setToolTip("Contrast limits from the 0.5 and 99.5 percentiles of the data")
        self.auto_contrast_button.clicked.connect(self._on_auto_contrast)

    def _layout(self) -> None:
        buttons = QGridLayout()
        buttons.setSpacing(2)
        order = (
            (self.action_new_markers, self.action_new_mask, self.action_duplicate, self.action_delete),
            (self.action_to_labels, self.action_to_mask, self.action_move_up, self.action_move_down),
        )
        for row, actions in enumerate(order):
            for col, act in enumerate(actions):
                button = QToolButton(self)
                button.setDefaultAction(act)
                button.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
                button.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
                buttons.addWidget(button, row, col)

        opacity = QHBoxLayout()
        opacity.addWidget(self.opacity_slider, 1)
        opacity.addWidget(self._opacity_label)
        contrast = QHBoxLayout()
        contrast.addWidget(self.contrast_low, 1)
        contrast.addWidget(self.contrast_high, 1)
        contrast.addWidget(self.auto_contrast_button)
        form = QFormLayout()
        form.addRow("Opacity", opacity)
        form.addRow("Blend", self.blend_combo)
        form.addRow("Colormap", self.colormap_combo)
        form.addRow("Contrast", contrast)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.list_widget, 1)
        layout.addLayout(buttons)
        layout.addLayout(form)

    # -- helpers ----------------------------------------------------------------------
    @contextmanager
    def _quiet(self) -> Iterator[None]:
        previous, self._syncing = self._syncing, True
        try:
            yield
        finally:
            self._syncing = previous

    def _guarded(self, func: Callable, *args) -> object:
        """Call a Document method; a refusal becomes a message box, never an exception in a slot."""
        try:
            return func(*args)
        except ValueError as error:
            self._show_refusal(str(error))
            return None

    def _show_refusal(self, message: str) -> None:
        """A warning that returns at once, in place of the panel's unanswered one: a
        blocking ``QMessageBox.warning`` waited inside the action's slot."""
        self._refusal_box = replace_message_box(self, self._refusal_box, QMessageBox.Icon.Warning, "Layers", message)

    def _selected(self) -> Layer | None:
        return self._document.layers.selected

    def _row_of(self, layer: Layer | None) -> int:
        for row, item in enumerate(self._rows):
            if item is layer:
                return row
        return -1

    def _stack_index(self, row: int) -> int:
        """Stack index (bottom first) of a row (top first); the map is its own inverse."""
        return len(self._rows) - 1 - row

    def _fill_item(self, item: QListWidgetItem, layer: Layer) -> None:
        with self._quiet():
            item.setText(layer.name)
            item.setCheckState(Qt.CheckState.Checked if layer.visible else Qt.CheckState.Unchecked)
            item.setData(KIND_ROLE, layer.kind.value)
            shape = layer.data.shape
            channels = f" x {shape[2]}" if len(shape) == 3 else ""
            item.setToolTip(
                f"{layer.name}\n{layer.kind.value} layer, {shape[0]} x {shape[1]}{channels}, {layer.data.dtype}"
            )

    # -- stack events -----------------------------------------------------------------
    def _on_inserted(self, index: int, layer: Layer) -> None:
        row = len(self._rows) - index
        item = QListWidgetItem()
        item.setFlags(
            Qt.ItemFlag.ItemIsEnabled
            | Qt.ItemFlag.ItemIsSelectable
            | Qt.ItemFlag.ItemIsUserCheckable
            | Qt.ItemFlag.ItemIsEditable
            | Qt.ItemFlag.ItemIsDragEnabled
        )
        self._fill_item(item, layer)
        with self._quiet():
            self._rows.insert(row, layer)
            self.list_widget.insertItem(row, item)
        layer.property_changed.connect(self._on_layer_property)
        self._sync_selection()
        self._update_actions()

    def _on_removed(self, index: int, layer: Layer) -> None:
        row = self._row_of(layer)
        layer.property_changed.disconnect(self._on_layer_property)
        if self._drag is not None and self._drag[0] is layer:
            self._drag = None
        with self._quiet():
            del self._rows[row]
            self.list_widget.takeItem(row)
        self._sync_selection()
        self._update_actions()

    def _on_moved(self, source: int, destination: int) -> None:
        source_row, destination_row = self._stack_index(source), self._stack_index(destination)
        with self._quiet():
            self._rows.insert(destination_row, self._rows.pop(source_row))
            self.list_widget.insertItem(destination_row, self.list_widget.takeItem(source_row))
        self._sync_selection()
        self._update_actions()

    def _on_selection_changed(self, layer: Layer | None) -> None:
        self._sync_selection()
        self._update_controls()
        self._update_actions()

    def _on_layer_property(self, attr: str) -> None:
        layer = EventSignal.sender()
        row = self._row_of(layer)
        if row < 0:
            return
        self._fill_item(self.list_widget.item(row), layer)
        if layer is self._selected():
            self._update_controls()

    def _sync_selection(self) -> None:
        row = self._row_of(self._selected())
        with self._quiet():
            if row >= 0:
                self.list_widget.setCurrentRow(row)
            else:
                self.list_widget.setCurrentRow(-1)
                self.list_widget.clearSelection()

    def _update_actions(self) -> None:
        layer = self._selected()
        has_image = self._document.shape is not None
        # The transient preview belongs to the preview controller, outside history.
        editable = layer is not None and layer.kind is not LayerKind.PREVIEW
        index = self._document.layers.index(layer) if layer is not None else -1
        self.action_new_markers.setEnabled(has_image)
        self.action_new_mask.setEnabled(has_image)
        self.action_duplicate.setEnabled(editable)
        self.action_delete.setEnabled(editable)
        self.action_to_labels.setEnabled(editable and layer.kind is LayerKind.MASK)
        self.action_to_mask.setEnabled(editable and layer.kind is LayerKind.LABELS)
        self.action_move_up.setEnabled(editable and index < len(self._document.layers) - 1)
        self.action_move_down.setEnabled(editable and index > 0)

    def _update_controls(self) -> None:
        layer = self._selected()
        is_image = layer is not None and layer.kind is LayerKind.IMAGE
        self.opacity_slider.setEnabled(layer is not None)
        self.blend_combo.setEnabled(layer is not None)
        is_mask = layer is not None and layer.kind is LayerKind.MASK
        self.colormap_combo.setEnabled(is_mask or (is_image and layer.data.ndim == 2))
        for widget in (self.contrast_low, self.contrast_high, self.auto_contrast_button):
            widget.setEnabled(is_image)
        if layer is None:
            return
        with self._quiet():
            percent = int(round(layer.opacity * 100))
            self.opacity_slider.setValue(percent)
            self._opacity_label.setText(f"{percent} %")
            self.blend_combo.setCurrentText(layer.blend)
            # A mask's "colormap" is its one colour; an image's, a colour map.
            names = list(MASK_COLORS) if is_mask else list(COLORMAPS)
            if [self.colormap_combo.itemText(i) for i in range(self.colormap_combo.count())] != names:
                self.colormap_combo.clear()
                self.colormap_combo.addItems(names)
            if self.colormap_combo.isEnabled():
                shown = mask_color_name(layer.colormap) if is_mask else layer.colormap
                if self.colormap_combo.findText(shown) < 0:
                    self.colormap_combo.addItem(shown)
                self.colormap_combo.setCurrentText(shown)
            else:
                # Greyed out and blank: "gray" there said an RGB photo or a mask was gray.
                self.colormap_combo.setCurrentIndex(-1)
            if is_image:
                self._show_contrast(layer)
            else:
                self.contrast_low.clear()  # not the last image's limits
                self.contrast_high.clear()

    def _show_contrast(self, layer: Layer) -> None:
        low, high = layer.contrast_limits
        if np.issubdtype(layer.data.dtype, np.integer):
            decimals = 0
        else:
            # Three significant digits of the range at least: a float image of values
            # near 1e-5 showed -0.0001 and 0.0001, and the boxes could not move.
            decimals = int(np.clip(3 - np.floor(np.log10(max(high - low, 1e-12))), 4, MAX_CONTRAST_DECIMALS))
        tiny = 10.0**-decimals
        for spin in (self.contrast_low, self.contrast_high):
            spin.setDecimals(decimals)
            spin.setRange(-_CONTRAST_BOUND, _CONTRAST_BOUND)
            spin.setSingleStep(max(tiny, (high - low) / 100))
        self.contrast_low.setValue(low)
        self.contrast_high.setValue(high)
        # Bounds that cannot cross: an inverted or empty range never reaches the layer.
        self.contrast_low.setMaximum(high - tiny)
        self.contrast_high.setMinimum(low + tiny)

    # -- a person's edits -------------------------------------------------------------
    def _on_current_row_changed(self, row: int) -> None:
        if self._syncing or not 0 <= row < len(self._rows):
            return
        self._document.layers.selected = self._rows[row]

    def _on_item_changed(self, item: QListWidgetItem) -> None:
        if self._syncing:
            return
        row = self.list_widget.row(item)
        layer = self._rows[row]
        visible = item.checkState() == Qt.CheckState.Checked
        if visible != layer.visible:
            self._guarded(self._document.set_property, layer, "visible", visible)
        name = item.text().strip()
        if name and name != layer.name:
            self._guarded(self._document.set_property, layer, "name", name)
        # An empty or padded name is not committed; show the layer's real name again.
        self._fill_item(item, layer)

    def _on_row_dropped(self, source_row: int, insert_row: int) -> None:
        layer = self._rows[source_row]
        if layer.kind is LayerKind.PREVIEW:
            return
        # Removing the row first shifts the gaps below it up by one.
        target_row = insert_row - 1 if insert_row > source_row else insert_row
        if target_row != source_row:
            self._guarded(self._document.move_layer, self._stack_index(source_row), self._stack_index(target_row))

    def _move_selected(self, step: int) -> None:
        layer = self._selected()
        if layer is None:
            return
        index = self._document.layers.index(layer)
        self._guarded(self._document.move_layer, index, index + step)

    def _on_slider_pressed(self) -> None:
        layer = self._selected()
        self._drag = (layer, layer.opacity) if layer is not None else None

    def _on_opacity_value(self, value: int) -> None:
        self._opacity_label.setText(f"{value} %")
        if self._syncing:
            return
        if self._drag is not None:
            # Live feedback while dragging, outside history; the release records one step.
            self._drag[0].opacity = value / 100
            return
        layer = self._selected()
        if layer is not None:
            self._guarded(self._document.set_property, layer, "opacity", value / 100)

    def _on_slider_released(self) -> None:
        if self._drag is None:
            return
        layer, start = self._drag
        self._drag = None
        final = self.opacity_slider.value() / 100
        # Put the old value back so the Document sees (and records) the whole change.
        layer.opacity = start
        self._guarded(self._document.set_property, layer, "opacity", final)

    def _on_blend_chosen(self, mode: str) -> None:
        layer = self._selected()
        if self._syncing or layer is None or not mode:
            return
        self._guarded(self._document.set_property, layer, "blend", mode)

    def _on_colormap_chosen(self, name: str) -> None:
        layer = self._selected()
        if self._syncing or layer is None or not name:
            return
        self._guarded(self._document.set_property, layer, "colormap", name)

    def _on_contrast_edited(self) -> None:
        layer = self._selected()
        if self._syncing or layer is None:
            return
        limits = (self.contrast_low.value(), self.contrast_high.value())
        self._guarded(self._document.set_property, layer, "contrast_limits", limits)

    def _on_auto_contrast(self) -> None:
        layer = self._selected()
        if layer is not None:
            self._guarded(self._document.set_property, layer, "contrast_limits", auto_contrast_limits(layer.data))


def _disconnect_all(document: Document, connections: list[tuple[EventSignal, Callable]], layer_slot: Callable) -> None:
    """Detach a destroyed panel from the document it listened to."""
    for signal, slot in connections:
        signal.disconnect(slot)
    for layer in document.layers:
        layer.property_changed.disconnect(layer_slot)
