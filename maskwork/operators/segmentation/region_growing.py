"""Region growing from point seeds with SimpleITK: connected threshold, confidence
connected and fast marching, each previewing the region while it grows.

All three methods see one gray value per pixel on the 8-bit display scale: 8-bit images
as they are (colour ones as their Rec. 709 luminance), deeper images stretched so their
0.5 and 99.5 percentiles map to 0 and 255, as the window shows them (colour channels
share one scale, so the gray is that of the picture on screen). Tolerances and edge
strengths are therefore in display gray levels whatever the file's bit depth.

SimpleITK is imported inside the function, so the window starts without it.
"""

from __future__ import annotations

from typing import Annotated, Literal

import cv2
import numpy as np

from maskwork.core.pixels import color_channels, display_range, luminance, stretch
from maskwork.operators.context import InputError, Result, RunContext, null_context
from maskwork.operators.registry import Range, ShownFor, register
from maskwork.operators.seeds import bounding_box, check_image, check_some_finite
from maskwork.operators.segmentation.watershed import run_sitk

#: Fractions of the stopping time the fast-marching preview shows before the result.
FAST_MARCHING_STEPS = (0.125, 0.25, 0.5)
#: Speed inside a barrier (fast marching needs a positive speed everywhere).
BARRIER_SPEED = 1e-8


@register("region_growing", title="Region growing", category="Segmentation/Region growing", outputs=("mask",))
def region_growing(
    image: np.ndarray,
    points,
    *,
    method: Literal["connected_threshold", "confidence_connected", "fast_marching"] = "confidence_connected",
    smoothing: Annotated[float, Range(0.0, 10.0)] = 1.0,
    tolerance: Annotated[float, Range(0.0, 255.0), ShownFor("method", "connected_threshold")] = 20.0,
    multiplier: Annotated[float, Range(0.1, 10.0), ShownFor("method", "confidence_connected")] = 2.5,
    iterations: Annotated[int, Range(0, 20), ShownFor("method", "confidence_connected")] = 6,
    initial_neighborhood_radius: Annotated[int, Range(0, 20), ShownFor("method", "confidence_connected")] = 2,
    stopping_time: Annotated[float, Range(1.0, 2000.0), ShownFor("method", "fast_marching")] = 100.0,
    edge_strength: Annotated[float, Range(0.1, 255.0), ShownFor("method", "fast_marching")] = 10.0,
    barrier_radius: Annotated[int, Range(0, 100)] = 5,
    ctx: RunContext | None = None,
) -> Result:
    """Grow a region from clicked points over pixels that look like them.

    Parameters
    ----------
    image : ndarray
        Gray, RGB or RGBA image; colour images use their luminance. 8-bit, 16-bit or
        float (deeper images are scaled to 0..255 as displayed; NaN pixels are walls).
    points : list of (row, col, label)
        Point prompts. Positive points (label 1) are the seeds the region grows from;
        negative points (label 0) are walls: a disc of ``barrier_radius`` pixels around
        each is kept out of the region and cannot be crossed, which cuts leaks through
        narrow gaps.
    method : {"connected_threshold", "confidence_connected", "fast_marching"}
        Connected threshold: every pixel connected to a seed whose gray value lies
        within ``tolerance`` of the seeds' values. Confidence connected: the interval
        is the region's mean plus or minus ``multiplier`` standard deviations,
        re-estimated ``iterations`` times. Fast marching: a front spreads from the seeds,
        fast in flat areas and slowly across edges; the region is what it reaches
        within ``stopping_time``.
    smoothing : float
        Gaussian smoothing (sigma in pixels) of the gray values before growing, so noise
        and fine texture do not stop the region; 0 turns it off.
    tolerance : float
        Connected threshold: how far (in gray levels, 0..255) a pixel may lie below the
        darkest or above the brightest seed and still join.
    multiplier : float
        Confidence connected: width of the accepted interval in standard deviations of
        the region's gray values.
    iterations : int
        Confidence connected: rounds of re-estimating the mean and deviation from the
        grown region (0 uses the neighbourhood of the seeds only).
    initial_neighborhood_radius : int
        Confidence connected: half-size in pixels of the box around each seed whose
        values give the first mean and deviation.
    stopping_time : float
        Fast marching: arrival time at which the front stops. At full speed the front
        moves one pixel per unit, so this is about the largest radius, in pixels, the
        region may reach in a flat area.
    edge_strength : float
        Fast marching: gradient (gray levels per pixel) at which the front slows to half
        its speed; weaker edges are crossed, stronger ones stop it.
    barrier_radius : int
        Radius in pixels of the wall around each negative point; 0 ignores negative
        points.
    ctx : RunContext, optional
        Progress, previews of the growing region and cancellation.

    Returns
    -------
    Result
        ``outputs["mask"]``: boolean mask of the grown region.
    """
    ctx = ctx or null_context()
    ctx.progress(0.0, "Region growing: preparing")
    gray = display_gray(image)
    shape = gray.shape
    seeds, negatives = check_points(points, shape)
    finite = np.isfinite(gray)
    walls = ~finite  # NaN pixels are walls; the median stands in for their value
    if barrier_radius > 0 and negatives:
        walls |= _discs(shape, negatives, barrier_radius)
    # A seed is never inside a wall (nor is the box confidence connected starts from).
    keep_clear = initial_neighborhood_radius + 1 if method == "confidence_connected" else 0
    for row, col in seeds:
        walls[max(0, row - keep_clear) : row + keep_clear + 1, max(0, col - keep_clear) : col + keep_clear + 1] = False
    if not finite.all():
        gray = np.where(finite, gray, np.float32(np.median(gray[finite]))).astype(np.float32)
    if smoothing > 0:
        gray = cv2.GaussianBlur(gray, (0, 0), smoothing)
    ctx.progress(0.1, "Region growing")

    import SimpleITK as sitk

    seed_list = [(int(col), int(row)) for row, col in seeds]  # ITK indexes are (x, y)
    iterations_run = 0
    if method == "connected_threshold":
        seed_values = gray[tuple(np.array(seeds).T)]
        lower = float(seed_values.min()) - tolerance
        upper = float(seed_values.max()) + tolerance
        flood = sitk.ConnectedThresholdImageFilter()
        flood.SetSeedList(seed_list)
        flood.SetLower(lower)
        flood.SetUpper(upper)
        flood.SetReplaceValue(1)
        mask = _grow(flood, ctx, _with_walls(gray, walls, np.inf), 0.1, 1.0, "Connected threshold")
    elif method == "confidence_connected":
        walled = _with_walls(gray, walls, np.inf)
        rounds = [iterations] if not ctx.wants_partials else list(range(iterations + 1))
        for number, count in enumerate(rounds):
            flood = sitk.ConfidenceConnectedImageFilter()
            flood.SetSeedList(seed_list)
            flood.SetMultiplier(multiplier)
            flood.SetNumberOfIterations(count)
            flood.SetInitialNeighborhoodRadius(initial_neighborhood_radius)
            flood.SetReplaceValue(1)
            start = 0.1 + 0.9 * number / len(rounds)
            stop = 0.1 + 0.9 * (number + 1) / len(rounds)
            mask = _grow(flood, ctx, walled, start, stop, f"Confidence connected, {count} iteration(s)")
            if count < iterations:
                ctx.partial(_result(mask, count))
        iterations_run = iterations
    elif method == "fast_marching":
        speed = edge_speed(gray, edge_strength)
        speed[walls] = BARRIER_SPEED
        speed_image = sitk.GetImageFromArray(speed)
        # Previews restart the march with growing stopping times. A march costs about
        # the area it reaches, so the steps double; once one covers a quarter of the
        # image the rest would cost as much as the final run and are skipped.
        previews = [stopping_time * fraction for fraction in FAST_MARCHING_STEPS] if ctx.wants_partials else []
        marches, done = 0, 0.1
        while True:
            limit = previews.pop(0) if previews else stopping_time
            march = sitk.FastMarchingImageFilter()
            march.SetTrialPoints([list(seed) for seed in seed_list])
            # ITK processes points in order of arrival and stops past this value, so
            # every pixel reached within ``limit`` has its final arrival time.
            march.SetStoppingValue(float(limit) + 1.0)
            stop = 0.1 + 0.85 * limit / stopping_time
            arrival = run_sitk(march, ctx, speed_image, start=done, stop=stop, message="Fast marching")
            done = stop
            mask = sitk.GetArrayViewFromImage(arrival) <= limit
            marches += 1
            if limit >= stopping_time:
                break
            ctx.partial(_result(mask & ~walls, marches))
            if np.count_nonzero(mask) > mask.size // 4:
                previews = []
        mask = np.array(mask, bool)
        iterations_run = marches
    else:
        raise InputError(f"unknown region growing method {method!r}")
    mask &= ~walls
    ctx.progress(1.0, "Region growing done")
    result = _result(mask, iterations_run)
    result.scores["area"] = float(np.count_nonzero(mask))
    return result


# ------------------------------------------------------------------ helpers


def display_gray(image: np.ndarray) -> np.ndarray:
    """Float32 gray values on the 0..255 display scale (NaN where the image has none).

    The Rec. 709 luminance of the picture the window shows: the colour channels are
    scaled by their shared :func:`maskwork.core.pixels.display_range` (unclipped).
    """
    color = color_channels(check_some_finite(check_image(image)))
    return stretch(luminance(color), *display_range(color), top=255.0)


def check_points(points, shape: tuple[int, int]) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(positive, negative) lists of whole-pixel (row, col) from (row, col, label) prompts.

    Raises
    ------
    InputError
        When a point is malformed, lies outside the image, has a label other than 0 or
        1, or when no point is positive.
    """
    if points is None:
        raise InputError("region growing needs at least one positive point inside the region")
    positive, negative = [], []
    rows, cols = shape
    for point in points:
        try:
            row, col, label = point
            row, col, label = float(row), float(col), float(label)
        except (TypeError, ValueError):
            raise InputError(f"a point is (row, col, label), got {point!r}") from None
        if not (np.isfinite(row) and np.isfinite(col)):
            raise InputError(f"the point {point!r} has no position")
        r, c = int(round(row)), int(round(col))
        if not (0 <= r < rows and 0 <= c < cols):
            raise InputError(f"the point at row {row:g}, col {col:g} lies outside the {rows}x{cols} image")
        if label == 1:
            positive.append((r, c))
        elif label == 0:
            negative.append((r, c))
        else:
            raise InputError(f"a point's label is 1 (positive) or 0 (negative), got {label:g}")
    if not positive:
        raise InputError("region growing needs at least one positive point (label 1) inside the region")
    return positive, negative


def edge_speed(gray: np.ndarray, edge_strength: float) -> np.ndarray:
    """Speed in (0, 1] from the gradient magnitude: a sigmoid that is 1/2 at ``edge_strength``."""
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT) / 8.0
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3, borderType=cv2.BORDER_REFLECT) / 8.0
    magnitude = np.sqrt(gx * gx + gy * gy)
    width = edge_strength / 4.0  # from about 0.98 on flat ground to 0.02 at twice the edge strength
    with np.errstate(over="ignore"):
        speed = 1.0 / (1.0 + np.exp((magnitude - edge_strength) / width))
    return np.maximum(speed, BARRIER_SPEED).astype(np.float32)


def _discs(shape, centres, radius: int) -> np.ndarray:
    walls = np.zeros(shape, np.uint8)
    for row, col in centres:
        cv2.circle(walls, (int(col), int(row)), int(radius), 1, thickness=-1)
    return walls.astype(bool)


def _with_walls(gray: np.ndarray, walls: np.ndarray, value: float):
    import SimpleITK as sitk

    if walls.any():
        gray = gray.copy()
        gray[walls] = value
    return sitk.GetImageFromArray(gray)


def _grow(flood, ctx: RunContext, image, start: float, stop: float, message: str) -> np.ndarray:
    import SimpleITK as sitk

    return sitk.GetArrayFromImage(run_sitk(flood, ctx, image, start=start, stop=stop, message=message)) > 0


def _result(mask: np.ndarray, iterations: int) -> Result:
    box = bounding_box(mask)
    bounds = None if box is None else (slice(box[0], box[2]), slice(box[1], box[3]))
    return Result({"mask": mask}, iterations=iterations, bounds=bounds)
