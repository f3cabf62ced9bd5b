"""Thresholds: global (Otsu, Li, Yen, triangle, maximum entropy, manual), local, adaptive,
multi-Otsu, and the histogram the parameter panel draws them on.

Everything works on one gray value per pixel in the image's own units: gray images as
they are, colour images as their luminance (Rec. 709 weights, like
:func:`skimage.color.rgb2gray`, but without rescaling to [0, 1]), so a threshold of 128
means the same on an 8-bit photo as on the histogram the window shows. Pixels that are
NaN or infinite belong to no class: they are never in a mask (inverted or not) and get
label 0 in multi-Otsu.
"""

from __future__ import annotations

from typing import Annotated, Literal

import cv2
import numpy as np

from maskwork.core import pixels
from maskwork.operators.context import InputError, Result, RunContext, null_context
from maskwork.operators.registry import Histogram, Range, ShownFor, Suggestion, register
from maskwork.operators.seeds import check_image

GLOBAL_METHODS = ("otsu", "li", "yen", "triangle", "max_entropy", "manual")
#: Integer images spanning more gray levels than this are thresholded as float with 256
#: bins (scikit-image otherwise makes one histogram bin per integer value).
MAX_INTEGER_BINS = 1024
#: About how many pixels the form's suggestion looks at (every n-th row and column).
SUGGESTION_PIXELS = 1_000_000


def luminance(image: np.ndarray) -> np.ndarray:
    """The image's gray values (:func:`maskwork.core.pixels.luminance`), after checking it."""
    return pixels.luminance(check_image(image))


def _finite_values(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """(1D array of the finite gray values, finite mask or None when all are finite)."""
    if np.issubdtype(gray.dtype, np.floating):
        finite = np.isfinite(gray)
        if not finite.all():
            values = gray[finite]
            if values.size == 0:
                raise InputError("the image holds no finite values (all NaN or infinite)")
            return values, finite
    return gray.ravel(), None


def _for_histogram_methods(values: np.ndarray) -> np.ndarray:
    """Values skimage can histogram cheaply: wide integer ranges become float."""
    if np.issubdtype(values.dtype, np.integer):
        if int(values.max()) - int(values.min()) > MAX_INTEGER_BINS:
            return values.astype(np.float32)
        return values
    return values.astype(np.float32, copy=False)


def gray_range_words(image: np.ndarray) -> tuple[str, np.ndarray]:
    """("Gray values run LOW..HIGH", a sample of the finite gray values) of ``image``: the
    units a manual threshold is given in (0..255 for 8-bit, 0..65535 for 16-bit, the
    image's own for float), which 128 as a default hid (all of a 16-bit image above it)."""
    image = check_image(image)
    step = max(1, int(np.sqrt(image.shape[0] * image.shape[1] / SUGGESTION_PIXELS)))
    values, _ = _finite_values(np.ascontiguousarray(luminance(image[::step, ::step])))
    return f"Gray values run {plain_number(values.min())}..{plain_number(values.max())}", values


def plain_number(value: float) -> str:
    """``value`` to four significant digits, whole numbers written out (65535, not 6.554e+04)."""
    value = float(f"{float(value):.4g}") if abs(value) < 1e4 else round(float(value))
    return f"{int(value)}" if float(value).is_integer() else f"{value:.4g}"


def threshold_suggestion(image: np.ndarray) -> tuple[str, dict]:
    """The form's suggestion: the image's gray range, and a manual threshold at Otsu's
    (a start to move from, in the image's units)."""
    words, values = gray_range_words(image)
    level = float(plain_number(global_threshold(values, "otsu")))
    return f"{words}; Otsu's threshold {plain_number(level)}", {"method": "manual", "value": level}


@register("threshold", title="Threshold", category="Segmentation/Threshold", outputs=("mask",),
          panel_views=(Histogram(), Suggestion(threshold_suggestion)))
def threshold(
    image: np.ndarray,
    *,
    method: Literal["otsu", "li", "yen", "triangle", "local", "adaptive", "max_entropy", "manual"] = "otsu",
    value: Annotated[float, ShownFor("method", "manual")] = 128.0,
    block_size: Annotated[int, Range(3, 2001), ShownFor("method", "local", "adaptive")] = 35,
    offset: Annotated[float, ShownFor("method", "local", "adaptive")] = 0.0,
    invert: bool = False,
    ctx: RunContext | None = None,
) -> Result:
    """Separate bright from dark pixels with a global, local or manual threshold.

    Parameters
    ----------
    image : ndarray
        Gray, RGB or RGBA image; colour images use their luminance. 8-bit, 16-bit or
        float; NaN pixels are never in the mask.
    method : {"otsu", "li", "yen", "triangle", "local", "adaptive", "max_entropy", "manual"}
        How the threshold is found. Global ones (one value for the whole image): Otsu
        (between-class variance), Li (minimum cross entropy), Yen, triangle (good for one
        dominant peak), maximum entropy (SimpleITK) and manual (``value``). Local ones
        compare each pixel with the Gaussian-weighted mean of its ``block_size``
        neighbourhood minus ``offset``: scikit-image's threshold_local ("local") or
        OpenCV's adaptive threshold ("adaptive"; its exact 8-bit rule on 8-bit images).
    value : float
        "manual": the threshold, in the image's own units (0..255 for 8-bit images).
    block_size : int
        "local" and "adaptive": width in pixels of the neighbourhood; even values are
        rounded up to the next odd one. Use about twice the size of the objects.
    offset : float
        "local" and "adaptive": subtracted from the local mean before comparing, in the
        image's units; positive values keep flat areas out of the mask.
    invert : bool
        Keep the dark side (pixels at or below the threshold) instead of the bright one.
    ctx : RunContext, optional
        Progress and cancellation.

    Returns
    -------
    Result
        ``outputs["mask"]``: boolean mask (pixels above the threshold, or at/below it
        when inverted). Global methods report ``scores["threshold"]``.
    """
    ctx = ctx or null_context()
    ctx.progress(0.0, "Threshold")
    gray = luminance(image)
    values, finite = _finite_values(gray)
    scores: dict[str, float] = {}
    if method in GLOBAL_METHODS:
        level = value if method == "manual" else global_threshold(values, method)
        ctx.progress(0.7, "Threshold: applying")
        mask = gray > level
        scores["threshold"] = float(level)
    elif method in ("local", "adaptive"):
        block = block_size + 1 - block_size % 2
        if finite is not None:
            # Unknown pixels take the median so they pull no local mean up or down.
            gray = np.where(finite, gray, np.median(values)).astype(np.float32)
        if method == "local":
            from skimage.filters import threshold_local

            mask = gray > threshold_local(gray.astype(np.float32), block, method="gaussian", offset=offset)
        else:
            mask = _adaptive(image, gray, block, offset)
    else:
        raise InputError(f"unknown threshold method {method!r}; choose one of {', '.join(GLOBAL_METHODS)}, local, adaptive")
    ctx.check()
    if invert:
        mask = ~mask
    if finite is not None:
        mask &= finite
    ctx.progress(1.0, "Threshold done")
    return Result({"mask": mask}, scores=scores)


def global_threshold(values: np.ndarray, method: str) -> float:
    """One threshold for ``values`` (finite gray values, any shape) by ``method``.

    A constant image gets its only value (so nothing lies above it).
    """
    low, high = values.min(), values.max()
    if low == high:
        return float(low)
    values = _for_histogram_methods(values)
    if method == "max_entropy":
        import SimpleITK as sitk

        flat = np.ascontiguousarray(values.reshape(1, -1))
        if flat.dtype not in (np.uint8, np.uint16, np.int16, np.int32, np.uint32, np.float32, np.float64):
            flat = flat.astype(np.float32)
        entropy = sitk.MaximumEntropyThresholdImageFilter()
        entropy.SetNumberOfHistogramBins(256)
        entropy.Execute(sitk.GetImageFromArray(flat))
        return float(entropy.GetThreshold())
    from skimage import filters

    compute = {
        "otsu": filters.threshold_otsu,
        "li": filters.threshold_li,
        "yen": filters.threshold_yen,
        "triangle": filters.threshold_triangle,
    }[method]
    return float(compute(values))


def _adaptive(image: np.ndarray, gray: np.ndarray, block: int, offset: float) -> np.ndarray:
    """OpenCV's Gaussian adaptive threshold: pixel > Gaussian mean of the block - offset."""
    source = check_image(image)
    if source.dtype == np.uint8:
        return (
            cv2.adaptiveThreshold(
                pixels.to_uint8_gray(source), 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, cv2.THRESH_BINARY, block, offset
            )
            > 0
        )
    # Deeper images: the same rule in float (OpenCV's function takes 8-bit only), with
    # the kernel and border adaptiveThreshold uses.
    values = np.ascontiguousarray(gray, dtype=np.float32)
    mean = cv2.GaussianBlur(values, (block, block), 0, borderType=cv2.BORDER_REPLICATE | cv2.BORDER_ISOLATED)
    return values > mean - offset


@register(
    "multi_otsu", title="Multi-Otsu", category="Segmentation/Threshold", outputs=("labels",), panel_views=(Histogram(),)
)
def multi_otsu(
    image: np.ndarray,
    *,
    classes: Annotated[int, Range(2, 6)] = 3,
    ctx: RunContext | None = None,
) -> Result:
    """Split the gray levels into several classes with Otsu's multi-level threshold.

    Parameters
    ----------
    image : ndarray
        Gray, RGB or RGBA image; colour images use their luminance. NaN pixels get 0.
    classes : int
        Number of classes (dark to bright); ``classes - 1`` thresholds are found.
    ctx : RunContext, optional
        Progress and cancellation.

    Returns
    -------
    Result
        ``outputs["labels"]``: int32 labels 1 (darkest) .. ``classes``; 0 for NaN.
        ``scores["threshold_1"]`` .. hold the thresholds, in the image's units.
    """
    ctx = ctx or null_context()
    ctx.progress(0.0, "Multi-Otsu")
    gray = luminance(image)
    values, finite = _finite_values(gray)
    levels = multiotsu_thresholds(values, classes)
    ctx.progress(0.7, "Multi-Otsu: labelling")
    # A pixel equal to a threshold stays in the class below, as in Threshold (value > t).
    labels = (np.digitize(gray, levels, right=True) + 1).astype(np.int32)
    if finite is not None:
        labels[~finite] = 0
    ctx.progress(1.0, "Multi-Otsu done")
    return Result({"labels": labels}, scores={f"threshold_{i}": float(t) for i, t in enumerate(levels, start=1)})


def multiotsu_thresholds(values: np.ndarray, classes: int, nbins: int = 256) -> np.ndarray:
    """The ``classes - 1`` multi-Otsu thresholds of ``values``, found by dynamic programming.

    Same histogram and the same optimum as :func:`skimage.filters.threshold_multiotsu`
    (maximum between-class variance; thresholds are the centres of each class's last
    bin), but in O(classes * bins^2) time: scikit-image tries every combination of
    thresholds, which takes seconds for 5 classes and minutes for 6.

    Raises
    ------
    InputError
        When the values have fewer distinct levels than ``classes``.
    """
    from skimage.exposure import histogram as sk_histogram

    prob, centres = sk_histogram(_for_histogram_methods(values), nbins, source_range="image", normalize=True)
    if np.count_nonzero(prob) < classes:
        raise InputError(
            f"Multi-Otsu cannot find {classes} classes: the image has only {np.count_nonzero(prob)} distinct gray levels"
        )
    prob = prob.astype(np.float64)
    n = prob.size
    weight = np.concatenate([[0.0], np.cumsum(prob)])
    moment = np.concatenate([[0.0], np.cumsum(prob * centres)])
    # score[i, j]: the class made of bins i..j-1 contributes (sum p*x)^2 / (sum p).
    w = weight[None, :] - weight[:, None]
    m = moment[None, :] - moment[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(w > 0, m * m / w, 0.0)
    later = np.triu(np.ones((n + 1, n + 1), bool), 1)  # i < j: a class holds at least one bin
    best = score[0].copy()  # best[j]: one class over bins 0..j-1
    best[0] = -np.inf
    starts = []
    for _ in range(classes - 1):
        total = np.where(later, best[:, None] + score, -np.inf)
        starts.append(np.argmax(total, axis=0))  # first maximum on ties: the lowest boundary
        best = total[starts[-1], np.arange(n + 1)]
    boundaries, end = [], n
    for start in reversed(starts):
        end = int(start[end])
        boundaries.append(end)
    return np.asarray(centres[np.array(boundaries[::-1]) - 1], dtype=np.float64)


def histogram(image: np.ndarray, bins: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Histogram of the gray values the thresholds see, for the parameter panel's plot.

    Parameters
    ----------
    image : ndarray
        Gray, RGB or RGBA image of any dtype; colour images use their luminance, NaN and
        infinite values are left out.
    bins : int
        Number of bins. 8-bit images always span 0..256 (bin edges on whole values when
        ``bins`` is 256); other integer images span their own min..max+1, floats their
        min..max.

    Returns
    -------
    counts : ndarray of int64
        ``bins`` pixel counts.
    edges : ndarray of float64
        ``bins + 1`` bin edges in the image's units (all zeros counted in [0, 1] when no
        value is finite).
    """
    if bins < 1:
        raise InputError(f"a histogram needs at least one bin, got {bins}")
    source = check_image(image)
    gray = luminance(source)
    if np.issubdtype(gray.dtype, np.floating):
        values = gray[np.isfinite(gray)]
    else:
        values = gray.ravel()
    if source.dtype in (np.uint8, bool):
        span = (0.0, 256.0) if source.dtype == np.uint8 else (0.0, 2.0)
    elif values.size == 0:
        span = (0.0, 1.0)
    else:
        low, high = float(values.min()), float(values.max())
        if np.issubdtype(gray.dtype, np.integer):
            span = (low, high + 1.0)
        else:
            span = (low, high) if high > low else (low - 0.5, low + 0.5)
    counts, edges = np.histogram(values, bins=bins, range=span)
    return counts.astype(np.int64), edges.astype(np.float64)
