"""Draws one :class:`~maskwork.core.layers.Layer` on a pyqtgraph view, tile by tile.

A layer is cut into square tiles, each its own ImageItem. A brush stroke on an 8k x 8k
layer then re-renders the one or two 512-pixel tiles it touched instead of re-uploading
64 megapixels per mouse move, and contrast changes re-render only what changed.
"""

from __future__ import annotations

import functools

import numpy as np
import pyqtgraph as pg

from maskwork.core.colors import label_colors
from maskwork.core.layers import Bounds, Layer, LayerKind

#: Tile edge of layers that are painted on: a stroke re-renders only the tiles it touched.
PAINT_TILE = 512
#: Tile edge of image layers, which are never painted: fewer items make every repaint cheaper.
IMAGE_TILE = 2048

#: Colour of a mask layer's nonzero pixels; distinct from the green/red scribbles.
MASK_RGBA = (0, 170, 255, 255)
#: Colour of the transient operator preview.
PREVIEW_RGBA = (255, 0, 200, 255)


@functools.lru_cache(maxsize=None)
def _indexed_lut(kind: LayerKind) -> np.ndarray:
    """256-entry RGBA table for uint8 labels-like layers (built once per kind)."""
    if kind is LayerKind.MASK:
        table = np.zeros((256, 4), np.uint8)
        table[1:] = MASK_RGBA
        return table
    if kind is LayerKind.PREVIEW:
        table = np.zeros((256, 4), np.uint8)
        table[1:] = PREVIEW_RGBA
        return table
    return label_colors(256)


class LayerView:
    """Adapter from a layer to tiled ImageItems inside ``view``.

    Parameters
    ----------
    layer : Layer
        The layer to draw; the view follows its ``data_changed`` and ``property_changed``.
    view : pyqtgraph.ViewBox
        Where the tiles are added.
    """

    def __init__(self, layer: Layer, view: pg.ViewBox) -> None:
        self.layer = layer
        self._view = view
        self._tiles: dict[tuple[int, int], pg.ImageItem] = {}
        self._tile = IMAGE_TILE if layer.kind is LayerKind.IMAGE else PAINT_TILE
        self._z = 0
        self._label_table: np.ndarray | None = None
        self._build()
        layer.data_changed.connect(self._on_data_changed)
        layer.property_changed.connect(self._on_property_changed)

    # -- lifecycle --------------------------------------------------------------------
    def close(self) -> None:
        """Remove the tiles from the view and stop listening to the layer."""
        self.layer.data_changed.disconnect(self._on_data_changed)
        self.layer.property_changed.disconnect(self._on_property_changed)
        self._clear()

    def _clear(self) -> None:
        for item in self._tiles.values():
            self._view.removeItem(item)
        self._tiles.clear()

    def _build(self) -> None:
        self._clear()
        rows, cols = self.layer.shape
        for r0 in range(0, rows, self._tile):
            for c0 in range(0, cols, self._tile):
                item = pg.ImageItem(axisOrder="row-major")
                item.setPos(c0, r0)
                # Nearest-neighbour magnification is what an image editor shows at high zoom.
                item.setAutoDownsample(False)
                self._view.addItem(item)
                self._tiles[(r0, c0)] = item
        self._label_table = None
        self.set_z(self._z)
        self._apply_display()
        self._render_tiles(None)

    # -- properties -------------------------------------------------------------------
    def set_z(self, z: float) -> None:
        """Stack position on the canvas (higher is drawn on top)."""
        self._z = z
        for item in self._tiles.values():
            item.setZValue(z)

    def _apply_display(self) -> None:
        layer = self.layer
        for item in self._tiles.values():
            item.setVisible(layer.visible)
            item.setOpacity(layer.opacity)

    def _on_property_changed(self, name: str) -> None:
        if name in ("visible", "opacity"):
            self._apply_display()
        elif name in ("colormap", "contrast_limits") and not self.layer.is_labels_like:
            self._render_tiles(None)

    def _on_data_changed(self, bounds: Bounds | None) -> None:
        if bounds is None:
            first = next(iter(self._tiles.values()), None)
            expected = len(range(0, self.layer.shape[0], self._tile)) * len(range(0, self.layer.shape[1], self._tile))
            if first is None or len(self._tiles) != expected or self._tile_shape_changed():
                self._build()
                return
        self._render_tiles(bounds)

    def _tile_shape_changed(self) -> bool:
        item = self._tiles.get((0, 0))
        if item is None or item.image is None:
            return True
        expected = self.layer.data[: self._tile, : self._tile]
        return item.image.shape[:2] != expected.shape[:2] or (item.image.ndim == 3) != (expected.ndim == 3)

    # -- rendering --------------------------------------------------------------------
    def _render_tiles(self, bounds: Bounds | None) -> None:
        rows, cols = self.layer.shape
        if bounds is None:
            r_start, r_stop, c_start, c_stop = 0, rows, 0, cols
        else:
            r_start, r_stop = bounds[0].start or 0, bounds[0].stop if bounds[0].stop is not None else rows
            c_start, c_stop = bounds[1].start or 0, bounds[1].stop if bounds[1].stop is not None else cols
        tile = self._tile
        for r0 in range(r_start // tile * tile, r_stop, tile):
            for c0 in range(c_start // tile * tile, c_stop, tile):
                item = self._tiles.get((r0, c0))
                if item is not None:
                    self._render_tile(item, self.layer.data[r0 : r0 + tile, c0 : c0 + tile])

    def _render_tile(self, item: pg.ImageItem, tile: np.ndarray) -> None:
        layer = self.layer
        if layer.is_labels_like:
            if tile.dtype == np.uint8:
                item.setImage(tile, autoLevels=False, levels=(0, 255), lut=_indexed_lut(layer.kind))
            else:
                item.setImage(self._colorize(tile), autoLevels=False, levels=(0, 255))
            return
        levels = layer.contrast_limits
        if tile.ndim == 3:
            data = tile if tile.shape[2] in (3, 4) else tile[..., 0]
            if data.ndim == 3:
                item.setImage(data, autoLevels=False, levels=levels, lut=None)
                return
            tile = data
        item.setImage(tile, autoLevels=False, levels=levels, lut=self._colormap_lut())

    def _colormap_lut(self) -> np.ndarray | None:
        if self.layer.colormap == "gray":
            return None
        try:
            return pg.colormap.get(self.layer.colormap).getLookupTable(nPts=256, alpha=False)
        except (FileNotFoundError, KeyError, ValueError):
            return None

    def _colorize(self, tile: np.ndarray) -> np.ndarray:
        top = int(tile.max()) + 1
        if self._label_table is None or len(self._label_table) < top:
            self._label_table = label_colors(max(top, 256))
        return self._label_table[tile]
