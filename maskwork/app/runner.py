"""Runs the chosen operator for previews and for Apply, one worker at a time.

A new request cancels the stale run and disconnects it, so an old result can never reach
the screen (the Orange3 habit). Previews draw into a transient layer that never enters
the layer stack or history; Apply adds the results as one undoable step.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from maskwork.core.document import Document
from maskwork.core.layers import Layer, LayerKind
from maskwork.core.resize import resize_to
from maskwork.operators import Cancelled, InputError, OperatorSpec, Result, RunContext
from maskwork.app.workers import OperatorError, OperatorWorker
from maskwork.widgets.background import BackgroundJob

#: Quiet time after a parameter edit before the preview re-runs.
PARAM_DEBOUNCE_MS = 150
#: Seeds change at the end of a stroke, already a discrete event: just coalesce.
SEED_DEBOUNCE_MS = 10

#: Results kept per seed state for operators that refine their previous result (Quick
#: select): enough to undo a long run of clicks and get each earlier mask back exactly.
PREVIOUS_RESULTS_KEPT = 64

#: Output kind -> kind of the layer that shows it.
OUTPUT_LAYER_KIND = {"mask": LayerKind.MASK, "labels": LayerKind.LABELS, "image": LayerKind.IMAGE}


class OperatorRunner(QObject):
    """Owns the current operator, its parameters, the preview layer and the worker.

    Parameters
    ----------
    document : Document
        Where inputs come from and results go.

    Signals
    -------
    busy_changed(bool)
        A worker started or the last one ended.
    progress(fraction, message)
        Progress of the running worker.
    preview_changed(layer)
        The transient preview layer to draw (None to hide it).
    failed(OperatorError)
        The run failed; the document is unchanged.
    applied(list)
        Layers added by Apply.
    message(str)
        A short status line.
    scores(dict)
        The scores of the latest preview or applied result (thresholds, energies...).
    partial_scores(dict)
        The scores of each partial result (a registration's metric per iteration).
    transform_ready(object)
        The transform of an applied registration (also kept as ``last_transform``).
    memory_warning(message, purpose)
        A run did not start because its memory estimate exceeds what its device has free;
        :meth:`confirm_memory` runs it anyway.
    prepared(str)
        The operator's background preparation (see :meth:`prepare`) finished; the text
        says what is ready, or why it failed.
    """

    busy_changed = Signal(bool)
    progress = Signal(float, str)
    preview_changed = Signal(object)
    failed = Signal(object)
    applied = Signal(list)
    message = Signal(str)
    scores = Signal(dict)
    partial_scores = Signal(dict)
    transform_ready = Signal(object)
    memory_warning = Signal(str, str)
    prepared = Signal(str)

    def __init__(self, document: Document, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self.spec: OperatorSpec | None = None
        self.params: dict = {}
        self.auto_preview = False
        self._worker: OperatorWorker | None = None
        self._preview: Layer | None = None
        self._preview_bounds = None
        self._applying = False
        # The person's answer to a memory warning for this operator: run anyway
        # (confirmed), or no more automatic previews until a parameter changes (declined).
        self._memory_confirmed = False
        self._memory_declined = False
        self.last_transform = None
        #: Inputs of the last Apply (the registration's fixed and moving images, say).
        self.last_inputs: dict = {}
        #: Input name -> the layer each input of the last Apply came from.
        self.last_sources: dict = {}
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self.preview)
        self._prepare_job: BackgroundJob | None = None
        self._prepare_cancel = threading.Event()
        # (operator, image, parameters) of the last preparation started.
        self._prepared_key: tuple | None = None
        # Seed state -> (packed bits, shape) of the result, for operators with a
        # previous_result_input: each click refines the result of the clicks before it.
        # The results belong to one image array, held here so that its id stays its own.
        self._previous_results: OrderedDict[tuple, tuple[np.ndarray, tuple]] = OrderedDict()
        self._previous_results_image: np.ndarray | None = None
        document.history.changed.connect(self._on_seeds_changed)
        document.seeds_changed.connect(self._on_seeds_changed)

    # -- configuration ----------------------------------------------------------------
    def set_operator(self, spec: OperatorSpec | None, params: dict | None = None) -> None:
        """Choose the operator; drops any preview of the previous one."""
        self.cancel()
        self.spec = spec
        self._previous_results.clear()
        self.params = dict(params or (spec.defaults() if spec else {}))
        self._memory_confirmed = self._memory_declined = False
        self.clear_preview()
        self.prepare()

    def set_params(self, params: dict) -> None:
        """New parameter values; re-previews after a pause when auto-preview is on."""
        self.params = dict(params)
        self._memory_declined = False  # a smaller tile, say, deserves a new estimate
        self.prepare()
        if self.auto_preview:
            self._timer.start(PARAM_DEBOUNCE_MS)

    def prepare(self) -> bool:
        """Start the operator's slow, seed-independent work (an image encoding) in the background.

        Only for operators registered with ``prepare``, and once per image and parameter
        values: a preparation already under way keeps running when a parameter changes
        (the operator's cache keeps what each one made; a run that needs it waits for
        it). :meth:`cancel` and choosing another operator stop it. Returns whether one
        started.
        """
        spec, base = self.spec, self.document.base_image
        if spec is None or spec.prepare is None or base is None or spec.missing_requirements():
            return False
        try:
            params = {**spec.defaults(), **{name: spec.param(name).coerce(v) for name, v in self.params.items()}}
        except InputError:
            return False
        key = (spec.id, id(base.data), repr(sorted(params.items())))
        if key == self._prepared_key:
            return False
        self._prepared_key = key
        ctx = RunContext(cancel_event=self._prepare_cancel)
        image, title = base.data, spec.title

        def run() -> str:
            started = time.perf_counter()
            spec.prepare({"image": image}, params, ctx)
            return f"{title}: ready for previews (prepared in {time.perf_counter() - started:.1f} s)"

        job = BackgroundJob(run)
        job.done.connect(lambda value, job=job: self._on_prepared(job, value))
        self._prepare_job = job
        job.start()
        return True

    def _on_prepared(self, job: BackgroundJob, value) -> None:
        if job is not self._prepare_job:
            return  # superseded by a newer preparation
        self._prepare_job = None
        # Cancelled, or parameters not complete yet (no checkpoint chosen, a path half
        # typed): the form and the next preview say what is missing.
        if isinstance(value, (Cancelled, InputError)):
            return
        if isinstance(value, Exception):
            self.prepared.emit(f"{type(value).__name__}: {value}")
        else:
            self.prepared.emit(value)

    def set_auto_preview(self, enabled: bool) -> None:
        """Turn auto-preview on (previews at once) or off."""
        self.auto_preview = bool(enabled)
        if enabled:
            self._timer.start(0)

    def _on_seeds_changed(self) -> None:
        if self._memory_declined:
            return
        if self.auto_preview and self.spec is not None and not self._applying and not self.document.history.in_group:
            self._timer.start(SEED_DEBOUNCE_MS)

    @property
    def busy(self) -> bool:
        """Whether a worker is running."""
        return self._worker is not None

    @property
    def preview_layer(self) -> Layer | None:
        """The transient preview layer, if one is shown."""
        return self._preview

    # -- inputs -----------------------------------------------------------------------
    def gather_inputs(self, spec: OperatorSpec, sources: dict | None = None) -> dict:
        """Snapshot the inputs ``spec`` takes from the document.

        Seed layers are copied: the person may keep drawing while the worker runs.

        Parameters
        ----------
        spec : OperatorSpec
            The operator.
        sources : dict, optional
            Filled with input name -> the :class:`Layer` it came from (``rect`` and
            ``points`` come from the document's prompts and get no entry): recipes record
            whether an input was the opened image, a drawn seed or an earlier result.

        Raises
        ------
        InputError
            When a required input is missing (no image, no mask layer, ...).
        """
        doc = self.document
        base = doc.base_image
        if base is None:
            raise InputError("open an image first")
        sources = {} if sources is None else sources
        inputs: dict = {}
        for name in spec.inputs:
            if name == spec.previous_result_input:
                # Not a layer: the result for the same seeds without the newest click (a
                # run without clicks refines nothing, or Apply would differ from its preview).
                previous = self._previous_result(spec, base.data, doc.points[:-1], doc.rect) if doc.points else None
                if previous is not None:
                    inputs[name] = previous
            elif name == "image":
                inputs["image"], sources["image"] = base.data, base
            elif name == "image2":
                others = [layer for layer in doc.layers.of_kind(LayerKind.IMAGE) if layer is not base]
                if others:
                    inputs["image2"], sources["image2"] = others[-1].data, others[-1]
            elif name == "markers":
                markers = [layer for layer in doc.layers.of_kind(LayerKind.MARKERS) if layer.visible]
                if markers and markers[-1].data.any():
                    inputs["markers"], sources["markers"] = markers[-1].data.copy(), markers[-1]
            elif name == "mask":
                selected = doc.layers.selected
                masks = doc.layers.of_kind(LayerKind.MASK, LayerKind.LABELS)
                source = selected if selected in masks else (masks[-1] if masks else None)
                if source is not None:
                    inputs["mask"], sources["mask"] = source.data.copy(), source
            elif name == "rect" and doc.rect is not None:
                inputs["rect"] = doc.rect
            elif name == "points" and doc.points:
                inputs["points"] = list(doc.points)
        missing = [name for name in spec.required_inputs if name not in inputs]
        if missing:
            raise InputError(f"{spec.title} needs {', '.join(missing)}: add it first")
        return inputs

    # -- running ----------------------------------------------------------------------
    def preview(self) -> bool:
        """Run the operator for a preview now; returns False when it could not start."""
        return self._start("preview")

    def apply(self) -> bool:
        """Run the operator at full resolution and add its results as one undo step."""
        self._timer.stop()
        return self._start("apply")

    def confirm_memory(self, purpose: str) -> bool:
        """Run ``purpose`` again, and later runs of this operator, despite the memory warning."""
        self._memory_confirmed = True
        return self._start(purpose)

    def decline_memory(self) -> None:
        """After a declined memory warning, automatic previews stop asking until a parameter
        changes; Preview and Apply still ask."""
        self._memory_declined = True

    def cancel(self) -> None:
        """Stop the running worker and any preparation; their results are discarded."""
        self._timer.stop()
        self._prepare_cancel.set()
        self._prepare_cancel, self._prepared_key = threading.Event(), None
        if self._worker is not None:
            self._detach(self._worker)
            self._worker = None
            self.busy_changed.emit(False)
            self.message.emit("Cancelled")

    def _start(self, purpose: str) -> bool:
        if self.spec is None:
            return False
        if self._worker is not None:
            self._detach(self._worker)
            self._worker = None
        sources: dict = {}
        try:
            inputs = self.gather_inputs(self.spec, sources)
            for name, value in self.params.items():
                self.spec.param(name).coerce(value)
        except InputError as error:
            if purpose == "preview" and self.auto_preview:
                self.message.emit(str(error))
            else:
                self.failed.emit(OperatorError(str(error), "", True))
            self.busy_changed.emit(False)
            return False
        worker = OperatorWorker(self.spec, inputs, self.params, purpose, check_memory=not self._memory_confirmed)
        worker.sources = sources
        worker.progress.connect(self.progress)
        worker.partial.connect(self._on_partial)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._on_errored)
        worker.cancelled.connect(self._on_cancelled)
        self._worker = worker
        worker.start()
        self.busy_changed.emit(True)
        self.message.emit(f"{self.spec.title}: {'previewing' if purpose == 'preview' else 'applying'}...")
        return True

    def _detach(self, worker: OperatorWorker) -> None:
        """Cancel a worker and make sure none of its signals reaches us any more."""
        worker.cancel()
        for signal in (worker.progress, worker.partial, worker.returned, worker.errored, worker.cancelled):
            signal.disconnect()
        # Keep the Python object alive until its thread ends (deleting a running QThread aborts).
        worker.finished.connect(worker.deleteLater)

    def _finish(self, worker: OperatorWorker) -> None:
        if worker is self._worker:
            self._worker = None
            worker.finished.connect(worker.deleteLater)
            self.busy_changed.emit(False)

    # -- results ----------------------------------------------------------------------
    def _current(self) -> OperatorWorker | None:
        """The worker that sent this signal, if it is the current one.

        A queued signal of a stale or already deleted worker can still arrive; its sender
        is then another worker or None, and it must not touch the preview or the state.
        """
        worker = self.sender()
        return worker if worker is not None and worker is self._worker else None

    def _on_partial(self, result) -> None:
        if self._current() is not None and isinstance(result, Result):
            self._show_preview(result)
            if result.scores:
                self.partial_scores.emit(dict(result.scores))

    def _on_returned(self, result: Result) -> None:
        worker = self._current()
        if worker is None:
            return
        self._finish(worker)
        self._remember_result(worker.spec, worker.inputs, result)
        self.scores.emit(dict(result.scores))
        if worker.purpose == "preview":
            self._show_preview(result)
            self.message.emit(f"{worker.spec.title}: preview ready ({result.iterations} iterations)")
        else:
            self.last_inputs, self.last_sources = worker.inputs, worker.sources
            self._commit(worker.spec, worker.params, result)

    def _on_errored(self, error: OperatorError) -> None:
        worker = self._current()
        if worker is not None:
            self._finish(worker)
            if error.memory_shortage:
                self.memory_warning.emit(error.message, worker.purpose)
            elif error.is_input_error and worker.purpose == "preview" and self.auto_preview:
                # While the person is still drawing, "not enough seeds yet" is no error.
                self.message.emit(error.message)
            else:
                self.failed.emit(error)

    def _on_cancelled(self) -> None:
        worker = self._current()
        if worker is not None:
            self._finish(worker)
            self.message.emit("Cancelled")

    # -- results an operator refines -------------------------------------------------
    def _results_for(self, image) -> OrderedDict:
        """The remembered results of ``image`` (forgetting those of any other image)."""
        if image is not self._previous_results_image:
            self._previous_results.clear()
            self._previous_results_image = image
        return self._previous_results

    @staticmethod
    def _seed_state(spec: OperatorSpec, points, rect) -> tuple:
        return (spec.id, rect, tuple((float(r), float(c), int(label)) for r, c, label in points))

    def _previous_result(self, spec: OperatorSpec, image, points, rect) -> np.ndarray | None:
        """The result remembered for these seeds on ``image`` (a box alone counts), or None."""
        stored = self._results_for(image).get(self._seed_state(spec, points, rect))
        if stored is None:
            return None
        bits, shape = stored
        return np.unpackbits(bits, count=shape[0] * shape[1]).reshape(shape).astype(bool)

    def _remember_result(self, spec: OperatorSpec, inputs: dict, result: Result) -> None:
        """Keep the main output of an operator that refines its previous result."""
        if spec.previous_result_input is None:
            return
        mask = result.outputs.get(spec.outputs[0])
        if mask is None or np.ndim(mask) != 2:
            return
        results = self._results_for(inputs.get("image"))
        key = self._seed_state(spec, inputs.get("points", ()), inputs.get("rect"))
        results[key] = (np.packbits(np.asarray(mask, bool)), np.shape(mask))
        results.move_to_end(key)
        while len(results) > PREVIOUS_RESULTS_KEPT:
            results.popitem(last=False)

    def _show_preview(self, result: Result) -> None:
        kind, data = _preview_data(result)
        if data is None:
            return
        bounds = result.bounds
        base = self.document.base_image
        if base is not None and data.shape[:2] != base.shape and data.ndim <= 3:
            # A quick partial computed on a reduced copy (a CNN's first epochs) is shown
            # stretched over the image until the full-size result arrives.
            data, bounds = resize_to(data, base.shape, smooth=kind is LayerKind.IMAGE), None
        preview = self._preview
        if (
            preview is not None
            and preview.shape == data.shape[:2]
            and preview.kind is kind
            and preview.data.dtype == data.dtype
            and preview.data.ndim == data.ndim
            and bounds is not None
            and bounds == self._preview_bounds
        ):
            # Same region as last time: update just that box (cheap on 12 MP photos).
            preview.write(bounds, data[bounds])
        elif preview is not None and preview.kind is kind and preview.data.ndim == data.ndim:
            preview.data = data
        else:
            # Masks and labels preview as a tint over the photo; an image result (inpainting,
            # denoising, a warped moving image) is itself the thing to look at.
            self._preview = Layer(data, kind, "preview", opacity=1.0 if kind is LayerKind.IMAGE else 0.55)
            self.preview_changed.emit(self._preview)
        self._preview_bounds = bounds

    def clear_preview(self) -> None:
        """Hide and drop the preview layer."""
        if self._preview is not None:
            self._preview = None
            self._preview_bounds = None
            self.preview_changed.emit(None)

    def _commit(self, spec: OperatorSpec, params: dict, result: Result) -> None:
        doc = self.document
        added = []
        self._applying = True
        try:
            with doc.history.group(spec.title):
                transform = result.outputs.get("transform")
                for output, value in result.outputs.items():
                    for name, data, kind in _output_layers(spec, output, value, result.class_ids):
                        metadata = {"operator": spec.id, "parameters": dict(params), "output": output}
                        if transform is not None:
                            # A warped image remembers how it was made, for export and re-use.
                            metadata["transform"] = transform
                        layer = Layer(
                            data,
                            kind,
                            doc.layers.unique_name(name),
                            opacity=0.6 if kind is not LayerKind.IMAGE else 1.0,
                            metadata=metadata,
                        )
                        doc.add_layer(layer)
                        added.append(layer)
                if spec.previous_result_input is not None:
                    # The clicks made this object; the next click starts the next one.
                    doc.clear_seeds()
        finally:
            self._applying = False
        self.clear_preview()
        if transform is not None:
            self.last_transform = transform
            self.transform_ready.emit(transform)
        self.message.emit(f"{spec.title} applied: {', '.join(layer.name for layer in added)}")
        self.applied.emit(added)


def _preview_data(result: Result) -> tuple[LayerKind, np.ndarray | None]:
    """The layer kind and array that best preview a result."""
    outputs = result.outputs
    if "mask" in outputs:
        mask = np.asarray(outputs["mask"])
        # A bool mask is viewed, not copied, as uint8: 12 MP previews arrive every iteration.
        return LayerKind.PREVIEW, mask.view(np.uint8) if mask.dtype == bool else mask.astype(np.uint8)
    if "labels" in outputs:
        return LayerKind.LABELS, np.asarray(outputs["labels"])
    if "image" in outputs:
        return LayerKind.IMAGE, np.asarray(outputs["image"])
    return LayerKind.PREVIEW, None


def _output_layers(spec: OperatorSpec, output: str, value, class_ids: tuple[int, ...] | None = None):
    """(name, data, kind) of the layers that hold one output of an Apply.

    Probability planes are named by ``class_ids`` (the label value each plane scores),
    else numbered from 1 like scribble classes.
    """
    if output in OUTPUT_LAYER_KIND:
        data = np.asarray(value)
        if output == "mask":
            data = data.astype(np.uint8)
        yield f"{spec.title} {output}", data, OUTPUT_LAYER_KIND[output]
    elif output == "probabilities":
        probabilities = np.asarray(value, np.float32)
        count = probabilities.shape[2] if probabilities.ndim == 3 else 1
        ids = class_ids if class_ids is not None and len(class_ids) == count else range(1, count + 1)
        for index, class_id in enumerate(ids):
            channel = probabilities[..., index] if probabilities.ndim == 3 else probabilities
            yield f"{spec.title} P(class {class_id})", channel, LayerKind.IMAGE
