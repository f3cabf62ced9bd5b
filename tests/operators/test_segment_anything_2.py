"""SAM 2.1 through the Segment Anything operator: the checkpoint loader, the configuration
chosen from the weights, prompts in the model's square frame, the previous mask, Cancel,
and the message without the sam2 package.

A randomly initialised SAM 2.1 of the sam2 package's own classes, scaled down
(tiny_models.save_tiny_sam2), is saved as the publisher saves checkpoints; its masks mean
nothing, so these tests check loading, shapes, frames, caching and the mask prompt.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage import data
from tiny_models import save_tiny_sam2

from maskwork.operators import Cancelled, InputError, RunContext, extras, get
from maskwork.operators.dl import segment_anything as sam
from maskwork.operators.dl import segment_anything_2 as sam2

needs_sam2 = pytest.mark.skipif(importlib.util.find_spec("sam2") is None, reason="needs the sam2 package")

SEGMENT = get("segment_anything")
PHOTO = data.astronaut()[:200, :300]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_tiny_sam2(tmp_path_factory.mktemp("sam2") / "tiny_sam2.pt")


@pytest.fixture(autouse=True)
def fresh_caches(monkeypatch):
    monkeypatch.setattr(sam, "_embeddings", OrderedDict())
    monkeypatch.setattr(sam, "_logits", OrderedDict())


def segment(checkpoint, **inputs):
    return SEGMENT.run({"image": PHOTO, **inputs}, {"checkpoint": str(checkpoint), "device": "cpu"})


@needs_sam2
@pytest.mark.parametrize("config", ["sam2.1_hiera_t", "sam2.1_hiera_b+"])
def test_published_architectures_are_recognised_from_their_weights(config):
    package = Path(importlib.util.find_spec("sam2").origin).parent
    state = sam2.build(package / "configs" / "sam2.1" / f"{config}.yaml").state_dict()
    assert sam2.holds_sam2(state) and sam2.official_config_name(state) == config
    assert sam2.config_file(Path("elsewhere.pt"), state) == package / "configs" / "sam2.1" / f"{config}.yaml"
    del state["no_obj_embed_spatial"]  # what SAM 2.1 added to SAM 2.0
    assert sam2.official_config_name(state) == config.replace("sam2.1", "sam2")


@needs_sam2
def test_box_and_clicks_give_masks_of_the_image_from_one_encoding(checkpoint):
    by_box = segment(checkpoint, rect=(60, 50, 120, 80))
    by_click = segment(checkpoint, points=[(100, 150, 1)])
    by_both = segment(checkpoint, rect=(60, 50, 120, 80), points=[(100, 150, 1), (20, 20, 0)])
    for result in (by_box, by_click, by_both):
        assert result["mask"].shape == (200, 300) and result["mask"].dtype == bool
        assert result.scores["model"] == "tiny_sam2"  # the configuration beside the checkpoint
        assert np.isfinite(result.scores["predicted_iou"])
    assert not by_box.scores["embedding_cached"] and by_click.scores["embedding_cached"]


@needs_sam2
def test_the_image_is_stretched_to_the_models_square(checkpoint):
    embedding = sam.prepare_embedding(PHOTO, str(checkpoint), device="cpu")
    assert embedding.input_size == (128, 128) and embedding.original_size == (200, 300)
    assert embedding.features["image_embed"].shape == (1, 32, 8, 8)
    assert [level.shape[-1] for level in embedding.features["high_res_feats"]] == [32, 16]
    prompts = sam.model_prompts((60, 50, 120, 80), [(100, 150, 1)], (200, 300), embedding.input_size)
    coords, labels = prompts.corner_points()  # the box first, as SAM 2's predictor sends it
    np.testing.assert_allclose(coords, [[25.6, 32], [179 * 128 / 300, 129 * 0.64], [64, 64]], rtol=1e-5)
    assert labels.tolist() == [2, 3, 1]


@needs_sam2
def test_cancelling_stops_the_encoder_between_trunk_blocks(checkpoint):
    progress = []

    def cancel_at_the_third_block(fraction, message):
        progress.append(message)
        if progress.count("encoding the image") == 3:
            ctx.cancel()

    ctx = RunContext(on_progress=cancel_at_the_third_block)
    with pytest.raises(Cancelled):
        sam.prepare_embedding(PHOTO, str(checkpoint), device="cpu", ctx=ctx)
    assert progress.count("encoding the image") == 3 and not sam._embeddings  # nothing half-done is cached
    with sam._lock:
        model = sam.loaded_model(checkpoint, "auto", torch.device("cpu")).model
    assert not any(block._forward_pre_hooks for block in model.image_encoder.trunk.blocks)
    assert segment(checkpoint, points=[(100, 150, 1)])["mask"].shape == (200, 300)  # the model still runs


@needs_sam2
def test_the_previous_mask_is_given_back_as_the_models_own_logits(checkpoint, monkeypatch):
    converted = []
    to_logits = sam2.mask_to_logits
    monkeypatch.setattr(sam2, "mask_to_logits", lambda *args: converted.append(args) or to_logits(*args))
    first = segment(checkpoint, points=[(100, 150, 1)])
    segment(checkpoint, points=[(100, 150, 1), (120, 180, 1)], mask=first["mask"])
    assert not converted  # its own logits were remembered
    drawn = np.zeros((200, 300), bool)
    drawn[40:160, 100:250] = True
    segment(checkpoint, points=[(100, 150, 1), (120, 180, 1)], mask=drawn)
    assert len(converted) == 1 and np.array_equal(converted[0][0], drawn) and converted[0][1:3] == ((128, 128), 128)


@needs_sam2
def test_the_mask_prompt_reaches_the_decoder(checkpoint):
    with sam._lock:
        model = sam.loaded_model(checkpoint, "auto", torch.device("cpu"))
    embedding = sam.prepare_embedding(PHOTO, str(checkpoint), device="cpu")
    prompts = sam.model_prompts(None, [(100, 150, 1)], (200, 300), embedding.input_size)
    previous = np.zeros((200, 300), bool)
    previous[50:150, 100:200] = True
    without = model.decode(embedding, prompts, None, None, False)
    refined = model.decode(embedding, prompts, previous, None, False)
    assert without.low_res_logits.shape == refined.low_res_logits.shape == (1, 1, 32, 32)
    assert not torch.equal(without.low_res_logits, refined.low_res_logits)


@needs_sam2
def test_the_catalogue_name_finds_the_downloaded_file(checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("MASKWORK_MODELS", str(tmp_path))
    shutil.copy(checkpoint, tmp_path / "sam2.1_hiera_tiny.pt")
    # The tiny architecture is not a published one: its configuration travels beside it.
    shutil.copy(checkpoint.with_suffix(".yaml"), tmp_path / "sam2.1_hiera_tiny.yaml")
    result = SEGMENT.run({"image": PHOTO, "points": [(100, 150, 1)]}, {"checkpoint": "sam2.1_hiera_tiny", "device": "cpu"})
    assert result.scores["model"] == "sam2.1_hiera_tiny" and result["mask"].shape == (200, 300)


@needs_sam2
def test_an_unpublished_architecture_needs_its_configuration(checkpoint, tmp_path):
    alone = tmp_path / "fine_tuned.pt"
    shutil.copy(checkpoint, alone)
    with pytest.raises(InputError, match="unpublished architecture.*fine_tuned.yaml"):
        segment(alone, points=[(100, 150, 1)])


def test_half_precision_is_bfloat16_on_cuda_only():
    assert sam2.autocast_dtype(torch.device("cuda")) == torch.bfloat16
    assert sam2.autocast_dtype(torch.device("cpu")) is None
    assert sam2.autocast_dtype(torch.device("mps")) is None


def test_without_the_sam2_package_the_message_names_the_extra(monkeypatch):
    # The weights of a published SAM 2.1 tiny, as far as the configuration choice reads them.
    state = {"image_encoder.trunk.patch_embed.proj.weight": torch.zeros(96, 3, 7, 7), "no_obj_embed_spatial": torch.zeros(1)}
    state.update({f"image_encoder.trunk.blocks.{index}.norm1.weight": torch.zeros(96) for index in range(12)})
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name == "sam2" else find_spec(name, *args))
    monkeypatch.setattr(extras, "runs_as_desktop_application", lambda: True)  # installed with `pip install maskwork`
    with pytest.raises(InputError, match=r"pip install 'maskwork\[sam2\]'"):
        sam2.config_file(Path("sam2.1_hiera_tiny.pt"), state)


class _Resize(torch.nn.Module):
    """torchvision's tensor Resize to a fixed size: bilinear, antialiased, half-pixel centres."""

    def __init__(self, size: tuple[int, int]) -> None:
        super().__init__()
        self.size = [int(side) for side in size]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.interpolate(
            image[None], size=self.size, mode="bilinear", align_corners=False, antialias=True
        )[0]


class _Normalize(torch.nn.Module):
    def __init__(self, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.mean, self.std = mean, std

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, dtype=image.dtype).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=image.dtype).view(-1, 1, 1)
        return (image - mean) / std


class _ToTensor:
    def __call__(self, picture: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(picture)).permute(2, 0, 1).float() / 255


@pytest.fixture
def publishers_predictor(checkpoint, monkeypatch):
    """The sam2 package's own SAM2ImagePredictor on the tiny model, importable here through
    a stand-in for the three torchvision transforms it uses (torchvision itself cannot load
    beside this torch)."""
    import types

    transforms = types.ModuleType("torchvision.transforms")
    transforms.Resize, transforms.Normalize, transforms.ToTensor = _Resize, _Normalize, _ToTensor
    vision = types.ModuleType("torchvision")
    vision.transforms = transforms
    monkeypatch.setitem(sys.modules, "torchvision", vision)
    monkeypatch.setitem(sys.modules, "torchvision.transforms", transforms)
    for name in ("sam2.utils.transforms", "sam2.sam2_image_predictor"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    try:
        from sam2.sam2_image_predictor import SAM2ImagePredictor

        with sam._lock:
            model = sam.loaded_model(checkpoint, "auto", torch.device("cpu")).model
        predictor = SAM2ImagePredictor(model)
        side = model.image_size
        predictor._bb_feat_sizes = [(side // 4, side // 4), (side // 8, side // 8), (side // 16, side // 16)]
        predictor.set_image(PHOTO)
        yield predictor
    finally:  # nothing built on the stand-in outlives the test
        for name in ("sam2.utils.transforms", "sam2.sam2_image_predictor"):
            sys.modules.pop(name, None)
            parent, _, child = name.rpartition(".")
            if hasattr(sys.modules.get(parent), child):
                delattr(sys.modules[parent], child)


@needs_sam2
def test_masks_equal_the_publishers_image_predictor(checkpoint, publishers_predictor):
    """Our pre-processing, prompt frame, mask prompt and upscaling give the masks of the
    sam2 package's own predictor: a click, a box with clicks, then a click refining."""
    click = segment(checkpoint, points=[(100, 150, 1)])
    masks, scores, logits = publishers_predictor.predict(np.array([[150, 100]]), np.array([1]), multimask_output=True)
    best = int(np.argmax(scores))
    assert (click["mask"] == masks[best]).mean() > 0.999

    boxed = segment(checkpoint, rect=(60, 50, 120, 80), points=[(100, 150, 1), (20, 20, 0)])
    theirs, _, _ = publishers_predictor.predict(
        np.array([[150, 100], [20, 20]]), np.array([1, 0]), box=np.array([60, 50, 179, 129]), multimask_output=False
    )
    assert (boxed["mask"] == theirs[0]).mean() > 0.999

    refined = segment(checkpoint, points=[(100, 150, 1), (130, 200, 1)], mask=click["mask"])
    theirs, _, _ = publishers_predictor.predict(
        np.array([[150, 100], [200, 130]]), np.array([1, 1]), mask_input=logits[best][None], multimask_output=False
    )
    assert (refined["mask"] == theirs[0]).mean() > 0.999
    for result in (click, boxed, refined):
        assert 0.01 < result["mask"].mean() < 0.99, result["mask"].mean()  # masks worth comparing
