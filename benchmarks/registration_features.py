"""Feature-based registration on ITK's brain slices with known transforms.

    .venv/bin/python benchmarks/registration_features.py [--data DIR] [--repeats N]

Data: ``../shared/data/itk_brain_registration`` beside the repository (ITK's Examples/Data
brain slices, see its README). The fixed image is ``BrainProtonDensitySliceBorder20.png``
(221 x 257); the moving images and their ground truth:

- ``Shifted13x17y``: translation (13, 17) px, exact (the README verified it with np.roll).
- ``Rotated10``, ``R10X13Y17``, ``R10X13Y17S12``: rotation by 10 degrees (plus shift; plus
  scale 1/1.2). The data says the angle and scale but not the rotation centre, so the
  reference keeps the angle and scale at their exact known values (the sign of the angle
  read off the data) and fits only the remaining 2-D shift with SimpleITK (mean squares,
  same-modality images, linear interpolation, 3-level pyramid): a 2-parameter fit that does
  not use keypoints. The header prints each reference and how far an unconstrained
  SimpleITK similarity fit (started from it, full resolution) lies from it.
- ``T1 vs PD`` (``BrainT1SliceBorder20.png``): multimodal pair, identity.
- ``BSplined10``: B-spline deformed, field not included: no ground truth, only the inlier
  residual is shown.

For each pair, each detector this OpenCV offers (ORB, SIFT; AKAZE only where
``cv2.AKAZE_create`` exists: OpenCV 5 moved it to opencv-contrib) and each meaningful model:
``register_features`` with its defaults except ``detector``/``model``/``estimator`` (RANSAC;
the pair's true model also with USAC/MAGSAC; the intensity refinement on, as by default), the mean point error in px (mean distance over every
fixed pixel between where the found and the true moving -> fixed transforms send the same
moving point) and the median seconds per pair over ``--repeats`` runs. Beside them, in the
same run, the plain OpenCV calls with common default settings:

- ``plain ORB``: ``cv2.ORB_create()`` (500 features), ``BFMatcher(NORM_HAMMING,
  crossCheck=True).match``, ``cv2.estimateAffinePartial2D`` with its defaults (RANSAC, 3 px);
- ``plain SIFT``: ``cv2.SIFT_create()``, ``BFMatcher().knnMatch(k=2)`` with Lowe's 0.75
  ratio, ``cv2.estimateAffinePartial2D`` with its defaults.

Not a pass/fail test. If the data folder is missing it says so and exits with status 0.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from maskwork.operators import InputError, registry  # noqa: E402
from maskwork.operators.registration.features import DETECTORS, register_features  # noqa: E402

FIXED = "BrainProtonDensitySliceBorder20.png"
#: name, file, ground truth kind, fixed -> moving rotation (degrees) and scale or None, models
PAIRS = [
    ("shift 13,17", "BrainProtonDensitySliceShifted13x17y.png", "shift", None,
     ["translation", "rigid", "similarity", "affine", "homography"]),
    ("rotate 10", "BrainProtonDensitySliceRotated10.png", "rotation", (10.0, 1.0),
     ["rigid", "similarity", "affine", "homography"]),
    ("rotate+shift", "BrainProtonDensitySliceR10X13Y17.png", "rotation", (10.0, 1.0),
     ["rigid", "similarity", "affine", "homography"]),
    ("+scale 1/1.2", "BrainProtonDensitySliceR10X13Y17S12.png", "rotation", (-10.0, 1 / 1.2),
     ["similarity", "affine", "homography"]),
    ("T1 vs PD", "BrainT1SliceBorder20.png", "identity", None, ["translation", "rigid", "similarity", "affine"]),
    ("B-spline", "BrainProtonDensitySliceBSplined10.png", "none", None, ["affine", "homography"]),
]
TRUE_MODEL = {"shift 13,17": "translation", "rotate 10": "rigid", "rotate+shift": "rigid",
              "+scale 1/1.2": "similarity", "T1 vs PD": "translation", "B-spline": "affine"}


def read(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise SystemExit(f"cannot read {path}")
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return image


def gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image


def point_error(found: np.ndarray, truth: np.ndarray, fixed_shape) -> float:
    """Mean distance over every fixed pixel between found and true moving -> fixed maps."""
    rows, cols = fixed_shape[:2]
    ys, xs = np.mgrid[0:rows, 0:cols]
    fixed = np.column_stack([xs.ravel(), ys.ravel()]).astype(np.float64)
    moving = cv2.perspectiveTransform(fixed[None], np.linalg.inv(truth))[0]
    mapped = cv2.perspectiveTransform(moving[None], np.asarray(found, np.float64))[0]
    return float(np.linalg.norm(mapped - fixed, axis=1).mean())


def _sitk_matrix(tx) -> np.ndarray:
    """The fixed -> moving affine of a linear SimpleITK transform (spacing 1, origin 0)."""
    p0 = np.array(tx.TransformPoint((0.0, 0.0)))
    ex = np.array(tx.TransformPoint((1.0, 0.0))) - p0
    ey = np.array(tx.TransformPoint((0.0, 1.0))) - p0
    return np.array([[ex[0], ey[0], p0[0]], [ex[1], ey[1], p0[1]], [0.0, 0.0, 1.0]])


def _sitk_register(fixed: np.ndarray, moving: np.ndarray, optimised, moving_initial=None, pyramid: bool = True):
    import SimpleITK as sitk

    f = sitk.GetImageFromArray(gray(fixed).astype(np.float32))
    m = sitk.GetImageFromArray(gray(moving).astype(np.float32))
    method = sitk.ImageRegistrationMethod()
    method.SetMetricAsMeanSquares()
    method.SetInterpolator(sitk.sitkLinear)
    method.SetOptimizerAsRegularStepGradientDescent(2.0 if pyramid else 0.25, 1e-6, 2000, relaxationFactor=0.7)
    method.SetOptimizerScalesFromPhysicalShift()
    method.SetShrinkFactorsPerLevel([4, 2, 1] if pyramid else [1])
    method.SetSmoothingSigmasPerLevel([2.0, 1.0, 0.0] if pyramid else [0.0])
    if moving_initial is not None:
        method.SetMovingInitialTransform(moving_initial)
    method.SetInitialTransform(optimised, inPlace=True)
    method.Execute(f, m)
    return optimised


def reference_transform(fixed: np.ndarray, moving: np.ndarray, angle: float, scale: float) -> tuple[np.ndarray, float]:
    """Moving -> fixed matrix with the known angle/scale and a SimpleITK-fitted shift.

    Returns the matrix and the point error of a free SimpleITK similarity fit against it.
    """
    import SimpleITK as sitk

    a = np.deg2rad(angle)
    linear = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    known = sitk.AffineTransform(2)
    known.SetMatrix(linear.ravel().tolist())
    # fixed p -> p + t -> linear (p + t) -> moving; start with the centres of mass aligned.
    def centre(image):
        g = gray(image).astype(np.float64)
        ys, xs = np.mgrid[0:g.shape[0], 0:g.shape[1]]
        return np.array([(xs * g).sum(), (ys * g).sum()]) / g.sum()

    start = np.linalg.solve(linear, centre(moving)) - centre(fixed)
    shift = sitk.TranslationTransform(2, start.tolist())
    _sitk_register(fixed, moving, shift, moving_initial=known)
    t = np.array(shift.GetOffset())
    fixed_to_moving = np.eye(3)
    fixed_to_moving[:2, :2] = linear
    fixed_to_moving[:2, 2] = linear @ t
    truth = np.linalg.inv(fixed_to_moving)
    # A free similarity fit for comparison, started from the reference.
    c = np.array([fixed.shape[1] / 2.0, fixed.shape[0] / 2.0])
    offset = fixed_to_moving[:2, :2] @ c + fixed_to_moving[:2, 2] - c
    free = sitk.Similarity2DTransform(float(scale), float(np.arctan2(linear[1, 0], linear[0, 0])), offset.tolist(), c.tolist())
    _sitk_register(fixed, moving, free, pyramid=False)  # already close: full resolution only
    free_matrix = np.linalg.inv(_sitk_matrix(free))
    return truth, point_error(free_matrix, truth, fixed.shape)


# ------------------------------------------------------------------ plain OpenCV


def plain_orb(fixed: np.ndarray, moving: np.ndarray) -> np.ndarray | None:
    orb = cv2.ORB_create()
    kf, df = orb.detectAndCompute(gray(fixed), None)
    km, dm = orb.detectAndCompute(gray(moving), None)
    if df is None or dm is None:
        return None
    matches = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True).match(dm, df)
    return _partial_affine(km, kf, [(m.queryIdx, m.trainIdx) for m in matches])


def plain_sift(fixed: np.ndarray, moving: np.ndarray) -> np.ndarray | None:
    sift = cv2.SIFT_create()
    kf, df = sift.detectAndCompute(gray(fixed), None)
    km, dm = sift.detectAndCompute(gray(moving), None)
    if df is None or dm is None:
        return None
    good = [(m.queryIdx, m.trainIdx) for m, n in (p for p in cv2.BFMatcher().knnMatch(dm, df, k=2) if len(p) == 2)
            if m.distance < 0.75 * n.distance]
    return _partial_affine(km, kf, good)


def _partial_affine(kp_moving, kp_fixed, pairs) -> np.ndarray | None:
    if len(pairs) < 2:
        return None
    src = np.float32([kp_moving[q].pt for q, _ in pairs])
    dst = np.float32([kp_fixed[t].pt for _, t in pairs])
    matrix, _ = cv2.estimateAffinePartial2D(src, dst)
    if matrix is None:
        return None
    return np.vstack([matrix, [0.0, 0.0, 1.0]])


# ------------------------------------------------------------------ the run


def timed(func, repeats: int):
    seconds, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = func()
        seconds.append(time.perf_counter() - start)
    return result, statistics.median(seconds)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "itk_brain_registration")
    parser.add_argument("--repeats", type=int, default=3, help="runs per timing (median)")
    args = parser.parse_args(argv)
    if not (args.data / FIXED).exists():
        print(f"no brain registration data at {args.data} (expected {FIXED} there); nothing to do")
        return 0

    fixed = read(args.data / FIXED)
    register_features(fixed, fixed)  # warm-up: first-call costs stay out of the timings
    plain_orb(fixed, fixed)
    print(f"OpenCV {cv2.__version__}, detectors offered: {', '.join(DETECTORS)}"
          + ("" if "akaze" in DETECTORS else " (no AKAZE in this OpenCV build)"))
    defaults = registry.get("register_features").defaults()
    print(f"fixed: {FIXED} {fixed.shape[1]}x{fixed.shape[0]}; defaults: "
          + ", ".join(f"{name} {value}" for name, value in defaults.items() if name not in ("detector", "model")))
    rows = []
    for name, filename, gt_kind, known, models in PAIRS:
        moving = read(args.data / filename)
        if gt_kind == "shift":
            truth = np.array([[1.0, 0.0, -13.0], [0.0, 1.0, -17.0], [0.0, 0.0, 1.0]])
            note = "exact"
        elif gt_kind == "identity":
            truth, note = np.eye(3), "exact"
        elif gt_kind == "rotation":
            truth, free_error = reference_transform(fixed, moving, *known)
            fixed_to_moving = np.linalg.inv(truth)
            note = (f"angle {known[0]:+g} deg, scale {known[1]:.4f} fixed, shift fitted: fixed->moving offset "
                    f"({fixed_to_moving[0, 2]:.3f}, {fixed_to_moving[1, 2]:.3f}); free SimpleITK similarity "
                    f"{free_error:.3f} px from it")
        else:
            truth, note = None, "no ground truth"
        print(f"  {name:<13} {filename}: {note}")

        def add(method, model, estimator, func):
            try:
                out, seconds = timed(func, args.repeats)
            except InputError as exc:
                rows.append((name, method, model, estimator, None, None, None, f"InputError: {str(exc)[:60]}"))
                return
            if out is None:
                rows.append((name, method, model, estimator, None, None, None, "no model"))
                return
            matrix, extra = out
            error = point_error(matrix, truth, fixed.shape) if truth is not None else None
            rows.append((name, method, model, estimator, error, seconds, extra, ""))

        for detector in DETECTORS:
            for model in models:
                estimators = ["ransac", "usac_magsac"] if model == TRUE_MODEL[name] else ["ransac"]
                for estimator in estimators:
                    def run(detector=detector, model=model, estimator=estimator):
                        result = register_features(fixed, moving, detector=detector, model=model, estimator=estimator)
                        s = result.scores
                        return result["transform"].matrix, f"{s['n_inliers']}/{s['n_matches']} res {s['mean_residual']:.2f}"
                    add(f"maskwork {detector}", model, estimator, run)
        for label, plain in (("plain ORB", plain_orb), ("plain SIFT", plain_sift)):
            def run_plain(plain=plain):
                matrix = plain(fixed, moving)
                return None if matrix is None else (matrix, "")
            add(label, "similarity", "ransac", run_plain)

    print()
    header = f"| {'pair':<13} | {'method':<14} | {'model':<11} | {'estimator':<11} | {'error px':>8} | {'s/pair':>7} | inliers/matches, residual px"
    print(header)
    print("|" + "|".join("-" * (len(part)) for part in header.split("|")[1:]))
    for name, method, model, estimator, error, seconds, extra, failure in rows:
        err = f"{error:8.3f}" if error is not None else f"{'-':>8}"
        sec = f"{seconds:7.3f}" if seconds is not None else f"{'-':>7}"
        print(f"| {name:<13} | {method:<14} | {model:<11} | {estimator:<11} | {err} | {sec} | {extra or failure}")

    print()
    print("Medians over the pairs with ground truth, each method at the pair's true model (plain: similarity):")
    summary = {}
    for name, method, model, estimator, error, seconds, extra, failure in rows:
        if error is None or estimator != "ransac":
            continue
        if method.startswith("maskwork") and model != TRUE_MODEL[name]:
            continue
        summary.setdefault(method, []).append((error, seconds))
    for method, values in summary.items():
        errors, seconds = zip(*values)
        print(f"  {method:<14} median error {statistics.median(errors):7.3f} px, max {max(errors):7.3f} px, "
              f"median {statistics.median(seconds):.3f} s/pair ({len(values)} pairs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
