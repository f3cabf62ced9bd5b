"""File menu: open an image (or hand a project to the project actions), add one as a layer,
open a recent one, close the document."""

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
from maskwork.core.project import PROJECT_SUFFIX, is_project_file
from maskwork.widgets.workers import Worker, start_worker

if TYPE_CHECKING:
    from maskwork.app.main_window import MainWindow

IMAGE_PATTERNS = "*.png *.jpg *.jpeg *.bmp *.tif *.tiff *.webp *.nii *.nii.gz *.mha *.mhd *.nrrd *.nhdr"
IMAGE_FILTER = f"Images ({IMAGE_PATTERNS});;All files (*)"
#: File > Open takes images and projects.
OPEN_FILTER = f"Images and projects ({IMAGE_PATTERNS} *{PROJECT_SUFFIX});;{IMAGE_FILTER}"


def last_dir() -> str:
    """The folder file dialogs start in: that of the last file opened."""
    return str(settings().value("files/last_dir", str(Path.home())))


def _read(path: Path) -> list[np.ndarray] | Exception:
    """The pages of ``path``, or the error that says why it cannot be read."""
    try:
        return io.read_images(path)
    except (ValueError, OSError) as error:
        return error
    except Exception as error:  # a reader's own bug on a damaged file: the file still cannot be opened
        return ValueError(f"{type(error).__name__}: {error}")


def _image_layers(path: Path, pages: list[np.ndarray] | Exception) -> list[Layer] | Exception:
    """The image layers of the ``pages`` read from ``path``, or the error that says why
    they cannot be shown.

    Made before anything leaves the document: a file that reads but cannot become layers
    (complex numbers, a page of one dimension, no page at all) keeps the open one intact.
    """
    if isinstance(pages, Exception):
        return pages
    if not pages:
        return ValueError(f"{path.name} holds no image")
    layers = []
    for index, page in enumerate(pages):
        name = path.name if len(pages) == 1 else f"{path.name} [{index + 1}]"
        if page.dtype.kind not in "biuf":
            return ValueError(f"{name} holds {page.dtype} values; only real numbers can be shown")
        try:
            layers.append(Layer(page, LayerKind.IMAGE, name, metadata={"source": str(path)}))
        except ValueError as error:
            return ValueError(f"{name}: {error}")
    return layers


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

    opened = Signal(bool)
    """A file read in the background was shown (True), or could not be (False)."""

    added = Signal(bool)
    """An image read in the background was added as layers (True), or could not be (False)."""

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
        self._reader: Worker | None = None

    def open_dialog(self) -> None:
        """Ask for an image or a project and open it."""
        path, _ = QFileDialog.getOpenFileName(self.window, "Open", last_dir(), OPEN_FILTER)
        if path:
            self.open_paths([path], background=True)

    def add_image_dialog(self) -> None:
        """Ask for an image and add it as another layer."""
        path, _ = QFileDialog.getOpenFileName(self.window, "Add image as layer", last_dir(), IMAGE_FILTER)
        if path:
            self.add_image_layers(path, background=True)

    def open_paths(self, paths: list[str | Path], *, background: bool = False) -> bool:
        """Open the first file as a new document and add the others as layers; a project
        file (:data:`~maskwork.core.project.PROJECT_SUFFIX`) opens as the project.

        Parameters
        ----------
        paths : list of path
            The files; the first becomes the document.
        background : bool
            Read the files in a worker, so the window stays responsive while a large file
            loads; :attr:`opened` says how it ended. The menu, recent files and dropped
            files open this way; start-up and scripts read at once.

        Returns
        -------
        bool
            Without ``background``: whether the document now shows the file (False when
            the person kept the current document or the file is unreadable). With it:
            whether reading started.
        """
        if not paths:
            return False
        paths = [Path(path) for path in paths]
        project = next((path for path in paths if is_project_file(path)), None)
        if project is not None:
            # A project is a whole document: it opens alone, not as a layer of an image.
            left_out = [path.name for path in paths if path != project]
            if left_out:
                self.window.show_information("A project opens on its own",
                                             f"{project.name} opens alone; left out: {', '.join(left_out)}.")
            return self.window.projects.open_project(project, background=background)
        if not background:
            return self._show_opened(paths, [_read(path) for path in paths])
        self.window.statusBar().showMessage(f"Opening {paths[0].name}...")
        ticket = self.window.file_progress.begin(f"Opening {paths[0].name}")
        reader = start_worker(lambda worker: [_read(path) for path in paths], name=f"reading {paths[0].name}",
                              returned=lambda read: self._on_read(reader, ticket, paths, read))
        self._reader = reader
        return True

    def _on_read(self, reader: Worker, ticket: int, paths: list[Path], read: list) -> None:
        self.window.file_progress.end(ticket)
        if reader is not self._reader:
            return  # another file was chosen while this one loaded
        self._reader = None
        self.opened.emit(self._show_opened(paths, read))

    def _show_opened(self, paths: list[Path], read: list) -> bool:
        """Replace the document with the pages read from ``paths[0]``, others as layers."""
        window = self.window
        first = paths[0]
        layers = _image_layers(first, read[0])
        if isinstance(layers, Exception):
            window.show_error(f"Cannot open {first.name}", str(layers))
            return False
        if window.document.layers and not window.confirm_discard():
            window.statusBar().clearMessage()  # "Opening ..." would stay for good
            return False
        self.empty_document()
        self._add_layers(layers)
        for path, extra in zip(paths[1:], read[1:]):
            self._add_read(path, extra, undoable=False)
        window.document.history.clear()
        window.document.history.mark_saved()
        window.source_path = first
        self.remember_file(first)
        window.canvas.fit()
        window.update_title()
        shown = layers[0].data
        window.statusBar().showMessage(f"Opened {first.name}: {shown.shape[1]} x {shown.shape[0]}, {shown.dtype}", 5000)
        window.runner.prepare()  # e.g. Segment Anything encodes the new image before the first prompt
        return True

    def add_image_layers(self, path: str | Path, undoable: bool = True, *, background: bool = False) -> bool:
        """Add every page of ``path`` as an image layer (one undoable step).

        With ``background`` the file is read in a worker, as File > Open reads, and
        :attr:`added` says how it ended; the return value says whether reading started.
        """
        path = Path(path)
        if not background:
            return self._add_read(path, _read(path), undoable)
        ticket = self.window.file_progress.begin(f"Adding {path.name}")
        self.window.statusBar().showMessage(f"Adding {path.name}...")

        def read_done(pages) -> None:
            self.window.file_progress.end(ticket)
            self.added.emit(self._add_read(path, pages, undoable))

        start_worker(lambda worker: _read(path), returned=read_done, name=f"reading {path.name}")
        return True

    def _add_read(self, path: Path, pages, undoable: bool) -> bool:
        layers = _image_layers(path, pages)
        if isinstance(layers, Exception):
            self.window.show_error(f"Cannot open {path.name}", str(layers))
            return False
        with self.window.document.history.group(f"Add {path.name}"):
            self._add_layers(layers)
        if undoable:
            self.remember_file(path)
            pages = f"{len(layers)} layers" if len(layers) > 1 else "a layer"
            self.window.statusBar().showMessage(f"Added {path.name} as {pages}", 5000)
        return True

    def close_document(self) -> bool:
        """Close the image (asks first when there is unsaved work)."""
        window = self.window
        if window.document.layers and not window.confirm_discard():
            return False
        self.empty_document()
        window.source_path = None
        window.update_title()
        return True

    def fill_recent_menu(self) -> None:
        """List the recently opened files in Open recent (or say there are none)."""
        self.recent_menu.clear()
        self.recent_menu.setToolTipsVisible(True)
        files = recent_files()
        names = [Path(path).name for path in files]
        for path, name in zip(files, names):
            if names.count(name) > 1:  # two image.png of different folders
                name = f"{name}  ({Path(path).parent.name or Path(path).parent})"
            action = self.recent_menu.addAction(name.replace("&", "&&"))  # "R&D.png" is no mnemonic
            action.setToolTip(path)
            action.triggered.connect(lambda checked=False, p=path: self.open_paths([p], background=True))
        if not files:
            self.recent_menu.addAction("(none)").setEnabled(False)

    def empty_document(self) -> None:
        """Stop the operator and remove every layer, prompt and step (another document comes)."""
        self.window.runner.forget_document()
        self.window.document.reset()
        self.window.autosave.forget()  # saved or discarded: no recovery should offer it back
        self.document_replaced.emit()

    def _add_layers(self, layers: list[Layer]) -> None:
        document = self.window.document
        for layer in layers:
            layer.name = document.layers.unique_name(layer.name)
            document.add_layer(layer)
        # The first image stays the one operators work on.
        images = document.layers.of_kind(LayerKind.IMAGE)
        if images:
            document.layers.selected = images[0]

    @staticmethod
    def remember_file(path: Path) -> None:
        """Put ``path`` first in Open recent; file dialogs start in its folder from now on."""
        add_recent_file(path)
        store = settings()
        store.setValue("files/last_dir", str(path.resolve().parent))
        store.sync()
