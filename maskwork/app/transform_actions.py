"""Registration results in the window: export, load and apply transforms, show matches."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QFileDialog

from maskwork.app.actions import window_action
from maskwork.app.file_actions import last_dir
from maskwork.core.layers import Layer, LayerKind

if TYPE_CHECKING:
    from maskwork.app.main_window import MainWindow
    from maskwork.operators.registration.transform import Transform

TRANSFORM_FILTER = "Transform (*.json *.tfm)"


class TransformActions(QObject):
    """Export transform, Load transform, Apply transform to layer and Show feature matches.

    Parameters
    ----------
    window : MainWindow
        The window whose layers are warped; its runner holds the last applied transform.
    """

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.action_export_transform = window_action(
            window, "Export &transform (JSON or .tfm)...", self.export_transform_dialog, None, "Save the last registration's transform"
        )
        self.action_load_transform = window_action(
            window, "Load transform...", self.load_transform_dialog, None, "Load a transform saved as JSON or .tfm"
        )
        self.action_show_matches = window_action(
            window,
            "Show feature &matches",
            self.show_feature_matches,
            None,
            "Add the last feature registration's matches as an image (inliers green, outliers red)",
        )
        self.action_apply_transform = window_action(
            window,
            "Apply &transform to layer",
            self.apply_transform_to_selected,
            None,
            "Warp the selected layer with the current transform (masks nearest-neighbour)",
        )

    @property
    def current_transform(self) -> Transform | None:
        """The selected layer's transform if it has one, else the last applied one."""
        selected = self.window.document.layers.selected
        if selected is not None and selected.metadata.get("transform") is not None:
            return selected.metadata["transform"]
        return self.window.runner.last_transform

    def export_transform_dialog(self) -> None:
        """Ask where to save the current transform (first saying so when there is none)."""
        if self.current_transform is None:
            self._say_no_transform()
            return
        path, _ = QFileDialog.getSaveFileName(
            self.window, "Export transform", str(Path(last_dir()) / "transform.json"), TRANSFORM_FILTER
        )
        if path:
            self.export_transform(path)

    def _say_no_transform(self) -> None:
        self.window.show_error("No transform", "Apply a registration first (Registration menu).")

    def export_transform(self, path: str | Path) -> Path | None:
        """Save the current transform as JSON (matrix, parameters) or as a SimpleITK .tfm,
        with a sidecar naming the registration that made it, its parameters and the recipe."""
        from maskwork.core import io

        transform = self.current_transform
        if transform is None:
            self._say_no_transform()
            return None
        path = Path(path)
        made_by = next((layer.metadata for layer in self.window.document.layers
                        if layer.metadata.get("transform") is transform), {})
        source = self.window.source_path
        provenance = {
            "operator": made_by.get("operator"),
            "parameters": made_by.get("parameters"),
            "inputs": {"image": str(source) if source else None},
        }
        recipe, recipe_warning = self.window.recipes.recipe_for_sidecar(path)
        try:
            path = io.write_output(path, "transform", transform, provenance=provenance, recipe=recipe)
        except (ValueError, OSError) as error:
            self.window.show_error(f"Cannot save {path.name}", str(error))
            return None
        self.window.statusBar().showMessage(f"Saved transform {path}{recipe_warning}", 5000)
        return path

    def load_transform_dialog(self) -> None:
        """Load a transform saved earlier and make it the current one."""
        path, _ = QFileDialog.getOpenFileName(self.window, "Load transform", last_dir(), TRANSFORM_FILTER)
        if path:
            self.load_transform(path)

    def load_transform(self, path: str | Path) -> Transform | None:
        """Read a JSON or .tfm transform; a .tfm maps onto the current base image's grid."""
        from maskwork.operators.registration.transform import Transform

        path = Path(path)
        try:
            if path.suffix.lower() == ".tfm":
                shape = self.window.document.shape
                if shape is None:
                    raise ValueError("open the fixed image first: a .tfm has no image size")
                transform = Transform.load_tfm(path, shape, shape)
            else:
                transform = Transform.load(path)
        except (ValueError, OSError, KeyError) as error:
            self.window.show_error(f"Cannot load {path.name}", str(error))
            return None
        self.window.runner.last_transform = transform
        self.window.statusBar().showMessage(f"Loaded {transform.kind} transform from {path.name}", 5000)
        return transform

    def show_feature_matches(self) -> Layer | None:
        """Add the last feature registration's matches, drawn side by side, as an image layer."""
        runner = self.window.runner
        transform, inputs = runner.last_transform, runner.last_inputs
        if transform is None or "inliers_fixed" not in transform.parameters or "image2" not in inputs:
            self.window.show_error("No feature matches", "Apply a feature-based registration first.")
            return None
        from maskwork.operators.registration.features import match_overlay

        document = self.window.document
        overlay = match_overlay(inputs["image"], inputs["image2"], transform)
        layer = Layer(overlay, LayerKind.IMAGE, document.layers.unique_name("feature matches"))
        return document.add_layer(layer, step="Show feature matches")

    def apply_transform_to_selected(self) -> Layer | None:
        """Warp the selected layer with the current transform into a new layer (undoable)."""
        document = self.window.document
        transform = self.current_transform
        layer = document.layers.selected
        if transform is None or layer is None:
            self.window.show_error("Nothing to transform", "Select a layer and apply or load a registration first.")
            return None
        from maskwork.operators.registration.transform import warp_layer

        try:
            warped = warp_layer(layer.data, transform, layer.kind.value)
            result = Layer(
                warped,
                layer.kind,
                document.layers.unique_name(f"{layer.name} (aligned)"),
                opacity=layer.opacity,
                colormap=layer.colormap,
                metadata={**layer.metadata, "transform": transform},
            )
            return document.add_layer(result, step=f"Transform {layer.name}")
        except ValueError as error:
            # A transform warps onto the grid of the image it was made for; a mask or seeds
            # layer of another size than the document's image cannot join the document.
            rows, cols = transform.fixed_shape
            self.window.show_error(
                f"Cannot transform {layer.name}", f"{error} (the transform maps onto an image of {rows}x{cols})"
            )
            return None
