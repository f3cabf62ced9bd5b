"""A histogram of an image with threshold lines, drawn with pyqtgraph."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtWidgets import QWidget

from maskwork.core import measure

#: Pixels sampled for the histogram: a strided quarter megapixel (about 1,000 per bin) has
#: the same shape as the whole. It is computed on the UI thread when an image opens: a
#: megapixel took 19-53 ms there on a 12 MP photo, a quarter 4-7 ms.
SAMPLE_PIXELS = 250_000


class HistogramPlot(pg.PlotWidget):
    """Intensity histogram (luminance for colour) with vertical threshold lines."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent, background=None)
        self.setMinimumHeight(110)
        self.setMaximumHeight(170)
        self.setMouseEnabled(x=True, y=False)
        self.hideButtons()
        self.getAxis("left").setStyle(showValues=False)
        self._curve = self.plot(stepMode="center", fillLevel=0, brush=(90, 140, 220, 120), pen=pg.mkPen((60, 100, 180)))
        self._lines: list[pg.InfiniteLine] = []
        self._image_id: int | None = None

    def set_image(self, image: np.ndarray | None) -> None:
        """Show the histogram of ``image`` (recomputed only for a different array)."""
        if image is None:
            self._image_id = None
            self._curve.setData([], [])
            return
        if id(image) == self._image_id:
            return
        self._image_id = id(image)
        step = max(1, int(np.sqrt(image.shape[0] * image.shape[1] / SAMPLE_PIXELS)))
        counts, edges = measure.histogram(image[::step, ::step])
        # A square root keeps both a dominant background peak and small modes visible.
        self._curve.setData(edges, np.sqrt(counts))

    def curve_data(self) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(bin edges, heights) currently drawn."""
        return self._curve.getData()

    def show_thresholds(self, values) -> None:
        """Draw vertical lines at ``values`` (replacing earlier ones)."""
        for line in self._lines:
            self.removeItem(line)
        self._lines = []
        for value in values:
            line = pg.InfiniteLine(pos=float(value), angle=90, pen=pg.mkPen((230, 57, 70), width=2))
            self.addItem(line)
            self._lines.append(line)

    @property
    def threshold_values(self) -> list[float]:
        """Thresholds currently drawn."""
        return [line.value() for line in self._lines]
