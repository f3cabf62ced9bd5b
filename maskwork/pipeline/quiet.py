"""Silence what libraries write on stderr while the command line works.

Native libraries (libpng, OpenCV, ITK) write to file descriptor 2 directly, past
``sys.stderr``, so the descriptor itself is redirected; log records (tifffile's) and
Python warnings would end there too, and warnings are switched off so that none is
formatted in vain. ``maskwork run`` silences its whole run; ``maskwork batch`` silences
each image's work inside its worker process, so that its own progress line stays.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from typing import Iterator

__all__ = ["library_output_silenced"]


@contextlib.contextmanager
def library_output_silenced() -> Iterator[None]:
    """Send everything written to stderr meanwhile to the null device, and ignore warnings."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
