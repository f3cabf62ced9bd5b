"""Contrast and tone: CLAHE, gamma, levels and unsharp masking.

Colour images are equalised on the lightness (L of CIE Lab) so hues do not shift; gamma,
levels and unsharp masking act on each colour channel. Integer images go through a
look-up table where the operation is pointwise, so results are exact per grey level.

CLAHE on 8-bit images is OpenCV's. OpenCV also accepts 16-bit images, but there it
histograms 65 536 bins and never lets a bin's clip limit fall below one count, so for
ordinary tile sizes the clip limit has no effect and the result is plain adaptive
equalisation, whatever the user asks for. Deeper images therefore go through
:func:`clahe_float`, the same algorithm with 256 histogram bins (the clip limit means what
it means for 8-bit) and a look-up interpolated between bins, so they keep their precision.
"""

from __future__ import annotations

from typing import Annotated, Callable

import cv2
import numpy as np

from maskwork.core.pixels import to_float
from maskwork.operators.context import InputError, Result, RunContext, null_context
from maskwork.operators.registry import Range, register
from maskwork.operators.seeds import check_intensity_image

__all__ = ["clahe", "clahe_float", "gamma", "levels", "unsharp_mask"]

CATEGORY = "Restore/Contrast"
#: Histogram bins of :func:`clahe_float` (OpenCV's for 8-bit images).
BINS = 256
#: Rows of tiles mapped at once by :func:`clahe_float` (bounds memory, allows cancelling).
ROWS_PER_CHUNK = 512


@register("clahe", title="CLAHE", category=CATEGORY, outputs=("image",))
def clahe(
    image: np.ndarray,
    *,
    clip_limit: Annotated[float, Range(0.5, 40.0)] = 2.0,
    tile_grid: Annotated[int, Range(1, 64)] = 8,
    ctx: RunContext | None = None,
) -> Result:
    """Contrast-limited adaptive histogram equalisation: local contrast without blowing out noise.

    Parameters
    ----------
    image : ndarray
        Gray, RGB or RGBA image; 8-bit, 16-bit or float. Colour images are equalised on
        their lightness only. The result keeps the dtype and channels (alpha passes through).
    clip_limit : float
        How far a grey level's count may rise above an even histogram before it is cut
        and spread over the others (OpenCV's clipLimit). Larger gives stronger contrast
        and more amplified noise; 1 leaves the image nearly unchanged.
    tile_grid : int
        Tiles along each side; each tile gets its own equalisation, blended bilinearly.
        More tiles give more local contrast.
    ctx : RunContext, optional
        Progress and cancellation.

    Returns
    -------
    Result
        ``outputs["image"]``: the equalised image.
    """
    ctx = ctx or null_context()
    ctx.progress(0.0, "CLAHE")
    image = check_intensity_image(image)
    tiles = (tile_grid, tile_grid)
    if image.dtype == np.uint8:
        color = image[..., :3] if image.ndim == 3 and image.shape[2] >= 3 else image.reshape(image.shape[:2])
        equalizer = cv2.createCLAHE(clipLimit=float(clip_limit), tileGridSize=tiles)
        if color.ndim == 3:
            lab = cv2.cvtColor(np.ascontiguousarray(color), cv2.COLOR_RGB2Lab)
            lab[..., 0] = equalizer.apply(np.ascontiguousarray(lab[..., 0]))
            out = cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)
            if image.shape[2] == 4:
                out = np.concatenate([out, image[..., 3:]], axis=2)
        else:
            out = equalizer.apply(np.ascontiguousarray(color))
        ctx.progress(1.0, "CLAHE done")
        return Result({"image": out.reshape(image.shape)})

    work = to_float(image)
    # On the sensor's own range: 0..1 is 0..1023 of a 10-bit camera's data in 16 bits.
    share = _sensor_share(image)
    pixels = work.pixels / share if share < 1.0 else work.pixels
    if work.is_color:
        lab = cv2.cvtColor(pixels, cv2.COLOR_RGB2Lab)  # float: L in [0, 100]
        lightness = clahe_float(lab[..., 0] / 100.0, clip_limit, tiles, check=ctx.check)
        lab[..., 0] = lightness * 100.0
        out = cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)
    else:
        out = clahe_float(pixels, clip_limit, tiles, check=ctx.check)
    ctx.progress(1.0, "CLAHE done")
    return Result({"image": work.to_input_dtype(out * share if share < 1.0 else out)})


def _sensor_share(image: np.ndarray) -> float:
    """The share of a 16-bit image's range that its sensor's bit depth spans, 1 otherwise.

    Cameras of 10 to 14 bits store their data in 16: values up to 900 fill 0..1023 of
    0..65535, 1.6 %, four of the equalisation's 256 bins, and CLAHE lifted black to 750
    and flattened the rest. The depth is the fewest bits (at least 8) that hold the
    image's maximum, so an 8-bit picture scaled by 257 keeps its 16 bits and equalises
    as the 8-bit picture does.
    """
    if image.dtype != np.uint16:
        return 1.0
    color = image[..., :3] if image.ndim == 3 else image
    bits = max(8, int(color.max()).bit_length())
    return ((1 << bits) - 1) / 65535.0


def clahe_float(
    values: np.ndarray,
    clip_limit: float = 2.0,
    tile_grid: tuple[int, int] = (8, 8),
    *,
    check: Callable[[], None] | None = None,
) -> np.ndarray:
    """CLAHE of a 2D float image in [0, 1], OpenCV's algorithm with sub-level precision.

    Tiles, clip limit (``clip_limit * tile area / 256`` counts, at least 1), the
    redistribution of clipped counts and the bilinear blending of neighbouring tiles'
    mappings follow OpenCV's ``CLAHE``; on values that are exact 8-bit levels the result
    equals OpenCV's on the 8-bit image up to rounding. Between levels the mapping is
    interpolated linearly, so 16-bit and float data keep their precision.

    Parameters
    ----------
    values : ndarray
        (row, col) floats in [0, 1].
    clip_limit : float
        OpenCV's clipLimit; 0 or less means no clipping (plain adaptive equalisation).
    tile_grid : (int, int)
        Tiles along the rows and the columns.
    check : callable, optional
        Called between chunks of rows; raise from it to cancel.

    Returns
    -------
    ndarray
        float32, same shape, values in [0, 1].
    """
    values = np.asarray(values, np.float32)
    rows, cols = values.shape
    tiles_y, tiles_x = tile_grid
    levels = np.clip(values, 0.0, 1.0) * np.float32(BINS - 1)
    bins = np.rint(levels).astype(np.uint8)
    # Like OpenCV, extend the image by reflection (101) when the tiles do not divide it,
    # and then (OpenCV's quirk, kept for identical results) along both axes, a whole
    # extra tile row or column along one that was divisible.
    extended = bins
    if rows % tiles_y or cols % tiles_x:
        extended = cv2.copyMakeBorder(
            bins, 0, tiles_y - rows % tiles_y, 0, tiles_x - cols % tiles_x, cv2.BORDER_REFLECT_101
        )
    ext_rows, ext_cols = extended.shape
    tile_h, tile_w = ext_rows // tiles_y, ext_cols // tiles_x
    area = tile_h * tile_w
    tile_row = (np.arange(ext_rows, dtype=np.int32) // tile_h) * (tiles_x * BINS)
    tile_col = (np.arange(ext_cols, dtype=np.int32) // tile_w) * BINS
    flat = (tile_row[:, None] + tile_col[None, :]) + extended
    hist = np.bincount(flat.ravel(), minlength=tiles_y * tiles_x * BINS)
    del flat
    hist = hist.reshape(tiles_y * tiles_x, BINS).astype(np.int64)

    if clip_limit > 0:
        limit = max(int(clip_limit * area / BINS), 1)
        excess = np.maximum(hist - limit, 0).sum(axis=1)
        hist = np.minimum(hist, limit)
        batch = excess // BINS
        hist += batch[:, None]
        residual = excess - batch * BINS
        # OpenCV adds the remaining counts one each to every (BINS // residual)-th bin.
        for tile in np.flatnonzero(residual):
            r = int(residual[tile])
            step = max(BINS // r, 1)
            hist[tile, np.arange(0, BINS, step)[:r]] += 1
    lut = np.cumsum(hist, axis=1).astype(np.float32) * np.float32(1.0 / area)
    lut = lut.reshape(tiles_y, tiles_x, BINS)  # maps a level to [0, 1]

    # Each pixel blends the mappings of the four nearest tile centres (clamped at edges).
    def neighbours(count: int, size: int, tile: int):
        position = np.arange(count) / tile - 0.5  # in tile units, as OpenCV computes it
        first = np.floor(position).astype(np.intp)
        weight = (position - first).astype(np.float32)
        return np.clip(first, 0, size - 1), np.clip(first + 1, 0, size - 1), weight

    y1, y2, wy = neighbours(rows, tiles_y, tile_h)
    x1, x2, wx = neighbours(cols, tiles_x, tile_w)
    low = np.floor(levels).astype(np.uint8)
    high = np.minimum(low, BINS - 2) + np.uint8(1)
    frac = levels - low
    out = np.empty((rows, cols), np.float32)
    for start in range(0, rows, ROWS_PER_CHUNK):
        if check is not None:
            check()
        part = slice(start, min(rows, start + ROWS_PER_CHUNK))
        lo, hi, f = low[part], high[part], frac[part]
        rows_1, rows_2 = y1[part][:, None], y2[part][:, None]

        def at(tile_rows, tile_cols):
            return lut[tile_rows, tile_cols, lo] * (1 - f) + lut[tile_rows, tile_cols, hi] * f

        top = at(rows_1, x1[None, :]) * (1 - wx) + at(rows_1, x2[None, :]) * wx
        bottom = at(rows_2, x1[None, :]) * (1 - wx) + at(rows_2, x2[None, :]) * wx
        wy_part = wy[part][:, None]
        out[part] = top * (1 - wy_part) + bottom * wy_part
    return np.clip(out, 0.0, 1.0, out=out)


def _pointwise(image: np.ndarray, func: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Apply ``func`` (floats in [0, 1] -> [0, 1]) to every colour value of ``image``.

    8- and 16-bit images use a look-up table built in float64, so each grey level maps
    exactly to ``round(func(level / max) * max)``; others are computed directly.
    """
    work_image = check_intensity_image(image)
    if work_image.dtype in (np.uint8, np.uint16):
        top = np.iinfo(work_image.dtype).max
        table = func(np.arange(top + 1, dtype=np.float64) / top)
        table = np.clip(np.rint(np.clip(table, 0.0, 1.0) * top), 0, top).astype(work_image.dtype)
        out = table[work_image]
        if work_image.ndim == 3 and work_image.shape[2] == 4:
            out[..., 3] = work_image[..., 3]
        return out
    work = to_float(work_image)
    return work.to_input_dtype(func(work.pixels.astype(np.float64)))


@register("gamma", title="Gamma", category=CATEGORY, outputs=("image",))
def gamma(
    image: np.ndarray,
    *,
    gamma: Annotated[float, Range(0.05, 10.0)] = 1.0,
    ctx: RunContext | None = None,
) -> Result:
    """Gamma correction: ``out = in ** gamma`` on intensities scaled to [0, 1].

    Parameters
    ----------
    image : ndarray
        Gray, RGB or RGBA image; 8-bit, 16-bit or float. The result keeps the dtype and
        channels (alpha passes through).
    gamma : float
        Exponent, as in scikit-image's ``adjust_gamma``: below 1 brightens the shadows
        and midtones, above 1 darkens them; black and white stay put.
    ctx : RunContext, optional
        Progress and cancellation.

    Returns
    -------
    Result
        ``outputs["image"]``: the corrected image.
    """
    ctx = ctx or null_context()
    ctx.progress(0.0, "Gamma")
    out = _pointwise(image, lambda x: np.power(x, gamma))
    ctx.progress(1.0, "Gamma done")
    return Result({"image": out})


@register("levels", title="Levels", category=CATEGORY, outputs=("image",))
def levels(
    image: np.ndarray,
    *,
    in_low: Annotated[float, Range(0.0, 1.0)] = 0.0,
    in_high: Annotated[float, Range(0.0, 1.0)] = 1.0,
    out_low: Annotated[float, Range(0.0, 1.0)] = 0.0,
    out_high: Annotated[float, Range(0.0, 1.0)] = 1.0,
    gamma: Annotated[float, Range(0.1, 10.0)] = 1.0,
    ctx: RunContext | None = None,
) -> Result:
    """Levels: stretch an input range to an output range, with a midtone gamma.

    ``out = out_low + (out_high - out_low) * clip((in - in_low) / (in_high - in_low), 0, 1) ** (1 / gamma)``
    with every level a fraction of the dtype's range (0..255 for 8-bit, 0..65535 for
    16-bit, the image's own range for float images outside [0, 1]).

    Parameters
    ----------
    image : ndarray
        Gray, RGB or RGBA image; 8-bit, 16-bit or float. The result keeps the dtype and
        channels (alpha passes through).
    in_low : float
        Input black point: this fraction of the range and below becomes ``out_low``.
    in_high : float
        Input white point: this fraction of the range and above becomes ``out_high``.
    out_low : float
        Output level for the input black point (fraction of the range).
    out_high : float
        Output level for the input white point; below ``out_low`` inverts the image.
    gamma : float
        Midtone gamma as in GIMP's and Photoshop's Levels: above 1 brightens the
        midtones, below 1 darkens them.
    ctx : RunContext, optional
        Progress and cancellation.

    Returns
    -------
    Result
        ``outputs["image"]``: the adjusted image.
    """
    ctx = ctx or null_context()
    ctx.progress(0.0, "Levels")
    if not in_high > in_low:
        raise InputError(f"the input white point ({in_high}) must lie above the black point ({in_low})")

    def mapping(x: np.ndarray) -> np.ndarray:
        stretched = np.clip((x - in_low) / (in_high - in_low), 0.0, 1.0)
        if gamma != 1.0:
            stretched = np.power(stretched, 1.0 / gamma)
        return out_low + (out_high - out_low) * stretched

    out = _pointwise(image, mapping)
    ctx.progress(1.0, "Levels done")
    return Result({"image": out})


@register("unsharp_mask", title="Unsharp mask", category=CATEGORY, outputs=("image",))
def unsharp_mask(
    image: np.ndarray,
    *,
    radius: Annotated[float, Range(0.1, 50.0)] = 2.0,
    amount: Annotated[float, Range(0.0, 10.0)] = 1.0,
    ctx: RunContext | None = None,
) -> Result:
    """Sharpen by adding back the difference between the image and a blurred copy.

    ``out = in + amount * (in - gaussian(in, radius))``, clipped to the range.

    Parameters
    ----------
    image : ndarray
        Gray, RGB or RGBA image; 8-bit, 16-bit or float. The result keeps the dtype and
        channels (alpha passes through).
    radius : float
        Standard deviation of the Gaussian blur in pixels: the size of the details
        that get sharpened.
    amount : float
        Strength: 1 doubles the contrast of details finer than the radius; 0 leaves the
        image unchanged.
    ctx : RunContext, optional
        Progress and cancellation.

    Returns
    -------
    Result
        ``outputs["image"]``: the sharpened image.
    """
    ctx = ctx or null_context()
    ctx.progress(0.0, "Unsharp mask")
    work = to_float(check_intensity_image(image))
    blurred = cv2.GaussianBlur(work.pixels, (0, 0), radius, borderType=cv2.BORDER_REFLECT)
    out = work.pixels + np.float32(amount) * (work.pixels - blurred)
    ctx.progress(1.0, "Unsharp mask done")
    return Result({"image": work.to_input_dtype(out)})
