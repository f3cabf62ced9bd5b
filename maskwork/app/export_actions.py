"""File > Export image, mask, labels, coloured labels or cut-out, each with a sidecar."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject
from PySide6.QtWidgets import QFileDialog

from maskwork.app.actions import window_action
from maskwork.app.file_actions import IMAGE_FILTER, last_dir
from maskwork.core import io
from maskwork.core.layers import Layer, LayerKind

if TYPE_CHECKING:
    from maskwork.app.main_window import MainWindow
    from maskwork.app.recipe_actions import RecipeActions

#: What each export writes: the layer kinds it takes, most wanted first, and the file
#: name suffix its dialog proposes.
EXPORT_KINDS = {
    "image": ((LayerKind.IMAGE,), ".png"),
    "mask": ((LayerKind.MASK, LayerKind.LABELS), "_mask.png"),
    "labels": ((LayerKind.LABELS, LayerKind.MASK, LayerKind.MARKERS), "_labels.png"),
    "labels_color": ((LayerKind.LABELS, LayerKind.MASK, LayerKind.MARKERS), "_labels_color.png"),
    "cutout": ((LayerKind.MASK, LayerKind.LABELS), "_cutout.png"),
}


class ExportActions(QObject):
    """The image exports of one window; each writes a sidecar with its provenance and recipe.

    Parameters
    ----------
    window : MainWindow
        The window whose layers are exported; its source path names the files.
    recipes : RecipeActions
        Gives the recipe embedded in each sidecar.
    """

    def __init__(self, window: MainWindow, recipes: RecipeActions) -> None:
        super().__init__(window)
        self.window = window
        self.recipes = recipes
        self.action_export_image = self._export_action(
            "Export &image...", "image", "Ctrl+Shift+E", "Export the selected image layer"
        )
        self.action_export_mask = self._export_action(
            "Export &mask (PNG 0/255)...", "mask", "Ctrl+E", "Export the selected or top mask"
        )
        self.action_export_labels = self._export_action(
            "Export &labels...", "labels", None, "Export a labels layer (uint8/uint16 PNG or TIFF)"
        )
        self.action_export_labels_color = self._export_action(
            "Export labels as &colour PNG...", "labels_color", None, "Export labels drawn in their colours"
        )
        self.action_export_cutout = self._export_action(
            "Export &cut-out (RGBA PNG)...", "cutout", None, "Export the image with the mask as alpha"
        )

    def _export_action(self, text: str, what: str, shortcut, tip: str):
        return window_action(self.window, text, lambda: self.export_dialog(what), shortcut, tip)

    def export_dialog(self, what: str) -> None:
        """Ask where to export ``what`` (a key of :data:`EXPORT_KINDS`), then export it."""
        source = self.window.source_path
        stem = source.stem if source else "untitled"
        start = str(Path(last_dir()) / f"{stem}{EXPORT_KINDS[what][1]}")
        path, _ = QFileDialog.getSaveFileName(self.window, f"Export {what.replace('_', ' ')}", start, IMAGE_FILTER)
        if path:
            self.export(what, path)

    def layer_for_export(self, what: str) -> Layer | None:
        """The layer an export uses: the selected one if it fits, else the top one that does."""
        kinds = EXPORT_KINDS[what][0]
        layers = self.window.document.layers
        selected = layers.selected
        if selected is not None and selected.kind in kinds:
            return selected
        candidates = layers.of_kind(*kinds)
        for kind in kinds:  # prefer the first kind listed
            of_kind = [layer for layer in candidates if layer.kind is kind]
            if of_kind:
                return of_kind[-1]
        return None

    def export(self, what: str, path: str | Path) -> Path | None:
        """Export ``what`` (image, mask, labels, labels_color, cutout) to ``path`` with a sidecar."""
        window = self.window
        document = window.document
        layer = self.layer_for_export(what)
        if layer is None:
            needed = "an image" if what == "image" else "a mask or labels layer"
            window.show_error(f"Nothing to export as {what.replace('_', ' ')}", f"Export needs {needed}.")
            return None
        provenance = {
            "operator": layer.metadata.get("operator"),
            "parameters": layer.metadata.get("parameters"),
            "layer": layer.name,
            "inputs": {"image": str(window.source_path) if window.source_path else None},
            "seeds": io.seed_summary(self._markers_data(), document.rect, document.points),
        }
        embedded, recipe_warning = self.recipes.recipe_for_sidecar(path)
        try:
            if what == "image":
                written = io.write_image(path, layer.data, provenance=provenance, recipe=embedded)
            elif what == "mask":
                written = io.write_mask(path, layer.data, provenance=provenance, recipe=embedded)
            elif what == "labels":
                written = io.write_labels(path, layer.data, provenance=provenance, recipe=embedded)
            elif what == "labels_color":
                written = io.write_labels_color(path, layer.data, provenance=provenance, recipe=embedded)
            else:
                written = io.write_cutout(path, document.base_image.data, layer.data, provenance=provenance, recipe=embedded)
        except (ValueError, OSError) as error:
            window.show_error(f"Cannot export {Path(path).name}", str(error))
            return None
        document.history.mark_saved()
        window.statusBar().showMessage(f"Exported {written}{recipe_warning}", 8000)
        return Path(written)

    def _markers_data(self) -> np.ndarray | None:
        markers = self.window.document.layers.of_kind(LayerKind.MARKERS)
        return markers[-1].data if markers else None
