"""Superpixels (SLIC, Felzenszwalb) and merging them into a mask under the scribbles.

``superpixels`` returns the over-segmentation as labels 1..K; the window draws it as
boundaries (:func:`boundaries`). ``merge_superpixels`` turns foreground/background
scribbles into a mask: superpixels under the scribbles are seeds, and every other
superpixel joins the class of the seed it reaches over the region adjacency graph by the
cheapest path, where an edge costs the colour difference of the two superpixels it joins.

Superpixels do not depend on the scribbles, so the last few over-segmentations are kept
(keyed by the image's bytes and the superpixel parameters): while a person scribbles, each
preview only redoes the cheap graph step.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Annotated, Literal

import cv2
import numpy as np

from maskwork.core.pixels import pixel_digest
from maskwork.operators.context import InputError, Result, RunContext, null_context
from maskwork.operators.registry import Display, Range, ShownFor, register
from maskwork.operators.seeds import markers_with_clicks, to_uint8_rgb
from maskwork.operators.stoppable import call_stoppable

FOREGROUND, BACKGROUND = 1, 2

# The superpixel parameters superpixels and merge_superpixels share, declared once: type,
# range and the method each one serves (forms show a parameter only while it matters).
Method = Literal["slic", "felzenszwalb"]
SegmentCount = Annotated[int, Range(2, 100_000), ShownFor("method", "slic"), Display("Number of segments")]
Compactness = Annotated[float, Range(0.01, 100.0), ShownFor("method", "slic")]
Scale = Annotated[float, Range(1.0, 10_000.0), ShownFor("method", "felzenszwalb")]
Smoothing = Annotated[float, Range(0.0, 20.0)]
MinSize = Annotated[int, Range(1, 100_000), ShownFor("method", "felzenszwalb")]
CoarseMegapixels = Annotated[float, Range(0.0, 100.0)]
#: Largest working image (pixels) each method over-segments in this process: about 0.8 s
#: on a loaded core (SLIC ~1.5 s, Felzenszwalb ~3.6 s per megapixel). Larger ones run in
#: a child process that Cancel ends; the default 0.5 MP SLIC stays here.
IN_PROCESS_PIXELS = {"slic": 550_000, "felzenszwalb": 250_000}
#: Over-segmentations kept for repeated runs on the same image.
_CACHE_SIZE = 4
_cache: OrderedDict[tuple, np.ndarray] = OrderedDict()
_cache_lock = threading.Lock()


@register("superpixels", title="Superpixels", category="Segmentation/Superpixels", outputs=("labels",))
def superpixels(
    image: np.ndarray,
    *,
    method: Method = "slic",
    n_segments: SegmentCount = 400,
    compactness: Compactness = 10.0,
    scale: Scale = 100.0,
    sigma: Smoothing = 0.8,
    min_size: MinSize = 50,
    coarse_megapixels: CoarseMegapixels = 0.5,
    ctx: RunContext | None = None,
) -> Result:
    """Over-segment an image into superpixels (SLIC or Felzenszwalb).

    Parameters
    ----------
    image : ndarray
        Gray, RGB or RGBA image, (row, col[, channel]); 8-bit, 16-bit or float.
    method : {"slic", "felzenszwalb"}
        SLIC makes compact, roughly equal superpixels (k-means in colour and position);
        Felzenszwalb's graph method follows edges and makes regions of any size.
    n_segments : int
        SLIC: about how many superpixels to make.
    compactness : float
        SLIC: balance of colour and position. Higher makes squarer superpixels, lower
        follows colour edges more closely.
    scale : float
        Felzenszwalb: larger makes larger regions.
    sigma : float
        Width in pixels of the Gaussian smoothing applied before segmenting (both
        methods); 0 smooths nothing.
    min_size : int
        Felzenszwalb: smallest region in pixels; smaller ones merge into a neighbour.
    coarse_megapixels : float
        Image size in megapixels above which superpixels are computed on a copy
        downsampled to this size (sizes and widths above stay in full-resolution
        pixels); 0 always works at full resolution, which is slow on large photos.
    ctx : RunContext, optional
        Progress and cancellation.

    Returns
    -------
    Result
        ``outputs["labels"]``: int32 superpixel labels 1..K of the image's size.
    """
    ctx = ctx or null_context()
    ctx.progress(0.0, f"Superpixels ({method})")
    rgb = to_uint8_rgb(image)
    labels, working_scale = _superpixel_labels(
        rgb, method, n_segments, compactness, scale, sigma, min_size, coarse_megapixels, ctx
    )
    ctx.progress(1.0, "Superpixels done")
    count = int(labels.max())
    return Result({"labels": labels.copy()}, scores={"superpixels": count, "working_scale": working_scale})


@register(
    "merge_superpixels",
    title="Merge superpixels under scribbles",
    category="Segmentation/Superpixels",
    outputs=("mask",),
    parameters_from=superpixels,
    seed_inputs=("markers", "points"),
)
def merge_superpixels(
    image: np.ndarray,
    markers: np.ndarray | None = None,
    points: list | None = None,
    *,
    method: Method = "slic",
    n_segments: SegmentCount = 800,
    compactness: Compactness = 10.0,
    scale: Scale = 100.0,
    sigma: Smoothing = 0.8,
    min_size: MinSize = 50,
    coarse_megapixels: CoarseMegapixels = 0.5,
    path_cost: Literal["max", "sum"] = "max",
    ctx: RunContext | None = None,
) -> Result:
    """Merge superpixels into a foreground mask, growing from the scribbles by colour.

    The superpixel parameters other than ``n_segments`` (``method``, ``compactness``,
    ``scale``, ``sigma``, ``min_size``, ``coarse_megapixels``) are :func:`superpixels`'s
    and documented there; the registry shows that documentation for them here too.

    Parameters
    ----------
    image : ndarray
        Gray, RGB or RGBA image, (row, col[, channel]); 8-bit, 16-bit or float.
    markers : ndarray
        Scribbles of the image's size: 1 = foreground, 2 = background, 0 = unknown. A
        superpixel under scribbles takes the class most of its scribbled pixels have.
    points : list of (row, col, label), optional
        Clicks: each becomes a disk of 5 pixels, label 1 as class 1 (object), label 0 as
        class 2 (background). While nothing marks the background, a 3-pixel image frame
        does.
    n_segments : int
        SLIC: about how many superpixels to make. More follow the object's outline more
        closely; fewer let each scribble reach further.
    path_cost : {"max", "sum"}
        How a path between superpixels is priced from the colour differences along it.
        "max": its largest step (a minimum spanning forest grown from the seeds; stops
        at the strongest colour edge, however far). "sum": the total of its steps (a
        geodesic distance; prefers nearer seeds in textured regions).
    ctx : RunContext, optional
        Progress and cancellation.

    Returns
    -------
    Result
        ``outputs["mask"]``: boolean mask of the image's size, the union of the
        superpixels assigned to the foreground.
    """
    ctx = ctx or null_context()
    ctx.progress(0.0, f"Superpixels ({method})")
    rgb = to_uint8_rgb(image)
    markers = markers_with_clicks(markers, points, rgb.shape[:2])
    for value, name in ((FOREGROUND, "foreground"), (BACKGROUND, "background")):
        if markers is None or not np.any(markers == value):
            raise InputError(f"merging superpixels needs {name} scribbles (markers = {value})")
    labels, working_scale = _superpixel_labels(
        rgb, method, n_segments, compactness, scale, sigma, min_size, coarse_megapixels, ctx
    )
    count = int(labels.max())

    ctx.progress(0.6, "Building the region adjacency graph")
    colours = _mean_lab_colours(rgb, labels, count)
    first, second = region_adjacency(labels)
    weights = np.linalg.norm(colours[first] - colours[second], axis=1)
    seeds = _seed_classes(labels, markers, count)

    ctx.progress(0.8, "Growing from the scribbles")
    if path_cost == "max":
        classes = _forest_classes(count, first, second, weights, seeds, ctx)
    else:
        classes = _geodesic_classes(count, first, second, weights, seeds)
    mask = classes[labels] == FOREGROUND
    if working_scale < 1.0:
        # Superpixels from a downsampled copy have staircase edges of about 1/scale
        # pixels: smooth them away (nothing finer was resolved anyway).
        soft = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 0.5 / working_scale)
        mask = soft > 0.5
    ctx.progress(1.0, "Merged")
    scores = {
        "superpixels": count,
        "foreground_superpixels": int(np.count_nonzero(classes[1:] == FOREGROUND)),
        "seeded_superpixels": int(np.count_nonzero(seeds[1:])),
        "working_scale": working_scale,
    }
    return Result({"mask": mask}, scores=scores)


def boundaries(labels: np.ndarray, mode: str = "inner") -> np.ndarray:
    """Boolean mask of the pixels on the borders between labels, for drawing superpixels.

    Parameters
    ----------
    labels : ndarray
        Integer label image (row, col).
    mode : {"inner", "outer", "thick", "subpixel"}
        As in :func:`skimage.segmentation.find_boundaries`; "inner" marks the pixels of
        each region that touch another region.

    Returns
    -------
    ndarray of bool
        Same (row, col) shape as ``labels`` (twice minus one for "subpixel").
    """
    from skimage.segmentation import find_boundaries

    return find_boundaries(np.asarray(labels), connectivity=1, mode=mode)


def region_adjacency(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of 4-connected neighbouring labels, each pair once, smaller label first.

    Returns
    -------
    first, second : ndarray of int64
        Edge ``i`` joins ``first[i]`` and ``second[i]`` (``first[i] < second[i]``).
    """
    labels = np.asarray(labels, np.int64)
    pairs = []
    for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1, :], labels[1:, :])):
        differ = a != b
        pairs.append((a[differ], b[differ]))
    a = np.concatenate([p[0] for p in pairs])
    b = np.concatenate([p[1] for p in pairs])
    low, high = np.minimum(a, b), np.maximum(a, b)
    stride = int(labels.max()) + 1
    keys = np.unique(low * stride + high)
    return keys // stride, keys % stride


def _superpixel_labels(
    rgb, method, n_segments, compactness, scale, sigma, min_size, coarse_megapixels, ctx: RunContext
) -> tuple[np.ndarray, float]:
    """(labels 1..K as read-only int32, working scale) for ``rgb``; cached per image.

    The over-segmentation is one scikit-image call; on a working image larger than
    :data:`IN_PROCESS_PIXELS` allows it runs in a child process that Cancel ends.
    """
    rows, cols = rgb.shape[:2]
    factor = 1.0
    if coarse_megapixels > 0 and rows * cols > coarse_megapixels * 1e6:
        factor = float(np.sqrt(coarse_megapixels * 1e6 / (rows * cols)))
    if method == "slic":
        settings = (method, int(n_segments), float(compactness), float(sigma))
    elif method == "felzenszwalb":
        settings = (method, float(scale), float(sigma), int(min_size))
    else:
        raise InputError(f"unknown superpixel method {method!r}; use slic or felzenszwalb")
    key = (pixel_digest(rgb), settings, factor)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key], factor

    from skimage.segmentation import felzenszwalb, relabel_sequential, slic

    work = rgb
    if factor < 1.0:
        size = (max(2, round(cols * factor)), max(2, round(rows * factor)))
        work = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    if method == "slic":
        # SLIC normalises distances by the grid step, so only the smoothing width scales.
        over_segment = slic
        options = {
            "n_segments": int(n_segments),
            "compactness": float(compactness),
            "sigma": float(sigma) * factor,
            "start_label": 1,
            "channel_axis": -1,
        }
    else:
        # min_size counts pixels: keep it in full-size pixels. ``scale`` stays as it is:
        # colour steps between neighbours grow when downsampled, which balances the
        # smaller region sizes (measured: region counts stay within ~10%).
        area = factor * factor
        over_segment = felzenszwalb
        options = {
            "scale": float(scale),
            "sigma": float(sigma) * factor,
            "min_size": max(1, round(min_size * area)),
            "channel_axis": -1,
        }
    ctx.check()
    if work.shape[0] * work.shape[1] > IN_PROCESS_PIXELS[method]:
        labels = call_stoppable(ctx, over_segment, work, **options)
    else:
        labels = over_segment(work, **options)
    if method == "felzenszwalb":
        labels = labels + 1
    labels = np.asarray(labels, np.int32)
    if factor < 1.0:
        labels = cv2.resize(labels, (cols, rows), interpolation=cv2.INTER_NEAREST)
    labels = relabel_sequential(labels)[0].astype(np.int32, copy=False)
    labels.setflags(write=False)
    with _cache_lock:
        _cache[key] = labels
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return labels, factor


def _mean_lab_colours(rgb: np.ndarray, labels: np.ndarray, count: int) -> np.ndarray:
    """(count + 1, 3) mean CIELAB colour of each superpixel (row 0 unused)."""
    from skimage.color import rgb2lab

    flat = labels.ravel()
    sizes = np.maximum(np.bincount(flat, minlength=count + 1), 1).astype(np.float64)
    means = np.stack(
        [np.bincount(flat, weights=rgb[..., c].ravel(), minlength=count + 1) / sizes for c in range(3)], axis=1
    )
    # The Lab colour of the mean RGB: close to the mean Lab colour and far cheaper.
    return rgb2lab((means / 255.0)[None])[0]


def _seed_classes(labels: np.ndarray, markers: np.ndarray, count: int) -> np.ndarray:
    """(count + 1,) class of each superpixel from the scribbles: 0 none, 1 fg, 2 bg."""
    fg = np.bincount(labels[markers == FOREGROUND], minlength=count + 1)
    bg = np.bincount(labels[markers == BACKGROUND], minlength=count + 1)
    seeds = np.zeros(count + 1, np.int8)
    seeds[(fg > 0) & (fg >= bg)] = FOREGROUND
    seeds[bg > fg] = BACKGROUND
    return seeds


def _forest_classes(count, first, second, weights, seeds, ctx: RunContext) -> np.ndarray:
    """Seeded minimum spanning forest (Kruskal): joins regions by cheapest colour edge first,
    never joining two differently seeded trees. Each superpixel ends in the class of the seed
    it reaches by the path whose largest colour step is smallest."""
    parent = np.arange(count + 1)
    classes = seeds.astype(np.int8).copy()

    def find(node: int) -> int:
        root = node
        while parent[root] != root:
            root = parent[root]
        while parent[node] != root:  # path compression
            parent[node], node = root, parent[node]
        return root

    order = np.argsort(weights, kind="stable")
    first_list, second_list = first[order].tolist(), second[order].tolist()
    for i, (a, b) in enumerate(zip(first_list, second_list)):
        if i % 20_000 == 0:
            ctx.check()
        root_a, root_b = find(a), find(b)
        if root_a == root_b:
            continue
        class_a, class_b = classes[root_a], classes[root_b]
        if class_a and class_b and class_a != class_b:
            continue
        parent[root_b] = root_a
        classes[root_a] = class_a or class_b
    roots = np.array([find(node) for node in range(count + 1)])
    return classes[roots]


def _geodesic_classes(count, first, second, weights, seeds) -> np.ndarray:
    """Each superpixel takes the class of the seed nearest by summed colour differences."""
    from scipy import sparse  # imported here: the window starts without SciPy
    from scipy.sparse import csgraph

    # Explicit zero weights would vanish from the sparse graph; a tiny floor keeps the edge.
    graph = sparse.coo_matrix((weights + 1e-6, (first, second)), shape=(count + 1, count + 1)).tocsr()
    sources = np.flatnonzero(seeds)
    _, _, nearest = csgraph.dijkstra(graph, directed=False, indices=sources, min_only=True, return_predecessors=True)
    classes = np.full(count + 1, BACKGROUND, np.int8)
    reached = nearest >= 0
    classes[reached] = seeds[nearest[reached]]
    return classes
