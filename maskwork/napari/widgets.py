"""napari dock widgets for every registered operator, built with magicgui from the registry.

Each operator gets a widget class, ``<CamelCaseId>Widget`` (``GrabcutWidget``,
``RegisterLandmarksWidget``, ...), made on first access so the manifest can name one class
per operator without this module listing them. A widget has one layer chooser per input,
one magicgui editor per parameter (tooltips from the docstring; a method's own parameters
show only while it is chosen), Run and Cancel buttons, a progress bar and a status line.
Each run is a :class:`~maskwork.pipeline.session.RunSession` in maskwork's worker (the
window's): the latest partial result shows in a transient preview layer; results are added
as layers placed on the input image.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any, ClassVar

import napari.viewer
import numpy as np
import psygnal
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    LineEdit,
    ProgressBar,
    PushButton,
    SpinBox,
    Widget,
)
from napari.layers import Image, Labels, Layer
from napari.utils.notifications import notification_manager, show_error, show_info
from qtpy.QtCore import QEvent, QObject
from qtpy.QtWidgets import QWidget

from maskwork.napari import convert
from maskwork.napari.manifest import widget_class_name
from maskwork.operators.context import InputError
from maskwork.operators.dl.device import leave_cores_free
from maskwork.operators.registry import ParamSpec, all_operators, get
from maskwork.pipeline.session import CANCELLED, DONE, INPUT_ERROR, PreviewData, RunOutcome, RunSession, choose_sources, collect_inputs
from maskwork.widgets.workers import Worker, session_worker

#: What each input's layer chooser is called in the form.
INPUT_LABELS = {
    "image": "image",
    "image2": "second image",
    "markers": "scribbles",
    "mask": "mask",
    "rect": "box",
    "points": "points",
}
#: The choice that leaves an optional input out.
NO_LAYER = "(none)"
#: Pixels; napari's docks are otherwise too narrow for the title and the longer labels.
DOCK_MIN_WIDTH = 340


# ----------------------------------------------------------------------------- parameters


def param_widget(param: ParamSpec) -> Widget:
    """The magicgui editor of one parameter, its help as the tooltip.

    int and float become spin boxes bounded by the declared range, choices a combo box,
    bool a check box, ``"path"`` a file picker filtered as declared, str a line edit.
    """
    common = {"name": param.name, "label": param.label, "tooltip": param.help}
    if param.type == "bool":
        return CheckBox(value=param.default, **common)
    if param.type == "choice":
        return ComboBox(choices=[(param.choice_label(choice), choice) for choice in param.choices], value=param.default,
                        **common)
    if param.type == "path":
        # nullable: an empty path reads as None rather than the current directory.
        return FileEdit(mode="r", filter=param.file_filter, nullable=True, value=param.default or None, **common)
    if param.type == "int":
        low, high = param.editor_bounds()
        return SpinBox(min=low, max=high, value=param.default, **common)
    if param.type == "float":
        low, high = param.editor_bounds()
        widget = FloatSpinBox(min=low, max=high, step=param.editor_step(), **common)
        # QDoubleSpinBox rounds the bounds and the value to its decimals: set those first.
        widget.native.setDecimals(param.editor_decimals())
        widget.min, widget.max, widget.value = low, high, param.default
        return widget
    return LineEdit(value=param.default, **common)


def param_value(param: ParamSpec, widget: Widget) -> Any:
    """The value an editor from :func:`param_widget` holds, as the operator takes it."""
    if param.type == "path":
        return "" if widget.value is None else str(widget.value)
    return widget.value


# ----------------------------------------------------------------------------- the widget


class OperatorWidget(Container):
    """Dock widget that runs one registered operator on napari layers.

    Subclasses name the operator in :attr:`operator_id`; :func:`widget_class` makes them.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer whose layers feed the inputs and receive the results (napari passes it
        when it opens the widget from the Plugins menu).

    Attributes
    ----------
    spec : OperatorSpec
        The operator.
    inputs : dict
        Input name -> the ComboBox choosing its layer.
    params : dict
        Parameter name -> its editor.
    worker : Worker or None
        The worker of the running session, if any.
    """

    operator_id: ClassVar[str] = ""

    run_finished = psygnal.Signal(str)
    """Emitted once per :meth:`run` call when it has ended, with how: ``"done"`` (layers
    added), ``"input error"`` (a notification says why), ``"cancelled"`` or ``"failed"``."""

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=False)
        leave_cores_free(1)  # torch's CPU threads leave napari's UI thread a core
        self.viewer = viewer
        self.spec = get(self.operator_id)
        self.worker: Worker | None = None
        self._session: RunSession | None = None
        self._preview: Layer | None = None
        self._placement: dict = {}
        self._name_suffix = ""  # which plane of a stack the results come from
        self._ending = ""

        summary = Label(value=self.spec.summary, name="summary")
        summary.native.setWordWrap(True)
        self.append(summary)
        missing = self.spec.missing_requirements_message()
        if missing:
            warning = Label(value=missing, name="missing")
            warning.native.setWordWrap(True)
            warning.native.setStyleSheet("color: #e74c3c; font-weight: bold;")
            self.append(warning)

        self.inputs: dict[str, ComboBox] = {}
        for name in self.spec.inputs:
            self.inputs[name] = ComboBox(
                name=name,
                label=INPUT_LABELS[name],
                tooltip=self.spec.input_help.get(name, ""),
                choices=functools.partial(self._layer_choices, name),
            )
        self.params: dict[str, Widget] = {param.name: param_widget(param) for param in self.spec.params}
        self.append(Container(widgets=list(self.inputs.values()), labels=True, name="input_form"))
        if self.params:
            self.append(Container(widgets=list(self.params.values()), labels=True, name="param_form"))
        for choice in {param.shown_for.choice for param in self.spec.params if param.shown_for is not None}:
            self.params[choice].changed.connect(self._show_applicable_params)
        self._show_applicable_params()

        self.run_button = PushButton(text="Run", name="run_button", tooltip=f"Run {self.spec.title} on the chosen layers")
        self.cancel_button = PushButton(text="Cancel", name="cancel_button", enabled=False,
                                        tooltip="Stop the run; nothing is added")
        self.run_button.changed.connect(self.run)
        self.cancel_button.changed.connect(self.cancel)
        self.append(Container(widgets=[self.run_button, self.cancel_button], layout="horizontal", labels=False))
        self.progress_bar = ProgressBar(min=0, max=100, value=0, name="progress")
        self.status = Label(value="", name="status")
        self.status.native.setWordWrap(True)
        self.extend([self.progress_bar, self.status])

        self.native.setMinimumWidth(DOCK_MIN_WIDTH)
        self._choose_default_layers()
        layer_events = viewer.layers.events
        for event in (layer_events.inserted, layer_events.removed, layer_events.reordered):
            event.connect(self._on_layers_changed)
        self.native.destroyed.connect(self._on_destroyed)
        self._undock_watcher = _UndockWatcher(self.native, self._on_undocked)

    # -- inputs -----------------------------------------------------------------------
    def _candidates(self, name: str) -> list[Layer]:
        """Layers that can feed input ``name``, topmost first (previews never do)."""
        layer_type = convert.INPUT_LAYER_TYPES[name]
        return [
            layer
            for layer in reversed(self.viewer.layers)
            if isinstance(layer, layer_type) and not convert.is_preview(layer)
        ]

    def _layer_choices(self, name: str, _widget=None) -> list[tuple[str, Layer | None]]:
        choices = [(layer.name, layer) for layer in self._candidates(name)]
        if name not in self.spec.required_inputs:
            choices.insert(0, (NO_LAYER, None))
        return choices

    def _choose_default_layers(self) -> None:
        """Pick each input's layer by the session's input policy, as the maskwork window does:
        the active layer feeds the input it fits, ``image`` is otherwise the bottom image
        (the one opened first, a registration's fixed image) and every other input the
        topmost layer of its type. With two images the active one does not count: napari
        makes the newest layer active, which made the moving image the fixed one."""
        candidates = {name: self._candidates(name) for name in self.inputs}
        active = None if "image2" in self.spec.inputs else self.viewer.layers.selection.active
        chosen = choose_sources(self.spec, candidates, active)
        for name, layer in chosen.items():
            self.inputs[name].value = layer

    def reset_choices(self, *args) -> None:
        """Refill the layer choosers, each keeping the layer it had while that layer is
        still there: napari calls this when a layer is renamed, and the Qt combo box
        matched by the old name, so a renamed layer was dropped (scribbles ignored) or
        another one taken (a registration of an image with itself)."""
        chosen = {name: combo.value for name, combo in self.inputs.items()}
        super().reset_choices(*args)
        for name, layer in chosen.items():
            if layer is not None and any(candidate is layer for candidate in self._candidates(name)):
                self.inputs[name].value = layer

    def _on_layers_changed(self, event) -> None:
        self.reset_choices()
        if event.type != "inserted":
            return
        layer = event.value
        # A new box, scribble or point layer is what a person means to use next; fill an
        # optional input left empty, but never with an operator's result (this dock's or
        # another's: a Threshold mask became GrabCut's scribbles).
        if convert.is_preview(layer) or convert.SOURCE_KEY in layer.metadata:
            return
        taken = {id(combo.value) for combo in self.inputs.values() if combo.value is not None}
        for name, combo in self.inputs.items():
            if combo.value is None and isinstance(layer, convert.INPUT_LAYER_TYPES[name]) and id(layer) not in taken:
                combo.value = layer
                break

    def _on_undocked(self) -> None:
        """napari removed the dock (its close button, ``remove_dock_widget``): stop a run,
        whose result would otherwise arrive from a dock that is gone. The widget stays
        whole, and works again if it is docked again."""
        if self.worker is not None:
            self.cancel()

    def _on_destroyed(self) -> None:
        """The widget is gone (its viewer closed): stop listening, and stop a run unseen."""
        layer_events = self.viewer.layers.events
        for event in (layer_events.inserted, layer_events.removed, layer_events.reordered):
            event.disconnect(self._on_layers_changed)
        worker, self.worker, self._session = self.worker, None, None
        if worker is not None:
            # Its results have nowhere to go; its handlers see it is no longer this
            # widget's session and return.
            worker.quit()

    def gather_inputs(self) -> tuple[dict, dict]:
        """The operator's inputs from the chosen layers, and where results go.

        Returns
        -------
        inputs : dict
            Input name -> value, as :func:`~maskwork.pipeline.session.collect_inputs` checks
            and snapshots them: images as the 2-D plane on screen, scribbles and masks
            copied (painting may go on during the run), the box as ``(x, y, w, h)`` and
            points as ``(row, col, label)`` on the image's pixel grid.
        placement : dict
            ``scale`` and ``translate`` of the layer the results belong on.

        Raises
        ------
        InputError
            When a required layer is not chosen or a box or landmark layer is unusable.
        """
        chosen = {name: combo.value for name, combo in self.inputs.items()}
        missing = [INPUT_LABELS[name] for name in self.spec.required_inputs if chosen[name] is None]
        if missing:
            raise InputError(f"choose a layer for: {', '.join(missing)}")
        reference = next(chosen[name] for name in ("image", "mask", "markers") if chosen.get(name) is not None)
        self._check_view_shows_planes()
        point = self.viewer.dims.point
        inputs: dict = {}
        for name in ("image", "image2", "markers", "mask"):
            layer = chosen.get(name)
            if layer is None:
                continue
            plane = convert.current_plane(layer, point)
            inputs[name] = plane != 0 if name == "mask" else plane
        shape = np.shape(inputs.get("image", inputs.get("mask", inputs.get("markers"))))[:2]
        if chosen.get("rect") is not None:
            inputs["rect"] = convert.rect_from_shapes(chosen["rect"], reference, shape, point)
        if chosen.get("points") is not None:
            if "image2" in self.spec.inputs:
                # Operators that take two images read points as landmark pairs.
                if chosen.get("image2") is None:
                    raise InputError("landmarks need the second (moving) image")
                inputs["points"] = convert.landmark_points(chosen["points"], reference, chosen["image2"], point)
            else:
                inputs["points"] = convert.prompt_points(chosen["points"], reference, point)
        placement = convert.plane_placement(reference)
        plane = convert.plane_number(reference, point)
        self._name_suffix = "" if plane is None else f" (plane {plane})"
        return collect_inputs(self.spec, inputs), placement

    def _check_view_shows_planes(self) -> None:
        """Refuse a view that does not show a layer's last two axes as a 2-D plane: the
        operator runs on such planes, and another view ran one the person did not see."""
        dims = self.viewer.dims
        if dims.ndisplay != 2:
            raise InputError("switch the viewer to 2-D: the operator works on the plane shown in 2-D")
        if set(dims.displayed) != set(range(dims.ndim - 2, dims.ndim)):  # the last two, in either order
            raise InputError("the view shows a transposed plane; the operator works on the last two axes "
                             "(reset the order of the axes with the viewer's transpose and roll buttons)")

    def _show_applicable_params(self) -> None:
        """Show the editors of the parameters that matter for the choices made (a method's
        own settings), hide the others; hidden editors keep their values."""
        values = {param.name: param_value(param, self.params[param.name]) for param in self.spec.params}
        for param in self.spec.params:
            self.params[param.name].visible = param.applies(values)

    def parameter_values(self) -> dict:
        """Parameter name -> value, checked against the declared types and ranges."""
        return {
            param.name: param.coerce(param_value(param, self.params[param.name])) for param in self.spec.params
        }

    # -- running ----------------------------------------------------------------------
    def run(self) -> Worker | None:
        """Start the operator on the chosen layers in maskwork's worker.

        Returns
        -------
        Worker or None
            The started worker (:attr:`run_finished` says when the run has ended), or None
            when a run is already going or the inputs are unusable (a notification says why).
        """
        if self.worker is not None:
            return None
        try:
            inputs, placement = self.gather_inputs()
            session = RunSession(self.spec, inputs, self.parameter_values(), "apply")
        except InputError as error:
            self._report_input_error(str(error))
            self.run_finished.emit("input error")
            return None
        self._placement = placement
        worker = session_worker(session)
        worker.progress.connect(lambda fraction, text: self._on_progress(session, fraction, text))
        worker.partial_ready.connect(lambda: self._on_partial_ready(session))
        worker.returned.connect(lambda outcome: self._on_outcome(session, outcome))
        worker.finished.connect(lambda: self._on_finished(session))
        self._session, self.worker = session, worker
        # How the run ended; the outcome refines it (a quit worker returns nothing).
        self._ending = CANCELLED
        self.run_button.enabled = False
        self.cancel_button.enabled = True
        self.progress_bar.value = 0
        self.status.value = f"{self.spec.title}: running..."
        worker.start()
        return worker

    def cancel(self) -> None:
        """Stop the running operator at its next checkpoint; nothing is added."""
        if self.worker is not None:
            self.status.value = f"{self.spec.title}: cancelling..."
            self.worker.quit()

    # Every handler returns at once unless its session is still this widget's: signals
    # queued before the widget let go of a run (it was destroyed) may still arrive.
    def _on_progress(self, session: RunSession, fraction: float, message: str) -> None:
        if session is self._session:
            self.progress_bar.value = round(fraction * 100)
            if message:
                self.status.value = message

    def _on_partial_ready(self, session: RunSession) -> None:
        preview = session.take_partial()
        if session is self._session and preview is not None:
            self._show_preview(preview)

    def _show_preview(self, preview: PreviewData) -> None:
        """Draw a partial result into the transient preview layer (made or reused)."""
        layer_type = Image if preview.kind == "image" else Labels
        data = preview.data
        layer = self._preview
        if layer is not None and isinstance(layer, layer_type) and layer.data.shape == data.shape:
            layer.data = data
            return
        self._remove_preview()
        meta = {"name": f"{self.spec.title} preview", "opacity": 0.6, "metadata": {convert.PREVIEW_KEY: True},
                **self._placement}
        with self._selection_kept():
            if layer_type is Labels:
                self._preview = self.viewer.add_labels(data, colormap=convert.label_colormap(data), **meta)
            else:
                self._preview = self.viewer.add_layer(Layer.create(*convert.image_layer_data(data, meta)))
        # Transient: strokes painted into it were lost when the next partial result came.
        self._preview.editable = False

    @contextlib.contextmanager
    def _selection_kept(self):
        """Keep the person's selected layers and the active one while layers are added
        (napari selects each new layer and leaves paint mode: the next strokes went
        into the preview, or panned)."""
        selection = self.viewer.layers.selection
        selected, active = set(selection), selection.active
        yield
        selection.clear()
        selection.update(layer for layer in selected if layer in self.viewer.layers)
        if active is not None and active in self.viewer.layers:
            selection.active = active

    def _remove_preview(self) -> None:
        if self._preview is not None and self._preview in self.viewer.layers:
            self.viewer.layers.remove(self._preview)
        self._preview = None

    def _on_outcome(self, session: RunSession, outcome: RunOutcome) -> None:
        if session is not self._session:
            return
        self._ending = outcome.status
        if outcome.status == CANCELLED:
            return  # _on_finished says so
        if outcome.status == INPUT_ERROR:
            self._report_input_error(outcome.message)
            return
        if outcome.status != DONE:  # a failure: an operator bug or a faulty result
            self.progress_bar.value = 0
            self.status.value = f"{self.spec.title} failed: {outcome.message}"
            # An error notification whose details hold the traceback.
            error = outcome.error
            notification_manager.receive_error(type(error), error, error.__traceback__)
            return
        self._remove_preview()
        with self._selection_kept():
            for data, meta, kind in convert.output_layer_data(self.spec, outcome.layers, self._placement):
                self.viewer.add_layer(Layer.create(data, {**meta, "name": meta["name"] + self._name_suffix}, kind))
        self.progress_bar.value = 100
        text = f"{self.spec.title}: done in {outcome.seconds:.2f} s"
        if outcome.result.iterations:
            text += f", {outcome.result.iterations} iterations"
        scores = ", ".join(f"{name} {value:.4g}" for name, value in list(outcome.result.scores.items())[:4]
                           if isinstance(value, (int, float)))
        self.status.value = f"{text}; {scores}" if scores else text

    def _on_finished(self, session: RunSession) -> None:
        if session is not self._session:
            return
        ending = CANCELLED if session.cancelled else self._ending
        self._remove_preview()
        self.worker = self._session = None
        self.run_button.enabled = True
        self.cancel_button.enabled = False
        if ending == CANCELLED:
            self.progress_bar.value = 0
            self.status.value = f"{self.spec.title}: cancelled"
            show_info(f"{self.spec.title} cancelled; nothing was added")
        self.run_finished.emit("failed" if ending not in (DONE, CANCELLED, INPUT_ERROR) else ending)

    def _report_input_error(self, message: str) -> None:
        self.progress_bar.value = 0
        self.status.value = message
        show_error(f"{self.spec.title}: {message}")


# ----------------------------------------------------------------------------- one class per operator

_classes: dict[str, type[OperatorWidget]] = {}


class _UndockWatcher(QObject):
    """Calls ``undocked`` when ``widget`` loses its parent: napari's ``remove_dock_widget``
    takes a dock's widget out of it and keeps it alive, so no ``destroyed`` comes."""

    def __init__(self, widget: QWidget, undocked) -> None:
        super().__init__(widget)
        self._undocked = undocked
        widget.installEventFilter(self)

    def eventFilter(self, watched, event) -> bool:  # noqa: N802 (Qt's name)
        if event.type() == QEvent.Type.ParentChange and watched.parent() is None:
            self._undocked()
        return False


def widget_class(op_id: str) -> type[OperatorWidget]:
    """The dock-widget class of operator ``op_id`` (made once, then reused)."""
    if op_id not in _classes:
        spec = get(op_id)
        _classes[op_id] = type(
            widget_class_name(op_id),
            (OperatorWidget,),
            {"operator_id": op_id, "__module__": __name__, "__doc__": f"{spec.title}: {spec.summary}"},
        )
    return _classes[op_id]


def __getattr__(name: str) -> type[OperatorWidget]:
    """``<CamelCaseId>Widget``: the widget class the manifest names for each operator."""
    for spec in all_operators():
        if widget_class_name(spec.id) == name:
            return widget_class(spec.id)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
