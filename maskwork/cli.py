"""``maskwork ops``, ``run`` and ``batch``: the operators without a window (imports no Qt).

Bad input never shows a traceback: it prints one line on stderr and exits with code 2.
``maskwork run`` prints nothing else on stderr: what libraries write there while it runs
(Python warnings, tifffile's log, libpng, OpenCV and SimpleITK messages written by native
code straight to the file descriptor) goes to the null device unless ``--verbose`` is
given. A failure that is not bad input (a bug) is one line too, exit code 1, and
``--verbose`` shows its traceback. ``maskwork batch`` exits with 0 when every image
succeeded (or was done before), 1 when any image failed (each failure is a row of its
summary.csv) and 2 for bad arguments. Dask is imported only by ``batch``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import NoReturn, Sequence

import numpy as np

from maskwork.core.models import ModelNotInstalled
from maskwork.models_cli import add_models_parser, run_models
from maskwork import __version__
from maskwork.operators.context import InputError
from maskwork.operators.extras import needs_message
from maskwork.pipeline.quiet import library_output_silenced

EXIT_SOME_FAILED = 1
EXIT_INTERNAL_ERROR = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
#: 128 + SIGPIPE: the status of a filter whose reader stopped reading.
EXIT_READER_GONE = 141


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line, like every other bad input."""

    def error(self, message: str) -> NoReturn:
        # self.prog is "maskwork" for the top level, "maskwork run" for a command.
        sys.stderr.write(f"maskwork: error: {message} (see {self.prog} --help)\n")
        raise SystemExit(EXIT_BAD_INPUT)


def _pixel_count(text: str) -> int:
    """Parse ``--max-pixels``: a positive whole number, written out or as 2e9."""
    try:
        value = float(text.replace("_", ""))
    except ValueError:
        value = 0.0
    if not (value >= 1 and value.is_integer()):
        raise argparse.ArgumentTypeError(f"a positive whole number of pixels, got {text!r}")
    return int(value)


def build_parser() -> argparse.ArgumentParser:
    """The ``ops`` / ``run`` argument parser."""
    parser = _Parser(prog="maskwork", description="Interactive image processing; without a command opens the window.")
    parser.add_argument("--version", action="version", version=f"maskwork {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    ops = commands.add_parser("ops", help="list operators, their inputs and parameters")
    ops.add_argument("--json", action="store_true", help="print a JSON array")

    run = commands.add_parser("run", help="run one operator on files")
    run.add_argument("operator", help="operator id (see maskwork ops)")
    run.add_argument("--image", required=True, help="input image")
    run.add_argument("--image2", help="second image (the moving image of a registration)")
    run.add_argument("--markers", help="label image: 0 unlabeled, 1 foreground/class 1, 2 background/class 2, ...")
    run.add_argument("--mask", help="mask image, nonzero inside (a labels image keeps its class ids)")
    run.add_argument("--rect", help="box X,Y,W,H in pixels (X = column, Y = row of the top-left corner)")
    run.add_argument("--points", help="point prompts R,C,LABEL;R,C,LABEL;...")
    run.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE", help="operator parameter")
    run.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), default=None, help="compute device for deep-learning operators")
    run.add_argument(
        "-o", "--output", required=True, action="append",
        help="output file; extra outputs are written beside it. A registration's transform goes to a "
        "-o ending in .tfm, .txt or .h5 (ITK, SimpleITK) or .json; repeat -o for several files",
    )  # fmt: skip
    run.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    run.add_argument(
        "--max-pixels", type=_pixel_count, metavar="N",
        help="refuse input images of more than N pixels, checked from the file header before "
        "decoding (default: $MASKWORK_MAX_PIXELS, else 500000000)",
    )  # fmt: skip
    run.add_argument(
        "--verbose", action="store_true",
        help="let library warnings and messages through to stderr, and show the traceback of an "
        "unexpected failure",
    )  # fmt: skip

    batch = commands.add_parser(
        "batch",
        help="replay a recipe on many images in parallel (Dask)",
        description="Replay a recipe on many images in parallel with Dask. Writes <stem>_<layer>.png/.tif per image "
        "and summary.csv into OUTDIR; a rerun skips images already done. Exit status: 0 all done, 1 some "
        "image failed (see summary.csv), 2 bad arguments.",
    )
    batch.add_argument("recipe", help="recipe JSON (or the sidecar of an export, which embeds one)")
    batch.add_argument("inputs", nargs="+", metavar="INPUT", help="image file, folder (every image inside) or glob")
    batch.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="output folder")
    batch.add_argument("--workers", type=int, help="worker processes of the local Dask cluster (default: CPU count; 1 for deep-learning steps, which load a model per worker)")
    batch.add_argument("--scheduler", metavar="ADDRESS", help="use a running Dask scheduler (tcp://host:8786) instead")
    batch.add_argument(
        "--max-pixels", type=_pixel_count, metavar="N",
        help="largest image to read, in pixels (default 500 megapixels or $MASKWORK_MAX_PIXELS)",
    )
    batch.add_argument(
        "--verbose", action="store_true",
        help="let the workers' library warnings and messages through (silenced by default)",
    )
    add_models_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    args = build_parser().parse_args(argv)
    if args.command == "run" and not args.verbose:
        with library_output_silenced():
            code, message = _outcome(args)
    else:
        code, message = _outcome(args)
    if message:
        sys.stderr.write(f"{message}\n")
    return code


def _outcome(args) -> tuple[int, str]:
    """Run the command; return its exit code and the line to print on stderr (or "")."""
    try:
        command = {"models": run_models, "ops": _ops, "batch": _batch}.get(args.command, _run)
        code = command(args)
        sys.stdout.flush()  # a reader that stopped early is found out here, not at the exit
        return code, ""
    except BrokenPipeError:
        # The program reading the output has stopped (maskwork ops | head): end quietly
        # with SIGPIPE's status, as Unix filters do; the flush at exit writes nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_READER_GONE, ""
    except KeyboardInterrupt as interrupt:
        from maskwork.pipeline.batch import BatchInterrupted

        if isinstance(interrupt, BatchInterrupted):  # what it did, and how to do the rest
            return EXIT_INTERRUPTED, (f"\nmaskwork: interrupted: {interrupt.done} of {interrupt.total} images done "
                                      f"(summary in {interrupt.summary}); run the same command again to do the rest")
        return EXIT_INTERRUPTED, "\nmaskwork: interrupted"
    except (InputError, ValueError, OSError, ModelNotInstalled) as error:
        # ImageReadError is a ValueError; OSError covers unwritable outputs.
        return EXIT_BAD_INPUT, f"maskwork: error: {_first_line(error)}"
    except MemoryError:
        return EXIT_BAD_INPUT, "maskwork: error: not enough memory for this input (try a smaller image)"
    except Exception as error:
        if args.command != "run" or args.verbose:
            raise
        # A bug, not bad input: one line like every other failure, and the way to see more.
        return EXIT_INTERNAL_ERROR, (
            f"maskwork: error: {args.command} failed unexpectedly ({type(error).__name__}: "
            f"{_first_line(error)}); run with --verbose for the traceback"
        )


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _ops(args) -> int:
    from maskwork.operators import all_operators

    operators = all_operators()
    if args.json:
        print(json.dumps([op.to_json() for op in operators], indent=2))
        return 0
    for op in operators:
        params = ", ".join(f"{p.name}={p.default}" for p in op.params)
        missing = op.missing_requirements()
        note = f"  ({needs_message('it', missing)})" if missing else ""  # the bundle's says it has no pip
        print(f"{op.id:<18} {op.category} / {op.title}{note}")
        print(f"{'':<18} inputs: {', '.join(op.inputs)}; outputs: {', '.join(op.outputs)}")
        if params:
            print(f"{'':<18} params: {params}")
    return 0


def _parse_params(pairs: list[str]) -> dict[str, str]:
    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise InputError(f"a parameter is NAME=VALUE, got {pair!r}")
        params[name.strip()] = value.strip()
    return params


def _parse_points(text: str) -> list[tuple[float, float, int]]:
    points = []
    for item in filter(None, (part.strip() for part in text.split(";"))):
        try:
            row, col, label = item.split(",")
            points.append((float(row), float(col), int(label)))
        except ValueError:
            raise InputError(f"a point is R,C,LABEL, got {item!r}") from None
    return points


def _run(args) -> int:
    from maskwork.core import io
    from maskwork.operators import get
    from maskwork.pipeline.inputs import single_channel
    from maskwork.pipeline.session import RunSession, collect_inputs, probability_class_ids

    if args.max_pixels is not None:
        io.set_max_pixels(args.max_pixels)
    spec = get(args.operator)
    params = _parse_params(args.param)
    if args.device is not None and any(p.name == "device" for p in spec.params):
        params["device"] = args.device
    for name in params:
        spec.param(name)  # unknown names fail before any file is read

    inputs: dict = {"image": io.read_image(args.image)}
    if args.image2:
        inputs["image2"] = io.read_image(args.image2)
    if args.markers:
        inputs["markers"] = single_channel(io.read_image(args.markers, palette_indices=True), "markers")
    if args.mask:
        inputs["mask"] = mask_or_labels(single_channel(io.read_image(args.mask, palette_indices=True), "mask"))
    if args.rect:
        try:
            inputs["rect"] = tuple(int(v) for v in args.rect.split(","))
        except ValueError:
            raise InputError(f"--rect is X,Y,W,H in whole pixels, got {args.rect!r}") from None
        if len(inputs["rect"]) != 4:
            raise InputError(f"--rect is X,Y,W,H, got {args.rect!r}")
    if args.points:
        inputs["points"] = _parse_points(args.points)
    for name in list(inputs):
        if name not in spec.inputs:
            raise InputError(f"{spec.id} does not take --{name}")

    session = RunSession(spec, collect_inputs(spec, inputs), params)
    start = time.perf_counter()
    result = session.run()
    seconds = time.perf_counter() - start

    provenance = {
        "operator": spec.id,
        "parameters": {**spec.defaults(), **{k: spec.param(k).coerce(v) for k, v in params.items()}},
        "inputs": {name: getattr(args, name) for name in ("image", "image2", "markers", "mask") if getattr(args, name)},
        "seeds": io.seed_summary(inputs.get("markers"), inputs.get("rect"), inputs.get("points")),
    }
    files = {name: getattr(args, name) for name in ("image2", "markers", "mask") if getattr(args, name)}
    recipe = session.recipe(files)
    outputs = [Path(path) for path in args.output]
    class_ids = None
    if "probabilities" in result.outputs:
        planes = np.asarray(result.outputs["probabilities"])
        class_ids = probability_class_ids(1 if planes.ndim == 2 else planes.shape[2], result.class_ids,
                                          inputs.get("markers"))
    written = write_outputs(result, outputs, provenance, recipe.to_json(outputs[0].resolve().parent), class_ids)
    if args.json:
        summary = {
            "operator": spec.id,
            "outputs": [str(path) for path in written],
            "seconds": round(seconds, 4),
            "iterations": result.iterations,
            "scores": result.scores,
        }
        transform = result.outputs.get("transform")
        if transform is not None:
            summary["transform"] = io.transform_json(transform)
        print(json.dumps(summary, default=_json_default))
    return 0


def mask_or_labels(values: np.ndarray) -> np.ndarray:
    """A ``--mask`` file as the window passes its layers: a mask (one nonzero value, 0/255
    as written) as booleans, a labels file (several class ids) with its ids, so that
    operators which keep classes (clean_labels, connected_components) see them."""
    inside = np.nan_to_num(values, nan=0.0) != 0 if np.issubdtype(values.dtype, np.floating) else values != 0
    ids = values[inside]
    if ids.size and np.any(ids != ids[0]):
        return values
    return inside


def write_outputs(result, outputs: Sequence[Path], provenance: dict, recipe: dict | None = None,
                  class_ids: Sequence[int] | None = None) -> list[Path]:
    """Write each output of ``result`` to the ``-o`` files, the others beside the first.

    A transform goes to every file ending in ``.json`` or an ITK suffix (``.tfm``, ``.txt``,
    ``.h5``); the other files take the other outputs in order. An output no file was given
    for gets a suffixed name beside the first: ``OUT_probabilities.tif``,
    ``OUT_transform.json``, ``OUT_image.png``... Every file gets a sidecar with
    ``provenance`` and, when given, the one-step ``recipe``; a probabilities file's sidecar
    also names each plane's class id (``class_ids``).
    """
    from maskwork.core import io
    from maskwork.core.io.writing import ITK_TRANSFORM_SUFFIXES

    transform_suffixes = (".json", *ITK_TRANSFORM_SUFFIXES)
    has_transform = "transform" in result.outputs
    for_transform = [path for path in outputs if has_transform and path.suffix.lower() in transform_suffixes]
    others = [path for path in outputs if path not in for_transform]
    kinds = [kind for kind in result.outputs if kind != "transform"]
    if len(others) > len(kinds):
        besides = " besides the transform" if has_transform else ""
        raise InputError(f"{len(others)} output files for {len(kinds)} output(s){besides} ({', '.join(kinds)})")
    first = outputs[0]
    targets = [(kind, [path]) for kind, path in zip(kinds, others)]
    for kind in kinds[len(others):]:
        keeps_suffix = kind == "image" and first.suffix.lower() in io.WRITABLE_SUFFIXES
        suffix = first.suffix if keeps_suffix else io.output_suffix(kind, result.outputs[kind])
        targets.append((kind, [first.with_name(f"{first.stem}_{kind}{suffix}")]))
    if has_transform:
        targets.append(("transform", for_transform or [first.with_name(f"{first.stem}_transform.json")]))
    _refuse_shared_files([io.written_path(path, kind) for kind, paths in targets for path in paths])
    return [io.write_output(path, kind, result.outputs[kind], provenance=provenance, recipe=recipe,
                            class_ids=class_ids if kind == "probabilities" else None)
            for kind, paths in targets for path in paths]


def _refuse_shared_files(files: Sequence[Path]) -> None:
    """Raise InputError, before anything is written, when two of ``files`` or their
    sidecars are one file (``-o out.png -o out.png.json``: the transform would replace
    the image's sidecar), or would be on Windows and macOS, whose file names ignore case
    (``-o out.png -o OUT.png``), as ``maskwork batch`` refuses them too."""
    from maskwork.core import io

    seen: dict[str, Path] = {}
    for path in [*files, *(io.sidecar_path(path) for path in files)]:
        key = os.path.abspath(path).casefold()
        if key in seen:
            raise InputError(f"two outputs would be written to {path}: give each -o a name of its own "
                             f"(every output also gets a sidecar, NAME.json; names that differ only "
                             f"in case are one file on Windows and macOS)")
        seen[key] = path


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _batch(args) -> int:
    from maskwork.pipeline.batch import SUMMARY_NAME, run_batch
    from maskwork.pipeline.recipe import load

    recipe = load(args.recipe)
    records = run_batch(recipe, args.inputs, args.output, workers=args.workers, scheduler=args.scheduler,
                        progress=sys.stderr, max_pixels=args.max_pixels, quiet=not args.verbose)
    counts = {status: sum(record.status == status for record in records) for status in ("ok", "skipped", "failed")}
    sys.stderr.write(
        f"maskwork batch: {len(records)} images: {counts['ok']} done, {counts['skipped']} done before, "
        f"{counts['failed']} failed; summary in {Path(args.output) / SUMMARY_NAME}\n"
    )
    return EXIT_SOME_FAILED if counts["failed"] else 0
