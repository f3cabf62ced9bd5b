"""Faulty operators, unreadable files and impossible edits leave the window and its
document as they were, each with a message (issue 15)."""

import dataclasses
import threading

import numpy as np
import pytest
import tifffile
from PySide6.QtCore import QEvent
from PySide6.QtWidgets import QApplication, QMessageBox

from maskwork.core import io
from maskwork.core.layers import Layer, LayerKind
from maskwork.operators import Result, get
from maskwork.operators.registration.transform import Transform
from maskwork.widgets.canvas import Tool
from maskwork.widgets.workers import live_workers

from window_driver import click


def document_state(window):
    """Everything an Apply could change: the layer objects, their pixels and the history."""
    document = window.document
    return (
        [(layer, layer.name, layer.data.copy()) for layer in document.layers],
        document.history.undo_names,
        document.history.redo_names,
        document.history.is_modified,
    )


def assert_same_state(before, after):
    layers_before, *history_before = before
    layers_after, *history_after = after
    assert [(layer, name) for layer, name, _ in layers_after] == [(layer, name) for layer, name, _ in layers_before]
    for (_, _, pixels_before), (_, _, pixels_after) in zip(layers_before, layers_after):
        np.testing.assert_array_equal(pixels_after, pixels_before)
    assert history_after == history_before


def faulty_threshold(func, outputs=None):
    """Threshold with ``func`` in place of its computation (and other declared outputs)."""
    spec = get("threshold")
    return dataclasses.replace(spec, func=func, outputs=outputs or spec.outputs)


def open_with_a_stroke(window, photo):
    """The photo opened and one brush stroke drawn: a document with a history."""
    assert window.open_paths([photo[0]])
    window.canvas.stroke([(20, 20), (20, 80)])


def close_deleted_boxes():
    """Run the deletions that closing a delete-on-close message box posted."""
    QApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)


def apply_and_expect_failure(window, qtbot, spec):
    """Apply ``spec`` through the Run menu and wait for its failure; returns the outcome."""
    window.choose_operator(spec)
    with qtbot.waitSignal(window.runner.failed, timeout=10_000) as failed:
        window.action_apply.trigger()
    return failed.args[0]


MALFORMED_RESULTS = {
    "wrong size": lambda image, **_: Result({"mask": np.zeros((image.shape[0] // 2, image.shape[1]), bool)}),
    "one-dimensional": lambda image, **_: Result({"mask": np.zeros(image.shape[0], bool)}),
    "RGB labels": lambda image, **_: Result({"mask": np.zeros(image.shape[:2], bool),
                                             "labels": np.zeros((*image.shape[:2], 3), np.int32)}),
    "None": lambda **_: None,
    "not a Result": lambda image, **_: {"mask": np.zeros(image.shape[:2], bool)},
    "text for pixels": lambda image, **_: Result({"mask": np.full(image.shape[:2], "yes", object)}),
}


@pytest.mark.parametrize("case", MALFORMED_RESULTS)
def test_a_malformed_result_shows_a_message_and_changes_nothing(window, photo, qtbot, case):
    open_with_a_stroke(window, photo)
    before = document_state(window)
    outcome = apply_and_expect_failure(window, qtbot, faulty_threshold(MALFORMED_RESULTS[case], ("mask", "labels")))
    assert not outcome.is_input_error and "Threshold returned" in outcome.message
    assert window.last_message_box.isVisible() and window.last_message_box.text() == outcome.message
    assert_same_state(before, document_state(window))
    assert not window.runner.busy


def test_a_bad_second_output_adds_not_even_the_good_first_one(window, photo, qtbot):
    def good_mask_bad_labels(image, **_):
        return Result({"mask": image[..., 0] > 100, "labels": np.zeros((3, 3), np.int32)})

    open_with_a_stroke(window, photo)
    before = document_state(window)
    outcome = apply_and_expect_failure(window, qtbot, faulty_threshold(good_mask_bad_labels, ("mask", "labels")))
    assert "labels of 3x3" in outcome.message
    assert_same_state(before, document_state(window))
    assert window.document.layers.of_kind(LayerKind.MASK) == []


@pytest.mark.parametrize("exception", [SystemExit(3), KeyboardInterrupt(), GeneratorExit()])
def test_an_operator_raising_a_base_exception_ends_its_run_and_frees_the_runner(window, photo, qtbot, exception):
    def leave(**_):
        raise exception

    open_with_a_stroke(window, photo)
    before = document_state(window)
    outcome = apply_and_expect_failure(window, qtbot, faulty_threshold(leave))
    assert outcome.message.startswith(type(exception).__name__) and "Traceback" in outcome.details
    assert not window.runner.busy and not window.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: not live_workers(), timeout=5_000)
    assert_same_state(before, document_state(window))
    # The runner takes the next run: the real Threshold applies.
    window.choose_operator(get("threshold"))
    with qtbot.waitSignal(window.runner.applied, timeout=10_000):
        window.action_apply.trigger()
    assert window.document.layers.of_kind(LayerKind.MASK)


@pytest.mark.parametrize(
    "pages, why",
    [
        ([(np.ones((20, 30)) + 1j).astype(np.complex64)], "complex64 values"),
        ([np.zeros(30, np.uint8)], "2D or 2D+channel"),
        ([], "holds no image"),
    ],
    ids=["complex", "one-dimensional", "no page"],
)
def test_a_file_that_reads_but_cannot_be_shown_keeps_the_open_document(window, photo, tmp_path, monkeypatch,
                                                                        pages, why):
    open_with_a_stroke(window, photo)
    before = document_state(window)
    odd = tmp_path / "spectrum.tif"
    tifffile.imwrite(odd, np.zeros((4, 4), np.uint8))
    # A reader that accepts what the window cannot show (the readers refuse some of it themselves).
    monkeypatch.setattr(io, "read_images", lambda path: pages)
    assert not window.open_paths([odd])
    box = window.last_message_box
    assert box.windowTitle() == "Cannot open spectrum.tif" and why in box.text()
    assert_same_state(before, document_state(window))
    assert window.source_path == photo[0]


def test_applying_a_transform_to_a_layer_of_another_size_explains_why_not(window, photo):
    open_with_a_stroke(window, photo)
    rows, cols = window.document.shape
    mask = window.document.new_layer(LayerKind.MASK)
    # A transform onto a grid of another size than the document's images.
    window.runner.last_transform = Transform("translation", np.eye(3), (rows // 2, cols // 2), (rows, cols))
    window.document.layers.selected = mask
    before = document_state(window)
    assert window.transforms.action_apply_transform.isEnabled()
    window.transforms.action_apply_transform.trigger()
    box = window.last_message_box
    assert box.windowTitle() == f"Cannot transform {mask.name}" and f"{rows}x{cols}" in box.text()
    assert_same_state(before, document_state(window))


def test_flood_fill_says_why_when_the_markers_and_the_image_differ_in_size(window, photo):
    open_with_a_stroke(window, photo)
    markers = window.document.layers.of_kind(LayerKind.MARKERS)[0]
    # An image of another size moved to the bottom becomes the reference image.
    window.document.add_layer(Layer(np.zeros((50, 60), np.uint8), LayerKind.IMAGE, "small"), step="Add small")
    window.document.move_layer(len(window.document.layers) - 1, 0)
    window.document.layers.selected = markers
    window.tool_actions[Tool.FILL].trigger()
    before = document_state(window)
    click(window.canvas, 30, 30)
    assert "50x60" in window.statusBar().currentMessage()
    assert_same_state(before, document_state(window))


def test_repeated_failures_keep_one_message_box_at_most(window, photo, qtbot):
    open_with_a_stroke(window, photo)
    window.choose_operator(faulty_threshold(MALFORMED_RESULTS["None"]))
    for attempt in range(20):
        with qtbot.waitSignal(window.runner.failed, timeout=10_000):
            window.action_apply.trigger()
        if attempt % 2 == 0:
            window.last_message_box.close()  # the person reads some and leaves others open
        close_deleted_boxes()
        assert len(window.findChildren(QMessageBox)) <= 1
    window.last_message_box.close()
    close_deleted_boxes()
    assert window.findChildren(QMessageBox) == []


def test_a_result_for_an_image_no_longer_selected_is_refused_whole(window, photo, qtbot):
    released = threading.Event()

    def waits_for_the_test(image, **_):
        released.wait(10)
        mask = image[..., 0] > 100
        return Result({"mask": mask, "labels": mask.astype(np.int32)})

    open_with_a_stroke(window, photo)
    small = window.document.add_layer(Layer(np.zeros((50, 60), np.uint8), LayerKind.IMAGE, "small"), step="Add small")
    window.document.layers.selected = window.document.layers[0]
    window.choose_operator(faulty_threshold(waits_for_the_test, ("mask", "labels")))
    before = document_state(window)
    window.action_apply.trigger()
    # While it runs, the person selects the other image: the document's size is now its size.
    window.document.layers.selected = small
    with qtbot.waitSignal(window.runner.failed, timeout=10_000) as failed:
        released.set()
    assert "cat_on_wall.png" in failed.args[0].message and "50x60" in failed.args[0].message
    assert_same_state(before, document_state(window))


def test_a_reader_that_breaks_on_a_damaged_file_is_a_message(window, photo, tmp_path, monkeypatch, qtbot):
    def broken_reader(path):
        raise IndexError("list index out of range")  # what tifffile did on TIFF magic and garbage

    open_with_a_stroke(window, photo)
    before = document_state(window)
    damaged = tmp_path / "damaged.tif"
    damaged.write_bytes(b"II*\x00" + bytes(64))
    monkeypatch.setattr(io, "read_images", broken_reader)
    with qtbot.waitSignal(window.files.opened, timeout=10_000) as opened:
        assert window.files.open_paths([damaged], background=True)
    assert opened.args == [False]
    assert window.last_message_box.text() == "IndexError: list index out of range"
    assert not window.files.add_image_layers(damaged)
    assert_same_state(before, document_state(window))
