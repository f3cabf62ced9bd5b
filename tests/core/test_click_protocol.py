"""The simulated user of the NoC protocol (RITM's click rule)."""

import numpy as np
import pytest

from maskwork.core.click_protocol import ClickRun, clicks_to_markers, masked_iou, next_click, simulate


def disk(shape, centre, radius):
    rows, cols = np.ogrid[: shape[0], : shape[1]]
    return (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius**2


def test_first_click_lands_deepest_inside_the_object():
    truth = disk((60, 80), (30, 50), 12)
    assert next_click(np.zeros_like(truth), truth) == (30, 50, 1)


def test_the_image_border_counts_as_boundary():
    # A band along the left edge: its deepest pixel is in the middle of the band's width,
    # not on the edge (where a distance transform without padding would put it).
    truth = np.zeros((40, 40), bool)
    truth[:, :9] = True
    row, col, label = next_click(np.zeros_like(truth), truth)
    assert label == 1 and col == 4


def test_the_larger_error_region_wins_and_sets_the_label():
    truth = disk((80, 80), (40, 40), 20)
    prediction = truth.copy()
    prediction[5:15, 60:78] = True  # a 10-px thick false positive
    prediction[35:39, 35:45] = False  # a 4-px thick false negative
    row, col, label = next_click(prediction, truth)
    assert label == 0 and 5 <= row < 15 and 60 <= col < 78
    prediction[5:15, 60:78] = False
    assert next_click(prediction, truth)[2] == 1


def test_ties_go_to_background_clicks_as_in_ritm():
    truth = np.zeros((30, 30), bool)
    truth[2:5, 2:5] = True  # false negative of depth 2
    prediction = np.zeros_like(truth)
    prediction[20:23, 20:23] = True  # false positive of the same depth
    assert next_click(prediction, truth)[2] == 0


def test_invalid_and_clicked_pixels_are_never_chosen():
    truth = disk((50, 50), (25, 25), 10)
    valid = np.ones_like(truth)
    valid[:, :25] = False
    row, col, _ = next_click(np.zeros_like(truth), truth, valid)
    assert col >= 25
    clicked = np.zeros_like(truth)
    clicked[row, col] = True
    assert next_click(np.zeros_like(truth), truth, valid, clicked)[:2] != (row, col)
    assert next_click(truth, truth) is None


def test_masked_iou_leaves_out_invalid_pixels():
    truth = np.zeros((10, 10), bool)
    truth[:5] = True
    mask = truth.copy()
    mask[5] = True
    valid = np.ones_like(truth)
    assert masked_iou(mask, truth) == pytest.approx(50 / 60)
    valid[5] = False
    assert masked_iou(mask, truth, valid) == 1.0


def test_simulate_stops_at_the_target_and_counts_clicks():
    truth = disk((60, 60), (30, 30), 15)
    calls = []

    def segment(clicks, previous):
        calls.append((list(clicks), previous))
        # A segmenter that grows a disk by 5 px per click.
        return disk(truth.shape, (30, 30), 5 * len(clicks))

    run = simulate(segment, truth, max_clicks=20, target_iou=0.9)
    assert len(run.clicks) == 3 and run.ious[-1] >= 0.9
    assert run.clicks_to(0.9, 20) == 3 and run.clicks_to(0.4, 20) == 2
    assert run.iou_after(10) == run.ious[-1]
    assert calls[0][1] is None and calls[1][1] is not None, "the previous result is handed back"
    assert np.array_equal(run.mask, disk(truth.shape, (30, 30), 15))
    assert all(label == 1 for _, _, label in run.clicks)


def test_simulate_never_exceeds_max_clicks():
    truth = disk((40, 40), (20, 20), 10)
    run = simulate(lambda clicks, previous: np.zeros_like(truth), truth, max_clicks=4)
    assert len(run.clicks) == 4 and run.clicks_to(0.85, 4) == 4
    assert len(set(run.clicks)) == 4, "a pixel is never clicked twice"
    assert ClickRun().iou_after(5) == 0.0


def test_clicks_to_markers_draws_disks_later_clicks_on_top():
    markers = clicks_to_markers([(10, 10, 1), (12, 12, 0)], (30, 30), radius=5)
    assert markers[10, 10] == 2 and markers[6, 8] == 1 and markers[17, 12] == 2
    assert markers[25, 25] == 0
    assert np.count_nonzero(clicks_to_markers([(0, 0, 1)], (30, 30), radius=5)) == np.count_nonzero(
        disk((30, 30), (0, 0), 5)
    )


def test_drawing_clicks_does_not_import_scipy_ndimage():
    # Operators turn clicks into markers at a run's start, in the worker: importing
    # scipy.ndimage there held the GIL long enough to stall the window (up to 23 ms).
    from tests.fresh_interpreter import modules_loaded_after

    code = (
        "from maskwork.operators.seeds import markers_with_clicks\n"
        "markers_with_clicks(None, [(10, 10, 1)], (40, 40))\n"
    )
    assert modules_loaded_after(code, ["scipy.ndimage"]) == []
