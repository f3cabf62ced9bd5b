"""File > Export: one dialog offering what the selected layer can be written as, and the
separate entries for image, mask, labels, coloured labels and cut-out; each export writes a
sidecar, in the background."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog

from maskwork.app.actions import window_action
from maskwork.app.file_actions import IMAGE_FILTER, last_dir
from maskwork.core import io
from maskwork.core.io.files import unwritable
from maskwork.core.layers import Layer, LayerKind
from maskwork.widgets.export_dialog import ExportChoice, ExportDialog
from maskwork.widgets.workers import start_worker

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

#: How File > Export... names each export, and the formats its writer takes (usual first).
EXPORT_CHOICES = {
    "image": ExportChoice("image", "Image", (".png", ".tif", ".jpg", ".bmp", ".webp")),
    "mask": ExportChoice("mask", "Mask (0/255)", (".png", ".tif")),
    "labels": ExportChoice("labels", "Labels (class ids, uint8/uint16)", (".png", ".tif")),
    "labels_color": ExportChoice("labels_color", "Labels in their colours (RGBA)", (".png", ".tif", ".webp")),
    "cutout": ExportChoice("cutout", "Cut-out of the image (RGBA)", (".png", ".tif", ".webp")),
}
#: A layer made by a registration can also give its transform.
TRANSFORM_CHOICE = ExportChoice("transform", "Transform of the registration", (".json", ".tfm"))


def _export_name(what: str) -> str:
    """How titles and messages name an export: its File > Export... choice without the
    details in brackets ("cut-out of the image", "labels in their colours")."""
    return EXPORT_CHOICES[what].title.split(" (")[0].lower()


class ExportActions(QObject):
    """The image exports of one window; each writes a sidecar with its provenance and recipe.

    Parameters
    ----------
    window : MainWindow
        The window whose layers are exported; its source path names the files.
    recipes : RecipeActions
        Gives the recipe embedded in each sidecar.

    Signals
    -------
    exported(object)
        An export written in the background ended: the written file, or None when it
        failed (the person was told why).
    """

    exported = Signal(object)

    def __init__(self, window: MainWindow, recipes: RecipeActions) -> None:
        super().__init__(window)
        self.window = window
        self.recipes = recipes
        self.dialog: ExportDialog | None = None
        self.action_export = window_action(
            window, "&Export...", self.open_export_dialog, "Ctrl+Alt+E", "Export the selected layer: choose what to write it as"
        )
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

    # -- dialogs ----------------------------------------------------------------------
    def _proposed_path(self, what: str, layer: Layer | None) -> Path:
        """The file first proposed for exporting ``layer`` as ``what``: beside the last file
        opened, named after the source, in a format that holds the layer."""
        source = self.window.source_path
        stem = source.stem if source else "untitled"
        suffix = ".json" if what == "transform" else EXPORT_KINDS[what][1]
        if what == "image" and layer is not None:
            # PNG holds 8/16-bit gray, RGB and RGBA only; float, int16, uint32 or 2 or 5
            # channels would be refused at the end: propose the TIFF that holds them.
            suffix = io.output_suffix("image", layer.data)
        return Path(last_dir()) / f"{stem}{suffix}"

    def export_dialog(self, what: str) -> None:
        """Ask where to export ``what`` (a key of :data:`EXPORT_KINDS`), then export it;
        when there is nothing to export, say so before asking for a file."""
        layer = self.layer_for_export(what)
        if layer is None:
            self._say_nothing_to_export(what)
            return
        path, _ = QFileDialog.getSaveFileName(self.window, f"Export {_export_name(what)}",
                                              str(self._proposed_path(what, layer)), IMAGE_FILTER)
        if path:
            self.export(what, path, background=True)

    def _say_nothing_to_export(self, what: str) -> None:
        needed = "an image" if what == "image" else "a mask or labels layer"
        self.window.show_error(f"Nothing to export as {_export_name(what)}",
                               f"Export needs {needed}.")

    @staticmethod
    def choices_for(layer: Layer) -> list[ExportChoice]:
        """What ``layer`` can be written as, in the order File > Export... lists them."""
        choices = [EXPORT_CHOICES[what] for what, (kinds, _) in EXPORT_KINDS.items() if layer.kind in kinds]
        if layer.metadata.get("transform") is not None:
            choices.append(TRANSFORM_CHOICE)
        return choices

    def open_export_dialog(self) -> ExportDialog | None:
        """Show File > Export... for the layers that can be written, the selected one first chosen."""
        layers = [layer for layer in reversed(list(self.window.document.layers)) if self.choices_for(layer)]
        if not layers:
            self.window.show_error("Nothing to export", "Open an image first.")
            return None
        dialog = ExportDialog(layers, self.window.document.layers.selected, self.choices_for,
                              lambda layer, choice: self._proposed_path(choice.key, layer), self.window)
        dialog.setObjectName("exportDialog")
        dialog.accepted.connect(lambda: self._export_chosen(dialog))
        dialog.finished.connect(dialog.deleteLater)
        self.dialog = dialog
        dialog.open()
        return dialog

    def _export_chosen(self, dialog: ExportDialog) -> None:
        layer, choice = dialog.layer, dialog.choice
        if layer is None or choice is None or layer not in self.window.document.layers:
            return  # the layer was deleted while the dialog was open
        if choice.key == "transform":
            # Export transform writes the selected layer's transform: select the one chosen.
            self.window.document.layers.selected = layer
            self.window.transforms.export_transform(dialog.path)
        else:
            self.export(choice.key, dialog.path, layer=layer, background=True)

    # -- writing ----------------------------------------------------------------------
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

    def export(self, what: str, path: str | Path, *, layer: Layer | None = None, background: bool = False) -> Path | bool | None:
        """Export ``what`` (image, mask, labels, labels_color, cutout) to ``path`` with a sidecar.

        Parameters
        ----------
        what : str
            A key of :data:`EXPORT_KINDS`.
        path : path
            The file; its suffix chooses the format.
        layer : Layer, optional
            The layer to write; by default :meth:`layer_for_export` picks it.
        background : bool
            Write in a worker so that the window stays responsive (a 4000 x 3000 PNG takes
            0.7 s), with the status bar's file progress; :attr:`exported` says how it ended.
            The menus write this way; scripts and tests may write at once.

        Returns
        -------
        Path, bool or None
            Without ``background``: the written file, or None when nothing was written.
            With it: whether writing started.
        """
        window = self.window
        layer = layer if layer is not None else self.layer_for_export(what)
        if layer is None:
            self._say_nothing_to_export(what)
            return False if background else None
        write = self._writer(what, Path(path), layer)
        if not background:
            return self._finish(path, write())
        ticket = window.file_progress.begin(f"Exporting {Path(path).name}")
        window.statusBar().showMessage(f"Exporting {Path(path).name}...")

        def finished(outcome) -> None:
            window.file_progress.end(ticket)
            self.exported.emit(self._finish(path, outcome))

        start_worker(lambda worker: write(), returned=finished, name=f"exporting {Path(path).name}")
        return True

    def _writer(self, what: str, path: Path, layer: Layer):
        """A function writing ``layer`` as ``what``, made of snapshots taken now (the person
        may paint on while it runs); it returns (file, recipe warning) or the error."""
        window, document = self.window, self.window.document
        # Masks, labels and scribbles are painted in place: write what was there when asked.
        data = layer.data if layer.kind is LayerKind.IMAGE else np.array(layer.data, copy=True)
        # A cut-out is of the image the person sees (an inpainted result above the opened
        # photo; the operators' image when every image is hidden), on the display range
        # they chose for it.
        shown = (document.visible_image or document.base_image) if what == "cutout" else None
        image = shown.data if shown is not None else None
        contrast_limits = shown.contrast_limits if shown is not None else None
        markers = document.layers.of_kind(LayerKind.MARKERS)
        markers = np.array(markers[-1].data, copy=True) if markers else None
        rect, points = document.rect, list(document.points)
        provenance = {
            "operator": layer.metadata.get("operator"),
            "parameters": layer.metadata.get("parameters"),
            "layer": layer.name,
            "inputs": {"image": str(window.source_path) if window.source_path else None},
        }
        try:
            recipe = self.recipes.current_recipe()
        except ValueError as error:  # InputError: a recorded step no longer fits the registry
            recipe, recipe_warning = None, f" (without its recipe: {error})"
        else:
            recipe_warning = ""

        def write() -> tuple[Path, str] | Exception:
            embedded, warning = None, recipe_warning
            if recipe is not None and recipe.steps:
                try:  # seed files beside the export; never a reason to refuse the export itself
                    embedded = recipe.embed(path)
                except (ValueError, OSError) as error:
                    warning = f" (without its recipe: {error})"
            # Counting the scribbles of 12 MP takes longer than a frame: done here too.
            options = {"provenance": {**provenance, "seeds": io.seed_summary(markers, rect, points)}, "recipe": embedded}
            try:
                if what == "image":
                    written = io.write_image(path, data, **options)
                elif what == "mask":
                    written = io.write_mask(path, data, **options)
                elif what == "labels":
                    written = io.write_labels(path, data, **options)
                elif what == "labels_color":
                    written = io.write_labels_color(path, data, **options)
                else:
                    written = io.write_cutout(path, image, data, contrast_limits=contrast_limits, **options)
            except OSError as error:
                return unwritable(Path(path), error)
            except ValueError as error:
                return error
            return Path(written), warning

        return write

    def _finish(self, path: str | Path, outcome) -> Path | None:
        """Tell how an export ended (main thread); returns the written file or None."""
        window = self.window
        if isinstance(outcome, Exception):
            window.show_error(f"Cannot export {Path(path).name}", str(outcome))
            return None
        written, warning = outcome
        window.statusBar().showMessage(f"Exported {written}{warning}", 8000)
        return written
