"""Imports point one way: core <- operators <- pipeline <- front-ends, and no Qt below them.

Every module under ``maskwork/`` is read with :mod:`ast`, so imports inside functions (the
project imports heavy libraries lazily) count as much as those at the top. Each
``maskwork.X`` module belongs to the layer of its first part; a module may import its own
layer and those below it, never one above. ``core``, ``operators``, ``pipeline`` and the
command line import no GUI library at all. A new top-level module or package has to be
given a layer here before the test passes, so nothing escapes the check by being new.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "maskwork"

#: First part after ``maskwork.`` -> layer; a module may import only layers <= its own.
#: The package root holds just the version, and ``resources`` only data files: both sit
#: at the bottom, where everyone may use them.
LAYERS = {
    "": 0,
    "resources": 0,
    "core": 0,
    "operators": 1,
    "pipeline": 2,
    "app": 3,
    "widgets": 3,
    "napari": 3,
    "cli": 3,
    "models_cli": 3,
    "__main__": 3,
}
#: Parts of the package that run without a display: the tests and the command line use them.
NO_GUI = ("core", "operators", "pipeline", "cli", "models_cli")
GUI_LIBRARIES = ("PySide6", "shiboken6", "pyqtgraph", "qtpy", "superqt", "magicgui", "napari")


def part_of(module: str) -> str:
    """The first part after ``maskwork.`` (``""`` for the package root itself)."""
    return module.split(".")[1] if module.count(".") else ""


def imported_part(target: str) -> str:
    """The layer part (:func:`part_of`) of an imported name.

    A name that the package root defines rather than a submodule (``from maskwork import
    __version__``) belongs to the root.
    """
    part = part_of(target)
    if part in LAYERS or (PACKAGE / part).is_dir() or (PACKAGE / f"{part}.py").is_file():
        return part
    return ""


def module_name(path: Path) -> tuple[str, bool]:
    """The dotted name of a file under :data:`PACKAGE`, and whether it is a package's ``__init__``."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    is_package = parts[-1] == "__init__"
    return ".".join(parts[:-1] if is_package else parts), is_package


def imported_modules(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """``(line, absolute module name)`` for every import in ``tree``, at any depth.

    ``from package import name`` yields ``package.name`` (``name`` may be a submodule) and
    relative imports are resolved against ``module``. A literal
    ``importlib.import_module("...")`` counts as an import too.
    """
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                yield node.lineno, base if alias.name == "*" else f"{base}.{alias.name}"
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, node.args[0].value


def import_violations(source: str, label: str, module: str, is_package: bool = False) -> list[str]:
    """The imports in ``source`` (module ``module``, shown as ``label``) against the layering.

    Returns
    -------
    list of str
        One readable line per offending import, e.g. ``maskwork/core/recipe.py:12 imports
        maskwork.operators.registry (core must not import operators)``.
    """
    own = part_of(module)
    if own not in LAYERS:
        return [f"{label} is in no layer: give maskwork.{own} a layer in tests/test_layering.py"]
    found = []
    for line, target in imported_modules(ast.parse(source), module, is_package):
        top = target.split(".")[0]
        if top == "maskwork":
            other = imported_part(target)
            if other not in LAYERS:
                found.append(f"{label}:{line} imports {target}, which is in no layer")
            elif LAYERS[other] > LAYERS[own]:
                found.append(f"{label}:{line} imports {target} ({own or 'maskwork'} must not import {other})")
        elif top in GUI_LIBRARIES and own in NO_GUI:
            found.append(f"{label}:{line} imports {target} ({own} must not import a GUI library)")
    return found


def test_imports_point_one_way():
    problems = []
    files = sorted(PACKAGE.rglob("*.py"))
    for path in files:
        module, is_package = module_name(path)
        label = path.relative_to(PACKAGE.parent).as_posix()
        problems += import_violations(path.read_text(encoding="utf-8"), label, module, is_package)
    assert len(files) > 50  # the walk found the package
    assert not problems, "imports against the layering:\n" + "\n".join(problems)


SYNTHETIC_CASES = {
    "top-level import of a higher layer": (
        "import numpy\nfrom maskwork.operators import registry\n",
        "maskwork.core.recipe",
        ["maskwork/core/recipe.py:2 imports maskwork.operators.registry (core must not import operators)"],
    ),
    "lazy import inside a function": (
        "def replay():\n    import maskwork.pipeline.replay\n",
        "maskwork.operators.seeds",
        ["maskwork/operators/seeds.py:2 imports maskwork.pipeline.replay (operators must not import pipeline)"],
    ),
    "relative import climbing into the front-ends": (
        "from ...app import runner\n",
        "maskwork.pipeline.sub.mod",
        ["maskwork/pipeline/sub/mod.py:1 imports maskwork.app.runner (pipeline must not import app)"],
    ),
    "import_module with a literal name": (
        "import importlib\nimportlib.import_module('maskwork.widgets.canvas')\n",
        "maskwork.cli",
        [],  # cli and widgets share the front-end layer
    ),
    "GUI library below the front-ends": (
        "def show():\n    from PySide6.QtWidgets import QWidget\n",
        "maskwork.pipeline.session",
        ["maskwork/pipeline/session.py:2 imports PySide6.QtWidgets.QWidget (pipeline must not import a GUI library)"],
    ),
    "downward and same-layer imports are fine": (
        "from maskwork.core import io\nfrom maskwork.operators.context import InputError\nfrom . import batch\nfrom maskwork import __version__\n",
        "maskwork.pipeline.recipe",
        [],
    ),
    "a front-end may use the GUI": ("import pyqtgraph\nfrom maskwork.pipeline import recipe\n", "maskwork.widgets.canvas", []),
    "a new top-level package": ("import numpy\n", "maskwork.plugins.extra", ["maskwork/plugins/extra.py is in no layer: give maskwork.plugins a layer in tests/test_layering.py"]),
}


@pytest.mark.parametrize("case", list(SYNTHETIC_CASES))
def test_checker_flags_imports_against_the_direction(case):
    source, module, expected = SYNTHETIC_CASES[case]
    label = module.replace(".", "/") + ".py"
    assert import_violations(source, label, module) == expected
