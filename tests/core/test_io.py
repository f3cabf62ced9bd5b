"""Round trips, error messages and sidecars of maskwork.core.io, and the label colours."""

import json
import logging
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest
import SimpleITK as sitk
import tifffile
from PIL import Image, ImageOps
from skimage import data

from fuzz_corpus import HUGE_SIDE, claim_huge_size, png_bomb, tiff_with_size
from maskwork.core.colors import colorize_labels, label_colors
from maskwork.core.io import (
    DEFAULT_MAX_PIXELS,
    MAX_PIXELS_VARIABLE,
    READABLE_SUFFIXES,
    ImageReadError,
    max_pixels,
    read_image,
    read_images,
    set_max_pixels,
    seed_summary,
    sidecar_path,
    write_cutout,
    write_image,
    write_labels,
    write_labels_color,
    write_mask,
    write_sidecar,
)

RNG = np.random.default_rng(1234)


def _random(shape, dtype):
    info = np.iinfo(dtype)
    return RNG.integers(info.min, info.max, size=shape, dtype=dtype, endpoint=True)


# ------------------------------------------------------------------ round trips

EXACT_CASES = [
    ("gray8.png", (31, 47), np.uint8),
    ("rgb8.png", (31, 47, 3), np.uint8),
    ("rgba8.png", (31, 47, 4), np.uint8),
    ("gray16.png", (31, 47), np.uint16),
    ("rgb16.png", (31, 47, 3), np.uint16),
    ("rgba16.png", (31, 47, 4), np.uint16),
    ("gray.bmp", (31, 47), np.uint8),
    ("rgb.bmp", (31, 47, 3), np.uint8),
    ("rgb.webp", (31, 47, 3), np.uint8),
    ("rgba.webp", (31, 47, 4), np.uint8),
    ("gray8.tif", (31, 47), np.uint8),
    ("rgb8.tiff", (31, 47, 3), np.uint8),
    ("gray16.tif", (31, 47), np.uint16),
    ("rgb16.tif", (31, 47, 3), np.uint16),
    ("int32.tif", (31, 47), np.int32),
    ("five_channels.tif", (31, 47, 5), np.uint16),
]


@pytest.mark.parametrize(("name", "shape", "dtype"), EXACT_CASES)
def test_lossless_round_trip(tmp_path, name, shape, dtype):
    image = _random(shape, dtype)
    path = write_image(tmp_path / name, image)
    back = read_image(path)
    assert back.dtype == dtype
    np.testing.assert_array_equal(back, image)


def test_rgba_webp_keeps_colour_under_transparent_pixels(tmp_path):
    image = _random((16, 16, 4), np.uint8)
    image[:8, :, 3] = 0
    np.testing.assert_array_equal(read_image(write_image(tmp_path / "a.webp", image)), image)


def test_gray_webp_reads_back_as_three_equal_channels(tmp_path):
    gray = _random((12, 10), np.uint8)
    back = read_image(write_image(tmp_path / "g.webp", gray))
    assert back.shape == (12, 10, 3)
    for channel in range(3):
        np.testing.assert_array_equal(back[:, :, channel], gray)


def test_float32_tiff_round_trip_keeps_nan_and_negative_values(tmp_path):
    image = RNG.normal(size=(20, 30)).astype(np.float32)
    image[3, 4] = np.nan
    back = read_image(write_image(tmp_path / "f.tif", image))
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, image)  # NaN == NaN for assert_array_equal


def test_jpeg_is_close_on_a_real_photo(tmp_path):
    photo = data.astronaut()
    back = read_image(write_image(tmp_path / "a.jpg", photo))
    assert back.shape == photo.shape and back.dtype == np.uint8
    assert np.abs(back.astype(int) - photo).mean() < 3


def test_jpeg_gray_and_jpeg_suffix(tmp_path):
    camera = data.camera()
    back = read_image(write_image(tmp_path / "c.jpeg", camera))
    assert back.shape == camera.shape
    assert np.abs(back.astype(int) - camera).mean() < 3


def test_gray_stored_as_three_channels_stays_three_channels(tmp_path):
    gray = _random((9, 11), np.uint8)
    rgb = np.repeat(gray[:, :, None], 3, axis=2)
    assert read_image(write_image(tmp_path / "g3.png", rgb)).shape == (9, 11, 3)


def test_bool_image_is_written_as_0_255(tmp_path):
    flags = RNG.random((8, 9)) > 0.5
    back = read_image(write_image(tmp_path / "b.png", flags))
    np.testing.assert_array_equal(back, flags.astype(np.uint8) * 255)


def test_png_channel_order_is_rgb(tmp_path):
    red = np.zeros((4, 4, 3), np.uint8)
    red[..., 0] = 200
    path = write_image(tmp_path / "red.png", red)
    assert np.asarray(Image.open(path))[0, 0].tolist() == [200, 0, 0]
    np.testing.assert_array_equal(read_image(path), red)


def test_multipage_tiff_reads_every_page(tmp_path):
    pages = [_random((10, 12), np.uint16) for _ in range(3)]
    path = tmp_path / "stack.tif"
    for page in pages:
        tifffile.imwrite(path, page, append=True)
    images = read_images(path)
    assert len(images) == 3
    for image, page in zip(images, pages):
        np.testing.assert_array_equal(image, page)
    np.testing.assert_array_equal(read_image(path, page=2), pages[2])
    with pytest.raises(IndexError):
        read_image(path, page=3)


def test_planar_rgb_tiff_is_channel_last(tmp_path):
    planes = _random((3, 10, 12), np.uint8)
    path = tmp_path / "planar.tif"
    tifffile.imwrite(path, planes, photometric="rgb", planarconfig="separate")
    np.testing.assert_array_equal(read_image(path), np.moveaxis(planes, 0, -1))


def test_palette_png_reads_as_indices_when_asked(tmp_path):
    indices = RNG.integers(0, 3, size=(15, 20), dtype=np.uint8)
    image = Image.fromarray(indices, mode="P")
    image.putpalette([0, 0, 0, 0, 255, 0, 255, 0, 0])
    path = tmp_path / "markers.png"
    image.save(path)
    back = read_image(path, palette_indices=True)
    assert back.ndim == 2 and back.dtype == np.uint8
    np.testing.assert_array_equal(back, indices)
    np.testing.assert_array_equal(read_images(path, palette_indices=True)[0], indices)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_palette_photo_reads_as_its_colours(tmp_path, suffix):
    # A photo saved with 16 colours: its indices 0..15 would show as a near-black gray.
    quantized = Image.fromarray(data.coffee()).quantize(16)
    path = tmp_path / f"coffee16{suffix}"
    quantized.save(path)
    colours = np.asarray(quantized.convert("RGB"))
    np.testing.assert_array_equal(read_image(path), colours)
    np.testing.assert_array_equal(read_images(path)[0], colours)
    np.testing.assert_array_equal(read_image(path, palette_indices=True), np.asarray(quantized))


def test_palette_png_with_transparency_reads_as_rgba(tmp_path):
    quantized = Image.fromarray(data.chelsea()).quantize(8)
    path = tmp_path / "cat8.png"
    # Index 0 fully transparent, index 1 half, the others opaque (a tRNS chunk).
    quantized.save(path, transparency=bytes([0, 128] + [255] * 6))
    back = read_image(path)
    assert back.shape == data.chelsea().shape[:2] + (4,)
    np.testing.assert_array_equal(back, np.asarray(Image.open(path).convert("RGBA")))
    assert {0, 128, 255} == set(np.unique(back[:, :, 3]))


def test_png_content_with_jpeg_suffix_mismatch_is_still_read(tmp_path):
    # Files are often renamed carelessly: a JPEG saved as .png must still open.
    photo = data.astronaut()[:64, :64]
    path = tmp_path / "really_a_jpeg.png"
    Image.fromarray(photo).save(path, format="JPEG", quality=95)
    assert read_image(path).shape == photo.shape


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii", ".mha", ".nrrd"])
def test_simpleitk_formats_round_trip_with_orientation(tmp_path, suffix):
    image = _random((13, 17), np.int16)
    image[0, :] = 1000  # a marked first row catches any flip
    path = tmp_path / f"scan{suffix}"
    sitk.WriteImage(sitk.GetImageFromArray(image), str(path))
    back = read_image(path)
    assert back.dtype == np.int16
    np.testing.assert_array_equal(back, image)


def test_simpleitk_volume_gives_one_image_per_slice(tmp_path):
    volume = _random((4, 6, 7), np.uint8)
    path = tmp_path / "vol.mha"
    sitk.WriteImage(sitk.GetImageFromArray(volume), str(path))
    slices = read_images(path)
    assert len(slices) == 4
    np.testing.assert_array_equal(read_image(path, page=3), volume[3])


def test_simpleitk_is_not_imported_by_the_io_module():
    code = "import sys, maskwork.core.io; print('SimpleITK' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


# ------------------------------------------------------- masks, labels, cut-outs


def test_write_mask_is_0_255_single_channel(tmp_path):
    mask = RNG.integers(0, 5, size=(20, 25)).astype(np.float32)
    mask[0, 0] = np.nan
    back = read_image(write_mask(tmp_path / "out" / "mask.png", mask))
    assert back.dtype == np.uint8 and back.ndim == 2
    assert set(np.unique(back).tolist()) == {0, 255}
    np.testing.assert_array_equal(back == 255, (mask != 0) & ~np.isnan(mask))
    assert read_image(write_mask(tmp_path / "mask.tif", mask > 2)).max() == 255


def test_write_labels_chooses_the_smallest_dtype(tmp_path):
    small = RNG.integers(0, 7, size=(10, 10)).astype(np.int64)
    large = small.astype(np.int32) * 1000
    back_small = read_image(write_labels(tmp_path / "small.png", small))
    back_large = read_image(write_labels(tmp_path / "large.png", large))
    assert back_small.dtype == np.uint8
    assert back_large.dtype == np.uint16
    np.testing.assert_array_equal(back_small, small)
    np.testing.assert_array_equal(back_large, large)


def test_write_labels_beyond_uint16_needs_tiff(tmp_path):
    labels = np.array([[0, 70000], [-3, 5]], dtype=np.int64)
    with pytest.raises(ValueError, match="use .tif"):
        write_labels(tmp_path / "big.png", labels)
    back = read_image(write_labels(tmp_path / "big.tif", labels))
    assert back.dtype == np.int32
    np.testing.assert_array_equal(back, labels)


def test_write_labels_rejects_float(tmp_path):
    with pytest.raises(ValueError, match="integers"):
        write_labels(tmp_path / "f.png", np.zeros((3, 3), np.float32))


def test_write_labels_color_has_transparent_background_and_distinct_colours(tmp_path):
    labels = np.zeros((12, 40), np.uint8)
    for label in range(1, 9):
        labels[2:10, label * 4 : label * 4 + 3] = label
    back = read_image(write_labels_color(tmp_path / "labels_color.png", labels))
    assert back.shape == (12, 40, 4) and back.dtype == np.uint8
    assert np.all(back[labels == 0] == 0)
    colours = {tuple(back[labels == label][0]) for label in range(1, 9)}
    assert len(colours) == 8
    assert all(colour[3] == 255 for colour in colours)


def test_write_cutout_alpha_follows_the_mask(tmp_path):
    photo = data.astronaut()
    mask = np.zeros(photo.shape[:2], bool)
    mask[100:300, 150:350] = True
    back = read_image(write_cutout(tmp_path / "cut.png", photo, mask))
    assert back.shape == photo.shape[:2] + (4,)
    np.testing.assert_array_equal(back[:, :, 3], mask * 255)
    np.testing.assert_array_equal(back[:, :, :3], photo)


def test_write_cutout_of_16bit_gray_is_scaled_and_replicated(tmp_path):
    image = np.linspace(0, 60000, 50 * 60).reshape(50, 60).astype(np.uint16)
    mask = np.ones(image.shape, np.uint8)
    back = read_image(write_cutout(tmp_path / "cut16.png", image, mask))
    assert back.dtype == np.uint8
    assert back[0, 0, 0] == 0 and back[-1, -1, 0] == 255
    np.testing.assert_array_equal(back[:, :, 0], back[:, :, 2])
    assert np.all(np.diff(back[:, :, 0].ravel().astype(int)) >= 0)


def test_write_cutout_of_16bit_gray_follows_the_contrast_limits_given(tmp_path):
    image = np.linspace(0, 60000, 50 * 60).reshape(50, 60).astype(np.uint16)
    mask = np.ones(image.shape, np.uint8)
    back = read_image(write_cutout(tmp_path / "cut16.png", image, mask, contrast_limits=(0, 20000)))
    shown = np.clip(np.rint(image / 20000 * 255), 0, 255)
    np.testing.assert_array_equal(back[:, :, 0], shown)
    # An 8-bit photo is written as it is, whatever limits are given.
    photo = data.astronaut()[:50, :60]
    back = read_image(write_cutout(tmp_path / "cut8.png", photo, mask, contrast_limits=(10, 100)))
    np.testing.assert_array_equal(back[:, :, :3], photo)


def test_write_cutout_rejects_a_mask_of_another_size(tmp_path):
    with pytest.raises(ValueError, match="does not match"):
        write_cutout(tmp_path / "x.png", np.zeros((10, 10, 3), np.uint8), np.zeros((10, 11)))


# ----------------------------------------------------------------------- sidecar


def test_sidecar_contents(tmp_path):
    markers = np.zeros((20, 20), np.uint8)
    markers[2:4, 2:5] = 1
    markers[10, 10:14] = 2
    seeds = seed_summary(markers=markers, rect=np.array([1, 2, 15, 16]), points=[(3, 4, 1)])
    provenance = {
        "operator": "grabcut",
        "parameters": {"iterations": np.int64(5), "sigma": np.float32(0.5), "tags": {"a"}},
        "seeds": seeds,
        "inputs": {"image": tmp_path / "in.png", "weights": np.arange(3)},
    }
    path = write_mask(tmp_path / "mask.png", markers, provenance=provenance)
    side = sidecar_path(path)
    assert side.name == "mask.png.json"
    record = json.loads(side.read_text())
    assert record["file"] == "mask.png"
    assert record["created"].endswith("+00:00")
    assert record["maskwork_version"]
    versions = record["library_versions"]
    for key in ("numpy", "opencv-python-headless", "scikit-image", "SimpleITK", "torch", "PySide6",
                "pyqtgraph"):
        assert key in versions
    assert versions["numpy"] == np.__version__
    assert record["operator"] == "grabcut"
    assert record["parameters"] == {"iterations": 5, "sigma": 0.5, "tags": ["a"]}
    assert record["seeds"] == {
        "marker_counts": {"1": 6, "2": 4},
        "rect": [1, 2, 15, 16],
        "points": [[3, 4, 1]],
        "point_count": 1,
    }
    assert record["inputs"] == {"image": str(tmp_path / "in.png"), "weights": [0, 1, 2]}


def test_empty_provenance_still_writes_a_sidecar(tmp_path):
    nested = tmp_path / "deep" / "dir" / "i.png"
    path = write_image(nested, np.zeros((3, 3), np.uint8), provenance={})
    assert json.loads(sidecar_path(path).read_text())["file"] == "i.png"
    assert not sidecar_path(write_image(tmp_path / "j.png", np.zeros((3, 3), np.uint8))).exists()


def test_write_sidecar_alone_and_reserved_keys(tmp_path):
    side = write_sidecar(tmp_path / "result.tif", {"operator": "otsu"})
    assert side == tmp_path / "result.tif.json"
    assert json.loads(side.read_text())["operator"] == "otsu"
    with pytest.raises(ValueError, match="file"):
        write_sidecar(tmp_path / "result.tif", {"file": "other"})


def test_unserialisable_provenance_writes_nothing(tmp_path):
    target = tmp_path / "m.png"
    with pytest.raises(TypeError):
        write_mask(target, np.ones((3, 3)), provenance={"operator": object()})
    assert not target.exists() and not sidecar_path(target).exists()


# ------------------------------------------------------------------------ errors


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(ImageReadError, match="no such file.*absent.png"):
        read_image(tmp_path / "absent.png")


@pytest.mark.parametrize("name", ["corrupt.png", "corrupt.jpg", "corrupt.tif", "corrupt.nii.gz",
                                  "corrupt.webp", "corrupt.bmp"])
def test_corrupt_file_names_the_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(RNG.bytes(512))
    with pytest.raises(ImageReadError, match=f"cannot read image .*{name}") as info:
        read_images(path)
    assert "\n" not in str(info.value)


def test_truncated_png(tmp_path):
    path = write_image(tmp_path / "whole.png", _random((40, 40), np.uint16))
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(path.read_bytes()[:80])
    with pytest.raises(ImageReadError, match="truncated.png"):
        read_image(truncated)


def test_unsupported_suffixes(tmp_path):
    (tmp_path / "a.gif").write_bytes(b"GIF89a")
    with pytest.raises(ValueError, match="unsupported file type '.gif'"):
        read_image(tmp_path / "a.gif")
    with pytest.raises(ValueError, match="unsupported file type '.gif'"):
        write_image(tmp_path / "a.gif", np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match="unsupported"):
        write_mask(tmp_path / "m.jpg", np.zeros((2, 2), np.uint8))
    assert ".nii.gz" in READABLE_SUFFIXES


@pytest.mark.parametrize(
    ("name", "image"),
    [
        ("float.png", np.zeros((4, 4), np.float32)),
        ("rgba.jpg", np.zeros((4, 4, 4), np.uint8)),
        ("u16.jpg", np.zeros((4, 4), np.uint16)),
        ("rgba.bmp", np.zeros((4, 4, 4), np.uint8)),
        ("two.png", np.zeros((4, 4, 2), np.uint8)),
        ("volume.tif", np.zeros((2, 4, 4, 3), np.uint8)),
    ],
)
def test_unsupported_dtype_or_channels_raise_value_error(tmp_path, name, image):
    with pytest.raises(ValueError, match="cannot write"):
        write_image(tmp_path / name, image)
    assert not (tmp_path / name).exists()


# ------------------------------------------------------------------------ colours


def test_label_colors_conventions():
    table = label_colors(4)
    assert table.shape == (4, 4) and table.dtype == np.uint8
    assert table[0].tolist() == [0, 0, 0, 0]
    red, green, blue, alpha = table[1].astype(int)
    assert green > red + 80 and green > blue + 80 and alpha == 255
    red, green, blue, alpha = table[2].astype(int)
    assert red > green + 80 and red > blue + 80 and alpha == 255
    assert label_colors(0).shape == (0, 4)


def test_label_colors_are_distinct_opaque_and_stable():
    table = label_colors(1000)
    assert len(np.unique(table, axis=0)) == 1000
    assert np.all(table[1:, 3] == 255)
    # No colour near black, so labels stay visible on dark images.
    assert table[1:, :3].max(axis=1).min() >= 100
    np.testing.assert_array_equal(label_colors(30), table[:30])


def test_colorize_labels_uses_the_table():
    labels = np.array([[0, 1, 2], [3, 25, 70000]], dtype=np.uint32)
    rgba = colorize_labels(labels)
    table = label_colors(70001)
    assert rgba.shape == (2, 3, 4)
    np.testing.assert_array_equal(rgba, table[labels])
    huge = np.array([[0, 4_000_000_000]], dtype=np.uint32)
    assert colorize_labels(huge)[0, 1, 3] == 255
    with pytest.raises(ValueError):
        colorize_labels(np.array([[-1]]))


# ----------------------------------------------------------- Pillow conversions


def test_lzw_tiff_falls_back_to_pillow_without_imagecodecs(tmp_path):
    rgb = _random((20, 30, 3), np.uint8)
    path = tmp_path / "lzw.tif"
    Image.fromarray(rgb).save(path, compression="tiff_lzw")
    np.testing.assert_array_equal(read_image(path), rgb)


def test_jpeg_exif_orientation_is_applied(tmp_path):
    photo = data.astronaut()[:40, :60]
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    path = tmp_path / "phone.jpg"
    Image.fromarray(photo).save(path, quality=95, exif=exif)
    assert read_image(path).shape == (60, 40, 3)


def _photo_with_orientation(path, orientation):
    """The cat photo saved to `path` with an EXIF (PNG eXIf chunk) or TIFF Orientation tag."""
    photo = data.chelsea()
    if path.suffix == ".tif":
        tifffile.imwrite(path, photo, photometric="rgb", extratags=[(274, "H", 1, orientation, True)])
    else:
        exif = Image.Exif()
        exif[0x0112] = orientation
        Image.fromarray(photo).save(path, exif=exif)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_png_and_tiff_orientation_is_applied_as_viewers_do(tmp_path, suffix, orientation):
    path = tmp_path / f"turned{orientation}{suffix}"
    _photo_with_orientation(path, orientation)
    upright = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    back = read_image(path)
    np.testing.assert_array_equal(back, upright)
    assert back.flags["C_CONTIGUOUS"]


def test_multipage_tiff_orientation_applies_only_when_every_page_has_the_tag(tmp_path):
    photo = data.chelsea()[:60, :80]
    tagged, mixed = tmp_path / "tagged.tif", tmp_path / "mixed.tif"
    with tifffile.TiffWriter(tagged) as writer:
        writer.write(photo, photometric="rgb", extratags=[(274, "H", 1, 6, True)])
        writer.write(photo, photometric="rgb", extratags=[(274, "H", 1, 3, True)])
    with tifffile.TiffWriter(mixed) as writer:
        writer.write(photo, photometric="rgb", extratags=[(274, "H", 1, 6, True)])
        writer.write(photo, photometric="rgb")
    first, second = read_images(tagged)
    np.testing.assert_array_equal(first, np.rot90(photo, k=-1))
    np.testing.assert_array_equal(second, photo[::-1, ::-1])
    np.testing.assert_array_equal(read_image(tagged, page=1), photo[::-1, ::-1])
    for page in read_images(mixed):
        np.testing.assert_array_equal(page, photo)


def test_a_damaged_png_exif_chunk_leaves_the_pixels_readable(tmp_path):
    photo = data.chelsea()[:30, :40]
    path = tmp_path / "bad_exif.png"
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(photo).save(path, exif=exif)
    whole = path.read_bytes()
    start = whole.index(b"eXIf") + 4
    # Break the TIFF header inside the chunk, and mend the chunk's CRC so libpng reads on.
    length = int.from_bytes(whole[start - 8 : start - 4], "big")
    chunk = b"eXIf" + b"XX" + whole[start + 2 : start + length]
    mended = whole[: start - 4] + chunk + zlib.crc32(chunk).to_bytes(4, "big") + whole[start + length + 4 :]
    path.write_bytes(mended)
    np.testing.assert_array_equal(read_image(path), photo)


def test_cmyk_jpeg_and_gray_alpha_png_become_rgb_and_rgba(tmp_path):
    cmyk = tmp_path / "cmyk.jpg"
    Image.fromarray(_random((8, 9, 4), np.uint8), mode="CMYK").save(cmyk)
    assert read_image(cmyk).shape == (8, 9, 3)
    gray_alpha = _random((8, 9, 2), np.uint8)
    path = tmp_path / "la.png"
    Image.fromarray(gray_alpha, mode="LA").save(path)
    back = read_image(path)
    assert back.shape == (8, 9, 4)
    np.testing.assert_array_equal(back[:, :, 1], gray_alpha[:, :, 0])
    np.testing.assert_array_equal(back[:, :, 3], gray_alpha[:, :, 1])


# ------------------------------------------------ broken files and the pixel limit


@pytest.fixture
def pixel_limit():
    """Set the process's pixel limit for one test, and restore the default after it."""
    yield set_max_pixels
    set_max_pixels(None)


def test_tiff_magic_followed_by_garbage_is_a_read_error(tmp_path):
    # tifffile finds no page in such a file; the IndexError of page 0 used to escape.
    path = tmp_path / "magic.tif"
    path.write_bytes(b"II*\x00" + RNG.bytes(500))
    with pytest.raises(ImageReadError, match="magic.tif .*holds no image"):
        read_image(path)
    with pytest.raises(ImageReadError, match="holds no image"):
        read_images(path)


@pytest.mark.parametrize("name", ["complex.tif", "complex.nii"])
def test_complex_pixels_are_refused(tmp_path, name):
    values = RNG.normal(size=(6, 7))
    complex_image = (values + 1j * values).astype(np.complex64)
    path = tmp_path / name
    if name.endswith(".tif"):
        tifffile.imwrite(path, complex_image)
    else:
        sitk.WriteImage(sitk.GetImageFromArray(complex_image), str(path))
    with pytest.raises(ImageReadError, match=f"{name} .*complex.* pixels: maskwork reads integer and"):
        read_images(path)


def test_damaged_multipage_tiff_is_refused_not_read_short(tmp_path):
    whole = tmp_path / "whole.tif"
    with tifffile.TiffWriter(whole) as writer:
        for _ in range(5):
            writer.write(_random((30, 40), np.uint8))
    # Point the first page's link to the next page past the end of the file: every
    # pixel is there, but tifffile can find only the first page.
    data = bytearray(whole.read_bytes())
    (first_page,) = struct.unpack_from("<I", data, 4)
    (entries,) = struct.unpack_from("<H", data, first_page)
    struct.pack_into("<I", data, first_page + 2 + 12 * entries, len(data) + 1000)
    damaged = tmp_path / "damaged.tif"
    damaged.write_bytes(bytes(data))
    with pytest.raises(ImageReadError, match="damaged.tif .*damaged TIFF.*invalid page offset"):
        read_images(damaged)
    with pytest.raises(ImageReadError, match="damaged TIFF"):
        read_image(damaged)  # page 0 is intact, but the file is not


@pytest.mark.parametrize("name", ["gray.png", "rgb.jpg", "rgb.bmp", "gray.tif", "gray.mha"])
def test_a_header_claiming_billions_of_pixels_is_refused_before_decoding(tmp_path, name):
    # The header says 60000 x 60000; the data is that of a 12 x 16 image. Refused by the
    # header check (no decoder ever sees the file), with the numbers and how to go on.
    small = tmp_path / name
    image = _random((12, 16, 3) if name.startswith("rgb") else (12, 16), np.uint8)
    if name.endswith(".mha"):
        sitk.WriteImage(sitk.GetImageFromArray(image), str(small))
    else:
        write_image(small, image)
    path = tmp_path / f"huge_{name}"
    path.write_bytes(claim_huge_size(name, small.read_bytes()))
    claimed = f"{HUGE_SIDE * HUGE_SIDE:,}" if not name.endswith(".jpg") else "4,225,000,000"
    with pytest.raises(ImageReadError) as info:
        read_images(path)
    assert str(info.value) == (
        f"cannot read image {path} ({claimed} pixels, over the limit of 500,000,000; "
        "raise it in Edit > Preferences, maskwork run --max-pixels or MASKWORK_MAX_PIXELS)"
    )


@pytest.mark.parametrize(
    ("name", "pixels"),
    [("gray.png", 12 * 16), ("palette.png", 12 * 16), ("rgb.jpg", 12 * 16), ("rgb.bmp", 12 * 16),
     ("rgba.webp", 12 * 16), ("pages.tif", 3 * 12 * 16), ("volume.nii.gz", 2 * 12 * 16),
     ("gray.nrrd", 12 * 16), ("gray.mha", 12 * 16)],
)  # fmt: skip
def test_every_reader_applies_the_pixel_limit(tmp_path, pixel_limit, name, pixels):
    path = tmp_path / name
    gray = _random((12, 16), np.uint8)
    if name == "palette.png":
        image = Image.fromarray(gray % 4, mode="P")
        image.putpalette([0, 0, 0, 255, 0, 0] * 128)
        image.save(path)
    elif name == "pages.tif":
        tifffile.imwrite(path, np.stack([gray] * 3), photometric="minisblack")
    elif name == "volume.nii.gz":
        sitk.WriteImage(sitk.GetImageFromArray(np.stack([gray] * 2)), str(path))
    elif name.endswith((".nrrd", ".mha")):
        sitk.WriteImage(sitk.GetImageFromArray(gray), str(path))
    else:
        write_image(path, np.dstack([gray] * (4 if "rgba" in name else 3)) if "rgb" in name else gray)
    pixel_limit(pixels)
    assert sum(image.shape[0] * image.shape[1] for image in read_images(path)) == pixels
    pixel_limit(pixels - 1)
    with pytest.raises(ImageReadError, match=f"{pixels:,} pixels, over the limit of {pixels - 1:,}"):
        read_images(path)


def test_one_tiff_page_counts_alone(tmp_path, pixel_limit):
    path = tmp_path / "pages.tif"
    tifffile.imwrite(path, _random((3, 10, 10), np.uint8), photometric="minisblack")
    pixel_limit(100)
    assert read_image(path, page=2).shape == (10, 10)
    with pytest.raises(ImageReadError, match="300 pixels"):
        read_images(path)


def test_decompression_bomb_is_refused_without_decoding(tmp_path):
    # 12000 x 12000 zeros in about 140 KB: under the 500 MP limit, but 1000 pixels per
    # byte of file. A child process shows the refusal allocates nothing near the 144 MB.
    path = tmp_path / "bomb.png"
    path.write_bytes(png_bomb(12_000, 12_000))
    assert path.stat().st_size < 200_000
    code = (
        "import resource, sys\n"
        "from maskwork.core.io import read_image, ImageReadError\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n"
        f"    read_image({str(path)!r})\n"
        "except ImageReadError as error:\n"
        "    print(error)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    message, grown_kib = done.stdout.strip().splitlines()
    assert message == (
        f"cannot read image {path} (144,000,000 pixels from a file of {path.stat().st_size:,} bytes: "
        "a likely decompression bomb; raise the limit to 1,440,000,000 "
        "in Edit > Preferences, maskwork run --max-pixels or MASKWORK_MAX_PIXELS to read it)"
    )
    assert int(grown_kib) < 20_000


def test_raising_the_limit_admits_a_highly_compressed_image(tmp_path, pixel_limit):
    path = tmp_path / "blank.png"
    path.write_bytes(png_bomb(3000, 3000))  # 9 MP of zeros in a few KB
    pixel_limit(20_000_000)
    with pytest.raises(ImageReadError, match="likely decompression bomb.*raise the limit to 90,000,000 in"):
        read_image(path)
    pixel_limit(90_000_000)
    assert read_image(path).shape == (3000, 3000)


def test_limit_from_the_environment(tmp_path, monkeypatch):
    path = write_image(tmp_path / "gray.png", _random((10, 10), np.uint8))
    monkeypatch.setenv(MAX_PIXELS_VARIABLE, "99")
    assert max_pixels() == 99
    with pytest.raises(ImageReadError, match="100 pixels, over the limit of 99"):
        read_image(path)
    monkeypatch.setenv(MAX_PIXELS_VARIABLE, "lots")
    with pytest.raises(ValueError, match="MASKWORK_MAX_PIXELS must be a positive whole number"):
        read_image(path)
    monkeypatch.delenv(MAX_PIXELS_VARIABLE)
    assert max_pixels() == DEFAULT_MAX_PIXELS == 500_000_000


@pytest.mark.parametrize("name", ["channels.tif", "channels.mha"])
def test_many_channels_count_against_the_limit(tmp_path, pixel_limit, name):
    # 20 pixels of 300 uint8 channels: within a 20-pixel limit by count, but 300 bytes
    # a pixel, far over the 16 a pixel of the limit allows.
    image = _random((4, 5, 300), np.uint8)
    path = tmp_path / name
    if name.endswith(".tif"):
        tifffile.imwrite(path, image, planarconfig="contig")
    else:
        sitk.WriteImage(sitk.GetImageFromArray(image, isVector=True), str(path))
    pixel_limit(20 * 300 // 16)
    assert read_image(path).shape == (4, 5, 300)
    pixel_limit(20)
    with pytest.raises(ImageReadError, match="20 pixels of 300 bytes each would take 6,000 bytes, over the 320"):
        read_image(path)


def test_tiff_with_a_metadata_warning_is_read(tmp_path, caplog):
    # Bytes no code page maps in the description: tifffile logs a warning that it keeps
    # them as bytes, but every pixel is there, so the file is read.
    image = _random((6, 7), np.uint16)
    path = tmp_path / "described.tif"
    tifffile.imwrite(path, image, description=b"scanner id \x81\x90")
    with caplog.at_level(logging.WARNING, logger="tifffile"):
        np.testing.assert_array_equal(read_image(path), image)
    assert "coercing invalid ASCII" in caplog.text


def test_png_chunk_longer_than_the_file_is_refused_before_opencv(tmp_path):
    # One changed byte in the IEND chunk's length: OpenCV allocated the 3.2 GB it
    # claims before noticing the file had ended (found by benchmarks/fuzz_inputs.py).
    whole = write_image(tmp_path / "whole.png", _random((1, 24), np.uint8)).read_bytes()
    iend = whole.rindex(b"IEND") - 4
    path = tmp_path / "long_chunk.png"
    path.write_bytes(whole[:iend] + (3_321_888_768).to_bytes(4, "big") + whole[iend + 4 :])
    with pytest.raises(ImageReadError, match="a chunk of 3,321,888,768 bytes runs past the end of the file"):
        read_image(path)


@pytest.mark.parametrize("suffix", [".mha", ".nrrd"])
def test_binary_bytes_in_a_text_header_are_refused_before_itk(tmp_path, suffix):
    # The newline that ends the header replaced: ITK read the pixel data as part of
    # the header (a MetaImage's data-file name) and once corrupted its heap.
    path = tmp_path / f"image{suffix}"
    sitk.WriteImage(sitk.GetImageFromArray(_random((47, 36), np.uint8)), str(path))
    data = path.read_bytes()
    end = data.index(b"LOCAL\n") + 5 if suffix == ".mha" else data.index(b"\n\n")
    path.write_bytes(data[:end] + b"\x9a" + data[end + 1 :])
    with pytest.raises(ImageReadError, match="corrupt header: it holds bytes that are not text"):
        read_images(path)


def test_tiff_whose_strip_table_is_damaged_is_refused_before_decoding(tmp_path):
    # One changed byte made a 1x1 bilevel image claim 11927553 rows with its one strip: tifffile
    # took a minute and 2 GB to decode that into zeros (found by the long fuzz run).
    path = tmp_path / "strips.tif"
    tifffile.imwrite(path, np.ones((1, 1), bool), rowsperstrip=1)  # 1 bit a pixel
    path.write_bytes(tiff_with_size(path.read_bytes(), 11_927_553, 1))
    start = time.perf_counter()
    with pytest.raises(ImageReadError, match="damaged TIFF, only partly readable: incorrect Strip"):
        read_image(path)
    assert time.perf_counter() - start < 2


# ------------------------------------------------------------------ transform and probability outputs (issue 16)


def test_a_transform_output_goes_to_itk_or_json_each_with_its_sidecar(tmp_path):
    from maskwork.core.io import write_output
    from maskwork.operators.registration.transform import Transform

    matrix = np.array([[0.99, -0.05, 4.5], [0.05, 0.99, -2.0], [0.0, 0.0, 1.0]])
    transform = Transform("similarity", matrix, (40, 50), (40, 50))
    provenance = {"operator": "register_features", "parameters": {"model": "similarity"}}
    tfm = write_output(tmp_path / "t.tfm", "transform", transform, provenance=provenance)
    as_json = write_output(tmp_path / "t.png", "transform", transform, provenance=provenance)
    assert (tfm.name, as_json.name) == ("t.tfm", "t.json")
    itk = sitk.ReadTransform(str(tfm))  # fixed -> moving, the inverse of the matrix
    np.testing.assert_allclose(itk.TransformPoint((10.0, 20.0)), transform.inverse().map_points([[10.0, 20.0]])[0])
    np.testing.assert_allclose(json.loads(as_json.read_text())["matrix"], matrix)
    for path in (tfm, as_json):
        sidecar = json.loads(sidecar_path(path).read_text())
        assert sidecar["file"] == path.name and sidecar["operator"] == "register_features"
    with pytest.raises(ValueError, match="plain matrix"):
        write_output(tmp_path / "m.tfm", "transform", matrix)


def test_a_probabilities_sidecar_names_each_planes_class_id(tmp_path):
    from maskwork.core.io import write_output

    planes = np.random.default_rng(0).random((8, 9, 3)).astype(np.float32)
    path = write_output(tmp_path / "p.png", "probabilities", planes, provenance={}, class_ids=(1, 4, 9))
    assert path.name == "p.tif"
    np.testing.assert_array_equal(tifffile.imread(path), planes)
    assert json.loads(sidecar_path(path).read_text())["plane_class_ids"] == [1, 4, 9]
    with pytest.raises(ValueError, match="2 class ids for 3 probability plane"):
        write_output(tmp_path / "q.tif", "probabilities", planes, provenance={}, class_ids=(1, 2))
    assert not (tmp_path / "q.tif").exists()


def test_a_write_that_fails_names_the_file_that_failed_and_why(tmp_path):
    from maskwork.core.io import write_output

    mask = np.ones((4, 5), bool)
    (tmp_path / "a.png.json").mkdir()  # where the sidecar goes
    with pytest.raises(OSError, match=r"cannot write .*a\.png\.json: that is a folder$"):
        write_output(tmp_path / "a.png", "mask", mask, provenance={"operator": "threshold"})
    (tmp_path / "taken.png").write_bytes(b"a file")
    with pytest.raises(OSError) as failed:
        write_output(tmp_path / "taken.png" / "b.png", "mask", mask)
    assert str(failed.value) == f"cannot write {tmp_path / 'taken.png' / 'b.png'}: {tmp_path / 'taken.png'} is a file, not a folder"
    assert not [path.name for path in tmp_path.iterdir() if ".tmp" in path.name]  # no temporary file left


def test_the_names_outputs_are_written_under_keep_the_suffix_given():
    from maskwork.core.io import written_path

    assert written_path("P.TIF", "probabilities").name == "P.TIF"
    assert written_path("p.tiff", "probabilities").name == "p.tiff"
    assert written_path("p.png", "probabilities").name == "p.tif"
    assert written_path("T.JSON", "transform").name == "T.JSON" and written_path("t.TFM", "transform").name == "t.TFM"
    assert written_path("t.png", "transform").name == "t.json" and written_path("m.PNG", "mask").name == "m.PNG"
