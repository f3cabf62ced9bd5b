"""Hysteresis threshold on real pixels: the coins of scikit-image's photo without the specks.

The reference is test_threshold.py's: scikit-image's tutorial segmentation of the coins (a
Sobel elevation map flooded from markers that are certainly background (< 30) or
certainly coin (> 150)), holes filled; it finds the 24 coins and uses no threshold.
"""

from __future__ import annotations

import numpy as np
import pytest
from skimage import data, filters
from test_threshold import coins, count, iou  # noqa: F401 (coins is a fixture)

from maskwork.operators import InputError, get
from maskwork.operators.registry import Histogram

HYSTERESIS = get("hysteresis_threshold")


def test_otsu_pair_covers_the_coins_as_otsu_does_with_a_fifth_of_the_pieces(coins):
    image, reference = coins
    result = HYSTERESIS.run({"image": image})
    mask = result["mask"]
    otsu = image > filters.threshold_otsu(image)
    # The lenient threshold is Otsu's, so the coins are covered as well as by Otsu alone...
    assert result.scores["threshold_1"] == pytest.approx(filters.threshold_otsu(image), abs=1)
    assert result.scores["threshold_2"] > result.scores["threshold_1"]
    assert iou(mask, reference) >= iou(otsu, reference) - 0.005 and iou(mask, reference) > 0.78
    # ...but the background specks that Otsu keeps (154 pieces for 24 coins) are gone.
    assert count(otsu) > 150
    assert count(mask) <= 32 and count(mask) * 5 < count(otsu)


def test_manual_thresholds_match_scikit_image(coins):
    image, _ = coins
    mask = HYSTERESIS.run({"image": image}, {"method": "manual", "low": 107, "high": 150})["mask"]
    np.testing.assert_array_equal(mask, filters.apply_hysteresis_threshold(image, 107, 150))
    eight = HYSTERESIS.run({"image": image}, {"method": "manual", "low": 107, "high": 150, "connectivity": 8})["mask"]
    assert eight.sum() >= mask.sum() and count(eight) < count(image > 107)


def test_dark_objects_when_inverted_are_the_bright_ones_of_the_negative(coins):
    image, _ = coins
    negative = 255 - image
    bright = HYSTERESIS.run({"image": image}, {"method": "manual", "low": 107.5, "high": 150.5})["mask"]
    dark = HYSTERESIS.run({"image": negative}, {"method": "manual", "low": 104.5, "high": 147.5, "invert": True})["mask"]
    np.testing.assert_array_equal(dark, bright)
    automatic = HYSTERESIS.run({"image": negative}, {"invert": True})["mask"]
    assert iou(automatic, HYSTERESIS.run({"image": image})["mask"]) > 0.97


def test_colour_float_and_nan_pixels():
    photo = data.astronaut()
    as_float = photo.astype(np.float32) / 255
    as_float[:10, :10] = np.nan
    eight_bit = HYSTERESIS.run({"image": photo}, {"method": "manual", "low": 100, "high": 180})["mask"]
    floating = HYSTERESIS.run({"image": as_float}, {"method": "manual", "low": 100 / 255, "high": 180 / 255})["mask"]
    assert not floating[:10, :10].any()
    assert iou(floating[10:, 10:], eight_bit[10:, 10:]) > 0.99


def test_bad_thresholds_are_refused_and_the_panel_shows_the_histogram():
    with pytest.raises(InputError, match="must not be above"):
        HYSTERESIS.run({"image": data.camera()}, {"method": "manual", "low": 200, "high": 100})
    assert HYSTERESIS.panel_views[0] == Histogram()
