"""Running a recipe on an image, and recording one ``maskwork run`` as a recipe.

:func:`replay` (and :func:`replay_recipe`) is the one place a recipe runs: the
window's exported scripts (:mod:`maskwork.pipeline.script`) and ``maskwork batch``
(:mod:`maskwork.pipeline.batch`) both go through it. Each step is a
:class:`~maskwork.pipeline.session.RunSession`, so its result is checked as in the window.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from maskwork.operators import registry
from maskwork.operators.context import InputError, RunContext
from maskwork.pipeline.inputs import (
    INPUT_LAYER,
    POINTS_INPUT,
    RECT_INPUT,
    ArrayInput,
    LayerInput,
    PointsInput,
    RecipeError,
    RecipeInput,
    RectInput,
)
from maskwork.pipeline.recipe import Recipe
from maskwork.pipeline.session import RunSession


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


@dataclass
class Replayed:
    """What a recipe made on one image.

    Attributes
    ----------
    layers : dict
        Layer name -> value after the last step (the processed image not included).
    scores : dict
        ``"step<N>.<operator>.<score>"`` -> value, for each score an operator reported.
    class_ids : dict
        Layer name -> the class id of each plane, for probability layers whose operator
        said which class each plane scores (written to their sidecars).
    """

    layers: dict[str, Any]
    scores: dict[str, float]
    class_ids: dict[str, tuple[int, ...]] = field(default_factory=dict)


def replay_recipe(recipe: Recipe, image: np.ndarray, ctx: RunContext | None = None) -> Replayed:
    """Run every step on ``image``: the named outputs, every step's scores and plane classes.

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
    Replayed

    Raises
    ------
    InputError
        When a step rejects its inputs (the message names the step).
    """
    layers: dict[str, Any] = {INPUT_LAYER: image}
    scores: dict[str, float] = {}
    class_ids: dict[str, tuple[int, ...]] = {}
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
            session = RunSession(spec, inputs, step.parameters)
            result = session.run(_step_context(ctx, number, len(recipe.steps), spec.title))
        except InputError as error:
            raise type(error)(f"step {number} ({step.operator}): {error}") from None
        for kind, name in step.outputs.items():
            if kind not in result.outputs:
                raise RecipeError(f"step {number} ({step.operator}) made no {kind} output")
            layers[name] = result.outputs[kind]
            if kind == "probabilities" and result.class_ids is not None:
                class_ids[name] = tuple(result.class_ids)
            else:  # a later step may reuse the name for another output
                class_ids.pop(name, None)
        scores.update({f"step{number}.{step.operator}.{key}": value for key, value in result.scores.items()})
    del layers[INPUT_LAYER]
    return Replayed(layers, scores, class_ids)


def replay(recipe: Recipe, image: np.ndarray, ctx: RunContext | None = None) -> dict[str, Any]:
    """Run every step of ``recipe`` on ``image``; layer name -> value of each named output.

    See :func:`replay_recipe`, which also returns the operators' scores and plane classes.
    """
    return replay_recipe(recipe, image, ctx).layers


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
