"""Writing images, masks, label images and operator outputs, with optional sidecars.

Writers validate first, then write atomically (temporary file + rename), so a failed
export never leaves a half-written file in place of a good one. Each format takes
the dtypes and channel counts it can hold losslessly (see :func:`write_image`);
anything else is refused with a message that suggests ``.tif``.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import cv2
import imageio.v3 as iio
import numpy as np
import tifffile

from maskwork.core.colors import colorize_labels
from maskwork.core.io.files import file_suffix, unwritable, write_bytes_atomic
from maskwork.core.io.sidecars import sidecar_path, sidecar_text, transform_json, write_json
from maskwork.core.pixels import to_uint8_display

#: File name suffixes the writers can produce (see :func:`write_image`).
WRITABLE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
#: Suffixes a transform output is written to as an ITK transform file with SimpleITK
#: (:meth:`maskwork.operators.registration.transform.Transform.save_tfm`); any other suffix
#: becomes ``.json``.
ITK_TRANSFORM_SUFFIXES = (".tfm", ".txt", ".h5")
# What a PNG holds losslessly: the writer refuses other data, and output_suffix
# sends it to TIFF instead.
_PNG_DTYPES = ("uint8", "uint16")
_PNG_CHANNELS = (1, 3, 4)


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
    _check_raster(image, path, "PNG", _PNG_DTYPES, _PNG_CHANNELS)
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
    suffix = file_suffix(path)
    allowed = tuple(allowed)
    if suffix not in allowed:
        raise ValueError(
            f"cannot write {what} to {path.name}: unsupported file type "
            f"'{suffix or path.name}' (use one of {' '.join(allowed)})"
        )
    return suffix



def _save(path: str | os.PathLike, image: np.ndarray, suffixes: Iterable[str], what: str,
          provenance: dict | None, recipe: dict | None) -> Path:
    """Encode, serialise the sidecar, then write both (nothing is written on error)."""
    path = Path(path)
    suffix = _check_suffix(path, suffixes, what)
    data = _ENCODERS[suffix](image, path)
    wants_sidecar = provenance is not None or recipe is not None
    sidecar = sidecar_text(path, provenance or {}, recipe) if wants_sidecar else None
    write_bytes_atomic(path, data)
    if sidecar is not None:
        write_bytes_atomic(sidecar_path(path), sidecar.encode("utf-8"))
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
        (:func:`maskwork.core.io.sidecars.write_sidecar`) with these keys.
    recipe : dict, optional
        A recipe (:meth:`maskwork.pipeline.recipe.Recipe.embed`) to store in the
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
    provenance, recipe : dict, optional
        The sidecar's contents, as for :func:`write_image`.

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
    provenance, recipe : dict, optional
        The sidecar's contents, as for :func:`write_image`.

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
    provenance, recipe : dict, optional
        The sidecar's contents, as for :func:`write_image`.

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
                 contrast_limits: tuple[float, float] | None = None,
                 provenance: dict | None = None, recipe: dict | None = None) -> Path:
    """Write the masked part of an image as an RGBA picture.

    Parameters
    ----------
    path : str or path-like
        Output file, normally ``.png`` (``.webp`` and ``.tif`` also work);
        parent folders are created.
    image : ndarray, shape (row, col) or (row, col, channel)
        Gray (replicated to RGB), RGB, or RGBA (its alpha is replaced). Non-uint8
        data is scaled to uint8 by :func:`maskwork.core.pixels.to_uint8_display`.
    mask : ndarray, shape (row, col)
        Nonzero where the object is: alpha 255 there, 0 elsewhere. The RGB of
        transparent pixels is kept (not blacked out), so nothing is lost.
    contrast_limits : (float, float), optional
        The values of a non-uint8 image that become 0 and 255 (the display range a
        person chose, so the cut-out looks as the image did); by default its 0.5 and
        99.5 percentiles. uint8 images are written as they are.
    provenance, recipe : dict, optional
        The sidecar's contents, as for :func:`write_image`.

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
    rgb = to_uint8_display(rgb, *(contrast_limits or (None, None)))
    rgba = np.empty(image.shape[:2] + (4,), dtype=np.uint8)
    rgba[:, :, :3] = rgb[:, :, None] if rgb.ndim == 2 else rgb
    inside = mask != 0
    if mask.dtype.kind in "fc":
        inside &= ~np.isnan(mask)
    rgba[:, :, 3] = inside * np.uint8(255)
    return write_image(path, rgba, provenance=provenance, recipe=recipe)


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
    # bool is written as uint8 0/255, which PNG holds.
    png_dtype = array.dtype == bool or array.dtype.name in _PNG_DTYPES
    if kind == "image" and png_dtype and _channels(array) in _PNG_CHANNELS:
        return ".png"
    return ".tif"


def write_output(path: str | os.PathLike, kind: str, value: Any, *,
                 provenance: dict | None = None, recipe: dict | None = None,
                 class_ids: Sequence[int] | None = None) -> Path:
    """Write one operator output the way its kind asks.

    Parameters
    ----------
    path : str or path-like
        Output file (:func:`written_path`). Probabilities go to a TIFF (another suffix
        becomes ``.tif``); a transform goes to an ITK transform file for the suffixes of
        :data:`ITK_TRANSFORM_SUFFIXES` (``.tfm``, ``.txt``, ``.h5``, in any letter case)
        and to JSON otherwise (a suffix other than ``.json`` is replaced by it).
    kind : str
        ``"mask"`` (written 0/255 by :func:`write_mask`), ``"labels"`` (class ids kept,
        :func:`write_labels`), ``"probabilities"`` (float32 TIFF), ``"image"``
        (:func:`write_image`) or ``"transform"`` (JSON, :func:`transform_json`, or ITK).
    value : object
        The output.
    provenance, recipe : dict, optional
        Sidecar contents, as for :func:`write_image`; transforms get their sidecar too.
    class_ids : sequence of int, optional
        For probabilities: the class id each plane (the last axis) scores, stored in the
        sidecar as ``"plane_class_ids"`` (plane ``i`` is the probability of class
        ``plane_class_ids[i]``).

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    ValueError
        For an unknown kind, data the chosen format cannot hold, plane class ids that do
        not match the planes, or a plain matrix asked for as an ITK file.
    OSError
        When the file cannot be written: "cannot write PATH: why" (a folder on the way
        that is a file, no permission, ...), from :func:`~maskwork.core.io.files.unwritable`.
    """
    path = Path(path)
    try:
        return _write_output(path, kind, value, provenance, recipe, class_ids)
    except OSError as error:
        described = unwritable(path, error)
        if described is error:
            raise
        raise described from error


def written_path(path: str | os.PathLike, kind: str) -> Path:
    """The file :func:`write_output` writes for ``path`` and ``kind``: probabilities go to
    ``.tif`` unless ``path`` is a TIFF already, a transform to ``.json`` unless ``path`` has
    an ITK transform suffix or is ``.json`` already (suffixes in any letter case, kept as
    given); every other output to ``path`` itself."""
    path = Path(path)
    if kind == "probabilities":
        return path if file_suffix(path) in (".tif", ".tiff") else path.with_suffix(".tif")
    if kind == "transform" and file_suffix(path) not in (*ITK_TRANSFORM_SUFFIXES, ".json"):
        return path.with_suffix(".json")
    return path


def _write_output(path: Path, kind: str, value: Any, provenance: dict | None, recipe: dict | None,
                  class_ids: Sequence[int] | None) -> Path:
    """:func:`write_output`'s work, its OSErrors not yet said in words."""
    if kind == "mask":
        return write_mask(path, value, provenance=provenance, recipe=recipe)
    if kind == "labels":
        return write_labels(path, value, provenance=provenance, recipe=recipe)
    if kind == "probabilities":
        planes = np.asarray(value, np.float32)
        if class_ids is not None:
            count = 1 if planes.ndim == 2 else planes.shape[2]
            if len(class_ids) != count:
                raise ValueError(f"{len(class_ids)} class ids for {count} probability plane(s)")
            provenance = {**(provenance or {}), "plane_class_ids": [int(value) for value in class_ids]}
        return write_image(written_path(path, kind), planes, provenance=provenance, recipe=recipe)
    if kind == "image":
        return write_image(path, value, provenance=provenance, recipe=recipe)
    if kind == "transform":
        return _write_transform(path, value, provenance, recipe)
    raise ValueError(f"unknown output kind {kind!r}")


def _write_transform(path: Path, transform: Any, provenance: dict | None, recipe: dict | None) -> Path:
    """A transform as an ITK file or JSON (with its backward map, if any), then its sidecar."""
    wants_sidecar = provenance is not None or recipe is not None
    if file_suffix(path) in ITK_TRANSFORM_SUFFIXES:
        if not hasattr(transform, "save_tfm"):
            raise ValueError(f"cannot write a plain matrix to {path.name} as an ITK transform; use .json")
        sidecar = sidecar_text(path, provenance or {}, recipe) if wants_sidecar else None
        path.parent.mkdir(parents=True, exist_ok=True)
        transform.save_tfm(path)
    else:
        path = written_path(path, "transform")
        sidecar = sidecar_text(path, provenance or {}, recipe) if wants_sidecar else None
        if hasattr(transform, "save"):  # deformable transforms also write their backward map
            path.parent.mkdir(parents=True, exist_ok=True)
            transform.save(path)
        else:
            write_json(path, transform_json(transform))
    if sidecar is not None:
        write_bytes_atomic(sidecar_path(path), sidecar.encode("utf-8"))
    return path
