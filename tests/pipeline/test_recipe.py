"""Recipes: recording, JSON round trips, replay against direct operator calls, scripts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from skimage import data

from maskwork import cli
from maskwork.core import io
from maskwork.core.resize import resize_nearest
from maskwork.operators import Cancelled, InputError, RunContext, get
from maskwork.pipeline.inputs import (
    ArrayInput,
    LayerInput,
    MaskBoxInput,
    PointsInput,
    RecipeError,
    RectInput,
    WholeImageInput,
    fraction_box,
    fraction_points,
    mask_box,
    whole_image_box,
)
from maskwork.pipeline.recipe import Recipe, load
from maskwork.pipeline.replay import recipe_from_run, replay, replay_recipe
from maskwork.pipeline.script import to_python

CAT_BOX = (90, 20, 260, 270)  # X, Y, W, H around the cat of chelsea() (300 x 451)


@pytest.fixture(scope="module")
def cat() -> np.ndarray:
    return data.chelsea()


@pytest.fixture(scope="module")
def cat_markers() -> np.ndarray:
    """Scribbles on chelsea(): 1 across the cat's face, 2 along the top border."""
    markers = np.zeros((300, 451), np.uint8)
    markers[130:140, 170:290] = 1
    markers[5:10, 5:-5] = 2
    return markers


def _grabcut_then_open(image_shape, markers) -> Recipe:
    """GrabCut from scribbles and a box, then an opening: what a person does in the window."""
    recipe = Recipe()
    recipe.add_step(
        "grabcut",
        {"iterations": "2"},  # text, as a form or the command line gives it
        {"image": LayerInput(), "markers": ArrayInput(markers), "rect": RectInput.from_pixels(CAT_BOX, image_shape)},
        {"mask": "GrabCut mask"},
    )
    recipe.add_step("morphology", {"operation": "open", "radius": 3}, {"mask": LayerInput("GrabCut mask")}, {"mask": "Opened"})
    return recipe


# ------------------------------------------------------------------ recording and JSON


def test_add_step_records_every_parameter_coerced(cat, cat_markers):
    recipe = _grabcut_then_open(cat.shape, cat_markers)
    first, second = recipe.steps
    assert first.parameters == {"iterations": 2, "margin": 0.15, "coarse_megapixels": 0.5}
    assert second.parameters == {"operation": "open", "radius": 3}
    assert recipe.layer_names() == ["GrabCut mask", "Opened"]
    assert recipe.output_kinds() == {"GrabCut mask": "mask", "Opened": "mask"}
    # Unnamed outputs are named by their kind, then by kind and step number.
    recipe.add_step("fill_holes", {}, {"mask": LayerInput("Opened")})
    recipe.add_step("keep_largest", {}, {"mask": LayerInput("mask")})
    assert recipe.layer_names()[-2:] == ["mask", "mask_4"]


def test_recorded_seed_is_a_copy(cat_markers):
    scribble = cat_markers.copy()
    recorded = ArrayInput(scribble)
    scribble[:] = 0  # the person keeps drawing after the step was recorded
    assert np.array_equal(recorded.array, cat_markers)


RECORDING_ERRORS = {
    "unknown operator": (lambda r: r.add_step("no_such_op"), "unknown operator"),
    "unknown parameter": (lambda r: r.add_step("threshold", {"sigma": 1}, {"image": LayerInput()}), "no parameter 'sigma'"),
    "bad value": (lambda r: r.add_step("threshold", {"method": "best"}, {"image": LayerInput()}), "must be one of"),
    "missing input": (lambda r: r.add_step("threshold", {}, {}), "needs image"),
    "unknown input": (lambda r: r.add_step("threshold", {}, {"image": LayerInput(), "mask": LayerInput()}), "does not take mask"),
    "unknown layer": (lambda r: r.add_step("fill_holes", {}, {"mask": LayerInput("Nowhere")}), "'Nowhere' is not made"),
    "rule for markers": (
        lambda r: r.add_step("grabcut", {}, {"image": LayerInput(), "markers": WholeImageInput()}),
        "recorded as LayerInput or ArrayInput",
    ),
    "array for rect": (
        lambda r: r.add_step("grabcut", {}, {"image": LayerInput(), "rect": ArrayInput(np.zeros(4))}),
        "RectInput or WholeImageInput or MaskBoxInput",
    ),
    "unknown output": (lambda r: r.add_step("threshold", {}, {"image": LayerInput()}, {"labels": "L"}), "no output 'labels'"),
    "output named input": (lambda r: r.add_step("threshold", {}, {"image": LayerInput()}, {"mask": "input"}), "other than 'input'"),
    # Seeds given one of several ways: with none of them the batch failed image by image.
    "no seeds of any kind": (lambda r: r.add_step("random_walker", {}, {"image": LayerInput()}),
                             r"random_walker needs one of markers, points \(none is recorded for it\)"),
    "grabcut without box or seeds": (lambda r: r.add_step("grabcut", {}, {"image": LayerInput()}),
                                     "grabcut needs one of rect, markers, points"),
}


@pytest.mark.parametrize("case", list(RECORDING_ERRORS))
def test_add_step_rejects_what_cannot_replay(case):
    record, expected = RECORDING_ERRORS[case]
    recipe = Recipe()
    with pytest.raises(InputError, match=expected):
        record(recipe)
    assert recipe.steps == []


def test_json_round_trip_keeps_every_input_kind(tmp_path, cat):
    labels = np.zeros(cat.shape[:2], np.int32)
    labels[100:120, 200:260] = 300  # beyond uint8: the PNG must be 16-bit
    hand_mask = np.zeros(cat.shape[:2], bool)
    hand_mask[50:80, 60:90] = True
    recipe = Recipe()
    recipe.add_step("threshold", {"method": "li"}, {"image": LayerInput()}, {"mask": "Bright"})
    recipe.add_step("grabcut", {}, {"image": LayerInput(), "markers": ArrayInput(labels), "rect": MaskBoxInput("Bright", 7)})
    recipe.add_step("grabcut", {}, {"image": LayerInput(), "rect": WholeImageInput(0.1)}, {"mask": "Whole"})
    recipe.add_step("grabcut", {}, {"image": LayerInput(), "rect": RectInput((10, 20, 30, 40), relative=False)}, {"mask": "Fixed"})
    recipe.add_step("fill_holes", {"max_size": 50}, {"mask": ArrayInput(hand_mask), "image": LayerInput("input")}, {"mask": "Filled"})
    recipe.add_step("region_growing", {}, {"image": LayerInput(), "points": PointsInput.from_pixels([(150, 225.5, 1), (10, 10, 0)], cat.shape)})

    path = recipe.save(tmp_path / "recipe.json")
    assert sorted(p.name for p in (tmp_path / "recipe_seeds").iterdir()) == ["step2_markers.png", "step5_mask.png"]
    text = json.loads(path.read_text())
    assert text["maskwork_recipe"] == 1
    assert text["steps"][1]["inputs"]["markers"] == {"file": "recipe_seeds/step2_markers.png", "dtype": "int32"}
    assert text["steps"][1]["inputs"]["rect"] == {"rule": "box_from_mask", "layer": "Bright", "pad": 7}
    assert text["steps"][2]["inputs"]["rect"] == {"rule": "whole_image", "margin": 0.1}
    assert text["steps"][3]["inputs"]["rect"] == {"rule": "box", "rect": [10, 20, 30, 40], "relative": False}
    assert text["steps"][5]["inputs"]["points"]["relative"] is True

    loaded = load(path)
    assert loaded.to_json(tmp_path) == recipe.to_json(tmp_path)
    assert loaded.fingerprint() == recipe.fingerprint()
    markers = loaded.steps[1].inputs["markers"].array
    assert markers.dtype == np.int32 and np.array_equal(markers, labels)
    assert loaded.steps[4].inputs["mask"].array.dtype == bool
    assert np.array_equal(loaded.steps[4].inputs["mask"].array, hand_mask)
    assert loaded.steps[5].inputs["points"].resolve("points", cat, {}) == [(150, 225.5, 1), (10, 10, 0)]

    # Moved together, the recipe and its seed folder still load.
    moved = tmp_path / "moved"
    moved.mkdir()
    (tmp_path / "recipe.json").rename(moved / "recipe.json")
    (tmp_path / "recipe_seeds").rename(moved / "recipe_seeds")
    assert load(moved / "recipe.json").fingerprint() == recipe.fingerprint()


def test_fingerprint_follows_what_is_computed(cat, cat_markers):
    base = _grabcut_then_open(cat.shape, cat_markers).fingerprint()
    assert _grabcut_then_open(cat.shape, cat_markers).fingerprint() == base
    other_seeds = cat_markers.copy()
    other_seeds[200, 200] = 1
    assert _grabcut_then_open(cat.shape, other_seeds).fingerprint() != base
    changed = _grabcut_then_open(cat.shape, cat_markers)
    changed.steps[1].parameters["radius"] = 4
    assert changed.fingerprint() != base


def test_unsaved_seeds_cannot_be_written_as_json(cat, cat_markers):
    with pytest.raises(RecipeError, match="save the recipe first"):
        _grabcut_then_open(cat.shape, cat_markers).to_json()


def _write(path: Path, data) -> Path:
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def _step(**changes) -> dict:
    step = {"operator": "threshold", "parameters": {"method": "otsu"}, "inputs": {"image": {"layer": "input"}}, "outputs": {"mask": "M"}}
    return {**step, **changes}


LOAD_ERRORS = {
    "not JSON": ("{steps: [", "not valid JSON (line 1"),
    "not a recipe": ({"steps": []}, "is not a maskwork recipe"),
    "newer version": ({"maskwork_recipe": 2, "steps": [_step()]}, "version 2 recipe; this maskwork reads up to version 1"),
    "no steps": ({"maskwork_recipe": 1, "steps": []}, "has no steps"),
    "unknown operator": ({"maskwork_recipe": 1, "steps": [_step(operator="sharpen_magic")]}, "step 1 (sharpen_magic): unknown operator"),
    "bad parameter": (
        {"maskwork_recipe": 1, "steps": [_step(), _step(parameters={"method": "guess"})]},
        "step 2 (threshold): parameter method must be one of",
    ),
    "unknown rule": (
        {"maskwork_recipe": 1, "steps": [{"operator": "grabcut", "inputs": {"image": {"layer": "input"}, "rect": {"rule": "circle"}}}]},
        "unknown rule 'circle'",
    ),
    "malformed box": (
        {"maskwork_recipe": 1, "steps": [{"operator": "grabcut", "inputs": {"image": {"layer": "input"}, "rect": {"rule": "box", "rect": [1, 2]}}}]},
        "a box is (x, y, width, height), got [1, 2]",
    ),
    "box rule without its layer": (
        {"maskwork_recipe": 1, "steps": [{"operator": "grabcut", "inputs": {"image": {"layer": "input"}, "rect": {"rule": "box_from_mask"}}}]},
        "input rect is malformed",
    ),
    "missing seed file": (
        {"maskwork_recipe": 1, "steps": [{"operator": "grabcut", "inputs": {"image": {"layer": "input"}, "markers": {"file": "gone.png"}}}]},
        "the seed file",
    ),
    "layer used before it exists": (
        {"maskwork_recipe": 1, "steps": [{"operator": "fill_holes", "inputs": {"mask": {"layer": "Later"}}}]},
        "layer 'Later' is not made by an earlier step",
    ),
}


@pytest.mark.parametrize("case", list(LOAD_ERRORS))
def test_load_explains_a_bad_file_in_one_line(tmp_path, case):
    content, expected = LOAD_ERRORS[case]
    path = _write(tmp_path / "bad.json", content)
    with pytest.raises(RecipeError) as caught:
        load(path)
    message = str(caught.value)
    assert expected in message and "\n" not in message
    assert "bad.json" in message


def test_load_reports_a_missing_file(tmp_path):
    with pytest.raises(RecipeError, match="no such recipe file"):
        load(tmp_path / "absent.json")


# -------------------------------------------------------------------------- replay


def _coins() -> np.ndarray:
    """coins() below its bright top rows, where Otsu separates every coin from the tray."""
    return np.ascontiguousarray(data.coins()[100:])


def test_replay_of_two_steps_matches_direct_calls():
    coins = _coins()
    recipe = Recipe()
    recipe.add_step("threshold", {"method": "otsu"}, {"image": LayerInput()}, {"mask": "Coins"})
    recipe.add_step("fill_holes", {}, {"mask": LayerInput("Coins"), "image": LayerInput()}, {"mask": "Filled"})
    recipe.add_step("keep_largest", {"connectivity": 4}, {"mask": LayerInput("Filled")}, {"mask": "Largest"})
    replayed = replay_recipe(recipe, coins)
    layers, scores = replayed.layers, replayed.scores

    coins_mask = get("threshold").run({"image": coins}, {"method": "otsu"})["mask"]
    filled = get("fill_holes").run({"mask": coins_mask, "image": coins})
    largest = get("keep_largest").run({"mask": filled["mask"]}, {"connectivity": 4})
    assert list(layers) == ["Coins", "Filled", "Largest"]
    assert np.array_equal(layers["Coins"], coins_mask)
    assert np.array_equal(layers["Filled"], filled["mask"])
    assert np.array_equal(layers["Largest"], largest["mask"])
    assert scores["step2.fill_holes.holes"] == filled.scores["holes"] > 0
    assert scores["step3.keep_largest.components"] == largest.scores["components"] > 10
    # The largest part is one coin: a filled disc, which covers pi/4 of its bounding box.
    rows, cols = np.nonzero(layers["Largest"])
    box_area = (np.ptp(rows) + 1) * (np.ptp(cols) + 1)
    assert 0.7 < rows.size / box_area < 0.85 and rows.size > 2000


def test_grabcut_box_then_morphology_matches_direct_calls(cat, cat_markers):
    recipe = _grabcut_then_open(cat.shape, cat_markers)
    layers = replay(recipe, cat)

    cut = get("grabcut").run({"image": cat, "markers": cat_markers, "rect": CAT_BOX}, {"iterations": 2})["mask"]
    opened = get("morphology").run({"mask": cut}, {"operation": "open", "radius": 3})["mask"]
    assert np.array_equal(layers["GrabCut mask"], cut)
    assert np.array_equal(layers["Opened"], opened)
    x, y, w, h = CAT_BOX
    assert 0.3 < np.count_nonzero(opened[y : y + h, x : x + w]) / (w * h) < 0.9
    assert not opened[:, : x].any()  # nothing outside the box


def test_seeds_from_files_are_rescaled_with_nearest_neighbour(tmp_path, cat, cat_markers):
    recipe = _grabcut_then_open(cat.shape, cat_markers)
    loaded = load(recipe.save(tmp_path / "cut.json"))
    small = np.ascontiguousarray(cat[::2, ::2])  # 150 x 226: half the size the seeds were drawn on
    layers = replay(loaded, small)

    # Nearest neighbour at pixel centres: output (r, c) takes input (2r + 1, 2c + 1) here.
    rows = np.minimum(np.arange(150) * 2 + 1, 299)
    cols = np.minimum(((np.arange(226) + 0.5) * 451 / 226).astype(int), 450)
    small_markers = cat_markers[rows[:, None], cols[None, :]]
    assert set(np.unique(small_markers)) == {0, 1, 2}
    small_box = fraction_box(loaded.steps[0].inputs["rect"].rect, small.shape)
    assert small_box == (45, 10, 130, 135)  # the box scaled with the image
    cut = get("grabcut").run({"image": small, "markers": small_markers, "rect": small_box}, {"iterations": 2})["mask"]
    assert np.array_equal(layers["GrabCut mask"], cut)
    assert layers["Opened"].shape == small.shape[:2]


def test_resize_nearest_keeps_labels_and_any_dtype():
    labels = np.arange(12, dtype=np.int64).reshape(3, 4) - 5
    assert resize_nearest(labels, (3, 4)) is labels
    bigger = resize_nearest(labels, (6, 8))
    assert bigger.dtype == np.int64 and np.array_equal(bigger[::2, ::2], labels)
    smaller = resize_nearest(np.repeat(np.repeat(labels, 3, 0), 3, 1), (3, 4))
    assert np.array_equal(smaller, labels)
    flags = resize_nearest(np.eye(4, dtype=bool), (2, 2))
    assert flags.dtype == bool and np.array_equal(flags, np.eye(2, dtype=bool))


def test_box_from_mask_rule_boxes_the_earlier_layer():
    coins = _coins()
    recipe = Recipe()
    recipe.add_step("threshold", {}, {"image": LayerInput()}, {"mask": "Coins"})
    recipe.add_step("keep_largest", {}, {"mask": LayerInput("Coins")}, {"mask": "Coin"})
    recipe.add_step("grabcut", {"iterations": 2}, {"image": LayerInput(), "rect": MaskBoxInput("Coin", pad=10)}, {"mask": "Cut"})
    layers = replay(recipe, coins)

    rows, cols = np.nonzero(layers["Coin"])
    left, top = cols.min() - 10, rows.min() - 10
    right, bottom = min(cols.max() + 1 + 10, coins.shape[1]), rows.max() + 1 + 10  # the coin lies at the right edge
    box = (left, top, right - left, bottom - top)
    assert mask_box(layers["Coin"], 10) == box
    direct = get("grabcut").run({"image": coins, "rect": box}, {"iterations": 2})["mask"]
    assert np.array_equal(layers["Cut"], direct)
    # GrabCut inside the padded box finds the coin again.
    overlap = np.count_nonzero(layers["Cut"] & layers["Coin"]) / np.count_nonzero(layers["Cut"] | layers["Coin"])
    assert overlap > 0.7


def test_box_rules_stay_inside_the_image():
    edge = np.zeros((50, 80), bool)
    edge[0:5, 70:80] = True
    assert mask_box(edge, 10) == (60, 0, 20, 15)
    assert whole_image_box((200, 300, 3), 0.05) == (15, 10, 270, 180)
    assert fraction_box((0.9, 0.9, 0.5, 0.5), (100, 100)) == (90, 90, 10, 10)
    assert fraction_points([(0.5, 0.25, 1)], (201, 400)) == [(100.5, 100.0, 1)]
    with pytest.raises(RecipeError, match="'Empty' is empty"):
        mask_box(np.zeros((5, 5), bool), 2, "Empty")
    with pytest.raises(RecipeError, match=r"margin lies in \[0, 0.5\)"):
        WholeImageInput(0.5)


def test_replay_names_the_failing_step():
    recipe = Recipe()
    recipe.add_step("threshold", {"method": "manual", "value": 1e9}, {"image": LayerInput()}, {"mask": "Nothing"})
    recipe.add_step("grabcut", {}, {"image": LayerInput(), "rect": MaskBoxInput("Nothing")})
    with pytest.raises(InputError, match=r"^step 2 \(grabcut\): the layer 'Nothing' is empty"):
        replay(recipe, _coins())


def test_replay_reports_progress_per_step_and_can_be_cancelled():
    coins = _coins()
    recipe = Recipe()
    recipe.add_step("threshold", {}, {"image": LayerInput()}, {"mask": "Coins"})
    recipe.add_step("morphology", {}, {"mask": LayerInput("Coins")}, {"mask": "Opened"})
    reports = []
    replay(recipe, coins, RunContext(on_progress=lambda fraction, message: reports.append((fraction, message))))
    fractions = [fraction for fraction, _ in reports]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == 1.0
    assert any(message.startswith("Step 2/2 Open / close / dilate / erode:") and fraction >= 0.5 for fraction, message in reports)
    cancelled = RunContext()
    cancelled.cancel()
    with pytest.raises(Cancelled):
        replay(recipe, coins, cancelled)


# ---------------------------------------------------------------- script and sidecars


def test_generated_script_runs_and_matches_replay(tmp_path, cat, cat_markers):
    recipe = _grabcut_then_open(cat.shape, cat_markers)
    recipe.add_step("grabcut", {"iterations": 1}, {"image": LayerInput(), "rect": WholeImageInput(0.1)}, {"mask": "Whole"})
    recipe.save(tmp_path / "cut.json")
    script = tmp_path / "replay_cut.py"
    script.write_text(to_python(recipe))
    compile(script.read_text(), str(script), "exec")
    io.write_image(tmp_path / "cat.png", cat)

    done = subprocess.run([sys.executable, str(script), "cat.png", "out"], cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    expected = replay(recipe, cat)
    for name, file_name in (("GrabCut mask", "cat_GrabCut_mask.png"), ("Opened", "cat_Opened.png"), ("Whole", "cat_Whole.png")):
        written = io.read_image(tmp_path / "out" / file_name)
        assert np.array_equal(written != 0, expected[name]), name


def test_sidecar_embeds_a_recipe_that_replays(tmp_path, cat, cat_markers):
    recipe = _grabcut_then_open(cat.shape, cat_markers)
    layers = replay(recipe, cat)
    export = tmp_path / "exports" / "cat_mask.png"
    io.write_mask(export, layers["Opened"], provenance={"operator": "morphology"}, recipe=recipe.embed(export))
    sidecar = json.loads(io.sidecar_path(export).read_text())
    assert sidecar["operator"] == "morphology"
    assert sidecar["recipe"]["steps"][0]["inputs"]["markers"]["file"] == "cat_mask_seeds/step1_markers.png"
    again = replay(load(io.sidecar_path(export)), cat)  # a sidecar is a recipe file too
    assert np.array_equal(again["Opened"], layers["Opened"])
    with pytest.raises(ValueError, match="provenance may not set recipe"):
        io.write_mask(export, layers["Opened"], provenance={"recipe": {}})


def test_maskwork_run_sidecar_replays_the_run(tmp_path, cat, cat_markers, monkeypatch):
    monkeypatch.chdir(tmp_path)
    io.write_image("cat.png", cat)
    io.write_labels("scribbles.png", cat_markers)
    code = cli.main(["run", "grabcut", "--image", "cat.png", "--markers", "scribbles.png",
                     "--rect", ",".join(map(str, CAT_BOX)), "-p", "iterations=2", "-o", "out/cut.png"])
    assert code == 0
    sidecar = json.loads(Path("out/cut.png.json").read_text())
    assert sidecar["recipe"]["steps"][0]["inputs"]["markers"] == {"file": "../scribbles.png", "dtype": "uint8"}
    recipe = load("out/cut.png.json")
    assert recipe_from_run("grabcut", {"iterations": 2}, {"image": cat, "markers": cat_markers, "rect": CAT_BOX}).fingerprint() == recipe.fingerprint()
    assert np.array_equal(replay(recipe, cat)["mask"], io.read_image("out/cut.png") != 0)


def test_fingerprint_follows_the_model_file_a_step_names(tmp_path):
    """Replacing a model file at the same path must make batch redo the images it made."""
    import os

    import tiny_models

    model = tiny_models.save_torchscript(tiny_models.bright_pixel_net(), tmp_path / "bright.pt")
    recipe = Recipe()
    recipe.add_step("run_model", {"model": str(model)}, {"image": LayerInput()})
    before = recipe.fingerprint()
    assert recipe.fingerprint() == before
    stat = model.stat()
    os.utime(model, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert recipe.fingerprint() != before
