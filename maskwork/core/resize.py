"""Resizing layers to another layer's size: labels stay labels, images stay smooth."""

from __future__ import annotations

import cv2
import numpy as np


def resize_nearest(array: np.ndarray, shape) -> np.ndarray:
    """``array`` resized to ``shape[:2]`` (rows, cols) by nearest neighbour, any dtype.

    Each output pixel takes the input pixel under its centre, so labels stay labels.
    Returns ``array`` itself when the size already matches.
    """
    rows, cols = shape[:2]
    if array.shape[:2] == (rows, cols):
        return array
    source_rows = np.minimum((np.arange(rows) + 0.5) * array.shape[0] / rows, array.shape[0] - 1).astype(np.intp)
    source_cols = np.minimum((np.arange(cols) + 0.5) * array.shape[1] / cols, array.shape[1] - 1).astype(np.intp)
    return array[source_rows[:, None], source_cols[None, :]]


def resize_to(array: np.ndarray, shape, smooth: bool) -> np.ndarray:
    """``array`` resized to ``shape[:2]``: bilinear when ``smooth`` (images), else nearest.

    Used to stretch a partial result computed on a reduced copy (a CNN's first epochs)
    over the image until the full-size result arrives.
    """
    if not smooth or array.shape[:2] == tuple(shape[:2]):
        return resize_nearest(array, shape)
    return cv2.resize(np.ascontiguousarray(array), (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
