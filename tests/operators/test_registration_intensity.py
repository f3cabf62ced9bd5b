"""Intensity-based registration (SimpleITK): known transforms recovered on real pixels.

Moving images are made from scikit-image's photos (camera, astronaut) and from an MR-like
head slice built here from the Shepp-Logan phantom, by warping them with a known
moving -> fixed matrix; the error is the mean distance, over every fixed pixel, between
where the found and the true transforms send it in the moving image.
"""

from __future__ import annotations

import threading
import time

import cv2
import numpy as np
import pytest
from skimage import color, data

from maskwork.operators import Cancelled, InputError, Result, RunContext, get
from maskwork.operators.registration.intensity import Pyramid, check_plausible, moving_to_fixed, shrink_factors
from maskwork.operators.registration.transform import Transform

pytest.importorskip("SimpleITK")

REGISTER = get("register_intensity")


# ------------------------------------------------------------------ test data


def camera(size: int = 256) -> np.ndarray:
    return cv2.resize(data.camera(), (size, size), interpolation=cv2.INTER_AREA)


def astronaut_gray(size: int = 256) -> np.ndarray:
    gray = (color.rgb2gray(data.astronaut()) * 255).round().astype(np.uint8)
    return cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA)


def mr_slice(size: int = 192, contrast: str = "pd", seed: int = 0) -> np.ndarray:
    """An MR-like head slice (float32): Shepp-Logan tissues, tissue texture, bias field, blur.

    ``contrast`` picks the tissue intensities: ``"pd"`` keeps the phantom's, ``"t2"`` remaps
    them non-monotonically (bright becomes dark and the middle tissues swap order), as two
    MR sequences of the same head differ.
    """
    phantom = cv2.resize(data.shepp_logan_phantom(), (size, size), interpolation=cv2.INTER_NEAREST)
    levels = np.round(phantom, 1)
    if contrast == "t2":
        lut = {0.0: 0.0, 0.1: 0.9, 0.2: 0.45, 0.3: 0.15, 0.4: 0.7, 1.0: 0.3}
        levels = np.vectorize(lambda v: lut.get(float(v), 0.5))(levels)
    rng = np.random.default_rng(seed)
    texture = cv2.GaussianBlur(rng.normal(0, 1, (size, size)).astype(np.float32), (0, 0), 2.0)
    ys, xs = np.mgrid[0:size, 0:size] / size
    bias = 1.0 + 0.15 * (xs - 0.5) - 0.1 * (ys - 0.5)
    head = levels > 0
    image = (levels * bias + 0.04 * texture * head).astype(np.float32)
    return cv2.GaussianBlur(image, (0, 0), 1.0)


def similarity(shape, angle_deg=0.0, scale=1.0, shift=(0.0, 0.0)) -> np.ndarray:
    """Moving -> fixed matrix: rotate/scale about the image centre, then shift."""
    rows, cols = shape[:2]
    c = np.array([(cols - 1) / 2.0, (rows - 1) / 2.0])
    a = np.deg2rad(angle_deg)
    linear = scale * np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    matrix = np.eye(3)
    matrix[:2, :2] = linear
    matrix[:2, 2] = c - linear @ c + np.asarray(shift, float)
    return matrix


def make_moving(fixed: np.ndarray, matrix: np.ndarray, shape=None) -> np.ndarray:
    """The moving image whose pixel q shows fixed point ``matrix @ q`` (zero outside)."""
    rows, cols = (shape or fixed.shape)[:2]
    return cv2.warpAffine(fixed, matrix[:2], (cols, rows), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)


def point_error(transform: Transform, truth: np.ndarray) -> float:
    """Mean distance, over every fixed pixel, between found and true moving positions."""
    found = transform.backward_coordinates().reshape(-1, 2).astype(np.float64)
    rows, cols = transform.fixed_shape
    ys, xs = np.mgrid[0:rows, 0:cols]
    grid = np.column_stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    expected = grid @ np.linalg.inv(truth).T
    return float(np.linalg.norm(found - expected[:, :2], axis=1).mean())


# ------------------------------------------------------------------ linear models


CASES = [
    ("translation 13,17", "camera", "translation", dict(shift=(-13.0, -17.0))),
    ("rotation 10", "astronaut", "rigid", dict(angle_deg=10.0)),
    ("rotation 10 + shift", "camera", "rigid", dict(angle_deg=-10.0, shift=(7.0, -9.0))),
    ("similarity x1.1", "astronaut", "similarity", dict(angle_deg=6.0, scale=1.1, shift=(4.0, 3.0))),
]


@pytest.mark.parametrize("name, photo, model, motion", CASES, ids=[c[0] for c in CASES])
def test_recovers_known_linear_transforms_on_photos(name, photo, model, motion):
    fixed = camera() if photo == "camera" else astronaut_gray()
    truth = similarity(fixed.shape, **motion)
    moving = make_moving(fixed, truth)
    result = REGISTER.run({"image": fixed, "image2": moving}, {"model": model})
    transform = result["transform"]
    assert isinstance(transform, Transform) and transform.kind == model
    assert transform.fixed_shape == fixed.shape and transform.moving_shape == moving.shape
    assert point_error(transform, truth) < 0.5
    assert result["image"].shape == fixed.shape and result["image"].dtype == np.uint8
    assert result.iterations > 0 and np.isfinite(result.scores["metric"])
    assert transform.parameters["metric_history"] and len(transform.parameters["metric_history"]) == result.iterations


def test_recovers_an_affine_transform():
    fixed = camera()
    truth = np.array([[1.06, 0.07, -8.0], [-0.04, 0.95, 5.0], [0.0, 0.0, 1.0]])
    moving = make_moving(fixed, truth)
    result = REGISTER.run({"image": fixed, "image2": moving}, {"model": "affine"})
    assert point_error(result["transform"], truth) < 0.5
    json = result["transform"].to_json()
    assert json["type"] == "affine" and np.allclose(json["matrix"], result["transform"].matrix)


def test_multimodal_mr_slices_with_mattes_mutual_information():
    """Fixed: a PD-like slice; moving: a T2-like slice of the same head (tissue contrasts
    remapped non-monotonically, other texture noise), shifted by (9, -6) px."""
    fixed = mr_slice(contrast="pd", seed=1)
    truth = similarity(fixed.shape, shift=(-9.0, 6.0))
    moving = make_moving(mr_slice(contrast="t2", seed=2), truth)
    # Truly multimodal: inside the head the two contrasts are anti-correlated.
    head = fixed > 0.02
    assert np.corrcoef(fixed[head], mr_slice(contrast="t2", seed=2)[head])[0, 1] < 0
    result = REGISTER.run({"image": fixed, "image2": moving}, {"model": "rigid", "metric": "mattes"})
    assert point_error(result["transform"], truth) < 1.0
    assert result["image"].dtype == np.float32


def test_sixteen_bit_colour_moving_image_of_another_size():
    """A 16-bit RGB moving image, larger than the fixed one, showing it shifted."""
    photo = (data.astronaut()[::2, ::2].astype(np.uint16) * 257)  # 256 x 256 x 3, 16-bit
    fixed = photo[20:220, 10:230]  # 200 x 220
    moving = photo[5:245, 0:250]  # 240 x 250: fixed pixel (x, y) is moving (x + 10, y + 15)
    truth = similarity(fixed.shape, shift=(-10.0, -15.0))
    result = REGISTER.run({"image": fixed, "image2": moving}, {"model": "translation"})
    transform = result["transform"]
    assert transform.fixed_shape == (200, 220) and transform.moving_shape == (240, 250)
    assert point_error(transform, truth) < 0.5
    warped = result["image"]
    assert warped.shape == (200, 220, 3) and warped.dtype == np.uint16
    inner = (slice(10, -10), slice(10, -10))
    assert np.abs(warped[inner].astype(float) - fixed[inner].astype(float)).mean() < 0.02 * 65535


@pytest.mark.parametrize(
    "params",
    [
        {"optimizer": "gradient_descent", "learning_rate": 0.25},
        {"initializer": "moments"},
        {"metric": "correlation"},
        {"metric": "mean_squares", "sampling_percentage": 1.0},
        {"levels": 1, "histogram_bins": 16},
    ],
    ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()),
)
def test_other_settings_also_recover_a_rigid_motion(params):
    fixed = camera(192)
    truth = similarity(fixed.shape, angle_deg=5.0, shift=(-6.0, 4.0))
    moving = make_moving(fixed, truth)
    result = REGISTER.run({"image": fixed, "image2": moving}, {"model": "rigid", **params})
    assert point_error(result["transform"], truth) < 0.5


def test_same_inputs_and_seed_give_the_same_result():
    fixed = camera(128)
    moving = make_moving(fixed, similarity(fixed.shape, angle_deg=5.0, shift=(3.0, -2.0)))
    params = {"model": "rigid", "sampling_percentage": 0.2, "seed": 7}
    first = REGISTER.run({"image": fixed, "image2": moving}, params)["transform"]
    second = REGISTER.run({"image": fixed, "image2": moving}, params)["transform"]
    # The same sample points every time; ITK's multi-threaded sums may still differ in the
    # last bits from run to run, which moves the result by about 1e-6 px.
    assert first.parameters["metric_history"][0] == pytest.approx(second.parameters["metric_history"][0], rel=1e-9)
    moved = np.abs(first.backward_coordinates() - second.backward_coordinates()).max()
    assert moved < 1e-3


# ------------------------------------------------------------------ deformable stages


def smooth_deformation(fixed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The moving image of a smooth (not affine) deformation, and where each fixed pixel
    lies in it (the true backward map, to first order)."""
    rows, cols = fixed.shape
    ys, xs = np.mgrid[0:rows, 0:cols].astype(np.float32)
    dx = 4.0 * np.sin(2 * np.pi * ys / rows) * np.sin(np.pi * xs / cols)
    dy = 3.0 * np.sin(2 * np.pi * xs / cols)
    moving = cv2.remap(fixed, xs + dx, ys + dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return moving, np.stack([xs - dx, ys - dy], axis=-1)


@pytest.mark.parametrize("deformable", ["bspline", "demons"])
def test_deformable_stage_beats_affine_on_a_smooth_deformation(deformable):
    fixed = camera(160)
    moving, truth_map = smooth_deformation(fixed)
    inputs = {"image": fixed, "image2": moving}
    affine = REGISTER.run(inputs, {"model": "affine", "metric": "mean_squares"})
    partials = []
    result = REGISTER.run(inputs, {"model": "affine", "metric": "mean_squares", "deformable": deformable},
                          RunContext(on_partial=partials.append))
    transform = result["transform"]
    # The previews count iterations on through both stages (the score plot's x axis).
    counts = [partial.scores["iteration"] for partial in partials]
    linear_levels = len(shrink_factors(3, fixed.shape))
    assert any(p.scores["level"] >= linear_levels for p in partials), "previews of the deformable stage too"
    assert counts == sorted(counts) and counts[-1] <= result.iterations
    assert transform.kind == deformable and transform.deformable
    assert transform.backward_map.shape == (160, 160, 2) and transform.backward_map.dtype == np.float32
    np.testing.assert_allclose(transform.matrix, affine["transform"].matrix, atol=1e-6)  # the linear stage

    inner = (slice(16, -16), slice(16, -16))

    def intensity_error(warped):
        return np.abs(warped[inner].astype(float) - fixed[inner].astype(float)).mean()

    def map_error(coords):
        return np.linalg.norm(coords[inner] - truth_map[inner], axis=-1).mean()

    assert intensity_error(result["image"]) < 0.7 * intensity_error(affine["image"])
    assert map_error(transform.backward_map) < 0.6 * map_error(affine["transform"].backward_coordinates())
    # The registered image is the moving image through the backward map.
    assert np.array_equal(result["image"], transform.apply(moving))


# ------------------------------------------------------------------ previews, metric curve, progress


def test_partials_carry_the_warped_image_and_a_decreasing_metric():
    fixed = camera(192)
    truth = similarity(fixed.shape, angle_deg=8.0, shift=(6.0, -5.0))
    moving = make_moving(fixed, truth)
    partials, progress = [], []
    ctx = RunContext(on_progress=lambda f, m: progress.append((f, m)), on_partial=partials.append)
    start = time.perf_counter()
    result = REGISTER.run({"image": fixed, "image2": moving}, {"model": "rigid", "metric": "mean_squares"}, ctx)
    elapsed = time.perf_counter() - start

    assert partials, "no live previews"
    for partial in partials:
        assert isinstance(partial, Result)
        assert partial["image"].shape == fixed.shape and partial["image"].dtype == np.uint8
        assert set(partial.scores) == {"metric", "iteration", "level"}
        assert all(isinstance(v, float) for v in partial.scores.values())
    # Throttled to about ten a second.
    assert len(partials) <= elapsed / 0.1 + 3
    metrics = [p.scores["metric"] for p in partials]
    assert result.scores["metric"] < metrics[0]
    # Mean squares falls within every pyramid level.
    history = np.array(result["transform"].parameters["metric_history"])
    levels = np.array(result["transform"].parameters["metric_history_levels"])
    for level in np.unique(levels):
        values = history[levels == level]
        assert values[-1] < values[0]
    # The last preview is close to the final result.
    assert np.abs(partials[-1]["image"].astype(float) - result["image"].astype(float)).mean() < 10
    fractions = [f for f, _ in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert any("iteration" in m and "metric" in m for _, m in progress)


# ------------------------------------------------------------------ cancellation


def _cancel_after(ctx_holder: dict, marker: str):
    def on_progress(fraction, message):
        if marker in message and "cancelled_at" not in ctx_holder:
            ctx_holder["cancelled_at"] = time.perf_counter()
            ctx_holder["ctx"].cancel()

    return on_progress


@pytest.mark.parametrize(
    "params, marker",
    [
        ({"model": "affine", "sampling_percentage": 1.0, "iterations": 5000, "levels": 3}, "level 1 iteration 3 "),
        ({"model": "affine", "sampling_percentage": 1.0, "iterations": 5000, "levels": 3}, "level 3 iteration 2 "),
        ({"model": "translation", "deformable": "bspline", "bspline_iterations": 2000, "levels": 2},
         "B-spline: level 1 iteration 3 "),
        ({"model": "translation", "deformable": "demons", "demons_iterations": 2000}, "Demons"),
    ],
    ids=["first level", "last level", "bspline", "demons"],
)
def test_cancel_mid_run_raises_quickly(params, marker):
    fixed = camera(512)
    moving = make_moving(fixed, similarity(fixed.shape, angle_deg=4.0, shift=(5.0, 3.0)))
    holder: dict = {}
    ctx = RunContext(on_progress=_cancel_after(holder, marker), on_partial=lambda r: None)
    holder["ctx"] = ctx
    with pytest.raises(Cancelled):
        REGISTER.run({"image": fixed, "image2": moving}, params, ctx)
    assert "cancelled_at" in holder, f"never reached {marker!r}"
    assert time.perf_counter() - holder["cancelled_at"] < 2.0


def test_cancel_from_another_thread():
    fixed = camera(512)
    moving = make_moving(fixed, similarity(fixed.shape, angle_deg=4.0))
    optimising = threading.Event()
    cancel_sent = threading.Event()

    def on_progress(fraction, message):
        # Hold the worker inside its first optimiser iteration until the cancel is sent, so
        # the test does not depend on how fast this machine converges.
        if "iteration" in message and not optimising.is_set():
            optimising.set()
            cancel_sent.wait(10)

    ctx = RunContext(on_progress=on_progress)
    outcome: dict = {}

    def work():
        try:
            REGISTER.run({"image": fixed, "image2": moving},
                         {"model": "affine", "sampling_percentage": 1.0, "iterations": 5000}, ctx)
            outcome["result"] = "finished"
        except Cancelled:
            outcome["result"] = "cancelled"
            outcome["at"] = time.perf_counter()

    thread = threading.Thread(target=work)
    thread.start()
    assert optimising.wait(30)
    cancelled_at = time.perf_counter()
    ctx.cancel()
    cancel_sent.set()
    thread.join(10)
    assert not thread.is_alive()
    assert outcome["result"] == "cancelled" and outcome["at"] - cancelled_at < 2.0


def test_a_cancelled_context_raises_before_any_work():
    ctx = RunContext()
    ctx.cancel()
    with pytest.raises(Cancelled):
        REGISTER.run({"image": camera(64), "image2": camera(64)}, {}, ctx)


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "fixed, moving, match",
    [
        (np.full((64, 64), 7, np.uint8), camera(64), "uniform"),
        (camera(64), np.zeros((64, 64), np.float32), "uniform"),
        (camera(64), np.full((64, 64), np.nan, np.float32), "finite"),
        (np.zeros((5, 5), np.uint8), camera(64), "too small"),
        (camera(64), np.zeros((64, 64, 2), np.uint8), "gray, RGB or RGBA"),
        (np.zeros(64, np.uint8), camera(64), "gray, RGB or RGBA"),
    ],
    ids=["uniform fixed", "uniform moving", "all NaN", "tiny", "two channels", "1-D"],
)
def test_bad_input_is_an_input_error(fixed, moving, match):
    with pytest.raises(InputError, match=match):
        REGISTER.run({"image": fixed, "image2": moving}, {})


def test_missing_moving_image_and_bad_parameters():
    with pytest.raises(InputError, match="image2"):
        REGISTER.run({"image": camera(64)}, {})
    with pytest.raises(InputError, match="model"):
        REGISTER.run({"image": camera(64), "image2": camera(64)}, {"model": "perspective"})
    with pytest.raises(InputError, match="levels"):
        REGISTER.run({"image": camera(64), "image2": camera(64)}, {"levels": 9})


def test_nan_pixels_are_tolerated():
    fixed = camera(128).astype(np.float32)
    truth = similarity(fixed.shape, shift=(-4.0, 3.0))
    moving = make_moving(fixed, truth)
    moving[:10, :10] = np.nan
    result = REGISTER.run({"image": fixed, "image2": moving}, {"model": "translation"})
    assert point_error(result["transform"], truth) < 0.5


# ------------------------------------------------------------------ helpers


def test_moving_to_fixed_handles_the_itk_centre():
    import SimpleITK as sitk

    tx = sitk.Similarity2DTransform(1.2, 0.3, (4.0, -2.0), (50.0, 30.0))  # fixed -> moving
    matrix = moving_to_fixed(tx)
    for point in [(0.0, 0.0), (17.0, 5.0), (80.0, 60.0)]:
        moved = np.array(tx.TransformPoint(point))
        back = matrix @ np.array([*moved, 1.0])
        np.testing.assert_allclose(back[:2], point, atol=1e-9)


def test_shrink_factors_keep_levels_above_sixteen_pixels():
    assert shrink_factors(3, (256, 256), (256, 256)) == [4, 2, 1]
    assert shrink_factors(3, (40, 300), (256, 256)) == [2, 1]
    assert shrink_factors(1, (256, 256)) == [1]


def test_larger_images_get_more_coarse_levels():
    """A pyramid gets one more level per doubling beyond 1024 px, so its coarsest level is
    about as coarse as a 1024 px image's."""
    assert shrink_factors(3, (768, 1024)) == [4, 2, 1]
    assert shrink_factors(3, (1500, 2000)) == [8, 4, 2, 1]
    assert shrink_factors(3, (3000, 4000)) == [16, 8, 4, 2, 1]
    assert shrink_factors(3, (300, 400), (3000, 4000)) == [16, 8, 4, 2, 1]  # the larger image decides
    assert shrink_factors(1, (3000, 4000)) == [1]  # no pyramid asked for, none made


@pytest.mark.parametrize("factor", [2, 4])
def test_pyramid_levels_keep_the_full_images_physical_frame(factor):
    """A level's pixel sits where the full image's pixel ``factor`` times its index does, and
    holds the full image smoothed there: a transform found on a level is in full pixels."""
    import SimpleITK as sitk

    fixed, moving = astronaut_gray(203).astype(np.float32), camera(203).astype(np.float32)
    pyramid = Pyramid(sitk, RunContext(), sitk.GetImageFromArray(fixed), sitk.GetImageFromArray(moving),
                      [factor, 1], 0.25, 1, [], [])
    size = -(-203 // factor)
    for level, full in zip(pyramid.level_images(factor), (fixed, moving)):
        assert level.GetSize() == (size, size) and size * size == pyramid.level_pixels(factor)
        assert level.GetSpacing() == (factor, factor) and level.GetOrigin() == (0.0, 0.0)
        for row, col in [(0, 0), (7, 30), (size - 1, 11)]:
            assert level.TransformIndexToPhysicalPoint((col, row)) == (col * factor, row * factor)
        # Made level by level, it is close to one blur of the full image with sigma factor / 2,
        # sampled at every factor-th pixel (0-255 photos: within a grey level on average).
        direct = cv2.GaussianBlur(full, (0, 0), factor / 2, borderType=cv2.BORDER_REPLICATE)[::factor, ::factor]
        assert np.abs(sitk.GetArrayFromImage(level) - direct).mean() < 1.0
    assert pyramid.level_images(factor)[0] is pyramid.level_images(factor)[0]  # made once, kept for the next stage


def test_a_run_away_transform_is_reported_not_returned():
    check_plausible(np.eye(3), (100, 120), (90, 80))
    check_plausible(similarity((100, 120), angle_deg=30, scale=1.5, shift=(20, -10)), (100, 120), (100, 120))
    with pytest.raises(InputError, match="diverged"):
        check_plausible(np.diag([40.0, 40.0, 1.0]), (100, 120), (100, 120))
    with pytest.raises(InputError, match="overlap"):
        check_plausible(similarity((100, 120), shift=(500, 0)), (100, 120), (100, 120))
    with pytest.raises(InputError, match="diverged"):
        check_plausible(np.full((3, 3), np.nan), (100, 120), (100, 120))
