"""Learned inpainting (LaMa): stand-ins with big-lama's TorchScript call, no real weights.

Each stand-in takes ``(image (1,3,H,W) in [0, 1], mask (1,1,H,W) 0/1)`` and returns the
inpainted (1,3,H,W), as the published big-lama.pt does; each fills the hole with a known
function of the known pixels, so what the operator pastes where can be checked exactly.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data
from tiny_models import bright_pixel_net, save_mean_fill_lama, save_torchscript

from maskwork.core.models import MODELS_FOLDER_VARIABLE, installed_path, model_entry
from maskwork.operators import Cancelled, InputError, RunContext, get
from maskwork.operators.dl import lama

LEARNED_INPAINT = get("learned_inpaint")


class AxisMeanFill(torch.nn.Module):
    """Fills each hole pixel with the mean of the known pixels of its row (``dim=3``) or
    column (``dim=2``): exact on an image that varies along the other axis only, and
    wrong by the pattern's contrast wherever a window is misplaced by one pixel."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        known = 1.0 - mask
        mean = (image * known).sum(dim=self.dim, keepdim=True) / known.sum(dim=self.dim, keepdim=True).clamp(min=1.0)
        return mask * mean + known * image


class ConstantFill(torch.nn.Module):
    """Fills the hole with 0.5 in every channel, whatever surrounds it."""

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return mask * 0.5 + (1.0 - mask) * image


class NotFinite(torch.nn.Module):
    """Returns NaN in the hole, as a broken or wrongly exported model might."""

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return image + mask * float("nan")


class TinyFourierLama(torch.nn.Module):
    """big-lama's shape in miniature, randomly initialised: the hole blanked and the mask
    appended, three stride-2 convolutions, a Fourier unit (convolution on the real FFT at
    1/8 resolution, as LaMa's FFC blocks), three transposed convolutions, a sigmoid, and
    the prediction composited into the known pixels (advimman/lama's training module)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.down = torch.nn.Sequential(
            torch.nn.Conv2d(4, 8, 3, stride=2, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(8, 8, 3, stride=2, padding=1), torch.nn.ReLU(),
            torch.nn.Conv2d(8, 8, 3, stride=2, padding=1), torch.nn.ReLU(),
        )
        self.spectral = torch.nn.Conv2d(16, 16, 1)
        self.up = torch.nn.Sequential(
            torch.nn.ConvTranspose2d(8, 8, 4, stride=2, padding=1), torch.nn.ReLU(),
            torch.nn.ConvTranspose2d(8, 8, 4, stride=2, padding=1), torch.nn.ReLU(),
            torch.nn.ConvTranspose2d(8, 3, 4, stride=2, padding=1),
        )

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        features = self.down(torch.cat([image * (1 - mask), mask], dim=1))
        spectrum = torch.fft.rfftn(features, dim=(-2, -1), norm="ortho")
        mixed = self.spectral(torch.cat([spectrum.real, spectrum.imag], dim=1))
        real, imaginary = mixed.chunk(2, dim=1)
        global_features = torch.fft.irfftn(torch.complex(real, imaginary), s=features.shape[-2:], dim=(-2, -1), norm="ortho")
        predicted = torch.sigmoid(self.up(features + global_features))
        return mask * predicted + (1 - mask) * image


class HalfSize(torch.nn.Module):
    """Returns half the input's size: not LaMa's call."""

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return image[:, :, ::2, ::2]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict:
    folder = tmp_path_factory.mktemp("lama")
    return {
        "mean": save_mean_fill_lama(folder / "mean.pt"),
        "rows": save_torchscript(AxisMeanFill(3), folder / "rows.pt"),
        "columns": save_torchscript(AxisMeanFill(2), folder / "columns.pt"),
        "constant": save_torchscript(ConstantFill(), folder / "constant.pt"),
        "nan": save_torchscript(NotFinite(), folder / "nan.pt"),
        "half_size": save_torchscript(HalfSize(), folder / "half_size.pt"),
        "tiny_fourier": save_traced_like_the_publisher(TinyFourierLama(), folder / "tiny_fourier.pt"),
        "one_input": save_torchscript(bright_pixel_net(), folder / "one_input.pt"),
    }


def save_traced_like_the_publisher(module: torch.nn.Module, path) -> str:
    """``module`` traced on a random 120x120 image and mask and saved, as advimman/lama's
    ``bin/to_jit.py`` made big-lama.pt."""
    with torch.no_grad():
        traced = torch.jit.trace(module.eval(), (torch.rand(1, 3, 120, 120), torch.rand(1, 1, 120, 120)), strict=False)
    traced.save(str(path))
    return str(path)


def run(image, mask, model, ctx=None, **params):
    return LEARNED_INPAINT.run({"image": image, "mask": mask}, {"model": str(model), "device": "cpu", **params}, ctx)


def assert_outside_identical(result: np.ndarray, image: np.ndarray, hole: np.ndarray) -> None:
    assert result.dtype == image.dtype and result.shape == image.shape
    np.testing.assert_array_equal(result[~hole], image[~hole])


def row_pattern(rows: int, cols: int) -> np.ndarray:
    """uint8 RGB whose colour depends on the row only, pseudo-randomly from row to row."""
    levels = (np.arange(rows) * 37) % 251
    column = np.stack([levels, 250 - levels, (levels * 3) % 251], axis=1).astype(np.uint8)
    return np.repeat(column[:, None, :], cols, axis=1)


# ------------------------------------------------------------------ where the fill goes


def test_fill_lands_on_the_right_rows_and_columns_and_nothing_else_changes(models):
    image = row_pattern(203, 601)  # sides no multiple of 8: the padding is cropped off again
    hole = np.zeros(image.shape[:2], bool)
    hole[40:90, 100:170] = True  # a rectangle
    hole[150:190, 470:510] = np.hypot(*np.mgrid[-20:20, -20:20]) < 18  # a disc, far away

    result = run(image, hole, models["rows"])

    filled = result["image"]
    assert_outside_identical(filled, image, hole)
    # Every row of the pattern is known somewhere in its window: the fill is the row's colour.
    np.testing.assert_array_equal(filled[hole], image[hole])
    assert result.scores["regions"] == 2 and result.scores["reduced_regions"] == 0
    # The same holds across columns, on the transposed picture.
    transposed = np.ascontiguousarray(image.transpose(1, 0, 2))
    filled_t = run(transposed, hole.T, models["columns"])["image"]
    np.testing.assert_array_equal(filled_t, transposed)


def test_a_traced_fourier_network_runs_on_sizes_other_than_its_trace(models):
    image = data.coffee()[:203, :257]  # padded to 208 x 264; traced at 120 x 120
    hole = np.zeros(image.shape[:2], bool)
    hole[60:120, 90:200] = True

    result = run(image, hole, models["tiny_fourier"])
    reduced = run(image, hole, models["tiny_fourier"], working_size=128)

    for filled in (result["image"], reduced["image"]):
        assert_outside_identical(filled, image, hole)
        assert filled[hole].std() > 0  # the random network's output, not a constant
    assert reduced.scores["reduced_regions"] == 1


def test_holes_close_together_share_a_window_and_far_ones_do_not(models):
    image = data.astronaut()[:256, :256]
    specks = np.zeros(image.shape[:2], bool)
    specks[100:104, 100:104] = specks[100:104, 130:134] = specks[140:143, 110:113] = True
    specks[10:20, 240:250] = True  # in the corner: a window of its own, moved inside

    # Windows of 138 pixels (10-pixel specks, 64 of context each side); the three specks
    # fit one window of 171 pixels, the corner's would make it 220.
    result = run(image, specks, models["mean"], working_size=180)

    assert result.scores["regions"] == 2
    assert result.scores["hole_pixels"] == specks.sum()
    assert_outside_identical(result["image"], image, specks)


def test_hole_on_the_border_keeps_its_context_inside_the_image(models):
    image = row_pattern(120, 300)
    hole = np.zeros(image.shape[:2], bool)
    hole[0:30, 0:40] = True  # the top-left corner
    hole[-1, 200:230] = True  # a line on the bottom edge

    filled = run(image, hole, models["rows"])["image"]

    assert_outside_identical(filled, image, hole)
    np.testing.assert_array_equal(filled[hole], image[hole])
    regions = lama.hole_regions(hole.shape, np.array([[0, 0, 30, 40]]), context=0.5, working_size=1024)
    # Grown by 64 on each side (the minimum margin), then moved inside: still 168 wide.
    assert (regions[0].rows, regions[0].cols) == (slice(0, 120), slice(0, 168))


def test_mask_shapes_labels_and_a_ring(models):
    image = data.coffee()[:200, :300]
    yy, xx = np.mgrid[:200, :300]
    radius = np.hypot(yy - 100, xx - 150)
    labels = np.zeros((200, 300), np.uint16)
    labels[(radius > 30) & (radius < 40)] = 3  # a ring: its inside is known picture
    labels[20:25, 10:290] = 7  # a long thin scratch

    result = run(image, labels, models["mean"])

    hole = labels > 0
    assert_outside_identical(result["image"], image, hole)
    assert not np.array_equal(result["image"][hole], image[hole])


# ------------------------------------------------------------------ large windows


def test_a_window_beyond_the_working_size_is_reduced_and_its_fill_enlarged(models):
    rows, cols = 600, 800
    profile = 0.5 + 0.4 * np.sin(np.arange(rows) / rows * 2 * np.pi)  # smooth: survives reduction
    image = np.repeat((profile * 65535).astype(np.uint16)[:, None], cols, axis=1)  # 16-bit gray
    hole = np.zeros((rows, cols), bool)
    hole[150:450, 250:550] = True  # window 600 x 600 at context 0.5: over 256

    result = run(image, hole, models["rows"], working_size=256)

    filled = result["image"]
    assert result.scores["reduced_regions"] == 1
    assert_outside_identical(filled, image, hole)
    error = np.abs(filled[hole].astype(np.float64) - image[hole]) / 65535
    assert error.max() < 0.002  # the right rows, give or take the resampling (0.0006 here)
    # A fill one row off would be wrong by up to the profile's steepest step.
    assert np.abs(np.diff(profile)).max() > 0.004


def test_seam_correction_meets_the_edge_inside_the_hole_only(models):
    image = np.full((400, 400, 3), 204, np.uint8)  # 0.8
    hole = np.zeros((400, 400), bool)
    hole[100:300, 100:300] = True

    full = run(image, hole, models["constant"])["image"]
    reduced = run(image, hole, models["constant"], working_size=128)["image"]

    # At full resolution the network's fill is pasted as it is.
    assert np.all(full[hole] == 128)
    # Reduced (scale 0.32), the enlarged fill is brought to the edge's colour on the edge
    # and faded back to the network's own fill within 7 pixels (two reduced pixels).
    assert_outside_identical(reduced, image, hole)
    column = reduced[100:110, 150, 0].astype(int)
    assert abs(column[0] - 204) <= 3 and np.all(np.diff(column) <= 0)
    assert np.abs(reduced[108:292, 108:292].astype(int) - 128).max() <= 1  # bicubic's ripple


# ------------------------------------------------------------------ pixel types


def test_pixel_types_keep_their_type_and_everything_outside_the_hole(models):
    for kind in ("gray", "gray_1_channel", "rgba", "uint16", "float_wide", "float_nan"):
        image, hole, expected = _pixel_type_case(kind)

        filled = run(image, hole, models["mean"])["image"]

        assert filled.shape == image.shape and filled.dtype == image.dtype, kind
        np.testing.assert_array_equal(filled[~hole], image[~hole], err_msg=kind)  # NaN == NaN here
        inside = filled.reshape(*hole.shape, -1)[hole]
        if kind == "rgba":
            np.testing.assert_array_equal(inside[:, 3], image[hole][:, 3], err_msg=kind)  # alpha kept, in the hole too
            inside = inside[:, :3]
        np.testing.assert_allclose(inside, np.broadcast_to(expected, inside.shape), atol=1e-3 * expected.max(), err_msg=kind)


def _pixel_type_case(kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, hole, the colour the mean fill gives in the image's units) for ``kind``.

    The known pixels are all alike, so the mean fill must give exactly their colour; the
    hole holds magenta, which must not show.
    """
    colour = np.zeros((96, 128, 3), np.float64)
    colour[...] = (0.2, 0.4, 0.6)
    hole = np.zeros((96, 128), bool)
    hole[30:60, 40:90] = True
    colour[hole] = (1.0, 0.0, 1.0)
    if kind.startswith("gray"):
        image = (colour[..., 1] * 255).astype(np.uint8)
        return (image[..., None] if kind == "gray_1_channel" else image), hole, np.array([102.0])
    if kind == "rgba":
        alpha = np.random.default_rng(1).integers(0, 256, (96, 128, 1), dtype=np.uint8)
        return np.concatenate([(colour * 255).round().astype(np.uint8), alpha], axis=2), hole, np.array([51.0, 102, 153])
    if kind == "uint16":
        return (colour * 65535).round().astype(np.uint16), hole, np.array([13107.0, 26214, 39321])
    # Floats outside [0, 1] go to the network through their own range and back.
    image = (colour * 1000 - 100).astype(np.float32)
    if kind == "float_nan":
        image[29, 50] = np.nan  # next to the hole: never copied from, left as it is
    return image, hole, np.array([100.0, 300, 500])


# ------------------------------------------------------------------ progress and cancel


def test_progress_region_by_region_previews_and_cancel_between_regions(models):
    image = data.astronaut()[:300, :300]
    hole = np.zeros((300, 300), bool)
    for top in (10, 120, 230):
        hole[top : top + 10, 10:20] = hole[top : top + 10, 270:280] = True
    messages = []
    run(image, hole, models["mean"], RunContext(on_progress=lambda f, m: messages.append(m)), working_size=128)
    assert [m for m in messages if "region" in m] == [f"LaMa: region {i}/6, 138x138 px" for i in range(1, 7)]

    seen = []

    def cancel_at_second(fraction, message):
        seen.append(message)
        if "region 2/" in message:
            ctx.cancel()

    ctx = RunContext(on_progress=cancel_at_second)
    with pytest.raises(Cancelled):
        run(image, hole, models["mean"], ctx, working_size=128)
    assert not any("region 3/" in message for message in seen)

    # Each finished region but the last is offered as a preview.
    partials = []
    pair = np.zeros((300, 300), bool)
    pair[10:20, 10:20] = pair[270:280, 270:280] = True
    result = run(image, pair, models["constant"], RunContext(on_partial=partials.append))
    assert len(partials) == 1
    first = partials[0]["image"]
    assert np.all(first[10:20, 10:20] == 128) and np.array_equal(first[270:280, 270:280], image[270:280, 270:280])
    assert np.all(result["image"][270:280, 270:280] == 128)


# ------------------------------------------------------------------ models and errors


def test_catalogue_name_resolves_in_the_models_folder(models, tmp_path, monkeypatch):
    monkeypatch.setenv(MODELS_FOLDER_VARIABLE, str(tmp_path))
    image = data.astronaut()[:64, :64]
    hole = np.zeros((64, 64), bool)
    hole[20:30, 20:30] = True
    with pytest.raises(InputError, match="not downloaded.*maskwork models download big_lama"):
        LEARNED_INPAINT.run({"image": image, "mask": hole}, {"device": "cpu"})

    shutil.copy(models["mean"], installed_path(model_entry("big_lama")))
    result = LEARNED_INPAINT.run({"image": image, "mask": hole}, {"device": "cpu"})

    assert LEARNED_INPAINT.defaults()["model"] == "big_lama"
    assert_outside_identical(result["image"], image, hole)


def test_wrong_models_and_masks_are_clear_input_errors(models, tmp_path):
    image = data.astronaut()[:64, :64]
    hole = np.zeros((64, 64), bool)
    hole[20:30, 20:30] = True
    cases = [
        (str(tmp_path / "missing.pt"), hole, "no model file .*missing.pt.* and no catalogue model"),
        ("", hole, "choose a LaMa model"),
        (models["one_input"], hole, "takes 1 input"),
        (models["half_size"], hole, r"returned shape \(1, 3, 32, 32\)"),
        (models["nan"], hole, "NaN or infinite"),
        (models["mean"], np.zeros_like(hole), "mask is empty"),
        (models["mean"], np.ones_like(hole), "whole image"),
    ]
    for model, mask, message in cases:
        with pytest.raises(InputError, match=message):
            run(image, mask, model)


def test_float16_failure_reruns_in_float32_for_the_rest_of_the_run(monkeypatch):
    """The CUDA path's fallback, exercised on the CPU: a module that fails while the
    float16 autocast context is active (as cuFFT does on sizes that are no power of two)."""
    in_half = []

    @contextmanager
    def fake_autocast(device):
        in_half.append(True)
        try:
            yield
        finally:
            in_half.pop()

    calls = []

    def module(image, mask):
        calls.append(bool(in_half))
        if in_half:
            raise RuntimeError("cuFFT only supports dimensions whose sizes are powers of two when computing in half precision")
        return mask * 0.25 + (1 - mask) * image

    monkeypatch.setattr(lama, "autocast", fake_autocast)
    network = lama.LamaNetwork(module, torch.device("cpu"))
    network.half = True
    pixels = np.full((20, 24, 3), 0.75, np.float32)
    hole = np.zeros((20, 24), bool)
    hole[5:10, 5:10] = True

    first = network(pixels, hole)
    second = network(pixels, hole)

    assert calls == [True, False, False] and not network.half
    np.testing.assert_allclose(first[hole], 0.25)
    np.testing.assert_array_equal(first, second)


def test_memory_estimate_grows_with_the_working_size(models):
    image = np.zeros((3000, 4000, 3), np.uint8)
    small = LEARNED_INPAINT.estimate_memory({"image": image}, {"model": str(models["mean"]), "working_size": 512})
    large = LEARNED_INPAINT.estimate_memory({"image": image}, {"model": str(models["mean"]), "working_size": 2048})
    assert 512**2 * lama.ACTIVATIONS_PER_PIXEL * 4 < small < large
    assert large - small == (2048**2 - 512**2) * (lama.ACTIVATIONS_PER_PIXEL * 4 + 3 * 4 * 6)


def test_command_line_run_with_a_model_path(models, tmp_path):
    image = data.astronaut()[:96, :128]
    hole = np.zeros((96, 128), np.uint8)
    hole[30:50, 40:80] = 255
    Image.fromarray(image).save(tmp_path / "photo.png")
    Image.fromarray(hole).save(tmp_path / "hole.png")

    done = subprocess.run(
        [sys.executable, "-m", "maskwork", "run", "learned_inpaint", "--image", "photo.png", "--mask", "hole.png",
         "-p", f"model={models['mean']}", "--device", "cpu", "-o", "filled.png"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )

    assert done.returncode == 0, done.stderr
    filled = np.asarray(Image.open(tmp_path / "filled.png"))
    assert_outside_identical(filled, image, hole > 0)
    known = image[hole == 0].astype(np.float64)
    np.testing.assert_allclose(filled[hole > 0], np.broadcast_to(known.mean(axis=0), (int((hole > 0).sum()), 3)), atol=1.0)
