"""Hysteresis threshold: the certain pixels of an object, plus the fainter ones touching them.

A pixel beyond the strict (``high``) threshold is certainly object; one beyond only the
lenient (``low``) threshold is kept when it is connected to a certain pixel through other
kept pixels. Faint rims of bright objects stay, while faint specks of background away from
any object go: one global threshold keeps both or neither. This is Canny's edge linking
(:func:`skimage.filters.apply_hysteresis_threshold`) applied to gray values.

Gray values and their units are those of :mod:`maskwork.operators.segmentation.threshold`:
colour images use their luminance, 8-bit thresholds are 0..255, NaN pixels are never in
the mask. The parameter panel shows the two thresholds on the image's histogram.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np

from maskwork.operators.context import InputError, Result, RunContext, null_context
from maskwork.operators.registry import Histogram, ShownFor, Suggestion, register
from maskwork.operators.segmentation.threshold import global_threshold, gray_range_words, luminance, plain_number


def _otsu_pair(values: np.ndarray, invert: bool) -> tuple[float, float]:
    """(lenient, strict) thresholds of the "otsu" method: Otsu's threshold, then Otsu's
    threshold of the values on the object's side of it."""
    lenient = global_threshold(values, "otsu")
    object_side = values[values <= lenient] if invert else values[values > lenient]
    return lenient, (global_threshold(object_side, "otsu") if object_side.size else lenient)


def hysteresis_suggestion(image: np.ndarray) -> tuple[str, dict]:
    """The form's suggestion: the image's gray range, and manual thresholds at the "otsu"
    method's two (a start to move from, in the image's units)."""
    words, values = gray_range_words(image)
    low, high = (float(plain_number(level)) for level in _otsu_pair(values, invert=False))
    return (f"{words}; by Otsu: low {plain_number(low)}, high {plain_number(high)}",
            {"method": "manual", "low": low, "high": high})


@register(
    "hysteresis_threshold",
    title="Hysteresis threshold",
    category="Segmentation/Threshold",
    outputs=("mask",),
    panel_views=(Histogram(), Suggestion(hysteresis_suggestion)),
)
def hysteresis_threshold(
    image: np.ndarray,
    *,
    method: Literal["otsu", "manual"] = "otsu",
    low: Annotated[float, ShownFor("method", "manual")] = 100.0,
    high: Annotated[float, ShownFor("method", "manual")] = 150.0,
    connectivity: Literal[4, 8] = 4,
    invert: bool = False,
    ctx: RunContext | None = None,
) -> Result:
    """Keep the pixels beyond a strict threshold and the fainter ones connected to them.

    Parameters
    ----------
    image : ndarray
        Gray, RGB or RGBA image; colour images use their luminance. 8-bit, 16-bit or
        float; NaN pixels are never in the mask.
    method : {"otsu", "manual"}
        How the two thresholds are found. "otsu": the lenient one is Otsu's threshold of
        the image, the strict one Otsu's threshold of the object side alone (the pixels
        beyond the first), so the certain pixels are the object's own brighter part (its
        darker part when inverted). "manual": ``low`` and ``high``.
    low : float
        "manual": the lower threshold, in the image's units (0..255 for 8-bit images).
        Bright objects: pixels above it are kept where they touch a certain pixel.
        Inverted: pixels at or below it are certain.
    high : float
        "manual": the upper threshold, at least ``low``. Bright objects: pixels above it
        are certain. Inverted: pixels at or below it are kept where they touch a certain
        pixel.
    connectivity : {4, 8}
        Which neighbours connect kept pixels: the 4 sharing a side, or also the 4
        diagonal ones. 4 keeps specks that touch an object only at a corner out.
    invert : bool
        Objects are dark: keep pixels at or below the thresholds instead of above.
    ctx : RunContext, optional
        Progress and cancellation.

    Returns
    -------
    Result
        ``outputs["mask"]``: boolean mask of the kept pixels. ``scores["threshold_1"]``
        and ``scores["threshold_2"]`` hold the lower and the upper threshold.

    Raises
    ------
    InputError
        When ``low`` is above ``high``, or the image holds no finite value.
    """
    from scipy import ndimage as ndi

    ctx = ctx or null_context()
    ctx.progress(0.0, "Hysteresis threshold")
    gray = luminance(image)
    finite = np.isfinite(gray) if np.issubdtype(gray.dtype, np.floating) else np.ones(gray.shape, bool)
    values = gray[finite]
    if values.size == 0:
        raise InputError("the image holds no finite values (all NaN or infinite)")
    if method == "manual":
        if low > high:
            raise InputError(f"the low threshold ({low}) must not be above the high one ({high})")
        lenient, strict = (high, low) if invert else (low, high)
    else:
        lenient, strict = _otsu_pair(values, invert)
    ctx.check()
    ctx.progress(0.4, "Hysteresis threshold: linking")
    with np.errstate(invalid="ignore"):  # NaN compares False: never kept
        candidates = (gray <= lenient) if invert else (gray > lenient)
        certain = (gray <= strict) if invert else (gray > strict)
    structure = ndi.generate_binary_structure(2, 1 if connectivity == 4 else 2)
    labels, count = ndi.label(candidates & finite, structure=structure)
    keep = np.zeros(count + 1, bool)
    keep[labels[certain & finite]] = True
    keep[0] = False  # the background label
    ctx.check()
    ctx.progress(1.0, "Hysteresis threshold done")
    return Result({"mask": keep[labels]}, scores={"threshold_1": float(min(lenient, strict)), "threshold_2": float(max(lenient, strict))})
