"""Deblurring: Wiener, unsupervised Wiener and Richardson-Lucy deconvolution.

The point-spread function (PSF) comes from parameters (:func:`make_psf`: Gaussian,
motion line or disk) or from a small image (``image2``, e.g. a layer holding a measured
bead or star). Images are padded by reflection before deconvolving, so FFT wrap-around and
the missing light beyond the border do not ring in from the edges.

Richardson-Lucy is implemented here with FFT convolutions (one transform of the PSF
reused every iteration) so each iteration can be previewed and cancelled; on the same
input it matches ``skimage.restoration.richardson_lucy``.
"""

from __future__ import annotations

import math
from typing import Annotated, Callable, Literal

import numpy as np

from maskwork.core.pixels import to_float
from maskwork.operators.context import InputError, Result, RunContext, null_context
from maskwork.operators.registry import Display, Range, ShownFor, register
from maskwork.operators.restore.reduced_preview import offer_reduced_preview, reduce_image
from maskwork.operators.seeds import check_intensity_image

__all__ = ["deblur", "make_psf", "richardson_lucy"]

PSF_KINDS = ("gaussian", "motion", "disk")
#: Preview images Richardson-Lucy offers during a run (at most).
PARTIALS = 15
#: Pixels of the unsupervised Wiener's quick preview: its sampler costs several times a
#: plain Wiener filter per pixel, so its reduced copy is smaller than the others'.
UNSUPERVISED_PREVIEW_PIXELS = 100_000
#: Mirrored padding around the image: this many PSF widths, and at least MIN_PAD pixels.
PAD_PSF_WIDTHS, MIN_PAD = 4, 32


@register("deblur", title="Deblur", category="Restore", outputs=("image",))
def deblur(
    image: np.ndarray,
    image2: np.ndarray | None = None,
    *,
    method: Literal["wiener", "unsupervised_wiener", "richardson_lucy"] = "wiener",
    psf: Annotated[Literal["gaussian", "motion", "disk", "image2"],
                   Display("Blur shape (PSF)", choices=(("image2", "from the second image"),))] = "gaussian",
    psf_sigma: Annotated[float, Range(0.3, 30.0), ShownFor("psf", "gaussian")] = 2.0,
    motion_length: Annotated[float, Range(1.0, 200.0), ShownFor("psf", "motion")] = 15.0,
    motion_angle: Annotated[float, Range(-180.0, 180.0), ShownFor("psf", "motion")] = 0.0,
    disk_radius: Annotated[float, Range(0.5, 50.0), ShownFor("psf", "disk")] = 3.0,
    balance: Annotated[float, Range(1e-5, 10.0), ShownFor("method", "wiener")] = 0.01,
    iterations: Annotated[int, Range(1, 500), ShownFor("method", "richardson_lucy")] = 30,
    ctx: RunContext | None = None,
) -> Result:
    """Undo a known blur by deconvolution.

    Parameters
    ----------
    image : ndarray
        The blurred image: gray, RGB or RGBA; 8-bit, 16-bit or float. The result keeps
        its dtype and channels (alpha is passed through).
    image2 : ndarray, optional
        A small image of the point-spread function (bright spread on a dark background),
        used when ``psf`` is "image2". It is made gray, centred on its centroid and
        normalised to sum 1.
    method : {"wiener", "unsupervised_wiener", "richardson_lucy"}
        "wiener" is one regularised inverse filter (instant; ``balance`` trades
        sharpness for noise); "unsupervised_wiener" estimates that balance itself
        (slower); "richardson_lucy" iterates towards the sharp image, keeping values
        positive, with each iteration shown as a preview.
    psf : {"gaussian", "motion", "disk", "image2"}
        Shape of the blur: "gaussian" (out of focus, atmosphere), "motion" (a straight
        camera shake), "disk" (a defocused lens), or "image2" to take it from the second
        image.
    psf_sigma : float
        Gaussian PSF: standard deviation in pixels.
    motion_length : float
        Motion PSF: length of the streak in pixels.
    motion_angle : float
        Motion PSF: direction of the streak in degrees, counter-clockwise from
        horizontal.
    disk_radius : float
        Disk PSF: radius in pixels.
    balance : float
        Wiener: regularisation; larger suppresses noise and ringing, smaller restores
        more detail.
    iterations : int
        Richardson-Lucy: number of iterations. More sharpen further but also amplify
        noise.
    ctx : RunContext, optional
        Progress, per-iteration previews (Richardson-Lucy) and cancellation.

    Returns
    -------
    Result
        ``outputs["image"]``: the deblurred image.
    """
    ctx = ctx or null_context()
    ctx.progress(0.0, "Deblur: preparing the PSF")
    work = to_float(check_intensity_image(image))
    if psf == "image2":
        if image2 is None:
            raise InputError('the PSF is "image2" but no second image was given: add a small PSF image layer')
        kernel = psf_from_image(image2)
    else:
        kernel = make_psf(psf, sigma=psf_sigma, length=motion_length, angle=motion_angle, radius=disk_radius)
    rows, cols = work.pixels.shape[:2]
    if kernel.shape[0] > rows or kernel.shape[1] > cols:
        raise InputError(
            f"the PSF ({kernel.shape[0]}x{kernel.shape[1]}) is larger than the image ({rows}x{cols})"
        )
    offer_reduced_preview(
        np.asarray(image),
        ctx,
        lambda small, scale, child: deblur(
            small,
            None if image2 is None else _reduced_psf_image(np.asarray(image2), scale),
            method=method,
            psf=psf,
            # The blur is ``scale`` times as wide on the reduced copy (kept within the
            # smallest widths the form allows).
            psf_sigma=max(psf_sigma * scale, 0.3),
            motion_length=max(motion_length * scale, 1.0),
            motion_angle=motion_angle,
            disk_radius=max(disk_radius * scale, 0.5),
            balance=balance,
            iterations=iterations,
            ctx=child,
        )["image"],
        UNSUPERVISED_PREVIEW_PIXELS if method == "unsupervised_wiener" else None,
    )
    # Mirrored context on each side. The FFT wraps the padded image around, and the seam
    # where it does rings far through an inverse filter: it must stay several PSF widths
    # away from the image (on scikit-image's photos PSNR stops improving at about 4).
    margin = max(MIN_PAD, PAD_PSF_WIDTHS * max(kernel.shape))
    pad = [(margin, margin), (margin, margin)]
    if work.is_color:
        pad.append((0, 0))
    padded = np.pad(work.pixels, pad, mode="symmetric")
    inner = (slice(pad[0][0], pad[0][0] + rows), slice(pad[1][0], pad[1][0] + cols))
    iterations_run = 0

    if method == "wiener":
        from skimage.restoration import wiener

        ctx.progress(0.2, "Deblur: Wiener filter")
        out = _per_channel(padded, lambda channel: wiener(channel, kernel, balance, clip=False), ctx)
    elif method == "unsupervised_wiener":
        from skimage.restoration import unsupervised_wiener

        ctx.progress(0.05, "Deblur: unsupervised Wiener (sampling the regularisation)")
        # The sampler calls back once per iteration (a few hundred milliseconds at 3 MP):
        # the place to honour Cancel inside a channel's run of seconds.
        check_each_sample = {"callback": lambda sample: ctx.check()}
        out = _per_channel(
            padded,
            lambda channel: unsupervised_wiener(channel, kernel, user_params=check_each_sample, clip=False, rng=0)[0],
            ctx,
        )
    elif method == "richardson_lucy":
        step = max(1, iterations // PARTIALS)

        def report(i: int, estimate: np.ndarray) -> None:
            ctx.progress(i / iterations, f"Richardson-Lucy iteration {i} of {iterations}")
            if ctx.wants_partials and i < iterations and i % step == 0:
                ctx.partial(Result({"image": work.to_input_dtype(estimate[inner])}, iterations=i))

        # Starting from the blurred image (not a flat grey) makes the first previews useful.
        out = richardson_lucy(padded, kernel, iterations, init=padded, callback=report, check=ctx.check)
        iterations_run = iterations
    else:
        raise ValueError(f"unknown deblurring method {method!r}")
    ctx.progress(1.0, "Deblur done")
    return Result({"image": work.to_input_dtype(out[inner])}, iterations=iterations_run)


def _per_channel(pixels: np.ndarray, func: Callable[[np.ndarray], np.ndarray], ctx: RunContext) -> np.ndarray:
    """Apply a 2D restoration to each channel, reporting progress between channels."""
    if pixels.ndim == 2:
        return func(pixels)
    channels = []
    for index in range(pixels.shape[2]):
        ctx.progress(0.1 + 0.85 * index / pixels.shape[2], f"Deblur: channel {index + 1} of {pixels.shape[2]}")
        channels.append(func(np.ascontiguousarray(pixels[..., index])))
    return np.stack(channels, axis=2)


def make_psf(
    kind: str = "gaussian",
    *,
    sigma: float = 2.0,
    length: float = 15.0,
    angle: float = 0.0,
    radius: float = 3.0,
) -> np.ndarray:
    """A point-spread function: a small odd-sized float64 kernel, centred, summing to 1.

    Parameters
    ----------
    kind : {"gaussian", "motion", "disk"}
        Shape of the blur.
    sigma : float
        "gaussian": standard deviation in pixels (the kernel reaches 3 sigma).
    length : float
        "motion": length of the streak in pixels.
    angle : float
        "motion": direction in degrees, counter-clockwise from horizontal (as seen on
        screen, rows growing downwards).
    radius : float
        "disk": radius in pixels; edge pixels are weighted by the area the disk covers.

    Returns
    -------
    ndarray
        The kernel, (rows, cols), both odd.

    Raises
    ------
    InputError
        For an unknown kind or a size that is not positive.
    """
    if kind == "gaussian":
        if not sigma > 0:
            raise InputError(f"the Gaussian PSF needs sigma > 0, got {sigma}")
        half = max(1, math.ceil(3.0 * sigma))
        axis = np.arange(-half, half + 1, dtype=np.float64)
        profile = np.exp(-0.5 * (axis / sigma) ** 2)
        kernel = np.outer(profile, profile)
    elif kind == "motion":
        if not length >= 1:
            raise InputError(f"the motion PSF needs a length of at least 1 pixel, got {length}")
        theta = math.radians(angle)
        d_row, d_col = -math.sin(theta), math.cos(theta)
        half = math.ceil(length / 2) + 1
        kernel = np.zeros((2 * half + 1, 2 * half + 1))
        # Splat many sub-pixel samples along the segment bilinearly: an anti-aliased line.
        samples = np.linspace(-(length - 1) / 2, (length - 1) / 2, max(2, math.ceil(8 * length)))
        rows, cols = half + samples * d_row, half + samples * d_col
        r0, c0 = np.floor(rows).astype(int), np.floor(cols).astype(int)
        fr, fc = rows - r0, cols - c0
        for dr, dc, w in ((0, 0, (1 - fr) * (1 - fc)), (0, 1, (1 - fr) * fc), (1, 0, fr * (1 - fc)), (1, 1, fr * fc)):
            np.add.at(kernel, (r0 + dr, c0 + dc), w)
    elif kind == "disk":
        if not radius > 0:
            raise InputError(f"the disk PSF needs a radius > 0, got {radius}")
        half = math.ceil(radius)
        sub = 8  # sub-samples per pixel side: coverage of edge pixels
        offsets = (np.arange(sub) + 0.5) / sub - 0.5
        axis = np.arange(-half, half + 1)
        fine = (axis[:, None] + offsets[None, :]).ravel()
        inside = (fine[:, None] ** 2 + fine[None, :] ** 2) <= radius**2
        kernel = inside.reshape(axis.size, sub, axis.size, sub).mean(axis=(1, 3))
    else:
        raise InputError(f"unknown PSF kind {kind!r}; choose from {', '.join(PSF_KINDS)}")
    kernel = _trim(kernel)
    return kernel / kernel.sum()


def _reduced_psf_image(image2: np.ndarray, scale: float) -> np.ndarray:
    """The PSF image for the reduced preview: ``scale`` times as wide and as tall, but at
    least 3 px each way. A blur narrower than a pixel of the reduced copy is nearly a
    point there (a 9 px PSF on a 12 MP photo would shrink to 1 px, which is no image);
    each side is kept on its own, so a long motion blur still shrinks along its length.
    The full-size run uses the PSF as given."""
    return reduce_image(image2, scale, min_side=3)


def _trim(kernel: np.ndarray) -> np.ndarray:
    """Drop all-zero borders symmetrically, keeping the kernel odd-sized and centred."""
    rows, cols = np.flatnonzero(kernel.any(axis=1)), np.flatnonzero(kernel.any(axis=0))
    centre_r, centre_c = kernel.shape[0] // 2, kernel.shape[1] // 2
    half_r = max(centre_r - rows[0], rows[-1] - centre_r)
    half_c = max(centre_c - cols[0], cols[-1] - centre_c)
    return kernel[centre_r - half_r : centre_r + half_r + 1, centre_c - half_c : centre_c + half_c + 1]


def psf_from_image(image) -> np.ndarray:
    """A PSF from a small image: gray, non-negative, centred on its centroid, sum 1.

    Raises
    ------
    InputError
        When the image is not an intensity raster or holds no light.
    """
    work = to_float(check_intensity_image(image, "PSF image (image2)"))
    kernel = work.pixels.mean(axis=2) if work.is_color else work.pixels
    kernel = np.clip(kernel.astype(np.float64), 0.0, None)
    total = kernel.sum()
    if not total > 0:
        raise InputError("the PSF image (image2) is all black: it must show the blur of a point")
    rows, cols = np.indices(kernel.shape)
    centre_r = int(round(float((rows * kernel).sum() / total)))
    centre_c = int(round(float((cols * kernel).sum() / total)))
    # Pad so the centroid sits in the middle of an odd-sized kernel.
    half_r = max(centre_r, kernel.shape[0] - 1 - centre_r)
    half_c = max(centre_c, kernel.shape[1] - 1 - centre_c)
    padded = np.zeros((2 * half_r + 1, 2 * half_c + 1))
    top, left = half_r - centre_r, half_c - centre_c
    padded[top : top + kernel.shape[0], left : left + kernel.shape[1]] = kernel
    return padded / total


def richardson_lucy(
    image: np.ndarray,
    psf: np.ndarray,
    iterations: int = 30,
    *,
    init: np.ndarray | float = 0.5,
    eps: float = 1e-12,
    callback: Callable[[int, np.ndarray], None] | None = None,
    check: Callable[[], None] | None = None,
) -> np.ndarray:
    """Richardson-Lucy deconvolution with FFT convolutions, one observable iteration at a time.

    With the defaults it computes what ``skimage.restoration.richardson_lucy(image, psf,
    iterations, clip=False)`` computes (zero-padded "same" convolutions), channels of a
    (row, col, channel) image being deconvolved independently.

    Parameters
    ----------
    image : ndarray
        Blurred image, (row, col) or (row, col, channel), non-negative floats.
    psf : ndarray
        2D point-spread function (normalised to sum 1 by the caller).
    iterations : int
        Number of multiplicative updates.
    init : ndarray or float
        Starting estimate: an array of ``image``'s shape or a constant.
    eps : float
        Added to the re-blurred estimate to avoid dividing by zero.
    callback : callable, optional
        Called as ``callback(i, estimate)`` after iteration ``i`` (1-based); the
        estimate must not be modified.
    check : callable, optional
        Called before every iteration; raise from it to stop (cancellation).

    Returns
    -------
    ndarray
        The deconvolved estimate, same shape and float dtype as ``image`` (float64 for
        integer input).
    """
    from scipy import fft as sfft  # imported here: the window starts without SciPy's FFT

    image = np.asarray(image)
    dtype = image.dtype if image.dtype in (np.float32, np.float64) else np.float64
    channels_last = image.ndim == 3
    # Channels first and contiguous: the 2D transforms then run over contiguous planes.
    observed = np.ascontiguousarray(np.moveaxis(image, 2, 0) if channels_last else image, dtype=dtype)
    psf = np.asarray(psf, dtype)
    rows, cols = observed.shape[-2:]
    fshape = (
        sfft.next_fast_len(rows + psf.shape[0] - 1, real=True),
        sfft.next_fast_len(cols + psf.shape[1] - 1, real=True),
    )
    psf_ft = sfft.rfft2(psf, fshape)
    mirror_ft = sfft.rfft2(psf[::-1, ::-1], fshape)
    # "same" mode keeps the centre of the full convolution, like scipy.signal.convolve.
    top, left = (psf.shape[0] - 1) // 2, (psf.shape[1] - 1) // 2
    crop = (..., slice(top, top + rows), slice(left, left + cols))

    def convolve(values: np.ndarray, kernel_ft: np.ndarray) -> np.ndarray:
        spectrum = sfft.rfft2(values, fshape, workers=-1)
        spectrum *= kernel_ft
        return sfft.irfft2(spectrum, fshape, workers=-1)[crop]

    estimate = np.empty_like(observed)
    if isinstance(init, np.ndarray) and channels_last:
        init = np.moveaxis(init, 2, 0)
    estimate[...] = init
    for i in range(1, iterations + 1):
        if check is not None:
            check()
        relative = observed / (convolve(estimate, psf_ft) + eps)
        estimate *= convolve(relative, mirror_ft)
        if callback is not None:
            callback(i, np.moveaxis(estimate, 0, 2) if channels_last else estimate)
    return np.moveaxis(estimate, 0, 2) if channels_last else estimate
