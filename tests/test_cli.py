"""``python -m maskwork ops|run``: the command-line contract of PRODUCT.md, in real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile
from fuzz_corpus import png_bomb
from PIL import Image
from skimage import data

from maskwork import cli
from maskwork.pipeline.session import RunSession

ROWS, COLS = 300, 451  # chelsea()
RECT = (90, 20, 260, 270)  # X, Y, W, H around the cat, leaving a margin


def maskwork(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "maskwork", *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A working folder with the cat photo, scribbles and a few broken files."""
    folder = tmp_path_factory.mktemp("cli")
    Image.fromarray(data.chelsea()).save(folder / "cat.png")
    # Markers as a palette PNG whose *indices* are the labels; the palette colours are
    # deliberately unlike the indices, so reading colours instead would break the run.
    markers = np.zeros((ROWS, COLS), np.uint8)
    markers[130:140, 170:290] = 1  # across the cat's face
    markers[5:10, 5:-5] = 2
    markers[-10:-5, 5:-5] = 2
    markers[5:-5, 5:10] = 2
    markers[5:-5, -10:-5] = 2
    palette = [0, 0, 0, 255, 255, 120, 230, 30, 30] + [0] * (256 * 3 - 9)
    for name, array in (("markers.png", markers), ("small_markers.png", markers[::2, ::2])):
        image = Image.fromarray(np.ascontiguousarray(array), mode="P")
        image.putpalette(palette)
        image.save(folder / name)
    np.save(folder / "markers.npy", markers)
    rng = np.random.default_rng(7)
    (folder / "garbage.png").write_bytes(rng.integers(0, 256, 4000, np.uint8).tobytes())
    # The inputs that once ended in a traceback or ran out of memory (issue 15).
    (folder / "magic.tif").write_bytes(b"II*\x00" + rng.bytes(500))
    values = rng.normal(size=(20, 30))
    tifffile.imwrite(folder / "complex.tif", (values + 1j * values).astype(np.complex64))
    (folder / "bomb.png").write_bytes(png_bomb(12_000, 12_000))
    dot = np.zeros((ROWS, COLS), np.uint8)
    dot[150, 200] = 255
    Image.fromarray(dot).save(folder / "dot.png")
    # A PNG whose compressed pixel data is overwritten half-way (chunk lengths intact):
    # libpng prints about it on stderr from C code.
    whole = (folder / "cat.png").read_bytes()
    middle = len(whole) // 2
    (folder / "damaged.png").write_bytes(whole[:middle] + bytes(2000) + whole[middle + 2000 :])
    return folder


def test_ops_lists_grabcut(folder):
    done = maskwork("ops", cwd=folder)
    assert done.returncode == 0, done.stderr
    assert any(line.split()[0] == "grabcut" for line in done.stdout.splitlines() if line.strip())
    assert "iterations=5" in done.stdout


@pytest.mark.parametrize("args", [("ops",), ("ops", "--json")])
def test_a_reader_that_stops_early_ends_the_listing_quietly(folder, args):
    listing = subprocess.Popen([sys.executable, "-m", "maskwork", *args], cwd=folder, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    listing.stdout.close()  # as `maskwork ops | head -1` does once it has its line
    _, errors = listing.communicate(timeout=120)
    assert errors == "" and listing.returncode == 141, "no 'error: Broken pipe', and the status of a filter"


def test_ops_json(folder):
    done = maskwork("ops", "--json", cwd=folder)
    assert done.returncode == 0, done.stderr
    entries = json.loads(done.stdout)
    assert isinstance(entries, list) and entries
    for entry in entries:
        assert {"id", "title", "category", "inputs", "outputs", "params"} <= set(entry)
        for param in entry["params"]:
            assert {"name", "type", "default", "help"} <= set(param)
            assert param["help"].strip()
    grabcut = {entry["id"]: entry for entry in entries}["grabcut"]
    assert grabcut["outputs"] == ["mask"]
    assert {"image", "markers", "rect"} <= set(grabcut["inputs"])
    iterations = {p["name"]: p for p in grabcut["params"]}["iterations"]
    assert iterations["type"] == "int" and iterations["default"] == 5
    assert iterations["min"] >= 1 and iterations["max"] >= 5


def _read_mask(path: Path) -> np.ndarray:
    image = Image.open(path)
    assert image.mode == "L"
    return np.asarray(image)


def test_run_with_a_box(folder):
    done = maskwork(
        "run", "grabcut", "--image", "cat.png", "--rect", ",".join(map(str, RECT)),
        "-p", "iterations=3", "-o", "box.png", "--json", cwd=folder,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["operator"] == "grabcut"
    assert summary["outputs"] == ["box.png"]
    assert summary["iterations"] == 3
    assert isinstance(summary["seconds"], (int, float)) and 0 <= summary["seconds"] < 60

    mask = _read_mask(folder / "box.png")
    assert mask.shape == (ROWS, COLS)
    assert set(np.unique(mask)) == {0, 255}
    x, y, w, h = RECT
    outside = np.ones(mask.shape, bool)
    outside[y : y + h, x : x + w] = False
    assert not mask[outside].any()
    assert 0.2 < np.count_nonzero(mask[~outside]) / (w * h) < 0.95

    sidecar = json.loads((folder / "box.png.json").read_text())
    assert sidecar["operator"] == "grabcut"
    assert sidecar["parameters"]["iterations"] == 3
    assert sidecar["parameters"]["margin"] == 0.15  # defaults are recorded too
    assert sidecar["seeds"]["rect"] == list(RECT)
    assert sidecar["maskwork_version"]
    assert sidecar["library_versions"]["numpy"] and sidecar["library_versions"]["opencv-python-headless"]


def test_run_with_markers(folder):
    done = maskwork("run", "grabcut", "--image", "cat.png", "--markers", "markers.png", "-o", "scribbles.png", "--json", cwd=folder)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["outputs"] == ["scribbles.png"] and summary["iterations"] == 5

    mask = _read_mask(folder / "scribbles.png")
    markers = np.load(folder / "markers.npy")
    assert mask.shape == (ROWS, COLS)
    assert (mask[markers == 1] == 255).all()
    assert (mask[markers == 2] == 0).all()
    assert 0.05 < np.count_nonzero(mask) / mask.size < 0.8
    sidecar = json.loads((folder / "scribbles.png.json").read_text())
    assert sidecar["seeds"]["marker_counts"] == {"1": int((markers == 1).sum()), "2": int((markers == 2).sum())}


def test_run_quick_select_from_clicks_then_refine_its_mask(folder):
    # An object click on the cat's face; then a background click, refining the first mask.
    done = maskwork("run", "click_select", "--image", "cat.png", "--points", "150,230,1", "-o", "click1.png", "--json", cwd=folder)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["outputs"] == ["click1.png"]
    first = _read_mask(folder / "click1.png")
    assert first[150, 230] == 255 and 0.1 < np.count_nonzero(first) / first.size < 0.9
    done = maskwork(
        "run", "click_select", "--image", "cat.png", "--points", "150,230,1;20,20,0", "--mask", "click1.png",
        "-o", "click2.png", cwd=folder,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    second = _read_mask(folder / "click2.png")
    assert second[150, 230] == 255 and not second[15:26, 15:26].any()
    sidecar = json.loads((folder / "click2.png.json").read_text())
    assert sidecar["operator"] == "click_select" and sidecar["seeds"]["points"] == [[150, 230, 1], [20, 20, 0]]


def test_run_reads_a_palette_photo_in_colour_and_a_turned_png_upright(folder):
    # A 16-colour photo is its colours (not the indices 0..15 of a dark gray picture);
    # a PNG whose eXIf says "turn 90 degrees clockwise" is processed as viewers show it.
    quantized = Image.fromarray(data.chelsea()).quantize(16)
    quantized.save(folder / "cat16.png")
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(data.chelsea()).save(folder / "turned.png", exif=exif)
    for image, output, expected in (("cat16.png", "cat16_gamma.png", np.asarray(quantized.convert("RGB"))),
                                    ("turned.png", "turned_gamma.png", np.rot90(data.chelsea(), k=-1))):
        done = maskwork("run", "gamma", "--image", image, "-o", output, cwd=folder)
        assert done.returncode == 0, done.stderr
        np.testing.assert_array_equal(np.asarray(Image.open(folder / output)), expected)


BOX = ",".join(map(str, RECT))
ERRORS = {
    "missing image file": (["run", "grabcut", "--image", "nowhere.png", "--rect", BOX, "-o", "out.png"], "nowhere.png"),
    "unreadable image": (["run", "grabcut", "--image", "garbage.png", "--rect", BOX, "-o", "out.png"], "garbage.png"),
    "markers of another size": (
        ["run", "grabcut", "--image", "cat.png", "--markers", "small_markers.png", "-o", "out.png"],
        "markers are 150x226 but the image is 300x451",
    ),
    "rect outside the image": (["run", "grabcut", "--image", "cat.png", "--rect", "400,10,100,50", "-o", "out.png"], "outside"),
    "no seeds": (["run", "grabcut", "--image", "cat.png", "-o", "out.png"], "box or foreground"),
    "unknown parameter": (
        ["run", "grabcut", "--image", "cat.png", "--rect", BOX, "-p", "nonsense=1", "-o", "out.png"],
        "nonsense",
    ),
    "bad parameter value": (
        ["run", "grabcut", "--image", "cat.png", "--rect", BOX, "-p", "iterations=abc", "-o", "out.png"],
        "iterations",
    ),
    "unknown operator": (["run", "no_such_op", "--image", "cat.png", "--rect", BOX, "-o", "out.png"], "grabcut"),
    "missing -o": (["run", "grabcut", "--image", "cat.png", "--rect", BOX], "--output"),
    "TIFF magic then garbage": (["run", "threshold", "--image", "magic.tif", "-o", "out.png"], "holds no image"),
    "complex TIFF": (["run", "threshold", "--image", "complex.tif", "-o", "out.png"], "complex64 pixels"),
    "decompression bomb": (["run", "threshold", "--image", "bomb.png", "-o", "out.png"], "decompression bomb"),
    "image over --max-pixels": (
        ["run", "threshold", "--image", "cat.png", "--max-pixels", "1000", "-o", "out.png"],
        "135,300 pixels, over the limit of 1,000",
    ),
    "bad --max-pixels": (["run", "threshold", "--image", "cat.png", "--max-pixels", "0", "-o", "out.png"], "--max-pixels"),
    "one-pixel clone region": (
        ["run", "seamless_clone", "--image", "cat.png", "--image2", "cat.png", "--mask", "dot.png", "-o", "out.png"],
        "spans only 1x1 pixels",
    ),
    "damaged PNG data": (["run", "threshold", "--image", "damaged.png", "-o", "out.png"], "damaged.png"),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_bad_input_is_one_line_and_exit_code_2(folder, case):
    args, expected = ERRORS[case]
    done = maskwork(*args, cwd=folder)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("maskwork: error:")
    assert expected in lines[0]
    assert done.stdout == ""
    assert not (folder / "out.png").exists() and not (folder / "out.png.json").exists()


def test_verbose_lets_library_messages_through(folder):
    # The same damaged PNG as above: libpng writes to stderr from C code.
    done = maskwork("run", "threshold", "--image", "damaged.png", "-o", "out.png", "--verbose", cwd=folder)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) > 1 and lines[-1].startswith("maskwork: error: cannot read image damaged.png")


def test_max_pixels_raises_the_limit(folder):
    # 9 MP of zeros in a few KB: a bomb under a 20 MP limit, an image under a 90 MP one.
    (folder / "blank.png").write_bytes(png_bomb(3000, 3000))
    args = ("run", "threshold", "--image", "blank.png", "-o", "blank_mask.png")
    refused = maskwork(*args, "--max-pixels", "20_000_000", cwd=folder)
    assert refused.returncode == 2
    assert "decompression bomb" in refused.stderr and "raise the limit to 90,000,000 in" in refused.stderr
    done = maskwork(*args, "--max-pixels", "9e7", cwd=folder)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert Image.open(folder / "blank_mask.png").size == (3000, 3000)


def _chatty_run(original):
    """RunSession.run that first warns and writes to file descriptor 2 as C code does."""

    def run(self, *args, **kwargs):
        warnings.warn("a library warning", RuntimeWarning)
        os.write(2, b"libfoo: a native message\n")
        return original(self, *args, **kwargs)

    return run


def test_library_output_is_silenced_unless_verbose(folder, monkeypatch, capfd):
    monkeypatch.setattr(RunSession, "run", _chatty_run(RunSession.run))
    argv = ["run", "threshold", "--image", str(folder / "cat.png"), "-o", str(folder / "quiet.png")]
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        assert cli.main(argv) == 0
    assert shown == [] and capfd.readouterr().err == ""
    with pytest.warns(RuntimeWarning, match="a library warning"):
        assert cli.main([*argv, "--verbose"]) == 0
    assert capfd.readouterr().err == "libfoo: a native message\n"


def test_unexpected_failure_is_one_line_and_verbose_shows_the_traceback(folder, monkeypatch, capfd):
    def broken(self, *args, **kwargs):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr(RunSession, "run", broken)
    argv = ["run", "threshold", "--image", str(folder / "cat.png"), "-o", str(folder / "broken.png")]
    assert cli.main(argv) == cli.EXIT_INTERNAL_ERROR == 1
    assert capfd.readouterr().err == (
        "maskwork: error: run failed unexpectedly (RuntimeError: boom); run with --verbose for the traceback\n"
    )
    with pytest.raises(RuntimeError, match="boom"):
        cli.main([*argv, "--verbose"])
