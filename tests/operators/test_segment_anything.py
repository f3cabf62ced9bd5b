"""Segment Anything (the original SAM): checkpoint loading, prompt plumbing, the previous
mask as a mask prompt, the embedding cache and model names.

A randomly initialised tiny SAM (tiny_models.save_tiny_sam) stands in for the official
checkpoints: its masks mean nothing, so these tests check shapes, thresholds, coordinates
and caching, and compare with SAM's own end-to-end forward pass. EfficientSAM and SAM 2
have their own test modules.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
import textwrap
from collections import OrderedDict

import cv2
import numpy as np
import pytest
import torch
from skimage import data
from tiny_models import save_tiny_sam

from maskwork.core import io
from maskwork.operators import Cancelled, InputError, RunContext, get
from maskwork.operators.dl import segment_anything as sam

pytestmark = pytest.mark.skipif(importlib.util.find_spec("segment_anything") is None, reason="needs segment-anything")

SEGMENT = get("segment_anything")
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_tiny_sam(tmp_path_factory.mktemp("sam") / "tiny_sam.pth")


@pytest.fixture
def encoder_calls(monkeypatch) -> list:
    """Start from an empty embedding cache and record every encoder pass."""
    monkeypatch.setattr(sam, "_embeddings", OrderedDict())
    calls = []
    encode = sam._encode

    def counting(model, image, device, ctx):
        calls.append(image.shape)
        return encode(model, image, device, ctx)

    monkeypatch.setattr(sam, "_encode", counting)
    return calls


def segment(image, checkpoint, **inputs):
    params = inputs.pop("params", {})
    return SEGMENT.run({"image": image, **inputs}, {"checkpoint": str(checkpoint), "device": "cpu", **params})


# ------------------------------------------------------------------ the checkpoint


def test_the_configuration_is_read_from_the_weights(checkpoint):
    config = sam.infer_config(torch.load(checkpoint, weights_only=True))
    assert (config.embed_dim, config.depth, config.num_heads, config.global_attn_indexes) == (32, 2, 2, (1,))
    assert (config.image_size, config.patch_size, config.window_size) == (512, 16, 14)
    assert (config.prompt_embed_dim, config.decoder_mlp_dim, config.iou_head_hidden_dim) == (32, 64, 32)
    assert config.name == "custom"


@pytest.mark.parametrize("name", ["vit_b", "vit_l", "vit_h"])
def test_official_architectures_are_recognised(name):
    official = sam.OFFICIAL_CONFIGS[name]
    # Built on the meta device: the weights' shapes without their memory.
    shapes = sam.build_sam(official, sam.import_sam_modeling()).state_dict()
    assert sam.infer_config(shapes) == official and sam.infer_config(shapes).name == name


def test_the_loaded_model_holds_exactly_the_saved_weights(checkpoint):
    saved = torch.load(checkpoint, weights_only=True)
    with sam._lock:
        model = sam.loaded_model(checkpoint, "auto", CPU).sam
    loaded = model.state_dict()
    assert loaded.keys() == saved.keys()
    assert all(torch.equal(loaded[key], saved[key]) for key in saved)
    assert not any(t.is_meta for t in [*model.parameters(), *model.buffers()])
    assert model.pixel_mean.flatten().tolist() == pytest.approx([123.675, 116.28, 103.53])


# ------------------------------------------------------------------ prompts and masks


def test_prompts_map_into_the_encoder_frame():
    # A 600x800 image is resized to 768x1024 (scale 1.28) before the encoder.
    assert sam.resized_shape(600, 800, 1024) == (768, 1024)
    assert sam.resized_shape(1000, 10, 1024) == (1024, 10)  # 10.24 rounds down, as in SAM
    prompts = sam.model_prompts((100, 50, 200, 100), [(300, 400, 1), (0, 799.5, 0)], (600, 800), (768, 1024))
    np.testing.assert_allclose(prompts.coords, [[512, 384], [1023.36, 0]])  # (x, y)
    np.testing.assert_array_equal(prompts.labels, [1, 0])
    np.testing.assert_allclose(prompts.box, [128, 64, 299 * 1.28, 149 * 1.28])  # last pixel inside


def test_box_and_point_prompts_give_a_mask_of_the_image(checkpoint, encoder_calls):
    photo = data.astronaut()[:300, :400]
    by_box = segment(photo, checkpoint, rect=(150, 20, 120, 150))
    by_point = segment(photo, checkpoint, points=[(80, 210, 1)])
    by_both = segment(photo, checkpoint, rect=(150, 20, 120, 150), points=[(80, 210, 1), (250, 50, 0)])
    for result in (by_box, by_point, by_both):
        assert result["mask"].shape == (300, 400) and result["mask"].dtype == bool
        assert result.scores["model"] == "custom"
        assert np.isfinite(result.scores["predicted_iou"])
    assert len(encoder_calls) == 1  # one image, one encoder pass
    assert encoder_calls[0] == (300, 400, 3)


def test_the_mask_is_the_logits_above_the_model_threshold(checkpoint, monkeypatch):
    with sam._lock:
        model = sam.loaded_model(checkpoint, "auto", CPU).sam
    photo = data.coffee()[:200, :300]
    monkeypatch.setattr(model, "mask_threshold", -1e9, raising=False)
    assert segment(photo, checkpoint, points=[(100, 150, 1)])["mask"].all()
    monkeypatch.setattr(model, "mask_threshold", 1e9, raising=False)
    everything_below = segment(photo, checkpoint, points=[(100, 150, 1)])
    assert not everything_below["mask"].any() and everything_below.bounds is None


def test_the_mask_equals_sams_own_forward_pass(checkpoint):
    """The block-by-block encoder, prompt mapping and upscaling give Sam.forward's mask."""
    photo = data.chelsea()  # 300x451
    rect, points = (140, 30, 200, 200), [(120, 250, 1), (280, 20, 0)]
    ours = segment(photo, checkpoint, rect=rect, points=points)

    with sam._lock:
        model = sam.loaded_model(checkpoint, "auto", CPU).sam
    input_size = sam.resized_shape(300, 451, model.image_encoder.img_size)
    prompts = sam.model_prompts(rect, points, (300, 451), input_size)
    resized = cv2.resize(photo, input_size[::-1], interpolation=cv2.INTER_LINEAR)
    record = {
        "image": torch.from_numpy(resized).permute(2, 0, 1).float(),
        "original_size": (300, 451),
        "point_coords": torch.from_numpy(prompts.coords)[None],
        "point_labels": torch.from_numpy(prompts.labels)[None],
        "boxes": torch.from_numpy(prompts.box)[None],
    }
    theirs = model([record], multimask_output=False)[0]["masks"][0, 0].numpy()
    assert theirs.any() and not theirs.all()  # a mask worth comparing
    assert (ours["mask"] == theirs).mean() > 0.999  # float summation order aside, identical


def test_the_previous_mask_is_given_back_as_the_models_own_logits(checkpoint, monkeypatch):
    """As in SAM's interactive loop: each click hands the decoder the low-resolution logits
    it produced the previous mask from."""
    photo = data.astronaut()[:300, :400]
    given = []
    decode = sam._decode

    def recording(model, embedding, prompts, mask_logits, multimask):
        decoded = decode(model, embedding, prompts, mask_logits, multimask)
        given.append((mask_logits, decoded))
        return decoded

    monkeypatch.setattr(sam, "_decode", recording)
    first = segment(photo, checkpoint, points=[(80, 210, 1)])
    segment(photo, checkpoint, points=[(80, 210, 1), (150, 200, 1)], mask=first["mask"])
    segment(photo, checkpoint, points=[(80, 210, 1), (150, 200, 1)])
    assert given[0][0] is None and given[2][0] is None
    assert given[1][0] is given[0][1].low_res_logits
    assert given[1][0].shape == (1, 1, 128, 128)  # a quarter of the 512-pixel encoder
    assert not torch.equal(given[1][1].low_res_logits, given[2][1].low_res_logits)  # the prompt counts


def test_a_mask_the_model_did_not_make_becomes_logits_in_the_encoders_frame():
    mask = np.zeros((300, 400), bool)
    mask[:, :200] = True  # the left half
    logits = sam.mask_to_logits(mask, (384, 512), 512, CPU)
    assert logits.shape == (1, 1, 128, 128)
    # The resized image fills the top 96 of 128 low-resolution rows (the rest is padding);
    # its left half is the first 64 columns.
    inside = logits[0, 0].numpy() > 0
    assert inside[:96, :64].all() and not inside[:96, 64:].any() and not inside[96:].any()
    assert set(np.unique(logits.numpy()).tolist()) == {-10.0, 10.0}


def test_a_foreign_previous_mask_refines_too(checkpoint):
    photo = data.astronaut()[:300, :400]
    drawn = np.zeros((300, 400), bool)
    drawn[50:200, 100:300] = True
    result = segment(photo, checkpoint, points=[(80, 210, 1), (150, 200, 1)], mask=drawn)
    assert result["mask"].shape == (300, 400)


def test_a_previous_mask_of_another_size_is_refused(checkpoint, encoder_calls):
    with pytest.raises(InputError, match="previous mask is \\(5, 5\\)"):
        segment(data.coins(), checkpoint, points=[(10, 10, 1)], mask=np.zeros((5, 5), bool))
    assert not encoder_calls


# ------------------------------------------------------------------ the embedding cache


def test_the_embedding_is_computed_once_per_image(checkpoint, encoder_calls):
    photo = data.astronaut()[::4, ::4]
    first = segment(photo, checkpoint, points=[(40, 60, 1)])
    second = segment(photo.copy(), checkpoint, rect=(20, 20, 60, 60))
    assert len(encoder_calls) == 1
    assert not first.scores["embedding_cached"] and first.scores["encoder_seconds"] > 0
    assert second.scores["embedding_cached"] and second.scores["encoder_seconds"] == 0.0
    assert second.scores["decoder_seconds"] > 0

    changed = photo.copy()
    changed[0, 0] += 1
    assert not segment(changed, checkpoint, points=[(40, 60, 1)]).scores["embedding_cached"]
    assert len(encoder_calls) == 2


def test_the_window_can_prepare_the_embedding_before_the_first_prompt(checkpoint, encoder_calls):
    photo = data.camera()[::8, ::8]  # gray: encoded as RGB
    progress = []
    embedding = sam.prepare_embedding(photo, str(checkpoint), "auto", "cpu", RunContext(on_progress=lambda f, m: progress.append(f)))
    assert embedding.features.shape == (1, 32, 32, 32) and embedding.original_size == (64, 64)
    assert embedding.input_size == (512, 512) and not embedding.cached
    assert len(progress) >= 3 and progress == sorted(progress)  # per encoder block
    assert segment(photo, checkpoint, points=[(30, 30, 1)]).scores["embedding_cached"]
    assert len(encoder_calls) == 1


def test_cancelling_stops_the_encoder_between_blocks(checkpoint, encoder_calls):
    ctx = RunContext(on_progress=lambda fraction, message: message == "encoding the image" and ctx.cancel())
    with pytest.raises(Cancelled):
        sam.prepare_embedding(data.coins()[::4, ::4], str(checkpoint), "auto", "cpu", ctx)
    assert len(encoder_calls) == 1 and not sam._embeddings  # nothing half-done is cached


def test_memory_estimate_counts_the_checkpoint(checkpoint):
    image = {"image": np.zeros((100, 100, 3), np.uint8)}
    without = SEGMENT.estimate_memory(image, {})
    with_file = SEGMENT.estimate_memory(image, {"checkpoint": str(checkpoint)})
    assert with_file - without == checkpoint.stat().st_size


# ------------------------------------------------------------------ bad input


def test_no_model_says_where_to_get_one():
    with pytest.raises(InputError, match="needs a model.*efficient_sam_vitt.*sam_vit_b.*Deep learning > Models"):
        SEGMENT.run({"image": data.coins(), "points": [(10, 10, 1)]}, {"checkpoint": " "})


def test_a_model_not_downloaded_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("MASKWORK_MODELS", str(tmp_path))
    with pytest.raises(InputError, match="'sam_vit_b' is not downloaded.*maskwork models download sam_vit_b"):
        segment(data.coins(), "sam_vit_b", points=[(10, 10, 1)])
    # The default model, the one a new user meets first.
    with pytest.raises(InputError, match="maskwork models download efficient_sam_vitt"):
        SEGMENT.run({"image": data.coins(), "points": [(10, 10, 1)]}, {})


def test_a_catalogue_name_finds_the_downloaded_file(checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("MASKWORK_MODELS", str(tmp_path))
    shutil.copy(checkpoint, tmp_path / "sam_vit_b_01ec64.pth")  # the catalogue's file name
    result = segment(data.coins(), "sam_vit_b", points=[(10, 10, 1)])
    assert result["mask"].shape == data.coins().shape and result.scores["model"] == "custom"


def test_a_missing_file_is_neither_a_file_nor_a_name(tmp_path):
    with pytest.raises(InputError, match="no model file .*sam_vit_b_01ec64.pth.*known models: .*sam_vit_b"):
        segment(data.coins(), tmp_path / "sam_vit_b_01ec64.pth", points=[(10, 10, 1)])


def test_files_that_are_not_sam_checkpoints(tmp_path):
    unet = tmp_path / "unet.pth"
    torch.save(torch.nn.Conv2d(3, 2, 1).state_dict(), unet)
    io.write_image(tmp_path / "photo.png", data.coins())
    for path in (unet, tmp_path / "photo.png"):
        with pytest.raises(InputError, match="not a Segment Anything checkpoint"):
            segment(data.coins(), path, points=[(10, 10, 1)])


def test_a_forced_model_type_must_fit_the_checkpoint(checkpoint):
    with pytest.raises(InputError, match="not a vit_b checkpoint.*custom.*auto"):
        segment(data.coins(), checkpoint, points=[(10, 10, 1)], params={"model_type": "vit_b"})


@pytest.mark.parametrize(
    "prompts, complaint",
    [
        ({}, "needs a prompt"),
        ({"points": []}, "needs a prompt"),
        ({"points": [(10, 10, 0)]}, "needs a prompt"),  # a negative point alone shows no object
        ({"points": [(400, 10, 1)]}, "outside"),
        ({"points": [(10, 10, 2)]}, "label is 1 .* or 0"),
        ({"points": [(10, 10)]}, r"\(row, col, label\)"),
        ({"rect": (0, 0, 0, 5)}, "no area"),
    ],
)
def test_bad_prompts_are_refused_before_the_encoder_runs(checkpoint, encoder_calls, prompts, complaint):
    with pytest.raises(InputError, match=complaint):
        segment(data.coins(), checkpoint, **prompts)
    assert not encoder_calls


def test_the_model_code_loads_when_torchvision_is_broken(tmp_path):
    """segment_anything's __init__ needs torchvision; a torchvision that fails to load
    (built for another torch) must not keep the model code from loading."""
    broken = tmp_path / "torchvision"
    broken.mkdir()
    (broken / "__init__.py").write_text('raise RuntimeError("operator torchvision::nms does not exist")\n')
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {str(tmp_path)!r})
        from maskwork.operators.dl.segment_anything import import_sam_modeling
        modeling = import_sam_modeling()
        print(modeling.Sam.__name__, "SamPredictor" in vars(sys.modules["segment_anything"]))
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["Sam", "False"]
