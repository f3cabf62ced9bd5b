"""Checkerboard and difference views of two images."""

import numpy as np
import pytest
from skimage import data

from maskwork.core import compare


def test_checkerboard_alternates_squares_of_each_image():
    fixed = data.camera()
    moving = 255 - fixed
    board = compare.checkerboard(fixed, moving, size=16)
    assert board.shape == (*fixed.shape, 3)
    np.testing.assert_array_equal(board[0:16, 0:16, 0], fixed[0:16, 0:16])
    np.testing.assert_array_equal(board[0:16, 16:32, 0], moving[0:16, 16:32])
    np.testing.assert_array_equal(board[16:32, 0:16, 1], moving[16:32, 0:16])


def test_difference_is_zero_for_identical_images_and_mixes_depths():
    photo = data.astronaut()
    assert compare.difference(photo, photo).max() == 0
    sixteen = (data.camera().astype(np.uint16) * 257)
    diff = compare.difference(data.camera(), sixteen)
    # Same picture at another depth: only the 16-bit percentile stretch differs.
    assert diff.shape == data.camera().shape and diff.mean() < 15


def test_sizes_must_match():
    with pytest.raises(ValueError, match="register"):
        compare.checkerboard(np.zeros((10, 10)), np.zeros((12, 10)))
