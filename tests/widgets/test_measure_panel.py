"""The measure panel's numbers follow the layers and their edits."""

import numpy as np
import pytest
from skimage import data

from maskwork.core.document import Document
from maskwork.core.layers import Layer, LayerKind
from maskwork.widgets.measure_panel import MeasurePanel


@pytest.fixture
def panel(qtbot):
    doc = Document()
    doc.add_layer(Layer(data.camera(), "image", "camera"))
    a = np.zeros((512, 512), np.uint8)
    a[100:300, 100:300] = 1
    b = np.zeros((512, 512), np.uint8)
    b[150:350, 100:300] = 1
    doc.add_layer(Layer(a, "mask", "A"))
    doc.add_layer(Layer(b, "mask", "B"))
    widget = MeasurePanel(doc)
    qtbot.addWidget(widget)
    widget.show()
    refresh(qtbot, widget)
    return widget


def refresh(qtbot, panel):
    with qtbot.waitSignal(panel.refreshed, timeout=5000):
        panel.refresh()


def test_overlap_numbers_and_difference_layer(panel, qtbot):
    panel.combo_a.setCurrentIndex(panel.combo_a.findText("A"))
    panel.combo_b.setCurrentIndex(panel.combo_b.findText("B"))
    refresh(qtbot, panel)
    # 150 of 250 rows overlap: IoU 150/250 = 0.6, Dice 2*150/400 = 0.75.
    assert panel.overlap_label.text() == "IoU 0.6000   Dice 0.7500"
    layer = panel.add_difference_layer()
    assert layer.kind is LayerKind.LABELS and set(np.unique(layer.data)) == {0, 1, 2, 3}
    assert panel.document.history.undo_names[-1] == "Difference A vs B"


def test_objects_follow_edits(panel, qtbot):
    panel.objects_combo.setCurrentIndex(panel.objects_combo.findText("A"))
    refresh(qtbot, panel)
    assert panel.objects_label.text().startswith("1 object   total 40000 px")
    layer = panel.objects_combo.currentData().layer
    panel.document.write(layer, (slice(400, 420), slice(400, 420)), np.ones((20, 20), np.uint8), "blob")
    qtbot.waitUntil(lambda: panel.objects_label.text().startswith("2 objects"), timeout=2000)


def test_histogram_and_threshold_lines(panel):
    x, y = panel.histogram_plot.curve_data()
    assert len(x) == 257 and y.max() > 0
    panel.show_thresholds([87.5])
    panel.show_thresholds([50.0, 120.0])
    assert panel.threshold_values == [50.0, 120.0]


def test_an_image_pair_that_cannot_be_measured_leaves_the_other_rows_current(panel, qtbot):
    doc = panel.document
    doc.add_layer(Layer(np.zeros((5, 5), np.uint8), "image", "tiny a"))
    doc.add_layer(Layer(np.ones((5, 5), np.uint8), "image", "tiny b"))
    panel.image_a.setCurrentIndex(panel.image_a.findText("tiny a"))
    panel.image_b.setCurrentIndex(panel.image_b.findText("tiny b"))
    panel.combo_a.setCurrentIndex(panel.combo_a.findText("A"))
    panel.combo_b.setCurrentIndex(panel.combo_b.findText("B"))
    panel.objects_combo.setCurrentIndex(panel.objects_combo.findText("B"))
    refresh(qtbot, panel)
    assert panel.quality_label.text().startswith("cannot measure:")  # 7x7 SSIM windows
    assert panel.overlap_label.text() == "IoU 0.6000   Dice 0.7500"
    assert panel.objects_label.text().startswith("1 object   total 40000 px")


def test_images_of_different_types_are_compared_on_one_scale(panel, qtbot):
    doc = panel.document
    doc.add_layer(Layer(data.camera().astype(np.float32) / 255, "image", "camera float"))
    panel.image_a.setCurrentIndex(panel.image_a.findText("camera"))
    panel.image_b.setCurrentIndex(panel.image_b.findText("camera float"))
    refresh(qtbot, panel)
    psnr = float(panel.quality_label.text().split()[1])
    assert psnr > 100 and "SSIM 1.0000" in panel.quality_label.text(), "the same picture (7 dB on raw values)"
    assert "on 0..1: uint8 against float32" in panel.quality_label.text()


def test_a_labels_layers_objects_are_its_ids_however_many_pieces(panel, qtbot):
    labels = np.zeros((512, 512), np.uint8)
    labels[10:20, 10:20] = 1
    labels[100:120, 100:120] = 1
    panel.document.add_layer(Layer(labels, "labels", "classes"))
    panel.objects_combo.setCurrentIndex(panel.objects_combo.findText("classes"))
    refresh(qtbot, panel)
    assert panel.objects_label.text().startswith("1 object   total 500 px")


def test_unknown_pixels_of_a_float_image_stay_unknown_against_an_eight_bit_one(panel, qtbot):
    holed = data.camera().astype(np.float32) / 255
    holed[100:110, 100:110] = np.nan
    panel.document.add_layer(Layer(holed, "image", "camera with a hole"))
    panel.image_a.setCurrentIndex(panel.image_a.findText("camera"))
    panel.image_b.setCurrentIndex(panel.image_b.findText("camera with a hole"))
    refresh(qtbot, panel)
    assert float(panel.quality_label.text().split()[1]) > 100, "the NaN pixels left out, not read as black"


def test_a_labels_layers_few_classes_are_listed_once_counted_in_the_background(panel, qtbot, monkeypatch):
    import threading

    from maskwork.widgets import measure_panel

    counted_in = []
    count = measure_panel.listed_classes
    monkeypatch.setattr(measure_panel, "listed_classes",
                        lambda labels: counted_in.append(threading.current_thread()) or count(labels))
    seeded = np.zeros((512, 512), np.uint16)
    seeded[:, 256:] = 2
    seeded[100:200, 100:200] = 1
    objects = np.arange(512 * 512, dtype=np.uint16).reshape(512, 512) // 2000  # 132 ids
    with qtbot.waitSignal(panel.classes_listed, timeout=5000):
        panel.document.add_layer(Layer(seeded, "labels", "seeded"))
    qtbot.waitUntil(lambda: panel.combo_a.findText("seeded = 2") >= 0, timeout=5000)
    assert counted_in and threading.main_thread() not in counted_in, "a large layer's count stalls no frame"
    panel.combo_a.setCurrentIndex(panel.combo_a.findText("seeded = 1"))
    panel.document.write(panel.document.layers[-1], (slice(0, 10), slice(0, 10)),
                         np.full((10, 10), 3, np.uint16), "a third class")
    with qtbot.waitSignal(panel.classes_listed, timeout=5000):
        panel.document.add_layer(Layer(objects, "labels", "objects"))
    qtbot.waitUntil(lambda: panel.combo_a.findText("seeded = 3") >= 0, timeout=5000)
    assert panel.combo_a.currentText() == "seeded = 1", "the choice stays while the classes are counted again"
    assert not [panel.combo_a.itemText(i) for i in range(panel.combo_a.count())
                if panel.combo_a.itemText(i).startswith("objects =")], "objects one by one are no classes to list"
