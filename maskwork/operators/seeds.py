"""Checking and converting the seeds every segmentation operator shares."""

from __future__ import annotations

import numpy as np

from maskwork.core import pixels
from maskwork.operators.context import InputError

Rect = tuple[int, int, int, int]
"""(x, y, width, height) in pixels: x is the column, y the row of the top-left corner."""


def check_image(image: np.ndarray) -> np.ndarray:
    """Return ``image`` as an array after checking it is a 2D gray or colour raster."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[..., 0]
    if image.ndim not in (2, 3) or image.ndim == 3 and image.shape[2] not in (3, 4):
        raise InputError(f"expected a gray, RGB or RGBA image, got shape {image.shape}")
    if min(image.shape[:2]) < 2:
        raise InputError(f"the image is too small ({image.shape[0]}x{image.shape[1]})")
    return image


def check_intensity_image(image, name: str = "image") -> np.ndarray:
    """``image`` as an array after checking it is a gray, RGB or RGBA raster of finite numbers.

    Unlike :func:`check_image` the shape is kept (a single channel stays one) and bool,
    NaN and infinity are refused: for operators that return an image of the input's dtype.
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3) or image.ndim == 3 and image.shape[2] not in (1, 3, 4):
        raise InputError(f"the {name} must be gray, RGB or RGBA, got shape {image.shape}")
    if min(image.shape[:2]) < 2:
        raise InputError(f"the {name} is too small ({image.shape[0]}x{image.shape[1]})")
    if image.dtype == bool or not (np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)):
        raise InputError(f"the {name} must hold intensities (integers or floats), not {image.dtype}")
    if np.issubdtype(image.dtype, np.floating) and not np.all(np.isfinite(image)):
        raise InputError(f"the {name} contains NaN or infinite values")
    return image


def check_some_finite(image: np.ndarray) -> np.ndarray:
    """``image`` unchanged, after checking that not every pixel is NaN or infinite."""
    if image.dtype.kind == "f" and not np.isfinite(image).any():
        raise InputError("the image holds no finite values (all NaN or infinite)")
    return image


def check_markers(markers: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray | None:
    """Return markers as a (row, col) integer array of the image's size, or None."""
    if markers is None:
        return None
    markers = np.asarray(markers)
    if markers.ndim == 3 and markers.shape[2] == 1:
        markers = markers[..., 0]
    if markers.ndim != 2:
        raise InputError(f"markers must be a single-channel label image, got shape {markers.shape}")
    if markers.shape != tuple(shape):
        raise InputError(
            f"markers are {markers.shape[0]}x{markers.shape[1]} but the image is {shape[0]}x{shape[1]}"
        )
    if not np.issubdtype(markers.dtype, np.integer) and markers.dtype != bool:
        if not np.all(np.isfinite(markers)) or np.any(markers != np.round(markers)):
            raise InputError("markers must hold integer labels (0 unlabeled, 1 foreground, 2 background, ...)")
        markers = markers.astype(np.int32)
    return markers


def scribble_classes(markers: np.ndarray, method: str, max_id: int) -> np.ndarray:
    """The class ids scribbled in ``markers`` (int64, sorted), checked: two or more, positive.

    Parameters
    ----------
    markers : ndarray
        Checked markers (:func:`check_markers`), 0 = unlabelled.
    method : str
        How messages name the operator ("the random walker").
    max_id : int
        Largest class id the method can hold in its label type.

    Raises
    ------
    InputError
        For a boolean mask, negative or too large ids, or fewer than two classes.
    """
    if markers.dtype == bool:
        raise InputError(f"{method} needs at least two classes of scribbles (e.g. 1 and 2), not a mask")
    ids = np.unique(markers)
    if ids[0] < 0:
        raise InputError("markers must be 0 (unlabelled) or positive class ids; found negative values")
    if ids[-1] > max_id:
        raise InputError(f"class ids must be at most {max_id}; found {ids[-1]}")
    classes = ids[ids > 0]
    if classes.size < 2:
        found = "none" if classes.size == 0 else f"only class {classes[0]}"
        raise InputError(f"{method} needs scribbles of at least two classes (e.g. 1 = object, 2 = background); found {found}")
    return classes.astype(np.int64)


def check_mask(mask: np.ndarray | None, image: np.ndarray | None = None) -> np.ndarray:
    """A mask or labels layer as a 2D array, after checking it is one and fits ``image``.

    Values are kept (a labels layer stays labels); :func:`mask_pixels` turns the result
    into inside/outside.
    """
    if mask is None:
        raise InputError("this operator needs a mask or labels layer")
    mask = np.asarray(mask)
    if mask.ndim == 3:
        channels = range(1, min(mask.shape[2], 3))
        if all(np.array_equal(mask[..., 0], mask[..., c]) for c in channels):
            mask = mask[..., 0]
        else:
            raise InputError(f"a mask must be single-channel, got shape {mask.shape}")
    if mask.ndim != 2 or mask.size == 0:
        raise InputError(f"a mask must be a 2D (row, col) array, got shape {mask.shape}")
    if not (mask.dtype == bool or np.issubdtype(mask.dtype, np.number)):
        raise InputError(f"a mask must hold numbers, got {mask.dtype}")
    if image is not None:
        shape = np.shape(image)[:2]
        if mask.shape != tuple(shape):
            raise InputError(f"the mask is {mask.shape[0]}x{mask.shape[1]} but the image is {shape[0]}x{shape[1]}")
    return mask


def mask_pixels(mask: np.ndarray) -> np.ndarray:
    """Nonzero pixels as a new boolean array (NaN counts as outside, as in io.write_mask)."""
    if mask.dtype == bool:
        return mask.copy()
    if np.issubdtype(mask.dtype, np.floating):
        return np.nan_to_num(mask, nan=0.0) != 0
    return mask != 0


def check_rect(rect, shape: tuple[int, int]) -> Rect | None:
    """Validate an (x, y, w, h) box against an image of (rows, cols) ``shape``."""
    if rect is None:
        return None
    try:
        x, y, w, h = (int(round(float(v))) for v in rect)
    except (TypeError, ValueError):
        raise InputError(f"a box is four numbers X,Y,W,H, got {rect!r}") from None
    rows, cols = shape
    if w <= 0 or h <= 0:
        raise InputError(f"the box {x},{y},{w},{h} has no area")
    if x < 0 or y < 0 or x + w > cols or y + h > rows:
        raise InputError(f"the box {x},{y},{w},{h} lies outside the {cols}x{rows} image (X,Y,W,H in pixels)")
    return x, y, w, h


def to_uint8_rgb(image: np.ndarray) -> np.ndarray:
    """The image, after :func:`check_image`, as contiguous uint8 RGB on the display scale.

    Deeper images are stretched as the window shows them
    (:func:`maskwork.core.pixels.to_uint8_rgb`), so colour models see the contrast the
    person sees.
    """
    return pixels.to_uint8_rgb(check_image(image))


def bounding_box(region: np.ndarray) -> tuple[int, int, int, int] | None:
    """(top, left, bottom, right) of the nonzero pixels, bottom/right exclusive; None if empty."""
    rows = np.flatnonzero(region.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(region.any(axis=0))
    return int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1


#: Radius in pixels of the disk a click becomes in a scribble operator's markers (RITM's
#: click encoding).
CLICK_RADIUS = 5
#: Width of the image frame marked background when clicks mark no background yet.
CLICK_FRAME_PX = 3


def check_points(points, shape: tuple[int, int], labels: tuple[int, ...] = (0, 1)) -> list[tuple[int, int, int]]:
    """Clicks as integer ``(row, col, label)`` inside an image of (rows, cols) ``shape``.

    Raises
    ------
    InputError
        For a point that is not three numbers, lies outside the image or carries a label
        not in ``labels`` (1 = object, 0 = not object for clicks).
    """
    clicks = []
    for point in points or ():
        try:
            row, col, label = point
            row, col, label = int(round(float(row))), int(round(float(col))), int(label)
        except (TypeError, ValueError):
            raise InputError(f"a click is (row, col, label), got {point!r}") from None
        if label not in labels:
            raise InputError(f"click labels are 1 (object) or 0 (not object), got {label}")
        if not (0 <= row < shape[0] and 0 <= col < shape[1]):
            raise InputError(f"the click at row {row}, col {col} lies outside the {shape[1]}x{shape[0]} image")
        clicks.append((row, col, label))
    return clicks


def markers_with_clicks(markers: np.ndarray | None, points, shape: tuple[int, int], keep_frame: bool = False) -> np.ndarray | None:
    """Scribble markers with clicks drawn in, for operators that learn from scribbles.

    Each click becomes a disk of :data:`CLICK_RADIUS` pixels: object clicks (label 1) class
    1, background clicks (label 0) class 2, painted over the scribbles in click order. When
    neither the clicks nor the scribbles mark any class but the object yet, a frame of
    :data:`CLICK_FRAME_PX` pixels around the image is marked background, so that one
    click on an object already gives a result (objects rarely fill the whole frame).

    Parameters
    ----------
    keep_frame : bool
        Keep the frame as background after background clicks too, while the scribbles are
        empty (none, or a markers layer erased back to zeros). The random walker needs
        this: a lone background disk draws little of the walk against several object
        disks, so the first background click handed most of the image to the object (on
        GrabCut photos the IoU fell from about 0.75 to 0.1 at that click).

    Returns
    -------
    ndarray or None
        uint8 or the markers' own integer type; None when there are neither markers nor
        clicks.
    """
    from maskwork.core.click_protocol import clicks_to_markers

    markers = check_markers(markers, shape)
    clicks = check_points(points, shape)
    if not clicks:
        return markers
    drawn = clicks_to_markers(clicks, shape, CLICK_RADIUS)
    combined = np.zeros(shape, np.uint8) if markers is None else markers.astype(np.result_type(markers.dtype, np.uint8))
    scribbled = markers is not None and bool(np.any(markers))
    combined = np.where(drawn > 0, drawn, combined).astype(combined.dtype)
    if not np.any(combined > 1) or (keep_frame and not scribbled):
        width = CLICK_FRAME_PX
        frame = np.ones(shape, bool)
        frame[width:-width, width:-width] = False
        combined[frame & (combined == 0)] = 2
    return combined
