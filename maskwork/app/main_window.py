"""The main window: canvas in the centre, docks for layers, operator and history."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QByteArray, Qt, QTimer
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSlider,
    QToolBar,
)

from maskwork.app import autosave
from maskwork.app.recording import RecipeRecorder
from maskwork.app.runner import OperatorRunner
from maskwork.app.settings import add_recent_file, config_dir, recent_files, settings
from maskwork.app.workers import OperatorError, stop_all_workers
from maskwork.core import io
from maskwork.core.document import Document
from maskwork.core.layers import Layer, LayerKind
from maskwork.operators import InputError, OperatorSpec, all_operators, get
from maskwork.operators.dl.device import format_bytes, preferred_device, set_preferred_device
from maskwork.pipeline.recipe import Recipe
from maskwork.pipeline.script import to_python
from maskwork.widgets.alignment_panel import AlignmentPanel
from maskwork.widgets.background import BackgroundJob, wait_for_jobs
from maskwork.widgets.canvas import Canvas, Tool
from maskwork.widgets.histogram_plot import HistogramPlot
from maskwork.widgets.history_panel import HistoryPanel
from maskwork.widgets.layer_panel import LayerPanel
from maskwork.widgets.measure_panel import MeasurePanel
from maskwork.widgets.operator_panel import OperatorPanel
from maskwork.widgets.preferences_dialog import PreferencesDialog

AUTOSAVE_INTERVAL_MS = 60_000
IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp *.tif *.tiff *.webp *.nii *.nii.gz *.mha *.mhd *.nrrd *.nhdr);;All files (*)"

#: (tool, menu text, shortcut)
TOOLS = (
    (Tool.PAN, "&Pan", "H"),
    (Tool.QUICK_SELECT, "&Quick select", "Q"),
    (Tool.BRUSH, "&Brush", "B"),
    (Tool.ERASER, "&Eraser", "E"),
    (Tool.BOX, "Bo&x", "R"),
    (Tool.POLYGON, "Po&lygon / lasso fill", "L"),
    (Tool.FILL, "&Flood fill", "G"),
    (Tool.POINT_POSITIVE, "Positive p&oint", "P"),
    (Tool.POINT_NEGATIVE, "&Negative point", "N"),
    (Tool.LANDMARK, "Land&mark pairs (fixed, then moving)", "K"),
)
#: Longer explanations of tools whose menu text alone does not say how to use them.
TOOL_TIPS = {
    Tool.QUICK_SELECT: "Quick select: click the object, right-click or Shift+click what is not the object, "
    "drag a box around it; Backspace removes the last click",
}
LABEL_NAMES = {1: "foreground", 2: "background"}
MAX_LABEL_CHOICE = 9


class MainWindow(QMainWindow):
    """maskwork's main window: one document, its canvas, panels, menus and status bar."""

    def __init__(self) -> None:
        super().__init__()
        self.document = Document()
        self.source_path: Path | None = None
        self.canvas = Canvas(self.document, self)
        self.setCentralWidget(self.canvas)
        self.runner = OperatorRunner(self.document, self)
        self.recorder = RecipeRecorder()
        self.last_message_box: QMessageBox | None = None
        #: The napari viewer File > Open in napari made, reused while it stays open.
        self._napari_viewer = None
        self._autosaved_state: object = None

        self._build_docks()
        self._build_actions()
        self._build_menus()
        self._build_toolbars()
        self._build_status_bar()
        self._connect()
        self._restore_settings()

        self.setAcceptDrops(True)
        self._autosave_timer = QTimer(self)
        self._autosave_timer.timeout.connect(self.autosave_now)
        self._autosave_timer.start(AUTOSAVE_INTERVAL_MS)
        self._update_title()
        self._update_history_actions()

    # -- construction -----------------------------------------------------------------
    def _build_docks(self) -> None:
        self.layer_panel = LayerPanel(self.document, self)
        self.operator_panel = OperatorPanel(self)
        self.history_panel = HistoryPanel(self.document.history, self)
        self.measure_panel = MeasurePanel(self.document, self)
        # Shown inside the operator panel for threshold operators, with their thresholds.
        self.operator_histogram = HistogramPlot()
        self.operator_histogram.setObjectName("operatorHistogram")
        self.alignment_panel = AlignmentPanel(self.document, self)
        # The optimiser's metric per iteration, plotted live under a registration's form.
        self.metric_plot = pg.PlotWidget(background=None)
        self.metric_plot.setObjectName("metricPlot")
        self.metric_plot.setMinimumHeight(110)
        self.metric_plot.setMaximumHeight(170)
        self.metric_plot.setLabel("bottom", "iteration")
        self.metric_plot.setLabel("left", "metric")
        self._metric_curve = self.metric_plot.plot(pen=pg.mkPen((230, 57, 70), width=2))
        self.metric_values: list[float] = []
        # Under Run model's form: what the chosen file is and expects.
        self.model_info_button = QPushButton("Model info...")
        self.model_info_button.setObjectName("modelInfoButton")
        self.model_info_button.setToolTip("Show the model's format, inputs, outputs and settings")
        self.model_info_button.clicked.connect(self.show_model_info)
        self.docks = {}
        for key, title, widget, area in (
            ("layers", "Layers", self.layer_panel, Qt.DockWidgetArea.RightDockWidgetArea),
            ("operator", "Operator", self.operator_panel, Qt.DockWidgetArea.RightDockWidgetArea),
            ("history", "History", self.history_panel, Qt.DockWidgetArea.LeftDockWidgetArea),
            ("measure", "Measure", self.measure_panel, Qt.DockWidgetArea.LeftDockWidgetArea),
            ("alignment", "Alignment", self.alignment_panel, Qt.DockWidgetArea.LeftDockWidgetArea),
        ):
            dock = QDockWidget(title, self)
            dock.setObjectName(f"{key}Dock")
            dock.setWidget(widget)
            self.addDockWidget(area, dock)
            self.docks[key] = dock
        self.tabifyDockWidget(self.docks["measure"], self.docks["alignment"])
        self.docks["measure"].raise_()
        # First-run proportions: the operator form needs more room than the layer list,
        # and the history list less width than the canvas (saved layouts override this).
        self.resizeDocks([self.docks["layers"], self.docks["operator"]], [260, 440], Qt.Orientation.Vertical)
        self.resizeDocks([self.docks["history"], self.docks["measure"]], [220, 480], Qt.Orientation.Vertical)
        self.resizeDocks([self.docks["history"], self.docks["layers"]], [240, 320], Qt.Orientation.Horizontal)

    def _action(self, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut:
            action.setShortcut(QKeySequence(shortcut))
            action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(f"{tip} ({QKeySequence(shortcut).toString()})" if shortcut else tip)
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        a = self._action
        self.action_open = a("&Open...", self.open_dialog, QKeySequence.StandardKey.Open, "Open an image")
        self.action_add_image = a("&Add image as layer...", self.add_image_dialog, "Ctrl+Shift+O", "Add another image (e.g. a moving image) as a layer")
        self.action_export_image = a("Export &image...", lambda: self._export_dialog("image"), "Ctrl+Shift+E", "Export the selected image layer")
        self.action_export_mask = a("Export &mask (PNG 0/255)...", lambda: self._export_dialog("mask"), "Ctrl+E", "Export the selected or top mask")
        self.action_export_labels = a("Export &labels...", lambda: self._export_dialog("labels"), None, "Export a labels layer (uint8/uint16 PNG or TIFF)")
        self.action_export_labels_color = a("Export labels as &colour PNG...", lambda: self._export_dialog("labels_color"), None, "Export labels drawn in their colours")
        self.action_export_cutout = a("Export &cut-out (RGBA PNG)...", lambda: self._export_dialog("cutout"), None, "Export the image with the mask as alpha")
        self.action_export_recipe = a("Export &recipe (JSON + Python)...", self.export_recipe_dialog, None, "Save the applied steps to replay on other images with maskwork batch")
        self.action_export_transform = a("Export &transform (JSON or .tfm)...", self.export_transform_dialog, None, "Save the last registration's transform")
        self.action_load_transform = a("Load transform...", self.load_transform_dialog, None, "Load a transform saved as JSON or .tfm")
        self.action_show_matches = a("Show feature &matches", self.show_feature_matches, None, "Add the last feature registration's matches as an image (inliers green, outliers red)")
        self.action_apply_transform = a("Apply &transform to layer", self.apply_transform_to_selected, None, "Warp the selected layer with the current transform (masks nearest-neighbour)")
        self.action_open_in_napari = a("Open in &napari", self.open_in_napari, None, "Send the layers to a napari viewer (needs maskwork[napari])")
        self.action_close = a("&Close", self.close_document, QKeySequence.StandardKey.Close, "Close the image")
        self.action_quit = a("&Quit", self.close, QKeySequence.StandardKey.Quit, "Quit maskwork")
        self.action_undo = a("&Undo", self.undo, QKeySequence.StandardKey.Undo, "Undo the last step")
        self.action_redo = a("&Redo", self.redo, "Ctrl+Shift+Z", "Redo the step undone last")
        self.action_remove_click = a("Remove last &click", self.document.remove_last_point, "Backspace", "Remove the newest click or point prompt")
        self.action_clear_seeds = a("Clear box and &points", self.document.clear_seeds, None, "Remove the box and point prompts")
        self.action_preferences = a("&Preferences...", self.preferences_dialog, "Ctrl+,", "Deep-learning device and other settings")
        self.action_fit = a("&Fit to window", self.canvas.fit, "Ctrl+0", "Show the whole image")
        self.action_actual = a("&Actual pixels (1:1)", self.canvas.actual_pixels, "Ctrl+1", "One image pixel per screen pixel")
        self.action_zoom_in = a("Zoom &in", lambda: self.canvas.zoom_by(1.25), QKeySequence.StandardKey.ZoomIn, "Zoom in")
        self.action_zoom_out = a("Zoom &out", lambda: self.canvas.zoom_by(0.8), QKeySequence.StandardKey.ZoomOut, "Zoom out")
        self.action_swap = a("S&wap foreground/background", self.canvas.swap_labels, "X", "Swap the foreground and background labels")
        self.action_brush_bigger = a("Bigger brush", lambda: self._resize_brush(1.25), "]", "Bigger brush")
        self.action_brush_smaller = a("Smaller brush", lambda: self._resize_brush(0.8), "[", "Smaller brush")
        self.action_preview = a("&Preview", self.runner.preview, "Ctrl+P", "Preview the operator")
        self.action_apply = a("&Apply", self.runner.apply, "Ctrl+Return", "Apply the operator as a new layer")
        self.action_cancel = a("&Cancel", self.runner.cancel, "Esc", "Stop the running operator")
        self.action_cancel.setEnabled(False)

        self.tool_group = QActionGroup(self)
        self.tool_actions: dict[Tool, QAction] = {}
        for tool, text, key in TOOLS:
            action = a(text, lambda checked=False, t=tool: setattr(self.canvas, "tool", t), key, text.replace("&", ""))
            action.setCheckable(True)
            if tool in TOOL_TIPS:
                action.setStatusTip(TOOL_TIPS[tool])
                action.setToolTip(f"{TOOL_TIPS[tool]} ({key})")
            self.tool_group.addAction(action)
            self.tool_actions[tool] = action
        self.tool_actions[self.canvas.tool].setChecked(True)
        self.label_actions = []
        for label in range(1, MAX_LABEL_CHOICE + 1):
            self.label_actions.append(a(f"Label {label}", lambda checked=False, v=label: setattr(self.canvas, "active_label", v), str(label)))

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        file_menu.addActions([self.action_open, self.action_add_image])
        self.recent_menu = file_menu.addMenu("Open &recent")
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        file_menu.addSeparator()
        file_menu.addActions(
            [
                self.action_export_image,
                self.action_export_mask,
                self.action_export_labels,
                self.action_export_labels_color,
                self.action_export_cutout,
                self.action_export_recipe,
                self.action_export_transform,
                self.action_load_transform,
            ]
        )
        file_menu.addSeparator()
        file_menu.addAction(self.action_open_in_napari)
        file_menu.addSeparator()
        file_menu.addActions([self.action_close, self.action_quit])

        edit_menu = bar.addMenu("&Edit")
        edit_menu.addActions([self.action_undo, self.action_redo])
        edit_menu.addSeparator()
        edit_menu.addActions([self.action_remove_click, self.action_clear_seeds])
        edit_menu.addSeparator()
        edit_menu.addAction(self.action_preferences)

        view_menu = bar.addMenu("&View")
        view_menu.addActions([self.action_fit, self.action_actual, self.action_zoom_in, self.action_zoom_out])
        view_menu.addSeparator()
        for dock in self.docks.values():
            view_menu.addAction(dock.toggleViewAction())

        layers_menu = bar.addMenu("&Layers")
        panel = self.layer_panel
        layers_menu.addActions([panel.action_new_markers, panel.action_new_mask, panel.action_duplicate, panel.action_delete])
        layers_menu.addSeparator()
        layers_menu.addActions([panel.action_to_labels, panel.action_to_mask, panel.action_move_up, panel.action_move_down])
        layers_menu.addSeparator()
        layers_menu.addAction(self.action_apply_transform)

        tools_menu = bar.addMenu("&Tools")
        tools_menu.addActions(list(self.tool_actions.values()))
        tools_menu.addSeparator()
        tools_menu.addActions([self.action_swap, self.action_brush_bigger, self.action_brush_smaller])

        self.operator_actions: dict[str, QAction] = {}
        menus: dict[str, QMenu] = {}
        for spec in all_operators():
            path = spec.category.split("/")
            parent = None
            for depth in range(len(path)):
                key = "/".join(path[: depth + 1])
                if key not in menus:
                    menus[key] = (parent.addMenu(path[depth]) if parent else bar.addMenu(f"&{path[depth]}"))
                parent = menus[key]
            action = QAction(spec.title + ("" if not spec.missing_requirements() else " (needs " + ", ".join(spec.missing_requirements()) + ")"), self)
            action.setStatusTip(spec.summary)
            action.triggered.connect(lambda checked=False, s=spec: self.choose_operator(s))
            parent.addAction(action)
            self.operator_actions[spec.id] = action
        if "Registration" in menus:
            menus["Registration"].addSeparator()
            menus["Registration"].addAction(self.action_show_matches)
        run_menu = bar.addMenu("&Run")
        run_menu.addActions([self.action_preview, self.action_apply, self.action_cancel])

        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self._action("&About maskwork", self._about))

    def _build_toolbars(self) -> None:
        tools = QToolBar("Tools", self)
        tools.setObjectName("toolsToolbar")
        tools.addActions(list(self.tool_actions.values()))
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, tools)

        options = QToolBar("Tool options", self)
        options.setObjectName("toolOptionsToolbar")
        options.addWidget(QLabel(" Label "))
        self.label_combo = QComboBox()
        self.label_combo.setObjectName("labelCombo")
        for label in range(1, MAX_LABEL_CHOICE + 1):
            self.label_combo.addItem(f"{label}  {LABEL_NAMES.get(label, f'class {label}')}", label)
        self.label_combo.setToolTip("Label painted by the brush: 1 foreground, 2 background, 3.. more classes (keys 1-9, X swaps)")
        options.addWidget(self.label_combo)
        options.addWidget(QLabel("  Brush "))
        self.brush_slider = QSlider(Qt.Orientation.Horizontal)
        self.brush_slider.setObjectName("brushSlider")
        self.brush_slider.setRange(1, 200)
        self.brush_slider.setFixedWidth(160)
        self.brush_slider.setToolTip("Brush radius in image pixels ([ smaller, ] bigger)")
        options.addWidget(self.brush_slider)
        self.brush_label = QLabel()
        self.brush_label.setMinimumWidth(48)
        options.addWidget(self.brush_label)
        self.addToolBar(Qt.ToolBarArea.TopToolBarArea, options)

    def _build_status_bar(self) -> None:
        bar = self.statusBar()
        self.readout_label = QLabel()
        self.readout_label.setObjectName("readoutLabel")
        self.zoom_label = QLabel()
        self.zoom_label.setObjectName("zoomLabel")
        self.progress_bar = QProgressBar()
        self.progress_bar.setObjectName("progressBar")
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setMaximumWidth(220)
        self.progress_bar.setTextVisible(False)
        # Keep the bar's room while hidden, so the status bar (and the canvas above it)
        # does not change height each time an operator starts or ends.
        policy = self.progress_bar.sizePolicy()
        policy.setRetainSizeWhenHidden(True)
        self.progress_bar.setSizePolicy(policy)
        self.progress_bar.setVisible(False)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setObjectName("cancelButton")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.runner.cancel)
        bar.addWidget(self.readout_label, 1)
        bar.addPermanentWidget(self.zoom_label)
        bar.addPermanentWidget(self.progress_bar)
        bar.addPermanentWidget(self.cancel_button)

    def _connect(self) -> None:
        canvas = self.canvas
        canvas.cursor_moved.connect(self._on_cursor_moved)
        canvas.zoom_changed.connect(lambda zoom: self.zoom_label.setText(f"{zoom * 100:.0f}%"))
        canvas.tool_changed.connect(self._on_tool_changed)
        canvas.brush_radius_changed.connect(self._on_brush_radius_changed)
        canvas.active_label_changed.connect(self._on_active_label_changed)
        self.label_combo.currentIndexChanged.connect(lambda i: setattr(canvas, "active_label", self.label_combo.itemData(i)))
        self.brush_slider.valueChanged.connect(lambda v: setattr(canvas, "brush_radius", float(v)))

        panel = self.operator_panel
        panel.params_changed.connect(self._on_params_changed)
        panel.preview_requested.connect(self.runner.preview)
        panel.apply_requested.connect(self.runner.apply)
        panel.cancel_requested.connect(self.runner.cancel)
        panel.auto_preview_changed.connect(self.runner.set_auto_preview)

        runner = self.runner
        runner.busy_changed.connect(self._on_busy_changed)
        runner.progress.connect(self._on_progress)
        runner.preview_changed.connect(canvas.set_preview)
        runner.failed.connect(self._on_operator_failed)
        runner.message.connect(lambda text: self.statusBar().showMessage(text, 5000))
        runner.applied.connect(self._on_applied)
        runner.scores.connect(self._on_scores)
        runner.partial_scores.connect(self._on_partial_scores)
        runner.memory_warning.connect(self._on_memory_warning)
        runner.prepared.connect(lambda text: self.statusBar().showMessage(text, 8000))
        runner.busy_changed.connect(lambda busy: busy and self._reset_metric_curve())
        self.alignment_panel.overlay_changed.connect(canvas.set_overlay)

        history = self.document.history
        history.changed.connect(self._update_history_actions)
        history.changed.connect(self._update_title)

    # -- settings ---------------------------------------------------------------------
    def _restore_settings(self) -> None:
        store = settings()
        geometry = store.value("window/geometry")
        if isinstance(geometry, QByteArray):
            self.restoreGeometry(geometry)
        else:
            screen = self.screen().availableGeometry() if self.screen() else None
            if screen is not None and screen.width() > 0:
                self.resize(int(screen.width() * 0.94), int(screen.height() * 0.92))
            else:
                self.resize(1400, 900)
        state = store.value("window/state")
        if isinstance(state, QByteArray):
            self.restoreState(state)
        # Auto-preview first: choosing the Quick select tool turns it on.
        self.operator_panel.auto_preview = store.value("operator/auto_preview", "false") in (True, "true")
        self.runner.auto_preview = self.operator_panel.auto_preview
        tool = store.value("tools/tool", Tool.BRUSH.value)
        self.canvas.tool = Tool(tool) if tool in {t.value for t in Tool} else Tool.BRUSH
        self.canvas.brush_radius = float(store.value("tools/brush_radius", 8.0))
        self.canvas.active_label = int(store.value("tools/active_label", 1))
        self._on_brush_radius_changed(self.canvas.brush_radius)
        self._on_active_label_changed(self.canvas.active_label)
        self._apply_device_preference(str(store.value("dl/device", "auto")))

    def _apply_device_preference(self, device: str) -> None:
        try:
            set_preferred_device(device)
        except InputError:  # a settings file from another version: keep automatic
            set_preferred_device("auto")

    def preferences_dialog(self) -> PreferencesDialog:
        """Show Edit > Preferences; OK stores and applies the choices."""
        dialog = PreferencesDialog(preferred_device(), self)
        dialog.setObjectName("preferencesDialog")

        def store_choices() -> None:
            settings().setValue("dl/device", dialog.device)
            self._apply_device_preference(dialog.device)
            self.statusBar().showMessage(f"Deep-learning device: {dialog.device}", 5000)

        dialog.accepted.connect(store_choices)
        dialog.open()
        return dialog

    def save_settings(self) -> None:
        """Remember window layout, tool settings and operator parameters."""
        store = settings()
        store.setValue("window/geometry", self.saveGeometry())
        store.setValue("window/state", self.saveState())
        store.setValue("tools/tool", self.canvas.tool.value)
        store.setValue("tools/brush_radius", self.canvas.brush_radius)
        store.setValue("tools/active_label", self.canvas.active_label)
        store.setValue("operator/auto_preview", self.operator_panel.auto_preview)
        if self.runner.spec is not None:
            store.setValue("operator/last", self.runner.spec.id)
            store.setValue(f"params/{self.runner.spec.id}", json.dumps(self.runner.params))
        store.sync()

    # -- files ------------------------------------------------------------------------
    def open_dialog(self) -> None:
        """Ask for an image and open it."""
        path, _ = QFileDialog.getOpenFileName(self, "Open image", self._last_dir(), IMAGE_FILTER)
        if path:
            self.open_paths([path])

    def add_image_dialog(self) -> None:
        """Ask for an image and add it as another layer."""
        path, _ = QFileDialog.getOpenFileName(self, "Add image as layer", self._last_dir(), IMAGE_FILTER)
        if path:
            self.add_image_layers(path)

    def _last_dir(self) -> str:
        return str(settings().value("files/last_dir", str(Path.home())))

    def open_paths(self, paths: list[str | Path]) -> bool:
        """Open the first file as a new document and add the others as layers.

        Returns False when the person kept the current document or the file is unreadable.
        """
        if not paths:
            return False
        first = Path(paths[0])
        try:
            pages = io.read_images(first)
        except (ValueError, OSError) as error:
            self.show_error(f"Cannot open {first.name}", str(error))
            return False
        if self.document.layers and not self.confirm_discard():
            return False
        self.runner.cancel()
        self.runner.clear_preview()
        self.document.reset()
        self.recorder.reset()
        self._add_pages(first, pages)
        for extra in paths[1:]:
            self.add_image_layers(extra, undoable=False)
        self.document.history.clear()
        self.document.history.mark_saved()
        self.source_path = first
        self._remember_file(first)
        self.canvas.fit()
        self._update_title()
        self.statusBar().showMessage(f"Opened {first.name}: {pages[0].shape[1]} x {pages[0].shape[0]}, {pages[0].dtype}", 5000)
        self.runner.prepare()  # e.g. Segment Anything encodes the new image before the first prompt
        return True

    def add_image_layers(self, path: str | Path, undoable: bool = True) -> bool:
        """Add every page of ``path`` as an image layer (one undoable step)."""
        path = Path(path)
        try:
            pages = io.read_images(path)
        except (ValueError, OSError) as error:
            self.show_error(f"Cannot open {path.name}", str(error))
            return False
        with self.document.history.group(f"Add {path.name}"):
            self._add_pages(path, pages)
        if not undoable:
            return True
        self._remember_file(path)
        return True

    def _add_pages(self, path: Path, pages: list[np.ndarray]) -> None:
        for index, page in enumerate(pages):
            name = path.name if len(pages) == 1 else f"{path.name} [{index + 1}]"
            layer = Layer(page, LayerKind.IMAGE, self.document.layers.unique_name(name), metadata={"source": str(path)})
            self.document.add_layer(layer)
        # The first image stays the one operators work on.
        images = self.document.layers.of_kind(LayerKind.IMAGE)
        if images:
            self.document.layers.selected = images[0]

    def _remember_file(self, path: Path) -> None:
        add_recent_file(path)
        store = settings()
        store.setValue("files/last_dir", str(path.resolve().parent))
        store.sync()

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        files = recent_files()
        for path in files:
            action = self.recent_menu.addAction(Path(path).name)
            action.setToolTip(path)
            action.triggered.connect(lambda checked=False, p=path: self.open_paths([p]))
        if not files:
            self.recent_menu.addAction("(none)").setEnabled(False)

    def close_document(self) -> bool:
        """Close the image (asks first when there is unsaved work)."""
        if self.document.layers and not self.confirm_discard():
            return False
        self.runner.cancel()
        self.runner.clear_preview()
        self.document.reset()
        self.recorder.reset()  # its input snapshots are full-size arrays
        self.source_path = None
        self._update_title()
        return True

    # -- export -----------------------------------------------------------------------
    def _export_dialog(self, what: str) -> None:
        suffix = {"image": ".png", "mask": "_mask.png", "labels": "_labels.png", "labels_color": "_labels_color.png", "cutout": "_cutout.png"}[what]
        stem = self.source_path.stem if self.source_path else "untitled"
        start = str(Path(self._last_dir()) / f"{stem}{suffix}")
        path, _ = QFileDialog.getSaveFileName(self, f"Export {what.replace('_', ' ')}", start, IMAGE_FILTER)
        if path:
            self.export(what, path)

    def layer_for_export(self, what: str) -> Layer | None:
        """The layer an export uses: the selected one if it fits, else the top one that does."""
        kinds = {
            "image": (LayerKind.IMAGE,),
            "mask": (LayerKind.MASK, LayerKind.LABELS),
            "cutout": (LayerKind.MASK, LayerKind.LABELS),
            "labels": (LayerKind.LABELS, LayerKind.MASK, LayerKind.MARKERS),
            "labels_color": (LayerKind.LABELS, LayerKind.MASK, LayerKind.MARKERS),
        }[what]
        selected = self.document.layers.selected
        if selected is not None and selected.kind in kinds:
            return selected
        candidates = self.document.layers.of_kind(*kinds)
        for kind in kinds:  # prefer the first kind listed
            of_kind = [layer for layer in candidates if layer.kind is kind]
            if of_kind:
                return of_kind[-1]
        return None

    def export(self, what: str, path: str | Path) -> Path | None:
        """Export ``what`` (image, mask, labels, labels_color, cutout) to ``path`` with a sidecar."""
        layer = self.layer_for_export(what)
        if layer is None:
            needed = "an image" if what == "image" else "a mask or labels layer"
            self.show_error(f"Nothing to export as {what.replace('_', ' ')}", f"Export needs {needed}.")
            return None
        provenance = {
            "operator": layer.metadata.get("operator"),
            "parameters": layer.metadata.get("parameters"),
            "layer": layer.name,
            "inputs": {"image": str(self.source_path) if self.source_path else None},
            "seeds": io.seed_summary(self._markers_data(), self.document.rect, self.document.points),
        }
        embedded, recipe_warning = self._recipe_for_sidecar(path)
        try:
            if what == "image":
                written = io.write_image(path, layer.data, provenance=provenance, recipe=embedded)
            elif what == "mask":
                written = io.write_mask(path, layer.data, provenance=provenance, recipe=embedded)
            elif what == "labels":
                written = io.write_labels(path, layer.data, provenance=provenance, recipe=embedded)
            elif what == "labels_color":
                written = io.write_labels_color(path, layer.data, provenance=provenance, recipe=embedded)
            else:
                base = self.document.base_image
                written = io.write_cutout(path, base.data, layer.data, provenance=provenance, recipe=embedded)
        except (ValueError, OSError) as error:
            self.show_error(f"Cannot export {Path(path).name}", str(error))
            return None
        self.document.history.mark_saved()
        self.statusBar().showMessage(f"Exported {written}{recipe_warning}", 8000)
        return Path(written)

    def _recipe_for_sidecar(self, path: str | Path) -> tuple[dict | None, str]:
        """The recipe to embed in the sidecar of an export to ``path`` (or None), and a
        warning when it had to be left out.

        A recipe that cannot be written (an output renamed to a reserved name, a seed
        folder that cannot be made) never blocks the export itself.
        """
        try:
            recipe = self.current_recipe()
            return (recipe.embed(path) if recipe.steps else None), ""
        except (ValueError, OSError) as error:  # InputError is a ValueError
            return None, f" (without its recipe: {error})"

    def current_recipe(self) -> Recipe:
        """The recipe of the Applies whose results are still in the document."""
        return self.recorder.recipe(self.document.layers, self.document.base_image)

    def export_recipe_dialog(self) -> None:
        """Ask where to save the recipe, then save it."""
        stem = self.source_path.stem if self.source_path else "recipe"
        path, _ = QFileDialog.getSaveFileName(self, "Export recipe", str(Path(self._last_dir()) / f"{stem}_recipe.json"), "Recipes (*.json)")
        if path:
            self.export_recipe(path)

    def export_recipe(self, path: str | Path) -> Path | None:
        """Write the recipe as JSON (seed files beside it) and as a Python script (``.py``).

        Returns
        -------
        Path or None
            The JSON file, or None when nothing was applied yet or writing failed.
        """
        try:
            recipe = self.current_recipe()
            if not recipe.steps:
                self.show_error("No recipe yet", "Apply an operator first: every Apply is recorded as a recipe step.")
                return None
            written = recipe.save(path)
            script = written.with_suffix(".py")
            script.write_text(to_python(recipe), encoding="utf-8")
        except (ValueError, OSError) as error:
            self.show_error(f"Cannot export {Path(path).name}", str(error))
            return None
        self.statusBar().showMessage(
            f"Recipe of {len(recipe.steps)} steps: {written.name} and {script.name}; "
            f"replay with: maskwork batch {written.name} IMAGES... -o OUTDIR", 8000)
        return written

    def _markers_data(self) -> np.ndarray | None:
        markers = self.document.layers.of_kind(LayerKind.MARKERS)
        return markers[-1].data if markers else None

    # -- operators --------------------------------------------------------------------
    def _on_tool_changed(self, name: str) -> None:
        self.tool_actions[Tool(name)].setChecked(True)
        if Tool(name) in TOOL_TIPS:
            self.statusBar().showMessage(TOOL_TIPS[Tool(name)], 8000)
        if Tool(name) is Tool.QUICK_SELECT:
            # Quick select answers every click: its operator, previewing automatically.
            if self.runner.spec is None or self.runner.spec.id != "click_select":
                self.choose_operator(get("click_select"))
            self.operator_panel.auto_preview = True

    def choose_operator(self, spec: OperatorSpec) -> None:
        """Show ``spec``'s parameter form (with remembered values) and make it current."""
        remembered = {}
        text = settings().value(f"params/{spec.id}")
        if text:
            try:
                stored = json.loads(text)
                remembered = {name: value for name, value in stored.items() if any(p.name == name for p in spec.params)}
            except (TypeError, ValueError):
                remembered = {}
        self.operator_panel.set_operator(spec, remembered)
        if spec.category.startswith("Segmentation/Threshold"):
            base = self.document.base_image
            self.operator_histogram.set_image(base.data if base is not None else None)
            self.operator_histogram.show_thresholds([])
            self.operator_panel.set_plot(self.operator_histogram)
        else:
            self.operator_panel.set_plot(None)
        if spec.category.startswith("Registration") or spec.id == "scribble_cnn":
            # The optimiser's metric, or the CNN's training loss, drawn as it runs.
            self._reset_metric_curve()
            self.metric_plot.setLabel("left", "training loss" if spec.id == "scribble_cnn" else "metric")
            self.metric_plot.setLabel("bottom", "preview" if spec.id == "scribble_cnn" else "iteration")
            self.operator_panel.set_plot(self.metric_plot)
        if spec.id == "denoise":
            self._suggest_denoising()
        if spec.id == "run_model":
            self.operator_panel.set_plot(self.model_info_button)
        self.runner.set_operator(spec, {**spec.defaults(), **self.operator_panel.values()})
        self.docks["operator"].show()
        self.docks["operator"].raise_()
        missing = spec.missing_requirements()
        if missing:
            self.statusBar().showMessage(f"{spec.title} needs {', '.join(missing)}", 8000)
        elif self.runner.auto_preview:
            self.runner.preview()

    def show_model_info(self) -> None:
        """Describe the chosen model file (format, inputs, outputs, settings) in a message."""
        from maskwork.operators.dl.model_file import describe_model

        path = self.runner.params.get("model", "")

        def show(value) -> None:
            if isinstance(value, Exception):
                self.show_error("Cannot read the model", str(value))
                return
            box = QMessageBox(QMessageBox.Icon.Information, "Model", _model_description(value), QMessageBox.StandardButton.Ok, self)
            box.setWindowModality(Qt.WindowModality.WindowModal)
            box.open()
            self.last_message_box = box

        self.statusBar().showMessage("Reading the model...", 3000)
        self._model_info_job = BackgroundJob(lambda: describe_model(path))
        self._model_info_job.done.connect(show)
        self._model_info_job.start()

    def _suggest_denoising(self) -> None:
        """Estimate the noise of the image off the UI thread and offer matching parameters."""
        base = self.document.base_image
        if base is None:
            return
        from maskwork.operators.restore.denoise import estimate_noise, intensity_range, suggested_parameters

        data = base.data
        # A central crop of about a megapixel estimates the noise as well as the whole.
        rows, cols = data.shape[:2]
        half = 512
        crop = data[max(0, rows // 2 - half) : rows // 2 + half, max(0, cols // 2 - half) : cols // 2 + half]

        def estimate():
            sigma = estimate_noise(crop)
            return sigma, suggested_parameters(sigma, intensity_range(crop))

        def show(value) -> None:
            if isinstance(value, Exception) or self.runner.spec is None or self.runner.spec.id != "denoise":
                return
            sigma, values = value
            self.operator_panel.set_suggestion(f"Estimated noise: sigma {sigma:.3g} (image units)", values)

        self._noise_job = BackgroundJob(estimate)
        self._noise_job.done.connect(show)
        self._noise_job.start()

    def _on_params_changed(self, values: dict) -> None:
        self.runner.set_params(values)
        if self.runner.spec is not None:
            # Remembered at once, not only at quit: a chosen model file survives a crash.
            settings().setValue(f"params/{self.runner.spec.id}", json.dumps(values))

    def _on_applied(self, layers: list) -> None:
        if layers:
            metadata = layers[0].metadata
            self.recorder.record(metadata["operator"], metadata["parameters"], self.runner.last_inputs,
                                 self.runner.last_sources, layers)
        self._update_title()

    def _on_memory_warning(self, message: str, purpose: str) -> None:
        title = self.runner.spec.title if self.runner.spec is not None else "The operator"
        if self.ask("Not enough memory?", f"{title}: {message}.\n\nRun it anyway?"):
            self.runner.confirm_memory(purpose)
        else:
            self.runner.decline_memory()
            self.statusBar().showMessage(f"{title} not run: {message}", 8000)

    def _on_busy_changed(self, busy: bool) -> None:
        self.progress_bar.setVisible(busy)
        self.progress_bar.setValue(0)
        self.cancel_button.setEnabled(busy)
        self.action_cancel.setEnabled(busy)
        self.operator_panel.set_running(busy)

    def _on_progress(self, fraction: float, message: str) -> None:
        self.progress_bar.setValue(int(fraction * 1000))
        if message:
            self.statusBar().showMessage(message, 3000)

    def _on_scores(self, scores: dict) -> None:
        self.operator_panel.show_scores(scores)
        # "threshold" for one, "threshold_1", "threshold_2", ... for several (multi-Otsu).
        thresholds = [float(value) for name, value in sorted(scores.items()) if name.startswith("threshold")]
        self.measure_panel.show_thresholds(thresholds)
        self.operator_histogram.show_thresholds(thresholds)

    def _reset_metric_curve(self) -> None:
        self.metric_values = []
        self._metric_curve.setData([], [])

    def _on_partial_scores(self, scores: dict) -> None:
        if "metric" in scores:
            self.metric_values.append(float(scores["metric"]))
            self._metric_curve.setData(np.arange(len(self.metric_values)), self.metric_values)

    # -- transforms -------------------------------------------------------------------
    @property
    def current_transform(self):
        """The selected layer's transform if it has one, else the last applied one."""
        selected = self.document.layers.selected
        if selected is not None and selected.metadata.get("transform") is not None:
            return selected.metadata["transform"]
        return self.runner.last_transform

    def export_transform(self, path: str | Path) -> Path | None:
        """Save the current transform as JSON (matrix, parameters) or as a SimpleITK .tfm."""
        transform = self.current_transform
        if transform is None:
            self.show_error("No transform", "Apply a registration first (Registration menu).")
            return None
        path = Path(path)
        try:
            if path.suffix.lower() == ".tfm":
                transform.save_tfm(path)
            else:
                transform.save(path)
        except (ValueError, OSError) as error:
            self.show_error(f"Cannot save {path.name}", str(error))
            return None
        self.statusBar().showMessage(f"Saved transform {path}", 5000)
        return path

    def export_transform_dialog(self) -> None:
        """Ask where to save the current transform."""
        path, _ = QFileDialog.getSaveFileName(self, "Export transform", str(Path(self._last_dir()) / "transform.json"), "Transform (*.json *.tfm)")
        if path:
            self.export_transform(path)

    def load_transform_dialog(self) -> None:
        """Load a transform saved earlier and make it the current one."""
        path, _ = QFileDialog.getOpenFileName(self, "Load transform", self._last_dir(), "Transform (*.json *.tfm)")
        if path:
            self.load_transform(path)

    def load_transform(self, path: str | Path):
        """Read a JSON or .tfm transform; a .tfm maps onto the current base image's grid."""
        from maskwork.operators.registration.transform import Transform

        path = Path(path)
        try:
            if path.suffix.lower() == ".tfm":
                shape = self.document.shape
                if shape is None:
                    raise ValueError("open the fixed image first: a .tfm has no image size")
                transform = Transform.load_tfm(path, shape, shape)
            else:
                transform = Transform.load(path)
        except (ValueError, OSError, KeyError) as error:
            self.show_error(f"Cannot load {path.name}", str(error))
            return None
        self.runner.last_transform = transform
        self.statusBar().showMessage(f"Loaded {transform.kind} transform from {path.name}", 5000)
        return transform

    def show_feature_matches(self) -> Layer | None:
        """Add the last feature registration's matches, drawn side by side, as an image layer."""
        transform = self.runner.last_transform
        inputs = self.runner.last_inputs
        if transform is None or "inliers_fixed" not in transform.parameters or "image2" not in inputs:
            self.show_error("No feature matches", "Apply a feature-based registration first.")
            return None
        from maskwork.operators.registration.features import match_overlay

        overlay = match_overlay(inputs["image"], inputs["image2"], transform)
        layer = Layer(overlay, LayerKind.IMAGE, self.document.layers.unique_name("feature matches"))
        return self.document.add_layer(layer, step="Show feature matches")

    def apply_transform_to_selected(self) -> Layer | None:
        """Warp the selected layer with the current transform into a new layer (undoable)."""
        transform = self.current_transform
        layer = self.document.layers.selected
        if transform is None or layer is None:
            self.show_error("Nothing to transform", "Select a layer and apply or load a registration first.")
            return None
        from maskwork.operators.registration.transform import warp_layer

        warped = warp_layer(layer.data, transform, layer.kind.value)
        result = Layer(
            warped,
            layer.kind,
            self.document.layers.unique_name(f"{layer.name} (aligned)"),
            opacity=layer.opacity,
            colormap=layer.colormap,
            metadata={**layer.metadata, "transform": transform},
        )
        return self.document.add_layer(result, step=f"Transform {layer.name}")

    def open_in_napari(self):
        """Send the layers to a napari viewer (the one opened before, while it is open).

        Returns
        -------
        napari.Viewer or None
            None when napari is not installed or there is nothing to send.
        """
        if not self.document.layers:
            self.show_error("Nothing to send", "Open an image first.")
            return None
        viewer = self._napari_viewer if _napari_window_open(self._napari_viewer) else None
        self.statusBar().showMessage("Starting napari..." if viewer is None else "Sending the layers to napari...", 5000)
        try:
            from maskwork.napari.bridge import open_in_napari

            # napari itself is imported inside, on first use (it takes seconds).
            self._napari_viewer = open_in_napari(list(self.document.layers), viewer=viewer)
        except ImportError as error:
            self.show_error("napari is not installed", f"Open in napari needs napari: pip install 'maskwork[napari]'\n({error})")
            return None
        return self._napari_viewer

    def _on_operator_failed(self, error: OperatorError) -> None:
        title = "Cannot run the operator" if error.is_input_error else "The operator failed"
        self.show_error(title, error.message, error.details)

    # -- edit -------------------------------------------------------------------------
    def undo(self) -> None:
        """Undo the newest step (strokes, layer changes, operator results)."""
        name = self.document.history.undo()
        if name:
            self.statusBar().showMessage(f"Undid {name}", 3000)

    def redo(self) -> None:
        """Redo the step undone last."""
        name = self.document.history.redo()
        if name:
            self.statusBar().showMessage(f"Redid {name}", 3000)

    def _update_history_actions(self) -> None:
        history = self.document.history
        self.action_undo.setEnabled(history.can_undo)
        self.action_redo.setEnabled(history.can_redo)
        names = history.undo_names
        self.action_undo.setText(f"&Undo {names[-1]}" if names else "&Undo")
        redo = history.redo_names
        self.action_redo.setText(f"&Redo {redo[0]}" if redo else "&Redo")

    def _resize_brush(self, factor: float) -> None:
        radius = self.canvas.brush_radius
        resized = round(radius * factor)
        if resized == radius:  # small brushes still change by at least one pixel
            resized = radius + (1 if factor > 1 else -1)
        self.canvas.brush_radius = max(1.0, resized)

    def _on_brush_radius_changed(self, radius: float) -> None:
        self.brush_slider.blockSignals(True)
        self.brush_slider.setValue(int(round(radius)))
        self.brush_slider.blockSignals(False)
        self.brush_label.setText(f"{radius:.0f} px")

    def _on_active_label_changed(self, label: int) -> None:
        index = self.label_combo.findData(label)
        if index >= 0:
            self.label_combo.blockSignals(True)
            self.label_combo.setCurrentIndex(index)
            self.label_combo.blockSignals(False)

    def _on_cursor_moved(self, row: int, col: int, text: str) -> None:
        self.readout_label.setText(f"row {row}, col {col}   {text}" if text else "")

    # -- messages ---------------------------------------------------------------------
    def show_error(self, title: str, message: str, details: str = "") -> QMessageBox:
        """Show a non-blocking warning; the document is left as it was."""
        box = QMessageBox(QMessageBox.Icon.Warning, title, message, QMessageBox.StandardButton.Ok, self)
        if details:
            box.setDetailedText(details)
        box.setWindowModality(Qt.WindowModality.WindowModal)
        box.open()
        self.last_message_box = box
        self.statusBar().showMessage(message, 8000)
        return box

    def ask(self, title: str, question: str) -> bool:
        """A yes/no question (tests replace this method)."""
        answer = QMessageBox.question(self, title, question)
        return answer == QMessageBox.StandardButton.Yes

    def confirm_discard(self) -> bool:
        """True when there is no unsaved work or the person agrees to discard it."""
        if not self.document.history.is_modified:
            return True
        return self.ask("Unsaved work", "The document has changes that were not exported. Discard them?")

    def _about(self) -> None:
        from maskwork import __version__

        QMessageBox.about(self, "About maskwork", f"maskwork {__version__}\nInteractive image processing: segment, restore, register.")

    def _update_title(self) -> None:
        name = self.source_path.name if self.source_path else "untitled"
        self.setWindowTitle(f"maskwork - {name}[*]")
        self.setWindowModified(self.document.history.is_modified)

    # -- autosave and recovery --------------------------------------------------------
    @property
    def recovery_file(self) -> Path:
        """Where autosave writes the document."""
        return autosave.recovery_path(config_dir())

    def autosave_now(self) -> bool:
        """Write the recovery file if the document changed since the last autosave."""
        history = self.document.history
        state = (tuple(history.undo_names), history.nbytes, len(self.document.layers))
        if not self.document.layers or not history.is_modified or state == self._autosaved_state:
            return False
        autosave.save_recovery(self.document, self.recovery_file, str(self.source_path) if self.source_path else None)
        self._autosaved_state = state
        return True

    def offer_recovery(self) -> bool:
        """If the last session crashed, offer to restore its autosaved document."""
        path = self.recovery_file
        if not path.exists():
            return False
        if not self.ask("Restore unsaved work?", "maskwork did not close properly last time. Restore the autosaved document?"):
            path.unlink(missing_ok=True)
            return False
        try:
            source = autosave.load_recovery(path, self.document)
        except (OSError, ValueError, KeyError) as error:
            self.show_error("Cannot restore the autosaved document", str(error))
            return False
        self.source_path = Path(source) if source else None
        # Restored work is unsaved work: mark it so closing asks again.
        self.document.history.mark_unsaved()
        self.canvas.fit()
        self._update_title()
        return True

    # -- window events ----------------------------------------------------------------
    def closeEvent(self, event) -> None:  # noqa: N802
        if self.document.layers and not self.confirm_discard():
            event.ignore()
            return
        self.runner.cancel()
        stop_all_workers()
        wait_for_jobs()
        self._autosave_timer.stop()
        self.save_settings()
        self.recovery_file.unlink(missing_ok=True)
        event.accept()

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls() and any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_paths(paths)


def _napari_window_open(viewer) -> bool:
    """Whether ``viewer`` (a napari viewer or None) still has its window on screen."""
    qt_window = getattr(getattr(viewer, "window", None), "_qt_window", None)
    try:
        return qt_window is not None and qt_window.isVisible()
    except RuntimeError:  # the Qt object behind it was deleted when the person closed it
        return False


def _model_description(info: dict) -> str:
    """The text of Model info: what ``describe_model`` found, one fact per line."""

    def tensors(items) -> str:
        return "; ".join(f"{item['name']} {item.get('type', '')} {item.get('shape') or ''}".strip() for item in items) or "not declared"

    settings = info["settings"]
    lines = [
        f"{info['format']} model, {format_bytes(info['size_bytes'])}",
        f"Inputs: {tensors(info.get('inputs', []))}",
        f"Outputs: {tensors(info.get('outputs', []))}",
        f"Settings file: {info['sidecar'] or 'none (defaults: RGB in [0, 1], softmax or sigmoid)'}",
    ]
    lines += [f"  {name}: {value}" for name, value in settings.items() if value is not None]
    return "\n".join(lines)
