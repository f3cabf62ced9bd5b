"""File > Export recipe: every Apply recorded as a step to replay with ``maskwork batch``."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QFileDialog

from maskwork.app.actions import window_action
from maskwork.app.file_actions import last_dir
from maskwork.app.recording import RecipeRecorder
from maskwork.core.layers import Layer, LayerKind
from maskwork.pipeline.recipe import Recipe
from maskwork.pipeline.script import to_python

if TYPE_CHECKING:
    from maskwork.app.main_window import MainWindow


class RecipeActions(QObject):
    """Records the window's Applies and exports them as a recipe.

    Parameters
    ----------
    window : MainWindow
        The window whose runner's results are recorded; its messages are used.
    """

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.recorder = RecipeRecorder()
        self.action_export_recipe = window_action(
            window,
            "Export &recipe (JSON + Python)...",
            self.export_recipe_dialog,
            None,
            "Save the applied steps to replay on other images with maskwork batch",
        )

    def record(self, layers: list) -> None:
        """Record the Apply that made ``layers`` (the runner's ``applied`` signal)."""
        if layers:
            metadata = layers[0].metadata
            runner = self.window.runner
            self.recorder.record(metadata["operator"], metadata["parameters"], runner.last_inputs, runner.last_sources, layers,
                                 runner.last_digests)

    def reset(self) -> None:
        """Forget every recorded step (another document), and their full-size input snapshots."""
        self.recorder.reset()

    def current_recipe(self) -> Recipe:
        """The recipe of the Applies whose results are still in the document."""
        return self.recorder.recipe(self.window.document.layers, self.opened_image())

    def opened_image(self) -> Layer | None:
        """The image layer the session opened (the one a batch replaces by each of its
        files): the first page read from the window's source file, else the bottom image.

        Not the selected image: after an Apply that makes an image (CLAHE, an inpainted
        fill) that is the result, and the photo itself became a seed array, which a
        batch then returned for every file it was given.
        """
        images = self.window.document.layers.of_kind(LayerKind.IMAGE)
        source = self.window.source_path
        opened = next((layer for layer in images if source is not None
                       and layer.metadata.get("source") == str(source)), None)
        return opened or (images[0] if images else None)

    def recipe_for_sidecar(self, path: str | Path) -> tuple[dict | None, str]:
        """The recipe to embed in the sidecar of an export to ``path`` (or None), and a
        warning when it had to be left out.

        A recipe that cannot be written (an output renamed to a reserved name, a seed
        folder that cannot be made) never blocks the export itself.
        """
        try:
            recipe = self.current_recipe()
            return (recipe.embed(path) if recipe.steps else None), ""
        except (ValueError, OSError) as error:  # InputError is a ValueError
            return None, f" (without its recipe: {error})"

    def export_recipe_dialog(self) -> None:
        """Ask where to save the recipe, then save it (first saying so when there is none)."""
        try:
            empty = not self.current_recipe().steps
        except ValueError:  # a step that no longer fits: export_recipe says so
            empty = False
        if empty:
            self._say_no_recipe()
            return
        source = self.window.source_path
        stem = source.stem if source else "recipe"
        path, _ = QFileDialog.getSaveFileName(
            self.window, "Export recipe", str(Path(last_dir()) / f"{stem}_recipe.json"), "Recipes (*.json)"
        )
        if path:
            self.export_recipe(path)

    def _say_no_recipe(self) -> None:
        self.window.show_error("No recipe yet", "Apply an operator first: every Apply is recorded as a recipe step.")

    def export_recipe(self, path: str | Path) -> Path | None:
        """Write the recipe as JSON (seed files beside it) and as a Python script (``.py``).

        Returns
        -------
        Path or None
            The JSON file, or None when nothing was applied yet or writing failed.
        """
        try:
            recipe = self.current_recipe()
            if not recipe.steps:
                self._say_no_recipe()
                return None
            written = recipe.save(path)
            script = written.with_suffix(".py")
            script.write_text(to_python(recipe), encoding="utf-8")
        except (ValueError, OSError) as error:
            self.window.show_error(f"Cannot export {Path(path).name}", str(error))
            return None
        self.window.statusBar().showMessage(
            f"Recipe of {len(recipe.steps)} steps: {written.name} and {script.name}; "
            f"replay with: maskwork batch {written.name} IMAGES... -o OUTDIR",
            8000,
        )
        return written
