"""A seeded corpus of image files for fuzzing the readers and ``maskwork run``.

:func:`corpus` yields :class:`Case` objects: small valid images in every readable
format (odd dtypes, odd channel counts, tiny sizes, multi-page files) and broken ones
made from them: truncated, garbage, bytes flipped, garbage after a valid header, headers
that claim a huge size (decompression bombs), complex pixels, empty files. The same seed
gives the same files, so a failure can be replayed by its case name.

Used by ``tests/test_fuzz_inputs.py`` (a few hundred cases) and
``benchmarks/fuzz_inputs.py`` (tens of thousands).
"""

from __future__ import annotations

import io
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import SimpleITK as sitk
import tifffile
from PIL import Image

#: The outcomes a case may have: "good" (read, and an operator taking any image runs on
#: it), "odd" (read, but an operator may refuse it: too small, two channels), "bad"
#: (refused) or "either" (a mutation that may or may not leave a readable image).
GOOD, ODD, BAD, EITHER = "good", "odd", "bad", "either"
# Valid files of a size or channel count some operators refuse.
_ODD_NAMES = ("two_channels.tif", "five_channels.tif", "one_pixel.tif", "one_row.png",
              "one_column.png", "two_by_two.png", "int64_far_from_zero.tif")

#: Width and height :func:`claim_huge_size` writes: far over the default limit of 500 MP.
HUGE_SIDE = 60_000


@dataclass(frozen=True)
class Case:
    """One generated input file.

    Attributes
    ----------
    name : str
        File name, unique within a corpus; its suffix picks the reader.
    data : bytes
        The file's content.
    expect : str
        :data:`GOOD`, :data:`ODD`, :data:`BAD` or :data:`EITHER`.
    """

    name: str
    data: bytes
    expect: str


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(rows: int, cols: int) -> bytes:
    """A gray 8-bit PNG of zeros, compressed row by row so nothing large is held.

    12000 x 12000 gives a file of about 140 KB that decodes to 144 MB.
    """
    compressor = zlib.compressobj(9)
    row = bytes(cols + 1)  # the filter-type byte, then the samples
    parts = [compressor.compress(row) for _ in range(rows)]
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", cols, rows, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", b"".join(parts))
        + _png_chunk(b"IEND", b"")
    )


def _encode(array: np.ndarray, suffix: str) -> bytes:
    """Encode `array` the way another program might have written it."""
    buffer = io.BytesIO()
    if suffix == ".png":
        Image.fromarray(array).save(buffer, format="PNG")
    elif suffix in (".jpg", ".bmp", ".webp"):
        formats = {".jpg": "JPEG", ".bmp": "BMP", ".webp": "WEBP"}
        Image.fromarray(array).save(buffer, format=formats[suffix])
    elif suffix == ".tif":
        tifffile.imwrite(buffer, array)
    else:
        raise ValueError(suffix)
    return buffer.getvalue()


def _sitk_bytes(array: np.ndarray, suffix: str) -> bytes:
    """Write `array` with SimpleITK (which needs a real file) and return the bytes.

    Every axis is a spatial one (isVector=False): a 4-D array makes a 4-D image.
    """
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"image{suffix}"
        sitk.WriteImage(sitk.GetImageFromArray(array, isVector=False), str(path))
        return path.read_bytes()


def _pillow_bytes(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def _palette_png(labels: np.ndarray) -> bytes:
    image = Image.fromarray(labels.astype(np.uint8), mode="P")
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * (256 * 3 - 9))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _multipage_tiff(pages: list[np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    with tifffile.TiffWriter(buffer) as writer:
        for page in pages:
            writer.write(page)
    return buffer.getvalue()


def _deflate_tiff(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, array, compression="zlib", rowsperstrip=4)
    return buffer.getvalue()


def _valid_images(rng: np.random.Generator) -> list[tuple[str, bytes]]:
    """One valid file per kind the readers handle, of a random small size."""
    rows, cols = (int(n) for n in rng.integers(12, 48, size=2))
    gray = rng.integers(0, 256, (rows, cols), dtype=np.uint8)
    rgb = rng.integers(0, 256, (rows, cols, 3), dtype=np.uint8)
    rgba = rng.integers(0, 256, (rows, cols, 4), dtype=np.uint8)
    deep = rng.integers(0, 65536, (rows, cols), dtype=np.uint16)
    floats = rng.normal(size=(rows, cols)).astype(np.float32)
    return [
        ("gray.png", _encode(gray, ".png")),
        ("rgb.png", _encode(rgb, ".png")),
        ("rgba.png", _encode(rgba, ".png")),
        ("gray16.png", _encode(deep, ".png")),
        ("palette.png", _palette_png(gray % 3)),
        ("rgb.jpg", _encode(rgb, ".jpg")),
        ("gray.jpg", _encode(gray, ".jpg")),
        ("rgb.bmp", _encode(rgb, ".bmp")),
        ("rgba.webp", _encode(rgba, ".webp")),
        ("gray.tif", _encode(gray, ".tif")),
        ("gray16.tif", _encode(deep, ".tif")),
        ("float32.tif", _encode(floats, ".tif")),
        ("float64.tif", _encode(floats.astype(np.float64), ".tif")),
        ("float16.tif", _encode(floats.astype(np.float16), ".tif")),
        ("int8.tif", _encode((gray.astype(np.int16) - 128).astype(np.int8), ".tif")),
        ("int32.tif", _encode(deep.astype(np.int32) - 30000, ".tif")),
        ("uint32.tif", _encode(deep.astype(np.uint32) * 70000, ".tif")),
        ("int64.tif", _encode(deep.astype(np.int64) - 30000, ".tif")),
        # 65536 values near -2**40: threshold works in float32, which cannot tell them
        # apart, and refuses ("Cannot create 256 finite-sized bins").
        ("int64_far_from_zero.tif", _encode(deep.astype(np.int64) - 2**40, ".tif")),
        ("bool.tif", _encode(gray > 127, ".tif")),
        ("two_channels.tif", _encode(rgb[..., :2], ".tif")),
        ("five_channels.tif", _encode(rng.integers(0, 256, (rows, cols, 5), dtype=np.uint8), ".tif")),
        ("one_pixel.tif", _encode(gray[:1, :1], ".tif")),
        ("one_row.png", _encode(gray[:1], ".png")),
        ("one_column.png", _encode(np.ascontiguousarray(gray[:, :1]), ".png")),
        ("two_by_two.png", _encode(gray[:2, :2], ".png")),
        ("pages.tif", _multipage_tiff([gray, rgb, deep])),
        ("pages_of_sizes.tif", _multipage_tiff([gray, gray[: rows // 2, : cols // 3]])),
        ("gray_alpha.png", _pillow_bytes(Image.fromarray(rgba[..., :2], mode="LA"), "PNG")),
        ("bilevel.png", _pillow_bytes(Image.fromarray(gray > 127).convert("1"), "PNG")),
        ("cmyk.jpg", _pillow_bytes(Image.fromarray(rgba, mode="CMYK"), "JPEG")),
        ("animated.webp", _pillow_bytes(
            Image.fromarray(rgb), "WEBP", save_all=True, append_images=[Image.fromarray(rgb[::-1])] * 2,
        )),
        # LZW needs the optional imagecodecs package in tifffile: the Pillow fallback reads it.
        ("lzw.tif", _pillow_bytes(Image.fromarray(rgb), "TIFF", compression="tiff_lzw")),
        ("deflate.tif", _deflate_tiff(rgb)),
        ("gray.mha", _sitk_bytes(gray, ".mha")),
        ("float.nii.gz", _sitk_bytes(floats, ".nii.gz")),
        ("volume.nrrd", _sitk_bytes(np.stack([gray, gray]), ".nrrd")),
    ]


def _bad_images(rng: np.random.Generator) -> list[tuple[str, bytes]]:
    """Files that must be refused whatever the mutation: pixel types and shapes no
    operator handles, empty and headless files, and bombs."""
    rows, cols = (int(n) for n in rng.integers(12, 48, size=2))
    values = rng.normal(size=(rows, cols))
    return [
        ("complex64.tif", _encode((values + 1j * values).astype(np.complex64), ".tif")),
        # NIfTI stores complex voxels as such (MetaImage would store two float channels).
        ("complex64.nii", _sitk_bytes((values + 1j * values).astype(np.complex64), ".nii")),
        ("empty.png", b""),
        ("empty.tif", b""),
        ("tiff_magic_then_garbage.tif", b"II*\x00" + rng.bytes(int(rng.integers(4, 2000)))),
        ("png_signature_only.png", b"\x89PNG\r\n\x1a\n"),
        ("garbage.jpg", rng.bytes(int(rng.integers(1, 3000)))),
        ("garbage.nii.gz", rng.bytes(int(rng.integers(1, 3000)))),
        ("four_d.nrrd", _sitk_bytes(np.zeros((2, 2, 3, 4), np.uint8), ".nrrd")),
    ]


def claim_huge_size(name: str, data: bytes) -> bytes | None:
    """`data` with its header's width and height replaced by :data:`HUGE_SIDE`.

    JPEG's limit is 65535, so a JPEG claims 65000 x 65000. None where this format's
    header is not patched here (WebP, NIfTI).
    """
    suffix = Path(name).suffix
    if suffix == ".png" and data.startswith(b"\x89PNG"):
        header = bytearray(data[16:29])
        header[0:8] = struct.pack(">II", HUGE_SIDE, HUGE_SIDE)
        return data[:8] + _png_chunk(b"IHDR", bytes(header)) + data[33:]
    if suffix == ".jpg":
        start = data.find(b"\xff\xc0")
        if start < 0:
            return None
        patched = bytearray(data)
        patched[start + 5 : start + 9] = struct.pack(">HH", 65_000, 65_000)
        return bytes(patched)
    if suffix == ".bmp":
        patched = bytearray(data)
        patched[18:26] = struct.pack("<ii", HUGE_SIDE, HUGE_SIDE)
        return bytes(patched)
    if suffix == ".tif":
        return tiff_with_size(data, HUGE_SIDE, HUGE_SIDE)
    if suffix in (".mha", ".nrrd"):
        # Text headers: MetaImage "DimSize = 16 12", NRRD "sizes: 16 12 2".
        key = "DimSize = " if suffix == ".mha" else "sizes: "
        text = data.decode("latin-1")
        start = text.find(key)
        if start < 0:
            return None
        end = text.find("\n", start)
        sizes = text[start + len(key) : end].split()
        sizes[:2] = [str(HUGE_SIDE)] * 2
        return (text[:start] + key + " ".join(sizes) + text[end:]).encode("latin-1")
    return None


def tiff_with_size(data: bytes, rows: int, cols: int) -> bytes | None:
    """A little-endian classic TIFF with its first page's ImageWidth and ImageLength
    tags set to `cols` and `rows` (as LONG values)."""
    if not data.startswith(b"II*\x00"):
        return None
    patched = bytearray(data)
    (offset,) = struct.unpack_from("<I", patched, 4)
    (count,) = struct.unpack_from("<H", patched, offset)
    for entry in range(offset + 2, offset + 2 + 12 * count, 12):
        tag = struct.unpack_from("<H", patched, entry)[0]
        if tag in (256, 257):  # ImageWidth, ImageLength
            struct.pack_into("<HII", patched, entry + 2, 4, 1, cols if tag == 256 else rows)
    return bytes(patched)


def _damaged_multipage_tiff(rng: np.random.Generator) -> bytes:
    """A five-page TIFF cut short, so the page chain points past the end."""
    pages = [rng.integers(0, 256, (30, 40), dtype=np.uint8) for _ in range(5)]
    data = _multipage_tiff(pages)
    return data[: len(data) * int(rng.integers(2, 4)) // 5]


_Mutation = Callable[[np.random.Generator, bytes], bytes]


def _truncate(rng: np.random.Generator, data: bytes) -> bytes:
    return data[: int(rng.integers(0, max(len(data), 1)))]


def _flip_bytes(rng: np.random.Generator, data: bytes) -> bytes:
    patched = bytearray(data)
    for _ in range(int(rng.integers(1, 9))):
        position = int(rng.integers(0, len(patched)))
        patched[position] = int(rng.integers(0, 256))
    return bytes(patched)


def _garbage_after_header(rng: np.random.Generator, data: bytes) -> bytes:
    keep = int(rng.integers(8, min(len(data), 200) + 1)) if len(data) > 8 else len(data)
    return data[:keep] + rng.bytes(int(rng.integers(1, 4000)))


def _append_garbage(rng: np.random.Generator, data: bytes) -> bytes:
    return data + rng.bytes(int(rng.integers(1, 2000)))


_MUTATIONS: dict[str, _Mutation] = {
    "truncated": _truncate,
    "flipped": _flip_bytes,
    "garbage_after_header": _garbage_after_header,
    "garbage_appended": _append_garbage,
}


def corpus(seed: int, size: int) -> Iterator[Case]:
    """Yield `size` cases made from `seed`.

    Roughly a fifth are valid images, a tenth files that must be refused (odd pixel
    types, empty files, bombs, damaged multi-page TIFFs) and the rest random mutations
    of valid images, whose outcome is either.

    Parameters
    ----------
    seed : int
        Seed of the random generator; the same seed gives the same cases.
    size : int
        Number of cases.
    """
    rng = np.random.default_rng(seed)
    made = 0
    while made < size:
        valid = _valid_images(rng)
        batch: list[Case] = [Case(name, data, ODD if name in _ODD_NAMES else GOOD) for name, data in valid]
        batch += [Case(name, data, BAD) for name, data in _bad_images(rng)]
        batch.append(Case("damaged_pages.tif", _damaged_multipage_tiff(rng), BAD))
        for name, data in valid:
            huge = claim_huge_size(name, data)
            if huge is not None:
                batch.append(Case(f"huge_{name}", huge, BAD))
        for _ in range(3 * len(valid)):
            name, data = valid[int(rng.integers(len(valid)))]
            mutation = list(_MUTATIONS)[int(rng.integers(len(_MUTATIONS)))]
            batch.append(Case(f"{mutation}_{name}", _MUTATIONS[mutation](rng, data), EITHER))
        for case in batch[: size - made]:
            yield Case(f"{made:05d}_{case.name}", case.data, case.expect)
            made += 1
