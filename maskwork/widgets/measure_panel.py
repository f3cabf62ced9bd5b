"""The measure panel: histogram with thresholds, mask comparison, object statistics.

Everything shown is computed by :mod:`maskwork.core.measure`; this widget only picks the
layers, refreshes after edits (debounced, so painting stays smooth) and draws the plots.
"""

from __future__ import annotations

import weakref

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from maskwork.core import measure
from maskwork.core.document import Document
from maskwork.core.layers import Layer, LayerKind
from maskwork.core.pixels import value_range
from maskwork.widgets.histogram_plot import HistogramPlot
from maskwork.widgets.scrolling import vertical_scroll_area
from maskwork.widgets.workers import Worker, start_worker

#: Layer kinds that can be compared as masks or counted as objects (scribbles are seeds,
#: not results, and measuring them after every stroke would only slow painting down).
REGION_KINDS = (LayerKind.MASK, LayerKind.LABELS)
REFRESH_DELAY_MS = 200
#: Labels layers with at most this many classes also offer each class as a region to compare.
MAX_LISTED_CLASSES = 12


class Region:
    """A comparable region: a layer's nonzero pixels, or one class of a labels layer."""

    def __init__(self, layer: Layer, label: int | None = None) -> None:
        self.layer = layer
        self.label = label

    @property
    def name(self) -> str:
        """Text shown in the combo boxes."""
        return self.layer.name if self.label is None else f"{self.layer.name} = {self.label}"

    def mask(self) -> np.ndarray:
        """Boolean pixels of the region."""
        data = self.layer.data
        return data != 0 if self.label is None else data == self.label


def listed_classes(labels: np.ndarray) -> list[int]:
    """The classes of a labels array that are offered as regions of their own: none when
    it has one class or more than :data:`MAX_LISTED_CLASSES`.

    Seeded segmentations label foreground 1 and background 2: comparing "= 1" with a mask
    is the comparison a person means. Objects numbered one by one show more classes than
    that in a sample of every 8th pixel, which saves counting all of a large layer.
    """
    if not labels.size or np.count_nonzero(np.unique(labels[::8, ::8])) > MAX_LISTED_CLASSES:
        return []
    classes = np.flatnonzero(np.bincount(labels.ravel())[1:]) + 1
    return [int(label) for label in classes] if 1 < len(classes) <= MAX_LISTED_CLASSES else []


class WholeNumberAxis(pg.AxisItem):
    """An axis whose ticks fall on whole numbers only (object 1, 2, 3; never 1.5)."""

    def tickSpacing(self, minVal, maxVal, size):  # noqa: N802, N803 (pyqtgraph's names)
        levels = [(float(np.ceil(spacing)), offset) for spacing, offset in super().tickSpacing(minVal, maxVal, size)
                  if spacing >= 1]
        return levels or [(1.0, 0.0)]


class MeasurePanel(QWidget):
    """Histogram of the image, IoU/Dice of two masks, and object counts and areas.

    The numbers are computed in a background thread (12-megapixel layers take a tenth of
    a second), and the newest request wins.

    Parameters
    ----------
    document : Document
        The layers to measure.

    Signals
    -------
    refreshed()
        The numbers and plots show the latest state.
    """

    refreshed = Signal()
    classes_listed = Signal()
    """The classes of labels layers counted in the background are in the region lists."""

    def __init__(self, document: Document, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self._watched: list[Layer] = []
        self._job: Worker | None = None
        self._pending = False
        #: A labels layer's listed classes, as (its revision when counted, classes).
        self._classes: weakref.WeakKeyDictionary[Layer, tuple[int, list[int]]] = weakref.WeakKeyDictionary()
        self._counting: Worker | None = None

        self.histogram_plot = HistogramPlot()
        self.histogram_plot.setObjectName("histogramPlot")
        histogram_box = QGroupBox("Histogram")
        QVBoxLayout(histogram_box).addWidget(self.histogram_plot)

        self.combo_a = QComboBox()
        self.combo_b = QComboBox()
        self.combo_a.setObjectName("compareA")
        self.combo_b.setObjectName("compareB")
        self.overlap_label = QLabel("-")
        self.overlap_label.setObjectName("overlapLabel")
        # Wrapped: a longer message must not widen the dock and shift the canvas mid-drag.
        self.overlap_label.setWordWrap(True)
        self.overlap_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.difference_button = QPushButton("Difference layer")
        self.difference_button.setToolTip("Add a labels layer: 1 both, 2 only A, 3 only B")
        self.difference_button.clicked.connect(self.add_difference_layer)
        compare_box = QGroupBox("Compare masks")
        form = QFormLayout(compare_box)
        form.addRow("A", self.combo_a)
        form.addRow("B", self.combo_b)
        form.addRow("Overlap", self.overlap_label)
        form.addRow(self.difference_button)

        self.objects_combo = QComboBox()
        self.objects_combo.setObjectName("objectsLayer")
        self.objects_label = QLabel("-")
        self.objects_label.setObjectName("objectsLabel")
        self.objects_label.setWordWrap(True)
        self.areas_plot = pg.PlotWidget(background=None, axisItems={"bottom": WholeNumberAxis("bottom")})
        self.areas_plot.setMinimumHeight(110)
        self.areas_plot.setMaximumHeight(150)
        self.areas_plot.setLabel("bottom", "object (largest first)")
        self.areas_plot.setLabel("left", "pixels")
        # Whole pixel counts, and no "(x1e+03)" lengthening the title past the plot's height.
        self.areas_plot.getAxis("left").enableAutoSIPrefix(False)
        self.areas_plot.hideButtons()
        self._areas_bars = pg.BarGraphItem(x=[], height=[], width=0.8, brush=(46, 204, 64, 180))
        self.areas_plot.addItem(self._areas_bars)
        objects_box = QGroupBox("Objects")
        objects_layout = QVBoxLayout(objects_box)
        row = QHBoxLayout()
        row.addWidget(QLabel("Layer"))
        row.addWidget(self.objects_combo, 1)
        objects_layout.addLayout(row)
        objects_layout.addWidget(self.objects_label)
        objects_layout.addWidget(self.areas_plot)

        self.image_a = QComboBox()
        self.image_b = QComboBox()
        self.image_mask = QComboBox()
        self.image_a.setObjectName("imageA")
        self.image_b.setObjectName("imageB")
        self.image_mask.setObjectName("imageMask")
        self.image_mask.setToolTip("Measure only inside this mask (for example an inpainted hole)")
        self.quality_label = QLabel("-")
        self.quality_label.setObjectName("qualityLabel")
        self.quality_label.setWordWrap(True)
        self.quality_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.image_difference_button = QPushButton("Difference image")
        self.image_difference_button.setToolTip("Add |A - B| as an image layer")
        self.image_difference_button.clicked.connect(self.add_image_difference_layer)
        images_box = QGroupBox("Compare images")
        images_form = QFormLayout(images_box)
        images_form.addRow("A (reference)", self.image_a)
        images_form.addRow("B", self.image_b)
        images_form.addRow("Inside", self.image_mask)
        images_form.addRow("Quality", self.quality_label)
        images_form.addRow(self.image_difference_button)

        content = QWidget(self)
        column = QVBoxLayout(content)
        column.setContentsMargins(4, 4, 4, 4)
        for box in (histogram_box, compare_box, images_box, objects_box):
            column.addWidget(box)
        column.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(vertical_scroll_area(content, self))

        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.refresh)
        for combo in (self.combo_a, self.combo_b, self.objects_combo, self.image_a, self.image_b, self.image_mask):
            combo.currentIndexChanged.connect(self._watch_chosen)
        stack = document.layers
        stack.inserted.connect(self._on_stack_changed)
        stack.removed.connect(self._on_stack_changed)
        stack.moved.connect(self._on_stack_changed)
        stack.selection_changed.connect(self._on_selection_changed)
        self._on_stack_changed()

    # -- layer lists ------------------------------------------------------------------
    def _region_layers(self) -> list[Layer]:
        return list(reversed(self.document.layers.of_kind(*REGION_KINDS)))

    def _regions_of(self, layer: Layer) -> list[Region]:
        """The layer as a whole, then each of its classes where a labels layer has few;
        the classes are counted in the background, and until a count after an edit comes
        back the count before it stands (the choice of a class stays)."""
        counted = self._classes.get(layer)
        if counted is None:
            return [Region(layer)]
        return [Region(layer), *(Region(layer, label) for label in counted[1])]

    def _count_classes(self, layers: list[Layer]) -> None:
        """Count the classes of ``layers`` in a worker (a 64-megapixel layer takes a fifth
        of a second); the lists are filled again when the counts come back."""
        if self._counting is not None or not layers:
            return  # the running count's end fills the lists again, which counts the rest
        revisions = [layer.revision for layer in layers]

        def count(worker) -> list[list[int]]:
            return [listed_classes(layer.data) for layer in layers]

        def counted(classes) -> None:
            self._counting = None
            if isinstance(classes, Exception):  # counted as none, not again and again
                classes = [[] for _ in layers]
            for layer, revision, listed in zip(layers, revisions, classes):
                self._classes[layer] = (revision, listed)
            self._on_stack_changed()
            self.classes_listed.emit()

        self._counting = start_worker(count, returned=counted, name="labels classes")

    def _on_stack_changed(self, *_) -> None:
        layers = self._region_layers()
        self._count_classes([layer for layer in layers if layer.kind is LayerKind.LABELS
                             and self._classes.get(layer, (None,))[0] != layer.revision])
        regions = [region for layer in layers for region in self._regions_of(layer)]
        self._fill(self.combo_a, regions, 0)
        self._fill_other(self.combo_b, regions, self.combo_a.currentData())
        self._fill(self.objects_combo, [Region(layer) for layer in layers], 0)
        images = [Region(layer) for layer in self.document.layers.of_kind(LayerKind.IMAGE)]
        self._fill(self.image_a, images, 0)
        self._fill_other(self.image_b, images[::-1], self.image_a.currentData())
        self._fill(self.image_mask, [None] + [Region(layer) for layer in layers], 0)
        self._watch_chosen()

    def _watch_chosen(self, *_) -> None:
        """Listen to edits of the layers being measured, and to every layer's name."""
        for layer in self._watched:
            layer.data_changed.disconnect(self._schedule)
        for layer in self.document.layers:
            layer.property_changed.disconnect(self._on_layer_property)
            layer.property_changed.connect(self._on_layer_property)
        combos = (self.combo_a, self.combo_b, self.objects_combo, self.image_a, self.image_b, self.image_mask)
        chosen = [combo.currentData() for combo in combos]
        layers = {id(region.layer): region.layer for region in chosen if region is not None}
        self._watched = list(layers.values())
        for layer in self._watched:
            layer.data_changed.connect(self._schedule)
        self._schedule()

    def _on_layer_property(self, name: str) -> None:
        if name == "name":
            self._on_stack_changed()

    def _fill_other(self, combo: QComboBox, regions: list[Region], first: Region | None) -> None:
        """Fill a second choice: "(none)", then ``regions``; it never starts on the layer
        of ``first`` (a layer against itself, or A = B, measures nothing)."""
        others = [i for i, region in enumerate(regions) if first is None or region.layer is not first.layer]
        self._fill(combo, [None, *regions], others[0] + 1 if others else 0, none_text="(none)",
                   avoid=first.layer if first is not None else None)

    def _fill(self, combo: QComboBox, regions: list[Region | None], default_index: int,
              none_text: str = "whole image", avoid: Layer | None = None) -> None:
        """Fill ``combo`` with regions (None shows as ``none_text``), keeping the choice
        unless it is a region of ``avoid``."""
        previous = combo.currentData()
        if previous is not None and previous.layer is avoid:
            previous = None
        combo.blockSignals(True)
        combo.clear()
        for region in regions:
            combo.addItem(none_text if region is None else region.name, region)
        index = next(
            (
                i
                for i, region in enumerate(regions)
                if previous is not None
                and region is not None
                and region.layer is previous.layer
                and region.label == previous.label
            ),
            max(0, min(default_index, len(regions) - 1)),
        )
        combo.setCurrentIndex(index)
        combo.blockSignals(False)

    def _schedule(self, *_) -> None:
        # Hidden panels measure nothing: they refresh when shown.
        if self.isVisible():
            self._timer.start(REFRESH_DELAY_MS)

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        self._schedule()

    # -- measures ---------------------------------------------------------------------
    def refresh(self) -> None:
        """Recompute every number and plot; ``refreshed`` fires when they are shown."""
        self._timer.stop()
        self._refresh_histogram()
        a, b = self.combo_a.currentData(), self.combo_b.currentData()
        same = a is not None and b is not None and a.layer is b.layer and a.label == b.label
        self.difference_button.setEnabled(a is not None and b is not None and not same)
        objects = self.objects_combo.currentData()
        if self._job is not None:
            self._pending = True  # measured again as soon as the running job ends
            return
        pair = None if a is None or b is None or same else (a, b)
        layer = objects.layer if objects is not None else None
        images = self._image_pair()
        self.image_difference_button.setEnabled(images is not None)
        inside = self.image_mask.currentData()
        self._job = start_worker(lambda worker: _measure(pair, layer, images, inside), returned=self._show_measures,
                                 name="measurements")

    def _show_measures(self, value) -> None:
        self._job = None
        if self._pending:
            self._pending = False
            self.refresh()
            return
        if isinstance(value, Exception):
            for label in (self.overlap_label, self.objects_label, self.quality_label):
                label.setText(f"cannot measure: {value}")
            self._areas_bars.setOpts(x=[], height=[])
            return
        overlap, areas, quality = value
        self.quality_label.setText(quality)
        if overlap is None:
            self.overlap_label.setText("choose two different mask or labels layers")
        elif isinstance(overlap, str):
            self.overlap_label.setText(overlap)
        else:
            self.overlap_label.setText(f"IoU {overlap[0]:.4f}   Dice {overlap[1]:.4f}")
        if areas is None:
            self.objects_label.setText("no mask or labels layer")
            self._areas_bars.setOpts(x=[], height=[])
        else:
            if areas:
                self.objects_label.setText(
                    f"{len(areas)} object{'' if len(areas) == 1 else 's'}   total {sum(areas)} px   "
                    f"median {int(np.median(areas))} px   largest {areas[0]} px"
                )
            else:
                self.objects_label.setText("0 objects")
            shown = areas[:200]
            # Objects are numbered from 1, and the bars fill the plot from the first to the last.
            self._areas_bars.setOpts(x=np.arange(1, len(shown) + 1), height=shown)
            self.areas_plot.setXRange(0.5, max(1, len(shown)) + 0.5, padding=0)
            self.areas_plot.setYRange(0, max(shown, default=1), padding=0.05)
        self.refreshed.emit()

    def _refresh_histogram(self) -> None:
        """The histogram of the base image: the selected image layer, else the bottom one
        (the image an operator takes, so its thresholds land on its histogram)."""
        base = self.document.base_image
        self.histogram_plot.set_image(base.data if base is not None else None)

    def _on_selection_changed(self, *_) -> None:
        # Only the histogram depends on the selection (the other measures take seconds on
        # 12 MP); a hidden panel draws it when shown.
        if self.isVisible():
            self._refresh_histogram()

    def show_thresholds(self, values: list[float]) -> None:
        """Draw vertical lines at the given thresholds (replacing earlier ones)."""
        self.histogram_plot.show_thresholds(values)

    @property
    def threshold_values(self) -> list[float]:
        """Thresholds currently drawn on the histogram."""
        return self.histogram_plot.threshold_values

    def _image_pair(self) -> tuple[Layer, Layer] | None:
        a, b = self.image_a.currentData(), self.image_b.currentData()
        if a is None or b is None or a.layer is b.layer:
            return None
        return a.layer, b.layer

    def add_image_difference_layer(self) -> Layer | None:
        """Add |A - B| of the two chosen image layers as an image layer (undoable)."""
        pair = self._image_pair()
        if pair is None:
            return None
        a, b = pair
        if a.data.shape != b.data.shape:
            self.quality_label.setText("the images differ in size or channels")
            return None
        name = self.document.layers.unique_name(f"|{a.name} - {b.name}|")
        layer = Layer(measure.difference_image(a.data, b.data), LayerKind.IMAGE, name, colormap="magma")
        return self.document.add_layer(layer, step=f"Difference image {a.name} - {b.name}")

    def add_difference_layer(self) -> Layer | None:
        """Add the agreement map of A and B as a labels layer (one undoable step)."""
        a, b = self.combo_a.currentData(), self.combo_b.currentData()
        if a is None or b is None or (a.layer is b.layer and a.label == b.label):
            return None
        name = self.document.layers.unique_name(f"{a.name} vs {b.name}")
        layer = Layer(measure.difference_labels(a.mask(), b.mask()), LayerKind.LABELS, name, opacity=0.6)
        return self.document.add_layer(layer, step=f"Difference {a.name} vs {b.name}")


def _measure(pair: tuple[Region, Region] | None, layer: Layer | None, images, inside: Region | None):
    """(IoU, Dice) of the mask pair, object areas of ``layer`` (largest first), and
    (PSNR, SSIM, MSE) of the image pair; each on its own, a sentence where it cannot be
    measured (one failing measure must not leave the others' old numbers on screen)."""
    return _overlap(pair), _areas(layer), _quality(images, inside)


def _overlap(pair: tuple[Region, Region] | None):
    if pair is None:
        return None
    try:
        mask_a, mask_b = pair[0].mask(), pair[1].mask()
        return measure.iou(mask_a, mask_b), measure.dice(mask_a, mask_b)
    except ValueError as error:
        return f"cannot measure: {error}"


def _areas(layer: Layer | None):
    if layer is None:
        return None
    # A labels layer's objects are its ids, however many pieces each has; a mask's are
    # its connected parts (counting a labels layer by parts while its ids were 0 and 1
    # changed the count's meaning with one pixel of id 2).
    return sorted(measure.object_areas(layer.data, by_id=layer.kind is LayerKind.LABELS).values(), reverse=True)


def _quality(images, inside: Region | None):
    if images is None:
        return "choose two different image layers"
    if images[0].data.shape != images[1].data.shape:
        return "the images differ in size or channels"
    reference, other = images[0].data, images[1].data
    scale, data_range = "", None  # by the reference's type
    if reference.dtype != other.dtype:
        # An 8-bit photo against its float copy scored 7 dB on raw values: each is put
        # on 0..1 by its own type (8-bit /255, 16-bit /65535, float as it is), NaN kept
        # as unknown (the measures leave such pixels out).
        reference, other = _on_unit_scale(reference), _on_unit_scale(other)
        scale, data_range = f"   (on 0..1: {images[0].data.dtype} against {images[1].data.dtype})", 1.0
    try:
        mask = inside.mask() if inside is not None else None
        if mask is not None and not mask.any():
            return "the mask is empty"
        values = (measure.psnr(reference, other, mask=mask, data_range=data_range),
                  measure.ssim(reference, other, mask=mask, data_range=data_range),
                  measure.mse(reference, other, mask=mask))
    except ValueError as error:
        return f"cannot measure: {error}"
    return "PSNR {:.2f} dB   SSIM {:.4f}   MSE {:.4g}".format(*values) + scale


def _on_unit_scale(image: np.ndarray) -> np.ndarray:
    """``image`` as float32 on 0..1 by its type's scale (:func:`value_range`), NaN kept
    (float32 holds 16-bit steps exactly; float64 copies of two 8000 x 6000 RGB photos took
    2.2 GB)."""
    offset, span = value_range(image)
    return (image.astype(np.float32) - np.float32(offset)) / np.float32(span)
