"""Watershed from markers (OpenCV, scikit-image, SimpleITK) and splitting touching objects.

All three flavours flood a landscape from the person's markers and keep the marker class
ids in the labels they return:

- ``opencv``: :func:`cv2.watershed` on the 8-bit colour image itself (its landscape is the
  colour difference between neighbouring pixels). OpenCV marks the lines where floods
  meet, and the image border, with -1; those pixels are handed to the label most of
  their neighbours have, so the output never contains -1.
- ``skimage``: :func:`skimage.segmentation.watershed` on a gradient magnitude (Sobel or
  morphological), optionally compact.
- ``simpleitk``: ITK's morphological watershed from markers on the same gradient.

SimpleITK is imported inside the functions that use it, so the window starts without it.
"""

from __future__ import annotations

from typing import Annotated, Literal

import cv2
import numpy as np

from maskwork.core.pixels import to_float_display
from maskwork.operators.context import Cancelled, InputError, Result, RunContext, null_context
from maskwork.operators.registry import Display, Range, ShownFor, register
from maskwork.operators.seeds import check_image, check_markers, check_mask, check_some_finite, mask_pixels, to_uint8_rgb

#: Largest marker id every flavour can carry (OpenCV works in int32).
MAX_LABEL = np.iinfo(np.int32).max


@register("watershed", title="Marker watershed", category="Segmentation/Watershed", outputs=("labels",))
def watershed(
    image: np.ndarray,
    markers: np.ndarray,
    *,
    method: Literal["opencv", "skimage", "simpleitk"] = "skimage",
    gradient: Annotated[Literal["sobel", "morphological"], ShownFor("method", "skimage", "simpleitk")] = "sobel",
    sigma: Annotated[float, Range(0.0, 20.0), Display("Smoothing (sigma)", "px", "none")] = 1.0,
    compactness: Annotated[float, Range(0.0, 1.0), ShownFor("method", "skimage")] = 0.0,
    ctx: RunContext | None = None,
) -> Result:
    """Flood the image from the markers so that every pixel takes the label of one marker.

    Parameters
    ----------
    image : ndarray
        Gray, RGB or RGBA image, (row, col[, channel]); 8-bit, 16-bit or float. Deeper
        images are scaled as they are displayed (0.5 to 99.5 percentile).
    markers : ndarray
        Scribbles of the image's size: 0 = unlabeled, 1..N = classes (at least two
        classes, e.g. 1 = foreground and 2 = background, or one id per object).
    method : {"opencv", "skimage", "simpleitk"}
        Which watershed: OpenCV's (on the colour image), scikit-image's (on a gradient,
        optionally compact) or SimpleITK's morphological watershed (on a gradient).
    gradient : {"sobel", "morphological"}
        Landscape of the scikit-image and SimpleITK flavours: Sobel gradient magnitude,
        or the morphological gradient (3x3 dilation minus erosion). Colour gradients
        combine the channels (root of the sum of squares).
    sigma : float
        Gaussian smoothing in pixels before the watershed (all flavours); 0 turns it
        off. Smoothing keeps texture from stopping the flood.
    compactness : float
        scikit-image flavour only: 0 is the classic watershed; larger values give more
        regular, compact regions (the gradient runs from 0 to about 1, so try 0.001
        to 0.1).
    ctx : RunContext, optional
        Progress and cancellation.

    Returns
    -------
    Result
        ``outputs["labels"]``: int32 labels of the image's size holding the marker ids.
    """
    ctx = ctx or null_context()
    ctx.progress(0.0, "Watershed: preparing")
    image = check_image(image)
    shape = image.shape[:2]
    markers = _check_label_markers(check_markers(markers, shape))

    if method == "opencv":
        rgb = to_uint8_rgb(image)
        if sigma > 0:
            rgb = cv2.GaussianBlur(rgb, (0, 0), sigma)
        ctx.progress(0.2, "Watershed (OpenCV)")
        # cv2.watershed's landscape is the largest channel difference between neighbours,
        # the same in RGB and BGR order, so the channels need no swapping.
        flooded = markers.astype(np.int32)  # a copy: OpenCV writes into it
        cv2.watershed(np.ascontiguousarray(rgb), flooded)
        ctx.progress(0.8, "Watershed: resolving the lines between regions")
        labels = resolve_boundaries(flooded)
    else:
        landscape = gradient_magnitude(image, gradient, sigma)
        ctx.progress(0.2, f"Watershed ({'scikit-image' if method == 'skimage' else 'SimpleITK'})")
        if method == "skimage":
            from skimage.segmentation import watershed as sk_watershed

            labels = sk_watershed(landscape, markers.astype(np.int32), compactness=compactness)
        else:
            import SimpleITK as sitk

            flood = sitk.MorphologicalWatershedFromMarkersImageFilter()
            flood.SetMarkWatershedLine(False)
            flood.SetFullyConnected(False)
            # ITK floods level by level: 16-bit levels make it about five times faster
            # than float on photos, and lose nothing a gradient can tell apart.
            top = float(landscape.max()) or 1.0
            levels = np.round(landscape * (65535.0 / top)).astype(np.uint16)
            out = run_sitk(
                flood,
                ctx,
                sitk.GetImageFromArray(levels),
                sitk.GetImageFromArray(markers.astype(np.uint32)),
                start=0.2,
                stop=0.95,
                message="Watershed (SimpleITK)",
            )
            labels = sitk.GetArrayFromImage(out)
    labels = np.asarray(labels).astype(np.int32, copy=False)
    ctx.progress(1.0, "Watershed done")
    return Result({"labels": labels})


@register("split_objects", title="Split touching objects", category="Segmentation/Watershed", outputs=("labels",))
def split_objects(
    image: np.ndarray,
    mask: np.ndarray,
    *,
    method: Literal["peaks", "h_maxima"] = "peaks",
    min_distance: Annotated[int, Range(1, 500), ShownFor("method", "peaks")] = 10,
    h: Annotated[float, Range(0.0, 100.0), ShownFor("method", "h_maxima"), Display("Neck depth (h)", "px")] = 2.0,
    ctx: RunContext | None = None,
) -> Result:
    """Give each of several touching round objects in a mask its own label.

    Markers come from the maxima of the mask's distance transform (the object centres);
    a watershed of the inverted distance, restricted to the mask, then divides the mask
    along the necks between them.

    Parameters
    ----------
    image : ndarray
        The image the mask belongs to; only its size is used (the mask must match it).
    mask : ndarray
        Objects to split: nonzero pixels are inside.
    method : {"peaks", "h_maxima"}
        How object centres are found: local maxima at least ``min_distance`` apart, or
        maxima that stand at least ``h`` pixels above their surroundings.
    min_distance : int
        "peaks": smallest distance in pixels between two object centres; about the
        radius of the smallest object.
    h : float
        "h_maxima": how much deeper (in pixels of distance to the edge) a centre must be
        than the neck joining it to a neighbour; larger values split less.
    ctx : RunContext, optional
        Progress and cancellation.

    Returns
    -------
    Result
        ``outputs["labels"]``: int32 labels 1..K (one per object), 0 outside the mask.
    """
    from scipy import ndimage as ndi  # imported here: the window starts without SciPy

    ctx = ctx or null_context()
    ctx.progress(0.0, "Splitting objects: distance transform")
    inside = mask_pixels(check_mask(mask, check_image(image)))
    if not inside.any():
        raise InputError("the mask is empty: paint or compute a mask of the objects to split")
    distance = ndi.distance_transform_edt(inside)
    components, count = ndi.label(inside)
    ctx.progress(0.3, "Splitting objects: finding centres")
    if method == "peaks":
        from skimage.feature import peak_local_max

        centres = peak_local_max(distance, min_distance=min_distance, labels=components, exclude_border=False)
        seeds = np.zeros(inside.shape, bool)
        seeds[tuple(centres.T)] = True
    else:
        from skimage.morphology import local_maxima

        seeds = h_maxima(distance, h, ctx) if h > 0 else local_maxima(distance).astype(bool)
    seeds &= inside
    seeds_labels, found = ndi.label(seeds, structure=np.ones((3, 3)))
    # Every connected piece of the mask gets at least one centre, even a thin one.
    has_seed = np.zeros(count + 1, bool)
    has_seed[components[seeds]] = True
    orphans = np.flatnonzero(~has_seed[1:]) + 1
    if orphans.size:
        positions = ndi.maximum_position(distance, components, orphans)
        for offset, (row, col) in enumerate(positions, start=1):
            seeds_labels[row, col] = found + offset
    ctx.progress(0.6, "Splitting objects: watershed")
    from skimage.segmentation import relabel_sequential
    from skimage.segmentation import watershed as sk_watershed

    labels = sk_watershed(-distance, seeds_labels, mask=inside)
    labels = relabel_sequential(labels)[0].astype(np.int32, copy=False)
    ctx.progress(1.0, "Splitting objects done")
    return Result({"labels": labels}, scores={"objects": int(labels.max())})


# ------------------------------------------------------------------ helpers


def h_maxima(image: np.ndarray, h: float, ctx: RunContext | None = None) -> np.ndarray:
    """Boolean maxima that rise at least ``h`` above every path to a higher maximum.

    The same pixels as :func:`skimage.morphology.h_maxima` (8-connected), computed as
    ``image - reconstruction_by_dilation(image - h, image) >= h`` with SimpleITK,
    which is about twenty times faster on the distance maps of large masks and can be
    cancelled.
    """
    import SimpleITK as sitk

    ctx = ctx or null_context()
    ceiling = np.asarray(image, dtype=np.float64)
    rebuild = sitk.ReconstructionByDilationImageFilter()
    rebuild.SetFullyConnected(True)
    rebuilt = run_sitk(
        rebuild,
        ctx,
        sitk.GetImageFromArray(ceiling - h),
        sitk.GetImageFromArray(ceiling),
        start=0.3,
        stop=0.6,
        message="Splitting objects: finding centres",
    )
    # Float rounding must not turn a maximum of height exactly h into a non-maximum.
    slack = 4 * np.finfo(np.float64).eps * max(1.0, float(np.abs(ceiling).max()))
    return (ceiling - sitk.GetArrayViewFromImage(rebuilt)) >= h - slack


def _check_label_markers(markers: np.ndarray | None) -> np.ndarray:
    if markers is None:
        raise InputError("the watershed needs markers: scribble classes 1..N")
    if markers.dtype == bool:
        markers = markers.astype(np.uint8)
    if markers.size and (markers.min() < 0 or int(markers.max()) > MAX_LABEL):
        raise InputError(f"markers must be 0 (unlabeled) or class ids 1..{MAX_LABEL}")
    classes = np.unique(markers)
    classes = classes[classes > 0]
    if classes.size < 2:
        raise InputError(
            "the watershed needs markers of at least two classes (e.g. 1 = foreground, 2 = background)"
            if classes.size
            else "the watershed needs markers: scribble at least two classes (1 = foreground, 2 = background)"
        )
    return markers


def as_float_channels(image: np.ndarray) -> np.ndarray:
    """(row, col, channel) float32 in [0, 1] as displayed, after checking the image.

    8-bit divided by 255, deeper images stretched between their 0.5 and 99.5 percentiles
    (:func:`maskwork.core.pixels.to_float_display`); NaN becomes 0.
    """
    image = check_some_finite(check_image(image))
    return np.atleast_3d(to_float_display(image))


def gradient_magnitude(image: np.ndarray, kind: str = "sobel", sigma: float = 0.0) -> np.ndarray:
    """Float32 gradient magnitude of a gray or colour image, channels combined.

    Parameters
    ----------
    image : ndarray
        Gray, RGB or RGBA image of any dtype (scaled with :func:`as_float_channels`).
    kind : {"sobel", "morphological"}
        Sobel magnitude, or 3x3 dilation minus erosion.
    sigma : float
        Gaussian smoothing before the gradient; 0 for none.
    """
    channels = as_float_channels(image)
    total = np.zeros(channels.shape[:2], np.float32)
    kernel = np.ones((3, 3), np.uint8)
    for index in range(channels.shape[2]):
        channel = np.ascontiguousarray(channels[..., index])
        if sigma > 0:
            channel = cv2.GaussianBlur(channel, (0, 0), sigma)
        if kind == "sobel":
            # Scaled like skimage.filters.sobel: a unit step gives about 1.
            gx = cv2.Sobel(channel, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT) / 4.0
            gy = cv2.Sobel(channel, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT) / 4.0
            total += gx * gx + gy * gy
        elif kind == "morphological":
            g = cv2.morphologyEx(channel, cv2.MORPH_GRADIENT, kernel)
            total += g * g
        else:
            raise InputError(f"unknown gradient {kind!r}; choose sobel or morphological")
    return np.sqrt(total)


def resolve_boundaries(flooded: np.ndarray) -> np.ndarray:
    """Replace OpenCV's -1 (watershed lines and the image border) with real labels.

    Each such pixel takes the label most of its eight neighbours carry (repeated while
    some pixels have only unresolved neighbours); ties go to the smaller label.
    """
    labels = flooded.copy()
    rows, cols = labels.shape
    for _ in range(max(rows, cols)):
        unknown = np.flatnonzero(labels.ravel() < 0)
        if unknown.size == 0:
            break
        r, c = np.divmod(unknown, cols)
        padded = np.pad(labels, 1, constant_values=-1)
        votes = np.stack(
            [padded[r + 1 + dr, c + 1 + dc] for dr in (-1, 0, 1) for dc in (-1, 0, 1) if dr or dc], axis=1
        )
        winners = _row_modes(votes)
        resolved = winners >= 0
        if not resolved.any():
            break
        labels.ravel()[unknown[resolved]] = winners[resolved]
    if (labels < 0).any():  # only when no pixel has a label at all
        labels[labels < 0] = 0
    return labels


def _row_modes(votes: np.ndarray) -> np.ndarray:
    """Most frequent non-negative value in each row (-1 where a row has none)."""
    n, k = votes.shape
    order = np.sort(votes, axis=1)
    # Run lengths of equal values along each sorted row.
    starts = np.ones((n, k), bool)
    starts[:, 1:] = order[:, 1:] != order[:, :-1]
    run_id = np.cumsum(starts, axis=1)
    counts = np.zeros((n, k + 1), np.int32)
    np.add.at(counts, (np.repeat(np.arange(n), k), run_id.ravel()), 1)
    lengths = np.take_along_axis(counts, run_id, axis=1)
    lengths[order < 0] = 0
    best = np.argmax(lengths, axis=1)  # first maximum: the smallest label among ties
    winners = order[np.arange(n), best]
    winners[lengths[np.arange(n), best] == 0] = -1
    return winners


def run_sitk(process, ctx: RunContext, *inputs, start: float = 0.0, stop: float = 1.0, message: str = ""):
    """Execute a SimpleITK filter, relaying its progress and aborting it on cancel.

    Parameters
    ----------
    process : SimpleITK filter object
        Configured filter; its ``Execute(*inputs)`` is called.
    ctx : RunContext
        Progress is mapped into ``[start, stop]``; a cancel request aborts the filter and
        raises :class:`Cancelled`.
    """
    import SimpleITK as sitk

    def relay() -> None:
        # Never raise inside the callback: SimpleITK turns that into a RuntimeError.
        try:
            ctx.progress(start + (stop - start) * process.GetProgress(), message)
        except Cancelled:
            process.Abort()

    ctx.check()
    process.AddCommand(sitk.sitkProgressEvent, relay)
    try:
        return process.Execute(*inputs)
    except RuntimeError:
        ctx.check()  # an abort we asked for becomes Cancelled
        raise
    finally:
        process.RemoveAllCommands()
        ctx.check()
