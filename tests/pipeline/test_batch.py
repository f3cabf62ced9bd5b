"""``maskwork batch``: a recipe over many images on Dask, failures, resuming, a remote scheduler."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from maskwork import cli
from maskwork.core import io
from maskwork.pipeline.batch import DONE_FOLDER, collect_images
from maskwork.pipeline.inputs import ArrayInput, LayerInput, WholeImageInput
from maskwork.pipeline.recipe import Recipe, load
from maskwork.pipeline.replay import replay

REPO = Path(__file__).resolve().parents[2]
PHOTOS = {"astronaut": data.astronaut, "coffee": data.coffee, "chelsea": data.chelsea, "camera": data.camera}


def _small(image: np.ndarray, cols: int) -> np.ndarray:
    rows = round(image.shape[0] * cols / image.shape[1])
    return cv2.resize(image, (cols, rows), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """Four small photos (one gray) as PNG and JPEG, and a corrupt file."""
    folder = tmp_path_factory.mktemp("photos")
    for i, (name, load_photo) in enumerate(PHOTOS.items()):
        io.write_image(folder / f"{name}{'.png' if i % 2 else '.jpg'}", _small(load_photo(), 240))
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(200)))
    return folder


@pytest.fixture(scope="module")
def recipe_file(tmp_path_factory) -> Path:
    """GrabCut inside a whole-image box, then an opening: an object cut-out for any photo."""
    recipe = Recipe()
    recipe.add_step("grabcut", {"iterations": 2}, {"image": LayerInput(), "rect": WholeImageInput(0.05)}, {"mask": "cut"})
    recipe.add_step("morphology", {"operation": "open", "radius": 2}, {"mask": LayerInput("cut")}, {"mask": "clean"})
    return recipe.save(tmp_path_factory.mktemp("recipe") / "cutout.json")


@pytest.fixture
def scheduler():
    """A local Dask cluster of two worker processes, as a remote scheduler would be."""
    from dask.distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40) as cluster:
        yield cluster.scheduler_address


def _summary(outdir: Path) -> dict[str, dict]:
    with open(outdir / "summary.csv", newline="") as handle:
        return {Path(row["input"]).name: row for row in csv.DictReader(handle)}


def _check_outputs(outdir: Path, photos: Path, recipe_file: Path, names, compare: bool) -> None:
    """Every output exists, embeds the recipe in its sidecar and, with ``compare``, equals a replay here."""
    recipe = load(recipe_file)
    for name in names:
        source = next(photos.glob(f"{name}.*"))
        expected = replay(recipe, io.read_image(source)) if compare else None
        for layer in ("cut", "clean"):
            written = outdir / f"{name}_{layer}.png"
            mask = io.read_image(written) != 0
            # A cut-out, not an empty or full mask.
            assert 0.05 < mask.mean() < 0.9, written
            if compare:
                assert np.array_equal(mask, expected[layer]), written
            sidecar = json.loads(io.sidecar_path(written).read_text())
            assert sidecar["recipe"]["steps"][0]["inputs"]["rect"] == {"rule": "whole_image", "margin": 0.05}
            assert sidecar["inputs"]["image"] == str(source) and sidecar["layer"] == layer


def test_batch_on_a_local_cluster_reports_a_broken_file_and_does_the_rest(photos, recipe_file, tmp_path, capsys):
    outdir = tmp_path / "out"
    code = cli.main(["batch", str(recipe_file), str(photos), "-o", str(outdir), "--workers", "2"])
    assert code == 1  # one image failed

    rows = _summary(outdir)
    assert list(rows) == ["astronaut.jpg", "broken.png", "camera.png", "chelsea.jpg", "coffee.png"]  # input order
    assert rows["broken.png"]["status"] == "failed"
    assert "cannot read image" in rows["broken.png"]["error"] and "broken.png" in rows["broken.png"]["error"]
    for name in PHOTOS:
        row = rows[next(photos.glob(f"{name}.*")).name]
        assert row["status"] == "ok" and row["error"] == ""
        assert row["outputs"] == f"{name}_cut.png;{name}_clean.png"
        assert float(row["seconds"]) > 0
        assert "step2.morphology.area" in json.loads(row["scores"])
        assert (outdir / DONE_FOLDER / f"{name}.json").is_file()
    _check_outputs(outdir, photos, recipe_file, PHOTOS, compare=True)
    assert load(outdir / "recipe.json").fingerprint() == load(recipe_file).fingerprint()

    err = capsys.readouterr().err
    assert "\r" in err and "5/5 images" in err and "1 failed" in err and "images/s" in err and "ETA" in err
    assert err.strip().splitlines()[-1].startswith("maskwork batch: 5 images: 4 done, 0 done before, 1 failed")


def test_batch_on_a_scheduler_address(photos, recipe_file, scheduler, tmp_path, capsys):
    outdir = tmp_path / "remote"
    inputs = [str(photos / "chelsea.jpg"), str(photos / "c*.png")]  # a file and a glob
    assert cli.main(["batch", str(recipe_file), *inputs, "-o", str(outdir), "--scheduler", scheduler]) == 0
    assert {name: row["status"] for name, row in _summary(outdir).items()} == {"chelsea.jpg": "ok", "camera.png": "ok", "coffee.png": "ok"}
    _check_outputs(outdir, photos, recipe_file, ["chelsea", "camera", "coffee"], compare=False)

    # Run again: everything is done already; a changed recipe is not.
    assert cli.main(["batch", str(recipe_file), *inputs, "-o", str(outdir), "--scheduler", scheduler]) == 0
    assert {row["status"] for row in _summary(outdir).values()} == {"skipped"}
    changed = load(recipe_file)
    changed.steps[1].parameters["radius"] = 3
    changed_file = changed.save(tmp_path / "changed.json")
    assert cli.main(["batch", str(changed_file), str(photos / "camera.png"), "-o", str(outdir), "--scheduler", scheduler]) == 0
    assert _summary(outdir)["camera.png"]["status"] == "ok"
    capsys.readouterr()


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.skipif(sys.platform == "win32", reason="kills a process group")
def _batch_in_its_own_group(tmp_path, recipe_file, sizes, workers):
    """(process, photos folder, image names, output folder) of a ``maskwork batch`` of the
    photos at ``sizes`` started in its own session, so that a signal to its group reaches
    the Dask scheduler and worker processes too (as a terminal's Ctrl+C does)."""
    photos = tmp_path / "photos"
    names = [f"{name}_{size}" for size in sizes for name in PHOTOS]
    for name in names:
        base, size = name.rsplit("_", 1)
        io.write_image(photos / f"{name}.png", _small(PHOTOS[base](), int(size)))
    outdir = tmp_path / "out"
    command = [sys.executable, "-m", "maskwork", "batch", str(recipe_file), str(photos), "-o", str(outdir),
               "--workers", str(workers)]
    # Started as a shell starts a foreground command, Ctrl+C's SIGINT at its default: a test
    # run launched in the background (`make test &`) has it ignored, every child inherits
    # that, and the batch never saw the signal (it finished all its images).
    as_in_a_terminal = [sys.executable, "-c", "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
                        "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])", *command[1:]]
    process = subprocess.Popen(as_in_a_terminal, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)
    return process, photos, names, outdir


def test_a_killed_batch_resumes(tmp_path, recipe_file):
    process, photos, names, outdir = _batch_in_its_own_group(tmp_path, recipe_file, (200, 240), workers=1)
    markers = outdir / DONE_FOLDER
    try:
        _wait_for(lambda: markers.is_dir() and any(markers.glob("*.json")) or process.poll() is not None, 90, "the first image")
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(30)
        stderr = process.stderr.read().decode(errors="replace")
        process.stderr.close()
        _wait_for(lambda: not _group_alive(process.pid), 30, "the killed batch's processes to end")
    finished = sorted(path.stem for path in markers.glob("*.json"))
    assert finished, f"no image finished before the kill: {stderr}"
    assert len(finished) < len(names), f"the kill came too late to test resuming: {finished}"
    assert not (outdir / "summary.csv").exists()
    finished_at = {stem: (markers / f"{stem}.json").stat().st_mtime_ns for stem in finished}

    assert cli.main(["batch", str(recipe_file), str(photos), "-o", str(outdir), "--workers", "2"]) == 0
    statuses = {Path(name).stem: row["status"] for name, row in _summary(outdir).items()}
    assert statuses == {name: "skipped" if name in finished else "ok" for name in names}
    assert all((markers / f"{stem}.json").stat().st_mtime_ns == finished_at[stem] for stem in finished)
    for name in names:
        assert (outdir / f"{name}_cut.png").is_file() and (outdir / f"{name}_clean.png").is_file()


def test_ctrl_c_stops_a_batch_with_a_summary_and_no_worker_tracebacks(tmp_path, recipe_file):
    # Enough images that work remains when the first one is done (12 small ones all
    # finished before the signal once, on an idle machine).
    process, photos, names, outdir = _batch_in_its_own_group(tmp_path, recipe_file, (200, 280, 360, 440, 520), workers=2)
    markers = outdir / DONE_FOLDER
    try:
        _wait_for(lambda: markers.is_dir() and any(markers.glob("*.json")) or process.poll() is not None, 90, "the first image")
        os.killpg(process.pid, signal.SIGINT)
        code = process.wait(60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)
        stderr = process.stderr.read().decode(errors="replace")
        process.stderr.close()
    _wait_for(lambda: not _group_alive(process.pid), 30, "the batch's processes to end")
    assert code == 130, stderr
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("maskwork: interrupted: ") and "run the same command again to do the rest" in last
    statuses = [row["status"] for row in _summary(outdir).values()]
    assert len(statuses) == len(names) and "interrupted" in statuses and set(statuses) <= {"ok", "interrupted"}
    assert not [path for path in outdir.iterdir() if ".tmp" in path.name]


BAD_ARGUMENTS = {
    "missing input": (["{recipe}", "nowhere.png", "-o", "out"], "no such file or folder: nowhere.png"),
    "glob without matches": (["{recipe}", "*.nothing", "-o", "out"], "no image matches *.nothing"),
    "no workers": (["{recipe}", "{photos}", "-o", "out", "--workers", "0"], "--workers must be at least 1"),
    "workers and a scheduler": (["{recipe}", "{photos}", "-o", "out", "--workers", "2", "--scheduler", "tcp://x:1"], "--workers sizes a local cluster"),
    "missing recipe": (["absent.json", "{photos}", "-o", "out"], "no such recipe file"),
    "not a recipe": (["{photos}/broken.png", "{photos}", "-o", "out"], "is not valid JSON"),
    "missing output folder": (["{recipe}", "{photos}"], "--output"),
    "output folder is a file": (["{recipe}", "{photos}", "-o", "{photos}/coffee.png"], "/coffee.png is a file: name a folder"),
    "output folder holds every input": (["{recipe}", "{photos}/coffee.png", "-o", "{photos}"],
                                        "every input lies in the output folder"),
}


def _exit_code(args: list[str]) -> int:
    """cli.main's exit code, also where argparse exits by itself."""
    try:
        return cli.main(args)
    except SystemExit as exit_:
        return exit_.code


@pytest.mark.parametrize("case", list(BAD_ARGUMENTS))
def test_bad_arguments_are_one_line_and_exit_code_2(case, photos, recipe_file, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    template, expected = BAD_ARGUMENTS[case]
    assert _exit_code(["batch", *(arg.format(recipe=recipe_file, photos=photos) for arg in template)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("maskwork: error:") and expected in err
    assert not (tmp_path / "out").exists()


def test_collect_images_takes_files_folders_and_globs_once(photos, tmp_path):
    found = collect_images([str(photos / "coffee.png"), str(photos), str(photos / "*.jpg")])
    assert [p.name for p in found] == ["coffee.png", "astronaut.jpg", "broken.png", "camera.png", "chelsea.jpg"]
    # The output folder is left out when it lies among the inputs.
    (photos / "out").mkdir(exist_ok=True)
    io.write_image(photos / "out" / "astronaut_cut.png", np.zeros((4, 4), np.uint8))
    assert "astronaut_cut.png" not in [p.name for p in collect_images([str(photos / "**" / "*.png")], exclude=photos / "out")]
    (photos / "out" / "astronaut_cut.png").unlink()
    (photos / "out").rmdir()
    twin = tmp_path / "twin"
    twin.mkdir()
    io.write_image(twin / "coffee.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(ValueError, match="have the same name"):
        collect_images([str(photos), str(twin)])


def test_output_layers_whose_files_would_collide_are_refused_before_any_image_is_read(photos, tmp_path, capsys):
    recipe = Recipe()
    recipe.add_step("threshold", {}, {"image": LayerInput()}, {"mask": "fg mask"})
    recipe.add_step("invert", {}, {"mask": LayerInput("fg mask")}, {"mask": "fg_mask"})  # also <image>_fg_mask.png
    assert _exit_code(["batch", str(recipe.save(tmp_path / "collide.json")), str(photos), "-o", str(tmp_path / "out")]) == 2
    assert "the recipe's layers 'fg mask' and 'fg_mask' would both be written as <image>_fg_mask" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_outputs_of_two_images_that_would_share_a_file_are_refused(tmp_path, capsys):
    io.write_image(tmp_path / "cat.png", np.zeros((8, 8), np.uint8))
    io.write_image(tmp_path / "cat_fg.png", np.zeros((8, 8), np.uint8))
    recipe = Recipe()
    recipe.add_step("threshold", {}, {"image": LayerInput()}, {"mask": "fg mask"})  # cat_fg_mask.png
    recipe.add_step("invert", {}, {"mask": LayerInput("fg mask")}, {"mask": "mask"})  # cat_fg_mask.png too
    arguments = ["batch", str(recipe.save(tmp_path / "r.json")), str(tmp_path / "cat.png"), str(tmp_path / "cat_fg.png")]
    assert _exit_code([*arguments, "-o", str(tmp_path / "out")]) == 2
    assert "would both be written as cat_fg_mask: rename the layer or the image" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_batch_module_imports_dask_only_when_a_batch_runs():
    code = "import sys, maskwork.pipeline.batch; print(sorted({m.split('.')[0] for m in sys.modules} & {'dask', 'distributed', 'PySide6'}))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_deep_learning_recipes_default_to_one_worker(tmp_path, photos, monkeypatch):
    """Every worker process would load its own model copy: one worker unless asked."""
    import io as text_io

    import maskwork.pipeline.batch as batch

    sizes = []

    @contextmanager
    def fake_client(workers, scheduler):
        sizes.append(workers)
        yield None

    monkeypatch.setattr(batch, "dask_client", fake_client)
    monkeypatch.setattr(batch, "run_on_client", lambda client, recipe, images, outdir, *options: [])
    recipe = Recipe()
    recipe.add_step("scribble_cnn", {}, {"image": LayerInput(), "markers": ArrayInput(np.ones((4, 4), np.uint8))})
    said = text_io.StringIO()
    batch.run_batch(recipe, [str(photos / "camera.png")], tmp_path / "out", progress=said)
    batch.run_batch(recipe, [str(photos / "camera.png")], tmp_path / "out", workers=2)
    plain = Recipe()
    plain.add_step("threshold", {}, {"image": LayerInput()})
    batch.run_batch(plain, [str(photos / "camera.png")], tmp_path / "out")
    assert sizes == [1, 2, None] and "one worker" in said.getvalue()


def test_an_image_over_the_pixel_limit_fails_alone(photos, recipe_file, tmp_path):
    from maskwork.pipeline import batch

    recipe = load(recipe_file)
    try:
        record = batch.process_image(recipe, str(photos / "camera.png"), str(tmp_path), {}, "x", max_pixels=1000)
    finally:
        io.set_max_pixels(None)
    assert record.status == "failed" and "pixels" in record.error and "--max-pixels" in record.error


@pytest.mark.parametrize("quiet", [True, False])
def test_workers_silence_library_output_unless_verbose(quiet, photos, recipe_file, tmp_path, monkeypatch, capfd):
    import warnings

    from maskwork.pipeline import batch

    def noisy_replay(*args):
        os.write(2, b"libpng warning: iCCP: known incorrect sRGB profile\n")  # native code, past sys.stderr
        warnings.warn("a library's warning")
        return [], {}

    monkeypatch.setattr(batch, "replay_to_folder", noisy_replay)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        record = batch.process_image(load(recipe_file), str(photos / "camera.png"), str(tmp_path), {}, "x", quiet=quiet)
    assert record.status == "ok"
    err = capfd.readouterr().err
    if quiet:
        assert err == "" and not caught
    else:
        assert "libpng warning" in err and [str(w.message) for w in caught] == ["a library's warning"]


def test_batch_command_passes_the_pixel_limit_and_verbosity_on(recipe_file, photos, tmp_path, monkeypatch):
    from maskwork.pipeline import batch

    seen = {}

    def fake_run_batch(recipe, inputs, output, **options):
        seen.update(options)
        return []

    monkeypatch.setattr(batch, "run_batch", fake_run_batch)
    assert cli.main(["batch", str(recipe_file), str(photos), "-o", str(tmp_path), "--max-pixels", "2e6"]) == 0
    assert seen["max_pixels"] == 2_000_000 and seen["quiet"] is True
    assert cli.main(["batch", str(recipe_file), str(photos), "-o", str(tmp_path), "--verbose"]) == 0
    assert seen["max_pixels"] is None and seen["quiet"] is False


def test_a_probabilities_sidecar_names_the_class_of_each_plane(photos, tmp_path):
    from maskwork.pipeline import batch

    markers = np.zeros((240, 240), np.uint8)  # the camera photo's size in `photos`
    markers[80:100, 110:130] = 3  # the photographer
    markers[:10] = 5  # the sky
    recipe = Recipe()
    recipe.add_step("random_walker", {}, {"image": LayerInput(), "markers": ArrayInput(markers)},
                    {"labels": "classes", "probabilities": "chances"})
    written, _ = batch.replay_to_folder(recipe, photos / "camera.png", tmp_path, None)
    chances = next(path for path in written if "chances" in path.name)
    assert json.loads(io.sidecar_path(chances).read_text())["plane_class_ids"] == [3, 5]
    classes = next(path for path in written if "classes" in path.name)
    assert "plane_class_ids" not in json.loads(io.sidecar_path(classes).read_text())
