"""Ways to look at two aligned images at once: checkerboard and difference.

Both images are first brought to display RGB (8-bit, contrast-stretched like the canvas
shows them), so a 16-bit MR slice and a colour photo can be compared square by square.
"""

from __future__ import annotations

import numpy as np

from maskwork.core.pixels import to_uint8_rgb

#: ``image`` as uint8 (row, col, 3): gray replicated, alpha dropped, depth stretched. The
#: name stays for maskwork.widgets.alignment_panel, which shows the moving image this way.
display_rgb = to_uint8_rgb


def _check_pair(fixed: np.ndarray, moving: np.ndarray) -> None:
    if fixed.shape[:2] != moving.shape[:2]:
        raise ValueError(
            f"the moving image is {moving.shape[1]}x{moving.shape[0]} but the fixed one is "
            f"{fixed.shape[1]}x{fixed.shape[0]}: register (Apply) first, then compare the warped image"
        )


def checkerboard(fixed: np.ndarray, moving: np.ndarray, size: int = 32) -> np.ndarray:
    """Squares of ``size`` pixels taken alternately from ``fixed`` and ``moving``."""
    _check_pair(fixed, moving)
    size = max(1, int(size))
    rows, cols = fixed.shape[:2]
    squares = ((np.arange(rows)[:, None] // size) + (np.arange(cols)[None, :] // size)) % 2 == 1
    out = to_uint8_rgb(fixed).copy()
    out[squares] = to_uint8_rgb(moving)[squares]
    return out


def difference(fixed: np.ndarray, moving: np.ndarray) -> np.ndarray:
    """Absolute difference of the display images (uint8 gray): dark where they agree."""
    _check_pair(fixed, moving)
    a = to_uint8_rgb(fixed).astype(np.int16)
    b = to_uint8_rgb(moving).astype(np.int16)
    return np.abs(a - b).max(axis=2).astype(np.uint8)
