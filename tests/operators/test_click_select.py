"""Quick select (click_select): clicks to a good mask on real photos, and its contract."""

import cv2
import numpy as np
import pytest
from scipy import ndimage
from skimage import data, draw, filters, transform

from maskwork.core.click_protocol import masked_iou, next_click, simulate
from maskwork.operators import InputError, RunContext, get
from maskwork.operators.seeds import markers_with_clicks

QUICK_SELECT = get("click_select")


def select(image, clicks, previous=None, **params):
    inputs = {"image": image, "points": clicks}
    if previous is not None:
        inputs["mask"] = previous
    return QUICK_SELECT.run(inputs, params)["mask"]


def cat_on_grass():
    """Chelsea's fur inside an ellipse on scikit-image's grass, and the ellipse."""
    grass = data.grass()[:300, :400]
    background = np.stack([grass * 0.5, grass * 0.8, grass * 0.4], axis=2).astype(np.uint8)
    truth = np.zeros(grass.shape, bool)
    rr, cc = draw.ellipse(150, 200, 90, 120, shape=truth.shape)
    truth[rr, cc] = True
    image = background.copy()
    image[truth] = data.chelsea()[:300, :400][truth]
    return image, truth


def horse_on_coffee():
    """The horse silhouette filled with the astronaut's suit and face on the coffee photo."""
    horse = ~data.horse()
    horse = transform.resize(horse, (200, 244), order=0, anti_aliasing=False).astype(bool)
    coffee = data.coffee()[:200, :244]
    astronaut = data.astronaut()[40:240, 100:344]
    image = coffee.copy()
    image[horse] = astronaut[horse]
    return image, horse


def biggest_coin():
    """scikit-image's coins and its biggest coin away from the edges (Otsu, holes filled)."""
    coins = data.coins()
    smooth = filters.gaussian(coins, 2)
    labels, _ = ndimage.label(ndimage.binary_fill_holes(smooth > filters.threshold_otsu(smooth)))
    sizes = np.bincount(labels.ravel())
    touching = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    sizes[touching] = 0
    return coins, labels == np.argmax(sizes)


@pytest.mark.parametrize("scene, most_clicks", [(cat_on_grass, 3), (horse_on_coffee, 8), (biggest_coin, 3)])
def test_clicks_to_ninety_percent_on_photos(scene, most_clicks):
    image, truth = scene()
    run = simulate(lambda clicks, previous: select(image, clicks, previous), truth, max_clicks=20)
    assert run.clicks_to(0.9, 20) <= most_clicks, f"IoU after each click: {[round(v, 3) for v in run.ious]}"


def test_same_clicks_same_mask_and_inputs_untouched():
    image, truth = cat_on_grass()
    image_before = image.copy()
    first = select(image, [(150, 200, 1)])
    previous = first.copy()
    clicks = [(150, 200, 1), (20, 20, 0)]
    again = select(image, clicks, previous)
    assert np.array_equal(select(image, clicks, previous), again)
    assert np.array_equal(image, image_before) and np.array_equal(previous, first)


def test_a_click_where_the_mask_is_right_does_not_make_it_worse():
    image, truth = horse_on_coffee()
    run = simulate(lambda clicks, previous: select(image, clicks, previous), truth, max_clicks=6)
    right = ndimage.distance_transform_edt(run.mask & truth)
    row, col = np.unravel_index(int(np.argmax(right)), right.shape)
    after = select(image, run.clicks + [(int(row), int(col), 1)], run.mask)
    assert masked_iou(after, truth) >= masked_iou(run.mask, truth) - 0.02


def test_a_background_click_removes_what_it_lands_on():
    image, truth = cat_on_grass()
    too_much = truth.copy()
    too_much[10:60, 10:120] = True  # a slab of grass wrongly selected
    after = select(image, [(150, 200, 1), (35, 65, 0)], too_much)
    assert not after[20:50, 20:110].any()
    assert masked_iou(after, truth) > 0.9


def test_box_alone_and_nothing_outside_it():
    image, truth = cat_on_grass()
    rect = (70, 50, 260, 200)  # x, y, w, h around the ellipse
    mask = QUICK_SELECT.run({"image": image, "rect": rect})["mask"]
    assert masked_iou(mask, truth) > 0.85
    outside = np.ones(truth.shape, bool)
    outside[50:250, 70:330] = False
    assert not mask[outside].any()


def test_large_image_previews_the_working_copy_first():
    image, truth = cat_on_grass()
    large = np.repeat(np.repeat(image, 3, axis=0), 3, axis=1)  # 0.9 MP
    partials = []
    ctx = RunContext(on_partial=partials.append)
    mask = QUICK_SELECT.run({"image": large, "points": [(450, 600, 1)]}, {}, ctx)["mask"]
    assert len(partials) >= 1 and all(p["mask"].shape == large.shape[:2] for p in partials)
    big_truth = np.repeat(np.repeat(truth, 3, axis=0), 3, axis=1)
    assert masked_iou(mask, big_truth) > 0.8


def test_every_long_step_runs_in_the_warm_child_with_the_same_result(monkeypatch, child_calls):
    """PyMaxflow and scikit-image's path search hold the GIL, so a click's geodesic sweep
    over the working copy and each of its cuts (the working copy's rounds and the
    full-resolution band) run in call_warm's child: the same mask as in this process."""
    from maskwork.operators.segmentation import click_select as module

    image, truth = cat_on_grass()
    large = np.repeat(np.repeat(image, 2, axis=0), 2, axis=1)
    children = child_calls(module)
    in_child = select(large, [(300, 400, 1)])
    assert children == [module._geodesic_sweep] + [module.binary_cut] * 3 + [module._cut_band]
    monkeypatch.setattr(module, "call_warm", lambda ctx, function, *args: function(*args))
    np.testing.assert_array_equal(select(large, [(300, 400, 1)]), in_child)
    assert masked_iou(in_child, np.repeat(np.repeat(truth, 2, axis=0), 2, axis=1)) > 0.8


def test_the_band_cut_on_the_bands_box_equals_the_cut_on_the_whole_image():
    """Quick select cuts its full-resolution band on the band's box plus one pixel, shifted:
    the same labels as band_cut on the whole image, here with the band on the last row
    and column."""
    from maskwork.operators.graph_cut import band_cut, lab_colours
    from maskwork.operators.segmentation import click_select as module

    image = np.ascontiguousarray(data.astronaut()[200:500, 212:512])
    coarse = np.zeros((300, 300), bool)
    coarse[150:, 150:] = True  # a square in the bottom-right corner: long straight band edges
    # Every band pixel prefers the object a little: only its neighbours outside the band
    # (the background around the square, the object inside it) decide where the cut goes.
    object_model = np.full(32**3, np.exp(1.0) / 32**3)
    background_model = np.full(32**3, np.exp(-1.0) / 32**3)
    refined = module._refine_band(image, coarse, 0.5, [], None, object_model, background_model, 5.0, RunContext())

    radius = int(np.ceil(1.5 / 0.5)) + 2
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    band = cv2.dilate(coarse.astype(np.uint8), kernel) != cv2.erode(coarse.astype(np.uint8), kernel)
    band_rows, band_cols = np.nonzero(band)
    assert band_rows.max() == 299 and band_cols.max() == 299
    bins = module.colour_bins(image[band_rows, band_cols])
    contrast = module._sampled_contrast(image[band_rows.min() :, band_cols.min() :])
    whole = coarse.copy()
    whole[band] = band_cut(coarse.shape, band_rows, band_cols, lambda r, c: lab_colours(image[r, c]), coarse,
                           -np.log(object_model[bins]), -np.log(background_model[bins]), 5.0, contrast)
    np.testing.assert_array_equal(refined, whole)
    assert whole[band].any() and not whole[band].all()


def test_prepare_makes_the_working_copies_and_warms_the_child(monkeypatch, child_calls):
    """The window prepares Quick select when it is chosen: the first click then finds the
    image's working and preview copies made and the warm child started."""
    from collections import OrderedDict

    from maskwork.operators import stoppable
    from maskwork.operators.segmentation import click_select as module

    monkeypatch.setattr(module, "_cache", OrderedDict())  # nothing left from other tests
    image, truth = cat_on_grass()
    large = np.repeat(np.repeat(image, 3, axis=0), 3, axis=1)
    children = child_calls(module)
    QUICK_SELECT.prepare({"image": large}, QUICK_SELECT.defaults(), RunContext())
    assert children == [stoppable.import_modules]

    def not_again(*args):
        raise AssertionError("the working copies were made again")

    monkeypatch.setattr(module, "_pieces", not_again)
    partials = []
    mask = QUICK_SELECT.run({"image": large, "points": [(450, 600, 1)]}, {}, RunContext(on_partial=partials.append))
    assert partials and masked_iou(mask["mask"], np.repeat(np.repeat(truth, 3, axis=0), 3, axis=1)) > 0.8


def test_wanting_partial_results_does_not_change_the_result():
    image, truth = cat_on_grass()
    large = np.repeat(np.repeat(image, 2, axis=0), 2, axis=1)
    first = QUICK_SELECT.run({"image": large, "points": [(300, 400, 1)]})["mask"]
    clicks = [(300, 400, 1), (40, 40, 0)]
    plain = QUICK_SELECT.run({"image": large, "points": clicks, "mask": first})["mask"]
    watched = QUICK_SELECT.run({"image": large, "points": clicks, "mask": first}, {},
                               RunContext(on_partial=lambda partial: None))["mask"]
    np.testing.assert_array_equal(watched, plain)


def test_the_preview_shows_the_newest_clicks_own_change_over_the_previous_mask():
    image, truth = cat_on_grass()
    large = np.repeat(np.repeat(image, 2, axis=0), 2, axis=1)
    big_truth = np.repeat(np.repeat(truth, 2, axis=0), 2, axis=1)
    previous = big_truth.copy()
    previous[:, 400:] = False  # the right half of the cat missed
    partials = []
    clicks = [(300, 300, 1), (300, 520, 1)]
    QUICK_SELECT.run({"image": large, "points": clicks, "mask": previous}, {}, RunContext(on_partial=partials.append))
    preview = partials[0]["mask"]
    added = preview & ~previous
    assert not (previous & ~preview).any(), "an object click's preview only adds"
    assert added[300, 520], "the clicked pixel is in the change"
    _, pieces = cv2.connectedComponents(added.astype(np.uint8), connectivity=8)
    assert set(np.unique(pieces[added])) == {pieces[300, 520]}, "the change is one piece holding the click"
    assert masked_iou(preview, big_truth) > masked_iou(previous, big_truth) + 0.2


def test_gray_and_sixteen_bit_images():
    coins, truth = biggest_coin()
    rows, cols = np.nonzero(truth)
    click = [(int(rows.mean()), int(cols.mean()), 1)]
    as_uint16 = coins.astype(np.uint16) * 257
    # 16-bit images are stretched between percentiles as they are shown, so the two
    # masks may differ a little; both find the coin.
    assert masked_iou(select(as_uint16, click), truth) > 0.8
    assert masked_iou(select(coins, click), truth) > 0.8


@pytest.mark.parametrize(
    "inputs, message",
    [
        ({"points": [(10, 10, 0)]}, "click on the object"),
        ({"points": []}, "click on the object"),
        ({"points": [(10, 10, 3)]}, "click labels"),
        ({"points": [(500, 10, 1)]}, "outside"),
        ({"points": [("a", 10, 1)]}, "row, col, label"),
        ({"points": [(10, 10, 1)], "mask": np.zeros((5, 5), bool)}, "mask is 5x5"),
    ],
)
def test_bad_input_is_a_clear_error(inputs, message):
    image, _ = cat_on_grass()
    with pytest.raises(InputError, match=message):
        QUICK_SELECT.run({"image": image, **inputs})


def test_clicks_become_scribbles_for_the_scribble_operators():
    markers = markers_with_clicks(None, [(50, 50, 1)], (100, 120))
    assert markers[50, 50] == 1 and markers[50, 55] == 1 and markers[50, 57] == 0
    assert (markers[0] == 2).all() and (markers[:, -1] == 2).all(), "the frame stands for background"
    markers = markers_with_clicks(None, [(50, 50, 1), (10, 10, 0)], (100, 120))
    assert markers[10, 10] == 2 and markers[0, 60] == 0, "a background click replaces the frame"
    scribbles = np.zeros((100, 120), np.uint16)
    scribbles[90:, :] = 3
    combined = markers_with_clicks(scribbles, [(50, 50, 1)], (100, 120))
    assert combined.dtype == np.uint16 and combined[95, 5] == 3 and combined[50, 50] == 1
    assert combined[0, 60] == 0, "scribbles of another class already mark the background"
    assert markers_with_clicks(None, [], (10, 10)) is None


@pytest.mark.parametrize("operator, output", [("grabcut", "mask"), ("random_walker", "labels"), ("merge_superpixels", "mask")])
def test_scribble_operators_take_clicks(operator, output):
    image, truth = cat_on_grass()
    clicks = []
    mask = np.zeros(truth.shape, bool)
    for _ in range(3):
        clicks.append(next_click(mask, truth))
        mask = np.asarray(get(operator).run({"image": image, "points": clicks})[output]) == 1
    assert masked_iou(mask, truth) > 0.8
