"""File > Import > Mask, Labels or Markers: a file read into a new layer of that kind."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QMenu

from maskwork.app.actions import window_action
from maskwork.app.file_actions import IMAGE_FILTER, last_dir
from maskwork.core import io
from maskwork.core.layers import KIND_DTYPES, Layer, LayerKind
from maskwork.operators import InputError
from maskwork.pipeline.inputs import single_channel
from maskwork.widgets.workers import start_worker

if TYPE_CHECKING:
    from maskwork.app.main_window import MainWindow

#: What each import makes of the file's values.
IMPORT_MEANINGS = {
    LayerKind.MASK: "nonzero pixels are the mask",
    LayerKind.LABELS: "each value is a class id (0 none)",
    LayerKind.MARKERS: "each value is a scribble class (0 unlabelled, 1 foreground, 2 background, 3.. more)",
}


def layer_values(pixels: np.ndarray, kind: LayerKind, name: str) -> np.ndarray:
    """The values a ``kind`` layer takes from the pixels of file ``name``.

    Raises
    ------
    ValueError
        When the file is a colour picture, or holds values the layer cannot store
        (negative or fractional class ids, more classes than its type holds).
    """
    try:
        values = single_channel(np.asarray(pixels), kind.value)
    except InputError as error:
        raise ValueError(f"{name}: {error}") from None
    if kind is LayerKind.MASK:
        return (values != 0).astype(np.uint8)
    dtype = np.dtype(KIND_DTYPES[kind])
    if values.dtype.kind == "b":
        return values.astype(dtype)
    if values.size and (values.dtype.kind == "f" and not np.array_equal(values, np.round(values))
                        or values.min() < 0 or values.max() > np.iinfo(dtype).max):
        raise ValueError(f"{name} holds values from {values.min():g} to {values.max():g}; {kind.value} need whole "
                         f"numbers from 0 to {np.iinfo(dtype).max}")
    return values.astype(dtype)


class ImportActions(QObject):
    """File > Import > Mask, Labels or Markers of one window, read in the background.

    Parameters
    ----------
    window : MainWindow
        The window whose document gets the layers; its messages and file progress are used.

    Signals
    -------
    imported(object)
        A read ended: the new layer, or None when the file could not become one (the
        person was told why).
    """

    imported = Signal(object)

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.menu = QMenu("&Import", window)
        self.actions = {}
        for kind, text in ((LayerKind.MASK, "&Mask..."), (LayerKind.LABELS, "&Labels..."),
                           (LayerKind.MARKERS, "Mar&kers (scribbles)...")):
            action = window_action(window, text, lambda checked=False, k=kind: self.import_dialog(k), None,
                                   f"Read a file into a new {kind.value} layer: {IMPORT_MEANINGS[kind]}")
            self.menu.addAction(action)
            self.actions[kind] = action

    def import_dialog(self, kind: LayerKind) -> None:
        """Ask for a file and import it as a ``kind`` layer."""
        path, _ = QFileDialog.getOpenFileName(self.window, f"Import {kind.value}", last_dir(), IMAGE_FILTER)
        if path:
            self.import_file(path, kind)

    def import_file(self, path: str | Path, kind: LayerKind | str) -> bool:
        """Read ``path`` in the background into a new ``kind`` layer (one undoable step).

        Returns whether reading started; :attr:`imported` says how it ended.
        """
        window, path, kind = self.window, Path(path), LayerKind(kind)
        if window.document.shape is None:
            window.show_error(f"Cannot import {path.name}", f"Open an image first: the {kind.value} is drawn over it.")
            return False
        ticket = window.file_progress.begin(f"Importing {path.name}")
        window.statusBar().showMessage(f"Importing {path.name}...")

        def read(worker) -> np.ndarray | Exception:
            try:
                return layer_values(io.read_image(path, palette_indices=True), kind, path.name)
            except (ValueError, OSError) as error:
                return error

        def finished(values) -> None:
            window.file_progress.end(ticket)
            self.imported.emit(self._add(path, kind, values))

        start_worker(read, returned=finished, name=f"importing {path.name}")
        return True

    def _add(self, path: Path, kind: LayerKind, values) -> Layer | None:
        window = self.window
        document = window.document
        if isinstance(values, Exception):
            window.show_error(f"Cannot import {path.name}", str(values))
            return None
        shape = document.shape
        if shape is None:
            window.show_error(f"Cannot import {path.name}", "The image was closed while the file was read.")
            return None
        if values.shape != shape:
            window.show_error(
                f"Cannot import {path.name}",
                f"{path.name} is {values.shape[1]} x {values.shape[0]} pixels but the image is {shape[1]} x {shape[0]}: "
                f"a {kind.value} must have the image's size.",
            )
            return None
        # Drawn as the layers New markers / New mask make, so it looks like one drawn here.
        layer = Layer(values, kind, document.layers.unique_name(path.stem), metadata={"source": str(path)})
        document.add_layer(layer, step=f"Import {path.name} as {kind.value}")
        window.statusBar().showMessage(f"Imported {path.name} as {kind.value} ({IMPORT_MEANINGS[kind]})", 8000)
        return layer
