"""Project files: a whole editing session in one ``.maskwork`` file.

A project is a zip archive::

    manifest.json        what the project holds (below), with the format's name and version
    arrays/<key>.npy     every array in numpy's .npy format, at its own dtype and shape

The manifest (JSON)::

    {
      "format": "maskwork-project", "version": 1, "maskwork_version": "0.1.0",
      "source": "/photos/cat.png",            # the image the session started from, or null
      "saved_as": "/work/cat.maskwork",       # the project file the session was saved to
                                              # last (autosaves keep it), or null
      "layers": [                             # bottom first
        {"name": "cat.png", "kind": "image", "visible": true, "opacity": 1.0, "blend": "normal",
         "colormap": "gray", "contrast_limits": [0.0, 255.0], "metadata": {...},
         "data": "layer0"}, ...
      ],
      "selected": 1,                          # index of the active layer, or null
      "rect": [x, y, width, height],          # the box prompt, or null
      "points": [[row, col, label], ...],     # point prompts (1 positive, 0 negative) and
                                              # landmark pairs (+k fixed, -k moving)
      "operator": {"id": "grabcut", "parameters": {...}},   # the chosen operator, or null
      "recording": [...],                     # the applied steps a recipe is made of
      "history": {
        "applied": [{"name": "Brush stroke", "atoms": [...]}, ...],   # oldest first
        "undone": [...],                      # the next step to redo last
        "detached": [layer, ...],             # layers only the history holds
        "dropped": 3,                         # steps left out to stay under the limit
        "limit_bytes": 268435456
      }
    }

A ``"data"`` or ``"old"`` value names an array (``arrays/<name>.npy``). Atoms and the
recording refer to a layer by its place: the document's layers first, then the detached
ones. Contrast limits are stored for image layers only (the other kinds draw through
colour tables). The recording is written by :func:`encode_value`: a ``{"$layer": place}``
object stands for a layer, ``{"$array": name}`` for an array, ``{"$tuple": [...]}`` for
a tuple, and ``{"$layer": null}`` for a layer the project does not hold.

Undo history: the undo steps nearest to the current state are kept first, then the redo
steps nearest to it, as long as the history's arrays (old pixels, deleted layers) fit in
:data:`HISTORY_LIMIT_BYTES`; older steps are dropped. Image layers' pixels are stored
uncompressed (photos barely deflate and the deflate would cost seconds on 12 MP); labels,
markers, masks and history patches are deflated.

A project is captured on the thread that owns the document (:func:`capture`, which copies
the arrays that can still change in place) and written anywhere (:func:`write_project`,
atomically: a temporary file in the same folder, then a rename). :func:`read_project`
reads one and :func:`restore` puts it into a document.
"""

from __future__ import annotations

import itertools
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

import maskwork
from maskwork.core.document import Document
from maskwork.core.history import (
    AttributeAtom,
    InsertAtom,
    MoveAtom,
    PixelAtom,
    PropertyAtom,
    RemoveAtom,
    ReplaceDataAtom,
    Step,
)
from maskwork.core.io.files import temporary_sibling, unwritable
from maskwork.core.layers import Layer, LayerKind, lend_arrays

FORMAT_NAME = "maskwork-project"
#: The version this module writes; it reads this one and older ones.
FORMAT_VERSION = 1
PROJECT_SUFFIX = ".maskwork"
MANIFEST_NAME = "manifest.json"
ARRAY_FOLDER = "arrays/"
#: Bytes of undo history a project keeps (old pixels and layers only the history holds).
HISTORY_LIMIT_BYTES = 256 * 2**20
#: Kinds whose pixels paint tools overwrite in place (the canvas paints only these):
#: :func:`capture` lends their arrays (:func:`~maskwork.core.layers.lend_arrays`), so the
#: document goes on changing into copies while a writer stores the project. Other arrays
#: are only ever replaced, never written into.
IN_PLACE_KINDS = (LayerKind.LABELS, LayerKind.MARKERS, LayerKind.MASK)
#: The fraction of the work done between two progress reports.
PROGRESS_STEP = 0.01
#: Bytes of an array written at once (progress is reported between them).
WRITE_CHUNK_BYTES = 1 << 20

Progress = Callable[[float], None]


class ProjectError(ValueError):
    """A file that is not a maskwork project, is damaged, or was written by a newer maskwork."""


@dataclass
class Project:
    """A project in memory: the manifest and the arrays it names.

    Attributes
    ----------
    manifest : dict
        The JSON described in this module's docstring.
    arrays : dict
        Array name -> array.
    give_back : callable
        Ends the loan of the captured arrays that paint tools may write into (see
        :func:`capture`); call it once the project is written.
    """

    manifest: dict
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    give_back: Callable[[], None] = lambda: None

    @property
    def nbytes(self) -> int:
        """Bytes of all arrays (about the size of the file before compression)."""
        return sum(int(array.nbytes) for array in self.arrays.values())


@dataclass
class RestoredProject:
    """What a restored project holds besides the document's layers, prompts and history.

    Attributes
    ----------
    source : str or None
        The image file the session started from.
    saved_as : str or None
        The project file the session was last saved to (an autosave remembers it).
    operator : str or None
        Registry id of the chosen operator.
    parameters : dict
        Its parameters.
    recording : list
        The recording given to :func:`capture`, with layers and arrays back in place
        (a layer the project did not hold comes back as None).
    dropped_steps : int
        Undo steps that were left out to stay under the history limit.
    """

    source: str | None
    saved_as: str | None
    operator: str | None
    parameters: dict
    recording: list
    dropped_steps: int


def is_project_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is named as a project (its suffix is :data:`PROJECT_SUFFIX`)."""
    return Path(path).suffix.lower() == PROJECT_SUFFIX


# -- capturing a document --------------------------------------------------------------
class _ArrayStore:
    """Names arrays for the archive, each array object once, and counts their bytes."""

    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}
        self.lent: set[str] = set()
        #: Bytes of the arrays, kept as they come and go: the history's budget is checked
        #: after every step, and summing thousands of brush patches each time cost
        #: the autosave's capture on the UI thread a third of its time.
        self.nbytes = 0
        self._names: dict[int, str] = {}
        self._numbers = itertools.count()

    def add(self, array: np.ndarray, lend: bool = False) -> str:
        """The name of ``array`` in the archive, adding it if new; with ``lend`` it is one
        paint tools may write into, to be lent (:func:`~maskwork.core.layers.lend_arrays`)."""
        key = id(array)
        name = self._names.get(key)
        if name is None:
            name = self._names[key] = f"array{next(self._numbers)}"
            self.arrays[name] = array
            self.nbytes += int(array.nbytes)
        if lend:
            self.lent.add(name)
        return name

    def checkpoint(self) -> tuple[int, int]:
        """What :meth:`rollback` returns to."""
        return len(self.arrays), len(self._names)

    def rollback(self, point: tuple[int, int]) -> None:
        """Forget the arrays added since ``point`` (a history step that did not fit)."""
        for name in list(self.arrays)[point[0]:]:
            self.nbytes -= int(self.arrays.pop(name).nbytes)
            self.lent.discard(name)
        for key in list(self._names)[point[1]:]:
            del self._names[key]


def capture(
    document: Document,
    *,
    source: str | None = None,
    saved_as: str | None = None,
    operator: str | None = None,
    parameters: dict | None = None,
    recording: list | None = None,
    history_limit: int = HISTORY_LIMIT_BYTES,
) -> Project:
    """Take the document, its prompts, history and the given extras as a :class:`Project`.

    Runs on the thread that owns the document (it is not locked); the result is safe to
    write from another thread while the document goes on changing: arrays paint tools
    write into are lent, not copied, and a layer painted meanwhile writes into a copy.
    Call :attr:`Project.give_back` once the project is written.

    Parameters
    ----------
    document : Document
        Layers, prompts and undo history.
    source : str, optional
        The image file the session started from.
    saved_as : str, optional
        The project file the session was last saved to.
    operator, parameters : optional
        The chosen operator's registry id and its parameters.
    recording : list, optional
        JSON-like values (dicts, lists, tuples, numbers, strings) in which layers and
        arrays may appear (the window's recorded Applies); see :func:`encode_value`.
    history_limit : int
        Bytes of history arrays to keep at most (:data:`HISTORY_LIMIT_BYTES`).
    """
    store = _ArrayStore()
    layers = list(document.layers)
    places = {id(layer): index for index, layer in enumerate(layers)}
    layer_infos = [_layer_info(layer, store) for layer in layers]
    history = _history_record(document, layers, places, store, history_limit)
    selected = document.layers.selected
    manifest = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "maskwork_version": maskwork.__version__,
        "source": source,
        "saved_as": saved_as,
        "layers": layer_infos,
        "selected": document.layers.index(selected) if selected is not None else None,
        "rect": list(document.rect) if document.rect else None,
        "points": [list(point) for point in document.points],
        "operator": {"id": operator, "parameters": _jsonable(parameters or {})} if operator else None,
        "recording": encode_value(recording or [], lambda layer: places.get(id(layer)), store.add),
        "history": history,
    }
    return Project(manifest, store.arrays, lend_arrays(store.arrays[name] for name in store.lent))


def encode_value(value: Any, place: Callable[[Layer], int | None], store: Callable[[np.ndarray], str]) -> Any:
    """``value`` as JSON: layers by their place, arrays by the name ``store`` gives them.

    Numbers of numpy types become Python numbers; anything else JSON cannot hold becomes
    its text.
    """
    if isinstance(value, Layer):
        return {"$layer": place(value)}
    if isinstance(value, np.ndarray):
        return {"$array": store(value)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(key): encode_value(item, place, store) for key, item in value.items()}
    if isinstance(value, tuple):
        return {"$tuple": [encode_value(item, place, store) for item in value]}
    if isinstance(value, list):
        return [encode_value(item, place, store) for item in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def decode_value(value: Any, layers: list[Layer], arrays: dict[str, np.ndarray]) -> Any:
    """The value :func:`encode_value` encoded, with ``layers`` (by place) and ``arrays``."""
    if isinstance(value, dict):
        if "$layer" in value:
            return layers[value["$layer"]] if value["$layer"] is not None else None
        if "$array" in value:
            return _array(arrays, value["$array"])
        if "$tuple" in value:
            return tuple(decode_value(item, layers, arrays) for item in value["$tuple"])
        return {key: decode_value(item, layers, arrays) for key, item in value.items()}
    if isinstance(value, list):
        return [decode_value(item, layers, arrays) for item in value]
    return value


def _layer_info(layer: Layer, store: _ArrayStore) -> dict:
    """A layer's kind, name and display properties as JSON, its pixels added to ``store``."""
    return {
        "name": layer.name,
        "kind": layer.kind.value,
        "visible": layer.visible,
        "opacity": layer.opacity,
        "blend": layer.blend,
        "colormap": layer.colormap,
        "contrast_limits": list(layer.contrast_limits) if layer.kind is LayerKind.IMAGE else None,
        "metadata": _jsonable(layer.metadata),
        "data": store.add(layer.data, lend=layer.kind in IN_PLACE_KINDS),
    }


def _history_record(document: Document, layers: list[Layer], places: dict[int, int], store: _ArrayStore,
                    limit: int) -> dict:
    """The undo and redo steps that fit ``limit`` as JSON, their arrays added to ``store``.

    Layers only the history holds (deleted ones, added ones undone) get the places after
    the document's layers, in the order the kept steps first name them.
    """
    detached: list[Layer] = []
    budget = store.nbytes + limit

    def place(layer: Layer) -> int:
        if id(layer) not in places:
            places[id(layer)] = len(layers) + len(detached)
            detached.append(layer)
        return places[id(layer)]

    def fits(step: Step) -> dict | None:
        """The record of ``step`` if its arrays fit the budget, else None (nothing kept)."""
        point, known = store.checkpoint(), len(detached)
        record = {"name": step.name, "atoms": []}
        for atom in step.atoms:
            atom_record = _atom_record(atom, document, place, store)
            if atom_record is None:
                record = None
                break
            record["atoms"].append(atom_record)
        for layer in detached[known:]:
            store.add(layer.data, lend=layer.kind in IN_PLACE_KINDS)
        if record is None or store.nbytes > budget:
            store.rollback(point)
            for layer in detached[known:]:
                del places[id(layer)]
            del detached[known:]
            return None
        return record

    applied, undone = document.history.steps
    kept_applied: list[dict] = []
    for step in reversed(applied):  # the step undone next is kept first
        record = fits(step)
        if record is None:
            break
        kept_applied.insert(0, record)
    kept_undone: list[dict] = []
    if len(kept_applied) == len(applied):
        for step in reversed(undone):  # the step redone next is kept first
            record = fits(step)
            if record is None:
                break
            kept_undone.insert(0, record)
    return {
        "applied": kept_applied,
        "undone": kept_undone,
        "detached": [_layer_info(layer, store) for layer in detached],
        "dropped": len(applied) + len(undone) - len(kept_applied) - len(kept_undone),
        "limit_bytes": limit,
    }


def _atom_record(atom, document: Document, place: Callable[[Layer], int], store: _ArrayStore) -> dict | None:
    """One atom as JSON (its arrays through ``store``), or None for a kind not known here."""
    if isinstance(atom, PixelAtom):
        # A patch's old values are never written into: undo copies them into the layer.
        return {"atom": "pixels", "layer": place(atom.layer), "bounds": atom.bounds_json, "old": store.add(atom.old)}
    if isinstance(atom, ReplaceDataAtom):
        # Undo makes this array the layer's own, which paint tools may then write into.
        old = store.add(atom.old, lend=atom.layer.kind in IN_PLACE_KINDS)
        return {"atom": "data", "layer": place(atom.layer), "old": old}
    if isinstance(atom, PropertyAtom):
        old = list(atom.old) if isinstance(atom.old, tuple) else atom.old
        return {"atom": "property", "layer": place(atom.layer), "attr": atom.attr, "old": old}
    if isinstance(atom, AttributeAtom) and atom.target is document:
        return {"atom": "seeds", "attr": atom.attr, "old": _lists(atom.old)}
    if isinstance(atom, (InsertAtom, RemoveAtom)):
        kind = "insert" if isinstance(atom, InsertAtom) else "remove"
        return {"atom": kind, "index": atom.index, "layer": place(atom.layer)}
    if isinstance(atom, MoveAtom):
        return {"atom": "move", "source": atom.source, "destination": atom.destination}
    return None


# -- writing and reading -----------------------------------------------------------------
class _CountingWriter:
    """Passes writes on to ``target`` and reports the fraction of ``total`` bytes written."""

    def __init__(self, target, done: list[int], total: int, progress: Progress | None) -> None:
        self._target, self._done, self._total, self._progress = target, done, max(total, 1), progress
        self._reported = done[0] / self._total

    def write(self, data) -> int:
        written = self._target.write(data)
        self._done[0] += len(memoryview(data).cast("B"))
        fraction = self._done[0] / self._total
        if self._progress is not None and fraction - self._reported >= PROGRESS_STEP:
            self._reported = fraction
            self._progress(min(fraction, 1.0))
        return written


def stale_temporary_files(path: Path) -> list[Path]:
    """Temporary files that saves to ``path`` left behind (a crash cut them short)."""
    return sorted(path.parent.glob(f".{path.name}.*.tmp"))


def write_project(project: Project, path: str | os.PathLike, progress: Progress | None = None) -> Path:
    """Write ``project`` to ``path`` atomically: a temporary file beside it, then a rename.

    The file gets the permissions of the person's umask, as any file they create.

    Parameters
    ----------
    project : Project
        What :func:`capture` took.
    path : path
        The project file (``.maskwork``); replaced if it exists.
    progress : callable, optional
        Called with the fraction written (0..1) now and then.

    Raises
    ------
    OSError
        When the file cannot be written (a full disk, a read-only folder), said in words
        that name ``path``, never the temporary file; that is removed and an existing
        file at ``path`` is left as it was.
    """
    path = Path(path)
    temporary = temporary_sibling(path)
    try:
        handle = os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb")
    except OSError as error:
        raise unwritable(path, error) from error
    done = [0]
    try:
        with handle:
            with zipfile.ZipFile(handle, "w", allowZip64=True, compresslevel=1) as archive:
                manifest = json.dumps(project.manifest, indent=1)
                archive.writestr(MANIFEST_NAME, manifest, compress_type=zipfile.ZIP_DEFLATED)
                total, photos = project.nbytes, _photo_arrays(project.manifest)
                for name, array in project.arrays.items():
                    # Deflate's fastest level: labels, masks and patches shrink 20-100x already.
                    archive.compression = zipfile.ZIP_STORED if name in photos else zipfile.ZIP_DEFLATED
                    large = array.nbytes + 4096 > zipfile.ZIP64_LIMIT
                    with archive.open(f"{ARRAY_FOLDER}{name}.npy", "w", force_zip64=large) as entry:
                        _write_npy(_CountingWriter(entry, done, total, progress), array)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise unwritable(path, error) from error
        raise
    return path


def _write_npy(handle: _CountingWriter, array: np.ndarray) -> None:
    """``array`` in numpy's .npy format, its pixels in slices of :data:`WRITE_CHUNK_BYTES`
    so that progress moves while a large layer is written."""
    header = np.lib.format.header_data_from_array_1_0(array)
    np.lib.format.write_array_header_1_0(handle, header)
    ordered = array.T if header["fortran_order"] else np.ascontiguousarray(array)
    raw = ordered.reshape(-1).view(np.uint8)
    for start in range(0, raw.size, WRITE_CHUNK_BYTES):
        handle.write(raw[start:start + WRITE_CHUNK_BYTES])


def _photo_arrays(manifest: dict) -> set[str]:
    """Names of the arrays that hold image layers' pixels (stored without compression)."""
    infos = manifest["layers"] + (manifest.get("history") or {}).get("detached", [])
    return {info["data"] for info in infos if info["kind"] == LayerKind.IMAGE.value}


class _CountingReader:
    """Passes reads on to ``source`` and reports the fraction of ``total`` bytes read."""

    def __init__(self, source, done: list[int], total: int, progress: Progress | None) -> None:
        self._source, self._done, self._total, self._progress = source, done, max(total, 1), progress
        self._reported = done[0] / self._total

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        self._done[0] += len(data)
        fraction = self._done[0] / self._total
        if self._progress is not None and fraction - self._reported >= PROGRESS_STEP:
            self._reported = fraction
            self._progress(min(fraction, 1.0))
        return data


def read_project(path: str | os.PathLike, progress: Progress | None = None) -> Project:
    """Read the project file at ``path``.

    Raises
    ------
    ProjectError
        When the file is not a project, is damaged, or comes from a newer maskwork.
    OSError
        When it cannot be read at all.
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            try:
                manifest = json.loads(archive.read(MANIFEST_NAME).decode("utf-8"))
            except KeyError:
                raise ProjectError(f"{path.name} is not a maskwork project (it has no {MANIFEST_NAME})") from None
            if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
                raise ProjectError(f"{path.name} is not a maskwork project")
            version = manifest.get("version")
            if not isinstance(version, int) or isinstance(version, bool) or version < 1:
                raise ProjectError(f"{path.name} is damaged: its project format version is {version!r}, "
                                   "not a whole number from 1")
            if version > FORMAT_VERSION:
                raise ProjectError(f"{path.name} was saved by a newer maskwork (project format {version}; "
                                   f"this one reads up to {FORMAT_VERSION})")
            entries = [info for info in archive.infolist()
                       if info.filename.startswith(ARRAY_FOLDER) and info.filename.endswith(".npy")]
            total, done, arrays = sum(info.file_size for info in entries), [0], {}
            for info in entries:
                with archive.open(info) as entry:
                    name = info.filename[len(ARRAY_FOLDER):-len(".npy")]
                    arrays[name] = np.lib.format.read_array(_CountingReader(entry, done, total, progress),
                                                            allow_pickle=False)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ProjectError(f"{path.name} is damaged: {error}") from error
    except ValueError as error:
        if isinstance(error, ProjectError):
            raise
        raise ProjectError(f"{path.name} is damaged: {error}") from error
    return Project(manifest, arrays)


# -- restoring a document ----------------------------------------------------------------
def restore(project: Project, document: Document) -> RestoredProject:
    """Replace ``document``'s layers, prompts and history by the project's.

    Everything is checked before the document is touched: a damaged project leaves it as
    it was. The restored state is the history's saved point (not modified).

    Raises
    ------
    ProjectError
        When the manifest names arrays or layers the project does not hold.
    """
    return prepared_restore(project, document)()


def prepared_restore(project: Project, document: Document) -> Callable[[], RestoredProject]:
    """Check ``project`` against ``document`` and return what replaces the document's
    layers, prompts and history by the project's (:func:`restore` in two halves: a window
    lets its old document go only once the new one is known to open).

    Raises
    ------
    ProjectError
        When the manifest names arrays or layers the project does not hold.
    """
    manifest, arrays = project.manifest, project.arrays
    try:
        layers = [_layer(info, arrays) for info in manifest["layers"]]
        history = manifest.get("history")
        if history is not None:
            layers += [_layer(info, arrays) for info in history["detached"]]
            applied, undone = ([_step(record, document, layers, arrays) for record in history[key]]
                               for key in ("applied", "undone"))
        recording = decode_value(manifest.get("recording") or [], layers, arrays)
    except (KeyError, IndexError, TypeError, ValueError) as error:
        raise ProjectError(f"the project is damaged: {type(error).__name__}: {error}") from error
    shown = layers[: len(manifest["layers"])]
    sizes = {layer.shape for layer in shown if layer.kind is LayerKind.IMAGE}
    misfit = next((layer for layer in shown if sizes and layer.kind is not LayerKind.IMAGE
                   and layer.shape not in sizes), None)
    if misfit is not None:
        # Document.add_layer refuses such a layer: tools and operators would take it for
        # pixels of an image it does not fit.
        raise ProjectError(f"the project is damaged: layer {misfit.name!r} is {misfit.shape[0]}x{misfit.shape[1]}, "
                           "the size of no image in it")

    def commit() -> RestoredProject:
        document.reset()
        for layer in layers[: len(manifest["layers"])]:
            document.layers.append(layer)
        selected = manifest.get("selected")
        if isinstance(selected, int) and 0 <= selected < len(document.layers):
            document.layers.selected = document.layers[selected]
        document.rect = tuple(manifest["rect"]) if manifest.get("rect") else None
        document.points = [tuple(point) for point in manifest.get("points", [])]
        if history is not None:
            document.history.restore(applied, undone)
        document.history.mark_saved()
        operator = manifest.get("operator") or {}
        return RestoredProject(
            source=manifest.get("source"),
            saved_as=manifest.get("saved_as"),
            operator=operator.get("id"),
            parameters=dict(operator.get("parameters") or {}),
            recording=recording,
            dropped_steps=int(history.get("dropped", 0)) if history else 0,
        )

    return commit


def _array(arrays: dict[str, np.ndarray], name: str) -> np.ndarray:
    if name not in arrays:
        raise KeyError(f"array {name!r} is missing")
    return arrays[name]


def _layer(info: dict, arrays: dict[str, np.ndarray]) -> Layer:
    """The layer :func:`_layer_info` described."""
    limits = info.get("contrast_limits")
    return Layer(
        _array(arrays, info["data"]),
        info["kind"],
        info["name"],
        visible=info["visible"],
        opacity=info["opacity"],
        blend=info.get("blend", "normal"),  # projects written before layers had one
        colormap=info["colormap"],
        contrast_limits=tuple(limits) if limits is not None else None,
        metadata=info.get("metadata") or {},
    )


def _step(record: dict, document: Document, layers: list[Layer], arrays: dict[str, np.ndarray]) -> Step:
    """The :class:`Step` of a record made by :func:`_history_record`."""
    atoms = []
    for atom in record["atoms"]:
        kind = atom["atom"]
        layer = layers[atom["layer"]] if "layer" in atom else None
        if kind == "pixels":
            bounds = tuple(slice(*ends) for ends in atom["bounds"])
            atoms.append(PixelAtom(layer, bounds, _array(arrays, atom["old"])))
        elif kind == "data":
            atoms.append(ReplaceDataAtom(layer, _array(arrays, atom["old"])))
        elif kind == "property":
            old = atom["old"]
            atoms.append(PropertyAtom(layer, atom["attr"], tuple(old) if isinstance(old, list) else old))
        elif kind == "seeds":
            atoms.append(AttributeAtom(document, atom["attr"], _tuples(atom["old"])))
        elif kind == "insert":
            atoms.append(InsertAtom(document.layers, atom["index"], layer))
        elif kind == "remove":
            atoms.append(RemoveAtom(document.layers, atom["index"], layer))
        elif kind == "move":
            atoms.append(MoveAtom(document.layers, atom["source"], atom["destination"]))
        else:
            raise ValueError(f"unknown history atom {kind!r}")
    return Step(record["name"], atoms)


def _tuples(value):
    """JSON lists back as the tuples the document keeps its box and points in."""
    return tuple(_tuples(item) for item in value) if isinstance(value, list) else value


def _lists(value):
    """Tuples (the box, the points) as JSON lists."""
    return [_lists(item) for item in value] if isinstance(value, (tuple, list)) else value


def _jsonable(value: dict) -> dict:
    """``value`` as JSON can hold it: numpy numbers as numbers, objects that describe
    themselves (a registration's transform: ``to_json()``) as that description, anything
    else unknown as its text."""

    def plain(item):
        if isinstance(item, np.generic):
            return item.item()
        if callable(getattr(item, "to_json", None)):
            return item.to_json()
        return str(item)

    return json.loads(json.dumps(value, default=plain))
