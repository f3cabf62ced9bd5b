"""Reading and writing images, masks and label images, with provenance sidecars.

Arrays follow the application convention: (row, col) or (row, col, channel),
channels in RGB(A) order, native dtype kept. Readers turn every failure into an
:class:`ImageReadError` with a one-line message; writers validate first, then
write atomically (temporary file + rename) so a failed export never leaves a
half-written file in place of a good one.

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

import io
import json
import os
import sys
import tempfile
from datetime import datetime, timezone
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Iterable

import cv2
import imageio.v3 as iio
import numpy as np
import tifffile

import maskwork
from maskwork.core.colors import colorize_labels

__all__ = [
    "ImageReadError",
    "READABLE_SUFFIXES",
    "WRITABLE_SUFFIXES",
    "read_images",
    "read_image",
    "write_image",
    "write_mask",
    "write_labels",
    "write_labels_color",
    "write_cutout",
    "to_uint8_display",
    "sidecar_path",
    "write_sidecar",
    "write_json",
    "output_suffix",
    "transform_json",
    "write_output",
    "seed_summary",
]

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

#: File name suffixes the writers can produce (see :func:`write_image`).
WRITABLE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")

_SITK_SUFFIXES = (".nii", ".nii.gz", ".mha", ".mhd", ".nrrd", ".nhdr")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Offset of the colour-type byte in a PNG: 8-byte signature, then the IHDR chunk
# (4-byte length, b"IHDR", width, height, bit depth, colour type).
_PNG_COLOR_TYPE_OFFSET = 25
_PNG_COLOR_TYPE_PALETTE = 3
# Pillow modes that are not arrays of gray/RGB(A) samples and must be converted.
_PILLOW_CONVERT = {"CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB", "1": "L"}
# Keys write_sidecar fills in itself (or takes as their own argument); provenance may
# not override them.
_SIDECAR_RESERVED = ("file", "created", "maskwork_version", "library_versions", "recipe")
# Distribution names whose versions go into every sidecar. A key lists several
# distributions where the project accepts more than one (PySide6 is installed
# as PySide6-Essentials).
_VERSIONED = {
    "numpy": ("numpy",),
    "opencv-python-headless": ("opencv-python-headless",),
    "scikit-image": ("scikit-image",),
    "SimpleITK": ("SimpleITK",),
    "torch": ("torch",),
    "PySide6": ("PySide6", "PySide6-Essentials"),
    "pyqtgraph": ("pyqtgraph",),
    "tifffile": ("tifffile",),
    "imageio": ("imageio",),
    "Pillow": ("Pillow",),
}
# About this many samples are enough for stable display percentiles.
_DISPLAY_SAMPLES = 1 << 20


class ImageReadError(ValueError):
    """An image file is missing, of an unsupported type, or cannot be decoded.

    The message is one line that names the file and the reason, meant to be
    shown to the user as it is.
    """


# --------------------------------------------------------------------------- read


def _suffix(path: Path) -> str:
    """Return the lower-case suffix of `path`, treating ``.nii.gz`` as one suffix."""
    name = path.name.lower()
    if name.endswith(".nii.gz"):
        return ".nii.gz"
    return path.suffix.lower()


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
    suffix = _suffix(path)
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


# -------------------------------------------------------------------------- write


def _as_image(image: Any) -> np.ndarray:
    """Return `image` as a (row, col) or (row, col, channel) array; bool -> 0/255."""
    image = np.asarray(image)
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or image.size == 0:
        raise ValueError(
            f"cannot write an image of shape {image.shape}: expected a non-empty "
            "(row, col) or (row, col, channel) array"
        )
    return image


def _channels(image: np.ndarray) -> int:
    return 1 if image.ndim == 2 else image.shape[2]


def _check_raster(
    image: np.ndarray, path: Path, fmt: str, dtypes: tuple[str, ...], channels: tuple[int, ...]
) -> None:
    """Raise ValueError unless `image` has one of `dtypes` and `channels`."""
    if image.dtype.name not in dtypes or _channels(image) not in channels:
        allowed = " or ".join(dtypes)
        counts = ", ".join(str(c) for c in channels)
        raise ValueError(
            f"cannot write a {image.dtype} image with {_channels(image)} channel(s) to "
            f"{path.name}: {fmt} holds {allowed} with {counts} channel(s); use .tif for other data"
        )


def _encode_png(image: np.ndarray, path: Path) -> bytes:
    _check_raster(image, path, "PNG", ("uint8", "uint16"), (1, 3, 4))
    if image.ndim == 3:
        code = cv2.COLOR_RGB2BGR if image.shape[2] == 3 else cv2.COLOR_RGBA2BGRA
        image = cv2.cvtColor(image, code)
    ok, buffer = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"OpenCV could not encode {path.name} as PNG")
    return buffer.tobytes()


def _encode_jpeg(image: np.ndarray, path: Path) -> bytes:
    _check_raster(image, path, "JPEG", ("uint8",), (1, 3))
    return iio.imwrite("<bytes>", image, extension=".jpg", plugin="pillow", quality=95)


def _encode_bmp(image: np.ndarray, path: Path) -> bytes:
    # Pillow writes RGBA BMPs that read back without alpha, so alpha is refused.
    _check_raster(image, path, "BMP", ("uint8",), (1, 3))
    return iio.imwrite("<bytes>", image, extension=".bmp", plugin="pillow")


def _encode_webp(image: np.ndarray, path: Path) -> bytes:
    # WebP has no gray mode: a gray image is stored (and read back) as RGB.
    # exact=True keeps the RGB of fully transparent pixels, which lossless WebP
    # otherwise discards, so RGBA round-trips bit for bit.
    _check_raster(image, path, "WebP", ("uint8",), (1, 3, 4))
    return iio.imwrite(
        "<bytes>", image, extension=".webp", plugin="pillow", lossless=True, exact=True
    )


def _encode_tiff(image: np.ndarray, path: Path) -> bytes:
    if image.dtype.kind not in "uif":
        raise ValueError(
            f"cannot write a {image.dtype} image to {path.name}: TIFF holds integer or "
            "floating-point data"
        )
    options: dict[str, Any] = {"photometric": "minisblack"}
    if image.ndim == 3:
        # contig: the last axis is the samples of each pixel (not pages or planes).
        options["planarconfig"] = "contig"
        if image.shape[2] in (3, 4):
            options["photometric"] = "rgb"  # a 4th channel becomes unassociated alpha
    buffer = io.BytesIO()
    # zlib (deflate) needs no optional codec to read or write and is ~10x smaller
    # than uncompressed for masks and labels.
    tifffile.imwrite(buffer, image, compression="zlib", **options)
    return buffer.getvalue()


_ENCODERS: dict[str, Callable[[np.ndarray, Path], bytes]] = {
    ".png": _encode_png,
    ".jpg": _encode_jpeg,
    ".jpeg": _encode_jpeg,
    ".bmp": _encode_bmp,
    ".webp": _encode_webp,
    ".tif": _encode_tiff,
    ".tiff": _encode_tiff,
}


def _check_suffix(path: Path, allowed: Iterable[str], what: str) -> str:
    suffix = _suffix(path)
    allowed = tuple(allowed)
    if suffix not in allowed:
        raise ValueError(
            f"cannot write {what} to {path.name}: unsupported file type "
            f"'{suffix or path.name}' (use one of {' '.join(allowed)})"
        )
    return suffix


def _write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def _save(path: str | os.PathLike, image: np.ndarray, suffixes: Iterable[str], what: str,
          provenance: dict | None, recipe: dict | None) -> Path:
    """Encode, serialise the sidecar, then write both (nothing is written on error)."""
    path = Path(path)
    suffix = _check_suffix(path, suffixes, what)
    data = _ENCODERS[suffix](image, path)
    wants_sidecar = provenance is not None or recipe is not None
    sidecar = _sidecar_text(path, provenance or {}, recipe) if wants_sidecar else None
    _write_bytes_atomic(path, data)
    if sidecar is not None:
        _write_bytes_atomic(sidecar_path(path), sidecar.encode("utf-8"))
    return path


def write_image(path: str | os.PathLike, image: np.ndarray, *,
                provenance: dict | None = None, recipe: dict | None = None) -> Path:
    """Write an image, choosing the format from the suffix of `path`.

    Parameters
    ----------
    path : str or path-like
        Output file; parent folders are created. Supported suffixes and data:
        ``.png`` uint8 or uint16 with 1, 3 or 4 channels; ``.jpg``/``.jpeg``
        uint8 with 1 or 3 channels (quality 95); ``.bmp`` uint8 with 1 or 3
        channels; ``.webp`` uint8 with 1, 3 or 4 channels, lossless (gray is
        stored as RGB); ``.tif``/``.tiff`` any integer or float dtype and any
        number of channels (deflate-compressed).
    image : ndarray
        (row, col) or (row, col, channel) array in RGB(A) order. bool is
        written as uint8 0/255.
    provenance : dict, optional
        When given (even empty), also write the JSON sidecar
        (:func:`write_sidecar`) with these keys.
    recipe : dict, optional
        A recipe (:meth:`maskwork.core.recipe.Recipe.embed`) to store in the
        sidecar under ``"recipe"``; given alone it also writes the sidecar.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    ValueError
        If the suffix is unsupported or the format cannot hold this dtype or
        channel count.
    """
    return _save(path, _as_image(image), WRITABLE_SUFFIXES, "an image", provenance, recipe)


def write_mask(path: str | os.PathLike, mask: np.ndarray, *,
               provenance: dict | None = None, recipe: dict | None = None) -> Path:
    """Write a binary mask as a single-channel uint8 image with values 0 and 255.

    Parameters
    ----------
    path : str or path-like
        Output ``.png``, ``.tif`` or ``.tiff`` file; parent folders are created.
    mask : ndarray, shape (row, col)
        Any dtype; nonzero pixels (NaN excluded) are in the mask.
    provenance : dict, optional
        When given, also write the JSON sidecar (:func:`write_sidecar`).
    recipe : dict, optional
        A recipe (:meth:`maskwork.core.recipe.Recipe.embed`) to store in the
        sidecar under ``"recipe"``; given alone it also writes the sidecar.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    ValueError
        If the suffix is not PNG/TIFF or `mask` is not two-dimensional.
    """
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[:, :, 0]
    if mask.ndim != 2:
        raise ValueError(f"a mask must be a (row, col) array, got shape {mask.shape}")
    inside = mask != 0
    if mask.dtype.kind in "fc":
        # NaN compares unequal to 0 but marks missing data, not the object.
        inside &= ~np.isnan(mask)
    binary = inside.astype(np.uint8) * 255
    return _save(path, _as_image(binary), (".png", ".tif", ".tiff"), "a mask", provenance, recipe)


def _labels_dtype(labels: np.ndarray, suffix: str, path: Path) -> np.dtype:
    """Return the smallest dtype that holds `labels` in the format of `suffix`."""
    low, high = int(labels.min()), int(labels.max())
    if low >= 0 and high <= np.iinfo(np.uint8).max:
        return np.dtype(np.uint8)
    if low >= 0 and high <= np.iinfo(np.uint16).max:
        return np.dtype(np.uint16)
    if suffix == ".png":
        raise ValueError(
            f"cannot write labels {low}..{high} to {path.name}: PNG holds 0..65535; use .tif"
        )
    for dtype in (np.uint32, np.int32, np.int64):
        info = np.iinfo(dtype)
        if info.min <= low and high <= info.max:
            return np.dtype(dtype)
    raise ValueError(f"labels {low}..{high} do not fit a TIFF integer type")


def write_labels(path: str | os.PathLike, labels: np.ndarray, *,
                 provenance: dict | None = None, recipe: dict | None = None) -> Path:
    """Write a label image keeping its class ids.

    Parameters
    ----------
    path : str or path-like
        Output ``.png``, ``.tif`` or ``.tiff`` file; parent folders are created.
    labels : ndarray of int or bool, shape (row, col)
        Class ids. They are stored in the smallest of uint8 / uint16 that holds
        them; TIFF also takes negative ids or ids above 65535 (as uint32, int32
        or int64).
    provenance : dict, optional
        When given, also write the JSON sidecar (:func:`write_sidecar`).
    recipe : dict, optional
        A recipe (:meth:`maskwork.core.recipe.Recipe.embed`) to store in the
        sidecar under ``"recipe"``; given alone it also writes the sidecar.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    ValueError
        If the suffix is not PNG/TIFF, `labels` is not a 2-D integer array, or a
        PNG cannot hold the ids.
    """
    path = Path(path)
    suffix = _check_suffix(path, (".png", ".tif", ".tiff"), "labels")
    labels = np.asarray(labels)
    if labels.ndim == 3 and labels.shape[2] == 1:
        labels = labels[:, :, 0]
    if labels.ndim != 2 or labels.size == 0:
        raise ValueError(f"labels must be a non-empty (row, col) array, got shape {labels.shape}")
    if labels.dtype.kind not in "biu":
        raise ValueError(f"labels must be integers, got dtype {labels.dtype}")
    if labels.dtype == bool:
        # Not through _as_image, which would turn True into 255 instead of label 1.
        labels = labels.astype(np.uint8)
    stored = labels.astype(_labels_dtype(labels, suffix, path), copy=False)
    return _save(path, stored, (suffix,), "labels", provenance, recipe)


def write_labels_color(path: str | os.PathLike, labels: np.ndarray, *,
                       provenance: dict | None = None, recipe: dict | None = None) -> Path:
    """Write labels as an RGBA picture using :func:`maskwork.core.colors.colorize_labels`.

    Parameters
    ----------
    path : str or path-like
        Output file, normally ``.png`` (``.webp`` and ``.tif`` also work);
        parent folders are created.
    labels : ndarray of int, shape (row, col)
        Non-negative class ids; 0 becomes fully transparent.
    provenance : dict, optional
        When given, also write the JSON sidecar (:func:`write_sidecar`).
    recipe : dict, optional
        A recipe (:meth:`maskwork.core.recipe.Recipe.embed`) to store in the
        sidecar under ``"recipe"``; given alone it also writes the sidecar.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    ValueError
        If the suffix cannot hold RGBA or the labels are not non-negative integers.
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be a (row, col) array, got shape {labels.shape}")
    return write_image(path, colorize_labels(labels), provenance=provenance, recipe=recipe)


def write_cutout(path: str | os.PathLike, image: np.ndarray, mask: np.ndarray, *,
                 provenance: dict | None = None, recipe: dict | None = None) -> Path:
    """Write the masked part of an image as an RGBA picture.

    Parameters
    ----------
    path : str or path-like
        Output file, normally ``.png`` (``.webp`` and ``.tif`` also work);
        parent folders are created.
    image : ndarray, shape (row, col) or (row, col, channel)
        Gray (replicated to RGB), RGB, or RGBA (its alpha is replaced). Non-uint8
        data is scaled to uint8 by :func:`to_uint8_display`.
    mask : ndarray, shape (row, col)
        Nonzero where the object is: alpha 255 there, 0 elsewhere. The RGB of
        transparent pixels is kept (not blacked out), so nothing is lost.
    provenance : dict, optional
        When given, also write the JSON sidecar (:func:`write_sidecar`).
    recipe : dict, optional
        A recipe (:meth:`maskwork.core.recipe.Recipe.embed`) to store in the
        sidecar under ``"recipe"``; given alone it also writes the sidecar.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    ValueError
        If `mask` does not have the image's height and width, or the image has
        2 or more than 4 channels.
    """
    image = _as_image(image)
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[2] == 1:
        mask = mask[:, :, 0]
    if mask.shape != image.shape[:2]:
        raise ValueError(
            f"mask shape {mask.shape} does not match image size {image.shape[:2]}"
        )
    channels = _channels(image)
    if channels not in (1, 3, 4):
        raise ValueError(f"a cut-out needs a gray, RGB or RGBA image, got {channels} channels")
    rgb = image if channels == 1 else image[:, :, :3]
    rgb = to_uint8_display(rgb)
    rgba = np.empty(image.shape[:2] + (4,), dtype=np.uint8)
    rgba[:, :, :3] = rgb[:, :, None] if rgb.ndim == 2 else rgb
    inside = mask != 0
    if mask.dtype.kind in "fc":
        inside &= ~np.isnan(mask)
    rgba[:, :, 3] = inside * np.uint8(255)
    return write_image(path, rgba, provenance=provenance, recipe=recipe)


def to_uint8_display(image: np.ndarray, low: float | None = None,
                     high: float | None = None) -> np.ndarray:
    """Scale an image to uint8 for display or 8-bit export.

    Parameters
    ----------
    image : ndarray
        Any numeric dtype and shape. uint8 is returned as it is (not copied);
        bool becomes 0/255. All channels share one scale, so colours keep their
        balance.
    low, high : float, optional
        Values mapped to 0 and 255. By default the 0.5 and 99.5 percentiles of
        the finite values, computed on a strided subsample of about a million
        pixels so large images stay fast. If ``high <= low`` the result is 255
        above `low` and 0 elsewhere.

    Returns
    -------
    ndarray of uint8
        Same shape as `image`; values clipped to 0..255, NaN mapped to 0.
    """
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    if image.dtype == bool:
        return image.astype(np.uint8) * 255
    if low is None or high is None:
        if image.ndim >= 2:
            # Same stride along rows and columns keeps the sample spread evenly.
            pixels = image.shape[0] * image.shape[1]
            step = max(1, int(np.ceil(np.sqrt(pixels / _DISPLAY_SAMPLES))))
            sample = image[::step, ::step]
        else:
            sample = image[:: max(1, image.size // _DISPLAY_SAMPLES)]
        sample = sample[np.isfinite(sample)]
        if sample.size == 0:
            return np.zeros(image.shape, dtype=np.uint8)
        auto_low, auto_high = np.percentile(sample, [0.5, 99.5])
        low = auto_low if low is None else low
        high = auto_high if high is None else high
    values = image.astype(np.float32, copy=False)
    if high <= low:
        out = (values > low).astype(np.uint8) * 255
    else:
        scaled = (values - np.float32(low)) * np.float32(255.0 / (high - low))
        out = np.clip(np.rint(scaled), 0, 255)
        out = np.nan_to_num(out, nan=0.0).astype(np.uint8)
    return out


# ------------------------------------------------------------------------ sidecar


def sidecar_path(path: str | os.PathLike) -> Path:
    """Return the provenance sidecar of `path`: the same name plus ``.json``.

    Parameters
    ----------
    path : str or path-like
        An exported file, e.g. ``mask.png``.

    Returns
    -------
    Path
        E.g. ``mask.png.json`` next to it.
    """
    path = Path(path)
    return path.with_name(path.name + ".json")


@lru_cache(maxsize=1)
def _library_versions() -> dict[str, str | None]:
    """Versions of the libraries that shape results, read without importing them."""
    versions: dict[str, str | None] = {"python": sys.version.split()[0]}
    for key, distributions in _VERSIONED.items():
        versions[key] = None
        for name in distributions:
            try:
                versions[key] = metadata.version(name)
                break
            except metadata.PackageNotFoundError:
                continue
    return versions


def _json_default(value: Any) -> Any:
    """Convert what the json module cannot (numpy values, paths) to plain types."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    raise TypeError(f"{type(value).__name__} cannot be written to a sidecar")


def _sidecar_text(path: Path, provenance: dict, recipe: dict | None = None) -> str:
    """Return the JSON text of the sidecar for `path` (raises before any writing)."""
    clash = [key for key in _SIDECAR_RESERVED if key in provenance]
    if clash:
        raise ValueError(
            f"provenance may not set {', '.join(clash)}: write_sidecar fills them in "
            "(a recipe goes in its own argument)"
        )
    record = {
        "file": path.name,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "maskwork_version": maskwork.__version__,
        "library_versions": dict(_library_versions()),
        **provenance,
    }
    if recipe is not None:
        record["recipe"] = recipe
    return json.dumps(record, indent=2, default=_json_default) + "\n"


def write_sidecar(path: str | os.PathLike, provenance: dict, *, recipe: dict | None = None) -> Path:
    """Write the JSON provenance sidecar of an exported file.

    Parameters
    ----------
    path : str or path-like
        The exported file the sidecar describes (it need not exist yet).
    provenance : dict
        Extra keys, normally ``"operator"`` (id), ``"parameters"`` (dict),
        ``"seeds"`` (see :func:`seed_summary`) and ``"inputs"`` (file names).
        Numpy scalars and arrays are converted to plain JSON values.
    recipe : dict, optional
        The recipe that made the file (:meth:`maskwork.core.recipe.Recipe.embed`),
        stored under ``"recipe"``; ``maskwork batch`` and
        :func:`maskwork.core.recipe.load` accept the sidecar as a recipe file.

    Returns
    -------
    Path
        The sidecar, ``<path>.json``. It holds ``"file"`` (the exported file's
        name), ``"created"`` (ISO 8601, UTC), ``"maskwork_version"``,
        ``"library_versions"`` (installed versions of numpy, OpenCV,
        scikit-image, SimpleITK, torch, PySide6, pyqtgraph, tifffile, imageio,
        Pillow and Python; null when missing), every key of `provenance` and
        ``"recipe"`` when one is given.

    Raises
    ------
    ValueError
        If `provenance` sets one of the keys filled in here.
    TypeError
        If a value cannot be represented in JSON.
    """
    path = Path(path)
    target = sidecar_path(path)
    _write_bytes_atomic(target, _sidecar_text(path, provenance, recipe).encode("utf-8"))
    return target


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write `data` as indented JSON, atomically (a reader never sees half a file).

    Parameters
    ----------
    path : str or path-like
        Output file; parent folders are created.
    data : object
        JSON-ready data; numpy scalars and arrays and paths are converted.

    Returns
    -------
    Path
        The written file.
    """
    path = Path(path)
    text = json.dumps(data, indent=2, default=_json_default) + "\n"
    _write_bytes_atomic(path, text.encode("utf-8"))
    return path


def output_suffix(kind: str, value: Any) -> str:
    """The lossless file suffix that suits an operator output.

    Parameters
    ----------
    kind : str
        Output kind (``"mask"``, ``"labels"``, ``"probabilities"``, ``"image"`` or
        ``"transform"``, see :data:`maskwork.operators.registry.OUTPUT_KINDS`).
    value : object
        The output itself.

    Returns
    -------
    str
        ``".png"`` for masks, labels within 0..65535 and uint8/uint16 images with 1, 3
        or 4 channels; ``".tif"`` for probabilities and any other array; ``".json"`` for
        transforms.
    """
    if kind == "transform":
        return ".json"
    if kind == "mask":
        return ".png"
    array = np.asarray(value)
    if kind == "labels":
        in_png_range = array.size > 0 and array.min() >= 0 and array.max() <= np.iinfo(np.uint16).max
        return ".png" if in_png_range else ".tif"
    if kind == "image" and array.dtype in (np.uint8, np.uint16, bool) and _channels(array) in (1, 3, 4):
        return ".png"
    return ".tif"


def transform_json(transform: Any) -> dict:
    """The JSON description of a transform output: its ``to_json()``, or a plain matrix.

    Parameters
    ----------
    transform : object
        A :class:`maskwork.operators.registration.transform.Transform` or a 3x3 array.

    Returns
    -------
    dict
        ``transform.to_json()``, or ``{"type": "matrix", "matrix": [[...], ...]}``.
    """
    if hasattr(transform, "to_json"):
        return transform.to_json()
    return {"type": "matrix", "matrix": np.asarray(transform, float).tolist()}


def write_output(path: str | os.PathLike, kind: str, value: Any, *,
                 provenance: dict | None = None, recipe: dict | None = None) -> Path:
    """Write one operator output the way its kind asks.

    Parameters
    ----------
    path : str or path-like
        Output file. Probabilities always go to ``.tif`` and transforms to ``.json``:
        their suffix is replaced.
    kind : str
        ``"mask"`` (written 0/255 by :func:`write_mask`), ``"labels"`` (class ids kept,
        :func:`write_labels`), ``"probabilities"`` (float32 TIFF), ``"image"``
        (:func:`write_image`) or ``"transform"`` (JSON, :func:`transform_json`).
    value : object
        The output.
    provenance, recipe : dict, optional
        Sidecar contents, as for :func:`write_image`; a transform gets no sidecar (its
        JSON is the record).

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    ValueError
        For an unknown kind or data the chosen format cannot hold.
    """
    path = Path(path)
    if kind == "mask":
        return write_mask(path, value, provenance=provenance, recipe=recipe)
    if kind == "labels":
        return write_labels(path, value, provenance=provenance, recipe=recipe)
    if kind == "probabilities":
        return write_image(path.with_suffix(".tif"), np.asarray(value, np.float32),
                           provenance=provenance, recipe=recipe)
    if kind == "image":
        return write_image(path, value, provenance=provenance, recipe=recipe)
    if kind == "transform":
        return write_json(path.with_suffix(".json"), transform_json(value))
    raise ValueError(f"unknown output kind {kind!r}")


def seed_summary(markers: np.ndarray | None = None, rect: Iterable[int] | None = None,
                 points: Iterable[Iterable[float]] | None = None) -> dict:
    """Summarise the seeds of an operator run for a sidecar.

    Parameters
    ----------
    markers : ndarray of int, optional
        Marker (scribble) image; 0 is unlabelled.
    rect : sequence of 4 int, optional
        Box as (x, y, width, height).
    points : sequence of (row, col[, label]), optional
        Point prompts.

    Returns
    -------
    dict
        ``"marker_counts"``: pixel count per nonzero marker label, with the
        label as a string key (JSON object keys are strings);
        ``"rect"``: the box as a list; ``"points"``: the points as lists and
        ``"point_count"``: their number. Only the seeds given appear.
    """
    summary: dict[str, Any] = {}
    if markers is not None:
        values, counts = np.unique(np.asarray(markers), return_counts=True)
        summary["marker_counts"] = {
            str(value): int(count) for value, count in zip(values.tolist(), counts.tolist())
            if value != 0
        }
    if rect is not None:
        summary["rect"] = [int(v) for v in rect]
    if points is not None:
        point_list = [np.asarray(p).tolist() for p in points]
        summary["points"] = point_list
        summary["point_count"] = len(point_list)
    return summary
