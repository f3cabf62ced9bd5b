"""Seamless cloning: paste a masked region of one image into another without visible seams.

OpenCV's Poisson image editing (``cv2.seamlessClone``) does the work on 8-bit RGB. Other
dtypes are converted for it and back: the target receives the change the clone made
(``clone - target``, both at 8 bits) added to its own full-precision values, so pixels the
clone leaves alone stay exactly as they were and changed ones are precise to 1/255 of the
range.

OpenCV 5.0 has a bug here: with a single-channel mask, a region whose left edge lands on an
odd target column is hardly pasted at all. A three-channel mask avoids it, so the mask is
always passed with three channels.
"""

from __future__ import annotations

from typing import Annotated, Literal

import cv2
import numpy as np

from maskwork.core.pixels import FloatImage, gray_to_rgb, to_float, to_uint8_gray
from maskwork.operators.context import InputError, Result, RunContext, null_context
from maskwork.operators.registry import Display, Range, register
from maskwork.operators.seeds import bounding_box, check_intensity_image

__all__ = ["seamless_clone"]

MODES = {"normal": cv2.NORMAL_CLONE, "mixed": cv2.MIXED_CLONE}
# The smallest height and width of the region's bounding box: OpenCV's Poisson solver
# fails with a C++ exception (cv2.error) on anything narrower, 1 or 2 pixels.
MIN_REGION_SIDE = 3


@register("seamless_clone", title="Seamless clone", category="Restore", outputs=("image",))
def seamless_clone(
    image: np.ndarray,
    image2: np.ndarray,
    mask: np.ndarray,
    *,
    center_row: Annotated[int, Range(-1, 100_000), Display("Centre row", special="as in the source")] = -1,
    center_col: Annotated[int, Range(-1, 100_000), Display("Centre column", special="as in the source")] = -1,
    mode: Literal["normal", "mixed"] = "normal",
    ctx: RunContext | None = None,
) -> Result:
    """Blend a masked region of a source image into a target image (Poisson cloning).

    The region's colours adapt to the target around it while its details (gradients)
    come from the source.

    Parameters
    ----------
    image : ndarray
        The target: gray, RGB or RGBA; 8-bit, 16-bit or float. The result keeps its
        dtype and channels (alpha passes through).
    image2 : ndarray
        The source the region is copied from; may differ from the target in size and
        dtype. Its alpha channel is ignored.
    mask : ndarray
        The region of the source to copy (nonzero = inside), of the source's size. When
        source and target have the same size this is also a mask drawn on the target, so
        a mask layer of the picture marks the region at the same coordinates in both.
    center_row : int
        Target row where the centre of the region's bounding box lands; -1 keeps the
        row it has in the source.
    center_col : int
        Target column where the centre of the region's bounding box lands; -1 keeps the
        column it has in the source.
    mode : {"normal", "mixed"}
        "normal" takes the gradients inside the region from the source only; "mixed"
        keeps whichever of source and target gradient is stronger, so the target's
        texture shows through smooth parts of the source (text or line art on a
        textured surface).
    ctx : RunContext, optional
        Progress and cancellation.

    Returns
    -------
    Result
        ``outputs["image"]``: the target with the region blended in; ``bounds``: the
        box of the target that may have changed.
    """
    ctx = ctx or null_context()
    ctx.progress(0.0, "Seamless clone: preparing")
    target = to_float(check_intensity_image(image, "target image"))
    source = to_float(check_intensity_image(image2, "source image (image2)"))
    region = _region_mask(mask, target.pixels.shape[:2], source.pixels.shape[:2])

    box = bounding_box(region)
    if box is None:
        raise InputError("the mask is empty (or only touches the source's border): mark the region to copy")
    top, left, bottom, right = box
    height, width = bottom - top, right - left
    if height < MIN_REGION_SIDE or width < MIN_REGION_SIDE:
        raise InputError(
            f"the region to copy spans only {height}x{width} pixels: seamless cloning needs "
            f"at least {MIN_REGION_SIDE}x{MIN_REGION_SIDE} (mark a larger region)"
        )
    row = top + height // 2 if center_row < 0 else center_row
    col = left + width // 2 if center_col < 0 else center_col
    dest_top, dest_left = row - height // 2, col - width // 2
    rows, cols = target.pixels.shape[:2]
    if dest_top < 0 or dest_left < 0 or dest_top + height > rows or dest_left + width > cols:
        raise InputError(
            f"the {height}x{width} region centred at row {row}, column {col} falls off the "
            f"{rows}x{cols} target: move the centre at least {height // 2} pixels from the top and "
            f"bottom and {width // 2} from the left and right edges"
        )

    target8 = _rgb8(target)
    source8 = _rgb8(source)
    if not target.is_color:
        # A gray result needs a gray source, or colour would leak into it and be lost.
        source8 = cv2.cvtColor(to_uint8_gray(source8), cv2.COLOR_GRAY2RGB)
    # Three channels: see the module note. OpenCV's copy releases the GIL, np.repeat holds
    # it (20 ms at 12 MP, a stall of the window's UI thread).
    mask8 = cv2.cvtColor(region.astype(np.uint8) * np.uint8(255), cv2.COLOR_GRAY2RGB)
    ctx.progress(0.2, f"Seamless clone ({mode})")
    # OpenCV's (x, y) point is where the middle of the mask's bounding box lands.
    cloned = cv2.seamlessClone(source8, target8, mask8, (int(col), int(row)), MODES[mode])
    ctx.progress(0.9, "Seamless clone: converting back")

    bounds = (slice(dest_top, dest_top + height), slice(dest_left, dest_left + width))
    change = cloned.astype(np.float32) - target8.astype(np.float32)
    if not target.is_color:
        change = change.mean(axis=2)
    pixels = target.pixels.copy()
    pixels[bounds] += change[bounds] * np.float32(1.0 / 255.0)
    out = target.to_input_dtype(pixels)
    ctx.progress(1.0, "Seamless clone done")
    return Result({"image": out}, bounds=bounds)


def _region_mask(mask, target_shape: tuple[int, int], source_shape: tuple[int, int]) -> np.ndarray:
    """The source region as a bool array, without the source's one-pixel border."""
    if mask is None:
        raise InputError("seamless cloning needs a mask marking the region of the source to copy")
    mask = np.asarray(mask)
    if mask.ndim == 3:
        mask = mask.any(axis=2)
    if mask.ndim != 2:
        raise InputError(f"the mask must be a single-channel image, got shape {mask.shape}")
    if mask.shape != tuple(source_shape):
        hint = ""
        if mask.shape == tuple(target_shape):
            hint = " (it has the target's size; a target-sized mask works only when the source has the target's size too)"
        raise InputError(
            f"the mask is {mask.shape[0]}x{mask.shape[1]} but the source (image2) is "
            f"{source_shape[0]}x{source_shape[1]}: the mask marks the region of the source{hint}"
        )
    region = mask != 0
    if mask.dtype.kind == "f":
        region &= ~np.isnan(mask)
    # OpenCV ignores the source's outermost pixels; leaving them out here keeps the
    # bounding box (and so the placement) the same as OpenCV's.
    region[0, :] = region[-1, :] = False
    region[:, 0] = region[:, -1] = False
    return region


def _rgb8(work: FloatImage) -> np.ndarray:
    """The float pixels (in [0, 1]) as contiguous uint8 RGB."""
    values = np.rint(work.pixels * np.float32(255.0)).astype(np.uint8)
    if values.ndim == 2:
        values = gray_to_rgb(values)
    return np.ascontiguousarray(values)
