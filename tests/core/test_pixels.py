"""The dtype policy of maskwork.core.pixels, on real photos at every depth."""

import numpy as np
import pytest
from skimage import color, data

from maskwork.core import pixels
from maskwork.core.pixels import (
    color_channels,
    display_luminance,
    display_range,
    luminance,
    stretch,
    to_float,
    to_float_display,
    to_uint8_display,
    to_uint8_gray,
    to_uint8_rgb,
    value_range,
)

ASTRONAUT = data.astronaut()
CAMERA = data.camera()


def _with_alpha(rgb: np.ndarray) -> np.ndarray:
    alpha = np.linspace(0, np.iinfo(rgb.dtype).max, rgb.shape[1]).astype(rgb.dtype)
    return np.concatenate([rgb, np.broadcast_to(alpha, rgb.shape[:2])[..., None]], axis=2)


def _twelve_bit(image: np.ndarray) -> np.ndarray:
    """A 12-bit camera's view of an 8-bit photo, stored in uint16 (values 0..4080)."""
    return image.astype(np.uint16) * 16


# ------------------------------------------------------------------ luminance


def test_luminance_of_a_photo_is_skimage_rgb2gray_in_the_photos_units():
    gray = luminance(ASTRONAUT)
    assert gray.dtype == np.float32 and gray.shape == ASTRONAUT.shape[:2]
    np.testing.assert_allclose(gray, color.rgb2gray(ASTRONAUT) * 255, atol=1e-3)


def test_luminance_ignores_alpha_and_keeps_gray_as_it_is():
    np.testing.assert_array_equal(luminance(_with_alpha(ASTRONAUT)), luminance(ASTRONAUT))
    assert luminance(CAMERA) is CAMERA
    np.testing.assert_array_equal(luminance(CAMERA[..., None]), CAMERA)
    np.testing.assert_array_equal(luminance(CAMERA > 128), (CAMERA > 128).astype(np.uint8))


def test_luminance_keeps_nan_so_thresholds_can_leave_it_out():
    photo = ASTRONAUT.astype(np.float64)
    photo[:10, :10, 1] = np.nan
    gray = luminance(photo)
    assert np.isnan(gray[:10, :10]).all() and np.isfinite(gray[10:]).all()


@pytest.mark.parametrize("depth", ["uint8", "twelve_bit", "float_with_nan", "rgba", "gray"])
def test_display_luminance_is_the_luminance_of_the_display_copy(depth):
    """Made a block of rows at a time, the values are exactly those of the whole-image
    conversions; blocks of a few rows (a wide image) and a last partial block included."""
    photo = {
        "uint8": ASTRONAUT,
        "twelve_bit": _twelve_bit(ASTRONAUT),
        "float_with_nan": ASTRONAUT.astype(np.float64) / 300,
        "rgba": _with_alpha(ASTRONAUT),
        "gray": _twelve_bit(CAMERA),
    }[depth]
    if depth == "float_with_nan":
        photo[5:9, :, 2] = np.nan
        photo[40, 7, 0] = np.inf
    wide = np.tile(photo[:101], (1, 45) + (1,) * (photo.ndim - 2))  # 2 rows a block, 1 in the last
    for image in (photo, wide):
        gray = display_luminance(image)
        assert gray.dtype == np.float32 and gray.shape == image.shape[:2]
        np.testing.assert_array_equal(gray, luminance(to_float_display(image)))
        assert np.isfinite(gray).all() and 0.0 <= gray.min() and gray.max() <= 1.0


def test_two_or_five_channels_are_refused():
    for channels in (2, 5):
        with pytest.raises(ValueError, match="gray, RGB or RGBA"):
            color_channels(np.zeros((4, 4, channels), np.uint8))


# ------------------------------------------------------------------ display scaling


def test_to_uint8_display():
    image = np.arange(1000, dtype=np.float64).reshape(20, 50)
    image[0, 0] = np.nan
    out = to_uint8_display(image)
    assert out.dtype == np.uint8 and out[0, 0] == 0 and out[-1, -1] == 255
    np.testing.assert_array_equal(to_uint8_display(image, 0, 999)[1, 0], round(50 * 255 / 999))
    assert to_uint8_display(np.full((4, 4), 7.0)).max() == 0
    uint8 = np.zeros((2, 2), np.uint8)
    assert to_uint8_display(uint8) is uint8


def test_a_12_bit_image_is_displayed_between_its_percentiles():
    deep = _twelve_bit(CAMERA)
    low, high = display_range(deep)
    expected_low, expected_high = np.percentile(CAMERA, pixels.DISPLAY_PERCENTILES) * 16
    assert (low, high) == pytest.approx((expected_low, expected_high))
    shown = to_uint8_display(deep)
    # About 0.5 % of the pixels are at or below the low percentile, as many above the high.
    assert 0.005 <= np.mean(shown == 0) < 0.02 and 0.005 <= np.mean(shown == 255) < 0.02
    # A linear stretch of the same photo: the 8-bit picture it gives is the same as from floats.
    assert np.abs(shown.astype(int) - to_uint8_display(CAMERA.astype(np.float64)).astype(int)).max() <= 1


def test_colour_channels_share_one_scale():
    deep = _twelve_bit(ASTRONAUT)
    shown = to_uint8_display(deep)
    low, high = display_range(deep)
    expected = np.clip(np.rint((deep.astype(np.float64) - low) * 255 / (high - low)), 0, 255)
    assert np.abs(shown.astype(int) - expected).max() <= 1


def test_nan_is_left_out_of_the_range_and_shown_black():
    photo = CAMERA.astype(np.float32) / 255
    photo[100:200, 100:200] = np.nan
    low, high = display_range(photo)
    assert np.isfinite([low, high]).all() and high > low
    shown = to_uint8_display(photo)
    assert (shown[100:200, 100:200] == 0).all()
    assert display_range(np.full((8, 8), np.nan)) is None
    assert to_uint8_display(np.full((8, 8), np.nan)).max() == 0


def test_sparse_finite_values_the_sample_steps_over_still_give_a_range():
    sparse = np.full((3000, 3000), np.nan, np.float32)
    sparse[1, 1], sparse[2, 2] = 10.0, 20.0
    assert display_range(sparse) == pytest.approx((10.05, 19.95))


def test_stretch_keeps_nan_and_steps_at_a_zero_span():
    values = np.array([1.0, 2.0, np.nan, 3.0])
    np.testing.assert_array_equal(stretch(values, 1.0, 3.0, top=255.0), [0.0, 127.5, np.nan, 255.0])
    np.testing.assert_array_equal(stretch(values, 2.0, 2.0), [0.0, 0.0, np.nan, 1.0])


def test_uint8_rgb_for_colour_models():
    rgba = _with_alpha(ASTRONAUT)
    np.testing.assert_array_equal(to_uint8_rgb(rgba), ASTRONAUT)
    assert to_uint8_rgb(rgba).flags.c_contiguous
    assert to_uint8_rgb(ASTRONAUT) is ASTRONAUT
    gray = to_uint8_rgb(CAMERA[..., None])
    assert gray.shape == CAMERA.shape + (3,)
    np.testing.assert_array_equal(gray[..., 2], CAMERA)
    np.testing.assert_array_equal(to_uint8_rgb(_twelve_bit(ASTRONAUT)), to_uint8_display(_twelve_bit(ASTRONAUT)))


def test_uint8_gray_for_detectors_is_the_rounded_luminance_of_what_is_shown():
    gray = to_uint8_gray(ASTRONAUT)
    assert gray.dtype == np.uint8 and gray.flags.c_contiguous
    reference = np.rint(color.rgb2gray(ASTRONAUT) * 255)
    difference = np.abs(gray.astype(int) - reference)
    assert difference.max() <= 1 and difference.mean() < 0.01
    assert to_uint8_gray(CAMERA) is CAMERA
    np.testing.assert_array_equal(to_uint8_gray(_with_alpha(_twelve_bit(ASTRONAUT))),
                                  to_uint8_gray(to_uint8_display(_twelve_bit(ASTRONAUT))))


def test_float_display_copy():
    np.testing.assert_allclose(to_float_display(ASTRONAUT), ASTRONAUT / 255.0, atol=1e-6)
    deep = to_float_display(_twelve_bit(CAMERA))
    assert deep.dtype == np.float32 and deep.min() == 0.0 and deep.max() == 1.0
    np.testing.assert_allclose(deep, to_uint8_display(_twelve_bit(CAMERA)) / 255.0, atol=0.5 / 255 + 1e-6)
    # A dim float photo within [0, 1] is stretched unless its scale is asked for.
    dim = CAMERA.astype(np.float32) / 255 * 0.5
    assert to_float_display(dim).max() == 1.0
    np.testing.assert_array_equal(to_float_display(dim, keep_unit_floats=True), dim)
    with_nan = dim.copy()
    with_nan[0, :] = np.nan
    with_nan[1, :] = np.inf
    out = to_float_display(with_nan, keep_unit_floats=True)
    assert (out[:2] == 0).all() and np.array_equal(out[2:], dim[2:])


# ------------------------------------------------------------------ float conversion


def test_float_copy_divides_integers_by_their_dtype_range():
    assert value_range(ASTRONAUT) == (0.0, 255.0)
    assert value_range(_twelve_bit(CAMERA)) == (0.0, 65535.0)
    assert value_range(CAMERA.astype(np.int16) - 128) == (-32768.0, 65535.0)
    np.testing.assert_allclose(to_float(ASTRONAUT).pixels, ASTRONAUT / 255.0, atol=1e-6)
    np.testing.assert_allclose(to_float(_twelve_bit(CAMERA)).pixels, CAMERA * 16.0 / 65535.0, atol=1e-6)
    signed = to_float(np.array([[-32768, 0, 32767]], np.int16)).pixels
    np.testing.assert_allclose(signed, [[0.0, 32768 / 65535, 1.0]], atol=1e-6)


def test_float_copy_keeps_unit_floats_and_stretches_others():
    unit = CAMERA.astype(np.float32) / 255
    np.testing.assert_array_equal(to_float(unit).pixels, unit)
    assert value_range(np.array([[-5.0, 5.0]])) == (-5.0, 10.0)
    stretched = to_float(np.array([[-5.0, 5.0]])).channels
    assert stretched.shape == (1, 2, 1) and stretched.min() == 0.0 and stretched.max() == 1.0
    with_nan = np.array([[np.nan, 2.0, 4.0]])
    np.testing.assert_array_equal(to_float(with_nan).pixels, [[0.0, 0.0, 1.0]])


def test_float_channels_for_every_depth():
    assert to_float(np.full((2, 2), 65535, np.uint16)).channels.max() == 1.0
    rgba = np.zeros((2, 2, 4), np.uint8)
    assert to_float(rgba).channels.shape == (2, 2, 3)
    stretched = to_float(np.array([[-5.0, 5.0]])).channels
    assert stretched.min() == 0.0 and stretched.max() == 1.0


def test_wider_integers_are_scaled_by_their_values_not_their_dtype_range():
    # 2**32 levels do not fit float32's 24 bits: by the dtype's range, int32 values up to
    # 100000 came back as multiples of 256.
    counts = (CAMERA.astype(np.int32) * 400 - 7)  # -7 .. 101993
    assert value_range(counts) == (-7.0, 102000.0)
    assert value_range(counts.astype(np.uint64) + 7) == (0.0, 102000.0)
    assert value_range(np.array([[3, 3]], np.int32)) == (3.0, 1.0)  # one value: span 1, as for floats


@pytest.mark.parametrize("image", [_with_alpha(ASTRONAUT), _with_alpha(_twelve_bit(ASTRONAUT)), CAMERA[..., None],
                                   CAMERA.astype(np.int16) - 128, CAMERA.astype(np.float32) * 3.5,
                                   CAMERA.astype(np.int32) * 400 - 7, CAMERA.astype(np.uint32) * 60_000 + 4_000_000_000])
def test_float_copy_goes_back_to_the_input_exactly(image):
    copy = to_float(image)
    assert copy.pixels.dtype == np.float32 and 0.0 <= copy.pixels.min() and copy.pixels.max() <= 1.0
    back = copy.to_input_dtype(copy.pixels)
    assert back.dtype == image.dtype and back.shape == image.shape
    if image.dtype.kind == "f":
        np.testing.assert_allclose(back, image, rtol=1e-5, atol=1e-3)
    else:
        np.testing.assert_array_equal(back, image)


def test_float_results_are_clipped_and_rounded_into_the_dtype():
    copy = to_float(ASTRONAUT)
    back = copy.to_input_dtype(copy.pixels * 2.0 - 0.25)
    assert back.dtype == np.uint8
    expected = np.clip(np.rint(np.clip(ASTRONAUT / 255.0 * 2 - 0.25, 0, 1) * 255), 0, 255)
    assert np.abs(back.astype(int) - expected).max() <= 1


# ------------------------------------------------------------------ inputs


@pytest.mark.parametrize("convert", [luminance, display_luminance, display_range, to_uint8_display, to_uint8_rgb, to_uint8_gray,
                                     to_float_display, value_range, lambda image: to_float(image).pixels])
def test_inputs_are_never_modified(convert):
    photo = _with_alpha(_twelve_bit(ASTRONAUT)).astype(np.float32)
    photo[:20, :20] = np.nan
    before = photo.copy()
    convert(photo)
    np.testing.assert_array_equal(photo, before)


def test_pixel_digest_tells_pixels_shape_and_type_apart():
    photo = ASTRONAUT
    assert pixels.pixel_digest(photo) == pixels.pixel_digest(photo.copy())
    assert pixels.pixel_digest(photo[:, ::2]) == pixels.pixel_digest(np.ascontiguousarray(photo[:, ::2]))
    changed = photo.copy()
    changed[100, 100, 1] ^= 1
    others = [changed, photo.reshape(photo.shape[0] // 2, photo.shape[1] * 2, 3), photo.view(np.int8), photo[..., :2]]
    assert len({pixels.pixel_digest(image) for image in [photo, *others]}) == 5
