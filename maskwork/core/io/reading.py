"""Reading image files into arrays; every failure becomes one :class:`ImageReadError`.

Arrays follow the application convention: (row, col) or (row, col, channel),
channels in RGB(A) order, native dtype kept. Readers turn every failure into an
:class:`ImageReadError` with a one-line message.

Which library handles which format, and why:

* PNG: OpenCV, because Pillow silently truncates 16-bit RGB/RGBA PNGs to 8 bits
  (and imageio's Pillow plugin cannot write them). OpenCV expands palette PNGs
  to RGB (RGBA with a tRNS chunk), as a photo is shown; a marker or label image
  saved as a palette PNG means its *indices*, so those are read with Pillow when
  the caller asks for palette indices. The eXIf chunk's orientation is applied.
* JPEG, BMP, WebP: imageio's Pillow plugin (EXIF orientation applied, CMYK
  converted to RGB, animated WebP read frame by frame).
* TIFF: tifffile (any dtype, multi-page, 16-bit RGB; palette images expanded
  through their colour map unless indices are asked for; the Orientation tag
  applied). Compressions that need the optional ``imagecodecs`` package (LZW,
  JPEG) fall back to Pillow.
* NIfTI, MetaImage, NRRD: SimpleITK, imported only when such a file is read.

Every reader checks the pixel count from the file's header before it decodes
anything (:func:`max_pixels`): an image over the limit is refused, and so is a
small file that would decode to far more pixels than its size suggests (a
decompression bomb), without a large allocation. Complex, object and
structured pixel types are refused too: nothing downstream handles them. A TIFF
that tifffile can only partly parse (a damaged multi-page file) is refused rather
than read short.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
from pathlib import Path
from typing import Any, Callable, Iterable

import cv2
import imageio.v3 as iio
import numpy as np
import tifffile
from PIL import Image

from maskwork.core.io.files import file_suffix

#: File name suffixes :func:`read_images` understands (compared case-insensitively):
#:
#: * ``.png`` -- 8/16-bit gray, gray+alpha (read as RGBA), RGB, RGBA; palette
#:   PNGs are expanded to RGB(A), or read as their indices on request (label
#:   and marker images).
#: * ``.jpg``, ``.jpeg`` -- 8-bit gray or RGB (CMYK is converted to RGB).
#: * ``.bmp`` -- 8-bit gray or RGB (palette BMPs are expanded to RGB, or read as
#:   their indices on request).
#: * ``.tif``, ``.tiff`` -- any dtype, one array per page (palette TIFFs as for PNG).
#: * ``.webp`` -- 8-bit RGB or RGBA, one array per animation frame.
#: * ``.nii``, ``.nii.gz`` (NIfTI), ``.mha``, ``.mhd`` (MetaImage), ``.nrrd``,
#:   ``.nhdr`` (NRRD) -- 2-D images; a 3-D volume gives one array per slice.
READABLE_SUFFIXES = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".tif",
    ".tiff",
    ".webp",
    ".nii",
    ".nii.gz",
    ".mha",
    ".mhd",
    ".nrrd",
    ".nhdr",
)

_SITK_SUFFIXES = (".nii", ".nii.gz", ".mha", ".mhd", ".nrrd", ".nhdr")
# Headers whose voxels live in another file.
_DETACHED_HEADERS = (".mhd", ".nhdr")
# How much of a MetaImage or NRRD file is searched for the end of its text header.
_TEXT_HEADER_MAX_BYTES = 65536
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Offset of the colour-type byte in a PNG: 8-byte signature, then the IHDR chunk
# (4-byte length, b"IHDR", width, height, bit depth, colour type).
_PNG_COLOR_TYPE_OFFSET = 25
_PNG_COLOR_TYPE_PALETTE = 3
# EXIF/TIFF tag that says how the stored pixels are turned relative to the scene.
_ORIENTATION_TAG = 0x0112
# Pillow modes that are not arrays of gray/RGB(A) samples and must be converted.
_PILLOW_CONVERT = {"CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB", "1": "L"}
# Offsets of the width and height (big-endian uint32) in the IHDR chunk of a PNG.
_PNG_WIDTH_OFFSET = 16
_PNG_HEIGHT_OFFSET = 20
# Pixel kinds the application handles: bool, signed and unsigned integers, floats.
_SUPPORTED_KINDS = "biuf"

#: Pixel limit used when neither :func:`set_max_pixels` nor the environment sets one.
DEFAULT_MAX_PIXELS = 500_000_000
#: Environment variable that sets the pixel limit (a whole number of pixels).
MAX_PIXELS_VARIABLE = "MASKWORK_MAX_PIXELS"
_max_pixels_override: int | None = None
# Decompression-bomb guard (see _check_pixel_count): images above this share of the
# limit must not expand beyond this many pixels per byte of file.
_BOMB_SHARE_OF_LIMIT = 10
_BOMB_PIXELS_PER_BYTE = 200
# Decoded bytes allowed per pixel of the limit: four channels of float32 (RGBA at
# full precision); beyond, the limit's memory bound would not hold.
_MAX_BYTES_PER_PIXEL = 16

# Pillow has its own bomb check (a warning above 89 MP, an error above 179 MP) that
# would refuse images below this module's limit; the header check here replaces it.
Image.MAX_IMAGE_PIXELS = None


class ImageReadError(ValueError):
    """An image file is missing, of an unsupported type, or cannot be decoded.

    The message is one line that names the file and the reason, meant to be
    shown to the user as it is.
    """


def max_pixels() -> int:
    """Return the largest number of pixels a read may decode.

    The limit counts rows x columns (x slices) of every page or frame decoded,
    whatever the channels and dtype. It is the value given to
    :func:`set_max_pixels`, else the :data:`MAX_PIXELS_VARIABLE` environment
    variable, else :data:`DEFAULT_MAX_PIXELS` (500 megapixels). Images over a
    tenth of it are also refused when they would decode to more than 200 pixels
    per byte of file (likely decompression bombs).

    Raises
    ------
    ValueError
        If the environment variable is not a positive whole number.
    """
    if _max_pixels_override is not None:
        return _max_pixels_override
    text = os.environ.get(MAX_PIXELS_VARIABLE, "").strip()
    if not text:
        return DEFAULT_MAX_PIXELS
    try:
        limit = int(text)
    except ValueError:
        limit = 0
    if limit <= 0:
        raise ValueError(f"{MAX_PIXELS_VARIABLE} must be a positive whole number of pixels, got {text!r}")
    return limit


def set_max_pixels(limit: int | None) -> None:
    """Set the pixel limit of every later read in this process.

    Parameters
    ----------
    limit : int or None
        Largest number of pixels to decode (see :func:`max_pixels`); None goes
        back to the environment variable or the default.

    Raises
    ------
    ValueError
        If `limit` is not positive.
    """
    global _max_pixels_override
    if limit is not None and limit <= 0:
        raise ValueError(f"the pixel limit must be positive, got {limit}")
    _max_pixels_override = limit


def _check_pixel_count(path: Path, shapes: Iterable[tuple[int, ...]], *,
                       holds_pixels: bool = True, decoded_bytes: int | None = None) -> None:
    """Refuse to decode images over the pixel limit, or likely decompression bombs.

    A bomb is an image of more than a tenth of the limit that would decode to more
    than :data:`_BOMB_PIXELS_PER_BYTE` pixels per byte of the file (a 140 KB PNG
    of 12000 x 12000 zeros has about 1000); photos have a few pixels per byte and
    sparse label images tens. A limit ten times the image's pixels admits it.

    Parameters
    ----------
    path : Path
        The file: named in the message, and its size tells a bomb.
    shapes : iterable of tuple of int
        (rows, columns) or (slices, rows, columns) of each image that would be decoded.
    holds_pixels : bool
        False for a detached header (``.mhd``, ``.nhdr``), whose own size says
        nothing about the data's compression.
    decoded_bytes : int, optional
        Bytes the decoded arrays would take, for formats whose pixels may hold any
        number of channels (TIFF, MetaImage, NRRD, NIfTI): more than
        :data:`_MAX_BYTES_PER_PIXEL` per pixel of the limit is refused too, so a
        small image of 60000 channels cannot exhaust memory either. Other formats
        hold at most four channels of 16 bits.
    """
    total = sum(math.prod(int(n) for n in shape) for shape in shapes)
    limit = max_pixels()
    # Where a person raises the limit: the window, the command line, the environment.
    where = f"Edit > Preferences, maskwork run --max-pixels or {MAX_PIXELS_VARIABLE}"
    if total > limit:
        raise ImageReadError(
            f"cannot read image {path} ({total:,} pixels, over the limit of {limit:,}; "
            f"raise it in {where})"
        )
    if decoded_bytes is not None and decoded_bytes > limit * _MAX_BYTES_PER_PIXEL:
        raise ImageReadError(
            f"cannot read image {path} ({total:,} pixels of {decoded_bytes // max(total, 1):,} bytes "
            f"each would take {decoded_bytes:,} bytes, over the {limit * _MAX_BYTES_PER_PIXEL:,} "
            f"allowed by the pixel limit; raise it in {where})"
        )
    if holds_pixels and total > limit // _BOMB_SHARE_OF_LIMIT:
        file_bytes = max(path.stat().st_size, 1)
        if total > _BOMB_PIXELS_PER_BYTE * file_bytes:
            raise ImageReadError(
                f"cannot read image {path} ({total:,} pixels from a file of {file_bytes:,} bytes: "
                f"a likely decompression bomb; raise the limit to {total * _BOMB_SHARE_OF_LIMIT:,} "
                f"in {where} to read it)"
            )


def _check_pixel_kind(path: Path, dtype: np.dtype | None) -> None:
    """Refuse complex, object, structured and text pixel types with a clear message."""
    if dtype is not None and np.dtype(dtype).kind not in _SUPPORTED_KINDS:
        raise ImageReadError(
            f"cannot read image {path} ({np.dtype(dtype)} pixels: maskwork reads integer and "
            "floating-point images only)"
        )



def _reason(exc: BaseException) -> str:
    """Return a short description of a decoder exception for an error message."""
    if isinstance(exc, MemoryError):
        return "not enough memory"
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _select(images: list[np.ndarray], page: int | None, path: Path) -> list[np.ndarray]:
    """Return `images`, or only ``images[page]`` when a page is asked for."""
    if page is None:
        return images
    _check_page(page, len(images), path)
    return [images[page]]


class _NoSuchPage(IndexError):
    """A page index out of range: the caller's mistake, not a broken file.

    A subclass so that IndexErrors raised inside decoders for corrupt files are
    still reported as :class:`ImageReadError`.
    """


def _check_page(page: int, count: int, path: Path) -> None:
    if count == 0:
        # A file without pages is broken, whichever page was asked for.
        raise ImageReadError(f"cannot read image {path} (the file holds no image)")
    if not 0 <= page < count:
        raise _NoSuchPage(f"{path} has {count} page(s); page {page} does not exist")


def _oriented(image: np.ndarray, orientation: int) -> np.ndarray:
    """Turn `image` upright as its EXIF/TIFF `orientation` (1..8) says.

    The same transpositions as Pillow's ``ImageOps.exif_transpose``, on the
    first two axes of a (row, col[, channel]) array; any other value (0 from
    buggy writers, an unknown number) leaves the image as stored.
    """
    turns = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: np.swapaxes(a, 0, 1),
        6: lambda a: np.rot90(a, k=-1),
        7: lambda a: np.swapaxes(a[::-1, ::-1], 0, 1),
        8: lambda a: np.rot90(a, k=1),
    }
    turn = turns.get(orientation)
    # Contiguous: OpenCV, used by many operators, refuses negative strides.
    return image if turn is None else np.ascontiguousarray(turn(image))


def _read_pillow(path: Path, page: int | None, palette_indices: bool = False) -> list[np.ndarray]:
    """Read frames through imageio's Pillow plugin.

    Parameters
    ----------
    path : Path
        File Pillow can identify (by content, whatever the suffix).
    page : int or None
        Frame to read, or None for all frames.
    palette_indices : bool
        Return palette images as their indices instead of expanded colours.
    """
    frames = []
    try:
        handle = iio.imopen(path, "r", plugin="pillow")
    except OSError:
        # imageio's own message ("`pillow` can not handle the given uri") says
        # nothing to a user: Pillow did not recognise the content.
        raise ImageReadError(
            f"cannot read image {path} (unrecognised format or corrupt data)"
        ) from None
    with handle:
        # properties() reads the header only; every frame has the canvas's size.
        header = handle.properties(index=...)
        count = header.n_images
        if page is not None:
            _check_page(page, count, path)
        frame_size = tuple(header.shape[1:3])
        _check_pixel_count(path, [frame_size] * (count if page is None else 1))
        for index in range(count) if page is None else (page,):
            mode = handle.metadata(index=index).get("mode")
            if mode in ("P", "PA") and palette_indices:
                target = "P"
            else:
                # None keeps gray/RGB(A)/16-bit/float as stored and expands palettes.
                target = _PILLOW_CONVERT.get(mode)
            # rotate=True applies the EXIF orientation, so a phone photo is the
            # right way up, as every viewer shows it (and masks drawn on it match).
            frames.append(handle.read(index=index, mode=target, rotate=True))
    return frames


def _exif_orientation(exif_bytes: bytes) -> int:
    """The orientation an EXIF block states: 1 (as stored) without one, or when the
    block is damaged (damaged metadata must not cost the pixels)."""
    exif = Image.Exif()
    try:
        exif.load(exif_bytes)
    except Exception:
        return 1
    return exif.get(_ORIENTATION_TAG, 1)


def _check_png_chunks(data: np.ndarray, path: Path) -> int:
    """Refuse a PNG with a chunk whose declared length runs past the end of the file;
    return the orientation its eXIf chunk states (1, upright, without one).

    OpenCV's decoder allocates (and fills) a chunk's declared length before it
    reads the chunk: one changed byte in a 91-byte PNG made it take 3.2 GB.
    Only the 8-byte chunk headers are read here, and the eXIf chunk's data.
    OpenCV ignores eXIf, which may follow the pixel data (Pillow then decodes
    every pixel to find it), so the walk to IEND finds it wherever it is.
    """
    view = data.data
    position = len(_PNG_SIGNATURE)
    orientation = 1
    while position + 8 <= len(view):
        length = int.from_bytes(view[position : position + 4], "big")
        end = position + 12 + length  # length, type, data, CRC
        if end > len(view):
            raise ImageReadError(
                f"cannot read image {path} (corrupt or truncated PNG data: a chunk of "
                f"{length:,} bytes runs past the end of the file)"
            )
        chunk_type = view[position + 4 : position + 8]
        if chunk_type == b"eXIf":
            orientation = _exif_orientation(view[position + 8 : end - 4].tobytes())
        if chunk_type == b"IEND":
            break
        position = end
    return orientation


def _read_png(path: Path, page: int | None, palette_indices: bool = False) -> list[np.ndarray]:
    """Read a PNG exactly: 16-bit kept, palette images expanded or as their indices,
    turned upright by the eXIf orientation."""
    data = np.fromfile(path, dtype=np.uint8)
    if data[: len(_PNG_SIGNATURE)].tobytes() != _PNG_SIGNATURE:
        # A JPEG or other image saved with a .png name: let Pillow sniff it.
        try:
            return _read_pillow(path, page, palette_indices)
        except (_NoSuchPage, ImageReadError):
            raise
        except Exception:
            raise ImageReadError(f"cannot read image {path} (not a valid PNG file)") from None
    orientation = _check_png_chunks(data, path)
    color_type = data[_PNG_COLOR_TYPE_OFFSET] if data.size > _PNG_COLOR_TYPE_OFFSET else None
    if color_type == _PNG_COLOR_TYPE_PALETTE and palette_indices:
        # OpenCV would expand the palette; Pillow keeps the indices (and applies eXIf).
        return _read_pillow(path, page, palette_indices=True)
    if data.size >= _PNG_HEIGHT_OFFSET + 4:
        width = int.from_bytes(data[_PNG_WIDTH_OFFSET:_PNG_WIDTH_OFFSET + 4].tobytes(), "big")
        height = int.from_bytes(data[_PNG_HEIGHT_OFFSET:_PNG_HEIGHT_OFFSET + 4].tobytes(), "big")
        _check_pixel_count(path, [(height, width)])
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageReadError(f"cannot read image {path} (corrupt or truncated PNG data)")
    if image.ndim == 3:
        # IMREAD_UNCHANGED returns gray+alpha PNGs as BGRA too, so 3 or 4 channels.
        code = cv2.COLOR_BGR2RGB if image.shape[2] == 3 else cv2.COLOR_BGRA2RGBA
        image = cv2.cvtColor(image, code)
    # An animated PNG gives its first frame only (OpenCV decodes one image).
    return _select([_oriented(image, orientation)], page, path)


def _tiff_page_arrays(page: Any, palette_indices: bool, orientation: int) -> list[np.ndarray]:
    """Decode one TIFF page into (row, col[, channel]) arrays.

    A palette page gives its indices when `palette_indices` is true, else the RGB
    of its colour map; every array is turned upright by `orientation`.
    """
    array = page.asarray()
    axes = page.axes
    if "S" in axes and not axes.endswith("S"):
        # Planar ("separate") samples come first; move them to the last axis.
        array = np.moveaxis(array, axes.index("S"), -1)
        axes = axes.replace("S", "") + "S"
    if page.photometric == tifffile.PHOTOMETRIC.PALETTE and "S" not in axes and not palette_indices:
        array = _palette_colors(page.colormap)[array]
    if axes.startswith("Z"):
        # A volumetric (SGI depth) page: one image per depth slice.
        return [_oriented(image, orientation) for image in array]
    return [_oriented(array, orientation)]


def _palette_colors(colormap: np.ndarray) -> np.ndarray:
    """The (entries, 3) uint8 RGB table of a TIFF colour map (3, entries).

    TIFF stores 16-bit colour maps; like Pillow, keep their high byte. Some
    writers store 8-bit values in them, which are kept as they are.
    """
    table = np.asarray(colormap).T
    return (table >> 8 if table.max() > 255 else table).astype(np.uint8)


class _TiffProblems(logging.Handler):
    """Collects what tifffile logs from one thread while that thread reads a file.

    tifffile reports a damaged page chain, a tag list it could not parse or
    missing strips by logging an error (while parsing) or a warning (while
    decoding: "expected 11927553 segments, got 1") and going on with what it
    could read; :meth:`refuse_if_damaged` turns those into a refusal instead of
    an image passed on short. Warnings while parsing (metadata it had to
    coerce, such as undecodable bytes in a description) leave the pixels whole
    and pass.
    """

    def __init__(self, path: Path) -> None:
        super().__init__(logging.WARNING)
        self.path = path
        self.thread = threading.get_ident()
        self.decoding = False
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        # The logger is shared: another thread's read must not fail this one.
        if record.thread != self.thread:
            return
        if record.levelno >= logging.ERROR or self.decoding:
            self.messages.append(record.getMessage())

    def refuse_if_damaged(self) -> None:
        """Raise :class:`ImageReadError` with the first problem logged, if any."""
        if self.messages:
            # tifffile starts its messages with the object's repr, "<tifffile.TiffPages @8>".
            reason = re.sub(r"^<[^>]*>\s*", "", self.messages[0].splitlines()[0])
            raise ImageReadError(
                f"cannot read image {self.path} (damaged TIFF, only partly readable: {reason})"
            )


def _tiff_orientations(pages: Any) -> list[int]:
    """The Orientation tag of each page, or all 1 (as stored) unless every page has one.

    Where only some pages carry the tag, the others' turn is unknown: turning the
    tagged pages alone would set them at odds with the rest of the stack.
    """
    tags = [tiff_page.tags.get(_ORIENTATION_TAG) for tiff_page in pages]
    if any(tag is None for tag in tags):
        return [1] * len(tags)
    # A malformed tag (several values) says nothing: 1 leaves that page as stored.
    return [tag.value if isinstance(tag.value, int) else 1 for tag in tags]


def _read_tiff_pages(tif: tifffile.TiffFile, page: int | None, path: Path,
                     problems: _TiffProblems, palette_indices: bool) -> list[np.ndarray]:
    """Check the pages' header shapes, types and damage, then decode them."""
    count = len(tif.pages)  # parses the whole page chain, so damage shows here
    _check_page(0 if page is None else page, count, path)
    chosen = list(tif.pages) if page is None else [tif.pages[page]]
    for tiff_page in chosen:
        _check_pixel_kind(path, tiff_page.dtype)
    _check_pixel_count(
        path, [(p.imagedepth, p.imagelength, p.imagewidth) for p in chosen],
        decoded_bytes=sum(p.nbytes for p in chosen),
    )
    # Before decoding: a page whose strip table lost millions of entries took
    # tifffile a minute and 2 GB to decode into zeros.
    problems.refuse_if_damaged()
    orientations = _tiff_orientations(tif.pages)
    if page is not None:
        orientations = [orientations[page]]
    problems.decoding = True
    images = []
    for tiff_page, orientation in zip(chosen, orientations):
        images.extend(_tiff_page_arrays(tiff_page, palette_indices, orientation))
    problems.refuse_if_damaged()
    return images


def _read_tiff(path: Path, page: int | None, palette_indices: bool = False) -> list[np.ndarray]:
    """Read TIFF pages with tifffile, falling back to Pillow for missing codecs.

    A file tifffile reads only in part (see :class:`_TiffProblems`) is refused
    with tifffile's first message.
    """
    problems = _TiffProblems(path)
    tiff_logger = logging.getLogger("tifffile")
    tiff_logger.addHandler(problems)
    try:
        with tifffile.TiffFile(path) as tif:
            return _read_tiff_pages(tif, page, path, problems, palette_indices)
    except (_NoSuchPage, ImageReadError):
        raise
    except Exception as exc:
        if "imagecodecs" not in str(exc):
            raise ImageReadError(f"cannot read image {path} ({_reason(exc)})") from None
        # tifffile decodes LZW/JPEG only with the optional imagecodecs package;
        # Pillow (libtiff) decodes those for 8-bit gray/RGB(A) and 16-bit gray.
        try:
            return _read_pillow(path, page, palette_indices)
        except (_NoSuchPage, ImageReadError):
            raise
        except Exception:
            raise ImageReadError(
                f"cannot read image {path} ({_reason(exc)}; Pillow cannot decode it either)"
            ) from None
    finally:
        tiff_logger.removeHandler(problems)


def _check_text_header(path: Path, suffix: str) -> None:
    """Refuse a MetaImage or NRRD file whose text header holds binary bytes.

    ITK trusts these headers: a single changed byte that ran the data-file name of
    a MetaImage into its pixel data corrupted the heap and crashed the process
    (found by benchmarks/fuzz_inputs.py). The header is the text up to the end of
    the ``ElementDataFile`` line (MetaImage) or the first blank line (NRRD), or
    the whole of a detached header.
    """
    with path.open("rb") as handle:
        head = handle.read(_TEXT_HEADER_MAX_BYTES)
    if suffix in (".mha", ".mhd"):
        start = head.find(b"ElementDataFile")
        end = head.find(b"\n", start) if start >= 0 else -1
    else:
        blank_line = re.search(rb"\n\r?\n", head)
        end = blank_line.start() if blank_line else -1
    if end < 0:
        # No end in sight: the whole of a detached header is text, and ITK reports
        # a missing field or data itself.
        end = len(head)
    try:
        text = head[:end].decode("utf-8")
    except UnicodeDecodeError:
        text = None
    if text is None or any(ord(c) < 32 and c not in "\t\r\n" for c in text):
        raise ImageReadError(f"cannot read image {path} (corrupt header: it holds bytes that are not text)")


def _read_sitk(path: Path, page: int | None, palette_indices: bool = False) -> list[np.ndarray]:
    """Read a medical image with SimpleITK, one array per slice (these formats have no
    palettes, so `palette_indices` changes nothing)."""
    # Imported here: SimpleITK is large and only needed for these formats.
    import SimpleITK as sitk

    suffix = file_suffix(path)
    if suffix not in (".nii", ".nii.gz"):  # NIfTI headers are binary
        _check_text_header(path, suffix)
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        # The header first: size, dimension and pixel type, without the voxels.
        reader.ReadImageInformation()
        dimension = reader.GetDimension()
        if dimension not in (2, 3):
            raise ImageReadError(
                f"cannot read image {path} ({dimension}-D images are not supported)"
            )
        if "complex" in sitk.GetPixelIDValueAsString(reader.GetPixelID()):
            raise ImageReadError(
                f"cannot read image {path} (complex pixels: maskwork reads integer and "
                "floating-point images only)"
            )
        # The whole volume is decoded even when one slice is asked for.
        pixel_type = sitk.GetPixelIDValueAsString(reader.GetPixelID())  # "16-bit signed integer"
        bits = re.search(r"(\d+)-bit", pixel_type)
        pixels = math.prod(reader.GetSize())
        _check_pixel_count(
            path, [reader.GetSize()], holds_pixels=suffix not in _DETACHED_HEADERS,
            decoded_bytes=pixels * reader.GetNumberOfComponents() * (int(bits[1]) // 8 if bits else 8),
        )
        image = reader.Execute()
    except RuntimeError as exc:
        # ITK messages are multi-line; the last non-empty line holds the cause.
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        reason = lines[-1].removeprefix("sitk::ERROR:").strip() if lines else "SimpleITK error"
        raise ImageReadError(f"cannot read image {path} ({reason})") from None
    # GetArrayFromImage orders axes (z, y, x[, component]): row 0 of each slice is
    # voxel row y = 0. No reorientation by the direction matrix is applied.
    array = sitk.GetArrayFromImage(image)
    slices = [array] if dimension == 2 else list(array)
    if page is None:
        return slices
    _check_page(page, len(slices), path)
    # Copy so the returned slice does not keep the whole volume alive.
    return [slices[page].copy()]


# Each reader takes (path, page or None for all, palette_indices).
_READERS: dict[str, Callable[[Path, int | None, bool], list[np.ndarray]]] = {
    ".png": _read_png,
    ".jpg": _read_pillow,
    ".jpeg": _read_pillow,
    ".bmp": _read_pillow,
    ".webp": _read_pillow,
    ".tif": _read_tiff,
    ".tiff": _read_tiff,
    **{suffix: _read_sitk for suffix in _SITK_SUFFIXES},
}


def _read(path: str | os.PathLike, page: int | None, palette_indices: bool) -> list[np.ndarray]:
    path = Path(path)
    suffix = file_suffix(path)
    reader = _READERS.get(suffix)
    if reader is None:
        supported = " ".join(READABLE_SUFFIXES)
        raise ImageReadError(
            f"cannot read image {path} (unsupported file type '{suffix or path.name}'; "
            f"supported: {supported})"
        )
    if not path.exists():
        raise ImageReadError(f"no such file: {path}")
    if not path.is_file():
        raise ImageReadError(f"cannot read image {path} (not a file)")
    try:
        images = reader(path, page, palette_indices)
    except (ImageReadError, _NoSuchPage):
        raise
    except Exception as exc:
        # Decoders raise many types (OSError, ValueError, EOFError, struct.error,
        # MemoryError...); the user needs one clear message whatever the cause.
        raise ImageReadError(f"cannot read image {path} ({_reason(exc)})") from None
    if not images:
        raise ImageReadError(f"cannot read image {path} (the file holds no image)")
    for image in images:
        # Every reader checked the header; this catches what a header does not say
        # (a Pillow mode decoding to an odd type, an empty or 1-D array).
        _check_pixel_kind(path, image.dtype)
        if image.ndim not in (2, 3) or 0 in image.shape:
            raise ImageReadError(
                f"cannot read image {path} (pixel array of shape {image.shape}: expected "
                "rows x columns or rows x columns x channels)"
            )
    # 1-bit images: tifffile gives bool, OpenCV and Pillow ("1" -> "L") 0/255;
    # settle on uint8 0/255 so a bilevel mask reads the same from any format.
    return [img.astype(np.uint8) * 255 if img.dtype == bool else img for img in images]


def read_images(path: str | os.PathLike, *, palette_indices: bool = False) -> list[np.ndarray]:
    """Read every page or frame of an image file.

    Parameters
    ----------
    path : str or path-like
        File with one of the :data:`READABLE_SUFFIXES`.
    palette_indices : bool, optional
        Read palette (indexed-colour) PNG, TIFF and BMP files as their indices,
        as a marker, label or mask file means them (labels 0, 1, 2, ...),
        instead of the colours a photo shows (RGB, or RGBA when the palette has
        transparency).

    Returns
    -------
    list of ndarray
        One array per TIFF page, animation frame or volume slice, each
        (row, col) or (row, col, channel) in RGB(A) order with the stored dtype
        (uint8, uint16, float32, ...), turned upright as the EXIF orientation
        (JPEG, WebP, PNG) or the TIFF Orientation tag says (in a multi-page TIFF
        only when every page has the tag). Gray images stored with three equal
        channels stay three-channel. A 3-D NIfTI/MetaImage/NRRD volume gives
        one (row, col) array per slice along its third axis, in stored voxel
        order (no reorientation).

    Raises
    ------
    ImageReadError
        If the file is missing, has an unsupported suffix, cannot be decoded or
        only in part (a damaged multi-page TIFF), holds complex or other
        non-numeric pixels, or is over the pixel limit (:func:`max_pixels`).
    """
    return _read(path, None, palette_indices)


def read_image(path: str | os.PathLike, page: int = 0, *, palette_indices: bool = False) -> np.ndarray:
    """Read one page or frame of an image file.

    Parameters
    ----------
    path : str or path-like
        File with one of the :data:`READABLE_SUFFIXES`.
    page : int, optional
        Index of the TIFF page, animation frame or volume slice (0 is the first).
    palette_indices : bool, optional
        Read a palette image as its indices, as :func:`read_images` describes.

    Returns
    -------
    ndarray
        The image, as described in :func:`read_images`.

    Raises
    ------
    ImageReadError
        If the file is missing, has an unsupported suffix, cannot be decoded or
        only in part (a damaged multi-page TIFF), holds complex or other
        non-numeric pixels, or is over the pixel limit (:func:`max_pixels`).
    IndexError
        If the file has no page `page`.
    """
    return _read(path, int(page), palette_indices)[0]
