"""Reading image files into arrays; every failure becomes one :class:`ImageReadError`.

Arrays follow the application convention: (row, col) or (row, col, channel),
channels in RGB(A) order, native dtype kept. Readers turn every failure into an
:class:`ImageReadError` with a one-line message.

Which library handles which format, and why:

* PNG: OpenCV, because Pillow silently truncates 16-bit RGB/RGBA PNGs to 8 bits
  (and imageio's Pillow plugin cannot write them). Palette PNGs are the
  exception: OpenCV expands them to colours, but marker and label images are
  palette PNGs whose *indices* are the labels, so those are read with Pillow.
* JPEG, BMP, WebP: imageio's Pillow plugin (EXIF orientation applied, CMYK
  converted to RGB, animated WebP read frame by frame).
* TIFF: tifffile (any dtype, multi-page, 16-bit RGB). Compressions that need the
  optional ``imagecodecs`` package (LZW, JPEG) fall back to Pillow.
* NIfTI, MetaImage, NRRD: SimpleITK, imported only when such a file is read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import cv2
import imageio.v3 as iio
import numpy as np
import tifffile

from maskwork.core.io.files import file_suffix

#: File name suffixes :func:`read_images` understands (compared case-insensitively):
#:
#: * ``.png`` -- 8/16-bit gray, gray+alpha (read as RGBA), RGB, RGBA; palette
#:   PNGs are read as their palette indices (label and marker images).
#: * ``.jpg``, ``.jpeg`` -- 8-bit gray or RGB (CMYK is converted to RGB).
#: * ``.bmp`` -- 8-bit gray or RGB (palette BMPs are expanded to RGB).
#: * ``.tif``, ``.tiff`` -- any dtype, one array per page.
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
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Offset of the colour-type byte in a PNG: 8-byte signature, then the IHDR chunk
# (4-byte length, b"IHDR", width, height, bit depth, colour type).
_PNG_COLOR_TYPE_OFFSET = 25
_PNG_COLOR_TYPE_PALETTE = 3
# Pillow modes that are not arrays of gray/RGB(A) samples and must be converted.
_PILLOW_CONVERT = {"CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB", "1": "L"}


class ImageReadError(ValueError):
    """An image file is missing, of an unsupported type, or cannot be decoded.

    The message is one line that names the file and the reason, meant to be
    shown to the user as it is.
    """



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
    if not 0 <= page < count:
        raise _NoSuchPage(f"{path} has {count} page(s); page {page} does not exist")


def _read_pillow(path: Path, page: int | None, keep_palette: bool = False) -> list[np.ndarray]:
    """Read frames through imageio's Pillow plugin.

    Parameters
    ----------
    path : Path
        File Pillow can identify (by content, whatever the suffix).
    page : int or None
        Frame to read, or None for all frames.
    keep_palette : bool
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
        count = handle.properties(index=...).n_images
        if page is not None:
            _check_page(page, count, path)
        for index in range(count) if page is None else (page,):
            mode = handle.metadata(index=index).get("mode")
            if mode in ("P", "PA") and keep_palette:
                target = "P"
            else:
                # None keeps gray/RGB(A)/16-bit/float as stored and expands palettes.
                target = _PILLOW_CONVERT.get(mode)
            # rotate=True applies the EXIF orientation, so a phone photo is the
            # right way up, as every viewer shows it (and masks drawn on it match).
            frames.append(handle.read(index=index, mode=target, rotate=True))
    return frames


def _read_png(path: Path, page: int | None) -> list[np.ndarray]:
    """Read a PNG exactly: 16-bit kept, palette images as indices."""
    data = np.fromfile(path, dtype=np.uint8)
    if data[: len(_PNG_SIGNATURE)].tobytes() != _PNG_SIGNATURE:
        # A JPEG or other image saved with a .png name: let Pillow sniff it.
        try:
            return _read_pillow(path, page)
        except _NoSuchPage:
            raise
        except Exception:
            raise ImageReadError(f"cannot read image {path} (not a valid PNG file)") from None
    color_type = data[_PNG_COLOR_TYPE_OFFSET] if data.size > _PNG_COLOR_TYPE_OFFSET else None
    if color_type == _PNG_COLOR_TYPE_PALETTE:
        return _read_pillow(path, page, keep_palette=True)
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageReadError(f"cannot read image {path} (corrupt or truncated PNG data)")
    if image.ndim == 3:
        # IMREAD_UNCHANGED returns gray+alpha PNGs as BGRA too, so 3 or 4 channels.
        code = cv2.COLOR_BGR2RGB if image.shape[2] == 3 else cv2.COLOR_BGRA2RGBA
        image = cv2.cvtColor(image, code)
    # An animated PNG gives its first frame only (OpenCV decodes one image).
    return _select([image], page, path)


def _tiff_page_arrays(page: Any) -> list[np.ndarray]:
    """Decode one TIFF page into (row, col[, channel]) arrays."""
    array = page.asarray()
    axes = page.axes
    if "S" in axes and not axes.endswith("S"):
        # Planar ("separate") samples come first; move them to the last axis.
        array = np.moveaxis(array, axes.index("S"), -1)
        axes = axes.replace("S", "") + "S"
    if axes.startswith("Z"):
        # A volumetric (SGI depth) page: one image per depth slice.
        return list(array)
    return [array]


def _read_tiff(path: Path, page: int | None) -> list[np.ndarray]:
    """Read TIFF pages with tifffile, falling back to Pillow for missing codecs."""
    try:
        with tifffile.TiffFile(path) as tif:
            if page is not None:
                _check_page(page, len(tif.pages), path)
                return _tiff_page_arrays(tif.pages[page])
            images = []
            for tiff_page in tif.pages:
                images.extend(_tiff_page_arrays(tiff_page))
            return images
    except _NoSuchPage:
        raise
    except Exception as exc:
        if "imagecodecs" not in str(exc):
            raise ImageReadError(f"cannot read image {path} ({_reason(exc)})") from None
        # tifffile decodes LZW/JPEG only with the optional imagecodecs package;
        # Pillow (libtiff) decodes those for 8-bit gray/RGB(A) and 16-bit gray.
        try:
            return _read_pillow(path, page)
        except Exception:
            raise ImageReadError(
                f"cannot read image {path} ({_reason(exc)}; Pillow cannot decode it either)"
            ) from None


def _read_sitk(path: Path, page: int | None) -> list[np.ndarray]:
    """Read a medical image with SimpleITK, one array per slice."""
    # Imported here: SimpleITK is large and only needed for these formats.
    import SimpleITK as sitk

    try:
        image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        # ITK messages are multi-line; the last non-empty line holds the cause.
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        reason = lines[-1].removeprefix("sitk::ERROR:").strip() if lines else "SimpleITK error"
        raise ImageReadError(f"cannot read image {path} ({reason})") from None
    dimension = image.GetDimension()
    if dimension not in (2, 3):
        raise ImageReadError(f"cannot read image {path} ({dimension}-D images are not supported)")
    # GetArrayFromImage orders axes (z, y, x[, component]): row 0 of each slice is
    # voxel row y = 0. No reorientation by the direction matrix is applied.
    array = sitk.GetArrayFromImage(image)
    slices = [array] if dimension == 2 else list(array)
    if page is None:
        return slices
    _check_page(page, len(slices), path)
    # Copy so the returned slice does not keep the whole volume alive.
    return [slices[page].copy()]


_READERS: dict[str, Callable[[Path, int | None], list[np.ndarray]]] = {
    ".png": _read_png,
    ".jpg": _read_pillow,
    ".jpeg": _read_pillow,
    ".bmp": _read_pillow,
    ".webp": _read_pillow,
    ".tif": _read_tiff,
    ".tiff": _read_tiff,
    **{suffix: _read_sitk for suffix in _SITK_SUFFIXES},
}


def _read(path: str | os.PathLike, page: int | None) -> list[np.ndarray]:
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
        images = reader(path, page)
    except (ImageReadError, _NoSuchPage):
        raise
    except Exception as exc:
        # Decoders raise many types (OSError, ValueError, EOFError, struct.error,
        # MemoryError...); the user needs one clear message whatever the cause.
        raise ImageReadError(f"cannot read image {path} ({_reason(exc)})") from None
    if not images:
        raise ImageReadError(f"cannot read image {path} (the file holds no image)")
    # 1-bit images: tifffile gives bool, OpenCV and Pillow ("1" -> "L") 0/255;
    # settle on uint8 0/255 so a bilevel mask reads the same from any format.
    return [img.astype(np.uint8) * 255 if img.dtype == bool else img for img in images]


def read_images(path: str | os.PathLike) -> list[np.ndarray]:
    """Read every page or frame of an image file.

    Parameters
    ----------
    path : str or path-like
        File with one of the :data:`READABLE_SUFFIXES`.

    Returns
    -------
    list of ndarray
        One array per TIFF page, animation frame or volume slice, each
        (row, col) or (row, col, channel) in RGB(A) order with the stored dtype
        (uint8, uint16, float32, ...). Palette PNGs give their indices, so a
        marker image reads back as labels 0, 1, 2, ...; gray images stored with
        three equal channels stay three-channel. A 3-D NIfTI/MetaImage/NRRD
        volume gives one (row, col) array per slice along its third axis, in
        stored voxel order (no reorientation).

    Raises
    ------
    ImageReadError
        If the file is missing, has an unsupported suffix or cannot be decoded.
    """
    return _read(path, None)


def read_image(path: str | os.PathLike, page: int = 0) -> np.ndarray:
    """Read one page or frame of an image file.

    Parameters
    ----------
    path : str or path-like
        File with one of the :data:`READABLE_SUFFIXES`.
    page : int, optional
        Index of the TIFF page, animation frame or volume slice (0 is the first).

    Returns
    -------
    ndarray
        The image, as described in :func:`read_images`.

    Raises
    ------
    ImageReadError
        If the file is missing, has an unsupported suffix or cannot be decoded.
    IndexError
        If the file has no page `page`.
    """
    return _read(path, int(page))[0]
