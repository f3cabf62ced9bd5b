"""Deep learning > Models...: see, download, import and remove the pretrained models.

The table lists every catalogue model with its task, size, licence and state. Download
runs :func:`maskwork.core.models.download_model` in a background :class:`Worker` (one
download at a time) whose progress shows as a bar with bytes and rate; Cancel stops it
and keeps what arrived, so the next Download resumes. The dialog is not modal: a person
can close it and keep working while a download goes on, and open it again to see where
it stands. Import file... copies a file the person has (a machine without internet) into
the cache after its hash check, in a worker too, since hashing gigabytes takes seconds.
"""

from __future__ import annotations

import os

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QProgressBar,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from maskwork.core import models
from maskwork.widgets.workers import Worker, start_worker

#: Table columns, in order.
COLUMNS = ("Model", "Task", "Size", "Licence", "State")
#: Steps of the progress bar (its range), fine enough for a smooth bar.
PROGRESS_STEPS = 1000


def progress_text(progress: models.Progress) -> str:
    """``138.8 MB of 375.0 MB, 12.4 MB/s`` while downloading; ``checking ...`` after."""
    done, total = models.human_bytes(progress.done_bytes), models.human_bytes(progress.total_bytes)
    if progress.stage == "verifying":
        return f"checking the file's hash: {done} of {total}"
    return f"{done} of {total}, {models.human_bytes(round(progress.bytes_per_second))}/s"


class ModelsDialog(QDialog):
    """The model manager's window.

    Signals
    -------
    models_changed
        A model was installed or removed (operators' model lists may refresh).
    """

    models_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Models")
        self.setObjectName("modelsDialog")
        self.resize(1000, 520)
        #: The download or import running, and the model it is for.
        self.worker: Worker | None = None
        self.busy_name: str | None = None

        self.folder_label = QLabel(self)
        self.folder_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.folder_label.setWordWrap(True)

        self.table = QTableWidget(0, len(COLUMNS), self)
        self.table.setObjectName("modelsTable")
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(COLUMNS.index("Task"), QHeaderView.ResizeMode.Stretch)
        self.table.itemSelectionChanged.connect(self._update_buttons)

        self.download_button = QPushButton("&Download", self)
        self.remove_button = QPushButton("&Remove", self)
        self.import_button = QPushButton("&Import file...", self)
        self.cancel_button = QPushButton("&Cancel download", self)
        self.download_button.clicked.connect(lambda: self.download(self.selected_name()))
        self.remove_button.clicked.connect(lambda: self.remove(self.selected_name()))
        self.import_button.clicked.connect(self._choose_import_file)
        self.cancel_button.clicked.connect(self.cancel)
        self.download_button.setToolTip("Download the selected model from its publisher (resumes an interrupted download)")
        self.import_button.setToolTip("Copy a model file you already have into the cache (for machines without internet); its hash is checked")

        self.progress_bar = QProgressBar(self)
        self.progress_bar.setRange(0, PROGRESS_STEPS)
        self.progress_label = QLabel(self)
        self.status_label = QLabel(self)
        self.status_label.setObjectName("modelsStatus")
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        buttons = QHBoxLayout()
        for button in (self.download_button, self.remove_button, self.import_button, self.cancel_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.progress_bar, 1)
        progress_row.addWidget(self.progress_label, 1)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, self)
        close.rejected.connect(self.hide)

        layout = QVBoxLayout(self)
        layout.addWidget(self.folder_label)
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        layout.addLayout(progress_row)
        layout.addWidget(self.status_label)
        layout.addWidget(close)
        self.refresh()

    # ------------------------------------------------------------------ table

    def refresh(self) -> None:
        """Fill the table from the catalogue and the cache, keeping the selection."""
        selected = self.selected_name()
        entries = models.catalogue()
        self.folder_label.setText(
            f"Models are kept in {models.models_folder()} (the environment variable "
            f"{models.MODELS_FOLDER_VARIABLE} moves it). Operators take a model's name wherever they take a model file."
        )
        self.table.setRowCount(len(entries))
        for row, entry in enumerate(entries):
            state = "downloading..." if entry.name == self.busy_name else models.state_text(entry)
            cells = (entry.name, entry.task, models.human_bytes(entry.size_bytes), entry.licence, state)
            for column, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setToolTip(f"{entry.url}\nhashes: {', '.join(entry.hashes) or 'none known'}\n({entry.hash_source})")
                if column == COLUMNS.index("Size"):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, column, item)
            if entry.name == selected:
                self.table.selectRow(row)
        if self.selected_name() is None and entries:
            self.table.selectRow(0)
        self._update_buttons()

    def selected_name(self) -> str | None:
        """The name of the model selected in the table (None when none is)."""
        rows = self.table.selectionModel().selectedRows()
        return self.table.item(rows[0].row(), 0).text() if rows else None

    def _update_buttons(self) -> None:
        name = self.selected_name()
        busy = self.worker is not None
        installed = name is not None and models.is_installed(name)
        self.download_button.setEnabled(name is not None and not installed and not busy)
        self.import_button.setEnabled(name is not None and not installed and not busy)
        self.remove_button.setEnabled(name is not None and name != self.busy_name
                                      and (installed or models.partial_bytes(models.model_entry(name)) > 0))
        self.cancel_button.setEnabled(busy)
        self.progress_bar.setVisible(busy)
        self.progress_label.setVisible(busy)

    # ------------------------------------------------------------------ actions

    def download(self, name: str | None) -> None:
        """Download model ``name`` in a background worker."""
        if name is None or self.worker is not None:
            return

        def fetch(worker: Worker):
            def report(progress: models.Progress) -> None:
                fraction = progress.fraction
                worker.progress.emit(-1.0 if fraction is None else fraction, progress_text(progress))

            return models.download_model(name, progress=report, cancel=worker.cancel_event)

        self._start(name, fetch, f"Downloading {name}...")

    def import_file(self, name: str, path: str | os.PathLike) -> None:
        """Copy ``path`` into the cache as model ``name`` (hash-checked) in a background worker."""
        if self.worker is not None:
            return

        def copy(worker: Worker):
            def report(progress: models.Progress) -> None:
                worker.progress.emit(progress.fraction or 0.0, progress_text(progress))

            return models.import_model_file(name, path, progress=report)

        self._start(name, copy, f"Importing {path} as {name}...")

    def _choose_import_file(self) -> None:
        name = self.selected_name()
        if name is None:
            return
        entry = models.model_entry(name)
        path, _ = QFileDialog.getOpenFileName(self, f"Import the file of {name} ({entry.file_name})", "",
                                              f"{entry.file_name} ({entry.file_name});;All files (*)")
        if path:
            self.import_file(name, path)

    def remove(self, name: str | None) -> None:
        """Delete model ``name`` (and any interrupted download of it) from the cache."""
        if name is None or name == self.busy_name:
            return
        entry = models.model_entry(name)
        try:
            was_installed = models.remove_model(name)
        except OSError as error:  # Windows refuses to delete a file a running model holds open
            self._failed(error)
            return
        self.status_label.setText(
            f"Removed {name} ({models.human_bytes(entry.size_bytes)} freed)." if was_installed
            else f"Removed the interrupted download of {name}."
        )
        self.refresh()
        self.models_changed.emit()

    def cancel(self) -> None:
        """Stop the running download; what arrived is kept for the next Download to resume."""
        if self.worker is not None:
            self.worker.cancel_event.set()

    # ------------------------------------------------------------------ worker

    def _start(self, name: str, compute, message: str) -> None:
        self.busy_name = name
        self.status_label.setText(message)
        self.progress_bar.setValue(0)
        self.progress_label.setText("")
        self.worker = start_worker(compute, returned=self._installed, errored=self._failed,
                                   finished=self._worker_finished, name=f"model {name}")
        self.worker.progress.connect(self._show_progress)
        self.refresh()

    def _show_progress(self, fraction: float, text: str) -> None:
        if fraction < 0:
            self.progress_bar.setRange(0, 0)  # size unknown: a busy bar
        else:
            self.progress_bar.setRange(0, PROGRESS_STEPS)
            self.progress_bar.setValue(round(fraction * PROGRESS_STEPS))
        self.progress_label.setText(text)

    def _installed(self, path) -> None:
        self.status_label.setText(f"{self.busy_name} is installed: {path}")
        self.models_changed.emit()

    def _failed(self, error: BaseException) -> None:
        if isinstance(error, models.DownloadCancelled):
            self.status_label.setText(f"Download of {self.busy_name} cancelled; Download resumes where it stopped.")
        else:
            self.status_label.setText(f"<span style='color:#c0392b'>{_escaped(error)}</span>")

    def _worker_finished(self) -> None:
        self.worker = None
        self.busy_name = None
        self.refresh()


def _escaped(error: BaseException) -> str:
    """The error's first line, safe inside the rich-text status label."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
