"""Seeded corpus fuzzing of the image readers and ``maskwork run`` (issue 15, item 7).

Every generated file (see ``fuzz_corpus.py``) is read with :func:`read_images` and given
to ``maskwork run`` in this process (``main()``, as the console script calls it, with the
real file descriptors captured), as the image of an operator or as its mask or markers.
The contract: never an exception out of the reader other than :class:`ImageReadError`,
never one out of ``main()``; the command exits 0 with nothing on stderr, or 2 with exactly
one line ``maskwork: error: ...``; files that must be refused are refused (exit 2); valid
files are read, and the operators that take any image run on them (exit 0).

``MASKWORK_FUZZ_CASES`` scales the corpus (the default keeps this under a minute);
``benchmarks/fuzz_inputs.py`` runs a long version and reports memory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy as np
from fuzz_corpus import BAD, GOOD, ODD, Case, corpus
from PIL import Image

from maskwork import cli
from maskwork.core.io import ImageReadError, read_images

SEED = 15
CASES = int(os.environ.get("MASKWORK_FUZZ_CASES", "500"))

#: How each fuzzed file reaches an operator: (operator, the option that names the file).
#: Fast operators that take an image, a mask or markers, whatever their type and size.
ROUTES = [
    ("threshold", "--image"),
    ("levels", "--image"),
    ("gamma", "--image"),
    ("unsharp_mask", "--image"),
    ("invert", "--mask"),
    ("fill_holes", "--mask"),
    ("watershed", "--markers"),
    ("seamless_clone", "--image2"),
]


def run_cli(argv: list[str], capfd) -> tuple[int, str]:
    """``maskwork`` with `argv` in this process: exit code and stderr."""
    capfd.readouterr()
    try:
        code = cli.main(argv)
    except SystemExit as stop:  # argparse's own exit
        code = stop.code
    return code, capfd.readouterr().err


def assert_one_line_or_success(code: int, err: str, context: str) -> None:
    """The command line's contract for any input: exit 0 and silence, or 2 and one line."""
    if code == 0:
        assert err == "", f"{context}: exit 0 but stderr {err!r}"
        return
    lines = err.splitlines()
    assert code == 2, f"{context}: exit {code}, stderr {err!r}"
    assert len(lines) == 1 and lines[0].startswith("maskwork: error: "), f"{context}: stderr {err!r}"


def write_companions(folder: Path, shape: tuple[int, ...]) -> tuple[Path, Path]:
    """A random photo and a box mask of the fuzzed image's size, for the other inputs.

    A size that matches keeps the run going past the size checks into the operator.
    """
    rows, cols = shape[:2]
    rng = np.random.default_rng(rows * 1000 + cols)
    photo, mask = folder / "photo.png", folder / "mask.png"
    Image.fromarray(rng.integers(0, 256, (rows, cols, 3), dtype=np.uint8)).save(photo)
    box = np.zeros((rows, cols), np.uint8)
    box[rows // 4 : max(3 * rows // 4, rows // 4 + 1), cols // 4 : max(3 * cols // 4, cols // 4 + 1)] = 255
    Image.fromarray(box).save(mask)
    return photo, mask


def argv_for(case_path: Path, route: tuple[str, str], shape: tuple[int, ...]) -> list[str]:
    """Arguments that give `case_path` to `route`'s operator as `route`'s option."""
    operator, option = route
    output = str(case_path.with_name("out.tif"))
    photo, mask = write_companions(case_path.parent, shape)
    if option == "--image":
        return ["run", operator, "--image", str(case_path), "-o", output]
    if option == "--image2":
        return ["run", operator, "--image", str(photo), "--image2", str(case_path), "--mask", str(mask), "-o", output]
    return ["run", operator, "--image", str(photo), option, str(case_path), "-o", output]


def check_case(case: Case, route: tuple[str, str], folder: Path,
               run: Callable[[list[str]], tuple[int, str]]) -> None:
    """Read `case` and run it through the command line, asserting the contract.

    Parameters
    ----------
    case : Case
        The file to write into `folder` and try.
    route : tuple of str
        (operator, option): how the command line gets the file.
    folder : Path
        Scratch folder for the file, its companions and the output.
    run : callable
        ``run(argv) -> (exit code, stderr)``, running ``maskwork`` in this process.
    """
    path = folder / case.name
    path.write_bytes(case.data)
    try:
        shape = read_images(path)[0].shape
    except ImageReadError as error:
        assert "\n" not in str(error), case.name
        shape = None
    if case.expect in (GOOD, ODD):
        assert shape is not None, f"{case.name}: a valid file was refused"
    elif case.expect == BAD:
        assert shape is None, f"{case.name}: a file that must be refused was read"

    code, err = run(argv_for(path, route, shape or (40, 40)))
    assert_one_line_or_success(code, err, f"{case.name} through {route}")
    if case.expect == BAD:
        assert code == 2, f"{case.name}: accepted by the command line"
    elif case.expect == GOOD and route[1] == "--image":
        # These operators take any readable image, whatever its type and size.
        assert code == 0, f"{case.name} through {route}: {err!r}"
    path.unlink()


def test_fuzzed_files_never_escape_the_contract(tmp_path, capfd):
    cases = list(corpus(SEED, CASES))
    assert {case.expect for case in cases} >= {GOOD, BAD}
    for index, case in enumerate(cases):
        check_case(case, ROUTES[index % len(ROUTES)], tmp_path, lambda argv: run_cli(argv, capfd))
