"""Restoration operators on real photos: each improves the quality number it should."""

from __future__ import annotations

import copy

import cv2
import numpy as np
import pytest
from scipy import ndimage
from skimage import data, restoration
from skimage.metrics import peak_signal_noise_ratio as sk_psnr

from maskwork.operators import Cancelled, InputError, Result, RunContext, get
from maskwork.operators.restore.clone import seamless_clone
from maskwork.operators.restore.deblur import deblur, make_psf, psf_from_image, richardson_lucy
from maskwork.operators.restore.denoise import (
    METHODS,
    denoise,
    estimate_noise,
    intensity_range,
    suggested_parameters,
)
from maskwork.operators.restore.tone import clahe, clahe_float, gamma, levels, unsharp_mask

NOISE = 20.0  # grey levels, i.e. sigma 20/255


def add_noise(image: np.ndarray, sigma: float = NOISE, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(image + rng.normal(0.0, sigma, image.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return np.ascontiguousarray(data.astronaut()[60:260, 140:340])  # face and helmet, 200x200


@pytest.fixture(scope="module")
def camera() -> np.ndarray:
    return np.ascontiguousarray(data.camera()[80:280, 150:350])  # the photographer, 200x200


def psnr(reference: np.ndarray, image: np.ndarray) -> float:
    peak = 255.0 if reference.dtype == np.uint8 else (65535.0 if reference.dtype == np.uint16 else 1.0)
    return sk_psnr(reference.astype(np.float64), image.astype(np.float64), data_range=peak)


# ------------------------------------------------------------------ denoising


@pytest.mark.parametrize("method", METHODS)
def test_every_denoiser_improves_psnr_on_gaussian_noise(method, astronaut):
    noisy = add_noise(astronaut)
    suggested = suggested_parameters(estimate_noise(noisy), intensity_range(noisy))
    result = denoise(noisy, method=method, **suggested)
    out = result["image"]
    assert out.dtype == np.uint8 and out.shape == astronaut.shape
    before, after = psnr(astronaut, noisy), psnr(astronaut, out)
    assert after > before + 3.0, f"{method}: {before:.2f} -> {after:.2f} dB"
    assert result.scores["noise_sigma"] == pytest.approx(estimate_noise(noisy))


@pytest.mark.parametrize("method", ["nl_means", "tv_chambolle", "wavelet", "bilateral"])
def test_denoising_deeper_images_improves_psnr(method, camera):
    """16-bit and float images take the other code paths (scikit-image NL-means)."""
    noisy8 = add_noise(camera, seed=1)
    for noisy, clean in (
        (noisy8.astype(np.uint16) * 257, camera.astype(np.uint16) * 257),
        (noisy8.astype(np.float32) / 255, camera.astype(np.float32) / 255),
    ):
        suggested = suggested_parameters(estimate_noise(noisy), intensity_range(noisy))
        out = denoise(noisy, method=method, **suggested)["image"]
        assert out.dtype == noisy.dtype and out.shape == noisy.shape
        assert psnr(clean, out) > psnr(clean, noisy) + 3.0, (method, noisy.dtype)


def test_median_removes_salt_and_pepper(camera):
    rng = np.random.default_rng(2)
    noisy = camera.copy()
    hit = rng.random(camera.shape)
    noisy[hit < 0.03] = 0
    noisy[hit > 0.97] = 255
    out = denoise(noisy, method="median", size=3)["image"]
    assert psnr(camera, out) > psnr(camera, noisy) + 10.0
    # The Gaussian spreads impulses instead of removing them.
    assert psnr(camera, out) > psnr(camera, denoise(noisy, method="gaussian", sigma=1.0)["image"]) + 5.0
    # Windows OpenCV does not take for 16-bit go through SciPy.
    deep = denoise(noisy.astype(np.uint16) * 257, method="median", size=7)["image"]
    assert deep.dtype == np.uint16 and psnr(camera.astype(np.uint16) * 257, deep) > psnr(camera, noisy) + 5.0


@pytest.mark.parametrize("scale, dtype", [(1.0, np.uint8), (257.0, np.uint16), (1 / 255, np.float32)])
def test_estimate_noise_within_30_percent(scale, dtype, astronaut, camera):
    for clean in (astronaut, camera):
        noisy = add_noise(clean, seed=3)
        image = (noisy * scale).astype(dtype) if dtype != np.uint16 else noisy.astype(np.uint16) * 257
        sigma = estimate_noise(image)
        assert sigma == pytest.approx(NOISE * scale, rel=0.3)


def test_suggested_parameters_lie_within_the_declared_ranges():
    spec = get("denoise")
    for sigma in (0.0, 1.0, 5.0, 20.0, 60.0, 400.0):
        for name, value in suggested_parameters(sigma).items():
            assert spec.param(name).coerce(value) == value, (sigma, name, value)
    # The same relative noise gives the same suggestion whatever the depth.
    assert suggested_parameters(20.0) == suggested_parameters(20.0 * 257, 65535.0)
    assert suggested_parameters(20.0) == suggested_parameters(20.0 / 255, 1.0)


# ------------------------------------------------------------------ deblurring


def blurred(clean: np.ndarray, psf: np.ndarray, noise: float = 1.0, seed: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = ndimage.convolve(clean.astype(np.float64), psf, mode="reflect")
    return np.clip(np.rint(out + rng.normal(0, noise, out.shape)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("method", ["wiener", "unsupervised_wiener", "richardson_lucy"])
def test_every_deblurring_method_improves_psnr_after_a_gaussian_blur(method, camera):
    blurry = blurred(camera, make_psf("gaussian", sigma=2.0))
    out = deblur(blurry, method=method, psf="gaussian", psf_sigma=2.0)["image"]
    assert out.dtype == np.uint8 and out.shape == camera.shape
    assert psnr(camera, out) > psnr(camera, blurry) + 1.5, method


def test_deblurring_colour_keeps_colour(astronaut):
    blurry = np.dstack([blurred(astronaut[..., c], make_psf("disk", radius=3), seed=c) for c in range(3)])
    out = deblur(blurry, method="wiener", psf="disk", disk_radius=3)["image"]
    assert out.shape == astronaut.shape
    assert psnr(astronaut, out) > psnr(astronaut, blurry) + 1.5


def test_richardson_lucy_undoes_motion_blur(camera):
    psf = make_psf("motion", length=9, angle=30)
    blurry = blurred(camera, psf)
    out = deblur(blurry, method="richardson_lucy", psf="motion", motion_length=9, motion_angle=30, iterations=30)
    assert out.iterations == 30
    assert psnr(camera, out["image"]) > psnr(camera, blurry) + 3.0
    # The wrong direction restores much less: the PSF parameters matter.
    wrong = deblur(blurry, method="richardson_lucy", psf="motion", motion_length=9, motion_angle=-60, iterations=30)
    assert psnr(camera, out["image"]) > psnr(camera, wrong["image"]) + 2.0


def test_richardson_lucy_shows_iterations_and_can_be_cancelled(camera):
    blurry = blurred(camera, make_psf("gaussian", sigma=1.5))
    partials, progress = [], []
    ctx = RunContext(on_progress=lambda f, m: progress.append(f), on_partial=partials.append)
    final = deblur(blurry, method="richardson_lucy", psf_sigma=1.5, iterations=20, ctx=ctx)["image"]
    assert len(partials) >= 5
    assert all(isinstance(p, Result) and p["image"].dtype == np.uint8 and p["image"].shape == camera.shape for p in partials)
    steps = [p.iterations for p in partials]
    assert steps == sorted(steps) and steps[-1] < 20
    assert progress == sorted(progress) and progress[-1] == 1.0
    # Later iterations are sharper: closer to the clean image than the first preview.
    assert psnr(camera, final) > psnr(camera, partials[0]["image"])

    seen = []

    def cancel_after_two(result):
        seen.append(result)
        if len(seen) == 2:
            ctx.cancel()

    ctx = RunContext(on_partial=cancel_after_two)
    with pytest.raises(Cancelled):
        deblur(blurry, method="richardson_lucy", psf_sigma=1.5, iterations=200, ctx=ctx)
    assert len(seen) == 2


@pytest.mark.parametrize("kind, options", [("gaussian", {"sigma": 2.0}), ("motion", {"length": 11, "angle": 20}), ("disk", {"radius": 4})])
def test_richardson_lucy_matches_scikit_image(kind, options, camera):
    psf = make_psf(kind, **options)
    image = blurred(camera, psf) / 255.0
    ours = richardson_lucy(image, psf, 15)
    theirs = restoration.richardson_lucy(image, psf, num_iter=15, clip=False)
    np.testing.assert_allclose(ours, theirs, atol=1e-6)
    colour = np.dstack([image, image[::-1], image.T])
    ours = richardson_lucy(colour.astype(np.float32), psf, 5)
    for c in range(3):
        theirs = restoration.richardson_lucy(colour[..., c], psf, num_iter=5, clip=False)
        np.testing.assert_allclose(ours[..., c], theirs, atol=1e-4)


def test_richardson_lucy_is_at_least_as_good_as_scikit_image_on_its_own_scenario():
    """scikit-image's test: the camera blurred by a 5x5 box with 10 % noise, 5 iterations."""
    from scipy.signal import convolve2d

    sharp = data.camera() / 255.0
    box = np.ones((5, 5)) / 25
    rng = np.random.default_rng(0)
    blurry = convolve2d(sharp, box, "same")
    blurry += 0.1 * blurry.std() * rng.standard_normal(blurry.shape)
    theirs = restoration.richardson_lucy(blurry, box, num_iter=5)
    ours = deblur(blurry, np.ones((5, 5)), method="richardson_lucy", psf="image2", iterations=5)["image"]
    assert psnr(sharp, ours) >= psnr(sharp, theirs) + 1.0


# ------------------------------------------------------------------ quick previews


@pytest.fixture
def small_previews(monkeypatch):
    """Quick previews from a 40,000-pixel copy, so that a 400x400 image has one."""
    from maskwork.operators.restore import deblur as deblur_module, denoise as denoise_module, reduced_preview

    monkeypatch.setattr(reduced_preview, "PREVIEW_PIXELS", 40_000)
    monkeypatch.setattr(denoise_module, "NL_MEANS_PREVIEW_PIXELS", 40_000)
    monkeypatch.setattr(deblur_module, "UNSUPERVISED_PREVIEW_PIXELS", 40_000)


def first_partial_and_result(operator, image, **params):
    partials = []
    result = operator(image, ctx=RunContext(on_partial=partials.append), **params)["image"]
    return (partials[0]["image"] if partials else None), result


@pytest.mark.parametrize("method", ["nl_means", "tv_chambolle", "wavelet"])
def test_slow_denoisers_preview_a_reduced_copy_first(method, small_previews):
    clean = cv2.resize(data.astronaut(), (400, 400), interpolation=cv2.INTER_AREA)
    noisy = add_noise(clean)
    preview, result = first_partial_and_result(denoise, noisy, method=method)
    assert preview.shape == noisy.shape and preview.dtype == noisy.dtype
    # The preview already removes most of the noise, and looks like the final result.
    assert psnr(clean, preview) > psnr(clean, noisy) + 3.0
    assert psnr(result, preview) > 25.0
    # Nobody previewing (Apply, the command line): no reduced run, the same result.
    np.testing.assert_array_equal(denoise(noisy, method=method)["image"], result)


@pytest.mark.parametrize("method", ["wiener", "unsupervised_wiener", "richardson_lucy"])
def test_deblurring_previews_a_reduced_copy_first(method, small_previews):
    sharp = cv2.resize(data.camera(), (400, 400), interpolation=cv2.INTER_AREA)
    blurry = cv2.GaussianBlur(sharp, (0, 0), 3.0)
    preview, result = first_partial_and_result(deblur, blurry, method=method, psf_sigma=3.0, iterations=10)
    assert preview.shape == blurry.shape and preview.dtype == blurry.dtype
    assert psnr(result, preview) > 20.0


def test_a_psf_image_narrower_than_a_pixel_of_the_reduced_copy_still_previews(small_previews, monkeypatch):
    """A 5 px PSF image on a copy reduced 4x would be a 1 px image: the preview keeps it at
    3 px (on a 12 MP photo a 9 px PSF did this, and the window's preview failed)."""
    from maskwork.operators.restore import reduced_preview

    monkeypatch.setattr(reduced_preview, "PREVIEW_PIXELS", 10_000)
    sharp = cv2.resize(data.camera(), (400, 400), interpolation=cv2.INTER_AREA)
    point = np.zeros((5, 5))
    point[2, 2] = 1.0
    psf_image = cv2.GaussianBlur(point, (5, 5), 1.0)
    blurry = cv2.filter2D(sharp, -1, psf_image / psf_image.sum(), borderType=cv2.BORDER_REFLECT)
    preview, result = first_partial_and_result(deblur, blurry, image2=psf_image, psf="image2", method="wiener")
    assert preview is not None and preview.shape == blurry.shape
    np.testing.assert_array_equal(deblur(blurry, psf_image, psf="image2", method="wiener")["image"], result)


@pytest.mark.parametrize("dtype", [np.uint16, np.int32, np.float32])
def test_quick_previews_keep_the_dtype(dtype, small_previews):
    gray = cv2.resize(data.camera(), (400, 400)).astype(dtype)
    preview, result = first_partial_and_result(denoise, gray, method="wavelet")
    assert preview.dtype == result.dtype == dtype and preview.shape == gray.shape


def test_small_images_get_no_reduced_preview(astronaut):
    preview, _ = first_partial_and_result(denoise, add_noise(astronaut), method="tv_chambolle")
    assert preview is None


def test_make_psf_shapes():
    for kind, options in [("gaussian", {"sigma": 1.3}), ("motion", {"length": 15, "angle": 37}), ("disk", {"radius": 2.5})]:
        psf = make_psf(kind, **options)
        assert psf.shape[0] % 2 == 1 and psf.shape[1] % 2 == 1
        assert psf.sum() == pytest.approx(1.0) and psf.min() >= 0
        rows, cols = np.indices(psf.shape)
        assert (rows * psf).sum() == pytest.approx(psf.shape[0] // 2, abs=1e-6)
        assert (cols * psf).sum() == pytest.approx(psf.shape[1] // 2, abs=1e-6)
    horizontal = make_psf("motion", length=9, angle=0)
    assert horizontal.shape[0] == 1 and horizontal.shape[1] >= 9
    vertical = make_psf("motion", length=9, angle=90)
    assert vertical.shape[1] == 1 and vertical.shape[0] >= 9
    rising = make_psf("motion", length=21, angle=45)
    # Counter-clockwise on screen: up and to the right means top-right and bottom-left.
    assert rising[0, -1] > 0 and rising[-1, 0] > 0 and rising[0, 0] == 0
    disk = make_psf("disk", radius=5)
    assert (disk > 0).sum() == pytest.approx(np.pi * 25, rel=0.25)
    with pytest.raises(InputError):
        make_psf("square")
    with pytest.raises(InputError):
        make_psf("gaussian", sigma=0)


def test_psf_from_an_image_layer(camera):
    psf = make_psf("gaussian", sigma=2.0)
    layer = np.zeros((31, 25), np.uint8)
    layer[4 : 4 + psf.shape[0], 9 : 9 + psf.shape[1]] = np.rint(psf / psf.max() * 255).astype(np.uint8)
    measured = psf_from_image(layer)
    assert measured.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(measured[_centre(measured, psf.shape)], psf, atol=2e-3)
    blurry = blurred(camera, psf)
    from_layer = deblur(blurry, layer, method="wiener", psf="image2")["image"]
    from_params = deblur(blurry, method="wiener", psf="gaussian", psf_sigma=2.0)["image"]
    assert psnr(from_params, from_layer) > 35.0
    # Without psf="image2" a second image is ignored (the window always passes one).
    assert np.array_equal(deblur(blurry, layer, method="wiener")["image"], from_params)
    with pytest.raises(InputError, match="image2"):
        deblur(blurry, method="wiener", psf="image2")
    with pytest.raises(InputError, match="black"):
        deblur(blurry, np.zeros((5, 5), np.uint8), psf="image2")
    with pytest.raises(InputError, match="larger"):
        deblur(blurry[:20, :20], make_psf("gaussian", sigma=5.0), psf="image2")


def _centre(kernel: np.ndarray, shape: tuple[int, int]) -> tuple[slice, slice]:
    top, left = (kernel.shape[0] - shape[0]) // 2, (kernel.shape[1] - shape[1]) // 2
    return slice(top, top + shape[0]), slice(left, left + shape[1])


# ------------------------------------------------------------------ contrast and tone


def local_contrast(image: np.ndarray) -> float:
    """Standard deviation of the image minus its 15x15 local mean, in [0, 1] units."""
    values = image.astype(np.float64)
    if values.ndim == 3:
        values = values @ [0.299, 0.587, 0.114]
    values /= {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(image.dtype, 1.0)
    return float((values - ndimage.uniform_filter(values, 15)).std())


def test_clahe_raises_local_contrast_of_a_dull_photo(camera, astronaut):
    dull_gray = (camera * 0.3 + 90).astype(np.uint8)
    dull_rgb = (astronaut * 0.3 + 90).astype(np.uint8)
    for dull in (dull_gray, dull_rgb, dull_gray.astype(np.uint16) * 257, dull_rgb.astype(np.float32) / 255):
        out = clahe(dull, clip_limit=3.0, tile_grid=8)["image"]
        assert out.dtype == dull.dtype and out.shape == dull.shape
        assert local_contrast(out) > 1.5 * local_contrast(dull), dull.dtype
    # Colour: only the lightness changes; the chroma (a and b of Lab) stays.
    before = cv2.cvtColor(dull_rgb, cv2.COLOR_RGB2Lab).astype(float)
    after = cv2.cvtColor(clahe(dull_rgb)["image"], cv2.COLOR_RGB2Lab).astype(float)
    assert np.abs(after[..., 0] - before[..., 0]).mean() > 5
    assert np.abs(after[..., 1:] - before[..., 1:]).mean() < 0.5


def test_clahe_of_a_ten_bit_camera_in_sixteen_bits_equalises_as_its_eight_bit_copy(camera):
    # 0..900 of 0..65535, as a 10-bit sensor stores it: 1.4 % of the range, four bins.
    ten_bit = np.round(camera.astype(np.float64) * (900 / 255)).astype(np.uint16)
    out = clahe(ten_bit)["image"]
    assert out.dtype == np.uint16 and out.max() <= 1023
    eight = clahe(np.round(ten_bit * (255 / 1023)).astype(np.uint8))["image"].astype(np.float64)
    assert np.abs(out * (255 / 1023) - eight).mean() < 2.0, "the same equalisation on the sensor's range"
    assert out.min() < 50, "black stays black (it was lifted to 750)"


def test_suggested_denoising_of_a_sixteen_bit_camera_using_0_to_900_improves_it(camera):
    clean = camera.astype(np.float64) * (900 / 255)
    rng = np.random.default_rng(4)
    noisy = np.clip(np.round(clean + rng.normal(0, 30, clean.shape)), 0, 65535).astype(np.uint16)
    suggested = suggested_parameters(estimate_noise(noisy), intensity_range(noisy))
    noisy_psnr = sk_psnr(clean, noisy.astype(np.float64), data_range=900)
    for method in ("nl_means", "bilateral", "tv_chambolle"):
        out = denoise(noisy, method=method, **suggested)["image"].astype(np.float64)
        assert sk_psnr(clean, out, data_range=900) > noisy_psnr + 2.0, method


def test_clahe_float_is_opencvs_clahe_with_precision(camera):
    for clip, grid in [(2.0, (8, 8)), (4.0, (5, 7)), (40.0, (3, 3))]:
        ours = clahe_float(camera / 255.0, clip, grid) * 255
        theirs = cv2.createCLAHE(clip, (grid[1], grid[0])).apply(camera)
        difference = np.abs(ours - theirs)
        assert difference.mean() < 0.5 and difference.max() <= 1.5, (clip, grid)
    # 16-bit honours the clip limit like 8-bit does (OpenCV's 16-bit CLAHE ignores it).
    dull = (camera * 0.3 + 90).astype(np.uint8)
    for clip in (1.0, 4.0):
        deep = clahe(dull.astype(np.uint16) * 257, clip_limit=clip)["image"] / 257.0
        eight = clahe(dull, clip_limit=clip)["image"]
        assert np.abs(deep - eight).mean() < 1.0
    assert local_contrast(clahe(dull, clip_limit=4.0)["image"]) > 1.2 * local_contrast(clahe(dull, clip_limit=1.0)["image"])


def test_gamma_is_exact():
    levels8 = np.arange(256, dtype=np.uint8).reshape(16, 16)
    for g in (0.5, 1.0, 2.2):
        out = gamma(levels8, gamma=g)["image"]
        expected = np.rint(255 * (np.arange(256) / 255) ** g).reshape(16, 16)
        np.testing.assert_array_equal(out, expected.astype(np.uint8))
    deep = np.array([[0, 1000], [32768, 65535]], np.uint16)
    np.testing.assert_array_equal(gamma(deep, gamma=0.5)["image"], np.rint(65535 * np.sqrt(deep / 65535)).astype(np.uint16))
    floats = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    np.testing.assert_allclose(gamma(floats, gamma=3.0)["image"], floats**3, atol=1e-6)


def test_levels_is_exact():
    values = np.arange(256, dtype=np.uint8).reshape(16, 16)
    out = levels(values, in_low=0.2, in_high=0.6, out_low=0.15, out_high=0.85, gamma=2.0)["image"]
    x = np.clip((np.arange(256) / 255 - 0.2) / 0.4, 0, 1) ** 0.5
    expected = 255 * (0.15 + 0.7 * x)
    assert np.abs(expected - np.floor(expected) - 0.5).min() > 1e-6  # no ties to round
    np.testing.assert_array_equal(out.ravel(), np.rint(expected).astype(np.uint8))
    assert out.ravel()[51] == 38 and out.ravel()[153] == 217  # 0.2 -> 0.15 and 0.6 -> 0.85 of 255
    inverted = levels(values, out_low=1.0, out_high=0.0)["image"]
    np.testing.assert_array_equal(inverted, 255 - values)
    floats = np.array([[0.0, 0.25], [0.5, 1.0]])
    np.testing.assert_allclose(levels(floats, in_high=0.5)["image"], [[0.0, 0.5], [1.0, 1.0]])
    with pytest.raises(InputError, match="white point"):
        levels(values, in_low=0.6, in_high=0.6)


def mean_gradient(image: np.ndarray) -> float:
    values = image.astype(np.float64)
    return float(np.hypot(ndimage.sobel(values, 0), ndimage.sobel(values, 1)).mean())


def test_unsharp_mask_sharpens_edges(camera):
    soft = cv2.GaussianBlur(camera, (0, 0), 1.5)
    out = unsharp_mask(soft, radius=2.0, amount=2.0)["image"]
    assert out.dtype == np.uint8
    assert mean_gradient(out) > 1.4 * mean_gradient(soft)
    # Sharpening a blurred photo brings it closer to the sharp one.
    assert psnr(camera, out) > psnr(camera, soft)
    np.testing.assert_array_equal(unsharp_mask(soft, amount=0.0)["image"], soft)


# ------------------------------------------------------------------ seamless cloning


def luminance(image: np.ndarray) -> np.ndarray:
    values = image.astype(np.float64)
    return values @ [0.299, 0.587, 0.114] if values.ndim == 3 else values


def detail(image: np.ndarray) -> np.ndarray:
    """The image minus its Gaussian blur: what cloning must carry over from the source."""
    values = luminance(image)
    return values - cv2.GaussianBlur(values, (0, 0), 4)


def pasted_correlation(out, source, box, dest_top, dest_left) -> float:
    top, left, bottom, right = box
    inner = 3  # the rim blends into the target
    a = detail(out)[dest_top + inner : dest_top + bottom - top - inner, dest_left + inner : dest_left + right - left - inner]
    b = detail(source)[top + inner : bottom - inner, left + inner : right - inner]
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


@pytest.mark.parametrize("mode, target_blur", [("normal", 0), ("mixed", 4)])
def test_seamless_clone_pastes_the_source_region(mode, target_blur, astronaut):
    source = astronaut if mode == "normal" else np.dstack([data.coins()[50:250, 50:250]] * 3)
    target = np.ascontiguousarray(data.chelsea()[50:250, 100:300])
    if target_blur:  # mixed keeps the stronger gradient: a smooth target lets the source's show
        target = cv2.GaussianBlur(target, (0, 0), target_blur)
    mask = np.zeros((200, 200), bool)
    mask[50:130, 60:140] = True
    # An odd centre column: OpenCV 5.0 hardly pastes there with a one-channel mask.
    result = seamless_clone(target, source, mask, center_row=101, center_col=91, mode=mode)
    out = result["image"]
    assert out.dtype == np.uint8 and out.shape == target.shape
    assert result.bounds == (slice(61, 141), slice(51, 131))
    assert pasted_correlation(out, source, (50, 60, 130, 140), 61, 51) > 0.9
    outside = np.ones(target.shape[:2], bool)
    outside[result.bounds] = False
    assert np.array_equal(out[outside], target[outside])
    if mode == "normal":
        # The region's colours follow the target: its mean moves towards the target's there.
        region = (slice(61, 141), slice(51, 131))
        assert abs(out[region].mean() - target[region].mean()) < abs(source[50:130, 60:140].mean() - target[region].mean())


def test_seamless_clone_other_dtypes_and_sizes(astronaut):
    source = astronaut[20:180, 10:170]  # smaller than the target
    target = np.ascontiguousarray(data.chelsea()[50:250, 100:300])
    mask = np.zeros(source.shape[:2], np.uint8)
    mask[40:100, 50:110] = 255
    reference = seamless_clone(target, source, mask, center_row=100, center_col=100)["image"]
    for t, s in [
        (target.astype(np.uint16) * 257, source),
        (target.astype(np.float32) / 255, source.astype(np.uint16) * 257),
        (luminance(target).astype(np.uint8), source),
    ]:
        result = seamless_clone(t, s, mask, center_row=100, center_col=100)
        out = result["image"]
        assert out.dtype == t.dtype and out.shape == t.shape
        assert pasted_correlation(out, source, (40, 50, 100, 110), 70, 70) > 0.9
        outside = np.ones(t.shape[:2], bool)
        outside[result.bounds] = False
        assert np.array_equal(out[outside], t[outside])
        if t.ndim == 3:
            scale = 255.0 / (65535.0 if t.dtype == np.uint16 else 1.0 if t.dtype == np.float32 else 255.0)
            assert np.abs(out.astype(float) * scale - reference).max() <= 1.01


def test_seamless_clone_with_a_target_sized_mask_keeps_the_place(astronaut):
    """The window passes a mask layer of the picture's size: the region stays where it is."""
    target = np.ascontiguousarray(data.chelsea()[50:250, 100:300])
    rows, cols = np.ogrid[:200, :200]
    mask = (rows - 90) ** 2 + (cols - 110) ** 2 <= 30**2
    result = seamless_clone(target, astronaut, mask)
    assert result.bounds == (slice(60, 121), slice(80, 141))
    assert pasted_correlation(result["image"], astronaut, (64, 84, 116, 136), 64, 84) > 0.9


def test_seamless_clone_explains_bad_input(astronaut):
    target = np.ascontiguousarray(data.chelsea()[50:250, 100:300])
    small = astronaut[:100, :120]
    mask = np.zeros((200, 200), bool)
    mask[50:100, 50:100] = True
    with pytest.raises(InputError, match="source"):
        seamless_clone(target, small, mask)  # a target-sized mask for a smaller source
    with pytest.raises(InputError, match="empty"):
        seamless_clone(target, astronaut, np.zeros((200, 200), bool))
    with pytest.raises(InputError, match="falls off"):
        seamless_clone(target, astronaut, mask, center_row=10, center_col=100)
    with pytest.raises(InputError, match="falls off"):
        seamless_clone(target, astronaut, mask, center_row=100, center_col=190)


# ------------------------------------------------------------------ every dtype and layout


def _variants() -> dict[str, np.ndarray]:
    rgb = np.ascontiguousarray(data.astronaut()[40:88, 160:224])
    gray = np.ascontiguousarray(data.camera()[100:148, 200:264])
    alpha = np.full(rgb.shape[:2], 200, np.uint8)
    alpha[:10] = 0
    return {
        "gray8": gray,
        "gray8x1": gray[..., None],
        "rgb8": rgb,
        "rgba8": np.dstack([rgb, alpha]),
        "gray16": gray.astype(np.uint16) * 257,
        "rgb16": rgb.astype(np.uint16) * 257,
        "rgb_float32": rgb.astype(np.float32) / 255,
        "gray_float64_wide": gray.astype(np.float64) * 4.0 - 100.0,
    }


CASES = [
    ("denoise", {"method": method}) for method in METHODS
] + [
    ("deblur", {"method": "wiener"}),
    ("deblur", {"method": "unsupervised_wiener"}),
    ("deblur", {"method": "richardson_lucy", "iterations": 3}),
    ("clahe", {}),
    ("gamma", {"gamma": 0.7}),
    ("levels", {"in_low": 0.1, "in_high": 0.9, "gamma": 1.3}),
    ("unsharp_mask", {}),
    ("seamless_clone", {}),
]


@pytest.mark.parametrize("op_id, params", CASES, ids=[f"{op}-{p.get('method', '')}" for op, p in CASES])
def test_every_dtype_and_layout_is_kept(op_id, params):
    spec = get(op_id)
    for name, image in _variants().items():
        inputs = {"image": image}
        if "image2" in spec.required_inputs:
            inputs["image2"] = np.ascontiguousarray(image[::-1])
            inputs["mask"] = np.zeros(image.shape[:2], bool)
            inputs["mask"][15:35, 20:45] = True
        originals = copy.deepcopy(inputs)
        out = spec.run(inputs, params)["image"]
        assert out.dtype == image.dtype and out.shape == image.shape, (op_id, name)
        if np.issubdtype(out.dtype, np.floating):
            assert np.all(np.isfinite(out))
        if name == "rgba8":
            np.testing.assert_array_equal(out[..., 3], image[..., 3])
        for key, value in originals.items():
            np.testing.assert_array_equal(inputs[key], value, err_msg=f"{op_id} changed its {key} ({name})")


@pytest.mark.parametrize("op_id", ["denoise", "deblur", "clahe", "gamma", "levels", "unsharp_mask"])
def test_bad_images_get_clear_messages(op_id):
    spec = get(op_id)
    with pytest.raises(InputError, match="NaN"):
        spec.run({"image": np.full((20, 20), np.nan, np.float32)})
    with pytest.raises(InputError, match="gray, RGB or RGBA"):
        spec.run({"image": np.zeros((20, 20, 2), np.uint8)})
