"""What an operator shows under its parameter form, as its registration declares it.

The registry's ``panel_views`` name Qt-free kinds (:class:`~maskwork.operators.registry.Histogram`,
:class:`~maskwork.operators.registry.ScorePlot`, :class:`~maskwork.operators.registry.InfoAction`,
:class:`~maskwork.operators.registry.Suggestion`); this module is their one Qt adapter, so
the window never tests an operator's id.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pyqtgraph as pg
from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QPushButton, QWidget

from maskwork.core.layers import LayerKind
from maskwork.operators.registry import Histogram, InfoAction, OperatorSpec, ScorePlot, Suggestion
from maskwork.widgets.histogram_plot import HistogramPlot
from maskwork.widgets.workers import Worker, start_worker

if TYPE_CHECKING:
    from maskwork.app.main_window import MainWindow


def widget_name(snake_name: str, suffix: str) -> str:
    """Qt object name of a widget made for ``snake_name``: ``model_info`` -> ``modelInfoButton``."""
    first, *rest = snake_name.split("_")
    return first + "".join(part.capitalize() for part in rest) + suffix


class OperatorViews(QObject):
    """Builds, shows and feeds the views the chosen operator declares.

    Parameters
    ----------
    window : MainWindow
        Its operator panel shows the views, its runner's scores feed them and its
        document's base image is the histogram's.

    Attributes
    ----------
    histogram : HistogramPlot
        The image's histogram with the thresholds of the last result.
    metric_plot : pyqtgraph.PlotWidget
        The declared score of each partial result, plotted live.
    metric_values : list of float
        The points of ``metric_plot`` in the current run (the declared score).
    metric_positions : list of float
        Where along x each of them is plotted: the declared ``x_score`` (iterations or
        steps run so far) of the partial result it came with.
    """

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.histogram = HistogramPlot()
        self.histogram.setObjectName("operatorHistogram")
        self.metric_plot = pg.PlotWidget(background=None)
        self.metric_plot.setObjectName("metricPlot")
        # Room for the rotated axis title. A fixed height: when the scores line appears
        # under it at the end of a run, the plot moves instead of being resized and
        # re-ranged (5 ms of the UI thread, on top of drawing the result).
        # 130 px: at 1280 x 800 a taller one left the form five rows of thirteen.
        self.metric_plot.setFixedHeight(130)
        # Room above the top tick for its label (it was cut in half at the plot's edge).
        self.metric_plot.getPlotItem().layout.setContentsMargins(2, 8, 4, 2)
        # No "(x0.001)" added to the title: a loss of 0.5 reads as 0.5, and the title fits.
        self.metric_plot.getAxis("left").enableAutoSIPrefix(False)
        # Major ticks and their labels only: working out the finer levels was a third of
        # the plot's repaint, redone at every redraw as the range grows (5.5 -> 3.6 ms).
        for side in ("left", "bottom"):
            self.metric_plot.getAxis(side).setStyle(maxTickLevel=0, maxTextLevel=0)
        self.metric_curve = self.metric_plot.plot(pen=pg.mkPen((230, 57, 70), width=2))
        self.metric_values: list[float] = []
        self.metric_positions: list[float] = []
        # The curve is redrawn by a timer, 250 ms after the first new score: painting the
        # re-ranged plot (its axes' ticks and labels) costs the UI thread 4-7 ms, and with
        # no delay it was painted right after the partial preview's canvas (4-8 ms), in one
        # stretch of more than a frame. Scores that arrive meanwhile join that redraw (the
        # timer is not restarted): a fast optimiser's curve moves four times a second,
        # which reads as live, for a quarter of the UI thread's time at ten.
        self._curve_redraw = QTimer(self, singleShot=True, interval=250)
        self._curve_redraw.timeout.connect(self._redraw_metric_curve)
        self._score_plot = ScorePlot()
        self._info_buttons: dict[InfoAction, QPushButton] = {}
        # The latest of each, held while it runs.
        self._info_job: Worker | None = None
        self._suggestion_job: Worker | None = None

        runner = window.runner
        stack = window.document.layers
        for event in (stack.inserted, stack.removed, stack.moved):
            event.connect(self._list_image_layers)
        stack.inserted.connect(self._on_layer_inserted)
        stack.selection_changed.connect(self._show_histogram_image)
        window.operator_panel.sources_changed.connect(runner.set_sources)
        runner.partial_scores.connect(self._on_partial_scores)
        runner.busy_changed.connect(lambda busy: busy and self.clear_metric_curve())

    def _show_histogram_image(self, *_) -> None:
        """Give the histogram the image the operator runs on: the selected image layer
        feeds it (another image than the base one, say a float result), so thresholds
        are drawn on that image's histogram, not the first one's."""
        spec = self.window.runner.spec
        if spec is None or not any(isinstance(view, Histogram) for view in spec.panel_views):
            return
        layer = self.window.runner.input_layer("image")
        self.histogram.set_image(layer.data if layer is not None else None)  # (the same array: kept)

    def _on_layer_inserted(self, index: int, layer) -> None:
        """A new base image (another file opened): the views describe it, not the last one."""
        spec, layers = self.window.runner.spec, self.window.document.layers
        if spec is not None and len(layers) == 1 and layer.kind is LayerKind.IMAGE:
            self.show_for(spec)

    def _list_image_layers(self, *_) -> None:
        """Offer the image layers to an operator of two images, and take its choices; the
        histogram follows the image the operator now takes."""
        panel = self.window.operator_panel
        panel.set_source_layers(self.window.document.layers.of_kind(LayerKind.IMAGE))
        self.window.runner.chosen_sources = panel.chosen_sources()
        self._show_histogram_image()  # a layer moved or deleted may change the image it runs on

    def show_for(self, spec: OperatorSpec) -> None:
        """Put ``spec``'s declared views under its form, in their declared order."""
        self._list_image_layers()
        widgets: list[QWidget] = []
        for view in spec.panel_views:
            if isinstance(view, Histogram):
                self._show_histogram_image()
                self.histogram.show_thresholds([])
                widgets.append(self.histogram)
            elif isinstance(view, ScorePlot):
                self._score_plot = view
                self.reset_metric_curve()
                self.metric_plot.setLabel("left", view.y_label)
                self.metric_plot.setLabel("bottom", view.x_label)
                widgets.append(self.metric_plot)
            elif isinstance(view, InfoAction):
                widgets.append(self._info_button(view))
            elif isinstance(view, Suggestion):
                self._suggest(spec, view)
        self.window.operator_panel.set_views(widgets)

    def clear_metric_curve(self) -> None:
        """Empty the score plot as a run starts. Its axes keep their range until the run's
        first points, which the auto-range (switched back on here) fits: re-ranging the
        empty plot there and then re-laid and repainted both axes' ticks and labels, 8-10 ms
        of the UI thread on top of the run's own start."""
        self.metric_values, self.metric_positions = [], []
        self._curve_redraw.stop()
        self.metric_curve.setData([], [])
        self.metric_plot.enableAutoRange()

    def reset_metric_curve(self) -> None:
        """Empty the score plot, axes included (another operator is chosen): that
        operator's range has nothing to do with the next one's."""
        self.clear_metric_curve()
        self.metric_plot.setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
        self.metric_plot.enableAutoRange()  # setRange switched it off again

    def _on_partial_scores(self, scores: dict) -> None:
        plot = self._score_plot
        if plot.score in scores:
            self.metric_positions.append(float(scores.get(plot.x_score, len(self.metric_values))))
            self.metric_values.append(float(scores[plot.score]))
            if not self._curve_redraw.isActive():
                self._curve_redraw.start()

    def _redraw_metric_curve(self) -> None:
        self.metric_curve.setData(self.metric_positions, self.metric_values)

    def _info_button(self, view: InfoAction) -> QPushButton:
        """The button of ``view``, made on first use and kept for the next time."""
        if view not in self._info_buttons:
            button = QPushButton(view.text)
            button.setObjectName(widget_name(view.name, "Button"))
            button.setToolTip(view.tip)
            button.clicked.connect(lambda: self._show_info(view))
            self._info_buttons[view] = button
        return self._info_buttons[view]

    def _show_info(self, view: InfoAction) -> None:
        params = dict(self.window.runner.params)

        def show(value) -> None:
            if isinstance(value, Exception):
                self.window.show_error(f"Cannot read the {view.title.lower()}", str(value))
            else:
                self.window.show_information(view.title, value)

        self.window.statusBar().showMessage(f"Reading the {view.title.lower()}...", 3000)
        self._info_job = start_worker(lambda worker: view.describe(params), returned=show, name=view.name)

    def _suggest(self, spec: OperatorSpec, view: Suggestion) -> None:
        """Compute the suggestion off the UI thread; offer it if ``spec`` is still chosen."""
        base = self.window.document.base_image
        if base is None:
            return
        data = base.data

        def show(value) -> None:
            if isinstance(value, Exception) or self.window.runner.spec is not spec:
                return
            text, values = value
            self.window.operator_panel.set_suggestion(text, values)

        self._suggestion_job = start_worker(lambda worker: view.suggest(data), returned=show, name=f"{spec.id} suggestion")
