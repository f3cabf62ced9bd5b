"""The transform every registration operator returns, and how to apply, save and load it.

Conventions
-----------
* Pixel coordinates are ``(x, y)`` = ``(column, row)`` with the centre of pixel
  ``[row, col]`` at ``(col, row)`` (OpenCV's convention; also ITK's for an image with
  spacing 1 and origin 0).
* :attr:`Transform.matrix` maps a MOVING pixel ``(x, y, 1)`` onto the FIXED image (row-major
  3x3, last row ``[0, 0, 1]`` except for homographies). Warping the moving image onto the
  fixed grid therefore samples the moving image at ``inverse(matrix) @ (x_f, y_f, 1)``.
* Deformable kinds (``thin_plate_spline``, ``bspline``, ``demons``) carry a
  :attr:`Transform.backward_map`: a ``(rows, cols, 2)`` float32 array on the FIXED grid that
  holds, for each fixed pixel, the ``(x, y)`` moving coordinate to sample (the ``map1``/``map2``
  pair of :func:`cv2.remap`). Their ``matrix`` is the linear part found before the deformable
  stage.

The module is Qt-free; SimpleITK is imported only inside :meth:`Transform.save_tfm` and
:meth:`Transform.load_tfm`.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from maskwork.core.io.files import temporary_sibling

#: Kinds whose whole mapping is the 3x3 matrix.
LINEAR_KINDS = ("translation", "rigid", "similarity", "affine", "homography")
#: Kinds that need the dense backward map to be applied.
DEFORMABLE_KINDS = ("thin_plate_spline", "bspline", "demons")
KINDS = LINEAR_KINDS + DEFORMABLE_KINDS

#: Layer kinds warped with nearest neighbour (ids and seed values must survive exactly).
NEAREST_LAYER_KINDS = ("mask", "labels", "markers", "seeds")

# dtypes cv2.warpPerspective / cv2.remap handle natively.
_CV_DTYPES = (np.uint8, np.uint16, np.int16, np.float32, np.float64)


def describe_matrix(matrix: np.ndarray) -> dict:
    """Readable numbers for a moving -> fixed matrix.

    Returns
    -------
    dict
        ``tx``, ``ty`` (translation in px), ``angle_degrees`` (rotation, counter-clockwise on
        screen is negative because y points down; this is ``atan2(m10, m00)``), ``scale``
        (square root of the absolute determinant of the 2x2 part).
    """
    m = np.asarray(matrix, float)
    m = m / m[2, 2] if m[2, 2] != 0 else m
    return {
        "tx": float(m[0, 2]),
        "ty": float(m[1, 2]),
        "angle_degrees": float(math.degrees(math.atan2(m[1, 0], m[0, 0]))),
        "scale": float(math.sqrt(abs(np.linalg.det(m[:2, :2])))),
    }


def _linear_kind(matrix: np.ndarray, tol: float = 1e-9) -> str:
    """The simplest linear kind that ``matrix`` (last row [0, 0, 1]) belongs to."""
    a = np.asarray(matrix, float)[:2, :2]
    if np.allclose(a, np.eye(2), atol=tol):
        return "translation"
    if abs(a[0, 0] - a[1, 1]) <= tol and abs(a[0, 1] + a[1, 0]) <= tol:
        return "rigid" if abs(np.linalg.det(a) - 1.0) <= 1e-7 else "similarity"
    return "affine"


@contextlib.contextmanager
def _lower_case_suffix(path: Path):
    """``path``, or a copy of it in a temporary folder whose suffix is in lower case:
    SimpleITK picks the reader by the suffix and knows ``.tfm``, not ``.TFM``."""
    if path.suffix == path.suffix.lower():
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="maskwork-") as folder:
        copy = Path(folder) / f"transform{path.suffix.lower()}"
        shutil.copyfile(path, copy)
        yield copy


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def _plain(value):
    """``value`` with numpy scalars/arrays turned into JSON-ready Python objects."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _shape2(shape) -> tuple[int, int]:
    rows, cols = (int(v) for v in tuple(shape)[:2])
    if rows < 1 or cols < 1:
        raise ValueError(f"a shape must be (rows, cols) with positive sizes, got {shape}")
    return rows, cols


def identity_grid(shape) -> np.ndarray:
    """``(rows, cols, 2)`` float32 array holding each pixel's own ``(x, y)``."""
    rows, cols = _shape2(shape)
    grid = np.empty((rows, cols, 2), np.float32)
    grid[..., 0] = np.arange(cols, dtype=np.float32)[None, :]
    grid[..., 1] = np.arange(rows, dtype=np.float32)[:, None]
    return grid


@dataclass
class Transform:
    """A moving -> fixed mapping found by registration.

    Attributes
    ----------
    kind : str
        One of :data:`KINDS`: ``"translation"``, ``"rigid"``, ``"similarity"``,
        ``"affine"``, ``"homography"``, ``"thin_plate_spline"``, ``"bspline"``, ``"demons"``.
    matrix : ndarray
        (3, 3) float64, maps a moving pixel ``(x, y, 1)`` onto the fixed image; for
        deformable kinds the linear part found before the deformable stage.
    fixed_shape : tuple of int
        ``(rows, cols)`` of the fixed image: the output grid of :meth:`apply`.
    moving_shape : tuple of int
        ``(rows, cols)`` of the moving image.
    backward_map : ndarray, optional
        Deformable kinds only: ``(rows, cols, 2)`` float32 on the FIXED grid, for each fixed
        pixel the ``(x, y)`` moving coordinate to sample (:func:`cv2.remap` convention).
    parameters : dict
        Extra numbers (``angle_degrees``, ``scale``, ``tx``, ``ty``, metric values, inlier
        point lists, ...); must be JSON-serialisable once numpy values are converted.
    """

    kind: str
    matrix: np.ndarray
    fixed_shape: tuple[int, int]
    moving_shape: tuple[int, int]
    backward_map: np.ndarray | None = None
    parameters: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown transform kind {self.kind!r}; known: {', '.join(KINDS)}")
        matrix = np.array(self.matrix, dtype=np.float64)
        if matrix.shape == (2, 3):
            matrix = np.vstack([matrix, [0.0, 0.0, 1.0]])
        if matrix.shape != (3, 3) or not np.all(np.isfinite(matrix)):
            raise ValueError(f"a transform matrix must be a finite 3x3 (or 2x3) array, got shape {matrix.shape}")
        self.matrix = matrix
        self.fixed_shape = _shape2(self.fixed_shape)
        self.moving_shape = _shape2(self.moving_shape)
        if self.backward_map is not None:
            bmap = np.asarray(self.backward_map, dtype=np.float32)
            if bmap.shape != (*self.fixed_shape, 2):
                raise ValueError(f"backward_map must have shape {(*self.fixed_shape, 2)} (fixed grid, x/y), got {bmap.shape}")
            self.backward_map = np.ascontiguousarray(bmap)

    # ------------------------------------------------------------------ properties
    @property
    def deformable(self) -> bool:
        """Whether the mapping needs the dense :attr:`backward_map` (not just the matrix)."""
        return self.kind in DEFORMABLE_KINDS

    # ------------------------------------------------------------------ mapping
    def map_points(self, xy) -> np.ndarray:
        """Map moving ``(x, y)`` points onto the fixed image.

        Parameters
        ----------
        xy : array_like
            (N, 2) moving coordinates ``(x = column, y = row)``.

        Returns
        -------
        ndarray
            (N, 2) float64 fixed coordinates. Deformable kinds use their linear part
            :attr:`matrix` only (the dense map goes fixed -> moving and is not inverted).
        """
        pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        homog = np.hstack([pts, np.ones((len(pts), 1))]) @ self.matrix.T
        return homog[:, :2] / homog[:, 2:3]

    def inverse(self) -> "Transform":
        """The fixed -> moving transform (linear kinds only).

        Raises
        ------
        ValueError
            For deformable kinds, whose dense map is not invertible in closed form.
        """
        if self.deformable:
            raise ValueError(f"a {self.kind} transform has no closed-form inverse; register the images the other way round")
        inv = np.linalg.inv(self.matrix)
        inv /= inv[2, 2]
        return Transform(self.kind, inv, self.moving_shape, self.fixed_shape, None, describe_matrix(inv))

    def backward_coordinates(self) -> np.ndarray:
        """``(rows, cols, 2)`` float32: for each fixed pixel the moving ``(x, y)`` it samples."""
        if self.deformable:
            return self._require_map()
        rows, cols = self.fixed_shape
        inv = np.linalg.inv(self.matrix)
        x = np.arange(cols, dtype=np.float64)[None, :]
        y = np.arange(rows, dtype=np.float64)[:, None]
        # Element-wise (thin matrix products are slow in BLAS).
        w = inv[2, 0] * x + inv[2, 1] * y + inv[2, 2]
        out = np.empty((rows, cols, 2), np.float32)
        out[..., 0] = (inv[0, 0] * x + inv[0, 1] * y + inv[0, 2]) / w
        out[..., 1] = (inv[1, 0] * x + inv[1, 1] * y + inv[1, 2]) / w
        return out

    def _require_map(self) -> np.ndarray:
        if self.backward_map is None:
            raise ValueError(
                f"this {self.kind} transform has no backward map (plain JSON keeps only the matrix); "
                "load it with Transform.load from the file saved by Transform.save"
            )
        return self.backward_map

    # ------------------------------------------------------------------ warping
    def apply(self, image, *, interpolation: Literal["linear", "nearest"] = "linear", fill=0) -> np.ndarray:
        """Warp a moving-space array onto the fixed grid.

        Parameters
        ----------
        image : ndarray
            (rows, cols) or (rows, cols, channels) of any dtype (bool, uint8, uint16,
            int32 labels, float, ...); its first two dimensions should be :attr:`moving_shape`.
        interpolation : {"linear", "nearest"}
            ``"nearest"`` keeps values exactly (labels, masks, seeds); ``"linear"`` is for
            intensities (integer results are rounded and clipped to the dtype).
        fill : scalar
            Value of fixed pixels that map outside the moving image.

        Returns
        -------
        ndarray
            ``fixed_shape`` (+ channels), same dtype as ``image``.
        """
        src = np.asarray(image)
        if src.ndim not in (2, 3):
            raise ValueError(f"can only warp 2-D images (with optional channels), got shape {src.shape}")
        if interpolation not in ("linear", "nearest"):
            raise ValueError(f"interpolation must be 'linear' or 'nearest', got {interpolation!r}")
        if src.ndim == 3 and src.shape[2] > 4:
            return np.stack(
                [self.apply(src[..., c], interpolation=interpolation, fill=fill) for c in range(src.shape[2])], axis=-1
            )
        dtype = src.dtype
        if interpolation == "nearest" and (dtype == bool or dtype.type not in _CV_DTYPES):
            return self._gather_nearest(src, fill)
        work = src
        if dtype == bool:
            work = src.astype(np.float32)
        elif dtype.type not in _CV_DTYPES:
            work = src.astype(np.float64)
        flags = cv2.INTER_NEAREST if interpolation == "nearest" else cv2.INTER_LINEAR
        channels = 1 if work.ndim == 2 else work.shape[2]
        border = (float(fill),) * max(channels, 1) if channels <= 4 else float(fill)
        rows, cols = self.fixed_shape
        if self.deformable:
            bmap = self._require_map()
            out = cv2.remap(work, bmap[..., 0], bmap[..., 1], flags, borderMode=cv2.BORDER_CONSTANT, borderValue=border)
        elif self.kind == "homography":
            out = cv2.warpPerspective(work, self.matrix, (cols, rows), flags=flags,
                                      borderMode=cv2.BORDER_CONSTANT, borderValue=border)
        else:
            out = cv2.warpAffine(work, self.matrix[:2], (cols, rows), flags=flags,
                                 borderMode=cv2.BORDER_CONSTANT, borderValue=border)
        if out.ndim == 2 and src.ndim == 3:  # OpenCV drops a trailing channel axis of 1
            out = out[..., None]
        if dtype == bool:
            return out > 0.5
        if out.dtype != dtype:
            if np.issubdtype(dtype, np.integer):
                info = np.iinfo(dtype)
                out = np.clip(np.rint(out), info.min, info.max)
            out = out.astype(dtype)
        return out

    def _gather_nearest(self, src: np.ndarray, fill) -> np.ndarray:
        """Nearest-neighbour warp by plain indexing: exact for every dtype."""
        coords = self.backward_coordinates()
        col = np.floor(coords[..., 0] + 0.5).astype(np.int64)
        row = np.floor(coords[..., 1] + 0.5).astype(np.int64)
        inside = (col >= 0) & (col < src.shape[1]) & (row >= 0) & (row < src.shape[0])
        out = np.full((*self.fixed_shape, *src.shape[2:]), fill, dtype=src.dtype)
        out[inside] = src[row[inside], col[inside]]
        return out

    # ------------------------------------------------------------------ JSON
    def to_json(self) -> dict:
        """JSON-ready description (the command line's ``"transform"`` object).

        The dense backward map is not included; :meth:`save` writes it beside the JSON.
        """
        return {
            "type": self.kind,
            "matrix": self.matrix.tolist(),
            "fixed_shape": list(self.fixed_shape),
            "moving_shape": list(self.moving_shape),
            "parameters": _plain(self.parameters),
            "deformable": self.deformable,
        }

    @classmethod
    def from_json(cls, data: dict, backward_map: np.ndarray | None = None) -> "Transform":
        """Rebuild a transform from :meth:`to_json` output.

        Parameters
        ----------
        data : dict
            As written by :meth:`to_json` (``"type"``, ``"matrix"``, shapes, parameters).
        backward_map : ndarray, optional
            The dense map of a deformable transform (JSON does not hold it).
        """
        try:
            return cls(
                kind=str(data["type"]),
                matrix=np.asarray(data["matrix"], float),
                fixed_shape=tuple(data["fixed_shape"]),
                moving_shape=tuple(data["moving_shape"]),
                backward_map=backward_map,
                parameters=dict(data.get("parameters") or {}),
            )
        except KeyError as exc:
            raise ValueError(f"transform JSON lacks the field {exc.args[0]!r}") from None

    def save(self, path: str | os.PathLike) -> list[Path]:
        """Write the transform as JSON; deformable ones also get ``<stem>_backward_map.tif``.

        Returns
        -------
        list of Path
            The files written (JSON first).
        """
        import tifffile

        path = Path(path)
        data = self.to_json()
        written = [path]
        if self.backward_map is not None:
            map_path = path.with_name(f"{path.stem}_backward_map.tif")
            tifffile.imwrite(map_path, np.asarray(self.backward_map, np.float32), photometric="minisblack",
                             planarconfig="contig")
            data["backward_map"] = map_path.name
            written.append(map_path)
        path.write_text(json.dumps(data, indent=2))
        return written

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Transform":
        """Read a transform written by :meth:`save` (and its backward map, if any)."""
        import tifffile

        path = Path(path)
        data = json.loads(path.read_text())
        bmap = None
        if data.get("backward_map"):
            bmap = np.asarray(tifffile.imread(path.parent / data["backward_map"]), np.float32)
        return cls.from_json(data, backward_map=bmap)

    # ------------------------------------------------------------------ ITK
    def save_tfm(self, path: str | os.PathLike) -> None:
        """Write an ITK transform file (``.tfm``, ``.txt``, ``.h5``) with SimpleITK.

        ITK transforms map FIXED physical points to MOVING ones, so a linear transform is
        written as the inverse of :attr:`matrix`, an ``AffineTransform(2)`` with centre 0,
        for images with spacing 1, origin 0 and identity direction (pixel ``[row, col]`` at
        physical ``(col, row)``, the same pixel-centre convention). A transform with a
        backward map (thin-plate spline, B-spline, demons) and a homography (ITK has no 2-D
        perspective transform) are written as a ``DisplacementFieldTransform`` holding the
        backward coordinates minus the identity grid on the fixed grid (ITK's ``.tfm`` text
        format stores it in full, about 40 bytes a pixel; prefer ``.h5`` for large images).
        :meth:`load_tfm` reads such a homography back as a dense map.

        Raises
        ------
        ValueError
            For a deformable transform whose backward map is missing.
        """
        import SimpleITK as sitk

        if self.deformable and self.backward_map is None:
            self._require_map()  # raises: there is nothing to write
        if self.backward_map is not None or self.kind == "homography":
            disp = self.backward_coordinates().astype(np.float64) - identity_grid(self.fixed_shape)
            field_image = sitk.GetImageFromArray(disp, isVector=True)  # spacing 1, origin 0
            tx = sitk.DisplacementFieldTransform(field_image)
        else:
            inv = np.linalg.inv(self.matrix)
            inv /= inv[2, 2]
            tx = sitk.AffineTransform(2)
            tx.SetMatrix(inv[:2, :2].ravel().tolist())
            tx.SetTranslation(inv[:2, 2].tolist())
            tx.SetCenter((0.0, 0.0))
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        # SimpleITK picks the format by the suffix, in lower case only (``.TFM`` is
        # "unsupported"): it writes a temporary file of the same folder with the suffix
        # lowered, renamed to the name asked for once complete (no half-written file).
        temporary = temporary_sibling(path, path.suffix.lower())
        try:
            sitk.WriteTransform(tx, str(temporary))
            os.replace(temporary, path)
        except RuntimeError as exc:  # SimpleITK reports I/O problems as RuntimeError
            why = _first_line(exc).replace(str(temporary), str(path))
            raise OSError(f"cannot write the ITK transform {path}: {why}") from None
        finally:
            temporary.unlink(missing_ok=True)

    @classmethod
    def load_tfm(cls, path: str | os.PathLike, fixed_shape, moving_shape, kind: str | None = None) -> "Transform":
        """Read an ITK transform file as a :class:`Transform`.

        Same conventions as :meth:`save_tfm` (spacing 1, origin 0, ITK maps fixed -> moving).
        Linear ITK transforms (also composites of them, with any centre) become a matrix;
        anything else (B-spline, displacement field, mixed composites) is sampled on the
        fixed grid into a backward map.

        Parameters
        ----------
        path : path-like
            ``.tfm``/``.txt``/``.h5`` file.
        fixed_shape, moving_shape : tuple of int
            ``(rows, cols)`` of the fixed and moving images.
        kind : str, optional
            Kind to record; guessed from the ITK transform class when omitted.
        """
        import SimpleITK as sitk

        fixed_shape, moving_shape = _shape2(fixed_shape), _shape2(moving_shape)
        if not Path(path).is_file():
            raise ValueError(f"cannot read {Path(path).name}: there is no such file")
        try:
            with _lower_case_suffix(Path(path)) as readable:
                tx = sitk.ReadTransform(str(readable))
        except RuntimeError as exc:  # unreadable or not a transform file
            raise ValueError(f"cannot read {Path(path).name} as an ITK transform: {_first_line(exc)}") from None
        name = tx.GetName()
        if tx.IsLinear():
            # Three points fix an affine map exactly: fixed (x, y) -> moving (x, y).
            p0 = np.array(tx.TransformPoint((0.0, 0.0)))
            ex = np.array(tx.TransformPoint((1.0, 0.0))) - p0
            ey = np.array(tx.TransformPoint((0.0, 1.0))) - p0
            fixed_to_moving = np.array([[ex[0], ey[0], p0[0]], [ex[1], ey[1], p0[1]], [0.0, 0.0, 1.0]])
            matrix = np.linalg.inv(fixed_to_moving)
            guessed = {"TranslationTransform": "translation", "Euler2DTransform": "rigid",
                       "Similarity2DTransform": "similarity"}.get(name) or _linear_kind(matrix)
            return cls(kind or guessed, matrix, fixed_shape, moving_shape, None,
                       {**describe_matrix(matrix), "itk_transform": name})
        rows, cols = fixed_shape
        disp = sitk.TransformToDisplacementField(
            tx, sitk.sitkVectorFloat64, [cols, rows], [0.0, 0.0], [1.0, 1.0], [1.0, 0.0, 0.0, 1.0]
        )
        bmap = sitk.GetArrayFromImage(disp).astype(np.float32) + identity_grid(fixed_shape)
        guessed = "bspline" if "BSpline" in name else "demons"
        return cls(kind or guessed, np.eye(3), fixed_shape, moving_shape, bmap, {"itk_transform": name})


def warp_layer(data, transform: Transform, kind: str = "image", fill=0) -> np.ndarray:
    """Warp one layer's data onto the fixed grid with the interpolation its kind needs.

    Parameters
    ----------
    data : ndarray
        The moving-space layer array.
    transform : Transform
        The moving -> fixed transform.
    kind : str
        Layer kind: ``"mask"``, ``"labels"`` and ``"markers"`` (seeds) use nearest
        neighbour so values survive exactly; anything else (``"image"``, probabilities)
        is interpolated linearly.
    fill : scalar
        Value outside the moving image.
    """
    interpolation = "nearest" if kind in NEAREST_LAYER_KINDS else "linear"
    return transform.apply(data, interpolation=interpolation, fill=fill)
