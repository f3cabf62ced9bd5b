"""The napari plugin in a real napari viewer (needs an X display with OpenGL).

Run by ``tests/napari/test_napari_plugin.py`` on a private Xvfb server. One viewer serves
the module (a viewer takes seconds to build); each test leaves it without layers or docks.
"""

from __future__ import annotations

import dataclasses

import napari
import numpy as np
import pytest
import qtpy
from magicgui.widgets import CheckBox, ComboBox, FileEdit, FloatSpinBox, SpinBox
from napari.layers import Image, Labels
from napari.utils.notifications import NotificationSeverity, notification_manager
from npe2 import PluginManager
from qtpy.QtCore import QThreadPool
from qtpy.QtWidgets import QApplication
from skimage import data
from skimage.draw import ellipse
from skimage.transform import resize

from maskwork.core.layers import Layer, LayerKind, LayerStack
from maskwork.napari import convert
from maskwork.napari.bridge import open_in_napari
from maskwork.napari.manifest import PLUGIN_NAME, widget_display_name
from maskwork.napari.widgets import OperatorWidget, widget_class
from maskwork.operators.registration.transform import Transform
from maskwork.operators.registry import OperatorSpec, all_operators

RUN_TIMEOUT_MS = 60_000


@pytest.fixture(scope="module")
def viewer(qapp):
    viewer = napari.Viewer(show=False)
    yield viewer
    viewer.close()


@pytest.fixture
def empty_viewer(viewer):
    """The module's viewer, emptied of layers and docked widgets after the test."""
    yield viewer
    viewer.window.remove_dock_widget("all")
    viewer.layers.clear()


@pytest.fixture
def notifications():
    """napari notifications shown during the test."""
    seen = []

    def record(notification):
        seen.append(notification)

    notification_manager.notification_ready.connect(record)
    yield seen
    notification_manager.notification_ready.disconnect(record)


def dock(viewer, op_id: str) -> OperatorWidget:
    widget = widget_class(op_id)(viewer)
    viewer.window.add_dock_widget(widget, name=op_id)
    return widget


def run_and_wait(qtbot, widget: OperatorWidget) -> str:
    """Press Run and wait for the run to end; returns how it ended."""
    with qtbot.waitSignal(widget.run_finished, timeout=RUN_TIMEOUT_MS) as ended:
        widget.run_button.native.click()
    return ended.args[0]


def iou(mask, truth) -> float:
    mask = np.asarray(mask, bool)
    return float(np.count_nonzero(mask & truth) / np.count_nonzero(mask | truth))


def cat_on_astronaut(rows: int = 240, cols: int = 320) -> tuple[np.ndarray, np.ndarray]:
    """The cat of ``chelsea()`` in an ellipse on ``astronaut()``: RGB uint8 and the true mask."""
    background = np.round(resize(data.astronaut(), (rows, cols), preserve_range=True)).astype(np.uint8)
    cat = np.round(resize(data.chelsea(), (rows, cols), preserve_range=True)).astype(np.uint8)
    truth = np.zeros((rows, cols), bool)
    truth[ellipse(rows * 0.5, cols * 0.5, rows * 0.32, cols * 0.27, shape=truth.shape)] = True
    image = background.copy()
    image[truth] = cat[truth]
    return image, truth


# ----------------------------------------------------------------------------- the manifest


def test_napari_opens_every_operator_from_the_plugin_menu(empty_viewer):
    manifest = PluginManager.instance().get_manifest(PLUGIN_NAME)
    manifest.validate_imports()
    assert {w.command for w in manifest.contributions.widgets} == {f"{PLUGIN_NAME}.{s.id}" for s in all_operators()}
    for spec in all_operators():
        # The same call napari's Plugins > maskwork menu makes.
        _, widget = empty_viewer.window.add_plugin_dock_widget(PLUGIN_NAME, widget_display_name(spec))
        assert isinstance(widget, OperatorWidget) and widget.spec is spec
        assert list(widget.inputs) == list(spec.inputs)
        for name in spec.inputs:
            assert widget.inputs[name].tooltip == spec.input_help[name]
        for param in spec.params:
            editor = widget.params[param.name]
            assert editor.tooltip == param.help, f"{spec.id}.{param.name}"
            expected = {"int": SpinBox, "float": FloatSpinBox, "bool": CheckBox, "choice": ComboBox, "path": FileEdit}
            if param.type in expected:
                assert isinstance(editor, expected[param.type]), f"{spec.id}.{param.name}"
            if param.type in ("int", "float") and param.min is not None:
                assert (editor.min, editor.max) == pytest.approx((param.min, param.max)), f"{spec.id}.{param.name}"
            # Every editor starts at the default, which the operator accepts as it is.
            assert widget.parameter_values()[param.name] == pytest.approx(param.default), f"{spec.id}.{param.name}"
        empty_viewer.window.remove_dock_widget(widget.native)


def test_a_method_choice_shows_only_its_own_parameters(empty_viewer):
    from qtpy.QtWidgets import QLabel

    empty_viewer.add_image(data.camera(), name="photo")
    widget = dock(empty_viewer, "denoise")
    form = widget.native

    def shown() -> set[str]:
        """Parameters whose editor and label a person would see in the dock."""
        labels = {label.text(): label for label in form.findChildren(QLabel)}
        shown = set()
        for name, editor in widget.params.items():
            visible = editor.native.isVisibleTo(form)
            assert labels[editor.label].isVisibleTo(form) == visible, name
            if visible:
                shown.add(name)
        return shown

    assert shown() == {"method", "h", "patch_size", "patch_distance"}
    combo = widget.params["method"].native
    combo.setCurrentIndex(combo.findText("bilateral"))  # what choosing it in the list does
    assert shown() == {"method", "sigma_color", "sigma_space", "d"}
    combo.setCurrentIndex(combo.findText("wavelet"))
    assert shown() == {"method", "wavelet_method"}
    # Hidden parameters keep their values: a run gets every one of them.
    assert widget.parameter_values() == {**widget.spec.defaults(), "method": "wavelet"}


# ----------------------------------------------------------------------------- running operators


def test_grabcut_widget_cuts_out_the_cat_with_a_box_and_a_scribble(empty_viewer, qtbot):
    image, truth = cat_on_astronaut()
    placed = {"scale": (2.0, 2.0), "translate": (10.0, 20.0)}
    empty_viewer.add_image(image, name="photo", **placed)
    rows, cols = np.nonzero(truth)
    # The box is drawn in world coordinates on a Shapes layer of its own (scale 1), as
    # napari's "new shapes layer" button makes it; the widget maps it onto the photo.
    top, left = 2 * (rows.min() - 6) + 10, 2 * (cols.min() - 6) + 20
    bottom, right = 2 * (rows.max() + 6) + 10, 2 * (cols.max() + 6) + 20
    empty_viewer.add_shapes([[[top, left], [top, right], [bottom, right], [bottom, left]]], shape_type="rectangle",
                            name="box")
    scribbles = np.zeros(truth.shape, np.uint8)
    scribbles[118:122, 120:200] = 1
    empty_viewer.add_labels(scribbles, name="scribbles", **placed)

    widget = dock(empty_viewer, "grabcut")
    # No Points layer: GrabCut's optional clicks stay empty.
    assert {name: getattr(combo.value, "name", None) for name, combo in widget.inputs.items()} == {
        "image": "photo", "markers": "scribbles", "points": None, "rect": "box"}
    assert run_and_wait(qtbot, widget) == "done"

    result = empty_viewer.layers["GrabCut mask"]
    assert isinstance(result, Labels)
    assert iou(result.data, truth) > 0.95
    assert tuple(result.scale) == (2.0, 2.0) and tuple(result.translate) == (10.0, 20.0)
    assert [layer.name for layer in empty_viewer.layers] == ["photo", "box", "scribbles", "GrabCut mask"]
    assert widget.progress_bar.value == 100 and "done" in widget.status.value
    # The result is no scribble layer for the next run.
    assert widget.inputs["markers"].value.name == "scribbles"


def test_landmark_registration_widget_aligns_side_by_side_images(empty_viewer, qtbot):
    camera = data.camera()
    fixed, moving = camera[100:300, 100:340], camera[112:312, 92:332]  # moving = fixed shifted by (-12, +8)
    empty_viewer.add_image(fixed, name="fixed")
    # Viewed side by side, as a person clicks landmark pairs.
    empty_viewer.add_image(moving, name="moving", translate=(0, 300))
    fixed_rc = np.array([(30.0, 40.0), (150.0, 60.0), (90.0, 200.0)])
    moving_world = fixed_rc + (-12, 8) + (0, 300)
    empty_viewer.add_points(np.vstack([fixed_rc, moving_world]), name="landmarks",
                            features={"label": [1, 2, 3, -1, -2, -3]})

    widget = dock(empty_viewer, "register_landmarks")
    # The first image opened is the fixed one, the later one moves.
    assert {name: combo.value.name for name, combo in widget.inputs.items()} == {
        "image": "fixed", "image2": "moving", "points": "landmarks"}
    assert run_and_wait(qtbot, widget) == "done"

    aligned = empty_viewer.layers["Landmarks image"]
    assert isinstance(aligned, Image) and tuple(aligned.translate) == (0.0, 0.0)
    inner = (slice(20, -20), slice(20, -20))
    error = np.abs(aligned.data[inner].astype(float) - fixed[inner]).mean()
    assert error < 2.0
    transform = aligned.metadata[convert.TRANSFORM_KEY]
    assert isinstance(transform, Transform)
    np.testing.assert_allclose(transform.matrix[:2, 2], (-8, 12), atol=0.1)


def test_inpaint_widget_fills_only_the_masked_region(empty_viewer, qtbot):
    image = np.ascontiguousarray(data.astronaut()[::2, ::2])
    mask = np.zeros(image.shape[:2], np.uint8)
    mask[100:130, 60:100] = 1
    empty_viewer.add_image(image, name="photo")
    empty_viewer.add_labels(mask, name="hole")

    widget = dock(empty_viewer, "inpaint")
    widget.params["method"].value = "telea"
    assert run_and_wait(qtbot, widget) == "done"

    out = empty_viewer.layers["Inpaint image"]
    assert out.rgb and out.data.shape == image.shape
    np.testing.assert_array_equal(out.data[mask == 0], image[mask == 0])
    assert not np.array_equal(out.data[mask == 1], image[mask == 1])


def test_input_error_becomes_a_notification_and_adds_nothing(empty_viewer, qtbot, notifications):
    empty_viewer.add_image(data.astronaut(), name="photo")
    widget = dock(empty_viewer, "grabcut")
    assert widget.inputs["rect"].value is None and widget.inputs["markers"].value is None

    assert run_and_wait(qtbot, widget) == "input error"

    assert [layer.name for layer in empty_viewer.layers] == ["photo"]
    errors = [n for n in notifications if n.severity == NotificationSeverity.ERROR]
    assert len(errors) == 1 and errors[0].message.startswith("GrabCut: ")
    assert widget.run_button.enabled and not widget.cancel_button.enabled


def test_a_crash_inside_the_operator_becomes_an_error_notification(empty_viewer, qtbot, notifications):
    empty_viewer.add_image(data.camera(), name="photo")
    widget = dock(empty_viewer, "threshold")

    def crash(**_):
        raise RuntimeError("the operator broke")

    widget.spec = dataclasses.replace(widget.spec, func=crash)
    assert run_and_wait(qtbot, widget) == "failed"

    assert [layer.name for layer in empty_viewer.layers] == ["photo"]
    assert any("the operator broke" in str(n.message) for n in notifications if n.severity == NotificationSeverity.ERROR)
    assert "failed" in widget.status.value and widget.run_button.enabled


def test_missing_required_layer_is_reported_before_running(empty_viewer, qtbot, notifications):
    widget = dock(empty_viewer, "threshold")
    assert run_and_wait(qtbot, widget) == "input error"
    assert "choose a layer for: image" in notifications[-1].message
    assert widget.worker is None


def test_cancel_stops_the_run_after_its_first_preview(empty_viewer, qtbot, notifications):
    empty_viewer.add_image(np.ascontiguousarray(data.astronaut()[::2, ::2]), name="photo")
    empty_viewer.add_shapes([[[10, 15], [10, 225], [250, 225], [250, 15]]], shape_type="rectangle", name="box")
    widget = dock(empty_viewer, "grabcut")
    # 30 rounds at full resolution take seconds: the run is cancelled long before its end.
    widget.params["iterations"].value = 30
    widget.params["coarse_megapixels"].value = 0.0
    previews = []

    def cancel_at_first_preview(event):
        if convert.is_preview(event.value) and not previews:
            previews.append(event.value.name)
            widget.cancel_button.native.click()

    empty_viewer.layers.events.inserted.connect(cancel_at_first_preview)
    try:
        assert run_and_wait(qtbot, widget) == "cancelled"
    finally:
        empty_viewer.layers.events.inserted.disconnect(cancel_at_first_preview)

    assert previews == ["GrabCut preview"]
    assert [layer.name for layer in empty_viewer.layers] == ["photo", "box"]  # preview gone, nothing added
    assert "cancelled" in notifications[-1].message
    assert widget.status.value == "GrabCut: cancelled" and widget.run_button.enabled


def grabcut_running_after_its_first_preview(viewer, qtbot) -> OperatorWidget:
    """A GrabCut dock whose run (seconds long) has just shown its first preview."""
    viewer.add_image(np.ascontiguousarray(data.astronaut()[::2, ::2]), name="photo")
    viewer.add_shapes([[[10, 15], [10, 225], [250, 225], [250, 15]]], shape_type="rectangle", name="box")
    widget = dock(viewer, "grabcut")
    widget.params["iterations"].value = 30
    widget.params["coarse_megapixels"].value = 0.0
    with qtbot.waitSignal(viewer.layers.events.inserted, timeout=RUN_TIMEOUT_MS):
        widget.run_button.native.click()
    return widget


def test_closing_the_viewer_cancels_a_running_operator(qtbot):
    viewer = napari.Viewer(show=False)
    widget = grabcut_running_after_its_first_preview(viewer, qtbot)
    worker = widget.worker

    viewer.close()

    assert worker.cancelled and widget.worker is None
    assert QThreadPool.globalInstance().waitForDone(RUN_TIMEOUT_MS)


def test_removing_the_dock_cancels_its_run_and_adds_nothing(empty_viewer, qtbot):
    widget = grabcut_running_after_its_first_preview(empty_viewer, qtbot)
    with qtbot.waitSignal(widget.run_finished, timeout=RUN_TIMEOUT_MS) as finished:
        empty_viewer.window.remove_dock_widget(widget.native)
    assert finished.args == ["cancelled"]
    assert [layer.name for layer in empty_viewer.layers] == ["photo", "box"], "no result from a dock that is gone"


# ----------------------------------------------------------------------------- conversions


def test_operators_take_the_plane_on_screen(empty_viewer):
    stack = empty_viewer.add_image(np.arange(3 * 4 * 5).reshape(3, 4, 5), name="stack", scale=(10, 1, 1))
    empty_viewer.dims.set_point(0, 20)
    np.testing.assert_array_equal(convert.current_plane(stack, empty_viewer.dims.point), stack.data[2])
    rgb = empty_viewer.add_image(np.zeros((8, 9, 3), np.uint8), name="rgb", rgb=True)
    assert convert.current_plane(rgb, empty_viewer.dims.point).shape == (8, 9, 3)


def test_a_box_covers_the_pixels_whose_centres_it_holds(empty_viewer):
    image = empty_viewer.add_image(np.zeros((50, 60)), name="image")
    shapes = empty_viewer.add_shapes(
        [np.array([[0, 0], [5, 5]]), np.array([[-3.5, 10.2], [20.5, 10.2], [20.5, 70], [-3.5, 70]])],
        shape_type=["line", "rectangle"],
    )
    # Rows 0..20 and columns 11..59 (cut at the image edge).
    assert convert.rect_from_shapes(shapes, image, (50, 60)) == (11, 0, 49, 21)


def test_points_take_their_sign_from_the_label_feature(empty_viewer):
    image = empty_viewer.add_image(np.zeros((50, 60)), name="image", scale=(2, 2))
    plain = empty_viewer.add_points([[10, 20], [30, 40]], name="plain")
    labelled = empty_viewer.add_points([[10, 20], [30, 40]], name="labelled", features={"label": [1, 0]})
    assert convert.prompt_points(plain, image) == [(5.0, 10.0, 1), (15.0, 20.0, 1)]
    assert convert.prompt_points(labelled, image) == [(5.0, 10.0, 1), (15.0, 20.0, 0)]
    with pytest.raises(convert.InputError, match="label"):
        convert.landmark_points(plain, image, image)


def test_random_walker_adds_labels_on_top_of_hidden_class_probabilities(empty_viewer, qtbot):
    coins = data.coins()[::2, ::2]
    markers = np.zeros(coins.shape, np.uint8)
    markers[coins < 60] = 2
    markers[coins > 180] = 5  # class ids need not be consecutive
    empty_viewer.add_image(coins, name="coins")
    empty_viewer.add_labels(markers, name="seeds")
    widget = dock(empty_viewer, "random_walker")
    assert run_and_wait(qtbot, widget) == "done"
    names = [layer.name for layer in empty_viewer.layers]
    assert names[2:] == ["Random walker P(class 2)", "Random walker P(class 5)", "Random walker labels"]
    assert not empty_viewer.layers[2].visible and empty_viewer.layers[-1].visible
    assert set(np.unique(empty_viewer.layers[-1].data)) == {2, 5}


def test_a_transform_alone_warps_the_moving_image():
    spec = OperatorSpec("shift", "Shift", "Registration", lambda **_: None, ("image", "image2"), ("image", "image2"),
                        ("transform",), (), (), "Shift.", {})
    moving = np.zeros((20, 30), np.uint8)
    moving[5, 7] = 255
    matrix = np.array([[1.0, 0, 3], [0, 1, 2], [0, 0, 1]])  # moving (x, y) -> fixed (x + 3, y + 2)
    result = convert.Result({"transform": Transform("translation", matrix, (20, 30), (20, 30))})
    ((warped, meta, layer_type),) = convert.result_layer_data(spec, result, {"image2": moving}, {"scale": (1, 1)})
    assert layer_type == "image" and meta["name"] == "Shift image"
    assert warped[7, 10] == 255 and meta["metadata"][convert.TRANSFORM_KEY] is result["transform"]


# ----------------------------------------------------------------------------- the bridge


def test_open_in_napari_shares_the_application_and_keeps_layers(qapp):
    from maskwork.app.application import create_application

    app = create_application()
    stack = LayerStack()
    rgb = data.astronaut()[:64, :80]
    stack.append(Layer(rgb, LayerKind.IMAGE, "photo"))
    markers = np.zeros((64, 80), np.uint8)
    markers[10:20, 10:20] = 1
    markers[40:50, 40:50] = 2
    stack.append(Layer(markers, LayerKind.MARKERS, "scribbles", opacity=0.5, blend="additive"))
    stack.append(Layer(markers > 0, LayerKind.MASK, "mask", visible=False, colormap="yellow"))
    stack.append(Layer(markers, LayerKind.PREVIEW, "preview"))
    stack.append(Layer(np.zeros((64, 80, 2), np.float32), LayerKind.IMAGE, "two channels"))

    viewer = open_in_napari(stack)
    try:
        assert qtpy.API_NAME == "PySide6" and QApplication.instance() is app
        assert [layer.name for layer in viewer.layers] == [
            "photo", "scribbles", "mask", "two channels [0]", "two channels [1]"]
        photo, scribbles, mask, *_ = viewer.layers
        assert isinstance(photo, Image) and photo.rgb
        assert isinstance(scribbles, Labels) and scribbles.opacity == 0.5 and scribbles.blending == "additive"
        assert photo.blending == "translucent"
        assert isinstance(mask, Labels) and not mask.visible
        np.testing.assert_allclose(mask.colormap.map(np.array([0, 1]))[:, 3], [0, 1])
        np.testing.assert_allclose(mask.colormap.map(np.array([1]))[0, :3], np.array([255, 225, 25]) / 255, atol=0.01)
        np.testing.assert_array_equal(scribbles.data, markers)
        assert not np.shares_memory(scribbles.data, stack[1].data)  # painting in napari leaves maskwork alone
        # maskwork's colours: foreground green, background red.
        np.testing.assert_allclose(scribbles.colormap.map(np.array([1, 2]))[:, :3],
                                   [[46 / 255, 204 / 255, 64 / 255], [230 / 255, 57 / 255, 70 / 255]], atol=0.01)
        again = open_in_napari([Layer(markers, LayerKind.LABELS, "classes")], viewer=viewer)
        assert again is viewer and viewer.layers[-1].name == "classes"
    finally:
        viewer.close()


def test_window_action_sends_the_document_and_reuses_the_open_viewer(qapp, qtbot, tmp_path, monkeypatch):
    """File > Open in napari in the real maskwork window: the image and a painted mask
    arrive; a second send goes to the same viewer; after it is closed, a new one opens."""
    from maskwork.app.application import create_application
    from maskwork.app.main_window import MainWindow
    from maskwork.core import io

    monkeypatch.setenv("MASKWORK_CONFIG_DIR", str(tmp_path / "config"))
    create_application()
    window = MainWindow()
    qtbot.addWidget(window)
    monkeypatch.setattr(window, "ask", lambda title, question: True)
    path = tmp_path / "coins.png"
    io.write_image(path, data.coins())
    window.open_paths([path])
    mask = np.zeros(data.coins().shape, np.uint8)
    mask[50:100, 60:120] = 1
    window.document.add_layer(Layer(mask, LayerKind.MASK, "coin mask"))

    window.napari_bridge.action_open_in_napari.trigger()
    viewer = window.napari_bridge.viewer
    try:
        viewer.window._qt_window.show()
        assert [layer.name for layer in viewer.layers] == ["coins.png", "coin mask"]
        np.testing.assert_array_equal(viewer.layers["coin mask"].data, mask)
        window.napari_bridge.action_open_in_napari.trigger()
        assert window.napari_bridge.viewer is viewer and len(viewer.layers) == 4
    finally:
        viewer.close()
    window.napari_bridge.action_open_in_napari.trigger()
    try:
        assert window.napari_bridge.viewer is not viewer and len(window.napari_bridge.viewer.layers) == 2
    finally:
        window.napari_bridge.viewer.close()
        window.document.history.mark_saved()
        window.close()


def test_reduced_partial_previews_are_stretched_over_the_image(empty_viewer, qtbot):
    """The scribble CNN previews at a reduced working size; the preview still covers the image."""
    photo = np.ascontiguousarray(data.astronaut()[::2, ::2])
    empty_viewer.add_image(photo, name="photo")
    scribbles = np.zeros(photo.shape[:2], np.uint8)
    scribbles[60:70, 100:160] = 1
    scribbles[5:12, 5:250] = 2
    empty_viewer.add_labels(scribbles, name="scribbles")
    widget = dock(empty_viewer, "scribble_cnn")
    widget.params["working_megapixels"].value = 0.02  # a quarter of the photo's pixels
    widget.params["steps"].value = 20
    shapes = []

    def record_preview(event):
        if convert.is_preview(event.value):
            shapes.append(event.value.data.shape)

    empty_viewer.layers.events.inserted.connect(record_preview)
    try:
        assert run_and_wait(qtbot, widget) == "done"
    finally:
        empty_viewer.layers.events.inserted.disconnect(record_preview)
    assert shapes and shapes[0] == photo.shape[:2]


def test_quick_select_refines_its_previous_mask_from_clicks_on_a_points_layer(empty_viewer, qtbot):
    image, truth = cat_on_astronaut()
    empty_viewer.add_image(image, name="photo")
    rows, cols = np.nonzero(truth)
    centre = [rows.mean(), cols.mean()]
    empty_viewer.add_points([centre], name="clicks", features={"label": [1]})
    widget = dock(empty_viewer, "click_select")
    assert widget.inputs["points"].value.name == "clicks"
    assert run_and_wait(qtbot, widget) == "done"
    first = empty_viewer.layers["Quick select mask"]
    assert iou(first.data, truth) > 0.7

    # A second click on the background; the first result is the mask the clicks refine.
    empty_viewer.layers.remove("clicks")
    empty_viewer.add_points([centre, [8, 8]], name="clicks", features={"label": [1, 0]})
    widget.inputs["points"].value = empty_viewer.layers["clicks"]
    widget.inputs["mask"].value = first
    assert run_and_wait(qtbot, widget) == "done"
    second = empty_viewer.layers[-1]
    assert second is not first and not np.asarray(second.data)[:16, :16].any()
    assert iou(second.data, truth) >= iou(first.data, truth) - 0.02


# ----------------------------------------------------------------------------- choosers and views


def test_a_renamed_layer_stays_chosen_and_the_registration_keeps_its_fixed_image(empty_viewer):
    empty_viewer.add_image(data.camera(), name="fixed")
    empty_viewer.add_image(np.roll(data.camera(), 5, axis=1), name="moving")  # napari makes it active
    widget = dock(empty_viewer, "register_features")
    assert (widget.inputs["image"].value.name, widget.inputs["image2"].value.name) == ("fixed", "moving")
    empty_viewer.layers["fixed"].name = "reference"
    assert (widget.inputs["image"].value.name, widget.inputs["image2"].value.name) == ("reference", "moving")
    empty_viewer.add_labels(np.zeros((512, 512), np.uint8), name="scribbles")
    grabcut = dock(empty_viewer, "grabcut")
    assert grabcut.inputs["markers"].value.name == "scribbles"
    empty_viewer.layers["scribbles"].name = "strokes"
    assert grabcut.inputs["markers"].value.name == "strokes", "not dropped to (none) by the rename"


def test_another_docks_result_never_fills_an_input_and_the_selection_stays(empty_viewer, qtbot):
    empty_viewer.add_image(data.camera(), name="photo")
    grabcut = dock(empty_viewer, "grabcut")
    assert grabcut.inputs["markers"].value is None
    scribbles = empty_viewer.add_labels(np.zeros((512, 512), np.uint8), name="scribbles")
    grabcut.inputs["markers"].value = None  # the person emptied it
    scribbles.mode = "paint"
    threshold = dock(empty_viewer, "threshold")
    assert run_and_wait(qtbot, threshold) == "done"
    assert grabcut.inputs["markers"].value is None, "a Threshold mask is no scribbles for GrabCut"
    assert empty_viewer.layers.selection.active is scribbles and scribbles.mode == "paint"


def test_prompts_of_other_planes_are_left_out_and_a_transposed_view_is_refused(empty_viewer, notifications, qtbot):
    stack = empty_viewer.add_image(np.zeros((15, 40, 50)), name="stack")
    empty_viewer.dims.set_point(0, 7)
    clicks = empty_viewer.add_points([[7, 10, 20], [3, 30, 30], [12, 5, 5]], name="clicks")
    assert convert.prompt_points(clicks, stack, empty_viewer.dims.point) == [(10.0, 20.0, 1)]
    widget = dock(empty_viewer, "threshold")
    assert run_and_wait(qtbot, widget) == "done"
    assert empty_viewer.layers[-1].name == "Threshold mask (plane 7)"
    empty_viewer.dims.transpose()  # the same plane, its axes swapped on screen: it runs
    assert run_and_wait(qtbot, widget) == "done"
    empty_viewer.dims.roll()  # a z-y or z-x plane: refused
    assert run_and_wait(qtbot, widget) == "input error"
    assert "transposed" in notifications[-1].message
    empty_viewer.dims.order = (0, 1, 2)


def test_the_mask_of_a_rotated_image_is_rotated_with_it(empty_viewer, qtbot):
    image = empty_viewer.add_image(data.coins(), name="coins", rotate=30, translate=(5, 7))
    widget = dock(empty_viewer, "threshold")
    assert run_and_wait(qtbot, widget) == "done"
    mask = empty_viewer.layers["Threshold mask"]
    np.testing.assert_allclose(mask.data_to_world([100, 50]), image.data_to_world([100, 50]))
