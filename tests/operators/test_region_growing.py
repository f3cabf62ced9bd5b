"""Region growing from point seeds on real pixels.

Scene: a disc of real sky (a patch of ``camera()``'s sky) pasted onto real brickwork
(``brick()``): the region is homogeneous but not flat, the background is textured and
partly as bright as the sky, and the true mask is known exactly. A second check uses the
coins photo against an independent reference (scikit-image's region-based tutorial
segmentation).
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage import data, filters, segmentation

from maskwork.operators import Cancelled, InputError, Result, RunContext, get

GROW = get("region_growing")
METHODS = ["connected_threshold", "confidence_connected", "fast_marching"]
CENTRE, RADIUS = (100, 120), 45
#: Fast marching stops by time; a person sets it to about the object's radius.
SETTINGS = {"fast_marching": {"stopping_time": 60}}


def iou(mask: np.ndarray, truth: np.ndarray) -> float:
    mask = np.asarray(mask, bool)
    return float(np.count_nonzero(mask & truth) / np.count_nonzero(mask | truth))


def disc(shape, centre, radius) -> np.ndarray:
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    return (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius**2


@pytest.fixture(scope="module")
def scene():
    """(uint8 gray image, true mask) of the sky disc on brick."""
    sky = data.camera()[5:105, 330:430]
    image = data.brick()[:200, :240].copy()
    truth = disc(image.shape, CENTRE, RADIUS)
    top, left = CENTRE[0] - RADIUS, CENTRE[1] - RADIUS
    window = (slice(top, top + 2 * RADIUS + 1), slice(left, left + 2 * RADIUS + 1))
    image[window][truth[window]] = sky[: 2 * RADIUS + 1, : 2 * RADIUS + 1][truth[window]]
    return image, truth


@pytest.mark.parametrize("method", METHODS)
def test_grows_the_sky_disc(scene, method):
    image, truth = scene
    result = GROW.run({"image": image, "points": [(*CENTRE, 1)]}, {"method": method, **SETTINGS.get(method, {})})
    mask = result["mask"]
    assert mask.dtype == bool and mask.shape == truth.shape
    assert iou(mask, truth) >= 0.85
    assert result.scores["area"] == np.count_nonzero(mask)
    rows, cols = result.bounds
    assert mask[rows, cols].sum() == mask.sum()


@pytest.mark.parametrize("method", METHODS)
def test_colour_and_16_bit_give_the_same_region(scene, method):
    image, truth = scene
    params = {"method": method, **SETTINGS.get(method, {})}
    points = [(*CENTRE, 1), (90.4, 131.6, 1)]  # points may be fractional: they are rounded
    gray = GROW.run({"image": image, "points": points}, params)["mask"]
    rgb = GROW.run({"image": np.dstack([image] * 3), "points": points}, params)["mask"]
    np.testing.assert_array_equal(rgb, gray)
    # 16-bit data is stretched to the display scale; its region matches the truth too.
    deep = GROW.run({"image": image.astype(np.uint16) * 257 + 500, "points": points}, params)["mask"]
    assert iou(deep, truth) >= 0.85


def test_coins_from_a_click_on_each():
    coins = data.coins()
    markers = np.zeros(coins.shape, np.int32)
    markers[coins < 30] = 1
    markers[coins > 150] = 2
    reference = ndi.binary_fill_holes(segmentation.watershed(filters.sobel(coins), markers) == 2)
    labels, _ = ndi.label(reference)
    distance = ndi.distance_transform_edt(reference)
    for coin in (1, 5, 10, 20):
        row, col = ndi.maximum_position(distance, labels, coin)
        mask = GROW.run({"image": coins, "points": [(row, col, 1)]}, {"method": "confidence_connected"})["mask"]
        assert iou(mask, labels == coin) >= 0.9, f"coin {coin}"


def test_fast_marching_previews_the_growing_front(scene):
    image, truth = scene
    partials, fractions = [], []
    ctx = RunContext(on_progress=lambda f, m: fractions.append(f), on_partial=partials.append)
    params = {"method": "fast_marching", "stopping_time": 60}
    result = GROW.run({"image": image, "points": [(*CENTRE, 1)]}, params, ctx)
    assert len(partials) == 3
    areas = [np.count_nonzero(p["mask"]) for p in partials] + [np.count_nonzero(result["mask"])]
    assert areas == sorted(areas) and areas[0] > 0
    for partial in partials:
        assert isinstance(partial, Result) and partial["mask"].dtype == bool
        assert not (partial["mask"] & ~result["mask"]).any(), "the front only grows"
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    # Previews change nothing in the result.
    alone = GROW.run({"image": image, "points": [(*CENTRE, 1)]}, params)["mask"]
    np.testing.assert_array_equal(alone, result["mask"])
    assert iou(result["mask"], truth) >= 0.85


def test_confidence_connected_previews_each_iteration(scene):
    image, _ = scene
    partials = []
    result = GROW.run(
        {"image": image, "points": [(*CENTRE, 1)]},
        {"method": "confidence_connected", "iterations": 3},
        RunContext(on_partial=partials.append),
    )
    assert [p.iterations for p in partials] == [0, 1, 2] and result.iterations == 3
    alone = GROW.run({"image": image, "points": [(*CENTRE, 1)]}, {"method": "confidence_connected", "iterations": 3})
    np.testing.assert_array_equal(alone["mask"], result["mask"])


def test_negative_points_are_walls(scene):
    """Two sky discs joined by a narrow sky bridge: a negative point on the bridge cuts it."""
    image, truth = scene
    sky = data.camera()[5:105, 330:430]
    picture = data.brick()[:200, :300].copy()
    left, right = disc(picture.shape, (100, 70), 40), disc(picture.shape, (100, 230), 40)
    bridge = np.zeros(picture.shape, bool)
    bridge[97:104, 100:200] = True
    region = left | right | bridge
    picture[region] = np.resize(sky, picture.shape)[region]
    params = {"method": "connected_threshold"}
    leaked = GROW.run({"image": picture, "points": [(100, 70, 1)]}, params)["mask"]
    assert iou(leaked, region) >= 0.85
    cut = GROW.run({"image": picture, "points": [(100, 70, 1), (100, 150, 0)]}, params)["mask"]
    assert iou(cut, left) >= 0.85 and not (cut & right).any()
    assert not cut[100, 150]
    ignored = GROW.run({"image": picture, "points": [(100, 70, 1), (100, 150, 0)]}, {**params, "barrier_radius": 0})
    np.testing.assert_array_equal(ignored["mask"], leaked)
    for method in METHODS:
        walled = GROW.run({"image": image, "points": [(*CENTRE, 1), (80, 120, 0)]}, {"method": method, **SETTINGS.get(method, {})})
        assert not walled["mask"][80, 120]


def test_cancel_while_growing(scene):
    image, _ = scene
    ctx = RunContext()
    seen = []

    def cancel_after_first(partial):
        seen.append(partial)
        ctx.cancel()

    ctx._on_partial = cancel_after_first
    with pytest.raises(Cancelled):
        GROW.run({"image": image, "points": [(*CENTRE, 1)]}, {"method": "fast_marching"}, ctx)
    assert len(seen) == 1
    cancelled = RunContext()
    cancelled.cancel()
    with pytest.raises(Cancelled):
        GROW.run({"image": image, "points": [(*CENTRE, 1)]}, {"method": "connected_threshold"}, cancelled)


@pytest.mark.parametrize(
    "points, message",
    [
        ([(10, 500, 1)], "outside"),
        ([(-1, 5, 1)], "outside"),
        ([(10, 10, 0)], "positive"),
        ([], "positive"),
        (None, "positive"),
        ([(10, 10, 2)], "label"),
        ([(10, 10)], "row, col, label"),
        ([("a", 10, 1)], "row, col, label"),
        ([(float("nan"), 10, 1)], "position"),
    ],
)
def test_bad_points(scene, points, message):
    image, _ = scene
    with pytest.raises(InputError, match=message):
        GROW.func(image, points)


def test_bad_image():
    with pytest.raises(InputError, match="finite"):
        GROW.run({"image": np.full((20, 20), np.nan), "points": [(5, 5, 1)]}, {})
    with pytest.raises(InputError):
        GROW.run({"image": np.zeros((20, 20, 2)), "points": [(5, 5, 1)]}, {})


def test_nan_pixels_are_walls(scene):
    image, truth = scene
    floating = image.astype(np.float32)
    floating[CENTRE[0] - 2, CENTRE[1] + 1] = np.nan  # one next to the seed
    floating[:, CENTRE[1] + 20] = np.nan  # a line across the disc
    left = truth.copy()
    left[:, CENTRE[1] + 20 :] = False
    for method in METHODS:
        mask = GROW.run({"image": floating, "points": [(*CENTRE, 1)]}, {"method": method, **SETTINGS.get(method, {})})["mask"]
        assert not mask[:, CENTRE[1] + 20 :].any(), method
        assert iou(mask, left) >= 0.85, method
