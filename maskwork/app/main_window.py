"""The main window: canvas in the centre, docks for layers, operator and history."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

from PySide6.QtCore import QByteArray, QEvent, Qt
from PySide6.QtGui import QAction, QActionGroup, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDockWidget,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSlider,
    QToolBar,
)
from superqt.utils import qthrottled

from maskwork.app.actions import window_action
from maskwork.app.autosave import Autosave
from maskwork.app.export_actions import ExportActions
from maskwork.app.file_actions import FileActions
from maskwork.app.import_actions import ImportActions
from maskwork.app.models_actions import ModelsActions
from maskwork.app.napari_actions import NapariActions
from maskwork.app.operator_views import OperatorViews
from maskwork.app.project_actions import ProjectActions
from maskwork.app.recipe_actions import RecipeActions
from maskwork.app.runner import OperatorRunner
from maskwork.app.settings import settings
from maskwork.app.transform_actions import TransformActions
from maskwork.core import io
from maskwork.core.document import Document
from maskwork.operators import InputError, OperatorSpec, all_operators, get
from maskwork.operators.dl.device import leave_cores_free, preferred_device, set_preferred_device
from maskwork.operators.extras import requirements
from maskwork.pipeline.session import RunOutcome
from maskwork.widgets.alignment_panel import AlignmentPanel
from maskwork.widgets.canvas import MAX_BRUSH_RADIUS, Canvas, Tool
from maskwork.widgets.history_panel import HistoryPanel
from maskwork.widgets.file_progress import FileProgress
from maskwork.widgets.layer_panel import LayerPanel
from maskwork.widgets.measure_panel import MeasurePanel
from maskwork.widgets.messages import replace_message_box
from maskwork.widgets.operator_panel import OperatorPanel
from maskwork.widgets.preferences_dialog import PreferencesDialog
from maskwork.widgets.shortcuts_dialog import ShortcutsDialog
from maskwork.widgets.workers import stop_all_workers

#: The fastest the progress bar and the status line follow a running operator.
PROGRESS_INTERVAL_MS = 100

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
    (Tool.LANDMARK, "Land&marks", "K"),
)
#: Longer explanations of tools whose menu text alone does not say how to use them.
TOOL_TIPS = {
    Tool.QUICK_SELECT: "Quick select: click the object, right-click or Shift+click what is not the object, "
    "drag a box around it; Backspace removes the last click",
    Tool.LANDMARK: "Landmark pairs: click a point on the fixed image, then the same point on the moving one; "
    "drag a landmark to move it, right-click to delete its pair",
}
LABEL_NAMES = {1: "foreground", 2: "background"}
MAX_LABEL_CHOICE = 9


def _typed_into_a_drop_down(event) -> bool:
    """Whether a key event without Ctrl, Alt or Meta goes to a drop-down list with the focus."""
    if event.modifiers() & (Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier
                            | Qt.KeyboardModifier.MetaModifier):
        return False
    typed = (bool(event.text()) and event.text().isprintable()) or event.key() == Qt.Key.Key_Backspace
    return typed and isinstance(QApplication.focusWidget(), QComboBox)


def _with_mnemonic(name: str, taken: set[str]) -> str:
    """``name`` with ``&`` before its first letter not in ``taken`` (which it joins): each
    menu of the bar its own Alt+letter (Alt+R opened Refine while Registration, Restore and
    Run shared it); none if every letter is taken."""
    for index, char in enumerate(name):
        if char.isalpha() and char.lower() not in taken:
            taken.add(char.lower())
            return f"{name[:index]}&{name[index:]}"
    return name


class MainWindow(QMainWindow):
    """maskwork's main window: one document, its canvas, panels, menus and status bar.

    It wires the parts together; the file, export, recipe, transform and napari actions
    live in their controllers (``files``, ``exports``, ``recipes``, ``transforms``,
    ``napari_bridge``) and what an operator shows under its form in ``operator_views``.
    """

    def __init__(self) -> None:
        super().__init__()
        leave_cores_free(1)  # torch's CPU threads leave the UI thread a core
        self.document = Document()
        self.source_path: Path | None = None
        self.canvas = Canvas(self.document, self)
        self.setCentralWidget(self.canvas)
        self.runner = OperatorRunner(self.document, self)
        self.last_message_box: QMessageBox | None = None
        # The person's Auto-preview while Quick select has it on (None otherwise).
        self._own_auto_preview: bool | None = None
        self.files = FileActions(self)
        self.recipes = RecipeActions(self)
        self.exports = ExportActions(self, self.recipes)
        self.imports = ImportActions(self)
        self.transforms = TransformActions(self)
        self.napari_bridge = NapariActions(self)
        self.projects = ProjectActions(self)
        self.models = ModelsActions(self)

        self._build_docks()
        self._build_actions()
        self._build_menus()
        self._build_toolbars()
        self._build_status_bar()
        self._connect()
        self._restore_settings()

        self.setAcceptDrops(True)
        self.autosave = Autosave(self)
        self.update_title()
        self._update_history_actions()

    # -- construction -----------------------------------------------------------------
    def _build_docks(self) -> None:
        self.layer_panel = LayerPanel(self.document, self)
        self.operator_panel = OperatorPanel(self)
        self.history_panel = HistoryPanel(self.document.history, self)
        self.operator_views = OperatorViews(self)
        self.measure_panel = MeasurePanel(self.document, self)
        self.alignment_panel = AlignmentPanel(self.document, self)
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

    def _build_actions(self) -> None:
        a = partial(window_action, self)
        self.action_quit = a("&Quit", self.close, QKeySequence.StandardKey.Quit, "Quit maskwork")
        self.action_undo = a("&Undo", self.undo, QKeySequence.StandardKey.Undo, "Undo the last step")
        self.action_redo = a("&Redo", self.redo, ["Ctrl+Shift+Z", "Ctrl+Y"], "Redo the step undone last")
        self.action_remove_click = a("Remove last &click", self.document.remove_last_point, "Backspace", "Remove the newest click or point prompt")
        self.action_clear_seeds = a("Clear box and &points", lambda: self.document.clear_seeds(), None, "Remove the box and point prompts")
        self.action_preferences = a("&Preferences...", self.preferences_dialog, "Ctrl+,", "Deep-learning device and other settings")
        self.action_fit = a("&Fit to window", self.canvas.fit, "Ctrl+0", "Show the whole image")
        self.action_actual = a("&Actual pixels (1:1)", self.canvas.actual_pixels, "Ctrl+1", "One image pixel per screen pixel")
        self.action_zoom_in = a("Zoom &in", lambda: self.canvas.zoom_by(1.25), [QKeySequence.StandardKey.ZoomIn, "Ctrl+="], "Zoom in")
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
            action = a(text, lambda checked=False, t=tool: self.choose_tool(t), key, text.replace("&", ""))
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
        # Alt+letter for every menu of the bar, the most used first served (Alt+S for
        # Segmentation, not for Restore that comes before it).
        categories = [spec.category.split("/")[0] for spec in all_operators()]
        names = list(dict.fromkeys(["File", "Edit", "View", "Layers", "Tools", "Segmentation", "Run", "Help",
                                    *categories, "Deep learning"]))
        taken: set[str] = set()
        titles = {name: _with_mnemonic(name, taken) for name in names}

        def bar_menu(name: str) -> QMenu:
            return bar.addMenu(titles[name])

        files, exports, transforms = self.files, self.exports, self.transforms
        file_menu = bar_menu("File")
        file_menu.addActions([files.action_open, self.projects.action_open_project, files.action_add_image])
        file_menu.addMenu(files.recent_menu)
        file_menu.addMenu(self.imports.menu)
        file_menu.addSeparator()
        file_menu.addActions([self.projects.action_save, self.projects.action_save_as])
        file_menu.addSeparator()
        file_menu.addActions(
            [
                exports.action_export,
                exports.action_export_image,
                exports.action_export_mask,
                exports.action_export_labels,
                exports.action_export_labels_color,
                exports.action_export_cutout,
                self.recipes.action_export_recipe,
                transforms.action_export_transform,
                transforms.action_load_transform,
            ]
        )
        file_menu.addSeparator()
        file_menu.addAction(self.napari_bridge.action_open_in_napari)
        file_menu.addSeparator()
        file_menu.addActions([files.action_close, self.action_quit])

        edit_menu = bar_menu("Edit")
        edit_menu.addActions([self.action_undo, self.action_redo])
        edit_menu.addSeparator()
        edit_menu.addActions([self.action_remove_click, self.action_clear_seeds])
        edit_menu.addSeparator()
        edit_menu.addAction(self.action_preferences)

        view_menu = bar_menu("View")
        view_menu.addActions([self.action_fit, self.action_actual, self.action_zoom_in, self.action_zoom_out])
        view_menu.addSeparator()
        for dock in self.docks.values():
            view_menu.addAction(dock.toggleViewAction())

        layers_menu = bar_menu("Layers")
        panel = self.layer_panel
        layers_menu.addActions([panel.action_new_markers, panel.action_new_mask, panel.action_duplicate, panel.action_delete])
        layers_menu.addSeparator()
        layers_menu.addActions([panel.action_to_labels, panel.action_to_mask, panel.action_move_up, panel.action_move_down])
        layers_menu.addSeparator()
        layers_menu.addAction(transforms.action_apply_transform)

        tools_menu = bar_menu("Tools")
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
                    menus[key] = parent.addMenu(path[depth]) if parent else bar_menu(path[depth])
                parent = menus[key]
            missing = spec.missing_requirements()
            # Left enabled: choosing it shows the panel, which says what to install.
            action = QAction(spec.title + (f" (needs {' '.join(requirements(missing))})" if missing else ""), self)
            action.setStatusTip(spec.summary)
            action.setToolTip(spec.missing_requirements_message() or spec.summary)
            parent.setToolTipsVisible(True)
            action.triggered.connect(lambda checked=False, s=spec: self.choose_operator(s))
            parent.addAction(action)
            self.operator_actions[spec.id] = action
        deep_learning = menus.get("Deep learning") or bar_menu("Deep learning")
        deep_learning.addSeparator()
        deep_learning.addAction(self.models.action_models)
        if "Registration" in menus:
            menus["Registration"].addSeparator()
            menus["Registration"].addAction(transforms.action_show_matches)
        run_menu = bar_menu("Run")
        run_menu.addActions([self.action_preview, self.action_apply, self.action_cancel])

        help_menu = bar_menu("Help")
        help_menu.addAction(window_action(self, "&Keyboard shortcuts", self.shortcuts_dialog,
                                          QKeySequence.StandardKey.HelpContents, "Every key the window answers"))
        help_menu.addAction(window_action(self, "&About maskwork", self._about))

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
        self.brush_slider.setRange(1, int(MAX_BRUSH_RADIUS))
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
        self.file_progress = FileProgress(bar)
        bar.addPermanentWidget(self.zoom_label)
        bar.addPermanentWidget(self.projects.progress_bar)
        self.zoom_label.setToolTip("Screen pixels per image pixel (Ctrl+0 fits the image, View menu for 1:1)")
        bar.addPermanentWidget(self.progress_bar)
        bar.addPermanentWidget(self.cancel_button)

    def _connect(self) -> None:
        canvas = self.canvas
        canvas.cursor_moved.connect(self._on_cursor_moved)
        canvas.zoom_changed.connect(self._show_zoom)
        canvas.tool_changed.connect(self._on_tool_changed)
        canvas.brush_radius_changed.connect(self._on_brush_radius_changed)
        canvas.active_label_changed.connect(self._on_active_label_changed)
        canvas.message.connect(lambda text: self.statusBar().showMessage(text, 8000))
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
        # Operators report progress up to hundreds of times a second, and every visible step
        # repaints the bar at once (QProgressBar.setValue calls repaint), 0.7 ms each: shown
        # at most once per PROGRESS_INTERVAL_MS, with the latest values, and never at once
        # (a report mostly comes with a partial result, whose display and paint it would
        # otherwise join in one stretch of the window's time).
        self._show_progress = qthrottled(self._on_progress, timeout=PROGRESS_INTERVAL_MS, leading=False, parent=self)
        runner.progress.connect(self._show_progress)
        runner.preview_changed.connect(canvas.set_preview)
        runner.failed.connect(self._on_operator_failed)
        runner.message.connect(lambda text: self.statusBar().showMessage(text, 5000))
        runner.applied.connect(self.recipes.record)
        runner.applied.connect(lambda layers: self.update_title())
        runner.scores.connect(self._on_scores)
        runner.memory_warning.connect(self._on_memory_warning)
        runner.prepared.connect(lambda text: self.statusBar().showMessage(text, 8000))
        self.alignment_panel.overlay_changed.connect(canvas.set_overlay)
        self.files.document_replaced.connect(self.recipes.reset)
        self.files.document_replaced.connect(self._forget_document)
        self.files.document_replaced.connect(self.projects.forget_path)

        history = self.document.history
        history.changed.connect(self._update_history_actions)
        history.changed.connect(self.update_title)

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
        self._apply_pixel_limit(store.value("files/max_megapixels"))

    @staticmethod
    def _apply_pixel_limit(megapixels) -> None:
        """Set the reading limit from the preference (None or nonsense keeps the default)."""
        try:
            io.set_max_pixels(int(megapixels) * 1_000_000 if megapixels else None)
        except (TypeError, ValueError):  # a settings file from another version
            io.set_max_pixels(None)

    def _apply_device_preference(self, device: str) -> None:
        try:
            set_preferred_device(device)
        except InputError:  # a settings file from another version: keep automatic
            set_preferred_device("auto")

    def preferences_dialog(self) -> PreferencesDialog:
        """Show Edit > Preferences; OK stores and applies the choices."""
        dialog = PreferencesDialog(preferred_device(), io.max_pixels() // 1_000_000, self,
                                   autosave_minutes=self.autosave.interval_minutes)
        dialog.setObjectName("preferencesDialog")

        def store_choices() -> None:
            settings().setValue("dl/device", dialog.device)
            self._apply_device_preference(dialog.device)
            settings().setValue("files/max_megapixels", dialog.max_megapixels)
            self._apply_pixel_limit(dialog.max_megapixels)
            settings().setValue("autosave/interval_minutes", dialog.autosave_minutes)
            self.autosave.set_interval_minutes(dialog.autosave_minutes)
            self.statusBar().showMessage("Preferences saved", 5000)

        dialog.accepted.connect(store_choices)
        dialog.finished.connect(dialog.deleteLater)  # each opening makes a new one
        dialog.open()
        return dialog

    def shortcuts_dialog(self) -> ShortcutsDialog:
        """Show Help > Keyboard shortcuts (not modal: it may stay open beside the canvas)."""
        dialog = ShortcutsDialog(self.menuBar(), self)
        dialog.setObjectName("shortcutsDialog")
        dialog.finished.connect(dialog.deleteLater)
        dialog.show()
        return dialog

    def save_settings(self) -> None:
        """Remember window layout, tool settings and operator parameters."""
        store = settings()
        store.setValue("window/geometry", self.saveGeometry())
        store.setValue("window/state", self.saveState())
        store.setValue("tools/tool", self.canvas.tool.value)
        store.setValue("tools/brush_radius", self.canvas.brush_radius)
        store.setValue("tools/active_label", self.canvas.active_label)
        own = self._own_auto_preview
        store.setValue("operator/auto_preview", self.operator_panel.auto_preview if own is None else own)
        if self.runner.spec is not None:
            store.setValue("operator/last", self.runner.spec.id)
            store.setValue(f"params/{self.runner.spec.id}", json.dumps(self.runner.params))
        store.sync()

    # -- files ------------------------------------------------------------------------
    def open_paths(self, paths: list[str | Path]) -> bool:
        """Open the first file as a new document and add the others as layers
        (:meth:`FileActions.open_paths`: start-up, dropped files and scripts use it)."""
        return self.files.open_paths(paths)

    # -- operators --------------------------------------------------------------------
    def choose_tool(self, tool: Tool) -> None:
        """Make ``tool`` the left button's; choosing the tool in use again still does what
        choosing it does (Q brings Quick select's operator back after another was chosen)."""
        if self.canvas.tool is tool:
            self._on_tool_changed(tool.value)
        else:
            self.canvas.tool = tool

    def _on_tool_changed(self, name: str) -> None:
        self.tool_actions[Tool(name)].setChecked(True)
        if Tool(name) in TOOL_TIPS:
            self.statusBar().showMessage(TOOL_TIPS[Tool(name)], 8000)
        if Tool(name) is Tool.QUICK_SELECT:
            # Quick select answers every click: its operator, previewing automatically
            # (the person's own choice comes back when they leave it).
            if self.runner.spec is None or self.runner.spec.id != "click_select":
                self.choose_operator(get("click_select"))
            if self._own_auto_preview is None:
                self._own_auto_preview = self.operator_panel.auto_preview
            self.operator_panel.auto_preview = True
        else:
            self._restore_own_auto_preview()

    def _restore_own_auto_preview(self) -> None:
        """Auto-preview as the person had it before Quick select turned it on."""
        if self._own_auto_preview is not None:
            self.operator_panel.auto_preview, self._own_auto_preview = self._own_auto_preview, None

    def choose_operator(self, spec: OperatorSpec, params: dict | None = None) -> None:
        """Show ``spec``'s parameter form and make it current, with ``params`` (a project's)
        or else the values remembered from the last time."""
        remembered = {}
        text = json.dumps(params) if params is not None else settings().value(f"params/{spec.id}")
        if text:
            try:
                stored = json.loads(text)
                remembered = {name: value for name, value in stored.items() if any(p.name == name for p in spec.params)}
            except (TypeError, ValueError):
                remembered = {}
        if spec.id != "click_select":
            self._restore_own_auto_preview()
        self.operator_panel.set_operator(spec, remembered)
        self.runner.set_operator(spec, {**spec.defaults(), **self.operator_panel.values()})
        # After the runner: a suggestion that arrives later checks the operator is still current.
        self.operator_views.show_for(spec)
        self.docks["operator"].show()
        self.docks["operator"].raise_()
        missing = spec.missing_requirements_message()
        if missing:
            self.statusBar().showMessage(missing, 8000)
        elif self.runner.auto_preview:
            self.runner.preview()

    def _on_params_changed(self, values: dict) -> None:
        self.runner.set_params(values)
        if self.runner.spec is not None:
            # Remembered at once, not only at quit: a chosen model file survives a crash.
            settings().setValue(f"params/{self.runner.spec.id}", json.dumps(values))

    def _on_memory_warning(self, message: str, purpose: str) -> None:
        title = self.runner.spec.title if self.runner.spec is not None else "The operator"
        if self.ask("Not enough memory?", f"{title}: {message}.\n\nRun it anyway?"):
            self.runner.confirm_memory(purpose)
        else:
            self.runner.decline_memory()
            self.statusBar().showMessage(f"{title} not run: {message}", 8000)

    def _on_busy_changed(self, busy: bool) -> None:
        self._show_progress.cancel()  # a last step held back must not outlive its run
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
        self.operator_views.histogram.show_thresholds(thresholds)

    def _on_operator_failed(self, error: RunOutcome) -> None:
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

    def _show_zoom(self, zoom: float) -> None:
        # Without an image the view's scale means nothing (an empty view said 66800 %).
        # "Zoom": a bare percentage beside the progress bar read as the run's progress.
        self.zoom_label.setText(f"Zoom {zoom * 100:.0f}%" if self.document.shape is not None else "")

    def _forget_document(self) -> None:
        """The document was emptied (another image opens): nothing shown may still describe
        the previous one."""
        self.readout_label.clear()
        self.zoom_label.clear()
        self.operator_panel.show_scores({})
        self.operator_panel.set_suggestion("", {})

    def _on_cursor_moved(self, row: int, col: int, text: str) -> None:
        self.readout_label.setText(f"row {row}, col {col}   {text}" if text else "")

    # -- messages ---------------------------------------------------------------------
    def show_error(self, title: str, message: str, details: str = "") -> QMessageBox:
        """Show a non-blocking warning; the document is left as it was."""
        box = self._message_box(QMessageBox.Icon.Warning, title, message)
        if details:
            box.setDetailedText(details)
        self.statusBar().showMessage(message, 8000)
        return box

    def show_information(self, title: str, text: str) -> QMessageBox:
        """Show ``text`` in a non-blocking message (Model info, say)."""
        return self._message_box(QMessageBox.Icon.Information, title, text)

    def _message_box(self, icon: QMessageBox.Icon, title: str, text: str) -> QMessageBox:
        """Open a window-modal message box in place of the one still open, if any
        (:func:`~maskwork.widgets.messages.replace_message_box`)."""
        self.last_message_box = replace_message_box(self, self.last_message_box, icon, title, text)
        return self.last_message_box

    def ask(self, title: str, question: str) -> bool:
        """A yes/no question (tests replace this method)."""
        answer = QMessageBox.question(self, title, question)
        return answer == QMessageBox.StandardButton.Yes

    def confirm_discard(self) -> bool:
        """True when there is no unsaved work, or the person saved it or chose to discard it."""
        if not self.document.history.is_modified:
            return True
        answer = self.ask_to_save()
        if answer == QMessageBox.StandardButton.Save:
            return self.projects.save(wait=True)
        return answer == QMessageBox.StandardButton.Discard

    def ask_to_save(self) -> QMessageBox.StandardButton:
        """Ask whether to save the unsaved work: Save (the default), Don't save or Cancel.

        Enter saves and Escape cancels wherever the focus is: only a click (or Space) on
        Don't save discards the work.
        """
        box = QMessageBox(QMessageBox.Icon.Warning, "Unsaved work", f"Save the changes to {self.document_name}?",
                          QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                          | QMessageBox.StandardButton.Cancel, self)
        box.setObjectName("saveChangesBox")
        box.setInformativeText("Changes that are not saved in a project are lost.")
        box.setDefaultButton(QMessageBox.StandardButton.Save)
        box.setEscapeButton(QMessageBox.StandardButton.Cancel)
        discard = box.button(QMessageBox.StandardButton.Discard)
        discard.setText("Do&n't save")
        # Not auto-default: Enter with the focus on it clicks the default button (Save).
        discard.setAutoDefault(False)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        return QMessageBox.StandardButton(box.exec())

    @property
    def document_name(self) -> str:
        """The project's file name, else the image's, else "untitled"."""
        path = self.projects.path or self.source_path
        return path.name if path else "untitled"

    def _about(self) -> None:
        from maskwork import __version__

        QMessageBox.about(self, "About maskwork", f"maskwork {__version__}\nInteractive image processing: segment, restore, register.")

    def update_title(self) -> None:
        """The window title: the project's or image's file name, with ``*`` while there is
        work not saved in a project."""
        self.setWindowTitle(f"maskwork - {self.document_name}[*]")
        self.setWindowModified(self.document.history.is_modified)

    # -- autosave and recovery --------------------------------------------------------
    @property
    def recovery_file(self) -> Path:
        """Where autosave writes the document."""
        return self.autosave.path

    def autosave_now(self) -> bool:
        """Start writing the recovery file if the document changed since the last autosave."""
        return self.autosave.save_now()

    def offer_recovery(self) -> bool:
        """If the last session crashed, offer to restore its autosaved document (with its undo history)."""
        return self.autosave.offer_recovery()

    # -- window events ----------------------------------------------------------------
    def event(self, event) -> bool:  # noqa: N802 (Qt's name)
        # A drop-down with the focus takes the keys it selects with: "b" picks "bilateral"
        # in Denoise's methods instead of switching to the brush, Backspace does nothing
        # there instead of removing the last click. The window's one-key shortcuts only
        # stand down for such keys, never for Ctrl or Alt ones.
        if event.type() == QEvent.Type.ShortcutOverride and _typed_into_a_drop_down(event):
            event.accept()
            return True
        return super().event(event)

    def closeEvent(self, event) -> None:  # noqa: N802
        if self.document.layers and not self.confirm_discard():
            event.ignore()
            return
        self.projects.wait_for_writes()
        self.autosave.stop()
        self.runner.cancel()
        stop_all_workers()
        self.save_settings()
        event.accept()

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls() and any(url.isLocalFile() for url in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        paths = [url.toLocalFile() for url in event.mimeData().urls() if url.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.files.open_paths(paths, background=True)

