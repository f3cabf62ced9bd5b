"""Issue 8 through the window: every Apply is recorded; the recipe replays in batch."""

import json

import numpy as np

from maskwork.core import io
from maskwork.operators import get
from maskwork.pipeline.batch import output_filename, run_batch
from maskwork.pipeline.inputs import ArrayInput
from maskwork.pipeline.recipe import load
from maskwork.pipeline.replay import replay
from maskwork.widgets.canvas import Tool
from window_driver import drag


def cut_out_and_clean(window, truth):
    """Scribbles and a box drawn with the mouse, GrabCut applied, then an opening of its mask."""
    rows, cols = np.nonzero(truth)
    r, c = int(rows.mean()), int(cols.mean())
    window.tool_actions[Tool.BRUSH].trigger()
    window.canvas.brush_radius = 4
    drag(window.canvas, [(r - 20, c - 30), (r, c), (r + 20, c + 30)])
    window.tool_actions[Tool.BOX].trigger()
    drag(window.canvas, [(rows.min() - 8, cols.min() - 8), (r, c), (rows.max() + 8, cols.max() + 8)])
    window.choose_operator(get("grabcut"))
    with window_signal(window) as applied:
        window.action_apply.trigger()
    window.document.layers.selected = applied[0][0]
    window.choose_operator(get("morphology"))
    window.operator_panel.findChild(object, "param_radius").setValue(2)
    with window_signal(window) as applied:
        window.action_apply.trigger()
    return applied[0][0]


class window_signal:  # noqa: N801 - used as a context manager like qtbot.waitSignal
    """Collects the layers of one Apply, waiting for it as qtbot.waitSignal would."""

    def __init__(self, window):
        self.window, self.seen = window, []

    def __enter__(self):
        self.window.runner.applied.connect(self.seen.append)
        return self.seen

    def __exit__(self, *exc):
        from pytestqt.qtbot import QtBot

        QtBot(self.window).waitUntil(lambda: bool(self.seen), timeout=60_000)
        self.window.runner.applied.disconnect(self.seen.append)


def test_recorded_recipe_replays_in_batch_with_identical_outputs(window, photo, tmp_path):
    path, image, truth = photo
    window.open_paths([path])
    cleaned = cut_out_and_clean(window, truth)

    exported = window.exports.export("mask", tmp_path / "export" / "cat_mask.png")
    recipe_path = window.recipes.export_recipe(tmp_path / "recipe" / "cat.json")
    assert recipe_path is not None and recipe_path.with_suffix(".py").exists()
    recipe = load(recipe_path)
    assert [step.operator for step in recipe.steps] == ["grabcut", "morphology"]
    sidecar = json.loads(io.sidecar_path(exported).read_text())
    assert [step["operator"] for step in sidecar["recipe"]["steps"]] == ["grabcut", "morphology"]
    # The second step takes the first one's result, not a stored copy of it.
    assert recipe.steps[1].inputs["mask"].to_json() == {"layer": recipe.steps[0].outputs["mask"]}

    records = run_batch(recipe, [str(path)], tmp_path / "batch", workers=1)
    assert [record.status for record in records] == ["ok"]
    final_name = recipe.steps[1].outputs["mask"]
    batch_mask = tmp_path / "batch" / output_filename(path.stem, final_name, "mask", cleaned.data)
    assert batch_mask.exists()
    np.testing.assert_array_equal(io.read_image(batch_mask) > 0, cleaned.data > 0)
    np.testing.assert_array_equal(io.read_image(exported) > 0, cleaned.data > 0)
    # The sidecar's recipe replays to the same mask too.
    np.testing.assert_array_equal(replay(load(io.sidecar_path(exported)), image)[final_name] > 0, cleaned.data > 0)


def test_undone_apply_leaves_the_recipe_and_redo_brings_it_back(window, photo):
    path, image, truth = photo
    window.open_paths([path])
    cut_out_and_clean(window, truth)
    assert len(window.recipes.current_recipe().steps) == 2
    window.action_undo.trigger()
    assert [step.operator for step in window.recipes.current_recipe().steps] == ["grabcut"]
    window.action_redo.trigger()
    assert len(window.recipes.current_recipe().steps) == 2
    window.document.history.mark_saved()
    window.open_paths([path])  # a new document starts a new recipe
    assert window.recipes.current_recipe().steps == []
    assert window.recipes.export_recipe(path.with_suffix(".json")) is None
    assert "Apply an operator first" in window.last_message_box.text()


def test_an_apply_undone_for_good_is_forgotten_with_its_result(window, photo):
    import gc
    import weakref

    window.open_paths([photo[0]])
    window.choose_operator(get("threshold"))
    results = []
    for _ in range(3):  # Apply, Undo, and again: the person tries settings
        with window_signal(window) as applied:
            window.action_apply.trigger()
        results.append(weakref.ref(applied[0][0]))
        window.action_undo.trigger()
    del applied
    gc.collect()
    assert sum(result() is not None for result in results) == 1, "only the one Redo can bring back"
    assert len(window.recipes.recorder.steps) == 1
    window.canvas.stroke([(10, 10), (10, 40)])  # a new edit: that Redo is gone too
    gc.collect()
    assert results[-1]() is None and window.recipes.recorder.steps == []


def test_a_result_painted_by_hand_is_stored_as_a_seed(window, photo, qtbot):
    """Threshold, paint a fix into its mask, fill holes: the recipe keeps the painted mask."""
    path, image, truth = photo
    window.open_paths([path])
    window.choose_operator(get("threshold"))
    with qtbot.waitSignal(window.runner.applied, timeout=60_000) as applied:
        window.action_apply.trigger()
    mask = applied.args[0][0]
    window.document.write(mask, (slice(0, 40), slice(0, 40)), np.ones((40, 40), mask.data.dtype), "Paint fix")
    window.document.layers.selected = mask
    window.choose_operator(get("fill_holes"))
    with qtbot.waitSignal(window.runner.applied, timeout=60_000):
        window.action_apply.trigger()
    recipe = window.recipes.current_recipe()
    stored = recipe.steps[1].inputs["mask"]
    assert isinstance(stored, ArrayInput) and stored.array[:40, :40].all()


def test_after_an_apply_that_makes_an_image_the_recipe_still_processes_each_batch_file(window, photo, tmp_path):
    path, image, _ = photo
    window.open_paths([path])
    window.choose_operator(get("clahe"))
    with window_signal(window) as applied:
        window.action_apply.trigger()
    assert window.document.layers.selected is applied[0][0], "the CLAHE result is selected"
    recipe = window.recipes.current_recipe()
    assert recipe.steps[0].inputs["image"].to_json() == {"layer": "input"}, "the opened photo, not a stored copy"
    other = tmp_path / "other.png"
    io.write_image(other, np.ascontiguousarray(image[::-1]))
    records = run_batch(recipe, [str(path), str(other)], tmp_path / "batch", workers=1)
    assert [record.status for record in records] == ["ok", "ok"]
    name = recipe.steps[0].outputs["image"]
    results = [io.read_image(tmp_path / "batch" / output_filename(p.stem, name, "image", image)) for p in (path, other)]
    np.testing.assert_array_equal(results[0], applied[0][0].data)
    assert not np.array_equal(results[0], results[1]), "each file's own result"
