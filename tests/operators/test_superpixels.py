"""Superpixels and merging them under scribbles, on real photos with a known answer.

The composite is the cat of ``chelsea()`` pasted into a tilted ellipse on ``astronaut()``:
two real, textured photos whose seam (the ellipse outline) is known pixel for pixel.
"""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
from skimage import data
from skimage.draw import ellipse
from skimage.segmentation import find_boundaries
from skimage.transform import resize

from maskwork.operators import Cancelled, InputError, RunContext, get
from maskwork.operators.segmentation import superpixels as module
from maskwork.operators.segmentation.superpixels import boundaries, region_adjacency

SUPERPIXELS = get("superpixels")
MERGE = get("merge_superpixels")


def _resized(photo: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    out = resize(photo, shape, order=1, anti_aliasing=True, preserve_range=True)
    return np.round(out).astype(np.uint8)


def _ellipse(shape, scale: float = 1.0) -> np.ndarray:
    rows, cols = shape
    out = np.zeros(shape, bool)
    rr, cc = ellipse(rows / 2, cols / 2, 0.36 * rows * scale, 0.30 * cols * scale, shape=shape, rotation=0.3)
    out[rr, cc] = True
    return out


def composite(rows: int = 300, cols: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 image, boolean truth) of the cat-in-an-ellipse picture."""
    truth = _ellipse((rows, cols))
    image = _resized(data.astronaut(), (rows, cols))
    image[truth] = _resized(data.chelsea(), (rows, cols))[truth]
    return image, truth


def scribbles(truth: np.ndarray) -> np.ndarray:
    """A 5 px foreground cross inside the ellipse and a 3 px background loop around it."""
    rows, cols = truth.shape
    markers = np.zeros(truth.shape, np.uint8)
    loop = find_boundaries(_ellipse(truth.shape, 1.18), mode="inner")
    markers[cv2.dilate(loop.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0] = 2
    r, c = rows // 2, cols // 2
    markers[r - 2 : r + 3, int(0.32 * cols) : int(0.68 * cols)] = 1
    markers[int(0.25 * rows) : int(0.75 * rows), c - 2 : c + 3] = 1
    assert not truth[markers == 2].any() and truth[markers == 1].all()
    return markers


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return np.count_nonzero(a & b) / np.count_nonzero(a | b)


def boundary_recall(labels: np.ndarray, edge: np.ndarray, tolerance: int = 2) -> float:
    """Share of the true edge pixels within ``tolerance`` px of a superpixel boundary."""
    size = 2 * tolerance + 1
    near = cv2.dilate(boundaries(labels).astype(np.uint8), np.ones((size, size), np.uint8)) > 0
    return float(near[edge].mean())


@pytest.fixture(scope="module")
def picture():
    image, truth = composite()
    return image, truth, scribbles(truth)


# ---------------------------------------------------------------------------- superpixels


def test_slic_count_is_close_to_n_segments_on_the_astronaut():
    result = SUPERPIXELS.run({"image": data.astronaut()}, {"method": "slic", "n_segments": 400})
    labels = result["labels"]
    count = int(labels.max())
    assert labels.shape == (512, 512) and labels.dtype == np.int32
    assert 200 <= count <= 600, count
    assert result.scores["superpixels"] == count
    # Labels are 1..K with none missing.
    np.testing.assert_array_equal(np.unique(labels), np.arange(1, count + 1))


@pytest.mark.parametrize("method", ["slic", "felzenszwalb"])
def test_superpixels_follow_the_seam_of_the_composite(picture, method):
    image, truth, _ = picture
    labels = SUPERPIXELS.run({"image": image}, {"method": method})["labels"]
    edge = find_boundaries(truth, mode="inner")
    recall = boundary_recall(labels, edge)
    # A square grid with as many cells has boundaries just as dense but blind to the seam.
    count = int(labels.max())
    step = max(2, round(np.sqrt(truth.size / count)))
    rows, cols = np.indices(truth.shape)
    grid = (rows // step) * (truth.shape[1] // step + 1) + cols // step + 1
    grid_recall = boundary_recall(grid, edge)
    assert recall >= 0.9, (recall, grid_recall)
    assert recall >= grid_recall + 0.25, (recall, grid_recall)


def test_felzenszwalb_labels_start_at_one(picture):
    image, _, _ = picture
    labels = SUPERPIXELS.run({"image": image[:120, :160]}, {"method": "felzenszwalb", "scale": 50})["labels"]
    assert labels.min() == 1
    np.testing.assert_array_equal(np.unique(labels), np.arange(1, labels.max() + 1))


def test_boundaries_helper_marks_the_seam_only():
    labels = np.ones((6, 8), np.int32)
    labels[:, 4:] = 2
    edges = boundaries(labels)
    assert edges.dtype == bool and edges.shape == labels.shape
    assert set(np.flatnonzero(edges.any(axis=0))) == {3, 4}
    assert not boundaries(np.ones((5, 5), int)).any()


def test_region_adjacency_lists_each_neighbour_pair_once():
    labels = np.array([[1, 1, 2], [3, 3, 2], [3, 4, 4]])
    first, second = region_adjacency(labels)
    assert sorted(zip(first.tolist(), second.tolist())) == [(1, 2), (1, 3), (2, 3), (2, 4), (3, 4)]


def test_returned_labels_are_a_private_copy(picture):
    image, _, _ = picture
    small = np.ascontiguousarray(image[:100, :120])
    first = SUPERPIXELS.run({"image": small}, {})["labels"]
    first[:] = 0
    again = SUPERPIXELS.run({"image": small}, {})["labels"]
    assert again.min() == 1


def test_large_images_work_on_a_downsampled_copy(picture):
    image, truth, markers = picture
    result = MERGE.run({"image": image, "markers": markers}, {"coarse_megapixels": 0.04})
    assert result.scores["working_scale"] < 0.6
    assert result["mask"].shape == truth.shape
    assert iou(result["mask"], truth) >= 0.85
    labels = SUPERPIXELS.run({"image": image}, {"coarse_megapixels": 0.04})["labels"]
    assert labels.shape == truth.shape and labels.min() == 1


# ---------------------------------------------------------------------------- merging


@pytest.mark.parametrize(
    "params",
    [{}, {"method": "felzenszwalb"}, {"path_cost": "sum", "method": "felzenszwalb"}],
    ids=["slic-max", "felzenszwalb-max", "felzenszwalb-sum"],
)
def test_merge_superpixels_recovers_the_ellipse(picture, params):
    image, truth, markers = picture
    result = MERGE.run({"image": image, "markers": markers}, params)
    mask = result["mask"]
    assert mask.dtype == bool and mask.shape == truth.shape
    assert iou(mask, truth) >= 0.85, iou(mask, truth)
    # The scribbles themselves end up on their side.
    assert mask[markers == 1].mean() >= 0.98
    assert not mask[markers == 2].mean() > 0.02
    assert result.scores["superpixels"] >= result.scores["foreground_superpixels"] > 0


def test_merge_is_deterministic_and_fast_when_only_scribbles_change(picture):
    image, truth, markers = picture
    first = MERGE.run({"image": image, "markers": markers}, {})["mask"]
    start = time.perf_counter()
    again = MERGE.run({"image": image, "markers": markers}, {})["mask"]
    repeat_seconds = time.perf_counter() - start
    np.testing.assert_array_equal(first, again)
    assert repeat_seconds < 0.5  # the superpixels came from the cache


def test_merge_works_on_16_bit_gray(picture):
    image, truth, markers = picture
    gray = (image.astype(np.float64) @ [0.299, 0.587, 0.114] * 257).astype(np.uint16)
    mask = MERGE.run({"image": gray, "markers": markers}, {})["mask"]
    assert iou(mask, truth) >= 0.75  # measured 0.84; in colour 0.91


def test_merge_needs_both_kinds_of_scribbles(picture):
    image, _, markers = picture
    with pytest.raises(InputError, match="foreground scribbles"):
        MERGE.run({"image": image, "markers": np.where(markers == 1, 0, markers)}, {})
    with pytest.raises(InputError, match="background scribbles"):
        MERGE.run({"image": image, "markers": np.where(markers == 2, 0, markers)}, {})
    with pytest.raises(InputError, match="markers"):
        MERGE.run({"image": image, "markers": markers[:-1]}, {})
    with pytest.raises(InputError, match="foreground scribbles"):
        MERGE.run({"image": image}, {})


@pytest.mark.parametrize("stage", [0.6, 0.8])
def test_merge_stops_at_its_checkpoints(picture, stage):
    image, _, markers = picture
    ctx = RunContext(on_progress=lambda fraction, _: ctx.cancel() if fraction >= stage else None)
    with pytest.raises(Cancelled):
        MERGE.run({"image": image, "markers": markers}, {}, ctx)


def test_forest_respects_seeds_and_follows_the_cheapest_largest_step():
    # Chain 1 - 2 - 3 - 4 with a strong edge between 2 and 3: seeds at the ends.
    first, second = np.array([1, 2, 3]), np.array([2, 3, 4])
    weights = np.array([1.0, 50.0, 2.0])
    seeds = np.array([0, 1, 0, 0, 2], np.int8)
    classes = module._forest_classes(4, first, second, weights, seeds, RunContext())
    assert classes[1:].tolist() == [1, 1, 2, 2]
    geodesic = module._geodesic_classes(4, first, second, weights, seeds)
    assert geodesic[1:].tolist() == [1, 1, 2, 2]
