"""A quick first preview for slow restore filters: the same filter on a reduced copy.

Non-local means, total variation, wavelet shrinkage and deconvolution take seconds on a
4-megapixel photo, and the person tuning ``h`` or a PSF width would wait that long for
each look. When someone listens to partial results (the window's preview), the operator
first runs on a copy reduced to :data:`PREVIEW_PIXELS`, with its size-dependent
parameters scaled alike, and offers that result stretched to full size; the full-size
result follows. Runs nobody previews (Apply, the command line, batch) skip it.

Reducing by area averaging also lowers the noise: averaging ``1 / scale**2`` pixels
divides its standard deviation by ``1 / scale``. Parameters that are noise levels
(non-local means ``h``, total variation ``weight``) and lengths in pixels (blur widths,
PSF sizes) are therefore both multiplied by ``scale``, so the preview is as smooth or as
sharp, relative to what is left, as the full-size result will be.
"""

from __future__ import annotations

import math
from typing import Callable

import cv2
import numpy as np

from maskwork.operators.context import Result, RunContext

__all__ = ["PREVIEW_PIXELS", "offer_reduced_preview", "reduce_image"]

#: Pixels of the reduced copy: every restore filter runs on it in a fraction of a second.
PREVIEW_PIXELS = 250_000
#: Images smaller than this many times PREVIEW_PIXELS are previewed at full size only:
#: reducing them would save less time than the extra run costs.
MIN_REDUCTION = 3.0
#: Share of the progress bar the reduced run takes.
PREVIEW_PROGRESS = 0.1


#: Pixel types OpenCV resizes as they are; others go through float64 and back.
_OPENCV_DTYPES = (np.uint8, np.uint16, np.int16, np.float32, np.float64)


def _resized(image: np.ndarray, rows: int, cols: int, interpolation: int) -> np.ndarray:
    """``image`` resized to ``rows`` x ``cols`` with its dtype and shape's channels kept."""
    if image.dtype in _OPENCV_DTYPES:
        out = cv2.resize(np.ascontiguousarray(image), (cols, rows), interpolation=interpolation)
    else:  # int32, uint32, int64, float16...: averaged in float64, rounded back
        out = cv2.resize(image.astype(np.float64), (cols, rows), interpolation=interpolation)
        if image.dtype.kind in "iu":
            info = np.iinfo(image.dtype)
            out = np.clip(np.rint(out), info.min, info.max)
        out = out.astype(image.dtype)
    return out.reshape((rows, cols) + image.shape[2:])  # OpenCV drops a trailing axis of 1


def reduce_image(image: np.ndarray, scale: float, min_side: int = 1) -> np.ndarray:
    """``image`` reduced by ``scale`` (< 1) with area averaging, dtype and channels kept;
    neither side below ``min_side`` pixels (nor above its own size)."""
    rows, cols = image.shape[:2]
    new_rows, new_cols = (min(n, max(min_side, round(n * scale))) for n in (rows, cols))
    return _resized(image, new_rows, new_cols, cv2.INTER_AREA)


def offer_reduced_preview(
    image: np.ndarray,
    ctx: RunContext,
    run_reduced: Callable[[np.ndarray, float, RunContext], np.ndarray],
    pixels: int | None = None,
) -> None:
    """Offer ``run_reduced`` on a reduced copy of ``image`` as a partial result.

    Parameters
    ----------
    image : ndarray
        The operator's full-size input image.
    ctx : RunContext
        The run's context. Nothing is computed unless it wants partial results and the
        image is at least :data:`MIN_REDUCTION` times ``pixels``.
    run_reduced : callable
        ``run_reduced(small, scale, child_ctx) -> ndarray``: the filter applied to the
        reduced copy ``small`` with its size-dependent parameters multiplied by
        ``scale``, reporting to ``child_ctx`` (which shares the run's Cancel and offers
        no partials of its own).
    pixels : int, optional
        Size of the reduced copy, :data:`PREVIEW_PIXELS` by default; filters slower per
        pixel than most ask for fewer.

    Notes
    -----
    The partial is a :class:`Result` whose ``"image"`` is stretched (bilinear) back to
    the full size, dtype kept, so a preview layer shows it in place of the final image.
    """
    pixels = pixels or PREVIEW_PIXELS
    full_pixels = image.shape[0] * image.shape[1]
    if not ctx.wants_partials or full_pixels < MIN_REDUCTION * pixels:
        return
    scale = math.sqrt(pixels / full_pixels)
    small = reduce_image(image, scale)
    child = RunContext(
        on_progress=lambda fraction, message: ctx.progress(PREVIEW_PROGRESS * fraction, f"Quick preview: {message}"),
        cancel_event=ctx.cancel_event,
    )
    reduced = run_reduced(small, scale, child)
    ctx.partial(Result({"image": _resized(reduced, image.shape[0], image.shape[1], cv2.INTER_LINEAR)}))
