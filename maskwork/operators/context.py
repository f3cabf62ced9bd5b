"""What an operator receives besides its data: progress, previews and cancellation.

The context is Qt-free. The window's worker builds one whose callbacks emit Qt signals;
the command line builds one that prints nothing; tests build one that records calls.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np


class Cancelled(Exception):
    """Raised by :meth:`RunContext.check` once cancellation was requested."""


class InputError(ValueError):
    """Bad input to an operator (no seeds, wrong size, ...): a message for the user."""


class NoObjectYet(InputError):
    """The prompts mark no object yet (only background clicks, no box): nothing to select.
    A front-end that refines each click's result takes the next click as refining none;
    any other InputError (no model, a bad parameter) says nothing about the clicks."""


@dataclass
class Result:
    """What an operator returns.

    Attributes
    ----------
    outputs : dict
        Output kind -> value: ``"mask"`` (bool/uint8 array), ``"labels"`` (int array),
        ``"probabilities"`` (float (row, col, class) array), ``"image"`` (array),
        ``"transform"`` (3x3 matrix or a transform object).
    iterations : int
        Iterations the method ran (0 when not iterative).
    scores : dict
        Numbers worth reporting (energy, metric value, ...).
    bounds : tuple of slice, optional
        Region of the outputs that may differ from the background: lets the canvas
        update only that box of a large image.
    class_ids : tuple of int, optional
        The label value of each plane of ``probabilities`` (the scribbles' class ids, or
        0..C-1 for a model's classes), so that front-ends name the planes right.
    """

    outputs: dict[str, Any]
    iterations: int = 0
    scores: dict[str, float] = field(default_factory=dict)
    bounds: tuple[slice, slice] | None = None
    class_ids: tuple[int, ...] | None = None

    def __getitem__(self, kind: str) -> Any:
        return self.outputs[kind]


class RunContext:
    """Progress, partial results and cooperative cancellation for one operator run.

    Parameters
    ----------
    on_progress : callable, optional
        Called as ``on_progress(fraction, message)`` with fraction in [0, 1].
    on_partial : callable, optional
        Called with a :class:`Result` (or array) to preview while the run goes on.
    cancel_event : threading.Event, optional
        Set from another thread to request cancellation.
    """

    def __init__(
        self,
        on_progress: Callable[[float, str], None] | None = None,
        on_partial: Callable[[Any], None] | None = None,
        cancel_event: threading.Event | None = None,
    ) -> None:
        self._on_progress = on_progress
        self._on_partial = on_partial
        self.cancel_event = cancel_event or threading.Event()

    @property
    def wants_partials(self) -> bool:
        """Whether anyone listens to partial results (skip building them otherwise)."""
        return self._on_partial is not None

    def progress(self, fraction: float, message: str = "") -> None:
        """Report progress; also a cancellation point."""
        self.check()
        if self._on_progress is not None:
            self._on_progress(float(np.clip(fraction, 0.0, 1.0)), message)

    def partial(self, result: Any) -> None:
        """Offer an intermediate result for preview; also a cancellation point."""
        self.check()
        if self._on_partial is not None:
            self._on_partial(result)

    def cancel(self) -> None:
        """Request cancellation; the operator stops at its next checkpoint."""
        self.cancel_event.set()

    @property
    def cancelled(self) -> bool:
        """Whether cancellation was requested."""
        return self.cancel_event.is_set()

    def check(self) -> None:
        """Raise :class:`Cancelled` if cancellation was requested."""
        if self.cancel_event.is_set():
            raise Cancelled()


def null_context() -> RunContext:
    """A fresh context that reports nowhere and is never cancelled."""
    return RunContext()
