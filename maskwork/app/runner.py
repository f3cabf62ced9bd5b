"""Runs the chosen operator for previews and for Apply, one run at a time.

The window's adapter over :mod:`maskwork.pipeline.session`: it picks the inputs from the
document by the session's input policy, starts a :class:`~maskwork.pipeline.session.RunSession`
in a :class:`~maskwork.widgets.workers.Worker`, draws the latest partial result into a
transient preview layer that never enters the layer stack or history, and adds the
layers of an Apply as one undoable step. A new request cancels the stale run; its late
signals are recognised by their session and ignored, so an old result never reaches the
screen (the Orange3 habit).
"""

from __future__ import annotations

import sys
import threading
import time
import weakref
from collections import OrderedDict

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from maskwork.core.document import Document
from maskwork.core.layers import Layer, LayerKind
from maskwork.operators import Cancelled, InputError, NoObjectYet, OperatorSpec, RunContext
from maskwork.operators.native_libraries import import_ahead
from maskwork.pipeline.session import (
    CANCELLED,
    DONE,
    FAILED,
    INPUT_ERROR,
    MEMORY,
    PreviewData,
    RunOutcome,
    RunSession,
    choose_sources,
    collect_inputs,
)
from maskwork.widgets.layer_view import BACKGROUND_LABEL, LABELS_OBJECT_ONLY
from maskwork.widgets.workers import Worker, session_worker, start_worker

#: Quiet time after a parameter edit before the preview re-runs.
PARAM_DEBOUNCE_MS = 150
#: Seeds change at the end of a stroke, already a discrete event: just coalesce.
SEED_DEBOUNCE_MS = 10

#: Results kept per seed state for operators that refine their previous result (Quick
#: select): enough to undo a long run of clicks and get each earlier mask back exactly.
PREVIOUS_RESULTS_KEPT = 64

#: The session's layer kinds as document layer kinds (a mask previews as a tint).
LAYER_KIND = {"mask": LayerKind.MASK, "labels": LayerKind.LABELS, "image": LayerKind.IMAGE}
PREVIEW_KIND = {"mask": LayerKind.PREVIEW, "labels": LayerKind.LABELS, "image": LayerKind.IMAGE}


class OperatorRunner(QObject):
    """Owns the current operator, its parameters, the preview layer and the running session.

    Parameters
    ----------
    document : Document
        Where inputs come from and results go.

    Signals
    -------
    busy_changed(bool)
        A run started or the last one ended.
    progress(fraction, message)
        Progress of the running session.
    preview_changed(layer)
        The transient preview layer to draw (None to hide it).
    failed(RunOutcome)
        The run failed (its ``message``, ``details`` and ``is_input_error``); the document
        is unchanged.
    applied(list)
        Layers added by Apply.
    message(str)
        A short status line.
    scores(dict)
        The scores of the latest preview or applied result (thresholds, energies...).
    partial_scores(dict)
        The scores of each partial result shown (a registration's metric per iteration).
    transform_ready(object)
        The transform of an applied registration (also kept as ``last_transform``).
    memory_warning(message, purpose)
        A run did not start because its memory estimate exceeds what its device has free;
        :meth:`confirm_memory` runs it anyway.
    prepared(str)
        The operator's background preparation (see :meth:`prepare`) finished; the text
        says what is ready, or why it failed (not emitted when the operator found
        nothing to prepare).
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
        #: The running session (None when idle); its worker is :attr:`_worker`.
        self.session: RunSession | None = None
        self._worker: Worker | None = None
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
        #: Input name -> the layer the person chose for it in the operator's form.
        self.chosen_sources: dict = {}
        #: The pixel digest of each layer the last Apply added, in order (made in the worker).
        self.last_digests: list[str] = []
        #: Counts the changes that may change what the inputs are (edits, undo, prompts,
        #: the selected layer): a finished preview is what Apply commits while it holds.
        self._inputs_revision = 0
        # (revision its inputs were gathered at, session, result, the layers that fed it)
        # of the last preview done.
        self._finished_preview: tuple[int, RunSession, object, dict] | None = None
        #: The layers that feed the running session, and those that fed the result the
        #: preview layer shows (input name -> layer, :meth:`_fed_layers`); and whether what
        #: it shows is a partial result (of a run going on, or of one stopped since).
        self._running_layers: dict = {}
        self._shown_layers: dict = {}
        self._preview_partial = False
        self._session_revision = 0
        # Whether the running session's unusable inputs are a status line (a preview that
        # follows the person's drawing) rather than an error box.
        self._session_quiet = False
        # For an operator that refines its previous result: when the running session is
        # one step of a run of clicks (the result of the clicks before the newest was not
        # known), the run to start when it is done, as (purpose, quiet, the (box, clicks)
        # it is for, or None for the document's then).
        self._then: tuple[str, bool, tuple | None] | None = None
        # The (box, clicks) of an Apply whose step met the memory warning, for its rerun.
        self._memory_prompts: tuple | None = None
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._preview_after_edit)
        self._prepare_worker: Worker | None = None
        self._prepare_cancel = threading.Event()
        # (operator, image, parameters) of the last preparation started.
        self._prepared_key: tuple | None = None
        # (image id, seed state) -> (the image, weakly; (packed bits, shape) of the
        # result, or None where the seeds made none), for operators with a
        # previous_result_input: each click refines the result of the clicks before it.
        # Kept across a look at another operator or image: the same clicks must give the
        # same mask when the person comes back.
        self._previous_results: OrderedDict[tuple, tuple[weakref.ref, tuple | None]] = OrderedDict()
        document.history.changed.connect(self._on_seeds_changed)
        document.seeds_changed.connect(self._on_seeds_changed)
        document.layers.selection_changed.connect(self._on_selection_changed)

    # -- configuration ----------------------------------------------------------------
    def set_operator(self, spec: OperatorSpec | None, params: dict | None = None) -> None:
        """Choose the operator; drops any preview of the previous one."""
        self.cancel()
        self.spec = spec
        self.params = dict(params or (spec.defaults() if spec else {}))
        self._memory_confirmed = self._memory_declined = False
        self.clear_preview()
        self._import_ahead()
        self.prepare()

    def forget_document(self) -> None:
        """Drop what refers to the current document (another one is coming): the last
        Apply's inputs, source layers and transform, the kept results of earlier clicks and
        the finished preview. Without this the last Apply kept the previous photo alive,
        and Export transform wrote the previous document's transform with the new one's
        name in its sidecar."""
        self.cancel()
        self.clear_preview()
        self.last_inputs, self.last_sources, self.last_digests = {}, {}, []
        self.last_transform = None  # made for (or loaded onto) the previous document's images
        self._previous_results.clear()

    def _import_ahead(self) -> None:
        """Import what the chosen operator runs on (torch, SimpleITK) in the background now:
        a first import holds the GIL for a while, better at the choice than mid-stroke."""
        spec = self.spec
        if spec is None or spec.missing_requirements() or all(name in sys.modules for name in spec.requires):
            return
        modules, title = spec.requires, spec.title
        # A failed import is not reported here: the operator's run imports again and says why.
        start_worker(lambda worker: import_ahead(modules, title), errored=lambda error: None, name=f"{spec.id} imports")

    def set_params(self, params: dict) -> None:
        """New parameter values; re-previews after a pause when auto-preview is on or a
        preview is shown (it must show what Apply would commit)."""
        self.params = dict(params)
        self._memory_declined = False  # a smaller tile, say, deserves a new estimate
        self.prepare()
        if self.auto_preview or self._preview is not None:
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
        image, title = base.data, spec.title

        def run(worker: Worker) -> str:
            started = time.perf_counter()
            if spec.prepare({"image": image}, params, RunContext(cancel_event=worker.cancel_event)) is False:
                return ""  # nothing was needed
            return f"{title}: ready for previews (prepared in {time.perf_counter() - started:.1f} s)"

        worker = Worker(run, cancel_event=self._prepare_cancel, name=f"{spec.id} preparation")
        worker.returned.connect(lambda value: self._on_prepared(worker, value))
        worker.errored.connect(lambda error: self._on_prepared(worker, error))
        self._prepare_worker = worker
        worker.start()
        return True

    def _on_prepared(self, worker: Worker, value) -> None:
        if worker is not self._prepare_worker:
            return  # superseded by a newer preparation, or cancelled
        self._prepare_worker = None
        # Parameters not complete yet (no checkpoint chosen, a path half typed): the form
        # and the next preview say what is missing.
        if isinstance(value, (Cancelled, InputError)):
            return
        if isinstance(value, Exception):
            self.prepared.emit(f"{type(value).__name__}: {value}")
        elif value:
            self.prepared.emit(value)

    def set_sources(self, chosen: dict) -> None:
        """The layers the person chose for inputs (input name -> layer); re-previews as
        a parameter change does."""
        self.chosen_sources = dict(chosen)
        self._on_seeds_changed()

    def set_auto_preview(self, enabled: bool) -> None:
        """Turn auto-preview on (previews at once) or off."""
        self.auto_preview = bool(enabled)
        if enabled:
            self._timer.start(0)

    def _on_seeds_changed(self) -> None:
        """An edit, undo, visibility change or prompt: the preview follows it when previews
        are automatic, and also when one is shown or on its way (hiding a scribble layer
        changes the inputs, and Apply must commit what the preview shows)."""
        self._inputs_revision += 1
        if self._memory_declined:
            return
        previewing = self.session is not None and self.session.purpose == "preview"
        if ((self.auto_preview or self._preview is not None or previewing) and self.spec is not None
                and not self._applying and not self.document.history.in_group):
            self._timer.start(SEED_DEBOUNCE_MS)

    def _on_selection_changed(self, layer) -> None:
        """The selected layer feeds the input it fits: when that changes which layers feed
        the operator it is an edit (a preview on screen follows it, so that Apply commits
        what it shows); selecting a layer that feeds nothing new changes nothing."""
        if self.spec is not None:
            if self.session is not None and self.session.purpose == "preview":
                feeding = self._running_layers  # the preview on its way
            elif self._preview is not None:
                feeding = self._shown_layers
            else:
                feeding = None
            if feeding is not None and _same_layers(feeding, self._fed_layers(self.spec)):
                return
        self._on_seeds_changed()

    def _preview_after_edit(self) -> None:
        """The re-preview an edit asked for (after its debounce). A running Apply goes on:
        the person asked for that result, made from the inputs as they were at the click
        (its preview is dropped when it lands); the next edit previews again."""
        applying = self.session is not None and (
            self.session.purpose == "apply" or (self._then is not None and self._then[0] == "apply"))
        if applying:
            return
        if self._extends_running_clicks():
            # The click came before the run of the clicks before it was done: that run
            # goes on, its result is the one this click refines.
            self._then = self._then or ("preview", True, None)
            return
        self._start("preview", quiet=True)

    def _extends_running_clicks(self) -> bool:
        """Whether the document's prompts are the running session's with clicks added,
        everything else (operator, parameters, box, layers) the same."""
        session, doc = self.session, self.document
        if session is None or session.spec is not self.spec or session.spec.previous_result_input is None:
            return False
        taken = tuple(session.inputs.get("points") or ())
        return (len(taken) < len(doc.points) and doc.points[:len(taken)] == taken
                and session.inputs.get("rect") == doc.rect and session.params == self.params
                and _same_layers(self._running_layers, self._fed_layers(self.spec)))

    @property
    def busy(self) -> bool:
        """Whether a run is going."""
        return self.session is not None

    @property
    def preview_is_current(self) -> bool:
        """Whether the preview shown is the finished result of the inputs as they are now
        (not a partial one, nor that of an earlier click on the way): what Apply adds."""
        return self._preview is not None and not self._preview_partial and self._current_preview() is not None

    @property
    def preview_layer(self) -> Layer | None:
        """The transient preview layer, if one is shown."""
        return self._preview

    # -- inputs -----------------------------------------------------------------------
    def gather_inputs(self, spec: OperatorSpec, sources: dict | None = None, *, copy_editable: bool = True,
                      prompts: tuple | None = None) -> dict:
        """Snapshot the inputs ``spec`` takes from the document, by the session's policy.

        The selected layer feeds the input it fits; otherwise ``image`` is the bottom image,
        ``image2`` the topmost other one, ``markers`` the topmost visible scribble layer and
        ``mask`` the topmost mask or labels layer (see
        :data:`maskwork.pipeline.session.INPUT_POLICY`). Seed layers are copied (here, or by
        the session's worker): the person may keep drawing while the run goes on.

        Parameters
        ----------
        spec : OperatorSpec
            The operator.
        sources : dict, optional
            Filled with input name -> the :class:`Layer` it came from (``rect`` and
            ``points`` come from the document's prompts and get no entry): recipes record
            whether an input was the opened image, a drawn seed or an earlier result.
        copy_editable : bool
            Copy the seed layers here; False leaves them to a session that copies them
            in its worker (see :func:`~maskwork.pipeline.session.collect_inputs`).
        prompts : (rect, points), optional
            The box and clicks to run for (an Apply's, kept while its earlier clicks are
            worked out: a box or click added meanwhile is the next object's); the
            document's by default. An operator that refines its previous result gets the
            result of all but the newest click; where that is not known yet, only the
            clicks up to the newest whose previous result is known
            (:meth:`_chain_step`), so fewer than these.

        Raises
        ------
        InputError
            When a required input is missing (no image, no mask layer, ...).
        """
        doc = self.document
        if doc.base_image is None:
            raise InputError("open an image first")
        chosen = self._chosen_layers(spec)
        values = {name: layer.data for name, layer in chosen.items()}
        rect, points = (doc.rect, doc.points) if prompts is None else prompts
        values["rect"] = rect
        values["points"] = list(points)
        if spec.previous_result_input is not None:
            # Not a layer: the result for the same seeds without the newest click (a run
            # without clicks refines nothing, or Apply would differ from its preview).
            chosen.pop(spec.previous_result_input, None)
            step = self._chain_step(spec, values["image"], points, rect)
            values["points"] = list(points[:step])
            values[spec.previous_result_input] = (
                self._previous_result(spec, values["image"], points[:step - 1], rect) if step else None
            )
        inputs = collect_inputs(spec, values, copy_editable=copy_editable)
        if sources is not None:
            sources.update({name: layer for name, layer in chosen.items() if name in inputs})
        return inputs

    def input_layer(self, name: str) -> Layer | None:
        """The layer that would feed the chosen operator's input ``name`` if it ran now
        (the selected layer where it fits, else the input policy's), or None."""
        return self._chosen_layers(self.spec).get(name) if self.spec is not None else None

    def _fed_layers(self, spec: OperatorSpec) -> dict:
        """Input name -> the layer that would feed a run started now: every layer the
        input policy picks, fed or not (an empty scribble layer is left out of the inputs,
        and scribbling into it changes them), the previous-result input aside."""
        layers = self._chosen_layers(spec)
        layers.pop(spec.previous_result_input, None)
        return layers

    def _chosen_layers(self, spec: OperatorSpec) -> dict:
        """Input name -> the layer that feeds it (:func:`choose_sources`), nothing copied."""
        layers = self.document.layers
        candidates = {
            "image": list(reversed(layers.of_kind(LayerKind.IMAGE))),
            "image2": list(reversed(layers.of_kind(LayerKind.IMAGE))),
            "markers": [layer for layer in reversed(layers.of_kind(LayerKind.MARKERS)) if layer.visible],
            "mask": list(reversed(layers.of_kind(LayerKind.MASK, LayerKind.LABELS))),
        }
        return choose_sources(spec, candidates, layers.selected, self.chosen_sources)

    # -- running ----------------------------------------------------------------------
    def preview(self) -> bool:
        """Run the operator for a preview now; returns False when it could not start."""
        return self._start("preview", quiet=self.auto_preview)

    def apply(self) -> bool:
        """Add the operator's results as one undo step: those of the finished preview when
        nothing changed since it ran (what the person saw is what is applied), else those
        of a new run at full resolution."""
        self._timer.stop()
        finished = self._current_preview()
        if finished is not None:
            return self._apply_finished_preview(*finished[1:])
        return self._start("apply")

    def _current_preview(self) -> tuple | None:
        """The finished preview if it is what a run started now would make: nothing
        edited since its inputs were gathered, the same operator, parameters and layers."""
        finished = self._finished_preview
        if (finished is not None and finished[0] == self._inputs_revision and finished[1].spec is self.spec
                and finished[1].params == self.params and _same_layers(finished[3], self._fed_layers(self.spec))):
            return finished
        return None

    def confirm_memory(self, purpose: str) -> bool:
        """Run ``purpose`` again, and later runs of this operator, despite the memory warning."""
        self._memory_confirmed = True
        prompts, self._memory_prompts = self._memory_prompts, None
        return self._start(purpose, prompts=prompts)

    def decline_memory(self) -> None:
        """After a declined memory warning, automatic previews stop asking until a parameter
        changes; Preview and Apply still ask."""
        self._memory_declined = True

    def cancel(self) -> None:
        """Stop the running session and any preparation; their results are discarded."""
        self._timer.stop()
        if self._prepare_worker is not None:
            self._prepare_worker.quit()
        self._prepare_worker = None
        self._prepare_cancel, self._prepared_key = threading.Event(), None
        if self.session is not None:
            if self._preview_partial or self._current_preview() is None:
                # A partial result of what was cancelled, or a preview of what was edited
                # since: not what Apply would add, and while shown every edit would start
                # the run again.
                self.clear_preview()
            self._stop_session()
            self.busy_changed.emit(False)
            self.message.emit("Cancelled")

    def _stop_session(self) -> None:
        """Cancel the running session; its late signals no longer match and are ignored."""
        self._worker.quit()
        self.session = self._worker = None
        self._running_layers, self._then = {}, None

    def _start(self, purpose: str, quiet: bool = False, prompts: tuple | None = None) -> bool:
        """Run the operator for ``purpose``; ``quiet``: unusable inputs are a status line;
        ``prompts``: the (box, clicks) to run for, the document's by default (see
        :meth:`gather_inputs`). Where an earlier click's result must be worked out first,
        that step runs as a preview and the run asked for follows it."""
        if self.spec is None:
            self.message.emit("Choose an operator first, from the menus (Segmentation, Restore, ...)")
            return False
        if self.session is not None:
            self._stop_session()
        sources: dict = {}
        wanted = (self.document.rect, self.document.points) if prompts is None else prompts
        try:
            inputs = self.gather_inputs(self.spec, sources, copy_editable=False, prompts=wanted)
            then = None
            if self.spec.previous_result_input is not None and len(inputs.get("points") or ()) < len(wanted[1]):
                # An Apply is for the prompts there were when it was asked for; a preview
                # follows the document's.
                then = (purpose, quiet, wanted if purpose == "apply" else None)
                purpose, quiet = "preview", True
            session = RunSession(self.spec, inputs, self.params, purpose, sources, copy_in_worker=True)
        except InputError as error:
            if (purpose == "preview" and quiet) or self._preview_partial:
                # The inputs the shown preview was made from are gone (its box undone,
                # its clicks or scribbles deleted), or it is part of a run just stopped:
                # it no longer shows anything Apply adds.
                self.clear_preview()
            if purpose == "preview" and quiet:
                self.message.emit(str(error))
            else:
                self.failed.emit(RunOutcome(INPUT_ERROR, message=str(error)))
            self.busy_changed.emit(False)
            return False
        # A step before the clicks asked for shows its result, not partial ones on the way.
        worker = session_worker(session, check_memory=not self._memory_confirmed, partials=then is None)
        worker.progress.connect(lambda fraction, text: self._relay_progress(session, fraction, text))
        worker.partial_ready.connect(lambda: self._on_partial_ready(session))
        self._launch(session, worker, quiet, self._fed_layers(self.spec))
        self._then = then
        return True

    def _apply_finished_preview(self, preview: RunSession, result, layers: dict) -> bool:
        """Commit ``result``, made by the finished ``preview`` on the inputs as they are now
        (from ``layers``)."""
        if self.session is not None:
            self._stop_session()  # a preview asked again for the same inputs
        session = RunSession(preview.spec, preview.inputs, preview.params, "apply", preview.sources)
        worker = Worker(lambda worker: session.outcome_of(result), cancel_event=session.cancel_event,
                        name=f"{session.spec.id} (apply the preview)")
        worker.errored.connect(lambda error: self._on_outcome(session, RunOutcome(FAILED, message=f"{type(error).__name__}: {error}")))
        self._launch(session, worker, False, layers)
        return True

    def _launch(self, session: RunSession, worker: Worker, quiet: bool, layers: dict) -> None:
        worker.returned.connect(lambda outcome: self._on_outcome(session, outcome))
        self.session, self._worker, self._running_layers = session, worker, layers
        self._session_revision, self._session_quiet = self._inputs_revision, quiet
        worker.start()
        self.busy_changed.emit(True)
        self.message.emit(f"{session.spec.title}: {'previewing' if session.purpose == 'preview' else 'applying'}...")

    # -- results ----------------------------------------------------------------------
    def _relay_progress(self, session: RunSession, fraction: float, text: str) -> None:
        if session is self.session:
            self.progress.emit(fraction, text)

    def _on_partial_ready(self, session: RunSession) -> None:
        preview = session.take_partial()
        if session is self.session and preview is not None:
            self._show_preview(preview)
            self._shown_layers, self._preview_partial = self._running_layers, True
            if preview.result.scores:
                self.partial_scores.emit(dict(preview.result.scores))

    def _on_outcome(self, session: RunSession, outcome: RunOutcome) -> None:
        if session is not self.session:
            return  # a stale run that finished before it saw its cancellation
        self.session = self._worker = None
        # Held no longer than the run (nor the layers with it: another document may come).
        layers, self._running_layers = self._running_layers, {}
        then, self._then = self._then, None
        if then is not None and self._remember_result(session.spec, session.inputs, outcome):
            # One step of a run of clicks: its result (or that it makes none) is what the
            # next click refines. It is shown (the mask follows the clicks) as what Apply
            # would not add.
            if outcome.status == DONE and outcome.preview is not None:
                self._show_preview(outcome.preview)
                self._shown_layers, self._preview_partial = layers, True
            self._start(*then)
            return
        self.busy_changed.emit(False)
        spec = session.spec
        if outcome.status != DONE and self._preview_partial:
            self.clear_preview()  # partial results of a run that did not finish are no result
        self._remember_result(spec, session.inputs, outcome)
        if outcome.status == DONE:
            self.scores.emit(dict(outcome.result.scores))
            if session.purpose == "preview":
                if self._session_revision == self._inputs_revision:
                    self._finished_preview = (self._session_revision, session, outcome.result, layers)
                if outcome.preview is not None:
                    self._show_preview(outcome.preview)
                    self._shown_layers = layers
                # What it shows now is this finished run's (its partial, or its result).
                self._preview_partial = False
                self.message.emit(f"{spec.title}: preview ready ({outcome.result.iterations} iterations)")
            else:
                self.last_inputs, self.last_sources = session.inputs, session.sources
                self._commit(session, outcome)
        elif outcome.status == CANCELLED:
            self.message.emit("Cancelled")
        elif outcome.status == MEMORY:
            # For a step of an Apply's clicks, "run anyway" runs that Apply.
            self._memory_prompts = then[2] if then is not None else None
            self.memory_warning.emit(outcome.message, then[0] if then is not None else session.purpose)
        elif outcome.status == INPUT_ERROR and session.purpose == "preview" and self._session_quiet:
            # While the person is still drawing, "not enough seeds yet" is no error; and
            # the preview of the seeds there were no longer shows what Apply would add.
            self.clear_preview()
            self.message.emit(outcome.message)
        else:
            self.failed.emit(outcome)

    # -- results an operator refines -------------------------------------------------
    @staticmethod
    def _seed_state(spec: OperatorSpec, image: np.ndarray, points, rect) -> tuple:
        return (id(image), spec.id, rect, tuple((float(r), float(c), int(label)) for r, c, label in points))

    def _chain_step(self, spec: OperatorSpec, image, points, rect) -> int:
        """How many of ``points`` the next run takes: the most whose previous result (that
        of all but the newest of them) is known, down to the box alone or the first click,
        which refine nothing. The result of a run of clicks then never depends on how fast
        they came or on a look at another operator: every earlier step is worked out in
        order, as when the person waited for each preview."""
        step = len(points)
        first = 0 if rect is not None else 1
        while step > first and not self._knows_result(spec, image, points[:step - 1], rect):
            step -= 1
        return step

    def _stored_result(self, spec: OperatorSpec, image, points, rect) -> tuple | None:
        """(image reference, packed result or None) remembered for these seeds on
        ``image``, or None when nothing is (an id a freed array had is no match)."""
        stored = self._previous_results.get(self._seed_state(spec, image, points, rect))
        return stored if stored is not None and stored[0]() is image else None

    def _knows_result(self, spec: OperatorSpec, image, points, rect) -> bool:
        return self._stored_result(spec, image, points, rect) is not None

    def _previous_result(self, spec: OperatorSpec, image, points, rect) -> np.ndarray | None:
        """The result remembered for these seeds on ``image`` (a box alone counts), or None."""
        stored = self._stored_result(spec, image, points, rect)
        if stored is None or stored[1] is None:  # unknown, or these seeds made no result
            return None
        bits, shape = stored[1]
        return np.unpackbits(bits, count=shape[0] * shape[1]).reshape(shape).astype(bool)

    def _remember_result(self, spec: OperatorSpec, inputs: dict, outcome: RunOutcome) -> bool:
        """Keep the main output of an operator that refines its previous result (packed
        by the worker: :attr:`RunOutcome.packed_output`), or that these prompts mark no
        object yet (:class:`~maskwork.operators.NoObjectYet`: a first click beside the
        object), which the next click then refines as nothing. Returns whether it kept
        anything (a missing model, a failure or a cancelled run says nothing of the
        clicks)."""
        if spec.previous_result_input is None:
            return False
        if outcome.status == DONE and outcome.packed_output is not None:
            packed = outcome.packed_output
        elif outcome.status == INPUT_ERROR and isinstance(outcome.error, NoObjectYet):
            packed = None
        else:
            return False
        image, results = inputs.get("image"), self._previous_results
        key = self._seed_state(spec, image, inputs.get("points", ()), inputs.get("rect"))
        results[key] = (weakref.ref(image), packed)
        results.move_to_end(key)
        while len(results) > PREVIOUS_RESULTS_KEPT:
            results.popitem(last=False)
        return True

    def _show_preview(self, preview: PreviewData) -> None:
        kind, data, bounds = PREVIEW_KIND[preview.kind], preview.data, preview.bounds
        layer = self._preview
        if (
            layer is not None
            and layer.shape == data.shape[:2]
            and layer.kind is kind
            and layer.data.dtype == data.dtype
            and layer.data.ndim == data.ndim
            and bounds is not None
            and bounds == self._preview_bounds
        ):
            # Same region as last time: only that box is re-drawn. The partial's array is
            # taken as it is, as below; copying 12 MP into the old one would cost a frame.
            layer.replace_data(data, bounds)
        elif layer is not None and layer.kind is kind and layer.data.ndim == data.ndim:
            layer.data = data
        else:
            # Masks and labels preview as a tint over the photo; an image result (inpainting,
            # denoising, a warped moving image) is itself the thing to look at.
            self._preview = Layer(data, kind, "preview", opacity=1.0 if kind is LayerKind.IMAGE else 0.55,
                                  colormap=_labels_colormap(self.spec, kind, data))
            self.preview_changed.emit(self._preview)
        self._preview_bounds = bounds

    def clear_preview(self) -> None:
        """Hide and drop the preview layer (and forget its result)."""
        self._finished_preview = None
        self._shown_layers, self._preview_partial = {}, False
        if self._preview is not None:
            self._preview = None
            self._preview_bounds = None
            self.preview_changed.emit(None)

    def _commit(self, session: RunSession, outcome: RunOutcome) -> None:
        doc, spec = self.document, session.spec
        misfit = next((output for output in outcome.layers if LAYER_KIND[output.kind] is not LayerKind.IMAGE
                       and doc.shape is not None and output.data.shape[:2] != doc.shape), None)
        if misfit is not None:
            # An image of another size was selected while the run went on: the document's
            # layers now have its size, and adding some of the results would be half an Apply.
            source = session.sources.get("image")
            self.clear_preview()  # the Apply's partial result, which it will not add
            self.failed.emit(RunOutcome(FAILED, message=(
                f"{spec.title} made a {misfit.kind} of {misfit.data.shape[0]}x{misfit.data.shape[1]}, but the image is "
                f"now {doc.shape[0]}x{doc.shape[1]}: select {source.name if source else 'its image'} and apply again"
            )))
            return
        added = []
        # Below the scribble layers on top of the stack: a 60 % labels layer over them
        # hid the strokes a person goes on refining with.
        index = len(doc.layers)
        while index > 0 and doc.layers[index - 1].kind is LayerKind.MARKERS:
            index -= 1
        transform = outcome.result.outputs.get("transform")
        # Before the layers are added: the canvas then draws them with the preview's
        # ImageItems (layer_view.SPARE_ITEMS_KEPT), and both happen within one frame anyway.
        self.clear_preview()
        self._applying = True
        try:
            with doc.history.group(spec.title):
                for output in outcome.layers:
                    metadata = {"operator": spec.id, "parameters": dict(session.params), "output": output.output}
                    if output.transform is not None:
                        # A warped image remembers how it was made, for export and re-use.
                        metadata["transform"] = output.transform
                    kind = LAYER_KIND[output.kind]
                    layer = Layer(
                        output.data,
                        kind,
                        doc.layers.unique_name(output.name),
                        # Opaque probability planes on top would hide the labels under them.
                        visible=output.output != "probabilities",
                        opacity=0.6 if kind is not LayerKind.IMAGE else 1.0,
                        colormap=_labels_colormap(spec, kind, output.data),
                        metadata=metadata,
                    )
                    doc.add_layer(layer, index + len(added))
                    added.append(layer)
                self.last_digests = [output.digest for output in outcome.layers]
                if spec.previous_result_input is not None:
                    # The clicks made this object; the next click starts the next one (a
                    # click made while it was applied is that next click).
                    doc.clear_seeds((session.inputs.get("rect"), session.inputs.get("points") or ()))
            # Each added layer was selected in turn; the last may be a hidden probability
            # plane, which the next operator would then quietly take as its image.
            if added:
                doc.layers.selected = next((layer for layer in added if layer.visible), added[0])
        finally:
            self._applying = False
        if spec.previous_result_input is not None and (doc.rect is not None or doc.points):
            self._on_seeds_changed()  # a click made while it applied: the next object's preview
        if transform is not None:
            self.last_transform = transform
            self.transform_ready.emit(transform)
        self.message.emit(f"{spec.title} applied: {', '.join(layer.name for layer in added)}")
        self.applied.emit(added)


def _same_layers(first: dict, second: dict) -> bool:
    """Whether two input name -> layer mappings name the same layers (by identity: two
    layers may hold equal pixels)."""
    return first.keys() == second.keys() and all(first[name] is second[name] for name in first)


def _labels_colormap(spec: OperatorSpec | None, kind: LayerKind, data: np.ndarray) -> str:
    """How a result layer is coloured: the labels of a two-class segmentation from
    scribbles (1 object, 2 background) tint the object only; everything else as usual."""
    if (kind is LayerKind.LABELS and spec is not None and "markers" in spec.inputs and data.size
            and int(data.max()) <= BACKGROUND_LABEL):
        return LABELS_OBJECT_ONLY
    return "gray"
