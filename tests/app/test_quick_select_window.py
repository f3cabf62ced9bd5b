"""Quick select in the real window: Q, clicks with the mouse, a live mask after each click."""

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from maskwork.core.click_protocol import next_click
from maskwork.core.layers import LayerKind
from maskwork.operators import get
from maskwork.widgets.canvas import Tool
from window_driver import click, drag, iou

PREVIEW_TIMEOUT_MS = 20_000


def click_and_wait(qtbot, window, row, col, **kwargs):
    """Click like a person and wait until the preview for that click has come back."""
    with qtbot.waitSignal(window.runner.scores, timeout=PREVIEW_TIMEOUT_MS):
        click(window.canvas, row, col, **kwargs)
    return window.runner.preview_layer.data.astype(bool)


def test_q_clicks_refine_the_mask_until_it_matches_the_object(qtbot, window, photo):
    path, _, truth = photo
    window.open_paths([path])
    QTest.keyClick(window.canvas.graphics, Qt.Key.Key_Q)
    assert window.canvas.tool is Tool.QUICK_SELECT
    assert window.runner.spec.id == "click_select" and window.operator_panel.auto_preview

    # The field's simulated user, clicking with the mouse: each click goes where the
    # current mask is most wrong (left button on missed object, right on wrong background).
    mask = np.zeros(truth.shape, bool)
    scores = []
    for _ in range(8):
        row, col, label = next_click(mask, truth)
        button = Qt.MouseButton.LeftButton if label == 1 else Qt.MouseButton.RightButton
        mask = click_and_wait(qtbot, window, row, col, button=button)
        scores.append(iou(mask, truth))
        if scores[-1] >= 0.9:
            break
    assert scores[-1] >= 0.9, f"IoU after each click: {scores}"
    assert scores[0] >= 0.5, "one click on the object already selects most of it"
    assert [name for name in window.document.history.undo_names] == [
        "Object click" if label == 1 else "Background click" for _, _, label in window.document.points
    ], "each click is one undo step"

    with qtbot.waitSignal(window.runner.applied, timeout=PREVIEW_TIMEOUT_MS):
        window.action_apply.trigger()
    applied = window.document.layers.of_kind(LayerKind.MASK)[-1]
    np.testing.assert_array_equal(applied.data.astype(bool), mask, "Apply commits exactly the mask previewed")
    assert window.document.points == () and window.runner.preview_layer is None, "the next click starts afresh"
    clicks = len(scores)
    window.action_undo.trigger()
    assert len(window.document.points) == clicks and not window.document.layers.of_kind(LayerKind.MASK)


def test_shift_click_backspace_and_undo_bring_back_the_earlier_mask(qtbot, window, photo):
    path, _, truth = photo
    window.open_paths([path])
    window.tool_actions[Tool.QUICK_SELECT].trigger()
    rows, cols = np.nonzero(truth)
    first = click_and_wait(qtbot, window, int(rows.mean()), int(cols.mean()))
    second = click_and_wait(qtbot, window, 20, 20, modifiers=Qt.KeyboardModifier.ShiftModifier)
    assert window.document.points[-1][2] == 0, "Shift+click marks background"
    assert not second[15:25, 15:25].any()

    with qtbot.waitSignal(window.runner.scores, timeout=PREVIEW_TIMEOUT_MS):
        QTest.keyClick(window.canvas.graphics, Qt.Key.Key_Backspace)
    assert len(window.document.points) == 1
    assert window.document.history.undo_names[-1] == "Remove last click"
    np.testing.assert_array_equal(window.runner.preview_layer.data.astype(bool), first,
                                  "removing the click gives the earlier mask back exactly")

    with qtbot.waitSignal(window.runner.scores, timeout=PREVIEW_TIMEOUT_MS):
        window.action_undo.trigger()
    assert len(window.document.points) == 2
    np.testing.assert_array_equal(window.runner.preview_layer.data.astype(bool), second)


def test_a_drag_draws_the_box_that_clicks_then_refine(qtbot, window, photo):
    path, _, truth = photo
    window.open_paths([path])
    window.tool_actions[Tool.QUICK_SELECT].trigger()
    rows, cols = np.nonzero(truth)
    with qtbot.waitSignal(window.runner.scores, timeout=PREVIEW_TIMEOUT_MS):
        drag(window.canvas, [(rows.min() - 4, cols.min() - 4), (rows.mean(), cols.mean()), (rows.max() + 4, cols.max() + 4)])
    assert window.document.rect is not None and window.document.points == ()
    boxed = window.runner.preview_layer.data.astype(bool)
    assert iou(boxed, truth) > 0.7
    assert not boxed[: rows.min() - 5].any(), "nothing outside the box is selected"
    with qtbot.waitSignal(window.runner.applied, timeout=PREVIEW_TIMEOUT_MS):
        window.action_apply.trigger()
    np.testing.assert_array_equal(window.document.layers.of_kind(LayerKind.MASK)[-1].data.astype(bool), boxed,
                                  "Apply with a box alone commits the previewed mask")
    with qtbot.waitSignal(window.runner.scores, timeout=PREVIEW_TIMEOUT_MS):
        window.action_undo.trigger()  # the box is back, and so is its preview
    np.testing.assert_array_equal(window.runner.preview_layer.data.astype(bool), boxed)
    refined = click_and_wait(qtbot, window, int(rows.mean()), int(cols.mean()))
    assert iou(refined, truth) >= iou(boxed, truth) - 0.02


def quick_select_clicks(window, truth) -> list[tuple[int, int, Qt.MouseButton]]:
    rows, cols = np.nonzero(truth)
    return [(int(rows.mean()), int(cols.mean()), Qt.MouseButton.LeftButton), (20, 20, Qt.MouseButton.RightButton),
            (int(rows.min()) + 6, int(cols.mean()), Qt.MouseButton.LeftButton)]


def open_afresh(window, path):
    """The photo opened again: a new image, of which nothing is remembered."""
    window.document.history.mark_saved()  # no question about the clicks made
    window.open_paths([path])
    window.tool_actions[Tool.QUICK_SELECT].trigger()


def mask_of_clicks_waited_for(qtbot, window, path, truth) -> np.ndarray:
    """The mask of :func:`quick_select_clicks`, each click's waited for; then the photo
    opened afresh, of which nothing is remembered."""
    open_afresh(window, path)
    for row, col, button in quick_select_clicks(window, truth):
        mask = click_and_wait(qtbot, window, row, col, button=button)
    open_afresh(window, path)
    return mask


def test_the_same_clicks_give_the_same_mask_however_fast_they_come(qtbot, window, photo):
    path, _, truth = photo
    slow = mask_of_clicks_waited_for(qtbot, window, path, truth)
    for row, col, button in quick_select_clicks(window, truth):
        click(window.canvas, row, col, button=button)  # each before the last one's mask came
    qtbot.waitUntil(lambda: window.runner.preview_is_current, timeout=3 * PREVIEW_TIMEOUT_MS)
    np.testing.assert_array_equal(window.runner.preview_layer.data.astype(bool), slow,
                                  "every earlier click's mask is worked out in turn, as when the person waited")


def test_a_look_at_another_operator_keeps_the_mask_of_the_clicks(qtbot, window, photo):
    path, _, truth = photo
    open_afresh(window, path)
    for row, col, button in quick_select_clicks(window, truth):
        mask = click_and_wait(qtbot, window, row, col, button=button)
    window.choose_operator(get("threshold"))
    assert window.canvas.tool is Tool.QUICK_SELECT
    with qtbot.waitSignal(window.runner.scores, timeout=PREVIEW_TIMEOUT_MS):
        QTest.keyClick(window.canvas.graphics, Qt.Key.Key_Q)  # the tool in use, chosen again
    assert window.runner.spec.id == "click_select"
    np.testing.assert_array_equal(window.runner.preview_layer.data.astype(bool), mask)


def test_quick_select_leaves_auto_preview_as_the_person_had_it(window):
    window.operator_panel.auto_preview = False
    window.tool_actions[Tool.QUICK_SELECT].trigger()
    assert window.operator_panel.auto_preview, "Quick select answers every click"
    window.tool_actions[Tool.BRUSH].trigger()
    assert not window.operator_panel.auto_preview
    window.tool_actions[Tool.QUICK_SELECT].trigger()
    window.choose_operator(get("denoise"))
    assert not window.operator_panel.auto_preview, "no denoising started by itself"


def test_a_click_made_while_an_apply_runs_starts_the_next_object_with_its_own_mask(qtbot, window, photo):
    path, _, truth = photo
    open_afresh(window, path)
    rows, cols = np.nonzero(truth)
    window.canvas.add_click(int(rows.mean()), int(cols.mean()), 1)
    window.action_apply.trigger()  # before its preview came: the Apply runs
    assert window.runner.session.purpose == "apply"
    window.canvas.add_click(20, 300, 1)  # the next object, while the Apply runs
    with qtbot.waitSignal(window.runner.applied, timeout=PREVIEW_TIMEOUT_MS):
        pass
    applied = window.document.layers.of_kind(LayerKind.MASK)[-1].data.astype(bool)
    assert applied[int(rows.mean()), int(cols.mean())] and not applied[20, 300], "the Apply's one click"
    assert window.document.points == ((20.0, 300.0, 1),)
    qtbot.waitUntil(lambda: window.runner.preview_is_current, timeout=PREVIEW_TIMEOUT_MS)
    assert window.runner.preview_layer.data[20, 300], "the kept click got its preview"


def test_an_apply_commits_the_prompts_it_was_asked_for_while_earlier_clicks_are_worked_out(qtbot, window, photo):
    path, _, truth = photo
    slow = mask_of_clicks_waited_for(qtbot, window, path, truth)
    for row, col, button in quick_select_clicks(window, truth):
        window.canvas.add_click(row, col, 1 if button == Qt.MouseButton.LeftButton else 0)
    window.action_apply.trigger()
    window.document.set_rect((250, 150, 60, 60))  # drawn while the clicks' masks are worked out
    with qtbot.waitSignal(window.runner.applied, timeout=3 * PREVIEW_TIMEOUT_MS) as applied:
        pass
    np.testing.assert_array_equal(applied.args[0][0].data.astype(bool), slow)
    assert window.document.rect == (250, 150, 60, 60) and window.document.points == (), "the box is the next object's"
