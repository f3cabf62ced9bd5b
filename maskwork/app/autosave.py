"""Autosave and crash recovery: no drawing is ever lost.

Every minute the document (layers, their display properties, the box and point seeds) is
written to a recovery file, atomically, if it changed since the last save. A clean exit
deletes the file; if it is there at the next start, the previous session ended without
closing and the window offers to restore it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from maskwork.core.document import Document
from maskwork.core.layers import Layer

RECOVERY_NAME = "recovery.npz"


def recovery_path(folder: Path) -> Path:
    """The recovery file inside ``folder``."""
    return folder / RECOVERY_NAME


def save_recovery(document: Document, path: Path, source: str | None = None) -> None:
    """Write the document to ``path`` through a temporary file and an atomic rename."""
    arrays = {}
    layers = []
    for index, layer in enumerate(document.layers):
        arrays[f"layer{index}"] = layer.data
        layers.append(
            {
                "name": layer.name,
                "kind": layer.kind.value,
                "visible": layer.visible,
                "opacity": layer.opacity,
                "colormap": layer.colormap,
                "contrast_limits": list(layer.contrast_limits),
                "metadata": _jsonable(layer.metadata),
            }
        )
    selected = document.layers.selected
    meta = {
        "layers": layers,
        "selected": document.layers.index(selected) if selected is not None else None,
        "rect": list(document.rect) if document.rect else None,
        "points": [list(point) for point in document.points],
        "source": source,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as handle:
        # Uncompressed: a recovery write must be quick; the file is deleted on a clean exit.
        np.savez(handle, meta=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)
    os.replace(temporary, path)


def load_recovery(path: Path, document: Document) -> str | None:
    """Replace ``document``'s content by the recovery file; returns the source file name.

    The restored state becomes the history's starting point and counts as unsaved.
    """
    with np.load(path, allow_pickle=False) as archive:
        meta = json.loads(archive["meta"].tobytes().decode())
        document.reset()
        for index, info in enumerate(meta["layers"]):
            document.layers.append(
                Layer(
                    archive[f"layer{index}"],
                    info["kind"],
                    info["name"],
                    visible=info["visible"],
                    opacity=info["opacity"],
                    colormap=info["colormap"],
                    contrast_limits=tuple(info["contrast_limits"]),
                    metadata=info.get("metadata") or {},
                )
            )
    if meta.get("selected") is not None and meta["selected"] < len(document.layers):
        document.layers.selected = document.layers[meta["selected"]]
    document.rect = tuple(meta["rect"]) if meta.get("rect") else None
    document.points = [tuple(point) for point in meta.get("points", [])]
    return meta.get("source")


def _jsonable(value):
    try:
        json.dumps(value)
        return value
    except TypeError:
        return {key: str(item) for key, item in value.items()}
