"""Feature-based and landmark registration on real photos with known transforms.

Every case warps a scikit-image photo by a known fixed -> moving transform, registers the
moving image back and measures the point error: the mean distance, over a grid of fixed
pixels, between where the found and the true moving -> fixed transforms send the same
moving points.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import cv2
import numpy as np
import pytest
from skimage import data

from maskwork.operators import Cancelled, InputError, RunContext
from maskwork.operators import registry
from maskwork.operators.registration.features import DETECTORS, match_overlay, register_features
from maskwork.operators.registration.landmarks import ThinPlateSpline, pair_landmarks, register_landmarks


def point_error(found: np.ndarray, truth: np.ndarray, fixed_shape, step: int = 4) -> float:
    """Mean distance (px) between found and true moving -> fixed maps over the fixed grid."""
    rows, cols = fixed_shape[:2]
    ys, xs = np.mgrid[0:rows:step, 0:cols:step]
    fixed = np.column_stack([xs.ravel(), ys.ravel()]).astype(np.float64)
    moving = cv2.perspectiveTransform(fixed[None], np.linalg.inv(truth))[0]
    mapped = cv2.perspectiveTransform(moving[None], np.asarray(found, np.float64))[0]
    return float(np.linalg.norm(mapped - fixed, axis=1).mean())


def fixed_to_moving_similarity(angle: float, scale: float, centre, shift) -> np.ndarray:
    """3x3 of cv2.getRotationMatrix2D plus a shift: warps the FIXED image into the moving one."""
    matrix = np.eye(3)
    matrix[:2] = cv2.getRotationMatrix2D(tuple(float(c) for c in centre), angle, scale)
    matrix[:2, 2] += shift
    return matrix


def warp_to_moving(fixed: np.ndarray, fixed_to_moving: np.ndarray, moving_size) -> tuple[np.ndarray, np.ndarray]:
    """(moving image, true moving -> fixed matrix) for a 3x3 fixed -> moving transform."""
    cols, rows = moving_size
    if np.allclose(fixed_to_moving[2], [0, 0, 1]):
        moving = cv2.warpAffine(fixed, fixed_to_moving[:2], (cols, rows), flags=cv2.INTER_LINEAR)
    else:
        moving = cv2.warpPerspective(fixed, fixed_to_moving, (cols, rows), flags=cv2.INTER_LINEAR)
    return moving, np.linalg.inv(fixed_to_moving)


@pytest.fixture(scope="module")
def astronaut():
    return data.astronaut()


@pytest.fixture(scope="module")
def similarity_case(astronaut):
    """Astronaut rotated 10 degrees, scaled 1.1 and shifted, in a 470x500 moving frame."""
    forward = fixed_to_moving_similarity(10, 1.1, (256, 256), (-18.5, 7.25))
    moving, truth = warp_to_moving(astronaut, forward, (500, 470))
    return astronaut, moving, truth


# ------------------------------------------------------------------ feature-based


@pytest.mark.parametrize("detector", DETECTORS)
def test_every_detector_recovers_a_similarity(similarity_case, detector):
    fixed, moving, truth = similarity_case
    result = register_features(fixed, moving, detector=detector, model="similarity")
    transform = result["transform"]
    error = point_error(transform.matrix, truth, fixed.shape)
    assert error < 2.0, f"{detector}: {error:.3f} px"
    assert transform.kind == "similarity"
    assert transform.parameters["scale"] == pytest.approx(1 / 1.1, abs=0.01)
    assert transform.parameters["angle_degrees"] == pytest.approx(10, abs=0.5)
    assert result.scores["n_inliers"] <= result.scores["n_matches"]
    assert result.scores["mean_residual"] < 3.0
    # The moving image (another size) lands on the fixed grid with its own dtype and channels.
    assert moving.shape[:2] != fixed.shape[:2]
    assert result["image"].shape == fixed.shape and result["image"].dtype == moving.dtype
    if detector == "sift":
        assert error < 0.5


def test_large_images_find_their_keypoints_in_the_warm_child(similarity_case, monkeypatch, child_calls):
    """Above DETECT_IN_CHILD_PIXELS both images' keypoints are found in call_warm's child
    (SIFT's gigabytes and the GIL-holding return of its heap stay out of the window's
    process): the same transform, to the last bit, as found in this process."""
    from maskwork.operators.registration import features as module

    fixed, moving, _ = similarity_case
    here = register_features(fixed, moving, detector="sift", model="similarity")
    monkeypatch.setattr(module, "DETECT_IN_CHILD_PIXELS", 1000)
    children = child_calls(module)
    there = register_features(fixed, moving, detector="sift", model="similarity")
    assert children == [module.detect_keypoints, module.detect_keypoints]
    np.testing.assert_array_equal(there["transform"].matrix, here["transform"].matrix)
    assert there.scores == here.scores


def test_sift_similarity_with_magsac_and_the_warped_image_matches_the_fixed(similarity_case):
    fixed, moving, truth = similarity_case
    result = register_features(fixed, moving, detector="sift", model="similarity", estimator="usac_magsac")
    assert point_error(result["transform"].matrix, truth, fixed.shape) < 0.5
    warped = result["image"].astype(np.float64)
    inside = result["transform"].apply(np.ones(moving.shape[:2], np.uint8), interpolation="nearest") > 0
    inside = cv2.erode(inside.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
    diff = np.abs(warped - fixed)[inside]
    assert diff.mean() < 6.0  # two bilinear resamplings of a sharp photo


def test_sift_recovers_a_rigid_transform_in_gray():
    fixed = data.camera()
    forward = fixed_to_moving_similarity(-7, 1.0, (200, 300), (12.3, -9.6))
    moving, truth = warp_to_moving(fixed, forward, (512, 512))
    result = register_features(fixed, moving, detector="sift", model="rigid")
    assert result["transform"].parameters["scale"] == pytest.approx(1.0, abs=1e-9)
    assert point_error(result["transform"].matrix, truth, fixed.shape) < 0.5
    assert result["image"].ndim == 2


@pytest.mark.parametrize("estimator", ["ransac", "usac_magsac"])
def test_sift_recovers_an_affine_warp(estimator):
    fixed = data.coffee()
    forward = np.array([[1.08, 0.12, -20.0], [-0.05, 0.93, 14.0], [0.0, 0.0, 1.0]])
    moving, truth = warp_to_moving(fixed, forward, (620, 420))
    result = register_features(fixed, moving, detector="sift", model="affine", estimator=estimator)
    assert point_error(result["transform"].matrix, truth, fixed.shape) < 0.5


@pytest.mark.parametrize("estimator", ["ransac", "usac_magsac"])
def test_sift_recovers_a_homography(estimator):
    fixed = data.camera()
    forward = np.array([[0.95, 0.06, 18.0], [-0.04, 1.02, -6.0], [2.5e-4, -1.5e-4, 1.0]])
    moving, truth = warp_to_moving(fixed, forward, (512, 512))
    result = register_features(fixed, moving, detector="sift", model="homography", estimator=estimator)
    assert result["transform"].kind == "homography"
    assert point_error(result["transform"].matrix, truth, fixed.shape) < 1.0


def test_translation_of_a_16_bit_image():
    fixed = data.camera().astype(np.uint16) * 257
    forward = np.array([[1.0, 0.0, 7.5], [0.0, 1.0, -4.25], [0.0, 0.0, 1.0]])
    moving, truth = warp_to_moving(fixed, forward, (512, 512))
    result = register_features(fixed, moving, detector="sift", model="translation")
    assert result["transform"].kind == "translation"
    assert point_error(result["transform"].matrix, truth, fixed.shape) < 0.5
    assert result["image"].dtype == np.uint16
    assert result["image"].max() > 255  # not squashed to 8 bits


def test_16_bit_fixed_against_a_colour_moving_image(similarity_case):
    fixed, moving, truth = similarity_case
    fixed16 = cv2.cvtColor(fixed, cv2.COLOR_RGB2GRAY).astype(np.uint16) * 200
    result = register_features(fixed16, moving, detector="sift", model="similarity")
    assert point_error(result["transform"].matrix, truth, fixed.shape) < 0.5
    assert result["image"].shape == fixed.shape and result["image"].dtype == np.uint8


def test_inlier_points_are_stored_and_drawn(similarity_case):
    fixed, moving, _ = similarity_case
    result = register_features(fixed, moving, detector="orb", model="similarity", max_features=800)
    params = result["transform"].parameters
    assert len(params["inliers_fixed"]) == len(params["inliers_moving"]) == min(result.scores["n_inliers"], 1000)
    assert len(params["outliers_fixed"]) == result.scores["n_matches"] - result.scores["n_inliers"]
    json.dumps(result["transform"].to_json())  # plain lists, not arrays
    overlay = match_overlay(fixed, moving, result)
    assert overlay.shape == (max(fixed.shape[0], moving.shape[0]), fixed.shape[1] + moving.shape[1], 3)
    assert overlay.dtype == np.uint8
    inliers_only = match_overlay(fixed, moving, result, show_outliers=False)

    def count(image, colour):
        return int(np.all(image == colour, axis=-1).sum())

    green, red = (0, 220, 0), (235, 30, 30)
    assert count(overlay, green) > 500 and count(inliers_only, green) > 500
    assert count(inliers_only, red) == 0
    if params["outliers_fixed"]:  # the outlier lines (antialiased) are red where they differ
        changed = np.any(overlay != inliers_only, axis=-1)
        assert changed.sum() > 50
        shift = overlay[changed].astype(float).mean(axis=0) - inliers_only[changed].astype(float).mean(axis=0)
        assert shift[0] > 20 and shift[1] < -20  # towards red, away from green


def test_too_few_matches_is_an_input_error():
    rng = np.random.default_rng(0)
    flat = np.full((120, 160), 90, np.uint8)
    noise = rng.integers(0, 255, (120, 160), dtype=np.uint8)
    with pytest.raises(InputError, match=r"found only 0 match.*Try detector"):
        register_features(flat, noise, detector="sift")
    with pytest.raises(InputError, match=r"(found only \d+ match|no consistent homography)"):
        register_features(noise, rng.integers(0, 255, (120, 160), dtype=np.uint8), model="homography")


def test_cancelled_before_detection():
    ctx = RunContext()
    ctx.cancel()
    with pytest.raises(Cancelled):
        register_features(data.camera(), data.camera(), ctx=ctx)


def test_cancel_stops_the_intensity_refinement_within_a_second():
    fixed = cv2.resize(data.astronaut(), (1400, 1400), interpolation=cv2.INTER_CUBIC)
    forward = np.array([[0.97, 0.05, 20.0], [-0.04, 1.01, -12.0], [4e-5, -3e-5, 1.0]])
    moving, _ = warp_to_moving(fixed, forward, (1400, 1400))
    cancel = threading.Event()
    asked: list[float] = []

    def on_progress(fraction: float, message: str) -> None:
        if "Refining on the pixels" in message and not asked:
            asked.append(time.perf_counter())
            cancel.set()

    with pytest.raises(Cancelled):
        register_features(fixed, moving, model="homography", ctx=RunContext(on_progress=on_progress, cancel_event=cancel))
    assert asked and time.perf_counter() - asked[0] < 1.0


def test_the_refinement_offers_the_warped_image_and_its_correlation_as_partial_results(similarity_case):
    fixed, moving, _ = similarity_case
    partials = []
    result = register_features(fixed, moving, model="homography", ctx=RunContext(on_partial=partials.append))
    assert partials
    for partial in partials:
        assert partial["image"].shape == fixed.shape and partial["image"].dtype == moving.dtype
        assert 0.5 < partial.scores["metric"] <= 1.0 and partial.iterations >= 1
    iterations = [partial.iterations for partial in partials]
    assert iterations == sorted(iterations)
    assert registry.get("register_features").panel_views[0].score == "metric"
    assert result.scores["overlap_correlation"] > 0.9


def _overlap_error(found: np.ndarray, forward: np.ndarray, shape) -> float:
    """Mean round-trip distance (px) over fixed grid points whose true moving point is in the image."""
    rows, cols = shape[:2]
    ys, xs = np.mgrid[0:rows:8, 0:cols:8]
    fixed = np.column_stack([xs.ravel(), ys.ravel()]).astype(np.float64)
    moving = cv2.perspectiveTransform(fixed[None], forward)[0]
    inside = np.all((moving >= 0) & (moving <= (cols - 1, rows - 1)), axis=1)
    back = cv2.perspectiveTransform(moving[inside][None], found)[0]
    return float(np.linalg.norm(back - fixed[inside], axis=1).mean())


def _plain_sift_magsac(fixed: np.ndarray, moving: np.ndarray) -> np.ndarray:
    """The plain OpenCV pipeline: SIFT, Lowe's 0.75 ratio test, findHomography with USAC_MAGSAC."""
    sift = cv2.SIFT_create()
    gray = [cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image for image in (fixed, moving)]
    kp_fixed, desc_fixed = sift.detectAndCompute(gray[0], None)
    kp_moving, desc_moving = sift.detectAndCompute(gray[1], None)
    good = [m for m, n in cv2.BFMatcher().knnMatch(desc_moving, desc_fixed, k=2) if m.distance < 0.75 * n.distance]
    src = np.float32([kp_moving[m.queryIdx].pt for m in good])
    dst = np.float32([kp_fixed[m.trainIdx].pt for m in good])
    homography, _ = cv2.findHomography(src, dst, cv2.USAC_MAGSAC, 3.0)
    return homography


def _rotation_about_centre(angle: float, scale: float, shape) -> np.ndarray:
    matrix = np.eye(3)
    matrix[:2] = cv2.getRotationMatrix2D((shape[1] / 2, shape[0] / 2), angle, scale)
    return matrix


@pytest.mark.parametrize(
    "photo, forward, degrade",
    [
        # perspective: corners pulled in by up to 10 %
        ("astronaut", np.array([[0.93, 0.06, 14.0], [-0.05, 0.96, 21.0], [1.5e-4, 1.1e-4, 1.0]]), None),
        # zoomed out to 0.55 and turned 70 degrees (OpenCV's SIFT offset matters most here)
        ("coffee", _rotation_about_centre(70, 0.55, (400, 600)), None),
        # mild perspective, then blurred (sigma 1.8) and noisy (sigma 8)
        ("camera", np.array([[1.02, 0.03, -9.0], [-0.02, 0.99, 6.0], [-6e-5, 8e-5, 1.0]]), "blur+noise"),
    ],
)
def test_defaults_beat_plain_sift_magsac_on_known_homographies(photo, forward, degrade):
    fixed = getattr(data, photo)()
    source = fixed.astype(np.float32)
    if np.sqrt(abs(np.linalg.det(forward[:2, :2]))) < 1:  # blur before shrinking, as optics would
        source = cv2.GaussianBlur(source, (0, 0), 0.5 * np.sqrt(1 / np.linalg.det(forward[:2, :2]) - 1))
    moving = cv2.warpPerspective(source, forward, (fixed.shape[1], fixed.shape[0]), flags=cv2.INTER_CUBIC)
    rng = np.random.default_rng(1)
    if degrade == "blur+noise":
        moving = cv2.GaussianBlur(moving, (0, 0), 1.8) + rng.normal(0, 8, moving.shape)
    moving = np.clip(np.round(moving + rng.normal(0, 1.5, moving.shape)), 0, 255).astype(np.uint8)

    result = register_features(fixed, moving, model="homography")
    ours = _overlap_error(result["transform"].matrix, forward, fixed.shape)
    plain = _overlap_error(_plain_sift_magsac(fixed, moving), forward, fixed.shape)
    assert ours < plain + 0.05, f"maskwork {ours:.3f} px, plain SIFT + MAGSAC {plain:.3f} px"
    assert ours < 0.1  # sub-pixel: the intensity refinement was kept
    assert result.scores["intensity_refined"] == 1
    assert result.scores["overlap_correlation"] > result.scores["overlap_correlation_keypoints"]


def _plane_seen_tilted(shape, tilt_degrees: float, axis_angle: float) -> np.ndarray:
    """Fixed -> moving homography of a plane that a camera (focal length 1.2 times the image's
    larger side) sees turned ``tilt_degrees`` about an axis in the image plane at
    ``axis_angle`` (radians), scaled to fill the frame."""
    rows, cols = shape[:2]
    focal = 1.2 * max(rows, cols)
    camera = np.diag([focal, focal, 1.0])
    rotation, _ = cv2.Rodrigues(np.array([np.cos(axis_angle), np.sin(axis_angle), 0.0]) * np.deg2rad(tilt_degrees))
    to_centre = np.array([[1, 0, -cols / 2], [0, 1, -rows / 2], [0, 0, 1.0]])
    view = camera @ rotation @ np.linalg.inv(camera) @ to_centre
    corners = cv2.perspectiveTransform(np.float64([[[0, 0], [cols, 0], [cols, rows], [0, rows]]]), view)[0]
    low, high = corners.min(axis=0), corners.max(axis=0)
    fit = min(cols / (high[0] - low[0]), rows / (high[1] - low[1]))
    middle = (low + high) / 2
    return np.array([[fit, 0, cols / 2 - fit * middle[0]], [0, fit, rows / 2 - fit * middle[1]], [0, 0, 1.0]]) @ view


@pytest.fixture(scope="module")
def steep_brick_wall():
    """The brick wall seen 50 degrees off its normal: its SIFT descriptors no longer match
    those of the frontal view (no homography is found from them)."""
    fixed = data.brick()
    forward = _plane_seen_tilted(fixed.shape, 50, 0.3)
    moving = cv2.warpPerspective(fixed, forward, (fixed.shape[1], fixed.shape[0]), flags=cv2.INTER_AREA)
    return fixed, moving, forward


def test_a_steep_view_is_matched_across_simulated_tilted_views(steep_brick_wall, child_calls):
    from maskwork.operators.registration import features as module

    fixed, moving, forward = steep_brick_wall
    with pytest.raises(InputError, match="no consistent homography|found only"):
        register_features(fixed, moving, model="homography", view_synthesis=False)
    children = child_calls(module)
    result = register_features(fixed, moving, model="homography")
    assert _overlap_error(result["transform"].matrix, forward, fixed.shape) < 0.5
    assert result.scores["views_simulated"] == 1 and result["transform"].parameters["views_simulated"]
    assert result.scores["n_inliers"] > 50
    # Both images' views are found, and their keypoints matched, in the warm child, where
    # Cancel can stop the long calls.
    assert children == [module.detect_keypoints_in_views, module.detect_keypoints_in_views, module._ratio_matches]


@pytest.mark.parametrize("detector, model", [("orb", "homography"), ("sift", "affine")])
def test_unrelated_pictures_stay_unregistered_with_simulated_views(detector, model):
    """Grass against gravel: the views' many keypoints give a few chance matches a "fit" of
    4 or 5 inliers, which is not taken for an answer."""
    with pytest.raises(InputError, match="in simulated tilted views too"):
        register_features(data.grass(), data.gravel(), detector=detector, model=model)


def test_a_picture_too_thin_for_tilted_views_is_an_input_error():
    strip = np.tile(np.arange(0, 250, 5, dtype=np.uint8), (2, 10))  # 2 x 500 px
    with pytest.raises(InputError):
        register_features(strip, strip, detector="orb", model="homography")


def test_large_pictures_are_shrunk_for_their_views(monkeypatch):
    """Above VIEW_MAX_PIXELS the views are made of a shrunk copy and their keypoints put
    back in the picture's own pixels: the wall at twice its size gives the keypoints of the
    wall itself, doubled."""
    from scipy.spatial import cKDTree

    from maskwork.operators.registration import features as module

    wall = data.brick()
    monkeypatch.setattr(module, "VIEW_MAX_PIXELS", wall.size)
    small, _ = module.detect_keypoints_in_views("sift", 500, wall)
    large, _ = module.detect_keypoints_in_views("sift", 500, cv2.resize(wall, None, fx=2, fy=2, interpolation=cv2.INTER_CUBIC))
    assert len(large) == module.VIEW_FEATURES * 500 and large.max() > 600  # in the large picture's pixels
    distance, _ = cKDTree(2 * small + 0.5).query(large)
    assert np.median(distance) < 0.3  # 0.05 (the views of the large picture itself: 0.97)


def test_well_supported_fits_do_not_simulate_views(similarity_case, child_calls):
    from maskwork.operators.registration import features as module

    fixed, moving, _ = similarity_case
    children = child_calls(module)
    for model in ("similarity", "affine", "homography"):
        assert register_features(fixed, moving, model=model).scores["views_simulated"] == 0
    assert children == []


def test_cancel_stops_the_simulated_views(steep_brick_wall):
    """Cancelled while the warm child finds the views' keypoints (about 2 s for each image at
    three times the size): the call ends within about its drain time (0.5 s)."""
    fixed, moving = (cv2.resize(image, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC) for image in steep_brick_wall[:2])
    cancel = threading.Event()
    asked: list[float] = []

    def cancel_soon() -> None:
        asked.append(time.perf_counter())
        cancel.set()

    timer = threading.Timer(0.3, cancel_soon)

    def on_progress(fraction: float, message: str) -> None:
        if "simulated tilted views" in message and not timer.is_alive() and not asked:
            timer.start()

    with pytest.raises(Cancelled):
        register_features(fixed, moving, model="homography",
                          ctx=RunContext(cancel_event=cancel, on_progress=on_progress))
    timer.join()
    assert asked and time.perf_counter() - asked[0] < 1.2


def test_registered_with_its_parameters():
    spec = registry.get("register_features")
    assert spec.category == "Registration" and spec.outputs == ("image", "transform")
    assert spec.required_inputs == ("image", "image2")
    assert {p.name for p in spec.params} == {
        "detector", "max_features", "ratio", "estimator", "reprojection_threshold", "model",
        "view_synthesis", "intensity_refinement",
    }
    assert spec.param("model").choices == ("translation", "rigid", "similarity", "affine", "homography")
    assert set(spec.param("detector").choices) >= {"orb", "sift"}


def test_command_line_prints_the_transform(tmp_path, similarity_case):
    fixed, moving, truth = similarity_case
    cv2.imwrite(str(tmp_path / "F.png"), fixed[..., ::-1])
    cv2.imwrite(str(tmp_path / "M.png"), moving[..., ::-1])
    done = subprocess.run(
        [sys.executable, "-m", "maskwork", "run", "register_features", "--image", str(tmp_path / "F.png"),
         "--image2", str(tmp_path / "M.png"), "-o", str(tmp_path / "out.png"), "--json"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    transform = summary["transform"]
    assert transform["type"] == "similarity"
    matrix = np.asarray(transform["matrix"])
    assert matrix.shape == (3, 3)
    assert point_error(matrix, truth, fixed.shape) < 0.5
    assert (tmp_path / "out.png").exists() and (tmp_path / "out_transform.json").exists()
    saved = json.loads((tmp_path / "out_transform.json").read_text())
    np.testing.assert_allclose(saved["matrix"], matrix)


# ------------------------------------------------------------------ landmarks


def _landmark_points(fixed_xy, moving_xy) -> list[tuple[float, float, int]]:
    """(row, col, +k) on the fixed image and (row, col, -k) on the moving image."""
    points = [(y, x, k) for k, (x, y) in enumerate(fixed_xy, 1)]
    return points + [(y, x, -k) for k, (x, y) in enumerate(moving_xy, 1)]


MOVING_LANDMARKS = np.array([[60, 70], [420, 90], [440, 430], [80, 400], [250, 240], [170, 330]], np.float64)


@pytest.mark.parametrize(
    "model, moving_to_fixed, pairs",
    [
        ("similarity", fixed_to_moving_similarity(12, 0.9, (100, 200), (5, -8)), 4),
        ("affine", np.array([[1.0, 0.1, -30.0], [-0.08, 0.92, 21.0], [0, 0, 1.0]]), 5),
        ("homography", np.array([[1.02, 0.05, -9.0], [-0.03, 0.97, 11.0], [1.2e-4, -8e-5, 1.0]]), 4),
        ("homography", np.array([[1.02, 0.05, -9.0], [-0.03, 0.97, 11.0], [1.2e-4, -8e-5, 1.0]]), 6),
    ],
)
def test_landmarks_recover_the_transform_exactly(model, moving_to_fixed, pairs):
    image = data.camera()
    moving_xy = MOVING_LANDMARKS[:pairs]
    fixed_xy = cv2.perspectiveTransform(moving_xy[None], moving_to_fixed)[0]
    result = register_landmarks(image, image, _landmark_points(fixed_xy, moving_xy), model=model)
    assert point_error(result["transform"].matrix, moving_to_fixed, image.shape) < 0.01
    assert result.scores["mean_residual"] < 0.01
    assert {f"residual_{k}" for k in range(1, pairs + 1)} <= set(result.scores)
    assert result.scores["n_pairs"] == pairs
    assert result["image"].shape == image.shape


def test_landmark_residuals_point_at_the_bad_pair():
    image = data.camera()
    truth = np.array([[1.0, 0.0, 10.0], [0.0, 1.0, -5.0], [0, 0, 1.0]])
    ys, xs = np.mgrid[60:460:100, 60:460:100]
    moving_xy = np.column_stack([xs.ravel(), ys.ravel()]).astype(np.float64)  # 16 landmarks
    fixed_xy = cv2.perspectiveTransform(moving_xy[None], truth)[0]
    fixed_xy[5] += (12.0, 0.0)  # landmark 6 misplaced
    result = register_landmarks(image, image, _landmark_points(fixed_xy, moving_xy), model="affine")
    residuals = [result.scores[f"residual_{k}"] for k in range(1, 17)]
    assert int(np.argmax(residuals)) == 5
    assert result["transform"].parameters["residuals"] == pytest.approx(residuals)


def test_thin_plate_spline_passes_through_its_landmarks_and_is_smooth():
    fixed = data.camera()
    fixed_xy = np.array([[60, 70], [420, 90], [440, 430], [80, 400], [250, 240], [170, 330], [300, 60]], np.float64)
    moving_xy = fixed_xy + np.array([[3, -2], [-4, 5], [6, 1], [-2, -6], [5, 4], [0, 3], [-3, -1]], np.float64)
    result = register_landmarks(fixed, fixed, _landmark_points(fixed_xy, moving_xy), model="thin_plate_spline")
    transform = result["transform"]
    assert transform.kind == "thin_plate_spline" and transform.deformable
    bmap = transform.backward_map
    assert bmap.shape == (*fixed.shape, 2) and bmap.dtype == np.float32
    # Exact at the landmarks (integer fixed positions are grid pixels).
    at_landmarks = bmap[fixed_xy[:, 1].astype(int), fixed_xy[:, 0].astype(int)]
    np.testing.assert_allclose(at_landmarks, moving_xy, atol=1e-3)
    assert result.scores["mean_residual"] < 1e-6
    # Smooth: second differences of the map stay tiny, no folds (positive Jacobian).
    assert np.abs(np.diff(bmap, n=2, axis=0)).max() < 0.02
    assert np.abs(np.diff(bmap, n=2, axis=1)).max() < 0.02
    jac = np.diff(bmap[:, :, 0], axis=1)[:-1] * np.diff(bmap[:, :, 1], axis=0)[:, :-1]
    assert jac.min() > 0
    # The warped image samples the moving image where the map says.
    warped = result["image"]
    assert warped.shape == fixed.shape and warped.dtype == fixed.dtype


def test_thin_plate_spline_reproduces_an_affine_map():
    affine = np.array([[1.05, 0.1, -7.0], [-0.06, 0.95, 4.0]])
    source = MOVING_LANDMARKS
    tps = ThinPlateSpline(source, source @ affine[:, :2].T + affine[:, 2])
    grid = tps.grid((64, 80))
    ys, xs = np.mgrid[0:64, 0:80]
    expected = np.stack([xs, ys], axis=-1) @ affine[:, :2].T + affine[:, 2]
    assert np.abs(grid - expected).max() < 1e-3


def test_landmark_input_errors():
    image = data.camera()[:100, :100]
    with pytest.raises(InputError, match=r"landmark 1 on the fixed image only"):
        register_landmarks(image, image, [(50, 50, 1)])
    with pytest.raises(InputError, match=r"landmark 2 on the moving image only"):
        register_landmarks(image, image, [(10, 10, 1), (12, 12, -1), (20, 20, -2)])
    with pytest.raises(InputError, match=r"needs at least 2 landmark pairs, got 1"):
        register_landmarks(image, image, [(10, 10, 1), (12, 12, -1)])
    two = [(10, 10, 1), (12, 12, -1), (60, 70, 2), (62, 72, -2)]
    with pytest.raises(InputError, match=r"an affine needs at least 3"):
        register_landmarks(image, image, two, model="affine")
    with pytest.raises(InputError, match=r"homography needs at least 4"):
        register_landmarks(image, image, two + [(30, 80, 3), (31, 82, -3)], model="homography")
    with pytest.raises(InputError, match=r"thin-plate spline needs at least 3"):
        register_landmarks(image, image, two, model="thin_plate_spline")
    line = [(10, 10, 1), (10, 12, -1), (20, 20, 2), (20, 22, -2), (30, 30, 3), (30, 32, -3)]
    with pytest.raises(InputError, match="on one line"):
        register_landmarks(image, image, line, model="affine")
    with pytest.raises(InputError, match="label"):
        register_landmarks(image, image, [(10, 10, 0)])
    # A coordinate that is not a number is the coordinate's fault, not the label's.
    with pytest.raises(InputError, match="row and column must be finite numbers"):
        register_landmarks(image, image, [(float("nan"), 10, 1), (12, 12, -1)])
    with pytest.raises(InputError, match="twice"):
        register_landmarks(image, image, [(10, 10, 1), (11, 11, 1)])
    with pytest.raises(InputError, match="outside"):
        register_landmarks(image, image, [(10, 10, 1), (500, 10, -1)])
    with pytest.raises(InputError):
        register_landmarks(image, image, None)


def test_pair_landmarks_sorts_by_number_and_uses_each_images_size():
    labels, fixed_xy, moving_xy = pair_landmarks(
        [(5, 6, 2), (150, 7, -2), (1, 2, 1), (3, 4, -1)], fixed_shape=(10, 10), moving_shape=(200, 20)
    )
    assert labels == [1, 2]
    np.testing.assert_array_equal(fixed_xy, [[2, 1], [6, 5]])
    np.testing.assert_array_equal(moving_xy, [[4, 3], [7, 150]])
