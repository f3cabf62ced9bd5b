"""Overlap, object and histogram measures."""

import numpy as np
import pytest
from skimage import data, draw

from maskwork.core import measure


def disc(shape, centre, radius):
    out = np.zeros(shape, bool)
    rr, cc = draw.disk(centre, radius, shape=shape)
    out[rr, cc] = True
    return out


def test_iou_and_dice_of_shifted_discs_match_their_formulas():
    a = disc((200, 200), (100, 100), 40)
    b = disc((200, 200), (100, 120), 40)
    inter, union = (a & b).sum(), (a | b).sum()
    assert measure.iou(a, b) == pytest.approx(inter / union)
    assert measure.dice(a, b) == pytest.approx(2 * inter / (a.sum() + b.sum()))
    assert measure.iou(a, a) == 1.0 and measure.iou(np.zeros((3, 3)), np.zeros((3, 3))) == 1.0
    with pytest.raises(ValueError, match="differ in size"):
        measure.iou(a, a[:10])


def test_difference_labels_classes():
    a = np.array([[1, 1, 0, 0]])
    b = np.array([[1, 0, 1, 0]])
    np.testing.assert_array_equal(measure.difference_labels(a, b), [[1, 2, 3, 0]])


def test_object_areas_on_coins_count_the_coins():
    coins = data.coins()
    mask = coins > 110
    from scipy import ndimage as ndi

    mask = ndi.binary_opening(ndi.binary_fill_holes(ndi.binary_closing(mask, iterations=2)), iterations=2)
    areas = measure.object_areas(mask)
    big = [area for area in areas.values() if area > 300]
    assert 20 <= len(big) <= 26  # the photo shows 24 coins
    labels = np.zeros((10, 10), np.uint16)
    labels[:2, :2] = 7
    labels[5:, 5:] = 3
    assert measure.object_areas(labels) == {3: 25, 7: 4}


def test_histogram_of_uint8_colour_and_float_with_nan():
    counts, edges = measure.histogram(data.astronaut())
    assert counts.sum() == 512 * 512 and edges[0] == 0 and edges[-1] == 255
    values = np.array([[0.0, 0.5], [np.nan, 1.0]], np.float32)
    counts, edges = measure.histogram(values, bins=4)
    assert counts.sum() == 3 and edges[0] == 0.0 and edges[-1] == 1.0
