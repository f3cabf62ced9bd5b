"""The document: a layer stack plus its history, and every edit a person can undo.

The window, the command line and tests change layers only through these methods, which is
what guarantees that each change lands in history exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from psygnal import Signal

from maskwork.core.colors import MASK_COLORS, mask_color_name
from maskwork.core.history import (
    AttributeAtom,
    History,
    InsertAtom,
    MoveAtom,
    PropertyAtom,
    RemoveAtom,
)
from maskwork.core.layers import LAYER_PROPERTIES, Bounds, Layer, LayerKind, LayerStack
from maskwork.core.tools import Patch

#: Longest layer name kept (a pasted paragraph made every layer chooser and undo step a
#: screen wide).
MAX_LAYER_NAME = 120


class Document:
    """Layers and undo history of one editing session.

    Parameters
    ----------
    history : History, optional
        Defaults to a history bounded at 200 steps and 1 GiB.
    """

    seeds_changed = Signal()
    """Emitted when the box or the point prompts change (including by undo)."""

    def __init__(self, history: History | None = None) -> None:
        self.layers = LayerStack()
        self.history = history or History()
        self._rect: tuple[int, int, int, int] | None = None
        self._points: tuple[tuple[float, float, int], ...] = ()

    def reset(self) -> None:
        """Remove every layer and seed and forget the history (closing the document)."""
        for layer in list(self.layers):
            self.layers.remove(layer)
        self._rect, self._points = None, ()
        self.seeds_changed.emit()
        self.history.clear()

    # -- seeds that are not pixels ----------------------------------------------------
    @property
    def rect(self) -> tuple[int, int, int, int] | None:
        """The box seed as (x, y, width, height) in pixels, or None."""
        return self._rect

    @rect.setter
    def rect(self, value) -> None:
        self._rect = tuple(int(v) for v in value) if value is not None else None
        self.seeds_changed.emit()

    @property
    def points(self) -> tuple[tuple[float, float, int], ...]:
        """Point prompts as (row, col, label): label 1 positive, 0 negative."""
        return self._points

    @points.setter
    def points(self, value) -> None:
        self._points = tuple((float(r), float(c), int(label)) for r, c, label in value)
        self.seeds_changed.emit()

    def set_rect(self, rect: tuple[int, int, int, int] | None) -> None:
        """Set the box seed (clipped to the image) as an undoable step; None clears it."""
        if rect is not None and self.shape is not None:
            x, y, w, h = (int(round(v)) for v in rect)
            rows, cols = self.shape
            x0, y0 = max(0, min(x, x + w)), max(0, min(y, y + h))
            x1, y1 = min(cols, max(x, x + w)), min(rows, max(y, y + h))
            rect = (x0, y0, x1 - x0, y1 - y0) if x1 > x0 and y1 > y0 else None
        if rect == self._rect:
            return
        self.history.record(AttributeAtom(self, "rect", self._rect), "Box" if rect else "Clear box")
        self.rect = rect

    def add_point(self, row: float, col: float, label: int, step: str | None = None) -> None:
        """Add a point (prompt: label 1 positive, 0 negative; landmark: +k fixed, -k moving)."""
        step = step or ("Positive point" if label else "Negative point")
        self.history.record(AttributeAtom(self, "points", self._points), step)
        self.points = self._points + ((row, col, label),)

    def remove_last_point(self) -> bool:
        """Remove the newest point prompt as an undoable step; False when there is none."""
        if not self._points:
            return False
        self.history.record(AttributeAtom(self, "points", self._points), "Remove last click")
        self.points = self._points[:-1]
        return True

    def clear_seeds(self, used: tuple[tuple | None, Sequence] | None = None) -> None:
        """Remove the box and the point prompts in one undoable step.

        Parameters
        ----------
        used : (rect, points), optional
            Only these: the box if it is ``rect``, and the points as far as they begin
            with ``points`` (the prompts a run took; those added while it ran stay, as
            the first of the next object). None removes all.
        """
        rect, points = (self._rect, self._points) if used is None else used
        kept_rect = None if rect == self._rect else self._rect
        taken = [(float(r), float(c), int(label)) for r, c, label in points]
        common = 0
        while common < min(len(taken), len(self._points)) and self._points[common] == taken[common]:
            common += 1
        kept_points = self._points[common:]
        if (kept_rect, kept_points) == (self._rect, self._points):
            return
        with self.history.group("Clear box and points"):
            if kept_rect != self._rect:
                self.history.record(AttributeAtom(self, "rect", self._rect))
            if kept_points != self._points:
                self.history.record(AttributeAtom(self, "points", self._points))
            self._rect, self._points = kept_rect, kept_points
        self.seeds_changed.emit()

    # -- queries ----------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int] | None:
        """(rows, cols) of the bottom image, which every seed layer must match."""
        image = self.base_image
        return image.shape if image is not None else None

    @property
    def base_image(self) -> Layer | None:
        """The image operators run on: the selected image layer, else the bottom one."""
        selected = self.layers.selected
        if selected is not None and selected.kind is LayerKind.IMAGE:
            return selected
        images = self.layers.of_kind(LayerKind.IMAGE)
        return images[0] if images else None

    @property
    def visible_image(self) -> Layer | None:
        """The image a person sees: the topmost visible, opaque, normally blended image
        layer of the document's :attr:`shape`, or None when there is none.

        After an operator that makes an image (Inpaint, Denoise) its result lies on top of
        the opened image, and :attr:`base_image` is the bottom one unless an image layer is
        selected; an image of another size (a registration's moving image) is not drawn
        over this one's pixels.
        """
        shape = self.shape
        for layer in reversed(self.layers.of_kind(LayerKind.IMAGE)):
            # A translucent or blended layer shows a mix of itself and those below that
            # no one layer holds: the first one drawn as it is counts.
            if layer.visible and layer.shape == shape and layer.opacity == 1.0 and layer.blend == "normal":
                return layer
        return None

    # -- layer edits ------------------------------------------------------------------
    def add_layer(self, layer: Layer, index: int | None = None, step: str | None = None) -> Layer:
        """Insert ``layer`` (on top by default) as an undoable step and select it."""
        if self.shape is not None and layer.kind is not LayerKind.IMAGE and layer.shape != self.shape:
            raise ValueError(
                f"layer {layer.name!r} is {layer.shape[0]}x{layer.shape[1]} but the image is "
                f"{self.shape[0]}x{self.shape[1]}"
            )
        if layer.kind is LayerKind.MASK and layer.colormap not in MASK_COLORS:
            layer.colormap = self._unused_mask_color()
        index = len(self.layers) if index is None else index
        self.layers.insert(index, layer)
        self.history.record(InsertAtom(self.layers, self.layers.index(layer), layer), step or f"Add {layer.name}")
        return layer

    def _unused_mask_color(self) -> str:
        """The first mask colour no mask layer has (they repeat when all are taken)."""
        taken = [mask_color_name(mask.colormap) for mask in self.layers.of_kind(LayerKind.MASK)]
        return min(MASK_COLORS, key=lambda color: (taken.count(color), list(MASK_COLORS).index(color)))

    def new_layer(self, kind: LayerKind | str, name: str | None = None) -> Layer:
        """Add an empty markers, mask or labels layer the size of the image."""
        kind = LayerKind(kind)
        if self.shape is None:
            raise ValueError("open an image first")
        name = self.layers.unique_name(name or kind.value)
        return self.add_layer(Layer(np.zeros(self.shape, np.uint8), kind, name), step=f"New {kind.value} layer")

    def remove_layer(self, layer: Layer) -> None:
        """Delete ``layer`` as an undoable step."""
        index = self.layers.remove(layer)
        self.history.record(RemoveAtom(self.layers, index, layer), f"Delete {layer.name}")

    def move_layer(self, source: int, destination: int) -> None:
        """Reorder: the layer at ``source`` ends up at ``destination``."""
        destination = max(0, min(destination, len(self.layers) - 1))
        if source == destination:
            return
        self.layers.move(source, destination)
        self.history.record(MoveAtom(self.layers, source, destination), f"Move {self.layers[destination].name}")

    def duplicate_layer(self, layer: Layer) -> Layer:
        """Add a copy of ``layer`` just above it."""
        copy = layer.copy(self.layers.unique_name(f"{layer.name} copy"))
        if copy.kind is LayerKind.MASK:
            copy.colormap = self._unused_mask_color()  # told apart from the original
        return self.add_layer(copy, self.layers.index(layer) + 1, step=f"Duplicate {layer.name}")

    def set_property(self, layer: Layer, attr: str, value) -> None:
        """Change a display property (name, visible, opacity, ...) as an undoable step."""
        if attr not in LAYER_PROPERTIES:
            raise ValueError(f"unknown layer property {attr!r}")
        step = _property_step(layer, attr, value)  # named while the layer has its old name
        if attr == "name":
            # Names tell layers apart in every layer chooser: a taken one gets a number.
            name = str(value).strip()[:MAX_LAYER_NAME].strip()
            if not name:
                raise ValueError("a layer needs a name")
            value = self.layers.unique_name(name, ignoring=layer)
        old = getattr(layer, attr)
        setattr(layer, attr, value)
        if getattr(layer, attr) != old:
            self.history.record(PropertyAtom(layer, attr, old), step)

    def convert_layer(self, layer: Layer, kind: LayerKind | str) -> Layer:
        """Replace a mask by connected-component labels, or labels by a mask (nonzero).

        Returns the new layer, which takes the old one's place in the stack.
        """
        kind = LayerKind(kind)
        if layer.kind is LayerKind.MASK and kind is LayerKind.LABELS:
            count, data = cv2.connectedComponents((layer.data > 0).astype(np.uint8), connectivity=8, ltype=cv2.CV_32S)
            count -= 1  # label 0 is the background
            if count > np.iinfo(np.uint16).max:
                raise ValueError(f"{count} objects do not fit a 16-bit labels layer")
        elif layer.kind is LayerKind.LABELS and kind is LayerKind.MASK:
            data = layer.data > 0
        else:
            raise ValueError(f"cannot convert a {layer.kind.value} layer to {kind.value}")
        converted = Layer(data, kind, layer.name, opacity=layer.opacity, visible=layer.visible, metadata=layer.metadata)
        with self.history.group(f"Convert {layer.name} to {kind.value}"):
            index = self.layers.index(layer)
            self.remove_layer(layer)
            self.add_layer(converted, index)
        return converted

    # -- pixel edits ------------------------------------------------------------------
    def apply_patch(self, layer: Layer, patch: Patch | None, step: str = "Paint") -> None:
        """Write a tool's patch into ``layer``, recording only the changed box for undo."""
        if patch is None:
            return
        self.write(layer, patch.bounds, patch.values, step)

    def write(self, layer: Layer, bounds: Bounds, values: np.ndarray, step: str = "Edit") -> None:
        """Overwrite ``layer.data[bounds]``; the undo atom keeps the old values there."""
        rows, cols = layer.shape
        bounds = (slice(*bounds[0].indices(rows)[:2]), slice(*bounds[1].indices(cols)[:2]))
        old = layer.data[bounds]
        changed = old != values
        if changed.ndim == 3:
            changed = changed.any(axis=2)
        if not changed.any():
            return
        # Shrink to the box of pixels that really change: a stroke that repaints
        # already-painted pixels must not cost history memory.
        rows = np.flatnonzero(changed.any(axis=1))
        cols = np.flatnonzero(changed.any(axis=0))
        inner = slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)
        bounds = (
            slice(bounds[0].start + inner[0].start, bounds[0].start + inner[0].stop),
            slice(bounds[1].start + inner[1].start, bounds[1].start + inner[1].stop),
        )
        self.history.record_pixels(layer, bounds, step)
        layer.write(bounds, values[inner])


def _property_step(layer: Layer, attr: str, value) -> str:
    """The history's name for changing ``layer``'s ``attr`` to ``value``."""
    if attr == "visible":
        return f"{'Show' if value else 'Hide'} {layer.name}"
    if attr == "name":
        return f"Rename {layer.name}"
    if attr == "colormap" and layer.kind is LayerKind.MASK:
        return f"Colour of {layer.name}"
    return f"{attr.replace('_', ' ').capitalize()} of {layer.name}"
