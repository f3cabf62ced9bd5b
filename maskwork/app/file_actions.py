"""File menu: open an image, add one as a layer, open a recent one, close the document."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QFileDialog, QMenu

from maskwork.app.actions import window_action
from maskwork.app.settings import add_recent_file, recent_files, settings
from maskwork.core import io
from maskwork.core.layers import Layer, LayerKind

if TYPE_CHECKING:
    from maskwork.app.main_window import MainWindow

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp *.tif *.tiff *.webp *.nii *.nii.gz *.mha *.mhd *.nrrd *.nhdr);;All files (*)"


def last_dir() -> str:
    """The folder file dialogs start in: that of the last file opened."""
    return str(settings().value("files/last_dir", str(Path.home())))


class FileActions(QObject):
    """Open, Add image as layer, Open recent and Close of one window.

    Parameters
    ----------
    window : MainWindow
        The window whose document files replace or extend. Its ``source_path`` is set
        here; its messages, questions and title are used.
    """

    document_replaced = Signal()
    """The document was emptied to open another image or to close it."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.action_open = window_action(window, "&Open...", self.open_dialog, QKeySequence.StandardKey.Open, "Open an image")
        self.action_add_image = window_action(
            window, "&Add image as layer...", self.add_image_dialog, "Ctrl+Shift+O", "Add another image (e.g. a moving image) as a layer"
        )
        self.action_close = window_action(window, "&Close", self.close_document, QKeySequence.StandardKey.Close, "Close the image")
        self.recent_menu = QMenu("Open &recent", window)
        self.recent_menu.aboutToShow.connect(self.fill_recent_menu)

    def open_dialog(self) -> None:
        """Ask for an image and open it."""
        path, _ = QFileDialog.getOpenFileName(self.window, "Open image", last_dir(), IMAGE_FILTER)
        if path:
            self.open_paths([path])

    def add_image_dialog(self) -> None:
        """Ask for an image and add it as another layer."""
        path, _ = QFileDialog.getOpenFileName(self.window, "Add image as layer", last_dir(), IMAGE_FILTER)
        if path:
            self.add_image_layers(path)

    def open_paths(self, paths: list[str | Path]) -> bool:
        """Open the first file as a new document and add the others as layers.

        Returns False when the person kept the current document or the file is unreadable.
        """
        if not paths:
            return False
        window = self.window
        first = Path(paths[0])
        try:
            pages = io.read_images(first)
        except (ValueError, OSError) as error:
            window.show_error(f"Cannot open {first.name}", str(error))
            return False
        if window.document.layers and not window.confirm_discard():
            return False
        self._empty_document()
        self._add_pages(first, pages)
        for extra in paths[1:]:
            self.add_image_layers(extra, undoable=False)
        window.document.history.clear()
        window.document.history.mark_saved()
        window.source_path = first
        self._remember_file(first)
        window.canvas.fit()
        window.update_title()
        window.statusBar().showMessage(f"Opened {first.name}: {pages[0].shape[1]} x {pages[0].shape[0]}, {pages[0].dtype}", 5000)
        window.runner.prepare()  # e.g. Segment Anything encodes the new image before the first prompt
        return True

    def add_image_layers(self, path: str | Path, undoable: bool = True) -> bool:
        """Add every page of ``path`` as an image layer (one undoable step)."""
        path = Path(path)
        try:
            pages = io.read_images(path)
        except (ValueError, OSError) as error:
            self.window.show_error(f"Cannot open {path.name}", str(error))
            return False
        with self.window.document.history.group(f"Add {path.name}"):
            self._add_pages(path, pages)
        if not undoable:
            return True
        self._remember_file(path)
        return True

    def close_document(self) -> bool:
        """Close the image (asks first when there is unsaved work)."""
        window = self.window
        if window.document.layers and not window.confirm_discard():
            return False
        self._empty_document()
        window.source_path = None
        window.update_title()
        return True

    def fill_recent_menu(self) -> None:
        """List the recently opened files in Open recent (or say there are none)."""
        self.recent_menu.clear()
        files = recent_files()
        for path in files:
            action = self.recent_menu.addAction(Path(path).name)
            action.setToolTip(path)
            action.triggered.connect(lambda checked=False, p=path: self.open_paths([p]))
        if not files:
            self.recent_menu.addAction("(none)").setEnabled(False)

    def _empty_document(self) -> None:
        runner = self.window.runner
        runner.cancel()
        runner.clear_preview()
        self.window.document.reset()
        self.document_replaced.emit()

    def _add_pages(self, path: Path, pages: list[np.ndarray]) -> None:
        document = self.window.document
        for index, page in enumerate(pages):
            name = path.name if len(pages) == 1 else f"{path.name} [{index + 1}]"
            layer = Layer(page, LayerKind.IMAGE, document.layers.unique_name(name), metadata={"source": str(path)})
            document.add_layer(layer)
        # The first image stays the one operators work on.
        images = document.layers.of_kind(LayerKind.IMAGE)
        if images:
            document.layers.selected = images[0]

    @staticmethod
    def _remember_file(path: Path) -> None:
        add_recent_file(path)
        store = settings()
        store.setValue("files/last_dir", str(path.resolve().parent))
        store.sync()
