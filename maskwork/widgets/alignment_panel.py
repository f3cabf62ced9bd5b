"""Views that judge an alignment: checkerboard, blend, difference and flicker.

The panel compares a fixed image layer with a moving one (typically the warped image a
registration added) through a transient overlay on the canvas, which never enters the
layer stack or history.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import QComboBox, QFormLayout, QLabel, QSlider, QSpinBox, QWidget

from maskwork.core import compare
from maskwork.core.document import Document
from maskwork.core.layers import Layer, LayerKind
from maskwork.widgets.layer_choice import fill_layer_combo

MODES = ("off", "checkerboard", "blend", "difference", "flicker")
FLICKER_MS = 500


class AlignmentPanel(QWidget):
    """Pick fixed and moving image layers and a way to look at both at once.

    Signals
    -------
    overlay_changed(layer)
        The transient layer the canvas should draw on top (None for none).
    """

    overlay_changed = Signal(object)

    def __init__(self, document: Document, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.overlay: Layer | None = None
        self.fixed_combo = QComboBox()
        self.moving_combo = QComboBox()
        self.mode_combo = QComboBox()
        self.mode_combo.setObjectName("alignmentMode")
        for mode in MODES:
            self.mode_combo.addItem(mode.capitalize(), mode)
        self.blend_slider = QSlider(Qt.Orientation.Horizontal)
        self.blend_slider.setRange(0, 100)
        self.blend_slider.setValue(50)
        self.blend_slider.setToolTip("How much of the moving image shows over the fixed one")
        self.square_spin = QSpinBox()
        self.square_spin.setRange(4, 1024)
        self.square_spin.setValue(48)
        self.square_spin.setSuffix(" px")
        self.square_spin.setToolTip("Checkerboard square size")
        self.status_label = QLabel()
        self.status_label.setWordWrap(True)
        form = QFormLayout(self)
        form.addRow("Fixed", self.fixed_combo)
        form.addRow("Moving", self.moving_combo)
        form.addRow("View", self.mode_combo)
        form.addRow("Blend", self.blend_slider)
        form.addRow("Squares", self.square_spin)
        form.addRow(self.status_label)

        self._flicker = QTimer(self)
        self._flicker.setInterval(FLICKER_MS)
        self._flicker.timeout.connect(self._toggle_flicker)
        for combo in (self.fixed_combo, self.moving_combo, self.mode_combo):
            combo.currentIndexChanged.connect(self.update_view)
        self.square_spin.valueChanged.connect(self.update_view)
        self.blend_slider.valueChanged.connect(self._on_blend)
        stack = document.layers
        for signal in (stack.inserted, stack.removed, stack.moved):
            signal.connect(self._fill_layers)
        self._fill_layers()

    @property
    def mode(self) -> str:
        """The current view: off, checkerboard, blend, difference or flicker."""
        return self.mode_combo.currentData()

    @mode.setter
    def mode(self, mode: str) -> None:
        self.mode_combo.setCurrentIndex(MODES.index(mode))

    def _fill_layers(self, *_) -> None:
        """List the image layers; fixed keeps its choice (else the bottom image), moving its
        own unless that is now the fixed one (else the topmost other image)."""
        images = self.document.layers.of_kind(LayerKind.IMAGE)
        fixed = fill_layer_combo(self.fixed_combo, images)
        fill_layer_combo(self.moving_combo, images, lambda layer: layer is not fixed, len(images) - 1)
        self.update_view()

    def update_view(self, *_) -> None:
        """Recompute the overlay for the current mode and layers."""
        self._flicker.stop()
        fixed, moving, mode = self.fixed_combo.currentData(), self.moving_combo.currentData(), self.mode
        overlay = None
        self.status_label.setText("")
        if mode != "off" and (fixed is None or moving is None or fixed is moving):
            self.status_label.setText("Add a second image layer (e.g. Apply a registration) to compare.")
        elif mode != "off":
            try:
                if mode == "checkerboard":
                    overlay = Layer(compare.checkerboard(fixed.data, moving.data, self.square_spin.value()), "image", "checkerboard")
                elif mode == "difference":
                    overlay = Layer(compare.difference(fixed.data, moving.data), "image", "difference", colormap="magma")
                else:
                    overlay = Layer(compare.display_rgb(moving.data), "image", moving.name)
                    overlay.opacity = self.blend_slider.value() / 100 if mode == "blend" else 1.0
            except ValueError as error:
                self.status_label.setText(str(error))
        self.overlay = overlay
        self.overlay_changed.emit(overlay)
        if overlay is not None and mode == "flicker":
            self._flicker.start()

    def _on_blend(self, value: int) -> None:
        if self.overlay is not None and self.mode == "blend":
            self.overlay.opacity = value / 100

    def _toggle_flicker(self) -> None:
        if self.overlay is not None:
            self.overlay.visible = not self.overlay.visible
