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
