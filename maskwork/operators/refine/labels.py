"""Clean up a labels layer class by class: small parts, holes and jagged outlines.

The mask operators of :mod:`maskwork.operators.refine.morphology` read a labels layer as
one mask (every nonzero pixel inside); a random walker's or a watershed's labels give
every pixel a class, so as a mask they are the whole image. This operator keeps the
class ids: what it removes or fills takes the class around it.
"""

from __future__ import annotations

from typing import Annotated, Literal

import cv2
import numpy as np

from maskwork.operators.context import InputError, Result, RunContext, null_context
from maskwork.operators.registry import Display, Range, register
from maskwork.operators.seeds import check_mask

CATEGORY = "Refine"


@register("clean_labels", title="Clean up labels", category=CATEGORY, outputs=("labels",))
def clean_labels(
    mask: np.ndarray,
    image: np.ndarray | None = None,
    *,
    min_size: Annotated[int, Range(0, 1_000_000_000), Display("Smallest part", "px", "keep every part")] = 64,
    fill_holes: bool = True,
    sigma: Annotated[float, Range(0.0, 100.0), Display("Smoothing (sigma)", "px", "none")] = 0.0,
    connectivity: Literal[4, 8] = 8,
    ctx: RunContext | None = None,
) -> Result:
    """Remove small parts of each class, fill unlabelled holes, smooth the outlines.

    Parameters
    ----------
    mask : ndarray
        Labels layer (integer class ids, 0 unlabelled) of the image's size; a mask
        works too (one class).
    image : ndarray, optional
        The image the labels belong to; only its size is used, to check theirs.
    min_size : int
        Connected parts of one class with fewer pixels than this are removed: they take
        the class around them (the nearest pixel's that stays), 0 where they lay on
        unlabelled ground. 0 keeps every part.
    fill_holes : bool
        Unlabelled (0) regions that do not reach the image border take the class around
        them (each pixel the nearest labelled pixel's).
    sigma : float
        Smooth every class's outline: each pixel takes the class whose pixels weigh most
        under a Gaussian of this width (pixels) around it. 0 leaves the outlines.
    connectivity : {4, 8}
        Pixels touching by an edge (4) or also by a corner (8) belong to the same part.
    ctx : RunContext, optional
        Progress and cancellation.

    Returns
    -------
    Result
        ``outputs["labels"]``: the labels in the input's integer type (bool and float
        input: uint8 or int32), the same class ids; ``scores``: ``removed`` parts,
        ``holes`` filled and ``classes``.
    """
    ctx = ctx or null_context()
    if connectivity not in (4, 8):
        raise InputError(f"connectivity must be 4 or 8, got {connectivity!r}")
    given = _integer_labels(check_mask(mask, image))
    # Ids up to 16 bits are counted in arrays indexed by id; larger ones (a uint32 or
    # int64 file's ids in the billions) are numbered 1..C first and given back at the end.
    ids = None
    labels = given
    if given.size and given.max() > np.iinfo(np.uint16).max:
        ids, labels = np.unique(given, return_inverse=True)
        labels = labels.reshape(given.shape).astype(np.int32)
        if ids[0] != 0:
            ids, labels = np.concatenate([[0], ids]).astype(given.dtype), labels + 1
    ctx.progress(0.0, "Measuring parts")
    from skimage.measure import label

    parts, count = label(labels, background=0, connectivity=1 if connectivity == 4 else 2, return_num=True)
    areas = np.bincount(parts.ravel(), minlength=count + 1)
    small = areas < min_size
    small[0] = False
    removed = small[parts]
    ctx.check()
    holes = np.zeros(labels.shape, bool)
    hole_count = 0
    if fill_holes:
        ctx.progress(0.3, "Finding holes")
        unlabelled = np.ascontiguousarray(labels == 0, np.uint8)
        regions_count, regions = cv2.connectedComponents(unlabelled, connectivity=4, ltype=cv2.CV_32S)
        enclosed = np.ones(regions_count, bool)
        enclosed[0] = False  # OpenCV's 0 is every labelled pixel
        for edge in (regions[0, :], regions[-1, :], regions[:, 0], regions[:, -1]):
            enclosed[edge] = False
        holes = enclosed[regions]
        hole_count = int(np.count_nonzero(enclosed))
    out = labels.copy()
    replaced = removed | holes
    if replaced.all():
        out[:] = 0  # every part was small: nothing is kept to fill from
    elif replaced.any():
        ctx.progress(0.5, "Filling from the classes around")
        from scipy.ndimage import distance_transform_edt

        # Each replaced pixel takes the nearest kept pixel's value: the class around a
        # removed speck (0 where it lay on unlabelled ground), a hole's labelled rim.
        rows, cols = distance_transform_edt(replaced, return_distances=False, return_indices=True)
        out[replaced] = labels[rows[replaced], cols[replaced]]
    ctx.check()
    if sigma > 0:
        out = _smooth(out, float(sigma), ctx)
    ctx.progress(1.0, "Done")
    classes = int(np.count_nonzero(np.bincount(out.ravel().astype(np.int64, copy=False))[1:])) if out.size else 0
    if ids is not None:
        out = ids[out]
    return Result({"labels": out}, scores={"removed": int(np.count_nonzero(small)), "holes": hole_count,
                                           "classes": classes})


def _integer_labels(values: np.ndarray) -> np.ndarray:
    """Class ids as integers: bool as uint8, whole-numbered floats (NaN unlabelled) as int32."""
    if values.dtype == bool:
        return values.astype(np.uint8)
    if np.issubdtype(values.dtype, np.integer):
        if values.size and values.min() < 0:
            raise InputError("labels must be class ids from 0 (unlabelled) up; these hold negative values")
        return values
    ids = np.nan_to_num(values.astype(np.float64), nan=0.0)
    if not np.all(np.isfinite(ids)) or np.any(ids != np.round(ids)) or ids.min() < 0 or ids.max() > np.iinfo(np.int32).max:
        raise InputError("labels must be whole class ids (0 unlabelled); these hold fractions or infinities: "
                         "use the mask operators for a probability or an image")
    return ids.astype(np.int32)


def _smooth(labels: np.ndarray, sigma: float, ctx: RunContext) -> np.ndarray:
    """Each pixel := the class (0 included) with the largest Gaussian-weighted share
    around it; every class is blurred only on its bounding box grown by 4 sigma."""
    from scipy.ndimage import find_objects

    reach = int(np.ceil(4 * sigma))
    best = np.zeros(labels.shape, np.float32)
    out = np.zeros_like(labels)
    present = np.flatnonzero(np.bincount(labels.ravel().astype(np.int64, copy=False)))
    boxes = find_objects(labels) if labels.max() > 0 else []
    rows, cols = labels.shape
    for number, value in enumerate(present):
        ctx.check()
        if value == 0:
            box = (slice(0, rows), slice(0, cols))
        else:
            found = boxes[value - 1]
            box = (slice(max(0, found[0].start - reach), min(rows, found[0].stop + reach)),
                   slice(max(0, found[1].start - reach), min(cols, found[1].stop + reach)))
        share = cv2.GaussianBlur((labels[box] == value).astype(np.float32), (0, 0), sigma,
                                 borderType=cv2.BORDER_REFLECT)
        wins = share > best[box]
        best[box][wins] = share[wins]
        out[box][wins] = value
        ctx.progress(0.6 + 0.4 * (number + 1) / len(present), f"Smoothing class {number + 1} of {len(present)}")
    return out
