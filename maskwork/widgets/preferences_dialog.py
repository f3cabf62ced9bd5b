"""Edit > Preferences: the deep-learning device, the largest image the window opens and
how often the document is autosaved.

Which devices torch can use is found out in a background job when the dialog opens, so
that opening it never waits for torch to import.
"""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QDialog, QDialogButtonBox, QFormLayout, QLabel, QSpinBox, QWidget

from maskwork.operators.dl.device import DEVICE_CHOICES, import_torch
from maskwork.operators.extras import missing_modules, needs_message
from maskwork.widgets.workers import start_worker

#: The highest pixel limit the dialog offers (20 gigapixels).
MAX_MEGAPIXELS_CHOICE = 20_000
#: The autosave intervals the dialog offers, in minutes (first and last).
AUTOSAVE_MINUTES_CHOICE = (1, 60)

DEVICE_TEXT = {
    "auto": "Automatic (CUDA, then Apple MPS, then CPU)",
    "cuda": "CUDA GPU",
    "mps": "Apple GPU (MPS)",
    "cpu": "CPU",
}


def detect_devices() -> str:
    """A line naming the devices torch can use on this machine (imports torch), or what
    to install when torch is missing."""
    if missing_modules(["torch"]):
        return needs_message("Deep learning", ["torch"])
    torch = import_torch()

    found = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            found.append(f"cuda:{index} {torch.cuda.get_device_name(index)}")
    if hasattr(torch.backends, "mps") and torch.backends.mps.is_available():
        found.append("mps")
    found.append("cpu")
    return f"torch {torch.__version__} sees: {', '.join(found)}"


class PreferencesDialog(QDialog):
    """Preferences that apply to the whole application.

    Parameters
    ----------
    device : str
        The current device preference, one of ``DEVICE_CHOICES``.
    max_megapixels : int
        The current limit on the pixels one image may decode to, in megapixels.
    parent : QWidget, optional
        Qt parent.
    autosave_minutes : int
        The current autosave interval, in minutes.
    """

    def __init__(self, device: str, max_megapixels: int, parent: QWidget | None = None, *,
                 autosave_minutes: int = AUTOSAVE_MINUTES_CHOICE[0]) -> None:
        super().__init__(parent)
        self.setWindowTitle("Preferences")
        self.device_combo = QComboBox(self)
        self.device_combo.setObjectName("deviceCombo")
        for choice in DEVICE_CHOICES:
            self.device_combo.addItem(DEVICE_TEXT[choice], choice)
        self.device_combo.setCurrentIndex(max(self.device_combo.findData(device), 0))
        self.device_combo.setToolTip(
            "Where deep-learning operators run when their Device parameter is 'auto'. "
            "GPUs run in half precision."
        )
        self.detected_label = QLabel("Looking for GPUs...", self)
        self.detected_label.setObjectName("detectedDevicesLabel")
        self.detected_label.setWordWrap(True)
        self.max_megapixels_spin = QSpinBox(self)
        self.max_megapixels_spin.setObjectName("maxMegapixelsSpin")
        self.max_megapixels_spin.setRange(1, MAX_MEGAPIXELS_CHOICE)
        self.max_megapixels_spin.setSuffix(" MP")
        self.max_megapixels_spin.setValue(max_megapixels)
        self.max_megapixels_spin.setToolTip(
            "Files that would decode to more pixels are refused before they are read, so a "
            "damaged or malicious file cannot exhaust the memory. Raise it for huge scans."
        )
        self.autosave_spin = QSpinBox(self)
        self.autosave_spin.setObjectName("autosaveMinutesSpin")
        self.autosave_spin.setRange(*AUTOSAVE_MINUTES_CHOICE)
        self.autosave_spin.setSuffix(" min")
        self.autosave_spin.setValue(autosave_minutes)
        self.autosave_spin.setToolTip(
            "How often unsaved work is written to the recovery file that is offered back after "
            "a crash (also a few seconds after each Apply or long stroke)."
        )
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QFormLayout(self)
        layout.addRow("Deep-learning device", self.device_combo)
        layout.addRow("", self.detected_label)
        layout.addRow("Largest image to open", self.max_megapixels_spin)
        layout.addRow("Autosave every", self.autosave_spin)
        layout.addRow(buttons)

        self.detect_job = start_worker(lambda worker: detect_devices(), returned=self._show_detected,
                                       name="device detection")

    @property
    def device(self) -> str:
        """The device chosen in the dialog."""
        return self.device_combo.currentData()

    @property
    def max_megapixels(self) -> int:
        """The pixel limit chosen in the dialog, in megapixels."""
        return self.max_megapixels_spin.value()

    @property
    def autosave_minutes(self) -> int:
        """The autosave interval chosen in the dialog, in minutes."""
        return self.autosave_spin.value()

    def _show_detected(self, value) -> None:
        text = f"Could not ask torch: {value}" if isinstance(value, Exception) else value
        self.detected_label.setText(text)
