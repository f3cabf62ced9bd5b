"""EfficientSAM through the Segment Anything operator: the TorchScript loader, prompts in
the model's frame, choosing among candidates with the previous mask, names and errors.

The stand-in (tiny_models.GeometricEfficientSam) has the publisher's TorchScript methods,
arguments and output shapes and draws its candidate masks as discs of known radii around
the clicks (and the box itself), so these tests can tell where each prompt landed and which
candidate was kept. Sizes below are in the stand-in's frames: a 128-pixel encoder square,
32-pixel low-resolution masks.
"""

from __future__ import annotations

import shutil
from collections import OrderedDict

import numpy as np
import pytest
import torch
from skimage import data
from tiny_models import save_tiny_efficient_sam

from maskwork.operators import InputError, get
from maskwork.operators.context import null_context
from maskwork.operators.dl import efficient_sam
from maskwork.operators.dl import segment_anything as sam
from maskwork.operators.dl.prompt_models import Prompts

SEGMENT = get("segment_anything")
CPU = torch.device("cpu")
PHOTO = data.astronaut()[:200, :300]
#: Image pixels per low-resolution mask pixel, along rows and along columns.
ROW_SCALE, COL_SCALE = 200 / 32, 300 / 32


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return save_tiny_efficient_sam(tmp_path_factory.mktemp("efficient_sam") / "efficient_sam_vitt_torchscript.pt")


@pytest.fixture(autouse=True)
def fresh_embeddings(monkeypatch):
    monkeypatch.setattr(sam, "_embeddings", OrderedDict())


def segment(model_file, **inputs):
    params = inputs.pop("params", {})
    return SEGMENT.run({"image": PHOTO, **inputs}, {"checkpoint": str(model_file), "device": "cpu", **params})


def disc_area(radius: float) -> float:
    """Image pixels inside a low-resolution disc of ``radius``: an ellipse on the photo."""
    return np.pi * radius**2 * ROW_SCALE * COL_SCALE


def test_the_file_is_recognised_as_torchscript(model_file, tmp_path):
    assert efficient_sam.is_torchscript(model_file)
    torch.save(torch.nn.Conv2d(3, 2, 1).state_dict(), tmp_path / "weights.pt")
    assert not efficient_sam.is_torchscript(tmp_path / "weights.pt")


def test_a_click_gives_the_best_scored_candidate_around_it(model_file):
    result = segment(model_file, points=[(100, 150, 1)])
    mask = result["mask"]
    assert mask.shape == (200, 300) and mask[100, 150]
    rows, cols = np.nonzero(mask)
    assert abs(rows.mean() - 100) < 2 and abs(cols.mean() - 150) < 2  # centred on the click
    # The candidates score 0.7, 0.9, 0.8: the radius-6 disc is kept.
    assert mask.sum() == pytest.approx(disc_area(6), rel=0.1)
    assert result.scores["model"] == "efficient_sam"
    assert result.scores["predicted_iou"] == pytest.approx(0.9)


def test_a_box_gives_the_box(model_file):
    mask = segment(model_file, rect=(60, 50, 120, 80))["mask"]  # x, y, width, height
    expected = np.zeros_like(mask)
    expected[50:130, 60:180] = True
    # Within the stand-in's low-resolution mask pixels (6 x 9 image pixels here).
    assert mask[expected].all() and (mask & expected).sum() / (mask | expected).sum() > 0.8


def test_the_mask_equals_the_publishers_forward_pass(model_file):
    """Our resize, prompt frame, candidate choice and upscaling give what the model's own
    forward (image at its own size, points in its pixels, best predicted IoU) gives."""
    ours = segment(model_file, points=[(40, 250, 1), (150, 40, 1)])["mask"]
    module = torch.jit.load(str(model_file))
    image = torch.from_numpy(PHOTO).permute(2, 0, 1)[None].float() / 255
    logits, scores = module(image, torch.tensor([[[[250.0, 40.0], [40.0, 150.0]]]]), torch.tensor([[[1, 1]]]))
    theirs = (logits[0, 0, int(scores[0, 0].argmax())] >= 0).numpy()
    assert theirs.any() and not theirs.all()
    assert (ours == theirs).mean() > 0.999


def test_the_image_is_encoded_once(model_file):
    first = segment(model_file, points=[(100, 150, 1)])
    second = segment(model_file, rect=(60, 50, 120, 80))
    assert not first.scores["embedding_cached"] and second.scores["embedding_cached"]


def test_a_click_keeps_the_candidate_closest_to_the_previous_mask(model_file):
    rows, cols = np.ogrid[:200, :300]
    # The previous mask: the radius-12 disc around the first click.
    previous = ((rows - 100) / ROW_SCALE) ** 2 + ((cols - 150) / COL_SCALE) ** 2 <= 12**2
    clicks = [(100, 150, 1), (110, 160, 1)]  # all three candidates hold both clicks
    refined = segment(model_file, points=clicks, mask=previous)["mask"]
    fresh = segment(model_file, points=clicks)["mask"]
    assert refined.sum() > 3 * fresh.sum()  # the radius-12 candidate, not the best scored
    assert (refined & previous).sum() / (refined | previous).sum() > 0.9


def test_a_negative_click_cuts_the_previous_mask(model_file):
    rows, cols = np.ogrid[:200, :300]
    previous = ((rows - 100) / ROW_SCALE) ** 2 + ((cols - 150) / COL_SCALE) ** 2 <= 12**2
    refined = segment(model_file, points=[(100, 150, 1), (100, 150 + 8 * COL_SCALE, 0)], mask=previous)["mask"]
    assert not refined[100, int(150 + 8 * COL_SCALE)]
    assert refined.sum() > disc_area(6)


def test_candidates_that_contradict_a_click_lose_to_those_that_fit():
    candidates = np.zeros((3, 10, 10), bool)
    candidates[0, :5] = True  # top half
    candidates[1] = True  # everything, the negative click included
    candidates[2, :, :5] = True  # left half
    prompts = Prompts(np.array([[2, 2], [8, 8]], np.float32), np.array([1, 0]), None)
    previous = np.zeros((20, 20), bool)
    previous[:12] = True  # closest to "everything", then to the top half
    scores = np.array([0.1, 0.9, 0.5])
    assert efficient_sam.choose_candidate(candidates, scores, prompts, 10, previous) == 0
    assert efficient_sam.choose_candidate(candidates, scores, prompts, 10, None) == 2  # by score


def test_the_box_and_the_newest_clicks_fit_the_decoders_six_points(model_file):
    model = efficient_sam.load(model_file, CPU)
    clicks = np.arange(14, dtype=np.float32).reshape(7, 2)
    prompts = Prompts(clicks, np.array([1, 0, 1, 1, 0, 1, 1]), np.array([0, 1, 50, 60], np.float32))
    coords, labels = model.decoder_points(prompts)
    assert labels.tolist() == [2, 3, 1, 0, 1, 1]
    np.testing.assert_array_equal(coords, np.r_[[[0, 1], [50, 60]], clicks[3:]])
    few = Prompts(clicks[:2], np.array([1, 0]), None)
    assert model.decoder_points(few)[1].tolist() == [1, 0]


def test_the_catalogue_name_finds_the_downloaded_file(model_file, tmp_path, monkeypatch):
    monkeypatch.setenv("MASKWORK_MODELS", str(tmp_path))
    shutil.copy(model_file, tmp_path / "efficient_sam_vitt_torchscript.pt")
    by_default = SEGMENT.run({"image": PHOTO, "points": [(100, 150, 1)]}, {"device": "cpu"})  # the default model
    assert by_default.scores["model"] == "efficient_sam" and by_default["mask"][100, 150]


def test_half_precision_runs_the_encoder_alone_in_float16(model_file, monkeypatch):
    assert efficient_sam.encoder_dtype(torch.device("cuda")) == torch.float16
    assert efficient_sam.encoder_dtype(torch.device("mps")) == torch.float16
    assert efficient_sam.encoder_dtype(CPU) == torch.float32
    # The GPU's choice, taken on the CPU (which has float16 kernels for these layers).
    monkeypatch.setattr(efficient_sam, "encoder_dtype", lambda device: torch.float16)
    model = efficient_sam.load(model_file, CPU)
    assert model.encoder is not model.decoder
    assert model.encoder.image_encoder.proj.weight.dtype == torch.float16
    assert model.decoder.image_encoder.proj.weight.dtype == torch.float32
    embedding = model.encode(PHOTO, null_context())
    assert embedding.features.dtype == torch.float32  # what the float32 decoder reads
    prompts = Prompts(np.array([[64, 64]], np.float32), np.array([1]), None)
    assert model.decode(embedding, prompts, None, None, True).mask[100, 150]


def test_other_torchscript_models_are_refused(tmp_path):
    other = tmp_path / "unet.pt"
    torch.jit.script(torch.nn.Conv2d(3, 2, 1)).save(str(other))
    with pytest.raises(InputError, match="TorchScript model but not EfficientSAM.*get_image_embeddings"):
        segment(other, points=[(10, 10, 1)])


def test_a_forced_sam_architecture_is_refused(model_file):
    with pytest.raises(InputError, match="is EfficientSAM, not a vit_b checkpoint"):
        segment(model_file, points=[(10, 10, 1)], params={"model_type": "vit_b"})

