"""Draws one :class:`~maskwork.core.layers.Layer` on a pyqtgraph view, tile by tile, at the
detail the zoom can show.

A layer is cut into square tiles, each its own ImageItem, made only when the view shows
it. Zoomed out so far that several image pixels share a screen pixel, the tiles hold a
strided copy of the layer (every ``s``-th pixel, ``s`` the largest power of two that is
not more than the image pixels per device pixel): a 12 MP preview at "fit" zoom is then
four small tiles to render and draw, not 48 full-resolution ones that QPainter shrinks at
every paint. The canvas draws without smooth scaling, so QPainter's own shrinking also
picks one pixel out of each ``s`` x ``s`` block and the strided copy looks the same.
Edits re-sample and re-render only the tiles their bounds touch, so a brush stroke on an
8k x 8k layer re-renders one or two tiles at any zoom.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pyqtgraph as pg
from PySide6.QtGui import QImage, QPainter, QTransform

from maskwork.core.colors import label_colors, mask_color
from maskwork.core.layers import Bounds, Layer, LayerKind

#: Tile edge in the pixels of its own level (a tile at stride 4 covers 2048 image pixels).
TILE = 512
#: The QPainter composition mode of each layer blend mode (core.layers.BLEND_MODES).
COMPOSITION_MODES = {
    "normal": QPainter.CompositionMode.CompositionMode_SourceOver,
    "additive": QPainter.CompositionMode.CompositionMode_Plus,
    "multiply": QPainter.CompositionMode.CompositionMode_Multiply,
    "screen": QPainter.CompositionMode.CompositionMode_Screen,
    "difference": QPainter.CompositionMode.CompositionMode_Difference,
    "lighten": QPainter.CompositionMode.CompositionMode_Lighten,
    "darken": QPainter.CompositionMode.CompositionMode_Darken,
}

#: Hidden ImageItems a view keeps for the next tiles. Making an ImageItem and adding it to
#: the scene costs about 0.5 ms of the UI thread each (pyqtgraph's item-change hooks); an
#: Apply closes the preview's four tiles and opens four for the new layer in one frame,
#: so the new ones reuse the old.
SPARE_ITEMS_KEPT = 64

#: Colour of the transient operator preview.
PREVIEW_RGBA = (255, 0, 200, 255)


#: Colormap of a labels layer whose class 2 is the scribbles' background: drawn clear, so
#: that a two-class result tints the object instead of washing the photo in red.
LABELS_OBJECT_ONLY = "labels: object only"
#: The scribble convention's background class (see maskwork.core.colors).
BACKGROUND_LABEL = 2


def label_table(layer: Layer) -> np.ndarray:
    """The 256-entry RGBA table a labels, markers, mask or preview layer draws through."""
    if layer.kind is LayerKind.MASK:
        return _mask_lut(mask_color(layer.colormap))
    return _indexed_lut(layer.kind, layer.kind is LayerKind.LABELS and layer.colormap == LABELS_OBJECT_ONLY)


@functools.lru_cache(maxsize=None)
def _mask_lut(rgb: tuple[int, int, int]) -> np.ndarray:
    """256-entry RGBA table of a mask drawn in ``rgb`` (built once per colour)."""
    table = np.zeros((256, 4), np.uint8)
    table[1:] = (*rgb, 255)
    return table


@functools.lru_cache(maxsize=None)
def _indexed_lut(kind: LayerKind, background_clear: bool = False) -> np.ndarray:
    """256-entry RGBA table for uint8 labels-like layers (built once per kind)."""
    if kind is LayerKind.PREVIEW:
        table = np.zeros((256, 4), np.uint8)
        table[1:] = PREVIEW_RGBA
        return table
    table = label_colors(256)
    if background_clear:
        table[BACKGROUND_LABEL, 3] = 0
    return table


@functools.lru_cache(maxsize=None)
def _colormap_lut(name: str) -> np.ndarray | None:
    """256-entry RGB table of a pyqtgraph colour map; None for gray or an unknown name."""
    if name == "gray":
        return None
    try:
        return pg.colormap.get(name).getLookupTable(nPts=256, alpha=False)
    except (FileNotFoundError, KeyError, ValueError):
        return None


class _TileItem(pg.ImageItem):
    """An image item that can keep its rendered picture in the format Qt draws fastest.

    pyqtgraph renders RGB tiles as RGB888, gray ones as Grayscale8, and tiles drawn
    through a colour table (masks, labels, scribbles, colour maps, gray with contrast
    limits) as Indexed8; Qt's raster engine converts those at every draw. With
    ``fast_format`` set, the picture is converted once after rendering, to RGB32 or, where
    it has alpha, premultiplied ARGB32: a 512 x 512 tile drawn at 367 pixels takes 0.08
    instead of 0.40 ms (RGB888) and 0.19 instead of 0.65 ms (Indexed8), the conversion
    0.12-0.17 ms once, and every repaint draws every visible tile of every layer.

    The price is memory, up to 4 bytes a pixel where an 8-bit layer's tile took 1, so
    :class:`LayerView` sets it only on strided tiles (zoomed out): those of one layer
    hold at most a quarter of its pixels. Full-resolution tiles of every place panned
    over are kept, and stay in pyqtgraph's formats.
    """

    fast_format = False

    def render(self, *args, **kwargs) -> None:
        super().render(*args, **kwargs)
        picture = self.qimage
        if picture is None or not self.fast_format:
            return
        opaque = picture.format() in _OPAQUE_FORMATS or (
            picture.format() == QImage.Format.Format_Indexed8 and not picture.hasAlphaChannel())
        if opaque:
            self.qimage = picture.convertToFormat(QImage.Format.Format_RGB32)
        elif picture.format() in _TRANSLUCENT_FORMATS:
            self.qimage = picture.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)


_OPAQUE_FORMATS = frozenset((QImage.Format.Format_RGB888, QImage.Format.Format_Grayscale8))
_TRANSLUCENT_FORMATS = frozenset((QImage.Format.Format_Indexed8, QImage.Format.Format_ARGB32, QImage.Format.Format_RGBA8888))


def _spare_items(view: pg.ViewBox) -> list[pg.ImageItem]:
    """The hidden ImageItems ``view`` keeps for reuse (see :data:`SPARE_ITEMS_KEPT`)."""
    spare = getattr(view, "_maskwork_spare_items", None)
    if spare is None:
        spare = view._maskwork_spare_items = []
    return spare


#: Pixel types OpenCV's nearest-neighbour resize takes (bool goes through as uint8).
_CV_SAMPLED_TYPES = frozenset(map(np.dtype, (np.uint8, np.int8, np.uint16, np.int16, np.int32, np.float32, np.float64)))


def every_nth_pixel(block: np.ndarray, stride: int) -> np.ndarray:
    """A copy of ``block[::stride, ::stride]``.

    When the block is a whole number of strides, OpenCV's nearest-neighbour resize picks
    exactly those pixels, faster than numpy's strided copy (numpy copies a 3-channel pixel
    a byte at a time): 0.11 against 0.90 ms for a 2048 x 2048 RGB block, 2-2.5x for
    one-channel layers (``benchmarks/tile_sampling.py``). The UI thread samples four such
    blocks at every partial result of a registration.
    """
    rows, cols = block.shape[:2]
    channels = block.shape[2] if block.ndim == 3 else 1
    pixels = block.view(np.uint8) if block.dtype == bool else block
    if (rows % stride or cols % stride or not rows or not cols or pixels.dtype not in _CV_SAMPLED_TYPES
            or block.ndim not in (2, 3) or channels > 4):
        return block[::stride, ::stride].copy()
    import cv2

    sampled = cv2.resize(pixels, (cols // stride, rows // stride), interpolation=cv2.INTER_NEAREST)
    if block.ndim == 3 and sampled.ndim == 2:  # OpenCV drops a single channel axis
        sampled = sampled[..., None]
    return sampled.view(bool) if block.dtype == bool else sampled


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


@dataclass
class _Tile:
    """One drawn tile: the image rows and columns it covers, and its pixels at its stride."""

    item: pg.ImageItem
    rows: slice
    cols: slice
    #: The tile's own strided copy of the layer when the stride is above 1; None when it
    #: draws a view of the layer's array itself.
    sample: np.ndarray | None


class LayerView:
    """Adapter from a layer to tiled ImageItems inside ``view``.

    Parameters
    ----------
    layer : Layer
        The layer to draw; the view follows its ``data_changed`` and ``property_changed``.
    view : pyqtgraph.ViewBox
        Where the tiles are added; its zoom picks the stride and its visible rectangle
        which tiles exist.
    """

    def __init__(self, layer: Layer, view: pg.ViewBox) -> None:
        self.layer = layer
        self._view = view
        #: Tiles at the current stride, by the (row, column) of their first image pixel.
        self._tiles: dict[tuple[int, int], _Tile] = {}
        self._stride = 1
        self._z = 0.0
        self._label_table: np.ndarray | None = None
        self._layout = self._data_layout()
        layer.data_changed.connect(self._on_data_changed)
        layer.property_changed.connect(self._on_property_changed)
        view.sigTransformChanged.connect(self._on_view_changed)
        self._on_view_changed()

    # -- lifecycle --------------------------------------------------------------------
    def close(self) -> None:
        """Remove the tiles from the view and stop listening to the layer and the view."""
        self.layer.data_changed.disconnect(self._on_data_changed)
        self.layer.property_changed.disconnect(self._on_property_changed)
        self._view.sigTransformChanged.disconnect(self._on_view_changed)
        self._clear()

    @property
    def stride(self) -> int:
        """Image pixels per drawn pixel along each axis (1 when zoomed in to full detail)."""
        return self._stride

    @property
    def tile_items(self) -> list[pg.ImageItem]:
        """The ImageItems drawn now (tiles of the visible area, plus any seen before at this stride)."""
        return [tile.item for tile in self._tiles.values()]

    def _clear(self) -> None:
        spare = _spare_items(self._view)
        for tile in self._tiles.values():
            if len(spare) < SPARE_ITEMS_KEPT:
                tile.item.hide()
                tile.item.clear()  # a spare item must not keep a layer's pixels alive
                tile.item.qimage = None  # nor its rendered picture (clear() keeps that)
                spare.append(tile.item)
            else:
                self._view.removeItem(tile.item)
        self._tiles.clear()

    def _data_layout(self) -> tuple:
        """What decides the tiles' arrays: a new layout means new tiles, not re-sampling."""
        data = self.layer.data
        return data.shape, data.dtype

    # -- which tiles ------------------------------------------------------------------
    def _on_view_changed(self, *_) -> None:
        stride = self._stride_for_view()
        if stride != self._stride:
            self._clear()
            self._stride = stride
        self._show_visible()

    def _stride_for_view(self) -> int:
        """The largest power of two not above the image pixels per device pixel."""
        rect = self._view.viewRect()
        width, height = self._view.width(), self._view.height()
        if width <= 0 or height <= 0 or rect.width() <= 0 or rect.height() <= 0:
            return self._stride  # not laid out yet
        widget = self._view.getViewWidget()
        ratio = widget.devicePixelRatioF() if widget is not None else 1.0
        per_pixel = min(rect.width() / width, rect.height() / height) / ratio
        stride = 1
        while stride * 2 <= per_pixel:
            stride *= 2
        return stride

    def _show_visible(self) -> None:
        """Make the tiles the view shows that do not exist yet (hidden layers make none)."""
        if not self.layer.visible:
            return
        rows, cols = self.layer.shape
        span = TILE * self._stride
        rect = self._view.viewRect()
        row_range = range(max(0, int(rect.top() // span)), min(_ceil_div(rows, span), int(rect.bottom() // span) + 1))
        col_range = range(max(0, int(rect.left() // span)), min(_ceil_div(cols, span), int(rect.right() // span) + 1))
        for r in row_range:
            for c in col_range:
                if (r * span, c * span) not in self._tiles:
                    self._add_tile(r * span, c * span)

    def _add_tile(self, r0: int, c0: int) -> None:
        stride = self._stride
        rows, cols = self.layer.shape
        r1, c1 = min(rows, r0 + TILE * stride), min(cols, c0 + TILE * stride)
        spare = _spare_items(self._view)
        if spare:
            item = spare.pop()
        else:
            item = _TileItem(axisOrder="row-major")
            # Nearest-neighbour magnification is what an image editor shows at high zoom.
            item.setAutoDownsample(False)
            self._view.addItem(item, ignoreBounds=True)
        # Exactly over its image pixels: an edge tile's last sample is drawn narrower.
        item.setTransform(QTransform.fromScale((c1 - c0) / _ceil_div(c1 - c0, stride), (r1 - r0) / _ceil_div(r1 - r0, stride)))
        item.setPos(c0, r0)
        item.setOpacity(self.layer.opacity)
        item.setCompositionMode(COMPOSITION_MODES[self.layer.blend])
        item.setVisible(self.layer.visible)
        item.fast_format = stride > 1
        sample = every_nth_pixel(self.layer.data[r0:r1, c0:c1], stride) if stride > 1 else None
        tile = _Tile(item, slice(r0, r1), slice(c0, c1), sample)
        item.setZValue(self._z)  # after addItem, which lifts items below the view's own z
        self._tiles[(r0, c0)] = tile
        self._render_tile(tile)

    # -- properties -------------------------------------------------------------------
    def set_z(self, z: float) -> None:
        """Stack position on the canvas (higher is drawn on top)."""
        self._z = z
        for tile in self._tiles.values():
            tile.item.setZValue(z)

    def _on_property_changed(self, name: str) -> None:
        if name in ("visible", "opacity"):
            for tile in self._tiles.values():
                tile.item.setVisible(self.layer.visible)
                tile.item.setOpacity(self.layer.opacity)
            self._show_visible()
        elif name == "blend":
            for tile in self._tiles.values():
                tile.item.setCompositionMode(COMPOSITION_MODES[self.layer.blend])
                tile.item.update()
        elif name == "colormap" or (name == "contrast_limits" and not self.layer.is_labels_like):
            for tile in self._tiles.values():
                self._render_tile(tile)

    # -- pixels -----------------------------------------------------------------------
    def _on_data_changed(self, bounds: Bounds | None) -> None:
        rows, cols = self.layer.shape
        if bounds is None:
            layout = self._data_layout()
            if layout != self._layout:
                self._layout = layout
                self._label_table = None
                self._clear()
                self._show_visible()
                return
            bounds = (slice(0, rows), slice(0, cols))
        r_start, r_stop = bounds[0].indices(rows)[:2]
        c_start, c_stop = bounds[1].indices(cols)[:2]
        span = TILE * self._stride
        for r0 in range(r_start // span * span, r_stop, span):
            for c0 in range(c_start // span * span, c_stop, span):
                tile = self._tiles.get((r0, c0))
                if tile is None:
                    continue
                if tile.sample is not None:
                    self._resample(tile, r_start, r_stop, c_start, c_stop)
                self._render_tile(tile)

    def _resample(self, tile: _Tile, r_start: int, r_stop: int, c_start: int, c_stop: int) -> None:
        """Copy the changed image rows and columns ``[start, stop)`` into the tile's sample."""
        stride, sample = self._stride, tile.sample
        r0, c0 = tile.rows.start, tile.cols.start
        i0, i1 = max(0, _ceil_div(r_start - r0, stride)), min(sample.shape[0], _ceil_div(r_stop - r0, stride))
        j0, j1 = max(0, _ceil_div(c_start - c0, stride)), min(sample.shape[1], _ceil_div(c_stop - c0, stride))
        if i0 < i1 and j0 < j1:
            block = self.layer.data[r0 + i0 * stride : r0 + i1 * stride, c0 + j0 * stride : c0 + j1 * stride]
            sample[i0:i1, j0:j1] = every_nth_pixel(block, stride)

    def _render_tile(self, tile: _Tile) -> None:
        """Give the tile's item its pixels and display settings (pyqtgraph renders at paint)."""
        pixels = tile.sample if tile.sample is not None else self.layer.data[tile.rows, tile.cols]
        item, layer = tile.item, self.layer
        if layer.is_labels_like:
            if pixels.dtype != np.uint8:
                top = int(pixels.max())
                if top > 255:
                    item.setImage(self._colorize(pixels, top), autoLevels=False, levels=(0, 255))
                    return
                # An 8-bit copy draws through the colour table, as an indexed image: a
                # quarter of the bytes of the RGBA lookup (colours do not depend on the count).
                pixels = pixels.astype(np.uint8)
            item.setImage(pixels, autoLevels=False, levels=(0, 255), lut=label_table(layer))
            return
        levels = layer.contrast_limits
        if pixels.dtype == np.uint8 and levels == (0.0, 255.0):
            levels = None  # the identity: pyqtgraph would rescale every pixel to get it
        if pixels.ndim == 3:
            data = pixels if pixels.shape[2] in (3, 4) else pixels[..., 0]
            if data.ndim == 3:
                item.setImage(data, autoLevels=False, levels=levels, lut=None)
                return
            pixels = data
        item.setImage(pixels, autoLevels=False, levels=levels, lut=_colormap_lut(layer.colormap))

    def _colorize(self, tile: np.ndarray, top: int) -> np.ndarray:
        """RGBA of labels above 255, through a colour table grown to ``top``."""
        if self._label_table is None or len(self._label_table) <= top:
            self._label_table = label_colors(max(top + 1, 256))
        return self._label_table[tile]
