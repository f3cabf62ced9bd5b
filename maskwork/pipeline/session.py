"""One operator run, the same for every front-end: the window, napari, `maskwork run` and batch.

A :class:`RunSession` is made on the main thread from the inputs a front-end chose (layers,
files, prompts) and executed in a worker thread (or inline on the command line). It owns
what used to be written once per front-end:

* **inputs by a declared policy** (:func:`choose_sources`, :func:`collect_inputs`): which
  layer feeds which input when a person has not said, seed layers snapshotted so drawing
  may go on during the run, and one message for a missing input;
* **execution** (:meth:`RunSession.execute`): the memory check, cooperative cancellation,
  and every way a run can end as a :class:`RunOutcome` (never an exception escaping the
  worker: an operator bug becomes a message with its traceback);
* **result checks** (:func:`check_result`): a result whose outputs are not the declared
  ones, or whose arrays do not fit the image, is refused before it reaches a layer;
* **the latest partial only**: an optimiser may offer dozens of partial results a second;
  the session keeps the newest, already converted to what a preview layer shows, and
  tells the front-end only when the slot was empty, so no stale full-size array ever
  queues up on the main thread;
* **results to named layers** (:func:`result_layers`), computed in the worker thread so
  the main thread only inserts them;
* **the recipe step** (:meth:`RunSession.recipe`) of a run made from files; a recipe's
  own steps run as sessions too (:mod:`maskwork.pipeline.replay`).

Nothing here imports Qt: front-ends adapt these pieces to their widgets and workers.
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from maskwork.core.layers import lend_arrays
from maskwork.core.pixels import pixel_digest
from maskwork.core.resize import resize_to
from maskwork.operators.context import Cancelled, InputError, Result, RunContext
from maskwork.operators.native_libraries import load_native_libraries
from maskwork.operators.registry import OperatorSpec

#: Inputs a person keeps editing while a run goes on: the run works on a copy.
EDITABLE_INPUTS = ("markers", "mask")

#: How each input is chosen when the person has not chosen it (see :func:`choose_sources`).
INPUT_POLICY = {
    "image": "the selected image, else the bottom one (the one opened first; a registration's fixed image)",
    "image2": "the topmost other image (a registration's moving image)",
    "markers": "the selected scribble layer, else the topmost visible one with scribbles",
    "mask": "the selected mask or labels layer, else the topmost one",
    "rect": "the box drawn on the image (the topmost shapes layer in napari)",
    "points": "the clicks or landmarks placed on the image (the topmost points layer in napari)",
}

#: How a run ended (:attr:`RunOutcome.status`).
DONE, CANCELLED, INPUT_ERROR, FAILED, MEMORY = "done", "cancelled", "input error", "failed", "memory"


# ----------------------------------------------------------------------------- inputs


#: How a missing input is named to the person.
MISSING_INPUT_WORDS = {
    "image": "an image",
    "image2": "a second image layer",
    "markers": "scribbles",
    "mask": "a mask or labels layer",
    "rect": "a box",
    "points": "clicks on the image",
}


def choose_sources(spec: OperatorSpec, candidates: Mapping[str, Sequence[Any]], selected: Any = None,
                   chosen_by_person: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Pick the layer for each input of ``spec`` by :data:`INPUT_POLICY`.

    Parameters
    ----------
    spec : OperatorSpec
        The operator.
    candidates : mapping
        Input name -> the layers that could feed it, topmost first, in the front-end's own
        layer type. A front-end whose box and points are prompts rather than layers (the
        window) gives no candidates for ``rect`` and ``points``.
    selected : object, optional
        The layer the person selected: it feeds the first input it fits, if any.
    chosen_by_person : mapping, optional
        Input name -> the layer the person chose for it (a registration's fixed and moving
        images): used when it is among the input's candidates, before any other rule.

    Returns
    -------
    dict
        Input name -> chosen layer; inputs without a candidate are left out. No layer
        feeds two inputs.
    """
    chosen: dict[str, Any] = {}
    wanted: dict[str, Any] = {}
    for name in spec.inputs:
        layer = (chosen_by_person or {}).get(name)
        # One layer chosen for two inputs (both combo boxes show the only image open)
        # feeds the first: the same image twice aligns nothing.
        if (layer is not None and any(candidate is layer for candidate in candidates.get(name, ()))
                and all(other is not layer for other in wanted.values())):
            wanted[name] = layer
    used: set[int] = {id(layer) for layer in wanted.values()}
    for name in spec.inputs:
        if name in wanted:
            chosen[name] = wanted[name]
            continue
        layers = [layer for layer in candidates.get(name, ()) if id(layer) not in used]
        if name == "image":
            layers.reverse()  # the bottom image, not a result added on top of it
        if selected is not None and any(layer is selected for layer in layers):
            layer = selected
        elif layers:
            layer = layers[0]
        else:
            continue
        chosen[name] = layer
        used.add(id(layer))
    return chosen


def collect_inputs(spec: OperatorSpec, values: Mapping[str, Any], *, copy_editable: bool = True) -> dict:
    """The operator's inputs from the values a front-end gathered, checked and snapshotted.

    Parameters
    ----------
    spec : OperatorSpec
        The operator.
    values : mapping
        Input name -> value (an array for ``image``, ``image2``, ``markers`` and ``mask``;
        ``(x, y, w, h)`` for ``rect``; ``(row, col, label)`` triples for ``points``); None
        or absent when not chosen. Names the operator does not take are ignored.
    copy_editable : bool
        Copy scribbles and masks (the person may keep drawing). False leaves them to a
        :class:`RunSession` made with ``copy_in_worker=True``, which lends them
        (:func:`~maskwork.core.layers.lend_arrays`) until its worker has copied them.

    Returns
    -------
    dict
        The inputs to run with: scribbles and masks copied unless ``copy_editable`` is
        False, an empty scribble layer or an empty list of points left out.

    Raises
    ------
    InputError
        When a required input is missing (sizes and types are the operator's to check:
        its message names what is wrong in its own terms).
    """
    inputs: dict = {}
    for name in spec.inputs:
        value = values.get(name)
        if value is None:
            continue
        if name in EDITABLE_INPUTS:
            value = np.asarray(value)
            if name == "markers" and not value.any():
                continue  # an empty scribble layer is no scribbles
            if copy_editable:
                value = value.copy()
        elif name == "points":
            value = [tuple(point) for point in value]
            if not value:
                continue
        inputs[name] = value
    missing = [name for name in spec.required_inputs if name not in inputs]
    if missing:
        raise InputError(f"{spec.title} needs {' and '.join(MISSING_INPUT_WORDS.get(name, name) for name in missing)} "
                         "first")
    return inputs


# ----------------------------------------------------------------------------- results


class FaultyResult(Exception):
    """An operator returned something that does not match what it declared (a bug)."""


def check_result(spec: OperatorSpec, result: Any, inputs: Mapping[str, Any]) -> Result:
    """Refuse a result that does not match the operator's declaration.

    Parameters
    ----------
    spec : OperatorSpec
        The operator and its declared outputs.
    result : Result
        What it returned.
    inputs : mapping
        What it ran on; spatial outputs must have the size of ``image`` (or of ``mask`` or
        ``markers`` for operators without an image).

    Returns
    -------
    Result
        ``result``, unchanged.

    Raises
    ------
    FaultyResult
        When ``result`` is not a :class:`Result`, lacks the main output, holds an output
        that was not declared, or a spatial output of another size than the image or of
        values that are not real numbers, or non-finite probabilities.
    """
    if not isinstance(result, Result):
        raise FaultyResult(f"{spec.title} returned {type(result).__name__}, not a Result")
    outputs = result.outputs
    undeclared = sorted(set(outputs) - set(spec.outputs))
    if undeclared:
        raise FaultyResult(f"{spec.title} returned undeclared output(s): {', '.join(undeclared)}")
    if spec.outputs[0] not in outputs:
        raise FaultyResult(f"{spec.title} returned no {spec.outputs[0]}")
    reference = next((inputs[name] for name in ("image", "mask", "markers") if inputs.get(name) is not None), None)
    shape = np.shape(reference)[:2] if reference is not None else None
    for kind in ("mask", "labels", "probabilities", "image"):
        if kind not in outputs:
            continue
        value = np.asarray(outputs[kind])
        dimensions = {"mask": (2,), "labels": (2,), "probabilities": (2, 3), "image": (2, 3)}[kind]
        if value.ndim not in dimensions:
            raise FaultyResult(f"{spec.title} returned a {kind} with {value.ndim} dimensions")
        if value.dtype.kind not in "biuf":  # objects, text or complex numbers are no pixels
            raise FaultyResult(f"{spec.title} returned a {kind} of {value.dtype} values")
        if shape is not None and value.shape[:2] != shape:
            raise FaultyResult(
                f"{spec.title} returned a {kind} of {value.shape[1]}x{value.shape[0]} for an image of {shape[1]}x{shape[0]}"
            )
        if kind == "probabilities" and not np.isfinite(value).all():
            raise FaultyResult(f"{spec.title} returned non-finite probabilities")
    return result


@dataclass
class PreviewData:
    """What a preview layer shows of a (partial) result.

    Attributes
    ----------
    kind : str
        ``"mask"`` (uint8 0/1, drawn as a tint), ``"labels"`` or ``"image"``.
    data : numpy.ndarray
        The pixels, at the image's size.
    bounds : tuple of slice or None
        The only box that changed since the previous partial, when the operator says so.
    result : Result
        The result it shows (its scores and iterations).
    """

    kind: str
    data: np.ndarray
    bounds: tuple[slice, slice] | None
    result: Result


def preview_of(result: Any, spec: OperatorSpec, shape: tuple[int, int] | None) -> PreviewData | None:
    """The :class:`PreviewData` of a result or partial, or None when it has nothing to show.

    A bare array counts as the operator's main output. A partial computed on a reduced
    copy (a CNN's first epochs) is stretched to ``shape`` so it lands where the final
    result will.
    """
    if not isinstance(result, Result):
        result = Result({spec.outputs[0]: result})
    outputs = result.outputs
    kind = next((k for k in ("mask", "labels", "image") if k in outputs), None)
    if kind is None:
        return None
    data = np.asarray(outputs[kind])
    bounds = result.bounds
    if kind == "mask":
        # A bool mask is viewed, not copied, as uint8: 12 MP previews arrive every iteration.
        data = data.view(np.uint8) if data.dtype == bool else (data != 0).astype(np.uint8)
    elif kind == "labels":
        data = compact_labels(data)
    if shape is not None and data.shape[:2] != tuple(shape) and data.ndim in (2, 3):
        data, bounds = resize_to(data, tuple(shape), smooth=kind == "image"), None
    return PreviewData(kind, data, bounds, result)


def compact_labels(labels: np.ndarray) -> np.ndarray:
    """``labels`` as uint16 when its values fit (the labels layers' type), else unchanged.

    Done in the worker: converting a 12 MP int32 label image takes the main thread 7 ms
    idle and over 50 ms while torch trains beside it; a uint8 one (the scribble CNN's)
    6 ms, and 65 ms when the new array's memory is first touched.
    """
    if labels.dtype == np.uint16 or labels.dtype.kind not in "iu" or labels.size == 0:
        return labels
    if labels.dtype != np.uint8 and (labels.min() < 0 or labels.max() > np.iinfo(np.uint16).max):
        return labels
    return labels.astype(np.uint16)


@dataclass
class OutputLayer:
    """One layer an applied result adds.

    Attributes
    ----------
    name : str
        ``"<operator title> <output>"``; ``"<title> P(class k)"`` for probability planes.
    data : numpy.ndarray
        The pixels: a mask as uint8 0/1, labels, an image or one probability plane.
    kind : str
        ``"mask"``, ``"labels"`` or ``"image"`` (probability planes are images).
    output : str
        The output kind it shows (``"probabilities"`` for a probability plane).
    class_id : int or None
        The label value a probability plane scores.
    transform : object or None
        The transform of a registration, kept with every layer it made.
    digest : str
        :func:`~maskwork.core.pixels.pixel_digest` of ``data``, made in the worker for an Apply: the window's
        recipe recorder notices later hand edits by it without hashing on the main thread.
    """

    name: str
    data: np.ndarray
    kind: str
    output: str
    class_id: int | None = None
    transform: Any = None
    digest: str = ""


def probability_class_ids(count: int, class_ids: Sequence[int] | None, markers: np.ndarray | None) -> list[int]:
    """The label value each of ``count`` probability planes scores.

    The result's own ``class_ids`` when they fit, else the classes the scribbles use (in
    increasing order), else 1..count like scribble classes.
    """
    if class_ids is not None and len(class_ids) == count:
        return [int(value) for value in class_ids]
    if markers is not None:
        present = np.unique(np.asarray(markers))
        present = present[present > 0]
        if len(present) == count:
            return [int(value) for value in present]
    return list(range(1, count + 1))


def result_layers(spec: OperatorSpec, result: Result, inputs: Mapping[str, Any]) -> list[OutputLayer]:
    """The layers an applied result adds, in the order of the declared outputs.

    A transform without a warped image of its own warps ``image2`` onto the image, so a
    registration always shows its effect.
    """
    from maskwork.operators.registration.transform import warp_layer  # SimpleITK-free, but only registrations need it

    outputs = result.outputs
    transform = outputs.get("transform")
    layers: list[OutputLayer] = []
    for output in spec.outputs:
        if output not in outputs:
            continue
        value = outputs[output]
        title = f"{spec.title} {output}"
        if output == "mask":
            layers.append(OutputLayer(title, (np.asarray(value) != 0).astype(np.uint8), "mask", output, transform=transform))
        elif output == "labels":
            layers.append(OutputLayer(title, compact_labels(np.asarray(value)), output, output, transform=transform))
        elif output == "image":
            layers.append(OutputLayer(title, np.asarray(value), output, output, transform=transform))
        elif output == "probabilities":
            planes = np.asarray(value, np.float32)
            planes = planes[..., None] if planes.ndim == 2 else planes
            ids = probability_class_ids(planes.shape[2], result.class_ids, inputs.get("markers"))
            for index, class_id in enumerate(ids):
                layers.append(OutputLayer(f"{spec.title} P(class {class_id})", planes[..., index], "image", output,
                                          class_id=class_id, transform=transform))
        elif output == "transform" and "image" not in outputs and inputs.get("image2") is not None:
            warped = warp_layer(np.asarray(inputs["image2"]), value, "image")
            layers.append(OutputLayer(f"{spec.title} image", warped, "image", "image", transform=transform))
    return layers


# ----------------------------------------------------------------------------- running


@dataclass
class RunOutcome:
    """How one run ended.

    Attributes
    ----------
    status : str
        :data:`DONE`, :data:`CANCELLED`, :data:`INPUT_ERROR` (the inputs or parameters are
        unusable: a message for the person), :data:`FAILED` (an operator bug or a faulty
        result: message and traceback) or :data:`MEMORY` (not started: it would need more
        memory than its device has free).
    result : Result or None
        The checked result, when done.
    message : str
        One line for the person.
    details : str
        The traceback of a failure.
    error : BaseException or None
        The exception of a failure, its traceback attached (for a front-end's own report),
        or the InputError of unusable inputs (its kind: :class:`NoObjectYet`, say).
    seconds : float
        The operator's own compute time.
    layers : list of OutputLayer
        The layers an Apply adds (made in the worker thread).
    preview : PreviewData or None
        What a preview shows (made in the worker thread).
    packed_output : tuple or None
        For an operator that refines its previous result (``previous_result_input``):
        its main 2-D output as ``(np.packbits(output != 0), shape)``, made in the worker
        thread for the front-end to keep for the next click (packing 12 MP took its
        thread 1.5-3 ms).
    """

    status: str
    result: Result | None = None
    message: str = ""
    details: str = ""
    error: BaseException | None = None
    seconds: float = 0.0
    layers: list[OutputLayer] = field(default_factory=list)
    preview: PreviewData | None = None
    packed_output: tuple[np.ndarray, tuple[int, int]] | None = None

    @property
    def is_input_error(self) -> bool:
        """Whether the run ended on unusable inputs (a message, not a bug)."""
        return self.status in (INPUT_ERROR, MEMORY)


class RunSession:
    """One run of one operator on inputs already gathered.

    Parameters
    ----------
    spec : OperatorSpec
        The operator.
    inputs : dict
        Input name -> value, as :func:`collect_inputs` returns them.
    params : dict
        Parameter name -> value; checked here against the declared types and ranges.
    purpose : str
        ``"preview"`` (the outcome carries :attr:`RunOutcome.preview`) or ``"apply"`` (it
        carries :attr:`RunOutcome.layers`).
    sources : dict, optional
        Input name -> the front-end object it came from (a layer), for the recipe.
    copy_in_worker : bool
        ``inputs`` holds the layers' own scribble and mask arrays (:func:`collect_inputs`
        with ``copy_editable=False``): they are lent (:func:`~maskwork.core.layers.lend_arrays`,
        so painting meanwhile writes into a copy) until :meth:`execute` has copied them in
        the worker. Copying 12 MP of scribbles cost the window's thread 3-9 ms at the start
        of every run.

    Raises
    ------
    InputError
        When a parameter value is unusable.
    """

    def __init__(self, spec: OperatorSpec, inputs: dict, params: dict, purpose: str = "apply",
                 sources: dict | None = None, copy_in_worker: bool = False) -> None:
        for name, value in params.items():
            spec.param(name).coerce(value)
        self.spec = spec
        self.inputs = inputs
        self.params = dict(params)
        self.purpose = purpose
        self.sources = dict(sources or {})
        self.cancel_event = threading.Event()
        self._lock = threading.Lock()
        self._latest: PreviewData | None = None
        image = inputs.get("image")
        self._shape = np.shape(image)[:2] if image is not None else None
        # Lent last, once nothing above can raise: execute() gives them back.
        self._give_back_lent = (
            lend_arrays(inputs[name] for name in EDITABLE_INPUTS if name in inputs) if copy_in_worker else None
        )

    # -- control (any thread) ---------------------------------------------------------
    def cancel(self) -> None:
        """Ask the operator to stop at its next checkpoint."""
        self.cancel_event.set()

    @property
    def cancelled(self) -> bool:
        """Whether cancellation was requested."""
        return self.cancel_event.is_set()

    def take_partial(self) -> PreviewData | None:
        """The newest partial result not taken yet, or None (main thread)."""
        with self._lock:
            latest, self._latest = self._latest, None
        return latest

    # -- the run (worker thread) ------------------------------------------------------
    def run(self, ctx: RunContext | None = None) -> Result:
        """Run the operator and check its result, letting exceptions through.

        For callers that report errors themselves (the command line, a recipe's steps);
        a front-end with a worker calls :meth:`execute`.

        Raises
        ------
        InputError
            The inputs or parameters are unusable.
        Cancelled
            ``ctx`` was cancelled.
        FaultyResult
            The result does not match the operator's declaration.
        """
        return check_result(self.spec, self.spec.run(self.inputs, self.params, ctx), self.inputs)

    def execute(
        self,
        on_progress: Callable[[float, str], None] | None = None,
        on_partial_ready: Callable[[], None] | None = None,
        check_memory: bool = False,
    ) -> RunOutcome:
        """Run the operator; every ending becomes a :class:`RunOutcome`.

        Parameters
        ----------
        on_progress : callable, optional
            ``on_progress(fraction, message)``, called from this thread.
        on_partial_ready : callable, optional
            Called from this thread when a partial result is waiting in an empty slot;
            :meth:`take_partial` then returns the newest one. Without it no partial results
            are made.
        check_memory : bool
            For operators that estimate their memory: compare the estimate with what the
            device has free, and end with :data:`MEMORY` instead of running short.
        """
        if on_partial_ready is not None:
            def offer(partial) -> None:
                preview = preview_of(partial, self.spec, self._shape)
                if preview is None:
                    return
                with self._lock:
                    was_empty, self._latest = self._latest is None, preview
                if was_empty:
                    on_partial_ready()
        else:
            offer = None
        ctx = RunContext(on_progress=on_progress, on_partial=offer, cancel_event=self.cancel_event)
        start = time.perf_counter()
        try:
            self._copy_lent_inputs()
            shortage = self._memory_shortage() if check_memory else None
            if shortage:
                return RunOutcome(MEMORY, message=shortage)
            # The first run of an operator on torch or SimpleITK imports it in this worker;
            # opening their libraries first, without the GIL, keeps the front-end responsive.
            load_native_libraries(self.spec.requires)
            result = self.run(ctx)
            ctx.check()
            outcome = self.outcome_of(result)
        except Cancelled:
            return RunOutcome(CANCELLED, message="Cancelled", seconds=time.perf_counter() - start)
        except InputError as error:
            return RunOutcome(INPUT_ERROR, message=str(error), error=error, seconds=time.perf_counter() - start)
        except BaseException as error:  # an operator bug must become a message, never a dead window
            if isinstance(error, KeyboardInterrupt) and threading.current_thread() is threading.main_thread():
                raise  # Ctrl+C during an inline run stops the program; in a worker it can only be a bug
            # SystemExit too: escaping a worker thread it would leave the run unfinished for ever.
            return RunOutcome(FAILED, message=f"{type(error).__name__}: {error}", details=traceback.format_exc(),
                              error=error, seconds=time.perf_counter() - start)
        outcome.seconds = time.perf_counter() - start
        return outcome

    def _copy_lent_inputs(self) -> None:
        """Replace lent scribbles and masks by copies, then give them back (once)."""
        give_back, self._give_back_lent = self._give_back_lent, None
        if give_back is None:
            return
        try:
            for name in EDITABLE_INPUTS:
                if name in self.inputs:
                    self.inputs[name] = self.inputs[name].copy()
        finally:
            give_back()

    def outcome_of(self, result: Result) -> RunOutcome:
        """The :data:`DONE` outcome of ``result`` for this session's purpose (worker thread).

        :meth:`execute` makes it of the result it computed. A front-end calls it directly
        for an Apply of the result its finished preview showed, for the same inputs and
        parameters: what the person saw is what is applied, and an operator that keeps
        state between runs (a CNN that trains on) is not run again.
        """
        if self.purpose == "preview":
            outcome = RunOutcome(DONE, result, preview=preview_of(result, self.spec, self._shape))
        else:
            layers = result_layers(self.spec, result, self.inputs)
            for layer in layers:
                layer.digest = pixel_digest(layer.data)
            outcome = RunOutcome(DONE, result, layers=layers)
        if self.spec.previous_result_input is not None:
            main = result.outputs.get(self.spec.outputs[0])
            if main is not None and np.ndim(main) == 2:
                outcome.packed_output = (np.packbits(np.asarray(main) != 0), np.shape(main))
        return outcome

    def _memory_shortage(self) -> str | None:
        """A warning when the run's estimated memory exceeds what its device has free."""
        if self.spec.memory_estimate is None:
            return None
        # Imported here: resolving the device imports torch, which only these operators need.
        from maskwork.operators.dl.device import memory_shortfall

        params = {**self.spec.defaults(), **self.params}
        return memory_shortfall(self.spec.estimate_memory(self.inputs, self.params), params)

    # -- records ----------------------------------------------------------------------
    def parameter_values(self) -> dict:
        """Every parameter's value, defaults filled in and strings converted."""
        spec = self.spec
        return {**spec.defaults(), **{name: spec.param(name).coerce(value) for name, value in self.params.items()}}

    def recipe(self, paths: dict | None = None):
        """The one-step :class:`~maskwork.pipeline.recipe.Recipe` of this run.

        Parameters
        ----------
        paths : dict, optional
            Input name -> the file an array input was read from, which the recipe refers to.
        """
        from maskwork.pipeline.replay import recipe_from_run  # replay runs its steps through sessions

        return recipe_from_run(self.spec.id, self.params, self.inputs, paths)
