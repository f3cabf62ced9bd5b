"""Every Apply in the window, recorded so that it can be written as a recipe.

A recorded step remembers the layers its inputs came from and the layers it added. The
recipe is built when it is asked for, from the steps whose layers are still in the
document: an undone Apply drops out of the recipe, and comes back with its redo.
"""

from __future__ import annotations

import weakref

import numpy as np

from maskwork.core.layers import Layer, LayerStack
from maskwork.core.pixels import pixel_digest
from maskwork.pipeline.inputs import ArrayInput, LayerInput, PointsInput, RectInput
from maskwork.pipeline.recipe import Recipe


class RecordedStep:
    """One Apply: its operator, parameters, inputs and the layers it made.

    The step holds its layers weakly: once an undone Apply's redo is gone, nothing holds
    its result layers any more, and the step (with the input snapshots it keeps) goes
    with them; an Apply and Undo repeated a hundred times on a large image kept every
    result alive.

    Attributes
    ----------
    operator : str
        Registry id.
    params : dict
        The parameters it ran with.
    inputs : dict
        Input name -> the value it ran on (arrays are the worker's snapshots).
    """

    def __init__(self, operator: str, params: dict, inputs: dict, sources: dict[str, Layer],
                 outputs: dict[str, list[Layer]]) -> None:
        self.operator = operator
        self.params = params
        self.inputs = inputs
        self._sources = {name: weakref.ref(layer) for name, layer in sources.items()}
        self._outputs = {kind: [weakref.ref(layer) for layer in group] for kind, group in outputs.items()}

    @property
    def alive(self) -> bool:
        """Whether every layer it made still exists (in the document or in its history)."""
        return all(ref() is not None for group in self._outputs.values() for ref in group)

    @property
    def sources(self) -> dict[str, Layer]:
        """Input name -> the layer it was taken from, while that exists (no entry for
        ``rect`` and ``points``)."""
        return {name: layer for name, ref in self._sources.items() if (layer := ref()) is not None}

    @property
    def outputs(self) -> dict[str, list[Layer]]:
        """Output kind -> the layers that show it (probabilities give one per class);
        only whole while :attr:`alive`."""
        return {kind: [layer for ref in group if (layer := ref()) is not None] for kind, group in self._outputs.items()}


class RecipeRecorder:
    """The window's record of applied operators."""

    def __init__(self) -> None:
        self._steps: list[RecordedStep] = []
        # The digest of the data a step gave each layer, to notice later hand edits.
        self._digests: weakref.WeakKeyDictionary[Layer, str] = weakref.WeakKeyDictionary()

    @property
    def steps(self) -> list[RecordedStep]:
        """The recorded Applies whose layers still exist, in order (the others are dropped)."""
        self._steps = [step for step in self._steps if step.alive]
        return list(self._steps)

    def reset(self) -> None:
        """Forget every step (a new image was opened)."""
        self._steps.clear()
        self._digests.clear()

    def record(self, operator: str, params: dict, inputs: dict, sources: dict, layers: list[Layer],
               digests: list[str] | None = None) -> RecordedStep:
        """Remember one Apply; ``layers`` are the layers it added, each tagged with its output.

        ``digests`` are the layers' :func:`~maskwork.core.pixels.pixel_digest`, when the
        worker made them (hashing 12 MP here would cost the main thread a frame).
        """
        outputs: dict[str, list[Layer]] = {}
        for index, layer in enumerate(layers):
            outputs.setdefault(layer.metadata.get("output", "mask"), []).append(layer)
            self._digests[layer] = digests[index] if digests else pixel_digest(layer.data)
        step = RecordedStep(operator, dict(params), dict(inputs), dict(sources), outputs)
        self._steps = [*self.steps, step]
        return step

    def output_digest(self, layer: Layer) -> str | None:
        """The pixel digest a recorded step gave ``layer`` (None when no step made it)."""
        return self._digests.get(layer)

    def recipe(self, layers: LayerStack, base: Layer | None) -> Recipe:
        """The recipe of the steps whose layers are all still in ``layers``.

        An input taken from ``base`` (the opened image) becomes the processed image; one
        taken from a layer an earlier step made, unchanged since, refers to that step's
        output; anything else (a drawn scribble or mask, a result painted on by hand, a
        second image, a result whose step was undone or deleted) is stored as a seed
        array. A box and points are stored relative to the image size, so they scale on
        other images.

        Raises
        ------
        InputError
            When a recorded step no longer fits the registry (an operator was removed).
        """
        live = {id(layer) for layer in layers}
        recipe = Recipe()
        made_by_steps: dict[int, str] = {}
        for step in self.steps:
            if not all(id(layer) in live for group in step.outputs.values() for layer in group):
                continue
            sources = step.sources
            image_shape = np.shape(step.inputs["image"])[:2] if "image" in step.inputs else None
            recorded_inputs = {}
            for name, value in step.inputs.items():
                source = sources.get(name)
                if name == "rect":
                    recorded_inputs[name] = RectInput.from_pixels(value, image_shape)
                elif name == "points":
                    recorded_inputs[name] = PointsInput.from_pixels(value, image_shape)
                elif source is not None and source is base:
                    recorded_inputs[name] = LayerInput()
                elif source is not None and id(source) in made_by_steps and pixel_digest(value) == self._digests.get(source):
                    recorded_inputs[name] = LayerInput(made_by_steps[id(source)])
                else:
                    recorded_inputs[name] = ArrayInput(np.array(value, copy=True))
            outputs = {}
            for kind, group in step.outputs.items():
                # Probabilities arrive as one layer per class; the recipe keeps the array.
                name = group[0].name if len(group) == 1 else f"{group[0].metadata.get('operator', kind)} {kind}"
                outputs[kind] = name
                for layer in group:
                    made_by_steps[id(layer)] = name
            recipe.add_step(step.operator, step.params, recorded_inputs, outputs)
        return recipe

