"""Multi-label random walker from scribbles (Grady 2006), fast on large photos.

The probability that a random walker leaving a pixel first reaches a scribble of class k
is harmonic on the image graph: it solves ``L_U x_k = b_k``, where ``L_U`` is the graph
Laplacian restricted to the unlabelled pixels and ``b_k`` holds the weights of the edges
from those pixels to the scribbles of class k. Edge weights are scikit-image's, so the
results are comparable with ``skimage.segmentation.random_walker``::

    w_ij = exp(-beta / (10 * std) / sqrt(channels) * ||I_i - I_j||^2) + 1e-10

with ``std`` the standard deviation of the whole (normalised) image. What makes it fast:

1. The Laplacian of the 4-connected grid is written straight into CSR form (rows of the
   unlabelled pixels only, columns already sorted), without a full-grid matrix to slice.
2. One algebraic multigrid hierarchy (pyamg's classical Ruge-Stuben AMG) preconditions
   conjugate gradients for every class; N classes need N - 1 solves, the last
   probability is one minus the others. Small systems are factorised directly instead.
3. Coarse to fine: on images larger than ``coarse_megapixels`` the problem is first
   solved on a grid of square blocks of pixels. Its edge weights come from the pixel
   weights (resistances along the paths between block centres), not from a downsampled
   image, so edges survive coarsening: on photos the coarse probabilities differ from
   the full-resolution ones by about 1e-3 on average. That solve is the live preview.
   Then, by default (``refine="band"``), only a band of pixels around the coarse
   boundary is solved at full resolution, with the coarse probabilities fixed around
   it: the labels match the full-resolution solution but for a handful of pixels, in a
   fraction of its time. ``refine="full"`` solves every pixel at full resolution instead
   (the exact random walker), starting from the coarse answer.

Clicks are small seeds, which the plain random walker serves poorly: the walk from a
5-pixel disk reaches little of an object, and a lone background disk draws little of
the walk against several object disks. So with clicks the image frame stays background,
and each class is also tied to every pixel by a colour model of its seeds (Grady's
random walker with prior models, "Multilabel random walker image segmentation using
prior models", CVPR 2005), which adds a constant to the diagonal of ``L_U`` and the
colour posteriors to ``b_k``.

Cancellation is checked after every conjugate-gradient iteration. Systems of more than
:data:`AMG_IN_PROCESS_UNKNOWNS` unknowns (a large photo's band) are set up and solved in
the warm child process instead, whose pyamg calls cannot hold up the window's thread;
Cancel there waits at most :data:`~maskwork.operators.stoppable.DRAIN_SECONDS`, then
ends the child.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Annotated, Literal

import cv2
import numpy as np

from maskwork.core.pixels import to_float_display
from maskwork.operators.context import InputError, Result, RunContext, null_context
from maskwork.operators.grid_laplacian import boundary_terms, restricted_laplacian
from maskwork.operators.registry import Display, Range, register
from maskwork.operators.seeds import (
    check_image,
    check_some_finite,
    markers_with_clicks,
    scribble_classes,
)
from maskwork.operators.stoppable import call_warm

if TYPE_CHECKING:
    import scipy.sparse as sparse

#: Size of the copy the first preview is solved on (solved directly, no multigrid).
QUICK_PREVIEW_PIXELS = 20_000
#: Added to every edge weight, as scikit-image does, so the graph stays connected.
EPS = 1e-10
#: Systems up to this many unknowns are factorised (SuperLU) rather than iterated.
DIRECT_MAX = 40_000
#: Larger systems are set up and solved in the warm child process (call_warm): pyamg's
#: C++ hierarchy set-up holds the GIL, one call 21-33 ms at the 160,000-240,000 unknowns
#: of a 12 MP photo's band, which stopped the window that long. Sending the system costs
#: a few milliseconds.
AMG_IN_PROCESS_UNKNOWNS = 60_000
#: Safety limit on conjugate-gradient iterations per class.
MAX_ITERATIONS = 500
#: Default weight of the seeds' colour model when clicks are given, against pixel edges of
#: weight up to 1. Tuned on the even half of the GrabCut set (benchmarks/clicks_to_mask.py,
#: NoC@85 / NoC@90): 0 12.71 / 15.92, 0.0003 9.33 / 12.33, 0.001 8.08 / 10.75,
#: 0.003 8.21 / 10.17, 0.01 9.17 / 11.79.
CLICK_PRIOR = 0.003
#: Most histogram bins per channel of the colour models (15 per channel for RGB, where
#: 4096 ** (1/3) rounds down: CLICK_PRIOR was tuned with 15).
PRIOR_BINS = 32


@register(
    "random_walker",
    title="Random walker",
    category="Segmentation",
    outputs=("labels", "probabilities"),
    seed_inputs=("markers", "points"),
)
def random_walker(
    image: np.ndarray,
    markers: np.ndarray | None = None,
    points: list | None = None,
    *,
    beta: Annotated[float, Range(0.0, 10000.0)] = 130.0,
    tol: Annotated[float, Range(1e-8, 0.1), Display("Solver tolerance")] = 1e-3,
    coarse_megapixels: Annotated[float, Range(0.0, 100.0)] = 0.25,
    refine: Literal["band", "full"] = "band",
    click_prior: Annotated[float, Range(0.0, 10.0)] = CLICK_PRIOR,
    ctx: RunContext | None = None,
) -> Result:
    """Label every pixel with the scribble class a random walker reaches first.

    Parameters
    ----------
    image : ndarray
        Gray, RGB or RGBA image, (row, col[, channel]); 8-bit, 16-bit or float (alpha is
        ignored). 8-bit images, and float images within [0, 1], keep their scale, as
        scikit-image reads them; other images are stretched between their 0.5 and 99.5
        percentiles. NaN or infinite pixels count as black.
    markers : ndarray
        Scribbles of the image's size: 0 = unlabelled, positive integers = classes
        (1 foreground, 2 background, or any ids). At least two classes are needed.
    points : list of (row, col, label), optional
        Clicks: each becomes a disk of 5 pixels, label 1 as class 1 (object), label 0 as
        class 2 (background). With clicks alone (no markers), a 3-pixel image frame is
        background wherever no click marks it, also after background clicks.
    beta : float
        Edge sensitivity, as in scikit-image (which it matches): the larger, the harder
        it is for the walker to cross colour edges. Scaled by the image's standard
        deviation, so 130 suits most photos.
    tol : float
        Relative residual at which the conjugate-gradient solve of each class stops
        (scikit-image's ``tol``). Smaller is more exact and slower.
    coarse_megapixels : float
        Images larger than this (in megapixels) are first solved on a grid of pixel
        blocks of about this size: that result is the preview and the starting point of
        the full-resolution step. 0 always solves the whole image at full resolution.
    refine : {"band", "full"}
        Full-resolution step after the coarse solve. "band" solves only the pixels near
        the coarse boundary, keeping the coarse probabilities elsewhere (fast; the labels
        agree with "full" almost everywhere). "full" solves every pixel (the exact random
        walker, several times slower).
    click_prior : float
        With clicks, the weight of a colour model of each class learned from its seeds
        (Grady's random walker with prior models): 0 is the plain random walker. Clicks
        are small seeds, from which the walk alone reaches little of the object; the
        colour model carries them to pixels of their colours. Scribbles alone always get
        the plain random walker.
    ctx : RunContext, optional
        Progress, a coarse preview and cancellation.

    Returns
    -------
    Result
        ``outputs["labels"]``: uint16 labels holding the markers' class ids;
        ``outputs["probabilities"]``: float32 (row, col, class) probabilities, one plane
        per class in increasing id order, summing to 1 at every pixel.
    """
    ctx = ctx or null_context()
    ctx.check()
    # Float images within [0, 1] keep their scale so beta means what it means in scikit-image.
    data = np.atleast_3d(to_float_display(check_some_finite(check_image(image)), keep_unit_floats=True))
    shape = data.shape[:2]
    markers = markers_with_clicks(markers, points, shape, keep_frame=True)
    if markers is None:
        raise InputError("the random walker needs scribbles (markers) of at least two classes, or clicks")
    classes = scribble_classes(markers, "the random walker", np.iinfo(np.uint16).max)
    class_index = _class_index(markers, classes)  # 0 unlabelled, 1..K by increasing id

    std = _global_std(data)
    scale = -beta / (10.0 * std) if std > 0 else 0.0
    scale /= np.sqrt(data.shape[2]) if data.shape[2] > 1 else 1.0
    prior = None
    if points and click_prior > 0:
        prior = _Prior(click_prior, _colour_posteriors(data, class_index, len(classes)))
    if ctx.wants_partials:
        _quick_preview(data, class_index, classes, scale, tol, prior, ctx)
    weights = _edge_weights(data, scale)
    del data

    n_classes = len(classes)
    pixels = shape[0] * shape[1]
    stats = {"iterations": 0}
    factor, small_markers = 1, None
    if coarse_megapixels > 0 and pixels > coarse_megapixels * 1e6:
        factor = int(np.ceil(np.sqrt(pixels / (coarse_megapixels * 1e6))))
        small_markers = _coarse_markers(class_index, n_classes, factor)
        if small_markers is None:  # a class lost every block it touches: no coarse step
            factor = 1
    if factor == 1:
        probabilities = _solve(weights, class_index, n_classes, tol, ctx, (0.0, 1.0), stats, prior=prior)
    else:
        coarse_share = 0.4 if refine == "band" else min(0.5, 2.0 / factor**2)
        ctx.progress(0.0, "Random walker: coarse solve")
        small_probs = _solve(
            _coarse_weights(*weights, factor), small_markers, n_classes, tol, ctx, (0.0, coarse_share), stats,
            # The block grid's edges weigh 1 / factor of the pixel edges (see _coarse_weights).
            prior=prior.coarse(factor, 1.0 / factor) if prior else None,
        )
        guess = _upsample(small_probs, factor, shape)
        if ctx.wants_partials:
            ctx.partial(_result(_fix_seeds(guess.copy(), class_index), classes, stats, 1.0 / factor))
        ctx.progress(coarse_share, "Random walker: full resolution")
        if refine == "band":
            fixed = ~_band(guess, factor) | (class_index > 0)
            probabilities = _solve(
                weights, class_index, n_classes, tol, ctx, (coarse_share, 1.0), stats,
                fixed=fixed, values=_fix_seeds(guess, class_index), prior=prior,
            )
        else:
            probabilities = _solve(
                weights, class_index, n_classes, tol, ctx, (coarse_share, 1.0), stats, guess=guess, prior=prior
            )
    ctx.progress(1.0, "Random walker done")
    return _result(probabilities, classes, stats, 1.0 / factor)


def _global_std(data: np.ndarray) -> float:
    """Standard deviation over all values of a (row, col, channel) float32 image.

    OpenCV's per-channel mean and deviation, combined, cost a few milliseconds where
    numpy's float64 ``std`` takes over 0.1 s on 2 megapixels: the first preview waits on it.
    """
    if data.shape[2] > 4:
        return float(data.std(dtype=np.float64))
    means, deviations = cv2.meanStdDev(np.ascontiguousarray(data))
    means, deviations = means.ravel(), deviations.ravel()
    return float(np.sqrt(max(0.0, np.mean(deviations**2 + means**2) - np.mean(means) ** 2)))


def _quick_preview(data, class_index, classes, scale: float, tol: float, prior: _Prior | None, ctx: RunContext) -> None:
    """A first preview from a ~20 000-pixel copy, solved directly, before any real work.

    Block-averaged pixels soften edges, so this answer is rough; it exists so that a person
    who just drew a scribble sees the labels move within a fraction of a second.
    """
    pixels = class_index.size
    factor = int(np.ceil(np.sqrt(pixels / QUICK_PREVIEW_PIXELS)))
    if factor < 2:
        return
    small_markers = _coarse_markers(class_index, len(classes), factor)
    if small_markers is None:
        return
    rows, cols = small_markers.shape
    padded = np.zeros((rows * factor, cols * factor, data.shape[2]), np.float32)
    padded[: data.shape[0], : data.shape[1]] = data
    small = padded.reshape(rows, factor, cols, factor, data.shape[2]).mean(axis=(1, 3))
    # Edges between block means weigh as pixel edges do, so the prior keeps its full-resolution
    # balance against them when each block counts factor**2 pixels.
    probabilities = _solve(
        _edge_weights(small, scale), small_markers, len(classes), tol, ctx, (0.0, 0.05), {"iterations": 0},
        prior=prior.coarse(factor, 1.0) if prior else None,
    )
    guess = _upsample(probabilities, factor, class_index.shape)
    ctx.partial(_result(_fix_seeds(guess, class_index), classes, {"iterations": 0}, 1.0 / factor))


# ------------------------------------------------------------------ colour prior


class _Prior:
    """Grady's prior models: every pixel is also tied to each class by its colour.

    Pixel i gets an edge of weight ``weight * posteriors[i, k]`` to a node held at 1 for
    class k and 0 for the others. Since the posteriors sum to one, the system matrix gains
    ``weight`` on its diagonal and the right-hand side of class k gains
    ``weight * posteriors[..., k]``; the probabilities still sum to one.
    """

    def __init__(self, weight: float, posteriors: np.ndarray) -> None:
        self.weight = weight
        self.posteriors = posteriors

    def coarse(self, factor: int, edge_scale: float) -> _Prior:
        """The prior of the grid of ``factor`` x ``factor`` blocks.

        A block holds ``factor**2`` pixels' worth of prior; ``edge_scale`` is how much
        lighter the block grid's edges are than the pixel edges they stand for, so that
        the prior keeps its balance against the walk on the coarse grid.
        """
        rows, cols, classes = self.posteriors.shape
        coarse_rows, coarse_cols = -(-rows // factor), -(-cols // factor)
        padding = ((0, coarse_rows * factor - rows), (0, coarse_cols * factor - cols), (0, 0))
        padded = np.pad(self.posteriors, padding, mode="edge")
        blocks = padded.reshape(coarse_rows, factor, coarse_cols, factor, classes).mean(axis=(1, 3))
        return _Prior(self.weight * factor * factor * edge_scale, blocks)


def _colour_posteriors(data: np.ndarray, class_index: np.ndarray, n_classes: int) -> np.ndarray:
    """Per pixel, the probability of each class given its colour, from the seeds' histograms.

    Each class's seed colours are binned (``PRIOR_BINS`` per channel, fewer for colour so the
    histogram stays small next to a few clicks' pixels), smoothed by one bin and normalised,
    every class weighing the same however large its seeds. Colours no seed resembles get
    equal probabilities. Returns (row, col, class) float32 summing to one.
    """
    from scipy import ndimage

    channels = data.shape[2]
    bins = max(2, min(PRIOR_BINS, int(4096 ** (1.0 / channels))))
    codes = np.zeros(class_index.shape, np.int32)
    for channel in range(channels):
        level = np.minimum((data[..., channel] * bins).astype(np.int32), bins - 1)
        codes *= bins
        codes += level
    size = bins**channels
    densities = np.empty((n_classes, size))
    for k in range(n_classes):
        counts = np.bincount(codes[class_index == k + 1], minlength=size).astype(np.float64)
        counts = ndimage.gaussian_filter(counts.reshape((bins,) * channels), 1.0, mode="constant").ravel()
        densities[k] = counts / counts.sum()
    # A floor well below any seen colour's density: unseen colours get 1 / n_classes.
    densities += 1e-3 / size
    densities /= densities.sum(axis=0)
    return np.moveaxis(densities.astype(np.float32), 0, -1)[codes]


# ------------------------------------------------------------------ inputs


def _class_index(markers: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Markers renumbered 0 (unlabelled), 1..K in the order of ``classes``, as uint16."""
    if classes[-1] == len(classes) and markers.dtype.itemsize <= 2 and markers.dtype.kind == "u":
        return markers.astype(np.uint16)
    lookup = np.searchsorted(classes, markers)  # classes sorted; unlabelled -> 0
    return np.where(markers > 0, lookup + 1, 0).astype(np.uint16)


# ------------------------------------------------------------------ the linear systems


def _edge_weights(data: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """Horizontal (row, col - 1) and vertical (row - 1, col) weights, float64."""

    def weights(axis: int) -> np.ndarray:
        diff = np.diff(data, axis=axis)
        np.multiply(diff, diff, out=diff)
        squared = diff.sum(axis=2, dtype=np.float64)
        squared *= scale
        np.exp(squared, out=squared)
        squared += EPS
        return squared

    return weights(1), weights(0)


def _solve(
    weights: tuple[np.ndarray, np.ndarray],
    class_index: np.ndarray,
    n_classes: int,
    tol: float,
    ctx: RunContext,
    span: tuple[float, float],
    stats: dict,
    *,
    guess: np.ndarray | None = None,
    fixed: np.ndarray | None = None,
    values: np.ndarray | None = None,
    prior: _Prior | None = None,
) -> np.ndarray:
    """Probabilities (row, col, class) float32 on the grid of ``weights``.

    ``weights`` are the horizontal (row, col - 1) and vertical (row - 1, col) edge weights.
    Pixels in ``fixed`` (default: the seeds) keep ``values`` (default: one-hot of their
    class); the others are solved for. ``guess`` (row, col, class) starts the iterations.
    ``prior``, on the same grid, ties every free pixel to the classes by its colour.
    """
    shape = class_index.shape
    if fixed is None:
        fixed = class_index > 0
    free = ~fixed
    horizontal, vertical = weights
    probabilities = np.empty(shape + (n_classes,), np.float32)
    for k in range(n_classes):
        probabilities[..., k] = values[..., k] if values is not None else class_index == k + 1
    probabilities[free] = 0.0
    n = int(np.count_nonzero(free))
    if n == 0:
        return probabilities
    ctx.check()
    matrix = restricted_laplacian(horizontal, vertical, free, prior.weight if prior else 0.0)
    low, high = span
    ctx.progress(low + 0.15 * (high - low), f"Random walker: preparing {n:,} unknowns")
    solved = n_classes - 1

    def right_hand_side(k: int) -> np.ndarray:
        rhs = boundary_terms(horizontal, vertical, probabilities[..., k])[free]  # the plane is 0 where free
        if prior is not None:
            rhs += prior.weight * prior.posteriors[..., k][free]
        return rhs

    def start(k: int) -> np.ndarray | None:
        return guess[..., k][free].astype(np.float64) if guess is not None else None

    def on_class(k: int) -> None:
        ctx.progress(low + (0.3 + 0.7 * k / solved) * (high - low), f"Random walker: class {k + 1} of {n_classes}")

    if n > AMG_IN_PROCESS_UNKNOWNS:
        ctx.progress(low + 0.3 * (high - low), f"Random walker: solving for {n_classes} classes")
        right_hand_sides, starts = [right_hand_side(k) for k in range(solved)], [start(k) for k in range(solved)]
        solutions, iterations = call_warm(ctx, _solve_all, matrix, right_hand_sides, starts, tol)
    else:  # one class's vectors at a time
        right_hand_sides, starts = (right_hand_side(k) for k in range(solved)), (start(k) for k in range(solved))
        solutions, iterations = _solve_all(matrix, right_hand_sides, starts, tol, ctx, on_class)
    stats["iterations"] += iterations
    total = np.zeros(n)
    for k, x in enumerate(solutions):
        total += x
        probabilities[..., k][free] = x
    probabilities[..., n_classes - 1][free] = 1.0 - total
    np.clip(probabilities, 0.0, 1.0, out=probabilities)
    probabilities /= probabilities.sum(axis=2, keepdims=True)
    return probabilities


def _solve_all(
    matrix: sparse.csr_array,
    right_hand_sides: Iterable[np.ndarray],
    starts: Iterable[np.ndarray | None],
    tol: float,
    ctx: RunContext | None = None,
    on_class: Callable[[int], None] | None = None,
) -> tuple[list[np.ndarray], int]:
    """Solve ``matrix x = b`` for every ``b`` with one factorisation or hierarchy; also
    what the warm child runs for large systems.

    Parameters
    ----------
    matrix : scipy.sparse.csr_array
        The restricted Laplacian ``L_U`` (symmetric positive definite).
    right_hand_sides, starts : iterable
        One ``b`` per class, float64, and the vector its iterations start from (None: 0).
    tol : float
        Relative residual the conjugate gradients stop at.
    ctx : RunContext, optional
        Checked at every iteration (in the warm child: none; Cancel ends the call there).
    on_class : callable, optional
        ``on_class(k)`` before class ``k`` is solved (progress).

    Returns
    -------
    (list of ndarray, int)
        The float64 solutions in class order, and the iterations they took in all.
    """
    solver = _Solver(matrix, tol, ctx or null_context())
    solutions, iterations = [], 0
    for k, (rhs, x0) in enumerate(zip(right_hand_sides, starts)):
        if on_class is not None:
            on_class(k)
        solutions.append(solver.solve(rhs, x0))
        iterations += solver.last_iterations
    return solutions, iterations


class _Solver:
    """Solves ``A x = b`` for several right-hand sides with one factorisation/hierarchy."""

    def __init__(self, matrix: sparse.csr_array, tol: float, ctx: RunContext) -> None:
        import scipy.sparse as sparse

        self.matrix = matrix
        self.tol = tol
        self.ctx = ctx
        self.last_iterations = 0
        self.lu = None
        self.preconditioner = None
        if matrix.shape[0] <= DIRECT_MAX:
            from scipy.sparse.linalg import splu

            self.lu = splu(sparse.csc_matrix(matrix), permc_spec="MMD_AT_PLUS_A")
            return
        try:
            import pyamg
        except ImportError:  # pragma: no cover - pyamg is a dependency; Jacobi still works
            inverse_diagonal = 1.0 / matrix.diagonal()
            self.preconditioner = lambda r: inverse_diagonal * r
            return
        hierarchy = pyamg.ruge_stuben_solver(
            sparse.csr_matrix(matrix),
            max_coarse=500,
            # Sparse LU of the coarsest level: pyamg's default dense pseudo-inverse costs
            # an SVD, up to seconds on a busy machine.
            coarse_solver="splu",
            # A forward sweep before and a backward one after keep the V-cycle symmetric,
            # as conjugate gradients needs, at half the cost of symmetric sweeps.
            presmoother=("gauss_seidel", {"sweep": "forward"}),
            postsmoother=("gauss_seidel", {"sweep": "backward"}),
        )
        cycle = hierarchy.aspreconditioner(cycle="V")
        self.preconditioner = cycle.matvec

    def solve(self, rhs: np.ndarray, x0: np.ndarray | None) -> np.ndarray:
        self.last_iterations = 0
        if self.lu is not None:
            return self.lu.solve(rhs)
        return self._pcg(rhs, x0)

    def _pcg(self, b: np.ndarray, x0: np.ndarray | None) -> np.ndarray:
        """Preconditioned conjugate gradients, stopping at ||r|| <= tol ||b||."""
        a = self.matrix
        bound = self.tol * float(np.linalg.norm(b))
        if bound == 0.0:
            return np.zeros_like(b)
        x = np.zeros_like(b) if x0 is None else x0.copy()
        r = b - a @ x if x0 is not None else b.copy()
        if float(np.linalg.norm(r)) <= bound:
            return x
        z = self.preconditioner(r)
        p = z.copy()
        rz = float(r @ z)
        for iteration in range(1, MAX_ITERATIONS + 1):
            self.ctx.check()
            ap = a @ p
            alpha = rz / float(p @ ap)
            x += alpha * p
            r -= alpha * ap
            self.last_iterations = iteration
            if float(np.linalg.norm(r)) <= bound:
                break
            z = self.preconditioner(r)
            rz_new = float(r @ z)
            p *= rz_new / rz
            p += z
            rz = rz_new
        return x


# ------------------------------------------------------------------ coarse to fine


def _coarse_weights(horizontal: np.ndarray, vertical: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Edge weights of the grid of ``factor`` x ``factor`` blocks, from the pixel weights.

    A weight is a conductance. Between two neighbouring blocks it is taken from the
    ``factor`` pixel paths that join their centres: the resistances (1 / weight) of the
    ``factor`` edges along each path add up, and the coarse weight is one over their mean
    over the paths. An image edge between the two blocks' centres thus stays an edge, even
    where it runs inside a block and downsampling the image would blend its colours away;
    on photos the coarse probabilities then agree with the full-resolution ones to about
    1e-3 on average.
    """
    return _coarse_direction(horizontal, factor), _coarse_direction(vertical.T, factor).T


def _coarse_direction(weights: np.ndarray, factor: int) -> np.ndarray:
    """Coarse weights along axis 1 of ``weights`` (rows, cols - 1 edges)."""
    rows, edges = weights.shape
    coarse_rows = -(-rows // factor)
    coarse_cols = -(-(edges + 1) // factor)
    if coarse_cols < 2:
        return np.ones((coarse_rows, 0))
    # Path from the centre of block j to that of block j + 1: edges half + j f ... half + (j + 1) f - 1.
    half = factor // 2
    needed = half + (coarse_cols - 1) * factor
    resistance = np.ones((coarse_rows * factor, needed))  # padding: uniform weight 1
    used = min(edges, needed)
    resistance[:rows, :used] = 1.0 / weights[:, :used]
    paths = resistance[:, half:needed].reshape(coarse_rows * factor, coarse_cols - 1, factor).sum(axis=2)
    return 1.0 / paths.reshape(coarse_rows, factor, coarse_cols - 1).mean(axis=1)


def _coarse_markers(class_index: np.ndarray, n_classes: int, factor: int) -> np.ndarray | None:
    """Markers of the block grid: a block any scribble touches keeps it.

    Where several classes touch one block the one covering most of it wins. None when a
    class wins no block at all (its scribbles always share blocks with larger ones).
    """
    rows, cols = class_index.shape
    coarse_rows, coarse_cols = -(-rows // factor), -(-cols // factor)
    padded = np.zeros((coarse_rows * factor, coarse_cols * factor), np.uint16)
    padded[:rows, :cols] = class_index
    blocks = padded.reshape(coarse_rows, factor, coarse_cols, factor)
    best = np.zeros((coarse_rows, coarse_cols), np.int32)
    small = np.zeros((coarse_rows, coarse_cols), np.uint16)
    for k in range(1, n_classes + 1):
        count = np.count_nonzero(blocks == k, axis=(1, 3))
        wins = count > best
        small[wins] = k
        best[wins] = count[wins]
    if np.unique(small).size < n_classes + (1 if np.any(small == 0) else 0):
        return None
    return small


def _upsample(probabilities: np.ndarray, factor: int, shape: tuple[int, int]) -> np.ndarray:
    """Block-grid probabilities bilinearly resized to pixels, (row, col, class) float32."""
    size = (probabilities.shape[1] * factor, probabilities.shape[0] * factor)
    out = np.empty(shape + (probabilities.shape[2],), np.float32)
    for k in range(probabilities.shape[2]):
        plane = cv2.resize(probabilities[..., k], size, interpolation=cv2.INTER_LINEAR)
        out[..., k] = plane[: shape[0], : shape[1]]
    return out


def _fix_seeds(probabilities: np.ndarray, class_index: np.ndarray) -> np.ndarray:
    """Set the scribbled pixels to their class (in place) and return the array."""
    seeded = class_index > 0
    if seeded.any():
        values = np.zeros((np.count_nonzero(seeded), probabilities.shape[2]), np.float32)
        values[np.arange(values.shape[0]), class_index[seeded].astype(np.int64) - 1] = 1.0
        probabilities[seeded] = values
    return probabilities


def _band(probabilities: np.ndarray, factor: int) -> np.ndarray:
    """Pixels near a boundary of the coarse labels, wide enough for the coarse blocks."""
    labels = np.argmax(probabilities, axis=2).astype(np.uint16)
    radius = 2 * factor + 2
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return cv2.dilate(labels, kernel) != cv2.erode(labels, kernel)


def _result(probabilities: np.ndarray, classes: np.ndarray, stats: dict, working_scale: float) -> Result:
    winner = np.argmax(probabilities, axis=2)
    labels = classes.astype(np.uint16)[winner]
    return Result(
        {"labels": labels, "probabilities": probabilities},
        iterations=int(stats["iterations"]),
        scores={"working_scale": working_scale, "cg_iterations": float(stats["iterations"])},
        class_ids=tuple(int(value) for value in classes),
    )
