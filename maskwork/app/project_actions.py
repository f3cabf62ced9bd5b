"""File > Save, Save As and Open project: the whole session in one ``.maskwork`` file.

The window's state is captured on the UI thread (:func:`capture_window`, which lends,
rather than copies, what paint tools may still change) and written by a worker, so the person goes on
working while a large project is saved; the file appears at once and complete (a
temporary file, then a rename). The format is described in :mod:`maskwork.core.project`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

from PySide6.QtCore import QCoreApplication, QEventLoop, QObject, QTimer, Signal
from PySide6.QtGui import QKeySequence
from PySide6.QtWidgets import QFileDialog, QProgressBar

from maskwork.app.actions import window_action
from maskwork.app.file_actions import last_dir
from maskwork.core.project import (
    HISTORY_LIMIT_BYTES,
    PROJECT_SUFFIX,
    Project,
    ProjectError,
    capture,
    prepared_restore,
    read_project,
    write_project,
)
from maskwork.operators import InputError, get
from maskwork.widgets.workers import Worker, start_worker

if TYPE_CHECKING:
    from maskwork.app.main_window import MainWindow

PROJECT_FILTER = f"maskwork projects (*{PROJECT_SUFFIX})"
#: A save or an open shorter than this never shows its progress bar, which would only flicker.
SHOW_PROGRESS_AFTER_MS = 250


def capture_window(window: MainWindow, history_limit: int = HISTORY_LIMIT_BYTES) -> Project:
    """The window's document, prompts, history, operator, parameters and recorded Applies."""
    runner, recorder = window.runner, window.recipes.recorder
    recording = []
    for step in recorder.steps:
        outputs = [layer for group in step.outputs.values() for layer in group]
        recording.append({
            "operator": step.operator,
            "params": step.params,
            "inputs": step.inputs,
            "sources": step.sources,
            "outputs": outputs,
            "digests": [recorder.output_digest(layer) for layer in outputs],
        })
    project = capture(
        window.document,
        source=str(window.source_path) if window.source_path else None,
        saved_as=str(window.projects.path) if window.projects.path else None,
        operator=runner.spec.id if runner.spec is not None else None,
        parameters=runner.params,
        recording=recording,
        history_limit=history_limit,
    )
    _keep_transforms(window.document.layers, project)
    return project


#: Key of a registration's transform in a layer's metadata (runner.py puts it there).
TRANSFORM_METADATA = "transform"
#: Key, in a layer's metadata in a project, of the array holding its transform's dense map.
TRANSFORM_MAP = "transform_map"


def _keep_transforms(layers, project: Project) -> None:
    """Add the dense map of each layer's deformable registration transform to ``project``.

    A project's metadata holds JSON: a transform is kept as its own JSON (``to_json``;
    it became its text before, which Export transform and Apply transform to layer then
    failed on), and a B-spline's or Demons' map, which JSON does not hold, as an array.
    Layers only the history holds (deleted ones) keep the JSON without the map.
    """
    for index, (layer, info) in enumerate(zip(layers, project.manifest["layers"])):
        transform = layer.metadata.get(TRANSFORM_METADATA)
        if getattr(transform, "backward_map", None) is not None:
            info["metadata"][TRANSFORM_MAP] = name = f"transform_map{index}"
            project.arrays[name] = transform.backward_map


def _restore_transforms(document, project: Project) -> None:
    """The transforms of the document's layers, and of those its history holds, back as
    Transform objects (:func:`_keep_transforms`)."""
    from maskwork.operators.registration.transform import Transform

    applied, undone = document.history.steps
    held = [atom.layer for step in (*applied, *undone) for atom in step.atoms if hasattr(atom, "layer")]
    for layer in {id(layer): layer for layer in (*document.layers, *held)}.values():
        described = layer.metadata.get(TRANSFORM_METADATA)
        if not isinstance(described, dict):
            continue
        backward_map = project.arrays.get(layer.metadata.pop(TRANSFORM_MAP, None) or "")
        try:
            layer.metadata[TRANSFORM_METADATA] = Transform.from_json(described, backward_map)
        except (ValueError, TypeError):
            del layer.metadata[TRANSFORM_METADATA]  # damaged: the layer stays, without it


def start_writing(project: Project, path: Path, *, returned: Callable, errored: Callable, finished: Callable) -> Worker:
    """Write ``project`` to ``path`` in a worker; its ``progress`` signal reports the fraction written.

    The write does not stop when the worker is asked to quit: a half-written project is
    worth nothing, and the file only appears once complete.
    """
    def write(worker: Worker) -> Path:
        try:
            return write_project(project, path, lambda done: worker.progress.emit(done, ""))
        finally:
            project.give_back()

    return start_worker(write, returned=returned, errored=errored, finished=finished, name=f"writing {path.name}")


def wait_while(busy: Callable[[], bool]) -> None:
    """Handle events (the window stays drawn) until ``busy()`` is False: a worker's slot,
    which arrives as an event, says it ended."""
    while busy():
        QCoreApplication.processEvents(QEventLoop.ProcessEventsFlag.WaitForMoreEvents)


class ProjectActions(QObject):
    """Save, Save As and Open project of one window, and the bar that shows a save's progress.

    Parameters
    ----------
    window : MainWindow
        The window whose document is saved and replaced. Its title shows :attr:`path`.
    """

    saved = Signal(object)
    """A save finished: the project file's path."""

    opened = Signal(bool)
    """A project read in the background was shown (True), or could not be (False)."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self.path: Path | None = None
        self.action_save = window_action(window, "&Save project", self.save, QKeySequence.StandardKey.Save,
                                         "Save every layer, prompt, parameter and the undo history in one file")
        self.action_save_as = window_action(window, "Save project &as...", self.save_as_dialog, "Ctrl+Shift+S",
                                            "Save the project to a new file")
        self.action_open_project = window_action(window, "Open &project...", self.open_dialog, None,
                                                 f"Open a maskwork project ({PROJECT_SUFFIX})")
        self.progress_bar = QProgressBar()
        self.progress_bar.setObjectName("projectProgressBar")
        self.progress_bar.setRange(0, 1000)
        self.progress_bar.setMaximumWidth(160)
        self.progress_bar.setVisible(False)
        self._show_progress = QTimer(self)
        self._show_progress.setSingleShot(True)
        self._show_progress.setInterval(SHOW_PROGRESS_AFTER_MS)
        self._show_progress.timeout.connect(lambda: self.progress_bar.setVisible(True))
        self._writer: Worker | None = None
        self._reader: Worker | None = None
        self._last_save_ok = False
        # Counts the documents this window showed, so that a save ending after another
        # image was opened does not make its file the new document's.
        self._document_number = 0

    # -- saving -------------------------------------------------------------------------
    def save(self, wait: bool = False) -> bool:
        """Save to the project's file, asking for one first when there is none.

        Parameters
        ----------
        wait : bool
            Return only when the file is written (closing the window waits), the window
            disabled meanwhile so nothing changes; otherwise the save goes on while the
            person works.

        Returns
        -------
        bool
            With ``wait``: whether the file was written. Without: whether the save started.
        """
        if self.path is None:
            return self.save_as_dialog(wait)
        return self.save_to(self.path, wait)

    def save_as_dialog(self, wait: bool = False) -> bool:
        """Ask for a project file name, then save there (see :meth:`save`)."""
        if not self.window.document.layers:
            self._say_nothing_to_save()
            return False
        start = self.path or Path(last_dir()) / f"{self.window.source_path.stem if self.window.source_path else 'untitled'}{PROJECT_SUFFIX}"
        path, _ = QFileDialog.getSaveFileName(self.window, "Save project", str(start), PROJECT_FILTER)
        if not path:
            return False
        path = Path(path)
        if path.suffix.lower() != PROJECT_SUFFIX:
            path = path.with_name(path.name + PROJECT_SUFFIX)
            # The dialog asked about "work", not the "work.maskwork" it becomes.
            if path.exists() and path != self.path and not self.window.ask(
                    "Replace project?", f"{path.name} already exists in {path.parent}. Replace it?"):
                return False
        return self.save_to(path, wait)

    def _say_nothing_to_save(self) -> None:
        self.window.show_error("Nothing to save", "Open an image first.")

    def save_to(self, path: str | Path, wait: bool = False) -> bool:
        """Save the project to ``path`` (see :meth:`save`); it becomes the project's file."""
        window = self.window
        if not window.document.layers:
            self._say_nothing_to_save()
            return False
        self.wait_for_writes()  # one save at a time: the second one writes the newer state
        path = Path(path)
        history = window.document.history
        applied, _ = history.steps
        saved_step = applied[-1].uid if applied else None
        project = capture_window(window)
        window.statusBar().showMessage(f"Saving {path.name}...")
        self.progress_bar.setValue(0)
        self._show_progress.start()
        self._last_save_ok = False
        number = self._document_number
        writer = start_writing(project, path, returned=lambda written: self._on_saved(written, saved_step, number),
                               errored=lambda error: self._on_save_failed(path, error),
                               finished=lambda: self._on_writer_finished(writer))
        writer.progress.connect(lambda done, text: self.progress_bar.setValue(int(done * 1000)))
        self._writer = writer
        if wait:
            window.setEnabled(False)
            try:
                self.wait_for_writes()
            finally:
                window.setEnabled(True)
            return self._last_save_ok
        return True

    def _on_writer_finished(self, writer: Worker) -> None:
        if writer is self._writer:
            self._writer = None
            self._show_progress.stop()
            self.progress_bar.setVisible(False)

    def _on_saved(self, path: Path, saved_step: int | None, document_number: int) -> None:
        window = self.window
        self._last_save_ok = True
        window.files.remember_file(path)
        window.statusBar().showMessage(f"Saved {path.name}", 5000)
        if document_number == self._document_number:  # else the window shows another document by now
            self.path = path
            applied, _ = window.document.history.steps
            if (applied[-1].uid if applied else None) == saved_step:
                window.document.history.mark_saved()  # else it changed while it was written
                window.autosave.forget()  # it would offer older work back, and Save write it here
            window.update_title()
        self.saved.emit(path)

    def _on_save_failed(self, path: Path, error: Exception) -> None:
        self.window.show_error(f"Cannot save {path.name}", str(error))

    def wait_for_writes(self) -> None:
        """Return once the save under way, if any, has finished (before the window closes)."""
        wait_while(lambda: self._writer is not None)

    def forget_path(self) -> None:
        """The document was replaced or closed: the next Save asks for a file name."""
        self.path = None
        self._document_number += 1

    # -- opening ------------------------------------------------------------------------
    def open_dialog(self) -> None:
        """Ask for a project file and open it."""
        path, _ = QFileDialog.getOpenFileName(self.window, "Open project", last_dir(), PROJECT_FILTER)
        if path:
            self.open_project(path, background=True)

    def open_project(self, path: str | Path, *, background: bool = False) -> bool:
        """Replace the document by the project at ``path`` (asks first if there is unsaved work).

        Parameters
        ----------
        path : path
            A ``.maskwork`` file.
        background : bool
            Read it in a worker (the menu, recent files and dropped files do); :attr:`opened`
            says how it ended. Otherwise it is read at once.

        Returns
        -------
        bool
            Without ``background``: whether the window now shows the project. With it:
            whether reading started.
        """
        path = Path(path)
        if not background:
            return self.show_project(path, _read(path))
        self.window.statusBar().showMessage(f"Opening {path.name}...")
        self.progress_bar.setValue(0)
        self._show_progress.start()
        reader = start_worker(lambda worker: _read(path, lambda done: worker.progress.emit(done, "")),
                              returned=lambda project: self._on_read(reader, path, project), name=f"reading {path.name}")
        reader.progress.connect(lambda done, text: self.progress_bar.setValue(int(done * 1000)))
        self._reader = reader
        return True

    def _on_read(self, reader: Worker, path: Path, project: Project | Exception) -> None:
        if reader is not self._reader:
            return  # another project was chosen while this one loaded
        self._reader = None
        self._show_progress.stop()
        self.progress_bar.setVisible(False)
        self.opened.emit(self.show_project(path, project))

    def show_project(self, path: Path | None, project: Project | Exception, recovered: bool = False) -> bool:
        """Replace the document by ``project`` read from ``path``.

        Parameters
        ----------
        path : Path or None
            The project file, which becomes the one Save writes; None for a project that is
            no file of the person's (crash recovery): Save then writes to the project file
            the session had, if any.
        project : Project or Exception
            What was read, or why it could not be.
        recovered : bool
            The project is restored work that was never saved: it is marked unsaved.
        """
        window = self.window
        name = path.name if path is not None else "the autosaved document"
        if isinstance(project, Exception):
            window.show_error(f"Cannot open {name}", str(project))
            return False
        if window.document.layers and not window.confirm_discard():
            window.statusBar().clearMessage()  # "Opening ..." would stay for good
            return False
        try:
            # Checked before the open document goes: a damaged project left an empty one.
            commit = prepared_restore(project, window.document)
        except ProjectError as error:
            window.show_error(f"Cannot open {name}", str(error))
            return False
        window.files.empty_document()
        restored = commit()
        _restore_transforms(window.document, project)
        window.source_path = Path(restored.source) if restored.source else None
        self.path = path or (Path(restored.saved_as) if restored.saved_as else None)
        self._restore_recording(restored.recording)
        self._restore_operator(restored.operator, restored.parameters)
        if recovered:
            window.document.history.mark_unsaved()
        if path is not None:
            self.window.files.remember_file(path)
        window.canvas.fit()
        window.update_title()
        history = window.document.history
        dropped = f" ({restored.dropped_steps} oldest steps were not saved)" if restored.dropped_steps else ""
        window.statusBar().showMessage(
            f"Opened {name}: {len(window.document.layers)} layers, {len(history.undo_names)} steps to undo{dropped}", 8000
        )
        window.runner.prepare()
        return True

    def _restore_recording(self, recording: list) -> None:
        """Give the recipe recorder back the Applies whose result layers the project holds."""
        recorder = self.window.recipes.recorder
        recorder.reset()
        for step in recording:
            if any(layer is None for layer in step["outputs"]):
                continue  # its results were neither in the document nor in the kept history
            sources = {name: layer for name, layer in step["sources"].items() if layer is not None}
            recorder.record(step["operator"], step["params"], step["inputs"], sources, step["outputs"], step["digests"])

    def _restore_operator(self, operator: str | None, parameters: dict) -> None:
        if operator is None:
            return
        try:
            spec = get(operator)
        except InputError:  # an operator this version no longer has
            self.window.statusBar().showMessage(f"The project's operator {operator!r} is not available", 8000)
            return
        self.window.choose_operator(spec, parameters)


def _read(path: Path, progress: Callable[[float], None] | None = None) -> Project | Exception:
    """The project at ``path``, or the error that says why it cannot be read."""
    try:
        return read_project(path, progress)
    except (ProjectError, OSError) as error:
        return error
