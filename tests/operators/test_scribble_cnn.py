"""The scribble-trained CNN: quality on a real photo, previews, continuing, cancelling.

Quality is checked on scikit-image's ``coins()`` photo: 24 coins on a dark, unevenly lit
background. Its ground truth is the region-based segmentation of scikit-image's own
tutorial ("Comparing edge-based and region-based segmentation": watershed of the Sobel
elevation map from markers below 30 and above 150, holes filled), which outlines every
coin. Scribbles touch only four coins, so the network has to recognise the other twenty
from what it learned, as a pixel classifier does.
"""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage import data, filters, segmentation

from maskwork.operators import Cancelled, InputError, RunContext, get
from maskwork.operators.dl import scribble_cnn as module

pytest.importorskip("torch")

SCRIBBLE_CNN = get("scribble_cnn")
#: Quick settings for the tests that do not measure quality.
QUICK = {"steps": 12, "resume_steps": 4, "width": 8, "batch_size": 4, "crop_size": 48, "device": "cpu"}


@pytest.fixture(autouse=True)
def _fresh_cache():
    module.clear_cache()
    yield
    module.clear_cache()


def coins_truth() -> np.ndarray:
    """Every coin of ``coins()``, as scikit-image's region-based segmentation tutorial finds them."""
    coins = data.coins()
    markers = np.zeros(coins.shape, np.uint8)
    markers[coins < 30] = 1
    markers[coins > 150] = 2
    flooded = segmentation.watershed(filters.sobel(coins), markers)
    truth = ndi.binary_fill_holes(flooded == 2)
    labels, count = ndi.label(truth)
    sizes = ndi.sum(truth, labels, range(1, count + 1))
    return np.isin(labels, 1 + np.flatnonzero(sizes >= 50))


def coins_scribbles(truth: np.ndarray) -> np.ndarray:
    """Strokes across four coins (class 1) and along the gaps between coins (class 2).

    Every stroke is kept 4 pixels away from the true boundary, as a careful person draws.
    """
    inside = ndi.binary_erosion(truth, iterations=4)
    outside = ndi.binary_erosion(~truth, iterations=4)
    labels, _ = ndi.label(truth)
    markers = np.zeros(truth.shape, np.uint8)
    for row, col in ((45, 45), (120, 200), (190, 100), (255, 300)):  # four coins' centres
        coin = labels == labels[row, col]
        assert coin.any() and labels[row, col] > 0
        markers[row - 1 : row + 2, col - 12 : col + 13] = 1
    markers[~inside & (markers == 1)] = 0
    for row in (85, 160, 228):  # between the rows of coins
        markers[row - 1 : row + 2, 10:-10] = 2
    for col in (68, 180):
        markers[10:-10, col - 1 : col + 2] = 2
    markers[(markers == 2) & ~outside] = 0
    return markers


def iou(mask: np.ndarray, truth: np.ndarray) -> float:
    return float(np.count_nonzero(mask & truth) / np.count_nonzero(mask | truth))


class Recorder(RunContext):
    """A context that keeps every partial result and when it arrived."""

    def __init__(self, cancel_after_partials: int | None = None) -> None:
        super().__init__(on_partial=self._keep, on_progress=lambda *_: None)
        self.started = time.perf_counter()
        self.partials: list[tuple[float, object]] = []
        self.cancel_after_partials = cancel_after_partials
        self.cancelled_at: float | None = None

    def _keep(self, result) -> None:
        self.partials.append((time.perf_counter() - self.started, result))
        if self.cancel_after_partials is not None and len(self.partials) >= self.cancel_after_partials:
            self.cancelled_at = time.perf_counter()
            self.cancel()


@pytest.fixture(scope="module")
def coins_run():
    """(truth, markers, result, recorder) of one default-settings run on the coins photo."""
    module.clear_cache()
    truth = coins_truth()
    markers = coins_scribbles(truth)
    recorder = Recorder()
    result = SCRIBBLE_CNN.run({"image": data.coins(), "markers": markers}, {"device": "cpu"}, recorder)
    recorder.finished = time.perf_counter() - recorder.started
    module.clear_cache()
    return truth, markers, result, recorder


def test_learns_every_coin_from_scribbles_on_four(coins_run):
    truth, _, result, _ = coins_run
    labels = result["labels"]
    assert labels.shape == truth.shape and labels.dtype == np.int32
    found = labels == 1
    # Measured on the CPU: IoU 0.91 with seed 0, 0.73 to 0.92 over seeds 0-3 (the worst
    # seed leaves holes where engravings are as dark as the background); 24 of 24 coins
    # found with seed 0, 23 with the worst.
    score = iou(found, truth)
    assert score >= 0.70, score
    assert score > iou(np.ones_like(truth), truth) + 0.35  # "everything is a coin" scores 0.33
    coins, count = ndi.label(truth)
    covered = ndi.mean(found, coins, range(1, count + 1))
    assert count == 24 and np.count_nonzero(covered > 0.5) >= 22
    assert np.mean(~found[~ndi.binary_dilation(truth, iterations=3)]) > 0.97  # background stays background
    probabilities = result["probabilities"]
    assert probabilities.shape == truth.shape + (2,) and probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(axis=2), 1.0, atol=1e-5)
    assert result.scores["scribble_accuracy"] >= 0.98
    assert result.scores["resumed"] == 0.0 and result.scores["steps"] == SCRIBBLE_CNN.param("steps").default


def test_connected_keeps_only_the_scribbled_coins():
    """A cut-out wants the scribbled object, not its look-alikes: with ``connected`` every
    coin region holds a coin scribble, and the unscribbled coins become background."""
    truth = coins_truth()
    markers = coins_scribbles(truth)
    # Without the graph cut the labels are the most probable class, so the constraint
    # shows in the probabilities too.
    result = SCRIBBLE_CNN.run({"image": data.coins(), "markers": markers},
                              QUICK | {"steps": 40, "connected": True, "smoothness": 0})
    regions, count = ndi.label(result["labels"] == 1)
    assert 1 <= count <= 4
    for region in range(1, count + 1):
        assert np.any(markers[regions == region] == 1)
    np.testing.assert_array_equal(np.argmax(result["probabilities"], axis=2) + 1, result["labels"])


def test_the_graph_cut_cleans_the_labels_and_keeps_the_scribbles(coins_run):
    """Two classes: the labels follow a graph cut of the probabilities along colour edges."""
    truth, markers, result, _ = coins_run
    module.clear_cache()
    plain = SCRIBBLE_CNN.run({"image": data.coins(), "markers": markers}, {"device": "cpu", "smoothness": 0})
    module.clear_cache()
    cut, most_probable = result["labels"], plain["labels"]
    np.testing.assert_allclose(result["probabilities"], plain["probabilities"], atol=1e-5)
    assert np.all(cut[markers > 0] == markers[markers > 0]), "scribbled pixels keep their class"
    assert ndi.label(cut == 2)[1] <= ndi.label(most_probable == 2)[1], "no more background specks"
    assert iou(cut == 1, truth) >= iou(most_probable == 1, truth) - 0.01


def test_previews_arrive_while_training(coins_run):
    _, _, result, recorder = coins_run
    assert len(recorder.partials) >= 2
    first_time, first = recorder.partials[0]
    assert first_time < recorder.finished
    assert set(first.outputs) == {"labels", "probabilities"}
    assert first.outputs["labels"].shape == first.outputs["probabilities"].shape[:2]
    assert "metric" in first.scores  # the training loss, plotted by the window
    steps = [partial.iterations for _, partial in recorder.partials]
    assert steps == sorted(steps) and steps[-1] < result.iterations


def _astronaut() -> tuple[np.ndarray, np.ndarray]:
    """A 96 x 128 crop of the astronaut's face with a stroke on it and strokes around it."""
    image = np.ascontiguousarray(data.astronaut()[40:136, 160:288])
    markers = np.zeros(image.shape[:2], np.uint8)
    markers[44:50, 44:84] = 1
    markers[2:5, 2:-2] = 2
    markers[-5:-2, 2:-2] = 2
    return image, markers


def test_running_again_continues_training_and_restart_forgets():
    image, markers = _astronaut()
    inputs = {"image": image, "markers": markers}
    first = SCRIBBLE_CNN.run(inputs, QUICK)
    assert first.scores["resumed"] == 0.0 and first.scores["total_steps"] == QUICK["steps"]

    markers[20:24, 40:90] = 2  # a correcting scribble on the same image
    again = SCRIBBLE_CNN.run({"image": image, "markers": markers}, QUICK)
    assert again.scores["resumed"] == 1.0
    assert again.scores["steps"] == QUICK["resume_steps"]
    assert again.scores["total_steps"] == QUICK["steps"] + QUICK["resume_steps"]

    other_image = SCRIBBLE_CNN.run({"image": image[::-1].copy(), "markers": markers}, QUICK)
    assert other_image.scores["resumed"] == 0.0

    restarted = SCRIBBLE_CNN.run(inputs | {"markers": _astronaut()[1]}, QUICK | {"restart": True})
    assert restarted.scores["resumed"] == 0.0 and restarted.scores["total_steps"] == QUICK["steps"]
    # Same seed, scribbles and settings from new weights: the first run exactly.
    np.testing.assert_array_equal(restarted["labels"], first["labels"])
    np.testing.assert_allclose(restarted["probabilities"], first["probabilities"], atol=1e-5)


def test_cancel_stops_promptly_and_leaves_the_cache_usable():
    image, markers = _astronaut()
    recorder = Recorder(cancel_after_partials=1)
    with pytest.raises(Cancelled):
        SCRIBBLE_CNN.run({"image": image, "markers": markers}, QUICK | {"steps": 2000}, recorder)
    assert time.perf_counter() - recorder.cancelled_at < 1.0
    # The interrupted network stays cached and unlocked: the next run resumes from it.
    result = SCRIBBLE_CNN.run({"image": image, "markers": markers}, QUICK | {"steps": 2000})
    assert result.scores["resumed"] == 1.0


def test_a_new_run_waits_for_the_stale_one_on_the_same_network():
    image, markers = _astronaut()
    inputs = {"image": image, "markers": markers}
    stale = Recorder(cancel_after_partials=None)
    errors = []

    def run_stale():
        try:
            SCRIBBLE_CNN.run(inputs, QUICK | {"steps": 5000}, stale)
        except Cancelled as error:
            errors.append(error)

    thread = threading.Thread(target=run_stale)
    thread.start()
    while not stale.partials:  # the stale run holds the network now
        time.sleep(0.01)
        assert thread.is_alive()
    threading.Timer(0.3, stale.cancel).start()
    fresh = SCRIBBLE_CNN.run(inputs, QUICK)
    thread.join(timeout=10)
    assert errors and not thread.is_alive()
    assert fresh.scores["resumed"] == 1.0


def test_tiled_prediction_agrees_with_one_tile():
    image, markers = _astronaut()
    inputs = {"image": image, "markers": markers}
    whole = SCRIBBLE_CNN.run(inputs, QUICK | {"tile_size": 4096, "restart": True})
    tiled = SCRIBBLE_CNN.run(inputs, QUICK | {"tile_size": 64, "restart": True})
    difference = np.abs(whole["probabilities"] - tiled["probabilities"])
    assert difference.mean() < 0.01 and np.quantile(difference, 0.99) < 0.1
    assert np.mean(whole["labels"] == tiled["labels"]) > 0.99


def test_large_images_train_at_the_working_resolution():
    image = np.ascontiguousarray(np.repeat(np.repeat(_astronaut()[0], 4, axis=0), 4, axis=1))  # 384 x 512
    markers = np.repeat(np.repeat(_astronaut()[1], 4, axis=0), 4, axis=1)
    recorder = Recorder()
    result = SCRIBBLE_CNN.run({"image": image, "markers": markers}, QUICK | {"working_megapixels": 0.02}, recorder)
    scale = result.scores["working_scale"]
    assert scale == pytest.approx(np.sqrt(0.02e6 / image[..., 0].size))  # about a third
    assert result["labels"].shape == image.shape[:2]
    assert result["probabilities"].shape == image.shape[:2] + (2,)
    preview = recorder.partials[0][1]  # previews stay at the working size: the window stretches them
    assert preview.outputs["labels"].shape == (round(384 * scale), round(512 * scale))


def test_bad_input_is_a_clear_error():
    image, markers = _astronaut()
    with pytest.raises(InputError, match="two classes.*none"):
        SCRIBBLE_CNN.run({"image": image, "markers": np.zeros_like(markers)}, QUICK)
    with pytest.raises(InputError, match="only class 1"):
        SCRIBBLE_CNN.run({"image": image, "markers": (markers == 1).astype(np.uint8)}, QUICK)
    with pytest.raises(InputError, match="markers are"):
        SCRIBBLE_CNN.run({"image": image, "markers": markers[:-1]}, QUICK)
    with pytest.raises(InputError, match="negative"):
        SCRIBBLE_CNN.run({"image": image, "markers": markers.astype(np.int16) - 1}, QUICK)
    with pytest.raises(InputError, match="not a mask"):
        SCRIBBLE_CNN.run({"image": image, "markers": markers > 0}, QUICK)
    with pytest.raises(InputError, match="gray, RGB or RGBA"):
        SCRIBBLE_CNN.run({"image": np.zeros((10, 10, 2)), "markers": np.zeros((10, 10), np.uint8)}, QUICK)


def test_a_device_torch_cannot_use_is_a_clear_error():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    image, markers = _astronaut()
    with pytest.raises(InputError, match="CUDA"):
        SCRIBBLE_CNN.run({"image": image, "markers": markers}, QUICK | {"device": "cuda"})


def test_class_ids_and_gray_images():
    image, markers = _astronaut()
    gray = image.mean(axis=2).astype(np.uint16) * 200  # 16-bit gray
    ids = np.where(markers == 1, 7, np.where(markers == 2, 3, 0)).astype(np.int32)
    # Most probable class (no graph cut), so labels and probability planes can be compared.
    result = SCRIBBLE_CNN.run({"image": gray, "markers": ids}, QUICK | {"smoothness": 0})
    assert set(np.unique(result["labels"])) <= {3, 7}
    assert result["probabilities"].shape == gray.shape + (2,)  # planes for ids 3 then 7
    assert np.all(result["labels"][ids > 0][np.argmax(result["probabilities"], axis=2)[ids > 0] == 1] == 7)


def test_memory_estimate_is_positive_and_grows_with_the_tile():
    # A 2000 x 3000 photo: its 6 MP are reduced to 1 MP, larger than a 768-pixel tile.
    inputs = {"image": np.zeros((2000, 3000, 3), np.uint8), "markers": np.zeros((2000, 3000), np.uint8)}
    inputs["markers"][:10, :10], inputs["markers"][-10:, -10:] = 1, 2
    settings = {"working_megapixels": 1.0}
    small = SCRIBBLE_CNN.estimate_memory(inputs, settings | {"tile_size": 256})
    large = SCRIBBLE_CNN.estimate_memory(inputs, settings | {"tile_size": 1024})
    assert 0 < small < large
    default_batch = SCRIBBLE_CNN.estimate_memory(inputs, settings)
    assert SCRIBBLE_CNN.estimate_memory(inputs, settings | {"batch_size": 32}) > default_batch
    # The full-size outputs alone: probabilities (twice, two classes) and labels.
    assert small > 2000 * 3000 * (8 * 2 + 4)


def test_filters_turn_with_the_image():
    """Every filter is rotation invariant, which the 90-degree augmentation relies on."""
    image = data.astronaut()[100:164, 180:260].astype(np.float32) / 255
    stack, powers, offsets = module.pixel_features(image)
    turned, _, _ = module.pixel_features(np.ascontiguousarray(np.rot90(image)))
    assert stack.shape[2] == len(powers) == len(offsets) == module._input_channels(3, True)
    inner = (slice(12, -12), slice(12, -12))  # away from the border handling
    np.testing.assert_allclose(np.rot90(stack)[inner], turned[inner], atol=1e-4)
