"""Image quality measures (MSE, PSNR, SSIM, difference) against scikit-image's own."""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data, metrics

from maskwork.core import measure


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    clean = np.ascontiguousarray(data.astronaut()[60:260, 140:340])
    rng = np.random.default_rng(0)
    noisy = np.clip(clean + rng.normal(0, 12, clean.shape), 0, 255).astype(np.uint8)
    return clean, noisy


def test_whole_image_measures_match_scikit_image(pair):
    clean, noisy = pair
    assert measure.mse(clean, noisy) == pytest.approx(metrics.mean_squared_error(clean, noisy))
    assert measure.psnr(clean, noisy) == pytest.approx(metrics.peak_signal_noise_ratio(clean, noisy))
    assert measure.ssim(clean, noisy) == pytest.approx(
        metrics.structural_similarity(clean, noisy, channel_axis=-1, data_range=255)
    )
    gray, gray_noisy = clean[..., 1], noisy[..., 1]
    assert measure.ssim(gray, gray_noisy) == pytest.approx(metrics.structural_similarity(gray, gray_noisy, data_range=255))


def test_measures_made_in_bands_are_those_of_the_whole_image(pair, monkeypatch):
    clean, noisy = pair
    whole = (measure.ssim(clean, noisy), measure.mse(clean, noisy))
    inside = np.zeros(clean.shape[:2], bool)
    inside[30:170, 20:90] = True
    whole_inside = measure.ssim(clean, noisy, mask=inside)
    monkeypatch.setattr(measure, "SSIM_BAND_ROWS", 9)  # bands that split windows
    monkeypatch.setattr(measure, "MSE_CHUNK", 1000)
    assert (measure.ssim(clean, noisy), measure.mse(clean, noisy)) == pytest.approx(whole, rel=1e-12)
    assert measure.ssim(clean, noisy, mask=inside) == pytest.approx(whole_inside, rel=1e-12)


def test_data_range_follows_the_dtype_or_the_float_reference(pair):
    clean, noisy = pair
    deep, deep_noisy = clean.astype(np.uint16) * 257, noisy.astype(np.uint16) * 257
    # 16-bit: 65535 is the peak, so scaling both by 257 changes nothing.
    assert measure.psnr(deep, deep_noisy) == pytest.approx(measure.psnr(clean, noisy))
    assert measure.psnr(deep, deep_noisy) == pytest.approx(metrics.peak_signal_noise_ratio(deep, deep_noisy))
    assert measure.ssim(deep, deep_noisy) == pytest.approx(measure.ssim(clean, noisy), abs=1e-6)
    # Floats: the reference's own range.
    wide, wide_noisy = clean[..., 0] * 3.0 - 50, noisy[..., 0] * 3.0 - 50
    span = float(wide.max() - wide.min())
    assert measure.psnr(wide, wide_noisy) == pytest.approx(metrics.peak_signal_noise_ratio(wide, wide_noisy, data_range=span))
    assert measure.ssim(wide, wide_noisy) == pytest.approx(metrics.structural_similarity(wide, wide_noisy, data_range=span))
    assert measure.psnr(wide, wide_noisy, data_range=1000) == pytest.approx(
        metrics.peak_signal_noise_ratio(wide, wide_noisy, data_range=1000)
    )


def test_masked_measures_use_only_the_masked_pixels(pair):
    clean, noisy = pair
    mask = np.zeros(clean.shape[:2], bool)
    mask[40:120, 30:170] = True
    diff = clean.astype(float) - noisy.astype(float)
    expected_mse = np.mean(diff[mask] ** 2)
    assert measure.mse(clean, noisy, mask) == pytest.approx(expected_mse)
    assert measure.psnr(clean, noisy, mask) == pytest.approx(10 * np.log10(255**2 / expected_mse))
    _, local = metrics.structural_similarity(clean, noisy, channel_axis=-1, data_range=255, full=True)
    assert measure.ssim(clean, noisy, mask) == pytest.approx(local[mask].mean())
    # A mask over everything gives the whole-image numbers (SSIM leaves out the border as skimage does).
    everything = np.ones(clean.shape[:2], np.uint8)
    assert measure.ssim(clean, noisy, everything) == pytest.approx(measure.ssim(clean, noisy))
    assert measure.psnr(clean, noisy, everything) == pytest.approx(measure.psnr(clean, noisy))


def test_damage_inside_the_mask_shows_only_inside(pair):
    clean, _ = pair
    damaged = clean.copy()
    damaged[50:100, 50:100] = 128
    inside = np.zeros(clean.shape[:2], bool)
    inside[50:100, 50:100] = True
    far = np.zeros_like(inside)
    far[130:190, 120:190] = True
    assert measure.psnr(clean, damaged, far) == float("inf")
    assert measure.mse(clean, damaged, far) == 0.0
    assert measure.ssim(clean, damaged, far) == pytest.approx(1.0)
    assert measure.psnr(clean, damaged, inside) < measure.psnr(clean, damaged) < 30
    assert measure.ssim(clean, damaged, inside) < measure.ssim(clean, damaged) < 1.0


def test_identical_images():
    image = data.camera()[:64, :64]
    assert measure.mse(image, image) == 0.0
    assert measure.psnr(image, image) == float("inf")
    assert measure.ssim(image, image) == pytest.approx(1.0)


def test_pixels_that_are_not_numbers_are_left_out():
    """A float image's NaN (an unknown pixel) made every measure NaN, even against an exact copy."""
    reference = data.camera()[:64, :80].astype(np.float32)
    reference[10, 20] = np.nan
    reference[40, 70] = np.inf
    assert measure.mse(reference, reference.copy()) == 0.0
    assert measure.psnr(reference, reference.copy()) == np.inf and measure.ssim(reference, reference.copy()) == 1.0
    brighter = reference + 4.0
    assert measure.mse(reference, brighter) == pytest.approx(16.0)
    # The same as comparing the finite pixels alone; SSIM leaves out every window that holds one.
    finite = np.isfinite(reference)
    assert measure.psnr(reference, brighter) == pytest.approx(measure.psnr(reference[finite], brighter[finite],
                                                                          data_range=float(np.ptp(reference[finite]))))
    clean = np.nan_to_num(reference, posinf=0.0)
    windows = np.ones_like(finite)
    windows[7:14, 17:24] = windows[37:44, 67:74] = False
    assert measure.ssim(reference, brighter) == pytest.approx(measure.ssim(clean, clean + 4.0, mask=windows,
                                                                           data_range=float(np.ptp(reference[finite]))))
    with pytest.raises(ValueError, match="no pixel to compare holds a finite number"):
        measure.mse(np.full((8, 8), np.nan), np.zeros((8, 8)))


def test_difference_image_does_not_wrap_around():
    a = np.array([[10, 200], [0, 255]], np.uint8)
    b = np.array([[200, 10], [255, 0]], np.uint8)
    out = measure.difference_image(a, b)
    assert out.dtype == np.float32 and out.shape == a.shape
    np.testing.assert_array_equal(out, [[190, 190], [255, 255]])
    rgb = data.astronaut()[:32, :32]
    assert measure.difference_image(rgb, rgb[::-1]).shape == rgb.shape


def test_bad_input_raises_value_errors(pair):
    clean, noisy = pair
    with pytest.raises(ValueError, match="differ in shape"):
        measure.psnr(clean, noisy[:100])
    with pytest.raises(ValueError, match="differ in shape"):
        measure.difference_image(clean, noisy[..., 0])
    with pytest.raises(ValueError, match="empty"):
        measure.ssim(clean, noisy, np.zeros(clean.shape[:2], bool))
    with pytest.raises(ValueError, match="mask"):
        measure.mse(clean, noisy, np.ones((10, 10), bool))


def test_measure_import_stays_light():
    """The window imports core at start-up: skimage.metrics loads only when measuring."""
    import subprocess
    import sys

    code = "import sys, maskwork.core.measure; print('skimage.metrics' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr
