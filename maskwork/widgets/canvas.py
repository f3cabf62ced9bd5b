"""The canvas: layers drawn by pyqtgraph, and the mouse tools that edit them.

Mouse conventions follow image editors: the left button uses the current tool, the wheel
zooms at the cursor, the middle button or Space + left drag pans, right-drag zooms.
Every edit goes through the :class:`~maskwork.core.document.Document`, so it is undoable,
and a whole drag is one history step.
"""

from __future__ import annotations

from enum import Enum

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QKeyEvent, QPainterPath
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QApplication,
    QGraphicsEllipseItem,
    QGraphicsPathItem,
    QGraphicsRectItem,
    QLineEdit,
    QPlainTextEdit,
    QTextEdit,
    QVBoxLayout,
    QWidget,
)

from maskwork.core import tools
from maskwork.core.document import Document
from maskwork.core.history import AttributeAtom
from maskwork.core.layers import Layer, LayerKind
from maskwork.widgets.layer_view import LayerView


class Tool(str, Enum):
    """What the left mouse button does on the canvas."""

    PAN = "pan"
    BRUSH = "brush"
    ERASER = "eraser"
    BOX = "box"
    POLYGON = "polygon"
    FILL = "fill"
    POINT_POSITIVE = "point_positive"
    POINT_NEGATIVE = "point_negative"
    QUICK_SELECT = "quick_select"
    LANDMARK = "landmark"


#: Tools that paint into a labels-like layer.
PAINT_TOOLS = (Tool.BRUSH, Tool.ERASER, Tool.POLYGON, Tool.FILL)
PAINTABLE_KINDS = (LayerKind.MARKERS, LayerKind.MASK, LayerKind.LABELS)
#: How close (screen pixels) a press must be to a landmark to grab or delete it.
LANDMARK_REACH_PX = 8
#: Largest brush and eraser radius (image pixels), also the brush slider's end.
MAX_BRUSH_RADIUS = 500.0
#: How long the canvas holds its paint after a new layer or a preview's new array arrives
#: (the hold is not extended by what arrives meanwhile).
PAINT_HELD_MS = 1


class _ViewBox(pg.ViewBox):
    """A ViewBox that hands left-button work to the canvas's tool."""

    def __init__(self, canvas: "Canvas") -> None:
        super().__init__(lockAspect=True, invertY=True, enableMenu=False)
        self._canvas = canvas
        self._canvas_drags = False

    def mouseDragEvent(self, ev, axis=None):  # noqa: N802 (Qt naming)
        # Who takes a drag is decided at its start and kept to its end: Space or a tool key
        # pressed mid-stroke must not send the release elsewhere, or the stroke's undo
        # step never closes (undo, saving and autosave then wait on it for good).
        if ev.isStart():
            self._canvas_drags = ev.button() == Qt.MouseButton.LeftButton and self._canvas.tool_takes_left_drag()
        if self._canvas_drags:
            ev.accept()
            self._canvas._drag(ev)
            return
        super().mouseDragEvent(ev, axis)

    def mouseClickEvent(self, ev):  # noqa: N802
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            self._canvas._click(ev)
        elif ev.button() == Qt.MouseButton.RightButton and self._canvas._polygon:
            ev.accept()
            self._canvas._finish_polygon()
        elif ev.button() == Qt.MouseButton.RightButton and self._canvas.tool is Tool.QUICK_SELECT:
            ev.accept()
            self._canvas.add_click(*self._canvas._pixel(ev.scenePos()), label=0)
        elif ev.button() == Qt.MouseButton.RightButton and self._canvas.tool is Tool.LANDMARK:
            ev.accept()
            self._canvas.delete_landmark_near(*self._canvas._pixel(ev.scenePos()))
        else:
            super().mouseClickEvent(ev)


class _PromptMarks(pg.ScatterPlotItem):
    """The marks of clicks, points and landmarks. They never take a click: pyqtgraph's
    scatter accepts a left click on a mark, so a click a few screen pixels from an earlier
    one (a correction at an object's edge) added nothing."""

    def mouseClickEvent(self, ev):  # noqa: N802 (pyqtgraph's name)
        ev.ignore()


class Canvas(QWidget):
    """Shows the document's layers and turns mouse input into undoable edits.

    Parameters
    ----------
    document : Document
        The layers to show and edit.

    Signals
    -------
    cursor_moved(row, col, text)
        The pixel under the cursor and a readout of the values there ("" outside).
    zoom_changed(factor)
        Screen pixels per image pixel.
    message(text)
        Why a tool did nothing, for the status bar.
    """

    cursor_moved = Signal(int, int, str)
    zoom_changed = Signal(float)
    tool_changed = Signal(str)
    brush_radius_changed = Signal(float)
    active_label_changed = Signal(int)
    message = Signal(str)

    def __init__(self, document: Document, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.document = document
        self._tool = Tool.BRUSH
        self._brush_radius = 8.0
        self._active_label = 1
        # Flood fill on scribbles: how far (in 255ths of the photo's contrast range, so 8-bit
        # levels for a photo) a pixel may differ from the clicked one and still join.
        self.fill_tolerance = 12.0
        self._space_held = False
        self._views: dict[int, LayerView] = {}
        self._preview_view: LayerView | None = None
        self._overlay_view: LayerView | None = None
        self._last_point: tuple[float, float] | None = None
        self._stroke_layer: Layer | None = None
        self._stroke_value = 0
        self._stroking = False
        self._drag_origin: tuple[float, float] | None = None
        self._drag_tool = self._tool
        self._polygon: list[tuple[float, float]] = []
        self._dragged_landmark: int | None = None

        self.graphics = pg.GraphicsView(self)
        self.graphics.setBackground(QColor(40, 40, 44))
        self.view = _ViewBox(self)
        self.graphics.setCentralItem(self.view)
        self._resume_painting = QTimer(self, singleShot=True, interval=PAINT_HELD_MS)
        self._resume_painting.timeout.connect(self.paint_now)
        self._paint_owed = False  # a hold ended and the paint it held has not come yet
        self.graphics.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.graphics.installEventFilter(self)
        self.graphics.viewport().installEventFilter(self)
        # Space pans wherever the focus is in this window: held over a focused layer
        # list it would otherwise toggle the layer's visibility.
        self._space_key = _SpaceKey(self)
        QApplication.instance().installEventFilter(self._space_key)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.graphics)

        self._brush_outline = QGraphicsEllipseItem()
        self._brush_outline.setPen(pg.mkPen((255, 255, 255, 220), width=1, cosmetic=True))
        self._brush_outline.setZValue(10_000)
        self._brush_outline.setVisible(False)
        self.view.addItem(self._brush_outline, ignoreBounds=True)
        self._rect_item = QGraphicsRectItem()
        pen = pg.mkPen((255, 220, 0), width=2, cosmetic=True)
        pen.setStyle(Qt.PenStyle.DashLine)
        self._rect_item.setPen(pen)
        self._rect_item.setZValue(10_001)
        self._rect_item.setVisible(False)
        self.view.addItem(self._rect_item, ignoreBounds=True)
        self._polygon_item = QGraphicsPathItem()
        self._polygon_item.setPen(pg.mkPen((255, 255, 255), width=1.5, cosmetic=True))
        self._polygon_item.setZValue(10_002)
        self.view.addItem(self._polygon_item, ignoreBounds=True)
        self._points_item = _PromptMarks(size=12, pxMode=True)
        self._points_item.setZValue(10_003)
        self._landmark_texts: list[pg.TextItem] = []
        self.view.addItem(self._points_item, ignoreBounds=True)

        stack = document.layers
        stack.inserted.connect(self._on_inserted)
        stack.removed.connect(self._on_removed)
        stack.moved.connect(lambda *_: self._restack())
        document.seeds_changed.connect(self._update_seed_items)
        self.graphics.scene().sigMouseMoved.connect(self._on_mouse_moved)
        self.view.sigRangeChanged.connect(lambda *_: self.zoom_changed.emit(self.zoom))
        for index, layer in enumerate(stack):
            self._on_inserted(index, layer)

    # -- tool state -------------------------------------------------------------------
    @property
    def tool(self) -> Tool:
        """The current left-button tool."""
        return self._tool

    @tool.setter
    def tool(self, tool: Tool | str) -> None:
        tool = Tool(tool)
        if tool is self._tool:
            return
        self._cancel_polygon()
        self._tool = tool
        self._brush_outline.setVisible(False)
        self._update_seed_items()  # landmarks show their numbers
        self.graphics.setCursor(Qt.CursorShape.OpenHandCursor if tool is Tool.PAN else Qt.CursorShape.CrossCursor)
        self.tool_changed.emit(tool.value)

    @property
    def brush_radius(self) -> float:
        """Brush and eraser radius in image pixels."""
        return self._brush_radius

    @brush_radius.setter
    def brush_radius(self, radius: float) -> None:
        radius = float(np.clip(radius, 0.5, MAX_BRUSH_RADIUS))
        if radius != self._brush_radius:
            self._brush_radius = radius
            self.brush_radius_changed.emit(radius)

    @property
    def active_label(self) -> int:
        """Label painted by the brush: 1 foreground, 2 background, 3.. more classes."""
        return self._active_label

    @active_label.setter
    def active_label(self, label: int) -> None:
        label = int(max(1, label))
        if label != self._active_label:
            self._active_label = label
            self.active_label_changed.emit(label)

    def swap_labels(self) -> None:
        """Swap foreground and background (X in image editors)."""
        self.active_label = 2 if self._active_label == 1 else 1

    def tool_takes_left_drag(self) -> bool:
        """Whether a left drag edits (False: it pans, for the pan tool or Space held)."""
        return self._tool is not Tool.PAN and not self._space_held

    # -- view -------------------------------------------------------------------------
    @property
    def zoom(self) -> float:
        """Screen pixels per image pixel."""
        size = self.view.viewPixelSize()
        return 1.0 / size[0] if size[0] else 1.0

    def fit(self) -> None:
        """Show the whole image (Ctrl+0)."""
        shape = self.document.shape
        if shape is not None:
            self.view.setRange(QRectF(0, 0, shape[1], shape[0]), padding=0.02)

    def actual_pixels(self) -> None:
        """Zoom to 1:1 around the current centre."""
        centre = self.view.viewRect().center()
        width = self.view.width() or 1
        height = self.view.height() or 1
        self.view.setRange(
            QRectF(centre.x() - width / 2, centre.y() - height / 2, width, height), padding=0
        )

    def zoom_by(self, factor: float) -> None:
        """Zoom in (factor > 1) or out around the view centre."""
        self.view.scaleBy((1 / factor, 1 / factor))

    # -- layers -----------------------------------------------------------------------
    def _on_inserted(self, index: int, layer: Layer) -> None:
        first = not self._views
        self._views[id(layer)] = LayerView(layer, self.view)
        self._paint_in_a_later_turn()
        self._restack()
        if first:
            self.fit()

    def _paint_in_a_later_turn(self) -> None:
        """Hold the viewport's paint for PAINT_HELD_MS, so that it comes in a later turn of
        the event loop.

        A new layer's view or a new preview's tiles, and then their paint, each cost the
        UI thread 4-10 ms on a 12 MP photo; in the same turn as the work that brought the
        layer (an Apply's commit, a partial result) they made one stall of 11-20 ms, more
        than a frame. Held, input and timers run between. What arrives during a hold, or
        after one ended and before its paint, holds nothing: a stream of results faster
        than the hold is still painted.
        """
        if self._resume_painting.isActive() or self._paint_owed:
            return
        self.graphics.viewport().setUpdatesEnabled(False)
        self._resume_painting.start()

    def paint_now(self) -> None:
        """End a hold of the paint (:meth:`_paint_in_a_later_turn`) at once; the whole
        viewport is painted at the next chance. Call before grabbing the canvas: held, it
        draws nothing."""
        self._resume_painting.stop()
        viewport = self.graphics.viewport()
        if not viewport.updatesEnabled():
            self._paint_owed = True
            viewport.setUpdatesEnabled(True)

    def _on_removed(self, index: int, layer: Layer) -> None:
        view = self._views.pop(id(layer), None)
        if view is not None:
            view.close()
        self._restack()

    def _restack(self) -> None:
        for z, layer in enumerate(self.document.layers):
            view = self._views.get(id(layer))
            if view is not None:
                view.set_z(z)
        if self._preview_view is not None:
            # Under the scribbles, so the seeds a person is adjusting stay visible on top.
            layers = list(self.document.layers)
            seed_z = [z for z, layer in enumerate(layers) if layer.kind is LayerKind.MARKERS]
            self._preview_view.set_z((min(seed_z) if seed_z else len(layers)) - 0.5)

    def set_preview(self, layer: Layer | None) -> None:
        """Show a transient layer above all others (never in the stack or history).

        Its first paint, and its paint after each new array, come a turn of the event loop
        after they arrived (:meth:`_paint_in_a_later_turn`).
        """
        if self._preview_view is not None and (layer is None or self._preview_view.layer is not layer):
            self._preview_view.layer.data_changed.disconnect(self._on_preview_data)
            self._preview_view.close()
            self._preview_view = None
        if layer is not None and self._preview_view is None:
            self._preview_view = LayerView(layer, self.view)
            layer.data_changed.connect(self._on_preview_data)
            self._paint_in_a_later_turn()
            self._restack()

    def _on_preview_data(self, bounds) -> None:
        # A new array only: ending a hold repaints the whole viewport, while a change
        # inside a box is painted alone (at fit zoom a fifth of the cost).
        if bounds is None:
            self._paint_in_a_later_turn()

    def set_overlay(self, layer: Layer | None) -> None:
        """Show a transient comparison layer (checkerboard, difference...) above everything."""
        if self._overlay_view is not None and (layer is None or self._overlay_view.layer is not layer):
            self._overlay_view.close()
            self._overlay_view = None
        if layer is not None and self._overlay_view is None:
            self._overlay_view = LayerView(layer, self.view)
            self._overlay_view.set_z(len(self.document.layers) + 2)

    # -- seeds drawn as overlays ------------------------------------------------------
    def _update_seed_items(self) -> None:
        rect = self.document.rect
        self._rect_item.setVisible(rect is not None)
        if rect is not None:
            self._rect_item.setRect(QRectF(*rect))
        landmarks = self._tool is Tool.LANDMARK or any(abs(label) > 1 or label < 0 for _, _, label in self.document.points)
        spots = []
        for text in self._landmark_texts:
            self.view.removeItem(text)
        self._landmark_texts = []
        for row, col, label in self.document.points:
            if landmarks:
                # Landmark k on the fixed image is yellow "k", on the moving image cyan "k'".
                colour = (255, 220, 0) if label > 0 else (0, 220, 255)
                text = pg.TextItem(f"{abs(label)}" + ("" if label > 0 else "'"), color=colour, anchor=(-0.2, 1.1))
                text.setPos(col + 0.5, row + 0.5)
                text.setZValue(10_004)
                self.view.addItem(text, ignoreBounds=True)
                self._landmark_texts.append(text)
                spots.append({"pos": (col + 0.5, row + 0.5), "brush": pg.mkBrush(colour), "pen": pg.mkPen("k", width=1), "symbol": "+" if label > 0 else "t"})
            else:
                spots.append(
                    {
                        "pos": (col + 0.5, row + 0.5),
                        "brush": pg.mkBrush((46, 204, 64) if label else (230, 57, 70)),
                        "pen": pg.mkPen("w", width=1.5),
                        "symbol": "o" if label else "x",
                    }
                )
        self._points_item.setData(spots)

    # -- mouse ------------------------------------------------------------------------
    def _pixel(self, scene_pos) -> tuple[float, float]:
        """(row, col) of a scene position, pixel centres on integers."""
        point = self.view.mapSceneToView(scene_pos)
        return point.y() - 0.5, point.x() - 0.5

    def _on_mouse_moved(self, scene_pos) -> None:
        row, col = self._pixel(scene_pos)
        r, c = int(round(row)), int(round(col))
        self._update_brush_outline(row, col)
        shape = self.document.shape
        if shape is None or not (0 <= r < shape[0] and 0 <= c < shape[1]):
            self.cursor_moved.emit(r, c, "")
            return
        self.cursor_moved.emit(r, c, self.readout(r, c))

    def readout(self, row: int, col: int) -> str:
        """Values under (row, col): the base image, then the selected layer if different."""
        parts = []
        base = self.document.base_image
        selected = self.document.layers.selected
        for layer in (base, selected):
            if layer is None or (parts and layer is base):
                continue
            if 0 <= row < layer.shape[0] and 0 <= col < layer.shape[1]:
                value = layer.data[row, col]
                text = ", ".join(_format_value(v) for v in np.atleast_1d(value))
                parts.append(f"{layer.name}: {text}")
        return "   ".join(parts)

    def _update_brush_outline(self, row: float, col: float) -> None:
        show = self._tool in (Tool.BRUSH, Tool.ERASER) and not self._space_held
        self._brush_outline.setVisible(show)
        if show:
            r = self._brush_radius
            self._brush_outline.setRect(QRectF(col + 0.5 - r, row + 0.5 - r, 2 * r, 2 * r))

    def _paint_target(self) -> Layer | None:
        """The layer paint tools write into, creating a markers layer when none fits.

        Called inside the edit's history group: a hidden target is shown as part of the
        edit (one undo hides it again), so no stroke lands where nobody sees it.
        """
        layer = self._choose_paint_target()
        if layer is not None and not layer.visible:
            self.document.set_property(layer, "visible", True)
            self.message.emit(f"{layer.name} was hidden: shown to paint into it")
        return layer

    def _choose_paint_target(self) -> Layer | None:
        selected = self.document.layers.selected
        if selected is not None and selected.kind in PAINTABLE_KINDS:
            return selected
        markers = self.document.layers.of_kind(LayerKind.MARKERS)
        if markers:
            self.document.layers.selected = markers[-1]
            return markers[-1]
        if self.document.shape is None:
            return None
        return self.document.new_layer(LayerKind.MARKERS, "markers")

    def _paint_value(self, layer: Layer, tool: Tool | None = None) -> int:
        """What ``tool`` (the current one by default) paints into ``layer``."""
        if (tool or self._tool) is Tool.ERASER:
            return 0
        return 1 if layer.kind is LayerKind.MASK else self._active_label

    def _drag(self, ev) -> None:
        if ev.isStart():
            # The tool at the press draws the whole drag (B pressed mid-box keeps the box).
            self._drag_tool = self._tool
        tool = self._drag_tool
        row, col = self._pixel(ev.scenePos())
        if tool in (Tool.BRUSH, Tool.ERASER):
            if ev.isStart():
                start_row, start_col = self._pixel(ev.buttonDownScenePos())
                self._begin_stroke(tool)
                self._stroke_to(start_row, start_col)
            self._stroke_to(row, col)
            if ev.isFinish():
                self._end_stroke()
        elif tool in (Tool.BOX, Tool.QUICK_SELECT):
            # With Quick select a drag draws the box that the clicks then refine.
            if ev.isStart():
                self._drag_origin = self._pixel(ev.buttonDownScenePos())
            box = self._box_between(self._drag_origin, (row, col))
            if box is None:
                self._rect_item.setVisible(False)
            else:
                self._rect_item.setRect(QRectF(*box))
                self._rect_item.setVisible(True)
            if ev.isFinish():
                if box is not None:
                    self.document.set_rect(box)
                self._update_seed_items()  # the box kept, drawn again after a drag off the image
        elif tool is Tool.LANDMARK:
            self._drag_landmark(ev, row, col)
        elif tool is Tool.POLYGON:
            # Dragging with the polygon tool draws a free-hand lasso.
            if ev.isStart():
                self._polygon = [self._pixel(ev.buttonDownScenePos())]
            self._polygon.append((row, col))
            self._update_polygon_item()
            if ev.isFinish():
                self._finish_polygon()

    def _box_between(self, first: tuple[float, float], second: tuple[float, float]) -> tuple[int, int, int, int] | None:
        """(x, y, width, height) of the pixels from the one under ``first`` to the one under
        ``second`` (row, col), both included and clipped to the image; None outside it."""
        shape = self.document.shape
        if shape is None:
            return None
        rows = sorted(round(r) for r in (first[0], second[0]))
        cols = sorted(round(c) for c in (first[1], second[1]))
        if rows[1] < 0 or cols[1] < 0 or rows[0] >= shape[0] or cols[0] >= shape[1]:
            return None
        top, bottom = max(rows[0], 0), min(rows[1], shape[0] - 1)
        left, right = max(cols[0], 0), min(cols[1], shape[1] - 1)
        return left, top, right - left + 1, bottom - top + 1

    def _click(self, ev) -> None:
        row, col = self._pixel(ev.scenePos())
        if self._tool in (Tool.BRUSH, Tool.ERASER):
            self._begin_stroke(self._tool)
            self._stroke_to(row, col)
            self._end_stroke()
        elif self._tool is Tool.FILL:
            self.flood_fill_at(row, col)
        elif self._tool is Tool.POLYGON:
            if ev.double():
                self._finish_polygon()
            else:
                self._polygon.append((row, col))
                self._update_polygon_item()
        elif self._tool is Tool.LANDMARK:
            if self.landmark_near(row, col) is None:  # a click on a landmark only grabs it
                self.add_landmark(row, col)
        elif self._tool in (Tool.POINT_POSITIVE, Tool.POINT_NEGATIVE):
            self.add_click(row, col, 1 if self._tool is Tool.POINT_POSITIVE else 0)
        elif self._tool is Tool.QUICK_SELECT:
            # Shift+click marks background, as a right click does.
            shifted = bool(ev.modifiers() & Qt.KeyboardModifier.ShiftModifier)
            self.add_click(row, col, 0 if shifted else 1)

    def add_click(self, row: float, col: float, label: int) -> None:
        """Add a point prompt (1 object, 0 background) at a pixel of the image, as one undo step."""
        shape = self.document.shape
        row, col = round(row), round(col)  # pixel centres are whole numbers
        if shape is not None and 0 <= row < shape[0] and 0 <= col < shape[1]:
            self.document.add_point(row, col, label, "Object click" if label else "Background click")

    # -- edits (also used directly by tests and scripts) ------------------------------
    def _begin_stroke(self, tool: Tool) -> None:
        """Open a brush or eraser stroke; what it paints is fixed here (E or X pressed
        mid-stroke must not turn the rest of it into another stroke under its name)."""
        self.document.history.begin_group("Erase" if tool is Tool.ERASER else "Brush stroke")
        self._stroking = True
        self._stroke_layer = self._paint_target()
        if self._stroke_layer is not None:
            self._stroke_value = self._paint_value(self._stroke_layer, tool)
        self._last_point = None

    def _stroke_to(self, row: float, col: float) -> None:
        layer = self._stroke_layer
        if layer is None:
            return
        start = self._last_point or (row, col)
        patch = tools.brush(layer.data, start, (row, col), self._brush_radius, self._stroke_value)
        self.document.apply_patch(layer, patch)
        self._last_point = (row, col)

    def _end_stroke(self) -> None:
        if not self._stroking:
            return  # a second finish (a chorded button ended the drag before its release)
        self._stroking = False
        self.document.history.end_group()
        self._stroke_layer = None
        self._last_point = None

    def stroke(self, points: list[tuple[float, float]]) -> None:
        """Paint a polyline of (row, col) points with the current tool as one step."""
        self._begin_stroke(self._tool)
        for row, col in points:
            self._stroke_to(row, col)
        self._end_stroke()

    def flood_fill_at(self, row: float, col: float) -> None:
        """Flood-fill the paint target from (row, col) as one step."""
        with self.document.history.group("Flood fill"):
            layer = self._paint_target()
            if layer is None:
                return
            # Markers usually start empty, so a fill there follows the photo's colours;
            # masks and labels fill their own connected region (holes, areas).
            reference = None
            base = self.document.base_image
            if layer.kind is LayerKind.MARKERS and base is not None:
                if base.shape != layer.shape:
                    # An image of another size moved to the bottom has no pixel under each scribble.
                    self.message.emit(
                        f"Flood fill follows the colours of {base.name} ({base.shape[0]}x{base.shape[1]}), "
                        f"which is not the size of {layer.name} ({layer.shape[0]}x{layer.shape[1]}): "
                        "move an image of its size to the bottom"
                    )
                    return
                reference = base.data
            tolerance = 0.0
            if reference is not None:
                # In the photo's own units: 12 grey levels of 255 are 3084 of 65535, and
                # 0.047 of a float image's 0..1 (a fixed 12 filled one pixel of a 16-bit
                # photo and all of a float one).
                low, high = base.contrast_limits
                tolerance = self.fill_tolerance * (high - low) / 255.0
            patch = tools.flood_fill(
                layer.data, (row, col), self._paint_value(layer), reference=reference, tolerance=tolerance
            )
            self.document.apply_patch(layer, patch, "Flood fill")

    def next_landmark_label(self) -> int:
        """Label of the next landmark click: +k on the fixed image, then -k on the moving one."""
        labels = {label for _, _, label in self.document.points}
        unpaired = sorted(label for label in labels if label > 0 and -label not in labels)
        if unpaired:
            return -unpaired[0]
        return max([label for label in labels if label > 0], default=0) + 1

    def add_landmark(self, row: float, col: float) -> None:
        """Add the next landmark: fixed point k, then its partner on the moving image."""
        shape = self.document.shape
        row, col = round(row), round(col)  # pixel centres are whole numbers
        if shape is None or not (0 <= row < shape[0] and 0 <= col < shape[1]):
            return
        label = self.next_landmark_label()
        name = f"Landmark {abs(label)}" + (" on fixed" if label > 0 else " on moving")
        self.document.add_point(row, col, label, name)

    def landmark_near(self, row: float, col: float) -> int | None:
        """Index in ``document.points`` of the landmark within a few screen pixels, if any."""
        reach = LANDMARK_REACH_PX / max(self.zoom, 1e-6)
        best, best_distance = None, reach
        for index, (r, c, _) in enumerate(self.document.points):
            distance = float(np.hypot(r - row, c - col))
            if distance <= best_distance:
                best, best_distance = index, distance
        return best

    def _drag_landmark(self, ev, row: float, col: float) -> None:
        """Drag a landmark to a new place: one undo step, one preview, at the release."""
        if ev.isStart():
            self._dragged_landmark = self.landmark_near(*self._pixel(ev.buttonDownScenePos()))
            if self._dragged_landmark is not None:
                # An open group also tells auto-preview to wait for the release.
                label = abs(self.document.points[self._dragged_landmark][2])
                self.document.history.begin_group(f"Move landmark {label}")
                self.document.history.record(AttributeAtom(self.document, "points", self.document.points))
        index = self._dragged_landmark
        if index is None:
            return
        points = list(self.document.points)
        # Kept on the image, as a click outside it places no landmark.
        rows, cols = self.document.shape
        points[index] = (int(np.clip(round(row), 0, rows - 1)), int(np.clip(round(col), 0, cols - 1)), points[index][2])
        if ev.isFinish():
            self._dragged_landmark = None
            self.document.history.end_group()
        self.document.points = points

    def delete_landmark_near(self, row: float, col: float) -> None:
        """Delete the landmark pair one of whose points is under the cursor (undoable)."""
        index = self.landmark_near(row, col)
        if index is None:
            return
        label = abs(self.document.points[index][2])
        kept = [point for point in self.document.points if abs(point[2]) != label]
        self.document.history.record(AttributeAtom(self.document, "points", self.document.points), f"Delete landmark {label}")
        self.document.points = kept

    def _update_polygon_item(self) -> None:
        path = QPainterPath()
        if self._polygon:
            row, col = self._polygon[0]
            path.moveTo(QPointF(col + 0.5, row + 0.5))
            for row, col in self._polygon[1:]:
                path.lineTo(QPointF(col + 0.5, row + 0.5))
        self._polygon_item.setPath(path)

    def _finish_polygon(self) -> None:
        vertices, self._polygon = self._polygon, []
        self._update_polygon_item()
        if len(vertices) < 3:
            return
        with self.document.history.group("Polygon fill"):
            layer = self._paint_target()
            if layer is not None:
                patch = tools.polygon_fill(layer.data, vertices, self._paint_value(layer))
                self.document.apply_patch(layer, patch, "Polygon fill")

    def _cancel_polygon(self) -> None:
        self._polygon = []
        self._update_polygon_item()

    # -- keys -------------------------------------------------------------------------
    def hold_space(self, held: bool) -> None:
        """Space pressed (left drags pan, whatever the tool) or released."""
        self._space_held = held
        if held:
            self.graphics.setCursor(Qt.CursorShape.OpenHandCursor)
            self._brush_outline.setVisible(False)
        else:
            self.graphics.setCursor(Qt.CursorShape.OpenHandCursor if self._tool is Tool.PAN else Qt.CursorShape.CrossCursor)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        kind = event.type()
        if kind == QEvent.Type.KeyPress and event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self._polygon:
            self._finish_polygon()
            return True
        if kind == QEvent.Type.KeyPress and event.key() == Qt.Key.Key_Escape and self._polygon:
            self._cancel_polygon()
            return True
        if kind == QEvent.Type.Leave:
            self._brush_outline.setVisible(False)
        if kind == QEvent.Type.Paint and watched is self.graphics.viewport():
            self._paint_owed = False
        return super().eventFilter(watched, event)


#: Widgets where Space is a character the person types, not the pan key.
TEXT_INPUTS = (QLineEdit, QAbstractSpinBox, QTextEdit, QPlainTextEdit)


class _SpaceKey(QObject):
    """Catches Space for the canvas in any widget of the canvas's window but text fields.

    Installed on the application: a key goes to the focused widget, which for the layer
    list toggled the current layer, and for a button pressed it.
    """

    def __init__(self, canvas: Canvas) -> None:
        super().__init__(canvas)
        self._canvas = canvas

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802
        # Every event of the application passes here (building one operator's form sends
        # about 1,800): the isinstance test lets the others through in 0.8 us instead of
        # the 1.8 us that reading their type as a Python enum costs.
        if not isinstance(event, QKeyEvent) or event.key() != Qt.Key.Key_Space:
            return False
        kind = event.type()
        if kind not in (QEvent.Type.KeyPress, QEvent.Type.KeyRelease):
            return False
        if (not isinstance(watched, QWidget) or isinstance(watched, TEXT_INPUTS)
                or watched.window() is not self._canvas.window()):
            return False
        if not event.isAutoRepeat():
            self._canvas.hold_space(kind == QEvent.Type.KeyPress)
        return True


def _format_value(value) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{value:.4g}"
    return str(value)
