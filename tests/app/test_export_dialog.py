"""File > Export... (one dialog, by layer kind, written in the background) and File > Import."""

import numpy as np
import pytest
from PIL import Image
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from skimage import data

from maskwork.core import io
from maskwork.core.layers import Layer, LayerKind

from window_driver import menu_action


def _choice_keys(dialog):
    return [dialog.choice_combo.itemData(i).key for i in range(dialog.choice_combo.count())]


def _add_mask(window, truth):
    mask = Layer(truth.astype(np.uint8), LayerKind.MASK, "cat mask")
    window.document.add_layer(mask)
    return mask


def test_export_dialog_offers_what_each_layer_can_be_and_writes_in_the_background(window, photo, qtbot, tmp_path):
    path, image, truth = photo
    assert window.open_paths([path])
    mask = _add_mask(window, truth)

    menu_action(window, "File", "Export...").trigger()
    dialog = window.exports.dialog
    assert dialog is not None and dialog.isVisible()
    assert dialog.layer is mask, "the selected layer is chosen first"
    assert _choice_keys(dialog) == ["mask", "labels", "labels_color", "cutout"]
    dialog.layer_combo.setCurrentIndex([dialog.layer_combo.itemText(i) for i in range(dialog.layer_combo.count())].index("cat_on_wall.png  (image)"))
    assert _choice_keys(dialog) == ["image"]
    assert dialog.path.suffix == ".png"

    # Back to the mask, as a TIFF cut-out.
    dialog.layer_combo.setCurrentIndex(0)
    dialog.choice_combo.setCurrentIndex(_choice_keys(dialog).index("cutout"))
    dialog.format_combo.setCurrentIndex(dialog.format_combo.findData(".tif"))
    assert dialog.path.name == "cat_on_wall_cutout.tif"
    dialog.path_edit.setText(str(tmp_path / "out" / "cutout.png"))
    assert dialog.format_combo.currentData() == ".png", "a typed suffix chooses the format"
    dialog.format_combo.setCurrentIndex(dialog.format_combo.findData(".tif"))
    with qtbot.waitSignal(window.exports.exported, timeout=10_000) as done:
        QTest.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
        assert window.file_progress.busy, "the write runs in a worker, after the click returned"
    written = done.args[0]
    assert written == tmp_path / "out" / "cutout.tif"
    rgba = io.read_image(written)
    assert rgba.shape == image.shape[:2] + (4,)
    assert np.array_equal(rgba[..., 3] > 0, truth)
    assert np.array_equal(rgba[..., :3][truth], image[truth])
    assert io.sidecar_path(written).exists()
    assert not window.file_progress.busy and not window.file_progress.bar.isVisible()


def test_a_cut_out_after_inpaint_holds_the_inpainted_pixels_the_person_sees(window, photo, qtbot, tmp_path):
    path, image, truth = photo
    assert window.open_paths([path])
    opened = window.document.base_image
    hole = np.zeros(truth.shape, np.uint8)
    hole[100:140, 150:220] = 1
    window.document.add_layer(Layer(hole, LayerKind.MASK, "hole"))
    menu_action(window, "Inpaint", "Inpaint").trigger()
    with qtbot.waitSignal(window.runner.applied, timeout=60_000) as applied:
        window.action_apply.trigger()
    (inpainted,) = applied.args[0]
    assert inpainted.kind is LayerKind.IMAGE and not np.array_equal(inpainted.data, opened.data)

    # Cut the object out with the mask selected (then the operators' image is the bottom one).
    mask = _add_mask(window, truth)
    assert window.document.layers.selected is mask
    menu_action(window, "File", "Export...").trigger()
    dialog = window.exports.dialog
    dialog.choice_combo.setCurrentIndex(_choice_keys(dialog).index("cutout"))
    dialog.path_edit.setText(str(tmp_path / "cutout.png"))
    with qtbot.waitSignal(window.exports.exported, timeout=10_000) as done:
        QTest.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    np.testing.assert_array_equal(io.read_image(done.args[0])[..., :3], inpainted.data)

    # Hidden, the inpainted layer is no longer what the person sees.
    window.document.set_property(inpainted, "visible", False)
    cutout = io.read_image(window.exports.export("cutout", tmp_path / "hidden.png", layer=mask))
    np.testing.assert_array_equal(cutout[..., :3], opened.data)


def test_a_cut_out_of_a_16bit_image_uses_the_contrast_the_person_set(window, qtbot, tmp_path):
    # A 12-bit camera picture in 16 bits: the person narrows the shown range to 0..3000.
    deep = (data.camera().astype(np.uint16) * 16)
    io.write_image(tmp_path / "camera16.tif", deep)
    assert window.open_paths([tmp_path / "camera16.tif"])
    image = window.document.base_image
    window.document.layers.selected = image
    window.layer_panel.contrast_low.setValue(0)
    window.layer_panel.contrast_high.setValue(3000)
    assert image.contrast_limits == (0.0, 3000.0)
    mask = _add_mask(window, np.ones(deep.shape, bool))
    with qtbot.waitSignal(window.exports.exported, timeout=10_000) as done:
        assert window.exports.export("cutout", tmp_path / "cutout.png", layer=mask, background=True)
    shown = np.clip(np.rint(deep / 3000 * 255), 0, 255)
    np.testing.assert_array_equal(io.read_image(done.args[0])[..., 0], shown)


CAMERA = data.camera()[:120, :160]
IMAGES_PNG_CANNOT_HOLD = {
    "float32": CAMERA.astype(np.float32) / 255,
    "int16": CAMERA.astype(np.int16) - 128,
    "uint32": CAMERA.astype(np.uint32) * 70_000,
    "2 channels": np.dstack([CAMERA, CAMERA[::-1]]),
    "5 channels": np.dstack([CAMERA] * 5),
}


@pytest.mark.parametrize("kind", list(IMAGES_PNG_CANNOT_HOLD))
def test_export_proposes_tiff_for_an_image_png_cannot_hold(window, qtbot, tmp_path, kind):
    pixels = IMAGES_PNG_CANNOT_HOLD[kind]
    io.write_image(tmp_path / "scan.tif", pixels)
    assert window.open_paths([tmp_path / "scan.tif"])
    menu_action(window, "File", "Export...").trigger()
    dialog = window.exports.dialog
    assert dialog.path.suffix == ".tif" and dialog.format_combo.currentData() == ".tif"
    dialog.path_edit.setText(str(tmp_path / "out" / dialog.path.name))
    with qtbot.waitSignal(window.exports.exported, timeout=10_000) as done:
        QTest.mouseClick(dialog.export_button, Qt.MouseButton.LeftButton)
    assert done.args[0] == tmp_path / "out" / "scan.tif"
    np.testing.assert_array_equal(io.read_image(done.args[0]), pixels)


def test_export_still_proposes_png_for_a_16bit_rgb_image(window, tmp_path):
    io.write_image(tmp_path / "deep.tif", np.dstack([CAMERA.astype(np.uint16) * 257] * 3))
    assert window.open_paths([tmp_path / "deep.tif"])
    menu_action(window, "File", "Export...").trigger()
    assert window.exports.dialog.path.name == "deep.png"


def test_a_failed_background_export_says_why(window, photo, qtbot, tmp_path):
    path, image, truth = photo
    assert window.open_paths([path])
    _add_mask(window, truth)
    with qtbot.waitSignal(window.exports.exported, timeout=10_000) as done:
        assert window.exports.export("mask", tmp_path / "mask.jpg", background=True)
    assert done.args[0] is None
    assert "mask.jpg" in window.last_message_box.windowTitle()
    assert not (tmp_path / "mask.jpg").exists()


def test_the_separate_export_entries_stay_in_the_file_menu(window):
    for text in ("Export image", "Export mask", "Export labels...", "Export labels as colour", "Export cut-out"):
        assert menu_action(window, "File", text).isEnabled()


def test_import_as_mask_labels_and_markers(window, photo, qtbot, tmp_path):
    path, image, truth = photo
    assert window.open_paths([path])
    labels = np.zeros(truth.shape, np.uint16)
    labels[truth] = 3
    labels[:20, :20] = 700
    io.write_labels(tmp_path / "labels.tif", labels)
    io.write_mask(tmp_path / "mask.png", truth)
    markers = np.zeros(truth.shape, np.uint8)
    markers[100:110, 100:200] = 1
    markers[5:10, :] = 2
    io.write_labels(tmp_path / "scribbles.png", markers)

    imported = {}
    for kind, file in ((LayerKind.LABELS, "labels.tif"), (LayerKind.MASK, "mask.png"), (LayerKind.MARKERS, "scribbles.png")):
        steps = len(window.document.history.undo_names)
        with qtbot.waitSignal(window.imports.imported, timeout=10_000) as done:
            assert window.imports.import_file(tmp_path / file, kind)
        layer = done.args[0]
        assert layer is not None and layer.kind is kind and layer in window.document.layers
        assert len(window.document.history.undo_names) == steps + 1, "one undoable step"
        imported[kind] = layer
    assert np.array_equal(imported[LayerKind.LABELS].data, labels)
    assert np.array_equal(imported[LayerKind.MASK].data, truth.astype(np.uint8))
    assert np.array_equal(imported[LayerKind.MARKERS].data, markers)
    assert menu_action(window, "File", "Import", "Markers").isEnabled()


def test_a_palette_photo_opens_in_colour_and_palette_scribbles_import_as_their_indices(window, qtbot, tmp_path):
    photo = Image.fromarray(data.coffee()).quantize(16)
    photo.save(tmp_path / "coffee16.png")
    assert window.open_paths([tmp_path / "coffee16.png"])
    np.testing.assert_array_equal(window.document.base_image.data, np.asarray(photo.convert("RGB")))

    # Scribbles saved by another program as a palette PNG whose colours are unlike the classes.
    scribbles = np.zeros(photo.size[::-1], np.uint8)
    scribbles[150:160, 200:400] = 1
    scribbles[5:10, :] = 2
    drawn = Image.fromarray(scribbles, mode="P")
    drawn.putpalette([0, 0, 0, 255, 255, 120, 230, 30, 30])
    drawn.save(tmp_path / "scribbles.png")
    with qtbot.waitSignal(window.imports.imported, timeout=10_000) as done:
        assert window.imports.import_file(tmp_path / "scribbles.png", LayerKind.MARKERS)
    np.testing.assert_array_equal(done.args[0].data, scribbles)


def test_import_of_another_size_or_a_colour_picture_is_refused_with_a_clear_message(window, photo, qtbot, tmp_path):
    path, image, truth = photo
    assert window.open_paths([path])
    io.write_mask(tmp_path / "small.png", truth[:100, :50])
    layers = len(window.document.layers)
    with qtbot.waitSignal(window.imports.imported, timeout=10_000) as done:
        window.imports.import_file(tmp_path / "small.png", LayerKind.MASK)
    assert done.args[0] is None and len(window.document.layers) == layers
    message = window.last_message_box.text()
    assert "50 x 100" in message and "320 x 240" in message and "image's size" in message

    with qtbot.waitSignal(window.imports.imported, timeout=10_000) as done:
        window.imports.import_file(path, LayerKind.LABELS)
    assert done.args[0] is None and "single-channel" in window.last_message_box.text()


def test_add_image_as_layer_reads_in_the_background(window, photo, qtbot, tmp_path):
    path, image, truth = photo
    assert window.open_paths([path])
    second = tmp_path / "second.png"
    io.write_image(second, image[::-1])
    with qtbot.waitSignal(window.files.added, timeout=10_000) as done:
        assert window.files.add_image_layers(second, background=True)
        assert window.file_progress.busy, "read by a worker after the call returned"
    assert done.args[0] is True
    added = window.document.layers.by_name("second.png")
    assert added is not None and added.kind is LayerKind.IMAGE
    np.testing.assert_array_equal(added.data, image[::-1])
    assert not window.file_progress.busy
