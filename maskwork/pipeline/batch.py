"""``maskwork batch``: replay a recipe on many images in parallel with Dask (imports no Qt).

Dask is imported only when a batch runs, so ``maskwork ops``, ``maskwork run`` and the
window start without it. By default the images go to a ``dask.distributed.LocalCluster``
of worker processes with one thread each; each worker also limits OpenCV and the BLAS
libraries to one thread, so N workers use N cores instead of fighting over them. Given
the address of a running scheduler the same tasks go there instead (the workers must
see the same files; start them with ``OMP_NUM_THREADS=1`` as ``dask worker`` does by
default).

What a batch writes into OUTDIR:

* ``<stem>_<layer>.png`` (``.tif``, ``.json``) for every named output of the recipe, with
  a sidecar ``<file>.json`` that embeds the recipe, the input file and the scores;
* ``recipe.json`` and ``recipe_seeds/``: the recipe the batch ran;
* ``.maskwork-done/<stem>.json``: a done-marker per image, written atomically after its
  outputs. A rerun skips an image whose marker, outputs, input file (size and
  modification time) and recipe are unchanged, so a killed batch resumes where it stopped;
* ``summary.csv``: one row per image, in input order: ``input``, ``status`` (ok, failed,
  skipped; interrupted for an image a Ctrl+C left undone), ``seconds`` (reading, running
  and writing it, when it was processed), ``outputs`` (file names in OUTDIR,
  ``;``-separated), ``scores`` (JSON) and ``error``.

A failing image (unreadable, rejected by an operator, any exception) is reported in the
summary and the batch goes on. Ctrl+C stops the batch: the summary lists what was done,
:class:`BatchInterrupted` says how much, and the same command run again does the rest.
The local cluster's worker processes ignore Ctrl+C (a terminal sends it to all of them):
the batch stops them itself, so none prints a traceback of its own.
"""

from __future__ import annotations

import csv
import dataclasses
import glob
import json
import logging
import os
import re
import signal
import threading
import time
from collections.abc import Iterator, Sequence
import contextlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from maskwork.core import io
from maskwork.core.io.files import unwritable
from maskwork.operators import registry
from maskwork.operators.context import InputError
from maskwork.operators.extras import import_optional
from maskwork.pipeline.quiet import library_output_silenced
from maskwork.pipeline.recipe import Recipe
from maskwork.pipeline.replay import replay_recipe

DONE_FOLDER = ".maskwork-done"
SUMMARY_NAME = "summary.csv"
SUMMARY_COLUMNS = ("input", "status", "seconds", "outputs", "scores", "error")
#: Seconds to wait for a scheduler given by address before giving up.
CONNECT_TIMEOUT = 15
#: Environment set in each local worker process before it starts, so BLAS, OpenMP and
#: OpenCV start with one thread (BLAS reads these only once, at import).
SINGLE_THREAD_ENVIRON = {
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OPENCV_FOR_THREADS_NUM": "1",
}


@dataclass
class ImageRecord:
    """What happened to one input image (a row of ``summary.csv``)."""

    input: str
    status: str  # "ok", "failed", "skipped" or "interrupted"
    seconds: float = 0.0
    outputs: list[str] = field(default_factory=list)
    scores: dict = field(default_factory=dict)
    error: str = ""

    def to_row(self) -> dict:
        """The CSV row."""
        return {
            "input": self.input,
            "status": self.status,
            "seconds": f"{self.seconds:.3f}",
            "outputs": ";".join(self.outputs),
            "scores": json.dumps(self.scores, sort_keys=True) if self.scores else "",
            "error": self.error,
        }


# ------------------------------------------------------------------------- inputs


def _image_suffix(path: Path) -> str | None:
    """The readable suffix ``path`` ends with, or None."""
    name = path.name.lower()
    return next((suffix for suffix in io.READABLE_SUFFIXES if name.endswith(suffix)), None)


def image_stem(path: Path) -> str:
    """The file name without its image suffix (``scan.nii.gz`` -> ``scan``)."""
    suffix = _image_suffix(path)
    return path.name[: -len(suffix)] if suffix else path.stem


def output_filename(stem: str, layer: str, kind: str, value: Any) -> str:
    """``<stem>_<layer>.<suffix>``: where a replayed output of an image called ``stem`` goes.

    Characters other than letters, digits, ``.``, ``-`` and ``_`` in the layer name become
    ``_``; the suffix is :func:`maskwork.core.io.output_suffix`.
    """
    return f"{stem}_{_file_part(layer, kind)}{io.output_suffix(kind, value)}"


def _file_part(layer: str, kind: str) -> str:
    """The layer's name as it appears in its output files' names."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", layer).strip("_") or kind


def check_output_names(recipe: Recipe, images: Sequence[Path]) -> None:
    """Raise InputError when two outputs would be written to one file, whatever their
    suffixes (some are known only from the result) and letter case (one file on macOS
    and Windows): two of the recipe's layers (``fg mask`` and ``fg_mask`` both become
    ``<image>_fg_mask``, names of other scripts both their kind's name), or a layer of
    two images (``cat`` with ``fg mask`` and ``cat_fg`` with ``mask``). The second
    would silently replace the first."""
    parts = {layer: _file_part(layer, kind) for layer, kind in recipe.output_kinds().items()}
    written: dict[str, tuple[Path, str]] = {}
    for image in images:
        for layer, part in parts.items():
            name = f"{image_stem(image)}_{part}"
            other_image, other_layer = written.setdefault(name.casefold(), (image, layer))
            if other_image == image and other_layer != layer:
                raise InputError(f"the recipe's layers {other_layer!r} and {layer!r} would both be written as "
                                 f"<image>_{part}: rename one of them (letters, digits, '.', '-' and '_' are kept)")
            if other_image != image:
                raise InputError(f"{other_image}'s layer {other_layer!r} and {image}'s layer {layer!r} would both be "
                                 f"written as {name}: rename the layer or the image")


def collect_images(patterns: Sequence[str], exclude: Path | None = None) -> list[Path]:
    """The image files named by ``patterns``, in order, each once.

    Parameters
    ----------
    patterns : sequence of str
        Files (taken whatever their suffix: an unreadable one fails in the batch), folders
        (every file with a readable suffix directly inside, sorted) or glob patterns
        (matching files with a readable suffix, sorted; ``**`` recurses).
    exclude : Path, optional
        Folder whose files are left out (the output folder, when it lies among the inputs).

    Raises
    ------
    InputError
        When a pattern names nothing, every input lies in ``exclude``, or two images share
        a name (their outputs would overwrite each other).
    """
    found: dict[Path, Path] = {}
    left_out = 0
    for pattern in patterns:
        path = Path(pattern)
        if path.is_file():
            matches = [path]
        elif path.is_dir():
            matches = sorted(p for p in path.iterdir() if p.is_file() and _image_suffix(p))
            if not matches:
                raise InputError(f"the folder {pattern} holds no images ({' '.join(io.READABLE_SUFFIXES)})")
        elif glob.has_magic(pattern):
            matches = sorted(p for p in map(Path, glob.glob(pattern, recursive=True)) if p.is_file() and _image_suffix(p))
            if not matches:
                raise InputError(f"no image matches {pattern}")
        else:
            raise InputError(f"no such file or folder: {pattern}")
        for match in matches:
            resolved = match.resolve()
            if exclude is None or exclude.resolve() not in resolved.parents:
                found.setdefault(resolved, match)
            else:
                left_out += 1
    images = list(found.values())
    if not images and left_out:
        raise InputError(f"every input lies in the output folder {exclude}, whose files are left out (a rerun "
                         "would take the results for inputs): write the results to another folder")
    stems: dict[str, Path] = {}
    for image in images:
        other = stems.setdefault(image_stem(image), image)
        if other is not image:
            raise InputError(f"{other} and {image} have the same name; their outputs would overwrite each other")
    return images


# ---------------------------------------------------------------- one image (worker)


def done_marker(outdir: Path, stem: str) -> Path:
    """The done-marker of the image called ``stem``."""
    return outdir / DONE_FOLDER / f"{stem}.json"


def _input_state(path: Path) -> dict:
    """Size and modification time: enough to notice a replaced input file."""
    stat = path.stat()
    return {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _plain(scores: dict) -> dict:
    """Scores as plain Python numbers (numpy scalars do not go into CSV or JSON as such)."""
    return {key: value.item() if isinstance(value, np.generic) else value for key, value in scores.items()}


def _limit_threads() -> None:
    """One OpenCV thread in this (worker) process; BLAS got its limit from the environment."""
    import cv2

    cv2.setNumThreads(1)


def replay_to_folder(recipe: Recipe, image_path: Path, outdir: Path, embedded: dict | None) -> tuple[list[Path], dict]:
    """Replay ``recipe`` on the image file ``image_path`` and write every named output.

    Each output goes to ``outdir`` as :func:`output_filename` names it, with a sidecar that
    records the input file, the scores, the layer name, ``embedded`` and, for
    probabilities, the class id of each plane.

    Parameters
    ----------
    recipe : Recipe
        The steps.
    image_path : Path
        The input image.
    outdir : Path
        The output folder (created).
    embedded : dict or None
        The recipe as stored in each output's sidecar (:meth:`Recipe.to_json`).

    Returns
    -------
    written : list of Path
        The output files, in the recipe's layer order.
    scores : dict
        Every step's scores, as plain Python numbers.

    Raises
    ------
    io.ImageReadError
        When the image cannot be read.
    InputError
        When a step rejects its inputs.
    """
    image = io.read_image(image_path)
    replayed = replay_recipe(recipe, image)
    layers, scores = replayed.layers, _plain(replayed.scores)
    kinds = recipe.output_kinds()
    provenance = {"inputs": {"image": str(image_path)}, "scores": scores}
    stem = image_stem(image_path)
    written = [
        io.write_output(outdir / output_filename(stem, name, kinds[name], value), kinds[name], value,
                        provenance={**provenance, "layer": name}, recipe=embedded,
                        class_ids=replayed.class_ids.get(name))
        for name, value in layers.items()
    ]
    return written, scores


def process_image(recipe: Recipe, image_path: str, outdir: str, embedded: dict, fingerprint: str,
                  max_pixels: int | None = None, quiet: bool = False) -> ImageRecord:
    """Replay ``recipe`` on one image, write its outputs, then its done-marker.

    Runs on a Dask worker. Never raises: a failure becomes a ``"failed"`` record whose
    error is the exception's first line.

    Parameters
    ----------
    recipe : Recipe
        The steps.
    image_path : str
        The input image.
    outdir : str
        The output folder.
    embedded : dict
        The recipe as stored in each output's sidecar.
    fingerprint : str
        :meth:`Recipe.fingerprint`, recorded in the done-marker.
    max_pixels : int, optional
        Largest image to read (:func:`maskwork.core.io.set_max_pixels`), set in the
        worker's process because a remote worker does not share the caller's environment.
    quiet : bool
        Silence what libraries write on the worker's stderr while the image is processed.
    """
    _limit_threads()
    if max_pixels is not None:
        io.set_max_pixels(max_pixels)
    start = time.perf_counter()
    path, folder = Path(image_path), Path(outdir)
    try:
        with library_output_silenced() if quiet else contextlib.nullcontext():
            written, scores = replay_to_folder(recipe, path, folder, embedded)
        outputs = [file.name for file in written]
        seconds = time.perf_counter() - start
        marker = {
            "input": str(path),
            "input_file": _input_state(path),
            "recipe": fingerprint,
            "outputs": outputs,
            "scores": scores,
            "seconds": round(seconds, 4),
        }
        io.write_json(done_marker(folder, image_stem(path)), marker)
        return ImageRecord(str(path), "ok", seconds, outputs, scores)
    except (InputError, io.ImageReadError) as error:
        # Messages written for the user: an unreadable file, seeds an operator rejects.
        return ImageRecord(str(path), "failed", time.perf_counter() - start, error=_first_line(error, named=False))
    except Exception as error:  # noqa: BLE001 - any failure is this image's; the batch goes on
        return ImageRecord(str(path), "failed", time.perf_counter() - start, error=_first_line(error, named=True))


def _first_line(error: BaseException, named: bool) -> str:
    """The first line of an error's message, after its type name when ``named``."""
    lines = str(error).strip().splitlines()
    if not lines:
        return type(error).__name__
    return f"{type(error).__name__}: {lines[0]}" if named else lines[0]


def finished_record(path: Path, outdir: Path, fingerprint: str) -> ImageRecord | None:
    """The ``"skipped"`` record of an image a previous run finished, or None to process it.

    An image counts as finished when its done-marker is readable, names this recipe
    (fingerprint) and the input file as it is now (size and modification time), and all
    the outputs it lists exist.
    """
    marker = done_marker(outdir, image_stem(path))
    try:
        done = json.loads(marker.read_text(encoding="utf-8"))
        unchanged = done["recipe"] == fingerprint and done["input_file"] == _input_state(path)
        outputs = [str(name) for name in done["outputs"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not unchanged or not all((outdir / name).is_file() for name in outputs):
        return None
    return ImageRecord(str(path), "skipped", float(done.get("seconds", 0.0)), outputs, done.get("scores", {}))


# ------------------------------------------------------------------------- progress


class ProgressLine:
    """One line on a stream, rewritten in place: done/total, images per second, ETA, failures.

    Parameters
    ----------
    total : int
        Images in the batch.
    skipped : int
        Those already finished by an earlier run (counted as done, not in the rate).
    stream : text stream
        Where to draw (stderr).
    """

    def __init__(self, total: int, skipped: int, stream: IO[str]) -> None:
        self.total, self.skipped, self.stream = total, skipped, stream
        self.processed = self.failed = 0
        self.start = time.perf_counter()
        self._width = 0

    def update(self, failed: bool) -> None:
        """Count one more processed image and redraw."""
        self.processed += 1
        self.failed += failed
        self.draw()

    def draw(self) -> None:
        """Redraw the line."""
        done = self.skipped + self.processed
        elapsed = time.perf_counter() - self.start
        rate = self.processed / elapsed if elapsed > 0 and self.processed else 0.0
        remaining = self.total - done
        eta = _clock(remaining / rate) if rate else "--:--"
        text = f"maskwork batch: {done}/{self.total} images  {rate:.2f} images/s  ETA {eta}  {self.failed} failed"
        if self.skipped:
            text += f"  ({self.skipped} done before)"
        # Pad with spaces so a shorter line covers the end of the longer one before it.
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()
        self._width = len(text)

    def finish(self) -> None:
        """End the line."""
        self.stream.write("\n")
        self.stream.flush()


def _clock(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


# ------------------------------------------------------------------------------ Dask


@contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None) -> Iterator:
    """A Dask ``Client``: on a new local cluster, or connected to ``scheduler``.

    Parameters
    ----------
    workers : int, optional
        Worker processes of the local cluster (one thread each); default: CPU count.
    scheduler : str, optional
        Address of a running scheduler (``tcp://host:8786``); no local cluster then.

    Raises
    ------
    OSError
        When the scheduler cannot be reached within :data:`CONNECT_TIMEOUT` seconds.

    Notes
    -----
    The cluster and client close when the block ends, also on error or Ctrl+C.
    """
    dask = import_optional("dask", "maskwork batch")
    distributed = import_optional("dask.distributed", "maskwork batch")
    Client, LocalCluster = distributed.Client, distributed.LocalCluster

    if scheduler is not None:
        with Client(scheduler, timeout=CONNECT_TIMEOUT) as client:
            yield client
        return
    count = workers or os.cpu_count() or 1
    environ = {f"distributed.nanny.pre-spawn-environ.{name}": value for name, value in SINGLE_THREAD_ENVIRON.items()}
    with dask.config.set(environ), _children_ignore_ctrl_c():
        cluster = LocalCluster(
            n_workers=count,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        )
    with cluster, Client(cluster) as client:
        yield client


@contextmanager
def _children_ignore_ctrl_c() -> Iterator[None]:
    """Ignore SIGINT while the block starts processes, which inherit that (Python installs
    its KeyboardInterrupt handler only where SIGINT is not ignored): a terminal's Ctrl+C
    reaches every process of its group, and each Dask worker printed the traceback of
    its interrupted task. This process stops them when its own Ctrl+C ends the batch.
    (Only the main thread may set signal handlers; elsewhere nothing changes.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def run_on_client(client, recipe: Recipe, images: Sequence[Path], outdir: Path,
                  progress: IO[str] | None = None, max_pixels: int | None = None,
                  quiet: bool = False) -> list[ImageRecord]:
    """Replay ``recipe`` on ``images`` through a Dask client; one record per image, in order.

    Saves the recipe as ``OUTDIR/recipe.json`` (its seeds in ``recipe_seeds/``, which sets
    the recipe's paths there), skips images a previous run finished, sends the others to
    the workers and writes ``summary.csv``.

    Parameters
    ----------
    client : distributed.Client
        Where the work goes.
    recipe : Recipe
        The steps.
    images : sequence of Path
        Input images (see :func:`collect_images`).
    outdir : Path
        Output folder (created).
    progress : text stream, optional
        Where to draw the progress line; None draws nothing.
    max_pixels, quiet
        Passed to :func:`process_image` for every image.
    """
    # Absolute paths: a worker of a remote scheduler has its own working folder.
    outdir = Path(outdir).resolve()
    outdir.mkdir(parents=True, exist_ok=True)
    recipe.save(outdir / "recipe.json")
    embedded = recipe.to_json(outdir)
    fingerprint = recipe.fingerprint()
    records: dict[int, ImageRecord] = {}
    pending = []
    for index, path in enumerate(images):
        record = finished_record(path, outdir, fingerprint)
        if record is not None:
            records[index] = record
        else:
            pending.append(index)
    line = ProgressLine(len(images), len(records), progress) if progress is not None else None
    if line is not None:
        line.draw()
    try:
        if pending:
            _collect(client, recipe, images, pending, outdir, embedded, fingerprint, max_pixels, quiet, records, line)
    except KeyboardInterrupt:
        for index in set(range(len(images))) - set(records):
            # Finished by a worker (its done-marker written) but not collected yet: an
            # ok image, whose time and scores the marker keeps.
            record = finished_record(images[index], outdir, fingerprint)
            if record is not None:
                records[index] = dataclasses.replace(record, status="ok")
        undone = ImageRecord("", "interrupted", error="stopped by Ctrl+C: run the batch again to do it")
        ordered = [records.get(index) or dataclasses.replace(undone, input=str(images[index]))
                   for index in range(len(images))]
        summary = write_summary(outdir / SUMMARY_NAME, ordered)
        raise BatchInterrupted(len(records), len(images), summary) from None
    if line is not None:
        line.finish()
    ordered = [records[index] for index in range(len(images))]
    write_summary(outdir / SUMMARY_NAME, ordered)
    return ordered


def _collect(client, recipe: Recipe, images: Sequence[Path], pending: list[int], outdir: Path, embedded: dict,
             fingerprint: str, max_pixels: int | None, quiet: bool, records: dict, line) -> None:
    """Send the ``pending`` images to the workers; put each one's record into ``records``
    (by index) as it comes back."""
    from dask.distributed import as_completed

    shared_recipe = client.scatter(recipe, broadcast=True)
    futures = {
        client.submit(process_image, shared_recipe, str(images[index].resolve()), str(outdir), embedded, fingerprint,
                      max_pixels, quiet, pure=False): index
        for index in pending
    }
    for future in as_completed(futures):
        index = futures[future]
        if future.status == "finished":
            record = future.result()
        elif future.status == "cancelled":  # the scheduler dropped it (e.g. a lost connection)
            record = ImageRecord(str(images[index]), "failed", error="cancelled by the Dask scheduler")
        else:  # the worker died (out of memory, a crash in native code)
            record = ImageRecord(str(images[index]), "failed", error=_first_line(future.exception(), named=True))
        record.input = str(images[index])  # as the user named it
        records[index] = record
        future.release()
        if line is not None:
            line.update(record.status == "failed")


class BatchInterrupted(KeyboardInterrupt):
    """Ctrl+C stopped a batch; ``done`` of ``total`` images were finished (or found done
    before), and ``summary`` lists them."""

    def __init__(self, done: int, total: int, summary: Path) -> None:
        super().__init__(f"{done} of {total} images done")
        self.done, self.total, self.summary = done, total, summary


def write_summary(path: Path, records: Sequence[ImageRecord]) -> Path:
    """Write ``summary.csv``: one row per image, columns :data:`SUMMARY_COLUMNS`."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=SUMMARY_COLUMNS)
        writer.writeheader()
        writer.writerows(record.to_row() for record in records)
    return path


def _needs_one_model_copy(recipe: Recipe) -> bool:
    """Whether a step runs a model that every worker process would load again."""
    return any(registry.get(step.operator).memory_estimate is not None for step in recipe.steps)


def run_batch(recipe: Recipe, patterns: Sequence[str], outdir: str | os.PathLike, *, workers: int | None = None,
              scheduler: str | None = None, progress: IO[str] | None = None, max_pixels: int | None = None,
              quiet: bool = False) -> list[ImageRecord]:
    """Replay ``recipe`` on every image named by ``patterns``; see the module docstring.

    Parameters
    ----------
    recipe : Recipe
        The steps (:func:`maskwork.pipeline.recipe.load`).
    patterns : sequence of str
        Files, folders or globs (:func:`collect_images`).
    outdir : str or path-like
        Output folder.
    workers : int, optional
        Worker processes of the local cluster; default: CPU count, or 1 when a step is a
        deep-learning operator (one model in memory, using every core or the GPU).
    scheduler : str, optional
        Address of a running Dask scheduler to use instead of a local cluster.
    progress : text stream, optional
        Where the progress line goes (the command line passes stderr); None draws none.
    max_pixels : int, optional
        Largest image the workers read; default their own limit (500 megapixels or
        ``MASKWORK_MAX_PIXELS``).
    quiet : bool
        Silence library warnings and messages on the workers' stderr.

    Returns
    -------
    list of ImageRecord
        One per image, in input order (also written to ``summary.csv``).

    Raises
    ------
    InputError
        For inputs that name nothing or collide, output layers whose files would collide
        (:func:`check_output_names`), or a worker count below 1.
    OSError
        When the output folder cannot be made or the scheduler cannot be reached.
    """
    if workers is not None and workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    if workers is not None and scheduler is not None:
        raise InputError("--workers sizes a local cluster; with --scheduler the scheduler's workers do the work")
    outdir = Path(outdir)
    images = collect_images(patterns, exclude=outdir)
    check_output_names(recipe, images)
    if outdir.exists() and not outdir.is_dir():
        raise InputError(f"the output folder {outdir} is a file: name a folder (made if missing)")
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise unwritable(outdir, error) from error
    if workers is None and scheduler is None and _needs_one_model_copy(recipe):
        # Each worker process would load its own copy of the model (and its own CUDA
        # context on the one GPU): several copies of a large model exhaust the memory.
        workers = 1
        if progress is not None:
            print("deep-learning steps: one worker (the model runs its own threads); --workers N to override",
                  file=progress)
    with dask_client(workers, scheduler) as client:
        return run_on_client(client, recipe, images, outdir, progress, max_pixels, quiet)
