"""Marker watershed (three flavours) and splitting touching objects, on real pixels.

The watershed scene is a composite of photos scikit-image ships: the coffee cup photo in
a tilted ellipse and the cat of ``chelsea()`` in a second one, both on ``astronaut()``.
The true labels are known pixel for pixel.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage import data, filters, morphology, segmentation
from skimage.draw import ellipse, line
from skimage.transform import resize

from maskwork.operators import Cancelled, InputError, RunContext, get
from maskwork.operators.segmentation.watershed import _row_modes, h_maxima, resolve_boundaries

WATERSHED = get("watershed")
SPLIT = get("split_objects")
FLAVOURS = [("opencv", "sobel"), ("skimage", "sobel"), ("skimage", "morphological"), ("simpleitk", "sobel"), ("simpleitk", "morphological")]


def _resized(photo: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    return np.round(resize(photo, shape, order=1, anti_aliasing=True, preserve_range=True)).astype(np.uint8)


def iou(mask: np.ndarray, truth: np.ndarray) -> float:
    mask = np.asarray(mask, bool)
    return float(np.count_nonzero(mask & truth) / np.count_nonzero(mask | truth))


def strokes_inside(region: np.ndarray, width: int = 5, margin: int = 12) -> np.ndarray:
    """Two diagonals and a middle line across ``region``, kept ``margin`` px inside it."""
    rows, cols = np.nonzero(region)
    top, bottom, left, right = rows.min(), rows.max(), cols.min(), cols.max()
    middle = int(rows.mean())
    drawn = np.zeros(region.shape, np.uint8)
    for r0, c0, r1, c1 in ((top, left, bottom, right), (bottom, left, top, right), (middle, left, middle, right)):
        rr, cc = line(int(r0), int(c0), int(r1), int(c1))
        drawn[rr, cc] = 1
    drawn = cv2.dilate(drawn, np.ones((width, width), np.uint8))
    inside = cv2.erode(region.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=margin) > 0
    return (drawn > 0) & inside


def loop_around(region: np.ndarray, gap: int = 12, width: int = 5) -> np.ndarray:
    """A closed stroke drawn ``gap`` px outside ``region``."""
    outside = cv2.dilate(region.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=gap) > 0
    return (cv2.dilate(outside.astype(np.uint8), np.ones((width, width), np.uint8)) > 0) & ~outside


@pytest.fixture(scope="module")
def scene():
    """(RGB image, truth labels 1 = cup, 2 = background, 3 = cat) at 240x320."""
    rows, cols = 240, 320
    image = _resized(data.astronaut(), (rows, cols))
    cup, cat = _resized(data.coffee(), (rows, cols)), _resized(data.chelsea(), (rows, cols))
    truth = np.full((rows, cols), 2, np.int32)
    rr, cc = ellipse(0.45 * rows, 0.30 * cols, 0.30 * rows, 0.20 * cols, shape=truth.shape, rotation=0.4)
    truth[rr, cc] = 1
    rr, cc = ellipse(0.55 * rows, 0.75 * cols, 0.28 * rows, 0.18 * cols, shape=truth.shape, rotation=-0.3)
    truth[rr, cc] = 3
    image[truth == 1] = cup[truth == 1]
    image[truth == 3] = cat[truth == 3]
    return image, truth


def two_class_markers(truth: np.ndarray) -> np.ndarray:
    """Foreground strokes across the cup, a background loop around it."""
    cup = truth == 1
    markers = np.zeros(truth.shape, np.uint8)
    markers[loop_around(cup)] = 2
    markers[strokes_inside(cup)] = 1
    return markers


# ------------------------------------------------------------------ marker watershed


@pytest.mark.parametrize("method, gradient", FLAVOURS)
def test_foreground_background_markers(scene, method, gradient):
    image, truth = scene
    markers = two_class_markers(truth)
    result = WATERSHED.run({"image": image, "markers": markers}, {"method": method, "gradient": gradient})
    labels = result["labels"]
    assert labels.dtype == np.int32 and labels.shape == truth.shape
    assert set(np.unique(labels)) == {1, 2}, "every pixel gets a marker's label, never -1 or 0"
    assert iou(labels == 1, truth == 1) >= 0.85


@pytest.mark.parametrize("method", ["opencv", "skimage", "simpleitk"])
def test_three_classes_keep_their_ids(scene, method):
    image, truth = scene
    markers = np.zeros(truth.shape, np.uint16)
    # Class ids need not be 1..N: they come back as they were drawn.
    ids = {1: 7, 2: 300, 3: 4}
    markers[loop_around(truth != 2, gap=8)] = ids[2]
    markers[[0, -1], :] = ids[2]
    markers[:, [0, -1]] = ids[2]
    markers[strokes_inside(truth == 1)] = ids[1]
    markers[strokes_inside(truth == 3)] = ids[3]
    labels = WATERSHED.run({"image": image, "markers": markers}, {"method": method})["labels"]
    assert set(np.unique(labels)) == set(ids.values())
    for cls, drawn in ids.items():
        assert iou(labels == drawn, truth == cls) >= 0.85, f"class {cls}"


def test_compactness_gives_voronoi_cells_on_a_flat_image():
    flat = np.full((60, 90), 120, np.uint8)
    markers = np.zeros(flat.shape, np.uint8)
    seeds = [(15, 20), (45, 30), (30, 75)]
    for label, (row, col) in enumerate(seeds, start=1):
        markers[row, col] = label
    labels = WATERSHED.run({"image": flat, "markers": markers}, {"method": "skimage", "compactness": 1.0})["labels"]
    rows, cols = np.mgrid[:60, :90]
    nearest = np.argmin([(rows - r) ** 2 + (cols - c) ** 2 for r, c in seeds], axis=0) + 1
    assert np.mean(labels == nearest) >= 0.98


def test_deep_and_float_images(scene):
    image, truth = scene
    markers = two_class_markers(truth)
    deep = image.astype(np.uint16) * 257
    floating = image.astype(np.float32) / 255
    floating[:4, :4] = np.nan
    for picture in (deep, floating):
        for method in ("opencv", "simpleitk"):
            labels = WATERSHED.run({"image": picture, "markers": markers}, {"method": method})["labels"]
            assert iou(labels == 1, truth == 1) >= 0.85
    gray = WATERSHED.run({"image": image[..., 1], "markers": markers}, {"method": "skimage"})["labels"]
    assert iou(gray == 1, truth == 1) >= 0.8


def test_progress_and_cancel_inside_simpleitk(scene):
    image, truth = scene
    markers = two_class_markers(truth)
    fractions = []
    WATERSHED.run({"image": image, "markers": markers}, {"method": "simpleitk"}, RunContext(on_progress=lambda f, m: fractions.append(f)))
    assert fractions[-1] == 1.0 and fractions == sorted(fractions) and len(fractions) >= 3

    ctx = RunContext()
    calls = []

    def cancel_inside_itk(fraction, message):
        calls.append(message)
        if "SimpleITK" in message:
            ctx.cancel()

    ctx._on_progress = cancel_inside_itk
    with pytest.raises(Cancelled):
        WATERSHED.run({"image": image, "markers": markers}, {"method": "simpleitk"}, ctx)
    assert not any("done" in message for message in calls)


def test_bad_markers(scene):
    image, truth = scene
    with pytest.raises(InputError, match="two classes"):
        WATERSHED.run({"image": image, "markers": (truth == 1).astype(np.uint8)}, {})
    with pytest.raises(InputError, match="two classes"):
        WATERSHED.run({"image": image, "markers": np.zeros(truth.shape, np.uint8)}, {})
    with pytest.raises(InputError, match="240x320"):
        WATERSHED.run({"image": image, "markers": np.ones((10, 10), np.uint8)}, {})
    negative = two_class_markers(truth).astype(np.int16)
    negative[0, 0] = -1
    with pytest.raises(InputError, match="class ids"):
        WATERSHED.run({"image": image, "markers": negative}, {})
    with pytest.raises(InputError, match="integer"):
        WATERSHED.run({"image": image, "markers": two_class_markers(truth) * 0.5}, {})


def test_opencv_boundaries_go_to_the_majority_neighbour():
    votes = np.array([[-1, 2, 2, 5, -1, 5, 5, 2], [-1] * 8, [3, 3, 1, 1, -1, -1, -1, -1]])
    np.testing.assert_array_equal(_row_modes(votes), [2, -1, 1])
    flooded = np.array(
        [
            [-1, -1, -1, -1, -1, -1],
            [-1, -1, -1, -1, -1, -1],
            [-1, -1, 1, 1, 1, -1],
            [-1, -1, 1, -1, 1, -1],
            [-1, -1, 2, 2, 2, -1],
            [-1, -1, -1, -1, -1, -1],
        ],
        np.int32,
    )
    labels = resolve_boundaries(flooded)
    assert (labels > 0).all(), "pixels two steps from any label are resolved in a second pass"
    assert labels[3, 3] == 1  # five neighbours say 1, three say 2
    assert labels[0, 0] == 1 and labels[5, 5] == 2
    assert (flooded[flooded > 0] == labels[flooded > 0]).all()


# ------------------------------------------------------------------ split touching objects


def _discs(shape, discs):
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    return [(rows - r) ** 2 + (cols - c) ** 2 <= radius**2 for r, c, radius in discs]


@pytest.mark.parametrize("method", ["peaks", "h_maxima"])
def test_two_overlapping_discs_split_in_two(method):
    shape = (200, 260)
    discs = _discs(shape, [(100, 90, 50), (105, 170, 45)])
    mask = discs[0] | discs[1]
    image = data.camera()[: shape[0], : shape[1]]
    labels = SPLIT.run({"image": image, "mask": mask}, {"method": method})["labels"]
    assert labels.dtype == np.int32
    assert set(np.unique(labels)) == {0, 1, 2}
    np.testing.assert_array_equal(labels > 0, mask)
    for disc in discs:
        best = max(iou(labels == k, disc) for k in (1, 2))
        assert best >= 0.9


def test_touching_coins_each_get_a_label():
    """Real shapes: the 24 coins, grown until neighbours touch, are told apart again."""
    coins = data.coins()
    markers = np.zeros(coins.shape, np.int32)
    markers[coins < 30] = 1
    markers[coins > 150] = 2
    reference = ndi.binary_fill_holes(segmentation.watershed(filters.sobel(coins), markers) == 2)
    reference = morphology.remove_small_objects(ndi.label(reference)[0], max_size=50) > 0
    touching = ndi.binary_dilation(reference, iterations=4)
    assert ndi.label(touching)[1] < 24  # some coins now touch
    for method in ("peaks", "h_maxima"):
        labels = SPLIT.run({"image": coins, "mask": touching}, {"method": method})["labels"]
        assert labels.max() == 24 and set(np.unique(labels)) == set(range(25))
        coin_ids, _ = ndi.label(reference)
        grown = [ndi.binary_dilation(coin_ids == k, iterations=4) for k in range(1, 25)]
        scores = [max(iou(labels == j, coin) for j in np.unique(labels[coin & (labels > 0)])) for coin in grown]
        assert min(scores) >= 0.8


def test_h_maxima_matches_scikit_image():
    coins = ndi.binary_fill_holes(data.coins() > 107)
    distance = ndi.distance_transform_edt(coins)
    for h in (0.5, 2.0, 5.0):
        np.testing.assert_array_equal(h_maxima(distance, h), morphology.h_maxima(distance, h).astype(bool))


def test_split_bad_input():
    image = data.camera()[:50, :60]
    with pytest.raises(InputError, match="empty"):
        SPLIT.run({"image": image, "mask": np.zeros((50, 60), bool)}, {})
    with pytest.raises(InputError, match="50x60"):
        SPLIT.run({"image": image, "mask": np.ones((40, 60), bool)}, {})
    colour = np.ones((50, 60, 3), bool)
    colour[..., 1] = False  # channels that differ: not a mask saved as RGB
    with pytest.raises(InputError, match="single-channel"):
        SPLIT.run({"image": image, "mask": colour}, {})
