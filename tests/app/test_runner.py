"""The runner in the window: what an edit, a Cancel or another selected layer does to a run
that is going or a preview that is shown, and what belongs to one document only."""

import dataclasses
import threading

import cv2
import numpy as np
from skimage import data
from window_driver import drag

from maskwork.core import io
from maskwork.core.layers import Layer, LayerKind
from maskwork.operators import get
from maskwork.widgets.canvas import Tool


def _large_hole(window, tmp_path):
    """The cat at 1500 x 2000 with a 600 x 700 px hole: an exemplar fill of seconds that
    shows coarse partial results first."""
    cat = cv2.resize(data.chelsea(), (2000, 1500), interpolation=cv2.INTER_CUBIC)
    io.write_image(tmp_path / "cat.png", cat)
    assert window.open_paths([tmp_path / "cat.png"])
    hole = np.zeros(cat.shape[:2], np.uint8)
    hole[500:1100, 700:1400] = 1
    mask = window.document.add_layer(Layer(hole, LayerKind.MASK, "hole"))
    window.document.layers.selected = mask
    window.choose_operator(get("inpaint"))
    return cat


def test_an_edit_while_an_apply_runs_lets_the_apply_finish(window, tmp_path, qtbot):
    """A parameter change or a stroke during an Apply used to turn it into a preview: the
    edit's re-preview stopped the run, and nothing was applied."""
    _large_hole(window, tmp_path)
    runner = window.runner
    window.action_apply.trigger()
    apply_session = runner.session
    qtbot.waitUntil(lambda: runner.preview_layer is not None, timeout=60_000)  # a partial is shown
    with qtbot.waitSignal(runner.applied, timeout=120_000) as applied:
        runner.set_params({**runner.params, "patch_size": 11})
        window.tool_actions[Tool.BRUSH].trigger()
        drag(window.canvas, [(200, 200), (260, 260)])
    assert not apply_session.cancel_event.is_set()
    assert [layer.name for layer in applied.args[0]] == ["Inpaint image"]
    assert applied.args[0][0] in window.document.layers
    assert runner.preview_layer is None


def test_cancel_drops_the_partial_result_and_later_edits_start_nothing(window, tmp_path, qtbot):
    cat = _large_hole(window, tmp_path)
    runner = window.runner
    assert not runner.auto_preview
    window.action_apply.trigger()
    qtbot.waitUntil(lambda: runner.preview_layer is not None, timeout=60_000)
    steps = list(window.document.history.undo_names)
    window.action_cancel.trigger()
    assert runner.preview_layer is None and not runner.busy
    assert window.document.history.undo_names == steps
    window.tool_actions[Tool.BRUSH].trigger()
    drag(window.canvas, [(1200, 300), (1250, 350)])  # a correction of the mask
    qtbot.wait(300)  # the debounce of an edit's re-preview is 10-150 ms
    assert not runner.busy and runner.preview_layer is None
    np.testing.assert_array_equal(window.document.base_image.data, cat)


def test_selecting_another_image_updates_the_shown_preview_to_what_apply_adds(window, tmp_path, qtbot):
    cat = data.chelsea()
    io.write_image(tmp_path / "upright.png", cat)
    io.write_image(tmp_path / "flipped.png", cat[::-1].copy())
    assert window.open_paths([tmp_path / "upright.png", tmp_path / "flipped.png"])
    upright, flipped = window.document.layers.of_kind(LayerKind.IMAGE)
    hole = np.zeros(cat.shape[:2], np.uint8)
    hole[120:160, 180:260] = 1
    window.document.add_layer(Layer(hole, LayerKind.MASK, "hole"))
    window.document.layers.selected = upright
    window.choose_operator(get("inpaint"), {"method": "telea"})
    runner = window.runner
    with qtbot.waitSignal(runner.busy_changed, check_params_cb=lambda busy: not busy, timeout=30_000):
        window.action_preview.trigger()
    expected = {layer.name: get("inpaint").run({"image": layer.data, "mask": hole}, {"method": "telea"})["image"]
                for layer in (upright, flipped)}
    np.testing.assert_array_equal(runner.preview_layer.data, expected["upright.png"])

    with qtbot.waitSignal(runner.busy_changed, check_params_cb=lambda busy: not busy, timeout=30_000):
        window.document.layers.selected = flipped
    np.testing.assert_array_equal(runner.preview_layer.data, expected["flipped.png"])
    with qtbot.waitSignal(runner.applied, timeout=30_000) as applied:
        window.action_apply.trigger()
    np.testing.assert_array_equal(applied.args[0][0].data, expected["flipped.png"])

    # Selecting the mask after the bottom image feeds the same layers (the image input
    # falls back to the bottom image): nothing re-runs.
    window.document.layers.selected = upright
    with qtbot.waitSignal(runner.busy_changed, check_params_cb=lambda busy: not busy, timeout=30_000):
        window.action_preview.trigger()
    with qtbot.assertNotEmitted(runner.busy_changed, wait=200):
        window.document.layers.selected = window.document.layers.of_kind(LayerKind.MASK)[0]


def _gated_inpaint(held_image):
    """Inpaint whose run on ``held_image`` waits for the returned event: a re-preview that
    is still going while the person clicks on."""
    inpaint = get("inpaint")
    gate = threading.Event()

    def run(image, mask, ctx=None, **params):
        if np.array_equal(image, held_image):
            gate.wait(20)
        return inpaint.func(image, mask, ctx=ctx, **params)

    return dataclasses.replace(inpaint, func=run), gate


def _upright_and_flipped(window, tmp_path):
    cat = data.chelsea()
    io.write_image(tmp_path / "upright.png", cat)
    io.write_image(tmp_path / "flipped.png", cat[::-1].copy())
    assert window.open_paths([tmp_path / "upright.png", tmp_path / "flipped.png"])
    hole = np.zeros(cat.shape[:2], np.uint8)
    hole[120:160, 180:260] = 1
    window.document.add_layer(Layer(hole, LayerKind.MASK, "hole"))
    upright, flipped = window.document.layers.of_kind(LayerKind.IMAGE)
    telea = {layer.name: get("inpaint").run({"image": layer.data, "mask": hole}, {"method": "telea"})["image"]
             for layer in (upright, flipped)}
    return upright, flipped, telea


def _re_preview_held_at_the_gate(window, qtbot, first, then):
    """A Telea preview of image ``first``, then ``then`` selected: its re-preview waits
    at the gate (returned with the runner) until the test opens it."""
    spec, gate = _gated_inpaint(then.data)
    runner = window.runner
    window.document.layers.selected = first
    runner.set_operator(spec, {"method": "telea"})
    with qtbot.waitSignal(runner.busy_changed, check_params_cb=lambda busy: not busy, timeout=30_000):
        runner.preview()
    window.document.layers.selected = then
    qtbot.waitUntil(lambda: runner.busy, timeout=5000)
    return runner, gate


def test_selecting_back_while_the_re_preview_runs_previews_and_applies_the_selected_image(window, tmp_path, qtbot):
    upright, flipped, telea = _upright_and_flipped(window, tmp_path)
    runner, gate = _re_preview_held_at_the_gate(window, qtbot, upright, flipped)
    window.document.layers.selected = upright  # ... and the person clicks back
    qtbot.waitUntil(lambda: not runner.busy and runner.preview_layer is not None, timeout=30_000)
    gate.set()
    np.testing.assert_array_equal(runner.preview_layer.data, telea["upright.png"])
    with qtbot.waitSignal(runner.applied, timeout=30_000) as applied:
        runner.apply()
    np.testing.assert_array_equal(applied.args[0][0].data, telea["upright.png"])


def test_selecting_another_image_while_the_first_preview_runs_redoes_it(window, tmp_path, qtbot):
    """Auto-preview off, nothing shown yet: the running preview still follows the change."""
    upright, flipped, telea = _upright_and_flipped(window, tmp_path)
    spec, gate = _gated_inpaint(upright.data)
    runner = window.runner
    window.document.layers.selected = upright
    runner.set_operator(spec, {"method": "telea"})
    assert not runner.auto_preview
    runner.preview()
    window.document.layers.selected = flipped  # while upright's preview waits at the gate
    qtbot.waitUntil(lambda: not runner.busy and runner.preview_layer is not None, timeout=30_000)
    gate.set()
    np.testing.assert_array_equal(runner.preview_layer.data, telea["flipped.png"])


def test_selecting_scribbles_where_an_empty_scribble_layer_fed_the_preview_re_runs_it(window, photo, qtbot):
    path, image, truth = photo
    assert window.open_paths([path])
    document = window.document
    scribbles = np.zeros(image.shape[:2], np.uint8)
    scribbles[110:130, 130:190] = 1
    scribbles[5:12, 5:300] = 2
    drawn = document.add_layer(Layer(scribbles, LayerKind.MARKERS, "scribbles"))
    empty = document.add_layer(Layer(np.zeros_like(scribbles), LayerKind.MARKERS, "empty"))
    document.add_point(120, 160, 1)
    document.add_point(230, 10, 0)
    spec, runner = get("random_walker"), window.runner
    document.layers.selected = empty  # fed nothing: the preview comes from the clicks alone
    runner.set_operator(spec)
    with qtbot.waitSignal(runner.busy_changed, check_params_cb=lambda busy: not busy, timeout=30_000):
        assert runner.preview()
    with qtbot.waitSignal(runner.busy_changed, check_params_cb=lambda busy: not busy, timeout=30_000):
        document.layers.selected = drawn
    expected = spec.run({"image": image, "markers": scribbles, "points": list(document.points)}, runner.params)
    with qtbot.waitSignal(runner.applied, timeout=30_000) as applied:
        runner.apply()
    np.testing.assert_array_equal(applied.args[0][0].data, expected[spec.outputs[0]])


def test_cancelling_the_re_preview_of_an_edit_drops_the_outdated_preview(window, tmp_path, qtbot):
    upright, flipped, telea = _upright_and_flipped(window, tmp_path)
    runner, gate = _re_preview_held_at_the_gate(window, qtbot, flipped, upright)  # before any partial
    window.action_cancel.trigger()
    gate.set()
    assert runner.preview_layer is None  # it showed flipped, no longer what Apply would add
    with qtbot.assertNotEmitted(runner.busy_changed, wait=300):
        runner.set_params({**runner.params, "radius": 4})


def test_after_an_apply_the_first_visible_result_is_selected_not_a_hidden_probability(window, photo, qtbot):
    path, image, truth = photo
    assert window.open_paths([path])
    scribbles = np.zeros(image.shape[:2], np.uint8)
    scribbles[110:130, 130:190] = 1
    scribbles[5:12, 5:300] = 2
    window.document.add_layer(Layer(scribbles, LayerKind.MARKERS, "scribbles"))
    window.choose_operator(get("random_walker"))
    with qtbot.waitSignal(window.runner.applied, timeout=30_000) as applied:
        window.action_apply.trigger()
    added = applied.args[0]
    assert any(not layer.visible for layer in added)  # the probability planes, hidden
    assert window.document.layers.selected is added[0] and added[0].visible
    # The next operator takes the photo, not a probability plane, as its image.
    window.choose_operator(get("threshold"))
    chosen = {}
    window.runner.gather_inputs(window.runner.spec, chosen)
    assert chosen["image"].name == path.name


def test_a_preview_whose_box_is_undone_is_cleared(window, photo, qtbot):
    path, image, truth = photo
    assert window.open_paths([path])
    window.choose_operator(get("grabcut"))
    runner = window.runner
    runner.set_auto_preview(True)
    with qtbot.waitSignal(runner.busy_changed, check_params_cb=lambda busy: not busy, timeout=30_000):
        window.document.set_rect((40, 20, 240, 200))
    assert runner.preview_layer is not None
    window.action_undo.trigger()
    qtbot.waitUntil(lambda: runner.preview_layer is None, timeout=5000)
    assert window.document.rect is None and "needs a box" in window.statusBar().currentMessage()


def _pair(tmp_path):
    fixed = data.astronaut()
    moving = cv2.warpAffine(fixed, cv2.getRotationMatrix2D((256, 256), 8, 1.05), (512, 512))
    io.write_image(tmp_path / "fixed.png", fixed)
    io.write_image(tmp_path / "moving.png", moving)
    return tmp_path / "fixed.png", tmp_path / "moving.png"


def test_a_registration_transform_belongs_to_its_document(window, tmp_path, qtbot, monkeypatch):
    assert window.open_paths(list(_pair(tmp_path)))
    window.choose_operator(get("register_features"))
    with qtbot.waitSignal(window.runner.applied, timeout=60_000):
        window.action_apply.trigger()
    assert window.transforms.current_transform is not None
    io.write_image(tmp_path / "other.png", data.chelsea())
    assert window.open_paths([tmp_path / "other.png"])
    errors = []
    monkeypatch.setattr(window, "show_error", lambda title, message, details="": errors.append(title))
    assert window.transforms.current_transform is None
    assert window.transforms.export_transform(tmp_path / "stale.json") is None
    assert errors == ["No transform"] and not (tmp_path / "stale.json").exists()


def test_registering_the_only_open_image_asks_for_a_second_one(window, tmp_path, qtbot):
    fixed, _ = _pair(tmp_path)
    assert window.open_paths([fixed])
    window.choose_operator(get("register_features"))
    combos = window.operator_panel.source_combos
    assert combos["image"].currentText() == combos["image2"].currentText() == "fixed.png"  # the only choice
    with qtbot.waitSignal(window.runner.failed, timeout=30_000) as failed:
        window.action_apply.trigger()
    assert failed.args[0].message == "Feature-based needs a second image layer first"
    assert [layer.name for layer in window.document.layers] == ["fixed.png"]
