"""Stretching a reduced partial result over the image."""

import numpy as np

from maskwork.core.resize import resize_to


def test_labels_keep_their_values_and_images_stay_smooth():
    labels = np.array([[1, 7], [7, 1]], np.int64)
    stretched = resize_to(labels, (6, 6), smooth=False)
    assert stretched.shape == (6, 6) and set(np.unique(stretched)) == {1, 7}
    assert stretched[0, 0] == 1 and stretched[0, 5] == 7

    ramp = np.array([[0.0, 1.0]], np.float32)
    smooth = resize_to(ramp, (1, 8), smooth=True)
    assert smooth.shape == (1, 8) and len(np.unique(smooth)) > 2  # in-between values, no steps
    assert resize_to(ramp, (1, 2), smooth=True) is ramp
