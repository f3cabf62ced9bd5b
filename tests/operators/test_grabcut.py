"""GrabCut on real photographs with an exactly known answer.

The test image is a composite of two photos scikit-image ships: the cat of ``chelsea()``
pasted into a blob (two overlapping tilted ellipses) on top of ``astronaut()``. Both are
real, colourful and textured, so the colour models have work to do, and the true mask is
known pixel for pixel.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data
from skimage.color import rgb2gray
from skimage.draw import ellipse, line
from skimage.transform import resize

from maskwork.operators import Cancelled, InputError, Result, RunContext, get

GRABCUT = get("grabcut")


def _resized(photo: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    out = resize(photo, shape, order=1, anti_aliasing=True, preserve_range=True)
    return np.round(out).astype(np.uint8)


def composite(rows: int = 300, cols: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 image, boolean ground truth) of the cat-in-a-blob picture."""
    background = _resized(data.astronaut(), (rows, cols))
    foreground = _resized(data.chelsea(), (rows, cols))
    truth = np.zeros((rows, cols), bool)
    rr, cc = ellipse(0.42 * rows, 0.40 * cols, 0.28 * rows, 0.20 * cols, shape=truth.shape, rotation=0.5)
    truth[rr, cc] = True
    rr, cc = ellipse(0.58 * rows, 0.62 * cols, 0.25 * rows, 0.22 * cols, shape=truth.shape, rotation=-0.3)
    truth[rr, cc] = True
    image = background.copy()
    image[truth] = foreground[truth]
    return image, truth


def box_around(truth: np.ndarray, pad: int = 8) -> tuple[int, int, int, int]:
    """(x, y, w, h) of the object's bounding box plus ``pad`` pixels, as a person draws it."""
    rows, cols = np.nonzero(truth)
    return (
        int(cols.min()) - pad,
        int(rows.min()) - pad,
        int(cols.max() - cols.min()) + 1 + 2 * pad,
        int(rows.max() - rows.min()) + 1 + 2 * pad,
    )


def scribbles(truth: np.ndarray) -> np.ndarray:
    """Three 5 px foreground strokes across the object and a loop drawn around it."""
    rows, cols = np.nonzero(truth)
    top, bottom, left, right = rows.min(), rows.max(), cols.min(), cols.max()
    middle = int(rows.mean())
    strokes = np.zeros(truth.shape, np.uint8)
    for r0, c0, r1, c1 in ((top, left, bottom, right), (bottom, left, top, right), (middle, left, middle, right)):
        rr, cc = line(int(r0), int(c0), int(r1), int(c1))
        strokes[rr, cc] = 1
    strokes = cv2.dilate(strokes, np.ones((5, 5), np.uint8))
    # Keep the strokes well inside: a person's scribble does not touch the edge.
    inside = cv2.erode(truth.astype(np.uint8), np.ones((3, 3), np.uint8), iterations=15) > 0
    markers = np.zeros(truth.shape, np.uint8)
    cv2.rectangle(markers, (int(left) - 15, int(top) - 15), (int(right) + 15, int(bottom) + 15), 2, 5)
    markers[(strokes > 0) & inside] = 1
    return markers


def iou(mask: np.ndarray, truth: np.ndarray) -> float:
    mask = np.asarray(mask, bool)
    return float(np.count_nonzero(mask & truth) / np.count_nonzero(mask | truth))


@pytest.fixture(scope="module")
def scene():
    image, truth = composite()
    return image, truth, box_around(truth)


@pytest.fixture(scope="module")
def box_result(scene):
    image, _, rect = scene
    return GRABCUT.run({"image": image, "rect": rect}, {"iterations": 5})


# ------------------------------------------------------------------ quality


def test_box(scene, box_result):
    image, truth, _ = scene
    mask = box_result["mask"]
    assert mask.dtype == bool and mask.shape == truth.shape
    assert box_result.iterations == 5
    assert iou(mask, truth) >= 0.9


def test_scribbles_only(scene):
    image, truth, _ = scene
    markers = scribbles(truth)
    assert np.count_nonzero(markers == 1) > 500 and not (truth & (markers == 2)).any()
    result = GRABCUT.run({"image": image, "markers": markers})
    assert iou(result["mask"], truth) >= 0.9
    # Scribbled pixels keep their label.
    assert result["mask"][markers == 1].all() and not result["mask"][markers == 2].any()


def test_correcting_scribble_is_obeyed(scene):
    image, truth, rect = scene
    markers = np.zeros(truth.shape, np.uint8)
    x, y, w, h = rect
    # Claim a wrong-side patch on each side of the boundary; GrabCut must follow.
    markers[y + 2 : y + 12, x + 2 : x + 12] = 1  # background corner inside the box
    rows, cols = np.nonzero(truth)
    center = int(rows.mean()), int(cols.mean())
    markers[center[0] - 4 : center[0] + 4, center[1] - 4 : center[1] + 4] = 2
    mask = GRABCUT.run({"image": image, "markers": markers, "rect": rect})["mask"]
    assert mask[markers == 1].all() and not mask[markers == 2].any()


def _as_dtype(image: np.ndarray, kind: str) -> np.ndarray:
    if kind == "gray":
        return np.round(rgb2gray(image) * 255).astype(np.uint8)
    if kind == "rgba":
        return np.dstack([image, np.full(image.shape[:2], 200, np.uint8)])
    if kind == "uint16":
        return image.astype(np.uint16) * 257  # 0..255 -> 0..65535
    if kind == "float32":
        return image.astype(np.float32) / 255
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["gray", "rgba", "uint16", "float32"])
def test_other_image_types(scene, kind):
    image, truth, rect = scene
    converted = _as_dtype(image, kind)
    before = converted.copy()
    result = GRABCUT.run({"image": converted, "rect": rect})
    assert result["mask"].shape == truth.shape
    assert iou(result["mask"], truth) >= 0.9
    np.testing.assert_array_equal(converted, before)


def test_same_input_gives_the_same_mask(scene, box_result):
    image, _, rect = scene
    # Another run in between must not change the answer (OpenCV's k-means uses a global RNG).
    GRABCUT.run({"image": image[::2, ::2], "rect": (10, 10, 100, 80)})
    again = GRABCUT.run({"image": image, "rect": rect}, {"iterations": 5})
    np.testing.assert_array_equal(again["mask"], box_result["mask"])


def test_coarse_to_fine_matches_full_resolution():
    image, truth = composite(420, 600)  # about 0.25 megapixels
    rect = box_around(truth)
    full = GRABCUT.run({"image": image, "rect": rect}, {"coarse_megapixels": 0})
    coarse = GRABCUT.run({"image": image, "rect": rect}, {"coarse_megapixels": 0.02})
    assert full.scores["working_scale"] == 1.0
    assert coarse.scores["working_scale"] < 0.5, "the coarse path was not taken"
    assert coarse["mask"].shape == truth.shape
    assert iou(full["mask"], truth) >= 0.9
    assert abs(iou(coarse["mask"], truth) - iou(full["mask"], truth)) <= 0.02


@pytest.mark.parametrize("coarse_megapixels", [0.0, 0.2], ids=["full", "coarse"])
def test_quick_copy_iterations(monkeypatch, coarse_megapixels):
    """The first iteration runs on the small copy (the first preview); on the coarse path
    the second does too, so the colour models settle before the slower working-scale cuts."""
    image, truth = composite(420, 600)
    rect = box_around(truth)
    cut_sizes = []
    real_grabcut = cv2.grabCut

    def recording(img, *args):
        cut_sizes.append(img.shape[0] * img.shape[1])
        return real_grabcut(img, *args)

    monkeypatch.setattr(cv2, "grabCut", recording)
    result = GRABCUT.run({"image": image, "rect": rect}, {"iterations": 5, "coarse_megapixels": coarse_megapixels})
    quick, working = min(cut_sizes), cut_sizes[4]
    assert quick <= 1.05 * 60_000 < working
    expected_quick = 2 if coarse_megapixels else 1
    assert cut_sizes[:5] == [quick] * expected_quick + [working] * (5 - expected_quick)
    # The coarse path's final cut at full resolution (OpenCV's, on a box this small).
    assert len(cut_sizes) == (6 if coarse_megapixels else 5)
    assert iou(result["mask"], truth) >= 0.9


def _refinement_case():
    """(image, truth, trimap with a band undecided, background model, foreground model)
    as the coarse path leaves them before its full-resolution cut."""
    from maskwork.operators.segmentation import grabcut as module

    image, truth = composite(420, 600)
    x, y, w, h = box_around(truth)
    trimap = np.full(truth.shape, cv2.GC_BGD, np.uint8)
    trimap[y : y + h, x : x + w] = cv2.GC_PR_FGD
    small = cv2.resize(image, (150, 105), interpolation=cv2.INTER_AREA)
    small_trimap = cv2.resize(trimap, (150, 105), interpolation=cv2.INTER_NEAREST)
    background, foreground = np.zeros((1, 65)), np.zeros((1, 65))
    cv2.setRNGSeed(0)
    cv2.grabCut(small, small_trimap, None, background, foreground, 4, cv2.GC_INIT_WITH_MASK)
    coarse = module._upsample(module._is_foreground(small_trimap), truth.shape, smooth=True)
    return image, truth, module._refinement_trimap(trimap, coarse, 0.25), background, foreground


def test_band_cut_gives_opencvs_labels():
    """Our cut of the undecided band alone labels it as cv2.grabCut(GC_EVAL_FREEZE_MODEL)
    does with a graph of every pixel."""
    from maskwork.operators.segmentation.grabcut import cut_band

    image, truth, trimap, background, foreground = _refinement_case()
    undecided = (trimap == cv2.GC_PR_FGD) | (trimap == cv2.GC_PR_BGD)
    assert 10_000 < undecided.sum() < 0.5 * truth.size
    ours = cut_band(image, trimap, background, foreground)
    opencv = trimap.copy()
    cv2.grabCut(image, opencv, None, background, foreground, 1, cv2.GC_EVAL_FREEZE_MODEL)
    np.testing.assert_array_equal(ours, opencv)
    assert (ours[~undecided] == trimap[~undecided]).all()
    assert 0.2 < (ours[undecided] == cv2.GC_PR_FGD).mean() < 0.8  # the band really was cut both ways


def test_large_band_is_cut_in_a_child_process(monkeypatch, child_calls):
    """Above OWN_CUT_BOX_PIXELS the refinement runs our cut in call_warm's child process
    (PyMaxflow holds the GIL): the same mask as OpenCV's cut in this process."""
    from maskwork.operators.segmentation import grabcut as module

    image, truth = composite(420, 600)
    rect = box_around(truth)
    params = {"coarse_megapixels": 0.05}
    opencv = GRABCUT.run({"image": image, "rect": rect}, params)
    monkeypatch.setattr(module, "OWN_CUT_BOX_PIXELS", 1000)
    children = child_calls(module)
    ours = GRABCUT.run({"image": image, "rect": rect}, params)
    assert children == [module.cut_band]
    np.testing.assert_array_equal(ours["mask"], opencv["mask"])
    assert iou(ours["mask"], truth) >= 0.9


def test_with_the_warm_child_up_a_smaller_band_is_cut_there_too(monkeypatch, child_calls):
    """With no child start to pay, the switch to our cut comes at OWN_CUT_BOX_PIXELS_WARM
    of box; with the child down, OpenCV's cut stays below OWN_CUT_BOX_PIXELS."""
    from maskwork.operators.segmentation import grabcut as module

    image, truth = composite(420, 600)
    rect = box_around(truth)
    params = {"coarse_megapixels": 0.05}
    monkeypatch.setattr(module, "OWN_CUT_BOX_PIXELS_WARM", 1000)
    children = child_calls(module)
    monkeypatch.setattr(module, "warm_child_alive", lambda: False)
    opencv = GRABCUT.run({"image": image, "rect": rect}, params)
    assert children == []
    monkeypatch.setattr(module, "warm_child_alive", lambda: True)
    ours = GRABCUT.run({"image": image, "rect": rect}, params)
    assert children == [module.cut_band]
    np.testing.assert_array_equal(ours["mask"], opencv["mask"])


def test_preparing_a_large_image_starts_the_warm_child_for_its_band_cut(monkeypatch, child_calls):
    """The window's background preparation (register(prepare=...)) starts the warm child
    where the refinement's own band cut will run, so the first Apply does not wait for
    it; on an image too small for that cut, or with the child up already, it does nothing
    and says so (the window then shows no message)."""
    from maskwork.operators import stoppable
    from maskwork.operators.segmentation import grabcut as module

    image, _ = composite(420, 600)
    children = child_calls(module)
    monkeypatch.setattr(module, "warm_child_alive", lambda: False)
    assert GRABCUT.prepare({"image": image}, GRABCUT.defaults(), RunContext()) is False
    assert children == []
    monkeypatch.setattr(module, "OWN_CUT_BOX_PIXELS", image.shape[0] * image.shape[1] - 1)
    assert GRABCUT.prepare({"image": image}, GRABCUT.defaults(), RunContext()) is True
    assert children == [stoppable.import_modules]
    monkeypatch.setattr(module, "warm_child_alive", lambda: True)
    assert GRABCUT.prepare({"image": image}, GRABCUT.defaults(), RunContext()) is False
    assert children == [stoppable.import_modules]


def test_far_outside_the_box_is_background(scene, box_result):
    _, truth, (x, y, w, h) = scene
    outside = np.ones(truth.shape, bool)
    outside[y : y + h, x : x + w] = False
    assert not box_result["mask"][outside].any()


# ------------------------------------------------------------------ partials and cancel


@pytest.mark.parametrize("coarse_megapixels", [0.0, 0.02], ids=["full", "coarse"])
def test_partials(scene, coarse_megapixels):
    image, truth, rect = scene
    partials, fractions = [], []
    ctx = RunContext(on_progress=lambda f, m: fractions.append(f), on_partial=partials.append)
    iterations = 4
    result = GRABCUT.run(
        {"image": image, "rect": rect}, {"iterations": iterations, "coarse_megapixels": coarse_megapixels}, ctx
    )
    assert iterations - 1 <= len(partials) <= iterations
    for number, partial in enumerate(partials, start=1):
        assert isinstance(partial, Result)
        assert partial["mask"].shape == truth.shape and partial["mask"].dtype == bool
        assert partial.iterations == number
    # The previews are real intermediate segmentations, not empty masks.
    assert iou(partials[-1]["mask"], truth) >= 0.8
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert iou(result["mask"], truth) >= 0.9


def test_cancel_from_progress_after_the_second_iteration(scene):
    image, _, rect = scene
    messages, partials = [], []

    def on_progress(fraction, message):
        messages.append(message)
        if "iteration 3" in message:  # two iterations are done
            ctx.cancel()

    ctx = RunContext(on_progress=on_progress, on_partial=partials.append)
    with pytest.raises(Cancelled):
        GRABCUT.run({"image": image, "rect": rect}, {"iterations": 5}, ctx)
    assert len(partials) == 2
    assert not any("iteration 4" in message or "done" in message for message in messages)


# ------------------------------------------------------------------ errors


SMALL = composite(120, 160)[0]


def test_no_seeds():
    with pytest.raises(InputError, match="box or foreground"):
        GRABCUT.run({"image": SMALL})


@pytest.mark.parametrize("rect", [(100, 10, 80, 50), (-5, 10, 50, 50), (10, 10, 0, 20)])
def test_box_outside_the_image(rect):
    with pytest.raises(InputError, match="box"):
        GRABCUT.run({"image": SMALL, "rect": rect})


@pytest.mark.parametrize("rect", [(10, 60, 140, 1), (70, 5, 2, 110)])
def test_a_box_too_thin_to_hold_an_object_says_so_instead_of_an_empty_mask(rect):
    with pytest.raises(InputError, match="px thin: draw it around the whole object"):
        GRABCUT.run({"image": SMALL, "rect": rect})


def test_markers_of_another_size():
    markers = np.zeros((60, 80), np.uint8)
    markers[20:30, 20:40] = 1
    with pytest.raises(InputError, match="markers are 60x80 but the image is 120x160"):
        GRABCUT.run({"image": SMALL, "markers": markers})


def test_only_background_scribbles():
    markers = np.zeros(SMALL.shape[:2], np.uint8)
    markers[:5] = 2
    with pytest.raises(InputError, match="foreground"):
        GRABCUT.run({"image": SMALL, "markers": markers})


def test_box_over_the_whole_image_without_background():
    rect = (0, 0, SMALL.shape[1], SMALL.shape[0])
    with pytest.raises(InputError, match="background"):
        GRABCUT.run({"image": SMALL, "rect": rect})
    # A background scribble inside that box is enough.
    markers = np.zeros(SMALL.shape[:2], np.uint8)
    markers[:8, :] = 2
    mask = GRABCUT.run({"image": SMALL, "rect": rect, "markers": markers})["mask"]
    assert mask.shape == SMALL.shape[:2] and not mask[:8].any()


def test_bad_image_shapes():
    with pytest.raises(InputError, match="shape"):
        GRABCUT.run({"image": np.zeros((20, 20, 2), np.uint8), "rect": (2, 2, 10, 10)})
    with pytest.raises(InputError, match="too small"):
        GRABCUT.run({"image": np.zeros((1, 20), np.uint8), "rect": (0, 0, 10, 1)})
