"""Where each input of a recipe step comes from, and the seed files that hold recorded arrays.

An input is one of (its JSON form, then the class that records it):

* ``{"layer": "input"}`` -- the image being processed [``LayerInput()``];
* ``{"layer": NAME}`` -- the output an earlier step named NAME [``LayerInput(NAME)``];
* ``{"file": PATH, "dtype": DTYPE}`` -- a seed array (scribble markers, a mask drawn by
  hand, a second image) stored in a file, PATH relative to the recipe file
  [``ArrayInput(array)``]. Markers and masks of another size than the image are resized
  with nearest neighbour (labels stay labels, no new values appear); other arrays are used
  as stored;
* ``{"rule": "box", "rect": [x, y, w, h], "relative": true}`` -- a box in fractions of the
  image's width and height, so it scales with the image; ``"relative": false`` keeps
  pixels [``RectInput``, ``RectInput.from_pixels``];
* ``{"rule": "whole_image", "margin": 0.05}`` -- the image minus a margin on each side,
  in fractions of its size [``WholeImageInput``];
* ``{"rule": "box_from_mask", "layer": NAME, "pad": 10}`` -- the bounding box of layer
  NAME's nonzero pixels, grown by ``pad`` pixels [``MaskBoxInput``];
* ``{"points": [[row, col, label], ...], "relative": true}`` -- point prompts, positions
  in fractions of the image's height and width (or pixels) [``PointsInput``].

Each kind turns into the operator's value with ``resolve(input_name, reference, layers)``:
rules and relative positions measure ``reference``, the step's ``image`` input.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from maskwork.core import io
from maskwork.core.resize import resize_nearest
from maskwork.operators.context import InputError
from maskwork.operators.seeds import bounding_box

#: Layer name of the image a recipe is replayed on.
INPUT_LAYER = "input"
#: Inputs that must have the image's height and width, so stored ones are resized.
SIZED_INPUTS = ("markers", "mask")
#: Inputs that take a box rule, and the one that takes points.
RECT_INPUT, POINTS_INPUT = "rect", "points"


class RecipeError(InputError):
    """A recipe file or step that cannot be read or run: a one-line message for the user."""



@dataclass(frozen=True)
class LayerInput:
    """The processed image (``LayerInput()``) or an earlier step's named output.

    Parameters
    ----------
    name : str
        :data:`INPUT_LAYER` (``"input"``) or a name given to an earlier step's output.
    """

    name: str = INPUT_LAYER

    def to_json(self, folder: Path | None = None) -> dict:
        """``{"layer": name}``."""
        return {"layer": self.name}

    def resolve(self, input_name: str, reference: np.ndarray, layers: dict) -> Any:
        """The layer's current value."""
        return layers[self.name]


@dataclass(eq=False)
class ArrayInput:
    """A seed array recorded with the recipe: scribble markers, a hand-drawn mask, ...

    Parameters
    ----------
    array : ndarray
        The seed; copied, so later drawing does not change the recording.
    path : Path, optional
        The file that holds it. :meth:`~maskwork.pipeline.recipe.Recipe.save` and ``Recipe.embed`` write one
        where it is missing; ``recipe.load`` and ``replay.recipe_from_run`` set it.
    """

    array: np.ndarray
    path: Path | None = None

    def __post_init__(self) -> None:
        self.array = np.array(self.array, copy=True)
        self.array.flags.writeable = False
        if self.path is not None:
            self.path = Path(self.path).resolve()

    def to_json(self, folder: Path | None = None) -> dict:
        """``{"file": path relative to folder, "dtype": ...}``.

        Raises
        ------
        RecipeError
            When the array is not stored in a file yet.
        """
        if self.path is None:
            raise RecipeError("a seed array is not stored in a file yet: save the recipe first (Recipe.save or Recipe.embed)")
        return {"file": relative_path(self.path, folder), "dtype": self.array.dtype.name}

    def digest(self) -> str:
        """SHA-256 of the seed's dtype, shape and values (where it is stored does not count)."""
        digest = hashlib.sha256(f"{self.array.dtype.name}{self.array.shape}".encode())
        digest.update(np.ascontiguousarray(self.array).data)  # the same bytes, hashed in place
        return digest.hexdigest()

    def resolve(self, input_name: str, reference: np.ndarray, layers: dict) -> np.ndarray:
        """The seed, resized to the reference image when it is markers or a mask."""
        return fit_to_image(self.array, input_name, reference)


@dataclass(frozen=True)
class RectInput:
    """A box ``(x, y, width, height)``: in fractions of the image's size, or in pixels.

    Parameters
    ----------
    rect : tuple of 4 float
        x (column) and y (row) of the top-left corner, width and height.
    relative : bool
        True: fractions of the image's width (x, width) and height (y, height), so the box
        scales with the image; False: pixels, used as they are.
    """

    rect: tuple[float, float, float, float]
    relative: bool = True

    def __post_init__(self) -> None:
        # Floats throughout, so a box read back from JSON equals (and fingerprints like) the recorded one.
        rect = tuple(float(v) for v in self.rect)
        if len(rect) != 4:
            raise RecipeError(f"a box is (x, y, width, height), got {self.rect!r}")
        object.__setattr__(self, "rect", rect)
        object.__setattr__(self, "relative", bool(self.relative))

    @classmethod
    def from_pixels(cls, rect, image_shape, relative: bool = True) -> RectInput:
        """Record a box drawn in pixels on an image of ``image_shape`` (rows, cols[, ...]).

        With ``relative`` (the default) it is stored as fractions, which give back the
        same pixels on an image of the same size.
        """
        x, y, w, h = (float(v) for v in rect)
        if not relative:
            return cls((x, y, w, h), relative=False)
        rows, cols = image_shape[:2]
        return cls((x / cols, y / rows, w / cols, h / rows))

    def to_json(self, folder: Path | None = None) -> dict:
        """``{"rule": "box", "rect": [...], "relative": ...}``."""
        return {"rule": "box", "rect": list(self.rect), "relative": self.relative}

    def resolve(self, input_name: str, reference: np.ndarray, layers: dict) -> tuple[int, int, int, int]:
        """The box in pixels on ``reference``."""
        if self.relative:
            return fraction_box(self.rect, reference.shape)
        return tuple(round(v) for v in self.rect)


@dataclass(frozen=True)
class WholeImageInput:
    """The whole image minus a margin on each side: a box that fits every image.

    Parameters
    ----------
    margin : float
        Margin on each side as a fraction of the image's width (left, right) and height
        (top, bottom); from 0 up to, not including, 0.5.
    """

    margin: float = 0.05

    def __post_init__(self) -> None:
        object.__setattr__(self, "margin", float(self.margin))
        if not 0.0 <= self.margin < 0.5:
            raise RecipeError(f"a whole-image box's margin lies in [0, 0.5), got {self.margin}")

    def to_json(self, folder: Path | None = None) -> dict:
        """``{"rule": "whole_image", "margin": ...}``."""
        return {"rule": "whole_image", "margin": self.margin}

    def resolve(self, input_name: str, reference: np.ndarray, layers: dict) -> tuple[int, int, int, int]:
        """The box in pixels on ``reference``."""
        return whole_image_box(reference.shape, self.margin)


@dataclass(frozen=True)
class MaskBoxInput:
    """The bounding box of an earlier layer's nonzero pixels, grown by a padding.

    Parameters
    ----------
    layer : str
        Name of an earlier step's output (a mask or labels).
    pad : int
        Pixels added on each side (the box stays inside the image).
    """

    layer: str
    pad: int = 10

    def __post_init__(self) -> None:
        object.__setattr__(self, "pad", int(self.pad))

    def to_json(self, folder: Path | None = None) -> dict:
        """``{"rule": "box_from_mask", "layer": ..., "pad": ...}``."""
        return {"rule": "box_from_mask", "layer": self.layer, "pad": self.pad}

    def resolve(self, input_name: str, reference: np.ndarray, layers: dict) -> tuple[int, int, int, int]:
        """The padded box in pixels."""
        return mask_box(layers[self.layer], self.pad, self.layer)


@dataclass(frozen=True)
class PointsInput:
    """Point prompts ``(row, col, label)``: in fractions of the image's size, or in pixels.

    Parameters
    ----------
    points : tuple of (row, col, label)
        Positions and labels (1 positive, 0 negative, ``+k``/``-k`` landmark pairs).
    relative : bool
        True: row in fractions of the height, col of the width; False: pixels.
    """

    points: tuple[tuple[float, float, int], ...]
    relative: bool = True

    def __post_init__(self) -> None:
        try:
            points = tuple((float(row), float(col), int(label)) for row, col, label in self.points)
        except (TypeError, ValueError):
            raise RecipeError(f"points are (row, col, label) triples, got {self.points!r}") from None
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "relative", bool(self.relative))

    @classmethod
    def from_pixels(cls, points, image_shape, relative: bool = True) -> PointsInput:
        """Record points clicked in pixels on an image of ``image_shape``."""
        rows, cols = image_shape[:2]
        scale = (rows, cols) if relative else (1, 1)
        return cls(tuple((float(row) / scale[0], float(col) / scale[1], label) for row, col, label in points), relative)

    def to_json(self, folder: Path | None = None) -> dict:
        """``{"points": [[row, col, label], ...], "relative": ...}``."""
        return {"points": [list(point) for point in self.points], "relative": self.relative}

    def resolve(self, input_name: str, reference: np.ndarray, layers: dict) -> list[tuple[float, float, int]]:
        """The points in pixels on ``reference``."""
        if self.relative:
            return fraction_points(self.points, reference.shape)
        return [tuple(point) for point in self.points]


RecipeInput = LayerInput | ArrayInput | RectInput | WholeImageInput | MaskBoxInput | PointsInput


def kinds_accepted(input_name: str) -> tuple[type, ...]:
    """The input kinds that may record operator input ``input_name``.

    A box rule records only ``rect``, point prompts only ``points``; every other input
    (images, markers, masks) is a layer or a stored array.
    """
    if input_name == RECT_INPUT:
        return (RectInput, WholeImageInput, MaskBoxInput)
    if input_name == POINTS_INPUT:
        return (PointsInput,)
    return (LayerInput, ArrayInput)


# ----------------------------------------------------------------- box and point helpers


def fraction_box(rect, shape) -> tuple[int, int, int, int]:
    """A box given in fractions ``(x, y, w, h)`` of an image of ``shape`` (rows, cols[, ...]), in pixels.

    Edges are rounded to the nearest pixel and kept inside the image.
    """
    rows, cols = shape[:2]
    fx, fy, fw, fh = (float(v) for v in rect)
    left, right = (int(np.clip(round(v * cols), 0, cols)) for v in (fx, fx + fw))
    top, bottom = (int(np.clip(round(v * rows), 0, rows)) for v in (fy, fy + fh))
    return left, top, right - left, bottom - top


def whole_image_box(shape, margin: float) -> tuple[int, int, int, int]:
    """The box ``(x, y, w, h)`` of an image of ``shape`` without ``margin`` (a fraction) on each side."""
    rows, cols = shape[:2]
    left, top = round(margin * cols), round(margin * rows)
    return left, top, max(1, cols - 2 * left), max(1, rows - 2 * top)


def mask_box(mask: np.ndarray, pad: int, name: str = "mask") -> tuple[int, int, int, int]:
    """The bounding box ``(x, y, w, h)`` of a mask's nonzero pixels, ``pad`` pixels larger.

    Raises
    ------
    RecipeError
        When the mask (called ``name`` in the message) is empty.
    """
    mask = np.asarray(mask)
    box = bounding_box(mask != 0)
    if box is None:
        raise RecipeError(f"the layer {name!r} is empty, so it gives no box")
    top, left, bottom, right = box
    rows, cols = mask.shape[:2]
    top, left = max(0, top - pad), max(0, left - pad)
    bottom, right = min(rows, bottom + pad), min(cols, right + pad)
    return left, top, right - left, bottom - top


def fraction_points(points, shape) -> list[tuple[float, float, int]]:
    """Points ``(row, col, label)`` given in fractions of an image of ``shape``, in pixels.

    Positions are rounded to a millionth of a pixel, so points recorded on an image of the
    same size come back exactly.
    """
    rows, cols = shape[:2]
    return [(round(float(r) * rows, 6), round(float(c) * cols, 6), int(label)) for r, c, label in points]


def fit_to_image(array: np.ndarray, input_name: str, reference: np.ndarray) -> np.ndarray:
    """A stored seed for input ``input_name``, resized to ``reference`` if it is markers or a mask."""
    if input_name in SIZED_INPUTS:
        return resize_nearest(array, reference.shape)
    return array


# ------------------------------------------------------------------------------ seed files


def single_channel(array: np.ndarray, what: str) -> np.ndarray:
    """A markers or mask image as (row, col): a gray file saved as RGB(A) gives one channel.

    Raises
    ------
    InputError
        When the colour channels differ (a colour picture, not a label image).
    """
    if array.ndim == 3:
        if not all(np.array_equal(array[..., 0], array[..., c]) for c in range(1, min(array.shape[2], 3))):
            raise InputError(f"the {what} file must be a single-channel (or palette) image")
        array = array[..., 0]
    return array


def read_seed(path: str | os.PathLike, input_name: str, dtype: str | None = None) -> np.ndarray:
    """Read a seed file as the array that was recorded.

    Parameters
    ----------
    path : str or path-like
        PNG or TIFF written by :func:`write_seed` (or any image file).
    input_name : str
        The operator input it feeds; markers and masks are read as one channel.
    dtype : str, optional
        The recorded dtype (``"bool"`` means nonzero); PNG stores labels as uint8/uint16.
    """
    array = io.read_image(path, palette_indices=input_name in SIZED_INPUTS)
    if input_name in SIZED_INPUTS:
        array = single_channel(array, input_name)
    if dtype == "bool":
        return array != 0
    return array if dtype is None else array.astype(dtype, copy=False)


def relative_path(path: Path, folder: Path | None) -> str:
    """``path`` relative to ``folder`` in POSIX form, or absolute when there is no common root."""
    if folder is None:
        return path.as_posix()
    try:
        return Path(os.path.relpath(path, Path(folder).resolve())).as_posix()
    except ValueError:  # another drive on Windows
        return path.as_posix()


def write_seed(base: Path, array: np.ndarray) -> Path:
    """Store a seed losslessly as ``base`` + ``.png`` (labels 0..65535) or ``.tif``."""
    if array.ndim == 2 and array.dtype.kind in "biu":
        suffix = io.output_suffix("labels", array)
        return io.write_labels(base.with_name(base.name + suffix), array)
    return io.write_image(base.with_name(base.name + ".tif"), array)


def input_from_json(name: str, value: Any, folder: Path) -> RecipeInput:
    """One input of a step from its JSON form (seed paths relative to ``folder``).

    Raises
    ------
    RecipeError
        When the form is malformed, names an unknown rule or a missing seed file.
    """
    if not isinstance(value, dict):
        raise RecipeError(f"input {name} must be an object, got {value!r}")
    try:
        if "rule" in value:
            rule = value["rule"]
            if rule == "box":
                return RectInput(value["rect"], value.get("relative", True))
            if rule == "whole_image":
                return WholeImageInput(value.get("margin", 0.05))
            if rule == "box_from_mask":
                return MaskBoxInput(str(value["layer"]), value.get("pad", 10))
            raise RecipeError(f"input {name} has an unknown rule {rule!r} (box, whole_image or box_from_mask)")
        if "points" in value:
            return PointsInput(value["points"], value.get("relative", True))
        if "layer" in value:
            return LayerInput(str(value["layer"]))
        if "file" in value:
            path = folder / value["file"]
            if not path.is_file():
                raise RecipeError(f"input {name}: the seed file {path} is missing")
            try:
                return ArrayInput(read_seed(path, name, value.get("dtype")), path)
            except (io.ImageReadError, TypeError) as error:  # TypeError: an unknown dtype
                raise RecipeError(f"input {name}: {error}") from None
    except InputError:
        raise
    except (KeyError, TypeError, ValueError):
        raise RecipeError(f"input {name} is malformed: {json.dumps(value)[:120]}") from None
    raise RecipeError(f"input {name} must have \"layer\", \"file\", \"rule\" or \"points\", got {json.dumps(value)[:120]}")

