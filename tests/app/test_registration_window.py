"""Issue 6 through the window: align a moving photo, judge it, export and re-use the transform."""

import json

import cv2
import numpy as np
from skimage import data

from maskwork.core import io
from maskwork.core.layers import Layer, LayerKind
from maskwork.operators import get


def test_feature_registration_applies_and_its_transform_moves_a_mask(window, tmp_path, qtbot):
    fixed = data.astronaut()
    true = cv2.getRotationMatrix2D((256, 256), 8, 1.05)
    true[:, 2] += (12, -7)
    moving = cv2.warpAffine(fixed, true, (512, 512))  # moving = true(fixed)
    io.write_image(tmp_path / "fixed.png", fixed)
    io.write_image(tmp_path / "moving.png", moving)
    window.open_paths([tmp_path / "fixed.png", tmp_path / "moving.png"])
    assert window.document.base_image.name == "fixed.png"

    window.choose_operator(get("register_features"))
    assert window.operator_views.metric_plot.isVisibleTo(window.operator_panel)
    with qtbot.waitSignal(window.runner.applied, timeout=60_000) as applied:
        window.action_apply.trigger()
    (warped,) = applied.args[0]
    transform = window.runner.last_transform
    assert warped.kind is LayerKind.IMAGE and warped.metadata["transform"] is transform
    # The found matrix maps moving -> fixed: it undoes the known warp.
    expected = np.linalg.inv(np.vstack([true, [0, 0, 1]]))
    corners = np.array([[0, 0, 1], [511, 0, 1], [0, 511, 1], [511, 511, 1]], float).T
    error = np.abs((transform.matrix @ corners)[:2] / (transform.matrix @ corners)[2] - (expected @ corners)[:2])
    assert error.max() < 1.0
    centre = (slice(150, 350), slice(150, 350))
    assert np.abs(warped.data[centre].astype(int) - fixed[centre]).mean() < 8

    # The matches on request: fixed and moving side by side, inliers in green.
    matches = window.transforms.show_feature_matches()
    assert matches.shape == (512, 1024) and matches.data.shape[2] == 3
    rgb = matches.data.astype(int)
    green_lines = (rgb[..., 1] > 200) & (rgb[..., 0] < 60) & (rgb[..., 2] < 60)
    assert green_lines.sum() > 100
    window.action_undo.trigger()

    # Judge it: a checkerboard overlay of fixed and warped.
    panel = window.alignment_panel
    panel.moving_combo.setCurrentIndex(panel.moving_combo.findText(warped.name))
    panel.mode = "checkerboard"
    assert panel.overlay is not None and panel.overlay.shape == (512, 512)
    assert window.canvas._overlay_view is not None
    panel.mode = "off"
    assert window.canvas._overlay_view is None

    # Export the transform and carry it over to a mask drawn on the moving image.
    saved = window.transforms.export_transform(tmp_path / "transform.json")
    assert json.loads(saved.read_text())["type"] in ("similarity", "affine", "rigid")
    square = np.zeros((512, 512), np.uint8)
    square[200:260, 220:300] = 1
    moved_square = cv2.warpAffine(square, true, (512, 512), flags=cv2.INTER_NEAREST)
    mask = window.document.add_layer(Layer(moved_square, "mask", "on moving"))
    window.document.layers.selected = mask
    aligned = window.transforms.apply_transform_to_selected()
    assert aligned.kind is LayerKind.MASK and set(np.unique(aligned.data)) <= {0, 1}
    overlap = (aligned.data.astype(bool) & square.astype(bool)).sum() / (aligned.data.astype(bool) | square.astype(bool)).sum()
    assert overlap > 0.9
    window.action_undo.trigger()
    assert aligned not in window.document.layers


def test_landmark_pairs_clicked_on_the_canvas_update_the_transform_after_each_pair(window, tmp_path, qtbot):
    from maskwork.widgets.canvas import Tool
    from window_driver import click

    fixed = data.camera()
    true = np.array([[1.0, 0.0, 15.0], [0.0, 1.0, -10.0]])  # moving = fixed shifted by (15, -10)
    moving = cv2.warpAffine(fixed, true, (512, 512))
    io.write_image(tmp_path / "fixed.png", fixed)
    io.write_image(tmp_path / "moving.png", moving)
    window.open_paths([tmp_path / "fixed.png", tmp_path / "moving.png"])
    window.choose_operator(get("register_landmarks"))
    window.operator_panel.set_operator(get("register_landmarks"), {"model": "similarity"})
    window.runner.set_params(window.operator_panel.values())
    window.operator_panel.auto_preview = True
    window.runner.set_auto_preview(True)
    window.tool_actions[Tool.LANDMARK].trigger()
    pairs = [((100, 120), (90, 135)), ((300, 80), (290, 95)), ((400, 400), (390, 415))]
    for number, (on_fixed, on_moving) in enumerate(pairs, start=1):
        click(window.canvas, *on_fixed)
        click(window.canvas, *on_moving)
        assert window.document.points[-1][2] == -number
        if number >= 2:  # a similarity needs two pairs: from then on every pair re-previews
            qtbot.waitUntil(
                lambda: not window.runner.busy and f"residual\u00a0{number}" in window.operator_panel.scores_label.text(),
                timeout=20_000,
            )
    assert [label for _, _, label in window.document.points] == [1, -1, 2, -2, 3, -3]
    assert "residual\u00a03" in window.operator_panel.scores_label.text()
    with qtbot.waitSignal(window.runner.applied, timeout=30_000):
        window.action_apply.trigger()
    matrix = window.runner.last_transform.matrix
    # Moving -> fixed undoes the shift, to within the click rounding.
    assert abs(matrix[0, 2] + 15) < 1.5 and abs(matrix[1, 2] - 10) < 1.5
    window.action_undo.trigger()  # the apply
    window.action_undo.trigger()  # the last landmark
    assert len(window.document.points) == 5


def test_intensity_registration_updates_live_and_applies(window, tmp_path, qtbot):
    fixed = data.camera()[::2, ::2]
    true = np.array([[1.0, 0.0, 9.0], [0.0, 1.0, -6.0]])
    moving = cv2.warpAffine(fixed, true, (256, 256))
    io.write_image(tmp_path / "fixed.png", fixed)
    io.write_image(tmp_path / "moving.png", moving)
    window.open_paths([tmp_path / "fixed.png", tmp_path / "moving.png"])
    window.choose_operator(get("register_intensity"))
    window.operator_panel.set_operator(get("register_intensity"), {"model": "translation", "metric": "mean_squares"})
    window.runner.set_params(window.operator_panel.values())
    updates = []
    window.runner.partial_scores.connect(updates.append)
    with qtbot.waitSignal(window.runner.applied, timeout=60_000) as applied:
        window.action_apply.trigger()
    # The moving image was shown aligning while the optimiser ran, with its metric plotted.
    assert len(updates) >= 2 and len(window.operator_views.metric_values) == len(updates)
    curve = window.operator_views.metric_curve
    qtbot.waitUntil(lambda: curve.getData()[1] is not None and len(curve.getData()[1]) == len(updates))
    # Each point sits at the iterations run when it came, as the axis says, not at its number.
    assert list(curve.getData()[0]) == [scores["iteration"] for scores in updates]
    assert curve.getData()[0][-1] > len(updates)
    (warped,) = applied.args[0]
    matrix = window.runner.last_transform.matrix
    assert abs(matrix[0, 2] + 9) < 0.5 and abs(matrix[1, 2] - 6) < 0.5
    inside = (slice(20, 230), slice(20, 230))
    assert np.abs(warped.data[inside].astype(int) - fixed[inside]).mean() < 3


def test_landmarks_can_be_dragged_and_deleted(window, tmp_path):
    from PySide6.QtCore import Qt

    from maskwork.widgets.canvas import Tool
    from window_driver import click, drag

    io.write_image(tmp_path / "fixed.png", data.camera())
    window.open_paths([tmp_path / "fixed.png"])
    window.tool_actions[Tool.LANDMARK].trigger()
    for point in [(100, 100), (110, 105), (300, 300), (305, 310)]:
        click(window.canvas, *point)
    assert [p[2] for p in window.document.points] == [1, -1, 2, -2]
    steps = len(window.document.history.undo_names)
    drag(window.canvas, [(110, 105), (130, 125), (150, 140)])  # grab moving landmark 1
    assert window.document.points[1] == (150.0, 140.0, -1)
    assert len(window.document.points) == 4, "a drag from a landmark moves it, adds nothing"
    assert window.document.history.undo_names[-1] == "Move landmark 1"
    assert len(window.document.history.undo_names) == steps + 1
    click(window.canvas, 300, 300, Qt.MouseButton.RightButton)  # delete pair 2
    assert [p[2] for p in window.document.points] == [1, -1]
    window.action_undo.trigger()
    window.action_undo.trigger()
    assert window.document.points[1] == (110.0, 105.0, -1) and len(window.document.points) == 4
