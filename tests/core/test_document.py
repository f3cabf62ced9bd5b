"""Layers, the layer stack, undo history and the document's undoable edits."""

import numpy as np
import pytest

from maskwork.core import tools
from maskwork.core.document import Document
from maskwork.core.history import History
from maskwork.core.layers import Layer, LayerKind, LayerStack, auto_contrast_limits


@pytest.fixture
def doc():
    document = Document()
    rng = np.random.default_rng(0)
    document.add_layer(Layer(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8), "image", "photo"))
    document.history.clear()
    return document


def test_layer_events_fire_on_property_changes():
    layer = Layer(np.zeros((4, 5), np.uint8), "mask", "m")
    seen = []
    layer.property_changed.connect(seen.append)
    layer.opacity = 0.5
    layer.opacity = 0.5  # unchanged: no event
    layer.visible = False
    layer.name = "renamed"
    assert seen == ["opacity", "visible", "name"]
    assert layer.data.dtype == np.uint8 and layer.kind is LayerKind.MASK


def test_layer_write_emits_bounds():
    layer = Layer(np.zeros((10, 10), np.uint8), "markers")
    regions = []
    layer.data_changed.connect(regions.append)
    bounds = (slice(2, 4), slice(3, 6))
    layer.write(bounds, 1)
    assert regions == [bounds]
    assert layer.data.sum() == 6


def test_layer_rejects_multichannel_labels():
    with pytest.raises(ValueError, match="single-channel"):
        Layer(np.zeros((4, 4, 3)), "labels")


def test_auto_contrast_limits_for_16bit_use_percentiles():
    data = np.full((100, 100), 1000, np.uint16)
    data[:50] = 3000
    data[0, 0] = 65535  # one hot pixel must not flatten the display
    low, high = auto_contrast_limits(data)
    assert low == 1000 and high == 3000
    assert auto_contrast_limits(np.zeros((4, 4), np.uint8)) == (0.0, 255.0)


def test_stack_insert_remove_move_and_selection_events():
    stack = LayerStack()
    events = []
    stack.inserted.connect(lambda i, layer: events.append(("insert", i, layer.name)))
    stack.removed.connect(lambda i, layer: events.append(("remove", i, layer.name)))
    stack.moved.connect(lambda a, b: events.append(("move", a, b)))
    stack.selection_changed.connect(lambda layer: events.append(("select", layer.name if layer else None)))
    a, b, c = (Layer(np.zeros((2, 2)), "image", n) for n in "abc")
    for layer in (a, b, c):
        stack.append(layer)
    stack.move(0, 2)
    assert [layer.name for layer in stack] == ["b", "c", "a"]
    stack.remove(c)
    assert stack.selected is not None
    assert ("insert", 2, "c") in events and ("move", 0, 2) in events and ("remove", 1, "c") in events
    assert ("select", "c") in events
    assert stack.unique_name("a") == "a 2"


def test_history_undo_redo_round_trip_of_a_stroke(doc):
    markers = doc.new_layer("markers")
    before = markers.data.copy()
    with doc.history.group("Brush stroke"):
        points = [(10, 10), (12, 30), (40, 35), (45, 70)]
        for start, end in zip(points, points[1:]):
            doc.apply_patch(markers, tools.brush(markers.data, start, end, 3, 1))
    after = markers.data.copy()
    assert doc.history.undo_names[-1] == "Brush stroke"
    assert doc.history.undo() == "Brush stroke"
    np.testing.assert_array_equal(markers.data, before)
    assert doc.history.redo() == "Brush stroke"
    np.testing.assert_array_equal(markers.data, after)


def test_one_group_is_one_step_and_new_edit_clears_redo(doc):
    markers = doc.new_layer("markers")
    steps_before = len(doc.history.undo_names)
    with doc.history.group("stroke"):
        for col in range(5, 50, 5):
            doc.apply_patch(markers, tools.brush(markers.data, (20, col), (20, col + 5), 2, 1))
    assert len(doc.history.undo_names) == steps_before + 1
    doc.history.undo()
    assert doc.history.can_redo
    doc.apply_patch(markers, tools.brush(markers.data, (5, 5), (5, 5), 2, 2), "dot")
    assert not doc.history.can_redo


def test_pixel_atoms_store_only_the_changed_box(doc):
    markers = doc.new_layer("markers")
    doc.history.clear()
    doc.apply_patch(markers, tools.brush(markers.data, (30, 30), (30, 30), 2, 1))
    assert doc.history.nbytes <= 5 * 5
    # Repainting the same pixels changes nothing and records nothing.
    doc.apply_patch(markers, tools.brush(markers.data, (30, 30), (30, 30), 2, 1))
    assert len(doc.history.undo_names) == 1


def test_history_bounded_by_bytes_and_steps():
    history = History(max_steps=1000, max_bytes=10_000)
    layer = Layer(np.zeros((300, 100), np.uint8), "mask")
    doc = Document(history)
    doc.layers.append(layer)
    for i in range(50):
        doc.write(layer, (slice(0, 300), slice(i, i + 1)), np.full((300, 1), 1, np.uint8), f"col {i}")
    assert history.nbytes <= 10_000
    assert len(history.undo_names) == 33  # 300 bytes per step within a 10 kB bound
    assert history.undo_names[-1] == "col 49"
    counted = History(max_steps=3)
    doc2 = Document(counted)
    doc2.layers.append(Layer(np.zeros((4, 4), np.uint8), "mask"))
    for i in range(5):
        doc2.write(doc2.layers[0], (slice(i % 4, i % 4 + 1), slice(0, 1)), np.full((1, 1), i + 1, np.uint8), str(i))
    assert counted.undo_names == ["2", "3", "4"]


def test_a_slow_wide_stroke_keeps_the_pixels_it_painted_once():
    doc = Document()
    markers = doc.add_layer(Layer(np.zeros((2000, 3000), np.uint8), "markers", "scribbles"))
    doc.history.clear()
    with doc.history.group("Brush stroke"):
        for col in range(200, 2200, 5):  # a 200 px brush dragged in 5 px mouse moves
            doc.apply_patch(markers, tools.brush(markers.data, (1000, col), (1000, col + 5), 200, 1))
    painted_box = 401 * 2406
    assert doc.history.nbytes <= painted_box, "the painted box, not a copy per mouse move"
    assert len(doc.history.steps[0][-1].atoms) == 1
    assert doc.history.steps[0][-1].edits == 400
    doc.history.undo()
    assert not markers.data.any()
    doc.history.redo()
    assert markers.data[1000, 200:2205].all() and markers.data[800:1201, 1000].all()


def test_a_thin_diagonal_stroke_keeps_its_own_boxes_not_their_mostly_empty_common_box():
    doc = Document()
    doc.add_layer(Layer(np.zeros((1000, 1000), np.uint8), "image", "photo"))
    markers = doc.new_layer("markers")
    doc.history.clear()
    with doc.history.group("Brush stroke"):
        for step in range(300):  # a 2 px brush drawn diagonally in 3 px moves
            start = (50 + 2 * step, 50 + 3 * step)
            doc.apply_patch(markers, tools.brush(markers.data, start, (start[0] + 2, start[1] + 3), 2, 1))
    assert doc.history.steps[0][-1].nbytes < 20_000
    doc.history.undo()
    assert not markers.data.any()


def test_undoing_to_the_start_after_the_oldest_steps_were_dropped_is_not_the_saved_state(doc):
    doc.history.max_steps = 3
    mask = doc.new_layer("mask")
    doc.history.mark_saved()  # the state before any of the five boxes
    for i in range(5):
        doc.apply_patch(mask, tools.box(mask.data, (i * 10, 0), (i * 10 + 5, 10), 1), f"box {i}")
    while doc.history.undo():
        pass
    assert mask.data.any() and doc.history.is_modified, "the first boxes are still there"
    doc.history.redo()
    doc.history.mark_saved()  # saved after box 2, the oldest step kept (box 3 and 4 to redo)
    for i in range(5, 8):
        doc.apply_patch(mask, tools.box(mask.data, (0, 20 + i * 5), (5, 22 + i * 5), 1), f"box {i}")
    assert doc.history.undo_names == ["box 5", "box 6", "box 7"]  # box 2, the saved one, dropped
    while doc.history.undo():
        pass
    assert not doc.history.is_modified, "the state after box 2 is the saved one, reached again"


def test_jump_to_moves_through_steps(doc):
    mask = doc.new_layer("mask")
    for i in range(4):
        doc.apply_patch(mask, tools.box(mask.data, (i * 10, 0), (i * 10 + 5, 10), 1), f"box {i}")
    total = len(doc.history.undo_names)
    doc.history.jump_to(total - 3)
    assert mask.data[0:6, 0:11].all() and not mask.data[10:16].any()
    doc.history.jump_to(total)
    assert mask.data[30:36, 0:11].all()


def test_layer_operations_are_undoable(doc):
    mask = doc.new_layer("mask")
    mask_data = tools.box(mask.data, (5, 5), (20, 20), 1)
    doc.apply_patch(mask, mask_data)
    doc.apply_patch(mask, tools.box(mask.data, (30, 40), (40, 60), 1))
    doc.set_property(mask, "opacity", 0.3)
    doc.set_property(mask, "name", "cells")
    copy = doc.duplicate_layer(mask)
    assert copy.name == "cells copy" and doc.layers.index(copy) == doc.layers.index(mask) + 1
    doc.move_layer(doc.layers.index(copy), 0)
    assert doc.layers[0] is copy
    labels = doc.convert_layer(mask, "labels")
    assert labels.kind is LayerKind.LABELS and labels.data.max() == 2 and mask not in doc.layers
    doc.remove_layer(copy)
    names = doc.history.undo_names
    assert names[-3:] == ["Move cells copy", "Convert cells to labels", "Delete cells copy"]
    doc.history.undo()  # delete
    doc.history.undo()  # convert
    assert mask in doc.layers and labels not in doc.layers and doc.layers[0] is copy
    doc.history.undo()  # move
    doc.history.undo()  # duplicate
    assert copy not in doc.layers
    doc.history.undo()
    doc.history.undo()
    assert mask.name == "mask" and mask.opacity == 1.0


def test_is_modified_tracks_the_saved_step(doc):
    mask = doc.new_layer("mask")
    doc.history.mark_saved()
    assert not doc.history.is_modified
    doc.apply_patch(mask, tools.box(mask.data, (0, 0), (3, 3), 1))
    assert doc.history.is_modified
    doc.history.undo()
    assert not doc.history.is_modified
    doc.apply_patch(mask, tools.box(mask.data, (5, 5), (8, 8), 1))
    assert doc.history.is_modified  # a different edit at the same depth is not the saved state


def test_seed_layer_of_wrong_size_is_refused(doc):
    with pytest.raises(ValueError, match="60x80"):
        doc.add_layer(Layer(np.zeros((10, 10), np.uint8), "markers", "small"))


def test_visible_image_is_the_topmost_shown_image_of_the_documents_size(doc):
    photo = doc.base_image
    inpainted = doc.add_layer(Layer(photo.data[::-1].copy(), "image", "inpainted"))
    moving = doc.add_layer(Layer(np.zeros((30, 40, 3), np.uint8), "image", "moving image of another size"))
    mask = doc.new_layer("mask")
    assert doc.layers.selected is mask and doc.base_image is photo
    assert doc.visible_image is inpainted, "a smaller image on top does not cover this one"
    inpainted.blend = "multiply"
    assert doc.visible_image is photo, "a shading map multiplied over the photo is not what the photo shows"
    inpainted.blend, inpainted.opacity = "normal", 0.5
    assert doc.visible_image is photo
    inpainted.opacity = 1.0
    inpainted.visible = False
    assert doc.visible_image is photo
    photo.visible = False
    assert doc.visible_image is None
    assert moving.visible


def test_renaming_keeps_names_apart_and_short_and_names_the_step_by_the_old_name(doc):
    first, second = doc.new_layer("mask", "a"), doc.new_layer("mask", "b")
    doc.set_property(second, "name", "  a ")
    assert second.name == "a 2" and doc.history.undo_names[-1] == "Rename b"
    doc.set_property(first, "name", "a")  # its own name is not taken
    assert first.name == "a"
    doc.set_property(first, "name", "x" * 5000)
    assert len(first.name) == 120
    with pytest.raises(ValueError, match="needs a name"):
        doc.set_property(first, "name", "   ")


def test_undo_of_a_stroke_interrupted_by_another_edit_leaves_nothing_painted(doc):
    markers, mask = doc.new_layer("markers"), doc.new_layer("mask")
    doc.history.clear()
    with doc.history.group("Brush stroke"):
        # A wide brush dragged slowly down-right: its boxes overlap (they are merged into
        # their common box), whose top-right corner none of them touches.
        for i in range(6):
            doc.write(markers, (slice(i * 5, i * 5 + 30), slice(i * 5, i * 5 + 30)), np.full((30, 30), 1, np.uint8))
        doc.add_point(5, 5, 1)  # a click removed or added mid-drag (Backspace), an Apply's result
        doc.write(mask, (slice(0, 5), slice(0, 5)), np.ones((5, 5), np.uint8))  # another layer in between
        doc.write(markers, (slice(0, 10), slice(45, 55)), np.full((10, 10), 2, np.uint8))  # that corner
    doc.history.undo()
    assert not markers.data.any() and not mask.data.any() and doc.points == ()
    doc.history.redo()
    assert (markers.data[0:10, 45:55] == 2).all() and mask.data[0:5, 0:5].all()


def test_clearing_the_prompts_a_run_took_keeps_those_added_while_it_ran(doc):
    doc.set_rect((10, 10, 50, 50))
    doc.add_point(20, 20, 1)
    doc.add_point(30, 30, 0)
    taken = (doc.rect, list(doc.points))
    doc.add_point(90, 90, 1)  # the first click on the next object, while the Apply ran
    doc.clear_seeds(taken)
    assert doc.rect is None and doc.points == ((90.0, 90.0, 1),)
    doc.history.undo()
    assert doc.rect == (10, 10, 50, 50) and len(doc.points) == 3, "one undo step"
    doc.clear_seeds()
    assert doc.rect is None and doc.points == ()
