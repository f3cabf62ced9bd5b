"""Runs an operator in a QThread and reports back through typed signals.

Workers never touch widgets or layers: results arrive on the main thread through
queued signals and are applied there. Every live worker is tracked so the application
(and the test suite) can make sure none is left running.
"""

from __future__ import annotations

import threading
import traceback
from dataclasses import dataclass

from PySide6.QtCore import QThread, Signal

from maskwork.operators import Cancelled, InputError, OperatorSpec, RunContext

_live: set["OperatorWorker"] = set()


def live_workers() -> list["OperatorWorker"]:
    """Workers started and not yet finished."""
    return list(_live)


def stop_all_workers(timeout_ms: int = 5000) -> None:
    """Cancel every live worker and wait for its thread (used at quit)."""
    for worker in live_workers():
        worker.cancel()
    for worker in live_workers():
        worker.wait(timeout_ms)


@dataclass
class OperatorError:
    """An operator failure: a one-line message, and details (the traceback) for a bug."""

    message: str
    details: str
    is_input_error: bool
    #: The run did not start because it would need more memory than is free.
    memory_shortage: bool = False


class OperatorWorker(QThread):
    """One run of one operator.

    Parameters
    ----------
    spec : OperatorSpec
        The operator.
    inputs : dict
        Inputs (snapshots: the main thread may keep editing layers meanwhile).
    params : dict
        Parameter values.
    purpose : str
        ``"preview"`` or ``"apply"``; carried along for the receiver.
    check_memory : bool
        Before running an operator that estimates its memory, compare the estimate with
        the free memory of its device and report a shortage instead of running.
    """

    progress = Signal(float, str)
    partial = Signal(object)
    returned = Signal(object)
    errored = Signal(object)
    cancelled = Signal()

    def __init__(
        self, spec: OperatorSpec, inputs: dict, params: dict, purpose: str = "preview", check_memory: bool = True
    ) -> None:
        super().__init__()
        self.spec = spec
        self.inputs = inputs
        self.params = params
        self.purpose = purpose
        self.check_memory = check_memory
        #: Input name -> the layer it was taken from (set by the runner, read by recipes).
        self.sources: dict = {}
        self._cancel_event = threading.Event()
        self.finished.connect(self._forget)

    def start(self) -> None:  # noqa: D102 (QThread.start)
        _live.add(self)
        super().start()

    def _forget(self) -> None:
        _live.discard(self)

    def cancel(self) -> None:
        """Ask the operator to stop at its next checkpoint."""
        self._cancel_event.set()

    @property
    def is_cancelled(self) -> bool:
        """Whether cancellation was requested."""
        return self._cancel_event.is_set()

    def run(self) -> None:  # noqa: D102 (runs in the worker thread)
        ctx = RunContext(self.progress.emit, self.partial.emit, self._cancel_event)
        try:
            shortage = self._memory_shortage()
            if shortage:
                self.errored.emit(OperatorError(shortage, "", True, memory_shortage=True))
                return
            result = self.spec.run(self.inputs, self.params, ctx)
        except Cancelled:
            self.cancelled.emit()
        except InputError as error:
            self.errored.emit(OperatorError(str(error), "", True))
        except Exception as error:  # an operator bug must become a message, not a dead window
            self.errored.emit(OperatorError(f"{type(error).__name__}: {error}", traceback.format_exc(), False))
        else:
            if self._cancel_event.is_set():
                self.cancelled.emit()
            else:
                self.returned.emit(result)

    def _memory_shortage(self) -> str | None:
        """A warning when the run's estimated memory exceeds what its device has free."""
        if not self.check_memory or self.spec.memory_estimate is None:
            return None
        # Imported here: resolving the device imports torch, which only these operators need.
        from maskwork.operators.dl.device import memory_shortfall

        params = {**self.spec.defaults(), **self.params}
        return memory_shortfall(self.spec.estimate_memory(self.inputs, self.params), params)
