"""The field's simulated user for interactive segmentation: clicks until a target IoU.

The protocol of Xu et al. (2016) with the click rule of RITM (Sofiiuk et al., 2021): after
each result, the next click goes to the pixel farthest from the boundary inside the larger
error region (false negatives against false positives), the image border counting as
boundary. A click in the false negatives is an object click (label 1), one in the false
positives a background click (label 0); with an empty first result the first click lands
deep inside the object. NoC@t is the number of clicks until the IoU reaches t (the
maximum when it never does).

Ground truths may carry an "unknown" band (the GrabCut set marks it 128): pixels where
``valid`` is False count neither as errors nor in the IoU.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

#: A click: (row, col, label) with label 1 = object, 0 = not object.
Click = tuple[int, int, int]


def masked_iou(mask: np.ndarray, truth: np.ndarray, valid: np.ndarray | None = None) -> float:
    """IoU of boolean ``mask`` with boolean ``truth`` over the ``valid`` pixels (all if None)."""
    mask, truth = np.asarray(mask, bool), np.asarray(truth, bool)
    if valid is not None:
        mask, truth = mask & valid, truth & valid
    union = np.count_nonzero(mask | truth)
    return float(np.count_nonzero(mask & truth) / union) if union else 1.0


def next_click(
    prediction: np.ndarray,
    truth: np.ndarray,
    valid: np.ndarray | None = None,
    clicked: np.ndarray | None = None,
) -> Click | None:
    """Where the simulated user clicks next (RITM's rule), or None when nothing is wrong.

    Parameters
    ----------
    prediction, truth : ndarray of bool
        The current result and the ground truth, (row, col).
    valid : ndarray of bool, optional
        Pixels that count; errors elsewhere (an unknown band) are ignored.
    clicked : ndarray of bool, optional
        Pixels already clicked: never chosen again, so a click that changed nothing does
        not repeat forever.

    Returns
    -------
    (row, col, label) or None
        The pixel deepest inside the larger error region (first in raster order among
        equals, so the rule is deterministic) and 1 for a missed object pixel, 0 for a
        wrongly included one.
    """
    # Imported here, not with the module: operators import this module for
    # clicks_to_markers at a run's start, in the worker, where importing scipy.ndimage
    # held the GIL long enough to stall the window (15-23 ms gaps at the first GrabCut Apply).
    from scipy import ndimage

    prediction, truth = np.asarray(prediction, bool), np.asarray(truth, bool)
    allowed = np.ones(truth.shape, bool) if valid is None else np.asarray(valid, bool)
    if clicked is not None:
        allowed = allowed & ~clicked
    false_negative = truth & ~prediction & allowed
    false_positive = prediction & ~truth & allowed
    best = None
    # RITM clicks positive only when the false negatives reach strictly deeper: ties go to
    # the false positives, which are looked at first and kept unless beaten.
    for region, label in ((false_positive, 0), (false_negative, 1)):
        if not region.any():
            continue
        # Padding with False makes the image border a boundary of every region.
        depth = ndimage.distance_transform_edt(np.pad(region, 1))[1:-1, 1:-1]
        deepest = float(depth.max())
        if best is None or deepest > best[0]:
            row, col = np.unravel_index(int(np.argmax(depth)), depth.shape)
            best = (deepest, (int(row), int(col), label))
    return None if best is None else best[1]


@dataclass
class ClickRun:
    """The clicks and IoUs of one image under the protocol.

    Attributes
    ----------
    clicks : list of (row, col, label)
        The clicks in order.
    ious : list of float
        IoU after each click (``ious[k - 1]`` after k clicks).
    seconds : list of float
        Time the segmenter took for each click.
    mask : ndarray of bool, optional
        The last result.
    """

    clicks: list[Click] = field(default_factory=list)
    ious: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    mask: np.ndarray | None = None

    def clicks_to(self, target: float, max_clicks: int) -> int:
        """NoC at ``target``: clicks until the IoU first reaches it, ``max_clicks`` if never."""
        for count, value in enumerate(self.ious, start=1):
            if value >= target:
                return count
        return max_clicks

    def iou_after(self, count: int) -> float:
        """IoU after ``count`` clicks; a run that stopped earlier at its target keeps its last IoU."""
        if not self.ious:
            return 0.0
        return self.ious[min(count, len(self.ious)) - 1]


def simulate(
    segment: Callable[[list[Click], np.ndarray | None], np.ndarray],
    truth: np.ndarray,
    valid: np.ndarray | None = None,
    *,
    max_clicks: int = 20,
    target_iou: float = 0.9,
    timer: Callable[[], float] | None = None,
) -> ClickRun:
    """Click on ``truth`` with the simulated user until ``target_iou`` or ``max_clicks``.

    Parameters
    ----------
    segment : callable
        ``segment(clicks, previous_mask)`` returns a boolean mask from all clicks so far
        and the previous result (None before the first click).
    truth : ndarray of bool
        The object.
    valid : ndarray of bool, optional
        Pixels that count (see :func:`next_click`).
    max_clicks : int
        Most clicks per image (20 in the literature).
    target_iou : float
        Stop once the IoU reaches this.
    timer : callable, optional
        Clock for the seconds per click (``time.perf_counter`` by default).

    Returns
    -------
    ClickRun
    """
    import time

    timer = timer or time.perf_counter
    truth = np.asarray(truth, bool)
    run = ClickRun()
    prediction = np.zeros(truth.shape, bool)
    previous = None
    clicked = np.zeros(truth.shape, bool)
    for _ in range(max_clicks):
        click = next_click(prediction, truth, valid, clicked)
        if click is None:
            break
        run.clicks.append(click)
        clicked[click[0], click[1]] = True
        started = timer()
        prediction = np.asarray(segment(list(run.clicks), previous), bool)
        run.seconds.append(timer() - started)
        previous = run.mask = prediction
        run.ious.append(masked_iou(prediction, truth, valid))
        if run.ious[-1] >= target_iou:
            break
    return run


def clicks_to_markers(clicks: list[Click], shape: tuple[int, int], radius: int = 5) -> np.ndarray:
    """Clicks as scribble markers: a disk of ``radius`` per click, 1 = object, 2 = background.

    Later clicks paint over earlier ones, as a person's later scribble would.
    """
    markers = np.zeros(shape, np.uint8)
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    for row, col, label in clicks:
        top, bottom = max(0, row - radius), min(shape[0], row + radius + 1)
        left, right = max(0, col - radius), min(shape[1], col + radius + 1)
        disk = (rows[top:bottom] - row) ** 2 + (cols[:, left:right] - col) ** 2 <= radius * radius
        markers[top:bottom, left:right][disk] = 1 if label == 1 else 2
    return markers
