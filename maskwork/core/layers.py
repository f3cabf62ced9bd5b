"""Layers and the layer stack: plain Python objects that announce their changes.

The Qt side (canvas items, the layer list model) never owns state; it listens to the
signals declared here, so the same document works headless in tests and the command line.
"""

from __future__ import annotations

import threading
import weakref
from enum import Enum
from typing import Callable, Iterable, Iterator

import numpy as np
from psygnal import Signal

Bounds = tuple[slice, slice]
"""A (rows, cols) pair of slices: the region of a layer that changed."""


class LayerKind(str, Enum):
    """What a layer holds, which decides how it is drawn and what operators accept."""

    IMAGE = "image"
    LABELS = "labels"
    MARKERS = "markers"
    MASK = "mask"
    PREVIEW = "preview"


#: dtype each kind stores; images keep whatever they were read as.
KIND_DTYPES = {
    LayerKind.LABELS: np.uint16,
    LayerKind.MARKERS: np.uint8,
    LayerKind.MASK: np.uint8,
}

#: Properties a layer announces through ``property_changed`` and that history can undo.
LAYER_PROPERTIES = ("name", "visible", "opacity", "blend", "colormap", "contrast_limits")
#: How a layer's colours combine with those drawn below it (the canvas maps each to a
#: QPainter composition mode): over them, added (overlays of fluorescence channels),
#: multiplied (darkens: a shading map), screened (lightens), their difference (a moved
#: copy against its original), the lighter or the darker of the two.
BLEND_MODES = ("normal", "additive", "multiply", "screen", "difference", "lighten", "darken")

# Arrays another thread is reading (a project being written), by id: a weak reference
# to the array (an id is reused once its array is freed) and the number of readers.
_lent_arrays: dict[int, list] = {}
_lent_lock = threading.Lock()


def lend_arrays(arrays: Iterable[np.ndarray]) -> Callable[[], None]:
    """Let another thread read ``arrays`` while layers go on changing.

    Until the returned function is called, :meth:`Layer.write` into one of these arrays
    first gives its layer a copy to write into, so the reader never sees the pixels
    change. Lending costs nothing; a copy is made only when a lent array is painted
    into, once. A project save lends the paintable layers instead of copying them all
    on the UI thread (60 ms at 12 MP).

    Returns
    -------
    callable
        Gives the arrays back (any thread; calling it again does nothing).
    """
    keys = []
    with _lent_lock:
        for array in arrays:
            entry = _lent_arrays.get(id(array))
            if entry is None or entry[0]() is not array:
                entry = _lent_arrays[id(array)] = [weakref.ref(array), 0]
            entry[1] += 1
            keys.append(id(array))

    def give_back() -> None:
        with _lent_lock:
            for key in keys:
                entry = _lent_arrays.get(key)
                if entry is not None:
                    entry[1] -= 1
                    if entry[1] <= 0:
                        del _lent_arrays[key]
            keys.clear()

    return give_back


def is_lent(array: np.ndarray) -> bool:
    """Whether another thread reads ``array`` (see :func:`lend_arrays`)."""
    with _lent_lock:
        entry = _lent_arrays.get(id(array))
        return entry is not None and entry[0]() is array


class Layer:
    """One named raster in the document.

    Parameters
    ----------
    data : ndarray
        (row, col) or (row, col, channel) array. Labels, markers and masks are converted
        to their kind's integer dtype; images are kept as they are.
    kind : LayerKind or str
        Image, labels, markers, mask or preview.
    name : str
        Shown in the layer panel.
    visible : bool
        Whether the canvas draws it.
    opacity : float
        0 (transparent) to 1 (opaque).
    blend : str
        One of :data:`BLEND_MODES`: how its colours combine with the layers below.
    colormap : str
        For single-channel images: ``"gray"``, ``"viridis"``, ...; ignored for labels-like
        kinds, which always draw through the label colour table.
    contrast_limits : tuple of float, optional
        Display range for images; computed from percentiles when omitted, the first time
        it is read (labels, masks and previews draw through colour tables and never
        need it, and a 12 MP percentile costs a frame).
    metadata : dict, optional
        Free-form provenance (source file, operator that made it, ...).
    """

    data_changed = Signal(object)
    """Emitted with the changed :data:`Bounds`, or ``None`` when the whole array changed."""
    property_changed = Signal(str)
    """Emitted with the name of a display property after it changed."""

    def __init__(
        self,
        data: np.ndarray,
        kind: LayerKind | str = LayerKind.IMAGE,
        name: str = "layer",
        *,
        visible: bool = True,
        opacity: float = 1.0,
        blend: str = "normal",
        colormap: str = "gray",
        contrast_limits: tuple[float, float] | None = None,
        metadata: dict | None = None,
    ) -> None:
        self.kind = LayerKind(kind)
        self._data = self._coerce(np.asarray(data))
        self._revision = 0
        self._name = str(name)
        self._visible = bool(visible)
        self._opacity = float(np.clip(opacity, 0.0, 1.0))
        self._blend = _checked_blend(blend)
        self._colormap = str(colormap)
        self._contrast_limits = tuple(float(v) for v in contrast_limits) if contrast_limits is not None else None
        self.metadata = dict(metadata or {})

    def _coerce(self, data: np.ndarray) -> np.ndarray:
        if data.ndim not in (2, 3):
            raise ValueError(f"a layer needs a 2D or 2D+channel array, got shape {data.shape}")
        dtype = KIND_DTYPES.get(self.kind)
        if dtype is not None:
            if data.ndim != 2:
                raise ValueError(f"a {self.kind.value} layer must be single-channel")
            data = data.astype(dtype, copy=False)
        return data

    # -- data -------------------------------------------------------------------------
    @property
    def data(self) -> np.ndarray:
        """The pixel array. Mutate in place only through :meth:`write` so viewers hear it."""
        return self._data

    @data.setter
    def data(self, value: np.ndarray) -> None:
        self.replace_data(value)

    def replace_data(self, value: np.ndarray, changed: Bounds | None = None) -> None:
        """Take ``value`` as the pixel array, without copying it.

        Parameters
        ----------
        value : ndarray
            The new pixels; coerced to the kind's dtype as in the constructor.
        changed : Bounds, optional
            The only region where ``value`` differs from the old array, when the caller
            knows it (a new partial result of the same box): viewers re-draw just that.
            None announces a whole new array.
        """
        self._data = self._coerce(np.asarray(value))
        self._revision += 1
        self.data_changed.emit(changed)

    @property
    def revision(self) -> int:
        """A number that grows with every change of the pixels: what was worked out from
        them at one revision (in another thread, say) still holds while it is the same."""
        return self._revision

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, cols) of the layer."""
        return self._data.shape[:2]

    def write(self, bounds: Bounds, values: np.ndarray) -> None:
        """Overwrite ``data[bounds]`` with ``values`` and announce the region.

        When the array is lent to a reader in another thread (:func:`lend_arrays`), the
        layer first takes a copy of it to write into.
        """
        if is_lent(self._data):
            self._data = self._data.copy()
        self._data[bounds] = values
        self._revision += 1
        self.data_changed.emit(bounds)

    # -- display properties -----------------------------------------------------------
    def _set(self, attr: str, value) -> None:
        if getattr(self, "_" + attr) != value:
            setattr(self, "_" + attr, value)
            self.property_changed.emit(attr)

    @property
    def name(self) -> str:
        """Name shown in the layer panel."""
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        self._set("name", str(value))

    @property
    def visible(self) -> bool:
        """Whether the canvas draws the layer."""
        return self._visible

    @visible.setter
    def visible(self, value: bool) -> None:
        self._set("visible", bool(value))

    @property
    def opacity(self) -> float:
        """Opacity between 0 and 1."""
        return self._opacity

    @opacity.setter
    def opacity(self, value: float) -> None:
        self._set("opacity", float(np.clip(value, 0.0, 1.0)))

    @property
    def blend(self) -> str:
        """How the layer's colours combine with those below (:data:`BLEND_MODES`)."""
        return self._blend

    @blend.setter
    def blend(self, value: str) -> None:
        self._set("blend", _checked_blend(value))

    @property
    def colormap(self) -> str:
        """Colour map name for single-channel images."""
        return self._colormap

    @colormap.setter
    def colormap(self, value: str) -> None:
        self._set("colormap", str(value))

    @property
    def contrast_limits(self) -> tuple[float, float]:
        """(low, high) display range of an image layer."""
        if self._contrast_limits is None:
            self._contrast_limits = auto_contrast_limits(self._data)
        return self._contrast_limits

    @contrast_limits.setter
    def contrast_limits(self, value: tuple[float, float]) -> None:
        low, high = (float(v) for v in value)
        self._set("contrast_limits", (low, high))

    @property
    def is_labels_like(self) -> bool:
        """True for kinds drawn through the label colour table."""
        return self.kind in (LayerKind.LABELS, LayerKind.MARKERS, LayerKind.MASK, LayerKind.PREVIEW)

    def copy(self, name: str | None = None) -> "Layer":
        """A deep copy with the same display properties."""
        return Layer(
            self._data.copy(),
            self.kind,
            name if name is not None else f"{self._name} copy",
            visible=self._visible,
            opacity=self._opacity,
            blend=self._blend,
            colormap=self._colormap,
            contrast_limits=self.contrast_limits,
            metadata=dict(self.metadata),
        )

    def __repr__(self) -> str:
        return f"Layer({self._name!r}, {self.kind.value}, shape={self._data.shape}, dtype={self._data.dtype})"


def _checked_blend(mode: str) -> str:
    if mode not in BLEND_MODES:
        raise ValueError(f"unknown blend mode {mode!r}; use one of {', '.join(BLEND_MODES)}")
    return mode


def auto_contrast_limits(data: np.ndarray, low: float = 0.5, high: float = 99.5) -> tuple[float, float]:
    """Display range from percentiles of a strided sample (fast on 8k x 8k images).

    uint8 images keep the full 0..255 range so photos look as they are; 16-bit and float
    images (microscopy, medical) use the percentiles, which is what makes them visible.
    """
    if data.dtype == np.uint8 or data.dtype == bool:
        return (0.0, 255.0) if data.dtype == np.uint8 else (0.0, 1.0)
    step = max(1, int(np.sqrt(data.shape[0] * data.shape[1] / 250_000)))
    sample = data[::step, ::step]
    sample = sample[np.isfinite(sample)] if np.issubdtype(sample.dtype, np.floating) else sample.ravel()
    if sample.size == 0:
        return (0.0, 1.0)
    lo, hi = np.percentile(sample, [low, high])
    if hi <= lo:
        lo, hi = float(sample.min()), float(sample.max())
        if hi <= lo:
            hi = lo + 1.0
    return (float(lo), float(hi))


class LayerStack:
    """Ordered layers, bottom first, with a selected (active) layer.

    Signals carry the index and layer so adapters (the Qt list model, the canvas) can
    update one row or one item instead of rebuilding.
    """

    inserted = Signal(int, object)
    removed = Signal(int, object)
    moved = Signal(int, int)
    selection_changed = Signal(object)

    def __init__(self) -> None:
        self._layers: list[Layer] = []
        self._selected: Layer | None = None

    def __len__(self) -> int:
        return len(self._layers)

    def __iter__(self) -> Iterator[Layer]:
        return iter(list(self._layers))

    def __getitem__(self, index: int) -> Layer:
        return self._layers[index]

    def __contains__(self, layer: object) -> bool:
        return any(layer is item for item in self._layers)

    def index(self, layer: Layer) -> int:
        """Position of ``layer`` (identity, not equality)."""
        for i, item in enumerate(self._layers):
            if item is layer:
                return i
        raise ValueError(f"{layer!r} is not in the stack")

    def insert(self, index: int, layer: Layer) -> None:
        """Insert ``layer`` at ``index`` (0 = bottom) and select it."""
        index = max(0, min(index, len(self._layers)))
        self._layers.insert(index, layer)
        self.inserted.emit(index, layer)
        self.selected = layer

    def append(self, layer: Layer) -> None:
        """Add ``layer`` on top and select it."""
        self.insert(len(self._layers), layer)

    def remove(self, layer: Layer) -> int:
        """Remove ``layer``; returns the index it had."""
        index = self.index(layer)
        del self._layers[index]
        if self._selected is layer:
            self._selected = None
            self.selection_changed.emit(None)
        self.removed.emit(index, layer)
        if self._selected is None and self._layers:
            self.selected = self._layers[min(index, len(self._layers) - 1)]
        return index

    def move(self, source: int, destination: int) -> None:
        """Move the layer at ``source`` so it ends up at index ``destination``."""
        destination = max(0, min(destination, len(self._layers) - 1))
        if source == destination:
            return
        layer = self._layers.pop(source)
        self._layers.insert(destination, layer)
        self.moved.emit(source, destination)

    @property
    def selected(self) -> Layer | None:
        """The active layer: the one tools draw on."""
        return self._selected

    @selected.setter
    def selected(self, layer: Layer | None) -> None:
        if layer is not None and layer not in self:
            raise ValueError(f"{layer!r} is not in the stack")
        if layer is not self._selected:
            self._selected = layer
            self.selection_changed.emit(layer)

    def of_kind(self, *kinds: LayerKind | str) -> list[Layer]:
        """Layers of the given kinds, bottom first."""
        wanted = {LayerKind(k) for k in kinds}
        return [layer for layer in self._layers if layer.kind in wanted]

    def by_name(self, name: str) -> Layer | None:
        """The topmost layer called ``name``, if any."""
        for layer in reversed(self._layers):
            if layer.name == name:
                return layer
        return None

    def unique_name(self, base: str, ignoring: Layer | None = None) -> str:
        """``base``, or ``base 2``, ``base 3``... whichever no layer but ``ignoring`` has."""
        names = {layer.name for layer in self._layers if layer is not ignoring}
        if base not in names:
            return base
        n = 2
        while f"{base} {n}" in names:
            n += 1
        return f"{base} {n}"
