"""GrabCut from a box and/or scribbles, one iteration at a time, coarse to fine.

Three things make it fast on large photos without changing what it finds:

1. With a box it works on the region around the box and scribbles plus a margin. Outside
   a box everything is background by GrabCut's own definition, so cropping loses nothing
   but distant colours.
2. When that region is larger than ``coarse_megapixels``, the iterations (the colour models
   and the graph cuts that refine them) run on a downsampled copy. The colour models do
   not depend on resolution, so one final graph cut at full resolution with the models
   frozen (OpenCV's ``GC_EVAL_FREEZE_MODEL`` energy) and only a band around the coarse
   boundary left undecided restores full-resolution edges. On large photos that cut is
   ours, the same energy on the band's pixels alone; OpenCV's makes a graph of the band's
   whole bounding box.
3. The first iteration (the first two on the coarse-to-fine path) runs on an even smaller
   copy (about 60 000 pixels), so the first preview arrives in a fraction of a second and
   the colour models are settled before the slower cuts at the working scale; they carry
   on there.
"""

from __future__ import annotations

from typing import Annotated

import cv2
import numpy as np

from maskwork.operators.context import InputError, Result, RunContext, null_context
from maskwork.operators.graph_cut import HARD, band_cut
from maskwork.operators.registry import Range, register
from maskwork.operators.seeds import bounding_box, check_rect, markers_with_clicks, to_uint8_rgb
from maskwork.operators.stoppable import call_warm, import_modules, warm_child_alive

FOREGROUND, BACKGROUND = 1, 2
#: OpenCV GrabCut's weight of a horizontal or vertical neighbour edge (diagonals / sqrt 2).
GAMMA = 50.0
#: Bounding box (pixels) of the full-resolution refinement's band above which that cut is
#: ours (:func:`cut_band`) rather than OpenCV's: OpenCV's costs about 0.35 s per megapixel
#: of box, ours about 0.1 s plus sending the box's image to the warm child process (and
#: its start, about half a second, if nothing started it before).
OWN_CUT_BOX_PIXELS = 2_000_000
#: The same switch when the warm child is up already (GrabCut's preparation or another
#: operator started it): with no start to pay, ours is quicker from about half a
#: megapixel of box. Refinement cut, warm child: 0.54 MP box 86 ms against OpenCV's
#: 125 ms, 1.03 MP 80 against 215 ms, 2.06 MP 123 against 409 ms.
OWN_CUT_BOX_PIXELS_WARM = 500_000
#: Fewest pixels per class OpenCV's k-means initialisation of 5 Gaussians can work with.
MIN_SAMPLES = 16
#: Pixels; a thinner box (a slip of the mouse) holds no object GrabCut can cut out.
MIN_BOX_SIDE = 3
#: Size of the copy the first iteration runs on when the region is large (pixels).
QUICK_PREVIEW_PIXELS = 60_000
#: Iterations on that small copy when the region takes the coarse-to-fine path. The colour
#: models settle there for a tenth of a second; started from the unsettled models of one
#: quick iteration, the first cuts at the working scale took 1.9 s each on a 12 MP photo
#: (then 0.4 s). GrabCut set at 4 MP with boxes: 17 % less CPU, mean IoU +0.003 and
#: +0.005 on its two halves; 3 quick iterations were faster still but lost IoU on the
#: half the choice was made on.
COARSE_QUICK_ITERATIONS = 2


def _prepare(inputs: dict, params: dict, ctx: RunContext) -> bool:
    """Ahead of the first run (see ``register(prepare=...)``): on an image large enough
    for the refinement's own band cut (more than :data:`OWN_CUT_BOX_PIXELS`), the warm
    child process is started with PyMaxflow imported, which the first Preview or Apply
    would otherwise wait for (about half a second). Returns whether it did: smaller
    images never use the child, and a child already up needs nothing."""
    rows, cols = np.shape(inputs["image"])[:2]
    if rows * cols <= OWN_CUT_BOX_PIXELS or warm_child_alive():
        return False
    call_warm(ctx, import_modules, "maxflow")
    return True


@register("grabcut", title="GrabCut", category="Segmentation", outputs=("mask",), prepare=_prepare,
          seed_inputs=("rect", "markers", "points"))
def grabcut(
    image: np.ndarray,
    markers: np.ndarray | None = None,
    points: list | None = None,
    *,
    rect: tuple[int, int, int, int] | None = None,
    iterations: Annotated[int, Range(1, 30)] = 5,
    margin: Annotated[float, Range(0.0, 2.0)] = 0.15,
    coarse_megapixels: Annotated[float, Range(0.0, 100.0)] = 0.5,
    ctx: RunContext | None = None,
) -> Result:
    """Separate a foreground object from the background with GrabCut.

    Parameters
    ----------
    image : ndarray
        Gray, RGB or RGBA image, (row, col[, channel]); 8-bit, 16-bit or float.
    markers : ndarray, optional
        Scribbles of the image's size: 1 = foreground, 2 = background, 0 = unknown.
    points : list of (row, col, label), optional
        Clicks: each becomes a disk of 5 pixels, label 1 as class 1 (object), label 0 as
        class 2 (background). While nothing marks the background, a 3-pixel image frame
        does.
    rect : (x, y, width, height), optional
        Box around the object; everything outside it is background.
    iterations : int
        Rounds of colour-model fitting and graph cut. More rounds settle the boundary in
        hard cases; 5 is usually enough.
    margin : float
        Extra context around the box and scribbles, as a fraction of their size (at
        least 10 pixels). The background colour model learns from this margin. Without a
        box the whole image is used.
    coarse_megapixels : float
        Region size in megapixels above which the iterations run on a downsampled copy
        and a final full-resolution cut refines the boundary; 0 always works at full
        resolution.
    ctx : RunContext, optional
        Progress, per-iteration previews and cancellation.

    Returns
    -------
    Result
        ``outputs["mask"]``: boolean foreground mask of the image's size.
    """
    ctx = ctx or null_context()
    rgb = to_uint8_rgb(image)
    shape = rgb.shape[:2]
    markers = markers_with_clicks(markers, points, shape)
    rect = check_rect(rect, shape)
    fg_seeds = markers == FOREGROUND if markers is not None else None
    bg_seeds = markers == BACKGROUND if markers is not None else None
    if rect is None and (fg_seeds is None or not fg_seeds.any()):
        raise InputError("GrabCut needs a box or foreground scribbles (markers = 1)")
    if rect is not None and min(rect[2:]) < MIN_BOX_SIDE and (fg_seeds is None or not fg_seeds.any()):
        # Its few hundred pixels pass the sample count, and the cut of a line is empty.
        raise InputError(f"the box is {min(rect[2:])} px thin: draw it around the whole object")

    top, left, bottom, right = _region_of_interest(shape, rect, markers, margin)
    roi = (slice(top, bottom), slice(left, right))
    crop = rgb[roi]
    trimap = _initial_trimap(crop.shape[:2], (top, left), rect, fg_seeds, bg_seeds, roi)

    pixels = crop.shape[0] * crop.shape[1]
    scale = 1.0
    if coarse_megapixels > 0 and pixels > coarse_megapixels * 1e6:
        scale = float(np.sqrt(coarse_megapixels * 1e6 / pixels))
    # The first iteration runs on a small copy so the first preview comes back at once;
    # its colour models then carry on at the working scale.
    quick = min(scale, float(np.sqrt(QUICK_PREVIEW_PIXELS / pixels)))
    scales = [scale] * iterations
    if iterations > 1 and quick < 0.7 * scale:
        # At full working resolution (a small region) only the first: there the extra
        # quick iteration saves little and changed results on the scribble benchmark.
        settle = min(COARSE_QUICK_ITERATIONS if scale < 1.0 else 1, iterations - 1)
        scales[:settle] = [quick] * settle

    background_model = np.zeros((1, 65), np.float64)
    foreground_model = np.zeros((1, 65), np.float64)
    steps = iterations + (1 if scale < 1.0 else 0)
    # GrabCut seeds its colour models with k-means from OpenCV's (per-thread) default RNG,
    # whose state depends on every earlier call: fix it so the same input gives the same
    # mask in a preview, in Apply and on the command line.
    cv2.setRNGSeed(0)
    work_trimap = None
    work_scale = None
    for i, step_scale in enumerate(scales):
        if step_scale != work_scale:
            work_image, work_trimap = _at_scale(crop, trimap, step_scale, work_trimap)
            work_scale = step_scale
            if i == 0:
                _check_samples(work_trimap)
        ctx.progress(i / steps, f"GrabCut iteration {i + 1} of {iterations}")
        mode = cv2.GC_INIT_WITH_MASK if i == 0 else cv2.GC_EVAL
        cv2.grabCut(work_image, work_trimap, None, background_model, foreground_model, 1, mode)
        if ctx.wants_partials and i + 1 < steps:
            ctx.partial(_full_result(shape, roi, _upsample(_is_foreground(work_trimap), crop.shape[:2]), i + 1))

    if scale < 1.0:
        ctx.progress(iterations / steps, "GrabCut refining the boundary at full resolution")
        coarse = _is_foreground(work_trimap)
        trimap = _refinement_trimap(trimap, _upsample(coarse, crop.shape[:2], smooth=True), scale)
        _refine_band(crop, trimap, background_model, foreground_model, ctx)
        foreground = _is_foreground(trimap)
    else:
        foreground = _is_foreground(work_trimap)
    ctx.progress(1.0, "GrabCut done")
    result = _full_result(shape, roi, foreground, iterations)
    result.scores["working_scale"] = scale
    return result


def _at_scale(crop: np.ndarray, trimap: np.ndarray, scale: float, previous: np.ndarray | None):
    """The crop and trimap resized by ``scale``; undecided pixels follow ``previous``.

    ``previous`` is the trimap of the last iteration at another scale: carrying its
    decisions over lets the next iteration continue instead of starting again.
    """
    if scale < 1.0:
        size = (max(2, round(crop.shape[1] * scale)), max(2, round(crop.shape[0] * scale)))
        image = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
        resized = _downsample_trimap(trimap, size)
    else:
        image, resized = crop, trimap.copy()
    if previous is not None:
        undecided = (resized == cv2.GC_PR_FGD) | (resized == cv2.GC_PR_BGD)
        foreground = _upsample(_is_foreground(previous), resized.shape, smooth=True)
        resized[undecided] = np.where(foreground[undecided], cv2.GC_PR_FGD, cv2.GC_PR_BGD)
    return image, resized


def _region_of_interest(shape, rect, markers, margin: float) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) around the box and all scribbles, plus the margin.

    Only a box says that everything outside it is background. With scribbles alone the
    object may reach far beyond them, so the whole image is the region (measured on the
    GrabCut benchmark: cropping to the scribbles cut off up to 16% of the foreground).
    """
    if rect is None:
        return 0, 0, shape[0], shape[1]
    boxes = []
    if rect is not None:
        x, y, w, h = rect
        boxes.append((y, x, y + h, x + w))
    if markers is not None:
        box = bounding_box(markers > 0)
        if box is not None:
            boxes.append(box)
    top = min(b[0] for b in boxes)
    left = min(b[1] for b in boxes)
    bottom = max(b[2] for b in boxes)
    right = max(b[3] for b in boxes)
    pad_rows = max(10, int(round(margin * (bottom - top))))
    pad_cols = max(10, int(round(margin * (right - left))))
    return (
        max(0, top - pad_rows),
        max(0, left - pad_cols),
        min(shape[0], bottom + pad_rows),
        min(shape[1], right + pad_cols),
    )


def _initial_trimap(roi_shape, offset, rect, fg_seeds, bg_seeds, roi) -> np.ndarray:
    """OpenCV's GC_* labels for the crop before the first iteration.

    With a box: inside is probably foreground, outside is background. Without one,
    undecided pixels start on the side of the nearer scribble, so the first colour
    models are already sensible.
    """
    if rect is not None:
        trimap = np.full(roi_shape, cv2.GC_BGD, np.uint8)
        x, y, w, h = rect
        trimap[y - offset[0] : y + h - offset[0], x - offset[1] : x + w - offset[1]] = cv2.GC_PR_FGD
    else:
        fg = fg_seeds[roi]
        bg = bg_seeds[roi] if bg_seeds is not None else np.zeros_like(fg)
        trimap = np.full(roi_shape, cv2.GC_PR_BGD, np.uint8)
        if bg.any():
            to_fg = cv2.distanceTransform((~fg).astype(np.uint8), cv2.DIST_L2, 3)
            to_bg = cv2.distanceTransform((~bg).astype(np.uint8), cv2.DIST_L2, 3)
            trimap[to_fg < to_bg] = cv2.GC_PR_FGD
    if fg_seeds is not None:
        trimap[fg_seeds[roi]] = cv2.GC_FGD
        trimap[bg_seeds[roi]] = cv2.GC_BGD
    return trimap


def _downsample_trimap(trimap: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Shrink the trimap so thin scribbles survive: any seed pixel marks its coarse pixel.

    Nearest-neighbour resizing keeps the box and large regions; the definite labels are
    then stamped at the scaled positions of every pixel that carries them (foreground
    last, so it wins), which costs far less than area-averaging 12 megapixels.
    """
    small = cv2.resize(trimap, size, interpolation=cv2.INTER_NEAREST)
    row_scale = size[1] / trimap.shape[0]
    col_scale = size[0] / trimap.shape[1]
    for value in (cv2.GC_BGD, cv2.GC_FGD):
        rows, cols = np.nonzero(trimap == value)
        small[(rows * row_scale).astype(np.intp), (cols * col_scale).astype(np.intp)] = value
    return small


def _refinement_trimap(trimap: np.ndarray, coarse_fg: np.ndarray, scale: float) -> np.ndarray:
    """Decide every pixel from the coarse result except a band around its boundary."""
    radius = int(np.ceil(1.5 / scale)) + 2
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    fg = coarse_fg.astype(np.uint8)
    band = cv2.dilate(fg, kernel) != cv2.erode(fg, kernel)
    refined = np.where(coarse_fg, cv2.GC_FGD, cv2.GC_BGD).astype(np.uint8)
    refined[band] = np.where(coarse_fg[band], cv2.GC_PR_FGD, cv2.GC_PR_BGD)
    # The person's seeds and the outside of the box stay as they were given.
    fixed = (trimap == cv2.GC_FGD) | (trimap == cv2.GC_BGD)
    refined[fixed] = trimap[fixed]
    return refined


def _refine_band(image: np.ndarray, trimap: np.ndarray, background_model, foreground_model, ctx: RunContext) -> None:
    """GrabCut's graph cut with frozen colour models over the undecided band, in place.

    Only the band's labels can change, but OpenCV's cut (``GC_EVAL_FREEZE_MODEL``) makes a
    graph node of every pixel of the image it is given, here the band's bounding box: on a
    12 MP photo 10 million nodes, 2 GB of graph made and freed, 4 s. Above
    :data:`OWN_CUT_BOX_PIXELS` of box (:data:`OWN_CUT_BOX_PIXELS_WARM` when the child is
    up already), :func:`cut_band` makes the same cut on the band's pixels alone, in the
    warm child process of
    :func:`~maskwork.operators.stoppable.call_warm` (PyMaxflow holds the GIL, which would
    stop the window for half a second).
    """
    undecided = (trimap == cv2.GC_PR_FGD) | (trimap == cv2.GC_PR_BGD)
    band = bounding_box(undecided)
    if band is None:
        return
    pad = 2  # OpenCV's contrast scale (beta) is measured on this box, as it always was
    box = (
        slice(max(0, band[0] - pad), min(trimap.shape[0], band[2] + pad)),
        slice(max(0, band[1] - pad), min(trimap.shape[1], band[3] + pad)),
    )
    box_image, box_trimap = np.ascontiguousarray(image[box]), np.ascontiguousarray(trimap[box])
    if box_trimap.size > OWN_CUT_BOX_PIXELS or (box_trimap.size > OWN_CUT_BOX_PIXELS_WARM and warm_child_alive()):
        trimap[box] = call_warm(ctx, cut_band, box_image, box_trimap, background_model, foreground_model)
    else:
        cv2.grabCut(box_image, box_trimap, None, background_model, foreground_model, 1, cv2.GC_EVAL_FREEZE_MODEL)
        trimap[box] = box_trimap


def cut_band(image: np.ndarray, trimap: np.ndarray, background_model, foreground_model) -> np.ndarray:
    """``trimap`` with its undecided pixels labelled as ``cv2.grabCut(image, trimap, ...,
    GC_EVAL_FREEZE_MODEL)`` labels them, from a graph of those pixels only.

    The energy is OpenCV's: terminal edges from the two colour models, neighbour edges
    gamma exp(-beta |dz|^2) over the 8-neighbourhood (diagonals / sqrt 2), beta over the
    whole ``image``; up to rounding (OpenCV divides the diagonals by a float32 square root
    and inverts covariances by cofactors), so labels could differ only where two cuts cost
    the same to the last bits (none did at 3 and 12 MP). Decided pixels are fixed by
    OpenCV's own construction (their terminal edge, 9 gamma, outweighs all their neighbour
    edges, at most (4 + 4 / sqrt 2) gamma), so they can be left out of the graph
    (:func:`~maskwork.operators.graph_cut.band_cut`).
    Module-level, so :func:`~maskwork.operators.stoppable.call_warm` can run it.
    """
    undecided = (trimap == cv2.GC_PR_FGD) | (trimap == cv2.GC_PR_BGD)
    rows, cols = np.nonzero(undecided)
    colours = image[rows, cols].astype(np.float64)
    foreground = band_cut(
        trimap.shape,
        rows,
        cols,
        lambda r, c: image[r, c].astype(np.float64),
        trimap == cv2.GC_FGD,
        _mixture_cost(foreground_model, colours),
        _mixture_cost(background_model, colours),
        GAMMA,
        _contrast_scale(image),
    )
    labelled = trimap.copy()
    labelled[rows, cols] = np.where(foreground, cv2.GC_PR_FGD, cv2.GC_PR_BGD)
    return labelled


def _contrast_scale(image: np.ndarray) -> float:
    """OpenCV GrabCut's beta: one over twice the mean squared colour difference over its
    neighbour pairs (left, up-left, up, up-right) of ``image``."""
    total = sum(
        cv2.norm(np.ascontiguousarray(a), np.ascontiguousarray(b), cv2.NORM_L2SQR)
        for a, b in (
            (image[:, 1:], image[:, :-1]),
            (image[1:, 1:], image[:-1, :-1]),
            (image[1:, :], image[:-1, :]),
            (image[1:, :-1], image[:-1, 1:]),
        )
    )
    rows, cols = image.shape[:2]
    pairs = 4 * cols * rows - 3 * cols - 3 * rows + 2
    return 0.0 if total <= 1e-12 else 1.0 / (2.0 * total / pairs)  # OpenCV's order: the same rounding


def _mixture_cost(model: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """-log of OpenCV's GrabCut colour model (5 Gaussians, as ``cv2.grabCut`` stores them:
    weights, means, covariances) at each colour, without the constant (2 pi)^-3/2. Where
    the density underflows to 0 OpenCV's cost is infinite: HARD here."""
    values = np.asarray(model, np.float64).ravel()
    weights, means, covariances = values[:5], values[5:20].reshape(5, 3), values[20:65].reshape(5, 3, 3)
    density = np.zeros(len(colours))
    for weight, mean, covariance in zip(weights, means, covariances):
        if weight > 0:
            offset = colours - mean
            distance = np.einsum("ni,ij,nj->n", offset, np.linalg.inv(covariance), offset)
            density += weight / np.sqrt(np.linalg.det(covariance)) * np.exp(-0.5 * distance)
    return np.where(density > 0, -np.log(np.maximum(density, 1e-300)), HARD)


def _upsample(mask: np.ndarray, shape: tuple[int, int], smooth: bool = False) -> np.ndarray:
    """Boolean mask resized to ``shape``; ``smooth`` interpolates instead of blocky pixels."""
    if mask.shape == tuple(shape):
        return mask
    size = (shape[1], shape[0])
    if smooth:
        return cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_LINEAR) >= 0.5
    return cv2.resize(mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)


def _is_foreground(trimap: np.ndarray) -> np.ndarray:
    return (trimap == cv2.GC_FGD) | (trimap == cv2.GC_PR_FGD)


def _check_samples(trimap: np.ndarray) -> None:
    fg = np.count_nonzero(_is_foreground(trimap))
    if fg < MIN_SAMPLES:
        raise InputError("GrabCut needs more foreground: draw a larger box or longer foreground scribbles")
    if trimap.size - fg < MIN_SAMPLES:
        raise InputError(
            "GrabCut needs background to learn from: leave a margin around the box or add background scribbles"
        )


def _full_result(shape, roi, foreground: np.ndarray, iterations: int) -> Result:
    mask = np.zeros(shape, bool)
    mask[roi] = foreground
    return Result({"mask": mask}, iterations=iterations, bounds=roi)
