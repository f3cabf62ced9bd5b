"""Autosave and crash recovery: no drawing is ever lost.

The document (layers, their display properties, the box and point seeds) and its undo
history are written to a recovery file, atomically, every minute and a few seconds after
an Apply or a long stroke, if it changed since the last save. A clean exit deletes the
file; if it is there at the next start, the previous session ended without closing and the
window offers to restore it, undo and redo included. A temporary file that a crash left
half-written is removed.
"""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Callable

import numpy as np

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
from maskwork.core.layers import Layer

RECOVERY_NAME = "recovery.npz"


def recovery_path(folder: Path) -> Path:
    """The recovery file inside ``folder``."""
    return folder / RECOVERY_NAME


def partial_path(path: Path) -> Path:
    """The temporary file a recovery write fills before its atomic rename to ``path``."""
    return path.with_name(path.name + ".tmp")


def save_recovery(document: Document, path: Path, source: str | None = None) -> None:
    """Write the document and its history to ``path`` through a temporary file and an atomic rename.

    Raises
    ------
    OSError
        When the file cannot be written (a full disk); the temporary file is removed.
    """
    layers = list(document.layers)
    arrays = {f"layer{index}": layer.data for index, layer in enumerate(layers)}
    selected = document.layers.selected
    meta = {
        "layers": [_layer_info(layer) for layer in layers],
        "selected": document.layers.index(selected) if selected is not None else None,
        "rect": list(document.rect) if document.rect else None,
        "points": [list(point) for point in document.points],
        "source": source,
        "history": _history_record(document, layers, arrays),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = partial_path(path)
    try:
        with open(temporary, "wb") as handle:
            # Uncompressed: a recovery write must be quick; the file is deleted on a clean exit.
            np.savez(handle, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def load_recovery(path: Path, document: Document) -> str | None:
    """Replace ``document``'s content and history by the recovery file; returns the source file name.

    The restored state is the history's current point, with the steps before it to undo and
    those undone after it to redo; the window marks it unsaved.
    """
    with np.load(path, allow_pickle=False) as archive:
        meta = json.loads(archive["meta"].tobytes().decode())
        document.reset()
        layers = [_layer(archive[f"layer{index}"], info) for index, info in enumerate(meta["layers"])]
        for layer in layers:
            document.layers.append(layer)
        history = meta.get("history")
        if history is not None:
            # Layers only the history holds follow the document's own in the archive.
            layers += [_layer(archive[f"layer{len(layers) + index}"], info) for index, info in enumerate(history["detached"])]
            applied, undone = ([_step(record, document, layers, archive) for record in history[key]]
                               for key in ("applied", "undone"))
    if meta.get("selected") is not None and meta["selected"] < len(document.layers):
        document.layers.selected = document.layers[meta["selected"]]
    document.rect = tuple(meta["rect"]) if meta.get("rect") else None
    document.points = [tuple(point) for point in meta.get("points", [])]
    if history is not None:
        document.history.restore(applied, undone)
    return meta.get("source")


def _layer_info(layer: Layer) -> dict:
    """A layer's name, kind and display properties as JSON (its pixels go to the archive)."""
    return {
        "name": layer.name,
        "kind": layer.kind.value,
        "visible": layer.visible,
        "opacity": layer.opacity,
        "colormap": layer.colormap,
        "contrast_limits": list(layer.contrast_limits),
        "metadata": _jsonable(layer.metadata),
    }


def _layer(data: np.ndarray, info: dict) -> Layer:
    """The layer :func:`_layer_info` described, with its pixels ``data``."""
    return Layer(
        data,
        info["kind"],
        info["name"],
        visible=info["visible"],
        opacity=info["opacity"],
        colormap=info["colormap"],
        contrast_limits=tuple(info["contrast_limits"]),
        metadata=info.get("metadata") or {},
    )


def _history_record(document: Document, layers: list[Layer], arrays: dict) -> dict | None:
    """The undo and redo steps as JSON, their pixels added to ``arrays``.

    Atoms name layers by their place in ``layers``, extended by the layers only the history
    holds (deleted ones, added ones undone), which are saved after the document's. None
    when a step holds a change this file cannot write: the document alone is restored.
    """
    places = {id(layer): index for index, layer in enumerate(layers)}
    detached: list[Layer] = []

    def place(layer: Layer) -> int:
        if id(layer) not in places:
            places[id(layer)] = len(layers) + len(detached)
            arrays[f"layer{places[id(layer)]}"] = layer.data
            detached.append(layer)
        return places[id(layer)]

    numbers = itertools.count()

    def store(array: np.ndarray) -> str:
        key = f"history{next(numbers)}"
        arrays[key] = array
        return key

    applied, undone = document.history.steps
    records = {}
    for key, steps in (("applied", applied), ("undone", undone)):
        records[key] = []
        for step in steps:
            atoms = [_atom_record(atom, document, place, store) for atom in step.atoms]
            if None in atoms:
                return None
            records[key].append({"name": step.name, "atoms": atoms})
    records["detached"] = [_layer_info(layer) for layer in detached]
    return records


def _atom_record(
    atom, document: Document, place: Callable[[Layer], int], store: Callable[[np.ndarray], str]
) -> dict | None:
    """One atom as JSON (its arrays through ``store``), or None for a kind not known here."""
    if isinstance(atom, PixelAtom):
        bounds = [[None if end is None else int(end) for end in (part.start, part.stop)] for part in atom.bounds]
        return {"atom": "pixels", "layer": place(atom.layer), "bounds": bounds, "old": store(atom.old)}
    if isinstance(atom, ReplaceDataAtom):
        return {"atom": "data", "layer": place(atom.layer), "old": store(atom.old)}
    if isinstance(atom, PropertyAtom):
        return {"atom": "property", "layer": place(atom.layer), "attr": atom.attr, "old": atom.old}
    if isinstance(atom, AttributeAtom) and atom.target is document:
        return {"atom": "seeds", "attr": atom.attr, "old": atom.old}
    if isinstance(atom, (InsertAtom, RemoveAtom)):
        kind = "insert" if isinstance(atom, InsertAtom) else "remove"
        return {"atom": kind, "index": atom.index, "layer": place(atom.layer)}
    if isinstance(atom, MoveAtom):
        return {"atom": "move", "source": atom.source, "destination": atom.destination}
    return None


def _step(record: dict, document: Document, layers: list[Layer], archive) -> Step:
    """The :class:`Step` of a record made by :func:`_history_record`."""
    atoms = []
    for atom in record["atoms"]:
        kind = atom["atom"]
        layer = layers[atom["layer"]] if "layer" in atom else None
        if kind == "pixels":
            atoms.append(PixelAtom(layer, tuple(slice(*ends) for ends in atom["bounds"]), archive[atom["old"]]))
        elif kind == "data":
            atoms.append(ReplaceDataAtom(layer, archive[atom["old"]]))
        elif kind == "property":
            old = atom["old"]
            atoms.append(PropertyAtom(layer, atom["attr"], tuple(old) if isinstance(old, list) else old))
        elif kind == "seeds":
            atoms.append(AttributeAtom(document, atom["attr"], _tuples(atom["old"])))
        elif kind == "insert":
            atoms.append(InsertAtom(document.layers, atom["index"], layer))
        elif kind == "remove":
            atoms.append(RemoveAtom(document.layers, atom["index"], layer))
        else:
            atoms.append(MoveAtom(document.layers, atom["source"], atom["destination"]))
    return Step(record["name"], atoms)


def _tuples(value):
    """JSON lists back as the tuples the document keeps its box and points in."""
    return tuple(_tuples(item) for item in value) if isinstance(value, list) else value


def _jsonable(value):
    try:
        json.dumps(value)
        return value
    except TypeError:
        return {key: str(item) for key, item in value.items()}
