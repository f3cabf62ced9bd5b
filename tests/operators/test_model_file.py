"""Run model (Deep learning): TorchScript and ONNX files the person brings, with sidecars."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest
import torch
from skimage import data
from tiny_models import BRIGHT_LEVEL, bright_pixel_net, save_onnx, save_torchscript

from maskwork.core import io, measure, pixels
from maskwork.operators import InputError, get
from maskwork.operators.dl import model_file

RUN_MODEL = get("run_model")


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    """The bright-pixel network as TorchScript and as ONNX (free and fixed 64x64 sides)."""
    folder = tmp_path_factory.mktemp("models")
    net = bright_pixel_net()
    fixed = folder / "bright_fixed64.onnx"
    torch.onnx.export(net, (torch.rand(1, 3, 64, 64),), str(fixed), input_names=["image"], verbose=False)
    return {
        "torchscript": save_torchscript(net, folder / "bright.pt"),
        "onnx": save_onnx(net, folder / "bright.onnx"),
        "onnx_fixed": fixed,
    }


@pytest.fixture
def coins() -> np.ndarray:
    return data.coins()  # 303x384 uint8: bright coins on a darker table


def run(image, model, **params):
    return RUN_MODEL.run({"image": image}, {"model": str(model), "device": "cpu", **params})


def bright(image: np.ndarray, level: float = BRIGHT_LEVEL) -> np.ndarray:
    """What the bright-pixel network should find: mean channel value in [0, 1] above ``level``."""
    pixels = image.astype(np.float32) / 255
    return (pixels.mean(axis=2) if pixels.ndim == 3 else pixels) > level


# ------------------------------------------------------------------ running models


def test_torchscript_and_onnx_segment_the_coins_as_the_threshold_they_encode(models, coins):
    torchscript = run(coins, models["torchscript"], tile_size=128)
    onnx = run(coins, models["onnx"], tile_size=128)

    expected = bright(coins)
    assert 0.2 < expected.mean() < 0.5  # the coins are a real share of the photo
    for result in (torchscript, onnx):
        assert result["labels"].dtype == np.uint8 and result["labels"].shape == coins.shape
        assert measure.iou(result["labels"] == 1, expected) == 1.0
        assert result["probabilities"].shape == (*coins.shape, 2)
        np.testing.assert_allclose(result["probabilities"].sum(axis=2), 1.0, atol=1e-5)
    np.testing.assert_allclose(torchscript["probabilities"], onnx["probabilities"], atol=1e-5)
    assert (torchscript.scores["format"], onnx.scores["format"]) == ("TorchScript", "ONNX")
    assert torchscript.scores["tiles"] == 3 * 4  # 128-pixel tiles with 32 overlap over 303x384
    assert torchscript.scores["fraction_1"] == pytest.approx(expected.mean())


def test_tiles_blend_to_the_untiled_prediction(models):
    photo = data.astronaut()[:200, :260]
    whole = run(photo, models["torchscript"], tile_size=512)
    tiled = run(photo, models["torchscript"], tile_size=64, overlap=24)
    assert whole.scores["tiles"] == 1 and tiled.scores["tiles"] > 10
    np.testing.assert_allclose(tiled["probabilities"], whole["probabilities"], atol=1e-5)
    np.testing.assert_array_equal(tiled["labels"], whole["labels"])


def test_a_fixed_size_onnx_model_gets_padded_tiles_and_cropped_outputs(models):
    # 100x150 is no multiple of the model's 64x64 input: edge tiles are padded and cropped.
    photo = data.astronaut()[100:200, 150:300]
    result = run(photo, models["onnx_fixed"], tile_size=300)
    assert result["labels"].shape == (100, 150)
    np.testing.assert_array_equal(result["labels"] == 1, bright(photo))
    described = model_file.describe_model(models["onnx_fixed"])
    assert described["inputs"][0]["shape"] == [1, 3, 64, 64]
    assert described["settings"]["input_size"] == (64, 64) and described["settings"]["fixed_size"]


def test_sidecar_normalisation_and_class_names_are_honoured(models, coins, tmp_path):
    model = save_torchscript(bright_pixel_net(), tmp_path / "coins.pt")
    # Pixels reach the net as (x * 255 - 63.75) / 255 = x - 0.25: it now finds x > 0.75.
    sidecar = {"scale": 255, "mean": 63.75, "std": [255, 255, 255], "classes": ["table", "coin"], "multiple_of": 32}
    (tmp_path / "coins.json").write_text(json.dumps(sidecar))

    result = run(coins, model)

    expected = bright(coins, BRIGHT_LEVEL + 0.25)
    np.testing.assert_array_equal(result["labels"] == 1, expected)
    assert result.scores["classes"] == "table, coin"
    assert result.scores["fraction_coin"] == pytest.approx(expected.mean())
    assert result.scores["fraction_table"] == pytest.approx(1 - expected.mean())
    assert model_file.describe_model(model)["sidecar"] == str(tmp_path / "coins.json")


def test_a_gray_model_gets_the_luminance_of_colour_images(tmp_path):
    model = save_torchscript(bright_pixel_net(in_channels=1), tmp_path / "gray.pt")
    (tmp_path / "gray.pt.json").write_text('{"channels": "gray"}')  # <model>.json form
    photo = data.astronaut()[:128, :128]
    result = run(photo, model)
    np.testing.assert_array_equal(result["labels"] == 1, pixels.luminance(photo) / 255 > BRIGHT_LEVEL)


def test_one_output_channel_is_a_sigmoid_foreground_cut_at_the_threshold(tmp_path, coins):
    net = torch.nn.Conv2d(3, 1, kernel_size=1)
    with torch.no_grad():
        net.weight.fill_(10.0 / 3)  # logit 10 * (mean - 0.5): probability 0.5 at mean 0.5
        net.bias.fill_(-5.0)
    model = save_torchscript(net, tmp_path / "one.pt")

    result = run(coins, model, threshold=0.9)

    probability = result["probabilities"]
    assert probability.shape == (*coins.shape, 1)
    gray = coins.astype(np.float64) / 255
    np.testing.assert_allclose(probability[..., 0], 1 / (1 + np.exp(-10 * (gray - 0.5))), atol=1e-5)
    np.testing.assert_array_equal(result["labels"], (probability[..., 0] >= 0.9).astype(np.uint8))
    assert 0 < result.scores["fraction_1"] < bright(coins).mean()  # 0.9 is stricter than 0.5


def test_loaded_models_are_cached_until_the_file_changes(tmp_path):
    cpu = torch.device("cpu")
    model = save_torchscript(bright_pixel_net(), tmp_path / "cached.pt")
    first = model_file.load_model(model, cpu)
    assert model_file.load_model(model, cpu) is first
    os.utime(model, ns=(0, model.stat().st_mtime_ns + 10**9))  # as if saved again
    assert model_file.load_model(model, cpu) is not first


def test_memory_estimate_counts_weights_and_image(models):
    small = RUN_MODEL.estimate_memory({"image": np.zeros((64, 64))}, {"model": str(models["onnx"])})
    large = RUN_MODEL.estimate_memory({"image": np.zeros((2000, 3000))}, {"model": str(models["onnx"])})
    assert 0 < small < large
    assert large > 2000 * 3000 * 4 * 3  # at least the float input


# ------------------------------------------------------------------ files that are not models


def test_no_file_chosen(coins):
    with pytest.raises(InputError, match="choose a model file"):
        RUN_MODEL.run({"image": coins}, {})


def test_missing_file(coins, tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        run(coins, tmp_path / "nowhere.onnx")


def test_a_catalogue_models_name_runs_its_cached_file(coins, tmp_path, monkeypatch):
    """As README says: operators take a model's name wherever they take a model file."""
    cache = tmp_path / "models"
    cache.mkdir()
    save_torchscript(bright_pixel_net(), cache / "bright.pt")
    entry = {"name": "site_bright", "task": "a site's model", "architecture": "torchscript", "file_name": "bright.pt",
             "size_bytes": None, "licence": "CC0-1.0", "url": "http://127.0.0.1:9/bright.pt", "hashes": [],
             "hash_source": "none"}
    (tmp_path / "catalogue.json").write_text(json.dumps([entry]))
    monkeypatch.setenv("MASKWORK_MODELS_CATALOGUE", str(tmp_path / "catalogue.json"))
    monkeypatch.setenv("MASKWORK_MODELS", str(cache))
    by_name = RUN_MODEL.run({"image": coins}, {"model": "site_bright"})
    by_path = RUN_MODEL.run({"image": coins}, {"model": str(cache / "bright.pt")})
    np.testing.assert_array_equal(by_name["labels"], by_path["labels"])
    # A downloaded file that cannot be opened is not the person's export to fix.
    good = (cache / "bright.pt").read_bytes()
    (cache / "bright.pt").write_bytes(b"not a model")
    with pytest.raises(InputError, match=r"the downloaded file of the model site_bright cannot be opened here; if "
                                         r"it was damaged since, remove it \(`maskwork models remove site_bright`"):
        RUN_MODEL.run({"image": coins}, {"model": "site_bright"})
    # With a published hash: damaged (it fails the hash), or the right file for another operator.
    entry["hashes"] = ["sha256:" + hashlib.sha256(good).hexdigest()]
    (tmp_path / "catalogue.json").write_text(json.dumps([entry]))
    with pytest.raises(InputError, match=r"the downloaded file of the model site_bright is damaged: remove it"):
        RUN_MODEL.run({"image": coins}, {"model": "site_bright"})
    weights = tmp_path / "weights.pt"
    torch.save({"conv.weight": torch.zeros(1)}, weights)  # Segment Anything's kind of file: a state dict
    entry.update(architecture="sam", task="Segment Anything",
                 hashes=["sha256:" + hashlib.sha256(weights.read_bytes()).hexdigest()])
    (tmp_path / "catalogue.json").write_text(json.dumps([entry]))
    (cache / "bright.pt").write_bytes(weights.read_bytes())
    with pytest.raises(InputError, match=r"site_bright is a sam model \(Segment Anything\), for another operator"):
        RUN_MODEL.run({"image": coins}, {"model": "site_bright"})
    (cache / "bright.pt").unlink()
    with pytest.raises(InputError, match="maskwork models download site_bright"):
        RUN_MODEL.run({"image": coins}, {"model": "site_bright"})


def test_an_image_is_no_model(coins, tmp_path):
    png = tmp_path / "photo.pt"
    io.write_image(tmp_path / "photo.png", coins)
    (tmp_path / "photo.png").rename(png)
    with pytest.raises(InputError, match="neither a TorchScript nor an ONNX model"):
        run(coins, png)
    with pytest.raises(InputError, match="cannot be read as an ONNX model"):
        run(coins, png.rename(tmp_path / "photo.onnx"))


def test_a_state_dict_is_not_a_runnable_model(coins, tmp_path):
    weights = tmp_path / "unet.pth"
    torch.save(bright_pixel_net().state_dict(), weights)
    with pytest.raises(InputError, match="state dict") as caught:
        run(coins, weights)
    assert "torch.jit.script" in str(caught.value) and "ONNX" in str(caught.value)


def test_a_model_expecting_other_channels(models, coins, tmp_path):
    gray_model = save_torchscript(bright_pixel_net(in_channels=1), tmp_path / "gray.pt")
    with pytest.raises(InputError, match="to have 1 channels") as caught:
        run(coins, gray_model)  # no sidecar: RGB is fed
    assert "sidecar" in str(caught.value)
    (tmp_path / "bright.json").write_text('{"channels": "gray"}')
    rgb_onnx = tmp_path / "bright.onnx"
    rgb_onnx.write_bytes(models["onnx"].read_bytes())
    with pytest.raises(InputError, match=r"expects 3 input channel\(s\) but its sidecar bright.json"):
        run(coins, rgb_onnx)


@pytest.mark.parametrize(
    "net, complaint",
    [
        (torch.nn.Conv2d(3, 2, kernel_size=2, stride=2), r"output of shape 1x2x32x32 for a 1x3x64x64 input"),
        (torch.nn.Sequential(torch.nn.Conv2d(3, 2, 1), torch.nn.Flatten()), r"output of shape 1x8192"),
    ],
    ids=["half-size output", "flat output"],
)
def test_an_output_that_is_not_per_pixel(tmp_path, net, complaint):
    model = save_torchscript(net.eval(), tmp_path / "odd.pt")
    with pytest.raises(InputError, match=complaint):
        run(np.zeros((64, 64), np.uint8), model)


@pytest.mark.parametrize(
    "sidecar, complaint",
    [
        ("{not json", "cannot be read as JSON"),
        ('["rgb"]', "JSON object"),
        ('{"chanels": "gray"}', "unknown key.*chanels"),
        ('{"channels": "cmyk"}', "'channels' must be"),
        ('{"std": [0.2, 0]}', "'std' must be"),
        ('{"input_size": 8}', "'input_size' must be"),
        ('{"fixed_size": true}', "gives no input_size"),
        ('{"mean": [0.1, 0.2]}', "gives 2 mean values but the model takes 3"),
        ('{"classes": ["a", "b", "c"]}', "names 3 classes but the model gives 2 labels"),
    ],
)
def test_a_bad_sidecar_says_what_is_wrong(tmp_path, sidecar, complaint):
    model = save_torchscript(bright_pixel_net(), tmp_path / "net.pt")
    (tmp_path / "net.json").write_text(sidecar)
    with pytest.raises(InputError, match=complaint):
        run(np.zeros((32, 32), np.uint8), model)
