"""Brush, eraser, box, polygon and flood fill as pure functions."""

import numpy as np

from maskwork.core import tools


def test_brush_interpolates_between_distant_mouse_positions():
    data = np.zeros((100, 100), np.uint8)
    patch = tools.brush(data, (10, 10), (10, 90), 2, 1)
    assert not data.any(), "tools never modify their input"
    out = data.copy()
    out[patch.bounds] = patch.values
    # Every column between the two positions is painted: no gaps from a fast drag.
    assert out[10, 10:91].all()
    assert out[:, 10:91].sum(axis=0).min() >= 3
    assert out[13, 50] == 0 and out[5, 50] == 0


def test_brush_footprint_is_a_disc_for_a_click():
    patch = tools.brush(np.zeros((50, 50), np.uint8), (25, 25), (25, 25), 5, 3)
    area = np.count_nonzero(patch.values == 3)
    assert abs(area - np.pi * 25) < 12
    assert patch.values.shape == (11, 11)


def test_brush_clipped_at_border_and_outside_returns_none():
    data = np.zeros((20, 20), np.uint8)
    patch = tools.brush(data, (0, 0), (0, 0), 4, 1)
    assert patch.bounds == (slice(0, 5), slice(0, 5))
    assert tools.brush(data, (-50, -50), (-40, -40), 3, 1) is None


def test_brush_preserve_and_eraser():
    data = np.zeros((20, 20), np.uint8)
    data[10, :] = 2
    patch = tools.brush(data, (10, 0), (10, 19), 3, 1, preserve=[2])
    assert (patch.values[patch.values != 0] != 2).sum() > 0
    out = data.copy()
    out[patch.bounds] = patch.values
    assert (out[10] == 2).all()
    erased = tools.eraser(out, (10, 0), (10, 19), 5)
    out[erased.bounds] = erased.values
    assert not out[5:16].any()


def test_box_and_polygon_fill():
    data = np.zeros((50, 60), np.uint8)
    patch = tools.box(data, (30, 40), (10, 5), 1)
    assert patch.bounds == (slice(10, 31), slice(5, 41)) and patch.values.all()
    triangle = tools.polygon_fill(data, [(10, 10), (10, 50), (40, 10)], 2)
    out = data.copy()
    out[triangle.bounds] = triangle.values
    area = np.count_nonzero(out == 2)
    assert abs(area - 0.5 * 30 * 40) < 80  # boundary pixels count as inside
    assert out[15, 15] == 2 and out[38, 45] == 0
    assert tools.polygon_fill(data, [(1, 1), (2, 2)], 1) is None


def test_flood_fill_same_label_region_and_tolerance_on_image():
    data = np.zeros((30, 30), np.uint8)
    data[:, 15] = 1  # a wall splitting left and right
    patch = tools.flood_fill(data, (5, 5), 3)
    assert patch.bounds == (slice(0, 30), slice(0, 15)) and (patch.values == 3).all()
    image = np.zeros((30, 30, 3), np.uint8)
    image[:, 20:] = (200, 10, 10)
    image[5, 5] = (4, 4, 4)  # within tolerance
    patch = tools.flood_fill(np.zeros((30, 30), np.uint8), (0, 0), 1, reference=image, tolerance=5)
    assert patch.bounds == (slice(0, 30), slice(0, 20))
    assert tools.flood_fill(data, (100, 100), 1) is None
    assert tools.flood_fill(np.full((5, 5), 3, np.uint8), (2, 2), 3) is None
