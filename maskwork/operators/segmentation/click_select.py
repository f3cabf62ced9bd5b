"""Quick select: an object's mask from clicks, each click refining the previous mask.

One graph cut per round on a working copy of at most ``work_megapixels``, then one at full
resolution in a band around the boundary. The energy gathers the evidence the
click-driven classical methods found to work, measured by the number of clicks to 90 % IoU
(``benchmarks/clicks_to_mask.py``):

- colour models: smoothed 32^3 colour histograms of the object and of the background,
  each mixed with a uniform density so that colours never seen are not ruled out. Before
  there is a mask, the object model is the clicks' colours (half uniform) and the
  background model the image frame's colours (objects rarely fill the frame); afterwards
  they come from the previous mask, the clicks and the frame, and are re-estimated from the
  cut (GrabCut's iteration);
- soft clicks: besides the hard disk under each click (at full resolution never wider
  than its distance to the previous mask's boundary), every pixel is pulled towards the label of the clicks
  that reach it cheaply, decaying with the geodesic distance (path length weighted by
  colour edges), so one click takes a whole coherent region. Once there is a mask, a
  click's reach is a few times its depth in the region it corrects: a click near the
  boundary asks for a small repair;
- geodesic star convexity (Gulshan et al., 2010): the object is a union of geodesic
  paths from its clicks (a pixel can only be object when its predecessor on the shortest
  path to the nearest object click is), which keeps it in one piece and lets a background
  click cut off everything behind it; the paths prefer to stay inside the previous mask;
- mask guidance: away from the newest click, pixels pay for leaving their previous label,
  so a click mends its own region instead of upsetting the rest;
- contrast-sensitive smoothness on 8 neighbours (Boykov-Jolly), with the contrast scale
  from the mean colour difference.

The image-dependent pieces (working copy, colour bins, edge weights) are cached per image,
so a click costs a few small cuts and geodesic sweeps on the working copy and one cut of
the band. The cuts and the larger sweeps run in the warm child process of
:func:`~maskwork.operators.stoppable.call_warm` (PyMaxflow and scikit-image's path search
hold the GIL, which would stop the window); the window prepares the child and the image's
pieces when Quick select is chosen. Where partial results are wanted (the window), a preview comes first: one round
on a copy with half the working copy's pixels, showing the newest click's own change.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Annotated

import cv2
import numpy as np

from maskwork.operators.context import NoObjectYet, Result, RunContext, null_context
from maskwork.operators.graph_cut import (
    HARD,
    band_cut,
    binary_cut,
    contrast_scale,
    edge_weights,
    lab_colours,
    squared_differences,
)
from maskwork.operators.registry import Display, Range, register
from maskwork.operators.seeds import check_mask, check_points, check_rect, mask_pixels, to_uint8_rgb
from maskwork.operators.stoppable import call_warm, import_modules

#: Colour histogram bins per channel (32^3 bins of 8 levels).
BINS = 32
#: Weight of the uniform density in the object model before there is a mask, and after.
UNIFORM_FIRST, UNIFORM_OBJECT, UNIFORM_BACKGROUND = 0.5, 0.1, 0.05
#: Width of the image (or box) frame that samples the background, in working pixels.
FRAME_PX = 3
#: Geodesic step cost added across a strong colour edge (a flat step costs 1).
EDGE_COST = 10.0
#: With a previous mask a click reaches this many times its depth in the region it corrects
#: (at least MIN_REACH_PX working pixels, at most ``click_reach``).
REACH_PER_DEPTH = 3.0
MIN_REACH_PX = 2.0
#: Geodesic step cost added outside the previous mask for the star's shortest paths.
OUTSIDE_STEP_COST = 0.5
#: Reach of the mask guidance: the newest click frees pixels within about this fraction
#: of the image diagonal from their previous label.
GUIDANCE_REACH = 0.15
#: The preview copy has this fraction of the working copy's pixels: one round on it takes
#: about half as long as on the working copy. A quarter was quicker still, but its
#: previews agreed less with the results (measured on the odd half of the GrabCut set).
PREVIEW_FRACTION = 0.5
#: Working copies below this many pixels get no preview: their rounds come back about as
#: soon as a preview would.
PREVIEW_MIN_WORK_PIXELS = 40_000
_CACHE_SIZE = 2
#: Largest geodesic sweep (pixels) run in this process (a click's small repair window);
#: larger ones hold the GIL long enough to stop the window and run in the warm child.
GEODESIC_IN_PROCESS_PIXELS = 20_000
_cache: OrderedDict[tuple, "_Working"] = OrderedDict()
_cache_lock = threading.Lock()


def _prepare(inputs: dict, params: dict, ctx: RunContext) -> None:
    """Ahead of the first click (see ``register(prepare=...)``): the image's working and
    preview copies (cached), and the warm child process with the libraries of the cuts
    and sweeps imported, which the first click would otherwise wait for (about 0.5 s)."""
    work = _working_copy(to_uint8_rgb(inputs["image"]), params["work_megapixels"])
    _preview_copy(work)
    call_warm(ctx, import_modules, "maxflow", "skimage.graph")  # what the cuts and sweeps run on


@register(
    "click_select",
    title="Quick select",
    category="Segmentation",
    outputs=("mask",),
    previous_result_input="mask",
    prepare=_prepare,
    seed_inputs=("points", "rect"),
)
def click_select(
    image: np.ndarray,
    points: list | None = None,
    mask: np.ndarray | None = None,
    rect: tuple[int, int, int, int] | None = None,
    *,
    smoothness: Annotated[float, Range(0.0, 200.0)] = 20.0,
    click_strength: Annotated[float, Range(0.0, 50.0)] = 8.0,
    click_reach: Annotated[float, Range(0.001, 1.0)] = 0.05,
    click_radius: Annotated[int, Range(1, 50), Display(unit="px")] = 5,
    mask_memory: Annotated[float, Range(0.0, 20.0)] = 0.5,
    iterations: Annotated[int, Range(1, 10)] = 3,
    work_megapixels: Annotated[float, Range(0.01, 20.0), Display("Working size", "MP")] = 0.1,
    ctx: RunContext | None = None,
) -> Result:
    """Select an object from clicks on it and beside it; each click refines the last mask.

    Parameters
    ----------
    image : ndarray
        Gray, RGB or RGBA image, (row, col[, channel]); 8-bit, 16-bit or float.
    points : list of (row, col, label)
        All clicks so far, in order: label 1 on the object, 0 on what is not the object.
    mask : ndarray, optional
        The previous result, which the clicks refine (nonzero = object).
    rect : (x, y, width, height), optional
        Box around the object; everything outside it is background.
    smoothness : float
        Weight of following colour edges against following colour models; higher gives
        smoother outlines that may cut corners.
    click_strength : float
        How strongly a click pulls the pixels it reaches cheaply to its label.
    click_reach : float
        How far a click's pull reaches along paths that cross no colour edge, as a
        fraction of the image diagonal.
    click_radius : int
        Radius in pixels of the disk under each click that is fixed to its label.
    mask_memory : float
        How strongly pixels away from the newest click keep their label in the previous
        mask; 0 lets every pixel change (the previous mask still feeds the colour models
        and sets how far each click reaches).
    iterations : int
        Rounds of colour-model fitting and graph cut on the working copy.
    work_megapixels : float
        Size of the working copy the rounds run on; a final cut at full resolution
        refines a band around its boundary.
    ctx : RunContext, optional
        Progress, cancellation, and partial results where wanted: a quick preview from
        a smaller copy, then the working copy's result before the full-resolution
        refinement.

    Returns
    -------
    Result
        ``outputs["mask"]``: boolean object mask of the image's size.
    """
    ctx = ctx or null_context()
    rgb = to_uint8_rgb(image)
    shape = rgb.shape[:2]
    clicks = check_points(points, shape)
    rect = check_rect(rect, shape)
    previous = mask_pixels(check_mask(mask, rgb)) if mask is not None else None
    if not any(label == 1 for _, _, label in clicks) and rect is None:
        raise NoObjectYet("Quick select needs a click on the object (left click) or a box around it")

    work = _working_copy(rgb, work_megapixels)
    scale = work.scale
    # Each click fixes a disk of its label, but never past the previous mask's boundary:
    # a click on a thin error fixes the error, not the right pixels beside it.
    clicks = [(r, c, label, _click_disk_radius(previous, r, c, click_radius)) for r, c, label in clicks]
    work_clicks, work_rect = _scaled_clicks(clicks, work), _scaled_rect(rect, scale)
    small_previous = None
    if previous is not None:
        small_previous = _resize_mask(previous, work.shape) if scale < 1.0 else previous
    cut_params = dict(smoothness=smoothness, click_strength=click_strength, click_reach=click_reach,
                      mask_memory=mask_memory, ctx=ctx)

    preview = _preview_copy(work) if ctx.wants_partials else None
    if preview is not None:
        ctx.progress(0.05, "Quick select: previewing")
        preview_clicks = _scaled_clicks(clicks, preview)
        preview_previous = None if small_previous is None else _resize_mask(small_previous, preview.shape)
        # One round, with the colour models of the working copy's first round: on the
        # preview copy a click's disk holds too few pixels to sample its colours.
        models = _colour_models(work.bins, _seeds(work.shape, work_clicks, work_rect), small_previous)
        preview_mask, _, _ = _coarse_cut(
            preview, preview_clicks, preview_previous, _scaled_rect(rect, preview.scale),
            iterations=1, first_models=models, **cut_params,
        )
        shown = _preview_over(preview_mask, preview_previous, previous, preview_clicks, shape)
        ctx.partial(Result({"mask": shown}, iterations=1))

    ctx.progress(0.1, "Quick select: cutting the working copy")
    coarse, object_model, background_model = _coarse_cut(
        work, work_clicks, small_previous, work_rect, iterations=iterations, **cut_params
    )
    if scale >= 1.0:
        ctx.progress(1.0, "Quick select done")
        return Result({"mask": coarse}, iterations=iterations)

    upsampled = _resize_mask(coarse, shape)
    if ctx.wants_partials:
        ctx.partial(Result({"mask": upsampled}, iterations=iterations))
    ctx.progress(0.7, "Quick select: refining the outline at full resolution")
    fine = _refine_band(
        rgb, upsampled, scale, clicks, rect, object_model, background_model, smoothness, ctx
    )
    ctx.progress(1.0, "Quick select done")
    return Result({"mask": fine}, iterations=iterations, scores={"working_scale": scale})


# ---------------------------------------------------------------------- per-image pieces
@dataclass
class _Working:
    """What every click on one image reuses: a reduced copy and its graph weights."""

    scale: float  # the copy's size over the image's
    rgb: np.ndarray  # uint8 (row, col, 3)
    bins: np.ndarray  # int32 colour bin of each pixel
    edge_weights: dict  # neighbour offset -> contrast weight of the edge leaving each pixel
    step_cost: np.ndarray  # geodesic cost of stepping onto each pixel
    preview: "_Working | None" = None  # the preview copy, once made

    @property
    def shape(self) -> tuple[int, int]:
        return self.rgb.shape[:2]


def _working_copy(rgb: np.ndarray, megapixels: float) -> _Working:
    """The cached working pieces for ``rgb`` at no more than ``megapixels``."""
    from maskwork.operators.dl.device import image_key

    small = _reduced(rgb, megapixels * 1e6)
    # The cached pieces come from the reduced copy alone, so it names them: hashing it
    # costs far less than hashing a 12 MP photo on every click.
    key = (image_key(small), rgb.shape[:2])
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    working = _pieces(small, small.shape[0] / rgb.shape[0])
    with _cache_lock:
        _cache[key] = working
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return working


def _preview_copy(work: _Working) -> _Working | None:
    """The pieces of the preview copy of ``work`` (made once), or None when ``work`` is too
    small for a preview to come sooner than its own result."""
    pixels = work.shape[0] * work.shape[1]
    if pixels < PREVIEW_MIN_WORK_PIXELS:
        return None
    if work.preview is None:
        small = _reduced(work.rgb, pixels * PREVIEW_FRACTION)
        # Two threads may both make it; the pieces are the same.
        work.preview = _pieces(small, work.scale * small.shape[0] / work.shape[0])
    return work.preview


def _reduced(rgb: np.ndarray, pixels: float) -> np.ndarray:
    """``rgb`` shrunk by area averaging to no more than ``pixels`` (itself if it fits)."""
    scale = float(np.sqrt(pixels / (rgb.shape[0] * rgb.shape[1])))
    if scale >= 1.0:
        return rgb
    size = (max(2, round(rgb.shape[1] * scale)), max(2, round(rgb.shape[0] * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def _pieces(small: np.ndarray, scale: float) -> _Working:
    """Colour bins, edge weights and geodesic step costs of the reduced copy ``small``."""
    squared = squared_differences(lab_colours(small))
    contrast = contrast_scale(squared)
    weights = edge_weights(squared, contrast)
    # Stepping onto a pixel costs more where it differs from its right and lower neighbours.
    step_cost = 1.0 + EDGE_COST * (
        (1.0 - np.exp(-contrast * squared[(0, 1)])) + (1.0 - np.exp(-contrast * squared[(1, 0)]))
    )
    return _Working(scale, small, colour_bins(small), weights, step_cost.astype(np.float64))


def _sampled_contrast(rgb: np.ndarray, sampled_rows: int = 256) -> float:
    """Boykov-Jolly beta of ``rgb``, from neighbour differences on a sample of its rows."""
    if rgb.shape[0] < 2 or rgb.shape[1] < 2:
        return 1.0
    step = max(1, (rgb.shape[0] - 1) // sampled_rows)
    rows = np.arange(0, rgb.shape[0] - 1, step)
    here, below = lab_colours(rgb[rows]), lab_colours(rgb[rows + 1])
    across = ((here[:, 1:] - here[:, :-1]) ** 2).sum(axis=2).mean()
    down = ((below - here) ** 2).sum(axis=2).mean()
    mean = (across + down) / 2.0
    return 1.0 / (2.0 * mean + 1e-9)


def colour_bins(rgb: np.ndarray) -> np.ndarray:
    """Index of each pixel's 32^3 colour histogram bin."""
    quantised = (rgb >> 3).astype(np.int32)
    return (quantised[..., 0] * BINS + quantised[..., 1]) * BINS + quantised[..., 2]


def colour_model(bins: np.ndarray, weights: np.ndarray, uniform: float) -> np.ndarray:
    """Smoothed colour density (per bin) of the weighted pixels, mixed with a uniform one."""
    from scipy import ndimage

    counts = np.bincount(bins.ravel(), weights=weights.ravel(), minlength=BINS**3).reshape(BINS, BINS, BINS)
    counts = ndimage.gaussian_filter(counts, 1.0, mode="constant")
    total = counts.sum()
    density = (counts / total).ravel() if total > 0 else np.full(BINS**3, 1.0 / BINS**3)
    return (1.0 - uniform) * density + uniform / BINS**3


# ---------------------------------------------------------------------- the cut
def _click_disk_radius(previous: np.ndarray | None, row: int, col: int, radius: int) -> float:
    """``radius``, or less: the distance from the click to the nearest pixel whose label in
    the previous mask differs from the clicked pixel's (at least 1)."""
    if previous is None:
        return float(radius)
    top, left = max(0, row - radius), max(0, col - radius)
    window = previous[top : row + radius + 1, left : col + radius + 1]
    rows, cols = np.nonzero(window != previous[row, col])
    if rows.size == 0:
        return float(radius)
    nearest = float(np.sqrt(((rows + top - row) ** 2 + (cols + left - col) ** 2).min()))
    return max(1.0, min(float(radius), nearest - 0.5))


def _disks(clicks, shape, label: int) -> np.ndarray:
    """Pixels of a (rows, cols) grid within the disk of a click with ``label``."""
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    return _disks_at(rows, cols, clicks, label)


def _frame(shape, rect, width: int) -> np.ndarray:
    """The image frame, or the box's inner frame when there is a box."""
    top, left, bottom, right = 0, 0, shape[0], shape[1]
    if rect is not None:
        x, y, w, h = rect
        top, left, bottom, right = y, x, min(shape[0], y + h), min(shape[1], x + w)
    frame = np.zeros(shape, bool)
    frame[top:bottom, left:right] = True
    inner = frame.copy()
    inner[top + width : bottom - width, left + width : right - width] = False
    return inner


def _geodesic(step_cost: np.ndarray, starts, ctx: RunContext) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Geodesic distances from ``starts`` and the shortest-path tree (traceback, offsets).

    scikit-image's path search holds the GIL (about 30 ms on the working copy), so a
    sweep over more than :data:`GEODESIC_IN_PROCESS_PIXELS` runs in the warm child.
    """
    if step_cost.size > GEODESIC_IN_PROCESS_PIXELS:
        return call_warm(ctx, _geodesic_sweep, np.ascontiguousarray(step_cost), list(starts))
    return _geodesic_sweep(step_cost, starts)


def _geodesic_sweep(step_cost: np.ndarray, starts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_geodesic`'s work (module-level, so that the warm child can run it)."""
    from skimage.graph import MCP_Geometric

    sweep = MCP_Geometric(step_cost, fully_connected=True)
    costs, traceback = sweep.find_costs(list(starts))
    return np.asarray(costs), np.asarray(traceback), np.asarray(sweep.offsets)


def _scaled_clicks(clicks, work: _Working) -> list[tuple[int, int, int, float]]:
    """Clicks (row, col, label, disk radius) moved onto the reduced copy ``work``."""
    scale, (rows, cols) = work.scale, work.shape
    return [(min(round(r * scale), rows - 1), min(round(c * scale), cols - 1), label, max(1.0, radius * scale))
            for r, c, label, radius in clicks]


def _scaled_rect(rect, scale: float) -> tuple[int, int, int, int] | None:
    """A box (x, y, width, height) on a copy ``scale`` times the image's size."""
    if rect is None:
        return None
    x, y, w, h = rect
    return int(x * scale), int(y * scale), max(1, round(w * scale)), max(1, round(h * scale))


@dataclass
class _Seeds:
    """The clicks' disks and the box on a reduced copy."""

    positive: np.ndarray  # in an object click's disk
    negative: np.ndarray  # in a background click's disk
    outside: np.ndarray  # outside the box (nothing without one)
    frame: np.ndarray  # the inner frame of the box, or of the image without one
    boxed: bool  # whether there is a box


def _seeds(shape: tuple[int, int], clicks, rect) -> _Seeds:
    """The :class:`_Seeds` of ``clicks`` (row, col, label, radius) and ``rect`` on a copy of ``shape``."""
    outside = np.zeros(shape, bool)
    if rect is not None:
        x, y, w, h = rect
        outside[:] = True
        outside[y : y + h, x : x + w] = False
    return _Seeds(_disks(clicks, shape, 1), _disks(clicks, shape, 0), outside, _frame(shape, rect, FRAME_PX),
                  rect is not None)


def _colour_models(bins: np.ndarray, seeds: _Seeds, current: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(object, background) colour densities from the seeds and the current mask, if any."""
    if current is None:
        object_weight = seeds.positive.astype(np.float64)
        if seeds.boxed:
            object_weight = object_weight + (~seeds.outside & ~seeds.frame)
        background_weight = (seeds.frame | seeds.negative | seeds.outside).astype(np.float64)
        object_uniform = UNIFORM_FIRST
    else:
        object_weight = current + 5.0 * seeds.positive
        background_weight = (~current) + 5.0 * seeds.negative + 0.5 * seeds.frame
        object_uniform = UNIFORM_OBJECT
    return colour_model(bins, object_weight, object_uniform), colour_model(bins, background_weight, UNIFORM_BACKGROUND)


def _coarse_cut(work: _Working, clicks, previous, rect, *, smoothness, click_strength,
                click_reach, mask_memory, iterations, ctx: RunContext, first_models=None):
    """Rounds of colour models and graph cut on the reduced copy ``work``.

    ``first_models``, when given, are the (object, background) colour densities of the
    first round instead of those fitted on ``work``. Returns the mask and the final
    (object, background) colour densities.
    """
    shape = work.shape
    seeds = _seeds(shape, clicks, rect)
    positive, negative, outside = seeds.positive, seeds.negative, seeds.outside
    diagonal = float(np.hypot(*shape))
    reach = click_reach * diagonal

    object_starts = [(r, c) for r, c, label, _ in clicks if label == 1]
    step_cost = work.step_cost
    if rect is not None:
        # Outside the box is background: no path of the star, nor any click's reach, may
        # leave the box and come back (skimage's path search treats inf as a wall).
        step_cost = np.where(outside, np.inf, step_cost)
    tree = star_distances = None
    if object_starts:
        # The star's paths keep inside the previous object where they can: a path that
        # wandered through the background would let a trimmed background pixel cut off
        # the object behind it.
        cost = step_cost if previous is None else step_cost + OUTSIDE_STEP_COST * ~previous
        star_distances, traceback, offsets = _geodesic(cost, object_starts, ctx)
        tree = _star_edges(traceback, offsets)
    # Before there is a mask every object click reaches its full distance over the same
    # step costs as the star's paths: one sweep serves both.
    object_distances = star_distances if previous is None else None
    click_pull = click_strength * (_click_reach(step_cost, clicks, previous, reach, 0, ctx)
                                   - _click_reach(step_cost, clicks, previous, reach, 1, ctx, object_distances))
    ctx.check()

    guidance_cost = None
    if previous is not None and clicks:
        rows, cols = np.ogrid[: shape[0], : shape[1]]
        newest_row, newest_col = clicks[-1][:2]
        near = ((rows - newest_row) ** 2 + (cols - newest_col) ** 2) / diagonal**2
        guidance_cost = mask_memory * (1.0 - np.exp(-near / (2 * GUIDANCE_REACH**2)))

    current = previous
    object_model = background_model = None
    for round_ in range(iterations):
        if round_ == 0 and first_models is not None:
            object_model, background_model = first_models
        else:
            object_model, background_model = _colour_models(work.bins, seeds, current)
        cost_object = -np.log(object_model[work.bins]) + click_pull
        cost_background = -np.log(background_model[work.bins])
        if guidance_cost is not None:
            cost_object = cost_object + guidance_cost * ~previous
            cost_background = cost_background + guidance_cost * previous
        hard_background = negative | outside
        cost_object = np.where(positive, 0.0, np.where(hard_background, HARD, cost_object))
        cost_background = np.where(positive, HARD, np.where(hard_background, 0.0, cost_background))

        # In the warm child: PyMaxflow holds the GIL for the whole cut (50-280 ms here).
        current = call_warm(ctx, binary_cut, cost_object, cost_background, work.edge_weights, smoothness, tree)
        ctx.check()
    return current, object_model, background_model


def _click_reach(step_cost: np.ndarray, clicks, previous: np.ndarray | None, reach: float, label: int,
                 ctx: RunContext, swept: np.ndarray | None = None) -> np.ndarray:
    """How strongly the clicks with ``label`` reach each pixel, in [0, 1].

    ``exp(-geodesic distance / reach)`` from the nearest such click. With a previous mask a
    click's reach shrinks to a few times its depth in the region it corrects (its distance
    to the previous mask's boundary): the simulated user, like a person, clicks in the
    middle of what is wrong, so a click near the boundary asks for a small repair, not
    for the whole similar-coloured surroundings.

    ``swept``, when given, holds the geodesic distances over ``step_cost`` from the clicks
    that reach their full distance, already computed.
    """
    strength = np.zeros(step_cost.shape)
    chosen = [(r, c) for r, c, click_label, _ in clicks if click_label == label]
    if not chosen:
        return strength
    reaches = [reach] * len(chosen)
    if previous is not None:
        inside = cv2.distanceTransform(previous.astype(np.uint8), cv2.DIST_L2, 5)
        outside = cv2.distanceTransform((~previous).astype(np.uint8), cv2.DIST_L2, 5)
        depths = [inside[r, c] if previous[r, c] else outside[r, c] for r, c in chosen]
        reaches = [min(reach, max(MIN_REACH_PX, REACH_PER_DEPTH * depth)) for depth in depths]
    far = [start for start, reach_of_click in zip(chosen, reaches) if reach_of_click >= reach]
    if far:
        distances = swept if swept is not None else _geodesic(step_cost, far, ctx)[0]
        strength = np.exp(-distances / reach)
    for (row, col), reach_of_click in zip(chosen, reaches):
        if reach_of_click >= reach:
            continue
        # Geodesic distances are at least Euclidean, so nothing beyond 5 reaches matters.
        half = int(np.ceil(5 * reach_of_click)) + 1
        top, left = max(0, row - half), max(0, col - half)
        window = (slice(top, row + half + 1), slice(left, col + half + 1))
        distance = _geodesic(step_cost[window], [(row - top, col - left)], ctx)[0]
        strength[window] = np.maximum(strength[window], np.exp(-distance / reach_of_click))
    return strength


def _star_edges(traceback: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(pixel, predecessor) flat indices along the shortest-path tree towards the object clicks.

    An uncuttable edge from each pixel to its predecessor forbids an object pixel whose
    predecessor is background: the object stays geodesically star-convex.
    """
    rows, cols = np.nonzero(traceback >= 0)
    steps = offsets[traceback[rows, cols]]
    width = traceback.shape[1]
    return rows * width + cols, (rows - steps[:, 0]) * width + (cols - steps[:, 1])


# ---------------------------------------------------------------------- full resolution
def _resize_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A boolean mask resized to ``shape`` by area/linear interpolation and a 0.5 threshold."""
    interpolation = cv2.INTER_AREA if mask.shape[0] > shape[0] else cv2.INTER_LINEAR
    return cv2.resize(mask.astype(np.float32), (shape[1], shape[0]), interpolation=interpolation) >= 0.5


def _preview_over(preview: np.ndarray, preview_previous: np.ndarray | None, previous: np.ndarray | None,
                  preview_clicks, shape: tuple[int, int]) -> np.ndarray:
    """The preview copy's cut at the image's size; over a previous mask, only the newest
    click's own change.

    That change is the piece of pixels the cut turned to the newest click's label that
    holds the click. Elsewhere the preview copy, with its few pixels, redraws outlines
    and textured regions in its own way, showing changes the working copy's cut does not
    make (measured on the odd half of the GrabCut set).
    """
    stretched = _resize_mask(preview, shape)
    if previous is None or not preview_clicks:
        return stretched
    row, col, label = preview_clicks[-1][:3]
    turned = (preview != preview_previous) & (preview == bool(label))
    _, pieces = cv2.connectedComponents(turned.view(np.uint8), connectivity=8)
    near_click = pieces[max(0, row - 1) : row + 2, max(0, col - 1) : col + 2]
    own = np.isin(pieces, near_click[near_click > 0]).view(np.uint8)
    own = cv2.resize(own, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST).view(bool)
    shown = previous.copy()
    np.copyto(shown, stretched, where=own)
    return shown


def _refine_band(rgb, coarse: np.ndarray, scale: float, clicks, rect, object_model, background_model, smoothness: float,
                 ctx: RunContext) -> np.ndarray:
    """Re-cut a band around the upsampled boundary at full resolution, the models frozen
    (only the band's pixels are graph nodes: :func:`~maskwork.operators.graph_cut.band_cut`)."""
    radius = int(np.ceil(1.5 / scale)) + 2
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    as_uint8 = coarse.astype(np.uint8)
    band = cv2.dilate(as_uint8, kernel) != cv2.erode(as_uint8, kernel)
    rows, cols = np.nonzero(band)
    if rows.size == 0:
        return coarse
    # The contrast scale comes from the region being cut (the band's box, the object and its
    # surroundings), as GrabCut takes it from its box: measured on the GrabCut set, the
    # whole photo's contrast gave about one click more to 90 %.
    top, left = rows.min(), cols.min()
    contrast = _sampled_contrast(rgb[top : rows.max() + 1, left : cols.max() + 1])
    bins = colour_bins(rgb[rows, cols])
    cost_object = -np.log(object_model[bins])
    cost_background = -np.log(background_model[bins])
    # The clicks' disks and the outside of the box keep their labels inside the band too.
    fixed_object = _disks_at(rows, cols, clicks, 1)
    fixed_background = _disks_at(rows, cols, clicks, 0) & ~fixed_object
    if rect is not None:
        x, y, w, h = rect
        fixed_background |= (rows < y) | (rows >= y + h) | (cols < x) | (cols >= x + w)
    cost_object = np.where(fixed_object, 0.0, np.where(fixed_background, HARD, cost_object))
    cost_background = np.where(fixed_object, HARD, np.where(fixed_background, 0.0, cost_background))
    # The band's box and one pixel more: every band pixel's neighbours, nothing else.
    box = (slice(max(0, top - 1), rows.max() + 2), slice(max(0, left - 1), cols.max() + 2))
    # Contiguous, so that call_warm sends them out of band instead of copying them.
    arguments = (np.ascontiguousarray(rgb[box]), np.ascontiguousarray(coarse[box]), rows - box[0].start,
                 cols - box[1].start, cost_object, cost_background, smoothness, contrast)
    # In the warm child: PyMaxflow holds the GIL for the whole cut (about 2 ms per thousand
    # band pixels; 1.1 s for a click's band at 12 MP, while the window stood still).
    on_object = call_warm(ctx, _cut_band, *arguments)
    fine = coarse.copy()
    fine[rows, cols] = on_object
    return _keep_clicked_parts(fine, clicks)


def _cut_band(rgb, coarse, rows, cols, cost_object, cost_background, smoothness: float, contrast: float) -> np.ndarray:
    """The band's labels (True = object): its Lab colours, the coarse mask around it
    (module-level, so :func:`~maskwork.operators.stoppable.call_warm` can run it)."""
    return band_cut(coarse.shape, rows, cols, lambda r, c: lab_colours(rgb[r, c]), coarse,
                    cost_object, cost_background, smoothness, contrast)


def _disks_at(rows: np.ndarray, cols: np.ndarray, clicks, label: int) -> np.ndarray:
    """Which of the pixels (rows, cols) lie in the disk of a click with ``label``.

    ``rows`` and ``cols`` broadcast (a pixel list, or an open grid); clicks are
    (row, col, label, radius).
    """
    out = np.zeros(np.broadcast_shapes(rows.shape, cols.shape), bool)
    for row, col, click_label, radius in clicks:
        if click_label == label:
            out |= (rows - row) ** 2 + (cols - col) ** 2 <= radius * radius
    return out


def _keep_clicked_parts(mask: np.ndarray, clicks) -> np.ndarray:
    """Drop pieces of the mask that no object click touches (specks the fine cut split off)."""
    object_clicks = [(r, c) for r, c, label, _ in clicks if label == 1]
    if not object_clicks:
        return mask
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    if count <= 2:
        return mask
    kept = {labels[r, c] for r, c in object_clicks} - {0}
    return np.isin(labels, list(kept))
