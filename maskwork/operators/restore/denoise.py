"""Denoising: non-local means, bilateral, total variation, wavelet, median and Gaussian.

Intensity parameters (``h``, ``sigma_color``) are in 8-bit grey levels (0-255) whatever
the image's depth, so the same value means the same fraction of the range on 8-bit,
16-bit and float images. :func:`estimate_noise` measures the noise of an image and
:func:`suggested_parameters` turns that into starting values for the form.
"""

from __future__ import annotations

from typing import Annotated, Literal

import cv2
import numpy as np

from maskwork.core.pixels import FloatImage, to_float, value_range
from maskwork.operators.context import Result, RunContext, null_context
from maskwork.operators.registry import Display, Range, ShownFor, Suggestion, register
from maskwork.operators.restore.reduced_preview import offer_reduced_preview
from maskwork.operators.seeds import check_intensity_image
from maskwork.operators.stoppable import call_stoppable

__all__ = ["denoise", "estimate_noise", "intensity_range", "noise_suggestion", "suggested_parameters"]

METHODS = ("nl_means", "bilateral", "tv_chambolle", "wavelet", "median", "gaussian")
#: Methods that take seconds on large photos and so offer a preview from a reduced copy
#: first; the other three are a fraction of a second at 12 MP.
PREVIEWED_METHODS = ("nl_means", "tv_chambolle", "wavelet")
#: Pixels of non-local means' reduced copy: its search costs about 1 s per 0.25 MP of
#: colour photo on a loaded core, so its quick preview is smaller than the others'.
NL_MEANS_PREVIEW_PIXELS = 100_000
#: Half the side of the central crop :func:`noise_suggestion` measures: about a megapixel
#: estimates the noise as well as the whole image, in a fraction of the time.
SUGGESTION_HALF_CROP = 512
#: Patch comparisons (pixels x search-window area) per non-local means tile: 240 x 240
#: pixels at the default 21 x 21 window, a fraction of a second, so Cancel is quick.
NL_MEANS_TILE_WORK = 240 * 240 * 21 * 21
#: Smallest non-local means tile side: below it the halo would cost more than the tile.
NL_MEANS_MIN_TILE = 64
#: Most values (pixels x channels) total variation denoises in this process: about half
#: a second on a loaded core. Larger images run in a child process that Cancel ends.
TV_IN_PROCESS_VALUES = 750_000


def noise_suggestion(image: np.ndarray) -> tuple[str, dict]:
    """The form's suggestion: the noise of ``image`` and the parameters that match it.

    Parameters
    ----------
    image : ndarray
        Gray, RGB or RGBA image of any dtype.

    Returns
    -------
    text : str
        The estimated sigma, in the image's units.
    values : dict
        :func:`suggested_parameters` for that sigma and the image's intensity range.
    """
    rows, cols = image.shape[:2]
    half = SUGGESTION_HALF_CROP
    crop = image[max(0, rows // 2 - half) : rows // 2 + half, max(0, cols // 2 - half) : cols // 2 + half]
    sigma = estimate_noise(crop)
    return f"Estimated noise: sigma {sigma:.3g} (image units)", suggested_parameters(sigma, intensity_range(crop))


@register("denoise", title="Denoise", category="Restore", outputs=("image",), panel_views=(Suggestion(noise_suggestion),))
def denoise(
    image: np.ndarray,
    *,
    method: Annotated[Literal["nl_means", "bilateral", "tv_chambolle", "wavelet", "median", "gaussian"],
                      Display(choices=(("nl_means", "non-local means"), ("tv_chambolle", "total variation")))] = "nl_means",
    h: Annotated[float, Range(0.01, 100.0), ShownFor("method", "nl_means"), Display("Strength (h)", "grey levels")] = 10.0,
    patch_size: Annotated[int, Range(3, 15), ShownFor("method", "nl_means"), Display(unit="px")] = 7,
    patch_distance: Annotated[int, Range(1, 30), ShownFor("method", "nl_means"), Display("Search distance", "px")] = 10,
    sigma_color: Annotated[float, Range(0.01, 255.0), ShownFor("method", "bilateral"), Display("Colour sigma", "grey levels")] = 40.0,
    sigma_space: Annotated[float, Range(0.5, 30.0), ShownFor("method", "bilateral"), Display("Space sigma", "px")] = 3.0,
    d: Annotated[int, Range(0, 31), ShownFor("method", "bilateral"), Display("Diameter", "px", "from space sigma")] = 0,
    weight: Annotated[float, Range(0.0001, 2.0), ShownFor("method", "tv_chambolle")] = 0.1,
    wavelet_method: Annotated[Literal["BayesShrink", "VisuShrink"], ShownFor("method", "wavelet")] = "BayesShrink",
    size: Annotated[int, Range(3, 31), ShownFor("method", "median"), Display(unit="px")] = 3,
    sigma: Annotated[float, Range(0.1, 20.0), ShownFor("method", "gaussian"), Display(unit="px")] = 1.0,
    ctx: RunContext | None = None,
) -> Result:
    """Reduce noise with one of six classical filters.

    Parameters
    ----------
    image : ndarray
        Gray, RGB or RGBA image; 8-bit, 16-bit or float. The result keeps its dtype and
        channels (alpha is passed through).
    method : {"nl_means", "bilateral", "tv_chambolle", "wavelet", "median", "gaussian"}
        "nl_means" averages similar patches (best on photos; OpenCV for 8-bit,
        scikit-image's fast mode otherwise); "bilateral" averages nearby pixels of similar
        value; "tv_chambolle" favours flat regions with sharp edges; "wavelet" shrinks
        small wavelet coefficients; "median" removes salt-and-pepper noise; "gaussian"
        blurs everything.
    h : float
        Non-local means strength in 8-bit grey levels; about the noise sigma (see the
        estimate) works well. Larger removes more noise and more texture.
    patch_size : int
        Non-local means: side of the compared patches in pixels (odd).
    patch_distance : int
        Non-local means: how far (in pixels) to search for similar patches.
    sigma_color : float
        Bilateral: how different (in 8-bit grey levels) two values may be and still be
        averaged; about two to three times the noise sigma.
    sigma_space : float
        Bilateral: spatial reach in pixels (Gaussian sigma).
    d : int
        Bilateral: diameter of the neighbourhood in pixels; 0 derives it from sigma_space.
    weight : float
        Total variation: denoising weight for intensities in [0, 1]; larger is flatter.
    wavelet_method : {"BayesShrink", "VisuShrink"}
        Wavelet: thresholding rule. BayesShrink adapts a threshold per sub-band and keeps
        more detail; VisuShrink uses one universal threshold and smooths more.
    size : int
        Median: side of the square window in pixels (made odd).
    sigma : float
        Gaussian: standard deviation of the blur in pixels.
    ctx : RunContext, optional
        Progress and cancellation.

    Returns
    -------
    Result
        ``outputs["image"]``: the denoised image; ``scores["noise_sigma"]``: the noise
        estimated in the input, in its intensity units.
    """
    ctx = ctx or null_context()
    image = check_intensity_image(image)
    if method in PREVIEWED_METHODS:

        def run_reduced(small: np.ndarray, scale: float, child: RunContext) -> np.ndarray:
            # Reducing averaged the noise down by ``scale``: so is the strength.
            reduced = denoise(
                small,
                method=method,
                h=h * scale,
                patch_size=patch_size,
                patch_distance=patch_distance,
                weight=weight * scale,
                wavelet_method=wavelet_method,
                ctx=child,
            )
            return reduced["image"]

        offer_reduced_preview(image, ctx, run_reduced, NL_MEANS_PREVIEW_PIXELS if method == "nl_means" else None)
    ctx.progress(0.0, "Denoise: estimating the noise")
    work = to_float(image)
    noise = _estimate(work.pixels) * work.scale
    ctx.progress(0.1, f"Denoise ({method})")
    final = None  # set by methods that produce the input's dtype directly
    if method == "nl_means":
        final, out = _nl_means(work, np.asarray(image), h, patch_size, patch_distance, ctx)
    elif method == "bilateral":
        out = cv2.bilateralFilter(work.pixels, d, sigma_color / 255.0, sigma_space)
    elif method == "tv_chambolle":
        from skimage.restoration import denoise_tv_chambolle

        settings = {"weight": weight, "channel_axis": -1 if work.is_color else None}
        if work.pixels.size > TV_IN_PROCESS_VALUES:
            # Hundreds of iterations inside one library call that offers no callback.
            out = call_stoppable(ctx, denoise_tv_chambolle, work.pixels, **settings)
        else:
            out = denoise_tv_chambolle(work.pixels, **settings)
    elif method == "wavelet":
        from skimage.restoration import denoise_wavelet

        out = denoise_wavelet(
            work.pixels,
            method=wavelet_method,
            mode="soft",
            rescale_sigma=True,
            channel_axis=-1 if work.is_color else None,
            convert2ycbcr=work.is_color,
        )
    elif method == "median":
        out = _median(work, np.asarray(image), size)
    elif method == "gaussian":
        out = cv2.GaussianBlur(work.pixels, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    else:  # the registry checks choices; a direct call may not
        raise ValueError(f"unknown denoising method {method!r}; choose from {', '.join(METHODS)}")
    ctx.progress(0.95, "Denoise: converting back")
    result = final if final is not None else work.to_input_dtype(out)
    ctx.progress(1.0, "Denoise done")
    return Result({"image": result}, scores={"noise_sigma": float(noise)})


def _nl_means(work: FloatImage, image: np.ndarray, h: float, patch_size: int, patch_distance: int, ctx: RunContext):
    """Non-local means: OpenCV on 8-bit images, scikit-image's fast mode on deeper ones.

    Both run tile by tile (:func:`_by_tiles`) so that Cancel is honoured between tiles: a
    whole 3 MP photo is one library call of tens of seconds. Returns ``(final, None)``
    with ``final`` in the input's dtype and shape for 8-bit input, else ``(None, working
    pixels)``.
    """
    patch_size = patch_size | 1
    # A pixel's result reads its search window, each of whose patches reaches further by
    # half a patch: a tile computed with this much of its surroundings ends up exactly as
    # in the whole image.
    halo = patch_distance + patch_size // 2
    window = 2 * patch_distance + 1
    if work.dtype == np.uint8:
        if work.is_color:
            color = image[..., :3]
            # OpenCV denoises luminance and chrominance separately (via Lab) and expects BGR.
            bgr = cv2.cvtColor(np.ascontiguousarray(color), cv2.COLOR_RGB2BGR)
            out = _by_tiles(
                lambda piece: cv2.fastNlMeansDenoisingColored(piece, None, h, h, patch_size, window), bgr, halo, window, ctx
            )
            out = cv2.cvtColor(out, cv2.COLOR_BGR2RGB)
            if work.alpha is not None:
                out = np.concatenate([out, work.alpha[..., None]], axis=2)
        else:
            gray = np.ascontiguousarray(image.reshape(image.shape[:2]))
            out = _by_tiles(lambda piece: cv2.fastNlMeansDenoising(piece, None, h, patch_size, window), gray, halo, window, ctx)
        return out.reshape(work.shape), None
    from skimage.restoration import denoise_nl_means

    def denoise_piece(piece: np.ndarray) -> np.ndarray:
        # Without a sigma, scikit-image's h (in [0, 1] units) behaves like OpenCV's h / 255.
        return denoise_nl_means(
            piece,
            patch_size=patch_size,
            patch_distance=patch_distance,
            h=h / 255.0,
            fast_mode=True,
            channel_axis=-1 if work.is_color else None,
        )

    return None, _by_tiles(denoise_piece, work.pixels, halo, window, ctx)


def _by_tiles(filter_piece, pixels: np.ndarray, halo: int, window: int, ctx: RunContext) -> np.ndarray:
    """``filter_piece`` applied tile by tile to ``pixels``, each tile with ``halo`` pixels of
    its surroundings, checking for Cancel between tiles.

    Tiles are sized so that one costs about :data:`NL_MEANS_TILE_WORK` patch comparisons
    (``window`` squared per pixel), at least :data:`NL_MEANS_MIN_TILE` pixels a side: about
    half a second each on a loaded 2-core machine at the default search window.
    """
    rows, cols = pixels.shape[:2]
    side = max(NL_MEANS_MIN_TILE, int(np.sqrt(NL_MEANS_TILE_WORK / window**2)))
    starts = [(top, left) for top in range(0, rows, side) for left in range(0, cols, side)]
    out = None
    for index, (top, left) in enumerate(starts):
        ctx.progress(0.1 + 0.85 * index / len(starts), f"Denoise (nl_means): tile {index + 1} of {len(starts)}")
        bottom, right = min(rows, top + side), min(cols, left + side)
        above, before = max(0, top - halo), max(0, left - halo)
        piece = filter_piece(np.ascontiguousarray(pixels[above : min(rows, bottom + halo), before : min(cols, right + halo)]))
        if out is None:
            out = np.empty(pixels.shape, piece.dtype)
        out[top:bottom, left:right] = piece[top - above : bottom - above, left - before : right - before]
    return out


def _median(work: FloatImage, image: np.ndarray, size: int) -> np.ndarray:
    """Median filter: OpenCV where it supports the dtype and size, SciPy otherwise."""
    size = size | 1
    if work.dtype == np.uint8:
        channels = image.reshape(*image.shape[:2], -1)[..., :3]
        out = cv2.medianBlur(np.ascontiguousarray(channels if channels.shape[2] == 3 else channels[..., 0]), size)
        return out.astype(np.float32) / 255.0
    if size <= 5:
        # OpenCV's median takes float32 only for 3x3 and 5x5 windows.
        return cv2.medianBlur(work.pixels, size)
    from scipy import ndimage

    footprint = (size, size, 1) if work.is_color else (size, size)
    return ndimage.median_filter(work.pixels, size=footprint, mode="reflect")


def _estimate(pixels: np.ndarray) -> float:
    from skimage.restoration import estimate_sigma

    if pixels.ndim == 3:
        return float(estimate_sigma(pixels, channel_axis=-1, average_sigmas=True))
    return float(estimate_sigma(pixels))


def estimate_noise(image) -> float:
    """Standard deviation of the Gaussian noise in ``image``, in its intensity units.

    Uses scikit-image's wavelet-based ``estimate_sigma`` (robust median of the finest
    diagonal coefficients), averaged over the colour channels; alpha is ignored. For an
    8-bit image the answer is in grey levels 0-255, for 16-bit in 0-65535, for a float
    image in its own units.

    Parameters
    ----------
    image : ndarray
        Gray, RGB or RGBA image of any dtype.

    Returns
    -------
    float
        The estimated noise sigma.
    """
    work = to_float(check_intensity_image(image))
    return _estimate(work.pixels) * work.scale


def intensity_range(image: np.ndarray) -> float:
    """The span of intensities that 1.0 stands for in the float copy of ``image``.

    255 for 8-bit, 65535 for 16-bit, 1 for float images within [0, 1], max - min for
    other float images and for 32- and 64-bit integer ones (alpha ignored); see
    :func:`maskwork.core.pixels.value_range`.
    """
    return value_range(image)[1]


def suggested_parameters(sigma: float, data_range: float = 255.0) -> dict:
    """Starting parameters for :func:`denoise` given a noise estimate.

    Parameters
    ----------
    sigma : float
        Noise standard deviation, e.g. from :func:`estimate_noise`.
    data_range : float
        The span of intensities ``sigma`` is measured against: 255 for 8-bit images,
        65535 for 16-bit, 1 for float images in [0, 1]; :func:`intensity_range` gives it
        for any image.

    Returns
    -------
    dict
        Parameter name -> suggested value (``h``, ``sigma_color``, ``weight``, ``size``,
        ``sigma``), each within its declared range.
    """
    level = max(0.0, float(sigma)) / float(data_range) * 255.0  # in 8-bit grey levels
    fraction = level / 255.0
    # Two significant digits: a 16-bit camera that fills 0..900 of 0..65535 has noise of a
    # tenth of an 8-bit level, and h = 0.5 (the old floor) blurred it 4x too strongly.
    return {
        # Factors found best on scikit-image's photos with Gaussian noise of 10-30 levels.
        "h": _two_digits(0.85 * level, 0.01, 100.0),
        "sigma_color": _two_digits(3.0 * level, 0.01, 255.0),
        "weight": _two_digits(0.6 * fraction, 0.0001, 2.0),
        "size": 3 if level < 25 else 5,
        "sigma": round(float(np.clip(0.04 * level, 0.5, 20.0)), 2),
    }


def _two_digits(value: float, low: float, high: float) -> float:
    """``value`` rounded to two significant digits, within [low, high]."""
    return float(np.clip(float(f"{float(value):.2g}"), low, high))
