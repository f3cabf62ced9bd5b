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

The input forms are listed in :mod:`maskwork.pipeline.inputs`. Rules and relative
positions are taken from the step's ``image`` input (the processed image when the step has
none). A later step may reuse a layer name: its output then replaces that layer for the
steps after it, as applying an operator in place does.

:func:`load` reads and checks a recipe file; :mod:`maskwork.pipeline.replay` runs one.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import maskwork
from maskwork.core import io
from maskwork.operators import registry
from maskwork.operators.context import InputError
from maskwork.pipeline.inputs import (
    INPUT_LAYER,
    ArrayInput,
    LayerInput,
    RecipeError,
    RecipeInput,
    input_from_json,
    kinds_accepted,
    write_seed,
)

#: Value of the ``"maskwork_recipe"`` key this version writes and reads.
RECIPE_VERSION = 1


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
            Operator input name -> an input kind of :mod:`maskwork.pipeline.inputs`:
            ``LayerInput``, ``ArrayInput``, ``RectInput``, ``WholeImageInput``,
            ``MaskBoxInput`` (for ``rect``) or ``PointsInput`` (for ``points``).
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
        if spec.seed_inputs and not any(name in inputs for name in spec.seed_inputs):
            raise InputError(f"{spec.id} needs one of {', '.join(spec.seed_inputs)} (none is recorded for it)")
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
        allowed = kinds_accepted(name)
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
                    source.path = write_seed(folder / f"step{number}_{name}", source.array).resolve()

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
                sources = {name: input_from_json(name, value, Path(folder)) for name, value in inputs.items()}
                recipe.add_step(step["operator"], parameters, sources, outputs or None)
            except InputError as error:
                raise RecipeError(f"{label}: {error}") from None
        return recipe



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
