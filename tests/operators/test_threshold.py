"""Thresholds and multi-Otsu on real pixels, plus the histogram the panel draws.

The reference for the coins photo is built independently of any threshold: the
region-based segmentation of scikit-image's tutorial (a Sobel elevation map flooded from
markers that are certainly background (< 30) or certainly coin (> 150)), holes filled.
It finds the 24 coins.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage import data, filters, segmentation
from skimage.color import rgb2gray

from maskwork.operators import Cancelled, InputError, RunContext, get
from maskwork.operators.segmentation.threshold import histogram, luminance, multiotsu_thresholds

THRESHOLD = get("threshold")
MULTI_OTSU = get("multi_otsu")


def iou(mask: np.ndarray, truth: np.ndarray) -> float:
    mask = np.asarray(mask, bool)
    return float(np.count_nonzero(mask & truth) / np.count_nonzero(mask | truth))


def clean(mask: np.ndarray, min_area: int = 100) -> np.ndarray:
    """Fill holes and drop specks smaller than ``min_area`` pixels."""
    filled = ndi.binary_fill_holes(mask)
    labels, count = ndi.label(filled)
    areas = ndi.sum(filled, labels, np.arange(1, count + 1))
    return np.isin(labels, np.flatnonzero(areas >= min_area) + 1)


def count(mask: np.ndarray) -> int:
    return int(ndi.label(mask)[1])


@pytest.fixture(scope="module")
def coins():
    image = data.coins()
    markers = np.zeros(image.shape, np.int32)
    markers[image < 30] = 1
    markers[image > 150] = 2
    reference = clean(segmentation.watershed(filters.sobel(image), markers) == 2)
    assert count(reference) == 24
    return image, reference


# ------------------------------------------------------------------ global thresholds


def test_otsu_finds_the_24_coins(coins):
    image, reference = coins
    result = THRESHOLD.run({"image": image}, {"method": "otsu"})
    mask = result["mask"]
    assert mask.dtype == bool and mask.shape == image.shape
    assert result.scores["threshold"] == pytest.approx(filters.threshold_otsu(image))
    np.testing.assert_array_equal(mask, image > result.scores["threshold"])
    # Global Otsu is known to lose the dim coins' edges under the uneven light, but it
    # still separates every coin.
    assert count(clean(mask)) == 24
    assert iou(clean(mask), reference) >= 0.80


@pytest.mark.parametrize("method, floor", [("li", 0.70), ("yen", 0.80), ("max_entropy", 0.85), ("triangle", 0.55)])
def test_global_methods_on_coins(coins, method, floor):
    image, reference = coins
    result = THRESHOLD.run({"image": image}, {"method": method})
    level = result.scores["threshold"]
    assert image.min() < level < image.max()
    np.testing.assert_array_equal(result["mask"], image > level)
    assert iou(clean(result["mask"]), reference) >= floor


def kapur_threshold(image: np.ndarray) -> int:
    """Maximum-entropy (Kapur) threshold of an 8-bit image, written out in NumPy."""
    counts = np.bincount(image.ravel(), minlength=256).astype(float)
    p = counts / counts.sum()
    best, best_t = -np.inf, 0
    for t in range(255):
        low, high = p[: t + 1], p[t + 1 :]
        w0, w1 = low.sum(), high.sum()
        if w0 <= 0 or w1 <= 0:
            continue
        q0, q1 = low[low > 0] / w0, high[high > 0] / w1
        entropy = -(q0 * np.log(q0)).sum() - (q1 * np.log(q1)).sum()
        if entropy > best:
            best, best_t = entropy, t
    return best_t


def test_max_entropy_agrees_with_kapur(coins):
    image, _ = coins
    level = THRESHOLD.run({"image": image}, {"method": "max_entropy"}).scores["threshold"]
    # ITK bins the range [min, max] into 256 bins, so it may sit a gray level or two off.
    assert abs(level - kapur_threshold(image)) <= 2


def test_manual_and_invert(coins):
    image, _ = coins
    manual = THRESHOLD.run({"image": image}, {"method": "manual", "value": 107})
    assert manual.scores["threshold"] == 107
    np.testing.assert_array_equal(manual["mask"], image > 107)
    inverted = THRESHOLD.run({"image": image}, {"method": "manual", "value": 107, "invert": True})["mask"]
    np.testing.assert_array_equal(inverted, image <= 107)


# ------------------------------------------------------------------ local thresholds


@pytest.mark.parametrize("method", ["local", "adaptive"])
def test_local_thresholds_beat_global_otsu_under_uneven_light(coins, method):
    image, reference = coins
    otsu = clean(THRESHOLD.run({"image": image}, {"method": "otsu"})["mask"])
    result = THRESHOLD.run({"image": image}, {"method": method, "block_size": 95, "offset": -10})
    assert "threshold" not in result.scores
    local = clean(result["mask"])
    assert iou(local, reference) >= 0.95
    assert iou(local, reference) > iou(otsu, reference) + 0.1
    assert abs(count(local) - 24) <= 4


def test_adaptive_on_16_bit_follows_opencv_8_bit_rule(coins):
    image, _ = coins
    eight = THRESHOLD.run({"image": image}, {"method": "adaptive", "block_size": 51, "offset": -5})["mask"]
    deep = THRESHOLD.run({"image": image.astype(np.uint16) * 257}, {"method": "adaptive", "block_size": 51, "offset": -5 * 257})
    # OpenCV rounds its 8-bit local means; the float rule differs only at those ties.
    assert np.mean(eight == deep["mask"]) >= 0.99


def test_even_block_size_is_rounded_up(coins):
    image, _ = coins
    even = THRESHOLD.run({"image": image}, {"method": "local", "block_size": 50})["mask"]
    odd = THRESHOLD.run({"image": image}, {"method": "local", "block_size": 51})["mask"]
    np.testing.assert_array_equal(even, odd)


# ------------------------------------------------------------------ dtypes, colour, NaN


def test_16_bit_and_float_give_the_same_mask(coins):
    image, _ = coins
    expected = THRESHOLD.run({"image": image}, {"method": "otsu"})["mask"]
    deep = THRESHOLD.run({"image": image.astype(np.uint16) * 257}, {"method": "otsu"})
    # 16-bit data is binned into 256 bins over its own range, not on the 8-bit levels.
    assert abs(deep.scores["threshold"] / 257 - 107) <= 1.5
    assert iou(deep["mask"], expected) >= 0.98
    floating = THRESHOLD.run({"image": image / 255.0}, {"method": "otsu"})
    assert abs(floating.scores["threshold"] * 255 - 107) <= 1.5
    assert iou(floating["mask"], expected) >= 0.98


def test_colour_uses_luminance():
    photo = data.astronaut()
    result = THRESHOLD.run({"image": photo}, {"method": "otsu"})
    gray = rgb2gray(photo) * 255
    assert result.scores["threshold"] == pytest.approx(filters.threshold_otsu(gray), abs=0.5)
    assert np.mean(result["mask"] == (gray > result.scores["threshold"])) >= 0.999
    rgba = np.dstack([photo, np.full(photo.shape[:2], 7, np.uint8)])
    np.testing.assert_array_equal(THRESHOLD.run({"image": rgba}, {"method": "otsu"})["mask"], result["mask"])


@pytest.mark.parametrize("method", ["otsu", "local", "adaptive", "max_entropy"])
def test_nan_pixels_are_never_in_the_mask(coins, method):
    image, _ = coins
    floating = image.astype(np.float32)
    floating[100:140, 150:200] = np.nan
    for invert in (False, True):
        mask = THRESHOLD.run({"image": floating}, {"method": method, "invert": invert})["mask"]
        assert not mask[100:140, 150:200].any()
        assert mask.any()
    if method == "otsu":
        level = THRESHOLD.run({"image": floating}, {"method": method}).scores["threshold"]
        assert level == pytest.approx(filters.threshold_otsu(floating[np.isfinite(floating)]))


def test_constant_image_gives_an_empty_mask():
    result = THRESHOLD.run({"image": np.full((20, 30), 9, np.uint8)}, {"method": "li"})
    assert result.scores["threshold"] == 9 and not result["mask"].any()


def test_bad_input():
    with pytest.raises(InputError, match="finite"):
        THRESHOLD.run({"image": np.full((20, 30), np.nan)}, {})
    with pytest.raises(InputError):
        THRESHOLD.run({"image": np.zeros((4, 5, 6, 7))}, {})
    with pytest.raises(InputError):
        THRESHOLD.run({"image": data.coins()}, {"method": "median"})
    with pytest.raises(InputError, match="distinct"):
        MULTI_OTSU.run({"image": np.tile(np.array([0, 255], np.uint8), (10, 10))}, {"classes": 3})


def test_cancel():
    ctx = RunContext()
    ctx.cancel()
    with pytest.raises(Cancelled):
        THRESHOLD.run({"image": data.coins()}, {"method": "max_entropy"}, ctx)
    with pytest.raises(Cancelled):
        MULTI_OTSU.run({"image": data.coins()}, {}, ctx)


# ------------------------------------------------------------------ multi-Otsu


def three_levels() -> tuple[np.ndarray, np.ndarray]:
    """A dark background, a mid-gray disc and a bright box, all textured with gravel."""
    texture = data.gravel()[:240, :320].astype(np.float32)
    texture = (texture - texture.mean()) * 0.3  # about 12 gray levels of real grain
    rows, cols = np.ogrid[:240, :320]
    truth = np.ones((240, 320), np.int32)
    truth[(rows - 120) ** 2 + (cols - 100) ** 2 <= 70**2] = 2
    truth[60:200, 200:300] = 3
    image = np.choose(truth - 1, [50.0, 125.0, 200.0]) + texture
    return np.clip(np.round(image), 0, 255).astype(np.uint8), truth


def test_multi_otsu_recovers_three_textured_levels():
    image, truth = three_levels()
    result = MULTI_OTSU.run({"image": image}, {"classes": 3})
    labels = result["labels"]
    assert labels.dtype == np.int32 and set(np.unique(labels)) == {1, 2, 3}
    assert np.mean(labels == truth) >= 0.9
    levels = [result.scores["threshold_1"], result.scores["threshold_2"]]
    np.testing.assert_allclose(levels, filters.threshold_multiotsu(image, classes=3))
    assert 50 < levels[0] < 125 < levels[1] < 200


def test_multi_otsu_matches_scikit_image_and_stays_fast():
    for image in (data.coins(), data.camera(), luminance(data.astronaut())):
        for classes in (2, 3, 4):
            np.testing.assert_allclose(
                multiotsu_thresholds(image.ravel(), classes), filters.threshold_multiotsu(image, classes=classes)
            )
    # scikit-image tries every combination (minutes for 6 classes on 16-bit data).
    deep = data.camera().astype(np.uint16) * 257
    start = time.perf_counter()
    result = MULTI_OTSU.run({"image": deep}, {"classes": 6})
    assert time.perf_counter() - start < 2.0
    assert set(np.unique(result["labels"])) == set(range(1, 7))
    levels = [result.scores[f"threshold_{i}"] for i in range(1, 6)]
    assert levels == sorted(levels)


def test_multi_otsu_nan_gets_label_0():
    image, truth = three_levels()
    floating = image.astype(np.float64)
    floating[:10] = np.nan
    labels = MULTI_OTSU.run({"image": floating}, {"classes": 3})["labels"]
    assert (labels[:10] == 0).all() and np.mean(labels[10:] == truth[10:]) >= 0.9


# ------------------------------------------------------------------ histogram


def test_histogram_uint8_has_one_bin_per_level():
    image = data.coins()
    counts, edges = histogram(image)
    assert counts.shape == (256,) and edges.shape == (257,)
    assert edges[0] == 0 and edges[-1] == 256
    np.testing.assert_array_equal(counts, np.bincount(image.ravel(), minlength=256))


def test_histogram_of_other_dtypes():
    deep = data.coins().astype(np.uint16) * 257 + 1000
    counts, edges = histogram(deep, bins=64)
    assert counts.sum() == deep.size and counts.shape == (64,)
    assert edges[0] == deep.min() and edges[-1] == deep.max() + 1

    floating = data.coins() / 255.0
    floating[:5] = np.nan
    floating[5, 0] = np.inf
    counts, edges = histogram(floating)
    assert counts.sum() == np.isfinite(floating).sum()
    assert edges[0] == pytest.approx(np.nanmin(floating[np.isfinite(floating)]))

    colour = data.astronaut()
    counts, edges = histogram(colour)
    assert counts.sum() == colour.shape[0] * colour.shape[1] and edges[-1] == 256
    # The threshold drawn on it is in the same units.
    level = THRESHOLD.run({"image": colour}, {}).scores["threshold"]
    assert edges[0] < level < edges[-1]

    counts, edges = histogram(np.full((8, 8), np.nan))
    assert counts.sum() == 0 and len(edges) == 257
    counts, edges = histogram(np.full((8, 8), 0.5, np.float32))
    assert counts.sum() == 64 and edges[0] < 0.5 < edges[-1]


@pytest.mark.parametrize("scale, dtype", [(1, np.uint8), (257, np.uint16), (1 / 255, np.float32)])
def test_the_forms_suggestion_says_the_units_and_gives_manual_values_that_split_the_image(scale, dtype):
    from maskwork.operators.segmentation.hysteresis import hysteresis_suggestion
    from maskwork.operators.segmentation.threshold import threshold_suggestion

    coins = (data.coins().astype(np.float64) * scale).astype(dtype)
    text, values = threshold_suggestion(coins)
    assert text.startswith(f"Gray values run {int(coins.min()) if dtype != np.float32 else ''}")
    assert values["method"] == "manual"
    mask = get("threshold").run({"image": coins}, values)["mask"]
    assert 0.1 < mask.mean() < 0.6, "the coins, not all or nothing (128 took all of a 16-bit image)"
    text, values = hysteresis_suggestion(coins)
    assert "by Otsu: low" in text and values["low"] < values["high"]
    mask = get("hysteresis_threshold").run({"image": coins}, values)["mask"]
    assert 0.05 < mask.mean() < 0.6
