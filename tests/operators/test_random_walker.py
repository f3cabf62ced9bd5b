"""Random walker on real photographs with an exactly known answer.

The test pictures are composites of photos scikit-image ships: the cat of ``chelsea()``
inside an ellipse on a grass background (``grass()``, tinted green), and for three
classes a disc of ``coffee()`` added beside it. The photos are real and textured, so the
edge weights have work to do, and the truth is known pixel for pixel. Scribbles are
synthetic strokes: inside each object and along the border for the background.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from skimage import data
from skimage.color import rgb2gray
from skimage.draw import disk, ellipse, line
from skimage.segmentation import random_walker as skimage_random_walker
from skimage.transform import resize

from maskwork.operators import Cancelled, InputError, Result, RunContext, get
from maskwork.operators.segmentation import random_walker as module

RANDOM_WALKER = get("random_walker")


def _resized(photo: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    out = resize(photo, shape, order=1, anti_aliasing=True, preserve_range=True)
    return np.round(out).astype(np.uint8)


def _grass(shape: tuple[int, int]) -> np.ndarray:
    """The grass photo as a green RGB texture."""
    gray = _resized(data.grass(), shape).astype(np.float32) / 255
    tint = np.array([0.45, 0.75, 0.30], np.float32)
    return np.round(255 * (0.15 + 0.75 * gray[..., None] * tint)).astype(np.uint8)


def cat_composite(rows: int = 150, cols: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """(RGB uint8 image, boolean truth): a crop of the cat inside an ellipse on grass."""
    image = _grass((rows, cols))
    cat = _resized(data.chelsea()[20:280, 60:400], (rows, cols))
    truth = np.zeros((rows, cols), bool)
    rr, cc = ellipse(0.5 * rows, 0.5 * cols, 0.33 * rows, 0.30 * cols, shape=truth.shape, rotation=0.4)
    truth[rr, cc] = True
    image[truth] = cat[truth]
    return image, truth


def cat_scribbles(truth: np.ndarray) -> np.ndarray:
    """A foreground cross inside the object and a background frame near the border."""
    rows, cols = truth.shape
    markers = np.zeros(truth.shape, np.uint8)
    inside = np.argwhere(truth)
    centre = inside.mean(axis=0).astype(int)
    for dr, dc in ((0.18, 0.0), (0.0, 0.16)):
        r0, c0 = int(centre[0] - dr * rows), int(centre[1] - dc * cols)
        r1, c1 = int(centre[0] + dr * rows), int(centre[1] + dc * cols)
        rr, cc = line(r0, c0, r1, c1)
        for shift in (-1, 0, 1):
            markers[np.clip(rr + shift, 0, rows - 1), cc] = 1
    margin = max(3, rows // 30)
    markers[margin : margin + 2, margin:-margin] = 2
    markers[-margin - 2 : -margin, margin:-margin] = 2
    markers[margin:-margin, margin : margin + 2] = 2
    markers[margin:-margin, -margin - 2 : -margin] = 2
    markers[truth & (markers == 2)] = 0
    assert not np.any((markers == 1) & ~truth)
    return markers


def three_regions(rows: int = 150, cols: int = 210) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, truth labels 1 grass / 2 cat / 3 coffee, scribbles with classes 1, 2, 3)."""
    image = _grass((rows, cols))
    truth = np.ones((rows, cols), np.uint8)
    cat = _resized(data.chelsea()[20:280, 60:400], (rows, cols))
    coffee = _resized(data.coffee()[60:380, 120:520], (rows, cols))
    rr, cc = ellipse(0.5 * rows, 0.28 * cols, 0.36 * rows, 0.20 * cols, shape=truth.shape)
    truth[rr, cc] = 2
    rr, cc = disk((0.5 * rows, 0.73 * cols), 0.22 * cols, shape=truth.shape)
    truth[rr, cc] = 3
    image[truth == 2] = cat[truth == 2]
    image[truth == 3] = coffee[truth == 3]
    markers = np.zeros((rows, cols), np.uint8)
    markers[int(0.35 * rows) : int(0.65 * rows), int(0.26 * cols) : int(0.29 * cols)] = 2
    markers[int(0.45 * rows) : int(0.48 * rows), int(0.18 * cols) : int(0.38 * cols)] = 2
    markers[int(0.40 * rows) : int(0.60 * rows), int(0.72 * cols) : int(0.75 * cols)] = 3
    markers[int(0.48 * rows) : int(0.51 * rows), int(0.62 * cols) : int(0.84 * cols)] = 3
    markers[3:5, 3:-3] = 1
    markers[-5:-3, 3:-3] = 1
    markers[3:-3, 3:5] = 1
    markers[3:-3, -5:-3] = 1
    markers[(truth != markers) & (markers > 0)] = 0
    return image, truth, markers


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.count_nonzero(a & b) / np.count_nonzero(a | b))


@pytest.fixture(scope="module")
def cat():
    image, truth = cat_composite()
    return image, truth, cat_scribbles(truth)


# ------------------------------------------------------------------ quality


def test_segments_the_cat(cat):
    image, truth, markers = cat
    result = RANDOM_WALKER.run({"image": image, "markers": markers})
    assert isinstance(result, Result)
    labels, probabilities = result["labels"], result["probabilities"]
    assert labels.dtype == np.uint16 and labels.shape == truth.shape
    assert probabilities.dtype == np.float32 and probabilities.shape == truth.shape + (2,)
    assert iou(labels == 1, truth) >= 0.9
    # The probabilities tell the same story: foreground probability above one half.
    np.testing.assert_array_equal(probabilities[..., 0] > 0.5, labels == 1)


def test_probabilities_are_a_distribution(cat):
    image, truth, markers = cat
    probabilities = RANDOM_WALKER.run({"image": image, "markers": markers})["probabilities"]
    assert probabilities.min() >= 0.0 and probabilities.max() <= 1.0
    np.testing.assert_allclose(probabilities.sum(axis=2), 1.0, atol=1e-3)
    # Scribbled pixels are certain.
    assert np.all(probabilities[markers == 1, 0] == 1.0)
    assert np.all(probabilities[markers == 2, 1] == 1.0)


def test_three_classes_agree_with_the_truth():
    image, truth, markers = three_regions()
    result = RANDOM_WALKER.run({"image": image, "markers": markers})
    labels = result["labels"]
    assert set(np.unique(labels)) == {1, 2, 3}
    assert np.mean(labels == truth) >= 0.9
    for k in (1, 2, 3):
        assert iou(labels == k, truth == k) >= 0.8, k
    probabilities = result["probabilities"]
    assert probabilities.shape == truth.shape + (3,)
    np.testing.assert_allclose(probabilities.sum(axis=2), 1.0, atol=1e-3)


def test_labels_keep_the_class_ids_of_the_markers():
    image, truth, markers = three_regions()
    renamed = np.zeros(markers.shape, np.int32)
    for old, new in ((1, 7), (2, 300), (3, 5)):
        renamed[markers == old] = new
    result = RANDOM_WALKER.run({"image": image, "markers": renamed})
    labels = result["labels"]
    assert labels.dtype == np.uint16
    assert set(np.unique(labels)) == {5, 7, 300}
    # Probability planes follow increasing ids: 5 (coffee), 7 (grass), 300 (cat).
    plain = RANDOM_WALKER.run({"image": image, "markers": markers})
    np.testing.assert_array_equal(labels, np.array([0, 7, 300, 5], np.uint16)[plain["labels"]])
    np.testing.assert_allclose(result["probabilities"][..., 0], plain["probabilities"][..., 2], atol=1e-6)


# ------------------------------------------------------------------ image types


def gray_composite(image: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Float gray picture: the gray cat inside the ellipse on a pale brick wall."""
    brick = _resized(data.brick(), truth.shape).astype(np.float64) / 255
    gray = rgb2gray(image)
    gray[~truth] = 0.6 + 0.4 * brick[~truth]
    return gray


def test_gray_uint16_and_float_images(cat):
    image, truth, markers = cat
    rgb = RANDOM_WALKER.run({"image": image, "markers": markers})["labels"]
    gray = gray_composite(image, truth)  # float64 in [0, 1]
    variants = {
        "gray float": gray,
        "gray uint8": np.round(gray * 255).astype(np.uint8),
        "gray uint16": np.round(gray * 65535).astype(np.uint16),
        "gray (row, col, 1)": gray[..., None],
        "rgb uint16": image.astype(np.uint16) * 257,
        # A 12-bit camera: values far below the uint16 maximum must still have contrast.
        "rgb 12-bit": image.astype(np.uint16) * 16,
        "rgb float": image.astype(np.float32) / 255,
        "rgb float, other range": image.astype(np.float64) * 40.0 - 1000.0,
        "rgba": np.dstack([image, np.full(truth.shape, 255, np.uint8)]),
    }
    for name, variant in variants.items():
        labels = RANDOM_WALKER.run({"image": variant, "markers": markers})["labels"]
        score = iou(labels == 1, truth)
        assert score >= 0.9, (name, score)
    # Float in [0, 1] is read on the same scale as 8-bit, so it gives the same answer.
    same = RANDOM_WALKER.run({"image": image.astype(np.float32) / 255, "markers": markers})["labels"]
    assert np.mean(same == rgb) >= 0.999


def test_nan_pixels_do_not_break_it(cat):
    image, truth, markers = cat
    picture = image.astype(np.float32) / 255
    picture[10:14, 100:110] = np.nan
    labels = RANDOM_WALKER.run({"image": picture, "markers": markers})["labels"]
    assert iou(labels == 1, truth) >= 0.9
    with pytest.raises(InputError, match="finite"):
        RANDOM_WALKER.run({"image": np.full(truth.shape, np.nan), "markers": markers})


# ------------------------------------------------------------------ against scikit-image


@pytest.mark.filterwarnings("ignore:The probability range:UserWarning")
def test_agrees_with_scikit_image():
    image, truth = cat_composite(90, 120)
    markers = cat_scribbles(truth)
    # Both with their defaults (scikit-image: mode "cg_j", tol 1e-3), the same beta.
    ours = RANDOM_WALKER.run({"image": image, "markers": markers})["labels"]
    theirs = skimage_random_walker(image, markers, beta=130, channel_axis=-1)
    assert iou(ours == 1, theirs == 1) >= 0.95
    assert np.mean(ours == theirs) >= 0.99
    # Solved tightly, the probabilities themselves agree: same edge weights, same problem.
    probabilities = RANDOM_WALKER.run({"image": image, "markers": markers}, {"tol": 1e-6})["probabilities"]
    full = skimage_random_walker(image, markers, beta=130, channel_axis=-1, tol=1e-6, return_full_prob=True)
    np.testing.assert_allclose(probabilities[..., 0], full[0], atol=2e-3)
    # Three classes, gray image.
    image, truth, markers = three_regions(90, 126)
    gray = rgb2gray(image)
    ours = RANDOM_WALKER.run({"image": gray, "markers": markers})["labels"]
    theirs = skimage_random_walker(gray, markers, beta=130)
    assert np.mean(ours == theirs) >= 0.99


# ------------------------------------------------------------------ the fast paths


@pytest.fixture(scope="module")
def big_cat():
    """About 0.1 megapixels: past the direct solver, so multigrid and coarse-to-fine run."""
    image, truth = cat_composite(270, 380)
    markers = cat_scribbles(truth)
    assert truth.size > module.DIRECT_MAX
    exact = RANDOM_WALKER.run({"image": image, "markers": markers}, {"coarse_megapixels": 0, "tol": 1e-6})
    assert exact.iterations > 0  # conjugate gradients on the multigrid hierarchy ran
    assert exact.scores["working_scale"] == 1.0
    return image, truth, markers, exact


def test_coarse_to_fine_full_refinement_matches_the_exact_solve(big_cat):
    image, truth, markers, exact = big_cat
    partials = []
    ctx = RunContext(on_partial=partials.append)
    params = {"coarse_megapixels": 0.03, "refine": "full"}
    result = RANDOM_WALKER.run({"image": image, "markers": markers}, params, ctx)
    assert result.scores["working_scale"] == 0.5  # 2 x 2 blocks
    assert result.iterations > 0
    assert iou(result["labels"] == 1, truth) >= 0.9
    # A quick preview from a ~20k-pixel copy, then the coarse solve: both at full size.
    assert len(partials) == 2
    assert iou(partials[0]["labels"] == 1, truth) >= 0.6  # rough: block means soften edges
    preview = partials[1]
    assert preview["labels"].shape == truth.shape and preview["probabilities"].shape == truth.shape + (2,)
    assert iou(preview["labels"] == 1, truth) >= 0.9
    assert np.mean(preview["labels"] == exact["labels"]) >= 0.98
    # Starting from the coarse answer changes nothing beyond the tolerance.
    assert np.mean(exact["labels"] == result["labels"]) >= 0.998
    np.testing.assert_allclose(result["probabilities"].sum(axis=2), 1.0, atol=1e-3)


def test_band_refinement_agrees_with_the_exact_solve(big_cat):
    image, truth, markers, exact = big_cat
    result = RANDOM_WALKER.run({"image": image, "markers": markers}, {"coarse_megapixels": 0.03})
    assert result.scores["working_scale"] == 0.5
    assert iou(result["labels"] == 1, truth) >= 0.9
    assert np.mean(exact["labels"] == result["labels"]) >= 0.995
    probabilities = result["probabilities"]
    assert probabilities.min() >= 0.0 and probabilities.max() <= 1.0
    np.testing.assert_allclose(probabilities.sum(axis=2), 1.0, atol=1e-3)
    assert np.abs(probabilities - exact["probabilities"]).mean() < 0.01


def test_a_class_too_thin_for_the_coarse_grid_is_not_lost(big_cat):
    image, truth, markers, _ = big_cat
    markers = markers.copy()
    # A one-pixel class-3 dot whose 2 x 2 block the thick foreground stroke covers more.
    rows, cols = np.nonzero(markers == 1)
    r, c = rows[len(rows) // 2], cols[len(cols) // 2]
    r, c = r - r % 2, c - c % 2
    markers[r : r + 2, c : c + 2] = 1
    markers[r, c] = 3
    result = RANDOM_WALKER.run({"image": image, "markers": markers}, {"coarse_megapixels": 0.03})
    assert result.scores["working_scale"] == 1.0  # no coarse step then
    assert result["labels"][r, c] == 3 and result["probabilities"].shape[2] == 3


def test_large_systems_are_solved_in_the_warm_child_with_the_same_answer(big_cat, child_calls, monkeypatch):
    """pyamg's set-up holds the GIL; above AMG_IN_PROCESS_UNKNOWNS it runs in the warm
    child, which must change nothing in the result."""
    image, truth, markers, _ = big_cat
    params = {"coarse_megapixels": 0}
    in_child = child_calls(module)
    remote = RANDOM_WALKER.run({"image": image, "markers": markers}, params)
    assert module._solve_all in in_child
    monkeypatch.setattr(module, "AMG_IN_PROCESS_UNKNOWNS", image.shape[0] * image.shape[1])
    calls_before = len(in_child)
    local = RANDOM_WALKER.run({"image": image, "markers": markers}, params)
    assert len(in_child) == calls_before, "small enough now: solved in process"
    np.testing.assert_array_equal(remote["labels"], local["labels"])
    np.testing.assert_array_equal(remote["probabilities"], local["probabilities"])
    assert remote.iterations == local.iterations > 0


# ------------------------------------------------------------------ contract


def test_inputs_are_unchanged(cat):
    image, truth, markers = cat
    image_copy, markers_copy = image.copy(), markers.copy()
    RANDOM_WALKER.run({"image": image, "markers": markers})
    np.testing.assert_array_equal(image, image_copy)
    np.testing.assert_array_equal(markers, markers_copy)


def test_progress_is_reported(cat):
    image, truth, markers = cat
    seen = []
    RANDOM_WALKER.run({"image": image, "markers": markers}, {}, RunContext(on_progress=lambda f, m: seen.append(f)))
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)


def test_cancellation_raises(big_cat):
    image, truth, markers, _ = big_cat
    ctx = RunContext()
    ctx.cancel()
    with pytest.raises(Cancelled):
        RANDOM_WALKER.run({"image": image, "markers": markers}, {}, ctx)


def test_cancellation_inside_the_iterations(big_cat, monkeypatch):
    image, truth, markers, _ = big_cat
    monkeypatch.setattr(module, "AMG_IN_PROCESS_UNKNOWNS", image.shape[0] * image.shape[1])
    messages = []

    def cancel_when_solving(fraction, message):
        messages.append(message)
        if "class 1" in message:
            ctx.cancel()  # the next checkpoint is a conjugate-gradient iteration

    ctx = RunContext(on_progress=cancel_when_solving)
    with pytest.raises(Cancelled):
        RANDOM_WALKER.run({"image": image, "markers": markers}, {"coarse_megapixels": 0}, ctx)
    assert "class 1" in messages[-1]


def test_cancellation_while_the_warm_child_solves(big_cat, monkeypatch):
    """Cancel arriving while the system is in the warm child: the call gives up within
    the child's drain time (the child finishes or is ended) and the run raises Cancelled."""
    import threading

    from maskwork.operators import stoppable

    image, truth, markers, _ = big_cat
    real_call = module.call_warm
    sent = []

    def cancel_once_sent(ctx, function, *args):
        sent.append(function)
        threading.Timer(0.02, ctx.cancel).start()  # the request is on its way by then
        return real_call(ctx, function, *args)

    monkeypatch.setattr(module, "call_warm", cancel_once_sent)
    exchanges = []
    real_exchange = stoppable._WARM_CHILD._exchange
    monkeypatch.setattr(stoppable._WARM_CHILD, "_exchange", lambda *a: exchanges.append(1) or real_exchange(*a))
    ctx = RunContext()
    started = time.perf_counter()
    with pytest.raises(Cancelled):
        RANDOM_WALKER.run({"image": image, "markers": markers}, {"coarse_megapixels": 0}, ctx)
    assert sent == [module._solve_all] and exchanges == [1], "the system reached the child"
    assert time.perf_counter() - started < stoppable.DRAIN_SECONDS + 2.0


def test_needs_two_classes(cat):
    image, truth, markers = cat
    with pytest.raises(InputError, match="two classes"):
        RANDOM_WALKER.run({"image": image, "markers": np.where(markers == 1, 1, 0).astype(np.uint8)})
    with pytest.raises(InputError, match="two classes"):
        RANDOM_WALKER.run({"image": image, "markers": np.zeros(truth.shape, np.uint8)})
    with pytest.raises(InputError, match="needs scribbles"):  # markers or clicks
        RANDOM_WALKER.run({"image": image})
    with pytest.raises(InputError, match="negative"):
        RANDOM_WALKER.run({"image": image, "markers": markers.astype(np.int16) - 1})


def test_markers_of_the_wrong_size(cat):
    image, truth, markers = cat
    with pytest.raises(InputError, match="markers are"):
        RANDOM_WALKER.run({"image": image, "markers": markers[:-1]})
    with pytest.raises(InputError):
        RANDOM_WALKER.run({"image": image, "markers": np.dstack([markers, markers])})


def test_everything_scribbled_returns_the_scribbles(cat):
    image, truth, markers = cat
    full = np.where(truth, 1, 2).astype(np.uint8)
    result = RANDOM_WALKER.run({"image": image, "markers": full})
    np.testing.assert_array_equal(result["labels"], full)


# ------------------------------------------------------------------ clicks


def test_the_image_frame_stays_background_after_a_background_click(cat):
    image, truth, _ = cat
    inside = np.argwhere(truth)
    centre = inside.mean(axis=0).astype(int)
    outside = np.argwhere(~truth)
    far = outside[np.argmax(np.abs(outside - centre).sum(axis=1))]
    points = [(int(centre[0]), int(centre[1]), 1), (int(far[0]), int(far[1]), 0)]
    labels = RANDOM_WALKER.run({"image": image, "points": points})["labels"]
    np.testing.assert_array_equal(RANDOM_WALKER.run({"image": image, "points": points})["labels"], labels)
    frame = np.ones(truth.shape, bool)
    frame[3:-3, 3:-3] = False
    assert np.all(labels[frame & ~truth] == 2)
    # Without the frame a lone 5-pixel background disk loses most of the grass to the object.
    assert iou(labels == 1, truth) >= 0.5
    # In the window a markers layer exists once a stroke was drawn, even erased back to
    # nothing: it counts as no scribbles, and the frame stays background.
    erased = np.zeros(truth.shape, np.uint8)
    np.testing.assert_array_equal(RANDOM_WALKER.run({"image": image, "markers": erased, "points": points})["labels"], labels)


@pytest.mark.filterwarnings("ignore:The probability range:UserWarning")
def test_clicks_do_at_least_as_well_as_scikit_image_on_the_same_clicks():
    """The simulated user of the click benchmark, on a photo composite with a known mask.

    scikit-image gets the shared click encoding (disks, the image frame as background
    until a click marks background), as in benchmarks/clicks_to_mask.py.
    """
    from maskwork.core.click_protocol import simulate
    from maskwork.operators.seeds import markers_with_clicks

    image, truth = cat_composite(120, 160)

    def ours(clicks, previous):
        return RANDOM_WALKER.run({"image": image, "points": clicks})["labels"] == 1

    def theirs(clicks, previous):
        markers = markers_with_clicks(None, clicks, truth.shape).astype(np.int32)
        return skimage_random_walker(image, markers, channel_axis=-1) == 1

    runs = {
        name: simulate(segment, truth, max_clicks=8, target_iou=0.97)
        for name, segment in (("ours", ours), ("theirs", theirs))
    }
    for target in (0.85, 0.9, 0.95):
        assert runs["ours"].clicks_to(target, 8) <= runs["theirs"].clicks_to(target, 8), target
    for count in (1, 2, 3, 5):
        assert runs["ours"].iou_after(count) >= runs["theirs"].iou_after(count), count
