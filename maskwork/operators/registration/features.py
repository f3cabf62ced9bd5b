"""Feature-based registration: keypoints, ratio-test matching, robust model fitting.

Pipeline: both images become 8-bit gray as displayed (:func:`maskwork.core.pixels.to_uint8_gray`:
16-bit and float stretched between their 0.5 and 99.5 percentiles, colour turned to Rec. 709
luminance); ORB, AKAZE or SIFT keypoints are matched
moving -> fixed with Lowe's ratio test; RANSAC or OpenCV's USAC/MAGSAC picks the inliers;
the chosen model is then refitted by least squares on the inliers (re-selected under the
final model a few times), which is what gets sub-pixel accuracy out of many matches.
When an affine or a homography finds too little support that way (a plane seen at a steep
angle, where descriptors of the two views no longer agree), the keypoints are found again
in simulated tilted views of both images (ASIFT, Morel and Yu 2009, OpenCV's
``AffineFeature``) and matched the same way; that fit is kept where it is well supported
itself and better than the first.
Last, with ``intensity_refinement``, the estimate is polished by maximising the enhanced
correlation coefficient between the images (``cv2.findTransformECC``, Evangelidis and
Psarakis 2008) on a two-level pyramid, and that result is kept only when it raises the
normalised cross-correlation of the images over their overlap.

SIFT keypoints are moved 0.25 px up and left (:data:`SIFT_OFFSET`): OpenCV reports them that
far right of and below where they are, a bias that does not cancel between images of
different scales.

The defaults (MAGSAC++, the offset, the refinement) were chosen on the tuning half of
``benchmarks/registration_homography.py`` (photos warped by known homographies); its other
half, photos never tuned on, reports how they generalise. Tried there and left out, as they
did not help: RootSIFT descriptors, keeping only mutual nearest neighbours, a ratio of 0.8,
MAGSAC thresholds of 2 and 5 px.

OpenCV's robust estimators cover the models differently, so:

* similarity: ``cv2.estimateAffinePartial2D`` (RANSAC). MAGSAC is offered there only by
  ``cv2.estimateAffine2D``, so with ``usac_magsac`` the inliers come from a MAGSAC affine
  fit and the similarity is refitted on them.
* rigid: the similarity's inliers, refitted with the scale forced to 1 (Umeyama/Kabsch).
* affine: ``cv2.estimateAffine2D``; homography: ``cv2.findHomography`` (both estimators).
* translation: RANSAC on the match shifts (one match is a full sample), then the mean shift
  of the inliers; MAGSAC has no translation model, so both estimators use this.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Annotated, Callable, Literal

import cv2
import numpy as np

from maskwork.core.pixels import to_uint8_gray, to_uint8_rgb
from maskwork.operators.context import InputError, Result, RunContext, null_context
from maskwork.operators.registration.transform import Transform, describe_matrix
from maskwork.operators.registry import Display, Range, ScorePlot, register
from maskwork.operators.seeds import check_image
from maskwork.operators.stoppable import call_warm

#: Point pairs that determine each model exactly.
SAMPLE_SIZE = {"translation": 1, "rigid": 2, "similarity": 2, "affine": 3, "homography": 4}
#: Fewest ratio-test matches worth trying a model on (a few more than its sample size).
MIN_MATCHES = {"translation": 3, "rigid": 3, "similarity": 3, "affine": 4, "homography": 6}
#: Detectors this OpenCV build offers. OpenCV 5 moved AKAZE to opencv-contrib, so it is
#: listed only where ``cv2.AKAZE_create`` exists (OpenCV 4.x or a contrib build).
DETECTORS = tuple(name for name in ("orb", "akaze", "sift") if name != "akaze" or hasattr(cv2, "AKAZE_create"))
#: Images over this many pixels find their keypoints in the warm child process
#: (:func:`~maskwork.operators.stoppable.call_warm`). SIFT on a 12 MP photo takes 2-3 s and
#: 2.8 GB at its peak: in the window's process that memory would stay (it keeps freed
#: memory), and when the descriptors, allocated last, were freed the heap's free top of
#: more than 2 GB went back to the system inside that free, 170-200 ms with the GIL held
#: (benchmarks/gil_holds.py); in the child it costs neither, and Cancel stops it.
DETECT_IN_CHILD_PIXELS = 2_000_000
#: An affine or homography fit with fewer inliers than this many times its sample size is
#: weakly supported: with ``view_synthesis`` the keypoints are matched again across
#: simulated tilted views. (On the benchmark's tuning half a wrong homography had 5
#: inliers, right ones had 12 or more; at 8 the views' fit, with more inliers but less
#: precise keypoints, replaced two right ones: 0.90 -> 2.81 px and 1.73 -> 1.89 px.)
WEAK_SUPPORT = 3
#: Simulated views (ASIFT): tilts sqrt(2)**k for k up to this (2: tilts 1.4 and 2, a plane
#: seen up to 60 degrees off its normal), each at longitudes every 72 / tilt degrees.
VIEW_MAX_TILT = 2
#: Largest image (pixels) whose simulated views are made at full size; a larger one is
#: shrunk to this first.
VIEW_MAX_PIXELS = 1_000_000
#: The simulated views of an image keep this many times ``max_features`` keypoints, the
#: strongest over all views (on the benchmark's tilted pairs 1x left a photo at 0.99 px,
#: 2x at 0.56, 4x at 0.32, as many as all views find there).
VIEW_FEATURES = 4
#: Inlier/outlier points kept in ``Transform.parameters`` for drawing (each list at most).
MAX_STORED_POINTS = 1000
#: How far right and down OpenCV's SIFT reports a keypoint from where it is (px, both axes).
#: SIFT doubles the image first (bilinear, so its pixel i sits at i/2 - 1/4 of the original)
#: and halves the coordinates without the quarter pixel; every octave inherits the offset.
#: Measured on the astronaut at 1024 px against its own INTER_AREA half: mean residual of the
#: matches under the exact scaling (0.257, 0.262) px as reported, (0.007, 0.012) px corrected.
SIFT_OFFSET = 0.25
#: The motion the intensity refinement optimises for each model; a similarity is refined as
#: an affine and projected back onto the similarities (least squares over a grid of points).
ECC_MOTION = {"translation": cv2.MOTION_TRANSLATION, "rigid": cv2.MOTION_EUCLIDEAN, "similarity": cv2.MOTION_AFFINE,
              "affine": cv2.MOTION_AFFINE, "homography": cv2.MOTION_HOMOGRAPHY}
#: The finest pyramid level the refinement works on has at most this many pixels (an ECC
#: iteration costs about 0.07 s of CPU per megapixel).
ECC_MAX_PIXELS = 4_000_000
#: Pixels x iterations of one ``findTransformECC`` call: the refinement checks Cancel
#: between calls, so one call stays under about 0.3 s of CPU; and at most
#: :data:`ECC_CALL_MAX_ITERATIONS`, so that the correlation curve the panel plots has points.
ECC_CALL_PIXEL_ITERATIONS = 4_000_000
ECC_CALL_MAX_ITERATIONS = 10
#: Most ECC iterations per pyramid level; it stops earlier once the warp moves the image
#: corners by less than :data:`ECC_SETTLED_PX` (pixels of that level) in one call.
ECC_MAX_ITERATIONS = 60
ECC_SETTLED_PX = 0.005
#: Shortest time between two partial results of the refinement (seconds).
PREVIEW_INTERVAL = 0.1
#: Fewest overlapping pixels (at each level) worth refining on.
ECC_MIN_OVERLAP = 2000
#: Width of the band along each image's edge that the refinement leaves out (px of a level).
ECC_BORDER_PX = 4


@register(
    "register_features",
    title="Feature-based",
    category="Registration",
    outputs=("image", "transform"),
    panel_views=(ScorePlot("metric", "ECC correlation", "ECC iteration"),),
)
def register_features(
    image: np.ndarray,
    image2: np.ndarray,
    *,
    detector: Literal[DETECTORS] = "sift",
    max_features: Annotated[int, Range(50, 100000)] = 5000,
    ratio: Annotated[float, Range(0.1, 1.0)] = 0.75,
    estimator: Annotated[Literal["ransac", "usac_magsac"],
                         Display(choices=(("ransac", "RANSAC"), ("usac_magsac", "MAGSAC++")))] = "usac_magsac",
    reprojection_threshold: Annotated[float, Range(0.1, 50.0)] = 3.0,
    model: Literal["translation", "rigid", "similarity", "affine", "homography"] = "similarity",
    view_synthesis: bool = True,
    intensity_refinement: bool = True,
    ctx: RunContext | None = None,
) -> Result:
    """Align a moving image onto a fixed one by matching keypoints.

    Parameters
    ----------
    image : ndarray
        The fixed image (reference): gray, RGB or RGBA, 8-bit, 16-bit or float.
    image2 : ndarray
        The moving image, warped onto the fixed image's grid; its size may differ.
    detector : {"orb", "akaze", "sift"}
        Keypoint detector and descriptor. SIFT is the most accurate and handles scale and
        rotation well; ORB is the fastest; AKAZE (offered when OpenCV has it: 4.x or a
        contrib build) sits between and likes textured scenes.
    max_features : int
        Most keypoints kept per image (the strongest ones; with ``view_synthesis``, four
        times as many over all its simulated views together).
    ratio : float
        Lowe's ratio test: a match is kept when its descriptor distance is below this
        fraction of the second-best candidate's. Lower is stricter.
    estimator : {"ransac", "usac_magsac"}
        Robust estimator that separates inlier matches from outliers: classic RANSAC or
        OpenCV's USAC with MAGSAC++ scoring (less sensitive to the threshold; the default, as
        it finds the better homography under strong viewpoint changes).
    reprojection_threshold : float
        Largest distance in fixed-image pixels between a mapped moving keypoint and its
        match for the match to count as an inlier.
    model : {"translation", "rigid", "similarity", "affine", "homography"}
        Transform fitted: shift only; rotation and shift; plus uniform scale; plus shear
        and anisotropic scale; or full perspective (planar scenes seen from two viewpoints).
    view_synthesis : bool
        Affine and homography: when the keypoints' matches give the fit little support
        (fewer inliers than :data:`WEAK_SUPPORT` times the points a fit needs, a plane seen
        at a steep angle), find keypoints again in simulated tilted views of both images
        (ASIFT; at most a megapixel of each) and keep that fit where it is well supported.
        Then it takes a few seconds longer.
    intensity_refinement : bool
        Polish the keypoint estimate by aligning the pixels themselves (ECC on a two-level
        pyramid); the polished transform is kept only when it matches the images better over
        their overlap (normalised cross-correlation), so it never makes a result worse by
        that measure. Sub-pixel on sharp, same-modality images; turn it off for images of
        different modalities or scenes that are not planar, where the pixels disagree.
    ctx : RunContext, optional
        Progress and cancellation.

    Returns
    -------
    Result
        ``outputs["image"]``: the moving image warped onto the fixed grid (its dtype and
        channels); ``outputs["transform"]``: a :class:`Transform` whose parameters hold the
        inlier and outlier point pairs. ``scores``: ``n_matches``, ``n_inliers``,
        ``mean_residual`` (px, keypoint inliers under the final transform),
        ``n_keypoints_fixed``, ``n_keypoints_moving``, and with ``intensity_refinement``
        ``overlap_correlation_keypoints`` and ``overlap_correlation`` (the normalised
        cross-correlation over the overlap before and after the refinement; absent when
        the overlap is too small to measure) and ``intensity_refined`` (1 when the
        refinement was kept, else 0); ``views_simulated`` (1 when the keypoints of the
        simulated tilted views gave the fit, else 0).
    """
    ctx = ctx or null_context()
    ctx.progress(0.0, "Preparing images")
    fixed = check_image(image)
    moving = check_image(image2)
    gray_fixed, gray_moving = to_uint8_gray(fixed), to_uint8_gray(moving)

    _, norm = _extractor(detector, max_features)

    def detect(gray: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        if gray.size > DETECT_IN_CHILD_PIXELS:
            return call_warm(ctx, detect_keypoints, detector, max_features, gray)
        return detect_keypoints(detector, max_features, gray)

    ctx.progress(0.05, f"Detecting {detector.upper()} keypoints in the fixed image")
    points_fixed, desc_fixed = detect(gray_fixed)
    ctx.progress(0.25, f"Detecting {detector.upper()} keypoints in the moving image")
    points_moving, desc_moving = detect(gray_moving)

    ctx.progress(0.45, "Matching keypoints")
    offset = SIFT_OFFSET if detector == "sift" else 0.0
    pairs = _ratio_matches(desc_moving, desc_fixed, norm, ratio)
    fitted = _match_and_fit(points_moving, points_fixed, pairs, offset, model, estimator, reprojection_threshold,
                            fixed.shape[:2], ctx, 0.48)
    n_keypoints = (len(points_fixed), len(points_moving))
    views_tried = view_synthesis and model in ("affine", "homography") and (
        fitted.support < WEAK_SUPPORT * SAMPLE_SIZE[model])
    views_simulated = False
    tried_too = ""
    if views_tried:
        ctx.progress(0.5, f"Few {detector.upper()} matches agree: finding keypoints in simulated tilted views "
                          "of the fixed image")
        views_fixed = call_warm(ctx, detect_keypoints_in_views, detector, max_features, gray_fixed)
        ctx.progress(0.52, "Finding keypoints in simulated tilted views of the moving image")
        views_moving = call_warm(ctx, detect_keypoints_in_views, detector, max_features, gray_moving)
        ctx.progress(0.54, "Matching the simulated views' keypoints")
        # Several times the keypoints of one image on each side: matched in the warm child
        # too, where Cancel stops it. No SIFT offset: each view's keypoints come back
        # through that view's own affine map, which turns the quarter pixel another way.
        pairs = call_warm(ctx, _ratio_matches, views_moving[1], views_fixed[1], norm, ratio)
        from_views = _match_and_fit(views_moving[0], views_fixed[0], pairs, 0.0, model, estimator,
                                    reprojection_threshold, fixed.shape[:2], ctx, 0.56)
        # Adopted only where well supported itself: on unrelated pictures a handful of
        # chance matches among the views' many keypoints make a "fit" too.
        if from_views.support >= max(fitted.support + 1, WEAK_SUPPORT * SAMPLE_SIZE[model]):
            fitted, views_simulated = from_views, True
            n_keypoints = (len(views_fixed[0]), len(views_moving[0]))
        else:
            tried_too = (f" (in simulated tilted views too: {len(from_views.src)} matches, "
                         f"{from_views.agreeing} agreeing)")
    src, dst, matrix, inliers = fitted.src, fitted.dst, fitted.matrix, fitted.inliers
    n_matches = len(src)
    if n_matches < MIN_MATCHES[model]:
        raise InputError(
            f"{detector.upper()} found only {n_matches} match(es) between the images after the ratio test "
            f"({n_keypoints[0]} keypoints in the fixed image, {n_keypoints[1]} in the moving one){tried_too}; "
            f"{_article(model)} {model} needs at least {MIN_MATCHES[model]}. {_advice(detector)}"
        )
    n_inliers = fitted.support
    if n_inliers == 0:
        raise InputError(
            f"no consistent {model} found: {fitted.agreeing} of {n_matches} {detector.upper()} matches agree "
            f"within {reprojection_threshold:g} px{tried_too}. {_advice(detector)}"
        )
    refinement_scores = {}
    if intensity_refinement:
        ctx.progress(0.6, "Refining on the pixels (ECC)")
        previews = _PartialPreviews(ctx, image2, fixed.shape[:2], moving.shape[:2]) if ctx.wants_partials else None
        matrix, refinement_scores = refine_by_intensity(gray_fixed, gray_moving, matrix, model, ctx, 0.6, 0.9,
                                                        previews)
    mean_residual = float(_residuals(matrix, src[inliers], dst[inliers]).mean())

    ctx.progress(0.9, "Warping the moving image")
    parameters = {
        **describe_matrix(matrix),
        "detector": detector,
        "estimator": estimator,
        "intensity_refined": bool(refinement_scores.get("intensity_refined", 0)),
        "n_matches": n_matches,
        "n_inliers": n_inliers,
        "mean_residual": mean_residual,
        "views_simulated": views_simulated,
        **_stored_points(src, dst, inliers),
    }
    transform = Transform(model, matrix, fixed.shape[:2], moving.shape[:2], None, parameters)
    warped = transform.apply(np.asarray(image2), interpolation="linear")
    ctx.progress(1.0, f"{n_inliers} inliers of {n_matches} matches, mean residual {mean_residual:.2f} px")
    scores = {
        "n_matches": n_matches,
        "n_inliers": n_inliers,
        "mean_residual": mean_residual,
        "n_keypoints_fixed": n_keypoints[0],
        "n_keypoints_moving": n_keypoints[1],
        "views_simulated": int(views_simulated),
        **refinement_scores,
    }
    return Result({"image": warped, "transform": transform}, iterations=0, scores=scores)


# ------------------------------------------------------------------ images and keypoints


def _extractor(detector: str, max_features: int):
    if detector == "sift":
        return cv2.SIFT_create(nfeatures=max_features), cv2.NORM_L2
    if detector == "orb":
        return cv2.ORB_create(nfeatures=max_features), cv2.NORM_HAMMING
    if detector == "akaze" and hasattr(cv2, "AKAZE_create"):
        return cv2.AKAZE_create(), cv2.NORM_HAMMING
    raise InputError(f"detector {detector!r} is not available in OpenCV {cv2.__version__}; use {' or '.join(DETECTORS)}")


def detect_keypoints(detector: str, max_features: int, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """The ``detector``'s keypoints in ``gray`` as an (n, 2) array of (x, y) positions, as
    OpenCV reports them, and their descriptors (None when there are none); the
    ``max_features`` strongest at most. Module-level and plain arrays in and out, so that
    :func:`~maskwork.operators.stoppable.call_warm` can run it in the warm child."""
    extractor, _ = _extractor(detector, max_features)
    keypoints, descriptors = extractor.detectAndCompute(gray, None)
    keypoints = list(keypoints)
    if descriptors is None or not keypoints:
        return np.zeros((0, 2)), None
    if len(keypoints) > max_features:  # AKAZE has no cap of its own
        order = np.argsort([-kp.response for kp in keypoints], kind="stable")[:max_features]
        keypoints = [keypoints[i] for i in order]
        descriptors = descriptors[order]
    return np.float64([kp.pt for kp in keypoints]), descriptors


def detect_keypoints_in_views(detector: str, max_features: int, gray: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """As :func:`detect_keypoints`, over ``gray`` and its simulated tilted views (ASIFT:
    OpenCV's ``AffineFeature`` around the detector, tilts up to ``sqrt(2) **``
    :data:`VIEW_MAX_TILT`): the :data:`VIEW_FEATURES` x ``max_features`` strongest over all
    views, positions in ``gray``'s own pixels. An image over :data:`VIEW_MAX_PIXELS` is
    shrunk to that first (the views cover about nine times its area, seconds a megapixel;
    the least-squares refit and the intensity refinement recover the precision). One long
    library call: run it in the warm child."""
    scale = min(1.0, float(np.sqrt(VIEW_MAX_PIXELS / gray.size)))
    if scale < 1.0:
        gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    extractor, _ = _extractor(detector, max_features)
    views = cv2.AffineFeature_create(extractor, maxTilt=VIEW_MAX_TILT, minTilt=0, tiltStep=float(np.sqrt(2)),
                                     rotateStepBase=72.0)
    try:
        keypoints, descriptors = views.detectAndCompute(gray, None)
    except cv2.error:  # a view too thin to tilt (an image a few pixels wide)
        return np.zeros((0, 2)), None
    if descriptors is None or not keypoints:
        return np.zeros((0, 2)), None
    order = np.argsort([-kp.response for kp in keypoints], kind="stable")[: VIEW_FEATURES * max_features]
    points = np.float64([keypoints[i].pt for i in order])
    # Pixel centres: pixel i of the shrunk image spans (i + 0.5) / scale - 0.5 of the original.
    return (points + 0.5) / scale - 0.5, descriptors[order]


@dataclasses.dataclass
class _Fit:
    """Matches and the robust fit on them (:func:`_match_and_fit`)."""

    src: np.ndarray  #: (n, 2) moving points of the ratio-test matches
    dst: np.ndarray  #: (n, 2) their fixed points
    matrix: np.ndarray  #: (3, 3) moving -> fixed
    inliers: np.ndarray  #: (n,) bool; none where the fit is missing or implausible
    agreeing: int  #: matches within the threshold of the fit, plausible or not

    @property
    def support(self) -> int:
        """Inliers of the fit (0: no fit)."""
        return int(self.inliers.sum())


def _match_and_fit(points_moving, points_fixed, pairs, offset: float, model: str, estimator: str, threshold: float,
                   fixed_shape, ctx: RunContext, at: float) -> _Fit:
    """The matches ``pairs`` (moving index, fixed index) of the keypoints (positions less
    ``offset``) and the robust ``model`` fit on them, reported as progress ``at``."""
    src = points_moving[[m for m, _ in pairs]].reshape(-1, 2) - offset
    dst = points_fixed[[f for _, f in pairs]].reshape(-1, 2) - offset
    # SIFT gives one keypoint per dominant orientation: the same pair can match twice.
    _, first = np.unique(np.round(np.hstack([src, dst]), 3), axis=0, return_index=True)
    first.sort()
    src, dst = src[first], dst[first]
    if len(src) < MIN_MATCHES[model]:
        return _Fit(src, dst, np.eye(3), np.zeros(len(src), bool), 0)
    ctx.progress(at, f"Fitting {_article(model)} {model} to {len(src)} matches ({estimator})")
    matrix, inliers = estimate(src, dst, model, estimator, threshold)
    agreeing = int(inliers.sum())
    if agreeing < SAMPLE_SIZE[model] + 1 or not _plausible(matrix, fixed_shape):
        inliers = np.zeros(len(src), bool)
    return _Fit(src, dst, matrix, inliers, agreeing)


def _ratio_matches(desc_query, desc_train, norm: int, ratio: float) -> list[tuple[int, int]]:
    """(query index, train index) pairs passing Lowe's ratio test."""
    if desc_query is None or desc_train is None or len(desc_query) == 0 or len(desc_train) == 0:
        return []
    matcher = cv2.BFMatcher(norm)
    if len(desc_train) < 2:
        return [(m.queryIdx, m.trainIdx) for m in matcher.match(desc_query, desc_train)]
    pairs = []
    for candidates in matcher.knnMatch(desc_query, desc_train, k=2):
        if len(candidates) == 2 and candidates[0].distance < ratio * candidates[1].distance:
            pairs.append((candidates[0].queryIdx, candidates[0].trainIdx))
    return pairs


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _advice(detector: str) -> str:
    others = " or ".join(f"'{name}'" for name in ("sift", "akaze", "orb") if name != detector and name in DETECTORS)
    return (
        f"Try detector {others}, more features, a looser ratio or threshold, "
        "or intensity-based registration for images with little texture or different modalities."
    )


# ------------------------------------------------------------------ model fitting


def estimate(src: np.ndarray, dst: np.ndarray, model: str, estimator: str, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Robustly fit ``model`` mapping ``src`` onto ``dst`` points.

    Parameters
    ----------
    src, dst : ndarray
        (N, 2) matched ``(x, y)`` points: moving and fixed.
    model : str
        ``translation``, ``rigid``, ``similarity``, ``affine`` or ``homography``.
    estimator : str
        ``ransac`` or ``usac_magsac``.
    threshold : float
        Inlier distance in pixels (in ``dst`` space).

    Returns
    -------
    matrix : ndarray
        (3, 3) float64, identity-filled when no model could be found.
    inliers : ndarray
        (N,) bool.
    """
    src = np.asarray(src, np.float64).reshape(-1, 2)
    dst = np.asarray(dst, np.float64).reshape(-1, 2)
    n = len(src)
    if n < SAMPLE_SIZE[model]:
        return np.eye(3), np.zeros(n, bool)
    method = cv2.USAC_MAGSAC if estimator == "usac_magsac" else cv2.RANSAC
    s32, d32 = src.astype(np.float32), dst.astype(np.float32)
    if model == "translation":
        inliers = _shift_ransac(src, dst, threshold)
    elif model == "homography":
        _, mask = cv2.findHomography(s32, d32, method, threshold, maxIters=5000, confidence=0.999)
        inliers = _mask(mask, n)
    elif model == "affine" or estimator == "usac_magsac":
        _, mask = cv2.estimateAffine2D(s32, d32, method=method, ransacReprojThreshold=threshold,
                                       maxIters=5000, confidence=0.999)
        inliers = _mask(mask, n)
    else:
        _, mask = cv2.estimateAffinePartial2D(s32, d32, method=cv2.RANSAC, ransacReprojThreshold=threshold,
                                              maxIters=5000, confidence=0.999)
        inliers = _mask(mask, n)
    if inliers.sum() < SAMPLE_SIZE[model]:
        return np.eye(3), np.zeros(n, bool)
    # Least-squares refit of the exact model on the inliers, which are then re-selected
    # under it: a few rounds settle (usually after the first).
    matrix = fit(src[inliers], dst[inliers], model)
    for _ in range(5):
        again = _residuals(matrix, src, dst) < threshold
        if again.sum() < SAMPLE_SIZE[model] or np.array_equal(again, inliers):
            break
        inliers = again
        matrix = fit(src[inliers], dst[inliers], model)
    # The inliers reported are those of the final model (a rigid refit of a similarity's
    # inliers, say, may leave few of them within the threshold).
    return matrix, _residuals(matrix, src, dst) < threshold


def fit(src: np.ndarray, dst: np.ndarray, model: str) -> np.ndarray:
    """Least-squares ``model`` (3x3) mapping ``src`` (N, 2) onto ``dst`` (N, 2) points."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    matrix = np.eye(3)
    if model == "translation":
        matrix[:2, 2] = (dst - src).mean(axis=0)
    elif model in ("rigid", "similarity"):
        matrix = umeyama(src, dst, with_scale=model == "similarity")
    elif model == "affine":
        design = np.hstack([src, np.ones((len(src), 1))])
        solution, *_ = np.linalg.lstsq(design, dst, rcond=None)
        matrix[:2] = solution.T
    elif model == "homography":
        h, _ = cv2.findHomography(src, dst, 0)
        if h is None:
            return np.eye(3)
        matrix = h / h[2, 2]
    else:
        raise ValueError(f"unknown model {model!r}")
    return matrix


def umeyama(src: np.ndarray, dst: np.ndarray, with_scale: bool = True) -> np.ndarray:
    """Least-squares rotation (+ uniform scale) and shift mapping ``src`` onto ``dst`` (Umeyama 1991)."""
    mu_src, mu_dst = src.mean(axis=0), dst.mean(axis=0)
    a, b = src - mu_src, dst - mu_dst
    cov = b.T @ a / len(src)
    u, sigma, vt = np.linalg.svd(cov)
    d = np.diag([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rotation = u @ d @ vt
    variance = (a**2).sum() / len(src)
    scale = float(np.trace(np.diag(sigma) @ d) / variance) if with_scale and variance > 0 else 1.0
    matrix = np.eye(3)
    matrix[:2, :2] = scale * rotation
    matrix[:2, 2] = mu_dst - scale * rotation @ mu_src
    return matrix


def _shift_ransac(src: np.ndarray, dst: np.ndarray, threshold: float, max_candidates: int = 2000) -> np.ndarray:
    """Inliers of the shift most matches agree on (each match proposes its own shift)."""
    shifts = dst - src
    rng = np.random.default_rng(0)
    candidates = shifts if len(shifts) <= max_candidates else shifts[rng.choice(len(shifts), max_candidates, replace=False)]
    best, best_count = None, -1
    for start in range(0, len(candidates), 256):
        block = candidates[start:start + 256]
        close = np.linalg.norm(shifts[None, :, :] - block[:, None, :], axis=2) < threshold
        counts = close.sum(axis=1)
        i = int(np.argmax(counts))
        if counts[i] > best_count:
            best, best_count = close[i], int(counts[i])
    # Centre on the inliers' median shift and select once more.
    centre = np.median(shifts[best], axis=0)
    return np.linalg.norm(shifts - centre, axis=1) < threshold


def _mask(mask, n: int) -> np.ndarray:
    if mask is None:
        return np.zeros(n, bool)
    return np.asarray(mask).reshape(-1).astype(bool)


def _residuals(matrix: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    homog = np.hstack([src, np.ones((len(src), 1))]) @ matrix.T
    with np.errstate(divide="ignore", invalid="ignore"):
        mapped = homog[:, :2] / homog[:, 2:3]
    distance = np.linalg.norm(mapped - dst, axis=1)
    return np.where(np.isfinite(distance), distance, np.inf)


def _plausible(matrix: np.ndarray, fixed_shape) -> bool:
    """Rejects degenerate fits: singular, wildly scaled or folding the image."""
    if not np.all(np.isfinite(matrix)):
        return False
    det = float(np.linalg.det(matrix[:2, :2]))
    if not 1e-4 < abs(det) < 1e4:
        return False
    rows, cols = fixed_shape
    corners = np.float64([[0, 0, 1], [cols, 0, 1], [cols, rows, 1], [0, rows, 1]])
    w = np.linalg.solve(matrix, corners.T)[2]  # the fixed corners must come from in front of the "camera"
    return bool(np.all(w > 0) or np.all(w < 0))


def _stored_points(src: np.ndarray, dst: np.ndarray, inliers: np.ndarray) -> dict:
    """Inlier/outlier point lists for drawing (at most MAX_STORED_POINTS each, rounded to 0.01 px)."""

    def pick(selection: np.ndarray) -> np.ndarray:
        index = np.flatnonzero(selection)
        if len(index) > MAX_STORED_POINTS:
            index = index[np.linspace(0, len(index) - 1, MAX_STORED_POINTS).astype(int)]
        return index

    keep_in, keep_out = pick(inliers), pick(~inliers)
    return {
        "inliers_fixed": np.round(dst[keep_in], 2).tolist(),
        "inliers_moving": np.round(src[keep_in], 2).tolist(),
        "outliers_fixed": np.round(dst[keep_out], 2).tolist(),
        "outliers_moving": np.round(src[keep_out], 2).tolist(),
    }


# ------------------------------------------------------------------ intensity refinement


def refine_by_intensity(gray_fixed: np.ndarray, gray_moving: np.ndarray, matrix: np.ndarray, model: str,
                        ctx: RunContext, start: float = 0.0, stop: float = 1.0,
                        on_step: Callable[[np.ndarray, float, int], None] | None = None) -> tuple[np.ndarray, dict]:
    """Polish a moving -> fixed ``matrix`` by ECC on a pyramid; keep it only if the overlap matches better.

    Parameters
    ----------
    gray_fixed, gray_moving : ndarray
        The images as 8-bit gray (their sizes may differ).
    matrix : ndarray
        (3, 3) moving -> fixed estimate of ``model``, within a few pixels of the truth.
    model : str
        ``translation``, ``rigid``, ``similarity``, ``affine`` or ``homography``: the refined
        transform stays of this kind.
    ctx : RunContext
        Checked for Cancel between ECC calls (each under about 0.3 s of CPU).
    start, stop : float
        The span of ``ctx``'s progress this step reports in.
    on_step : callable, optional
        Called after each ECC call as ``on_step(matrix, correlation, iterations)``: the
        moving -> fixed matrix so far (full resolution), ECC's correlation coefficient and
        the iterations that call made.

    Returns
    -------
    matrix : ndarray
        The refined (3, 3) matrix, or the given one when ECC failed or did not raise the
        normalised cross-correlation over the overlap.
    scores : dict
        ``overlap_correlation_keypoints`` (the given matrix) and ``overlap_correlation``
        (the returned one; both on the finest level, over the pixels both overlaps share),
        left out when the images overlap by under :data:`ECC_MIN_OVERLAP` pixels there; and
        ``intensity_refined`` (1 or 0).
    """
    finest = 0
    while gray_fixed.size / 4**finest > ECC_MAX_PIXELS or gray_moving.size / 4**finest > ECC_MAX_PIXELS:
        finest += 1
    levels = [finest + 1, finest] if min(*gray_fixed.shape, *gray_moving.shape) / 2 ** (finest + 1) >= 64 else [finest]
    fixed_pyramid, moving_pyramid = _pyramid(gray_fixed, levels[0]), _pyramid(gray_moving, levels[0])
    fixed_finest, moving_finest = fixed_pyramid[finest], moving_pyramid[finest]
    # ECC's warp maps template (fixed) coordinates to input (moving) ones: the inverse.
    warp = np.linalg.inv(matrix)
    before_mask = _overlap_mask(_at_level(warp, finest), fixed_finest.shape, moving_finest.shape)
    if before_mask.sum() < ECC_MIN_OVERLAP:
        return matrix, {"intensity_refined": 0}
    refined = None
    for number, level in enumerate(levels):
        span = (stop - start) / len(levels)
        # A level where ECC diverges is skipped: the next starts again from the last good warp.
        found = _ecc_level(fixed_pyramid[level], moving_pyramid[level], warp if refined is None else refined,
                           level, ECC_MOTION[model], ctx, start + number * span, start + (number + 1) * span,
                           f"level 1/{2 ** level}", on_step)
        refined = refined if found is None else found
    before = _correlation(fixed_finest, moving_finest, _at_level(warp, finest), before_mask)
    after = None
    if refined is not None:
        if model != "homography":
            # ECC has no similarity motion (the affine is refined instead) and its warps are
            # float32: the nearest transform of exactly the model, in float64.
            refined = np.linalg.inv(fit(*_grid_pairs(np.linalg.inv(refined), gray_moving.shape), model))
        shared = before_mask & _overlap_mask(_at_level(refined, finest), fixed_finest.shape, moving_finest.shape)
        if shared.sum() >= ECC_MIN_OVERLAP:
            before = _correlation(fixed_finest, moving_finest, _at_level(warp, finest), shared)
            after = _correlation(fixed_finest, moving_finest, _at_level(refined, finest), shared)
    kept = after is not None and after > before
    scores = {"overlap_correlation_keypoints": before, "overlap_correlation": after if kept else before,
              "intensity_refined": int(kept)}
    return (_normalised(np.linalg.inv(refined)) if kept else matrix), scores


def _pyramid(gray: np.ndarray, depth: int) -> list[np.ndarray]:
    """Float32 Gaussian pyramid; level ``k``'s pixel ``j`` sits at pixel ``2**k * j`` of level 0."""
    levels = [gray.astype(np.float32)]
    for _ in range(depth):
        levels.append(cv2.pyrDown(levels[-1]))
    return levels


def _at_level(warp: np.ndarray, level: int) -> np.ndarray:
    """A full-resolution fixed -> moving warp in the pixel coordinates of pyramid ``level``."""
    scale = np.diag([0.5**level, 0.5**level, 1.0])
    return scale @ warp @ np.linalg.inv(scale)


def _ecc_level(fixed: np.ndarray, moving: np.ndarray, warp: np.ndarray, level: int, motion: int,
               ctx: RunContext, start: float, stop: float, label: str,
               on_step: Callable[[np.ndarray, float, int], None] | None) -> np.ndarray | None:
    """ECC on one pyramid level, in calls that Cancel can fall between; None when no call succeeds.

    ``warp`` and the result are full-resolution fixed -> moving warps; ``on_step`` is as
    for :func:`refine_by_intensity`.
    """
    scale = np.diag([0.5**level, 0.5**level, 1.0])
    current = _at_level(warp, level)
    per_call = max(1, min(ECC_CALL_MAX_ITERATIONS, ECC_CALL_PIXEL_ITERATIONS // fixed.size))
    rows, cols = fixed.shape
    # ECC smooths both images, each padded by reflection at its own border: within a few
    # pixels of either image's edge the two disagree, which pulls the warp off by tenths of
    # a pixel (0.17 px on a clean perspective pair). Only moving pixels well inside both
    # images count.
    inside_fixed = np.zeros(fixed.shape, np.uint8)
    inside_fixed[ECC_BORDER_PX:-ECC_BORDER_PX, ECC_BORDER_PX:-ECC_BORDER_PX] = 1
    valid = cv2.warpPerspective(inside_fixed, current, (moving.shape[1], moving.shape[0]), flags=cv2.INTER_NEAREST)
    valid[:ECC_BORDER_PX] = valid[-ECC_BORDER_PX:] = 0
    valid[:, :ECC_BORDER_PX] = valid[:, -ECC_BORDER_PX:] = 0
    if np.count_nonzero(valid) < ECC_MIN_OVERLAP:
        return None
    corners = np.float64([[[0, 0], [cols, 0], [cols, rows], [0, rows]]])
    warp_rows = 3 if motion == cv2.MOTION_HOMOGRAPHY else 2
    # Where the images disagree (strong foreshortening) ECC can oscillate instead of
    # settling: the warp of the best correlation any call ended at is kept, not the last.
    best, best_correlation = None, -np.inf
    done = 0
    while done < ECC_MAX_ITERATIONS:
        ctx.progress(start + (stop - start) * done / ECC_MAX_ITERATIONS, f"Refining on the pixels (ECC), {label}")
        initial = np.float32(current[:warp_rows])
        criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, per_call, 1e-7)
        try:
            correlation, found = cv2.findTransformECC(fixed, moving, initial, motion, criteria, valid, 5)
        except cv2.error:  # diverged: the images disagree (or barely overlap) from here on
            break
        following = np.eye(3)
        following[:warp_rows] = found
        if not np.all(np.isfinite(following)):
            break
        moved = np.abs(cv2.perspectiveTransform(corners, following) - cv2.perspectiveTransform(corners, current)).max()
        current = following
        done += per_call
        if correlation > best_correlation:
            best, best_correlation = current, correlation
        if on_step is not None:
            on_step(np.linalg.inv(np.linalg.inv(scale) @ current @ scale), float(correlation), per_call)
        if moved < ECC_SETTLED_PX:
            break
    return None if best is None else np.linalg.inv(scale) @ best @ scale


def _overlap_mask(warp: np.ndarray, fixed_shape, moving_shape) -> np.ndarray:
    """Fixed pixels at least :data:`ECC_BORDER_PX` inside the fixed image that the fixed -> moving
    ``warp`` sends as far inside the moving image (the band along the edges, where smoothing
    pads each image differently, is left out)."""
    band = ECC_BORDER_PX
    inside = np.zeros(moving_shape, np.uint8)
    inside[band:-band, band:-band] = 1
    mapped = cv2.warpPerspective(inside, warp, (fixed_shape[1], fixed_shape[0]),
                                 flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderValue=0)
    mapped[:band] = mapped[-band:] = 0
    mapped[:, :band] = mapped[:, -band:] = 0
    return mapped.astype(bool)


def _correlation(fixed: np.ndarray, moving: np.ndarray, warp: np.ndarray, mask: np.ndarray) -> float:
    """Normalised cross-correlation of ``fixed`` and ``moving`` warped by ``warp`` over ``mask``.

    Both are smoothed first, as ECC smooths them: on noisy images the bilinear resampling
    averages the noise away by different amounts at different sub-pixel shifts, which would
    otherwise favour a half-pixel misalignment.
    """
    fixed = cv2.GaussianBlur(fixed, (5, 5), 0)
    warped = cv2.warpPerspective(cv2.GaussianBlur(moving, (5, 5), 0), warp, (fixed.shape[1], fixed.shape[0]),
                                 flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    a = fixed[mask].astype(np.float64)
    b = warped[mask].astype(np.float64)
    a -= a.mean()
    b -= b.mean()
    norm = np.sqrt((a @ a) * (b @ b))
    return float(a @ b / norm) if norm > 0 else 0.0


def _grid_pairs(matrix: np.ndarray, moving_shape, count: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """A ``count`` x ``count`` grid over the moving image and where ``matrix`` sends it."""
    rows, cols = moving_shape[:2]
    xs, ys = np.meshgrid(np.linspace(0, cols - 1, count), np.linspace(0, rows - 1, count))
    src = np.column_stack([xs.ravel(), ys.ravel()])
    return src, cv2.perspectiveTransform(src[None], matrix)[0]


def _normalised(matrix: np.ndarray) -> np.ndarray:
    return matrix / matrix[2, 2]


class _PartialPreviews:
    """Offers the moving image warped by the refinement so far, with ECC's correlation as
    the ``metric`` score, as partial results: at most every :data:`PREVIEW_INTERVAL`
    seconds and never more than about a fifth of the run (warping a large image takes a
    while)."""

    def __init__(self, ctx: RunContext, moving_image: np.ndarray, fixed_shape, moving_shape) -> None:
        self.ctx, self.moving_image = ctx, np.asarray(moving_image)
        self.fixed_shape, self.moving_shape = fixed_shape, moving_shape
        self.iterations = 0
        self.next_preview = 0.0

    def __call__(self, matrix: np.ndarray, correlation: float, iterations: int) -> None:
        self.iterations += iterations
        now = time.perf_counter()
        if now < self.next_preview:
            return
        # Any 3x3 warps as a homography; mid-refinement, a similarity may be off the model.
        warped = Transform("homography", _normalised(matrix), self.fixed_shape, self.moving_shape).apply(
            self.moving_image, interpolation="linear")
        self.next_preview = time.perf_counter() + max(PREVIEW_INTERVAL, 4.0 * (time.perf_counter() - now))
        self.ctx.partial(Result({"image": warped}, iterations=self.iterations,
                                scores={"metric": correlation, "iteration": float(self.iterations)}))


# ------------------------------------------------------------------ drawing


def match_overlay(fixed: np.ndarray, moving: np.ndarray, transform, *, max_lines: int = 300,
                  show_outliers: bool = True) -> np.ndarray:
    """The fixed (left) and moving (right) images side by side with their matches drawn.

    Parameters
    ----------
    fixed, moving : ndarray
        The two images given to :func:`register_features` (any dtype, gray or colour).
    transform : Transform or Result
        The registration's transform (or its whole :class:`Result`); its parameters hold the
        point pairs.
    max_lines : int
        Most lines drawn per kind (evenly chosen), so dense matches stay readable.
    show_outliers : bool
        Also draw the rejected matches (red).

    Returns
    -------
    ndarray
        uint8 RGB image: inlier matches green, outliers red.
    """
    if isinstance(transform, Result):
        transform = transform.outputs["transform"]
    params = getattr(transform, "parameters", {}) or {}
    left = to_uint8_rgb(fixed)
    right = to_uint8_rgb(moving)
    canvas = None
    groups = [("inliers", (0, 220, 0))]
    if show_outliers:
        groups.append(("outliers", (235, 30, 30)))
    for name, colour in groups:
        pts_fixed = np.asarray(params.get(f"{name}_fixed", []), np.float64).reshape(-1, 2)
        pts_moving = np.asarray(params.get(f"{name}_moving", []), np.float64).reshape(-1, 2)
        if len(pts_fixed) > max_lines:
            index = np.linspace(0, len(pts_fixed) - 1, max_lines).astype(int)
            pts_fixed, pts_moving = pts_fixed[index], pts_moving[index]
        kp_fixed = [cv2.KeyPoint(float(x), float(y), 3) for x, y in pts_fixed]
        kp_moving = [cv2.KeyPoint(float(x), float(y), 3) for x, y in pts_moving]
        matches = [cv2.DMatch(i, i, 0.0) for i in range(len(kp_fixed))]
        flags = cv2.DrawMatchesFlags_NOT_DRAW_SINGLE_POINTS
        if canvas is not None:
            flags |= cv2.DrawMatchesFlags_DRAW_OVER_OUTIMG
        else:
            canvas = np.zeros((max(left.shape[0], right.shape[0]), left.shape[1] + right.shape[1], 3), np.uint8)
        canvas = cv2.drawMatches(left, kp_fixed, right, kp_moving, matches, canvas,
                                 matchColor=colour, singlePointColor=colour, flags=flags)
    return canvas
