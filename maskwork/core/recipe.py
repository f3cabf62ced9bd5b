"""Recipes: the operator steps a person applied, recorded so they replay on other images.

A recipe is a list of steps. Each step names an operator of the registry, all its
parameters (coerced, defaults filled in), where each of its inputs comes from, and the
layer names its outputs get, so that later steps can take them. Saved as JSON::

    {
      "maskwork_recipe": 1,
      "maskwork_version": "0.1.0",
      "steps": [
        {
          "operator": "grabcut",
          "parameters": {"iterations": 5, "margin": 0.15, "coarse_megapixels": 0.5},
          "inputs": {
            "image": {"layer": "input"},
            "markers": {"file": "cat_seeds/step1_markers.png", "dtype": "uint8"},
            "rect": {"rule": "box", "rect": [0.2, 0.07, 0.58, 0.9], "relative": true}
          },
          "outputs": {"mask": "GrabCut mask"}
        },
        {
          "operator": "morphology",
          "parameters": {"operation": "open", "radius": 3},
          "inputs": {"mask": {"layer": "GrabCut mask"}},
          "outputs": {"mask": "Opened"}
        }
      ]
    }

An input is one of (the Python class that records it in brackets):

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

Rules and relative positions are taken from the step's ``image`` input (the processed
image when the step has none). A later step may reuse a layer name: its output then
replaces that layer for the steps after it, as applying an operator in place does.

:func:`replay` runs a recipe on an image; :func:`to_python` writes it as a script that
calls the registry; :func:`recipe_from_run` records one ``maskwork run``.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import maskwork
from maskwork.core import io
from maskwork.core.resize import resize_nearest
from maskwork.operators import registry
from maskwork.operators.context import InputError, RunContext
from maskwork.operators.seeds import bounding_box

#: Value of the ``"maskwork_recipe"`` key this version writes and reads.
RECIPE_VERSION = 1
#: Layer name of the image a recipe is replayed on.
INPUT_LAYER = "input"
#: Inputs that must have the image's height and width, so stored ones are resized.
SIZED_INPUTS = ("markers", "mask")
#: Inputs that take a box rule, and the one that takes points.
RECT_INPUT, POINTS_INPUT = "rect", "points"


class RecipeError(InputError):
    """A recipe file or step that cannot be read or run: a one-line message for the user."""


# --------------------------------------------------------------------- input kinds


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
        The file that holds it. :meth:`Recipe.save` and :meth:`Recipe.embed` write one
        where it is missing; :func:`load` and :func:`recipe_from_run` set it.
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
        return {"file": _relative(self.path, folder), "dtype": self.array.dtype.name}

    def digest(self) -> str:
        """SHA-256 of the seed's dtype, shape and values (where it is stored does not count)."""
        digest = hashlib.sha256(f"{self.array.dtype.name}{self.array.shape}".encode())
        digest.update(np.ascontiguousarray(self.array).tobytes())
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
_RECT_RULES = (RectInput, WholeImageInput, MaskBoxInput)


# ---------------------------------------------------------- helpers (also used by scripts)


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
        PNG or TIFF written by :meth:`Recipe.save` (or any image file).
    input_name : str
        The operator input it feeds; markers and masks are read as one channel.
    dtype : str, optional
        The recorded dtype (``"bool"`` means nonzero); PNG stores labels as uint8/uint16.
    """
    array = io.read_image(path)
    if input_name in SIZED_INPUTS:
        array = single_channel(array, input_name)
    if dtype == "bool":
        return array != 0
    return array if dtype is None else array.astype(dtype, copy=False)


def load_seed(path: str | os.PathLike, input_name: str, dtype: str | None, like: np.ndarray) -> np.ndarray:
    """:func:`read_seed`, then :func:`fit_to_image` to ``like``: one stored seed, ready to use."""
    return fit_to_image(read_seed(path, input_name, dtype), input_name, like)


def output_filename(stem: str, layer: str, kind: str, value: Any) -> str:
    """``<stem>_<layer>.<suffix>``: where a replayed output of an image called ``stem`` goes.

    Characters other than letters, digits, ``.``, ``-`` and ``_`` in the layer name become
    ``_``; the suffix is :func:`maskwork.core.io.output_suffix`.
    """
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", layer).strip("_") or kind
    return f"{stem}_{safe}{io.output_suffix(kind, value)}"


def _relative(path: Path, folder: Path | None) -> str:
    """``path`` relative to ``folder`` in POSIX form, or absolute when there is no common root."""
    if folder is None:
        return path.as_posix()
    try:
        return Path(os.path.relpath(path, Path(folder).resolve())).as_posix()
    except ValueError:  # another drive on Windows
        return path.as_posix()


def _write_seed(base: Path, array: np.ndarray) -> Path:
    """Store a seed losslessly as ``base`` + ``.png`` (labels 0..65535) or ``.tif``."""
    if array.ndim == 2 and array.dtype.kind in "biu":
        suffix = io.output_suffix("labels", array)
        return io.write_labels(base.with_name(base.name + suffix), array)
    return io.write_image(base.with_name(base.name + ".tif"), array)


# ------------------------------------------------------------------------ the recipe


@dataclass
class Step:
    """One operator run of a recipe.

    Attributes
    ----------
    operator : str
        Registry id.
    parameters : dict
        Every parameter of the operator, coerced to its type.
    inputs : dict
        Operator input name (``image``, ``markers``, ``rect``, ...) -> where it comes from.
    outputs : dict
        Output kind (``mask``, ``labels``, ...) -> the layer name it gets.
    """

    operator: str
    parameters: dict
    inputs: dict[str, RecipeInput]
    outputs: dict[str, str]


@dataclass
class Recipe:
    """Operator steps to replay on other images.

    Attributes
    ----------
    steps : list of Step
        In the order they were applied.
    path : Path or None
        The file the recipe was last saved to or loaded from; seed paths are relative to
        its folder.
    """

    steps: list[Step] = field(default_factory=list)
    path: Path | None = None

    def add_step(
        self,
        operator: str,
        params: dict | None = None,
        inputs: dict[str, RecipeInput] | None = None,
        outputs: dict[str, str] | None = None,
    ) -> Step:
        """Record one operator run, checking it against the registry.

        Parameters
        ----------
        operator : str
            Registry id, e.g. ``"grabcut"``.
        params : dict, optional
            Parameter values as applied; strings are converted, missing ones take their
            defaults, and all of them are recorded.
        inputs : dict, optional
            Operator input name -> :class:`LayerInput`, :class:`ArrayInput`,
            :class:`RectInput`, :class:`WholeImageInput`, :class:`MaskBoxInput` (for
            ``rect``) or :class:`PointsInput` (for ``points``).
        outputs : dict, optional
            Output kind -> layer name for the outputs to keep. By default every output
            the operator declares, named by its kind (``"mask"``), or ``"mask_3"`` (kind
            and step number) when an earlier step already used that name.

        Returns
        -------
        Step
            The recorded step (also appended to :attr:`steps`).

        Raises
        ------
        InputError
            For an unknown operator, parameter, input or output kind, a missing required
            input, a reference to a layer no earlier step made, or an input kind that does
            not fit the input (a box rule for ``markers``).
        """
        spec = registry.get(operator)
        parameters = {**spec.defaults(), **{name: spec.param(name).coerce(value) for name, value in (params or {}).items()}}
        inputs = dict(inputs or {})
        known = self.layer_names()
        for name, source in inputs.items():
            self._check_input(spec, name, source, known)
        missing = [name for name in spec.required_inputs if name not in inputs]
        if missing:
            raise InputError(f"{spec.id} needs {', '.join(missing)}")
        number = len(self.steps) + 1
        if outputs is None:
            outputs = {kind: kind if kind not in known else f"{kind}_{number}" for kind in spec.outputs}
        for kind, name in outputs.items():
            if kind not in spec.outputs:
                raise InputError(f"{spec.id} has no output {kind!r}; it has: {', '.join(spec.outputs)}")
            if not isinstance(name, str) or not name.strip() or name == INPUT_LAYER:
                raise InputError(f"an output needs a layer name other than {INPUT_LAYER!r}, got {name!r}")
        step = Step(spec.id, parameters, inputs, dict(outputs))
        self.steps.append(step)
        return step

    @staticmethod
    def _check_input(spec: registry.OperatorSpec, name: str, source: Any, known: list[str]) -> None:
        if name not in spec.inputs:
            raise InputError(f"{spec.id} does not take {name}; it takes: {', '.join(spec.inputs)}")
        if name == RECT_INPUT:
            allowed: tuple[type, ...] = _RECT_RULES
        elif name == POINTS_INPUT:
            allowed = (PointsInput,)
        else:
            allowed = (LayerInput, ArrayInput)
        if not isinstance(source, allowed):
            kinds = " or ".join(kind.__name__ for kind in allowed)
            raise InputError(f"{spec.id}'s input {name} is recorded as {kinds}, got {type(source).__name__}")
        layer = source.name if isinstance(source, LayerInput) else getattr(source, "layer", None)
        if layer is not None and layer != INPUT_LAYER and layer not in known:
            raise InputError(f"layer {layer!r} is not made by an earlier step; known layers: {', '.join([INPUT_LAYER, *known])}")

    def layer_names(self) -> list[str]:
        """Names of the layers the steps make, in order of first appearance."""
        return list(dict.fromkeys(name for step in self.steps for name in step.outputs.values()))

    def output_kinds(self) -> dict[str, str]:
        """Layer name -> the output kind it holds after the last step."""
        return {name: kind for step in self.steps for kind, name in step.outputs.items()}

    def to_json(self, folder: str | os.PathLike | None = None) -> dict:
        """The recipe as JSON-ready data, seed paths relative to ``folder``.

        Raises
        ------
        RecipeError
            When a seed array is not stored in a file yet (see :meth:`save`, :meth:`embed`).
        """
        return {
            "maskwork_recipe": RECIPE_VERSION,
            "maskwork_version": maskwork.__version__,
            "steps": [
                {
                    "operator": step.operator,
                    "parameters": dict(step.parameters),
                    "inputs": {name: source.to_json(folder) for name, source in step.inputs.items()},
                    "outputs": dict(step.outputs),
                }
                for step in self.steps
            ],
        }

    def _store_seeds(self, folder: Path, overwrite: bool) -> None:
        """Write seed arrays into ``folder`` as ``step<N>_<input>.png``/``.tif``."""
        for number, step in enumerate(self.steps, 1):
            for name, source in step.inputs.items():
                if isinstance(source, ArrayInput) and (overwrite or source.path is None):
                    source.path = _write_seed(folder / f"step{number}_{name}", source.array).resolve()

    def save(self, path: str | os.PathLike) -> Path:
        """Write the recipe as JSON, its seed arrays beside it in ``<stem>_seeds/``.

        Every seed is written again, so the recipe file and its seed folder can be moved
        together. Sets :attr:`path`.

        Returns
        -------
        Path
            The recipe file.
        """
        path = Path(path).resolve()
        self._store_seeds(path.with_name(f"{path.stem}_seeds"), overwrite=True)
        io.write_json(path, self.to_json(path.parent))
        self.path = path
        return path

    def embed(self, export_path: str | os.PathLike) -> dict:
        """The recipe to store in an export's sidecar (``io.write_mask(..., recipe=...)``).

        Seeds not yet in a file are written to ``<export stem>_seeds/`` beside the export;
        seed paths are relative to the export's folder, where the sidecar lies.
        """
        export_path = Path(export_path).resolve()
        self._store_seeds(export_path.with_name(f"{export_path.stem}_seeds"), overwrite=False)
        return self.to_json(export_path.parent)

    def fingerprint(self) -> str:
        """SHA-256 of what the recipe computes (steps and seed values, not file locations).

        ``maskwork batch`` compares it to decide whether a finished image is still valid.
        Files named by parameters (a model, a checkpoint) count by size and modification
        time, so replacing one invalidates the images it made.
        """
        described = []
        for step in self.steps:
            inputs = {
                name: {"seed": source.digest()} if isinstance(source, ArrayInput) else source.to_json()
                for name, source in step.inputs.items()
            }
            described.append([step.operator, step.parameters, inputs, step.outputs, _files_state(step)])
        text = json.dumps(described, sort_keys=True, default=str)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    @classmethod
    def from_json(cls, data: Any, folder: str | os.PathLike, where: str = "recipe") -> Recipe:
        """Build a recipe from :meth:`to_json` data (or a sidecar holding ``"recipe"``).

        Parameters
        ----------
        data : object
            Parsed JSON.
        folder : str or path-like
            Folder that seed paths are relative to.
        where : str
            Names the source in error messages (normally the file).

        Raises
        ------
        RecipeError
            One line saying what is wrong and in which step.
        """
        if isinstance(data, dict) and "maskwork_recipe" not in data and isinstance(data.get("recipe"), dict):
            data = data["recipe"]  # an export's sidecar
        if not isinstance(data, dict) or "maskwork_recipe" not in data:
            raise RecipeError(f"{where} is not a maskwork recipe (no \"maskwork_recipe\" key)")
        version = data["maskwork_recipe"]
        if not isinstance(version, int) or version < 1:
            raise RecipeError(f"{where}: \"maskwork_recipe\" must be a version number, got {version!r}")
        if version > RECIPE_VERSION:
            raise RecipeError(f"{where} is a version {version} recipe; this maskwork reads up to version {RECIPE_VERSION}")
        steps = data.get("steps")
        if not isinstance(steps, list) or not steps:
            raise RecipeError(f"{where} has no steps")
        recipe = cls()
        for number, step in enumerate(steps, 1):
            label = f"{where}, step {number}"
            if not isinstance(step, dict) or not isinstance(step.get("operator"), str):
                raise RecipeError(f"{label}: a step is an object with an \"operator\" id")
            label += f" ({step['operator']})"
            try:
                parameters, inputs, outputs = (step.get(key, {}) for key in ("parameters", "inputs", "outputs"))
                if not all(isinstance(part, dict) for part in (parameters, inputs, outputs)):
                    raise RecipeError("\"parameters\", \"inputs\" and \"outputs\" must be objects")
                sources = {name: _input_from_json(name, value, Path(folder)) for name, value in inputs.items()}
                recipe.add_step(step["operator"], parameters, sources, outputs or None)
            except InputError as error:
                raise RecipeError(f"{label}: {error}") from None
        return recipe


def _input_from_json(name: str, value: Any, folder: Path) -> RecipeInput:
    """One input of a step from its JSON form."""
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


def _files_state(step: Step) -> dict:
    """Parameter name -> (size, mtime in ns) of each file a step's parameters name."""
    spec = registry.get(step.operator)
    state = {}
    for param in spec.params:
        value = step.parameters.get(param.name)
        if param.type == "path" and value:
            try:
                info = os.stat(os.path.expanduser(str(value)))
                state[param.name] = (info.st_size, info.st_mtime_ns)
            except OSError:
                state[param.name] = None
    return state


def load(path: str | os.PathLike) -> Recipe:
    """Read a recipe file (or an export's sidecar that embeds one).

    Raises
    ------
    RecipeError
        When the file is missing, is not JSON, or holds a recipe that does not fit the
        registry; the message names the file and the step.
    """
    path = Path(path).resolve()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecipeError(f"no such recipe file: {path}") from None
    except UnicodeDecodeError:
        raise RecipeError(f"recipe {path} is not valid JSON (not a text file)") from None
    except OSError as error:
        raise RecipeError(f"cannot read recipe {path} ({error.strerror or error})") from None
    except json.JSONDecodeError as error:
        raise RecipeError(f"recipe {path} is not valid JSON (line {error.lineno}: {error.msg})") from None
    recipe = Recipe.from_json(data, path.parent, where=str(path))
    recipe.path = path
    return recipe


# ---------------------------------------------------------------------------- replay


def _step_context(ctx: RunContext | None, number: int, count: int, title: str) -> RunContext | None:
    """A context for step ``number`` of ``count``: progress mapped into its share, same cancel flag.

    Partial results of intermediate steps are not forwarded: they are not what the recipe
    makes.
    """
    if ctx is None:
        return None

    def progress(fraction: float, message: str) -> None:
        ctx.progress((number - 1 + fraction) / count, f"Step {number}/{count} {title}: {message}")

    return RunContext(on_progress=progress, cancel_event=ctx.cancel_event)


def replay_with_scores(recipe: Recipe, image: np.ndarray, ctx: RunContext | None = None) -> tuple[dict[str, Any], dict[str, float]]:
    """Run every step on ``image``; the named outputs and every step's scores.

    Parameters
    ----------
    recipe : Recipe
        The steps.
    image : ndarray
        The image to process (the ``"input"`` layer).
    ctx : RunContext, optional
        Progress over the whole recipe and cancellation.

    Returns
    -------
    layers : dict
        Layer name -> value after the last step (the processed image not included).
    scores : dict
        ``"step<N>.<operator>.<score>"`` -> value, for each score an operator reported.

    Raises
    ------
    InputError
        When a step rejects its inputs (the message names the step).
    """
    layers: dict[str, Any] = {INPUT_LAYER: image}
    scores: dict[str, float] = {}
    for number, step in enumerate(recipe.steps, 1):
        spec = registry.get(step.operator)
        inputs: dict[str, Any] = {}
        try:
            # The step's image first: its rules and resized seeds measure it.
            if "image" in step.inputs:
                inputs["image"] = step.inputs["image"].resolve("image", image, layers)
            reference = inputs.get("image", image)
            for name, source in step.inputs.items():
                if name != "image":
                    inputs[name] = source.resolve(name, reference, layers)
            result = spec.run(inputs, step.parameters, _step_context(ctx, number, len(recipe.steps), spec.title))
        except InputError as error:
            raise type(error)(f"step {number} ({step.operator}): {error}") from None
        for kind, name in step.outputs.items():
            if kind not in result.outputs:
                raise RecipeError(f"step {number} ({step.operator}) made no {kind} output")
            layers[name] = result.outputs[kind]
        scores.update({f"step{number}.{step.operator}.{key}": value for key, value in result.scores.items()})
    del layers[INPUT_LAYER]
    return layers, scores


def replay(recipe: Recipe, image: np.ndarray, ctx: RunContext | None = None) -> dict[str, Any]:
    """Run every step of ``recipe`` on ``image``; layer name -> value of each named output.

    See :func:`replay_with_scores`, which also returns the operators' scores.
    """
    return replay_with_scores(recipe, image, ctx)[0]


def recipe_from_run(op_id: str, params: dict, inputs: dict, paths: dict | None = None) -> Recipe:
    """The one-step recipe of a ``maskwork run``, for its sidecars.

    Parameters
    ----------
    op_id : str
        Operator id.
    params : dict
        Parameters as given (converted and completed with defaults here).
    inputs : dict
        The operator's inputs: ``image`` becomes the processed image; ``rect`` a box in
        fractions of the image's size (the same pixels on this image, scaled on others);
        ``points`` keep their pixel positions (landmarks of a second image are not in the
        first image's frame); arrays (``markers``, ``mask``, ``image2``) seeds.
    paths : dict, optional
        Input name -> the file an array was read from, which the recipe refers to.

    Returns
    -------
    Recipe
        One step whose outputs are named by their kind (``"mask"``, ...).
    """
    paths = paths or {}
    shape = np.shape(inputs["image"])
    recorded: dict[str, RecipeInput] = {}
    for name, value in inputs.items():
        if name == "image":
            recorded[name] = LayerInput()
        elif name == RECT_INPUT:
            recorded[name] = RectInput.from_pixels(value, shape)
        elif name == POINTS_INPUT:
            recorded[name] = PointsInput.from_pixels(value, shape, relative=False)
        else:
            recorded[name] = ArrayInput(value, paths.get(name))
    recipe = Recipe()
    recipe.add_step(op_id, params, recorded)
    return recipe


# ------------------------------------------------------------------- Python script


def _input_expression(name: str, source: RecipeInput, reference: str, seeds_root: Path) -> str:
    """Python source that computes one input inside the generated ``replay`` function."""
    if isinstance(source, LayerInput):
        return "image" if source.name == INPUT_LAYER else f"layers[{source.name!r}]"
    if isinstance(source, ArrayInput):
        if source.path is None:
            raise RecipeError("a seed array is not stored in a file yet: save the recipe first (Recipe.save)")
        relative = _relative(source.path, seeds_root)
        return f"load_seed(seeds / {relative!r}, {name!r}, {source.array.dtype.name!r}, like={reference})"
    if isinstance(source, RectInput):
        if source.relative:
            return f"fraction_box({source.rect!r}, {reference}.shape)"
        return repr(tuple(round(v) for v in source.rect))
    if isinstance(source, WholeImageInput):
        return f"whole_image_box({reference}.shape, margin={source.margin!r})"
    if isinstance(source, MaskBoxInput):
        return f"mask_box(layers[{source.layer!r}], pad={source.pad!r}, name={source.layer!r})"
    if source.relative:
        return f"fraction_points({[list(p) for p in source.points]!r}, {reference}.shape)"
    return repr([tuple(p) for p in source.points])


_SCRIPT_HEAD = '''"""Replay a maskwork recipe ({count} step(s)); generated by maskwork {version}.

    python {{this script}} IMAGE OUTDIR [--seeds DIR]

Runs each step through the operator registry and writes every named output as
OUTDIR/<image stem>_<layer>.png (or .tif, .json) with maskwork.core.io.
"""

import argparse
from pathlib import Path

from maskwork.core import io
from maskwork.core.recipe import {helpers}
from maskwork.operators.registry import get

#: Folder the seed files are relative to (where the recipe was saved).
SEEDS = Path({seeds!r})
#: Layer name -> output kind, for choosing how to write it.
OUTPUT_KINDS = {kinds!r}


def replay(image, seeds=SEEDS):
    """Run the recipe on ``image`` with seed files from ``seeds``; returns layer name -> output."""
    seeds = Path(seeds)
    layers = {{}}
'''

_SCRIPT_TAIL = '''    return layers


def main():
    parser = argparse.ArgumentParser(description="Replay a maskwork recipe on one image.")
    parser.add_argument("image", type=Path, help="image to process")
    parser.add_argument("outdir", type=Path, help="folder for the outputs")
    parser.add_argument("--seeds", type=Path, default=SEEDS, help="folder of the recipe's seed files")
    args = parser.parse_args()
    image = io.read_image(args.image)
    for name, value in replay(image, args.seeds).items():
        kind = OUTPUT_KINDS[name]
        written = io.write_output(args.outdir / output_filename(args.image.stem, name, kind, value), kind, value)
        print(written)


if __name__ == "__main__":
    main()
'''


#: Functions of this module a generated script may call (it imports those it uses).
_SCRIPT_HELPERS = ("fraction_box", "fraction_points", "load_seed", "mask_box", "output_filename", "whole_image_box")


def to_python(recipe: Recipe) -> str:
    """A standalone Python script that replays ``recipe`` by calling the registry.

    The script reads seed files where the recipe was saved (``--seeds`` overrides), so
    save a recipe with seeds before generating it.

    Raises
    ------
    RecipeError
        When a seed array is not stored in a file yet.
    """
    seeds_root = recipe.path.parent if recipe.path is not None else Path.cwd()
    steps = []
    for number, step in enumerate(recipe.steps, 1):
        steps.append(f"    # Step {number}: {registry.get(step.operator).title}")
        expressions = {}
        reference = "image"
        image_source = step.inputs.get("image")
        if image_source is not None and image_source != LayerInput(INPUT_LAYER):
            # Rules and seeds of this step measure its own image: compute it once.
            steps.append(f"    step_image = {_input_expression('image', image_source, 'image', seeds_root)}")
            reference = expressions["image"] = "step_image"
        steps.append(f"    result = get({step.operator!r}).run(")
        steps.append("        {")
        for name, source in step.inputs.items():
            expression = expressions.get(name) or _input_expression(name, source, reference, seeds_root)
            steps.append(f"            {name!r}: {expression},")
        steps.append("        },")
        steps.append(f"        {step.parameters!r},")
        steps.append("    )")
        steps.extend(f"    layers[{name!r}] = result.outputs[{kind!r}]" for kind, name in step.outputs.items())
    body = "\n".join(steps) + "\n" + _SCRIPT_TAIL
    head = _SCRIPT_HEAD.format(
        count=len(recipe.steps),
        version=maskwork.__version__,
        helpers=", ".join(name for name in _SCRIPT_HELPERS if f"{name}(" in body),
        seeds=seeds_root.as_posix(),
        kinds=recipe.output_kinds(),
    )
    return head + body
