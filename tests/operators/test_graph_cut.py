"""Two-label graph cuts with contrast-sensitive smoothness."""

import numpy as np

from maskwork.operators.graph_cut import (
    HARD,
    band_cut,
    binary_cut,
    contrast_scale,
    edge_weights,
    grid_edge_weights,
    lab_colours,
    squared_differences,
)


def test_squared_differences_pair_each_pixel_with_its_neighbour():
    lab = np.zeros((3, 4, 3), np.float32)
    lab[1, 2] = (2.0, 0.0, 0.0)
    squared = squared_differences(lab)
    assert squared[(0, 1)][1, 1] == 4 and squared[(0, 1)][1, 2] == 4 and squared[(0, 1)][:, 3].sum() == 0
    assert squared[(1, 0)][0, 2] == 4 and squared[(1, 0)][1, 2] == 4 and squared[(1, 0)][2].sum() == 0
    assert squared[(1, 1)][0, 1] == 4 and squared[(1, -1)][0, 3] == 4
    weights = edge_weights(squared, contrast_scale(squared))
    assert weights[(0, 1)][0, 0] == 1.0 and np.isclose(weights[(1, 1)][0, 0], 1 / np.sqrt(2))
    assert weights[(0, 1)][1, 1] < 1.0


def test_without_smoothness_each_pixel_takes_its_cheaper_label():
    rng = np.random.default_rng(0)
    first, second = rng.random((20, 30)), rng.random((20, 30))
    weights = grid_edge_weights(np.zeros((20, 30, 3), np.uint8))
    np.testing.assert_array_equal(binary_cut(first, second, weights, 0.0), first < second)


def test_smoothness_removes_specks_but_keeps_a_colour_edge():
    image = np.zeros((40, 40, 3), np.uint8)
    image[:, 20:] = 200  # a strong edge down the middle
    costs_left = np.where(np.arange(40) < 20, 0.2, 0.8)[None, :].repeat(40, axis=0)
    costs_left[10, 5] = 0.9  # a speck that prefers the other side
    cut = binary_cut(costs_left, 1.0 - costs_left, grid_edge_weights(image), 5.0)
    assert cut[:, :20].all() and not cut[:, 20:].any()


def test_hard_costs_and_directed_constraints_are_kept():
    first = np.full((5, 5), 1.0)
    second = np.full((5, 5), 2.0)
    second[2, 2] = HARD  # must be first
    first[0, 0] = HARD  # must be second
    weights = grid_edge_weights(np.zeros((5, 5, 3), np.uint8))
    # (1, 1) may be first only when (0, 0) is: (0, 0) is second, so (1, 1) is too.
    cut = binary_cut(first, second, weights, 0.0, (np.array([6]), np.array([0])))
    assert cut[2, 2] and not cut[0, 0] and not cut[1, 1] and cut[3, 3]


def test_lab_colours_keep_the_shape():
    colours = np.array([[[255, 0, 0], [0, 0, 0]]], np.uint8)
    lab = lab_colours(colours)
    assert lab.shape == (1, 2, 3) and lab.dtype == np.float32 and lab[0, 1, 0] == 0 and lab[0, 0, 0] > 100


def test_a_band_cut_equals_the_whole_grid_cut_with_its_surroundings_fixed():
    """Cutting only the band, the decided pixels around it as terminal capacities, gives the
    band the labels of a cut of the whole grid in which those pixels are held by HARD costs."""
    from skimage import data

    image = data.astronaut()[100:220, 150:300]
    lab = lab_colours(image)
    squared = squared_differences(lab)
    contrast = contrast_scale(squared)
    rng = np.random.default_rng(1)
    rows, cols = np.mgrid[: image.shape[0], : image.shape[1]]
    # A disk of first label with a 9 px band around its edge left undecided.
    distance = np.hypot(rows - 60, cols - 75)
    band = np.abs(distance - 40) <= 9
    outside_first = distance < 40
    cost_first, cost_second = rng.random(image.shape[:2]), rng.random(image.shape[:2])
    whole_first = np.where(band, cost_first, np.where(outside_first, 0.0, HARD))
    whole_second = np.where(band, cost_second, np.where(outside_first, HARD, 0.0))
    whole = binary_cut(whole_first, whole_second, edge_weights(squared, contrast), 2.0)
    band_rows, band_cols = np.nonzero(band)
    ours = band_cut(image.shape[:2], band_rows, band_cols, lambda r, c: lab[r, c], outside_first,
                    cost_first[band], cost_second[band], 2.0, contrast)
    np.testing.assert_array_equal(ours, whole[band])
    assert 0.1 < ours.mean() < 0.9
