"""Provenance sidecars and other JSON records written next to exported files.

A sidecar is ``<file>.json``: which file, when, with which maskwork and library
versions, and what made it (operator, parameters, seeds, inputs, recipe).
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timezone
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable

import numpy as np

import maskwork
from maskwork.core.io.files import write_bytes_atomic

# Keys write_sidecar fills in itself (or takes as their own argument); provenance may
# not override them.
_SIDECAR_RESERVED = ("file", "created", "maskwork_version", "library_versions", "recipe")
# Distribution names whose versions go into every sidecar. A key lists several
# distributions where the project accepts more than one (PySide6 is installed
# as PySide6-Essentials).
_VERSIONED = {
    "numpy": ("numpy",),
    "opencv-python-headless": ("opencv-python-headless",),
    "scikit-image": ("scikit-image",),
    "SimpleITK": ("SimpleITK",),
    "torch": ("torch",),
    "PySide6": ("PySide6", "PySide6-Essentials"),
    "pyqtgraph": ("pyqtgraph",),
    "tifffile": ("tifffile",),
    "imageio": ("imageio",),
    "Pillow": ("Pillow",),
}


def sidecar_path(path: str | os.PathLike) -> Path:
    """Return the provenance sidecar of `path`: the same name plus ``.json``.

    Parameters
    ----------
    path : str or path-like
        An exported file, e.g. ``mask.png``.

    Returns
    -------
    Path
        E.g. ``mask.png.json`` next to it.
    """
    path = Path(path)
    return path.with_name(path.name + ".json")


@lru_cache(maxsize=1)
def _library_versions() -> dict[str, str | None]:
    """Versions of the libraries that shape results, read without importing them."""
    versions: dict[str, str | None] = {"python": sys.version.split()[0]}
    for key, distributions in _VERSIONED.items():
        versions[key] = None
        for name in distributions:
            try:
                versions[key] = metadata.version(name)
                break
            except metadata.PackageNotFoundError:
                continue
    return versions


def _json_default(value: Any) -> Any:
    """Convert what the json module cannot (numpy values, paths) to plain types."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    raise TypeError(f"{type(value).__name__} cannot be written to a sidecar")


def sidecar_text(path: Path, provenance: dict, recipe: dict | None = None) -> str:
    """The JSON text of the sidecar of `path`, built before anything is written.

    The writers call this first, so a provenance that cannot be stored fails the
    export before the image file is replaced.

    Parameters
    ----------
    path : Path
        The exported file.
    provenance, recipe : dict
        As for :func:`write_sidecar`.

    Returns
    -------
    str
        Indented JSON ending in a newline.

    Raises
    ------
    ValueError, TypeError
        As :func:`write_sidecar` does.
    """
    clash = [key for key in _SIDECAR_RESERVED if key in provenance]
    if clash:
        raise ValueError(
            f"provenance may not set {', '.join(clash)}: write_sidecar fills them in "
            "(a recipe goes in its own argument)"
        )
    record = {
        "file": path.name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "maskwork_version": maskwork.__version__,
        "library_versions": dict(_library_versions()),
        **provenance,
    }
    if recipe is not None:
        record["recipe"] = recipe
    return json.dumps(record, indent=2, default=_json_default) + "\n"


def write_sidecar(path: str | os.PathLike, provenance: dict, *, recipe: dict | None = None) -> Path:
    """Write the JSON provenance sidecar of an exported file.

    Parameters
    ----------
    path : str or path-like
        The exported file the sidecar describes (it need not exist yet).
    provenance : dict
        Extra keys, normally ``"operator"`` (id), ``"parameters"`` (dict),
        ``"seeds"`` (see :func:`seed_summary`) and ``"inputs"`` (file names).
        Numpy scalars and arrays are converted to plain JSON values.
    recipe : dict, optional
        The recipe that made the file (:meth:`maskwork.pipeline.recipe.Recipe.embed`),
        stored under ``"recipe"``; ``maskwork batch`` and
        :func:`maskwork.pipeline.recipe.load` accept the sidecar as a recipe file.

    Returns
    -------
    Path
        The sidecar, ``<path>.json``. It holds ``"file"`` (the exported file's
        name), ``"created"`` (ISO 8601, UTC), ``"maskwork_version"``,
        ``"library_versions"`` (installed versions of numpy, OpenCV,
        scikit-image, SimpleITK, torch, PySide6, pyqtgraph, tifffile, imageio,
        Pillow and Python; null when missing), every key of `provenance` and
        ``"recipe"`` when one is given.

    Raises
    ------
    ValueError
        If `provenance` sets one of the keys filled in here.
    TypeError
        If a value cannot be represented in JSON.
    """
    path = Path(path)
    target = sidecar_path(path)
    write_bytes_atomic(target, sidecar_text(path, provenance, recipe).encode("utf-8"))
    return target


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write `data` as indented JSON, atomically (a reader never sees half a file).

    Parameters
    ----------
    path : str or path-like
        Output file; parent folders are created.
    data : object
        JSON-ready data; numpy scalars and arrays and paths are converted.

    Returns
    -------
    Path
        The written file.
    """
    path = Path(path)
    text = json.dumps(data, indent=2, default=_json_default) + "\n"
    write_bytes_atomic(path, text.encode("utf-8"))
    return path

def transform_json(transform: Any) -> dict:
    """The JSON description of a transform output: its ``to_json()``, or a plain matrix.

    Parameters
    ----------
    transform : object
        A :class:`maskwork.operators.registration.transform.Transform` or a 3x3 array.

    Returns
    -------
    dict
        ``transform.to_json()``, or ``{"type": "matrix", "matrix": [[...], ...]}``.
    """
    if hasattr(transform, "to_json"):
        return transform.to_json()
    return {"type": "matrix", "matrix": np.asarray(transform, float).tolist()}


def seed_summary(markers: np.ndarray | None = None, rect: Iterable[int] | None = None,
                 points: Iterable[Iterable[float]] | None = None) -> dict:
    """Summarise the seeds of an operator run for a sidecar.

    Parameters
    ----------
    markers : ndarray of int, optional
        Marker (scribble) image; 0 is unlabelled.
    rect : sequence of 4 int, optional
        Box as (x, y, width, height).
    points : sequence of (row, col[, label]), optional
        Point prompts.

    Returns
    -------
    dict
        ``"marker_counts"``: pixel count per nonzero marker label, with the
        label as a string key (JSON object keys are strings);
        ``"rect"``: the box as a list; ``"points"``: the points as lists and
        ``"point_count"``: their number. Only the seeds given appear.
    """
    summary: dict[str, Any] = {}
    if markers is not None:
        values, counts = np.unique(np.asarray(markers), return_counts=True)
        summary["marker_counts"] = {
            str(value): int(count) for value, count in zip(values.tolist(), counts.tolist())
            if value != 0
        }
    if rect is not None:
        summary["rect"] = [int(v) for v in rect]
    if points is not None:
        point_list = [np.asarray(p).tolist() for p in points]
        summary["points"] = point_list
        summary["point_count"] = len(point_list)
    return summary
