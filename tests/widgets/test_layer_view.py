"""The canvas draws each layer at the detail its zoom shows, and draws the right pixels.

Driven like a person: zoom out, paint, zoom in, undo; each time the pixels on screen are
read back from a grab of the canvas.
"""

import numpy as np
import pytest
from PySide6.QtCore import QEvent, QObject, QPointF, QRectF

from maskwork.core.colors import label_colors
from maskwork.core.document import Document
from maskwork.core.layers import Layer, LayerKind
from maskwork.widgets.canvas import Canvas, Tool
from maskwork.widgets.layer_view import TILE

GRAY = 100
ROWS, COLS = 2401, 3203  # not multiples of any stride: edge tiles are cut short
GREEN = tuple(int(v) for v in label_colors(2)[1][:3])


@pytest.fixture
def canvas(qtbot):
    document = Document()
    document.add_layer(Layer(np.full((ROWS, COLS), GRAY, np.uint8), "image", "photo"))
    document.history.clear()
    widget = Canvas(document)
    qtbot.addWidget(widget)
    widget.resize(400, 300)
    widget.show()
    qtbot.waitExposed(widget)
    widget.fit()
    return widget


class PaintCounter(QObject):
    """Counts the paint events of the widget it filters."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def eventFilter(self, watched, event) -> bool:  # noqa: N802
        self.count += event.type() == QEvent.Type.Paint
        return False


def screen_colour(canvas, row: float, col: float) -> tuple[int, int, int]:
    """RGB the canvas shows at the centre of image pixel (row, col)."""
    canvas.paint_now()  # a held paint would grab black
    image = canvas.graphics.grab().toImage()
    scene = canvas.view.mapViewToScene(QPointF(col + 0.5, row + 0.5))
    point = canvas.graphics.mapFromScene(scene)
    colour = image.pixelColor(point.x(), point.y())
    return colour.red(), colour.green(), colour.blue()


def zoom_to(canvas, row: float, col: float, screen_px_per_image_px: float) -> None:
    width = canvas.view.width() / screen_px_per_image_px
    height = canvas.view.height() / screen_px_per_image_px
    canvas.view.setRange(QRectF(col - width / 2, row - height / 2, width, height), padding=0)


def view_of(canvas, layer):
    return canvas._views[id(layer)]


def test_a_new_layer_is_painted_in_a_later_turn_than_the_one_that_added_it(canvas, qtbot):
    """Adding a layer's view and painting it each cost a 12 MP photo 5-10 ms of the UI
    thread; the canvas holds the paint until the event loop has turned, then shows it."""
    viewport = canvas.graphics.viewport()
    mask = np.zeros((ROWS, COLS), bool)
    mask[1000:1400, 1300:1700] = True
    canvas.document.add_layer(Layer(mask, LayerKind.MASK, "applied", opacity=1.0))
    assert not viewport.updatesEnabled()  # the turn that added it ends without its paint
    qtbot.waitUntil(viewport.updatesEnabled, timeout=2_000)
    assert screen_colour(canvas, 1200, 1500) != (GRAY, GRAY, GRAY)  # then it shows
    assert screen_colour(canvas, 200, 200) == (GRAY, GRAY, GRAY)


def test_a_preview_and_each_of_its_new_results_are_painted_in_a_later_turn(canvas, qtbot):
    """A partial result replaces the preview's pixels (4-5 ms at 12 MP) and is painted
    (5-9 ms): the paint comes after the event loop has turned, then shows the result."""
    viewport = canvas.graphics.viewport()
    mask = np.zeros((ROWS, COLS), bool)
    mask[1000:1400, 1300:1700] = True
    preview = Layer(mask, LayerKind.MASK, "preview", opacity=1.0)
    canvas.set_preview(preview)
    assert not viewport.updatesEnabled()
    qtbot.waitUntil(viewport.updatesEnabled, timeout=2_000)
    assert screen_colour(canvas, 1200, 1500) != (GRAY, GRAY, GRAY)

    moved = np.zeros((ROWS, COLS), bool)
    moved[100:400, 100:400] = True
    preview.data = moved
    assert not viewport.updatesEnabled()
    assert screen_colour(canvas, 200, 200) != (GRAY, GRAY, GRAY)
    assert screen_colour(canvas, 1200, 1500) == (GRAY, GRAY, GRAY)

    # A change inside a box is painted alone, at once: ending a hold repaints everything.
    qtbot.waitUntil(viewport.updatesEnabled, timeout=2_000)
    box = (slice(100, 200), slice(100, 200))
    preview.replace_data(np.zeros((ROWS, COLS), bool), box)
    assert viewport.updatesEnabled()

    # A new array that comes after a hold ended and before its paint holds nothing: a
    # stream of results faster than the hold is still painted.
    preview.data = mask.copy()
    assert not viewport.updatesEnabled()
    canvas.paint_now()  # as the hold's timer ends it
    preview.data = moved
    assert viewport.updatesEnabled()
    paints = PaintCounter()
    viewport.installEventFilter(paints)
    qtbot.waitUntil(lambda: paints.count > 0, timeout=2_000)
    viewport.removeEventFilter(paints)
    preview.data = mask.copy()  # painted since: held again
    assert not viewport.updatesEnabled()

    canvas.set_preview(None)  # a preview taken away stops holding the paint
    qtbot.waitUntil(viewport.updatesEnabled, timeout=2_000)
    preview.data = mask
    assert viewport.updatesEnabled()
    assert screen_colour(canvas, 1200, 1500) == (GRAY, GRAY, GRAY)


def test_zoomed_out_a_layer_is_a_few_strided_tiles_and_paint_shows_at_every_zoom(canvas, qtbot):
    photo = canvas.document.base_image
    assert canvas.zoom < 0.25
    photo_view = view_of(canvas, photo)
    # Several image pixels per screen pixel: one strided tile covers the whole photo,
    # not the 5 x 7 full-resolution tiles of 512.
    assert photo_view.stride >= 4 and len(photo_view.tile_items) == 1

    canvas.tool = Tool.BRUSH
    canvas.brush_radius = 60
    canvas.stroke([(1200, 1000), (1200, 2000)])
    markers = canvas.document.layers.selected
    assert markers.kind is LayerKind.MARKERS and view_of(canvas, markers).stride == photo_view.stride
    assert screen_colour(canvas, 1200, 1500) == GREEN
    assert screen_colour(canvas, 600, 1500) == (GRAY, GRAY, GRAY)

    # Zoomed in on the stroke's upper edge: full-resolution tiles, only those in view,
    # nearest-neighbour pixels either side of the edge.
    zoom_to(canvas, 1140, 1500, 8.0)
    assert photo_view.stride == 1 and view_of(canvas, markers).stride == 1
    assert len(photo_view.tile_items) <= 4
    assert screen_colour(canvas, 1141, 1500) == GREEN
    assert screen_colour(canvas, 1139, 1500) == (GRAY, GRAY, GRAY)

    # Painted while zoomed in, seen after zooming out again.
    canvas.brush_radius = 10
    canvas.stroke([(1135, 1480), (1135, 1520)])
    assert screen_colour(canvas, 1135, 1500) == GREEN
    canvas.fit()
    canvas.brush_radius = 120
    canvas.stroke([(400, 2800)])
    assert screen_colour(canvas, 400, 2800) == GREEN

    # Undone at fit zoom: the strided tiles follow the history too.
    canvas.document.history.undo()
    assert screen_colour(canvas, 400, 2800) == (GRAY, GRAY, GRAY)
    assert screen_colour(canvas, 1200, 1500) == GREEN


def test_visibility_opacity_and_contrast_reach_the_tiles_at_any_zoom(canvas):
    photo = canvas.document.base_image
    document = canvas.document
    document.set_property(photo, "contrast_limits", (0.0, 200.0))
    half = screen_colour(canvas, 1000, 1000)
    assert half == (half[0],) * 3 and abs(half[0] - 127.5) <= 1  # 100 of 0..200
    zoom_to(canvas, 1000, 1000, 2.0)
    assert screen_colour(canvas, 1000, 1000) == half
    document.set_property(photo, "visible", False)
    background = screen_colour(canvas, 1000, 1000)
    assert background != half
    canvas.fit()
    assert screen_colour(canvas, 1000, 1000) == background  # hidden layers make no tiles
    assert view_of(canvas, photo).tile_items == []
    document.set_property(photo, "visible", True)
    assert screen_colour(canvas, 1000, 1000) == half
    document.set_property(photo, "opacity", 0.0)
    assert screen_colour(canvas, 1000, 1000) == background


def test_strided_tiles_keep_their_pictures_in_the_formats_qt_draws_fastest_and_show_the_same(canvas):
    """Zoomed out, each tile's picture is converted once after pyqtgraph renders it (to
    RGB32, or premultiplied ARGB32 where it has alpha): pixel for pixel what pyqtgraph's
    own item renders from the same array, colour table and levels. Full-resolution tiles
    keep pyqtgraph's formats (a quarter of the memory for 8-bit layers)."""
    import pyqtgraph as pg
    from PySide6.QtGui import QImage

    rng = np.random.default_rng(0)
    document = canvas.document
    document.set_property(document.base_image, "contrast_limits", (0.0, 200.0))  # gray through a table
    document.add_layer(Layer(rng.integers(0, 256, (ROWS, COLS, 3), dtype=np.uint8), "image", "colour photo"))
    heat = rng.random((ROWS, COLS)).astype(np.float32)
    heat[:100, :100] = np.nan
    heat_layer = Layer(heat, "image", "heat")
    document.add_layer(heat_layer)
    document.set_property(heat_layer, "colormap", "viridis")
    labels = np.zeros((ROWS, COLS), np.uint16)
    labels[500:1500, 800:2400] = 1
    labels[1600:2000, 300:900] = 2  # the scribbles' background class: drawn clear
    labels[2100:2300, 300:900] = 300  # above 255: an RGBA lookup instead of a colour table
    document.add_layer(Layer(labels, "labels", "objects"))
    canvas.tool = Tool.BRUSH
    canvas.stroke([(1200, 1000), (1200, 2000)])  # a markers layer

    def pictures() -> list:
        formats = []
        for layer in document.layers:
            for item in view_of(canvas, layer).tile_items:
                item.render()
                plain = pg.ImageItem(axisOrder="row-major")
                plain.setImage(item.image, levels=item.levels, lut=item.lut, autoLevels=False)
                plain.render()
                ours, theirs = (picture.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)
                                for picture in (item.qimage, plain.qimage))
                assert ours == theirs, layer.name
                formats.append(item.qimage.format())
        return formats

    assert view_of(canvas, document.base_image).stride > 1
    assert set(pictures()) == {QImage.Format.Format_RGB32, QImage.Format.Format_ARGB32_Premultiplied}
    zoom_to(canvas, 1200, 1500, 2.0)
    assert view_of(canvas, document.base_image).stride == 1
    assert QImage.Format.Format_Indexed8 in set(pictures())


def test_new_arrays_and_changed_boxes_are_redrawn(canvas):
    labels = Layer(np.zeros((ROWS, COLS), np.uint16), "labels", "objects")
    canvas.document.add_layer(labels)
    view = view_of(canvas, labels)
    assert view.stride > 1

    # A partial of the same box: a new array, only the box announced.
    partial = labels.data.copy()
    partial[1000:1400, 1000:1400] = 2
    labels.replace_data(partial, (slice(1000, 1400), slice(1000, 1400)))
    assert screen_colour(canvas, 1200, 1200) == tuple(int(v) for v in label_colors(3)[2][:3])

    # Labels above 255 draw through a grown colour table.
    many = labels.data.copy()
    many[200:600, 2400:2800] = 300
    labels.data = many
    assert screen_colour(canvas, 400, 2600) == tuple(int(v) for v in label_colors(301)[300][:3])

    # A whole new array of another shape and type: new tiles at the new size.
    labels.data = np.ones((ROWS // 2, COLS // 2), np.uint16)
    assert screen_colour(canvas, 100, 100) == GREEN
    assert screen_colour(canvas, ROWS - 100, COLS - 100) == (GRAY, GRAY, GRAY)


def test_an_edge_tile_ends_at_the_image_edge(canvas):
    """A strided tile whose last sample is cut short is drawn narrower, not past the image."""
    view = view_of(canvas, canvas.document.base_image)
    zoom_to(canvas, ROWS - 10, COLS - 10, 1 / 3)  # stride 2: the last tile holds 578 samples of 1155 columns
    assert view.stride == 2
    rects = [item.mapRectToParent(item.boundingRect()) for item in view.tile_items]
    assert max(rect.right() for rect in rects) == pytest.approx(COLS)
    assert max(rect.bottom() for rect in rects) == pytest.approx(ROWS)
    assert all(rect.width() <= TILE * 2 for rect in rects)


def test_a_removed_layer_lends_its_tiles_to_the_next_one_without_keeping_its_pixels(canvas, qtbot):
    mask = np.zeros((ROWS, COLS), bool)
    mask[1000:1400, 1500:2000] = True
    first = Layer(mask, LayerKind.MASK, "preview-like")
    canvas.document.add_layer(first)
    lent = set(map(id, view_of(canvas, first).tile_items))
    canvas.document.remove_layer(first)
    # The hidden spare items hold no image: the removed layer's array is not kept alive.
    spare = canvas.view._maskwork_spare_items
    assert {id(item) for item in spare} == lent
    assert all(item.image is None and not item.isVisible() for item in spare)

    second = Layer(mask.copy(), LayerKind.MASK, "applied")
    canvas.document.add_layer(second)
    assert set(map(id, view_of(canvas, second).tile_items)) == lent
    # Drawn as a fresh item would be: the mask's colour where it is set, the photo elsewhere.
    assert screen_colour(canvas, 1200, 1750) != (GRAY, GRAY, GRAY)
    assert screen_colour(canvas, 300, 300) == (GRAY, GRAY, GRAY)


@pytest.mark.parametrize("dtype", [bool, np.uint8, np.uint16, np.int32, np.int64, np.float32, np.float64])
@pytest.mark.parametrize("shape", [(64, 96), (64, 96, 3), (64, 96, 4), (64, 96, 1), (63, 97, 3), (64, 96, 5)])
def test_every_nth_pixel_is_the_strided_copy(dtype, shape):
    from maskwork.widgets.layer_view import every_nth_pixel

    padded = (np.random.default_rng(3).random((shape[0] + 10, shape[1] + 10) + shape[2:]) * 200).astype(dtype)
    block = padded[3 : 3 + shape[0], 5 : 5 + shape[1]]  # a view into a layer, as the canvas samples it
    for stride in (2, 4, 8):
        sampled = every_nth_pixel(block, stride)
        assert sampled.dtype == block.dtype and sampled.flags.c_contiguous
        np.testing.assert_array_equal(sampled, block[::stride, ::stride])
