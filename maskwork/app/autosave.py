"""Autosave and crash recovery: no drawing is ever lost.

The document, its undo history and everything a project holds are written as a project
file (:mod:`maskwork.core.project`), in a worker and atomically, every few minutes (a
preference) and a few seconds after an Apply or a long stroke, if it changed since the
last autosave. A clean exit, a saved project and a discarded document delete the file (it
would offer older or unwanted work back); if it is there at the next start, the
previous session ended without closing and the window offers to restore it, undo and redo
included. Temporary files that a crash left half-written are removed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer, Signal

from maskwork.app.project_actions import capture_window, start_writing, wait_while
from maskwork.app.settings import config_dir, settings
from maskwork.core.io.files import lock_exclusively, unlock
from maskwork.core.project import PROJECT_SUFFIX, ProjectError, read_project, stale_temporary_files
from maskwork.widgets.preferences_dialog import AUTOSAVE_MINUTES_CHOICE
from maskwork.widgets.workers import Worker

if TYPE_CHECKING:
    from maskwork.app.main_window import MainWindow

#: Recovery files are ``recovery-<process id>.maskwork``, each process's own, held with a
#: lock on ``recovery-<process id>.lock`` while the process runs: two maskwork windows in
#: two processes overwrote one file, and the first to quit deleted the other's.
RECOVERY_PREFIX = "recovery"
#: An unreadable recovery file is renamed to start with this, out of the files offered.
DAMAGED_PREFIX = "damaged-"
#: Minutes between autosaves unless the person chose otherwise (Edit > Preferences).
DEFAULT_INTERVAL_MINUTES = 1
#: Quiet time after an Apply or a long stroke before the document is autosaved: that work
#: is worth more than the minutes the timer would wait.
AFTER_WORK_MS = 2_000
#: A step of this many edits is a long stroke (a brush records one per mouse move, about
#: half a second of drawing).
LONG_STROKE_EDITS = 40


def recovery_path(folder: Path, process: int | str | None = None) -> Path:
    """The recovery file of ``process`` (an id; this process's by default) inside ``folder``."""
    return folder / f"{RECOVERY_PREFIX}-{os.getpid() if process is None else process}{PROJECT_SUFFIX}"


#: Lock files this process holds (its windows share its recovery file).
_HELD_HERE: set[str] = set()


def _lock_path(recovery: Path) -> Path:
    return recovery.with_suffix(".lock")


def _delete_file(path: Path) -> None:
    """Delete ``path`` if it is there; a folder that cannot be written (or is no folder)
    keeps it, and autosave goes on (its writes say what is wrong)."""
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)


def _left_by_ended_processes(folder: Path, own: Path) -> list[Path]:
    """The recovery files in ``folder`` whose process has ended (its lock is free; no lock:
    a file of a maskwork before process locks), and this process's own, newest first."""
    found = [path for path in folder.glob(f"{RECOVERY_PREFIX}*{PROJECT_SUFFIX}")
             if path == own or _process_ended(path)]
    return sorted(found, key=lambda path: path.stat().st_mtime, reverse=True)


def _process_ended(recovery: Path) -> bool:
    """Whether the process that wrote ``recovery`` has ended: its lock is free, or there
    is none (a maskwork before process locks). Unknown (the lock cannot be read) counts as
    running: its work is neither offered nor deleted."""
    lock = _lock_path(recovery)
    if str(lock) in _HELD_HERE:
        return False
    if not lock.exists():
        return True
    try:
        with open(lock, "rb") as handle:  # reading is enough to lock, and a read-only folder allows it
            try:
                lock_exclusively(handle)
            finally:
                unlock(handle)
    except OSError:
        return False
    return True


def _remove_what_ended_processes_left(folder: Path, own: Path) -> None:
    """Delete the half-written recovery files and the lock files of ended processes that
    left no recovery file (a crash in its first write): no later process has their id,
    and nothing else would ever remove them."""
    for lock in folder.glob(f"{RECOVERY_PREFIX}*.lock"):
        recovery = lock.with_suffix(PROJECT_SUFFIX)
        if recovery != own and not recovery.exists() and _process_ended(recovery):
            for stale in stale_temporary_files(recovery):
                _delete_file(stale)
            _delete_file(lock)


def stored_interval_minutes() -> int:
    """The autosave interval of the settings, within the choices Edit > Preferences offers."""
    try:
        minutes = int(settings().value("autosave/interval_minutes", DEFAULT_INTERVAL_MINUTES))
    except (TypeError, ValueError):  # a settings file from another version
        minutes = DEFAULT_INTERVAL_MINUTES
    low, high = AUTOSAVE_MINUTES_CHOICE
    return max(low, min(high, minutes))


class Autosave(QObject):
    """The window's autosave timer, its recovery file and the offer to restore it.

    Parameters
    ----------
    window : MainWindow
        The window whose document is saved; its runner's Applies and its history's long
        strokes bring the next autosave forward.
    """

    written = Signal(object)
    """An autosave finished: the recovery file's path."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window = window
        self._timer = QTimer(self)
        self._timer.timeout.connect(self.save_now)
        self.set_interval_minutes(stored_interval_minutes())
        self._soon = QTimer(self)
        self._soon.setSingleShot(True)
        self._soon.setInterval(AFTER_WORK_MS)
        self._soon.timeout.connect(self.save_now)
        window.runner.applied.connect(lambda layers: self._soon.start())
        window.document.history.changed.connect(self._after_long_stroke)
        self._saved_state: object = None
        self._writer: Worker | None = None
        self._forget_when_written = False
        self._recovering = False
        self._lock_handle = None  # of this process's recovery file, from its first write
        self._process_name: str | None = None  # the process id, unless another process has it

    @property
    def path(self) -> Path:
        """Where autosave writes the document (this process's own recovery file)."""
        return recovery_path(config_dir(), self._process_name)

    def _hold_lock(self) -> None:
        """Hold the lock that tells other maskwork processes this recovery file's process
        runs (another window of this process may hold it already: the file is theirs too).

        A lock held elsewhere means another process has this id (a Flatpak or a container
        sharing the settings folder): this process then takes a name of its own. A
        folder that cannot be written is left to the write, which says so.
        """
        lock = _lock_path(self.path)
        if self._lock_handle is not None and self._lock_handle.name == str(lock) or str(lock) in _HELD_HERE:
            return
        self._release_lock()
        try:
            lock.parent.mkdir(parents=True, exist_ok=True)
            handle = open(lock, "a+b")
        except OSError:
            return
        try:
            lock_exclusively(handle)
        except OSError:
            handle.close()
            self._process_name = f"{os.getpid()}-{secrets.token_hex(4)}"
            self._hold_lock()
            return
        self._lock_handle = handle
        _HELD_HERE.add(str(lock))

    def _release_lock(self) -> None:
        if self._lock_handle is not None:
            unlock(self._lock_handle)
            self._lock_handle.close()
            _delete_file(Path(self._lock_handle.name))
            _HELD_HERE.discard(self._lock_handle.name)
            self._lock_handle = None

    @property
    def interval_minutes(self) -> int:
        """Minutes between two autosaves."""
        return self._timer.interval() // 60_000

    def set_interval_minutes(self, minutes: int) -> None:
        """Autosave every ``minutes`` minutes from now on."""
        self._timer.start(int(minutes) * 60_000)

    def _state(self) -> tuple:
        # Steps keep their identity through undo and redo; names and sizes do not tell
        # a new dot from the undone one it replaced.
        applied, undone = self.window.document.history.steps
        return tuple(step.uid for step in applied), tuple(step.uid for step in undone)

    def save_now(self) -> bool:
        """Start writing the recovery file if the document changed since the last autosave.

        Returns whether a write started; :attr:`written` says when it is done. A write that
        fails (a full disk) says so in the status bar and the next autosave tries again.
        """
        document = self.window.document
        state = self._state()
        if not document.layers or not document.history.is_modified or state == self._saved_state or self._writer:
            return False
        project = capture_window(self.window)
        self._hold_lock()
        self._writer = start_writing(project, self.path, returned=lambda path: self._on_written(state, path),
                                     errored=self._on_failed, finished=self._on_finished)
        return True

    def forget(self) -> None:
        """The document as it is now was saved or discarded: drop the recovery file (once
        a write under way has ended). Left there, a crash offered back work older than the
        saved project (and Save then wrote it over the project) or work thrown away."""
        if self._recovering:
            return  # the recovery file being restored: it goes once the work is back
        self._soon.stop()
        self._saved_state = None
        if self._writer is not None:
            self._forget_when_written = True
        else:
            _delete_file(self.path)

    def _on_written(self, state: tuple, path: Path) -> None:
        if not self._forget_when_written:  # else it goes when the writer has finished
            self._saved_state = state
            self.written.emit(path)

    def _on_failed(self, error: Exception) -> None:
        self.window.statusBar().showMessage(f"Autosave failed: {error}", 8000)

    def _on_finished(self) -> None:
        self._writer = None
        if self._forget_when_written:  # written, failed or not: the file is not wanted
            self._forget_when_written = False
            _delete_file(self.path)

    def _after_long_stroke(self) -> None:
        applied, _ = self.window.document.history.steps
        if applied and applied[-1].edits >= LONG_STROKE_EDITS:
            self._soon.start()

    def offer_recovery(self) -> bool:
        """If a session crashed, offer to restore its autosaved document (with its undo
        history): the newest recovery file no running maskwork holds."""
        _remove_what_ended_processes_left(self.path.parent, self.path)
        left = _left_by_ended_processes(self.path.parent, self.path)
        for path in left:
            for stale in stale_temporary_files(path):  # writes a crash cut short
                _delete_file(stale)
        if not left:
            return False
        path, window = left[0], self.window
        question = "maskwork did not close properly last time. Restore the autosaved document?"
        if len(left) > 1:  # a window holds one document: the others wait for the next starts
            older = "1 older one is" if len(left) == 2 else f"{len(left) - 1} older ones are"
            question = (f"maskwork did not close properly {len(left)} times. Restore the newest autosaved "
                        f"document? ({older} kept and offered one at each start.)")
        if not window.ask("Restore unsaved work?", question):
            self._delete(path)
            return False
        try:
            project = read_project(path)
        except (ProjectError, OSError) as error:
            kept = self._set_aside(path)
            where = f"\n\nIt was kept as {kept}." if kept is not None else ""
            window.show_error("Cannot restore the autosaved document", f"{error}{where}")
            return False
        self._recovering = True
        try:
            restored = window.projects.show_project(None, project, recovered=True)
        finally:
            self._recovering = False
        if restored and path != self.path:
            self._delete(path)
            self._soon.start()  # into this process's own file, soon
        return restored

    def _set_aside(self, path: Path) -> Path | None:
        """Rename an unreadable recovery file out of the way so that it is not offered at
        every start; the person may still want to send it to someone. None if it could
        not be renamed (it is deleted then, with its lock)."""
        try:
            aside = path.with_name(f"{DAMAGED_PREFIX}{path.stem}-{int(path.stat().st_mtime)}{PROJECT_SUFFIX}")
            os.replace(path, aside)
        except OSError:
            self._delete(path)
            return None
        if path != self.path:
            _delete_file(_lock_path(path))
        return aside

    def _delete(self, path: Path) -> None:
        """Delete a recovery file, and the lock file of an ended process's."""
        _delete_file(path)
        if path != self.path:
            _delete_file(_lock_path(path))

    def stop(self) -> None:
        """A clean exit: no more autosaves, and the recovery file goes once a write under way ended."""
        self._timer.stop()
        self._soon.stop()
        wait_while(lambda: self._writer is not None)
        _delete_file(self.path)
        self._release_lock()
