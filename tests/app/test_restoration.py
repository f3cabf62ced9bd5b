"""Issue 5 through the window: denoise with suggested parameters, compare by PSNR/SSIM."""

import numpy as np
from skimage import data

from maskwork.core import io, measure
from maskwork.core.layers import LayerKind
from maskwork.operators import get


def test_denoise_suggests_parameters_applies_and_scores_against_the_clean_photo(window, tmp_path, qtbot):
    clean = data.astronaut()[100:356, 100:356]
    rng = np.random.default_rng(1)
    noisy = np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype(np.uint8)
    io.write_image(tmp_path / "noisy.png", noisy)
    io.write_image(tmp_path / "clean.png", clean)
    window.open_paths([tmp_path / "noisy.png", tmp_path / "clean.png"])
    window.document.layers.selected = window.document.layers[0]  # the noisy photo is the base
    panel = window.operator_panel
    window.choose_operator(get("denoise"))
    qtbot.waitUntil(lambda: panel.suggestion_button.isVisibleTo(panel), timeout=10_000)
    assert "sigma" in panel.suggestion_label.text()
    panel.suggestion_button.click()
    suggested_h = panel.values()["h"]
    assert 5 < suggested_h < 40  # noise of 20 grey levels
    with qtbot.waitSignal(window.runner.applied, timeout=60_000) as applied:
        window.action_apply.trigger()
    (denoised,) = applied.args[0]
    assert denoised.kind is LayerKind.IMAGE and denoised.data.dtype == np.uint8

    # Measure panel: the denoised layer against the clean reference, then the noisy one.
    mp = window.measure_panel
    mp.image_a.setCurrentIndex(mp.image_a.findText("clean.png"))
    mp.image_b.setCurrentIndex(mp.image_b.findText(denoised.name))
    with qtbot.waitSignal(mp.refreshed, timeout=10_000):
        mp.refresh()
    improved = measure.psnr(clean, denoised.data)
    assert mp.quality_label.text().startswith(f"PSNR {improved:.2f} dB")
    mp.image_b.setCurrentIndex(mp.image_b.findText("noisy.png"))
    with qtbot.waitSignal(mp.refreshed, timeout=10_000):
        mp.refresh()
    assert improved > measure.psnr(clean, noisy) + 3
    difference = mp.add_image_difference_layer()
    assert difference.kind is LayerKind.IMAGE and difference.data.max() > 0



def test_remove_object_from_a_painted_mask(window, tmp_path, qtbot):
    from maskwork.widgets.canvas import Tool
    from window_driver import drag

    photo = np.stack([data.brick()[:200, :240]] * 3, axis=2)
    io.write_image(tmp_path / "brick.png", photo)
    window.open_paths([tmp_path / "brick.png"])
    window.layer_panel.action_new_mask.trigger()
    mask = window.document.layers.selected
    window.tool_actions[Tool.BRUSH].trigger()
    window.canvas.brush_radius = 6
    drag(window.canvas, [(100, 60), (100, 120), (110, 170)])  # paint over "the object"
    assert mask.data.sum() > 500
    window.choose_operator(get("remove_object"))
    with qtbot.waitSignal(window.runner.applied, timeout=60_000) as applied:
        window.action_apply.trigger()
    (filled,) = applied.args[0]
    grown = np.zeros(mask.shape, bool)
    grown[80:130, 40:190] = True  # the painted stroke plus its growth lies inside this box
    np.testing.assert_array_equal(filled.data[~grown], photo[~grown])  # nothing outside changes
    hole = mask.data > 0
    naive = photo.copy()
    naive[hole] = photo[~hole].mean(axis=0)
    assert measure.psnr(photo, filled.data, mask=hole) > measure.psnr(photo, naive, mask=hole)


def test_denoise_form_shows_only_the_parameters_of_the_chosen_method(window, tmp_path, qtbot):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication, QComboBox, QLabel, QWidget
    from window_driver import menu_action

    io.write_image(tmp_path / "camera.png", data.camera()[:128, :128])
    window.open_paths([tmp_path / "camera.png"])
    menu_action(window, "Restore", "Denoise").trigger()
    panel = window.operator_panel
    spec = panel.operator
    assert spec.id == "denoise"

    def shown_rows() -> set[str]:
        """Parameters whose editor and label a person sees."""
        shown = set()
        for param in spec.params:
            editor = panel.findChild(QWidget, f"param_{param.name}")
            label = next(label for label in panel.findChildren(QLabel) if label.buddy() is editor)
            assert editor.isVisible() == label.isVisible()
            if editor.isVisible():
                shown.add(param.name)
        return shown

    assert shown_rows() == {"method", "h", "patch_size", "patch_distance"}

    # Pick "bilateral" in the method combo box as a person does: open it, click the item.
    combo = panel.findChild(QComboBox, "param_method")
    qtbot.mouseClick(combo, Qt.MouseButton.LeftButton)
    popup = combo.view()
    qtbot.waitUntil(popup.isVisible)
    # The popup ignores a release that comes within a double-click interval of opening.
    qtbot.wait(QApplication.doubleClickInterval() + 50)
    item = popup.visualRect(popup.model().index(spec.param("method").choices.index("bilateral"), 0))
    with qtbot.waitSignal(panel.params_changed) as changed:
        qtbot.mouseClick(popup.viewport(), Qt.MouseButton.LeftButton, pos=item.center())
    assert changed.args[0]["method"] == "bilateral"
    assert shown_rows() == {"method", "sigma_color", "sigma_space", "d"}
    # Hidden parameters keep their values, and a run still gets every parameter.
    assert panel.values() == {**spec.defaults(), "method": "bilateral"}

    combo.setFocus()
    qtbot.keyClick(combo, Qt.Key.Key_Down)  # the next method, tv_chambolle
    assert shown_rows() == {"method", "weight"}
    panel.reset_button.click()
    assert shown_rows() == {"method", "h", "patch_size", "patch_distance"}
