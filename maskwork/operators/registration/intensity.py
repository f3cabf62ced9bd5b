"""Intensity-based registration with SimpleITK: linear models, then optional B-spline or Demons.

Pipeline
--------
1. Both images become float32 luminance in about [0, 1] (8-bit divided by 255, 16-bit and
   float stretched between their 0.5 and 99.5 percentiles, colour weighted as luminance,
   NaN as 0). Registration always runs on this gray copy; the output warps the moving image
   itself (its dtype and channels).
2. Linear stage: ``sitk.ImageRegistrationMethod`` with a translation, rigid
   (``Euler2DTransform``), similarity or affine model started by
   ``CenteredTransformInitializer`` (image centres or intensity centroids; an unrotated
   ``Euler2DTransform`` stands in for the translation, which the initializer refuses), a
   metric (Mattes mutual information, normalised correlation, mean squares) on random
   points drawn with a fixed seed, a multi-resolution pyramid (shrink factors
   ``[.., 4, 2, 1]`` with Gaussian smoothing ``factor / 2``), and regular-step or plain
   gradient descent with scales from the physical shift and steps in pixels.
3. Deformable stage (optional): a cubic B-spline on a ``mesh_size`` control grid optimised
   by regular-step descent on top of the linear result (``SetMovingInitialTransform``), or
   fast symmetric-forces Demons between the fixed image and the linearly aligned,
   histogram-matched moving image.

The pyramid is run here, one ``Execute`` per level with the transform optimised in place,
rather than by SimpleITK's own multi-level loop: that is what lets a cancel request skip
the remaining levels (below). Every level samples the same number of points
(``sampling_percentage`` of the full image, at most :data:`MAX_SAMPLES`, at most the
level's pixels), and Mattes uses fewer histogram bins on levels with few samples.

Coordinates
-----------
The images enter SimpleITK with spacing 1, origin 0 and identity direction, so a physical
point is a pixel ``(x = column, y = row)``; the pyramid's shrunk levels keep that frame with
a spacing of their shrink factor. An ITK transform maps FIXED points to MOVING
points as ``A (p - c) + c + t`` (``c`` its centre); the :class:`Transform` we return holds
the inverse, moving -> fixed, as a 3x3 matrix. The matrix is read off the ITK transform by
mapping three points, which takes care of the centre for every model. Deformable results
carry a ``backward_map``: the composite mapping ``linear(deformation(p))`` evaluated on the
fixed grid (``sitk.TransformToDisplacementField`` for the B-spline, the Demons field
itself), with the linear stage as ``matrix``.

Progress, previews and cancellation
-----------------------------------
Every optimiser iteration fires ``sitk.sitkIterationEvent``; its callback reports progress
(stage, level, iteration, metric) and, at most about ten times a second (less often when a
preview is slow to build), a partial :class:`Result`: the moving image warped with the
current transform (``cv2.warpAffine`` through :meth:`Transform.apply`, no SimpleITK
resample) and ``scores`` ``{"metric", "iteration", "level"}``, for the live moving layer
and the metric curve. The whole curve ends up in ``Transform.parameters["metric_history"]``.

Cancelling in SimpleITK 2.5 (checked by the tests): ``ImageRegistrationMethod.Abort()`` is
inherited from ``ProcessObject`` but the ITKv4 optimisers never look at the abort flag, so
it does nothing. Raising inside the Python callback does stop ``Execute`` at once, but
SimpleITK prints the traceback (``PyErr_Print``, i.e. ``sys.excepthook``) and re-raises a
generic ``RuntimeError``. What works cleanly is ``StopRegistration()``: it ends the
optimiser after the iteration in progress and ``Execute`` returns normally. Inside SimpleITK's
own pyramid the next level would then start (and run at least one iteration after its
set-up, seconds on large images), which is why the levels run one ``Execute`` each here:
after a stopped level :meth:`RunContext.check` raises :class:`Cancelled` and no further
level starts. So a cancel takes effect at the next iteration, at any level, in both the
linear and the B-spline stage. The B-spline stage uses regular-step descent rather than
L-BFGS-B because ITK's L-BFGS-B ignores ``StopRegistration`` until its own iterations run
out. Demons runs in chunks of iterations (each chunk continues from the previous
displacement field, so previews arrive between chunks) and is aborted inside a chunk
through its progress event, as :func:`~maskwork.operators.segmentation.watershed.run_sitk`
does for every SimpleITK filter (iterative ITK filters do check the abort flag).

SimpleITK is imported inside the functions, so the window starts without it.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Annotated, Callable, Literal

import cv2
import numpy as np

from maskwork.core import pixels
from maskwork.operators.context import Cancelled, InputError, Result, RunContext, null_context
from maskwork.operators.registration.transform import Transform, describe_matrix, identity_grid
from maskwork.operators.registry import Display, Range, ScorePlot, ShownFor, register
from maskwork.operators.seeds import check_image, check_some_finite
from maskwork.operators.segmentation.watershed import run_sitk

#: Smallest image side a pyramid level may shrink an image to (pixels).
MIN_LEVEL_SIZE = 16
#: Longest image side that ``levels`` pyramid levels are meant for; a larger image gets one
#: more coarse level per doubling beyond it, so the coarsest level shows a camera photo
#: about as coarsely as a 1000 px image. With 3 levels, 4000 x 3000 photos rotated up to 8
#: degrees and shifted up to 3 % were recovered in 10 of 14 random pairs (the coarse level's
#: detail misled the metric); with 5, in 14 of 14 and in half the time.
PYRAMID_BASE_SIZE = 1024
#: Smallest image side registration accepts.
MIN_SIZE = 8
#: Most fixed pixels the metric samples per pyramid level when sampling at random.
MAX_SAMPLES = 50_000
#: Average samples per joint-histogram bin below which a level gets fewer Mattes bins.
SAMPLES_PER_BIN = 10.0
#: Fewest Mattes histogram bins a level uses.
MIN_BINS = 8
#: Shortest time between two previews (seconds); slower previews space themselves further.
PREVIEW_INTERVAL = 0.1
#: Smallest fraction of the fixed image that must map into the moving image at the end.
MIN_OVERLAP = 0.05
#: Linear stage's share of the progress bar when a deformable stage follows.
LINEAR_SHARE = 0.6


@register(
    "register_intensity",
    title="Intensity-based (SimpleITK)",
    category="Registration",
    outputs=("image", "transform"),
    requires=("SimpleITK",),
    panel_views=(ScorePlot(),),
)
def register_intensity(
    image: np.ndarray,
    image2: np.ndarray,
    *,
    model: Literal["translation", "rigid", "similarity", "affine"] = "rigid",
    initializer: Literal["geometry", "moments"] = "geometry",
    metric: Annotated[Literal["mattes", "correlation", "mean_squares"],
                      Display(choices=(("mattes", "mutual information (Mattes)"),))] = "mattes",
    histogram_bins: Annotated[int, Range(8, 256), ShownFor("metric", "mattes")] = 32,
    sampling_percentage: Annotated[float, Range(0.01, 1.0), Display("Sampled fraction")] = 0.25,
    levels: Annotated[int, Range(1, 5)] = 3,
    optimizer: Literal["regular_step", "gradient_descent"] = "regular_step",
    learning_rate: Annotated[float, Range(0.01, 50.0)] = 2.0,
    iterations: Annotated[int, Range(1, 5000)] = 200,
    deformable: Literal["none", "bspline", "demons"] = "none",
    mesh_size: Annotated[int, Range(1, 64), ShownFor("deformable", "bspline")] = 8,
    bspline_iterations: Annotated[int, Range(1, 2000), ShownFor("deformable", "bspline"), Display("B-spline iterations")] = 50,
    demons_iterations: Annotated[int, Range(1, 2000), ShownFor("deformable", "demons")] = 100,
    smoothing_sigma: Annotated[float, Range(0.1, 10.0), ShownFor("deformable", "demons")] = 1.5,
    seed: Annotated[int, Range(1, 2**31 - 1)] = 42,
    ctx: RunContext | None = None,
) -> Result:
    """Align a moving image onto a fixed one by optimising an intensity similarity metric.

    Parameters
    ----------
    image : ndarray
        The fixed image (reference): gray, RGB or RGBA (registered on its luminance),
        8-bit, 16-bit or float.
    image2 : ndarray
        The moving image, warped onto the fixed image's grid; its size, dtype and
        channels may differ from the fixed image's.
    model : {"translation", "rigid", "similarity", "affine"}
        Linear transform fitted first: shift only; rotation and shift; plus uniform
        scale; plus shear and anisotropic scale.
    initializer : {"geometry", "moments"}
        Starting position: superimpose the image centres (safe default, and exact when
        nothing moved), or the intensity centres of mass (helps when the object sits
        off-centre in one image; misleads when the contrasts differ).
    metric : {"mattes", "correlation", "mean_squares"}
        Similarity optimised: Mattes mutual information (works across modalities and
        contrast changes, e.g. T1 vs PD MR), normalised cross-correlation (linear
        intensity changes) or mean squared difference (same modality and exposure).
    histogram_bins : int
        Mattes mutual information only: bins of the joint histogram (20 to 50 suits
        most images). Levels with few samples use fewer (about ten samples per joint
        bin), so small images and coarse levels stay smooth.
    sampling_percentage : float
        Fraction of the fixed image's pixels at which the metric is evaluated: random
        points drawn with ``seed``, the same number on every pyramid level (all of a
        coarse level's pixels if it has fewer), at most 50 000 below 1. 1 samples as
        many points as the image has pixels (slowest, most precise).
    levels : int
        Levels of the multi-resolution pyramid for an image up to 1024 pixels on its
        longest side: the images are shrunk by 2^(levels-1), ..., 2, 1 (smoothed with
        sigma = factor / 2) and registered coarse to fine, which captures large motions.
        A pyramid (levels above 1) gets one more coarse level per doubling of the longest
        side beyond 1024 pixels (a 4000 x 3000 photo: two), so its coarsest level is
        between half and the whole size of a 1024 px image's coarsest level. 1 registers
        at full resolution only. Levels that would shrink an image below 16 pixels are skipped.
    optimizer : {"regular_step", "gradient_descent"}
        Regular-step gradient descent (the step halves whenever the direction reverses
        until it falls below 0.001 px; robust and precise) or gradient descent with a
        constant step in pixels.
    learning_rate : float
        Step in pixels (the largest move of any pixel): the first step of regular-step
        descent on each level, which then halves whenever the direction reverses; or
        the step of every gradient-descent iteration, which therefore ends within about
        half a step of the optimum (use 0.25 or less there for sub-pixel results). The
        B-spline stage uses it too.
    iterations : int
        Most optimiser iterations per pyramid level of the linear stage.
    deformable : {"none", "bspline", "demons"}
        Optional non-linear stage after the linear one: a cubic B-spline free-form
        deformation (any metric), or fast symmetric-forces Demons (same modality only:
        the moving image is histogram-matched to the fixed one first).
    mesh_size : int
        B-spline only: control-grid cells per image side; more cells follow finer
        deformations but are slower and less regular.
    bspline_iterations : int
        B-spline only: most optimiser iterations per pyramid level (each moves every
        control point, so they cost more than linear ones).
    demons_iterations : int
        Demons only: iterations of the Demons update.
    smoothing_sigma : float
        Demons only: Gaussian sigma in pixels that regularises the displacement field
        after each update; larger is smoother.
    seed : int
        Seed of the random pixel sampling: the same inputs and parameters sample the
        same points and give the same result (to about a millionth of a pixel, as ITK's
        multi-threaded sums may round differently).
    ctx : RunContext, optional
        Progress, live previews (the moving image as it aligns, with the metric) and
        cancellation at any iteration.

    Returns
    -------
    Result
        ``outputs["image"]``: the moving image warped onto the fixed grid (its dtype and
        channels); ``outputs["transform"]``: a :class:`Transform` (``kind`` = the model,
        or ``"bspline"``/``"demons"`` with a backward map and the linear stage as
        ``matrix``); ``parameters["metric_history"]`` holds the metric per iteration.
        ``scores``: ``metric`` (final value of the last stage), ``metric_linear``,
        ``tx``, ``ty``, ``angle_degrees``, ``scale`` (of the linear part).
    """
    ctx = ctx or null_context()
    ctx.progress(0.0, "Registration: preparing images")
    fixed_raw = check_image(image)
    moving_raw = np.asarray(image2)
    moving_checked = check_image(moving_raw)
    for name, img in (("fixed", fixed_raw), ("moving", moving_checked)):
        if min(img.shape[:2]) < MIN_SIZE:
            raise InputError(f"the {name} image is too small to register ({img.shape[0]}x{img.shape[1]}; "
                             f"at least {MIN_SIZE}x{MIN_SIZE})")
    fixed_gray = luminance(fixed_raw, "fixed")
    moving_gray = luminance(moving_checked, "moving")

    import SimpleITK as sitk

    ctx.check()
    fixed_sitk = sitk.GetImageFromArray(fixed_gray)  # spacing 1, origin 0: physical = pixel
    moving_sitk = sitk.GetImageFromArray(moving_gray)
    factors = shrink_factors(levels, fixed_gray.shape, moving_gray.shape)
    fixed_shape, moving_shape = fixed_gray.shape, moving_gray.shape

    linear_stop = LINEAR_SHARE if deformable != "none" else 0.97
    history: list[float] = []
    history_levels: list[int] = []

    # ---------------------------------------------------------------- linear stage
    initial = initial_transform(sitk, fixed_sitk, moving_sitk, model, initializer)

    def configure_linear(method, samples: float) -> None:
        set_metric(method, metric, histogram_bins, samples)
        if optimizer == "regular_step":
            set_regular_step(method, learning_rate, iterations)
        else:
            # A step of learning_rate pixels at every iteration (re-estimated each time).
            method.SetOptimizerAsGradientDescent(
                learningRate=learning_rate,
                numberOfIterations=iterations,
                convergenceMinimumValue=1e-7,
                convergenceWindowSize=20,
                estimateLearningRate=method.EachIteration,
                maximumStepSizeInPhysicalUnits=learning_rate,
            )
        method.SetOptimizerScalesFromPhysicalShift()

    def preview_linear(position) -> np.ndarray:
        current = sitk.Transform(initial)
        current.SetParameters(tuple(position))
        return Transform(model, moving_to_fixed(current), fixed_shape, moving_shape).apply(moving_raw)

    pyramid = Pyramid(sitk, ctx, fixed_sitk, moving_sitk, factors, sampling_percentage, seed, history, history_levels)
    linear = pyramid.optimise(initial, configure_linear, stage=model.capitalize(), start=0.02, stop=linear_stop,
                              iterations=iterations, preview=preview_linear)
    matrix = moving_to_fixed(initial)
    check_plausible(matrix, fixed_shape, moving_shape)
    metric_linear = linear.metric
    total_iterations = linear.iterations
    linear_parameters = describe_matrix(matrix)
    parameters = {
        "model": model,
        "initializer": initializer,
        "metric_name": metric,
        "shrink_factors": list(factors),
        "smoothing_sigmas": [smoothing(f) for f in factors],
        "sampling_percentage": sampling_percentage,
        "seed": seed,
        "itk_transform": initial.GetName(),
        "itk_parameters": list(initial.GetParameters()),
        "itk_fixed_parameters": list(initial.GetFixedParameters()),
        "stop_condition": linear.stop_condition,
        **linear_parameters,
    }
    scores = {"metric": metric_linear, "metric_linear": metric_linear, **linear_parameters}

    # ---------------------------------------------------------------- deformable stage
    if deformable == "none":
        transform = Transform(model, matrix, fixed_shape, moving_shape, None, parameters)
    elif deformable == "bspline":
        bspline = sitk.BSplineTransformInitializer(fixed_sitk, [mesh_size, mesh_size], 3)

        def configure_bspline(method, samples: float) -> None:
            set_metric(method, metric, histogram_bins, samples)
            # Regular-step descent, not L-BFGS-B: ITK's L-BFGS-B ignores StopRegistration, so
            # it could not be cancelled before its iterations run out (and it is no better here).
            set_regular_step(method, learning_rate, bspline_iterations)
            method.SetOptimizerScalesFromPhysicalShift()
            method.SetMovingInitialTransform(initial)

        def backward_map(position) -> np.ndarray:
            current = sitk.BSplineTransform(bspline)
            current.SetParameters(tuple(position))
            return compose_backward_map(sitk, current, matrix, fixed_shape)

        def preview_bspline(position) -> np.ndarray:
            return Transform("bspline", matrix, fixed_shape, moving_shape, backward_map(position)).apply(moving_raw)

        stage = pyramid.optimise(bspline, configure_bspline, stage="B-spline", start=LINEAR_SHARE, stop=0.95,
                                 iterations=bspline_iterations, preview=preview_bspline, level_offset=len(factors))
        ctx.progress(0.95, "B-spline: sampling the deformation on the fixed grid")
        bmap = backward_map(bspline.GetParameters())
        total_iterations += stage.iterations
        scores["metric"] = stage.metric
        parameters.update(mesh_size=mesh_size, deformable_metric=stage.metric, deformable_stop=stage.stop_condition)
        transform = Transform("bspline", matrix, fixed_shape, moving_shape, bmap, parameters)
    else:
        bmap, value, steps = _demons_stage(
            sitk, ctx, fixed_gray, moving_gray, matrix, moving_raw,
            iterations=demons_iterations, smoothing_sigma=smoothing_sigma,
            history=history, history_levels=history_levels, level=len(factors), iterations_before=total_iterations,
        )  # fmt: skip
        total_iterations += steps
        scores["metric"] = value
        parameters.update(demons_iterations=demons_iterations, smoothing_sigma=smoothing_sigma,
                          deformable_metric=value)
        transform = Transform("demons", matrix, fixed_shape, moving_shape, bmap, parameters)

    parameters["metric_history"] = [float(v) for v in history]
    parameters["metric_history_levels"] = [int(v) for v in history_levels]
    ctx.progress(0.98, "Registration: warping the moving image")
    warped = transform.apply(moving_raw)
    ctx.progress(1.0, f"Registration done: metric {scores['metric']:.4g}")
    return Result({"image": warped, "transform": transform}, iterations=total_iterations, scores=scores)


# ------------------------------------------------------------------ the pyramid and its callbacks


@dataclass
class StageResult:
    """What one optimisation stage (all its pyramid levels) ended with."""

    metric: float
    iterations: int
    stop_condition: str


class Pyramid:
    """Coarse-to-fine optimisation, one ``ImageRegistrationMethod.Execute`` per level.

    Running the levels one by one (rather than SimpleITK's own multi-level loop) lets a
    cancel request end the run without setting up the remaining levels: within a level
    ``StopRegistration()`` ends the optimiser after the iteration in progress, and no later
    level starts. Each level shrinks both images by its factor (smoothing with sigma =
    factor / 2 first) and samples the same number of fixed pixels, ``sampling_percentage``
    of the full image, at most :data:`MAX_SAMPLES` and at most all the level's pixels, drawn
    with ``seed``.

    The shrunk images are made here, once per factor (:meth:`level_images`), and kept for a
    later stage's same level; SimpleITK's own per-level smoothing would filter both images
    at full size at every level and every stage. The metric takes image gradients at its
    sample points only (central differences) instead of filtering a gradient image of each
    whole level first. Together they made a rigid 12 MP registration about 2x faster, with a
    fifth of the freshly touched memory (page faults), at the same alignment on the
    benchmarks (``benchmarks/registration_intensity.py``).
    """

    def __init__(self, sitk, ctx, fixed, moving, factors, sampling_percentage, seed, history, history_levels):
        self.sitk = sitk
        self.ctx = ctx
        self.fixed, self.moving = fixed, moving
        self.factors = list(factors)
        self.percentage = float(sampling_percentage)
        self.seed = int(seed)
        self.history, self.history_levels = history, history_levels
        self._levels: dict[int, tuple] = {1: (fixed, moving)}

    def level_pixels(self, factor: int) -> int:
        """Pixels of the fixed image shrunk by ``factor`` (a power of two)."""
        cols, rows = self.fixed.GetSize()
        return -(-rows // factor) * -(-cols // factor)

    def level_images(self, factor: int) -> tuple:
        """The fixed and moving images smoothed (sigma = ``factor`` / 2 full pixels) and
        shrunk by ``factor``, a power of two.

        Each keeps the full image's physical frame: pixel ``i`` of a level lies at full
        resolution pixel ``i * factor`` (spacing ``factor``, origin 0), so transforms and
        steps stay in full-resolution pixels on every level. A level is made from the next
        finer one (blurred by what its sigma lacks, then every second pixel), so a coarse
        level costs a fraction of the full image's size, not a wide blur of all of it.
        """
        if factor not in self._levels:
            finer = self.level_images(factor // 2)
            shrunk = []
            for image in finer:
                self.ctx.check()
                shrunk.append(self._halved(image, factor))
            self._levels[factor] = tuple(shrunk)
        return self._levels[factor]

    def _halved(self, finer, factor: int):
        """The level of ``factor`` from the level of ``factor`` / 2."""
        pixels = self.sitk.GetArrayViewFromImage(finer)
        # Gaussian sigmas add in squares; the finer level's pixels are factor / 2 wide.
        sigma = math.sqrt(smoothing(factor) ** 2 - smoothing(factor // 2) ** 2) / (factor // 2)
        smoothed = cv2.GaussianBlur(pixels, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REPLICATE)
        level = self.sitk.GetImageFromArray(np.ascontiguousarray(smoothed[::2, ::2]))
        level.SetSpacing((float(factor), float(factor)))
        return level

    def sampling(self, factor: int) -> float:
        """Fraction of the level's pixels to sample (1 = as many points as it has pixels)."""
        cols, rows = self.fixed.GetSize()
        samples = self.percentage * rows * cols
        if self.percentage < 1.0:
            samples = min(samples, MAX_SAMPLES)
        return min(1.0, samples / self.level_pixels(factor))

    def optimise(self, transform, configure: Callable, *, stage: str, start: float, stop: float, iterations: int,
                 preview: Callable, level_offset: int = 0) -> StageResult:
        """Optimise ``transform`` in place, level by level.

        Parameters
        ----------
        transform : sitk.Transform
            Starting transform; updated in place.
        configure : callable
            ``configure(method, samples)`` sets the metric (for that many sample points),
            optimiser, scales and moving initial transform of a fresh
            ``ImageRegistrationMethod``.
        stage : str
            Name shown in progress messages.
        start, stop : float
            Share of the progress bar this stage fills.
        iterations : int
            Iteration limit per level (for the progress fraction).
        preview : callable
            ``preview(optimizer_position) -> ndarray``: the moving image warped with the
            transform at that position.
        level_offset : int
            Added to the level index in the metric history and the previews' scores.
        """
        sitk = self.sitk
        n_levels = len(self.factors)
        total, value, condition = 0, float("nan"), ""
        for index, factor in enumerate(self.factors):
            self.ctx.progress(start + (stop - start) * index / n_levels, f"{stage}: level {index + 1} of {n_levels}")
            method = sitk.ImageRegistrationMethod()
            fraction = self.sampling(factor)
            configure(method, fraction * self.level_pixels(factor))
            method.SetInterpolator(sitk.sitkLinear)
            # Always random points (perturbed around their pixel centres), even for "every pixel":
            # on the pixel grid itself (NONE) Mattes' derivative misleads the optimiser
            # where a moving image has a zero-filled border (rotated scans, warped photos).
            method.SetMetricSamplingStrategy(method.RANDOM)
            method.SetMetricSamplingPercentage(fraction, self.seed)
            method.SetMetricUseFixedImageGradientFilter(False)
            method.SetMetricUseMovingImageGradientFilter(False)
            method.SetShrinkFactorsPerLevel([1])
            method.SetSmoothingSigmasPerLevel([0.0])
            method.SetInitialTransform(transform, inPlace=True)
            monitor = IterationMonitor(
                method, self.ctx, stage=stage, level=index, n_levels=n_levels,
                start=start + (stop - start) * index / n_levels, stop=start + (stop - start) * (index + 1) / n_levels,
                iterations=iterations, preview=preview, history=self.history, history_levels=self.history_levels,
                level_offset=level_offset,
            )  # fmt: skip
            monitor.execute(*self.level_images(factor))
            total += monitor.iterations
            value = float(method.GetMetricValue())
            condition = method.GetOptimizerStopConditionDescription()
        return StageResult(value, total, condition)


class IterationMonitor:
    """Runs one level's ``Execute`` and relays its iterations to a :class:`RunContext`.

    The callback never raises (SimpleITK would print the traceback and turn it into a
    ``RuntimeError``): a cancel request, or any error while building a preview, calls
    ``StopRegistration()`` instead, and :meth:`execute` raises :class:`Cancelled` (or the
    error) once ``Execute`` has returned.
    """

    def __init__(self, method, ctx: RunContext, *, stage: str, level: int, n_levels: int, start: float, stop: float,
                 iterations: int, preview: Callable, history: list, history_levels: list,
                 level_offset: int = 0) -> None:
        self.method = method
        self.ctx = ctx
        self.stage = stage
        self.level, self.n_levels = level, n_levels
        self.start, self.stop = start, stop
        self.limit = max(1, iterations)
        self.preview = preview
        self.history = history
        self.history_levels = history_levels
        self.level_offset = level_offset
        self.iterations = 0
        self.stopping = False
        self.error: BaseException | None = None
        self._next_preview = 0.0

    def _stop(self) -> None:
        self.stopping = True
        self.method.StopRegistration()

    def on_iteration(self) -> None:
        if self.stopping:
            self.method.StopRegistration()
            return
        try:
            method = self.method
            step = method.GetOptimizerIteration()
            value = float(method.GetMetricValue())
            self.iterations += 1
            self.history.append(value)
            self.history_levels.append(self.level + self.level_offset)
            self.ctx.progress(
                self.start + (self.stop - self.start) * min(step + 1, self.limit) / self.limit,
                f"{self.stage}: level {self.level + 1} iteration {step + 1} metric {value:.4g}",
            )
            now = time.perf_counter()
            if self.ctx.wants_partials and now >= self._next_preview:
                warped = self.preview(method.GetOptimizerPosition())
                cost = time.perf_counter() - now
                # At most ~10 previews a second, and never more than ~20 % of the run.
                self._next_preview = time.perf_counter() + max(PREVIEW_INTERVAL, 4.0 * cost)
                self.ctx.partial(
                    Result(
                        {"image": warped},
                        iterations=len(self.history),
                        scores={"metric": value, "iteration": float(len(self.history)),
                                "level": float(self.level + self.level_offset)},
                    )
                )
        except Cancelled:
            self._stop()
        except BaseException as exc:  # noqa: BLE001 - re-raised by execute()
            self.error = exc
            self._stop()

    def execute(self, fixed, moving):
        """Run the registration; raise :class:`Cancelled` if it was cancelled."""
        import SimpleITK as sitk

        self.ctx.check()
        self.method.AddCommand(sitk.sitkIterationEvent, self.on_iteration)
        try:
            result = self.method.Execute(fixed, moving)
        except RuntimeError as exc:
            self.ctx.check()
            if self.error is not None:
                raise self.error from None
            raise InputError(registration_failure(exc)) from None
        finally:
            self.method.RemoveAllCommands()
        if self.error is not None:
            raise self.error
        self.ctx.check()
        return result


def check_plausible(matrix: np.ndarray, fixed_shape, moving_shape) -> None:
    """Raise :class:`InputError` when the optimiser ran off: a degenerate matrix, or a fixed
    image that (almost) no longer overlaps the moving one."""
    advice = ("try more pyramid levels, a smaller learning_rate, another initializer, a simpler model, "
              "or the Mattes metric if the images differ in contrast")
    if not np.all(np.isfinite(matrix)):
        raise InputError(f"registration diverged; {advice}")
    det = abs(float(np.linalg.det(matrix[:2, :2])))
    if not 1 / 20 < det < 20:
        raise InputError(f"registration diverged (the transform scales areas by {det:.3g}); {advice}")
    rows, cols = fixed_shape
    ys, xs = np.mgrid[0 : rows : max(1, rows // 64), 0 : cols : max(1, cols // 64)]
    inverse = np.linalg.inv(matrix)
    mx = inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2]
    my = inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2]
    inside = (mx >= 0) & (mx <= moving_shape[1] - 1) & (my >= 0) & (my <= moving_shape[0] - 1)
    if inside.mean() < MIN_OVERLAP:
        raise InputError(
            f"registration lost the images' overlap (only {100 * inside.mean():.1f} % of the fixed image maps into "
            f"the moving one); {advice}"
        )


def registration_failure(exc: Exception) -> str:
    """A message for the person when SimpleITK gives up on the images."""
    text = str(exc)
    if "outside" in text or "valid points" in text.lower() or "samples" in text.lower():
        return (
            "registration lost the overlap between the images (too few pixels of the fixed image map "
            "into the moving one); try more pyramid levels, a smaller learning_rate, another "
            "initializer or a simpler model"
        )
    last = [line.strip() for line in text.splitlines() if line.strip()]
    detail = last[-1] if last else text
    return f"SimpleITK could not register the images: {detail}"


# ------------------------------------------------------------------ stages


def _demons_stage(sitk, ctx, fixed_gray, moving_gray, matrix, moving_raw, *, iterations, smoothing_sigma, history,
                  history_levels, level, iterations_before):
    """Fast symmetric-forces Demons between the fixed image and the linearly aligned moving one.

    Runs in chunks so that previews (and the metric) arrive between them; each chunk
    continues from the previous displacement field and can be aborted inside. The
    previews count iterations on from ``iterations_before`` (the linear stage's), as the
    linear stage's own previews count them.
    """
    rows, cols = fixed_gray.shape
    fixed_shape, moving_shape = fixed_gray.shape, moving_raw.shape[:2]
    aligned = cv2.warpAffine(moving_gray, matrix[:2], (cols, rows), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_REPLICATE)
    fixed_sitk = sitk.GetImageFromArray(fixed_gray)
    aligned_sitk = sitk.GetImageFromArray(aligned)
    matcher = sitk.HistogramMatchingImageFilter()
    matcher.SetNumberOfHistogramLevels(256)
    matcher.SetNumberOfMatchPoints(15)
    matcher.ThresholdAtMeanIntensityOn()
    aligned_sitk = matcher.Execute(aligned_sitk, fixed_sitk)

    demons = sitk.FastSymmetricForcesDemonsRegistrationFilter()
    demons.SetStandardDeviations(smoothing_sigma)
    demons.SetSmoothDisplacementField(True)
    demons.SetMaximumRMSError(0.0)  # run the iterations asked for
    field = sitk.Image([cols, rows], sitk.sitkVectorFloat64, 2)
    chunk = max(5, math.ceil(iterations / 10))
    done = 0
    value = float("nan")
    while done < iterations:
        count = min(chunk, iterations - done)
        demons.SetNumberOfIterations(count)
        start = LINEAR_SHARE + (0.95 - LINEAR_SHARE) * done / iterations
        stop = LINEAR_SHARE + (0.95 - LINEAR_SHARE) * (done + count) / iterations
        field = run_sitk(demons, ctx, fixed_sitk, aligned_sitk, field, start=start, stop=stop,
                         message=f"Demons: iteration {done + 1}-{done + count} of {iterations}")
        done += count
        value = float(demons.GetMetric())
        history.append(value)
        history_levels.append(level)
        ctx.progress(stop, f"Demons: iteration {done} of {iterations} metric {value:.4g}")
        if ctx.wants_partials and done < iterations:
            bmap = demons_backward_map(sitk.GetArrayFromImage(field), matrix)
            warped = Transform("demons", matrix, fixed_shape, moving_shape, bmap).apply(moving_raw)
            run_so_far = iterations_before + done
            ctx.partial(Result({"image": warped}, iterations=run_so_far,
                               scores={"metric": value, "iteration": float(run_so_far), "level": float(level)}))
    ctx.progress(0.95, "Demons: building the backward map")
    return demons_backward_map(sitk.GetArrayFromImage(field), matrix), value, done


# ------------------------------------------------------------------ geometry


def moving_to_fixed(itk_transform) -> np.ndarray:
    """The 3x3 moving -> fixed pixel matrix of a linear ITK transform (fixed -> moving).

    Three points fix an affine map exactly, whatever the transform's centre.
    """
    p0 = np.array(itk_transform.TransformPoint((0.0, 0.0)))
    ex = np.array(itk_transform.TransformPoint((1.0, 0.0))) - p0
    ey = np.array(itk_transform.TransformPoint((0.0, 1.0))) - p0
    fixed_to_moving = np.array([[ex[0], ey[0], p0[0]], [ex[1], ey[1], p0[1]], [0.0, 0.0, 1.0]])
    matrix = np.linalg.inv(fixed_to_moving)
    matrix[2] = (0.0, 0.0, 1.0)
    return matrix


def compose_backward_map(sitk, deformation, matrix: np.ndarray, fixed_shape) -> np.ndarray:
    """Backward map of ``linear(deformation(p))`` for every fixed pixel ``p``.

    ``deformation`` maps fixed points into the linearly aligned space (a B-spline);
    ``matrix`` is the moving -> fixed linear part, whose inverse completes the mapping.
    """
    rows, cols = fixed_shape
    disp = sitk.TransformToDisplacementField(
        deformation, sitk.sitkVectorFloat64, [cols, rows], [0.0, 0.0], [1.0, 1.0], [1.0, 0.0, 0.0, 1.0]
    )
    points = identity_grid(fixed_shape).astype(np.float64) + sitk.GetArrayViewFromImage(disp)
    inverse = np.linalg.inv(matrix)
    return (points @ inverse[:2, :2].T + inverse[:2, 2]).astype(np.float32)


def demons_backward_map(displacement: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Backward map from a Demons field on the fixed grid (into the linearly aligned image)."""
    points = identity_grid(displacement.shape[:2]).astype(np.float64) + displacement
    inverse = np.linalg.inv(matrix)
    return (points @ inverse[:2, :2].T + inverse[:2, 2]).astype(np.float32)


# ------------------------------------------------------------------ set-up helpers


def luminance(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Contiguous float32 (row, col) luminance in about [0, 1]; NaN becomes 0.

    Raises
    ------
    InputError
        When the image is uniform (nothing to align) or holds no finite value.
    """
    gray = np.ascontiguousarray(pixels.display_luminance(check_some_finite(check_image(image))))
    if float(gray.max()) - float(gray.min()) < 1e-6:
        raise InputError(f"the {name} image is uniform: intensity-based registration needs structure to align")
    return gray


def shrink_factors(levels: int, *shapes) -> list[int]:
    """Pyramid shrink factors ``[2^(n-1), ..., 2, 1]`` that keep every image >= 16 px.

    ``n`` is ``levels``; when that is a pyramid (above 1), plus one per doubling of the
    longest side beyond :data:`PYRAMID_BASE_SIZE`.
    """
    smallest = min(min(shape[:2]) for shape in shapes)
    longest = max(max(shape[:2]) for shape in shapes)
    extra = max(0, math.ceil(math.log2(longest / PYRAMID_BASE_SIZE))) if levels > 1 else 0
    factors = [2**k for k in reversed(range(max(1, int(levels)) + extra))]
    kept = [f for f in factors if f == 1 or smallest / f >= MIN_LEVEL_SIZE]
    return kept


def initial_transform(sitk, fixed, moving, model: str, initializer: str):
    """The model's ITK transform, centred and shifted by ``CenteredTransformInitializer``."""
    mode = (sitk.CenteredTransformInitializerFilter.GEOMETRY if initializer == "geometry"
            else sitk.CenteredTransformInitializerFilter.MOMENTS)
    if model == "translation":
        # The initializer needs a transform with a centre; an unrotated Euler2D's
        # translation is the whole shift.
        euler = sitk.CenteredTransformInitializer(fixed, moving, sitk.Euler2DTransform(), mode)
        return sitk.TranslationTransform(2, sitk.Euler2DTransform(euler).GetTranslation())
    prototype = {
        "rigid": sitk.Euler2DTransform,
        "similarity": sitk.Similarity2DTransform,
        "affine": lambda: sitk.AffineTransform(2),
    }[model]()
    initial = sitk.CenteredTransformInitializer(fixed, moving, prototype, mode)
    caster = {"rigid": sitk.Euler2DTransform, "similarity": sitk.Similarity2DTransform,
              "affine": sitk.AffineTransform}[model]
    return caster(initial)


def set_regular_step(method, learning_rate: float, iterations: int) -> None:
    """Regular-step gradient descent whose first step moves pixels by at most ``learning_rate``.

    With scales from the physical shift, ``estimateLearningRate=Once`` turns the step into
    pixels at the start of every level; a plain initial step in parameter units lets a
    rotation jump by degrees when a level starts, and the pyramid then loses it.
    """
    method.SetOptimizerAsRegularStepGradientDescent(
        learningRate=learning_rate,
        minStep=1e-3,
        numberOfIterations=iterations,
        relaxationFactor=0.5,
        gradientMagnitudeTolerance=1e-8,
        estimateLearningRate=method.Once,
        maximumStepSizeInPhysicalUnits=learning_rate,
    )


def set_metric(method, metric: str, bins: int, samples: float) -> None:
    """The similarity metric of a registration method that samples ``samples`` points."""
    if metric == "mattes":
        method.SetMetricAsMattesMutualInformation(numberOfHistogramBins=level_bins(bins, samples))
    elif metric == "correlation":
        method.SetMetricAsCorrelation()
    elif metric == "mean_squares":
        method.SetMetricAsMeanSquares()
    else:
        raise InputError(f"unknown metric {metric!r}; choose mattes, correlation or mean_squares")


def level_bins(bins: int, samples: float) -> int:
    """Mattes histogram bins for a level: ``bins``, fewer where samples are few.

    A joint histogram of b x b bins needs about ten samples per bin on average to give a
    smooth metric; the coarse levels of a small image have only a few thousand pixels, and
    32 x 32 bins there make the metric noisy enough to lose large motions.
    """
    return int(max(MIN_BINS, min(int(bins), round(math.sqrt(max(samples, 1.0) / SAMPLES_PER_BIN)))))


def smoothing(factor: int) -> float:
    """Gaussian sigma (pixels) used before shrinking by ``factor``."""
    return factor / 2.0 if factor > 1 else 0.0
