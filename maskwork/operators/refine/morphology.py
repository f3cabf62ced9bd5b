"""Mask refinement: morphology, holes, small objects, smoothing, components, grow/shrink.

Every operator here takes a ``mask`` (nonzero = inside; a labels layer works too, its
nonzero pixels being the mask, unless every pixel has a class: then the mask would be the
whole image, and :mod:`maskwork.operators.refine.labels` cleans such labels class by
class) and returns a new boolean mask, except ``connected_components`` which returns
labels (and keeps differently labelled touching regions apart when given labels).

The mask is their first, required input. They also take an optional ``image``, used only
to check that the mask has the image's size. That keeps them usable from the command line,
which always reads ``--image`` (``maskwork run fill_holes --image photo.png --mask
mask.png -o filled.png``), and lets the window pass the picture the mask was drawn on.

Disc-shaped operations are exact: the footprint is every offset within Euclidean
distance ``radius`` (not OpenCV's elliptical kernel, which is not quite a disc). Small
radii run as OpenCV morphology with that footprint; larger ones through an exact
Euclidean distance transform (same result, O(pixels) instead of O(pixels * radius^2)).
Like OpenCV and scikit-image, the image border neither erodes nor dilates a mask.
"""

from __future__ import annotations

from typing import Annotated, Literal

import cv2
import numpy as np

from maskwork.operators.context import InputError, Result, RunContext, null_context
from maskwork.operators.registry import Display, Range, register
from maskwork.operators.seeds import check_mask, mask_pixels

CATEGORY = "Refine"
#: Radius above which a distance transform beats OpenCV morphology with a disc footprint.
DISTANCE_TRANSFORM_RADIUS = 16


@register("morphology", title="Open / close / dilate / erode", category=CATEGORY, outputs=("mask",))
def morphology(
    mask: np.ndarray,
    image: np.ndarray | None = None,
    *,
    operation: Literal["open", "close", "dilate", "erode"] = "open",
    radius: Annotated[int, Range(1, 500)] = 2,
    ctx: RunContext | None = None,
) -> Result:
    """Open, close, dilate or erode a mask with a disc.

    Parameters
    ----------
    mask : ndarray
        Mask (nonzero = inside) or labels layer of the image's size.
    image : ndarray, optional
        The image the mask belongs to; only its size is used, to check the mask's.
    operation : {"open", "close", "dilate", "erode"}
        "dilate" grows the mask by the disc, "erode" shrinks it; "open" (erode then
        dilate) removes specks and thin spurs smaller than the disc, "close" (dilate then
        erode) fills gaps and holes smaller than the disc.
    radius : int
        Radius of the disc in pixels.
    ctx : RunContext, optional
        Progress and cancellation.

    Returns
    -------
    Result
        ``outputs["mask"]``: boolean mask.
    """
    ctx = ctx or null_context()
    inside = _inside(mask, image)
    ctx.progress(0.0, f"{operation.capitalize()} (radius {radius})")
    if operation == "dilate":
        out = dilate(inside, radius)
    elif operation == "erode":
        out = erode(inside, radius)
    elif operation == "open":
        out = erode(inside, radius)
        ctx.progress(0.5, "Opening: dilating")
        out = dilate(out, radius)
    elif operation == "close":
        out = dilate(inside, radius)
        ctx.progress(0.5, "Closing: eroding")
        out = erode(out, radius)
    else:
        raise InputError(f"unknown operation {operation!r}; use open, close, dilate or erode")
    ctx.progress(1.0, "Done")
    return _mask_result(out)


@register("grow_shrink", title="Grow / shrink by N pixels", category=CATEGORY, outputs=("mask",))
def grow_shrink(
    mask: np.ndarray,
    image: np.ndarray | None = None,
    *,
    pixels: Annotated[int, Range(-200, 200)] = 5,
    ctx: RunContext | None = None,
) -> Result:
    """Grow or shrink a mask by an exact Euclidean distance.

    Parameters
    ----------
    mask : ndarray
        Mask (nonzero = inside) or labels layer of the image's size.
    image : ndarray, optional
        The image the mask belongs to; only its size is used, to check the mask's.
    pixels : int
        Distance in pixels: positive grows the mask by every pixel within that distance
        of it, negative shrinks it by every pixel within that distance of the outside.
    ctx : RunContext, optional
        Progress and cancellation.

    Returns
    -------
    Result
        ``outputs["mask"]``: boolean mask.
    """
    ctx = ctx or null_context()
    inside = _inside(mask, image)
    ctx.progress(0.0, f"{'Growing' if pixels >= 0 else 'Shrinking'} by {abs(pixels)} px")
    if pixels > 0:
        out = dilate(inside, pixels)
    elif pixels < 0:
        out = erode(inside, -pixels)
    else:
        out = inside.copy()
    ctx.progress(1.0, "Done")
    return _mask_result(out)


@register("fill_holes", title="Fill holes", category=CATEGORY, outputs=("mask",))
def fill_holes(
    mask: np.ndarray,
    image: np.ndarray | None = None,
    *,
    max_size: Annotated[int, Range(0, 1_000_000_000), Display("Largest hole", "px", "any size")] = 0,
    ctx: RunContext | None = None,
) -> Result:
    """Fill the holes of a mask: background regions that do not reach the image border.

    Parameters
    ----------
    mask : ndarray
        Mask (nonzero = inside) or labels layer of the image's size.
    image : ndarray, optional
        The image the mask belongs to; only its size is used, to check the mask's.
    max_size : int
        Fill only holes of at most this many pixels; 0 fills every hole. Background
        pixels touching only diagonally count as separate holes (as in
        scipy.ndimage.binary_fill_holes).
    ctx : RunContext, optional
        Progress and cancellation.

    Returns
    -------
    Result
        ``outputs["mask"]``: boolean mask.
    """
    ctx = ctx or null_context()
    inside = _inside(mask, image)
    ctx.progress(0.0, "Finding holes")
    outside = np.ascontiguousarray(~inside, np.uint8)
    count, regions = cv2.connectedComponents(outside, connectivity=4, ltype=cv2.CV_32S)
    ctx.progress(0.5, "Filling holes")
    is_hole = np.ones(count, bool)
    is_hole[0] = False  # OpenCV's label 0 is the mask itself
    for edge in (regions[0, :], regions[-1, :], regions[:, 0], regions[:, -1]):
        is_hole[edge] = False
    if max_size > 0:
        is_hole &= np.bincount(regions.ravel(), minlength=count) <= max_size
    out = inside | is_hole[regions]
    ctx.progress(1.0, "Done")
    return _mask_result(out, holes=int(np.count_nonzero(is_hole)))


@register("remove_small_objects", title="Remove small objects", category=CATEGORY, outputs=("mask",))
def remove_small_objects(
    mask: np.ndarray,
    image: np.ndarray | None = None,
    *,
    min_size: Annotated[int, Range(1, 1_000_000_000)] = 64,
    connectivity: Literal[4, 8] = 8,
    ctx: RunContext | None = None,
) -> Result:
    """Remove the connected parts of a mask smaller than a size.

    Parameters
    ----------
    mask : ndarray
        Mask (nonzero = inside) or labels layer of the image's size.
    image : ndarray, optional
        The image the mask belongs to; only its size is used, to check the mask's.
    min_size : int
        Parts with fewer pixels than this are removed; parts of exactly this size stay.
    connectivity : {4, 8}
        Pixels touching by an edge (4) or also by a corner (8) belong to the same part.
    ctx : RunContext, optional
        Progress and cancellation.

    Returns
    -------
    Result
        ``outputs["mask"]``: boolean mask.
    """
    ctx = ctx or null_context()
    inside = _inside(mask, image)
    ctx.progress(0.0, "Measuring parts")
    regions, areas = _components(inside, connectivity)
    ctx.progress(0.5, "Removing small parts")
    keep = areas >= min_size
    keep[0] = False
    out = keep[regions]
    ctx.progress(1.0, "Done")
    return _mask_result(out, removed=int(np.count_nonzero(~keep[1:])))


@register("keep_largest", title="Keep largest component", category=CATEGORY, outputs=("mask",))
def keep_largest(
    mask: np.ndarray,
    image: np.ndarray | None = None,
    *,
    connectivity: Literal[4, 8] = 8,
    ctx: RunContext | None = None,
) -> Result:
    """Keep only the largest connected part of a mask.

    Parameters
    ----------
    mask : ndarray
        Mask (nonzero = inside) or labels layer of the image's size.
    image : ndarray, optional
        The image the mask belongs to; only its size is used, to check the mask's. An empty mask
        stays empty.
    connectivity : {4, 8}
        Pixels touching by an edge (4) or also by a corner (8) belong to the same part.
    ctx : RunContext, optional
        Progress and cancellation.

    Returns
    -------
    Result
        ``outputs["mask"]``: boolean mask; of equally large parts, the first in
        reading order is kept.
    """
    ctx = ctx or null_context()
    inside = _inside(mask, image)
    ctx.progress(0.0, "Measuring parts")
    regions, areas = _components(inside, connectivity)
    if len(areas) <= 1:
        out = np.zeros_like(inside)
    else:
        out = regions == 1 + int(np.argmax(areas[1:]))
    ctx.progress(1.0, "Done")
    return _mask_result(out, components=len(areas) - 1)


@register("smooth_boundary", title="Smooth boundary", category=CATEGORY, outputs=("mask",))
def smooth_boundary(
    mask: np.ndarray,
    image: np.ndarray | None = None,
    *,
    sigma: Annotated[float, Range(0.1, 100.0)] = 2.0,
    ctx: RunContext | None = None,
) -> Result:
    """Smooth the outline of a mask: blur it with a Gaussian and keep what stays above half.

    Parameters
    ----------
    mask : ndarray
        Mask (nonzero = inside) or labels layer of the image's size.
    image : ndarray, optional
        The image the mask belongs to; only its size is used, to check the mask's.
    sigma : float
        Width of the Gaussian in pixels. Jags and specks much smaller than it vanish;
        sharp corners round off with a radius of about sigma.
    ctx : RunContext, optional
        Progress and cancellation.

    Returns
    -------
    Result
        ``outputs["mask"]``: boolean mask.
    """
    ctx = ctx or null_context()
    inside = _inside(mask, image)
    ctx.progress(0.0, f"Smoothing (sigma {sigma:g})")
    blurred = cv2.GaussianBlur(
        inside.astype(np.float32), (0, 0), sigmaX=float(sigma), sigmaY=float(sigma), borderType=cv2.BORDER_REFLECT
    )
    out = blurred > 0.5
    ctx.progress(1.0, "Done")
    return _mask_result(out)


@register("connected_components", title="Connected components to labels", category=CATEGORY, outputs=("labels",))
def connected_components(
    mask: np.ndarray,
    image: np.ndarray | None = None,
    *,
    connectivity: Literal[4, 8] = 8,
    ctx: RunContext | None = None,
) -> Result:
    """Give each connected part of a mask its own label 1..N.

    Parameters
    ----------
    mask : ndarray
        Mask (nonzero = inside) or labels layer of the image's size.
    image : ndarray, optional
        The image the mask belongs to; only its size is used, to check the mask's. From labels,
        touching regions with different labels stay separate parts.
    connectivity : {4, 8}
        Pixels touching by an edge (4) or also by a corner (8) belong to the same part.
    ctx : RunContext, optional
        Progress and cancellation.

    Returns
    -------
    Result
        ``outputs["labels"]``: int32 labels, 0 outside the mask and 1..N numbered in
        reading order; ``scores["objects"]`` is N.
    """
    ctx = ctx or null_context()
    values = check_mask(mask, image)
    ctx.progress(0.0, "Labelling parts")
    nonzero = mask_pixels(values)
    inside_values = values[nonzero]
    if inside_values.size == 0 or np.all(inside_values == inside_values[0]):
        count, labels = cv2.connectedComponents(
            np.ascontiguousarray(nonzero, np.uint8), connectivity=connectivity, ltype=cv2.CV_32S
        )
        count -= 1
    else:
        from skimage.measure import label

        # Several values: a labels layer. Number its classes 1..C (NaN stays outside) so
        # touching regions of different classes become different parts.
        classes = np.zeros(values.shape, np.int32)
        classes[nonzero] = np.unique(inside_values, return_inverse=True)[1].ravel() + 1
        labels, count = label(classes, background=0, connectivity=1 if connectivity == 4 else 2, return_num=True)
        labels = labels.astype(np.int32, copy=False)
    ctx.progress(1.0, f"{count} parts")
    return Result({"labels": labels}, scores={"objects": int(count)})


@register("invert", title="Invert", category=CATEGORY, outputs=("mask",))
def invert(
    mask: np.ndarray,
    image: np.ndarray | None = None,
    *,
    ctx: RunContext | None = None,
) -> Result:
    """Swap the inside and the outside of a mask.

    Parameters
    ----------
    mask : ndarray
        Mask (nonzero = inside) or labels layer of the image's size.
    image : ndarray, optional
        The image the mask belongs to; only its size is used, to check the mask's.
    ctx : RunContext, optional
        Progress and cancellation.

    Returns
    -------
    Result
        ``outputs["mask"]``: boolean mask, true where the input was zero.
    """
    ctx = ctx or null_context()
    inside = _inside(mask, image)
    ctx.progress(0.0, "Inverting")
    return _mask_result(~inside)


# ----------------------------------------------------------------------------- helpers


def disc(radius: int) -> np.ndarray:
    """uint8 footprint of every offset within Euclidean distance ``radius``."""
    offsets = np.arange(-radius, radius + 1)
    return (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius * radius).astype(np.uint8)


def dilate(inside: np.ndarray, radius: int) -> np.ndarray:
    """Boolean mask grown by a disc of ``radius`` (exact Euclidean distance)."""
    if radius <= 0 or not inside.any():
        return inside.copy()
    if radius <= DISTANCE_TRANSFORM_RADIUS:
        return cv2.dilate(np.ascontiguousarray(inside, np.uint8), disc(radius)).astype(bool)
    outside = np.ascontiguousarray(~inside, np.uint8)
    return cv2.distanceTransform(outside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE) <= radius


def erode(inside: np.ndarray, radius: int) -> np.ndarray:
    """Boolean mask shrunk by a disc of ``radius``; the image border does not erode."""
    if radius <= 0 or inside.all():
        return inside.copy()
    if radius <= DISTANCE_TRANSFORM_RADIUS:
        return cv2.erode(np.ascontiguousarray(inside, np.uint8), disc(radius)).astype(bool)
    return cv2.distanceTransform(np.ascontiguousarray(inside, np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE) > radius


def _components(inside: np.ndarray, connectivity: int) -> tuple[np.ndarray, np.ndarray]:
    """(labels, areas): OpenCV component labels (0 = outside) and the pixel count of each."""
    if connectivity not in (4, 8):
        raise InputError(f"connectivity must be 4 or 8, got {connectivity!r}")
    _, regions, stats, _ = cv2.connectedComponentsWithStats(
        np.ascontiguousarray(inside, np.uint8), connectivity=connectivity, ltype=cv2.CV_32S
    )
    return regions, stats[:, cv2.CC_STAT_AREA].astype(np.int64)


def _inside(mask: np.ndarray, image: np.ndarray | None) -> np.ndarray:
    """The mask's inside (a labels layer's nonzero pixels), refused when a labels layer
    gives every pixel a class: as a mask that is the whole image, and the result would
    lose every class (a random walker's or a watershed's labels)."""
    values = check_mask(mask, image)
    inside = mask_pixels(values)
    if inside.all() and np.issubdtype(values.dtype, np.integer) and values.min() != values.max():
        raise InputError("every pixel of these labels has a class, so as one mask they are the whole image: "
                         "use Clean up labels (clean_labels) to clean each class and keep them")
    return inside


def _mask_result(out: np.ndarray, **scores) -> Result:
    return Result({"mask": out}, scores={"area": int(np.count_nonzero(out)), **scores})
